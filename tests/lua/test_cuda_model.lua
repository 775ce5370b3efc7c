-- test_cuda_model.lua - whole training steps on the CPU and the GPU agree:
-- small models from models/ (LeNet with BatchNorm, a reduced-width ResNet-18,
-- a reduced-width VGG16), two SGD-SA steps and one SGD step each, compared by
-- tests/lua/cuda_compare.lua (objectives, SA decisions, parameters, gradients,
-- running statistics, eval forward). Also checks the device dispatch of
-- core.nn: a mixed-device call is an error naming both devices. Skips
-- (exit 77) without a usable GPU.
local T = dofile("tests/lua/testlib.lua")
local sg = require "sgdsa"
local core = sg.core

local ok, why = core.cuda.available()
if not ok then
  print("no CUDA device: skipping the CPU/GPU model-step comparison (" .. tostring(why) .. ")")
  os.exit(77)
end
print("device: " .. tostring(core.cuda.device_name()))
core.cuda.set_tf32(false)
local C = dofile("tests/lua/cuda_compare.lua")

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
check("resnet18 (width 1/8): 2 SGD-SA steps cpu == gpu", function()
  return require("models.resnet18"){channels = 3, size = 32, classes = 10, width = 0.125} end,
  {batch = 8, steps = 2, optim = "sgdsa"})
check("vgg16 (width 1/8): 2 SGD-SA steps cpu == gpu", function()
  return require("models.vgg16"){channels = 3, size = 32, classes = 10, width = 0.125} end,
  {batch = 8, steps = 2, optim = "sgdsa"})

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

T.done()
