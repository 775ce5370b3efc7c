-- sgdsa.table: `sgdsa table RUN_FOLDERS... [--format text|markdown|csv] [-o FILE]`
-- prints the paper's Table 1 from run folders: per method and seed the final
-- validation loss and accuracy (one column pair per model), the best value of
-- each column per method, and mean ± sample standard deviation per method.
--
-- The loss is the plain mean cross-entropy per validation example, as logged;
-- the paper's Table 1 divides it by the batch size, and a note under the table
-- says so (with the batch size of the runs). `--at best` reports, per seed,
-- the lowest validation loss and the highest validation accuracy over the
-- epochs instead of the last epoch's values.
local results = require "sgdsa.results"

local M = {}

local HELP = [[
usage: sgdsa table RUN_FOLDERS... [--format text|markdown|csv] [-o FILE] [--at final|best]

The paper's Table 1 from run folders: per method and seed, the validation loss
and accuracy at the last epoch (one column pair per model when runs of several
models are given), the best value of each column per method (lowest loss,
highest accuracy), and mean ± sample standard deviation per method.

A folder is a run (it holds log.h5) or a sweep (it holds seed-<n>/ runs).
Method, model and seed are read from each run's stored configuration.

  --format F     text (default), markdown or csv
  -o FILE        write to FILE instead of standard output
  --at final     values of the last logged epoch (default)
  --at best      per seed: the lowest validation loss and the highest
                 validation accuracy over all epochs

The loss is the mean cross-entropy per validation example. The paper's Table 1
reports it divided by the minibatch size (512 there); a note says so.
Accuracy is in percent. Runs that did not finish are marked with *.
Exit status: 0 ok, 1 unreadable runs, 2 usage error.
]]

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

-- The (loss, accuracy) a run contributes: last epoch, or best over epochs.
local function run_values(run, at)
  local loss, acc = run.cols.val_loss, run.cols.val_acc
  if run.n == 0 then return 0 / 0, 0 / 0 end
  if at == "final" then return loss[run.n], acc[run.n] * 100 end
  local bl, ba = 0 / 0, 0 / 0
  for i = 1, run.n do
    if not isnan(loss[i]) and (isnan(bl) or loss[i] < bl) then bl = loss[i] end
    if not isnan(acc[i]) and (isnan(ba) or acc[i] > ba) then ba = acc[i] end
  end
  return bl, ba * 100
end

--- Build the table model from loaded runs:
--- {models = {...}, methods = {{label=, rows = {{seed=, cells = {[model] = {loss=, acc=, unfinished=}}}},
---   best = {[model] = {loss=, acc=}}, mean = {...}, sd = {...}}}, batches = {...}}
function M.build(runs, at)
  at = at or "final"
  -- Method labels: the method name, plus the experiment name where two
  -- experiments of one method and model would otherwise share seeds.
  local seen, clash = {}, {}
  for _, r in ipairs(runs) do
    local key = r.method .. "\0" .. r.model .. "\0" .. tostring(r.seed)
    if seen[key] and seen[key] ~= r.experiment then clash[r.method] = true end
    seen[key] = seen[key] or r.experiment
  end
  local models, model_set = {}, {}
  local methods, by_label = {}, {}
  local batches = {}
  for _, r in ipairs(runs) do
    if not model_set[r.model] then model_set[r.model] = true; models[#models + 1] = r.model end
    local label = clash[r.method] and string.format("%s [%s]", r.method, r.experiment) or r.method
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
    local loss, acc = run_values(r, at)
    row.cells[r.model] = {loss = loss, acc = acc, dir = r.dir,
                          unfinished = r.epochs_total ~= nil and r.n < r.epochs_total,
                          epochs = r.n, epochs_total = r.epochs_total}
    if r.batch then batches[r.batch] = true end
  end
  for _, m in ipairs(methods) do
    table.sort(m.rows, function(a, b) return a.seed < b.seed end)
    m.best, m.mean, m.sd = {}, {}, {}
    for _, model in ipairs(models) do
      local losses, accs = {}, {}
      for _, row in ipairs(m.rows) do
        local c = row.cells[model]
        if c then losses[#losses + 1] = c.loss; accs[#accs + 1] = c.acc end
      end
      local bl, ba = 0 / 0, 0 / 0
      for i = 1, #losses do
        if not isnan(losses[i]) and (isnan(bl) or losses[i] < bl) then bl = losses[i] end
        if not isnan(accs[i]) and (isnan(ba) or accs[i] > ba) then ba = accs[i] end
      end
      m.best[model] = {loss = bl, acc = ba}
      local ml, sl, nl = M.mean_sd(losses)
      local ma, sa = M.mean_sd(accs)
      m.mean[model] = {loss = ml, acc = ma, n = nl}
      m.sd[model] = {loss = sl, acc = sa}
    end
  end
  local blist = {}
  for b in pairs(batches) do blist[#blist + 1] = b end
  table.sort(blist)
  return {models = models, methods = methods, batches = blist, at = at}
end

local function fnum(v, fmt)
  if v == nil or isnan(v) then return "-" end
  return string.format(fmt, v)
end
local LOSS, ACC = "%.6f", "%.2f"

local function note_lines(t)
  local notes = {}
  local what = t.at == "best" and "best over the epochs (lowest loss, highest accuracy, per seed)"
    or "at the last epoch"
  notes[#notes + 1] = "Validation loss and accuracy " .. what .. "."
  local b = #t.batches == 1 and tostring(math.tointeger(t.batches[1]) or t.batches[1])
    or (#t.batches > 1 and table.concat(t.batches, "/") or "the minibatch size")
  notes[#notes + 1] = "Loss: mean cross-entropy per validation example. The paper's Table 1 loss is "
    .. "this divided by the batch size (" .. b .. " here, 512 in the paper)."
  notes[#notes + 1] = "Accuracy in percent. Mean ± sample standard deviation over the seeds."
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

-- The table as rows of cells (strings), for text and markdown.
local function grid(t)
  local header1, header2 = {"Method", "Seed"}, {"", ""}
  for _, model in ipairs(t.models) do
    header1[#header1 + 1] = model; header1[#header1 + 1] = ""
    header2[#header2 + 1] = "Loss"; header2[#header2 + 1] = "Accuracy"
  end
  local body, summary = {}, {}
  for _, m in ipairs(t.methods) do
    for i, row in ipairs(m.rows) do
      local r = {i == 1 and m.label or "", tostring(row.seed)}
      for _, model in ipairs(t.models) do
        local c = row.cells[model]
        local star = c and c.unfinished and "*" or ""
        r[#r + 1] = c and (fnum(c.loss, LOSS) .. star) or "-"
        r[#r + 1] = c and (fnum(c.acc, ACC) .. star) or "-"
      end
      body[#body + 1] = r
    end
  end
  for _, m in ipairs(t.methods) do
    local r = {"Best " .. m.label, ""}
    for _, model in ipairs(t.models) do
      r[#r + 1] = fnum(m.best[model].loss, LOSS)
      r[#r + 1] = fnum(m.best[model].acc, ACC)
    end
    summary[#summary + 1] = r
  end
  for _, m in ipairs(t.methods) do
    local r = {"Mean ± sd " .. m.label, ""}
    for _, model in ipairs(t.models) do
      local mu, sd = m.mean[model], m.sd[model]
      r[#r + 1] = isnan(mu.loss) and "-" or (fnum(mu.loss, LOSS) .. " ± " .. fnum(sd.loss, LOSS))
      r[#r + 1] = isnan(mu.acc) and "-" or (fnum(mu.acc, ACC) .. " ± " .. fnum(sd.acc, ACC))
    end
    summary[#summary + 1] = r
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
    head[#head + 1] = model .. " loss"; head[#head + 1] = model .. " accuracy"
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
-- sd for the summary rows), full precision, NaN as empty.
function M.csv(t)
  local out = {}
  local head = {"method", "seed"}
  for _, model in ipairs(t.models) do
    head[#head + 1] = model .. "_loss"; head[#head + 1] = model .. "_accuracy"
  end
  out[#out + 1] = table.concat(head, ",")
  local function num(v) return (v == nil or isnan(v)) and "" or string.format("%.9g", v) end
  local function row(label, seed, get)
    local r = {csv_cell(label), csv_cell(seed)}
    for _, model in ipairs(t.models) do
      local l, a = get(model)
      r[#r + 1] = num(l); r[#r + 1] = num(a)
    end
    out[#out + 1] = table.concat(r, ",")
  end
  for _, m in ipairs(t.methods) do
    for _, rw in ipairs(m.rows) do
      row(m.label, rw.seed, function(model)
        local c = rw.cells[model]
        if not c then return nil, nil end
        return c.loss, c.acc
      end)
    end
    row(m.label, "best", function(model) return m.best[model].loss, m.best[model].acc end)
    row(m.label, "mean", function(model) return m.mean[model].loss, m.mean[model].acc end)
    row(m.label, "sd", function(model) return m.sd[model].loss, m.sd[model].acc end)
  end
  return table.concat(out, "\n") .. "\n"
end

local function parse_args(args)
  local o = {folders = {}, format = "text", at = "final"}
  local i = 1
  while i <= #args do
    local a = args[i]
    local function value()
      local v = a:match("^%-%-?[%w-]+=(.*)$")
      if v then return v end
      i = i + 1
      if args[i] == nil then return nil end
      return args[i]
    end
    if a == "--help" or a == "-h" then
      o.help = true
    elseif a == "-o" or a:match("^%-%-output=?") then
      o.output = value()
      if not o.output or o.output == "" then return nil, "-o needs a file name" end
    elseif a:match("^%-%-format=?") then
      o.format = value()
      if o.format ~= "text" and o.format ~= "markdown" and o.format ~= "csv" then
        return nil, string.format("--format %s: use text, markdown or csv", tostring(o.format))
      end
    elseif a:match("^%-%-at=?") then
      o.at = value()
      if o.at ~= "final" and o.at ~= "best" then
        return nil, string.format("--at %s: use final or best", tostring(o.at))
      end
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      return nil, string.format("unknown option %q", a)
    else
      o.folders[#o.folders + 1] = a
    end
    i = i + 1
  end
  return o
end

function M.main(args)
  local o, err = parse_args(args)
  if not o then return usage(err) end
  if o.help then io.write(HELP); return 0 end
  if #o.folders == 0 then return usage("no run folders given") end
  local runs, lerr = results.load_all(o.folders)
  if not runs then
    io.stderr:write("sgdsa table: ", lerr, "\n")
    return 1
  end
  local ok, t = pcall(M.build, runs, o.at)
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
