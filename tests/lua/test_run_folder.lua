-- test_run_folder.lua - who may write a run folder, and the way forward from
-- a run that died before its first checkpoint.
--
-- The lock: two `sgdsa run ... name=same` started together, and two
-- `resume=` of one folder started together (several trials each): exactly
-- one proceeds and finishes as a run left alone would; the other exits 1
-- naming the pid and host holding the folder. A SIGKILLed run holds nothing.
--
-- The restart: a run killed before its first last.h5 (during epoch 1; after
-- epoch 1's log flush; between best.h5 and last.h5), or a folder with nothing
-- in it, is continued by resume=DIR from epoch 1 in the same folder, saying
-- so, and ends bit-identical to a run left alone; a fresh run of that name
-- says how to proceed. The child is the `sgdsa` binary ($SGDSA_BIN) running
-- tests/lua/trainer_fixture.lua (tests/lua/resume_lib.lua).
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"
local h5 = require "sgdsa.h5"

local R = dofile("tests/lua/resume_lib.lua").new(T, {tmp = T.tmpdir() .. "/run_folder"})
local sh, out, tmp, core = T.shell_quote, R.out, R.tmp, sg.core
R.reference()
local host = core.hostname()

-- The fixture run with `args` (words split at spaces, unquoted), in the
-- foreground: exit code, output.
local function run(args)
  local words = {"run", "tests/lua/trainer_fixture.lua"}
  for w in args:gmatch("%S+") do words[#words + 1] = w end
  return T.sgdsa(words, "SGDSA_FIXTURE_DATA=" .. sh(R.data))
end

-- Two fixture runs started at once; {pid=, code=, out=} for each.
local function together(args_a, args_b, tag)
  local function cmd(args, o)
    return string.format("(exec env SGDSA_FIXTURE_HOLD=1 SGDSA_FIXTURE_DATA=%s %s run tests/lua/trainer_fixture.lua %s >%s 2>&1)",
                         sh(R.data), sh(os.getenv("SGDSA_BIN")), args, sh(o))
  end
  local oa, ob, st = tmp .. "/" .. tag .. ".a", tmp .. "/" .. tag .. ".b", tmp .. "/" .. tag .. ".status"
  local script = string.format("%s & a=$!; %s & b=$!; wait $a; ea=$?; wait $b; eb=$?; echo $a $ea $b $eb > %s",
                               cmd(args_a, oa), cmd(args_b, ob), sh(st))
  assert(os.execute(script))
  local pa, ea, pb, eb = T.read_file(st):match("(%d+) (%d+) (%d+) (%d+)")
  return {pid = tonumber(pa), code = tonumber(ea), out = T.read_file(oa)},
         {pid = tonumber(pb), code = tonumber(eb), out = T.read_file(ob)}
end

-- Of two processes on one folder, one finished (exit 0) and the other was
-- refused (exit 1) naming the first's pid and host. Returns the winner.
local function one_proceeds(a, b, what)
  local win, lose = a, b
  if b.code == 0 then win, lose = b, a end
  T.eq(win.code, 0, what .. ": one of the two exits 0 (" .. a.code .. ", " .. b.code .. ")\n" .. win.out)
  T.eq(lose.code, 1, what .. ": the other exits 1\n" .. lose.out)
  local named = string.format("is in use by another process (pid %d host %s since ", win.pid, host)
  T.check(lose.out:find(named, 1, true), what .. ": the refusal does not name the holder (" .. named .. "):\n" .. lose.out)
  return win
end

-- The folder holds one run's log: steps 1..80 once, epochs 1..4 once.
local function one_history(dir, what)
  local s, e = h5.read_log(dir .. "/log.h5", "steps"), h5.read_log(dir .. "/log.h5", "epochs")
  T.eq(s.rows, 80, what .. ": step rows")
  for i = 1, s.rows do T.eq(s.data.step[i], i, what .. ": step numbers") end
  T.eq(e.rows, 4, what .. ": epoch rows")
  for i = 1, e.rows do T.eq(e.data.epoch[i], i, what .. ": epoch numbers") end
end

local TRIALS = 6

T.test("two runs of one name started together: one proceeds, the other is refused naming it (" .. TRIALS .. " trials)",
       function()
  for trial = 1, TRIALS do
    local name = "pair" .. trial
    local dir = out .. "/" .. name
    local a, b = together(string.format("out=%s name=%s", sh(out), name),
                          string.format("out=%s name=%s seed=8", sh(out), name), name)
    local win = one_proceeds(a, b, "trial " .. trial)
    one_history(dir, "trial " .. trial)
    local seed = h5.open(dir .. "/log.h5", "r"):attr("seed")
    T.eq(seed, win == a and 7 or 8, "trial " .. trial .. ": the log's seed is the winner's")
    if seed == 7 then R.same_as_reference(dir) end
  end
end)

T.test("two resumes of one folder started together: one proceeds, the other is refused naming it (" .. TRIALS .. " trials)",
       function()
  local base = out .. "/half"
  local code, text = run(string.format("out=%s name=half epochs=2", out))
  T.eq(code, 0, "the 2-epoch run\n" .. text)
  for trial = 1, TRIALS do
    local dir = out .. "/resumes" .. trial
    assert(os.execute(string.format("cp -r %s %s", sh(base), sh(dir))))
    local args = string.format("resume=%s epochs=4", sh(dir))
    local a, b = together(args, args, "resumes" .. trial)
    one_proceeds(a, b, "trial " .. trial)
    one_history(dir, "trial " .. trial)
    T.check(R.finished(dir), "trial " .. trial .. ": not finished")
    R.same_as_reference(dir)
    T.eq(h5.open(dir .. "/log.h5", "r"):attr("resumed"), 1, "trial " .. trial .. ": resumed once")
  end
end)

T.test("a SIGKILLed run holds no lock; a running one does, and says who it is", function()
  local dir = out .. "/killed"
  local p = R.spawn(string.format("out=%s name=killed", sh(out)), tmp .. "/killed.out", 30)
  R.wait_dead(p, 60)
  -- (the process shows as a zombie while its other threads still exit: the
  -- kernel releases the lock with its last thread, a moment later)
  local lock, err
  local t0 = core.time()
  repeat
    lock, err = core.lock(dir .. "/.lock")
    if not lock then core.sleep(0.01) end
  until lock or core.time() - t0 > 5
  T.check(lock, "the lock of a killed run is still held 5 s later: " .. tostring(err))
  -- held by this process now: a resume is refused, naming this process
  local code, text = run("resume=" .. dir)
  T.eq(code, 1, "a resume of a held folder\n" .. text)
  T.check(text:find(string.format("run folder %s is in use by another process (pid %d host %s since ", dir,
                                  core.getpid(), host), 1, true), text)
  lock:unlock()
  code, text = run("resume=" .. dir)
  T.eq(code, 0, "the resume once the lock is free\n" .. text)
  R.same_as_reference(dir)
end)

-- A run killed at kill_at (a step) or crash (a trainer crash point) with no
-- last.h5 after it; then a fresh run of its name is refused with the way
-- forward, and resume= restarts it from epoch 1 to the end: identical to the
-- reference. check(dir) looks at the folder after the kill.
local function restart(name, kill_at, crash, check)
  local dir = out .. "/" .. name
  local logfile = tmp .. "/" .. name .. ".out"
  local p = R.spawn(string.format("out=%s name=%s", sh(out), name), logfile, kill_at, crash)
  R.wait_dead(p, 60)
  T.check(not core.exists(dir .. "/last.h5"), "a last.h5 before the kill")
  T.check(core.exists(dir .. "/log.h5"), "no log.h5 before the kill")
  if check then check(dir) end
  local code, text = run(string.format("out=%s name=%s", out, name))
  T.eq(code, 1, "a fresh run into the folder\n" .. text)
  T.check(text:find("already exists but holds no checkpoint", 1, true) and
          text:find("resume=" .. dir .. " starts that run again from epoch 1", 1, true), text)
  code, text = run("resume=" .. dir)
  T.eq(code, 0, "resume=\n" .. text)
  T.check(text:find(string.format("resume=%s: the run stopped before its first checkpoint (no last.h5); " ..
                                  "starting it again from epoch 1 in %s", dir, dir), 1, true), text)
  T.check(R.finished(dir), "the restarted run did not finish")
  R.same_as_reference(dir)
  T.eq(h5.open(dir .. "/log.h5", "r"):attr("resumed"), 1, "resumed counter")
end

T.test("SIGKILL during epoch 1 (log.h5, no checkpoint): resume= starts again from epoch 1, identical", function()
  restart("died_step5", 5, nil, function(dir)
    T.check(not h5.open(dir .. "/log.h5", "r"):exists("steps"), "no step rows before the first flush")
  end)
end)

T.test("SIGKILL after epoch 1's log flush, before any checkpoint: the logged rows are dropped, identical", function()
  restart("died_logs", nil, "epoch_logs:1", function(dir)
    T.eq(h5.read_log(dir .. "/log.h5", "steps").rows, 20, "step rows of epoch 1 logged")
    T.eq(h5.read_log(dir .. "/log.h5", "epochs").rows, 1, "epoch 1's row logged")
  end)
end)

T.test("SIGKILL between best.h5 and last.h5 of epoch 1: resume= starts again, identical", function()
  restart("died_best", nil, "best:1", function(dir)
    T.check(core.exists(dir .. "/best.h5"), "best.h5 of epoch 1")
  end)
end)

-- resume= of a new folder NAME holding one file, FILE with the bytes BYTES:
-- returns the folder, the exit status and the output
local function resume_folder_with(name, file, bytes)
  local dir = out .. "/" .. name
  assert(core.mkdir_p(dir))
  T.write_file(dir .. "/" .. file, bytes)
  return dir, run("resume=" .. dir)
end

T.test("a folder with nothing in it (a run killed before log.h5): resume= starts the run in it", function()
  local dir, code, text = resume_folder_with("empty", "log.h5.tmp.4242", "a killed writer's leftover")
  T.eq(code, 0, "resume= of an empty folder\n" .. text)
  T.check(text:find("starting it again from epoch 1", 1, true), text)
  R.same_as_reference(dir)
  local f <close> = h5.open(dir .. "/log.h5", "r")
  T.eq(f:attr("name"), "empty", "log.h5's run name")
  T.check(not f:read_text("config"):find("resume =", 1, true), "the log's config has no resume key")
end)

T.test("resume= refuses what is not a run folder, and a changed configuration", function()
  local dir, code, text = resume_folder_with("notarun", "notes.txt", "mine")
  T.eq(code, 1, "resume= of a folder of other files\n" .. text)
  T.check(text:find("is not a run folder", 1, true), text)
  T.check(not core.exists(dir .. "/.lock") and not core.exists(dir .. "/log.h5"), "the folder was written to")
  code, text = run("resume=" .. out .. "/nowhere")
  T.eq(code, 1, "resume= of a missing folder\n" .. text)
  T.check(text:find("no run folder", 1, true), text)
  -- a run that died before its first checkpoint, restarted with another seed
  local p = R.spawn(string.format("out=%s name=changed", sh(out)), tmp .. "/changed.out", 5)
  R.wait_dead(p, 60)
  code, text = run(string.format("resume=%s seed=9", out .. "/changed"))
  T.eq(code, 1, "a restart with another seed\n" .. text)
  T.check(text:find("the configuration differs from the run's (seed)", 1, true), text)
end)

T.done()
