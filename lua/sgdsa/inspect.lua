-- sgdsa.inspect: a human summary of a run folder or of an HDF5 file.
--
--   sgdsa inspect runs/<name>        config, epochs done, best validation
--                                    accuracy and when, temperature, parameter
--                                    count, format version (from log.h5,
--                                    last.h5 and best.h5; see docs/FORMAT.md)
--   sgdsa inspect FILE.h5            the same for a run log or a checkpoint;
--                                    for any other file its datasets, shapes
--                                    and dtypes, attributes and log tables
--
-- Every file is verified before it is summarized (sgdsa.h5.verify: every
-- object header, attribute and dataset read, every checksum checked): a
-- damaged file is an error naming it and the damaged object, never a
-- summary of the part that could be read.
--
-- Lua: require("sgdsa.inspect").inspect(path [, {all=, legacy=}]) returns the
-- text, or raises naming every damaged file; .main(args) is the `sgdsa
-- inspect` entry (prints what is intact, names what is not, returns the exit
-- code).
local h5 = require "sgdsa.h5"
local results = require "sgdsa.results"

local M = {}

local BUFFER_SUFFIX = { running_mean = true, running_var = true, num_batches_tracked = true }

local function shape_str(shape)
  if not shape then return "?" end
  if #shape == 0 then return "scalar" end
  local t = {}
  for i, s in ipairs(shape) do t[i] = tostring(s) end
  return table.concat(t, "x")
end

local function commas(n)
  local s = tostring(math.tointeger(n) or n)
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""))
end

local function fmt(v)
  if v == nil then return "-" end
  if math.type(v) == "float" then
    if v ~= v then return "nan" end
    return string.format("%.6g", v)
  end
  return tostring(v)
end

local function is_dir(path)
  local ok, list = pcall(require("sgdsa.core").listdir, path)
  return ok and type(list) == "table"
end

local file_exists = require("sgdsa.sys").readable

-- Lines of a text, at most `max`, indented.
local function excerpt(text, max, indent)
  local out, n = {}, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if n <= max then out[#out + 1] = indent .. line end
  end
  while #out > 0 and out[#out]:match("^%s*$") do out[#out] = nil end
  if n > max then out[#out + 1] = string.format("%s... (%d more lines)", indent, n - max) end
  return table.concat(out, "\n")
end

-- The root attributes. A file of another program may hold attributes that
-- are not single texts or numbers: then none are shown (the file was verified
-- first, so this hides no damage).
local function root_attrs(f, sgdsa_file)
  if sgdsa_file then return f:attrs("/") end
  local ok, a = pcall(f.attrs, f, "/")
  return ok and a or {}
end

-- {params=, buffers=, tensors=, search=} from a checkpoint's datasets.
local function count_checkpoint(list)
  local c = { params = 0, buffers = 0, tensors = 0 }
  for _, e in ipairs(list) do
    if not e.name:find("/", 1, true) and e.numel then
      local suffix = e.name:match("([^.]+)$")
      if BUFFER_SUFFIX[suffix] then
        c.buffers = c.buffers + e.numel
      elseif e.dtype == "float32" then
        c.params = c.params + e.numel
        c.tensors = c.tensors + 1
      end
    end
  end
  return c
end

local function read_scalar(f, name)
  if not f:exists(name) then return nil end
  local v = f:read_array(name)
  if type(v) == "number" then return v end
  return nil
end

local function list_datasets(out, f)
  local logs = {}
  for _, e in ipairs(f:list("/")) do
    local g = e.name:match("^(.*)/[^/]*$")
    if g and logs[g] == nil then
      local ok, cols = pcall(f.attr_of, f, g, "columns")
      logs[g] = ok and cols or false
    end
    if not (g and logs[g]) then
      out[#out + 1] = string.format("  %-44s %-8s %s", e.name, e.dtype, shape_str(e.shape))
    end
  end
  local names = {}
  for g, cols in pairs(logs) do if cols then names[#names + 1] = g end end
  table.sort(names)
  for _, g in ipairs(names) do
    out[#out + 1] = string.format("  %-44s log: %s rows x {%s}", g .. "/", commas(f:log_rows(g)), logs[g])
  end
end

local function attrs_line(out, attrs, skip)
  local keys = {}
  for k in pairs(attrs) do if not (skip and skip[k]) then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do out[#out + 1] = string.format("  %-16s %s", k, fmt(attrs[k])) end
end

-- Summary lines of a run log (an open file).
local function summarize_log(out, f, name)
  local a = root_attrs(f, true)
  out[#out + 1] = string.format("run log %s", name)
  out[#out + 1] = string.format("  format version %s, sgdsa %s", fmt(a.format_version), fmt(a.sgdsa_version))
  out[#out + 1] = string.format("  seed %s, device %s, threads %s, host %s, started %s%s", fmt(a.seed),
    fmt(a.device) .. (a.device_name and (" (" .. fmt(a.device_name) .. ")") or ""), fmt(a.threads), fmt(a.host), fmt(a.start_time),
    (a.resumed and a.resumed > 0) and string.format(", resumed %d time(s)", a.resumed) or "")
  if a.device_changes and a.device_changes ~= "" then out[#out + 1] = "  device changes on resume: " .. fmt(a.device_changes) end
  if (a.ranks and a.ranks > 1) or (a.rank_changes and a.rank_changes ~= "") then
    out[#out + 1] = string.format("  data-parallel: started on %s ranks%s", fmt(a.ranks or 1),
      (a.rank_changes and a.rank_changes ~= "") and ("; rank changes on resume: " .. fmt(a.rank_changes)) or "")
  end
  if type(a.cpu_conv_choices) == "string" and a.cpu_conv_choices ~= "" then
    local n, d, w, nl, dl = 0, 0, 0, 0, 0
    for line in a.cpu_conv_choices:gmatch("[^\n]+") do
      local impls = line:match("^[^#]*")
      if line:match("^linear ") then
        nl = nl + 1
        if impls:find("dnnl") then dl = dl + 1 end
      else
        n = n + 1
        if impls:find("dnnl") or impls:find("winograd") then d = d + 1 end
        if impls:find("winograd") then w = w + 1 end
      end
    end
    out[#out + 1] = string.format("  CPU convolutions: %d shapes, %d with a pass on oneDNN, %d of them " ..
                                  "with Winograd; linear layers: %d shapes, %d with a pass on oneDNN's " ..
                                  "sgemm (attribute cpu_conv_choices)", n, d, w, nl, dl)
  end
  if type(a.cuda_conv_algorithms) == "string" and a.cuda_conv_algorithms ~= "" then
    local n = select(2, a.cuda_conv_algorithms:gsub("\n", "")) + 1
    out[#out + 1] = string.format("  cuDNN algorithms: %d (convolution pass and shape; attribute cuda_conv_algorithms)", n)
  end
  if a.score then
    out[#out + 1] = string.format("  search scoring: %s, objective %s", fmt(a.score), fmt(a.objective))
  end
  local script = f:exists("script_path") and f:read_text("script_path") or nil
  local config = f:exists("config") and results.parse_config(f:read_text("config")) or {}
  local method = results.method_label(config, script and script:match("([^/]+)%.lua$")
                                             or name:match("([^/]+)/[^/]+$"))
  out[#out + 1] = string.format("  method: %s%s", method,
                                config.label and " (its label=)" or " (in sgdsa table and sgdsa plot)")
  if script then out[#out + 1] = "  script: " .. script end
  if f:exists("config") then
    out[#out + 1] = "  config:"
    out[#out + 1] = excerpt(f:read_text("config"), 30, "    ")
  end
  if f:exists("epochs") then
    local r = h5.read_log(f, "epochs")
    local d = r.data
    out[#out + 1] = string.format("  epochs done: %d", r.rows)
    if r.rows > 0 then
      local last = r.rows
      if d.step then out[#out + 1] = string.format("  steps done: %s", commas(d.step[last])) end
      if d.val_acc then
        local best, at = -math.huge, nil
        for i = 1, r.rows do
          local v = d.val_acc[i]
          if v == v and v > best then best, at = v, i end
        end
        if at then
          out[#out + 1] = string.format("  best validation accuracy: %.4f at epoch %s", best,
                                        fmt(d.epoch and d.epoch[at] or at))
        end
        out[#out + 1] = string.format("  last validation accuracy: %s", fmt(d.val_acc[last]))
      end
      if d.T then out[#out + 1] = string.format("  temperature: %s", fmt(d.T[last])) end
      if d.train_loss then out[#out + 1] = string.format("  last train loss: %s", fmt(d.train_loss[last])) end
    end
  end
  if f:exists("steps") then
    local ok, n = pcall(f.log_rows, f, "steps")
    if ok then out[#out + 1] = string.format("  step log: %s rows", commas(n)) end
  end
end

-- Summary lines of a checkpoint (an open file).
local function summarize_checkpoint(out, f, name, all)
  local a = root_attrs(f, true)
  local list = f:list("/")
  local c = count_checkpoint(list)
  out[#out + 1] = string.format("checkpoint %s", name)
  out[#out + 1] = string.format("  format version %s, sgdsa %s, written %s", fmt(a.format_version),
                                fmt(a.sgdsa_version), fmt(a.created))
  out[#out + 1] = string.format("  parameters: %s in %d tensors; buffers: %s values", commas(c.params),
                                c.tensors, commas(c.buffers))
  local ep, st, T = read_scalar(f, "search/epoch"), read_scalar(f, "search/step"),
                    read_scalar(f, "search/temperature")
  out[#out + 1] = string.format("  epoch %s, step %s, temperature %s", fmt(ep), fmt(st), fmt(T))
  if a.best_val_acc then
    out[#out + 1] = string.format("  best validation accuracy: %.4f at epoch %s", a.best_val_acc, fmt(a.best_epoch))
  end
  if f:exists("search/rng") then
    local streams = {}
    for _, e in ipairs(f:list("search/rng")) do streams[#streams + 1] = e.name end
    out[#out + 1] = "  random streams: " .. table.concat(streams, ", ")
  end
  if all then
    out[#out + 1] = "  datasets:"
    list_datasets(out, f)
  end
end

-- Append the summary of one file to out; nil and the reason when the file
-- does not verify.
local function summarize_file(out, path, opts)
  local ok, why = h5.verify(path, { legacy = opts.legacy })
  if not ok then return nil, why end
  local f <close> = h5.open(path, "r", { legacy = opts.legacy })
  local _, kind = pcall(f.attr, f, "kind")
  local a = root_attrs(f, kind == "run-log" or kind == "checkpoint")
  if a.kind == "run-log" then
    summarize_log(out, f, path)
    if opts.all then out[#out + 1] = "  datasets:" list_datasets(out, f) end
  elseif a.kind == "checkpoint" then
    summarize_checkpoint(out, f, path, opts.all)
  else
    out[#out + 1] = string.format("HDF5 file %s%s", path,
      a.format_version and (", sgdsa format version " .. fmt(a.format_version)) or "")
    if next(a) then out[#out + 1] = "  attributes:" attrs_line(out, a) end
    out[#out + 1] = "  datasets:"
    list_datasets(out, f)
  end
  return true
end

-- The summaries of the intact files of a run folder or of one file, and the
-- list of what did not verify (each message names the file and the object).
local function report(path, opts)
  local out, damaged = {}, {}
  local function one(p)
    local mark = #out
    if mark > 0 then out[#out + 1] = "" end
    local ok, why = summarize_file(out, p, opts)
    if not ok then
      for i = #out, mark + 1, -1 do out[i] = nil end
      damaged[#damaged + 1] = why
    end
  end
  if is_dir(path) then
    local dir = path:gsub("/+$", "")
    local found = false
    for _, fname in ipairs { "log.h5", "last.h5", "best.h5" } do
      local p = dir .. "/" .. fname
      if file_exists(p) then
        found = true
        one(p)
      end
    end
    if not found then
      error(string.format("inspect: '%s' is a folder without log.h5, last.h5 or best.h5 (not a run folder)", path), 0)
    end
  else
    if not file_exists(path) then error(string.format("inspect: no such file or folder '%s'", path), 0) end
    one(path)
  end
  return table.concat(out, "\n"), damaged
end

--- The summary text of a run folder or an HDF5 file; an error naming every
--- file that does not verify. opts.all lists every dataset; opts.legacy
--- reads legacy-format files.
function M.inspect(path, opts)
  local text, damaged = report(path, opts or {})
  if #damaged > 0 then error("inspect: " .. table.concat(damaged, "\ninspect: "), 0) end
  return text
end

local USAGE = [[
usage: sgdsa inspect [--all] [--legacy] PATH...

Print a summary of a run folder (runs/<name>: log.h5, last.h5, best.h5) or of
an HDF5 file: configuration, epochs done, best validation accuracy and when,
temperature, parameter count, file format version. For other HDF5 files:
datasets with shapes and dtypes, attributes and log tables.

  --all      also list every dataset of run logs and checkpoints
  --legacy   read files in the legacy HDF5 format (superblock 0/1, no
             checksums; e.g. written by h5py without libver='latest')
  -h, --help this text]]

--- `sgdsa inspect ARGS`: returns 0, or 1 when a path could not be inspected.
function M.main(args)
  local opts, paths = {}, {}
  for _, a in ipairs(args or {}) do
    if a == "-h" or a == "--help" then
      print(USAGE)
      return 0
    elseif a == "--all" then
      opts.all = true
    elseif a == "--legacy" then
      opts.legacy = true
    elseif a:sub(1, 1) == "-" then
      io.stderr:write("sgdsa inspect: unknown option '" .. a .. "' (--all, --legacy, --help)\n")
      return 2
    else
      paths[#paths + 1] = a
    end
  end
  if #paths == 0 then
    io.stderr:write(USAGE .. "\n")
    return 2
  end
  local rc = 0
  local function complain(msg)
    msg = tostring(msg):gsub("^[^:\n]*%.lua:%d+: ", "")
    if msg:find("legacy HDF5 format", 1, true) then msg = msg .. " [inspect: add --legacy]" end
    io.stderr:write("sgdsa inspect: " .. msg .. "\n")
    rc = 1
  end
  for i, p in ipairs(paths) do
    if i > 1 then print("") end
    local ok, text, damaged = pcall(report, p, opts)
    if not ok then
      complain(text)
    else
      if text ~= "" then print(text) end
      io.stdout:flush()
      for _, why in ipairs(damaged) do complain(why) end
    end
  end
  return rc
end

return M
