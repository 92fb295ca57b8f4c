#!/usr/bin/env bash
# Tatoeba (36 languages, XTREME's protocol) with the real multilingual-e5-small:
# stilts against the same computation in transformers, one after the other on
# this machine, each run once per round (ROUNDS, default 1), with nice.
#
#   bash benches/tatoeba.sh ME5_DIR [THREADS]
#   LANGS=sw,te bash benches/tatoeba.sh ME5_DIR 2     # a subset
#
# ME5_DIR: tools/get_me5_small.sh ME5_DIR. STILTS: the stilts binary (default
# target/release/stilts). PYTHON: the pinned reference environment (default
# target/pyref/bin/python). Prints each side's JSON line (seconds spent on
# tokenizing, encoding and searching; loading the model not counted) and
# compares the per-language accuracies and retrieved sentences.
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1
threads=${2:-$(nproc)}
stilts=${STILTS:-target/release/stilts}
python=${PYTHON:-target/pyref/bin/python}
rounds=${ROUNDS:-1}
data=${DATA:-../shared/data}
langs=${LANGS:-}   # e.g. LANGS=sw,te: a subset (a quick check); all 36 by default
rl=(); pl=()
if [ -n "$langs" ]; then
  rl=(--set "languages=[\"${langs//,/\", \"}\"]"); pl=(--languages "$langs")
fi
mkdir -p target/tatoeba_bench
for r in $(seq "$rounds"); do
  echo "round $r: stilts ($threads threads)"
  RAYON_NUM_THREADS=$threads nice "$stilts" run benches/tatoeba.rhai --no-report --threads "$threads" \
    --set "model=$model" --set "data=$data" --set "out=target/tatoeba_bench/stilts.json" "${rl[@]}" | tail -n 1
  for mode in xtreme sorted; do
    echo "round $r: transformers, $mode ($threads threads)"
    nice "$python" benches/tatoeba_reference.py "$model" --data "$data/tatoeba" --mode "$mode" \
      --threads "$threads" --found "target/tatoeba_bench/found_$mode.json" "${pl[@]}" | tail -n 1 \
      | tee "target/tatoeba_bench/ref_$mode.json"
  done
done
# Per language: stilts against transformers (XTREME's procedure).
"$python" - <<'PY'
import json
s = json.load(open("target/tatoeba_bench/stilts.json"))
by = s.get("by_lang") or s.get("value", {}).get("by_lang")
ref = json.loads(open("target/tatoeba_bench/ref_xtreme.json").read().strip().splitlines()[-1])
r = ref["accuracy"]
found = json.load(open("target/tatoeba_bench/found_xtreme.json"))


def bits(packed):
    # stilts keeps right/wrong as "N:hex", the first query the high bit.
    n, h = packed.split(":")
    b = bytes.fromhex(h + "0" * (len(h) % 2))
    return [(b[i // 8] >> (7 - i % 8)) & 1 for i in range(int(n))]


rows = [(l, by[l]["value"], r[l]) for l in r]
print("| lang | stilts | transformers | queries right in one, wrong in the other |")
print("| --- | ---: | ---: | ---: |")
for l, a, b in rows:
    mine = bits(by[l]["correct"][0])
    theirs = [int(p == q) for q, p in enumerate(found[l])]
    d = sum(x != y for x, y in zip(mine, theirs))
    print(f"| {l} | {a:.1f} | {b:.1f} | {d} of {len(theirs)} |")
n = len(rows)
print(f"| avg | {sum(a for _, a, _ in rows) / n:.2f} | {ref['average']:.2f} | |")
PY
