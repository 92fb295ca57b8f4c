"""Python `tokenizers` baseline for benches/tokenize_mnli.rs: the same MNLI
train sample cycled to 100,000 pairs, XLM-R tokenizer.json, truncation to
128 (longest first), no padding, batch encoding on all cores.

Run: .venv/bin/python benches/tokenize_mnli.py
"""
import itertools
import json
import os
import time

import tokenizers
from tokenizers import Tokenizer

PAIRS = 100_000
REPEATS = 3
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "data")


def main():
    path = os.path.join(DATA, "intermediate", "mnli", "train.xnli_mt_en.first3000_per_label.jsonl")
    t = time.perf_counter()
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    read_s = time.perf_counter() - t
    pairs = list(itertools.islice(itertools.cycle([(r["premise"], r["hypothesis"]) for r in rows]), PAIRS))
    tok = Tokenizer.from_file(os.path.join(DATA, "xlmr", "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(128)  # longest_first, as stilts
    print(f"tokenizers {tokenizers.__version__}, TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', '(unset: parallel)')}, cores {os.cpu_count()}")
    print(f"read {len(rows)} pairs: {read_s:.3f} s ({len(rows) / read_s:.0f} pairs/s)")
    tok.encode_batch(pairs[:4096])  # warm-up
    for name in ["encode_batch", "encode_batch_fast"]:
        fn = getattr(tok, name, None)
        if fn is None:
            continue
        best = float("inf")
        for r in range(REPEATS):
            t = time.perf_counter()
            enc = fn(pairs)
            s = time.perf_counter() - t
            best = min(best, s)
            print(f"{name} run {r}: {len(enc)} pairs in {s:.3f} s = {len(enc) / s:.0f} examples/s")
        tokens = sum(len(e.ids) for e in enc)
        print(f"python {name} (max_length 128): best {PAIRS / best:.0f} examples/s, {tokens / best:.0f} tokens/s, {tokens / PAIRS:.1f} tokens/pair")


if __name__ == "__main__":
    main()
