-- test_help.lua - help(x) (sgdsa.help): the comment above a function's
-- definition, a module's opening comment and its functions, a class, an
-- optimizer, a built-in and a user-written piece, a model, a search, a name
-- (loading what loads on first use), C functions, the index; and the
-- summaries the REPL prints for optimizers, searches and data sets.
-- (The REPL itself, under a pty: tests/py/test_repl.py.)
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"
local help = sg.help
local SM = dofile("tests/lua/search_models.lua")

local function has(text, what, msg)
  T.check(text:find(what, 1, true), string.format("%s: %q not in:\n%s", msg or "help", what, text), 2)
end

T.test("functions: the definition line and the comment above it", function()
  local t = help.text(sg.optim.sgdsa)
  has(t, "sgdsa.optim.sgdsa  (")
  has(t, "function M.sgdsa(o)")
  has(t, "The paper's SGD-SA (Algorithm 2)")
  has(help.text(sg.models.build), "A model from a spec")
  has(help.text(sg.models.lenet), "LeNet-5 with batch normalization", "a model constructor: its file's comment")
  has(help.text(sg.zeros), "sgdsa.zeros: a function of the C core")
  has(help.text(sg.Tensor.add), "Tensor:add: a tensor method, in C: t:add(...)")
end)

T.test("modules, classes and names", function()
  local t = help.text(sg.nn)
  has(t, "sgdsa.nn - the module library")
  has(t, "functions:")
  has(t, "model ")
  has(help.text(sg.models), "loaded on first use: lenet, mlp, resnet18, resnet34, vgg16")
  has(help.text(sg.nn.Conv2d), "Conv2d(in, out, kernel, {stride=1, padding=0, bias=true})")
  has(help.text(sg.nn.BatchNorm1d), "BatchNorm2d(c, {eps = 1e-5", "a class documented by its parent")
  has(help.text("sgdsa.optim.late_acceptance"), "late acceptance hill climbing")
  has(help.text("optim.threshold"), "sgdsa.optim.threshold")
  has(help.text("sgdsa.trainer"), "trains an experiment table")
  has(help.text("no.such.thing"), 'help: nothing is named "no.such.thing"')
  local idx = help.text()
  has(idx, "help(x): the documentation of x")
  has(idx, "sgdsa.models      lenet, mlp, resnet18, resnet34, vgg16")
  T.eq(tostring(help), idx, "`help` alone prints the index")
  has(help.text(sg.Tensor), "the tensor methods")
end)

T.test("objects: optimizers, pieces, models, searches, data sets", function()
  local opt = sg.optim.ssa{eps = 0.01}
  local t = help.text(opt)
  has(t, "sgdsa.optim.ssa{eps=0.01}\n  neighborhood  random_direction{eps=0.01}\n  acceptance    metropolis{")
  has(t, "SSA (section 2.1)")
  has(help.text(opt.acceptance), "the simulated-annealing acceptance test", "a built-in piece: its module's comment")
  -- a user-written piece: the comment above its propose
  local nb = {name = "halfstep"}
  -- halfstep: trial = w - 0.5 g, a fixed step.
  function nb.propose(_, ctx) ctx.trial:add_scaled_(ctx.w, -0.5, ctx.g); return 0.5 end
  t = help.text(nb)
  has(t, "neighborhood 'halfstep'")
  has(t, "halfstep: trial = w - 0.5 g, a fixed step.")
  local m = sg.models.mlp{size = 4, hidden = {3}}
  has(help.text(m), "mlp: input 1x4x4")
  has(help.text(m), "a multilayer perceptron")
  local s = require("sgdsa.search").new{model = SM.linreg(2), criterion = SM.mse(),
                                        optim = sg.optim.sgdsa{H = {0.1}}}
  t = tostring(s)
  has(t, "sgdsa.search: epoch 1, step 0, T = 1\n  neighborhood 'lr_set', acceptance 'metropolis'")
  has(t, "this epoch: 0 steps, 0 accepted")
  has(help.text(s), "one step of the search loop")
end)

T.test("a data set prints as a summary", function()
  local dir = T.tmpdir() .. "/help_data"
  os.execute("mkdir -p " .. T.shell_quote(dir))
  T.write_idx(dir, "train", 50, 4, 4)
  T.write_idx(dir, "t10k", 20, 4, 4)
  local d = sg.data.mnist{dir = dir, batch = 16, validation = 10}
  local t = tostring(d)
  has(t, "sgdsa.data.mnist: 10 classes, images 1x4x4")
  has(t, "train     40 images, batch 16, 3 batches per epoch")
  has(t, "val       10 images")
  has(t, "test      20 images")
  has(help.text(d), "datasets for training scripts")
  os.execute("rm -rf " .. T.shell_quote(dir))
end)

T.done()
