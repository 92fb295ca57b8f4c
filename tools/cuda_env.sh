# Source this on the GPU machine before running a `cuda` build of stilts
# (tools/build_cuda.sh) there:
#
#   source tools/cuda_env.sh [BINARY]      # BINARY: default target/cuda/release/stilts
#
# The binary links the CUDA 13 libraries dynamically (sonames below) and the
# driver's libcuda.so.1. This finds, for each library the loader cannot already
# find, the first directory that holds it — a CUDA_HOME, /usr/local/cuda, or the
# nvidia wheels of any python3 on PATH (PyTorch's: site-packages/nvidia/cu13/lib
# or nvidia/*/lib) — and prepends those directories to LD_LIBRARY_PATH. It then
# shows `ldd` for the binary. Nothing else is changed.
# (Meant to be sourced: no `set -e`, and all names start with _ce_.)

_ce_bin="${1:-target/cuda/release/stilts}"
_ce_libs="libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13"
if [[ -f "$_ce_bin" ]] && command -v readelf >/dev/null; then
  # The binary's own list, in case it was built against other versions.
  _ce_libs="$(readelf -d "$_ce_bin" | sed -n 's/.*(NEEDED).*\[\(lib\(cu\|nvrtc\)[^]]*\)\]/\1/p' | grep -v '^libcuda\.so' | tr '\n' ' ')"
fi

_ce_dirs=()
for _ce_d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda /usr/local/cuda-13*; do
  [[ -n "$_ce_d" ]] && _ce_dirs+=("$_ce_d/lib64" "$_ce_d/lib" "$_ce_d/targets/x86_64-linux/lib")
done
for _ce_py in python3 python "${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}"; do
  command -v "$_ce_py" >/dev/null 2>&1 || continue
  while IFS= read -r _ce_d; do _ce_dirs+=("$_ce_d"); done < <("$_ce_py" - <<'PY' 2>/dev/null
import glob, os, site
roots = list(site.getsitepackages()) + [site.getusersitepackages()]
for r in roots:
    for d in sorted(glob.glob(os.path.join(r, "nvidia", "cu13", "lib"))) + sorted(glob.glob(os.path.join(r, "nvidia", "*", "lib"))):
        print(d)
PY
)
done

_ce_add=()
_ce_missing=()
for _ce_l in $_ce_libs; do
  # Already on LD_LIBRARY_PATH or in the loader cache: nothing to do.
  _ce_found=""
  for _ce_d in ${LD_LIBRARY_PATH:+${LD_LIBRARY_PATH//:/ }} "${_ce_add[@]}"; do
    [[ -e "$_ce_d/$_ce_l" ]] && { _ce_found=1; break; }
  done
  [[ -z "$_ce_found" ]] && ldconfig -p 2>/dev/null | grep -q "	$_ce_l " && _ce_found=1
  if [[ -z "$_ce_found" ]]; then
    for _ce_d in "${_ce_dirs[@]}"; do
      if [[ -e "$_ce_d/$_ce_l" ]]; then _ce_add+=("$_ce_d"); _ce_found=1; break; fi
    done
  fi
  [[ -z "$_ce_found" ]] && _ce_missing+=("$_ce_l")
done

for _ce_d in "${_ce_add[@]}"; do
  case ":${LD_LIBRARY_PATH:-}:" in *":$_ce_d:"*) ;; *) LD_LIBRARY_PATH="$_ce_d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;; esac
done
export LD_LIBRARY_PATH
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
((${#_ce_missing[@]})) && echo "cuda_env.sh: not found anywhere: ${_ce_missing[*]} (install the CUDA 13 wheels, e.g. pip install nvidia-cublas==13.* nvidia-cuda-runtime==13.* nvidia-curand==10.4.* nvidia-cuda-nvrtc==13.*)" >&2
ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 ' || echo "cuda_env.sh: no libcuda.so.1 in the loader cache: is the NVIDIA driver installed?" >&2
case ":${LD_LIBRARY_PATH:-}:" in *cuda-toolkit/cuda/lib64/stubs*) echo "cuda_env.sh: the libcuda link stub is on LD_LIBRARY_PATH: remove it on a GPU machine" >&2 ;; esac
[[ -f "$_ce_bin" ]] && command -v ldd >/dev/null && ldd "$_ce_bin" | grep -E 'cu|nvrtc|not found'
unset _ce_bin _ce_libs _ce_dirs _ce_d _ce_py _ce_add _ce_missing _ce_l _ce_found
true
