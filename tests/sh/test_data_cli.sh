#!/bin/sh
# test_data_cli.sh - data errors at the command line: a missing dataset gives a
# clear message (path tried, how to get the data) and a non-zero exit, never a
# crash; SGDSA_DATA/<name> is searched before the defaults.
set -u
BIN=${SGDSA_BIN:?SGDSA_BIN not set}
TMP=${SGDSA_TEST_TMP:-/tmp}/data-cli
rm -rf "$TMP" && mkdir -p "$TMP/store/mnist" "$TMP/none"
fail=0

out=$(SGDSA_DATA="$TMP/none" "$BIN" -e 'local sg = require "sgdsa"; sg.data.cifar10{}' 2>&1)
rc=$?
if [ $rc -eq 0 ] || [ $rc -gt 128 ]; then echo "FAIL: missing CIFAR-10 exit $rc"; fail=1; fi
case "$out" in *"$TMP/none/cifar-10-batches-bin/data_batch_1.bin"*"cifar-10-binary.tar.gz"*) ;;
  *) echo "FAIL: missing CIFAR-10 message: $out"; fail=1 ;; esac

# a tiny MNIST under $SGDSA_DATA/mnist, written with string.pack
"$BIN" -e "
local function w(p, s) local f = assert(io.open(p, 'wb')); f:write(s); f:close() end
for _, pre in ipairs{'train', 't10k'} do
  w('$TMP/store/mnist/' .. pre .. '-images-idx3-ubyte', string.pack('>I4I4I4I4', 0x803, 3, 2, 2) .. string.rep('\7', 12))
  w('$TMP/store/mnist/' .. pre .. '-labels-idx1-ubyte', string.pack('>I4I4', 0x801, 3) .. '\0\1\2')
end" || { echo "FAIL: writing the tiny MNIST"; fail=1; }
out=$(SGDSA_DATA="$TMP/store" "$BIN" -e 'local sg = require "sgdsa"; local d = sg.data.mnist{normalize = false}; print("n=" .. d.train:size())' 2>&1)
case "$out" in *"n=3"*) ;; *) echo "FAIL: SGDSA_DATA/mnist not used: $out"; fail=1 ;; esac

# a truncated file: message and exit status, no crash
printf 'short' >> "$TMP/store/mnist/train-labels-idx1-ubyte"
out=$(SGDSA_DATA="$TMP/store" "$BIN" -e 'local sg = require "sgdsa"; sg.data.mnist{}' 2>&1)
rc=$?
if [ $rc -eq 0 ] || [ $rc -gt 128 ]; then echo "FAIL: corrupt MNIST exit $rc"; fail=1; fi
case "$out" in *"train-labels-idx1-ubyte has data beyond"*) ;; *) echo "FAIL: corrupt message: $out"; fail=1 ;; esac

[ $fail -eq 0 ] && echo "test_data_cli: ok"
exit $fail
