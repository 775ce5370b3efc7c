/*
 * conv_dnnl.c - 2-d convolution through oneDNN's C API (CPU engine), for the
 * passes measured faster here (conv_choice.c; g->dnnl, SG_CONV_PASS_* bits):
 * the direct algorithm (fp32 as PyTorch's), or Winograd F(4x4, 3x3) for the
 * passes whose SG_CONV_WINO_SHIFT bit is set (3x3 stride 1 on CPUs oneDNN
 * has Winograd kernels for: AVX-512).
 *
 * Layouts: the primitives choose their memory formats (`any`: nChw8c
 * activations and OIhw8i8o-style weights with AVX2) and the caller's plain
 * NCHW / OIHW arrays are reordered in and out around each call, as PyTorch's
 * ideep does for plain tensors (plain formats for the primitives measured
 * slower here on every ResNet/VGG shape but the 1x1 ones, up to 3x for the
 * weight gradient).
 *
 * Cache: one entry per geometry (every field of sg_conv2d_geom that
 * matters, the thread count and the pass bits) holds the primitives of the
 * passes that run here, the forward descriptor they are made from, and
 * their reorders. Creating them costs milliseconds (JIT), so an entry is
 * made at the first sg_cpu_conv2d_workspace_size() or call and kept: at
 * most CACHE_MAX entries, the least recently used evicted, all freed by
 * sg_cpu_conv2d_cache_clear() and at exit (destructor below). A failed
 * creation is kept too: every call with that geometry returns its message.
 *
 * Chunks: a call runs over chunks of images whose activations (input and
 * output) take at most CHUNK_BYTES, each chunk one execution of a primitive
 * made for the chunk's batch size (a shorter last chunk has its own entry).
 * This bounds the reordered copies, which live in the workspace, and keeps
 * them in the L3 cache between the reorder and the convolution.
 *
 * Memory: nothing is allocated per call. The primitives and reorders run
 * with user scratchpads; reordered copies and scratchpads live in the
 * caller's workspace from its first 64-byte boundary on
 * (sg_cpu_conv2d_workspace_size() covers the largest pass and that slack). The weight gradient is computed into the workspace and added to dw
 * by a reorder with a sum post-op (the accumulate contract); conv.c adds
 * the bias gradient (sums in double, as for im2col).
 *
 * Determinism: the results repeat bit for bit for a given thread count
 * (tests/c/test_nn_ops.c: repeats and a rebuilt cache, every pass, 1 and 2
 * threads; tests/lua/test_conv_repro.lua: fresh processes).
 *
 * Signals: a call runs with the asynchronous signals blocked (dnnl_guard.h).
 *
 * Threads: sgdsa's callers are single-threaded (one Lua state drives the
 * OpenMP pool); still, a mutex guards the cache and is held while a call
 * runs (the entry's memory objects carry the call's pointers), so
 * concurrent callers are safe, one at a time. oneDNN runs its parallel
 * regions on the same libgomp pool as OpenBLAS and our loops.
 */
#ifdef SG_HAVE_DNNL
#include <dnnl.h>
#include <dnnl_debug.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_dnnl.h"
#include "dnnl_guard.h"
#include "error.h"

#define CACHE_MAX 64
#define CHUNK_BYTES ((int64_t)8 << 20)
#define ALIGN_BYTES 64
#define MAXARGS 4

enum { FWD, BWD_DATA, BWD_WEIGHTS, NPASS };
static const char *const pass_name[NPASS] = { "forward", "backward-data", "backward-weights" };

/* One argument of a pass's primitive. `user` is the caller's plain array;
 * when the primitive wants another layout (or the result must be ADDED to
 * the caller's array), `inner` lives in the workspace at `off` and `reorder`
 * converts user -> inner (inputs) or inner -> user (outputs, with a sum
 * post-op when `accum`). */
typedef struct {
    int arg;                   /* DNNL_ARG_* */
    int out, accum;
    dnnl_memory_t user, inner;
    dnnl_primitive_t reorder;  /* NULL: the primitive reads/writes `user` */
    dnnl_memory_t rscratch;    /* the reorder's scratchpad (NULL: none) */
    size_t off;
} carg;

typedef struct {
    dnnl_primitive_t prim;
    carg a[MAXARGS];
    int n;
    dnnl_memory_t scratch;     /* the primitive's scratchpad (NULL: none) */
    size_t scratch_off;        /* shared by the primitive and its reorders (run in turn) */
    size_t zero_off;           /* forward: K zeros standing in for a NULL bias */
    size_t bytes;              /* workspace this pass needs */
    char impl[40];             /* oneDNN's implementation name */
} pass;

#define KEYLEN 12
typedef struct {
    int64_t key[KEYLEN];
    pass p[NPASS];
    size_t bytes;              /* max over the passes */
    uint64_t tick;             /* last use (LRU) */
    int failed;                /* creation failed: err is returned by every call */
    char err[600];
} entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t engine;
static dnnl_stream_t stream;
static entry *cache[CACHE_MAX];
static int ncache;
static uint64_t clock_tick;

static size_t align_up(size_t n) { return (n + ALIGN_BYTES - 1) / ALIGN_BYTES * ALIGN_BYTES; }

static void make_key(const sg_conv2d_geom *g, int64_t *key)
{
    const int64_t k[KEYLEN] = { g->n, g->c, g->h, g->w, g->k, g->kh,
                                g->kw, g->sh, g->sw, g->ph, g->pw, g->threads * 64 + g->dnnl };
    memcpy(key, k, sizeof k);
}

static int geom_str(const sg_conv2d_geom *g, char *buf, size_t len)
{
    return snprintf(buf, len,
                    "input %lldx%lldx%lldx%lld, weight %lldx%lldx%lldx%lld, stride %lldx%lld, "
                    "padding %lldx%lld, %d threads",
                    (long long)g->n, (long long)g->c, (long long)g->h, (long long)g->w,
                    (long long)g->k, (long long)g->c, (long long)g->kh, (long long)g->kw,
                    (long long)g->sh, (long long)g->sw, (long long)g->ph, (long long)g->pw,
                    g->threads);
}

/* Check one oneDNN call made while building entry e (pass p). */
#define MK(call)                                                                  \
    do {                                                                          \
        dnnl_status_t st_ = (call);                                               \
        if (st_ != dnnl_success) {                                                \
            set_failed(e, g, p, #call, st_);                                      \
            goto fail;                                                            \
        }                                                                         \
    } while (0)

static void set_failed(entry *e, const sg_conv2d_geom *g, int p, const char *call,
                       dnnl_status_t st)
{
    char gs[256];
    geom_str(g, gs, sizeof gs);
    const char *fn = call;
    size_t fl = strcspn(call, "(");
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)(fl < sizeof name ? fl : sizeof name - 1), fn);
    snprintf(e->err, sizeof e->err,
             "oneDNN %s failed (%s) making the convolution %s primitive for %s (cpu)", name,
             dnnl_status2str(st), pass_name[p], gs);
    e->failed = 1;
}

static void destroy_prim(dnnl_primitive_t p)
{
    if (p)
        dnnl_primitive_destroy(p);
}

static void destroy_mem(dnnl_memory_t m)
{
    if (m)
        dnnl_memory_destroy(m);
}

static void destroy_pass(pass *ps)
{
    for (int i = 0; i < ps->n; i++) {
        carg *a = &ps->a[i];
        destroy_prim(a->reorder);
        destroy_mem(a->user);
        destroy_mem(a->inner);
        destroy_mem(a->rscratch);
    }
    destroy_mem(ps->scratch);
    destroy_prim(ps->prim);
    memset(ps, 0, sizeof *ps);
}

static void destroy_entry(entry *e)
{
    for (int p = 0; p < NPASS; p++)
        destroy_pass(&e->p[p]);
    free(e);
}

static int plain_tag(int ndims) { return ndims == 1 ? dnnl_a : dnnl_abcd; }

/* Add argument `arg` to pass ps: the primitive wants layout `want`; the
 * caller's array has the plain layout of the same dims. *off is the next
 * free byte of the pass's workspace, *rscr the largest reorder scratchpad. */
static dnnl_status_t add_arg(pass *ps, int arg, int out, int accum,
                             const dnnl_memory_desc_t *want, size_t *off, size_t *rscr,
                             const char **failed_call)
{
    carg *a = &ps->a[ps->n++];
    a->arg = arg;
    a->out = out;
    a->accum = accum;
    dnnl_memory_desc_t user_md;
    dnnl_status_t st;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t rpd = NULL;
#define TRY(call)                  \
    do {                           \
        st = (call);               \
        if (st != dnnl_success) {  \
            *failed_call = #call;  \
            goto out;              \
        }                          \
    } while (0)
    TRY(dnnl_memory_desc_init_by_tag(&user_md, want->ndims, want->dims, dnnl_f32,
                                     plain_tag(want->ndims)));
    TRY(dnnl_memory_create(&a->user, &user_md, engine, DNNL_MEMORY_NONE));
    if (!accum && dnnl_memory_desc_equal(want, &user_md))
        return dnnl_success;
    TRY(dnnl_memory_create(&a->inner, want, engine, DNNL_MEMORY_NONE));
    a->off = *off;
    *off += align_up(dnnl_memory_desc_get_size(want));
    TRY(dnnl_primitive_attr_create(&attr));
    TRY(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    if (accum) {
        TRY(dnnl_post_ops_create(&po));
        TRY(dnnl_post_ops_append_sum(po, 1.0f));
        TRY(dnnl_primitive_attr_set_post_ops(attr, po));
    }
    TRY(dnnl_reorder_primitive_desc_create(&rpd, out ? want : &user_md, engine,
                                           out ? &user_md : want, engine, attr));
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(rpd, dnnl_query_scratchpad_md, 0);
    size_t sbytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (sbytes) {
        TRY(dnnl_memory_create(&a->rscratch, smd, engine, DNNL_MEMORY_NONE));
        if (sbytes > *rscr)
            *rscr = sbytes;
    }
    TRY(dnnl_primitive_create(&a->reorder, rpd));
out:
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    if (po)
        dnnl_post_ops_destroy(po);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return st;
#undef TRY
}

/* Build pass p of entry e from its convolution descriptor. */
static int build_pass(entry *e, const sg_conv2d_geom *g, int p, const dnnl_convolution_desc_t *cd,
                      const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd_out,
                      int used)
{
    pass *ps = &e->p[p];
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    const char *call = NULL;
    size_t off = 0, rscr = 0;
    MK(dnnl_primitive_attr_create(&attr));
    MK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    MK(dnnl_primitive_desc_create(&pd, cd, attr, engine, hint));
    if (!used) {  /* only the descriptor, as the backward passes' hint */
        dnnl_primitive_attr_destroy(attr);
        if (pd_out)
            *pd_out = pd;
        else
            dnnl_primitive_desc_destroy(pd);
        return 0;
    }
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl)
        snprintf(ps->impl, sizeof ps->impl, "%s", impl);
#define Q(what, i) dnnl_primitive_desc_query_md(pd, what, i)
#define ARG(arg, out, accum, md)                                               \
    do {                                                                       \
        dnnl_status_t st2_ = add_arg(ps, arg, out, accum, md, &off, &rscr, &call); \
        if (st2_ != dnnl_success) {                                            \
            set_failed(e, g, p, call, st2_);                                   \
            goto fail;                                                         \
        }                                                                      \
    } while (0)
    if (p == FWD) {
        ARG(DNNL_ARG_SRC, 0, 0, Q(dnnl_query_src_md, 0));
        ARG(DNNL_ARG_WEIGHTS, 0, 0, Q(dnnl_query_weights_md, 0));
        ARG(DNNL_ARG_BIAS, 0, 0, Q(dnnl_query_weights_md, 1));
        ARG(DNNL_ARG_DST, 1, 0, Q(dnnl_query_dst_md, 0));
        ps->zero_off = off;
        off += align_up((size_t)g->k * sizeof(float));
    } else if (p == BWD_DATA) {
        ARG(DNNL_ARG_DIFF_DST, 0, 0, Q(dnnl_query_diff_dst_md, 0));
        ARG(DNNL_ARG_WEIGHTS, 0, 0, Q(dnnl_query_weights_md, 0));
        ARG(DNNL_ARG_DIFF_SRC, 1, 0, Q(dnnl_query_diff_src_md, 0));
    } else {
        ARG(DNNL_ARG_SRC, 0, 0, Q(dnnl_query_src_md, 0));
        ARG(DNNL_ARG_DIFF_DST, 0, 0, Q(dnnl_query_diff_dst_md, 0));
        ARG(DNNL_ARG_DIFF_WEIGHTS, 1, 1, Q(dnnl_query_diff_weights_md, 0));
    }
#undef ARG
    const dnnl_memory_desc_t *smd = Q(dnnl_query_scratchpad_md, 0);
#undef Q
    size_t sbytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (sbytes)
        MK(dnnl_memory_create(&ps->scratch, smd, engine, DNNL_MEMORY_NONE));
    ps->scratch_off = off;
    ps->bytes = off + align_up(sbytes > rscr ? sbytes : rscr);
    MK(dnnl_primitive_create(&ps->prim, pd));
    dnnl_primitive_attr_destroy(attr);
    if (pd_out)
        *pd_out = pd;
    else
        dnnl_primitive_desc_destroy(pd);
    return 0;
fail:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return -1;
}

static int pass_alg(const sg_conv2d_geom *g, int p)
{
    return g->dnnl & (1 << (p + SG_CONV_WINO_SHIFT)) ? dnnl_convolution_winograd
                                                      : dnnl_convolution_direct;
}

/* Make the three passes of e for g. -1 with e->err set. */
static int build_entry(entry *e, const sg_conv2d_geom *g)
{
    const dnnl_dims_t sd = { g->n, g->c, g->h, g->w }, wd = { g->k, g->c, g->kh, g->kw };
    const dnnl_dims_t bd = { g->k }, dd = { g->n, g->k, g->oh, g->ow };
    const dnnl_dims_t strides = { g->sh, g->sw }, pad_l = { g->ph, g->pw };
    /* oneDNN wants the right padding that makes the output size exact:
     * (OH-1)*SH + KH - H - PH, smaller than PH when the stride skips the end */
    const dnnl_dims_t pad_r = { (g->oh - 1) * g->sh + g->kh - g->h - g->ph,
                                (g->ow - 1) * g->sw + g->kw - g->w - g->pw };
    dnnl_memory_desc_t src, wts, bias, dst;
    dnnl_convolution_desc_t cd;
    /* the forward primitive descriptor of each algorithm in use: the hint of
     * that algorithm's backward passes (its primitive only when the forward
     * runs on oneDNN) */
    dnnl_primitive_desc_t fwd_pd[2] = { NULL, NULL };
    int p = FWD;
    const int any = dnnl_format_tag_any;
    MK(dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_f32, any));
    MK(dnnl_memory_desc_init_by_tag(&wts, 4, wd, dnnl_f32, any));
    MK(dnnl_memory_desc_init_by_tag(&bias, 1, bd, dnnl_f32, dnnl_a));
    MK(dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, any));
    for (p = 0; p < NPASS; p++) {
        const int alg = pass_alg(g, p), wi = alg == dnnl_convolution_winograd;
        const int run_fwd = p == FWD && (g->dnnl & SG_CONV_PASS_FWD);
        if (p != FWD && !(g->dnnl & (1 << p)))
            continue;
        if (!fwd_pd[wi] || run_fwd) {
            MK(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, alg, &src, &wts,
                                                  &bias, &dst, strides, pad_l, pad_r));
            if (build_pass(e, g, FWD, &cd, NULL, fwd_pd[wi] ? NULL : &fwd_pd[wi], run_fwd))
                goto fail;
        }
        if (p == BWD_DATA) {
            MK(dnnl_convolution_backward_data_desc_init(&cd, alg, &src, &wts, &dst, strides,
                                                        pad_l, pad_r));
            if (build_pass(e, g, BWD_DATA, &cd, fwd_pd[wi], NULL, 1))
                goto fail;
        } else if (p == BWD_WEIGHTS) {
            /* no bias: conv.c sums the bias gradient in double, as for im2col
             * (oneDNN's float sums missed the PyTorch fixtures' 1e-4 on LeNet) */
            MK(dnnl_convolution_backward_weights_desc_init(&cd, alg, &src, &wts, NULL, &dst,
                                                           strides, pad_l, pad_r));
            if (build_pass(e, g, BWD_WEIGHTS, &cd, fwd_pd[wi], NULL, 1))
                goto fail;
        }
    }
    for (int i = 0; i < 2; i++)
        if (fwd_pd[i])
            dnnl_primitive_desc_destroy(fwd_pd[i]);
    e->bytes = 0;
    for (int i = 0; i < NPASS; i++)
        if (e->p[i].bytes > e->bytes)
            e->bytes = e->p[i].bytes;
    return 0;
fail:
    for (int i = 0; i < 2; i++)
        if (fwd_pd[i])
            dnnl_primitive_desc_destroy(fwd_pd[i]);
    for (int i = 0; i < NPASS; i++)
        destroy_pass(&e->p[i]);
    return -1;
}

/* The engine and stream, made once (lock held). */
static int init_engine(const char *op, const sg_conv2d_geom *g)
{
    if (stream)
        return 0;
    dnnl_status_t st = engine ? dnnl_success : dnnl_engine_create(&engine, dnnl_cpu, 0);
    if (st == dnnl_success)
        st = dnnl_stream_create(&stream, engine, dnnl_stream_default_flags);
    if (st != dnnl_success) {
        char gs[256];
        geom_str(g, gs, sizeof gs);
        return sg_seterr("%s: oneDNN CPU engine/stream creation failed (%s) for %s (cpu)", op,
                         dnnl_status2str(st), gs);
    }
    return 0;
}

/* The entry of g, made if needed (lock held). NULL only when out of memory
 * or without an engine (error set); a failed entry is returned with
 * e->failed set. */
static entry *get_entry(const sg_conv2d_geom *g, const char *op)
{
    int64_t key[KEYLEN];
    make_key(g, key);
    for (int i = 0; i < ncache; i++)
        if (!memcmp(cache[i]->key, key, sizeof key)) {
            cache[i]->tick = ++clock_tick;
            return cache[i];
        }
    if (init_engine(op, g))
        return NULL;
    entry *e = sg_calloc(1, sizeof *e, "oneDNN convolution cache entry");
    if (!e)
        return NULL;
    memcpy(e->key, key, sizeof key);
    build_entry(e, g);  /* a failure is kept in the entry */
    if (ncache == CACHE_MAX) {
        int lru = 0;
        for (int i = 1; i < ncache; i++)
            if (cache[i]->tick < cache[lru]->tick)
                lru = i;
        destroy_entry(cache[lru]);
        cache[lru] = cache[--ncache];
    }
    e->tick = ++clock_tick;
    cache[ncache++] = e;
    return e;
}

/* Images per oneDNN call: a chunk's activations (input and output) take at
 * most CHUNK_BYTES, so the reordered copies in the workspace stay small
 * (and in the L3 cache between the reorder and the convolution). */
static int64_t chunk_images(const sg_conv2d_geom *g)
{
    const int64_t budget = CHUNK_BYTES;
    const int64_t per = (g->c * g->h * g->w + g->k * g->oh * g->ow) * (int64_t)sizeof(float);
    int64_t c = budget / per;
    if (c >= g->threads)
        c = c / g->threads * g->threads;
    if (c < 1)
        c = 1;
    return c < g->n ? c : g->n;
}

int64_t sg_dnnl_conv2d_chunk(const sg_conv2d_geom *g) { return chunk_images(g); }

/* The geometry of images [n0, n0 + chunk) */
static sg_conv2d_geom sub_geom(const sg_conv2d_geom *g, int64_t n0, int64_t chunk)
{
    sg_conv2d_geom s = *g;
    s.n = g->n - n0 < chunk ? g->n - n0 : chunk;
    return s;
}

size_t sg_dnnl_conv2d_workspace_size(const sg_conv2d_geom *g, size_t fallback)
{
    const int64_t chunk = chunk_images(g);
    size_t bytes = 0;
    int failed = 0;
    pthread_mutex_lock(&lock);
    for (int part = 0; part < 2 && !failed; part++) {  /* the chunks, then a shorter last one */
        if (part == 1 && g->n % chunk == 0)
            break;
        sg_conv2d_geom sg = sub_geom(g, part ? g->n - g->n % chunk : 0, chunk);
        entry *e = get_entry(&sg, "conv2d");
        if (!e || e->failed)
            failed = 1;
        else if (e->bytes > bytes)
            bytes = e->bytes;
    }
    pthread_mutex_unlock(&lock);
    return failed ? fallback : (bytes + ALIGN_BYTES + sizeof(float) - 1) / sizeof(float);
}

/* Run pass p of e: user pointers in ptr[i] for argument i (in add order). */
static int run_pass(entry *e, int p, float *ws, void *const *ptr, const char *op,
                    const sg_conv2d_geom *g, int weights_ready)
{
    pass *ps = &e->p[p];
    /* the workspace's copies and scratchpads at 64-byte boundaries (the
     * Winograd kernels read them with aligned loads): the size has the slack */
    char *base = (char *)(((uintptr_t)ws + ALIGN_BYTES - 1) / ALIGN_BYTES * ALIGN_BYTES);
    dnnl_exec_arg_t args[MAXARGS + 1];
    const char *call = "dnnl_memory_set_data_handle";
    dnnl_status_t st = dnnl_success;
#define RUN(expr, name)                  \
    do {                                 \
        call = name;                     \
        if ((st = (expr)) != dnnl_success) \
            goto fail;                   \
    } while (0)
    for (int i = 0; i < ps->n; i++) {
        carg *a = &ps->a[i];
        RUN(dnnl_memory_set_data_handle(a->user, ptr[i]), "dnnl_memory_set_data_handle");
        if (a->inner)
            RUN(dnnl_memory_set_data_handle(a->inner, base + a->off), "dnnl_memory_set_data_handle");
        if (a->rscratch)
            RUN(dnnl_memory_set_data_handle(a->rscratch, base + ps->scratch_off),
                "dnnl_memory_set_data_handle");
        args[i].arg = a->arg;
        args[i].memory = a->inner ? a->inner : a->user;
    }
    int nargs = ps->n;
    if (ps->scratch) {
        RUN(dnnl_memory_set_data_handle(ps->scratch, base + ps->scratch_off),
            "dnnl_memory_set_data_handle");
        args[nargs].arg = DNNL_ARG_SCRATCHPAD;
        args[nargs++].memory = ps->scratch;
    }
    for (int i = 0; i < ps->n; i++) {
        carg *a = &ps->a[i];
        if (a->reorder && !a->out && !(weights_ready && a->arg == DNNL_ARG_WEIGHTS)) {
            dnnl_exec_arg_t ra[3] = { { DNNL_ARG_FROM, a->user }, { DNNL_ARG_TO, a->inner },
                                      { DNNL_ARG_SCRATCHPAD, a->rscratch } };
            RUN(dnnl_primitive_execute(a->reorder, stream, a->rscratch ? 3 : 2, ra),
                "dnnl_primitive_execute (reorder in)");
        }
    }
    RUN(dnnl_primitive_execute(ps->prim, stream, nargs, args), "dnnl_primitive_execute");
    for (int i = 0; i < ps->n; i++) {
        carg *a = &ps->a[i];
        if (a->reorder && a->out && ptr[i]) {
            dnnl_exec_arg_t ra[3] = { { DNNL_ARG_FROM, a->inner }, { DNNL_ARG_TO, a->user },
                                      { DNNL_ARG_SCRATCHPAD, a->rscratch } };
            RUN(dnnl_primitive_execute(a->reorder, stream, a->rscratch ? 3 : 2, ra),
                "dnnl_primitive_execute (reorder out)");
        }
    }
    RUN(dnnl_stream_wait(stream), "dnnl_stream_wait");
#undef RUN
    return 0;
fail:;
    char gs[256];
    geom_str(g, gs, sizeof gs);
    return sg_seterr("%s: oneDNN %s failed (%s) in the convolution %s (%s) for %s (cpu)", op,
                     call, dnnl_status2str(st), pass_name[p], ps->impl, gs);
}

/* ptr[i] advanced to image n0 (arguments that are per image: the activations). */
static void chunk_ptrs(int p, void *const *ptr, void **out, const sg_conv2d_geom *g, int64_t n0)
{
    const int64_t xs = g->c * g->h * g->w, ys = g->k * g->oh * g->ow;
    memcpy(out, ptr, MAXARGS * sizeof *out);
    if (p == FWD) {         /* src, weights, bias, dst */
        out[0] = (float *)ptr[0] + n0 * xs;
        out[3] = (float *)ptr[3] + n0 * ys;
    } else if (p == BWD_DATA) { /* diff_dst, weights, diff_src */
        out[0] = (float *)ptr[0] + n0 * ys;
        out[2] = (float *)ptr[2] + n0 * xs;
    } else {                /* src, diff_dst, diff_weights */
        out[0] = (float *)ptr[0] + n0 * xs;
        out[1] = (float *)ptr[1] + n0 * ys;
    }
}

/* Lock; run pass p chunk by chunk. */
static int call_pass(int p, float *ws, void *const *ptr, const char *op, const sg_conv2d_geom *g,
                     int zero_bias)
{
    const int64_t chunk = chunk_images(g);
    int rc = 0;
    entry *prev = NULL;
    sigset_t saved;
    pthread_mutex_lock(&lock);
    sg_dnnl_guard_enter(&saved);
    for (int64_t n0 = 0; n0 < g->n && !rc; n0 += chunk) {
        sg_conv2d_geom sg = sub_geom(g, n0, chunk);
        entry *e = get_entry(&sg, op);
        if (!e) {
            rc = sg_adderr("%s", op);
        } else if (e->failed) {
            rc = sg_seterr("%s: %s", op, e->err);
        } else {
            void *p2[MAXARGS];
            chunk_ptrs(p, ptr, p2, g, n0);
            if (zero_bias) {  /* forward without bias: K zeros in the workspace */
                float *z = (float *)(((uintptr_t)ws + ALIGN_BYTES - 1) / ALIGN_BYTES *
                                         ALIGN_BYTES + e->p[FWD].zero_off);
                memset(z, 0, (size_t)g->k * sizeof(float));
                p2[2] = z;
            }
            /* the next chunk of the same shape reuses the reordered weights
             * (prev, the most recently used entry, is never the one evicted) */
            rc = run_pass(e, p, ws, p2, op, &sg, e == prev);
            prev = e;
        }
    }
    sg_dnnl_guard_leave(&saved);
    pthread_mutex_unlock(&lock);
    return rc;
}

int sg_dnnl_conv2d_forward(float *ws, const float *x, float *y, const float *w,
                           const float *b, const sg_conv2d_geom *g)
{
    void *ptr[MAXARGS] = { (void *)x, (void *)w, (void *)b, y };
    return call_pass(FWD, ws, ptr, "conv2d_forward", g, b == NULL);
}

int sg_dnnl_conv2d_backward_data(float *ws, const float *dy, float *dx, const float *w,
                                 const sg_conv2d_geom *g)
{
    void *ptr[MAXARGS] = { (void *)dy, (void *)w, dx, NULL };
    return call_pass(BWD_DATA, ws, ptr, "conv2d_backward_data", g, 0);
}

/* dw += the weight gradient (the bias gradient is conv.c's). */
int sg_dnnl_conv2d_backward_weights(float *ws, const float *x, const float *dy, float *dw,
                                    const sg_conv2d_geom *g)
{
    void *ptr[MAXARGS] = { (void *)x, (void *)dy, dw, NULL };
    return call_pass(BWD_WEIGHTS, ws, ptr, "conv2d_backward_params", g, 0);
}

int sg_dnnl_conv2d_winograd_ok(const sg_conv2d_geom *g)
{
    if (g->kh != 3 || g->kw != 3 || g->sh != 1 || g->sw != 1)
        return 0;
    const dnnl_dims_t sd = { g->n, g->c, g->h, g->w }, wd = { g->k, g->c, 3, 3 };
    const dnnl_dims_t bd = { g->k }, dd = { g->n, g->k, g->oh, g->ow };
    const dnnl_dims_t strides = { 1, 1 }, pad_l = { g->ph, g->pw };
    const dnnl_dims_t pad_r = { g->oh + 2 - g->h - g->ph, g->ow + 2 - g->w - g->pw };
    const int any = dnnl_format_tag_any, alg = dnnl_convolution_winograd;
    dnnl_memory_desc_t src, wts, bias, dst;
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd[NPASS] = { NULL, NULL, NULL };
    int ok = 0;
    pthread_mutex_lock(&lock);
    if (init_engine("conv2d", g) == 0 &&
        dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_f32, any) == dnnl_success &&
        dnnl_memory_desc_init_by_tag(&wts, 4, wd, dnnl_f32, any) == dnnl_success &&
        dnnl_memory_desc_init_by_tag(&bias, 1, bd, dnnl_f32, dnnl_a) == dnnl_success &&
        dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, any) == dnnl_success &&
        dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, alg, &src, &wts, &bias,
                                           &dst, strides, pad_l, pad_r) == dnnl_success &&
        dnnl_primitive_desc_create(&pd[FWD], &cd, NULL, engine, NULL) == dnnl_success &&
        dnnl_convolution_backward_data_desc_init(&cd, alg, &src, &wts, &dst, strides, pad_l,
                                                 pad_r) == dnnl_success &&
        dnnl_primitive_desc_create(&pd[BWD_DATA], &cd, NULL, engine, pd[FWD]) == dnnl_success &&
        dnnl_convolution_backward_weights_desc_init(&cd, alg, &src, &wts, NULL, &dst, strides,
                                                    pad_l, pad_r) == dnnl_success &&
        dnnl_primitive_desc_create(&pd[BWD_WEIGHTS], &cd, NULL, engine, pd[FWD]) == dnnl_success)
        ok = 1;
    for (int i = 0; i < NPASS; i++)
        if (pd[i])
            dnnl_primitive_desc_destroy(pd[i]);
    pthread_mutex_unlock(&lock);
    sg_clearerr();
    return ok;
}

void sg_dnnl_conv2d_cache_clear(void)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < ncache; i++)
        destroy_entry(cache[i]);
    ncache = 0;
    pthread_mutex_unlock(&lock);
}

/* At exit (or when the library is unloaded): free the primitives, then the
 * stream and engine, while oneDNN (a dependency, finalized after us) is alive. */
__attribute__((destructor)) static void conv_dnnl_fini(void)
{
    sg_dnnl_conv2d_cache_clear();
    if (stream)
        dnnl_stream_destroy(stream);
    if (engine)
        dnnl_engine_destroy(engine);
    stream = NULL;
    engine = NULL;
}
#else
typedef int sg_conv_dnnl_unused; /* built without oneDNN: conv.c uses im2col only */
#endif
