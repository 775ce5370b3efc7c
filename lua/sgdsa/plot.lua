-- sgdsa.plot: `sgdsa plot RUN_FOLDERS... -o FILE.png|.svg [--figure 1|2|3|4|all]`
-- draws the paper's figures from the per-epoch logs of run folders: Figures
-- 1-2 (SSA against SGD: validation loss and accuracy; training and
-- validation loss and accuracy, training dashed), Figure 3 (average
-- acceptance probability and training accuracy per epoch) and Figure 4
-- (validation loss and accuracy per epoch): one thin line per run (seed),
-- one colour per method, a legend entry per method, labelled axes.
--
-- The drawing is done by gnuplot (Debian's gnuplot-nox), run as a child
-- process on a generated script and one data file per run, written to a
-- temporary folder that is removed afterwards (kept and named when gnuplot
-- fails). PNG uses the pngcairo terminal when gnuplot has it, else png; SVG
-- uses svg. $SGDSA_GNUPLOT names another gnuplot executable.
local core = require "sgdsa.core"
local results = require "sgdsa.results"
local sys = require "sgdsa.sys"

local M = {}

local HELP = [[
usage: sgdsa plot RUN_FOLDERS... -o FILE.png|FILE.svg [--figure 1|2|3|4|all] [--title TEXT]
                  [--label TEXT ...]

Plot the paper's figures from the per-epoch logs of run folders (a run holds
log.h5; a sweep folder holds seed-<n>/ runs):
  Figure 1: (a) validation loss, (b) validation accuracy per epoch (the
            paper's SSA against SGD, experiments/fashion_vgg16_*.lua);
  Figure 2: (a) training and validation loss, (b) training and validation
            accuracy per epoch: training dashed, validation solid (whether
            a method overfits);
  Figure 3: (a) average acceptance probability of the SA test per epoch
            (clipped to 1; plain SGD runs, which accept every move, are left out),
            (b) training accuracy per epoch;
  Figure 4: (a) validation loss, (b) validation accuracy per epoch.
Each run (seed) is a thin line; runs of one method share a colour. The
method is the experiment's label= when it has one, the paper's name of a
built-in optimizer (SGD-SA, Scheduled-SGD, SSA), else the experiment's
script name; two experiments of one method with the same model and seed
show as "method [experiment]".

  -o FILE        output file; .png or .svg chooses the format
  --figure F     1, 2, 3, 4 or all (default: all, Figures 3 and 4 in a 2x2 grid)
  --title TEXT   a title over the panels (default: the experiments' script names)
  --size WxH     picture size in pixels (default 1200x450, 1200x900 for all)
  --label TEXT   the method of the runs of a folder (the legend): one --label
                 per folder, in the order of the folders

Needs gnuplot (Debian package gnuplot-nox; $SGDSA_GNUPLOT overrides the path).
Exit status: 0 ok, 1 failure (no gnuplot, no logged epochs), 2 usage error.
]]

local COLOURS = {"1f77b4", "d62728", "2ca02c", "ff7f0e", "9467bd", "8c564b", "e377c2", "17becf"}

local function usage(msg)
  io.stderr:write("sgdsa plot: ", msg, "\n(try `sgdsa plot --help`)\n")
  return 2
end

local q, shell_output = sys.quote, sys.output
-- A gnuplot string literal (single quotes; '' inside).
local function gq(s) return "'" .. tostring(s):gsub("'", "''") .. "'" end

--- The gnuplot executable and its terminals; nil and a message if missing.
function M.gnuplot()
  local exe = os.getenv("SGDSA_GNUPLOT")
  if not exe or exe == "" then exe = "gnuplot" end
  local out, ok = shell_output(q(exe) .. " -e " .. q("print GPVAL_TERMINALS") .. " 2>&1")
  if not ok or not out then
    return nil, string.format("cannot run gnuplot (%s): install it with `apt-get install gnuplot-nox` "
                              .. "(tools/install-deps does) or set SGDSA_GNUPLOT", exe)
  end
  local terms = {}
  for t in out:gmatch("%S+") do terms[t] = true end
  return {exe = exe, terminals = terms}
end

local function isnan(x) return x ~= x end

-- A run goes into the acceptance-probability panel when its optimizer has
-- an acceptance test (not plain SGD, whose probability is 1 by construction)
-- and it logged the probability.
local function has_acceptance(run)
  if run.always_accepts then return false end
  local p = run.cols.accept_prob
  for i = 1, run.n do
    if not isnan(p[i]) then return true end
  end
  return false
end

-- Panels: id, title, y label, column, scale, key position, filter.
local PANELS = {
  prob = {title = "(3a) Average acceptance probability", ylabel = "acceptance probability",
          col = "accept_prob", scale = 1, key = "bottom left", keep = has_acceptance,
          empty = "no run with an acceptance test"},
  train_acc = {title = "(3b) Training accuracy", ylabel = "training accuracy (%)",
               col = "train_acc", scale = 100, key = "bottom right"},
  val_loss = {title = "(4a) Validation loss", ylabel = "validation loss (mean cross-entropy)",
              col = "val_loss", scale = 1, key = "top right"},
  val_acc = {title = "(4b) Validation accuracy", ylabel = "validation accuracy (%)",
             col = "val_acc", scale = 100, key = "bottom right"},
  val_loss1 = {title = "(1a) Validation loss", ylabel = "validation loss (mean cross-entropy)",
               col = "val_loss", scale = 1, key = "top right"},
  val_acc1 = {title = "(1b) Validation accuracy", ylabel = "validation accuracy (%)",
              col = "val_acc", scale = 100, key = "bottom right"},
  -- two curves per run: training (dashed) and validation (solid)
  loss2 = {title = "(2a) Training and validation loss", ylabel = "loss (mean cross-entropy)",
           cols = {{"train_loss", "training"}, {"val_loss", "validation"}}, key = "top right"},
  acc2 = {title = "(2b) Training and validation accuracy", ylabel = "accuracy (%)",
          cols = {{"train_acc", "training"}, {"val_acc", "validation"}}, key = "bottom right"},
}
local FIGURES = {
  ["1"] = {"val_loss1", "val_acc1"},
  ["2"] = {"loss2", "acc2"},
  ["3"] = {"prob", "train_acc"},
  ["4"] = {"val_loss", "val_acc"},
  all = {"prob", "train_acc", "val_loss", "val_acc"},
}

--- The curves a figure draws: {panel = {{run=, method=}, ...}} in order.
function M.curves(runs, figure)
  local out = {}
  for _, id in ipairs(FIGURES[figure]) do
    local p = PANELS[id]
    local list = {}
    for _, r in ipairs(runs) do
      if not p.keep or p.keep(r) then list[#list + 1] = r end
    end
    out[#out + 1] = {id = id, panel = p, runs = list}
  end
  return out
end

local function write_data(path, run)
  local f = assert(io.open(path, "w"))
  f:write("# epoch train_acc(%) val_loss val_acc(%) accept_prob train_loss  -- ", run.dir, "\n")
  local c = run.cols
  local function v(x, s) return (x == nil or isnan(x)) and "?" or string.format("%.9g", x * s) end
  for i = 1, run.n do
    f:write(string.format("%s %s %s %s %s %s\n", v(c.epoch[i], 1), v(c.train_acc[i], 100),
                          v(c.val_loss[i], 1), v(c.val_acc[i], 100), v(c.accept_prob[i], 1),
                          v(c.train_loss[i], 1)))
  end
  f:close()
end
local DATA_COLUMN = {train_acc = 2, val_loss = 3, val_acc = 4, accept_prob = 5, train_loss = 6}

--- The gnuplot script for `runs` (data files data[i]) into `output`.
function M.script(o)
  local L = {}
  local function add(fmt, ...) L[#L + 1] = string.format(fmt, ...) end
  local cairo = o.format == "svg" or o.terminal == "pngcairo"
  if o.format == "svg" then
    add("set terminal svg size %d,%d dynamic noenhanced font 'Sans,11' background '#ffffff'", o.w, o.h)
  elseif o.terminal == "pngcairo" then
    add("set terminal pngcairo size %d,%d noenhanced font 'Sans,10' background '#ffffff'", o.w, o.h)
  else
    add("set terminal png size %d,%d noenhanced background '#ffffff'", o.w, o.h)
  end
  add("set output %s", gq(o.output))
  add("set datafile missing '?'")
  add("set grid lc rgb '#dddddd'")
  add("set border lc rgb '#444444'")
  add("set xlabel 'epoch'")
  local max_epoch = 0
  for _, pn in ipairs(o.panels) do
    for _, r in ipairs(pn.runs) do
      local e = r.cols.epoch[r.n]
      if e == e and e > max_epoch then max_epoch = e end
    end
  end
  if max_epoch <= 20 then add("set xtics 1") else add("set xtics autofreq") end
  local npanels = #o.panels
  local rows, cols = npanels > 2 and 2 or 1, 2
  add("set multiplot layout %d,%d title %s font ',13'", rows, cols, gq(o.title))
  for _, pn in ipairs(o.panels) do
    local p = pn.panel
    add("set title %s", gq(p.title))
    add("set ylabel %s", gq(p.ylabel))
    add("set key %s opaque box lc rgb '#cccccc'", p.key)
    -- The probability stays near 1 for long: autoscale below, keep 1 in view.
    if p.col == "accept_prob" then add("set yrange [*:1.002]") else add("set yrange [*:*]") end
    add("set xrange [*:*]")
    if #pn.runs == 0 then
      add("set label 1 %s at graph 0.5,0.5 center", gq(p.empty or "no data"))
      add("set yrange [0:1]")
      add("plot [0:1] NaN notitle")
      add("unset label 1")
    else
      local parts, titled = {}, {}
      for _, r in ipairs(pn.runs) do
        local m = o.method_index[r.method]
        local colour = COLOURS[(m - 1) % #COLOURS + 1]
        -- Seeds overlap: lines are slightly transparent where the terminal can.
        local rgb = cairo and ("#30" .. colour) or ("#" .. colour)
        local name = o.method_count[r.method] > 1
          and string.format("%s (%d seeds)", r.method, o.method_count[r.method]) or r.method
        -- one curve, or (p.cols) training dashed and validation solid
        for k, c in ipairs(p.cols or {{p.col}}) do
          local key = r.method .. "\0" .. k
          local title = "notitle"
          if not titled[key] then
            titled[key] = true
            title = "title " .. gq(c[2] and (name .. ", " .. c[2]) or name)
          end
          parts[#parts + 1] = string.format("%s using 1:%d with lines lw %s lc rgb '%s' dt %d %s",
                                            gq(o.data[r]), DATA_COLUMN[c[1]], cairo and "1.2" or "1",
                                            rgb, (p.cols and k == 1) and 2 or 1, title)
        end
      end
      add("plot %s", table.concat(parts, ", \\\n     "))
    end
  end
  add("unset multiplot")
  add("set output")
  return table.concat(L, "\n") .. "\n"
end

local function copy_file(src, dst)
  local i = io.open(src, "rb")
  if not i then return nil, "gnuplot wrote no " .. src end
  local data = i:read("a")
  i:close()
  if #data == 0 then return nil, "gnuplot wrote an empty file" end
  local o, err = io.open(dst, "wb")
  if not o then return nil, string.format("cannot write %s: %s", dst, tostring(err)) end
  local ok, werr = o:write(data)
  o:close()
  if not ok then return nil, string.format("cannot write %s: %s", dst, tostring(werr)) end
  return #data
end

-- `sgdsa plot` takes a word that begins with an option's name as that option
local function prefix_opt(a, name) return a:sub(1, #name) == name end

-- The options of `sgdsa plot` that results.parse_command does not know.
local function option(o, a, value)
  if prefix_opt(a, "--title") then
    o.title = value()
    if not o.title then return nil, "--title needs a text" end
  elseif prefix_opt(a, "--size") then
    local v = value() or ""
    local w, h = v:match("^(%d+)x(%d+)$")
    w, h = tonumber(w), tonumber(h)
    if not w or w < 200 or h < 150 or w > 10000 or h > 10000 then
      return nil, string.format("--size %s: use WxH in pixels, e.g. 1200x900", v)
    end
    o.w, o.h = w, h
  else
    return false
  end
  return true
end

function M.main(args)
  local o, err = results.parse_command(args, {figure = "all"}, {
    choices = {["--figure"] = {"figure", FIGURES, "use 1, 2, 3, 4 or all"}},
    option = option, is_opt = prefix_opt,
  })
  if not o then return usage(err) end
  if o.help then io.write(HELP); return 0 end
  if #o.folders == 0 then return usage("no run folders given") end
  if not o.output then return usage("no output file (-o FILE.png or -o FILE.svg)") end
  local ext = o.output:lower():match("%.(%w+)$")
  if ext ~= "png" and ext ~= "svg" then
    return usage(string.format("-o %s: the file name must end in .png or .svg", o.output))
  end

  local gp, gerr = M.gnuplot()
  if not gp then
    io.stderr:write("sgdsa plot: ", gerr, "\n")
    return 1
  end
  local terminal = ext == "svg" and "svg" or (gp.terminals.pngcairo and "pngcairo" or "png")
  if not gp.terminals[terminal] then
    io.stderr:write(string.format("sgdsa plot: this gnuplot (%s) has no %s terminal\n", gp.exe, terminal))
    return 1
  end

  local runs, status = results.load_command(o, "sgdsa plot", usage)
  if not runs then return status end
  local kept, empty = {}, {}
  for _, r in ipairs(runs) do
    if r.n > 0 then kept[#kept + 1] = r else empty[#empty + 1] = r.dir end
  end
  if #kept == 0 then
    io.stderr:write("sgdsa plot: no epoch logged yet in ", table.concat(empty, ", "), "\n")
    return 1
  end
  for _, d in ipairs(empty) do
    io.stderr:write("sgdsa plot: warning: ", d, " has no epoch logged yet; left out\n")
  end

  local label_of = results.labels(kept)
  for _, r in ipairs(kept) do r.method = label_of(r) end
  local method_index, method_count, methods, exps, seen_exp = {}, {}, {}, {}, {}
  for _, r in ipairs(kept) do
    if not method_index[r.method] then
      methods[#methods + 1] = r.method
      method_index[r.method] = #methods
    end
    method_count[r.method] = (method_count[r.method] or 0) + 1
    local exp = r.script or r.experiment
    if not seen_exp[exp] then seen_exp[exp] = true; exps[#exps + 1] = exp end
  end

  local tmp = os.tmpname()
  os.remove(tmp)
  assert(core.mkdir_p(tmp))
  local data = {}
  for i, r in ipairs(kept) do
    data[r] = string.format("%s/run-%d.dat", tmp, i)
    write_data(data[r], r)
  end
  local panels = M.curves(kept, o.figure)
  local w, h = o.w or 1200, o.h or (#panels > 2 and 900 or 450)
  local out_tmp = string.format("%s/out.%s", tmp, ext)
  local script = M.script{format = ext, terminal = terminal, w = w, h = h, output = out_tmp,
                          title = o.title or table.concat(exps, " vs "), panels = panels, data = data,
                          method_index = method_index, method_count = method_count}
  local sf = assert(io.open(tmp .. "/plot.gp", "w"))
  sf:write(script)
  sf:close()
  local gout, ok = shell_output(q(gp.exe) .. " " .. q(tmp .. "/plot.gp") .. " 2>&1")
  if not ok then
    io.stderr:write("sgdsa plot: gnuplot failed (script and data kept in ", tmp, "):\n",
                    gout or "", "\n")
    return 1
  end
  local size, cerr = copy_file(out_tmp, o.output)
  if not size then
    io.stderr:write("sgdsa plot: ", cerr, " (script and data kept in ", tmp, ")\n")
    return 1
  end
  os.execute("rm -rf " .. q(tmp))
  local ncurves = 0
  for _, p in ipairs(panels) do ncurves = ncurves + #p.runs * (p.panel.cols and #p.panel.cols or 1) end
  io.write(string.format("sgdsa plot: %s (%s, %d bytes): figure %s, %d runs of %d method%s, %d curves\n",
                         o.output, terminal, size, o.figure, #kept, #methods, #methods > 1 and "s" or "",
                         ncurves))
  return 0
end

return M
