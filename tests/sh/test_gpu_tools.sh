#!/bin/sh
# test_gpu_tools.sh - the GPU acceptance tools keep working where they are
# written (they run unattended, once, on a lent GPU machine): the bash tools
# parse, gpu-check's plan keeps the agreement and benchmark stages whatever
# fails (a dry run), an unsupported compute-sanitizer is a skip, the CUDA
# build has -lineinfo and no duplicated PTX, gpu-check.lua's stages exit 77 with a RESULT line when there is no
# GPU, and every mode runs on the CPU (device=cpu): the profile reports each
# layer kind's share of an SGD-SA step, agree compares two CPU runs, bench
# and the epoch (through the loader, from a synthetic file) give their figures.
# With a GPU (or the CUDA emulator): agree, overlap, and the bench's and the
# profile's per-step figures (one host wait per step, the launches).
# Env: SGDSA_BIN (the executable), SGDSA_SRC (source tree).
. "$(dirname "$0")/lib.sh"
BIN=${SGDSA_BIN:?SGDSA_BIN must name the sgdsa executable}
cd "$SRC" || exit 1
scratch gputools

for t in gpu-check gpu-sanitize gpu-unbundle gpu-tests gpu-bundle; do
    bash -n "tools/$t" || fail "tools/$t does not parse"
    [ -x "tools/$t" ] || fail "tools/$t is not executable"
done

# gpu-check's plan (a dry run: every stage takes its whole limit, the worst
# case): whatever fails or hangs, the agreement and resnet34 benchmark stages
# run with their full limits, the resume test has its own stage, the
# sanitizer comes last, and the whole run fits one 10-minute call
for mode in pass fail; do
    for bundle in "" .gpu-bundle/none.tar.xz; do
        d=$TMP/plan-$mode${bundle:+-bundle}
        SGDSA_GPU_CHECK_DRY=$mode SGDSA_GPU_BUNDLE=$bundle tools/gpu-check "$d" >"$TMP/plan" 2>&1
        what="gpu-check plan ($mode${bundle:+, bundle})"
        grep -q '^stage ' "$d/results.txt" || { fail "$what: no stages"; cat "$TMP/plan"; continue; }
        for s in agree-resnet34:60 agree-vgg16:60 bench-resnet34-tf32:50 bench-resnet34-fp32:60; do
            grep -q "^stage ${s%%:*}: DRY (limit ${s#*:}s," "$d/results.txt" ||
                { fail "$what: ${s%%:*} does not run with its full ${s#*:}s"; cat "$d/results.txt"; }
        done
        last=$(grep '^stage ' "$d/results.txt" | tail -1 | cut -d: -f1)
        [ "$last" = "stage sanitize" ] || fail "$what: the last stage is '$last', not the sanitizer"
        grep -q '^stage ctest-gpu-resume:' "$d/results.txt" || fail "$what: no ctest-gpu-resume stage"
        grep -q "cuda_resume" "$d/ctest-gpu.log" && ! grep -q -- "-E cuda_resume" "$d/ctest-gpu.log" &&
            fail "$what: ctest-gpu runs the resume test: $(cat "$d/ctest-gpu.log")"
        # the essential stages come before every optional one after the GPU tests
        order=$(grep '^stage ' "$d/results.txt" | cut -d: -f1 | sed 's/^stage //' | tr '\n' ' ')
        case "$order" in
            *agree-resnet34\ agree-vgg16\ bench-resnet34-tf32\ bench-resnet34-fp32\ ctest-gpu-resume\ *) ;;
            *) fail "$what: stage order $order" ;;
        esac
        total=$(sed -n 's/^total: \([0-9]*\)s (worst case).*/\1/p' "$d/results.txt")
        [ -n "$total" ] && [ "$total" -le 570 ] || fail "$what: worst case ${total:-?}s is over 570s"
        if [ $mode = fail ]; then
            grep -q '^stage ctest-gpu-blocking: ' "$d/results.txt" ||
                fail "$what: no blocking rerun after a failed GPU test"
            [ -n "$bundle" ] && ! grep -q '^stage sanitize: DRY' "$d/results.txt" &&
                fail "$what: no time left for the sanitizer after a failed GPU test"
        fi
    done
done

# compute-sanitizer that does not support the device ("Device not supported"):
# a visible skip (exit 77, SKIP lines saying why), not a failure
mkdir -p "$TMP/fakecs"
cat > "$TMP/fakecs/compute-sanitizer" <<'EOF'
#!/bin/sh
[ "$1" = --version ] && { echo "NVIDIA (R) Compute Sanitizer"; echo "Version 2099.1.0"; exit 0; }
echo "========= COMPUTE-SANITIZER"
echo "========= Error: Device not supported. Please refer to the \"Supported Devices\" section of the sanitizer documentation"
exit 1
EOF
chmod +x "$TMP/fakecs/compute-sanitizer"
if [ -n "${SGDSA_BUILD:-}" ] && [ -d "$SGDSA_BUILD" ]; then
    PATH=$TMP/fakecs:$PATH tools/gpu-sanitize "$SGDSA_BUILD" 30 >"$TMP/out" 2>&1
    st=$?
    [ $st -eq 77 ] && [ "$(grep -c '^RESULT sanitize_.* SKIP (compute-sanitizer unsupported here: Error: Device not supported' "$TMP/out")" -eq 4 ] &&
        ! grep -q 'ERRORS\|failed' "$TMP/out" ||
        { fail "gpu-sanitize with an unsupported device: exit $st"; cat "$TMP/out"; }
    # the CUDA build passes -lineinfo (sanitizer reports name the .cu line)
    f=$SGDSA_BUILD/CMakeFiles/sgdsa.dir/flags.make
    if grep -q '^CUDA_FLAGS' "$f" 2>/dev/null; then
        grep '^CUDA_FLAGS' "$f" | grep -q -- '-lineinfo' || fail "CUDA_FLAGS without -lineinfo: $(grep '^CUDA_FLAGS' "$f")"
        [ "$(grep '^CUDA_FLAGS' "$f" | grep -o 'arch=compute_[0-9a-z]*,code=[^ ]*compute_' | wc -l)" -le "$(grep '^CUDA_FLAGS' "$f" | grep -o 'arch=compute_[0-9a-z]*' | sort -u | wc -l)" ] ||
            fail "CUDA_FLAGS asks for the same PTX twice: $(grep '^CUDA_FLAGS' "$f")"
    fi
fi

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
# overlap on the CPU: both feeds are host batches, so the same bits
TMPDIR=$TMP "$BIN" run tools/gpu-check.lua mode=overlap device=cpu model=resnet18 width=0.125 \
    batch=4 steps=3 >"$TMP/out" 2>&1
st=$?
[ $st -eq 0 ] && grep -q '^RESULT overlap_resnet18_fp32 PASS (3 steps' "$TMP/out" ||
    { fail "overlap device=cpu: exit $st"; cat "$TMP/out"; }
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
    for mode in bench agree epoch overlap; do
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
    # (cuDNN's heuristics: timing every algorithm is test_cuda_algo's job, and
    # slow on the emulator)
    SGDSA_CUDNN_HEURISTIC=1 "$BIN" run tools/gpu-check.lua mode=agree model=vgg16 batch=2 steps=1 >"$TMP/out" 2>&1
    st=$?
    [ $st -eq 0 ] && grep -q '^RESULT agree_vgg16 PASS' "$TMP/out" ||
        { fail "agree on the GPU: exit $st"; cat "$TMP/out"; }
    # steps fed through the loader's overlapped copies = steps fed from
    # batches already on the device
    TMPDIR=$TMP "$BIN" run tools/gpu-check.lua mode=overlap model=resnet18 width=0.125 batch=4 \
        steps=3 >"$TMP/out" 2>&1
    st=$?
    [ $st -eq 0 ] && grep -q '^RESULT overlap_resnet18_fp32 PASS (3 steps' "$TMP/out" ||
        { fail "overlap on the GPU: exit $st"; cat "$TMP/out"; }
    # the bench's and the profile's per-step figures: one host wait per step
    # (the objectives read back together), the launches counted
    SGDSA_CUDNN_HEURISTIC=1 "$BIN" run tools/gpu-check.lua mode=bench model=resnet18 width=0.125 \
        batch=2 steps=2 det=true >"$TMP/out" 2>&1
    st=$?
    [ $st -eq 0 ] || { fail "bench on the GPU: exit $st"; cat "$TMP/out"; }
    for k in sgd sgdsa ssa; do
        grep -q "^RESULT resnet18_fp32det_${k}_host_waits_per_step 1.0$" "$TMP/out" &&
            grep -Eq "^RESULT resnet18_fp32det_${k}_launches_per_step [1-9][0-9]+$" "$TMP/out" ||
            { fail "bench on the GPU: host waits or launches per step of $k"; cat "$TMP/out"; }
    done
    SGDSA_CUDNN_HEURISTIC=1 "$BIN" run tools/gpu-check.lua mode=profile model=resnet18 width=0.125 \
        batch=2 steps=1 >"$TMP/out" 2>&1
    st=$?
    [ $st -eq 0 ] && grep -Eq '^RESULT profile_resnet18_fp32_launches_per_step [1-9][0-9]+$' "$TMP/out" ||
        { fail "profile on the GPU: exit $st, or no launches per step"; cat "$TMP/out"; }
fi

finish test_gpu_tools
