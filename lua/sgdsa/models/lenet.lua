-- sgdsa.models.lenet - LeNet-5 with batch normalization:
--   conv1 5x5 (6) - bn1 - relu - maxpool 2 - conv2 5x5 (16) - bn2 - relu - maxpool 2
--   - fc1 (120) - bn3 - relu - fc2 (84) - bn4 - relu - fc3 (classes).
-- A 28x28 input (Fashion-MNIST) is padded by conv1 (padding 2), as in the
-- original LeNet-5 on 32x32.
--   sgdsa.models.lenet{channels = 1, size = 28, classes = 10, width = 1}
local nn = require "sgdsa.nn"
local options = require "sgdsa.options"

return function(opts)
  opts = options.check(opts, {channels = true, size = true, classes = true, width = true, input_grad = true}, "sgdsa.models.lenet")
  local c, s, classes = opts.channels or 1, opts.size or 28, opts.classes or 10
  local w = opts.width or 1
  local function ch(n) return math.max(1, math.floor(n * w)) end
  local c1, c2, f1, f2 = ch(6), ch(16), ch(120), ch(84)
  local pad = s < 32 and (32 - s) // 2 or 0
  local s1 = (s + 2 * pad - 4) // 2          -- after conv1 and the first pool
  local s2 = (s1 - 4) // 2                   -- after conv2 and the second pool
  local net = nn.Sequential{
    {"conv1", nn.Conv2d(c, c1, 5, {padding = pad})},
    {"bn1", nn.BatchNorm2d(c1)},
    {"relu1", nn.ReLU(true)},
    {"pool1", nn.MaxPool2d(2)},
    {"conv2", nn.Conv2d(c1, c2, 5)},
    {"bn2", nn.BatchNorm2d(c2)},
    {"relu2", nn.ReLU(true)},
    {"pool2", nn.MaxPool2d(2)},
    {"flatten", nn.Flatten()},
    {"fc1", nn.Linear(c2 * s2 * s2, f1)},
    {"bn3", nn.BatchNorm1d(f1)},
    {"relu3", nn.ReLU(true)},
    {"fc2", nn.Linear(f1, f2)},
    {"bn4", nn.BatchNorm1d(f2)},
    {"relu4", nn.ReLU(true)},
    {"fc3", nn.Linear(f2, classes)},
  }
  return nn.model(net, {input = {c, s, s}, name = "lenet", input_grad = opts.input_grad})
end
