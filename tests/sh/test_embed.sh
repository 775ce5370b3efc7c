#!/bin/sh
# test_embed.sh - the installed runtime works on its own: `cmake --install` to a
# temporary prefix, then (1) a C host program (tests/embed/embed.c) compiled
# with `pkg-config --cflags --libs sgdsa` from the installed .pc runs code and a
# script through include/sgdsa.h, without LD_LIBRARY_PATH (the .pc's rpath);
# (2) a stock lua5.4 does `require "sgdsa"` from the installed tree, its paths
# set by hand, by `eval "$(sgdsa env)"` and by the .pc's lua_path/lua_cpath,
# and builds a network by name (sgdsa.models); (3) the installed `sgdsa` finds
# its Lua library under <prefix>/share/sgdsa, not in the source tree; (4) the
# library, the module and the executable carry relative rpaths ($ORIGIN), and
# the whole prefix moved elsewhere still runs.
# Env: SGDSA_BUILD (build dir), SGDSA_SRC (source tree), SGDSA_TEST_TMP (scratch).
set -u
BUILD=${SGDSA_BUILD:?SGDSA_BUILD must name the build directory}
SRC=${SGDSA_SRC:-.}
TMP=${SGDSA_TEST_TMP:-/tmp}/embed.$$
P=$TMP/prefix
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
unset SGDSA_ROOT

die() { echo "FAIL: $*"; exit 1; }
for tool in cmake pkg-config cc lua5.4; do
    command -v $tool >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done

cmake --install "$BUILD" --prefix "$P" >"$TMP/install.log" 2>&1 ||
    { cat "$TMP/install.log"; die "cmake --install $BUILD --prefix $P failed"; }

PC=$(find "$P" -name sgdsa.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$PC" ] || die "no pkgconfig/sgdsa.pc installed under $P"
LIBDIR=$(dirname "$(dirname "$PC")")
for f in "$LIBDIR/libsgdsa.so" "$P/include/sgdsa.h" "$P/bin/sgdsa" \
         "$P/share/sgdsa/lua/sgdsa/init.lua" "$P/share/lua/5.4/sgdsa/init.lua" \
         "$LIBDIR/lua/5.4/sgdsa/core.so"; do
    [ -e "$f" ] || die "not installed: $f"
done
[ -e "$P/include/tensor.h" ] && die "internal header tensor.h was installed"

# --- (1) a host program through pkg-config ------------------------------------------
export PKG_CONFIG_PATH="$(dirname "$PC")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
PKG="pkg-config"
PCPREFIX=$($PKG --variable=prefix sgdsa)
[ "$PCPREFIX" = "$P" ] || die "the installed sgdsa.pc says prefix=$PCPREFIX, not $P: it must be \
generated at install time (CMakeLists.txt: install(CODE ... configure_file(tools/sgdsa.pc.in ...)))"
VERSION=$($PKG --modversion sgdsa) || die "pkg-config cannot read $PC"
FLAGS=$($PKG --cflags --libs sgdsa) || die "pkg-config --cflags --libs sgdsa failed"
echo "pkg-config sgdsa $VERSION: $FLAGS"
case "$FLAGS" in *"-I$P/include"*"-L$LIBDIR"*"-lsgdsa"*) ;; *) die "unexpected flags: $FLAGS" ;; esac
# In the sanitizer build (SGDSA_SANITIZED=1) libsgdsa needs the ASan runtime
# first: the host program is built with it, and a stock lua5.4 preloads it.
SANFLAGS=""
if [ "${SGDSA_SANITIZED:-0}" = 1 ]; then
    SANFLAGS="-fsanitize=address,undefined"
    LD_PRELOAD="$(cc -print-file-name=libasan.so) $(cc -print-file-name=libubsan.so)"
fi
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror $SANFLAGS -o "$TMP/embed" "$SRC/tests/embed/embed.c" $FLAGS ||
    die "compiling embed.c against the installed sgdsa failed"
env -u LD_LIBRARY_PATH ldd "$TMP/embed" | grep -q "$LIBDIR/libsgdsa.so" ||
    die "embed does not find the installed libsgdsa by itself (sgdsa.pc's Libs: -Wl,-rpath)"
env -u LD_LIBRARY_PATH "$TMP/embed" "$SRC/tests/embed/script.lua" >"$TMP/embed.out" 2>&1
st=$?
cat "$TMP/embed.out"
[ $st -eq 0 ] && grep -q '^EMBED OK$' "$TMP/embed.out" || die "embed exited $st"
export LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# --- (2) require "sgdsa" from a stock lua5.4 ----------------------------------------------
[ -n "${LD_PRELOAD:-}" ] && export LD_PRELOAD
lua5.4 -e "
package.cpath = '$LIBDIR/lua/5.4/?.so;' .. package.cpath
package.path = '$P/share/lua/5.4/?.lua;$P/share/lua/5.4/?/init.lua;' .. package.path
local sg = require 'sgdsa'
local t = sg.ones(2, 3) * 3
assert(t:sum() == 18, 'sum ' .. tostring(t:sum()))
assert(package.searchpath('sgdsa', package.path):find('$P', 1, true), 'sgdsa.lua not from the prefix')
assert(sg.core.root() == '$P/share/sgdsa', 'root ' .. sg.core.root())
print('LUA OK', sg.version)
" >"$TMP/lua.out" 2>&1
st=$?
cat "$TMP/lua.out"
[ $st -eq 0 ] && grep -q '^LUA OK' "$TMP/lua.out" || die "stock lua5.4 could not use the installed module"

# ... with the paths from `sgdsa env` and from sgdsa.pc, and a network by name
MODELS='local sg = require "sgdsa"
assert(sg.models.lenet{classes = 10}:num_params() == 62158, "lenet")
assert(sg.nn.model{"mlp", size = 8, hidden = {4}}:num_params() == 64 * 4 + 4 + 4 * 10 + 10, "mlp")
print("MODELS OK")'
ENVOUT=$("$P/bin/sgdsa" env) || die "sgdsa env failed"
echo "$ENVOUT"
(unset LUA_PATH LUA_CPATH; eval "$ENVOUT"; cd "$TMP" && lua5.4 -e "$MODELS") | grep -q '^MODELS OK$' ||
    die "stock lua5.4 after eval \"\$(sgdsa env)\" cannot build sgdsa.models.lenet"
LP=$($PKG --variable=lua_path sgdsa) && LCP=$($PKG --variable=lua_cpath sgdsa) ||
    die "sgdsa.pc has no lua_path/lua_cpath"
(cd "$TMP" && LUA_PATH="$LP" LUA_CPATH="$LCP" lua5.4 -e "$MODELS") | grep -q '^MODELS OK$' ||
    die "stock lua5.4 with sgdsa.pc's lua_path ($LP) and lua_cpath ($LCP) cannot use sgdsa"

# --- (3) the installed executable uses the installed library ---------------------------------
OUT=$("$P/bin/sgdsa" -e 'print(sgdsa.core.root()); print(package.searchpath("sgdsa", package.path))') ||
    die "installed sgdsa failed"
echo "$OUT"
[ "$(echo "$OUT" | head -n 1)" = "$P/share/sgdsa" ] || die "installed sgdsa uses root $OUT"
echo "$OUT" | tail -n 1 | grep -q "^$P/share/sgdsa/lua/sgdsa/init.lua$" ||
    die "installed sgdsa loads the library from elsewhere"
[ "$("$P/bin/sgdsa" --version | head -n 1 | cut -d' ' -f2)" = "$VERSION" ] || die "--version differs from the .pc"
# ... and finds libsgdsa by itself (RPATH $ORIGIN/../lib), as does core.so from a stock lua5.4.
env -u LD_LIBRARY_PATH "$P/bin/sgdsa" -e 'assert(sgdsa.ones(2):sum() == 2)' ||
    die "installed sgdsa does not run without LD_LIBRARY_PATH (needs INSTALL_RPATH)"
env -u LD_LIBRARY_PATH lua5.4 -e "package.cpath = '$LIBDIR/lua/5.4/?.so;' .. package.cpath
package.path = '$P/share/lua/5.4/?.lua;$P/share/lua/5.4/?/init.lua;' .. package.path
assert(require('sgdsa').ones(2):sum() == 2)" ||
    die "installed core.so does not load without LD_LIBRARY_PATH (needs INSTALL_RPATH)"

# --- (4) relative rpaths: the prefix moved elsewhere ----------------------------------------
if command -v readelf >/dev/null; then
    for f in "$LIBDIR/libsgdsa.so" "$LIBDIR/lua/5.4/sgdsa/core.so" "$P/bin/sgdsa"; do
        readelf -d "$f" | grep -E 'R(UN)?PATH' | grep -q '\$ORIGIN' || die "$f has no \$ORIGIN rpath"
    done
fi
mv "$P" "$TMP/moved"
M=$TMP/moved
env -u LD_LIBRARY_PATH "$M/bin/sgdsa" -e 'assert(sgdsa.core.root():find("/moved/", 1, true)); assert(sgdsa.models.lenet{}:num_params() == 62158)' ||
    die "the installed sgdsa does not run from a moved prefix"
ENVOUT=$(env -u LD_LIBRARY_PATH "$M/bin/sgdsa" env) || die "sgdsa env in the moved prefix failed"
case "$ENVOUT" in *"$M/"*) ;; *) die "sgdsa env in the moved prefix names other paths: $ENVOUT" ;; esac
(unset LUA_PATH LUA_CPATH LD_LIBRARY_PATH; eval "$ENVOUT"; cd "$TMP" && lua5.4 -e "$MODELS") | grep -q '^MODELS OK$' ||
    die "stock lua5.4 cannot use the moved prefix"
echo "test_embed: all passed"
