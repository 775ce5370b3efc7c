-- experiments/example_record_to_record.lua - how to write a new acceptance
-- rule: record-to-record travel (Dueck, 1993) instead of Metropolis. A move
-- is accepted iff its objective on the minibatch is below the record (the
-- best objective of an accepted point so far in this epoch) plus a
-- deviation D; D shrinks by `alpha` after every epoch, like a temperature,
-- and the record restarts each epoch (minibatch losses drift as the
-- network learns).
--
-- An acceptance rule is a table with decide(self, ctx, f_w, f_trial) ->
-- accepted, probability (0 or 1 for a deterministic rule); temperature()
-- is logged; epoch_end/step_end advance its schedule; state/set_state put
-- its memory in checkpoints. NaN/inf trials never reach decide (the search
-- loop rejects them first).
--   sgdsa run experiments/example_record_to_record.lua deviation=0.3
local sg = require "sgdsa"

local function record_to_record(D0, alpha)
  local ac = {name = "record_to_record", D = D0, record = math.huge}
  function ac.decide(self, _, fw, ft)
    if fw < self.record then self.record = fw end
    local ok = ft < self.record + self.D
    if ok and ft < self.record then self.record = ft end
    return ok, ok and 1 or 0
  end
  function ac.temperature(self) return self.D end
  function ac.epoch_end(self)
    self.D = self.D * alpha
    self.record = math.huge
  end
  function ac.state(self) return {D = self.D, record = self.record} end
  function ac.set_state(self, st) self.D, self.record = st.D or self.D, st.record or self.record end
  return ac
end

-- The script's own key: declared in `args` (default and type), so that
-- `deviation=0.3` is checked, recorded with the run and listed by --help.
local deviation = (... or {}).deviation or 0.5

return {
  args = {deviation = {default = 0.5, help = "the deviation D allowed above the record, at the start"}},
  model = {"lenet", classes = 10},
  data = {"fashion_mnist", batch = 128, limit = 10000},
  optim = sg.optim.optimizer{
    neighborhood = sg.optim.lr_set{H = {0.9, 0.5, 0.3, 0.1, 0.07, 0.05}},
    acceptance = record_to_record(deviation, 0.7),
  },
  epochs = 8,
  seed = 0,
}
