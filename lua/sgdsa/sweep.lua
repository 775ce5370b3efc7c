-- sgdsa.sweep: `sgdsa sweep SCRIPT seeds=0-9 [jobs=N] [key=value ...]` runs
-- one training run per seed, each as a child `sgdsa run` process, `jobs` of
-- them at a time, into runs/<experiment>/seed-<n>/; with --slurm it submits
-- the same runs to Slurm as a job array instead (sgdsa.slurm); with --status
-- it says how each seed of a sweep stands (sgdsa.sweep_status).
--
-- Each child gets `seed=<n>`, the run folder, `threads=` its share of the
-- cores (unless threads= is given) and every other key=value unchanged;
-- with gpus=LIST, SGDSA_CUDA_DEVICE set to the listed GPU running the fewest
-- of the sweep's runs at its start. Its
-- stdout and stderr go to runs/<experiment>/seed-<n>.out (appended: a header
-- line per attempt, "==== sgdsa sweep: ...", and a footer with its exit
-- status, "==== exit status N on DATE"). Running the same sweep again skips the seeds
-- whose run finished, resumes (through the trainer's resume=) those that
-- were interrupted, and starts the others afresh. A seed that fails is
-- reported with its output file and does not stop the others; the exit code
-- is 0 when every seed finished, 1 otherwise, 2 on a usage error. The sweep
-- writes what it was asked (script, seeds, epochs, scheduler, Slurm job) to
-- runs/<experiment>/sweep.txt, for --status.
--
-- Children run in their own session (setsid), so a Ctrl-C at the terminal
-- reaches the sweep only; the sweep then forwards one SIGINT to each running
-- child, which stops cleanly after its current step with a checkpoint, and
-- waits for them: the next `sgdsa sweep` resumes them.
local core = require "sgdsa.core"
local results = require "sgdsa.results"
local slurm = require "sgdsa.slurm"
local sys = require "sgdsa.sys"

local M = {}

local HELP = [[
usage: sgdsa sweep SCRIPT seeds=SPEC [jobs=N] [key=value ...]
       sgdsa sweep SCRIPT seeds=SPEC [key=value ...] --slurm [--partition P]
                   [--gpus-per-run N] [--cpus-per-run N] [--time T] [--account A]
                   [--max-running N] [--sbatch OPTION]... [--dry-run]
       sgdsa sweep --status SWEEP_FOLDER

Train experiment SCRIPT once per seed, each run in its own child process
(`sgdsa run SCRIPT seed=<n> ...`), into runs/<experiment>/seed-<n>/.

  seeds=SPEC     seeds to run: 0-9, 0,2,5 or 0-4,8 (default 0-9)
  jobs=N         runs at a time (default 1); each gets threads=(cores / N)
                 unless threads= is given
  gpus=LIST      GPU indices for the runs, as for seeds (0-3 or 0,2): each
                 run starts on the listed GPU running the fewest of the
                 sweep's runs (its SGDSA_CUDA_DEVICE); give device=cuda too
                 unless the script sets it. jobs=N may exceed the GPUs:
                 runs then share them
  name=NAME      experiment folder name (default: the script's file name
                 without .lua, e.g. runs/fashion_lenet_sa/)
  runs=DIR       parent folder of the experiment folders (default: runs)
  key=value      any other override, passed to every run unchanged

Running a sweep again skips the finished seeds, resumes the interrupted ones
(from their last.h5) and reruns the failed ones. A failed seed is reported
with the file holding its output (runs/<experiment>/seed-<n>.out) and does
not stop the others. Ctrl-C stops every run cleanly after its current step.
Only one sweep at a time runs in an experiment folder (sweep.pid there).
The binary used for the runs is $SGDSA_BIN, else this very executable.

On a Slurm cluster (--slurm): writes runs/<experiment>/sweep.sbatch, a job
array with one task per seed that is not finished nor already in the queue
(the task id is the seed), and submits it with sbatch. Each task runs the
`sgdsa run` a local sweep would, in the same folders and seed-<n>.out; it is
requeueable, stops with a checkpoint on SIGTERM (scancel, scontrol requeue,
preemption) and before its time limit, requeues itself when it was stopped
while still running, and resumes when it starts again. The script's comments
say the details; it can be submitted again by hand (sbatch PATH).
  --partition P      #SBATCH --partition=P
  --account A        #SBATCH --account=A
  --time T           #SBATCH --time=T (e.g. 2:00:00 or 1-00:00:00); the run
                     gets SIGTERM 120 s before it
  --gpus-per-run N   #SBATCH --gres=gpu:N (a run trains on one GPU, the first
                     of them; give device=cuda unless the script sets it)
  --cpus-per-run N   #SBATCH --cpus-per-task=N and threads=N (default:
                     threads= if given, else 1)
  --max-running N    at most N tasks at a time (--array=...%N)
  --sbatch OPTION    one more #SBATCH line, e.g. --sbatch --mem=8G
  --dry-run          print the script; write and submit nothing

--status SWEEP_FOLDER (runs/<experiment>): each seed queued, running (epoch
k of E, last validation accuracy), done, interrupted, failed (with the last
lines of its seed-<n>.out) or not started, from the run folders, the
seed-<n>.out files and, for a sweep submitted to Slurm, squeue and scontrol.

--folder-state RUN_FOLDER [epochs=E]: prints what a sweep does with that
seed's folder: done, resume (from last.h5), restart (a log without a
checkpoint: from epoch 1 in the folder) or fresh (the job script asks this).

Exit status: 0 all seeds finished (--slurm: submitted; --status: read),
1 some failed or were interrupted (--slurm: sbatch failed), 2 usage error.
]]

local function usage(msg)
  io.stderr:write("sgdsa sweep: ", msg, "\n(try `sgdsa sweep --help`)\n")
  return 2
end

--- Parse a seed list: "0-9", "0,2,5", "0-4,8". Returns a sorted list of
--- distinct non-negative integers, or nil and a message.
function M.parse_seeds(spec)
  if type(spec) == "number" then spec = tostring(math.tointeger(spec) or spec) end
  if type(spec) ~= "string" or spec == "" then return nil, "seeds: empty seed list" end
  local set, list = {}, {}
  for part in (spec .. ","):gmatch("([^,]*),") do
    local a, b = part:match("^%s*(%d+)%s*%-%s*(%d+)%s*$")
    if not a then a = part:match("^%s*(%d+)%s*$"); b = a end
    if not a then
      return nil, string.format("seeds: bad item %q in %q (use e.g. 0-9, 0,2,5 or 0-4,8)", part, spec)
    end
    a, b = math.tointeger(tonumber(a)), math.tointeger(tonumber(b))
    if not a or not b then return nil, string.format("seeds: %q is out of range", part) end
    if b < a then return nil, string.format("seeds: range %q goes down", part) end
    if b - a > 100000 then return nil, string.format("seeds: range %q is too long", part) end
    for s = a, b do
      if not set[s] then set[s] = true; list[#list + 1] = s end
    end
  end
  table.sort(list)
  return list
end

local q, read_file, shell_output = sys.quote, sys.read_file, sys.output
M.shell_quote = q
M.read_file = read_file

--- The sgdsa executable to run children with: $SGDSA_BIN, else this process's
--- own executable (/proc/self/exe), else `sgdsa` on PATH.
function M.binary()
  local env = os.getenv("SGDSA_BIN")
  if env and env ~= "" then return env end
  local exe = shell_output("readlink /proc/" .. core.getpid() .. "/exe 2>/dev/null")
  exe = exe and exe:gsub("%s+$", "")
  if exe and exe ~= "" and exe:match("sgdsa[^/]*$") then return exe end
  return "sgdsa"
end

--- Number of CPU cores available to this process.
function M.cores()
  local n = tonumber((shell_output("nproc 2>/dev/null") or ""):match("%d+"))
  if not n or n < 1 then n = core.get_num_threads() end
  return math.max(1, n)
end

local function has_setsid()
  return os.execute("command -v setsid >/dev/null 2>&1") == true
end

local function basename_noext(path)
  return (path:match("([^/]+)$") or path):gsub("%.lua$", "")
end

local function fmt_time(s)
  if s < 60 then return string.format("%.1fs", s) end
  if s < 3600 then return string.format("%dm%02ds", s // 60, math.floor(s % 60)) end
  return string.format("%dh%02dm", s // 3600, math.floor(s % 3600) // 60)
end

-- ---------------------------------------------------------------------------
-- the state of a seed's run folder

--- What to do with a run folder: "done" (finished: skip), "resume" (a
--- checkpoint exists), "fresh" (nothing usable: start over). A run is
--- finished when its epoch log has `epochs` rows (the sweep's epochs=
--- override, else the run's configured epochs).
function M.folder_state(dir, epochs)
  if not core.exists(dir) then return "fresh" end
  local st = results.run_state(dir)
  local want = epochs or st.epochs_total
  if want and st.epochs >= want then return "done", st end
  if st.resumable then return "resume", st end
  return "fresh", st
end

-- A folder with a log but no checkpoint (killed during its first epoch, or
-- failed before one) holds nothing to resume from, and the trainer will not
-- start a fresh run over its log: the partial log goes, so the seed starts
-- afresh (as the trainer's resume= of such a folder would).
local function clear_partial(dir)
  local names = core.listdir(dir)
  if not names then return end
  for _, n in ipairs(names) do
    if n == results.LOG or n:match("%.h5%.tmp%.%d+$") then os.remove(dir .. "/" .. n) end
  end
end

-- ---------------------------------------------------------------------------
-- the sweep folder: sweep.txt (what was asked), sweep.sbatch (Slurm)

M.RECORD = "sweep.txt"
M.SBATCH = "sweep.sbatch"
local RECORD_KEYS = {"scheduler", "command", "script", "seeds", "epochs", "started", "pid",
                     "slurm_script", "slurm_job"}

--- Write runs/<experiment>/sweep.txt: one "key value" line per field of rec
--- (scheduler = "local" | "slurm", command, script, seeds, epochs, pid,
--- slurm_script, slurm_job); started is added.
function M.write_record(expdir, rec)
  local lines = {"# sgdsa sweep: the sweep last started in this folder (sgdsa sweep --status reads it)"}
  rec.started = rec.started or os.date("%Y-%m-%d %H:%M:%S")
  for _, k in ipairs(RECORD_KEYS) do
    if rec[k] ~= nil then lines[#lines + 1] = k .. " " .. tostring(rec[k]):gsub("\n", " ") end
  end
  local path = expdir .. "/" .. M.RECORD
  local f = io.open(path .. ".tmp", "w")
  if not f then return nil, "cannot write " .. path end
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  return os.rename(path .. ".tmp", path)
end

--- Read sweep.txt: {key = value} (strings), or nil when there is none.
function M.read_record(expdir)
  local text = read_file(expdir .. "/" .. M.RECORD)
  if not text then return nil end
  local rec = {}
  for line in text:gmatch("[^\n]+") do
    local k, v = line:match("^(%w[%w_]*) (.*)$")
    if k then rec[k] = v end
  end
  return rec
end

-- "sgdsa sweep ARGS", each argument quoted where the shell needs it; without
-- --dry-run (the command that writes and submits what a dry run shows)
local function command_line(args)
  local words = {"sgdsa", "sweep"}
  for _, a in ipairs(args) do
    if a ~= "--dry-run" then words[#words + 1] = a:find("[^%w%./_%-=:,@%+%%]") and q(a) or a end
  end
  return table.concat(words, " ")
end

-- ---------------------------------------------------------------------------
-- child processes

local Job = {}
Job.__index = Job

-- Start one child: `BIN run SCRIPT seed=.. <folder args> threads=.. extra...`
-- in its own session; its pid lands in a file, its exit status in another.
local function start_job(ctx, seed, action, gpu)
  local job = setmetatable({seed = seed, action = action, t0 = core.time(), gpu = gpu,
                            dir = ctx.folder_of(seed),
                            out = string.format("%s/seed-%d.out", ctx.expdir, seed),
                            pidfile = string.format("%s/seed-%d.pid", ctx.tmp, seed),
                            statusfile = string.format("%s/seed-%d.status", ctx.tmp, seed)}, Job)
  os.remove(job.pidfile)
  os.remove(job.statusfile)
  if action == "fresh" then clear_partial(job.dir) end
  local argv = {ctx.bin, "run", ctx.script}
  if gpu then table.insert(argv, 1, "SGDSA_CUDA_DEVICE=" .. gpu); table.insert(argv, 1, "env") end
  for _, a in ipairs(results.trainer_args(ctx.runs, ctx.name, seed, action == "resume", job.dir)) do
    argv[#argv + 1] = a
  end
  argv[#argv + 1] = "threads=" .. ctx.threads
  for _, a in ipairs(ctx.extra) do argv[#argv + 1] = a end
  local words = {}
  for i, a in ipairs(argv) do words[i] = q(a) end
  job.command = table.concat(words, " ")
  local hdr = io.open(job.out, "ab")
  if not hdr then
    return nil, string.format("cannot write %s", job.out)
  end
  hdr:write(string.format("==== sgdsa sweep: %s seed %d (%s) on %s, pid %d%s\n==== %s\n",
                          ctx.name, seed, action, os.date("%Y-%m-%d %H:%M:%S"), core.getpid(),
                          gpu and (", GPU " .. gpu) or "", job.command))
  hdr:close()
  -- The inner sh writes its pid and execs the run, so the pid is the run's.
  local inner = string.format("%ssh -c %s sgdsa-sweep %s", ctx.setsid and "setsid " or "",
                              q('echo $$ > "$1"; shift; exec "$@"'),
                              q(job.pidfile) .. " " .. job.command)
  local sh = string.format("( %s >> %s 2>&1 < /dev/null; rc=$?; echo \"==== exit status $rc on $(date '+%%Y-%%m-%%d %%H:%%M:%%S')\" >> %s; "
                           .. "echo $rc > %s.tmp; mv %s.tmp %s ) &",
                           inner, q(job.out), q(job.out), q(job.statusfile), q(job.statusfile), q(job.statusfile))
  local ok = os.execute(sh)
  if not ok then return nil, "cannot start a shell for seed " .. seed end
  return job
end

-- The child's exit status once it has exited, else nil.
function Job:poll()
  local s = read_file(self.statusfile)
  if not s then return nil end
  self.rc = tonumber(s:match("%-?%d+")) or -1
  self.elapsed = core.time() - self.t0
  return self.rc
end

function Job:pid()
  if not self._pid then
    local s = read_file(self.pidfile)
    self._pid = s and tonumber(s:match("%d+"))
  end
  return self._pid
end

-- Send a signal once; false while the child has not written its pid yet.
function Job:signal(sig)
  if self.signalled then return true end
  local pid = self:pid()
  if not pid then return false end
  os.execute(string.format("kill -%s %d 2>/dev/null", sig, pid))
  self.signalled = true
  return true
end

-- ---------------------------------------------------------------------------
-- the command

-- Options of --slurm and --status that take a value: the field each sets,
-- and how the value is checked.
local function positive(v) local n = math.tointeger(tonumber(v)); return n and n >= 1 and n or nil end
local function non_negative(v) local n = math.tointeger(tonumber(v)); return n and n >= 0 and n or nil end
local function text(v) return v ~= "" and not v:find("[%c]") and v or nil end
local function slurm_time(v) return v:match("^[%d:%-]+$") and v or nil end
local VALUE_OPTIONS = {
  ["--partition"] = {"partition", text, "a partition name"},
  ["--account"] = {"account", text, "an account name"},
  ["--time"] = {"time", slurm_time, "a Slurm time such as 2:00:00 or 1-00:00:00"},
  ["--gpus-per-run"] = {"gpus_per_run", non_negative, "a number of GPUs (0 or more)"},
  ["--cpus-per-run"] = {"cpus_per_run", positive, "a positive integer"},
  ["--max-running"] = {"max_running", positive, "a positive integer"},
  ["--sbatch"] = {"sbatch", text, "an sbatch option such as --mem=8G"},
  ["--status"] = {"status", text, "a sweep folder"},
  ["--folder-state"] = {"folder_state", text, "a run folder"},
}

local function parse_args(args)
  local o = {extra = {}, seeds = "0-9", jobs = 1, runs = "runs", sbatch = {}}
  local i = 0
  while i < #args do
    i = i + 1
    local a = args[i]
    local opt, inline = a:match("^(%-%-[%w%-]+)=(.*)$")
    opt = opt or a
    if a == "--help" or a == "-h" then
      o.help = true
    elseif a == "--slurm" then
      o.slurm = true
    elseif a == "--dry-run" then
      o.dry_run = true
    elseif VALUE_OPTIONS[opt] then
      local field, check, what = table.unpack(VALUE_OPTIONS[opt])
      local v = inline
      if not v then
        i = i + 1
        v = args[i]
        if v == nil then return nil, string.format("%s needs a value (%s)", opt, what) end
      end
      local val = check(v)
      if val == nil then return nil, string.format("%s %s: need %s", opt, v, what) end
      if field == "sbatch" then o.sbatch[#o.sbatch + 1] = val else o[field] = val end
    elseif a:sub(1, 1) == "-" then
      return nil, string.format("unknown option %q", a)
    else
      local k, v = a:match("^([%w_%.]+)=(.*)$")
      if k == "seeds" then
        o.seeds = v
      elseif k == "jobs" then
        o.jobs = math.tointeger(tonumber(v))
        if not o.jobs or o.jobs < 1 then return nil, string.format("jobs=%s: need a positive integer", v) end
      elseif k == "gpus" then
        local list, gerr = M.parse_seeds(v)
        if not list then return nil, "gpus=" .. v .. ": " .. gerr:gsub("^seeds: ", "") end
        o.gpus = list
      elseif k == "threads" then
        o.threads = math.tointeger(tonumber(v))
        if not o.threads or o.threads < 1 then
          return nil, string.format("threads=%s: need a positive integer", v)
        end
      elseif k == "name" then
        if v == "" or v:find("/", 1, true) then return nil, "name=: need a plain folder name" end
        o.name = v
      elseif k == "runs" then
        if v == "" then return nil, "runs=: need a folder" end
        o.runs = v
      elseif k == "seed" or k == "resume" or k == "out" or k == "dir" then
        return nil, string.format("%s= is set by the sweep for each run; use seeds=", k)
      elseif k then
        if k == "epochs" then o.epochs = math.tointeger(tonumber(v)) end
        o.extra[#o.extra + 1] = a
      elseif not o.script then
        o.script = a
      else
        return nil, string.format("unexpected argument %q (overrides are key=value)", a)
      end
    end
  end
  local slurm_only = o.partition or o.account or o.time or o.gpus_per_run or o.cpus_per_run
                     or o.max_running or o.dry_run or #o.sbatch > 0
  if slurm_only and not o.slurm then
    return nil, "--partition, --account, --time, --gpus-per-run, --cpus-per-run, --max-running, "
                .. "--sbatch and --dry-run go with --slurm"
  end
  if o.slurm and (o.gpus or o.jobs ~= 1) then
    return nil, "jobs= and gpus= are for a local sweep; with --slurm use --max-running and --gpus-per-run"
  end
  return o
end

-- ---------------------------------------------------------------------------
-- --slurm: the job array

-- The folder this process runs in.
local function current_dir()
  local d = (shell_output("pwd") or ""):gsub("%s+$", "")
  return d ~= "" and d or (os.getenv("PWD") or ".")
end

local function slurm_sweep(o, ctx, seeds)
  local cwd = current_dir()
  local function absolute(p) return p:sub(1, 1) == "/" and p or (cwd .. "/" .. p) end
  local expdir = absolute(ctx.expdir)
  local path = expdir .. "/" .. M.SBATCH
  local have = slurm.available()
  if not have and not o.dry_run then
    io.stderr:write("sgdsa sweep: --slurm: sbatch and squeue are not on PATH (is this a Slurm login node?); "
                    .. "--dry-run prints the job script without them\n")
    return 1
  end
  -- Plan: the seeds neither finished nor in the queue already.
  local queued = {}
  if have then
    local tasks, qerr = slurm.queue(ctx.name, path)
    if not tasks and not o.dry_run then
      io.stderr:write("sgdsa sweep: ", qerr, "\n")
      return 1
    end
    queued = tasks or {}
  end
  local to_submit, finished, inqueue = {}, {}, {}
  for _, s in ipairs(seeds) do
    if M.folder_state(ctx.folder_of(s), o.epochs) == "done" then
      finished[#finished + 1] = s
    elseif queued[s] then
      inqueue[#inqueue + 1] = string.format("%d (%s, %s)", s, queued[s].id, queued[s].state)
    else
      to_submit[#to_submit + 1] = s
    end
  end
  local plan = io.stdout
  if o.dry_run then plan = io.stderr end
  plan:write(string.format("sgdsa sweep: %s, seeds %s: %d to submit (%d finished before%s)\n", ctx.name, o.seeds,
                           #to_submit, #finished, #inqueue > 0 and (", in the queue: " .. table.concat(inqueue, ", ")) or ""))
  if #to_submit == 0 then
    plan:write("  nothing to submit\n")
    return 0
  end
  local cpus = o.cpus_per_run or o.threads or 1
  local overrides = {"threads=" .. (o.threads or cpus)}
  for _, a in ipairs(ctx.extra) do overrides[#overrides + 1] = a end
  local bin = ctx.bin:find("/", 1, true) and absolute(ctx.bin) or ctx.bin
  local text = slurm.script{
    name = ctx.name, script = ctx.script, seeds = to_submit, seeds_spec = o.seeds, command = ctx.command,
    cwd = cwd, path = path, expdir = expdir, rundir = ctx.expdir, bin = bin, overrides = overrides,
    cpus = cpus, gpus = o.gpus_per_run, partition = o.partition, account = o.account, time = o.time,
    max_running = o.max_running, sbatch = o.sbatch,
  }
  if o.dry_run then
    io.write(text)
    return 0
  end
  local ok, merr = core.mkdir_p(ctx.expdir)
  if not ok then
    io.stderr:write("sgdsa sweep: cannot create ", ctx.expdir, ": ", tostring(merr), "\n")
    return 1
  end
  local f = io.open(path .. ".tmp", "w")
  if not f then
    io.stderr:write("sgdsa sweep: cannot write ", path, "\n")
    return 1
  end
  f:write(text)
  f:close()
  assert(os.rename(path .. ".tmp", path))
  local rec = {scheduler = "slurm", command = ctx.command, script = ctx.script, seeds = o.seeds,
               epochs = o.epochs, slurm_script = path}
  M.write_record(ctx.expdir, rec)
  local id, serr = slurm.submit(path)
  if not id then
    io.stderr:write("sgdsa sweep: sbatch ", path, ": ", serr, "\n")
    return 1
  end
  rec.slurm_job = id
  M.write_record(ctx.expdir, rec)
  io.write(string.format("  job script: %s/%s\n  submitted: Slurm job %s, array %s, output in %s/seed-<n>.out\n"
                         .. "  progress: sgdsa sweep --status %s\n", ctx.expdir, M.SBATCH, id,
                         slurm.array_spec(to_submit, o.max_running), ctx.expdir, ctx.expdir))
  return 0
end

function M.main(args)
  local o, err = parse_args(args)
  if not o then return usage(err) end
  if o.help then io.write(HELP); return 0 end
  if o.status then return require("sgdsa.sweep_status").main(o.status) end
  if o.folder_state then
    -- for a Slurm task (sweep.sbatch): what to do with its run folder
    local st = M.folder_state(o.folder_state, o.epochs)
    if st == "fresh" and core.exists(o.folder_state .. "/" .. results.LOG) then st = "restart" end
    io.write(st, "\n")
    return 0
  end
  if not o.script then return usage("missing SCRIPT") end
  if select(2, core.exists(o.script)) ~= "file" then return usage("cannot open script " .. o.script) end
  local seeds, serr = M.parse_seeds(o.seeds)
  if not seeds then return usage(serr) end

  local ctx = {
    script = o.script, extra = o.extra, runs = o.runs,
    name = o.name or basename_noext(o.script),
    bin = M.binary(), setsid = has_setsid(),
  }
  ctx.expdir = ctx.runs .. "/" .. ctx.name
  ctx.folder_of = function(seed) return string.format("%s/seed-%d", ctx.expdir, seed) end
  ctx.command = command_line(args)
  if o.slurm then return slurm_sweep(o, ctx, seeds) end
  local jobs = math.min(o.jobs, #seeds)
  ctx.threads = o.threads or math.max(1, M.cores() // jobs)
  local ok, merr = core.mkdir_p(ctx.expdir)
  if not ok then
    io.stderr:write("sgdsa sweep: cannot create ", ctx.expdir, ": ", tostring(merr), "\n")
    return 1
  end
  -- One sweep at a time per experiment folder: two would train the same seeds.
  local lock = ctx.expdir .. "/sweep.pid"
  local other = tonumber((read_file(lock) or ""):match("%d+"))
  if other and other ~= core.getpid() and os.execute(string.format("kill -0 %d 2>/dev/null", other)) then
    io.stderr:write(string.format("sgdsa sweep: another sweep (pid %d) is running in %s; wait for it "
                                  .. "or stop it (if that pid is not a sweep, delete %s)\n", other, ctx.expdir, lock))
    return 1
  end
  local lf = io.open(lock, "w")
  if lf then lf:write(core.getpid(), "\n"); lf:close() end
  M.write_record(ctx.expdir, {scheduler = "local", command = ctx.command, script = o.script,
                              seeds = o.seeds, epochs = o.epochs, pid = core.getpid()})
  ctx.tmp = os.tmpname()
  os.remove(ctx.tmp)
  assert(core.mkdir_p(ctx.tmp))

  -- Plan: skip the finished seeds, resume the interrupted ones.
  local pending, report = {}, {}
  for _, s in ipairs(seeds) do
    local action = M.folder_state(ctx.folder_of(s), o.epochs)
    report[s] = {seed = s, action = action}
    if action == "done" then
      report[s].status = "skipped (finished before)"
    else
      pending[#pending + 1] = s
    end
  end
  io.write(string.format("sgdsa sweep: %s, seeds %s: %d to run (%d finished before), %d at a time, "
                         .. "threads=%d each%s\n  runs in %s/seed-<n>/ with %s\n",
                         ctx.name, o.seeds, #pending, #seeds - #pending, jobs, ctx.threads,
                         o.gpus and (", on GPUs " .. table.concat(o.gpus, ",")) or "", ctx.expdir, ctx.bin))
  io.flush()

  local running, next_i, t0 = {}, 1, core.time()
  local interrupted = false
  local function launch()
    while not interrupted and #running < jobs and next_i <= #pending do
      local s = pending[next_i]
      next_i = next_i + 1
      local r = report[s]
      -- the listed GPU with the fewest of our runs (the first such)
      local gpu
      if o.gpus then
        local load = {}
        for _, j in ipairs(running) do load[j.gpu] = (load[j.gpu] or 0) + 1 end
        for _, g in ipairs(o.gpus) do
          if not gpu or (load[g] or 0) < (load[gpu] or 0) then gpu = g end
        end
      end
      local job, jerr = start_job(ctx, s, r.action, gpu)
      if job then
        running[#running + 1] = job
        io.write(string.format("  seed %d: %s%s\n", s, r.action == "resume" and "resuming" or "started",
                               gpu and (" on GPU " .. gpu) or ""))
      else
        r.status, r.failed = "failed to start: " .. jerr, true
        io.write(string.format("  seed %d: FAILED to start: %s\n", s, jerr))
      end
      io.flush()
    end
  end

  launch()
  while #running > 0 do
    core.sleep(0.2)
    if not interrupted and core.interrupted() then
      interrupted = true
      io.write("sgdsa sweep: interrupted: stopping the running seeds after their current step\n")
      io.flush()
    end
    -- Each running child gets one SIGINT (a child that has only just started
    -- gets it once its pid is known).
    if interrupted then
      for _, job in ipairs(running) do job:signal("INT") end
    end
    local i = 1
    while i <= #running do
      local job = running[i]
      local rc = job:poll()
      if rc then
        table.remove(running, i)
        local r = report[job.seed]
        r.elapsed, r.out = job.elapsed, job.out
        local st = M.folder_state(job.dir, o.epochs)
        if rc == 0 and st == "done" then
          r.status, r.done = "finished", true
        elseif rc == 0 or rc == 130 then
          r.status, r.interrupted = "interrupted (rerun the sweep to resume)", true
        else
          r.status, r.failed = string.format("FAILED (exit %d), see %s", rc, job.out), true
        end
        local summary = results.brief(job.dir)
        io.write(string.format("  seed %d: %s in %s%s\n", job.seed, r.status, fmt_time(job.elapsed),
                               summary and ("; " .. summary) or ""))
        if r.failed then
          local tail = shell_output("tail -n 5 " .. q(job.out) .. " 2>/dev/null")
          if tail and tail ~= "" then io.write("    ", (tail:gsub("\n$", ""):gsub("\n", "\n    ")), "\n") end
        end
        io.flush()
      else
        i = i + 1
      end
    end
    launch()
  end
  os.execute("rm -rf " .. q(ctx.tmp))
  os.remove(lock)

  -- Summary.
  local n_done, n_failed, n_left = 0, 0, 0
  io.write(string.format("sgdsa sweep: %s, %d seed%s in %s:\n", ctx.name, #seeds, #seeds == 1 and "" or "s",
                         fmt_time(core.time() - t0)))
  for _, s in ipairs(seeds) do
    local r = report[s]
    local status = r.status or "not started (interrupted)"
    if r.done or r.action == "done" then n_done = n_done + 1
    elseif r.failed then n_failed = n_failed + 1
    else n_left = n_left + 1 end
    local summary = results.brief(ctx.folder_of(s))
    io.write(string.format("  seed %-4d %-44s %s\n", s, status, summary or ""))
  end
  io.write(string.format("  %d finished, %d failed, %d interrupted or not run\n", n_done, n_failed, n_left))
  if n_done == #seeds then
    io.write(string.format("  table: sgdsa table %s\n", ctx.expdir))
  end
  return (n_done == #seeds) and 0 or 1
end

return M
