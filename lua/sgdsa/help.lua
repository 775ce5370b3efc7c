-- sgdsa.help - help(x) in the REPL: the documentation of x, read from the
-- comments of the Lua sources that define it.
--
--   help()                         the index: the modules and what each holds
--   help(sgdsa.optim.sgdsa)        a function: its definition line and the
--                                  comment block above it
--   help(sgdsa.nn), help "sgdsa.optim.metropolis"
--                                  a module (or a name, loaded if need be):
--                                  its opening comment and its functions
--   help(sgdsa.nn.Linear)          a class: the comment above its definition
--   help(opt), help(piece), help(model), help(data), help(search)
--                                  an object: its summary and the comment of
--                                  what built it
--   help.text(x)                   the same text, returned instead of printed
--
-- Functions written in C (tensors, generators) have no Lua source: help
-- names them and lists the tensor methods (help(sgdsa.Tensor)).
local M = {}

-- ---- reading sources --------------------------------------------------------------

local cache = {}

local function lines_of(path)
  if cache[path] ~= nil then return cache[path] or nil end
  local f = io.open(path, "r")
  if not f then cache[path] = false; return nil end
  local t = {}
  for line in f:lines() do t[#t + 1] = line end
  f:close()
  cache[path] = t
  return t
end

local function strip(line)
  return (line:gsub("^%s*%-%-%-?%s?", ""))
end

-- The comment block directly above line n (n itself excluded), as text.
local function comment_above(lines, n)
  local out = {}
  local i = n - 1
  while i >= 1 and lines[i]:match("^%s*%-%-") do
    table.insert(out, 1, strip(lines[i]))
    i = i - 1
  end
  return table.concat(out, "\n")
end

-- The opening comment block of a file.
local function header(lines)
  local out = {}
  for _, line in ipairs(lines) do
    if not line:match("^%-%-") then break end
    out[#out + 1] = strip(line)
  end
  return table.concat(out, "\n")
end

local function source_file(fn)
  local info = debug.getinfo(fn, "S")
  if info.what == "C" then return nil end
  local src = info.source
  if src:sub(1, 1) ~= "@" then return nil, info end
  return src:sub(2), info
end

local function module_file(name)
  return package.searchpath(name, package.path)
end

-- The first line of a module's opening comment, without the module's name.
local function summary_of(name)
  local path = module_file(name)
  local lines = path and lines_of(path)
  if not lines or not lines[1] then return "" end
  local first = strip(lines[1])
  return first:match("^[%w_.]+%s*[%-:]+%s*(.*)$") or first
end

-- ---- names --------------------------------------------------------------------------

-- The loaded sgdsa modules, name -> table, and the sgdsa table itself.
local function loaded_modules()
  local mods = {}
  for name, mod in pairs(package.loaded) do
    if type(mod) == "table" and (name == "sgdsa" or name:match("^sgdsa%.")) then mods[name] = mod end
  end
  return mods
end

-- The dotted name of value v among the loaded modules (and one level into
-- their tables: classes, Tensor methods), or nil.
local function name_of(v)
  local mods = loaded_modules()
  for name, mod in pairs(mods) do
    if mod == v then return name end
  end
  local names = {}
  for name in pairs(mods) do names[#names + 1] = name end
  table.sort(names, function(a, b) return #a < #b or (#a == #b and a < b) end)
  for _, name in ipairs(names) do
    for k, x in next, mods[name] do
      if x == v and type(k) == "string" then
        return (name == "sgdsa.core" and "sgdsa" or name) .. "." .. k
      end
    end
  end
  local core = package.loaded["sgdsa.core"]
  if core and type(core.Tensor) == "table" then
    for k, x in pairs(core.Tensor) do
      if x == v then return "Tensor:" .. k end
    end
  end
  for _, name in ipairs(names) do
    for k, cls in next, mods[name] do
      if type(cls) == "table" and type(k) == "string" and k:match("^%u") then
        for m, x in next, cls do
          if x == v and type(m) == "string" then return name .. "." .. k .. ":" .. m end
        end
      end
    end
  end
  return nil
end
M.name_of = name_of

-- ---- what to show -------------------------------------------------------------------

local function fn_doc(fn, name)
  local path, info = source_file(fn)
  if not path then
    if info then return string.format("%s: a function defined in %s (no source file to read)", name, info.short_src) end
    local what = name and name:match("^Tensor:") and
      "a tensor method, in C: t:" .. name:sub(8) .. "(...), as in Torch7 and PyTorch" or "a function of the C core"
    return string.format("%s: %s; help(sgdsa.Tensor) lists the tensor methods, README.md shows them at work",
                         name or "this function", what)
  end
  -- a name that is a module of its own (sgdsa.optim.metropolis, loaded on
  -- first use through a wrapper): that module's opening comment
  local own = name and name:match("^[%w_.]+$") and module_file(name)
  if own and own ~= path and lines_of(own) then
    return string.format("%s  (%s)\n\n%s", name, own, header(lines_of(own)))
  end
  local lines = lines_of(path)
  if not lines then return string.format("%s: defined in %s:%d (the file cannot be read)", name, path, info.linedefined) end
  local def = lines[info.linedefined] or ""
  local doc = comment_above(lines, info.linedefined)
  if doc == "" then
    -- a module's `return function(o)`: the file's opening comment documents it
    doc = header(lines)
  end
  return string.format("%s  (%s:%d)\n  %s\n\n%s", name or "function", info.short_src, info.linedefined,
                       def:gsub("^%s+", ""), doc)
end

-- The functions of a module table, each with the first line of its doc.
local function function_list(mod)
  local keys = {}
  for k, v in pairs(mod) do
    if type(k) == "string" and not k:match("^_") and (type(v) == "function"
        or (type(v) == "table" and getmetatable(v) and getmetatable(v).__call)) then
      keys[#keys + 1] = k
    end
  end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    local v = mod[k]
    local first = ""
    if type(v) == "function" then
      local path, info = source_file(v)
      local lines = path and lines_of(path)
      if lines then first = (comment_above(lines, info.linedefined):match("^[^\n]*")) or "" end
    end
    out[#out + 1] = string.format("  %-22s %s", k, first)
  end
  return table.concat(out, "\n")
end

local function module_doc(name, mod)
  local path = module_file(name)
  local lines = path and lines_of(path)
  local text = lines and header(lines) or (name .. ": no Lua source (the C core)")
  local lazy = getmetatable(mod) and getmetatable(mod).__complete
  local extra = ""
  if type(lazy) == "table" then
    local ks = {}
    for k in pairs(lazy) do ks[#ks + 1] = k end
    table.sort(ks)
    extra = "\n\nloaded on first use: " .. table.concat(ks, ", ")
  end
  return string.format("%s%s\n\n%s\n\nfunctions:\n%s%s", name,
                       path and ("  (" .. path .. ")") or "", text, function_list(mod), extra)
end

-- The comment above `nn.class("Kind"` for an nn class.
local function class_doc(cls, name)
  local init = rawget(cls, "__init")
  local path = init and source_file(init) or module_file("sgdsa.nn.layers")
  local lines = path and lines_of(path)
  local text = ""
  local c = cls
  while lines and text == "" and type(c) == "table" and c.kind do
    for i, line in ipairs(lines) do    -- the comment above nn.class("Kind"), else its parent's
      if line:find('nn.class("' .. c.kind .. '"', 1, true) then
        text = comment_above(lines, i)
        break
      end
    end
    c = rawget(c, "super")
  end
  local sig = ""
  if init then
    local _, info = source_file(init)
    sig = "\n  " .. ((lines and lines[info.linedefined] or ""):gsub("^%s+", ""))
    local above = lines and comment_above(lines, info.linedefined) or ""
    if above ~= "" then text = text .. (text ~= "" and "\n" or "") .. above end
  end
  return string.format("%s  (a class: %s(...) builds one)%s\n\n%s", name or cls.kind, name or cls.kind,
                       sig, text)
end

local function is_model(v) return v.params and v.forward and v.named_tensors and true end
local function is_piece(v) return type(v.propose) == "function" or type(v.decide) == "function" end

--- The help text of x (see the top of this file).
function M.text(x, name)
  if x == nil then return M.index() end
  if type(x) == "string" and name == nil then
    local v, full = M.resolve(x)
    if v == nil then return full end
    return M.text(v, full)
  end
  name = name or name_of(x)
  local ty = type(x)
  if ty == "function" then return fn_doc(x, name) end
  if ty == "userdata" then
    local mt = getmetatable(x)
    if mt and mt.__name == "sgdsa.Tensor" then
      return tostring(x) .. "\n\n" .. M.text(package.loaded["sgdsa.core"].Tensor, "sgdsa.Tensor")
    end
    return tostring(x)
  end
  if ty ~= "table" then return string.format("%s (a %s): nothing to document", tostring(x), ty) end
  local core = package.loaded["sgdsa.core"]
  if core and x == core.Tensor then
    local ks = {}
    for k in pairs(x) do ks[#ks + 1] = k end
    table.sort(ks)
    return "sgdsa.Tensor: the tensor methods (C; t:add(x) makes a new tensor, t:add_(x) works in place),\n" ..
           "as in Torch7 and PyTorch with 1-based indices:\n  " ..
           table.concat(ks, " "):gsub("(" .. ("[^ ]+ "):rep(8) .. ")", "%1\n  ")
  end
  for mname, mod in pairs(loaded_modules()) do
    if mod == x then return module_doc(mname, x) end
  end
  local mt = getmetatable(x)
  if rawget(x, "kind") and rawget(x, "super") then return class_doc(x, name) end
  if mt and mt.__name == "sgdsa.optim optimizer" then
    local optim = require "sgdsa.optim"
    return tostring(x) .. "\n\n" .. fn_doc(optim[x.kind], "sgdsa.optim." .. x.kind)
  end
  if mt and mt.__name == "sgdsa.search" then
    return tostring(x) .. "\n\n" .. module_doc("sgdsa.search", require "sgdsa.search")
  end
  if is_piece(x) then
    local kind = rawget(x, "kind")
    local optim = require "sgdsa.optim"
    if kind and optim.pieces[kind] then
      local lines = lines_of(module_file(optim.pieces[kind]) or "")
      return tostring(x) .. "\n\n" .. (lines and header(lines) or "")
    end
    local fn = rawget(x, "fn") or x.propose or x.decide
    local role = type(x.propose) == "function" and "neighborhood" or "acceptance"
    return optim.piece_label(x, role) .. "\n\n" .. fn_doc(fn, role .. " " .. tostring(x.name or ""))
  end
  if is_model(x) then
    local lines = x.name and lines_of(module_file("sgdsa.models." .. x.name) or "")
    return tostring(x) .. (lines and ("\n\n" .. header(lines)) or "")
  end
  if x.train and x.info then
    return tostring(x) .. "\n\n" .. module_doc("sgdsa.data", require "sgdsa.data")
  end
  return string.format("%s: a table with no documentation (its fields: help shows modules, functions, classes and objects of sgdsa)",
                       name or tostring(x))
end

--- The value a name stands for and its full name: "sgdsa.optim.metropolis",
-- "optim.sgdsa", "nn.Linear" (under sgdsa), a module name; lazily loaded
-- parts are loaded. nil and a message when there is none.
function M.resolve(s)
  local function walk(root, path)
    local v = root
    for part in path:gmatch("[^.:]+") do
      if type(v) ~= "table" and not (type(v) == "userdata") then return nil end
      local ok, x = pcall(function() return v[part] end)
      if not ok or x == nil then return nil end
      v = x
    end
    return v
  end
  local v, full = walk(_G, s), s
  if v == nil then
    v, full = walk(require "sgdsa", (s:gsub("^sgdsa[.]", ""))), "sgdsa." .. s:gsub("^sgdsa[.]", "")
  end
  if v == nil and s:match("^[%w_.]+$") then
    local ok, mod = pcall(require, s)
    if ok and mod ~= nil then v, full = mod, s end
  end
  if v == nil then
    return nil, string.format("help: nothing is named %q (help() lists the modules)", s)
  end
  return v, full
end

--- The index: the modules and what each holds.
function M.index()
  local sg = require "sgdsa"
  local optim = require "sgdsa.optim"
  local pieces = {}
  for k in pairs(optim.pieces) do pieces[#pieces + 1] = k end
  table.sort(pieces)
  local rows = {
    {"sgdsa", "tensors (zeros, ones, tensor, randn, ...), generators (stream, Generator), the C core"},
    {"sgdsa.Tensor", "the tensor methods"},
    {"sgdsa.nn", summary_of("sgdsa.nn")},
    {"sgdsa.data", summary_of("sgdsa.data")},
    {"sgdsa.optim", "optimizers sgdsa, sgd, ssa, optimizer; pieces " .. table.concat(pieces, ", ")},
    {"sgdsa.models", table.concat(sg.models.names(), ", ")},
    {"sgdsa.h5", summary_of("sgdsa.h5")},
    {"sgdsa.trainer", summary_of("sgdsa.trainer")},
    {"sgdsa.search", summary_of("sgdsa.search")},
    {"sgdsa.checkpoint", summary_of("sgdsa.checkpoint")},
    {"sgdsa.results", summary_of("sgdsa.results")},
  }
  local out = {"help(x): the documentation of x, from the comments of the source that defines it:",
               "a function, a module, a class, an optimizer or one of its pieces, a model, a data",
               "set, a search, or a name: help \"sgdsa.optim.metropolis\". The modules:", ""}
  for _, r in ipairs(rows) do out[#out + 1] = string.format("  %-17s %s", r[1], r[2]) end
  out[#out + 1] = ""
  out[#out + 1] = "The commands (run, sweep, table, plot, inspect, ...): `sgdsa --help` in a shell."
  return table.concat(out, "\n")
end

-- help(x) prints; `help` alone (the REPL prints values) shows the index.
return setmetatable(M, {
  __call = function(_, ...)
    if select("#", ...) == 0 then
      io.write(M.index(), "\n")
    elseif (...) == nil then
      io.write("help: got nil (nothing there; help \"name\" looks a name up, help() lists the modules)\n")
    else
      io.write(M.text((...)), "\n")
    end
  end,
  __tostring = function() return M.index() end,
  __name = "sgdsa.help",
})
