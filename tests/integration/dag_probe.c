/* A driver for the DAG integration tests (test_dags.py): each subcommand
 * compiles a DAG of builtin Counters against the cluster in
 * PRISM_ADDRESS/PRISM_TOKEN, checks what it gives, and exits 0 only when
 * every result was right. Counter(k).add(x) returns x + k. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <prism/dag.h>

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "dag_probe: " __VA_ARGS__);                                            \
            fprintf(stderr, " (%s)\n", prism_last_error());                                        \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define MAX_ACTORS 16

static prism_client *c;
static prism_actor *actors[MAX_ACTORS];

/* With DAG_PROBE_NODES=A,B in the environment, actors go to nodes B, A, B,
 * A, ... (node affinity), so the same checks run over TCP edges. */
static void make_actors(int k, int step)
{
    CHECK(k > 0 && k <= MAX_ACTORS, "1-%d actors", MAX_ACTORS);
    char a[128] = "", b[128] = "";
    const char *spread = getenv("DAG_PROBE_NODES");
    if (spread)
        CHECK(sscanf(spread, "%127[^,],%127s", a, b) == 2, "DAG_PROBE_NODES is A,B");
    for (int i = 0; i < k; i++) {
        char start[32];
        snprintf(start, sizeof start, "%d", step * (i + 1));
        prism_value *arg = prism_value_json(start);
        prism_actor_options o = PRISM_ACTOR_OPTIONS_INIT;
        if (spread) {
            o.strategy = PRISM_STRATEGY_NODE_AFFINITY;
            o.node_id = i % 2 ? a : b;
        }
        CHECK(prism_actor_create(c, "builtin", "Counter", &arg, 1, &o, &actors[i]) == PRISM_OK,
              "create actor %d", i);
        prism_value_free(arg);
    }
}

/* An ordinary call: its JSON result as a number, or the status. */
static prism_status call(prism_actor *a, const char *method, const char *arg, long long *out)
{
    prism_value *v = arg ? prism_value_json(arg) : NULL, *got = NULL;
    prism_ref *r = NULL;
    prism_status s = prism_actor_call(c, a, method, v ? &v : NULL, v ? 1 : 0, 1, &r);
    prism_value_free(v);
    if (s == PRISM_OK)
        s = prism_get(c, r, 60000, &got);
    *out = got && prism_value_json_text(got) ? atoll(prism_value_json_text(got)) : -1;
    prism_value_free(got);
    prism_ref_release(r);
    return s;
}

/* input -> actor 0 -> actor 1 -> ...; NULL when compile failed. */
static prism_dag_compiled *compile_chain_may_fail(int k, int inflight)
{
    prism_dag *g;
    prism_dag_node *n;
    CHECK(prism_dag_create(&g) == PRISM_OK && prism_dag_input(g, &n) == PRISM_OK, "graph");
    for (int i = 0; i < k; i++)
        CHECK(prism_dag_bind(g, actors[i], "add", &n, 1, &n) == PRISM_OK, "bind");
    prism_dag_options o = PRISM_DAG_OPTIONS_INIT;
    o.max_inflight = inflight;
    prism_dag_compiled *d = NULL;
    prism_status s = prism_dag_compile(c, g, &o, &d);
    prism_dag_free(g);
    return s == PRISM_OK ? d : NULL;
}

static prism_dag_compiled *compile_chain(int k, int inflight)
{
    prism_dag_compiled *d = compile_chain_may_fail(k, inflight);
    CHECK(d, "compile");
    return d;
}

/* Compiles `g` with `inflight` executions in flight, then frees it (the
 * compiled DAG does not need it). */
static prism_dag_compiled *compile_graph_buf(prism_dag *g, int inflight, uint64_t max_buf_size)
{
    prism_dag_options o = PRISM_DAG_OPTIONS_INIT;
    o.max_inflight = inflight;
    if (max_buf_size)
        o.max_buf_size = max_buf_size;
    prism_dag_compiled *d;
    CHECK(prism_dag_compile(c, g, &o, &d) == PRISM_OK, "compile");
    prism_dag_free(g);
    return d;
}

static prism_dag_compiled *compile_graph(prism_dag *g, int inflight)
{
    return compile_graph_buf(g, inflight, 0);
}

/* input -> each actor; a multi-output node gathers them. */
static prism_dag_compiled *compile_fanout(int k, int inflight)
{
    prism_dag *g;
    prism_dag_node *in, *parts[MAX_ACTORS], *all;
    CHECK(prism_dag_create(&g) == PRISM_OK && prism_dag_input(g, &in) == PRISM_OK, "graph");
    for (int i = 0; i < k; i++)
        CHECK(prism_dag_bind(g, actors[i], "add", &in, 1, &parts[i]) == PRISM_OK, "bind");
    CHECK(prism_dag_multi_output(g, parts, (size_t)k, &all) == PRISM_OK, "multi_output");
    return compile_graph(g, inflight);
}

static prism_dag_future *execute(prism_dag_compiled *d, long long x)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", x);
    prism_value *v = prism_value_json(text);
    prism_dag_future *f;
    CHECK(prism_dag_execute(d, v, &f) == PRISM_OK, "execute %lld", x);
    prism_value_free(v);
    return f;
}

static long long number(const prism_value *v)
{
    return v && prism_value_json_text(v) ? atoll(prism_value_json_text(v)) : -1;
}

/* Execution x's result, read in place when x is odd (then borrowed), else
 * copied into `*owned` (the caller frees it), so that both gets see every
 * shape and every kind of edge. */
static const prism_value *get_either(prism_dag_future *f, long long x, prism_value **owned)
{
    const prism_value *out = NULL;
    *owned = NULL;
    prism_status s = x % 2 ? prism_dag_get_in_place(f, 60000, &out)
                           : prism_dag_get(f, 60000, owned);
    CHECK(s == PRISM_OK, "get %lld: %s", x, prism_status_text(s));
    return *owned ? *owned : out;
}

/* Checks execution x's result: chain: x + sum; fan-out: [x + step, x + 2 step, ...]. */
static void check_result(prism_dag_future *f, long long x, int k, int step, bool fanout)
{
    prism_value *owned;
    const prism_value *out = get_either(f, x, &owned);
    if (fanout) {
        CHECK(prism_value_list_size(out) == (size_t)k, "a list of %d", k);
        for (int i = 0; i < k; i++)
            CHECK(number(prism_value_list_get(out, (size_t)i)) == x + step * (i + 1),
                  "item %d of %lld", i, x);
    } else {
        long long want = x + (long long)step * k * (k + 1) / 2;
        CHECK(number(out) == want, "execution %lld gave %lld, not %lld", x, number(out), want);
    }
    prism_value_free(owned);
}

/* chain|fanout K N INFLIGHT: N executions, INFLIGHT at a time. */
static int run_many(bool fanout, int k, long long n, int inflight)
{
    int step = fanout ? 10 : 1;
    make_actors(k, step);
    prism_dag_compiled *d = fanout ? compile_fanout(k, inflight) : compile_chain(k, inflight);
    prism_dag_future **fs = calloc((size_t)inflight, sizeof *fs);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long long x = 0; x < n + inflight; x++) {
        if (x >= inflight)
            check_result(fs[x % inflight], x - inflight, k, step, fanout);
        if (x < n)
            fs[x % inflight] = execute(d, x);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");
    free(fs);
    printf("%s ok: %lld executions of %d actors in %.2f s (%.1f us each)\n",
           fanout ? "fanout" : "chain", n, k, s, s * 1e6 / (double)n);
    return 0;
}

/* A compile that fails says why and leaves the actors that did start free
 * for ordinary calls: an unknown method on the second actor, then a dead
 * actor. */
static void compile_failures(void)
{
    prism_dag *g;
    prism_dag_node *n;
    prism_dag_compiled *d = NULL;
    CHECK(prism_dag_create(&g) == PRISM_OK && prism_dag_input(g, &n) == PRISM_OK, "graph");
    CHECK(prism_dag_bind(g, actors[0], "add", &n, 1, &n) == PRISM_OK &&
              prism_dag_bind(g, actors[1], "nope", &n, 1, &n) == PRISM_OK,
          "bind");
    CHECK(prism_dag_compile(c, g, NULL, &d) != PRISM_OK && !d &&
              strstr(prism_last_error(), "no method 'nope'"),
          "compile with an unknown method");
    printf("unknown method: %s\n", prism_last_error());
    prism_dag_free(g);
    long long got;
    CHECK(call(actors[0], "add", "1", &got) == PRISM_OK, "a call after a failed compile");
    CHECK(prism_actor_kill(c, actors[1], true) == PRISM_OK, "kill");
    for (int i = 0; i < 200 && call(actors[1], "get", NULL, &got) != PRISM_ERR_ACTOR_DIED; i++)
        usleep(50000);
    d = compile_chain_may_fail(2, 4);
    CHECK(!d && prism_last_status() == PRISM_ERR_ACTOR_DIED, "compile with a dead actor: %s",
          prism_status_text(prism_last_status()));
    printf("dead actor: %s\n", prism_last_error());
}

/* errors: a failing method names itself and the DAG goes on; ordinary calls
 * are refused while the actor is in the DAG and taken again after teardown. */
static int errors(void)
{
    make_actors(2, 1);
    prism_dag_compiled *d = compile_chain(2, 4);
    prism_value *bad = prism_value_json("\"not a number\""), *out = NULL;
    prism_dag_future *f0 = execute(d, 5), *f1, *f2 = NULL;
    CHECK(prism_dag_execute(d, bad, &f1) == PRISM_OK, "execute bad");
    prism_value_free(bad);
    f2 = execute(d, 7);
    check_result(f0, 5, 2, 1, false);
    prism_status s = prism_dag_get(f1, 60000, &out);
    CHECK(s == PRISM_ERR_TASK && prism_value_kind_of(out) == PRISM_VALUE_ERROR &&
              !strcmp(prism_value_error_task(out), "Counter.add") &&
              strstr(prism_value_error_message(out), "JSON integer"),
          "the failed execution: %s", prism_status_text(s));
    printf("method error: %s\n", prism_last_error());
    prism_value_free(out);
    check_result(f2, 7, 2, 1, false);
    long long got;
    s = call(actors[0], "add", "1", &got);
    CHECK(s != PRISM_OK && strstr(prism_last_error(), "compiled DAG"), "a call during the DAG");
    printf("call refused: %s\n", prism_last_error());
    /* More than max_inflight at once is refused, and nothing breaks. */
    prism_dag_future *fs[5];
    for (int i = 0; i < 4; i++)
        fs[i] = execute(d, i);
    prism_value *v = prism_value_json("1");
    CHECK(prism_dag_execute(d, v, &fs[4]) == PRISM_ERR_INVALID, "a fifth execution in flight");
    prism_value_free(v);
    prism_dag_future_release(fs[0]);
    for (int i = 1; i < 4; i++)
        check_result(fs[i], i, 2, 1, false);
    /* A tensor in device memory (a pointer the host never reads) is refused
     * by execute, an actor call and a put, saying why; the DAG goes on. */
    static float fake[4];
    int64_t four = 4;
    prism_value *dev = prism_value_device_tensor(0, PRISM_F32, 1, &four, fake, NULL, NULL);
    prism_ref *r = NULL;
    CHECK(dev && prism_dag_execute(d, dev, &fs[0]) != PRISM_OK, "executing with device memory");
    CHECK(prism_put(c, dev, &r) == PRISM_ERR_INVALID && strstr(prism_last_error(), "device memory"),
          "a put of device memory");
    CHECK(prism_actor_call(c, actors[0], "add", &dev, 1, 1, &r) == PRISM_ERR_INVALID &&
              strstr(prism_last_error(), "device memory"),
          "an actor call with device memory");
    printf("device memory refused: %s\n", prism_last_error());
    prism_value_free(dev);
    /* GPUs: a share of one below 1, whole devices above. */
    prism_actor_options ao = PRISM_ACTOR_OPTIONS_INIT;
    prism_actor *none = NULL;
    ao.num_gpus = 1.5;
    CHECK(prism_actor_create(c, "builtin", "Counter", NULL, 0, &ao, &none) == PRISM_ERR_INVALID &&
              !none && strstr(prism_last_error(), "whole number"),
          "num_gpus 1.5");
    check_result(execute(d, 9), 9, 2, 1, false);
    CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");
    CHECK(call(actors[0], "add", "1", &got) == PRISM_OK && got == 2, "a call after teardown");
    compile_failures();
    printf("errors ok\n");
    return 0;
}

/* died: SIGKILL to the middle actor's worker while executions are in flight. */
static void pause_for_test(const char *said);

/* died [pause]: with `pause`, waits once the DAG is broken (the test sees it BROKEN). */
static int died(bool pause)
{
    make_actors(3, 1);
    long long pid;
    CHECK(call(actors[1], "pid", NULL, &pid) == PRISM_OK && pid > 0, "pid");
    prism_dag_compiled *d = compile_chain(3, 8);
    for (int i = 0; i < 100; i++)
        check_result(execute(d, i), i, 3, 1, false);
    prism_dag_future *fs[4];
    for (int i = 0; i < 4; i++)
        fs[i] = execute(d, i);
    kill((pid_t)pid, SIGKILL);
    /* Those in flight may have finished before the kill; the next fail. */
    prism_status s = PRISM_OK;
    for (int i = 0; i < 4; i++) {
        prism_value *out = NULL;
        s = prism_dag_get(fs[i], 30000, &out);
        CHECK(s == PRISM_OK || s == PRISM_ERR_ACTOR_DIED, "get after the kill: %s",
              prism_status_text(s));
        prism_value_free(out);
    }
    for (int i = 0; s == PRISM_OK && i < 1000; i++) {
        prism_value *v = prism_value_json("1"), *out = NULL;
        prism_dag_future *f;
        s = prism_dag_execute(d, v, &f);
        prism_value_free(v);
        if (s == PRISM_OK)
            s = prism_dag_get(f, 30000, &out);
        prism_value_free(out);
    }
    CHECK(s == PRISM_ERR_ACTOR_DIED, "executions after the kill fail with ACTOR_DIED, not %s",
          prism_status_text(s));
    printf("actor died: %s\n", prism_last_error());
    prism_value *v = prism_value_json("1");
    prism_dag_future *f;
    CHECK(prism_dag_execute(d, v, &f) == PRISM_ERR_ACTOR_DIED, "execute on a broken DAG");
    prism_value_free(v);
    if (pause)
        pause_for_test("broken");
    prism_dag_teardown(d);
    printf("died ok\n");
    return 0;
}

/* returns: Counter(5).pair(in) makes two returns: the first is an output
 * item, the second goes through Counter(1).add: [x, x + 5 + 1]. */
static int returns(void)
{
    make_actors(1, 5);
    prism_value *one = prism_value_json("1");
    CHECK(prism_actor_create(c, "builtin", "Counter", &one, 1, NULL, &actors[1]) == PRISM_OK,
          "create");
    prism_value_free(one);
    prism_dag *g;
    prism_dag_node *in, *r[2], *items[2], *all;
    CHECK(prism_dag_create(&g) == PRISM_OK && prism_dag_input(g, &in) == PRISM_OK, "graph");
    CHECK(prism_dag_bind_returns(g, actors[0], "pair", &in, 1, 2, r) == PRISM_OK, "bind pair");
    items[0] = r[0];
    CHECK(prism_dag_bind(g, actors[1], "add", &r[1], 1, &items[1]) == PRISM_OK, "bind add");
    CHECK(prism_dag_multi_output(g, items, 2, &all) == PRISM_OK, "multi_output");
    prism_dag_compiled *d;
    CHECK(prism_dag_compile(c, g, NULL, &d) == PRISM_OK, "compile");
    prism_dag_free(g);
    for (long long x = 0; x < 1000; x++) {
        prism_value *out;
        CHECK(prism_dag_get(execute(d, x), 60000, &out) == PRISM_OK, "get %lld", x);
        CHECK(prism_value_list_size(out) == 2 && number(prism_value_list_get(out, 0)) == x &&
                  number(prism_value_list_get(out, 1)) == x + 6,
              "execution %lld", x);
        prism_value_free(out);
    }
    /* A failure reaches both returns' readers. */
    prism_value *bad = prism_value_json("\"x\""), *out = NULL;
    prism_dag_future *f;
    CHECK(prism_dag_execute(d, bad, &f) == PRISM_OK, "execute bad");
    prism_value_free(bad);
    CHECK(prism_dag_get(f, 60000, &out) == PRISM_ERR_TASK &&
              !strcmp(prism_value_error_task(out), "Counter.pair"),
          "the failed pair");
    prism_value_free(out);
    CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");
    printf("returns ok\n");
    return 0;
}

/* orphan: a detached actor in a DAG whose driver dies (SIGKILL to itself,
 * no teardown); orphan-after: in a new driver, the actor takes ordinary
 * calls again (its loop saw the input's writer die), then is killed. */
static int orphan(bool after)
{
    prism_actor_options o = PRISM_ACTOR_OPTIONS_INIT;
    o.name = "dag-orphan";
    o.detached = true;
    long long got = -1;
    if (after) {
        CHECK(prism_actor_get(c, "dag-orphan", NULL, &actors[0]) == PRISM_OK, "find the actor");
        prism_status s = PRISM_ERR_INVALID;
        for (int i = 0; i < 100 && (s = call(actors[0], "add", "1", &got)) != PRISM_OK; i++)
            usleep(50000);
        CHECK(s == PRISM_OK && got == 1, "a call once the driver died");
        CHECK(prism_actor_kill(c, actors[0], true) == PRISM_OK, "kill");
        printf("orphan ok\n");
        return 0;
    }
    CHECK(prism_actor_create(c, "builtin", "Counter", NULL, 0, &o, &actors[0]) == PRISM_OK,
          "create");
    prism_dag_compiled *d = compile_chain(1, 4);
    for (int x = 0; x < 10; x++)
        check_result(execute(d, x), x, 0, 1, false);
    CHECK(call(actors[0], "add", "1", &got) != PRISM_OK, "a call during the DAG");
    printf("compiled\n");
    fflush(stdout);
    kill(getpid(), SIGKILL);
    return 1;
}

/* Threads and channel fds of a process. */
static void census(long long pid, int *threads, int *memfds)
{
    char path[64], link[256];
    *threads = *memfds = 0;
    snprintf(path, sizeof path, "/proc/%lld/task", pid);
    DIR *dir = opendir(path);
    for (struct dirent *e; dir && (e = readdir(dir));)
        *threads += e->d_name[0] != '.';
    if (dir)
        closedir(dir);
    snprintf(path, sizeof path, "/proc/%lld/fd", pid);
    dir = opendir(path);
    for (struct dirent *e; dir && (e = readdir(dir));) {
        char fd[300];
        snprintf(fd, sizeof fd, "%s/%s", path, e->d_name);
        ssize_t n = readlink(fd, link, sizeof link - 1);
        link[n > 0 ? n : 0] = 0;
        *memfds += strstr(link, "memfd:prism-channel") != NULL;
    }
    if (dir)
        closedir(dir);
}

/* teardown: after compile, executions and teardown (ten times), the actors'
 * workers and this process hold the threads they held before and no
 * channel. */
static int teardown(void)
{
    make_actors(3, 1);
    long long pids[4] = {getpid()};
    int before[4][2], during[4][2], after[4][2];
    for (int i = 0; i < 3; i++)
        CHECK(call(actors[i], "pid", NULL, &pids[i + 1]) == PRISM_OK, "pid");
    for (int i = 0; i < 4; i++)
        census(pids[i], &before[i][0], &before[i][1]);
    for (int round = 0; round < 10; round++) {
        prism_dag_compiled *d = round % 2 ? compile_fanout(3, 4) : compile_chain(3, 4);
        for (int x = 0; x < 10; x++)
            check_result(execute(d, x), x, 3, 1, round % 2);
        for (int i = 0; round == 0 && i < 4; i++)
            census(pids[i], &during[i][0], &during[i][1]);
        CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");
    }
    for (int i = 0; i < 4; i++) {
        census(pids[i], &after[i][0], &after[i][1]);
        printf("process %lld: threads %d, %d running, %d after; channel fds %d, %d running, %d "
               "after\n",
               pids[i], before[i][0], during[i][0], after[i][0], before[i][1], during[i][1],
               after[i][1]);
        CHECK(during[i][1] > 0, "the census sees channels while the DAG runs");
        CHECK(after[i][0] == before[i][0] && after[i][1] == 0, "process %lld kept something",
              pids[i]);
    }
    printf("teardown ok\n");
    return 0;
}

/* rendezvous MS: the second actor is busy for MS ms when compile starts, so
 * the driver listens on its rendezvous socket that long (the test connects
 * to it meanwhile, as a peer without a nonce); then the DAG must work. */
static int rendezvous(long long ms)
{
    make_actors(2, 1);
    char arg[32];
    snprintf(arg, sizeof arg, "%lld", ms);
    prism_value *v = prism_value_json(arg), *got = NULL;
    prism_ref *busy;
    CHECK(prism_actor_call(c, actors[1], "sleep", &v, 1, 1, &busy) == PRISM_OK, "sleep");
    prism_value_free(v);
    printf("compiling\n");
    fflush(stdout);
    prism_dag_compiled *d = compile_chain(2, 4);
    printf("compiled\n");
    fflush(stdout);
    CHECK(prism_get(c, busy, 60000, &got) == PRISM_OK, "the sleep");
    prism_value_free(got);
    prism_ref_release(busy);
    for (long long x = 0; x < 100; x++)
        check_result(execute(d, x), x, 2, 1, false);
    CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");
    printf("rendezvous ok\n");
    return 0;
}

/* Bytes of execution x: `size` bytes, each (x + i * 7) mod 251. */
static prism_value *pattern(long long x, size_t size)
{
    unsigned char *b = malloc(size);
    CHECK(b, "out of memory");
    for (size_t i = 0; i < size; i++)
        b[i] = (unsigned char)((x + (long long)i * 7) % 251);
    prism_value *v = prism_value_bytes(b, size);
    free(b);
    return v;
}

static bool is_pattern(const prism_value *v, long long x, size_t size)
{
    size_t len = 0;
    const unsigned char *b = v ? prism_value_data(v, &len) : NULL;
    if (!b || len != size)
        return false;
    for (size_t i = 0; i < size; i++)
        if (b[i] != (unsigned char)((x + (long long)i * 7) % 251))
            return false;
    return true;
}

/* Compiles input -> actors[0].echo (-> actors[1].echo and actors[2].echo,
 * gathered, with `fan`), 2 in flight, 64 KiB slots. */
static prism_dag_compiled *compile_echo(bool fan)
{
    prism_dag *g;
    prism_dag_node *in, *a, *parts[2], *all;
    CHECK(prism_dag_create(&g) == PRISM_OK && prism_dag_input(g, &in) == PRISM_OK, "graph");
    CHECK(prism_dag_bind(g, actors[0], "echo", &in, 1, &a) == PRISM_OK, "bind");
    if (fan)
        CHECK(prism_dag_bind(g, actors[1], "echo", &a, 1, &parts[0]) == PRISM_OK &&
                  prism_dag_bind(g, actors[2], "echo", &a, 1, &parts[1]) == PRISM_OK &&
                  prism_dag_multi_output(g, parts, 2, &all) == PRISM_OK,
              "bind");
    return compile_graph_buf(g, 2, 64 * 1024);
}

/* large N SIZE: input -> A.echo -> (B.echo, C.echo) with 64 KiB slots: every
 * other execution carries SIZE bytes (through the object store, read by two
 * readers after A), the others 1 KiB (in the slots). Waits (the test looks
 * at the object store) before and after teardown. */
static int large(long long n, size_t size)
{
    make_actors(3, 1);
    prism_dag_compiled *d = compile_echo(true);
    for (long long x = 0; x < n; x++) {
        size_t len = x % 2 ? 1024 : size;
        prism_value *v = pattern(x, len), *out = NULL;
        prism_dag_future *f;
        CHECK(prism_dag_execute(d, v, &f) == PRISM_OK, "execute %lld", x);
        prism_value_free(v);
        CHECK(prism_dag_get(f, 60000, &out) == PRISM_OK, "get %lld", x);
        CHECK(prism_value_list_size(out) == 2 && is_pattern(prism_value_list_get(out, 0), x, len) &&
                  is_pattern(prism_value_list_get(out, 1), x, len),
              "execution %lld came back changed", x);
        prism_value_free(out);
    }
    pause_for_test("executed");
    CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");
    pause_for_test("torn down");
    printf("large ok\n");
    return 0;
}

/* Whether `v` is fill(size)'s bytes from a Counter(k): (k + i) mod 256. */
static bool is_fill(const prism_value *v, long long k, size_t size)
{
    size_t len = 0;
    const unsigned char *b = v ? prism_value_data(v, &len) : NULL;
    if (prism_value_kind_of(v) != PRISM_VALUE_BYTES || len != size)
        return false;
    for (size_t i = 0; i < size; i++)
        if (b[i] != (unsigned char)((unsigned long long)k + i))
            return false;
    return true;
}

/* in -> A.`method` -> a, B.echo of a (`chained`) or of in -> b, output
 * [a, b]: 3 in flight, 64 KiB slots. */
static prism_dag_compiled *compile_two(const char *method, bool chained)
{
    prism_dag *g;
    prism_dag_node *in, *a, *b, *all;
    CHECK(prism_dag_create(&g) == PRISM_OK && prism_dag_input(g, &in) == PRISM_OK &&
              prism_dag_bind(g, actors[0], method, &in, 1, &a) == PRISM_OK &&
              prism_dag_bind(g, actors[1], "echo", chained ? &a : &in, 1, &b) == PRISM_OK &&
              prism_dag_multi_output(g, (prism_dag_node *[]){a, b}, 2, &all) == PRISM_OK,
          "graph");
    return compile_graph_buf(g, 3, 64 * 1024);
}

/* fill N: input (a size) -> A.fill -> B.echo, output [A's, B's], A =
 * Counter(7), 64 KiB slots, 3 in flight: A and B write their bytes in the
 * slot (prism_task_return_bytes), A's read by B and the driver. Sizes
 * cycle through empty, small, a slot's fill, one byte past it and larger
 * (a value of their own, through the object store), and a fill that fails
 * after asking (its error names Counter.fill; the next one is whole); then
 * A.fill(in, "swap"), whose other value comes instead of its bytes. */
static int fill(long long n)
{
    make_actors(2, 7);
    prism_dag_compiled *d = compile_two("fill", true);
    /* 25: a bytes record's head (docs/dags.md#records) */
    const long long sizes[] = {0, 8, 1000, 60000, 65536 - 25, 65536 - 24, 200000, -5000};
    const size_t nsizes = sizeof sizes / sizeof sizes[0];
    prism_dag_future *fs[3];
    for (long long x = 0; x < n + 3; x++) {
        if (x >= 3) {
            long long size = sizes[(x - 3) % (long long)nsizes];
            prism_value *owned;
            if (size < 0) {
                prism_status s = prism_dag_get(fs[x % 3], 60000, &owned);
                CHECK(s == PRISM_ERR_TASK && prism_value_error_task(owned) &&
                          !strcmp(prism_value_error_task(owned), "Counter.fill") &&
                          strstr(prism_value_error_message(owned), "failed after asking"),
                      "execution %lld (fill(%lld)) gave %s", x - 3, size, prism_status_text(s));
                prism_value_free(owned);
            } else {
                const prism_value *out = get_either(fs[x % 3], x - 3, &owned);
                CHECK(prism_value_list_size(out) == 2 &&
                          is_fill(prism_value_list_get(out, 0), 7, (size_t)size) &&
                          is_fill(prism_value_list_get(out, 1), 7, (size_t)size),
                      "execution %lld (fill(%lld)) came back changed", x - 3, size);
                prism_value_free(owned);
            }
        }
        if (x < n)
            fs[x % 3] = execute(d, sizes[x % (long long)nsizes]);
    }
    CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");
    /* in -> A.fill(in, "swap"): the bytes asked for (in the slot, or too
     * large for it) replaced by another value, which is what comes */
    prism_dag *g;
    prism_dag_node *in, *swap, *a;
    prism_value *word = prism_value_json("\"swap\"");
    CHECK(prism_dag_create(&g) == PRISM_OK && prism_dag_input(g, &in) == PRISM_OK &&
              prism_dag_constant(g, word, &swap) == PRISM_OK &&
              prism_dag_bind(g, actors[0], "fill", (prism_dag_node *[]){in, swap}, 2, &a) ==
                  PRISM_OK,
          "graph of a swap");
    prism_value_free(word);
    d = compile_graph_buf(g, 8, 64 * 1024);
    for (long long x = 0; x < 6; x++) {
        prism_value *out;
        CHECK(prism_dag_get(execute(d, x % 2 ? 100 : 100000), 60000, &out) == PRISM_OK &&
                  !strcmp(prism_value_json_text(out) ? prism_value_json_text(out) : "",
                          "\"swapped\""),
              "fill(%d, swap) in the DAG", x % 2 ? 100 : 100000);
        prism_value_free(out);
    }
    CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");
    printf("fill ok: %lld executions\n", n);
    return 0;
}

/* Execution x's input written in place: the pattern of `len` bytes. */
static prism_dag_future *execute_written(prism_dag_compiled *d, long long x, size_t len)
{
    unsigned char *in;
    CHECK(prism_dag_execute_begin(d, len, (void **)&in) == PRISM_OK, "begin %lld", x);
    for (size_t i = 0; i < len; i++)
        in[i] = (unsigned char)((x + (long long)i * 7) % 251);
    prism_dag_future *f;
    CHECK(prism_dag_execute_end(d, &f) == PRISM_OK, "end %lld", x);
    return f;
}

/* written N: the input written in place (prism_dag_execute_begin/_end),
 * read by two actors: in -> A.echo, in -> B.echo, output [A's, B's], 64
 * KiB slots, 3 in flight (across nodes: one connection per reader). N
 * executions of 0 to a slot's fill, each got as sent; and what is refused
 * without a byte written: a value too large, a second begin, an execute or
 * a fourth execution meanwhile, an end without a begin, a DAG that takes
 * items; a cancelled input leaves no trace. */
static int written(long long n)
{
    make_actors(2, 1);
    prism_dag_compiled *d = compile_two("echo", false);
    const size_t fill = 64 * 1024 - 25; /* a bytes record's head (docs/dags.md#records) */
    const size_t sizes[] = {0, 8, 1000, 40000, fill};
    prism_dag_future *fs[3];
    void *buf;
    for (long long x = 0; x < n + 3; x++) {
        if (x == 3) { /* three in flight: a fourth is refused */
            CHECK(prism_dag_execute_begin(d, 8, &buf) == PRISM_ERR_INVALID, "a fourth begin");
            prism_dag_future *f;
            CHECK(prism_dag_execute_end(d, &f) == PRISM_ERR_INVALID && !f,
                  "an end without a begin");
        }
        if (x >= 3) {
            size_t len = sizes[(x - 3) % 5];
            prism_value *owned;
            const prism_value *out = get_either(fs[x % 3], x - 3, &owned);
            CHECK(prism_value_list_size(out) == 2 &&
                      is_pattern(prism_value_list_get(out, 0), x - 3, len) &&
                      is_pattern(prism_value_list_get(out, 1), x - 3, len),
                  "execution %lld (%zu bytes written in place) came back changed", x - 3, len);
            prism_value_free(owned);
        }
        if (x < n)
            fs[x % 3] = execute_written(d, x, sizes[x % 5]);
    }
    CHECK(prism_dag_execute_begin(d, fill + 1, &buf) == PRISM_ERR_INVALID && !buf &&
              strstr(prism_last_error(), "do not fit"),
          "a value one byte too large");
    CHECK(prism_dag_execute_begin(d, 100, &buf) == PRISM_OK, "begin to cancel");
    memset(buf, 0xee, 100);
    void *again;
    CHECK(prism_dag_execute_begin(d, 8, &again) == PRISM_ERR_INVALID, "a second begin");
    prism_value *v = pattern(1, 8);
    prism_dag_future *f;
    CHECK(prism_dag_execute(d, v, &f) == PRISM_ERR_INVALID && strstr(prism_last_error(), "begin"),
          "an execute while an input is begun");
    prism_dag_execute_cancel(d);
    prism_dag_execute_cancel(d); /* nothing begun: a no-op */
    CHECK(prism_dag_execute(d, v, &f) == PRISM_OK, "an execute after the cancel");
    prism_value_free(v);
    prism_value *out;
    CHECK(prism_dag_get(f, 60000, &out) == PRISM_OK && prism_value_list_size(out) == 2 &&
              is_pattern(prism_value_list_get(out, 0), 1, 8),
          "the cancelled input left a trace");
    prism_value_free(out);
    CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");

    prism_dag *g;
    prism_dag_node *in, *x0, *e;
    CHECK(prism_dag_create(&g) == PRISM_OK && prism_dag_input(g, &in) == PRISM_OK &&
              prism_dag_input_item(g, in, 0, &x0) == PRISM_OK &&
              prism_dag_bind(g, actors[0], "echo", &x0, 1, &e) == PRISM_OK,
          "graph of an item");
    d = compile_graph(g, 2);
    CHECK(prism_dag_execute_begin(d, 8, &buf) == PRISM_ERR_INVALID &&
              strstr(prism_last_error(), "items or keys"),
          "a DAG that takes items");
    CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");
    printf("written ok: %lld executions\n", n);
    return 0;
}

/* Execution x of `constants`: [x + 101, x + 3204]. */
static void check_constants(prism_dag_future *f, long long x)
{
    prism_value *owned;
    const prism_value *out = get_either(f, x, &owned);
    CHECK(prism_value_list_size(out) == 2 && number(prism_value_list_get(out, 0)) == x + 101 &&
              number(prism_value_list_get(out, 1)) == x + 3204,
          "execution %lld with constants", x);
    prism_value_free(owned);
}

/* constants N: binds that take constants (Ray's bind(inp, 5)), with
 * Counter(1), (2), (3): a = A.add(in, 100) = x + 101, b = B.add(1000, a,
 * 100) = x + 1203, c = A.add(b, 1000, 1000) = x + 3204, output [a, c]: a
 * constant taken twice by one bind, by two actors, and by two binds of one
 * actor; N executions, 4 in flight. The graph is freed before the first
 * execution (the actors have their copies). Then C.echo(big, in) with 64
 * KiB slots, `big` a 200 KiB bytes constant (through the object store to
 * C, and back that way each execution): as sent, every time. */
static int constants(long long n)
{
    make_actors(3, 1);
    prism_dag *g;
    prism_dag_node *in, *k100, *k1000, *a, *b, *cn, *all;
    prism_value *v100 = prism_value_json("100"), *v1000 = prism_value_json("1000");
    CHECK(prism_dag_create(&g) == PRISM_OK && prism_dag_input(g, &in) == PRISM_OK &&
              prism_dag_constant(g, v100, &k100) == PRISM_OK &&
              prism_dag_constant(g, v1000, &k1000) == PRISM_OK,
          "graph");
    prism_value_free(v100);
    prism_value_free(v1000);
    CHECK(prism_dag_bind(g, actors[0], "add", (prism_dag_node *[]){in, k100}, 2, &a) == PRISM_OK,
          "bind a");
    CHECK(prism_dag_bind(g, actors[1], "add", (prism_dag_node *[]){k1000, a, k100}, 3, &b) ==
              PRISM_OK,
          "bind b");
    CHECK(prism_dag_bind(g, actors[0], "add", (prism_dag_node *[]){b, k1000, k1000}, 3, &cn) ==
              PRISM_OK,
          "bind c");
    CHECK(prism_dag_multi_output(g, (prism_dag_node *[]){a, cn}, 2, &all) == PRISM_OK, "gather");
    prism_dag_compiled *d = compile_graph(g, 4);
    prism_dag_future *fs[4];
    for (long long x = 0; x < n + 4; x++) {
        if (x >= 4)
            check_constants(fs[x % 4], x - 4);
        if (x < n)
            fs[x % 4] = execute(d, x);
    }
    CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");

    prism_value *big = pattern(7, 200 * 1024);
    prism_dag_node *kbig, *e;
    CHECK(prism_dag_create(&g) == PRISM_OK && prism_dag_input(g, &in) == PRISM_OK &&
              prism_dag_constant(g, big, &kbig) == PRISM_OK &&
              prism_dag_bind(g, actors[2], "echo", (prism_dag_node *[]){kbig, in}, 2, &e) ==
                  PRISM_OK,
          "graph of a large constant");
    prism_value_free(big);
    prism_dag_options o = PRISM_DAG_OPTIONS_INIT;
    o.max_inflight = 2;
    o.max_buf_size = 64 * 1024;
    CHECK(prism_dag_compile(c, g, &o, &d) == PRISM_OK, "compile with a large constant");
    prism_dag_free(g);
    for (long long x = 0; x < 20; x++) {
        prism_value *owned;
        CHECK(is_pattern(get_either(execute(d, x), x, &owned), 7, 200 * 1024),
              "the large constant came back changed in execution %lld", x);
        prism_value_free(owned);
    }
    CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");
    long long got;
    CHECK(call(actors[0], "add", "1", &got) == PRISM_OK && got == 2, "a call after teardown");
    printf("constants ok: %lld executions\n", n);
    return 0;
}

/* What items and keys give for x and 2x: [3x + 1, 2x + 2, [x, 2x]]. */
static bool three_sums(const prism_value *out, long long x)
{
    const prism_value *whole = prism_value_list_get(out, 2);
    return prism_value_list_size(out) == 3 && number(prism_value_list_get(out, 0)) == 3 * x + 1 &&
           number(prism_value_list_get(out, 1)) == 2 * x + 2 && prism_value_list_size(whole) == 2 &&
           number(prism_value_list_get(whole, 0)) == x &&
           number(prism_value_list_get(whole, 1)) == 2 * x;
}

/* items N: items of the input (Ray's inp[0], inp[1]) with Counter(1), (2),
 * (3): a = A.add(in[0], in[1]), b = B.add(in[1]), c = C.echo(in) (the whole
 * input): N executions of [x, 2x], 4 in flight, give [3x + 1, 2x + 2, [x,
 * 2x]]; every third one by prism_dag_execute_args. An input that is not a
 * list, or too short, and too few arguments are refused with nothing
 * written, and the DAG goes on. */
static int items(long long n)
{
    make_actors(3, 1);
    prism_dag *g;
    prism_dag_node *in, *x, *y, *a, *b, *cn, *all;
    CHECK(prism_dag_create(&g) == PRISM_OK && prism_dag_input(g, &in) == PRISM_OK &&
              prism_dag_input_item(g, in, 0, &x) == PRISM_OK &&
              prism_dag_input_item(g, in, 1, &y) == PRISM_OK &&
              prism_dag_bind(g, actors[0], "add", (prism_dag_node *[]){x, y}, 2, &a) == PRISM_OK &&
              prism_dag_bind(g, actors[1], "add", &y, 1, &b) == PRISM_OK &&
              prism_dag_bind(g, actors[2], "echo", &in, 1, &cn) == PRISM_OK &&
              prism_dag_multi_output(g, (prism_dag_node *[]){a, b, cn}, 3, &all) == PRISM_OK,
          "graph");
    prism_dag_compiled *d = compile_graph(g, 4);
    prism_dag_future *fs[4];
    for (long long k = 0; k < n + 4; k++) {
        if (k >= 4) {
            long long xv = k - 4;
            prism_value *owned;
            CHECK(three_sums(get_either(fs[k % 4], xv, &owned), xv),
                  "execution %lld with items of its input", xv);
            prism_value_free(owned);
        }
        if (k == n / 2) { /* refused: nothing written, the executions go on */
            prism_dag_future *f = NULL;
            prism_value *one = prism_value_json("5"), *short_list = prism_value_list();
            CHECK(prism_value_list_append(short_list, prism_value_json("1")) == PRISM_OK, "list");
            CHECK(prism_dag_execute(d, one, &f) == PRISM_ERR_INVALID && !f &&
                      strstr(prism_last_error(), "a list of at least 2"),
                  "an input that is not a list");
            printf("not a list: %s\n", prism_last_error());
            CHECK(prism_dag_execute(d, short_list, &f) == PRISM_ERR_INVALID && !f,
                  "an input too short");
            CHECK(prism_dag_execute_args(d, (const prism_value *const[]){one}, 1, &f) ==
                          PRISM_ERR_INVALID &&
                      !f,
                  "too few arguments");
            CHECK(prism_dag_execute_args(d, NULL, 2, &f) == PRISM_ERR_INVALID && !f,
                  "no arguments");
            prism_value_free(one);
            prism_value_free(short_list);
        }
        if (k < n) {
            prism_value *v = prism_value_list();
            char text[32];
            snprintf(text, sizeof text, "%lld", k);
            CHECK(prism_value_list_append(v, prism_value_json(text)) == PRISM_OK, "list");
            snprintf(text, sizeof text, "%lld", 2 * k);
            CHECK(prism_value_list_append(v, prism_value_json(text)) == PRISM_OK, "list");
            /* every third one as two values: the items are not put in a list */
            CHECK((k % 3 == 1 ? prism_dag_execute_args(
                                    d,
                                    (const prism_value *const[]){prism_value_list_get(v, 0),
                                                                 prism_value_list_get(v, 1)},
                                    2, &fs[k % 4])
                              : prism_dag_execute(d, v, &fs[k % 4])) == PRISM_OK,
                  "execute %lld", k);
            prism_value_free(v);
        }
    }
    CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");
    /* No node takes the whole input: execute_args writes the two values
     * into their items' channels, with no list made for the input. */
    CHECK(prism_dag_create(&g) == PRISM_OK && prism_dag_input(g, &in) == PRISM_OK &&
              prism_dag_input_item(g, in, 0, &x) == PRISM_OK &&
              prism_dag_input_item(g, in, 1, &y) == PRISM_OK &&
              prism_dag_bind(g, actors[0], "add", (prism_dag_node *[]){y, x}, 2, &a) == PRISM_OK,
          "graph of items only");
    d = compile_graph(g, 2);
    for (long long k = 0; k < 50; k++) {
        prism_value *xv = prism_value_json("7"), *yv = prism_value_json(k % 2 ? "100" : "200");
        prism_dag_future *f;
        CHECK(prism_dag_execute_args(d, (const prism_value *const[]){xv, yv}, 2, &f) == PRISM_OK,
              "execute_args %lld", k);
        prism_value_free(xv);
        prism_value_free(yv);
        prism_value *owned;
        CHECK(number(get_either(f, k, &owned)) == (k % 2 ? 108 : 208),
              "execution %lld of items "
              "only",
              k);
        prism_value_free(owned);
    }
    CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");
    printf("items ok: %lld executions\n", n);
    return 0;
}

/* keys N: an item and a key of the input (Ray's inp[0] and inp.scale) with
 * Counter(1), (2), (3): a = A.add(in[0], in.scale), b = B.add(in.scale),
 * c = C.echo(in): N executions of x and scale=2x by
 * prism_dag_execute_kwargs, 4 in flight, give [3x + 1, 2x + 2, [x, 2x]] (the
 * whole input lists the key after the item). Executing it without the key,
 * with a key it does not take, a key twice or a positional value too many
 * is refused with nothing written, and the DAG goes on. */
static int keys(long long n)
{
    make_actors(3, 1);
    prism_dag *g;
    prism_dag_node *in, *x, *s1, *s2, *a, *b, *cn, *all;
    CHECK(prism_dag_create(&g) == PRISM_OK && prism_dag_input(g, &in) == PRISM_OK &&
              prism_dag_input_item(g, in, 0, &x) == PRISM_OK &&
              prism_dag_input_key(g, in, "scale", &s1) == PRISM_OK &&
              prism_dag_input_key(g, in, "scale", &s2) == PRISM_OK &&
              prism_dag_input_key(g, in, "", &a) == PRISM_ERR_INVALID && !a &&
              prism_dag_bind(g, actors[0], "add", (prism_dag_node *[]){x, s1}, 2, &a) == PRISM_OK &&
              prism_dag_bind(g, actors[1], "add", &s2, 1, &b) == PRISM_OK &&
              prism_dag_bind(g, actors[2], "echo", &in, 1, &cn) == PRISM_OK &&
              prism_dag_multi_output(g, (prism_dag_node *[]){a, b, cn}, 3, &all) == PRISM_OK,
          "graph");
    prism_dag_compiled *d = compile_graph(g, 4);
    prism_dag_future *fs[4];
    const char *scale[] = {"scale"};
    for (long long k = 0; k < n + 4; k++) {
        if (k >= 4) {
            long long xv = k - 4;
            prism_value *owned;
            CHECK(three_sums(get_either(fs[k % 4], xv, &owned), xv),
                  "execution %lld with a key of its input", xv);
            prism_value_free(owned);
        }
        if (k == n / 2) { /* refused: nothing written, the executions go on */
            prism_dag_future *f = NULL;
            prism_value *one = prism_value_json("5");
            const prism_value *const v1[] = {one}, *const v2[] = {one, one};
            CHECK(prism_dag_execute_args(d, v1, 1, &f) == PRISM_ERR_INVALID && !f &&
                      strstr(prism_last_error(), "prism_dag_execute_kwargs"),
                  "executed without its key");
            printf("without its key: %s\n", prism_last_error());
            CHECK(prism_dag_execute_kwargs(d, v1, 1, NULL, NULL, 0, &f) == PRISM_ERR_INVALID &&
                      !f && strstr(prism_last_error(), "\"scale\""),
                  "no key given");
            CHECK(prism_dag_execute_kwargs(d, v1, 1, (const char *[]){"scale", "other"}, v2, 2,
                                           &f) == PRISM_ERR_INVALID &&
                      !f && strstr(prism_last_error(), "\"other\""),
                  "a key it does not take");
            CHECK(prism_dag_execute_kwargs(d, v1, 1, (const char *[]){"scale", "scale"}, v2, 2,
                                           &f) == PRISM_ERR_INVALID &&
                      !f,
                  "a key twice");
            CHECK(prism_dag_execute_kwargs(d, v2, 2, scale, v1, 1, &f) == PRISM_ERR_INVALID && !f,
                  "a positional value too many");
            prism_value_free(one);
        }
        if (k < n) {
            char text[32];
            snprintf(text, sizeof text, "%lld", k);
            prism_value *xv = prism_value_json(text);
            snprintf(text, sizeof text, "%lld", 2 * k);
            prism_value *sv = prism_value_json(text);
            CHECK(prism_dag_execute_kwargs(d, (const prism_value *const[]){xv}, 1, scale,
                                           (const prism_value *const[]){sv}, 1,
                                           &fs[k % 4]) == PRISM_OK,
                  "execute %lld", k);
            prism_value_free(xv);
            prism_value_free(sv);
        }
    }
    CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");
    printf("keys ok: %lld executions\n", n);
    return 0;
}

static prism_dag_future *execute_pattern(prism_dag_compiled *d, long long x, size_t len)
{
    prism_value *v = pattern(x, len);
    prism_dag_future *f;
    CHECK(prism_dag_execute(d, v, &f) == PRISM_OK, "execute %lld", x);
    prism_value_free(v);
    return f;
}

/* The size of execution x's value: mostly in the slot (0 to 40 KiB), every
 * seventh through the object store (100 KiB). */
static size_t in_place_size(long long x)
{
    return x % 7 == 3 ? 100 * 1024 : (size_t)(x * 331 % 40960);
}

/* in-place N: prism_dag_get_in_place over N executions of an echo actor,
 * two in flight (its actor writes ahead into the other slot while the
 * driver holds one): every value as sent and unchanged while it is held
 * (the execution after next would go to its slot), and a value that fits
 * the slot lies where the one two executions before it lay (the slot), not
 * where the one before did. Then out of order (the later one in place, the
 * earlier one copied for its future), after a get that copies, a method's
 * error, and through a fan-out of two (a list of two values in their
 * slots); a multi-output execution begun in place and finished otherwise;
 * teardown with a value still lent. */
static int in_place(long long n)
{
    make_actors(3, 1);
    prism_dag_compiled *d = compile_echo(false);
    prism_dag_future *f[2] = {execute_pattern(d, 0, in_place_size(0)),
                              execute_pattern(d, 1, in_place_size(1))};
    const void *at[3] = {NULL, NULL, NULL};
    for (long long x = 0; x < n; x++) {
        const prism_value *v;
        CHECK(prism_dag_get_in_place(f[x % 2], 60000, &v) == PRISM_OK, "get %lld in place: %s", x,
              prism_last_error());
        /* Execution x + 2's value goes to the slot v lies in: its actor
         * waits until v is given back. The pause gives it time to write if
         * it did not. */
        if (x + 2 < n)
            f[x % 2] = execute_pattern(d, x + 2, in_place_size(x + 2));
        if (x % 25 == 0)
            usleep(20000);
        CHECK(is_pattern(v, x, in_place_size(x)), "execution %lld came back changed", x);
        at[x % 3] = prism_value_data(v, NULL);
        if (x >= 2 && in_place_size(x) && in_place_size(x - 1) && in_place_size(x - 2) &&
            in_place_size(x) <= 60000 && in_place_size(x - 1) <= 60000 &&
            in_place_size(x - 2) <= 60000)
            CHECK(at[x % 3] == at[(x - 2) % 3] && at[x % 3] != at[(x - 1) % 3],
                  "execution %lld was not read in its slot", x);
    }
    /* Out of order: the earlier one is copied into its future. */
    prism_dag_future *a = execute_pattern(d, 100, 1000), *b = execute_pattern(d, 101, 2000);
    const prism_value *vb, *va;
    CHECK(prism_dag_get_in_place(b, 60000, &vb) == PRISM_OK && is_pattern(vb, 101, 2000),
          "the later one first");
    CHECK(prism_dag_get_in_place(a, 60000, &va) == PRISM_OK && is_pattern(va, 100, 1000),
          "then the earlier one");
    /* In place, then a get that copies: that value is the caller's. */
    a = execute_pattern(d, 102, 3000);
    b = execute_pattern(d, 103, 4000);
    prism_value *owned;
    CHECK(prism_dag_get_in_place(a, 60000, &va) == PRISM_OK && is_pattern(va, 102, 3000),
          "in place");
    CHECK(prism_dag_get(b, 60000, &owned) == PRISM_OK && is_pattern(owned, 103, 4000), "copied");
    prism_value_free(owned);
    /* A bad argument for add: the error value, borrowed, names the method. */
    CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");
    prism_dag *g;
    prism_dag_node *in, *out;
    CHECK(prism_dag_create(&g) == PRISM_OK && prism_dag_input(g, &in) == PRISM_OK &&
              prism_dag_bind(g, actors[0], "add", &in, 1, &out) == PRISM_OK &&
              prism_dag_compile(c, g, NULL, &d) == PRISM_OK,
          "compile add");
    prism_dag_free(g);
    a = execute_pattern(d, 104, 10);
    CHECK(prism_dag_get_in_place(a, 60000, &va) == PRISM_ERR_TASK &&
              prism_value_kind_of(va) == PRISM_VALUE_ERROR &&
              !strcmp(prism_value_error_task(va), "Counter.add"),
          "a method's error in place: %s", prism_last_error());
    a = execute(d, 5);
    CHECK(prism_dag_get_in_place(a, 60000, &va) == PRISM_OK && number(va) == 6,
          "the DAG goes on after the error");
    CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");
    /* A fan-out: a list of two, each in its own output channel's slot. */
    d = compile_echo(true);
    for (long long x = 0; x < 20; x++) {
        const prism_value *l;
        CHECK(prism_dag_get_in_place(execute_pattern(d, x, in_place_size(x)), 60000, &l) ==
                      PRISM_OK &&
                  prism_value_list_size(l) == 2 &&
                  is_pattern(prism_value_list_get(l, 0), x, in_place_size(x)) &&
                  is_pattern(prism_value_list_get(l, 1), x, in_place_size(x)),
              "fan-out execution %lld", x);
    }
    CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");
    /* Input x -> (echo x, sleep x ms): one item comes at once, the other
     * later. A get in place that times out holds the first; a get that
     * copies finishes it. A get in place of a later future that reads an
     * earlier one first (a copy), then times out in its own, holds only its
     * own: getting the earlier one in between lets nothing else go. */
    prism_dag *fan;
    prism_dag_node *x, *two[2], *both;
    CHECK(prism_dag_create(&fan) == PRISM_OK && prism_dag_input(fan, &x) == PRISM_OK &&
              prism_dag_bind(fan, actors[1], "echo", &x, 1, &two[0]) == PRISM_OK &&
              prism_dag_bind(fan, actors[2], "sleep", &x, 1, &two[1]) == PRISM_OK &&
              prism_dag_multi_output(fan, two, 2, &both) == PRISM_OK,
          "echo and sleep");
    prism_dag_options o = PRISM_DAG_OPTIONS_INIT;
    o.max_inflight = 2;
    CHECK(prism_dag_compile(c, fan, &o, &d) == PRISM_OK, "compile echo and sleep");
    prism_dag_free(fan);
    const prism_value *l;
    a = execute(d, 300);
    CHECK(prism_dag_get_in_place(a, 50, &l) == PRISM_ERR_TIMEOUT, "the sleep is not done");
    CHECK(prism_dag_get(a, 60000, &owned) == PRISM_OK && prism_value_list_size(owned) == 2 &&
              number(prism_value_list_get(owned, 0)) == 300,
          "begun in place, finished copied");
    prism_value_free(owned);
    a = execute(d, 100);
    b = execute(d, 2000);
    CHECK(prism_dag_get_in_place(b, 500, &l) == PRISM_ERR_TIMEOUT, "the long sleep is not done");
    CHECK(prism_dag_get_in_place(a, 60000, &l) == PRISM_OK &&
              number(prism_value_list_get(l, 0)) == 100,
          "the earlier one, read before");
    CHECK(prism_dag_get_in_place(b, 60000, &l) == PRISM_OK &&
              number(prism_value_list_get(l, 0)) == 2000,
          "the later one, held since: %s", prism_last_error());
    for (long long y = 0; y < 4; y++)
        CHECK(prism_dag_get_in_place(execute(d, y), 60000, &l) == PRISM_OK &&
                  number(prism_value_list_get(l, 0)) == y,
              "after: %lld: %s", y, prism_last_error());
    const prism_value *none = (const prism_value *)1;
    CHECK(prism_dag_get_in_place(NULL, 0, &none) == PRISM_ERR_INVALID && !none,
          "no future: invalid, and nothing handed out");
    CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown with a value lent");
    printf("in-place ok: %lld executions\n", n);
    return 0;
}

/* gpu PKG N: GpuStage actors of package PKG (tests/integration/gpu_fns.c):
 * input -> A.to_device -> B.rotate -> (C.rotate, D.rotate), N executions
 * of u8 tensors up to 1 MiB, 4 in flight, with device slots of 1 MiB (each
 * actor leases a quarter of a GPU, so one device is enough): the
 * edges between the actors carry device tensors over CUDA IPC (B's to two
 * readers), the outputs come to the driver as host copies, each rotated by
 * two. Then the same graph without device slots: B's rotate gets a host
 * copy and fails, naming itself. Exits 77 when the actors find no CUDA
 * device. */
static int gpu(const char *pkg, long long n)
{
    prism_actor_options ao = PRISM_ACTOR_OPTIONS_INIT;
    ao.num_cpus = 0.25;
    ao.num_gpus = 0.25; /* four share one device */
    for (int i = 0; i < 4; i++)
        CHECK(prism_actor_create(c, pkg, "GpuStage", NULL, 0, &ao, &actors[i]) == PRISM_OK,
              "create GpuStage %d", i);
    /* An ordinary call may not return device memory, and says why. */
    int64_t one = 1;
    prism_value *t = prism_value_tensor(PRISM_U8, 1, &one, NULL), *got = NULL;
    prism_ref *r = NULL;
    CHECK(prism_actor_call(c, actors[0], "to_device", &t, 1, 1, &r) == PRISM_OK, "call");
    prism_value_free(t);
    prism_status s = prism_get(c, r, 60000, &got);
    prism_ref_release(r);
    const char *msg = prism_value_error_message(got);
    if (s != PRISM_OK && msg && strstr(msg, "no CUDA device")) {
        printf("no CUDA device: %s\n", msg);
        prism_value_free(got);
        return 77;
    }
    CHECK(s == PRISM_ERR_TASK && msg && strstr(msg, "device memory"),
          "an ordinary call returning device memory: status %d, %s", s, msg ? msg : "no error");
    prism_value_free(got);
    for (int pass = 0; pass < 2; pass++) {
        prism_dag *g;
        prism_dag_node *in, *a, *b, *parts[2], *all;
        CHECK(prism_dag_create(&g) == PRISM_OK && prism_dag_input(g, &in) == PRISM_OK, "graph");
        CHECK(prism_dag_bind(g, actors[0], "to_device", &in, 1, &a) == PRISM_OK &&
                  prism_dag_bind(g, actors[1], "rotate", &a, 1, &b) == PRISM_OK &&
                  prism_dag_bind(g, actors[2], "rotate", &b, 1, &parts[0]) == PRISM_OK &&
                  prism_dag_bind(g, actors[3], "rotate", &b, 1, &parts[1]) == PRISM_OK &&
                  prism_dag_multi_output(g, parts, 2, &all) == PRISM_OK,
              "bind");
        prism_dag_options o = PRISM_DAG_OPTIONS_INIT;
        o.max_inflight = 4;
        o.max_device_buf_size = pass == 0 ? 1u << 20 : 0;
        prism_dag_compiled *d;
        CHECK(prism_dag_compile(c, g, &o, &d) == PRISM_OK, "compile");
        prism_dag_free(g);
        prism_dag_future *f[4];
        long long runs = pass == 0 ? n : 1;
        for (long long x = 0; x < runs + 4; x++) {
            if (x >= 4) {
                long long y = x - 4;
                int64_t len = 1 + (y * 7919) % (1 << 20);
                prism_value *out = NULL;
                s = prism_dag_get(f[y % 4], 60000, &out);
                if (pass == 1) {
                    msg = prism_value_error_message(out);
                    CHECK(s == PRISM_ERR_TASK && msg && strstr(msg, "host memory") &&
                              strstr(prism_value_error_task(out), "GpuStage.rotate"),
                          "without device slots: status %d, %s", s, msg ? msg : "no error");
                } else {
                    CHECK(s == PRISM_OK && prism_value_list_size(out) == 2, "get %lld", y);
                    for (int k = 0; k < 2; k++) {
                        const prism_value *v = prism_value_list_get(out, k);
                        size_t m = 0;
                        const unsigned char *p = prism_value_data(v, &m);
                        CHECK(prism_value_device(v) < 0 && p && (int64_t)m == len,
                              "execution %lld output %d: %zu bytes", y, k, m);
                        for (int64_t i = 0; i < len; i++)
                            CHECK(p[i] == (unsigned char)((y + ((i + 2) % len) * 7) % 251),
                                  "execution %lld output %d byte %lld", y, k, (long long)i);
                    }
                }
                prism_value_free(out);
            }
            if (x < runs) {
                int64_t len = 1 + (x * 7919) % (1 << 20);
                prism_value *v = prism_value_tensor(PRISM_U8, 1, &len, NULL);
                unsigned char *p = (unsigned char *)prism_value_data(v, NULL);
                for (int64_t i = 0; i < len; i++)
                    p[i] = (unsigned char)((x + i * 7) % 251);
                CHECK(prism_dag_execute(d, v, &f[x % 4]) == PRISM_OK, "execute %lld", x);
                prism_value_free(v);
            }
        }
        CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");
    }
    printf("gpu ok: %lld executions through device edges, checked\n", n);
    return 0;
}

/* Waits for a line on stdin: the test looked at the listing meanwhile. */
static void pause_for_test(const char *said)
{
    char line[16];
    printf("%s\n", said);
    fflush(stdout);
    CHECK(fgets(line, sizeof line, stdin), "stdin closed");
}

/* listed N [ROUNDS]: a chain of 2 actors runs N executions and waits (the
 * test lists it), ROUNDS times (default 1), tears it down, and waits again
 * (the test sees it TORN_DOWN). */
static int listed(long long n, int rounds)
{
    make_actors(2, 1);
    prism_dag_compiled *d = compile_chain(2, 4);
    printf("actors %s %s\n", prism_actor_id(actors[0]), prism_actor_id(actors[1]));
    for (long long x = 0; x < n * rounds; x++) {
        check_result(execute(d, x), x, 2, 1, false);
        if ((x + 1) % n == 0)
            pause_for_test("executed");
    }
    CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");
    pause_for_test("torn down");
    return 0;
}

/* input -> actor 0 -> actors 1..k-1 (each reads actor 0's one channel); a
 * multi-output node gathers them. */
static prism_dag_compiled *compile_spread(int k, int inflight)
{
    prism_dag *g;
    prism_dag_node *n, *parts[MAX_ACTORS], *all;
    CHECK(prism_dag_create(&g) == PRISM_OK && prism_dag_input(g, &n) == PRISM_OK, "graph");
    CHECK(prism_dag_bind(g, actors[0], "add", &n, 1, &n) == PRISM_OK, "bind");
    for (int i = 1; i < k; i++)
        CHECK(prism_dag_bind(g, actors[i], "add", &n, 1, &parts[i - 1]) == PRISM_OK, "bind");
    CHECK(prism_dag_multi_output(g, parts, (size_t)k - 1, &all) == PRISM_OK, "multi_output");
    return compile_graph(g, inflight);
}

/* Execution x of compile_spread: actor i (i >= 1) gave x + 1 + (i + 1). */
static void check_spread(prism_dag_future *f, long long x, int k)
{
    prism_value *out;
    CHECK(prism_dag_get(f, 60000, &out) == PRISM_OK, "get %lld", x);
    CHECK(prism_value_list_size(out) == (size_t)k - 1, "a list of %d", k - 1);
    for (int i = 1; i < k; i++)
        CHECK(number(prism_value_list_get(out, (size_t)i - 1)) == x + 1 + (i + 1),
              "item %d of %lld", i, x);
    prism_value_free(out);
}

/* nodes NODE_A NODE_B N INFLIGHT [WHERE [spread]]: a chain of Counters, one per
 * letter of WHERE (default BABB: node B, A, B, B; the driver runs on A:
 * PRISM_NODE_ID), so that the input and the output cross nodes, and a hop
 * between two actors of B is a shared-memory ring made on B; N executions
 * with INFLIGHT in flight, every result checked (with `spread`, the graph
 * is compile_spread's instead of a chain). Pauses when the actors are
 * up, when the DAG is compiled, when the executions are done (the test looks
 * at the listing) and once it is torn down (the test looks at the sockets,
 * fds and threads). */
static int across_nodes(const char *a, const char *b, long long n, int inflight, const char *at,
                        bool spread)
{
    int k = (int)strlen(at);
    CHECK(k >= 2 && k <= 4 && strspn(at, "AB") == (size_t)k, "WHERE is 2-4 letters A or B");
    const char *where[4];
    for (int i = 0; i < k; i++)
        where[i] = at[i] == 'A' ? a : b;
    for (int i = 0; i < k; i++) {
        char start[32];
        snprintf(start, sizeof start, "%d", i + 1);
        prism_value *arg = prism_value_json(start);
        prism_actor_options o = PRISM_ACTOR_OPTIONS_INIT;
        o.num_cpus = 0.25; /* two of them fit a 1-CPU node */
        o.strategy = PRISM_STRATEGY_NODE_AFFINITY;
        o.node_id = where[i];
        CHECK(prism_actor_create(c, "builtin", "Counter", &arg, 1, &o, &actors[i]) == PRISM_OK,
              "create actor %d", i);
        prism_value_free(arg);
        long long pid;
        CHECK(call(actors[i], "pid", NULL, &pid) == PRISM_OK && pid > 0, "actor %d up", i);
        printf("pid %lld\n", pid);
    }
    pause_for_test("ready");
    prism_dag_compiled *d = spread ? compile_spread(k, inflight) : compile_chain(k, inflight);
    pause_for_test("compiled");
    prism_dag_future **fs = calloc((size_t)inflight, sizeof *fs);
    for (long long x = 0; x < n + inflight; x++) {
        if (x >= inflight && spread)
            check_spread(fs[x % inflight], x - inflight, k);
        else if (x >= inflight)
            check_result(fs[x % inflight], x - inflight, k, 1, false);
        if (x < n)
            fs[x % inflight] = execute(d, x);
    }
    free(fs);
    pause_for_test("executed");
    CHECK(prism_dag_teardown(d) == PRISM_OK, "teardown");
    long long got;
    CHECK(call(actors[1], "add", "1", &got) == PRISM_OK, "an ordinary call after teardown");
    pause_for_test("torn down");
    printf("nodes ok: %lld executions\n", n);
    return 0;
}

/* serve: an actor's worker makes a channel for another reader of its node
 * and serves it on "prism-dag-<ID>-0" to nonce SERVE_NONCE (as it does when
 * a DAG's edge stays on a node that is not the driver's), while its start
 * waits for a TCP input whose writer never comes. Prints "pid P" and
 * "serving" (the test tries strangers, then the nonce), then checks the
 * start failed and the actor takes ordinary calls. */
#define SERVE_NONCE "00112233445566778899aabbccddeeff"
static int serve_strangers(void)
{
    make_actors(1, 1);
    long long pid;
    CHECK(call(actors[0], "pid", NULL, &pid) == PRISM_OK && pid > 0, "pid");
    printf("pid %lld\n", pid);
    const char *id = "0123456789abcdef0123456789abcdee";
    prism_value *arg =
        prism_value_json("{\"dag\":\"0123456789abcdef0123456789abcdee\",\"in\":[[0,0]],"
                         "\"timeout_ms\":8000}");
    prism_value *got = NULL;
    prism_ref *r;
    CHECK(prism_actor_call(c, actors[0], "__prism_dag_listen", &arg, 1, 1, &r) == PRISM_OK &&
              prism_get(c, r, 60000, &got) == PRISM_OK,
          "listen");
    prism_value_free(arg);
    prism_value_free(got);
    prism_ref_release(r);
    char spec[2048];
    snprintf(spec, sizeof spec,
             "{\"dag\":\"%s\",\"socket\":\"prism-dag-%s\",\"nonce\":\"%s\",\"spin_us\":0,"
             "\"chans\":[],\"nodes\":[{\"method\":\"add\",\"in\":[[0,0]],\"out\":[1]}],"
             "\"make\":[[1,1]],\"serve\":{\"socket\":\"prism-dag-%s-0\",\"peers\":"
             "[[\"%s\",[1]]]},\"fetch\":[],\"tcp_in\":[[0,0,\"%s\"]],\"tcp_out\":[],"
             "\"nslots\":2,\"max_buf_size\":4096,\"timeout_ms\":8000}",
             id, id, id, id, SERVE_NONCE, "fedcba9876543210fedcba9876543210");
    arg = prism_value_json(spec);
    CHECK(prism_actor_call(c, actors[0], "__prism_dag_start", &arg, 1, 1, &r) == PRISM_OK, "start");
    prism_value_free(arg);
    printf("serving\n");
    fflush(stdout);
    prism_status s = prism_get(c, r, 60000, &got);
    CHECK(s == PRISM_ERR_TASK && strstr(prism_value_error_message(got), "with its secret"),
          "the start took no proven writer");
    prism_value_free(got);
    prism_ref_release(r);
    long long x;
    CHECK(call(actors[0], "add", "1", &x) == PRISM_OK, "an ordinary call after");
    printf("serve ok\n");
    return 0;
}

/* rogue: an actor listens for a DAG edge (__prism_dag_listen) and prints
 * "listen HOST:PORT"; after a line on stdin (the test connected there
 * without the secret) its start waits for the edge's writer, which never
 * proves the secret, and fails; the actor then takes ordinary calls. */
static int rogue(void)
{
    make_actors(1, 1);
    const char *id = "0123456789abcdef0123456789abcdef";
    prism_value *arg =
        prism_value_json("{\"dag\":\"0123456789abcdef0123456789abcdef\",\"in\":[[0,0]]}");
    prism_value *got = NULL;
    prism_ref *r;
    CHECK(prism_actor_call(c, actors[0], "__prism_dag_listen", &arg, 1, 1, &r) == PRISM_OK &&
              prism_get(c, r, 60000, &got) == PRISM_OK,
          "listen");
    prism_value_free(arg);
    prism_ref_release(r);
    printf("listen %s\n", prism_value_json_text(got));
    prism_value_free(got);
    pause_for_test("listening");
    char spec[1024];
    snprintf(spec, sizeof spec,
             "{\"dag\":\"%s\",\"socket\":\"prism-dag-%s\",\"nonce\":\"%s\",\"spin_us\":0,"
             "\"chans\":[],\"nodes\":[{\"method\":\"add\",\"in\":[[0,0]],\"out\":[1]}],"
             "\"tcp_in\":[[0,0,\"%s\"]],\"tcp_out\":[],\"timeout_ms\":3000}",
             id, id, id, "fedcba9876543210fedcba9876543210");
    arg = prism_value_json(spec);
    CHECK(prism_actor_call(c, actors[0], "__prism_dag_start", &arg, 1, 1, &r) == PRISM_OK, "start");
    prism_value_free(arg);
    prism_status s = prism_get(c, r, 60000, &got);
    CHECK(s == PRISM_ERR_TASK && strstr(prism_value_error_message(got), "with its secret"),
          "the start took no proven writer");
    printf("start refused: %s\n", prism_value_error_message(got));
    prism_value_free(got);
    prism_ref_release(r);
    long long x;
    CHECK(call(actors[0], "add", "1", &x) == PRISM_OK, "an ordinary call after");
    /* A listen whose start never comes (a driver that died in between) lets
     * the actor go after twice its timeout. */
    arg = prism_value_json("{\"dag\":\"00000000000000000000000000000001\",\"in\":[[0,0]],"
                           "\"timeout_ms\":500}");
    CHECK(prism_actor_call(c, actors[0], "__prism_dag_listen", &arg, 1, 1, &r) == PRISM_OK &&
              prism_get(c, r, 60000, &got) == PRISM_OK,
          "a listen left alone");
    prism_value_free(arg);
    prism_value_free(got);
    prism_ref_release(r);
    CHECK(call(actors[0], "add", "1", &x) != PRISM_OK && strstr(prism_last_error(), "compiled DAG"),
          "a call while listened for");
    usleep(1200 * 1000);
    CHECK(call(actors[0], "add", "1", &x) == PRISM_OK, "a call once the listen expired");
    printf("rogue ok\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(
            stderr,
            "usage: dag_probe chain|fanout K N INFLIGHT | errors | died [pause] | teardown | returns | orphan[-after] | listed N [ROUNDS] | rendezvous MS | large N SIZE | fill N | written N | in-place N | nodes A B N INFLIGHT [WHERE [spread]] | serve | rogue | gpu PKG N\n");
        return 2;
    }
    CHECK(prism_connect(NULL, &c) == PRISM_OK, "connect");
    int rc = 2;
    if ((!strcmp(argv[1], "chain") || !strcmp(argv[1], "fanout")) && argc == 5)
        rc = run_many(argv[1][0] == 'f', atoi(argv[2]), atoll(argv[3]), atoi(argv[4]));
    else if (!strcmp(argv[1], "errors"))
        rc = errors();
    else if (!strcmp(argv[1], "died"))
        rc = died(argc == 3 && !strcmp(argv[2], "pause"));
    else if (!strcmp(argv[1], "teardown"))
        rc = teardown();
    else if (!strcmp(argv[1], "returns"))
        rc = returns();
    else if (!strcmp(argv[1], "listed") && (argc == 3 || argc == 4))
        rc = listed(atoll(argv[2]), argc == 4 ? atoi(argv[3]) : 1);
    else if (!strcmp(argv[1], "in-place") && argc == 3)
        rc = in_place(atoll(argv[2]));
    else if (!strcmp(argv[1], "keys") && argc == 3)
        rc = keys(atoll(argv[2]));
    else if (!strcmp(argv[1], "items") && argc == 3)
        rc = items(atoll(argv[2]));
    else if (!strcmp(argv[1], "constants") && argc == 3)
        rc = constants(atoll(argv[2]));
    else if (!strcmp(argv[1], "written") && argc == 3)
        rc = written(atoll(argv[2]));
    else if (!strcmp(argv[1], "fill") && argc == 3)
        rc = fill(atoll(argv[2]));
    else if (!strcmp(argv[1], "large") && argc == 4)
        rc = large(atoll(argv[2]), (size_t)atoll(argv[3]));
    else if (!strcmp(argv[1], "rendezvous") && argc == 3)
        rc = rendezvous(atoll(argv[2]));
    else if (!strcmp(argv[1], "nodes") && argc >= 6 && argc <= 8)
        rc = across_nodes(argv[2], argv[3], atoll(argv[4]), atoi(argv[5]),
                          argc >= 7 ? argv[6] : "BABB", argc == 8 && !strcmp(argv[7], "spread"));
    else if (!strcmp(argv[1], "serve"))
        rc = serve_strangers();
    else if (!strcmp(argv[1], "rogue"))
        rc = rogue();
    else if (!strcmp(argv[1], "gpu") && argc == 4)
        rc = gpu(argv[2], atoll(argv[3]));
    else if (!strcmp(argv[1], "orphan") || !strcmp(argv[1], "orphan-after"))
        rc = orphan(argv[1][6] == '-');
    for (int i = 0; i < MAX_ACTORS; i++)
        prism_actor_release(actors[i]);
    prism_disconnect(c);
    return rc;
}
