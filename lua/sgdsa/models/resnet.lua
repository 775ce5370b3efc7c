-- sgdsa.models.resnet - the CIFAR ResNet with BasicBlocks (kuangliu/pytorch-cifar
-- names): conv1 3x3 (64, no bias) - bn1 - relu, layer1..layer4 of BasicBlocks
-- (planes 64, 128, 256, 512; stride 2 from layer2 on), global average pool,
-- linear (512 -> classes). No max-pool. A BasicBlock is
--   relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)),
-- the shortcut a 1x1 conv + BN (shortcut.0, shortcut.1) when the shape changes.
--   require("sgdsa.models.resnet")(blocks, name){channels=, size=, classes=, width=}
local nn = require "sgdsa.nn"
local options = require "sgdsa.options"

local function basic_block(cin, planes, stride)
  local body = nn.Sequential{
    {"conv1", nn.Conv2d(cin, planes, 3, {stride = stride, padding = 1, bias = false})},
    {"bn1", nn.BatchNorm2d(planes)},
    {"relu1", nn.ReLU(true)},
    {"conv2", nn.Conv2d(planes, planes, 3, {padding = 1, bias = false})},
    {"bn2", nn.BatchNorm2d(planes)},
  }
  local shortcut
  if stride ~= 1 or cin ~= planes then
    shortcut = nn.Sequential{
      nn.Conv2d(cin, planes, 1, {stride = stride, bias = false}),
      nn.BatchNorm2d(planes),
    }
  end
  return nn.Sequential{{"", nn.Residual(body, shortcut)}, {"relu", nn.ReLU(true)}}
end

return function(blocks, name)
  return function(opts)
    opts = options.check(opts, {channels = true, size = true, classes = true, width = true,
                                input_grad = true}, "sgdsa.models." .. name)
    local c, s, classes = opts.channels or 3, opts.size or 32, opts.classes or 10
    local w = opts.width or 1
    local function ch(n) return math.max(1, math.floor(n * w)) end
    local net = nn.Sequential{
      {"conv1", nn.Conv2d(c, ch(64), 3, {padding = 1, bias = false})},
      {"bn1", nn.BatchNorm2d(ch(64))},
      {"relu", nn.ReLU(true)},
    }
    local cin = ch(64)
    for l, nb in ipairs(blocks) do
      local planes = ch(64 * 2 ^ (l - 1) // 1)
      local layer = nn.Sequential()
      for b = 1, nb do
        layer:add(basic_block(cin, planes, (b == 1 and l > 1) and 2 or 1), tostring(b - 1))
        cin = planes
      end
      net:add(layer, "layer" .. l)
    end
    net:add(nn.GlobalAvgPool(), "avgpool")
    net:add(nn.Linear(cin, classes), "linear")
    return nn.model(net, {input = {c, s, s}, name = name, input_grad = opts.input_grad})
  end
end
