-- sgdsa.trainer.state: the state of a training run in a checkpoint
-- (sgdsa.checkpoint writes and reads the file): capture writes the model,
-- the search (its counters and its pieces' memory), the random streams, the
-- training loader's position and the trainer's counters into last.h5 or
-- best.h5; restore puts them back from last.h5 for a resume.
local sg = require "sgdsa"
local h5 = require "sgdsa.h5"
local checkpoint = require "sgdsa.checkpoint"
local folder = require "sgdsa.trainer.folder"

local M = {}

-- The random streams a checkpoint saves (sgdsa.stream(name)).
M.STREAMS = {"init", "shuffle", "augment", "search", "dropout", "validation", "default"}

local function rng_states()
  local t = {}
  for _, name in ipairs(M.STREAMS) do t[name] = checkpoint.u64(sg.stream(name):state()) end
  return t
end

local function set_rng_states(t)
  for name, st in pairs(t or {}) do sg.stream(name):set_state(st) end
end

--- Write the run's state as it is now to `path`: mid_epoch tells whether the
--- epoch tr.epoch is under way (its rest to run on resume); attrs are root
--- attributes added to the checkpoint's own. run: the trainer's run (model,
--- S, train, tr, steplog, epochlog, nranks, cfgtext).
function M.capture(run, path, mid_epoch, attrs)
  local tr, S = run.tr, run.S
  tr.mid_epoch = mid_epoch
  tr.step_rows = run.steplog and run.steplog:rows() or 0
  tr.epoch_rows = run.epochlog and run.epochlog:rows() or 0
  local ss = S:state()
  local ls = run.train:state()
  local order = ls.perm and ls.perm:totable() or {}
  local t = {stats = ss.stats}
  for k, v in pairs(tr) do if k ~= "epoch" then t[k] = v end end
  local state = {
    epoch = tr.epoch - 1, step = S.iter, temperature = S:temperature(),
    rng = rng_states(),
    data = {order = order, position = ls.index, epoch = ls.epoch,
            shuffle = ls.shuffle and checkpoint.u64(ls.shuffle) or nil,
            augment = ls.augment and checkpoint.u64(ls.augment) or nil},
    rule = ss.acceptance, optim = ss.neighborhood, trainer = t,
  }
  local a = {epoch = tr.epoch - 1, step = S.iter, sgdsa_version = sg.version,
             created = os.date("!%Y-%m-%dT%H:%M:%SZ"), ranks = run.nranks}
  for k, v in pairs(attrs or {}) do a[k] = v end
  checkpoint.save(path, run.model, state, a, {config = run.cfgtext, script = select(2, folder.script_text())})
  if path:match("/last%.h5$") then run.saved_step = S.iter end
end

--- Put the state of the run folder's last.h5 back into the run: the model's
--- tensors, the trainer's counters (run.tr: the epoch after the
--- checkpoint's), the random streams, the loader's position and the
--- search's state. Returns the checkpoint's epoch and step, the arithmetic
--- of the configuration saved with it (nil when none was) and its rank count.
function M.restore(run)
  local dir, tr = run.dir, run.tr
  local state = checkpoint.load(dir .. "/last.h5", run.model)
  local t = state.trainer or error(string.format("trainer: resume: %s/last.h5 has no search/trainer state", dir), 0)
  for k, v in pairs(t) do if k ~= "stats" then tr[k] = v end end
  tr.epoch = state.epoch + 1
  set_rng_states(state.rng)
  local d = state.data
  if d then
    run.train:set_state{epoch = d.epoch, index = d.position, perm = sg.tensor(d.order):int(),
                        shuffle = d.shuffle, augment = d.augment}
  end
  run.S:epoch_start(tr.epoch)
  run.S:set_state{epoch = tr.epoch, step = state.step, stats = t.stats,
                  neighborhood = state.optim or {}, acceptance = state.rule or {}}
  local ck <close> = h5.open(dir .. "/last.h5", "r")
  local cktext = ck:exists("extra/config") and ck:read_text("extra/config") or nil
  local ck_ranks = math.tointeger(ck:attr("ranks")) or 1
  return state.epoch, state.step, cktext and folder.arithmetic(folder.config_lines(cktext)), ck_ranks
end

return M
