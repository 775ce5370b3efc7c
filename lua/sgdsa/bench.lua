-- sgdsa.bench - the `sgdsa bench` subcommand: images per second and peak
-- memory of one kind of training step for one of the models/ networks on a
-- fixed random batch (tools/bench runs it beside tools/bench_torch.py).
--
--   sgdsa bench --model resnet34 [--batch 128] [--threads 2] [--kind sgd]
--               [--time 5] [--warmup 2] [--max-steps 200] [--classes 10]
--               [--sgemm 2048]
--   sgdsa bench --ceiling [--sgemm 2048] [--threads 2]
--
-- Prints one line a script can parse:
--   bench impl=sgdsa model=resnet34 kind=sgd batch=128 threads=2 steps=7
--         images_per_s=123.4 ms_per_step=1037.2 peak_mib=812.3
--         gflop_per_step=1780.9 gflops=172.1 conv3x3_gflops=180.2 conv3x3_share=0.85
--         sgemm_gflops=215.0 of_sgemm=0.80 blas_core=SkylakeX dnnl_isa=avx512_core_amx
-- peak_mib is the process's peak resident memory (VmHWM), so run one model
-- per process. gflop_per_step counts the convolutions' and linear layers'
-- FLOPs from the model's geometry (model:flops(); M.forwards[kind] forwards
-- and one backward per step); gflops is that over the step time;
-- conv3x3_gflops the 3x3 convolutions' FLOPs over the time in their kernels
-- (timed around each call of every 3x3 Conv2d in the timed steps), and
-- conv3x3_share that time's share of the steps' (networks without 3x3
-- convolutions: neither). The
-- ceiling is the best of 3 sgemm calls of N x N matrices on the same
-- threads, measured after the steps (--sgemm 0: not measured);
-- `--ceiling` measures it alone:
--   ceiling impl=sgdsa threads=2 sgemm_n=2048 sgemm_gflops=215.0
--           blas_core=SkylakeX dnnl_isa=avx512_core_amx
--
-- Step kinds live in M.steps: kind(ctx) runs one step on ctx.model (a built
-- model), ctx.crit (CrossEntropy), ctx.x, ctx.labels, ctx.lr. A new kind (an
-- SGD-SA step, say) is one more entry: M.steps.sa = function(ctx) ... end,
-- with anything it needs set up once in ctx by an optional
-- M.setup[kind](ctx), and M.forwards[kind] = the forward passes it runs
-- (beside one backward) for its FLOP count.
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

-- Forward passes per step of each kind (each step also runs one backward).
M.forwards = {sgd = 1}

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
                   [--sgemm 2048]
       sgdsa bench --ceiling [--sgemm 2048] [--threads 2]
  NAME: mlp, lenet (1x28x28), vgg16, resnet18, resnet34 (3x32x32)
  kind: a key of sgdsa.bench.steps
  --sgemm N: the ceiling, best GFLOP/s of 3 N x N sgemm calls (0: skip)
  --ceiling: measure only the ceiling]]

-- The CPU's kernels, for the output lines.
local function kernels()
  local i = core.cpu_info()
  return string.format("blas_core=%s dnnl_isa=%s", i.blas_core, i.dnnl_isa or "none")
end

local function parse(args)
  local o = {batch = 128, threads = 2, kind = "sgd", time = 5, warmup = 2, ["max-steps"] = 200,
             classes = 10, sgemm = 2048}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then
      print(usage)
      os.exit(0)
    end
    if a == "--ceiling" then
      o.ceiling = true
    else
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
    end
    i = i + 1
  end
  if o.sgemm ~= 0 and (math.type(o.sgemm) ~= "integer" or o.sgemm < 16 or o.sgemm > 8192) then
    error("sgdsa bench: --sgemm must be 0 or an integer in [16, 8192], got " .. o.sgemm, 0)
  end
  if o.ceiling then
    if o.sgemm == 0 then error("sgdsa bench: --ceiling needs --sgemm N > 0", 0) end
    return o
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

-- Times the 3x3 convolutions' kernels (every Conv2d with a 3x3 kernel,
-- forward and backward) until stop(): their FLOPs (2 per multiply-add, of
-- each pass run) in .flop, their time in .seconds.
local function conv3x3_timer()
  local C = nn.Conv2d
  local fwd, bwd = C.forward, C.backward
  local t = {flop = 0, seconds = 0}
  local function is3(self) return self.kh == 3 and self.kw == 3 end
  C.forward = function(self, x, mode)
    if not is3(self) then return fwd(self, x, mode) end
    local t0 = core.time()
    local y = fwd(self, x, mode)
    t.seconds = t.seconds + core.time() - t0
    t.flop = t.flop + 2 * y:numel() * self.cin * 9
    return y
  end
  C.backward = function(self, x, dy, target)
    if not is3(self) then return bwd(self, x, dy, target) end
    local t0 = core.time()
    local dx = bwd(self, x, dy, target)
    t.seconds = t.seconds + core.time() - t0
    t.flop = t.flop + 2 * dy:numel() * self.cin * 9 * (self.need_dx and 2 or 1)
    return dx
  end
  function t.stop() C.forward, C.backward = fwd, bwd end
  return t
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
  local c3 = conv3x3_timer()
  local t0, n = core.time(), 0
  repeat
    step(ctx)
    n = n + 1
  until core.time() - t0 >= o.time or n >= o["max-steps"]
  local dt = core.time() - t0
  c3.stop()
  local r = {impl = "sgdsa", model = o.model, kind = o.kind, batch = o.batch, threads = o.threads,
             steps = n, images_per_s = n * o.batch / dt, ms_per_step = 1000 * dt / n,
             peak_mib = peak_mib(), kernels = kernels()}
  local nf = M.forwards[o.kind]
  if nf then
    local fwd, bwd = model:flops()
    r.gflop_per_step = o.batch * (nf * fwd + bwd) / 1e9
    r.gflops = r.gflop_per_step * n / dt
  end
  if c3.seconds > 0 then
    r.conv3x3_gflops = c3.flop / c3.seconds / 1e9
    r.conv3x3_share = c3.seconds / dt
  end
  if o.sgemm > 0 then r.sgemm_gflops = M.ceiling(o) end
  return r
end

-- The best GFLOP/s of 3 o.sgemm^3 sgemm calls on o.threads threads.
function M.ceiling(o)
  core.set_num_threads(o.threads)
  return core.sgemm_gflops(o.sgemm, 3)
end

function M.format(r)
  local s = string.format("bench impl=%s model=%s kind=%s batch=%d threads=%d steps=%d " ..
                          "images_per_s=%.1f ms_per_step=%.1f peak_mib=%.1f", r.impl, r.model,
                          r.kind, r.batch, r.threads, r.steps, r.images_per_s, r.ms_per_step,
                          r.peak_mib)
  if r.gflops then
    s = s .. string.format(" gflop_per_step=%.3f gflops=%.1f", r.gflop_per_step, r.gflops)
  end
  if r.conv3x3_gflops then
    s = s .. string.format(" conv3x3_gflops=%.1f conv3x3_share=%.2f", r.conv3x3_gflops, r.conv3x3_share)
  end
  if r.sgemm_gflops then
    s = s .. string.format(" sgemm_gflops=%.1f", r.sgemm_gflops)
    if r.gflops then s = s .. string.format(" of_sgemm=%.2f", r.gflops / r.sgemm_gflops) end
  end
  return s .. " " .. r.kernels
end

function M.main(args)
  local o = parse(args or {})
  if o.ceiling then
    print(string.format("ceiling impl=sgdsa threads=%d sgemm_n=%d sgemm_gflops=%.1f %s", o.threads,
                        o.sgemm, M.ceiling(o), kernels()))
    return 0
  end
  print(M.format(M.run(o)))
  return 0
end

-- the search loop's kinds (sa, sgd_loop): lua/sgdsa/bench_search.lua
require("sgdsa.bench_search")(M)

return M
