-- sgdsa.bench - the `sgdsa bench` subcommand: images per second and peak
-- memory of one kind of training step for one of the models/ networks on a
-- fixed random batch (tools/bench runs it beside tools/bench_torch.py).
--
--   sgdsa bench --model resnet34 [--batch 128] [--threads 2] [--kind sgd]
--               [--time 5] [--warmup 2] [--max-steps 200] [--classes 10]
--
-- Prints one line a script can parse:
--   bench impl=sgdsa model=resnet34 kind=sgd batch=128 threads=2 steps=7
--         images_per_s=123.4 ms_per_step=1037.2 peak_mib=812.3
-- peak_mib is the process's peak resident memory (VmHWM), so run one model
-- per process.
--
-- Step kinds live in M.steps: kind(ctx) runs one step on ctx.model (a built
-- model), ctx.crit (CrossEntropy), ctx.x, ctx.labels, ctx.lr. A new kind (an
-- SGD-SA step, say) is one more entry: M.steps.sa = function(ctx) ... end,
-- with anything it needs set up once in ctx by an optional
-- M.setup[kind](ctx).
local core = require "sgdsa.core"
local nn = require "sgdsa.nn"

local M = {}

-- The networks and their inputs (per sample).
M.models = {
  mlp = {channels = 1, size = 28},
  lenet = {channels = 1, size = 28},
  vgg16 = {channels = 3, size = 32},
  resnet18 = {channels = 3, size = 32},
  resnet34 = {channels = 3, size = 32},
}

M.setup = {}

M.steps = {
  -- plain SGD: forward, loss, backward, w -= lr * g
  sgd = function(ctx)
    local model = ctx.model
    model:zero_grad()
    local y = model:forward(ctx.x, "train")
    local loss = ctx.crit:forward(y, ctx.labels)
    model:backward(ctx.x, ctx.crit:backward())
    model.params:add_scaled_(model.params, -ctx.lr, model.grads)
    return loss
  end,
}

local function peak_mib()
  local f = io.open("/proc/self/status", "r")
  if not f then return 0 end
  local s = f:read("a")
  f:close()
  local kb = s:match("VmHWM:%s*(%d+)")
  return kb and tonumber(kb) / 1024 or 0
end
M.peak_mib = peak_mib

local usage = [[
usage: sgdsa bench --model NAME [--batch 128] [--threads 2] [--kind sgd]
                   [--time 5] [--warmup 2] [--max-steps 200] [--classes 10]
  NAME: mlp, lenet (1x28x28), vgg16, resnet18, resnet34 (3x32x32)
  kind: a key of sgdsa.bench.steps]]

local function parse(args)
  local o = {batch = 128, threads = 2, kind = "sgd", time = 5, warmup = 2, ["max-steps"] = 200,
             classes = 10}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then
      print(usage)
      os.exit(0)
    end
    local k, v = a:match("^%-%-([%w-]+)=(.*)$")
    if not k then
      k = a:match("^%-%-([%w-]+)$")
      v = args[i + 1]
      i = i + 1
    end
    if not k or v == nil then error("sgdsa bench: bad argument '" .. tostring(a) .. "'\n" .. usage, 0) end
    if o[k] == nil and k ~= "model" then
      error("sgdsa bench: unknown option --" .. k .. "\n" .. usage, 0)
    end
    o[k] = (k == "model" or k == "kind") and v or tonumber(v)
    if o[k] == nil then error("sgdsa bench: --" .. k .. " needs a number, got " .. v, 0) end
    i = i + 1
  end
  if not o.model or not M.models[o.model] then
    error("sgdsa bench: --model must be one of mlp, lenet, vgg16, resnet18, resnet34\n" .. usage, 0)
  end
  if not M.steps[o.kind] then
    local kinds = {}
    for n in pairs(M.steps) do kinds[#kinds + 1] = n end
    table.sort(kinds)
    error("sgdsa bench: unknown step kind '" .. o.kind .. "' (" .. table.concat(kinds, ", ") .. ")", 0)
  end
  return o
end

-- Run the benchmark; returns the result table (also printed by main).
function M.run(o)
  core.set_num_threads(o.threads)
  core.manual_seed(0)
  local spec = M.models[o.model]
  local model = require("models." .. o.model){channels = spec.channels, size = spec.size,
                                              classes = o.classes}
  local gen = core.Generator(1)
  local ctx = {
    model = model, crit = nn.CrossEntropy(), lr = 0.01, opts = o,
    x = core.randn(o.batch, spec.channels, spec.size, spec.size, gen),
  }
  local lab = {}
  for i = 1, o.batch do lab[i] = (i * 7) % o.classes end
  ctx.labels = core.tensor(lab, "int32")
  if M.setup[o.kind] then M.setup[o.kind](ctx) end
  local step = M.steps[o.kind]
  for _ = 1, o.warmup do step(ctx) end
  local t0, n = core.time(), 0
  repeat
    step(ctx)
    n = n + 1
  until core.time() - t0 >= o.time or n >= o["max-steps"]
  local dt = core.time() - t0
  return {impl = "sgdsa", model = o.model, kind = o.kind, batch = o.batch, threads = o.threads,
          steps = n, images_per_s = n * o.batch / dt, ms_per_step = 1000 * dt / n,
          peak_mib = peak_mib()}
end

function M.format(r)
  return string.format("bench impl=%s model=%s kind=%s batch=%d threads=%d steps=%d " ..
                       "images_per_s=%.1f ms_per_step=%.1f peak_mib=%.1f", r.impl, r.model, r.kind,
                       r.batch, r.threads, r.steps, r.images_per_s, r.ms_per_step, r.peak_mib)
end

function M.main(args)
  local o = parse(args or {})
  print(M.format(M.run(o)))
  return 0
end

-- the search loop's kinds (sa, sgd_loop): lua/sgdsa/bench_search.lua
require("sgdsa.bench_search")(M)

return M
