-- experiments/fashion_lenet_sa.lua - SGD-SA (Algorithm 2) on Fashion-MNIST
-- with LeNet-5 (BN): the CPU-sized version of the paper's experiment, a few
-- minutes on 2 cores. The paper's H, T0 = 1, alpha = 0.8 (cooling per epoch).
-- Defaults use 10000 training images and 8 epochs; the full set:
--   sgdsa run experiments/fashion_lenet_sa.lua data.limit=60000 epochs=30
-- Its baseline is experiments/fashion_lenet_sgd.lua (same model, data, seed).
local sg = require "sgdsa"

return {
  model = {"lenet", classes = 10},
  data = {"fashion_mnist", batch = 128, limit = 10000},
  optim = sg.optim.sgdsa{
    H = {0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.09, 0.08, 0.07, 0.06, 0.05},
    T0 = 1, alpha = 0.8,
  },
  epochs = 8,
  seed = 0,
}
