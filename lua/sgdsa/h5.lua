-- sgdsa.h5: HDF5 files from Lua (a torch-hdf5-like API over sgdsa.core.h5).
--
--   local f = h5.open(path, "w"|"r"|"a" [, {atomic=true, legacy=true}])
--   f:write("features.0.weight", t)      f:read(name [, {shape=, dtype=}])
--   f:read_into(name, t)                 f:list([group]) -> {{name,dtype,shape,...}}
--   f:attr(name [, value])               f:attr_of(obj, name [, value])   f:attrs([obj])
--   f:write_text(name, s)                f:read_text(name)
--   f:write_array(name, values [, dtype [, shape]])   f:read_array(name [, dtype])
--   f:close() / f:discard()              (also `local f <close> = ...`)
--   h5.save(path, {name = value, ...} [, attrs])      atomic; values: tensors,
--                                                      strings (text), numbers, arrays
--   h5.load(path [, {group=, legacy=}])  -> {name = tensor | string | number | array}
--   h5.verify(path [, {legacy=}])        read every object and all data as a check:
--                                        true, or nil and a message naming the
--                                        file, the damaged object and the failure
--   h5.log(file_or_path, group, fields [, {every=n}]) -> log writer:
--        log:append{field = value, ...}  log:flush()  log:rows()  log:truncate(n)
--   h5.read_log(file_or_path, group)     -> {columns = {...}, rows = n, data = {field = {...}}}
--   h5.logs(file_or_path)                 -> names of the log groups in a file
--
-- An atomic file (open with {atomic=true}, or save) is written beside its
-- target and renamed over it on close: the target is always the old or the
-- new complete file. With mode "a" the atomic file starts as a copy of the
-- old one. A log writer given a path reopens the file per flush this way;
-- see docs/FORMAT.md for why (readers never block it, and a crash during a
-- flush never corrupts the log).
local core = require "sgdsa.core"
local check_opts = require("sgdsa.options").check
local C = core.h5

local M = { format_version = C.format_version }

--- Open an HDF5 file. mode "r" (default), "w" or "a"; opts.atomic writes a
--- temporary file committed by close(); opts.legacy accepts old-format files.
function M.open(path, mode, opts)
  opts = check_opts(opts, { atomic = true, legacy = true }, "h5.open")
  mode = mode or "r"
  if opts.atomic then
    if mode == "r" then error("h5.open: an atomic file is for writing (mode \"w\" or \"a\")", 2) end
    if mode ~= "w" and mode ~= "a" then
      error(string.format("h5.open: mode '%s' for '%s' (use \"r\", \"w\" or \"a\")", mode, path), 2)
    end
    return C.open_atomic(path, mode == "a")
  end
  return C.open(path, mode, opts.legacy)
end

local function is_tensor(v)
  local mt = getmetatable(v)
  return mt ~= nil and mt.__name == "sgdsa.Tensor"
end

--- Write one value of any supported kind at `name` in an open file.
function M.put(f, name, v)
  if is_tensor(v) then
    f:write(name, v)
  elseif type(v) == "string" then
    f:write_text(name, v)
  elseif type(v) == "number" or type(v) == "table" then
    f:write_array(name, v)
  else
    error(string.format("h5: cannot store a %s at '%s' (tensor, string, number or array)",
                        type(v), name), 2)
  end
end

--- Read one dataset as the natural Lua value: a tensor (float32, uint8,
--- int32), a string (text), a number (64-bit scalar) or an array (64-bit).
function M.get(f, name)
  local st = f:stat(name)
  if not st then error(string.format("h5: no dataset '%s' in '%s'", name, f:path()), 2) end
  if st.kind ~= "dataset" then
    error(string.format("h5: '%s' in '%s' is a group, not a dataset", name, f:path()), 2)
  end
  if st.dtype == "text" then return f:read_text(name) end
  if st.dtype == "float32" or st.dtype == "uint8" or st.dtype == "int32" then return f:read(name) end
  return (f:read_array(name))
end

--- Atomically write a file holding `values` (name -> value) and root `attrs`.
--- The root attribute format_version is set unless attrs gives one.
function M.save(path, values, attrs)
  local f = C.open_atomic(path, false)
  local ok, err = pcall(function()
    local names = {}
    for k in pairs(values) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do M.put(f, k, values[k]) end
    f:attr("format_version", C.format_version)
    for k, v in pairs(attrs or {}) do f:attr(k, v) end
  end)
  if not ok then
    f:discard()
    error(err, 2)
  end
  f:close()
end

--- Load every dataset of a file (or of opts.group) into a table.
function M.load(path, opts)
  opts = check_opts(opts, { group = true, legacy = true }, "h5.load")
  local f <close> = C.open(path, "r", opts.legacy)
  local out = {}
  local prefix = opts.group and (opts.group:gsub("/$", "") .. "/") or ""
  for _, e in ipairs(f:list(opts.group or "/")) do
    out[e.name] = M.get(f, prefix .. e.name)
  end
  return out
end

--- Read every object header, attribute and dataset of a file as a check
--- (metadata checksums, Fletcher-32, crc32; docs/FORMAT.md section 6): true,
--- or nil and a message naming the file and the damaged object (a missing
--- or empty file, or one that is not HDF5, is such a failure too).
function M.verify(path, opts)
  opts = check_opts(opts, { legacy = true }, "h5.verify")
  local ok, err = pcall(function()
    local f <close> = C.open(path, "r", opts.legacy)
    f:verify()
  end)
  if ok then return true end
  return nil, (tostring(err):gsub("^[^:\n]*%.lua:%d+: ", ""))
end

-- ---------------------------------------------------------------------------
-- logs

local Log = {}
Log.__index = Log

local function parse_fields(fields, group)
  if type(fields) ~= "table" or #fields == 0 then
    error(string.format("h5.log '%s': fields must be a non-empty list", group), 3)
  end
  local names, types, index = {}, {}, {}
  for i, fd in ipairs(fields) do
    local name, ty = fd, "float64"
    if type(fd) == "table" then name, ty = fd[1], fd[2] or fd.type or "float64" end
    if type(name) ~= "string" then
      error(string.format("h5.log '%s': field %d must be a name or {name, type}", group, i), 3)
    end
    if ty == "int" or ty == "integer" then ty = "int64" end
    if ty == "float" or ty == "number" then ty = "float64" end
    if ty ~= "int64" and ty ~= "float64" then
      error(string.format("h5.log '%s': field '%s' has type '%s' (int64 or float64)", group, name,
                          tostring(ty)), 3)
    end
    names[i], types[i], index[name] = name, ty, i
  end
  return names, types, index
end

--- A log writer for table `group` in a file (an open File, or a path: then
--- each flush atomically rewrites the file with the new rows appended).
--- fields: list of names (float64) or {name, "int64"}. opts.every: flush
--- automatically after that many buffered rows.
function M.log(target, group, fields, opts)
  opts = check_opts(opts, { every = true }, "h5.log")
  local names, types, index = parse_fields(fields, group)
  local self = setmetatable({
    group = group, names = names, types = types, index = index,
    every = opts.every, c = C.newlog(group, names, types), stored = 0,
  }, Log)
  if type(target) == "string" then
    self.path = target
    local fh = io.open(target, "rb")
    if fh then
      fh:close()
      local f <close> = C.open(target, "r")
      self:_attach(f)
    end
  else
    self.file = target
    self:_attach(target)
  end
  return self
end

-- An existing log group must have the same columns; its rows are counted.
function Log:_attach(f)
  if not f:exists(self.group) then return end
  local have = f:attr_of(self.group, "columns")
  local want = table.concat(self.names, ",")
  if have ~= want then
    error(string.format("h5.log: log '%s' in '%s' has columns {%s}; this writer has {%s}",
                        self.group, f:path(), tostring(have), want), 3)
  end
  self.stored = f:log_rows(self.group)
end

--- Buffer one row: a table keyed by field name. A missing float field is NaN;
--- a missing int64 field or an unknown key is an error.
function Log:append(row)
  for k in pairs(row) do
    if not self.index[k] then
      error(string.format("h5.log '%s': unknown field '%s' (fields: %s)", self.group, tostring(k),
                          table.concat(self.names, ", ")), 2)
    end
  end
  local vals = {}
  for i, name in ipairs(self.names) do
    local v = row[name]
    if v == nil and self.types[i] == "int64" then
      error(string.format("h5.log '%s': row lacks the int64 field '%s'", self.group, name), 2)
    end
    if v == true then v = 1 elseif v == false then v = 0 end
    vals[i] = v
  end
  self.c:append(vals)
  if self.every and self.c:pending() >= self.every then self:flush() end
end

--- Write the buffered rows (atomically when the log was given a path).
function Log:flush()
  local n = self.c:pending()
  if n == 0 and self.stored > 0 then return end
  if self.file then
    self.c:write(self.file)
    self.file:flush()
  else
    local f = C.open_atomic(self.path, true)
    local ok, err = pcall(self.c.write, self.c, f)
    if not ok then f:discard(); error(err, 2) end
    f:close()
  end
  self.stored = self.stored + n
end

--- Rows written plus rows buffered.
function Log:rows() return self.stored + self.c:pending() end
function Log:pending() return self.c:pending() end

--- Keep only the first n stored rows and drop the buffer (used on resume).
function Log:truncate(n)
  local pend = self.c:pending()
  if pend > 0 then   -- drop buffered rows: a fresh C log with the same columns
    self.c = C.newlog(self.group, self.names, self.types)
  end
  if n == self.stored then return end
  if self.file then
    self.file:log_truncate(self.group, n)
  else
    local f = C.open_atomic(self.path, true)
    local ok, err = pcall(f.log_truncate, f, self.group, n)
    if not ok then f:discard(); error(err, 2) end
    f:close()
  end
  self.stored = n
end

local function with_file(target, fn)
  if type(target) == "string" then
    local f <close> = C.open(target, "r")
    return fn(f)
  end
  return fn(target)
end

--- Read a log table back as Lua arrays.
function M.read_log(target, group)
  return with_file(target, function(f)
    local rows = f:log_rows(group)
    local cols = {}
    for c in (f:attr_of(group, "columns") .. ","):gmatch("([^,]*),") do cols[#cols + 1] = c end
    local data = {}
    for _, c in ipairs(cols) do
      local v = f:read_array(group .. "/" .. c)
      data[c] = v
    end
    return { columns = cols, rows = rows, data = data }
  end)
end

--- Names of the log groups (groups with a "columns" attribute) in a file.
function M.logs(target)
  return with_file(target, function(f)
    local seen, out = {}, {}
    for _, e in ipairs(f:list("/")) do
      local g = e.name:match("^(.*)/[^/]*$")
      if g and not seen[g] then
        seen[g] = true
        if f:attr_of(g, "columns") then out[#out + 1] = g end
      end
    end
    table.sort(out)
    return out
  end)
end

return M
