/* The single-node figures of the scalability envelope (bench/scale/run.sh,
 * bench/README.md): how many objects one task takes and returns, one get of
 * many objects, many tasks queued by one driver, the largest object. Each
 * case checks every value it gets back, then prints one JSON line:
 *
 *   prism-scale-single CASE N
 *     args N      one task with N object arguments (echo: the first comes back)
 *     returns N   one task with N returns (echo of N arguments, each checked)
 *     get N       N tasks add(i, 1), then every result got
 *     spread N    the same with the SPREAD strategy (bench/scale/nodes.py
 *                 runs it over hundreds of nodes)
 *     queued N    N sleep(0) tasks submitted before any is waited for: the
 *                 driver's memory per queued task, then all finished
 *     object MiB  one object of MiB mebibytes put and got back
 *     actors N    N detached Counter actors of 1/2N CPU, then one call to
 *                 each: the rate, and the GCS's private memory per actor
 *                 (they outlive this program: bench/scale/run.sh times the
 *                 actor list with them, then stops the cluster)
 *     pgs N       N placement groups of one bundle of 1/2N CPU: created,
 *                 waited for, removed; the GCS's private memory per group
 *     running N   N sleep tasks of 1/N CPU each at once: how many ran
 *                 together, and what a worker process costs (private memory,
 *                 open fds), read from /proc (the cluster runs on this machine)
 *
 * Runs against the cluster of $PRISM_ADDRESS / $PRISM_HOME. Exit 0 when every
 * value was right. */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <prism/prism.h>

#include "../tasks/bench_util.h"

#define GET_MS 600000

static int fail(const char *what)
{
    fprintf(stderr, "prism-scale-single: %s: %s\n", what, prism_last_error());
    return 1;
}

/* The value of `r` must be the JSON integer `want`. */
static int check_int(prism_client *c, const prism_ref *r, long want)
{
    prism_value *v = NULL;
    if (prism_get(c, r, GET_MS, &v) != PRISM_OK)
        return fail("get");
    const char *text = prism_value_json_text(v);
    int rc = text && strtol(text, NULL, 10) == want ? 0 : 1;
    if (rc)
        fprintf(stderr, "prism-scale-single: got %s, want %ld\n", text ? text : "(not JSON)", want);
    prism_value_free(v);
    return rc;
}

static prism_value *json_int(long i)
{
    char text[32];
    snprintf(text, sizeof text, "%ld", i);
    return prism_value_json(text);
}

static void report(const char *name, long n, int64_t t0, long rss0)
{
    double s = (double)(bench_now_ns() - t0) / 1e9;
    long rss = bench_rss_kib(getpid());
    printf("{\"case\": \"%s\", \"n\": %ld, \"seconds\": %.3f, \"per_unit_us\": %.1f, "
           "\"driver_rss_kib\": %ld, \"driver_rss_growth_kib\": %ld}\n",
           name, n, s, n ? s * 1e6 / (double)n : 0, rss, rss - rss0);
    fflush(stdout);
}

/* One task, n object arguments: the worker resolves every one. */
static int case_args(prism_client *c, long n)
{
    prism_ref **refs = calloc((size_t)n, sizeof *refs);
    prism_value **args = calloc((size_t)n, sizeof *args);
    int rc = refs && args ? 0 : fail("memory");
    int64_t t0 = bench_now_ns();
    long rss0 = bench_rss_kib(getpid());
    for (long i = 0; i < n && rc == 0; i++) {
        prism_value *v = json_int(i);
        if (!v || prism_put(c, v, &refs[i]) != PRISM_OK || !(args[i] = prism_value_ref(refs[i])))
            rc = fail("put");
        prism_value_free(v);
    }
    prism_ref *out = NULL;
    if (rc == 0 && prism_submit(c, "builtin", "echo", args, (size_t)n, NULL, &out) != PRISM_OK)
        rc = fail("submit");
    if (rc == 0)
        rc = check_int(c, out, 0);
    if (rc == 0)
        report("args", n, t0, rss0);
    prism_ref_release(out);
    for (long i = 0; i < n && refs && args; i++) {
        prism_value_free(args[i]);
        prism_ref_release(refs[i]);
    }
    free(args);
    free(refs);
    return rc;
}

/* One task, n returns: echo hands back its n arguments, one per return. */
static int case_returns(prism_client *c, long n)
{
    prism_value **args = calloc((size_t)n, sizeof *args);
    prism_ref **outs = calloc((size_t)n, sizeof *outs);
    int rc = args && outs ? 0 : fail("memory");
    for (long i = 0; i < n && rc == 0; i++)
        if (!(args[i] = json_int(i)))
            rc = fail("value");
    int64_t t0 = bench_now_ns();
    long rss0 = bench_rss_kib(getpid());
    prism_task_options o;
    prism_task_options_init(&o);
    o.num_returns = (int)n;
    if (rc == 0 && prism_submit(c, "builtin", "echo", args, (size_t)n, &o, outs) != PRISM_OK)
        rc = fail("submit");
    for (long i = 0; i < n && rc == 0; i++)
        rc = check_int(c, outs[i], i);
    if (rc == 0)
        report("returns", n, t0, rss0);
    for (long i = 0; i < n && args && outs; i++) {
        prism_value_free(args[i]);
        prism_ref_release(outs[i]);
    }
    free(args);
    free(outs);
    return rc;
}

/* n tasks submitted at once, waited for together (prism_wait of all) before
 * each is got, as one get of n objects; `sleep0` submits sleep(0) instead of
 * add(i, 1), `spread` places them with the SPREAD strategy. */
static int many_tasks(prism_client *c, const char *name, long n, bool sleep0, bool spread)
{
    prism_task_options opts = PRISM_TASK_OPTIONS_INIT;
    if (spread)
        opts.strategy = PRISM_STRATEGY_SPREAD;
    prism_ref **outs = calloc((size_t)n, sizeof *outs);
    bool *ready = calloc((size_t)n, sizeof *ready);
    int rc = outs && ready ? 0 : fail("memory");
    int64_t t0 = bench_now_ns();
    long rss0 = bench_rss_kib(getpid());
    for (long i = 0; i < n && rc == 0; i++) {
        prism_value *a[2] = {sleep0 ? prism_value_json("0") : json_int(i), prism_value_json("1")};
        if (!a[0] || !a[1] ||
            prism_submit(c, "builtin", sleep0 ? "sleep" : "add", a, sleep0 ? 1 : 2, &opts,
                         &outs[i]) != PRISM_OK)
            rc = fail("submit");
        prism_value_free(a[0]);
        prism_value_free(a[1]);
    }
    if (rc == 0 && sleep0) {
        /* every task is in the driver now, most still queued */
        long rss = bench_rss_kib(getpid());
        printf("{\"case\": \"queued_submit\", \"n\": %ld, \"seconds\": %.3f, "
               "\"driver_rss_growth_kib\": %ld, \"bytes_per_queued_task\": %.0f}\n",
               n, (double)(bench_now_ns() - t0) / 1e9, rss - rss0,
               (double)(rss - rss0) * 1024.0 / (double)n);
        fflush(stdout);
    }
    if (rc == 0 && prism_wait(c, outs, (size_t)n, (size_t)n, GET_MS, ready) != PRISM_OK)
        rc = fail("wait for all");
    for (long i = 0; i < n && rc == 0; i++) {
        prism_value *v = NULL;
        if (sleep0) {
            if (prism_get(c, outs[i], GET_MS, &v) != PRISM_OK)
                rc = fail("get");
            prism_value_free(v);
        } else {
            rc = check_int(c, outs[i], i + 1);
        }
    }
    if (rc == 0)
        report(name, n, t0, rss0);
    for (long i = 0; i < n && outs; i++)
        prism_ref_release(outs[i]);
    free(outs);
    free(ready);
    return rc;
}

/* One object of `mib` MiB, put and got back whole. */
static int case_object(prism_client *c, long mib)
{
    int64_t shape[1] = {mib << 20};
    int64_t t0 = bench_now_ns();
    long rss0 = bench_rss_kib(getpid());
    prism_value *v = prism_value_tensor(PRISM_U8, 1, shape, NULL);
    if (!v)
        return fail("a tensor that large");
    size_t len;
    uint8_t *data = (uint8_t *)prism_value_data(v, &len);
    for (size_t i = 0; i < len; i += 4096)
        data[i] = (uint8_t)(i >> 12);
    prism_ref *r = NULL;
    prism_value *back = NULL;
    int rc = 0;
    if (prism_put(c, v, &r) != PRISM_OK)
        rc = fail("put");
    prism_value_free(v);
    if (rc == 0 && prism_get(c, r, GET_MS, &back) != PRISM_OK)
        rc = fail("get");
    if (rc == 0) {
        const uint8_t *got = prism_value_data(back, &len);
        for (size_t i = 0; rc == 0 && i < len; i += 4096)
            rc = got[i] == (uint8_t)(i >> 12) ? 0 : 1;
        if (rc != 0 || len != (size_t)shape[0])
            rc = fail("the object came back changed");
    }
    if (rc == 0)
        report("object_mib", mib, t0, rss0);
    prism_value_free(back);
    prism_ref_release(r);
    return rc;
}

/* The prism-worker processes of this machine: how many, their total
 * private memory (RssAnon, KiB: the store's shared mapping is left out) and
 * open fds. */
static void workers_now(long *count, long *anon_kib, long *fds)
{
    *count = *anon_kib = *fds = 0;
    DIR *proc = opendir("/proc");
    struct dirent *e;
    while (proc && (e = readdir(proc))) {
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/%s/comm", e->d_name);
        FILE *f = e->d_name[0] >= '0' && e->d_name[0] <= '9' ? fopen(path, "r") : NULL;
        if (!f)
            continue;
        bool worker = fgets(comm, sizeof comm, f) && !strncmp(comm, "prism-worker", 12);
        fclose(f);
        if (!worker)
            continue;
        (*count)++;
        *anon_kib += bench_status_kib((pid_t)atol(e->d_name), "RssAnon:");
        snprintf(path, sizeof path, "/proc/%s/fd", e->d_name);
        DIR *fd = opendir(path);
        while (fd && readdir(fd))
            (*fds)++;
        if (fd) {
            *fds -= 2; /* . and .. */
            closedir(fd);
        }
    }
    if (proc)
        closedir(proc);
}

/* n sleep(SLEEP_MS) tasks of 1/n CPU: they can all run at once on one CPU
 * when the node may start n workers (PRISM_MAX_WORKERS). `concurrency` is
 * n x SLEEP_MS over the time all took: n when they all overlapped. */
#define SLEEP_MS 10000
static int case_running(prism_client *c, long n)
{
    prism_ref **outs = calloc((size_t)n, sizeof *outs);
    bool *ready = calloc((size_t)n, sizeof *ready);
    int rc = outs && ready ? 0 : fail("memory");
    prism_task_options o;
    prism_task_options_init(&o);
    o.num_cpus = 1.0 / (double)n;
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < n && rc == 0; i++) {
        char ms[32];
        snprintf(ms, sizeof ms, "%d", SLEEP_MS);
        prism_value *a = prism_value_json(ms);
        if (!a || prism_submit(c, "builtin", "sleep", &a, 1, &o, &outs[i]) != PRISM_OK)
            rc = fail("submit");
        prism_value_free(a);
    }
    long peak = 0, anon = 0, fds = 0;
    prism_status st = PRISM_ERR_TIMEOUT;
    while (rc == 0 && st == PRISM_ERR_TIMEOUT && bench_now_ns() - t0 < (int64_t)GET_MS * 1000000) {
        long k, a, f;
        workers_now(&k, &a, &f);
        if (k > peak) {
            peak = k;
            anon = a;
            fds = f;
        }
        st = prism_wait(c, outs, (size_t)n, (size_t)n, 200, ready);
    }
    if (rc == 0 && st != PRISM_OK)
        rc = fail("wait for all");
    double s = (double)(bench_now_ns() - t0) / 1e9;
    if (rc == 0)
        printf("{\"case\": \"running\", \"n\": %ld, \"seconds\": %.3f, \"concurrency\": %.1f, "
               "\"peak_workers\": %ld, \"worker_private_kib\": %.0f, \"worker_fds\": %.1f}\n",
               n, s, (double)n * SLEEP_MS / 1000.0 / s, peak,
               peak ? (double)anon / (double)peak : 0, peak ? (double)fds / (double)peak : 0);
    for (long i = 0; i < n && outs; i++)
        prism_ref_release(outs[i]);
    free(outs);
    free(ready);
    return rc;
}

/* The private memory (RssAnon, KiB) of this cluster's prism-gcs process, as
 * `prism up` recorded it in $PRISM_HOME/pids ("gcs PID"), or -1. */
static long gcs_private_kib(void)
{
    const char *home = getenv("PRISM_HOME");
    char path[4096], name[64];
    long pid = -1, kib = -1;
    snprintf(path, sizeof path, "%s/pids", home ? home : ".");
    FILE *f = home ? fopen(path, "r") : NULL;
    while (f && pid < 0 && fscanf(f, "%63s %ld", name, &pid) == 2)
        if (strcmp(name, "gcs") != 0)
            pid = -1;
    if (f)
        fclose(f);
    if (pid > 0)
        kib = bench_status_kib((pid_t)pid, "RssAnon:");
    return kib;
}

/* n placement groups of one bundle of 1/2n CPU at once: created, all
 * CREATED, then removed; the rates and the GCS's private memory per group. */
static int case_pgs(prism_client *c, long n)
{
    prism_placement_group **pgs = calloc((size_t)n, sizeof *pgs);
    int rc = pgs ? 0 : fail("memory");
    long gcs0 = gcs_private_kib();
    prism_bundle b = PRISM_BUNDLE_INIT;
    b.num_cpus = 0.5 / (double)n;
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < n && rc == 0; i++)
        if (prism_placement_group_create(c, &b, 1, PRISM_PG_PACK, NULL, &pgs[i]) != PRISM_OK)
            rc = fail("create a placement group");
    double created_s = (double)(bench_now_ns() - t0) / 1e9;
    for (long i = 0; i < n && rc == 0; i++)
        if (prism_placement_group_wait(c, pgs[i], GET_MS) != PRISM_OK)
            rc = fail("wait for a placement group");
    double ready_s = (double)(bench_now_ns() - t0) / 1e9;
    long gcs1 = gcs_private_kib();
    int64_t t1 = bench_now_ns();
    for (long i = 0; i < n && rc == 0; i++)
        if (prism_placement_group_remove(c, pgs[i]) != PRISM_OK)
            rc = fail("remove a placement group");
    double removed_s = (double)(bench_now_ns() - t1) / 1e9;
    long gcs2 = gcs_private_kib();
    if (rc == 0)
        printf("{\"case\": \"pgs\", \"n\": %ld, \"seconds\": %.3f, \"per_unit_us\": %.1f, "
               "\"created_s\": %.3f, \"removed_s\": %.3f, "
               "\"gcs_private_kib_per_group\": %.1f, \"gcs_private_kib_after_removal\": %ld}\n",
               n, ready_s, ready_s * 1e6 / (double)n, created_s, removed_s,
               gcs0 >= 0 && gcs1 >= 0 ? (double)(gcs1 - gcs0) / (double)n : -1,
               gcs0 >= 0 && gcs2 >= 0 ? gcs2 - gcs0 : -1);
    for (long i = 0; i < n && pgs; i++)
        prism_placement_group_release(pgs[i]);
    free(pgs);
    return rc;
}

static int case_actors(prism_client *c, long n)
{
    prism_actor **actors = calloc((size_t)n, sizeof *actors);
    prism_ref **outs = calloc((size_t)n, sizeof *outs);
    int rc = actors && outs ? 0 : fail("memory");
    long gcs0 = gcs_private_kib();
    prism_actor_options o;
    prism_actor_options_init(&o);
    o.num_cpus = 0.5 / (double)n; /* half the node's CPU for them all */
    o.detached = true;
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < n && rc == 0; i++)
        if (prism_actor_create(c, "builtin", "Counter", NULL, 0, &o, &actors[i]) != PRISM_OK)
            rc = fail("create an actor");
    double created_s = (double)(bench_now_ns() - t0) / 1e9;
    for (long i = 0; i < n && rc == 0; i++)
        if (prism_actor_call(c, actors[i], "inc", NULL, 0, 1, &outs[i]) != PRISM_OK)
            rc = fail("call inc");
    for (long i = 0; i < n && rc == 0; i++)
        rc = check_int(c, outs[i], 1);
    double s = (double)(bench_now_ns() - t0) / 1e9;
    long gcs1 = gcs_private_kib();
    if (rc == 0)
        printf("{\"case\": \"actors\", \"n\": %ld, \"seconds\": %.3f, \"per_unit_us\": %.1f, "
               "\"create_calls_s\": %.3f, \"gcs_private_kib_per_actor\": %.1f}\n",
               n, s, s * 1e6 / (double)n, created_s,
               gcs0 >= 0 && gcs1 >= 0 ? (double)(gcs1 - gcs0) / (double)n : -1);
    for (long i = 0; i < n; i++) {
        if (outs)
            prism_ref_release(outs[i]);
        if (actors)
            prism_actor_release(actors[i]);
    }
    free(outs);
    free(actors);
    return rc;
}

int main(int argc, char **argv)
{
    long n = argc == 3 ? strtol(argv[2], NULL, 10) : 0;
    if (argc != 3 || n <= 0) {
        fprintf(
            stderr,
            "usage: prism-scale-single args|returns|get|queued|spread|object|running|actors|pgs N\n");
        return 2;
    }
    prism_client *c = NULL;
    if (prism_connect(NULL, &c) != PRISM_OK)
        return fail("connect");
    int rc;
    if (!strcmp(argv[1], "args"))
        rc = case_args(c, n);
    else if (!strcmp(argv[1], "returns"))
        rc = case_returns(c, n);
    else if (!strcmp(argv[1], "get"))
        rc = many_tasks(c, "get", n, false, false);
    else if (!strcmp(argv[1], "queued"))
        rc = many_tasks(c, "queued", n, true, false);
    else if (!strcmp(argv[1], "spread"))
        rc = many_tasks(c, "spread", n, false, true);
    else if (!strcmp(argv[1], "object"))
        rc = case_object(c, n);
    else if (!strcmp(argv[1], "running"))
        rc = case_running(c, n);
    else if (!strcmp(argv[1], "actors"))
        rc = case_actors(c, n);
    else if (!strcmp(argv[1], "pgs"))
        rc = case_pgs(c, n);
    else
        rc = 2;
    prism_disconnect(c);
    return rc;
}
