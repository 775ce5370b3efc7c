#!/usr/bin/python3
"""test_to_pytorch.py - runs written by sgdsa read from Python: tools/to_pytorch.py
and h5py on real (tiny) training runs.

1. Two real runs with `sgdsa run experiments/fashion_lenet_sgd.lua` on a
   slice of Fashion-MNIST, one thread each:
   A. lenet, 2 epochs, validated on the first 2000 test images;
   B. resnet18 at width 1/8 on 1x32x32 (data.pad=2), 6 steps, validated on
      500 images held out of the training set by the seeded split.
2. log.h5 read with plain h5py: root attributes, the config and script texts,
   the `epochs` and `steps` tables (docs/FORMAT.md's columns present, every
   column as long as the others, one epochs row per epoch, one steps row per
   iteration, steps/step = 1..N, epochs/step = the cumulative step count).
3. tools/to_pytorch.py on both runs (best.h5 and A's last.h5): the
   checkpoint loads with load_state_dict(strict=True) into
   tools/torch_models.py, and the validation accuracy PyTorch computes equals
   the val_acc sgdsa logged for that epoch within 0.2 percentage points, the
   validation loss within 1e-4 relative.
   Why a tolerance: PyTorch and sgdsa sum the convolutions and matrix
   products in different orders (oneDNN/MKL vs im2col + OpenBLAS), so logits
   differ by ~1e-6 relative; an image whose two largest logits are that close
   can flip its prediction. 0.2 points (4 images of 2000) leaves room for
   that and still fails on any real difference in weights, BatchNorm
   statistics, normalization, padding or the validation images: those move
   the loss by far more than 1e-4 (measured: identical accuracies, loss
   differences below 1e-7).
4. The tool's Python Philox4x32-10 permutation (used to rebuild the
   validation split) equals `sgdsa.Generator(seed, "validation"):permutation`.
5. Errors: a missing folder, an unknown model, a checkpoint whose names or
   shapes do not match (each mismatch listed by name).

Env: SGDSA_BIN (the sgdsa executable), SGDSA_TEST_TMP (scratch). Exit 0 pass,
1 fail, 77 skip (no torch, h5py, numpy or Fashion-MNIST).
"""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FMNIST = "/usr/share/datasets/fashion-mnist"
TOOL = os.path.join(ROOT, "tools", "to_pytorch.py")

failures = []


def check(cond, what):
    if cond:
        print("ok   %s" % what)
    else:
        print("FAIL %s" % what)
        failures.append(what)
    return cond


def skip(why):
    print("skip: %s" % why)
    sys.exit(77)


try:
    import h5py
    import numpy as np
    import torch
except ImportError as e:
    skip("needs h5py, numpy and torch (%s)" % e)

data_dir = None
for d in ([os.path.join(os.environ["SGDSA_DATA"], "fashion-mnist"), os.environ["SGDSA_DATA"]]
          if os.environ.get("SGDSA_DATA") else []) + [FMNIST]:
    if os.path.exists(os.path.join(d, "t10k-images-idx3-ubyte.gz")):
        data_dir = d
        break
if data_dir is None:
    skip("Fashion-MNIST not found in %s (apt-get install dataset-fashion-mnist)" % FMNIST)

BIN = os.environ.get("SGDSA_BIN")
if not BIN or not os.path.exists(BIN):
    print("FAIL: SGDSA_BIN is not set to the sgdsa executable")
    sys.exit(1)
TMP = os.path.join(os.environ.get("SGDSA_TEST_TMP", "/tmp"), "test_to_pytorch")
shutil.rmtree(TMP, ignore_errors=True)
os.makedirs(TMP)
torch.set_num_threads(1)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import to_pytorch  # noqa: E402

env = dict(os.environ, OMP_NUM_THREADS="1")


def sgdsa_run(name, *overrides):
    cmd = [BIN, "run", "experiments/fashion_lenet_sgd.lua", "out=" + TMP, "name=" + name,
           "threads=1", "progress=off", "data.dir=" + data_dir] + list(overrides)
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        print(" ".join(cmd))
        print(p.stdout + p.stderr)
        print("FAIL: sgdsa run exited with %d" % p.returncode)
        sys.exit(1)
    return os.path.join(TMP, name)


def tool(*argv):
    """tools/to_pytorch.py in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = to_pytorch.main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


# ---- 1. two real runs --------------------------------------------------------------

EPOCHS_A = 2
run_a = sgdsa_run("lenet", "epochs=%d" % EPOCHS_A, "data.limit=2048", "data.test_limit=2000")
run_b = sgdsa_run("resnet", "epochs=1", "max_steps=6", "model=resnet18", "model.channels=1",
                  "model.size=32", "model.width=0.125", "data.pad=2", "data.limit=1500",
                  "data.validation=500")

# ---- 2. log.h5 with plain h5py -----------------------------------------------------

STEP_COLS = ["epoch", "step", "eta", "T", "loss", "trial_loss", "accepted"]
EPOCH_COLS = ["epoch", "step", "T", "train_loss", "train_acc", "val_loss", "val_acc",
              "accept_rate", "seconds"]


def check_log(run, epochs, name):
    with h5py.File(os.path.join(run, "log.h5"), "r") as f:
        a = f.attrs
        check(int(a["format_version"]) == 1 and text(a["kind"]) == "run-log",
              "%s: log.h5 format_version 1, kind run-log" % name)
        check(text(a["name"]) == name and int(a["seed"]) == 0 and int(a["resumed"]) == 0,
              "%s: name, seed, resumed attributes" % name)
        for k in ("sgdsa_version", "device", "threads", "host", "start_time"):
            check(k in a, "%s: attribute %s present" % (name, k))
        cfg = f["config"][()].decode()
        check("epochs = %d" % epochs in cfg.splitlines(), "%s: config text holds epochs = %d" % (name, epochs))
        check("return {" in f["script"][()].decode(), "%s: script text is the experiment" % name)
        tabs = {}
        for group, need in (("epochs", EPOCH_COLS), ("steps", STEP_COLS)):
            g = f[group]
            cols = text(g.attrs["columns"]).split(",")
            check(all(c in cols for c in need), "%s: %s columns %s present" % (name, group, ",".join(need)))
            check(sorted(cols) == sorted(g.keys()), "%s: %s datasets = the columns attribute" % (name, group))
            lens = {g[c].shape[0] for c in cols}
            check(len(lens) == 1, "%s: %s columns all of one length (%s)" % (name, group, sorted(lens)))
            check(all(g[c].dtype in (np.int64, np.float64) for c in cols),
                  "%s: %s columns are int64/float64" % (name, group))
            tabs[group] = {c: g[c][:] for c in cols}
    ep, st = tabs["epochs"], tabs["steps"]
    check(list(ep["epoch"]) == list(range(1, epochs + 1)), "%s: one epochs row per epoch (%d)" % (name, epochs))
    n = len(st["step"])
    check(n > 0 and list(st["step"]) == list(range(1, n + 1)), "%s: steps/step = 1..%d" % (name, n))
    check(int(ep["step"][-1]) == n, "%s: epochs/step[-1] = %d = number of steps rows" % (name, n))
    per_epoch = [int((st["epoch"] == e).sum()) for e in range(1, epochs + 1)]
    check(list(np.cumsum(per_epoch)) == list(ep["step"]),
          "%s: epochs/step = cumulative steps per epoch %s" % (name, per_epoch))
    check(all(0 <= v <= 1 for v in ep["val_acc"]), "%s: val_acc in [0, 1]" % name)
    return ep


ep_a = check_log(run_a, EPOCHS_A, "lenet")
check(list(ep_a["step"]) == [16, 32], "lenet: 2048 images / batch 128 = 16 steps per epoch")
ep_b = check_log(run_b, 1, "resnet")
check(list(ep_b["step"]) == [6], "resnet: max_steps=6 stopped the epoch at 6 steps")

# ---- 3. tools/to_pytorch.py ------------------------------------------------------------

ACC_TOL, LOSS_RTOL = 0.002, 1e-4


def compare(res, name, ep, want_epoch):
    lg = res["logged"]
    if not check(lg is not None, "%s: the tool found the logged row of epoch %s" % (name, want_epoch)):
        return
    check(res["epoch"] == want_epoch and lg["epoch"] == want_epoch,
          "%s: compared at epoch %d (tool %s)" % (name, want_epoch, res["epoch"]))
    row = list(ep["epoch"]).index(want_epoch)
    check(lg["val_acc"] == float(ep["val_acc"][row]), "%s: tool's logged val_acc = log.h5's" % name)
    d = abs(res["val_acc"] - lg["val_acc"])
    check(d <= ACC_TOL, "%s: PyTorch val_acc %.4f vs sgdsa %.4f (|diff| %.4f <= %.3f)"
          % (name, res["val_acc"], lg["val_acc"], d, ACC_TOL))
    dl = abs(res["val_loss"] - lg["val_loss"])
    check(dl <= LOSS_RTOL * max(1.0, abs(lg["val_loss"])),
          "%s: PyTorch val_loss %.7f vs sgdsa %.7f (|diff| %.2e)" % (name, res["val_loss"], lg["val_loss"], dl))


# A through the command line (a subprocess, --json), best.h5 of the folder
p = subprocess.run([sys.executable, TOOL, run_a, "--json", "--threads", "1"], cwd=ROOT, env=env,
                   capture_output=True, text=True, timeout=300)
check(p.returncode == 0, "lenet: tools/to_pytorch.py exits 0 (%s)" % p.stderr.strip()[-300:])
res_a = json.loads(p.stdout) if p.returncode == 0 else None
if res_a:
    with h5py.File(os.path.join(run_a, "best.h5"), "r") as f:
        best_epoch, best_acc = int(f.attrs["best_epoch"]), float(f.attrs["best_val_acc"])
    check(res_a["model"] == "lenet" and res_a["channels"] == 1 and res_a["size"] == 28
          and res_a["classes"] == 10, "lenet: model and arguments from the stored config")
    check(res_a["n"] == 2000 and "test images" in res_a["data"]["validation"],
          "lenet: validated on the first 2000 test images (data.test_limit)")
    check(res_a["val_acc"] > 0.5, "lenet: trained weights (PyTorch val_acc %.3f > 0.5)" % res_a["val_acc"])
    check(best_acc == float(ep_a["val_acc"].max()), "lenet: best.h5 best_val_acc = max of epochs/val_acc")
    compare(res_a, "lenet best.h5", ep_a, best_epoch)

# A's last.h5 given as a file, in process, with --save
saved = os.path.join(TMP, "lenet_state.pt")
rc, out, err = tool(os.path.join(run_a, "last.h5"), "--json", "--save", saved)
check(rc == 0, "lenet last.h5: exits 0 (%s)" % err.strip())
if rc == 0:
    res = json.loads(out)
    compare(res, "lenet last.h5", ep_a, EPOCHS_A)
    sd = torch.load(saved)
    with h5py.File(os.path.join(run_a, "last.h5"), "r") as f:
        names = [k for k in f if isinstance(f[k], h5py.Dataset)]
        same = sorted(names) == sorted(sd.keys()) and all(
            np.array_equal(np.asarray(f[k][()]), sd[k].numpy().astype(np.asarray(f[k][()]).dtype))
            for k in names)
    check(same, "lenet last.h5: --save wrote the checkpoint's %d tensors unchanged" % len(names))

# B: resnet18 names (layerN.M.shortcut.K), padding, the seeded validation split
rc, out, err = tool(run_b, "--json")
check(rc == 0, "resnet: exits 0 (%s)" % err.strip())
if rc == 0:
    res_b = json.loads(out)
    check(res_b["model"] == "resnet18" and res_b["size"] == 32 and res_b["width"] == 0.125,
          "resnet: model resnet18, size 32, width 0.125 from the stored config")
    check(res_b["n"] == 500 and res_b["data"]["pad"] == 2 and "held out" in res_b["data"]["validation"],
          "resnet: validated on the 500 held-out images, padded by 2")
    compare(res_b, "resnet best.h5", ep_b, 1)

# the text report names both numbers
rc, out, err = tool(run_a)
check(rc == 0 and "pytorch     val_acc" in out and "sgdsa       val_acc" in out,
      "text report prints PyTorch's and sgdsa's accuracy side by side")

# ---- 4. the Python Philox permutation is sgdsa's ------------------------------------------

for seed, n in ((0, 50), (-3, 17), (123456789, 1000)):
    lua = ('local p = sgdsa.Generator(%d, "validation"):permutation(%d) '
           'local t = {} for i = 1, %d do t[i] = p[i] - 1 end print(table.concat(t, " "))' % (seed, n, n))
    p = subprocess.run([BIN, "-e", lua], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    want = [int(v) for v in p.stdout.split()]
    got = to_pytorch.Philox(seed, to_pytorch.fnv1a("validation")).permutation(n)
    check(p.returncode == 0 and want == got, "Philox permutation seed %d n %d equals sgdsa's" % (seed, n))

# ---- 5. errors ---------------------------------------------------------------------------

rc, out, err = tool(os.path.join(TMP, "no-such-run"))
check(rc == 1 and "does not exist" in err, "missing folder: exit 1, says so")
os.makedirs(os.path.join(TMP, "empty"))
rc, out, err = tool(os.path.join(TMP, "empty"))
check(rc == 1 and "no best.h5" in err, "folder without best.h5: exit 1, says so")
rc, out, err = tool(run_a, "--model", "alexnet")
check(rc == 1 and "unknown model 'alexnet'" in err and "resnet34" in err, "unknown model: exit 1, lists the models")
rc, out, err = tool(run_a, "--model", "vgg16", "--channels", "1", "--size", "28")
check(rc == 1 and "missing in the file: features.0.weight" in err and "not in the model:    conv1.weight" in err,
      "lenet checkpoint into vgg16: exit 1, lists missing and unexpected names")
# a checkpoint with one tensor renamed and one reshaped (written with h5py)
bad = os.path.join(TMP, "bad.h5")
with h5py.File(os.path.join(run_a, "best.h5"), "r") as src, h5py.File(bad, "w") as dst:
    for k in src:
        if isinstance(src[k], h5py.Dataset):
            v = src[k][()]
            if k == "fc1.bias":
                k = "fc1.biases"
            if k == "fc2.weight":
                v = v[:, :100]
            dst[k] = v
    dst["extra/config"] = src["extra/config"][()]
    dst.attrs["kind"] = "checkpoint"
rc, out, err = tool(bad)
check(rc == 1 and "missing in the file: fc1.bias (120,)" in err and "not in the model:    fc1.biases (120,)" in err
      and "shape mismatch:      fc2.weight file (84, 100), model (84, 120)" in err,
      "renamed and reshaped tensors: exit 1, each listed with its shapes")
check("val_acc" not in out, "no accuracy printed for a mismatched checkpoint")

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("all checks passed")
