-- momentum: heavy-ball moves with (eta, mu) drawn from a set H of pairs.
-- The velocity is v' = mu*v + g and the trial is w - eta*v'. The velocity is
-- kept only when the move is accepted (v := v', a storage swap), so a
-- rejected move leaves no trace. The logged move is eta.
--   optim.momentum{H = {{0.1, 0.9}, {0.05, 0.9}, {0.1, 0}}}
-- The velocity is part of the search state (saved in checkpoints: one value
-- per parameter, the model's alignment gaps left out by model:pack, so that
-- the file does not depend on the layout).
local optim = require "sgdsa.optim"
local options = require "sgdsa.options"

local M = {}

function M.check_pairs(H, who)
  if type(H) ~= "table" or #H == 0 then
    error(who .. ": H must be a non-empty list of {eta, mu} pairs", 3)
  end
  for i, p in ipairs(H) do
    if type(p) ~= "table" then error(string.format("%s: H[%d] must be a pair {eta, mu}", who, i), 3) end
    optim.positive(p[1], "eta of H[" .. i .. "]", who)
    if type(p[2]) ~= "number" or p[2] < 0 or p[2] >= 1 then
      error(string.format("%s: mu of H[%d] must be in [0, 1), got %s", who, i, tostring(p[2])), 3)
    end
  end
  return H
end

-- Shared by momentum and nesterov: `fill(ctx, eta, mu, v, vnew)` writes
-- ctx.trial from the new velocity.
function M.make(name, o, fill)
  options.check_table(o, {"H"}, "optim." .. name)
  local H = M.check_pairs(o.H, "optim." .. name)
  local n = #H
  local nb = {name = name, H = H}
  function nb.propose(_, ctx)
    local p = H[ctx.rng:random(n)]
    local eta, mu = p[1], p[2]
    local v, vnew = ctx:buffer("velocity"), ctx:buffer("velocity_new")
    vnew:add_scaled_(ctx.g, mu, v)            -- v' = g + mu*v
    fill(ctx, eta, mu, vnew)
    return eta
  end
  function nb.accepted(_, ctx)
    ctx:buffer("velocity"):swap_storage(ctx:buffer("velocity_new"))
  end
  function nb.state(_, ctx)
    local v, m = ctx:buffer("velocity"), ctx.model
    return {velocity = m.pack and m:pack(v) or v}
  end
  function nb.set_state(_, st, ctx)
    local v, m, s = ctx:buffer("velocity"), ctx.model, st.velocity
    if not s then return end
    if m.unpack and s:numel() ~= v:numel() then
      m:unpack(s, v)
    else
      v:copy(s)
    end
  end
  return nb
end

return setmetatable(M, {__call = function(_, o)
  return M.make("momentum", o, function(ctx, eta, _, vnew)
    ctx.trial:add_scaled_(ctx.w, -eta, vnew)   -- w - eta*v'
  end)
end})
