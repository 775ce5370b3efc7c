-- late_acceptance: late acceptance hill climbing (Burke & Bykov, 2017).
-- Keep the objective values of the current point over the last L steps;
-- accept a move iff f(trial) <= f(w) or f(trial) <= the value L steps ago.
-- The history starts filled with the first objective seen.
--   optim.late_acceptance{L = 50}
-- The history and its position are part of the search state.
local options = require "sgdsa.options"

return function(o)
  options.check_table(o, {"L"}, "optim.late_acceptance")
  local L = o.L
  if math.type(L) ~= "integer" or L < 1 then
    error("optim.late_acceptance: L must be a positive integer, got " .. tostring(L), 2)
  end
  local ac = {name = "late_acceptance", L = L, hist = {}, pos = 0, filled = false}
  function ac.decide(self, _, fw, ft)
    if not self.filled then
      for i = 1, L do self.hist[i] = fw end
      self.filled = true
    end
    local v = self.pos % L + 1
    local ok = ft <= fw or ft <= self.hist[v]
    self.hist[v] = ok and ft or fw       -- the objective of the point kept
    self.pos = v
    return ok, ok and 1 or 0
  end
  function ac.state(self)
    return {hist = self.filled and self.hist or {}, pos = self.pos, filled = self.filled}
  end
  function ac.set_state(self, st)
    self.hist, self.pos, self.filled = {}, st.pos or 0, st.filled and true or false
    for i, v in ipairs(st.hist or {}) do self.hist[i] = v end
  end
  return ac
end
