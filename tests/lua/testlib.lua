-- testlib.lua - a tiny test harness for sgdsa's Lua tests.
--   local T = dofile("tests/lua/testlib.lua")
--   T.test("name", function() T.eq(a, b) end)
--   T.done()            -- exits 1 if any test failed
-- and helpers for the command tests: T.sgdsa{...} runs the sgdsa executable,
-- T.read_file, T.write_file, T.write_idx (a small IDX set), T.shell_quote;
-- for scratch folders: T.tmpdir, T.scratch, T.remove; for the GPU tests:
-- T.need_cuda; for comparing runs: T.same_logs, T.same_run, T.same_decisions.
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
T.shell_quote = require("sgdsa.sys").quote

-- The bytes of a file; nil if it cannot be opened.
T.read_file = require("sgdsa.sys").read_file

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

-- The tests' scratch folder ($SGDSA_TEST_TMP, else /tmp), or its folder
-- `sub`; created if missing.
function T.tmpdir(sub)
  local d = os.getenv("SGDSA_TEST_TMP") or "/tmp"
  if sub then d = d .. "/" .. sub end
  os.execute("mkdir -p " .. T.shell_quote(d))
  return d
end

-- A new empty folder NAME-PID in the scratch folder (what was there is removed).
function T.scratch(name)
  local core = require "sgdsa.core"
  local d = string.format("%s/%s-%d", T.tmpdir(), name, core.getpid())
  T.remove(d)
  assert(core.mkdir_p(d))
  return d
end

-- Remove a file or a folder with all it holds.
function T.remove(path)
  os.execute("rm -rf " .. T.shell_quote(path))
end

-- Skip the test (exit 77) without a usable CUDA device, saying what is
-- skipped; else print the device's name and return it and whether it is the
-- CUDA emulator.
function T.need_cuda(what)
  local cuda = require("sgdsa.core").cuda
  local ok, why = cuda.available()
  if not ok then
    print("no CUDA device: skipping " .. what .. " (" .. tostring(why) .. ")")
    os.exit(77)
  end
  local name = tostring(cuda.device_name())
  print("device: " .. name)
  return name, name:find("emulator", 1, true) ~= nil
end

local function num(v) return math.type(v) == "float" and string.format("%.17g", v) or tostring(v) end

-- The step and epoch logs of the run in folder `dir` equal those of the run
-- in `ref` bit for bit (NaN equals NaN), the time columns aside.
function T.same_logs(dir, ref, what)
  local h5 = require "sgdsa.h5"
  local ignore = {seconds = true, images_per_s = true}
  for _, group in ipairs{"steps", "epochs"} do
    local a, b = h5.read_log(dir .. "/log.h5", group), h5.read_log(ref .. "/log.h5", group)
    T.eq(a.rows, b.rows, what .. ": " .. group .. " rows")
    for _, c in ipairs(b.columns) do
      for i = 1, ignore[c] and 0 or b.rows do
        local x, y = a.data[c][i], b.data[c][i]
        if x ~= y and (x == x or y == y) then   -- differ, and not both NaN
          error(string.format("%s: %s log, column %s, row %d: %s vs %s", what, group, c, i, num(x), num(y)), 2)
        end
      end
    end
  end
end

-- The run in `dir` ended as the run in `ref`: the same final weights and
-- buffers, best weights and logs (T.same_logs); weights(path) loads a
-- checkpoint into a new model.
function T.same_run(dir, ref, what, weights)
  local m, r = weights(dir .. "/last.h5"), weights(ref .. "/last.h5")
  T.eq((m.params - r.params):abs():max(), 0, what .. ": final weights")
  T.eq((m.buffers - r.buffers):abs():max(), 0, what .. ": final BatchNorm buffers")
  local mb, rb = weights(dir .. "/best.h5"), weights(ref .. "/best.h5")
  T.eq((mb.params - rb.params):abs():max(), 0, what .. ": best weights")
  T.same_logs(dir, ref, what)
end

-- Two step logs (h5.read_log's tables) with the same SA decision at every
-- step and f(w) within tol.
function T.same_decisions(a, b, tol, what)
  T.eq(a.rows, b.rows, what .. ": steps")
  for i = 1, b.rows do
    T.eq(a.data.accepted[i], b.data.accepted[i], what .. ": decision at step " .. i)
    T.near(a.data.objective[i], b.data.objective[i], tol, what .. ": f(w) at step " .. i)
  end
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
