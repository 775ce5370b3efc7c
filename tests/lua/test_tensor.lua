-- test_tensor.lua - the Lua tensor API: constructors, views, math, operators,
-- reductions, matmul against a Lua triple loop, printing, generators.
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"

T.test("constructors", function()
  local t = sg.tensor{{1, 2, 3}, {4, 5, 6}}
  T.eq(t:dim(), 2); T.eq(t:size(1), 2); T.eq(t:size(2), 3); T.eq(t:numel(), 6)
  T.eq(t[2][3], 6); T.eq(t:get(1, 2), 2)
  T.eq(sg.zeros(2, 3):sum(), 0); T.eq(sg.ones{4, 5}:sum(), 20)
  T.eq(sg.zeros(3, "int32"):dtype(), "int32")
  local a = sg.arange(5); T.eq(a:numel(), 5); T.eq(a[1], 0); T.eq(a[5], 4)
  local b = sg.arange(1, 2, 0.25); T.eq(b:numel(), 4); T.eq(b[4], 1.75)
  T.eq(sg.full({2, 2}, 7):sum(), 28)
  T.eq(t:device(), "cpu"); T.eq(t:dtype(), "float32")
end)

T.test("views share storage", function()
  local t = sg.arange(12):view(3, 4)
  local n = t:narrow(2, 2, 2)
  n:fill(-1)
  T.eq(t[1][1], 0); T.eq(t[1][2], -1); T.eq(t[3][3], -1); T.eq(t[3][4], 11)
  local s = t:select(1, 2); T.eq(s:dim(), 1); T.eq(s[4], 7)
  local tr = t:t(); T.eq(tr:size(1), 4); T.eq(tr[4][3], 11); T.eq(tr:is_contiguous(), false)
  T.eq(tr:contiguous():is_contiguous(), true)
  T.eq(t:view(-1, 6):size(1), 2)
  local r = tr:reshape(12); T.eq(r[2], 4)
  local c = t:clone(); c:fill(9); T.eq(t[3][4], 11)
  t[1] = 5; T.eq(t[1][4], 5)
  t[2] = sg.tensor{1, 2, 3, 4}; T.eq(t[2][3], 3)
  t:set(3, 1, 42); T.eq(t[3][1], 42)
end)

T.test("arithmetic and operators", function()
  local a, b = sg.tensor{1, 2, 3}, sg.tensor{4, 5, 6}
  T.eq((a + b):sum(), 21); T.eq((b - a):sum(), 9); T.eq((a * b):sum(), 32)
  T.near((b / a):sum(), 4 + 2.5 + 2); T.eq((a * 2):sum(), 12); T.eq((2 * a):sum(), 12)
  T.eq((10 - a):sum(), 24); T.eq((-a):sum(), -6)
  local c = a:clone(); c:add_(b); T.eq(c:sum(), 21); T.eq(a:sum(), 6)
  c:mul_(0.5); T.eq(c:sum(), 10.5)
  local y = sg.tensor{1, 1, 1}; y:axpy_(2, a); T.eq(y:sum(), 15)
  local o = sg.zeros(3); o:add_scaled_(b, -0.5, a); T.eq(o[3], 4.5)
  T.eq(a:add(b, 10):sum(), 156)
  T.eq(a:dot(b), 32); T.near(a:norm(), math.sqrt(14)); T.eq(a:norm(1), 6)
  T.near(a:exp():log():sum(), 6, 1e-6); T.near(sg.tensor{4, 9}:sqrt():sum(), 5)
  T.eq(sg.tensor{-1, 2}:abs():sum(), 3)
  T.eq(sg.tensor{-5, 0, 5}:clamp(-1, 2):sum(), 1)
  T.eq(sg.tensor{1, 0 / 0}:isfinite(), false); T.eq(a:isfinite(), true)
end)

T.test("reductions", function()
  local t = sg.tensor{{1, 5, 2}, {-3, 4, 0}}
  T.eq(t:sum(), 9); T.near(t:mean(), 1.5); T.eq(t:max(), 5); T.eq(t:min(), -3)
  T.eq(t:argmax(), 2); T.eq(t:argmin(), 4)
  local m = t:max(1); T.eq(m:dim(), 1); T.eq(m[1], 1); T.eq(m[2], 5); T.eq(m[3], 2)
  local s = t:sum(2); T.eq(s[1], 8); T.eq(s[2], 1)
  local am = t:argmax(2); T.eq(am:dtype(), "int32"); T.eq(am[1], 2); T.eq(am[2], 2)
  T.eq(t:sum(2, true):dim(), 2)
end)

T.test("matmul against a triple loop", function()
  local g = sg.Generator(3)
  local a, b = sg.randn(5, 7, g), sg.randn(7, 4, g)
  local c = a:matmul(b)
  local maxerr = 0
  for i = 1, 5 do for j = 1, 4 do
    local s = 0
    for k = 1, 7 do s = s + a[i][k] * b[k][j] end
    maxerr = math.max(maxerr, math.abs(s - c[i][j]))
  end end
  T.check(maxerr < 1e-5, "matmul error " .. maxerr)
  local ct = sg.matmul(b:t(), a:t())        -- transposed views, no copies
  T.tensor_near(ct, c:t():contiguous(), 1e-6)
end)

T.test("printing", function()
  local s = tostring(sg.tensor{{1, 2}, {3, 4}})
  T.check(s:find("[sgdsa.Tensor float32 of size 2x2 on cpu]", 1, true), s)
  T.check(s:find(" 1 +2\n"), s)
  local big = tostring(sg.zeros(100, 100))
  T.check(big:find("...", 1, true) and #big < 2000, "large tensors are abbreviated")
  local t3 = tostring(sg.zeros(2, 2, 2))
  T.check(t3:find("(1,.,.)", 1, true) and t3:find("(2,.,.)", 1, true), t3)
  T.check(tostring(sg.tensor{1.5}):find("1.5000", 1, true))
end)

T.test("generators and streams", function()
  sg.manual_seed(11)
  local a = sg.stream("search"):uniform()
  sg.manual_seed(11)
  T.eq(sg.stream("search"):uniform(), a, "same seed, same draw")
  local st = sg.stream("search"):state()
  local x1 = sg.stream("search"):random(1000)
  sg.stream("search"):set_state(st)
  T.eq(sg.stream("search"):random(1000), x1, "restored state repeats")
  T.check(sg.stream("shuffle"):uniform() ~= sg.stream("search"):uniform(), "streams differ")
  local p = sg.Generator(1):permutation(10)
  T.eq(p:sum(), 55); T.eq(p:dtype(), "int32")
  local r1 = sg.rand(4, sg.Generator(9)); local r2 = sg.rand(4, sg.Generator(9))
  T.tensor_near(r1, r2, 0)
end)

T.test("free and close", function()
  local t = sg.zeros(10)
  t:free()
  T.raises(function() return t:sum() end, "freed")
  do local u <close> = sg.ones(3); T.eq(u:sum(), 3) end
  T.check(tostring(t):find("freed"))
end)

T.done()
