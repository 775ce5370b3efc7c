-- experiments/fashion_lenet_sgd20.lua - the Scheduled-SGD baseline of the
-- README's figure and table (docs/RESULTS.md): fashion_lenet_sgd.lua over 20
-- epochs, with the paper's learning-rate pattern 0.1 / 0.01 / 0.001 over 30% /
-- 40% / 30% of the epochs (6 / 8 / 6). Its SGD-SA counterpart is
-- fashion_lenet_sa.lua with epochs=20 (the paper's H, T0 = 1, alpha = 0.8).
--   sgdsa sweep experiments/fashion_lenet_sgd20.lua seeds=0-9 jobs=2 data.limit=3000
local sg = require "sgdsa"
local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "experiments"
local exp = dofile(dir .. "/fashion_lenet_sgd.lua")
exp.epochs = 20
exp.optim = sg.optim.sgd{schedule = {{6, 0.1}, {8, 0.01}, {6, 0.001}}}
return exp
