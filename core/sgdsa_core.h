/*
 * sgdsa_core.h - the API of libsgdsa_core (the core and its backends, no
 * Lua): every name the library exports is declared in one of these headers,
 * and nothing else is exported (core/api.h). What the Lua binding
 * (libsgdsa, lua/) and the C tests build on.
 *
 *   error.h     errors: sg_seterr / sg_geterr, checked allocation
 *   tensor.h    storage, tensors, views and tensor math (both devices)
 *   rng.h       the counter-based generators
 *   device.h    memory, settings, streams and input copies of a device
 *   ops.h       the layer ops (conv2d, batchnorm, pooling, linear, losses, ...)
 *   data.h      datasets and the double-buffered loader
 *   fs.h        durable file replacement (fsync, rename, fsync the folder)
 *   h5.h        HDF5 files: checkpoints, logs, datasets
 *   comm.h      the ranks of a data-parallel run (MPI)
 *   cpu_info.h  what the CPU offers and which kernels use it
 */
#ifndef SG_SGDSA_CORE_H
#define SG_SGDSA_CORE_H

#include "comm.h"
#include "cpu_info.h"
#include "data.h"
#include "device.h"
#include "error.h"
#include "fs.h"
#include "h5.h"
#include "ops.h"
#include "rng.h"
#include "tensor.h"

#endif
