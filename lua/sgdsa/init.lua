-- sgdsa: the Lua library entry point. `require "sgdsa"` returns this table:
-- the C core (tensors, generators, kernels, data, HDF5) plus the Lua parts.
local core = require "sgdsa.core"

local M = {}
for k, v in pairs(core) do M[k] = v end
M.core = core
M.version = core.version or "0.1.0"
M.data = require "sgdsa.data"
M.h5 = require "sgdsa.h5"
M.nn = require "sgdsa.nn"
M.optim = require "sgdsa.optim"

return M
