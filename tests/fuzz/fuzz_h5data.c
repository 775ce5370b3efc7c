/*
 * fuzz_h5data.c - libFuzzer harness for user HDF5 datasets.
 *
 * Input: byte 0 = options (bit 0 NHWC layout, bit 1 classes = 10 instead of
 * inferred); the rest is an HDF5 file image opened in memory (core driver).
 * Dataset names are "train/images" and "train/labels". Our reader is
 * compiled into the harness; the HDF5 library itself is not instrumented, so
 * crashes inside libhdf5 on malformed files are its own.
 */
#include "../../core/data_set.c"
#include "../../core/data_h5.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    sg_h5data_opts o = {"train/images", "train/labels",
                        (data[0] & 1) ? SG_LAYOUT_NHWC : SG_LAYOUT_NCHW, (data[0] & 2) ? 10 : 0};
    sg_dataset *d = sg_h5data_load_image(data + 1, size - 1, &o, "fuzz");
    sg_dataset_release(d);
    return 0;
}
