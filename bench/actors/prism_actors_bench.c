/* Actor benchmarks of Prism, named as in Ray's microbenchmark. A driver on
 * libprism: it connects to the cluster of PRISM_ADDRESS/PRISM_TOKEN (or
 * $PRISM_HOME), creates builtin Counter actors, runs one benchmark after a
 * warm-up, times it with CLOCK_MONOTONIC and prints one JSON line per result:
 *
 *   {"system": "prism", "bench": NAME, "rate": ..., "unit": ..., ...}
 *
 *   prism-actors-bench BENCH [options]
 *
 * BENCH:
 *   sync        1_1_actor_calls_sync: one caller, one actor, each call
 *               waited for before the next; rate, median and p99 latency,
 *               how long the actor took from create to its first answer, and
 *               the median of CHURN more such, each killed before the next
 *               is made (a new worker for each once the node's prestarted
 *               ones are taken)
 *   async       1_1_actor_calls_async: --n calls made at once, then all got;
 *               the median rate of the rounds
 *   concurrent  1_1_actor_calls_concurrent: as async, to an actor created
 *               with max_concurrency --concurrency (16, as Ray's); first
 *               checked with --concurrency sleep(20) calls that they really
 *               overlap. An actor the cluster refuses to run with that
 *               concurrency gives {"unsupported": the error} instead
 *   1n          1_n_actor_calls_async: one caller, --actors actors, calls
 *               made round robin over them, then all got
 *   nn          n_n_actor_calls_async: --clients caller processes, each
 *               with its own client and its own actor, run async rounds
 *               started together; the rate is all their calls over the
 *               time from the first start to the last end
 *   all         each of the above in turn, each in a child process
 *
 * Options: --n N (calls per round), --rounds R, --warmup W (calls),
 * --actors N, --clients K, --concurrency C, --max-seconds S (a time bound
 * on the timed part of each benchmark; at least one round is run),
 * --num-cpus X (the CPUs each actor holds).
 *
 * The call is Counter.echo() with no argument (it returns null); actors are
 * killed at the end of each benchmark, so the next one finds the CPUs free. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "bench_prism.h"

#define MAX_ACTORS 64
#define CHURN 10

typedef struct cfg {
    long n, rounds, warmup, actors, clients, concurrency;
    double max_seconds, num_cpus;
    bool n_set, rounds_set, warmup_set;
} cfg;

static prism_status create_counter(prism_client *c, const cfg *cf, long concurrency,
                                   prism_actor **out)
{
    prism_actor_options o = PRISM_ACTOR_OPTIONS_INIT;
    o.num_cpus = cf->num_cpus;
    o.max_concurrency = (int)concurrency;
    return prism_actor_create(c, "builtin", "Counter", NULL, 0, &o, out);
}

/* One echo() call, waited for. */
static prism_status call_sync(prism_client *c, prism_actor *a)
{
    prism_ref *r = NULL;
    prism_status s = prism_actor_call(c, a, "echo", NULL, 0, 1, &r);
    if (s == PRISM_OK)
        s = bench_get_null(c, r);
    prism_ref_release(r);
    return s;
}

/* Makes n echo() calls, the i-th to actors[i % nactors], then gets them all. */
static prism_status calls_round(prism_client *c, prism_actor **actors, long nactors,
                                prism_ref **refs, long n)
{
    prism_status s = PRISM_OK;
    long made = 0;
    for (; made < n; made++)
        if ((s = prism_actor_call(c, actors[made % nactors], "echo", NULL, 0, 1, &refs[made])) !=
            PRISM_OK)
            break;
    for (long i = 0; i < made; i++) {
        prism_status g = s == PRISM_OK ? bench_get_null(c, refs[i]) : PRISM_OK;
        if (s == PRISM_OK)
            s = g;
        prism_ref_release(refs[i]);
    }
    return s;
}

static void kill_all(prism_client *c, prism_actor **actors, long n)
{
    for (long i = 0; i < n; i++) {
        if (!actors[i])
            continue;
        prism_actor_kill(c, actors[i], true); /* frees its CPU for the next benchmark */
        prism_actor_release(actors[i]);
        actors[i] = NULL;
    }
}

/* Rounds of calls_round until cf->rounds are done or cf->max_seconds have
 * passed (at least one); prints the median rate with the lowest and highest. */
static int timed_rounds(prism_client *c, const cfg *cf, prism_actor **actors, long nactors,
                        const char *extra)
{
    long cap = cf->n > cf->warmup ? cf->n : cf->warmup;
    prism_ref **refs = calloc((size_t)cap, sizeof *refs);
    double *rates = calloc((size_t)cf->rounds, sizeof *rates);
    if (!refs || !rates)
        return bench_fail("calloc", PRISM_ERR_NO_MEMORY);
    BENCH_TRY(calls_round(c, actors, nactors, refs, cf->warmup), "warm-up");
    long done = 0;
    int64_t t0 = bench_now_ns(), limit = (int64_t)(cf->max_seconds * 1e9);
    while (done < cf->rounds) {
        int64_t a = bench_now_ns();
        BENCH_TRY(calls_round(c, actors, nactors, refs, cf->n), "round");
        int64_t b = bench_now_ns();
        rates[done++] = (double)cf->n / ((double)(b - a) / 1e9);
        if (b - t0 > limit)
            break;
    }
    double lo = rates[0], hi = rates[0];
    for (long r = 0; r < done; r++) {
        lo = rates[r] < lo ? rates[r] : lo;
        hi = rates[r] > hi ? rates[r] : hi;
    }
    printf("{\"system\": \"prism\", \"bench\": \"%s\", \"actors\": %ld, \"n\": %ld, "
           "\"rounds\": %ld, \"rate\": %.1f, \"unit\": \"calls/s\", \"rate_min\": %.1f, "
           "\"rate_max\": %.1f%s}\n",
           bench_name, nactors, cf->n, done, bench_median_d(rates, (size_t)done), lo, hi,
           extra ? extra : "");
    fflush(stdout);
    free(rates);
    free(refs);
    return 0;
}

/* ---------- 1_1_actor_calls_sync ---------- */

static int bench_sync(const cfg *cf)
{
    bench_name = "1_1_actor_calls_sync";
    prism_client *c;
    if (bench_connect(&c))
        return 1;
    prism_actor *a = NULL;
    int64_t c0 = bench_now_ns();
    BENCH_TRY(create_counter(c, cf, 1, &a), "create");
    BENCH_TRY(call_sync(c, a), "first call"); /* waits for the constructor */
    double create_ms = (double)(bench_now_ns() - c0) / 1e6;
    for (long i = 0; i < cf->warmup; i++)
        BENCH_TRY(call_sync(c, a), "warm-up call");
    int64_t *lat = malloc((size_t)cf->n * sizeof *lat);
    if (!lat)
        return bench_fail("malloc", PRISM_ERR_NO_MEMORY);
    long n = 0;
    int64_t t0 = bench_now_ns(), limit = (int64_t)(cf->max_seconds * 1e9);
    while (n < cf->n) {
        int64_t t = bench_now_ns();
        BENCH_TRY(call_sync(c, a), "call");
        int64_t b = bench_now_ns();
        lat[n++] = b - t;
        if (b - t0 > limit)
            break;
    }
    double total = (double)(bench_now_ns() - t0) / 1e9;
    kill_all(c, &a, 1);
    double churn[CHURN];
    for (int i = 0; i < CHURN; i++) {
        c0 = bench_now_ns();
        BENCH_TRY(create_counter(c, cf, 1, &a), "create");
        BENCH_TRY(call_sync(c, a), "first call");
        churn[i] = (double)(bench_now_ns() - c0) / 1e6;
        kill_all(c, &a, 1);
    }
    printf("{\"system\": \"prism\", \"bench\": \"%s\", ", bench_name);
    bench_latency_fields(stdout, lat, (size_t)n, total, "calls/s");
    printf(", \"create_ms\": %.2f, \"churn_ms\": %.2f}\n", create_ms, bench_median_d(churn, CHURN));
    fflush(stdout);
    free(lat);
    prism_disconnect(c);
    return 0;
}

/* ---------- 1_1_actor_calls_async ---------- */

static int bench_async(const cfg *cf)
{
    bench_name = "1_1_actor_calls_async";
    prism_client *c;
    if (bench_connect(&c))
        return 1;
    prism_actor *a = NULL;
    BENCH_TRY(create_counter(c, cf, 1, &a), "create");
    BENCH_TRY(call_sync(c, a), "first call");
    int rc = timed_rounds(c, cf, &a, 1, NULL);
    kill_all(c, &a, 1);
    prism_disconnect(c);
    return rc;
}

/* ---------- 1_1_actor_calls_concurrent ---------- */

/* A refusal of max_concurrency above 1, at creation or at the first call
 * (the constructor runs in the background), is reported as such. */
static int concurrency_refused(prism_status s, long concurrency)
{
    if (s == PRISM_OK || !strstr(prism_last_error(), "max_concurrency"))
        return 0;
    printf("{\"system\": \"prism\", \"bench\": \"%s\", \"max_concurrency\": %ld, "
           "\"unsupported\": ",
           bench_name, concurrency);
    bench_json_string(stdout, prism_last_error());
    printf("}\n");
    fflush(stdout);
    fprintf(stderr, "%s %s: not supported: %s\n", bench_prog, bench_name, prism_last_error());
    return 1;
}

/* How long `k` sleep(ms) calls made at once take: about ms when they run
 * concurrently, k × ms when one at a time (they count as overlapping below
 * 3/4 of that). */
static prism_status overlap_ms(prism_client *c, prism_actor *a, long k, int ms, double *out)
{
    char arg[16];
    snprintf(arg, sizeof arg, "%d", ms);
    prism_value *v = prism_value_json(arg);
    prism_ref **refs = calloc((size_t)k, sizeof *refs);
    prism_status s = refs ? PRISM_OK : PRISM_ERR_NO_MEMORY;
    long made = 0;
    int64_t t0 = bench_now_ns();
    for (; made < k && s == PRISM_OK; made++)
        s = prism_actor_call(c, a, "sleep", &v, 1, 1, &refs[made]);
    if (s != PRISM_OK)
        made--;
    for (long i = 0; i < made; i++) {
        prism_value *got = NULL;
        if (s == PRISM_OK)
            s = prism_get(c, refs[i], BENCH_GET_TIMEOUT_MS, &got);
        prism_value_free(got);
        prism_ref_release(refs[i]);
    }
    *out = (double)(bench_now_ns() - t0) / 1e6;
    prism_value_free(v);
    free(refs);
    return s;
}

static int bench_concurrent(const cfg *cf)
{
    bench_name = "1_1_actor_calls_concurrent";
    prism_client *c;
    if (bench_connect(&c))
        return 1;
    prism_actor *a = NULL;
    prism_status s = create_counter(c, cf, cf->concurrency, &a);
    if (s == PRISM_OK)
        s = call_sync(c, a);
    if (concurrency_refused(s, cf->concurrency)) {
        kill_all(c, &a, 1);
        prism_disconnect(c);
        return 0;
    }
    BENCH_TRY(s, "create and first call");
    const int sleep_ms = 20;
    double ms;
    BENCH_TRY(overlap_ms(c, a, cf->concurrency, sleep_ms, &ms), "sleep calls");
    char extra[160];
    snprintf(extra, sizeof extra,
             ", \"max_concurrency\": %ld, \"overlap_check\": \"%ld sleep(%d) calls in %.1f ms\", "
             "\"overlapped\": %s",
             cf->concurrency, cf->concurrency, sleep_ms, ms,
             ms < 0.75 * (double)(cf->concurrency * sleep_ms) ? "true" : "false");
    int rc = timed_rounds(c, cf, &a, 1, extra);
    kill_all(c, &a, 1);
    prism_disconnect(c);
    return rc;
}

/* ---------- 1_n_actor_calls_async ---------- */

static int bench_1n(const cfg *cf)
{
    bench_name = "1_n_actor_calls_async";
    prism_client *c;
    if (bench_connect(&c))
        return 1;
    prism_actor *actors[MAX_ACTORS] = {0};
    for (long i = 0; i < cf->actors; i++)
        BENCH_TRY(create_counter(c, cf, 1, &actors[i]), "create");
    for (long i = 0; i < cf->actors; i++)
        BENCH_TRY(call_sync(c, actors[i]), "first call");
    int rc = timed_rounds(c, cf, actors, cf->actors, NULL);
    kill_all(c, actors, cf->actors);
    prism_disconnect(c);
    return rc;
}

/* ---------- n_n_actor_calls_async ---------- */

/* One caller process: its own client and actor, a warm-up, then the rounds. */
static int nn_client(void *arg, long index, bench_client *cl)
{
    const cfg *cf = arg;
    const char *what = "connect";
    prism_client *c = NULL;
    prism_actor *a = NULL;
    long cap = cf->n > cf->warmup ? cf->n : cf->warmup;
    prism_ref **refs = calloc((size_t)cap, sizeof *refs);
    prism_status s = refs ? prism_connect(NULL, &c) : PRISM_ERR_NO_MEMORY;
    if (s == PRISM_OK) {
        what = "create";
        s = create_counter(c, cf, 1, &a);
    }
    if (s == PRISM_OK) {
        what = "first call";
        s = call_sync(c, a);
    }
    if (s == PRISM_OK) {
        what = "warm-up";
        s = calls_round(c, &a, 1, refs, cf->warmup);
    }
    for (long r = 0; r < cf->rounds && s == PRISM_OK; r++) {
        what = "round";
        if (bench_client_ready(cl) != 0)
            return 1;
        int64_t start = bench_now_ns();
        s = calls_round(c, &a, 1, refs, cf->n);
        if (s == PRISM_OK)
            bench_client_done(cl, cf->n, start, bench_now_ns());
    }
    if (s != PRISM_OK)
        return bench_client_fail_status(cl, what, s);
    free(refs);
    kill_all(c, &a, 1);
    prism_disconnect(c);
    return 0;
}

static int bench_nn(const cfg *cf)
{
    bench_name = "n_n_actor_calls_async";
    double *rates = calloc((size_t)cf->rounds, sizeof *rates);
    char error[300];
    if (!rates)
        return bench_fail("calloc", PRISM_ERR_NO_MEMORY);
    if (bench_clients_rounds(cf->clients, cf->rounds, nn_client, (void *)cf,
                             BENCH_GET_TIMEOUT_MS + 60000, rates, error, sizeof error) != 0) {
        free(rates);
        bench_error_line(bench_prog, "prism", bench_name, error);
        return 1;
    }
    bench_print_rounds(cf->clients, cf->n * cf->clients, rates, cf->rounds, "calls/s");
    free(rates);
    return 0;
}

/* ---------- main ---------- */

static void usage(void)
{
    fprintf(stderr, "usage: prism-actors-bench sync|async|concurrent|1n|nn|all\n"
                    "         [--n N] [--rounds R] [--warmup W] [--actors N] [--clients K]\n"
                    "         [--concurrency C] [--max-seconds S] [--num-cpus X]\n");
}

/* Defaults per benchmark, unless given. */
static cfg defaults_for(const char *bench, const cfg *given)
{
    cfg c = *given;
    long n = 10000, rounds = 5, warmup = 1000;
    if (!strcmp(bench, "sync"))
        n = 20000, rounds = 1, warmup = 2000;
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
    if (!strcmp(bench, "sync"))
        return bench_sync(&c);
    if (!strcmp(bench, "async"))
        return bench_async(&c);
    if (!strcmp(bench, "concurrent"))
        return bench_concurrent(&c);
    if (!strcmp(bench, "1n"))
        return bench_1n(&c);
    if (!strcmp(bench, "nn"))
        return bench_nn(&c);
    usage();
    return 2;
}

/* The plan of `all`. */
static const char *const plan[] = {"sync", "async", "concurrent", "1n", "nn"};

static int run_planned(void *arg, size_t i) { return run_one(plan[i], arg); }

int main(int argc, char **argv)
{
    bench_prog = "prism-actors-bench";
    if (argc < 2) {
        usage();
        return 2;
    }
    cfg c = {.actors = 2, .clients = 2, .concurrency = 16, .max_seconds = 20, .num_cpus = 1};
    const bench_opt opts[] = {
        {"--n", 'l', &c.n, &c.n_set},
        {"--rounds", 'l', &c.rounds, &c.rounds_set},
        {"--warmup", 'l', &c.warmup, &c.warmup_set},
        {"--actors", 'l', &c.actors, NULL},
        {"--clients", 'l', &c.clients, NULL},
        {"--concurrency", 'l', &c.concurrency, NULL},
        {"--max-seconds", 'd', &c.max_seconds, NULL},
        {"--num-cpus", 'd', &c.num_cpus, NULL},
    };
    if (bench_parse_opts(argc, argv, 2, opts, sizeof opts / sizeof opts[0]) != 0 ||
        (c.n_set && c.n < 1) || (c.rounds_set && c.rounds < 1) || c.warmup < 0 || c.actors < 1 ||
        c.actors > MAX_ACTORS || c.clients < 1 || c.concurrency < 1 || c.concurrency > 1024) {
        usage();
        return 2;
    }
    if (strcmp(argv[1], "all"))
        return run_one(argv[1], &c);
    return bench_each_in_child(sizeof plan / sizeof plan[0], run_planned, &c);
}
