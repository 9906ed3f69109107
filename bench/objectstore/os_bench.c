/* Object store microbenchmark, named after Ray's (single_client_put_calls,
 * single_client_get_calls, single_client_put_gigabytes), against a running
 * prism-objectstore. Prints one "name value unit" line per result.
 *
 *   prism-objectstore-bench memcpy
 *   prism-objectstore-bench core SOCKET     put/get rates and throughput
 *   prism-objectstore-bench spill SOCKET N  writes N times the arena of pinned
 *                                           objects, then reads them all back
 *   prism-objectstore-bench ping SOCKET     small put/get/release/delete rounds
 *                                           until SIGTERM or SIGINT, then their
 *                                           latency (what a spill beside it
 *                                           costs other clients: spill_stall.sh)
 *   prism-objectstore-bench readback SOCKET puts 16 pinned objects of 1 MiB,
 *                                           prints "ready", then gets them in
 *                                           turn until SIGTERM or SIGINT: the
 *                                           latency of the gets that restored
 *                                           one (spill_stall.sh CLIENT=readback) */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "prism_store.h"
#include "prism_time.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)

static uint32_t next_index;

static prism_object_id fresh_id(void)
{
    static prism_task_id task;
    if (next_index == 0)
        prism_id_random(&task);
    prism_object_id id;
    prism_object_id_make(&id, &task, next_index++);
    return id;
}

static double now_s(void) { return (double)prism_mono_ns() / 1e9; }

static void die(prism_store *st, prism_store_status s, const char *what)
{
    fprintf(stderr, "%s: %s\n", what, st ? prism_store_last_error(st) : prism_store_status_text(s));
    exit(1);
}

static void result(const char *name, double value, const char *unit)
{
    printf("%s %.6g %s\n", name, value, unit);
    fflush(stdout);
}

static void bench_memcpy(void)
{
    size_t n = 100 * MiB;
    char *a = malloc(n), *b = malloc(n);
    memset(a, 1, n);
    memset(b, 2, n);
    double best = 0;
    for (int i = 0; i < 10; i++) {
        double t = now_s();
        memcpy(b, a, n);
        t = now_s() - t;
        if (n / t > best)
            best = n / t;
    }
    if (b[n / 2] != 1)
        exit(1);
    result("memcpy_100MiB", best / (1 << 30), "GiB/s");
    free(a);
    free(b);
}

/* puts of `size` bytes for about `secs` seconds (at most `max` of them);
 * unpinned, so the store evicts old ones as needed. With `bytes`, each put
 * is deleted before the next (whose space it then reuses), and the first
 * one is timed on its own as NAME_first: it touches the arena's pages for
 * the first time in this process, which on some VMs costs more than the
 * copy (bench/README.md); memcpy_100MiB is measured with warm buffers. */
static void bench_put(prism_store *st, const char *name, uint64_t size, int max, double secs,
                      bool bytes)
{
    uint8_t *buf = malloc(size);
    memset(buf, 0x5a, size);
    if (bytes) {
        prism_object_id id = fresh_id();
        double t = now_s();
        prism_store_status s = prism_store_put(st, &id, NULL, buf, size, NULL, 0, 0);
        t = now_s() - t;
        if (s != PRISM_STORE_OK)
            die(st, s, "put");
        prism_store_delete(st, &id);
        char first[96];
        snprintf(first, sizeof first, "%s_first", name);
        result(first, (double)size / t / (1 << 30), "GiB/s");
    }
    int n = 0;
    double t0 = now_s(), t = t0;
    for (; n < max && t - t0 < secs; n++) {
        prism_object_id id = fresh_id();
        prism_store_status s = prism_store_put(st, &id, NULL, buf, size, NULL, 0, 0);
        if (s != PRISM_STORE_OK)
            die(st, s, "put");
        if (bytes) /* keep the arena free for the next big put */
            prism_store_delete(st, &id);
        if ((n & 63) == 0 || bytes)
            t = now_s();
    }
    t = now_s() - t0;
    if (bytes)
        result(name, (double)size * n / t / (1 << 30), "GiB/s");
    else
        result(name, n / t, "calls/s");
    free(buf);
}

/* Gets of one object put by another handle (`writer`): a get of an object
 * this handle just put is answered without the store (prism_store_put). */
static void bench_get(prism_store *st, prism_store *writer, const char *name, uint64_t size,
                      double secs)
{
    uint8_t *buf = malloc(size);
    memset(buf, 0x33, size);
    prism_object_id id = fresh_id();
    prism_store_status s = prism_store_put(writer, &id, NULL, buf, size, NULL, 0, PRISM_STORE_PIN);
    if (s != PRISM_STORE_OK)
        die(writer, s, "put");
    int n = 0;
    volatile uint8_t sink = 0;
    double t0 = now_s(), t = t0;
    for (; t - t0 < secs; n++) {
        prism_store_buffer b;
        if ((s = prism_store_get(st, &id, 0, &b)) != PRISM_STORE_OK)
            die(st, s, "get");
        sink ^= b.data[b.size - 1]; /* the bytes are there, not copied */
        prism_store_release(st, &id);
        if ((n & 63) == 0)
            t = now_s();
    }
    t = now_s() - t0;
    char nm[96];
    snprintf(nm, sizeof nm, "%s_latency", name);
    result(nm, t / n * 1e6, "us");
    snprintf(nm, sizeof nm, "%s_throughput", name);
    result(nm, (double)size * n / t / (1 << 30), "GiB/s");
    prism_store_delete(st, &id);
    free(buf);
}

/* A small put, then a get of it: by the handle that put it (answered from
 * the put's reference), or by another one (`reader`: its own round trip). */
/* A 64 B put by `st`, then a get and release by `reader`; returns its ID. */
static prism_object_id put_get(prism_store *st, prism_store *reader)
{
    static const uint8_t buf[64] = {1};
    prism_object_id id = fresh_id();
    prism_store_buffer b;
    prism_store_status s = prism_store_put(st, &id, NULL, buf, sizeof buf, NULL, 0, 0);
    if (s == PRISM_STORE_OK)
        s = prism_store_get(reader, &id, 0, &b);
    if (s != PRISM_STORE_OK)
        die(st, s, "put+get");
    prism_store_release(reader, &id);
    return id;
}

static void bench_pairs(prism_store *st, prism_store *reader, const char *name, double secs)
{
    int n = 0;
    double t0 = now_s(), t = t0;
    for (; t - t0 < secs; n++) {
        put_get(st, reader);
        if ((n & 63) == 0)
            t = now_s();
    }
    result(name, n / (now_s() - t0), "pairs/s");
}

static void bench_core(prism_store *st, prism_store *other)
{
    bench_put(st, "single_client_put_calls", 1 * KiB, 1 << 30, 2.0, false);
    /* get calls: one small object, fetched again and again */
    bench_get(st, other, "single_client_get_calls_1KiB", 1 * KiB, 2.0);
    bench_pairs(st, st, "single_client_put_get_pairs", 2.0);
    bench_pairs(st, other, "put_get_pairs_other_reader", 2.0);
    bench_put(st, "put_1KiB", 1 * KiB, 1 << 30, 1.0, true);
    bench_put(st, "put_1MiB", 1 * MiB, 2000, 1.0, true);
    bench_put(st, "single_client_put_gigabytes", 100 * MiB, 20, 3.0, true);
    bench_get(st, other, "get_1MiB", 1 * MiB, 1.0);
    bench_get(st, other, "get_100MiB", 100 * MiB, 1.0);
}

/* `n` pinned objects of `size` bytes of 0x42, their IDs into `ids`. */
static void put_pinned(prism_store *st, prism_object_id *ids, uint64_t n, uint64_t size)
{
    uint8_t *buf = malloc(size);
    if (!buf)
        die(st, PRISM_STORE_ERROR, "out of memory");
    memset(buf, 0x42, size);
    for (uint64_t i = 0; i < n; i++) {
        ids[i] = fresh_id();
        prism_store_status s =
            prism_store_put(st, &ids[i], NULL, buf, size, NULL, 0, PRISM_STORE_PIN);
        if (s != PRISM_STORE_OK)
            die(st, s, "put");
    }
    free(buf);
}

/* A get of one of them (restoring it when spilled), checked, and its release. */
static void get_checked(prism_store *st, const prism_object_id *id, uint64_t size)
{
    prism_store_buffer b;
    prism_store_status s = prism_store_get(st, id, 0, &b);
    if (s != PRISM_STORE_OK || b.data[size - 1] != 0x42)
        die(st, s, "get");
    prism_store_release(st, id);
}

/* Pinned objects of 8 MiB, `times` arenas of them, then all read back. */
static void bench_spill(prism_store *st, int times)
{
    const uint64_t size = 8 * MiB;
    uint64_t n = prism_store_capacity(st) * (uint64_t)times / size;
    prism_object_id *ids = calloc(n, sizeof *ids);
    if (!ids)
        die(st, PRISM_STORE_ERROR, "out of memory");
    prism_store_stats s0, s1, s2;
    prism_store_stats_get(st, &s0);
    double t = now_s();
    put_pinned(st, ids, n, size);
    double put_t = now_s() - t;
    prism_store_stats_get(st, &s1);
    uint64_t spilled = s1.spilled_bytes_total - s0.spilled_bytes_total;
    result("spill_put_total", (double)size * n / put_t / (1 << 30), "GiB/s");
    result("spill_bytes", (double)spilled / (1 << 30), "GiB");
    result("spill_throughput", (double)spilled / put_t / (1 << 30), "GiB/s");
    t = now_s();
    for (uint64_t i = 0; i < n; i++)
        get_checked(st, &ids[i], size);
    double get_t = now_s() - t;
    prism_store_stats_get(st, &s2);
    uint64_t restored = s2.restored_bytes_total - s1.restored_bytes_total;
    result("restore_bytes", (double)restored / (1 << 30), "GiB");
    result("restore_throughput", (double)restored / get_t / (1 << 30), "GiB/s");
    for (uint64_t i = 0; i < n; i++)
        prism_store_delete(st, &ids[i]);
    free(ids);
}

static volatile sig_atomic_t stop_ping;

static void on_stop(int sig)
{
    (void)sig;
    stop_ping = 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Latencies kept until a signal says stop, then their distribution. */
typedef struct lat_log {
    uint64_t *ns, worst;
    size_t n, cap;
} lat_log;

static void until_stopped(void)
{
    struct sigaction sa = {.sa_handler = on_stop};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

static bool lat_add(lat_log *l, uint64_t d)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 1 << 16;
        uint64_t *p = realloc(l->ns, cap * sizeof *p);
        if (!p)
            return false;
        l->ns = p;
        l->cap = cap;
    }
    l->ns[l->n++] = d;
    l->worst = d > l->worst ? d : l->worst;
    return true;
}

static void lat_report(lat_log *l, const char *prefix)
{
    char name[64];
    if (l->n) {
        qsort(l->ns, l->n, sizeof *l->ns, cmp_u64);
        static const struct {
            const char *what;
            size_t per_mille;
        } at[] = {{"median", 500}, {"p99", 990}, {"p999", 999}};
        snprintf(name, sizeof name, "%s_rounds", prefix);
        result(name, (double)l->n, "");
        for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
            snprintf(name, sizeof name, "%s_%s", prefix, at[i].what);
            result(name, (double)l->ns[l->n * at[i].per_mille / 1000] / 1e3, "us");
        }
        snprintf(name, sizeof name, "%s_max", prefix);
        result(name, (double)l->worst / 1e3, "us");
    }
    free(l->ns);
}

static void bench_ping(prism_store *st)
{
    until_stopped();
    lat_log l = {0};
    while (!stop_ping) {
        uint64_t t = prism_mono_ns();
        prism_object_id id = put_get(st, st);
        prism_store_delete(st, &id);
        if (!lat_add(&l, prism_mono_ns() - t))
            break;
        usleep(100); /* a client with other work, not a spinning one */
    }
    lat_report(&l, "ping");
}

/* readback: gets of objects that a spill beside it keeps pushing out; the
 * gets that found theirs on disk (the store's restore count moved) are
 * timed. */
static void bench_readback(prism_store *st)
{
    enum { N = 64 };
    const uint64_t size = 256 * KiB;
    until_stopped();
    prism_object_id ids[N];
    put_pinned(st, ids, N, size);
    printf("ready\n");
    fflush(stdout);
    lat_log l = {0};
    for (int i = 0; !stop_ping; i = (i + 1) % N) {
        prism_store_stats before, after;
        prism_store_stats_get(st, &before);
        uint64_t t = prism_mono_ns();
        get_checked(st, &ids[i], size);
        uint64_t d = prism_mono_ns() - t;
        prism_store_stats_get(st, &after);
        if (after.restores_total > before.restores_total && !lat_add(&l, d))
            break;
        usleep(100);
    }
    lat_report(&l, "readback");
    for (int i = 0; i < N; i++)
        prism_store_delete(st, &ids[i]);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "memcpy")) {
        bench_memcpy();
        return 0;
    }
    if (argc < 3) {
        fprintf(stderr,
                "usage: %s memcpy | core SOCKET | spill SOCKET TIMES | ping SOCKET | "
                "readback SOCKET\n",
                argv[0]);
        return 2;
    }
    prism_store *st;
    char err[256];
    if (prism_store_connect(&st, argv[2], err, sizeof err) != PRISM_STORE_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    prism_store *other = NULL;
    if (!strcmp(argv[1], "core") &&
        prism_store_connect(&other, argv[2], err, sizeof err) != PRISM_STORE_OK) {
        fprintf(stderr, "%s\n", err);
        prism_store_destroy(st);
        return 1;
    }
    if (!strcmp(argv[1], "core"))
        bench_core(st, other);
    else if (!strcmp(argv[1], "spill"))
        bench_spill(st, argc > 3 ? atoi(argv[3]) : 3);
    else if (!strcmp(argv[1], "ping"))
        bench_ping(st);
    else if (!strcmp(argv[1], "readback"))
        bench_readback(st);
    prism_store_destroy(other);
    prism_store_destroy(st);
    return 0;
}
