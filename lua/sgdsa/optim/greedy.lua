-- greedy: accept a move iff it does not worsen the objective on the
-- minibatch (f(trial) <= f(w)): the zero-temperature limit of Metropolis.
--   optim.greedy{}
local optim = require "sgdsa.optim"

return function(o)
  optim.check_keys(o or {}, {}, "optim.greedy")
  return {
    name = "greedy",
    decide = function(_, _, fw, ft)
      local ok = ft <= fw
      return ok, ok and 1 or 0
    end,
  }
end
