"""PyTorch + transformers reference for `stilts bench`: the same XLM-R shape,
batch and steps; times a training step (forward, backward, clipping,
torch.optim.AdamW) and an evaluation forward (inference mode), median of
N after one warm-up. Prints one JSON object with train_ms and eval_ms.

  python benches/torch_reference.py --vocab 250002 --hidden 256 --layers 4 \
      --heads 4 --ffn 1024 --batch 16 --seq 128 --steps 5 [--device cuda --dtype bf16]
      [--size xlmr-base|xlmr-large|xlmr-xl|xlmr-xxl] [--checkpointing] [--eval-only]

Also reports peak memory: torch.cuda.max_memory_allocated on a GPU, the
process's peak resident set (ru_maxrss) on the CPU.
"""
import argparse
import json
import resource
import statistics
import time

import torch
from transformers import (XLMRobertaConfig, XLMRobertaForSequenceClassification, XLMRobertaXLConfig,
                          XLMRobertaXLForSequenceClassification)

# The shapes of stilts' size registry (src/model/registry.rs); XL/XXL are pre-LayerNorm.
SIZES = {
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
    a = ap.parse_args()
    if a.size:
        for k, v in SIZES[a.size].items():
            setattr(a, k, v)
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    config_cls, model_cls = ((XLMRobertaXLConfig, XLMRobertaXLForSequenceClassification) if a.xl
                             else (XLMRobertaConfig, XLMRobertaForSequenceClassification))
    cfg = config_cls(vocab_size=a.vocab, hidden_size=a.hidden, num_hidden_layers=a.layers,
                     num_attention_heads=a.heads, intermediate_size=a.ffn,
                     max_position_embeddings=max(514, a.seq + 2), num_labels=3)
    torch.manual_seed(0)
    model = model_cls(cfg).to(dev)
    if a.checkpointing:
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, a.vocab, (a.batch, a.seq), generator=g)
    ids[:, 0], ids[:, -1] = 0, 2
    ids = ids.to(dev)
    mask = torch.ones_like(ids)
    labels = (torch.arange(a.batch) % 3).to(dev)
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    nodecay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": nodecay, "weight_decay": 0.0}], lr=1e-5, eps=1e-8)
    autocast = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=a.dtype == "bf16")

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    train, evals = [], []
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model.train()
    for i in range(0 if a.eval_only else 1 + a.steps):
        sync()
        t0 = time.perf_counter()
        with autocast:
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        if i > 0:
            train.append((time.perf_counter() - t0) * 1e3)
    peak = (torch.cuda.max_memory_allocated() if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    model.eval()
    with torch.inference_mode():
        for i in range(1 + a.steps):
            sync()
            t0 = time.perf_counter()
            with autocast:
                model(input_ids=ids, attention_mask=mask).logits.float().cpu()
            sync()
            if i > 0:
                evals.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({"train_ms": statistics.median(train) if train else None, "eval_ms": statistics.median(evals),
                      "train_samples": train, "eval_samples": evals, "device": str(dev),
                      "peak_train_bytes": peak, "parameters": sum(p.numel() for p in model.parameters()),
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


main()
