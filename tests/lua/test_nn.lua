-- test_nn.lua - the module library (sgdsa.nn): finite-difference gradient
-- checks through whole small models and containers (Residual with a
-- projection, BatchNorm in both modes, a module written in Lua), the trial
-- mode ("trial": running statistics untouched, dropout mask reused, nothing
-- saved for backward), swap_storage, flat-parameter layout and errors.
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"
local nn = require "sgdsa.nn"

-- A module written in Lua with tensor ops: y = a * x, one parameter a.
local Scale = nn.class("Scale")
function Scale:__init(a) self:param("weight", {1}, nn.init.const(a or 1.5)) end
function Scale:describe() return "lua" end
function Scale:forward(x, mode) return x:mul(self.weight[1]) end
function Scale:backward(x, dy, target)
  self.grad_weight[1] = self.grad_weight[1] + x:dot(dy)
  if self.need_dx then return dy:mul(self.weight[1]) end
end

-- Directional finite differences of f = sum(forward(x) .* r) along a random
-- direction per parameter tensor and for the input, against the analytic
-- gradients. "train" checks perturb with "trial" forwards (same batch
-- statistics and dropout masks, running statistics untouched).
local function gradcheck(model, x, mode, tol, label, h)
  local gen = sg.Generator(1234)
  local y = model:forward(x, mode)
  local r = sg.randn(y:size(), gen)
  model:zero_grad()
  local dx = model:backward(x, r)
  T.check(dx ~= nil, label .. ": model built with input_grad returns dx")
  local fmode = mode == "train" and "trial" or "eval"
  local function f() return model:forward(x, fmode):dot(r) end
  T.near(f(), y:clone():dot(r), 1e-6, label .. ": trial/eval forward reproduces the output")
  -- Central differences at h, h/2, h/4 with Richardson extrapolation (train-
  -- mode BatchNorm over a small batch is strongly curved). The two
  -- extrapolations must agree (else a step crossed a ReLU or max-pool kink:
  -- another direction is tried); then they must match the analytic value.
  h = h or 4e-3
  local function along(t, d, s)
    t:axpy_(s, d); local fp = f()
    t:axpy_(-2 * s, d); local fm = f()
    t:axpy_(s, d)
    return (fp - fm) / (2 * s)
  end
  local noise = 2e-6 * y:norm(2) * r:norm(2) / h
  local function check(t, g, name)
    local last
    for _ = 1, 8 do
      local d = sg.randn(t:size(), gen)
      local ana = g:dot(d)
      local n1, n2, n3 = along(t, d, h), along(t, d, h / 2), along(t, d, h / 4)
      local r1, r2 = (4 * n2 - n1) / 3, (4 * n3 - n2) / 3
      local allowed = tol * math.max(math.abs(ana), math.abs(r2)) + noise
      if math.abs(r1 - r2) <= allowed then
        if math.abs(r2 - ana) > allowed then
          error(string.format("%s %s (%s): numeric %.6g, analytic %.6g", label, name, mode, r2, ana), 2)
        end
        return
      end
      last = string.format("%.6g vs %.6g", r1, r2)
    end
    error(string.format("%s %s (%s): no kink-free direction found (%s)", label, name, mode, last), 2)
  end
  for _, e in ipairs(model:named_tensors()) do
    if e.kind == "param" then check(e.tensor, e.grad, e.name) end
  end
  check(x, dx:clone(), "input")
end

local function conv_net()
  return nn.Sequential{
    nn.Conv2d(2, 4, 3, {stride = 2, padding = 1, bias = false}),
    nn.BatchNorm2d(4),
    nn.ReLU(true),
    nn.Residual(
      nn.Sequential{
        {"conv1", nn.Conv2d(4, 6, 3, {padding = 1})},
        {"bn1", nn.BatchNorm2d(6)},
        {"relu", nn.ReLU()},
        {"conv2", nn.Conv2d(6, 6, {3, 1}, {padding = {1, 0}})},
        {"scale", Scale(0.7)},
      },
      nn.Sequential{nn.Conv2d(4, 6, 1, {bias = false}), nn.BatchNorm2d(6)}),
    nn.AvgPool2d(2, {stride = 1}),
    nn.MaxPool2d(2),
    nn.Residual(nn.Sequential{nn.Conv2d(6, 6, 1), nn.BatchNorm2d(6)}),
    nn.GlobalAvgPool(),
    nn.Linear(6, 3),
  }
end

local function mlp_net()
  return nn.Sequential{
    nn.Flatten(),
    nn.Linear(12, 8),
    nn.BatchNorm1d(8),
    nn.ReLU(),
    nn.Dropout(0.3),
    Scale(),
    nn.Linear(8, 5, {bias = false}),
  }
end

T.test("gradients: conv net with residual projection, BN train and eval", function()
  sg.manual_seed(1)
  local m = nn.model(conv_net(), {input = {2, 9, 9}, input_grad = true})
  local x = sg.randn(3, 2, 9, 9)
  gradcheck(m, x, "train", 2e-3, "conv", 1e-3)
  for _ = 1, 3 do m:forward(sg.randn(3, 2, 9, 9), "train") end  -- non-trivial running stats
  gradcheck(m, x, "eval", 2e-3, "conv", 1e-3)
end)

T.test("gradients: mlp with BatchNorm1d, dropout and a Lua module", function()
  sg.manual_seed(2)
  local m = nn.model(mlp_net(), {input = {3, 2, 2}, input_grad = true})
  local x = sg.randn(5, 3, 2, 2)
  gradcheck(m, x, "train", 2e-3, "mlp")
  gradcheck(m, x, "eval", 2e-3, "mlp")
end)

T.test("gradients: padding, identity residual, BatchNorm1d on N x C x L", function()
  sg.manual_seed(3)
  local net = nn.Sequential{
    nn.Pad(2), nn.Conv2d(1, 3, 3), nn.Residual(nn.Sequential{nn.BatchNorm2d(3), Scale(0.5)}),
    nn.Residual(nn.Identity()), nn.Flatten(), nn.Linear(3 * 6 * 6, 4), nn.BatchNorm1d(4),
  }
  local m = nn.model(net, {input = {1, 4, 4}, input_grad = true})
  gradcheck(m, sg.randn(4, 1, 4, 4), "train", 2e-3, "pad")
end)

T.test("gradient check catches a wrong gradient", function()
  sg.manual_seed(5)
  local Bad = nn.class("Bad", Scale)
  function Bad:backward(x, dy, target)
    self.grad_weight[1] = self.grad_weight[1] + 1.1 * x:dot(dy)
    return dy:mul(self.weight[1])
  end
  local m = nn.model(nn.Sequential{nn.Linear(3, 3), Bad()}, {input = {3}, input_grad = true})
  T.raises(function() gradcheck(m, sg.randn(4, 3), "train", 2e-3, "bad") end, "numeric")
end)

T.test("trial mode: running stats untouched, dropout mask reused, nothing saved", function()
  sg.manual_seed(6)
  local net = nn.Sequential{
    nn.Conv2d(2, 3, 3, {padding = 1}), nn.BatchNorm2d(3), nn.ReLU(true), nn.MaxPool2d(2),
    nn.Flatten(), nn.Dropout(0.5), nn.Linear(12, 4), nn.BatchNorm1d(4),
  }
  local m = nn.model(net, {input = {2, 4, 4}})
  local x = sg.randn(6, 2, 4, 4)
  local crit = nn.CrossEntropy()
  local labels = sg.tensor({0, 1, 2, 3, 0, 1}, "int32")
  -- reference gradient: one train forward + backward
  local dstate = sg.stream("dropout"):state()
  local y2 = m:forward(x, "train"):clone()
  crit:forward(y2, labels)
  local dlogits = crit:backward():clone()
  m:zero_grad(); m:backward(x, dlogits)
  local g1, stats = m.grads:clone(), m.buffers:clone()
  -- trial forwards at the same point and at a swapped-in point
  local same = m:forward(x, "trial")
  T.tensor_near(same, y2, 0, "trial forward at the same point: same masks, same batch stats")
  local trial = m.params:clone():add_(sg.randn(m.params:numel()):mul(0.1))
  m.params:swap_storage(trial)
  local yt = m:forward(x, "trial")
  local closs = crit:forward(yt, labels, "trial")
  T.check((yt - y2):abs():max() > 1e-3, "swapped parameters change the output")
  T.check(closs == closs, "trial loss is a number")
  m.params:swap_storage(trial)
  T.tensor_near(m.buffers, stats, 0, "trial forwards leave running stats and counters alone")
  -- trial forwards disturbed nothing the next step uses: the same train
  -- forward and backward give bit-identical outputs and gradients
  m.buffers:copy(stats)
  sg.stream("dropout"):set_state(dstate)
  local y3 = m:forward(x, "train")
  T.tensor_near(y3, y2, 0, "train forward after trial forwards gives the same output")
  crit:forward(y3, labels)
  m:zero_grad(); m:backward(x, crit:backward())
  T.tensor_near(m.grads, g1, 0, "backward after trial forwards gives the same gradients")
  -- num_batches_tracked counts train forwards only
  local nbt = m:state()["1.num_batches_tracked"]
  T.eq(nbt:item(), 2, "num_batches_tracked counts the two train forwards")
end)

T.test("swap_storage: the model computes with the swapped parameters", function()
  sg.manual_seed(7)
  local build = function() return nn.model(conv_net(), {input = {2, 9, 9}}) end
  local a, b = build(), build()
  local x = sg.randn(2, 2, 9, 9)
  for _ = 1, 2 do a:forward(x, "train") end
  local w = sg.randn(a.params:numel()):mul(0.2)
  b.params:copy(w); b.buffers:copy(a.buffers)
  a.params:swap_storage(w)
  T.tensor_near(a:forward(x, "eval"), b:forward(x, "eval"), 0, "eval with swapped = eval with copied")
  T.tensor_near(a:forward(x, "trial"), b:forward(x, "trial"), 0, "trial with swapped = trial with copied")
end)

T.test("flat parameters: views, names, layout, init", function()
  sg.manual_seed(8)
  local m = nn.model(conv_net(), {input = {2, 9, 9}})
  local total = 0
  for _, e in ipairs(m:named_tensors()) do
    if e.kind == "param" then
      T.check(e.tensor:shares_storage(m.params), e.name .. " views model.params")
      T.check(e.grad:shares_storage(m.grads), e.name .. " grad views model.grads")
      total = total + e.tensor:numel()
    else
      T.check(e.tensor:shares_storage(m.buffers), e.name .. " views model.buffers")
    end
  end
  T.eq(total, m:num_params(), "num_params counts the parameter views")
  -- the layout: every tensor at a multiple of nn.ALIGN floats in its flat
  -- tensor, in state-dict order, without overlap; the gaps are zero
  T.eq(nn.ALIGN, 64, "nn.ALIGN")
  local ends = {param = 0, buffer = 0}
  local cover = {param = {}, buffer = {}}
  for _, e in ipairs(m.entries) do
    T.eq(e.offset % nn.ALIGN, 0, e.name .. " offset " .. e.offset .. " aligned")
    T.check(e.offset >= ends[e.kind], e.name .. " after the tensor before it")
    ends[e.kind] = e.offset + e.n
    for i = e.offset + 1, e.offset + e.n do cover[e.kind][i] = true end
  end
  T.eq(m.params:numel(), ends.param, "model.params ends with the last parameter")
  T.eq(m.buffers:numel(), ends.buffer, "model.buffers ends with the last buffer")
  T.check(m.params:numel() > m:num_params(), "conv_net's sizes leave gaps")
  local p, g, b = m.params:totable(), m.grads:totable(), m.buffers:totable()
  local gaps = 0
  for i = 1, #p do
    if not cover.param[i] then
      gaps = gaps + 1
      T.eq(p[i], 0, "params gap " .. i); T.eq(g[i], 0, "grads gap " .. i)
    end
  end
  for i = 1, #b do if not cover.buffer[i] then T.eq(b[i], 0, "buffers gap " .. i) end end
  T.eq(gaps, m.params:numel() - m:num_params(), "gaps")
  -- pack/unpack: the parameters in state-dict order without the gaps (the
  -- checkpoints' layout of optimizer buffers)
  local dense = m:pack(m.params)
  T.eq(dense:numel(), m:num_params(), "pack: num_params values")
  local at = 0
  for _, e in ipairs(m:named_tensors()) do
    if e.kind == "param" then
      T.tensor_near(dense:narrow(1, at + 1, e.tensor:numel()), e.tensor:contiguous():view(-1), 0,
                    "pack: " .. e.name)
      at = at + e.tensor:numel()
    end
  end
  local back = m:unpack(dense, sg.zeros(m.params:numel()))
  T.tensor_near(back, m.params, 0, "unpack(pack(params)) = params")
  T.raises(function() m:pack(sg.zeros(3)) end, "model:pack: a tensor of 3 values")
  T.raises(function() m:unpack(sg.zeros(3), sg.zeros(m.params:numel())) end, "model:unpack")
  local s = m:state()
  T.eq(table.concat(s["0.weight"]:size(), "x"), "4x2x3x3", "conv weight OIHW")
  T.eq(table.concat(s["3.conv2.weight"]:size(), "x"), "6x6x3x1", "residual body names hoisted")
  T.eq(table.concat(s["3.shortcut.0.weight"]:size(), "x"), "6x4x1x1", "projection shortcut")
  T.check(s["3.shortcut.1.running_var"] ~= nil, "shortcut BN buffers")
  T.eq(table.concat(s["8.weight"]:size(), "x"), "3x6", "linear out x in")
  T.eq(s["0.bias"], nil, "bias=false has no bias")
  -- PyTorch init: |w| <= 1/sqrt(fan_in), BN weight 1, bias 0, running var 1
  local bound = 1 / math.sqrt(2 * 9)
  T.check(s["0.weight"]:abs():max() <= bound, "kaiming_uniform bound")
  T.check(s["0.weight"]:abs():max() > 0.8 * bound, "kaiming_uniform fills the range")
  T.eq(s["1.weight"]:sum(), 4); T.eq(s["1.bias"]:abs():sum(), 0); T.eq(s["1.running_var"]:sum(), 4)
  -- same seed -> same init
  sg.manual_seed(8)
  local m2 = nn.model(conv_net(), {input = {2, 9, 9}})
  T.tensor_near(m2.params, m.params, 0, "init is reproducible from the init stream")
end)

T.test("cross entropy: loss, correct, gradient", function()
  local crit = nn.CrossEntropy()
  local logits = sg.tensor{{2, 0, 0}, {0, 0, 3}}
  local loss, correct = crit:forward(logits, sg.tensor({0, 1}, "int32"))
  local l1 = -math.log(math.exp(2) / (math.exp(2) + 2))
  local l2 = -math.log(1 / (2 + math.exp(3)))
  T.near(loss, (l1 + l2) / 2, 1e-6, "mean loss")
  T.eq(correct, 1, "correct")
  local d = crit:backward()
  T.near(d[2][2], (1 / (2 + math.exp(3)) - 1) / 2, 1e-6, "dlogits")
  crit:forward(logits, sg.tensor({0, 1}, "int32"), "trial")
  T.raises(function() crit:backward() end, "train")
end)

T.test("errors name the operation and the shapes", function()
  T.raises(function() nn.model(nn.Sequential{nn.Linear(5, 3)}, {input = {4}}) end, "Linear(5, 3): input shape 4")
  T.raises(function() nn.model(nn.Conv2d(3, 4, 3), {input = {2, 8, 8}}) end, "Conv2d(3, 4)")
  T.raises(function() nn.Conv2d(3, 4, 3, {strid = 2}) end, "unknown option 'strid'")
  local m = nn.model(nn.Sequential{nn.Flatten(), nn.Linear(4, 2)}, {input = {4}})
  T.raises(function() m:forward(sg.randn(2, 4), "test") end, "mode must be")
  T.raises(function() m:forward(sg.randn(2, 5), "train") end, "linear_forward")
  if not sg.core.cuda.available() then
    T.raises(function() m:to("cuda") end, "no usable GPU")   -- with a GPU: test_cuda_model.lua
  end
  T.raises(function() m:to("gpu") end, "unknown device gpu")
  T.eq(m:to("cpu"), m)
  T.raises(function() nn.model(nn.Residual(nn.Conv2d(2, 3, 1)), {input = {2, 4, 4}}) end,
           "projection shortcut")
  local d = nn.model(nn.Dropout(0.5), {input = {3}})
  T.raises(function() d:forward(sg.randn(2, 3), "trial") end, "needs a \"train\" forward")
end)

T.test("printing: a tree with output shapes and parameter counts", function()
  local m = nn.model(conv_net(), {input = {2, 9, 9}, name = "small"})
  local s = tostring(m)
  T.check(s:find("small: input 2x9x9 -> output 3", 1, true), s)
  T.check(s:find("Conv2d(2->4, k3x3 s2 p1, no bias) -> 4x5x5  [72]", 1, true), s)
  T.check(s:find("shortcut: Sequential -> 6x5x5", 1, true), s)
  T.check(s:find("Scale(lua)", 1, true), s)
end)

T.test("steady state: module buffers are reused", function()
  sg.manual_seed(9)
  local m = require("models.lenet"){}
  local x = sg.randn(8, 1, 28, 28)
  local y1 = m:forward(x, "train")
  m:backward(x, y1:clone())
  local y2 = m:forward(x, "train")
  T.eq(y1, y2, "the same output tensor is returned")
  T.check(y1:shares_storage(y2), "and its storage is kept")
  local small = m:forward(sg.randn(4, 1, 28, 28), "train")
  T.eq(small:size(1), 4, "a smaller batch reuses the buffers")
  T.check(small:shares_storage(y1), "no reallocation when shrinking")
end)

T.done()
