#!/usr/bin/python3
"""bench_sa_torch.py - PyTorch's SA/SGD step-time ratio, the twin of
tools/bench_sa.lua: the same networks (tools/torch_models.py), batch, thread
count and fixed random batch; one plain SGD step and one SGD-SA step written
the way a PyTorch user would (copy the weights, step, evaluate the trial
point under no_grad on the same minibatch, Metropolis test, copy back on
rejection), and the authors' SGD-SA step (score="inference": f(w) and f(w')
by model.eval() forwards under no_grad, f(w) before the training step, as
QuasarLight/sgd-sa's SGD_SA), alternated so all see the same machine load.
Prints the SA/SGD ratios of the fastest steps and of the medians, for both.
  python3 tools/bench_sa_torch.py [--models mlp,lenet,vgg16,resnet34]
                                  [--batch 128] [--steps 20] [--threads 1]
                                  [--device cpu|cuda] [--tf32] [--results]
On a GPU (--device cuda; tools/gpu-check's torch stage) every timed step
ends with torch.cuda.synchronize(), cuDNN picks its algorithms by timing
them (torch.backends.cudnn.benchmark, as sgdsa's cudnnFind), and TF32 is
allowed in convolutions and matrix products only with --tf32. --results
adds lines "RESULT torch_<model>_<fp32|tf32>_<sgd|sgdsa|sgdsa_inf>_step_ms <ms>"
(medians) for tools/gpu-check's results file.
Note: like most hand-written SA loops, the batch-statistics trial forward
runs in train mode, so BatchNorm's running statistics are updated by it too
(sgdsa's trial forward leaves them alone)."""
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
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--results", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    gpu = a.device == "cuda"
    if gpu:
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = a.tf32
        torch.backends.cuda.matmul.allow_tf32 = a.tf32
    prec = "tf32" if a.tf32 else "fp32"

    def sync():
        if gpu:
            torch.cuda.synchronize()
    rng = random.Random(0)
    print("%-9s %5s %3s %5s | %9s %9s | %9s %9s | %9s %9s | %9s %9s | %9s %9s" % (
        "model", "batch", "thr", "steps", "sgd min", "sgd med", "sa min", "sa med",
        "sa-inf min", "sa-inf med", "ratio min", "ratio med", "inf min", "inf med"))
    for name in a.models.split(","):
        c, s = SHAPES[name]
        torch.manual_seed(0)
        x = torch.randn(a.batch, c, s, s).to(dev)
        labels = torch.tensor([(i * 7) % 10 for i in range(1, a.batch + 1)]).to(dev)
        net_sgd = build(name, c, s, 10).train().to(dev)
        net_sa = build(name, c, s, 10).train().to(dev)
        net_inf = build(name, c, s, 10).train().to(dev)
        opt = torch.optim.SGD(net_sgd.parameters(), lr=0.01)
        params = list(net_sa.parameters())
        params_inf = list(net_inf.parameters())
        state = {"T": 1.0}

        def inference_loss(net):
            net.eval()
            with torch.no_grad():
                f = F.cross_entropy(net(x), labels).item()
            net.train()
            return f

        def metropolis(ps, saved, fw, ft):
            worsening = ft - fw
            prob = 1.0 if worsening <= 0 else math.exp(-worsening / state["T"])
            if not (math.isfinite(ft) and rng.random() < prob):
                with torch.no_grad():
                    for p, w in zip(ps, saved):
                        p.copy_(w)

        def sa_inf_step():
            fw = inference_loss(net_inf)
            for p in params_inf:
                p.grad = None
            F.cross_entropy(net_inf(x), labels).backward()
            eta = rng.choice(H)
            with torch.no_grad():
                saved = [p.detach().clone() for p in params_inf]
                for p in params_inf:
                    p.add_(p.grad, alpha=-eta)
            metropolis(params_inf, saved, fw, inference_loss(net_inf))

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
            metropolis(params, saved, loss.item(), trial)

        for _ in range(3 if gpu else 1):  # warm-up (cuDNN's algorithm search on a GPU)
            sgd_step()
            sa_step()
            sa_inf_step()
        sync()
        times = {"sgd": [], "sa": [], "sa_inf": []}
        for _ in range(a.steps):
            for k, f in (("sgd", sgd_step), ("sa", sa_step), ("sa_inf", sa_inf_step)):
                t0 = time.perf_counter()
                f()
                sync()
                times[k].append(time.perf_counter() - t0)
        mn = {k: min(v) for k, v in times.items()}
        md = {k: statistics.median(v) for k, v in times.items()}
        print("%-9s %5d %3d %5d | %7.1fms %7.1fms | %7.1fms %7.1fms | %8.1fms %8.1fms | %9.3f %9.3f"
              " | %9.3f %9.3f" % (
                  name, a.batch, a.threads, a.steps, mn["sgd"] * 1e3, md["sgd"] * 1e3,
                  mn["sa"] * 1e3, md["sa"] * 1e3, mn["sa_inf"] * 1e3, md["sa_inf"] * 1e3,
                  mn["sa"] / mn["sgd"], md["sa"] / md["sgd"],
                  mn["sa_inf"] / mn["sgd"], md["sa_inf"] / md["sgd"]))
        if a.results:
            for k, kk in (("sgd", "sgd"), ("sa", "sgdsa"), ("sa_inf", "sgdsa_inf")):
                print("RESULT torch_%s_%s_%s_step_ms %.2f" % (name, prec, kk, md[k] * 1e3))
                print("RESULT torch_%s_%s_%s_images_per_s %.0f" % (name, prec, kk,
                                                                     a.batch / md[k]))
            print("RESULT torch_%s_%s_sa_over_sgd_step_time %.3f" % (name, prec,
                                                                      md["sa"] / md["sgd"]))
            print("RESULT torch_%s_%s_sa_inf_over_sgd_step_time %.3f" % (
                name, prec, md["sa_inf"] / md["sgd"]))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
