-- sgdsa.bench_search: the search loop's step kinds for `sgdsa bench`
-- (lua/sgdsa/bench.lua loads them):
--   sa        one SGD-SA step exactly as the trainer runs it (sgdsa.search with
--             lr_set + Metropolis): forward, backward, proposal w - eta*g into
--             the trial buffer, the trial forward, the test, a storage swap;
--   sa_inf    the same with score = "inference" (the authors' procedure): an
--             inference forward at w, the training forward and backward, the
--             proposal, an inference forward at the trial point;
--   sgd_loop  Scheduled-SGD through the same loop (lr_schedule + always):
--             the loop's overhead over the plain `sgd` kind.
-- tools/bench_sa prints SA/SGD step-time ratios from `sa` and `sgd`, beside
-- PyTorch's (tools/bench_torch.py --kind sa).
local optim = require "sgdsa.optim"
local search = require "sgdsa.search"

-- Small learning rates: the benchmark's random batch must not blow the
-- weights up (the cost of a step does not depend on eta).
local H = {0.01, 0.005, 0.002, 0.001}

local function step_of(ctx)
  local rec, err = ctx.search:step(ctx.x, ctx.labels)
  if not rec then error("bench: " .. err, 0) end
  return rec.loss
end

return function(B)
  B.setup.sa = function(ctx)
    ctx.search = search.new{model = ctx.model, criterion = ctx.crit,
                            optim = optim.sgdsa{H = H, T0 = 1, alpha = 0.8}}
    ctx.search:epoch_start(1)
  end
  B.steps.sa = step_of
  B.setup.sa_inf = function(ctx)
    ctx.search = search.new{model = ctx.model, criterion = ctx.crit,
                            optim = optim.sgdsa{H = H, T0 = 1, alpha = 0.8, score = "inference"}}
    ctx.search:epoch_start(1)
  end
  B.steps.sa_inf = step_of
  B.setup.sgd_loop = function(ctx)
    ctx.search = search.new{model = ctx.model, criterion = ctx.crit, optim = optim.sgd{lr = ctx.lr}}
    ctx.search:epoch_start(1)
  end
  B.steps.sgd_loop = step_of
  -- forward passes per step (FLOP counts): the trial forward, and for
  -- sa_inf the inference forward at w as well
  B.forwards.sa, B.forwards.sa_inf, B.forwards.sgd_loop = 2, 3, 1
  return B
end
