-- experiments/fashion_lenet_sgd.lua - the Scheduled-SGD baseline for
-- fashion_lenet_sa.lua: the same model, data and seed; no momentum; the
-- learning rate follows the paper's 0.1 / 0.01 / 0.001 over 30 / 40 / 30 of
-- its 100 epochs, compressed into the run's E epochs (the phases end at
-- the epochs nearest 30% and 70% of E: 2 / 4 / 2 of the default 8, 6 / 8 / 6
-- of 20; a phase that rounds to no epoch is left out).
local sg = require "sgdsa"
local args = ... or {}
local epochs = args.epochs or 8
local ends = {math.max(1, math.floor(0.3 * epochs + 0.5)), math.floor(0.7 * epochs + 0.5), epochs}
local schedule, done = {}, 0
for i, lr in ipairs{0.1, 0.01, 0.001} do
  if ends[i] > done then
    schedule[#schedule + 1] = {ends[i] - done, lr}
    done = ends[i]
  end
end

return {
  model = {"lenet", classes = 10},
  data = {"fashion_mnist", batch = 128, limit = 20480, drop_last = true},
  optim = sg.optim.sgd{schedule = schedule},
  epochs = epochs,
  seed = 0,
}
