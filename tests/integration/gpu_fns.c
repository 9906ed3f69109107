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
 *   to_host(tensor)    a device tensor copied to a host tensor
 * Every method's device work is done when it returns, as a DAG's methods'
 * must be (docs/dags.md#gpu-values). */
#include <stdint.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#include <prism/task.h>

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
    *state = NULL;
    return PRISM_OK;
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

PRISM_ACTOR_METHOD(GpuStage, to_host)
{
    (void)state, (void)nreturns;
    if (nargs != 1 || prism_value_device(args[0]) < 0)
        return prism_task_fail(ctx, "to_host takes a tensor in device memory");
    size_t n;
    const void *in = prism_value_data(args[0], &n);
    prism_value *v = prism_value_tensor(prism_value_dtype(args[0]), prism_value_ndim(args[0]),
                                        prism_value_shape(args[0]), NULL);
    if (!v || cudaMemcpy((void *)prism_value_data(v, NULL), in, n, cudaMemcpyDeviceToHost) !=
                  cudaSuccess) {
        prism_value_free(v);
        return prism_task_fail(ctx, "to_host: a device copy failed");
    }
    returns[0] = v;
    return PRISM_OK;
}
