"""The job of `benches/finetune_stilts.rhai` in transformers + torch: fine-tune
the imported multilingual-e5-small directory on the same MNLI sample (the
examples stilts drew, read from the JSON file it wrote), evaluate zero-shot on
the first N pairs of each XNLI dev file, print per-language accuracy and the
train / eval wall time.

  .venv/bin/python benches/finetune_reference.py --model runs/me5-small \
      --sample target/finetune_bench/mnli_sample.json --xnli ../shared/data/xnli \
      --per-language 90 --seed 1 [--freeze-embeddings]

Same as stilts: BertForSequenceClassification with a fresh pooler and
classifier (normal(0, initializer_range), zero bias: transformers'
_init_weights, the rule stilts' fresh heads follow), max length 128 with
longest-first truncation, one epoch, batch 32, AdamW lr 1e-4 (betas 0.9/0.999,
eps 1e-8, weight decay 0.01 except biases and LayerNorm weights), linear
warm-up over ceil(10%) of the updates then linear decay to 0, gradient
clipping at 1.0, dropout as in config.json. Batches are made as stilts makes
them (crates/stilts-tasks/src/batch.rs): the examples shuffled, cut into buckets of 50
batches, each bucket sorted by length and cut into batches, the batches
shuffled; dynamic padding. The shuffles come from torch's generator seeded
with --seed, so the order differs from stilts' (ChaCha8) but the padding does
not. Evaluation: dropout off, torch.inference_mode, batches of 64 sorted by
length. --freeze-embeddings sets requires_grad=False on bert.embeddings.*
(no gradient, and AdamW is not given them: no state).
"""
import argparse
import json
import math
import time

import torch
from transformers import AutoTokenizer, BertForSequenceClassification, get_linear_schedule_with_warmup

LABELS = ["entailment", "neutral", "contradiction"]
LANGS = ["ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"]
BUCKET_BATCHES = 50


def encode(tok, pairs, max_length):
    enc = tok([p for p, _ in pairs], [h for _, h in pairs], truncation="longest_first",
              max_length=max_length)
    return enc["input_ids"]


def collate(ids, rows, pad):
    width = max(len(ids[i]) for i in rows)
    x = torch.full((len(rows), width), pad, dtype=torch.long)
    for r, i in enumerate(rows):
        x[r, :len(ids[i])] = torch.tensor(ids[i])
    return x, (x != pad).long()


def train_batches(lens, size, gen):
    idx = torch.randperm(len(lens), generator=gen).tolist()
    batches = []
    for s in range(0, len(idx), size * BUCKET_BATCHES):
        bucket = sorted(idx[s:s + size * BUCKET_BATCHES], key=lambda i: lens[i])
        batches += [bucket[k:k + size] for k in range(0, len(bucket), size)]
    order = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i] for i in order]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--sample", required=True, help="the MNLI sample stilts wrote (finetune_stilts.rhai)")
    ap.add_argument("--xnli", default="../shared/data/xnli")
    ap.add_argument("--per-language", type=int, default=90)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--freeze-embeddings", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    tok = AutoTokenizer.from_pretrained(a.model)
    model = BertForSequenceClassification.from_pretrained(a.model, num_labels=3)
    pad = model.config.pad_token_id
    assert pad == tok.pad_token_id, (pad, tok.pad_token_id)
    with open(a.sample) as f:
        sample = json.load(f)
    sample = sample.get("value", sample) if isinstance(sample, dict) else sample
    pairs = [(e["a"], e["b"]) for e in sample]
    labels = torch.tensor([LABELS.index(e["label"]) for e in sample])
    ids = encode(tok, pairs, a.max_length)
    lens = [len(x) for x in ids]

    if a.freeze_embeddings:
        for p in model.bert.embeddings.parameters():
            p.requires_grad = False
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_decay = lambda n: n.endswith(".bias") or "LayerNorm" in n
    opt = torch.optim.AdamW([
        {"params": [p for n, p in named if not no_decay(n)], "weight_decay": 0.01},
        {"params": [p for n, p in named if no_decay(n)], "weight_decay": 0.0},
    ], lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    gen = torch.Generator().manual_seed(a.seed)
    batches = train_batches(lens, a.batch, gen)
    total = len(batches)
    sched = get_linear_schedule_with_warmup(opt, math.ceil(0.1 * total), total)
    model.train()
    t0 = time.perf_counter()
    losses = []
    for rows in batches:
        x, mask = collate(ids, rows, pad)
        out = model(input_ids=x, attention_mask=mask, labels=labels[rows])
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(out.loss.item())
    train_s = time.perf_counter() - t0

    model.eval()
    acc = {}
    t1 = time.perf_counter()
    for lang in LANGS:
        rows = []
        with open(f"{a.xnli}/dev-{lang}.tsv", encoding="utf-8") as f:
            for line in f:
                p, h, l = line.rstrip("\n").split("\t")[:3]
                rows.append((p, h, LABELS.index(l)))
                if len(rows) == a.per_language:
                    break
        xids = encode(tok, [(p, h) for p, h, _ in rows], a.max_length)
        order = sorted(range(len(xids)), key=lambda i: -len(xids[i]))
        correct = 0
        with torch.inference_mode():
            for s in range(0, len(order), 64):
                chunk = order[s:s + 64]
                x, mask = collate(xids, chunk, pad)
                pred = model(input_ids=x, attention_mask=mask).logits.argmax(-1)
                correct += sum(int(pred[k]) == rows[i][2] for k, i in enumerate(chunk))
        acc[lang] = 100.0 * correct / len(rows)
    eval_s = time.perf_counter() - t1
    avg = sum(acc.values()) / len(acc)
    for lang in LANGS:
        print(f"{lang}\t{acc[lang]:.1f}")
    print(f"avg\t{avg:.2f}")
    print(json.dumps({"side": "torch", "seed": a.seed, "freeze_embeddings": a.freeze_embeddings,
                      "updates": total, "train_s": round(train_s, 1),
                      "s_per_update": round(train_s / total, 3), "eval_s": round(eval_s, 1),
                      "first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4),
                      "avg": round(avg, 2), "by_lang": acc}))


if __name__ == "__main__":
    main()
