/* A driver for the task integration tests: each subcommand runs one scenario
 * against the cluster in PRISM_ADDRESS/PRISM_TOKEN, prints what it saw, and
 * exits 0 only when every result was right. */
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
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

static prism_ref *submit1(prism_client *c, const char *pkg, const char *fn, prism_value **args,
                          size_t n, const prism_task_options *o)
{
    prism_ref *r = NULL;
    return prism_submit(c, pkg, fn, args, n, o, &r) == PRISM_OK ? r : NULL;
}

static double json_num(const prism_value *v) { return atof(prism_value_json_text(v) ?: "nan"); }

/* seed: zeros + zeros -> add -> a 5x5 tensor of zeros. */
static int seed(prism_client *c)
{
    prism_value *shape = prism_value_json("[5, 5]");
    prism_ref *o1 = submit1(c, "builtin", "zeros", &shape, 1, NULL);
    prism_ref *o2 = submit1(c, "builtin", "zeros", &shape, 1, NULL);
    prism_value *args[2] = {prism_value_ref(o1), prism_value_ref(o2)};
    prism_ref *o3 = submit1(c, "builtin", "add", args, 2, NULL);
    prism_value *out = NULL;
    prism_status s = prism_get(c, o3, 60000, &out);
    CHECK(s == PRISM_OK, "get failed: %s", prism_status_text(s));
    CHECK(prism_value_ndim(out) == 2 && prism_value_shape(out)[0] == 5, "wrong shape");
    size_t len;
    const double *d = prism_value_data(out, &len);
    for (size_t i = 0; i < len / 8; i++)
        CHECK(d[i] == 0, "element %zu is %g", i, d[i]);
    printf("seed ok: 5x5 zeros\n");
    prism_value_free(out);
    prism_value_free(args[0]);
    prism_value_free(args[1]);
    prism_value_free(shape);
    prism_ref_release(o1);
    prism_ref_release(o2);
    prism_ref_release(o3);
    return 0;
}

/* many N: N add tasks in flight at once, every result checked. */
static int many(prism_client *c, int n)
{
    prism_ref **refs = calloc((size_t)n, sizeof *refs);
    for (int i = 0; i < n; i++) {
        char a[32];
        snprintf(a, sizeof a, "%d", i);
        prism_value *args[2] = {prism_value_json(a), prism_value_json("1000000")};
        refs[i] = submit1(c, "builtin", "add", args, 2, NULL);
        prism_value_free(args[0]);
        prism_value_free(args[1]);
        CHECK(refs[i], "submit %d failed", i);
    }
    for (int i = 0; i < n; i++) {
        prism_value *v = NULL;
        prism_status s = prism_get(c, refs[i], 120000, &v);
        CHECK(s == PRISM_OK && json_num(v) == i + 1000000, "task %d: %s", i, prism_status_text(s));
        prism_value_free(v);
        prism_ref_release(refs[i]);
    }
    free(refs);
    printf("many ok: %d results right\n", n);
    return 0;
}

/* nested D: a task that submits a task ... D levels deep. */
static int nested(prism_client *c, int depth)
{
    char d[16];
    snprintf(d, sizeof d, "%d", depth);
    prism_value *arg = prism_value_json(d);
    prism_ref *r = submit1(c, "builtin", "nested", &arg, 1, NULL);
    prism_value *v = NULL;
    prism_status s = prism_get(c, r, 60000, &v);
    CHECK(s == PRISM_OK && json_num(v) == depth, "nested %d: %s", depth, prism_status_text(s));
    printf("nested ok: %d levels\n", depth);
    prism_value_free(v);
    prism_value_free(arg);
    prism_ref_release(r);
    return 0;
}

/* errors: an application error names the task; an unknown function is clear;
 * a failed argument fails its dependents. */
static int errors(prism_client *c)
{
    prism_value *msg = prism_value_json("\"boom\"");
    prism_ref *r = submit1(c, "builtin", "fail", &msg, 1, NULL);
    prism_value *v = NULL;
    prism_status s = prism_get(c, r, 30000, &v);
    CHECK(s == PRISM_ERR_TASK, "fail gave %s", prism_status_text(s));
    CHECK(!strcmp(prism_value_error_task(v), "builtin/fail") &&
              strstr(prism_value_error_message(v), "boom"),
          "error value: %s / %s", prism_value_error_task(v), prism_value_error_message(v));
    printf("error ok: %s: %s\n", prism_value_error_task(v), prism_value_error_message(v));
    prism_value_free(v);
    prism_value *dep = prism_value_ref(r);
    prism_value *one = prism_value_json("1");
    prism_value *args[2] = {dep, one};
    prism_ref *r2 = submit1(c, "builtin", "add", args, 2, NULL);
    s = prism_get(c, r2, 30000, &v);
    CHECK(s == PRISM_ERR_TASK && strstr(prism_value_error_message(v), "boom"),
          "dependent of a failed task gave %s", prism_status_text(s));
    printf("dependent ok: %s\n", prism_value_error_message(v));
    prism_value_free(v);
    prism_ref *r3 = submit1(c, "builtin", "no_such_function", NULL, 0, NULL);
    s = prism_get(c, r3, 30000, &v);
    CHECK(s == PRISM_ERR_UNKNOWN_FUNCTION, "unknown function gave %s", prism_status_text(s));
    printf("unknown ok: %s\n", prism_value_error_message(v));
    prism_value_free(v);
    prism_value *bad = prism_value_json("\"x\"");
    prism_ref *r4 = submit1(c, "builtin", "zeros", &bad, 1, NULL);
    s = prism_get(c, r4, 30000, &v);
    CHECK(s == PRISM_ERR_TASK, "bad arguments gave %s", prism_status_text(s));
    printf("bad argument ok: %s\n", prism_value_error_message(v));
    prism_value_free(v);
    prism_ref *r5 = NULL;
    CHECK(prism_submit(c, "", "x", NULL, 0, NULL, &r5) == PRISM_ERR_INVALID,
          "empty package accepted");
    prism_value_free(msg);
    prism_value_free(dep);
    prism_value_free(one);
    prism_value_free(bad);
    prism_ref_release(r);
    prism_ref_release(r2);
    prism_ref_release(r3);
    prism_ref_release(r4);
    return 0;
}

/* package SHA: square(7) and checksum of 1 MiB from an uploaded package. */
static int package(prism_client *c, const char *sha)
{
    prism_value *x = prism_value_json("7");
    prism_ref *r = submit1(c, sha, "square", &x, 1, NULL);
    prism_value *v = NULL;
    prism_status s = prism_get(c, r, 60000, &v);
    CHECK(s == PRISM_OK && json_num(v) == 49, "square(7): %s", prism_status_text(s));
    prism_value_free(v);
    size_t n = 1u << 20;
    unsigned char *buf = malloc(n);
    unsigned long long sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += buf[i] = (unsigned char)(i * 7);
    prism_value *bytes = prism_value_bytes(buf, n);
    prism_ref *big = NULL;
    CHECK(prism_put(c, bytes, &big) == PRISM_OK, "put 1 MiB");
    prism_value *arg = prism_value_ref(big);
    prism_ref *r2 = submit1(c, sha, "checksum", &arg, 1, NULL);
    s = prism_get(c, r2, 60000, &v);
    CHECK(s == PRISM_OK && (unsigned long long)json_num(v) == sum, "checksum: %s",
          prism_status_text(s));
    printf("package ok: square(7)=49, checksum of 1 MiB right\n");
    prism_value_free(v);
    prism_value_free(x);
    prism_value_free(bytes);
    prism_value_free(arg);
    free(buf);
    prism_ref_release(r);
    prism_ref_release(r2);
    prism_ref_release(big);
    return 0;
}

/* crash SHA: a task that kills its worker is retried, then fails clearly. */
static int crash(prism_client *c, const char *sha)
{
    prism_task_options o = PRISM_TASK_OPTIONS_INIT;
    o.max_retries = 1;
    prism_ref *r = submit1(c, sha, "crash", NULL, 0, &o);
    prism_value *v = NULL;
    prism_status s = prism_get(c, r, 60000, &v);
    CHECK(s == PRISM_ERR_WORKER_DIED, "crash gave %s", prism_status_text(s));
    printf("crash ok: %s\n", prism_value_error_message(v));
    prism_value_free(v);
    prism_ref_release(r);
    return seed(c); /* and the cluster still works */
}

/* sleep MS: one long task, to be killed from outside (its retry must succeed). */
static int sleeper(prism_client *c, const char *ms)
{
    prism_value *arg = prism_value_json(ms);
    prism_ref *r = submit1(c, "builtin", "sleep", &arg, 1, NULL);
    printf("submitted\n");
    fflush(stdout);
    prism_value *v = NULL;
    /* A get's deadline holds while it reads the worker's reply itself. */
    prism_status s = prism_get(c, r, 50, &v);
    CHECK(s == PRISM_ERR_TIMEOUT && !v, "a 50 ms get of a %s ms sleep gave %s", ms,
          prism_status_text(s));
    s = prism_get(c, r, 120000, &v);
    CHECK(s == PRISM_OK, "sleep gave %s", prism_status_text(s));
    printf("sleep ok after retry\n");
    prism_value_free(v);
    prism_value_free(arg);
    prism_ref_release(r);
    return 0;
}

/* sleeps N MS: N sleep(MS) tasks at once; prints "submitted", then "done I T"
 * as each result comes (T: wall clock ms), then "sleeps ok". */
static int sleeps(prism_client *c, int n, const char *ms)
{
    CHECK(n > 0 && n <= 1000, "sleeps takes 1-1000 tasks");
    prism_value *arg = prism_value_json(ms);
    prism_ref *r[1000];
    for (int i = 0; i < n; i++)
        CHECK((r[i] = submit1(c, "builtin", "sleep", &arg, 1, NULL)) != NULL, "submit %d", i);
    printf("submitted\n");
    fflush(stdout);
    for (int i = 0; i < n; i++) {
        prism_value *v = NULL;
        prism_status s = prism_get(c, r[i], 120000, &v);
        CHECK(s == PRISM_OK, "sleep %d gave %s", i, prism_status_text(s));
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        printf("done %d %lld\n", i, (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        fflush(stdout);
        prism_value_free(v);
        prism_ref_release(r[i]);
    }
    printf("sleeps ok\n");
    prism_value_free(arg);
    return 0;
}

/* reconstruct NODE: a stored result made on NODE (soft affinity); after "go"
 * on stdin (NODE has died meanwhile) it is read again: rebuilt from lineage.
 * A put object stored on NODE cannot be rebuilt and says so. */
static int reconstruct(prism_client *c, const char *node)
{
    prism_task_options o = PRISM_TASK_OPTIONS_INIT;
    o.strategy = PRISM_STRATEGY_NODE_AFFINITY;
    o.node_id = node;
    o.soft = true;
    prism_value *shape = prism_value_json("[200, 200]"); /* 320 KB: kept in a store */
    prism_ref *r = submit1(c, "builtin", "zeros", &shape, 1, &o);
    prism_value *v = NULL;
    prism_status s = prism_get(c, r, 60000, &v);
    CHECK(s == PRISM_OK && prism_value_shape(v)[0] == 200, "first get: %s", prism_status_text(s));
    prism_value_free(v);
    printf("first get ok\n");
    fflush(stdout);
    char line[64];
    CHECK(fgets(line, sizeof line, stdin) != NULL, "no go");
    /* A task taking the lost object waits for it to be made again. */
    prism_value *arg = prism_value_ref(r);
    prism_ref *total = submit1(c, "builtin", "sum", &arg, 1, NULL);
    prism_value_free(arg);
    s = prism_get(c, total, 60000, &v);
    CHECK(s == PRISM_OK && json_num(v) == 0, "a task taking the lost object: %s",
          prism_status_text(s));
    prism_value_free(v);
    prism_ref_release(total);
    printf("lost argument rebuilt ok\n");
    s = prism_get(c, r, 60000, &v);
    CHECK(s == PRISM_OK && prism_value_shape(v)[1] == 200, "get after the node died: %s",
          prism_status_text(s));
    size_t len;
    const double *d = prism_value_data(v, &len);
    for (size_t i = 0; i < len / 8; i++)
        CHECK(d[i] == 0, "element %zu", i);
    printf("reconstructed ok\n");
    prism_value_free(v);
    prism_value_free(shape);
    prism_ref_release(r);
    return 0;
}

/* bigarg A B: a 200 MiB tensor made on node A is the argument of a task on node B. */
static int bigarg(prism_client *c, const char *a, const char *b)
{
    prism_task_options on_a = PRISM_TASK_OPTIONS_INIT, on_b = PRISM_TASK_OPTIONS_INIT;
    on_a.strategy = on_b.strategy = PRISM_STRATEGY_NODE_AFFINITY;
    on_a.node_id = a;
    on_b.node_id = b;
    prism_value *shape = prism_value_json("[26214400]"); /* float64: 200 MiB */
    prism_ref *big = submit1(c, "builtin", "zeros", &shape, 1, &on_a);
    prism_value *arg = prism_value_ref(big);
    prism_ref *total = submit1(c, "builtin", "sum", &arg, 1, &on_b);
    prism_value *v = NULL;
    prism_status s = prism_get(c, total, 120000, &v);
    CHECK(s == PRISM_OK && json_num(v) == 0, "sum of 200 MiB on the other node: %s",
          prism_status_text(s));
    printf("bigarg ok: 200 MiB made on one node, summed on the other\n");
    prism_value_free(v);
    prism_value_free(arg);
    prism_value_free(shape);
    prism_ref_release(big);
    prism_ref_release(total);
    return 0;
}

/* remoteget NODE: a stored result made on NODE, got here: 400 KB of zeros. */
static int remoteget(prism_client *c, const char *node)
{
    prism_task_options o = PRISM_TASK_OPTIONS_INIT;
    o.strategy = PRISM_STRATEGY_NODE_AFFINITY;
    o.node_id = node;
    prism_value *shape = prism_value_json("[50000]");
    prism_ref *big = submit1(c, "builtin", "zeros", &shape, 1, &o);
    prism_value *v = NULL;
    prism_status s = prism_get(c, big, 60000, &v);
    prism_value_free(shape);
    prism_ref_release(big);
    size_t n = 0;
    const void *data = v ? prism_value_data(v, &n) : NULL;
    bool zeros = data && n == 400000;
    for (size_t i = 0; zeros && i < n; i++)
        zeros = ((const unsigned char *)data)[i] == 0;
    prism_value_free(v);
    CHECK(s == PRISM_OK && zeros, "get of a value stored on another node: %s",
          prism_status_text(s));
    printf("remoteget ok\n");
    return 0;
}

/* lostarg [put|once]: a stored value vanishes from its store behind its
 * owner's back (the test deletes it when told "stored ID", then sends a
 * line); a task taking it is pushed with the old location, and its worker
 * cannot read it. A task's result is made again from its lineage and the
 * task then runs, without using a retry of its own (it has none); a put
 * value (put), or a result whose task has no retries left (once: max_retries
 * 0), cannot be made again: the task fails with OBJECT_LOST naming the
 * object, and says why. */
static int lostarg(prism_client *c, const char *how)
{
    bool put = !strcmp(how, "put"), once = !strcmp(how, "once");
    prism_task_options made = PRISM_TASK_OPTIONS_INIT;
    made.max_retries = once ? 0 : 3;
    prism_value *shape = prism_value_json("[50000]"); /* float64: 400 KB, stored */
    int64_t dims[1] = {50000};
    prism_value *zeros = prism_value_tensor(PRISM_F64, 1, dims, NULL);
    prism_ref *big = NULL;
    if (put)
        CHECK(prism_put(c, zeros, &big) == PRISM_OK, "put");
    else
        big = submit1(c, "builtin", "zeros", &shape, 1, &made);
    bool ready = false;
    CHECK(big && prism_wait(c, &big, 1, 1, 60000, &ready) == PRISM_OK && ready, "zeros");
    printf("stored %s\n", prism_ref_id(big));
    fflush(stdout);
    char line[64];
    CHECK(fgets(line, sizeof line, stdin) != NULL, "no go-ahead on stdin");
    prism_task_options o = PRISM_TASK_OPTIONS_INIT;
    o.max_retries = 0; /* rebuilding an argument uses none of them */
    prism_value *arg = prism_value_ref(big), *v = NULL;
    prism_ref *total = submit1(c, "builtin", "sum", &arg, 1, &o);
    prism_status s = prism_get(c, total, 60000, &v);
    const char *msg = v && prism_value_error_message(v) ? prism_value_error_message(v) : "";
    if (put || once) {
        CHECK(s == PRISM_ERR_OBJECT_LOST && strstr(msg, prism_ref_id(big)) &&
                  strstr(msg, put ? "put" : "retries"),
              "a task whose argument vanished: %s: %s", prism_status_text(s), msg);
        printf("lostarg ok: %s: %s\n", prism_status_text(s), msg);
    } else {
        CHECK(s == PRISM_OK && json_num(v) == 0, "a task whose argument vanished: %s: %s",
              prism_status_text(s), msg);
        prism_value_free(v);
        v = NULL;
        CHECK(prism_get(c, big, 60000, &v) == PRISM_OK && prism_value_shape(v)[0] == 50000,
              "the argument made again");
        printf("lostarg ok: the argument was made again and the task ran\n");
    }
    prism_value_free(v);
    prism_value_free(arg);
    prism_value_free(zeros);
    prism_value_free(shape);
    prism_ref_release(big);
    prism_ref_release(total);
    return 0;
}

/* lostpushed A B: a stored result made on node A (soft affinity) is the
 * argument of a task pushed to node B's only worker behind a 4 s sleep: the
 * task is on the worker (not queued here) when "pushed" is printed; the
 * test then kills node A and sends a line. The worker's read of the
 * argument fails, the owner makes it again from its lineage, and the task
 * runs again with it: the sum is right. */
static int lostpushed(prism_client *c, const char *a, const char *b)
{
    prism_task_options on_a = PRISM_TASK_OPTIONS_INIT, on_b = PRISM_TASK_OPTIONS_INIT;
    on_a.strategy = on_b.strategy = PRISM_STRATEGY_NODE_AFFINITY;
    on_a.node_id = a;
    on_a.soft = true;
    on_b.node_id = b;
    on_b.max_retries = 0; /* rebuilding an argument uses none of them */
    prism_value *shape = prism_value_json("[200, 200]"); /* 320 KB: kept in a store */
    prism_ref *x = submit1(c, "builtin", "zeros", &shape, 1, &on_a);
    bool ready = false;
    CHECK(x && prism_wait(c, &x, 1, 1, 60000, &ready) == PRISM_OK && ready, "zeros on A");
    /* Short tasks first: a worker takes queued tasks only while the pool's
     * tasks are short (docs/tasks.md: smoothed, the first one's connection
     * included), and the sum must wait on the sleeper's worker. */
    prism_value *args[2] = {prism_value_json("1"), prism_value_json("2")}, *v = NULL;
    for (int i = 0; i < 30; i++) {
        prism_ref *warm = submit1(c, "builtin", "add", args, 2, &on_b);
        CHECK(prism_get(c, warm, 60000, &v) == PRISM_OK && json_num(v) == 3, "add on B");
        prism_value_free(v);
        prism_ref_release(warm);
    }
    prism_value *ms = prism_value_json("4000"), *arg = prism_value_ref(x);
    prism_ref *sleeper = submit1(c, "builtin", "sleep", &ms, 1, &on_b);
    prism_ref *total = submit1(c, "builtin", "sum", &arg, 1, &on_b);
    CHECK(sleeper && total, "submit on B");
    char why[256] = "";
    for (int i = 0; i < 200 && !strstr(why, "running"); i++) {
        usleep(20000);
        prism_pending_reason(c, total, why, sizeof why);
    }
    prism_value *early = NULL; /* what became of the sum, if it did not wait there */
    prism_status es = strstr(why, "running") ? PRISM_OK : prism_get(c, total, 0, &early);
    CHECK(strstr(why, "running"), "the sum was not pushed behind the sleeper (%s; the sum: %s %s)",
          why, prism_status_text(es),
          early && prism_value_error_message(early) ? prism_value_error_message(early) : "");
    prism_value *slept = NULL;
    prism_status ss = prism_get(c, sleeper, 0, &slept);
    CHECK(ss == PRISM_ERR_TIMEOUT, "the sleeper ended too soon (%s %s)", prism_status_text(ss),
          slept && prism_value_error_message(slept) ? prism_value_error_message(slept) : "");
    printf("pushed\n");
    fflush(stdout);
    char line[64];
    CHECK(fgets(line, sizeof line, stdin) != NULL, "no go-ahead on stdin");
    prism_status s = prism_get(c, total, 120000, &v);
    const char *msg = v && prism_value_error_message(v) ? prism_value_error_message(v) : "";
    CHECK(s == PRISM_OK && json_num(v) == 0, "the sum of the lost argument: %s: %s",
          prism_status_text(s), msg);
    prism_value_free(v);
    CHECK(prism_get(c, sleeper, 60000, &v) == PRISM_OK, "the sleeper");
    prism_value_free(v);
    printf("lostpushed ok: the argument was made again and the task ran\n");
    prism_value_free(args[0]);
    prism_value_free(args[1]);
    prism_value_free(ms);
    prism_value_free(arg);
    prism_value_free(shape);
    prism_ref_release(x);
    prism_ref_release(sleeper);
    prism_ref_release(total);
    return 0;
}

/* The byte sum stash(n) gives: byte i is i % 251. */
static double stash_sum(long n)
{
    double t = 0;
    for (long i = 0; i < n; i++)
        t += (double)(i % 251);
    return t;
}

/* stash(n) on a worker: the list it returns and the reference inside, which the worker owns. */
static prism_ref *stashed_on(prism_client *c, const char *sha, long n, const char *node,
                             prism_value **list, long *pid)
{
    char a[32];
    snprintf(a, sizeof a, "%ld", n);
    prism_value *arg = prism_value_json(a);
    prism_task_options on = PRISM_TASK_OPTIONS_INIT;
    on.strategy = node ? PRISM_STRATEGY_NODE_AFFINITY : PRISM_STRATEGY_DEFAULT;
    on.node_id = node;
    prism_ref *o = submit1(c, sha, "stash", &arg, 1, &on);
    prism_value_free(arg);
    *list = NULL;
    if (!o || prism_get(c, o, 60000, list) != PRISM_OK || prism_value_list_size(*list) != 2) {
        prism_ref_release(o);
        return NULL;
    }
    prism_ref_release(o); /* the list value holds its own handle */
    *pid = atol(prism_value_json_text(prism_value_list_get(*list, 1)) ?: "0");
    return prism_ref_dup(prism_value_get_ref(prism_value_list_get(*list, 0)));
}

static prism_ref *stashed(prism_client *c, const char *sha, long n, prism_value **list, long *pid)
{
    return stashed_on(c, sha, n, NULL, list, pid);
}

/* The borrowing checks of borrowx and borrowa on `x`, a reference to n
 * bytes of stash's pattern owned by `who`: this driver reads it (a
 * borrower: from its own node's store, pulled there when the object lives
 * on another node); then a task on USE_NODE reads it and a 2 MiB object of
 * this driver's through a list (a borrower of a borrower, and a borrower of
 * the driver). Releases x. */
static int read_borrowed(prism_client *c, const char *sha, prism_ref *x, long n, const char *who,
                         const char *use_node)
{
    prism_value *v = NULL;
    prism_status s = prism_get(c, x, 60000, &v);
    size_t len = 0;
    const unsigned char *p = v ? prism_value_data(v, &len) : NULL;
    CHECK(s == PRISM_OK && p && len == (size_t)n, "get of the object %s owns: %s", who,
          prism_status_text(s));
    for (size_t i = 0; i < len; i++)
        CHECK(p[i] == i % 251, "byte %zu is %u", i, p[i]);
    prism_value_free(v);
    printf("driver read the object %s owns ok\n", who);

    static unsigned char mine_bytes[2 << 20];
    for (size_t i = 0; i < sizeof mine_bytes; i++)
        mine_bytes[i] = 1;
    prism_value *b = prism_value_bytes(mine_bytes, sizeof mine_bytes);
    prism_ref *mine = NULL;
    CHECK(prism_put(c, b, &mine) == PRISM_OK, "put");
    prism_value_free(b);
    prism_value *refs = prism_value_list();
    prism_value_list_append(refs, prism_value_ref(x));
    prism_value_list_append(refs, prism_value_ref(mine));
    prism_task_options on = PRISM_TASK_OPTIONS_INIT;
    on.strategy = PRISM_STRATEGY_NODE_AFFINITY;
    on.node_id = use_node;
    prism_ref *sum = submit1(c, sha, "deref_sum", &refs, 1, &on);
    prism_value_free(refs);
    s = prism_get(c, sum, 60000, &v);
    CHECK(s == PRISM_OK && json_num(v) == stash_sum(n) + (double)sizeof mine_bytes,
          "deref_sum on %s: %s", use_node, prism_status_text(s));
    prism_value_free(v);
    prism_ref_release(sum);
    prism_ref_release(mine);
    prism_ref_release(x);
    return 0;
}

/* borrowx SHA STASH_NODE USE_NODE: a worker on STASH_NODE owns the object. */
static int borrowx(prism_client *c, const char *sha, const char *stash_node, const char *use_node)
{
    prism_value *list = NULL;
    long pid = 0, n = 3 << 20;
    prism_ref *x = stashed_on(c, sha, n, stash_node, &list, &pid);
    CHECK(x && pid > 0, "stash on %s gave no reference", stash_node);
    prism_value_free(list);
    CHECK(read_borrowed(c, sha, x, n, "a worker", use_node) == 0, "borrowing from a worker");
    printf("borrowx ok\n");
    return 0;
}

/* borrowa SHA ACTOR_NODE USE_NODE: an actor (Stasher) on ACTOR_NODE owns it. */
static int borrowa(prism_client *c, const char *sha, const char *actor_node, const char *use_node)
{
    prism_actor_options o = PRISM_ACTOR_OPTIONS_INIT;
    o.strategy = PRISM_STRATEGY_NODE_AFFINITY;
    o.node_id = actor_node;
    prism_actor *a = NULL;
    CHECK(prism_actor_create(c, sha, "Stasher", NULL, 0, &o, &a) == PRISM_OK, "create Stasher");
    long n = 3 << 20;
    prism_value *arg = prism_value_json("3145728");
    prism_ref *r = NULL;
    prism_status s = prism_actor_call(c, a, "put", &arg, 1, 1, &r);
    prism_value_free(arg);
    prism_value *list = NULL;
    CHECK(s == PRISM_OK && prism_get(c, r, 60000, &list) == PRISM_OK &&
              prism_value_list_size(list) == 2,
          "Stasher.put");
    prism_ref_release(r);
    prism_ref *x = prism_ref_dup(prism_value_get_ref(prism_value_list_get(list, 0)));
    prism_value_free(list);
    CHECK(read_borrowed(c, sha, x, n, "an actor", use_node) == 0, "borrowing from an actor");
    CHECK(prism_actor_kill(c, a, true) == PRISM_OK, "kill");
    prism_actor_release(a);
    printf("borrowa ok\n");
    return 0;
}

/* borrow SHA: references owned by other processes, got and passed on. */
static int borrow(prism_client *c, const char *sha)
{
    /* A reference a task put and returned: the driver borrows it from the worker. */
    prism_value *list = NULL;
    long pid = 0, n = 1 << 20;
    prism_ref *x = stashed(c, sha, n, &list, &pid);
    CHECK(x && pid > 0, "stash gave no reference");
    prism_value_free(list); /* x alone keeps the object alive now */
    prism_value *v = NULL;
    prism_status s = prism_get(c, x, 60000, &v);
    size_t len = 0;
    const unsigned char *p = v ? prism_value_data(v, &len) : NULL;
    CHECK(s == PRISM_OK && p && len == (size_t)n, "get of the borrowed object: %s",
          prism_status_text(s));
    for (size_t i = 0; i < len; i++)
        CHECK(p[i] == i % 251, "byte %zu is %u", i, p[i]);
    prism_value_free(v);
    printf("borrowed get ok: 1 MiB owned by worker %ld\n", pid);

    /* Passed on: as a top-level argument (the value arrives), and inside a
     * list with an object of the driver's (the task borrows both). */
    prism_value *arg = prism_value_ref(x);
    prism_ref *sum = submit1(c, sha, "checksum", &arg, 1, NULL);
    prism_value_free(arg);
    s = prism_get(c, sum, 60000, &v);
    CHECK(s == PRISM_OK && json_num(v) == stash_sum(n), "checksum of the borrowed argument: %s",
          prism_status_text(s));
    prism_value_free(v);
    prism_ref_release(sum);
    prism_value *num = prism_value_json("1000");
    prism_ref *mine = NULL;
    CHECK(prism_put(c, num, &mine) == PRISM_OK, "put");
    prism_value_free(num);
    prism_value *refs = prism_value_list();
    prism_value_list_append(refs, prism_value_ref(x));
    prism_value_list_append(refs, prism_value_ref(mine));
    sum = submit1(c, sha, "deref_sum", &refs, 1, NULL);
    s = prism_get(c, sum, 60000, &v);
    CHECK(s == PRISM_OK && json_num(v) == stash_sum(n) + 1000, "deref_sum: %s",
          prism_status_text(s));
    prism_value_free(v);
    prism_ref_release(sum);
    printf("passed on ok\n");

    /* An object put inside another keeps it alive: the driver drops its own
     * handle, a task gets it through the outer object. */
    prism_ref *outer = NULL;
    CHECK(prism_put(c, refs, &outer) == PRISM_OK, "put of a list of references");
    prism_value_free(refs);
    prism_ref_release(mine);
    arg = prism_value_ref(outer);
    sum = submit1(c, sha, "deref_sum", &arg, 1, NULL);
    prism_value_free(arg);
    s = prism_get(c, sum, 60000, &v);
    CHECK(s == PRISM_OK && json_num(v) == stash_sum(n) + 1000, "deref_sum through a put list: %s",
          prism_status_text(s));
    prism_value_free(v);
    prism_ref_release(sum);
    prism_ref_release(outer);
    printf("nested in a put ok\n");

    /* wait on a borrowed object that has not been fetched yet. */
    prism_ref *y = stashed(c, sha, 100, &list, &pid);
    CHECK(y, "second stash");
    bool ready = false;
    s = prism_wait(c, &y, 1, 1, 30000, &ready);
    CHECK(s == PRISM_OK && ready, "wait on a borrowed object: %s", prism_status_text(s));
    prism_value_free(list);
    prism_ref_release(y);
    prism_ref_release(x);
    printf("borrow ok\n");
    return 0;
}

/* ownerdied SHA: the worker owning a borrowed object is killed: get fails
 * with "owner died" instead of hanging. */
static int ownerdied(prism_client *c, const char *sha)
{
    prism_value *list = NULL;
    long pid = 0;
    prism_ref *y = stashed(c, sha, 100, &list, &pid);
    CHECK(y && pid > 0, "stash");
    CHECK(kill((pid_t)pid, SIGKILL) == 0, "kill %ld", pid);
    for (int i = 0; i < 100 && kill((pid_t)pid, 0) == 0; i++)
        usleep(50000); /* gone from the process table once its node agent reaps it */
    prism_value *v = NULL;
    prism_status s = prism_get(c, y, 30000, &v);
    CHECK(s == PRISM_ERR_OWNER_DIED, "get after the owner died gave %s", prism_status_text(s));
    printf("owner died ok: %s\n", prism_last_error());
    prism_value_free(v);
    prism_value_free(list);
    prism_ref_release(y);
    return 0;
}

/* hold NODE: objects of every kind, kept until a line on stdin: a small put
 * (inline), a 256 KiB put (in the local store), a task result (inline, two
 * handles), a 320 KB task result made on NODE (in NODE's store), a failed
 * task and a task no node can run (pending). Prints "owner ADDR", one
 * "NAME OBJECT_ID" line each, then "ready". */
static int hold(prism_client *c, const char *node)
{
    prism_task_options on_node = PRISM_TASK_OPTIONS_INIT, nowhere = PRISM_TASK_OPTIONS_INIT;
    on_node.strategy = PRISM_STRATEGY_NODE_AFFINITY;
    on_node.node_id = node;
    nowhere.resources = "{\"nowhere\": 1}";
    static unsigned char big_bytes[256 * 1024];
    prism_value *small = prism_value_json("[1, 2, 3]");
    prism_value *big = prism_value_bytes(big_bytes, sizeof big_bytes);
    prism_value *add[2] = {prism_value_json("2"), prism_value_json("40")};
    prism_value *shape = prism_value_json("[200, 200]"), *boom = prism_value_json("\"boom\"");
    prism_ref *refs[7] = {0};
    const char *names[7] = {"small", "big", "answer", "remote", "failed", "pending", "answer"};
    CHECK(prism_put(c, small, &refs[0]) == PRISM_OK && prism_put(c, big, &refs[1]) == PRISM_OK,
          "put");
    refs[2] = submit1(c, "builtin", "add", add, 2, NULL);
    refs[3] = submit1(c, "builtin", "zeros", &shape, 1, &on_node);
    refs[4] = submit1(c, "builtin", "fail", &boom, 1, NULL);
    refs[5] = submit1(c, "builtin", "echo", NULL, 0, &nowhere);
    CHECK(refs[2] && refs[3] && refs[4] && refs[5], "submit");
    refs[6] = prism_ref_dup(refs[2]);
    bool ready[3];
    CHECK(prism_wait(c, refs + 2, 3, 3, 60000, ready) == PRISM_OK, "wait for the results");
    printf("owner %s\n", prism_client_owner(c));
    for (int i = 0; i < 6; i++)
        printf("%s %s\n", names[i], prism_ref_id(refs[i]));
    printf("ready\n");
    fflush(stdout);
    char line[64];
    CHECK(fgets(line, sizeof line, stdin) != NULL || feof(stdin), "stdin");
    for (int i = 0; i < 7; i++)
        prism_ref_release(refs[i]);
    prism_value_free(small);
    prism_value_free(big);
    prism_value_free(add[0]);
    prism_value_free(add[1]);
    prism_value_free(shape);
    prism_value_free(boom);
    return 0;
}

/* cancel: a running task is cancelled only with force, which kills its
 * worker; the cluster runs the next task as usual. */
static int cancel(prism_client *c)
{
    prism_value *ms = prism_value_json("30000");
    prism_ref *r = submit1(c, "builtin", "sleep", &ms, 1, NULL);
    prism_value_free(ms);
    /* A task waiting for the sleeper's result is cancelled without force. */
    prism_value *dep[2] = {prism_value_ref(r), prism_value_json("1")};
    prism_ref *w = submit1(c, "builtin", "add", dep, 2, NULL);
    prism_value_free(dep[0]);
    prism_value_free(dep[1]);
    CHECK(prism_cancel(c, w, false) == PRISM_OK, "cancel of a task waiting for its arguments");
    prism_value *wv = NULL;
    CHECK(prism_get(c, w, 5000, &wv) == PRISM_ERR_CANCELLED, "get of the cancelled waiting task");
    prism_value_free(wv);
    prism_ref_release(w);
    printf("waiting task cancelled ok\n");
    char why[256] = "";
    for (int i = 0; i < 200; i++) { /* until it has left the queue */
        prism_pending_reason(c, r, why, sizeof why);
        if (strstr(why, "running"))
            break;
        usleep(20000);
    }
    usleep(300000);
    CHECK(prism_cancel(c, r, false) == PRISM_ERR_INVALID && strstr(prism_last_error(), "force"),
          "a cancel without force of a running task");
    CHECK(prism_cancel(c, r, true) == PRISM_OK, "force cancel");
    prism_value *v = NULL;
    prism_status s = prism_get(c, r, 20000, &v);
    CHECK(s == PRISM_ERR_CANCELLED, "get of a cancelled task gave %s", prism_status_text(s));
    printf("cancelled ok: %s\n", prism_last_error());
    prism_value_free(v);
    prism_ref_release(r);
    prism_value *args[2] = {prism_value_json("2"), prism_value_json("40")};
    r = submit1(c, "builtin", "add", args, 2, NULL);
    s = prism_get(c, r, 60000, &v);
    CHECK(s == PRISM_OK && json_num(v) == 42, "a task after the cancel: %s", prism_status_text(s));
    prism_value_free(v);
    prism_value_free(args[0]);
    prism_value_free(args[1]);
    prism_ref_release(r);
    printf("cancel ok\n");
    return 0;
}

/* failmany N: N tasks that fail, each with its own error (every failure is
 * reported to the task list: the batches are larger than one NATS message). */
static int failmany(prism_client *c, int n)
{
    prism_ref **refs = calloc((size_t)n, sizeof *refs);
    for (int i = 0; i < n; i++) {
        char msg[64];
        snprintf(msg, sizeof msg, "\"failure number %d\"", i);
        prism_value *arg = prism_value_json(msg);
        refs[i] = submit1(c, "builtin", "fail", &arg, 1, NULL);
        prism_value_free(arg);
        CHECK(refs[i], "submit %d", i);
    }
    for (int i = 0; i < n; i++) {
        prism_value *v = NULL;
        prism_status s = prism_get(c, refs[i], 120000, &v);
        CHECK(s == PRISM_ERR_TASK, "task %d gave %s", i, prism_status_text(s));
        prism_value_free(v);
        prism_ref_release(refs[i]);
    }
    free(refs);
    printf("failmany ok: %d failures\n", n);
    return 0;
}

/* waitk: wait for k of n (tasks of 100, 1500 and 3000 ms), a timeout that
 * still tells which are ready, then all. */
static int waitk(prism_client *c)
{
    const char *ms[3] = {"100", "1500", "3000"};
    prism_ref *r[3];
    for (int i = 0; i < 3; i++) {
        prism_value *arg = prism_value_json(ms[i]);
        r[i] = submit1(c, "builtin", "sleep", &arg, 1, NULL);
        prism_value_free(arg);
        CHECK(r[i], "submit");
    }
    bool ready[3];
    CHECK(prism_wait(c, r, 3, 1, 10000, ready) == PRISM_OK && ready[0] && !ready[1] && !ready[2],
          "1 of 3: %d %d %d", ready[0], ready[1], ready[2]);
    CHECK(prism_wait(c, r, 3, 3, 300, ready) == PRISM_ERR_TIMEOUT && ready[0] && !ready[2],
          "3 of 3 in 300 ms: %d %d %d", ready[0], ready[1], ready[2]);
    CHECK(prism_wait(c, r, 3, 2, 10000, ready) == PRISM_OK && ready[0] && ready[1] && !ready[2],
          "2 of 3: %d %d %d", ready[0], ready[1], ready[2]);
    CHECK(prism_wait(c, r, 3, 3, 10000, ready) == PRISM_OK && ready[0] && ready[1] && ready[2],
          "3 of 3");
    for (int i = 0; i < 3; i++)
        prism_ref_release(r[i]);
    printf("waitk ok\n");
    return 0;
}

/* On a line of stdin: a task of a shape of its own (so that no lease of
 * the process's is reused), once its lease request is out (the test stops
 * the scheduler meanwhile). */
static prism_ref *task_while_leasing(prism_client *c)
{
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return NULL;
    prism_value *add[2] = {prism_value_json("2"), prism_value_json("40")};
    prism_task_options shape = PRISM_TASK_OPTIONS_INIT;
    shape.num_cpus = 1.5;
    prism_ref *task = submit1(c, "builtin", "add", add, 2, &shape);
    prism_value_free(add[0]);
    prism_value_free(add[1]);
    usleep(200000); /* the lease request is out */
    return task;
}

/* That task's result, once the scheduler is back: 42. */
static int task_after_leasing(prism_client *c, prism_ref *task)
{
    prism_value *out = NULL;
    prism_status s = prism_get(c, task, 120000, &out);
    CHECK(s == PRISM_OK && json_num(out) == 42, "the task: %s", prism_status_text(s));
    prism_value_free(out);
    prism_ref_release(task);
    return 0;
}

/* freeleasing [SHA]: a stored object is dropped while a task's lease
 * request is out (the test stops the scheduler meanwhile): the object is
 * this driver's put, or with SHA one a worker owns that this driver
 * borrows (stash). Prints "object ID"; on a line of stdin submits the
 * task, drops the object and prints "released"; then waits for the task
 * (42). */
static int freeleasing(prism_client *c, const char *sha)
{
    static unsigned char big_bytes[1 << 20];
    prism_value *list = NULL;
    prism_ref *ref = NULL;
    long pid = 0;
    if (*sha) {
        ref = stashed(c, sha, sizeof big_bytes, &list, &pid);
    } else {
        prism_value *big = prism_value_bytes(big_bytes, sizeof big_bytes);
        CHECK(prism_put(c, big, &ref) == PRISM_OK, "put");
        prism_value_free(big);
    }
    CHECK(ref, "stash gave no reference");
    printf("object %s\n", prism_ref_id(ref));
    fflush(stdout);
    prism_ref *task = task_while_leasing(c);
    CHECK(task, "submit");
    prism_ref_release(ref);
    prism_value_free(list);
    printf("released\n");
    fflush(stdout);
    CHECK(task_after_leasing(c, task) == 0, "the task");
    printf("freeleasing ok\n");
    return 0;
}

/* callleasing: a call to an actor while a task's lease request is out
 * (the test stops the scheduler meanwhile) does not wait for the request's
 * answer: an actor call needs no scheduler. Prints "actor ID"; on a line
 * of stdin submits the task, then calls the actor for the first time (so
 * that this client connects to it now) and prints "call ok MS"; then waits
 * for the task (42). */
static int callleasing(prism_client *c)
{
    prism_actor *a = NULL;
    CHECK(prism_actor_create(c, "builtin", "Counter", NULL, 0, NULL, &a) == PRISM_OK,
          "create Counter");
    printf("actor %s\n", prism_actor_id(a));
    fflush(stdout);
    prism_ref *task = task_while_leasing(c);
    CHECK(task, "submit");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    prism_ref *r = NULL;
    prism_value *v = NULL;
    CHECK(prism_actor_call(c, a, "inc", NULL, 0, 1, &r) == PRISM_OK, "call");
    prism_status s = prism_get(c, r, 5000, &v);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(s == PRISM_OK && json_num(v) == 1, "the call while the lease request waits: %s",
          prism_status_text(s));
    printf("call ok %.0f\n",
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    fflush(stdout);
    prism_value_free(v);
    prism_ref_release(r);
    CHECK(task_after_leasing(c, task) == 0, "the task");
    printf("callleasing ok\n");
    CHECK(prism_actor_kill(c, a, true) == PRISM_OK, "kill");
    prism_actor_release(a);
    return 0;
}

/* leaveleasing: the client disconnects while a task's lease request is
 * out (the test stops the scheduler, and lets it go on once the disconnect
 * began): the grant that comes then is given back at once. Prints "ready";
 * on a line of stdin submits the task, then returns (main disconnects). */
static int leaveleasing(prism_client *c)
{
    printf("ready\n");
    fflush(stdout);
    prism_ref *task = task_while_leasing(c);
    CHECK(task, "submit");
    prism_ref_release(task);
    return 0;
}

/* A client of the cluster with no store of its own, as a driver on a
 * machine without a node is. */
static prism_client *storeless(void)
{
    char *sock = getenv("PRISM_STORE_SOCKET") ? strdup(getenv("PRISM_STORE_SOCKET")) : NULL;
    unsetenv("PRISM_STORE_SOCKET");
    unsetenv("PRISM_STORE_URL");
    prism_client *b = NULL;
    if (prism_connect(NULL, &b) != PRISM_OK)
        b = NULL;
    if (sock)
        setenv("PRISM_STORE_SOCKET", sock, 1);
    free(sock);
    return b;
}

/* strangestore: this client stores a 1 MiB value in node-1's store, but
 * names its store by the URL the test gave (PRISM_STORE_URL), one the GCS
 * does not list. A client without a store gets it from the owner, learns
 * that URL, and must refuse it rather than send the token there; a value
 * of a client naming its store rightly it reads over HTTP. */
static int strangestore(prism_client *c)
{
    enum { SIZE = 1 << 20 };
    uint8_t *buf = malloc(SIZE);
    CHECK(buf, "memory");
    for (size_t i = 0; i < SIZE; i++)
        buf[i] = (uint8_t)(i * 13);
    prism_value *v = prism_value_bytes(buf, SIZE);
    prism_ref *strange = NULL, *right = NULL;
    CHECK(prism_put(c, v, &strange) == PRISM_OK, "put");
    prism_client *b = storeless();
    CHECK(b, "a client without a store");
    unsetenv("PRISM_STORE_URL");
    prism_client *a2 = NULL;
    CHECK(prism_connect(NULL, &a2) == PRISM_OK && prism_put(a2, v, &right) == PRISM_OK,
          "a client naming its store rightly");
    prism_value_free(v);
    prism_value *got = NULL;
    size_t len = 0;
    CHECK(prism_get(b, right, 10000, &got) == PRISM_OK, "a value in a listed store");
    const void *data = prism_value_data(got, &len);
    CHECK(len == SIZE && !memcmp(data, buf, SIZE), "the value read over HTTP");
    printf("read %zu bytes from a listed store\n", len);
    prism_value_free(got);
    got = NULL;
    prism_status s = prism_get(b, strange, 10000, &got);
    CHECK(s == PRISM_ERR_OBJECT_LOST && !got && strstr(prism_last_error(), "does not list"),
          "a value in a store the GCS does not list: %s", prism_status_text(s));
    printf("refused: %s\n", prism_last_error());
    prism_ref_release(strange);
    prism_ref_release(right);
    prism_disconnect(b);
    prism_disconnect(a2);
    free(buf);
    return 0;
}

/* queryhung: while this client asks a stopped GCS where its actor went
 * (the test stopped the GCS and killed the actor's worker), a task of a new
 * shape still gets its lease and runs. Prints "actor ID PID"; on a line of
 * stdin calls the actor (which makes the client ask), then runs the task
 * and prints "task ok MS"; on a second line waits for the call to settle
 * (the GCS is back) and kills the actor. */
static int queryhung(prism_client *c)
{
    prism_actor_options o = PRISM_ACTOR_OPTIONS_INIT;
    o.max_restarts = 1;
    prism_actor *a = NULL;
    CHECK(prism_actor_create(c, "builtin", "Counter", NULL, 0, &o, &a) == PRISM_OK, "create");
    prism_ref *r = NULL;
    prism_value *v = NULL;
    CHECK(prism_actor_call(c, a, "pid", NULL, 0, 1, &r) == PRISM_OK &&
              prism_get(c, r, 60000, &v) == PRISM_OK,
          "pid");
    double pid = json_num(v);
    prism_value_free(v);
    prism_ref_release(r);
    /* A worker for the task's shape was started once, and is idle now: a
     * worker that starts needs the GCS, which will be stopped. */
    prism_value *add[2] = {prism_value_json("2"), prism_value_json("40")};
    prism_task_options shape = PRISM_TASK_OPTIONS_INIT;
    shape.num_cpus = 1.5;
    prism_ref *task = submit1(c, "builtin", "add", add, 2, &shape);
    CHECK(task && prism_get(c, task, 60000, &v) == PRISM_OK, "the first task");
    prism_value_free(v);
    prism_ref_release(task);
    printf("actor %s %.0f\n", prism_actor_id(a), pid);
    fflush(stdout);
    char line[64];
    CHECK(fgets(line, sizeof line, stdin) != NULL, "stdin");
    usleep(300000); /* the worker's death seen: the next call waits for its address */
    CHECK(prism_actor_call(c, a, "get", NULL, 0, 1, &r) == PRISM_OK, "call");
    usleep(300000); /* the question to the GCS out */
    task = submit1(c, "builtin", "add", add, 2, &shape);
    prism_value_free(add[0]);
    prism_value_free(add[1]);
    CHECK(task, "submit");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    prism_status s = prism_get(c, task, 5000, &v);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(s == PRISM_OK && json_num(v) == 42, "the task while the GCS is stopped: %s",
          prism_status_text(s));
    prism_value_free(v);
    prism_ref_release(task);
    printf("task ok %.0f\n",
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    fflush(stdout);
    CHECK(fgets(line, sizeof line, stdin) != NULL, "stdin");
    prism_get(c, r, 60000, &v); /* restarted or failed: either settles it */
    prism_value_free(v);
    prism_ref_release(r);
    CHECK(prism_actor_kill(c, a, true) == PRISM_OK, "kill");
    prism_actor_release(a);
    printf("queryhung ok\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr,
                "usage: task_probe seed|many N|nested D|errors|package SHA|crash SHA|"
                "sleep MS|sleeps N MS|reconstruct NODE|bigarg A B|hold NODE|lostarg [put|once]|"
                "lostpushed A B|freeleasing [SHA]|callleasing|leaveleasing|queryhung|"
                "strangestore\n");
        return 2;
    }
    prism_client *c;
    if (prism_connect(NULL, &c) != PRISM_OK) {
        fprintf(stderr, "probe: connect: %s\n", prism_last_error());
        return 1;
    }
    const char *cmd = argv[1], *arg = argc > 2 ? argv[2] : "";
    int rc = !strcmp(cmd, "seed")                     ? seed(c)
             : !strcmp(cmd, "many")                   ? many(c, atoi(arg))
             : !strcmp(cmd, "nested")                 ? nested(c, atoi(arg))
             : !strcmp(cmd, "errors")                 ? errors(c)
             : !strcmp(cmd, "package")                ? package(c, arg)
             : !strcmp(cmd, "crash")                  ? crash(c, arg)
             : !strcmp(cmd, "sleep")                  ? sleeper(c, arg)
             : !strcmp(cmd, "sleeps") && argc > 3     ? sleeps(c, atoi(arg), argv[3])
             : !strcmp(cmd, "reconstruct")            ? reconstruct(c, arg)
             : !strcmp(cmd, "hold")                   ? hold(c, arg)
             : !strcmp(cmd, "freeleasing")            ? freeleasing(c, arg)
             : !strcmp(cmd, "callleasing")            ? callleasing(c)
             : !strcmp(cmd, "leaveleasing")           ? leaveleasing(c)
             : !strcmp(cmd, "queryhung")              ? queryhung(c)
             : !strcmp(cmd, "strangestore")           ? strangestore(c)
             : !strcmp(cmd, "bigarg") && argc > 3     ? bigarg(c, arg, argv[3])
             : !strcmp(cmd, "lostarg")                ? lostarg(c, arg)
             : !strcmp(cmd, "lostpushed") && argc > 3 ? lostpushed(c, arg, argv[3])
             : !strcmp(cmd, "remoteget") && argc > 2  ? remoteget(c, arg)
             : !strcmp(cmd, "borrow")                 ? borrow(c, arg)
             : !strcmp(cmd, "borrowx") && argc > 4    ? borrowx(c, arg, argv[3], argv[4])
             : !strcmp(cmd, "borrowa") && argc > 4    ? borrowa(c, arg, argv[3], argv[4])
             : !strcmp(cmd, "ownerdied")              ? ownerdied(c, arg)
             : !strcmp(cmd, "cancel")                 ? cancel(c)
             : !strcmp(cmd, "failmany")               ? failmany(c, atoi(arg))
             : !strcmp(cmd, "waitk")                  ? waitk(c)
                                                      : 2;
    prism_disconnect(c);
    return rc;
}
