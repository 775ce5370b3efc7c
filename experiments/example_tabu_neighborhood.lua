-- experiments/example_tabu_neighborhood.lua - how to write a new
-- neighborhood: SGD-SA whose learning rate is drawn from H minus a tabu list.
-- A learning rate whose move was just rejected becomes tabu for the next
-- `tenure` steps, so the search does not keep proposing a step size the
-- Metropolis test keeps refusing (a tabu search over H, one of the
-- metaheuristics the paper's conclusion suggests).
--
-- A neighborhood is a table with propose(self, ctx) that fills ctx.trial and
-- returns a number describing the move (logged as `move`); outcome(self, ctx,
-- accepted, move) is called after every decision; state/set_state make its
-- memory part of checkpoints (so a resumed run takes the same path). The
-- draw must come from ctx.rng (the `search` stream) for reproducibility.
--   sgdsa run experiments/example_tabu_neighborhood.lua tenure=3
local sg = require "sgdsa"

local function tabu_lr_set(H, tenure)
  local nb = {name = "tabu_lr_set", tabu = {}}   -- tabu[i] = last step at which H[i] is tabu
  function nb.propose(self, ctx)
    local free = {}
    for i = 1, #H do
      if (self.tabu[i] or 0) < ctx.step then free[#free + 1] = i end
    end
    if #free == 0 then for i = 1, #H do free[i] = i end end
    local i = free[ctx.rng:random(#free)]
    self.last = i
    ctx.trial:add_scaled_(ctx.w, -H[i], ctx.g)    -- trial = w - eta * g
    return H[i]
  end
  function nb.outcome(self, ctx, accepted)
    if not accepted then self.tabu[self.last] = ctx.step + tenure end
  end
  function nb.state(self)
    local t = {}
    for i = 1, #H do t[i] = self.tabu[i] or 0 end
    return {tabu = t}
  end
  function nb.set_state(self, st)
    self.tabu = {}
    for i, v in ipairs(st.tabu or {}) do self.tabu[i] = v end
  end
  return nb
end

-- The script's own key: declared in `args` (default and type), so that
-- `tenure=3` is checked, recorded with the run and listed by
-- `sgdsa run experiments/example_tabu_neighborhood.lua --help`.
local tenure = (... or {}).tenure or 5

return {
  args = {tenure = {default = 5, help = "steps a rejected learning rate stays tabu"}},
  model = {"lenet", classes = 10},
  data = {"fashion_mnist", batch = 128, limit = 10000},
  optim = sg.optim.optimizer{
    neighborhood = tabu_lr_set({0.9, 0.7, 0.5, 0.3, 0.1, 0.07, 0.05}, tenure),
    acceptance = sg.optim.metropolis{T0 = 1, alpha = 0.8},
  },
  epochs = 8,
  seed = 0,
}
