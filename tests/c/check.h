/*
 * check.h - the failure counter and check macros of the C tests (tests/c,
 * tests/embed): a failed check prints "FAIL file:line: message" to stderr
 * and counts; main returns check_done(...), non-zero after a failure. Define
 * CHECK_CONTEXT() before including to print more after each failure's
 * message (e.g. the pending sg_geterr()). Header-only: each test stays one
 * executable.
 */
#ifndef SG_TEST_CHECK_H
#define SG_TEST_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int g_failures;

#ifndef CHECK_CONTEXT
#define CHECK_CONTEXT() ((void)0)
#endif

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            g_failures++;                                                   \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);            \
            fprintf(stderr, __VA_ARGS__);                                   \
            CHECK_CONTEXT();                                                \
            fprintf(stderr, "\n");                                          \
        }                                                                   \
    } while (0)
#define EXPECT CHECK

/* A call returning 0 on success; on failure prints sg_geterr() and counts
 * (for tests that include core/error.h). */
#define OK(call)                                                            \
    do {                                                                    \
        if ((call) != 0) {                                                  \
            g_failures++;                                                   \
            fprintf(stderr, "FAIL %s:%d: %s: %s\n", __FILE__, __LINE__,     \
                    #call, sg_geterr());                                    \
        }                                                                   \
    } while (0)

/* n zeroed floats (at least one), or exit 1: the tests' host buffers. */
static inline float *check_floats(int64_t n)
{
    float *p = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory (%lld floats)\n", (long long)n);
        exit(1);
    }
    return p;
}

/* The test's exit status: 1 after "<name>: <n> failure(s)" (stderr) when a
 * check failed, else 0 after "<name>: <passed>" (just <passed> when name
 * is NULL). */
static inline int check_done(const char *name, const char *passed)
{
    if (g_failures) {
        fprintf(stderr, "%s: %d failure(s)\n", name ? name : "checks", g_failures);
        return 1;
    }
    if (name)
        printf("%s: %s\n", name, passed);
    else
        printf("%s\n", passed);
    return 0;
}

#endif
