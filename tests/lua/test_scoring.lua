-- test_scoring.lua - the search loop's scoring modes and the authors' rules
-- (lua/sgdsa/search.lua, optim/random_direction.lua, optim/metropolis.lua):
-- score = "inference" scores f(w) by an inference forward BEFORE the
-- training step and f(w') by one after it, with the running statistics the
-- training forward updated (kept on rejection); objective "loss/batch";
-- the "infer" forward keeps nothing and changes no buffer; SSA's eps rule;
-- the temperature floor; the trainer's log attributes and last-batch warning.
-- Tests/lua/test_parity.lua checks whole runs against PyTorch.
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"
local nn = require "sgdsa.nn"
local optim = require "sgdsa.optim"
local search = require "sgdsa.search"

sg.set_num_threads(1)

local function lenet(seed)
  sg.manual_seed(seed or 3)
  return require("models.lenet"){classes = 10, width = 0.5}
end

local function batch(n, seed)
  local g = sg.Generator(seed or 11)
  local x = sg.randn(n, 1, 28, 28, g)
  local lab = {}
  for i = 1, n do lab[i] = (i * 7 + (seed or 0)) % 10 end
  return x, sg.tensor(lab, "int32")
end

-- The inference-mode loss of the model's current weights on (x, y).
local function infer_loss(model, x, y)
  local crit = nn.CrossEntropy()
  return (crit:forward(model:forward(x, "infer"), y, "infer"))
end

local function same(a, b) return a:clone():sub_(b):abs():max() == 0 end

T.test("\"infer\" forward: running statistics, equal to \"eval\", changes no buffer", function()
  local m = lenet()
  local x, y = batch(16)
  m:forward(x, "train")                     -- non-trivial running statistics
  local buffers = m.buffers:clone()
  local out = m:forward(x, "infer"):clone()
  T.check(same(buffers, m.buffers), "infer changed a buffer")
  local ev = m:forward(x, "eval")
  T.check(same(out, ev), "infer and eval outputs differ")
  local tr = m:forward(x, "trial")
  T.check(not same(out, tr), "infer gave batch-statistics output")
  local ok, err = pcall(m.forward, m, x, "bogus")
  T.check(not ok and err:find("infer", 1, true), err)
  T.check(infer_loss(m, x, y) > 0, "loss")
end)

T.test("score = \"inference\": f(w) before the step, f(w') after, running statistics kept", function()
  local x, y = batch(16)
  local ref, m = lenet(5), lenet(5)
  for _, T0 in ipairs{1, 1e-9} do   -- everything accepted; worsening moves rejected
    local s = search.new{model = m, optim = optim.sgdsa{H = {8, 0.05}, T0 = T0, alpha = 1,
                                                         score = "inference",
                                                         objective = "loss/batch"},
                         rng = sg.Generator(4, "search")}
    for step = 1, 10 do
      -- the reference: the authors' step written out by hand on a twin model
      ref.params:copy(m.params); ref.buffers:copy(m.buffers)
      local fw = infer_loss(ref, x, y) / 16
      ref:zero_grad()
      local crit = nn.CrossEntropy()
      local loss = crit:forward(ref:forward(x, "train"), y)
      ref:backward(x, crit:backward())
      local buffers_after = ref.buffers:clone()
      local rec = assert(s:step(x, y))
      T.near(rec.f_w, fw, 1e-7 * fw, "f(w) at step " .. step)
      T.near(rec.loss, loss, 1e-6, "training loss at step " .. step)
      ref.params:add_scaled_(ref.params, -rec.move, ref.grads)
      local ft = infer_loss(ref, x, y) / 16
      T.near(rec.f_trial, ft, 1e-6 * ft, "f(w') at step " .. step)
      T.check(rec.f_w ~= rec.loss / 16, "f(w) is the training loss")
      -- running statistics keep the training forward's update either way
      T.check(same(m.buffers, buffers_after), "running statistics at step " .. step)
      T.check(same(m.params, rec.accepted and ref.params or m.params), "weights")
      if not rec.accepted then
        ref.params:add_scaled_(ref.params, rec.move, ref.grads)
      end
    end
    if T0 < 1 then T.check(s.stats.accepted < s.stats.steps, "nothing was rejected at T0 = 1e-9") end
  end
end)

T.test("score = \"train\" stays the default; bad score values are errors", function()
  local m = lenet()
  T.eq(search.new{model = m, optim = optim.sgdsa{H = {0.1}}}.score, "train", "default")
  T.eq(search.new{model = m, optim = optim.sgdsa{H = {0.1}}, score = "inference"}.score,
       "inference", "search.new's own score")
  T.raises(function() optim.sgdsa{H = {0.1}, score = "eval"} end, "score must be")
  T.raises(function() search.new{model = m, optim = optim.sgdsa{H = {0.1}}, score = "x"} end,
           "unknown score")
  T.raises(function() search.new{model = m, optim = optim.sgdsa{H = {0.1}}, objective = "l"} end,
           "loss/batch")
  local x, y = batch(8)
  local s = search.new{model = m, optim = optim.sgdsa{H = {0.1}, objective = "loss/batch"}}
  local rec = assert(s:step(x, y))
  T.near(rec.f_w, rec.loss / 8, 1e-12, "loss/batch = loss / n under score = train")
end)

T.test("SSA with inference scoring runs no training forward: running statistics never move", function()
  local m = lenet()
  local x, y = batch(16)
  m:forward(x, "train")
  local buffers = m.buffers:clone()
  local s = search.new{model = m, optim = optim.ssa{eps = 0.01, score = "inference",
                                                     objective = "loss/batch"}}
  s:epoch_start(1)
  for _ = 1, 4 do
    local rec = assert(s:step(x, y))
    T.near(rec.loss / 16, rec.f_w, 1e-9, "the step's loss is the inference loss at w")
  end
  T.check(same(m.buffers, buffers), "running statistics changed")
  T.eq(s:trial_forwards(), 8, "two trial forwards a step")
end)

T.test("SSA eps rule: eps / divisor after an epoch with too few improving moves", function()
  local nb = optim.random_direction{eps = 0.1, eps_bound = 0.6, eps_divisor = 10}
  local function epoch(fw_ft)
    nb:epoch_start(1)
    for _, p in ipairs(fw_ft) do nb:outcome({f = p[1], f_trial = p[2]}, true, 1) end
    nb:epoch_end(1)
  end
  epoch{{1, 0.9}, {1, 1.0}, {1, 1.1}}        -- 2 of 3 improving (<=): 0.67 >= 0.6
  T.near(nb.eps, 0.1, 0, "kept")
  epoch{{1, 0.9}, {1, 1.1}, {1, 1.2}}        -- 1 of 3: divided
  T.near(nb.eps, 0.01, 1e-15, "divided")
  epoch{{1, 0 / 0}, {1, 2}}                  -- NaN trials do not improve
  T.near(nb.eps, 0.001, 1e-16, "divided again")
  local st = nb:state()
  local nb2 = optim.random_direction{eps = 0.1, eps_bound = 0.6}
  nb2:set_state(st)
  T.near(nb2.eps, 0.001, 1e-16, "eps restored from the state")
  local off = optim.random_direction{eps = 0.1}
  off:epoch_start(1); off:outcome({f = 1, f_trial = 2}, false, 1); off:epoch_end(1)
  T.near(off.eps, 0.1, 0, "no rule without eps_bound")
  T.raises(function() optim.random_direction{eps = 0.1, eps_bound = 2} end, "eps_bound")
  T.raises(function() optim.random_direction{eps = 0.1, eps_bound = 0.5, eps_divisor = 1} end,
           "eps_divisor")
end)

T.test("SSA keeps the second point (w + eps Delta) on a tie, as the authors' code", function()
  local m = lenet()
  local x, y = batch(8)
  -- objective constant: every comparison is a tie
  local s = search.new{model = m, optim = optim.ssa{eps = 0.01, objective = function() return 1 end}}
  s:epoch_start(1)
  T.eq(assert(s:step(x, y)).move, 1, "tie keeps w + eps Delta")
end)

T.test("temperature floor T_min: sgdsa 1e-14, ssa 1e-10 by default", function()
  local ac = optim.metropolis{T0 = 1, alpha = 0.01, T_min = 1e-5}
  for e = 1, 5 do ac:epoch_end(e) end
  T.near(ac:temperature(), 1e-5, 0, "floored")
  local sa = optim.sgdsa{H = {0.1}, alpha = 1e-3}
  for e = 1, 10 do sa.acceptance:epoch_end(e) end
  T.near(sa.acceptance:temperature(), 1e-14, 0, "sgdsa floor")
  local ssa = optim.ssa{eps = 0.1, alpha = 1e-3}
  for e = 1, 10 do ssa.acceptance:epoch_end(e) end
  T.near(ssa.acceptance:temperature(), 1e-10, 0, "ssa floor")
  local free = optim.metropolis{T0 = 1, alpha = 0.1}
  for e = 1, 20 do free:epoch_end(e) end
  T.check(free:temperature() < 1e-19, "no floor by default in metropolis")
  T.raises(function() optim.metropolis{T0 = 1, T_min = 2} end, "T_min")
end)

-- The trainer fixture (tests/lua/trainer_fixture.lua) and its data set in
-- an empty folder `name` of the test's temporary folder: F, folder, data file.
local function fixture(name)
  local F = dofile("tests/lua/trainer_fixture.lua")
  local dir = T.tmpdir() .. "/" .. name
  os.execute("rm -rf '" .. dir .. "'; mkdir -p '" .. dir .. "'")
  return F, dir, F.data_file(dir)
end

T.test("trainer: log.h5 records score and objective; inference objectives differ from the loss", function()
  local h5 = require "sgdsa.h5"
  local trainer = require "sgdsa.trainer"
  local F, dir, path = fixture("scoring")
  local e = F.experiment(path, {
    optim = sg.optim.sgdsa{H = {0.3, 0.1}, T0 = 1e-3, score = "inference", objective = "loss/batch"},
    epochs = 1, out = dir, name = "run"})
  trainer.train(e)
  local f = h5.open(dir .. "/run/log.h5", "r")
  T.eq(f:attr("score"), "inference", "score attribute")
  T.eq(f:attr("objective"), "loss/batch", "objective attribute")
  f:close()
  local L = h5.read_log(dir .. "/run/log.h5", "steps")
  T.eq(L.rows, 20, "steps logged")
  local differ = 0
  for i = 1, L.rows do
    local obj, loss = L.data.objective[i], L.data.loss[i]
    -- loss/batch scale: the objective is a mean loss divided by the batch (32)
    T.check(obj > 0 and obj < loss, string.format("step %d: objective %g, loss %g", i, obj, loss))
    if math.abs(obj * 32 - loss) > 1e-6 * loss then differ = differ + 1 end
    T.near(L.data.trial_loss[i], L.data.trial_objective[i] * 32, 1e-9, "trial_loss on the loss scale")
  end
  T.eq(differ, L.rows, "inference objectives equal to the training loss / batch")
  if os.getenv("SGDSA_BIN") then
    local code, out = T.sgdsa({"inspect", dir .. "/run"})
    T.eq(code, 0, "inspect exit")
    T.check(out:find("search scoring: inference, objective loss/batch", 1, true), out)
  end
end)

T.test("trainer: a last batch under a quarter of the batch with BatchNorm is warned about", function()
  local trainer = require "sgdsa.trainer"
  local data = require "sgdsa.data"
  local F, _, path = fixture("scoring_lastbatch")
  local m = F.model()
  local function loader(o)
    o.file = path
    return data.hdf5(o).train
  end
  -- 640 training images
  local w = trainer.last_batch_warning(m, loader{batch = 200})     -- 3 x 200 + 40: 40 < 50
  T.check(w and w:find("40 images", 1, true) and w:find("drop_last=true", 1, true), tostring(w))
  T.eq(trainer.last_batch_warning(m, loader{batch = 150}), nil, "40 >= 150/4: no warning")
  T.eq(trainer.last_batch_warning(m, loader{batch = 200, drop_last = true}), nil, "drop_last")
  T.eq(trainer.last_batch_warning(m, loader{batch = 64}), nil, "multiple of the batch")
  local nobn = require("models.mlp"){channels = 1, size = 8, classes = 10}
  T.eq(trainer.last_batch_warning(nobn, loader{batch = 200}), nil, "no BatchNorm: no warning")
end)

T.done()
