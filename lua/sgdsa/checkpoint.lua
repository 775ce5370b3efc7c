-- sgdsa.checkpoint: write and read a training checkpoint (last.h5, best.h5)
-- through sgdsa.h5, in the layout of docs/FORMAT.md section 4:
--
--   /<name>              every model tensor under its PyTorch state-dict name
--                        (model:named_tensors(): parameters and buffers)
--   /search/...          the search state: epoch, step, temperature,
--                        rng/<stream> (uint64[4]), data/order, data/position,
--                        rule/... (acceptance memory), optim/... (neighborhood
--                        memory: velocity...), trainer/... (counters, partial
--                        epoch statistics, best-so-far)
--   /extra/script, /extra/config   copies of the log's texts
--   root attributes      format_version, kind = "checkpoint", sgdsa_version,
--                        epoch, step, created (+ best_val_acc, best_epoch)
--
-- The state is a Lua tree of numbers, strings, booleans, tensors, lists of
-- numbers and nested tables. Each leaf is one dataset with an attribute `lua`
-- naming its Lua type (integer, float, boolean, string, tensor, ints,
-- floats), so it reads back exactly (64-bit integers keep their bits; floats
-- are float64); checkpoint.u64(list) marks a list stored as uint64 (rng
-- states). Integer keys are stored as "#<n>". The file is written
-- atomically (temporary file, fsync, rename): a crash leaves the previous
-- checkpoint whole. Loading never runs code and checks every model tensor's
-- name, dtype and shape before changing anything.
local h5 = require "sgdsa.h5"

local M = {}
M.STATE = "search"

local U64 = {}
--- Mark a list of integers to be stored as uint64 (bit patterns).
function M.u64(list) return setmetatable(list, U64) end

local function is_tensor(v)
  local mt = getmetatable(v)
  return mt ~= nil and mt.__name == "sgdsa.Tensor"
end

local function number_list(t)
  local n = #t
  if n == 0 then return nil end
  local allint = true
  for k, v in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n or type(v) ~= "number" then return nil end
    if math.type(v) ~= "integer" then allint = false end
  end
  return allint and "ints" or "floats"
end

local function key_part(k)
  if math.type(k) == "integer" then return "#" .. k end
  if type(k) ~= "string" or k == "" or k:find("/", 1, true) or k:sub(1, 1) == "#" then
    error(string.format("checkpoint: state key %q cannot be stored (strings without '/' or '#' prefix, or integers)", tostring(k)), 0)
  end
  return k
end

-- How put_tree stores the value v at `path`: "tensor", "string", "boolean",
-- "integer", "float", "u64", "ints", "floats" or "tree" (a nested table).
local function kind_of(v, path)
  if is_tensor(v) then return "tensor" end
  if type(v) == "string" then return "string" end
  if type(v) == "boolean" then return "boolean" end
  if math.type(v) == "integer" then return "integer" end
  if type(v) == "number" then return "float" end
  if type(v) == "table" then
    if getmetatable(v) == U64 then return "u64" end
    return number_list(v) or "tree"
  end
  error(string.format("checkpoint: cannot store a %s at state path '%s'", type(v), path), 0)
end

-- Write the tree `t` under `prefix` in the open file f.
local function put_tree(f, prefix, t)
  for k, v in pairs(t) do
    local path = prefix .. "/" .. key_part(k)
    local kind = kind_of(v, path)
    if kind == "tensor" then
      f:write(path, v:contiguous())
    elseif kind == "string" then
      f:write_text(path, v)
    elseif kind == "boolean" then
      f:write_array(path, v and 1 or 0, "int64")
    elseif kind == "integer" then
      f:write_array(path, v, "int64")
    elseif kind == "float" then
      f:write_array(path, v, "float64")
    elseif kind == "u64" then
      f:write_array(path, v, "uint64"); kind = "ints"
    elseif kind == "ints" or kind == "floats" then
      f:write_array(path, v, kind == "ints" and "int64" or "float64")
    else
      put_tree(f, path, v)
      kind = nil
    end
    if kind then f:attr_of(path, "lua", kind) end
  end
end

--- The tree `t` as a checkpoint would give it back (checkpoint.save, then
--- checkpoint.load): tensors copied, number lists of mixed integers and
--- floats as floats, empty tables left out; the error save would raise for
--- what cannot be stored, naming its path under `prefix`.
function M.roundtrip(t, prefix)
  local out = {}
  for k, v in pairs(t) do
    local path = (prefix or M.STATE) .. "/" .. key_part(k)
    local kind = kind_of(v, path)
    if kind == "tensor" then
      out[k] = v:contiguous():clone()
    elseif kind == "ints" or kind == "floats" or kind == "u64" then
      local list = {}
      for i, x in ipairs(v) do list[i] = kind == "floats" and x + 0.0 or x end
      out[k] = list
    elseif kind == "float" then
      out[k] = v + 0.0
    elseif kind == "tree" then
      local sub = M.roundtrip(v, path)
      if next(sub) ~= nil then out[k] = sub end
    else
      out[k] = v
    end
  end
  return out
end

local function get_leaf(f, path)
  local kind = f:attr_of(path, "lua")
  if kind == "tensor" then return f:read(path) end
  if kind == "string" then return f:read_text(path) end
  if kind == "boolean" then return (f:read_array(path, "int64")) ~= 0 end
  if kind == "integer" then return math.tointeger((f:read_array(path, "int64"))) end
  if kind == "float" then return (f:read_array(path, "float64")) end
  if kind == "ints" or kind == "floats" then
    local v = f:read_array(path)
    return type(v) == "table" and v or {v}
  end
  error(string.format("checkpoint '%s': state dataset '%s' has unknown kind %q", f:path(), path, tostring(kind)), 0)
end

-- Read the tree stored under `prefix`.
local function get_tree(f, prefix)
  local root = {}
  if not f:exists(prefix) then return root end
  for _, e in ipairs(f:list(prefix)) do
    if e.kind == "dataset" then
      local node, parts = root, {}
      for p in e.name:gmatch("[^/]+") do parts[#parts + 1] = p end
      for i, p in ipairs(parts) do
        local k = p:match("^#(%-?%d+)$")
        k = k and math.tointeger(tonumber(k)) or p
        if i == #parts then
          node[k] = get_leaf(f, prefix .. "/" .. e.name)
        else
          node[k] = node[k] or {}
          node = node[k]
        end
      end
    end
  end
  return root
end

M.put_tree, M.get_tree = put_tree, get_tree

--- Write a checkpoint atomically: the model's tensors, the state tree under
--- search/, extra texts (name -> string, under extra/) and root attributes.
function M.save(path, model, state, attrs, extra)
  local f = h5.open(path, "w", {atomic = true})
  local ok, err = pcall(function()
    for _, e in ipairs(model:named_tensors()) do f:write(e.name, e.tensor:contiguous()) end
    put_tree(f, M.STATE, state)
    for k, v in pairs(extra or {}) do f:write_text("extra/" .. k, v) end
    f:attr("format_version", h5.format_version)
    f:attr("kind", "checkpoint")
    for k, v in pairs(attrs or {}) do f:attr(k, v) end
  end)
  if not ok then
    f:discard()
    error(string.format("checkpoint: writing '%s' failed: %s", path, tostring(err)), 0)
  end
  f:close()
end

--- Read a checkpoint into `model` (every tensor checked by name and shape
--- before anything changes) and return the state tree and the root attributes.
function M.load(path, model)
  local f <close> = h5.open(path, "r")
  local problems = {}
  local entries = model:named_tensors()
  for _, e in ipairs(entries) do
    local st = f:stat(e.name)
    local want = table.concat(e.tensor:size(), "x")
    if not st or st.kind ~= "dataset" then
      problems[#problems + 1] = e.name .. ": missing"
    else
      local got = table.concat(st.shape or {}, "x")
      if got ~= want or st.dtype ~= "float32" then
        problems[#problems + 1] = string.format("%s: %s %s in the file, the model has float32 %s",
                                                e.name, tostring(st.dtype), got, want)
      end
    end
  end
  if #problems > 0 then
    error(string.format("checkpoint '%s' does not match the model:\n  %s", path,
                        table.concat(problems, "\n  ")), 0)
  end
  for _, e in ipairs(entries) do
    if e.tensor:is_contiguous() then
      f:read_into(e.name, e.tensor)
    else
      e.tensor:copy(f:read(e.name))
    end
  end
  local attrs = {}
  for k, v in pairs(f:attrs()) do attrs[k] = v end
  return get_tree(f, M.STATE), attrs
end

return M
