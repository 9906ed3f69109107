/* Device tensors on a compiled DAG's edges (dag_device.h). */
#include "dag_device.h"

#include <stdio.h>
#include <stdlib.h>

#include "dag_record.h"
#include "prism_internal.h"

#ifdef PRISM_HAVE_CUDA

#include <cuda_runtime_api.h>

#include "prism_chan_cuda.h"

int dag_dev_ring_create(dag_dev_ring **out, int device, uint32_t nslots, uint64_t slot_size,
                        char *err, size_t n)
{
    return prism_cuda_ring_create(out, device, nslots, slot_size, err, n);
}

size_t dag_dev_ring_record(const dag_dev_ring *r, void *buf, size_t cap)
{
    size_t hn = prism_cuda_ring_export(r, NULL, 0);
    if (!buf)
        return prism__dag_ring_size(hn);
    uint8_t *handles = malloc(hn);
    size_t len = 0;
    if (handles && prism_cuda_ring_export(r, handles, hn) == hn)
        len = prism__dag_put_ring(buf, cap, handles, hn);
    free(handles);
    return len;
}

size_t dag_dev_ring_put(dag_dev_ring *r, uint32_t slot, const prism_value *v, void *buf, size_t cap,
                        char *err, size_t n)
{
    if (prism_value_device(v) != prism_cuda_ring_device(r)) {
        snprintf(err, n, "a tensor on device %d, and the edge's ring is on device %d",
                 prism_value_device(v), prism_cuda_ring_device(r));
        return 0;
    }
    size_t len;
    const void *src = prism_value_data(v, &len);
    if (prism_cuda_ring_put(r, slot, src, len, err, n) != 0 || prism_cuda_ring_sync(r, err, n) != 0)
        return 0;
    size_t rec = prism__dag_put_device(buf, cap, slot, v);
    if (!rec)
        snprintf(err, n, "a device record does not fit a %zu-byte slot", cap);
    return rec;
}

dag_dev_ring *dag_dev_ring_open(const void *buf, size_t len, char *err, size_t n)
{
    size_t hn = 0;
    const void *handles = prism__dag_get_ring(buf, len, &hn);
    prism_cuda_ring *ring = NULL;
    if (!handles)
        snprintf(err, n, "a malformed CUDA ring record");
    else
        prism_cuda_ring_open(&ring, handles, hn, err, n);
    return ring;
}

static void *slot_addr(void *ud, uint32_t slot) { return prism_cuda_ring_slot(ud, slot); }

prism_value *dag_dev_ring_read(dag_dev_ring *r, const void *buf, size_t len)
{
    return prism__dag_get_device(buf, len, prism_cuda_ring_device(r), slot_addr, r,
                                 prism_cuda_ring_slot_size(r));
}

void dag_dev_ring_destroy(dag_dev_ring *r) { prism_cuda_ring_destroy(r); }

static prism_value *tensor_to_host(const prism_value *v, char *err, size_t n)
{
    size_t len;
    const void *src = prism_value_data(v, &len);
    prism_value *h =
        prism_value_tensor(prism_value_dtype(v), prism_value_ndim(v), prism_value_shape(v), NULL);
    void *dst = (void *)prism_value_data(h, NULL);
    cudaError_t e = h ? cudaSetDevice(prism_value_device(v)) : cudaSuccess;
    if (h && e == cudaSuccess && len)
        e = cudaMemcpy(dst, src, len, cudaMemcpyDeviceToHost);
    if (!h || e != cudaSuccess) {
        snprintf(err, n, "copying a device tensor to the host: %s",
                 h ? cudaGetErrorString(e) : "out of memory");
        prism_value_free(h);
        return NULL;
    }
    return h;
}

#else /* no CUDA: nothing can hold device memory here but a method's value */

#define NO_CUDA "a device tensor, and this worker was built without CUDA"

int dag_dev_ring_create(dag_dev_ring **out, int device, uint32_t nslots, uint64_t slot_size,
                        char *err, size_t n)
{
    (void)device, (void)nslots, (void)slot_size;
    *out = NULL;
    snprintf(err, n, NO_CUDA);
    return -1;
}

size_t dag_dev_ring_record(const dag_dev_ring *r, void *buf, size_t cap)
{
    (void)r, (void)buf, (void)cap;
    return 0;
}

size_t dag_dev_ring_put(dag_dev_ring *r, uint32_t slot, const prism_value *v, void *buf, size_t cap,
                        char *err, size_t n)
{
    (void)r, (void)slot, (void)v, (void)buf, (void)cap;
    snprintf(err, n, NO_CUDA);
    return 0;
}

dag_dev_ring *dag_dev_ring_open(const void *buf, size_t len, char *err, size_t n)
{
    (void)buf, (void)len;
    snprintf(err, n, NO_CUDA);
    return NULL;
}

prism_value *dag_dev_ring_read(dag_dev_ring *r, const void *buf, size_t len)
{
    (void)r, (void)buf, (void)len;
    return NULL;
}

void dag_dev_ring_destroy(dag_dev_ring *r) { (void)r; }

static prism_value *tensor_to_host(const prism_value *v, char *err, size_t n)
{
    (void)v;
    snprintf(err, n, NO_CUDA);
    return NULL;
}

#endif

prism_value *dag_dev_to_host(const prism_value *v, char *err, size_t n)
{
    if (prism_value_device(v) >= 0)
        return tensor_to_host(v, err, n);
    if (prism_value_kind_of(v) != PRISM_VALUE_LIST) {
        prism_value *c = prism_value_copy(v);
        if (!c)
            snprintf(err, n, "%s", prism_last_error());
        return c;
    }
    prism_value *l = prism_value_list();
    if (!l)
        snprintf(err, n, "out of memory");
    for (size_t i = 0; l && i < prism_value_list_size(v); i++) {
        prism_value *item = dag_dev_to_host(prism_value_list_get(v, i), err, n);
        if (!item || prism_value_list_append(l, item) != PRISM_OK) {
            prism_value_free(l);
            return NULL;
        }
    }
    return l;
}
