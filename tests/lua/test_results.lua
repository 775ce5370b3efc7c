-- test_results.lua - sgdsa table and sgdsa plot on synthetic run folders
-- written through the h5 API in the run-folder layout (docs/FORMAT.md):
-- the table's numbers against hand-computed ones (the best validation
-- epoch with its tie-breaks, --at last and best-each, --loss batch), the
-- CSV/Markdown/text outputs, the PNG and SVG files (magic bytes, size, number of curves), and
-- the error paths (missing folders, empty logs, unknown options, no gnuplot).
local T = dofile("tests/lua/testlib.lua")
local core = require "sgdsa.core"
local h5 = require "sgdsa.h5"
local results = require "sgdsa.results"
local tbl = require "sgdsa.table"
local sweep = require "sgdsa.sweep"
local trainer = require "sgdsa.trainer"
local sg = require "sgdsa"

local BIN = os.getenv("SGDSA_BIN")
local tmp = T.scratch("results")

local sgdsa, read = T.sgdsa, T.read_file
local have_gnuplot = os.execute("command -v gnuplot >/dev/null 2>&1")
local function have_gnuplot_now() return have_gnuplot end

-- A synthetic run as the trainer writes it (its config text and its epoch
-- log columns): epochs rows of (loss, acc) given by functions of the epoch.
local EPOCHS = 4
local function make_run(dir, o)
  assert(core.mkdir_p(dir))
  local f <close> = h5.open(dir .. "/" .. results.LOG, "w")
  f:write_text(results.CONFIG, trainer.config_text{
    model = {o.model, classes = 10}, data = {"fashion_mnist", batch = o.batch or 128, limit = 1000},
    optim = o.optim, seed = o.seed, epochs = o.epochs_total or EPOCHS, hooks = {}, label = o.label,
  })
  if o.script then f:write_text("script_path", o.script) end
  f:attr("seed", o.seed)
  f:attr("kind", "run-log")
  local log = h5.log(f, results.EPOCH_GROUP, trainer.EPOCH_FIELDS)
  for e = 1, (o.epochs or EPOCHS) do
    local values = {epoch = e, step = 10 * e, steps = 10 * e, epoch_steps = 10, train_loss = 2 / e,
                    train_acc = o.tacc(e), val_loss = o.loss(e), val_acc = o.acc(e),
                    T = 0.8 ^ (e - 1), temperature = 0.8 ^ (e - 1), accept_rate = o.prob(e) * 0.9,
                    mean_prob = o.prob(e), nonfinite = 0, time = 1, seconds = 1, images_per_s = 1000}
    local row = {}
    for _, fd in ipairs(trainer.EPOCH_FIELDS) do
      local name = type(fd) == "table" and fd[1] or fd
      row[name] = values[name]
    end
    log:append(row)
  end
  log:flush()
end

-- Method A (SGD-SA) and method B (Scheduled-SGD), 3 seeds each, model lenet;
-- final loss/acc chosen so that best, mean and sd are easy to check.
local A_loss, A_acc = {0.30, 0.25, 0.35}, {0.90, 0.91, 0.88}
local B_loss, B_acc = {0.40, 0.42, 0.38}, {0.87, 0.86, 0.89}
local SA = sg.optim.sgdsa{H = {0.9, 0.5, 0.1}, T0 = 1, alpha = 0.8}
local SGD = sg.optim.sgd{schedule = {{2, 0.1}, {2, 0.01}}}
for s = 0, 2 do
  make_run(string.format("%s/exp_sa/seed-%d", tmp, s), {
    model = "lenet", optim = SA, seed = s,
    loss = function(e) return e == EPOCHS and A_loss[s + 1] or 1 / e end,
    acc = function(e) return e == EPOCHS and A_acc[s + 1] or 0.5 end,
    tacc = function(e) return 0.5 + 0.1 * e end,
    prob = function(e) return 1 - 0.2 * e + 0.01 * s end,
  })
  make_run(string.format("%s/exp_sgd/seed-%d", tmp, s), {
    model = "lenet", optim = SGD, seed = s,
    loss = function(e) return e == EPOCHS and B_loss[s + 1] or 1 / e end,
    acc = function(e) return e == EPOCHS and B_acc[s + 1] or 0.6 end,
    tacc = function(e) return 0.6 + 0.1 * e end,
    prob = function() return 1 end,
  })
end
-- A second model for SGD-SA (seeds 0 and 1), and an unfinished run.
for s = 0, 1 do
  make_run(string.format("%s/exp_sa_mlp/seed-%d", tmp, s), {
    model = "mlp", optim = SA, seed = s,
    loss = function(e) return 0.5 + s / 10 + 0 * e end, acc = function() return 0.8 + s / 100 end,
    tacc = function() return 0.8 end, prob = function() return 0.5 end,
  })
end
make_run(tmp .. "/unfinished", {model = "lenet", optim = SA, seed = 7, epochs = 2, epochs_total = 5,
  loss = function() return 0.6 end, acc = function() return 0.7 end, tacc = function() return 0.7 end,
  prob = function() return 0.9 end})
make_run(tmp .. "/empty", {model = "lenet", optim = SA, seed = 3, epochs = 0,
  loss = function() return 0 end, acc = function() return 0 end, tacc = function() return 0 end,
  prob = function() return 0 end})

-- A run whose best validation epoch needs the tie-breaks: epochs 2, 4 and 6
-- share the highest accuracy 0.80, 4 and 6 the lower loss 0.40, and 4 is
-- the earlier; epoch 3 (NaN accuracy) and 5 (NaN loss) are skipped although
-- they hold the lowest loss and the highest accuracy. Minibatch 64.
local TIES_LOSS = {0.50, 0.45, 0.10, 0.40, 0 / 0, 0.40, 0.35}
local TIES_ACC = {0.70, 0.80, 0 / 0, 0.80, 0.95, 0.80, 0.78}
make_run(tmp .. "/ties", {model = "lenet", optim = SA, seed = 5, batch = 64,
  epochs = #TIES_LOSS, epochs_total = #TIES_LOSS,
  loss = function(e) return TIES_LOSS[e] end, acc = function(e) return TIES_ACC[e] end,
  tacc = function() return 0.7 end, prob = function() return 0.9 end})

-- Runs labelled by what they are: two scripts with custom optimizers (one
-- seed each), one with a label=, and a second SGD-SA experiment sharing
-- exp_sa's model and seeds.
local CUSTOM = sg.optim.optimizer{neighborhood = sg.optim.lr_set{H = {0.1}}, acceptance = sg.optim.greedy{}}
local function flat(v) return function() return v end end
make_run(tmp .. "/tabu-20260101-120000", {model = "lenet", optim = CUSTOM, seed = 0,
  script = "experiments/example_tabu_neighborhood.lua", loss = flat(0.5), acc = flat(0.8),
  tacc = flat(0.8), prob = flat(0.7)})
make_run(tmp .. "/rtr-20260101-130000", {model = "lenet", optim = CUSTOM, seed = 0,
  script = "/home/me/example_record_to_record.lua", loss = flat(0.6), acc = flat(0.7),
  tacc = flat(0.7), prob = flat(0.6)})
make_run(tmp .. "/labelled", {model = "lenet", optim = CUSTOM, seed = 0, label = "my rule",
  script = "experiments/example_tabu_neighborhood.lua", loss = flat(0.4), acc = flat(0.9),
  tacc = flat(0.9), prob = flat(0.5)})
for s = 0, 1 do
  make_run(string.format("%s/exp_sa_bigH/seed-%d", tmp, s), {model = "lenet", optim = SA, seed = s,
    loss = flat(0.45), acc = flat(0.85), tacc = flat(0.85), prob = flat(0.5)})
end

local function mean_sd(v)
  local m = 0
  for _, x in ipairs(v) do m = m + x end
  m = m / #v
  local ss = 0
  for _, x in ipairs(v) do ss = ss + (x - m) ^ 2 end
  return m, math.sqrt(ss / (#v - 1))
end

T.test("seed lists", function()
  local s = assert(sweep.parse_seeds("0-3,7,2"))
  T.eq(table.concat(s, ","), "0,1,2,3,7", "0-3,7,2")
  T.eq(table.concat(assert(sweep.parse_seeds("5")), ","), "5", "single")
  T.eq(table.concat(assert(sweep.parse_seeds(9)), ","), "9", "number")
  T.check(not sweep.parse_seeds("3-1"), "descending range refused")
  T.check(not sweep.parse_seeds("a"), "letters refused")
  T.check(not sweep.parse_seeds("1,,2"), "empty item refused")
  T.check(not sweep.parse_seeds(""), "empty refused")
end)

T.test("find: sweep and run folders", function()
  local dirs = assert(results.find({tmp .. "/exp_sa", tmp .. "/unfinished/"}))
  T.eq(#dirs, 4, "3 seeds + 1 run")
  T.eq(dirs[1], tmp .. "/exp_sa/seed-0", "first")
  T.eq(dirs[4], tmp .. "/unfinished", "trailing slash dropped")
  local none, err = results.find({tmp})
  T.check(none == nil and err:find("not a run folder", 1, true), "parent of sweeps: " .. tostring(err))
  none, err = results.find({tmp .. "/nope"})
  T.check(none == nil and err:find("no such folder", 1, true), "missing: " .. tostring(err))
end)

T.test("load: a run record", function()
  local r = assert(results.load(tmp .. "/exp_sa/seed-2"))
  T.eq(r.method, "SGD-SA", "method")
  T.eq(r.model, "lenet", "model")
  T.eq(r.seed, 2, "seed")
  T.eq(r.experiment, "exp_sa", "experiment")
  T.eq(r.n, EPOCHS, "epochs logged")
  T.eq(r.epochs_total, EPOCHS, "epochs configured")
  T.near(r.cols.val_loss[EPOCHS], A_loss[3], 1e-12, "final val loss")
  T.near(r.cols.accept_prob[2], 1 - 0.4 + 0.02, 1e-12, "prob")
  T.eq(assert(results.load(tmp .. "/exp_sgd/seed-0")).method, "Scheduled-SGD", "sgd method")
  T.check(results.run_state(tmp .. "/exp_sa/seed-0").finished, "finished run")
  T.check(not results.run_state(tmp .. "/unfinished").finished, "unfinished run")
end)

T.test("table model: best, mean, sd", function()
  local runs = assert(results.load_all({tmp .. "/exp_sgd", tmp .. "/exp_sa"}))
  local t = tbl.build(runs)
  T.eq(t.at, "best", "default rule")
  T.eq(t.loss, "example", "default loss scale")
  T.eq(#t.methods, 2, "methods")
  T.eq(t.methods[1].label, "Scheduled-SGD", "first given first")
  local sa = t.methods[2]
  -- Every epoch before the last has accuracy 0.5 (A) or 0.6 (B): the best
  -- validation epoch is the last one, epoch 4.
  for s = 1, 3 do
    local c = sa.rows[s].cells.lenet
    T.eq(c.epoch, EPOCHS, "best epoch of seed " .. (s - 1))
    T.near(c.loss, A_loss[s], 1e-12, "loss of seed " .. (s - 1))
    T.near(c.acc, A_acc[s] * 100, 1e-9, "acc of seed " .. (s - 1))
  end
  T.near(sa.best.lenet.loss, 0.25, 1e-12, "best loss")
  T.near(sa.best.lenet.acc, 91, 1e-9, "best acc %")
  local m, sd = mean_sd(A_loss)
  T.near(sa.mean.lenet.loss, m, 1e-12, "mean loss")
  T.near(sa.sd.lenet.loss, sd, 1e-12, "sd loss")
  m, sd = mean_sd({B_acc[1] * 100, B_acc[2] * 100, B_acc[3] * 100})
  T.near(t.methods[1].mean.lenet.acc, m, 1e-9, "mean acc")
  T.near(t.methods[1].sd.lenet.acc, sd, 1e-9, "sd acc")
end)

T.test("best validation epoch: accuracy, then loss, then the earlier epoch", function()
  local r = assert(results.load(tmp .. "/ties"))
  T.eq(tbl.best_epoch(r), 4, "ties run: epoch 4")
  local c = tbl.build({r}).methods[1].rows[1].cells.lenet
  T.eq(c.epoch, 4, "epoch shown")
  T.near(c.loss, 0.40, 1e-12, "loss of epoch 4")
  T.near(c.acc, 80, 1e-9, "accuracy of epoch 4")
  -- Same accuracy and loss at every epoch: the first epoch.
  local mlp = assert(results.load(tmp .. "/exp_sa_mlp/seed-1"))
  T.eq(tbl.best_epoch(mlp), 1, "constant run: epoch 1")
  c = tbl.build({mlp}).methods[1].rows[1].cells.mlp
  T.eq(c.epoch, 1, "constant run epoch shown")
  T.near(c.loss, 0.6, 1e-12, "constant run loss")
  T.near(c.acc, 81, 1e-9, "constant run accuracy")
  -- No epoch logged: no best epoch, the cell is empty.
  local empty = assert(results.load(tmp .. "/empty"))
  T.eq(tbl.best_epoch(empty), nil, "empty run")
  c = tbl.build({empty}).methods[1].rows[1].cells.lenet
  T.check(c.epoch == nil and c.loss ~= c.loss and c.acc ~= c.acc, "empty run: no values")
end)

T.test("--at last (final) and best-each", function()
  local r = assert(results.load(tmp .. "/ties"))
  for _, at in ipairs({"last", "final"}) do
    local t = tbl.build({r}, {at = at})
    T.eq(t.at, "last", at .. " is last")
    local c = t.methods[1].rows[1].cells.lenet
    T.eq(c.epoch, 7, at .. ": last epoch")
    T.near(c.loss, 0.35, 1e-12, at .. ": loss of epoch 7")
    T.near(c.acc, 78, 1e-9, at .. ": accuracy of epoch 7")
  end
  -- best-each: the lowest loss (0.10, epoch 3) and the highest accuracy
  -- (0.95, epoch 5), each column skipping only its own NaNs.
  local c = tbl.build({r}, {at = "best-each"}).methods[1].rows[1].cells.lenet
  T.eq(c.epoch, nil, "best-each: no single epoch")
  T.near(c.loss, 0.10, 1e-12, "best-each loss")
  T.near(c.acc, 95, 1e-9, "best-each accuracy")
  -- Scheduled-SGD seed 0: losses 1, 1/2, 1/3, 0.40 and accuracies 0.6, 0.6, 0.6, 0.87.
  c = tbl.build({assert(results.load(tmp .. "/exp_sgd/seed-0"))}, {at = "best-each"})
      .methods[1].rows[1].cells.lenet
  T.near(c.loss, 1 / 3, 1e-12, "best-each loss of epoch 3")
  T.near(c.acc, 87, 1e-9, "best-each accuracy of epoch 4")
  T.raises(function() tbl.build({r}, {at = "first"}) end, "unknown epoch rule", "bad rule")
end)

T.test("--loss batch: each run divided by its own minibatch size", function()
  local runs = assert(results.load_all({tmp .. "/exp_sa", tmp .. "/ties"}))
  local t = tbl.build(runs, {loss = "batch"})
  T.eq(t.loss, "batch", "scale")
  T.eq(table.concat(t.batches, "/"), "64/128", "batch sizes")
  local sa = t.methods[1]
  T.eq(#sa.rows, 4, "seeds 0, 1, 2 and 5")
  T.near(sa.rows[1].cells.lenet.loss, 0.30 / 128, 1e-12, "seed 0: 0.30 / 128")
  T.near(sa.rows[4].cells.lenet.loss, 0.40 / 64, 1e-12, "seed 5: 0.40 / 64 (its best epoch)")
  T.near(sa.rows[4].cells.lenet.acc, 80, 1e-9, "accuracy not scaled")
  T.near(sa.best.lenet.loss, 0.25 / 128, 1e-12, "best loss 0.001953125")
  local m, sd = mean_sd({0.30 / 128, 0.25 / 128, 0.35 / 128, 0.40 / 64})
  T.near(sa.mean.lenet.loss, m, 1e-12, "mean of the scaled losses")
  T.near(sa.sd.lenet.loss, sd, 1e-12, "sd of the scaled losses")
  local nobatch = assert(results.load(tmp .. "/ties"))
  nobatch.batch = nil
  T.raises(function() tbl.build({nobatch}, {loss = "batch"}) end, "no minibatch size", "no batch")
  T.raises(function() tbl.build(runs, {loss = "epoch"}) end, "unknown loss scale", "bad scale")
end)

T.test("runs labelled by what they are: the script, label=, clashes", function()
  local tabu = assert(results.load(tmp .. "/tabu-20260101-120000"))
  T.eq(tabu.script, "example_tabu_neighborhood", "the script's name")
  T.eq(tabu.method, "example_tabu_neighborhood", "a custom optimizer: the script's name")
  T.eq(assert(results.load(tmp .. "/rtr-20260101-130000")).method, "example_record_to_record", "the other script")
  T.eq(assert(results.load(tmp .. "/labelled")).method, "my rule", "label= wins")
  local runs = assert(results.load_all({tmp .. "/tabu-20260101-120000", tmp .. "/rtr-20260101-130000"}))
  local t = tbl.build(runs)
  T.eq(#t.methods, 2, "two scripts with custom optimizers: two methods")
  runs = assert(results.load_all({tmp .. "/exp_sa", tmp .. "/exp_sa_bigH"}))
  local label = results.labels(runs)
  T.eq(label(runs[1]), "SGD-SA [exp_sa]", "two SGD-SA experiments with the same seeds")
  T.eq(label(runs[4]), "SGD-SA [exp_sa_bigH]", "... told apart")
  t = tbl.build(runs)
  T.eq(#t.methods, 2, "two SGD-SA experiments: two methods")
  runs = assert(results.load_all({tmp .. "/exp_sa", tmp .. "/exp_sa_bigH"}, {"SA small H", "SA big H"}))
  T.eq(runs[1].method, "SA small H", "--label of the first folder")
  T.eq(runs[5].method, "SA big H", "--label of the second folder")
end)

if not BIN or BIN == "" then T.skip("SGDSA_BIN not set: the command tests need the sgdsa binary") end

T.test("sgdsa table/plot --label, sgdsa inspect's method", function()
  local code, out = sgdsa({"table", tmp .. "/tabu-20260101-120000", tmp .. "/rtr-20260101-130000",
                           "--format", "csv"})
  T.eq(code, 0, "exit (" .. out .. ")")
  T.check(out:find("\nexample_tabu_neighborhood,0,", 1, true) and out:find("\nexample_record_to_record,0,", 1, true),
          "the scripts name the methods: " .. out)
  code, out = sgdsa({"table", tmp .. "/exp_sa", tmp .. "/exp_sgd", "--label", "annealed",
                     "--label=plain", "--format", "csv"})
  T.eq(code, 0, "exit (" .. out .. ")")
  T.check(out:find("\nannealed,0,", 1, true) and out:find("\nplain,best,", 1, true), "--label: " .. out)
  code, out = sgdsa({"table", tmp .. "/exp_sa", tmp .. "/exp_sgd", "--label", "annealed"})
  T.eq(code, 2, "one --label for two folders")
  T.check(out:find("1 --label for 2 folders", 1, true), out)
  code, out = sgdsa({"inspect", tmp .. "/tabu-20260101-120000"})
  T.check(out:find("method: example_tabu_neighborhood (in sgdsa table and sgdsa plot)", 1, true), out)
  code, out = sgdsa({"inspect", tmp .. "/labelled"})
  T.check(out:find("method: my rule (its label=)", 1, true), out)
  if not have_gnuplot_now() then return end
  local svg = tmp .. "/labels.svg"
  code, out = sgdsa({"plot", tmp .. "/tabu-20260101-120000", tmp .. "/rtr-20260101-130000", "-o", svg})
  T.eq(code, 0, "plot exit (" .. out .. ")")
  T.check(out:find("2 runs of 2 methods", 1, true), "two methods, not one: " .. out)
  local s = assert(read(svg))
  T.check(s:find("example_tabu_neighborhood", 1, true) and s:find("example_record_to_record", 1, true),
          "legend names the scripts")
  code, out = sgdsa({"plot", tmp .. "/exp_sa", tmp .. "/exp_sa_bigH", "-o", svg, "--figure", "4"})
  T.check(code == 0 and out:find("5 runs of 2 methods", 1, true), "SGD-SA twice, told apart: " .. out)
  T.check(assert(read(svg)):find("SGD-SA [exp_sa_bigH] (2 seeds)", 1, true), "legend")
  code, out = sgdsa({"plot", tmp .. "/exp_sa", tmp .. "/exp_sa_bigH", "-o", svg, "--label", "A",
                     "--label", "B"})
  T.check(code == 0 and assert(read(svg)):find("B (2 seeds)", 1, true), "--label in the legend: " .. out)
end)

T.test("sgdsa table: csv numbers match the logs", function()
  local code, out = sgdsa({"table", tmp .. "/exp_sa", tmp .. "/exp_sgd", "--format", "csv"})
  T.eq(code, 0, "exit code (" .. out .. ")")
  local rows = {}
  for line in out:gmatch("[^\n]+") do rows[#rows + 1] = line end
  T.eq(rows[1], "method,seed,lenet_epoch,lenet_loss_per_example,lenet_accuracy", "header")
  T.eq(#rows, 1 + 2 * (3 + 3), "rows: 3 seeds + best/mean/sd per method")
  for s = 0, 2 do
    local method, seed, e, l, a = rows[2 + s]:match("^([^,]*),([^,]*),([^,]*),([^,]*),([^,]*)$")
    T.eq(method, "SGD-SA", "method")
    T.eq(tonumber(seed), s, "seed")
    T.eq(e, "4", "best validation epoch")
    local r = assert(results.load(string.format("%s/exp_sa/seed-%d", tmp, s)))
    T.near(tonumber(l), r.cols.val_loss[4], 1e-8, "loss from the log")
    T.near(tonumber(a), r.cols.val_acc[4] * 100, 1e-8, "acc from the log")
  end
  T.eq(rows[5], "SGD-SA,best,,0.25,91", "best row")
  code, out = sgdsa({"table", tmp .. "/ties", "--format=csv", "--loss", "batch"})
  T.eq(code, 0, "--loss batch exit (" .. out .. ")")
  T.eq(out, "method,seed,lenet_epoch,lenet_loss_per_batch,lenet_accuracy\n"
         .. "SGD-SA,5,4,0.00625,80\nSGD-SA,best,,0.00625,80\nSGD-SA,mean,,0.00625,80\nSGD-SA,sd,,,\n",
       "ties, loss per batch")
  code, out = sgdsa({"table", tmp .. "/ties", "--format", "csv", "--at", "last"})
  T.eq(code, 0, "--at last exit (" .. out .. ")")
  T.check(out:find("\nSGD-SA,5,7,0.35,78\n", 1, true), "--at last row: " .. out)
  code, out = sgdsa({"table", tmp .. "/ties", "--format", "csv", "--at=final"})
  T.check(code == 0 and out:find("\nSGD-SA,5,7,0.35,78\n", 1, true), "--at=final row: " .. out)
  code, out = sgdsa({"table", tmp .. "/ties", "--format", "csv", "--at", "best-each"})
  T.eq(code, 0, "--at best-each exit (" .. out .. ")")
  T.eq(out:match("^[^\n]*"), "method,seed,lenet_loss_per_example,lenet_accuracy", "best-each header")
  T.check(out:find("\nSGD-SA,5,0.1,95\n", 1, true), "--at best-each row: " .. out)
end)

T.test("sgdsa table: text and markdown, notes, two models, unfinished", function()
  local code, out = sgdsa({"table", tmp .. "/exp_sa", tmp .. "/exp_sgd", tmp .. "/exp_sa_mlp",
                           tmp .. "/unfinished"})
  T.eq(code, 0, "exit code (" .. out .. ")")
  T.check(out:find("lenet", 1, true) and out:find("mlp", 1, true), "both models: " .. out)
  T.check(out:find("Best SGD-SA", 1, true), "best row")
  T.check(out:find("Mean ± sd Scheduled-SGD", 1, true), "mean row")
  T.check(out:find("\n%s+Epoch%s+Loss/example%s+Accuracy%s+Epoch%s+Loss/example%s+Accuracy\n"),
          "column names: " .. out)
  T.check(out:find("at its best validation epoch: the epoch of highest validation accuracy", 1, true),
          "epoch rule note: " .. out)
  T.check(out:find("Loss (loss/example): mean cross-entropy per validation example; the paper's "
                   .. "Table 1 divides it by the minibatch size (128 here", 1, true), "loss note: " .. out)
  T.check(out:find("0.600000*", 1, true), "unfinished marked")
  T.check(out:find("91.00", 1, true), "best accuracy")
  code, out = sgdsa({"table", tmp .. "/ties", "--at", "last", "--loss", "batch"})
  T.eq(code, 0, "text, last, batch exit (" .. out .. ")")
  T.check(out:find("Loss/batch", 1, true), "loss/batch column: " .. out)
  T.check(out:find("0.00546875", 1, true), "0.35 / 64: " .. out)
  T.check(out:find("at its last logged epoch.", 1, true), "last note: " .. out)
  T.check(out:find("divided by the run's minibatch size (64 here", 1, true), "batch note: " .. out)
  local file = tmp .. "/table.md"
  code, out = sgdsa({"table", tmp .. "/exp_sa", tmp .. "/exp_sgd", "--format=markdown", "-o", file})
  T.eq(code, 0, "markdown exit (" .. out .. ")")
  local md = assert(read(file))
  T.check(md:find("| Method | Seed | lenet epoch | lenet loss/example | lenet accuracy |", 1, true),
          "md header: " .. md)
  T.check(md:find("| SGD-SA | 0 | 4 | 0.300000 | 90.00 |", 1, true), "md seed row: " .. md)
  T.check(md:find("| **Best SGD-SA** |  |  | 0.250000 | 91.00 |", 1, true), "md best row: " .. md)
end)

T.test("sgdsa table: errors", function()
  local code, out = sgdsa({"table", tmp .. "/nope"})
  T.eq(code, 1, "missing folder")
  T.check(out:find("no such folder", 1, true), out)
  code, out = sgdsa({"table", tmp .. "/exp_sa", "--bogus"})
  T.eq(code, 2, "unknown option")
  T.check(out:find("unknown option", 1, true), out)
  code = sgdsa({"table", tmp .. "/exp_sa", "--format", "xml"})
  T.eq(code, 2, "bad format")
  code, out = sgdsa({"table", tmp .. "/exp_sa", "--at", "first"})
  T.eq(code, 2, "bad --at")
  T.check(out:find("--at first: use best, last (or final) or best-each", 1, true), out)
  code, out = sgdsa({"table", tmp .. "/exp_sa", "--at"})
  T.eq(code, 2, "--at without a value")
  code, out = sgdsa({"table", tmp .. "/exp_sa", "--loss=epoch"})
  T.eq(code, 2, "bad --loss")
  T.check(out:find("--loss epoch: use example or batch", 1, true), out)
  code = sgdsa({"table"})
  T.eq(code, 2, "no folders")
  code, out = sgdsa({"table", "--help"})
  T.eq(code, 0, "help")
  T.check(out:find("mean cross-entropy", 1, true), "help names the loss")
  T.check(out:find("--at best-each", 1, true) and out:find("--loss batch", 1, true), "help options")
end)

-- Curves in an SVG written by gnuplot: each plotted curve is a group with id
-- "gnuplot_plot_<n><panel letter>" (an opaque key repeats the groups: ids are
-- counted once), and draws one <path> through its points; `colours` counts
-- the paths of each stroke colour with at least `points` points.
local function svg_curves(svg, points)
  local n, seen = 0, {}
  for id in svg:gmatch('<g id="(gnuplot_plot_%d+%a*)"') do
    if not seen[id] then seen[id] = true; n = n + 1 end
  end
  local colours = {}
  for rgb, d in svg:gmatch("<path stroke='rgb%(([%d, ]+)%)'[^>]-d='([^']*)'") do
    local _, npts = d:gsub("[ML]", "")
    if npts >= (points or 2) then
      rgb = rgb:gsub(" ", "")
      colours[rgb] = (colours[rgb] or 0) + 1
    end
  end
  return n, colours
end

local function png_size(data)
  if data:sub(1, 8) ~= "\137PNG\r\n\26\n" then return nil end
  return string.unpack(">I4", data, 17), string.unpack(">I4", data, 21)
end


T.test("sgdsa plot: svg curves and png", function()
  if not have_gnuplot then io.write("  (gnuplot not installed: skipped)\n"); return end
  local svg = tmp .. "/fig.svg"
  local code, out = sgdsa({"plot", tmp .. "/exp_sa", tmp .. "/exp_sgd", "-o", svg})
  T.eq(code, 0, "exit (" .. out .. ")")
  local s = assert(read(svg), "svg written")
  T.check(s:find("<svg", 1, true), "an svg document")
  -- 3a: the 3 SA runs (SGD's probability is always 1); 3b, 4a, 4b: all 6.
  local n, colours = svg_curves(s, EPOCHS)
  T.eq(n, 3 + 6 * 3, "curves in the svg")
  T.eq(colours["31,119,180"], 3 + 3 * 3, "SGD-SA (first method) curves drawn through every epoch")
  T.eq(colours["214,39,40"], 3 * 3, "Scheduled-SGD curves drawn through every epoch")
  T.check(s:find("SGD-SA (3 seeds)", 1, true) and s:find("Scheduled-SGD (3 seeds)", 1, true), "legend")
  T.check(s:find("validation accuracy (%)", 1, true) and s:find("epoch", 1, true), "axis labels")
  code, out = sgdsa({"plot", tmp .. "/exp_sa", tmp .. "/exp_sgd", "-o", svg, "--figure", "4"})
  T.eq(code, 0, "figure 4 exit (" .. out .. ")")
  T.eq((svg_curves(assert(read(svg)))), 12, "figure 4: 6 runs x 2 panels")
  code, out = sgdsa({"plot", tmp .. "/exp_sgd", "-o", svg, "--figure=3"})
  T.eq(code, 0, "figure 3 of SGD only (" .. out .. ")")
  s = assert(read(svg))
  local n, colours = svg_curves(s, EPOCHS)
  T.eq(n, 1 + 3, "the empty panel's placeholder plot and the training accuracy curves")
  T.eq(colours["31,119,180"], 3, "only the 3 training accuracy curves are drawn (first colour)")
  T.check(s:find("no run with an acceptance test", 1, true), "empty panel says why")

  local png = tmp .. "/fig.png"
  code, out = sgdsa({"plot", tmp .. "/exp_sa", tmp .. "/exp_sgd", "-o", png})
  T.eq(code, 0, "png exit (" .. out .. ")")
  local data = assert(read(png), "png written")
  local w, h = png_size(data)
  T.eq(w, 1200, "png width")
  T.eq(h, 900, "png height")
  T.check(#data > 20000, "png has content: " .. #data .. " bytes")
  code = sgdsa({"plot", tmp .. "/exp_sa", "-o", png, "--figure", "3", "--size", "800x300"})
  T.eq(code, 0, "sized")
  w, h = png_size(assert(read(png)))
  T.eq(w, 800, "--size width"); T.eq(h, 300, "--size height")
end)

T.test("sgdsa plot: errors", function()
  local code, out = sgdsa({"plot", tmp .. "/exp_sa", "-o", tmp .. "/x.pdf"})
  T.eq(code, 2, "bad extension")
  T.check(out:find(".png or .svg", 1, true), out)
  code, out = sgdsa({"plot", tmp .. "/exp_sa", "-o", tmp .. "/x.png", "--figure", "5"})
  T.eq(code, 2, "bad figure")
  code, out = sgdsa({"plot", tmp .. "/exp_sa", "--frobnicate", "-o", tmp .. "/x.png"})
  T.eq(code, 2, "unknown option")
  T.check(out:find("unknown option", 1, true), out)
  code = sgdsa({"plot", tmp .. "/exp_sa"})
  T.eq(code, 2, "no output")
  code, out = sgdsa({"plot", tmp .. "/exp_sa", "-o", tmp .. "/x.png"}, "SGDSA_GNUPLOT=/nonexistent/gnuplot")
  T.eq(code, 1, "missing gnuplot")
  T.check(out:find("gnuplot-nox", 1, true), "names the package: " .. out)
  if have_gnuplot then
    code, out = sgdsa({"plot", tmp .. "/empty", "-o", tmp .. "/x.png"})
    T.eq(code, 1, "empty log")
    T.check(out:find("no epoch logged", 1, true), out)
    T.check(not read(tmp .. "/x.png"), "no file for an empty log")
  end
end)

if not os.getenv("SGDSA_TEST_KEEP") then T.remove(tmp) end
T.done()
