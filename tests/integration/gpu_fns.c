/* An actor class for the GPU DAG test (test_dags_gpu.py), uploaded as a
 * package; built only with the CUDA toolkit. Runtime API calls only (no
 * kernels), so the host compiler builds it.
 *
 * GpuStage (no arguments; fails without a CUDA device, saying so):
 *   to_device(tensor)  a copy of a host tensor in device memory
 *   rotate(tensor)     a device tensor's bytes rotated left by one, in new
 *                      device memory: out[i] = in[(i + 1) mod n]; refuses a
 *                      host tensor, so a DAG that copied its input to the
 *                      host instead of passing it on the device fails
 *   make(n)            a device tensor of n bytes (JSON), a view of a
 *                      buffer the stage keeps: no allocation per call
 *   done(tensor)       a device tensor's length (JSON)
 *   pass(tensor)       a device tensor passed on as it is: a view of the
 *                      argument, which the loop copies into the next edge's
 *                      slot (the GPU DAG benchmark's stage, bench/dag)
 *   copy_us(n)         the median µs of cudaMemcpyAsync device to device of
 *                      n bytes and a sync, 100 times in this process: the
 *                      peer the benchmark's hops are compared with
 * Every method's device work is done when it returns, as a DAG's methods'
 * must be (docs/dags.md#gpu-values). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cuda_runtime_api.h>

#include <prism/task.h>

/* A stage's device buffer for `make`, kept across calls. */
typedef struct stage {
    void *buf;
    size_t cap;
} stage;

static int device_count(void)
{
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

PRISM_ACTOR_INIT(GpuStage)
{
    (void)args, (void)nargs;
    if (device_count() < 1)
        return prism_task_fail(ctx, "no CUDA device here");
    if (cudaSetDevice(0) != cudaSuccess)
        return prism_task_fail(ctx, "cudaSetDevice failed");
    *state = calloc(1, sizeof(stage));
    return *state ? PRISM_OK : prism_task_fail(ctx, "out of memory");
}

PRISM_ACTOR_FREE(GpuStage)
{
    stage *st = state;
    if (st)
        cudaFree(st->buf);
    free(st);
}

static void free_device(void *p) { cudaFree(p); }

/* A device tensor of `len` bytes shaped like `like`, or NULL. */
static prism_value *device_like(const prism_value *like, void **dev)
{
    size_t len;
    prism_value_data(like, &len);
    if (cudaMalloc(dev, len ? len : 1) != cudaSuccess)
        return NULL;
    prism_value *v = prism_value_device_tensor(0, prism_value_dtype(like), prism_value_ndim(like),
                                               prism_value_shape(like), *dev, free_device, *dev);
    if (!v)
        cudaFree(*dev);
    return v;
}

PRISM_ACTOR_METHOD(GpuStage, to_device)
{
    (void)state, (void)nreturns;
    size_t len;
    const void *src = nargs == 1 ? prism_value_data(args[0], &len) : NULL;
    if (!src || prism_value_kind_of(args[0]) != PRISM_VALUE_TENSOR ||
        prism_value_device(args[0]) >= 0)
        return prism_task_fail(ctx, "to_device takes one host tensor");
    void *dev;
    prism_value *v = device_like(args[0], &dev);
    /* From pageable memory the copy may return before the device has the
     * bytes: the method's value must be complete when it returns. */
    if (!v || cudaMemcpy(dev, src, len, cudaMemcpyHostToDevice) != cudaSuccess ||
        cudaDeviceSynchronize() != cudaSuccess) {
        prism_value_free(v);
        return prism_task_fail(ctx, "to_device: a device copy failed");
    }
    returns[0] = v;
    return PRISM_OK;
}

PRISM_ACTOR_METHOD(GpuStage, rotate)
{
    (void)state, (void)nreturns;
    if (nargs != 1 || prism_value_device(args[0]) < 0)
        return prism_task_fail(ctx, "rotate takes a tensor in device memory, and got %s",
                               nargs == 1 ? "one in host memory" : "no one argument");
    size_t n;
    const uint8_t *in = prism_value_data(args[0], &n);
    void *dev;
    prism_value *v = device_like(args[0], &dev);
    uint8_t *out = dev;
    if (!v ||
        (n > 1 && (cudaMemcpy(out, in + 1, n - 1, cudaMemcpyDeviceToDevice) != cudaSuccess ||
                   cudaMemcpy(out + n - 1, in, 1, cudaMemcpyDeviceToDevice) != cudaSuccess)) ||
        cudaDeviceSynchronize() != cudaSuccess) {
        prism_value_free(v);
        return prism_task_fail(ctx, "rotate: a device copy failed");
    }
    returns[0] = v;
    return PRISM_OK;
}

PRISM_ACTOR_METHOD(GpuStage, pass)
{
    (void)state, (void)nreturns;
    if (nargs != 1 || prism_value_device(args[0]) < 0)
        return prism_task_fail(ctx, "pass takes a tensor in device memory");
    returns[0] = prism_value_device_tensor(prism_value_device(args[0]), prism_value_dtype(args[0]),
                                           prism_value_ndim(args[0]), prism_value_shape(args[0]),
                                           (void *)prism_value_data(args[0], NULL), NULL, NULL);
    return returns[0] ? PRISM_OK : prism_task_fail(ctx, "pass: %s", prism_last_error());
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

PRISM_ACTOR_METHOD(GpuStage, copy_us)
{
    (void)state, (void)nreturns;
    const char *text = nargs == 1 ? prism_value_json_text(args[0]) : NULL;
    long long n = text ? atoll(text) : 0;
    void *a = NULL, *b = NULL;
    cudaStream_t st = NULL;
    int64_t ns[100];
    if (n < 1 || cudaMalloc(&a, (size_t)n) != cudaSuccess ||
        cudaMalloc(&b, (size_t)n) != cudaSuccess ||
        cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking) != cudaSuccess) {
        cudaFree(a);
        cudaFree(b);
        return prism_task_fail(ctx, "copy_us takes a JSON byte count the device has room for");
    }
    for (int i = -10; i < 100; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        cudaMemcpyAsync(b, a, (size_t)n, cudaMemcpyDeviceToDevice, st);
        cudaStreamSynchronize(st);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (i >= 0)
            ns[i] = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    }
    qsort(ns, 100, sizeof *ns, cmp_i64);
    cudaStreamDestroy(st);
    cudaFree(a);
    cudaFree(b);
    char out[32];
    snprintf(out, sizeof out, "%.2f", ns[50] / 1e3);
    returns[0] = prism_value_json(out);
    return PRISM_OK;
}

PRISM_ACTOR_METHOD(GpuStage, make)
{
    (void)nreturns;
    stage *st = state;
    const char *text = nargs == 1 ? prism_value_json_text(args[0]) : NULL;
    long long n = text ? atoll(text) : 0;
    if (n < 1)
        return prism_task_fail(ctx, "make takes a JSON byte count");
    if ((size_t)n > st->cap) {
        cudaFree(st->buf);
        st->buf = NULL;
        st->cap = 0;
        if (cudaMalloc(&st->buf, (size_t)n) != cudaSuccess ||
            cudaMemset(st->buf, 7, (size_t)n) != cudaSuccess ||
            cudaDeviceSynchronize() != cudaSuccess)
            return prism_task_fail(ctx, "make: no room on the device for %lld bytes", n);
        st->cap = (size_t)n;
    }
    int64_t shape = n;
    returns[0] = prism_value_device_tensor(0, PRISM_U8, 1, &shape, st->buf, NULL, NULL);
    return returns[0] ? PRISM_OK : prism_task_fail(ctx, "make: %s", prism_last_error());
}

PRISM_ACTOR_METHOD(GpuStage, done)
{
    (void)state, (void)nreturns;
    size_t n = 0;
    if (nargs != 1 || prism_value_device(args[0]) < 0)
        return prism_task_fail(ctx, "done takes a tensor in device memory");
    prism_value_data(args[0], &n);
    char out[32];
    snprintf(out, sizeof out, "%zu", n);
    returns[0] = prism_value_json(out);
    return PRISM_OK;
}
