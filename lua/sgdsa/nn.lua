-- sgdsa.nn - the module library: layers, containers, the loss, and models
-- with flat parameters (one params, one grads, one buffers tensor).
--
--   local nn = require "sgdsa.nn"
--   local net = nn.Sequential{ nn.Flatten(), nn.Linear(784, 10) }
--   local model = nn.model(net, {input = {1, 28, 28}})
--   local y = model:forward(x, "train")          -- x: N x 1 x 28 x 28
--   local crit = nn.CrossEntropy()
--   local loss, correct = crit:forward(y, labels) -- labels: int32 N
--   model:zero_grad(); model:backward(x, crit:backward())
--
-- THE MODULE PROTOCOL (what a module written in Lua implements; the built-in
-- ones follow it too; see tests/lua/test_nn.lua for a Lua-written module):
--
--   local Scale = nn.class("Scale")       -- a class; Scale(...) calls __init
--   function Scale:__init(c)
--     self:param("weight", {c}, nn.init.const(1))   -- name, shape, init
--     self:buffer("seen", {1}, 0)                   -- name, shape, initial value
--   end
--   function Scale:infer(shape) return shape end    -- per-sample output shape
--   function Scale:forward(x, mode) ... return y end
--   function Scale:backward(x, dy, target) ... return dx end
--
--   * Declarations: self:param(name, shape, init) and self:buffer(name,
--     shape, value) in the constructor. nn.model() allocates the flat
--     tensors and sets self[name] to a view into model.params (or
--     model.buffers) and self["grad_" .. name] to the view into model.grads.
--     init(t, gen, module) fills t from gen (the "init" stream).
--   * infer(shape) -> shape: called once at build with the per-sample input
--     shape (no batch dimension); checks it and returns the output shape.
--     The default keeps the shape.
--   * forward(x, mode) -> y, mode "train" | "trial" | "eval" | "infer" (see
--     below). A module keeps its output tensors and reuses them (resize_
--     only reallocates when growing). In "train" and "eval" it keeps what
--     its backward needs; in "trial" and "infer" it keeps nothing for
--     backward and may overwrite what the last "train" forward kept (the
--     search loop runs backward before any trial forward), must not change
--     buffers (running statistics), and in "trial" must reuse the random
--     draws (dropout masks) of the last "train" forward.
--   * backward(x, dy, target) -> dx: x is the input of the last "train" (or
--     "eval") forward, dy the gradient of the output. ADDS the parameter
--     gradients into self.grad_*; returns the input gradient, written into
--     `target` when given (a tensor to resize and overwrite) or into a
--     tensor of its own. It must not modify dy. When self.need_dx is false
--     (the model's first layers, up to the first with parameters) it may skip
--     dx and return nil.
--   * Containers list their children in self.children as {name=, module=}
--     (name "" hoists the child's names into the parent's namespace) and
--     override set_need_dx(flag).
--
-- MODES: "train": batch statistics, dropout on, running statistics updated,
-- activations kept for backward. "trial": the SA trial forward: batch
-- statistics without touching running statistics, dropout reusing the masks
-- of the last "train" forward, nothing kept for backward (it reuses the
-- activation buffers: call backward before trial forwards). "eval": running
-- statistics, no dropout. "infer": the inference-mode scoring forward of the
-- search loop (score = "inference"): as "eval" (running statistics, no
-- dropout), with nothing kept for backward, like "trial".
--
-- Names and layouts are PyTorch's (conv OIHW, linear out x in; state-dict
-- names such as features.0.weight or layer1.0.bn1.running_mean), so a saved
-- model loads into the usual PyTorch definitions. Initialization is
-- PyTorch's default: kaiming_uniform(a=sqrt 5) weights (bound 1/sqrt(fan_in))
-- and uniform(+-1/sqrt(fan_in)) biases for conv and linear, BN weight 1 and
-- bias 0, drawn from sgdsa.stream("init") in state-dict order.
local core = require "sgdsa.core"
local check_opts = require("sgdsa.options").check

local K = core.nn            -- layer ops (core/ops.h, lua/l_nn.c)
local resize_as = core.Tensor.resize_as_
local empty = core.empty

local nn = {}

-- The flat tensors' layout: every parameter (and its gradient) and every
-- buffer starts at an offset that is a multiple of ALIGN floats (256 bytes,
-- the alignment of a device allocation), on every device alike, so that
-- the views handed to cuDNN and cuBLAS are as aligned as their own buffers
-- (their vectorized kernels need 16 bytes; a dense packing gave views
-- aligned to 4) and a checkpoint resumes on either device. The gaps are
-- zero (see nn.model); model:num_params() counts the parameters only,
-- model.params:numel() the gaps too.
local ALIGN = 64
nn.ALIGN = ALIGN

-- ---- helpers ------------------------------------------------------------------------

local function shape_str(s)
  if #s == 0 then return "scalar" end
  return table.concat(s, "x")
end
nn.shape_str = shape_str

local function numel(s)
  local n = 1
  for i = 1, #s do n = n * s[i] end
  return n
end

local function copy_shape(s)
  local r = {}
  for i = 1, #s do r[i] = s[i] end
  return r
end

local function pair(v, what)
  if type(v) == "table" then return v[1], v[2] end
  if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v)) then
    error(string.format("%s must be an integer or {h, w}, got %s", what, tostring(v)), 3)
  end
  return v, v
end

local modes = {train = true, trial = true, eval = true, infer = true}

local function check_mode(op, mode)
  if not modes[mode] then
    error(string.format("%s: mode must be \"train\", \"trial\", \"eval\" or \"infer\", got %s",
                        op, tostring(mode)), 3)
  end
end

-- Whether a forward in `mode` keeps what a backward needs ("train", "eval");
-- the scoring forwards ("trial", "infer") keep nothing.
local function keeps(mode) return mode == "train" or mode == "eval" end
nn.keeps = keeps

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
-- plan_scratch below).
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

-- Two schemes for the gradient tensors between children (see "gradient
-- buffers" below): with the model's gradient pool (self._gp, the CPU default)
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

-- ---- gradient buffers: the model's pool ----------------------------------------
--
-- The gradients between modules live in a few tensors of a pool owned by the
-- model (on the CPU; model:grad_pool). A container takes a free tensor for
-- each child's input gradient and gives a tensor back as soon as the
-- gradient in it is dead, so a ResNet needs three activation-sized gradient
-- tensors in all (a Residual's dy, kept for the identity shortcut, and the
-- input and output of the running layer) instead of two or three per
-- nesting depth (eight for resnet34: 268 MB at batch 128).
--
-- Ownership: a pool tensor is busy from take() to give(). gbackward(x, dy,
-- dest, own) is the containers' backward with the pool: `own` is the pool
-- tensor dy lives in when the caller hands it over (the callee gives it back
-- once dy is dead, or returns it holding dx), nil when the caller keeps it
-- (dy stays unmodified); `dest` is POOL (the result may go into any pool
-- tensor) or what backward's target is (a tensor, or nil: one of the
-- module's own). It returns dx and the pool tensor holding it, now owned by
-- the caller (nil when dx is not in a pool tensor the caller must give
-- back). Leaf modules keep the plain protocol: they write into the tensor
-- they are given and never modify dy; gcall does the bookkeeping for them.
-- Values are those of the depth scheme bit for bit: every kernel writes the
-- same numbers wherever its output lives, and a Residual's sum is the same
-- addition (db + ds) in the same tensor role.
local POOL = setmetatable({}, {__name = "nn.POOL"})

local GradPool = {}
GradPool.__index = GradPool

local function grad_pool_new()
  return setmetatable({all = {}, free = {}, busy = {}}, GradPool)
end

function GradPool:take()
  local free, t = self.free, nil
  local n = #free
  if n > 0 then
    t = free[n]
    free[n] = nil
  else
    t = empty(self.cap or 1)
    self.all[#self.all + 1] = t
  end
  self.busy[t] = true
  return t
end

function GradPool:give(t)
  if not self.busy[t] then error("nn: gradient pool: a tensor given back twice (a bug in nn.lua)", 2) end
  self.busy[t] = nil
  self.free[#self.free + 1] = t
end

-- Everything free again (model:backward starts with it: an error in a
-- backward leaves no tensor busy for good).
function GradPool:reset()
  local free, busy = self.free, self.busy
  for t in pairs(busy) do busy[t] = nil end
  for i = #free, 1, -1 do free[i] = nil end
  for i, t in ipairs(self.all) do free[i] = t end
end

function GradPool:nbusy()
  local n = 0
  for _ in pairs(self.busy) do n = n + 1 end
  return n
end

local function pool_aware(m)
  return m._gp ~= nil and (m.backward == Sequential.backward or m.backward == Residual.backward)
end

-- m's backward with the pool (see above); returns dx and the pool tensor
-- holding it that the caller now owns, or nil.
local function gcall(P, m, x, dy, dest, own)
  if pool_aware(m) then return m:gbackward(x, dy, dest, own) end
  local t
  if dest == POOL then t = P:take() else t = dest end
  local dx = m:backward(x, dy, t)
  local held
  if t ~= dest then
    if dx ~= nil and dx:shares_storage(t) then held = t else P:give(t) end
  end
  if own then
    if held == nil and dx ~= nil and dx:shares_storage(own) then held = own else P:give(own) end
  end
  return dx, held
end

-- A result that must not stay in a pool tensor (the caller asked for a
-- plain target): copied into dest or a tensor of the module's own.
local function settle(self, P, dest, dx, held)
  if dest == POOL or held == nil then return dx, held end
  local out = resize_as(dest or self:buf("_gin"), dx):copy(dx)
  P:give(held)
  return out, nil
end

function Sequential:gbackward(x, dy, dest, own)
  local P, ch, rc = self._gp, self.children, self._recompute
  local cur = own
  for i = #ch, 1, -1 do
    if rc and rc[i] then rc[i]:recompute() end
    local d = POOL
    if i == 1 then d = dest end
    dy, cur = gcall(P, ch[i].module, self._in[i], dy, d, cur)
    if dy == nil then return nil end
  end
  return settle(self, P, dest, dy, cur)
end

-- The shortcut's backward runs first, so that the body may take over dy's
-- tensor (a projection shortcut has read dy by then); an identity shortcut
-- keeps dy until the sum.
function Residual:gbackward(x, dy, dest, own)
  local P = self._gp
  local ds, sheld
  if self.shortcut then
    ds, sheld = gcall(P, self.shortcut, x, dy, POOL, nil)
  else
    ds = dy
  end
  local keep = own        -- dy's tensor while this call still owns it
  local pass = nil
  if own and ds ~= nil and not ds:shares_storage(own) then pass, keep = own, nil end
  local db, bheld = gcall(P, self.body, x, dy, dest, pass)
  if not self.need_dx then
    if sheld then P:give(sheld) end
    if bheld then P:give(bheld) end
    if keep then P:give(keep) end
    return nil
  end
  if db:shares_storage(dy) then   -- a body that passes dy through: do not modify dy
    local t, h
    if dest == POOL then t = P:take(); h = t else t = dest or self:buf("_gin") end
    db = resize_as(t, dy):copy(dy)
    if bheld then P:give(bheld) end
    bheld = h
  end
  db:add_(ds)
  if sheld then P:give(sheld) end
  if keep then P:give(keep) end
  return settle(self, P, dest, db, bheld)
end

-- ---- the loss ----------------------------------------------------------------------------------

-- CrossEntropy(): fused log-softmax + negative log-likelihood, mean over the batch.
--   loss, correct = crit:forward(logits, labels [, mode])  labels: int32 N
--   dlogits = crit:backward()   (the gradient of the mean loss; computed by
--   the forward only when mode is "train" or nil)
local CrossEntropy = nn.class("CrossEntropy")
nn.CrossEntropy = CrossEntropy

function CrossEntropy:__init() self.dlogits = empty(1) end

function CrossEntropy:forward(logits, labels, mode)
  local grad = mode == nil or mode == "train"
  if grad then
    local dev = logits:device()
    if self.dlogits:device() ~= dev then self.dlogits = empty(1):to(dev) end
  end
  local loss, correct = K.cross_entropy(logits, labels, grad and self.dlogits or nil)
  self.has_grad = grad
  return loss, correct
end

function CrossEntropy:backward()
  if not self.has_grad then
    error("CrossEntropy: backward needs a forward in \"train\" mode first", 2)
  end
  return self.dlogits
end

-- ---- models --------------------------------------------------------------------------------------

local Model = {}
Model.__index = Model
nn.Model = Model

local function join(prefix, name)
  if name == "" then return prefix end
  if prefix == "" then return name end
  return prefix .. "." .. name
end

-- Walk the tree: visit(module, path, depth) in state-dict order.
local function walk(m, path, depth, visit)
  visit(m, path, depth)
  for _, c in ipairs(m.children) do walk(c.module, join(path, c.name), depth + 1, visit) end
end

-- Output shapes for the printed tree: infer through containers, recording each.
local function infer_all(m, s)
  m.in_shape = copy_shape(s)
  local out
  if m.children[1] and (getmetatable(m) == Sequential) then
    out = s
    for _, c in ipairs(m.children) do out = infer_all(c.module, out) end
  elseif getmetatable(m) == Residual then
    out = m:infer(copy_shape(s))
    infer_all(m.body, copy_shape(s))
    if m.shortcut then infer_all(m.shortcut, copy_shape(s)) end
  else
    out = m:infer(copy_shape(s))
    for _, c in ipairs(m.children) do infer_all(c.module, copy_shape(s)) end
  end
  m.out_shape = copy_shape(out)
  return out
end

-- ---- activation memory: BatchNorm outputs that are not kept ------------------------
--
-- A BatchNorm output is needed by the next module's forward and, when that
-- module reads its input in backward (a convolution's weight gradient), by
-- that backward. On the CPU such outputs are not kept: they are written into
-- a scratch tensor shared by the whole model and made again, bit-identical,
-- from the BatchNorm's input and saved statistics (BatchNorm:recompute, one
-- elementwise pass) just before the consumer's backward. This drops about a
-- third of a ResNet's activation memory. The rule keeps it safe without
-- knowing what a module does:
--   (1) a BatchNorm in a Sequential, optionally followed by an in-place
--       ReLU, then by a leaf module of a known kind (Conv2d, Linear, pooling,
--       Dropout, a non-in-place ReLU) writes scratch "a" and is recomputed
--       before that module's backward; nothing else writes "a" between
--       the write and the read (only the in-place ReLU), forward or backward;
--   (2) a BatchNorm that ends the body (or the shortcut) of a Residual writes
--       "a" (or "b"): the sum reads it, and Residual's backward does not need
--       it; allowed only when the shortcut is a single module or a
--       Sequential of leaf modules with no rule-(1) BatchNorm, so nothing
--       writes "a" between the body's end and the sum.
-- On the GPU every BatchNorm keeps its output (memory is not the constraint
-- there, and cuDNN's output is not reproducible by a separate kernel bit for bit).
local function is_bn(m) local c = getmetatable(m); return c ~= nil and c.super == BatchNorm end
local leaf_consumer = {Conv2d = true, Linear = true, MaxPool2d = true, AvgPool2d = true,
                       GlobalAvgPool = true, Dropout = true}

local function plan_scratch(root, on)
  walk(root, "", 0, function(m)
    if is_bn(m) then m._scratch, m._relu = nil, nil end
    if getmetatable(m) == Sequential then m._recompute = nil end
  end)
  if not on then return end
  local scratch = {}
  local function get(key)
    scratch[key] = scratch[key] or empty(1)
    return scratch[key]
  end
  local function rule1(m)
    local ch = m.children
    for i = 1, #ch - 1 do
      local bn, j, relu = ch[i].module, i + 1, nil
      local nxt = ch[j].module
      if getmetatable(nxt) == ReLU and nxt.inplace then relu, j = nxt, i + 2 end
      local c = ch[j] and ch[j].module
      if is_bn(bn) and c and (leaf_consumer[c.kind] or (getmetatable(c) == ReLU and not c.inplace)) then
        bn._scratch, bn._relu = get("a"), relu
        m._recompute = m._recompute or {}
        m._recompute[j] = bn
      end
    end
  end
  local function flat_without_rule1(m)
    if #m.children == 0 then return true end
    if getmetatable(m) ~= Sequential then return false end
    for _, c in ipairs(m.children) do
      if #c.module.children > 0 or c.module._scratch then return false end
    end
    return true
  end
  local function last_bn(m)
    if is_bn(m) then return m end
    if getmetatable(m) == Sequential and m.children[1] then
      local l = m.children[#m.children].module
      if is_bn(l) then return l end
    end
  end
  walk(root, "", 0, function(m)
    if getmetatable(m) == Sequential then rule1(m) end
  end)
  walk(root, "", 0, function(m)
    if getmetatable(m) == Residual and (m.shortcut == nil or flat_without_rule1(m.shortcut)) then
      local b = last_bn(m.body)
      if b and not b._scratch then b._scratch = get("a") end
      local s = m.shortcut and last_bn(m.shortcut)
      if s and not s._scratch then s._scratch = get("b") end
    end
  end)
end

-- The gradient buffers (see "gradient buffers" above): every container gets
-- the model's pool on the CPU when grad_pool is on; otherwise (the GPU, or
-- model:grad_pool(false)) the containers' buffers shared by nesting depth.
local function plan_grads(model)
  local P = nil
  if model.grad_pool_on and (model.device or "cpu") == "cpu" then
    P = model.gpool or grad_pool_new()
  end
  model.gpool = P
  walk(model.root, "", 0, function(m)
    if #m.children > 0 then m._gp = P else m._gp = nil end
  end)
end

-- nn.model(root, {input = {C, H, W}, input_grad = false, name = "..."}) -> model
-- Builds the flat tensors and hands every module its views; see the contract
-- in docs/ARCHITECTURE.md. input_grad = true makes model:backward return the
-- gradient of the input (off by default: training does not need it).
-- keep_bn_outputs = true and grad_pool = false turn the CPU's memory savings
-- off (model:keep_bn_outputs, model:grad_pool).
-- nn.model{"lenet", classes = 10} and nn.model("lenet", {classes = 10})
-- build a network of sgdsa.models by name instead.
function nn.model(root, opts)
  if type(root) == "string" or (type(root) == "table" and type(root[1]) == "string"
                                and root.forward == nil) then
    local models = require "sgdsa.models"
    local ok, m = pcall(models.build, root, opts)
    if not ok then error((tostring(m):gsub("^sgdsa%.models[.%w]*: ", "nn.model: ")), 2) end
    return m
  end
  opts = check_opts(opts, {input = true, input_grad = true, name = true,
                             keep_bn_outputs = true, grad_pool = true}, "nn.model")
  if type(root) ~= "table" or type(root.forward) ~= "function" then
    error(string.format("nn.model: the first argument must be a module (nn.Sequential{...}) or " ..
                        "a model name or spec ({\"lenet\", classes = 10}; sgdsa.models), got %s",
                        type(root)), 2)
  end
  if type(opts.input) ~= "table" then
    error("nn.model: give the per-sample input shape, e.g. {input = {3, 32, 32}}", 2)
  end
  local self = setmetatable({root = root, name = opts.name or root.kind,
                             input_shape = copy_shape(opts.input), device = "cpu"}, Model)
  local ok, err = pcall(infer_all, root, copy_shape(opts.input))
  if not ok then error("nn.model: " .. tostring(err), 2) end
  self.output_shape = root.out_shape

  -- collect declarations in state-dict order (params and buffers interleaved
  -- per module); each tensor's offset in its flat tensor is rounded up to a
  -- multiple of nn.ALIGN floats (see nn.ALIGN)
  local entries, np, nb, nreal, seen = {}, 0, 0, 0, {}
  local function up(o) return (o + ALIGN - 1) // ALIGN * ALIGN end
  walk(root, "", 0, function(m, path)
    for _, spec in ipairs(m.param_specs) do
      local n = numel(spec.shape)
      np = up(np)
      entries[#entries + 1] = {name = join(path, spec.name), kind = "param", spec = spec,
                               module = m, offset = np, n = n}
      np, nreal = np + n, nreal + n
    end
    for _, spec in ipairs(m.buffer_specs) do
      local n = numel(spec.shape)
      nb = up(nb)
      entries[#entries + 1] = {name = join(path, spec.name), kind = "buffer", spec = spec,
                               module = m, offset = nb, n = n}
      nb = nb + n
    end
  end)
  for _, e in ipairs(entries) do
    if seen[e.name] then error("nn.model: two tensors are named " .. e.name, 2) end
    seen[e.name] = true
  end

  -- zeros: the gaps between tensors stay zero in grads and buffers (nothing
  -- writes them); in params only a move over the whole flat vector (SSA's
  -- random direction) puts values there, which nothing reads
  self.params = core.zeros(math.max(np, 1))
  self.grads = core.zeros(math.max(np, 1))
  self.buffers = core.zeros(math.max(nb, 1))
  if np == 0 then self.params = self.params:narrow(1, 1, 0); self.grads = self.grads:narrow(1, 1, 0) end
  -- parameter count (without the gaps) and the buffers' values
  self.nparams, self.nbuffers = nreal, 0
  for _, e in ipairs(entries) do
    if e.kind == "buffer" then self.nbuffers = self.nbuffers + e.n end
  end
  local gen = core.stream("init")
  self.entries = entries
  for _, e in ipairs(entries) do
    local src = e.kind == "param" and self.params or self.buffers
    local t = src:narrow(1, e.offset + 1, e.n):view(e.spec.shape)
    e.tensor = t
    e.module[e.spec.name] = t
    if e.kind == "param" then
      e.grad = self.grads:narrow(1, e.offset + 1, e.n):view(e.spec.shape)
      e.module["grad_" .. e.spec.name] = e.grad
      if e.spec.init then e.spec.init(t, gen, e.module) end
    else
      t:fill(e.spec.value)
    end
  end

  -- one workspace shared by all modules (they run one at a time), and the
  -- containers' gradient buffers shared by nesting depth (used when the
  -- gradient pool is off: the GPU, or grad_pool = false): two containers at
  -- the same depth never run their backward at the same time, and each
  -- leaves its result in its caller's buffer, so a whole model needs a few
  -- activation-sized gradient buffers instead of two per container. On the
  -- CPU the model's gradient pool (plan_grads) needs fewer still.
  self.workspace = empty(1)
  local pool = {}
  walk(root, "", 0, function(m, _, depth)
    m.ws = self.workspace
    if #m.children > 0 then
      local p = pool[depth]
      if not p then
        p = {_g1 = empty(1), _g2 = empty(1), _gs = empty(1)}
        pool[depth] = p
      end
      m._g1, m._g2, m._gs = p._g1, p._g2, p._gs
    end
  end)
  self.input_grad = opts.input_grad and true or false
  root:set_need_dx(self.input_grad)
  self.keep_bn = opts.keep_bn_outputs and true or false
  plan_scratch(root, not self.keep_bn)
  self.grad_pool_on = opts.grad_pool ~= false
  plan_grads(self)
  return self
end

-- model:grad_pool(on) -> model: true (the default; used on the CPU) keeps
-- the gradients between modules in the model's pool of a few tensors;
-- false gives every nesting depth of containers its own gradient buffers
-- (the GPU's scheme). Also nn.model's option. The values are the same.
function Model:grad_pool(on)
  self.grad_pool_on = on and true or false
  plan_grads(self)
  return self
end

-- model:data_parallel{sync_bn = bool, shard = {offset =, total =}} -> model:
-- this model is one rank's replica in a data-parallel run (sgdsa.dist), and
-- each forward sees that rank's slice of the batch. sync_bn: BatchNorm's
-- training and trial forwards (and their backward) use the statistics of
-- the whole batch, summed over the ranks (CPU only); otherwise each rank's
-- own. shard: a table the caller keeps up to date, before each training
-- forward, with the slice's first image in the whole batch and the whole
-- batch's size: Dropout draws that slice of the whole batch's mask.
function Model:data_parallel(opts)
  opts = check_opts(opts, {sync_bn = true, shard = true}, "model:data_parallel")
  walk(self.root, "", 0, function(m)
    if is_bn(m) then m.sync = opts.sync_bn and true or nil end
    if getmetatable(m) == nn.Dropout then m.shard = opts.shard end
  end)
  return self
end

-- model:keep_bn_outputs(on) -> model: true keeps every BatchNorm output
-- (more memory, no recomputation: what the GPU does); false (the CPU
-- default) lets plan_scratch drop the ones it can. Also nn.model's option.
function Model:keep_bn_outputs(on)
  self.keep_bn = on and true or false
  plan_scratch(self.root, (self.device or "cpu") == "cpu" and not self.keep_bn)
  return self
end

function Model:forward(x, mode)
  mode = mode or "train"
  check_mode("model:forward", mode)
  return self.root:forward(x, mode)
end

-- Accumulates parameter gradients into model.grads; returns the input
-- gradient when the model was built with input_grad = true.
function Model:backward(x, dy)
  local P = self.root._gp
  if P then
    P:reset()
    -- new pool tensors get the size of the largest gradient at once (no
    -- growing through the smaller layers: fewer freed blocks left resident)
    local n = dy:dim() > 0 and dy:size(1) or 1
    if n ~= P.batch then
      P.batch = n
      local per = self.max_grad_numel
      if per == nil then
        per = 1
        walk(self.root, "", 0, function(m)
          if m.in_shape then per = math.max(per, numel(m.in_shape)) end
          if m.out_shape then per = math.max(per, numel(m.out_shape)) end
        end)
        self.max_grad_numel = per
      end
      P.cap = n * per
    end
  end
  return self.root:backward(x, dy, nil)
end

function Model:zero_grad()
  self.grads:zero()
end

-- The number of trainable parameters (model.params is longer: the gaps
-- that align each tensor, see nn.ALIGN).
function Model:num_params() return self.nparams end

-- model:pack(flat) -> a new CPU float32 tensor of num_params() values: a
-- tensor laid out like model.params (its values, a gradient, an optimizer's
-- velocity) without the alignment gaps, parameters in state-dict order (the
-- checkpoints' layout of optimizer buffers). model:unpack(dense, flat)
-- copies such a tensor back into the parameters' places of `flat` (laid out
-- like model.params; its gaps untouched) and returns flat.
function Model:pack(flat)
  if flat:numel() ~= self.params:numel() then
    error(string.format("model:pack: a tensor of %d values, model.params has %d", flat:numel(),
                        self.params:numel()), 2)
  end
  local src = flat:device() == "cpu" and flat:contiguous() or flat:cpu()
  local out, at = core.zeros(math.max(self.nparams, 1)):narrow(1, 1, self.nparams), 0
  for _, e in ipairs(self.entries) do
    if e.kind == "param" then
      out:narrow(1, at + 1, e.n):copy(src:narrow(1, e.offset + 1, e.n))
      at = at + e.n
    end
  end
  return out
end

function Model:unpack(dense, flat)
  if dense:numel() ~= self.nparams or flat:numel() ~= self.params:numel() then
    error(string.format("model:unpack: %d values into a tensor of %d, the model has %d " ..
                        "parameters in %d places", dense:numel(), flat:numel(), self.nparams,
                        self.params:numel()), 2)
  end
  local src = dense:device() == flat:device() and dense or dense:to(flat:device())
  local at = 0
  for _, e in ipairs(self.entries) do
    if e.kind == "param" then
      flat:narrow(1, e.offset + 1, e.n):copy(src:narrow(1, at + 1, e.n))
      at = at + e.n
    end
  end
  return flat
end

-- model:flops() -> forward, backward: floating-point operations per sample
-- of the convolutions and linear layers, from their geometry (2 per
-- multiply-add). The backward counts each layer's weight gradient and,
-- where one is computed, its input gradient (not the first layer's), each
-- costing a forward. The other layers are memory-bound and not counted.
function Model:flops()
  local fwd, bwd = 0, 0
  walk(self.root, "", 0, function(m)
    local macs
    if m.kind == "Conv2d" then
      local o = m.out_shape
      macs = o[1] * o[2] * o[3] * m.cin * m.kh * m.kw
    elseif m.kind == "Linear" then
      macs = m.nin * m.nout
    end
    if macs then
      fwd = fwd + 2 * macs
      bwd = bwd + 2 * macs * (m.need_dx and 2 or 1)
    end
  end)
  return fwd, bwd
end

-- Ordered list of {name=, tensor=, kind="param"|"buffer", grad=} (state-dict order).
function Model:named_tensors()
  local r = {}
  for i, e in ipairs(self.entries) do
    r[i] = {name = e.name, tensor = e.tensor, kind = e.kind, grad = e.grad}
  end
  return r
end

-- name -> tensor (params and buffers)
function Model:state()
  local r = {}
  for _, e in ipairs(self.entries) do r[e.name] = e.tensor end
  return r
end

-- Tensors a module keeps besides its parameter views: its own buffers
-- (outputs, _gin, workspaces, saved statistics, masks, indices, residual
-- sums), lists of tensors (a Sequential's saved inputs) and cached views.
-- Each is moved once (`move` memoizes, so tensors shared between modules,
-- such as the workspace and the containers' gradient buffers, stay shared);
-- cached views are dropped (they are made again from their new source).
local function move_module_tensors(m, skip, move)
  for k, v in pairs(m) do
    if not skip[k] then
      if core.is_tensor(v) then
        m[k] = move(v)
      elseif type(v) == "table" and getmetatable(v) == nil and k ~= "children" then
        if v.view ~= nil and v.src ~= nil then
          m[k] = nil
        else
          for i, x in pairs(v) do
            if core.is_tensor(x) then v[i] = move(x) end
          end
        end
      end
    end
  end
end

-- model:to(device) -> model, device "cpu" or "cuda" ("cuda:0"). Moves
-- params, grads and buffers (values kept), re-points every module's
-- parameter, gradient and buffer views at the moved flat tensors, and moves
-- every tensor the modules keep; modules then create new buffers on the
-- device. Tensors taken from the model before the move (model.params, a
-- search's trial buffer, named_tensors()) still refer to the old device:
-- call to() first, then build the search.
function Model:to(device)
  if type(device) == "string" and device:match("^cuda:%d+$") then
    if device ~= "cuda:0" then
      error(string.format("model:to(%q): sgdsa uses one GPU, cuda:0 (select it with " ..
                          "CUDA_VISIBLE_DEVICES)", device), 2)
    end
    device = "cuda"
  end
  if device ~= "cpu" and device ~= "cuda" then
    error(string.format("model:to: unknown device %s (cpu, cuda)", tostring(device)), 2)
  end
  if device == self.device then return self end
  if device == "cuda" then
    local ok, why = core.cuda.available()
    if not ok then
      error("model:to(\"cuda\"): no usable GPU (" .. tostring(why) .. ")", 2)
    end
  end
  local memo = {}
  local function move(t)
    local r = memo[t]
    if r == nil then
      r = t:to(device)
      memo[t] = r
    end
    return r
  end
  local params, grads, buffers = move(self.params), move(self.grads), move(self.buffers)
  -- the workspace is scratch (unused on the GPU, resized on demand on the
  -- CPU): a fresh one, not a copy of whatever the last CPU call left in it
  memo[self.workspace] = empty(1):to(device)
  -- the parameter/gradient/buffer views, keyed per module, are made again below
  local skip = {}
  for _, e in ipairs(self.entries) do
    local sk = skip[e.module] or {}
    skip[e.module] = sk
    sk[e.spec.name] = true
    if e.kind == "param" then sk["grad_" .. e.spec.name] = true end
  end
  local none = {}
  walk(self.root, "", 0, function(m)
    move_module_tensors(m, skip[m] or none, move)
    m.device = device
  end)
  self.workspace = move(self.workspace)
  self.params, self.grads, self.buffers = params, grads, buffers
  for _, e in ipairs(self.entries) do
    local src = e.kind == "param" and params or buffers
    local t = src:narrow(1, e.offset + 1, e.n):view(e.spec.shape)
    e.tensor = t
    e.module[e.spec.name] = t
    if e.kind == "param" then
      e.grad = grads:narrow(1, e.offset + 1, e.n):view(e.spec.shape)
      e.module["grad_" .. e.spec.name] = e.grad
    end
  end
  self.device = device
  plan_scratch(self.root, device == "cpu" and not self.keep_bn)
  plan_grads(self)
  return self
end

-- ---- files -------------------------------------------------------------------------------------

local function h5()
  local ok, m = pcall(require, "sgdsa.h5")
  if not ok then error("model save/load: the HDF5 binding (sgdsa.h5) is not available: " .. tostring(m), 3) end
  return m
end

-- model:save(path [, attrs]): every parameter and buffer as a dataset named as
-- in PyTorch's state dict (float32, PyTorch layouts), written atomically; the
-- root attribute "model" holds the model's name.
function Model:save(path, attrs)
  local values, a = {}, {model = self.name}
  for _, e in ipairs(self.entries) do values[e.name] = e.tensor end
  for k, v in pairs(attrs or {}) do a[k] = v end
  h5().save(path, values, a)
end

-- model:load(path [, {group=}]): checks every name, shape and dtype first and
-- reports every mismatch by name (nothing is changed then); then reads each
-- dataset straight into its parameter or buffer.
function Model:load(path, opts)
  opts = check_opts(opts, {group = true}, "model:load")
  local f <close> = h5().open(path, "r")
  local prefix = opts.group and (opts.group:gsub("/$", "") .. "/") or ""
  local found = {}
  for _, e in ipairs(f:list(opts.group or "/")) do
    if e.kind ~= "group" then found[e.name] = e end
  end
  local problems = {}
  for _, e in ipairs(self.entries) do
    local d = found[e.name]
    local want = shape_str(e.tensor:size())
    if d == nil then
      problems[#problems + 1] = string.format("%s: missing from the file (model has %s)", e.name, want)
    else
      local got = d.shape and shape_str(d.shape) or "?"
      if d.dtype ~= "float32" then
        problems[#problems + 1] = string.format("%s: dtype %s in the file, expected float32",
                                                e.name, tostring(d.dtype))
      elseif got ~= want then
        problems[#problems + 1] = string.format("%s: shape %s in the file, model has %s",
                                                e.name, got, want)
      end
    end
  end
  local known = self:state()
  local extra = {}
  for name in pairs(found) do
    if known[name] == nil then extra[#extra + 1] = name end
  end
  table.sort(extra)
  for _, name in ipairs(extra) do problems[#problems + 1] = name .. ": in the file but not in the model" end
  if #problems > 0 then
    error(string.format("model:load(%s): %d mismatch%s:\n  %s", path, #problems,
                        #problems == 1 and "" or "es", table.concat(problems, "\n  ")), 2)
  end
  for _, e in ipairs(self.entries) do f:read_into(prefix .. e.name, e.tensor) end
  return self
end

-- ---- printing ------------------------------------------------------------------------------------

local function fmt_count(n)
  local s = tostring(n):reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (s:gsub("^,", ""))
end
nn.fmt_count = fmt_count

local function count_params(m)
  local n = 0
  for _, s in ipairs(m.param_specs) do n = n + numel(s.shape) end
  for _, c in ipairs(m.children) do n = n + count_params(c.module) end
  return n
end
nn.count_params = count_params

function Model:__tostring()
  local lines = {string.format("%s: input %s -> output %s, %s parameters, %s buffer values",
                               self.name, shape_str(self.input_shape), shape_str(self.output_shape),
                               fmt_count(self.nparams), fmt_count(self.nbuffers))}
  local function rec(m, name, depth)
    local d = m:describe()
    local n = count_params(m)
    lines[#lines + 1] = string.format("%s%s%s%s -> %s%s", string.rep("  ", depth),
                                      name ~= "" and (name .. ": ") or "", m.kind,
                                      d ~= "" and ("(" .. d .. ")") or "",
                                      m.out_shape and shape_str(m.out_shape) or "?",
                                      n > 0 and ("  [" .. fmt_count(n) .. "]") or "")
    for _, c in ipairs(m.children) do
      rec(c.module, c.name == "" and "(body)" or c.name, depth + 1)
    end
  end
  rec(self.root, "", 1)
  return table.concat(lines, "\n")
end

return nn
