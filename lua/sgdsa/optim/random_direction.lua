-- random_direction: the naive SSA move of section 2.1. Draw a random
-- direction Delta (standard normal per weight, from the `search` stream),
-- score w' = w - eps*Delta and w'' = w + eps*Delta on the minibatch and
-- propose the better of the two. Derivative-free: no backward is run.
-- The logged move is -1 (w') or +1 (w''). Costs two trial forwards.
--   optim.random_direction{eps = 0.01}
local optim = require "sgdsa.optim"

return function(o)
  optim.check_keys(o, {"eps"}, "optim.random_direction")
  local eps = optim.positive(o.eps, "eps", "optim.random_direction")
  return {
    name = "random_direction",
    needs_grad = false,
    propose = function(_, ctx)
      local delta = ctx:buffer("delta")
      local other = ctx:buffer("other")
      delta:normal_(0, 1, ctx.rng)
      ctx.trial:add_scaled_(ctx.w, -eps, delta)
      local fminus = ctx:evaluate(ctx.trial)
      other:add_scaled_(ctx.w, eps, delta)
      local fplus = ctx:evaluate(other)
      -- NaN compares false: a finite side always wins over a NaN side.
      if fplus < fminus or (fminus ~= fminus and fplus == fplus) then
        ctx.trial:swap_storage(other)
        return 1, fplus
      end
      return -1, fminus
    end,
  }
end
