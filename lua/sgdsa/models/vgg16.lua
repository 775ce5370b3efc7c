-- sgdsa.models.vgg16 - VGG16 with batch normalization, CIFAR variant (as the
-- widely used kuangliu/pytorch-cifar definition): 13 conv3x3-BN-ReLU layers
-- in `features` (indices 0, 1, 2 per conv; 3-index blocks and one index
-- per max-pool), then `classifier` Linear(512 -> classes). The trailing
-- AvgPool2d(1, 1) of that definition is a no-op and is omitted (it has no
-- parameters, so the state-dict names are unchanged). Inputs smaller than
-- 32x32 (Fashion-MNIST 28x28) are zero-padded to 32 first.
--   sgdsa.models.vgg16{channels = 3, size = 32, classes = 10, width = 1}
local nn = require "sgdsa.nn"
local options = require "sgdsa.options"

local cfg = {64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"}

return function(opts)
  opts = options.check(opts, {channels = true, size = true, classes = true, width = true, input_grad = true}, "sgdsa.models.vgg16")
  local c, s, classes = opts.channels or 3, opts.size or 32, opts.classes or 10
  local w = opts.width or 1
  local net = nn.Sequential()
  if s < 32 then net:add(nn.Pad((32 - s) // 2), "pad") end
  local features = nn.Sequential()
  local cin, idx = c, 0
  for _, v in ipairs(cfg) do
    if v == "M" then
      features:add(nn.MaxPool2d(2), tostring(idx)); idx = idx + 1
    else
      local cout = math.max(1, math.floor(v * w))
      features:add(nn.Conv2d(cin, cout, 3, {padding = 1}), tostring(idx))
      features:add(nn.BatchNorm2d(cout), tostring(idx + 1))
      features:add(nn.ReLU(true), tostring(idx + 2))
      idx, cin = idx + 3, cout
    end
  end
  net:add(features, "features")
  net:add(nn.Flatten(), "flatten")
  local side = math.max(s, 32) // 32
  net:add(nn.Linear(cin * side * side, classes), "classifier")
  return nn.model(net, {input = {c, s, s}, name = "vgg16", input_grad = opts.input_grad})
end
