-- test_search.lua - the search loop and its pieces (lua/sgdsa/search.lua,
-- lua/sgdsa/optim/): Metropolis statistics, trial semantics (swap, no copy,
-- non-finite trials rejected), SGD equivalence, reproducibility, and
-- convergence of every acceptance rule and neighborhood on convex problems.
local T = dofile("tests/lua/testlib.lua")
local SM = dofile("tests/lua/search_models.lua")
local sg = sgdsa or require "sgdsa"
local optim = require "sgdsa.optim"
local search = require "sgdsa.search"

sg.set_num_threads(1)

-- A bare context for calling an acceptance rule directly.
local function bare_ctx(seed)
  return {rng = sg.Generator(seed, "search")}
end

T.test("metropolis: acceptance frequency matches min(1, exp(-d/T))", function()
  local N = 20000
  for _, case in ipairs{{d = 0.05, T = 1}, {d = 0.5, T = 1}, {d = 1, T = 0.5}, {d = 2, T = 1},
                        {d = 0.3, T = 0.1}} do
    local ac = optim.metropolis{T0 = case.T, alpha = 0.8}
    local ctx = bare_ctx(7)
    local hits = 0
    local p_expected = math.exp(-case.d / case.T)
    for _ = 1, N do
      local ok, p = ac:decide(ctx, 1.0, 1.0 + case.d)
      T.near(p, p_expected, 1e-12, "reported probability")
      if ok then hits = hits + 1 end
    end
    local freq = hits / N
    local sigma = math.sqrt(p_expected * (1 - p_expected) / N)
    T.check(math.abs(freq - p_expected) <= 5 * sigma + 1e-9,
            string.format("d=%g T=%g: frequency %.4f vs p %.4f (5 sigma = %.4f)", case.d, case.T,
                          freq, p_expected, 5 * sigma))
  end
end)

T.test("metropolis: improvements always accepted, NaN never", function()
  local ac = optim.metropolis{T0 = 1e-3, alpha = 0.8}
  local ctx = bare_ctx(3)
  for i = 1, 2000 do
    local ok, p = ac:decide(ctx, 1.0, 1.0 - i * 1e-4)
    T.check(ok and p == 1, "improvement rejected at " .. i)
    local ok0 = ac:decide(ctx, 1.0, 1.0)
    T.check(ok0, "zero worsening rejected")
  end
  T.eq(ac:probability(0 / 0), 0, "probability of NaN")
  -- through the search loop: a neighborhood proposing NaN weights
  local m = SM.linreg(4)
  m.params:fill(0.1)
  local X, y = SM.regression(16, 4, 0, sg.Generator(1))
  local nanfill = function(ctx) ctx.trial:fill(0 / 0); return 0 end
  local s = search.new{model = m, criterion = SM.mse(),
                       optim = optim.optimizer{neighborhood = nanfill, acceptance = optim.metropolis{T0 = 1e9}}}
  local before = m.params:clone()
  for _ = 1, 5 do
    local r = assert(s:step(X, y))
    T.eq(r.accepted, false, "NaN trial accepted")
    T.eq(r.nonfinite, true, "NaN trial not flagged")
    T.eq(r.prob, 0, "probability of a NaN trial")
  end
  T.eq(s.stats.nonfinite, 5, "non-finite trials counted")
  T.eq((m.params - before):abs():max(), 0, "weights moved by rejected trials")
  -- infinity too, and with the `always` rule evaluating
  local inffill = function(ctx) ctx.trial:fill(math.huge); return 0 end
  local s2 = search.new{model = m, criterion = SM.mse(),
                        optim = optim.optimizer{neighborhood = inffill, acceptance = optim.greedy{}}}
  T.eq(assert(s2:step(X, y)).accepted, false, "inf trial accepted")
end)

T.test("metropolis: cooling per epoch, per step, reheating", function()
  local ac = optim.metropolis{T0 = 2, alpha = 0.5}
  for e = 1, 3 do ac:epoch_end(e) end
  T.near(ac:temperature(), 2 * 0.5 ^ 3, 1e-15, "per-epoch cooling")
  ac:step_end(); T.near(ac:temperature(), 0.25, 1e-15, "no per-step cooling by default")
  local st = optim.metropolis{T0 = 1, alpha = 0.9, cooling = "step"}
  for _ = 1, 10 do st:step_end() end
  st:epoch_end(1)
  T.near(st:temperature(), 0.9 ^ 10, 1e-15, "per-step cooling")
  local rh = optim.metropolis{T0 = 1, alpha = 0.5, reheat = 2}
  rh:epoch_end(1); T.near(rh:temperature(), 0.5, 1e-15, "before reheat")
  rh:epoch_end(2); T.eq(rh:temperature(), 1, "reheated to T0 after 2 epochs")
  rh:epoch_end(3); T.near(rh:temperature(), 0.5, 1e-15, "cooling again")
end)

T.test("config errors name the key and the allowed ones", function()
  local e = T.raises(function() optim.sgdsa{H = {0.1}, T00 = 1} end, "unknown option 'T00'")
  T.check(e:find("alpha, cooling, H, objective, reheat, T0", 1, true) or e:find("allowed:", 1, true),
          "allowed keys listed: " .. e)
  T.raises(function() optim.sgd{lr = 0.1, schedule = {{1, 0.1}}} end, "exactly one of lr")
  T.raises(function() optim.lr_set{H = {}} end, "non-empty list")
  T.raises(function() optim.lr_set{H = {0.1, -1}} end, "H[2] must be a positive number")
  T.raises(function() optim.metropolis{alpha = 1.5} end, "alpha must be in (0, 1]")
  T.raises(function() optim.momentum{H = {{0.1, 1.2}}} end, "mu of H[1]")
  T.raises(function() optim.best_of_k{k = 2, neighborhood = optim.momentum{H = {{0.1, 0.9}}}} end,
           "keeps memory of accepted moves")
  T.raises(function() optim.ssa{eps = 0} end, "eps must be a positive number")
  local m = SM.linreg(2)
  T.raises(function() search.new{model = m, optim = optim.sgd{lr = 0.1}, objective = "acc"} end,
           'unknown objective "acc"')
  T.raises(function() search.new{model = {}, optim = optim.sgd{lr = 0.1}} end, "model contract")
end)

T.test("lr_set: eta from H with the search stream; one trial forward; swap not copy", function()
  local d = 6
  local m = SM.linreg(d)
  local X, y = SM.regression(32, d, 0.1, sg.Generator(5))
  local H = {0.5, 0.1, 0.05}
  local s = search.new{model = m, criterion = SM.mse(), optim = optim.sgdsa{H = H, T0 = 1, alpha = 0.8},
                       rng = sg.Generator(11, "search")}
  local shadow = sg.Generator(11, "search")  -- replays the draws: eta, then u
  local seen = {}
  for i = 1, 40 do
    local w0 = m.params:clone()
    local r = assert(s:step(X, y))
    local eta = H[shadow:random(#H)]
    local u = shadow:uniform()
    T.eq(r.move, eta, "eta at step " .. i)
    seen[eta] = true
    T.eq(r.accepted, u < r.prob, "decision at step " .. i)
    if r.accepted then
      -- the trial buffer now holds the old weights (storages swapped)
      T.eq((s.trial - w0):abs():max(), 0, "old weights in the trial buffer")
    else
      T.eq((m.params - w0):abs():max(), 0, "weights after a rejection")
    end
  end
  T.check(seen[0.5] and seen[0.1] and seen[0.05], "every eta of H drawn")
  T.eq(s:trial_forwards(), 40, "exactly one trial forward per step")
end)

T.test("lr_schedule + always is exactly plain SGD (bit for bit), no trial forward", function()
  local d, c = 8, 3
  local X, y = SM.blobs(96, d, c, sg.Generator(2))
  local sched = {{2, 0.1}, {1, 0.01}, {1, 0.001}}
  local a, b = SM.softmax(d, c), SM.softmax(d, c)
  a.params:normal_(0, 0.1, sg.Generator(4)); b.params:copy(a.params)
  local s = search.new{model = a, criterion = SM.xent(), optim = optim.sgd{schedule = sched}}
  local crit = SM.xent()
  local function lr_of(e) return e <= 2 and 0.1 or (e == 3 and 0.01 or 0.001) end
  for e = 1, 5 do
    s:epoch_start(e)
    for xb, yb in SM.batches(X, y, 16) do
      assert(s:step(xb, yb))
      -- the plain loop
      b:zero_grad()
      local loss = crit:forward(b:forward(xb, "train"), yb)
      b:backward(xb, crit:backward())
      b.params:axpy_(-lr_of(e), b.grads)
      T.check(loss == loss, "finite")
    end
    s:epoch_end(e)
    T.eq((a.params - b.params):abs():max(), 0, "weights differ after epoch " .. e)
  end
  T.eq(s:trial_forwards(), 0, "Scheduled-SGD runs no trial forward")
  T.eq(s.stats.accepted, s.stats.steps, "every move accepted")
end)

-- Run `epochs` epochs of a search on a problem; returns the search and the
-- list of per-step records (copied).
local function run(problem, opt, epochs, seed, batch)
  local m = problem.model()
  m.params:normal_(0, 0.5, sg.Generator(100))
  local s = search.new{model = m, criterion = problem.criterion(), optim = opt,
                       rng = sg.Generator(seed, "search")}
  local log = {}
  for e = 1, epochs do
    s:epoch_start(e)
    for xb, yb in SM.batches(problem.X, problem.y, batch or 16) do
      local r = assert(s:step(xb, yb))
      log[#log + 1] = {r.move, r.f_w, r.f_trial, r.prob, r.accepted, r.temperature}
    end
    s:epoch_end(e)
  end
  return s, m, log
end

local d = 5
local RX, Ry, wstar = SM.regression(128, d, 0, sg.Generator(9))
local regression = {model = function() return SM.linreg(d) end, criterion = SM.mse, X = RX, y = Ry}

local function full_loss(m)
  local r = m:forward(RX, "eval") - Ry
  return r:dot(r) / (2 * Ry:numel())
end

T.test("same seed: identical step logs and weights; another seed: another path", function()
  local function mk() return optim.sgdsa{H = {0.9, 0.5, 0.2, 0.1, 0.05}, T0 = 1, alpha = 0.8} end
  local s1, m1, l1 = run(regression, mk(), 3, 42)
  local s2, m2, l2 = run(regression, mk(), 3, 42)
  local _, m3, l3 = run(regression, mk(), 3, 43)
  T.eq(#l1, #l2, "log lengths")
  for i = 1, #l1 do
    for j = 1, 6 do
      local x, z = l1[i][j], l2[i][j]
      T.check(x == z or (x ~= x and z ~= z), string.format("step %d field %d: %s vs %s", i, j, x, z))
    end
  end
  T.eq((m1.params - m2.params):abs():max(), 0, "final weights differ with the same seed")
  local differ = false
  for i = 1, #l1 do if l1[i][1] ~= l3[i][1] then differ = true end end
  T.check(differ, "a different seed drew the same etas")
  T.check((m1.params - m3.params):abs():max() > 0, "a different seed gave the same weights")
  T.eq(s1.iter, s2.iter, "step counters")
end)

-- Every acceptance rule (with lr_set) and every neighborhood (with
-- Metropolis) must bring the least-squares loss near zero.
local H = {0.5, 0.3, 0.1, 0.05}
local cases = {
  {"metropolis", function() return optim.sgdsa{H = H, T0 = 0.1, alpha = 0.5} end},
  {"metropolis per step", function() return optim.sgdsa{H = H, T0 = 0.1, alpha = 0.99, cooling = "step"} end},
  {"always", function() return optim.optimizer{neighborhood = optim.lr_set{H = H}, acceptance = optim.always{}} end},
  {"greedy", function() return optim.optimizer{neighborhood = optim.lr_set{H = H}, acceptance = optim.greedy{}} end},
  {"threshold", function() return optim.optimizer{neighborhood = optim.lr_set{H = H}, acceptance = optim.threshold{tau0 = 0.05, alpha = 0.5}} end},
  {"late_acceptance", function() return optim.optimizer{neighborhood = optim.lr_set{H = H}, acceptance = optim.late_acceptance{L = 5}} end},
  {"momentum", function() return optim.optimizer{neighborhood = optim.momentum{H = {{0.1, 0.9}, {0.05, 0.5}, {0.2, 0}}}, acceptance = optim.metropolis{T0 = 0.1, alpha = 0.5}} end},
  {"nesterov", function() return optim.optimizer{neighborhood = optim.nesterov{H = {{0.1, 0.9}, {0.05, 0.5}}}, acceptance = optim.metropolis{T0 = 0.1, alpha = 0.5}} end},
  {"best_of_k", function() return optim.optimizer{neighborhood = optim.best_of_k{k = 3, H = H}, acceptance = optim.metropolis{T0 = 0.1, alpha = 0.5}} end},
  {"sgd schedule", function() return optim.sgd{schedule = {{5, 0.3}, {5, 0.1}}} end},
}
for _, c in ipairs(cases) do
  T.test("converges on least squares: " .. c[1], function()
    local m0 = regression.model()
    m0.params:normal_(0, 0.5, sg.Generator(100))
    local start = full_loss(m0)
    local _, m = run(regression, c[2](), 10, 1)
    local final = full_loss(m)
    T.check(final < 1e-4 * start and final < 1e-3,
            string.format("%s: loss %.3g -> %.3g", c[1], start, final))
    T.check((m.params - wstar):abs():max() < 0.05, c[1] .. ": far from w*")
  end)
end

T.test("SSA (random_direction) descends without gradients", function()
  local before = regression.model(); before.params:normal_(0, 0.5, sg.Generator(100))
  local start = full_loss(before)
  local s, m = run(regression, optim.ssa{eps = 0.02, T0 = 1e-4, alpha = 0.9}, 20, 3)
  local final = full_loss(m)
  T.check(final < 0.5 * start, string.format("SSA: loss %.3g -> %.3g", start, final))
  T.eq(s:trial_forwards(), 2 * s.iter, "SSA scores both w - eps D and w + eps D")
  T.eq(m.grads:abs():max(), 0, "SSA ran a backward")
end)

T.test("objective 'error' on classification; gradient still from the loss", function()
  local dd, c = 6, 3
  local X, y = SM.blobs(120, dd, c, sg.Generator(8))
  local problem = {model = function() return SM.softmax(dd, c) end, criterion = SM.xent, X = X, y = y}
  local s, m = run(problem, optim.sgdsa{H = {0.5, 0.1}, T0 = 0.05, alpha = 0.5, objective = "error"}, 8, 2, 20)
  T.eq(s.objective_name, "error")
  local _, correct = SM.xent():forward(m:forward(X, "eval"), y)
  T.check(correct / 120 > 0.9, "accuracy " .. correct / 120)
  local _, _, log = run(problem, optim.sgdsa{H = {0.5, 0.1}, T0 = 0.05, alpha = 0.5, objective = "error"}, 1, 2, 20)
  for i, r in ipairs(log) do
    local fw = r[2]
    T.check(fw >= 0 and fw <= 1 and math.abs(fw * 20 - math.floor(fw * 20 + 0.5)) < 1e-9,
            "objective at step " .. i .. " is not an error rate: " .. fw)
  end
end)

T.test("non-finite objective at w: step returns nil and a message, nothing changes", function()
  local m = SM.linreg(3)
  m.params:fill(0 / 0)
  local X, y = SM.regression(8, 3, 0, sg.Generator(1))
  local s = search.new{model = m, criterion = SM.mse(), optim = optim.sgdsa{H = {0.1}}}
  local r, msg = s:step(X, y)
  T.eq(r, nil, "record")
  T.check(msg:find("objective (loss) at the current point is", 1, true) and msg:find("diverged", 1, true), msg)
  T.eq(s.iter, 0, "step counter advanced")
end)

T.test("user-written neighborhood and acceptance functions with their own state", function()
  local m = SM.linreg(d)
  m.params:normal_(0, 0.5, sg.Generator(100))
  local start = full_loss(m)
  -- a neighborhood that halves eta after each rejection, and a rule that
  -- accepts improvements only, counting its decisions in ctx.state
  local nb = function(ctx)
    ctx.state.eta = ctx.state.eta or 0.8
    if ctx.state.last_rejected then ctx.state.eta = math.max(ctx.state.eta / 2, 0.01) end
    ctx.trial:add_scaled_(ctx.w, -ctx.state.eta, ctx.g)
    return ctx.state.eta
  end
  local rejected = false
  local ac = function(ctx, fw, ft)
    ctx.state.n = (ctx.state.n or 0) + 1
    rejected = ft > fw
    return not rejected, rejected and 0 or 1
  end
  local o = optim.optimizer{neighborhood = nb, acceptance = ac}
  local s = search.new{model = m, criterion = SM.mse(), optim = o}
  for e = 1, 10 do
    s:epoch_start(e)
    for xb, yb in SM.batches(RX, Ry, 16) do
      s.neighborhood._state.last_rejected = rejected
      assert(s:step(xb, yb))
    end
  end
  T.eq(s:state().acceptance.n, 80, "the rule's own state kept")
  T.check(full_loss(m) < 1e-3 * start, "user pieces did not converge: " .. full_loss(m))
end)

T.test("state/set_state: a search continued from its state takes the same path", function()
  local function mk() return optim.optimizer{neighborhood = optim.momentum{H = {{0.1, 0.9}, {0.3, 0.5}}},
                                             acceptance = optim.late_acceptance{L = 3}} end
  local _, mref = run(regression, mk(), 4, 5)
  -- 2 epochs, snapshot, rebuild from scratch, restore, 2 more epochs
  local m = regression.model(); m.params:normal_(0, 0.5, sg.Generator(100))
  local rng = sg.Generator(5, "search")
  local s = search.new{model = m, criterion = SM.mse(), optim = mk(), rng = rng}
  for e = 1, 2 do
    s:epoch_start(e)
    for xb, yb in SM.batches(RX, Ry, 16) do assert(s:step(xb, yb)) end
    s:epoch_end(e)
  end
  local st, rs, w = s:state(), rng:state(), m.params:clone()
  st.neighborhood.velocity = st.neighborhood.velocity:clone()
  local m2 = regression.model(); m2.params:copy(w)
  local rng2 = sg.Generator(0, "search"); rng2:set_state(rs)
  local s2 = search.new{model = m2, criterion = SM.mse(), optim = mk(), rng = rng2}
  s2:set_state(st)
  for e = 3, 4 do
    s2:epoch_start(e)
    for xb, yb in SM.batches(RX, Ry, 16) do assert(s2:step(xb, yb)) end
    s2:epoch_end(e)
  end
  T.eq((m2.params - mref.params):abs():max(), 0, "resumed search diverged from the reference")
end)

T.done()
