-- test_config_check.lua - a configuration refuses what it does not know:
-- every key at every level (experiment fields, overrides, the model spec's
-- options, data options, checkpoint and optimizer options) is checked against
-- what the constructors accept, and an unknown one is an error listing the
-- allowed ones with the closest as a did-you-mean; seed is a non-negative
-- integer; name is one plain folder name; an SGDSA_DATA that is not a
-- directory is an error; a resume into a folder it cannot write fails before
-- the first step.
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"
local trainer = require "sgdsa.trainer"
local options = require "sgdsa.options"
local F = dofile("tests/lua/trainer_fixture.lua")

local tmp = T.scratch("config-check")
local data = F.data_file(tmp)

-- an experiment with a model spec (models/mlp.lua) on the fixture's data
local function exp(extra)
  local e = {
    model = {"mlp", channels = 1, size = 8, classes = 10, hidden = {16}},
    data = {"hdf5", file = data, batch = 32, prefetch = 0},
    optim = sg.optim.sgdsa{H = {0.1, 0.05}, T0 = 0.05, alpha = 0.7},
    epochs = 1, seed = 1, threads = 1, progress = "off", out = tmp .. "/runs",
  }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

T.test("did-you-mean: the closest allowed name when it is close", function()
  T.eq(options.suggest("clases", {"channels", "classes", "size", "width"}), "classes", "clases")
  T.eq(options.suggest("T00", {"H", "T0", "T_min", "alpha"}), "T0", "T00")
  T.eq(options.suggest("epoch", {"epochs", "seed", "device"}), "epochs", "epoch")
  T.eq(options.suggest("Seed", {"epochs", "seed"}), "seed", "case")
  T.eq(options.suggest("bogus", {"batch", "dir", "limit"}), nil, "nothing close")
  T.eq(options.distance("ab", "ba"), 1, "a swap is one edit")
end)

T.test("the model spec's options are checked", function()
  local e = T.raises(function() trainer.train(exp(), {["model.clases"] = 5}) end,
                     "models.mlp: unknown option 'clases' (allowed: channels, classes, hidden, input_grad, size, width)")
  T.check(e:find("did you mean 'classes'?", 1, true), e)
  T.raises(function() return require("models.lenet"){clases = 5} end, "models.lenet: unknown option 'clases'")
  T.raises(function() return require("models.vgg16"){widht = 1} end, "did you mean 'width'?")
  T.raises(function() return require("models.resnet18"){chanels = 3} end,
           "models.resnet18: unknown option 'chanels'")
  e = T.raises(function() trainer.train(exp{model = {"lenett"}}) end, "unknown model \"lenett\" (built in: lenet, mlp, ")
  T.check(e:find("did you mean 'lenet'?", 1, true), e)
end)

T.test("data, optimizer, checkpoint options and fields suggest the closest name", function()
  local e = T.raises(function() trainer.train(exp(), {["data.bach"] = 3}) end,
                     "sgdsa.data.hdf5: unknown option 'bach' (allowed: ")
  T.check(e:find("did you mean 'batch'?", 1, true), e)
  T.raises(function() trainer.configure(exp(), {["optim.T00"] = 1}) end, "did you mean 'T0'?")
  T.raises(function() trainer.configure(exp(), {["checkpoint.evry"] = 2}) end, "did you mean 'every'?")
  T.raises(function() trainer.configure(exp{epoch = 3}) end, "did you mean 'epochs'?")
  T.raises(function() trainer.configure(exp(), {seeds = 3}) end, "did you mean 'seed'?")
  T.raises(function() trainer.configure(exp(), {["sead.x"] = 3}) end, "did you mean 'seed'?")
  T.raises(function() trainer.train(exp{data = {"fashion_mnis"}}) end, "did you mean 'fashion_mnist'?")
  T.raises(function() sg.data.hdf5{file = data, augment = {crp = 2}} end,
           "unknown option 'augment.crp' (allowed: crop, flip); did you mean 'crop'?")
end)

T.test("checkpoint.best, seed and log_steps take only their kind of value", function()
  T.raises(function() trainer.configure(exp(), {["checkpoint.best"] = "abc"}) end,
           "checkpoint.best must be true or false, got abc")
  T.raises(function() trainer.configure(exp(), {seed = -1}) end, "seed must be a non-negative integer, got -1")
  T.raises(function() trainer.configure(exp(), {seed = 1.5}) end, "seed must be a non-negative integer, got 1.5")
  T.raises(function() trainer.configure(exp(), {log_steps = 0}) end, "log_steps must be true or false")
  T.eq(trainer.configure(exp(), {seed = 0}).seed, 0, "seed 0")
end)

T.test("name is one plain folder name", function()
  for _, bad in ipairs{"../../escape", "", ".", "..", "a/b", "/abs", "x\ny"} do
    T.raises(function() trainer.configure(exp(), {name = bad}) end, "name must be a plain folder name",
             "name " .. string.format("%q", bad))
  end
  T.raises(function() trainer.configure(exp(), {name = true}) end, "name must be a folder name")
  T.eq(trainer.configure(exp(), {name = 2024}).name, "2024", "a number is a name")
  T.eq(trainer.configure(exp(), {name = "try-1.b"}).name, "try-1.b", "a plain name")
  -- nothing was written outside out=
  T.check(not sg.core.exists(tmp .. "/escape"), "no folder escaped")
end)

T.test("SGDSA_DATA that is not a directory is an error, not a fallback", function()
  local code, out = T.sgdsa({"-e", "sgdsa.data.fashion_mnist{}"}, "SGDSA_DATA=" .. T.shell_quote(tmp .. "/nowhere"))
  T.eq(code, 1, "exit status: " .. out)
  T.check(out:find("SGDSA_DATA=" .. tmp .. "/nowhere is not an existing directory", 1, true), out)
  code, out = T.sgdsa({"-e", "sgdsa.data.fashion_mnist{}"}, "SGDSA_DATA=" .. T.shell_quote(data))
  T.eq(code, 1, "exit status: " .. out)
  T.check(out:find("is not a directory", 1, true), out)
end)

T.test("a resume into a folder it cannot write fails before the first step", function()
  if not os.getenv("SGDSA_BIN") then return end
  local r = trainer.train(F.experiment(data, {epochs = 1, out = tmp .. "/runs", name = "ro"}))
  T.eq(r.epochs_done, 1, "the run to resume")
  local dir = tmp .. "/runs/ro"
  local before = T.read_file(dir .. "/log.h5")
  -- as root, permissions do not stop writes: run the resume as nobody
  local user = ""
  local p = io.popen("id -u")
  local uid = tonumber(p:read("a"))
  p:close()
  if uid == 0 then
    if not os.execute("command -v setpriv >/dev/null 2>&1") then T.skip("root without setpriv") end
    user = "setpriv --reuid=65534 --regid=65534 --clear-groups"
    os.execute("chmod -R a+rX " .. T.shell_quote(tmp))
  end
  os.execute("chmod a-w " .. T.shell_quote(dir))
  local env = "SGDSA_FIXTURE_DATA=" .. T.shell_quote(data) .. " " .. user
  local code, out = T.sgdsa({"run", "tests/lua/trainer_fixture.lua", "resume=" .. dir, "epochs=2"}, env)
  os.execute("chmod u+w " .. T.shell_quote(dir))
  T.eq(code, 1, "exit status: " .. out)
  T.check(out:find("the run folder " .. dir .. " is not writable (Permission denied)", 1, true), out)
  T.eq(T.read_file(dir .. "/log.h5"), before, "log.h5 untouched")
  T.check(not out:find("epoch 2", 1, true), "no epoch trained: " .. out)
end)

T.remove(tmp)
T.done()
