/*
 * tensor.c - storage, tensor geometry, views and the CPU math of tensors.
 *
 * Invariants:
 *  - a live tensor has storage != NULL; sg_tensor_free() drops the storage and
 *    leaves a "freed" tensor that every operation rejects (sg_tensor_check);
 *  - offsets and strides are in elements of the tensor's dtype;
 *  - every element a tensor can address lies inside its storage (views are
 *    bounds-checked when created).
 * Element-wise kernels have a contiguous fast path (OpenMP over the flat
 * range) and a strided path that walks an N-d index.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "device.h"
#include "error.h"
#include "rng.h"
#include "tensor.h"

/* ---- dtypes and devices ---------------------------------------------- */

size_t sg_dtype_size(sg_dtype t)
{
    switch (t) {
    case SG_F32: return 4;
    case SG_U8: return 1;
    case SG_I32: return 4;
    }
    return 0;
}

const char *sg_dtype_name(sg_dtype t)
{
    switch (t) {
    case SG_F32: return "float32";
    case SG_U8: return "uint8";
    case SG_I32: return "int32";
    }
    return "?";
}

const char *sg_device_name(sg_devtype d) { return d == SG_CUDA ? "cuda" : "cpu"; }

/* ---- storage ------------------------------------------------------------ */

sg_storage *sg_storage_new(size_t nbytes, sg_devtype dev)
{
    sg_storage *s = sg_malloc(sizeof *s, "storage header");
    if (!s)
        return NULL;
    s->nbytes = nbytes;
    s->device = dev;
    s->refcount = 1;
    s->data = sg_device_alloc(dev, nbytes);
    if (!s->data) {
        free(s);
        return NULL;
    }
    return s;
}

void sg_storage_retain(sg_storage *s) { s->refcount++; }

void sg_storage_release(sg_storage *s)
{
    if (!s || --s->refcount > 0)
        return;
    sg_device_free(s->device, s->data);
    free(s);
}

int sg_storage_swap(sg_storage *a, sg_storage *b)
{
    if (a->nbytes != b->nbytes || a->device != b->device)
        return sg_seterr("storage swap: sizes %zu (%s) and %zu (%s) differ", a->nbytes,
                         sg_device_name(a->device), b->nbytes, sg_device_name(b->device));
    void *t = a->data;
    a->data = b->data;
    b->data = t;
    return 0;
}

/* ---- construction ---------------------------------------------------------- */

int sg_shape_numel(const char *op, int ndim, const int64_t *size, int64_t *numel)
{
    if (ndim < 0 || ndim > SG_MAXDIM)
        return sg_seterr("%s: %d dimensions (at most %d)", op, ndim, SG_MAXDIM);
    /* span: the product with zero sizes counted as 1, so that the strides of
     * an empty tensor (0 x 2^62 x 2^62) cannot overflow either */
    int64_t n = 1, span = 1;
    for (int i = 0; i < ndim; i++) {
        if (size[i] < 0)
            return sg_seterr("%s: negative size %lld in dimension %d", op, (long long)size[i], i + 1);
        int64_t s = size[i] > 0 ? size[i] : 1;
        if (span > SG_MAX_NUMEL / s)
            return sg_seterr("%s: absurd size (more than %lld elements)", op, (long long)SG_MAX_NUMEL);
        span *= s;
        n *= size[i];
    }
    *numel = n;
    return 0;
}

static void set_contiguous(sg_tensor *t, int ndim, const int64_t *size)
{
    t->ndim = ndim;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t->size[i] = size[i];
        t->stride[i] = s;
        s *= size[i];
    }
}

sg_tensor *sg_tensor_new(sg_dtype dt, sg_devtype dev, int ndim, const int64_t *size)
{
    int64_t n = 0;
    if (sg_shape_numel("tensor", ndim, size, &n) != 0)
        return NULL;
    sg_tensor *t = sg_calloc(1, sizeof *t, "tensor header");
    if (!t)
        return NULL;
    t->storage = sg_storage_new((size_t)n * sg_dtype_size(dt), dev);
    if (!t->storage) {
        free(t);
        return NULL;
    }
    t->dtype = dt;
    t->refcount = 1;
    set_contiguous(t, ndim, size);
    return t;
}

sg_tensor *sg_tensor_zeros(sg_dtype dt, sg_devtype dev, int ndim, const int64_t *size)
{
    sg_tensor *t = sg_tensor_new(dt, dev, ndim, size);
    if (t && sg_fill(t, 0) != 0) {
        sg_tensor_release(t);
        return NULL;
    }
    return t;
}

static int64_t extent(int ndim, const int64_t *size, const int64_t *stride, int64_t *lo)
{
    /* one past the largest reachable element offset; *lo = smallest */
    int64_t hi = 0, l = 0;
    for (int i = 0; i < ndim; i++) {
        if (size[i] == 0) { *lo = 0; return 0; }
        int64_t d = (size[i] - 1) * stride[i];
        if (d > 0) hi += d; else l += d;
    }
    *lo = l;
    return hi + 1;
}

sg_tensor *sg_tensor_view_of(sg_storage *st, sg_dtype dt, int64_t offset, int ndim,
                             const int64_t *size, const int64_t *stride)
{
    int64_t n = 0, lo = 0;
    if (sg_shape_numel("view", ndim, size, &n) != 0)
        return NULL;
    int64_t hi = extent(ndim, size, stride, &lo);
    int64_t cap = (int64_t)(st->nbytes / sg_dtype_size(dt));
    if (n > 0 && (offset + lo < 0 || offset + hi > cap))
        return sg_seterr("view: elements %lld..%lld outside storage of %lld elements",
                         (long long)(offset + lo), (long long)(offset + hi - 1), (long long)cap),
               NULL;
    sg_tensor *t = sg_calloc(1, sizeof *t, "tensor header");
    if (!t)
        return NULL;
    sg_storage_retain(st);
    t->storage = st;
    t->dtype = dt;
    t->offset = offset;
    t->ndim = ndim;
    t->refcount = 1;
    for (int i = 0; i < ndim; i++) {
        t->size[i] = size[i];
        t->stride[i] = stride[i];
    }
    return t;
}

void sg_tensor_retain(sg_tensor *t) { t->refcount++; }

void sg_tensor_release(sg_tensor *t)
{
    if (!t || --t->refcount > 0)
        return;
    sg_storage_release(t->storage);
    free(t);
}

void sg_tensor_free(sg_tensor *t)
{
    if (t && t->storage) {
        sg_storage_release(t->storage);
        t->storage = NULL;
    }
}

int sg_tensor_resize(sg_tensor *t, int ndim, const int64_t *size)
{
    int64_t n = 0;
    if (sg_tensor_check(t, "resize") != 0 || sg_shape_numel("resize", ndim, size, &n) != 0)
        return -1;
    size_t need = (size_t)n * sg_dtype_size(t->dtype);
    size_t have = t->storage->nbytes - (size_t)t->offset * sg_dtype_size(t->dtype);
    if (need > have) {
        sg_storage *s = sg_storage_new(need, t->storage->device);
        if (!s)
            return sg_adderr("resize to %lld elements", (long long)n);
        sg_storage_release(t->storage);
        t->storage = s;
        t->offset = 0;
    }
    set_contiguous(t, ndim, size);
    return 0;
}

int sg_tensor_resize_as(sg_tensor *t, const sg_tensor *like)
{
    return sg_tensor_resize(t, like->ndim, like->size);
}

/* ---- geometry ------------------------------------------------------------------ */

int64_t sg_tensor_numel(const sg_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->size[i];
    return n;
}

int sg_tensor_is_contiguous(const sg_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->size[i] != 1 && t->stride[i] != s)
            return 0;
        s *= t->size[i];
    }
    return 1;
}

int sg_tensor_same_shape(const sg_tensor *a, const sg_tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->size[i] != b->size[i])
            return 0;
    return 1;
}

void *sg_tensor_data(const sg_tensor *t)
{
    return (char *)t->storage->data + t->offset * (int64_t)sg_dtype_size(t->dtype);
}

const char *sg_shape_str(const sg_tensor *t, char *buf, size_t n)
{
    if (t->ndim == 0) {
        snprintf(buf, n, "scalar");
        return buf;
    }
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? "x%lld" : "%lld", (long long)t->size[i]);
    return buf;
}

int sg_tensor_check(const sg_tensor *t, const char *op)
{
    if (!t)
        return sg_seterr("%s: missing tensor", op);
    if (!t->storage)
        return sg_seterr("%s: tensor was freed", op);
    return 0;
}

/* ---- views ------------------------------------------------------------------ */

static int check_dim(const sg_tensor *t, const char *op, int dim)
{
    if (dim < 0 || dim >= t->ndim) {
        char b[128];
        return sg_seterr("%s: dimension %d out of range for a %d-d tensor (%s)", op, dim + 1,
                         t->ndim, sg_shape_str(t, b, sizeof b));
    }
    return 0;
}

sg_tensor *sg_tensor_view(sg_tensor *t, int ndim, const int64_t *size_in)
{
    if (sg_tensor_check(t, "view") != 0)
        return NULL;
    if (ndim < 0 || ndim > SG_MAXDIM)
        return sg_seterr("view: %d dimensions (at most %d)", ndim, SG_MAXDIM), NULL;
    int64_t size[SG_MAXDIM], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        size[i] = size_in[i];
        if (size[i] == -1) {
            if (infer >= 0)
                return sg_seterr("view: only one dimension can be -1"), NULL;
            infer = i;
            size[i] = 0;  /* for the bound below; inferred after it */
        } else if (size[i] < 0) {
            return sg_seterr("view: negative size %lld", (long long)size[i]), NULL;
        }
    }
    /* the given sizes bounded, so that their product cannot overflow */
    if (sg_shape_numel("view", ndim, size, &known) != 0)
        return NULL;
    known = 1;
    for (int i = 0; i < ndim; i++)
        if (i != infer)
            known *= size[i];
    int64_t n = sg_tensor_numel(t);
    char b[128];
    if (infer >= 0) {
        if (known == 0 || n % known != 0)
            return sg_seterr("view: cannot infer -1 for %lld elements (%s)", (long long)n,
                             sg_shape_str(t, b, sizeof b)), NULL;
        size[infer] = n / known;
        known = n;
    }
    if (known != n)
        return sg_seterr("view: shape with %lld elements for a tensor of %lld (%s)",
                         (long long)known, (long long)n, sg_shape_str(t, b, sizeof b)), NULL;
    if (!sg_tensor_is_contiguous(t))
        return sg_seterr("view: tensor %s is not contiguous (use reshape or contiguous)",
                         sg_shape_str(t, b, sizeof b)), NULL;
    int64_t stride[SG_MAXDIM], s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        stride[i] = s;
        s *= size[i];
    }
    return sg_tensor_view_of(t->storage, t->dtype, t->offset, ndim, size, stride);
}

sg_tensor *sg_tensor_reshape(sg_tensor *t, int ndim, const int64_t *size)
{
    if (sg_tensor_check(t, "reshape") != 0)
        return NULL;
    if (sg_tensor_is_contiguous(t))
        return sg_tensor_view(t, ndim, size);
    sg_tensor *c = sg_tensor_contiguous(t);
    if (!c)
        return NULL;
    sg_tensor *v = sg_tensor_view(c, ndim, size);
    sg_tensor_release(c);
    return v;
}

sg_tensor *sg_tensor_narrow(sg_tensor *t, int dim, int64_t start, int64_t len)
{
    if (sg_tensor_check(t, "narrow") != 0 || check_dim(t, "narrow", dim) != 0)
        return NULL;
    if (start < 0 || len < 0 || start > t->size[dim] || len > t->size[dim] - start) {
        char b[128];
        /* the message's last position, saturated (start and len may be anything) */
        int64_t last = len >= 0 ? (start > INT64_MAX - len ? INT64_MAX : start + len)
                                : (start < INT64_MIN - len ? INT64_MIN : start + len);
        return sg_seterr("narrow: range %lld..%lld out of bounds for dimension %d of size %lld (%s)",
                         (long long)start + 1, (long long)last, dim + 1,
                         (long long)t->size[dim], sg_shape_str(t, b, sizeof b)), NULL;
    }
    int64_t size[SG_MAXDIM];
    memcpy(size, t->size, sizeof size);
    size[dim] = len;
    return sg_tensor_view_of(t->storage, t->dtype, t->offset + start * t->stride[dim], t->ndim,
                             size, t->stride);
}

sg_tensor *sg_tensor_select(sg_tensor *t, int dim, int64_t index)
{
    if (sg_tensor_check(t, "select") != 0 || check_dim(t, "select", dim) != 0)
        return NULL;
    if (index < 0 || index >= t->size[dim]) {
        char b[128];
        return sg_seterr("select: index %lld out of range for dimension %d of size %lld (%s)",
                         (long long)index + 1, dim + 1, (long long)t->size[dim],
                         sg_shape_str(t, b, sizeof b)), NULL;
    }
    int64_t size[SG_MAXDIM], stride[SG_MAXDIM];
    int k = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (i == dim)
            continue;
        size[k] = t->size[i];
        stride[k++] = t->stride[i];
    }
    return sg_tensor_view_of(t->storage, t->dtype, t->offset + index * t->stride[dim], k, size,
                             stride);
}

sg_tensor *sg_tensor_transpose(sg_tensor *t, int d0, int d1)
{
    if (sg_tensor_check(t, "transpose") != 0 || check_dim(t, "transpose", d0) != 0 ||
        check_dim(t, "transpose", d1) != 0)
        return NULL;
    int64_t size[SG_MAXDIM], stride[SG_MAXDIM];
    memcpy(size, t->size, sizeof size);
    memcpy(stride, t->stride, sizeof stride);
    size[d0] = t->size[d1]; size[d1] = t->size[d0];
    stride[d0] = t->stride[d1]; stride[d1] = t->stride[d0];
    return sg_tensor_view_of(t->storage, t->dtype, t->offset, t->ndim, size, stride);
}

sg_tensor *sg_tensor_clone(const sg_tensor *t)
{
    if (sg_tensor_check(t, "clone") != 0)
        return NULL;
    sg_tensor *c = sg_tensor_new(t->dtype, t->storage->device, t->ndim, t->size);
    if (c && sg_copy(c, t) != 0) {
        sg_tensor_release(c);
        return NULL;
    }
    return c;
}

sg_tensor *sg_tensor_contiguous(sg_tensor *t)
{
    if (sg_tensor_check(t, "contiguous") != 0)
        return NULL;
    if (sg_tensor_is_contiguous(t)) {
        sg_tensor_retain(t);
        return t;
    }
    return sg_tensor_clone(t);
}

/* ---- element access ---------------------------------------------------------- */

int sg_tensor_offset_of(const sg_tensor *t, const int64_t *idx, int64_t *off)
{
    int64_t o = t->offset;
    for (int i = 0; i < t->ndim; i++) {
        if (idx[i] < 0 || idx[i] >= t->size[i]) {
            char b[128];
            return sg_seterr("index: %lld out of range for dimension %d of size %lld (%s)",
                             (long long)idx[i] + 1, i + 1, (long long)t->size[i],
                             sg_shape_str(t, b, sizeof b));
        }
        o += idx[i] * t->stride[i];
    }
    *off = o;
    return 0;
}

double sg_tensor_get(const sg_tensor *t, int64_t off)
{
    switch (t->dtype) {
    case SG_F32: return ((float *)t->storage->data)[off];
    case SG_U8: return ((uint8_t *)t->storage->data)[off];
    case SG_I32: return ((int32_t *)t->storage->data)[off];
    }
    return 0;
}

void sg_tensor_set(sg_tensor *t, int64_t off, double v)
{
    /* integer dtypes saturate (NaN gives 0): converting an out-of-range double
     * to an integer is undefined behaviour (fill(-1) on uint8, 1e300 on int32) */
    switch (t->dtype) {
    case SG_F32: ((float *)t->storage->data)[off] = (float)v; break;
    case SG_U8:
        ((uint8_t *)t->storage->data)[off] = v >= 255 ? 255 : v > 0 ? (uint8_t)v : 0;
        break;
    case SG_I32:
        ((int32_t *)t->storage->data)[off] = v >= INT32_MAX ? INT32_MAX
                                             : v > INT32_MIN ? (int32_t)v
                                             : v <= INT32_MIN ? INT32_MIN : 0;
        break;
    }
}

/* ---- strided iteration ----------------------------------------------------- */

/* Walks the elements of up to three same-shape tensors in row-major order,
 * yielding each one's element offset. */
typedef struct {
    int ndim;
    int64_t size[SG_MAXDIM];
    int64_t idx[SG_MAXDIM];
    int64_t stride[3][SG_MAXDIM];
    int64_t off[3];
    int n;
} iter;

static void iter_init(iter *it, int n, const sg_tensor *const *ts)
{
    it->ndim = ts[0]->ndim;
    it->n = n;
    for (int d = 0; d < it->ndim; d++) {
        it->size[d] = ts[0]->size[d];
        it->idx[d] = 0;
    }
    for (int k = 0; k < n; k++) {
        it->off[k] = ts[k]->offset;
        for (int d = 0; d < it->ndim; d++)
            it->stride[k][d] = ts[k]->stride[d];
    }
}

static void iter_next(iter *it)
{
    for (int d = it->ndim - 1; d >= 0; d--) {
        it->idx[d]++;
        for (int k = 0; k < it->n; k++)
            it->off[k] += it->stride[k][d];
        if (it->idx[d] < it->size[d])
            return;
        for (int k = 0; k < it->n; k++)
            it->off[k] -= it->stride[k][d] * it->size[d];
        it->idx[d] = 0;
    }
}

/* ---- checks ------------------------------------------------------------------ */

static int need_cpu_f32(const char *op, const sg_tensor *t)
{
    if (sg_tensor_check(t, op) != 0)
        return -1;
    if (t->storage->device != SG_CPU)
        return sg_seterr("%s: tensor is on %s; this operation runs on cpu tensors (use :cpu())",
                         op, sg_device_name(t->storage->device));
    if (t->dtype != SG_F32)
        return sg_seterr("%s: expected a float32 tensor, got %s", op, sg_dtype_name(t->dtype));
    return 0;
}

static int need_same(const char *op, const sg_tensor *a, const sg_tensor *b)
{
    if (!sg_tensor_same_shape(a, b)) {
        char x[128], y[128];
        return sg_seterr("%s: shapes %s and %s differ", op, sg_shape_str(a, x, sizeof x),
                         sg_shape_str(b, y, sizeof y));
    }
    return 0;
}

#define PAR_THRESHOLD 32768

/* Return the device backend's `entry` applied to the arguments, or -1 naming
 * op when the backend lacks it (kernels/backend.h). Tensors off the cpu are
 * on SG_CUDA, the one other device. */
#define DEV_RETURN(op, entry, ...)                                            \
    do {                                                                      \
        const sg_backend *be_ = SG_BACKEND_FN(SG_CUDA, op, entry);            \
        return be_ ? be_->entry(__VA_ARGS__) : -1;                            \
    } while (0)

/* ---- fill and copy -------------------------------------------------------------- */

int sg_fill(sg_tensor *t, double v)
{
    if (sg_tensor_check(t, "fill") != 0)
        return -1;
    int64_t n = sg_tensor_numel(t);
    if (t->storage->device != SG_CPU) {
        if (sg_tensor_is_contiguous(t))
            return sg_device_fill(t->storage->device, sg_tensor_data(t), t->dtype, n, v);
        DEV_RETURN("fill", fill_strided, sg_tensor_data(t), t->ndim, t->size, t->stride, n, t->dtype, v);
    }
    if (sg_tensor_is_contiguous(t) && t->dtype == SG_F32) {
        float *p = sg_f32(t), f = (float)v;
#pragma omp parallel for if (n > PAR_THRESHOLD)
        for (int64_t i = 0; i < n; i++)
            p[i] = f;
        return 0;
    }
    iter it;
    const sg_tensor *ts[1] = {t};
    iter_init(&it, 1, ts);
    for (int64_t i = 0; i < n; i++, iter_next(&it))
        sg_tensor_set(t, it.off[0], v);
    return 0;
}

/* A contiguous cpu tensor with src's shape, dtype and values (src on any
 * device; a contiguous cpu src is returned retained). */
static sg_tensor *host_contiguous(const sg_tensor *src)
{
    if (src->storage->device == SG_CPU)
        return sg_tensor_contiguous((sg_tensor *)src);
    sg_tensor *c = sg_tensor_contiguous((sg_tensor *)src);  /* on the device */
    if (!c)
        return NULL;
    sg_tensor *h = sg_tensor_new(src->dtype, SG_CPU, src->ndim, src->size);
    if (!h || sg_device_copy(SG_CPU, sg_tensor_data(h), c->storage->device, sg_tensor_data(c),
                             (size_t)sg_tensor_numel(c) * sg_dtype_size(c->dtype)) != 0) {
        sg_tensor_release(h);
        sg_tensor_release(c);
        return NULL;
    }
    sg_tensor_release(c);
    return h;
}

/* sg_copy when a tensor is on the GPU and the fast case (one dtype, both
 * contiguous: one cudaMemcpy) does not apply: strided views are gathered on
 * the device, a cpu side is made contiguous on the host, and a dtype
 * conversion goes through the host (sg_copy's cpu rules). */
static int copy_general(sg_tensor *dst, const sg_tensor *src)
{
    const int64_t n = sg_tensor_numel(src);
    const sg_devtype dd = dst->storage->device, sd = src->storage->device;
    int rc = 0;
    if (dst->dtype != src->dtype) {
        sg_tensor *h = host_contiguous(src), *c = NULL;
        if (!h)
            return sg_adderr("copy: %s %s -> %s %s", sg_device_name(sd), sg_dtype_name(src->dtype),
                             sg_device_name(dd), sg_dtype_name(dst->dtype));
        c = sg_tensor_new(dst->dtype, SG_CPU, h->ndim, h->size);
        rc = c ? sg_copy(c, h) : -1;        /* conversion on the cpu */
        if (rc == 0)
            rc = sg_copy(dst, c);           /* one dtype now */
        sg_tensor_release(c);
        sg_tensor_release(h);
        return rc;
    }
    const size_t es = sg_dtype_size(src->dtype);
    if (dd == SG_CUDA && sd == SG_CUDA)
        DEV_RETURN("copy", copy_strided, sg_tensor_data(dst), dst->ndim, dst->size, dst->stride,
                                    sg_tensor_data(src), src->ndim, src->size, src->stride, n, es);
    if (dd == SG_CUDA) {                    /* cpu -> gpu */
        sg_tensor *h = sg_tensor_contiguous((sg_tensor *)src);
        if (!h)
            return -1;
        if (sg_tensor_is_contiguous(dst)) {
            rc = sg_device_copy(SG_CUDA, sg_tensor_data(dst), SG_CPU, sg_tensor_data(h),
                                (size_t)n * es);
        } else {
            sg_tensor *t = sg_tensor_new(src->dtype, SG_CUDA, h->ndim, h->size);
            rc = t ? sg_device_copy(SG_CUDA, sg_tensor_data(t), SG_CPU, sg_tensor_data(h),
                                    (size_t)n * es)
                   : -1;
            if (rc == 0)
                rc = sg_copy(dst, t);       /* gpu -> gpu, strided */
            sg_tensor_release(t);
        }
        sg_tensor_release(h);
        return rc;
    }
    /* gpu -> cpu */
    if (sg_tensor_is_contiguous(src) && sg_tensor_is_contiguous(dst))
        return sg_device_copy(SG_CPU, sg_tensor_data(dst), sd, sg_tensor_data(src), (size_t)n * es);
    sg_tensor *h = host_contiguous(src);
    if (!h)
        return -1;
    rc = sg_copy(dst, h);                   /* cpu strided */
    sg_tensor_release(h);
    return rc;
}

/* Whether the byte spans of two views of one storage intersect (a view's
 * span runs from its first to its last element, strides included). */
static int overlap(const sg_tensor *a, const sg_tensor *b)
{
    int64_t lo[2], hi[2];
    const sg_tensor *ts[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        int64_t first = ts[k]->offset, last = ts[k]->offset;
        for (int d = 0; d < ts[k]->ndim; d++) {
            int64_t e = (ts[k]->size[d] - 1) * ts[k]->stride[d];
            if (e < 0) first += e; else last += e;
        }
        const int64_t es = (int64_t)sg_dtype_size(ts[k]->dtype);
        lo[k] = first * es;
        hi[k] = (last + 1) * es;
    }
    return lo[0] < hi[1] && lo[1] < hi[0];
}

int sg_copy(sg_tensor *dst, const sg_tensor *src)
{
    if (sg_tensor_check(dst, "copy") != 0 || sg_tensor_check(src, "copy") != 0)
        return -1;
    if (sg_tensor_numel(dst) != sg_tensor_numel(src)) {
        char x[128], y[128];
        return sg_seterr("copy: %s (%lld elements) into %s (%lld elements)",
                         sg_shape_str(src, x, sizeof x), (long long)sg_tensor_numel(src),
                         sg_shape_str(dst, y, sizeof y), (long long)sg_tensor_numel(dst));
    }
    int64_t n = sg_tensor_numel(src);
    sg_devtype dd = dst->storage->device, sd = src->storage->device;
    if (dd != SG_CPU || sd != SG_CPU) {
        if (dd == SG_CUDA && dst->storage == src->storage && dst->offset == src->offset &&
            dst->dtype == src->dtype && sg_tensor_same_shape(dst, src) &&
            !memcmp(dst->stride, src->stride, (size_t)dst->ndim * sizeof dst->stride[0]))
            return 0;  /* a view onto itself */
        if (dd == SG_CUDA && dst->storage == src->storage && n > 0 && overlap(dst, src)) {
            /* cudaMemcpy and the strided kernel do not handle overlap (the CPU's
             * memmove and loops do): through a copy of the source */
            sg_tensor *tmp = sg_tensor_clone(src);
            if (!tmp)
                return -1;
            int rc = sg_copy(dst, tmp);
            sg_tensor_release(tmp);
            return rc;
        }
        if (dst->dtype == src->dtype && sg_tensor_is_contiguous(dst) && sg_tensor_is_contiguous(src))
            return sg_device_copy(dd, sg_tensor_data(dst), sd, sg_tensor_data(src),
                                  (size_t)n * sg_dtype_size(src->dtype));
        return copy_general(dst, src);
    }
    int same_shape = sg_tensor_same_shape(dst, src);
    if (dst->dtype == src->dtype && sg_tensor_is_contiguous(dst) && sg_tensor_is_contiguous(src)) {
        memmove(sg_tensor_data(dst), sg_tensor_data(src), (size_t)n * sg_dtype_size(src->dtype));
        return 0;
    }
    if (same_shape && dst->dtype == SG_F32 && src->dtype == SG_F32) {
        iter it;
        const sg_tensor *ts[2] = {dst, src};
        iter_init(&it, 2, ts);
        float *d = dst->storage->data, *s = src->storage->data;
        for (int64_t i = 0; i < n; i++, iter_next(&it))
            d[it.off[0]] = s[it.off[1]];
        return 0;
    }
    /* general: different shapes with equal counts, or dtype conversion */
    iter id, is;
    const sg_tensor *td[1] = {dst}, *tsrc[1] = {src};
    iter_init(&id, 1, td);
    iter_init(&is, 1, tsrc);
    for (int64_t i = 0; i < n; i++, iter_next(&id), iter_next(&is))
        sg_tensor_set(dst, id.off[0], sg_tensor_get(src, is.off[0]));
    return 0;
}

/* ---- element-wise math ------------------------------------------------------------ */

/* Return after out[i] = EXPR (of the floats U and V, elements i of a and b)
 * for each of the n elements, walking the three tensors' strides. */
#define STRIDED_BINARY(out, a, b, n, U, V, EXPR)                                  \
    do {                                                                          \
        iter it_;                                                                 \
        const sg_tensor *ts_[3] = {out, a, b};                                    \
        iter_init(&it_, 3, ts_);                                                  \
        float *o_ = out->storage->data;                                           \
        const float *x_ = a->storage->data, *y_ = b->storage->data;               \
        for (int64_t i_ = 0; i_ < n; i_++, iter_next(&it_)) {                     \
            const float U = x_[it_.off[1]], V = y_[it_.off[2]];                   \
            o_[it_.off[0]] = (EXPR);                                              \
        }                                                                         \
        return 0;                                                                 \
    } while (0)

/* Return after out[i] = EXPR (of the float V, element i of a) for each of
 * the n elements (out has a's shape): a parallel loop over contiguous
 * tensors, else a strided walk. */
#define MAP_UNARY(out, a, n, V, EXPR)                                             \
    do {                                                                          \
        if (sg_tensor_is_contiguous(out) && sg_tensor_is_contiguous(a)) {         \
            float *o_ = sg_f32(out);                                              \
            const float *x_ = sg_f32(a);                                          \
            _Pragma("omp parallel for if (n > PAR_THRESHOLD)")                    \
            for (int64_t i_ = 0; i_ < n; i_++) {                                  \
                const float V = x_[i_];                                           \
                o_[i_] = (EXPR);                                                  \
            }                                                                     \
            return 0;                                                             \
        }                                                                         \
        iter it_;                                                                 \
        const sg_tensor *ts_[2] = {out, a};                                       \
        iter_init(&it_, 2, ts_);                                                  \
        float *o_ = out->storage->data;                                           \
        const float *x_ = a->storage->data;                                       \
        for (int64_t i_ = 0; i_ < n; i_++, iter_next(&it_)) {                     \
            const float V = x_[it_.off[1]];                                       \
            o_[it_.off[0]] = (EXPR);                                              \
        }                                                                         \
        return 0;                                                                 \
    } while (0)

static inline float apply_bin(float x, float y, sg_binop op)
{
    switch (op) {
    case SG_OP_ADD: return x + y;
    case SG_OP_SUB: return x - y;
    case SG_OP_MUL: return x * y;
    case SG_OP_DIV: return x / y;
    }
    return 0;
}

static const char *binop_name(sg_binop op)
{
    static const char *n[] = {"add", "sub", "mul", "div"};
    return n[op];
}

/* out must be the shape of a (resized if it is a fresh workspace) */
static int prepare_out(const char *op, sg_tensor *out, const sg_tensor *a)
{
    if (need_cpu_f32(op, out) != 0)
        return -1;
    if (!sg_tensor_same_shape(out, a)) {
        if (out != a && sg_tensor_is_contiguous(out) && out->storage->refcount == 1)
            return sg_tensor_resize_as(out, a);
        return need_same(op, out, a);
    }
    return 0;
}

/* A 2-d view usable by sgemm and cuBLAS: row-major with unit column stride, or its transpose. */
static int gemm_layout(const sg_tensor *t, CBLAS_TRANSPOSE *tr, int64_t *ld)
{
    if (t->stride[1] == 1 && t->stride[0] >= (t->size[1] > 1 ? t->size[1] : 1)) {
        *tr = CblasNoTrans;
        *ld = t->stride[0] > 0 ? t->stride[0] : 1;
        return 1;
    }
    if (t->stride[0] == 1 && t->stride[1] >= (t->size[0] > 1 ? t->size[0] : 1)) {
        *tr = CblasTrans;
        *ld = t->stride[1] > 0 ? t->stride[1] : 1;
        return 1;
    }
    return 0;
}

/* matmul: a (m x k) and b (k x n) multiply, out shares no storage with
 * them; out is resized to m x n. */
static int matmul_prepare_out(sg_tensor *out, const sg_tensor *a, const sg_tensor *b)
{
    char x[128], y[128];
    if (a->ndim != 2 || b->ndim != 2 || a->size[1] != b->size[0])
        return sg_seterr("matmul: shapes %s and %s do not multiply (need m x k and k x n)",
                         sg_shape_str(a, x, sizeof x), sg_shape_str(b, y, sizeof y));
    if (out == a || out == b || out->storage == a->storage || out->storage == b->storage)
        return sg_seterr("matmul: output must not share storage with an input");
    int64_t osz[2] = {a->size[0], b->size[1]};
    return sg_tensor_resize(out, 2, osz) != 0 ? -1 : 0;
}

/* ---- device dispatch -------------------------------------------------------------
 * Contiguous float32 tensors on the GPU go to the CUDA backend's table
 * (kernels/backend.h); the CPU code below is the host's own. Any operand on the GPU sends the operation
 * here; operands on two devices are an error naming both. */
static int is_cuda(const sg_tensor *t)
{
    return t && t->storage && t->storage->device == SG_CUDA;
}

static int cuda_operand(const char *op, const sg_tensor *t, const sg_tensor *first)
{
    char b[128];
    if (sg_tensor_check(t, op) != 0)
        return -1;
    if (t->storage->device != SG_CUDA)
        return sg_seterr("%s: tensors on different devices (%s and %s); move one with :cuda() "
                         "or :cpu()", op, first ? sg_device_name(first->storage->device) : "cuda",
                         sg_device_name(t->storage->device));
    if (t->dtype != SG_F32)
        return sg_seterr("%s: expected a float32 tensor, got %s (cuda)", op, sg_dtype_name(t->dtype));
    if (!sg_tensor_is_contiguous(t))
        return sg_seterr("%s: cuda tensor %s is not contiguous (use :contiguous())", op,
                         sg_shape_str(t, b, sizeof b));
    return 0;
}

/* Check up to three operands (NULL = absent); the first non-NULL names the device. */
static int cuda_operands(const char *op, const sg_tensor *a, const sg_tensor *b, const sg_tensor *c)
{
    const sg_tensor *ts[3] = {a, b, c}, *first = is_cuda(a) ? a : (is_cuda(b) ? b : c);
    for (int i = 0; i < 3; i++)
        if (ts[i] && cuda_operand(op, ts[i], first) != 0)
            return -1;
    return 0;
}

static int cuda_prepare_out(const char *op, sg_tensor *out, const sg_tensor *a)
{
    if (sg_tensor_check(out, op) != 0)
        return -1;
    if (out->storage->device != SG_CUDA)  /* the devices first: a shape message would mislead */
        return cuda_operand(op, out, a);
    if (!sg_tensor_same_shape(out, a)) {
        if (out != a && sg_tensor_is_contiguous(out) && out->storage->refcount == 1 &&
            out->storage->device == SG_CUDA) {
            if (sg_tensor_resize_as(out, a) != 0)
                return -1;
        } else {
            return need_same(op, out, a);
        }
    }
    return cuda_operand(op, out, a);
}

static int cuda_binary(sg_tensor *out, const sg_tensor *a, const sg_tensor *b, sg_binop op)
{
    const char *name = binop_name(op);
    if (cuda_operands(name, a, b, NULL) != 0 || need_same(name, a, b) != 0 ||
        cuda_prepare_out(name, out, a) != 0)
        return -1;
    DEV_RETURN(name, binary, sg_f32(out), sg_f32(a), sg_f32(b), sg_tensor_numel(a), op);
}

static int cuda_binary_scalar(sg_tensor *out, const sg_tensor *a, double s, sg_binop op,
                              int scalar_first)
{
    const char *name = binop_name(op);
    if (cuda_operands(name, a, NULL, NULL) != 0 || cuda_prepare_out(name, out, a) != 0)
        return -1;
    DEV_RETURN(name, binary_scalar, sg_f32(out), sg_f32(a), (float)s, sg_tensor_numel(a), op,
                                 scalar_first);
}

static int cuda_unary(sg_tensor *out, const sg_tensor *a, sg_unfn fn)
{
    if (cuda_operands("unary", a, NULL, NULL) != 0 || cuda_prepare_out("unary", out, a) != 0)
        return -1;
    DEV_RETURN("unary", unary, sg_f32(out), sg_f32(a), sg_tensor_numel(a), fn);
}

static int cuda_clamp(sg_tensor *out, const sg_tensor *a, double lo, double hi)
{
    if (cuda_operands("clamp", a, NULL, NULL) != 0 || cuda_prepare_out("clamp", out, a) != 0)
        return -1;
    if (lo > hi)
        return sg_seterr("clamp: min %g is greater than max %g", lo, hi);
    DEV_RETURN("clamp", clamp, sg_f32(out), sg_f32(a), sg_tensor_numel(a), (float)lo, (float)hi);
}

static int cuda_add_scaled(sg_tensor *out, const sg_tensor *a, double alpha, const sg_tensor *b)
{
    if (cuda_operands("add_scaled", a, b, NULL) != 0 || need_same("add_scaled", a, b) != 0 ||
        cuda_prepare_out("add_scaled", out, a) != 0)
        return -1;
    DEV_RETURN("add_scaled", vec_axpy, sg_f32(a), sg_f32(b), sg_f32(out), sg_tensor_numel(a), (float)alpha);
}

static int cuda_dot(const sg_tensor *a, const sg_tensor *b, double *out)
{
    if (cuda_operands("dot", a, b, NULL) != 0)
        return -1;
    if (sg_tensor_numel(a) != sg_tensor_numel(b)) {
        char x[128], y[128];
        return sg_seterr("dot: %s and %s have different numbers of elements (cuda)",
                         sg_shape_str(a, x, sizeof x), sg_shape_str(b, y, sizeof y));
    }
    DEV_RETURN("dot", dot, sg_f32(a), sg_f32(b), sg_tensor_numel(a), out);
}

static int dev_norm(const sg_tensor *a, double p, double *out)
{
    DEV_RETURN("norm", norm, sg_f32(a), sg_tensor_numel(a), p, out);
}

static int dev_isfinite(const sg_tensor *a, int *out)
{
    DEV_RETURN("isfinite", all_finite, sg_f32(a), sg_tensor_numel(a), out);
}

static int cuda_matmul(sg_tensor *out, const sg_tensor *a, const sg_tensor *b)
{
    char x[128], y[128];
    if (sg_tensor_check(a, "matmul") != 0 || sg_tensor_check(b, "matmul") != 0 ||
        sg_tensor_check(out, "matmul") != 0)
        return -1;
    const sg_tensor *first = is_cuda(a) ? a : (is_cuda(b) ? b : out);
    const sg_tensor *ts[3] = {a, b, out};
    for (int i = 0; i < 3; i++) {
        if (ts[i]->storage->device != SG_CUDA)
            return sg_seterr("matmul: tensors on different devices (%s and %s); move one with "
                             ":cuda() or :cpu()", sg_device_name(first->storage->device),
                             sg_device_name(ts[i]->storage->device));
        if (ts[i]->dtype != SG_F32)
            return sg_seterr("matmul: expected a float32 tensor, got %s (cuda)",
                             sg_dtype_name(ts[i]->dtype));
    }
    if (matmul_prepare_out(out, a, b) != 0)
        return -1;
    int64_t m = a->size[0], k = a->size[1], n = b->size[1];
    if (m == 0 || n == 0)
        return 0;
    if (k == 0)
        return sg_fill(out, 0);
    CBLAS_TRANSPOSE ta, tb;
    int64_t lda, ldb;
    if (!gemm_layout(a, &ta, &lda))
        return sg_seterr("matmul: cuda operand %s has a layout cuBLAS cannot read (use "
                         ":contiguous())", sg_shape_str(a, x, sizeof x));
    if (!gemm_layout(b, &tb, &ldb))
        return sg_seterr("matmul: cuda operand %s has a layout cuBLAS cannot read (use "
                         ":contiguous())", sg_shape_str(b, y, sizeof y));
    /* cuBLAS gets 16-byte aligned matrices (its vectorized kernels want
     * them; the CUDA emulator insists): a view that starts elsewhere is
     * copied first, an output view computed into a copy */
    sg_tensor *ca = NULL, *cb = NULL, *co = NULL;
    int rc = 0;
    if ((uintptr_t)sg_f32(a) % 16 != 0) {
        if (!(ca = sg_tensor_clone(a)) || !gemm_layout(ca, &ta, &lda))
            rc = -1;
        a = ca;
    }
    if (rc == 0 && (uintptr_t)sg_f32(b) % 16 != 0) {
        if (!(cb = sg_tensor_clone(b)) || !gemm_layout(cb, &tb, &ldb))
            rc = -1;
        b = cb;
    }
    sg_tensor *o = out;
    if (rc == 0 && (uintptr_t)sg_f32(out) % 16 != 0) {
        const int64_t size[2] = {m, n};
        if (!(co = sg_tensor_new(SG_F32, SG_CUDA, 2, size)))
            rc = -1;
        o = co;
    }
    const sg_backend *be = SG_BACKEND_FN(SG_CUDA, "matmul", gemm);
    if (!be)
        rc = -1;
    if (rc == 0)
        rc = be->gemm(ta == CblasTrans, tb == CblasTrans, m, n, k, sg_f32(a), lda, sg_f32(b),
                          ldb, sg_f32(o), n);
    if (rc == 0 && co)
        rc = sg_copy(out, co);
    if (rc != 0)
        sg_adderr("matmul %lldx%lld @ %lldx%lld (cuda)", (long long)m, (long long)k,
                  (long long)k, (long long)n);
    sg_tensor_release(ca);
    sg_tensor_release(cb);
    sg_tensor_release(co);
    return rc;
}

int sg_binary(sg_tensor *out, const sg_tensor *a, const sg_tensor *b, sg_binop op)
{
    if (is_cuda(a) || is_cuda(b) || is_cuda(out))
        return cuda_binary(out, a, b, op);
    const char *name = binop_name(op);
    if (need_cpu_f32(name, a) != 0 || need_cpu_f32(name, b) != 0 || need_same(name, a, b) != 0 ||
        prepare_out(name, out, a) != 0)
        return -1;
    int64_t n = sg_tensor_numel(a);
    if (sg_tensor_is_contiguous(out) && sg_tensor_is_contiguous(a) && sg_tensor_is_contiguous(b)) {
        float *o = sg_f32(out);
        const float *x = sg_f32(a), *y = sg_f32(b);
#pragma omp parallel for if (n > PAR_THRESHOLD)
        for (int64_t i = 0; i < n; i++)
            o[i] = apply_bin(x[i], y[i], op);
        return 0;
    }
    STRIDED_BINARY(out, a, b, n, u, v, apply_bin(u, v, op));
}

int sg_binary_scalar(sg_tensor *out, const sg_tensor *a, double s, sg_binop op, int scalar_first)
{
    if (is_cuda(a) || is_cuda(out))
        return cuda_binary_scalar(out, a, s, op, scalar_first);
    const char *name = binop_name(op);
    if (need_cpu_f32(name, a) != 0 || prepare_out(name, out, a) != 0)
        return -1;
    int64_t n = sg_tensor_numel(a);
    float f = (float)s;
    MAP_UNARY(out, a, n, v, scalar_first ? apply_bin(f, v, op) : apply_bin(v, f, op));
}

static inline float apply_un(float x, sg_unfn fn)
{
    switch (fn) {
    case SG_FN_EXP: return expf(x);
    case SG_FN_LOG: return logf(x);
    case SG_FN_SQRT: return sqrtf(x);
    case SG_FN_ABS: return fabsf(x);
    case SG_FN_NEG: return -x;
    case SG_FN_RELU: return x > 0 ? x : 0;
    case SG_FN_SIGN: return (float)((x > 0) - (x < 0));
    case SG_FN_TANH: return tanhf(x);
    case SG_FN_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case SG_FN_SQUARE: return x * x;
    }
    return 0;
}

int sg_unary(sg_tensor *out, const sg_tensor *a, sg_unfn fn)
{
    if (is_cuda(a) || is_cuda(out))
        return cuda_unary(out, a, fn);
    if (need_cpu_f32("unary", a) != 0 || prepare_out("unary", out, a) != 0)
        return -1;
    int64_t n = sg_tensor_numel(a);
    MAP_UNARY(out, a, n, v, apply_un(v, fn));
}

int sg_clamp(sg_tensor *out, const sg_tensor *a, double lo, double hi)
{
    if (is_cuda(a) || is_cuda(out))
        return cuda_clamp(out, a, lo, hi);
    if (need_cpu_f32("clamp", a) != 0 || prepare_out("clamp", out, a) != 0)
        return -1;
    if (lo > hi)
        return sg_seterr("clamp: min %g is greater than max %g", lo, hi);
    int64_t n = sg_tensor_numel(a);
    float l = (float)lo, h = (float)hi;
    iter it;
    const sg_tensor *ts[2] = {out, a};
    iter_init(&it, 2, ts);
    float *o = out->storage->data;
    const float *x = a->storage->data;
    for (int64_t i = 0; i < n; i++, iter_next(&it)) {
        float v = x[it.off[1]];
        o[it.off[0]] = v < l ? l : (v > h ? h : v);
    }
    return 0;
}

int sg_add_scaled(sg_tensor *out, const sg_tensor *a, double alpha, const sg_tensor *b)
{
    if (is_cuda(a) || is_cuda(b) || is_cuda(out))
        return cuda_add_scaled(out, a, alpha, b);
    if (need_cpu_f32("add_scaled", a) != 0 || need_cpu_f32("add_scaled", b) != 0 ||
        need_same("add_scaled", a, b) != 0 || prepare_out("add_scaled", out, a) != 0)
        return -1;
    int64_t n = sg_tensor_numel(a);
    float al = (float)alpha;
    if (sg_tensor_is_contiguous(out) && sg_tensor_is_contiguous(a) && sg_tensor_is_contiguous(b)) {
        /* the flat-vector update of the SA move (one axpy for both) */
        const sg_backend *be = SG_BACKEND_FN(SG_CPU, "add_scaled", vec_axpy);
        return be ? be->vec_axpy(sg_f32(a), sg_f32(b), sg_f32(out), n, al) : -1;
    }
    STRIDED_BINARY(out, a, b, n, u, v, u + al * v);
}

int sg_axpy(sg_tensor *y, double alpha, const sg_tensor *x)
{
    return sg_add_scaled(y, y, alpha, x);
}

/* ---- reductions ---------------------------------------------------------------- */

int sg_dot(const sg_tensor *a, const sg_tensor *b, double *out)
{
    if (is_cuda(a) || is_cuda(b))
        return cuda_dot(a, b, out);
    if (need_cpu_f32("dot", a) != 0 || need_cpu_f32("dot", b) != 0)
        return -1;
    if (sg_tensor_numel(a) != sg_tensor_numel(b)) {
        char x[128], y[128];
        return sg_seterr("dot: %s and %s have different numbers of elements",
                         sg_shape_str(a, x, sizeof x), sg_shape_str(b, y, sizeof y));
    }
    int64_t n = sg_tensor_numel(a);
    double s = 0;
    if (sg_tensor_is_contiguous(a) && sg_tensor_is_contiguous(b)) {
        const float *x = sg_f32(a), *y = sg_f32(b);
#pragma omp parallel for reduction(+ : s) if (n > PAR_THRESHOLD)
        for (int64_t i = 0; i < n; i++)
            s += (double)x[i] * y[i];
    } else {
        sg_tensor *ca = sg_tensor_contiguous((sg_tensor *)a), *cb = sg_tensor_contiguous((sg_tensor *)b);
        if (!ca || !cb) {
            sg_tensor_release(ca);
            sg_tensor_release(cb);
            return -1;
        }
        int rc = sg_dot(ca, cb, &s);
        sg_tensor_release(ca);
        sg_tensor_release(cb);
        if (rc)
            return rc;
    }
    *out = s;
    return 0;
}

int sg_norm(const sg_tensor *a, double p, double *out)
{
    if (is_cuda(a))
        return cuda_operands("norm", a, NULL, NULL) ? -1
               : dev_norm(a, p, out);
    if (need_cpu_f32("norm", a) != 0)
        return -1;
    if (!(p > 0))
        return sg_seterr("norm: p must be positive, got %g", p);
    int64_t n = sg_tensor_numel(a);
    iter it;
    const sg_tensor *ts[1] = {a};
    iter_init(&it, 1, ts);
    const float *x = a->storage->data;
    double s = 0;
    if (isinf(p)) {
        for (int64_t i = 0; i < n; i++, iter_next(&it))
            s = fmax(s, fabs(x[it.off[0]]));
        *out = s;
        return 0;
    }
    for (int64_t i = 0; i < n; i++, iter_next(&it)) {
        double v = fabs(x[it.off[0]]);
        s += p == 2 ? v * v : (p == 1 ? v : pow(v, p));
    }
    *out = p == 2 ? sqrt(s) : (p == 1 ? s : pow(s, 1.0 / p));
    return 0;
}

int sg_isfinite_all(const sg_tensor *a, int *out)
{
    if (is_cuda(a))
        return cuda_operands("isfinite", a, NULL, NULL) ? -1
               : dev_isfinite(a, out);
    if (need_cpu_f32("isfinite", a) != 0)
        return -1;
    int64_t n = sg_tensor_numel(a);
    iter it;
    const sg_tensor *ts[1] = {a};
    iter_init(&it, 1, ts);
    const float *x = a->storage->data;
    for (int64_t i = 0; i < n; i++, iter_next(&it))
        if (!isfinite(x[it.off[0]])) {
            *out = 0;
            return 0;
        }
    *out = 1;
    return 0;
}

static const char *redop_name(sg_redop op)
{
    static const char *n[] = {"sum", "mean", "max", "min", "argmax", "argmin"};
    return n[op];
}

/* Reduce n values at x[0], x[st], ... */
static double reduce_run(const float *x, int64_t n, int64_t st, sg_redop op)
{
    double acc;
    int64_t best = 0;
    switch (op) {
    case SG_RED_SUM:
    case SG_RED_MEAN:
        acc = 0;
        for (int64_t i = 0; i < n; i++)
            acc += x[i * st];
        return op == SG_RED_MEAN ? acc / (double)n : acc;
    case SG_RED_MAX:
    case SG_RED_ARGMAX:
        for (int64_t i = 1; i < n; i++)
            if (x[i * st] > x[best * st] || (isnan(x[i * st]) && !isnan(x[best * st])))
                best = i;
        return op == SG_RED_MAX ? x[best * st] : (double)best;
    case SG_RED_MIN:
    case SG_RED_ARGMIN:
        for (int64_t i = 1; i < n; i++)
            if (x[i * st] < x[best * st] || (isnan(x[i * st]) && !isnan(x[best * st])))
                best = i;
        return op == SG_RED_MIN ? x[best * st] : (double)best;
    }
    return 0;
}

int sg_reduce_all(const sg_tensor *a, sg_redop op, double *out)
{
    if (is_cuda(a)) {
        if (cuda_operands(redop_name(op), a, NULL, NULL) != 0)
            return -1;
        if (sg_tensor_numel(a) == 0 && op != SG_RED_SUM)
            return sg_seterr("%s: empty tensor", redop_name(op));
        DEV_RETURN(redop_name(op), reduce, sg_f32(a), sg_tensor_numel(a), op, out);
    }
    const char *name = redop_name(op);
    if (need_cpu_f32(name, a) != 0)
        return -1;
    int64_t n = sg_tensor_numel(a);
    if (n == 0 && op != SG_RED_SUM)
        return sg_seterr("%s: empty tensor", name);
    sg_tensor *c = sg_tensor_contiguous((sg_tensor *)a);
    if (!c)
        return -1;
    if (op == SG_RED_SUM || op == SG_RED_MEAN) {
        const float *x = sg_f32(c);
        double s = 0;
#pragma omp parallel for reduction(+ : s) if (n > PAR_THRESHOLD)
        for (int64_t i = 0; i < n; i++)
            s += x[i];
        *out = op == SG_RED_MEAN ? s / (double)n : s;
    } else {
        *out = reduce_run(sg_f32(c), n, 1, op);
    }
    sg_tensor_release(c);
    return 0;
}

int sg_reduce_dim(sg_tensor *out, const sg_tensor *a, int dim, sg_redop op)
{
    const char *name = redop_name(op);
    if (need_cpu_f32(name, a) != 0 || need_cpu_f32(name, out) != 0 || check_dim(a, name, dim) != 0)
        return -1;
    if (a->size[dim] == 0 && op != SG_RED_SUM)
        return sg_seterr("%s: dimension %d is empty", name, dim + 1);
    if (out == a)
        return sg_seterr("%s: output must not be the input", name);
    int64_t size[SG_MAXDIM];
    memcpy(size, a->size, sizeof size);
    size[dim] = 1;
    if (sg_tensor_resize(out, a->ndim, size) != 0)
        return -1;
    /* iterate over all positions with index 0 along dim */
    sg_tensor *base = sg_tensor_narrow((sg_tensor *)a, dim, 0, 1);
    if (!base)
        return -1;
    int64_t m = sg_tensor_numel(base), len = a->size[dim], st = a->stride[dim];
    iter it;
    const sg_tensor *ts[1] = {base};
    iter_init(&it, 1, ts);
    const float *x = a->storage->data;
    float *o = sg_f32(out);
    for (int64_t i = 0; i < m; i++, iter_next(&it))
        o[i] = (float)reduce_run(x + it.off[0], len, st, op);
    sg_tensor_release(base);
    return 0;
}

/* ---- matmul ----------------------------------------------------------------------- */

int sg_matmul(sg_tensor *out, const sg_tensor *a, const sg_tensor *b)
{
    if (is_cuda(a) || is_cuda(b) || is_cuda(out))
        return cuda_matmul(out, a, b);
    if (need_cpu_f32("matmul", a) != 0 || need_cpu_f32("matmul", b) != 0 ||
        need_cpu_f32("matmul", out) != 0)
        return -1;
    if (matmul_prepare_out(out, a, b) != 0)
        return -1;
    int64_t m = a->size[0], k = a->size[1], n = b->size[1];
    sg_tensor *ca = NULL, *cb = NULL;
    CBLAS_TRANSPOSE ta, tb;
    int64_t lda, ldb;
    if (!gemm_layout(a, &ta, &lda)) {
        if (!(ca = sg_tensor_contiguous((sg_tensor *)a)))
            return -1;
        a = ca; ta = CblasNoTrans; lda = k > 0 ? k : 1;
    }
    if (!gemm_layout(b, &tb, &ldb)) {
        if (!(cb = sg_tensor_contiguous((sg_tensor *)b))) {
            sg_tensor_release(ca);
            return -1;
        }
        b = cb; tb = CblasNoTrans; ldb = n > 0 ? n : 1;
    }
    if (m > 0 && n > 0) {
        if (k == 0)
            sg_fill(out, 0);
        else
            cblas_sgemm(CblasRowMajor, ta, tb, (int)m, (int)n, (int)k, 1.0f, sg_f32(a), (int)lda,
                        sg_f32(b), (int)ldb, 0.0f, sg_f32(out), (int)(n > 0 ? n : 1));
    }
    sg_tensor_release(ca);
    sg_tensor_release(cb);
    return 0;
}

/* ---- randomness -------------------------------------------------------------------- */

/* Fill t (any strides) with lo + (hi - lo) * U[0,1) or mean + std * N(0,1):
 * element i in row-major order takes what the i-th sequential
 * sg_rng_uniformf / sg_rng_normal call would give, the draw at word w + i
 * (w + 4i for a normal) of r's stream, w its position. Being a function of
 * i, a contiguous fill runs in parallel chunks, and a GPU fill as a kernel
 * (core/rng_draw.h), with the same values on both devices (a GPU normal
 * within an ulp: rng_draw.h); r then moves past the words used. */
static int fill_random(sg_tensor *t, sg_rng *r, double a, double b, int normal)
{
    const uint64_t per = normal ? 4 : 1;
    if (t && t->storage && t->storage->device == SG_CUDA && t->dtype == SG_F32) {
        int64_t n = sg_tensor_numel(t);
        uint64_t b0;
        unsigned w0;
        sg_rng_where(r, &b0, &w0);
        const sg_backend *be = SG_BACKEND_FN(SG_CUDA, normal ? "normal" : "uniform", fill_random);
        if (!be || be->fill_random(sg_tensor_data(t), t->ndim, t->size, t->stride, n, r->seed,
                                   r->stream, b0, w0, a, b, normal) != 0)
            return -1;
        sg_rng_skip(r, per * (uint64_t)n);
        return 0;
    }
    if (need_cpu_f32(normal ? "normal" : "uniform", t) != 0)
        return -1;
    int64_t n = sg_tensor_numel(t);
    float *x = t->storage->data;
    if (sg_tensor_is_contiguous(t)) {
        /* chunks of 4096 values, each drawn sequentially by a copy of r moved
         * to the chunk's first word (a Philox block serves four words) */
        x += t->offset;
        const int64_t chunk = 4096, nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (normal ? nchunks > 1 : n > PAR_THRESHOLD)
        for (int64_t c = 0; c < nchunks; c++) {
            sg_rng g = *r;
            sg_rng_skip(&g, per * (uint64_t)(c * chunk));
            const int64_t end = c * chunk + chunk < n ? c * chunk + chunk : n;
            for (int64_t i = c * chunk; i < end; i++)
                x[i] = normal ? (float)(a + b * sg_rng_normal(&g))
                              : (float)(a + (b - a) * sg_rng_uniformf(&g));
        }
    } else {
        iter it;
        const sg_tensor *ts[1] = {t};
        iter_init(&it, 1, ts);
        for (int64_t i = 0; i < n; i++, iter_next(&it))
            x[it.off[0]] = normal ? (float)(a + b * sg_rng_normal(r))
                                  : (float)(a + (b - a) * sg_rng_uniformf(r));
        return 0;
    }
    sg_rng_skip(r, per * (uint64_t)n);
    return 0;
}

int sg_tensor_uniform(sg_tensor *t, sg_rng *r, double lo, double hi)
{
    return fill_random(t, r, lo, hi, 0);
}

int sg_tensor_normal(sg_tensor *t, sg_rng *r, double mean, double std)
{
    return fill_random(t, r, mean, std, 1);
}

/* ---- threads ----------------------------------------------------------------------- */

void openblas_set_num_threads(int n);

void sg_set_num_threads(int n)
{
    if (n < 1)
        n = 1;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int sg_get_num_threads(void) { return omp_get_max_threads(); }
