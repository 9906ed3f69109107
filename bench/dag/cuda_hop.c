/* The GPU hop: what one device value costs between two GPU actors' processes
 * of one node over the CUDA device channel (libs/channel/prism_chan_cuda.h),
 * against cudaMemcpy device-to-device of the same bytes in the same run.
 *
 * Two processes, forked before either touches CUDA: the writer allocates a
 * ring of device slots and exports its IPC handles; the reader maps them.
 * Which slot holds a value travels on a shared-memory channel (as on a DAG's
 * edge), and the reader answers on a second one with its times. One value
 * at a time (the writer waits for the answer), along each path of PATHS:
 * stream-ordered (the slot's interprocess event) or host-ordered (the writer
 * waits for its copy before it publishes), the reader copying the value out,
 * using it in place, or the writer's value already in the slot (hand-off: a
 * method that wrote its output there). A hop runs from before the writer's
 * put to the reader's clock when it is done with the value (CLOCK_MONOTONIC,
 * one clock for both processes); its parts: the writer's put (and wait), the
 * record's trip, the reader's event wait. The peer, in the same run:
 * cudaMemcpyAsync device-to-device and cudaStreamSynchronize in one process.
 *
 *   prism-dag-cuda-hop [--json] [--quick] [--sizes N[,N...]]
 *
 * Prints a Markdown table (or one JSON line per result with --json): median
 * and p99 in µs per size and path, and the medians of the parts. Without a CUDA device it says why
 * and exits 77. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "prism_chan_cuda.h"
#include "prism_channel.h"

#define SLOTS 2
#define MAX_SIZES 8
#define WAIT_MS 20000

/* How a value's bytes and their readiness reach the reader. Stream-ordered:
 * the writer's put records the slot's interprocess event and returns; the
 * reader's stream waits for that event. Host-ordered: the writer waits for
 * its put to finish (prism_cuda_ring_sync) before it publishes the record,
 * so the reader needs no event: the bytes are there. */
enum {
    PATH_CHANNEL,     /* the record alone, no CUDA call: the floor */
    PATH_COPY,        /* stream-ordered; the reader copies out (prism_cuda_ring_get) */
    PATH_IN_PLACE,    /* stream-ordered; the reader waits and uses the slot */
    PATH_HANDOFF,     /* stream-ordered, no bytes: the writer's value is in the slot */
    PATH_HOST_COPY,   /* host-ordered; the reader copies out on its stream */
    PATH_HOST_PLACE,  /* host-ordered; the reader uses the slot as it lies */
    PATH_HOST_HANDOFF /* host-ordered, no bytes */
};
typedef struct path {
    const char *name;
    bool bytes;      /* the writer copies len bytes into the slot */
    bool host_order; /* the writer waits for its put before publishing */
    bool event_wait; /* the reader waits on the slot's event */
    bool copy_out;   /* the reader copies the slot into its own buffer */
    bool cuda;       /* any CUDA call at all */
} path;
static const path PATHS[] = {
    [PATH_CHANNEL] = {"channel record only (no CUDA)", false, false, false, false, false},
    [PATH_COPY] = {"stream-ordered, copy out", true, false, true, true, true},
    [PATH_IN_PLACE] = {"stream-ordered, in place", true, false, true, false, true},
    [PATH_HANDOFF] = {"stream-ordered, hand-off", false, false, true, false, true},
    [PATH_HOST_COPY] = {"host-ordered, copy out", true, true, false, true, true},
    [PATH_HOST_PLACE] = {"host-ordered, in place", true, true, false, false, true},
    [PATH_HOST_HANDOFF] = {"host-ordered, hand-off", false, true, false, false, true},
};
#define NPATHS (int)(sizeof PATHS / sizeof PATHS[0])

/* Writer to reader: which slot, how long, which path (NPATHS ends the run).
 * Reader to writer: when it saw the record, when its wait returned, when
 * it was done. */
typedef struct record {
    uint32_t slot;
    uint32_t path;
    uint64_t len;
} record;
typedef struct answer {
    int64_t seen, waited, done;
} answer;

#define DIE(...)                                                                                   \
    do {                                                                                           \
        fprintf(stderr, "prism-dag-cuda-hop: " __VA_ARGS__);                                       \
        fputc('\n', stderr);                                                                       \
        exit(1);                                                                                   \
    } while (0)

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Median and p99 of ns[0..n) in µs (sorts it). */
static double median_us(int64_t *ns, int n, double *p99)
{
    qsort(ns, (size_t)n, sizeof *ns, cmp_i64);
    if (p99)
        *p99 = ns[(int)((n - 1) * 0.99)] / 1e3;
    return ns[n / 2] / 1e3;
}

/* The reader's side of one value (`rec`): 0, or -1 with `err`. */
static int reader_hop(prism_cuda_ring *ring, const record *rec, void *dst, answer *a, char *err,
                      size_t n)
{
    const path *pa = &PATHS[rec->path];
    int rc = 0;
    if (pa->event_wait && pa->copy_out) {
        rc = prism_cuda_ring_get(ring, rec->slot, dst, rec->len, err, n);
        a->waited = now_ns();
    } else if (pa->event_wait) {
        rc = prism_cuda_ring_wait(ring, rec->slot, err, n);
        a->waited = now_ns();
        rc = rc ? rc : prism_cuda_ring_sync(ring, err, n);
    } else if (pa->copy_out) {
        a->waited = now_ns();
        cudaError_t e = cudaMemcpyAsync(dst, prism_cuda_ring_slot(ring, rec->slot), rec->len,
                                        cudaMemcpyDeviceToDevice, prism_cuda_ring_stream(ring));
        if (e != cudaSuccess) {
            snprintf(err, n, "cudaMemcpyAsync: %s", cudaGetErrorString(e));
            rc = -1;
        }
        rc = rc ? rc : prism_cuda_ring_sync(ring, err, n);
    } else {
        a->waited = now_ns();
    }
    a->done = now_ns();
    return rc;
}

/* The reader's process. The ring's handles come over `sock`, length first
 * (0: no device). */
static int reader_main(int sock, prism_chan *ctl, prism_chan *ack, uint64_t max)
{
    char err[256] = "";
    prism_cuda_ring *ring;
    if (prism_cuda_ring_recv(sock, &ring, err, sizeof err) != 0) {
        fprintf(stderr, "prism-dag-cuda-hop reader: %s\n", err);
        return 4;
    }
    if (!ring)
        return 0;
    void *dst;
    if (cudaMalloc(&dst, max) != cudaSuccess)
        return 5;
    prism_chan_reader *r;
    prism_chan_writer *w;
    if (prism_chan_reader_open_shm(&r, ctl, 0, NULL) != PRISM_CHAN_OK ||
        prism_chan_writer_open_shm(&w, ack, NULL) != PRISM_CHAN_OK)
        return 6;
    for (;;) {
        const void *p;
        size_t n;
        record rec;
        if (prism_chan_begin_read(r, &p, &n, WAIT_MS) != PRISM_CHAN_OK || n != sizeof rec)
            return 7;
        answer a = {.seen = now_ns()};
        memcpy(&rec, p, sizeof rec);
        if (rec.path >= (uint32_t)NPATHS)
            break;
        int rc = reader_hop(ring, &rec, dst, &a, err, sizeof err);
        prism_chan_end_read(r); /* the device is done with the slot */
        if (rc != 0) {
            fprintf(stderr, "prism-dag-cuda-hop reader: %s\n", err);
            return 8;
        }
        if (prism_chan_write(w, &a, sizeof a, WAIT_MS) != PRISM_CHAN_OK)
            return 9;
    }
    prism_chan_end_read(r);
    prism_chan_writer_destroy(w);
    prism_chan_reader_destroy(r);
    prism_cuda_ring_destroy(ring);
    cudaFree(dst);
    return 0;
}

typedef struct writer {
    prism_cuda_ring *ring;
    prism_chan_writer *w;
    prism_chan_reader *r;
    void *src, *dst;
    uint64_t k;
} writer;

/* One value's times: the hop (before the put to the reader's done), the
 * writer's put (and wait, host-ordered), the record's trip, the reader's
 * wait. */
typedef struct times {
    int64_t hop, put, signal, wait;
} times;

static void send_rec(writer *wr, record rec)
{
    void *p;
    if (prism_chan_begin_write(wr->w, &p, WAIT_MS) != PRISM_CHAN_OK)
        DIE("the reader stopped");
    memcpy(p, &rec, sizeof rec);
    if (prism_chan_end_write(wr->w, sizeof rec) != PRISM_CHAN_OK)
        DIE("publishing a record");
}

static times hop(writer *wr, int pi, uint64_t len)
{
    const path *pa = &PATHS[pi];
    char err[256];
    record rec = {.slot = (uint32_t)(wr->k++ % SLOTS), .path = (uint32_t)pi, .len = len};
    int64_t t0 = now_ns();
    void *p;
    if (prism_chan_begin_write(wr->w, &p, WAIT_MS) != PRISM_CHAN_OK)
        DIE("the reader stopped");
    if (pa->cuda &&
        (prism_cuda_ring_put(wr->ring, rec.slot, wr->src, pa->bytes ? len : 0, err, sizeof err) ||
         (pa->host_order && prism_cuda_ring_sync(wr->ring, err, sizeof err))))
        DIE("put: %s", err);
    memcpy(p, &rec, sizeof rec);
    int64_t t1 = now_ns();
    if (prism_chan_end_write(wr->w, sizeof rec) != PRISM_CHAN_OK)
        DIE("publishing a record");
    const void *q;
    size_t n;
    answer a;
    if (prism_chan_begin_read(wr->r, &q, &n, WAIT_MS) != PRISM_CHAN_OK || n != sizeof a)
        DIE("the reader did not answer");
    memcpy(&a, q, sizeof a);
    prism_chan_end_read(wr->r);
    return (times){a.done - t0, t1 - t0, a.seen - t1, a.waited - a.seen};
}

static int iters_for(uint64_t len, bool quick)
{
    int n = len >= (64u << 20) ? 200 : len >= (1u << 20) ? 1000 : 5000;
    return quick ? n / 5 : n;
}

static void report(bool json, uint64_t len, const char *name, int64_t *ns, int n,
                   const times *parts)
{
    double p99, med = median_us(ns, n, &p99);
    char extra[160] = "";
    if (parts) {
        int64_t *v = malloc((size_t)n * sizeof *v);
        double m[3];
        for (int k = 0; v && k < 3; k++) {
            for (int i = 0; i < n; i++)
                v[i] = k == 0 ? parts[i].put : k == 1 ? parts[i].signal : parts[i].wait;
            m[k] = median_us(v, n, NULL);
        }
        if (v)
            snprintf(extra, sizeof extra,
                     json ? ",\"put_us\":%.2f,\"signal_us\":%.2f,\"wait_us\":%.2f"
                          : " %.2f | %.2f | %.2f |",
                     m[0], m[1], m[2]);
        free(v);
    } else if (!json) {
        snprintf(extra, sizeof extra, " | | |");
    }
    if (json)
        printf("{\"bytes\":%llu,\"path\":\"%s\",\"median_us\":%.2f,\"p99_us\":%.2f,\"n\":%d%s}\n",
               (unsigned long long)len, name, med, p99, n, extra);
    else
        printf("| %llu | %s | %.2f | %.2f |%s %d |\n", (unsigned long long)len, name, med, p99,
               extra, n);
    fflush(stdout);
}

static int parse_sizes(const char *arg, uint64_t *sizes)
{
    int n = 0;
    for (const char *p = arg; *p && n < MAX_SIZES;) {
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || v == 0)
            DIE("--sizes takes byte counts above 0, separated by commas");
        sizes[n++] = v;
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

int main(int argc, char **argv)
{
    bool json = false, quick = false;
    uint64_t sizes[MAX_SIZES] = {8, 1024, 1u << 20, 100u << 20};
    int nsizes = 4;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "--quick"))
            quick = true;
        else if (!strcmp(argv[i], "--sizes") && i + 1 < argc)
            nsizes = parse_sizes(argv[++i], sizes);
        else
            DIE("usage: prism-dag-cuda-hop [--json] [--quick] [--sizes N[,N...]]");
    }
    uint64_t max = 0;
    for (int i = 0; i < nsizes; i++)
        max = sizes[i] > max ? sizes[i] : max;
    /* Channels and the child first: a process forked after CUDA started in
     * its parent cannot use CUDA. */
    prism_chan *ctl, *ack;
    prism_chan_options co = {.nslots = SLOTS, .nreaders = 1, .max_buf_size = sizeof(record)};
    prism_chan_options ao = {.nslots = SLOTS, .nreaders = 1, .max_buf_size = sizeof(answer)};
    char err[256];
    if (prism_chan_create(&ctl, &co, err, sizeof err) != PRISM_CHAN_OK ||
        prism_chan_create(&ack, &ao, err, sizeof err) != PRISM_CHAN_OK)
        DIE("channels: %s", err);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        DIE("socketpair");
    fflush(stdout);
    pid_t child = fork();
    if (child < 0)
        DIE("fork");
    if (child == 0) {
        close(sv[0]);
        _exit(reader_main(sv[1], ctl, ack, max));
    }
    close(sv[1]);
    char why[256] = "";
    if (!prism_cuda_available(why, sizeof why)) {
        if (prism_cuda_ring_send(sv[0], NULL) != 0)
            DIE("telling the reader");
        waitpid(child, NULL, 0);
        printf("SKIPPED: no CUDA device here (%s)\n", why);
        return 77;
    }
    writer wr = {0};
    if (prism_cuda_ring_create(&wr.ring, 0, SLOTS, max, err, sizeof err) != 0)
        DIE("ring: %s", err);
    if (prism_cuda_ring_send(sv[0], wr.ring) != 0)
        DIE("sending the handles");
    if (cudaMalloc(&wr.src, max) != cudaSuccess || cudaMalloc(&wr.dst, max) != cudaSuccess ||
        cudaMemset(wr.src, 7, max) != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess)
        DIE("device buffers of %llu bytes", (unsigned long long)max);
    if (prism_chan_writer_open_shm(&wr.w, ctl, NULL) != PRISM_CHAN_OK ||
        prism_chan_reader_open_shm(&wr.r, ack, 0, NULL) != PRISM_CHAN_OK)
        DIE("channel endpoints");
    cudaStream_t stream;
    if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess)
        DIE("a stream");
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    if (!json) {
        printf("device: %s\n\n", prop.name);
        printf("| bytes | path | median µs | p99 µs | put µs | signal µs | wait µs | n |\n"
               "|---|---|---|---|---|---|---|---|\n");
    } else {
        printf("{\"device\":\"%s\"}\n", prop.name);
    }
    for (int si = 0; si < nsizes; si++) {
        uint64_t len = sizes[si];
        int n = iters_for(len, quick), warm = n / 10 + 2;
        int64_t *ns = malloc((size_t)n * sizeof *ns);
        times *parts = malloc((size_t)n * sizeof *parts);
        if (!ns || !parts)
            DIE("out of memory");
        /* the peer, in this process: a device-to-device copy that is done */
        for (int i = -warm; i < n; i++) {
            int64_t t0 = now_ns();
            if (cudaMemcpyAsync(wr.dst, wr.src, len, cudaMemcpyDeviceToDevice, stream) !=
                    cudaSuccess ||
                cudaStreamSynchronize(stream) != cudaSuccess)
                DIE("cudaMemcpyAsync");
            if (i >= 0)
                ns[i] = now_ns() - t0;
        }
        report(json, len, "cudaMemcpyAsync D2D + sync, one process", ns, n, NULL);
        for (int pi = 0; pi < NPATHS; pi++) {
            if (!PATHS[pi].bytes && si > 0)
                continue; /* no bytes move: one size says it all */
            for (int i = -warm; i < n; i++) {
                times t = hop(&wr, pi, len);
                if (i >= 0) {
                    ns[i] = t.hop;
                    parts[i] = t;
                }
            }
            report(json, PATHS[pi].bytes ? len : 0, PATHS[pi].name, ns, n, parts);
        }
        free(ns);
        free(parts);
    }
    send_rec(&wr, (record){.path = (uint32_t)NPATHS});
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        DIE("the reader process failed (%d)", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    prism_chan_writer_destroy(wr.w);
    prism_chan_reader_destroy(wr.r);
    prism_cuda_ring_destroy(wr.ring);
    cudaFree(wr.src);
    cudaFree(wr.dst);
    cudaStreamDestroy(stream);
    prism_chan_destroy(ctl);
    prism_chan_destroy(ack);
    return 0;
}
