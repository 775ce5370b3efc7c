-- always: accept every move (plain SGD when the neighborhood is lr_schedule).
-- No trial forward is run: the move is taken as in a plain SGD loop.
--   optim.always{}
local options = require "sgdsa.options"

return function(o)
  options.check_table(o or {}, {}, "optim.always")
  return {
    name = "always",
    evaluate = false,
    decide = function() return true, 1 end,
  }
end
