-- test_device.lua - the device paths that run on every machine: clear errors
-- for device = "cuda" where no GPU can be used (model:to, the trainer, the
-- loader's device option, pinned loader memory, the Pad kernels), device
-- names, and that asking for the GPU leaves a cpu model and the cpu data path
-- exactly as they were. With a usable GPU the "no GPU" checks are skipped
-- (tests/lua/test_cuda_model.lua covers the GPU itself).
local T = dofile("tests/lua/testlib.lua")
local sg = require "sgdsa"
local core = sg.core
local nn = require "sgdsa.nn"
local trainer = require "sgdsa.trainer"
local F = dofile("tests/lua/trainer_fixture.lua")

local function tmpdir() return T.tmpdir("device") end

local gpu = core.cuda.available()
if gpu then print("a GPU is usable: the no-GPU error checks are skipped") end

local function maxdiff(a, b) return (a - b):abs():max() end

local function lenet() return require("models.lenet"){channels = 1, size = 28, classes = 10} end

T.test("model:to: cpu is a no-op; unknown and other devices are errors", function()
  local m = lenet()
  local p = m.params
  T.check(m:to("cpu") == m, "to returns the model")
  T.check(rawequal(m.params, p), "to(\"cpu\") on a cpu model keeps the same params tensor")
  T.eq(m.device, "cpu", "device")
  T.raises(function() m:to("tpu") end, "unknown device tpu (cpu, cuda)")
  T.raises(function() m:to(3) end, "unknown device 3")
  T.raises(function() m:to("cuda:2") end, "sgdsa uses one GPU, cuda:0")
  T.raises(function() return sg.zeros(2):to("cuda:3") end, "device 'cuda:3': sgdsa uses one GPU")
end)

if not gpu then
  T.test("model:to(\"cuda\") without a GPU: a clear error, the model untouched", function()
    local m = lenet()
    local x = sg.randn(4, 1, 28, 28, sg.Generator(1, "t"))
    local ref = m:forward(x, "eval"):clone()
    local p0, named = m.params:clone(), m:named_tensors()
    local err = T.raises(function() m:to("cuda") end, "model:to(\"cuda\"): no usable GPU (")
    local _, why = core.cuda.available()
    T.check(err:find(why, 1, true), "the message says why (" .. why .. "): " .. err)
    T.raises(function() m:to("cuda:0") end, "model:to(\"cuda\"):")
    T.eq(m.device, "cpu", "still on the cpu")
    T.eq(m.params:device(), "cpu", "params on the cpu")
    T.eq(maxdiff(m.params, p0), 0, "params unchanged")
    for i, e in ipairs(m:named_tensors()) do
      T.check(rawequal(e.tensor, named[i].tensor), e.name .. ": the same view as before")
    end
    T.eq(maxdiff(m:forward(x, "eval"), ref), 0, "the same eval forward")
  end)

  T.test("trainer device = cuda without a GPU: a clear error before any work", function()
    local dir = tmpdir() .. "/runs"
    os.execute("rm -rf '" .. dir .. "'")
    local e = F.experiment(F.data_file(tmpdir()), {device = "cuda", out = dir, name = "nogpu"})
    local err = T.raises(function() trainer.train(e) end, "trainer: device = \"cuda\": no usable GPU")
    T.check(err:find("device = \"cpu\"", 1, true), "the message says what to do: " .. err)
    T.check(not core.exists(dir .. "/nogpu"), "no run folder was made")
    T.raises(function() trainer.train(F.experiment("unused.h5", {device = "gpu"})) end,
             "device must be \"cpu\" or \"cuda\", got gpu")
  end)

  T.test("data and kernels without a GPU: clear errors", function()
    local d = sg.data.hdf5{file = F.data_file(tmpdir()), batch = 32, seed = 1}
    T.raises(function() d.train:epoch(1, {device = "cuda"}) end, "loader: device \"cuda\":")
    T.raises(function() d.train:epoch(1, {device = "tpu"}) end, "device must be \"cpu\" or \"cuda\"")
    T.check(not pcall(core.cuda.use_pinned_loader_memory, true), "pinned memory needs a GPU")
    T.eq(core.cuda.use_pinned_loader_memory(false), false, "off is always fine")
    T.check(not pcall(core.cuda.pad2d, sg.randn(1, 1, 2, 2), sg.empty(1), 1), "pad2d needs a GPU")
    T.check(not pcall(core.cuda.crop2d, sg.randn(1, 1, 4, 4), sg.empty(1), 1), "crop2d needs a GPU")
    T.check(not pcall(core.cuda.readback), "a loss read-back slot needs a GPU")
  end)
end

T.test("loader {device = \"cpu\"} is the default path", function()
  local path = F.data_file(tmpdir())
  local a = sg.data.hdf5{file = path, batch = 48, seed = 3, prefetch = 1}
  local b = sg.data.hdf5{file = path, batch = 48, seed = 3, prefetch = 1}
  local it, n = b.train:epoch(2), 0
  for x, y in a.train:epoch(2, {device = "cpu"}) do
    local xb, yb = it()
    T.eq(x:device(), "cpu", "x on the cpu"); T.eq(y:dtype(), "int32", "labels int32")
    T.eq(maxdiff(x, xb), 0, "images")
    T.eq(maxdiff(y:float(), yb:float()), 0, "labels")
    n = n + 1
  end
  T.eq(n, b.train:nbatches(), "batches")
end)

T.test("CrossEntropy and Pad on the cpu: unchanged results", function()
  local g = sg.Generator(4, "t")
  local logits, lab = sg.randn(5, 3, g), sg.tensor({0, 2, 1, 1, 0}, "int32")
  local crit = nn.CrossEntropy()
  local loss, nc = crit:forward(logits, lab)
  -- the reference: log-softmax by hand
  local want, correct = 0, 0
  for i = 1, 5 do
    local row, best = {}, 1
    for j = 1, 3 do row[j] = logits:get(i, j); if row[j] > row[best] then best = j end end
    local mx = row[best]
    local s = 0
    for j = 1, 3 do s = s + math.exp(row[j] - mx) end
    want = want - (row[lab:get(i) + 1] - mx - math.log(s))
    if best == lab:get(i) + 1 then correct = correct + 1 end
  end
  T.near(loss, want / 5, 1e-5, "loss")
  T.eq(nc, correct, "correct")
  T.eq(crit:backward():device(), "cpu", "gradient on the cpu")
  local p = nn.Pad(1)
  local x = sg.randn(1, 1, 2, 2, g)
  local y = p:forward(x, "train")
  T.eq(table.concat(y:size(), "x"), "1x1x4x4", "padded shape")
  T.eq(y:get(1, 1, 1, 1), 0, "zero border")
  T.eq(y:get(1, 1, 2, 2), x:get(1, 1, 1, 1), "interior")
  local dx = p:backward(x, y)
  T.eq(maxdiff(dx, x), 0, "backward of the padded input is the input")
end)

T.test("trainer: tf32 and deterministic are the GPU's settings, checked on every machine", function()
  local exp = {model = {"lenet"}, data = {"fashion_mnist"}}
  local c = trainer.configure(exp, {})
  T.eq(c.tf32, nil, "cpu run: tf32 not set (the run's configuration is unchanged)")
  T.eq(c.deterministic, nil, "cpu run: deterministic not set")
  c = trainer.configure(exp, {device = "cuda"})
  T.eq(c.tf32, false, "gpu default: fp32")
  T.eq(c.deterministic, true, "gpu default: deterministic")
  c = trainer.configure(exp, {device = "cuda", tf32 = true, deterministic = false})
  T.eq(c.tf32, true, "tf32 override")
  T.eq(c.deterministic, false, "deterministic override")
  T.check(trainer.config_text(c):find("tf32 = true", 1, true), "in the run's configuration text")
  local ok, err = pcall(trainer.configure, exp, {tf32 = "yes"})
  T.check(not ok and tostring(err):find("tf32 must be true or false, got yes", 1, true), tostring(err))
  ok, err = pcall(trainer.configure, exp, {deterministic = 1})
  T.check(not ok and tostring(err):find("deterministic must be true or false", 1, true), tostring(err))
end)

-- The CPU/GPU comparison harness (tests/lua/cuda_compare.lua, used by
-- test_cuda_model.lua and tools/gpu-check's agree stages) checked here,
-- where it can run: two CPU runs agree exactly, and a run made different
-- (one weight changed, or one running mean) is caught by the comparison.
T.test("cuda_compare: cpu against cpu agrees; a changed weight or statistic is caught", function()
  local C = dofile("tests/lua/cuda_compare.lua")
  local function build()
    return require("models.resnet18"){channels = 3, size = 32, classes = 10, width = 0.125}
  end
  local o = {batch = 4, steps = 2, optim = "sgdsa", device = "cpu"}
  local r = C.compare(build, o)
  T.check(r.ok, "cpu vs cpu: " .. table.concat(r.failures, "; "))
  T.check(#r.lines >= 6, "a report line per step and per compared tensor")
  for _, k in ipairs{"params", "grads", "buffers", "eval"} do
    T.check(table.concat(r.lines, "\n"):find(k .. "%s+max relative difference 0%.00e%+00"),
            k .. " compared and identical")
  end
  o.tamper = function(m) m.params:narrow(1, 1, 1):add_(0.5) end
  r = C.compare(build, o)
  T.check(not r.ok, "a changed weight passed the comparison")
  T.check(table.concat(r.failures, "; "):find("params differ"), "params reported: " ..
          table.concat(r.failures, "; "))
  -- the running statistics alone (the objective and params agree)
  o.tamper = function(m) m.buffers:narrow(1, 1, 1):add_(0.25) end
  r = C.compare(build, o)
  T.check(table.concat(r.failures, "; "):find("buffers differ"), "buffers reported: " ..
          table.concat(r.failures, "; "))
end)

T.done()
