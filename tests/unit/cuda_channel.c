/* The CUDA device channels (libs/channel/prism_chan_cuda.h), built only with
 * the CUDA toolkit. Without a device (cudaGetDeviceCount fails or finds
 * none) it says so and exits 77, which CTest shows as skipped.
 *
 * 1. Same node: a child process (forked before this one touches CUDA, which
 *    a forked child may not share) maps the ring from its exported IPC
 *    handles and reads VALUES values whose slot and length come through a
 *    shared-memory channel, as a DAG edge between two GPU actors does; every
 *    byte is checked, and the ring's slots are reused many times over.
 * 2. Across nodes: a device value staged out to pinned host memory and back
 *    into another device buffer is unchanged.
 * 3. Malformed handles are refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "prism_chan_cuda.h"
#include "prism_channel.h"

#define SLOTS 4
#define SLOT_SIZE (1u << 20)
#define VALUES 64
#define WAIT_MS 20000

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "cuda_channel: " __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* The record a value's slot and length travel in on the control channel. */
typedef struct record {
    uint32_t slot;
    uint64_t len;
} record;

/* Value k (from 1): `len` bytes, byte i = (k + 3i) mod 251; lengths vary. */
static uint64_t value_len(uint64_t k) { return 1 + (k * 7919) % SLOT_SIZE; }

static void fill(uint8_t *p, uint64_t k, uint64_t len)
{
    for (uint64_t i = 0; i < len; i++)
        p[i] = (uint8_t)((k + 3 * i) % 251);
}

static int check(const uint8_t *p, uint64_t k, uint64_t len)
{
    for (uint64_t i = 0; i < len; i++)
        if (p[i] != (uint8_t)((k + 3 * i) % 251))
            return -1;
    return 0;
}

/* The reader's process: the ring's handles come over `sock` (length first;
 * 0: no device, nothing to do). */
static int reader_main(int sock, prism_chan *ctl)
{
    char err[256] = "";
    prism_cuda_ring *ring;
    if (prism_cuda_ring_recv(sock, &ring, err, sizeof err) != 0) {
        fprintf(stderr, "cuda_channel reader: %s\n", err);
        return 4;
    }
    if (!ring)
        return 3;
    prism_chan_reader *r;
    uint8_t *host = malloc(SLOT_SIZE);
    if (!host || prism_chan_reader_open_shm(&r, ctl, 0, NULL) != PRISM_CHAN_OK)
        return 5;
    int rc = 0;
    for (uint64_t k = 1; rc == 0 && k <= VALUES; k++) {
        const void *p;
        size_t n;
        record rec;
        if (prism_chan_begin_read(r, &p, &n, WAIT_MS) != PRISM_CHAN_OK || n != sizeof rec) {
            rc = 6;
            break;
        }
        memcpy(&rec, p, sizeof rec);
        if (rec.slot != (k - 1) % SLOTS || rec.len != value_len(k))
            snprintf(err, sizeof err, "slot %u, %llu bytes: not what was written", rec.slot,
                     (unsigned long long)rec.len);
        else if (prism_cuda_ring_get(ring, rec.slot, host, rec.len, err, sizeof err) == 0 &&
                 check(host, k, rec.len) != 0)
            snprintf(err, sizeof err, "the bytes of slot %u differ", rec.slot);
        if (err[0]) {
            fprintf(stderr, "cuda_channel reader: value %llu: %s\n", (unsigned long long)k, err);
            rc = 7;
        }
        prism_chan_end_read(r); /* the copy is done: the writer may reuse the slot */
    }
    prism_chan_reader_destroy(r);
    prism_cuda_ring_destroy(ring);
    free(host);
    return rc;
}

static void test_same_node(int sock, prism_chan *ctl, pid_t child)
{
    char err[256];
    prism_cuda_ring *ring;
    CHECK(prism_cuda_ring_create(&ring, 0, SLOTS, SLOT_SIZE, err, sizeof err) == 0, "create: %s",
          err);
    CHECK(prism_cuda_ring_send(sock, ring) == 0, "sending the handles");
    /* The writer's value lives on the device, as a GPU actor's output does. */
    uint8_t *host = malloc(SLOT_SIZE), *dev;
    CHECK(host && cudaMalloc((void **)&dev, SLOT_SIZE) == cudaSuccess, "the source buffer");
    prism_chan_writer *w;
    CHECK(prism_chan_writer_open_shm(&w, ctl, NULL) == PRISM_CHAN_OK, "the control writer");
    for (uint64_t k = 1; k <= VALUES; k++) {
        void *p;
        record rec = {.slot = (uint32_t)((k - 1) % SLOTS), .len = value_len(k)};
        fill(host, k, rec.len);
        /* Made on the ring's stream, as a method's output must be ordered
         * before the put (a cudaMemcpy from pageable memory may return
         * before the device has the bytes). */
        CHECK(cudaMemcpyAsync(dev, host, rec.len, cudaMemcpyHostToDevice,
                              prism_cuda_ring_stream(ring)) == cudaSuccess,
              "H2D");
        /* The control slot is free only once the reader is done with the
         * device slot of the value SLOTS before. */
        CHECK(prism_chan_begin_write(w, &p, WAIT_MS) == PRISM_CHAN_OK, "a free slot");
        CHECK(prism_cuda_ring_put(ring, rec.slot, dev, rec.len, err, sizeof err) == 0, "put: %s",
              err);
        memcpy(p, &rec, sizeof rec);
        CHECK(prism_chan_end_write(w, sizeof rec) == PRISM_CHAN_OK, "publish");
    }
    int status;
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "the reader process failed (%d)", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    prism_chan_writer_destroy(w);
    /* Malformed handles are refused before CUDA sees them. */
    size_t len = prism_cuda_ring_export(ring, NULL, 0);
    uint8_t *blob = malloc(len);
    prism_cuda_ring_export(ring, blob, len);
    blob[0] ^= 1;
    prism_cuda_ring *bad;
    CHECK(prism_cuda_ring_open(&bad, blob, len, err, sizeof err) != 0 && !bad,
          "a handle with a wrong magic");
    blob[0] ^= 1;
    CHECK(prism_cuda_ring_open(&bad, blob, len - 1, err, sizeof err) != 0 && !bad,
          "a short handle");
    free(blob);
    CHECK(prism_cuda_ring_put(ring, SLOTS, dev, 1, err, sizeof err) != 0 &&
              prism_cuda_ring_put(ring, 0, dev, SLOT_SIZE + 1, err, sizeof err) != 0,
          "a slot or length beyond the ring");
    cudaFree(dev);
    free(host);
    prism_cuda_ring_destroy(ring);
    printf("same node: %d values through %d device slots over CUDA IPC, checked\n", VALUES, SLOTS);
}

static void test_staged(void)
{
    char err[256];
    const uint64_t len = 3u << 20;
    prism_cuda_stage *s;
    CHECK(prism_cuda_stage_create(&s, 0, len, err, sizeof err) == 0, "stage: %s", err);
    uint8_t *host = malloc(len), *a, *b;
    CHECK(host && cudaMalloc((void **)&a, len) == cudaSuccess &&
              cudaMalloc((void **)&b, len) == cudaSuccess,
          "device buffers");
    fill(host, 42, len);
    CHECK(cudaMemcpy(a, host, len, cudaMemcpyHostToDevice) == cudaSuccess, "H2D");
    const void *out;
    CHECK(prism_cuda_stage_out(s, a, len, &out, err, sizeof err) == 0 && check(out, 42, len) == 0,
          "staged out: %s", err);
    /* What the other node received (a frame's bytes) goes to its device. */
    memcpy(host, out, len);
    CHECK(prism_cuda_stage_in(s, b, host, len, err, sizeof err) == 0, "staged in: %s", err);
    memset(host, 0, len);
    CHECK(cudaMemcpy(host, b, len, cudaMemcpyDeviceToHost) == cudaSuccess &&
              check(host, 42, len) == 0,
          "the staged value changed");
    CHECK(prism_cuda_stage_out(s, a, len + 1, &out, err, sizeof err) != 0, "beyond the stage");
    cudaFree(a);
    cudaFree(b);
    free(host);
    prism_cuda_stage_destroy(s);
    printf("across nodes: %llu bytes staged through pinned memory and back, unchanged\n",
           (unsigned long long)len);
}

int main(void)
{
    /* The control channel (shared memory) and the child come first: a
     * process forked after CUDA started in its parent cannot use CUDA. */
    prism_chan *ctl;
    prism_chan_options o = {.nslots = SLOTS, .nreaders = 1, .max_buf_size = sizeof(record)};
    char err[256];
    CHECK(prism_chan_create(&ctl, &o, err, sizeof err) == PRISM_CHAN_OK, "control: %s", err);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
    pid_t child = fork();
    CHECK(child >= 0, "fork");
    if (child == 0) {
        close(sv[0]);
        _exit(reader_main(sv[1], ctl));
    }
    close(sv[1]);
    char why[256] = "";
    if (!prism_cuda_available(why, sizeof why)) {
        CHECK(prism_cuda_ring_send(sv[0], NULL) == 0, "telling the reader");
        waitpid(child, NULL, 0);
        printf("SKIPPED: no CUDA device here (%s); the CUDA channels are built but not run\n", why);
        prism_chan_destroy(ctl);
        return 77;
    }
    test_same_node(sv[0], ctl, child);
    test_staged();
    close(sv[0]);
    prism_chan_destroy(ctl);
    printf("cuda channels ok\n");
    return 0;
}
