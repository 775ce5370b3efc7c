-- sgdsa.trainer.folder: the run folder of a training run (docs/FORMAT.md,
-- "The run folder"): its name, its lock, log.h5's creation, the checks of a
-- resume (the folder writable, the files intact, the configuration the
-- run's), the repair of best.h5, and the record of what a resume changed
-- (the arithmetic: device, tf32, deterministic; the rank count) as lists of
-- changes, kept in log.h5's device_changes and rank_changes texts.
local sg = require "sgdsa"
local core = require "sgdsa.core"
local h5 = require "sgdsa.h5"
local checkpoint = require "sgdsa.checkpoint"
local dist = require "sgdsa.dist"
local function fail(fmt, ...) error(string.format("trainer: " .. fmt, ...), 0) end

local M = {}

-- The script text a resume by folder (trainer.resume_folder) recorded for
-- its path: log.h5's.
local recorded_script

function M.use_recorded_script(path, text)
  recorded_script = {path = path, text = text}
end

--- The script that runs (arg[0]) and its text: the recorded text when it
--- was resumed by folder, else the file's.
function M.script_text()
  local path = arg and arg[0]
  if recorded_script and recorded_script.path == path then return path, recorded_script.text end
  if type(path) ~= "string" then return "", "" end
  local f = io.open(path, "rb")
  if not f then return path, "" end
  local s = f:read("a")
  f:close()
  return path, s
end

function M.default_name(label)
  local path = arg and arg[0]
  local base = label and label:gsub("[^%w_.-]+", "_")
               or type(path) == "string" and path:match("([^/]+)%.lua$") or "run"
  return base .. "-" .. os.date("%Y%m%d-%H%M%S")
end

-- Create log.h5 for a fresh run: script, config, metadata.
function M.create_log(dir, cfg, cfgtext, S)
  local spath, stext = M.script_text()
  local f = h5.open(dir .. "/log.h5", "w", {atomic = true})
  local ok, err = pcall(function()
    f:write_text("script", stext)
    f:write_text("script_path", spath)
    f:write_text("config", cfgtext)
    local argv = {}
    for i = 0, #(arg or {}) do argv[#argv + 1] = tostring(arg[i]) end
    f:write_text("argv", table.concat(argv, "\n"))
    f:attr("format_version", h5.format_version)
    f:attr("kind", "run-log")
    f:attr("name", dir:match("([^/]+)$"))
    f:attr("resumed", 0)
    f:attr("sgdsa_version", sg.version)
    f:attr("seed", cfg.seed)
    if cfg.device == "cuda" then
      -- the index this process sees (SGDSA_CUDA_DEVICE, e.g. from sweep's gpus=) and the GPU's name
      f:attr("device", "cuda:" .. (math.tointeger(tonumber(os.getenv("SGDSA_CUDA_DEVICE") or "")) or 0))
      f:attr("device_name", tostring(core.cuda.device_name()))
    else
      f:attr("device", cfg.device)
    end
    f:attr("threads", core.get_num_threads())
    f:attr("ranks", dist.size())
    -- the CPU and the kernels its libraries run (docs/FORMAT.md)
    local ci = core.cpu_info()
    f:attr("cpu", string.format("%s (family %d, model %d): %s", ci.cpu, ci.family, ci.model,
                                #ci.features > 0 and table.concat(ci.features, " ") or "no AVX2"))
    f:attr("blas", ci.blas)
    f:attr("blas_core", ci.blas_core)
    f:attr("blas_core_origin", ci.blas_core_origin)
    f:attr("dnnl_isa", ci.dnnl_isa or "")
    f:attr("start_time", os.date("!%Y-%m-%dT%H:%M:%SZ"))
    f:attr("host", core.hostname())
    f:attr("epochs", cfg.epochs)
    f:attr("score", S.score)
    f:attr("objective", S.objective_name)
  end)
  if not ok then f:discard(); error(err, 0) end
  f:close()
end

-- The lock file of a run folder (core.lock: an flock held for the life of the
-- run; docs/FORMAT.md, "The run folder").
M.LOCK = ".lock"

-- Names in a folder that no run has written to yet: the lock, and the
-- temporary files of killed writers (never read).
local function holds_nothing(dir)
  for _, n in ipairs(core.listdir(dir) or {}) do
    if n ~= M.LOCK and not n:match("%.tmp%.%d+$") then return false end
  end
  return true
end

-- ---- checking a run folder before a resume --------------------------------------

-- A resume must be able to write the folder: a probe file is made and removed
-- (this also catches a read-only file system, and permissions that only a
-- write shows), so a resume into a folder it cannot write fails at once.
local function check_writable(dir, what)
  local probe = string.format("%s/.sgdsa-write-probe.%d", dir, core.getpid())
  local fh, err = io.open(probe, "wb")
  if not fh then
    fail("%s: the run folder %s is not writable (%s); a resume writes log.h5, last.h5 and best.h5 there",
         what, dir, (tostring(err):gsub("^[^:]*: ", "")))
  end
  fh:close()
  os.remove(probe)
end

-- "epoch 2, step 8" (and the validation accuracy of a best.h5) from a
-- checkpoint that verified.
local function describe_checkpoint(path)
  local f <close> = h5.open(path, "r")
  local a = f:attrs()
  local s = string.format("epoch %s, step %s", tostring(a.epoch), tostring(a.step))
  if a.best_val_acc then s = s .. string.format(", validation accuracy %.2f%%", 100 * a.best_val_acc) end
  return s
end

-- Does log.h5 (intact) hold the rows a checkpoint (intact) was written after?
local function log_covers(dir, ckpath)
  local ck <close> = h5.open(ckpath, "r")
  local lg <close> = h5.open(dir .. "/log.h5", "r")
  for _, name in ipairs{"step_rows", "epoch_rows"} do
    local key = checkpoint.STATE .. "/trainer/" .. name
    local n = ck:exists(key) and ck:read_array(key) or 0
    local group = name == "step_rows" and "steps" or "epochs"
    local have = lg:exists(group) and lg:log_rows(group) or 0
    if n > have then return false end
  end
  return true
end

--- Claim the run folder of a configuration for this process. Returns the
--- lock (DIR/.lock, released by lock:unlock(), by the collector or when the
--- process ends), the folder and how the run starts in it:
---   "fresh"    out= and name=: the folder, created if need be, holds no run
---   "resume"   resume=DIR, DIR/last.h5 exists: continue from it
---   "restart"  resume=DIR of a run that died before its first checkpoint
---              (log.h5 but no last.h5, or nothing at all): start it again
---              from epoch 1 in DIR
--- Nothing with out=false. The folder's state is judged under the lock, so
--- of two processes started together on one folder exactly one proceeds; the
--- other is refused with the pid and host of the one holding it.
function M.claim(cfg)
  local dir
  if cfg.resume then
    dir = cfg.resume:gsub("(.)/+$", "%1")
    if select(2, core.exists(dir)) ~= "directory" then
      fail("resume=%s: no run folder %s", cfg.resume, dir)
    end
    if not core.exists(dir .. "/last.h5") and not core.exists(dir .. "/log.h5") and not holds_nothing(dir) then
      fail("resume=%s: %s is not a run folder (no last.h5 or log.h5, and it holds other files)", cfg.resume, dir)
    end
  elseif cfg.out then
    dir = cfg.out .. "/" .. (cfg.name or M.default_name(cfg.label))
    local ok, err = core.mkdir_p(dir)
    if not ok then fail("cannot create the run folder %s: %s", dir, tostring(err)) end
  else
    return nil
  end
  local lock, err, holder = core.lock(dir .. "/" .. M.LOCK)
  if not lock then
    -- held by another process: its line; any other failure: an errno
    if type(holder) ~= "string" and cfg.resume then check_writable(dir, "resume=" .. cfg.resume) end
    if type(holder) == "string" then
      fail("run folder %s is in use by another process (%s); wait for it to end, or stop it", dir,
           holder ~= "" and holder or "it has not said which")
    end
    fail("cannot lock the run folder %s: %s", dir, tostring(err))
  end
  local ok, start = pcall(function()
    local has_last, has_log = core.exists(dir .. "/last.h5"), core.exists(dir .. "/log.h5")
    if cfg.resume then return has_last and "resume" or "restart" end
    if has_last then
      fail("run folder %s already exists; continue it with resume=%s or choose another name=", dir, dir)
    end
    if has_log then
      fail("run folder %s already exists but holds no checkpoint (its run stopped before the first " ..
           "one): resume=%s starts that run again from epoch 1 in the folder; or choose another name=",
           dir, dir)
    end
    return "fresh"
  end)
  if not ok then
    lock:unlock()
    error(start, 0)
  end
  return lock, dir, start
end

-- Verify log.h5, last.h5 and best.h5 (sgdsa.h5.verify: every object and all
-- data read, every checksum checked) before a resume reads or changes any of
-- them. A damaged log.h5 or last.h5 stops the resume with a message naming
-- the damage and the checkpoints that are still intact; the verdict on
-- best.h5 is returned ("ok", nil when there is none, else the message) for
-- the resume to act on once the run's state is known.
local function verify_run_files(dir, what)
  local status = {}
  for _, name in ipairs{"log.h5", "last.h5", "best.h5"} do
    local p = dir .. "/" .. name
    if name ~= "best.h5" or core.exists(p) then
      local ok, why = h5.verify(p)
      status[name] = ok and "ok" or why
    end
  end
  local function intact(name)
    return status[name] == "ok" and string.format("%s/%s (%s)", dir, name, describe_checkpoint(dir .. "/" .. name))
  end
  if status["log.h5"] ~= "ok" then
    local good = {}
    for _, name in ipairs{"last.h5", "best.h5"} do good[#good + 1] = intact(name) or nil end
    fail("%s: %s; the run cannot go on without its log.h5 (its configuration and logs). %s", what,
         status["log.h5"], #good > 0 and ("Intact checkpoints (model:load(path) reads their weights): "
         .. table.concat(good, "; ") .. ".") or "No checkpoint of the run is intact either.")
  end
  if status["last.h5"] ~= "ok" then
    local advice
    if status["best.h5"] == "ok" and log_covers(dir, dir .. "/best.h5") then
      advice = string.format("%s is intact: to go on from it, copy it over last.h5 (cp %s/best.h5 %s/last.h5) " ..
                             "and resume again.", intact("best.h5"), dir, dir)
    elseif status["best.h5"] == "ok" then
      advice = string.format("%s is intact (model:load(path) reads its weights), but log.h5 no longer " ..
                             "holds all the rows it was written after, so the run cannot go on from it.",
                             intact("best.h5"))
    else
      advice = "No checkpoint of the run is intact" ..
               (status["best.h5"] and (" (best.h5: " .. status["best.h5"] .. ").") or " (there is no best.h5).")
    end
    fail("%s: %s; the run cannot go on from it. %s", what, status["last.h5"], advice)
  end
  return status["best.h5"]
end

-- What a resume does with best.h5 (verdict: M.open's best_verdict), once the
-- checkpoint's trainer state tr (best_acc, best_epoch, mid_epoch) and its
-- epoch are known. An intact best.h5 stays. A damaged or missing one whose
-- weights are last.h5's (the best epoch is the checkpoint's, at an epoch's
-- end) is rebuilt: returns true, and the trainer writes it from the restored
-- state. Otherwise the best weights are lost: a damaged file is kept aside as
-- best.h5.damaged and the run says that it has no best weights until
-- validation accuracy beats the recorded best again.
function M.repair_best(dir, cfg, verdict, tr, epoch)
  if verdict == "ok" then return false end
  local what = "resume=" .. cfg.resume
  local path = dir .. "/best.h5"
  if verdict == nil and not (cfg.checkpoint.best and tr.best_epoch > 0) then return false end
  local problem = verdict and ("best.h5 is damaged (" .. verdict .. ")") or "best.h5 is missing"
  if cfg.checkpoint.best and tr.best_epoch > 0 and tr.best_epoch == epoch and not tr.mid_epoch then
    io.stderr:write(string.format("%s: %s; writing it again from last.h5, which holds the best epoch (%d)\n",
                                  what, problem, tr.best_epoch))
    return true
  end
  if verdict then
    local ok, err = os.rename(path, path .. ".damaged")
    if not ok then fail("%s: %s, and moving it aside failed: %s", what, problem, tostring(err)) end
  end
  if cfg.checkpoint.best and tr.best_epoch > 0 then
    io.stderr:write(string.format("%s: %s%s; the weights of the best epoch (%d, validation accuracy %.2f%%) " ..
                                  "are not in last.h5 (epoch %d%s), so the run has no best weights until " ..
                                  "validation accuracy beats %.2f%% again\n", what, problem,
                                  verdict and " (kept as best.h5.damaged)" or "", tr.best_epoch,
                                  100 * tr.best_acc, epoch, tr.mid_epoch and ", mid-epoch" or "",
                                  100 * tr.best_acc))
  else
    io.stderr:write(string.format("%s: %s (kept as best.h5.damaged); the run has no best weights yet\n",
                                  what, problem))
  end
  return false
end

-- Keys whose change does not break a resume.
local RESUME_FREE = {resume = true, progress = true, epochs = true, hooks = true, name = true,
                     out = true, checkpoint = true, threads = true, label = true, ranks = true}

-- Keys that choose the arithmetic: a resume may change them (a GPU run
-- finished on the CPU, say). The steps after the change are no longer
-- bit-identical to a run left alone, so the trainer says so and records the
-- change in log.h5's `device_changes`.
local ARITHMETIC = {device = true, tf32 = true, deterministic = true}

-- "cpu", "cuda", "cuda tf32", "cuda tf32 nondeterministic", ... from a
-- configuration's lines (M.config_lines)
function M.arithmetic(lines)
  local function value(k) return lines[k] and lines[k]:match("^%S+ = (.-),?$") end
  local dev = (value("device") or "\"cpu\""):match('^"(.*)"$') or "cpu"
  if dev ~= "cuda" then return dev end
  return dev .. (value("tf32") == "true" and " tf32" or "")
             .. (value("deterministic") == "false" and " nondeterministic" or "")
end

--- The lines of a configuration's text (trainer.config_text), by key.
function M.config_lines(text)
  local t = {}
  for line in text:gmatch("[^\n]+") do
    local k = line:match("^(%S+) = ")
    if k then t[k] = line end
  end
  return t
end

-- ---- the configuration a resume runs with ----------------------------------------

--- The keys of the old configuration's text `oldtext` and the new `newtext`
--- that differ and whose change breaks a resume (sorted), with the lines
--- ("  run: ...\n  now: ...") that show each.
function M.config_diff(oldtext, newtext)
  local a, b = M.config_lines(oldtext), M.config_lines(newtext)
  local diffs = {}
  for k in pairs(a) do
    if not RESUME_FREE[k] and not ARITHMETIC[k] and a[k] ~= b[k] then diffs[#diffs + 1] = k end
  end
  for k in pairs(b) do
    if not RESUME_FREE[k] and not ARITHMETIC[k] and a[k] == nil then diffs[#diffs + 1] = k end
  end
  table.sort(diffs)
  local lines = {}
  for _, k in ipairs(diffs) do
    lines[#lines + 1] = string.format("  run: %s\n  now: %s", a[k] or (k .. " unset"), b[k] or (k .. " unset"))
  end
  return diffs, lines
end

-- ---- the changes a resume records ------------------------------------------------
--
-- A list of changes, each {step =, from =, to =, text =}: "step 33: cpu ->
-- cuda" (a change of arithmetic) or "step 30: 2 -> 1 ranks" (of the rank
-- count) after the given step; log.h5 keeps a list as its text, the entries
-- joined by "; " (docs/FORMAT.md). An entry that does not read so keeps its
-- text only.

--- The list of changes in log.h5's text (nil or "" give {}).
function M.parse_changes(text)
  local list = {}
  for entry in (text or ""):gmatch("[^;]+") do
    entry = entry:match("^%s*(.-)%s*$")
    local s, from, to = entry:match("^step (%d+): (.-) %-> (.*)$")
    list[#list + 1] = {step = tonumber(s or entry:match("^step (%d+):")), from = from, to = to, text = entry}
  end
  return list
end

--- A change after `step`: from -> to.
function M.change(step, from, to)
  return {step = step, from = from, to = to, text = string.format("step %d: %s -> %s", step, from, to)}
end

--- The text log.h5 keeps for a list of changes.
function M.changes_text(list)
  local texts = {}
  for i, c in ipairs(list) do texts[i] = c.text end
  return table.concat(texts, "; ")
end

--- The changes of `list` that a resume from a checkpoint at `step` keeps:
--- those before it (the later ones came from resumes whose steps the
--- checkpoint throws away), and those that do not read as a change of `key`
--- ("to": a change from -> to; "step": one after a step).
function M.changes_before(list, step, key)
  local kept = {}
  for _, c in ipairs(list) do
    if c[key] == nil or c.step < step then kept[#kept + 1] = c end
  end
  return kept
end

-- ---- claiming and checking the folder ---------------------------------------------

--- The run folder of a training run, claimed by rank 0 (M.claim): {lock =,
--- dir =, start =}, all nil on the other ranks and with out = false. The
--- caller holds the lock (a to-be-closed variable) before M.prepare.
function M.open(cfg)
  local f = {}
  if dist.rank() == 0 then f.lock, f.dir, f.start = M.claim(cfg) end
  return f
end

--- The claimed folder f (M.open's) checked and, for a fresh run or a
--- restart, given its log.h5, by rank 0, which then tells the other ranks
--- where it is (f.dir, f.start). For a resume or a restart f gets arith_was
--- and arith_now (the arithmetic the run began with, and this resume's),
--- old_changes (log.h5's device_changes, a list, and old_changes_text) and
--- best_verdict (best.h5's check: "ok", nil when there is none, else the
--- damage).
function M.prepare(f, cfg, cfgtext, S, config_text)
  local writer = dist.rank() == 0
  local dir, start = f.dir, f.start
  if writer and (start == "resume" or start == "restart") then
    check_writable(dir, "resume=" .. cfg.resume)
  end
  if writer and start == "resume" then
    f.best_verdict = verify_run_files(dir, "resume=" .. cfg.resume)
  end
  if not writer then
    -- (the configuration check below is rank 0's)
  elseif start == "resume" or (start == "restart" and core.exists(dir .. "/log.h5")) then
    local old = h5.open(dir .. "/log.h5", "r")
    local oldtext = old:read_text("config")
    f.old_changes = M.parse_changes(old:attr("device_changes"))
    f.old_changes_text = old:attr("device_changes")
    old:close()
    local diffs, lines = M.config_diff(oldtext, cfgtext)
    if #diffs > 0 then
      fail("resume=%s: the configuration differs from the run's (%s); give the same script and overrides:\n%s",
           cfg.resume, table.concat(diffs, ", "), table.concat(lines, "\n"))
    end
    f.arith_was, f.arith_now = M.arithmetic(M.config_lines(oldtext)), M.arithmetic(M.config_lines(cfgtext))
  elseif start == "restart" then
    -- nothing of the run but its folder: log.h5 as a fresh run's
    local fresh = {}
    for k, v in pairs(cfg) do fresh[k] = v end
    fresh.resume, fresh.out, fresh.name = nil, dir:match("^(.*)/[^/]*$") or ".", dir:match("([^/]+)$")
    M.create_log(dir, fresh, config_text(fresh), S)
    f.arith_was = M.arithmetic(M.config_lines(cfgtext))
    f.arith_now = f.arith_was
  elseif start == "fresh" then
    M.create_log(dir, cfg, cfgtext, S)
  end
  if dist.size() > 1 then
    local msg = dist.bcast(writer and ((start or "") .. "\n" .. (dir or "")) or "")
    f.start, f.dir = msg:match("^(.-)\n(.*)$")
    if f.start == "" then f.start, f.dir = nil, nil end
  end
  if f.start == "restart" then
    io.write(string.format("resume=%s: the run stopped before its first checkpoint (no last.h5); " ..
                           "starting it again from epoch 1 in %s\n", cfg.resume, f.dir))
    io.stdout:flush()
  end
  return f
end

-- ---- recording a resume -----------------------------------------------------------

--- What a resume from a checkpoint at `step` records, rank 0's folder f
--- (M.open's) telling what log.h5 holds: the changes of arithmetic (the
--- checkpoint's, ck_arith, nil when it saved no configuration, and this
--- resume's) and of the rank count (the checkpoint's ck_ranks and this
--- resume's nranks), each said on stdout. The changes before the
--- checkpoint's step stand; one recorded at its step or later came from a
--- resume whose steps the checkpoint throws away (as it does the log rows
--- past it), unless that resume wrote the checkpoint: the arithmetic the
--- checkpoint's state comes from is that of the configuration saved with
--- it. Returns the function that writes the record into log.h5 (its
--- `resumed` count, device_changes and rank_changes) with the first log
--- flush after the resume, so that a resume that fails before it (out of
--- memory on the new device, say) leaves them as they were; nil on the
--- other ranks.
function M.record_resume(f, cfg, step, ck_arith, ck_ranks, nranks)
  local writer = dist.rank() == 0
  local change, changes
  if writer then
    local history = M.changes_before(f.old_changes or {}, step, "to")
    local arith_was = f.arith_was
    for _, c in ipairs(history) do if c.to then arith_was = c.to end end
    ck_arith = ck_arith or arith_was
    if ck_arith ~= arith_was then
      history[#history + 1] = M.change(step, arith_was, ck_arith)
      arith_was = ck_arith
    end
    change = f.arith_now ~= arith_was and M.change(step, arith_was, f.arith_now) or nil
    if change then history[#history + 1] = change end
    changes = M.changes_text(history)
    if changes == (f.old_changes_text or "") then changes = nil end
    f.arith_was = arith_was
  end
  local old_rank_changes
  if writer then
    local lf <close> = h5.open(f.dir .. "/log.h5", "r")
    old_rank_changes = lf:attr("rank_changes")
  end
  local rank_history = M.changes_before(M.parse_changes(old_rank_changes), step, "step")
  local rank_change = ck_ranks ~= nranks and M.change(step, ck_ranks, nranks .. " ranks") or nil
  if rank_change then rank_history[#rank_history + 1] = rank_change end
  local rank_changes = M.changes_text(rank_history)
  if rank_changes == (old_rank_changes or "") then rank_changes = nil end
  if rank_change and writer then
    io.write(string.format("resume=%s: %d -> %d ranks after step %d: %s\n", cfg.resume, ck_ranks,
                           nranks, step, cfg.sync_bn and
                           "BatchNorm statistics are the whole minibatch's (sync_bn), so the steps " ..
                           "from here on differ from a run left alone only in the order of sums" or
                           "the minibatches are sliced differently and the BatchNorm statistics " ..
                           "are per rank, so the steps from here on are not those of a run left alone"))
    io.stdout:flush()
  end
  if change and writer then
    io.write(string.format("resume=%s: device %s -> %s after step %d: the steps from here on use %s's " ..
                           "arithmetic (not bit-identical to a run left alone on %s)\n",
                           cfg.resume, f.arith_was, f.arith_now, step, f.arith_now, f.arith_was))
    io.stdout:flush()
  end
  return writer and function()
    local lf = h5.open(f.dir .. "/log.h5", "a", {atomic = true})
    lf:attr("resumed", (lf:attr("resumed") or 0) + 1)
    if changes then lf:attr("device_changes", changes) end
    if rank_changes then lf:attr("rank_changes", rank_changes) end
    lf:close()
  end or nil
end

return M
