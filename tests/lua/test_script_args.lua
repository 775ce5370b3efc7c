-- test_script_args.lua - a script's own keys (the experiment's `args`):
-- typed, checked, recorded in the configuration (a resume with another value
-- is refused) and listed by `sgdsa run SCRIPT --help`; and overrides nested
-- at any depth: optim.acceptance.T0= on optimizer{}, a field of a piece
-- written in the script, data.augment.crop=.
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"
local trainer = require "sgdsa.trainer"
local F = dofile("tests/lua/trainer_fixture.lua")
local optim = sg.optim

local tmp = T.scratch("script_args")
local data = F.data_file(tmp)

local function exp(extra)
  local e = {model = {"lenet"}, data = {"fashion_mnist", batch = 64}, epochs = 1}
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

T.test("declared keys: typed, checked, recorded", function()
  local args = {margin = 0.3, tenure = 5, mode = "fast", flag = false,
                eps = {type = "number", help = "a step"}}
  local cfg = trainer.configure(exp{args = args}, {margin = 1, tenure = 3, mode = 7, flag = true, eps = 0.5})
  T.eq(cfg.args.margin, 1.0, "margin"); T.eq(math.type(cfg.args.margin), "float", "a number key holds a float")
  T.eq(cfg.args.tenure, 3, "tenure")
  T.eq(cfg.args.mode, "7", "a string key takes the text of a number")
  T.eq(cfg.args.flag, true, "flag")
  T.eq(cfg.args.eps, 0.5, "eps")
  cfg = trainer.configure(exp{args = args}, {})
  T.eq(cfg.args.margin, 0.3, "the default")
  T.eq(cfg.args.eps, nil, "no default, not given")
  T.check(trainer.config_text(cfg):find('args = {flag = false, margin = 0.3, mode = "fast", tenure = 5}', 1, true),
          "recorded in the configuration: " .. trainer.config_text(cfg))
  T.raises(function() trainer.configure(exp{args = args}, {tenure = 2.5}) end,
           "tenure=2.5: tenure is an integer (the script's args, default 5)")
  T.raises(function() trainer.configure(exp{args = args}, {flag = "yes"}) end, "flag=yes: flag is a boolean")
  T.raises(function() trainer.configure(exp{args = args}, {margn = 0.1}) end,
           "the script's: eps, flag, margin, mode, tenure")
  T.raises(function() trainer.configure(exp(), {margin = 0.1}) end,
           "the script declares none: return args = {margin = <default>} in its experiment to add it")
  T.raises(function() trainer.configure(exp{args = {seed = 1}}, {}) end, "args.seed: seed is the trainer's own key")
  T.raises(function() trainer.configure(exp{args = {x = {help = "?"}}}, {}) end, "args.x: give a default or a type")
  T.raises(function() trainer.configure(exp{args = {x = {default = 1, typ = "number"}}}, {}) end,
           "unknown option 'typ' (allowed: default, help, type); did you mean 'type'?")
  T.raises(function() trainer.configure(exp{args = {x = {default = "a", type = "number"}}}, {}) end,
           "args.x: the default a is not of its type (number)")
  T.raises(function() trainer.configure(exp(), {args = 1}) end, 'unknown override "args"')
end)

T.test("a resume with another value of a script's key is refused", function()
  local e = F.experiment(data, {epochs = 2, args = {margin = 0.3}})
  local r = trainer.train(e, {out = tmp .. "/runs", name = "argsrun", max_steps = 2, margin = 0.5})
  T.eq(r.config.args.margin, 0.5, "the value trained with")
  T.raises(function()
    trainer.train(F.experiment(data, {epochs = 2, args = {margin = 0.3}}), {resume = r.dir, margin = 0.7, max_steps = 2})
  end, "the configuration differs from the run's (args)")
  local r2 = trainer.train(F.experiment(data, {epochs = 2, args = {margin = 0.3}}),
                           {resume = r.dir, margin = 0.5, max_steps = 2})
  T.eq(r2.epochs_done, 2, "the same value resumes")
end)

T.test("nested overrides at any depth", function()
  local o = optim.optimizer{neighborhood = optim.lr_set{H = {0.1}}, acceptance = optim.metropolis{T0 = 1}}
  local cfg = trainer.configure(exp{optim = o}, {["optim.acceptance.T0"] = 0.5, ["optim.acceptance.alpha"] = 0.9})
  T.eq(cfg.optim.acceptance.T0, 0.5, "optim.acceptance.T0")
  T.eq(cfg.optim.acceptance.alpha, 0.9, "optim.acceptance.alpha")
  T.eq(o.acceptance.T0, 1, "the experiment's optimizer is left as it was")
  T.raises(function() trainer.configure(exp{optim = o}, {["optim.T0"] = 0.5}) end,
           "override optim.T0: optim.optimizer: unknown option 'T0' (allowed: acceptance, neighborhood, " ..
           "objective, score); the options of its pieces are optim.neighborhood.<key> and " ..
           "optim.acceptance.<key> (optim.acceptance.T0=)")
  T.raises(function() trainer.configure(exp{optim = o}, {["optim.acceptance.T00"] = 0.5}) end,
           "override optim.acceptance.T00: optim.metropolis: unknown option 'T00'")
  -- three levels: best_of_k's inner neighborhood
  local b = optim.optimizer{neighborhood = optim.best_of_k{k = 2, neighborhood = optim.random_direction{eps = 0.01}},
                            acceptance = optim.greedy{}}
  cfg = trainer.configure(exp{optim = b}, {["optim.neighborhood.neighborhood.eps"] = 0.02, ["optim.neighborhood.k"] = 3})
  T.eq(cfg.optim.neighborhood.options.neighborhood.eps, 0.02, "optim.neighborhood.neighborhood.eps")
  T.eq(cfg.optim.neighborhood.options.k, 3, "optim.neighborhood.k")
  -- a piece written in the script: its fields
  local ex = dofile("experiments/example_record_to_record.lua")
  cfg = trainer.configure(ex, {["optim.acceptance.D"] = 0.3})
  T.eq(cfg.optim.acceptance.D, 0.3, "a user-written rule's field")
  T.raises(function() trainer.configure(ex, {["optim.acceptance.DD"] = 0.3}) end,
           "has no field \"DD\" to set (its fields: D, record); did you mean 'D'?")
  T.raises(function() trainer.configure(ex, {["optim.acceptance.D"] = "big"}) end,
           "optim.acceptance.D is a number, got big")
  -- the built-in optimizers as before
  cfg = trainer.configure(exp(), {["optim.T0"] = 0.5})
  T.eq(cfg.optim.acceptance.T0, 0.5, "sgdsa{}'s T0")
  -- specs, nested
  cfg = trainer.configure(exp{data = {"cifar10", augment = {crop = 4, flip = true}}}, {["data.augment.crop"] = 2})
  T.eq(cfg.data.augment.crop, 2, "data.augment.crop")
  T.eq(cfg.data.augment.flip, true, "the rest of augment kept")
  T.raises(function() trainer.configure(exp(), {["checkpoint.every.x"] = 1}) end, "one level deep")
end)

T.test("sgdsa run SCRIPT --help lists the script's keys and trains nothing", function()
  if not os.getenv("SGDSA_BIN") then io.write("  (SGDSA_BIN not set: skipped)\n"); return end
  local code, out = T.sgdsa({"run", "experiments/example_tabu_neighborhood.lua", "--help"})
  T.eq(code, 0, "exit: " .. out)
  T.check(out:find("usage: sgdsa run experiments/example_tabu_neighborhood.lua [key=value ...]", 1, true), out)
  T.check(out:find("tenure=INTEGER         default 5  steps a rejected learning rate stays tabu", 1, true), out)
  T.check(out:find("optim.acceptance.T0=", 1, true) and out:find("epochs=", 1, true), out)
  T.check(not out:find("epoch 1/", 1, true), "nothing trained: " .. out)
  code, out = T.sgdsa({"run", "experiments/example_tabu_neighborhood.lua", "tenure=x", "out=false"})
  T.eq(code, 1, "a bad value")
  T.check(out:find("tenure=x: tenure is an integer", 1, true), out)
end)

T.remove(tmp)
T.done()
