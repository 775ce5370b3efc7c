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

--- The message for an unknown key k of a table checked by `what`:
--- "<what>: unknown option 'k' (allowed: a, b, ...); did you mean 'x'?".
function M.unknown(what, k, allowed_list)
  local names = {}
  for _, a in ipairs(allowed_list) do names[#names + 1] = tostring(a) end
  table.sort(names)
  return string.format("%s: unknown option '%s' (allowed: %s)%s", what, tostring(k),
                       #names > 0 and table.concat(names, ", ") or "none",
                       M.did_you_mean(k, names))
end

--- opts with every key in the set `allowed` ({name = true, ...}); nil gives
-- {}. Errors "<what>: unknown option '<key>' (allowed: a, b, ...)" (with a
-- did-you-mean) and "<what>: options must be a table" blame the caller of the
-- function that called check, or `level` (default 1) functions further up.
function M.check(opts, allowed, what, level)
  level = (level or 1) + 2
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(what .. ": options must be a table, got " .. type(opts), level) end
  for k in pairs(opts) do
    if not allowed[k] then
      local names = {}
      for a in pairs(allowed) do names[#names + 1] = a end
      error(M.unknown(what, k, names), level)
    end
  end
  return opts
end

--- The names among `candidates` (a list, or a set {name = true}) close to
-- `name`, nearest first, {} when none is: at most `max_distance` edits away
-- (default: one per three characters, at least one), letter case ignored.
function M.similar(name, candidates, max_distance)
  name = tostring(name)
  local list = {}
  if candidates[1] ~= nil or next(candidates) == nil then
    for _, c in ipairs(candidates) do list[#list + 1] = tostring(c) end
  else
    for c in pairs(candidates) do list[#list + 1] = tostring(c) end
  end
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
