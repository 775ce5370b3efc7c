/* test_h5_atomic.c - a checkpoint writer killed with SIGKILL at random moments
 * never leaves a broken target: after every kill the target loads, and it is
 * a complete checkpoint (every element equals its "version" attribute) of the
 * version before or after the interrupted write.
 *
 * Each trial forks a child that writes versions v+1, v+2, ... of a ~1.6 MB
 * checkpoint with sg_h5_open_atomic in a loop; the parent kills it after a
 * random delay (fixed seed), then loads the target and checks it. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "h5.h"
#include "rng.h"

#define NEL 400000   /* float32 elements: 1.6 MB, several chunks */

static int write_version(const char *path, int64_t v, float *buf)
{
    for (int i = 0; i < NEL; i++)
        buf[i] = (float)v;
    int64_t n = NEL;
    sg_h5file *f = sg_h5_open_atomic(path, 0);
    if (!f)
        return -1;
    if (sg_h5_write_array(f, "weights", SG_H5_F32, 1, &n, buf) < 0 ||
        sg_h5_write_array(f, "search/version", SG_H5_I64, 0, NULL, &v) < 0 ||
        sg_h5_attr_set_i64(f, "/", "version", v) < 0) {
        sg_h5_discard(f);
        return -1;
    }
    return sg_h5_close(f);
}

/* Load and check consistency; returns the version or -1. */
static int64_t check_target(const char *path, float *buf)
{
    sg_h5file *f = sg_h5_open(path, "r", 0);
    if (!f)
        return -1;
    sg_h5_attrval a;
    int64_t v = -1, v2 = -2, n = NEL;
    int ok = sg_h5_attr_get(f, "/", "version", &a) == 1 && a.kind == SG_H5_ATTR_INT;
    if (ok)
        v = a.i;
    sg_h5_attr_clear(&a);
    ok = ok && sg_h5_read_array_into(f, "search/version", SG_H5_I64, 0, NULL, &v2) == 0 && v2 == v;
    ok = ok && sg_h5_read_array_into(f, "weights", SG_H5_F32, 1, &n, buf) == 0;
    for (int i = 0; ok && i < NEL; i++)
        ok = buf[i] == (float)v;
    sg_h5_close(f);
    if (!ok) {
        if (!sg_geterr()[0])
            sg_seterr("inconsistent checkpoint (version %lld / %lld)", (long long)v, (long long)v2);
        return -1;
    }
    return v;
}

int main(void)
{
    const char *base = getenv("SGDSA_TEST_TMP");
    char path[600];
    snprintf(path, sizeof path, "%s/h5atomic-%ld.h5", base && *base ? base : "/tmp", (long)getpid());
    float *buf = malloc(NEL * sizeof *buf);
    if (!buf || write_version(path, 0, buf) < 0) {
        printf("FAIL: initial write: %s\n", sg_geterr());
        return 1;
    }
    /* Calibrate: kill delays span about three writes, whatever the speed
     * of the machine (sanitizer builds are several times slower). */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (write_version(path, 0, buf) < 0) {
        printf("FAIL: calibration write: %s\n", sg_geterr());
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long write_us = (long)((t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000);
    long span_us = 3 * write_us + 2000;
    if (span_us > 900000)
        span_us = 900000;
    sg_rng r;
    sg_rng_init(&r, 77, sg_rng_hash("atomic-kill"));
    int trials = 25, fails = 0;
    int64_t last = 0, advanced = 0;
    for (int t = 0; t < trials; t++) {
        pid_t pid = fork();
        if (pid < 0) {
            printf("FAIL: fork\n");
            return 1;
        }
        if (pid == 0) {
            for (int64_t v = last + 1;; v++)
                if (write_version(path, v, buf) < 0)
                    _exit(3);
        }
        /* lands in writes, fsyncs and renames at varied points */
        long us = (long)sg_rng_below(&r, (uint64_t)span_us);
        struct timespec ts = { 0, us * 1000 };
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
            printf("FAIL: trial %d: writer exited by itself (status %d)\n", t, status);
            fails++;
        }
        char tmp[700];
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)pid);
        unlink(tmp);   /* a killed writer's leftover (never the target) */
        int64_t v = check_target(path, buf);
        if (v < 0) {
            printf("FAIL: trial %d (killed after %ld us): target broken: %s\n", t, us, sg_geterr());
            fails++;
        } else if (v < last) {
            printf("FAIL: trial %d: version went back from %lld to %lld\n", t, (long long)last, (long long)v);
            fails++;
        } else {
            advanced += v > last;
            last = v;
        }
    }
    printf("test_h5_atomic: %d kills within %ld us (one write: %ld us), target always complete; "
           "%lld trials advanced, last version %lld\n", trials, span_us, write_us, (long long)advanced,
           (long long)last);
    if (advanced == 0) {
        printf("FAIL: the writer never completed a checkpoint (kills too early?)\n");
        fails++;
    }
    unlink(path);
    free(buf);
    return fails ? 1 : 0;
}
