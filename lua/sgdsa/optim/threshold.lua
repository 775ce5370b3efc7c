-- threshold: threshold accepting (Dueck & Scheuer, 1990). Accept a move iff
-- its worsening is below the threshold tau: f(trial) - f(w) < tau; the
-- threshold is lowered like a temperature, tau = alpha * tau, per epoch
-- (cooling = "epoch") or per step (cooling = "step").
--   optim.threshold{tau0 = 0.1, alpha = 0.8}
local optim = require "sgdsa.optim"
local options = require "sgdsa.options"

return function(o)
  options.check_table(o, {"tau0", "alpha", "cooling"}, "optim.threshold")
  local who = "optim.threshold"
  local tau0 = optim.positive(o.tau0, "tau0", who)
  local alpha, cooling = optim.cooling(o, who)
  local ac = {name = "threshold", tau = tau0}
  function ac.decide(self, _, fw, ft)
    local ok = ft - fw < self.tau
    return ok, ok and 1 or 0
  end
  function ac.temperature(self) return self.tau end
  function ac.step_end(self) if cooling == "step" then self.tau = self.tau * alpha end end
  function ac.epoch_end(self) if cooling == "epoch" then self.tau = self.tau * alpha end end
  function ac.state(self) return {tau = self.tau} end
  function ac.set_state(self, st) if st.tau then self.tau = st.tau end end
  return ac
end
