-- test_nn_fixtures.lua - whole models against PyTorch: tests/fixtures/models.h5
-- (written by tools/make-model-fixtures; no torch needed here) holds weights
-- by name, an input batch, and PyTorch's logits, loss, input gradient,
-- parameter gradients and running statistics after one training forward.
-- Outputs must agree within 1e-5 and gradients within 1e-4, relative to the
-- largest magnitude. SGDSA_MODEL_FIXTURES=path checks another file (the
-- full-size comparison of `tools/make-model-fixtures compare`).
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"
local nn = require "sgdsa.nn"
local h5 = require "sgdsa.h5"

local path = os.getenv("SGDSA_MODEL_FIXTURES") or "tests/fixtures/models.h5"
local f = h5.open(path, "r")

local cases, seen = {}, {}
for _, e in ipairs(f:list("/")) do
  local top = e.name:match("^([^/]+)/")
  if top and not seen[top] then seen[top] = true; cases[#cases + 1] = top end
end
T.check(#cases > 0, "fixture file " .. path .. " has cases")

-- max |a - b| <= tol * max(max |b|, floor)   (floor: for a gradient that is
-- zero in exact arithmetic, e.g. a conv bias before BatchNorm, 1e-2 of the
-- largest parameter gradient of the model)
local function rel(a, b, tol, what, floor)
  local sa, sb = table.concat(a:size(), "x"), table.concat(b:size(), "x")
  T.eq(sa, sb, what .. " shape")
  local diff = (a:contiguous() - b):abs():max()
  local scale = math.max(b:abs():max(), floor or 0)
  if not (diff <= tol * scale) then
    error(string.format("%s: max difference %.3g > %.3g (%g x max %.3g)", what, diff, tol * scale,
                        tol, scale), 2)
  end
end

for _, name in ipairs(cases) do
  T.test("model " .. name .. " matches PyTorch", function()
    local a = function(k) return f:attr_of(name, k) end
    local model = require("models." .. a("model")){channels = a("channels"), size = a("size"),
                                                   classes = a("classes"), width = a("width"),
                                                   input_grad = true}
    model:load(path, {group = name .. "/state"})
    local x, labels = f:read(name .. "/x"), f:read(name .. "/labels")
    local logits = model:forward(x, "train")
    rel(logits, f:read(name .. "/logits"), 1e-5, name .. " logits")
    local crit = nn.CrossEntropy()
    local loss = crit:forward(logits, labels)
    T.near(loss, h5.get(f, name .. "/loss"), 1e-5, name .. " loss")
    model:zero_grad()
    local dx = model:backward(x, crit:backward())
    rel(dx, f:read(name .. "/dx"), 1e-4, name .. " input grad")
    local st = model:state()
    local gmax = 0
    for _, e in ipairs(model:named_tensors()) do
      if e.kind == "param" then gmax = math.max(gmax, f:read(name .. "/grads/" .. e.name):abs():max()) end
    end
    local ngrads, nrun = 0, 0
    for _, e in ipairs(model:named_tensors()) do
      if e.kind == "param" then
        rel(e.grad, f:read(name .. "/grads/" .. e.name), 1e-4, name .. " grad " .. e.name, 1e-2 * gmax)
        ngrads = ngrads + 1
      elseif e.name:match("running_") then
        rel(st[e.name], f:read(name .. "/running/" .. e.name), 1e-5, name .. " " .. e.name)
        nrun = nrun + 1
      end
    end
    T.check(ngrads > 0 and nrun > 0, "compared gradients and running statistics")
  end)
end

f:close()
T.done()
