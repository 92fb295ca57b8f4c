#!/usr/bin/env bash
# Builds `stilts` with the `cuda` feature on a machine that has no GPU and no
# CUDA toolkit, for a GPU machine with compute capability 9.0 (H100/H200),
# NVIDIA driver 580 (CUDA 13.0).
#
#   tools/build_cuda.sh            # -> target/cuda/release/stilts
#   tools/build_cuda.sh --tests    # also the test binaries (cargo test --no-run)
#   tools/build_cuda.sh --bundle   # also target/cuda/gpu-bundle.tar.xz (and gpu-data.tar.xz,
#                                  # the tokenizer and XNLI test files for benches/gpu_suite.sh): stripped
#                                  # binaries (with --tests: the tests too), small
#                                  # enough to carry to a GPU machine
#   tools/build_cuda.sh --toolkit-only   # only steps 1-2 below
#
# What it does:
#  1. Installs a CUDA 13.0 toolkit from PyPI wheels into a virtualenv
#     (target/cuda-toolkit/venv; idempotent) and lays it out as one prefix
#     usable as CUDA_HOME (target/cuda-toolkit/cuda: bin/nvcc, include/, nvvm/,
#     lib64/ with unversioned .so links for the linker).
#  2. Makes a link stub for libcuda.so (the driver is not on PyPI): a tiny
#     shared library, soname libcuda.so.1, exporting every cu* function that
#     cudarc can call. It only satisfies the linker; on a GPU machine the real
#     libcuda.so.1 from the driver is loaded instead. If the stub is ever loaded
#     at run time, every call fails with CUDA_ERROR_STUB_LIBRARY.
#  3. Builds with cargo into target/cuda (never target/, which other builds use).
#  4. Prints the test binaries, the CUDA libraries the binary needs, and how to
#     run it on the GPU machine (see also tools/cuda_env.sh).
#
# nvcc is pinned to 13.0 on purpose: the PTX it writes (ISA 9.0) is JIT-compiled
# by the driver, and a driver refuses PTX newer than itself (driver 580 = 13.0).
#
# Environment (all optional):
#   CUDA_COMPUTE_CAP     target compute capability (default 90 -> sm_90a)
#   CUDA_TOOLKIT_PREFIX  where the toolkit goes (default target/cuda-toolkit)
#   CARGO_TARGET_DIR     cargo's output (default target/cuda)
#   JOBS                 parallel jobs for cargo and nvcc (default 2)
#   PYTHON               python used to create the venv (default python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# ---------------------------------------------------------------- options ---
BUILD_TESTS=0
TOOLKIT_ONLY=0
MAKE_BUNDLE=0
for arg in "$@"; do
  case "$arg" in
    --tests) BUILD_TESTS=1 ;;
    --toolkit-only) TOOLKIT_ONLY=1 ;;
    --bundle) MAKE_BUNDLE=1 ;;
    -h|--help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build_cuda.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

PREFIX="${CUDA_TOOLKIT_PREFIX:-$ROOT/target/cuda-toolkit}"
COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
JOBS="${JOBS:-2}"
PYTHON="${PYTHON:-python3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/cuda}"

# CUDA 13.0 (update 2) wheels. The CUDA 13 wheels all install into one tree,
# site-packages/nvidia/cu13/{bin,include,lib,nvvm}.
PINS=(
  "nvidia-cuda-nvcc==13.0.88"     # nvcc, ptxas, fatbinary, nvlink
  "nvidia-nvvm==13.0.88"          # cicc + libdevice (nvcc's device front end)
  "nvidia-cuda-crt==13.0.88"      # include/crt/*: headers nvcc needs
  "nvidia-cuda-runtime==13.0.96"  # cuda_runtime.h, cuda_bf16.h, libcudart.so.13
  "nvidia-cuda-cccl==13.0.85"     # include/cccl: cub, thrust, libcu++
  "nvidia-cuda-nvrtc==13.0.88"    # libnvrtc.so.13
  "nvidia-cublas==13.1.0.3"       # libcublas.so.13, libcublasLt.so.13
  "nvidia-curand==10.4.0.35"      # libcurand.so.10
)

log() { printf '\n== %s\n' "$*" >&2; }

# ------------------------------------------------------- 1. the toolkit ----
VENV="$PREFIX/venv"
STAMP="$PREFIX/.pins"
if [[ -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$(printf '%s\n' "${PINS[@]}")" ]]; then
  log "CUDA 13.0 wheels already in $VENV"
else
  log "installing CUDA 13.0 wheels into $VENV"
  mkdir -p "$PREFIX"
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
  printf '%s\n' "${PINS[@]}" > "$STAMP"
fi

cu13_dirs=("$VENV"/lib/python3*/site-packages/nvidia/cu13)
CU13="${cu13_dirs[0]}"
[[ -x "$CU13/bin/nvcc" ]] || { echo "no nvcc under $CU13" >&2; exit 1; }

# One prefix to use as CUDA_HOME: links to the wheel tree, plus lib64/ for the
# linker (the wheels ship only versioned names such as libcublas.so.13; `-lcublas`
# needs libcublas.so) and lib64/stubs/ for the libcuda stub.
export CUDA_HOME="$PREFIX/cuda"
mkdir -p "$CUDA_HOME/lib64/stubs"
for d in bin include nvvm lib; do ln -sfn "$CU13/$d" "$CUDA_HOME/$d"; done
for f in "$CU13"/lib/*.so*; do ln -sfn "$f" "$CUDA_HOME/lib64/$(basename "$f")"; done
for lib in cudart nvrtc curand cublas cublasLt; do
  for f in "$CU13/lib/lib$lib.so."*; do   # libcublas.so.13 -> libcublas.so
    f="$(basename "$f")"
    if [[ "$f" =~ ^lib$lib\.so\.[0-9]+$ ]]; then ln -sfn "$f" "$CUDA_HOME/lib64/lib$lib.so"; fi
  done
done

# ------------------------------------------------------- 2. libcuda stub ---
# The functions to export are exactly those cudarc's driver bindings declare
# (src/driver/sys/mod.rs of the cudarc version in Cargo.lock): a superset of
# what the linker will ask for.
log "libcuda.so link stub"
cargo fetch --quiet
CUDARC_DIR="$(cargo metadata --format-version 1 --features cuda 2>/dev/null | "$PYTHON" -c '
import json, os, sys
pkgs = json.load(sys.stdin)["packages"]
print(next(os.path.dirname(p["manifest_path"]) for p in pkgs if p["name"] == "cudarc"))')"
STUB_DIR="$CUDA_HOME/lib64/stubs"
{
  echo "/* Generated by tools/build_cuda.sh from $(basename "$CUDARC_DIR")/src/driver/sys/mod.rs."
  echo "   A link stub for libcuda.so.1, NOT the driver: every call fails with"
  echo "   CUDA_ERROR_STUB_LIBRARY (34). */"
  echo 'typedef int CUresult;'
  echo 'static const char *stub_name = "CUDA_ERROR_STUB_LIBRARY";'
  echo 'static const char *stub_text = "libcuda.so.1 is the link stub from tools/build_cuda.sh, not the NVIDIA driver";'
  echo 'CUresult cuGetErrorName(int e, const char **s) { (void)e; *s = stub_name; return 0; }'
  echo 'CUresult cuGetErrorString(int e, const char **s) { (void)e; *s = stub_text; return 0; }'
  sed -n 's/^pub unsafe fn \(cu[A-Za-z0-9_]*\)(.*/\1/p' "$CUDARC_DIR/src/driver/sys/mod.rs" \
    | grep -vx -e cuGetErrorName -e cuGetErrorString | sort -u \
    | sed 's/.*/CUresult &(void) { return 34; }/'
} > "$STUB_DIR/libcuda_stub.c.new"
if ! cmp -s "$STUB_DIR/libcuda_stub.c.new" "$STUB_DIR/libcuda_stub.c" || [[ ! -f "$STUB_DIR/libcuda.so" ]]; then
  mv "$STUB_DIR/libcuda_stub.c.new" "$STUB_DIR/libcuda_stub.c"
  cc -shared -fPIC -O1 -Wl,-soname,libcuda.so.1 -o "$STUB_DIR/libcuda.so" "$STUB_DIR/libcuda_stub.c"
else
  rm "$STUB_DIR/libcuda_stub.c.new"
fi
# The name the loader looks for; only for running `--device cpu` here. Never put
# this directory on LD_LIBRARY_PATH on a GPU machine.
ln -sfn libcuda.so "$STUB_DIR/libcuda.so.1"
echo "$(grep -c '^CUresult cu' "$STUB_DIR/libcuda_stub.c") functions in $STUB_DIR/libcuda.so" >&2

# ------------------------------------------------------ 3. environment ----
# cudarc (build.rs): CUDARC_CUDA_VERSION picks its CUDA 13.0 bindings (else it
# parses `nvcc --version`); it adds {lib,lib64,lib64/stubs,...} as link search
# paths under each of CUDA_HOME, CUDA_PATH, CUDA_ROOT, CUDA_TOOLKIT_ROOT_DIR and
# CUDNN_LIB that is set (/usr/local/cuda etc. only when none is), so all but
# CUDA_HOME are unset: no other CUDA gets mixed in. LIBRARY_PATH is a fallback.
# candle-kernels (cudaforge): NVCC (or nvcc on PATH) and CUDA_COMPUTE_CAP
# (no nvidia-smi here); it writes PTX for the .cu kernels and compiles the MoE /
# GGUF kernels into libmoe.a (SASS), then links cudart.
unset CUDA_PATH CUDA_ROOT CUDA_TOOLKIT_ROOT_DIR CUDNN_LIB NVCC_CCBIN
export CUDARC_CUDA_VERSION=13000
export CUDA_COMPUTE_CAP="$COMPUTE_CAP"
export NVCC="$CUDA_HOME/bin/nvcc"
export PATH="$CUDA_HOME/bin:$PATH"
export LIBRARY_PATH="$CUDA_HOME/lib64:$STUB_DIR${LIBRARY_PATH:+:$LIBRARY_PATH}"
export CUDAFORGE_THREADS="$JOBS"
nvcc --version | tail -n2 >&2

if [[ "$TOOLKIT_ONLY" == 1 ]]; then
  echo "toolkit ready: CUDA_HOME=$CUDA_HOME" >&2
  exit 0
fi

# ------------------------------------------------------------ 4. build -----
log "cargo build --release --features cuda (CUDA_COMPUTE_CAP=$COMPUTE_CAP, -j $JOBS, into $CARGO_TARGET_DIR)"
start=$SECONDS
cargo build --release --features cuda --bin stilts -j "$JOBS"
BIN="$CARGO_TARGET_DIR/release/stilts"
echo "built $BIN ($(du -h "$BIN" | cut -f1)) in $((SECONDS - start)) s" >&2

TESTS=()
TEST_RC=0
if [[ "$BUILD_TESTS" == 1 ]]; then
  # The executables of `cargo test --release --features cuda --no-run`, built
  # with `cargo build --tests` for its --keep-going: a test target that does not
  # compile does not stop the others (the script still fails at the end).
  log "cargo build --release --features cuda --tests (= cargo test --no-run)"
  ARTIFACTS="$CARGO_TARGET_DIR/test-artifacts.json"
  cargo build --release --features cuda --tests --keep-going -j "$JOBS" \
      --message-format=json-render-diagnostics > "$ARTIFACTS" || TEST_RC=$?
  mapfile -t TESTS < <("$PYTHON" -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])' "$ARTIFACTS")
fi

# A GPU session carries at most 64 MiB, and the binary alone is bigger (the
# candle kernels: PTX plus SASS for the GGUF/MoE kernels). --bundle packs
# stripped copies, at their paths under the repository root, into one .tar.xz.
BUNDLE="$CARGO_TARGET_DIR/gpu-bundle.tar.xz"
if [[ "$MAKE_BUNDLE" == 1 ]]; then
  log "packing $BUNDLE"
  STAGE="$CARGO_TARGET_DIR/bundle"
  rm -rf "$STAGE" && mkdir -p "$STAGE"
  for f in "$BIN" "${TESTS[@]}"; do
    r="$(realpath --relative-to="$ROOT" "$f")"
    mkdir -p "$STAGE/$(dirname "$r")"
    strip -o "$STAGE/$r" "$f"
  done
  # A dictionary larger than one binary lets xz store what the binaries share
  # (most of candle) about once: one thread, since threads split the stream into
  # blocks that share nothing; preset 3 is ~4x faster than 6 for ~13% more.
  tar -C "$STAGE" -cf - . | xz -T1 --lzma2=preset=3,dict=192MiB > "$BUNDLE"
  rm -rf "$STAGE"
  echo "$(du -h "$BUNDLE" | cut -f1) $BUNDLE" >&2
  # ../shared does not travel to the GPU machine: the XLM-R tokenizer and the
  # XNLI test files that benches/gpu_suite.sh needs go beside the bundle (in
  # target/, ignored: never committed), about 5 MB.
  SHARED_DATA="$ROOT/../shared/data"
  if [[ -f "$SHARED_DATA/xlmr/tokenizer.json" ]]; then
    (cd "$SHARED_DATA/.." && tar -cf - data/xlmr/tokenizer.json data/xnli/test-*.tsv) \
      | xz -T2 -6 > "$CARGO_TARGET_DIR/gpu-data.tar.xz"
    echo "$(du -h "$CARGO_TARGET_DIR/gpu-data.tar.xz" | cut -f1) $CARGO_TARGET_DIR/gpu-data.tar.xz" >&2
  else
    echo "warning: no $SHARED_DATA/xlmr/tokenizer.json: gpu-data.tar.xz not made" >&2
  fi
fi

# ------------------------------------------------------------ 5. report ----
rel() { realpath --relative-to="$ROOT" "$1"; }
NEEDED="$(readelf -d "$BIN" | sed -n 's/.*(NEEDED).*\[\(lib\(cu\|nvrtc\)[^]]*\)\]/\1/p' | tr '\n' ' ')"
cat <<EOF

Done: $(rel "$BIN")  (sm_${COMPUTE_CAP}a kernels, PTX ISA of CUDA 13.0)
CUDA libraries it needs at run time: $NEEDED
EOF
if ((${#TESTS[@]})); then
  echo
  echo "Test binaries (run them from the repository root):"
  for t in "${TESTS[@]}"; do echo "  $(rel "$t")"; done
  echo "They have this checkout's path compiled in (CARGO_MANIFEST_DIR, CARGO_BIN_EXE_stilts)"
  echo "for their fixtures and for the stilts binary; where the repository is elsewhere, first:"
  echo "  [ \"\$PWD\" = $ROOT ] || { mkdir -p $(dirname "$ROOT") && ln -sfn \"\$PWD\" $ROOT; }"
fi
cat <<EOF

On the GPU machine (driver >= 580, i.e. CUDA 13.0; no cargo there), from the
repository root, with $(rel "$BIN") carried over (it is over 64 MiB: carry
$(rel "$BUNDLE") from --bundle and run \`tar -xJf $(rel "$BUNDLE")\` first):
  source tools/cuda_env.sh     # puts the CUDA 13 libraries above on LD_LIBRARY_PATH
  $(rel "$BIN") --device cuda bench --size xlmr-base --batch 32 --seq 128 --dtype bf16
libcuda.so.1 must be the driver's there, never the stub in $(rel "$STUB_DIR").
By hand, LD_LIBRARY_PATH needs the directory holding the other libraries: a
CUDA 13 toolkit's lib64 (/usr/local/cuda/lib64) or PyTorch's CUDA 13 wheels,
  export LD_LIBRARY_PATH="\$(python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))'):\$LD_LIBRARY_PATH"

Here (no GPU), a CPU smoke test of this binary:
  LD_LIBRARY_PATH=$(rel "$STUB_DIR"):$(rel "$CUDA_HOME/lib64") $(rel "$BIN") --device cpu bench --vocab 1000 --hidden 64 --layers 2 --heads 2 --ffn 128 --batch 2 --seq 16 --steps 1
EOF
if [[ "$TEST_RC" != 0 ]]; then
  echo "build_cuda.sh: some test targets did not compile (cargo exit $TEST_RC); errors above" >&2
  exit "$TEST_RC"
fi
