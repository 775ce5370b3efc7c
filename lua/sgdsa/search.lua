-- sgdsa.search: one step of the search loop (Algorithm 2 of Fischetti &
-- Stringher, generalized). A step on a minibatch (x, y):
--
--   1. forward ("train") and backward at the current point w: the objective
--      f(w) and the gradient g (skipped when the neighborhood needs none);
--   2. the neighborhood fills the trial buffer with a proposed point;
--   3. the trial point is scored on the SAME minibatch with the scoring
--      forward (swapped in for it and back out:
--      model.params:swap_storage(trial), O(1), no copy);
--   4. the acceptance rule decides; on accept the storages are swapped (the
--      trial buffer now holds the old w and becomes scratch);
--   5. the schedules advance (per step here, per epoch in epoch_end).
--
-- How points are scored (`score`):
--   "train" (default): f(w) is the objective of step 1's training forward
--      (batch statistics) and the trial is scored by a "trial" forward
--      (batch statistics, running statistics untouched, dropout masks of the
--      training forward);
--   "inference": the authors' procedure (QuasarLight/sgd-sa's SGD_SA and
--      stochastic_simulated_annealing): f(w) is scored by an "infer" forward
--      (BatchNorm running statistics, no dropout) BEFORE the training
--      forward, which then updates the running statistics as plain SGD does,
--      and the trial is scored by an "infer" forward with the updated
--      statistics. A rejected move keeps that update. Costs one forward more
--      than "train" (none for a derivative-free neighborhood, which runs no
--      training forward at all).
--
-- Data-parallel runs (`dist`: sgdsa.dist in a job of several ranks; each rank
-- steps on its slice of the minibatch): every objective is that of the whole
-- minibatch, from the sums over the ranks of loss * n, ncorrect and n (a
-- function objective: the mean of its per-slice values weighted by n); the
-- loss gradient of a slice is scaled by n / N (N: the whole minibatch) so
-- that the gradients summed over the ranks are the whole minibatch's, and
-- so are BatchNorm's synchronized sums in backward; without sync_bn the
-- BatchNorm buffers (running statistics) are averaged over the ranks after
-- each training forward. Every rank then holds the same numbers, draws the
-- same eta and u from its `search` stream, and takes the same decision.
--
-- Objectives read back late (a model on the GPU; the rule: docs/CUDA.md,
-- "Rules the code keeps"): ctx.f, ctx.loss and ctx.ncorrect are read on
-- access (the Ctx metatable), so a neighborhood may read them in propose (a
-- wait more); on the CPU, in data-parallel runs and with an objective
-- function (it may read the logits) they are numbers at once.
--
-- Nothing is allocated per step: ctx and the step record are reused, the trial
-- buffer, any scratch buffer and the read-back slots are allocated once. A
-- trial with a NaN or infinite objective is always rejected and counted; a
-- non-finite objective at the current point makes step() return nil and a
-- message (the trainer stops without overwriting the last good checkpoint),
-- and w is as before the step. When f(w) was read back late (the GPU), the
-- step had gone on before it knew: the neighborhood has proposed (the
-- `search` stream has moved past its draws, its scratch buffers and, for a
-- user piece, whatever its propose keeps are changed), the trial was scored,
-- and with score "inference" the training forward has updated BatchNorm's
-- running statistics; none of it reaches a checkpoint.
--
--   local S = search.new{model=, criterion=, optim=sgdsa.optim.sgdsa{...} [, dist=, sync_bn=]}
--   local rec = S:step(x, y)        -- or nil, message
--   S:epoch_start(e); S:epoch_end(e)
--   S:state() / S:set_state(st)     -- everything the search remembers
local optim = require "sgdsa.optim"

local M = {}
local Search = {}
Search.__index = Search

local inf = math.huge
local function finite(v) return v == v and v > -inf and v < inf end

-- The objective scored by the acceptance test, from the forward's outputs.
-- "loss" (default): the minibatch loss (mean over the minibatch);
-- "loss/batch": that mean divided by the minibatch size (the authors'
-- test_minibatch, and the scale of the paper's Table 1 loss column);
-- "error": the minibatch error rate (1 - accuracy; the gradient still comes
-- from the loss); or a function (loss, ncorrect, n, logits, y) -> number.
local objectives = {
  loss = function(loss) return loss end,
  ["loss/batch"] = function(loss, _, n) return loss / n end,
  error = function(_, ncorrect, n) return 1 - ncorrect / n end,
}
M.objectives = objectives

-- The forward mode that scores trial points, per scoring mode.
local trial_modes = {train = "trial", inference = "infer"}
M.scores = {"inference", "train"}

local function batch_size(y)
  local s = y:size()
  return s[1] or 1
end

-- The context handed to neighborhoods and acceptance rules. Its methods:
--   ctx:evaluate(t [, t2, ...])  objectives of points t, t2, ... on the
--                       current minibatch ("trial" forwards, read back
--                       together; w is untouched afterwards)
--   ctx:buffer(name)    a scratch tensor the size of w, allocated once
-- ctx.f, ctx.loss and ctx.ncorrect of a step whose objectives are still on
-- the device are read back when a piece reads them.
local Ctx = {}
local read_on_access = {f = true, loss = true, ncorrect = true}
Ctx.__index = function(ctx, k)
  if read_on_access[k] then
    local s = rawget(ctx, "search")
    if s._unread then
      s:_read_back()
      return rawget(ctx, k)
    end
    return nil
  end
  return Ctx[k]
end

function Ctx:evaluate(...)
  local s = self.search
  local n, fs = select("#", ...), s._evals
  for i = 1, n do fs[i] = s:_score_at((select(i, ...))) end
  for i = 1, n do fs[i] = s:_value(fs[i]) end
  return table.unpack(fs, 1, n)
end

function Ctx:buffer(name)
  local b = self.search._buffers[name]
  if not b then
    b = self.w:clone():zero()
    self.search._buffers[name] = b
  end
  return b
end

--- search.new{model=, criterion=, optim=, objective=, score=, dist=, sync_bn=} -> a Search.
-- optim: an optimizer from sgdsa.optim (neighborhood + acceptance), or a table
-- {neighborhood=, acceptance=} whose parts may be user tables or functions.
-- objective and score default to the optimizer's (else "loss" and "train").
-- dist: sgdsa.dist when this is one rank of a data-parallel run (ignored on
-- one rank); sync_bn: the model's BatchNorm statistics are synchronized
-- (model:data_parallel), so its buffers need no averaging.
function M.new(cfg)
  require("sgdsa.options").check_table(cfg, {"model", "criterion", "optim", "objective", "score", "rng", "dist", "sync_bn"},
                   "search.new")
  local model = assert(cfg.model, "search.new: model is required")
  if not (model.params and model.grads and model.forward and model.backward) then
    error("search.new: model does not follow the model contract (needs params, grads, forward, backward; see docs/ARCHITECTURE.md)", 2)
  end
  local crit = cfg.criterion
  if crit == nil then
    local nn = require "sgdsa.nn"
    crit = nn.CrossEntropy()
  end
  local o = assert(cfg.optim, "search.new: optim is required")
  local objective = cfg.objective or o.objective or "loss"
  local objfn = type(objective) == "function" and objective or objectives[objective]
  if not objfn then
    error(string.format("search.new: unknown objective %q (allowed: loss, loss/batch, error, or a function)", tostring(objective)), 2)
  end
  local score = cfg.score or o.score or "train"
  if not trial_modes[score] then
    error(string.format("search.new: unknown score %q (allowed: inference, train)", tostring(score)), 2)
  end
  local s = setmetatable({
    model = model,
    criterion = crit,
    neighborhood = optim.as_neighborhood(o.neighborhood, "search.new"),
    acceptance = optim.as_acceptance(o.acceptance, "search.new"),
    objective_name = type(objective) == "string" and objective or "custom",
    _objfn = objfn,
    score = score,
    _trial_mode = trial_modes[score],
    rng = cfg.rng or require("sgdsa").stream("search"),
    _buffers = {},
    trial = model.params:clone(),
    epoch = 1,      -- current epoch (1-based)
    iter = 0,       -- steps done in total (the paper's i)
    _trial_forwards = 0,
    dist = cfg.dist and cfg.dist.active() and cfg.dist or nil,
    _sync_bn = cfg.sync_bn and true or false,
    _sums = {0, 0, 0, 0},
    -- objectives left on the device this step (see _score): the records
    -- (allocated once, reused), how many this step uses, whether any is
    -- unread, f(w)'s and the statistics' record
    _records = {}, _nq = 0, _unread = false, _fw = nil, _keep = nil,
    _evals = {},    -- ctx:evaluate's results
  }, Search)
  s.ctx = setmetatable({search = s, model = model, w = model.params, g = model.grads,
                        trial = s.trial, rng = s.rng, epoch = 1, step = 0}, Ctx)
  s.rec = {}
  s:reset_stats()
  s._nb_label = optim.piece_label(s.neighborhood, "neighborhood")
  s._ac_label = optim.piece_label(s.acceptance, "acceptance")
  s:check_state()
  return s
end

--- Each piece's state() through what a checkpoint stores and back to its
-- set_state(): what cannot be stored (a function, a userdata) is an error
-- naming the piece and the path now, before the first step, not at the
-- first checkpoint.
function Search:check_state()
  local checkpoint = require "sgdsa.checkpoint"
  local ctx = self.ctx
  for _, part in ipairs{{self.neighborhood, self._nb_label}, {self.acceptance, self._ac_label}} do
    local p, label = part[1], part[2]
    if p.state then
      local ok, st = pcall(p.state, p, ctx)
      if not ok then error(string.format("search: %s: state() failed: %s", label, tostring(st)), 0) end
      if type(st) ~= "table" then
        error(string.format("search: %s: state() returned %s, expected a table", label, type(st)), 0)
      end
      local ok2, back = pcall(checkpoint.roundtrip, st, "state()")
      if not ok2 then
        error(string.format("search: %s: %s (a state holds numbers, strings, booleans, tensors and tables of them)",
                            label, tostring(back):gsub("^checkpoint: ", "")), 0)
      end
      if p.set_state then
        local ok3, err = pcall(p.set_state, p, back, ctx)
        if not ok3 then
          error(string.format("search: %s: set_state() of its own state() failed: %s", label, tostring(err)), 0)
        end
      end
    end
  end
end

-- What a piece's method returned, for an error.
local function shown(v)
  if type(v) == "string" then return string.format("the string %q", v) end
  if v == nil then return "nothing" end
  return "a " .. type(v) .. " (" .. tostring(v) .. ")"
end

-- A record for an objective left on the device, with its read-back slot,
-- when this forward's loss can stay there: a model on the GPU, one rank, a
-- named objective (a function may read the logits, which the next forward
-- overwrites). nil otherwise.
function Search:_record()
  if self.model.device ~= "cuda" or self.dist or self.objective_name == "custom" then return nil end
  local n = self._nq + 1
  local r = self._records[n]
  if not r then
    r = {slot = require("sgdsa.core").cuda.readback()}
    self._records[n] = r
  end
  self._nq = n
  return r
end

-- Forward at the current params in `mode` and the objective: a number, or
-- a record whose objective is still on the device (read by _value); with
-- `keep` (the step's training forward, or the scoring forward at w when no
-- training forward runs) loss and ncorrect also become ctx.loss and
-- ctx.ncorrect, for the statistics.
function Search:_score(mode, keep)
  local ctx = self.ctx
  local out = self.model:forward(ctx.x, mode)
  local r = self:_record()
  -- only the "train" forward needs the loss gradient (the criterion skips it otherwise)
  local loss, ncorrect = self.criterion:forward(out, ctx.y, mode, r and r.slot)
  if r then
    if loss == r.slot then
      r.f = nil
      self._unread = true
      if keep then
        self._keep = r
        ctx.loss, ctx.ncorrect = nil, nil
      end
      return r
    end
    self._nq = self._nq - 1   -- a criterion that gave numbers: the slot stays free
  end
  ncorrect = ncorrect or 0
  local f
  if self.dist then
    -- the whole minibatch's: sums over the ranks (rank order, same bits everywhere)
    local n, s = ctx.n_local, self._sums
    local custom = self.objective_name == "custom"
    s[1], s[2], s[3] = loss * n, ncorrect, n
    s[4] = custom and self._objfn(loss, ncorrect, n, out, ctx.y) * n or 0
    self.dist.allsum(s)
    ctx.n = s[3]
    loss, ncorrect = s[1] / s[3], s[2]
    f = custom and s[4] / s[3] or self._objfn(loss, ncorrect, ctx.n, out, ctx.y)
  else
    f = self._objfn(loss, ncorrect, ctx.n, out, ctx.y)
  end
  if type(f) ~= "number" then
    error(string.format("search: the objective function returned %s, expected a number", shown(f)), 0)
  end
  if keep then
    ctx.loss, ctx.ncorrect = loss, ncorrect
  end
  return f
end

-- Read every objective of this step still on the device: newest first, so
-- that one wait covers them all; then f(w) and the statistics' loss go to ctx.
function Search:_read_back()
  local ctx, q = self.ctx, self._records
  for i = self._nq, 1, -1 do
    local r = q[i]
    if r.f == nil then
      local loss, ncorrect = r.slot:read()
      r.loss, r.ncorrect, r.f = loss, ncorrect, self._objfn(loss, ncorrect, ctx.n)
    end
  end
  self._unread = false
  if self._fw then ctx.f = self._fw.f end
  local k = self._keep
  if k then ctx.loss, ctx.ncorrect = k.loss, k.ncorrect end
end

-- The number of an objective from _score.
function Search:_value(f)
  if type(f) == "number" then return f end
  if f.f == nil then self:_read_back() end
  return f.f
end

-- _score's result for point t in the trial mode: t swapped in for the
-- forward and back out, also when it fails.
function Search:_score_at(t)
  local w = self.ctx.w
  w:swap_storage(t)
  local ok, f = pcall(self._score, self, self._trial_mode)
  w:swap_storage(t)
  if not ok then error(f, 0) end
  self._trial_forwards = self._trial_forwards + 1
  return f
end

--- Statistics of the current epoch (reset by epoch_start).
function Search:reset_stats()
  self.stats = {steps = 0, accepted = 0, prob_sum = 0, nonfinite = 0,
                loss_sum = 0, correct = 0, seen = 0}
end

function Search:temperature()
  local a = self.acceptance
  local T = a.temperature and a:temperature()
  return T or (0 / 0)
end

function Search:epoch_start(epoch)
  self.epoch = epoch
  self.ctx.epoch = epoch
  self:reset_stats()
  local nb, ac = self.neighborhood, self.acceptance
  if nb.epoch_start then nb:epoch_start(epoch) end
  if ac.epoch_start then ac:epoch_start(epoch) end
end

function Search:epoch_end(epoch)
  local nb, ac = self.neighborhood, self.acceptance
  if nb.epoch_end then nb:epoch_end(epoch) end
  if ac.epoch_end then ac:epoch_end(epoch) end
end

-- step()'s nil and message for a non-finite f(w).
function Search:_diverged(fw)
  return nil, string.format(
    "objective (%s) at the current point is %s (score %s) at epoch %d, step %d: the weights have diverged",
    self.objective_name, tostring(fw), self.score, self.epoch, self.ctx.step)
end

--- One step on the minibatch (x, y). Returns the step record (one table,
-- reused: copy what you keep) or nil and a message when the objective at the
-- current point is not finite (w is unchanged then; see the header for what
-- else may have moved).
function Search:step(x, y)
  local ctx, model, nb, ac = self.ctx, self.model, self.neighborhood, self.acceptance
  ctx.x, ctx.y, ctx.n = x, y, batch_size(y)
  ctx.n_local = ctx.n         -- this rank's slice; ctx.n becomes the whole minibatch's
  ctx.step = self.iter + 1
  self._nq, self._unread, self._fw, self._keep = 0, false, nil, nil
  local needs_grad = nb.needs_grad ~= false

  -- fw: a number, or a record read back below with the trial's objective
  local fw
  if self.score == "inference" then
    fw = self:_score("infer", not needs_grad)
    if needs_grad and (type(fw) ~= "number" or finite(fw)) then
      model:zero_grad()
      self:_score("train", true)
    end
  else
    if needs_grad then model:zero_grad() end
    fw = self:_score("train", true)
  end
  if type(fw) == "number" and not finite(fw) then return self:_diverged(fw) end
  if needs_grad then
    local dy = self.criterion:backward()
    local d = self.dist
    if d then
      -- this slice's share of the whole minibatch's mean loss
      if ctx.n_local ~= ctx.n then dy:mul_(ctx.n_local / ctx.n) end
      model:backward(x, dy)
      d.allsum_tensor(model.grads)
    else
      model:backward(x, dy)
    end
  end
  if self.dist and not self._sync_bn and (needs_grad or self.score ~= "inference")
     and model.buffers:numel() > 0 then
    -- the running statistics the training forward updated, per rank: averaged
    self.dist.allmean_tensor(model.buffers)
  end
  if type(fw) == "number" then
    ctx.f = fw
  else
    ctx.f, self._fw = nil, fw   -- read on access
  end

  local move, ft = nb:propose(ctx)
  if type(move) ~= "number" or (ft ~= nil and type(ft) ~= "number") then
    error(string.format("search: %s: propose(self, ctx) returned %s%s; it must return a number " ..
                        "describing the move (eta for lr_set) [, the trial's objective if it scored it]",
                        self._nb_label, shown(move), ft ~= nil and (" and " .. shown(ft)) or ""), 0)
  end
  local w, trial = ctx.w, ctx.trial
  if ft == nil and ac.evaluate ~= false then
    ft = self:_score_at(trial)
  end
  -- the one wait of the step (none left when propose read them)
  fw = self:_value(fw)
  if not finite(fw) then return self:_diverged(fw) end
  if ft ~= nil then ft = self:_value(ft) end

  local accepted, prob, nonfinite
  if ft ~= nil and not finite(ft) then
    accepted, prob, nonfinite = false, 0, true
  else
    accepted, prob = ac:decide(ctx, fw, ft or (0 / 0))
    if type(accepted) ~= "boolean" or (prob ~= nil and type(prob) ~= "number") then
      error(string.format("search: %s: decide(self, ctx, f_w, f_trial) returned %s%s; it must return " ..
                          "true or false [, the acceptance probability]", self._ac_label,
                          shown(accepted), prob ~= nil and (" and " .. shown(prob)) or ""), 0)
    end
    prob = prob or (accepted and 1 or 0)
    nonfinite = false
  end

  if accepted then
    w:swap_storage(trial)
    if nb.accepted then nb:accepted(ctx) end
  end
  ctx.f_trial = ft or (0 / 0)
  if nb.outcome then nb:outcome(ctx, accepted, move) end
  if ac.step_end then ac:step_end(ctx, accepted) end

  self.iter = ctx.step
  local st = self.stats
  st.steps = st.steps + 1
  if accepted then st.accepted = st.accepted + 1 end
  st.prob_sum = st.prob_sum + prob
  if nonfinite then st.nonfinite = st.nonfinite + 1 end
  st.loss_sum = st.loss_sum + ctx.loss * ctx.n
  st.correct = st.correct + ctx.ncorrect
  st.seen = st.seen + ctx.n

  local rec = self.rec
  rec.step, rec.epoch, rec.move = ctx.step, self.epoch, move
  rec.f_w, rec.f_trial = fw, ft or (0 / 0)
  rec.worsening = (ft or (0 / 0)) - fw
  rec.prob = prob > 1 and 1 or prob
  rec.accepted, rec.nonfinite = accepted, nonfinite
  rec.temperature = self:temperature()
  rec.loss, rec.ncorrect, rec.n = ctx.loss, ctx.ncorrect, ctx.n
  return rec
end

--- Everything the search remembers besides the weights: counters, the
-- neighborhood's and acceptance rule's memory (tensors included), the trial
-- buffer is scratch and not part of it. Plain tables of numbers, strings,
-- booleans and tensors.
function Search:state()
  local nb, ac = self.neighborhood, self.acceptance
  return {
    epoch = self.epoch, step = self.iter,
    stats = {steps = self.stats.steps, accepted = self.stats.accepted,
             prob_sum = self.stats.prob_sum, nonfinite = self.stats.nonfinite,
             loss_sum = self.stats.loss_sum, correct = self.stats.correct,
             seen = self.stats.seen},
    neighborhood = nb.state and nb:state(self.ctx) or {},
    acceptance = ac.state and ac:state() or {},
  }
end

function Search:set_state(st)
  if type(st) ~= "table" then error("search:set_state: expected a table, got " .. type(st), 2) end
  self.epoch, self.iter = math.tointeger(st.epoch) or st.epoch, math.tointeger(st.step) or st.step
  self.ctx.epoch, self.ctx.step = self.epoch, self.iter
  for k, v in pairs(st.stats or {}) do self.stats[k] = v end
  local nb, ac = self.neighborhood, self.acceptance
  if nb.set_state then nb:set_state(st.neighborhood or {}, self.ctx) end
  if ac.set_state then ac:set_state(st.acceptance or {}) end
end

-- The summary the REPL prints: where the search is, its pieces and this
-- epoch's counts.
function Search:__tostring()
  local st = self.stats
  local T = self:temperature()
  return string.format("sgdsa.search: epoch %d, step %d%s\n  %s, %s\n  objective %s, score %s\n" ..
                       "  this epoch: %d steps, %d accepted, %d non-finite trials",
                       self.epoch, self.iter, T == T and (", T = " .. optim.format(T)) or "",
                       self._nb_label, self._ac_label, self.objective_name, self.score,
                       st.steps, st.accepted, st.nonfinite)
end
Search.__name = "sgdsa.search"

--- Number of trial forwards run so far (cost accounting in tests/benchmarks).
function Search:trial_forwards() return self._trial_forwards end

return M
