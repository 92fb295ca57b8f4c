"""transformers reference for the Tatoeba benchmark (benches/tatoeba.sh): the
computation of XTREME's third_party/evaluate_retrieval.py for Tatoeba, written
out with transformers + numpy, on all 36 languages of XTREME: each sentence
(stripped) encoded alone as <s> ... </s> (at most 512 tokens), hidden state
--layer of `output_hidden_states` (0 = the embeddings; default 8, XTREME's
`--specific_layer 7` of a 12-layer model), the mean over the attention mask,
L2-normalised, each xx sentence's nearest English sentence by cosine.

Two ways to run it:
  --mode xtreme   XTREME's own procedure: batches of 100 sentences in file
                  order, padded to the batch's longest, the whole model run
                  with output_hidden_states=True.
  --mode sorted   the same numbers computed the way stilts computes them:
                  sentences sorted by length (longest first) into batches of
                  100, only the layers up to --layer run.

Prints per language the accuracy (xx->en, percent) and one JSON line at the end
with the seconds spent (tokenizing, encoding and searching; model loading
excluded) and the per-language accuracies, and with --found FILE writes each
query's retrieved line for comparing with stilts.

  python benches/tatoeba_reference.py MODEL_DIR [--data ../shared/data/tatoeba]
      [--layer 8] [--mode xtreme|sorted] [--threads N] [--found FILE]
"""
import argparse
import json
import os
import time

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

LANGUAGES = {
    "af": "afr", "ar": "ara", "bg": "bul", "bn": "ben", "de": "deu", "el": "ell", "es": "spa",
    "et": "est", "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin",
    "hu": "hun", "id": "ind", "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz",
    "ko": "kor", "ml": "mal", "mr": "mar", "nl": "nld", "pt": "por", "ru": "rus", "sw": "swh",
    "ta": "tam", "te": "tel", "th": "tha", "tl": "tgl", "tr": "tur", "ur": "urd", "vi": "vie",
    "zh": "cmn",
}


def read(path):
    with open(path, encoding="utf-8") as f:
        return [l.strip() for l in f]


def embed(model, tok, sentences, layer, mode, batch=100, max_length=512):
    ids = tok(sentences, truncation=True, max_length=max_length)["input_ids"]
    order = list(range(len(ids)))
    if mode == "sorted":
        order.sort(key=lambda i: -len(ids[i]))
    pad = tok.pad_token_id
    out = np.zeros((len(ids), model.config.hidden_size), dtype=np.float32)
    for s in range(0, len(order), batch):
        rows = order[s : s + batch]
        t = max(len(ids[i]) for i in rows)
        x = torch.tensor([ids[i] + [pad] * (t - len(ids[i])) for i in rows])
        m = torch.tensor([[1] * len(ids[i]) + [0] * (t - len(ids[i])) for i in rows])
        with torch.inference_mode():
            if mode == "xtreme":
                h = model(input_ids=x, attention_mask=m, output_hidden_states=True).hidden_states[layer]
            else:
                h = model(input_ids=x, attention_mask=m).last_hidden_state
        mf = m.unsqueeze(2).float()
        out[rows] = ((h * mf).sum(dim=1) / mf.sum(dim=1)).numpy()
    return out


def unit(v):
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--data", default="../shared/data/tatoeba")
    ap.add_argument("--layer", type=int, default=8)
    ap.add_argument("--mode", default="xtreme", choices=["xtreme", "sorted"])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--found", default="")
    ap.add_argument("--languages", default="", help="comma-separated subset (a quick check)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModel.from_pretrained(a.model, add_pooling_layer=False).eval()
    if a.mode == "sorted":
        # Only the layers up to the requested hidden state run.
        model.encoder.layer = model.encoder.layer[: a.layer]
    start = time.perf_counter()
    acc, found = {}, {}
    langs = a.languages.split(",") if a.languages else list(LANGUAGES)
    for lang in langs:
        code = LANGUAGES[lang]
        xx = read(os.path.join(a.data, f"tatoeba.{code}-eng.{code}"))
        en = read(os.path.join(a.data, f"tatoeba.{code}-eng.eng"))
        vx = unit(embed(model, tok, xx, a.layer, a.mode))
        ve = unit(embed(model, tok, en, a.layer, a.mode))
        pred = (vx @ ve.T).argmax(axis=1)
        acc[lang] = 100.0 * float(np.mean(pred == np.arange(len(xx))))
        found[lang] = [int(p) for p in pred]
        print(f"{lang} {acc[lang]:.1f}", flush=True)
    seconds = time.perf_counter() - start
    if a.found:
        with open(a.found, "w") as f:
            json.dump(found, f)
    print(json.dumps({
        "mode": a.mode, "layer": a.layer, "threads": torch.get_num_threads(), "seconds": round(seconds, 2),
        "average": round(sum(acc.values()) / len(acc), 2), "accuracy": {k: round(v, 1) for k, v in acc.items()},
    }))


if __name__ == "__main__":
    main()
