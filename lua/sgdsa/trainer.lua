-- sgdsa.trainer: trains an experiment table with the search loop, writes the
-- run folder, resumes bit-identically.
--
--   return {                                   -- an experiment script
--     model  = {"lenet", classes = 10},        -- sgdsa.models.<name> + options,
--                                              -- or a function() -> model
--     data   = {"fashion_mnist", batch = 128}, -- sgdsa.data.<name> + options,
--                                              -- or a function() -> data, or a data object
--     optim  = sgdsa.optim.sgdsa{H = {...}, T0 = 1, alpha = 0.8},
--     epochs = 10, seed = 0,
--     args   = {margin = 0.3},                 -- the script's own keys (optional)
--   }
--   sgdsa run SCRIPT seed=3 epochs=5 optim.T0=0.5 data.limit=2000 name=try1 margin=0.5
--   sgdsa run SCRIPT --help                    -- the script's keys and the trainer's
--   sgdsa resume runs/try1                     -- = sgdsa run SCRIPT resume=runs/try1 ...
--
-- trainer.train(exp, overrides) -> result table; trainer.run(exp, overrides)
-- -> exit status (0, or 130 when stopped by Ctrl-C/SIGTERM), for `sgdsa run`.
--
-- The model and the data are built after the seed is set (specs and
-- functions), so `seed=` decides the initial weights and the data order.
-- Every epoch: validation (data.val, else data.test), per-epoch log, best
-- weights on validation accuracy (best.h5), checkpoint (last.h5). Logs and
-- checkpoints follow docs/FORMAT.md. The logs are flushed BEFORE each
-- checkpoint, so the log always holds at least the checkpoint's steps; a
-- resume truncates it to the checkpoint and continues, so the finished log
-- has no duplicate or missing rows. A resume of a run that died before its
-- first checkpoint starts it again from epoch 1 in its folder. The run
-- folder is locked for the life of the run (M.claim_folder).
--
-- Data-parallel (`mpirun -np N sgdsa run SCRIPT`; sgdsa.dist): every rank
-- builds the same model and data from the same seed, its loaders make its
-- slice of every minibatch, and the search loop sums what decides a step
-- over the ranks, so all ranks hold the same state. Rank 0 claims, checks
-- and writes the run folder and prints; the others read the checkpoint to
-- resume and print only errors. Hooks run on every rank (ctx.rank,
-- ctx.ranks). `sync_bn` chooses the BatchNorm statistics; `ranks` checks
-- the launch; a resume may change the rank count (log.h5's rank_changes).
local sg = require "sgdsa"
local core = require "sgdsa.core"
local optim = require "sgdsa.optim"
local search = require "sgdsa.search"
local h5 = require "sgdsa.h5"
local folder = require "sgdsa.trainer.folder"
local state = require "sgdsa.trainer.state"
local progress = require "sgdsa.progress"
local options = require "sgdsa.options"
local dist = require "sgdsa.dist"

local M = {}

-- SGDSA_TRAINER_CRASH=<point>:<n> makes the process SIGKILL itself at one
-- named point between the writes of the run folder (tests/lua/test_resume.lua's
-- deterministic crash windows; unset, nothing happens). Points:
--   mid_checkpoint:<step>  right after a mid-epoch last.h5 written after step n
--   epoch_logs:<epoch>     after the epoch's log flush, before best.h5 and last.h5
--   best:<epoch>           after the epoch's best.h5, before its last.h5
--   resumed:<step>         after resuming from a checkpoint at step n (logs
--                          truncated), before the first step
local CRASH = os.getenv("SGDSA_TRAINER_CRASH")
local function crash_point(point, n)
  if CRASH and CRASH == point .. ":" .. tostring(n) then
    io.stdout:flush(); io.stderr:flush()
    os.execute("kill -9 " .. core.getpid())
    while true do core.sleep(1) end
  end
end

-- The experiment's fields, with what each one is (for the error on an unknown key).
M.FIELDS = {
  model = "spec {\"name\", opts...} (sgdsa.models.<name>), function() -> model, or a model",
  data = "spec {\"name\", opts...} (sgdsa.data.<name>), function() -> data, or a data object",
  optim = "an optimizer from sgdsa.optim (default: sgdsa.optim.sgdsa with the paper's H)",
  criterion = "the loss module (default sgdsa.nn.CrossEntropy())",
  epochs = "number of epochs (default 10)",
  seed = "the run's seed, an integer >= 0 (default 0)",
  device = "\"cpu\" (default) or \"cuda\"",
  tf32 = "device = \"cuda\": TF32 tensor cores in convolutions and GEMMs (default false: fp32 as on the CPU)",
  deterministic = "device = \"cuda\": cuDNN algorithms that are deterministic and chosen the same way in every process, so a run and its resumes repeat bit for bit (default true); false: the fastest ones, timed by cuDNN",
  threads = "CPU threads (default: as set)",
  name = "run folder name under `out`: one plain folder name, no '/' (default: the label or the script's name, and the time)",
  label = "what the experiment is, in `sgdsa table`, `sgdsa plot` and `sgdsa inspect` (default: the paper's name of a built-in optimizer, else the script's name)",
  out = "folder of run folders (default \"runs\"); false: write nothing",
  hooks = "{on_start=, on_epoch_start=, on_step=, on_epoch_end=, on_end=} (on every rank of a data-parallel run: ctx.rank, ctx.ranks)",
  checkpoint = "{every = epochs (1), minutes = m (off), best = true}",
  resume = "a run folder to continue from its last.h5 (without one: to start again from epoch 1 in it), with the run's script and overrides (device, tf32 and deterministic may change: recorded in log.h5's device_changes)",
  progress = "\"auto\" (bar on a terminal, lines otherwise), \"bar\", \"lines\" or \"off\"",
  log_steps = "write the per-step log to log.h5 (default true)",
  max_steps = "stop each epoch after this many steps (quick tests)",
  args = "the script's own keys: {name = default, ...} or {name = {default =, type =, help =}}; typed and checked like the trainer's (an integer default takes integers; write 1.0 for a number), listed by `sgdsa run SCRIPT --help`, recorded in the configuration; the script reads them from `...` (sgdsa.args)",
  sync_bn = "data-parallel runs (mpirun -np N): BatchNorm statistics of the whole minibatch, summed over the ranks (true; CPU only), or each rank's own (false, the default)",
  ranks = "the number of ranks the run must be launched with (mpirun -np N); an error otherwise (default: any)",
}
M.CHECKPOINT_KEYS = {"every", "minutes", "best"}
M.STREAMS = state.STREAMS
-- The run folder's lock file and its claim (sgdsa.trainer.folder).
M.LOCK = folder.LOCK
M.claim_folder = folder.claim

-- Log columns: docs/FORMAT.md's, then ours (objective: what the acceptance
-- test compares, = the loss unless objective = "error"; prob: acceptance
-- probability clipped to 1; nonfinite: the trial's objective was NaN/inf).
M.STEP_FIELDS = {{"epoch", "int64"}, {"step", "int64"}, "eta", "T", "loss", "trial_loss",
                 {"accepted", "int64"}, "objective", "trial_objective", "worsening", "prob",
                 {"nonfinite", "int64"}}
M.EPOCH_FIELDS = {{"epoch", "int64"}, {"step", "int64"}, "T", "train_loss", "train_acc",
                  "val_loss", "val_acc", "accept_rate", "seconds", "mean_prob",
                  {"nonfinite", "int64"}, "images_per_s", {"epoch_steps", "int64"}}

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b) return tostring(a) < tostring(b) end)
  return ks
end

local function fail(fmt, ...) error(string.format("trainer: " .. fmt, ...), 0) end

local function allowed_list()
  return table.concat(options.names(M.FIELDS), ", ")
end

-- The error for an unknown experiment field or override k (how: sgdsa.options.unknown's)
local function unknown_field(k, noun, how)
  how = how or {}
  how.noun, how.quote = noun, "%q"
  error(options.unknown("trainer", k, M.FIELDS, how), 0)
end

-- A run name is one plain folder name: not empty, no '/', not "." or "..".
local function check_name(name)
  if math.type(name) == "integer" then name = tostring(name) end
  if type(name) ~= "string" then fail("name must be a folder name (a string), got %s", tostring(name)) end
  if name == "" or name == "." or name == ".." or name:find("/", 1, true) or name:find("%c") then
    fail("name must be a plain folder name (not empty, no '/', not '.' or '..', no control characters), got %q", name)
  end
  return name
end

-- ---- configuration --------------------------------------------------------------

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- ---- the script's own keys (the experiment's args) ------------------------

local ARG_TYPES = {number = true, integer = true, string = true, boolean = true}

local function arg_type_ok(v, ty)
  if ty == "integer" then return math.type(v) == "integer" end
  return type(v) == ty
end

--- The script's declared keys: name -> {type=, default=, help=}, from the
--- experiment's `args` table ({name = default} or {name = {default =,
--- type =, help =}}); an error for a bad declaration.
function M.declared_args(decl)
  if decl == nil then return {} end
  if type(decl) ~= "table" then fail("args must be a table {name = default, ...}, got %s", type(decl)) end
  local out = {}
  for k, d in pairs(decl) do
    if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") then
      fail("args: %s is not a plain name (letters, digits, _)", tostring(k))
    end
    if M.FIELDS[k] then fail("args.%s: %s is the trainer's own key (%s)", k, k, M.FIELDS[k]) end
    local a
    if type(d) == "table" then
      options.check_table(d, {"default", "type", "help"}, "trainer: args." .. k)
      a = {default = d.default, type = d.type, help = d.help}
    else
      a = {default = d}
    end
    if a.type == nil then
      if a.default == nil then fail("args.%s: give a default or a type", k) end
      a.type = math.type(a.default) == "integer" and "integer" or type(a.default)
    end
    if not ARG_TYPES[a.type] then
      fail("args.%s: the type must be number, integer, string or boolean, got %s", k, tostring(a.type))
    end
    if a.default ~= nil and not arg_type_ok(a.default, a.type) then
      fail("args.%s: the default %s is not of its type (%s)", k, tostring(a.default), a.type)
    end
    out[k] = a
  end
  return out
end

-- The value of the script's key `k` given on the command line, typed as
-- declared (a number is the text of a string key), or an error.
local function arg_value(k, a, v)
  if a.type == "string" and type(v) == "number" then v = tostring(v) end
  if a.type == "number" and math.type(v) == "integer" then v = v + 0.0 end
  if not arg_type_ok(v, a.type) then
    fail("%s=%s: %s is a%s %s (the script's args%s)", k, tostring(v), k,
         a.type == "integer" and "n" or "", a.type,
         a.default ~= nil and (", default " .. optim.format(a.default)) or "")
  end
  return v
end

-- ---- nested overrides -----------------------------------------------------

local function is_optimizer(v)
  return type(v) == "table" and type(v.with) == "function" and type(v.args) == "table" and v.kind ~= nil
end

local function is_builtin_piece(v)
  return type(v) == "table" and rawget(v, "kind") ~= nil and rawget(v, "options") ~= nil
         and optim.pieces[rawget(v, "kind")] ~= nil
end

-- value with the key path parts[i..] set to v, for the override `key`: an
-- optimizer or a built-in piece is built again with the changed option, a
-- spec or an options table is copied with it, a user-written piece gets the
-- field (one it has, of the same type) set in place.
local function with_path(value, parts, i, v, key)
  local k = parts[i]
  local last = i == #parts
  local where = table.concat(parts, ".", 1, i - 1)
  if is_optimizer(value) then
    if value.kind == "optimizer" and last and k ~= "objective" and k ~= "score" then
      local owner
      for _, role in ipairs{"acceptance", "neighborhood"} do
        local p = value.args[role]
        local opts = type(p) == "table" and (rawget(p, "options") or p)
        if type(opts) == "table" and opts[k] ~= nil and type(opts[k]) ~= "function" then owner = owner or role end
      end
      fail("override %s: %s; the options of its pieces are %s.neighborhood.<key> and %s.acceptance.<key>%s",
           key, options.unknown("optim.optimizer", k, {"acceptance", "neighborhood", "objective", "score"}),
           where, where, owner and string.format(" (%s.%s.%s=)", where, owner, k) or "")
    end
    local sub = last and v or with_path(value.args[k], parts, i + 1, v, key)
    local ok, o = pcall(value.with, value, {[k] = sub})
    if not ok then fail("override %s: %s", key, tostring(o):gsub("^[^:]*:%d+: ", "")) end
    return o
  end
  if is_builtin_piece(value) then
    local opts = copy(value.options)
    opts = with_path(opts, parts, i, v, key)
    local ok, p = pcall(optim[rawget(value, "kind")], opts)
    if not ok then fail("override %s: %s", key, tostring(p):gsub("^[^:]*:%d+: ", "")) end
    return p
  end
  if type(value) == "table" and (type(value.propose) == "function" or type(value.decide) == "function") then
    -- a user-written piece: one of its fields, as it is (its memory, its parameters)
    local cur = rawget(value, k)
    if cur == nil or type(cur) == "function" then
      local fields = {}
      for f, x in pairs(value) do
        if type(f) == "string" and type(x) ~= "function" and not f:match("^_") and f ~= "name" then fields[#fields + 1] = f end
      end
      table.sort(fields)
      fail("override %s: %s (written in the script) has no field %q to set (its fields: %s)%s", key, where, k,
           #fields > 0 and table.concat(fields, ", ") or "none", options.did_you_mean(k, fields))
    end
    if last then
      if type(cur) ~= type(v) then
        fail("override %s: %s.%s is a %s, got %s", key, where, k, type(cur), tostring(v))
      end
      value[k] = v
    else
      value[k] = with_path(cur, parts, i + 1, v, key)
    end
    return value
  end
  if value == nil or type(value) == "table" then
    local t = copy(value or {})
    t[k] = last and v or with_path(t[k], parts, i + 1, v, key)
    return t
  end
  fail("override %s: %s is a %s, not a table with options", key, where, type(value))
end

--- Merge the experiment table and the overrides (key=value; dotted keys for
--- nested fields at any depth: optim.T0=, optim.acceptance.T0=,
--- data.augment.crop=) into a checked configuration. The script's own keys
--- (exp.args) are typed and checked, and recorded as cfg.args.
function M.configure(exp, overrides)
  if type(exp) ~= "table" then fail("the experiment must be a table, got %s", type(exp)) end
  local bad = options.unknown_key(exp, M.FIELDS)
  if bad ~= nil then unknown_field(bad, "experiment field") end
  local cfg = copy(exp)
  -- plain keys first, then dotted ones (so optim= then optim.T0= compose)
  local plain, dotted = {}, {}
  for k, v in pairs(overrides or {}) do
    if math.type(k) == "integer" then
      fail("positional argument %q is not understood (use key=value; allowed keys: %s)", tostring(v), allowed_list())
    end
    if type(k) ~= "string" then fail("override key %s is not a string", tostring(k)) end
    if k:find(".", 1, true) then dotted[#dotted + 1] = k else plain[#plain + 1] = k end
  end
  table.sort(plain); table.sort(dotted)
  local declared = M.declared_args(cfg.args)
  local values = {}
  for k, a in pairs(declared) do values[k] = a.default end
  for _, k in ipairs(plain) do
    if declared[k] then
      values[k] = arg_value(k, declared[k], overrides[k])
    elseif M.FIELDS[k] == nil or k == "args" then
      local names = options.names(declared)
      local all = options.names(M.FIELDS)
      for _, n in ipairs(names) do all[#all + 1] = n end
      unknown_field(k, "override", {candidates = all,
        more = #names > 0 and ("; the script's: " .. table.concat(names, ", ")) or "; the script declares none: " ..
               "return args = {" .. k .. " = <default>} in its experiment to add it"})
    elseif k == "model" or k == "data" then
      cfg[k] = {overrides[k]}       -- model=lenet: the spec {"lenet"}
    elseif k == "optim" then
      fail("optim cannot be set from the command line; override its options instead (optim.T0=0.5)")
    else
      cfg[k] = overrides[k]
    end
  end
  for _, k in ipairs(dotted) do
    local head = k:match("^([^.]+)%.")
    local v = overrides[k]
    local parts = {}
    for p in k:gmatch("[^.]+") do parts[#parts + 1] = p end
    if #parts < 2 or k:find("..", 1, true) or k:sub(-1) == "." then fail("override %q: an empty key between the dots", k) end
    if head == "optim" then
      local o = cfg.optim or M.default_optim()
      if not is_optimizer(o) then
        fail("override %q: this optim was not built by an sgdsa.optim constructor, so it has no options to change", k)
      end
      cfg.optim = with_path(o, parts, 2, v, k)
    elseif head == "checkpoint" then
      if #parts > 2 then fail("override %q: checkpoint's options are one level deep (checkpoint.every=)", k) end
      cfg.checkpoint = copy(cfg.checkpoint or {})
      cfg.checkpoint[parts[2]] = v
    elseif head == "model" or head == "data" then
      local spec = cfg[head]
      if type(spec) ~= "table" or type(spec[1]) ~= "string" then
        fail("override %q: %s is not a spec table {\"name\", key = value...}, so its options cannot be overridden", k, head)
      end
      cfg[head] = with_path(spec, parts, 2, v, k)
    elseif M.FIELDS[head] == nil then
      unknown_field(k, "override", {near = head})
    else
      fail("override %q: %s has no options", k, head)
    end
  end
  cfg.args = next(values) and values or nil
  -- defaults and checks
  cfg.epochs = cfg.epochs or 10
  if math.type(cfg.epochs) ~= "integer" or cfg.epochs < 1 then
    fail("epochs must be a positive integer, got %s", tostring(cfg.epochs))
  end
  cfg.seed = cfg.seed or 0
  if math.type(cfg.seed) ~= "integer" or cfg.seed < 0 then
    fail("seed must be a non-negative integer, got %s", tostring(cfg.seed))
  end
  if cfg.name ~= nil then cfg.name = check_name(cfg.name) end
  cfg.device = cfg.device or "cpu"
  if cfg.device ~= "cpu" and cfg.device ~= "cuda" then
    fail("device must be \"cpu\" or \"cuda\", got %s", tostring(cfg.device))
  end
  for _, k in ipairs{"tf32", "deterministic"} do
    if cfg[k] ~= nil and type(cfg[k]) ~= "boolean" then
      fail("%s must be true or false, got %s", k, tostring(cfg[k]))
    end
  end
  if cfg.device == "cuda" then
    -- (set on the GPU only: a cpu run's configuration, and its resume check, stay as they were)
    if cfg.tf32 == nil then cfg.tf32 = false end
    if cfg.deterministic == nil then cfg.deterministic = true end
  end
  if cfg.threads ~= nil and (math.type(cfg.threads) ~= "integer" or cfg.threads < 1) then
    fail("threads must be a positive integer, got %s", tostring(cfg.threads))
  end
  cfg.progress = cfg.progress or "auto"
  local pm = {auto = true, bar = true, lines = true, off = true}
  if not pm[cfg.progress] then
    fail("progress must be \"auto\", \"bar\", \"lines\" or \"off\", got %s", tostring(cfg.progress))
  end
  if cfg.out == nil then cfg.out = "runs" end
  if cfg.out ~= false and type(cfg.out) ~= "string" then fail("out must be a folder name or false") end
  if cfg.log_steps == nil then cfg.log_steps = true end
  if type(cfg.log_steps) ~= "boolean" then fail("log_steps must be true or false, got %s", tostring(cfg.log_steps)) end
  if cfg.max_steps ~= nil and (math.type(cfg.max_steps) ~= "integer" or cfg.max_steps < 1) then
    fail("max_steps must be a positive integer, got %s", tostring(cfg.max_steps))
  end
  if cfg.sync_bn ~= nil and type(cfg.sync_bn) ~= "boolean" then
    fail("sync_bn must be true or false, got %s", tostring(cfg.sync_bn))
  end
  if cfg.ranks ~= nil and (math.type(cfg.ranks) ~= "integer" or cfg.ranks < 1) then
    fail("ranks must be a positive integer, got %s", tostring(cfg.ranks))
  end
  local ck = copy(cfg.checkpoint or {})
  options.check_table(ck, M.CHECKPOINT_KEYS, "trainer: checkpoint")
  ck.every = ck.every or 1
  if math.type(ck.every) ~= "integer" or ck.every < 0 then
    fail("checkpoint.every must be an integer >= 0 (epochs; 0 = only at the end), got %s", tostring(ck.every))
  end
  if ck.minutes ~= nil and (type(ck.minutes) ~= "number" or not (ck.minutes > 0)) then
    fail("checkpoint.minutes must be a positive number, got %s", tostring(ck.minutes))
  end
  if ck.best == nil then ck.best = true end
  if type(ck.best) ~= "boolean" then fail("checkpoint.best must be true or false, got %s", tostring(ck.best)) end
  cfg.checkpoint = ck
  local hooks = cfg.hooks or {}
  options.check_table(hooks, {"on_start", "on_epoch_start", "on_step", "on_epoch_end", "on_end"}, "trainer: hooks")
  for k, f in pairs(hooks) do
    if type(f) ~= "function" then fail("hooks.%s must be a function, got %s", k, type(f)) end
  end
  cfg.hooks = hooks
  if cfg.label ~= nil and (type(cfg.label) ~= "string" or cfg.label == "") then
    fail("label must be a text, got %s", tostring(cfg.label))
  end
  if cfg.resume ~= nil and type(cfg.resume) ~= "string" then
    fail("resume must be a run folder (runs/<name>), got %s", tostring(cfg.resume))
  end
  cfg.optim = cfg.optim or M.default_optim()
  if type(cfg.optim) ~= "table" or cfg.optim.neighborhood == nil or cfg.optim.acceptance == nil then
    fail("optim must come from sgdsa.optim (sgdsa{}, sgd{}, ssa{}, optimizer{})")
  end
  if cfg.model == nil then fail("the experiment has no model (allowed fields: %s)", allowed_list()) end
  if cfg.data == nil then fail("the experiment has no data (allowed fields: %s)", allowed_list()) end
  return cfg
end

--- The paper's SGD-SA settings.
function M.default_optim()
  return optim.sgdsa{H = {0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.09, 0.08, 0.07, 0.06, 0.05},
                     T0 = 1, alpha = 0.8}
end

-- A readable, deterministic text of a value (the resolved config).
local function show(v, indent)
  indent = indent or ""
  local ty = type(v)
  if ty == "string" then return string.format("%q", v) end
  if ty == "number" then
    return optim.format(v)
  end
  if ty == "boolean" or ty == "nil" then return tostring(v) end
  if ty == "function" then return "<function>" end
  if ty == "table" then
    if getmetatable(v) and v.describe and v.kind then return v:describe() end
    if v.params and v.forward then return "<model>" end
    if v.train and v.info then return "<data>" end
    local parts = {}
    for i = 1, #v do parts[#parts + 1] = show(v[i], indent .. "  ") end
    for _, k in ipairs(sorted_keys(v)) do
      if not (math.type(k) == "integer" and k >= 1 and k <= #v) then
        parts[#parts + 1] = tostring(k) .. " = " .. show(v[k], indent .. "  ")
      end
    end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  return "<" .. ty .. ">"
end
M.show = show

-- The resolved configuration as text, one top-level key per line.
function M.config_text(cfg)
  local lines = {}
  for _, k in ipairs(sorted_keys(cfg)) do
    if k ~= "hooks" or next(cfg.hooks) then lines[#lines + 1] = k .. " = " .. show(cfg[k]) end
  end
  return table.concat(lines, "\n") .. "\n"
end

-- ---- building the parts ---------------------------------------------------------

-- A part of the experiment (the model, the data) from its spec: a
-- function's result, {"name", key = value...} built by the constructor that
-- ctor_of(name) gives with the options, or the value as it is.
local function build(spec, ctor_of)
  if type(spec) == "function" then return spec() end
  if type(spec) == "table" and type(spec[1]) == "string" then
    local opts = copy(spec)
    local name = table.remove(opts, 1)
    return ctor_of(name)(opts)
  end
  return spec
end

local function model_ctor(name)
  local ctor, err = sg.models.find(name)
  if not ctor then fail("%s", (err:gsub("^sgdsa%.models: no model", "unknown model"))) end
  return ctor
end

local function data_ctor(name)
  local ctor = sg.data[name]
  if type(ctor) ~= "function" then
    local names = {}
    for k, v in pairs(sg.data) do if type(v) == "function" then names[#names + 1] = k end end
    table.sort(names)
    fail("unknown data set %q (sgdsa.data has: %s)%s", name, table.concat(names, ", "),
         options.did_you_mean(name, names))
  end
  return ctor
end

local function check_model(m)
  if type(m) ~= "table" or not (m.params and m.grads and m.forward and m.backward and m.named_tensors) then
    fail("the model does not follow the model contract (params, grads, forward, backward, named_tensors; docs/ARCHITECTURE.md)")
  end
end

-- A BatchNorm network trained on a last batch far smaller than the others
-- takes a noisy step on few images' statistics at the end of every epoch
-- (and SGD-SA scores it on them): the warning that says so, with the two
-- ways out, or nil.
function M.last_batch_warning(model, train)
  if not (train.size and train.batch_size) then return nil end
  local size, batch = train:size(), train:batch_size()
  local last = size % batch
  if last == 0 or last * 4 >= batch then return nil end
  local bn = false
  for _, e in ipairs(model:named_tensors()) do
    if e.name:match("running_mean$") then bn = true; break end
  end
  if not bn then return nil end
  return string.format(
    "warning: the last training batch of every epoch has %d images (%d = %d x %d + %d) and %s has " ..
    "BatchNorm: its statistics on %d images make a noisy last step; set data.drop_last=true or a " ..
    "data.limit that is a multiple of %d\n", last, size, size // batch, batch, last,
    model.name or "the model", last, batch)
end

-- ---- validation -------------------------------------------------------------------

-- Loader options for a run on `device`: batches come in two pairs of reused
-- tensors on the device, batch k+1 taken from the loader when batch k is
-- handed out (sgdsa.data's {lookahead=}): on the GPU its copy runs while step
-- k computes; train:state() (the checkpoint's position) does not count it.
-- x:to(device) below is then a no-op (it still moves batches of loaders that
-- ignore the options).
local function loader_opts(device)
  return {device = device, lookahead = true}
end

-- The loss and accuracy over the loader's images; on the ranks of a
-- data-parallel run each one scores its slice of every batch (the loader is
-- sharded) and the sums are taken over the ranks.
local function validate(model, crit, loader, device)
  if not loader then return 0 / 0, 0 / 0 end
  local loss_sum, correct, n = 0, 0, 0
  for x, y in loader:epoch(1, loader_opts(device)) do
    local b = y:size(1)
    if b > 0 then   -- (a rank's slice of a short last batch may be empty)
      if device ~= "cpu" then x, y = x:to(device), y:to(device) end
      local loss, nc = crit:forward(model:forward(x, "infer"), y, "infer")
      loss_sum, correct, n = loss_sum + loss * b, correct + nc, n + b
    end
  end
  if dist.active() then
    local s = {loss_sum, correct, n}
    dist.allsum(s)
    loss_sum, correct, n = s[1], s[2], s[3]
  end
  if n == 0 then return 0 / 0, 0 / 0 end
  return loss_sum / n, correct / n
end

-- A data-parallel run: every loader cut into one slice per rank, and the
-- training batches checked (every rank needs images in every batch).
local function shard_data(train, val, ranks)
  for _, l in ipairs{train, val} do
    if type(l.shard) ~= "function" then
      fail("a data-parallel run (%d ranks) needs loaders that can be sharded (sgdsa.data's); " ..
           "this data's loaders have no shard method", ranks)
    end
    l:shard(dist.rank(), ranks)
  end
  local batch, size = train:batch_size(), train:size()
  if batch < ranks then
    fail("the minibatch of %d images is smaller than the %d ranks: every rank needs images " ..
         "(data.batch >= %d)", batch, ranks, ranks)
  end
  local last = size % batch
  if last > 0 and last < ranks then
    fail("the last training minibatch of every epoch has %d image(s) (%d = %d x %d + %d), fewer " ..
         "than the %d ranks: set data.drop_last=true or a data.limit that is a multiple of %d",
         last, size, size // batch, batch, last, ranks, batch)
  end
end

-- ---- setting a run up ---------------------------------------------------------------

-- The device of cfg made ready (CUDA's settings), or an error naming what is missing.
local function setup_device(cfg, nranks)
  if cfg.ranks and cfg.ranks ~= nranks then
    if not dist.built() then
      fail("ranks = %d: this sgdsa was built without MPI, so a run has one rank; install MPI " ..
           "(tools/install-deps --test, or apt-get install openmpi-bin libopenmpi-dev), build " ..
           "again and launch the run with `mpirun -np %d sgdsa run ...`", cfg.ranks, cfg.ranks)
    end
    fail("ranks = %d, but the run was launched with %d rank%s: launch it with `mpirun -np %d sgdsa run ...`",
         cfg.ranks, nranks, nranks == 1 and "" or "s", cfg.ranks)
  end
  if cfg.sync_bn and cfg.device == "cuda" and nranks > 1 then
    fail("sync_bn = true runs on the CPU only; on the GPU the ranks use their own BatchNorm " ..
         "statistics (sync_bn = false)")
  end
  if cfg.device == "cuda" then
    local ok, why = core.cuda.available()
    if not ok then
      fail("device = \"cuda\": no usable GPU (%s); run with device = \"cpu\"", tostring(why))
    end
    core.cuda.set_tf32(cfg.tf32)
    core.cuda.set_deterministic(cfg.deterministic)
  end
end

-- The experiment's data (on the GPU, its loaders hand out batches in pinned
-- memory for asynchronous copies), checked, with its sizes said.
local function load_data(cfg, model)
  local data
  local data_t0 = core.time()
  progress.note(cfg.progress, string.format("loading data %s ... ", type(cfg.data) == "table"
                and type(cfg.data[1]) == "string" and cfg.data[1] or "(the experiment's)"), true)
  if cfg.device == "cuda" then
    local prev = core.cuda.use_pinned_loader_memory(true)
    local ok, d = pcall(build, cfg.data, data_ctor)
    core.cuda.use_pinned_loader_memory(prev)
    if not ok then error(d, 0) end
    data = d
  else
    data = build(cfg.data, data_ctor)
  end
  if type(data) ~= "table" or not data.train then
    progress.note(cfg.progress, "")
    fail("data must give a table with a train loader (and test or val), got %s", type(data))
  end
  local function count(l) return l and l.size and l:size() or nil end
  local ntrain, nval = count(data.train), count(data.val or data.test)
  progress.note(cfg.progress, string.format("%s%s(%.1f s)", ntrain and (ntrain .. " training images, ") or "",
                                            nval and (nval .. " for validation ") or "", core.time() - data_t0))
  if data.check_input and model.input_shape then
    -- images of the wrong size for the model: an error naming both shapes
    local ok, err = pcall(data.check_input, model.input_shape, model.name or "model")
    if not ok then fail("%s", tostring(err):gsub("^[^:]*:%d+: ", "")) end
  end
  return data
end

-- The run of a configuration: its model, data, search and ranks, built in
-- this order after the seed is set (the seed decides the initial weights
-- and the data order).
local function prepare(cfg)
  if cfg.threads then core.set_num_threads(cfg.threads) end
  sg.manual_seed(cfg.seed)
  local run = {cfg = cfg, cfgtext = M.config_text(cfg), nranks = dist.size(), writer = dist.rank() == 0}
  setup_device(cfg, run.nranks)
  -- the run folder's name now (not in the configuration's text): said
  -- before the data load, claimed after it
  if not cfg.resume and cfg.out and not cfg.name then cfg.name = folder.default_name(cfg.label) end
  if cfg.resume or cfg.out then
    progress.note(cfg.progress, string.format("run folder %s%s", cfg.resume and cfg.resume:gsub("(.)/+$", "%1")
                                              or (cfg.out .. "/" .. cfg.name), cfg.resume and " (resuming it)" or ""))
  end
  local model = build(cfg.model, model_ctor)
  check_model(model)
  if cfg.device ~= "cpu" then model:to(cfg.device) end
  local data = load_data(cfg, model)
  run.model, run.data, run.train, run.val = model, data, data.train, data.val or data.test
  -- this rank's slice of each minibatch within the whole one (Dropout's mask)
  run.shard = {offset = 0, total = 0}
  if run.nranks > 1 then
    shard_data(run.train, run.val, run.nranks)
    model:data_parallel{sync_bn = cfg.sync_bn, shard = run.shard}
  end
  run.crit = cfg.criterion or require("sgdsa.nn").CrossEntropy()
  local opt = cfg.optim:with{}          -- fresh pieces: no state shared between runs
  run.S = search.new{model = model, criterion = run.crit, optim = opt, dist = dist, sync_bn = cfg.sync_bn}
  local warning = M.last_batch_warning(model, run.train)
  if warning and run.writer then io.stderr:write(warning) end
  run.tr = {epoch = 1, mid_epoch = false, best_acc = -1, best_epoch = 0, best_loss = 0 / 0,
            step_rows = 0, epoch_rows = 0, elapsed = 0}
  -- in-memory logs for hooks
  run.logs = {steps = {}, epochs = {}}
  for _, fd in ipairs(M.STEP_FIELDS) do run.logs.steps[type(fd) == "table" and fd[1] or fd] = {} end
  return run
end

-- The logs of the run folder (rank 0's), appended to as the run goes.
local function open_logs(run)
  if run.dir and run.writer then
    if run.cfg.log_steps then run.steplog = h5.log(run.dir .. "/log.h5", "steps", M.STEP_FIELDS) end
    run.epochlog = h5.log(run.dir .. "/log.h5", "epochs", M.EPOCH_FIELDS)
  end
end

-- A resume (or a restart, which begins at step 0 as a run left alone does:
-- the steps its dead attempt logged are dropped, and with them every device
-- change recorded so far): the checkpoint's state put back, what changed
-- recorded, the logs cut to the checkpoint and read back for hooks.
-- Returns whether best.h5 is to be written again from the restored state.
local function resume(run, f)
  local cfg, dir, tr, rebuild_best = run.cfg, run.dir, run.tr, false
  local step, ck_arith, ck_ranks = 0, nil, run.nranks
  if f.start == "resume" then
    -- a resume computes with the CPU convolution implementations the run
    -- chose (log.h5's cpu_conv_choices; kernels/cpu/nn.h), whatever this
    -- machine's cache or SGDSA_CONV would choose
    local text = ""
    if run.writer then
      local lf = h5.open(dir .. "/log.h5", "r")
      text = lf:attr("cpu_conv_choices") or ""
      lf:close()
    end
    if run.nranks > 1 then text = dist.bcast(text) end
    core.conv_choices(text)
    local epoch
    epoch, step, ck_arith, ck_ranks = state.restore(run)
    if run.writer then rebuild_best = folder.repair_best(dir, cfg, f.best_verdict, tr, epoch) end
  end
  run.record_resume = folder.record_resume(f, cfg, step, ck_arith, ck_ranks, run.nranks)
  if run.steplog then run.steplog:truncate(tr.step_rows) end
  if run.epochlog then run.epochlog:truncate(tr.epoch_rows) end
  if cfg.log_steps and tr.step_rows > 0 then
    local old = h5.read_log(dir .. "/log.h5", "steps")
    for k, col in pairs(old.data) do run.logs.steps[k] = col end
  end
  if tr.epoch_rows > 0 then
    local old = h5.read_log(dir .. "/log.h5", "epochs")
    for i = 1, old.rows do
      local r = {}
      for _, c in ipairs(old.columns) do r[c] = old.data[c][i] end
      run.logs.epochs[i] = r
    end
  end
  crash_point("resumed", step)
  return rebuild_best
end

-- ---- what the loop writes -----------------------------------------------------------

-- One step's row of the step log (in memory for hooks, and log.h5's);
-- trial_loss: the trial's loss, from its objective when that is a loss.
local function log_step(run, rec)
  local S, L = run.S, run.logs.steps
  local per_batch = S.objective_name == "loss/batch"
  local is_loss = per_batch or S.objective_name == "loss"
  local row = run.row or {}
  run.row = row
  row.epoch, row.step, row.eta, row.T = rec.epoch, rec.step, rec.move, rec.temperature
  row.loss = rec.loss
  row.trial_loss = is_loss and (per_batch and rec.f_trial * rec.n or rec.f_trial) or (0 / 0)
  row.accepted, row.objective, row.trial_objective = rec.accepted and 1 or 0, rec.f_w, rec.f_trial
  row.worsening, row.prob, row.nonfinite = rec.worsening, rec.prob, rec.nonfinite and 1 or 0
  local n = #L.step + 1
  for k, v in pairs(row) do L[k][n] = v end
  if run.steplog then run.steplog:append(row) end
end

-- GPU runs: the cuDNN algorithms the convolutions chose (each pass of each
-- shape, at its first step), as log.h5's cuda_conv_algorithms, rewritten
-- with a log flush when there are new ones (docs/FORMAT.md)
local function record_algorithms(run)
  if not run.dir or run.cfg.device ~= "cuda" then return end
  local list = core.cuda.conv_algorithms()
  if #list == (run.algos_recorded or 0) then return end
  local lines = {}
  for i, a in ipairs(list) do
    lines[i] = string.format("%s %s w %s s %s p %s%s%s: algo %d math %d workspace %d %s",
                             a.pass, a.input, a.weight, a.stride, a.pad, a.tf32 and " tf32" or "",
                             a.deterministic and " deterministic" or "", a.algo, a.math,
                             a.workspace, a.ms and string.format("timed %.4f ms", a.ms) or "heuristics")
  end
  local lf = h5.open(run.dir .. "/log.h5", "a", {atomic = true})
  lf:attr("cuda_conv_algorithms", table.concat(lines, "\n"))
  lf:close()
  run.algos_recorded = #list
end

-- the CPU convolution implementations chosen so far (each pass of each
-- shape), as log.h5's cpu_conv_choices, which a resume pins
local function record_conv_choices(run)
  if not run.dir or not run.writer then return end
  local text = core.conv_choices()
  if text == (run.conv_recorded or "") then return end
  local lf = h5.open(run.dir .. "/log.h5", "a", {atomic = true})
  lf:attr("cpu_conv_choices", text)
  lf:close()
  run.conv_recorded = text
end

-- Before each write into the run folder: is it still this run's? A folder
-- removed while its run still writes (a user's rm -rf while the run stops),
-- and perhaps made again by a new run of the same name, holds another lock
-- file, or none: this run then writes nothing more and stops.
local function check_folder(run)
  if not run.lock then return end
  local ok, how = run.lock:intact()
  if ok then return end
  if run.prog then run.prog:finish() end
  local was, lockfile = "taken by another run", "another process's"
  if how == "removed" then was, lockfile = "removed", "gone" end
  fail("the run folder %s was %s while this run was writing to it (its lock file %s/%s is %s); " ..
       "this run writes nothing more there and stops", run.dir, was, run.dir, folder.LOCK, lockfile)
end

local function flush_logs(run)
  check_folder(run)
  if run.steplog then run.steplog:flush() end
  if run.epochlog then run.epochlog:flush() end
  if run.record_resume then
    run.record_resume()
    run.record_resume = nil
  end
  record_algorithms(run)
  record_conv_choices(run)
end

-- A checkpoint of the state as it is now (the logs flushed first, so that
-- they hold at least the checkpoint's steps): rank 0's, into the run folder.
local function save_checkpoint(run, name, mid_epoch, attrs)
  if not run.dir or not run.writer then return end
  flush_logs(run)
  state.capture(run, run.dir .. "/" .. name, mid_epoch, attrs)
end

-- The end of an epoch: validation, the epoch log, best.h5 and last.h5.
-- Returns the epoch's record.
local function end_epoch(run, epoch, t0, base_elapsed)
  local cfg, S, tr = run.cfg, run.S, run.tr
  local T_epoch = S:temperature()   -- in force during the epoch (cooled below)
  S:epoch_end(epoch)
  local train_time = base_elapsed + (core.time() - t0)
  local vloss, vacc = validate(run.model, run.crit, run.val, cfg.device)
  local st = S.stats
  local erec = {
    epoch = epoch, step = S.iter, epoch_steps = st.steps,
    train_loss = st.seen > 0 and st.loss_sum / st.seen or 0 / 0,
    train_acc = st.seen > 0 and st.correct / st.seen or 0 / 0,
    val_loss = vloss, val_acc = vacc, T = T_epoch,
    accept_rate = st.steps > 0 and st.accepted / st.steps or 0 / 0,
    mean_prob = st.steps > 0 and st.prob_sum / st.steps or 0 / 0,
    nonfinite = st.nonfinite, seconds = train_time,
    images_per_s = train_time > 0 and st.seen / train_time or 0 / 0,
  }
  run.logs.epochs[#run.logs.epochs + 1] = erec
  if run.epochlog then run.epochlog:append(erec) end
  run.prog:epoch_end(erec)
  tr.epoch = epoch + 1
  local improved = vacc == vacc and vacc > tr.best_acc
  if improved then tr.best_acc, tr.best_epoch, tr.best_loss = vacc, epoch, vloss end
  if run.dir then
    flush_logs(run)
    crash_point("epoch_logs", epoch)
    if improved and cfg.checkpoint.best then
      save_checkpoint(run, "best.h5", false, {best_val_acc = vacc, val_loss = vloss, best_epoch = epoch})
      crash_point("best", epoch)
    end
    local every = cfg.checkpoint.every
    if core.interrupted() then run.interrupted = true end
    if run.interrupted or epoch == cfg.epochs or (every > 0 and epoch % every == 0) then
      save_checkpoint(run, "last.h5", false, {val_acc = vacc, val_loss = vloss})
      run.last_ck_time = core.time()
    end
  end
  return erec
end

-- ---- the loop ---------------------------------------------------------------------

-- The batches of `epoch`: a new epoch's, or the rest of the epoch a mid-epoch
-- checkpoint saved. A mid-epoch checkpoint taken after the epoch's last batch
-- (before the epoch's end: validation, epoch log, cooling, best.h5, last.h5)
-- has nothing left; train:batches() would start the NEXT epoch there, so
-- the epoch goes straight to its end.
local function epoch_batches(run, epoch)
  local train, opts = run.train, loader_opts(run.cfg.device)
  if run.tr.mid_epoch then
    run.tr.mid_epoch = false
    if train:state().index >= train:size() then return function() return nil end end
    return train:batches(opts)
  end
  run.S:epoch_start(epoch)
  run.tr.epoch_elapsed = 0
  return train:epoch(epoch, opts)
end

-- The epochs from run.tr.epoch to cfg.epochs. An interrupt (Ctrl-C,
-- SIGTERM) stops the run at the step it lands in, which then checkpoints:
-- polled after every step, after the epoch's validation (before its
-- checkpoint), and before an epoch starts.
local function run_epochs(run, ctx)
  local cfg, S, tr, hooks, nranks = run.cfg, run.S, run.tr, run.cfg.hooks, run.nranks
  local epoch, first_step = tr.epoch, S.iter
  while epoch <= cfg.epochs and not run.interrupted do
    if core.interrupted() then
      run.interrupted = true
      -- landed after an epoch's end: its checkpoint, if that epoch wrote none
      if run.dir and S.iter ~= first_step and run.saved_step ~= S.iter then
        save_checkpoint(run, "last.h5", false)
      end
      break
    end
    tr.epoch, ctx.epoch = epoch, epoch
    local t0 = core.time()
    local batches = epoch_batches(run, epoch)
    local base_elapsed = tr.epoch_elapsed or 0
    if hooks.on_epoch_start then hooks.on_epoch_start(ctx, epoch) end
    run.prog:epoch_start(epoch, S.stats.steps)
    local stopped_early = false
    for x, y, total in batches do
      if cfg.device ~= "cpu" then x, y = x:to(cfg.device), y:to(cfg.device) end
      if nranks > 1 then run.shard.offset, run.shard.total = (dist.shard(total)), total end
      local rec, err = S:step(x, y)
      if not rec then
        flush_logs(run)
        local where = run.dir and core.exists(run.dir .. "/last.h5")
          and string.format("the last good checkpoint is %s/last.h5", run.dir) or "no checkpoint was written"
        run.prog:finish()
        fail("%s; stopping (%s). Lower the learning rates or the temperature.", err, where)
      end
      log_step(run, rec)
      if hooks.on_step then hooks.on_step(ctx, rec) end
      tr.epoch_elapsed = base_elapsed + (core.time() - t0)
      run.prog:step(S, rec)
      -- (an interrupt seen by any rank stops every rank after the same step)
      if nranks > 1 and dist.any(core.interrupted()) or nranks == 1 and core.interrupted() then
        run.interrupted = true
        break
      end
      if cfg.max_steps and S.stats.steps >= cfg.max_steps then stopped_early = true; break end
      if cfg.checkpoint.minutes and run.dir and core.time() - run.last_ck_time >= cfg.checkpoint.minutes * 60 then
        save_checkpoint(run, "last.h5", true)
        run.last_ck_time = core.time()
        crash_point("mid_checkpoint", S.iter)
      end
    end
    local epoch_done = stopped_early or run.train:state().index >= run.train:size()
    if run.interrupted and not epoch_done then
      run.prog:finish()
      save_checkpoint(run, "last.h5", true)
      break
    end
    local erec = end_epoch(run, epoch, t0, base_elapsed)
    if hooks.on_epoch_end and hooks.on_epoch_end(ctx, erec) == false then
      save_checkpoint(run, "last.h5", false)
      break
    end
    epoch = epoch + 1
  end
end

--- Train. Returns {dir=, epochs_done=, best_acc=, best_epoch=, interrupted=,
--- logs = {steps = {field = {...}}, epochs = {record...}}, model=, search=}.
function M.train(exp, overrides)
  local cfg = M.configure(exp, overrides)
  local run = prepare(cfg)
  -- the run folder, locked until train() returns (or the process ends)
  local f = folder.open(cfg)
  local lock <close> = f.lock
  folder.prepare(f, cfg, run.cfgtext, run.S, M.config_text)
  run.dir, run.lock = f.dir, f.lock
  open_logs(run)
  local rebuild_best = false
  if f.start == "resume" or f.start == "restart" then rebuild_best = resume(run, f) end
  -- best.h5 of a resumed run whose last.h5 holds the best epoch: written again
  -- from the restored state, which is the state it was written from
  if rebuild_best then
    state.capture(run, run.dir .. "/best.h5", false,
                  {best_val_acc = run.tr.best_acc, val_loss = run.tr.best_loss, best_epoch = run.tr.best_epoch})
  end
  local ctx = {config = cfg, model = run.model, data = run.data, search = run.S, logs = run.logs, dir = run.dir,
               trainer = run.tr, rank = dist.rank(), ranks = run.nranks}
  run.prog = progress.new(cfg.progress, cfg.epochs, run.train.nbatches and run.train:nbatches() or nil)
  run.last_ck_time = core.time()
  run.interrupted = false
  if cfg.hooks.on_start then cfg.hooks.on_start(ctx) end
  run_epochs(run, ctx)
  run.prog:finish()
  local tr = run.tr
  local result = {dir = run.dir, epochs_done = tr.epoch - 1, best_acc = tr.best_acc,
                  best_epoch = tr.best_epoch, interrupted = run.interrupted, logs = run.logs,
                  model = run.model, search = run.S, config = cfg}
  if cfg.hooks.on_end then cfg.hooks.on_end(ctx, result) end
  return result
end

--- The text `sgdsa run SCRIPT --help` prints: the script's opening comment,
--- its own keys (exp.args) with their types, defaults and help, the
--- trainer's keys, and what the experiment holds.
function M.help_text(exp, script)
  local out = {string.format("usage: sgdsa run %s [key=value ...]", script or "SCRIPT"), ""}
  local f = script and io.open(script, "r")
  if f then
    local head = {}
    for line in f:lines() do
      if not line:match("^%-%-") then break end
      head[#head + 1] = (line:gsub("^%-%-%s?", ""))
    end
    f:close()
    if #head > 0 then out[#out + 1] = table.concat(head, "\n"); out[#out + 1] = "" end
  end
  local declared = M.declared_args(exp.args)
  local names = sorted_keys(declared)
  if #names > 0 then
    out[#out + 1] = "The script's keys:"
    for _, k in ipairs(names) do
      local a = declared[k]
      out[#out + 1] = string.format("  %-22s %s%s", k .. "=" .. a.type:upper(),
                                    a.default ~= nil and ("default " .. show(a.default)) or "required",
                                    a.help and ("  " .. a.help) or "")
    end
  else
    out[#out + 1] = "The script declares no keys of its own (return args = {name = default, ...} to add some)."
  end
  out[#out + 1] = ""
  out[#out + 1] = "The trainer's keys (nested options with dots, at any depth: optim.T0=, optim.acceptance.T0=, data.limit=):"
  for _, k in ipairs(sorted_keys(M.FIELDS)) do
    if k ~= "args" then out[#out + 1] = string.format("  %-14s %s", k .. "=", M.FIELDS[k]) end
  end
  out[#out + 1] = ""
  out[#out + 1] = "This experiment:"
  for _, k in ipairs{"model", "data", "optim", "epochs", "seed"} do
    if exp[k] ~= nil then out[#out + 1] = string.format("  %-7s %s", k, show(exp[k])) end
  end
  return table.concat(out, "\n") .. "\n"
end

--- For `sgdsa run`: train, print where the run went, return the exit status.
--- `sgdsa run SCRIPT --help` (a positional --help or -h) prints
--- M.help_text instead.
function M.run(exp, overrides)
  if overrides and (overrides[1] == "--help" or overrides[1] == "-h") then
    io.write(M.help_text(exp, arg and arg[0]))
    return 0
  end
  local r = M.train(exp, overrides)
  local where = r.dir and (" run folder " .. r.dir) or ""
  if r.best_epoch > 0 then
    io.write(string.format("best validation accuracy %.2f%% at epoch %d;%s\n", 100 * r.best_acc,
                           r.best_epoch, where))
  end
  if r.interrupted then
    io.write(string.format("stopped by an interrupt after epoch %d, step %d; %s\n",
                           r.epochs_done, r.search.iter,
                           r.dir and ("continue with: sgdsa resume " .. r.dir) or "(no run folder)"))
    return 130
  end
  return 0
end

--- What a run folder records of the command that started it, from its
--- log.h5: {script_path=, script= (the text that ran), args = {"k=v", ...}}
--- (the arguments after the script), or an error saying why there is none.
function M.recorded_command(dir)
  dir = dir:gsub("(.)/+$", "%1")
  if not core.exists(dir .. "/log.h5") then
    fail("resume %s: no run folder there (no %s/log.h5)", dir, dir)
  end
  local f = h5.open(dir .. "/log.h5", "r")
  local ok, rec = pcall(function()
    local function text(name) return f:exists(name) and f:read_text(name) or "" end
    local argv = {}
    for line in (text("argv") .. "\n"):gmatch("([^\n]*)\n") do argv[#argv + 1] = line end
    while #argv > 0 and argv[#argv] == "" do argv[#argv] = nil end
    return {script_path = text("script_path"), script = text("script"), args = {table.unpack(argv, 2)}}
  end)
  f:close()
  if not ok then error(rec, 0) end
  if rec.script_path == "" or rec.script == "" then
    fail("resume %s: the run was not started by `sgdsa run SCRIPT` (log.h5 records no script); " ..
         "continue it with `sgdsa run SCRIPT resume=%s` and the run's overrides", dir, dir)
  end
  return rec
end

--- `sgdsa resume DIR [key=value ...]` (and `sgdsa run resume=DIR ...`):
--- the script recorded in DIR/log.h5 (its text, under its path) runs again
--- with the recorded arguments, those given here replacing the ones of the
--- same key, and resume=DIR; the resume checks the configuration against
--- the run's as `sgdsa run SCRIPT resume=DIR` does. Returns the exit status.
function M.resume_folder(dir, args)
  dir = dir:gsub("(.)/+$", "%1")
  local rec = M.recorded_command(dir)
  local merged, at = {}, {}
  local function add(a)
    local key = a:match("^([%a_][%w_.]*)=")
    if key and at[key] then
      merged[at[key]] = a
    else
      merged[#merged + 1] = a
      if key then at[key] = #merged end
    end
  end
  for _, a in ipairs(rec.args) do add(a) end
  for _, a in ipairs(args or {}) do add(a) end
  add("resume=" .. dir)
  local f = io.open(rec.script_path, "rb")
  local now = f and f:read("a")
  if f then f:close() end
  if now ~= rec.script then
    io.write(string.format("resume %s: %s %s since the run began; running the script recorded in %s/log.h5\n",
                           dir, rec.script_path, now and "has changed" or "is gone", dir))
  end
  io.write(string.format("resume %s: sgdsa run %s %s\n", dir, rec.script_path, table.concat(merged, " ")))
  io.stdout:flush()
  local chunk, err = load(rec.script, "@" .. rec.script_path, "t")
  if not chunk then fail("resume %s: the recorded script does not compile: %s", dir, err) end
  local overrides = core.overrides(merged)
  arg = {[0] = rec.script_path, table.unpack(merged)}
  sg.args = overrides
  folder.use_recorded_script(rec.script_path, rec.script)
  local exp = chunk(overrides)
  if type(exp) ~= "table" then return 0 end
  return M.run(exp, overrides)
end

return M
