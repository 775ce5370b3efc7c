-- trainer_fixture.lua - a small experiment for the trainer and resume tests:
-- a synthetic 10-class image set (1x8x8 uint8, written once to an HDF5 file
-- with a fixed seed) and a model with BatchNorm and Dropout (so buffers and
-- the dropout stream are part of what a resume must restore).
--   local F = dofile("tests/lua/trainer_fixture.lua")
--   F.data_file(dir) -> path;  F.experiment(path, opts) -> experiment table
--   F.write_image_set(path, make, ntrain, ntest) -> path (also for mpi_fixture.lua)
-- As a script (`sgdsa run tests/lua/trainer_fixture.lua key=value`) it
-- returns the experiment on $SGDSA_FIXTURE_DATA (the resume test's child;
-- $SGDSA_FIXTURE_KILL_AT=n makes it SIGKILL itself after step n,
-- $SGDSA_FIXTURE_HOLD=s makes it wait s seconds before its first step,
-- $SGDSA_FIXTURE_PAUSE_AT waits for an interrupt at a step or an epoch's end).
local sg = sgdsa or require "sgdsa"
local h5 = require "sgdsa.h5"

local F = {}

-- An image set in the layout sgdsa.data.hdf5 reads by default, written
-- atomically to path: make(n) gives n images and their labels, ntrain for
-- train/ first, then ntest for test/.
function F.write_image_set(path, make, ntrain, ntest)
  local xtr, ytr = make(ntrain)
  local xte, yte = make(ntest)
  local f = h5.open(path, "w", {atomic = true})
  f:write("train/images", xtr); f:write("train/labels", ytr)
  f:write("test/images", xte); f:write("test/labels", yte)
  f:close()
  return path
end

function F.data_file(dir)
  local path = dir .. "/trainer_fixture_data.h5"
  local g = sg.Generator(2024, "fixture")
  local templates = sg.zeros(10, 64):uniform_(0, 200, g)
  local function make(n)
    local x = sg.zeros(n, 1, 8, 8, "uint8")
    local xf = sg.zeros(n, 64)
    local y = sg.zeros(n, "int32")
    for i = 1, n do
      local k = g:random(10)
      y[i] = k - 1
      xf[i]:copy(templates[k]):add_(sg.zeros(64):normal_(0, 150, g)):clamp_(0, 255)
    end
    x:copy(xf:view(n, 1, 8, 8))
    return x, y
  end
  return F.write_image_set(path, make, 640, 256)
end

function F.model()
  local nn = require "sgdsa.nn"
  local net = nn.Sequential{
    {"flatten", nn.Flatten()},
    {"fc1", nn.Linear(64, 48)},
    {"bn1", nn.BatchNorm1d(48)},
    {"relu1", nn.ReLU(true)},
    {"drop1", nn.Dropout(0.2)},
    {"fc2", nn.Linear(48, 10)},
  }
  return nn.model(net, {input = {1, 8, 8}, name = "fixture"})
end

function F.experiment(path, opts)
  local e = {
    model = F.model,
    data = {"hdf5", file = path, batch = 32, prefetch = 1},
    optim = sg.optim.optimizer{
      neighborhood = sg.optim.momentum{H = {{1, 0.9}, {0.3, 0.9}, {0.1, 0.5}, {0.05, 0}}},
      acceptance = sg.optim.metropolis{T0 = 0.05, alpha = 0.7},
    },
    epochs = 4, seed = 7, threads = 1, progress = "off",
  }
  for k, v in pairs(opts or {}) do e[k] = v end
  return e
end

if arg and arg[0] and arg[0]:match("trainer_fixture%.lua$") then
  local path = os.getenv("SGDSA_FIXTURE_DATA") or error("SGDSA_FIXTURE_DATA is not set")
  local e = F.experiment(path)
  -- SGDSA_FIXTURE_KILL_AT=n: the run SIGKILLs itself right after step n
  -- (a deterministic crash point for the resume test)
  local kill_at = tonumber(os.getenv("SGDSA_FIXTURE_KILL_AT") or "")
  if kill_at then
    e.hooks = {on_step = function(_, rec)
      if rec.step == kill_at then os.execute("kill -9 " .. sg.core.getpid()) end
    end}
  end
  -- SGDSA_FIXTURE_HOLD=s: the run waits s seconds before its first step,
  -- holding its run folder (two processes started together then overlap
  -- even on a loaded machine)
  local hold = tonumber(os.getenv("SGDSA_FIXTURE_HOLD") or "")
  if hold then
    e.hooks = e.hooks or {}
    e.hooks.on_start = function() sg.core.sleep(hold) end
  end
  -- SGDSA_FIXTURE_PAUSE_AT=step:n or epoch_end:n: at that point the run
  -- writes the file $SGDSA_FIXTURE_PAUSE_FILE and waits for an interrupt
  -- (the test sends SIGINT), as a Ctrl-C landing there would
  local kind, at = (os.getenv("SGDSA_FIXTURE_PAUSE_AT") or ""):match("^([%w_]+):(%d+)$")
  if kind then
    at = tonumber(at)
    local function pause()
      local f = assert(io.open(assert(os.getenv("SGDSA_FIXTURE_PAUSE_FILE")), "w"))
      f:write(sg.core.getpid(), "\n")
      f:close()
      local t0 = sg.core.time()
      while not sg.core.interrupted() do
        if sg.core.time() - t0 > 60 then error("trainer_fixture: no interrupt came in 60 s") end
        sg.core.sleep(0.01)
      end
    end
    e.hooks = e.hooks or {}
    if kind == "step" then
      e.hooks.on_step = function(_, rec) if rec.step == at then pause() end end
    else
      e.hooks.on_epoch_end = function(_, rec) if rec.epoch == at then pause() end end
    end
  end
  return e
end
return F
