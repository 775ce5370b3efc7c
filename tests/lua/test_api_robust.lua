-- test_api_robust.lua - no Lua call can crash the process: the crashes found by
-- fuzzing the Lua API (tools/api-fuzz.lua) as one-line reproductions, each of
-- which must now raise a Lua error (or return a sane value), and a short
-- fixed-seed fuzz run in child processes (tools/api-fuzz-run) that fails when
-- a child dies by a signal, prints a sanitizer report, hangs or stops early.
-- Before the fixes each case below aborted a sanitizer build (signed overflow,
-- heap-buffer-overflow) and several crashed or misbehaved in a release build.
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"
local core = sg.core

local tmp = T.tmpdir() .. "/api-robust"
os.execute("rm -rf '" .. tmp .. "' && mkdir -p '" .. tmp .. "'")

-- a sanitizer build whose allocator aborts on huge requests (the CI sets
-- allocator_may_return_null=1; a plain ctest run may not)
local build = os.getenv("SGDSA_BUILD")
local sanitized = false
do
  local f = build and io.open(build .. "/CMakeCache.txt")
  if f then
    sanitized = f:read("a"):find("SGDSA_SANITIZE:BOOL=ON", 1, true) ~= nil
    f:close()
  end
end
local huge_ok = not sanitized or (os.getenv("ASAN_OPTIONS") or ""):find("allocator_may_return_null=1", 1, true)

T.test("generator: random over the whole integer range", function()
  local g = sg.Generator(1)
  -- b - a overflowed int64 (and [mininteger, maxinteger] made a division by zero)
  T.eq(math.type(g:random(math.mininteger, math.maxinteger)), "integer", "full range")
  local v = g:random(-2^63, 2^62)
  T.check(v >= math.mininteger and v <= 2^62, "in range")
  T.eq(g:random(math.maxinteger, math.maxinteger), math.maxinteger, "one value")
  T.raises(function() return g:random(1, 0) end, "random: empty interval [1, 0]")
end)

T.test("generator: random() as math.random (ctx.rng of plug-ins)", function()
  local g = sg.Generator(3, "search")
  local lo, hi, n = 1, 0, 2000
  for _ = 1, n do
    local u = g:random()
    T.eq(math.type(u), "float", "random() is a float")
    T.check(u >= 0 and u < 1, "random() in [0, 1): " .. u)
    lo, hi = math.min(lo, u), math.max(hi, u)
  end
  T.check(lo < 0.01 and hi > 0.99, "random() covers [0, 1)")
  local seen = {}
  for _ = 1, 200 do
    local k = g:random(4)
    T.eq(math.type(k), "integer", "random(n) is an integer")
    T.check(k >= 1 and k <= 4, "random(4) in 1..4")
    seen[k] = true
    local j = g:random(-2, 2)
    T.check(j >= -2 and j <= 2, "random(-2, 2) in -2..2")
  end
  T.eq(#seen, 4, "random(4) gives every value")
  T.eq(math.type(g:random(0)), "integer", "random(0): an integer with all bits random")
  T.eq(g:random(3.0, 3), 3, "integral floats are integers")
  T.raises(function() return g:random(0.5) end, "number has no integer representation")
  T.raises(function() return g:random(1, 2, 3) end, "random: wrong number of arguments")
  T.raises(function() return g:random(-1) end, "random: empty interval [1, -1]")
  -- the same draws again from the same state
  local a, b = sg.Generator(9), sg.Generator(9)
  T.eq(a:random(), b:random(), "repeatable")
  T.eq(a:random(10), b:random(10), "repeatable")
end)

T.test("generator: permutation lengths", function()
  local g = sg.Generator(1)
  -- 2^31 overflowed int32 (values 1..n) and asked for 24 GB (an int64 scratch copy)
  T.raises(function() return g:permutation(2^31) end, "permutation: bad length")
  T.raises(function() return g:permutation(-1) end, "permutation: bad length")
  T.eq(table.concat(sg.Generator(42):permutation(10):totable(), ","),
       table.concat(sg.Generator(42):permutation(10):totable(), ","), "reproducible")
end)

T.test("shapes: sizes that overflow strides or int64", function()
  T.raises(function() return sg.zeros(0, 2^62, 2^62) end, "tensor: absurd size")
  T.raises(function() return sg.empty{0, 2^40, 2^40} end, "tensor: absurd size")
  T.raises(function() return sg.zeros(math.maxinteger) end, "tensor: absurd size")
  T.raises(function() return sg.zeros(math.huge) end, "shape: size inf (element 1) is out of range")
  T.raises(function() return sg.zeros{2^63} end, "is out of range")
  T.raises(function() return sg.zeros(0/0) end, "is not an integer")
  T.raises(function() return sg.zeros(2, 3):view(2^40, 2^40, -1) end, "view: absurd size")
  T.raises(function() return sg.zeros(2, 3):reshape(5, 2^62) end, "view: absurd size")
  T.raises(function() return sg.zeros(2):resize_(0, 2^62, 2^62) end, "absurd size")
  T.raises(function() return sg.arange(0/0) end, "arange: absurd length")
  T.raises(function() return sg.arange(0, math.huge) end, "arange: absurd length")
  if huge_ok then
    T.raises(function() return sg.zeros(2^40) end, "out of memory")
  end
end)

T.test("tensor indices at the ends of int64", function()
  local t = sg.zeros(2, 3)
  T.raises(function() return t:narrow(1, math.mininteger, 1) end, "narrow: start -9223372036854775808 out of bounds")
  T.raises(function() return t:narrow(1, 2, math.maxinteger) end, "narrow: range 2..9223372036854775807 out of bounds")
  T.raises(function() return t:narrow(1, 1, math.mininteger) end, "narrow: range")
  T.raises(function() return t[math.mininteger] end, "index: -9223372036854775808 out of range")
  T.raises(function() return t[math.maxinteger] end, "index: 9223372036854775807 out of range")
  T.raises(function() return t:select(1, math.mininteger) end, "select: index")
  T.raises(function() return t:get(1, math.mininteger) end, "out of range")
  T.raises(function() t[{}] = 1 end, "cannot set a table key of a tensor")
  T.raises(function() return t:size(math.mininteger) end, "dimension -9223372036854775808 out of range")
end)

T.test("integer tensors saturate out-of-range values", function()
  -- converting 1e300, -1 or NaN to int32/uint8 was undefined behaviour
  T.eq(sg.tensor(1e300, "int32"):item(), 2147483647, "int32 high")
  T.eq(sg.tensor(-1e300, "int32"):item(), -2147483648, "int32 low")
  T.eq(sg.tensor(0/0, "int32"):item(), 0, "int32 NaN")
  T.eq(sg.zeros(2, "uint8"):fill(-1)[1], 0, "uint8 low")
  T.eq(sg.zeros(2, "uint8"):fill(300)[2], 255, "uint8 high")
  T.eq(sg.tensor{1e10, -7.9}:int()[2], -7, "conversion truncates in range")
end)

T.test("conv and pool geometry with absurd strides and padding", function()
  local N = core.nn
  T.raises(function() return N.conv2d_output_size(5, 5, 3, 3, 1, 2^62) end, "conv2d: sizes too large")
  T.raises(function() return N.conv2d_output_size(5, 5, 3, 3, 2^62, 0) end, "conv2d: sizes too large")
  T.raises(function() return N.conv2d_output_size(2^40, 2^40, 1, 1, 1, 0) end, "conv2d: sizes too large")
  local x, w = sg.randn(1, 1, 5, 5), sg.randn(2, 1, 3, 3)
  T.raises(function() return N.conv2d_forward(nil, x, sg.empty(1), w, nil, 1, {2^62, 0}) end, "sizes too large")
  T.raises(function() return N.maxpool2d_forward(x, sg.empty(1), nil, 2^62, 1, 2^62) end, "pool2d: sizes too large")
  T.raises(function() return N.avgpool2d_forward(x, sg.empty(1), 2, math.maxinteger) end, "pool2d: sizes too large")
  local y = N.conv2d_forward(nil, x, sg.empty(1), w, nil, 1, 1)
  T.eq(table.concat(y:size(), "x"), "1x2x5x5", "still works")
  -- a workspace over the input: im2col copied between overlapping ranges
  T.raises(function() return N.conv2d_forward(x, x, sg.empty(1), w, nil, 1, 0) end,
           "workspace 1x1x5x5 shares its storage with argument #2")
  local dy = sg.randn(1, 2, 3, 3)
  T.raises(function() return N.conv2d_backward_params(dy:view(-1), x, dy, sg.zeros(2, 1, 3, 3), nil, 1, 0) end,
           "shares its storage with argument #3")
  T.eq(N.conv2d_forward(sg.empty(1), x, y, w, nil, 1, 1), y, "a workspace of its own")
end)

-- a small IDX dataset
T.write_idx(tmp, "small", 10, 6, 5)

T.test("datasets: limit/split under a loader, peek and check_shape ranges", function()
  local ds = core.data.idx(tmp .. "/small-images-idx3-ubyte", tmp .. "/small-labels-idx1-ubyte", 10)
  local ld = core.data.loader(ds, {batch = 3, shuffle = false, prefetch = 0})
  -- shrinking a dataset a loader holds left the loader reading past its arrays
  T.raises(function() ds:limit(8) end, "limit while a loader uses it")
  T.raises(function() return ds:split(2, sg.Generator(1)) end, "split while a loader uses it")
  local x = ld:peek(0, 2, 3)
  T.eq(table.concat(x:size(), "x"), "3x1x6x5", "peek still works")
  -- first + count overflowed int64 and passed the range check
  T.raises(function() return ld:peek(0, math.maxinteger, 1) end, "outside the epoch")
  T.raises(function() return ld:peek(0, 9, 2) end, "outside the epoch")
  ld:free()
  ds:limit(8) -- no loader now
  T.eq(ds:size(), 8, "limited")
  -- pad * 2 overflowed int
  T.raises(function() ds:check_shape(2^31, {1, 6, 5}) end, "check_shape: pad")
  T.raises(function() ds:check_shape(0, {1, 2^32 + 6, 5}) end, "check_shape: size")
  T.raises(function() return core.data.loader(ds, {batch = 2, pad = (1 << 32) + 1}) end, "option pad = 4294967297 is out of range")
end)

T.test("h5: write_array with a shape whose size overflows", function()
  local f = core.h5.open(tmp .. "/a.h5", "w")
  T.raises(function() f:write_array("x", {}, "int64", {2^62, 4, 0}) end, "write_array shape: absurd size")
  T.raises(function() f:write_array("x", {1, 2}, "int64", {2^62, 2^62}) end, "write_array shape: absurd size")
  f:write_array("y", {1, 2, 3, 4}, "int32", {2, 2})
  f:close()
end)

T.test("wrong self, freed and collected objects, printing", function()
  local t = sg.ones(2, 3)
  local M = core.Tensor
  T.raises(function() return t.add(nil) end, "number expected, got nil")
  T.raises(function() return M.add(5) end, "expected a tensor")
  T.raises(function() return M.narrow(sg.Generator(1), 1, 1, 1) end, "expected a tensor, got userdata")
  local v = t:t():narrow(1, 2, 2):narrow(2, 1, 1)
  getmetatable(t).__gc(t)
  T.raises(function() return t:sum() end, "tensor was freed")
  T.eq(v:sum(), 2, "a view of a collected tensor keeps its storage")
  T.eq(tostring(t), "[sgdsa.Tensor (freed)]", "tostring")
  for _, o in ipairs{sg.Generator(1), core.h5.newlog("g", {"a"}), sg.zeros(0), sg.tensor(1), sg.zeros(3, 0, 2)} do
    T.check(type(tostring(o)) == "string", "tostring")
  end
  -- finalizers that use other (already finalized) objects
  for i = 1, 20 do
    local x = sg.ones(3)
    local f = core.h5.open(tmp .. "/gc" .. i .. ".h5", "w")
    setmetatable({}, {__gc = function() pcall(function() f:write("x", x); f:close(); return x:sum() end) end})
  end
  collectgarbage(); collectgarbage()
end)

T.test("fuzz: fixed seeds in child processes", function()
  local bin = os.getenv("SGDSA_BIN")
  if not bin or not build then
    io.write("  (SGDSA_BIN/SGDSA_BUILD not set: fuzz run skipped)\n")
    return
  end
  local root = io.popen("pwd"):read("l")
  local t0 = os.time()
  local p = io.popen("API_FUZZ_DIR=" .. T.shell_quote(tmp .. "/fuzz") .. " "
                     .. T.shell_quote(root .. "/tools/api-fuzz-run") .. " "
                     .. T.shell_quote(build) .. " 1 5 1500 120 2>&1")
  local out = p:read("a")
  local ok, how, code = p:close()
  io.write("  ", (out:gsub("\n(.)", "\n  %1")))
  if not ok then
    -- the last lines of each failed run's output
    for seed in out:gmatch("FAIL seed (%d+)") do
      local log = T.read_file(tmp .. "/fuzz/seed-" .. seed .. ".out") or ""
      io.write("  --- seed ", seed, " (tail) ---\n  ", log:sub(-3000):gsub("\n", "\n  "), "\n")
    end
  end
  T.check(ok, string.format("api-fuzz-run failed (%s %s) after %d s", tostring(how), tostring(code),
                            os.time() - t0))
end)

T.done()
