/*
 * reduce.cu - reductions of the CUDA backend: whole-array sum/mean/max/min/
 * argmax/argmin, dot, norm and the finiteness test; per-channel sums for
 * bias and BatchNorm parameter gradients; the fused softmax cross-entropy.
 *
 * Determinism: every reduction runs in two stages with a fixed launch shape
 * (stage 1: each block reduces a fixed slice into a partial in double with a
 * fixed tree; stage 2: one block reduces the partials in order), so results do
 * not depend on timing. Arg-reductions keep the CPU's rule: the first
 * maximum (minimum) wins, and a NaN beats any number (the first NaN).
 *
 * Index arithmetic in 32 bits when the sizes allow: the loops of stage 1 are
 * templates on the index type I (int32_t when every index, one stride past
 * the end included, fits; see elementwise.cu), so that neither their
 * per-element division nor the trip count the compiler computes to unroll
 * them is a 64-bit division.
 */
#include "cuda_impl.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;

/* A grid-stride loop over [0, n) with nb blocks of kThreads stays in 32 bits. */
inline bool loop_fits32(int64_t n, int64_t nb) { return sg_cuda_index32_ok(n + nb * kThreads) != 0; }

/* ---- sum-like: partial[b] = sum over block b's grid-stride share of f(i) ---- */
enum { R_SUM = 0, R_DOT, R_ABS, R_SQ, R_POW, R_NONFINITE };

__device__ __forceinline__ double term(const float *a, const float *b, int64_t i, int kind,
                                       double p)
{
    float x = a[i];
    switch (kind) {
    case R_SUM: return (double)x;
    case R_DOT: return (double)x * (double)b[i];
    case R_ABS: return fabs((double)x);
    case R_SQ: return (double)x * (double)x;
    case R_POW: return pow(fabs((double)x), p);
    default: return isfinite(x) ? 0.0 : 1.0;
    }
}

/* The combining steps of the sum and of max |x| ignoring NaNs (the CPU's
 * fmax rule of the inf-norm). */
struct op_sum {
    __device__ static void add(double &a, double b) { a += b; }
};
struct op_max {
    __device__ static void add(double &a, double b) { a = fmax(a, b); }
};

/* The block's values combined by Op (a tree over shared memory sh). */
template <typename Op>
__device__ double block_reduce(double v, double *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s)
            Op::add(sh[threadIdx.x], sh[threadIdx.x + s]);
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

__device__ double block_sum(double v, double *sh) { return block_reduce<op_sum>(v, sh); }

/* Stage 1: partial[b] = the terms of block b's grid-stride share combined by
 * Op; stage 2: one block combines the nb partials. */
template <typename Op, typename I>
__global__ void k_stage1(const float *a, const float *b, I n, int kind, double p, double *part)
{
    __shared__ double sh[kThreads];
    double acc = 0.0;
    for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < n;
         i += (I)blockDim.x * (I)gridDim.x)
        Op::add(acc, term(a, b, i, kind, p));
    double s = block_reduce<Op>(acc, sh);
    if (threadIdx.x == 0)
        part[blockIdx.x] = s;
}

template <typename Op>
__global__ void k_stage2(const double *part, int nb, double *out)
{
    __shared__ double sh[kThreads];
    double acc = 0.0;
    for (int i = threadIdx.x; i < nb; i += blockDim.x)
        Op::add(acc, part[i]);
    double s = block_reduce<Op>(acc, sh);
    if (threadIdx.x == 0)
        *out = s;
}

/* ---- arg-reductions -------------------------------------------------------------- */
struct vi { float v; int64_t i; };

/* is a better than b? (max when want_max, else min) */
__device__ __forceinline__ bool better(vi a, vi b, bool want_max)
{
    if (a.i < 0) return false;
    if (b.i < 0) return true;
    bool an = isnan(a.v), bn = isnan(b.v);
    if (an || bn) {
        if (an && bn) return a.i < b.i;
        return an;
    }
    if (a.v != b.v)
        return want_max ? a.v > b.v : a.v < b.v;
    return a.i < b.i;
}

__device__ vi block_best(vi v, vi *sh, bool want_max)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s && better(sh[threadIdx.x + s], sh[threadIdx.x], want_max))
            sh[threadIdx.x] = sh[threadIdx.x + s];
        __syncthreads();
    }
    vi r = sh[0];
    __syncthreads();
    return r;
}

template <typename I>
__global__ void k_best_stage1(const float *a, I n, int want_max, vi *part)
{
    __shared__ vi sh[kThreads];
    vi best = {0.0f, -1};
    for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < n;
         i += (I)blockDim.x * (I)gridDim.x) {
        vi c = {a[i], (int64_t)i};
        if (better(c, best, want_max != 0))
            best = c;
    }
    vi r = block_best(best, sh, want_max != 0);
    if (threadIdx.x == 0)
        part[blockIdx.x] = r;
}

__global__ void k_best_stage2(const vi *part, int nb, int want_max, vi *out)
{
    __shared__ vi sh[kThreads];
    vi best = {0.0f, -1};
    for (int i = threadIdx.x; i < nb; i += blockDim.x)
        if (better(part[i], best, want_max != 0))
            best = part[i];
    vi r = block_best(best, sh, want_max != 0);
    if (threadIdx.x == 0)
        *out = r;
}

/* ---- per-channel sums over N x C x inner --------------------------------------------
 * grid (chunks, c): block (k, ch) sums its slice of channel ch's M = n*inner
 * values into part[ch*chunks + k] (two sums: s0 = dy, s1 = dy*(x-mean)). */
template <typename I>
__global__ void k_chan_stage1(const float *x, const float *dy, const float *mean, I n,
                              I c, I inner, I per, double *part)
{
    __shared__ double sh[kThreads];
    const I ch = (I)blockIdx.y, m = n * inner, chunks = (I)gridDim.x;
    const I lo = per * (I)blockIdx.x, hi = lo + per < m ? lo + per : m;
    const double mu = x ? (double)mean[ch] : 0.0;
    double s0 = 0.0, s1 = 0.0;
    for (I t = lo + (I)threadIdx.x; t < hi; t += (I)blockDim.x) {
        const I i = t / inner, j = t - i * inner;
        const I off = (i * c + ch) * inner + j;
        double d = dy[off];
        s0 += d;
        if (x)
            s1 += d * ((double)x[off] - mu);
    }
    double r0 = block_sum(s0, sh);
    double r1 = x ? block_sum(s1, sh) : 0.0;
    if (threadIdx.x == 0) {
        part[(ch * chunks + blockIdx.x) * 2] = r0;
        part[(ch * chunks + blockIdx.x) * 2 + 1] = r1;
    }
}

/* one thread per channel (c <= 65535, the grid's y limit): add the partials in order */
__global__ void k_chan_stage2(const double *part, int c, int chunks, const float *invstd,
                              float *d0, float *d1)
{
    const int ch = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (ch < c) {
        double s0 = 0.0, s1 = 0.0;
        for (int k = 0; k < chunks; k++) {
            s0 += part[(ch * chunks + k) * 2];
            s1 += part[(ch * chunks + k) * 2 + 1];
        }
        if (d0)
            d0[ch] += (float)s0;
        if (d1)
            d1[ch] += (float)(s1 * (double)invstd[ch]);
    }
}

/* ---- cross-entropy: one warp per row ---------------------------------------------------- */
__global__ void k_xent_rows(const float *z, const int32_t *labels, float *dz, int64_t n,
                            int64_t c, double *row_loss, int *row_hit,
                            unsigned long long *bad_row)
{
    const int lane = threadIdx.x & 31;
    const int64_t row = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    if (row >= n)
        return;
    const float *zr = z + row * c;
    const int32_t lab = labels[row];
    if (lab < 0 || lab >= c) {
        if (lane == 0)
            atomicMin(bad_row, (unsigned long long)row);
        return;
    }
    /* max and argmax with the CPU's rule (kernels/cpu/elementwise.c scans
     * j = 0..c-1 keeping the first strict maximum, starting from z[0]): the
     * first maximum among the non-NaN values, except that a NaN in column 0
     * makes the argmax 0. NaNs are skipped here; the warp keeps the lowest
     * index among equal maxima. */
    float mx = -INFINITY;
    int64_t am = -1;
    for (int64_t j = lane; j < c; j += 32) {
        float v = zr[j];
        if (!isnan(v) && (am < 0 || v > mx)) { mx = v; am = j; }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_down_sync(0xffffffffu, mx, o);
        long long oi = __shfl_down_sync(0xffffffffu, (long long)am, o);
        if (oi >= 0 && (am < 0 || ov > mx || (ov == mx && oi < am))) { mx = ov; am = oi; }
    }
    mx = __shfl_sync(0xffffffffu, mx, 0);
    am = __shfl_sync(0xffffffffu, (long long)am, 0);
    if (isnan(zr[0]) || am < 0)
        am = 0;
    /* the shift of the log-sum-exp: with a NaN anywhere the loss is NaN
     * whatever the shift (exp(NaN) enters the sum), as on the CPU */
    double se = 0.0;
    for (int64_t j = lane; j < c; j += 32)
        se += exp((double)zr[j] - (double)mx);
    for (int o = 16; o > 0; o >>= 1)
        se += __shfl_down_sync(0xffffffffu, se, o);
    se = __shfl_sync(0xffffffffu, se, 0);
    const double lse = (double)mx + log(se);
    /* the label's logit before the gradient is written (dz may be z: in place, as on the CPU) */
    const float zlab = zr[lab];
    __syncwarp();
    if (dz) {
        const double invn = 1.0 / (double)n;
        float *dr = dz + row * c;
        for (int64_t j = lane; j < c; j += 32)
            dr[j] = (float)((exp((double)zr[j] - lse) - (j == lab ? 1.0 : 0.0)) * invn);
    }
    if (lane == 0) {
        row_loss[row] = lse - (double)zlab;
        row_hit[row] = am == lab;
    }
}

/* one block: the rows' losses in a fixed tree order and the hit count into
 * tot[0] and tot[1]; tot[2] holds the first out-of-range row (k_xent_rows,
 * ~0: none) and gets that row's label in tot[3] */
__global__ void k_xent_total(const double *row_loss, const int *row_hit, const int32_t *labels,
                             int64_t n, double *tot)
{
    __shared__ double sh[kThreads];
    double a = 0.0, h = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        a += row_loss[i];
        h += row_hit[i];
    }
    double sa = block_sum(a, sh);
    double sh2 = block_sum(h, sh);
    if (threadIdx.x == 0) {
        tot[0] = sa;
        tot[1] = sh2;
        const unsigned long long bad = *(const unsigned long long *)(tot + 2);
        tot[3] = bad != ~0ull ? (double)labels[bad] : 0.0;
    }
}

inline int nblocks(int64_t n)
{
    int64_t b = (n + kThreads * 4 - 1) / (kThreads * 4);
    if (b > kMaxBlocks) b = kMaxBlocks;
    return (int)(b < 1 ? 1 : b);
}

/* The frame of the two-stage reductions to the host: nb partials and the
 * result (type T) in the reduce scratch, stages(fits32, nb, stream, part)
 * launches both stages (stage 1 over 32-bit indices where fits32), then the
 * result is copied to *out. */
template <typename T, typename Stages>
int two_stage(int64_t n, T *out, Stages stages)
{
    int nb = nblocks(n);
    T *part = (T *)sg_cuda_scratch(SG_SCRATCH_REDUCE, (size_t)(nb + 1) * sizeof(T));
    T *host = (T *)sg_cuda_host_scratch(SG_SCRATCH_REDUCE, sizeof(T));
    if (!part || !host)
        return -1;
    cudaStream_t st = sg_cuda_stream();
    SG_PRELAUNCH();
    if (stages(loop_fits32(n, nb), nb, st, part) != 0)
        return -1;
    SG_CU(cudaMemcpyAsync(host, part + nb, sizeof(T), cudaMemcpyDeviceToHost, st));
    SG_CU(sg_cuda_wait_stream(st));
    *out = *host;
    return 0;
}

/* The n terms (kind, p) of a and b combined by Op, to the host (0 when n <= 0). */
template <typename Op>
int reduce_terms(const float *a, const float *b, int64_t n, int kind, double p, double *out)
{
    if (sg_cuda_init() != 0)
        return -1;
    if (n <= 0) {
        *out = 0.0;
        return 0;
    }
    return two_stage(n, out, [&](bool fits32, int nb, cudaStream_t st, double *part) {
        if (fits32)
            k_stage1<Op, int32_t><<<nb, kThreads, 0, st>>>(a, b, (int32_t)n, kind, p, part);
        else
            k_stage1<Op, int64_t><<<nb, kThreads, 0, st>>>(a, b, n, kind, p, part);
        if (SG_LAUNCHED("k_stage1") != 0)
            return -1;
        k_stage2<Op><<<1, kThreads, 0, st>>>(part, nb, part + nb);
        return SG_LAUNCHED("k_stage2");
    });
}

int sum_like(const float *a, const float *b, int64_t n, int kind, double p, double *out)
{
    return reduce_terms<op_sum>(a, b, n, kind, p, out);
}

int absmax(const float *a, int64_t n, double *out)
{
    return reduce_terms<op_max>(a, NULL, n, R_ABS, 0.0, out);
}

int best_of(const float *a, int64_t n, int want_max, vi *out)
{
    if (sg_cuda_init() != 0)
        return -1;
    return two_stage(n, out, [&](bool fits32, int nb, cudaStream_t st, vi *part) {
        if (fits32)
            k_best_stage1<int32_t><<<nb, kThreads, 0, st>>>(a, (int32_t)n, want_max, part);
        else
            k_best_stage1<int64_t><<<nb, kThreads, 0, st>>>(a, n, want_max, part);
        if (SG_LAUNCHED("k_best_stage1") != 0)
            return -1;
        k_best_stage2<<<1, kThreads, 0, st>>>(part, nb, want_max, part + nb);
        return SG_LAUNCHED("k_best_stage2");
    });
}

int chan_sums(const float *x, const float *dy, const float *mean, const float *invstd,
              float *d0, float *d1, int64_t n, int64_t c, int64_t inner, int slot)
{
    if (sg_cuda_init() != 0)
        return -1;
    const int64_t m = n * inner;
    const int64_t sms = sg_cuda_sm_count();
    int64_t want = (4 * sms + c - 1) / c;  /* about four blocks per SM in all */
    int64_t maxc = (m + kThreads - 1) / kThreads;
    if (want > maxc) want = maxc;
    if (want > 256) want = 256;
    int chunks = (int)(want < 1 ? 1 : want);
    if (c > 65535)
        return sg_seterr("channel sums: %lld channels exceed the grid limit 65535 (cuda)",
                         (long long)c);
    double *part = (double *)sg_cuda_scratch(slot, (size_t)c * chunks * 2 * sizeof(double));
    if (!part)
        return -1;
    cudaStream_t st = sg_cuda_stream();
    dim3 grid((unsigned)chunks, (unsigned)c);
    const int64_t per = (m + chunks - 1) / chunks;
    SG_PRELAUNCH();
    if (loop_fits32(n * c * inner, 1))
        k_chan_stage1<int32_t><<<grid, kThreads, 0, st>>>(x, dy, mean, (int32_t)n, (int32_t)c,
                                                          (int32_t)inner, (int32_t)per, part);
    else
        k_chan_stage1<int64_t><<<grid, kThreads, 0, st>>>(x, dy, mean, n, c, inner, per, part);
    if (SG_LAUNCHED("k_chan_stage1") != 0)
        return -1;
    k_chan_stage2<<<(unsigned)((c + kThreads - 1) / kThreads), kThreads, 0, st>>>(
        part, (int)c, chunks, invstd, d0, d1);
    return SG_LAUNCHED("k_chan_stage2");
}

}  // namespace

extern "C" {

int sg_cuda_reduce(const float *a, int64_t n, sg_redop op, double *out)
{
    if (op == SG_RED_SUM || op == SG_RED_MEAN) {
        double s = 0.0;
        if (sum_like(a, NULL, n, R_SUM, 0.0, &s) != 0)
            return -1;
        *out = op == SG_RED_MEAN ? s / (double)n : s;
        return 0;
    }
    if (n <= 0)
        return sg_seterr("reduce: empty tensor (cuda)");
    vi r;
    int want_max = op == SG_RED_MAX || op == SG_RED_ARGMAX;
    if (best_of(a, n, want_max, &r) != 0)
        return -1;
    *out = (op == SG_RED_MAX || op == SG_RED_MIN) ? (double)r.v : (double)r.i;
    return 0;
}

int sg_cuda_dot(const float *a, const float *b, int64_t n, double *out)
{
    return sum_like(a, b, n, R_DOT, 0.0, out);
}

int sg_cuda_norm(const float *a, int64_t n, double p, double *out)
{
    if (!(p > 0))
        return sg_seterr("norm: p must be positive, got %g (cuda)", p);
    if (isinf(p))  /* max |x|, NaNs ignored (fmax), 0 when empty: as on the CPU */
        return absmax(a, n, out);
    double s = 0.0;
    int kind = p == 2 ? R_SQ : (p == 1 ? R_ABS : R_POW);
    if (sum_like(a, NULL, n, kind, p, &s) != 0)
        return -1;
    *out = p == 2 ? sqrt(s) : (p == 1 ? s : pow(s, 1.0 / p));
    return 0;
}

int sg_cuda_isfinite(const float *a, int64_t n, int *out)
{
    double bad = 0.0;
    if (sum_like(a, NULL, n, R_NONFINITE, 0.0, &bad) != 0)
        return -1;
    *out = bad == 0.0;
    return 0;
}

int sg_cuda_k_bias_grad(const float *dy, float *db, int64_t n, int64_t c, int64_t inner)
{
    return chan_sums(NULL, dy, NULL, NULL, db, NULL, n, c, inner, SG_SCRATCH_REDUCE);
}

int sg_cuda_k_bn_param_grad(const float *x, const float *dy, float *dgamma, float *dbeta,
                            const float *mean, const float *invstd, int64_t n, int64_t c,
                            int64_t hw)
{
    if (!dgamma && !dbeta)
        return 0;
    return chan_sums(x, dy, mean, invstd, dbeta, dgamma, n, c, hw, SG_SCRATCH_BN);
}

/* ---- the loss ---------------------------------------------------------------------- */

/* Queue the loss of (logits, labels) and the copy of its totals (XENT_TOTALS
 * doubles: see k_xent_total) into `host`, pinned host memory. */
enum { XENT_TOTALS = 4 };
static int xent_queue(const float *logits, const int32_t *labels, float *dlogits, int64_t n,
                      int64_t c, double *host)
{
    if (sg_cuda_init() != 0)
        return -1;
    if (n <= 0 || c <= 0)
        return sg_seterr("cross_entropy: invalid sizes: logits %lldx%lld (cuda)", (long long)n,
                         (long long)c);
    /* scratch: n doubles (row losses), n ints (hits), the totals */
    size_t off_hit = (size_t)n * sizeof(double);
    size_t off_tot = (off_hit + (size_t)n * sizeof(int) + 15) & ~(size_t)15;
    char *s = (char *)sg_cuda_scratch(SG_SCRATCH_REDUCE, off_tot + XENT_TOTALS * sizeof(double));
    if (!s)
        return -1;
    double *row_loss = (double *)s;
    int *row_hit = (int *)(s + off_hit);
    double *tot = (double *)(s + off_tot);
    cudaStream_t st = sg_cuda_stream();
    SG_CU(cudaMemsetAsync(tot + 2, 0xff, sizeof(double), st));   /* no bad row yet */
    int64_t threads = n * 32;
    unsigned blocks = (unsigned)((threads + kThreads - 1) / kThreads);
    SG_PRELAUNCH();
    k_xent_rows<<<blocks, kThreads, 0, st>>>(logits, labels, dlogits, n, c, row_loss, row_hit,
                                             (unsigned long long *)(tot + 2));
    if (SG_LAUNCHED("k_xent_rows") != 0)
        return -1;
    k_xent_total<<<1, kThreads, 0, st>>>(row_loss, row_hit, labels, n, tot);
    if (SG_LAUNCHED("k_xent_total") != 0)
        return -1;
    SG_CU(cudaMemcpyAsync(host, tot, XENT_TOTALS * sizeof(double), cudaMemcpyDeviceToHost, st));
    return 0;
}

/* loss and correct from the totals copied back, or the out-of-range label's error */
static int xent_result(const double *host, int64_t n, int64_t c, double *loss, int64_t *correct)
{
    unsigned long long badrow;
    memcpy(&badrow, host + 2, sizeof badrow);
    if (badrow != ~0ull)
        return sg_seterr("cross_entropy: label %d at row %lld out of range [0, %lld) for logits "
                         "%lldx%lld (cuda)", (int)host[3], (long long)(badrow + 1), (long long)c,
                         (long long)n, (long long)c);
    *loss = host[0] / (double)n;
    if (correct)
        *correct = (int64_t)host[1];
    return 0;
}

/* A read-back slot: the totals' pinned destination (the struct is allocated
 * pinned), the event recorded after their copy, and the slot's place among
 * the read-backs queued on the compute stream. Freed slots go to a free
 * list and are handed out again (no cudaFreeHost: it would wait for the
 * device). */
struct sg_readback {
    double host[XENT_TOTALS];
    cudaEvent_t copied;
    int64_t seq;                    /* 0: nothing queued yet */
    int64_t n, c;
    struct sg_readback *next;  /* on the free list */
};

static pthread_mutex_t g_rb_lock = PTHREAD_MUTEX_INITIALIZER;
static sg_readback *g_rb_free;
static int64_t g_rb_queued;         /* read-backs queued so far (the last seq) */
static int64_t g_rb_done;           /* every read-back with seq <= this has arrived */

int sg_cuda_cross_entropy(const float *logits, const int32_t *labels, float *dlogits,
                          int64_t n, int64_t c, double *loss, int64_t *correct)
{
    if (sg_cuda_init() != 0)
        return -1;
    double *host = (double *)sg_cuda_host_scratch(SG_SCRATCH_REDUCE, XENT_TOTALS * sizeof(double));
    if (!host || xent_queue(logits, labels, dlogits, n, c, host) != 0)
        return -1;
    SG_CU(sg_cuda_wait_stream(sg_cuda_stream()));
    return xent_result(host, n, c, loss, correct);
}

sg_readback *sg_cuda_readback_new(void)
{
    pthread_mutex_lock(&g_rb_lock);
    sg_readback *r = g_rb_free;
    if (r)
        g_rb_free = r->next;
    pthread_mutex_unlock(&g_rb_lock);
    if (r)
        return r;
    r = (sg_readback *)sg_cuda_host_alloc(sizeof *r, NULL);
    if (!r)
        return sg_adderr("cuda: a loss read-back slot"), (sg_readback *)NULL;
    memset(r, 0, sizeof *r);
    cudaError_t e = cudaEventCreateWithFlags(&r->copied, cudaEventDisableTiming);
    if (e != cudaSuccess) {
        sg_cuda_fail_rt("cudaEventCreateWithFlags", e, __FILE__, __LINE__);
        sg_cuda_host_free(r, NULL);
        return NULL;
    }
    return r;
}

void sg_cuda_readback_free(sg_readback *r)
{
    if (!r)
        return;
    /* a copy still on its way into it: let it land before the slot is reused */
    if (r->seq > __atomic_load_n(&g_rb_done, __ATOMIC_ACQUIRE))
        (void)sg_cuda_wait_event(r->copied);
    r->seq = 0;
    pthread_mutex_lock(&g_rb_lock);
    r->next = g_rb_free;
    g_rb_free = r;
    pthread_mutex_unlock(&g_rb_lock);
}

int sg_cuda_cross_entropy_queue(const float *logits, const int32_t *labels, float *dlogits,
                                int64_t n, int64_t c, sg_readback *r)
{
    /* the slot's previous copy, if still on its way, is ordered before this
     * one on the stream: both write the same bytes in queue order. Nothing
     * to read until this one is recorded (a failure leaves it so). */
    r->seq = 0;
    if (xent_queue(logits, labels, dlogits, n, c, r->host) != 0)
        return -1;
    SG_CU(cudaEventRecord(r->copied, sg_cuda_stream()));
    r->n = n;
    r->c = c;
    r->seq = __atomic_add_fetch(&g_rb_queued, 1, __ATOMIC_ACQ_REL);
    return 0;
}

int sg_cuda_cross_entropy_read(sg_readback *r, double *loss, int64_t *correct)
{
    if (r->seq == 0)
        return sg_seterr("cross_entropy: read of a loss read-back slot with nothing queued (cuda)");
    int64_t done = __atomic_load_n(&g_rb_done, __ATOMIC_ACQUIRE);
    if (r->seq > done) {
        SG_CU(sg_cuda_wait_event(r->copied));
        /* the stream runs in order: every slot queued before this one has arrived too */
        while (done < r->seq &&
               !__atomic_compare_exchange_n(&g_rb_done, &done, r->seq, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE)) {
        }
    }
    return xent_result(r->host, r->n, r->c, loss, correct);
}

}  // extern "C"
