-- greedy: accept a move iff it does not worsen the objective on the
-- minibatch (f(trial) <= f(w)): the zero-temperature limit of Metropolis.
--   optim.greedy{}
local options = require "sgdsa.options"

return function(o)
  options.check_table(o or {}, {}, "optim.greedy")
  return {
    name = "greedy",
    decide = function(_, _, fw, ft)
      local ok = ft <= fw
      return ok, ok and 1 or 0
    end,
  }
end
