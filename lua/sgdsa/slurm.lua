-- sgdsa.slurm: a sweep as a Slurm job array (`sgdsa sweep ... --slurm`), and
-- what Slurm says about its tasks (for `sgdsa sweep --status`).
--
--   slurm.array_spec(seeds [, max_running])  "0-9%4", "0,2,5-7"
--   slurm.script(job)          the sbatch script of a sweep (text; job below)
--   slurm.submit(path)         sbatch --parsable path -> job id, or nil, message
--   slurm.queue(name, path)    the sweep's tasks in the queue (squeue), by seed:
--                              {[seed] = {id=, state=, reason=, time=, node=}},
--                              or nil, message when squeue cannot answer
--   slurm.task(id)             what scontrol (or sacct) still knows of a task
--                              that left the queue: {state=, exit=} or nil
--
-- One array task per seed, the task id being the seed, so squeue shows
-- JOBID_SEED and Slurm's %a in --output names the seed's output file. Each
-- task runs the `sgdsa run` a local sweep runs (sgdsa.sweep), in the same
-- folders, and appends to the same seed-<n>.out; the script's comments say
-- how it stops, resumes and requeues (they are the reference for it).
local sys = require "sgdsa.sys"

local M = {}

local q = sys.quote

-- A word that needs no quotes in the script (paths and overrides usually).
local function word(s)
  s = tostring(s)
  if s ~= "" and not s:find("[^%w%./_%-=:,@%+]") then return s end
  return q(s)
end

-- A command's stdout and its exit status (0 when it succeeded).
local function shell_output(cmd)
  local s, ok, _, code = sys.output(cmd)
  return s, ok and 0 or code
end

--- A sorted seed list as a Slurm array: ranges of consecutive seeds, then
--- "%N" when at most N tasks may run at once.
function M.array_spec(seeds, max_running)
  local parts, i = {}, 1
  while i <= #seeds do
    local j = i
    while j < #seeds and seeds[j + 1] == seeds[j] + 1 do j = j + 1 end
    parts[#parts + 1] = j > i and (seeds[i] .. "-" .. seeds[j]) or tostring(seeds[i])
    i = j + 1
  end
  local spec = table.concat(parts, ",")
  if max_running then spec = spec .. "%" .. max_running end
  return spec
end

local TEMPLATE = [[
#!/bin/bash
# sgdsa sweep of @SCRIPT@, seeds @SEEDS@, as a Slurm job array:
# one task per seed, the task id being the seed. Written by
#   @COMMAND@
# in @CWD@ on @DATE@.
# Submit it again from any folder with
#   sbatch @PATH@
# (`sgdsa sweep ... --slurm` again writes it anew and submits the seeds that
# have not finished). Progress, seed by seed:
#   sgdsa sweep --status @EXPDIR@
#
# Each task trains @RUNDIR@/seed-<n>/ with the `sgdsa run` a
# local `sgdsa sweep` would start for that seed, and appends its output to
# @RUNDIR@/seed-<n>.out. A run that has finished does nothing; one
# with a checkpoint (last.h5) resumes from it, bit for bit as if it had never
# stopped; any other starts from epoch 1.
#
# Stopping: scancel, scontrol requeue and a preemption send SIGTERM to every
# process of the task; the run stops after its current step, writes its
# checkpoint and exits with status 130 (Slurm waits KillWait seconds, 30 by
# default, before SIGKILL). Before the time limit Slurm sends SIGUSR1 to this
# script alone (--signal=B:USR1@@LEAD@, @LEAD@ s ahead), which passes it on to
# the run as SIGTERM. A run stopped while its task is still RUNNING (the time
# limit near, a preemption's grace time, a signal sent by hand) puts the task
# back in the queue (scontrol requeue) to resume later; a task Slurm is already
# cancelling or requeueing is left to it. The task exits with the run's status:
# 0 only when the run finished.
#SBATCH --job-name=@JOBNAME@
#SBATCH --array=@ARRAY@
#SBATCH --output=@EXPDIR@/seed-%a.out
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:USR1@@LEAD@
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=@CPUS@
@OPTIONAL@
cd @CWD@ || exit 1
SGDSA=@BIN@
SCRIPT=@SCRIPTWORD@
SEED=$SLURM_ARRAY_TASK_ID
EXPERIMENT=@RUNDIRWORD@
RUN=$EXPERIMENT/seed-$SEED
TASK=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}
# the overrides of every seed: threads= its CPUs, then the sweep's key=value
OVERRIDES=(@OVERRIDES@)
@GPUENV@
now() { date '+%Y-%m-%d %H:%M:%S'; }

# Signals (see above): STOP says which one came first; SIGNALLED that one
# came while `wait` below was waiting, so it must wait again. The run gets
# one SIGTERM at most from here (a second one would abort it).
STOP= PID= SIGNALLED= FORWARDED=
forward() {
  if [ -n "$PID" ] && [ -z "$FORWARDED" ]; then FORWARDED=1; kill -TERM "$PID" 2>/dev/null; fi
}
trap 'SIGNALLED=1; STOP=${STOP:-term}' TERM
trap 'SIGNALLED=1; if [ -z "$STOP" ]; then STOP=usr1; forward; fi' USR1

# done, resume (last.h5), restart (a log without a checkpoint) or fresh
STATE=$("$SGDSA" sweep --folder-state "$RUN" "${OVERRIDES[@]}") || exit 1
case $STATE in
  resume|restart) START=("resume=$RUN") ;;
  *) START=("out=$EXPERIMENT" "name=seed-$SEED") ;;
esac
echo "==== sgdsa sweep: @NAME@ seed $SEED ($STATE) on $(now), Slurm job $TASK on $(hostname)${SLURM_RESTART_COUNT:+, restart $SLURM_RESTART_COUNT}"
if [ "$STATE" = done ]; then
  echo "==== the run has finished: nothing to do"
  echo "==== exit status 0 on $(now)"
  exit 0
fi
if [ -n "$STOP" ]; then
  RC=130
  echo "==== stopped (SIG${STOP^^}) before the run started"
else
  echo "==== $SGDSA run $SCRIPT seed=$SEED ${START[*]} ${OVERRIDES[*]}"
  "$SGDSA" run "$SCRIPT" "seed=$SEED" "${START[@]}" "${OVERRIDES[@]}" </dev/null &
  PID=$!
  [ "$STOP" = usr1 ] && forward
  # the run's exit status: a wait cut short by a signal is waited again (127:
  # the status was collected by the wait before)
  RC=
  while :; do
    SIGNALLED=
    wait "$PID" 2>/dev/null
    S=$?
    if [ -z "$RC" ] || [ "$S" -ne 127 ]; then RC=$S; fi
    [ -n "$SIGNALLED" ] || break
  done
fi
echo "==== exit status $RC on $(now)"
if [ "$RC" -eq 130 ]; then
  TASK_STATE=$(scontrol -o show job "$TASK" 2>/dev/null | grep -o 'JobState=[A-Z_]*')
  if [ "$TASK_STATE" = JobState=RUNNING ]; then
    echo "==== the run stopped with a checkpoint and the task is still running: back to the queue (scontrol requeue $TASK)"
    scontrol requeue "$TASK"
  fi
fi
exit "$RC"
]]

--- The sbatch script of a sweep. job = {
---   name=, script=, seeds = {..}, seeds_spec=, command=, cwd=, path= (where
---   the script goes), expdir= (absolute), rundir= (the experiment folder as
---   the runs name it, relative to cwd), bin=, overrides = {"threads=..", ..},
---   cpus=, gpus=, partition=, account=, time=, max_running=, sbatch = {..}
---   (more #SBATCH lines), lead= (seconds of warning before the time limit) }
function M.script(job)
  local optional = {}
  local function opt(line) optional[#optional + 1] = "#SBATCH " .. line end
  if job.time then opt("--time=" .. job.time) end
  if job.partition then opt("--partition=" .. job.partition) end
  if job.account then opt("--account=" .. job.account) end
  if job.gpus and job.gpus > 0 then opt("--gres=gpu:" .. job.gpus) end
  for _, s in ipairs(job.sbatch or {}) do opt(s) end
  local ov = {}
  for i, a in ipairs(job.overrides) do ov[i] = word(a) end
  local gpuenv = ""
  if job.gpus and job.gpus > 0 then
    gpuenv = "# the run's GPU: the first of those Slurm gave the task (CUDA_VISIBLE_DEVICES)\n" ..
             "export SGDSA_CUDA_DEVICE=0\n"
  end
  local subst = {
    SCRIPT = job.script, SEEDS = job.seeds_spec, COMMAND = job.command, CWD = word(job.cwd),
    DATE = os.date("%Y-%m-%d %H:%M:%S"), PATH = word(job.path), EXPDIR = word(job.expdir),
    RUNDIR = job.rundir, RUNDIRWORD = word(job.rundir), LEAD = tostring(job.lead or 120), JOBNAME = word("sgdsa-" .. job.name),
    ARRAY = M.array_spec(job.seeds, job.max_running), CPUS = tostring(job.cpus),
    OPTIONAL = #optional > 0 and (table.concat(optional, "\n") .. "\n") or "",
    BIN = word(job.bin), SCRIPTWORD = word(job.script), OVERRIDES = table.concat(ov, " "),
    GPUENV = gpuenv, NAME = job.name,
  }
  local text = TEMPLATE:gsub("@(%u+)@", function(k)
    local v = subst[k]
    if v == nil then error("slurm.script: no value for @" .. k .. "@") end
    return v
  end)
  -- "@@LEAD@" above is a literal '@' followed by the lead time
  return (text:gsub("\n\n\n+", "\n\n"))
end

--- Submit a batch script: the job id, or nil and sbatch's message.
function M.submit(path)
  local out, code = shell_output("sbatch --parsable " .. q(path) .. " 2>&1")
  if not out then return nil, "cannot run sbatch" end
  local id = code == 0 and out:match("^%s*(%d+)")
  if not id then
    return nil, (out:gsub("%s+$", ""):gsub("^$", "sbatch failed (exit " .. tostring(code) .. ")"))
  end
  return id
end

--- True when Slurm's client commands are on PATH.
function M.available()
  return os.execute("command -v sbatch >/dev/null 2>&1 && command -v squeue >/dev/null 2>&1") == true
end

--- The tasks of a sweep still in the queue: squeue's lines for the job name
--- whose batch script is `path` (so hand-made submissions of the script count
--- too), one per array task. Returns {[seed] = task}, or nil and a message.
function M.queue(name, path)
  local fmt = "%i|%K|%T|%r|%M|%N|%o"
  local out, code = shell_output(string.format("squeue -h -r -n %s -o %s 2>&1", q("sgdsa-" .. name), q(fmt)))
  if not out or code ~= 0 then
    return nil, "squeue: " .. ((out or ""):gsub("%s+$", ""):gsub("^$", "cannot run it"))
  end
  local tasks = {}
  for line in out:gmatch("[^\n]+") do
    local id, k, state, reason, time, node, cmd = line:match("^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$")
    local seed = math.tointeger(tonumber(k))
    if seed and cmd == path then
      tasks[seed] = {id = id, state = state, reason = reason, time = time, node = node}
    end
  end
  return tasks
end

--- What the controller (scontrol, which keeps ended jobs for MinJobAge
--- seconds) or the accounting (sacct, where there is one) knows of a task
--- that left the queue: {state = "TIMEOUT", exit = "0:9"}, or nil.
function M.task(id)
  local out = shell_output("scontrol -o show job " .. q(id) .. " 2>/dev/null")
  local state = out and out:match("JobState=(%S+)")
  if state then return {state = state, exit = out:match("ExitCode=(%S+)")} end
  out = shell_output("sacct -n -X -P -j " .. q(id) .. " -o State,ExitCode 2>/dev/null")
  local s, e = (out or ""):match("^(%S+)[^|]*|(%S+)")
  if s then return {state = s, exit = e} end
  return nil
end

M.shell_quote = q
return M
