-- test_fashion_run.lua - a short real SGD-SA run on Fashion-MNIST through the
-- trainer (LeNet-5 with BN, 3000 training images, 4 epochs, the paper's H, T0 = 1,
-- alpha = 0.8) reaches a sensible validation accuracy, and Scheduled-SGD on
-- the same data too. Skipped (77) when the data set is not installed.
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"
local trainer = require "sgdsa.trainer"

local ok, err = pcall(sg.data.fashion_mnist, {limit = 10, test_limit = 10, prefetch = 0})
if not ok then T.skip("Fashion-MNIST not found: " .. tostring(err):sub(1, 200)) end

local function exp(optim, epochs)
  return {
    model = {"lenet", classes = 10},
    data = {"fashion_mnist", batch = 64, limit = 3000, test_limit = 1000},
    optim = optim, epochs = epochs or 3, seed = 1, threads = 1, out = false, progress = "off",
  }
end

T.test("SGD-SA (the paper's settings) learns Fashion-MNIST", function()
  local r = trainer.train(exp(sg.optim.sgdsa{
    H = {0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.09, 0.08, 0.07, 0.06, 0.05}, T0 = 1, alpha = 0.8}, 4))
  local e = r.logs.epochs
  io.write(string.format("     SGD-SA val acc at epochs 1, 3, 4: %.3f %.3f %.3f; acceptance %.3f %.3f %.3f\n",
                         e[1].val_acc, e[3].val_acc, e[4].val_acc, e[1].accept_rate, e[3].accept_rate,
                         e[4].accept_rate))
  T.check(r.best_acc > 0.75, "best validation accuracy " .. r.best_acc)
  T.check(e[4].train_loss < e[1].train_loss, "training loss did not decrease")
end)

T.test("Scheduled-SGD on the same data", function()
  local r = trainer.train(exp(sg.optim.sgd{schedule = {{2, 0.1}, {1, 0.01}}}))
  io.write(string.format("     SGD val acc: %.3f\n", r.best_acc))
  T.check(r.best_acc > 0.75, "best validation accuracy " .. r.best_acc)
  T.eq(r.logs.epochs[1].accept_rate, 1, "SGD accepts every move")
end)

T.done()
