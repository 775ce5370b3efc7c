/*
 * cpu_info.h - what the CPU offers (cpuid) and which kernels the CPU
 * libraries run on it: OpenBLAS's core, oneDNN's instruction set. The
 * executable, `sgdsa --version`, `sgdsa bench` and log.h5 report them.
 *
 * OpenBLAS (DYNAMIC_ARCH) picks its kernels, its "core", when it is loaded,
 * from a table of the CPUs it knows; on a CPU newer than its release it
 * falls back to an old core (Debian 12's 0.3.21 runs the SSE "Prescott"
 * kernels on Xeons of family 6 model 207: sgemm 6x slower than SkylakeX).
 * It reads OPENBLAS_CORETYPE only when it is loaded, so the fix takes a
 * process started with that variable: sg_blas_core_setenv() sets it for the
 * executable's re-exec (lua/main.c); an embedding host is warned
 * (sg_blas_warn_once). A value the user set is always left alone.
 */
#ifndef SG_CPU_INFO_H
#define SG_CPU_INFO_H

#include <stddef.h>

#include "api.h"

SG_API_BEGIN

/* CPU features that decide which kernels run (sg_cpu_features). Each ISA
 * bit means the instructions exist AND the OS saves their registers. */
enum {
    SG_CPU_AVX2 = 1 << 0,   /* AVX2 and FMA3 */
    SG_CPU_AVX512 = 1 << 1, /* AVX-512 F, BW, DQ and VL (what SkylakeX kernels use) */
    SG_CPU_AMX = 1 << 2,    /* AMX tiles (AMX-TILE, and the tile state enabled) */
    SG_CPU_AMD = 1 << 3,    /* an AMD (or Hygon) CPU: Zen rather than Haswell kernels */
};
/* The features of this CPU (0 on a CPU that is not x86). */
unsigned sg_cpu_features(void);
/* Feature names: "avx2", "avx512", "amx", "amd" (bit order). */
const char *sg_cpu_feature_name(unsigned bit);
/* The CPU's brand string ("Intel(R) Xeon(R) Processor"; "unknown CPU"),
 * and its family and model (cpuid leaf 1, extended fields added; 0 when unknown). */
const char *sg_cpu_brand(void);
void sg_cpu_family_model(int *family, int *model);

/* The rule (a pure function): the OpenBLAS core that should run on a CPU
 * with `features` when OpenBLAS runs `core` (case-insensitive), or NULL
 * when `core` is right for it. A core older than the CPU's best vector ISA
 * (SSE-only cores such as Prescott, Core2, Nehalem; AVX-only Sandybridge,
 * Bulldozer; AVX2 Haswell/Zen on an AVX-512 CPU) is replaced by SkylakeX
 * on an AVX-512 CPU, else by Haswell (Zen on AMD) on an AVX2+FMA CPU.
 * Cores the rule does not know are left alone (a newer OpenBLAS's names). */
const char *sg_blas_core_for(const char *core, unsigned features);

/* The core OpenBLAS runs in this process (openblas_get_corename) and its
 * build (openblas_get_config: "OpenBLAS 0.3.21 DYNAMIC_ARCH ..."). */
const char *sg_blas_core(void);
const char *sg_blas_config(void);
/* Who chose the core: "openblas" (detected the CPU), "sgdsa"
 * (OPENBLAS_CORETYPE set by sgdsa's re-exec, because OpenBLAS had detected
 * sg_blas_core_detected()), "user" (OPENBLAS_CORETYPE set otherwise). */
const char *sg_blas_core_origin(void);
/* The core OpenBLAS detected by itself: the running core for "openblas",
 * the first process's for "sgdsa", NULL for "user". */
const char *sg_blas_core_detected(void);
/* The core OPENBLAS_CORETYPE should name for this process's successor: set
 * when the detected core is older than the CPU (sg_blas_core_for) and the
 * environment has no OPENBLAS_CORETYPE; NULL otherwise. */
const char *sg_blas_core_advice(void);
/* Set OPENBLAS_CORETYPE to the advice, and the note of the detected core
 * the next process reports (SGDSA_BLAS_DETECTED); 1 when set, 0 when no
 * advice, -1 when setenv failed. Takes effect only in a process started
 * after it (execv). */
int sg_blas_core_setenv(void);
/* Once per process, one line on stderr when OpenBLAS runs a core older than
 * the CPU and the user did not choose it, with the fix. */
void sg_blas_warn_once(void);

/* oneDNN's effective ISA ("avx512_core_amx": the best it may dispatch to on
 * this CPU, DNNL_MAX_CPU_ISA included) and version ("2.6.3"); NULL in a
 * build without oneDNN. */
const char *sg_dnnl_isa(void);
const char *sg_dnnl_version(void);

/* Three lines (no final newline): the CPU and its features, OpenBLAS's
 * version, core and who chose it, oneDNN's version and ISA (--version). */
void sg_cpu_summary(char *buf, size_t n);

/* The machine's GEMM ceiling: the best GFLOP/s of `reps` n x n x n sgemm
 * calls (after one warm-up) on the current thread count; -1 with a message
 * when n is out of range or memory is short. */
double sg_cpu_sgemm_gflops(int n, int reps);

SG_API_END

#endif
