-- bench-data.lua - batches per second of sgdsa.data loaders, as a training
-- loop sees them (`for x, y in loader:batches()`, fresh float32 tensors), at
-- batch 128 and 512, with and without augmentation (crop 4 + flip), on the
-- real Fashion-MNIST (padded to 32x32, when installed) and on synthetic
-- CIFAR-sized data (10,000 random 3x32x32 images written as CIFAR-10 binary).
-- Also with prefetch = 0 (no background thread) and with batches{reuse = true}
-- (no tensor allocation per batch). The consumer does no work here, so the
-- thread's gain (overlap with the training step) does not show; this measures
-- the producer's throughput. The last row of each group uses `workers`
-- threads per batch. Options: seconds=N per case (default 2), workers=N (4).
local sg = sgdsa or require "sgdsa"
local opts = ... or {}
local secs = tonumber(opts.seconds) or 2
local workers = tonumber(opts.workers) or 4

local wall = sg.core.time -- monotonic seconds

local function bench(make, batch, augment, prefetch, reuse, workers)
  local d = make{ batch = batch, augment = augment and { crop = 4, flip = true } or false,
                  prefetch = prefetch, seed = 1, workers = workers }
  local n, imgs = 0, 0
  local t0 = wall()
  while wall() - t0 < secs do
    for x, y in d.train:batches{ reuse = reuse } do
      n = n + 1
      imgs = imgs + y:size(1)
      if wall() - t0 >= secs then break end
    end
  end
  local dt = wall() - t0
  return n / dt, imgs / dt
end

local sets = {}
if io.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", "rb") or os.getenv("SGDSA_DATA") then
  local ok, err = pcall(sg.data.fashion_mnist, { limit = 100 })
  if ok then
    sets[#sets + 1] = { "fashion-mnist 1x32x32", function(o) o.pad = 2; return sg.data.fashion_mnist(o) end }
  else
    io.write("fashion-mnist skipped: ", tostring(err), "\n")
  end
end

local tmp = (os.getenv("SGDSA_TEST_TMP") or os.getenv("TMPDIR") or "/tmp") .. "/bench-data-cifar"
os.execute("mkdir -p '" .. tmp .. "'")
do
  local g = sg.Generator(5, "bench")
  local recs = {}
  for i = 1, 2000 do
    local px = {}
    for k = 1, 48 do px[k] = string.char(g:random(0, 255)) end
    recs[i] = string.char(i % 10) .. string.rep(table.concat(px), 64)
  end
  local blob = table.concat(recs)
  for f = 1, 5 do
    local h = assert(io.open(tmp .. "/data_batch_" .. f .. ".bin", "wb")); h:write(blob); h:close()
  end
  local h = assert(io.open(tmp .. "/test_batch.bin", "wb")); h:write(recs[1]); h:close()
end
sets[#sets + 1] = { "synthetic cifar 3x32x32", function(o) o.dir = tmp; return sg.data.cifar10(o) end }

io.write(string.format("%-24s %6s %10s %9s %6s %8s %12s %12s\n", "data", "batch", "augment", "prefetch",
                       "reuse", "workers", "batches/s", "images/s"))
for _, s in ipairs(sets) do
  for _, batch in ipairs { 128, 512 } do
    for _, aug in ipairs { false, true } do
      for _, case in ipairs { { 2, false, 1 }, { 0, false, 1 }, { 2, true, 1 }, { 2, true, workers } } do
        local bps, ips = bench(s[2], batch, aug, case[1], case[2], case[3])
        io.write(string.format("%-24s %6d %10s %9d %6s %8d %12.1f %12.0f\n", s[1], batch,
                               aug and "crop+flip" or "none", case[1], case[2] and "yes" or "no",
                               case[3], bps, ips))
      end
    end
  end
end
