/*
 * data_h5.c - image datasets a user brings as HDF5 files.
 *
 * Images: a uint8 or floating-point dataset, rank 4 (N x C x H x W, or
 * N x H x W x C with layout NHWC) or rank 3 (N x H x W, one channel).
 * Labels: an integer dataset of N entries (rank 1, or N x 1).
 * Dataset names are given by the caller ("train/images", ...).
 * HDF5's own error printing is switched off while we work (and restored), and
 * its innermost message is folded into ours. Every size is checked before
 * the pixel buffer is allocated.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "data.h"
#include "error.h"

/* --- HDF5 error handling ---------------------------------------------------- */
typedef struct {
    H5E_auto2_t func;
    void *data;
} h5_quiet;

static void quiet_on(h5_quiet *q)
{
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void quiet_off(const h5_quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->func, q->data); }

static herr_t first_msg(unsigned n, const H5E_error2_t *e, void *ud)
{
    char *out = ud;
    if (n == 0 && e->desc)
        snprintf(out, 256, "%s", e->desc);
    return 0;
}

/* The innermost HDF5 message of the current error stack ("" if none). */
static const char *h5_msg(char buf[256])
{
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, first_msg, buf);
    H5Eclear2(H5E_DEFAULT);
    return buf;
}

/* --- listing a file's contents for "not found" messages -------------------- */
typedef struct {
    char list[512];
    int count;
} h5_names;

/* Stops after the names the message shows: H5Lvisit recurses into each
 * group after its link's callback, so stopping also bounds the recursion (a
 * corrupt file whose groups nest without end overflowed the stack). */
static herr_t add_name(hid_t g, const char *name, const H5L_info_t *info, void *ud)
{
    h5_names *nm = ud;
    if (nm->count > 12)
        return 1;
    size_t len = strlen(nm->list);
    if (nm->count < 12 && len + strlen(name) + 3 < sizeof nm->list)
        snprintf(nm->list + len, sizeof nm->list - len, "%s%s", nm->count ? ", " : "", name);
    else if (nm->count == 12 && len + 6 < sizeof nm->list)
        snprintf(nm->list + len, sizeof nm->list - len, ", ...");
    nm->count++;
    return 0;
}

static const char *list_names(hid_t f, h5_names *nm)
{
    nm->list[0] = '\0';
    nm->count = 0;
    H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, add_name, nm);
    H5Eclear2(H5E_DEFAULT);
    return nm->count ? nm->list : "(none)";
}

/* --- reading ----------------------------------------------------------------- */
static hid_t open_dataset(hid_t f, const char *dset, const char *what, const char *role)
{
    /* walk the path so a missing group does not surface as an HDF5 error */
    char part[256];
    const char *p = dset;
    while (*p == '/')
        p++;
    while (1) {
        const char *slash = strchr(p, '/');
        if (!slash)
            break;
        size_t k = (size_t)(slash - dset);
        if (k >= sizeof part)
            return sg_seterr("hdf5 data: %s: dataset name too long: %s (cpu)", what, dset);
        memcpy(part, dset, k);
        part[k] = '\0';
        if (H5Lexists(f, part, H5P_DEFAULT) <= 0)
            goto missing;
        p = slash + 1;
    }
    if (*p == '\0' || H5Lexists(f, dset, H5P_DEFAULT) <= 0)
        goto missing;
    hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
    if (d < 0) {
        char m[256];
        return sg_seterr("hdf5 data: %s: '%s' (the %s) is not a readable dataset: %s (cpu)",
                         what, dset, role, h5_msg(m));
    }
    return d;
missing: {
        h5_names nm;
        H5Eclear2(H5E_DEFAULT);
        return sg_seterr("hdf5 data: %s has no dataset '%s' (the %s); objects in the file: %s; "
                         "set the dataset names with images=/labels= (cpu)", what, dset, role,
                         list_names(f, &nm));
    }
}

static int get_dims(hid_t d, hsize_t *dims, int maxrank, const char *what, const char *dset)
{
    hid_t sp = H5Dget_space(d);
    if (sp < 0)
        return sg_seterr("hdf5 data: %s: cannot read the dataspace of '%s' (cpu)", what, dset);
    int rank = H5Sget_simple_extent_ndims(sp);
    if (rank >= 0 && rank <= maxrank)
        H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    if (rank < 0)
        return sg_seterr("hdf5 data: %s: '%s' has no simple dataspace (cpu)", what, dset);
    if (rank > maxrank)
        return sg_seterr("hdf5 data: %s: '%s' has rank %d, at most %d allowed (cpu)", what,
                         dset, rank, maxrank);
    return rank;
}

static sg_dataset *load(hid_t f, const sg_h5data_opts *o, const char *what, const char *name)
{
    const char *iname = o->images ? o->images : "images";
    const char *lname = o->labels ? o->labels : "labels";
    sg_dataset *ds = NULL;
    void *tmp = NULL;
    hid_t di = -1, dl = -1, ti = -1, tl = -1;
    char m[256];

    if ((di = open_dataset(f, iname, what, "images")) < 0)
        goto done;
    if ((dl = open_dataset(f, lname, what, "labels")) < 0)
        goto done;
    ti = H5Dget_type(di);
    tl = H5Dget_type(dl);
    if (ti < 0 || tl < 0) {
        sg_seterr("hdf5 data: %s: cannot read the element types: %s (cpu)", what, h5_msg(m));
        goto done;
    }
    H5T_class_t ci = H5Tget_class(ti), cl = H5Tget_class(tl);
    sg_data_dtype dt;
    if (ci == H5T_INTEGER && H5Tget_size(ti) == 1 && H5Tget_sign(ti) == H5T_SGN_NONE)
        dt = SG_DATA_U8;
    else if (ci == H5T_FLOAT)
        dt = SG_DATA_F32;
    else {
        sg_seterr("hdf5 data: %s: images '%s' must be uint8 or floating point, found "
                  "%s of %zu bytes (cpu)", what, iname,
                  ci == H5T_INTEGER ? (H5Tget_sign(ti) == H5T_SGN_NONE ? "unsigned integers"
                                                                       : "signed integers")
                                    : "a non-numeric type", H5Tget_size(ti));
        goto done;
    }
    if (cl != H5T_INTEGER) {
        sg_seterr("hdf5 data: %s: labels '%s' must be integers (cpu)", what, lname);
        goto done;
    }

    hsize_t id[4] = {0}, ld[2] = {0};
    int ri = get_dims(di, id, 4, what, iname);
    int rl = get_dims(dl, ld, 2, what, lname);
    if (ri < 0 || rl < 0)
        goto done;
    if (ri < 3) {
        sg_seterr("hdf5 data: %s: images '%s' have rank %d; expected N x C x H x W, "
                  "N x H x W x C (layout NHWC) or N x H x W (cpu)", what, iname, ri);
        goto done;
    }
    if (rl == 0 || (rl == 2 && ld[1] != 1)) {
        sg_seterr("hdf5 data: %s: labels '%s' must be a vector of N integers (or N x 1), "
                  "found rank %d%s (cpu)", what, lname, rl, rl == 2 ? " with 2 columns or more" : "");
        goto done;
    }
    uint64_t n = id[0], c, h, w;
    if (ri == 3) {
        c = 1; h = id[1]; w = id[2];
    } else if (o->layout == SG_LAYOUT_NHWC) {
        h = id[1]; w = id[2]; c = id[3];
    } else {
        c = id[1]; h = id[2]; w = id[3];
    }
    if (ri == 4 && c > SG_DATA_MAXC) {
        sg_seterr("hdf5 data: %s: images '%s' are %llux%llux%llux%llu, read as %s with %llu "
                  "channels (at most %d)%s (cpu)", what, iname, (unsigned long long)id[0],
                  (unsigned long long)id[1], (unsigned long long)id[2],
                  (unsigned long long)id[3], o->layout == SG_LAYOUT_NHWC ? "NHWC" : "NCHW",
                  (unsigned long long)c, SG_DATA_MAXC,
                  o->layout != SG_LAYOUT_NHWC && id[3] <= SG_DATA_MAXC
                      ? "; the images look channels-last: set layout = \"NHWC\"" : "");
        goto done;
    }
    if (n == 0 || n > (uint64_t)SG_DATA_MAXN || h == 0 || w == 0 || h > SG_DATA_MAXDIM ||
        w > SG_DATA_MAXDIM || c == 0) {
        sg_seterr("hdf5 data: %s: images '%s' have unusable size %llu images of %llux%llux%llu "
                  "(allowed: 1..%lld images, sides 1..%d) (cpu)", what, iname,
                  (unsigned long long)n, (unsigned long long)c, (unsigned long long)h,
                  (unsigned long long)w, (long long)SG_DATA_MAXN, SG_DATA_MAXDIM);
        goto done;
    }
    if (ld[0] != n) {
        sg_seterr("hdf5 data: %s: %llu images in '%s' but %llu labels in '%s' (cpu)", what,
                  (unsigned long long)n, iname, (unsigned long long)ld[0], lname);
        goto done;
    }
    /* classes 1 for now; fixed below once the labels are known */
    ds = sg_dataset_new((int64_t)n, (int)c, (int)h, (int)w, o->classes > 0 ? o->classes : 1,
                        dt, name ? name : what);
    if (!ds)
        goto done;
    hid_t mt = dt == SG_DATA_U8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT;
    size_t es = dt == SG_DATA_U8 ? 1 : sizeof(float);
    size_t img = (size_t)(c * h * w);
    void *dst = dt == SG_DATA_U8 ? (void *)ds->u8 : (void *)ds->f32;
    if (ri == 4 && o->layout == SG_LAYOUT_NHWC && c > 1) {
        tmp = sg_malloc(img * n * es, "hdf5 data NHWC staging buffer");
        if (!tmp)
            goto fail;
    }
    if (H5Dread(di, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp ? tmp : dst) < 0) {
        sg_seterr("hdf5 data: %s: reading images '%s' (%llu x %llu x %llu x %llu) failed: %s "
                  "(cpu)", what, iname, (unsigned long long)n, (unsigned long long)c,
                  (unsigned long long)h, (unsigned long long)w, h5_msg(m));
        goto fail;
    }
    if (tmp) { /* NHWC -> NCHW, one image at a time */
        size_t hw = (size_t)(h * w);
        for (size_t i = 0; i < n; i++)
            for (size_t p = 0; p < hw; p++)
                for (size_t k = 0; k < c; k++) {
                    size_t s = i * img + p * c + k, t = i * img + k * hw + p;
                    if (dt == SG_DATA_U8)
                        ds->u8[t] = ((uint8_t *)tmp)[s];
                    else
                        ds->f32[t] = ((float *)tmp)[s];
                }
    }
    if (dt == SG_DATA_F32)
        for (size_t i = 0; i < img * n; i++)
            if (!isfinite(ds->f32[i])) {
                sg_seterr("hdf5 data: %s: images '%s': image %zu has a non-finite pixel (cpu)",
                          what, iname, i / img);
                goto fail;
            }
    if (H5Dread(dl, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, ds->labels) < 0) {
        sg_seterr("hdf5 data: %s: reading labels '%s' (%llu) failed: %s (cpu)", what, lname,
                  (unsigned long long)n, h5_msg(m));
        goto fail;
    }
    if (o->classes <= 0) {
        int32_t mx = -1;
        for (size_t i = 0; i < n; i++) {
            if (ds->labels[i] < 0) {
                sg_seterr("hdf5 data: %s: labels '%s': label %d of image %zu is negative (cpu)",
                          what, lname, (int)ds->labels[i], i);
                goto fail;
            }
            if (ds->labels[i] > mx)
                mx = ds->labels[i];
        }
        if (mx >= 1 << 24) {
            sg_seterr("hdf5 data: %s: labels '%s' reach %d: too many classes; set classes= "
                      "(cpu)", what, lname, (int)mx);
            goto fail;
        }
        ds->classes = mx + 1;
    } else {
        char w2[300];
        snprintf(w2, sizeof w2, "hdf5 data: %s: labels '%s'", what, lname);
        if (sg_dataset_check_labels(ds, w2) != 0)
            goto fail;
    }
    goto done;
fail:
    sg_dataset_release(ds);
    ds = NULL;
done:
    free(tmp);
    if (ti >= 0) H5Tclose(ti);
    if (tl >= 0) H5Tclose(tl);
    if (di >= 0) H5Dclose(di);
    if (dl >= 0) H5Dclose(dl);
    return ds;
}

sg_dataset *sg_h5data_load(const char *path, const sg_h5data_opts *o, const char *name)
{
    h5_quiet q;
    quiet_on(&q);
    sg_dataset *d = NULL;
    char m[256];
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        FILE *probe = fopen(path, "rb");
        if (!probe)
            sg_seterr("hdf5 data: cannot open %s: no such file or not readable (cpu)", path);
        else {
            fclose(probe);
            sg_seterr("hdf5 data: %s is not an HDF5 file (or is damaged): %s (cpu)", path,
                      h5_msg(m));
        }
    } else {
        d = load(f, o, path, name);
        H5Fclose(f);
    }
    H5Eclear2(H5E_DEFAULT);
    quiet_off(&q);
    return d;
}

sg_dataset *sg_h5data_load_image(const void *buf, size_t len, const sg_h5data_opts *o,
                                 const char *name)
{
    h5_quiet q;
    quiet_on(&q);
    sg_dataset *d = NULL;
    char m[256];
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_core(fapl, 1 << 16, 0) < 0 ||
        H5Pset_file_image(fapl, (void *)buf, len) < 0) {
        sg_seterr("hdf5 data: cannot set up an in-memory file of %zu bytes: %s (cpu)", len,
                  h5_msg(m));
    } else {
        hid_t f = H5Fopen("<memory>", H5F_ACC_RDONLY, fapl);
        if (f < 0)
            sg_seterr("hdf5 data: the %zu-byte buffer is not an HDF5 file image: %s (cpu)",
                      len, h5_msg(m));
        else {
            d = load(f, o, "<memory>", name);
            H5Fclose(f);
        }
    }
    if (fapl >= 0)
        H5Pclose(fapl);
    H5Eclear2(H5E_DEFAULT);
    quiet_off(&q);
    return d;
}
