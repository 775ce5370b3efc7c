-- experiments/vgg16_sgd.lua - the paper's Scheduled-SGD baseline on
-- CIFAR-10 with vgg16 (section 4): batch 512, 100 epochs, learning rate
-- 0.1 for 30 epochs, 0.01 for 40, 0.001 for 30; no momentum, no Nesterov,
-- no augmentation. Compare with experiments/vgg16_sa.lua (same seeds).
local sg = require "sgdsa"

return {
  model = {"vgg16", channels = 3, size = 32, classes = 10},
  data = {"cifar10", batch = 512},
  optim = sg.optim.sgd{schedule = {{30, 0.1}, {40, 0.01}, {30, 0.001}}},
  epochs = 100,
  seed = 0,
}
