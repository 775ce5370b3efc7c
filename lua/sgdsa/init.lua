-- sgdsa: the Lua library entry point. `require "sgdsa"` returns this table:
-- the names of the C core listed in EXPORTS (tensors, random streams,
-- threads), sgdsa.core (the whole C core: files, locks, signals, clocks,
-- BLAS, convolution and CUDA settings, the kernels), and the Lua parts:
-- sgdsa.nn, sgdsa.data, sgdsa.optim, sgdsa.h5, sgdsa.models, and, loaded on
-- first use, sgdsa.trainer, sgdsa.search, sgdsa.checkpoint, sgdsa.results,
-- sgdsa.inspect, sgdsa.dist and sgdsa.help (help(x) in the REPL).
local core = require "sgdsa.core"

-- The C core's names that are sgdsa's own API (lua/l_tensor.c, lua/l_rng.c).
local EXPORTS = {
  -- tensors
  "Tensor", "tensor", "zeros", "ones", "full", "empty", "arange", "rand", "randn",
  "matmul", "dot", "is_tensor",
  -- random streams and generators
  "Generator", "manual_seed", "initial_seed", "stream",
  -- CPU threads of the kernels
  "set_num_threads", "get_num_threads",
}

local M = {}
for _, k in ipairs(EXPORTS) do M[k] = assert(core[k], k) end
M.EXPORTS = EXPORTS
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
              dist = true, help = true}
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
