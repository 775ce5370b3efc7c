-- test_mpi.lua - data-parallel runs (`mpirun -np 2 --oversubscribe sgdsa run
-- ...`) on the CPU, with tests/lua/mpi_fixture.lua (LeNet-5 with BatchNorm,
-- synthetic 28x28 images, 100 steps of SGD-SA):
--   * sync_bn = true: 2 ranks x 64 images take the decisions of 1 rank x 128
--     at every step, with weights within 1e-5 (relative to the largest);
--   * the ranks' replicas are equal bit for bit, with and without sync_bn;
--     two 2-rank runs are equal bit for bit;
--   * a 2-rank run killed mid-epoch and resumed on 2 ranks ends bit-identical
--     to its uninterrupted twin; resumed on 1 rank (sync_bn), with the same
--     decisions and weights within 1e-5, and log.h5 records the rank change;
--   * Dropout: each rank draws its slice of the whole minibatch's mask;
--   * an error on any rank reaches the user, names the rank and stops every
--     rank; a killed rank takes the job down; the run folder is intact and
--     resumes; ranks = 3 on 2 ranks is refused; rank 1 prints nothing.
-- Skips (exit 77) when mpirun is missing; when sgdsa was built without MPI it
-- checks that a launch of 2 ranks is refused, then skips the rest.
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"
local h5 = require "sgdsa.h5"
local checkpoint = require "sgdsa.checkpoint"

local sh = T.shell_quote
local bin = os.getenv("SGDSA_BIN")
if not bin or not sg.core.exists(bin) then T.skip("SGDSA_BIN is not set to the sgdsa executable") end
if not os.execute("command -v mpirun >/dev/null 2>&1") then
  T.skip("mpirun is not installed (tools/install-deps --test installs Open MPI)")
end
local tmp = T.tmpdir() .. "/mpi"
T.remove(tmp)
sg.core.mkdir_p(tmp)
local out = tmp .. "/runs"
local DATA = "SGDSA_MPI_DATA=" .. sh(dofile("tests/lua/mpi_fixture.lua").data_file(tmp))

-- `mpirun -np np sgdsa run SCRIPT args` (np = nil: plain `sgdsa run`); returns
-- the exit status and the output (stdout and stderr together). CI runs as
-- root, which Open MPI refuses unless told.
local function launch(np, script, args, env)
  local pre = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 " ..
              (env or "") .. " timeout 600 "
  local cmd = np and string.format("%s mpirun -np %d --oversubscribe %s run %s %s 2>&1", pre, np,
                                   sh(bin), script, args)
                  or string.format("%s %s run %s %s 2>&1", pre, sh(bin), script, args)
  local p = io.popen(cmd)
  local text = p:read("a")
  local _, _, code = p:close()
  return code, text
end

local FIXTURE = "tests/lua/mpi_fixture.lua"
local function run(np, args, env) return launch(np, FIXTURE, args, DATA .. " " .. (env or "")) end

if not sg.core.dist.built() then
  local code, text = run(2, "out=" .. sh(out) .. " name=nompi")
  T.check(code ~= 0, "a 2-rank launch of an sgdsa built without MPI must fail")
  T.check(text:find("built without MPI", 1, true), "the refusal names the reason:\n" .. text)
  T.skip("sgdsa was built without MPI (the refusal of a 2-rank launch was checked)")
end

local function lenet()
  return require("models.lenet"){classes = 10}
end

local function weights(path)
  local m = lenet()
  checkpoint.load(path, m)
  return m
end

local function steps(dir) return h5.read_log(dir .. "/log.h5", "steps") end

-- the run must have finished: both epochs in last.h5
local function finished(dir, text)
  T.check(sg.core.exists(dir .. "/last.h5"), "no last.h5 in " .. dir .. ":\n" .. (text or ""))
  local st = checkpoint.load(dir .. "/last.h5", lenet())
  T.eq(st.epoch, 2, "epochs done in " .. dir)
  T.eq(st.step, 100, "steps done in " .. dir)
end

-- Same decisions and eta at every step, f(w) (and f(w') of the accepted
-- moves) within tol, final weights and buffers within wtol of the largest;
-- returns the rejections. (A rejected trial of eta = 100 lands far from w,
-- where the last bits of w move its objective more; only its decision counts.)
local function same_run(a, b, tol, wtol, what)
  local la, lb = steps(a), steps(b)
  T.eq(lb.rows, la.rows, what .. ": logged steps")
  local rejected = 0
  for i = 1, la.rows do
    T.eq(lb.data.accepted[i], la.data.accepted[i], string.format("%s: decision at step %d", what, i))
    T.eq(lb.data.eta[i], la.data.eta[i], string.format("%s: eta at step %d", what, i))
    T.near(lb.data.objective[i], la.data.objective[i], tol, string.format("%s: f(w) at step %d", what, i))
    if la.data.accepted[i] == 1 then
      T.near(lb.data.trial_objective[i], la.data.trial_objective[i], tol,
             string.format("%s: f(w') at step %d", what, i))
    else
      rejected = rejected + 1
    end
  end
  local ma, mb = weights(a .. "/last.h5"), weights(b .. "/last.h5")
  local scale = ma.params:abs():max()
  local d = (ma.params - mb.params):abs():max()
  T.check(d <= wtol * scale, string.format("%s: weights differ by %.3g (%.3g of the largest, limit %g)",
                                          what, d, d / scale, wtol))
  local bs = ma.buffers:abs():max()
  local bd = (ma.buffers - mb.buffers):abs():max()
  T.check(bd <= wtol * bs, string.format("%s: BatchNorm buffers differ by %.3g of the largest", what, bd / bs))
  return rejected, d / scale
end

-- The logs of two runs equal bit for bit (time columns aside), and their
-- final weights and buffers.
local function identical(a, b, what)
  T.same_logs(b, a, what)
  local ma, mb = weights(a .. "/last.h5"), weights(b .. "/last.h5")
  T.eq((ma.params - mb.params):abs():max(), 0, what .. ": final weights")
  T.eq((ma.buffers - mb.buffers):abs():max(), 0, what .. ": final BatchNorm buffers")
end

local function replicas_equal(dumpdir, what)
  local a = h5.open(dumpdir .. "/rank0.h5", "r")
  local b = h5.open(dumpdir .. "/rank1.h5", "r")
  for _, k in ipairs{"params", "buffers"} do
    local x, y = a:read(k), b:read(k)
    T.eq((x - y):abs():max(), 0, what .. ": rank 0's and rank 1's " .. k)
  end
  a:close(); b:close()
end

local function args(name, extra)
  return string.format("out=%s name=%s %s", sh(out), name, extra or "")
end

-- the reference runs: 1 rank x 128 and 2 ranks x 64 (sync_bn), and 2 ranks
-- with per-rank statistics
local code, text = run(nil, args("one", "sync_bn=true"))
T.eq(code, 0, "1-rank run:\n" .. text)
local dump2 = tmp .. "/dump2"
sg.core.mkdir_p(dump2)
local code2, text2 = run(2, args("two", "sync_bn=true"), "SGDSA_MPI_DUMP=" .. sh(dump2))
T.eq(code2, 0, "2-rank run:\n" .. text2)

T.test("sync_bn: 2 ranks x 64 images take 1 rank x 128's decisions for 100 steps, weights within 1e-5", function()
  finished(out .. "/one", text)
  finished(out .. "/two", text2)
  local rejected, rel = same_run(out .. "/one", out .. "/two", 1e-5, 1e-5, "2 ranks vs 1")
  T.check(rejected >= 20 and rejected <= 80,
          string.format("the test needs both decisions: %d of 100 steps rejected", rejected))
  io.write(string.format("     %d of 100 steps rejected on both; final weights within %.2g\n", rejected, rel))
end)

T.test("the ranks' replicas are equal bit for bit (sync_bn)", function()
  replicas_equal(dump2, "sync_bn")
end)

T.test("rank 0 alone prints and writes: one summary line, log.h5 and last.h5 record 2 ranks", function()
  local _, n = text2:gsub("best validation accuracy", "")
  T.eq(n, 1, "summary lines in the 2-rank run's output:\n" .. text2)
  local f <close> = h5.open(out .. "/two/log.h5", "r")
  T.eq(f:attr("ranks"), 2, "log.h5 ranks")
  local c <close> = h5.open(out .. "/two/last.h5", "r")
  T.eq(c:attr("ranks"), 2, "last.h5 ranks")
  local one <close> = h5.open(out .. "/one/log.h5", "r")
  T.eq(one:attr("ranks"), 1, "the 1-rank run's log.h5 ranks")
end)

T.test("per-rank BatchNorm statistics (sync_bn = false): replicas equal, two runs equal bit for bit", function()
  local d1, d2 = tmp .. "/dump_pr1", tmp .. "/dump_pr2"
  sg.core.mkdir_p(d1); sg.core.mkdir_p(d2)
  local c1, t1 = run(2, args("perrank1"), "SGDSA_MPI_DUMP=" .. sh(d1))
  T.eq(c1, 0, "2-rank run:\n" .. t1)
  local c2, t2 = run(2, args("perrank2"), "SGDSA_MPI_DUMP=" .. sh(d2))
  T.eq(c2, 0, "2-rank run:\n" .. t2)
  replicas_equal(d1, "per-rank statistics")
  identical(out .. "/perrank1", out .. "/perrank2", "two 2-rank runs")
  -- the per-rank statistics make another run than the whole minibatch's
  local a, b = steps(out .. "/perrank1"), steps(out .. "/two")
  T.check(a.data.objective[1] ~= b.data.objective[1], "per-rank statistics give another f(w) at step 1")
end)

-- A 2-rank run NAME (a checkpoint every step, `extra` more overrides) that
-- the environment `env` makes fail: it must fail. Returns its folder, its
-- output and how long it ran.
local function failing_run(name, extra, env)
  local t0 = sg.core.time()
  local c, t = run(2, args(name, extra .. " checkpoint.minutes=0.000001"), env)
  T.check(c ~= 0, "the job failed:\n" .. t)
  return out .. "/" .. name, t, sg.core.time() - t0
end

T.test("a 2-rank run killed mid-epoch and resumed on 2 ranks ends bit-identical to its twin", function()
  local dir = failing_run("kill22", "sync_bn=true", "SGDSA_TRAINER_CRASH=mid_checkpoint:70")
  local st = checkpoint.load(dir .. "/last.h5", lenet())
  T.eq(st.step, 70, "checkpoint step")
  T.eq(st.trainer.mid_epoch, true, "a mid-epoch checkpoint")
  local c2, t2 = run(2, string.format("resume=%s sync_bn=true", sh(dir)))
  T.eq(c2, 0, "the resume on 2 ranks:\n" .. t2)
  finished(dir, t2)
  identical(out .. "/two", dir, "killed at step 70, resumed on 2 ranks")
  local f <close> = h5.open(dir .. "/log.h5", "r")
  T.eq(f:attr("resumed"), 1, "resumed")
  T.eq(f:attr("rank_changes"), nil, "no rank change recorded")
end)

T.test("a 2-rank run killed and resumed on 1 rank (sync_bn): its twin's decisions, weights within 1e-5", function()
  local dir = failing_run("kill21", "sync_bn=true", "SGDSA_TRAINER_CRASH=mid_checkpoint:30")
  T.eq(checkpoint.load(dir .. "/last.h5", lenet()).step, 30, "checkpoint step")
  local c2, t2 = run(nil, string.format("resume=%s sync_bn=true", sh(dir)))
  T.eq(c2, 0, "the resume on 1 rank:\n" .. t2)
  T.check(t2:find("2 -> 1 ranks after step 30", 1, true), "the resume says the rank count changed:\n" .. t2)
  finished(dir, t2)
  same_run(out .. "/two", dir, 1e-5, 1e-5, "resumed on 1 rank vs 2 ranks")
  local f <close> = h5.open(dir .. "/log.h5", "r")
  T.eq(f:attr("rank_changes"), "step 30: 2 -> 1 ranks", "log.h5 rank_changes")
  T.eq(f:attr("ranks"), 2, "log.h5 ranks (at the start)")
  local c <close> = h5.open(dir .. "/last.h5", "r")
  T.eq(c:attr("ranks"), 1, "last.h5 ranks")
  local ci, ti = T.sgdsa({"inspect", dir})
  T.eq(ci, 0, "inspect:\n" .. ti)
  T.check(ti:find("data-parallel: started on 2 ranks; rank changes on resume: step 30: 2 -> 1 ranks", 1, true),
          "inspect shows the ranks:\n" .. ti)
end)

T.test("Dropout: each rank draws its slice of the whole minibatch's mask", function()
  -- the trainer fixture (Linear, BatchNorm1d, Dropout) on 2 ranks with
  -- sync_bn against 1 rank: the same decisions; on identical masks per rank
  -- (no slicing) the first step would already differ
  local F = dofile("tests/lua/trainer_fixture.lua")
  local data = F.data_file(tmp)
  local env = "SGDSA_FIXTURE_DATA=" .. sh(data)
  local extra = string.format("out=%s sync_bn=true epochs=1", sh(out))
  local c1, t1 = launch(nil, "tests/lua/trainer_fixture.lua", extra .. " name=drop1", env)
  T.eq(c1, 0, "1 rank:\n" .. t1)
  local c2, t2 = launch(2, "tests/lua/trainer_fixture.lua", extra .. " name=drop2", env)
  T.eq(c2, 0, "2 ranks:\n" .. t2)
  T.same_decisions(steps(out .. "/drop2"), steps(out .. "/drop1"), 1e-5, "2 ranks against 1")
end)

T.test("an error on rank 1 alone reaches the user, names the rank, and stops rank 0", function()
  local dir, t, secs = failing_run("fail1", "", "SGDSA_MPI_FAIL=1:12")
  T.check(secs < 120, "the job ended promptly")
  T.check(t:find("rank 1 of 2:", 1, true) and t:find("the test's failure on rank 1 after step 12", 1, true),
          "rank 1's error, with its rank:\n" .. t)
  T.check(t:find("stopping every rank", 1, true), "says that every rank stops:\n" .. t)
  -- nothing of the run folder is lost: it verifies and resumes to the end
  T.check(h5.verify(dir .. "/last.h5"), "last.h5 intact")
  T.check(h5.verify(dir .. "/log.h5"), "log.h5 intact")
  local st = checkpoint.load(dir .. "/last.h5", lenet())
  T.check(st.step >= 11 and st.step <= 12, "the last checkpoint is from step " .. st.step)
  local c2, t2 = run(2, string.format("resume=%s", sh(dir)))
  T.eq(c2, 0, "the resume:\n" .. t2)
  finished(dir, t2)
  identical(out .. "/perrank1", dir, "failed at step 12, resumed")
end)

T.test("errors on both ranks both reach the user", function()
  local script = tmp .. "/both.lua"
  T.write_file(script, [[
local dist = require "sgdsa.dist"
error("the error of rank " .. dist.rank())
]])
  local c, t = launch(2, sh(script), "")
  T.check(c ~= 0, "the job failed:\n" .. t)
  T.check(t:find("rank 0 of 2: ", 1, true) and t:find("the error of rank 0", 1, true), "rank 0's error:\n" .. t)
  T.check(t:find("rank 1 of 2: ", 1, true) and t:find("the error of rank 1", 1, true), "rank 1's error:\n" .. t)
end)

T.test("a rank killed by SIGKILL takes the job down; the run folder resumes", function()
  local dir, t, secs = failing_run("killed1", "", "SGDSA_MPI_FAIL=1:20:kill")
  T.check(secs < 120, "the job ended promptly")
  T.check(t:find("signal 9", 1, true) or t:find("Killed", 1, true), "mpirun names the killed rank:\n" .. t)
  local c2, t2 = run(2, string.format("resume=%s", sh(dir)))
  T.eq(c2, 0, "the resume:\n" .. t2)
  identical(out .. "/perrank1", dir, "rank 1 killed at step 20, resumed")
end)

T.test("ranks = 3 on 2 ranks is refused with the command to use", function()
  local c, t = run(2, args("ranks3", "ranks=3"))
  T.check(c ~= 0, "refused:\n" .. t)
  T.check(t:find("mpirun -np 3", 1, true), "names the launch to use:\n" .. t)
  local c1, t1 = run(nil, args("ranks2", "ranks=2"))
  T.check(c1 ~= 0, "refused on 1 rank:\n" .. t1)
  T.check(t1:find("launched with 1 rank", 1, true), "says how it was launched:\n" .. t1)
end)

T.done()
