-- tools/bench_dist.lua - the time of a data-parallel SGD-SA step on this
-- machine, for `tools/bench --ranks "1 2"` (or by hand):
--   [mpirun -np R] sgdsa run tools/bench_dist.lua model=lenet batch=128 threads=1 time=10 [sync_bn=true]
-- Every rank takes its slice of one fixed random minibatch of `batch`
-- images (the whole minibatch is the experiment's, as in a run) and runs
-- SGD-SA steps through sgdsa.search (score "train": forward, backward, the
-- sum of the gradients over the ranks, trial forward, the sums of the
-- objectives); then the sum of the gradients alone is timed. Rank 0 prints
--   bench_dist model=lenet batch=128 ranks=2 threads=1 steps=N ms_per_step=
--     images_per_s= allsum_ms= grad_mb= sync_bn=
local sg = require "sgdsa"
local core = sg.core
local dist = require "sgdsa.dist"
local search = require "sgdsa.search"
local bench = require "sgdsa.bench"

local o = ... or {}
local name, batch, threads = o.model or "lenet", o.batch or 128, o.threads or 1
local seconds, warmup = o.time or 10, o.warmup or 2
local spec = bench.models[name] or error("bench_dist: unknown model " .. tostring(name), 0)
core.set_num_threads(threads)
sg.manual_seed(0)
local model = require("models." .. name){channels = spec.channels, size = spec.size, classes = 10}
local shard = {offset = 0, total = batch}
if dist.active() then model:data_parallel{sync_bn = o.sync_bn, shard = shard} end
local lo, n = dist.shard(batch)
shard.offset = lo
local gen = core.Generator(1)
local x = core.randn(batch, spec.channels, spec.size, spec.size, gen):narrow(1, lo + 1, n):contiguous()
local lab = {}
for i = 1, n do lab[i] = ((lo + i) * 7) % 10 end
local y = core.tensor(lab, "int32")

local S = search.new{model = model, optim = sg.optim.sgdsa{H = {0.01, 0.005}, T0 = 1e-3, alpha = 0.8},
                     dist = dist, sync_bn = o.sync_bn}
S:epoch_start(1)
for _ = 1, warmup do S:step(x, y) end
dist.barrier()
local t0, steps = core.time(), 0
repeat
  S:step(x, y)
  steps = steps + 1
  -- every rank stops after the same step: rank 0's clock decides
until dist.any(dist.rank() == 0 and core.time() - t0 >= seconds)
local dt = core.time() - t0

-- the sum of the gradients alone
local reps = math.max(3, math.min(steps, 50))
dist.barrier()
local t1 = core.time()
for _ = 1, reps do dist.allsum_tensor(model.grads) end
local at = core.time() - t1

if dist.rank() == 0 then
  print(string.format("bench_dist model=%s batch=%d ranks=%d threads=%d steps=%d ms_per_step=%.2f " ..
                      "images_per_s=%.1f allsum_ms=%.3f grad_mb=%.2f sync_bn=%s", name, batch,
                      dist.size(), threads, steps, 1000 * dt / steps, steps * batch / dt,
                      1000 * at / reps, model.grads:numel() * 4 / 1e6, tostring(o.sync_bn or false)))
end
