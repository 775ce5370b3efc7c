-- resume_lib.lua - what the resume tests share (test_resume.lua on the CPU,
-- test_cuda_resume.lua on the GPU): child runs of tests/lua/trainer_fixture.lua
-- through the `sgdsa` binary ($SGDSA_BIN), killed and resumed, and their
-- comparison with a reference run left alone.
--   local R = dofile("tests/lua/resume_lib.lua").new(T, {tmp = DIR, device = "cuda"})
--   R.reference()                   -- the run left alone (R.refdir, R.ref_time)
--   R.spawn(args, logfile[, kill_at[, crash[, env]]]) -> pid
--   R.spawn_cmd({"resume", dir}, logfile[, env]) -> pid   (sgdsa CMD..., the fixture's data set)
--   R.args(s)                       -- s plus the device override, if any
--   R.wait_dead(pid, seconds), R.alive(pid), R.finished(dir), R.weights(path)
--   R.compare_logs(dir), R.same_as_reference(dir), R.crash_run(name, crashes, checks)
--   R.random_kills(name, generator) -> attempts, kills landed, mid-epoch resumes
local sg = sgdsa or require "sgdsa"
local h5 = require "sgdsa.h5"
local checkpoint = require "sgdsa.checkpoint"
local F = dofile("tests/lua/trainer_fixture.lua")

local M = {}

function M.new(T, opts)
  local bin = os.getenv("SGDSA_BIN")
  if not bin or not sg.core.exists(bin) then T.skip("SGDSA_BIN is not set to the sgdsa executable") end
  local R = {F = F, tmp = opts.tmp, out = opts.tmp .. "/runs", device = opts.device,
             slow = opts.slow or 1}
  T.remove(R.tmp)
  sg.core.mkdir_p(R.tmp)
  R.data = F.data_file(R.tmp)
  local sh = T.shell_quote

  -- s with this test's device override (a resume must repeat the run's
  -- overrides, the device among them)
  function R.args(s)
    return R.device and (s .. " device=" .. R.device) or s
  end

  -- Start the child in the background; returns its pid. kill_at: it SIGKILLs
  -- itself after that step; crash: it SIGKILLs itself at that trainer crash
  -- point (SGDSA_TRAINER_CRASH, lua/sgdsa/trainer.lua); env: more shell
  -- assignments for the child.
  function R.spawn(args, logfile, kill_at, crash, env)
    local pidfile = R.tmp .. "/pid"
    local cmd = string.format("(exec env SGDSA_FIXTURE_DATA=%s SGDSA_FIXTURE_KILL_AT=%s SGDSA_TRAINER_CRASH=%s %s %s run tests/lua/trainer_fixture.lua %s >>%s 2>&1) & echo $! > %s",
                              sh(R.data), kill_at or "", sh(crash or ""), env or "", sh(bin), args,
                              sh(logfile), sh(pidfile))
    assert(os.execute(cmd))
    local f = assert(io.open(pidfile))
    local pid = assert(tonumber(f:read("l")))
    f:close()
    return pid
  end

  -- Start `sgdsa CMD...` (the words of the list cmd, e.g. {"resume", dir})
  -- in the background, the fixture's data set in its environment, plus
  -- `env` (shell assignments); returns its pid.
  function R.spawn_cmd(cmd, logfile, env)
    local words = {}
    for i, w in ipairs(cmd) do words[i] = sh(w) end
    local pidfile = R.tmp .. "/pid"
    assert(os.execute(string.format("(exec env SGDSA_FIXTURE_DATA=%s %s %s %s >>%s 2>&1) & echo $! > %s",
                                    sh(R.data), env or "", sh(bin), table.concat(words, " "),
                                    sh(logfile), sh(pidfile))))
    local f = assert(io.open(pidfile))
    local pid = assert(tonumber(f:read("l")))
    f:close()
    return pid
  end

  -- Running (not a zombie, not gone)?
  function R.alive(pid)
    local f = io.open("/proc/" .. pid .. "/stat")
    if not f then return false end
    local s = f:read("a")
    f:close()
    local state = s:match("^%d+ %b() (%a)")
    return state ~= nil and state ~= "Z" and state ~= "X"
  end

  -- Wait for pid to end; after limit seconds (times opts.slow) it is killed
  -- and that is an error.
  function R.wait_dead(pid, limit)
    limit = limit * R.slow
    local t0 = sg.core.time()
    while R.alive(pid) do
      if sg.core.time() - t0 > limit then
        os.execute("kill -9 " .. pid)
        error("child " .. pid .. " still running after " .. limit .. " s")
      end
      sg.core.sleep(0.01)
    end
  end

  function R.finished(dir)
    if not sg.core.exists(dir .. "/last.h5") then return false end
    local ok, st = pcall(function() return (checkpoint.load(dir .. "/last.h5", F.model())) end)
    return ok and st.epoch == 4 and not st.trainer.mid_epoch
  end

  function R.weights(path)
    local m = F.model()
    checkpoint.load(path, m)
    return m
  end

  -- The reference: left alone.
  function R.reference()
    local t0 = sg.core.time()
    local pid = R.spawn(R.args(string.format("out=%s name=ref", sh(R.out))), R.tmp .. "/ref.out")
    R.wait_dead(pid, 120)
    R.ref_time = sg.core.time() - t0
    R.refdir = R.out .. "/ref"
    if not R.finished(R.refdir) then
      error("the reference run did not finish:\n" .. (T.read_file(R.tmp .. "/ref.out") or ""))
    end
  end

  -- every step of the run in dir logged once
  local function steps_once(dir)
    local a = h5.read_log(dir .. "/log.h5", "steps")
    for i = 1, a.rows do T.eq(a.data.step[i], i, "step numbers: no duplicate or missing step") end
  end

  -- The logs of the run in dir are the reference's (time columns aside), and
  -- every step is logged once.
  function R.compare_logs(dir)
    T.same_logs(dir, R.refdir, "against the reference")
    steps_once(dir)
  end

  -- The run in dir ended as the reference did: final and best weights, BN
  -- buffers, logs.
  function R.same_as_reference(dir)
    T.same_run(dir, R.refdir, "against the reference", R.weights)
    steps_once(dir)
  end

  -- SIGKILLs at exact points between the writes of the run folder (the
  -- trainer's SGDSA_TRAINER_CRASH points), each resumed to the end and
  -- compared with the reference: final and best weights, logs. checks[i], if
  -- given, looks at the run folder after crash i.
  function R.crash_run(name, crashes, checks)
    local dir = R.out .. "/" .. name
    local logfile = R.tmp .. "/" .. name .. ".out"
    for i, crash in ipairs(crashes) do
      local args = i == 1 and string.format("out=%s name=%s checkpoint.minutes=0.000001", sh(R.out), name)
                          or string.format("resume=%s checkpoint.minutes=0.000001", sh(dir))
      local p = R.spawn(R.args(args), logfile, nil, crash)
      R.wait_dead(p, 60)
      T.check(not R.finished(dir), "the run finished: crash point " .. crash .. " was not reached (see " .. logfile .. ")")
      if checks[i] then checks[i](dir) end
    end
    local p = R.spawn(R.args(string.format("resume=%s", sh(dir))), logfile)
    R.wait_dead(p, 60)
    T.check(R.finished(dir), "the run did not finish after the resumes (see " .. logfile .. ")")
    R.same_as_reference(dir)
  end

  -- A run SIGKILLed at random moments (up to 6 times: after a fraction of the
  -- reference's time drawn from gen) and resumed each time, until it
  -- finishes; it must end as the reference did. Returns the attempts, the
  -- kills that hit a running process, and the resumes from mid-epoch
  -- checkpoints.
  function R.random_kills(name, gen)
    local dir = R.out .. "/" .. name
    local logfile = R.tmp .. "/" .. name .. ".out"
    local attempts, kills, mids = 0, 0, 0
    while not R.finished(dir) do
      attempts = attempts + 1
      local args
      if sg.core.exists(dir .. "/last.h5") then
        local st = checkpoint.load(dir .. "/last.h5", F.model())
        if st.trainer.mid_epoch then mids = mids + 1 end
        args = string.format("resume=%s checkpoint.minutes=0.00002", sh(dir))
      else
        os.execute("rm -rf " .. sh(dir))
        args = string.format("out=%s name=%s checkpoint.minutes=0.00002", sh(R.out), name)
      end
      local p = R.spawn(R.args(args), logfile)
      if attempts <= 6 then
        sg.core.sleep(gen:uniform(0.15, 1.0) * R.ref_time)
        if R.alive(p) then
          os.execute("kill -9 " .. p)
          kills = kills + 1
        end
      end
      R.wait_dead(p, 120)
      T.check(attempts <= 8, "the run does not finish after " .. attempts .. " attempts (see " .. logfile .. ")")
    end
    R.same_as_reference(dir)
    io.write(string.format("     %s: %d attempts, %d kills landed\n", name, attempts, kills))
    return attempts, kills, mids
  end

  return R
end

return M
