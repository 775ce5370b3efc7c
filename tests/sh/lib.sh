# lib.sh - what the shell tests share; a test starts with
#   . "$(dirname "$0")/lib.sh"
#   scratch NAME
# and ends with `finish NAME`. It gives
#   SRC             the source tree ($SGDSA_SRC, else .)
#   scratch NAME    $TMP, a scratch folder $SGDSA_TEST_TMP/NAME.PID removed on exit
#   fail MESSAGE    reports a failure and counts it in $fails
#   shown [FILE...] the files (default $TMP/out), indented: the output of a failure
#   exits STATUS CMD...
#                   runs CMD with stdout and stderr in $TMP/out; a failure,
#                   with the output, unless it exits STATUS (then returns 1)
#   has PATTERN CMD...
#                   a failure, with $TMP/out, unless it matches the grep -E
#                   PATTERN (CMD names the command in the message)
#   finish NAME     the summary line; exit 1 after any failure, else 0
set -u
SRC=${SGDSA_SRC:-.}
fails=0

scratch() {
    TMP=${SGDSA_TEST_TMP:-/tmp}/$1.$$
    mkdir -p "$TMP"
    trap 'rm -rf "$TMP"' EXIT
}

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

shown() {
    [ $# -gt 0 ] || set -- "$TMP/out"
    sed 's/^/    /' "$@"
}

exits() {
    want=$1; shift
    "$@" >"$TMP/out" 2>&1
    got=$?
    [ "$got" -eq "$want" ] || { fail "$* -> exit $got, want $want"; shown; return 1; }
}

has() {
    pat=$1; shift
    grep -Eq -- "$pat" "$TMP/out" || { fail "$* -> output lacks /$pat/"; shown; }
}

finish() {
    if [ $fails -ne 0 ]; then
        echo "$1: $fails failure(s)"
        exit 1
    fi
    echo "$1: all passed"
}
