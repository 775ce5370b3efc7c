#!/usr/bin/python3
"""to_pytorch.py - load an sgdsa checkpoint into the PyTorch definitions of the
same network and report the validation accuracy PyTorch computes with it,
next to the one sgdsa logged for that epoch.

    tools/to_pytorch.py RUN_FOLDER_or_CHECKPOINT.h5 [--data DIR]
        [--model mlp|lenet|vgg16|resnet18|resnet34] [--channels C] [--size S]
        [--classes K] [--width W] [--device cpu] [--batch N] [--json]
        [--save state_dict.pt]

Only h5py, numpy and torch are used (no sgdsa code): this is the check that a
run folder is readable without sgdsa (docs/FORMAT.md, "Reading runs from
Python").

What it does:
  1. the checkpoint: RUN/best.h5 for a run folder, else the given file; the
     run's log: RUN/log.h5 (or the log.h5 beside the checkpoint).
  2. the configuration: the `config` text of log.h5 (else the checkpoint's
     extra/config), a Lua table literal parsed here as data; it gives the model
     spec ({"lenet", classes = 10, ...}), the data spec ({"fashion_mnist",
     limit = ..., pad = ..., normalize = ..., validation = ...}) and the seed.
     --model/--channels/--size/--classes/--width override it.
  3. the model: tools/torch_models.py (the PyTorch mirrors of models/*.lua,
     same state-dict names); every root dataset of the checkpoint is a
     state-dict entry; names and shapes are compared first (each mismatch is
     listed), then load_state_dict(strict=True).
  4. the validation data, rebuilt as sgdsa.data builds it: the first `limit`
     training images, the seeded validation split (Philox4x32-10, the same
     permutation as core/rng.c) when `validation` is set (else the test set,
     first `test_limit` images), per-channel mean/std of the remaining
     training images (exact integer histograms, as core/data_set.c), pixels
     mapped through the same uint8 -> float32 table as core/data_loader.c,
     zero padding (`pad`) filled with the normalized value of a black pixel.
  5. evaluation mode (BatchNorm running statistics), accuracy and mean
     cross-entropy over the validation set, printed next to log.h5's
     epochs/val_acc and val_loss of the checkpoint's epoch.

Exit status: 0 ok (whatever the accuracies), 1 an error (message on stderr),
2 usage error. --json prints one JSON object instead of the text report.
"""
import argparse
import gzip
import json
import math
import os
import re
import sys

TOOLS = os.path.dirname(os.path.abspath(__file__))


class Error(Exception):
    pass


# ---- the stored configuration: a Lua table literal, parsed as data -------------------

class Opaque:
    """A value the config text cannot spell as data: `<function>`, `<model>`..."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


class Call:
    """`name{...}`: how the config text writes an optimizer (sgd{schedule=...})."""

    def __init__(self, name, args):
        self.name, self.args = name, args

    def __repr__(self):
        return "%s%r" % (self.name, self.args)


class LuaTable(dict):
    """A Lua table: positional entries under the keys 1, 2, ... and named ones."""

    def positional(self):
        out, i = [], 1
        while i in self:
            out.append(self[i])
            i += 1
        return out


_TOKEN = re.compile(r"""
    (?P<ws>\s+|--[^\n]*)
  | (?P<num>-?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))
  | (?P<str>"(?:[^"\\]|\\.|\\\n)*")
  | (?P<opaque><[^<>\n]*>)
  | (?P<name>-?[A-Za-z_][A-Za-z_0-9]*)
  | (?P<punct>[{}\[\]=,;])
""", re.VERBOSE | re.DOTALL)


def _unquote(s):
    """Undo Lua's %q: \\", \\\\, \\<newline>, \\n, \\r, \\t, \\ddd, \\0."""
    body, out, i = s[1:-1], bytearray(), 0
    raw = body.encode("utf-8")
    while i < len(raw):
        c = raw[i]
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        i += 1
        e = raw[i:i + 1]
        simple = {b"n": 10, b"r": 13, b"t": 9, b"a": 7, b"b": 8, b"f": 12, b"v": 11,
                  b"\\": 92, b'"': 34, b"'": 39, b"\n": 10}
        if e in simple:
            out.append(simple[e])
            i += 1
        elif e.isdigit():
            j = i
            while j < len(raw) and j < i + 3 and raw[j:j + 1].isdigit():
                j += 1
            out.append(int(raw[i:j]))
            i = j
        else:
            raise Error("config: unknown string escape \\%s" % e.decode("utf-8", "replace"))
    return out.decode("utf-8", "replace")


def _tokens(text):
    pos, out = 0, []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise Error("config: cannot parse the text at %r" % text[pos:pos + 40])
        pos = m.end()
        kind = m.lastgroup
        if kind != "ws":
            out.append((kind, m.group(kind)))
    out.append(("eof", ""))
    return out


class _Parser:
    def __init__(self, text):
        self.t, self.i = _tokens(text), 0

    def peek(self, k=0):
        return self.t[self.i + k]

    def take(self, kind=None, value=None):
        tok = self.t[self.i]
        if (kind and tok[0] != kind) or (value is not None and tok[1] != value):
            raise Error("config: expected %s, got %r" % (value or kind, tok[1] or "end of text"))
        self.i += 1
        return tok

    def value(self):
        kind, v = self.peek()
        if kind == "num":
            self.i += 1
            if re.fullmatch(r"-?\d+", v):
                return int(v)
            if v.lstrip("-").lower().startswith("0x"):
                return int(v, 16)
            return float(v)
        if kind == "str":
            self.i += 1
            return _unquote(v)
        if kind == "opaque":
            self.i += 1
            return Opaque(v)
        if kind == "punct" and v == "{":
            return self.table()
        if kind == "name":
            self.i += 1
            word = {"true": True, "false": False, "nil": None, "inf": math.inf, "-inf": -math.inf,
                    "nan": math.nan, "-nan": math.nan}
            if v in word:
                return word[v]
            if self.peek() == ("punct", "{"):
                return Call(v, self.table())
            return Opaque(v)
        raise Error("config: unexpected %r" % (v or "end of text"))

    def table(self):
        self.take("punct", "{")
        t, n = LuaTable(), 1
        while self.peek() != ("punct", "}"):
            kind, v = self.peek()
            if kind == "punct" and v == "[":
                self.i += 1
                key = self.value()
                self.take("punct", "]")
                self.take("punct", "=")
                t[key] = self.value()
            elif kind in ("name", "num") and self.peek(1) == ("punct", "="):
                self.i += 2
                key = int(v) if kind == "num" and re.fullmatch(r"-?\d+", v) else v
                t[key] = self.value()
            else:
                t[n] = self.value()
                n += 1
            if self.peek()[0] == "punct" and self.peek()[1] in (",", ";"):
                self.i += 1
            elif self.peek() != ("punct", "}"):
                raise Error("config: expected ',' or '}' in a table, got %r" % self.peek()[1])
        self.take("punct", "}")
        return t


def parse_config(text):
    """The resolved config text (`key = value` per top-level key) -> dict."""
    p, cfg = _Parser(text), {}
    while p.peek()[0] != "eof":
        _, key = p.take("name")
        p.take("punct", "=")
        cfg[key] = p.value()
    return cfg


# ---- HDF5 -------------------------------------------------------------------------

def _text(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if hasattr(v, "item"):
        v = v.item()
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
    return v if isinstance(v, str) else str(v)


def open_h5(path, what):
    import h5py
    if not os.path.exists(path):
        raise Error("%s %s does not exist" % (what, path))
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise Error("%s %s cannot be read as HDF5: %s" % (what, path, e))


def read_log_table(f, group, path):
    """A log table (docs/FORMAT.md section 3) -> {column: numpy array}."""
    if group not in f:
        raise Error("%s has no %s/ log table" % (path, group))
    g = f[group]
    cols = _text(g.attrs.get("columns", b"")).split(",")
    cols = [c for c in cols if c]
    if not cols:
        raise Error("%s: %s/ has no `columns` attribute" % (path, group))
    out = {}
    for c in cols:
        if c not in g:
            raise Error("%s: column %s/%s is listed but missing" % (path, group, c))
        out[c] = g[c][:]
    n = {len(v) for v in out.values()}
    if len(n) > 1:
        raise Error("%s: the columns of %s/ differ in length (%s)" % (path, group, sorted(n)))
    return out


# ---- the model --------------------------------------------------------------------

MODELS = ("mlp", "lenet", "vgg16", "resnet18", "resnet34")
MODEL_DEFAULTS = {"mlp": (1, 28), "lenet": (1, 28), "vgg16": (3, 32), "resnet18": (3, 32),
                  "resnet34": (3, 32)}
MODEL_KEYS = {"channels", "size", "classes", "width", "hidden", "input_grad"}


def model_args(cfg, args):
    """(name, channels, size, classes, width, hidden) from the config and the command line."""
    spec = cfg.get("model")
    name, opts = None, {}
    if isinstance(spec, LuaTable) and isinstance(spec.get(1), str):
        name = spec[1]
        opts = {k: v for k, v in spec.items() if k != 1}
    elif spec is not None and args.model is None:
        raise Error("the run's model is %r (not a spec {\"name\", ...}); give --model and, if "
                    "not the defaults, --channels/--size/--classes/--width" % (spec,))
    if args.model:
        if name and args.model != name:
            print("note: --model %s overrides the run's model %s" % (args.model, name), file=sys.stderr)
            opts = {}
        name = args.model
    if name is None:
        raise Error("no model: the run has no stored config; give --model")
    if name not in MODELS:
        raise Error("unknown model %r: tools/torch_models.py has %s" % (name, ", ".join(MODELS)))
    unknown = sorted(set(map(str, opts)) - MODEL_KEYS)
    if unknown:
        raise Error("model %s: option(s) %s have no PyTorch counterpart in tools/torch_models.py"
                    % (name, ", ".join(unknown)))
    c0, s0 = MODEL_DEFAULTS[name]
    c = args.channels if args.channels is not None else opts.get("channels", c0)
    s = args.size if args.size is not None else opts.get("size", s0)
    k = args.classes if args.classes is not None else opts.get("classes", 10)
    w = args.width if args.width is not None else opts.get("width", 1)
    hidden = opts.get("hidden")
    if hidden is not None:
        if name != "mlp":
            raise Error("model %s has no `hidden` option" % name)
        hidden = tuple(hidden.positional())
    return name, int(c), int(s), int(k), w, hidden


def build_model(name, c, s, k, w, hidden):
    sys.path.insert(0, TOOLS)
    import torch_models
    if name == "mlp" and hidden is not None:
        return torch_models.MLP(c, s, k, w, hidden=hidden)
    return torch_models.build(name, c, s, k, w)


def read_state(f, path):
    """Every root dataset of a checkpoint -> {name: numpy array} (FORMAT.md section 4)."""
    import h5py
    state = {}
    for key in f:
        obj = f[key]
        if isinstance(obj, h5py.Dataset):
            state[key] = obj[()]
    if not state:
        raise Error("%s has no model tensors at the root (is it a checkpoint?)" % path)
    return state


def load_into(model, arrays, path):
    """Check names and shapes (listing every mismatch), then load_state_dict(strict=True)."""
    import numpy as np
    import torch
    want = model.state_dict()
    missing = [k for k in want if k not in arrays]
    extra = [k for k in arrays if k not in want]
    shapes = [(k, tuple(np.shape(arrays[k])), tuple(want[k].shape)) for k in want
              if k in arrays and tuple(np.shape(arrays[k])) != tuple(want[k].shape)]
    if missing or extra or shapes:
        lines = ["%s does not match the PyTorch model (%d tensors in the file, %d in the model):"
                 % (path, len(arrays), len(want))]
        lines += ["  missing in the file: %s %s" % (k, tuple(want[k].shape)) for k in missing]
        lines += ["  not in the model:    %s %s" % (k, tuple(np.shape(arrays[k]))) for k in extra]
        lines += ["  shape mismatch:      %s file %s, model %s" % t for t in shapes]
        raise Error("\n".join(lines))
    sd = {}
    for k, ref in want.items():
        a = np.asarray(arrays[k])
        if ref.dtype == torch.int64:
            # num_batches_tracked: an integer count (stored as int64 or float32)
            if a.dtype.kind == "f" and float(a) != int(a):
                raise Error("%s: %s = %r is not an integer count" % (path, k, float(a)))
            sd[k] = torch.tensor(int(a), dtype=torch.int64).reshape(ref.shape)
        else:
            if a.dtype.kind != "f":
                raise Error("%s: %s has dtype %s, expected a float tensor" % (path, k, a.dtype))
            sd[k] = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    model.load_state_dict(sd, strict=True)
    return model


# ---- the data (as lua/sgdsa/data.lua and core/data_*.c build it) -----------------------

M32, M64 = 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF


def fnv1a(name):
    h = 1469598103934665603
    for b in name.encode("utf-8"):
        h = ((h ^ b) * 1099511628211) & M64
    return h


class Philox:
    """core/rng.c: Philox4x32-10 keyed by (seed, stream), u32/u64/below as there."""

    def __init__(self, seed, stream):
        self.seed, self.stream, self.counter, self.buf, self.pos = seed & M64, stream & M64, 0, None, 4

    @staticmethod
    def block(counter, key_lo, key_hi):
        c0, c1 = counter & M32, (counter >> 32) & M32
        c2, c3 = key_hi & M32, (key_hi >> 32) & M32
        k0, k1 = key_lo & M32, (key_lo >> 32) & M32
        for _ in range(10):
            p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
            c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & M32, p1 & M32, ((p0 >> 32) ^ c3 ^ k1) & M32, p0 & M32
            k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
        return (c0, c1, c2, c3)

    def u32(self):
        if self.pos >= 4:
            self.buf = self.block(self.counter, self.seed, self.stream)
            self.counter += 1
            self.pos = 0
        v = self.buf[self.pos]
        self.pos += 1
        return v

    def u64(self):
        hi = self.u32()
        return (hi << 32) | self.u32()

    def below(self, n):
        limit = M64 - M64 % n
        while True:
            x = self.u64()
            if x < limit:
                return x % n

    def permutation(self, n):
        perm = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.below(i + 1)
            perm[i], perm[j] = perm[j], perm[i]
        return perm


def _read_maybe_gz(path):
    with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as fh:
        return fh.read()


IDX_FILES = [("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte", "train-images.idx3-ubyte"),
             ("train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
             ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
             ("t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte")]
DATASETS = {
    "fashion_mnist": ("fashion-mnist", ["/usr/share/datasets/fashion-mnist", "data/fashion-mnist"], IDX_FILES),
    "mnist": ("mnist", ["/usr/share/datasets/mnist", "data/mnist"], IDX_FILES),
    "cifar10": ("cifar-10-batches-bin", ["data/cifar-10-batches-bin"],
                [("data_batch_%d.bin" % i,) for i in range(1, 6)] + [("test_batch.bin",)]),
    "cifar100": ("cifar-100-binary", ["data/cifar-100-binary"], [("train.bin",), ("test.bin",)]),
}


def find_files(kind, opts, data_dir):
    sub, defaults, files = DATASETS[kind]
    if data_dir:
        dirs = [data_dir, os.path.join(data_dir, sub)]
    elif isinstance(opts.get("dir"), str):
        dirs = [opts["dir"]]
    else:
        dirs = []
        env = os.environ.get("SGDSA_DATA")
        if env:
            dirs += [os.path.join(env, sub), env]
        dirs += defaults
    for d in dirs:
        found = []
        for alts in files:
            hit = next((os.path.join(d, a) for a in alts if os.path.exists(os.path.join(d, a))), None)
            if hit is None:
                break
            found.append(hit)
        if len(found) == len(files):
            return found
    raise Error("%s data not found; tried %s. Give --data DIR (the folder holding %s) or set SGDSA_DATA"
                % (kind, ", ".join(os.path.join(d, files[0][0]) for d in dirs), files[0][0]))


def load_idx(img_path, lab_path):
    import numpy as np
    ib, lb = _read_maybe_gz(img_path), _read_maybe_gz(lab_path)
    if len(ib) < 16 or int.from_bytes(ib[:4], "big") != 0x803:
        raise Error("%s is not an IDX image file (magic 0x00000803)" % img_path)
    if len(lb) < 8 or int.from_bytes(lb[:4], "big") != 0x801:
        raise Error("%s is not an IDX label file (magic 0x00000801)" % lab_path)
    n, h, w = (int.from_bytes(ib[4 * i:4 * i + 4], "big") for i in (1, 2, 3))
    nl = int.from_bytes(lb[4:8], "big")
    if nl != n or len(ib) < 16 + n * h * w or len(lb) < 8 + n:
        raise Error("%s / %s: %d images of %dx%d and %d labels do not match the file sizes"
                    % (img_path, lab_path, n, h, w, nl))
    x = np.frombuffer(ib, np.uint8, n * h * w, 16).reshape(n, 1, h, w)
    y = np.frombuffer(lb, np.uint8, n, 8).astype(np.int64)
    return x, y


def load_cifar(paths, kind, fine=True):
    import numpy as np
    nlab = 2 if kind == "cifar100" else 1
    rec = nlab + 3072
    xs, ys = [], []
    for p in paths:
        b = np.frombuffer(_read_maybe_gz(p), np.uint8)
        if b.size % rec:
            raise Error("%s: size %d is not a multiple of the %d-byte %s record" % (p, b.size, rec, kind))
        b = b.reshape(-1, rec)
        xs.append(b[:, nlab:].reshape(-1, 3, 32, 32))
        ys.append(b[:, (1 if fine else 0) if nlab == 2 else 0].astype(np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def channel_stats(x):
    """core/data_set.c sg_dataset_stats: exact histograms, double arithmetic."""
    import numpy as np
    mean, std = [], []
    for c in range(x.shape[1]):
        hist = np.bincount(x[:, c].reshape(-1), minlength=256).astype(object)
        s = sum(int(hist[v]) * v for v in range(256))
        s2 = sum(int(hist[v]) * v * v for v in range(256))
        cnt = float(x.shape[0]) * float(x.shape[2] * x.shape[3])
        m = float(s) / cnt
        var = float(s2) / cnt - m * m
        mean.append(m * (1.0 / 255.0))
        std.append(math.sqrt(var if var > 0 else 0.0) * (1.0 / 255.0))
    return mean, std


def _per_channel(v, c, what):
    if isinstance(v, (int, float)):
        return [float(v)] * c
    if isinstance(v, LuaTable) and len(v.positional()) == c:
        return [float(t) for t in v.positional()]
    raise Error("data config: normalize.%s needs %d number(s)" % (what, c))


def validation_data(cfg, data_dir):
    """(images float32 N x C x H x W, labels int64 N, description) of the run's validation set."""
    import numpy as np
    spec = cfg.get("data")
    if not (isinstance(spec, LuaTable) and isinstance(spec.get(1), str)):
        raise Error("the run's data is %r, not a spec {\"name\", ...}: this tool rebuilds only the "
                    "built-in data sets (%s)" % (spec, ", ".join(DATASETS)))
    kind, opts = spec[1], {k: v for k, v in spec.items() if k != 1}
    if kind not in DATASETS:
        raise Error("data set %r: this tool rebuilds %s" % (kind, ", ".join(DATASETS)))
    files = find_files(kind, opts, data_dir)
    if kind in ("fashion_mnist", "mnist"):
        xtr, ytr = load_idx(files[0], files[1])
        xte, yte = load_idx(files[2], files[3])
    else:
        fine = opts.get("label", "fine") == "fine"
        xtr, ytr = load_cifar(files[:-1], kind, fine)
        xte, yte = load_cifar(files[-1:], kind, fine)
    if opts.get("limit") is not None:
        n = min(int(opts["limit"]), len(xtr))
        xtr, ytr = xtr[:n], ytr[:n]
    if opts.get("test_limit") is not None:
        n = min(int(opts["test_limit"]), len(xte))
        xte, yte = xte[:n], yte[:n]
    nval = int(opts.get("validation") or 0)
    if nval > 0:
        if nval >= len(xtr):
            raise Error("data config: validation = %d but the training set has %d images" % (nval, len(xtr)))
        seed = opts.get("seed", cfg.get("seed", 0))
        perm = Philox(int(seed), fnv1a("validation")).permutation(len(xtr))
        held = np.zeros(len(xtr), bool)
        idx = np.array(perm[:nval], np.int64)
        held[idx] = True
        xv, yv = xtr[idx], ytr[idx]
        xtr, ytr = xtr[~held], ytr[~held]
        what = "%d images held out of the first %d training images (seed %d)" % (nval, len(held), int(seed))
    else:
        xv, yv = xte, yte
        what = "the first %d test images" % len(xte)
    c = xtr.shape[1]
    norm = opts.get("normalize", True)
    if norm is True:
        mean, std = channel_stats(xtr)
        std = [s if s > 0 else 1.0 for s in std]
    elif isinstance(norm, LuaTable):
        mean, std = _per_channel(norm.get("mean"), c, "mean"), _per_channel(norm.get("std"), c, "std")
    elif norm is False:
        mean, std = [0.0] * c, [1.0] * c
    else:
        raise Error("data config: normalize = %r is not understood" % (norm,))
    # core/data_loader.c: lut[c][v] = (float)((v / 255 - m) / s), computed in double
    lut = np.empty((c, 256), np.float32)
    for ch in range(c):
        lut[ch] = ((np.arange(256, dtype=np.float64) * (1.0 / 255.0) - mean[ch]) / std[ch]).astype(np.float32)
    x = np.empty(xv.shape, np.float32)
    for ch in range(c):
        x[:, ch] = lut[ch][xv[:, ch]]
    pad = int(opts.get("pad") or 0)
    if pad:
        xp = np.empty((x.shape[0], c, x.shape[2] + 2 * pad, x.shape[3] + 2 * pad), np.float32)
        for ch in range(c):
            xp[:, ch] = lut[ch][0]          # a black pixel, normalized
        xp[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]] = x
        x = xp
    info = {"data": kind, "validation": what, "n": int(len(yv)), "mean": mean, "std": std, "pad": pad}
    return x, yv, info


# ---- evaluation -------------------------------------------------------------------

def evaluate(model, x, y, device, batch):
    import torch
    import torch.nn.functional as F
    model.eval().to(device)
    correct, loss_sum = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            xb = torch.from_numpy(x[i:i + batch]).to(device)
            yb = torch.from_numpy(y[i:i + batch]).to(device)
            out = model(xb)
            loss_sum += float(F.cross_entropy(out.double(), yb, reduction="sum"))
            correct += int((out.argmax(1) == yb).sum())
    return correct, loss_sum / len(y)


# ---- main -------------------------------------------------------------------------

def locate(path):
    """(checkpoint path, log path or None) for a run folder or a checkpoint file."""
    if os.path.isdir(path):
        ck = os.path.join(path, "best.h5")
        if not os.path.exists(ck):
            raise Error("%s has no best.h5 (is it a run folder? its checkpoints: %s)" % (
                path, ", ".join(sorted(n for n in os.listdir(path) if n.endswith(".h5"))) or "none"))
        log = os.path.join(path, "log.h5")
        return ck, log if os.path.exists(log) else None
    if not os.path.exists(path):
        raise Error("%s does not exist (give a run folder or a checkpoint .h5 file)" % path)
    log = os.path.join(os.path.dirname(os.path.abspath(path)), "log.h5")
    return path, log if os.path.exists(log) and os.path.abspath(log) != os.path.abspath(path) else None


def run(args):
    ck_path, log_path = locate(args.run)
    if args.model is not None and args.model not in MODELS:
        raise Error("unknown model %r: tools/torch_models.py has %s" % (args.model, ", ".join(MODELS)))
    try:
        import h5py  # noqa: F401
        import numpy  # noqa: F401
        import torch
    except ImportError as e:
        raise Error("this tool needs h5py, numpy and torch (%s)" % e)
    if args.threads:
        torch.set_num_threads(args.threads)
    with open_h5(ck_path, "checkpoint") as ck:
        kind = _text(ck.attrs.get("kind", b""))
        if kind and kind != "checkpoint":
            raise Error("%s is a %r file, not a checkpoint" % (ck_path, kind))
        arrays = read_state(ck, ck_path)
        epoch = int(ck.attrs["best_epoch"]) if "best_epoch" in ck.attrs else (
            int(ck.attrs["epoch"]) if "epoch" in ck.attrs else None)
        ck_config = _text(ck["extra/config"][()]) if "extra/config" in ck else None
    cfg_text, logged = None, None
    if log_path:
        with open_h5(log_path, "log") as lf:
            if "config" in lf:
                cfg_text = _text(lf["config"][()])
            if "epochs" in lf and epoch is not None:
                ep = read_log_table(lf, "epochs", log_path)
                rows = [i for i, e in enumerate(ep["epoch"]) if int(e) == epoch]
                if rows:
                    i = rows[-1]
                    logged = {"epoch": epoch, "val_acc": float(ep["val_acc"][i]),
                              "val_loss": float(ep["val_loss"][i])}
    if cfg_text is None:
        cfg_text = ck_config
    cfg = parse_config(cfg_text) if cfg_text else {}
    name, c, s, k, w, hidden = model_args(cfg, args)
    model = build_model(name, c, s, k, w, hidden)
    load_into(model, arrays, ck_path)
    x, y, info = validation_data(cfg, args.data)
    if tuple(x.shape[1:]) != (c, s, s):
        raise Error("the validation images are %s but the model %s takes %dx%dx%d (check --size/--channels "
                    "or the data's pad)" % ("x".join(map(str, x.shape[1:])), name, c, s, s))
    correct, loss = evaluate(model, x, y, args.device, args.batch)
    res = {"checkpoint": ck_path, "log": log_path, "model": name, "channels": c, "size": s, "classes": k,
           "width": w, "tensors": len(arrays), "epoch": epoch, "correct": correct, "n": info["n"],
           "val_acc": correct / info["n"], "val_loss": loss, "logged": logged, "data": info}
    if args.save:
        torch.save(model.state_dict(), args.save)
        res["saved"] = args.save
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="to_pytorch.py",
        description="Load an sgdsa checkpoint (best.h5 of a run folder, or a given .h5) into the PyTorch "
                    "model of tools/torch_models.py with load_state_dict(strict=True) and compare the "
                    "validation accuracy PyTorch computes with the one sgdsa logged.")
    ap.add_argument("run", help="run folder (uses best.h5 and log.h5) or checkpoint file")
    ap.add_argument("--data", help="data folder (else the run's data.dir, $SGDSA_DATA, the defaults)")
    ap.add_argument("--model", help="model name (%s); default: the run's config" % ", ".join(MODELS))
    ap.add_argument("--channels", type=int)
    ap.add_argument("--size", type=int)
    ap.add_argument("--classes", type=int)
    ap.add_argument("--width", type=float)
    ap.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")
    ap.add_argument("--batch", type=int, default=500, help="evaluation batch (500)")
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--save", help="also write the PyTorch state dict here (torch.save)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    if args.width is not None and args.width == int(args.width):
        args.width = int(args.width)
    try:
        res = run(args)
    except Error as e:
        print("to_pytorch: %s" % e, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(res))
        return 0
    d = res["data"]
    print("checkpoint  %s (%d tensors, epoch %s)" % (res["checkpoint"], res["tensors"], res["epoch"]))
    print("model       %s(channels=%d, size=%d, classes=%d, width=%s), load_state_dict(strict=True) ok"
          % (res["model"], res["channels"], res["size"], res["classes"], res["width"]))
    print("validation  %s: %s, pad %d, mean %s, std %s" % (d["data"], d["validation"], d["pad"],
          ", ".join("%.6g" % m for m in d["mean"]), ", ".join("%.6g" % v for v in d["std"])))
    print("pytorch     val_acc %.2f%% (%d/%d)  val_loss %.6f" % (100 * res["val_acc"], res["correct"], res["n"],
                                                             res["val_loss"]))
    lg = res["logged"]
    if lg:
        print("sgdsa       val_acc %.2f%%           val_loss %.6f  (log.h5 epochs, epoch %d)"
              % (100 * lg["val_acc"], lg["val_loss"], lg["epoch"]))
        print("difference  %+.2f percentage points, val_loss %+.2e"
              % (100 * (res["val_acc"] - lg["val_acc"]), res["val_loss"] - lg["val_loss"]))
    else:
        print("sgdsa       (no log.h5 row for this epoch to compare with)")
    if res.get("saved"):
        print("saved       %s" % res["saved"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
