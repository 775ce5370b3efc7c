-- test_slurm.lua - `sgdsa sweep --slurm` on a real Slurm: a single-node
-- cluster on this machine (tools/slurm-local: Debian's slurm-wlm and munge,
-- started for this test and stopped at its end, whatever happens). A 4-seed
-- CPU sweep of the trainer fixture (synthetic data, 3 epochs of 20 steps,
-- slowed to 0.1 s a step so that its tasks can be stopped mid-run) is
-- submitted as a job array; one running task is requeued with `scontrol
-- requeue` (Slurm's SIGTERM, Slurm's requeue) and another gets the time-limit
-- signal by hand (`scancel --signal=USR1 --batch`: the batch script stops the
-- run and requeues its own task); all four finish, and the two stopped ones
-- equal, bit for bit, their uninterrupted twins from a local sweep (weights,
-- BatchNorm buffers, best weights, every logged step and epoch). Then: a
-- finished task started again does nothing; the sweep submitted again submits
-- nothing; a cancelled task is not requeued and reads as interrupted;
-- `sgdsa sweep --status` along the way; `sgdsa table` on the sweep folder.
-- Skips (77) only where Slurm cannot start here (not root, not installed, a
-- daemon that fails: tools/slurm-local says which).
local T = dofile("tests/lua/testlib.lua")
local core = require "sgdsa.core"
local h5 = require "sgdsa.h5"
local checkpoint = require "sgdsa.checkpoint"
local F = dofile("tests/lua/trainer_fixture.lua")

local BIN = os.getenv("SGDSA_BIN")
if not BIN or BIN == "" then T.skip("SGDSA_BIN not set") end
-- The test times Slurm's signals against running tasks; under the sanitizers
-- the runs and this script are several times slower than the timings allow,
-- and the Release build runs it (it exercises the job script and the
-- daemons, not sgdsa's memory).
if os.getenv("SGDSA_SANITIZED") then T.skip("the sanitizer build: Slurm's timings are run in the Release build") end
local q, read = T.shell_quote, T.read_file

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

local tmp = T.scratch("slurm")
-- the experiment: the fixture on its data, 3 epochs, 0.5 s a step (10 s an
-- epoch: a run is still going when the test acts on it). The test acts on
-- each task once it runs: Slurm may start the array's second task well after
-- the first (seen in CI: 40 s).
local data = F.data_file(tmp)
local script = tmp .. "/slow.lua"
T.write_file(script, string.format([[
local F = dofile(%q)
local e = F.experiment(%q, {epochs = 3, progress = "lines"})
e.hooks = {on_step = function() sgdsa.core.sleep(0.5) end}
return e
]], core.root() .. "/tests/lua/trainer_fixture.lua", data))
local runs = tmp .. "/runs"
local sweepdir = runs .. "/slow"

-- The cluster's state: under /tmp (munged wants every folder above its
-- socket searchable by all), one folder per build tree, so a cluster left by
-- a killed run of this test is stopped by the next one.
local key = sh("printf %s " .. q(T.tmpdir()) .. " | cksum"):match("%d+")
local STATE = "/tmp/sgdsa-slurm-test-" .. key
local out, code = sh("tools/slurm-local start " .. q(STATE))
if code == 77 then T.skip((out:gsub("%s+$", ""))) end
if code ~= 0 then
  io.write(out)
  error("tools/slurm-local start failed (exit " .. tostring(code) .. ")")
end
local ENV = "SLURM_CONF=" .. q(STATE .. "/slurm.conf")
local function slurm_cmd(cmd) return sh(ENV .. " " .. cmd) end
local function sgdsa(args) return T.sgdsa(args, ENV) end

local function status(dir) return sgdsa({"sweep", "--status", dir or sweepdir}) end

-- Poll f() every 0.25 s until it returns a true value (returned), for at
-- most `limit` seconds; an interrupt (Ctrl-C) ends the wait with an error.
local function wait_for(what, limit, f)
  local t0 = core.time()
  while true do
    local v = f()
    if v then return v end
    if core.interrupted() then error("interrupted while waiting for " .. what) end
    if core.time() - t0 > limit then error(string.format("%s: not after %d s", what, limit), 2) end
    core.sleep(0.25)
  end
end

-- Epochs in a run folder's log (0 before the first; log.h5 is replaced
-- atomically at each flush, so it can be read while the run writes it).
local function epochs_logged(dir)
  if not core.exists(dir .. "/log.h5") then return 0 end
  local ok, e = pcall(h5.read_log, dir .. "/log.h5", "epochs")
  return ok and e.rows or 0
end

local function model_of(path)
  local m = F.model()
  checkpoint.load(path, m)
  return m
end

local function count(s, pat)
  local _, n = s:gsub(pat, "")
  return n
end

local job

T.test("a 4-seed sweep submitted as a job array", function()
  local c, o = sgdsa({"sweep", script, "seeds=0-3", "runs=" .. runs, "--slurm", "--max-running", "2"})
  T.eq(c, 0, "submission (" .. o .. ")")
  job = o:match("submitted: Slurm job (%d+), array 0%-3%%2")
  T.check(job, "the job id and array: " .. o)
  local text = assert(read(sweepdir .. "/sweep.sbatch"), "sweep.sbatch written")
  for _, line in ipairs{"#SBATCH --array=0-3%2", "#SBATCH --requeue", "#SBATCH --signal=B:USR1@120",
                        "#SBATCH --output=" .. sweepdir .. "/seed-%a.out", "#SBATCH --cpus-per-task=1"} do
    T.check(text:find(line, 1, true), "the script has " .. line)
  end
  T.check(read(sweepdir .. "/sweep.txt"):find("slurm_job " .. job, 1, true), "sweep.txt records the job")
  -- seed 0 runs and gets past its first epoch (read here directly: status
  -- takes longer), with two to go; 2 run at most, so seed 3 waits
  wait_for("seed 0 past its first epoch", 120, function() return epochs_logged(sweepdir .. "/seed-0") >= 1 end)
  local _, st = status()
  T.check(st:find("seed 0%s+running%s+epoch [23] of 3, last val acc"), "seed 0 runs: " .. st)
  T.check(st:find("seed 3%s+queued%s+Slurm " .. job .. "_3 PENDING"), "seed 3 waits: " .. st)
  T.check(st:find("Slurm job " .. job, 1, true), "status names the job: " .. st)
  io.write(st)
end)

T.test("requeue and time-limit signal: both tasks stop with a checkpoint and resume", function()
  T.check(job, "submitted")
  -- the time-limit signal, sent in the background: scancel can wait about
  -- 10 s (for a task of the array to leave its completing state) and exit
  -- non-zero though the signal went out; the .out files below say what
  -- each task did
  os.execute(string.format("%s scancel --signal=USR1 --batch %s_0 >%s 2>&1 &", ENV, job, q(tmp .. "/scancel.out")))
  -- back in the queue, resuming from its checkpoint
  local function requeued(seed)
    wait_for("seed " .. seed .. " back in the queue", 60, function()
      local _, s = status()
      if s:find("seed " .. seed .. "%s+queued[^\n]*resumes from its checkpoint") then
        io.write(s)
        return true
      end
    end)
  end
  requeued(0)
  -- seed 1, once it runs past its first epoch: scontrol requeue
  wait_for("seed 1 past its first epoch", 180, function() return epochs_logged(sweepdir .. "/seed-1") >= 1 end)
  local o, c = slurm_cmd("scontrol requeue " .. job .. "_1")
  T.eq(c, 0, "scontrol requeue (" .. o .. ")")
  requeued(1)
  -- their uninterrupted twins, meanwhile: a local sweep of the same seeds
  local c2, lo = sgdsa({"sweep", script, "seeds=0-1", "jobs=2", "threads=1", "runs=" .. tmp .. "/local"})
  T.eq(c2, 0, "local sweep (" .. lo .. ")")
  local st = wait_for("all four seeds done", 600, function()
    local _, s = status()
    return s:find("4 done", 1, true) and s
  end)
  io.write(st)
  for s = 0, 3 do
    local e = h5.read_log(string.format("%s/seed-%d/log.h5", sweepdir, s), "epochs")
    T.eq(e.rows, 3, "seed " .. s .. " epochs")
  end
  local out0, out1 = read(sweepdir .. "/seed-0.out"), read(sweepdir .. "/seed-1.out")
  for s, text in pairs{[0] = out0, [1] = out1} do
    -- two attempts, or more: scancel --signal may deliver the time-limit
    -- signal again to the requeued task (it retries while the array's task
    -- is completing), which then stops and resumes once more
    T.check(count(text, "==== sgdsa sweep: slow seed " .. s) >= 2, "seed " .. s .. ": two attempts:\n" .. text)
    T.check(text:find("==== exit status 130", 1, true), "seed " .. s .. " stopped with 130:\n" .. text)
    T.check(text:find("seed " .. s .. " %(resume%)[^\n]*restart 1"), "seed " .. s .. " resumed:\n" .. text)
    T.check(text:find("==== exit status 0", 1, true), "seed " .. s .. " finished:\n" .. text)
    local f <close> = h5.open(string.format("%s/seed-%d/log.h5", sweepdir, s), "r")
    T.check(f:attr("resumed") >= 1, "seed " .. s .. " resumed")
  end
  T.check(out0:find("back to the queue (scontrol requeue " .. job .. "_0)", 1, true),
          "the time-limit signal: the task requeued itself:\n" .. out0)
  T.check(out1:find("DUE TO JOB REQUEUE", 1, true) and not out1:find("back to the queue", 1, true),
          "scontrol requeue: Slurm requeued the task, the script left it to Slurm:\n" .. out1)
  -- each equals its uninterrupted twin (T.same_run: weights, buffers, logs)
  T.same_run(sweepdir .. "/seed-0", tmp .. "/local/slow/seed-0", "seed 0 (time-limit signal)", model_of)
  T.same_run(sweepdir .. "/seed-1", tmp .. "/local/slow/seed-1", "seed 1 (scontrol requeue)", model_of)
  local a = h5.read_log(sweepdir .. "/seed-2/log.h5", "epochs").data.train_loss[1]
  local b = h5.read_log(sweepdir .. "/seed-3/log.h5", "epochs").data.train_loss[1]
  T.check(a ~= b, "seeds 2 and 3 differ")
end)

T.test("a finished task does nothing; the sweep again submits nothing", function()
  local before = read(sweepdir .. "/seed-2/log.h5")
  local o, c = slurm_cmd("sbatch --parsable --array=2 " .. q(sweepdir .. "/sweep.sbatch"))
  T.eq(c, 0, "sbatch by hand (" .. o .. ")")
  local id = o:match("%d+")
  wait_for("the hand-submitted task", 30, function()
    local s = slurm_cmd("squeue -h -j " .. id)
    return s:gsub("%s", "") == ""
  end)
  local text = read(sweepdir .. "/seed-2.out")
  T.check(text:find("seed 2 %(done%)[^\n]*\n==== the run has finished: nothing to do\n==== exit status 0"),
          "nothing to do:\n" .. text)
  T.eq(read(sweepdir .. "/seed-2/log.h5"), before, "log.h5 untouched")
  local c2, o2 = sgdsa({"sweep", script, "seeds=0-3", "runs=" .. runs, "--slurm"})
  T.eq(c2, 0, "again (" .. o2 .. ")")
  T.check(o2:find("0 to submit (4 finished before)", 1, true) and o2:find("nothing to submit", 1, true), o2)
  local c3, o3 = sgdsa({"table", sweepdir, "--format", "csv", "--at", "last"})
  T.eq(c3, 0, "table of the sweep folder (" .. o3 .. ")")
  T.eq(count(o3, "\n[^,\n]*,%d,3,"), 4, "a row per seed:\n" .. o3)
end)

T.test("a cancelled task stops with a checkpoint and is not requeued", function()
  local c, o = sgdsa({"sweep", script, "seeds=5", "name=cancelled", "runs=" .. runs, "--slurm"})
  T.eq(c, 0, "submission (" .. o .. ")")
  local id = o:match("Slurm job (%d+)")
  local dir = runs .. "/cancelled"
  wait_for("seed 5 past its first epoch", 180, function() return epochs_logged(dir .. "/seed-5") >= 1 end)
  local so, sc = slurm_cmd("scancel " .. id)
  T.eq(sc, 0, "scancel (" .. so .. ")")
  wait_for("the cancelled task gone", 30, function()
    return (slurm_cmd("squeue -h -j " .. id)):gsub("%s", "") == ""
  end)
  local _, s = status(dir)
  T.check(s:find("seed 5%s+interrupted%s+[12]/3 epochs[^\n]*checkpoint in last.h5"), "interrupted: " .. s)
  local text = read(dir .. "/seed-5.out")
  T.check(text:find("==== exit status 130", 1, true) and not text:find("back to the queue", 1, true), text)
  T.eq(count(text, "==== sgdsa sweep:"), 1, "one attempt")
end)

os.execute("tools/slurm-local stop " .. q(STATE) .. " && rm -rf " .. q(STATE))
if not os.getenv("SGDSA_TEST_KEEP") then T.remove(tmp) end
T.done()
