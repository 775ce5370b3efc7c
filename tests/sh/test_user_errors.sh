#!/bin/sh
# test_user_errors.sh - what `sgdsa run` prints for an error. An ordinary
# mistake (a bad override, an unknown option, a missing file, a script that
# does not load, an error() of the script) is its message: no stack
# traceback, no path inside sgdsa's Lua library, the script's file:line when
# the error is in the script. A bug (an error the Lua VM raised) keeps its
# traceback, and `--traceback` / SGDSA_TRACEBACK=1 show every traceback.
# Env: SGDSA_BIN (the executable), SGDSA_TEST_TMP (scratch), SGDSA_SRC (source tree).
. "$(dirname "$0")/lib.sh"
BIN=${SGDSA_BIN:?SGDSA_BIN must name the sgdsa executable}
scratch user-errors

# mistake STATUS PATTERN CMD...: exit STATUS, output matching the grep -E
# PATTERN, and neither a traceback nor a path into sgdsa's Lua library
mistake() {
    want=$1; pat=$2; shift 2
    exits "$want" "$@" || return
    has "$pat" "$@"
    if grep -q 'stack traceback' "$TMP/out"; then fail "$* -> a traceback for a mistake"; shown; fi
    if grep -Eq "$SRC/lua/|lua/sgdsa/[a-z_/]+\.lua:[0-9]|models/[a-z0-9_]+\.lua:[0-9]" "$TMP/out"; then
        fail "$* -> a library path in the message"; shown
    fi
}
# bug STATUS PATTERN CMD...: exit STATUS, PATTERN, and a traceback
bug() {
    want=$1; pat=$2; shift 2
    exits "$want" "$@" || return
    has "$pat" "$@"
    grep -q 'stack traceback:' "$TMP/out" || { fail "$* -> no traceback"; shown; }
}

# an experiment that fails before it needs any data
cat >"$TMP/exp.lua" <<EOF
return {
  model = {"mlp", channels = 1, size = 8, classes = 10, hidden = {4}},
  data = {"hdf5", file = "$TMP/no-such-data.h5"},
  epochs = 1, out = "$TMP/runs", progress = "off",
}
EOF

# --- mistakes ----------------------------------------------------------------------
mistake 1 'unknown override "bogus" \(allowed: .*\)$' "$BIN" run "$TMP/exp.lua" bogus=1
mistake 1 "unknown override \"seeds\" .*did you mean 'seed'\?" "$BIN" run "$TMP/exp.lua" seeds=1
mistake 1 "sgdsa.data.hdf5: unknown option 'bach' .*did you mean 'batch'\?" "$BIN" run "$TMP/exp.lua" data.bach=3
mistake 1 "models.mlp: unknown option 'clases' .*did you mean 'classes'\?" "$BIN" run "$TMP/exp.lua" model.clases=5
mistake 1 "optim.sgdsa: unknown option 'T00' .*did you mean 'T0'\?" "$BIN" run "$TMP/exp.lua" optim.T00=1
mistake 1 "unknown model \"lenett\" .*did you mean 'lenet'\?" "$BIN" run "$TMP/exp.lua" model=lenett
mistake 1 'seed must be a non-negative integer, got -1' "$BIN" run "$TMP/exp.lua" seed=-1
mistake 1 "cannot open $TMP/no-such-data.h5" "$BIN" run "$TMP/exp.lua"

# a missing file read by the script: the script's line, the library's message
printf 'local x = 1\nlocal t = sgdsa.h5.load("%s/missing.h5")\n' "$TMP" >"$TMP/load.lua"
mistake 1 "load\.lua:2: .*cannot open '$TMP/missing.h5'" "$BIN" run "$TMP/load.lua"
# a library check blames the script's line that called it
printf '\n\nlocal m = require("models.lenet"){clases = 5}\n' >"$TMP/ctor.lua"
mistake 1 "ctor\.lua:3: sgdsa.models.lenet: unknown option 'clases'" "$BIN" run "$TMP/ctor.lua"
# a script that does not load, and the script's own error()
printf 'local x = = 1\n' >"$TMP/syntax.lua"
mistake 1 'syntax\.lua:1: unexpected symbol' "$BIN" run "$TMP/syntax.lua"
printf 'local n = 3\nif n > 2 then error("too many: " .. n) end\n' >"$TMP/raise.lua"
mistake 1 'raise\.lua:2: too many: 3$' "$BIN" run "$TMP/raise.lua"
mistake 1 'tensor' "$BIN" -e 'sgdsa.zeros(2):dot({})'

# --- bugs, and the traceback on request ---------------------------------------------
printf 'local function f(t)\n  return t.field.x\nend\nf({})\n' >"$TMP/bug.lua"
bug 1 "bug\.lua:2: attempt to index a nil value" "$BIN" run "$TMP/bug.lua"
bug 1 'unknown override "bogus"' "$BIN" run --traceback "$TMP/exp.lua" bogus=1
bug 1 'unknown override "bogus"' env SGDSA_TRACEBACK=1 "$BIN" run "$TMP/exp.lua" bogus=1
bug 1 "sgdsa.data.hdf5: unknown option 'bach'" "$BIN" run --traceback "$TMP/exp.lua" data.bach=3
bug 1 'raise\.lua:2: too many: 3' env SGDSA_TRACEBACK=1 "$BIN" run "$TMP/raise.lua"

finish test_user_errors
