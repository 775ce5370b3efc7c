-- make_h5load.lua - regenerates the seed corpus of fuzz_h5load (small files, < 20000 bytes):
--   sgdsa run tests/fuzz/corpus/make_h5load.lua tests/fuzz/corpus/h5load
local sg = require "sgdsa"
local h5 = sg.h5
local d = arg and arg[1] or sg.args[1]
sg.manual_seed(1)
h5.save(d .. "/ckpt_small.h5", {
  ["conv1.weight"] = sg.randn(4, 1, 3, 3), ["bn1.running_mean"] = sg.zeros(4),
  ["bn1.num_batches_tracked"] = 5, ["search/temperature"] = 0.8, ["search/epoch"] = 2,
  ["search/rng/shuffle"] = { 1, 2, 3, 0 }, script = "return {epochs=1}\n",
  ["labels"] = sg.tensor({ 1, 2, 3 }, "int32"), ["mask"] = sg.tensor({ 0, 1 }, "uint8"),
}, { sgdsa_version = "0.1.0", seed = 3 })
local log = h5.log(d .. "/log.h5", "steps", { { "step", "int64" }, "loss" })
for i = 1, 20 do log:append { step = i, loss = 1 / i } end
log:flush()
h5.save(d .. "/chunked.h5", { w = sg.randn(4200) })
