-- sgdsa.nn.layers: the layers, containers and loss of sgdsa.nn (the module
-- protocol they follow is at the top of lua/sgdsa/nn.lua). The gradient
-- buffers and the BatchNorm scratch outputs they use are planned by
-- sgdsa.nn.memory; the models (flat parameters) are sgdsa.nn's.
local core = require "sgdsa.core"
local check_opts = require("sgdsa.options").check
local util = require "sgdsa.nn.util"

local K = core.nn            -- layer ops (core/ops.h, lua/l_nn.c)
local resize_as = core.Tensor.resize_as_
local empty = core.empty
local shape_str, numel, copy_shape, keeps = util.shape_str, util.numel, util.copy_shape, util.keeps

local nn = {}
nn.shape_str = shape_str
nn.keeps = keeps

local function pair(v, what)
  if type(v) == "table" then return v[1], v[2] end
  if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v)) then
    error(string.format("%s must be an integer or {h, w}, got %s", what, tostring(v)), 3)
  end
  return v, v
end

-- ---- initializers -------------------------------------------------------------------

nn.init = {}

-- PyTorch's kaiming_uniform_(a = sqrt(5)) for a weight with the given fan_in.
function nn.init.kaiming_uniform(fan_in)
  local bound = 1 / math.sqrt(fan_in)
  return function(t, gen) t:uniform_(-bound, bound, gen) end
end

-- uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's bias initialization.
function nn.init.bias_uniform(fan_in)
  local bound = fan_in > 0 and 1 / math.sqrt(fan_in) or 0
  return function(t, gen) t:uniform_(-bound, bound, gen) end
end

function nn.init.const(v)
  return function(t) t:fill(v) end
end

-- ---- classes --------------------------------------------------------------------------

local Module = {}
Module.__index = Module
Module.kind = "Module"
nn.Module = Module

-- nn.class(kind [, parent]) -> a class table; calling it builds an instance.
function nn.class(kind, parent)
  parent = parent or Module
  local c = {}
  c.__index = c
  c.kind = kind
  c.super = parent
  return setmetatable(c, {
    __index = parent,
    __call = function(cls, ...)
      local o = setmetatable({}, cls)
      o.param_specs, o.buffer_specs, o.children = {}, {}, {}
      o.need_dx = true
      o:__init(...)
      return o
    end,
  })
end

function Module:__init() end

function Module:param(name, shape, init)
  self.param_specs[#self.param_specs + 1] = {name = name, shape = shape, init = init}
end

function Module:buffer(name, shape, value)
  self.buffer_specs[#self.buffer_specs + 1] = {name = name, shape = shape, value = value or 0}
end

function Module:infer(shape) return shape end

function Module:forward()
  error(self.kind .. ": this module defines no forward(x, mode) (see the module protocol at the top of nn.lua)", 2)
end

function Module:backward()
  error(self.kind .. ": this module defines no backward(x, dy, target) (see the module protocol at the top of nn.lua)", 2)
end

function Module:set_need_dx(flag) self.need_dx = flag end

-- A tensor kept by the module under `key` (created once, resized by callers),
-- on the module's device (self.device, set by model:to; nil is the cpu).
function Module:buf(key, dtype)
  local t = self[key]
  if t == nil then
    t = empty(1, dtype)
    local dev = self.device
    if dev and dev ~= "cpu" then t = t:to(dev) end
    self[key] = t
  end
  return t
end

-- The output tensor of a forward. One per module for every mode: a trial
-- forward comes after the step's backward (the search loop's order), so it
-- may overwrite the train activations, and SGD-SA needs no second set of
-- activation buffers (measured: resnet34 at batch 128 would hold ~0.5 GiB more).
function Module:outbuf(mode)
  return self:buf("_out")
end

-- A cached view of x with `shape` (a new view only when x or its storage changed).
function Module:cached_view(key, x, shape)
  local c = self[key]
  if c and c.src == x and c.view:shares_storage(x) and c.n == x:numel() then
    return c.view
  end
  local v = x:view(shape)
  self[key] = {src = x, view = v, n = x:numel()}
  return v
end

-- Extra text for the printed tree (e.g. "3->16, k3 s1 p1").
function Module:describe() return "" end

-- ---- Linear --------------------------------------------------------------------------

-- Linear(in, out, {bias = true}): y = x W^T + b, W out x in (PyTorch's layout).
local Linear = nn.class("Linear")
nn.Linear = Linear

function Linear:__init(nin, nout, opts)
  opts = check_opts(opts, {bias = true}, "Linear")
  self.nin, self.nout = nin, nout
  self:param("weight", {nout, nin}, nn.init.kaiming_uniform(nin))
  if opts.bias ~= false then self:param("bias", {nout}, nn.init.bias_uniform(nin)) end
end

function Linear:infer(s)
  if #s ~= 1 or s[1] ~= self.nin then
    error(string.format("Linear(%d, %d): input shape %s, expected %d features (add a Flatten?)",
                        self.nin, self.nout, shape_str(s), self.nin), 0)
  end
  return {self.nout}
end

function Linear:describe() return string.format("%d->%d", self.nin, self.nout) end

function Linear:forward(x, mode)
  return K.linear_forward(x, self:outbuf(mode), self.weight, self.bias)
end

function Linear:backward(x, dy, target)
  K.linear_backward_params(x, dy, self.grad_weight, self.grad_bias)
  if self.need_dx then
    return K.linear_backward_data(dy, target or self:buf("_gin"), self.weight)
  end
end

-- ---- Conv2d --------------------------------------------------------------------------

local Conv2d = nn.class("Conv2d")
nn.Conv2d = Conv2d

-- Conv2d(in, out, kernel, {stride=1, padding=0, bias=true}); kernel/stride/padding
-- are a number or {h, w}.
function Conv2d:__init(cin, cout, kernel, opts)
  opts = check_opts(opts, {stride = true, padding = true, bias = true}, "Conv2d")
  local kh, kw = pair(kernel, "Conv2d kernel")
  self.cin, self.cout, self.kh, self.kw = cin, cout, kh, kw
  local sh, sw = pair(opts.stride or 1, "Conv2d stride")
  local ph, pw = pair(opts.padding or 0, "Conv2d padding")
  self.stride, self.padding = {sh, sw}, {ph, pw}
  local fan_in = cin * kh * kw
  self:param("weight", {cout, cin, kh, kw}, nn.init.kaiming_uniform(fan_in))
  if opts.bias ~= false then self:param("bias", {cout}, nn.init.bias_uniform(fan_in)) end
end

function Conv2d:infer(s)
  if #s ~= 3 or s[1] ~= self.cin then
    error(string.format("Conv2d(%d, %d): input shape %s, expected %d x H x W", self.cin,
                        self.cout, shape_str(s), self.cin), 0)
  end
  local oh = (s[2] + 2 * self.padding[1] - self.kh) // self.stride[1] + 1
  local ow = (s[3] + 2 * self.padding[2] - self.kw) // self.stride[2] + 1
  if oh < 1 or ow < 1 then
    error(string.format("Conv2d(%d, %d, %dx%d): input %s gives an empty output", self.cin,
                        self.cout, self.kh, self.kw, shape_str(s)), 0)
  end
  return {self.cout, oh, ow}
end

function Conv2d:describe()
  return string.format("%d->%d, k%dx%d s%d p%d%s", self.cin, self.cout, self.kh, self.kw,
                       self.stride[1], self.padding[1], self.bias and "" or ", no bias")
end

function Conv2d:forward(x, mode)
  return K.conv2d_forward(self.ws, x, self:outbuf(mode), self.weight, self.bias, self.stride,
                          self.padding)
end

function Conv2d:backward(x, dy, target)
  K.conv2d_backward_params(self.ws, x, dy, self.grad_weight, self.grad_bias, self.stride,
                           self.padding)
  if self.need_dx then
    return K.conv2d_backward_data(self.ws, x, dy, target or self:buf("_gin"), self.weight,
                                  self.stride, self.padding)
  end
end

-- ---- BatchNorm ------------------------------------------------------------------------

-- BatchNorm2d(c, {eps = 1e-5, momentum = 0.1, affine = true}) (N x C x H x W)
-- and BatchNorm1d(c, ...) (N x C): batch statistics in "train" and "trial"
-- (running statistics updated in "train" only), running statistics in
-- "eval" and "infer".
local BatchNorm = nn.class("BatchNorm")

function BatchNorm:__init(c, opts)
  opts = check_opts(opts, {eps = true, momentum = true, affine = true}, self.kind)
  self.c = c
  self.eps = opts.eps or 1e-5
  self.momentum = opts.momentum or 0.1
  if opts.affine ~= false then
    self:param("weight", {c}, nn.init.const(1))
    self:param("bias", {c}, nn.init.const(0))
  end
  self:buffer("running_mean", {c}, 0)
  self:buffer("running_var", {c}, 1)
  self:buffer("num_batches_tracked", {}, 0)
  self._sm, self._si = empty(c), empty(c)         -- saved for backward
  self._sm_t, self._si_t = empty(c), empty(c)     -- trial forwards
end

function BatchNorm:describe()
  return string.format("%d, eps %g, momentum %g", self.c, self.eps, self.momentum)
end

-- The output buffer: the module's own, or a scratch tensor shared with other
-- BatchNorm modules when nn.model planned this output as not kept (see
-- sgdsa.nn.memory).
function BatchNorm:outbuf(mode)
  return self._scratch or self:buf("_out")
end

-- Makes the last "train"/"eval" output again, bit-identical, from the saved
-- input and statistics, then the in-place ReLU that followed it, if any.
function BatchNorm:recompute()
  local y = K.batchnorm_apply(self._x, self._scratch, self.weight, self.bias, self._sm, self._si)
  if self._relu then K.relu_forward(y, y) end
end

function BatchNorm:forward(x, mode)
  if mode == "infer" then
    return K.batchnorm_forward_eval(x, self:outbuf(mode), self.weight, self.bias, self._sm_t,
                                    self._si_t, self.running_mean, self.running_var, self.eps)
  end
  if mode ~= "trial" then self._x = x end
  if mode == "train" then
    self.last_mode = "train"
    self.num_batches_tracked:add_(1)
    return K.batchnorm_forward_train(x, self:outbuf(mode), self.weight, self.bias, self._sm,
                                     self._si, self.running_mean, self.running_var, self.eps,
                                     self.momentum, true, self.sync)
  elseif mode == "trial" then
    return K.batchnorm_forward_train(x, self:outbuf(mode), self.weight, self.bias, self._sm_t,
                                     self._si_t, self.running_mean, self.running_var, self.eps,
                                     self.momentum, false, self.sync)
  else
    self.last_mode = "eval"
    return K.batchnorm_forward_eval(x, self:outbuf(mode), self.weight, self.bias, self._sm,
                                    self._si, self.running_mean, self.running_var, self.eps)
  end
end

-- Both passes in one call (on the GPU one cuDNN call that accumulates the
-- parameter gradients itself): dgamma, dbeta += ..., then dx when needed.
function BatchNorm:backward(x, dy, target)
  if self.sync then   -- sync_bn: the whole minibatch's sums, over the ranks
    K.batchnorm_backward_params(x, dy, self.grad_weight, self.grad_bias, self._sm, self._si)
    if self.need_dx then
      return K.batchnorm_backward_data(x, dy, target or self:buf("_gin"), self.weight, self._sm,
                                       self._si, self.last_mode == "train", self.sync)
    end
    return nil
  end
  return K.batchnorm_backward(x, dy, self.need_dx and (target or self:buf("_gin")), self.weight,
                              self.grad_weight, self.grad_bias, self._sm, self._si,
                              self.last_mode == "train")
end

nn.BatchNorm2d = nn.class("BatchNorm2d", BatchNorm)
function nn.BatchNorm2d:infer(s)
  if #s ~= 3 or s[1] ~= self.c then
    error(string.format("BatchNorm2d(%d): input shape %s, expected %d x H x W", self.c,
                        shape_str(s), self.c), 0)
  end
  return s
end

nn.BatchNorm1d = nn.class("BatchNorm1d", BatchNorm)
function nn.BatchNorm1d:infer(s)
  if (#s ~= 1 and #s ~= 2) or s[1] ~= self.c then
    error(string.format("BatchNorm1d(%d): input shape %s, expected %d or %d x L", self.c,
                        shape_str(s), self.c, self.c), 0)
  end
  return s
end

-- ---- ReLU ------------------------------------------------------------------------------

-- ReLU([inplace]): inplace overwrites its input (safe after Conv2d, BatchNorm,
-- Linear and Residual, whose backward does not read their output).
local ReLU = nn.class("ReLU")
nn.ReLU = ReLU

function ReLU:__init(inplace) self.inplace = inplace and true or false end
function ReLU:describe() return self.inplace and "inplace" or "" end

function ReLU:forward(x, mode)
  local y = K.relu_forward(x, self.inplace and x or self:outbuf(mode))
  if keeps(mode) then self._y = y end
  return y
end

function ReLU:backward(x, dy, target)
  if self.need_dx then
    return K.relu_backward_data(self._y, dy, target or self:buf("_gin"))
  end
end

-- ---- pooling -----------------------------------------------------------------------------

local function pool_infer(self, s)
  if #s ~= 3 then
    error(string.format("%s: input shape %s, expected C x H x W", self.kind, shape_str(s)), 0)
  end
  local oh = (s[2] + 2 * self.padding[1] - self.k[1]) // self.stride[1] + 1
  local ow = (s[3] + 2 * self.padding[2] - self.k[2]) // self.stride[2] + 1
  if oh < 1 or ow < 1 then
    error(string.format("%s(%d): input %s gives an empty output", self.kind, self.k[1],
                        shape_str(s)), 0)
  end
  return {s[1], oh, ow}
end

local function pool_init(self, kernel, opts)
  opts = check_opts(opts, {stride = true, padding = true}, self.kind)
  local kh, kw = pair(kernel, self.kind .. " kernel")
  self.k = {kh, kw}
  local sh, sw = pair(opts.stride or kernel, self.kind .. " stride")
  local ph, pw = pair(opts.padding or 0, self.kind .. " padding")
  self.stride, self.padding = {sh, sw}, {ph, pw}
end

local function pool_describe(self)
  return string.format("k%d s%d p%d", self.k[1], self.stride[1], self.padding[1])
end

nn.MaxPool2d = nn.class("MaxPool2d")
nn.MaxPool2d.__init, nn.MaxPool2d.infer, nn.MaxPool2d.describe = pool_init, pool_infer, pool_describe

function nn.MaxPool2d:forward(x, mode)
  local idx = keeps(mode) and self:buf("_idx", "int32") or nil
  return K.maxpool2d_forward(x, self:outbuf(mode), idx, self.k, self.stride, self.padding)
end

function nn.MaxPool2d:backward(x, dy, target)
  if self.need_dx then
    return K.maxpool2d_backward_data(x, dy, target or self:buf("_gin"), self._idx, self.k,
                                     self.stride, self.padding)
  end
end

nn.AvgPool2d = nn.class("AvgPool2d")
nn.AvgPool2d.__init, nn.AvgPool2d.infer, nn.AvgPool2d.describe = pool_init, pool_infer, pool_describe

function nn.AvgPool2d:forward(x, mode)
  return K.avgpool2d_forward(x, self:outbuf(mode), self.k, self.stride, self.padding)
end

function nn.AvgPool2d:backward(x, dy, target)
  if self.need_dx then
    return K.avgpool2d_backward_data(x, dy, target or self:buf("_gin"), self.k, self.stride,
                                     self.padding)
  end
end

-- GlobalAvgPool: N x C x H x W -> N x C.
nn.GlobalAvgPool = nn.class("GlobalAvgPool")

function nn.GlobalAvgPool:infer(s)
  if #s ~= 3 then
    error(string.format("GlobalAvgPool: input shape %s, expected C x H x W", shape_str(s)), 0)
  end
  return {s[1]}
end

function nn.GlobalAvgPool:forward(x, mode)
  return K.global_avgpool_forward(x, self:outbuf(mode))
end

function nn.GlobalAvgPool:backward(x, dy, target)
  if self.need_dx then
    return K.global_avgpool_backward_data(x, dy, target or self:buf("_gin"))
  end
end

-- ---- shape modules -----------------------------------------------------------------------

-- Flatten: N x ... -> N x prod(...) (a view: no copy).
nn.Flatten = nn.class("Flatten")

function nn.Flatten:infer(s) return {numel(s)} end

function nn.Flatten:forward(x, mode)
  local n = x:size(1)
  return self:cached_view(keeps(mode) and "_v" or "_vt", x, {n, x:numel() // n})
end

function nn.Flatten:backward(x, dy, target)
  if self.need_dx then return self:cached_view("_vd", dy, x:size()) end
end

-- Identity: returns its input.
nn.Identity = nn.class("Identity")
function nn.Identity:forward(x) return x end
function nn.Identity:backward(x, dy) if self.need_dx then return dy end end

-- Pad(p): zero padding of the two spatial dimensions (Fashion-MNIST 28 -> 32: Pad(2)).
nn.Pad = nn.class("Pad")

function nn.Pad:__init(p) self.p = p end
function nn.Pad:describe() return tostring(self.p) end

function nn.Pad:infer(s)
  if #s ~= 3 then
    error(string.format("Pad: input shape %s, expected C x H x W", shape_str(s)), 0)
  end
  return {s[1], s[2] + 2 * self.p, s[3] + 2 * self.p}
end

function nn.Pad:forward(x, mode)
  return K.pad2d(x, self:outbuf(mode), self.p)
end

function nn.Pad:backward(x, dy, target)
  if self.need_dx then
    return K.crop2d(dy, target or self:buf("_gin"), self.p)
  end
end

-- ---- Dropout -------------------------------------------------------------------------------

-- Dropout(p): the mask is drawn from the "dropout" stream in "train" mode and
-- reused by "trial" forwards; "eval" and "infer" are the identity. On a rank
-- of a data-parallel run (model:data_parallel) the mask is that rank's slice
-- of the mask a single process draws for the whole batch.
nn.Dropout = nn.class("Dropout")

function nn.Dropout:__init(p)
  p = p or 0.5
  if not (p >= 0 and p < 1) then error(string.format("Dropout: p must be in [0, 1), got %s", tostring(p)), 2) end
  self.p = p
end

function nn.Dropout:describe() return string.format("p %g", self.p) end

function nn.Dropout:forward(x, mode)
  if mode == "infer" then return x end
  if mode == "eval" then
    self.last_mode = "eval"
    return x
  end
  if mode == "train" then
    self.last_mode = "train"
    local gen, sh = core.stream("dropout"), self.shard
    if sh and self.p > 0 then
      -- one rank of a data-parallel run: its slice of the whole batch's mask
      -- (one word per value), the stream left where the whole mask leaves it
      local per = x:numel() // x:size(1)
      gen:skip(sh.offset * per)
      K.dropout_mask(gen, self:buf("_mask"), x, self.p)
      gen:skip((sh.total - sh.offset - x:size(1)) * per)
    else
      K.dropout_mask(gen, self:buf("_mask"), x, self.p)
    end
  elseif self._mask == nil then
    error("Dropout: a \"trial\" forward needs a \"train\" forward first (its mask is reused)", 2)
  end
  return K.dropout_forward(x, self:outbuf(mode), self._mask)
end

function nn.Dropout:backward(x, dy, target)
  if not self.need_dx then return nil end
  if self.last_mode == "eval" then return dy end
  return K.dropout_backward_data(dy, target or self:buf("_gin"), self._mask)
end

-- ---- containers ------------------------------------------------------------------------------

-- Sequential{ m1, m2, ... } (children named "0", "1", ... as nn.Sequential)
-- or Sequential{ {"conv1", m1}, {"bn1", m2}, ... } (named; "" hoists the
-- child's names into this module's namespace).
local Sequential = nn.class("Sequential")
nn.Sequential = Sequential

function Sequential:__init(list)
  list = list or {}
  for i, item in ipairs(list) do
    if getmetatable(item) == nil and type(item) == "table" and type(item[1]) == "string" then
      self:add(item[2], item[1])
    else
      self:add(item, tostring(i - 1))
    end
  end
  self._in = {}
end

function Sequential:add(m, name)
  if type(m) ~= "table" or type(m.forward) ~= "function" then
    error(string.format("Sequential: child %s is not a module", tostring(name)), 2)
  end
  self.children[#self.children + 1] = {name = name or tostring(#self.children), module = m}
  return self
end

function Sequential:infer(s)
  for _, c in ipairs(self.children) do s = c.module:infer(s) end
  return s
end

local function has_params(m)
  if m.param_specs[1] then return true end
  for _, c in ipairs(m.children) do
    if has_params(c.module) then return true end
  end
  return false
end

-- A child's input gradient is needed when the container's is, or when a
-- child before it has parameters (their gradients come from it): a leading
-- Flatten does not make the first Linear compute one.
function Sequential:set_need_dx(flag)
  self.need_dx = flag
  local need = flag
  for _, c in ipairs(self.children) do
    c.module:set_need_dx(need)
    need = need or has_params(c.module)
  end
end

function Sequential:forward(x, mode)
  local ch, keep = self.children, keeps(mode)
  for i = 1, #ch do
    if keep then self._in[i] = x end
    x = ch[i].module:forward(x, mode)
  end
  return x
end

-- Two schemes for the gradient tensors between children (sgdsa.nn.memory
-- chooses): with the model's gradient pool (self._gp, the CPU default)
-- Sequential:gbackward takes and gives back pool tensors; otherwise input
-- gradients ping-pong between two tensors of this container (shared by
-- depth): child i writes into the one its dy does not live in.
function Sequential:backward(x, dy, target)
  if self._gp then return (self:gbackward(x, dy, target, nil)) end
  local ch = self.children
  local g1, g2 = self:buf("_g1"), self:buf("_g2")
  local rc = self._recompute
  for i = #ch, 1, -1 do
    if rc and rc[i] then rc[i]:recompute() end
    local t
    if i == 1 then
      t = target
    else
      t = dy:shares_storage(g1) and g2 or g1
    end
    dy = ch[i].module:backward(self._in[i], dy, t)
    if dy == nil then return nil end
  end
  return dy
end

-- Residual(body [, shortcut]): y = body(x) + shortcut(x) (identity when no
-- shortcut). The body's names are hoisted (kuangliu's BasicBlock: conv1,
-- bn1, conv2, bn2) and the shortcut is named "shortcut".
local Residual = nn.class("Residual")
nn.Residual = Residual

function Residual:__init(body, shortcut)
  self.body, self.shortcut = body, shortcut
  self.children[1] = {name = "", module = body}
  if shortcut then self.children[2] = {name = "shortcut", module = shortcut} end
end

function Residual:infer(s)
  local a = self.body:infer(copy_shape(s))
  local b = self.shortcut and self.shortcut:infer(copy_shape(s)) or s
  if shape_str(a) ~= shape_str(b) then
    error(string.format("Residual: body gives %s but the shortcut gives %s (add a projection shortcut)",
                        shape_str(a), shape_str(b)), 0)
  end
  return a
end

function Residual:set_need_dx(flag)
  self.need_dx = flag
  self.body:set_need_dx(flag)
  if self.shortcut then self.shortcut:set_need_dx(flag) end
end

function Residual:forward(x, mode)
  local fb = self.body:forward(x, mode)
  local fs = self.shortcut and self.shortcut:forward(x, mode) or x
  local y = resize_as(self:outbuf(mode), fb)
  return y:add_scaled_(fb, 1, fs)
end

function Residual:backward(x, dy, target)
  if self._gp then return (self:gbackward(x, dy, target, nil)) end
  local db = self.body:backward(x, dy, target or self:buf("_gin"))
  local ds
  if self.shortcut then
    ds = self.shortcut:backward(x, dy, self:buf("_gs"))
  else
    ds = dy
  end
  if not self.need_dx then return nil end
  if db:shares_storage(dy) then   -- a body that passes dy through: do not modify dy
    db = resize_as(target or self:buf("_gin"), dy):copy(dy)
  end
  return db:add_(ds)
end

-- ---- the loss ----------------------------------------------------------------------------------

-- CrossEntropy(): fused log-softmax + negative log-likelihood, mean over the batch.
--   loss, correct = crit:forward(logits, labels [, mode [, slot]])  labels: int32 N
--   dlogits = crit:backward()   (the gradient of the mean loss; computed by
--   the forward only when mode is "train" or nil)
-- slot: a core.cuda.readback(); with logits on the GPU the forward then
-- returns the slot instead of the numbers, nothing waited for
-- (slot:read() -> loss, correct); ignored on the CPU.
local CrossEntropy = nn.class("CrossEntropy")
nn.CrossEntropy = CrossEntropy

function CrossEntropy:__init() self.dlogits = empty(1) end

function CrossEntropy:forward(logits, labels, mode, slot)
  local grad = mode == nil or mode == "train"
  if grad then
    local dev = logits:device()
    if self.dlogits:device() ~= dev then self.dlogits = empty(1):to(dev) end
  end
  local loss, correct = K.cross_entropy(logits, labels, grad and self.dlogits or nil, slot)
  self.has_grad = grad
  return loss, correct
end

function CrossEntropy:backward()
  if not self.has_grad then
    error("CrossEntropy: backward needs a forward in \"train\" mode first", 2)
  end
  return self.dlogits
end

return nn
