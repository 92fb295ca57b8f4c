"""PyTorch side of `cargo bench --bench matmul`: the matmuls of one encoder
layer at the issue's CPU shape (batch 16 x 128 tokens, hidden 256, FFN 1024,
4 heads), median of 20 after a warm-up, in ms."""
import statistics
import time

import torch


def t(label, f):
    f()
    v = []
    for _ in range(20):
        s = time.perf_counter()
        f()
        v.append((time.perf_counter() - s) * 1e3)
    print(f"{label:40s} {statistics.median(v):7.2f} ms")


torch.manual_seed(0)
x = torch.randn(2048, 256)
w = torch.randn(1024, 256)
w2 = torch.randn(256, 256)
q = torch.randn(16, 4, 128, 64)
k = torch.randn(16, 4, 128, 64)
with torch.inference_mode():
    t("x @ w^T    [2048x256] x [256x1024]", lambda: x @ w.t())
    t("x @ w2^T   [2048x256] x [256x256]", lambda: x @ w2.t())
    t("q @ k^T    64 x [128x64] x [64x128]", lambda: q @ k.transpose(-1, -2))
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
