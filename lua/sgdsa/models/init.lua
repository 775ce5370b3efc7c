-- sgdsa.models - the network definitions by name, each loaded on first use:
--
--   sgdsa.models.lenet{classes = 10}              -- a built model (sgdsa.nn.model)
--   sgdsa.models.build{"lenet", classes = 10}     -- the same from a spec (what the
--   sgdsa.nn.model{"lenet", classes = 10}         -- trainer's model = {...} is)
--   sgdsa.models.names()                          -- {"lenet", "mlp", ...}
--
-- A name is the module sgdsa.models.<name> (lua/sgdsa/models/<name>.lua,
-- installed with the Lua library), else models.<name> on package.path (a
-- project's own models/<name>.lua beside its scripts). Each returns
-- function(opts) -> model; the options of the built-in ones are channels,
-- size (input channels x size x size), classes and width (a factor on every
-- layer's width), and input_grad.
local options = require "sgdsa.options"

local M = {}

-- The built-in networks, with one line each (for help and errors).
M.BUILTIN = {
  lenet = "LeNet-5 with BatchNorm (Fashion-MNIST, 1x28x28)",
  mlp = "a multilayer perceptron (hidden = {512, 256})",
  resnet18 = "the CIFAR ResNet-18 (BasicBlocks 2, 2, 2, 2)",
  resnet34 = "the CIFAR ResNet-34 (BasicBlocks 3, 4, 6, 3), the paper's",
  vgg16 = "VGG16 with BatchNorm, CIFAR variant, the paper's",
}

--- The built-in model names, sorted.
function M.names()
  local list = {}
  for k in pairs(M.BUILTIN) do list[#list + 1] = k end
  table.sort(list)
  return list
end

local function findable(mod)
  return package.loaded[mod] ~= nil or package.preload[mod] ~= nil
      or package.searchpath(mod, package.path) ~= nil
end

--- The constructor of model `name` (function(opts) -> model), or nil and a
-- message naming the model and the ones there are.
function M.find(name)
  if type(name) ~= "string" or not name:match("^[%w_]+$") then
    return nil, string.format("sgdsa.models: a model name is a word (lenet, vgg16, ...), got %s",
                              type(name) == "string" and string.format("%q", name) or type(name))
  end
  for _, mod in ipairs{"sgdsa.models." .. name, "models." .. name} do
    if findable(mod) then
      local ctor = require(mod)
      if type(ctor) ~= "function" then
        return nil, string.format("sgdsa.models: %s returned a %s, not a function(opts) -> model",
                                  mod, type(ctor))
      end
      return ctor
    end
  end
  return nil, string.format("sgdsa.models: no model %q (built in: %s; or models/%s.lua on package.path)%s",
                            name, table.concat(M.names(), ", "), name, options.did_you_mean(name, M.names()))
end

--- A model from a spec {"name", opt = value, ...}, or from a name and an
-- options table.
function M.build(spec, opts)
  local name
  if type(spec) == "string" then
    name, opts = spec, opts or {}
  elseif type(spec) == "table" and type(spec[1]) == "string" then
    if opts ~= nil then
      error("sgdsa.models.build: give the options inside the spec: {\"" .. spec[1] .. "\", classes = 10}", 2)
    end
    opts = {}
    for k, v in pairs(spec) do if k ~= 1 then opts[k] = v end end
    name = spec[1]
  else
    error("sgdsa.models.build: expected a spec {\"name\", opt = value, ...} or a name, got "
          .. type(spec), 2)
  end
  local ctor, err = M.find(name)
  if not ctor then error(err, 2) end
  return ctor(opts)
end

-- sgdsa.models.<name>: the constructor, loaded on first use. The REPL
-- completes the names in __complete without loading anything.
return setmetatable(M, {
  __complete = M.BUILTIN,
  __index = function(t, k)
    if type(k) ~= "string" then return nil end
    local ctor, err = M.find(k)
    if not ctor then error(err, 2) end
    rawset(t, k, ctor)
    return ctor
  end,
})
