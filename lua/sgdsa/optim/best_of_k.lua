-- best_of_k: draw k proposals from an inner neighborhood (default: lr_set
-- over H), score each on the minibatch and propose the best one. Costs k
-- trial forwards; the acceptance rule then judges the best against w.
--   optim.best_of_k{k = 3, H = {0.5, 0.1, 0.05}}
--   optim.best_of_k{k = 4, neighborhood = optim.random_direction{eps = 0.01}}
-- The inner neighborhood must keep no memory of accepted moves (no
-- `accepted` hook: momentum would not know which draw was kept).
local optim = require "sgdsa.optim"
local options = require "sgdsa.options"

return function(o)
  options.check_table(o, {"k", "H", "neighborhood"}, "optim.best_of_k")
  local who = "optim.best_of_k"
  local k = o.k
  if math.type(k) ~= "integer" or k < 1 then
    error(who .. ": k must be a positive integer, got " .. tostring(k), 2)
  end
  if (o.H == nil) == (o.neighborhood == nil) then
    error(who .. ": give exactly one of H and neighborhood", 2)
  end
  local inner = o.neighborhood and optim.as_neighborhood(o.neighborhood) or optim.lr_set{H = o.H}
  if inner.accepted then
    error(who .. ": the inner neighborhood '" .. tostring(inner.name) .. "' keeps memory of accepted moves and cannot be used here", 2)
  end
  local nb = {name = "best_of_k", needs_grad = inner.needs_grad}
  function nb.propose(_, ctx)
    local best = ctx.trial
    local cand = ctx:buffer("best_of_k")
    local fbest, mbest = nil, nil
    for i = 1, k do
      ctx.trial = (i == 1) and best or cand
      local m, f = inner:propose(ctx)
      if f == nil then f = ctx:evaluate(ctx.trial) end
      if i == 1 then
        fbest, mbest = f, m
      elseif f < fbest or (fbest ~= fbest and f == f) then
        best:swap_storage(cand)
        fbest, mbest = f, m
      end
    end
    ctx.trial = best
    return mbest, fbest
  end
  function nb.epoch_start(_, e) if inner.epoch_start then inner:epoch_start(e) end end
  function nb.state(_, ctx) return inner.state and inner:state(ctx) or {} end
  function nb.set_state(_, st, ctx) if inner.set_state then inner:set_state(st, ctx) end end
  return nb
end
