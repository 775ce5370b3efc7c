-- experiments/fashion_vgg16_ssa.lua - the naive Stochastic SA of section 2.1
-- (Figures 1-2): VGG16 on Fashion-MNIST (28x28 padded to 32x32 by the
-- model), moves w -/+ eps*Delta with a random Delta, the better of the two
-- judged by Metropolis; eps = 0.01, T0 = 1, alpha = 0.97 (cooling per
-- epoch, T never below 1e-10). Derivative-free: no backward pass.
-- As the authors' code does: the three points are scored in inference mode
-- (running statistics, which a derivative-free run never changes) on the
-- loss divided by the batch size, and eps is divided by 10 after an epoch
-- in which fewer than 60% of the steps improved (docs/FIDELITY.md);
-- optim.score=train and optim.eps_bound=0 switch these off. The paper gives
-- neither the batch size nor the number of epochs of these figures: batch
-- 512 (as in section 4) and 100 epochs here, both overridable (batch:
-- data.batch=).
local sg = require "sgdsa"

return {
  model = {"vgg16", channels = 1, size = 28, classes = 10},
  data = {"fashion_mnist", batch = 512},
  optim = sg.optim.ssa{eps = 0.01, eps_bound = 0.6, eps_divisor = 10, T0 = 1, alpha = 0.97,
                       T_min = 1e-10, score = "inference", objective = "loss/batch"},
  epochs = 100,
  seed = 0,
}
