"""The transformers + torch side of the trajectory comparison
(benches/fidelity/README.md), and the tools around it. Subcommands:

  init     --model BASE --out DIR [--seed 0] [--reinit-classifier]
           BASE as AutoModelForSequenceClassification with the three NLI
           labels, its head as transformers initialises it (a pretrained
           checkpoint has none: from_pretrained makes one, normal(0,
           initializer_range) weights and zero biases, under
           torch.manual_seed(--seed)); --reinit-classifier draws the classifier's
           Linear layers anew the same way (a checkpoint that already holds one).
           Saved with save_pretrained (safetensors), BASE's tokenizer files
           copied beside it: what stilts loads with model(DIR) and trains with
           new_head: false.
  order    --sample mnli_sample.json --out train.tsv [--seed 0]
           The examples stilts sampled (benches/fidelity/mnli_sample.rhai
           writes them, sorted by label as the file is), shuffled once with
           Python's random.Random(--seed), written as premise<TAB>hypothesis<TAB>label:
           the order both sides train in.
  train    --model DIR --train TSV --out OUT [--lr 1e-4 --batch 32 --max-length 128
           --warmup 0.1 --weight-decay 0.01 --max-grad-norm 1.0 --dropout 0 --seed 1
           --epochs 1]
           Trains DIR's model and head on TSV in file order (consecutive batches of
           --batch, dynamic padding; no shuffle), every dropout probability set to
           --dropout; AdamW (betas 0.9/0.999, eps 1e-8, decoupled weight decay except
           on biases and LayerNorm weights: transformers' Trainer rule), linear
           warm-up over ceil(--warmup * updates) then linear decay to 0
           (get_linear_schedule_with_warmup), gradient clipping at --max-grad-norm.
           Writes OUT/losses.json (the loss of every update) and OUT/model.
  predict  --model DIR [--model DIR2 ...] --out FILE (--xnli DIR --per-language N | --pairs TSV)
           [--max-length 128]
           Each model's argmax prediction and logits for each pair (XNLI dev: the
           first N pairs of each of the 15 languages), truncated longest-first to
           --max-length, batches of 64 sorted by length.
  compare  --stilts OUT_S --torch OUT_T [--predictions FILE] [--stilts-xnli FILE]
           The loss at every update on both sides and the largest difference; the
           two final models' predictions: how many pairs agree, the largest logit
           difference; one JSON line at the end.

Pinned versions: tests/fixtures/requirements.txt (torch 2.15.0,
transformers 5.24.0, tokenizers 0.23.3).
"""
import argparse
import csv
import json
import math
import os
import random
import shutil
import sys

LABELS = ["entailment", "neutral", "contradiction"]
LANGS = ["ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"]
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json"]


def torch_setup(threads):
    import torch

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    return torch


def read_tsv(path, limit=0, language=False):
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if not r:
                continue
            if language:
                r = r[1:]
            rows.append((r[0], r[1], LABELS.index(r[2])))
            if limit and len(rows) == limit:
                break
    return rows


def copy_tokenizer(src, dst):
    for f in TOKENIZER_FILES:
        if os.path.exists(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), os.path.join(dst, f))


def cmd_init(a):
    torch = torch_setup(a.threads)
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(a.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        a.model,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={l: i for i, l in enumerate(LABELS)},
    )
    if a.reinit_classifier:
        std = model.config.initializer_range
        with torch.no_grad():
            for m in model.classifier.modules():
                if isinstance(m, torch.nn.Linear):
                    m.weight.normal_(0.0, std)
                    m.bias.zero_()
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out)
    copy_tokenizer(a.model, a.out)
    head = [n for n, _ in model.named_parameters() if n.startswith(("classifier", "bert.pooler", "roberta.pooler"))]
    print(json.dumps({"init": a.out, "architecture": type(model).__name__, "head": head}))


def cmd_order(a):
    with open(a.sample, encoding="utf-8") as f:
        sample = json.load(f)
    sample = sample.get("value", sample) if isinstance(sample, dict) else sample
    rows = [(e["a"], e["b"], e["label"]) for e in sample]
    random.Random(a.seed).shuffle(rows)
    with open(a.out, "w", encoding="utf-8") as f:
        for p, h, l in rows:
            for text in (p, h):
                if "\t" in text or "\n" in text:
                    sys.exit(f"order: a text holds a tab or newline: {text!r}")
            f.write(f"{p}\t{h}\t{l}\n")
    print(json.dumps({"order": a.out, "examples": len(rows), "seed": a.seed}))


def encode(tok, pairs, max_length):
    return tok([p for p, _ in pairs], [h for _, h in pairs], truncation="longest_first",
               max_length=max_length)["input_ids"]


def collate(torch, ids, rows, pad):
    width = max(len(ids[i]) for i in rows)
    x = torch.full((len(rows), width), pad, dtype=torch.long)
    for r, i in enumerate(rows):
        x[r, :len(ids[i])] = torch.tensor(ids[i])
    return x, (x != pad).long()


def cmd_train(a):
    torch = torch_setup(a.threads)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    torch.manual_seed(a.seed)
    tok = AutoTokenizer.from_pretrained(a.model)
    d = a.dropout
    model = AutoModelForSequenceClassification.from_pretrained(
        a.model, hidden_dropout_prob=d, attention_probs_dropout_prob=d, classifier_dropout=d)
    if [model.config.id2label[i] for i in range(len(LABELS))] != LABELS:
        sys.exit(f"train: {a.model}'s labels are {model.config.id2label}, not {LABELS}")
    pad = model.config.pad_token_id
    rows = read_tsv(a.train)
    ids = encode(tok, [(p, h) for p, h, _ in rows], a.max_length)
    labels = torch.tensor([l for _, _, l in rows])
    batches = [list(range(s, min(s + a.batch, len(rows)))) for s in range(0, len(rows), a.batch)] * a.epochs
    total = len(batches)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_decay = lambda n: n.endswith(".bias") or "LayerNorm" in n
    opt = torch.optim.AdamW([
        {"params": [p for n, p in named if not no_decay(n)], "weight_decay": a.weight_decay},
        {"params": [p for n, p in named if no_decay(n)], "weight_decay": 0.0},
    ], lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    sched = get_linear_schedule_with_warmup(opt, math.ceil(a.warmup * total), total)
    model.train()
    losses, norms = [], []
    for rows_ in batches:
        x, mask = collate(torch, ids, rows_, pad)
        out = model(input_ids=x, attention_mask=mask, labels=labels[rows_])
        out.loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_([p for _, p in named], a.max_grad_norm)))
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(out.loss.item())
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "losses.json"), "w") as f:
        json.dump(losses, f)
    with open(os.path.join(a.out, "grad_norms.json"), "w") as f:
        json.dump(norms, f)
    model.save_pretrained(os.path.join(a.out, "model"))
    copy_tokenizer(a.model, os.path.join(a.out, "model"))
    print(json.dumps({"side": "torch", "updates": total, "first_loss": losses[0], "last_loss": losses[-1]}))


def cmd_predict(a):
    torch = torch_setup(a.threads)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if a.pairs:
        sets = {"pairs": read_tsv(a.pairs)}
    else:
        sets = {l: read_tsv(f"{a.xnli}/dev-{l}.tsv", a.per_language) for l in LANGS}
    out = {"models": a.model, "max_length": a.max_length, "by_model": []}
    for path in a.model:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        pad = model.config.pad_token_id
        per = {}
        for name, rows in sets.items():
            ids = encode(tok, [(p, h) for p, h, _ in rows], a.max_length)
            order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
            logits = [None] * len(ids)
            with torch.inference_mode():
                for s in range(0, len(order), 64):
                    chunk = order[s:s + 64]
                    x, mask = collate(torch, ids, chunk, pad)
                    lg = model(input_ids=x, attention_mask=mask).logits
                    for k, i in enumerate(chunk):
                        logits[i] = lg[k].tolist()
            pred = [max(range(len(l)), key=lambda j: l[j]) for l in logits]
            per[name] = {"pred": pred, "logits": logits, "gold": [r[2] for r in rows],
                         "accuracy": 100.0 * sum(p == r[2] for p, r in zip(pred, rows)) / len(rows)}
        out["by_model"].append(per)
    with open(a.out, "w") as f:
        json.dump(out, f)
    accs = [{k: round(v["accuracy"], 2) for k, v in per.items()} for per in out["by_model"]]
    print(json.dumps({"predictions": a.out, "accuracy": accs}))


def unpack(packed):
    # stilts keeps right/wrong as "N:hex", the first example the high bit.
    n, h = packed.split(":")
    b = bytes.fromhex(h + "0" * (len(h) % 2))
    return [(b[i // 8] >> (7 - i % 8)) & 1 for i in range(int(n))]


def cmd_compare(a):
    def load(p):
        with open(p) as f:
            v = json.load(f)
        return v.get("value", v) if isinstance(v, dict) else v

    ls, lt = load(os.path.join(a.stilts, "losses.json")), load(os.path.join(a.torch, "losses.json"))
    if len(ls) != len(lt):
        sys.exit(f"compare: stilts made {len(ls)} updates, torch {len(lt)}")
    diffs = [abs(x - y) for x, y in zip(ls, lt)]
    print("| update | stilts loss | torch loss | difference |")
    print("| ---: | ---: | ---: | ---: |")
    for i, (x, y) in enumerate(zip(ls, lt)):
        print(f"| {i + 1} | {x:.6f} | {y:.6f} | {x - y:+.2e} |")
    worst = max(range(len(diffs)), key=lambda i: diffs[i])
    result = {"updates": len(ls), "max_loss_diff": max(diffs), "at_update": worst + 1,
              "mean_loss_diff": sum(diffs) / len(diffs)}
    if not a.predictions:
        print()
        print(json.dumps(result))
        return
    with open(a.predictions) as f:
        pr = json.load(f)
    s_by, t_by = pr["by_model"][0], pr["by_model"][1]
    agree = total = 0
    max_logit = 0.0
    rows = []
    for name in s_by:
        sp, tp = s_by[name]["pred"], t_by[name]["pred"]
        same = sum(x == y for x, y in zip(sp, tp))
        agree += same
        total += len(sp)
        for u, v in zip(s_by[name]["logits"], t_by[name]["logits"]):
            max_logit = max(max_logit, max(abs(x - y) for x, y in zip(u, v)))
        rows.append((name, s_by[name]["accuracy"], t_by[name]["accuracy"], same, len(sp)))
    print()
    print("| part | stilts model (transformers' forward) | torch model | same prediction |")
    print("| --- | ---: | ---: | ---: |")
    for name, x, y, same, n in rows:
        print(f"| {name} | {x:.1f} | {y:.1f} | {same} of {n} |")
    result.update({"pairs": total, "agree": agree, "agreement": 100.0 * agree / total,
                   "max_logit_diff": max_logit,
                   "stilts_avg": sum(r[1] for r in rows) / len(rows),
                   "torch_avg": sum(r[2] for r in rows) / len(rows)})
    if a.stilts_xnli:
        # stilts' own evaluation of its model: its right/wrong per pair
        # against transformers' forward of the same weights.
        r = load(a.stilts_xnli)
        by = r["by_lang"]
        differ = 0
        for name in s_by:
            mine = unpack(by[name]["correct"][0])
            theirs = [int(p == g) for p, g in zip(s_by[name]["pred"], s_by[name]["gold"])]
            differ += sum(x != y for x, y in zip(mine, theirs))
        result["stilts_eval_avg"] = sum(by[n]["value"] for n in s_by) / len(s_by)
        result["stilts_eval_pairs_scored_differently"] = differ
    print()
    print(json.dumps(result))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("init")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reinit-classifier", action="store_true")
    p = sub.add_parser("order")
    p.add_argument("--sample", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("train")
    p.add_argument("--model", required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--warmup", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--max-grad-norm", type=float, default=1.0)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p = sub.add_parser("predict")
    p.add_argument("--model", action="append", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--xnli")
    p.add_argument("--per-language", type=int, default=90)
    p.add_argument("--pairs")
    p.add_argument("--max-length", type=int, default=128)
    p = sub.add_parser("compare")
    p.add_argument("--stilts", required=True)
    p.add_argument("--torch", required=True)
    p.add_argument("--predictions")
    p.add_argument("--stilts-xnli")
    a = ap.parse_args()
    {"init": cmd_init, "order": cmd_order, "train": cmd_train, "predict": cmd_predict,
     "compare": cmd_compare}[a.cmd](a)


if __name__ == "__main__":
    main()
