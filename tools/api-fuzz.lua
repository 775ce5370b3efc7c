-- api-fuzz.lua - random calls into sgdsa's public Lua API, to find ways a Lua
-- caller can crash the process (a signal, a sanitizer report, a hang).
--
--   cd DIR && sgdsa run /path/to/tools/api-fuzz.lua seed=N calls=M [tmp=DIR]
--       [only=LUA_PATTERN] [quiet=true] [list=true]
--
-- From a fixed seed it calls the functions of sgdsa, sgdsa.core and its
-- sub-tables (nn, data, h5, cuda), the Lua modules (sgdsa.nn, .data, .h5,
-- .optim) and the methods and metamethods of every object type (tensors,
-- generators, HDF5 files and logs, datasets, loaders, nn modules, models),
-- with arguments drawn from a pool of awkward values (nil, NaN, +-inf,
-- 2^31, 2^62, math.mininteger, long and format-like strings, odd tables,
-- functions, coroutines, tensors of many shapes, dtypes and views, freed
-- tensors, closed files, freed loaders) and the results of earlier calls.
-- Every call runs inside pcall: a Lua error is the expected outcome. Before
-- each call the line "CALL <n>: <call>" is printed and flushed, so when the
-- process dies the last such line names the call that killed it (with the
-- seed, that reproduces the run); the objects in the pool are named when
-- made ("T3 = sg.randn(2, 3):t()", "R17 = ..." for results).
--
-- The driver writes files only under DIR (tmp=, default the current folder),
-- and must be started with DIR as the current folder: relative paths that
-- calls receive (h5 files, mkdir_p, fsync_rename) land there. It refuses to
-- run elsewhere. Memory is not capped here: run it under `ulimit -v` (release
-- builds) or ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=..
-- (sanitizer builds); see tests/lua/test_api_robust.lua.
-- Excluded (they would make the driver the cause of a failure): sleep
-- (a long sleep is a hang by request), catch_signals (it would stop the
-- runner's timeout from killing the process), set_num_threads (thousands
-- of OpenMP threads are allowed and slow) and sgemm_gflops (minutes of
-- sgemm calls are allowed too).
local sg = sgdsa or require "sgdsa"
local core = sg.core
local args = ... or sgdsa.args or {}

local SEED = tonumber(args.seed) or 1
local CALLS = tonumber(args.calls) or 1000
local ONLY = args.only
local QUIET = args.quiet == true or args.quiet == "true"
local TMP = args.tmp or os.getenv("PWD") or "."
local REFRESH = tonumber(args.refresh) or 250

-- ---- the working folder --------------------------------------------------------------
do
  local marker = ".api-fuzz-" .. tostring(os.time()) .. "-" .. tostring(math.random(1 << 30))
  local f = io.open(TMP .. "/" .. marker, "w")
  if f then f:close() end
  local here = io.open(marker, "r")
  os.remove(TMP .. "/" .. marker)
  if not f or not here then
    io.stderr:write("api-fuzz: run me with the current folder = tmp (", TMP, ")\n")
    os.exit(2)
  end
  here:close()
end

math.randomseed(SEED)
local rnd = math.random

local out = io.stdout
local function say(...)
  if not QUIET then
    out:write(...)
    out:write("\n")
    out:flush()
  end
end
-- The call line is always written (it is what names a crash).
local function announce(s)
  out:write(s, "\n")
  out:flush()
end

-- ---- names of values -------------------------------------------------------------------
local names = setmetatable({}, { __mode = "k" }) -- object -> name
local strnames = {}                              -- string -> expression

local function show(v)
  local t = type(v)
  if t == "number" then
    if math.type(v) == "integer" then
      if v == math.mininteger then return "math.mininteger" end
      if v == math.maxinteger then return "math.maxinteger" end
      return tostring(v)
    end
    if v ~= v then return "(0/0)" end
    if v == math.huge then return "math.huge" end
    if v == -math.huge then return "-math.huge" end
    local s = string.format("%.17g", v)
    if not s:find("[%.eni]") then s = s .. ".0" end
    return s
  elseif t == "string" then
    return strnames[v] or string.format("%q", v)
  elseif t == "nil" or t == "boolean" then
    return tostring(v)
  end
  return names[v] or ("<" .. t .. ">")
end

-- ---- the pool ----------------------------------------------------------------------------
local pool = {}     -- values (a value may appear more than once)
local npool = 0
local POOL_MAX = 400
local fixed = 0     -- the first `fixed` entries are never replaced
local kinds = {}    -- kind -> list of objects of that kind (for self)
local results = { funcs = {}, objs = {} } -- see add()

local function kind_of(v)
  if core.is_tensor(v) then return "Tensor" end
  local mt = getmetatable(v)
  if type(mt) == "table" then
    local n = rawget(mt, "__name")
    if n == "sgdsa.Generator" then return "Generator" end
    if n == "sgdsa.H5File" then return "H5File" end
    if n == "sgdsa.H5Log" then return "H5Log" end
    if n == "sgdsa.Dataset" then return "Dataset" end
    if n == "sgdsa.Loader" then return "Loader" end
    if type(v) == "table" then
      if mt == sg.nn.Model then return "Model" end
      if rawget(mt, "kind") and rawget(mt, "super") then return "Module" end
      if rawget(v, "c") ~= nil and rawget(v, "dataset") ~= nil then return "DataLoader" end
    end
  end
  return nil
end

local function add(v, name)
  if v == nil then return end
  if type(v) == "string" and #v > 4096 then return end
  -- big results are not kept (memory); a tensor is big once it is
  if core.is_tensor(v) then
    local ok, n = pcall(v.numel, v)
    if ok and n > (1 << 16) then return end
  end
  -- never hand a path outside the working folder to later calls
  if type(v) == "string" and v:sub(1, 1) == "/" and v:sub(1, #TMP) ~= TMP then return end
  if name and type(v) ~= "number" and type(v) ~= "boolean" then
    if type(v) == "string" then
      if not strnames[v] and #v > 40 then strnames[v] = name end
    elseif not names[v] then
      names[v] = name
    end
  end
  if npool < POOL_MAX then
    npool = npool + 1
    pool[npool] = v
  else
    pool[fixed + rnd(npool - fixed)] = v
  end
  local k = kind_of(v)
  if not k and name and name:sub(1, 1) == "R" then
    -- results that are functions (iterators) or tables with methods (optimizers,
    -- data objects): called later through "call" and "method" pseudo-targets
    local l
    if type(v) == "function" then
      l = results.funcs
    elseif type(v) == "table" then
      local mt = getmetatable(v)
      local idx = type(mt) == "table" and type(rawget(mt, "__index")) == "table" and rawget(mt, "__index")
      for _, src in ipairs{v, idx or {}} do
        for _, f in pairs(src) do if type(f) == "function" then l = results.objs; break end end
      end
    end
    if l then
      l[#l + 1] = v
      if #l > 40 then table.remove(l, 1) end
    end
  end
  if k then
    local l = kinds[k] or {}
    kinds[k] = l
    l[#l + 1] = v
    if #l > 40 then table.remove(l, 1) end -- the oldest (likely closed or freed) goes
  end
end

-- A named object made by `fn` (described by `expr`); nothing when fn fails.
local nobj = 0
local function make(prefix, expr, fn)
  local ok, v = pcall(fn)
  if not ok or v == nil then
    say("# setup failed: ", expr, ": ", tostring(v))
    return nil
  end
  nobj = nobj + 1
  local name = prefix .. nobj
  names[v] = names[v] or name
  say(name, " = ", expr)
  add(v, name)
  return v
end

-- plain values
local numbers = { 0, -1, 1, 2, 3, 4, 5, 7, 28, 255, 256, 2^31, 2^31 - 1, 2^32, 2^53, 2^62,
                  -2^63, math.maxinteger, math.mininteger, 1 << 31, 1 << 40, -(1 << 31),
                  math.huge, -math.huge, 0/0, 0.5, -0.0, 1e300, -1e-300, 1e9, 0.1 }
for _, v in ipairs(numbers) do add(v) end
add(true); add(false)
local long = string.rep("a", 300)
strnames[long] = 'string.rep("a", 300)'
local strings = { "", "abc", "float32", "int32", "uint8", "float64", "int64", "uint64",
                  "cuda", "cpu", "cuda:1", "r", "w", "a", "x", "NCHW", "NHWC", "train",
                  "eval", "trial", "default", "stop", "/", "g/h", ".", "..", "%s%s%s%n",
                  "f.h5", "sub/f.h5", "cifar10", "cifar100", long, "\0x", "1", "-1", "0x10",
                  "auto", "im2col", "dnnl", "images", "labels", "fine", "coarse" }
for _, s in ipairs(strings) do add(s) end

-- tables (shapes, options, odd ones)
local function T(expr, v) nobj = nobj + 1; names[v] = "K" .. nobj; say("K", nobj, " = ", expr); add(v) end
T("{}", {}); T("{2, 3}", {2, 3}); T("{-1}", {-1}); T("{0}", {0}); T("{1e9, 1e9}", {1e9, 1e9})
T("{2, 2}", {2, 2}); T("{1, 1, 2, 2}", {1, 1, 2, 2}); T("{{1, 2}, {3, 4}}", {{1, 2}, {3, 4}})
T("{1, 'a'}", {1, "a"}); T("{2^31, 2^31}", {2^31, 2^31}); T("{0, 2^62, 2^62}", {0, 2^62, 2^62})
T("{1,1,1,1,1,1,1,1,1}", {1, 1, 1, 1, 1, 1, 1, 1, 1}); T("{0/0}", {0/0}); T("{math.huge}", {math.huge})
T("{2.5}", {2.5}); T("{-2^63}", {-2^63}); T("{{1}, {2, 3}}", {{1}, {2, 3}})
T("{{{{{{{{{{1}}}}}}}}}}", {{{{{{{{{{1}}}}}}}}}})
T("setmetatable({}, {__len = 2^31})", setmetatable({}, { __len = function() return 2^31 end }))
T("setmetatable({}, {__len = -5})", setmetatable({}, { __len = function() return -5 end }))
T("setmetatable({}, {__len = 'x'})", setmetatable({}, { __len = function() return "x" end }))
T("setmetatable({}, {__index = error})", setmetatable({}, { __index = function() error("index trap") end }))
do local s = {}; s[1] = s; s[2] = s; T("self-referencing {s, s}", s) end
T("{batch = 2}", {batch = 2}); T("{batch = 0}", {batch = 0}); T("{batch = 2^62}", {batch = 2^62})
T("{batch = 3, pad = 2, crop = 2, flip = true, prefetch = 0}", {batch = 3, pad = 2, crop = 2, flip = true, prefetch = 0})
T("{batch = 4, prefetch = 8, workers = 2}", {batch = 4, prefetch = 8, workers = 2})
T("{mean = {0.5}, std = {0}}", {mean = {0.5}, std = {0}})
T("{mean = {0.5}, std = {0.25}}", {mean = {0.5}, std = {0.25}})
T("{pad = 2^31 + 1}", {pad = 2^31 + 1}); T("{raw = true, batch = 2}", {raw = true, batch = 2})
T("{shape = {2, 3}}", {shape = {2, 3}}); T("{dtype = 'int32'}", {dtype = "int32"})
T("{shape = {2^62, 4}}", {shape = {2^62, 4}}); T("{max_bytes = -1}", {max_bytes = -1})
T("{atomic = true}", {atomic = true}); T("{legacy = true}", {legacy = true})
T("{crop = 2, flip = true}", {crop = 2, flip = true}); T("{bias = false}", {bias = false})
T("{input = {1, 5, 5}}", {input = {1, 5, 5}}); T("{input = {0}}", {input = {0}})
T("{epoch = 0, index = 0}", {epoch = 0, index = 0})
T("{epoch = 1, index = math.maxinteger}", {epoch = 1, index = math.maxinteger})
T("{1, 2, 3, 4}", {1, 2, 3, 4}); T("{math.maxinteger, 0, 0, 0}", {math.maxinteger, 0, 0, 0})
T("{0, 0, 1, 4}", {0, 0, 1, 4})

-- functions and coroutines
local function F(expr, v) nobj = nobj + 1; names[v] = "F" .. nobj; say("F", nobj, " = ", expr); add(v) end
F("function() end", function() end)
F("function() error('boom') end", function() error("boom") end)
F("function() error({}) end", function() error({}) end)
F("function() collectgarbage() end", function() collectgarbage() end)
F("function(...) return ... end", function(...) return ... end)
F("coroutine.yield", coroutine.yield)
F("coroutine.create(function() end)", coroutine.create(function() end))
F("coroutine.create(coroutine.yield) (suspended)", (function() local c = coroutine.create(coroutine.yield); coroutine.resume(c); return c end)())
do local f = io.tmpfile(); f:close(); F("a closed file", f) end

-- tensors
make("T", "sg.zeros(0)", function() return sg.zeros(0) end)
make("T", "sg.zeros(1)", function() return sg.zeros(1) end)
make("T", "sg.tensor(3)", function() return sg.tensor(3) end)
make("T", "sg.tensor(3, 'int32')", function() return sg.tensor(3, "int32") end)
make("T", "sg.randn(2, 3)", function() return sg.randn(2, 3) end)
make("T", "sg.randn(3, 4):t()", function() return sg.randn(3, 4):t() end)
make("T", "sg.randn(4, 5):narrow(2, 2, 3)", function() return sg.randn(4, 5):narrow(2, 2, 3) end)
make("T", "sg.randn(3, 4, 5):select(2, 2)", function() return sg.randn(3, 4, 5):select(2, 2) end)
make("T", "sg.arange(24):view(2, 3, 4):transpose(1, 3):narrow(1, 2, 2)",
     function() return sg.arange(24):view(2, 3, 4):transpose(1, 3):narrow(1, 2, 2) end)
make("T", "sg.zeros(2, 3, 'int32')", function() return sg.zeros(2, 3, "int32") end)
make("T", "sg.zeros(2, 3, 'uint8')", function() return sg.zeros(2, 3, "uint8") end)
make("T", "sg.tensor{1, 0, 2, 1}:int()", function() return sg.tensor{1, 0, 2, 1}:int() end)
make("T", "sg.tensor{7, -1}:int()", function() return sg.tensor{7, -1}:int() end)
make("T", "sg.zeros(4, 'int32'):fill(2^31 - 1)", function() return sg.zeros(4, "int32"):fill(2^31 - 1) end)
make("T", "sg.randn(2, 1, 5, 5)", function() return sg.randn(2, 1, 5, 5) end)
make("T", "sg.randn(2, 3, 6, 6)", function() return sg.randn(2, 3, 6, 6) end)
make("T", "sg.randn(4, 3, 3, 3)", function() return sg.randn(4, 3, 3, 3) end)
make("T", "sg.randn(2, 1, 3, 3)", function() return sg.randn(2, 1, 3, 3) end)
make("T", "sg.randn(4, 25)", function() return sg.randn(4, 25) end)
make("T", "sg.randn(3, 25)", function() return sg.randn(3, 25) end)
make("T", "sg.randn(4, 3)", function() return sg.randn(4, 3) end)
make("T", "sg.randn(3)", function() return sg.randn(3) end)
make("T", "sg.randn(2)", function() return sg.randn(2) end)
make("T", "sg.zeros(3, 0, 2)", function() return sg.zeros(3, 0, 2) end)
make("T", "sg.zeros(0, 4)", function() return sg.zeros(0, 4) end)
make("T", "sg.zeros(0, 1, 5, 5)", function() return sg.zeros(0, 1, 5, 5) end)
make("T", "sg.randn(1, 1, 1, 1, 1, 1, 1, 2)", function() return sg.randn(1, 1, 1, 1, 1, 1, 1, 2) end)
make("T", "sg.randn(6, 6):t():t():narrow(1, 2, 3):narrow(2, 2, 2)",
     function() return sg.randn(6, 6):t():t():narrow(1, 2, 3):narrow(2, 2, 2) end)
make("T", "sg.randn(5, 5):select(1, 3)", function() return sg.randn(5, 5):select(1, 3) end)
make("T", "sg.randn(3):view(1, 3):narrow(2, 1, 0)", function() return sg.randn(3):view(1, 3):narrow(2, 1, 0) end)
make("T", "sg.full({2, 2}, 0/0)", function() return sg.full({2, 2}, 0/0) end)
make("T", "sg.full({3}, math.huge)", function() return sg.full({3}, math.huge) end)
make("T", "freed sg.ones(3)", function() local t = sg.ones(3); t:free(); return t end)
make("T", "view of a freed tensor", function() local t = sg.ones(2, 3); local v = t:narrow(1, 1, 1); t:free(); return v end)
make("T", "__gc-ed sg.ones(2)", function() local t = sg.ones(2); getmetatable(t).__gc(t); return t end)
make("T", "sg.randn(64, 64)", function() return sg.randn(64, 64) end)
make("T", "sg.zeros(1e6)", function() return sg.zeros(1e6) end)

-- generators
make("G", "sg.Generator(1)", function() return sg.Generator(1) end)
make("G", "sg.Generator(-1, 'x')", function() return sg.Generator(-1, "x") end)
make("G", "sg.stream('fuzz')", function() return sg.stream("fuzz") end)

-- files, logs, datasets, loaders and models: made at the start and again every
-- REFRESH calls (calls close, free and collect them)
local here = debug.getinfo(1, "S").source:match("^@(.*)/tools/[^/]*$")
local TL = dofile(here .. "/tests/lua/testlib.lua")
local write = TL.write_file
do -- small IDX and CIFAR-10 files
  os.execute("mkdir -p '" .. TMP .. "/idx'")
  TL.write_idx(TMP .. "/idx", "train", 10, 6, 5)
  TL.write_idx(TMP .. "/idx", "t10k", 10, 6, 5)
  local rec = {}
  for i = 0, 2 do rec[#rec + 1] = string.char(i) .. string.rep(string.char(i * 40), 3072) end
  write(TMP .. "/c10.bin", table.concat(rec))
end
local IMG, LAB = TMP .. "/idx/train-images-idx3-ubyte", TMP .. "/idx/train-labels-idx1-ubyte"
add(IMG); add(LAB); add(TMP .. "/idx"); add(TMP .. "/c10.bin")
add(TMP .. "/w1-1.h5"); add(TMP .. "/new.h5"); add(TMP)
add({dir = TMP .. "/idx", batch = 4}, "K_dir")
local G1 = sg.Generator(5)
local nn = sg.nn
local round = 0
local function make_objects()
  round = round + 1
  local r = round
  local w1 = TMP .. "/w1-" .. r .. ".h5"
  make("H", "core.h5.open('" .. w1 .. "', 'w') with t, a, s, attr x, group g, g/i",
       function()
         local f = core.h5.open(w1, "w")
         f:write("t", sg.randn(2, 3)); f:write_array("a", {1, 2, 3}); f:write_text("s", "hello")
         f:attr("x", 1); f:mkgroup("g"); f:write("g/i", sg.zeros(4, "int32"))
         return f
       end)
  local w2 = TMP .. "/w2-" .. r .. ".h5"
  make("H", "core.h5.open('" .. w2 .. "', 'w') (closed)",
       function() local f = core.h5.open(w2, "w"); f:write("t", sg.ones(2)); f:close(); return f end)
  make("H", "core.h5.open('" .. w2 .. "', 'r')", function() return core.h5.open(w2, "r") end)
  make("H", "core.h5.open_atomic('" .. TMP .. "/at-" .. r .. ".h5')", function() return core.h5.open_atomic(TMP .. "/at-" .. r .. ".h5") end)
  make("H", "core.h5.open_atomic(...) (discarded)",
       function() local f = core.h5.open_atomic(TMP .. "/at2-" .. r .. ".h5"); f:discard(); return f end)
  if here then
    make("H", "core.h5.open(<repo>/tests/fixtures/layers.h5, 'r', true)",
         function() return core.h5.open(here .. "/tests/fixtures/layers.h5", "r", true) end)
  end
  make("L", "core.h5.newlog('log', {'a', 'b'}, {'float64', 'int64'})",
       function() return core.h5.newlog("log", {"a", "b"}, {"float64", "int64"}) end)
  make("L", "freed log", function() local l = core.h5.newlog("log2", {"a"}); getmetatable(l).__gc(l); return l end)
  local ds = make("D", "core.data.idx(IMG, LAB, 10)", function() return core.data.idx(IMG, LAB, 10) end)
  make("D", "core.data.idx(IMG, LAB, 10, string.rep('n', 300))", function() return core.data.idx(IMG, LAB, 10, long) end)
  make("D", "core.data.cifar({c10.bin}, 'cifar10', false)", function() return core.data.cifar({TMP .. "/c10.bin"}, "cifar10", false) end)
  make("D", "freed dataset", function() local d = core.data.idx(IMG, LAB, 10); d:free(); return d end)
  if ds then
    make("Ld", "core.data.loader(D, {batch = 4}, G, G)", function() return core.data.loader(ds, {batch = 4}, G1, G1) end)
    make("Ld", "core.data.loader(D, {batch = 3, pad = 2, crop = 2, flip = true, prefetch = 0}, G, G)",
         function() return core.data.loader(ds, {batch = 3, pad = 2, crop = 2, flip = true, prefetch = 0}, G1, G1) end)
    make("Ld", "core.data.loader(D, {batch = 4, raw = true, shuffle = false}, nil, nil)",
         function() return core.data.loader(ds, {batch = 4, raw = true, shuffle = false}) end)
    make("Ld", "freed loader", function() local l = core.data.loader(ds, {batch = 2}, G1); l:free(); return l end)
  end
  make("DL", "sg.data.mnist{dir = idx, batch = 4, seed = 1}.train",
       function() return sg.data.mnist{dir = TMP .. "/idx", batch = 4, seed = 1}.train end)
  make("M", "nn.Linear(4, 3)", function() return nn.Linear(4, 3) end)
  make("M", "nn.Conv2d(1, 2, 3)", function() return nn.Conv2d(1, 2, 3) end)
  make("M", "nn.BatchNorm2d(2)", function() return nn.BatchNorm2d(2) end)
  make("M", "nn.ReLU(true)", function() return nn.ReLU(true) end)
  make("M", "nn.MaxPool2d(2)", function() return nn.MaxPool2d(2) end)
  make("M", "nn.Dropout(0.5)", function() return nn.Dropout(0.5) end)
  make("M", "nn.Sequential{nn.Flatten(), nn.Linear(25, 3)}", function() return nn.Sequential{nn.Flatten(), nn.Linear(25, 3)} end)
  make("Mo", "nn.model(nn.Sequential{nn.Flatten(), nn.Linear(25, 3)}, {input = {1, 5, 5}})",
       function() return nn.model(nn.Sequential{nn.Flatten(), nn.Linear(25, 3)}, {input = {1, 5, 5}}) end)
  make("Mo", "nn.model(nn.Sequential{nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.GlobalAvgPool(), nn.Linear(2, 3)}, {input = {1, 5, 5}})",
       function() return nn.model(nn.Sequential{nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.GlobalAvgPool(), nn.Linear(2, 3)}, {input = {1, 5, 5}}) end)
end
make_objects()
fixed = npool

-- ---- targets ---------------------------------------------------------------------------
local targets = {}   -- {name =, fn =, self = kind or nil}
local EXCLUDE = { sleep = true, catch_signals = true, set_num_threads = true, sgemm_gflops = true }

local function add_funcs(prefix, t)
  local keys = {}
  for k, v in pairs(t) do
    if type(k) == "string" and not EXCLUDE[k] and
       (type(v) == "function" or (type(v) == "table" and getmetatable(v) and getmetatable(v).__call)) then
      keys[#keys + 1] = k
    end
  end
  table.sort(keys)
  for _, k in ipairs(keys) do targets[#targets + 1] = { name = prefix .. "." .. k, fn = t[k] } end
end

local function add_methods(kind, t, extra)
  local keys = {}
  for k, v in pairs(t) do
    if type(k) == "string" and type(v) == "function" then keys[#keys + 1] = k end
  end
  for k, v in pairs(extra or {}) do
    if type(v) == "function" and not t[k] then keys[#keys + 1] = k end
  end
  table.sort(keys)
  for _, k in ipairs(keys) do
    targets[#targets + 1] = { name = kind .. "." .. k, fn = t[k] or extra[k], self = kind }
  end
end

add_funcs("sg", core)
add_funcs("core.nn", core.nn)
add_funcs("core.data", core.data)
add_funcs("core.h5", core.h5)
add_funcs("core.cuda", core.cuda)
add_funcs("sg.h5", sg.h5)
add_funcs("sg.data", sg.data)
add_funcs("sg.nn", sg.nn)
add_funcs("sg.nn.init", sg.nn.init)
add_funcs("sg.optim", sg.optim)

local function meta(v) return v and getmetatable(v) or {} end
local function metas(mt, list)
  local e = {}
  for _, k in ipairs(list) do e[k] = rawget(mt, k) end
  return e
end
do
  local tm = getmetatable(sg.zeros(1))
  add_methods("Tensor", tm.methods, metas(tm, { "__add", "__sub", "__mul", "__div", "__unm", "__len",
                                                "__index", "__newindex", "__tostring", "__gc", "__close" }))
  local gm = getmetatable(sg.Generator(1))
  add_methods("Generator", gm.__index, metas(gm, { "__tostring" }))
  local fm = meta(kinds.H5File and kinds.H5File[1])
  if fm.__index then add_methods("H5File", fm.__index, metas(fm, { "__gc", "__close", "__tostring" })) end
  local lm = meta(kinds.H5Log and kinds.H5Log[1])
  if lm.__index then add_methods("H5Log", lm.__index, metas(lm, { "__gc" })) end
  local dm = meta(kinds.Dataset and kinds.Dataset[1])
  if dm.__index then add_methods("Dataset", dm.__index, metas(dm, { "__gc", "__close", "__tostring" })) end
  local ldm = meta(kinds.Loader and kinds.Loader[1])
  if ldm.__index then add_methods("Loader", ldm.__index, metas(ldm, { "__gc", "__close", "__tostring" })) end
  local dl = kinds.DataLoader and kinds.DataLoader[1]
  if dl then
    local m = getmetatable(dl)
    local idx = type(m.__index) == "table" and m.__index or m
    add_methods("DataLoader", idx)
  end
  -- nn modules: the methods of every class (Module's and each class's own)
  local seen = {}
  for cname, c in pairs(sg.nn) do
    if type(c) == "table" and rawget(c, "kind") then
      for k, v in pairs(c) do
        if type(v) == "function" and not seen[cname .. k] then
          seen[cname .. k] = true
          targets[#targets + 1] = { name = "nn." .. cname .. "." .. k, fn = v, self = "Module" }
        end
      end
    end
  end
  local mm = sg.nn.Model
  local keys = {}
  for k, v in pairs(mm) do if type(v) == "function" then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do targets[#targets + 1] = { name = "Model." .. k, fn = mm[k], self = "Model" } end
end
table.sort(targets, function(a, b) return a.name < b.name end)

if ONLY then
  local keep = {}
  for _, t in ipairs(targets) do if t.name:find(ONLY) then keep[#keep + 1] = t end end
  targets = keep
end
if args.list then
  for _, t in ipairs(targets) do print(t.name) end
  os.exit(0)
end
-- C functions (where a crash can happen) are drawn three times as often as Lua ones,
-- and those that close or free their object half as often as Lua ones
do
  local w = {}
  for _, t in ipairs(targets) do
    local c = type(t.fn) == "function" and debug.getinfo(t.fn, "S").what == "C"
    local k = t.name:match("[^.]*$")
    local destroy = k == "free" or k == "close" or k == "discard" or k == "__gc" or k == "__close"
    -- calls that close or free an object: rarer, or nothing would stay open
    for _ = 1, destroy and 1 or c and 6 or 2 do w[#w + 1] = t end
  end
  targets = w
end
if #targets == 0 then
  io.stderr:write("api-fuzz: no targets\n")
  os.exit(2)
end

-- ---- the calls --------------------------------------------------------------------------
local function pick_arg()
  local r = rnd()
  if r < 0.25 then return rnd(-1, 5) end       -- small integers get past the first checks
  if r < 0.4 then return numbers[rnd(#numbers)] end
  if r < 0.45 then return nil end
  if r < 0.7 and kinds.Tensor then return kinds.Tensor[rnd(#kinds.Tensor)] end
  return pool[rnd(npool)]
end

local function pick_self(kind)
  local r = rnd()
  local l = kinds[kind]
  if r < 0.85 and l and #l > 0 then return l[rnd(#l)] end
  return pick_arg()
end

-- ---- valid calls, to mutate -----------------------------------------------------------
-- Half of the calls take a call that returned normally (these seeds, or one
-- made earlier in the run) and change one or two of its arguments: random
-- arguments rarely get past the first checks of a kernel, a mutated valid
-- call tests each later check.
local byname = {}
for _, t in ipairs(targets) do byname[t.name] = t end
local good = {}
local GOOD_MAX = 300
local function remember(t, a, n)
  local c = { t = t, n = n }
  for k = 1, n do c[k] = a[k] end
  if #good < GOOD_MAX then good[#good + 1] = c else good[rnd(#good)] = c end
end

local seeds = {}
local function seed(name, expr, argsfn)
  if byname[name] then seeds[#seeds + 1] = { name = name, expr = expr, args = argsfn } end
end
local function tn(expr, fn) return make("T", expr, fn) end
do
  local x4 = tn("sg.randn(2, 1, 5, 5)", function() return sg.randn(2, 1, 5, 5) end)
  local w4 = tn("sg.randn(2, 1, 3, 3)", function() return sg.randn(2, 1, 3, 3) end)
  local b2 = tn("sg.randn(2)", function() return sg.randn(2) end)
  local dy4 = tn("sg.randn(2, 2, 3, 3)", function() return sg.randn(2, 2, 3, 3) end)
  local e = function(expr) return tn(expr or "sg.empty(1)", function() return sg.empty(1) end) end
  local x2 = tn("sg.randn(4, 25)", function() return sg.randn(4, 25) end)
  local w2 = tn("sg.randn(3, 25)", function() return sg.randn(3, 25) end)
  local b3 = tn("sg.randn(3)", function() return sg.randn(3) end)
  local dy2 = tn("sg.randn(4, 3)", function() return sg.randn(4, 3) end)
  local lab = tn("sg.tensor{0, 1, 2, 1}:int()", function() return sg.tensor{0, 1, 2, 1}:int() end)
  local xb = tn("sg.randn(2, 3, 4, 4)", function() return sg.randn(2, 3, 4, 4) end)
  local g3, be3 = tn("sg.ones(3)", function() return sg.ones(3) end), tn("sg.zeros(3)", function() return sg.zeros(3) end)
  local rm, rv = tn("sg.zeros(3)", function() return sg.zeros(3) end), tn("sg.ones(3)", function() return sg.ones(3) end)
  local sm, si = e(), e()
  local yb = e()
  local ip = tn("sg.empty(1, 'int32')", function() return sg.empty(1, "int32") end)
  local dyp = tn("sg.randn(2, 3, 2, 2)", function() return sg.randn(2, 3, 2, 2) end)
  local gen = sg.Generator(3)
  names[gen] = names[gen] or "G_seed"
  local N = core.nn
  local P = "core.nn."
  seed(P .. "conv2d_forward", "", function() return { nil, x4, e(), w4, b2, 1, 0 } end)
  seed(P .. "conv2d_backward_data", "", function() return { nil, x4, dy4, e(), w4, 1, 0 } end)
  seed(P .. "conv2d_backward_params", "", function() return { e(), x4, dy4, sg.zeros(2, 1, 3, 3), sg.zeros(2), 1, 0 } end)
  seed(P .. "conv2d_output_size", "", function() return { 5, 5, 3, 3, 1, 0 } end)
  seed(P .. "linear_forward", "", function() return { x2, e(), w2, b3 } end)
  seed(P .. "linear_backward_data", "", function() return { dy2, e(), w2 } end)
  seed(P .. "linear_backward_params", "", function() return { x2, dy2, sg.zeros(3, 25), sg.zeros(3) } end)
  seed(P .. "batchnorm_forward_train", "", function() return { xb, yb, g3, be3, sm, si, rm, rv, 1e-5, 0.1, true } end)
  seed(P .. "batchnorm_forward_eval", "", function() return { xb, e(), g3, be3, sm, si, rm, rv, 1e-5 } end)
  seed(P .. "batchnorm_backward_data", "", function() return { xb, xb, e(), g3, sm, si, true } end)
  seed(P .. "batchnorm_backward_params", "", function() return { xb, xb, sg.zeros(3), sg.zeros(3), sm, si } end)
  seed(P .. "batchnorm_backward", "", function() return { xb, xb, e(), g3, sg.zeros(3), sg.zeros(3), sm, si, true } end)
  seed(P .. "batchnorm_apply", "", function() return { xb, e(), g3, be3, sm, si } end)
  seed(P .. "relu_forward", "", function() return { xb, e() } end)
  seed(P .. "relu_backward_data", "", function() return { xb, xb, e() } end)
  seed(P .. "dropout_mask", "", function() return { gen, yb, xb, 0.5 } end)
  seed(P .. "dropout_forward", "", function() return { xb, e(), yb } end)
  seed(P .. "dropout_backward_data", "", function() return { xb, e(), yb } end)
  seed(P .. "maxpool2d_forward", "", function() return { xb, e(), ip, 2 } end)
  seed(P .. "maxpool2d_backward_data", "", function() return { xb, dyp, e(), ip, 2 } end)
  seed(P .. "avgpool2d_forward", "", function() return { xb, e(), 2 } end)
  seed(P .. "avgpool2d_backward_data", "", function() return { xb, dyp, e(), 2 } end)
  seed(P .. "global_avgpool_forward", "", function() return { xb, e() } end)
  seed(P .. "global_avgpool_backward_data", "", function() return { xb, sg.randn(2, 3), e() } end)
  seed(P .. "cross_entropy", "", function() return { dy2, lab, e() } end)
  seed(P .. "vec_axpy", "", function() return { x2, x2, e():resize_(4, 25), 0.5 } end)
  seed(P .. "vec_axpbypz", "", function() return { x2, x2, x2, e():resize_(100), 0.5, 2 } end)
  seed(P .. "vec_scale_add", "", function() return { x2, x2, e():resize_(100), 0.5, 2 } end)
  seed("core.cuda.pad2d", "", function() return { x4, e(), 1 } end)
  seed("core.cuda.crop2d", "", function() return { x4, e(), 1 } end)
  local ld = kinds.Loader and kinds.Loader[1]
  seed("Loader.next_into", "", function() return { ld, e(), ip } end)
  seed("Loader.peek", "", function() return { ld, 0, 1, 3 } end)
  seed("Loader.set_state", "", function() return { ld, { epoch = 1, index = 2 } } end)
  seed("Loader.start_epoch", "", function() return { ld, 1 } end)
  local D = kinds.Dataset and kinds.Dataset[1]
  seed("Dataset.split", "", function() return { D, 2, gen } end)
  seed("Dataset.limit", "", function() return { D, 8 } end)
  seed("Dataset.check_shape", "", function() return { D, 0, {1, 6, 5} } end)
  seed("core.data.loader", "", function() return { D, {batch = 3, pad = 1, crop = 1, flip = true, mean = {0.5}, std = {0.2}}, gen, gen } end)
  local H = kinds.H5File and kinds.H5File[1]
  seed("H5File.write", "", function() return { H, "x1", xb } end)
  seed("H5File.read", "", function() return { H, "t", {shape = {2, 3}, dtype = "float32"} } end)
  seed("H5File.read_into", "", function() return { H, "t", sg.empty(2, 3) } end)
  seed("H5File.write_array", "", function() return { H, "arr", {1, 2, 3, 4}, "int32", {2, 2} } end)
  seed("H5File.read_array", "", function() return { H, "a" } end)
  seed("H5File.attr_of", "", function() return { H, "t", "unit", "m" } end)
  seed("H5File.log_truncate", "", function() return { H, "log", 0 } end)
  seed("H5Log.append", "", function() return { kinds.H5Log and kinds.H5Log[1], {1.5, 2} } end)
  seed("H5Log.write", "", function() return { kinds.H5Log and kinds.H5Log[1], H } end)
  seed("sg.h5.save", "", function() return { "saved.h5", { t = xb, s = "x", n = 3, a = {1, 2} } } end)
  seed("sg.h5.load", "", function() return { "saved.h5" } end)
  seed("sg.h5.log", "", function() return { "log.h5", "train", {"loss", "acc"} } end)
  seed("Tensor.narrow", "", function() return { xb, 2, 2, 1 } end)
  seed("Tensor.view", "", function() return { xb, 6, -1 } end)
  seed("Tensor.copy", "", function() return { e():resize_(2, 3, 4, 4), xb } end)
  seed("Tensor.matmul", "", function() return { x2, w2:t() } end)
  seed("Tensor.__newindex", "", function() return { sg.zeros(3, 4), 2, sg.ones(4) } end)
  seed("Tensor.add_scaled_", "", function() return { e(), x2, 2, x2 } end)
  seed("Tensor.sum", "", function() return { xb, 2, true } end)
  seed("Tensor.argmax", "", function() return { xb, -1 } end)
  seed("Tensor.resize_", "", function() return { e(), 3, 4 } end)
  seed("Tensor.swap_storage", "", function() return { sg.zeros(3), sg.ones(3) } end)
  seed("Generator.random", "", function() return { gen, 1, 6 } end)
  seed("Generator.permutation", "", function() return { gen, 5 } end)
  seed("Generator.set_state", "", function() return { gen, gen:state() } end)
  local mo = kinds.Model and kinds.Model[1]
  seed("Model.forward", "", function() return { mo, sg.randn(2, 1, 5, 5), "train" } end)
  seed("Model.save", "", function() return { mo, "model.h5" } end)
  seed("Model.load", "", function() return { mo, "model.h5" } end)
  seed("sg.tensor", "", function() return { {{1, 2}, {3, 4}}, "int32" } end)
  seed("sg.full", "", function() return { {2, 2}, 3, "uint8" } end)
  seed("sg.arange", "", function() return { 0, 10, 3 } end)
end

-- With a GPU (or the CUDA emulator, tests/cudaemu) every seed call also
-- runs with its tensors on the GPU, and derive() moves tensors across.
local CUDA = core.cuda and core.cuda.available and core.cuda.available()
if CUDA then
  for k = 1, #seeds do
    local s = seeds[k]
    seeds[#seeds + 1] = { name = s.name, expr = s.expr, args = function()
      local a = s.args()
      for j, v in pairs(a) do
        if core.is_tensor(v) then
          local ok, g = pcall(v.cuda, v)
          if ok then names[g] = names[g] or ("(" .. show(v) .. "):cuda()"); a[j] = g end
        end
      end
      return a
    end }
  end
end

local function derive(v)
  -- a variant of a value, for mutation
  local tv = type(v)
  if tv == "number" then
    local c = rnd(12)
    if c == 1 then return v + 1 elseif c == 2 then return v - 1 elseif c == 3 then return -v
    elseif c == 4 then return 0 elseif c == 5 then return v * 2^31
    elseif c == 6 then return math.mininteger elseif c == 7 then return math.maxinteger
    elseif c == 8 then return 0/0 elseif c == 9 then return v + 0.5
    elseif c == 10 then return 2^62 end
    return numbers[rnd(#numbers)]
  end
  if core.is_tensor(v) then
    local c = rnd(8)
    local ok, d, expr = pcall(function()
      if c == 1 then return v:t(), "(" .. show(v) .. "):t()" end
      if c == 2 then return v:narrow(1, 1, math.max(v:size(1) - 1, 0)), "(" .. show(v) .. "):narrow(1, 1, n - 1)" end
      if c == 3 then return v:int(), "(" .. show(v) .. "):int()" end
      if c == 4 then return v:view(-1), "(" .. show(v) .. "):view(-1)" end
      if c == 5 then local f = v:clone(); f:free(); return f, "freed clone of " .. show(v) end
      if c == 6 then return v:select(1, 1), "(" .. show(v) .. "):select(1, 1)" end
      if c == 7 then return v:transpose(1, v:dim()), "(" .. show(v) .. "):transpose(1, -1)" end
      if c == 8 and CUDA then
        if v:device() == "cuda" then return v:cpu(), "(" .. show(v) .. "):cpu()" end
        return v:cuda(), "(" .. show(v) .. "):cuda()"
      end
      return v, nil
    end)
    if ok and d ~= nil then
      if expr and not names[d] then names[d] = expr end
      return d
    end
  end
  return pick_arg()
end

say("# seed ", SEED, ", ", CALLS, " calls, ", #targets, " targets, pool ", npool, ", ", #seeds, " seed calls")
local errors, oks = 0, 0
local function run_call(i, t, a, n)
  local shown = {}
  for k = 1, n do shown[k] = show(a[k]) end
  announce(string.format("CALL %s: %s(%s)", i, t.name, table.concat(shown, ", ")))
  local res = table.pack(pcall(t.fn, table.unpack(a, 1, n)))
  if res[1] then
    oks = oks + 1
    remember(t, a, n)
    for k = 2, math.min(res.n, 4) do
      local v = res[k]
      if type(v) ~= "number" and type(v) ~= "boolean" and v ~= nil then add(v, "R" .. i .. (k > 2 and ("_" .. (k - 1)) or "")) end
    end
  else
    errors = errors + 1
    -- the error must be a value we can print (a message or an object)
    local ok, msg = pcall(tostring, res[2])
    if not QUIET then say("  error: ", ok and tostring(msg):sub(1, 200) or "<unprintable>") end
  end
end

for k, s in ipairs(seeds) do
  local ok, a = pcall(s.args)
  if ok then
    local n = 0
    for j in pairs(a) do if j > n then n = j end end
    run_call("S" .. k, byname[s.name], a, n)
  end
end

local function one_call(i)
  local t, a, n
  if #good > 0 and rnd() < 0.5 then
    local g = good[rnd(#good)]
    t, n, a = g.t, g.n, {}
    for k = 1, n do a[k] = g[k] end
    for _ = 1, rnd(2) do
      local k = rnd(n + 1)
      if k > n then n = k end
      a[k] = rnd() < 0.6 and a[k] ~= nil and derive(a[k]) or pick_arg()
    end
  elseif rnd() < 0.1 and (#results.funcs > 0 or #results.objs > 0) then
    -- a function or a method of an object that an earlier call returned
    local use_f = #results.objs == 0 or (#results.funcs > 0 and rnd() < 0.5)
    n, a = rnd(0, 4), {}
    if use_f then
      local f = results.funcs[rnd(#results.funcs)]
      t = { name = "(" .. show(f) .. ")", fn = f }
    else
      local o = results.objs[rnd(#results.objs)]
      local mt = getmetatable(o)
      local idx = type(mt) == "table" and type(rawget(mt, "__index")) == "table" and rawget(mt, "__index") or {}
      local ms = {}
      for _, src in ipairs{o, idx} do
        for k, f in pairs(src) do if type(f) == "function" and type(k) == "string" then ms[#ms + 1] = k end end
      end
      table.sort(ms)
      local m = ms[rnd(#ms)]
      t = { name = show(o) .. "." .. m, fn = o[m] }
      n = n + 1
      a[1] = o
    end
    for k = use_f and 1 or 2, n do a[k] = pick_arg() end
  else
    t = targets[rnd(#targets)]
    n = rnd(0, 6)
    a = {}
    local first = 1
    if t.self then a[1] = pick_self(t.self); first = 2; n = math.max(n, 1) end
    for k = first, n do a[k] = pick_arg() end
  end
  run_call(i, t, a, n)
  if i % 64 == 0 then collectgarbage() end
  if i % REFRESH == 0 then make_objects() end
end

for i = 1, CALLS do
  -- a memory error in the driver's own code (calls made big tensors, and the
  -- allocator is capped) is not a finding: collect and go on
  local ok, err = pcall(one_call, i)
  if not ok then
    if not tostring(err):find("not enough memory", 1, true) then error(err, 0) end
    announce("# driver: out of memory, collecting")
    collectgarbage(); collectgarbage()
  end
end
-- everything left goes through __gc (and __close for files)
pool, kinds, results, good = nil, nil, nil, nil
collectgarbage(); collectgarbage()
announce(string.format("DONE seed %d: %d calls, %d returned, %d raised", SEED, CALLS, oks, errors))
