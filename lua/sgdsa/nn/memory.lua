-- sgdsa.nn.memory: the memory plan of a model (sgdsa.nn): where the
-- gradients between modules live, and which BatchNorm outputs are not kept.
-- M.plan(model) is the one place that chooses per device:
--   CPU: the model's gradient pool (unless grad_pool = false) and BatchNorm
--        outputs in shared scratch tensors, made again before the backward
--        that reads them (unless keep_bn_outputs = true);
--   GPU: the containers' gradient buffers shared by nesting depth, and every
--        BatchNorm output kept.
-- The values are the same under every plan, bit for bit.
local core = require "sgdsa.core"
local util = require "sgdsa.nn.util"
local nn = require "sgdsa.nn.layers"

local resize_as = core.Tensor.resize_as_
local empty = core.empty
local numel, walk = util.numel, util.walk
local Sequential, Residual, ReLU = nn.Sequential, nn.Residual, nn.ReLU
local BatchNorm = nn.BatchNorm2d.super

local M = {}

-- ---- the depth scheme (the GPU's) -------------------------------------------------
--
-- One workspace shared by all modules (they run one at a time), and the
-- containers' gradient buffers shared by nesting depth (used when the
-- gradient pool is off: the GPU, or grad_pool = false): two containers at
-- the same depth never run their backward at the same time, and each leaves
-- its result in its caller's buffer, so a whole model needs a few
-- activation-sized gradient buffers instead of two per container. The
-- gradient pool below needs fewer still.
function M.buffers(model)
  model.workspace = empty(1)
  local pool = {}
  walk(model.root, "", 0, function(m, _, depth)
    m.ws = model.workspace
    if #m.children > 0 then
      local p = pool[depth]
      if not p then
        p = {_g1 = empty(1), _g2 = empty(1), _gs = empty(1)}
        pool[depth] = p
      end
      m._g1, m._g2, m._gs = p._g1, p._g2, p._gs
    end
  end)
end

-- ---- the gradient pool (the CPU's scheme) ------------------------------------------
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
  if not self.busy[t] then error("nn: gradient pool: a tensor given back twice (a bug in lua/sgdsa/nn/memory.lua)", 2) end
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

-- Before a backward with the pool: every tensor free again (an error in a
-- backward leaves none busy for good), and new pool tensors sized for the
-- largest gradient of this batch size at once (no growing through the
-- smaller layers: fewer freed blocks left resident).
function M.before_backward(model, dy)
  local P = model.root._gp
  if not P then return end
  P:reset()
  local n = dy:dim() > 0 and dy:size(1) or 1
  if n ~= P.batch then
    P.batch = n
    local per = model.max_grad_numel
    if per == nil then
      per = 1
      walk(model.root, "", 0, function(m)
        if m.in_shape then per = math.max(per, numel(m.in_shape)) end
        if m.out_shape then per = math.max(per, numel(m.out_shape)) end
      end)
      model.max_grad_numel = per
    end
    P.cap = n * per
  end
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

-- ---- the plan --------------------------------------------------------------------

--- The memory plan of `model` for its device (model.device) and settings
--- (model.grad_pool_on, model.keep_bn): every container gets the model's
--- gradient pool (or none: the depth scheme), every BatchNorm its scratch
--- output (or none: its own, kept). nn.model, model:to, model:grad_pool and
--- model:keep_bn_outputs call it.
function M.plan(model)
  local cpu = (model.device or "cpu") == "cpu"
  plan_scratch(model.root, cpu and not model.keep_bn)
  local P = nil
  if cpu and model.grad_pool_on then P = model.gpool or grad_pool_new() end
  model.gpool = P
  walk(model.root, "", 0, function(m)
    if #m.children > 0 then m._gp = P else m._gp = nil end
  end)
end

M.is_bn = is_bn
return M
