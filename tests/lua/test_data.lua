-- test_data.lua - sgdsa.data from Lua on small files this test writes (IDX,
-- CIFAR-10/100 binary with string.pack; HDF5 through python3-h5py when it is
-- installed): shapes, labels, normalization, per-epoch permutations,
-- reproducibility from the seed, exact replay after state()/set_state(),
-- augmentation, option checking and error messages.
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"

local tmp = T.tmpdir() .. "/data-lua"
os.execute("rm -rf '" .. tmp .. "' && mkdir -p '" .. tmp .. "/idx' '" .. tmp .. "/c10' '" .. tmp .. "/c100'")

local write = T.write_file

-- image i of an IDX set: pixel p = (i*13 + p) % 256; label i % 10
T.write_idx(tmp .. "/idx", "train", 50, 6, 5)
T.write_idx(tmp .. "/idx", "t10k", 20, 6, 5)

local function all_batches(loader)
  local xs, ys = {}, {}
  for x, y in loader:batches() do xs[#xs + 1] = x; ys[#ys + 1] = y end
  return xs, ys
end

local function same_batches(a, b, what)
  T.eq(#a, #b, what .. ": batch count")
  for i = 1, #a do T.tensor_near(a[i], b[i], 0, what .. ": batch " .. i) end
end

T.test("idx: shapes, labels, test set, padding", function()
  local d = sg.data.mnist{ dir = tmp .. "/idx", batch = 8, pad = 1, normalize = false, seed = 1 }
  T.eq(d.info.classes, 10); T.eq(table.concat(d.info.shape, "x"), "1x8x7")
  T.eq(d.train:size(), 50); T.eq(d.train:nbatches(), 7); T.eq(d.test:size(), 20)
  local xs, ys = all_batches(d.test)
  T.eq(#xs, 3); T.eq(xs[3]:size(1), 4, "last partial batch kept")
  -- test set is in file order: image 9 is the second batch's second image
  local x = xs[2][2]
  T.eq(ys[2][2], 9 % 10)
  T.eq(x[1][1][1], 0, "padding is zero")
  T.near(x[1][2][2], ((9 * 13 + 0) % 256) / 255, 1e-6, "first pixel")
  T.near(x[1][7][6], ((9 * 13 + 29) % 256) / 255, 1e-6, "last pixel")
end)

T.test("shuffle: permutation per epoch, reproducible, seed-dependent", function()
  local a = sg.data.mnist{ dir = tmp .. "/idx", batch = 16, seed = 3 }
  local b = sg.data.mnist{ dir = tmp .. "/idx", batch = 16, seed = 3 }
  local c = sg.data.mnist{ dir = tmp .. "/idx", batch = 16, seed = 4 }
  local xa, ya = all_batches(a.train)
  local xb = all_batches(b.train)
  local xc = all_batches(c.train)
  same_batches(xa, xb, "same seed")
  local counts, n = {}, 0
  for _, y in ipairs(ya) do
    for i = 1, y:size(1) do counts[y[i]] = (counts[y[i]] or 0) + 1; n = n + 1 end
  end
  T.eq(n, 50)
  for k = 0, 9 do T.eq(counts[k], 5, "label " .. k .. " count") end
  local diff = (xa[1] - xc[1]):abs():max()
  T.check(diff > 0, "seed 4 gave seed 3's first batch")
  local xa2 = all_batches(a.train) -- the next epoch: another order
  T.check((xa[1] - xa2[1]):abs():max() > 0, "epoch 2 repeats epoch 1")
  local xe2 = {}
  for x in b.train:epoch(2) do xe2[#xe2 + 1] = x end
  same_batches(xa2, xe2, "epoch(2) equals the second batches() pass")
end)

T.test("state/set_state replays the rest of the run exactly", function()
  local opts = { dir = tmp .. "/idx", batch = 7, seed = 9, augment = { crop = 2, flip = true }, pad = 2 }
  local a = sg.data.mnist(opts)
  local it = a.train:epoch(2)
  it(); it(); it()
  local st = a.train:state()
  T.eq(st.epoch, 2); T.eq(st.index, 21); T.eq(st.perm:size(1), 50)
  local rest = {}
  for x in it do rest[#rest + 1] = x end
  for x in a.train:batches() do rest[#rest + 1] = x end -- epoch 3
  local b = sg.data.mnist(opts)
  b.train:set_state(st)
  local again = {}
  for x in b.train:batches() do again[#again + 1] = x end
  for x in b.train:batches() do again[#again + 1] = x end
  same_batches(rest, again, "restored")
  T.raises(function() b.train:set_state{ epoch = 0, index = 0 } end, "epoch >= 1")
end)

T.test("batches{reuse = true} gives the same batches in one pair of tensors", function()
  local a = sg.data.mnist{ dir = tmp .. "/idx", batch = 16, seed = 3, augment = { flip = true } }
  local b = sg.data.mnist{ dir = tmp .. "/idx", batch = 16, seed = 3, augment = { flip = true } }
  local fresh = all_batches(a.train)
  local n, first = 0, nil
  for x, y in b.train:batches{ reuse = true } do
    n = n + 1
    first = first or x
    T.check(rawequal(x, first), "reuse returns the loader's tensor")
    T.tensor_near(x, fresh[n], 0, "reused batch " .. n)
    T.eq(y:size(1), x:size(1))
  end
  T.eq(n, 4)
end)

T.test("batches{lookahead = true}: same batches, the next one taken ahead and put back", function()
  local opts = { dir = tmp .. "/idx", batch = 7, seed = 5, augment = { crop = 2, flip = true }, pad = 2 }
  local a, b = sg.data.mnist(opts), sg.data.mnist(opts)
  local fresh, fy = all_batches(a.train)           -- epoch 1, 8 batches
  local n, seen = 0, {}
  for x, y in b.train:batches{ lookahead = true } do
    n = n + 1
    seen[x] = true
    T.tensor_near(x, fresh[n], 0, "lookahead batch " .. n)
    T.tensor_near(y:float(), fy[n]:float(), 0, "lookahead labels " .. n)
    -- batch n+1 is already out of the C loader, but not counted
    T.eq(b.train:state().index, math.min(7 * n, 50), "state after batch " .. n)
  end
  T.eq(n, #fresh, "one epoch")
  local pairs_used = 0
  for _ in pairs(seen) do pairs_used = pairs_used + 1 end
  T.eq(pairs_used, 2, "two tensors take turns")

  -- break mid-epoch: the batch taken ahead comes back by batches(), next()
  -- and through state()/set_state() in another loader
  local ref = sg.data.mnist(opts)
  local want = {}
  for x in ref.train:epoch(2) do want[#want + 1] = x end
  local it = b.train:epoch(2, { lookahead = true })
  T.tensor_near(it(), want[1], 0, "epoch 2 batch 1")
  T.tensor_near(it(), want[2], 0, "epoch 2 batch 2")
  local st = b.train:state()
  T.eq(st.epoch, 2); T.eq(st.index, 14, "two batches delivered")
  local c = sg.data.mnist(opts)
  c.train:set_state(st)
  T.tensor_near(c.train:next(), want[3], 0, "restored elsewhere: batch 3")
  T.tensor_near(b.train:next(), want[3], 0, "next() after a lookahead: batch 3")
  local it2 = b.train:batches{ lookahead = true }
  T.tensor_near(it2(), want[4], 0, "a new iterator: batch 4")
  local rest = {}
  for x in b.train:batches() do rest[#rest + 1] = x end   -- puts batch 5 back
  T.eq(#rest, #want - 4, "the rest of epoch 2")
  for i, x in ipairs(rest) do T.tensor_near(x, want[4 + i], 0, "rest batch " .. i) end
  T.eq(b.train:state().index, 50, "epoch 2 done")
  -- epoch() drops what was taken ahead
  local it3 = b.train:epoch(3, { lookahead = true })
  it3()
  local want3 = {}
  for x in ref.train:epoch(3) do want3[#want3 + 1] = x end
  local it4 = b.train:epoch(3, { lookahead = true })
  for i = 1, #want3 do T.tensor_near(it4(), want3[i], 0, "epoch 3 again: batch " .. i) end
  T.check(it4() == nil, "the epoch ends")
  T.raises(function() b.train:batches{ lookahead = 1 } end, "lookahead must be true or false")
  T.raises(function() b.train:batches{ look_ahead = true } end, "unknown option 'look_ahead'")
end)

T.test("lookahead: positions off the batch grid, other iterators in between", function()
  local opts = { dir = tmp .. "/idx", batch = 7, seed = 5, drop_last = true }
  local a, ref = sg.data.mnist(opts), sg.data.mnist(opts)
  ref.train:set_state{ epoch = 1, index = 3 }
  local want = {}
  for x in ref.train:batches() do want[#want + 1] = x end
  T.eq(#want, 6, "batches from position 3 (the short tail dropped)")
  a.train:set_state{ epoch = 1, index = 3 }
  local it = a.train:batches{ lookahead = true }
  for i = 1, 4 do T.tensor_near(it(), want[i], 0, "batch " .. i) end
  T.eq(a.train:state().index, 3 + 4 * 7, "state: the batch taken ahead is not counted")
  T.tensor_near(a.train:next(), want[5], 0, "next() puts it back")
  -- an iterator made before the lookahead one, called in between
  a.train:set_state{ epoch = 1, index = 3 }
  local plain = a.train:batches()
  local la = a.train:batches{ lookahead = true }
  T.tensor_near(la(), want[1], 0, "lookahead: batch 1")
  T.tensor_near(plain(), want[2], 0, "plain iterator in between: batch 2")
  T.tensor_near(la(), want[3], 0, "lookahead again: batch 3")
  T.eq(a.train:state().index, 3 + 3 * 7, "three batches delivered")
end)

T.test("raw loaders (the GPU's form) give the plain loader's batches on the host", function()
  local core = require "sgdsa.core"
  local ds = sg.data.mnist{ dir = tmp .. "/idx", batch = 7 }.train.dataset
  local function mk(raw)
    return core.data.loader(ds, { batch = 7, pad = 2, crop = 2, flip = true, raw = raw,
                                  mean = { 0.3 }, std = { 0.2 } },
                            sg.Generator(1, "shuffle"), sg.Generator(1, "augment"))
  end
  local a, b = mk(false), mk(true)
  for i = 1, 8 do
    local xa, ya = a:next()
    local xb, yb = b:next()
    T.tensor_near(xb, xa, 0, "next() batch " .. i)
    T.tensor_near(yb:float(), ya:float(), 0, "labels " .. i)
  end
  T.check(a:next() == nil and b:next() == nil, "both end")
  a:start_epoch(1); b:start_epoch(1)
  local xa, ya, xb, yb = core.zeros(1), core.zeros(1, "int32"), core.zeros(1), core.zeros(1, "int32")
  for i = 1, 8 do
    local na, fa = a:next_into(xa, ya)
    local nb, fb = b:next_into(xb, yb)
    T.eq(nb, na, "sizes"); T.eq(fb, fa, "first positions"); T.eq(fa, 7 * (i - 1), "position")
    T.tensor_near(xb, xa, 0, "next_into batch " .. i)
  end
end)

T.test("normalization: computed and given", function()
  local d = sg.data.mnist{ dir = tmp .. "/idx", batch = 50, shuffle = false }
  local m, s = d.info.mean[1], d.info.std[1]
  T.check(m > 0 and s > 0, "mean/std recorded")
  local x = d.train:next()
  T.near(x:mean(), 0, 1e-5, "normalized mean")
  T.near(((x * x):mean()) ^ 0.5, 1, 1e-4, "normalized std")
  local g = sg.data.mnist{ dir = tmp .. "/idx", batch = 50, shuffle = false, normalize = { mean = 0.5, std = 0.25 } }
  local xg = g.train:next()
  T.near(xg[2][1][1][1], (13 / 255 - 0.5) / 0.25, 1e-5, "given mean/std")
  T.raises(function() sg.data.mnist{ dir = tmp .. "/idx", normalize = { mean = 0.5 } } end, "normalize.std")
end)

T.test("validation split and limit", function()
  local d = sg.data.mnist{ dir = tmp .. "/idx", validation = 10, limit = 40, seed = 2, batch = 4 }
  T.eq(d.train:size(), 30); T.eq(d.val:size(), 10); T.eq(d.info.nval, 10)
  local e = sg.data.mnist{ dir = tmp .. "/idx", validation = 10, limit = 40, seed = 2, batch = 4 }
  same_batches(all_batches(d.val), all_batches(e.val), "validation fixed by the seed")
end)

T.test("options and errors", function()
  T.raises(function() sg.data.fashion_mnist{ bach = 3 } end, "unknown option 'bach' (allowed: augment, batch,")
  T.raises(function() sg.data.mnist{ dir = tmp .. "/nowhere" } end, tmp .. "/nowhere/train-images-idx3-ubyte.gz")
  local e = T.raises(function() sg.data.fashion_mnist{ dir = tmp .. "/nowhere" } end, "dataset-fashion-mnist")
  T.check(e:find("/usr/share/datasets/fashion-mnist", 1, true), "names the default location")
  T.raises(function() sg.data.cifar10{ dir = tmp .. "/nowhere" } end, "cifar-10-binary.tar.gz")
  T.raises(function() sg.data.mnist{ dir = tmp .. "/idx", augment = { rotate = 3 } } end, "augment.rotate")
  T.raises(function() sg.data.mnist{ dir = tmp .. "/idx", batch = -1 } end, "batch must be a non-negative integer")
  T.raises(function() sg.data.mnist{ dir = tmp .. "/idx", batch = 64, drop_last = true } end,
           "batch 64 is larger than the 50 images")
  local d = sg.data.mnist{ dir = tmp .. "/idx", pad = 2 }
  d.check_input({ 1, 10, 9 }, "lenet")
  T.raises(function() d.check_input({ 3, 32, 32 }, "resnet34") end,
           "images are 1x6x5 (1x10x9 after padding 2) but resnet34 expects 3x32x32")
  -- a corrupt file: wrong magic
  os.execute("mkdir -p '" .. tmp .. "/bad'")
  T.write_idx(tmp .. "/bad", "train", 5, 2, 2)
  T.write_idx(tmp .. "/bad", "t10k", 5, 2, 2)
  write(tmp .. "/bad/t10k-labels-idx1-ubyte", string.pack(">I4I4", 0x803, 5) .. "\0\1\2\3\4")
  T.raises(function() sg.data.mnist{ dir = tmp .. "/bad" } end, "magic number 0x00000803, expected 0x00000801")
end)

T.test("cifar10 and cifar100 binary", function()
  local function rec(labels, i)
    local px = {}
    for p = 0, 3071 do px[#px + 1] = string.char((i * 7 + p) % 256) end
    return labels .. table.concat(px)
  end
  local i = 0
  for f = 1, 5 do
    local r = {}
    for _ = 1, 3 do r[#r + 1] = rec(string.char(i % 10), i); i = i + 1 end
    write(tmp .. "/c10/data_batch_" .. f .. ".bin", table.concat(r))
  end
  write(tmp .. "/c10/test_batch.bin", rec("\3", 100) .. rec("\4", 101))
  local d = sg.data.cifar10{ dir = tmp .. "/c10", batch = 4, normalize = false, shuffle = false }
  T.eq(d.train:size(), 15); T.eq(d.test:size(), 2); T.eq(table.concat(d.info.shape, "x"), "3x32x32")
  local x, y = d.test:next()
  T.eq(y[1], 3); T.eq(y[2], 4)
  T.near(x[2][3][32][32], ((101 * 7 + 3071) % 256) / 255, 1e-6, "last pixel of the blue channel")
  local xs, ys = all_batches(d.train)
  T.eq(ys[4][3], 14 % 10)
  write(tmp .. "/c100/train.bin", rec("\1\55", 0) .. rec("\19\99", 1))
  write(tmp .. "/c100/test.bin", rec("\2\3", 2))
  local fine = sg.data.cifar100{ dir = tmp .. "/c100", shuffle = false, normalize = false }
  local coarse = sg.data.cifar100{ dir = tmp .. "/c100", shuffle = false, label = "coarse", normalize = false }
  T.eq(fine.info.classes, 100); T.eq(coarse.info.classes, 20)
  local _, yf = fine.train:next()
  local _, yc = coarse.train:next()
  T.eq(yf[2], 99); T.eq(yc[2], 19)
  T.raises(function() sg.data.cifar100{ dir = tmp .. "/c100", label = "medium" } end, "label must be")
  write(tmp .. "/c10/data_batch_2.bin", rec("\1", 0) .. "short")
  T.raises(function() sg.data.cifar10{ dir = tmp .. "/c10" } end, "not a whole number of 3073-byte CIFAR-10 records")
end)

T.test("hdf5 user data (python3-h5py)", function()
  local py = tmp .. "/mk.py"
  write(py, [[
import sys, numpy as np, h5py
x = (np.arange(12 * 4 * 4 * 3) % 256).astype(np.uint8).reshape(12, 4, 4, 3)
with h5py.File(sys.argv[1], "w") as f:
    f["train/x"] = x
    f["train/y"] = np.arange(12) % 3
    f["test/x"] = x[:5]
    f["test/y"] = np.arange(5) % 3
]])
  if not os.execute("/usr/bin/python3 -c 'import h5py, numpy' 2>/dev/null") then
    io.write("  (python3-h5py missing: HDF5 covered by the C test only)\n")
    return
  end
  local file = tmp .. "/user.h5"
  assert(os.execute("/usr/bin/python3 '" .. py .. "' '" .. file .. "'"))
  local d = sg.data.hdf5{ file = file, images = "train/x", labels = "train/y", test_images = "test/x",
                          test_labels = "test/y", layout = "NHWC", normalize = false, shuffle = false,
                          batch = 12 }
  T.eq(d.info.classes, 3); T.eq(table.concat(d.info.shape, "x"), "3x4x4")
  local x, y = d.train:next()
  -- NHWC element (i=1, h=2, w=3, c=2) -> index ((1*4+2)*4+3)*3+2
  T.near(x[2][3][3][4], ((((1 * 4 + 2) * 4 + 3) * 3 + 2) % 256) / 255, 1e-6, "NHWC transposed")
  T.eq(y[12], 11 % 3)
  T.raises(function() sg.data.hdf5{ file = file } end, "no dataset 'train/images'")
  T.raises(function() sg.data.hdf5{ file = tmp .. "/none.h5" } end, tmp .. "/none.h5")
end)

T.done()
