-- testlib.lua - a tiny test harness for sgdsa's Lua tests.
--   local T = dofile("tests/lua/testlib.lua")
--   T.test("name", function() T.eq(a, b) end)
--   T.done()            -- exits 1 if any test failed
-- and helpers for the command tests: T.sgdsa{...} runs the sgdsa executable,
-- T.read_file, T.write_file, T.write_idx (a small IDX set), T.shell_quote.
-- Every assertion names what was compared; a failing test keeps the others going.
local T = {}
local failures, count = 0, 0

local function fmt(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

function T.test(name, fn)
  count = count + 1
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    io.write("ok   ", name, "\n")
  else
    failures = failures + 1
    io.write("FAIL ", name, "\n  ", tostring(err):gsub("\n", "\n  "), "\n")
  end
end

function T.check(cond, msg, level)
  if not cond then error(msg or "check failed", (level or 1) + 1) end
end

function T.eq(a, b, msg)
  if a ~= b then error(string.format("%s: expected %s, got %s", msg or "eq", fmt(b), fmt(a)), 2) end
end

function T.near(a, b, tol, msg)
  tol = tol or 1e-6
  if not (math.abs(a - b) <= tol * (1 + math.abs(b))) then
    error(string.format("%s: expected %.9g, got %.9g (tol %g)", msg or "near", b, a, tol), 2)
  end
end

-- Tensors equal element-wise within tol (relative to the max magnitude).
function T.tensor_near(a, b, tol, msg)
  tol = tol or 1e-6
  local sa, sb = table.concat(a:size(), "x"), table.concat(b:size(), "x")
  if sa ~= sb then error(string.format("%s: shapes %s and %s differ", msg or "tensor_near", sa, sb), 2) end
  local diff = (a:contiguous() - b:contiguous()):abs():max()
  local scale = math.max(1, b:abs():max())
  if not (diff <= tol * scale) then
    error(string.format("%s: max difference %.3g > %.3g", msg or "tensor_near", diff, tol * scale), 2)
  end
end

-- fn must raise an error whose message contains `pattern` (plain text).
function T.raises(fn, pattern, msg)
  local ok, err = pcall(fn)
  if ok then error(string.format("%s: expected an error matching %q, got none", msg or "raises", pattern), 2) end
  err = tostring(err)
  if pattern and not err:find(pattern, 1, true) then
    error(string.format("%s: error %q does not contain %q", msg or "raises", err, pattern), 2)
  end
  return err
end

-- A word for /bin/sh: s in single quotes.
function T.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- The bytes of a file; nil if it cannot be opened.
function T.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Write the bytes s to path (an error if it cannot).
function T.write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- A small IDX image set, DIR/PREFIX-images-idx3-ubyte and
-- DIR/PREFIX-labels-idx1-ubyte: n images of h x w, pixel p of image i
-- (i*13 + p) % 256, label i % 10.
function T.write_idx(dir, prefix, n, h, w)
  local img, lab = { string.pack(">I4I4I4I4", 0x803, n, h, w) }, { string.pack(">I4I4", 0x801, n) }
  for i = 0, n - 1 do
    local px = {}
    for p = 0, h * w - 1 do px[#px + 1] = string.char((i * 13 + p) % 256) end
    img[#img + 1] = table.concat(px)
    lab[#lab + 1] = string.char(i % 10)
  end
  T.write_file(dir .. "/" .. prefix .. "-images-idx3-ubyte", table.concat(img))
  T.write_file(dir .. "/" .. prefix .. "-labels-idx1-ubyte", table.concat(lab))
end

-- Run the sgdsa executable ($SGDSA_BIN) with the words of the list `args`,
-- each quoted, and `env` (shell assignments, e.g. "A=1 B=2") in front.
-- Returns its exit code and its output (stdout and stderr together).
function T.sgdsa(args, env)
  local words = {}
  for i, a in ipairs(args) do words[i] = T.shell_quote(a) end
  local cmd = (env or "") .. " " .. T.shell_quote(os.getenv("SGDSA_BIN")) .. " "
              .. table.concat(words, " ") .. " 2>&1"
  local p = io.popen(cmd)
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

function T.tmpdir()
  local d = os.getenv("SGDSA_TEST_TMP") or "/tmp"
  os.execute("mkdir -p '" .. d .. "'")
  return d
end

function T.skip(reason)
  io.write("SKIP ", reason, "\n")
  os.exit(77)
end

function T.done()
  io.write(string.format("%d tests, %d failed\n", count, failures))
  os.exit(failures == 0 and 0 or 1)
end

return T
