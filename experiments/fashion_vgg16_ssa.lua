-- experiments/fashion_vgg16_ssa.lua - the naive Stochastic SA of section 2.1
-- (Figures 1-2): VGG16 on Fashion-MNIST (28x28 padded to 32x32 by the
-- model), moves w -/+ eps*Delta with a random Delta, the better of the two
-- judged by Metropolis; eps = 0.01, T0 = 1, alpha = 0.97 (cooling per
-- epoch). Derivative-free: no backward pass. The paper gives neither the
-- batch size nor the number of epochs of these figures: batch 512 (as in
-- section 4) and 100 epochs here, both overridable (batch: data.batch=).
local sg = require "sgdsa"

return {
  model = {"vgg16", channels = 1, size = 28, classes = 10},
  data = {"fashion_mnist", batch = 512},
  optim = sg.optim.ssa{eps = 0.01, T0 = 1, alpha = 0.97},
  epochs = 100,
  seed = 0,
}
