-- sgdsa.table: `sgdsa table RUN_FOLDERS... [--format text|markdown|csv] [-o FILE]
-- [--at best|last|best-each] [--loss example|batch]` prints the paper's Table 1
-- ("best validation accuracy and loss, seed by seed") from run folders: per
-- method and seed one epoch's validation loss and accuracy (one column group
-- per model), the best value of each column per method, and mean ± sample
-- standard deviation per method.
--
-- Which epoch (`--at`): `best` (default) the best validation epoch, the one of
-- highest validation accuracy (ties: the lower validation loss, then the
-- earlier epoch; epochs with a NaN loss or accuracy are skipped); `last` the
-- last logged epoch (`final` is the same); both name the epoch in an epoch
-- column. `best-each`: the lowest loss and the highest accuracy over the
-- epochs, each at its own epoch (no epoch column).
--
-- The loss scale (`--loss`): `example` (default) the logged validation loss,
-- the mean cross-entropy per validation example; `batch` that divided by the
-- run's minibatch size, the scale of the paper's Table 1. The column header
-- names the scale and a note under the table states the epoch rule and scale.
local results = require "sgdsa.results"

local M = {}

local HELP = [[
usage: sgdsa table RUN_FOLDERS... [--format text|markdown|csv] [-o FILE]
                   [--at best|last|best-each] [--loss example|batch] [--label TEXT ...]

The paper's Table 1 (best validation accuracy and loss, seed by seed) from run
folders: per method and seed the epoch, validation loss and validation
accuracy (one column group per model when runs of several models are given),
the best value of each column per method (lowest loss, highest accuracy), and
mean ± sample standard deviation per method.

A folder is a run (it holds log.h5) or a sweep (it holds seed-<n>/ runs).
Method, model, seed and minibatch size are read from each run's stored
configuration. The method is the experiment's label= when it has one, the
paper's name of a built-in optimizer (SGD-SA, Scheduled-SGD, SSA), else the
experiment's script name; two experiments of one method with the same
model and seed show as "method [experiment]".

  --format F        text (default), markdown or csv
  -o FILE           write to FILE instead of standard output
  --at best         per seed, the best validation epoch (default): the epoch
                    of highest validation accuracy, ties broken by the lower
                    validation loss, then the earlier epoch; epochs with a
                    NaN loss or accuracy are skipped
  --at last         per seed, the last logged epoch (`--at final` too)
  --at best-each    per seed, the lowest validation loss and the highest
                    validation accuracy over the epochs, each at its own
                    epoch (no epoch column)
  --loss example    the loss as logged: mean cross-entropy per validation
                    example (default; header "loss/example")
  --loss batch      that divided by each run's minibatch size, the scale of
                    the paper's Table 1 (512 there; header "loss/batch")
  --label TEXT      the method of the runs of a folder: one --label per
                    folder, in the order of the folders

Accuracy is in percent. A note under the table states the epoch rule and the
loss scale. Runs that did not finish are marked with *.
Exit status: 0 ok, 1 unreadable runs, 2 usage error.
]]

M.AT = {best = "best", last = "last", final = "last", ["best-each"] = "best-each"}
M.LOSS = {example = true, batch = true}

local function usage(msg)
  io.stderr:write("sgdsa table: ", msg, "\n(try `sgdsa table --help`)\n")
  return 2
end

local function isnan(x) return x ~= x end

--- Mean and sample standard deviation (n - 1) of the non-NaN values.
function M.mean_sd(values)
  local n, s = 0, 0
  for _, v in ipairs(values) do if not isnan(v) then n, s = n + 1, s + v end end
  if n == 0 then return 0 / 0, 0 / 0, 0 end
  local mean = s / n
  if n == 1 then return mean, 0 / 0, 1 end
  local ss = 0
  for _, v in ipairs(values) do if not isnan(v) then ss = ss + (v - mean) ^ 2 end end
  return mean, math.sqrt(ss / (n - 1)), n
end

--- Index of a run's best validation epoch: the highest accuracy, ties the
--- lower loss, then the earlier epoch; epochs with a NaN loss or accuracy are
--- skipped. nil when no epoch qualifies.
function M.best_epoch(run)
  local loss, acc = run.cols.val_loss, run.cols.val_acc
  local best
  for i = 1, run.n do
    if not isnan(loss[i]) and not isnan(acc[i]) and (best == nil or acc[i] > acc[best]
        or (acc[i] == acc[best] and loss[i] < loss[best])) then
      best = i
    end
  end
  return best
end

-- The lowest of losses[1..n] and the highest of accs[1..n], each skipping
-- its NaNs (NaN when all are).
local function lowest_highest(losses, accs, n)
  local bl, ba = 0 / 0, 0 / 0
  for i = 1, n do
    if not isnan(losses[i]) and (isnan(bl) or losses[i] < bl) then bl = losses[i] end
    if not isnan(accs[i]) and (isnan(ba) or accs[i] > ba) then ba = accs[i] end
  end
  return bl, ba
end

-- The (loss, accuracy in percent, epoch) a run contributes under rule `at`;
-- the epoch is nil for best-each and when no epoch qualifies.
local function run_values(run, at)
  if at == "best-each" then
    local l, a = lowest_highest(run.cols.val_loss, run.cols.val_acc, run.n)
    return l, a * 100, nil
  end
  local i
  if at == "last" then i = run.n > 0 and run.n or nil else i = M.best_epoch(run) end
  if not i then return 0 / 0, 0 / 0, nil end
  local epoch = run.cols.epoch[i]
  return run.cols.val_loss[i], run.cols.val_acc[i] * 100, math.tointeger(epoch) or epoch
end

-- The run's loss in scale `scale`: per example as logged, or divided by the
-- run's minibatch size.
local function scaled_loss(run, loss, scale)
  if scale == "example" then return loss end
  if not run.batch then
    error(string.format("%s: no minibatch size in its configuration (data.batch); "
                        .. "use --loss example", run.dir), 0)
  end
  return loss / run.batch
end

-- Best (lowest loss, highest accuracy), mean and sd of each model's column
-- over a method's seed rows.
local function summarize(m, models)
  m.best, m.mean, m.sd = {}, {}, {}
  for _, model in ipairs(models) do
    local losses, accs = {}, {}
    for _, row in ipairs(m.rows) do
      local c = row.cells[model]
      if c then losses[#losses + 1] = c.loss; accs[#accs + 1] = c.acc end
    end
    local bl, ba = lowest_highest(losses, accs, #losses)
    m.best[model] = {loss = bl, acc = ba}
    local ml, sl, nl = M.mean_sd(losses)
    local ma, sa = M.mean_sd(accs)
    m.mean[model] = {loss = ml, acc = ma, n = nl}
    m.sd[model] = {loss = sl, acc = sa}
  end
end

--- Build the table model from loaded runs; opts = {at = "best"|"last"|
--- "best-each" (or "final" for last), loss = "example"|"batch"}, both optional:
--- {models = {...}, at =, loss =, batches = {...}, methods = {{label=,
---   rows = {{seed=, cells = {[model] = {loss=, acc=, epoch=, unfinished=, ...}}}},
---   best = {[model] = {loss=, acc=}}, mean = {...}, sd = {...}}}}
function M.build(runs, opts)
  opts = opts or {}
  local at = M.AT[opts.at or "best"] or error("unknown epoch rule " .. tostring(opts.at), 0)
  local scale = opts.loss or "example"
  if not M.LOSS[scale] then error("unknown loss scale " .. tostring(scale), 0) end
  local label_of = results.labels(runs)
  local models, model_set = {}, {}
  local methods, by_label = {}, {}
  local batches = {}
  for _, r in ipairs(runs) do
    if not model_set[r.model] then model_set[r.model] = true; models[#models + 1] = r.model end
    local label = label_of(r)
    local m = by_label[label]
    if not m then
      m = {label = label, rows = {}, by_seed = {}}
      by_label[label] = m
      methods[#methods + 1] = m
    end
    local row = m.by_seed[r.seed]
    if not row then
      row = {seed = r.seed, cells = {}}
      m.by_seed[r.seed] = row
      m.rows[#m.rows + 1] = row
    end
    if row.cells[r.model] then
      error(string.format("two runs for %s, model %s, seed %s: %s and %s", label, r.model,
                          tostring(r.seed), row.cells[r.model].dir, r.dir), 0)
    end
    local loss, acc, epoch = run_values(r, at)
    row.cells[r.model] = {loss = scaled_loss(r, loss, scale), acc = acc, epoch = epoch, dir = r.dir,
                          unfinished = r.epochs_total ~= nil and r.n < r.epochs_total,
                          epochs = r.n, epochs_total = r.epochs_total}
    if r.batch then batches[r.batch] = true end
  end
  for _, m in ipairs(methods) do
    table.sort(m.rows, function(a, b) return a.seed < b.seed end)
    summarize(m, models)
  end
  local blist = {}
  for b in pairs(batches) do blist[#blist + 1] = math.tointeger(b) or b end
  table.sort(blist)
  return {models = models, methods = methods, batches = blist, at = at, loss = scale}
end

local function fnum(v, fmt)
  if v == nil or isnan(v) then return "-" end
  return string.format(fmt, v)
end
local ACC = "%.2f"
-- Per-batch losses are about 1/batch of the per-example ones: more decimals.
local LOSS_FMT = {example = "%.6f", batch = "%.8f"}

-- Whether the table has an epoch column per model (not for best-each, whose
-- loss and accuracy may come from two epochs).
local function has_epoch(t) return t.at ~= "best-each" end

local RULE = {
  best = "Validation loss and accuracy per seed at its best validation epoch: the epoch of "
    .. "highest validation accuracy (ties: lower loss, then earlier epoch; epochs with a NaN value "
    .. "skipped).",
  last = "Validation loss and accuracy per seed at its last logged epoch.",
  ["best-each"] = "Per seed, the lowest validation loss and the highest validation accuracy "
    .. "over the epochs, each at its own epoch.",
}

local function note_lines(t)
  local notes = {RULE[t.at]}
  local here = #t.batches > 0 and (table.concat(t.batches, "/") .. " here, ") or ""
  if t.loss == "batch" then
    notes[#notes + 1] = "Loss (loss/batch): mean cross-entropy per validation example divided by "
      .. "the run's minibatch size (" .. here .. "512 in the paper), the paper's Table 1 scale."
  else
    notes[#notes + 1] = "Loss (loss/example): mean cross-entropy per validation example; the "
      .. "paper's Table 1 divides it by the minibatch size (" .. here .. "512 in the paper: "
      .. "--loss batch)."
  end
  notes[#notes + 1] = "Accuracy in percent. Best: lowest loss and highest accuracy over the seeds. "
    .. "Mean ± sample standard deviation over the seeds."
  local unfinished = false
  for _, m in ipairs(t.methods) do
    for _, row in ipairs(m.rows) do
      for _, c in pairs(row.cells) do if c.unfinished then unfinished = true end end
    end
  end
  if unfinished then notes[#notes + 1] = "* run not finished (fewer epochs logged than configured); "
    .. "included in the best and mean rows." end
  return notes
end

-- The column names of one model, in order: {key, header word}.
local function model_columns(t)
  local cols = {}
  if has_epoch(t) then cols[#cols + 1] = {"epoch", "epoch"} end
  cols[#cols + 1] = {"loss", "loss/" .. t.loss}
  cols[#cols + 1] = {"acc", "accuracy"}
  return cols
end

-- The table as rows of cells (strings), for text and markdown: the two
-- header rows (model names; column names), the seed rows, the summary rows.
local function grid(t)
  local LOSS = LOSS_FMT[t.loss]
  local cols = model_columns(t)
  local header1, header2 = {"Method", "Seed"}, {"", ""}
  for _, model in ipairs(t.models) do
    for k, col in ipairs(cols) do
      header1[#header1 + 1] = k == 1 and model or ""
      header2[#header2 + 1] = col[2]:sub(1, 1):upper() .. col[2]:sub(2)
    end
  end
  local function cell(c, key)
    if not c then return "-" end
    if key == "epoch" then return c.epoch and tostring(c.epoch) or "-" end
    return fnum(c[key], key == "loss" and LOSS or ACC) .. (c.unfinished and "*" or "")
  end
  local body, summary = {}, {}
  for _, m in ipairs(t.methods) do
    for i, row in ipairs(m.rows) do
      local r = {i == 1 and m.label or "", tostring(row.seed)}
      for _, model in ipairs(t.models) do
        for _, col in ipairs(cols) do r[#r + 1] = cell(row.cells[model], col[1]) end
      end
      body[#body + 1] = r
    end
  end
  local function summary_row(label, get)
    local r = {label, ""}
    for _, model in ipairs(t.models) do
      for _, col in ipairs(cols) do r[#r + 1] = col[1] == "epoch" and "" or get(model, col[1]) end
    end
    summary[#summary + 1] = r
  end
  for _, m in ipairs(t.methods) do
    summary_row("Best " .. m.label, function(model, key)
      return fnum(m.best[model][key], key == "loss" and LOSS or ACC)
    end)
  end
  for _, m in ipairs(t.methods) do
    summary_row("Mean ± sd " .. m.label, function(model, key)
      local mu, sd, f = m.mean[model][key], m.sd[model][key], key == "loss" and LOSS or ACC
      return isnan(mu) and "-" or (fnum(mu, f) .. " ± " .. fnum(sd, f))
    end)
  end
  return header1, header2, body, summary
end

-- Display width of a UTF-8 string (± is one column).
local function width(s) return utf8.len(s) or #s end

local function pad(s, w, right)
  local n = w - width(s)
  if n <= 0 then return s end
  return right and (string.rep(" ", n) .. s) or (s .. string.rep(" ", n))
end

function M.text(t)
  local h1, h2, body, summary = grid(t)
  local all = {h1, h2}
  for _, r in ipairs(body) do all[#all + 1] = r end
  for _, r in ipairs(summary) do all[#all + 1] = r end
  -- Best/mean labels span the seed column.
  local w = {}
  for _, r in ipairs(all) do
    for j, c in ipairs(r) do
      if not (j == 1 and r[2] == "" and r ~= h1 and r ~= h2) then
        w[j] = math.max(w[j] or 0, width(c))
      end
    end
  end
  local span = (w[1] or 0) + 2 + (w[2] or 0)
  for _, r in ipairs(summary) do span = math.max(span, width(r[1])) end
  w[1] = span - 2 - w[2]
  local out = {}
  local function line(r, is_summary)
    local cells = {}
    if is_summary then
      cells[1] = pad(r[1], span)
    else
      cells[1] = pad(r[1], w[1]) .. "  " .. pad(r[2], w[2], true)
    end
    for j = 3, #r do cells[#cells + 1] = pad(r[j], w[j], j > 2 and r ~= h1 and r ~= h2) end
    out[#out + 1] = (table.concat(cells, "  "):gsub("%s+$", ""))
  end
  line(h1); line(h2)
  local total = span
  for j = 3, #w do total = total + 2 + w[j] end
  out[#out + 1] = string.rep("-", total)
  local prev
  for i, r in ipairs(body) do
    if r[1] ~= "" and prev and i > 1 then out[#out + 1] = "" end
    line(r); prev = r
  end
  out[#out + 1] = string.rep("-", total)
  for _, r in ipairs(summary) do line(r, true) end
  out[#out + 1] = ""
  for _, n in ipairs(note_lines(t)) do out[#out + 1] = n end
  return table.concat(out, "\n") .. "\n"
end

function M.markdown(t)
  local out = {}
  local head = {"Method", "Seed"}
  for _, model in ipairs(t.models) do
    for _, col in ipairs(model_columns(t)) do head[#head + 1] = model .. " " .. col[2] end
  end
  out[#out + 1] = "| " .. table.concat(head, " | ") .. " |"
  local seps = {}
  for j = 1, #head do seps[j] = j <= 1 and "---" or "---:" end
  out[#out + 1] = "|" .. table.concat(seps, "|") .. "|"
  local _, _, body, summary = grid(t)
  for _, r in ipairs(body) do out[#out + 1] = "| " .. table.concat(r, " | ") .. " |" end
  for _, r in ipairs(summary) do
    local cells = {}
    for j, c in ipairs(r) do cells[j] = c end
    cells[1] = "**" .. cells[1] .. "**"
    out[#out + 1] = "| " .. table.concat(cells, " | ") .. " |"
  end
  out[#out + 1] = ""
  for _, n in ipairs(note_lines(t)) do out[#out + 1] = n:gsub("^%*", "\\*") .. "  " end
  return table.concat(out, "\n") .. "\n"
end

local function csv_cell(s)
  s = tostring(s)
  if s:find('[,"\n]') then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end

-- CSV: one row per method and seed (seed column: the seed, or best, mean,
-- sd for the summary rows, whose epoch cells are empty), full precision, NaN
-- as empty. Columns per model: <model>_epoch (not for best-each),
-- <model>_loss_per_example or <model>_loss_per_batch, <model>_accuracy.
function M.csv(t)
  local out = {}
  local cols = model_columns(t)
  local head = {"method", "seed"}
  for _, model in ipairs(t.models) do
    for _, col in ipairs(cols) do
      head[#head + 1] = model .. "_" .. (col[1] == "loss" and "loss_per_" .. t.loss
                                         or col[1] == "acc" and "accuracy" or col[1])
    end
  end
  out[#out + 1] = table.concat(head, ",")
  local function num(v)
    if v == nil or isnan(v) then return "" end
    return math.type(v) == "integer" and tostring(v) or string.format("%.9g", v)
  end
  local function row(label, seed, get)
    local r = {csv_cell(label), csv_cell(seed)}
    for _, model in ipairs(t.models) do
      for _, col in ipairs(cols) do r[#r + 1] = num(get(model, col[1])) end
    end
    out[#out + 1] = table.concat(r, ",")
  end
  for _, m in ipairs(t.methods) do
    for _, rw in ipairs(m.rows) do
      row(m.label, rw.seed, function(model, key)
        local c = rw.cells[model]
        return c and c[key]
      end)
    end
    for _, s in ipairs({"best", "mean", "sd"}) do
      row(m.label, s, function(model, key) return m[s][model][key] end)
    end
  end
  return table.concat(out, "\n") .. "\n"
end

function M.main(args)
  local o, err = results.parse_command(args, {format = "text", at = "best", loss = "example"}, {
    choices = {
      ["--format"] = {"format", {text = true, markdown = true, csv = true}, "use text, markdown or csv"},
      ["--at"] = {"at", M.AT, "use best, last (or final) or best-each"},
      ["--loss"] = {"loss", M.LOSS, "use example or batch"},
    },
    dash = true,   -- "-" alone is a folder name
  })
  if not o then return usage(err) end
  if o.help then io.write(HELP); return 0 end
  if #o.folders == 0 then return usage("no run folders given") end
  local runs, status = results.load_command(o, "sgdsa table", usage)
  if not runs then return status end
  local ok, t = pcall(M.build, runs, {at = o.at, loss = o.loss})
  if not ok then
    io.stderr:write("sgdsa table: ", tostring(t), "\n")
    return 1
  end
  local text = M[o.format](t)
  if o.output then
    local f, ferr = io.open(o.output, "w")
    if not f then
      io.stderr:write("sgdsa table: cannot write ", o.output, ": ", tostring(ferr), "\n")
      return 1
    end
    f:write(text)
    f:close()
  else
    io.write(text)
  end
  return 0
end

return M
