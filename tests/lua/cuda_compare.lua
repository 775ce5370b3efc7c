-- cuda_compare.lua - CPU against GPU for whole training steps (shared by
-- tests/lua/test_cuda_model.lua and tools/gpu-check.lua).
--
--   local C = dofile("tests/lua/cuda_compare.lua")
--   local r = C.compare(build, {batch = 8, steps = 2, optim = "sgdsa"})
--   -- r.ok, r.failures (list of strings), r.lines (a report)
--   -- o.device: the second run's device ("cuda"; "cpu" checks this harness
--   -- on any machine), o.tamper(m): called on the model before the second
--   -- run's steps (the harness's own test: a change must be caught)
--
-- One model is built (its initial weights and buffers are kept), then the
-- same search steps (sgdsa.search with the same `search` generator seed) run
-- on the CPU and, from the same starting point, on the GPU. Compared: the
-- objective at w and at the trial point of every step, the SA decisions, and
-- after the steps the parameters, the gradients of the last step, the
-- BatchNorm running statistics and an eval-mode forward. Tolerances are
-- relative to each tensor's largest magnitude (fp32 accumulation orders
-- differ between cuDNN and the CPU kernels; TF32 is off here).
local sg = require "sgdsa"
local core = sg.core
local nn = require "sgdsa.nn"
local search = require "sgdsa.search"

local M = {}

local H = {0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.09, 0.08, 0.07, 0.06, 0.05}

function M.optim(kind, lr)
  if kind == "sgd" then return sg.optim.sgd{lr = lr or 0.05} end
  if kind == "ssa" then return sg.optim.ssa{eps = lr or 0.01} end
  return sg.optim.sgdsa{H = H, T0 = 1, alpha = 0.8}
end

-- max |a - b| / max |b| (a on any device)
function M.rel(a, b)
  a, b = a:cpu():contiguous(), b:cpu():contiguous()
  if a:numel() == 0 then return 0 end
  local diff = (a - b):abs():max()
  local scale = b:abs():max()
  if scale == 0 then scale = 1 end
  return diff / scale
end

-- A deterministic random batch: x N x C x H x W (cpu), labels int32.
function M.batch(n, shape, classes, seed)
  local gen = sg.Generator(seed or 11, "gpu-compare")
  local x = sg.randn({n, shape[1], shape[2], shape[3]}, gen)
  local lab = {}
  for i = 1, n do lab[i] = (i * 7 + 3) % classes end
  return x, sg.tensor(lab, "int32")
end

local function run(m, p0, b0, x, y, device, o, dropout_state, tamper)
  m.params:copy(p0)
  m.buffers:copy(b0)
  if tamper then tamper(m) end
  sg.stream("dropout"):set_state(dropout_state)   -- the same masks on both devices
  if device ~= "cpu" then m:to(device) end
  local xd, yd = x:to(device), y:to(device)
  local S = search.new{model = m, criterion = nn.CrossEntropy(), optim = M.optim(o.optim, o.lr),
                       rng = sg.Generator(o.seed or 5, "search")}
  local recs = {}
  for i = 1, o.steps do
    local r, err = S:step(xd, yd)
    if not r then error(device .. " step " .. i .. ": " .. tostring(err), 0) end
    recs[i] = {f_w = r.f_w, f_trial = r.f_trial, accepted = r.accepted, move = r.move,
               ncorrect = r.ncorrect}
  end
  local out = m:forward(xd, "eval")
  if device ~= "cpu" then core.cuda.synchronize() end
  -- copies: t:cpu() of a cpu tensor is the tensor itself, which the next
  -- run overwrites (m.params:copy(p0) above)
  local function snap(t) return t:device() == "cpu" and t:clone() or t:cpu() end
  return {recs = recs, params = snap(m.params), grads = snap(m.grads),
          buffers = snap(m.buffers), eval = snap(out)}
end

-- build() -> a fresh model on the cpu (e.g. require("models.resnet34"){...}).
function M.compare(build, o)
  o = o or {}
  o.steps = o.steps or 2
  o.batch = o.batch or 8
  local tol = o.tol or 2e-3
  local m = build()
  local p0, b0 = m.params:clone(), m.buffers:clone()
  local shape, classes = m.input_shape, m.output_shape[#m.output_shape]
  local x, y = M.batch(o.batch, shape, classes, o.seed)
  local ds = sg.stream("dropout"):state()
  local t0 = core.time()
  local c = run(m, p0, b0, x, y, "cpu", o, ds)
  local t1 = core.time()
  local g = run(m, p0, b0, x, y, o.device or "cuda", o, ds, o.tamper)
  local t2 = core.time()
  local r = {failures = {}, lines = {}}
  local function line(fmt, ...) r.lines[#r.lines + 1] = string.format(fmt, ...) end
  local function fail(fmt, ...) r.failures[#r.failures + 1] = string.format(fmt, ...) end
  line("%s: %d %s step(s) at batch %d, cpu %.2f s, gpu %.2f s", m.name, o.steps,
       o.optim or "sgdsa", o.batch, t1 - t0, t2 - t1)
  for i = 1, o.steps do
    local a, b = c.recs[i], g.recs[i]
    local dw = math.abs(a.f_w - b.f_w) / math.max(1e-12, math.abs(a.f_w))
    local dt = (a.f_trial == a.f_trial) and
               math.abs(a.f_trial - b.f_trial) / math.max(1e-12, math.abs(a.f_trial)) or 0
    line("  step %d: f(w) cpu %.7f gpu %.7f (rel %.1e); f(trial) cpu %.7f gpu %.7f (rel %.1e); "
         .. "eta %g/%g; accepted %s/%s", i, a.f_w, b.f_w, dw, a.f_trial, b.f_trial, dt,
         a.move, b.move, tostring(a.accepted), tostring(b.accepted))
    if not (dw <= tol) then fail("step %d: f(w) differs: cpu %.9g gpu %.9g", i, a.f_w, b.f_w) end
    if not (dt <= tol) then fail("step %d: f(trial) differs: cpu %.9g gpu %.9g", i, a.f_trial, b.f_trial) end
    if a.move ~= b.move and not (a.move ~= a.move and b.move ~= b.move) then
      fail("step %d: the moves differ (eta cpu %s gpu %s): the search streams diverged", i,
           tostring(a.move), tostring(b.move))
    end
    if a.ncorrect ~= b.ncorrect then
      fail("step %d: correct predictions differ: cpu %s gpu %s", i, tostring(a.ncorrect),
           tostring(b.ncorrect))
    end
    if a.accepted ~= b.accepted then
      fail("step %d: SA decision differs (cpu %s, gpu %s)", i, tostring(a.accepted),
           tostring(b.accepted))
    end
  end
  for _, k in ipairs{"params", "grads", "buffers", "eval"} do
    local d = M.rel(g[k], c[k])
    line("  %-8s max relative difference %.2e", k, d)
    if not (d <= tol * 5) then fail("%s differ: max relative difference %.3g", k, d) end
  end
  r.ok = #r.failures == 0
  return r
end

return M
