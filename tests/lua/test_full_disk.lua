-- test_full_disk.lua - a full disk never crashes sgdsa and never costs a run
-- folder its last good state. The disk fills at the Nth write under a folder
-- (tests/shim/enospc.c, LD_PRELOAD; the Nth write stores half its bytes and
-- every later one fails with ENOSPC), for every N of a short run in turn:
-- each time the run exits 1 with "No space left on device" (no signal, no
-- crash in libhdf5 at exit), the files it leaves load, no temporary file is
-- left, and resuming the folder on a disk with room finishes the run
-- bit-identical to a run left alone. model:save gets the same treatment.
-- (tests/lua/test_full_disk_tmpfs.lua does it on a real full filesystem where
-- mounting one is permitted.)
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"
local h5 = require "sgdsa.h5"
local checkpoint = require "sgdsa.checkpoint"

local shim = (os.getenv("SGDSA_BUILD") or "") .. "/tests/enospc.so"
if not sg.core.exists(shim) then T.skip("the full-disk shim " .. shim .. " is not built (SGDSA_BUILD)") end

local R = dofile("tests/lua/resume_lib.lua").new(T, {tmp = T.tmpdir() .. "/full_disk"})
local sh = T.shell_quote
local out = R.out
assert(sg.core.mkdir_p(out))
R.reference()

-- The shell assignments that fill the disk under `dir` at its nth write. In
-- the sanitizer build the ASan runtime must come first in the preload list.
local preload = shim
if os.getenv("SGDSA_SANITIZED") then
  local p = io.popen("cc -print-file-name=libasan.so")
  preload = p:read("l") .. " " .. shim
  p:close()
end
local function full_at(dir, n, log)
  return string.format("SGDSA_FIXTURE_DATA=%s LD_PRELOAD=%s SGDSA_ENOSPC_DIR=%s SGDSA_ENOSPC_AT=%d SGDSA_ENOSPC_LOG=%s",
                       sh(R.data), sh(preload), sh(dir), n, sh(log or "/dev/null"))
end

local function leftovers(dir)
  local left = {}
  for _, name in ipairs(sg.core.listdir(dir) or {}) do
    if name:find(".tmp.", 1, true) then left[#left + 1] = name end
  end
  return table.concat(left, ", ")
end

T.test("model:save on a full disk: an error naming ENOSPC, no crash, no file", function()
  local dir = R.tmp .. "/save"
  assert(sg.core.mkdir_p(dir))
  local script = string.format([[
    local m = require("models.lenet"){classes = 10}
    local ok, err = pcall(m.save, m, %q)
    print(ok, err)
    os.exit(ok and 0 or 3)]], dir .. "/a.h5")
  for n = 1, 10 do
    os.remove(dir .. "/a.h5")
    local code, text = T.sgdsa({"-e", script}, full_at(dir, n))
    if code == 0 then
      T.check(n > 1 and sg.core.exists(dir .. "/a.h5"), "saved with the disk full at write " .. n)
      return
    end
    T.eq(code, 3, "exit status with the disk full at write " .. n .. " (" .. text .. ")")
    T.check(text:find("No space left on device", 1, true), text)
    T.check(not sg.core.exists(dir .. "/a.h5"), "a.h5 written on a full disk")
    T.eq(leftovers(dir), "", "temporary files left")
  end
  error("model:save still fails with the disk full at its 10th write")
end)

T.test("plain files: flush and close on a full disk fail with ENOSPC, nothing crashes", function()
  local dir = R.tmp .. "/plain"
  assert(sg.core.mkdir_p(dir))
  -- write 1: the flush (half of it stored); then writes and the close are
  -- refused (the flush failed), a second file's close fails too, and the
  -- process ends normally
  local script = string.format([[
    local h5 = require "sgdsa.h5"
    local f = h5.open(%q, "w")
    f:write("x", sgdsa.ones(5000))
    print("flush", pcall(f.flush, f))
    print("write after", pcall(f.write, f, "y", sgdsa.ones(3)))
    print("close", pcall(f.close, f))
    local g = h5.open(%q, "a")
    g:write("z", sgdsa.ones(5000))
    print("close2", pcall(g.close, g))
    os.exit(7)]], dir .. "/p.h5", dir .. "/q.h5")
  local code, text = T.sgdsa({"-e", script}, full_at(dir, 1))
  T.eq(code, 7, "exit status (" .. text .. ")")
  T.check(text:find("flush\tfalse\t[^\n]*h5 flush: writing '[^']*p%.h5' failed[^\n]*No space left on device"), text)
  T.check(text:find("write after\tfalse\t[^\n]*was not written: a flush of it failed"), text)
  T.check(text:find("close\tfalse\t[^\n]*was not written: a flush of it failed"), text)
  T.check(text:find("close2\tfalse\t[^\n]*h5 close: writing '[^']*q%.h5' failed[^\n]*No space left on device"), text)
end)

T.test("a run on a disk that fills at each of its writes in turn: exit 1, files intact, resumable", function()
  local count_log = R.tmp .. "/writes.log"
  local n, writes = 0, nil
  while true do
    n = n + 1
    T.check(n <= 60, "the run still fails after 60 writes")
    local name = "full" .. n
    local dir = out .. "/" .. name
    os.remove(count_log)
    local code, text = T.sgdsa({"run", "tests/lua/trainer_fixture.lua", "out=" .. out, "name=" .. name},
                               full_at(dir, n, count_log))
    if code == 0 then
      -- every write of the run came before the nth: done
      writes = n - 1
      T.check(R.finished(dir), "the run exited 0 without finishing")
      R.same_as_reference(dir)
      break
    end
    T.eq(code, 1, string.format("exit status, disk full at write %d (a signal shows as 128+n)\n%s", n, text))
    T.check(text:find("No space left on device", 1, true), "write " .. n .. ": no ENOSPC message:\n" .. text)
    T.eq(leftovers(dir), "", "write " .. n .. ": temporary files left")
    -- what the folder holds loads
    if sg.core.exists(dir .. "/log.h5") then
      local ok, err = pcall(function()
        local f <close> = h5.open(dir .. "/log.h5", "r")
        f:read_text("config")
        for _, g in ipairs{"steps", "epochs"} do
          if f:exists(g) then h5.read_log(f, g) end
        end
      end)
      T.check(ok, "write " .. n .. ": log.h5: " .. tostring(err))
    end
    for _, f in ipairs{"last.h5", "best.h5"} do
      if sg.core.exists(dir .. "/" .. f) then
        local ok, err = pcall(checkpoint.load, dir .. "/" .. f, R.F.model())
        T.check(ok, "write " .. n .. ": " .. f .. ": " .. tostring(err))
      end
    end
    -- room again: the resume finishes the run as if nothing had happened
    local logfile = R.tmp .. "/" .. name .. ".out"
    local p = R.spawn("resume=" .. sh(dir), logfile)
    R.wait_dead(p, 120)
    T.check(R.finished(dir), "write " .. n .. ": the resume did not finish the run:\n" .. (T.read_file(logfile) or ""))
    R.same_as_reference(dir)
  end
  T.check(writes >= 10, "only " .. tostring(writes) .. " writes in a 4-epoch run")
  io.write(string.format("     the run makes %d writes; the disk filled at each in turn\n", writes))
end)

T.done()
