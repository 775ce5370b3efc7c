-- test_full_disk_tmpfs.lua - the full-disk test on a real full filesystem: a
-- 3 MiB tmpfs filled up to 8-330 KiB of free space (the sizes at which
-- libhdf5 used to crash at exit after a failed H5Fclose). model:save and a
-- short run must end with "No space left on device" and exit status 1 (or
-- finish, where the space suffices), never a signal; with the space freed, a
-- resume finishes the run bit-identical to a run left alone. Needs root and a
-- mount that the machine permits (skipped otherwise: the LD_PRELOAD test,
-- tests/lua/test_full_disk.lua, covers every write on any machine).
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"

local sh = T.shell_quote
local base = T.tmpdir() .. "/full_disk_tmpfs"
local mnt = base .. "/mnt"
os.execute("umount " .. sh(mnt) .. " 2>/dev/null")
os.execute("rm -rf " .. sh(base))
assert(sg.core.mkdir_p(mnt))
if not os.execute("mount -t tmpfs -o size=3m tmpfs " .. sh(mnt) .. " 2>/dev/null") then
  T.skip("mounting a tmpfs is not permitted here (needs root and CAP_SYS_ADMIN); " ..
         "tests/lua/test_full_disk.lua fills the disk with an LD_PRELOAD shim instead")
end

local ok, err = pcall(function()
  local R = dofile("tests/lua/resume_lib.lua").new(T, {tmp = base .. "/work"})
  R.reference()
  local fill = mnt .. "/fill"

  -- Leave `kib` KiB free on the tmpfs (whatever else it holds).
  local function leave_free(kib)
    os.remove(fill)
    local p = io.popen("df -k --output=avail " .. sh(mnt) .. " | tail -1")
    local avail = tonumber(p:read("a"):match("%d+"))
    p:close()
    if avail > kib then assert(os.execute(string.format("fallocate -l %dk %s", avail - kib, sh(fill)))) end
  end

  T.test("model:save with 100 KiB free: ENOSPC, exit 3, no crash", function()
    leave_free(100)
    local code, text = T.sgdsa({"-e", string.format([[
      local m = require("models.lenet"){classes = 10}
      local ok, err = pcall(m.save, m, %q)
      print(ok, err)
      os.exit(ok and 0 or 3)]], mnt .. "/a.h5")})
    T.eq(code, 3, "exit status (" .. text .. ")")
    T.check(text:find("No space left on device", 1, true), text)
  end)

  for _, kib in ipairs{8, 30, 60, 100, 200, 330} do
    T.test(string.format("a run with %d KiB free: ENOSPC and exit 1 or done, never a crash; resumed: identical", kib),
           function()
      local name = "free" .. kib
      local dir = mnt .. "/runs/" .. name
      assert(sg.core.mkdir_p(mnt .. "/runs"))
      leave_free(kib)
      local code, text = T.sgdsa({"run", "tests/lua/trainer_fixture.lua", "out=" .. mnt .. "/runs", "name=" .. name},
                                 "SGDSA_FIXTURE_DATA=" .. sh(R.data))
      T.check(code == 0 or code == 1, "exit status " .. tostring(code) .. ":\n" .. text)
      if code == 1 then T.check(text:find("No space left on device", 1, true), text) end
      io.write(string.format("     %d KiB free: exit %d\n", kib, code))
      os.remove(fill)
      if code == 1 then
        local p = R.spawn("resume=" .. sh(dir), R.tmp .. "/" .. name .. ".out")
        R.wait_dead(p, 120)
      end
      T.check(R.finished(dir), "the run did not finish:\n" .. (T.read_file(R.tmp .. "/" .. name .. ".out") or ""))
      R.same_as_reference(dir)
      os.execute("rm -rf " .. sh(dir))
    end)
  end
end)
os.execute("umount " .. sh(mnt))
if not ok then error(err, 0) end
T.done()
