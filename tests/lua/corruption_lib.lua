-- corruption_lib.lua - byte flips over the files of a finished run folder,
-- shared by tests/lua/test_h5_corruption.lua (a few hundred flips in CI) and
-- tools/soak-corruption (as many as asked, each batch in a child process).
--
--   local C = dofile("tests/lua/corruption_lib.lua")
--   local ctx = C.setup(dir [, reuse]) -- a 2-epoch run of tests/lua/trainer_fixture.lua
--                                     -- and what inspect, load and resume give on it
--                                     -- (reuse: the run already in dir, if any)
--   for _, fl in ipairs(C.flips(seed, n, ctx)) do   -- {file=, offset=}, fixed seed
--     local class, detail = C.check(ctx, fl)
--   end
--
-- C.check flips one byte (xor 0xff) of one file of a copy of the run folder
-- and runs on that copy: `sgdsa inspect` of the file (inspect.inspect), its
-- load (every dataset and attribute; for a checkpoint also
-- sgdsa.checkpoint.load into the model) and a resume of the folder (which
-- verifies every file and then has nothing left to train). Each one must give
-- what it gives on the intact folder, or fail with an error naming the file.
-- The class of a flip is the worst of the three:
--   "benign"  all three gave the intact folder's results (the byte was unused)
--   "error"   a clean failure naming the file (a resume may also rebuild
--             best.h5 from last.h5 or set it aside as best.h5.damaged)
--   "unnamed" a failure whose message does not name the file
--   "silent"  a success with different content: silently wrong data
-- (a crash kills the process: the soak script counts those).
local sg = sgdsa or require "sgdsa"
local h5 = require "sgdsa.h5"
local checkpoint = require "sgdsa.checkpoint"
local inspect = require "sgdsa.inspect"
local trainer = require "sgdsa.trainer"
local F = dofile("tests/lua/trainer_fixture.lua")

local M = {}
M.FILES = {"log.h5", "last.h5", "best.h5"}
local RANK = {benign = 0, error = 1, unnamed = 2, silent = 3}

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- The bytes of a list of numbers (all integers, or floats), exactly.
local function packed(list)
  local fmt = "j"
  for _, x in ipairs(list) do if math.type(x) ~= "integer" then fmt = "n" break end end
  local parts = {}
  for i = 1, #list, 2048 do
    local j = math.min(#list, i + 2047)
    parts[#parts + 1] = string.pack("<" .. fmt:rep(j - i + 1), table.unpack(list, i, j))
  end
  return fmt .. #list .. ":" .. table.concat(parts)
end

-- A text of a Lua value that tells every bit apart.
local function show(v)
  local t = type(v)
  if math.type(v) == "float" then return string.format("%a", v) end
  if t == "number" or t == "boolean" or t == "nil" then return tostring(v) end
  if t == "string" then return string.format("%q", v) end
  local mt = getmetatable(v)
  if mt and mt.__name == "sgdsa.Tensor" then
    return v:dtype() .. "[" .. table.concat(v:size(), "x") .. "]" .. packed(v:contiguous():view(-1):totable())
  end
  if #v > 0 and next(v, #v) == nil and type(v[1]) == "number" then
    local numbers = true
    for _, x in ipairs(v) do if type(x) ~= "number" then numbers = false break end end
    if numbers then return packed(v) end
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. show(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end
M.show = show

-- Every dataset (value) and every attribute of every object of a file.
local function content(path)
  local f <close> = h5.open(path, "r")
  local out, groups = {}, {["/"] = true}
  for _, e in ipairs(f:list("/")) do
    out[#out + 1] = e.name .. " = " .. show(h5.get(f, e.name)) .. " @" .. show(f:attrs(e.name))
    local g = e.name
    while g:find("/", 1, true) do
      g = g:match("^(.*)/[^/]*$")
      groups[g] = true
    end
  end
  for g in pairs(groups) do out[#out + 1] = g .. " @" .. show(f:attrs(g)) end
  table.sort(out)
  return table.concat(out, "\n")
end

-- The model's tensors and the state tree as checkpoint.load gives them.
local function loaded(path)
  local model = F.model()
  local state, attrs = checkpoint.load(path, model)
  local w = {}
  for _, e in ipairs(model:named_tensors()) do w[e.name] = e.tensor end
  return show(w) .. "\n" .. show(state) .. "\n" .. show(attrs)
end

local function weights(model)
  local w = {}
  for _, e in ipairs(model:named_tensors()) do w[e.name] = e.tensor end
  return show(w)
end

-- The run's experiment (2 epochs of the trainer fixture) with overrides.
local function experiment(ctx, extra)
  local e = F.experiment(ctx.data, {epochs = 2, progress = "off"})
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

--- Make the run (or, with reuse, take the one already there) and the intact
--- results under dir.
function M.setup(dir, reuse)
  local ctx = {dir = dir, work = dir .. "/work/run", data = dir .. "/trainer_fixture_data.h5"}
  if not (reuse and sg.core.exists(dir .. "/base/run/last.h5")) then
    os.execute("rm -rf '" .. dir .. "'")
    sg.core.mkdir_p(dir .. "/base")
    F.data_file(dir)
    local r = trainer.train(experiment(ctx, {out = dir .. "/base", name = "run"}))
    assert(r.epochs_done == 2, "the base run did not finish")
  end
  sg.core.mkdir_p(ctx.work)
  ctx.bytes, ctx.base = {}, {}
  for _, name in ipairs(M.FILES) do ctx.bytes[name] = read(dir .. "/base/run/" .. name) end
  -- the intact results, on the folder the flips use (inspect prints the path)
  for _, name in ipairs(M.FILES) do write(ctx.work .. "/" .. name, ctx.bytes[name]) end
  for _, name in ipairs(M.FILES) do
    local p = ctx.work .. "/" .. name
    ctx.base[name] = {inspect = inspect.inspect(p, {all = true}), content = content(p),
                      loaded = name ~= "log.h5" and loaded(p) or nil}
  end
  ctx.base.best_weights = (loaded(ctx.work .. "/best.h5")):match("^[^\n]*")
  local rr = trainer.train(experiment(ctx, {out = dir .. "/work", resume = ctx.work}))
  ctx.base.resumed = weights(rr.model)
  return ctx
end

--- n flips {file=, offset=} drawn with a fixed seed, spread evenly over the
--- three files (offsets uniform within each).
function M.flips(seed, n, ctx)
  local g = sg.Generator(seed, "corruption")
  local out = {}
  for i = 1, n do
    local name = M.FILES[(i - 1) % #M.FILES + 1]
    out[i] = {file = name, offset = g:random(#ctx.bytes[name]) - 1}
  end
  return out
end

-- Classify one operation: ok and same, or a failure naming `path`.
local function verdict(ok, result, want, path)
  if ok then
    if result == want then return "benign" end
    return "silent", "different content"
  end
  local msg = tostring(result)
  if msg:find(path, 1, true) then return "error", msg end
  return "unnamed", msg
end

--- Flip one byte and classify inspect, load and resume of the folder.
--- Returns the class and a line saying what each operation did.
function M.check(ctx, fl)
  local dir = ctx.work
  for _, name in ipairs(sg.core.listdir(dir) or {}) do os.remove(dir .. "/" .. name) end
  for _, name in ipairs(M.FILES) do
    local s = ctx.bytes[name]
    if name == fl.file then
      local o = fl.offset
      s = s:sub(1, o) .. string.char(s:byte(o + 1) ~ 0xff) .. s:sub(o + 2)
    end
    write(dir .. "/" .. name, s)
  end
  local path = dir .. "/" .. fl.file
  local base = ctx.base[fl.file]
  local worst, notes = "benign", {}
  local function note(what, class, detail)
    if RANK[class] > RANK[worst] then worst = class end
    notes[#notes + 1] = what .. " " .. class .. (detail and class ~= "benign" and (": " .. detail:gsub("\n", " | ")) or "")
  end
  local ok, text = pcall(inspect.inspect, path, {all = true})
  note("inspect", verdict(ok, text, base.inspect, path))
  ok, text = pcall(content, path)
  note("content", verdict(ok, text, base.content, path))
  if base.loaded then
    ok, text = pcall(loaded, path)
    note("load", verdict(ok, text, base.loaded, path))
  end
  -- the resume verifies every file; it may rebuild or set aside best.h5
  -- (and says so on stderr: not shown here)
  local r
  local stderr = io.stderr
  io.stderr = assert(io.open("/dev/null", "w"))
  ok, r = pcall(trainer.train, experiment(ctx, {out = ctx.dir .. "/work", resume = dir}))
  io.stderr:close()
  io.stderr = stderr
  if not ok then
    note("resume", verdict(false, r, nil, path))
  elseif weights(r.model) ~= ctx.base.resumed then
    note("resume", "silent", "resumed weights differ")
  else
    local class, detail = "benign", nil
    for _, name in ipairs{"log.h5", "last.h5"} do
      local okc, c = pcall(content, dir .. "/" .. name)
      if not okc or c ~= ctx.base[name].content then class, detail = "silent", name .. " differs after the resume" end
    end
    local damaged = sg.core.exists(dir .. "/best.h5.damaged")
    if class == "benign" and fl.file == "best.h5" and damaged then
      class, detail = "error", "best.h5 set aside as best.h5.damaged"
    elseif class == "benign" and sg.core.exists(dir .. "/best.h5") then
      local okb, b = pcall(loaded, dir .. "/best.h5")
      if not okb or b:match("^[^\n]*") ~= ctx.base.best_weights then
        class, detail = "silent", "best.h5 weights differ after the resume"
      elseif fl.file == "best.h5" and read(dir .. "/best.h5") ~= ctx.bytes["best.h5"] then
        class, detail = "error", "best.h5 rebuilt from last.h5"
      end
    elseif class == "benign" then
      class, detail = "silent", "best.h5 vanished"
    end
    note("resume", class, detail)
  end
  return worst, table.concat(notes, "; ")
end

return M
