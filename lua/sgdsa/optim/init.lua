-- sgdsa.optim: the pluggable pieces of the search loop and the optimizers
-- built from them.
--
-- A neighborhood is a table with
--   propose(self, ctx) -> move [, f_trial]   fill ctx.trial with a trial point;
--       `move` is a number describing it (eta for lr_set) for the step log;
--       return f_trial only if the piece already scored ctx.trial itself
--       (ctx:evaluate), else the search loop scores it;
--   optional: needs_grad = false (derivative-free: no backward is run),
--   accepted(self, ctx) (after an accepted move; ctx.trial then holds the old
--   w), outcome(self, ctx, accepted, move) (after every decision),
--   epoch_start(self, epoch), epoch_end(self, epoch),
--   state(self, ctx) -> table, set_state(self, st, ctx).
-- An acceptance rule is a table with
--   decide(self, ctx, f_w, f_trial) -> accepted, prob   (accepted true or
--       false; prob in [0, 1] for the log, or nil; f_trial is never NaN/inf
--       here: those are rejected before);
--   optional: evaluate = false (no trial forward needed: plain SGD),
--   temperature(self), epoch_start/epoch_end(self, epoch),
--   step_end(self, ctx, accepted), state(self) -> table, set_state(self, st).
-- A `name` field names the piece in logs and errors. Other functions (helpers
-- of its own) and fields (its memory) are the piece's business.
-- A plain function is accepted for either: function(ctx) -> move [, f_trial]
-- for a neighborhood, function(ctx, f_w, f_trial) -> accepted, prob for an
-- acceptance rule; ctx.state is then a table the function owns (kept in
-- checkpoints when it holds numbers, strings, booleans and tensors).
--
-- Pieces are checked when the optimizer is built (optimizer{}, and again
-- by sgdsa.search.new): the required method, hooks that are not functions,
-- flags that are not booleans, and functions whose name is near a hook's
-- (`epoch_ned`: did you mean epoch_end?) are errors naming the piece. The
-- search loop checks what they return at every step (a move that is not a
-- number, an `accepted` that is not a boolean, an objective function that
-- returns no number: an error naming the piece and the method), and before
-- the first step runs each piece's state() through what a checkpoint stores
-- and gives it back to set_state() (a function or a userdata in the state is
-- an error then, not after the first epoch).
--
-- The context (ctx): model, w (= model.params), g (= model.grads), trial
-- (the trial buffer), rng, epoch, step, x, y, n, f (objective at w), f_trial
-- (the decided trial's objective, set before outcome), loss, and
-- ctx:evaluate(t [, t2, ...]) (the objectives of several points scored with
-- one wait on the GPU: score them in one call), ctx:buffer(name).
--
-- ctx.rng is the run's `search` stream (an sgdsa.Generator: seeded by the
-- run's seed, saved in checkpoints, so a resumed run draws the same numbers).
-- Draw every random choice of a piece from it:
--   ctx.rng:random()          a float uniform in [0, 1)      (as math.random)
--   ctx.rng:random(n)         an integer uniform in 1..n
--   ctx.rng:random(m, n)      an integer uniform in m..n
--   ctx.rng:uniform([a, b])   a float uniform in [a, b) (default [0, 1))
--   ctx.rng:normal([m, s])    a normal draw (default mean 0, sd 1)
--   t:uniform_(a, b, ctx.rng), t:normal_(m, s, ctx.rng)   fill a tensor
-- (math.random is not saved in checkpoints: a piece drawing from it does not
-- resume bit-identically.)
--
-- Optimizers: sgdsa{H=, T0=, alpha=} (the paper's SGD-SA), sgd{lr= | schedule=}
-- (Scheduled-SGD), ssa{eps=, T0=, alpha=} (section 2.1), and
-- optimizer{neighborhood=, acceptance=, objective=, score=} for any
-- combination. objective ("loss", "loss/batch", "error" or a function) and
-- score ("train" or "inference") are the search loop's (lua/sgdsa/search.lua).
-- Each returns {neighborhood=, acceptance=, objective=, score=, kind=, args=} with
-- opt:with{key=value} giving a copy built with changed arguments (the
-- trainer's `optim.T0=0.5` overrides); tostring(opt) is a summary.
local options = require "sgdsa.options"

local M = {}

--- A positive number option, with a clear error.
function M.positive(v, name, who)
  if type(v) ~= "number" or not (v > 0) or v == math.huge then
    error(string.format("%s: %s must be a positive number, got %s", who, name, tostring(v)), 3)
  end
  return v
end

--- The cooling options of the annealed acceptance rules (metropolis,
-- threshold): the factor alpha in (0, 1] (default 0.8) and when it applies,
-- cooling = "epoch" (default) or "step". Returns alpha, cooling.
function M.cooling(o, who)
  local alpha = o.alpha or 0.8
  if type(alpha) ~= "number" or not (alpha > 0 and alpha <= 1) then
    error(who .. ": alpha must be in (0, 1], got " .. tostring(alpha), 3)
  end
  local cooling = o.cooling or "epoch"
  if cooling ~= "epoch" and cooling ~= "step" then
    error(who .. ": cooling must be \"epoch\" or \"step\", got " .. tostring(cooling), 3)
  end
  return alpha, cooling
end

local pieces = {
  -- neighborhoods
  lr_set = "sgdsa.optim.lr_set", lr_schedule = "sgdsa.optim.lr_schedule",
  random_direction = "sgdsa.optim.random_direction", momentum = "sgdsa.optim.momentum",
  nesterov = "sgdsa.optim.nesterov", best_of_k = "sgdsa.optim.best_of_k",
  -- acceptance rules
  metropolis = "sgdsa.optim.metropolis", always = "sgdsa.optim.always",
  greedy = "sgdsa.optim.greedy", threshold = "sgdsa.optim.threshold",
  late_acceptance = "sgdsa.optim.late_acceptance",
}
M.pieces = pieces

-- A piece's text: its constructor and options (metropolis{T0=1, alpha=0.8}).
local PIECE = {__name = "sgdsa.optim piece"}
function PIECE.__tostring(p) return M.format(p) end

-- Built-in pieces load on first use. Each piece they build remembers how
-- (piece.rebuild(), piece.kind, piece.options), so that an optimizer can be
-- rebuilt with fresh state or changed options.
setmetatable(M, {__complete = pieces, __index = function(t, k)
  local mod = pieces[k]
  if mod then
    local ctor = require(mod)
    local v = function(o)
      local piece = ctor(o)
      piece.rebuild = function() return ctor(o) end
      piece.kind = k
      piece.options = o
      if getmetatable(piece) == nil then setmetatable(piece, PIECE) end
      return piece
    end
    rawset(t, k, v)
    return v
  end
end})

-- ---- checking pieces --------------------------------------------------------------

local HOOKS = {
  neighborhood = {required = "propose", signature = "propose(self, ctx)",
                  hooks = {"propose", "accepted", "outcome", "epoch_start", "epoch_end", "state",
                           "set_state"},
                  flags = {needs_grad = true}},
  acceptance = {required = "decide", signature = "decide(self, ctx, f_w, f_trial)",
                hooks = {"decide", "temperature", "epoch_start", "epoch_end", "step_end", "state",
                         "set_state"},
                flags = {evaluate = true}},
}
local OTHER = {neighborhood = "acceptance", acceptance = "neighborhood"}
local ARTICLE = {neighborhood = "a neighborhood", acceptance = "an acceptance rule"}

--- How a piece is named in errors: "neighborhood 'tabu_lr_set'", or where
-- its function is defined ("acceptance function (script.lua:12)").
function M.piece_label(p, role)
  local name = type(p) == "table" and rawget(p, "name")
  local fn = type(p) == "table" and (rawget(p, "fn") or rawget(p, HOOKS[role].required))
  if type(name) == "string" and name ~= "function" then
    return string.format("%s '%s'", role, name)
  end
  if type(fn) == "function" then
    local info = debug.getinfo(fn, "S")
    return string.format("%s %s (%s:%d)", role, name == "function" and "function" or "(no name)",
                         info.short_src, info.linedefined)
  end
  return role
end

-- Error unless table p is a well-formed piece of `role` ("neighborhood" or
-- "acceptance"); `who` names the caller, `level` is error()'s.
local function check_piece(p, role, who, level)
  local spec = HOOKS[role]
  local is_hook, all = {}, {}
  for _, h in ipairs(spec.hooks) do is_hook[h] = true; all[#all + 1] = h end
  for f in pairs(spec.flags) do all[#all + 1] = f end
  local label = M.piece_label(p, role)
  local function fail(fmt, ...)
    error(string.format("%s: %s: " .. fmt, who, label, ...), level + 1)
  end
  if type(p[spec.required]) ~= "function" then
    local keys = {}
    for k in pairs(p) do if type(k) == "string" then keys[#keys + 1] = k end end
    local near = options.similar(spec.required, keys)
    fail("%s has no %s method%s", ARTICLE[role], spec.signature,
         #near > 0 and string.format(" (it has %s: a misspelt %s?)", near[1], spec.required) or "")
  end
  for k, v in pairs(p) do
    if type(k) == "string" then
      if is_hook[k] and type(v) ~= "function" then
        fail("%s must be a function (self, ...), got %s", k, type(v))
      elseif spec.flags[k] and type(v) ~= "boolean" then
        fail("%s must be true or false, got %s", k, tostring(v))
      elseif type(v) == "function" and not is_hook[k] and k ~= "rebuild" then
        local other = HOOKS[OTHER[role]]
        local theirs = false
        for _, h in ipairs(other.hooks) do if h == k then theirs = true end end
        if theirs then
          fail("%s is a method of %s, not of %s (the %s hooks: %s)", k, ARTICLE[OTHER[role]],
               ARTICLE[role], role, table.concat(spec.hooks, ", "))
        end
        local far = math.max(1, #k // 4)
        if #options.similar(k, all, far) > 0 then
          fail("unknown hook %q (the %s hooks: %s)%s", k, role, table.concat(spec.hooks, ", "),
               options.did_you_mean(k, all))
        end
      end
    end
  end
end
M.check_piece = check_piece

-- A plain function as a piece: its method (propose or decide) calls
-- fn(ctx, ...) with ctx.state set to the piece's own table, which
-- checkpoints keep (state, set_state).
local function function_piece(fn, method)
  local p = {name = "function", fn = fn, _state = {}}
  p[method] = function(self, ctx, ...)
    local saved = ctx.state
    ctx.state = self._state
    local a, b = fn(ctx, ...)
    ctx.state = saved
    return a, b
  end
  function p.state(self) return self._state end
  function p.set_state(self, st) self._state = st end
  return p
end

-- A piece (a table, or a plain function wrapped by function_piece) of a
-- role, checked; else an error naming what a piece of that role must be.
local ROLES = {
  neighborhood = {method = "propose", noun = "a neighborhood",
                  what = "a function(ctx) or a table with propose(self, ctx)"},
  acceptance = {method = "decide", noun = "an acceptance rule",
                what = "a function(ctx, f_w, f_trial) or a table with decide(self, ctx, f_w, f_trial)"},
}
local function as_piece(p, role, who)
  who = who or "optim"
  if type(p) == "function" then p = function_piece(p, ROLES[role].method) end
  if type(p) ~= "table" then
    error(string.format("%s: %s must be %s, got %s", who, ROLES[role].noun, ROLES[role].what, type(p)), 4)
  end
  check_piece(p, role, who, 4)
  return p
end

--- A neighborhood: a table, or a plain function (its private state is ctx.state).
function M.as_neighborhood(nb, who) return (as_piece(nb, "neighborhood", who)) end

--- An acceptance rule: a table, or a plain function (its private state is ctx.state).
function M.as_acceptance(ac, who) return (as_piece(ac, "acceptance", who)) end

-- An optimizer object remembers how it was built so that it can be rebuilt
-- with changed arguments.
local Optimizer = {}
Optimizer.__index = Optimizer

-- opt:with{key = value}: the same optimizer built again with changed
-- arguments and fresh state (opt:with{} is a fresh copy; the trainer starts
-- every run from one). Built-in pieces given to optimizer{} are rebuilt too;
-- user-written piece tables are shared (give functions to get fresh state).
function Optimizer:with(changes)
  local args = {}
  for k, v in pairs(self.args) do
    if type(v) == "table" and type(v.rebuild) == "function" then v = v.rebuild() end
    args[k] = v
  end
  for k, v in pairs(changes) do args[k] = v end
  return M[self.kind](args)
end

-- A compact, deterministic text of an option value (for logs and configs).
local function fmt(v)
  if type(v) == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    local short = string.format("%.15g", v)
    return tonumber(short) == v and short or string.format("%.17g", v)
  end
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "function" then return "<function>" end
  if type(v) ~= "table" then return tostring(v) end
  local parts = {}
  for _, x in ipairs(v) do parts[#parts + 1] = fmt(x) end
  local keys = {}
  for k in pairs(v) do
    if not (math.type(k) == "integer" and k >= 1 and k <= #v) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  if v.name and v.options then return v.name .. fmt(v.options) end
  if v.name and (v.propose or v.decide) then return tostring(v.name) end
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. fmt(v[k]) end
  return "{" .. table.concat(parts, ", ") .. "}"
end
M.format = fmt

function Optimizer:describe()
  return self.kind .. fmt(self.args)
end

-- A piece as the summary shows it: its constructor and options, or where
-- its function is defined.
local function piece_text(p, role)
  if rawget(p, "fn") then return (M.piece_label(p, role):gsub("^%S+ ", "")) end
  return fmt(p)
end

-- The summary the REPL prints: what it was built from, its two pieces, the
-- temperature when the rule has one, the objective and the scoring.
function Optimizer:__tostring()
  local ac = self.acceptance
  local T = type(ac.temperature) == "function" and ac:temperature() or nil
  local obj = type(self.objective) == "function" and "a function" or tostring(self.objective)
  return string.format("sgdsa.optim.%s\n  neighborhood  %s\n  acceptance    %s%s\n  objective %s, score %s",
                       self:describe(), piece_text(self.neighborhood, "neighborhood"),
                       piece_text(ac, "acceptance"),
                       type(T) == "number" and ("  (T = " .. fmt(T) .. ")") or "", obj, self.score)
end
Optimizer.__name = "sgdsa.optim optimizer"

local scores = {train = true, inference = true}

local function make(kind, args, nb, ac, objective, score)
  if score ~= nil and not scores[score] then
    error(string.format("optim.%s: score must be \"inference\" or \"train\", got %s", kind,
                        tostring(score)), 3)
  end
  return setmetatable({kind = kind, args = args, neighborhood = nb, acceptance = ac,
                       objective = objective or "loss", score = score or "train"}, Optimizer)
end

--- The paper's SGD-SA (Algorithm 2): eta uniform from H, Metropolis test,
-- T = alpha*T after each epoch, never below T_min. Options: H, T0 (1),
-- alpha (0.8), T_min (1e-14, the authors' floor), cooling ("epoch" |
-- "step"), reheat (epochs, optional), objective, score.
function M.sgdsa(o)
  options.check_table(o, {"H", "T0", "alpha", "T_min", "cooling", "reheat", "objective", "score"},
               "optim.sgdsa")
  return make("sgdsa", o, M.lr_set{H = o.H},
              M.metropolis{T0 = o.T0 or 1, alpha = o.alpha or 0.8, T_min = o.T_min or 1e-14,
                           cooling = o.cooling, reheat = o.reheat},
              o.objective, o.score)
end

--- Scheduled-SGD: w - lr(epoch)*g, always accepted, no trial forward.
-- Options: lr (a constant) or schedule ({{epochs, lr}, ...} or function(epoch)).
function M.sgd(o)
  options.check_table(o, {"lr", "schedule"}, "optim.sgd")
  return make("sgd", o, M.lr_schedule{lr = o.lr, schedule = o.schedule}, M.always{})
end

--- SSA (section 2.1): w -/+ eps*Delta with a random Delta, the better of the
-- two, Metropolis test, T never below T_min. Options: eps, eps_bound and
-- eps_divisor (the authors' rule: eps = eps / eps_divisor after an epoch in
-- which fewer than eps_bound of the steps improved; off unless eps_bound is
-- given), T0 (1), alpha (0.97), T_min (1e-10, the authors' floor), cooling
-- ("epoch" | "step"; the paper cools per epoch here too), objective, score.
function M.ssa(o)
  options.check_table(o, {"eps", "eps_bound", "eps_divisor", "T0", "alpha", "T_min", "cooling",
                   "reheat", "objective", "score"}, "optim.ssa")
  return make("ssa", o, M.random_direction{eps = o.eps, eps_bound = o.eps_bound,
                                           eps_divisor = o.eps_divisor},
              M.metropolis{T0 = o.T0 or 1, alpha = o.alpha or 0.97, T_min = o.T_min or 1e-10,
                           cooling = o.cooling, reheat = o.reheat},
              o.objective, o.score)
end

--- Any combination: optimizer{neighborhood=, acceptance=, objective=, score=}.
function M.optimizer(o)
  options.check_table(o, {"neighborhood", "acceptance", "objective", "score"}, "optim.optimizer")
  if o.neighborhood == nil then
    error("optim.optimizer: no neighborhood (give neighborhood = optim.lr_set{H = {...}}, " ..
          "a table with propose(self, ctx) or a function(ctx))", 2)
  end
  if o.acceptance == nil then
    error("optim.optimizer: no acceptance rule (give acceptance = optim.metropolis{...}, " ..
          "a table with decide(self, ctx, f_w, f_trial) or a function(ctx, f_w, f_trial))", 2)
  end
  if o.objective ~= nil and type(o.objective) ~= "function" and type(o.objective) ~= "string" then
    error("optim.optimizer: objective must be \"loss\", \"loss/batch\", \"error\" or a function, got "
          .. type(o.objective), 2)
  end
  return make("optimizer", o, M.as_neighborhood(o.neighborhood, "optim.optimizer"),
              M.as_acceptance(o.acceptance, "optim.optimizer"), o.objective, o.score)
end

return M
