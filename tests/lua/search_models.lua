-- search_models.lua - tiny models honoring the model contract of
-- docs/ARCHITECTURE.md, for the search-loop tests (independent of sgdsa.nn):
--   linreg(d)    least squares: pred = X w (a convex problem), with mse()
--   softmax(d,c) multinomial logistic regression (linear + cross-entropy,
--                also convex), with xent()
-- and synthetic data sets with a known solution.
--   local SM = dofile("tests/lua/search_models.lua")
local sg = sgdsa or require "sgdsa"
local nn = sg.core.nn

local SM = {}

-- A flat params/grads pair and zero_grad.
local function flat(n)
  local m = {params = sg.zeros(n), grads = sg.zeros(n), buffers = sg.zeros(0)}
  function m.zero_grad(self) self.grads:zero() end
  function m.num_params(self) return self.params:numel() end
  return m
end

--- Least squares model: params = w (d), forward(X) = X w (n).
function SM.linreg(d)
  local m = flat(d)
  m.w = m.params:view(d, 1)
  m.gw = m.grads:view(d, 1)
  function m.forward(self, x, mode)
    self.x = x
    return sg.matmul(x, self.w):view(-1)
  end
  function m.backward(self, x, dy)
    -- grads += X^T dy
    self.gw:add_(sg.matmul(x:t():contiguous(), dy:view(-1, 1)))
  end
  function m.named_tensors(self) return {{name = "w", tensor = self.params, kind = "param"}} end
  return m
end

--- Mean squared error / 2, with backward; ncorrect is 0 (no classes).
function SM.mse()
  local c = {}
  function c.forward(self, pred, y)
    self.diff = pred - y
    local n = y:numel()
    return self.diff:dot(self.diff) / (2 * n), 0
  end
  function c.backward(self)
    return self.diff / self.diff:numel()
  end
  return c
end

--- Softmax regression: params = W (c x d) then b (c).
function SM.softmax(d, c)
  local m = flat(c * d + c)
  m.W = m.params:narrow(1, 1, c * d):view(c, d)
  m.b = m.params:narrow(1, c * d + 1, c)
  m.gW = m.grads:narrow(1, 1, c * d):view(c, d)
  m.gb = m.grads:narrow(1, c * d + 1, c)
  m.out = sg.zeros(1, c)
  function m.forward(self, x, mode)
    -- the views re-read the (possibly swapped) storage of params each call
    return nn.linear_forward(x, self.out, self.W, self.b)
  end
  function m.backward(self, x, dy)
    nn.linear_backward_params(x, dy, self.gW, self.gb)
  end
  function m.named_tensors(self)
    return {{name = "weight", tensor = self.W, kind = "param"}, {name = "bias", tensor = self.b, kind = "param"}}
  end
  return m
end

--- Cross-entropy criterion over int32 labels (0-based, as the kernels use).
function SM.xent()
  local c = {dl = sg.zeros(1, 1)}
  function c.forward(self, logits, y)
    if self.dl:numel() ~= logits:numel() then self.dl = sg.zeros(logits:size(1), logits:size(2)) end
    return nn.cross_entropy(logits, y, self.dl)
  end
  function c.backward(self) return self.dl end
  return c
end

--- A regression data set: X (n x d) normal, y = X w* + noise; returns X, y, w*.
function SM.regression(n, d, noise, gen)
  local X = sg.zeros(n, d):normal_(0, 1, gen)
  local wstar = sg.zeros(d, 1):normal_(0, 1, gen)
  local y = sg.matmul(X, wstar):view(-1)
  if noise > 0 then y:add_(sg.zeros(n):normal_(0, noise, gen)) end
  return X, y, wstar:view(-1)
end

--- A classification data set: c Gaussian blobs in d dims; labels int32 0-based.
function SM.blobs(n, d, c, gen)
  local centers = sg.zeros(c, d):normal_(0, 3, gen)
  local X = sg.zeros(n, d):normal_(0, 1, gen)
  local y = sg.zeros(n, "int32")
  for i = 1, n do
    local k = gen:random(c)
    y[i] = k - 1
    X[i]:add_(centers[k])
  end
  return X, y
end

--- Minibatches (views, no copies) of (X, y) in order: an iterator.
function SM.batches(X, y, batch)
  local n = X:size(1)
  local i = 0
  return function()
    if i >= n then return nil end
    local b = math.min(batch, n - i)
    local xb, yb = X:narrow(1, i + 1, b), y:narrow(1, i + 1, b)
    i = i + b
    return xb, yb
  end
end

return SM
