-- experiments/vgg16_sa.lua - the paper's SGD-SA run on CIFAR-10 with
-- vgg16 (section 4): batch 512, 100 epochs, eta drawn from
-- H = {0.9, ..., 0.1, 0.09, ..., 0.05}, Metropolis test with T0 = 1 and
-- cooling T = max(1e-14, 0.8 T) after each epoch; no momentum, no augmentation (the
-- paper names none). The paper repeats each run with 10 seeds:
--   for s in 0 1 2 3 4 5 6 7 8 9; do sgdsa run experiments/vgg16_sa.lua seed=$s device=cuda; done
-- The CIFAR-10 binaries are looked up as sgdsa.data.cifar10 documents
-- (dir=, or $SGDSA_DATA/cifar-10-batches-bin).
local sg = require "sgdsa"

return {
  model = {"vgg16", channels = 3, size = 32, classes = 10},
  data = {"cifar10", batch = 512},
  optim = sg.optim.sgdsa{
    H = {0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.09, 0.08, 0.07, 0.06, 0.05},
    T0 = 1, alpha = 0.8,
    -- the authors' procedure: f(w) and f(w') scored in inference mode
    -- (running statistics) on the loss divided by the batch size, the scale
    -- T0 = 1 was chosen for (docs/FIDELITY.md); score="train" (batch
    -- statistics, one forward fewer) is the override optim.score=train
    score = "inference", objective = "loss/batch",
  },
  epochs = 100,
  seed = 0,
}
