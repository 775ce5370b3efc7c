-- test_cuda_model.lua - whole training steps on the CPU and the GPU agree:
-- small models from models/ (LeNet with BatchNorm, a reduced-width ResNet-18,
-- a reduced-width VGG16), two SGD-SA steps and one SGD step each (two SSA
-- steps for LeNet: its random directions drawn on the device from the search
-- stream, as the CPU draws them), compared by
-- tests/lua/cuda_compare.lua (objectives, SA decisions, parameters, gradients,
-- running statistics, eval forward). Also checks the device dispatch of
-- core.nn: a mixed-device call is an error naming both devices; model:to()
-- round trips (every view re-pointed, values identical after cuda -> cpu);
-- a model with Pad, Residual, Dropout and the pooling layers; the GPU data
-- path (loader batches straight onto the device, pinned memory); and a tiny
-- trainer run with device = "cuda" against the same run on the CPU. Skips
-- (exit 77) without a usable GPU.
local T = dofile("tests/lua/testlib.lua")
local sg = require "sgdsa"
local core = sg.core

T.need_cuda("the CPU/GPU model-step comparison")
core.cuda.set_tf32(false)
local C = dofile("tests/lua/cuda_compare.lua")
local function maxdiff(a, b) return (a:cpu():contiguous() - b:cpu():contiguous()):abs():max() end

local function check(name, build, o)
  T.test(name, function()
    local r = C.compare(build, o)
    for _, l in ipairs(r.lines) do print("  " .. l) end
    T.check(r.ok, table.concat(r.failures, "; "))
  end)
end

check("lenet: 2 SGD-SA steps cpu == gpu", function()
  return require("models.lenet"){channels = 1, size = 28, classes = 10} end,
  {batch = 16, steps = 2, optim = "sgdsa"})
check("lenet: 1 SGD step cpu == gpu", function()
  return require("models.lenet"){channels = 1, size = 28, classes = 10} end,
  {batch = 16, steps = 1, optim = "sgd"})
check("lenet: 2 SSA steps (random directions drawn on each device from one stream) cpu == gpu", function()
  return require("models.lenet"){channels = 1, size = 28, classes = 10} end,
  {batch = 16, steps = 2, optim = "ssa"})
-- parameter sizes that are not multiples of 4 (135 floats for the first
-- weight, 5 and 7 channels): packed densely, the views handed to cuDNN and
-- cuBLAS were 4-byte aligned (the emulator refuses them, as cuDNN's
-- vectorized kernels would); nn.model aligns every tensor to 64 floats
local function odd_net()
  local nn = require "sgdsa.nn"
  local m = nn.model(nn.Sequential{
    nn.Conv2d(3, 5, 3, {padding = 1, bias = false}), nn.BatchNorm2d(5), nn.ReLU(true),
    nn.Conv2d(5, 7, 3, {padding = 1}), nn.BatchNorm2d(7), nn.ReLU(true),
    nn.MaxPool2d(2), nn.Flatten(), nn.Linear(7 * 3 * 3, 5), nn.BatchNorm1d(5), nn.ReLU(true),
    nn.Linear(5, 3)}, {input = {3, 6, 6}, name = "odd"})
  for _, e in ipairs(m.entries) do
    assert(e.offset % nn.ALIGN == 0, e.name .. " not aligned")
  end
  return m
end
check("odd sizes (a 3x5x3x3 weight, 5 and 7 channels): aligned views, 2 SGD-SA steps cpu == gpu",
  odd_net, {batch = 6, steps = 2, optim = "sgdsa"})
check("odd sizes: 2 SSA steps cpu == gpu", odd_net, {batch = 6, steps = 2, optim = "ssa"})
check("resnet18 (width 1/8): 2 SGD-SA steps cpu == gpu", function()
  return require("models.resnet18"){channels = 3, size = 32, classes = 10, width = 0.125} end,
  {batch = 8, steps = 2, optim = "sgdsa"})
check("vgg16 (width 1/8): 2 SGD-SA steps cpu == gpu", function()
  return require("models.vgg16"){channels = 3, size = 32, classes = 10, width = 0.125} end,
  {batch = 8, steps = 2, optim = "sgdsa"})

T.test("matmul of cuda tensors: the result on the gpu, equal to the cpu's", function()
  local g = sg.Generator(21, "matmul")
  local a, b = sg.randn(5, 7, g), sg.randn(7, 3, g)
  local c = a:matmul(b)
  local cg = a:cuda():matmul(b:cuda())
  T.eq(cg:device(), "cuda", "result device")
  T.tensor_near(cg:cpu(), c, 1e-5, "a:matmul(b)")
  T.tensor_near(sg.matmul(b:cuda():t(), a:cuda():t()):cpu(), c:t():contiguous(), 1e-5,
                "transposed views read in place")
  T.check(not pcall(function() return a:cuda():matmul(b) end), "a mixed pair is an error")
end)

T.test("tensor edge cases on the gpu: mixed devices, overlapping copies, integer reductions", function()
  local g = sg.Generator(22, "edges")
  -- a cuda output with cpu operands: an error naming both devices (not a crash)
  T.raises(function() sg.zeros(4):cuda():add_scaled_(sg.randn(4, g), 1, sg.randn(4, g)) end,
           "tensors on different devices")
  T.raises(function() sg.zeros(1):add_scaled_(sg.randn(4, g):cuda(), 1, sg.randn(4, g):cuda()) end,
           "tensors on different devices")
  -- overlapping views of one storage: as the cpu's memmove
  local x = sg.randn(10, g)
  local ref = x:clone()
  ref:narrow(1, 2, 9):copy(ref:narrow(1, 1, 9))
  local xg = x:cuda()
  xg:narrow(1, 2, 9):copy(xg:narrow(1, 1, 9))
  T.eq(maxdiff(xg, ref), 0, "overlapping copy forwards")
  ref = x:clone(); ref:narrow(1, 1, 9):copy(ref:narrow(1, 2, 9))
  xg = x:cuda(); xg:narrow(1, 1, 9):copy(xg:narrow(1, 2, 9))
  T.eq(maxdiff(xg, ref), 0, "overlapping copy backwards")
  xg:copy(xg)
  T.eq(maxdiff(xg, ref), 0, "a copy onto itself")
  -- integer tensors reduce on the gpu as on the cpu
  local lab = sg.tensor({3, 9, 0, 4}, "int32")
  T.eq(lab:cuda():max(), lab:max(), "int32 max")
  T.eq(lab:cuda():sum(), lab:sum(), "int32 sum")
  -- pad2d into its own input: refused before anything is resized
  local img = sg.randn(1, 1, 3, 3, g):cuda()
  local before = img:cpu()
  T.raises(function() core.cuda.pad2d(img, img, 1) end, "must not share storage")
  T.eq(table.concat(img:size(), "x"), "1x1x3x3", "input shape kept")
  T.eq(maxdiff(img, before), 0, "input values kept")
end)

T.test("core.nn dispatch: mixed devices name both", function()
  local x = sg.randn(2, 3):cuda()
  local w = sg.randn(4, 3)
  local err = T.raises(function() core.nn.linear_forward(x, sg.empty(1), w, nil) end, "cuda")
  T.check(err:find("cpu", 1, true), "message names the cpu too: " .. err)
end)

T.test("core.nn dispatch: cpu calls still reach the cpu kernels", function()
  local x, w = sg.randn(2, 3), sg.randn(4, 3)
  local y = core.nn.linear_forward(x, sg.empty(1), w, nil)
  T.eq(y:device(), "cpu", "output device")
  local yg = core.nn.linear_forward(x:cuda(), sg.empty(1), w:cuda(), nil)
  T.eq(yg:device(), "cuda", "output buffer follows the inputs to the gpu")
  T.tensor_near(yg:cpu(), y, 1e-5, "linear cpu vs gpu")
end)

T.test("memory pool: no device allocation in steady-state steps", function()
  local m = require("models.lenet"){channels = 1, size = 28, classes = 10}:to("cuda")
  local x, y = C.batch(32, {1, 28, 28}, 10)
  x, y = x:cuda(), y:cuda()
  local S = require("sgdsa.search").new{model = m, optim = C.optim("sgdsa")}
  for _ = 1, 3 do assert(S:step(x, y)) end
  core.cuda.synchronize()
  local a = core.cuda.memory_stats().device_allocs
  for _ = 1, 10 do assert(S:step(x, y)) end
  core.cuda.synchronize()
  local b = core.cuda.memory_stats().device_allocs
  T.eq(b - a, 0, "cudaMalloc calls during 10 steady-state steps")
end)

-- max |a - b| on the cpu (exact comparisons)

T.test("model:to round trip: views re-pointed, values identical after cuda -> cpu", function()
  local nn = require "sgdsa.nn"
  local m = require("models.resnet18"){channels = 3, size = 32, classes = 10, width = 0.125}
  local p0, b0 = m.params:clone(), m.buffers:clone()
  local x = C.batch(4, {3, 32, 32}, 10)
  local ref = m:forward(x, "eval"):clone()
  T.check(m:to("cuda") == m, "to returns the model")
  T.eq(m.device, "cuda", "model.device")
  for _, k in ipairs{"params", "grads", "buffers", "workspace"} do T.eq(m[k]:device(), "cuda", k) end
  for _, e in ipairs(m:named_tensors()) do
    local flat = e.kind == "param" and m.params or m.buffers
    T.check(e.tensor:shares_storage(flat), e.name .. " is a view of the moved flat tensor")
    if e.grad then T.check(e.grad:shares_storage(m.grads), e.name .. " grad view") end
  end
  local e1 = m.entries[1]
  T.eq(e1.module[e1.spec.name]:device(), "cuda", "module field re-pointed")
  T.check(e1.module[e1.spec.name]:shares_storage(m.params), "module field is a view of params")
  T.eq(maxdiff(m.params, p0), 0, "params moved exactly")
  T.tensor_near(m:forward(x:cuda(), "eval"):cpu(), ref, 1e-4, "eval forward on the gpu")
  -- a train step on the gpu, then back: every module-held tensor must follow
  local crit = nn.CrossEntropy()
  local _, y = C.batch(4, {3, 32, 32}, 10)
  crit:forward(m:forward(x:cuda(), "train"), y:cuda())
  m:zero_grad(); m:backward(x:cuda(), crit:backward())
  local pg, bg = m.params:cpu(), m.buffers:cpu()
  m:to("cpu")
  T.eq(m.device, "cpu", "back on the cpu")
  for _, k in ipairs{"params", "grads", "buffers", "workspace"} do T.eq(m[k]:device(), "cpu", k) end
  T.eq(maxdiff(m.params, pg), 0, "params identical after cuda -> cpu")
  T.eq(maxdiff(m.buffers, bg), 0, "buffers (running statistics) identical after cuda -> cpu")
  T.eq(maxdiff(m.params, p0), 0, "a forward/backward does not change the params")
  -- the cpu path works again, with the same loss object (its gradient buffer follows)
  local loss = crit:forward(m:forward(x, "train"), y)
  m:zero_grad(); m:backward(x, crit:backward())
  T.check(loss == loss and m.grads:norm() > 0, "cpu train step after the round trip")
  T.eq(crit:backward():device(), "cpu", "CrossEntropy's gradient buffer follows the logits")
end)

T.test("model:to: device names", function()
  local m = require("models.lenet"){channels = 1, size = 28, classes = 10}
  m:to("cuda:0")
  T.eq(m.device, "cuda", "cuda:0 is cuda")
  T.raises(function() m:to("cuda:1") end, "one GPU")
  T.raises(function() m:to("tpu") end, "unknown device")
end)

T.test("pad2d / crop2d on the gpu equal the cpu Pad exactly", function()
  local nn = require "sgdsa.nn"
  local pad = nn.Pad(3)
  local x = sg.randn(2, 3, 5, 4)
  local y = pad:forward(x, "train"):clone()
  local dy = sg.randn(2, 3, 11, 10)
  local dx = pad:backward(x, dy):clone()
  local pg = nn.Pad(3)
  pg.device = "cuda"
  local yg = pg:forward(x:cuda(), "train")
  T.eq(yg:device(), "cuda", "padded output on the gpu")
  T.eq(maxdiff(yg, y), 0, "pad2d")
  T.eq(maxdiff(pg:backward(x:cuda(), dy:cuda()), dx), 0, "crop2d")
  T.raises(function() core.cuda.pad2d(x:cuda(), sg.empty(1), -1) end, "padding")
  T.raises(function() core.cuda.crop2d(sg.randn(1, 1, 2, 2):cuda(), sg.empty(1), 2) end,
           "smaller than twice")
end)

-- Pad, identity and projection Residuals, Dropout, the three poolings, BN
-- 1d/2d: every module kind with tensors of its own.
local function build_mixed()
  local nn = require "sgdsa.nn"
  local function block(c)
    return nn.Residual(nn.Sequential{{"conv1", nn.Conv2d(c, c, 3, {padding = 1, bias = false})},
                                     {"bn1", nn.BatchNorm2d(c)}, {"relu", nn.ReLU(true)},
                                     {"conv2", nn.Conv2d(c, c, 3, {padding = 1})}})
  end
  local net = nn.Sequential{
    {"pad", nn.Pad(2)},
    {"conv", nn.Conv2d(1, 4, 3)}, {"bn", nn.BatchNorm2d(4)}, {"relu", nn.ReLU()},
    {"pool", nn.MaxPool2d(2)},
    {"res1", block(4)},
    {"res2", nn.Residual(nn.Sequential{{"conv1", nn.Conv2d(4, 6, 3, {padding = 1, stride = 2})},
                                        {"bn1", nn.BatchNorm2d(6)}},
                         nn.Sequential{{"0", nn.Conv2d(4, 6, 1, {stride = 2})}})},
    {"avg", nn.AvgPool2d(2, {stride = 1})},
    {"drop", nn.Dropout(0.25)},
    {"gap", nn.GlobalAvgPool()},
    {"fc1", nn.Linear(6, 12)}, {"bn1d", nn.BatchNorm1d(12)}, {"relu1d", nn.ReLU(true)},
    {"fc2", nn.Linear(12, 5)},
  }
  return nn.model(net, {input = {1, 12, 12}, name = "mixed"})
end
check("mixed modules (Pad, Residual, Dropout, pools): 3 SGD-SA steps cpu == gpu", build_mixed,
      {batch = 6, steps = 3, optim = "sgdsa"})

local F = dofile("tests/lua/trainer_fixture.lua")
local function tmpdir() return T.tmpdir("cuda_model") end

T.test("loader batches straight onto the gpu (pinned memory), labels int32", function()
  -- uint8 images: raw batches padded, cropped, flipped and normalized on the
  -- gpu, equal to the host's
  local path = F.data_file(tmpdir())
  local prev = core.cuda.use_pinned_loader_memory(true)
  local opts = {file = path, batch = 48, seed = 3, prefetch = 1, pad = 2,
                augment = {crop = 2, flip = true}}
  local d = sg.data.hdf5(opts)
  T.eq(core.cuda.use_pinned_loader_memory(prev), true, "the flag was on")
  local ref = sg.data.hdf5(opts)
  local n, it = 0, ref.train:epoch(1)
  for x, y in d.train:epoch(1, {device = "cuda"}) do
    local xr, yr = it()
    T.eq(x:device(), "cuda", "x device"); T.eq(y:device(), "cuda", "y device")
    T.eq(y:dtype(), "int32", "labels stay int32")
    T.eq(maxdiff(x, xr), 0, "images")
    T.eq(maxdiff(y:cpu():float(), yr:float()), 0, "labels")
    n = n + y:size(1)
  end
  T.eq(n, ref.train:size(), "one whole epoch")
  T.check(it() == nil, "both loaders end together")
  -- without lookahead (one slot, waited for), and a raw batch made on the host
  local it2 = ref.train:epoch(2)
  for x in d.train:epoch(2, {device = "cuda", lookahead = false}) do
    T.eq(maxdiff(x, it2()), 0, "epoch 2 images")
  end
  d.train:epoch(3); ref.train:epoch(3)
  T.eq(maxdiff(d.train:next(), ref.train:next()), 0, "a raw batch expanded on the host")
end)
-- The host waits for the device once per step, for the objectives it reads
-- back together when the acceptance test needs them (f(w), the training
-- loss, the trial's; SSA's two sides), nowhere else: a wait inside a layer,
-- or one per objective, would drain the GPU while the host decides.
T.test("host waits: one per steady-state step (sgd, sgd-sa scored both ways, ssa)", function()
  local m = require("models.resnet18"){channels = 3, size = 32, classes = 10, width = 0.125}:to("cuda")
  local x, y = C.batch(8, {3, 32, 32}, 10, 5)
  x, y = x:to("cuda"), y:to("cuda")
  for _, k in ipairs{{"sgd"}, {"sgdsa"}, {"sgdsa", "inference"}, {"ssa"}} do
    local kind = k[1] .. (k[2] and (" score=" .. k[2]) or "")
    local S = require("sgdsa.search").new{model = m, optim = C.optim(k[1], 0.01), score = k[2],
                                          rng = sg.Generator(3, "search")}
    S:epoch_start(1)
    for _ = 1, 2 do assert(S:step(x, y)) end
    local a = core.cuda.memory_stats().host_waits
    local l0 = core.cuda.memory_stats().launches
    assert(S:step(x, y))
    local l1 = core.cuda.memory_stats().launches
    for _ = 1, 3 do assert(S:step(x, y)) end
    T.eq(core.cuda.memory_stats().host_waits - a, 4, kind .. ": host waits in 4 steps")
    -- the launch count (kernels and cuDNN/cuBLAS calls) of a steady step,
    -- the same at every step
    local per = l1 - l0
    T.check(per > 20, kind .. ": " .. per .. " launches per step")
    T.eq(core.cuda.memory_stats().launches - l1, 3 * per, kind .. ": launches in 3 more steps")
    print(string.format("  %s: %d host wait and %d launches per step", kind, 1, per))
  end
end)

-- The objectives read back late are those of the CPU's run, also to a
-- neighborhood reading ctx.f and ctx.loss in propose (read on access: a
-- wait more); a non-finite f(w), known only at the read-back, still stops
-- the step with w as it was.
T.test("objectives read back late: ctx.f on access, a diverged f(w) leaves w", function()
  local p0, b0
  local function run(device, x, y)
    local m = require("models.lenet"){channels = 1, size = 28, classes = 10}
    if p0 then m.params:copy(p0); m.buffers:copy(b0) else p0, b0 = m.params:clone(), m.buffers:clone() end
    m:to(device)
    local seen = {}
    local inner = sg.optim.lr_set{H = {0.1, 0.05}}
    local nb = {name = "reads_f", propose = function(_, ctx)
      seen[#seen + 1] = {ctx.f, ctx.loss, ctx.ncorrect}
      return inner:propose(ctx)
    end}
    local o = sg.optim.optimizer{neighborhood = nb, acceptance = sg.optim.metropolis{T0 = 1, alpha = 0.8}}
    local S = require("sgdsa.search").new{model = m, optim = o, rng = sg.Generator(3, "search")}
    S:epoch_start(1)
    local recs = {}
    for i = 1, 3 do
      local r = assert(S:step(x:to(device), y:to(device)))
      recs[i] = {r.f_w, r.f_trial, r.accepted, r.loss, r.ncorrect}
    end
    return m, S, seen, recs
  end
  local x, y = C.batch(16, {1, 28, 28}, 10, 9)
  local _, _, seen_c, recs_c = run("cpu", x, y)
  local m, S, seen_g, recs_g = run("cuda", x, y)
  for i = 1, 3 do
    T.eq(seen_g[i][1], recs_g[i][1], "step " .. i .. ": ctx.f in propose is the step's f(w)")
    for j = 1, 3 do T.near(seen_g[i][j], seen_c[i][j], 1e-5, "step " .. i .. ": ctx field " .. j) end
    T.eq(recs_g[i][3], recs_c[i][3], "step " .. i .. ": the decision")
    T.near(recs_g[i][2], recs_c[i][2], 1e-5, "step " .. i .. ": f(trial)")
  end
  -- read in propose: the step waits for f(w), then for the trial's objective
  local xg, yg = x:cuda(), y:cuda()
  local h0 = core.cuda.memory_stats().host_waits
  assert(S:step(xg, yg))
  T.eq(core.cuda.memory_stats().host_waits - h0, 2, "host waits of a step whose propose reads ctx.f")
  -- infinite weights: a NaN objective at w, and NaN in the gradient and so
  -- in the trial; nil and the message, w and the step counter unchanged
  m.params:fill(math.huge)
  local r, msg = S:step(xg, yg)
  T.eq(r, nil, "record of a diverged step")
  T.check(msg:find("objective (loss) at the current point is", 1, true)
          and msg:find("at epoch 1, step 5: the weights have diverged", 1, true), msg)
  T.eq(S.iter, 4, "step counter")
  local changed = 0
  for _, v in ipairs(m.params:cpu():totable()) do
    if v ~= math.huge then changed = changed + 1 end
  end
  T.eq(changed, 0, "weights of w changed (the trial kept?)")
end)

T.test("memory pool: no device allocation in steady-state steps fed by the loader", function()
  -- raw uint8 batches, double-buffered input slots, staging, the transform
  local path = F.data_file(tmpdir())
  local prev = core.cuda.use_pinned_loader_memory(true)
  local d = sg.data.hdf5{file = path, batch = 32, seed = 3, prefetch = 2,
                         augment = {crop = 2, flip = true}}
  core.cuda.use_pinned_loader_memory(prev)
  local m = F.model():to("cuda")
  local S = require("sgdsa.search").new{model = m, optim = C.optim("sgdsa")}
  local a, k = nil, 0
  for x, y in d.train:epoch(1, {device = "cuda"}) do
    assert(S:step(x, y))
    k = k + 1
    if k == 3 then
      core.cuda.synchronize()
      a = core.cuda.memory_stats().device_allocs
    end
  end
  core.cuda.synchronize()
  T.eq(k, 20, "one epoch of 640 images")
  T.eq(core.cuda.memory_stats().device_allocs - a, 0, "cudaMalloc calls during 17 steps")
  -- host waits over another epoch: per step the objectives' read-back and
  -- the input slot's copy (queued a step earlier, so done by then on a GPU:
  -- the loader may then refill its host buffer); synchronize() adds 2
  local w0 = core.cuda.memory_stats().host_waits
  for x, y in d.train:epoch(2, {device = "cuda"}) do assert(S:step(x, y)) end
  core.cuda.synchronize()
  T.eq(core.cuda.memory_stats().host_waits - w0, 2 * 20 + 2, "host waits in a 20-step epoch fed by the loader")
end)

T.test("trainer: device = cuda runs and takes the cpu run's SA decisions", function()
  local trainer = require "sgdsa.trainer"
  local path = F.data_file(tmpdir())
  local a = trainer.train(F.experiment(path, {epochs = 2, out = false}))
  local b = trainer.train(F.experiment(path, {epochs = 2, out = false, device = "cuda"}))
  T.eq(b.model.device, "cuda", "the model trained on the gpu")
  T.eq(b.model.params:device(), "cuda", "params on the gpu")
  T.eq(core.cuda.use_pinned_loader_memory(false), false, "the trainer restored the pinned flag")
  T.eq(#b.logs.steps.step, #a.logs.steps.step, "same number of steps")
  for i = 1, #a.logs.steps.step do
    T.eq(b.logs.steps.accepted[i], a.logs.steps.accepted[i], "step " .. i .. " accepted")
    T.eq(b.logs.steps.eta[i], a.logs.steps.eta[i], "step " .. i .. " eta")
    T.near(b.logs.steps.loss[i], a.logs.steps.loss[i], 2e-3, "step " .. i .. " loss")
  end
  for i, r in ipairs(a.logs.epochs) do
    T.near(b.logs.epochs[i].val_loss, r.val_loss, 2e-3, "epoch " .. i .. " validation loss")
    T.near(b.logs.epochs[i].val_acc, r.val_acc, 1e-9 + 2 / 256, "epoch " .. i .. " validation accuracy")
  end
  T.check(C.rel(b.model.params, a.model.params) < 1e-2, "weights close after 2 epochs")
  T.eq(core.cuda.set_deterministic(false), true, "the trainer's default: deterministic cuDNN")
  T.eq(core.cuda.set_tf32(false), false, "the trainer's default: no TF32")
end)

T.test("trainer: the same GPU run twice gives the same bits (deterministic default)", function()
  local trainer = require "sgdsa.trainer"
  local path = F.data_file(tmpdir())
  local a = trainer.train(F.experiment(path, {epochs = 1, out = false, device = "cuda"}))
  local b = trainer.train(F.experiment(path, {epochs = 1, out = false, device = "cuda"}))
  T.eq(#b.logs.steps.step, #a.logs.steps.step, "same number of steps")
  for i = 1, #a.logs.steps.step do
    T.eq(b.logs.steps.loss[i], a.logs.steps.loss[i], "step " .. i .. " loss, exactly")
    T.eq(tostring(b.logs.steps.trial_loss[i]), tostring(a.logs.steps.trial_loss[i]),
         "step " .. i .. " trial loss, exactly")
  end
  T.eq(maxdiff(b.model.params, a.model.params), 0, "weights, exactly")
  T.eq(maxdiff(b.model.buffers, a.model.buffers), 0, "running statistics, exactly")
end)

T.done()
