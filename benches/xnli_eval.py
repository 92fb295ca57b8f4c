"""transformers reference for `stilts bench-xnli`: evaluates the same model
directory on the XNLI test files (15 languages, 75,150 pairs) the way stilts
does: fast tokenizer, pairs truncated longest-first to --max-length,
batches of --batch-size sorted by length (longest first), dynamic padding,
inference mode, argmax. Prints one JSON object with pairs_per_s.

  python benches/xnli_eval.py MODEL_DIR [--data ../shared/data/xnli] [--batch-size 64]
      [--max-length 128] [--limit N] [--device cuda --dtype bf16]
"""
import argparse
import csv
import json
import sys
import time

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

LANGUAGES = "ar bg de el en es fr hi ru sw th tr ur vi zh".split()


def read(path, limit):
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if limit and len(rows) >= limit:
                break
            rows.append(r)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--data", default="../shared/data/xnli")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForSequenceClassification.from_pretrained(a.model).to(dev).eval()
    label_id = {v: int(k) for k, v in model.config.id2label.items()}
    autocast = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=a.dtype == "bf16")
    langs, total_pairs, total_s = [], 0, 0.0
    for lang in LANGUAGES:
        rows = read(f"{a.data}/test-{lang}.tsv", a.limit)
        t0 = time.perf_counter()
        enc = tok([r[0] for r in rows], [r[1] for r in rows], truncation=True, max_length=a.max_length)
        tokenize_s = time.perf_counter() - t0
        order = sorted(range(len(rows)), key=lambda i: -len(enc["input_ids"][i]))
        correct = 0
        with torch.inference_mode(), autocast:
            for s in range(0, len(order), a.batch_size):
                idx = order[s:s + a.batch_size]
                batch = tok.pad({"input_ids": [enc["input_ids"][i] for i in idx],
                                 "attention_mask": [enc["attention_mask"][i] for i in idx]},
                                return_tensors="pt")
                logits = model(input_ids=batch["input_ids"].to(dev),
                               attention_mask=batch["attention_mask"].to(dev)).logits
                pred = logits.argmax(-1).cpu().tolist()
                correct += sum(int(p == label_id[rows[i][2]]) for p, i in zip(pred, idx))
        seconds = time.perf_counter() - t0
        langs.append({"language": lang, "pairs": len(rows), "accuracy": 100.0 * correct / len(rows),
                      "tokenize_s": tokenize_s, "evaluate_s": seconds})
        total_pairs += len(rows)
        total_s += seconds
        print(f"{lang}: {len(rows)} pairs in {seconds:.1f} s", file=sys.stderr)
    print(json.dumps({"model": a.model, "device": str(dev), "batch_size": a.batch_size,
                      "max_length": a.max_length, "pairs": total_pairs, "evaluate_s": total_s,
                      "pairs_per_s": total_pairs / total_s, "languages": langs,
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


main()
