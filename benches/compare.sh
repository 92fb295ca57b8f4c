#!/usr/bin/env bash
# Runs `stilts bench` and the PyTorch reference on the same shape, one after
# the other on the same machine, and prints both and the ratio stilts/PyTorch.
#   bash benches/compare.sh [shape flags, e.g. --hidden 256 --layers 4 --batch 16 --seq 128 --steps 5]
#   bash benches/compare.sh --size me5-small --batch 32 --seq 128 --lengths mnli --steps 3
# (--lengths xnli|mnli: real batches, which the reference gets through --rows-from)
# Uses $STILTS (default target/release/stilts, from cargo build --release; the
# GPU build is target/cuda/release/stilts) and $PYTHON (default .venv/bin/python).
# REPEAT=N runs N alternating pairs and ends with the median of each side and
# of the ratios (a shared machine's speed drifts between runs; pairs that
# alternate see the same drift).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
STILTS=${STILTS:-target/release/stilts}
# --lengths xnli|mnli (and --data DIR) are stilts' own: the reference gets
# the batches stilts timed instead (--rows-from its JSON).
torch_args=()
lengths=0
skip=0
for a in "$@"; do
  if [ "$skip" = 1 ]; then skip=0; continue; fi
  case "$a" in
    --lengths) lengths=1; skip=1 ;;
    --data) skip=1 ;;
    --lengths=*) lengths=1 ;;
    --data=*) ;;
    *) torch_args+=("$a") ;;
  esac
done
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
runs=()
for _ in $(seq "${REPEAT:-1}"); do
  ours=$("$STILTS" bench "$@")
  if [ "$lengths" = 1 ]; then
    printf '%s' "$ours" > "$rows"
    theirs=$("$PYTHON" benches/torch_reference.py "${torch_args[@]}" --rows-from "$rows")
  else
    theirs=$("$PYTHON" benches/torch_reference.py "${torch_args[@]}")
  fi
  runs+=("$ours" "$theirs")
done
python3 - "${runs[@]}" <<'PY'
import json, statistics, sys
docs = [json.loads(a) for a in sys.argv[1:]]
pairs = list(zip(docs[0::2], docs[1::2]))
for k in ("train_ms", "forward_ms", "backward_ms", "optimizer_ms", "eval_ms"):
    got = [(a[k], b[k]) for a, b in pairs if a.get(k) is not None and b.get(k) is not None]
    for a, b in got:
        print(f"{k:9s} stilts {a:9.1f}  pytorch {b:9.1f}  ratio {a / b:.2f}")
    if len(got) > 1:
        med = lambda v: statistics.median(v)
        print(f"{k:9s} median of {len(got)}: stilts {med([a for a, _ in got]):.1f}  "
              f"pytorch {med([b for _, b in got]):.1f}  ratio {med([a / b for a, b in got]):.2f}")
PY
