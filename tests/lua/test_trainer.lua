-- test_trainer.lua - the trainer (lua/sgdsa/trainer.lua) in-process: config
-- checks and overrides, the run folder (log.h5, last.h5, best.h5 per
-- docs/FORMAT.md), reproducibility, resume at an epoch boundary, hooks,
-- divergence handling. SIGKILL resumes are in test_resume.lua.
local T = dofile("tests/lua/testlib.lua")
local F = dofile("tests/lua/trainer_fixture.lua")
local sg = sgdsa or require "sgdsa"
local h5 = require "sgdsa.h5"
local trainer = require "sgdsa.trainer"
local checkpoint = require "sgdsa.checkpoint"

local tmp = T.tmpdir() .. "/trainer"
os.execute("rm -rf '" .. tmp .. "'")
sg.core.mkdir_p(tmp)
local data = F.data_file(tmp)
local out = tmp .. "/runs"

local function exp(opts)
  local e = F.experiment(data, {out = out})
  for k, v in pairs(opts or {}) do e[k] = v end
  return e
end

local function same_array(a, b, what)
  T.eq(#a, #b, what .. ": lengths")
  for i = 1, #a do
    local x, y = a[i], b[i]
    if not (x == y or (x ~= x and y ~= y)) then
      error(string.format("%s: row %d differs: %s vs %s", what, i, tostring(x), tostring(y)), 2)
    end
  end
end

local function max_diff(a, b) return (a - b):abs():max() end

T.test("config: unknown fields and overrides name the key and list the allowed ones", function()
  local e = T.raises(function() trainer.configure(exp{epoch = 3}) end, 'unknown experiment field "epoch"')
  T.check(e:find("allowed: args, checkpoint, criterion, data, deterministic, device, epochs", 1, true), e)
  T.raises(function() trainer.configure(exp(), {lr = 0.1}) end, 'unknown override "lr"')
  T.raises(function() trainer.configure(exp(), {["optim.T00"] = 1}) end, "unknown option 'T00'")
  T.raises(function() trainer.configure(exp(), {"extra"}) end, 'positional argument "extra"')
  T.raises(function() trainer.configure(exp(), {["checkpoint.evry"] = 2}) end, "unknown option 'evry'")
  T.raises(function() trainer.configure(exp(), {epochs = 0}) end, "epochs must be a positive integer")
  T.raises(function() trainer.configure(exp(), {["model.width"] = 2}) end, "model is not a spec table")
  T.raises(function() trainer.configure(exp{hooks = {on_stepp = print}}) end, "unknown option 'on_stepp'")
  -- dotted overrides rebuild the optimizer / the spec
  local c = trainer.configure(exp{optim = sg.optim.sgdsa{H = {0.1}, T0 = 1}}, {["optim.T0"] = 0.25, seed = 3,
                              ["data.batch"] = 16})
  T.eq(c.optim.args.T0, 0.25, "optim.T0 override")
  T.eq(c.optim.acceptance:temperature(), 0.25, "rebuilt acceptance")
  T.eq(c.seed, 3); T.eq(c.data.batch, 16, "data.batch override")
  local text = trainer.config_text(c)
  T.check(text:find('optim = sgdsa{H={0.1}, T0=0.25}', 1, true), text)
end)

local ref
T.test("a run writes log.h5, last.h5, best.h5 with the documented contents", function()
  local nsteps = 0
  local r = trainer.train(exp{name = "ref", hooks = {on_step = function() nsteps = nsteps + 1 end}})
  ref = r
  local dir = out .. "/ref"
  T.eq(r.dir, dir)
  T.eq(r.epochs_done, 4)
  T.check(r.best_acc > 0.5, "best validation accuracy " .. r.best_acc)
  local f <close> = h5.open(dir .. "/log.h5", "r")
  T.check(f:read_text("config"):find("epochs = 4", 1, true), "config text")
  T.eq(f:attr("seed"), 7); T.eq(f:attr("device"), "cpu"); T.eq(f:attr("kind"), "run-log"); T.eq(f:attr("name"), "ref"); T.eq(f:attr("resumed"), 0)
  T.eq(f:attr("format_version"), h5.format_version)
  T.check(type(f:attr("host")) == "string" and type(f:attr("start_time")) == "string", "metadata")
  local ci = sg.core.cpu_info()
  T.eq(f:attr("blas_core"), ci.blas_core, "blas_core"); T.eq(f:attr("blas"), ci.blas, "blas")
  T.eq(f:attr("blas_core_origin"), ci.blas_core_origin, "blas_core_origin")
  T.eq(f:attr("dnnl_isa"), ci.dnnl_isa or "", "dnnl_isa")
  T.check(f:attr("cpu"):find(ci.cpu, 1, true), "cpu attribute: " .. f:attr("cpu"))
  local steps = h5.read_log(f, "steps")
  T.eq(steps.rows, nsteps, "one step row per step")
  T.eq(nsteps, 4 * 20, "640 images / 32 per batch x 4 epochs")
  for i = 1, steps.rows do T.eq(steps.data.step[i], i, "step numbers") end
  same_array(steps.data.loss, r.logs.steps.loss, "on-disk vs in-memory loss")
  same_array(steps.data.trial_loss, steps.data.trial_objective, "trial_loss is the objective")
  T.check(f:read_text("script_path"):find("test_trainer.lua", 1, true), "script_path")
  local epochs = h5.read_log(f, "epochs")
  T.eq(epochs.rows, 4)
  T.near(epochs.data.T[4], 0.05 * 0.7 ^ 3, 1e-12, "T of epoch 4")
  T.eq(epochs.data.step[4], 80, "global step at the end of epoch 4")
  for i = 1, 4 do
    local acc, p = epochs.data.accept_rate[i], epochs.data.mean_prob[i]
    T.check(acc >= 0 and acc <= 1 and p >= 0 and p <= 1, "rates in [0, 1]")
    T.eq(epochs.data.val_acc[i], r.logs.epochs[i].val_acc, "val_acc in memory")
  end
  -- checkpoints: weights under PyTorch names, search state, rng streams, loader position
  local m = F.model()
  local st, attrs = checkpoint.load(dir .. "/last.h5", m)
  T.eq(max_diff(m.params, r.model.params), 0, "last.h5 weights")
  T.eq(max_diff(m.buffers, r.model.buffers), 0, "last.h5 BN buffers")
  T.eq(attrs.kind, "checkpoint"); T.eq(attrs.epoch, 4, "epochs completed"); T.eq(st.epoch, 4)
  T.near(st.rule.T, 0.05 * 0.7 ^ 4, 1e-12, "temperature after 4 coolings")
  T.eq(st.temperature, st.rule.T, "search/temperature")
  T.eq(st.step, 80)
  T.check(sg.is_tensor(st.optim.velocity), "momentum velocity saved (search/optim/velocity)")
  -- one value per parameter (model:pack), not the aligned flat layout
  T.eq(st.optim.velocity:numel(), m:num_params(), "search/optim/velocity: num_params values")
  T.check(m.params:numel() > m:num_params(), "the fixture's model has alignment gaps")
  local v = m:unpack(st.optim.velocity, sg.zeros(m.params:numel()))
  T.check(v:abs():max() > 0, "the velocity is not zero")
  T.eq(#st.rng.search, 4, "search stream state")
  T.eq(#st.data.order, 640, "data order"); T.eq(st.data.position, 640, "data position")
  T.eq(st.data.epoch, 4); T.eq(st.trainer.best_epoch, r.best_epoch)
  local names = {}
  for _, e in ipairs(h5.open(dir .. "/last.h5", "r"):list("/")) do names[e.name] = true end
  T.check(names["fc1.weight"] and names["bn1.running_mean"] and names["fc2.bias"], "PyTorch-style names")
  local mb = F.model()
  local _, battrs = checkpoint.load(dir .. "/best.h5", mb)
  T.eq(battrs.best_epoch, r.best_epoch); T.eq(battrs.best_val_acc, r.best_acc)
  -- a fresh run refuses to overwrite the folder
  T.raises(function() trainer.train(exp{name = "ref"}) end, "already exists; continue it with resume=")
end)

T.test("same seed: identical logs and weights; another seed: another path", function()
  local a = trainer.train(exp{out = false})
  local b = trainer.train(exp{out = false, seed = 8})
  for _, k in ipairs{"eta", "loss", "trial_loss", "prob", "accepted", "T"} do
    same_array(a.logs.steps[k], ref.logs.steps[k], "same seed, " .. k)
  end
  T.eq(max_diff(a.model.params, ref.model.params), 0, "same seed, weights")
  T.check(max_diff(b.model.params, ref.model.params) > 0, "seed 8 gave the seed-7 weights")
  local differ = false
  for i, v in ipairs(b.logs.steps.eta) do if v ~= ref.logs.steps.eta[i] then differ = true end end
  T.check(differ, "seed 8 drew the same moves")
end)

T.test("resume at an epoch boundary continues bit-identically", function()
  trainer.train(exp{name = "half", epochs = 2})
  local r = trainer.train(exp{epochs = 4}, {resume = out .. "/half"})
  T.eq(max_diff(r.model.params, ref.model.params), 0, "weights after resume")
  T.eq(max_diff(r.model.buffers, ref.model.buffers), 0, "buffers after resume")
  local L = h5.read_log(out .. "/half/log.h5", "steps")
  for _, k in ipairs{"step", "epoch", "eta", "loss", "trial_loss", "prob", "accepted", "T"} do
    same_array(L.data[k], ref.logs.steps[k], "resumed step log, " .. k)
  end
  local E = h5.read_log(out .. "/half/log.h5", "epochs")
  for _, k in ipairs{"epoch", "step", "train_loss", "val_acc", "T", "accept_rate", "mean_prob"} do
    local want = {}
    for i, e in ipairs(ref.logs.epochs) do want[i] = e[k] end
    same_array(E.data[k], want, "resumed epoch log, " .. k)
  end
  T.eq(#r.logs.epochs, 4, "hooks see the whole history after a resume")
  T.eq(h5.open(out .. "/half/log.h5", "r"):attr("resumed"), 1, "resumed counter")
  -- a changed configuration is refused
  T.raises(function() trainer.train(exp{epochs = 4, seed = 9}, {resume = out .. "/half"}) end,
           "the configuration differs from the run's (seed)")
  T.raises(function() trainer.train(exp(), {resume = out .. "/nothing"}) end, "no run folder")
end)

T.test("hooks are called; on_epoch_end returning false stops the run", function()
  local calls = {start = 0, estart = 0, step = 0, eend = 0, finish = 0}
  local r = trainer.train(exp{out = false, hooks = {
    on_start = function(ctx) calls.start = calls.start + 1; T.check(ctx.model and ctx.search, "ctx") end,
    on_epoch_start = function(_, e) calls.estart = calls.estart + 1; T.eq(e, calls.estart) end,
    on_step = function(_, rec) calls.step = calls.step + 1; T.eq(rec.step, calls.step) end,
    on_epoch_end = function(_, e) calls.eend = calls.eend + 1; return e.epoch < 2 end,
    on_end = function(_, res) calls.finish = calls.finish + 1; T.eq(res.epochs_done, 2) end,
  }})
  T.eq(calls.start, 1); T.eq(calls.estart, 2); T.eq(calls.step, 40); T.eq(calls.eend, 2); T.eq(calls.finish, 1)
  T.eq(r.epochs_done, 2)
end)

T.test("a diverging run stops with a clear error and keeps the last good checkpoint", function()
  local e = exp{name = "diverge", optim = sg.optim.sgd{schedule = {{1, 0.05}, {1, 1e30}}}}
  local err = T.raises(function() trainer.train(e) end, "at the current point is")
  T.check(err:find("the last good checkpoint is " .. out .. "/diverge/last.h5", 1, true), err)
  local m = F.model()
  local st = checkpoint.load(out .. "/diverge/last.h5", m)
  T.eq(st.epoch, 1, "the checkpoint is the one after epoch 1")
  T.check(m.params:isfinite(), "checkpointed weights are finite")
  local L = h5.read_log(out .. "/diverge/log.h5", "steps")
  T.check(L.rows > 20, "the steps before the divergence were logged")
end)

T.test("max_steps and the error-rate objective", function()
  local r = trainer.train(exp{out = false, epochs = 2, max_steps = 5,
                              optim = sg.optim.sgdsa{H = {0.5, 0.1}, T0 = 0.05, objective = "error"}})
  T.eq(#r.logs.steps.step, 10, "5 steps per epoch")
  for _, f in ipairs(r.logs.steps.objective) do T.check(f >= 0 and f <= 1, "error rate " .. f) end
end)

T.test("a run folder removed, or removed and taken by another run, while its run writes: that run writes nothing more there",
       function()
  -- at step 5 (epoch 1) the folder goes; the run's next write (epoch 1's
  -- log flush, after step 20) must not land in what is there now
  local function gone_at_step5(name, retake)
    local dir, other = out .. "/" .. name, nil
    T.raises(function()
      trainer.train(exp{name = name, hooks = {on_step = function(_, rec)
        if rec.step ~= 5 then return end
        assert(os.execute("rm -rf '" .. dir .. "'"))
        if retake then
          assert(sg.core.mkdir_p(dir))
          other = assert(sg.core.lock(dir .. "/.lock"))
        end
      end}})
    end, "trainer: the run folder " .. dir .. " was " .. (retake and "taken by another run" or "removed") ..
         " while this run was writing to it")
    return dir, other
  end
  local dir, other = gone_at_step5("retaken", true)
  T.eq(table.concat(sg.core.listdir(dir), " "), ".lock", "the new holder's folder holds only its lock")
  T.check(other:intact(), "the new holder's lock is intact")
  other:unlock()
  T.check(not other:intact(), "a released lock is not intact")
  dir = gone_at_step5("removed", false)
  T.check(not sg.core.exists(dir), "the removed folder was made again")
end)

T.done()
