#!/bin/sh
# test_index_math.sh - the CUDA kernels' index arithmetic has no 64-bit
# division outside their int64 fallbacks (tools/check-index-math: the SASS
# of the built objects when cuobjdump is there, else the PTX nvcc makes of
# kernels/cuda/*.cu). Skips (77) where neither tool is installed.
SRC=${SGDSA_SRC:-.}
exec "$SRC/tools/check-index-math" "${SGDSA_BUILD:-$SRC/build}"
