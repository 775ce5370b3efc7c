-- experiments/fashion_vgg16_sgd.lua - the SGD baseline of Figures 1-2:
-- VGG16 on Fashion-MNIST, constant learning rate 0.001, no momentum, no
-- Nesterov. Same batch, epochs and seed as fashion_vgg16_ssa.lua.
local sg = require "sgdsa"

return {
  model = {"vgg16", channels = 1, size = 28, classes = 10},
  data = {"fashion_mnist", batch = 512},
  optim = sg.optim.sgd{lr = 0.001},
  epochs = 100,
  seed = 0,
}
