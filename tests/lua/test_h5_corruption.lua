-- test_h5_corruption.lua - corruption of a run folder is always detected and
-- named. `sgdsa inspect` and resume verify every object they read (metadata
-- checksums, Fletcher-32, crc32), name the file and the damaged object and
-- fail; resume refuses a run whose files do not verify, saying which
-- checkpoint is still intact; a damaged or missing best.h5 is written again
-- from last.h5 when that holds the best epoch, else set aside with a message.
-- Then byte flips at fixed-seed offsets over log.h5, last.h5 and best.h5: each
-- inspect, load and resume gives the intact folder's results or an error
-- naming the file (tests/lua/corruption_lib.lua; tools/soak-corruption runs
-- more of them; SGDSA_CORRUPTION_FLIPS=n sets how many, 300 by default).
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"
local h5 = require "sgdsa.h5"
local inspect = require "sgdsa.inspect"
local trainer = require "sgdsa.trainer"
local checkpoint = require "sgdsa.checkpoint"
local F = dofile("tests/lua/trainer_fixture.lua")
local C = dofile("tests/lua/corruption_lib.lua")

local tmp = T.scratch("h5-corruption")
local data = F.data_file(tmp)
local bin = os.getenv("SGDSA_BIN")

-- The run: 2 epochs of the fixture, as `sgdsa run tests/lua/trainer_fixture.lua
-- epochs=2` makes it, with a marker in its command line (log.h5's argv).
local MARKER = "argv" .. "-marker-" .. 4711
local function make_run(name)
  local saved = arg[1]
  arg[1] = MARKER
  local r = trainer.train(F.experiment(data, {epochs = 2, out = tmp .. "/runs", name = name}))
  arg[1] = saved
  T.eq(r.epochs_done, 2, "the run finished")
  return tmp .. "/runs/" .. name
end

local function flip_at(path, offset)
  local s = T.read_file(path)
  T.write_file(path, s:sub(1, offset) .. string.char(s:byte(offset + 1) ~ 0xff) .. s:sub(offset + 2))
end

local function offset_of(path, needle, from)
  local at = T.read_file(path):find(needle, from or 1, true)
  T.check(at, "found in " .. path)
  return at - 1
end

local function weights(path)
  local model = F.model()
  checkpoint.load(path, model)
  return C.show(model:named_tensors())
end

-- resume the run in dir through the sgdsa executable: exit status, output
local function resume(dir)
  return T.sgdsa({"run", "tests/lua/trainer_fixture.lua", "resume=" .. dir, "epochs=2"},
                 "SGDSA_FIXTURE_DATA=" .. T.shell_quote(data))
end

T.test("a flip in a continuation chunk of log.h5's root group: inspect and resume name it", function()
  local dir = make_run("root")
  -- the root group's link "config" lies in a continuation chunk ("OCHK") of
  -- its object header: libhdf5 alone shows the root without the links there
  local s = T.read_file(dir .. "/log.h5")
  local at = offset_of(dir .. "/log.h5", "\6config")
  local chunk = s:sub(1, at):match(".*()O[HC][DH][RK]")
  T.eq(s:sub(chunk, chunk + 3), "OCHK", "config's link is in a continuation chunk")
  flip_at(dir .. "/log.h5", at + 3)
  local e = T.raises(function() inspect.inspect(dir .. "/log.h5") end,
                     "cannot read the object header of the root group '/' in '" .. dir .. "/log.h5'")
  T.check(e:find("checksum", 1, true), e)
  -- the folder: the intact checkpoints are summarized, log.h5 is named, exit 1
  if bin then
    local code, out = T.sgdsa({"inspect", dir})
    T.eq(code, 1, "sgdsa inspect exit status: " .. out)
    T.check(out:find("checkpoint " .. dir .. "/last.h5", 1, true), out)
    T.check(out:find("cannot read the object header of the root group '/' in '" .. dir .. "/log.h5'", 1, true), out)
    code, out = resume(dir)
    T.eq(code, 1, "resume exit status: " .. out)
    T.check(out:find(dir .. "/log.h5' (libhdf5: incorrect metadata checksum", 1, true), out)
    T.check(out:find("Intact checkpoints (model:load(path) reads their weights): " .. dir .. "/last.h5 (epoch 2", 1, true), out)
    T.check(not out:find("no dataset 'config'", 1, true), out)
  end
  -- the file does not even open: its root group is what every name is under
  T.raises(function() h5.open(dir .. "/log.h5", "r") end, "object header of the root group '/'")
end)

T.test("a damaged object header that resume does not read (argv) stops the resume", function()
  local dir = make_run("argv")
  flip_at(dir .. "/log.h5", offset_of(dir .. "/log.h5", MARKER))
  local ok, why = h5.verify(dir .. "/log.h5")
  T.check(not ok and why:find("object header of 'argv' in '" .. dir .. "/log.h5'", 1, true), tostring(why))
  local e = T.raises(function() trainer.train(F.experiment(data, {epochs = 2, resume = dir})) end,
                     "resume=" .. dir .. ": h5 verify: cannot read the object header of 'argv' in '" .. dir .. "/log.h5'")
  T.check(e:find("the run cannot go on without its log.h5", 1, true), e)
  -- a file handle that met the damage refuses every later call (libhdf5
  -- would go on with what it could read of the object)
  local f <close> = h5.open(dir .. "/log.h5", "r")
  T.raises(function() f:read_text("argv") end, "'argv' in '" .. dir .. "/log.h5'")
  T.raises(function() f:list() end, "is damaged and no longer read")
  T.raises(function() f:read_text("config") end, "is damaged and no longer read")
end)

T.test("a flipped byte of fc1.weight's data (Fletcher-32): inspect and load name it", function()
  -- lenet's fc1.weight (400x120) is chunked, with the Fletcher-32 filter
  local path = tmp .. "/lenet.h5"
  local m = require("models.lenet"){classes = 10}
  m:save(path)
  local w = h5.load(path)["fc1.weight"]:view(-1):totable()
  flip_at(path, offset_of(path, string.pack("<ffff", w[1], w[2], w[3], w[4])) + 5)
  T.raises(function() inspect.inspect(path) end, "cannot read the data of 'fc1.weight' in '" .. path .. "'")
  T.raises(function() m:load(path) end, "'fc1.weight' in '" .. path .. "'")
  if bin then
    local code, out = T.sgdsa({"inspect", path})
    T.eq(code, 1, "sgdsa inspect exit status: " .. out)
    T.check(out:find("Fletcher32", 1, true), out)
  end
end)

T.test("a damaged last.h5: resume refuses and names the intact best.h5 as the way on", function()
  local dir = make_run("last")
  local w = h5.load(dir .. "/last.h5")["fc1.weight"]:view(-1):totable()
  flip_at(dir .. "/last.h5", offset_of(dir .. "/last.h5", string.pack("<ffff", w[1], w[2], w[3], w[4])) + 5)
  T.raises(function() checkpoint.load(dir .. "/last.h5", F.model()) end, "'fc1.weight' in '" .. dir .. "/last.h5'")
  local e = T.raises(function() trainer.train(F.experiment(data, {epochs = 2, resume = dir})) end,
                     "cannot read the object header of 'fc1.weight' in '" .. dir .. "/last.h5'")
  T.check(e:find(dir .. "/best.h5 (epoch 2, step 40, validation accuracy", 1, true), e)
  T.check(e:find("cp " .. dir .. "/best.h5 " .. dir .. "/last.h5", 1, true), e)
  -- following the advice resumes
  T.write_file(dir .. "/last.h5", T.read_file(dir .. "/best.h5"))
  local r = trainer.train(F.experiment(data, {epochs = 3, resume = dir}))
  T.eq(r.epochs_done, 3, "resumed from best.h5's copy")
end)

T.test("an empty or damaged best.h5 is written again from last.h5 (the best epoch's weights)", function()
  local dir = make_run("best")
  local want = weights(dir .. "/best.h5")
  T.write_file(dir .. "/best.h5", "")
  local e = T.raises(function() inspect.inspect(dir) end, "'" .. dir .. "/best.h5' is not an HDF5 file")
  T.check(not e:find("last.h5", 1, true), "only best.h5 is named: " .. e)
  trainer.train(F.experiment(data, {epochs = 2, resume = dir}))
  T.check(h5.verify(dir .. "/best.h5"), "best.h5 verifies")
  T.eq(weights(dir .. "/best.h5"), want, "best.h5 holds the best epoch's weights again")
  T.eq(h5.open(dir .. "/best.h5", "r"):attr("best_epoch"), 2, "best_epoch")
  os.remove(dir .. "/best.h5")
  trainer.train(F.experiment(data, {epochs = 2, resume = dir}))
  T.eq(weights(dir .. "/best.h5"), want, "a missing best.h5 too")
end)

T.test("a damaged best.h5 whose weights last.h5 lacks is set aside, and the run says so", function()
  if not bin then return end
  local dir = make_run("lost")
  -- last.h5 says the best epoch was 1 (its weights are only in best.h5)
  do
    local f = h5.open(dir .. "/last.h5", "a", {atomic = true})
    f:write_array("search/trainer/best_epoch", 1, "int64")
    f:attr_of("search/trainer/best_epoch", "lua", "integer")
    f:close()
  end
  local best = T.read_file(dir .. "/best.h5")
  T.write_file(dir .. "/best.h5", best:sub(1, 1000))
  local code, out = resume(dir)
  T.eq(code, 0, "resume exit status: " .. out)
  T.check(out:find("best.h5 is damaged (", 1, true), out)
  T.check(out:find("(kept as best.h5.damaged); the weights of the best epoch (1, validation accuracy", 1, true), out)
  T.check(out:find("so the run has no best weights until validation accuracy beats", 1, true), out)
  T.eq(T.read_file(dir .. "/best.h5.damaged"), best:sub(1, 1000), "the damaged file is kept")
  T.check(not sg.core.exists(dir .. "/best.h5"), "no best.h5")
end)

T.test("byte flips over log.h5, last.h5 and best.h5: the intact results or an error naming the file", function()
  local ctx = C.setup(tmp .. "/flips")
  -- (fewer under the sanitizers, whose build is many times slower)
  local n = tonumber(os.getenv("SGDSA_CORRUPTION_FLIPS") or "") or (os.getenv("SGDSA_SANITIZED") and 60 or 300)
  local counts, bad = {benign = 0, error = 0, unnamed = 0, silent = 0}, {}
  for i, fl in ipairs(C.flips(2024, n, ctx)) do
    local class, what = C.check(ctx, fl)
    counts[class] = counts[class] + 1
    if class == "unnamed" or class == "silent" then
      bad[#bad + 1] = string.format("flip %d (%s at %d): %s: %s", i, fl.file, fl.offset, class, what)
    end
  end
  io.write(string.format("  %d flips: %d clean errors, %d benign, %d unnamed errors, %d silent corruptions\n",
                         n, counts.error, counts.benign, counts.unnamed, counts.silent))
  T.check(#bad == 0, table.concat(bad, "\n"))
  T.check(counts.error > n // 2, "most flips are errors")
end)

T.remove(tmp)
T.done()
