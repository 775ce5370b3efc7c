/*
 * fuzz_cifar.c - libFuzzer harness for the CIFAR-10/100 binary parser.
 *
 * Input: byte 0 picks CIFAR-10 or CIFAR-100 (bit 0) and fine/coarse labels
 * (bit 1); the rest is the file. The parser sources are compiled into the
 * harness so that libFuzzer sees their coverage.
 */
#include "../../core/data_set.c"
#include "../../core/data_cifar.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    sg_cifar_kind kind = (data[0] & 1) ? SG_CIFAR100 : SG_CIFAR10;
    sg_dataset *d = sg_cifar_parse_mem(data + 1, size - 1, kind, (data[0] >> 1) & 1, "fuzz");
    if (d) {
        double m[3], s[3];
        sg_dataset_stats(d, m, s);
        sg_dataset_release(d);
    }
    return 0;
}
