-- test_models_by_name.lua - sgdsa.models: networks by name (sgdsa.models.lenet{},
-- sgdsa.models.build{"lenet", ...}, sgdsa.nn.model{"lenet", ...}), loaded on
-- first use, a project's own models/<name>.lua found on package.path, and
-- errors that name the model, the ones there are and the nearest one.
-- (A stock lua5.4 after `cmake --install`: tests/sh/test_embed.sh.)
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"

T.test("sgdsa.models.<name>: built on first use", function()
  T.eq(rawget(sg.models, "mlp"), nil, "mlp is not loaded before its first use")
  local m = sg.models.lenet{classes = 10}
  T.eq(m:num_params(), 62158, "lenet's parameters")
  T.eq(m.name, "lenet", "the model's name")
  T.eq(sg.models.mlp{size = 8, hidden = {16}}:num_params(), 64 * 16 + 16 + 16 * 10 + 10, "mlp")
  T.eq(rawget(sg.models, "mlp") ~= nil, true, "mlp kept once loaded")
  T.eq(require("models.lenet"), sg.models.lenet, "require('models.lenet') is the same constructor")
  T.eq(table.concat(sg.models.names(), " "), "lenet mlp resnet18 resnet34 vgg16", "names()")
  T.eq(getmetatable(sg.models).__complete.vgg16 ~= nil, true, "the REPL completes unloaded names")
end)

T.test("by spec: sgdsa.models.build and sgdsa.nn.model", function()
  T.eq(sg.models.build{"lenet", classes = 10, width = 0.5}.name, "lenet", "build{spec}")
  T.eq(sg.models.build("mlp", {size = 8, hidden = {4}}):num_params(), 64 * 4 + 4 + 4 * 10 + 10,
       "build(name, opts)")
  local m = sg.nn.model{"lenet", classes = 10}
  T.eq(m:num_params(), 62158, "nn.model{\"lenet\", classes = 10}")
  T.eq(sg.nn.model("mlp", {size = 8, hidden = {4}}):num_params(), 64 * 4 + 4 + 4 * 10 + 10,
       "nn.model(name, opts)")
  T.raises(function() sg.models.build({"lenet"}, {classes = 10}) end,
           "give the options inside the spec")
  T.raises(function() sg.nn.model(42) end, "a model name or spec")
end)

T.test("unknown names: the models there are and the nearest one", function()
  local err = T.raises(function() return sg.models.lenett end, 'no model "lenett" (built in: lenet, mlp, resnet18, resnet34, vgg16')
  T.check(err:find("did you mean 'lenet'?", 1, true), err)
  T.raises(function() sg.nn.model{"resnet43"} end, "did you mean 'resnet34'?")
  T.raises(function() sg.models.build{"../x"} end, "a model name is a word")
  local tr = require "sgdsa.trainer"
  T.raises(function()
    tr.train({model = {"vgg61"}, data = function() error("not reached") end, out = false,
              progress = "off"})
  end, "unknown model \"vgg61\" (built in: lenet")
end)

T.test("a project's own models/<name>.lua on package.path", function()
  local dir = T.tmpdir() .. "/models_by_name"
  os.execute("rm -rf " .. T.shell_quote(dir) .. " && mkdir -p " .. T.shell_quote(dir .. "/models"))
  T.write_file(dir .. "/models/tiny.lua", [[
local nn = require "sgdsa.nn"
return function(o)
  return nn.model(nn.Sequential{nn.Flatten(), nn.Linear(4, o.classes or 2)}, {input = {1, 2, 2}, name = "tiny"})
end
]])
  T.write_file(dir .. "/models/broken.lua", "return 42\n")
  local old = package.path
  package.path = dir .. "/?.lua;" .. old
  local ok, err = pcall(function()
    T.eq(sg.models.tiny{classes = 3}:num_params(), 4 * 3 + 3, "models/tiny.lua by name")
    T.eq(sg.nn.model{"tiny"}:num_params(), 4 * 2 + 2, "nn.model{\"tiny\"}")
    T.raises(function() return sg.models.broken end, "models.broken returned a number, not a function")
  end)
  package.path = old
  os.execute("rm -rf " .. T.shell_quote(dir))
  if not ok then error(err, 0) end
end)

T.done()
