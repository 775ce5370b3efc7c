-- tools/soak-kills.lua - the trials of tools/soak-kills (see there), run by
-- `sgdsa run tools/soak-kills.lua trials=N seed=S` with $SGDSA_BIN set.
local sg = require "sgdsa"
local args = ... or {}
local T = dofile("tests/lua/testlib.lua")
local R = dofile("tests/lua/resume_lib.lua").new(T, {tmp = T.tmpdir() .. "/soak"})
local trials = math.tointeger(args.trials) or 200
local gen = sg.Generator(math.tointeger(args.seed) or 1, "soak-kills")
R.reference()
local identical, kills, mids, bad = 0, 0, 0, {}
local t0 = sg.core.time()
for i = 1, trials do
  local name = "trial" .. i
  local ok, a, k, m = pcall(R.random_kills, name, gen)
  if ok then
    identical, kills, mids = identical + 1, kills + k, mids + m
    os.execute("rm -rf " .. T.shell_quote(R.out .. "/" .. name))
  else
    bad[#bad + 1] = string.format("trial %d: %s", i, tostring(a))
  end
  if i % 10 == 0 then
    io.write(string.format("soak-kills: %d/%d trials, %d identical, %.0f s\n", i, trials, identical,
                           sg.core.time() - t0))
    io.stdout:flush()
  end
end
print(string.format("trials %d, identical %d, not identical %d, kills landed %d, mid-epoch resumes %d (%.0f s)",
                    trials, identical, #bad, kills, mids, sg.core.time() - t0))
for _, b in ipairs(bad) do print(b) end
os.exit(#bad == 0 and 0 or 1)
