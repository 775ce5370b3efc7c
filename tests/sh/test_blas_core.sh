#!/bin/sh
# test_blas_core.sh - no generic BLAS kernels on a capable CPU (no timing):
# (1) the rule (core.blas_core_for, a pure function) on made-up cores and
#     CPUs: an older core is replaced by SkylakeX (AVX-512), Haswell (AVX2),
#     Zen (AMD AVX2); a fitting or unknown core is kept;
# (2) in the default environment, on a CPU with AVX2 or AVX-512, the core in
#     use is not older than the CPU, and nothing warns;
# (3) OPENBLAS_CORETYPE=Prescott set by the user is respected and reported
#     (cpu_info, --version, the bench line), without a warning;
# (4) the executable's re-exec, driven by SGDSA_TEST_BLAS_CORE (OpenBLAS
#     taken to have detected Prescott): the new image runs the rule's core
#     and says sgdsa set it, also when GOMP_SPINCOUNT needs no re-exec; a
#     user's OPENBLAS_CORETYPE still wins;
# (5) a stock lua5.4 loading the module (no re-exec) warns once with the fix.
# Env: SGDSA_BIN, SGDSA_BUILD, SGDSA_SRC, SGDSA_TEST_TMP.
. "$(dirname "$0")/lib.sh"
BIN=${SGDSA_BIN:?SGDSA_BIN must name the sgdsa executable}
BUILD=${SGDSA_BUILD:-build}
scratch blas_core
# the default environment: no core chosen, no note, no test hook
clean() { env -u OPENBLAS_CORETYPE -u SGDSA_BLAS_DETECTED -u SGDSA_TEST_BLAS_CORE "$@"; }
# run CMD, stdout to $TMP/out and stderr to $TMP/err; fail (with both) unless it exits 0
run() {
    "$@" >"$TMP/out" 2>"$TMP/err" || { fail "$* exited $?"; shown "$TMP/out" "$TMP/err"; }
}
no_warning() {
    if grep -q "warning" "$TMP/err"; then fail "$1 warned:"; shown "$TMP/err"; fi
}

# --- (1) the rule ---------------------------------------------------------------------------
run clean "$BIN" -e '
local f = sgdsa.core.blas_core_for
local X512, X2 = {"avx2", "avx512", "amx"}, {"avx2"}
local cases = {
  {"Prescott", X512, "SkylakeX"}, {"prescott", X512, "SkylakeX"}, {"Core2", X512, "SkylakeX"},
  {"Nehalem", X512, "SkylakeX"}, {"Sandybridge", X512, "SkylakeX"}, {"Haswell", X512, "SkylakeX"},
  {"Zen", {"avx2", "avx512", "amd"}, "SkylakeX"}, {"Unknown", X512, "SkylakeX"},
  {"SkylakeX", X512, nil}, {"Cooperlake", X512, nil}, {"SapphireRapids", X512, nil},
  {"Prescott", X2, "Haswell"}, {"Sandybridge", X2, "Haswell"}, {"Haswell", X2, nil},
  {"Zen", X2, nil}, {"SkylakeX", X2, nil},
  {"Prescott", {"avx2", "amd"}, "Zen"}, {"Bulldozer", {"avx2", "amd"}, "Zen"},
  {"Zen", {"avx2", "amd"}, nil},
  {"Prescott", {}, nil}, {"Nehalem", {"amd"}, nil},
  {"Zen5", X512, nil}, {"SomeFutureCore", X2, nil},
}
for _, c in ipairs(cases) do
  local got = f(c[1], c[2])
  if got ~= c[3] then
    error(string.format("blas_core_for(%s, {%s}) = %s, want %s", c[1], table.concat(c[2], ","),
                        tostring(got), tostring(c[3])), 0)
  end
end
local ok, err = pcall(f, "Prescott", {"avx3"})
assert(not ok and err:find("unknown CPU feature avx3", 1, true), err)
print("rule ok")'
grep -q "^rule ok$" "$TMP/out" || fail "the rule"

# --- (2) the default environment --------------------------------------------------------------
run clean "$BIN" -e '
local i = sgdsa.core.cpu_info()
local f = table.concat(i.features, " ")
print(i.blas_core, i.blas_core_origin, f, i.blas_core_advice or "-")
local capable = f:find("avx2") ~= nil
-- the cores older than AVX2 (and the "Unknown" fallback), as the rule knows them
local old = {}
for c in ("Unknown Generic Katmai Coppermine Northwood Prescott Banias Atom Core2 Penryn " ..
          "Dunnington Nehalem Athlon Opteron Opteron_SSE3 Barcelona Nano Bobcat Sandybridge " ..
          "Bulldozer Piledriver Steamroller Excavator"):gmatch("%S+") do old[c:lower()] = true end
if capable then
  assert(not old[i.blas_core:lower()], "a generic BLAS core on an AVX2 CPU: " .. i.summary)
  assert(sgdsa.core.blas_core_for(i.blas_core, i.features) == nil,
         "a BLAS core older than the CPU: " .. i.summary)
  assert(i.blas_core_origin ~= "user", i.blas_core_origin)
end
assert(i.summary:find("core " .. i.blas_core, 1, true), i.summary)
print(capable and "capable" or "not capable")'
cat "$TMP/out"
no_warning "the default environment"
capable=no
grep -q "^capable$" "$TMP/out" && capable=yes
[ $capable = yes ] || echo "note: this CPU has no AVX2: (2) checked nothing, (4) and (5) skipped"

# --- (3) a core the user forced ---------------------------------------------------------------
run clean env OPENBLAS_CORETYPE=Prescott "$BIN" -e '
local i = sgdsa.core.cpu_info()
assert(i.blas_core == "Prescott", "OPENBLAS_CORETYPE=Prescott gave " .. i.blas_core)
assert(i.blas_core_origin == "user", i.blas_core_origin)
assert(i.blas_core_advice == nil and i.blas_core_detected == nil)
print("forced ok")'
grep -q "^forced ok$" "$TMP/out" || fail "OPENBLAS_CORETYPE=Prescott not respected"
no_warning "OPENBLAS_CORETYPE=Prescott"
run clean env OPENBLAS_CORETYPE=Prescott "$BIN" --version
grep -q "^BLAS: .*core Prescott (OPENBLAS_CORETYPE=Prescott set by the user)" "$TMP/out" ||
    { fail "--version does not report the forced core"; cat "$TMP/out"; }
grep -q "^oneDNN: " "$TMP/out" || fail "--version names no oneDNN line"
run clean env OPENBLAS_CORETYPE=Prescott "$BIN" bench --model mlp --batch 8 --time 0 --warmup 0 \
    --sgemm 32
grep -q "^bench .* gflops=[0-9.]* sgemm_gflops=[0-9.]* of_sgemm=[0-9.]* blas_core=Prescott dnnl_isa=" \
    "$TMP/out" || { fail "the bench line"; cat "$TMP/out"; }
no_warning "sgdsa bench with OPENBLAS_CORETYPE=Prescott"

if [ $capable = yes ]; then
    # --- (4) the re-exec ------------------------------------------------------------------------
    for spin in "" 10000; do
        run clean env ${spin:+GOMP_SPINCOUNT=$spin} SGDSA_TEST_BLAS_CORE=Prescott "$BIN" -e '
local i = sgdsa.core.cpu_info()
local want = sgdsa.core.blas_core_for("Prescott", i.features)
assert(i.blas_core:lower() == want:lower(), "re-exec ran " .. i.blas_core .. ", want " .. want)
assert(i.blas_core_origin == "sgdsa" and i.blas_core_detected == "Prescott", i.summary)
assert(os.getenv("OPENBLAS_CORETYPE") == want)
-- the image started with it (OpenBLAS read it when loaded), not set later
local env = assert(io.open("/proc/self/environ")):read("a")
assert(("\0" .. env):find("\0OPENBLAS_CORETYPE=" .. want .. "\0", 1, true), "no re-exec")
print("reexec ok")'
        grep -q "^reexec ok$" "$TMP/out" || fail "re-exec (GOMP_SPINCOUNT=${spin:-unset})"
        no_warning "the re-exec"
    done
    run clean env SGDSA_TEST_BLAS_CORE=Prescott "$BIN" --version
    grep -q "^BLAS: .*(OPENBLAS_CORETYPE=[A-Za-z]* set by sgdsa: OpenBLAS detected Prescott)" \
        "$TMP/out" || { fail "--version after the re-exec"; cat "$TMP/out"; }
    run clean env SGDSA_TEST_BLAS_CORE=Prescott OPENBLAS_CORETYPE=Haswell "$BIN" -e '
local i = sgdsa.core.cpu_info()
assert(i.blas_core == "Haswell" and i.blas_core_origin == "user", i.summary)
print("user wins")'
    grep -q "^user wins$" "$TMP/out" || fail "the user's OPENBLAS_CORETYPE was not kept"

    # --- (5) the embedded library: no re-exec, one warning --------------------------------------
    if command -v lua5.4 >/dev/null; then
        # the sanitizer build's module needs the ASan runtime first in a stock lua5.4
        if [ "${SGDSA_SANITIZED:-0}" = 1 ]; then
            LD_PRELOAD="$(cc -print-file-name=libasan.so) $(cc -print-file-name=libubsan.so)"
            export LD_PRELOAD
        fi
        code="package.cpath = '$BUILD/lib/?.so;' .. package.cpath
package.path = '$SRC/lua/?.lua;$SRC/lua/?/init.lua;' .. package.path
local sg = require 'sgdsa'
print('advice ' .. tostring(sg.core.cpu_info().blas_core_advice))"
        run clean env SGDSA_TEST_BLAS_CORE=Prescott lua5.4 -e "$code"
        want=$(sed -n 's/^advice //p' "$TMP/out")
        [ -n "$want" ] && [ "$want" != nil ] || fail "no advice for the embedded library"
        [ "$(grep -c "warning: OpenBLAS runs its Prescott kernels.*OPENBLAS_CORETYPE=$want" "$TMP/err")" = 1 ] ||
            { fail "the embedded library did not warn once"; cat "$TMP/err"; }
        run clean env OPENBLAS_CORETYPE=Prescott lua5.4 -e "$code"
        no_warning "the embedded library with OPENBLAS_CORETYPE=Prescott"
    else
        echo "note: lua5.4 not found: (5) skipped"
    fi
fi

finish test_blas_core
