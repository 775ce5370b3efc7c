-- experiments/fashion_lenet_sgd.lua - the Scheduled-SGD baseline for
-- fashion_lenet_sa.lua: the same model, data and seed; no momentum; the
-- learning rate follows the paper's 0.1 / 0.01 / 0.001 pattern over
-- 30% / 40% / 30% of the epochs (3 / 3 / 2 of the default 8).
local sg = require "sgdsa"

return {
  model = {"lenet", classes = 10},
  data = {"fashion_mnist", batch = 128, limit = 10000},
  optim = sg.optim.sgd{schedule = {{3, 0.1}, {3, 0.01}, {2, 0.001}}},
  epochs = 8,
  seed = 0,
}
