/*
 * cpu_info.c - the CPU's features from cpuid (checked against what the OS
 * enables in XCR0), OpenBLAS's core and who chose it, oneDNN's ISA, and the
 * sgemm ceiling. See cpu_info.h for the rule and why it matters.
 *
 * Environment:
 *   OPENBLAS_CORETYPE     read by OpenBLAS when it is loaded; set by the
 *                         user (always respected) or by sgdsa's re-exec
 *   SGDSA_BLAS_DETECTED   the core OpenBLAS detected in the process that set
 *                         OPENBLAS_CORETYPE (so the next one can say so); it
 *                         marks the variable as sgdsa's only while
 *                         OPENBLAS_CORETYPE is the rule's answer for it
 *   SGDSA_TEST_BLAS_CORE  tests only: the core OpenBLAS is taken to have
 *                         detected, while OPENBLAS_CORETYPE is unset (drives
 *                         the re-exec and the warning on a CPU OpenBLAS knows)
 */
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define SG_X86 1
#endif
#ifdef SG_HAVE_DNNL
#include <dnnl.h>
#include <dnnl_debug.h>
#endif

#include "cpu_info.h"
#include "error.h"

#define ENV_CORE "OPENBLAS_CORETYPE"
#define ENV_DETECTED "SGDSA_BLAS_DETECTED"
#define ENV_TEST_CORE "SGDSA_TEST_BLAS_CORE"

/* ---- cpuid ----------------------------------------------------------------------- */

static unsigned features;
static char brand[64] = "unknown CPU";
static int family, model;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

#ifdef SG_X86
static uint64_t xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

static void read_cpu(void)
{
#ifdef SG_X86
    unsigned a, b, c, d, max;
    if (!__get_cpuid(0, &max, &b, &c, &d))
        return;
    char vendor[13];
    memcpy(vendor, &b, 4);
    memcpy(vendor + 4, &d, 4);
    memcpy(vendor + 8, &c, 4);
    vendor[12] = 0;
    if (!strcmp(vendor, "AuthenticAMD") || !strcmp(vendor, "HygonGenuine"))
        features |= SG_CPU_AMD;
    __cpuid(1, a, b, c, d);
    family = (int)((a >> 8) & 0xf);
    model = (int)((a >> 4) & 0xf);
    if (family == 0xf)
        family += (int)((a >> 20) & 0xff);
    if (family == 6 || family >= 0xf)
        model += (int)((a >> 16) & 0xf) << 4;
    const int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    const uint64_t x = osxsave ? xcr0() : 0;
    const int ymm = (x & 0x6) == 0x6, zmm = ymm && (x & 0xe0) == 0xe0,
              tiles = (x & 0x60000) == 0x60000;
    if (max >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        if (avx && fma && ymm && ((b >> 5) & 1))
            features |= SG_CPU_AVX2;
        /* F (16), DQ (17), BW (30), VL (31) */
        const unsigned avx512 = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31);
        if ((features & SG_CPU_AVX2) && zmm && (b & avx512) == avx512)
            features |= SG_CPU_AVX512;
        if (tiles && ((d >> 24) & 1))
            features |= SG_CPU_AMX;
    }
    unsigned ext;
    __cpuid(0x80000000u, ext, b, c, d);
    if (ext >= 0x80000004u) {
        unsigned r[12];
        for (unsigned i = 0; i < 3; i++)
            __cpuid(0x80000002u + i, r[4 * i], r[4 * i + 1], r[4 * i + 2], r[4 * i + 3]);
        char s[49];
        memcpy(s, r, 48);
        s[48] = 0;
        const char *p = s;
        while (*p == ' ')
            p++;
        size_t n = strlen(p);
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n > 0)
            snprintf(brand, sizeof brand, "%.*s", (int)n, p);
    }
#endif
}

unsigned sg_cpu_features(void)
{
    pthread_once(&cpu_once, read_cpu);
    return features;
}

const char *sg_cpu_feature_name(unsigned bit)
{
    switch (bit) {
    case SG_CPU_AVX2: return "avx2";
    case SG_CPU_AVX512: return "avx512";
    case SG_CPU_AMX: return "amx";
    case SG_CPU_AMD: return "amd";
    default: return NULL;
    }
}

const char *sg_cpu_brand(void)
{
    pthread_once(&cpu_once, read_cpu);
    return brand;
}

void sg_cpu_family_model(int *f, int *m)
{
    pthread_once(&cpu_once, read_cpu);
    *f = family;
    *m = model;
}

/* ---- the rule --------------------------------------------------------------------- */

/* OpenBLAS's x86 core names (driver/others/dynamic.c) by the best vector
 * ISA their kernels use: 0 SSE, 1 AVX, 2 AVX2+FMA, 3 AVX-512. */
static const struct {
    const char *name;
    int level;
} cores[] = {
    {"Unknown", 0},     {"Generic", 0},    {"Katmai", 0},       {"Coppermine", 0},
    {"Northwood", 0},   {"Prescott", 0},   {"Banias", 0},       {"Atom", 0},
    {"Core2", 0},       {"Penryn", 0},     {"Dunnington", 0},   {"Nehalem", 0},
    {"Athlon", 0},      {"Opteron", 0},    {"Opteron_SSE3", 0}, {"Barcelona", 0},
    {"Nano", 0},        {"Bobcat", 0},     {"Sandybridge", 1},  {"Bulldozer", 1},
    {"Piledriver", 1},  {"Steamroller", 1}, {"Excavator", 1},   {"Haswell", 2},
    {"Zen", 2},         {"SkylakeX", 3},   {"Cooperlake", 3},   {"SapphireRapids", 3},
};

const char *sg_blas_core_for(const char *core, unsigned f)
{
    if (core == NULL)
        return NULL;
    int level = -1;
    for (size_t i = 0; i < sizeof cores / sizeof cores[0]; i++)
        if (!strcasecmp(core, cores[i].name))
            level = cores[i].level;
    const int cpu = (f & SG_CPU_AVX512) ? 3 : (f & SG_CPU_AVX2) ? 2 : 0;
    if (level < 0 || level >= cpu)
        return NULL;
    /* SkylakeX for AVX-512 (OpenBLAS itself maps Zen 4 there too); Zen's
     * kernels are Haswell's with AMD's cache blocking */
    return cpu == 3 ? "SkylakeX" : (f & SG_CPU_AMD) ? "Zen" : "Haswell";
}

/* ---- OpenBLAS's core --------------------------------------------------------------- */

const char *sg_blas_core(void)
{
    const char *s = openblas_get_corename();
    return s ? s : "unknown";
}

const char *sg_blas_config(void)
{
    const char *s = openblas_get_config();
    return s ? s : "OpenBLAS";
}

static const char *env(const char *name)
{
    const char *s = getenv(name);
    return s && *s ? s : NULL;
}

/* OPENBLAS_CORETYPE is sgdsa's when the note of the detected core is there
 * and the rule turns that core into this value. */
static int coretype_is_ours(void)
{
    const char *set = env(ENV_CORE), *det = env(ENV_DETECTED);
    const char *want = det ? sg_blas_core_for(det, sg_cpu_features()) : NULL;
    return set && want && !strcasecmp(set, want);
}

const char *sg_blas_core_origin(void)
{
    if (!env(ENV_CORE))
        return "openblas";
    return coretype_is_ours() ? "sgdsa" : "user";
}

const char *sg_blas_core_detected(void)
{
    if (!env(ENV_CORE)) {
        const char *t = env(ENV_TEST_CORE);
        return t ? t : sg_blas_core();
    }
    return coretype_is_ours() ? env(ENV_DETECTED) : NULL;
}

const char *sg_blas_core_advice(void)
{
    if (env(ENV_CORE))
        return NULL;
    return sg_blas_core_for(sg_blas_core_detected(), sg_cpu_features());
}

int sg_blas_core_setenv(void)
{
    const char *want = sg_blas_core_advice();
    if (want == NULL)
        return 0;
    if (setenv(ENV_DETECTED, sg_blas_core_detected(), 1) != 0 || setenv(ENV_CORE, want, 1) != 0)
        return -1;
    return 1;
}

static void isa_text(char *buf, size_t n)
{
    const unsigned f = sg_cpu_features();
    size_t len = 0;
    buf[0] = 0;
    for (unsigned bit = SG_CPU_AVX2; bit <= SG_CPU_AMX; bit <<= 1)
        if ((f & bit) && len < n)
            len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? " " : "",
                                    sg_cpu_feature_name(bit));
    if (buf[0] == 0)
        snprintf(buf, n, "no AVX2");
}

static void warn(void)
{
    const char *origin = sg_blas_core_origin();
    if (!strcmp(origin, "user"))
        return;
    const char *running = !strcmp(origin, "openblas") ? sg_blas_core_detected() : sg_blas_core();
    const char *want = sg_blas_core_for(running, sg_cpu_features());
    if (want == NULL)
        return;
    char isa[64];
    isa_text(isa, sizeof isa);
    if (!strcmp(origin, "openblas"))
        fprintf(stderr, "sgdsa: warning: OpenBLAS runs its %s kernels on this CPU (%s: %s): "
                        "matrix products run several times slower; start the program with "
                        "OPENBLAS_CORETYPE=%s in its environment (the sgdsa executable does "
                        "this itself)\n", running, sg_cpu_brand(), isa, want);
    else
        fprintf(stderr, "sgdsa: warning: OPENBLAS_CORETYPE=%s did not take effect (OpenBLAS runs "
                        "its %s kernels on this CPU: %s; it reads the variable when it is "
                        "loaded): start the program with it in its environment\n",
                env(ENV_CORE), running, isa);
}

void sg_blas_warn_once(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, warn);
}

/* ---- oneDNN ------------------------------------------------------------------------ */

const char *sg_dnnl_isa(void)
{
#ifdef SG_HAVE_DNNL
    const char *s = dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa());
    if (s == NULL)
        return "unknown";
    return strncmp(s, "cpu_isa_", 8) ? s : s + 8;
#else
    return NULL;
#endif
}

const char *sg_dnnl_version(void)
{
#ifdef SG_HAVE_DNNL
    static _Thread_local char v[32];
    const dnnl_version_t *d = dnnl_version();
    snprintf(v, sizeof v, "%d.%d.%d", d->major, d->minor, d->patch);
    return v;
#else
    return NULL;
#endif
}

/* ---- summary ------------------------------------------------------------------------ */

void sg_cpu_summary(char *buf, size_t n)
{
    char isa[64], origin[160];
    int fam, mod;
    isa_text(isa, sizeof isa);
    sg_cpu_family_model(&fam, &mod);
    const char *o = sg_blas_core_origin();
    if (!strcmp(o, "openblas"))
        snprintf(origin, sizeof origin, "detected by OpenBLAS");
    else if (!strcmp(o, "sgdsa"))
        snprintf(origin, sizeof origin, "%s=%s set by sgdsa: OpenBLAS detected %s", ENV_CORE,
                 env(ENV_CORE), env(ENV_DETECTED));
    else
        snprintf(origin, sizeof origin, "%s=%s set by the user", ENV_CORE, env(ENV_CORE));
    const char *cfg = sg_blas_config();
    const char *sp = strchr(cfg, ' ');
    sp = sp ? strchr(sp + 1, ' ') : NULL;
    const int vlen = sp ? (int)(sp - cfg) : (int)strlen(cfg);
    int len = snprintf(buf, n, "CPU: %s (family %d, model %d): %s\nBLAS: %.*s, core %s (%s)",
                       sg_cpu_brand(), fam, mod, isa, vlen, cfg, sg_blas_core(), origin);
    if (len < 0 || (size_t)len >= n)
        return;
    if (sg_dnnl_isa())
        snprintf(buf + len, n - (size_t)len, "\noneDNN: %s, ISA %s", sg_dnnl_version(),
                 sg_dnnl_isa());
    else
        snprintf(buf + len, n - (size_t)len, "\noneDNN: not built in");
}

/* ---- the sgemm ceiling ----------------------------------------------------------- */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double sg_cpu_sgemm_gflops(int n, int reps)
{
    if (n < 1 || n > 8192 || reps < 1 || reps > 100)
        return sg_seterr("sgemm_gflops: n = %d (1 to 8192) and reps = %d (1 to 100) (cpu)", n,
                         reps);
    const size_t nn = (size_t)n * (size_t)n;
    float *a = sg_aligned_alloc(nn * sizeof(float), "sgemm_gflops: A");
    float *b = a ? sg_aligned_alloc(nn * sizeof(float), "sgemm_gflops: B") : NULL;
    float *c = b ? sg_aligned_alloc(nn * sizeof(float), "sgemm_gflops: C") : NULL;
    if (c == NULL) {
        free(a);
        free(b);
        return -1;
    }
    for (size_t i = 0; i < nn; i++) {
        a[i] = (float)(i % 17) * 0.0625f - 0.5f;
        b[i] = (float)(i % 13) * 0.0625f - 0.375f;
        c[i] = 0;
    }
    double best = 0;
    for (int r = -1; r < reps; r++) {
        const double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                    c, n);
        const double dt = now() - t0;
        if (r >= 0 && dt > 0 && 2.0 * (double)nn * n / dt * 1e-9 > best)
            best = 2.0 * (double)nn * n / dt * 1e-9;
    }
    free(a);
    free(b);
    free(c);
    return best;
}
