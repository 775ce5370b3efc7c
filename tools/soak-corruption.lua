-- soak-corruption.lua - the child of tools/soak-corruption: byte flips over
-- the files of a finished run folder (tests/lua/corruption_lib.lua), one line
-- per flip so that the parent can tell which flip a crash interrupted.
--
--   sgdsa run tools/soak-corruption.lua dir=DIR n=N seed=S [from=I]
--
-- Makes the run in DIR (or takes the one there), then checks flips I..N of
-- the fixed-seed list: prints "FLIP i file offset" (flushed) before each and
-- "RESULT i class what-happened" after, and "DONE" at the end. Run from the
-- source tree (it loads tests/lua/*.lua).
local a = ... or {}
local C = dofile("tests/lua/corruption_lib.lua")
local dir = assert(a.dir, "dir= is required")
local n, seed, from = a.n or 1000, a.seed or 1, a.from or 1
local ctx = C.setup(dir, true)
local flips = C.flips(seed, n, ctx)
for i = from, n do
  local fl = flips[i]
  io.stdout:write(string.format("FLIP %d %s %d\n", i, fl.file, fl.offset))
  io.stdout:flush()
  local class, what = C.check(ctx, fl)
  io.stdout:write(string.format("RESULT %d %s %s\n", i, class, what))
  io.stdout:flush()
end
print("DONE")
