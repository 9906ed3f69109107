/* GPU discovery with the CUDA runtime (when built with it) and the
 * CUDA_VISIBLE_DEVICES value handed to a driver. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodeagent.h"

#ifdef PRISM_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

int na_gpu_detect(void)
{
#ifdef PRISM_HAVE_CUDA
    int n = 0;
    /* No driver or no device is an error here: the node simply has no GPU. */
    if (cudaGetDeviceCount(&n) != cudaSuccess)
        return 0;
    return n;
#else
    return 0;
#endif
}

/* The `i`-th entry of a comma-separated list, or NULL. */
static const char *list_entry(const char *list, int i, size_t *len)
{
    const char *p = list;
    for (; i > 0 && p; i--) {
        p = strchr(p, ',');
        if (p)
            p++;
    }
    if (!p || !*p)
        return NULL;
    const char *end = strchr(p, ',');
    *len = end ? (size_t)(end - p) : strlen(p);
    return p;
}

int na_gpu_visible_devices(const int *idx, int n, char *out, size_t outlen)
{
    /* The runtime numbers devices within the agent's own visible set, so a
     * pool index maps to the entry the agent itself was given, if any. */
    const char *own = getenv("CUDA_VISIBLE_DEVICES");
    size_t used = 0;
    out[0] = '\0';
    for (int k = 0; k < n; k++) {
        size_t len = 0;
        const char *entry = own && *own ? list_entry(own, idx[k], &len) : NULL;
        int w = entry ? snprintf(out + used, outlen - used, "%s%.*s", k ? "," : "", (int)len, entry)
                      : snprintf(out + used, outlen - used, "%s%d", k ? "," : "", idx[k]);
        if (w < 0 || (size_t)w >= outlen - used)
            return -1;
        used += (size_t)w;
    }
    return 0;
}
