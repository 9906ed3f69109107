/* CUDA device channels (prism_chan_cuda.h): device rings shared through CUDA
 * IPC handles, and the pinned host buffer of the host-staged path. Only the
 * CUDA runtime API: no kernels, so the host compiler builds it. */
#include "prism_chan_cuda.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#define MAGIC "prismcu1"
#define BUS_ID 32

/* What prism_cuda_ring_export writes first; the memory's handle and one
 * handle per slot's event follow. The device is named by its PCI bus ID:
 * two processes may number it differently (CUDA_VISIBLE_DEVICES). */
typedef struct ring_hdr {
    char magic[8];
    uint32_t nslots;
    uint32_t reserved;
    uint64_t slot_size;
    char bus_id[BUS_ID];
} ring_hdr;

struct prism_cuda_ring {
    bool owner; /* allocated here (else mapped from another process) */
    int device;
    char bus_id[BUS_ID];
    uint32_t nslots;
    uint64_t slot_size;
    uint8_t *base; /* device memory: nslots * slot_size */
    cudaStream_t stream;
    cudaEvent_t *events; /* per slot: recorded after its last put */
    cudaIpcMemHandle_t mem;
    cudaIpcEventHandle_t *ev_handles;
};

struct prism_cuda_stage {
    int device;
    uint64_t max;
    void *pinned;
    cudaStream_t stream;
};

static int fail(char *err, size_t n, const char *what, cudaError_t e)
{
    if (err && n)
        snprintf(err, n, "%s: %s", what, cudaGetErrorString(e));
    return -1;
}

int prism_cuda_available(char *why, size_t n)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess)
        return fail(why, n, "cudaGetDeviceCount", e) + 1;
    if (count == 0 && why && n)
        snprintf(why, n, "cudaGetDeviceCount: no device");
    return count > 0;
}

static prism_cuda_ring *ring_alloc(uint32_t nslots)
{
    prism_cuda_ring *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->nslots = nslots;
    r->events = calloc(nslots, sizeof *r->events);
    r->ev_handles = calloc(nslots, sizeof *r->ev_handles);
    if (!r->events || !r->ev_handles) {
        free(r->events);
        free(r->ev_handles);
        free(r);
        return NULL;
    }
    return r;
}

int prism_cuda_ring_create(prism_cuda_ring **out, int device, uint32_t nslots, uint64_t slot_size,
                           char *err, size_t n)
{
    *out = NULL;
    if (nslots < 1 || nslots > PRISM_CUDA_RING_MAX_SLOTS || slot_size < 1 ||
        slot_size > (UINT64_MAX / nslots)) {
        snprintf(err, n, "a CUDA ring takes 1-%d slots of at least one byte",
                 PRISM_CUDA_RING_MAX_SLOTS);
        return -1;
    }
    prism_cuda_ring *r = ring_alloc(nslots);
    if (!r) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    r->owner = true;
    r->device = device;
    r->slot_size = slot_size;
    const char *what = "cudaSetDevice";
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) {
        what = "cudaDeviceGetPCIBusId";
        e = cudaDeviceGetPCIBusId(r->bus_id, BUS_ID, device);
    }
    if (e == cudaSuccess) {
        what = "cudaMalloc";
        e = cudaMalloc((void **)&r->base, (size_t)(nslots * slot_size));
    }
    if (e == cudaSuccess) {
        what = "cudaIpcGetMemHandle";
        e = cudaIpcGetMemHandle(&r->mem, r->base);
    }
    if (e == cudaSuccess) {
        what = "cudaStreamCreate";
        e = cudaStreamCreateWithFlags(&r->stream, cudaStreamNonBlocking);
    }
    for (uint32_t i = 0; e == cudaSuccess && i < nslots; i++) {
        what = "an interprocess event";
        e = cudaEventCreateWithFlags(&r->events[i], cudaEventDisableTiming | cudaEventInterprocess);
        if (e == cudaSuccess)
            e = cudaIpcGetEventHandle(&r->ev_handles[i], r->events[i]);
    }
    if (e != cudaSuccess) {
        prism_cuda_ring_destroy(r);
        return fail(err, n, what, e);
    }
    *out = r;
    return 0;
}

size_t prism_cuda_ring_export(const prism_cuda_ring *r, void *buf, size_t len)
{
    size_t need = sizeof(ring_hdr) + sizeof r->mem + (size_t)r->nslots * sizeof *r->ev_handles;
    if (!buf)
        return need;
    if (len < need)
        return 0;
    ring_hdr h = {.nslots = r->nslots, .slot_size = r->slot_size};
    memcpy(h.magic, MAGIC, sizeof h.magic);
    memcpy(h.bus_id, r->bus_id, BUS_ID);
    uint8_t *p = buf;
    memcpy(p, &h, sizeof h);
    memcpy(p + sizeof h, &r->mem, sizeof r->mem);
    memcpy(p + sizeof h + sizeof r->mem, r->ev_handles, (size_t)r->nslots * sizeof *r->ev_handles);
    return need;
}

int prism_cuda_ring_open(prism_cuda_ring **out, const void *buf, size_t len, char *err, size_t n)
{
    *out = NULL;
    ring_hdr h;
    if (len < sizeof h) {
        snprintf(err, n, "a malformed CUDA ring handle");
        return -1;
    }
    memcpy(&h, buf, sizeof h);
    if (memcmp(h.magic, MAGIC, sizeof h.magic) != 0 || h.nslots < 1 ||
        h.nslots > PRISM_CUDA_RING_MAX_SLOTS || h.slot_size < 1 ||
        h.slot_size > UINT64_MAX / h.nslots || memchr(h.bus_id, 0, BUS_ID) == NULL ||
        len != sizeof h + sizeof(cudaIpcMemHandle_t) + h.nslots * sizeof(cudaIpcEventHandle_t)) {
        snprintf(err, n, "a malformed CUDA ring handle");
        return -1;
    }
    prism_cuda_ring *r = ring_alloc(h.nslots);
    if (!r) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    const uint8_t *p = buf;
    r->slot_size = h.slot_size;
    memcpy(r->bus_id, h.bus_id, BUS_ID);
    memcpy(&r->mem, p + sizeof h, sizeof r->mem);
    memcpy(r->ev_handles, p + sizeof h + sizeof r->mem, h.nslots * sizeof *r->ev_handles);
    const char *what = "cudaDeviceGetByPCIBusId";
    cudaError_t e = cudaDeviceGetByPCIBusId(&r->device, r->bus_id);
    if (e == cudaSuccess) {
        what = "cudaSetDevice";
        e = cudaSetDevice(r->device);
    }
    if (e == cudaSuccess) {
        what = "cudaIpcOpenMemHandle";
        e = cudaIpcOpenMemHandle((void **)&r->base, r->mem, cudaIpcMemLazyEnablePeerAccess);
    }
    if (e == cudaSuccess) {
        what = "cudaStreamCreate";
        e = cudaStreamCreateWithFlags(&r->stream, cudaStreamNonBlocking);
    }
    for (uint32_t i = 0; e == cudaSuccess && i < h.nslots; i++) {
        what = "cudaIpcOpenEventHandle";
        e = cudaIpcOpenEventHandle(&r->events[i], r->ev_handles[i]);
    }
    if (e != cudaSuccess) {
        prism_cuda_ring_destroy(r);
        return fail(err, n, what, e);
    }
    *out = r;
    return 0;
}

/* A handle is a header, a memory handle and up to MAX_SLOTS event handles. */
#define MAX_EXPORT                                                                                 \
    (sizeof(ring_hdr) + sizeof(cudaIpcMemHandle_t) +                                               \
     PRISM_CUDA_RING_MAX_SLOTS * sizeof(cudaIpcEventHandle_t))

static int write_all(int fd, const void *buf, size_t n)
{
    for (size_t done = 0; done < n;) {
        ssize_t w = write(fd, (const char *)buf + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        done += (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EPIPE;
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

int prism_cuda_ring_send(int sock, const prism_cuda_ring *r)
{
    uint64_t len = r ? prism_cuda_ring_export(r, NULL, 0) : 0;
    uint8_t *blob = len ? malloc(len) : NULL;
    if (len && (!blob || prism_cuda_ring_export(r, blob, len) != len)) {
        free(blob);
        errno = ENOMEM;
        return -1;
    }
    int rc = write_all(sock, &len, sizeof len) == 0 && write_all(sock, blob, len) == 0 ? 0 : -1;
    free(blob);
    return rc;
}

int prism_cuda_ring_recv(int sock, prism_cuda_ring **out, char *err, size_t n)
{
    *out = NULL;
    uint64_t len = 0;
    if (read_all(sock, &len, sizeof len) != 0) {
        snprintf(err, n, "receiving a CUDA ring: %s", strerror(errno));
        return -1;
    }
    if (len == 0)
        return 0;
    if (len > MAX_EXPORT) {
        snprintf(err, n, "a malformed CUDA ring handle");
        return -1;
    }
    void *blob = malloc(len);
    int rc = -1;
    if (!blob)
        snprintf(err, n, "out of memory");
    else if (read_all(sock, blob, len) != 0)
        snprintf(err, n, "receiving a CUDA ring: %s", strerror(errno));
    else
        rc = prism_cuda_ring_open(out, blob, len, err, n);
    free(blob);
    return rc;
}

void *prism_cuda_ring_slot(const prism_cuda_ring *r, uint32_t slot)
{
    return slot < r->nslots ? r->base + (size_t)slot * r->slot_size : NULL;
}

uint64_t prism_cuda_ring_slot_size(const prism_cuda_ring *r) { return r->slot_size; }

int prism_cuda_ring_device(const prism_cuda_ring *r) { return r->device; }

uint32_t prism_cuda_ring_nslots(const prism_cuda_ring *r) { return r->nslots; }

void *prism_cuda_ring_stream(const prism_cuda_ring *r) { return r->stream; }

static int check_slot(const prism_cuda_ring *r, uint32_t slot, uint64_t len, char *err, size_t n)
{
    if (slot < r->nslots && len <= r->slot_size)
        return 0;
    snprintf(err, n, "slot %u or length %llu beyond the CUDA ring", slot, (unsigned long long)len);
    return -1;
}

int prism_cuda_ring_put(prism_cuda_ring *r, uint32_t slot, const void *src, uint64_t len, char *err,
                        size_t n)
{
    if (check_slot(r, slot, len, err, n) != 0)
        return -1;
    cudaError_t e = cudaMemcpyAsync(prism_cuda_ring_slot(r, slot), src, (size_t)len,
                                    cudaMemcpyDefault, r->stream);
    if (e != cudaSuccess)
        return fail(err, n, "cudaMemcpyAsync into the slot", e);
    if ((e = cudaEventRecord(r->events[slot], r->stream)) != cudaSuccess)
        return fail(err, n, "cudaEventRecord", e);
    return 0;
}

int prism_cuda_ring_wait(prism_cuda_ring *r, uint32_t slot, char *err, size_t n)
{
    if (check_slot(r, slot, 0, err, n) != 0)
        return -1;
    cudaError_t e = cudaStreamWaitEvent(r->stream, r->events[slot], 0);
    return e == cudaSuccess ? 0 : fail(err, n, "cudaStreamWaitEvent", e);
}

int prism_cuda_ring_sync(prism_cuda_ring *r, char *err, size_t n)
{
    cudaError_t e = cudaStreamSynchronize(r->stream);
    return e == cudaSuccess ? 0 : fail(err, n, "cudaStreamSynchronize", e);
}

int prism_cuda_ring_get(prism_cuda_ring *r, uint32_t slot, void *dst, uint64_t len, char *err,
                        size_t n)
{
    if (check_slot(r, slot, len, err, n) != 0 || prism_cuda_ring_wait(r, slot, err, n) != 0)
        return -1;
    cudaError_t e = cudaMemcpyAsync(dst, prism_cuda_ring_slot(r, slot), (size_t)len,
                                    cudaMemcpyDefault, r->stream);
    if (e != cudaSuccess)
        return fail(err, n, "cudaMemcpyAsync out of the slot", e);
    return prism_cuda_ring_sync(r, err, n);
}

void prism_cuda_ring_destroy(prism_cuda_ring *r)
{
    if (!r)
        return;
    if (r->stream)
        cudaStreamSynchronize(r->stream);
    for (uint32_t i = 0; i < r->nslots; i++)
        if (r->events[i])
            cudaEventDestroy(r->events[i]);
    if (r->stream)
        cudaStreamDestroy(r->stream);
    if (r->base && r->owner)
        cudaFree(r->base);
    else if (r->base)
        cudaIpcCloseMemHandle(r->base);
    free(r->events);
    free(r->ev_handles);
    free(r);
}

int prism_cuda_stage_create(prism_cuda_stage **out, int device, uint64_t max, char *err, size_t n)
{
    *out = NULL;
    prism_cuda_stage *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    s->device = device;
    s->max = max;
    const char *what = "cudaSetDevice";
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) {
        what = "cudaMallocHost";
        e = cudaMallocHost(&s->pinned, (size_t)max);
    }
    if (e == cudaSuccess) {
        what = "cudaStreamCreate";
        e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
    }
    if (e != cudaSuccess) {
        prism_cuda_stage_destroy(s);
        return fail(err, n, what, e);
    }
    *out = s;
    return 0;
}

static int stage_copy(prism_cuda_stage *s, void *dst, const void *src, uint64_t len,
                      enum cudaMemcpyKind kind, char *err, size_t n)
{
    if (len > s->max) {
        snprintf(err, n, "%llu bytes beyond the stage's %llu", (unsigned long long)len,
                 (unsigned long long)s->max);
        return -1;
    }
    cudaError_t e = cudaMemcpyAsync(dst, src, (size_t)len, kind, s->stream);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(s->stream);
    return e == cudaSuccess ? 0 : fail(err, n, "the staging copy", e);
}

int prism_cuda_stage_out(prism_cuda_stage *s, const void *dev, uint64_t len, const void **host,
                         char *err, size_t n)
{
    if (stage_copy(s, s->pinned, dev, len, cudaMemcpyDeviceToHost, err, n) != 0)
        return -1;
    *host = s->pinned;
    return 0;
}

int prism_cuda_stage_in(prism_cuda_stage *s, void *dev, const void *host, uint64_t len, char *err,
                        size_t n)
{
    if (len > s->max) {
        snprintf(err, n, "%llu bytes beyond the stage's %llu", (unsigned long long)len,
                 (unsigned long long)s->max);
        return -1;
    }
    memcpy(s->pinned, host, (size_t)len);
    return stage_copy(s, dev, s->pinned, len, cudaMemcpyHostToDevice, err, n);
}

void prism_cuda_stage_destroy(prism_cuda_stage *s)
{
    if (!s)
        return;
    if (s->stream)
        cudaStreamDestroy(s->stream);
    if (s->pinned)
        cudaFreeHost(s->pinned);
    free(s);
}
