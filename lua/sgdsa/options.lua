-- sgdsa.options: the check of an options table shared by sgdsa.data,
-- sgdsa.h5, sgdsa.nn, sgdsa.optim, the trainer and the model definitions: a
-- misspelled key is an error that names it, lists the allowed ones and, when
-- one is close to it, says which ("did you mean 'classes'?").
local M = {}

-- Edit distance between a and b (insertions, deletions, substitutions and
-- swaps of neighbouring characters each count 1).
local function distance(a, b)
  local n, m = #a, #b
  local prev2, prev, cur = {}, {}, {}
  for j = 0, m do prev[j] = j end
  for i = 1, n do
    cur = {[0] = i}
    for j = 1, m do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local d = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        d = math.min(d, prev2[j - 2] + 1)
      end
      cur[j] = d
    end
    prev2, prev = prev, cur
  end
  return prev[m]
end
M.distance = distance

--- The candidate closest to `word` (a list of strings), if it is close
--- enough to be a likely misspelling (case aside, at most one edit per three
--- characters, at least one allowed); nil otherwise.
function M.suggest(word, candidates)
  if type(word) ~= "string" then return nil end
  local lw = word:lower()
  local best, bestd
  for _, c in ipairs(candidates) do
    local d = distance(lw, tostring(c):lower())
    if d < (bestd or math.huge) or (d == bestd and tostring(c) < best) then best, bestd = tostring(c), d end
  end
  if best and bestd <= math.max(1, #word // 3) then return best end
  return nil
end

--- "; did you mean 'x'?" for an unknown `word` among `candidates`, or "".
function M.did_you_mean(word, candidates)
  local s = M.suggest(word, candidates)
  return s and string.format("; did you mean '%s'?", s) or ""
end

-- The names of `allowed`, a list ({"a", "b"}) or a set ({a = true}), as
-- strings, sorted.
local function names_of(allowed)
  local names = {}
  if allowed[1] ~= nil or next(allowed) == nil then
    for _, a in ipairs(allowed) do names[#names + 1] = tostring(a) end
  else
    for a in pairs(allowed) do names[#names + 1] = tostring(a) end
  end
  table.sort(names)
  return names
end
M.names = names_of

--- The message for an unknown key k of a table checked by `what`, allowed
--- (a list or a set) naming the keys it takes:
---   "<what>: unknown option 'k' (allowed: a, b, ...); did you mean 'x'?".
--- how (optional) words it for other tables: noun ("option"), quote = "%q"
--- (k as Lua text: "k"), more (text added inside the parentheses),
--- candidates (the names the did-you-mean picks from; default the allowed)
--- and near (the word it looks for; default k).
function M.unknown(what, k, allowed, how)
  how = how or {}
  local names = names_of(allowed)
  local key = how.quote == "%q" and string.format("%q", tostring(k)) or ("'" .. tostring(k) .. "'")
  return string.format("%s: unknown %s %s (allowed: %s%s)%s", what, how.noun or "option", key,
                       #names > 0 and table.concat(names, ", ") or "none", how.more or "",
                       M.did_you_mean(how.near or k, how.candidates or names))
end

--- A key of the table t that `allowed` (a list or a set) does not hold, or nil.
function M.unknown_key(t, allowed)
  local set = allowed
  if allowed[1] ~= nil then
    set = {}
    for _, a in ipairs(allowed) do set[a] = true end
  end
  for k in pairs(t) do
    if not set[k] then return k end
  end
  return nil
end

-- The checks of check and check_table; level counts from their caller.
local function check(opts, allowed, what, level, required)
  if opts == nil and not required then return {} end
  if type(opts) ~= "table" then
    error(required and string.format("%s: expected a table of options, got %s", what, type(opts))
          or (what .. ": options must be a table, got " .. type(opts)), level + 1)
  end
  local k = M.unknown_key(opts, allowed)
  if k ~= nil then error(M.unknown(what, k, allowed), level + 1) end
  return opts
end

--- opts with every key in `allowed` (a set {name = true, ...} or a list of
-- names); nil gives {}. Errors "<what>: unknown option '<key>' (allowed: a,
-- b, ...)" (with a did-you-mean) and "<what>: options must be a table" blame
-- the caller of the function that called check, or `level` (default 1)
-- functions further up.
function M.check(opts, allowed, what, level)
  return check(opts, allowed, what, (level or 1) + 1, false)
end

--- As check, for a table that must be given: nil (or any other non-table) is
--- the error "<what>: expected a table of options, got nil".
function M.check_table(opts, allowed, what, level)
  return check(opts, allowed, what, (level or 1) + 1, true)
end

--- The names among `candidates` (a list, or a set {name = true}) close to
-- `name`, nearest first, {} when none is: at most `max_distance` edits away
-- (default: one per three characters, at least one), letter case ignored.
function M.similar(name, candidates, max_distance)
  name = tostring(name)
  local list = names_of(candidates)
  local limit = max_distance or math.max(1, #name // 3)
  local scored = {}
  for _, c in ipairs(list) do
    local d = distance(name:lower(), c:lower())
    if d <= limit and c ~= name then scored[#scored + 1] = {c, d} end
  end
  table.sort(scored, function(x, y) return x[2] < y[2] or (x[2] == y[2] and x[1] < y[1]) end)
  local out = {}
  for i, e in ipairs(scored) do out[i] = e[1] end
  return out
end

return M
