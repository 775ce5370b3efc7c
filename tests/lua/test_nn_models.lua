-- test_nn_models.lua - models/*.lua: parameter counts (CIFAR-10 vgg16 =
-- 14,728,266 and resnet34 = 21,282,122, as in PyTorch), PyTorch state-dict
-- names, Fashion-MNIST inputs, and model:save / model:load with mismatches
-- reported by name.
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"

T.test("parameter counts", function()
  T.eq(require("models.vgg16"){classes = 10}:num_params(), 14728266, "vgg16 CIFAR-10")
  T.eq(require("models.resnet34"){classes = 10}:num_params(), 21282122, "resnet34 CIFAR-10")
  T.eq(require("models.resnet18"){classes = 10}:num_params(), 11173962, "resnet18 CIFAR-10")
  T.eq(require("models.vgg16"){classes = 100}:num_params(), 14728266 + 90 * 513, "vgg16 CIFAR-100")
  T.eq(require("models.lenet"){}:num_params(), 62158, "lenet BN Fashion-MNIST")
end)

T.test("state-dict names and layouts", function()
  local st = require("models.resnet34"){classes = 10}:state()
  local want = {
    ["conv1.weight"] = "64x3x3x3", ["bn1.running_mean"] = "64", ["bn1.num_batches_tracked"] = "",
    ["layer1.0.conv1.weight"] = "64x64x3x3", ["layer1.2.bn2.bias"] = "64",
    ["layer2.0.shortcut.0.weight"] = "128x64x1x1", ["layer2.0.shortcut.1.running_var"] = "128",
    ["layer3.5.conv2.weight"] = "256x256x3x3", ["layer4.2.bn2.weight"] = "512",
    ["linear.weight"] = "10x512", ["linear.bias"] = "10",
  }
  for k, v in pairs(want) do
    T.check(st[k] ~= nil, "resnet34 has " .. k)
    T.eq(table.concat(st[k]:size(), "x"), v, k)
  end
  T.eq(st["layer1.0.shortcut.0.weight"], nil, "no shortcut without a shape change")
  local v = require("models.vgg16"){classes = 10}:state()
  T.eq(table.concat(v["features.0.weight"]:size(), "x"), "64x3x3x3", "features.0.weight")
  T.eq(table.concat(v["features.1.running_mean"]:size(), "x"), "64", "features.1.running_mean")
  T.eq(table.concat(v["features.41.weight"]:size(), "x"), "512", "last BN is features.41")
  T.eq(table.concat(v["classifier.weight"]:size(), "x"), "10x512", "classifier.weight")
end)

T.test("Fashion-MNIST inputs (padded where needed)", function()
  for _, n in ipairs{"mlp", "lenet", "vgg16", "resnet18"} do
    local m = require("models." .. n){channels = 1, size = 28, classes = 10, width = 1 / 16}
    local y = m:forward(sg.randn(2, 1, 28, 28), "train")
    T.eq(table.concat(y:size(), "x"), "2x10", n .. " output")
  end
end)

T.test("save and load round trip; mismatches named", function()
  local dir = T.tmpdir()
  local path = dir .. "/test_nn_models_lenet.h5"
  sg.manual_seed(11)
  local a = require("models.lenet"){}
  a:forward(sg.randn(4, 1, 28, 28), "train")
  a:save(path)
  sg.manual_seed(12)
  local b = require("models.lenet"){}
  T.check((a.params - b.params):abs():max() > 0, "different seeds differ")
  b:load(path)
  T.tensor_near(b.params, a.params, 0, "params restored")
  T.tensor_near(b.buffers, a.buffers, 0, "buffers restored")
  local wide = require("models.lenet"){width = 2}
  local before = wide.params:clone()
  local err = T.raises(function() wide:load(path) end, "conv1.weight: shape 6x1x5x5 in the file, model has 12x1x5x5")
  T.check(err:find("fc3.weight: shape 10x84 in the file, model has 10x168", 1, true), err)
  T.tensor_near(wide.params, before, 0, "a failed load changes nothing")
  local mlp = require("models.mlp"){}
  err = T.raises(function() mlp:load(path) end, "bn1.running_mean: in the file but not in the model")
  T.check(err:find("fc1.weight: shape 120x400 in the file, model has 512x784", 1, true), err)
  os.remove(path)
end)

T.test("printing a model", function()
  local s = tostring(require("models.vgg16"){classes = 10})
  T.check(s:find("vgg16: input 3x32x32 -> output 10, 14,728,266 parameters", 1, true), s:sub(1, 200))
  T.check(s:find("classifier: Linear(512->10) -> 10  [5,130]", 1, true), "classifier line")
end)

-- Models a and b, two ways of computing the same, trained side by side for
-- `steps` SGD steps (lr 0.05) on 3 random images with `labels`: after each
-- step, what each gave under `keys` (loss, g: gradients, dx: the input
-- gradient where there is one, t and e: trial and eval outputs, buf: the
-- running statistics) must be equal bit for bit. before(step) runs before
-- each model's step, after(step) once both ran.
local function train_twins(name, a, b, labels, steps, keys, before, after)
  local crit = sg.nn.CrossEntropy()
  sg.manual_seed(6)
  local x = sg.randn(3, 3, 32, 32)
  labels = sg.tensor(labels):int()
  for step = 1, steps do
    local outs = {}
    for _, m in ipairs{a, b} do
      if before then before(step) end
      m:zero_grad()
      local loss = crit:forward(m:forward(x, "train"), labels)
      local dx = m:backward(x, crit:backward())
      local o = {loss = sg.tensor({loss}), g = m.grads:clone(), dx = dx and dx:clone()}
      o.t = m:forward(x * 0.5, "trial"):clone()
      o.e = m:forward(x, "eval"):clone()
      o.buf = m.buffers:clone()
      outs[#outs + 1] = o
      m.params:add_(o.g, -0.05)
    end
    for _, k in ipairs(keys) do
      T.eq(outs[1][k] == nil, outs[2][k] == nil, string.format("%s: %s on both sides", name, k))
      if outs[1][k] then
        T.eq((outs[1][k] - outs[2][k]):abs():max(), 0.0, string.format("%s step %d: %s differ", name, step, k))
      end
    end
    if after then after(step) end
  end
end

-- BatchNorm outputs that are not kept (the CPU default, nn/memory.lua plan_scratch)
-- must change nothing: gradients, trial and eval outputs and running
-- statistics bit for bit against the same model keeping every output.
T.test("BatchNorm outputs not kept: identical results, shared scratch", function()
  local function modules(model)
    local list = {}
    local function walk(m)
      list[#list + 1] = m
      for _, c in ipairs(m.children) do walk(c.module) end
    end
    walk(model.root)
    return list
  end
  for _, name in ipairs{"resnet18", "vgg16"} do
    local function build(keep)
      sg.manual_seed(5)
      local m = require("models." .. name){classes = 10, width = 1 / 8}
      return m:keep_bn_outputs(keep)
    end
    local a, b = build(false), build(true)
    train_twins(name, a, b, {1, 4, 9}, 2, {"g", "t", "e", "buf"})
    -- the plan: scratch tensors shared, kept outputs only where needed
    local scratch, nbn, kept = {}, 0, 0
    for _, m in ipairs(modules(a)) do
      if m.running_mean then
        nbn = nbn + 1
        if m._scratch then scratch[m._scratch] = true else kept = kept + 1 end
      end
    end
    local ns = 0
    for _ in pairs(scratch) do ns = ns + 1 end
    if name == "resnet18" then
      T.eq(ns, 2, "resnet18 uses two scratch tensors")
      T.eq(kept, 1, "resnet18 keeps only the stem BatchNorm's output (" .. nbn .. " BatchNorms)")
    else
      T.eq(ns, 1, "vgg16 uses one scratch tensor")
      T.eq(kept, 0, "vgg16 keeps no BatchNorm output (" .. nbn .. " BatchNorms)")
    end
    for _, m in ipairs(modules(b)) do
      T.check(m._scratch == nil, name .. ": keep_bn_outputs(true) keeps every output")
    end
  end
end)

-- The gradient pool (the CPU default, nn/memory.lua) against the
-- containers' buffers shared by nesting depth (model:grad_pool(false), the
-- previous scheme and the GPU's): losses, gradients, input gradients,
-- trial and eval outputs and weights after a few SGD steps bit for bit, on
-- the models and on a net of odd containers (pass-through children, an
-- identity Residual body, nested Residuals, Flatten views); every pool
-- tensor free after each backward; resnet18 needs three pool tensors.
T.test("gradient pool: identical results to per-depth buffers, three tensors", function()
  local nn = sg.nn
  local function odd_net()
    return nn.Sequential{
      nn.Identity(), nn.Conv2d(3, 4, 3, {padding = 1}), nn.BatchNorm2d(4), nn.ReLU(true),
      nn.Residual(nn.Sequential{nn.Identity()}),
      nn.Residual(nn.Sequential{nn.Conv2d(4, 4, 3, {padding = 1}), nn.BatchNorm2d(4)},
                  nn.Sequential{}),
      nn.Residual(nn.Residual(nn.Sequential{nn.Conv2d(4, 4, 1), nn.ReLU()},
                              nn.Identity()),
                  nn.Sequential{nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)}),
      nn.Sequential{nn.Sequential{nn.MaxPool2d(2)}, nn.Identity()},
      nn.Residual(nn.Dropout(0.25), nn.Sequential{nn.Identity(), nn.ReLU()}),
      nn.Flatten(), nn.Identity(), nn.Linear(4 * 16 * 16, 5), nn.BatchNorm1d(5),
    }
  end
  local cases = {
    {"resnet18", function() return require("models.resnet18"){classes = 10, width = 1 / 8} end},
    {"vgg16", function() return require("models.vgg16"){classes = 10, width = 1 / 8} end},
    {"resnet18 input_grad, BN outputs kept", function()
      return require("models.resnet18"){classes = 10, width = 1 / 8, input_grad = true}
        :keep_bn_outputs(true)
    end},
    {"odd containers", function() return nn.model(odd_net(), {input = {3, 32, 32}, input_grad = true}) end},
  }
  for _, c in ipairs(cases) do
    local name = c[1]
    local function build(pool)
      sg.manual_seed(5)
      return c[2]():grad_pool(pool)
    end
    local a, b = build(true), build(false)
    T.check(a.gpool ~= nil and b.gpool == nil, name .. ": grad_pool(true/false) switches the pool")
    train_twins(name, a, b, {1, 4, 3}, 3, {"loss", "g", "dx", "t", "e"},
                function(step) sg.manual_seed(100 + step) end,   -- the same dropout masks on both sides
                function() T.eq(a.gpool:nbusy(), 0, name .. ": every pool tensor given back") end)
    T.eq((a.params - b.params):abs():max(), 0.0, name .. ": weights after training")
    T.eq((a.buffers - b.buffers):abs():max(), 0.0, name .. ": running statistics after training")
    if name == "resnet18" then T.eq(#a.gpool.all, 3, "resnet18 uses three pool tensors") end
  end
end)

T.done()
