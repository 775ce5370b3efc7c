/* backend.c - the registry of backend tables (kernels/backend.h), and the
 * loading of the CUDA backend's module on first use. */
#define _GNU_SOURCE  /* dladdr */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "error.h"

static const sg_backend *g_backends[2];  /* by sg_devtype */
static pthread_once_t cuda_once = PTHREAD_ONCE_INIT;
static char cuda_why[700];  /* why the module did not load ("" when it is not there) */

void sg_backend_register(const sg_backend *b)
{
    if (b && (unsigned)b->dev < sizeof g_backends / sizeof g_backends[0])
        g_backends[b->dev] = b;
}

/* Load libsgdsa_cuda.so from the folder of the library (or program) this
 * file is linked into; its constructor registers the CUDA table. It stays
 * loaded for the life of the process. */
static void load_cuda(void)
{
    if (g_backends[SG_CUDA])
        return;  /* linked in */
    Dl_info info;
    char path[4096];
    if (!dladdr((void *)load_cuda, &info) || !info.dli_fname)
        return;
    const char *slash = strrchr(info.dli_fname, '/');
    const int dir = slash ? (int)(slash - info.dli_fname) : 1;
    snprintf(path, sizeof path, "%.*s/libsgdsa_cuda.so", dir, slash ? info.dli_fname : ".");
    FILE *f = fopen(path, "rb");
    if (!f)
        return;  /* built without the CUDA backend */
    fclose(f);
    if (!dlopen(path, RTLD_NOW | RTLD_LOCAL)) {
        const char *e = dlerror();
        snprintf(cuda_why, sizeof cuda_why, "%.600s", e ? e : path);
    }
}

const sg_backend *sg_backend_get(sg_devtype dev)
{
    if ((unsigned)dev >= sizeof g_backends / sizeof g_backends[0])
        return NULL;
    if (dev == SG_CUDA && !g_backends[SG_CUDA])
        pthread_once(&cuda_once, load_cuda);
    return g_backends[dev];
}

const sg_backend *sg_backend_loaded(sg_devtype dev)
{
    if ((unsigned)dev >= sizeof g_backends / sizeof g_backends[0])
        return NULL;
    return g_backends[dev];
}

int sg_backend_lacks(sg_devtype dev, const char *op, const char *entry)
{
    if (!sg_backend_get(dev)) {
        if (dev == SG_CUDA && cuda_why[0])
            return sg_seterr("%s: the CUDA backend could not be loaded: %s", op, cuda_why);
        return sg_seterr("%s: sgdsa was built without the %s backend (no nvcc/cuDNN at "
                         "configure time)", op, dev == SG_CUDA ? "CUDA" : sg_device_name(dev));
    }
    return sg_seterr("%s: the %s backend has no %s", op, sg_device_name(dev), entry);
}
