#!/usr/bin/env bash
# Runs `stilts bench` and the PyTorch reference on the same shape, one after
# the other on the same machine, and prints both and the ratio stilts/PyTorch.
#   bash benches/compare.sh [shape flags, e.g. --hidden 256 --layers 4 --batch 16 --seq 128 --steps 5]
# Uses $STILTS (default target/release/stilts, from cargo build --release; the
# GPU build is target/cuda/release/stilts) and $PYTHON (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
STILTS=${STILTS:-target/release/stilts}
ours=$("$STILTS" bench "$@")
theirs=$("$PYTHON" benches/torch_reference.py "$@")
python3 - "$ours" "$theirs" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for k in ("train_ms", "eval_ms"):
    if a.get(k) is None or b.get(k) is None:
        continue
    print(f"{k:9s} stilts {a[k]:9.1f}  pytorch {b[k]:9.1f}  ratio {a[k] / b[k]:.2f}")
PY
