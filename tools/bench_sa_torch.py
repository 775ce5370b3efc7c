#!/usr/bin/python3
"""bench_sa_torch.py - PyTorch's SA/SGD step-time ratio, the twin of
tools/bench_sa.lua: the same networks (tools/torch_models.py), batch, thread
count and fixed random batch; one plain SGD step and one SGD-SA step written
the way a PyTorch user would (copy the weights, step, evaluate the trial
point under no_grad on the same minibatch, Metropolis test, copy back on
rejection), alternated so both see the same machine load. Prints the ratio
of the fastest steps and of the medians.
  python3 tools/bench_sa_torch.py [--models mlp,lenet,vgg16,resnet34]
                                  [--batch 128] [--steps 20] [--threads 1]
Note: like most hand-written SA loops, the trial forward runs in train mode,
so BatchNorm's running statistics are updated by it too (sgdsa's trial
forward leaves them alone)."""
import argparse
import math
import os
import random
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import build  # noqa: E402

SHAPES = {"mlp": (1, 28), "lenet": (1, 28), "vgg16": (3, 32), "resnet18": (3, 32),
          "resnet34": (3, 32)}
H = [0.01, 0.005, 0.002, 0.001]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default="mlp,lenet,vgg16,resnet34")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rng = random.Random(0)
    print("%-9s %5s %3s %5s | %9s %9s | %9s %9s | %9s %9s" % (
        "model", "batch", "thr", "steps", "sgd min", "sgd med", "sa min", "sa med",
        "ratio min", "ratio med"))
    for name in a.models.split(","):
        c, s = SHAPES[name]
        torch.manual_seed(0)
        x = torch.randn(a.batch, c, s, s)
        labels = torch.tensor([(i * 7) % 10 for i in range(1, a.batch + 1)])
        net_sgd = build(name, c, s, 10).train()
        net_sa = build(name, c, s, 10).train()
        opt = torch.optim.SGD(net_sgd.parameters(), lr=0.01)
        params = list(net_sa.parameters())
        state = {"T": 1.0}

        def sgd_step():
            opt.zero_grad()
            loss = F.cross_entropy(net_sgd(x), labels)
            loss.backward()
            opt.step()

        def sa_step():
            for p in params:
                p.grad = None
            loss = F.cross_entropy(net_sa(x), labels)
            loss.backward()
            eta = rng.choice(H)
            with torch.no_grad():
                saved = [p.detach().clone() for p in params]
                for p in params:
                    p.add_(p.grad, alpha=-eta)
                trial = F.cross_entropy(net_sa(x), labels).item()
                worsening = trial - loss.item()
                prob = 1.0 if worsening <= 0 else math.exp(-worsening / state["T"])
                if not (math.isfinite(trial) and rng.random() < prob):
                    for p, w in zip(params, saved):
                        p.copy_(w)

        sgd_step()
        sa_step()
        times = {"sgd": [], "sa": []}
        for _ in range(a.steps):
            for k, f in (("sgd", sgd_step), ("sa", sa_step)):
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
        mn = {k: min(v) for k, v in times.items()}
        md = {k: statistics.median(v) for k, v in times.items()}
        print("%-9s %5d %3d %5d | %7.1fms %7.1fms | %7.1fms %7.1fms | %9.3f %9.3f" % (
            name, a.batch, a.threads, a.steps, mn["sgd"] * 1e3, md["sgd"] * 1e3,
            mn["sa"] * 1e3, md["sa"] * 1e3, mn["sa"] / mn["sgd"], md["sa"] / md["sgd"]))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
