-- nesterov: Nesterov moves with (eta, mu) drawn from a set H of pairs, in
-- the form PyTorch uses: v' = mu*v + g, trial = w - eta*(g + mu*v'). As for
-- momentum, the velocity is kept only for accepted moves.
--   optim.nesterov{H = {{0.1, 0.9}, {0.05, 0.9}}}
local momentum = require "sgdsa.optim.momentum"

return function(o)
  return momentum.make("nesterov", o, function(ctx, eta, mu, vnew)
    ctx.trial:add_scaled_(ctx.w, -eta, ctx.g)  -- w - eta*g
    ctx.trial:axpy_(-eta * mu, vnew)           --   - eta*mu*v'
  end)
end
