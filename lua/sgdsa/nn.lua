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
--
-- The layers are in lua/sgdsa/nn/layers.lua, the memory plan (gradient
-- buffers, BatchNorm scratch outputs) in lua/sgdsa/nn/memory.lua; this file
-- builds models (flat parameters) and gives them their plan.
local core = require "sgdsa.core"
local check_opts = require("sgdsa.options").check
local util = require "sgdsa.nn.util"
local layers = require "sgdsa.nn.layers"
local memory = require "sgdsa.nn.memory"

-- sgdsa.nn: the layers' names and the models' (a table of its own, so that
-- help(sgdsa.nn) finds this module)
local nn = {}
for k, v in pairs(layers) do nn[k] = v end

local empty = core.empty
local shape_str, numel, copy_shape, check_mode = util.shape_str, util.numel, util.copy_shape, util.check_mode
local join, walk, is_bn = util.join, util.walk, memory.is_bn
local Sequential, Residual = nn.Sequential, nn.Residual

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

-- ---- models --------------------------------------------------------------------------------------

local Model = {}
Model.__index = Model
nn.Model = Model

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

-- Every module's parameter, gradient and buffer views (self[name],
-- self["grad_" .. name]) pointed into the model's flat tensors.
local function point_views(model)
  for _, e in ipairs(model.entries) do
    local src = e.kind == "param" and model.params or model.buffers
    e.tensor = src:narrow(1, e.offset + 1, e.n):view(e.spec.shape)
    e.module[e.spec.name] = e.tensor
    if e.kind == "param" then
      e.grad = model.grads:narrow(1, e.offset + 1, e.n):view(e.spec.shape)
      e.module["grad_" .. e.spec.name] = e.grad
    end
  end
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
  point_views(self)
  for _, e in ipairs(entries) do
    if e.kind == "param" then
      if e.spec.init then e.spec.init(e.tensor, gen, e.module) end
    else
      e.tensor:fill(e.spec.value)
    end
  end

  memory.buffers(self)
  self.input_grad = opts.input_grad and true or false
  root:set_need_dx(self.input_grad)
  self.keep_bn = opts.keep_bn_outputs and true or false
  self.grad_pool_on = opts.grad_pool ~= false
  memory.plan(self)
  return self
end

-- The model with its setting `key` (grad_pool_on, keep_bn) turned on or off
-- and its memory planned again (sgdsa.nn.memory.plan).
local function replan(model, key, on)
  model[key] = on and true or false
  memory.plan(model)
  return model
end

-- model:grad_pool(on) -> model: true (the default; used on the CPU) keeps
-- the gradients between modules in the model's pool of a few tensors;
-- false gives every nesting depth of containers its own gradient buffers
-- (the GPU's scheme). Also nn.model's option. The values are the same.
function Model:grad_pool(on) return replan(self, "grad_pool_on", on) end

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
-- default) lets sgdsa.nn.memory drop the ones it can. Also nn.model's option.
function Model:keep_bn_outputs(on) return replan(self, "keep_bn", on) end

function Model:forward(x, mode)
  mode = mode or "train"
  check_mode("model:forward", mode)
  return self.root:forward(x, mode)
end

-- Accumulates parameter gradients into model.grads; returns the input
-- gradient when the model was built with input_grad = true.
function Model:backward(x, dy)
  memory.before_backward(self, dy)
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
  point_views(self)
  self.device = device
  memory.plan(self)
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

