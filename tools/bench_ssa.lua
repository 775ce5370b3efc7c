-- tools/bench_ssa.lua - the naive SSA step of the paper's Figures 1-2 (VGG16
-- on Fashion-MNIST-sized input, 1x28x28): one step is a random direction
-- drawn from the `search` stream (normal_ over every weight), two trial
-- forwards and the Metropolis test, through sgdsa.search as the trainer runs
-- it. Prints the fastest and mean step time and the time of drawing one
-- direction alone (the fill runs in parallel chunks on the CPU and as a
-- kernel on the GPU).
--   sgdsa run tools/bench_ssa.lua [batch=128] [threads=2] [steps=5] [device=cpu|cuda]
local sg = require "sgdsa"
local search = require "sgdsa.search"
local optim = require "sgdsa.optim"
local args = ... or {}
local B, threads, steps = args.batch or 128, args.threads or 2, args.steps or 5
local device = args.device or "cpu"
sg.set_num_threads(threads)
sg.manual_seed(0)
local model = require("models.vgg16"){channels = 1, size = 28, classes = 10}
if device ~= "cpu" then model:to(device) end
local opt = optim.optimizer{neighborhood = optim.random_direction{eps = 0.01},
                            acceptance = optim.metropolis{T0 = 1, alpha = 0.97}}
local S = search.new{model = model, criterion = require("sgdsa.nn").CrossEntropy(), optim = opt}
S:epoch_start(1)
local x = sg.randn(B, 1, 28, 28, sg.Generator(1))
local lab = {}
for i = 1, B do lab[i] = (i * 7) % 10 end
local y = sg.tensor(lab, "int32")
if device ~= "cpu" then x, y = x:to(device), y:to(device) end
local function sync() if device ~= "cpu" then sg.core.cuda.synchronize() end end
assert(S:step(x, y))     -- warm-up: buffers allocated
local best, total = math.huge, 0
for _ = 1, steps do
  sync()
  local t0 = sg.core.time()
  local rec, err = S:step(x, y)
  if not rec then error(err, 0) end
  sync()
  local dt = sg.core.time() - t0
  best, total = math.min(best, dt), total + dt
end
local n = model.params:numel()
local d = sg.zeros(n)
if device ~= "cpu" then d = d:to(device) end
local g = sg.Generator(3, "search")
local fill = math.huge
for _ = 1, 3 do
  sync()
  local t0 = sg.core.time()
  d:normal_(0, 1, g)
  sync()
  fill = math.min(fill, sg.core.time() - t0)
end
print(string.format("ssa %s threads %d batch %d: %d weights; step min %.3f s mean %.3f s; one direction (normal_) %.3f s",
                    device, threads, B, n, best, total / steps, fill))
