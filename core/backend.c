/* backend.c - the registry of backend tables (kernels/backend.h). */
#include "backend.h"
#include "error.h"

static const sg_backend *g_backends[2];  /* by sg_devtype */

void sg_backend_register(const sg_backend *b)
{
    if (b && (unsigned)b->dev < sizeof g_backends / sizeof g_backends[0])
        g_backends[b->dev] = b;
}

const sg_backend *sg_backend_get(sg_devtype dev)
{
    return (unsigned)dev < sizeof g_backends / sizeof g_backends[0] ? g_backends[dev] : NULL;
}

int sg_backend_lacks(sg_devtype dev, const char *op, const char *entry)
{
    if (!sg_backend_get(dev))
        return sg_seterr("%s: sgdsa was built without the %s backend (no nvcc/cuDNN at "
                         "configure time)", op, dev == SG_CUDA ? "CUDA" : sg_device_name(dev));
    return sg_seterr("%s: the %s backend has no %s", op, sg_device_name(dev), entry);
}
