-- sgdsa.options: the check of an options table shared by sgdsa.data,
-- sgdsa.h5 and sgdsa.nn: a misspelled key is an error that names it and
-- lists the allowed ones.
local M = {}

--- opts with every key in the set `allowed` ({name = true, ...}); nil gives
-- {}. Errors "<what>: unknown option '<key>' (allowed: a, b, ...)" and
-- "<what>: options must be a table" blame the caller of the function that
-- called check, or `level` (default 1) functions further up.
function M.check(opts, allowed, what, level)
  level = (level or 1) + 2
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(what .. ": options must be a table", level) end
  for k in pairs(opts) do
    if not allowed[k] then
      local names = {}
      for a in pairs(allowed) do names[#names + 1] = a end
      table.sort(names)
      error(string.format("%s: unknown option '%s' (allowed: %s)", what, tostring(k),
                          table.concat(names, ", ")), level)
    end
  end
  return opts
end

return M
