-- test_conv_choice.lua - the CPU convolutions' implementation choices
-- (kernels/cpu/conv_choice.c): measured at a geometry's first use and written
-- to the machine's cache file, read from it by the next process (which then
-- makes the same choices), a damaged cache file a warning and a new
-- measurement, and a run's choices recorded in log.h5 and pinned by its
-- resume, so the resume is bit-identical to the run left alone even when
-- this process would choose otherwise (SGDSA_CONV forced to the other
-- implementation). No timing is asserted: which implementation wins is the
-- machine's business.
local sg = sgdsa or require "sgdsa"

-- The child processes: CONV_CHOICE_CHILD=probe runs one training step of
-- a small convolutional net and prints the choices in effect;
-- CONV_CHOICE_CHILD=run returns an experiment of that net on the trainer
-- fixture's data ($SGDSA_FIXTURE_DATA).
local function net()
  local nn = require "sgdsa.nn"
  return nn.model(nn.Sequential{
    {"conv1", nn.Conv2d(1, 16, 3, {padding = 1})},
    {"relu1", nn.ReLU(true)},
    {"conv2", nn.Conv2d(16, 32, 3, {padding = 1})},
    {"relu2", nn.ReLU(true)},
    {"flatten", nn.Flatten()},
    {"fc", nn.Linear(32 * 8 * 8, 10)},
  }, {input = {1, 8, 8}, name = "conv_choice"})
end

local role = os.getenv("CONV_CHOICE_CHILD")
if role == "probe" then
  sg.set_num_threads(1)
  sg.manual_seed(1)
  local m = net()
  local x = sg.randn(8, 1, 8, 8, sg.Generator(4))
  local y = m:forward(x, "train")
  m:backward(x, y)
  io.write(sg.core.conv_choices())
  return
elseif role == "run" then
  local F = dofile("tests/lua/trainer_fixture.lua")
  return F.experiment(assert(os.getenv("SGDSA_FIXTURE_DATA")), {model = net, epochs = 2})
end

local T = dofile("tests/lua/testlib.lua")
if not sg.core.exists(os.getenv("SGDSA_BIN") or "") then T.skip("SGDSA_BIN is not set to the sgdsa executable") end
local h5 = require "sgdsa.h5"
local tmp = T.tmpdir() .. "/conv_choice"
os.execute("rm -rf " .. T.shell_quote(tmp) .. " && mkdir -p " .. T.shell_quote(tmp))
local dnnl = pcall(sg.core.conv_impl, "dnnl")
sg.core.conv_impl("auto")

-- a probe with its own cache folder; its exit code, its output
local function probe(xdg)
  return T.sgdsa({"run", "tests/lua/test_conv_choice.lua"},
                 "env -u SGDSA_CONV CONV_CHOICE_CHILD=probe XDG_CACHE_HOME=" .. T.shell_quote(xdg))
end

-- "choice line" -> origin, for each line of a probe's output
local function choices(out)
  local t, n = {}, 0
  for line in out:gmatch("[^\n]+") do
    local c, origin = line:match("^(%d+x%d+x%d+x%d+ k.-) # (%a+)")
    if not c then c, origin = line:match("^(linear %d+x%d+ k.-) # (%a+)") end
    if c then t[c] = origin; n = n + 1 end
  end
  return t, n
end

-- a line's implementations turned over: im2col <-> dnnl (a linear layer's openblas <-> dnnl)
local function turn(head, impls)
  local other = head:find("^linear") and "openblas" or "im2col"
  return (impls:gsub(other, "X"):gsub("dnnl", other):gsub("X", "dnnl"))
end

local function cache_file(xdg)
  local p = io.popen("ls " .. T.shell_quote(xdg .. "/sgdsa") .. "/conv-*.txt 2>/dev/null")
  local f = p:read("l")
  p:close()
  return f
end

T.test("pinning: a line that is not a choice is an error naming it", function()
  T.raises(function() sg.core.conv_choices("8x1x8x8 k16 3x3 s1x1 p1x1 t1: forward fast") end,
           "line 1 is not a convolution choice")
  T.raises(function() sg.core.conv_choices("\n8x0x8x8 k16 3x3 s1x1 p1x1 t1: forward im2col, " ..
                                           "backward-data im2col, backward-params im2col") end,
           "line 2 is not a convolution choice")
  T.raises(function() sg.core.conv_choices("linear 8x16 k4 t1: forward im2col, " ..
                                           "backward-data dnnl, backward-params dnnl") end,
           "line 1 is not a convolution choice")  -- a linear layer's sgemm is openblas or dnnl
  T.raises(function() sg.core.conv_choices("linear 8x16 k4 t1: forward winograd, " ..
                                           "backward-data dnnl, backward-params dnnl") end,
           "line 1 is not a convolution choice")
  local line = "8x16x8x8 k32 3x3 s1x1 p1x1 t1: forward im2col, backward-data dnnl, backward-params im2col"
  local got = sg.core.conv_choices(line)
  T.check(got:find(line .. " # run", 1, true), "pinned choice not in effect: " .. got)
  line = "linear 8x16 k4 t1: forward openblas, backward-data dnnl, backward-params openblas"
  got = sg.core.conv_choices(line)
  T.check(got:find(line .. " # run", 1, true), "pinned linear choice not in effect: " .. got)
end)

T.test("Winograd: forced where oneDNN has it (AVX-512), its direct algorithm elsewhere", function()
  if not dnnl then
    T.raises(function() sg.core.conv_impl("winograd") end, "without oneDNN")
    return
  end
  local code, out = probe(tmp .. "/xdg_wino")
  T.eq(code, 0, out)
  code, out = T.sgdsa({"run", "tests/lua/test_conv_choice.lua"},
                      "SGDSA_CONV=winograd CONV_CHOICE_CHILD=probe XDG_CACHE_HOME=" ..
                      T.shell_quote(tmp .. "/xdg_wino"))
  T.eq(code, 0, out)
  local avx512 = false
  for _, f in ipairs(sg.core.cpu_info().features) do avx512 = avx512 or f == "avx512" end
  local want = avx512 and "winograd" or "dnnl"
  local t, n = choices(out)
  T.eq(n, 3, out)
  for c, origin in pairs(t) do
    T.eq(origin, "forced", c)
    local want = c:find("^linear") and "dnnl" or want
    T.check(c:find("forward " .. want .. ", backward%-data " .. want .. ", backward%-params " .. want),
            "expected " .. want .. " for every pass: " .. c)
  end
  -- a run's Winograd choice for a geometry without it (stride 2) runs the direct algorithm
  local got = sg.core.conv_choices("8x16x8x8 k32 3x3 s2x2 p1x1 t1: forward winograd, " ..
                                   "backward-data im2col, backward-params winograd")
  T.check(got:find("8x16x8x8 k32 3x3 s2x2 p1x1 t1: forward dnnl, backward-data im2col, " ..
                   "backward-params dnnl # run", 1, true), got)
end)

if not dnnl then
  T.test("without oneDNN every convolution runs im2col", function()
    local code, out = probe(tmp .. "/xdg0")
    T.eq(code, 0, out)
    local t, n = choices(out)
    T.check(n == 3, "two convolutions and a linear layer expected: " .. out)
    for c, origin in pairs(t) do
      T.eq(origin, "build", c)
      T.check(not c:find("dnnl"), c)
    end
  end)
  T.done()
end

T.test("measured once, written to the machine's cache, read by the next process", function()
  local xdg = tmp .. "/xdg1"
  local code, out = probe(xdg)
  T.eq(code, 0, out)
  local first, n = choices(out)
  T.eq(n, 3, "two convolutions and a linear layer: " .. out)
  for c, origin in pairs(first) do T.eq(origin, "measured", c) end
  local file = cache_file(xdg)
  T.check(file, "no cache file in " .. xdg .. "/sgdsa")
  local text = T.read_file(file)
  T.check(text:match("^sgdsa convolution choices 3\nmachine [^\n]+\n"), "cache header: " .. text)
  for c in pairs(first) do T.check(text:find(c .. " # measured", 1, true), "not in the cache: " .. c) end
  code, out = probe(xdg)
  T.eq(code, 0, out)
  local second = choices(out)
  for c in pairs(first) do T.eq(second[c], "cache", "second process: " .. c) end
  -- the file decides: every choice turned over is what the next process runs
  T.write_file(file, text:gsub("([^\n]-: )([^#\n]*)( # measured[^\n]*)", function(head, impls, tail)
    return head .. turn(head, impls) .. tail
  end))
  code, out = probe(xdg)
  T.eq(code, 0, out)
  local third = choices(out)
  for c in pairs(first) do
    local head, impls = c:match("^(.-: )(.*)$")
    local turned = head .. turn(head, impls)
    T.eq(third[turned], "cache", "the cache's (turned) choice: " .. turned .. "\n" .. out)
  end
end)

T.test("a damaged cache file: a warning, measured again, the file rewritten", function()
  for i, bad in ipairs{"garbage\n", "sgdsa convolution choices 3\nmachine another CPU\n",
                       "sgdsa convolution choices 3\n", "\0\1\2"} do
    local xdg = tmp .. "/xdg_bad" .. i
    probe(xdg)
    local file = cache_file(xdg)
    local good = T.read_file(file)
    local machine = good:match("\n(machine [^\n]+)\n")
    if i == 2 then bad = bad:gsub("machine another CPU", machine .. " and more") end
    if i == 3 then bad = good:gsub("forward (%a+)", "forward fastest", 1) end
    T.write_file(file, bad)
    local code, out = probe(xdg)
    T.eq(code, 0, "case " .. i .. ": " .. out)
    T.check(out:find("warning: the convolution choice cache " .. file .. " is damaged", 1, true),
            "case " .. i .. ": no warning:\n" .. out)
    local t, n = choices(out)
    T.eq(n, 3, "case " .. i .. ": " .. out)
    for c, origin in pairs(t) do T.eq(origin, "measured", "case " .. i .. ": " .. c) end
    local text = T.read_file(file)
    T.check(text:match("^sgdsa convolution choices 3\n" .. machine:gsub("%p", "%%%0") .. "\n"),
            "case " .. i .. ": not rewritten: " .. text)
    for c in pairs(t) do T.check(text:find(c, 1, true), "case " .. i .. ": not in the cache: " .. c) end
  end
end)

T.test("a resume computes with the run's recorded choices, whatever SGDSA_CONV says", function()
  local F = dofile("tests/lua/trainer_fixture.lua")
  local data = F.data_file(tmp)
  local out = tmp .. "/runs"
  local function run(args, env)
    local code, o = T.sgdsa({"run", "tests/lua/test_conv_choice.lua", table.unpack(args)},
                            "CONV_CHOICE_CHILD=run SGDSA_FIXTURE_DATA=" .. T.shell_quote(data) ..
                            " XDG_CACHE_HOME=" .. T.shell_quote(tmp .. "/xdg_run") .. " " .. env)
    T.eq(code, 0, o)
  end
  local function weights(dir)
    local m = net()
    require("sgdsa.checkpoint").load(dir .. "/last.h5", m)
    return m.params
  end
  run({"out=" .. out, "name=ref"}, "SGDSA_CONV=dnnl")
  run({"out=" .. out, "name=im2col"}, "SGDSA_CONV=im2col")
  run({"out=" .. out, "name=cut", "epochs=1"}, "SGDSA_CONV=dnnl")
  local f = h5.open(out .. "/cut/log.h5", "r")
  local rec = f:attr("cpu_conv_choices")
  f:close()
  T.check(rec and rec:find("forward dnnl, backward%-data dnnl, backward%-params dnnl # forced"),
          "log.h5's cpu_conv_choices: " .. tostring(rec))
  run({"resume=" .. out .. "/cut", "epochs=2"}, "SGDSA_CONV=im2col")
  local ref = weights(out .. "/ref")
  T.check((weights(out .. "/im2col") - ref):abs():max() > 0,
          "im2col and oneDNN gave the same bits: the resume check below proves nothing")
  T.eq((weights(out .. "/cut") - ref):abs():max(), 0, "the resumed run's weights differ from the run left alone")
  f = h5.open(out .. "/cut/log.h5", "r")
  rec = f:attr("cpu_conv_choices")
  f:close()
  T.check(rec:find("forward dnnl, backward%-data dnnl, backward%-params dnnl # run"),
          "after the resume, log.h5's cpu_conv_choices: " .. rec)
end)

T.done()
