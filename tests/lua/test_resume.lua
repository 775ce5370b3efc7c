-- test_resume.lua - runs killed with SIGKILL at random moments and resumed
-- (`sgdsa run ... resume=DIR`) finish bit-identical to a run left alone:
-- same final and best weights and buffers, same per-step and per-epoch logs
-- (time columns aside), every step logged exactly once. Checkpoints are
-- written every few milliseconds (checkpoint.minutes) so kills land before,
-- during and after mid-epoch checkpoints and log flushes; the trainer's
-- SGDSA_TRAINER_CRASH points kill it exactly in the windows between those
-- writes. The child is the `sgdsa` binary ($SGDSA_BIN) running
-- tests/lua/trainer_fixture.lua. A SIGINT (Ctrl-C) stops a run at the step it
-- lands in, and `sgdsa resume DIR` / `sgdsa run resume=DIR` (no script: the
-- run folder's own) continue it bit-identically.
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"
local h5 = require "sgdsa.h5"
local checkpoint = require "sgdsa.checkpoint"

local R = dofile("tests/lua/resume_lib.lua").new(T, {tmp = T.tmpdir() .. "/resume"})
local F, sh, out, tmp = R.F, T.shell_quote, R.out, R.tmp
local spawn, alive, wait_dead, finished = R.spawn, R.alive, R.wait_dead, R.finished
local same_as_reference, crash_run = R.same_as_reference, R.crash_run
R.reference()
local ref_time = R.ref_time

T.test("deterministic SIGKILLs in the middle of epochs 1 and 3, resumed from mid-epoch checkpoints", function()
  local dir = out .. "/det"
  local logfile = tmp .. "/det.out"
  -- 20 steps per epoch: step 13 is in epoch 1, step 47 in epoch 3
  local p = spawn(string.format("out=%s name=det checkpoint.minutes=0.000001", sh(out)), logfile, 13)
  wait_dead(p, 60)
  local st = checkpoint.load(dir .. "/last.h5", F.model())
  T.eq(st.trainer.mid_epoch, true, "a mid-epoch checkpoint before the crash at step 13")
  T.check(st.step >= 1 and st.step <= 13, "checkpoint at step " .. st.step)
  p = spawn(string.format("resume=%s checkpoint.minutes=0.000001", sh(dir)), logfile, 47)
  wait_dead(p, 60)
  st = checkpoint.load(dir .. "/last.h5", F.model())
  T.eq(st.trainer.mid_epoch, true, "a mid-epoch checkpoint before the crash at step 47")
  T.eq(st.epoch, 2, "epochs completed at the second crash")
  p = spawn(string.format("resume=%s", sh(dir)), logfile)
  wait_dead(p, 60)
  T.check(finished(dir), "the run did not finish after two resumes (see " .. logfile .. ")")
  same_as_reference(dir)
end)

T.test("SIGKILL right after a mid-epoch checkpoint at an epoch's last step (before the epoch's end), resumed", function()
  -- the checkpoint has consumed the whole epoch (position = epoch size) but
  -- not done its end (validation, epoch log, cooling, best.h5, last.h5): the
  -- resume must do that end, not start the next epoch's batches as the rest
  -- of this one
  local function after_last_step(step, epochs)
    return function(dir)
      local st = checkpoint.load(dir .. "/last.h5", F.model())
      T.eq(st.trainer.mid_epoch, true, "a mid-epoch checkpoint")
      T.eq(st.step, step, "checkpoint step (no epoch's batches run twice)")
      T.eq(st.epoch, epochs, "epochs completed")
      T.eq(st.data.position, 640, "the checkpoint's loader position: the whole epoch consumed")
    end
  end
  crash_run("crash_last_step", {"mid_checkpoint:20", "mid_checkpoint:40"},
            {after_last_step(20, 0), after_last_step(40, 1)})
end)

T.test("SIGKILL after the epoch-end log flush, before best.h5 and last.h5, resumed", function()
  crash_run("crash_epoch_logs", {"epoch_logs:1", "epoch_logs:3"}, {})
end)

T.test("SIGKILL after best.h5, before last.h5, resumed", function()
  crash_run("crash_best", {"best:1"}, {
    function(dir)
      local st = checkpoint.load(dir .. "/last.h5", F.model())
      T.eq(st.epoch, 0, "last.h5 is still from epoch 1")
      local b = checkpoint.load(dir .. "/best.h5", F.model())
      T.eq(b.epoch, 1, "best.h5 of epoch 1")
    end,
  })
end)

T.test("SIGKILL during a resume (logs truncated, before the first step), resumed again", function()
  crash_run("crash_resume", {"mid_checkpoint:33", "resumed:33"}, {
    nil,
    function(dir)
      T.eq(h5.read_log(dir .. "/log.h5", "steps").rows, 33, "step log truncated to the checkpoint")
    end,
  })
end)

-- 12 trials (3 under the sanitizers, whose runs are several times slower);
-- tools/soak-kills runs as many as asked
local gen = sg.Generator(2718, "resume-test")
local kills_landed, mid_epoch_resumes = 0, 0
for trial = 1, os.getenv("SGDSA_SANITIZED") and 3 or 12 do
  T.test("SIGKILL at random points, resume, bit-identical (trial " .. trial .. ")", function()
    local _, kills, mids = R.random_kills("trial" .. trial, gen)
    kills_landed, mid_epoch_resumes = kills_landed + kills, mid_epoch_resumes + mids
  end)
end

T.test("SIGTERM: the run checkpoints after the current step, says so, and resumes identically", function()
  local dir = out .. "/term"
  local logfile = tmp .. "/term.out"
  -- The signal must land before the last step (a SIGTERM during the last
  -- step just lets the run finish). How far a fixed delay gets depends on the
  -- machine's load, so a run that finished anyway (before or after the
  -- signal) is redone with a shorter delay, down to none.
  local text
  for _, frac in ipairs{0.3, 0.1, 0.03, 0.01, 0} do
    os.execute("rm -rf " .. sh(dir))
    local p = spawn(string.format("out=%s name=term", sh(out)), logfile)
    local t = sg.core.time()
    while not sg.core.exists(dir .. "/log.h5") and sg.core.time() - t < 60 do sg.core.sleep(0.01) end
    sg.core.sleep(frac * ref_time)
    if alive(p) then os.execute("kill -TERM " .. p) end
    wait_dead(p, 60)
    local f = assert(io.open(logfile)); text = f:read("a"); f:close()
    if not finished(dir) then break end
    io.write(string.format("     SIGTERM after %.0f%% of the reference time came too late; retrying earlier\n", 100 * frac))
  end
  T.check(text:find("stopped by an interrupt", 1, true) and text:find("continue with: sgdsa resume " .. dir, 1, true), text)
  T.check(sg.core.exists(dir .. "/last.h5"), "no checkpoint after SIGTERM")
  T.check(not finished(dir), "SIGTERM did not stop the run early")
  local p2 = spawn(string.format("resume=%s", sh(dir)), logfile)
  wait_dead(p2, 120)
  T.check(finished(dir), "the resumed run did not finish")
  same_as_reference(dir)
end)

-- A run paused by the fixture at `pause` (step:n or epoch_end:n) gets a
-- SIGINT there, as from Ctrl-C; returns its output.
local function interrupted_run(name, pause, extra)
  local dir, logfile = out .. "/" .. name, tmp .. "/" .. name .. ".out"
  local pausefile = tmp .. "/" .. name .. ".paused"
  os.remove(pausefile)
  local p = spawn(string.format("out=%s name=%s %s", sh(out), name, extra or ""), logfile, nil, nil,
                  string.format("SGDSA_FIXTURE_PAUSE_AT=%s SGDSA_FIXTURE_PAUSE_FILE=%s", pause, sh(pausefile)))
  local t0 = sg.core.time()
  while not sg.core.exists(pausefile) do
    if not alive(p) or sg.core.time() - t0 > 60 then error("the run did not reach " .. pause .. " (see " .. logfile .. ")") end
    sg.core.sleep(0.01)
  end
  os.execute("kill -INT " .. p)
  wait_dead(p, 60)
  return dir, T.read_file(logfile) or ""
end

T.test("Ctrl-C mid-epoch checkpoints at that step; `sgdsa resume DIR` (no script) continues bit-identically", function()
  local dir, text = interrupted_run("sigint_mid", "step:13")
  local st = checkpoint.load(dir .. "/last.h5", F.model())
  T.eq(st.step, 13, "the checkpoint is at the step the interrupt landed in")
  T.eq(st.trainer.mid_epoch, true, "a mid-epoch checkpoint")
  T.eq(h5.read_log(dir .. "/log.h5", "steps").rows, 13, "13 steps logged")
  T.check(text:find("stopped by an interrupt after epoch 0, step 13; continue with: sgdsa resume " .. dir, 1, true), text)
  local logfile = tmp .. "/sigint_mid.resume.out"
  local p = R.spawn_cmd({"resume", dir}, logfile)
  wait_dead(p, 120)
  local rtext = T.read_file(logfile) or ""
  T.check(finished(dir), "`sgdsa resume` did not finish the run:\n" .. rtext)
  T.check(rtext:find("resume " .. dir .. ": sgdsa run tests/lua/trainer_fixture.lua out=", 1, true), rtext)
  same_as_reference(dir)
end)

T.test("Ctrl-C at an epoch's end runs no step of the next epoch; `sgdsa run resume=DIR` continues bit-identically", function()
  -- checkpoint.every=2: epoch 1 writes no last.h5 of its own, so the one
  -- written on the interrupt is the only one
  local dir, text = interrupted_run("sigint_end", "epoch_end:1", "checkpoint.every=2")
  local st = checkpoint.load(dir .. "/last.h5", F.model())
  T.eq(st.step, 20, "the checkpoint is at epoch 1's last step")
  T.eq(st.epoch, 1, "epoch 1 done")
  T.eq(st.trainer.mid_epoch, false, "an end-of-epoch checkpoint")
  T.eq(h5.read_log(dir .. "/log.h5", "steps").rows, 20, "no step of epoch 2 logged")
  T.check(text:find("stopped by an interrupt after epoch 1, step 20", 1, true), text)
  local code, rtext = T.sgdsa({"run", "resume=" .. dir, "threads=1"}, "SGDSA_FIXTURE_DATA=" .. sh(R.data))
  T.eq(code, 0, "sgdsa run resume=DIR: " .. rtext)
  T.check(finished(dir), "the run did not finish: " .. rtext)
  same_as_reference(dir)
end)

T.test("sgdsa resume: what it refuses", function()
  local code, text = T.sgdsa({"resume", tmp .. "/nowhere"})
  T.eq(code, 1, "no folder")
  T.check(text:find("no run folder there", 1, true), text)
  code, text = T.sgdsa({"resume"})
  T.eq(code, 2, "no folder given")
  code, text = T.sgdsa({"resume", out .. "/ref", "seed=8"}, "SGDSA_FIXTURE_DATA=" .. sh(R.data))
  T.eq(code, 1, "a changed seed")
  T.check(text:find("the configuration differs from the run's (seed)", 1, true), text)
  code, text = T.sgdsa({"resume", "--help"})
  T.eq(code, 0, "help")
  T.check(text:find("usage: sgdsa resume RUN_FOLDER", 1, true), text)
end)

T.test("the kills landed while the runs were running", function()
  T.check(kills_landed >= 3, "only " .. kills_landed .. " kills hit a running process")
  io.write(string.format("     %d kills, %d resumes from mid-epoch checkpoints\n", kills_landed, mid_epoch_resumes))
end)

T.done()
