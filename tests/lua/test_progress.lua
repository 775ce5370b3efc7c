-- test_progress.lua - what a run shows: the run folder and a "loading data"
-- line before the first epoch, the bar's time left in the epoch and in the
-- whole run, the epoch lines' time left in the run; nothing with
-- progress=off.
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"
local progress = require "sgdsa.progress"
local F = dofile("tests/lua/trainer_fixture.lua")

local function capture()
  local buf = {}
  return {write = function(self, ...) for _, s in ipairs{...} do buf[#buf + 1] = s end return self end,
          flush = function() end, text = function() return table.concat(buf) end}
end

T.test("the bar says what its times cover", function()
  local p = progress.new("bar", 3, 10)
  local out = capture()
  p.out = out
  p:epoch_start(1, 0)
  local search = {stats = {steps = 4, accepted = 2}}
  sg.core.sleep(0.02)
  p:step(search, {n = 8, loss = 1.5, temperature = 0.5})
  local text = out.text()
  T.check(text:find("epoch 1/3 [", 1, true), text)
  T.check(text:find("left: epoch %d+:%d%d, run %d+:%d%d"), "times left in the epoch and the run: " .. text)
  search.stats.steps = 10
  p:step(search, {n = 8, loss = 1.5, temperature = 0.5})
  p:epoch_end{epoch = 1, train_loss = 1, train_acc = 0.5, val_loss = 1, val_acc = 0.5, T = 0.5,
              accept_rate = 0.5, mean_prob = 0.5, nonfinite = 0, seconds = 0.1, images_per_s = 100}
  T.check(out.text():find("epoch 1/3  train loss 1.0000 .- run left ~%d+:%d%d\n"), "the epoch line: " .. out.text())
end)

T.test("a run's first lines: its folder and the data load", function()
  if not os.getenv("SGDSA_BIN") then io.write("  (SGDSA_BIN not set: skipped)\n"); return end
  local tmp = T.tmpdir() .. "/progress-" .. sg.core.getpid()
  os.execute("rm -rf " .. T.shell_quote(tmp))
  sg.core.mkdir_p(tmp)
  local env = "SGDSA_FIXTURE_DATA=" .. T.shell_quote(F.data_file(tmp))
  local code, out = T.sgdsa({"run", "tests/lua/trainer_fixture.lua", "out=" .. tmp .. "/runs", "name=p",
                             "progress=lines", "epochs=2"}, env)
  T.eq(code, 0, "exit: " .. out)
  local folder = out:find("run folder " .. tmp .. "/runs/p\n", 1, true)
  local loading = out:find("loading data hdf5 %.%.%. 640 training images, 256 for validation %(%d+%.%d s%)\n")
  local epoch1 = out:find("epoch 1/2  train loss", 1, true)
  T.check(folder and loading and epoch1 and folder < loading and loading < epoch1,
          "the folder, then the data load, then epoch 1: " .. out)
  T.check(out:find("epoch 1/2 .- run left ~%d+:%d%d\n"), "epoch 1 says the time left in the run: " .. out)
  code, out = T.sgdsa({"resume", tmp .. "/runs/p", "epochs=3"}, env)
  T.eq(code, 0, "resume exit: " .. out)
  T.check(out:find("run folder " .. tmp .. "/runs/p (resuming it)\n", 1, true), out)
  code, out = T.sgdsa({"run", "tests/lua/trainer_fixture.lua", "out=" .. tmp .. "/runs", "name=q",
                       "progress=off", "epochs=1"}, env)
  T.eq(code, 0, "exit: " .. out)
  T.check(not out:find("loading data", 1, true) and not out:find("^run folder") and not out:find("\nrun folder"),
          "progress=off: no progress lines: " .. out)
  os.execute("rm -rf " .. T.shell_quote(tmp))
end)

T.done()
