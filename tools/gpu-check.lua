-- tools/gpu-check.lua - the Lua stages of tools/gpu-check (run from the
-- source root with `sgdsa run tools/gpu-check.lua mode=... [key=value]`).
-- Every result is printed as a line "RESULT key value" for the results file.
--
--   mode=agree model=vgg16|resnet34 [batch=8 steps=2]
--       whole SGD-SA steps of the full-width CIFAR model on the CPU and the
--       GPU from the same weights (tests/lua/cuda_compare.lua)
--   mode=bench model=vgg16|resnet34 [batch=512 steps=20 tf32=false det=false]
--       images/s of SGD steps (forward, backward, update) and of SGD-SA steps
--       (plus the trial forward and the Metropolis test), and their ratio;
--       on the GPU also launches and host waits per step
--   mode=epoch [model=resnet34 batch=512 tf32=true images=50000 data=synthetic]
--       the wall time of one SGD-SA epoch through the data loader as the
--       trainer runs it (pinned raw uint8 batches, the copy overlapped with
--       the step, the transform on the GPU): CIFAR-10 when it is found
--       (sgdsa.data.cifar10), else a synthetic CIFAR-sized uint8 HDF5 file
--       written first (random pixels and labels; the same loader path); only
--       when that fails, synthetic batches already on the GPU (the output says
--       which)
--   mode=overlap [model=resnet34 width=1 batch=256 steps=20 tf32=true]
--       the same SGD-SA steps fed two ways from one loader configuration
--       (a synthetic CIFAR-sized uint8 file, crop and flip augmentation, its
--       own seed): as the trainer feeds them (pinned raw batches copied on
--       the input stream while the step before computes, the transform on
--       the GPU) and from batches already on the GPU (made on the host and
--       copied before the first step); deterministic algorithms: every
--       step's f(w), f(w') and decision must be the same bits, so a
--       difference is a copy/compute race
--   mode=profile model=vgg16|resnet34 [batch=512 steps=5 tf32=false device=cuda]
--       each layer's forward (train and trial) and backward time in SGD-SA
--       steps, synchronized around each call (device=cpu runs it here); on
--       the GPU also the launches per step
local sg = require "sgdsa"
local core = sg.core
local search = require "sgdsa.search"
local args = ... or sg.args or {}

-- device=cpu runs every mode on the CPU (agree: CPU against CPU), so that
-- tests/sh/test_gpu_tools.sh keeps this script working where no GPU is
local device = args.device or "cuda"
if device ~= "cuda" and device ~= "cpu" then error("tools/gpu-check.lua: device=cuda|cpu", 0) end
local gpu = device == "cuda"
local ok, why = core.cuda.available()
if gpu and not ok then
  print("RESULT error no CUDA device: " .. tostring(why))
  os.exit(77)
end

local mode = args.mode or "bench"
local model_name = args.model or "resnet34"
local C = dofile("tests/lua/cuda_compare.lua")

local function build(width)
  return require("models." .. model_name){channels = 3, size = 32, classes = 10,
                                          width = width or tonumber(args.width) or 1}
end

-- A CIFAR-sized uint8 HDF5 file of `images` random images and labels (the
-- GPU machines have no data sets): its path.
local function synthetic_file(images)
  local h5 = require "sgdsa.h5"
  local path = (os.getenv("TMPDIR") or "/tmp") .. "/sgdsa-gpu-check-cifar.h5"
  local g = sg.Generator(11, "synthetic")
  local x = sg.zeros(images, 3, 32, 32, "uint8")
  local chunk = 5000
  for i = 1, images, chunk do
    local k = math.min(chunk, images - i + 1)
    x:narrow(1, i, k):copy(sg.zeros(k, 3, 32, 32):uniform_(0, 255, g))
  end
  local y = sg.zeros(images, "int32")
  for i = 1, images do y[i] = g:random(10) - 1 end
  local f = h5.open(path, "w", {atomic = true})
  f:write("train/images", x); f:write("train/labels", y)
  local nt = math.min(1000, images)
  f:write("test/images", x:narrow(1, 1, nt)); f:write("test/labels", y:narrow(1, 1, nt))
  f:close()
  return path
end

local function result(k, v) print(string.format("RESULT %s %s", k, tostring(v))) end

local function sync() if gpu then core.cuda.synchronize() end end

if mode == "agree" then
  if gpu then core.cuda.set_tf32(false) end
  local r = C.compare(build, {batch = tonumber(args.batch) or 8, steps = tonumber(args.steps) or 2,
                              optim = "sgdsa", device = device})
  for _, l in ipairs(r.lines) do print(l) end
  for _, f in ipairs(r.failures) do print("MISMATCH " .. f) end
  result("agree_" .. model_name, r.ok and "PASS" or "FAIL")
  os.exit(r.ok and 0 or 1)
end

local tf32 = args.tf32 == true or args.tf32 == "true" or args.tf32 == 1
if gpu then core.cuda.set_tf32(tf32) end
-- det=true: deterministic cuDNN algorithms chosen by heuristics (the
-- trainer's default on the GPU); otherwise timed by cudnnFind
local det = args.det == true or args.det == "true"
if gpu then core.cuda.set_deterministic(det) end
local prec = (tf32 and "tf32" or "fp32") .. (det and "det" or "")
local batch = tonumber(args.batch) or 512

-- Time `steps` search steps after `warm` untimed ones (cuDNN's algorithm
-- search happens in the first step of each shape).
local function time_steps(S, batches, warm, steps)
  for i = 1, warm do assert(S:step(batches[(i - 1) % #batches + 1][1], batches[(i - 1) % #batches + 1][2])) end
  sync()
  local t0 = core.time()
  for i = 1, steps do
    local b = batches[(i - 1) % #batches + 1]
    local rec, err = S:step(b[1], b[2])
    if not rec then error(err, 0) end
  end
  sync()
  return core.time() - t0
end

local function device_batches(k, n)
  local bs = {}
  for i = 1, k do
    local x, y = C.batch(n, {3, 32, 32}, 10, 100 + i)
    bs[i] = {x:to(device), y:to(device)}
  end
  return bs
end

if mode == "bench" then
  local steps = tonumber(args.steps) or 20
  local m = build():to(device)
  local p0 = m.params:clone()
  local bs = device_batches(2, batch)
  local res = {}
  -- ssa: the naive SA of the paper's Figures 1-2 (a random direction drawn on
  -- the device, two trial forwards, no backward)
  for _, kind in ipairs{"sgd", "sgdsa", "ssa"} do
    m.params:copy(p0)
    local S = search.new{model = m, optim = C.optim(kind, 0.01), rng = sg.Generator(3, "search")}
    time_steps(S, bs, 3, 0)
    local s0 = gpu and core.cuda.memory_stats()
    local t = time_steps(S, bs, 0, steps)
    res[kind] = t / steps
    if gpu then
      -- per timed step: kernels and cuDNN/cuBLAS calls queued, host waits
      -- (less time_steps' two synchronize() calls, two waits each)
      local s1 = core.cuda.memory_stats()
      result(string.format("%s_%s_%s_launches_per_step", model_name, prec, kind),
             string.format("%.0f", (s1.launches - s0.launches) / steps))
      result(string.format("%s_%s_%s_host_waits_per_step", model_name, prec, kind),
             string.format("%.1f", (s1.host_waits - s0.host_waits - 4) / steps))
    end
    result(string.format("%s_%s_%s_step_ms", model_name, prec, kind), string.format("%.2f", 1000 * t / steps))
    result(string.format("%s_%s_%s_images_per_s", model_name, prec, kind),
           string.format("%.0f", steps * batch / t))
  end
  result(string.format("%s_%s_sa_over_sgd_step_time", model_name, prec),
         string.format("%.3f", res.sgdsa / res.sgd))
  result(string.format("%s_%s_ssa_over_sgd_step_time", model_name, prec),
         string.format("%.3f", res.ssa / res.sgd))
  if gpu then
    -- the cuDNN algorithms the steps chose (timed as each pass runs, or the
    -- heuristics' in deterministic mode), one line each in the log
    local algos, timed, chosen = core.cuda.conv_algorithms(), 0, 0
    for _, a in ipairs(algos) do
      if a.tf32 == tf32 and a.deterministic == det then
        chosen = chosen + 1
        print(string.format("conv %s w %s s %s p %s %-15s algo %d math %d workspace %d %s",
                            a.input, a.weight, a.stride, a.pad, a.pass, a.algo, a.math,
                            a.workspace, a.ms and string.format("%.3f ms", a.ms) or "(heuristics)"))
        if a.ms then timed = timed + 1 end
      end
    end
    result(string.format("%s_%s_conv_algorithms", model_name, prec),
           string.format("%d chosen, %d timed", chosen, timed))
    local st = core.cuda.memory_stats()
    result(string.format("%s_%s_peak_gpu_mib", model_name, prec), string.format("%.0f", st.peak_in_use / 2^20))
    -- steady state: no device allocation across further steps (counted after
    -- the new search's trial buffer and two warm-up steps)
    local S = search.new{model = m, optim = C.optim("sgdsa"), rng = sg.Generator(3, "search")}
    time_steps(S, bs, 2, 0)
    local a = core.cuda.memory_stats().device_allocs
    time_steps(S, bs, 0, 3)
    result(string.format("%s_%s_device_allocs_in_steady_steps", model_name, prec),
           core.cuda.memory_stats().device_allocs - a)
  end
  os.exit(0)
end

if mode == "epoch" then
  local images = tonumber(args.images) or 50000
  local m = build():to(device)
  local S = search.new{model = m, optim = C.optim("sgdsa"), rng = sg.Generator(3, "search")}
  -- the trainer's GPU data path: pinned batch buffers, copied by the loader
  -- straight into tensors on the device
  local prev = gpu and core.cuda.use_pinned_loader_memory(true)
  local okd, data = false, "data=synthetic asked"
  if args.data ~= "synthetic" then
    okd, data = pcall(function() return sg.data.cifar10{batch = batch, workers = 4} end)
  end
  local what = "cifar10"
  if not (okd and data and data.train) then
    -- no CIFAR-10 here (the GPU machines have no network): the same shapes
    -- and types in an HDF5 file of our own, through the same loader path
    local why_not = tostring(data):gsub("\n", " ")
    okd, data = pcall(function()
      return sg.data.hdf5{file = synthetic_file(images), batch = batch, workers = 4}
    end)
    what = "synthetic CIFAR-sized uint8 HDF5 file (CIFAR-10 not found: " .. why_not .. ")"
  end
  if gpu then core.cuda.use_pinned_loader_memory(prev) end
  local nb_full, last = images // batch, images % batch
  -- warm up both batch shapes (the algorithm search is not part of an epoch's cost)
  local warm = device_batches(1, batch)
  time_steps(S, warm, 2, 0)
  if last > 0 then time_steps(S, device_batches(1, last), 2, 0) end
  local t0, n = core.time(), 0
  if okd and data and data.train then
    result("epoch_data", what .. (gpu and (" (sgdsa.data loader: pinned raw uint8 batches, copy overlapped with the step, pad/crop/flip/normalize on the GPU; SGDSA_GPU_INPUT=" .. (os.getenv("SGDSA_GPU_INPUT") or "device") .. ")") or " (sgdsa.data loader, on the cpu)"))
    local loader = data.train
    for x, y in loader:batches{device = device} do
      local rec, err = S:step(x, y)
      if not rec then error(err, 0) end
      n = n + y:size(1)
      if n >= images then break end
    end
  else
    result("epoch_data", "synthetic batches on the GPU (no data file: " .. tostring(data):gsub("\n", " ") .. ")")
    local bs = device_batches(4, batch)
    for i = 1, nb_full do
      local b = bs[(i - 1) % #bs + 1]
      assert(S:step(b[1], b[2]))
      n = n + batch
    end
    if last > 0 then
      local lb = device_batches(1, last)[1]
      assert(S:step(lb[1], lb[2]))
      n = n + last
    end
  end
  sync()
  local t = core.time() - t0
  result(string.format("%s_%s_sgdsa_epoch_s", model_name, prec), string.format("%.3f", t))
  result(string.format("%s_%s_sgdsa_epoch_images", model_name, prec), n)
  os.exit(0)
end

if mode == "overlap" then
  local steps = tonumber(args.steps) or 20
  if gpu then core.cuda.set_deterministic(true) end
  local m = build():to(device)
  local p0, b0 = m.params:clone(), m.buffers:clone()
  local path = synthetic_file(steps * batch)
  local ds = sg.stream("dropout"):state()
  -- a loader of the same order and augmentation each time (its own seed);
  -- `pinned`: the trainer's GPU path (raw batches, transform on the GPU)
  local function loader(pinned)
    local prev = gpu and core.cuda.use_pinned_loader_memory(pinned)
    local d = sg.data.hdf5{file = path, batch = batch, workers = 2, seed = 9,
                           augment = {crop = 4, flip = true}}
    if gpu then core.cuda.use_pinned_loader_memory(prev) end
    return d.train
  end
  local function run(batches)
    m.params:copy(p0); m.buffers:copy(b0)
    sg.stream("dropout"):set_state(ds)
    local S = search.new{model = m, optim = C.optim("sgdsa"), rng = sg.Generator(3, "search")}
    local recs = {}
    for x, y in batches do
      local r, err = S:step(x, y)
      if not r then error(err, 0) end
      recs[#recs + 1] = {f_w = r.f_w, f_trial = r.f_trial, accepted = r.accepted, move = r.move}
      if #recs == steps then break end
    end
    return recs
  end
  -- fed as the trainer feeds them
  local fed = run(loader(true):batches{device = device})
  -- the same batches, made on the host and on the device before the first step
  local resident, it = {}, loader(false):batches{device = "cpu"}
  for x, y in it do
    resident[#resident + 1] = {x:clone():to(device), y:clone():to(device)}
    if #resident == steps then break end
  end
  sync()
  local i = 0
  local ref = run(function() i = i + 1; if resident[i] then return resident[i][1], resident[i][2] end end)
  local bad = 0
  for k = 1, math.min(#fed, #ref) do
    local a, b = fed[k], ref[k]
    local same = a.f_w == b.f_w and (a.f_trial == b.f_trial or (a.f_trial ~= a.f_trial and b.f_trial ~= b.f_trial))
                 and a.accepted == b.accepted and a.move == b.move
    if not same then
      bad = bad + 1
      if bad <= 5 then
        print(string.format("MISMATCH step %d: fed from the host f(w) %.9g f(w') %.9g %s, from the device f(w) %.9g f(w') %.9g %s",
                            k, a.f_w, a.f_trial, tostring(a.accepted), b.f_w, b.f_trial, tostring(b.accepted)))
      end
    end
  end
  if #fed ~= steps or #ref ~= steps then
    bad = bad + 1
    print(string.format("MISMATCH %d steps fed from the host, %d from the device, %d asked", #fed, #ref, steps))
  end
  result(string.format("overlap_%s_%s", model_name, prec),
         bad == 0 and string.format("PASS (%d steps, host-fed = device-fed bit for bit)", steps)
                  or string.format("FAIL (%d of %d steps differ)", bad, steps))
  os.exit(bad == 0 and 0 or 1)
end

if mode == "profile" then
  -- Where a step's time goes, layer by layer: every leaf module's forward
  -- (by mode: "train" or the SA "trial") and backward, and the loss, timed
  -- with the device synchronized around each call, summed over `steps`
  -- SGD-SA steps after 3 untimed ones and grouped by kind and input shape.
  -- The synchronizations add launch gaps the real step does not have: the
  -- rows rank the layers; the bench stage gives the true step time.
  local nn = require "sgdsa.nn"
  local steps = tonumber(args.steps) or 5
  local m = build():to(device)
  local bs = device_batches(2, batch)
  local S = search.new{model = m, optim = C.optim("sgdsa"), rng = sg.Generator(3, "search")}
  local acc, group, on = {}, {}, false
  local function timed(key, grp, f, ...)
    if not on then return f(...) end
    sync()
    local t0 = core.time()
    local r = table.pack(f(...))   -- all results (CrossEntropy:forward gives two)
    sync()
    local dt = core.time() - t0
    acc[key] = (acc[key] or 0) + dt
    group[grp] = (group[grp] or 0) + dt
    return table.unpack(r, 1, r.n)
  end
  local function shape(x)
    local d = {}
    for i = 1, x:dim() do d[i] = x:size(i) end
    return table.concat(d, "x")
  end
  -- every leaf class of sgdsa.nn (and the parents that define its methods,
  -- e.g. BatchNorm for BatchNorm2d), not the containers
  local containers = {Module = true, Sequential = true, Residual = true, Model = true,
                      CrossEntropy = true}
  local patched = {}
  for _, c in pairs(nn) do
    local cls = type(c) == "table" and c.kind and not containers[c.kind] and c or nil
    while cls and cls ~= nn.Module and not patched[cls] do
      patched[cls] = true
      local fwd, bwd = rawget(cls, "forward"), rawget(cls, "backward")
      if fwd then
        cls.forward = function(self, x, md)
          return timed(string.format("%s %s fwd(%s) %s", self.kind, self:describe(), md, shape(x)),
                       self.kind .. "_fwd_" .. tostring(md), fwd, self, x, md)
        end
      end
      if bwd then
        cls.backward = function(self, x, dy, target)
          return timed(string.format("%s %s bwd %s", self.kind, self:describe(), shape(x)),
                       self.kind .. "_bwd", bwd, self, x, dy, target)
        end
      end
      cls = cls.super
    end
  end
  local CE = nn.CrossEntropy
  local cf, cb = CE.forward, CE.backward
  CE.forward = function(self, ...) return timed("CrossEntropy fwd", "CrossEntropy_fwd", cf, self, ...) end
  CE.backward = function(self, ...) return timed("CrossEntropy bwd", "CrossEntropy_bwd", cb, self, ...) end
  time_steps(S, bs, 3, 0)
  on = true
  local l0 = gpu and core.cuda.memory_stats().launches
  local t = time_steps(S, bs, 0, steps)
  on = false
  if gpu then
    -- kernels and cuDNN/cuBLAS calls queued per step (the synchronizations add none)
    result(string.format("profile_%s_%s_launches_per_step", model_name, prec),
           string.format("%.0f", (core.cuda.memory_stats().launches - l0) / steps))
  end
  -- the keys of t, largest value first
  local function by_value(t)
    local ks = {}
    for k in pairs(t) do ks[#ks + 1] = k end
    table.sort(ks, function(a, b) return t[a] > t[b] end)
    return ks
  end
  local keys, total = by_value(acc), 0
  for _, v in pairs(acc) do total = total + v end
  print(string.format("%s %s batch %d, %d SGD-SA steps, %.2f ms per step with a sync around each layer, layers %.2f ms:",
                      model_name, prec, batch, steps, 1000 * t / steps, 1000 * total / steps))
  for _, k in ipairs(keys) do
    print(string.format("%9.3f ms %5.1f%%  %s", 1000 * acc[k] / steps, 100 * acc[k] / total, k))
  end
  -- grouped by kind and pass, for the results file
  local gk = by_value(group)
  for i = 1, math.min(#gk, 10) do
    local k = gk[i]
    result(string.format("profile_%s_%s_%s", model_name, prec, k), string.format("%.2f ms/step (%.0f%%)", 1000 * group[k] / steps, 100 * group[k] / total))
  end
  result(string.format("profile_%s_%s_step_ms_synced", model_name, prec), string.format("%.2f", 1000 * t / steps))
  os.exit(0)
end

error("tools/gpu-check.lua: unknown mode " .. tostring(mode) .. " (agree, bench, epoch, overlap, profile)")
