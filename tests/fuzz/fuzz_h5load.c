/*
 * fuzz_h5load.c - libFuzzer harness for loading checkpoints (core/h5.c).
 *
 * Input: the bytes of an HDF5 file. libhdf5 needs a file name for the sec2
 * driver sgdsa uses, so the input is written to a per-process temporary file
 * and loaded exactly as a checkpoint is: strict open (signature, superblock
 * >= 2), then every dataset and attribute read through the checked API (see
 * tests/c/h5_testutil.h). core/h5.c is compiled into the harness so it is
 * instrumented; libhdf5 itself is not (a crash inside it is libhdf5's, and
 * is reported with its stack). Seeds: tests/fuzz/corpus/h5load/ (small
 * checkpoints, a log file, truncated and legacy files).
 */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "../../core/h5.c"
#include "../c/h5_testutil.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
const char *__lsan_default_suppressions(void);

/* libhdf5 1.10.8 leaks one free-list block (424 bytes) per object header
 * whose metadata checksum fails (reproduced with the bare libhdf5 API:
 * H5Fopen + H5Oget_info_by_name2 on a corrupted file + H5Fclose + H5close).
 * That is libhdf5's; suppress leaks allocated inside it, and only those, so
 * leaks in sgdsa's own code are still reported. */
const char *__lsan_default_suppressions(void) { return "leak:libhdf5_serial.so\n"; }
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libhdf5 initialises its packages lazily and keeps that state for the whole
 * process; do it once here (write and load a real checkpoint) so that the
 * leak checker, which runs per input, only sees what an input leaks. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char path[128];
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/fuzz_h5load.init.%ld.h5", dir && *dir ? dir : "/tmp", (long)getpid());
    uint64_t digest;
    if (h5t_write_checkpoint(path, 1) == 0)
        h5t_load_all(path, 0, &digest, NULL);
    unlink(path);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[128];
    if (!path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/fuzz_h5load.%ld.h5", dir && *dir ? dir : "/tmp", (long)getpid());
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return 0;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(fd);
    uint64_t digest;
    int n = 0;
    if (h5t_load_all(path, 0, &digest, &n) < 0 && sg_geterr()[0] == '\0')
        __builtin_trap();   /* every failure must carry a message */
    unlink(path);
    return 0;
}
