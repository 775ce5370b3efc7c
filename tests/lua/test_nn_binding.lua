-- test_nn_binding.lua - the Lua binding of the layer kernels (sgdsa.core.nn):
-- results against hand-computed values and tensor ops, output resizing and
-- workspace reuse, accumulation of parameter gradients, the BatchNorm trial
-- mode, and error messages that name the function, the shapes and the device.
-- (The kernels' gradients are checked in C: tests/c/test_nn_grad.c.)
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"
local nn = sg.core.nn

local function gen(seed) return sg.Generator(seed, "test_nn_binding") end

T.test("linear forward/backward against matmul", function()
  local g = gen(1)
  local x, w, b = sg.randn(4, 3, g), sg.randn(5, 3, g), sg.randn(5, g)
  local y = nn.linear_forward(x, sg.empty(0), w, b)
  T.eq(table.concat(y:size(), "x"), "4x5")
  local ref = sg.matmul(x, w:t())
  for i = 1, 4 do for j = 1, 5 do T.near(y[i][j], ref[i][j] + b[j], 1e-5, "y") end end
  local dy = sg.randn(4, 5, g)
  local dx = nn.linear_backward_data(dy, sg.empty(0), w)
  T.tensor_near(dx, sg.matmul(dy, w), 1e-5, "dx = dy w")
  local dw, db = sg.ones(5, 3), sg.zeros(5)
  nn.linear_backward_params(x, dy, dw, db)
  T.tensor_near(dw, sg.matmul(dy:t(), x) + sg.ones(5, 3), 1e-5, "dw += dy^T x")
  for j = 1, 5 do
    local s = 0
    for i = 1, 4 do s = s + dy[i][j] end
    T.near(db[j], s, 1e-5, "db")
  end
end)

T.test("conv2d: hand-computed 3x3 with padding, accumulation, workspace reuse", function()
  local x, w = sg.ones(1, 1, 3, 3), sg.ones(1, 1, 3, 3)
  local ws, y = sg.empty(0), sg.empty(0)
  nn.conv2d_forward(ws, x, y, w, sg.full({1}, 0.5), 1, 1)
  local want = { { 4, 6, 4 }, { 6, 9, 6 }, { 4, 6, 4 } }
  for i = 1, 3 do for j = 1, 3 do T.eq(y[1][1][i][j], want[i][j] + 0.5) end end
  -- stride 2, no padding: one output
  nn.conv2d_forward(ws, x, y, w, nil, 2, 0)
  T.eq(table.concat(y:size(), "x"), "1x1x1x1"); T.eq(y[1][1][1][1], 9)
  -- gradients accumulate
  local dy = sg.ones(1, 1, 3, 3)
  local dw, db = sg.zeros(1, 1, 3, 3), sg.zeros(1)
  nn.conv2d_backward_params(ws, x, dy, dw, db, 1, 1)
  nn.conv2d_backward_params(ws, x, dy, dw, db, 1, 1)
  T.eq(dw[1][1][2][2], 18); T.eq(dw[1][1][1][1], 8); T.eq(db[1], 18)
  local dx = nn.conv2d_backward_data(ws, x, dy, sg.empty(0), w, 1, 1)
  for i = 1, 3 do for j = 1, 3 do T.eq(dx[1][1][i][j], want[i][j]) end end
  -- a workspace that is big enough is not reallocated
  local g = gen(2)
  local xb, wb = sg.randn(4, 3, 8, 8, g), sg.randn(6, 3, 3, 3, g)
  nn.conv2d_forward(ws, xb, y, wb, nil, 1, 1)
  local keep = ws:view(-1)
  nn.conv2d_forward(ws, xb, y, wb, nil, { 1, 1 }, { 1, 1 })
  T.eq(ws:shares_storage(keep), true, "workspace kept")
  -- nil workspace works too and gives the same result
  local y2 = nn.conv2d_forward(nil, xb, sg.empty(0), wb, nil, 1, 1)
  T.tensor_near(y2, y, 0, "nil workspace")
  local oh, ow = nn.conv2d_output_size(32, 31, 3, 3, 2, 1)
  T.eq(oh, 16); T.eq(ow, 16)
end)

T.test("conv2d 1x1 equals a channel matmul", function()
  local g = gen(3)
  local x, w = sg.randn(2, 4, 3, 5, g), sg.randn(6, 4, 1, 1, g)
  local y = nn.conv2d_forward(nil, x, sg.empty(0), w, nil)
  local wm = w:view(6, 4)
  for n = 1, 2 do
    local ref = sg.matmul(wm, x:select(1, n):contiguous():view(4, 15))
    T.tensor_near(y:select(1, n):contiguous():view(6, 15), ref, 1e-5, "image " .. n)
  end
end)

T.test("batchnorm: train, trial (no running update), eval, backward", function()
  local g = gen(4)
  local x = sg.randn(8, 3, 2, 2, g)
  local gamma, beta = sg.full({3}, 2), sg.full({3}, 0.5)
  local rm, rv = sg.zeros(3), sg.ones(3)
  local sm, si, y = sg.empty(0), sg.empty(0), sg.empty(0)
  nn.batchnorm_forward_train(x, y, gamma, beta, sm, si, rm, rv, 1e-5, 0.1, false)
  T.eq(rm:sum(), 0, "trial leaves running_mean"); T.eq(rv:sum(), 3, "trial leaves running_var")
  local ytrial = y:clone()
  nn.batchnorm_forward_train(x, y, gamma, beta, sm, si, rm, rv)  -- defaults: update
  T.tensor_near(y, ytrial, 0, "trial output equals training output")
  -- channel 1: mean, unbiased variance by hand
  local vals = {}
  for n = 1, 8 do for i = 1, 2 do for j = 1, 2 do vals[#vals + 1] = x[n][1][i][j] end end end
  local s = 0; for _, v in ipairs(vals) do s = s + v end
  local mean = s / #vals
  local ss = 0; for _, v in ipairs(vals) do ss = ss + (v - mean) ^ 2 end
  T.near(rm[1], 0.1 * mean, 1e-5, "running_mean")
  T.near(rv[1], 0.9 + 0.1 * ss / (#vals - 1), 1e-5, "running_var (unbiased)")
  T.near(y[1][1][1][1], (x[1][1][1][1] - mean) / math.sqrt(ss / #vals + 1e-5) * 2 + 0.5, 1e-4, "y")
  -- per-channel output mean is beta in training mode
  local ym = 0
  for n = 1, 8 do for i = 1, 2 do for j = 1, 2 do ym = ym + y[n][2][i][j] end end end
  T.near(ym / 32, 0.5, 1e-5, "output mean = beta")
  -- eval uses running stats
  nn.batchnorm_forward_eval(x, y, gamma, beta, sm, si, rm, rv)
  T.near(y[2][3][1][2], (x[2][3][1][2] - rm[3]) / math.sqrt(rv[3] + 1e-5) * 2 + 0.5, 1e-5, "eval y")
  -- backward in eval mode is a per-channel scale
  local dy = sg.randn(8, 3, 2, 2, g)
  local dx = nn.batchnorm_backward_data(x, dy, sg.empty(0), gamma, sm, si, false)
  T.near(dx[3][2][2][1], dy[3][2][2][1] * 2 / math.sqrt(rv[2] + 1e-5), 1e-5, "eval dx")
  -- BatchNorm1d (N x C), no affine
  local x1 = sg.randn(5, 4, g)
  local y1 = nn.batchnorm_forward_train(x1, sg.empty(0), nil, nil, sm, si, nil, nil, 1e-5, 0.1, false)
  T.eq(table.concat(y1:size(), "x"), "5x4")
  local dg, dbt = sg.zeros(4), sg.zeros(4)
  nn.batchnorm_backward_params(x1, sg.ones(5, 4), dg, dbt, sm, si)
  T.near(dbt[2], 5, 1e-6, "dbeta = sum dy"); T.near(dg[2], 0, 1e-5, "dgamma = sum xhat = 0")
  -- batchnorm_backward: both passes, exactly as the two calls (params added
  -- into what is there, dx overwritten); dx = false computes no dx
  nn.batchnorm_forward_train(x, y, gamma, beta, sm, si, nil, nil, 1e-5, 0.1, false)
  local g0, b0 = sg.randn(3, g), sg.randn(3, g)
  local dg1, db1, dg2, db2 = g0:clone(), b0:clone(), g0:clone(), b0:clone()
  nn.batchnorm_backward_params(x, dy, dg1, db1, sm, si)
  local dx1 = nn.batchnorm_backward_data(x, dy, sg.empty(0), gamma, sm, si, true)
  local dx2 = nn.batchnorm_backward(x, dy, sg.empty(0), gamma, dg2, db2, sm, si, true)
  T.eq((dx2 - dx1):abs():max(), 0, "batchnorm_backward dx")
  T.eq((dg2 - dg1):abs():max(), 0, "batchnorm_backward dgamma (+=)")
  T.eq((db2 - db1):abs():max(), 0, "batchnorm_backward dbeta (+=)")
  T.eq(nn.batchnorm_backward(x, dy, false, gamma, dg2, db2, sm, si, true), nil, "no dx")
  T.eq((dg2 - g0 - 2 * (dg1 - g0)):abs():max() < 1e-5, true, "dgamma added twice")
end)

T.test("pooling, relu, dropout", function()
  local x = sg.tensor{ { { { 1, 5, 2, 0 }, { 3, 4, 8, 1 }, { 0, 1, 2, 3 }, { 9, 1, 1, 1 } } } }
  local idx, y = sg.empty(0):int(), sg.empty(0)
  nn.maxpool2d_forward(x, y, idx, 2)
  T.eq(y[1][1][1][1], 5); T.eq(y[1][1][1][2], 8); T.eq(y[1][1][2][1], 9); T.eq(y[1][1][2][2], 3)
  T.eq(idx:dtype(), "int32"); T.eq(idx[1][1][1][2], 6)  -- 0-based flat index of the 8
  local dx = nn.maxpool2d_backward_data(x, sg.ones(1, 1, 2, 2), sg.empty(0), idx, 2)
  T.eq(dx:sum(), 4); T.eq(dx[1][1][2][3], 1); T.eq(dx[1][1][1][1], 0)
  nn.maxpool2d_forward(x, y, nil, 3, 1, 1)  -- padding, no indices (trial forward)
  T.eq(table.concat(y:size(), "x"), "1x1x4x4"); T.eq(y[1][1][1][1], 5)
  nn.avgpool2d_forward(x, y, 2, 2)
  T.eq(y[1][1][1][1], 13 / 4)
  nn.avgpool2d_forward(x, y, 3, 2, 1)  -- count_include_pad: corner window sums 1+5+3+4 over 9
  T.near(y[1][1][1][1], 13 / 9, 1e-6, "padded avg")
  local gp = nn.global_avgpool_forward(x, sg.empty(0))
  T.eq(table.concat(gp:size(), "x"), "1x1"); T.eq(gp[1][1], 42 / 16)
  local gdx = nn.global_avgpool_backward_data(x, sg.full({1, 1}, 16), sg.empty(0))
  T.eq(gdx[1][1][4][4], 1)
  local r = sg.tensor{ -1, 2, -3, 4 }
  nn.relu_forward(r, r)  -- in place
  T.eq(r[1], 0); T.eq(r[2], 2)
  local rdx = nn.relu_backward_data(r, sg.tensor{ 1, 1, 1, 1 }, sg.empty(0))
  T.eq(rdx:sum(), 2)
  local xm = sg.ones(1000)
  local m1 = nn.dropout_mask(gen(5), sg.empty(0), xm, 0.5)
  local m2 = nn.dropout_mask(gen(5), sg.empty(0), xm, 0.5)
  T.tensor_near(m1, m2, 0, "same generator state, same mask")
  local kept = m1:sum() / 2
  T.check(kept > 400 and kept < 600, "about half kept: " .. kept)
  local yd = nn.dropout_forward(xm, sg.empty(0), m1)
  T.tensor_near(yd, m1, 0, "dropout of ones is the mask")
  T.tensor_near(nn.dropout_backward_data(xm, sg.empty(0), m1), m1, 0, "dropout backward")
end)

T.test("cross_entropy and the SA vector updates", function()
  local z = sg.tensor{ { 1, 2, 3 }, { 0.5, 0.5, -1 } }
  local labels = sg.tensor{ 2, 1 }:int()
  local dz = sg.empty(0)
  local loss, correct = nn.cross_entropy(z, labels, dz)
  local l0 = math.log(math.exp(1) + math.exp(2) + math.exp(3)) - 3
  local l1 = math.log(2 * math.exp(0.5) + math.exp(-1)) - 0.5
  T.near(loss, (l0 + l1) / 2, 1e-7, "loss"); T.eq(correct, 1)
  T.near(dz:sum(), 0, 1e-6, "softmax - onehot rows sum to 0")
  local w, gr = sg.tensor{ 1, 2, 3 }, sg.tensor{ 10, 20, 30 }
  local trial = nn.vec_axpy(w, gr, sg.zeros(3), -0.1)
  T.near(trial[3], 0, 1e-6, "trial = w - eta g")
  nn.vec_axpbypz(w, gr, w, trial, 0.5, -1)
  T.near(trial[2], 10, 1e-6, "w + a x + b y")
  nn.vec_scale_add(w, gr, w, 0.5, 1)  -- in place
  T.near(w[1], 10.5, 1e-6, "s a + alpha x")
end)

T.test("errors name the function, the shapes and the device", function()
  local x, w = sg.zeros(8, 3, 32, 32), sg.zeros(16, 4, 3, 3)
  T.raises(function() nn.conv2d_forward(nil, x, sg.empty(0), w, nil, 1, 1) end,
    "conv2d_forward: input 8x3x32x32 has 3 channels, weight 16x4x3x3 expects 4 (cpu)")
  T.raises(function() nn.conv2d_forward(nil, x, sg.empty(0), sg.zeros(16, 3, 3, 3), sg.zeros(15)) end,
    "conv2d_forward: bias is 15, expected 16 (cpu)")
  T.raises(function() nn.conv2d_forward(nil, x, sg.empty(0), sg.zeros(2, 3, 40, 40), nil) end,
    "kernel 40x40 larger than padded input 32x32")
  T.raises(function() nn.linear_forward(sg.zeros(2, 5), sg.empty(0), sg.zeros(3, 4), nil) end,
    "linear_forward: input 2x5 has 5 features, weight 3x4 expects 4 (cpu)")
  T.raises(function() nn.cross_entropy(sg.zeros(2, 3), sg.zeros(2)) end,
    "cross_entropy: labels 2 is float32, expected int32 (cpu)")
  T.raises(function() nn.cross_entropy(sg.zeros(2, 3), sg.tensor{ 1, 3 }:int()) end,
    "cross_entropy: label 3 at row 2 out of range [0, 3) for logits 2x3 (cpu)")
  T.raises(function() nn.relu_forward(sg.zeros(4, 4):t(), sg.empty(0)) end,
    "relu_forward: input 4x4 is not contiguous (cpu)")
  T.raises(function() nn.batchnorm_forward_train(sg.zeros(4, 3), sg.empty(0), sg.ones(2), nil,
      sg.empty(0), sg.empty(0), sg.zeros(3), sg.ones(3)) end,
    "batchnorm_forward_train: weight is 2, expected 3 (cpu)")
  T.raises(function() nn.maxpool2d_forward(sg.zeros(1, 1, 4, 4), sg.empty(0), nil, 2, 2, 2) end,
    "padding 2x2 must be at most half the kernel 2x2")
  T.raises(function() nn.vec_axpy(sg.zeros(3), sg.zeros(4), sg.zeros(3), 1) end,
    "vec_axpy: x 4 has 4 elements, expected 3 (cpu)")
  T.raises(function() nn.conv2d_backward_params(nil, x, sg.zeros(8, 16, 32, 32), sg.zeros(16, 3, 3, 3), nil) end,
    "conv2d_backward_params: dy is 8x16x32x32, expected 8x16x30x30 (cpu)")
  T.raises(function() nn.conv2d_backward_params(nil, x, sg.zeros(8, 16, 30, 30), sg.zeros(16, 3, 3, 3), sg.zeros(7)) end,
    "conv2d_backward_params: db is 7, expected 16 (cpu)")
  T.raises(function() nn.batchnorm_forward_train(sg.zeros(4, 3), sg.empty(0), nil, nil,
      sg.empty(0), sg.empty(0), sg.zeros(3), sg.ones(3), -1) end,
    "batchnorm_forward_train: eps must be positive, got -1")
  T.raises(function() nn.relu_forward(sg.zeros(4, 4), sg.zeros(4, 4):t()) end,
    "relu_forward: output y 4x4 is not contiguous (cpu)")
  T.raises(function() nn.dropout_forward(sg.zeros(3), sg.empty(0), sg.zeros(4)) end,
    "dropout_forward: mask 4 does not match input 3 (cpu)")
end)

T.done()
