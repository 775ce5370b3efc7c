/* test_h5.c - core/h5: round trips of every dtype and rank, strided tensors,
 * text and attributes, listing, log tables (append, reopen, truncate),
 * mismatch messages, refusal of huge declared sizes before allocating, the
 * legacy-format gate, and atomic writes (commit and discard). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "error.h"
#include "h5.h"
#include "tensor.h"

#define CHECK_CONTEXT() fprintf(stderr, " [err: %s]", sg_geterr())
#include "check.h"

static char dir[512];

static const char *tmpf(const char *name)
{
    static char buf[8][700];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static int has(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

struct names { int n; char name[16][128]; sg_h5_info info[16]; };
static int collect(void *ud, const char *name, const sg_h5_info *info)
{
    struct names *c = ud;
    if (c->n < 16) {
        snprintf(c->name[c->n], 128, "%s", name);
        c->info[c->n] = *info;
    }
    c->n++;
    return 0;
}

static void test_arrays(void)
{
    const char *p = tmpf("arrays.h5");
    sg_h5file *f = sg_h5_open(p, "w", 0);
    CHECK(f != NULL, "create %s", p);
    if (!f)
        return;
    /* every numeric type, ranks 0..3, one big (chunked) and one empty */
    float f32[24];
    uint8_t u8[5] = { 0, 1, 127, 128, 255 };
    int32_t i32[6] = { INT32_MIN, -1, 0, 1, 7, INT32_MAX };
    int64_t i64[3] = { INT64_MIN, -5, INT64_MAX };
    uint64_t u64[4] = { 0, 1, 0x8000000000000000ull, 0xffffffffffffffffull };
    double f64[2] = { -0.0, 1e300 };
    for (int i = 0; i < 24; i++)
        f32[i] = (float)i * 0.25f - 3.0f;
    int64_t s234[3] = { 2, 3, 4 }, s5[1] = { 5 }, s23[2] = { 2, 3 }, s3[1] = { 3 }, s4[1] = { 4 },
            s2[1] = { 2 }, s0[2] = { 0, 7 };
    CHECK(sg_h5_write_array(f, "a/f32", SG_H5_F32, 3, s234, f32) == 0, "write f32");
    CHECK(sg_h5_write_array(f, "a/u8", SG_H5_U8, 1, s5, u8) == 0, "write u8");
    CHECK(sg_h5_write_array(f, "a/i32", SG_H5_I32, 2, s23, i32) == 0, "write i32");
    CHECK(sg_h5_write_array(f, "b/c/i64", SG_H5_I64, 1, s3, i64) == 0, "write i64");
    CHECK(sg_h5_write_array(f, "u64", SG_H5_U64, 1, s4, u64) == 0, "write u64");
    CHECK(sg_h5_write_array(f, "f64", SG_H5_F64, 1, s2, f64) == 0, "write f64");
    CHECK(sg_h5_write_array(f, "scalar", SG_H5_F64, 0, NULL, &f64[1]) == 0, "write scalar");
    CHECK(sg_h5_write_array(f, "empty", SG_H5_F32, 2, s0, f32) == 0, "write empty");
    int64_t nbig = 600000;   /* 2.4 MB: chunked with fletcher32 */
    float *big = malloc((size_t)nbig * 4);
    for (int64_t i = 0; i < nbig; i++)
        big[i] = (float)(i % 9973) * 0.5f;
    CHECK(sg_h5_write_array(f, "big", SG_H5_F32, 1, &nbig, big) == 0, "write big");
    /* overwrite replaces */
    CHECK(sg_h5_write_array(f, "f64", SG_H5_F64, 1, s2, f64) == 0, "overwrite f64");
    CHECK(sg_h5_close(f) == 0, "close");

    f = sg_h5_open(p, "r", 0);
    CHECK(f != NULL, "reopen");
    if (!f)
        return;
    sg_h5_info in;
    sg_h5_expect any = SG_H5_EXPECT_ANY;
    float *rf = sg_h5_read_array(f, "a/f32", &any, &in);
    CHECK(rf && in.type == SG_H5_F32 && in.ndim == 3 && in.size[2] == 4 && memcmp(rf, f32, sizeof f32) == 0, "f32");
    free(rf);
    uint8_t *ru = sg_h5_read_array(f, "a/u8", NULL, &in);
    CHECK(ru && in.type == SG_H5_U8 && memcmp(ru, u8, 5) == 0, "u8");
    free(ru);
    int32_t ri[6];
    CHECK(sg_h5_read_array_into(f, "a/i32", SG_H5_I32, 2, s23, ri) == 0 && memcmp(ri, i32, sizeof ri) == 0, "i32");
    int64_t rl[3];
    CHECK(sg_h5_read_array_into(f, "/b/c/i64", SG_H5_I64, 1, s3, rl) == 0 && memcmp(rl, i64, sizeof rl) == 0, "i64");
    uint64_t rq[4];
    CHECK(sg_h5_read_array_into(f, "u64", SG_H5_U64, 1, s4, rq) == 0 && memcmp(rq, u64, sizeof rq) == 0, "u64");
    double rd[2], sc = 0;
    CHECK(sg_h5_read_array_into(f, "f64", SG_H5_F64, 1, s2, rd) == 0 && signbit(rd[0]) && rd[1] == 1e300, "f64");
    CHECK(sg_h5_read_array_into(f, "scalar", SG_H5_F64, 0, NULL, &sc) == 0 && sc == 1e300, "scalar");
    float *re = sg_h5_read_array(f, "empty", NULL, &in);
    CHECK(re && in.ndim == 2 && in.size[0] == 0 && in.size[1] == 7 && in.numel == 0, "empty");
    free(re);
    float *rb = sg_h5_read_array(f, "big", NULL, &in);
    CHECK(rb && in.chunked && in.numel == nbig && memcmp(rb, big, (size_t)nbig * 4) == 0, "big");
    free(rb);
    free(big);

    /* mismatch messages name the dataset, the file and both shapes / dtypes */
    int64_t wrong[3] = { 2, 4, 3 };
    float buf[24];
    CHECK(sg_h5_read_array_into(f, "a/f32", SG_H5_F32, 3, wrong, buf) < 0 &&
          has(sg_geterr(), "'a/f32'") && has(sg_geterr(), "2x3x4") && has(sg_geterr(), "2x4x3") &&
          has(sg_geterr(), "arrays.h5"), "shape mismatch message: %s", sg_geterr());
    CHECK(sg_h5_read_array_into(f, "a/f32", SG_H5_I32, 3, s234, buf) < 0 &&
          has(sg_geterr(), "float32") && has(sg_geterr(), "int32"), "dtype mismatch message");
    CHECK(sg_h5_read_array_into(f, "nope", SG_H5_F32, 0, NULL, buf) < 0 &&
          has(sg_geterr(), "no dataset 'nope'"), "missing dataset");
    CHECK(sg_h5_read_array_into(f, "a", SG_H5_F32, 0, NULL, buf) < 0 && has(sg_geterr(), "group"), "group is no dataset");
    CHECK(sg_h5_read_array_into(f, "a/../x", SG_H5_F32, 0, NULL, buf) < 0 && has(sg_geterr(), "invalid name"), "bad name");
    sg_h5_expect lim = { SG_H5_OTHER, -1, {0}, 100 };
    CHECK(sg_h5_read_array(f, "big", &lim, NULL) == NULL && has(sg_geterr(), "limit"), "max_bytes");
    CHECK(sg_h5_read_tensor(f, "b/c/i64", NULL) == NULL && has(sg_geterr(), "not a tensor dtype"), "i64 is no tensor");
    CHECK(sg_h5_write_array(f, "x", SG_H5_F32, 0, NULL, buf) < 0 && has(sg_geterr(), "read-only"), "read-only");

    /* listing: recursive, sorted, with shapes */
    struct names c = { 0 };
    CHECK(sg_h5_list(f, "", collect, &c) == 0 && c.n == 9, "list count %d", c.n);
    CHECK(strcmp(c.name[0], "a/f32") == 0 && c.info[0].ndim == 3, "list first %s", c.name[0]);
    struct names c2 = { 0 };
    CHECK(sg_h5_list(f, "b", collect, &c2) == 0 && c2.n == 1 && strcmp(c2.name[0], "c/i64") == 0 &&
          c2.info[0].type == SG_H5_I64, "list group");
    CHECK(sg_h5_exists(f, "b/c/i64") == 1 && sg_h5_exists(f, "b/zz/i64") == 0 && sg_h5_exists(f, "a/f32/x") == 0, "exists");
    CHECK(sg_h5_close(f) == 0, "close r");
}

static void test_tensors_text_attrs(void)
{
    const char *p = tmpf("tensors.h5");
    sg_h5file *f = sg_h5_open(p, "w", 0);
    CHECK(f != NULL, "create");
    if (!f)
        return;
    int64_t s[2] = { 3, 5 };
    sg_tensor *a = sg_tensor_new(SG_F32, SG_CPU, 2, s);
    for (int i = 0; i < 15; i++)
        sg_f32(a)[i] = (float)i;
    sg_tensor *at = sg_tensor_transpose(a, 0, 1);   /* strided: written as 5x3 */
    sg_tensor *u = sg_tensor_new(SG_U8, SG_CPU, 1, &s[1]);
    sg_tensor *k = sg_tensor_new(SG_I32, SG_CPU, 0, NULL);
    for (int i = 0; i < 5; i++)
        ((uint8_t *)sg_tensor_data(u))[i] = (uint8_t)(250 + i);
    *(int32_t *)sg_tensor_data(k) = -42;
    CHECK(sg_h5_write_tensor(f, "features.0.weight", a) == 0, "write a");
    CHECK(sg_h5_write_tensor(f, "t", at) == 0, "write transposed");
    CHECK(sg_h5_write_tensor(f, "layer1.0.bn1.u8", u) == 0, "write u8");
    CHECK(sg_h5_write_tensor(f, "k", k) == 0, "write i32 scalar");
    const char *script = "local sg = require \"sgdsa\"\nreturn { epochs = 3 }\n";
    CHECK(sg_h5_write_text(f, "script", script, strlen(script)) == 0, "text");
    CHECK(sg_h5_write_text(f, "empty_text", "", 0) == 0, "empty text");
    char *longtext = malloc(200001);
    for (int i = 0; i < 200000; i++)
        longtext[i] = (char)('a' + i % 26);
    longtext[200000] = '\0';
    CHECK(sg_h5_write_text(f, "cfg/long", longtext, 200000) == 0, "long text");
    CHECK(sg_h5_attr_set_text(f, "/", "sgdsa_version", "0.1.0") == 0, "attr text");
    CHECK(sg_h5_attr_set_i64(f, "", "format_version", SG_H5_FORMAT_VERSION) == 0, "attr int");
    CHECK(sg_h5_attr_set_f64(f, "features.0.weight", "scale", 0.5) == 0, "attr float on dataset");
    CHECK(sg_h5_attr_set_i64(f, "", "format_version", 7) == 0, "attr replace");
    CHECK(sg_h5_attr_set_text(f, "nope", "x", "y") < 0 && has(sg_geterr(), "no object 'nope'"), "attr on missing");
    CHECK(sg_h5_close(f) == 0, "close");

    f = sg_h5_open(p, "a", 0);
    CHECK(f != NULL, "reopen rw");
    if (!f)
        return;
    sg_tensor *r = sg_h5_read_tensor(f, "features.0.weight", NULL);
    CHECK(r && r->dtype == SG_F32 && r->ndim == 2 && r->size[0] == 3 && memcmp(sg_f32(r), sg_f32(a), 60) == 0, "tensor f32");
    sg_tensor *rt = sg_h5_read_tensor(f, "t", NULL);
    CHECK(rt && rt->size[0] == 5 && rt->size[1] == 3 && sg_f32(rt)[1] == 5.0f && sg_f32(rt)[3] == 1.0f, "transposed values");
    sg_tensor *ru = sg_h5_read_tensor(f, "layer1.0.bn1.u8", NULL);
    CHECK(ru && ru->dtype == SG_U8 && ((uint8_t *)sg_tensor_data(ru))[4] == 254, "tensor u8");
    sg_tensor *rk = sg_h5_read_tensor(f, "k", NULL);
    CHECK(rk && rk->dtype == SG_I32 && rk->ndim == 0 && *(int32_t *)sg_tensor_data(rk) == -42, "tensor i32 scalar");
    /* read into a strided view of a bigger buffer */
    int64_t s2[2] = { 5, 3 };
    sg_tensor *dst = sg_tensor_zeros(SG_F32, SG_CPU, 2, s2);
    sg_tensor *dv = sg_tensor_transpose(dst, 0, 1);   /* 3x5 view */
    CHECK(sg_h5_read_tensor_into(f, "features.0.weight", dv) == 0 && sg_f32(dst)[1] == 5.0f, "read into view");
    CHECK(sg_h5_read_tensor_into(f, "t", dv) < 0 && has(sg_geterr(), "shape 5x3 in file, expected 3x5") &&
          has(sg_geterr(), "'t'"), "into mismatch: %s", sg_geterr());
    size_t len = 0;
    char *txt = sg_h5_read_text(f, "script", &len);
    CHECK(txt && len == strlen(script) && strcmp(txt, script) == 0, "text back");
    free(txt);
    txt = sg_h5_read_text(f, "empty_text", &len);
    CHECK(txt && len == 0, "empty text back");
    free(txt);
    txt = sg_h5_read_text(f, "cfg/long", &len);
    CHECK(txt && len == 200000 && memcmp(txt, longtext, 200000) == 0, "long text back");
    free(txt);
    free(longtext);
    CHECK(sg_h5_read_text(f, "k", &len) == NULL && has(sg_geterr(), "not a text dataset"), "text of numbers");
    sg_h5_attrval v;
    CHECK(sg_h5_attr_get(f, "/", "sgdsa_version", &v) == 1 && v.kind == SG_H5_ATTR_TEXT && strcmp(v.text, "0.1.0") == 0, "attr text back");
    sg_h5_attr_clear(&v);
    CHECK(sg_h5_attr_get(f, "", "format_version", &v) == 1 && v.kind == SG_H5_ATTR_INT && v.i == 7, "attr int back");
    CHECK(sg_h5_attr_get(f, "features.0.weight", "scale", &v) == 1 && v.kind == SG_H5_ATTR_FLOAT && v.d == 0.5, "attr float");
    CHECK(sg_h5_attr_get(f, "", "missing", &v) == 0, "attr absent");
    /* remove, mkgroup */
    CHECK(sg_h5_remove(f, "t") == 0 && sg_h5_exists(f, "t") == 0, "remove");
    CHECK(sg_h5_mkgroup(f, "search/rng") == 0 && sg_h5_mkgroup(f, "search/rng") == 0, "mkgroup twice");
    CHECK(sg_h5_mkgroup(f, "k") < 0 && has(sg_geterr(), "not a group"), "mkgroup over dataset");
    CHECK(sg_h5_close(f) == 0, "close");
    sg_tensor_release(a); sg_tensor_release(at); sg_tensor_release(u); sg_tensor_release(k);
    sg_tensor_release(r); sg_tensor_release(rt); sg_tensor_release(ru); sg_tensor_release(rk);
    sg_tensor_release(dv); sg_tensor_release(dst);
}

static void test_logs(void)
{
    const char *p = tmpf("log.h5");
    unlink(p);
    const char *names[3] = { "epoch", "step", "loss" };
    sg_h5_type types[3] = { SG_H5_I64, SG_H5_I64, SG_H5_F64 };
    sg_h5log *l = sg_h5log_new("steps", 3, names, types);
    CHECK(l != NULL, "log new");
    if (!l)
        return;
    for (int i = 0; i < 10000; i++) {
        double row[3] = { i / 100, i, 1.0 / (i + 1) };
        if (sg_h5log_append(l, row) < 0) {
            CHECK(0, "append %d", i);
            break;
        }
    }
    double bad[3] = { 1.5, 0, 0 };
    CHECK(sg_h5log_append(l, bad) < 0 && has(sg_geterr(), "'epoch' is int64"), "int column check");
    CHECK(sg_h5log_pending(l) == 10000, "pending");
    /* flush twice through atomic updates: 6000 rows, then 4000 */
    sg_h5file *f = sg_h5_open_atomic(p, 1);
    CHECK(f && sg_h5log_write(l, f) == 0 && sg_h5_close(f) == 0, "first flush");
    for (int i = 10000; i < 10005; i++) {
        double row[3] = { i / 100, i, 1.0 / (i + 1) };
        sg_h5log_append(l, row);
    }
    f = sg_h5_open_atomic(p, 1);
    CHECK(f && sg_h5log_write(l, f) == 0 && sg_h5_close(f) == 0, "second flush");
    f = sg_h5_open(p, "r", 0);
    CHECK(f && sg_h5log_rows(f, "steps") == 10005, "rows %lld", f ? (long long)sg_h5log_rows(f, "steps") : -1LL);
    sg_h5_info in;
    int64_t *st = f ? sg_h5_read_array(f, "steps/step", NULL, &in) : NULL;
    double *lo = f ? sg_h5_read_array(f, "steps/loss", NULL, NULL) : NULL;
    int ok = st && lo && in.type == SG_H5_I64 && in.chunked && in.maxsize0 == -1;
    for (int i = 0; ok && i < 10005; i++)
        ok = st[i] == i && lo[i] == 1.0 / (i + 1);
    CHECK(ok, "log values");
    free(st);
    free(lo);
    sg_h5_close(f);
    /* a writer with other columns is refused, naming both lists */
    const char *other[2] = { "epoch", "acc" };
    sg_h5log *l2 = sg_h5log_new("steps", 2, other, NULL);
    double r2[2] = { 1, 2 };
    sg_h5log_append(l2, r2);
    f = sg_h5_open(p, "a", 0);
    CHECK(f && sg_h5log_write(l2, f) < 0 && has(sg_geterr(), "{epoch,step,loss}") && has(sg_geterr(), "{epoch,acc}"),
          "column mismatch");
    /* truncate (resume) */
    CHECK(sg_h5log_truncate(f, "steps", 7000) == 0 && sg_h5log_rows(f, "steps") == 7000, "truncate");
    CHECK(sg_h5log_truncate(f, "steps", 8000) < 0 && has(sg_geterr(), "7000 rows"), "truncate beyond");
    CHECK(sg_h5log_rows(f, "nolog") < 0, "rows of missing log");
    sg_h5_close(f);
    sg_h5log_free(l);
    sg_h5log_free(l2);
    const char *dup[2] = { "a", "a" };
    CHECK(sg_h5log_new("g", 2, dup, NULL) == NULL && has(sg_geterr(), "twice"), "dup column");
}

/* A dataset that declares 2^36 float32 but stores nothing must be refused
 * before any allocation (written with raw libhdf5, as a hostile file would). */
static void test_huge(void)
{
    const char *p = tmpf("huge.h5");
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    hid_t fid = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    hsize_t dims[2] = { (hsize_t)1 << 20, (hsize_t)1 << 16 }, chunk[2] = { 16, 16 };
    hid_t sid = H5Screate_simple(2, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    hid_t did = H5Dcreate2(fid, "huge", H5T_IEEE_F32LE, sid, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    hsize_t dims3[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };
    hid_t sid9 = H5Screate_simple(9, dims3, NULL);
    hid_t d9 = H5Dcreate2(fid, "rank9", H5T_IEEE_F32LE, sid9, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t sidi = H5Screate_simple(1, dims3, NULL);
    hid_t d16 = H5Dcreate2(fid, "int16", H5T_STD_I16LE, sidi, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(did >= 0 && d9 >= 0 && d16 >= 0, "raw create");
    H5Dclose(did); H5Dclose(d9); H5Dclose(d16);
    H5Sclose(sid); H5Sclose(sid9); H5Sclose(sidi);
    H5Pclose(dcpl); H5Pclose(fapl); H5Fclose(fid);

    sg_h5file *f = sg_h5_open(p, "r", 0);
    CHECK(f != NULL, "open huge");
    if (!f)
        return;
    CHECK(sg_h5_read_tensor(f, "huge", NULL) == NULL && has(sg_geterr(), "corrupt or sparse") &&
          has(sg_geterr(), "1048576x65536"), "huge refused: %s", sg_geterr());
    CHECK(sg_h5_read_array(f, "rank9", NULL, NULL) == NULL && has(sg_geterr(), "rank above 8"), "rank 9");
    CHECK(sg_h5_read_array(f, "int16", NULL, NULL) == NULL && has(sg_geterr(), "unsupported type"), "int16");
    sg_h5_close(f);

    /* a group with > 8 links written by plain libhdf5 uses dense (unchecksummed)
     * storage: refused unless legacy; sgdsa's own groups stay compact */
    const char *dp = tmpf("dense.h5");
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    fid = H5Fcreate(dp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    hid_t s1 = H5Screate(H5S_SCALAR);
    for (int i = 0; i < 12; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "d%02d", i);
        hid_t d = H5Dcreate2(fid, nm, H5T_IEEE_F32LE, s1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dclose(d);
    }
    H5Sclose(s1);
    H5Pclose(fapl);
    H5Fclose(fid);
    struct names c = { 0 };
    f = sg_h5_open(dp, "r", 0);
    CHECK(f && sg_h5_list(f, "", collect, &c) < 0 && has(sg_geterr(), "dense storage"), "dense refused");
    CHECK(f && sg_h5_exists(f, "d03") < 0 && has(sg_geterr(), "dense storage"), "dense lookup refused");
    sg_h5_close(f);
    f = sg_h5_open(dp, "r", SG_H5_LEGACY);
    CHECK(f && sg_h5_list(f, "", collect, &c) == 0 && c.n == 12, "dense with legacy flag");
    sg_h5_close(f);
    f = sg_h5_open(dp, "w", 0);
    for (int i = 0; f && i < 40; i++) {
        char nm[32];
        double v = i;
        snprintf(nm, sizeof nm, "g/sub/v%02d", i);
        sg_h5_write_array(f, nm, SG_H5_F64, 0, NULL, &v);
        sg_h5_attr_set_f64(f, "/", nm + 6, v);
    }
    sg_h5_close(f);
    struct names c2 = { 0 };
    f = sg_h5_open(dp, "r", 0);
    CHECK(f && sg_h5_list(f, "", collect, &c2) == 0 && c2.n == 40, "sgdsa groups are compact (%d)", c2.n);
    sg_h5_close(f);
}

static void test_gates_and_atomic(void)
{
    /* legacy (superblock v0) files need the flag */
    const char *p = tmpf("legacy.h5");
    hid_t fid = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(fid);
    CHECK(sg_h5_open(p, "r", 0) == NULL && has(sg_geterr(), "legacy") && has(sg_geterr(), "legacy.h5"), "legacy refused");
    sg_h5file *f = sg_h5_open(p, "r", SG_H5_LEGACY);
    CHECK(f != NULL, "legacy with flag");
    sg_h5_close(f);
    /* not HDF5 / missing / directory */
    const char *q = tmpf("text.h5");
    FILE *fp = fopen(q, "w");
    fputs("not hdf5 at all, just text", fp);
    fclose(fp);
    CHECK(sg_h5_open(q, "r", 0) == NULL && has(sg_geterr(), "not an HDF5 file"), "not hdf5");
    CHECK(sg_h5_open(tmpf("missing.h5"), "r", 0) == NULL && has(sg_geterr(), "missing.h5"), "missing");
    CHECK(sg_h5_open(dir, "r", 0) == NULL && has(sg_geterr(), "not a regular file"), "directory");
    CHECK(sg_h5_open(q, "x", 0) == NULL && has(sg_geterr(), "mode 'x'"), "bad mode");

    /* atomic write: the target appears only at commit; discard leaves the old one */
    const char *t = tmpf("ck.h5");
    unlink(t);
    double one = 1, two = 2;
    f = sg_h5_open_atomic(t, 0);
    CHECK(f && sg_h5_write_array(f, "v", SG_H5_F64, 0, NULL, &one) == 0, "atomic write 1");
    CHECK(access(t, F_OK) != 0, "target absent before commit");
    CHECK(sg_h5_close(f) == 0 && access(t, F_OK) == 0, "target after commit");
    f = sg_h5_open_atomic(t, 1);   /* update keeps the old content */
    double v = 0;
    CHECK(f && sg_h5_read_array_into(f, "v", SG_H5_F64, 0, NULL, &v) == 0 && v == 1, "update sees old");
    CHECK(f && sg_h5_write_array(f, "v", SG_H5_F64, 0, NULL, &two) == 0, "update write");
    sg_h5_discard(f);
    f = sg_h5_open(t, "r", 0);
    CHECK(f && sg_h5_read_array_into(f, "v", SG_H5_F64, 0, NULL, &v) == 0 && v == 1, "discard kept old");
    sg_h5_close(f);
    char tmpname[800];
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", t, (long)getpid());
    CHECK(access(tmpname, F_OK) != 0, "no temporary left");
    CHECK(sg_h5_open_atomic(tmpf("nodir/x.h5"), 0) == NULL && has(sg_geterr(), "nodir/x.h5"), "atomic in missing dir");
}

int main(void)
{
    const char *base = getenv("SGDSA_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/h5-%ld", base && *base ? base : "/tmp", (long)getpid());
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (system(cmd) != 0) {
        printf("cannot create %s\n", dir);
        return 1;
    }
    test_arrays();
    test_tensors_text_attrs();
    test_logs();
    test_huge();
    test_gates_and_atomic();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("warning: could not remove %s\n", dir);
    return check_done("test_h5", "all passed");
}
