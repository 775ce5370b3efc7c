-- metropolis: the simulated-annealing acceptance test (Metropolis'
-- formula, eq. (1) of the paper). With worsening d = f(trial) - f(w):
--   prob = 1 if d <= 0, else exp(-d / T);  accept iff u < prob,
-- u uniform in [0, 1) from the `search` stream (drawn at every step, as in
-- Algorithm 2, so the stream advances the same way whatever the outcome).
-- Cooling T = max(T_min, alpha * T) after every epoch (cooling = "epoch",
-- the paper's Algorithm 2) or after every step (cooling = "step",
-- Algorithm 1); T_min defaults to 0 (no floor; the authors' code floors at
-- 1e-14 for SGD-SA and 1e-10 for SSA, optim.sgdsa's and optim.ssa's
-- defaults); with reheat = R the temperature goes back to T0 every R epochs.
--   optim.metropolis{T0 = 1, alpha = 0.8, T_min = 1e-14}
local optim = require "sgdsa.optim"
local options = require "sgdsa.options"

local exp = math.exp

return function(o)
  options.check_table(o, {"T0", "alpha", "T_min", "cooling", "reheat"}, "optim.metropolis")
  local who = "optim.metropolis"
  local T0 = optim.positive(o.T0 or 1, "T0", who)
  local T_min = o.T_min or 0
  if type(T_min) ~= "number" or not (T_min >= 0 and T_min < T0) then
    error(string.format("%s: T_min must be a number in [0, T0), got %s", who, tostring(T_min)), 2)
  end
  local alpha, cooling = optim.cooling(o, who)
  local reheat = o.reheat
  if reheat ~= nil and (math.type(reheat) ~= "integer" or reheat < 1) then
    error(who .. ": reheat must be a positive integer number of epochs, got " .. tostring(reheat), 2)
  end
  local ac = {name = "metropolis", T = T0, T0 = T0, T_min = T_min, alpha = alpha,
              cooling = cooling, reheat = reheat}
  local function cool(T)
    T = T * alpha
    return T < T_min and T_min or T
  end

  --- The probability of accepting a worsening d at temperature T.
  function ac.probability(self, d)
    if d ~= d then return 0 end
    if d <= 0 then return 1 end
    return exp(-d / self.T)
  end

  function ac.decide(self, ctx, fw, ft)
    local p = self:probability(ft - fw)
    local u = ctx.rng:uniform()
    return u < p, p
  end

  function ac.temperature(self) return self.T end

  function ac.step_end(self)
    if cooling == "step" then self.T = cool(self.T) end
  end

  function ac.epoch_end(self, epoch)
    if cooling == "epoch" then self.T = cool(self.T) end
    if reheat and epoch % reheat == 0 then self.T = T0 end
  end

  function ac.state(self) return {T = self.T} end
  function ac.set_state(self, st) if st.T then self.T = st.T end end
  return ac
end
