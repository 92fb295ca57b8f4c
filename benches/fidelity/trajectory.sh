#!/usr/bin/env bash
# Trajectory parity, stilts against transformers + torch, on the real
# multilingual-e5-small (benches/fidelity/README.md):
#
#   STILTS=path/to/stilts PYTHON=path/to/python bash benches/fidelity/trajectory.sh ME5_DIR [OUT]
#
# ME5_DIR: the imported model (tools/get_me5_small.sh ME5_DIR); OUT: the
# work folder (default target/fidelity). Steps: the 1,920-pair MNLI sample
# (stilts), shuffled once into train.tsv (Python's random, seed 0); the
# 3-way head initialised by transformers and saved with the encoder (init/);
# each side trains it 60 updates in that order (dropout 0, lr 1e-4, batch 32,
# 10% warm-up, weight decay 0.01, clipping 1.0, max length 128); both final
# models' predictions on the first 90 XNLI dev pairs of each language
# (transformers' forward of each side's saved weights); the comparison.
set -euo pipefail
me5=${1:?usage: trajectory.sh ME5_DIR [OUT]}
out=${2:-target/fidelity}
stilts=${STILTS:-target/debug/stilts}
python=${PYTHON:-.venv/bin/python}
threads=${THREADS:-2}
xnli=${XNLI:-../shared/data/xnli}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
"$stilts" run benches/fidelity/mnli_sample.rhai --no-report --threads "$threads" --set "out=$out/mnli_sample.json"
"$python" benches/fidelity/reference.py order --sample "$out/mnli_sample.json" --out "$out/train.tsv" --seed 0
"$python" benches/fidelity/reference.py --threads "$threads" init --model "$me5" --out "$out/init" --seed 0
rm -rf "$out/stilts" "$out/torch"
"$stilts" run benches/fidelity/trajectory.rhai --no-report --threads "$threads" \
  --set "init=$out/init" --set "train=$out/train.tsv" --set "out=$out/stilts" --set "xnli=$xnli"
"$python" benches/fidelity/reference.py --threads "$threads" train --model "$out/init" --train "$out/train.tsv" --out "$out/torch"
"$python" benches/fidelity/reference.py --threads "$threads" predict --model "$out/stilts/model" --model "$out/torch/model" \
  --xnli "$xnli" --per-language 90 --out "$out/predictions.json"
"$python" benches/fidelity/reference.py compare --stilts "$out/stilts" --torch "$out/torch" \
  --predictions "$out/predictions.json" --stilts-xnli "$out/stilts/xnli.json" | tee "$out/compare.md"
