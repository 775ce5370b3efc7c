#!/bin/sh
# test_cli.sh - the `sgdsa` command line: exit codes (0 ok, 1 error, 2 usage),
# --help of every subcommand, --version, typed key=value overrides reaching the
# script as `...`, sgdsa.args and `arg`, experiment tables handed to
# sgdsa.trainer, error messages with file:line (a traceback for an error the
# Lua VM raised; tests/sh/test_user_errors.sh has the rest), and SIGINT:
# the first one sets sgdsa.core.interrupted(), the second aborts the script.
# Env: SGDSA_BIN (the executable), SGDSA_TEST_TMP (scratch), SGDSA_SRC (source tree).
. "$(dirname "$0")/lib.sh"
BIN=${SGDSA_BIN:?SGDSA_BIN must name the sgdsa executable}
scratch cli

# expect STATUS PATTERN CMD... : run CMD, check the exit status and that
# stdout+stderr matches the grep -E PATTERN (empty pattern: no check).
expect() {
    want=$1; pat=$2; shift 2
    exits "$want" "$@" || return
    [ -z "$pat" ] || has "$pat" "$@"
}

# --- version and help -------------------------------------------------------
expect 0 '^sgdsa [0-9]+\.[0-9]+\.[0-9]+ \(Lua 5\.4' "$BIN" --version
expect 0 'usage: sgdsa' "$BIN" --help
expect 0 'usage: sgdsa' "$BIN" help
expect 0 'usage: sgdsa run \[--traceback\] SCRIPT' "$BIN" run --help
expect 0 'usage: sgdsa run \[--traceback\] SCRIPT' "$BIN" help run
expect 0 'usage: sgdsa repl' "$BIN" repl --help
for cmd in inspect sweep table plot bench; do
    if [ -f "$SRC/lua/sgdsa/$cmd.lua" ] || [ -f "$SRC/lua/sgdsa/$cmd/init.lua" ]; then
        expect 0 '' "$BIN" "$cmd" --help
    else
        expect 1 "sgdsa $cmd: this command is not available: the Lua module sgdsa.$cmd was not found" \
            "$BIN" "$cmd" --help
    fi
done

# --- usage errors: 2 -------------------------------------------------------------
expect 2 'unknown command frobnicate' "$BIN" frobnicate
expect 2 'unknown option --frobnicate' "$BIN" --frobnicate
expect 2 'run: missing SCRIPT' "$BIN" run
expect 2 'run: unknown option --bogus' "$BIN" run --bogus x.lua
expect 2 'cannot open script .*nonexistent\.lua' "$BIN" run "$TMP/nonexistent.lua"
expect 2 'repl: unexpected argument' "$BIN" repl extra
expect 2 'help: unknown command nope' "$BIN" help nope
expect 2 '-e needs an argument' "$BIN" -e

# --- overrides: typed, as `...`, sgdsa.args and arg ------------------------------
cat >"$TMP/args.lua" <<'EOF'
local a = ...
assert(a == sgdsa.args, "... and sgdsa.args differ")
assert(math.type(a.lr) == "float" and a.lr == 0.5, "lr: " .. tostring(a.lr))
assert(math.type(a.epochs) == "integer" and a.epochs == 3, "epochs")
assert(a.nesterov == true and a.verbose == false, "booleans")
assert(a.name == "resnet34" and a["optim.T0"] == 2, "strings and dotted keys")
assert(a.expr == "x=y", "value with =")
assert(a[1] == "pos" and a[2] == 7 and a[3] == nil, "positionals")
assert(arg[0]:match("args%.lua$") and arg[1] == "lr=0.5" and #arg == 9, "arg table")
print("ARGS OK")
EOF
expect 0 '^ARGS OK$' "$BIN" run "$TMP/args.lua" lr=0.5 epochs=3 nesterov=true verbose=false \
    name=resnet34 optim.T0=2 expr=x=y pos 7
# a .lua file as the first argument means `run`
expect 0 '^ARGS OK$' "$BIN" "$TMP/args.lua" lr=0.5 epochs=3 nesterov=true verbose=false \
    name=resnet34 optim.T0=2 expr=x=y pos 7
# the same assertion failing is an error: exit 1
expect 1 'args\.lua:3: lr: 1' "$BIN" run "$TMP/args.lua" lr=1

# --- experiments go to sgdsa.trainer.run(experiment, overrides) ------------------
cat >"$TMP/exp.lua" <<'EOF'
package.preload["sgdsa.trainer"] = function()
  return { run = function(exp, ov)
    print("TRAIN " .. exp.model .. " seed=" .. tostring(ov.seed))
    return exp.status
  end }
end
return { model = "mlp", status = (...).status }
EOF
expect 0 '^TRAIN mlp seed=4$' "$BIN" run "$TMP/exp.lua" seed=4 status=0
expect 7 '^TRAIN mlp seed=nil$' "$BIN" run "$TMP/exp.lua" status=7

# --- errors: exit 1 with file:line; a traceback for an error the VM raised ---------
cat >"$TMP/err.lua" <<'EOF'
local function inner()
  local t = nil
  return t.field
end
inner()
EOF
expect 1 "err\.lua:3: attempt to index a nil value" "$BIN" run "$TMP/err.lua"
expect 1 'stack traceback:' "$BIN" run "$TMP/err.lua"
expect 1 "err\.lua:5: in main chunk" "$BIN" run "$TMP/err.lua"
printf 'local x = = 1\n' >"$TMP/syntax.lua"
expect 1 "syntax\.lua:1: unexpected symbol" "$BIN" run "$TMP/syntax.lua"
printf 'os.exit(3)\n' >"$TMP/exit3.lua"
expect 3 '' "$BIN" run "$TMP/exit3.lua"
expect 0 '^6$' "$BIN" -e 'print(2 * 3)'
expect 0 '^a$' "$BIN" -e 'x = "a"' -e 'print(x)'
expect 1 '\(command line\):1: boom' "$BIN" -e 'error("boom")'
expect 1 'stack traceback' env SGDSA_TRACEBACK=1 "$BIN" -e 'error("boom")'

# a runtime that cannot find its Lua library says so (SGDSA_ROOT points elsewhere)
mkdir -p "$TMP/emptyroot"
expect 1 "loading the sgdsa library failed: .*module 'sgdsa' not found" \
    env SGDSA_ROOT="$TMP/emptyroot" LUA_PATH= "$BIN" -e 'print(1)'

# --- SIGINT during run -----------------------------------------------------------------
# A script that polls sgdsa.core.interrupted() stops cleanly after one signal.
cat >"$TMP/poll.lua" <<EOF
local core = sgdsa.core
local f = assert(io.open("$TMP/ready1", "w")); f:close()
local t0 = core.time()
while not core.interrupted() do
  assert(core.time() - t0 < 20, "no interrupt arrived")
  core.sleep(0.01)
end
print("STOPPED CLEANLY", select(2, core.interrupted()))
EOF
# signalled SCRIPT READY OUT SIG...: `sgdsa run SCRIPT` in the background,
# its output in OUT; once it has written the file READY, each SIG in turn,
# 0.2 s apart; st is its exit status.
signalled() {
    "$BIN" run "$1" >"$3" 2>&1 &
    pid=$!
    n=0; while [ ! -e "$2" ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n + 1)); done
    shift 3
    kill -"$1" $pid
    shift
    for sig in "$@"; do sleep 0.2; kill -"$sig" $pid; done
    wait $pid
    st=$?
}
signalled "$TMP/poll.lua" "$TMP/ready1" "$TMP/out1" INT
[ $st -eq 0 ] && grep -q 'STOPPED CLEANLY	1' "$TMP/out1" || { fail "soft interrupt: exit $st"; cat "$TMP/out1"; }

# A script that ignores the flag is aborted by the second signal (status 130).
cat >"$TMP/spin.lua" <<EOF
local f = assert(io.open("$TMP/ready2", "w")); f:close()
local t0, n = sgdsa.core.time(), 0
while sgdsa.core.time() - t0 < 20 do n = n + 1 end
print("NOT INTERRUPTED")
EOF
signalled "$TMP/spin.lua" "$TMP/ready2" "$TMP/out2" INT INT
[ $st -eq 130 ] && grep -q 'interrupted' "$TMP/out2" && ! grep -q 'NOT INTERRUPTED' "$TMP/out2" ||
    { fail "hard interrupt: exit $st"; cat "$TMP/out2"; }

# SIGTERM also asks for a clean stop.
sed "s/ready1/ready3/" "$TMP/poll.lua" >"$TMP/poll3.lua"
signalled "$TMP/poll3.lua" "$TMP/ready3" "$TMP/out3" TERM
[ $st -eq 0 ] && grep -q 'STOPPED CLEANLY' "$TMP/out3" || { fail "SIGTERM: exit $st"; cat "$TMP/out3"; }

# A CPU run never loads the CUDA backend's module, not even at exit (its
# libraries map ~200 MB).
if [ -f "$(dirname "$BIN")/libsgdsa_cuda.so" ]; then
    echo 'print("cpu only")' >"$TMP/cpu.lua"
    LD_DEBUG=files "$BIN" run "$TMP/cpu.lua" >"$TMP/out" 2>&1
    grep -q 'cpu only' "$TMP/out" || { fail "LD_DEBUG=files sgdsa run cpu.lua: no output"; shown; }
    ! grep -q 'libsgdsa_cuda' "$TMP/out" ||
        { fail "a CPU run loaded libsgdsa_cuda.so"; grep 'libsgdsa_cuda' "$TMP/out" | shown -; }
else
    echo "(no libsgdsa_cuda.so beside $BIN: the module check is skipped)"
fi

finish test_cli
