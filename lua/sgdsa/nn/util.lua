-- sgdsa.nn.util: what the layers (sgdsa.nn.layers), the memory planner
-- (sgdsa.nn.memory) and the models (sgdsa.nn) share: shapes, the forward
-- modes, and the walk over a module tree in state-dict order.
local M = {}

local function shape_str(s)
  if #s == 0 then return "scalar" end
  return table.concat(s, "x")
end

local function numel(s)
  local n = 1
  for i = 1, #s do n = n * s[i] end
  return n
end

local function copy_shape(s)
  local r = {}
  for i = 1, #s do r[i] = s[i] end
  return r
end

local modes = {train = true, trial = true, eval = true, infer = true}

local function check_mode(op, mode)
  if not modes[mode] then
    error(string.format("%s: mode must be \"train\", \"trial\", \"eval\" or \"infer\", got %s",
                        op, tostring(mode)), 3)
  end
end

-- Whether a forward in `mode` keeps what a backward needs ("train", "eval");
-- the scoring forwards ("trial", "infer") keep nothing.
local function keeps(mode) return mode == "train" or mode == "eval" end

local function join(prefix, name)
  if name == "" then return prefix end
  if prefix == "" then return name end
  return prefix .. "." .. name
end

-- Walk the tree: visit(module, path, depth) in state-dict order.
local function walk(m, path, depth, visit)
  visit(m, path, depth)
  for _, c in ipairs(m.children) do walk(c.module, join(path, c.name), depth + 1, visit) end
end

M.shape_str = shape_str
M.numel = numel
M.copy_shape = copy_shape
M.check_mode = check_mode
M.keeps = keeps
M.join = join
M.walk = walk

return M
