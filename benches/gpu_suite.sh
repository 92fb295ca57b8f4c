#!/usr/bin/env bash
# Issue 6's GPU measurements, in parts that each fit a 10-minute device call.
# Run from the repository root on the GPU machine, with the files that
# `tools/build_cuda.sh --tests --bundle` made here carried along
# (target/cuda/gpu-bundle.tar.xz and target/cuda/gpu-data.tar.xz, ~33 MB):
#
#   bash benches/gpu_suite.sh tests      # parity, gradients, checkpointing on cuda:0
#   bash benches/gpu_suite.sh compare    # train step and eval forward vs PyTorch: base, large (bf16, 32 x 128)
#   bash benches/gpu_suite.sh xnli       # XNLI test (75,150 pairs), XLM-R large, stilts vs transformers
#   bash benches/gpu_suite.sh memory     # XLM-R XL training step: checkpointing (+ factored AdamW), peak memory
#   bash benches/gpu_suite.sh all        # all four (longer than one device call)
#
# Each step's stdout/stderr go to $OUT (the device tool's output folder) or
# target/gpu-results, with env.txt (GPU, driver, library versions) and
# steps.txt (one exit status a line). A failing step does not stop the others.
set -uo pipefail
[[ $# -gt 0 ]] || { sed -n '2,15p' "$0"; exit 2; }
cd "$(dirname "$0")/.." || exit 1
OUT_DIR=${OUT:-target/gpu-results}
mkdir -p "$OUT_DIR"
BIN=target/cuda/release/stilts
PY=${PYTHON:-python3}

unpack() { "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2"; }
[[ -x $BIN ]] || unpack target/cuda/gpu-bundle.tar.xz .
# ../shared does not travel: use the carried copy of what is needed.
DATA=../shared/data
if [[ ! -f $DATA/xlmr/tokenizer.json && -f target/cuda/gpu-data.tar.xz ]]; then
  [[ -f target/cuda/gpu-data/data/xlmr/tokenizer.json ]] || unpack target/cuda/gpu-data.tar.xz target/cuda/gpu-data
  DATA=target/cuda/gpu-data/data
fi
# The test binaries have /work/main compiled in (fixtures, CARGO_BIN_EXE_stilts).
if [[ $PWD != /work/main ]]; then
  if [[ ! -e /work/main || -L /work/main ]]; then
    mkdir -p /work && ln -sfn "$PWD" /work/main
  else
    echo "note: /work/main is another checkout; the test binaries read their fixtures there" >&2
  fi
fi
# shellcheck source=../tools/cuda_env.sh
source tools/cuda_env.sh "$BIN" > "$OUT_DIR/cuda_env.txt" 2>&1
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  "$PY" -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)' 2>&1
  git log -1 --format='commit %h %s' 2>/dev/null
} > "$OUT_DIR/env.txt"

step() {
  local name=$1
  shift
  echo "== $name: $*"
  "$@" > "$OUT_DIR/$name.out" 2> "$OUT_DIR/$name.err"
  local rc=$?
  echo "$name exit $rc" | tee -a "$OUT_DIR/steps.txt"
  tail -n 5 "$OUT_DIR/$name.out"
}

part_tests() {
  # One integration-test binary per crate (`it-HASH`); the modules to run
  # are chosen by filter (a binary without them runs none).
  local n=0
  for exe in target/cuda/release/deps/it-*; do
    [[ -x $exe && $exe != *.d ]] || continue
    n=$((n + 1))
    step "test-it$n" "$exe" parity:: gradients:: checkpointing::
  done
}

part_compare() {
  for s in xlmr-base xlmr-large; do
    step "compare-$s" env STILTS="$BIN" PYTHON="$PY" REPEAT=3 bash benches/compare.sh \
      --device cuda --size "$s" --batch 32 --seq 128 --dtype bf16 --steps 10
  done
}

part_xnli() {
  local model=target/gpu-results-model/xlmr-large
  [[ -f $model/model.safetensors ]] ||
    step init-large "$BIN" --device cuda init "$model" --size xlmr-large --tokenizer "$DATA/xlmr/tokenizer.json" -q
  step xnli-stilts "$BIN" --device cuda bench-xnli "$model" --data "$DATA/xnli" --dtype bf16 -q
  step xnli-transformers "$PY" benches/xnli_eval.py "$model" --data "$DATA/xnli" --device cuda --dtype bf16
}

part_memory() {
  "$BIN" memory --size xlmr-xl --checkpointing > "$OUT_DIR/memory-estimate.txt" 2>&1
  "$BIN" memory --size xlmr-xl --checkpointing --factored-optimizer >> "$OUT_DIR/memory-estimate.txt" 2>&1
  step xl-checkpointing "$BIN" --device cuda bench --size xlmr-xl --batch 32 --seq 128 --dtype bf16 \
    --checkpointing --steps 2
  step xl-checkpointing-factored "$BIN" --device cuda bench --size xlmr-xl --batch 32 --seq 128 \
    --dtype bf16 --checkpointing --factored-optimizer --steps 2
  step xl-torch-checkpointing "$PY" benches/torch_reference.py --size xlmr-xl --batch 32 --seq 128 \
    --dtype bf16 --device cuda --checkpointing --steps 2
}

for part in "$@"; do
  case $part in
    tests | compare | xnli | memory) "part_$part" ;;
    all) part_tests; part_compare; part_xnli; part_memory ;;
    *) echo "unknown part '$part': tests, compare, xnli, memory or all" >&2; exit 2 ;;
  esac
done
echo "results in $OUT_DIR"
