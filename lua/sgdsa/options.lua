-- sgdsa.options: the check of an options table shared by sgdsa.data,
-- sgdsa.h5 and sgdsa.nn: a misspelled key is an error that names it and
-- lists the allowed ones; and the nearest names to a misspelled one
-- (did_you_mean), for every such error.
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

-- Edit distance (insertions, deletions, substitutions, and a swap of two
-- neighbouring letters counted as one) between strings a and b.
local function distance(a, b)
  local la, lb = #a, #b
  local d = {}
  for i = 0, la do d[i] = {[0] = i} end
  for j = 0, lb do d[0][j] = j end
  for i = 1, la do
    for j = 1, lb do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[la][lb]
end
M.distance = distance

--- The names among `candidates` (a list, or a set {name = true}) close to
-- `name` (a typo: at most a third of its letters off, or one name the prefix
-- of the other, letter case ignored), nearest first; {} when none is. With
-- `max_distance`, only names at most that many edits away.
function M.similar(name, candidates, max_distance)
  name = tostring(name)
  local list = {}
  if candidates[1] ~= nil or next(candidates) == nil then
    for _, c in ipairs(candidates) do list[#list + 1] = tostring(c) end
  else
    for c in pairs(candidates) do list[#list + 1] = tostring(c) end
  end
  local lname = name:lower()
  local scored = {}
  for _, c in ipairs(list) do
    local lc = c:lower()
    local d = distance(lname, lc)
    local near
    if max_distance then
      near = d <= max_distance
    else
      near = d <= math.max(1, #name // 3)
        or (#lname >= 3 and (lc:sub(1, #lname) == lname or lname:sub(1, #lc) == lc))
    end
    if near and c ~= name then scored[#scored + 1] = {c, d} end
  end
  table.sort(scored, function(x, y) return x[2] < y[2] or (x[2] == y[2] and x[1] < y[1]) end)
  local out = {}
  for i, e in ipairs(scored) do out[i] = e[1] end
  return out
end

--- " (did you mean X?)" or " (did you mean X or Y?)" for a misspelled
-- `name` among `candidates`, or "" when none is near.
function M.did_you_mean(name, candidates, max_distance)
  local s = M.similar(name, candidates, max_distance)
  if #s == 0 then return "" end
  if #s == 1 then return " (did you mean " .. s[1] .. "?)" end
  return " (did you mean " .. s[1] .. " or " .. s[2] .. "?)"
end

return M
