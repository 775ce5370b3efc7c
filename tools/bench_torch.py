#!/usr/bin/python3
"""bench_torch.py - the PyTorch side of tools/bench: the same networks
(tools/torch_models.py), the same step (zero_grad, forward, cross-entropy,
backward, SGD update), batch and thread count as `sgdsa bench`, on a fixed
random batch. Prints one line in the format of `sgdsa bench`:
  bench impl=torch model=... kind=sgd batch=... threads=... steps=...
        images_per_s=... ms_per_step=... peak_mib=...
(peak_mib: this process's VmHWM; run one model per process)."""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import build  # noqa: E402

SHAPES = {"mlp": (1, 28), "lenet": (1, 28), "vgg16": (3, 32), "resnet18": (3, 32),
          "resnet34": (3, 32)}


def peak_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True, choices=sorted(SHAPES))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kind", default="sgd", choices=["sgd"])
    ap.add_argument("--time", type=float, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=200)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--config", action="store_true", help="print torch.__config__.show() first")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.config:
        print(torch.__config__.show(), file=sys.stderr)
    torch.manual_seed(0)
    c, s = SHAPES[a.model]
    net = build(a.model, c, s, a.classes).train()
    x = torch.randn(a.batch, c, s, s)
    labels = torch.tensor([(i * 7) % a.classes for i in range(1, a.batch + 1)])
    opt = torch.optim.SGD(net.parameters(), lr=0.01)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(net(x), labels)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    t0, n = time.perf_counter(), 0
    while True:
        step()
        n += 1
        if time.perf_counter() - t0 >= a.time or n >= a.max_steps:
            break
    dt = time.perf_counter() - t0
    print("bench impl=torch model=%s kind=%s batch=%d threads=%d steps=%d images_per_s=%.1f "
          "ms_per_step=%.1f peak_mib=%.1f" % (a.model, a.kind, a.batch, a.threads, n,
                                               n * a.batch / dt, 1000 * dt / n, peak_mib()))


if __name__ == "__main__":
    main()
