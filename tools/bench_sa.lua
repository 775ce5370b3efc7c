-- tools/bench_sa.lua - SA/SGD step-time ratios of sgdsa, for both scoring
-- modes of the search loop: score = "train" (one trial forward) and
-- score = "inference" (the authors' procedure: two inference forwards).
--   sgdsa run tools/bench_sa.lua [models=mlp,lenet,vgg16,resnet34] [batch=128]
--                                [steps=20] [threads=1]
-- One process builds two copies of each network (same seed) and alternates
-- one plain SGD step (`sgd` kind of sgdsa.bench), one SGD-SA step (`sa`
-- kind: the trainer's search loop) and one with inference scoring (`sa_inf`),
-- so all see the same machine load; it prints the ratios of the fastest
-- steps (robust on a shared machine) and of the medians.
-- tools/bench_sa_torch.py does the same for PyTorch.
local sg = require "sgdsa"
local B = require "sgdsa.bench"
local args = ... or {}
local models = {}
for m in tostring(args.models or "mlp,lenet,vgg16,resnet34"):gmatch("[^,]+") do
  if not B.models[m] then error("bench_sa: unknown model " .. m, 0) end
  models[#models + 1] = m
end
local batch, steps = args.batch or 128, args.steps or 20
sg.set_num_threads(args.threads or 1)

local function build(name, kind)
  local spec = B.models[name]
  sg.manual_seed(0)
  local ctx = {model = require("models." .. name){channels = spec.channels, size = spec.size},
               crit = require("sgdsa.nn").CrossEntropy(), lr = 0.01,
               x = sg.randn(batch, spec.channels, spec.size, spec.size, sg.Generator(1))}
  local lab = {}
  for i = 1, batch do lab[i] = (i * 7) % 10 end
  ctx.labels = sg.tensor(lab, "int32")
  if B.setup[kind] then B.setup[kind](ctx) end
  B.steps[kind](ctx)     -- warm-up (buffers allocated)
  return ctx
end

local function median(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  return c[(#c + 1) // 2]
end

local kinds = {"sgd", "sa", "sa_inf"}
print(string.format("%-9s %5s %3s %5s | %9s %9s | %9s %9s | %9s %9s | %9s %9s | %9s %9s", "model",
                    "batch", "thr", "steps", "sgd min", "sgd med", "sa min", "sa med",
                    "sa-inf min", "sa-inf med", "ratio min", "ratio med", "inf min", "inf med"))
for _, name in ipairs(models) do
  local ctx, times = {}, {}
  for _, k in ipairs(kinds) do ctx[k], times[k] = build(name, k), {} end
  for _ = 1, steps do
    for _, k in ipairs(kinds) do
      local t0 = sg.core.time()
      B.steps[k](ctx[k])
      times[k][#times[k] + 1] = sg.core.time() - t0
    end
  end
  local mn, md = {}, {}
  for _, k in ipairs(kinds) do mn[k], md[k] = math.min(table.unpack(times[k])), median(times[k]) end
  print(string.format("%-9s %5d %3d %5d | %7.1fms %7.1fms | %7.1fms %7.1fms | %8.1fms %8.1fms | %9.3f %9.3f" ..
                      " | %9.3f %9.3f", name, batch, sg.get_num_threads(), steps, mn.sgd * 1e3,
                      md.sgd * 1e3, mn.sa * 1e3, md.sa * 1e3, mn.sa_inf * 1e3, md.sa_inf * 1e3,
                      mn.sa / mn.sgd, md.sa / md.sgd, mn.sa_inf / mn.sgd, md.sa_inf / md.sgd))
  io.stdout:flush()
end
