-- lr_schedule: Scheduled-SGD's move, trial = w - lr(epoch) * g, with a
-- piecewise-constant learning rate by epoch. With the `always` acceptance
-- rule this is exactly plain SGD (and no trial forward is run).
--   optim.lr_schedule{lr = 0.01}
--   optim.lr_schedule{schedule = {{30, 0.1}, {40, 0.01}, {30, 0.001}}}  -- {epochs, lr}
--   optim.lr_schedule{schedule = function(epoch) return 0.1 * 0.5 ^ (epoch // 10) end}
-- After the last piece of a list the last learning rate stays in force.
local optim = require "sgdsa.optim"
local options = require "sgdsa.options"

local function lookup(pieces, epoch)
  local upto = 0
  for _, p in ipairs(pieces) do
    upto = upto + p[1]
    if epoch <= upto then return p[2] end
  end
  return pieces[#pieces][2]
end

return function(o)
  options.check_table(o, {"lr", "schedule"}, "optim.lr_schedule")
  local who = "optim.lr_schedule"
  local sched = o.schedule
  if (o.lr == nil) == (sched == nil) then
    error(who .. ": give exactly one of lr (a number) and schedule", 2)
  end
  local lr_of
  if o.lr ~= nil then
    local lr = optim.positive(o.lr, "lr", who)
    lr_of = function() return lr end
  elseif type(sched) == "function" then
    lr_of = function(epoch)
      return optim.positive(sched(epoch), "schedule(" .. epoch .. ")", who)
    end
  elseif type(sched) == "table" and #sched > 0 then
    for i, p in ipairs(sched) do
      if type(p) ~= "table" or math.type(p[1]) ~= "integer" or p[1] < 1 then
        error(string.format("%s: schedule[%d] must be {epochs, lr} with a positive integer number of epochs", who, i), 2)
      end
      optim.positive(p[2], "the lr of schedule[" .. i .. "]", who)
    end
    lr_of = function(epoch) return lookup(sched, epoch) end
  else
    error(who .. ": schedule must be a non-empty list of {epochs, lr} or a function(epoch)", 2)
  end
  local nb = {name = "lr_schedule", lr = lr_of(1)}
  function nb.lr_at(_, epoch) return lr_of(epoch) end
  function nb.epoch_start(self, epoch) self.lr = lr_of(epoch) end
  function nb.propose(self, ctx)
    local lr = self.lr
    ctx.trial:add_scaled_(ctx.w, -lr, ctx.g)
    return lr
  end
  return nb
end
