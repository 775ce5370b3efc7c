-- test_h5_inspect.lua - `sgdsa inspect` on a run folder written as
-- docs/FORMAT.md specifies (log.h5 with metadata, script, config, epoch and
-- step logs; last.h5 and best.h5 checkpoints), on single files, on an
-- arbitrary HDF5 file, and the command line (help, errors, exit codes).
local sg = require "sgdsa"
local h5 = sg.h5
local inspect = require "sgdsa.inspect"

local tmp = os.getenv("SGDSA_TEST_TMP") or "/tmp"
local run = string.format("%s/h5inspect-%d/runs/demo", tmp, sg.core.getpid())
sg.core.mkdir_p(run)

local fails = 0
local function check(cond, msg)
  if not cond then fails = fails + 1; print("FAIL: " .. msg) end
end
local function has(text, s, msg)
  check(text:find(s, 1, true) ~= nil, msg .. ": missing '" .. s .. "' in:\n" .. text)
end
-- has(text, s, msg) for each {s, msg} of the list
local function has_all(text, list)
  for _, c in ipairs(list) do has(text, c[1], c[2]) end
end

-- log.h5
do
  local f <close> = h5.open(run .. "/log.h5", "w", { atomic = true })
  f:attr("format_version", h5.format_version)
  f:attr("kind", "run-log")
  f:attr("sgdsa_version", sg.version)
  f:attr("name", "demo")
  f:attr("seed", 3)
  f:attr("device", "cpu")
  f:attr("threads", 2)
  f:attr("host", "testhost")
  f:attr("start_time", "2024-05-01T12:00:00Z")
  f:attr("resumed", 0)
  f:write_text("script", "return { epochs = 3 }\n")
  f:write_text("script_path", "experiments/demo.lua")
  f:write_text("config", "{\n  epochs = 3,\n  seed = 3,\n  optim = \"sgdsa\",\n}\n")
end
local ep = h5.log(run .. "/log.h5", "epochs", { { "epoch", "int64" }, { "step", "int64" }, "T",
  "train_loss", "train_acc", "val_loss", "val_acc", "accept_rate", "seconds" })
local accs = { 0.5, 0.7, 0.65 }
for e = 1, 3 do
  ep:append { epoch = e, step = 10 * e, T = 0.8 ^ e, train_loss = 1 / e, train_acc = accs[e],
              val_loss = 1 / e, val_acc = accs[e], accept_rate = 0.5, seconds = 1.0 }
end
ep:flush()
local st = h5.log(run .. "/log.h5", "steps", { { "epoch", "int64" }, { "step", "int64" }, "eta", "T",
  "loss", "trial_loss", { "accepted", "int64" } })
for s = 1, 30 do
  st:append { epoch = (s - 1) // 10 + 1, step = s, eta = 0.1, T = 0.8, loss = 1, trial_loss = 1, accepted = 1 }
end
st:flush()

-- checkpoints
local function checkpoint(path, epoch, extra)
  local vals = {
    ["conv1.weight"] = sg.randn(8, 3, 3, 3), ["bn1.weight"] = sg.ones(8), ["bn1.bias"] = sg.zeros(8),
    ["bn1.running_mean"] = sg.zeros(8), ["bn1.running_var"] = sg.ones(8),
    ["bn1.num_batches_tracked"] = 30, ["linear.weight"] = sg.randn(10, 8), ["linear.bias"] = sg.zeros(10),
    ["search/epoch"] = epoch, ["search/step"] = 10 * epoch, ["search/temperature"] = 0.8 ^ epoch,
    ["search/rng/shuffle"] = { 1, 2, 3, 4 }, ["search/rng/search"] = { 1, 2, 3, 4 },
  }
  local attrs = { kind = "checkpoint", sgdsa_version = sg.version, epoch = epoch, step = 10 * epoch,
                  created = "2024-05-01T12:05:00Z" }
  for k, v in pairs(extra or {}) do attrs[k] = v end
  h5.save(path, vals, attrs)
end
checkpoint(run .. "/last.h5", 3)
checkpoint(run .. "/best.h5", 2, { best_val_acc = 0.7, best_epoch = 2 })

local text = inspect.inspect(run)
has_all(text, {
  {"run log " .. run .. "/log.h5", "log header"},
  {"format version 1", "format version"},
  {"seed 3, device cpu", "metadata"},
  {"script: experiments/demo.lua", "script path"},
  {"optim = \"sgdsa\"", "config excerpt"},
  {"epochs done: 3", "epochs done"},
  {"best validation accuracy: 0.7000 at epoch 2", "best accuracy from the log"},
  {"temperature: 0.512", "temperature"},
  {"step log: 30 rows", "step rows"},
  -- 8*3*3*3 + 8 + 8 + 10*8 + 10 = 322 parameters; buffers 8 + 8 + 1 = 17
  {"parameters: 322 in 5 tensors; buffers: 17 values", "parameter count"},
  {"checkpoint " .. run .. "/best.h5", "best checkpoint"},
  {"best validation accuracy: 0.7000 at epoch 2", "best.h5 attrs"},
  {"epoch 3, step 30, temperature 0.512", "search state"},
  {"random streams: search, shuffle", "streams"},
})

local t2 = inspect.inspect(run .. "/last.h5", { all = true })
has(t2, "conv1.weight", "all datasets")
has(t2, "8x3x3x3", "shape listed")
check(not t2:find("log.h5", 1, true), "single file only")

-- an arbitrary HDF5 file
local other = run .. "/../other.h5"
do
  local f <close> = h5.open(other, "w")
  f:write("images", sg.zeros({ 4, 1, 28, 28 }, "uint8"))
  f:write("labels", sg.zeros({ 4 }, "int32"))
  f:attr("source", "test")
  local lg = h5.log(f, "hist", { "x" })
  lg:append { x = 1 }
  lg:flush()
end
local t3 = inspect.inspect(other)
has_all(t3, {
  {"images", "dataset name"},
  {"uint8", "dtype"},
  {"4x1x28x28", "shape"},
  {"source", "attribute"},
  {"hist/", "log table"},
  {"log: 1 rows x {x}", "log table summary"},
})

-- errors
local ok, err = pcall(inspect.inspect, run .. "/nope.h5")
check(not ok and tostring(err):find("no such file", 1, true), "missing file: " .. tostring(err))
local empty = run .. "/../empty"
sg.core.mkdir_p(empty)
ok, err = pcall(inspect.inspect, empty)
check(not ok and tostring(err):find("not a run folder", 1, true), "not a run folder: " .. tostring(err))

-- entry point and the command line
check(inspect.main({ "--help" }) == 0, "main --help")
check(inspect.main({}) == 2, "main without paths")
check(inspect.main({ "--bogus" }) == 2, "main bad option")
local bin = os.getenv("SGDSA_BIN")
if bin then
  local p = io.popen(string.format("'%s' inspect '%s' 2>&1", bin, run))
  local out = p:read("a")
  local okc = p:close()
  check(okc, "sgdsa inspect exit status")
  has(out, "epochs done: 3", "sgdsa inspect output")
  local okm = os.execute(string.format("'%s' inspect '%s/none.h5' >/dev/null 2>&1", bin, run))
  check(not okm, "sgdsa inspect on a missing file fails")
end

os.execute(string.format("rm -rf '%s/h5inspect-%d'", tmp, sg.core.getpid()))
if fails > 0 then error(fails .. " failure(s)") end
print("test_h5_inspect.lua: all passed")
