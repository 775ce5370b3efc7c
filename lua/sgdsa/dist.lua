-- sgdsa.dist: the ranks of a data-parallel run (`mpirun -np N sgdsa run ...`;
-- docs/ARCHITECTURE.md, "Data-parallel runs").
--
-- Every rank runs the same script on the same seed: the same weights, the
-- same data order, the same draws from every stream. Each one takes a
-- contiguous slice of every minibatch (loader:shard), and the numbers that
-- decide a step are sums over the ranks, in rank order, with the same bits
-- on every rank (core/comm.h): the minibatch objectives, the gradient, the
-- BatchNorm statistics with sync_bn. So every rank accepts or rejects the
-- same move without a further message, and the replicas stay identical.
--
--   local dist = require "sgdsa.dist"
--   dist.rank(), dist.size(), dist.active()     -- 0, 1, false without a job
--   dist.allsum{a, b, c}                        -- the table, summed in place
--   dist.allsum_tensor(t)                       -- float32 tensor, in place (NCCL on cuda)
--   dist.allmean_tensor(t)                      -- the same, divided by size()
--   dist.any(flag) -> boolean                   -- true on every rank if on one
--   dist.bcast(s) -> rank 0's string
--   dist.shard(n) -> offset, count              -- this rank's slice of n items
--   dist.built(), dist.nccl(), dist.library()   -- MPI built in; CUDA tensors summed by NCCL
--                                               (built with it, SGDSA_NCCL not "0"); MPI version
--
-- Every function but rank/size/active/shard/built/nccl/library is a
-- collective: every rank must call it, in the same order.
local core = require "sgdsa.core"
local D = core.dist

local M = {}

M.rank, M.size, M.local_rank = D.rank, D.size, D.local_rank
M.built, M.nccl, M.library = D.built, D.nccl, D.library
M.allsum, M.allsum_tensor, M.bcast, M.barrier = D.allsum, D.allsum_tensor, D.bcast, D.barrier

--- True in a job of several ranks.
function M.active() return D.size() > 1 end

--- The tensor summed over the ranks, then divided by their number.
function M.allmean_tensor(t)
  local n = D.size()
  if n > 1 then
    D.allsum_tensor(t)
    t:mul_(1 / n)
  end
  return t
end

local flag = {0}
--- true on every rank when `v` is true on any rank.
function M.any(v)
  if D.size() <= 1 then return v and true or false end
  flag[1] = v and 1 or 0
  D.allsum(flag)
  return flag[1] > 0
end

--- This rank's slice of n items (a minibatch of n images): offset, count.
--- Slice r is [n*r // N, n*(r+1) // N), as loader:shard cuts batches.
function M.shard(n, rank, size)
  rank, size = rank or D.rank(), size or D.size()
  local lo = n * rank // size
  return lo, n * (rank + 1) // size - lo
end

--- "rank 1 of 2" (for messages), or "" on one rank.
function M.where()
  if D.size() <= 1 then return "" end
  return string.format("rank %d of %d", D.rank(), D.size())
end

return M
