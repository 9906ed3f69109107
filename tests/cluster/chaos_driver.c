/* The workload of the chaos test: tasks with large arguments, an actor, and
 * application errors, in rounds until a deadline, against the cluster in
 * PRISM_ADDRESS/PRISM_TOKEN while services die around it.
 *
 *   chaos_driver --seconds S --tag T
 *
 * Each outcome is one line on stdout: "ok OP", "err OP STATUS: MESSAGE" for
 * a failure the faults explain (a worker, node, object or actor lost), or
 * "BAD OP ..." for a wrong value or an unexplained failure (a wait that ran
 * out: every wait is bounded, so a hang shows as BAD). The last line is
 * "summary TAG rounds=N ok=N err=N bad=N"; the exit status is 0 only when
 * bad is 0. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <prism/prism.h>

#define GET_MS 40000     /* every wait is bounded: beyond this it counts as a hang */
#define ELEMS 20000      /* float64: 160,000 bytes, above the 100 KiB inline threshold */
#define CONNECT_TRIES 40 /* the GCS may be down when a job starts: 20 s of tries */

static const char *tag = "driver";
static long n_ok, n_err, n_bad;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void line(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void ok(const char *op)
{
    n_ok++;
    line("ok %s", op);
}

static void bad(const char *op, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    n_bad++;
    line("BAD %s %s", op, text);
}

/* A failure the injected faults explain, with a message that says so; anything
 * else (a timeout: something hung; an internal error) is BAD. */
static void failed(const char *op, prism_status s, const prism_value *v)
{
    const char *msg = v && prism_value_error_message(v) ? prism_value_error_message(v)
                                                        : prism_last_error();
    switch (s) {
    case PRISM_ERR_WORKER_DIED:
    case PRISM_ERR_OBJECT_LOST:
    case PRISM_ERR_OWNER_DIED:
    case PRISM_ERR_ACTOR_DIED:
        if (msg && *msg) {
            n_err++;
            line("err %s %s: %s", op, prism_status_text(s), msg);
            return;
        }
        break;
    default: break;
    }
    bad(op, "%s: %s", prism_status_text(s), msg ? msg : "(no message)");
}

static prism_ref *submit(prism_client *c, const char *fn, prism_value **args, size_t n,
                         const char *op)
{
    prism_task_options o = PRISM_TASK_OPTIONS_INIT;
    o.strategy = PRISM_STRATEGY_SPREAD; /* arguments made on one node, used on another */
    o.max_retries = 5;
    prism_ref *r = NULL;
    prism_status s = prism_submit(c, "builtin", fn, args, n, &o, &r);
    if (s != PRISM_OK) {
        bad(op, "submit: %s: %s", prism_status_text(s), prism_last_error());
        return NULL;
    }
    return r;
}

/* The value of a JSON number result, or NAN after reporting the failure. */
static double get_number(prism_client *c, prism_ref *r, const char *op)
{
    prism_value *v = NULL;
    prism_status s = prism_get(c, r, GET_MS, &v);
    double x = NAN;
    if (s != PRISM_OK)
        failed(op, s, v);
    else if (prism_value_kind_of(v) != PRISM_VALUE_JSON)
        bad(op, "not a JSON value (kind %d)", (int)prism_value_kind_of(v));
    else
        x = atof(prism_value_json_text(v));
    prism_value_free(v);
    return x;
}

/* put(T) -> add(T, T) -> sum: T is 160 KB, so the put (a driver with a store)
 * and add's result live in object stores, and with SPREAD the sum usually
 * runs on another node than add and pulls its argument across the bridge. */
static void round_tensor(prism_client *c, int round)
{
    char op[64];
    snprintf(op, sizeof op, "tensor/%d", round);
    double *data = malloc(ELEMS * sizeof *data);
    double want = 0;
    for (int i = 0; i < ELEMS; i++)
        want += data[i] = (double)((i * (round + 3) + 1) % 97);
    int64_t shape[1] = {ELEMS};
    prism_value *t = prism_value_tensor(PRISM_F64, 1, shape, data);
    free(data);
    prism_ref *p = NULL;
    prism_status s = prism_put(c, t, &p);
    prism_value_free(t);
    if (s != PRISM_OK) {
        bad(op, "put: %s: %s", prism_status_text(s), prism_last_error());
        return;
    }
    prism_value *args[2] = {prism_value_ref(p), prism_value_ref(p)};
    prism_ref *a = submit(c, "add", args, 2, op);
    prism_value_free(args[0]);
    prism_value_free(args[1]);
    prism_ref_release(p);
    if (!a)
        return;
    prism_value *arg = prism_value_ref(a);
    prism_ref *sum = submit(c, "sum", &arg, 1, op);
    prism_value_free(arg);
    if (sum) {
        double got = get_number(c, sum, op);
        if (got == 2 * want)
            ok(op);
        else if (!isnan(got))
            bad(op, "sum %.0f, want %.0f", got, 2 * want);
    }
    /* the stored tensor itself, read by its owner (from whichever node holds it) */
    snprintf(op, sizeof op, "stored/%d", round);
    prism_value *v = NULL;
    s = prism_get(c, a, GET_MS, &v);
    if (s != PRISM_OK) {
        failed(op, s, v);
    } else {
        size_t len = 0;
        const double *d = prism_value_data(v, &len);
        bool right = prism_value_kind_of(v) == PRISM_VALUE_TENSOR && len == ELEMS * sizeof *d;
        for (int i = 0; right && i < ELEMS; i++)
            right = d[i] == 2.0 * ((i * (round + 3) + 1) % 97);
        if (right)
            ok(op);
        else
            bad(op, "the stored tensor is wrong (%zu bytes)", len);
    }
    prism_value_free(v);
    prism_ref_release(sum);
    prism_ref_release(a);
}

/* An application error reaches the caller with the task's name and message. */
static void round_error(prism_client *c, int round)
{
    char op[64], msg[64];
    snprintf(op, sizeof op, "error/%d", round);
    snprintf(msg, sizeof msg, "\"boom %d\"", round);
    prism_value *arg = prism_value_json(msg);
    prism_ref *r = submit(c, "fail", &arg, 1, op);
    prism_value_free(arg);
    if (!r)
        return;
    prism_value *v = NULL;
    prism_status s = prism_get(c, r, GET_MS, &v);
    snprintf(msg, sizeof msg, "boom %d", round);
    if (s == PRISM_ERR_TASK && v && !strcmp(prism_value_error_task(v), "builtin/fail") &&
        strstr(prism_value_error_message(v), msg))
        ok(op);
    else if (s == PRISM_ERR_TASK)
        bad(op, "error value %s / %s", v ? prism_value_error_task(v) : "-",
            v ? prism_value_error_message(v) : "-");
    else
        failed(op, s, v);
    prism_value_free(v);
    prism_ref_release(r);
}

/* A task that submits a task: the worker is an owner too. */
static void round_nested(prism_client *c, int round)
{
    char op[64];
    snprintf(op, sizeof op, "nested/%d", round);
    prism_value *arg = prism_value_json("2");
    prism_ref *r = submit(c, "nested", &arg, 1, op);
    prism_value_free(arg);
    if (!r)
        return;
    prism_value *v = NULL;
    prism_status s = prism_get(c, r, GET_MS, &v);
    if (s == PRISM_OK && prism_value_json_text(v) && atof(prism_value_json_text(v)) == 2)
        ok(op);
    else if (s == PRISM_OK)
        bad(op, "nested gave %s", prism_value_json_text(v) ? prism_value_json_text(v) : "?");
    else if (s == PRISM_ERR_TASK && v && strstr(prism_value_error_message(v), "nested task failed"))
        /* the inner task's owner (a worker) or its worker died: the message says which */
        failed(op, PRISM_ERR_WORKER_DIED, v);
    else
        failed(op, s, v);
    prism_value_free(v);
    prism_ref_release(r);
}

typedef struct actor_state {
    prism_actor *a;
    long last; /* the count the last successful inc returned */
} actor_state;

/* Calls to a Counter that restarts (fresh state) when its worker dies or it
 * is killed: each inc answers one more than the last, or starts over at 1
 * after a restart; never a skipped or repeated count. */
static void round_actor(prism_client *c, actor_state *st, int round)
{
    char op[64];
    prism_ref *r[4] = {0};
    int n = 1 + round % 4; /* several calls in flight at once, in order */
    for (int i = 0; i < n; i++) {
        snprintf(op, sizeof op, "actor/%d.%d", round, i);
        prism_status s = prism_actor_call(c, st->a, "inc", NULL, 0, 1, &r[i]);
        if (s != PRISM_OK)
            bad(op, "call: %s: %s", prism_status_text(s), prism_last_error());
    }
    for (int i = 0; i < n; i++) {
        if (!r[i])
            continue;
        snprintf(op, sizeof op, "actor/%d.%d", round, i);
        double x = get_number(c, r[i], op);
        prism_ref_release(r[i]);
        if (isnan(x)) {
            st->last = -1; /* unknown: the next count may be anything a restart allows */
            continue;
        }
        long v = (long)x;
        if (v == st->last + 1 || v == 1 || (st->last < 0 && v >= 1))
            ok(op);
        else
            bad(op, "inc gave %ld after %ld", v, st->last);
        st->last = v;
    }
    if (round % 7 == 6) { /* a restart asked for: the kill goes through the GCS */
        snprintf(op, sizeof op, "actor-kill/%d", round);
        prism_status s = prism_actor_kill(c, st->a, false);
        if (s == PRISM_OK)
            ok(op);
        else
            line("err %s %s: %s", op, prism_status_text(s), prism_last_error()), n_err++;
    }
}

int main(int argc, char **argv)
{
    double seconds = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--tag"))
            tag = argv[i + 1];
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    prism_client *c = NULL;
    prism_status s = PRISM_ERR_CONNECT;
    for (int i = 0; i < CONNECT_TRIES && s != PRISM_OK; i++) {
        s = prism_connect(NULL, &c);
        if (s != PRISM_OK)
            usleep(500000);
    }
    if (s != PRISM_OK) {
        line("summary %s ok=0 err=0 bad=1 connect: %s", tag, prism_last_error());
        return 2;
    }
    line("connected %s as %s", tag, prism_client_owner(c));
    prism_actor_options ao = PRISM_ACTOR_OPTIONS_INIT;
    ao.num_cpus = 0; /* nodes have few CPUs; the tasks need them */
    ao.max_restarts = -1;
    ao.max_task_retries = 3;
    actor_state st = {.last = 0};
    s = prism_actor_create(c, "builtin", "Counter", NULL, 0, &ao, &st.a);
    if (s != PRISM_OK)
        bad("actor-create", "%s: %s", prism_status_text(s), prism_last_error());
    double deadline = now_s() + seconds;
    int round = 0;
    for (; now_s() < deadline; round++) {
        round_tensor(c, round);
        if (round % 3 == 0)
            round_error(c, round);
        if (round % 4 == 1)
            round_nested(c, round);
        if (st.a)
            round_actor(c, &st, round);
    }
    if (st.a) {
        s = prism_actor_kill(c, st.a, true);
        if (s != PRISM_OK)
            line("err actor-end %s: %s", prism_status_text(s), prism_last_error()), n_err++;
        prism_actor_release(st.a);
    }
    prism_disconnect(c);
    line("summary %s rounds=%d ok=%ld err=%ld bad=%ld", tag, round, n_ok, n_err, n_bad);
    return n_bad ? 2 : 0;
}
