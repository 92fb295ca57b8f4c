"""PyTorch + transformers reference for `stilts bench`: the same XLM-R shape,
batch and steps; times a training step (forward, backward, clipping,
torch.optim.AdamW) and an evaluation forward (inference mode), median of
N after one warm-up. Prints one JSON object with train_ms and eval_ms.

  python benches/torch_reference.py --vocab 250002 --hidden 256 --layers 4 \
      --heads 4 --ffn 1024 --batch 16 --seq 128 --steps 5 [--device cuda --dtype bf16]
      [--size me5-small|mminilm|mbert|xlmr-base|xlmr-large|xlmr-xl|xlmr-xxl] [--checkpointing] [--eval-only]
      [--rows-from STILTS_BENCH.json]

--rows-from takes the JSON that `stilts bench --lengths xnli|mnli` printed and
times the very batches it timed (each step's rows, padded to the batch's
longest, with the attention mask), instead of --batch x --seq. The training
step is also split into forward (with the loss), backward, and optimizer
(clipping and AdamW), as stilts splits it.

Also reports peak memory: torch.cuda.max_memory_allocated on a GPU, the
process's peak resident set (ru_maxrss) on the CPU.
"""
import argparse
import json
import resource
import statistics
import time

import torch
from transformers import (BertConfig, BertForSequenceClassification, XLMRobertaConfig, XLMRobertaForSequenceClassification, XLMRobertaXLConfig,
                          XLMRobertaXLForSequenceClassification)

# The shapes of stilts' named sizes (crates/stilts-model/src/sizes.rs); XL/XXL are pre-LayerNorm.
SIZES = {
    "mminilm": dict(vocab=250037, hidden=384, layers=12, heads=12, ffn=1536, xl=False, bert=True),
    "me5-small": dict(vocab=250037, hidden=384, layers=12, heads=12, ffn=1536, xl=False, bert=True),
    "mbert": dict(vocab=119547, hidden=768, layers=12, heads=12, ffn=3072, xl=False, bert=True),
    "xlmr-base": dict(vocab=250002, hidden=768, layers=12, heads=12, ffn=3072, xl=False),
    "xlmr-large": dict(vocab=250002, hidden=1024, layers=24, heads=16, ffn=4096, xl=False),
    "xlmr-xl": dict(vocab=250880, hidden=2560, layers=36, heads=32, ffn=10240, xl=True),
    "xlmr-xxl": dict(vocab=250880, hidden=4096, layers=48, heads=32, ffn=16384, xl=True),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size")
    ap.add_argument("--vocab", type=int, default=250002)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--checkpointing", action="store_true", help="gradient checkpointing")
    ap.add_argument("--xl", action="store_true", help="pre-LayerNorm (XLM-R XL) architecture")
    ap.add_argument("--eval-only", action="store_true", help="time only the evaluation forward")
    ap.add_argument("--rows-from", help="the JSON of a `stilts bench --lengths` run: time its batches")
    ap.add_argument("--bert", action="store_true", help="BERT architecture (mBERT, multilingual-e5)")
    a = ap.parse_args()
    if a.size:
        for k, v in SIZES[a.size].items():
            setattr(a, k, v)
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    config_cls, model_cls = ((XLMRobertaXLConfig, XLMRobertaXLForSequenceClassification) if a.xl
                             else (BertConfig, BertForSequenceClassification) if a.bert
                             else (XLMRobertaConfig, XLMRobertaForSequenceClassification))
    cfg = config_cls(vocab_size=a.vocab, hidden_size=a.hidden, num_hidden_layers=a.layers,
                     num_attention_heads=a.heads, intermediate_size=a.ffn,
                     max_position_embeddings=max(514, a.seq + 2), num_labels=3)
    torch.manual_seed(0)
    model = model_cls(cfg).to(dev)
    if a.checkpointing:
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    g = torch.Generator().manual_seed(0)
    shapes = [[a.seq] * a.batch]
    if a.rows_from:
        with open(a.rows_from) as f:
            shapes = json.load(f)["spec"]["row_lengths"]
    batches = []
    for lens in shapes:
        width = max(lens)
        ids = torch.full((len(lens), width), 1, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, n in enumerate(lens):
            ids[r, :n] = torch.randint(3, a.vocab, (n,), generator=g)
            ids[r, 0], ids[r, n - 1] = 0, 2
            mask[r, :n] = 1
        labels = torch.arange(len(lens)) % 3
        batches.append((ids.to(dev), mask.to(dev), labels.to(dev)))
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    nodecay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": nodecay, "weight_decay": 0.0}], lr=1e-5, eps=1e-8)
    autocast = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=a.dtype == "bf16")

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    train, evals, fw, bw, op = [], [], [], [], []
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model.train()
    for i in range(0 if a.eval_only else 1 + a.steps):
        ids, mask, labels = batches[i % len(batches)]
        sync()
        t0 = time.perf_counter()
        with autocast:
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.item()
        t1 = time.perf_counter()
        loss.backward()
        sync()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        t3 = time.perf_counter()
        if i > 0:
            train.append((t3 - t0) * 1e3)
            fw.append((t1 - t0) * 1e3)
            bw.append((t2 - t1) * 1e3)
            op.append((t3 - t2) * 1e3)
    peak = (torch.cuda.max_memory_allocated() if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    model.eval()
    with torch.inference_mode():
        for i in range(1 + a.steps):
            ids, mask, _ = batches[i % len(batches)]
            sync()
            t0 = time.perf_counter()
            with autocast:
                model(input_ids=ids, attention_mask=mask).logits.float().cpu()
            sync()
            if i > 0:
                evals.append((time.perf_counter() - t0) * 1e3)
    med = lambda v: statistics.median(v) if v else None
    print(json.dumps({"train_ms": med(train), "eval_ms": statistics.median(evals),
                      "forward_ms": med(fw), "backward_ms": med(bw), "optimizer_ms": med(op),
                      "train_samples": train, "eval_samples": evals, "device": str(dev),
                      "peak_train_bytes": peak, "parameters": sum(p.numel() for p in model.parameters()),
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


main()
