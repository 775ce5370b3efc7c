-- test_misuse.lua - every misuse is a Lua error naming the operation and the
-- shapes or types involved, never a crash.
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"

T.test("shape mismatches name both shapes", function()
  T.raises(function() return sg.zeros(2, 3) + sg.zeros(3, 2) end, "add: shapes 2x3 and 3x2 differ")
  T.raises(function() return sg.zeros(2, 3):mul_(sg.zeros(4)) end, "mul: shapes 2x3 and 4 differ")
  T.raises(function() return sg.zeros(2, 3):matmul(sg.zeros(2, 3)) end, "matmul: shapes 2x3 and 2x3 do not multiply")
  T.raises(function() return sg.zeros(2, 3):view(4) end, "view: shape with 4 elements for a tensor of 6")
  T.raises(function() return sg.zeros(2, 3):copy(sg.zeros(5)) end, "copy: 5 (5 elements) into 2x3")
end)

T.test("wrong argument types", function()
  T.raises(function() return sg.zeros(2) + "x" end, "expected a tensor or a number")
  T.raises(function() return sg.zeros(2):dot({}) end, "expected a tensor, got table")
  T.raises(function() return sg.zeros(2, "float64") end, "unknown dtype 'float64'")
  T.raises(function() return sg.zeros(2):to("tpu") end, "unknown device 'tpu'")
  T.raises(function() return sg.tensor{1, "a"} end, "element is a string")
  T.raises(function() return sg.tensor{{1, 2}, {3}} end, "ragged")
  T.raises(function() return sg.zeros(2, "int32"):exp() end, "expected a float32 tensor, got int32")
end)

T.test("negative and absurd sizes", function()
  T.raises(function() return sg.zeros(-1, 2) end, "negative size -1")
  T.raises(function() return sg.zeros(1e6, 1e6, 1e6) end, "absurd size")
  T.raises(function() return sg.zeros(2^36, 4) end, "out of memory")
end)

T.test("out-of-range indices", function()
  local t = sg.zeros(3, 4)
  T.raises(function() return t[4] end, "index: 4 out of range for dimension 1 of size 3")
  T.raises(function() return t:get(1, 5) end, "index: 5 out of range for dimension 2 of size 4")
  T.raises(function() return t:get(1) end, "index: 1 indices for a 2-d tensor")
  T.raises(function() return t:narrow(2, 3, 5) end, "narrow: range 3..7 out of bounds")
  T.raises(function() return t:select(3, 1) end, "dimension 3 out of range for a 2-d tensor")
  T.raises(function() return t:sum(5) end, "dimension 5 out of range")
end)

T.test("freed tensors", function()
  local t = sg.ones(3)
  local v = t:narrow(1, 1, 2)
  t:free()
  T.raises(function() return t + t end, "tensor was freed")
  T.eq(v:sum(), 2, "views keep the storage alive")
end)

T.test("errors carry the script position", function()
  local err = T.raises(function() return sg.zeros(2) + sg.zeros(3) end, "add: shapes")
  T.check(err:find("test_misuse.lua:%d+:"), "position in " .. err)
end)

T.test("cuda on a machine without it is a clear error", function()
  local ok, err = pcall(function() return sg.zeros(2):cuda() end)
  if ok then return end -- a GPU is present
  T.check(tostring(err):find("cuda", 1, true), tostring(err))
end)

T.done()
