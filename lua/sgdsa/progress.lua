-- sgdsa.progress: what the trainer shows while it runs.
--   "bar"   a progress bar per epoch on the terminal, redrawn at most 10 times
--           a second: epoch, bar, the time left in the epoch and in the
--           whole run ("left: epoch 0:12, run 3:40"), images/s, loss, T,
--           acceptance rate; the epoch's summary line stays when the epoch
--           ends, with the time left in the run;
--   "lines" one summary line per epoch (for logs and pipes), the same;
--   "off"   nothing;  "auto": "bar" when stdout is a terminal, else "lines".
-- Before the first epoch, in "bar" and "lines": a line while the data load
-- ("loading data ...", then how long it took) and the run folder's line
-- (progress.note).
local core = require "sgdsa.core"

local M = {}
local P = {}
P.__index = P

local function clock(s)
  if s ~= s or s == math.huge then return "--:--" end
  s = math.floor(s + 0.5)
  if s >= 3600 then return string.format("%d:%02d:%02d", s // 3600, s % 3600 // 60, s % 60) end
  return string.format("%d:%02d", s // 60, s % 60)
end
M.clock = clock

local function resolve(mode)
  if mode == "auto" then return core.isatty(1) and "bar" or "lines" end
  return mode
end

--- A line of what the trainer is doing before it trains (unless mode is
--- "off"); with `open`, no newline: the line is finished by a later note.
function M.note(mode, text, open)
  if resolve(mode) == "off" then return end
  io.stdout:write(text, open and "" or "\n")
  io.stdout:flush()
end

function M.new(mode, epochs, nbatches)
  mode = resolve(mode)
  return setmetatable({mode = mode, epochs = epochs, nbatches = nbatches, out = io.stdout,
                       last_draw = 0, drawn = false}, P)
end

function P:epoch_start(epoch, done_steps)
  self.epoch, self.t0, self.steps0 = epoch, core.time(), done_steps or 0
  self.seen, self.loss_sum, self.acc, self.prob = 0, 0, 0, 0
end

function P:step(search, rec)
  local now = core.time()
  self.last_step, self.steps_here = now, search.stats.steps - self.steps0
  if self.mode ~= "bar" then return end
  self.seen = self.seen + rec.n
  self.loss_sum = self.loss_sum + rec.loss * rec.n
  if now - self.last_draw < 0.1 then return end
  self.last_draw = now
  local st = search.stats
  local dt = now - self.t0
  local steps_here = st.steps - self.steps0
  local nb = self.nbatches
  local frac = nb and nb > 0 and math.min(1, st.steps / nb) or 0
  local per_step = steps_here > 0 and dt / steps_here or 0 / 0
  local left_epoch = nb and per_step * (nb - st.steps) or 0 / 0
  -- the later epochs at this speed, each with its validation as measured so far
  local later = self.epochs - self.epoch
  local left_run = nb and left_epoch + later * (per_step * nb + (self.val_time or 0)) + (self.val_time or 0)
                   or 0 / 0
  local width = core.terminal_width()
  local T = rec.temperature
  -- the times left first: a narrow terminal cuts the end of the line
  local left = string.format("  left: epoch %s, run %s", clock(left_epoch), clock(left_run))
  local text = string.format("  %.0f img/s  loss %.4f  T %s  acc.rate %.0f%%",
                             dt > 0 and self.seen / dt or 0, self.seen > 0 and self.loss_sum / self.seen or 0,
                             T == T and string.format("%.3g", T) or "-", st.steps > 0 and 100 * st.accepted / st.steps or 0)
  local head = string.format("epoch %d/%d ", self.epoch, self.epochs)
  local barw = math.max(5, math.min(30, width - #head - #left - #text - 8))
  local fill = math.floor(frac * barw + 0.5)
  local line = head .. "[" .. string.rep("#", fill) .. string.rep(".", barw - fill) .. "]" ..
               string.format("%4.0f%%", 100 * frac) .. left .. text
  if #line > width - 1 then line = line:sub(1, width - 1) end
  self.out:write("\r", line, string.rep(" ", math.max(0, width - 1 - #line)))
  self.out:flush()
  self.drawn = true
end

function M.summary(e, epochs)
  return string.format(
    "epoch %d/%d  train loss %.4f acc %.2f%%  val loss %.4f acc %.2f%%  T %s  accepted %.1f%% (mean p %.3f)%s  %.1f s  %.0f img/s",
    e.epoch, epochs, e.train_loss, 100 * e.train_acc, e.val_loss, 100 * e.val_acc,
    e.T == e.T and string.format("%.4g", e.T) or "-",
    100 * e.accept_rate, e.mean_prob, e.nonfinite > 0 and string.format("  non-finite %d", e.nonfinite) or "",
    e.seconds, e.images_per_s)
end

-- The time an epoch takes (its steps at this epoch's speed, and its
-- validation as measured now), for the estimate of the run's end.
function P:epoch_end(e)
  local now = core.time()
  if self.last_step then self.val_time = now - self.last_step end
  local n = self.steps_here or 0
  local left = ""
  if e.epoch < self.epochs and self.nbatches and n > 0 then
    local epoch_time = (self.last_step - self.t0) / n * self.nbatches + (self.val_time or 0)
    left = "  run left ~" .. clock((self.epochs - e.epoch) * epoch_time)
  end
  self.last_step = nil
  if self.mode == "off" then return end
  if self.drawn then self.out:write("\r", string.rep(" ", core.terminal_width() - 1), "\r") end
  self.drawn = false
  self.out:write(M.summary(e, self.epochs), left, "\n")
  self.out:flush()
end

function P:finish()
  if self.drawn then
    self.out:write("\n")
    self.out:flush()
    self.drawn = false
  end
end

return M
