-- sgdsa.sweep_status: `sgdsa sweep --status SWEEP_FOLDER` says how each seed
-- of a sweep stands, for a local sweep and one submitted to Slurm alike:
--
--   queued       waiting: a local sweep's seed not started yet, a Slurm
--                task pending (a requeued one too)
--   running      epoch k of E, the last validation accuracy
--   done         all epochs logged
--   interrupted  stopped with a checkpoint (exit status 130): it resumes
--                when the sweep runs, or its task is submitted, again
--   failed       any other exit status, or a process that ended without
--                one (killed), with the last lines of its seed-<n>.out
--   not started  nothing of it yet, and nothing waiting
--
-- What it reads: sweep.txt (the sweep's script, seeds, epochs, scheduler),
-- each seed-<n>/ (log.h5 through sgdsa.results; the holder of .lock), each
-- seed-<n>.out (the "==== sgdsa sweep:" header of each attempt and the
-- "==== exit status N" footer written when it ended), and for a Slurm sweep
-- squeue (the tasks of the sweep's job script still queued or running) and,
-- for a task that ended without a footer, scontrol or sacct (its final
-- state: TIMEOUT, NODE_FAIL, OUT_OF_MEMORY...). Nothing is written.
local core = require "sgdsa.core"
local results = require "sgdsa.results"
local slurm = require "sgdsa.slurm"

local M = {}

local read_file = require("sgdsa.sys").read_file

local function alive(pid)
  return pid ~= nil and core.exists("/proc/" .. pid) == true
end

--- The attempts recorded in a seed's output file: {attempts=, header= (the
--- last attempt's header line), status= (its exit status, nil without a
--- footer), job= (its Slurm task "12_3"), tail = {its last lines}}, or nil.
function M.read_out(path)
  local text = read_file(path)
  if not text then return nil end
  local o = {attempts = 0, tail = {}}
  local after = {}
  for line in text:gmatch("[^\n]*") do
    if line:match("^==== sgdsa sweep: ") then
      o.attempts, o.header, o.status, after = o.attempts + 1, line, nil, {}
      o.job = line:match("Slurm job (%d+_%d+)")
    elseif line:match("^==== exit status %-?%d+") then
      o.status = math.tointeger(tonumber(line:match("^==== exit status (%-?%d+)")))
    elseif line ~= "" and not line:match("^==== ") then
      after[#after + 1] = line
    end
  end
  -- the lines that say what happened: the last ones of the last attempt
  -- (progress bars redraw with \r: their last state)
  for i = math.max(1, #after - 4), #after do
    o.tail[#o.tail + 1] = (after[i]:match("([^\r]*)\r*$") or after[i])
  end
  return o
end

-- The seeds of a sweep: those it was asked for and any found in the folder.
local function seeds_of(dir, rec)
  local set, list = {}, {}
  local function add(s)
    s = math.tointeger(tonumber(s))
    if s and not set[s] then set[s] = true; list[#list + 1] = s end
  end
  if rec and rec.seeds then
    local sweep = require "sgdsa.sweep"
    for _, s in ipairs(sweep.parse_seeds(rec.seeds) or {}) do add(s) end
  end
  for _, n in ipairs(core.listdir(dir) or {}) do
    add(n:match("^seed%-(%d+)$") or n:match("^seed%-(%d+)%.out$"))
  end
  table.sort(list)
  return list
end

-- What a run folder holds: {n = epochs logged, total = E, last_acc=, best_acc=,
-- best_epoch=, resumable=, lock = {pid=, host=}}.
local function run_info(dir, epochs)
  local info = {n = 0, resumable = core.exists(dir .. "/" .. results.LAST) == true}
  local lock = read_file(dir .. "/.lock")
  if lock then
    info.lock = {pid = tonumber(lock:match("pid (%d+)")), host = lock:match("host (%S+)")}
  end
  local r = core.exists(dir .. "/" .. results.LOG) and results.load(dir)
  if r then
    info.n = r.n
    info.total = r.epochs_total
    if r.n > 0 then info.last_acc = r.cols.val_acc[r.n] end
    for i = 1, r.n do
      local a = r.cols.val_acc[i]
      if a == a and (not info.best_acc or a > info.best_acc) then info.best_acc, info.best_epoch = a, i end
    end
  end
  info.total = epochs or (info.total and math.max(info.total, info.n))
  return info
end

local function pct(x) return string.format("%.2f%%", 100 * x) end

local function epochs_text(info)
  return string.format("%d/%s epochs", info.n, info.total and tostring(info.total) or "?")
end

local function accuracy_text(info)
  if not info.last_acc then return "" end
  local s = ", last val acc " .. pct(info.last_acc)
  if info.best_epoch and info.best_epoch ~= info.n then
    s = s .. string.format(" (best %s at epoch %d)", pct(info.best_acc), info.best_epoch)
  end
  return s
end

-- Slurm's task states: those of a task that runs (or ends its run now).
local RUNNING = {RUNNING = true, COMPLETING = true, CONFIGURING = true, SIGNALING = true, STAGE_OUT = true,
                 SUSPENDED = true, STOPPED = true}

--- The status of one seed: category, detail (one line), more (lines to show
--- under it).
function M.seed_status(ctx, seed)
  local dir = string.format("%s/seed-%d", ctx.dir, seed)
  local outpath = string.format("%s/seed-%d.out", ctx.dir, seed)
  local info = run_info(dir, ctx.epochs)
  local out = M.read_out(outpath)
  local task = ctx.tasks and ctx.tasks[seed]
  local done = info.total ~= nil and info.n >= info.total

  if task and RUNNING[task.state] then
    local k = info.total and math.min(info.n + 1, info.total) or (info.n + 1)
    local detail = string.format("epoch %d of %s%s; Slurm %s %s on %s for %s", k,
                                 info.total and tostring(info.total) or "?",
                                 info.last_acc and (", last val acc " .. pct(info.last_acc)) or "",
                                 task.id, task.state, task.node, task.time)
    return "running", detail
  end
  if task then
    local detail = string.format("Slurm %s %s (%s)", task.id, task.state, task.reason)
    if info.n > 0 or info.resumable then
      detail = epochs_text(info) .. accuracy_text(info) .. ", resumes from its checkpoint; " .. detail
    end
    return "queued", detail
  end
  -- a local run in progress: an attempt without its footer, the folder's
  -- lock held by a live process of this host
  if out and out.header and not out.status and not out.job and info.lock and info.lock.host == core.hostname()
     and alive(info.lock.pid) then
    local k = info.total and math.min(info.n + 1, info.total) or (info.n + 1)
    return "running", string.format("epoch %d of %s%s; pid %d", k, info.total and tostring(info.total) or "?",
                                    info.last_acc and (", last val acc " .. pct(info.last_acc)) or "", info.lock.pid)
  end
  if done then
    return "done", epochs_text(info) .. accuracy_text(info)
  end
  if out and out.header then
    local where = ctx.slurm and "when its task is submitted again" or "when the sweep runs again"
    if out.status == 130 or out.status == 0 then
      return "interrupted", string.format("%s%s, %s: resumes %s", epochs_text(info), accuracy_text(info),
                                          info.resumable and "checkpoint in last.h5" or "no checkpoint yet", where)
    end
    local why
    if out.status then
      why = "exit status " .. out.status
    else
      local t = out.job and slurm.task(out.job)
      why = t and string.format("Slurm %s %s, exit code %s", out.job, t.state, t.exit or "?")
            or "ended without an exit status (killed?)"
    end
    local more = {}
    for _, l in ipairs(out.tail) do more[#more + 1] = "| " .. l end
    return "failed", string.format("%s after %s; %s ends:", why, epochs_text(info), outpath), more
  end
  if ctx.local_running and ctx.asked[seed] then return "queued", "waiting for a free slot of the local sweep" end
  if info.n > 0 or info.resumable then
    return "interrupted", epochs_text(info) .. accuracy_text(info) .. ": resumes when the sweep runs again"
  end
  return "not started", ""
end

function M.main(dir)
  dir = dir:gsub("(.)/+$", "%1")
  if select(2, core.exists(dir)) ~= "directory" then
    io.stderr:write("sgdsa sweep --status: ", dir, ": no such folder\n")
    return 1
  end
  local sweep = require "sgdsa.sweep"
  local rec = sweep.read_record(dir)
  local seeds = seeds_of(dir, rec)
  if #seeds == 0 then
    io.stderr:write("sgdsa sweep --status: ", dir, ": not a sweep folder (no ", sweep.RECORD,
                    ", no seed-<n>/ runs or seed-<n>.out files)\n")
    return 1
  end
  local ctx = {dir = dir, epochs = rec and math.tointeger(tonumber(rec.epochs or "")), asked = {}}
  for _, s in ipairs(sweep.parse_seeds(rec and rec.seeds or "") or {}) do ctx.asked[s] = true end
  local where
  if rec and rec.scheduler == "slurm" then
    ctx.slurm = true
    local name = dir:match("([^/]+)$")
    where = string.format("Slurm job %s (%s)", rec.slurm_job or "not submitted", rec.slurm_script or "?")
    if slurm.available() then
      local tasks, err = slurm.queue(name, rec.slurm_script or "")
      if tasks then ctx.tasks = tasks else where = where .. "; " .. err end
    else
      where = where .. "; squeue is not on PATH here: the queue is not shown"
    end
  else
    local pid = rec and tonumber(rec.pid or "")
    local cmd = pid and read_file("/proc/" .. pid .. "/cmdline")
    ctx.local_running = cmd ~= nil and cmd:find("sweep", 1, true) ~= nil
    where = ctx.local_running and string.format("local sweep, running (pid %d)", pid) or "local sweep, not running"
  end
  io.write(string.format("%s: %s, seeds %s; %s\n", dir, rec and rec.script or "(no sweep.txt)",
                         rec and rec.seeds or "found in the folder", where))
  local counts, order = {}, {"done", "running", "queued", "interrupted", "failed", "not started"}
  for _, s in ipairs(seeds) do
    local cat, detail, more = M.seed_status(ctx, s)
    counts[cat] = (counts[cat] or 0) + 1
    io.write(string.format("  seed %-4d %-12s %s\n", s, cat, detail))
    for _, l in ipairs(more or {}) do io.write("      ", l, "\n") end
  end
  local parts = {}
  for _, c in ipairs(order) do
    if counts[c] then parts[#parts + 1] = counts[c] .. " " .. c end
  end
  io.write("  ", table.concat(parts, ", "), "\n")
  return 0
end

return M
