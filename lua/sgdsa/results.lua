-- sgdsa.results: run folders read back for sweeps, tables and figures.
--
--   results.find(paths)       -> list of run folders (a path is a run folder,
--                                holding log.h5, or a sweep folder holding
--                                seed-<n>/ runs), or nil, message
--   results.load(dir)         -> a run record (below), or nil, message
--   results.load_all(paths)   -> list of run records, or nil, message
--   results.run_state(dir)    -> {finished=, resumable=, epochs=, epochs_total=}
--   results.brief(dir)        -> one line ("2/2 epochs, val loss .., val acc ..%")
--   results.method_label(cfg[, experiment]) -> "SGD-SA", "Scheduled-SGD", "SGD",
--                                "SSA", the label= given, else the experiment
--   results.labels(runs)      -> function(run) -> the run's label in tables
--                                and figures (below)
--   results.trainer_args(...) -> the `sgdsa run` overrides that put a run
--                                in a given folder (used by sgdsa.sweep)
--   results.parse_command(args, o, how) -> the options and run folders of
--                                `sgdsa table` and `sgdsa plot`
--   results.load_command(o, name, usage) -> their runs, or nil and the exit
--                                status after saying why
--
-- A run's method (what tables and figures group it by): the experiment's
-- `label=` when it has one; else the paper's name of a built-in optimizer
-- (sgdsa{} SGD-SA, sgd{} Scheduled-SGD or SGD, ssa{} SSA); else (a custom
-- optimizer{}) the experiment: the script's name, or the run folder's. Two
-- experiments of one method that give the same model and seed are told
-- apart as "method [experiment]" (results.labels); `--label` on `sgdsa
-- table` and `sgdsa plot` sets the method of each folder given.
--
-- A run record: {dir=, experiment=, script=, label=, method=, model=, seed=, batch=, always_accepts=,
--   epochs_total=, n= (epochs logged), config= (the stored configuration),
--   cols = {epoch=, train_loss=, train_acc=, val_loss=, val_acc=,
--           accept_prob=, accept_rate=, temperature=}}: arrays of n numbers,
--   NaN where the log has no such column; accuracies as fractions in [0, 1].
-- The layout read here is docs/FORMAT.md's (the run folder written by the
-- trainer); nothing in a file is executed.
local core = require "sgdsa.core"
local h5 = require "sgdsa.h5"

local M = {}

local NAN = 0 / 0

local function kind(p) return select(2, core.exists(p)) end
local function isdir(p) return kind(p) == "directory" end
local function isfile(p) return kind(p) == "file" end

-- ---------------------------------------------------------------------------
-- where the trainer keeps things (docs/FORMAT.md)

M.LOG = "log.h5"
M.LAST = "last.h5"
M.EPOCH_GROUP = "epochs"
M.CONFIG = "config"

-- Columns of a run record and the per-epoch log columns they come from (the
-- first one present is used: the trainer writes `temperature` and
-- `mean_prob`; FORMAT.md's table names the temperature `T`).
M.COLUMNS = {
  epoch = {"epoch"}, train_loss = {"train_loss"}, train_acc = {"train_acc"},
  val_loss = {"val_loss"}, val_acc = {"val_acc"}, accept_prob = {"mean_prob"},
  accept_rate = {"accept_rate"}, temperature = {"temperature", "T"},
}

--- The overrides for `sgdsa run` that train seed `seed` in folder `dir`
--- (= runs/<name>/seed-<n>: the trainer's out=runs/<name> name=seed-<n>),
--- resuming it from its last.h5 when `resume` is true.
function M.trainer_args(runs, name, seed, resume, dir)
  local a = {"seed=" .. seed, "out=" .. runs .. "/" .. name, "name=seed-" .. seed}
  if resume then a[#a + 1] = "resume=" .. dir end
  return a
end

-- ---------------------------------------------------------------------------
-- finding runs

local function seed_folders(dir)
  local names = core.listdir(dir)
  if not names then return {} end
  local list = {}
  for _, n in ipairs(names) do
    local s = n:match("^seed%-(%d+)$")
    if s and isdir(dir .. "/" .. n) then list[#list + 1] = {seed = tonumber(s), dir = dir .. "/" .. n} end
  end
  table.sort(list, function(a, b) return a.seed < b.seed end)
  return list
end

--- Expand run and sweep folders into run folders, in the order given (seeds
--- ascending inside a sweep).
function M.find(paths)
  local out, seen = {}, {}
  for _, p in ipairs(paths) do
    p = p:gsub("/+$", "")
    if p == "" then p = "/" end
    if not isdir(p) then return nil, string.format("%s: no such folder", p) end
    local list
    if isfile(p .. "/" .. M.LOG) then
      list = {p}
    else
      list = {}
      for _, s in ipairs(seed_folders(p)) do
        if isfile(s.dir .. "/" .. M.LOG) then list[#list + 1] = s.dir end
      end
      if #list == 0 then
        return nil, string.format("%s: not a run folder (no %s) nor a sweep folder (no seed-<n>/%s)",
                                  p, M.LOG, M.LOG)
      end
    end
    for _, d in ipairs(list) do
      if not seen[d] then seen[d] = true; out[#out + 1] = d end
    end
  end
  return out
end

-- ---------------------------------------------------------------------------
-- the stored configuration

-- The configuration is stored as text; read it without running it: a flat
-- parser for `key = value` lines and Lua-table-like text (numbers, strings,
-- booleans; nested tables kept as their text).
function M.parse_config(text)
  local cfg = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local k, v = line:match("^%s*([%w_%.]+)%s*=%s*(.-)%s*,?%s*$")
    if k and v ~= "" then
      local val
      if v:match('^".*"$') or v:match("^'.*'$") then
        val = v:sub(2, -2):gsub("\\(.)", "%1")
      elseif v == "true" or v == "false" then
        val = v == "true"
      elseif tonumber(v) then
        val = tonumber(v)
      else
        val = v
      end
      cfg[k] = val
    end
  end
  return cfg
end

--- The run's method: its label= (cfg.label), the paper's name of a
--- built-in optimizer, else `experiment` (the script's name) for a custom one.
function M.method_label(cfg, experiment)
  if type(cfg.label) == "string" and cfg.label ~= "" then return cfg.label end
  local o = tostring(cfg.optim or cfg.method or "")
  local kind = o:match("^%s*([%w_]+)")
  if kind == "sgdsa" then return "SGD-SA" end
  if kind == "sgd" then return o:find("schedule", 1, true) and "Scheduled-SGD" or "SGD" end
  if kind == "ssa" then return "SSA" end
  if experiment and experiment ~= "" then return experiment end
  if kind and kind ~= "" then return kind end
  return "unknown"
end

--- Labels for a list of run records: function(run) -> its method, or
--- "method [experiment]" where runs of two experiments share the method,
--- the model and a seed (and would be taken for seeds of one experiment).
function M.labels(runs)
  local seen, clash = {}, {}
  for _, r in ipairs(runs) do
    local key = r.method .. "\0" .. r.model .. "\0" .. tostring(r.seed)
    if seen[key] and seen[key] ~= r.experiment then clash[r.method] = true end
    seen[key] = seen[key] or r.experiment
  end
  return function(r)
    return clash[r.method] and string.format("%s [%s]", r.method, r.experiment) or r.method
  end
end

--- True when the run's optimizer accepts every move (sgd{}: the `always`
--- rule): its acceptance probability is 1 by construction.
function M.always_accepts(cfg)
  return tostring(cfg.optim or ""):match("^%s*sgd{") ~= nil
end

-- The name in a spec text `{"lenet", classes = 10}` (or a plain name).
local function spec_name(v)
  if type(v) ~= "string" then return nil end
  return v:match('^%s*{%s*"([^"]+)"') or v:match("^%s*{%s*'([^']+)'") or v:match("^([%w_%-%.]+)$")
end

-- A numeric option `key = n` inside a spec text.
local function spec_number(v, key)
  if type(v) ~= "string" then return nil end
  return tonumber(v:match("[{,]%s*" .. key .. "%s*=%s*([%d%.eE+-]+)"))
end
M.spec_name, M.spec_number = spec_name, spec_number

-- ---------------------------------------------------------------------------
-- reading a run

local function read_epochs(f)
  if not f:exists(M.EPOCH_GROUP) then return {rows = 0, data = {}} end
  return h5.read_log(f, M.EPOCH_GROUP)
end

local function first_column(data, names)
  for _, n in ipairs(names) do if data[n] then return data[n] end end
  return nil
end

--- Read a run folder into a run record.
function M.load(dir)
  local path = dir .. "/" .. M.LOG
  local ok, res = pcall(function()
    local f <close> = h5.open(path, "r")
    local text = f:exists(M.CONFIG) and f:read_text(M.CONFIG) or ""
    local cfg = M.parse_config(text)
    local log = read_epochs(f)
    local script = f:exists("script_path") and f:read_text("script_path") or ""
    return {cfg = cfg, log = log, seed = f:attr("seed"), script = script:match("([^/]+)%.lua$")}
  end)
  if not ok then return nil, string.format("%s: %s", path, tostring(res)) end
  local cfg, log = res.cfg, res.log
  local n = math.tointeger(log.rows) or 0
  local cols = {}
  for key, names in pairs(M.COLUMNS) do
    local src = first_column(log.data, names)
    local a = {}
    for i = 1, n do a[i] = src and src[i] or (key == "epoch" and i or NAN) end
    cols[key] = a
  end
  local parent, base = dir:match("^(.-)/?([^/]+)$")
  local experiment = base
  if base:match("^seed%-%d+$") and parent ~= "" then experiment = parent:match("([^/]+)$") or parent end
  local seed = math.tointeger(tonumber(cfg.seed) or tonumber(res.seed) or tonumber(base:match("^seed%-(%d+)$")))
  return {
    dir = dir, experiment = experiment, config = cfg, script = res.script,
    label = type(cfg.label) == "string" and cfg.label or nil,
    method = M.method_label(cfg, res.script or experiment), model = spec_name(cfg.model) or "model",
    always_accepts = M.always_accepts(cfg),
    seed = seed or -1, batch = spec_number(cfg.data, "batch"),
    epochs_total = math.tointeger(tonumber(cfg.epochs)),
    n = n, cols = cols,
  }
end

--- Load every run under `paths` (run or sweep folders); `labels` (a list,
--- optional) sets the method of the runs under each path, in order.
function M.load_all(paths, labels)
  local runs = {}
  for i, p in ipairs(paths) do
    local dirs, err = M.find({p})
    if not dirs then return nil, err end
    for _, d in ipairs(dirs) do
      local r, rerr = M.load(d)
      if not r then return nil, rerr end
      if labels and labels[i] then r.method, r.label = labels[i], labels[i] end
      local dup = false
      for _, q in ipairs(runs) do if q.dir == r.dir then dup = true end end
      if not dup then runs[#runs + 1] = r end
    end
  end
  return runs
end

-- Whether word a is option `name`, alone or as name=value.
local function exact_opt(a, name) return a == name or a:sub(1, #name + 1) == name .. "=" end

--- The words of a command over run folders (`sgdsa table`, `sgdsa plot`)
--- into the table o: -h or --help sets o.help; -o FILE or --output FILE
--- o.output; each --label TEXT adds to o.labels; how.choices[name] =
--- {key, set, hint}: option `name` sets o[key] to a value that is a key of
--- `set`, else the message "NAME VALUE: HINT"; how.option(o, word, value)
--- takes any other option and returns true, or returns false (unknown), or
--- nil and a message. value() is an option's value (after "=", else the next
--- word). how.is_opt(word, name) says whether word is that option (default:
--- alone or as name=value); how.dash: "-" alone is a folder, not an option.
--- The other words are the folders, o.folders. Returns o, or nil and a message.
function M.parse_command(args, o, how)
  local is_opt = how.is_opt or exact_opt
  local option = how.option or function() return false end
  o.folders, o.labels = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local function value()
      local v = a:match("^%-%-?[%w-]+=(.*)$")
      if v then return v end
      i = i + 1
      return args[i]
    end
    local choice, cname
    for name, c in pairs(how.choices or {}) do
      if is_opt(a, name) then choice, cname = c, name end
    end
    if a == "--help" or a == "-h" then
      o.help = true
    elseif a == "-o" or is_opt(a, "--output") then
      o.output = value()
      if not o.output or o.output == "" then return nil, "-o needs a file name" end
    elseif is_opt(a, "--label") then
      local v = value()
      if not v or v == "" then return nil, "--label needs a text" end
      o.labels[#o.labels + 1] = v
    elseif choice then
      local v = value()
      if not choice[2][v or ""] then return nil, string.format("%s %s: %s", cname, tostring(v), choice[3]) end
      o[choice[1]] = v
    elseif a:sub(1, 1) == "-" and not (how.dash and a == "-") then
      local took, err = option(o, a, value)
      if took == nil then return nil, err end
      if not took then return nil, string.format("unknown option %q", a) end
    else
      o.folders[#o.folders + 1] = a
    end
    i = i + 1
  end
  return o
end

--- The runs of the folders of a command (results.parse_command's o), a
--- method per folder from --label (one per folder, or none). On a count of
--- labels that does not match: nil, usage(message) (the command's usage
--- error); on a folder that cannot be read: the message after `name` on
--- stderr, nil, 1.
function M.load_command(o, name, usage)
  if #o.labels > 0 and #o.labels ~= #o.folders then
    return nil, usage(string.format("%d --label for %d folders: give one per folder, in their order",
                                    #o.labels, #o.folders))
  end
  local runs, err = M.load_all(o.folders, o.labels)
  if not runs then
    io.stderr:write(name, ": ", err, "\n")
    return nil, 1
  end
  return runs
end

--- Whether a run folder holds a finished run, or one that can be resumed.
function M.run_state(dir)
  local st = {finished = false, resumable = isfile(dir .. "/" .. M.LAST), epochs = 0}
  if not isfile(dir .. "/" .. M.LOG) then return st end
  local r = M.load(dir)
  if not r then return st end
  st.epochs, st.epochs_total = r.n, r.epochs_total
  st.finished = r.epochs_total ~= nil and r.n >= r.epochs_total
  return st
end

--- One line about a run folder, or nil when it has no readable log.
function M.brief(dir)
  if not isfile(dir .. "/" .. M.LOG) then return nil end
  local r = M.load(dir)
  if not r or r.n == 0 then return nil end
  -- A run resumed with more epochs keeps its first configuration: never n/less.
  local total = r.epochs_total and math.max(r.epochs_total, r.n)
  return string.format("%d/%s epochs, val loss %.4f, val acc %.2f%%", r.n,
                       total and tostring(total) or "?",
                       r.cols.val_loss[r.n], r.cols.val_acc[r.n] * 100)
end

return M
