-- test_sweep.lua - a real tiny sweep: 2 seeds x 2 methods (SGD-SA and
-- Scheduled-SGD, experiments/fashion_lenet_*.lua) x 2 epochs on a 512-image
-- Fashion-MNIST slice, run by `sgdsa sweep` as child processes; then a rerun
-- (finished seeds skipped), a longer rerun (runs resumed from last.h5), an
-- interrupted sweep resumed, a failing seed that does not stop the others,
-- the table's numbers against the logs read directly, and the PNG and SVG
-- the plot command writes. Skips (77) without the data set or the binary.
local T = dofile("tests/lua/testlib.lua")
local core = require "sgdsa.core"
local h5 = require "sgdsa.h5"
local sg = require "sgdsa"

local BIN = os.getenv("SGDSA_BIN")
if not BIN or BIN == "" then T.skip("SGDSA_BIN not set") end
if not pcall(sg.data.fashion_mnist, {limit = 16, test_limit = 16}) then
  T.skip("Fashion-MNIST not found (Debian package dataset-fashion-mnist)")
end

local tmp = T.scratch("sweep")
local runs = tmp .. "/runs"
local SIZE = {"data.limit=512", "data.test_limit=256", "data.batch=128"}

local q, sgdsa, read = T.shell_quote, T.sgdsa, T.read_file

local function sweep(script, seeds, epochs, more)
  local args = {"sweep", script, "seeds=" .. seeds, "jobs=2", "epochs=" .. epochs, "runs=" .. runs}
  for _, a in ipairs(SIZE) do args[#args + 1] = a end
  for _, a in ipairs(more or {}) do args[#args + 1] = a end
  return sgdsa(args)
end

local function epochs_of(dir) return h5.read_log(dir .. "/log.h5", "epochs") end

T.test("a sweep per method: 2 seeds x 2 epochs, 2 jobs", function()
  for _, m in ipairs({"sa", "sgd"}) do
    local code, out = sweep("experiments/fashion_lenet_" .. m .. ".lua", "0-1", 2)
    T.eq(code, 0, "sweep " .. m .. " exit (" .. out .. ")")
    T.check(out:find("2 finished, 0 failed", 1, true), "summary: " .. out)
    T.check(out:find("threads=1 each", 1, true), "each run gets its share of the 2 cores: " .. out)
    for s = 0, 1 do
      local dir = string.format("%s/fashion_lenet_%s/seed-%d", runs, m, s)
      T.check(core.exists(dir .. "/last.h5"), dir .. " has a checkpoint")
      local log = epochs_of(dir)
      T.eq(log.rows, 2, dir .. " epochs logged")
      local f <close> = h5.open(dir .. "/log.h5", "r")
      T.eq(f:attr("seed"), s, dir .. " seed")
      T.eq(f:attr("threads"), 1, dir .. " threads")
    end
  end
  -- Different seeds give different runs.
  local a = epochs_of(runs .. "/fashion_lenet_sa/seed-0").data.train_loss[1]
  local b = epochs_of(runs .. "/fashion_lenet_sa/seed-1").data.train_loss[1]
  T.check(a ~= b, "seeds 0 and 1 differ")
end)

T.test("rerun skips finished seeds; more epochs resume them", function()
  local t0 = core.time()
  local code, out = sweep("experiments/fashion_lenet_sgd.lua", "0-1", 2)
  T.eq(code, 0, "rerun exit (" .. out .. ")")
  T.check(out:find("0 to run (2 finished before)", 1, true), "nothing to run: " .. out)
  T.check(core.time() - t0 < 5, "a rerun of finished seeds starts nothing")
  -- more epochs of the same experiment: a constant learning rate (the
  -- shipped baseline compresses its schedule into the run's epochs, so more
  -- epochs make another experiment, which a resume refuses)
  local script = tmp .. "/constant_sgd.lua"
  T.write_file(script, [[
local e = dofile("experiments/fashion_lenet_sgd.lua")
e.optim = require("sgdsa").optim.sgd{lr = 0.05}
return e
]])
  code, out = sweep(script, "0", 2)
  T.eq(code, 0, "constant_sgd exit (" .. out .. ")")
  local dir = runs .. "/constant_sgd/seed-0"
  local before = epochs_of(dir)
  code, out = sweep(script, "0", 3)
  T.eq(code, 0, "epochs=3 exit (" .. out .. ")")
  T.check(out:find("seed 0: resuming", 1, true), "resumed: " .. out)
  local after = epochs_of(dir)
  T.eq(after.rows, 3, "three epochs")
  for i = 1, 3 do T.eq(after.data.epoch[i], i, "epoch column") end
  T.eq(after.data.val_loss[2], before.data.val_loss[2], "epoch 2 kept as it was")
  T.check(read(runs .. "/constant_sgd/seed-0.out"):find("resume=", 1, true), "child got resume=")
end)

T.test("an interrupted sweep stops its runs cleanly and resumes", function()
  local script = "experiments/fashion_lenet_sa.lua"
  -- One thread: an oversubscribed OpenMP pool on a busy machine is slow.
  local words = {q(BIN), "sweep", q(script), "seeds=5", "jobs=1", "threads=1", "epochs=3",
                 "runs=" .. q(tmp .. "/int"), "data.limit=1024", "data.test_limit=256"}
  local log = tmp .. "/int.log"
  local p = io.popen(table.concat(words, " ") .. " > " .. q(log) .. " 2>&1 & echo $!")
  local pid = tonumber(p:read("a"):match("%d+"))
  p:close()
  T.check(pid, "sweep started")
  local out = tmp .. "/int/fashion_lenet_sa/seed-5.out"
  local t0 = core.time()
  -- Wait for the first epoch to be logged, then interrupt the sweep only.
  while core.time() - t0 < 60 and not (read(out) or ""):find("epoch 1/3", 1, true) do core.sleep(0.1) end
  T.check((read(out) or ""):find("epoch 1/3", 1, true), "first epoch done")
  local _, st = sgdsa({"sweep", "--status", tmp .. "/int/fashion_lenet_sa"})
  T.check(st:find("local sweep, running (pid " .. pid .. ")", 1, true), "status: the sweep runs: " .. st)
  T.check(st:find("seed 5%s+running%s+epoch %d of 3, last val acc [%d.]+%%; pid %d+")
          or st:find("seed 5%s+done"), "status: seed 5 runs: " .. st)
  os.execute("kill -INT " .. pid)
  while core.time() - t0 < 90 and os.execute("kill -0 " .. pid .. " 2>/dev/null") do core.sleep(0.1) end
  local text = read(log)
  T.check(text:find("interrupted (rerun the sweep to resume)", 1, true)
          or text:find("seed 5: finished", 1, true), "the sweep reports the seed: " .. text)
  if text:find("seed 5: finished", 1, true) then
    io.write("  (the run finished before the interrupt arrived: resume not exercised)\n")
    return
  end
  T.check(text:find("0 finished, 0 failed, 1 interrupted", 1, true), "summary: " .. text)
  local dir = tmp .. "/int/fashion_lenet_sa/seed-5"
  T.check(core.exists(dir .. "/last.h5"), "checkpoint written on the interrupt")
  local _, st = sgdsa({"sweep", "--status", tmp .. "/int/fashion_lenet_sa"})
  T.check(st:find("local sweep, not running", 1, true), "status: the sweep ended: " .. st)
  T.check(st:find("seed 5%s+interrupted%s+%d/3 epochs[^\n]*checkpoint in last.h5: resumes when the sweep runs again"),
          "status: seed 5 interrupted: " .. st)
  T.check(read(out):find("==== exit status 130 on ", 1, true), "the footer of the attempt: " .. read(out))
  local code, rout = sgdsa({"sweep", script, "seeds=5", "jobs=1", "threads=1", "epochs=3",
                            "runs=" .. tmp .. "/int", "data.limit=1024", "data.test_limit=256"})
  T.eq(code, 0, "resumed sweep exit (" .. rout .. ")")
  T.check(rout:find("seed 5: resuming", 1, true), "resumed: " .. rout)
  local e = epochs_of(dir)
  T.eq(e.rows, 3, "three epochs after the resume")
  for i = 1, 3 do T.eq(e.data.epoch[i], i, "no duplicate or missing epoch") end
end)

T.test("a failing seed is reported and does not stop the others", function()
  local script = tmp .. "/fail_on_1.lua"
  local f = assert(io.open(script, "w"))
  f:write([[
local overrides = ...
if overrides.seed == 1 then error("deliberate failure for seed 1") end
return dofile("experiments/fashion_lenet_sgd.lua")
]])
  f:close()
  local code, out = sgdsa({"sweep", script, "seeds=0,1", "jobs=2", "epochs=1", "runs=" .. runs,
                           "data.limit=256", "data.test_limit=128"})
  T.eq(code, 1, "exit code when a seed fails (" .. out .. ")")
  local outfile = runs .. "/fail_on_1/seed-1.out"
  T.check(out:find("seed 1: FAILED (exit 1), see " .. outfile, 1, true), "failure names the log: " .. out)
  T.check(out:find("deliberate failure for seed 1", 1, true), "the tail of the log is shown: " .. out)
  T.check(out:find("1 finished, 1 failed", 1, true), "summary: " .. out)
  T.check(read(outfile):find("deliberate failure", 1, true), "the log holds the error")
  T.eq(epochs_of(runs .. "/fail_on_1/seed-0").rows, 1, "seed 0 ran")
  local c2, st = sgdsa({"sweep", "--status", runs .. "/fail_on_1"})
  T.eq(c2, 0, "status exit")
  T.check(st:find("seed 0%s+done%s+1/1 epochs, last val acc"), "status: seed 0 done: " .. st)
  T.check(st:find("seed 1%s+failed%s+exit status 1 after 0/%S+ epochs; " .. runs:gsub("%p", "%%%0")
                  .. "/fail_on_1/seed%-1%.out ends:\n%s+| [^\n]*deliberate failure for seed 1"),
          "status: seed 1 failed, with the end of its output: " .. st)
  T.check(st:find("1 done, 1 failed", 1, true), "status: counts: " .. st)
end)

T.test("--slurm --dry-run prints the job array script; options go with --slurm", function()
  local code, out = sgdsa({"sweep", "experiments/fashion_lenet_sa.lua", "seeds=0-2,5", "epochs=2", "runs=" .. runs,
                           "name=dry", "data.limit=256", "--slurm", "--dry-run", "--partition", "gpu",
                           "--account=lab", "--time", "1-00:00:00", "--gpus-per-run", "1", "--cpus-per-run", "4",
                           "--max-running", "2", "--sbatch", "--mem=8G", "device=cuda"}, "PATH=/usr/bin:/bin")
  T.eq(code, 0, "dry run (" .. out .. ")")
  for _, line in ipairs{"#!/bin/bash", "#SBATCH --array=0-2,5%2", "#SBATCH --requeue", "#SBATCH --signal=B:USR1@120",
                        "#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --time=1-00:00:00",
                        "#SBATCH --gres=gpu:1", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8G",
                        "#SBATCH --job-name=sgdsa-dry", "OVERRIDES=(threads=4 epochs=2 data.limit=256 device=cuda)",
                        "export SGDSA_CUDA_DEVICE=0", "sweep --folder-state \"$RUN\"", "scontrol requeue \"$TASK\""} do
    T.check(out:find(line, 1, true), "the script has " .. line .. ":\n" .. out)
  end
  T.check(out:find("\n#SBATCH %-%-output=/[^\n]*/dry/seed%-%%a%.out\n"), "absolute output path: " .. out)
  T.check(not core.exists(runs .. "/dry"), "a dry run writes nothing")
  -- the script is valid bash
  T.write_file(tmp .. "/dry.sbatch", out:match("#!/bin/bash.*$"))
  T.eq(os.execute("bash -n " .. q(tmp .. "/dry.sbatch")), true, "bash -n")
  local bad = {
    {{"--partition", "p"}, "go with --slurm"},
    {{"--dry-run"}, "go with --slurm"},
    {{"--slurm", "jobs=2"}, "jobs= and gpus= are for a local sweep"},
    {{"--slurm", "--time", "two hours"}, "need a Slurm time"},
    {{"--slurm", "--max-running", "0"}, "--max-running 0: need a positive integer"},
    {{"--slurm", "--partition"}, "--partition needs a value"},
  }
  for _, b in ipairs(bad) do
    local args = {"sweep", "experiments/fashion_lenet_sa.lua"}
    for _, a in ipairs(b[1]) do args[#args + 1] = a end
    local c, o = sgdsa(args)
    T.eq(c, 2, table.concat(b[1], " ") .. " is a usage error (" .. o .. ")")
    T.check(o:find(b[2], 1, true), table.concat(b[1], " ") .. ": " .. o)
  end
  local c, o = sgdsa({"sweep", "--status", tmp})
  T.eq(c, 1, "status of a folder that is no sweep (" .. o .. ")")
  T.check(o:find("not a sweep folder", 1, true), o)
end)

T.test("gpus=: each run gets SGDSA_CUDA_DEVICE, the GPUs shared out by load", function()
  -- The script says which GPU its run was given (a cpu run: the variable is
  -- all this checks, so no GPU is needed).
  local script = tmp .. "/which_gpu.lua"
  T.write_file(script, [[
print("run's SGDSA_CUDA_DEVICE=" .. tostring(os.getenv("SGDSA_CUDA_DEVICE")))
return dofile("experiments/fashion_lenet_sgd.lua")
]])
  local code, out = sgdsa({"sweep", script, "seeds=0-2", "jobs=3", "gpus=1,3", "epochs=1", "runs=" .. runs,
                           "data.limit=256", "data.test_limit=128"})
  T.eq(code, 0, "exit (" .. out .. ")")
  T.check(out:find("on GPUs 1,3", 1, true), "the plan names the GPUs: " .. out)
  -- three runs started at once on two GPUs: 1, 3, then 1 again (fewest runs, first listed)
  local want = {[0] = 1, [1] = 3, [2] = 1}
  for seed, gpu in pairs(want) do
    T.check(out:find(string.format("seed %d: started on GPU %d", seed, gpu), 1, true), "seed " .. seed .. ": " .. out)
    local log = read(string.format("%s/which_gpu/seed-%d.out", runs, seed))
    T.check(log:find("run's SGDSA_CUDA_DEVICE=" .. gpu, 1, true), "seed " .. seed .. "'s run: " .. log)
    T.check(log:find(", GPU " .. gpu, 1, true), "seed " .. seed .. "'s header: " .. log)
  end
  code, out = sgdsa({"sweep", script, "gpus=1-0"})
  T.eq(code, 2, "bad gpus")
  T.check(out:find("gpus=1-0", 1, true), out)
end)

T.test("sweep usage errors", function()
  local code, out = sgdsa({"sweep"})
  T.eq(code, 2, "no script")
  code, out = sgdsa({"sweep", "experiments/fashion_lenet_sa.lua", "seeds=3-1"})
  T.eq(code, 2, "bad seeds")
  T.check(out:find("goes down", 1, true), out)
  code = sgdsa({"sweep", "experiments/fashion_lenet_sa.lua", "seed=3"})
  T.eq(code, 2, "seed= is the sweep's")
  code = sgdsa({"sweep", "experiments/fashion_lenet_sa.lua", "jobs=0"})
  T.eq(code, 2, "jobs=0")
  code = sgdsa({"sweep", "nope.lua"})
  T.eq(code, 2, "missing script")
  -- A live sweep.pid (this test's own pid) in the experiment folder: refused.
  assert(core.mkdir_p(runs .. "/locked"))
  local lf = assert(io.open(runs .. "/locked/sweep.pid", "w"))
  lf:write(core.getpid(), "\n")
  lf:close()
  code, out = sgdsa({"sweep", "experiments/fashion_lenet_sa.lua", "name=locked", "runs=" .. runs, "seeds=0"})
  T.eq(code, 1, "another sweep in the folder")
  T.check(out:find("another sweep (pid " .. core.getpid() .. ")", 1, true), out)
  code, out = sgdsa({"sweep", "--help"})
  T.eq(code, 0, "help")
  T.check(out:find("seeds=SPEC", 1, true), "help text")
end)

T.test("table numbers are the logs' last epochs", function()
  local code, out = sgdsa({"table", runs .. "/fashion_lenet_sa", runs .. "/fashion_lenet_sgd", "--format", "csv",
                           "--at", "last"})
  T.eq(code, 0, "exit (" .. out .. ")")
  local seen = 0
  for line in out:gmatch("[^\n]+") do
    local method, seed, e, l, a = line:match("^([^,]*),(%d+),(%d+),([^,]*),([^,]*)$")
    if method then
      local m = method == "SGD-SA" and "sa" or (method == "Scheduled-SGD" and "sgd")
      T.check(m, "method label " .. method)
      local log = epochs_of(string.format("%s/fashion_lenet_%s/seed-%s", runs, m, seed))
      T.eq(tonumber(e), log.data.epoch[log.rows], "last epoch of " .. method .. " seed " .. seed)
      T.near(tonumber(l), log.data.val_loss[log.rows], 1e-8, "loss of " .. method .. " seed " .. seed)
      T.near(tonumber(a), 100 * log.data.val_acc[log.rows], 1e-8, "accuracy of " .. method .. " seed " .. seed)
      seen = seen + 1
    end
  end
  T.eq(seen, 4, "4 seed rows")
  code, out = sgdsa({"table", runs .. "/fashion_lenet_sa", runs .. "/fashion_lenet_sgd"})
  T.eq(code, 0, "text")
  T.check(out:find("lenet", 1, true) and out:find("Best SGD-SA", 1, true), out)
  T.check(out:find("minibatch size (128 here", 1, true), "batch size from the config: " .. out)
end)

T.test("plot writes a PNG and an SVG with one curve per run and panel", function()
  if not os.execute("command -v gnuplot >/dev/null 2>&1") then
    io.write("  (gnuplot not installed: skipped)\n"); return
  end
  local png = tmp .. "/fig.png"
  local code, out = sgdsa({"plot", runs .. "/fashion_lenet_sa", runs .. "/fashion_lenet_sgd", "-o", png})
  T.eq(code, 0, "png exit (" .. out .. ")")
  local data = assert(read(png))
  T.eq(data:sub(1, 8), "\137PNG\r\n\26\n", "PNG signature")
  T.eq(string.unpack(">I4", data, 17), 1200, "width")
  T.eq(string.unpack(">I4", data, 21), 900, "height")
  T.check(#data > 20000, "non-trivial PNG: " .. #data .. " bytes")
  local svg = tmp .. "/fig.svg"
  code, out = sgdsa({"plot", runs .. "/fashion_lenet_sa", runs .. "/fashion_lenet_sgd",
                     runs .. "/constant_sgd", "-o", svg})
  T.eq(code, 0, "svg exit (" .. out .. ")")
  local s = assert(read(svg))
  local ids = {}
  local n = 0
  for id in s:gmatch('<g id="(gnuplot_plot_%d+%a*)"') do
    if not ids[id] then ids[id] = true; n = n + 1 end
  end
  -- 3a: the 2 SGD-SA runs; 3b, 4a, 4b: all 5 runs.
  T.eq(n, 2 + 3 * 5, "curves")
  -- The constant_sgd run has 3 epochs (resumed above): its curves have 3 points.
  local long = 0
  for d in s:gmatch("<path stroke='rgb%([%d, ]+%)'[^>]-d='([^']*)'") do
    local _, pts = d:gsub("[ML]", "")
    if pts == 3 then long = long + 1 end
  end
  T.eq(long, 3, "the 3-epoch run's three curves")
  -- Figures 1 and 2 (the paper's SSA against SGD): validation curves; then
  -- training (dashed) and validation (solid) curves of every run
  local function curves(svgfile)
    local text, seen, count = assert(read(svgfile)), {}, 0
    for id in text:gmatch('<g id="(gnuplot_plot_%d+%a*)"') do
      if not seen[id] then seen[id] = true; count = count + 1 end
    end
    return text, count
  end
  code, out = sgdsa({"plot", runs .. "/fashion_lenet_sa", runs .. "/fashion_lenet_sgd", "-o", svg, "--figure", "1"})
  T.eq(code, 0, "figure 1 exit (" .. out .. ")")
  local s1, n1 = curves(svg)
  T.eq(n1, 2 * 4, "figure 1: a curve per run and panel")
  T.check(s1:find("(1a) Validation loss", 1, true) and s1:find("(1b) Validation accuracy", 1, true), "figure 1 titles")
  code, out = sgdsa({"plot", runs .. "/fashion_lenet_sa", runs .. "/fashion_lenet_sgd", "-o", svg, "--figure", "2"})
  T.eq(code, 0, "figure 2 exit (" .. out .. ")")
  T.check(out:find("16 curves", 1, true), "figure 2: two curves per run and panel: " .. out)
  local s2, n2 = curves(svg)
  T.eq(n2, 2 * 4 * 2, "figure 2: training and validation curves per run and panel")
  T.check(s2:find("(2b) Training and validation accuracy", 1, true), "figure 2 titles")
  T.check(s2:find("fashion_lenet_sa, training", 1, true) or s2:find("SGD-SA", 1, true), "legend names the training curves")
  local _, dashed = s2:gsub("stroke%-dasharray", "")
  T.check(dashed >= 8, "the training curves are dashed (" .. dashed .. " dashed paths)")
  code, out = sgdsa({"plot", runs .. "/fashion_lenet_sa", "-o", svg, "--figure", "5"})
  T.eq(code, 2, "figure 5 is a usage error")
  T.check(out:find("use 1, 2, 3, 4 or all", 1, true), out)
end)

if not os.getenv("SGDSA_TEST_KEEP") then T.remove(tmp) end
T.done()
