/* A driver for the actor integration tests: each subcommand runs one
 * scenario against the cluster in PRISM_ADDRESS/PRISM_TOKEN with the
 * builtin Counter, prints what it saw, and exits 0 only when it was right. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <prism/prism.h>

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "probe: " __VA_ARGS__);                                                \
            fprintf(stderr, " (%s)\n", prism_last_error());                                        \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* One call with at most one JSON argument; its value as a number (or NAN-ish -1e300). */
static prism_status call(prism_client *c, prism_actor *a, const char *method, const char *arg,
                         double *out)
{
    prism_value *v = arg ? prism_value_json(arg) : NULL;
    prism_ref *r = NULL;
    prism_status s = prism_actor_call(c, a, method, v ? &v : NULL, v ? 1 : 0, 1, &r);
    prism_value_free(v);
    prism_value *got = NULL;
    if (s == PRISM_OK)
        s = prism_get(c, r, 60000, &got);
    *out = got && prism_value_json_text(got) ? atof(prism_value_json_text(got)) : -1e300;
    prism_value_free(got);
    prism_ref_release(r);
    return s;
}

static void wait_line(void)
{
    char line[64];
    if (!fgets(line, sizeof line, stdin)) {
    }
}

/* counter: the seed's Counter: inc twice gives 1 then 2; errors are clear. */
static int counter(prism_client *c)
{
    prism_actor *a = NULL;
    CHECK(prism_actor_create(c, "builtin", "Counter", NULL, 0, NULL, &a) == PRISM_OK, "create");
    prism_ref *r[2];
    CHECK(prism_actor_call(c, a, "inc", NULL, 0, 1, &r[0]) == PRISM_OK &&
              prism_actor_call(c, a, "inc", NULL, 0, 1, &r[1]) == PRISM_OK,
          "call");
    for (int i = 0; i < 2; i++) {
        prism_value *v = NULL;
        prism_status s = prism_get(c, r[i], 60000, &v);
        CHECK(s == PRISM_OK && atof(prism_value_json_text(v)) == i + 1, "inc %d gave %s", i + 1,
              prism_status_text(s));
        prism_value_free(v);
        prism_ref_release(r[i]);
    }
    printf("counter ok: [1, 2]\n");
    double x;
    prism_status s = call(c, a, "nosuch", NULL, &x);
    CHECK(s == PRISM_ERR_UNKNOWN_FUNCTION && strstr(prism_last_error(), "no method 'nosuch'"),
          "an unknown method gave %s", prism_status_text(s));
    printf("unknown method: %s\n", prism_last_error());
    s = call(c, a, "inc", "\"x\"", &x);
    CHECK(s == PRISM_ERR_TASK && strstr(prism_last_error(), "Counter.inc"),
          "a bad argument gave %s", prism_status_text(s));
    printf("bad argument: %s\n", prism_last_error());
    CHECK(call(c, a, "get", NULL, &x) == PRISM_OK && x == 2, "get after errors: %g", x);
    prism_actor *bad = NULL;
    s = prism_actor_create(c, "builtin", "NoSuchClass", NULL, 0, NULL, &bad);
    CHECK(s == PRISM_OK, "create of an unknown class is accepted (it fails in the background)");
    s = call(c, bad, "inc", NULL, &x);
    CHECK(s == PRISM_ERR_ACTOR_DIED && strstr(prism_last_error(), "NoSuchClass"),
          "a call to an actor whose constructor failed gave %s", prism_status_text(s));
    printf("constructor failed: %s\n", prism_last_error());
    prism_actor_release(bad);
    CHECK(prism_actor_kill(c, a, true) == PRISM_OK, "kill");
    prism_actor_release(a);
    printf("errors ok\n");
    return 0;
}

/* One fill(n) call: the bytes it gave, checked against (count + i) mod 256. */
static prism_status fill_call(prism_client *c, prism_actor *a, long long n, long long count)
{
    char arg[32];
    snprintf(arg, sizeof arg, "%lld", n);
    prism_value *v = prism_value_json(arg);
    prism_ref *r = NULL;
    prism_status s = prism_actor_call(c, a, "fill", &v, 1, 1, &r);
    prism_value_free(v);
    prism_value *got = NULL;
    if (s == PRISM_OK)
        s = prism_get(c, r, 60000, &got);
    prism_ref_release(r);
    size_t len = 0;
    const uint8_t *b = got ? prism_value_data(got, &len) : NULL;
    if (s == PRISM_OK && (prism_value_kind_of(got) != PRISM_VALUE_BYTES || len != (size_t)n))
        s = PRISM_ERR_INTERNAL;
    for (size_t i = 0; s == PRISM_OK && i < len; i++)
        if (b[i] != (uint8_t)((unsigned long long)count + i))
            s = PRISM_ERR_INTERNAL;
    prism_value_free(got);
    return s;
}

/* fill: Counter(7).fill(n) writes its bytes where its return goes
 * (prism_task_return_bytes): in the frame (small) or the node's store
 * (large), every byte as made; fill(-n) fails after asking, and the next
 * call is whole again; fill(n, "swap") returns another value instead, which
 * is what comes. */
static int fill(prism_client *c)
{
    prism_value *seven = prism_value_json("7");
    prism_actor *a = NULL;
    CHECK(prism_actor_create(c, "builtin", "Counter", &seven, 1, NULL, &a) == PRISM_OK, "create");
    prism_value_free(seven);
    /* 100 KiB: the most a frame carries inline */
    const long long sizes[] = {0, 100, 100 << 10, (100 << 10) + 1, 4 << 20, 4096, 0};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        CHECK(fill_call(c, a, sizes[i], 7) == PRISM_OK, "fill(%lld)", sizes[i]);
    for (long long n = -100; n >= -(4 << 20); n *= 2000) {
        prism_status s = fill_call(c, a, n, 7);
        CHECK(s == PRISM_ERR_TASK && strstr(prism_last_error(), "Counter.fill") &&
                  strstr(prism_last_error(), "failed after asking"),
              "fill(%lld) gave %s", n, prism_status_text(s));
        CHECK(fill_call(c, a, -n, 7) == PRISM_OK, "fill(%lld) after a failed one", -n);
    }
    /* another value returned in place of the bytes asked for: that one */
    for (long long n = 100; n <= 200000; n *= 2000) {
        char text[32];
        snprintf(text, sizeof text, "%lld", n);
        prism_value *args[2] = {prism_value_json(text), prism_value_json("\"swap\"")}, *got = NULL;
        prism_ref *r = NULL;
        CHECK(prism_actor_call(c, a, "fill", args, 2, 1, &r) == PRISM_OK &&
                  prism_get(c, r, 60000, &got) == PRISM_OK &&
                  !strcmp(prism_value_json_text(got) ? prism_value_json_text(got) : "",
                          "\"swapped\""),
              "fill(%lld, swap)", n);
        prism_value_free(args[0]);
        prism_value_free(args[1]);
        prism_value_free(got);
        prism_ref_release(r);
    }
    CHECK(prism_actor_kill(c, a, true) == PRISM_OK, "kill");
    prism_actor_release(a);
    printf("fill ok\n");
    return 0;
}

/* many N: N Counters (no CPU held) from one client, called in turns: each
 * call reaches its own actor (the client finds each actor's record by ID,
 * an index that grows as actors come). */
static int many(prism_client *c, int n)
{
    CHECK(n > 0 && n <= 64, "many: 1 to 64 actors");
    prism_actor *a[64] = {NULL};
    prism_actor_options o = PRISM_ACTOR_OPTIONS_INIT;
    o.num_cpus = 0;
    for (int i = 0; i < n; i++)
        CHECK(prism_actor_create(c, "builtin", "Counter", NULL, 0, &o, &a[i]) == PRISM_OK,
              "create %d: %s", i, prism_last_error());
    for (int round = 1; round <= 2; round++)
        for (int i = 0; i < n; i++) {
            double x;
            CHECK(call(c, a[i], "inc", NULL, &x) == PRISM_OK && x == round,
                  "actor %d, call %d gave %g", i, round, x);
        }
    for (int i = 0; i < n; i++) {
        CHECK(prism_actor_kill(c, a[i], true) == PRISM_OK, "kill %d", i);
        prism_actor_release(a[i]);
    }
    printf("many ok: %d\n", n);
    return 0;
}

/* create NAME [detached]: a named Counter; prints its ID, then waits for a
 * line on stdin (a detached one need not: the process exits at once). */
static int create(prism_client *c, const char *name, bool detached)
{
    prism_actor_options o = PRISM_ACTOR_OPTIONS_INIT;
    o.name = name;
    o.detached = detached;
    prism_actor *a = NULL;
    CHECK(prism_actor_create(c, "builtin", "Counter", NULL, 0, &o, &a) == PRISM_OK, "create");
    double x;
    CHECK(call(c, a, "get", NULL, &x) == PRISM_OK && x == 0, "first call");
    printf("actor %s\n", prism_actor_id(a));
    fflush(stdout);
    if (!detached)
        wait_line();
    prism_actor_release(a);
    return 0;
}

/* calls NAME N: N calls of inc to the named actor, all in flight at once;
 * the counts this caller sees must rise in the order it made the calls. */
static int calls(prism_client *c, const char *name, int n)
{
    prism_actor *a = NULL;
    CHECK(prism_actor_get(c, name, NULL, &a) == PRISM_OK, "get %s", name);
    prism_ref **refs = calloc((size_t)n, sizeof *refs);
    for (int i = 0; i < n; i++)
        CHECK(prism_actor_call(c, a, "inc", NULL, 0, 1, &refs[i]) == PRISM_OK, "call %d", i);
    double last = 0;
    for (int i = 0; i < n; i++) {
        prism_value *v = NULL;
        prism_status s = prism_get(c, refs[i], 120000, &v);
        double x = v && prism_value_json_text(v) ? atof(prism_value_json_text(v)) : -1;
        CHECK(s == PRISM_OK && x > last, "call %d gave %g after %g: %s", i, x, last,
              prism_status_text(s));
        last = x;
        prism_value_free(v);
        prism_ref_release(refs[i]);
    }
    free(refs);
    printf("calls ok: %d in order, last %g\n", n, last);
    prism_actor_release(a);
    return 0;
}

/* get NAME: the named actor's count. */
static int get(prism_client *c, const char *name)
{
    prism_actor *a = NULL;
    CHECK(prism_actor_get(c, name, NULL, &a) == PRISM_OK, "get %s", name);
    double x;
    CHECK(call(c, a, "get", NULL, &x) == PRISM_OK, "get");
    printf("count %.0f\n", x);
    prism_actor_release(a);
    return 0;
}

static long pid_of(prism_client *c, prism_actor *a)
{
    double x;
    return call(c, a, "pid", NULL, &x) == PRISM_OK ? (long)x : -1;
}

static void kill_and_wait(long pid)
{
    if (pid <= 1) /* kill(-1) would signal every process the user may */
        return;
    kill((pid_t)pid, SIGKILL);
    for (int i = 0; i < 200 && kill((pid_t)pid, 0) == 0; i++)
        usleep(25000);
}

/* restart: max_restarts 1. kill -9 its worker: it comes back with fresh
 * state; kill it again: DEAD with the cause, and calls fail at once. */
static int restart(prism_client *c)
{
    prism_actor_options o = PRISM_ACTOR_OPTIONS_INIT;
    o.max_restarts = 1;
    prism_actor *a = NULL;
    CHECK(prism_actor_create(c, "builtin", "Counter", NULL, 0, &o, &a) == PRISM_OK, "create");
    double x;
    for (int i = 1; i <= 3; i++)
        CHECK(call(c, a, "inc", NULL, &x) == PRISM_OK && x == i, "inc %d", i);
    long pid = pid_of(c, a);
    CHECK(pid > 0, "pid");
    printf("actor %s pid %ld\n", prism_actor_id(a), pid);
    fflush(stdout);
    kill_and_wait(pid);
    /* Calls made now wait for the restart; the state is fresh. */
    CHECK(call(c, a, "inc", NULL, &x) == PRISM_OK && x == 1, "inc after the restart gave %g", x);
    long pid2 = pid_of(c, a);
    CHECK(pid2 > 0 && pid2 != pid, "a new worker (%ld, was %ld)", pid2, pid);
    printf("restarted ok: fresh state in worker %ld\n", pid2);
    fflush(stdout);
    wait_line(); /* the test checks restarts = 1 */
    kill_and_wait(pid2);
    prism_status s = call(c, a, "inc", NULL, &x);
    CHECK(s == PRISM_ERR_ACTOR_DIED, "a call after max_restarts gave %s", prism_status_text(s));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    s = call(c, a, "inc", NULL, &x);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    CHECK(s == PRISM_ERR_ACTOR_DIED && ms < 1000, "the next call gave %s after %.0f ms",
          prism_status_text(s), ms);
    printf("dead ok: %s\n", prism_last_error());
    prism_actor_release(a);
    return 0;
}

/* ctorarg: Counter(start) with `start` put in the object store (a JSON 7
 * padded past the inline size). The driver drops its reference; the test
 * kills the worker; the actor restarts with the same 7, because the GCS
 * borrowed the argument. Then it is killed for good: the GCS lets go. */
static int ctorarg(prism_client *c)
{
    enum { PAD = 1 << 20 };
    char *text = malloc(PAD + 2);
    CHECK(text != NULL, "malloc");
    text[0] = '7';
    memset(text + 1, ' ', PAD);
    text[PAD + 1] = 0;
    prism_value *seven = prism_value_json(text);
    free(text);
    prism_ref *x = NULL;
    CHECK(prism_put(c, seven, &x) == PRISM_OK, "put");
    prism_value_free(seven);
    prism_actor_options o = PRISM_ACTOR_OPTIONS_INIT;
    o.max_restarts = 1;
    o.max_task_retries = 1; /* a call sent as the worker dies runs after the restart */
    prism_value *arg = prism_value_ref(x);
    prism_actor *a = NULL;
    CHECK(prism_actor_create(c, "builtin", "Counter", &arg, 1, &o, &a) == PRISM_OK, "create");
    prism_value_free(arg);
    prism_ref_release(x); /* only the GCS holds the argument now */
    double got;
    CHECK(call(c, a, "get", NULL, &got) == PRISM_OK && got == 7, "get gave %g, not 7", got);
    long pid = pid_of(c, a);
    CHECK(pid > 0, "pid");
    printf("actor %s pid %ld\n", prism_actor_id(a), pid);
    fflush(stdout);
    wait_line(); /* the test sees the argument held by the GCS alone and kills the worker */
    prism_status s = call(c, a, "get", NULL, &got);
    CHECK(s == PRISM_OK && got == 7, "after the restart get gave %s, %g", prism_status_text(s),
          got);
    CHECK(pid_of(c, a) != pid, "the same worker after the restart");
    printf("restarted with its argument ok\n");
    fflush(stdout);
    CHECK(prism_actor_kill(c, a, true) == PRISM_OK, "kill");
    prism_actor_release(a);
    printf("killed\n");
    fflush(stdout);
    wait_line(); /* the test sees the store empty */
    return 0;
}

/* ctorlist SHA: Holder([ref]) with a 1 MiB object: the reference inside a
 * list argument is borrowed by the GCS too. The driver drops its own, the
 * actor drops what it kept (drop), the test kills the worker: the restarted
 * actor's constructor keeps the same bytes again. */
static int ctorlist(prism_client *c, const char *sha)
{
    enum { N = 1 << 20 };
    unsigned char *data = malloc(N);
    CHECK(data != NULL, "malloc");
    double want = 0;
    for (int i = 0; i < N; i++)
        want += (data[i] = (unsigned char)(i % 5));
    prism_value *bytes = prism_value_bytes(data, N);
    free(data);
    prism_ref *x = NULL;
    CHECK(prism_put(c, bytes, &x) == PRISM_OK, "put");
    prism_value_free(bytes);
    prism_value *list = prism_value_list();
    prism_value_list_append(list, prism_value_ref(x));
    prism_actor_options o = PRISM_ACTOR_OPTIONS_INIT;
    o.max_restarts = 1;
    o.max_task_retries = 1; /* a call sent as the worker dies runs after the restart */
    prism_actor *a = NULL;
    CHECK(prism_actor_create(c, sha, "Holder", &list, 1, &o, &a) == PRISM_OK, "create");
    prism_value_free(list);
    prism_ref_release(x);
    double got;
    CHECK(call(c, a, "sum", NULL, &got) == PRISM_OK && got == want, "sum %g, not %g", got, want);
    CHECK(call(c, a, "drop", NULL, &got) == PRISM_OK, "drop");
    printf("actor %s\n", prism_actor_id(a));
    fflush(stdout);
    wait_line(); /* the test sees the argument held by the GCS alone and kills the worker */
    prism_status s = call(c, a, "sum", NULL, &got);
    CHECK(s == PRISM_OK && got == want, "after the restart sum gave %s, %g", prism_status_text(s),
          got);
    printf("restarted with its argument ok\n");
    fflush(stdout);
    CHECK(prism_actor_kill(c, a, true) == PRISM_OK, "kill");
    prism_actor_release(a);
    printf("killed\n");
    fflush(stdout);
    wait_line(); /* the test sees the store empty */
    return 0;
}

/* chain: 200 calls made at once behind a sleep, each Counter.first([the
 * one before]): a call waits in its get for the one just before it, whose
 * DONE the worker must not hold back (it sends what it holds when a call
 * blocks). */
static int chain(prism_client *c)
{
    enum { N = 200 };
    prism_actor *a = NULL;
    CHECK(prism_actor_create(c, "builtin", "Counter", NULL, 0, NULL, &a) == PRISM_OK, "create");
    double x;
    CHECK(call(c, a, "inc", NULL, &x) == PRISM_OK, "inc");
    /* The chain queues up in the worker behind a sleep: then the first call
     * is short and its DONE would be held while the second one runs. */
    prism_value *ms = prism_value_json("300");
    prism_ref *slept = NULL;
    CHECK(prism_actor_call(c, a, "sleep", &ms, 1, 1, &slept) == PRISM_OK, "sleep");
    prism_value_free(ms);
    prism_ref_release(slept);
    prism_value *one = prism_value_json("1");
    prism_ref *prev = NULL;
    CHECK(prism_actor_call(c, a, "first", &one, 1, 1, &prev) == PRISM_OK, "first");
    prism_value_free(one);
    for (int i = 0; i < N; i++) {
        prism_value *list = prism_value_list();
        prism_value_list_append(list, prism_value_ref(prev));
        prism_ref *next = NULL;
        prism_status s = prism_actor_call(c, a, "first", &list, 1, 1, &next);
        prism_value_free(list);
        prism_ref_release(prev);
        CHECK(s == PRISM_OK, "first %d", i);
        prev = next;
    }
    prism_value *v = NULL;
    prism_status s = prism_get(c, prev, 20000, &v);
    CHECK(s == PRISM_OK && prism_value_json_text(v) && !strcmp(prism_value_json_text(v), "1"),
          "the last of the chain gave %s", prism_status_text(s));
    prism_value_free(v);
    prism_ref_release(prev);
    printf("chain ok\n");
    prism_actor_kill(c, a, true);
    prism_actor_release(a);
    return 0;
}

/* stuck: a call that sleeps 8 s, then 400 more behind it; the actor's
 * window (256 calls on the connection) keeps about 145 queued here, which
 * this caller reports to the GCS. Then all are got. */
static int stuck(prism_client *c)
{
    enum { N = 400 };
    prism_actor *a = NULL;
    CHECK(prism_actor_create(c, "builtin", "Counter", NULL, 0, NULL, &a) == PRISM_OK, "create");
    double x;
    CHECK(call(c, a, "inc", NULL, &x) == PRISM_OK && x == 1, "first inc");
    prism_value *ms = prism_value_json("8000");
    prism_ref *slow = NULL, *refs[N];
    CHECK(prism_actor_call(c, a, "sleep", &ms, 1, 1, &slow) == PRISM_OK, "sleep");
    prism_value_free(ms);
    for (int i = 0; i < N; i++)
        CHECK(prism_actor_call(c, a, "inc", NULL, 0, 1, &refs[i]) == PRISM_OK, "inc %d", i);
    printf("actor %s stuck with %d calls\n", prism_actor_id(a), N + 1);
    fflush(stdout);
    wait_line(); /* the test sees pending_calls */
    prism_value *v = NULL;
    CHECK(prism_get(c, slow, 60000, &v) == PRISM_OK, "the sleep");
    prism_value_free(v);
    prism_ref_release(slow);
    for (int i = 0; i < N; i++) {
        v = NULL;
        CHECK(prism_get(c, refs[i], 60000, &v) == PRISM_OK, "inc %d", i);
        prism_value_free(v);
        prism_ref_release(refs[i]);
    }
    printf("drained\n");
    fflush(stdout);
    wait_line(); /* the test sees pending_calls back to 0 */
    prism_actor_kill(c, a, true);
    prism_actor_release(a);
    return 0;
}

/* inflight RETRIES: a call running when the worker is killed fails with
 * "actor died", or with max_task_retries runs again after the restart. */
static int inflight(prism_client *c, int retries)
{
    prism_actor_options o = PRISM_ACTOR_OPTIONS_INIT;
    o.max_restarts = 1;
    o.max_task_retries = retries;
    prism_actor *a = NULL;
    CHECK(prism_actor_create(c, "builtin", "Counter", NULL, 0, &o, &a) == PRISM_OK, "create");
    long pid = pid_of(c, a);
    CHECK(pid > 0, "pid");
    prism_value *ms = prism_value_json("1500");
    prism_ref *r = NULL;
    CHECK(prism_actor_call(c, a, "sleep", &ms, 1, 1, &r) == PRISM_OK, "call");
    prism_value_free(ms);
    usleep(300000);
    kill_and_wait(pid);
    prism_value *v = NULL;
    prism_status s = prism_get(c, r, 60000, &v);
    if (retries) {
        CHECK(s == PRISM_OK, "a retried call gave %s", prism_status_text(s));
        printf("inflight ok: retried after the restart\n");
    } else {
        CHECK(s == PRISM_ERR_ACTOR_DIED, "a call in flight gave %s", prism_status_text(s));
        printf("inflight ok: %s\n", prism_last_error());
    }
    prism_value_free(v);
    prism_ref_release(r);
    prism_actor_kill(c, a, true);
    prism_actor_release(a);
    return 0;
}

/* cancel: calls to a Counter are cancelled: one still queued at the actor
 * (behind a 1.5 s sleep) never runs; the running sleep is not stopped
 * without force; with force, a 30 s sleep is cut short by restarting the
 * actor (max_restarts 1: fresh state), whose later calls work. */
static int cancel(prism_client *c)
{
    prism_actor_options o = PRISM_ACTOR_OPTIONS_INIT;
    o.max_restarts = 1;
    prism_actor *a = NULL;
    CHECK(prism_actor_create(c, "builtin", "Counter", NULL, 0, &o, &a) == PRISM_OK, "create");
    long pid = pid_of(c, a);
    CHECK(pid > 0, "pid");
    prism_value *ms = prism_value_json("1500");
    prism_ref *slow = NULL, *queued = NULL, *v1 = NULL;
    CHECK(prism_actor_call(c, a, "sleep", &ms, 1, 1, &slow) == PRISM_OK, "sleep call");
    CHECK(prism_actor_call(c, a, "inc", NULL, 0, 1, &queued) == PRISM_OK, "inc call");
    prism_value_free(ms);
    usleep(300000); /* both pushed: the sleep runs, inc waits at the actor */
    CHECK(prism_cancel(c, queued, false) == PRISM_OK, "cancel of the queued call");
    CHECK(prism_cancel(c, slow, false) == PRISM_OK, "cancel of the running call, no force");
    prism_value *v = NULL;
    CHECK(prism_get(c, queued, 10000, &v) == PRISM_ERR_CANCELLED, "the queued call gave %s",
          prism_last_error());
    prism_value_free(v);
    v = NULL;
    CHECK(prism_get(c, slow, 10000, &v) == PRISM_OK, "the running call was not let finish: %s",
          prism_last_error());
    prism_value_free(v);
    v = NULL;
    CHECK(prism_actor_call(c, a, "inc", NULL, 0, 1, &v1) == PRISM_OK &&
              prism_get(c, v1, 10000, &v) == PRISM_OK && !strcmp(prism_value_json_text(v), "1"),
          "the cancelled inc ran after all");
    prism_value_free(v);
    v = NULL;
    printf("queued call cancelled ok\n");

    ms = prism_value_json("30000");
    prism_ref *longer = NULL;
    CHECK(prism_actor_call(c, a, "sleep", &ms, 1, 1, &longer) == PRISM_OK, "long sleep call");
    prism_value_free(ms);
    usleep(300000);
    CHECK(prism_cancel(c, longer, true) == PRISM_OK, "forced cancel: %s", prism_last_error());
    CHECK(prism_get(c, longer, 20000, &v) == PRISM_ERR_CANCELLED, "the forced cancel gave %s",
          prism_last_error());
    prism_value_free(v);
    v = NULL;
    prism_ref *v2 = NULL;
    CHECK(prism_actor_call(c, a, "inc", NULL, 0, 1, &v2) == PRISM_OK &&
              prism_get(c, v2, 30000, &v) == PRISM_OK && !strcmp(prism_value_json_text(v), "1"),
          "the restarted actor does not answer afresh: %s", prism_last_error());
    CHECK(pid_of(c, a) != pid, "the actor's worker was not replaced");
    printf("running call cancelled with force ok\n");
    prism_value_free(v);
    prism_ref_release(slow);
    prism_ref_release(queued);
    prism_ref_release(v1);
    prism_ref_release(longer);
    prism_ref_release(v2);
    prism_actor_kill(c, a, true);
    prism_actor_release(a);
    return 0;
}

/* onnode NODE: a Counter with max_restarts placed on NODE (soft); after a
 * line on stdin (NODE died meanwhile) it answers again, from another node. */
static int onnode(prism_client *c, const char *node)
{
    prism_actor_options o = PRISM_ACTOR_OPTIONS_INIT;
    o.max_restarts = -1;
    o.strategy = PRISM_STRATEGY_NODE_AFFINITY;
    o.node_id = node;
    o.soft = true;
    prism_actor *a = NULL;
    CHECK(prism_actor_create(c, "builtin", "Counter", NULL, 0, &o, &a) == PRISM_OK, "create");
    double x;
    CHECK(call(c, a, "inc", NULL, &x) == PRISM_OK && x == 1, "first inc");
    printf("actor %s\n", prism_actor_id(a));
    fflush(stdout);
    wait_line();
    CHECK(call(c, a, "inc", NULL, &x) == PRISM_OK && x == 1, "inc after its node died gave %g", x);
    printf("moved ok\n");
    prism_actor_kill(c, a, true);
    prism_actor_release(a);
    return 0;
}

/* concurrent: with max_concurrency 8, eight calls of sleep(1000) overlap (one
 * at a time they would take 8 s); the count stays exact under threads. */
static int concurrent(prism_client *c)
{
    prism_actor_options o = PRISM_ACTOR_OPTIONS_INIT;
    o.max_concurrency = 8;
    prism_actor *a = NULL;
    CHECK(prism_actor_create(c, "builtin", "Counter", NULL, 0, &o, &a) == PRISM_OK, "create");
    double x;
    CHECK(call(c, a, "get", NULL, &x) == PRISM_OK && x == 0, "first call");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    prism_ref *r[8];
    prism_value *ms = prism_value_json("1000");
    for (int i = 0; i < 8; i++)
        CHECK(prism_actor_call(c, a, "sleep", &ms, 1, 1, &r[i]) == PRISM_OK, "call");
    prism_value_free(ms);
    for (int i = 0; i < 8; i++) {
        prism_value *v = NULL;
        CHECK(prism_get(c, r[i], 60000, &v) == PRISM_OK, "sleep %d", i);
        prism_value_free(v);
        prism_ref_release(r[i]);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(s < 6, "eight 1 s calls took %.1f s: they did not overlap", s);
    prism_ref *inc[400];
    for (int i = 0; i < 400; i++)
        CHECK(prism_actor_call(c, a, "inc", NULL, 0, 1, &inc[i]) == PRISM_OK, "inc");
    for (int i = 0; i < 400; i++) {
        prism_value *v = NULL;
        CHECK(prism_get(c, inc[i], 60000, &v) == PRISM_OK, "inc %d", i);
        prism_value_free(v);
        prism_ref_release(inc[i]);
    }
    CHECK(call(c, a, "get", NULL, &x) == PRISM_OK && x == 400, "count %g after 400 incs", x);
    printf("concurrent ok: 8 calls in %.1f s, count exact\n", s);
    prism_actor_kill(c, a, true);
    prism_actor_release(a);
    return 0;
}

/* handle SHA: the actor's ID passed to a task (package SHA, task bump), which
 * calls the same instance. */
static int handle(prism_client *c, const char *sha)
{
    prism_actor *a = NULL;
    CHECK(prism_actor_create(c, "builtin", "Counter", NULL, 0, NULL, &a) == PRISM_OK, "create");
    double x;
    CHECK(call(c, a, "inc", NULL, &x) == PRISM_OK && x == 1, "inc");
    char id[64];
    snprintf(id, sizeof id, "\"%s\"", prism_actor_id(a));
    prism_value *arg = prism_value_json(id);
    prism_ref *r = NULL;
    CHECK(prism_submit(c, sha, "bump", &arg, 1, NULL, &r) == PRISM_OK, "submit");
    prism_value_free(arg);
    prism_value *v = NULL;
    prism_status s = prism_get(c, r, 60000, &v);
    CHECK(s == PRISM_OK && atof(prism_value_json_text(v)) == 2, "the task's call: %s",
          prism_status_text(s));
    prism_value_free(v);
    prism_ref_release(r);
    CHECK(call(c, a, "inc", NULL, &x) == PRISM_OK && x == 3, "inc after the task's: %g", x);
    printf("handle ok: a task called the same instance\n");
    prism_actor_kill(c, a, true);
    prism_actor_release(a);
    return 0;
}

/* package SHA: an actor class from an uploaded package (Accumulator). */
static int package(prism_client *c, const char *sha)
{
    prism_value *start = prism_value_json("10");
    prism_actor *a = NULL;
    CHECK(prism_actor_create(c, sha, "Accumulator", &start, 1, NULL, &a) == PRISM_OK, "create");
    prism_value_free(start);
    double x;
    CHECK(call(c, a, "add", "5", &x) == PRISM_OK && x == 15, "add 5 gave %g", x);
    CHECK(call(c, a, "add", "2.5", &x) == PRISM_OK && x == 17.5, "add 2.5 gave %g", x);
    CHECK(call(c, a, "total", NULL, &x) == PRISM_OK && x == 17.5, "total gave %g", x);
    prism_status s = call(c, a, "inc", NULL, &x);
    CHECK(s == PRISM_ERR_UNKNOWN_FUNCTION, "a method the class lacks gave %s",
          prism_status_text(s));
    printf("package actor ok: %s\n", prism_last_error());
    prism_actor_kill(c, a, true);
    prism_actor_release(a);
    return 0;
}

/* hold SHA: an actor keeps a reference past the call that brought it (its
 * worker registers as a borrower), so the object outlives the driver's own
 * handle; once the actor drops it the object is freed. */
static int hold(prism_client *c, const char *sha)
{
    enum { N = 1 << 20 };
    unsigned char *data = malloc(N);
    double want = 0;
    for (int i = 0; i < N; i++)
        want += (data[i] = (unsigned char)(i % 7));
    prism_value *bytes = prism_value_bytes(data, N);
    free(data);
    prism_ref *x = NULL;
    CHECK(prism_put(c, bytes, &x) == PRISM_OK, "put");
    prism_value_free(bytes);
    prism_actor *a = NULL;
    CHECK(prism_actor_create(c, sha, "Holder", NULL, 0, NULL, &a) == PRISM_OK, "create");
    prism_value *list = prism_value_list();
    prism_value_list_append(list, prism_value_ref(x));
    prism_ref *r = NULL;
    CHECK(prism_actor_call(c, a, "keep", &list, 1, 1, &r) == PRISM_OK, "keep");
    prism_value_free(list);
    prism_value *v = NULL;
    CHECK(prism_get(c, r, 60000, &v) == PRISM_OK, "keep's result");
    prism_value_free(v);
    prism_ref_release(r);
    prism_ref_release(x); /* only the actor holds it now */
    usleep(300000);
    double got;
    CHECK(call(c, a, "sum", NULL, &got) == PRISM_OK && got == want,
          "sum of what the actor kept: %g, not %g", got, want);
    printf("kept ok: the object outlived the driver's handle\n");
    fflush(stdout);
    wait_line(); /* the test sees the actor's worker as its borrower */
    CHECK(call(c, a, "drop", NULL, &got) == PRISM_OK, "drop");
    printf("dropped\n");
    fflush(stdout);
    wait_line(); /* the test sees the store empty */
    prism_actor_kill(c, a, true);
    prism_actor_release(a);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: actor_probe counter|create NAME [detached]|calls NAME N|get NAME|"
                        "restart|inflight RETRIES|onnode NODE|many N|fill\n");
        return 2;
    }
    prism_client *c;
    if (prism_connect(NULL, &c) != PRISM_OK) {
        fprintf(stderr, "probe: connect: %s\n", prism_last_error());
        return 1;
    }
    const char *cmd = argv[1], *arg = argc > 2 ? argv[2] : "";
    int rc = !strcmp(cmd, "counter")      ? counter(c)
             : !strcmp(cmd, "create")     ? create(c, arg, argc > 3 && !strcmp(argv[3], "detached"))
             : !strcmp(cmd, "calls")      ? calls(c, arg, argc > 3 ? atoi(argv[3]) : 100)
             : !strcmp(cmd, "get")        ? get(c, arg)
             : !strcmp(cmd, "restart")    ? restart(c)
             : !strcmp(cmd, "inflight")   ? inflight(c, atoi(arg))
             : !strcmp(cmd, "cancel")     ? cancel(c)
             : !strcmp(cmd, "onnode")     ? onnode(c, arg)
             : !strcmp(cmd, "concurrent") ? concurrent(c)
             : !strcmp(cmd, "handle")     ? handle(c, arg)
             : !strcmp(cmd, "package")    ? package(c, arg)
             : !strcmp(cmd, "hold")       ? hold(c, arg)
             : !strcmp(cmd, "ctorarg")    ? ctorarg(c)
             : !strcmp(cmd, "stuck")      ? stuck(c)
             : !strcmp(cmd, "chain")      ? chain(c)
             : !strcmp(cmd, "ctorlist")   ? ctorlist(c, arg)
             : !strcmp(cmd, "many")       ? many(c, atoi(arg))
             : !strcmp(cmd, "fill")       ? fill(c)
                                          : 2;
    prism_disconnect(c);
    return rc;
}
