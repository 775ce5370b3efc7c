-- sgdsa.sys: what the command modules (sweep, slurm, plot, inspect) and the
-- data sets need of Lua's io library and of /bin/sh, written once:
--   sys.quote(s)        s as one /bin/sh word (single quotes)
--   sys.output(cmd)     a shell command's stdout, then the results of closing
--                       its pipe (ok, "exit" or "signal", code); nil if it
--                       cannot be started
--   sys.read_file(path) a file's bytes; nil if it cannot be opened
--   sys.readable(path)  whether a file can be opened for reading
local M = {}

function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- The rest of what f (a file or a pipe) gives, then the results of closing it.
local function drain(f)
  local s = f:read("a")
  return s, f:close()
end

function M.output(cmd)
  local p = io.popen(cmd, "r")
  if not p then return nil end
  return drain(p)
end

function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  return (drain(f))
end

function M.readable(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

return M
