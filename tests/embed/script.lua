-- script.lua - run by tests/embed/embed.c twice: with sgdsa_dofile (string
-- arguments in `...`, as lua5.4 passes them) and with sgdsa_run (one table of
-- typed overrides in `...`). Leaves its result in the global from_script.
local a, b = ...
if type(a) == "table" then
  assert(a == sgdsa.args, "sgdsa_run: ... is not sgdsa.args")
  assert(math.type(a.n) == "integer", "sgdsa_run: n is not typed as an integer")
  from_script = "n=" .. a.n .. " tag=" .. a.tag
else
  assert(arg[0]:match("script%.lua$") and arg[1] == a and arg[2] == b, "sgdsa_dofile: arg table")
  from_script = a .. ":" .. b .. ":" .. sgdsa.ones(2, 3):numel()
end
