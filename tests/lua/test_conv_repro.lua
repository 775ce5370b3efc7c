-- test_conv_repro.lua - the determinism promise for the convolution kernels
-- (im2col + OpenBLAS, or oneDNN where it was measured faster): the same seed
-- gives bit-identical weights, buffers and gradients from one run to the
-- next, each run in a fresh process (so allocation addresses and oneDNN's
-- primitive cache are new), for a fixed thread count, with 1 and 2 threads;
-- and, when built with oneDNN, with oneDNN forced on (SGDSA_CONV=dnnl) for
-- every convolution and pass, the stem and the 1x1 shortcuts included.
--
-- The child (this file with role=child) trains a narrow ResNet-18 for three
-- SGD steps and saves its weights and its last gradient.
local sg = sgdsa or require "sgdsa"
local args = sgdsa.args or {}

if args.role == "child" then
  sg.set_num_threads(args.threads)
  sg.manual_seed(3)
  local model = require("models.resnet18"){classes = 10, width = 1 / 4}
  local x = sg.randn(6, 3, 32, 32, sg.Generator(4))
  local labels = sg.tensor({1, 4, 9, 0, 3, 3}):int()
  local crit = sg.nn.CrossEntropy()
  for _ = 1, 3 do
    model:zero_grad()
    local y = model:forward(x, "train")
    crit:forward(y, labels)
    model:backward(x, crit:backward())
    model.params:add_(model.grads, -0.05)
    model:forward(x * 0.5, "trial")
  end
  model:save(args.out)
  local h5 = require "sgdsa.h5"
  local f = h5.open(args.out .. ".grads", "w")
  f:write("grads", model.grads)
  f:close()
  return
end

local T = dofile("tests/lua/testlib.lua")
local h5 = require "sgdsa.h5"
local bin = os.getenv("SGDSA_BIN")
if not bin or not sg.core.exists(bin) then T.skip("SGDSA_BIN is not set to the sgdsa executable") end
local tmp = T.tmpdir() .. "/conv_repro"
os.execute("rm -rf '" .. tmp .. "'")
sg.core.mkdir_p(tmp)

local function sh(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function child(threads, out, env)
  local cmd = string.format("env %s %s run tests/lua/test_conv_repro.lua role=child threads=%d out=%s",
                            env or "", sh(bin), threads, sh(out))
  local ok = os.execute(cmd)
  T.check(ok, "child failed: " .. cmd)
  local m = require("models.resnet18"){classes = 10, width = 1 / 4}
  m:load(out)
  local f = h5.open(out .. ".grads", "r")
  local g = f:read("grads")
  f:close()
  return m, g
end

local envs = {""}
if pcall(sg.core.conv_impl, "dnnl") then envs[2] = "SGDSA_CONV=dnnl" end  -- built with oneDNN
sg.core.conv_impl("auto")
for _, env in ipairs(envs) do
  for _, threads in ipairs{1, 2} do
    T.test(string.format("resnet18/4, %d thread(s)%s: two runs bit-identical", threads,
                         env ~= "" and ", " .. env or ""), function()
      local a, ga = child(threads, tmp .. "/a.h5", env)
      local b, gb = child(threads, tmp .. "/b.h5", env)
      T.eq((a.params - b.params):abs():max(), 0, "weights differ")
      T.eq((a.buffers - b.buffers):abs():max(), 0, "buffers differ")
      T.eq((ga - gb):abs():max(), 0, "gradients differ")
      T.check(ga:abs():max() > 0, "gradients are all zero")
    end)
  end
end

T.done()
