/*
 * tensor.h - n-dimensional strided tensors over reference-counted storage.
 *
 * A storage is a flat block of bytes on one device. A tensor is a view of a
 * storage: dtype, offset (in elements), sizes and strides (in elements).
 * Many tensors may view one storage (narrow, select, transpose, view...).
 * Both storages and tensors are reference counted: sg_tensor_retain/release.
 *
 * Parameter swapping (the SA accept step) works by swapping the data
 * pointers of two storages (sg_storage_swap): every view of either storage
 * sees the other's bytes afterwards, with no copy.
 *
 * Errors: functions return NULL or -1 and set sg_geterr(); see error.h.
 * Argument order everywhere: outputs first for *_into ops, then inputs,
 * then scalars.
 */
#ifndef SG_TENSOR_H
#define SG_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "api.h"

SG_API_BEGIN

#define SG_MAXDIM 8

typedef enum { SG_F32 = 0, SG_U8 = 1, SG_I32 = 2 } sg_dtype;
typedef enum { SG_CPU = 0, SG_CUDA = 1 } sg_devtype;

typedef struct sg_storage {
    void *data;
    size_t nbytes;
    sg_devtype device;
    int refcount;
} sg_storage;

typedef struct sg_tensor {
    sg_storage *storage;    /* NULL after sg_tensor_free (a freed tensor) */
    int64_t offset;         /* in elements */
    int ndim;
    int64_t size[SG_MAXDIM];
    int64_t stride[SG_MAXDIM];
    sg_dtype dtype;
    int refcount;
} sg_tensor;

/* --- dtypes and devices ------------------------------------------------- */
size_t sg_dtype_size(sg_dtype t);
const char *sg_dtype_name(sg_dtype t);     /* "float32", "uint8", "int32" */
const char *sg_device_name(sg_devtype d);  /* "cpu", "cuda" */
/* Largest allowed element count for a single tensor (absurd sizes are errors). */
#define SG_MAX_NUMEL ((int64_t)1 << 40)
/* Check a shape (0..SG_MAXDIM sizes, none negative, the product of the sizes
 * with zeros counted as 1 at most SG_MAX_NUMEL, so that no product or stride
 * of it overflows) and give its element count; errors are named after op. */
int sg_shape_numel(const char *op, int ndim, const int64_t *size, int64_t *numel);

/* --- storage ------------------------------------------------------------ */
sg_storage *sg_storage_new(size_t nbytes, sg_devtype dev);
void sg_storage_retain(sg_storage *s);
void sg_storage_release(sg_storage *s);
/* Exchange the memory of two storages of equal size and device (O(1)). */
int sg_storage_swap(sg_storage *a, sg_storage *b);

/* --- construction and lifetime ------------------------------------------ */
/* New contiguous tensor, uninitialized. ndim may be 0 (a scalar). */
sg_tensor *sg_tensor_new(sg_dtype dt, sg_devtype dev, int ndim, const int64_t *size);
sg_tensor *sg_tensor_zeros(sg_dtype dt, sg_devtype dev, int ndim, const int64_t *size);
/* New tensor viewing `st` (retained) with given geometry. */
sg_tensor *sg_tensor_view_of(sg_storage *st, sg_dtype dt, int64_t offset, int ndim,
                             const int64_t *size, const int64_t *stride);
void sg_tensor_retain(sg_tensor *t);
void sg_tensor_release(sg_tensor *t);
/* Drop the storage now (the tensor object stays, "freed"); safe to repeat. */
void sg_tensor_free(sg_tensor *t);
/* Resize to a contiguous shape; reallocates only when the storage is too
 * small (so a reused workspace does not allocate in steady state). */
int sg_tensor_resize(sg_tensor *t, int ndim, const int64_t *size);
int sg_tensor_resize_as(sg_tensor *t, const sg_tensor *like);

/* --- geometry ----------------------------------------------------------- */
int64_t sg_tensor_numel(const sg_tensor *t);
int sg_tensor_is_contiguous(const sg_tensor *t);
int sg_tensor_same_shape(const sg_tensor *a, const sg_tensor *b);
void *sg_tensor_data(const sg_tensor *t);          /* pointer to element 0 */
static inline float *sg_f32(const sg_tensor *t) { return (float *)sg_tensor_data(t); }
/* "2x3x4" (or "scalar"); buf of at least 128 bytes */
const char *sg_shape_str(const sg_tensor *t, char *buf, size_t n);
/* Error unless t is alive (not freed); `op` names the operation. */
int sg_tensor_check(const sg_tensor *t, const char *op);

/* Views (share storage). dim indices are 0-based here; the Lua layer is 1-based. */
sg_tensor *sg_tensor_view(sg_tensor *t, int ndim, const int64_t *size); /* -1 infers one dim */
sg_tensor *sg_tensor_reshape(sg_tensor *t, int ndim, const int64_t *size); /* copies if needed */
sg_tensor *sg_tensor_narrow(sg_tensor *t, int dim, int64_t start, int64_t len);
sg_tensor *sg_tensor_select(sg_tensor *t, int dim, int64_t index);
sg_tensor *sg_tensor_transpose(sg_tensor *t, int d0, int d1);
sg_tensor *sg_tensor_contiguous(sg_tensor *t); /* t itself (retained) if contiguous */
sg_tensor *sg_tensor_clone(const sg_tensor *t);

/* --- element access (CPU) ----------------------------------------------- */
int sg_tensor_offset_of(const sg_tensor *t, const int64_t *idx, int64_t *off); /* bounds-checked */
double sg_tensor_get(const sg_tensor *t, int64_t off);   /* off from sg_tensor_offset_of */
void sg_tensor_set(sg_tensor *t, int64_t off, double v);

/* --- math (float32 unless noted; same-shape operands) ------------------- */
typedef enum { SG_OP_ADD, SG_OP_SUB, SG_OP_MUL, SG_OP_DIV } sg_binop;
typedef enum {
    SG_FN_EXP, SG_FN_LOG, SG_FN_SQRT, SG_FN_ABS, SG_FN_NEG, SG_FN_RELU, SG_FN_SIGN,
    SG_FN_TANH, SG_FN_SIGMOID, SG_FN_SQUARE
} sg_unfn;

int sg_fill(sg_tensor *t, double v);                                   /* any dtype */
int sg_copy(sg_tensor *dst, const sg_tensor *src);                     /* any dtypes, any devices */
int sg_binary(sg_tensor *out, const sg_tensor *a, const sg_tensor *b, sg_binop op);
int sg_binary_scalar(sg_tensor *out, const sg_tensor *a, double s, sg_binop op, int scalar_first);
int sg_unary(sg_tensor *out, const sg_tensor *a, sg_unfn fn);
int sg_clamp(sg_tensor *out, const sg_tensor *a, double lo, double hi);
int sg_axpy(sg_tensor *y, double alpha, const sg_tensor *x);             /* y += alpha*x */
/* out = a + alpha*b (a fused update; out may alias a) */
int sg_add_scaled(sg_tensor *out, const sg_tensor *a, double alpha, const sg_tensor *b);
int sg_dot(const sg_tensor *a, const sg_tensor *b, double *out);
int sg_norm(const sg_tensor *a, double p, double *out);
int sg_isfinite_all(const sg_tensor *a, int *out);

typedef enum { SG_RED_SUM, SG_RED_MEAN, SG_RED_MAX, SG_RED_MIN, SG_RED_ARGMAX, SG_RED_ARGMIN } sg_redop;
/* Whole-tensor reduction (argmax: flat index, 0-based). */
int sg_reduce_all(const sg_tensor *a, sg_redop op, double *out);
/* Reduce along `dim`, keeping it with size 1 in `out` (resized). Arg ops write
 * 0-based indices as float32. */
int sg_reduce_dim(sg_tensor *out, const sg_tensor *a, int dim, sg_redop op);

/* out = a @ b for 2-d a (m x k), b (k x n); out resized to m x n; BLAS sgemm.
 * Transposed views are handled without copies. */
int sg_matmul(sg_tensor *out, const sg_tensor *a, const sg_tensor *b);

/* --- randomness --------------------------------------------------------- */
struct sg_rng;
int sg_tensor_uniform(sg_tensor *t, struct sg_rng *r, double lo, double hi);
int sg_tensor_normal(sg_tensor *t, struct sg_rng *r, double mean, double std);

/* --- threads ------------------------------------------------------------- */
/* One thread count for the whole runtime (OpenMP pool and OpenBLAS). */
void sg_set_num_threads(int n);
int sg_get_num_threads(void);

SG_API_END

#endif
