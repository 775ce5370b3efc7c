-- sgdsa.models.mlp - a multilayer perceptron: Flatten, then Linear-ReLU layers
-- (fc1, fc2, ...) and a final Linear to the classes.
--   sgdsa.models.mlp{channels = 1, size = 28, classes = 10, hidden = {512, 256}, width = 1}
-- returns a built model (sgdsa.nn.model) with input channels x size x size.
local nn = require "sgdsa.nn"
local options = require "sgdsa.options"

return function(opts)
  opts = options.check(opts, {channels = true, size = true, classes = true, width = true, hidden = true,
                              input_grad = true}, "sgdsa.models.mlp")
  local c, s, classes = opts.channels or 1, opts.size or 28, opts.classes or 10
  local width = opts.width or 1
  local hidden = opts.hidden or {512, 256}
  local net = nn.Sequential{{"flatten", nn.Flatten()}}
  local nin = c * s * s
  for i, h in ipairs(hidden) do
    h = math.max(1, math.floor(h * width))
    net:add(nn.Linear(nin, h), "fc" .. i)
    net:add(nn.ReLU(true), "relu" .. i)
    nin = h
  end
  net:add(nn.Linear(nin, classes), "fc" .. (#hidden + 1))
  return nn.model(net, {input = {c, s, s}, name = "mlp", input_grad = opts.input_grad})
end
