/* The built-in package: functions every cluster has, for curl users,
 * tests and benchmarks. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "data_ops.h"
#include "prism_internal.h"
#include "runtime.h"

/* zeros(shape): a float64 tensor of zeros; shape is a JSON list of sizes. */
static prism_status builtin_zeros(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                                  prism_value **returns, size_t nreturns)
{
    json_t *shape = nargs == 1 && args[0]->kind == PRISM_VALUE_JSON
                        ? json_loads(args[0]->text, JSON_DECODE_ANY, NULL)
                        : NULL;
    int64_t dims[PRISM_MAX_DIMS];
    size_t n = json_array_size(shape);
    bool ok = json_is_array(shape) && n <= PRISM_MAX_DIMS;
    for (size_t i = 0; ok && i < n; i++) {
        json_t *d = json_array_get(shape, i);
        ok = json_is_integer(d) && json_integer_value(d) >= 0;
        dims[i] = ok ? json_integer_value(d) : 0;
    }
    json_decref(shape);
    if (!ok)
        return prism_task_fail(ctx, "zeros takes one argument: a shape such as [5, 5]");
    returns[0] = prism_value_tensor(PRISM_F64, (int)n, dims, NULL);
    return returns[0] ? PRISM_OK : prism_task_fail(ctx, "a tensor of that shape is too large");
}

static double number_of(const prism_value *v, bool *ok)
{
    json_t *j = v->kind == PRISM_VALUE_JSON ? json_loads(v->text, JSON_DECODE_ANY, NULL) : NULL;
    *ok = json_is_number(j);
    double x = json_number_value(j);
    json_decref(j);
    return x;
}

static double element(const prism_value *t, size_t i)
{
    switch (t->dtype) {
    case PRISM_F32: return ((const float *)t->data)[i];
    case PRISM_F64: return ((const double *)t->data)[i];
    case PRISM_I32: return ((const int32_t *)t->data)[i];
    case PRISM_I64: return (double)((const int64_t *)t->data)[i];
    case PRISM_U8: return t->data[i];
    }
    return 0;
}

static void set_element(prism_value *t, size_t i, double x)
{
    switch (t->dtype) {
    case PRISM_F32: ((float *)t->data)[i] = (float)x; break;
    case PRISM_F64: ((double *)t->data)[i] = x; break;
    case PRISM_I32: ((int32_t *)t->data)[i] = (int32_t)x; break;
    case PRISM_I64: ((int64_t *)t->data)[i] = (int64_t)x; break;
    case PRISM_U8: t->data[i] = (uint8_t)x; break;
    }
}

static prism_value *json_number(double x)
{
    char text[64];
    if (x == floor(x) && fabs(x) < 9e15)
        snprintf(text, sizeof text, "%.0f", x);
    else
        snprintf(text, sizeof text, "%.17g", x);
    return prism_value_json(text);
}

/* add(a, b): element-wise sum of two tensors of one shape, or of two JSON numbers. */
static prism_status builtin_add(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                                prism_value **returns, size_t nreturns)
{
    if (nargs != 2)
        return prism_task_fail(ctx, "add takes two arguments");
    const prism_value *a = args[0], *b = args[1];
    if (a->kind == PRISM_VALUE_TENSOR && b->kind == PRISM_VALUE_TENSOR) {
        if (a->dtype != b->dtype || a->ndim != b->ndim ||
            memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof a->shape[0]) != 0)
            return prism_task_fail(ctx, "add needs tensors of one dtype and shape");
        prism_value *out = prism_value_tensor(a->dtype, a->ndim, a->shape, NULL);
        if (!out)
            return prism_task_fail(ctx, "out of memory");
        size_t n = a->len / prism_dtype_size(a->dtype);
        for (size_t i = 0; i < n; i++)
            set_element(out, i, element(a, i) + element(b, i));
        returns[0] = out;
        return PRISM_OK;
    }
    bool oka, okb;
    double x = number_of(a, &oka), y = number_of(b, &okb);
    if (!oka || !okb)
        return prism_task_fail(ctx, "add takes two tensors or two JSON numbers");
    returns[0] = json_number(x + y);
    return PRISM_OK;
}

/* sum(x): the sum of a tensor's elements or of a JSON list of numbers, as a JSON number. */
static prism_status builtin_sum(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                                prism_value **returns, size_t nreturns)
{
    if (nargs != 1)
        return prism_task_fail(ctx, "sum takes one argument");
    double total = 0;
    if (args[0]->kind == PRISM_VALUE_TENSOR) {
        size_t n = args[0]->len / prism_dtype_size(args[0]->dtype);
        for (size_t i = 0; i < n; i++)
            total += element(args[0], i);
    } else {
        json_t *j = args[0]->kind == PRISM_VALUE_JSON
                        ? json_loads(args[0]->text, JSON_DECODE_ANY, NULL)
                        : NULL;
        size_t i;
        json_t *v;
        bool ok = json_is_array(j);
        json_array_foreach(j, i, v) {
            ok = ok && json_is_number(v);
            total += json_number_value(v);
        }
        json_decref(j);
        if (!ok)
            return prism_task_fail(ctx, "sum takes a tensor or a JSON list of numbers");
    }
    returns[0] = json_number(total);
    return PRISM_OK;
}

/* sleep(ms): sleeps, returns null. */
static prism_status builtin_sleep(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                                  prism_value **returns, size_t nreturns)
{
    bool ok = nargs == 1;
    double ms = ok ? number_of(args[0], &ok) : 0;
    if (!ok || ms < 0 || ms > 86400e3)
        return prism_task_fail(ctx, "sleep takes a number of milliseconds");
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(fmod(ms, 1000.0) * 1e6)};
    nanosleep(&ts, NULL);
    returns[0] = prism_value_null();
    return PRISM_OK;
}

/* echo(a, b, ...): returns its arguments, one per return (null past the end). */
static prism_status builtin_echo(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                                 prism_value **returns, size_t nreturns)
{
    for (size_t i = 0; i < nreturns; i++)
        returns[i] = i < nargs ? prism_value_copy(args[i]) : prism_value_null();
    return PRISM_OK;
}

/* fail(message): fails with the message, for testing error paths. */
static prism_status builtin_fail(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                                 prism_value **returns, size_t nreturns)
{
    json_t *j = nargs >= 1 && args[0]->kind == PRISM_VALUE_JSON
                    ? json_loads(args[0]->text, JSON_DECODE_ANY, NULL)
                    : NULL;
    prism_status s = prism_task_fail(ctx, "%s",
                                     json_is_string(j)             ? json_string_value(j)
                                     : nargs >= 1 && args[0]->text ? args[0]->text
                                                                   : "failed");
    json_decref(j);
    return s;
}

/* nested(depth): submits nested(depth - 1) and returns its result + 1; nested(0) is 0. */
static prism_status builtin_nested(prism_task_ctx *ctx, const prism_value *const *args,
                                   size_t nargs, prism_value **returns, size_t nreturns)
{
    bool ok = nargs == 1;
    double depth = ok ? number_of(args[0], &ok) : 0;
    if (!ok || depth < 0 || depth > 16)
        return prism_task_fail(ctx, "nested takes a depth from 0 to 16");
    if (depth == 0) {
        returns[0] = prism_value_json("0");
        return PRISM_OK;
    }
    prism_client *c = prism_task_client(ctx);
    if (!c)
        return prism_task_fail(ctx, "cannot reach the cluster: %s", prism_last_error());
    prism_value *arg = json_number(depth - 1);
    prism_ref *ref = NULL;
    prism_status s = prism_submit(c, "builtin", "nested", &arg, 1, NULL, &ref);
    prism_value_free(arg);
    prism_value *inner = NULL;
    if (s == PRISM_OK)
        s = prism_get(c, ref, -1, &inner);
    prism_ref_release(ref);
    double x = s == PRISM_OK ? number_of(inner, &ok) : 0;
    prism_value_free(inner);
    if (s != PRISM_OK || !ok)
        return prism_task_fail(ctx, "the nested task failed: %s", prism_last_error());
    returns[0] = json_number(x + 1);
    return PRISM_OK;
}

prism_task_fn prism__builtin_find(const char *name)
{
    static const struct {
        const char *name;
        prism_task_fn fn;
    } table[] = {{"zeros", builtin_zeros},
                 {"add", builtin_add},
                 {"sum", builtin_sum},
                 {"sleep", builtin_sleep},
                 {"echo", builtin_echo},
                 {"fail", builtin_fail},
                 {"nested", builtin_nested},
                 /* datasets (data_ops.c): the tasks of the dataservice's executor */
                 {"data_read_stage", data_read_stage},
                 {"data_map_stage", data_map_stage},
                 {"data_a2a_map", data_a2a_map},
                 {"data_a2a_reduce", data_a2a_reduce},
                 {"data_a2a_merge", data_a2a_merge},
                 {"data_zip", data_zip}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(table[i].name, name))
            return table[i].fn;
    return NULL;
}

/* ---------- the built-in actor class Counter ---------- */

/* Counter(start?): a count, updated atomically so that it stays exact with
 * max_concurrency above 1. */
typedef struct counter {
    long long n;
} counter;

static bool integer_arg(const prism_value *const *args, size_t nargs, long long dflt,
                        long long *out)
{
    *out = dflt;
    if (nargs == 0)
        return true;
    json_t *j = nargs == 1 && args[0]->kind == PRISM_VALUE_JSON
                    ? json_loads(args[0]->text, JSON_DECODE_ANY, NULL)
                    : NULL;
    bool ok = json_is_integer(j);
    if (ok)
        *out = json_integer_value(j);
    json_decref(j);
    return ok;
}

static prism_value *integer_value(long long n)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", n);
    return prism_value_json(text);
}

static prism_status counter_init(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                                 void **state)
{
    long long start;
    if (!integer_arg(args, nargs, 0, &start))
        return prism_task_fail(ctx, "Counter takes an optional JSON integer to start from");
    counter *c = calloc(1, sizeof *c);
    if (!c)
        return prism_task_fail(ctx, "out of memory");
    c->n = start;
    *state = c;
    return PRISM_OK;
}

/* inc(by?): adds `by` (default 1) and returns the new count. */
static prism_status counter_inc(prism_task_ctx *ctx, void *state, const prism_value *const *args,
                                size_t nargs, prism_value **returns, size_t nreturns)
{
    long long by;
    if (!integer_arg(args, nargs, 1, &by))
        return prism_task_fail(ctx, "inc takes an optional JSON integer");
    returns[0] = integer_value(__atomic_add_fetch(&((counter *)state)->n, by, __ATOMIC_SEQ_CST));
    return PRISM_OK;
}

static prism_status counter_get(prism_task_ctx *ctx, void *state, const prism_value *const *args,
                                size_t nargs, prism_value **returns, size_t nreturns)
{
    returns[0] = integer_value(__atomic_load_n(&((counter *)state)->n, __ATOMIC_SEQ_CST));
    return PRISM_OK;
}

/* echo(x): x itself (for latency measurements). Bytes are written where
 * the return goes (prism_task_return_bytes): a DAG's slot, the store. */
static prism_status counter_echo(prism_task_ctx *ctx, void *state, const prism_value *const *args,
                                 size_t nargs, prism_value **returns, size_t nreturns)
{
    size_t len;
    const void *data = nargs ? prism_value_data(args[0], &len) : NULL;
    if (nargs && prism_value_kind_of(args[0]) == PRISM_VALUE_BYTES) {
        void *out = prism_task_return_bytes(ctx, 0, len);
        if (!out)
            return prism_task_fail(ctx, "%s", prism_last_error());
        if (len)
            memcpy(out, data, len);
        return PRISM_OK;
    }
    returns[0] = nargs ? prism_value_copy(args[0]) : prism_value_null();
    return PRISM_OK;
}

/* add(x, ...): its arguments' sum plus the count, which stays as it is (a
 * stage of the DAG tests and examples: a chain of Counter(1), Counter(2),
 * ... adds 1 + 2 + ...; add(input, 100) takes a constant). */
static prism_status counter_add(prism_task_ctx *ctx, void *state, const prism_value *const *args,
                                size_t nargs, prism_value **returns, size_t nreturns)
{
    long long sum = __atomic_load_n(&((counter *)state)->n, __ATOMIC_SEQ_CST), x;
    for (size_t i = 0; i < nargs; i++) {
        if (!integer_arg(args + i, 1, 0, &x))
            return prism_task_fail(ctx, "add takes JSON integers");
        sum += x;
    }
    if (nargs == 0)
        return prism_task_fail(ctx, "add takes JSON integers");
    returns[0] = integer_value(sum);
    return PRISM_OK;
}

/* fill(n): n bytes (up to 64 MiB), byte i being (count + i) mod 256,
 * written where the return goes (prism_task_return_bytes); fill(-n) asks
 * for n bytes, fills them, and fails; fill(n, "swap") fills them, then
 * returns the JSON string "swapped" instead (tests of a failure, or another
 * value, after the return was asked for). A second ask for the same return
 * must be refused. */
static prism_status counter_fill(prism_task_ctx *ctx, void *state, const prism_value *const *args,
                                 size_t nargs, prism_value **returns, size_t nreturns)
{
    long long n;
    bool swap = nargs == 2 && prism_value_kind_of(args[1]) == PRISM_VALUE_JSON &&
                !strcmp(prism_value_json_text(args[1]), "\"swap\"");
    if ((nargs != 1 && !swap) || !integer_arg(args, 1, 0, &n) || n < -(64LL << 20) ||
        n > 64LL << 20)
        return prism_task_fail(ctx, "fill takes a JSON integer, at most 64 MiB either way, and "
                                    "optionally \"swap\"");
    size_t len = (size_t)(n < 0 ? -n : n);
    uint8_t *out = prism_task_return_bytes(ctx, 0, len);
    if (!out)
        return prism_task_fail(ctx, "fill: %s", prism_last_error());
    long long k = __atomic_load_n(&((counter *)state)->n, __ATOMIC_SEQ_CST);
    for (size_t i = 0; i < len; i++)
        out[i] = (uint8_t)((unsigned long long)k + i);
    if (prism_task_return_bytes(ctx, 0, 1))
        return prism_task_fail(ctx, "fill: a second ask for return 0 was given memory");
    if (swap)
        returns[0] = prism_value_json("\"swapped\"");
    return n < 0 ? prism_task_fail(ctx, "fill failed after asking for %zu bytes", len) : PRISM_OK;
}

/* pair(x): two returns, x and x plus the count (several returns in DAGs). */
static prism_status counter_pair(prism_task_ctx *ctx, void *state, const prism_value *const *args,
                                 size_t nargs, prism_value **returns, size_t nreturns)
{
    long long x;
    if (nargs != 1 || nreturns != 2 || !integer_arg(args, nargs, 0, &x))
        return prism_task_fail(ctx, "pair takes one JSON integer and makes two returns");
    returns[0] = integer_value(x);
    returns[1] = integer_value(x + __atomic_load_n(&((counter *)state)->n, __ATOMIC_SEQ_CST));
    return PRISM_OK;
}

/* first(x): x, or when x is a list, its first item, got when it is a
 * reference (for tests of calls that wait for the one before them). */
static prism_status counter_first(prism_task_ctx *ctx, void *state, const prism_value *const *args,
                                  size_t nargs, prism_value **returns, size_t nreturns)
{
    if (nargs != 1)
        return prism_task_fail(ctx, "first takes one value");
    if (prism_value_kind_of(args[0]) != PRISM_VALUE_LIST) {
        returns[0] = prism_value_copy(args[0]);
        return PRISM_OK;
    }
    const prism_value *item = prism_value_list_get(args[0], 0);
    const prism_ref *r = item ? prism_value_get_ref(item) : NULL;
    if (!r) {
        returns[0] = item ? prism_value_copy(item) : prism_value_null();
        return PRISM_OK;
    }
    prism_status s = prism_get(prism_task_client(ctx), r, 60000, &returns[0]);
    return s == PRISM_OK ? s : prism_task_fail(ctx, "first: %s", prism_last_error());
}

/* sleep(ms): waits, then returns ms (for tests of calls in flight). */
static prism_status counter_sleep(prism_task_ctx *ctx, void *state, const prism_value *const *args,
                                  size_t nargs, prism_value **returns, size_t nreturns)
{
    return builtin_sleep(ctx, args, nargs, returns, nreturns);
}

/* pid(): the worker's process ID (to find the actor's process in tests and when debugging). */
static prism_status counter_pid(prism_task_ctx *ctx, void *state, const prism_value *const *args,
                                size_t nargs, prism_value **returns, size_t nreturns)
{
    returns[0] = integer_value((long long)getpid());
    return PRISM_OK;
}

static void counter_free(void *state) { free(state); }

bool prism__builtin_actor(const char *cls, prism_actor_init_fn *init, prism_actor_free_fn *fr)
{
    if (!strcmp(cls, "DataStage")) { /* a dataset's actor pool (data_ops.h) */
        *init = data_stage_actor_init;
        *fr = NULL;
        return true;
    }
    if (strcmp(cls, "Counter") != 0)
        return false;
    *init = counter_init;
    *fr = counter_free;
    return true;
}

prism_actor_method_fn prism__builtin_actor_method(const char *cls, const char *method)
{
    if (!strcmp(cls, "DataStage"))
        return !strcmp(method, "run") ? data_stage_actor_run : NULL;
    static const struct {
        const char *name;
        prism_actor_method_fn fn;
    } table[] = {{"inc", counter_inc},     {"get", counter_get},   {"echo", counter_echo},
                 {"add", counter_add},     {"pair", counter_pair}, {"sleep", counter_sleep},
                 {"first", counter_first}, {"pid", counter_pid},   {"fill", counter_fill}};
    for (size_t i = 0; !strcmp(cls, "Counter") && i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(table[i].name, method))
            return table[i].fn;
    return NULL;
}
