-- test_cuda_resume.lua - GPU runs (device=cuda) killed and resumed finish
-- bit-identical to a GPU run left alone, as test_resume.lua checks on the CPU
-- (same machinery: tests/lua/resume_lib.lua): SIGKILLs at exact points
-- between the writes of the run folder and at random moments. Also: a run
-- moved between devices by its resume (cpu -> cuda, cuda -> cpu) finishes
-- with the SA decisions of the run left alone, and says that it moved; and,
-- on the CUDA emulator, a resume that runs out of device memory fails with a
-- message naming the allocation, exits non-zero and leaves the run folder as
-- it was, to be resumed once memory allows; a diverging GPU run stops with
-- its last good checkpoint kept. Skips (exit 77) without a usable
-- GPU; the out-of-memory part needs the emulator (SGDSA_EMU_MEMORY).
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"
local core = sg.core
local h5 = require "sgdsa.h5"
local checkpoint = require "sgdsa.checkpoint"

local devname, emulated = T.need_cuda("the GPU resume tests")

-- the emulator runs kernels on the CPU, slower still under a sanitizer
local R = dofile("tests/lua/resume_lib.lua").new(T, {tmp = T.tmpdir() .. "/cuda_resume", device = "cuda",
                                                    slow = emulated and 10 or 1})
local sh, F = T.shell_quote, R.F
R.reference()
print(string.format("reference GPU run: %.1f s", R.ref_time))

T.test("a GPU run's log.h5 names the device and the GPU", function()
  local f = h5.open(R.refdir .. "/log.h5", "r")
  T.eq(f:attr("device"), "cuda:0", "device")
  T.eq(f:attr("device_name"), devname, "device_name")
  f:close()
  local code, out = T.sgdsa({"inspect", R.refdir})
  T.eq(code, 0, "inspect: " .. out)
  T.check(out:find("device cuda:0 (" .. devname .. ")", 1, true), "inspect names the GPU: " .. out)
end)

T.test("gpu: SIGKILLs in the middle of epochs 1 and 3 (after mid-epoch checkpoints), resumed", function()
  R.crash_run("crash_mid", {"mid_checkpoint:13", "mid_checkpoint:47"}, {
    function(dir)
      local st = checkpoint.load(dir .. "/last.h5", F.model())
      T.eq(st.trainer.mid_epoch, true, "a mid-epoch checkpoint")
      T.eq(st.step, 13, "checkpoint step")
    end,
  })
end)

T.test("gpu: SIGKILL after the epoch-end log flush and after best.h5, resumed", function()
  R.crash_run("crash_epoch", {"epoch_logs:1", "best:2"}, {})
end)

T.test("gpu: SIGKILL at random points, resume, bit-identical", function()
  local _, kills = R.random_kills("random", sg.Generator(31, "cuda-resume-test"))
  T.check(kills >= 1, "no kill hit a running process")
end)

-- A run begun on one device, killed after a mid-epoch checkpoint and resumed
-- on the other: it says so, finishes, and takes the SA decisions of the run
-- left alone on its first device (objectives within float tolerance).
local function moved(name, from, to, refdir)
  local dir = R.out .. "/" .. name
  local logfile = R.tmp .. "/" .. name .. ".out"
  local p = R.spawn(string.format("out=%s name=%s checkpoint.minutes=0.000001 device=%s", sh(R.out), name, from),
                    logfile, nil, "mid_checkpoint:33")
  R.wait_dead(p, 60)
  T.check(not R.finished(dir), "the crash point was not reached (see " .. logfile .. ")")
  p = R.spawn(string.format("resume=%s device=%s", sh(dir), to), logfile)
  R.wait_dead(p, 60)
  local text = T.read_file(logfile)
  T.check(R.finished(dir), "the resumed run did not finish: " .. text)
  T.check(text:find("device " .. from .. " -> " .. to, 1, true), "no word of the device change: " .. text)
  local f = h5.open(dir .. "/log.h5", "r")
  local moves = f:attr("device_changes")
  f:close()
  T.eq(moves, "step 33: " .. from .. " -> " .. to, "log.h5's device_changes")
  local a, b = h5.read_log(dir .. "/log.h5", "steps"), h5.read_log(refdir .. "/log.h5", "steps")
  T.eq(a.rows, b.rows, "steps")
  for i = 1, b.rows do
    T.eq(a.data.accepted[i], b.data.accepted[i], "step " .. i .. " accepted")
    T.eq(a.data.eta[i], b.data.eta[i], "step " .. i .. " eta")
    if i <= 33 then
      T.eq(a.data.loss[i], b.data.loss[i], "step " .. i .. " loss (before the move: the same device)")
    else
      T.near(a.data.loss[i], b.data.loss[i], 2e-3, "step " .. i .. " loss")
    end
  end
end

-- The same run left alone on the cpu (made once): its folder.
local function cpu_reference()
  local dir = R.out .. "/cpu_ref"
  if not R.finished(dir) then
    local p = R.spawn(string.format("out=%s name=cpu_ref", sh(R.out)), R.tmp .. "/cpu_ref.out")
    R.wait_dead(p, 60)
    T.check(R.finished(dir), "the cpu reference did not finish")
  end
  return dir
end

T.test("a cpu run resumed on the gpu finishes with the cpu run's SA decisions", function()
  moved("cpu_to_cuda", "cpu", "cuda", cpu_reference())
end)

T.test("a gpu run resumed on the cpu finishes with the gpu run's SA decisions", function()
  moved("cuda_to_cpu", "cuda", "cpu", R.refdir)
end)

T.test("a diverging GPU run stops with a clear error and keeps its last good checkpoint", function()
  local trainer = require "sgdsa.trainer"
  -- a convolution first (its cuDNN algorithms go to log.h5)
  local function conv_model()
    local nn = require "sgdsa.nn"
    return nn.model(nn.Sequential{nn.Conv2d(1, 4, 3, {padding = 1}), nn.BatchNorm2d(4),
                                  nn.ReLU(true), nn.Conv2d(4, 4, 3, {padding = 1}), nn.Flatten(),
                                  nn.Linear(4 * 8 * 8, 10)}, {input = {1, 8, 8}})
  end
  local e = F.experiment(R.data, {name = "diverge", out = R.out, device = "cuda", model = conv_model,
                                  optim = sg.optim.sgd{schedule = {{1, 0.05}, {1, 1e30}}}})
  local err = T.raises(function() trainer.train(e) end, "at the current point is")
  T.check(err:find("the last good checkpoint is " .. R.out .. "/diverge/last.h5", 1, true), err)
  local m = conv_model()
  local st = checkpoint.load(R.out .. "/diverge/last.h5", m)
  T.eq(st.epoch, 1, "the checkpoint is the one after epoch 1")
  T.check(m.params:isfinite(), "checkpointed weights are finite")
  T.check(h5.read_log(R.out .. "/diverge/log.h5", "steps").rows > 20, "the steps before the divergence were logged")
  -- the cuDNN algorithms the run chose, in log.h5 (deterministic: the heuristics')
  local f = h5.open(R.out .. "/diverge/log.h5", "r")
  local algos = f:attr("cuda_conv_algorithms")
  f:close()
  T.check(type(algos) == "string" and
          algos:find("forward %d+x%d+x%d+x%d+ w %d+x%d+x%d+x%d+ s 1x1 p %dx%d deterministic: algo %d+ math %d+ workspace %d+ heuristics") and
          algos:find("backward%-filter ") and algos:find("backward%-data "),
          "log.h5's cuda_conv_algorithms: " .. tostring(algos))
end)

-- A change recorded at the resume's first log flush, the run then killed
-- before its next checkpoint: the steps after the change are thrown away
-- (like the log rows past the checkpoint), so a resume from that checkpoint
-- on the first device again is no change at all, and log.h5 must not keep one.
T.test("a device change thrown away by a kill before the next checkpoint leaves no trace", function()
  local name = "undone"
  local dir = R.out .. "/" .. name
  local logfile = R.tmp .. "/" .. name .. ".out"
  local ref = cpu_reference()
  local p = R.spawn(string.format("out=%s name=%s checkpoint.minutes=0.000001 device=cpu", sh(R.out), name),
                    logfile, nil, "mid_checkpoint:13")
  R.wait_dead(p, 60)
  -- on the gpu from step 13, killed after the epoch-end flush, before last.h5
  p = R.spawn(string.format("resume=%s device=cuda", sh(dir)), logfile, nil, "epoch_logs:1")
  R.wait_dead(p, 60)
  local f = h5.open(dir .. "/log.h5", "r")
  T.eq(f:attr("device_changes"), "step 13: cpu -> cuda", "the change, recorded at the flush")
  f:close()
  T.eq(checkpoint.load(dir .. "/last.h5", F.model()).step, 13, "last.h5 still the cpu's, at step 13")
  -- back on the cpu from that checkpoint: every step of the run is the cpu's
  local log3 = R.tmp .. "/" .. name .. "-3.out"
  p = R.spawn(string.format("resume=%s device=cpu", sh(dir)), log3)
  R.wait_dead(p, 60)
  local text = T.read_file(log3)
  T.check(R.finished(dir), "the resumed run did not finish: " .. text)
  T.check(not text:find("device cuda -> cpu", 1, true), "a change is said where there is none: " .. text)
  f = h5.open(dir .. "/log.h5", "r")
  local moves = f:attr("device_changes")
  f:close()
  T.check(moves == nil or moves == "", "log.h5's device_changes: " .. tostring(moves))
  local a, b = h5.read_log(dir .. "/log.h5", "steps"), h5.read_log(ref .. "/log.h5", "steps")
  T.eq(a.rows, b.rows, "steps")
  for i = 1, b.rows do T.eq(a.data.loss[i], b.data.loss[i], "step " .. i .. " loss (the cpu run's)") end
  local code, out = T.sgdsa({"inspect", dir})
  T.eq(code, 0, "inspect: " .. out)
  T.check(not out:find("device changes", 1, true), "inspect shows a device change: " .. out)
end)

if not emulated then
  print("SKIP out of device memory during a resume: needs the CUDA emulator (SGDSA_EMU_MEMORY)")
  T.done()
end

T.test("gpu: a resume out of device memory fails clearly, changes nothing, and resumes later", function()
  local name = "oom"
  local dir = R.out .. "/" .. name
  local logfile = R.tmp .. "/" .. name .. ".out"
  local p = R.spawn(R.args(string.format("out=%s name=%s checkpoint.minutes=0.000001", sh(R.out), name)),
                    logfile, nil, "mid_checkpoint:27")
  R.wait_dead(p, 60)
  local before = {}
  for _, f in ipairs{"last.h5", "best.h5", "log.h5"} do before[f] = T.read_file(dir .. "/" .. f) end
  -- 64 KiB of device memory: the model's parameters fit, its workspace does not
  local code, out = T.sgdsa({"run", "tests/lua/trainer_fixture.lua", "resume=" .. dir, "device=cuda"},
                            "SGDSA_EMU_MEMORY=65536 SGDSA_FIXTURE_DATA=" .. sh(R.data))
  T.check(code ~= 0, "exit status " .. tostring(code))
  T.check(out:find("out of memory", 1, true) and out:find("bytes", 1, true), "no out-of-memory message: " .. out)
  print("  the error: " .. (out:match("[^\n]*out of memory[^\n]*") or "?"))
  for f, bytes in pairs(before) do
    T.check(T.read_file(dir .. "/" .. f) == bytes, f .. " changed by the failed resume")
  end
  p = R.spawn(R.args(string.format("resume=%s", sh(dir))), logfile)
  R.wait_dead(p, 60)
  T.check(R.finished(dir), "the resume with memory enough did not finish (see " .. logfile .. ")")
  R.same_as_reference(dir)
end)

T.done()
