-- test_cuda_dist.lua - data-parallel runs on the GPU, with one GPU (or the
-- CUDA emulator): the NCCL path (a build with NCCL: a sum by NCCL over a
-- communicator of one process, on the compute stream), and a 2-rank GPU run
-- of tests/lua/trainer_fixture.lua with both ranks on GPU 0 (the gradient
-- and buffer sums through host copies and MPI, SGDSA_NCCL=0: NCCL refuses
-- two ranks on one GPU), which must take the decisions of its 2-rank CPU
-- twin (same slices, per-rank BatchNorm statistics) with objectives within
-- 1e-4. Skips (exit 77) without a usable GPU; the 2-rank part needs mpirun
-- and a build with MPI.
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"
local core = sg.core
local h5 = require "sgdsa.h5"

local _, emulated = T.need_cuda("the GPU data-parallel tests")
local sh = T.shell_quote

T.test("NCCL: a sum over a communicator of one process leaves the tensor as it was", function()
  if not core.dist.nccl() then
    print("     (built without NCCL: the GPU sums go through MPI)")
    return
  end
  local x = core.randn(4097, core.Generator(5))
  local t = x:cuda()
  core.dist.nccl_check(t)
  T.eq((t:cpu() - x):abs():max(), 0, "the sum over one rank")
end)

local bin = os.getenv("SGDSA_BIN")
if not (bin and core.exists(bin)) or not core.dist.built()
   or not os.execute("command -v mpirun >/dev/null 2>&1") then
  print("no mpirun or no MPI in this build: the 2-rank GPU run is skipped")
  T.done()
end

T.test("2 ranks on one GPU (sums through MPI) take the decisions of their CPU twin", function()
  local tmp = T.tmpdir() .. "/cuda_dist"
  T.remove(tmp)
  core.mkdir_p(tmp)
  local F = dofile("tests/lua/trainer_fixture.lua")
  local data = F.data_file(tmp)
  local function run(name, device)
    local cmd = string.format("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 " ..
                              "SGDSA_NCCL=0 SGDSA_CUDA_DEVICE=0 SGDSA_FIXTURE_DATA=%s timeout %d mpirun -np 2 " ..
                              "--oversubscribe %s run tests/lua/trainer_fixture.lua out=%s name=%s " ..
                              "epochs=1 device=%s 2>&1", sh(data), emulated and 3000 or 600, sh(bin),
                              sh(tmp .. "/runs"), name, device)
    local p = io.popen(cmd)
    local text = p:read("a")
    local _, _, code = p:close()
    T.eq(code, 0, name .. ":\n" .. text)
    return h5.read_log(tmp .. "/runs/" .. name .. "/log.h5", "steps")
  end
  T.same_decisions(run("gpu", "cuda"), run("cpu", "cpu"), 1e-4, "gpu against cpu")
end)

T.done()
