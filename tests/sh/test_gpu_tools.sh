#!/bin/sh
# test_gpu_tools.sh - the GPU acceptance tools keep working where they are
# written (they run unattended, once, on a lent GPU machine): the bash tools
# parse, gpu-check.lua's stages exit 77 with a RESULT line when there is no
# GPU, and every mode runs on the CPU (device=cpu): the profile reports each
# layer kind's share of an SGD-SA step, agree compares two CPU runs, bench
# and the epoch (through the loader, from a synthetic file) give their figures.
# Env: SGDSA_BIN (the executable), SGDSA_SRC (source tree).
set -u
BIN=${SGDSA_BIN:?SGDSA_BIN must name the sgdsa executable}
SRC=${SGDSA_SRC:-.}
cd "$SRC" || exit 1
TMP=${SGDSA_TEST_TMP:-/tmp}/gputools.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

for t in gpu-check gpu-sanitize gpu-unbundle gpu-tests gpu-bundle; do
    bash -n "tools/$t" || fail "tools/$t does not parse"
    [ -x "tools/$t" ] || fail "tools/$t is not executable"
done

# profile on the CPU: vgg16 at batch 2, one step
"$BIN" run tools/gpu-check.lua mode=profile device=cpu model=vgg16 batch=2 steps=1 >"$TMP/prof" 2>&1
st=$?
[ $st -eq 0 ] || { fail "profile device=cpu: exit $st"; cat "$TMP/prof"; }
for k in Conv2d_fwd_train Conv2d_fwd_trial Conv2d_bwd BatchNorm2d_fwd_train step_ms_synced; do
    grep -Eq "^RESULT profile_vgg16_fp32_$k [0-9.]+" "$TMP/prof" ||
        { fail "profile: no RESULT line for $k"; cat "$TMP/prof"; }
done
# the per-layer table: a row per conv shape and pass, percentages summing to ~100
sum=$(awk '/ ms +[0-9.]+%  / { gsub("%", "", $3); s += $3 } END { printf "%.0f", s }' "$TMP/prof")
[ "$sum" -ge 99 ] && [ "$sum" -le 101 ] || { fail "profile: rows sum to $sum%"; cat "$TMP/prof"; }
grep -q 'Conv2d 64->64, k3x3 s1 p1 fwd(trial) 2x64x32x32' "$TMP/prof" ||
    { fail "profile: no row for the trial forward of the 64-channel conv"; cat "$TMP/prof"; }

# the other stages on the CPU (device=cpu): agree (CPU against CPU: exact),
# bench, and the epoch through the loader from the synthetic HDF5 file
"$BIN" run tools/gpu-check.lua mode=agree device=cpu model=vgg16 batch=2 steps=1 >"$TMP/out" 2>&1
st=$?
[ $st -eq 0 ] && grep -q '^RESULT agree_vgg16 PASS' "$TMP/out" &&
    grep -q 'params   max relative difference 0.00e+00' "$TMP/out" ||
    { fail "agree device=cpu: exit $st"; cat "$TMP/out"; }
"$BIN" run tools/gpu-check.lua mode=bench device=cpu model=vgg16 batch=2 steps=1 >"$TMP/out" 2>&1
st=$?
[ $st -eq 0 ] && grep -Eq '^RESULT vgg16_fp32_sa_over_sgd_step_time [0-9.]+$' "$TMP/out" &&
    grep -Eq '^RESULT vgg16_fp32_sgdsa_images_per_s [0-9]+$' "$TMP/out" &&
    grep -Eq '^RESULT vgg16_fp32_ssa_over_sgd_step_time [0-9.]+$' "$TMP/out" ||
    { fail "bench device=cpu: exit $st"; cat "$TMP/out"; }
TMPDIR=$TMP "$BIN" run tools/gpu-check.lua mode=epoch device=cpu model=vgg16 batch=16 images=40 \
    data=synthetic >"$TMP/out" 2>&1
st=$?
[ $st -eq 0 ] && grep -q '^RESULT epoch_data synthetic CIFAR-sized uint8 HDF5 file' "$TMP/out" &&
    grep -q '^RESULT vgg16_fp32_sgdsa_epoch_images 40$' "$TMP/out" &&
    [ -f "$TMP/sgdsa-gpu-check-cifar.h5" ] ||
    { fail "epoch device=cpu: exit $st"; cat "$TMP/out"; }

# the PyTorch twin of the bench stage (gpu-check's torch-bench), where torch is
if /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
    /usr/bin/python3 tools/bench_sa_torch.py --models lenet --batch 4 --steps 1 --results \
        >"$TMP/out" 2>&1
    st=$?
    [ $st -eq 0 ] && grep -Eq '^RESULT torch_lenet_fp32_sgdsa_step_ms [0-9.]+$' "$TMP/out" &&
        grep -Eq '^RESULT torch_lenet_fp32_sa_over_sgd_step_time [0-9.]+$' "$TMP/out" ||
        { fail "bench_sa_torch.py --results: exit $st"; cat "$TMP/out"; }
else
    echo "(no torch for /usr/bin/python3: tools/bench_sa_torch.py not run)"
fi

# without a GPU the GPU stages skip (77) and say why in a RESULT line
if ! "$BIN" -e 'local ok = require("sgdsa").core.cuda.available(); os.exit(ok and 0 or 1)' \
     >/dev/null 2>&1; then
    for mode in bench agree epoch; do
        "$BIN" run tools/gpu-check.lua mode=$mode model=vgg16 >"$TMP/out" 2>&1
        st=$?
        [ $st -eq 77 ] && grep -q '^RESULT error no CUDA device' "$TMP/out" ||
            { fail "mode=$mode without a GPU: exit $st"; cat "$TMP/out"; }
    done
else
    # with a GPU (or the CUDA emulator): a warp-shuffle kernel as the
    # process's first launch (the emulator once lost registers there), then
    # the agree stage at a small size
    "$BIN" -e 'local sg = require "sgdsa"
local x = sg.randn(2, 3, 5, 5)
local y = sg.empty(1):cuda()
sg.core.nn.global_avgpool_forward(x:cuda(), y)
local d = (y:cpu():view(-1) - x:view(2 * 3, 25):mean(2):view(-1)):abs():max()
assert(d < 1e-6, "global average pooling on the gpu differs by " .. d)' >"$TMP/out" 2>&1 ||
        { fail "first launch a shuffle kernel"; cat "$TMP/out"; }
    "$BIN" run tools/gpu-check.lua mode=agree model=vgg16 batch=2 steps=1 >"$TMP/out" 2>&1
    st=$?
    [ $st -eq 0 ] && grep -q '^RESULT agree_vgg16 PASS' "$TMP/out" ||
        { fail "agree on the GPU: exit $st"; cat "$TMP/out"; }
fi

if [ $fails -ne 0 ]; then
    echo "test_gpu_tools: $fails failure(s)"
    exit 1
fi
echo "test_gpu_tools: all passed"
