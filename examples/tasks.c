/* An example task package. Build: part of the tree's build (examples/), or
 *   cc -shared -fPIC -I include tasks.c -o tasks.so -L build/lib -lprism
 * then `prism package upload tasks.so` and submit "square" by the printed sha256. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <prism/task.h>

/* square(x): x * x for a JSON number. */
PRISM_TASK(square)
{
    const char *text = nargs == 1 ? prism_value_json_text(args[0]) : NULL;
    char *end;
    double x = text ? strtod(text, &end) : 0;
    if (!text || *end)
        return prism_task_fail(ctx, "square takes one JSON number");
    char out[64];
    snprintf(out, sizeof out, "%.17g", x * x);
    returns[0] = prism_value_json(out);
    return PRISM_OK;
}

/* checksum(bytes or tensor): the sum of all bytes, to check large arguments arrive intact. */
PRISM_TASK(checksum)
{
    size_t len = 0;
    const unsigned char *p = nargs == 1 ? prism_value_data(args[0], &len) : NULL;
    if (!p)
        return prism_task_fail(ctx, "checksum takes bytes or a tensor");
    unsigned long long sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += p[i];
    char out[64];
    snprintf(out, sizeof out, "%llu", sum);
    returns[0] = prism_value_json(out);
    return PRISM_OK;
}

/* crash(): kills its worker, to test retries. */
PRISM_TASK(crash) { abort(); }

static prism_status stash_into(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                               prism_value **returns);

/* stash(n): puts n bytes (byte i is i % 251) into the cluster and returns
 * [reference, worker pid]. The worker owns the object; whoever gets the
 * list borrows it, and the object lives until the last holder drops it. */
PRISM_TASK(stash) { return stash_into(ctx, args, nargs, returns); }

/* Stasher: an actor whose `put(n)` does what stash does, so the actor owns
 * the object (for as long as it lives). */
PRISM_ACTOR_INIT(Stasher)
{
    (void)ctx, (void)args, (void)nargs;
    *state = NULL;
    return PRISM_OK;
}

PRISM_ACTOR_METHOD(Stasher, put)
{
    (void)state, (void)nreturns;
    return stash_into(ctx, args, nargs, returns);
}

static prism_status stash_into(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                               prism_value **returns)
{
    const char *text = nargs == 1 ? prism_value_json_text(args[0]) : NULL;
    long n = text ? atol(text) : -1;
    if (n < 0 || n > (1L << 30))
        return prism_task_fail(ctx, "stash takes a byte count up to 1 GiB");
    unsigned char *data = malloc((size_t)n + 1);
    if (!data)
        return prism_task_fail(ctx, "out of memory");
    for (long i = 0; i < n; i++)
        data[i] = (unsigned char)(i % 251);
    prism_value *v = prism_value_bytes(data, (size_t)n);
    free(data);
    prism_ref *ref = NULL;
    prism_status s = v ? prism_put(prism_task_client(ctx), v, &ref) : PRISM_ERR_NO_MEMORY;
    prism_value_free(v);
    if (s != PRISM_OK)
        return prism_task_fail(ctx, "put failed: %s", prism_last_error());
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    prism_value *out = prism_value_list();
    prism_value_list_append(out, prism_value_ref(ref));
    prism_value_list_append(out, prism_value_json(pid));
    prism_ref_release(ref);
    returns[0] = out;
    return PRISM_OK;
}

/* deref_sum([ref, ...]): gets each referenced object (references inside a
 * list arrive as references, not values) and adds up its bytes, or its
 * value when it is a JSON number. */
PRISM_TASK(deref_sum)
{
    if (nargs != 1 || prism_value_kind_of(args[0]) != PRISM_VALUE_LIST)
        return prism_task_fail(ctx, "deref_sum takes a list of references");
    double total = 0;
    for (size_t i = 0; i < prism_value_list_size(args[0]); i++) {
        const prism_ref *ref = prism_value_get_ref(prism_value_list_get(args[0], i));
        if (!ref)
            return prism_task_fail(ctx, "item %zu is not a reference", i);
        prism_value *v = NULL;
        prism_status s = prism_get(prism_task_client(ctx), ref, 60000, &v);
        if (s != PRISM_OK) {
            prism_value_free(v);
            return prism_task_fail(ctx, "get of item %zu failed: %s", i, prism_last_error());
        }
        size_t len = 0;
        const unsigned char *p = prism_value_data(v, &len);
        if (p)
            for (size_t k = 0; k < len; k++)
                total += p[k];
        else if (prism_value_json_text(v))
            total += atof(prism_value_json_text(v));
        prism_value_free(v);
    }
    char out[64];
    snprintf(out, sizeof out, "%.17g", total);
    returns[0] = prism_value_json(out);
    return PRISM_OK;
}

/* bump(actor_id): calls inc on the actor whose ID it is given (handles
 * travel as IDs) and returns the new count. */
PRISM_TASK(bump)
{
    const char *text = nargs == 1 ? prism_value_json_text(args[0]) : NULL;
    char id[64];
    if (!text || sscanf(text, "\"%63[0-9a-f]\"", id) != 1)
        return prism_task_fail(ctx, "bump takes an actor ID as a JSON string");
    prism_client *c = prism_task_client(ctx);
    prism_actor *a = NULL;
    if (prism_actor_open(c, id, &a) != PRISM_OK)
        return prism_task_fail(ctx, "no actor %s: %s", id, prism_last_error());
    prism_ref *r = NULL;
    prism_status s = prism_actor_call(c, a, "inc", NULL, 0, 1, &r);
    if (s == PRISM_OK)
        s = prism_get(c, r, 60000, &returns[0]);
    prism_ref_release(r);
    prism_actor_release(a);
    return s == PRISM_OK ? PRISM_OK : prism_task_fail(ctx, "inc failed: %s", prism_last_error());
}

/* An actor class: Accumulator(start?) keeps a running total.
 *   add(x) adds a JSON number and returns the total; total() returns it. */
typedef struct accumulator {
    double total;
} accumulator;

PRISM_ACTOR_INIT(Accumulator)
{
    const char *text = nargs == 1 ? prism_value_json_text(args[0]) : NULL;
    if (nargs > 1 || (nargs == 1 && !text))
        return prism_task_fail(ctx, "Accumulator takes an optional JSON number to start from");
    accumulator *a = calloc(1, sizeof *a);
    if (!a)
        return prism_task_fail(ctx, "out of memory");
    a->total = text ? atof(text) : 0;
    *state = a;
    return PRISM_OK;
}

static prism_value *number(double x)
{
    char out[64];
    snprintf(out, sizeof out, "%.17g", x);
    return prism_value_json(out);
}

PRISM_ACTOR_METHOD(Accumulator, add)
{
    const char *text = nargs == 1 ? prism_value_json_text(args[0]) : NULL;
    if (!text)
        return prism_task_fail(ctx, "add takes one JSON number");
    accumulator *a = state;
    a->total += atof(text);
    returns[0] = number(a->total);
    return PRISM_OK;
}

PRISM_ACTOR_METHOD(Accumulator, total)
{
    returns[0] = number(((accumulator *)state)->total);
    return PRISM_OK;
}

PRISM_ACTOR_FREE(Accumulator) { free(state); }

/* An actor class that keeps references: Holder([ref, ...]?) and
 * Holder.keep([ref, ...]) hold them past the call (the caller may drop its
 * own), sum() gets them and adds up their bytes, drop() lets them go. */
typedef struct holder {
    prism_value *kept;
} holder;

PRISM_ACTOR_INIT(Holder)
{
    if (nargs > 1 || (nargs == 1 && prism_value_kind_of(args[0]) != PRISM_VALUE_LIST))
        return prism_task_fail(ctx, "Holder takes an optional list of references");
    holder *h = calloc(1, sizeof *h);
    if (h && nargs == 1 && !(h->kept = prism_value_copy(args[0]))) {
        free(h);
        h = NULL;
    }
    *state = h;
    return h ? PRISM_OK : prism_task_fail(ctx, "out of memory");
}

PRISM_ACTOR_METHOD(Holder, keep)
{
    if (nargs != 1 || prism_value_kind_of(args[0]) != PRISM_VALUE_LIST)
        return prism_task_fail(ctx, "keep takes a list of references");
    holder *h = state;
    prism_value_free(h->kept);
    h->kept = prism_value_copy(args[0]);
    return h->kept ? PRISM_OK : prism_task_fail(ctx, "out of memory");
}

PRISM_ACTOR_METHOD(Holder, sum)
{
    holder *h = state;
    return h->kept ? prism_task__deref_sum(ctx, (const prism_value *const *)&h->kept, 1, returns,
                                           nreturns)
                   : prism_task_fail(ctx, "nothing kept");
}

PRISM_ACTOR_METHOD(Holder, drop)
{
    holder *h = state;
    prism_value_free(h->kept);
    h->kept = NULL;
    return PRISM_OK;
}

PRISM_ACTOR_FREE(Holder)
{
    holder *h = state;
    prism_value_free(h->kept);
    free(h);
}
