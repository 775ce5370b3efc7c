/*
 * conv_choice.c - which implementation runs each pass of a CPU convolution
 * (im2col + OpenBLAS sgemm, oneDNN's direct algorithm, or oneDNN's Winograd
 * where it has one), chosen by measurement on this machine, per geometry
 * and pass, the first time the geometry is used.
 *
 * A geometry is every field of sg_conv2d_geom the kernels read (batch,
 * channels, sizes, kernel, stride, padding) and the thread count. Its
 * choice, in order of precedence:
 *  1. recorded by the run being resumed (sg_cpu_conv2d_pin; the trainer
 *     pins log.h5's cpu_conv_choices), so a resume computes with the
 *     implementations the run computed with: the two do not agree bit for
 *     bit;
 *  2. forced: sg_cpu_conv2d_set_impl (Lua sgdsa.core.conv_impl) or the
 *     environment variable SGDSA_CONV=im2col|dnnl|winograd (winograd: where
 *     oneDNN has it, dnnl elsewhere); a build without oneDNN runs im2col
 *     everywhere;
 *  3. made earlier in this process;
 *  4. in the machine's cache file;
 *  5. measured: every implementation that runs g here (Winograd: 3x3,
 *     stride 1, a CPU oneDNN has its kernels for) runs each pass on a slice
 *     of the batch (the images of one oneDNN execution, MEASURE_FLOP per
 *     forward at most, and 2 images per thread at least: up to ~10 ms a
 *     call) with deterministic data, one untimed call then the best of
 *     two, interleaved; each pass takes the fastest, Winograd only when it
 *     is more than WINO_MARGIN faster than the fastest of the others
 *     (sg_conv_choice_pick: its workspace is 2-13x the direct algorithm's
 *     on VGG and ResNet shapes, 150 MB for 512 channels at batch 128, and
 *     its rounding a few times coarser, so a lead within the timings'
 *     noise does not buy it). The
 *     slice's buffers are the measurement's own: nothing the caller computes
 *     passes through it, and the chosen implementation then runs as it
 *     always does.
 *
 * The cache: $XDG_CACHE_HOME/sgdsa (else ~/.cache/sgdsa), one file per
 * machine, conv-<hash>.txt, the hash of the file format's first line and
 * the machine's key (CPU brand, family and model, its features, OpenBLAS's
 * core, oneDNN's version and ISA), which its second line spells out. Each line a geometry and its
 * choice (format_choice). A process reads the file at its first
 * convolution and appends what it measures, under an exclusive flock;
 * when the file already has the geometry (another process measured it in
 * the meantime), the file's choice is taken: processes on one machine make
 * the same choices (reading creates nothing: a process without CPU
 * convolutions leaves no file). A damaged file is a warning on stderr: the
 * geometries are measured again and the file rewritten with them. An
 * unwritable one is a warning: the process measures for itself. Delete the
 * file to measure again.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <omp.h>
#include <unistd.h>

#include "nn.h"  /* first: brings <stddef.h>, which error.h needs */
#include "conv_choice.h"
#include "conv_dnnl.h"
#include "cpu_info.h"
#include "error.h"

#define KEYLEN 12            /* n c h w k kh kw sh sw ph pw threads */
#define MEASURE_FLOP 2e9     /* the most FLOPs of one measured forward */
#define WINO_MARGIN 0.10     /* Winograd's lead needed over the others (sg_conv_choice_pick) */
#define CACHE_MAGIC "sgdsa convolution choices 3"

enum { ORIGIN_RUN, ORIGIN_FORCED, ORIGIN_BUILD, ORIGIN_CACHE, ORIGIN_MEASURED };
enum { CAND_IM2COL, CAND_DNNL, CAND_WINO, NCAND };
static const char *const cand_name[NCAND] = { "im2col", "dnnl", "winograd" };
static const char *const origin_name[] = { "run", "forced", "build", "cache", "measured" };

typedef struct {
    int64_t key[KEYLEN];
    int bits;      /* SG_CONV_PASS_* on oneDNN, SG_CONV_WINO_SHIFT bits on its Winograd */
    int origin;
    double ms[NCAND][3];  /* measured, per candidate and pass (0: not measured) */
} choice;

typedef struct {
    choice *v;
    int n, cap;
} table;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static table used;    /* the choices in effect in this process, in the order made */
static table cached;  /* the machine cache file's, as last read */
static int cache_read_once, cache_warned, damage_warned;

/* ---- forced implementation --------------------------------------------------------- */

static sg_conv_impl impl_override = SG_CONV_AUTO;
static sg_conv_impl impl_env = SG_CONV_AUTO;
static pthread_once_t impl_once = PTHREAD_ONCE_INIT;

static void read_impl_env(void)
{
    const char *s = getenv("SGDSA_CONV");
    if (s && !strcmp(s, "im2col"))
        impl_env = SG_CONV_IM2COL;
    else if (s && !strcmp(s, "dnnl"))
        impl_env = SG_CONV_DNNL;
    else if (s && !strcmp(s, "winograd"))
        impl_env = SG_CONV_WINOGRAD;
}

int sg_cpu_conv2d_have_dnnl(void)
{
#ifdef SG_HAVE_DNNL
    return 1;
#else
    return 0;
#endif
}

int sg_cpu_conv2d_set_impl(sg_conv_impl impl)
{
    if (impl != SG_CONV_AUTO && impl != SG_CONV_IM2COL && impl != SG_CONV_DNNL &&
        impl != SG_CONV_WINOGRAD)
        return sg_seterr("conv2d: unknown implementation %d (cpu)", (int)impl);
    if ((impl == SG_CONV_DNNL || impl == SG_CONV_WINOGRAD) && !sg_cpu_conv2d_have_dnnl())
        return sg_seterr("conv2d: oneDNN implementation requested, but sgdsa was built "
                         "without oneDNN (SGDSA_DNNL=OFF or libdnnl-dev missing) (cpu)");
    impl_override = impl;
    return 0;
}

sg_conv_impl sg_cpu_conv2d_get_impl(void)
{
    pthread_once(&impl_once, read_impl_env);
    return impl_override != SG_CONV_AUTO ? impl_override : impl_env;
}

int sg_cpu_conv2d_winograd_ok(const sg_conv2d_geom *g)
{
#ifdef SG_HAVE_DNNL
    return sg_dnnl_conv2d_winograd_ok(g);
#else
    (void)g;
    return 0;
#endif
}

/* ---- the tables ---------------------------------------------------------------------- */

static void make_key(const sg_conv2d_geom *g, int64_t *key)
{
    const int64_t k[KEYLEN] = { g->n, g->c, g->h, g->w, g->k, g->kh,
                                g->kw, g->sh, g->sw, g->ph, g->pw, g->threads };
    memcpy(key, k, sizeof k);
}

static choice *find(table *t, const int64_t *key)
{
    for (int i = 0; i < t->n; i++)
        if (!memcmp(t->v[i].key, key, KEYLEN * sizeof(int64_t)))
            return &t->v[i];
    return NULL;
}

/* Set key's choice in t (replacing one there); NULL when out of memory. */
static choice *put(table *t, const choice *c)
{
    choice *e = find(t, c->key);
    if (!e) {
        if (t->n == t->cap) {
            const int cap = t->cap ? 2 * t->cap : 32;
            choice *v = realloc(t->v, (size_t)cap * sizeof *v);
            if (!v)
                return NULL;
            t->v = v;
            t->cap = cap;
        }
        e = &t->v[t->n++];
    }
    *e = *c;
    return e;
}

static int cand_of(int bits, int pass)
{
    return bits & (1 << (pass + SG_CONV_WINO_SHIFT)) ? CAND_WINO
           : bits & (1 << pass)                      ? CAND_DNNL
                                                     : CAND_IM2COL;
}

static int cand_bits(int cand, int pass)
{
    return cand == CAND_WINO   ? (1 << pass) | (1 << (pass + SG_CONV_WINO_SHIFT))
           : cand == CAND_DNNL ? 1 << pass
                               : 0;
}

/* A linear layer's key: {n, in, 1, 1, out, 0 (no kernel), 0..., threads}. */
static int is_linear(const int64_t *key) { return key[5] == 0; }

/* Implementation names; a linear layer's im2col candidate is OpenBLAS's
 * sgemm, its dnnl one oneDNN's (dnnl_sgemm). */
static const char *cand_word(int linear, int cand)
{
    return linear && cand == CAND_IM2COL ? "openblas" : cand_name[cand];
}

static const char *impl_word(const choice *c, int pass)
{
    return cand_word(is_linear(c->key), cand_of(c->bits, pass));
}

/* One line, no newline:
 * "128x64x32x32 k64 3x3 s1x1 p1x1 t2: forward dnnl, backward-data winograd,
 *  backward-params im2col # measured, ms im2col/dnnl/winograd 1.234/0.987/0.5 ..."
 * or for a linear layer (x N x IN, OUT outputs)
 * "linear 128x784 k512 t2: forward dnnl, backward-data openblas,
 *  backward-params dnnl # measured, ms openblas/dnnl 0.480/0.363 ..." */
static int format_choice(char *buf, size_t n, const choice *c)
{
    const int64_t *k = c->key;
    const int lin = is_linear(k);
    int len;
    if (lin)
        len = snprintf(buf, n, "linear %lldx%lld k%lld t%lld: ", (long long)k[0],
                       (long long)k[1], (long long)k[4], (long long)k[11]);
    else
        len = snprintf(buf, n, "%lldx%lldx%lldx%lld k%lld %lldx%lld s%lldx%lld p%lldx%lld t%lld: ",
                       (long long)k[0], (long long)k[1], (long long)k[2], (long long)k[3],
                       (long long)k[4], (long long)k[5], (long long)k[6], (long long)k[7],
                       (long long)k[8], (long long)k[9], (long long)k[10], (long long)k[11]);
#define REST(b) ((b) + ((size_t)len < n ? (size_t)len : n)), ((size_t)len < n ? n - (size_t)len : 0)
    len += snprintf(REST(buf), "forward %s, backward-data %s, backward-params %s # %s",
                    impl_word(c, 0), impl_word(c, 1), impl_word(c, 2), origin_name[c->origin]);
    if (c->origin == ORIGIN_MEASURED && c->ms[0][0] > 0) {
        const int nc = c->ms[CAND_WINO][0] > 0 ? NCAND : CAND_WINO;
        len += snprintf(REST(buf), ", ms %s/%s%s", cand_word(lin, 0), cand_word(lin, 1),
                        nc == NCAND ? "/winograd" : "");
        for (int p = 0; p < 3; p++)
            for (int i = 0; i < nc; i++)
                len += snprintf(REST(buf), "%s%.3f", i ? "/" : " ", c->ms[i][p]);
    }
#undef REST
    return len;
}

/* Parse a line of format_choice's (what follows '#' is ignored); -1 when it is not one. */
static int parse_choice(const char *line, choice *c)
{
    long long v[KEYLEN] = { 0 };
    char w[3][16];
    int end = -1, got;
    const int lin = !strncmp(line, "linear ", 7);
    if (lin) {
        got = sscanf(line,
                     "linear %lldx%lld k%lld t%lld: forward %15[a-z0-9], backward-data %15[a-z0-9], "
                     "backward-params %15[a-z0-9]%n",
                     &v[0], &v[1], &v[4], &v[11], w[0], w[1], w[2], &end);
        v[2] = v[3] = 1;
        got = got == 7 ? KEYLEN + 3 : -1;
    } else {
        got = sscanf(line,
                     "%lldx%lldx%lldx%lld k%lld %lldx%lld s%lldx%lld p%lldx%lld t%lld: "
                     "forward %15[a-z0-9], backward-data %15[a-z0-9], "
                     "backward-params %15[a-z0-9]%n",
                     &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9],
                     &v[10], &v[11], w[0], w[1], w[2], &end);
    }
    if (got != KEYLEN + 3 || end < 0)
        return -1;
    const char *rest = line + end;
    while (*rest == ' ' || *rest == '\t' || *rest == '\r' || *rest == '\n')
        rest++;
    if (*rest && *rest != '#')
        return -1;
    memset(c, 0, sizeof *c);
    for (int i = 0; i < KEYLEN; i++) {
        const int zero_ok = i == 9 || i == 10 || (lin && i >= 5 && i <= 10);
        if (v[i] < (zero_ok ? 0 : 1) || v[i] > ((long long)1 << 40))
            return -1;
        c->key[i] = v[i];
    }
    for (int p = 0; p < 3; p++) {
        int i = 0;
        while (i < (lin ? CAND_WINO : NCAND) && strcmp(w[p], cand_word(lin, i)))
            i++;
        if (i == (lin ? CAND_WINO : NCAND))
            return -1;
        c->bits |= cand_bits(i, p);
    }
    return 0;
}

static table wino_known;  /* key -> bits 1 when oneDNN has Winograd for it here */

/* Whether oneDNN has Winograd for key's geometry here (remembered). Called
 * with `lock` held. */
static int key_winograd_ok(const int64_t *key)
{
    if (is_linear(key))
        return 0;
    const choice *k = find(&wino_known, key);
    if (k)
        return k->bits;
    choice c = { .bits = 0 };
    memcpy(c.key, key, sizeof c.key);
    /* the fields oneDNN reads (sg_conv2d_geom_init would take `lock`) */
    sg_conv2d_geom g = { .n = key[0], .c = key[1], .h = key[2], .w = key[3], .k = key[4],
                         .kh = key[5], .kw = key[6], .sh = key[7], .sw = key[8], .ph = key[9],
                         .pw = key[10], .threads = (int)key[11], .dnnl = 0 };
    g.oh = (g.h + 2 * g.ph - g.kh) / g.sh + 1;
    g.ow = (g.w + 2 * g.pw - g.kw) / g.sw + 1;
    if (g.oh > 0 && g.ow > 0)
        c.bits = sg_cpu_conv2d_winograd_ok(&g);
    put(&wino_known, &c);  /* out of memory: asked again next time */
    return c.bits;
}

/* ---- the machine's cache file ------------------------------------------------------ */

static char machine_buf[512];

/* CPU brand, family and model, features, OpenBLAS core, oneDNN version and ISA. */
static void make_machine_key(void)
{
    int fam, mod;
    sg_cpu_family_model(&fam, &mod);
    char feats[128] = "";
    const unsigned f = sg_cpu_features();
    for (unsigned bit = 1; sg_cpu_feature_name(bit); bit <<= 1)
        if (f & bit)
            snprintf(feats + strlen(feats), sizeof feats - strlen(feats), "%s%s", *feats ? "," : "",
                     sg_cpu_feature_name(bit));
    snprintf(machine_buf, sizeof machine_buf,
             "%s; family %d model %d; %s; OpenBLAS core %s; oneDNN %s %s", sg_cpu_brand(), fam,
             mod, *feats ? feats : "no AVX2", sg_blas_core(),
             sg_dnnl_version() ? sg_dnnl_version() : "none", sg_dnnl_isa() ? sg_dnnl_isa() : "");
}

static const char *the_machine(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, make_machine_key);
    return machine_buf;
}

/* The cache folder and file; -1 when neither XDG_CACHE_HOME nor HOME names a folder. */
static int cache_paths(char *dir, size_t dn, char *file, size_t fn)
{
    const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (x && x[0] == '/')
        snprintf(dir, dn, "%.4000s/sgdsa", x);
    else if (home && home[0] == '/')
        snprintf(dir, dn, "%.4000s/.cache/sgdsa", home);
    else
        return -1;
    uint64_t h = 1469598103934665603ull;  /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)CACHE_MAGIC; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    for (const unsigned char *p = (const unsigned char *)the_machine(); *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    snprintf(file, fn, "%.4050s/conv-%016llx.txt", dir, (unsigned long long)h);
    return 0;
}

static void mkdir_p(char *dir)
{
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(dir, 0755);
            *p = '/';
        }
    mkdir(dir, 0755);
}

static void write_header(FILE *f)
{
    fprintf(f, "%s\nmachine %s\n", CACHE_MAGIC, the_machine());
}

/* Read f into `cached`; 0, or -1 with the reason in why (the file is damaged). */
static int read_cache(FILE *f, char *why, size_t n)
{
    cached.n = 0;
    char line[1024];
    int ln = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        const size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            snprintf(why, n, "line %d is too long", ln);
            return -1;
        }
        if (len && line[len - 1] == '\n')
            line[len - 1] = 0;
        if (ln == 1 && strcmp(line, CACHE_MAGIC)) {
            snprintf(why, n, "line 1 is not '%s'", CACHE_MAGIC);
            return -1;
        }
        if (ln == 2 && (strncmp(line, "machine ", 8) || strcmp(line + 8, the_machine()))) {
            snprintf(why, n, "line 2 does not name this machine (%.150s)", the_machine());
            return -1;
        }
        if (ln <= 2 || !line[0])
            continue;
        choice c;
        if (parse_choice(line, &c)) {
            snprintf(why, n, "line %d is not a convolution choice: '%.80s'", ln, line);
            return -1;
        }
        c.origin = ORIGIN_CACHE;
        if (!find(&cached, c.key) && !put(&cached, &c)) {
            snprintf(why, n, "out of memory at line %d", ln);
            return -1;
        }
    }
    if (ferror(f)) {
        snprintf(why, n, "read error: %s", strerror(errno));
        return -1;
    }
    if (ln == 1) {
        snprintf(why, n, "it ends after line 1");
        return -1;
    }
    return 0;
}

/* Read the cache into `cached` (c NULL: shared lock, nothing created or
 * written); with c, under the file's exclusive lock: a damaged file is
 * emptied, then c's geometry takes the file's choice when it has one, else
 * c is appended. A damaged file is one warning per process. Called with
 * `lock` held. */
static void sync_cache(choice *c)
{
    char dir[4096], path[4200];
    if (cache_paths(dir, sizeof dir, path, sizeof path))
        return;
    int fd = -1, writable = 0;
    if (c) {
        mkdir_p(dir);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        writable = fd >= 0;
        if (!writable && !cache_warned) {
            cache_warned = 1;
            fprintf(stderr, "sgdsa: warning: cannot write the convolution choice cache %s (%s): "
                            "convolutions this process measures are not kept for the next\n",
                    path, strerror(errno));
        }
    }
    if (fd < 0)
        fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;  /* no cache yet */
    FILE *f = fdopen(fd, writable ? "r+" : "r");
    if (!f) {
        close(fd);
        return;
    }
    flock(fd, writable ? LOCK_EX : LOCK_SH);
    struct stat st;
    char why[256];
    if (fstat(fd, &st) == 0 && st.st_size == 0) {
        cached.n = 0;
        if (writable)
            write_header(f);
    } else if (read_cache(f, why, sizeof why)) {
        if (!damage_warned)
            fprintf(stderr, "sgdsa: warning: the convolution choice cache %s is damaged (%s): "
                            "the convolutions are measured again and the file rewritten\n",
                    path, why);
        damage_warned = 1;
        cached.n = 0;
        if (writable && ftruncate(fd, 0) == 0) {
            rewind(f);
            write_header(f);
        }
    }
    if (c && writable) {
        const choice *e = find(&cached, c->key);
        if (e) {
            c->bits = e->bits;
            c->origin = ORIGIN_CACHE;
        } else {
            char line[512];
            format_choice(line, sizeof line, c);
            fseek(f, 0, SEEK_END);
            fprintf(f, "%s\n", line);
            put(&cached, c);
        }
    }
    fflush(f);
    fclose(f);  /* releases the lock */
}

/* ---- measurement ------------------------------------------------------------------- */

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static float *filled(int64_t n, uint32_t seed)
{
    float *p = sg_aligned_alloc((size_t)(n > 0 ? n : 1) * sizeof(float), "conv2d measurement");
    for (int64_t i = 0; p && i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 9) * (1.0f / 8388608.0f) - 0.5f;
    }
    return p;
}

int sg_conv_choice_pick(const double *ms, const int *ok)
{
    int best = -1;
    for (int i = 0; i < CAND_WINO; i++)
        if (ok[i] && (best < 0 || ms[i] < ms[best]))
            best = i;
    if (ok[CAND_WINO] && (best < 0 || ms[CAND_WINO] < (1.0 - WINO_MARGIN) * ms[best]))
        best = CAND_WINO;
    return best;
}

/* Time every implementation of every pass of g that runs here on a slice
 * of its batch and fill c (bits: each pass's fastest). A failure (memory,
 * oneDNN) leaves the implementations measured without one; im2col for
 * every pass when that one fails too. */
static void measure(const sg_conv2d_geom *g, choice *c)
{
    c->bits = 0;
    /* the slice: as many images as oneDNN runs in one execution (its
     * per-call costs, the Winograd weight transform among them, weigh as
     * they do on the batch), at most MEASURE_FLOP, at least 2 per thread */
    const double per = 2.0 * (double)(g->k * g->c * g->kh * g->kw) * (double)(g->oh * g->ow);
    int64_t nb = (int64_t)(MEASURE_FLOP / per);
#ifdef SG_HAVE_DNNL
    if (nb > sg_dnnl_conv2d_chunk(g))
        nb = sg_dnnl_conv2d_chunk(g);
#endif
    nb = nb / g->threads * g->threads;
    if (nb < 2 * (int64_t)g->threads)
        nb = 2 * (int64_t)g->threads;
    if (nb > g->n)
        nb = g->n;
    sg_conv2d_geom m[NCAND];
    if (sg_conv2d_geom_init(&m[0], nb, g->c, g->h, g->w, g->k, g->kh, g->kw, g->sh, g->sw,
                            g->ph, g->pw))
        return;
    m[0].threads = g->threads;
    m[0].dnnl = 0;
    int ok[NCAND] = { 1, sg_cpu_conv2d_have_dnnl(), 0 };
    for (int i = 1; i < NCAND; i++) {
        m[i] = m[0];
        m[i].dnnl = i == CAND_DNNL ? SG_CONV_PASS_ALL : SG_CONV_PASS_ALL | SG_CONV_WINO_ALL;
    }
    ok[CAND_WINO] = sg_cpu_conv2d_winograd_ok(&m[0]);
    const int64_t nx = nb * g->c * g->h * g->w, nw = g->k * g->c * g->kh * g->kw;
    const int64_t ny = nb * g->k * g->oh * g->ow;
    float *x = filled(nx, 1), *w = filled(nw, 2), *b = filled(g->k, 3), *dy = filled(ny, 4);
    float *y = filled(ny, 5), *dx = filled(nx, 6), *dw = filled(nw, 7), *db = filled(g->k, 8);
    float *ws[NCAND] = { NULL, NULL, NULL };
    if (!(x && w && b && dy && y && dx && dw && db))
        ok[0] = ok[1] = ok[2] = 0;
    for (int i = 0; i < NCAND; i++)
        if (ok[i])
            ok[i] = (ws[i] = filled((int64_t)sg_cpu_conv2d_workspace_size(&m[i]), 9)) != NULL;
    for (int rep = 0; rep < 3; rep++)
        for (int i = 0; i < NCAND; i++)
            for (int p = 0; p < 3 && ok[i]; p++) {
                const double t0 = now_ms();
                ok[i] = !(p == 0   ? sg_cpu_conv2d_forward(ws[i], x, y, w, b, &m[i])
                          : p == 1 ? sg_cpu_conv2d_backward_data(ws[i], dy, dx, w, &m[i])
                                   : sg_cpu_conv2d_backward_params(ws[i], x, dy, dw, db, &m[i]));
                const double t = now_ms() - t0;
                if (rep == 1 || (rep == 2 && t < c->ms[i][p]))
                    c->ms[i][p] = t;
            }
    sg_clearerr();  /* a candidate that failed is left out */
    for (int i = 0; i < NCAND; i++)
        if (!ok[i])
            memset(c->ms[i], 0, sizeof c->ms[i]);
    if (ok[CAND_IM2COL] || ok[CAND_DNNL] || ok[CAND_WINO])
        for (int p = 0; p < 3; p++) {
            const double ms[NCAND] = { c->ms[CAND_IM2COL][p], c->ms[CAND_DNNL][p], c->ms[CAND_WINO][p] };
            c->bits |= cand_bits(sg_conv_choice_pick(ms, ok), p);
        }
    free(x); free(w); free(b); free(dy); free(y); free(dx); free(dw); free(db);
    for (int i = 0; i < NCAND; i++)
        free(ws[i]);
}

/* Time OpenBLAS's and oneDNN's sgemm in the three passes of c's linear
 * layer (its whole batch: microseconds to a few ms), one untimed call then
 * the best of two, interleaved; each pass takes the faster. A failure
 * leaves OpenBLAS. */
static void measure_linear(choice *c)
{
    c->bits = 0;
    const int64_t n = c->key[0], in = c->key[1], out = c->key[4];
    float *x = filled(n * in, 1), *w = filled(out * in, 2), *b = filled(out, 3);
    float *dy = filled(n * out, 4), *y = filled(n * out, 5), *dx = filled(n * in, 6);
    float *dw = filled(out * in, 7), *db = filled(out, 8);
    int ok = x && w && b && dy && y && dx && dw && db && sg_cpu_conv2d_have_dnnl();
    for (int rep = 0; rep < 3 && ok; rep++)
        for (int i = 0; i < 2 && ok; i++)
            for (int p = 0; p < 3 && ok; p++) {
                const int bits = i ? SG_CONV_PASS_ALL : 0;
                const double t0 = now_ms();
                ok = !(p == 0   ? sg_linear_forward_with(bits, x, y, w, b, n, in, out)
                       : p == 1 ? sg_linear_backward_data_with(bits, dy, dx, w, n, in, out)
                                : sg_linear_backward_params_with(bits, x, dy, dw, db, n, in, out));
                const double t = now_ms() - t0;
                if (rep == 1 || (rep == 2 && t < c->ms[i][p]))
                    c->ms[i][p] = t;
            }
    sg_clearerr();
    if (ok) {
        for (int p = 0; p < 3; p++)
            if (c->ms[CAND_DNNL][p] < c->ms[CAND_IM2COL][p])
                c->bits |= 1 << p;
    } else {
        memset(c->ms, 0, sizeof c->ms);
    }
    free(x); free(w); free(b); free(dy); free(y); free(dx); free(dw); free(db);
}

/* ---- the choice of a geometry --------------------------------------------------------- */

/* The choice of key without measuring (-1: none); with `record`, it is
 * entered in `used`. Called with `lock` held. */
static int known_locked(const int64_t *key, int record)
{
    choice *e = find(&used, key);
    if (e && e->origin == ORIGIN_RUN)
        return e->bits;
    choice c = { .bits = 0 };
    memcpy(c.key, key, sizeof c.key);
    const sg_conv_impl impl = sg_cpu_conv2d_get_impl();
    if (!sg_cpu_conv2d_have_dnnl() || impl != SG_CONV_AUTO) {
        c.bits = impl == SG_CONV_DNNL ? SG_CONV_PASS_ALL : 0;
        if (impl == SG_CONV_WINOGRAD)
            c.bits = SG_CONV_PASS_ALL | (key_winograd_ok(key) ? SG_CONV_WINO_ALL : 0);
        c.origin = sg_cpu_conv2d_have_dnnl() ? ORIGIN_FORCED : ORIGIN_BUILD;
        if (record && (!e || e->bits != c.bits || e->origin != c.origin))
            put(&used, &c);  /* out of memory: not recorded, still in force */
        return c.bits;
    }
    if (e && e->origin != ORIGIN_FORCED && e->origin != ORIGIN_BUILD)
        return e->bits;
    if (!cache_read_once) {
        cache_read_once = 1;
        sync_cache(NULL);
    }
    const choice *k = find(&cached, key);
    if (!k)
        return -1;
    c.bits = k->bits;
    c.origin = ORIGIN_CACHE;
    if (record)
        put(&used, &c);
    return c.bits;
}

int sg_conv_choice_known(const sg_conv2d_geom *g)
{
    int64_t key[KEYLEN];
    make_key(g, key);
    pthread_mutex_lock(&lock);
    const int bits = known_locked(key, 0);
    pthread_mutex_unlock(&lock);
    return bits;
}

void sg_conv_choice_note(const sg_conv2d_geom *g)
{
    int64_t key[KEYLEN];
    make_key(g, key);
    pthread_mutex_lock(&lock);
    known_locked(key, 1);
    pthread_mutex_unlock(&lock);
}

/* c's choice (c->key set): known, else measured (g: the convolution; NULL
 * for a linear layer) and entered in the tables. */
static int choose(choice *c, const sg_conv2d_geom *g)
{
    pthread_mutex_lock(&lock);
    int bits = known_locked(c->key, 1);
    pthread_mutex_unlock(&lock);
    if (bits >= 0)
        return bits;
    c->origin = ORIGIN_MEASURED;
    if (g)  /* without the lock: it runs convolutions */
        measure(g, c);
    else
        measure_linear(c);
    pthread_mutex_lock(&lock);
    const choice *e = find(&used, c->key);
    if (e) {
        bits = e->bits;  /* chosen by another thread meanwhile */
    } else {
        sync_cache(c);
        put(&used, c);
        bits = c->bits;
    }
    pthread_mutex_unlock(&lock);
    return bits;
}

int sg_cpu_conv2d_passes(const sg_conv2d_geom *g)
{
    if (g->dnnl >= 0)
        return g->dnnl;
    choice c;
    memset(&c, 0, sizeof c);
    make_key(g, c.key);
    return choose(&c, g);
}

int sg_cpu_linear_passes(int64_t n, int64_t in, int64_t out)
{
    if (n < 1 || in < 1 || out < 1)
        return 0;  /* nothing to multiply */
    choice c;
    memset(&c, 0, sizeof c);
    int threads = omp_get_max_threads();
    const int64_t k[KEYLEN] = { n, in, 1, 1, out, 0, 0, 0, 0, 0, 0, threads < 1 ? 1 : threads };
    memcpy(c.key, k, sizeof k);
    return choose(&c, NULL);
}

/* ---- the table as text ------------------------------------------------------------- */

size_t sg_cpu_conv2d_choices(char *buf, size_t n)
{
    size_t len = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < used.n; i++) {
        char line[512];
        int l = format_choice(line, sizeof line - 1, &used.v[i]);
        if (l > (int)sizeof line - 2)
            l = (int)sizeof line - 2;
        line[l] = '\n';  /* (a line cut at the buffer's end, had there been one) */
        if (buf && len < n) {
            const size_t k = (size_t)l + 1 < n - len ? (size_t)l + 1 : n - len;
            memcpy(buf + len, line, k);
        }
        len += (size_t)l + 1;
    }
    pthread_mutex_unlock(&lock);
    if (buf && n)
        buf[len < n ? len : n - 1] = 0;
    return len;
}

int sg_cpu_conv2d_pin(const char *text)
{
    int ln = 0, dropped = 0, wino_dropped = 0, rc = 0;
    pthread_mutex_lock(&lock);
    for (const char *p = text; p && *p && !rc;) {
        const char *nl = strchr(p, '\n');
        const size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char line[1024];
        ln++;
        if (len >= sizeof line) {
            rc = sg_seterr("conv2d choices: line %d is too long (%zu characters) (cpu)", ln, len);
            break;
        }
        memcpy(line, p, len);
        line[len] = 0;
        p += len + (nl != NULL);
        if (!line[0] || line[0] == '#')
            continue;
        choice c;
        if (parse_choice(line, &c)) {
            rc = sg_seterr("conv2d choices: line %d is not a convolution choice: '%.80s' (cpu)",
                           ln, line);
            break;
        }
        if (c.bits && !sg_cpu_conv2d_have_dnnl()) {
            c.bits = 0;
            dropped++;
        }
        if ((c.bits & SG_CONV_WINO_ALL) && !key_winograd_ok(c.key)) {
            c.bits &= ~SG_CONV_WINO_ALL;
            wino_dropped++;
        }
        c.origin = ORIGIN_RUN;
        if (!put(&used, &c))
            rc = sg_seterr("conv2d choices: out of memory at line %d (cpu)", ln);
    }
    pthread_mutex_unlock(&lock);
    if (dropped)
        fprintf(stderr, "sgdsa: warning: the run chose oneDNN for %d convolution(s), but this "
                        "sgdsa was built without oneDNN: they run im2col, and the results differ "
                        "from the run's in rounding\n", dropped);
    if (wino_dropped)
        fprintf(stderr, "sgdsa: warning: the run chose oneDNN's Winograd algorithm for %d "
                        "convolution(s) that this CPU has no Winograd kernels for: they run "
                        "oneDNN's direct algorithm, and the results differ from the run's in "
                        "rounding\n", wino_dropped);
    return rc;
}
