-- sgdsa: the Lua library entry point. `require "sgdsa"` returns this table:
-- the C core (tensors, generators, kernels, data, HDF5) plus the Lua parts:
-- sgdsa.nn, sgdsa.data, sgdsa.optim, sgdsa.h5, sgdsa.models, and, loaded on
-- first use, sgdsa.trainer, sgdsa.search, sgdsa.checkpoint, sgdsa.results,
-- sgdsa.inspect and sgdsa.help (help(x) in the REPL).
local core = require "sgdsa.core"

local M = {}
for k, v in pairs(core) do M[k] = v end
M.core = core
M.version = core.version or "0.1.0"
M.data = require "sgdsa.data"
M.h5 = require "sgdsa.h5"
M.nn = require "sgdsa.nn"
M.optim = require "sgdsa.optim"
M.models = require "sgdsa.models"

-- The modules loaded on first use (they require this one). The REPL
-- completes the names in __complete without loading anything.
local LAZY = {trainer = true, search = true, checkpoint = true, results = true, inspect = true,
              help = true}
return setmetatable(M, {
  __complete = LAZY,
  __index = function(t, k)
    if LAZY[k] then
      local mod = require("sgdsa." .. k)
      rawset(t, k, mod)
      return mod
    end
  end,
})
