-- random_direction: the naive SSA move of section 2.1. Draw a random
-- direction Delta (standard normal per weight, from the `search` stream),
-- score w' = w - eps*Delta and w'' = w + eps*Delta on the minibatch and
-- propose the better of the two (w'' on a tie, as the authors' code keeps
-- its second point). Derivative-free: no backward is run. The logged move is
-- -1 (w') or +1 (w''). Costs two trial forwards.
--
-- The authors' eps rule (QuasarLight/sgd-sa, train_ssa): with eps_bound = b
-- given, an epoch in which fewer than a fraction b of the steps were
-- improving moves (f(trial) <= f(w)) ends with eps = eps / eps_divisor
-- (default 10). eps, and the epoch's counts, are part of the search state.
--   optim.random_direction{eps = 0.01, eps_bound = 0.6, eps_divisor = 10}
local optim = require "sgdsa.optim"
local options = require "sgdsa.options"

return function(o)
  options.check_table(o, {"eps", "eps_bound", "eps_divisor"}, "optim.random_direction")
  local who = "optim.random_direction"
  local eps0 = optim.positive(o.eps, "eps", who)
  local bound = o.eps_bound
  if bound ~= nil and (type(bound) ~= "number" or not (bound >= 0 and bound <= 1)) then
    error(who .. ": eps_bound must be a fraction in [0, 1], got " .. tostring(bound), 2)
  end
  local divisor = o.eps_divisor or 10
  if type(divisor) ~= "number" or not (divisor > 1 and divisor < math.huge) then
    error(who .. ": eps_divisor must be a number above 1, got " .. tostring(divisor), 2)
  end
  return {
    name = "random_direction",
    needs_grad = false,
    eps = eps0,
    improving = 0,   -- this epoch's steps with f(trial) <= f(w)
    steps = 0,       -- this epoch's steps
    propose = function(self, ctx)
      local eps = self.eps
      local delta = ctx:buffer("delta")
      local other = ctx:buffer("other")
      delta:normal_(0, 1, ctx.rng)
      ctx.trial:add_scaled_(ctx.w, -eps, delta)
      other:add_scaled_(ctx.w, eps, delta)
      local fminus, fplus = ctx:evaluate(ctx.trial, other)   -- read back together
      -- NaN compares false: a finite side always wins over a NaN side.
      if fplus <= fminus or (fminus ~= fminus and fplus == fplus) then
        ctx.trial:swap_storage(other)
        return 1, fplus
      end
      return -1, fminus
    end,
    outcome = function(self, ctx)
      self.steps = self.steps + 1
      if ctx.f_trial <= ctx.f then self.improving = self.improving + 1 end
    end,
    epoch_start = function(self)
      self.improving, self.steps = 0, 0
    end,
    epoch_end = function(self)
      if bound and self.steps > 0 and self.improving / self.steps < bound then
        self.eps = self.eps / divisor
      end
    end,
    state = function(self)
      return {eps = self.eps, improving = self.improving, steps = self.steps}
    end,
    set_state = function(self, st)
      self.eps = st.eps or self.eps
      self.improving, self.steps = st.improving or 0, st.steps or 0
    end,
  }
end
