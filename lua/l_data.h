/*
 * l_data.h - what other binding files (the CUDA backend) need from l_data.c:
 * the loader behind a Lua Loader userdata, and the allocator for batch
 * buffers of loaders created from Lua (cudaHostAlloc-based for pinned
 * memory). Set the allocator once, before loaders are made; NULLs restore
 * the default (aligned malloc).
 */
#ifndef SGL_DATA_H
#define SGL_DATA_H

#include <lua.h>

#include "data.h"

sg_loader *sgl_checkloader(lua_State *L, int idx);
/* raw: loaders of uint8 datasets made from now on hand out raw batches
 * (core/data.h opts.raw: transformed on the GPU by loader:next_into) */
void sgl_data_set_host_allocator(sg_host_alloc_fn alloc, sg_host_free_fn free_fn, void *ud,
                                 int raw);

#endif
