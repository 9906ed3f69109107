/* Compiled DAGs against the same chain as ordinary actor calls
 * (bench/dag/run.sh): chains of 1, 2 and 4 builtin Counters running echo,
 * values of 8 B and 1 KiB. One JSON line per result:
 *
 *   dag    execute -> get, one at a time: the latency of an execution, and
 *          per hop (an execution crosses k + 1 processes: driver, k actors,
 *          driver); then with 8 in flight: executions per second
 *   dag-in-place  the same with prism_dag_get_in_place, one at a time: the
 *          result read in its slot, not copied out
 *   calls  the same chain as prism_actor_call -> prism_get per stage, each
 *          stage's result passed to the next: 2k hops (there and back per stage)
 *
 * With --large, instead: 1 MiB and 100 MiB values through chains of 1 and 2,
 * one at a time, in the slot (max_buf_size the value's size + 1 MiB, "via":
 * "slot"; got both ways, then got in place with the caller's bytes sent
 * each time: "dag-made" wraps them in a fresh value and executes it,
 * "dag-written" writes them into the input's slot with
 * prism_dag_execute_begin/_end) and through the object store (64 KiB
 * slots, "via": "store"), against the same calls.
 *
 * With --nodes A,B, instead: the DAG alone ("mode": "dag-tcp"), the driver
 * counted on node A and the actors on B, A, B, A, so that every hop of the
 * chain (input and output included) is a TCP edge between the nodes.
 *
 * With --remote A,B: the DAG alone ("mode": "dag-remote"), the driver on
 * node A and every actor on B: the input and the output cross the nodes
 * (TCP), every hop between two actors stays on B (a shared-memory ring), so
 * chain 4 minus chain 1 is three hops between actors of a node that is not
 * the driver's.
 *
 * With --gpu PKG, instead: device tensors of 8 B, 1 MiB and 100 MiB through
 * GpuStage actors of package PKG (tests/integration/gpu_fns.c; each leases
 * a quarter of a GPU), one at a
 * time: input (the size) -> A.make -> k x pass -> Z.done -> output (the
 * size), for k = 0 and 2, with device slots of the size ("mode":
 * "dag-gpu", "stages": k). Every edge between actors carries the tensor on
 * the device: a device hop is (k=2 - k=0) / 2. "copy_us": cudaMemcpyAsync
 * device to device and a sync of the same bytes in A's process.
 *
 * With --chain K: the DAG rows of that chain alone (8 B and 1 KiB, no actor
 * calls), for a profiler or perf attached to its processes; --n N times N
 * executions one at a time (after N / 10 of warm-up) and skips the rate's
 * run, so that counts per execution are easy to divide out.
 *
 *   prism-dag-bench [--quick] [--large | --nodes A,B | --remote A,B | --gpu PKG] [--chain K] [--n
 * N]
 *                   [--spin-us N]
 *   (against $PRISM_ADDRESS / $PRISM_HOME; --spin-us sets the DAG's spin_us, default 50) */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <prism/dag.h>

#define MAX_CHAIN 4
#define INFLIGHT 8

static long n_dag = 20000, n_calls = 2000, n_rate = 50000;
static long spin_us = -1;      /* -1: the default */
static const char *via = NULL; /* --large: "slot" or "store" */
static uint64_t max_buf = 1u << 20;
static int inflight = INFLIGHT;
static const char *dag_mode = "dag"; /* "dag-tcp" with --nodes, "dag-remote" with --remote */
static int only_chain;               /* --chain K: that chain's DAG rows alone */

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "prism-dag-bench: %s: %s\n", what, prism_last_error());
    exit(1);
}

static int cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *mode, int k, size_t payload, int64_t *lat, long n, int hops,
                   double rate)
{
    qsort(lat, (size_t)n, sizeof *lat, cmp);
    double med = (double)lat[n / 2] / 1e3, p99 = (double)lat[(long)((double)n * 0.99)] / 1e3;
    printf("{\"system\": \"dag\", \"mode\": \"%s\", \"chain\": %d, \"payload\": %zu, \"n\": %ld, "
           "\"median_us\": %.3f, \"p99_us\": %.3f, \"hop_us\": %.3f, \"rate\": %.0f, "
           "\"spin_us\": %ld, \"via\": \"%s\"}\n",
           mode, k, payload, n, med, p99, med / hops, rate, spin_us, via ? via : "slot");
    fflush(stdout);
}

static prism_dag_compiled *compile(prism_client *c, prism_actor **a, int k)
{
    prism_dag *g;
    prism_dag_node *n;
    if (prism_dag_create(&g) != PRISM_OK || prism_dag_input(g, &n) != PRISM_OK)
        die("graph");
    for (int i = 0; i < k; i++)
        if (prism_dag_bind(g, a[i], "echo", &n, 1, &n) != PRISM_OK)
            die("bind");
    prism_dag_options o = PRISM_DAG_OPTIONS_INIT;
    o.max_inflight = inflight;
    o.max_buf_size = max_buf;
    if (spin_us >= 0)
        o.spin_us = (uint32_t)spin_us;
    prism_dag_compiled *d;
    if (prism_dag_compile(c, g, &o, &d) != PRISM_OK)
        die("compile");
    prism_dag_free(g);
    return d;
}

static void one(prism_dag_compiled *d, const prism_value *v)
{
    prism_dag_future *f;
    prism_value *out;
    if (prism_dag_execute(d, v, &f) != PRISM_OK || prism_dag_get(f, 10000, &out) != PRISM_OK)
        die("execute");
    prism_value_free(out);
}

static void one_in_place(prism_dag_compiled *d, const prism_value *v)
{
    prism_dag_future *f;
    const prism_value *out;
    if (prism_dag_execute(d, v, &f) != PRISM_OK ||
        prism_dag_get_in_place(f, 10000, &out) != PRISM_OK)
        die("execute");
}

/* --large, in the slot: the caller's own bytes (v's) sent each time, got
 * in place, as a producer sends what it made: wrapped in a fresh value
 * (prism_value_bytes copies them) and executed, or written into the input's
 * slot (prism_dag_execute_begin/_end). */
static void one_made(prism_dag_compiled *d, const prism_value *v)
{
    size_t len;
    const void *bytes = prism_value_data(v, &len);
    prism_value *made = prism_value_bytes(bytes, len);
    one_in_place(d, made);
    prism_value_free(made);
}

static void one_written(prism_dag_compiled *d, const prism_value *v)
{
    size_t len;
    const void *bytes = prism_value_data(v, &len);
    void *in;
    prism_dag_future *f;
    const prism_value *out;
    if (prism_dag_execute_begin(d, len, &in) != PRISM_OK)
        die("begin");
    memcpy(in, bytes, len);
    if (prism_dag_execute_end(d, &f) != PRISM_OK ||
        prism_dag_get_in_place(f, 10000, &out) != PRISM_OK)
        die("execute");
}

/* Latencies of n_dag executions one at a time, after `warm` of warm-up. */
static void time_one(prism_dag_compiled *d, const prism_value *v,
                     void (*how)(prism_dag_compiled *, const prism_value *), long warm,
                     int64_t *lat)
{
    for (long i = -warm; i < n_dag; i++) {
        int64_t t0 = now_ns();
        how(d, v);
        if (i >= 0)
            lat[i] = now_ns() - t0;
    }
}

/* Executions per second with INFLIGHT in flight. */
static double pipelined(prism_dag_compiled *d, const prism_value *v)
{
    prism_dag_future *f[INFLIGHT];
    int64_t t0 = now_ns();
    for (long x = 0; x < n_rate + INFLIGHT; x++) {
        prism_value *out;
        if (x >= INFLIGHT && prism_dag_get(f[x % INFLIGHT], 10000, &out) != PRISM_OK)
            die("get");
        if (x >= INFLIGHT)
            prism_value_free(out);
        if (x < n_rate && prism_dag_execute(d, v, &f[x % INFLIGHT]) != PRISM_OK)
            die("execute");
    }
    return (double)n_rate / ((double)(now_ns() - t0) / 1e9);
}

static void bench_dag(prism_client *c, prism_actor **a, int k, const prism_value *v, size_t size)
{
    prism_dag_compiled *d = compile(c, a, k);
    int64_t *lat = calloc((size_t)n_dag, sizeof *lat);
    /* Warm-up: every slot used once by every process (a 100 MiB slot's
     * pages are mapped on first touch: 25,600 page faults), then a tenth. */
    long warm = n_dag / 10 > 2 * inflight ? n_dag / 10 : 2 * inflight;
    time_one(d, v, one, warm, lat);
    double rate = via ? 0 : pipelined(d, v);
    report(dag_mode, k, size, lat, n_dag, k + 1, rate);
    if (!strcmp(dag_mode, "dag") && !(via && !strcmp(via, "store"))) {
        time_one(d, v, one_in_place, n_dag / 10 + 1, lat);
        report("dag-in-place", k, size, lat, n_dag, k + 1, 0);
    }
    if (via && !strcmp(via, "slot")) {
        time_one(d, v, one_made, n_dag / 10 + 1, lat);
        report("dag-made", k, size, lat, n_dag, k + 1, 0);
        time_one(d, v, one_written, n_dag / 10 + 1, lat);
        report("dag-written", k, size, lat, n_dag, k + 1, 0);
    }
    free(lat);
    if (prism_dag_teardown(d) != PRISM_OK)
        die("teardown");
}

/* The chain as actor calls: each stage's result goes to the next stage. */
static void bench_calls(prism_client *c, prism_actor **a, int k, const prism_value *v, size_t size)
{
    int64_t *lat = calloc((size_t)n_calls, sizeof *lat);
    for (long i = -(n_calls / 10 > 2 ? n_calls / 10 : 2); i < n_calls; i++) {
        int64_t t0 = now_ns();
        prism_value *cur = prism_value_copy(v);
        for (int s = 0; s < k; s++) {
            prism_ref *r;
            prism_value *next = NULL;
            if (prism_actor_call(c, a[s], "echo", &cur, 1, 1, &r) != PRISM_OK ||
                prism_get(c, r, 10000, &next) != PRISM_OK)
                die("call");
            prism_ref_release(r);
            prism_value_free(cur);
            cur = next;
        }
        prism_value_free(cur);
        if (i >= 0)
            lat[i] = now_ns() - t0;
    }
    report("calls", k, size, lat, n_calls, 2 * k, 0);
    free(lat);
}

/* 8 B and 1 KiB through chains of 1, 2 and 4. */
static void bench_small(prism_client *c, prism_actor **a)
{
    static const size_t sizes[] = {8, 1024};
    static const int chains[] = {1, 2, 4};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        char *bytes = calloc(1, sizes[s]);
        prism_value *v = prism_value_bytes(bytes, sizes[s]);
        for (size_t k = 0; k < sizeof chains / sizeof *chains; k++) {
            if (only_chain && chains[k] != only_chain)
                continue;
            bench_dag(c, a, chains[k], v, sizes[s]);
            if (!strcmp(dag_mode, "dag") && !only_chain)
                bench_calls(c, a, chains[k], v, sizes[s]);
        }
        prism_value_free(v);
        free(bytes);
    }
}

/* --large: 1 MiB and 100 MiB values, each in the slot (which takes its
 * encoding), then through the object store (64 KiB slots). */
static void bench_large(prism_client *c, prism_actor **a, bool quick)
{
    static const size_t sizes[] = {1u << 20, 100u << 20};
    static const char *const vias[] = {"slot", "store"};
    inflight = 2;
    for (int s = 0; s < 2; s++) {
        size_t size = sizes[s];
        bool huge = size > (1u << 20);
        n_dag = huge ? (quick ? 5 : 20) : (quick ? 50 : 300);
        n_calls = huge ? (quick ? 3 : 10) : (quick ? 20 : 100);
        char *bytes = calloc(1, size);
        prism_value *v = bytes ? prism_value_bytes(bytes, size) : NULL;
        if (!v)
            die("a large value");
        for (int m = 0; m < 2; m++) {
            via = vias[m];
            max_buf = m == 0 ? size + (1u << 20) : 64u << 10;
            for (int k = 1; k <= 2; k++) {
                bench_dag(c, a, k, v, size);
                if (m == 0)
                    bench_calls(c, a, k, v, size);
            }
        }
        prism_value_free(v);
        free(bytes);
    }
}

/* A call of `method` with one JSON argument: its JSON result as a number. */
static double call_json(prism_client *c, prism_actor *a, const char *method, const char *arg)
{
    prism_value *v = prism_value_json(arg), *got = NULL;
    prism_ref *r;
    if (prism_actor_call(c, a, method, &v, 1, 1, &r) != PRISM_OK ||
        prism_get(c, r, 60000, &got) != PRISM_OK)
        die(method);
    double x = atof(prism_value_json_text(got));
    prism_value_free(v);
    prism_value_free(got);
    prism_ref_release(r);
    return x;
}

/* --gpu PKG: device hops through GpuStage actors. */
static void bench_gpu(prism_client *c, const char *pkg, bool quick)
{
    prism_actor *g[4]; /* A (make), two passes, Z (done) */
    for (int i = 0; i < 4; i++) {
        prism_actor_options o = PRISM_ACTOR_OPTIONS_INIT;
        o.num_cpus = 0.25;
        o.num_gpus = 0.25; /* four share one device */
        if (prism_actor_create(c, pkg, "GpuStage", NULL, 0, &o, &g[i]) != PRISM_OK)
            die("create GpuStage");
    }
    static const size_t sizes[] = {8, 1u << 20, 100u << 20};
    for (size_t s = 0; s < 3; s++) {
        char n[32];
        snprintf(n, sizeof n, "%zu", sizes[s]);
        double copy_us = call_json(c, g[0], "copy_us", n);
        long runs = sizes[s] > (1u << 20) ? (quick ? 50 : 200) : (quick ? 500 : 2000);
        for (int k = 0; k <= 2; k += 2) {
            prism_dag *dag;
            prism_dag_node *x;
            if (prism_dag_create(&dag) != PRISM_OK || prism_dag_input(dag, &x) != PRISM_OK ||
                prism_dag_bind(dag, g[0], "make", &x, 1, &x) != PRISM_OK)
                die("graph");
            for (int i = 0; i < k; i++)
                if (prism_dag_bind(dag, g[1 + i], "pass", &x, 1, &x) != PRISM_OK)
                    die("bind");
            if (prism_dag_bind(dag, g[3], "done", &x, 1, &x) != PRISM_OK)
                die("bind");
            prism_dag_options o = PRISM_DAG_OPTIONS_INIT;
            o.max_inflight = 2;
            o.max_device_buf_size = sizes[s];
            if (spin_us >= 0)
                o.spin_us = (uint32_t)spin_us;
            prism_dag_compiled *d;
            if (prism_dag_compile(c, dag, &o, &d) != PRISM_OK)
                die("compile");
            prism_dag_free(dag);
            prism_value *v = prism_value_json(n);
            int64_t *lat = calloc((size_t)runs, sizeof *lat);
            for (long i = -runs / 10 - 4; i < runs; i++) {
                int64_t t0 = now_ns();
                one(d, v);
                if (i >= 0)
                    lat[i] = now_ns() - t0;
            }
            qsort(lat, (size_t)runs, sizeof *lat, cmp);
            printf("{\"system\": \"dag\", \"mode\": \"dag-gpu\", \"stages\": %d, \"payload\": %zu, "
                   "\"n\": %ld, \"median_us\": %.3f, \"p99_us\": %.3f, \"copy_us\": %.2f}\n",
                   k, sizes[s], runs, (double)lat[runs / 2] / 1e3,
                   (double)lat[(long)((double)runs * 0.99)] / 1e3, copy_us);
            fflush(stdout);
            free(lat);
            prism_value_free(v);
            if (prism_dag_teardown(d) != PRISM_OK)
                die("teardown");
        }
    }
    for (int i = 0; i < 4; i++)
        prism_actor_release(g[i]);
}

int main(int argc, char **argv)
{
    bool quick = false, large = false;
    const char *gpu_pkg = NULL;
    char node_a[128] = "", node_b[128] = "";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            quick = true;
            n_dag = 2000;
            n_calls = 200;
            n_rate = 5000;
        } else if (!strcmp(argv[i], "--large")) {
            large = true;
        } else if (!strcmp(argv[i], "--gpu") && i + 1 < argc) {
            gpu_pkg = argv[++i];
        } else if (!strcmp(argv[i], "--chain") && i + 1 < argc) {
            only_chain = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--n") && i + 1 < argc) {
            n_dag = atol(argv[++i]);
            n_rate = 0;
        } else if (!strcmp(argv[i], "--spin-us") && i + 1 < argc) {
            spin_us = atol(argv[++i]);
        } else if (!strcmp(argv[i], "--nodes") && i + 1 < argc &&
                   sscanf(argv[++i], "%127[^,],%127s", node_a, node_b) == 2) {
            dag_mode = "dag-tcp";
            setenv("PRISM_NODE_ID", node_a, 1); /* the driver's node */
        } else if (!strcmp(argv[i], "--remote") && i + 1 < argc &&
                   sscanf(argv[++i], "%127[^,],%127s", node_a, node_b) == 2) {
            dag_mode = "dag-remote";
            setenv("PRISM_NODE_ID", node_a, 1);
        }
    }
    prism_client *c;
    if (prism_connect(NULL, &c) != PRISM_OK)
        die("connect");
    if (gpu_pkg) {
        bench_gpu(c, gpu_pkg, quick);
        prism_disconnect(c);
        return 0;
    }
    prism_actor *a[MAX_CHAIN];
    for (int i = 0; i < MAX_CHAIN; i++) {
        prism_actor_options o = PRISM_ACTOR_OPTIONS_INIT;
        o.num_cpus = 0.25; /* the chain fits a 1-CPU node */
        if (node_b[0]) {
            o.strategy = PRISM_STRATEGY_NODE_AFFINITY;
            o.node_id = i % 2 && !strcmp(dag_mode, "dag-tcp") ? node_a : node_b;
        }
        if (prism_actor_create(c, "builtin", "Counter", NULL, 0, &o, &a[i]) != PRISM_OK)
            die("create");
    }
    /* Every actor alive, and the node agent done starting their workers,
     * before anything is timed. */
    for (int i = 0; i < MAX_CHAIN; i++) {
        prism_ref *r;
        prism_value *v;
        if (prism_actor_call(c, a[i], "get", NULL, 0, 1, &r) != PRISM_OK ||
            prism_get(c, r, 60000, &v) != PRISM_OK)
            die("first call");
        prism_value_free(v);
        prism_ref_release(r);
    }
    sleep(2);
    if (large)
        bench_large(c, a, quick);
    else
        bench_small(c, a);
    for (int i = 0; i < MAX_CHAIN; i++)
        prism_actor_release(a[i]);
    prism_disconnect(c);
    return 0;
}
