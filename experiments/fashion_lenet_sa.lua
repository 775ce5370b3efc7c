-- experiments/fashion_lenet_sa.lua - SGD-SA (Algorithm 2) on Fashion-MNIST
-- with LeNet-5 (BN): the CPU-sized version of the paper's experiment, a few
-- minutes on 2 cores. The paper's H and T0 = 1, with the authors' scoring:
-- f(w) and f(w') by inference-mode forwards (running statistics) on the loss
-- divided by the batch size (docs/FIDELITY.md; optim.score=train for batch
-- statistics). The paper cools T = 0.8 T after each of 100 epochs; a run of
-- E epochs cools by 0.8^(100/E) per epoch, so that it ends as cold as the
-- paper's (its baseline compresses the learning-rate schedule the same way).
-- 20480 training images (160 batches of 128: no small last batch, which
-- would make a noisy BatchNorm step at every epoch's end), 8 epochs:
--   sgdsa run experiments/fashion_lenet_sa.lua epochs=30 data.limit=60000
-- Its baseline is experiments/fashion_lenet_sgd.lua (same model, data, seed).
local sg = require "sgdsa"
local args = ... or {}
local epochs = args.epochs or 8

return {
  model = {"lenet", classes = 10},
  data = {"fashion_mnist", batch = 128, limit = 20480, drop_last = true},
  optim = sg.optim.sgdsa{
    H = {0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.09, 0.08, 0.07, 0.06, 0.05},
    T0 = 1, alpha = 0.8 ^ (100 / epochs),
    score = "inference", objective = "loss/batch",
  },
  epochs = epochs,
  seed = 0,
}
