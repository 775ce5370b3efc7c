-- lr_set: the paper's neighborhood (Algorithm 2, steps 7-8). Pick eta
-- uniformly from the set H with the `search` stream and propose
-- trial = w - eta * g. The logged move is eta.
--   optim.lr_set{H = {0.9, 0.5, 0.1}}
local optim = require "sgdsa.optim"
local options = require "sgdsa.options"

return function(o)
  options.check_table(o, {"H"}, "optim.lr_set")
  local H = o.H
  if type(H) ~= "table" or #H == 0 then
    error("optim.lr_set: H must be a non-empty list of learning rates, got " .. tostring(H), 2)
  end
  local etas = {}
  for i, eta in ipairs(H) do etas[i] = optim.positive(eta, "H[" .. i .. "]", "optim.lr_set") end
  local n = #etas
  return {
    name = "lr_set",
    H = etas,
    propose = function(_, ctx)
      local eta = etas[ctx.rng:random(n)]
      ctx.trial:add_scaled_(ctx.w, -eta, ctx.g)
      return eta
    end,
  }
end
