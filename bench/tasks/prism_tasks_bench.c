/* Task benchmarks of Prism, named as in Ray's microbenchmark. A driver on
 * libprism: it connects to the cluster of PRISM_ADDRESS/PRISM_TOKEN (or
 * $PRISM_HOME), runs one benchmark with a warm-up, times it with
 * CLOCK_MONOTONIC and prints one JSON line per result:
 *
 *   {"system": "prism", "bench": NAME, "rate": ..., "unit": ..., ...}
 *
 *   prism-tasks-bench BENCH [options]
 *
 * BENCH:
 *   sync     single_client_tasks_sync: submit + get one trivial task at a
 *            time; median and p99 latency and the rate
 *   cold     sync with a pause of 200 ms before each task: well past the 50 ms
 *            an idle lease is kept (checked every 50 ms), so each task gets a new lease and a new
 *            connection to its worker (the handshake, the lease check):
 *            the cost of setting a connection up, median and p99
 *   async    single_client_tasks_async: submit N trivial tasks, then get
 *            them all; the median rate of the rounds
 *   multi    multi_client_tasks_async: --clients driver processes, each with
 *            its own client, run `async` rounds started together; the
 *            rate is all their tasks over the time from the first start to
 *            the last end; a second line, multi_client_fairness, says how
 *            evenly the clients progressed: Jain's index of the results
 *            each got in each tenth of the round, and the longest any
 *            client waited for its first result
 *   wait     single_client_wait_1k_refs: submit 1000 tasks, then
 *            prism_wait(k=1) on those not yet taken, taking one ready
 *            reference per call, until none is left (Ray's ray.wait loop)
 *   get10k   single_client_get_object_containing_10k_refs: put a list value
 *            holding 10,000 references, then get it
 *   get10k-task  the same list passed through a task (echo) and got back
 *   arg      tasks taking a put argument of --size bytes (a u8 tensor): the
 *            checksum is checked once with builtin sum, then each timed task
 *            is echo(small, big) returning the small value, so the time is
 *            the argument's delivery, not arithmetic
 *   all      each of the above in turn (arg at 1 MiB and 100 MiB), each in
 *            a child process of its own
 *
 * Options: --n N (tasks per round), --rounds R, --warmup W, --clients K,
 * --size BYTES (K/M/G suffixes, binary), --max-seconds S (a time bound on
 * the timed part of sync and arg), --num-cpus X (the tasks' CPU demand).
 *
 * The trivial task is builtin echo with no argument (it returns null). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench_util.h"
#include "bench_prism.h"

typedef struct cfg {
    long n, rounds, warmup, clients;
    long long size;
    double max_seconds, num_cpus;
    bool n_set, rounds_set, warmup_set;
} cfg;

static prism_task_options task_opts(const cfg *c)
{
    prism_task_options o = PRISM_TASK_OPTIONS_INIT;
    o.num_cpus = c->num_cpus;
    return o;
}

/* Submits the trivial task. */
static prism_status submit_trivial(prism_client *c, const prism_task_options *o, prism_ref **r)
{
    return prism_submit(c, "builtin", "echo", NULL, 0, o, r);
}

/* Submits n trivial tasks, then gets them all; done[i] (when not NULL)
 * receives the time task i's result was got. */
static prism_status async_round(prism_client *c, const prism_task_options *o, prism_ref **refs,
                                long n, int64_t *done)
{
    prism_status s = PRISM_OK;
    long submitted = 0;
    for (; submitted < n && s == PRISM_OK; submitted++)
        s = submit_trivial(c, o, &refs[submitted]);
    if (s != PRISM_OK)
        submitted--;
    for (long i = 0; i < submitted; i++) {
        prism_status g = s == PRISM_OK ? bench_get_null(c, refs[i]) : PRISM_OK;
        if (s == PRISM_OK)
            s = g;
        if (done && s == PRISM_OK)
            done[i] = bench_now_ns();
        prism_ref_release(refs[i]);
    }
    return s;
}

/* ---------- single_client_tasks_sync ---------- */

#define COLD_PAUSE_NS 200000000LL

static int bench_sync(const cfg *cf, bool cold)
{
    bench_name = cold ? "tasks_after_idle_new_lease" : "single_client_tasks_sync";
    prism_client *c;
    if (bench_connect(&c))
        return 1;
    prism_task_options o = task_opts(cf);
    for (long i = 0; i < cf->warmup; i++) {
        prism_ref *r = NULL;
        BENCH_TRY(submit_trivial(c, &o, &r), "warm-up submit");
        prism_status s = bench_get_null(c, r);
        prism_ref_release(r);
        BENCH_TRY(s, "warm-up get");
    }
    int64_t *lat = malloc((size_t)cf->n * sizeof *lat);
    long n = 0;
    int64_t t0 = bench_now_ns(), limit = (int64_t)(cf->max_seconds * 1e9);
    while (n < cf->n) {
        if (cold) {
            struct timespec pause = {0, COLD_PAUSE_NS};
            nanosleep(&pause, NULL);
        }
        int64_t a = bench_now_ns();
        prism_ref *r = NULL;
        BENCH_TRY(submit_trivial(c, &o, &r), "submit");
        prism_status s = bench_get_null(c, r);
        prism_ref_release(r);
        BENCH_TRY(s, "get");
        int64_t b = bench_now_ns();
        lat[n++] = b - a;
        if (b - t0 > limit)
            break;
    }
    double total = (double)(bench_now_ns() - t0) / 1e9 -
                   (cold ? (double)n * COLD_PAUSE_NS / 1e9 : 0);
    printf("{\"system\": \"prism\", \"bench\": \"%s\", ", bench_name);
    bench_latency_fields(stdout, lat, (size_t)n, total, "tasks/s");
    printf("}\n");
    fflush(stdout);
    free(lat);
    prism_disconnect(c);
    return 0;
}

/* ---------- single_client_tasks_async ---------- */

static int bench_async(const cfg *cf)
{
    bench_name = "single_client_tasks_async";
    prism_client *c;
    if (bench_connect(&c))
        return 1;
    prism_task_options o = task_opts(cf);
    long cap = cf->n > cf->warmup ? cf->n : cf->warmup;
    prism_ref **refs = calloc((size_t)cap, sizeof *refs);
    BENCH_TRY(async_round(c, &o, refs, cf->warmup, NULL), "warm-up");
    double *rates = calloc((size_t)cf->rounds, sizeof *rates);
    for (long r = 0; r < cf->rounds; r++) {
        int64_t t0 = bench_now_ns();
        BENCH_TRY(async_round(c, &o, refs, cf->n, NULL), "round");
        rates[r] = (double)cf->n / ((double)(bench_now_ns() - t0) / 1e9);
    }
    double lo = rates[0], hi = rates[0];
    for (long r = 0; r < cf->rounds; r++) {
        lo = rates[r] < lo ? rates[r] : lo;
        hi = rates[r] > hi ? rates[r] : hi;
    }
    printf("{\"system\": \"prism\", \"bench\": \"%s\", \"n\": %ld, \"rounds\": %ld, "
           "\"rate\": %.1f, \"unit\": \"tasks/s\", \"rate_min\": %.1f, \"rate_max\": %.1f}\n",
           bench_name, cf->n, cf->rounds, bench_median_d(rates, (size_t)cf->rounds), lo, hi);
    fflush(stdout);
    free(rates);
    free(refs);
    prism_disconnect(c);
    return 0;
}

/* ---------- multi_client_tasks_async ---------- */

/* Each client writes, for every round, when it started and when it got each
 * result into memory shared with the parent (mapped before the fork):
 * times[(round * clients + client) * (n + 1)], the start first. */
typedef struct multi_arg {
    const cfg *cf;
    int64_t *times;
} multi_arg;

#define FAIR_SLICES 10

static int64_t *multi_times(const multi_arg *m, long round, long client)
{
    return m->times + (size_t)(round * m->cf->clients + client) * (size_t)(m->cf->n + 1);
}

/* One client process: its own client, a warm-up, then the rounds. */
static int multi_child(void *arg, long index, bench_client *cl)
{
    const multi_arg *m = arg;
    const cfg *cf = m->cf;
    prism_client *c;
    prism_status s = prism_connect(NULL, &c);
    if (s != PRISM_OK)
        return bench_client_fail_status(cl, "connect", s);
    prism_task_options o = task_opts(cf);
    long cap = cf->n > cf->warmup ? cf->n : cf->warmup;
    prism_ref **refs = calloc((size_t)cap, sizeof *refs);
    const char *what = "warm-up";
    s = async_round(c, &o, refs, cf->warmup, NULL);
    for (long r = 0; r < cf->rounds && s == PRISM_OK; r++) {
        what = "round";
        if (bench_client_ready(cl) != 0)
            return 1;
        int64_t *t = multi_times(m, r, index);
        int64_t start = t[0] = bench_now_ns();
        s = async_round(c, &o, refs, cf->n, t + 1);
        if (s == PRISM_OK)
            bench_client_done(cl, cf->n, start, bench_now_ns());
    }
    if (s != PRISM_OK)
        return bench_client_fail_status(cl, what, s);
    free(refs);
    prism_disconnect(c);
    return 0;
}

/* How evenly the clients progressed in round r: the round (first start to
 * last result) cut into FAIR_SLICES slices, Jain's index of the clients'
 * results in each slice that has any ((sum x)^2 / (k sum x^2): 1 when
 * every client got as many, 1/k when one got them all), averaged; and the
 * latest first result of any client after the round's start, in ms (how
 * long the slowest client waited for anything). */
static void multi_fairness(const multi_arg *m, long r, double *jain, double *first_ms)
{
    long k = m->cf->clients, n = m->cf->n;
    int64_t t0 = INT64_MAX, t1 = 0, latest_first = 0;
    for (long c = 0; c < k; c++) {
        int64_t *t = multi_times(m, r, c);
        t0 = t[0] < t0 ? t[0] : t0;
        t1 = t[n] > t1 ? t[n] : t1;
    }
    for (long c = 0; c < k; c++)
        latest_first = multi_times(m, r, c)[1] - t0 > latest_first ? multi_times(m, r, c)[1] - t0
                                                                   : latest_first;
    double sum_j = 0;
    int used = 0;
    double width = (double)(t1 - t0) / FAIR_SLICES;
    for (int sl = 0; sl < FAIR_SLICES && width > 0; sl++) {
        double sum = 0, sq = 0;
        for (long c = 0; c < k; c++) {
            int64_t *t = multi_times(m, r, c) + 1;
            long x = 0;
            for (long i = 0; i < n; i++) {
                int sli = (int)((double)(t[i] - t0) / width);
                x += (sli >= FAIR_SLICES ? FAIR_SLICES - 1 : sli) == sl;
            }
            sum += (double)x;
            sq += (double)x * (double)x;
        }
        if (sum > 0) {
            sum_j += sum * sum / ((double)k * sq);
            used++;
        }
    }
    *jain = used ? sum_j / used : 0;
    *first_ms = (double)latest_first / 1e6;
}

static int bench_multi(const cfg *cf)
{
    bench_name = "multi_client_tasks_async";
    double *rates = calloc((size_t)cf->rounds, sizeof *rates);
    size_t bytes = (size_t)(cf->rounds * cf->clients) * (size_t)(cf->n + 1) * sizeof(int64_t);
    multi_arg m = {.cf = cf,
                   .times = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                                 -1, 0)};
    char error[300];
    if (m.times == MAP_FAILED) {
        free(rates);
        bench_error_line(bench_prog, "prism", bench_name, "mmap failed");
        return 1;
    }
    if (bench_clients_rounds(cf->clients, cf->rounds, multi_child, &m, BENCH_GET_TIMEOUT_MS + 60000,
                             rates, error, sizeof error) != 0) {
        free(rates);
        munmap(m.times, bytes);
        bench_error_line(bench_prog, "prism", bench_name, error);
        return 1;
    }
    bench_print_rounds(cf->clients, cf->n * cf->clients, rates, cf->rounds, "tasks/s");
    double *jain = calloc((size_t)cf->rounds, sizeof *jain);
    double *first = calloc((size_t)cf->rounds, sizeof *first);
    printf("{\"system\": \"prism\", \"bench\": \"multi_client_fairness\", \"clients\": %ld, "
           "\"round_jain\": [",
           cf->clients);
    for (long r = 0; r < cf->rounds; r++) {
        multi_fairness(&m, r, &jain[r], &first[r]);
        printf("%s%.3f", r ? ", " : "", jain[r]);
    }
    printf("], \"round_first_result_ms\": [");
    for (long r = 0; r < cf->rounds; r++)
        printf("%s%.1f", r ? ", " : "", first[r]);
    printf("], \"jain\": %.3f, \"first_result_ms\": %.1f, \"unit\": \"Jain index\"}\n",
           bench_median_d(jain, (size_t)cf->rounds), bench_median_d(first, (size_t)cf->rounds));
    fflush(stdout);
    free(jain);
    free(first);
    free(rates);
    munmap(m.times, bytes);
    return 0;
}

/* ---------- single_client_wait_1k_refs ---------- */

static prism_status wait_round(prism_client *c, const prism_task_options *o, prism_ref **refs,
                               bool *ready, long n, long *calls)
{
    prism_status s = PRISM_OK;
    long have = 0;
    for (; have < n; have++)
        if ((s = submit_trivial(c, o, &refs[have])) != PRISM_OK)
            break;
    while (have > 0 && s == PRISM_OK) {
        s = prism_wait(c, refs, (size_t)have, 1, BENCH_GET_TIMEOUT_MS, ready);
        (*calls)++;
        long j = 0;
        while (j < have && !ready[j])
            j++;
        if (s != PRISM_OK || j == have)
            break;
        prism_ref_release(refs[j]); /* taken: like ray.wait(not_ready) returning one */
        refs[j] = refs[--have];
    }
    for (long i = 0; i < have; i++)
        prism_ref_release(refs[i]);
    return s;
}

static int bench_wait(const cfg *cf)
{
    bench_name = "single_client_wait_1k_refs";
    prism_client *c;
    if (bench_connect(&c))
        return 1;
    prism_task_options o = task_opts(cf);
    long n = 1000, calls = 0;
    prism_ref **refs = calloc((size_t)n, sizeof *refs);
    bool *ready = calloc((size_t)n, sizeof *ready);
    for (long w = 0; w < cf->warmup; w++)
        BENCH_TRY(wait_round(c, &o, refs, ready, n, &calls), "warm-up");
    double *ms = calloc((size_t)cf->rounds, sizeof *ms);
    calls = 0;
    int64_t t0 = bench_now_ns();
    for (long r = 0; r < cf->rounds; r++) {
        int64_t a = bench_now_ns();
        BENCH_TRY(wait_round(c, &o, refs, ready, n, &calls), "round");
        ms[r] = (double)(bench_now_ns() - a) / 1e6;
    }
    double total = (double)(bench_now_ns() - t0) / 1e9;
    printf("{\"system\": \"prism\", \"bench\": \"%s\", \"rounds\": %ld, \"rate\": %.2f, "
           "\"unit\": \"rounds/s\", \"median_ms\": %.2f, \"wait_calls\": %ld}\n",
           bench_name, cf->rounds, (double)cf->rounds / total,
           bench_median_d(ms, (size_t)cf->rounds), calls);
    fflush(stdout);
    free(ms);
    free(refs);
    free(ready);
    prism_disconnect(c);
    return 0;
}

/* ---------- single_client_get_object_containing_10k_refs ---------- */

static prism_status check_list(const prism_value *v, size_t n)
{
    if (prism_value_kind_of(v) != PRISM_VALUE_LIST || prism_value_list_size(v) != n)
        return PRISM_ERR_INTERNAL;
    for (size_t i = 0; i < n; i += 997)
        if (prism_value_kind_of(prism_value_list_get(v, i)) != PRISM_VALUE_REF)
            return PRISM_ERR_INTERNAL;
    return PRISM_OK;
}

static int bench_get10k(const cfg *cf, bool via_task)
{
    bench_name = via_task ? "single_client_get_object_containing_10k_refs_via_task"
                          : "single_client_get_object_containing_10k_refs";
    prism_client *c;
    if (bench_connect(&c))
        return 1;
    const size_t n = 10000;
    prism_ref **items = calloc(n, sizeof *items);
    prism_value *one = prism_value_json("1"), *list = prism_value_list();
    for (size_t i = 0; i < n; i++) {
        BENCH_TRY(prism_put(c, one, &items[i]), "put an item");
        prism_value_list_append(list, prism_value_ref(items[i]));
    }
    prism_task_options o = task_opts(cf);
    double *ms = calloc((size_t)cf->rounds, sizeof *ms);
    int64_t t0 = 0;
    for (long r = -cf->warmup; r < cf->rounds; r++) {
        if (r == 0)
            t0 = bench_now_ns();
        int64_t a = bench_now_ns();
        prism_ref *holder = NULL;
        if (via_task)
            BENCH_TRY(prism_submit(c, "builtin", "echo", &list, 1, &o, &holder),
                      "submit echo(list)");
        else
            BENCH_TRY(prism_put(c, list, &holder), "put the list");
        prism_value *v = NULL;
        prism_status s = prism_get(c, holder, BENCH_GET_TIMEOUT_MS, &v);
        if (s == PRISM_OK)
            s = check_list(v, n);
        prism_value_free(v);
        prism_ref_release(holder);
        BENCH_TRY(s, "get the list");
        if (r >= 0)
            ms[r] = (double)(bench_now_ns() - a) / 1e6;
    }
    double total = (double)(bench_now_ns() - t0) / 1e9;
    printf("{\"system\": \"prism\", \"bench\": \"%s\", \"rounds\": %ld, \"rate\": %.2f, "
           "\"unit\": \"ops/s\", \"median_ms\": %.3f}\n",
           bench_name, cf->rounds, (double)cf->rounds / total,
           bench_median_d(ms, (size_t)cf->rounds));
    fflush(stdout);
    free(ms);
    prism_value_free(list);
    prism_value_free(one);
    for (size_t i = 0; i < n; i++)
        prism_ref_release(items[i]);
    free(items);
    prism_disconnect(c);
    return 0;
}

/* ---------- tasks with large arguments ---------- */

static void size_label(long long size, char *out, size_t n)
{
    if (size >= (1LL << 20) && size % (1LL << 20) == 0)
        snprintf(out, n, "%lldmib", size >> 20);
    else if (size >= 1024 && size % 1024 == 0)
        snprintf(out, n, "%lldkib", size >> 10);
    else
        snprintf(out, n, "%lldb", size);
}

static int bench_arg(const cfg *cf)
{
    static char name[96];
    char label[32];
    size_label(cf->size, label, sizeof label);
    snprintf(name, sizeof name, "single_client_tasks_%s_arg", label);
    bench_name = name;
    prism_client *c;
    if (bench_connect(&c))
        return 1;
    size_t size = (size_t)cf->size;
    uint8_t *buf = malloc(size);
    if (!buf)
        return bench_fail("malloc", PRISM_ERR_NO_MEMORY);
    unsigned long long checksum = 0;
    for (size_t i = 0; i < size; i++)
        checksum += buf[i] = (uint8_t)(i * 7 + (i >> 12));
    int64_t shape[1] = {(int64_t)size};
    prism_value *big = prism_value_tensor(PRISM_U8, 1, shape, buf);
    free(buf);
    prism_ref *ref = NULL;
    int64_t p0 = bench_now_ns();
    BENCH_TRY(prism_put(c, big, &ref), "put");
    double put_ms = (double)(bench_now_ns() - p0) / 1e6;
    prism_value_free(big);
    prism_task_options o = task_opts(cf);
    /* the checksum, once: the bytes arrive intact */
    prism_value *arg = prism_value_ref(ref);
    prism_ref *r = NULL;
    prism_value *v = NULL;
    BENCH_TRY(prism_submit(c, "builtin", "sum", &arg, 1, &o, &r), "submit sum");
    prism_status s = prism_get(c, r, BENCH_GET_TIMEOUT_MS, &v);
    prism_ref_release(r);
    BENCH_TRY(s, "get sum");
    const char *text = prism_value_json_text(v);
    if (!text || strtoull(text, NULL, 10) != checksum) {
        fprintf(stderr, "checksum: got %s, want %llu\n", text ? text : "(none)", checksum);
        return bench_fail("checksum", PRISM_ERR_INTERNAL);
    }
    prism_value_free(v);
    prism_value *args[2] = {prism_value_json("1"), arg};
    long cap = cf->n;
    int64_t *lat = malloc((size_t)cap * sizeof *lat);
    long n = 0;
    int64_t t0 = 0, limit = (int64_t)(cf->max_seconds * 1e9);
    for (long i = -cf->warmup; i < cap; i++) {
        if (i == 0)
            t0 = bench_now_ns();
        int64_t a = bench_now_ns();
        BENCH_TRY(prism_submit(c, "builtin", "echo", args, 2, &o, &r), "submit echo");
        s = prism_get(c, r, BENCH_GET_TIMEOUT_MS, &v);
        if (s == PRISM_OK && (!prism_value_json_text(v) || strcmp(prism_value_json_text(v), "1")))
            s = PRISM_ERR_INTERNAL;
        prism_value_free(v);
        prism_ref_release(r);
        BENCH_TRY(s, "get echo");
        int64_t b = bench_now_ns();
        if (i >= 0) {
            lat[n++] = b - a;
            if (b - t0 > limit)
                break;
        }
    }
    double total = (double)(bench_now_ns() - t0) / 1e9;
    qsort(lat, (size_t)n, sizeof *lat, bench_cmp_i64);
    const char *store = getenv("PRISM_STORE_SOCKET");
    printf("{\"system\": \"prism\", \"bench\": \"%s\", \"size\": %zu, \"n\": %ld, "
           "\"rate\": %.1f, \"unit\": \"tasks/s\", \"median_us\": %.1f, \"p99_us\": %.1f, "
           "\"put_ms\": %.2f, \"driver_store\": %s}\n",
           bench_name, size, n, (double)n / total,
           (double)bench_quantile(lat, (size_t)n, 0.5) / 1e3,
           (double)bench_quantile(lat, (size_t)n, 0.99) / 1e3, put_ms,
           store && *store ? "true" : "false");
    fflush(stdout);
    free(lat);
    prism_value_free(args[0]);
    prism_value_free(arg);
    prism_ref_release(ref);
    prism_disconnect(c);
    return 0;
}

/* ---------- main ---------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: prism-tasks-bench sync|cold|async|multi|wait|get10k|get10k-task|arg|all\n"
            "         [--n N] [--rounds R] [--warmup W] [--clients K] [--size BYTES]\n"
            "         [--max-seconds S] [--num-cpus X]\n");
}

/* Defaults per benchmark, unless given. */
static cfg defaults_for(const char *bench, const cfg *given)
{
    cfg c = *given;
    long n = 10000, rounds = 5, warmup = 1000;
    if (!strcmp(bench, "sync"))
        n = 20000, rounds = 1, warmup = 2000;
    else if (!strcmp(bench, "cold"))
        n = 50, rounds = 1, warmup = 2;
    else if (!strcmp(bench, "multi"))
        n = 10000, rounds = 5, warmup = 2000;
    else if (!strcmp(bench, "wait"))
        n = 1000, rounds = 20, warmup = 2;
    else if (!strcmp(bench, "get10k") || !strcmp(bench, "get10k-task"))
        n = 10000, rounds = 20, warmup = 2;
    else if (!strcmp(bench, "arg"))
        n = 2000, rounds = 1, warmup = 3;
    if (!c.n_set)
        c.n = n;
    if (!c.rounds_set)
        c.rounds = rounds;
    if (!c.warmup_set)
        c.warmup = warmup;
    return c;
}

static int run_one(const char *bench, const cfg *given)
{
    cfg c = defaults_for(bench, given);
    if (!strcmp(bench, "sync") || !strcmp(bench, "cold"))
        return bench_sync(&c, !strcmp(bench, "cold"));
    if (!strcmp(bench, "async"))
        return bench_async(&c);
    if (!strcmp(bench, "multi"))
        return bench_multi(&c);
    if (!strcmp(bench, "wait"))
        return bench_wait(&c);
    if (!strcmp(bench, "get10k"))
        return bench_get10k(&c, false);
    if (!strcmp(bench, "get10k-task"))
        return bench_get10k(&c, true);
    if (!strcmp(bench, "arg"))
        return bench_arg(&c);
    usage();
    return 2;
}

/* The plan of `all`: each benchmark, arg at 1 MiB and 100 MiB. */
static const struct {
    const char *bench;
    long long size;
} plan[] = {{"sync", 0},   {"async", 0},       {"multi", 0},       {"wait", 0},
            {"get10k", 0}, {"get10k-task", 0}, {"arg", 1LL << 20}, {"arg", 100LL << 20}};

static int run_planned(void *arg, size_t i)
{
    cfg one = *(const cfg *)arg;
    if (plan[i].size)
        one.size = plan[i].size;
    return run_one(plan[i].bench, &one);
}

int main(int argc, char **argv)
{
    bench_prog = "prism-tasks-bench";
    if (argc < 2) {
        usage();
        return 2;
    }
    cfg c = {.clients = 2, .size = 1 << 20, .max_seconds = 20, .num_cpus = 1};
    const bench_opt opts[] = {
        {"--n", 'l', &c.n, &c.n_set},
        {"--rounds", 'l', &c.rounds, &c.rounds_set},
        {"--warmup", 'l', &c.warmup, &c.warmup_set},
        {"--clients", 'l', &c.clients, NULL},
        {"--size", 's', &c.size, NULL},
        {"--max-seconds", 'd', &c.max_seconds, NULL},
        {"--num-cpus", 'd', &c.num_cpus, NULL},
    };
    if (bench_parse_opts(argc, argv, 2, opts, sizeof opts / sizeof opts[0]) != 0 ||
        (c.n_set && c.n < 1) || (c.rounds_set && c.rounds < 1) || c.warmup < 0 || c.clients < 1 ||
        c.size < 1) {
        usage();
        return 2;
    }
    if (strcmp(argv[1], "all"))
        return run_one(argv[1], &c);
    return bench_each_in_child(sizeof plan / sizeof plan[0], run_planned, &c);
}
