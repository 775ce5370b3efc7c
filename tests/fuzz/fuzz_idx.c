/*
 * fuzz_idx.c - libFuzzer harness for the IDX parser (and one loader batch).
 *
 * Input: byte 0 = options (bit 0-1 pad, bit 2 flip, bit 3-4 crop, bit 5 drop_last),
 * bytes 1-2 = length L of the images part (little endian, clamped), then L
 * bytes of the images file and the rest as the labels file. A dataset that
 * parses goes through one batch of a loader built with those options.
 * The parser sources are compiled into the harness so that libFuzzer sees
 * their coverage even when libsgdsa itself is not instrumented.
 */
#include "../../core/data_set.c"
#include "../../core/data_idx.c"
#include "../../core/data_loader.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint8_t opt = data[0];
    size_t li = (size_t)data[1] | ((size_t)data[2] << 8);
    data += 3;
    size -= 3;
    if (li > size)
        li = size;
    sg_dataset *d = sg_idx_parse_mem(data, li, data + li, size - li, 10, "fuzz");
    if (!d)
        return 0;
    sg_loader_opts o;
    sg_loader_opts_default(&o);
    o.batch = 3;
    o.prefetch = 0;
    o.pad = opt & 3;
    o.flip = (opt >> 2) & 1;
    o.crop = (opt >> 3) & 3;
    o.drop_last = (opt >> 5) & 1;
    sg_rng r;
    sg_rng_init(&r, opt, 1);
    if ((int64_t)d->h * d->w <= 4096) { /* keep each run fast */
        sg_loader *l = sg_loader_new(d, &o, &r, &r);
        sg_batch b;
        if (l)
            sg_loader_next(l, &b);
        sg_loader_free(l);
    }
    sg_dataset_release(d);
    return 0;
}
