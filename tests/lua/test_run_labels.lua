-- test_run_labels.lua - a run is labelled by what it is: `label=` names its
-- run folder and its method in sgdsa table, plot and inspect; without it a
-- custom optimizer's run is named by its script.
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"
local trainer = require "sgdsa.trainer"
local results = require "sgdsa.results"
local F = dofile("tests/lua/trainer_fixture.lua")

local tmp = T.scratch("run_labels")
local data = F.data_file(tmp)

T.test("label= names the run folder and the method", function()
  local r = trainer.train(F.experiment(data, {epochs = 1, max_steps = 2}),
                          {out = tmp .. "/runs", label = "tabu try"})
  T.check(r.dir:match("/tabu_try%-%d+%-%d+$"), "the folder is named by the label: " .. r.dir)
  local run = assert(results.load(r.dir))
  T.eq(run.method, "tabu try", "the method in tables and plots")
  T.eq(run.label, "tabu try", "the label")
  local text = require("sgdsa.inspect").inspect(r.dir)
  T.check(text:find("method: tabu try (its label=)", 1, true), text)
  T.raises(function() trainer.configure(F.experiment(data), {label = ""}) end, "label must be a text")
end)

T.test("a custom optimizer without a label: the script's name", function()
  local r = trainer.train(F.experiment(data, {epochs = 1, max_steps = 2}), {out = tmp .. "/runs", name = "plain"})
  local run = assert(results.load(r.dir))
  local script = arg[0]:match("([^/]+)%.lua$")
  T.eq(run.script, script, "the script recorded")
  T.eq(run.method, script, "the method is the script's name")
end)

T.remove(tmp)
T.done()
