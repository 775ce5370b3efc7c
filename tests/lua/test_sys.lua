-- test_sys.lua - the system helpers in sgdsa.core (lua/l_sys.c): clock, sleep,
-- folders and files (mkdir_p, exists, listdir, fsync_rename), process and
-- terminal queries, the thread count, and the interrupt flag; and those of
-- the Lua library's sgdsa.sys (shell quoting, a command's output, files).
-- Run as `sgdsa run tests/lua/test_sys.lua` with SGDSA_TEST_TMP set.
local core = sgdsa.core
local tmp = assert(os.getenv("SGDSA_TEST_TMP"), "SGDSA_TEST_TMP is not set")
local dir = tmp .. "/sys." .. core.getpid()

local function raises(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error matching " .. pattern)
  assert(tostring(err):find(pattern), "error '" .. tostring(err) .. "' lacks '" .. pattern .. "'")
end

-- clock and sleep
local t0 = core.time()
assert(math.type(t0) == "float" and t0 > 0, "time() is not a positive float")
core.sleep(0.05)
local dt = core.time() - t0
assert(dt >= 0.045 and dt < 5, "sleep(0.05) took " .. dt .. " s")
raises("sleep: seconds must be in", core.sleep, -1)

-- folders and files
assert(core.mkdir_p(dir .. "/a/b/c"))
assert(core.mkdir_p(dir .. "/a/b/c"), "mkdir_p of an existing folder must succeed")
local ok, kind = core.exists(dir .. "/a/b")
assert(ok == true and kind == "directory", "exists(dir): " .. tostring(kind))
assert(core.exists(dir .. "/nope") == false)
for _, name in ipairs { "zeta", "alpha", "mid" } do
  local f = assert(io.open(dir .. "/a/" .. name, "w")); f:write(name); f:close()
end
local names = assert(core.listdir(dir .. "/a"))
assert(table.concat(names, ",") == "alpha,b,mid,zeta", "listdir: " .. table.concat(names, ","))
local none, msg = core.listdir(dir .. "/missing")
assert(none == nil and msg:find("listdir: .*missing: No such file"), "listdir missing: " .. tostring(msg))
local ok2, kind2 = core.exists(dir .. "/a/alpha")
assert(ok2 and kind2 == "file")
local bad, bmsg = core.mkdir_p(dir .. "/a/alpha/sub")
assert(bad == nil and bmsg:find("mkdir_p: .*alpha"), "mkdir_p through a file: " .. tostring(bmsg))

-- fsync_rename: atomic replace of a checkpoint
local f = assert(io.open(dir .. "/ckpt.tmp", "w")); f:write("weights v2"); f:close()
f = assert(io.open(dir .. "/ckpt", "w")); f:write("weights v1"); f:close()
assert(core.fsync_rename(dir .. "/ckpt.tmp", dir .. "/ckpt"))
f = assert(io.open(dir .. "/ckpt")); local body = f:read("a"); f:close()
assert(body == "weights v2", "fsync_rename content: " .. body)
assert(core.exists(dir .. "/ckpt.tmp") == false, "temporary file still there")
local r, rmsg = core.fsync_rename(dir .. "/ckpt.tmp", dir .. "/x")
assert(r == nil and rmsg:find("fsync_rename"), "fsync_rename of a missing file: " .. tostring(rmsg))
f = assert(io.open(dir .. "/c2.tmp", "w")); f:write("x"); f:close()
r, rmsg = core.fsync_rename(dir .. "/c2.tmp", dir .. "/no/such/dir/c2")
assert(r == nil and rmsg:find("c2%.tmp %-> .*c2: No such file"), "rename across: " .. tostring(rmsg))

-- process and terminal
assert(type(core.isatty(io.stdout)) == "boolean" and type(core.isatty(0)) == "boolean")
raises("isatty: bad file descriptor", core.isatty, -1)
assert(type(core.hostname()) == "string" and #core.hostname() > 0)
assert(math.type(core.getpid()) == "integer" and core.getpid() > 0)
local w = core.terminal_width()
assert(math.type(w) == "integer" and w > 0, "terminal_width " .. tostring(w))

-- threads
local n0 = core.get_num_threads()
core.set_num_threads(1)
assert(core.get_num_threads() == 1, "set_num_threads(1) -> " .. core.get_num_threads())
core.set_num_threads(n0)
assert(core.get_num_threads() == n0)
raises("set_num_threads: n must be in %[1, 4096%], got 0", core.set_num_threads, 0)

-- interrupts: none pending in a normal run; clear is idempotent; bad mode is an error
local flag, count = core.interrupted()
assert(flag == false and count == 0, "interrupted() at start")
core.clear_interrupted()
raises("invalid option 'sometimes'", core.catch_signals, "sometimes")

-- the library root holds the Lua library
assert(core.exists(core.root() .. "/lua/sgdsa/init.lua"), "root() " .. core.root())

-- sgdsa.sys: a quoted word reaches the shell as it was; a command's output
-- and exit status; a file's bytes; what cannot be read
local sys = require "sgdsa.sys"
local word = "it's a \"word\" with $HOME and `x`"
local out, ok, how, code = sys.output("printf %s " .. sys.quote(word))
assert(out == word and ok == true and how == "exit" and code == 0, "quote/output: " .. tostring(out))
out, ok, how, code = sys.output("printf abc; exit 3")
assert(out == "abc" and not ok and how == "exit" and code == 3, "output of a failing command")
local f = assert(io.open(dir .. "/bytes", "wb"))
f:write("a\0b\n")
f:close()
assert(sys.read_file(dir .. "/bytes") == "a\0b\n", "read_file")
assert(select("#", sys.read_file(dir .. "/bytes")) == 1, "read_file returns the bytes alone")
assert(sys.readable(dir .. "/bytes") == true, "readable")
assert(sys.read_file(dir .. "/missing") == nil and sys.readable(dir .. "/missing") == false, "a missing file")
assert(os.remove(dir .. "/bytes"))

-- clean up
for _, p in ipairs { "/a/alpha", "/a/mid", "/a/zeta", "/a/b/c", "/a/b", "/a", "/ckpt", "/c2.tmp", "" } do
  assert(os.remove(dir .. p))
end
print("test_sys: all passed")
