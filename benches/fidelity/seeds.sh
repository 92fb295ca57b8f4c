#!/usr/bin/env bash
# Equivalence over seeds (benches/fidelity/README.md): the fine-tuning job of
# benches/finetune_stilts.rhai (multilingual-e5-small, 1,920 MNLI pairs, 60
# updates, dropout and shuffling on, a fresh head from each side's seed;
# XNLI dev, the first 90 pairs of each of the 15 languages) on both sides,
# seed by seed, alternating stilts and transformers + torch; every seed's
# per-language accuracy and average goes to OUT/seeds.jsonl as it finishes,
# and a seed already there is skipped (the script can be stopped and run
# again). Then `welch.py OUT/seeds.jsonl` gives the interval.
#
#   STILTS=path/to/stilts PYTHON=path/to/python bash benches/fidelity/seeds.sh ME5_DIR "1 2 3 4 5 6" [OUT]
set -euo pipefail
me5=${1:?usage: seeds.sh ME5_DIR SEEDS [OUT]}
seeds=${2:-1 2 3 4 5 6}
out=${3:-target/fidelity/seeds}
stilts=${STILTS:-target/debug/stilts}
python=${PYTHON:-.venv/bin/python}
threads=${THREADS:-2}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
touch "$out/seeds.jsonl"
have() { grep -q "\"side\": \"$1\", \"seed\": $2[,}]" "$out/seeds.jsonl"; }
for seed in $seeds; do
  if ! have stilts "$seed"; then
    "$stilts" run benches/finetune_stilts.rhai --no-report --threads "$threads" \
      --set "model=$me5" --set "seed=$seed" --set "out=$out" > "$out/stilts_$seed.log"
    "$python" - "$out/stilts_$seed.log" "$seed" >> "$out/seeds.jsonl" <<'PY'
import json, sys
acc = {}
for line in open(sys.argv[1]):
    parts = line.rstrip("\n").split("\t")
    if len(parts) == 2 and len(parts[0]) in (2, 3):
        acc[parts[0]] = float(parts[1])
avg = acc.pop("avg")
print(json.dumps({"side": "stilts", "seed": int(sys.argv[2]), "avg": avg, "by_lang": acc}))
PY
  fi
  if ! have torch "$seed"; then
    "$python" benches/finetune_reference.py --model "$me5" --sample "$out/mnli_sample.json" \
      --per-language 90 --seed "$seed" --threads "$threads" > "$out/torch_$seed.log"
    tail -n 1 "$out/torch_$seed.log" | "$python" -c '
import json, sys
r = json.loads(sys.stdin.read())
print(json.dumps({"side": "torch", "seed": r["seed"], "avg": r["avg"], "by_lang": r["by_lang"]}))' >> "$out/seeds.jsonl"
  fi
done
"$python" benches/fidelity/welch.py "$out/seeds.jsonl"
