/*
 * emu_blas.cpp - the cuBLAS functions the CUDA backend calls, emulated for
 * the CUDA emulator: handles, stream and math mode, and cublasSgemm as a
 * column-major reference loop (double accumulation, whatever the math mode)
 * queued on the handle's stream.
 *
 * Strict by design, to catch misuse: the handle must be live; arguments are
 * checked as cuBLAS documents (CUBLAS_STATUS_INVALID_VALUE); every matrix
 * cuBLAS would touch must lie in device memory over its exact extent and
 * start 16-byte aligned (what its vectorized and tensor-core kernels load;
 * the backend hands it nothing less), and C must share no element with A
 * or B. Alpha and beta are host pointers (the
 * default pointer mode); as in cuBLAS, A and B are not read when k == 0 or
 * alpha == 0, and C is not read when beta == 0.
 */
#include <cublas_v2.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <unordered_set>

#include "emu_internal.h"

struct cublasContext {
    cudaStream_t stream = nullptr;
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

namespace {

std::mutex g_lock;
std::unordered_set<const void *> g_live;

bool handle_ok(const char *fn, cublasHandle_t h)
{
    bool live;
    {
        std::lock_guard<std::mutex> l(g_lock);
        live = h && g_live.count(h);
    }
    if (!live)
        emu::complain("%s: handle %p is not a live cuBLAS handle", fn, (void *)h);
    return live;
}

/* Whether two column-major float matrices (base, leading dimension, rows,
 * columns) share a byte: for each column of a, the columns of b whose span
 * meets it. */
bool overlap(const float *a, long lda, long ra, long ca, const float *b, long ldb, long rb,
             long cb)
{
    const long long ld = 4LL * ldb, len = 4LL * rb;
    for (long j = 0; j < ca; j++) {
        /* the column's bytes [lo, hi], relative to b */
        const long long lo = (long long)((intptr_t)a - (intptr_t)b) + 4LL * j * lda,
                        hi = lo + 4LL * ra - 1;
        const long long first = lo - len + 1 > 0 ? (lo - len + 1 + ld - 1) / ld : 0;
        const long long last = hi < 0 ? -1 : std::min<long long>(cb - 1, hi / ld);
        if (first <= last)
            return true;
    }
    return false;
}

}  // namespace

extern "C" {

cublasStatus_t cublasCreate(cublasHandle_t *handle)
{
    if (!handle) {
        emu::complain("cublasCreate: NULL handle pointer");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    cublasHandle_t h = new cublasContext();
    std::lock_guard<std::mutex> l(g_lock);
    g_live.insert(h);
    *handle = h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle)
{
    if (!handle_ok("cublasDestroy", handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    {
        std::lock_guard<std::mutex> l(g_lock);
        g_live.erase(handle);
    }
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream)
{
    if (!handle_ok("cublasSetStream", handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
    if (!handle_ok("cublasSetMathMode", handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    const int base = mode & ~CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    if (base != CUBLAS_DEFAULT_MATH && base != CUBLAS_TF32_TENSOR_OP_MATH &&
        base != CUBLAS_PEDANTIC_MATH) {
        emu::complain("cublasSetMathMode: math mode %d not emulated (only DEFAULT, "
                      "TF32_TENSOR_OP, PEDANTIC)", (int)mode);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa,
                           cublasOperation_t transb, int m, int n, int k, const float *alpha,
                           const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc)
{
    const char *fn = "cublasSgemm";
    if (!handle_ok(fn, handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    const bool ok_ops = (transa == CUBLAS_OP_N || transa == CUBLAS_OP_T || transa == CUBLAS_OP_C) &&
                        (transb == CUBLAS_OP_N || transb == CUBLAS_OP_T || transb == CUBLAS_OP_C);
    const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N; /* C = T for real */
    const int ra = ta ? k : m, ca = ta ? m : k, rb = tb ? n : k, cb = tb ? k : n;
    if (!ok_ops || m < 0 || n < 0 || k < 0 || lda < std::max(1, ra) || ldb < std::max(1, rb) ||
        ldc < std::max(1, m) || !alpha || !beta) {
        emu::complain("%s: invalid arguments: transa %d transb %d m %d n %d k %d lda %d "
                      "(A stored %dx%d) ldb %d (B stored %dx%d) ldc %d alpha %p beta %p", fn,
                      (int)transa, (int)transb, m, n, k, lda, ra, ca, ldb, rb, cb, ldc,
                      (const void *)alpha, (const void *)beta);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (m == 0 || n == 0)
        return CUBLAS_STATUS_SUCCESS;
    const float a = *alpha, b = *beta;
    const bool reads_ab = k > 0 && a != 0.0f;
    const size_t ea = reads_ab ? (size_t)lda * (ca - 1) + ra : 0,
                 eb = reads_ab ? (size_t)ldb * (cb - 1) + rb : 0, ec = (size_t)ldc * (n - 1) + m;
    if (!C || !emu::is_device(C, ec * 4) ||
        (reads_ab && (!A || !emu::is_device(A, ea * 4) || !B || !emu::is_device(B, eb * 4)))) {
        emu::complain("%s: A %p (%zu floats), B %p (%zu floats) or C %p (%zu floats) is not "
                      "device memory (m %d n %d k %d, lda %d ldb %d ldc %d)", fn,
                      (const void *)A, ea, (const void *)B, eb, (const void *)C, ec, m, n, k,
                      lda, ldb, ldc);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if ((uintptr_t)C % 16 != 0 || (reads_ab && ((uintptr_t)A % 16 != 0 || (uintptr_t)B % 16 != 0))) {
        emu::complain("%s: A %p, B %p or C %p is not 16-byte aligned", fn, (const void *)A,
                      (const void *)B, (const void *)C);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (reads_ab &&
        (overlap(C, ldc, m, n, A, lda, ra, ca) || overlap(C, ldc, m, n, B, ldb, rb, cb))) {
        emu::complain("%s: C %p (%dx%d, ldc %d) shares elements with A %p (%dx%d, lda %d) or "
                      "B %p (%dx%d, ldb %d)", fn, (void *)C, m, n, ldc, (const void *)A, ra, ca,
                      lda, (const void *)B, rb, cb, ldb);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    emu::enqueue(handle->stream, [=]() {
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                double acc = 0;
                if (reads_ab)
                    for (int l = 0; l < k; l++)
                        acc += (double)(ta ? A[l + (size_t)i * lda] : A[i + (size_t)l * lda]) *
                               (tb ? B[j + (size_t)l * ldb] : B[l + (size_t)j * ldb]);
                float *c = C + i + (size_t)j * ldc;
                *c = b == 0.0f ? (float)(a * acc) : (float)(a * acc + (double)b * *c);
            }
    });
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t s)
{
    switch (s) {
#define NAME(x) case x: return #x;
        NAME(CUBLAS_STATUS_SUCCESS)
        NAME(CUBLAS_STATUS_NOT_INITIALIZED)
        NAME(CUBLAS_STATUS_ALLOC_FAILED)
        NAME(CUBLAS_STATUS_INVALID_VALUE)
        NAME(CUBLAS_STATUS_ARCH_MISMATCH)
        NAME(CUBLAS_STATUS_MAPPING_ERROR)
        NAME(CUBLAS_STATUS_EXECUTION_FAILED)
        NAME(CUBLAS_STATUS_INTERNAL_ERROR)
        NAME(CUBLAS_STATUS_NOT_SUPPORTED)
        NAME(CUBLAS_STATUS_LICENSE_ERROR)
#undef NAME
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

}  // extern "C"
