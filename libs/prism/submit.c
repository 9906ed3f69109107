/* Submitting tasks: specs, dependencies on owned objects, results, retries. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "codec.h"
#include "prism_subjects.h"
#include "prism_time.h"
#include "prism_wire.h"

void prism__task_free(prism_client *c, task_spec *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nargs; i++)
        prism__value_free_locked(c, t->args[i]);
    free(t->args);
    free(t->package);
    free(t->function);
    free(t);
}

void prism__tasks_free_pending(prism_client *c)
{
    /* Collected first, since freeing them drops references and so changes
     * the table. A lineage task made again may wait for its own arguments:
     * it goes once neither holds it. */
    task_spec *waiting = NULL;
    for (size_t i = 0; c->buckets && i < c->nbuckets; i++) {
        for (obj_entry *e = c->buckets[i]; e; e = e->next) {
            for (size_t k = 0; k < e->nwaiters; k++) {
                task_spec *t = e->waiters[k];
                if (--t->deps_pending == 0 && t->lineage_refs == 0) {
                    t->next = waiting;
                    waiting = t;
                }
            }
            e->nwaiters = 0;
            task_spec *t = e->lineage;
            e->lineage = NULL;
            if (t && --t->lineage_refs == 0 && t->deps_pending == 0) {
                t->next = waiting;
                waiting = t;
            }
        }
    }
    pthread_mutex_lock(&c->lock);
    for (task_spec *t = waiting, *next; t; t = next) {
        next = t->next;
        prism__task_free(c, t);
    }
    pthread_mutex_unlock(&c->lock);
}

void prism__task_name(const task_spec *t, char *out, size_t n)
{
    const actor_rec *a = t->pool ? t->pool->actor : NULL;
    if (a)
        snprintf(out, n, "%s.%s", a->cls ? a->cls : "actor", t->function);
    else
        snprintf(out, n, "%s/%s", t->package, t->function);
}

void prism__task_fail_returns(prism_client *c, task_spec *t, prism_status s, const char *message)
{
    prism__event_task(c, t, TASK_EV_FAILED, message);
    char name[256];
    prism__task_name(t, name, sizeof name);
    for (int i = 0; i < t->num_returns; i++) {
        prism_object_id oid;
        prism_object_id_make(&oid, &t->id, (uint32_t)i);
        obj_entry *e = prism__obj_find(c, &oid);
        if (e)
            prism__obj_set_failed(c, e, s, name, message);
    }
    c->tasks_finished++;
}

void prism__task_release(prism_client *c, task_spec *t)
{
    t->in_flight = false;
    if (t->lineage_refs == 0)
        prism__task_free(c, t);
}

void prism__task_fail(prism_client *c, task_spec *t, prism_status s, const char *message)
{
    prism__task_fail_returns(c, t, s, message);
    prism__task_release(c, t);
}

static void fail_from_argument(prism_client *c, task_spec *t, const obj_entry *dep)
{
    if (t->dep_failed)
        return;
    prism_reader r = {dep->inline_buf, dep->inline_len, 0, NULL, NULL, NULL};
    prism_value *err = pr_value(&r, NULL, NULL);
    char msg[1024];
    snprintf(msg, sizeof msg, "an argument failed: %s: %s", err ? prism_value_error_task(err) : "?",
             err ? prism_value_error_message(err) : "?");
    prism_value_free(err);
    t->dep_failed = true;
    prism__task_fail_returns(c, t, dep->error ? dep->error : PRISM_ERR_TASK, msg);
}

static void lost_argument(prism_client *c, task_spec *t, const obj_entry *e)
{
    if (t->dep_failed)
        return;
    char msg[512];
    prism__lost_message(e, msg, sizeof msg);
    t->dep_failed = true;
    prism__task_fail_returns(c, t, PRISM_ERR_OBJECT_LOST, msg);
}

/* Registers `t` as waiting for the pending references among its arguments
 * (owned or borrowed). An owned argument lost with its node is made again
 * from its lineage first. */
static void add_dependencies(prism_client *c, task_spec *t)
{
    for (size_t i = 0; i < t->nargs; i++) {
        const prism_ref *r = prism_value_get_ref(t->args[i]);
        obj_entry *e = r ? prism__obj_find(c, &r->id) : NULL;
        if (e && !e->owner && e->lost && e->state == OBJ_READY && !prism__reconstruct(c, e)) {
            lost_argument(c, t, e);
            continue;
        }
        if (e && e->state == OBJ_FAILED)
            fail_from_argument(c, t, e);
        if (!e || e->state != OBJ_PENDING)
            continue;
        prism__borrow_resolve(c, e); /* a borrowed one: its owner is asked for the value */
        if (e->nwaiters == e->capwaiters) {
            size_t cap = e->capwaiters ? 2 * e->capwaiters : 2;
            task_spec **w = realloc(e->waiters, cap * sizeof *w);
            if (!w)
                continue; /* the dispatcher will find it pending and fail it */
            e->waiters = w;
            e->capwaiters = cap;
        }
        e->waiters[e->nwaiters++] = t;
        t->deps_pending++;
    }
}

/* Queues `t` once its arguments are ready, making those lost with their
 * node again first; it fails when one cannot be. Lock held. */
static void queue_when_ready(prism_client *c, task_spec *t, bool front)
{
    t->in_flight = true; /* a lineage task waiting here is not run twice */
    add_dependencies(c, t);
    if (t->deps_pending > 0)
        return; /* queued by the last argument that settles */
    if (t->dep_failed)
        prism__task_release(c, t);
    else
        prism__pool_enqueue(c, t, front);
}

/* `t` sits in the waiter list of each pending argument, counted by
 * deps_pending: it is queued (or, when an argument failed, freed) only when
 * the last of those lists lets go of it. */
/* An argument of `t` failed: so do its returns, with the argument's error. */
void prism__task_dep_done(prism_client *c, task_spec *t, obj_entry *dep)
{
    if (dep->state == OBJ_FAILED)
        fail_from_argument(c, t, dep);
    if (--t->deps_pending > 0)
        return;
    if (t->pool->actor) { /* queued at submission, to keep the order */
        prism__dispatch(c, t->pool);
        return;
    }
    if (t->dep_failed)
        prism__task_release(c, t);
    else
        prism__pool_enqueue(c, t, false);
}

prism_status prism__check_amounts(double num_cpus, double num_gpus, double memory,
                                  const char *resources, prism_strategy strategy,
                                  const char *node_id)
{
    if (num_cpus < 0 || num_gpus < 0 || memory < 0)
        return prism__fail(PRISM_ERR_INVALID, "resource amounts must not be negative");
    /* Checked here, not only by the scheduler: a lease refused for them
     * would be refused again every time it is asked for. */
    if (resources) {
        json_t *r = json_loads(resources, 0, NULL), *v;
        const char *name;
        bool ok = json_is_object(r);
        json_object_foreach(r, name, v) {
            ok = ok && json_is_number(v) && json_number_value(v) >= 0;
        }
        json_decref(r);
        if (!ok)
            return prism__fail(PRISM_ERR_INVALID, "resources must be a JSON object of resource "
                                                  "name to a non-negative number");
    }
    if (strategy == PRISM_STRATEGY_NODE_AFFINITY && (!node_id || !*node_id))
        return prism__fail(PRISM_ERR_INVALID, "NODE_AFFINITY needs a node_id");
    if (num_gpus > 1 && num_gpus != floor(num_gpus))
        return prism__fail(PRISM_ERR_INVALID, "num_gpus above 1 must be a whole number of "
                                              "devices (below 1: a share of one)");
    return PRISM_OK;
}

static prism_status check_submit(prism_client *c, const char *package, const char *function,
                                 prism_value *const *args, size_t nargs,
                                 const prism_task_options *o, prism_ref **returns)
{
    if (!c || !package || !*package || !function || !*function || !returns || (nargs && !args))
        return prism__fail(PRISM_ERR_INVALID, "submit needs a client, a package, a function and "
                                              "room for the returns");
    /* the wire carries the count in 16 bits (prism_codec.h) */
    if (o->num_returns < 1 || o->num_returns > PRISM_MAX_RETURNS)
        return prism__fail(PRISM_ERR_INVALID, "num_returns must be 1-%d", PRISM_MAX_RETURNS);
    prism_status s = prism__check_amounts(o->num_cpus, o->num_gpus, o->memory, o->resources,
                                          o->strategy, o->node_id);
    if (s != PRISM_OK)
        return s;
    if (o->placement_group && o->bundle_index < -1)
        return prism__fail(PRISM_ERR_INVALID, "bundle_index is -1 (any bundle) or more");
    for (size_t i = 0; i < nargs; i++)
        if (!args[i] || prism__value_on_device(args[i]))
            return prism__fail(PRISM_ERR_INVALID,
                               args[i] ? "argument %zu " PRISM__ON_DEVICE : "argument %zu is NULL",
                               i);
    return PRISM_OK;
}

/* A copy of an argument; a reference is re-made as a handle of `c`, so the
 * task's dependency on it is tracked whoever made the handle given. */
static prism_value *copy_arg(prism_client *c, const prism_value *v)
{
    const prism_ref *r = prism_value_get_ref(v);
    if (!r || r->client == c)
        return prism_value_copy(v);
    bool mine = !r->owner || !strcmp(r->owner, c->self_addr);
    prism_ref *h = prism__ref_new(c, &r->id, mine ? NULL : r->owner);
    prism_value *copy = h ? prism_value_ref(h) : NULL;
    prism_ref_release(h);
    return copy;
}

static task_spec *make_task(prism_client *c, const char *package, const char *function,
                            prism_value *const *args, size_t nargs, const prism_task_options *o)
{
    task_spec *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    (void)0; /* the ID is assigned under the client lock, in prism_submit */
    t->package = strdup(package);
    t->function = strdup(function);
    t->args = calloc(nargs ? nargs : 1, sizeof *t->args);
    t->nargs = nargs;
    t->num_returns = o->num_returns;
    t->attempts_left = o->max_retries;
    t->retry_exceptions = o->retry_exceptions;
    t->submitted_ms = prism_mono_ms();
    t->submitted_at = prism_now_ms();
    bool ok = t->package && t->function && t->args;
    for (size_t i = 0; ok && i < nargs; i++)
        ok = (t->args[i] = copy_arg(c, args[i])) != NULL;
    if (!ok) {
        for (size_t i = 0; i < nargs; i++)
            prism_value_free(t->args[i]);
        t->nargs = 0;
        prism__task_free(NULL, t);
        return NULL;
    }
    return t;
}

void prism_task_options_init(prism_task_options *opts)
{
    if (opts)
        *opts = (prism_task_options)PRISM_TASK_OPTIONS_INIT;
}

prism_status prism_submit(prism_client *c, const char *package, const char *function,
                          prism_value *const *args, size_t nargs, const prism_task_options *opts,
                          prism_ref **returns)
{
    static const prism_task_options defaults = PRISM_TASK_OPTIONS_INIT;
    if (opts && !PRISM__RESERVED_ZERO(opts))
        return prism__fail(PRISM_ERR_INVALID, "prism_task_options: `reserved` is not zero "
                                              "(initialize it with PRISM_TASK_OPTIONS_INIT)");
    return prism__submit(c, NULL, package, function, args, nargs, opts ? opts : &defaults, returns);
}

prism_status prism__submit(prism_client *c, pool *actor_pool, const char *package,
                           const char *function, prism_value *const *args, size_t nargs,
                           const prism_task_options *o, prism_ref **returns)
{
    prism_status s = check_submit(c, package, function, args, nargs, o, returns);
    if (s != PRISM_OK)
        return s;
    task_spec *t = make_task(c, package, function, args, nargs, o);
    if (!t)
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    pthread_mutex_lock(&c->lock);
    /* Unique without a system call: the client's random put-task prefix and a counter. */
    t->id = c->put_task;
    uint64_t n = ++c->task_counter;
    for (int i = 0; i < 8; i++)
        t->id.b[8 + i] ^= (uint8_t)(n >> (8 * i));
    t->id.b[0] ^= 0x80; /* never equal to the put-task ID itself */
    t->pool = actor_pool ? actor_pool : prism__pool_for(c, o);
    for (int i = 0; i < t->num_returns && t->pool; i++) {
        prism_object_id oid;
        prism_object_id_make(&oid, &t->id, (uint32_t)i);
        if (!prism__obj_add(c, &oid))
            s = PRISM_ERR_NO_MEMORY;
    }
    pthread_mutex_unlock(&c->lock);
    if (!t->pool || s != PRISM_OK) {
        prism__task_free(NULL, t); /* its references are not in the table: free them unlocked */
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    }
    for (int i = 0; i < t->num_returns; i++) {
        prism_object_id oid;
        prism_object_id_make(&oid, &t->id, (uint32_t)i);
        returns[i] = prism__ref_new(c, &oid, NULL);
    }
    pthread_mutex_lock(&c->lock);
    c->tasks_submitted++;
    add_dependencies(c, t);
    if (t->deps_pending == 0 && t->dep_failed)
        prism__task_release(c, t);
    else if (t->deps_pending == 0 || actor_pool)
        prism__pool_enqueue(c, t, false);
    bool asked = c->outbox != NULL; /* owners of borrowed arguments */
    pthread_mutex_unlock(&c->lock);
    if (asked)
        prism__borrow_flush(c);
    return PRISM_OK;
}

/* ---------- results ---------- */

static bool read_slot(prism_client *c, prism_reader *r, obj_entry *e, const char *name)
{
    uint8_t slot = pr_u8(r);
    if (slot == SLOT_INLINE) {
        uint32_t n = pr_u32(r);
        const uint8_t *p = pr_bytes(r, n);
        if (p && e)
            prism__obj_set_inline(c, e, p, n);
    } else if (slot == SLOT_STORED) {
        char *node = pr_str(r), *sock = pr_str(r), *url = pr_str(r);
        uint64_t size = pr_u64(r);
        if (!r->failed && e)
            prism__obj_set_stored(c, e, node, sock, url, size);
        free(node);
        free(sock);
        free(url);
    } else if (slot == SLOT_ERROR) {
        prism_status s = (prism_status)pr_u8(r);
        char *task = pr_str(r), *msg = pr_str(r);
        if (!r->failed && e)
            prism__obj_set_failed(c, e, s ? s : PRISM_ERR_TASK, task && *task ? task : name, msg);
        free(task);
        free(msg);
    } else {
        r->failed = 1;
    }
    return !r->failed;
}

/* Skips one slot (to reach the references listed after it). */
static void skip_slot(prism_reader *r)
{
    uint8_t slot = pr_u8(r);
    if (slot == SLOT_INLINE) {
        pr_bytes(r, pr_u32(r));
    } else if (slot == SLOT_STORED) {
        for (int i = 0; i < 3; i++)
            pr_bytes(r, pr_u32(r));
        pr_u64(r);
    } else if (slot == SLOT_ERROR) {
        pr_u8(r);
        pr_bytes(r, pr_u32(r));
        pr_bytes(r, pr_u32(r));
    } else {
        r->failed = 1;
    }
}

/* One return: its slot, then the references its value holds (u32 n, n x
 * (object id, str owner)). The entry holds them, counted before the value
 * replaces an older one so that nothing they share is freed in between; the
 * worker registered this process with their owners already. */
static bool read_return(prism_client *c, prism_reader *r, obj_entry *e, const char *name)
{
    prism_reader slot = *r;
    skip_slot(r);
    uint32_t n = pr_u32(r);
    if (r->failed || n > r->left / (PRISM_OBJECT_ID_BYTES + 4)) {
        r->failed = 1;
        return false;
    }
    prism_object_id *held = n ? malloc(n * sizeof *held) : NULL;
    size_t nheld = 0;
    for (uint32_t i = 0; i < n && !r->failed; i++) {
        const uint8_t *idb = pr_bytes(r, PRISM_OBJECT_ID_BYTES);
        char *owner = pr_str(r);
        if (idb && owner && held) {
            prism_object_id oid;
            memcpy(oid.b, idb, sizeof oid.b);
            bool mine = !strcmp(owner, c->self_addr);
            if (prism__obj_hold(c, &oid, mine ? NULL : owner)) {
                obj_entry *b = mine ? NULL : prism__obj_find(c, &oid);
                if (b && b->owner)
                    b->registrations++;
                held[nheld++] = oid;
            }
        }
        free(owner);
    }
    read_slot(c, &slot, e, name);
    if (e && !r->failed && !slot.failed && nheld) {
        e->contained = held;
        e->ncontained = nheld;
    } else {
        for (size_t i = 0; i < nheld; i++)
            prism__obj_unhold(c, &held[i]);
        free(held);
    }
    return !r->failed && !slot.failed;
}

/* A DONE frame holds one slot per return; an application error may be retried. */
/* Whether a DONE says the node failed rather than the task: the worker's
 * store went away while the result was stored (WORKER_DIED), or an argument
 * could not be read from the stores (OBJECT_LOST); PRISM_OK when it does
 * not. `why` gets its message. */
static prism_status node_failure(const uint8_t *p, size_t len, char *why, size_t n)
{
    prism_reader r = {p, len, 0, NULL, NULL, NULL};
    pr_u16(&r);
    if (pr_u8(&r) != SLOT_ERROR)
        return PRISM_OK;
    prism_status status = (prism_status)pr_u8(&r);
    free(pr_str(&r));
    char *msg = pr_str(&r);
    bool yes = !r.failed && (status == PRISM_ERR_WORKER_DIED || status == PRISM_ERR_OBJECT_LOST);
    snprintf(why, n, "%s", msg ? msg : "");
    free(msg);
    return yes ? status : PRISM_OK;
}

/* The worker could not read a stored argument of `t`: its message names the
 * object and the node it was told holds it. Each stored argument this
 * process owns on that node is lost: made again from its lineage, and `t`
 * waits for it as at submission, then runs again without using one of its
 * retries (as in Ray), at most LOST_ARGUMENT_TRIES times. False when the
 * message names no argument this process owns (a borrowed one: the task is
 * retried as after a node failure). */
static bool arguments_lost(prism_client *c, task_spec *t, const char *why)
{
    const obj_entry *named = NULL;
    for (size_t i = 0; i < t->nargs && !named; i++) {
        const prism_ref *r = prism_value_get_ref(t->args[i]);
        obj_entry *e = r ? prism__obj_find(c, &r->id) : NULL;
        if (e && !e->owner && strstr(why, r->hex))
            named = e;
    }
    if (!named)
        return false;
    if (++t->lost_argument_tries > LOST_ARGUMENT_TRIES) {
        char msg[1024];
        snprintf(msg, sizeof msg, "an argument was lost %d times; the last time: %s",
                 LOST_ARGUMENT_TRIES, why);
        prism__task_fail(c, t, PRISM_ERR_OBJECT_LOST, msg);
        return true;
    }
    /* Where the worker looked (an argument made again meanwhile is elsewhere):
     * what this process stored there is lost. */
    const char *node = named->state == OBJ_READY && !named->inline_buf && named->node_id &&
                               strstr(why, named->node_id)
                           ? named->node_id
                           : NULL;
    for (size_t i = 0; node && i < t->nargs; i++) {
        const prism_ref *r = prism_value_get_ref(t->args[i]);
        obj_entry *e = r ? prism__obj_find(c, &r->id) : NULL;
        if (e && !e->owner && e->state == OBJ_READY && !e->inline_buf && e->node_id &&
            !strcmp(e->node_id, node))
            e->lost = true;
    }
    queue_when_ready(c, t, true);
    return true;
}

void prism__task_done(prism_client *c, task_spec *t, const uint8_t *p, size_t len)
{
    char name[256], why[512];
    prism__task_name(t, name, sizeof name);
    /* Tried again like a task whose worker died, while retries allow (actor
     * calls are not: they keep their order); then the error stays. A lost
     * argument is made again first. */
    prism_status failure = t->pool->actor || t->cancelled ? PRISM_OK
                                                          : node_failure(p, len, why, sizeof why);
    if (failure == PRISM_ERR_OBJECT_LOST && arguments_lost(c, t, why))
        return;
    if (failure != PRISM_OK && t->attempts_left != 0) {
        prism__task_worker_died(c, t, why, true);
        return;
    }
    prism_reader r = {p, len, 0, NULL, NULL, NULL};
    uint16_t n = pr_u16(&r);
    bool app_error = r.left > 0 && r.p[0] == SLOT_ERROR;
    if (app_error && t->retry_exceptions && t->attempts_left != 0) {
        if (t->attempts_left > 0)
            t->attempts_left--;
        c->tasks_retried++;
        prism__pool_enqueue(c, t, true);
        return;
    }
    for (uint16_t i = 0; i < n && !r.failed; i++) {
        prism_object_id oid;
        prism_object_id_make(&oid, &t->id, i);
        obj_entry *e = prism__obj_find(c, &oid);
        read_return(c, &r, e, name);
        /* A stored value can be lost with its node: keep how to make it again
         * (not for actor calls: running one again would change the actor). */
        if (e && e->state == OBJ_READY && !e->inline_buf && e->lineage != t && !t->pool->actor) {
            e->lineage = t;
            t->lineage_refs++;
        }
    }
    if (r.failed || n != t->num_returns) {
        prism__task_fail(c, t, PRISM_ERR_INTERNAL, "the worker sent a malformed result");
        return;
    }
    c->tasks_finished++;
    char *message = NULL;
    if (app_error) { /* the first return's error slot: status, task, message */
        prism_reader er = {p, len, 0, NULL, NULL, NULL};
        pr_u16(&er);
        pr_u8(&er);
        pr_u8(&er);
        free(pr_str(&er));
        message = pr_str(&er);
    }
    prism__event_task(c, t, app_error ? TASK_EV_FAILED : TASK_EV_FINISHED, message);
    free(message);
    prism__task_release(c, t);
}

void prism__lost_message(const obj_entry *e, char *msg, size_t n)
{
    char hex[PRISM_OBJECT_ID_HEX_LEN + 1];
    prism_object_id_to_hex(&e->id, hex);
    const char *why = prism_object_id_index(&e->id) >= PRISM_PUT_INDEX_BASE
                          ? "it was made by put, which leaves no task to run again"
                      : e->lineage ? "the task that made it has no retries left (max_retries)"
                                   : "no task is kept to make it again (an actor call's result)";
    bool node = e->node_id && *e->node_id;
    snprintf(msg, n, "object %s%s%s%s is lost and cannot be made again: %s", hex,
             node ? ", stored on node " : "", node ? e->node_id : "", node ? "," : "", why);
}

bool prism__reconstruct(prism_client *c, obj_entry *e)
{
    task_spec *t = e->lineage;
    /* Each run again uses one of the task's retries, as in Ray: a result
     * that keeps getting lost is not made forever. */
    if (!t || (!t->in_flight && t->attempts_left == 0))
        return false;
    for (int i = 0; i < t->num_returns; i++) {
        prism_object_id oid;
        prism_object_id_make(&oid, &t->id, (uint32_t)i);
        obj_entry *r = prism__obj_find(c, &oid);
        if (r && r->lost) {
            r->lost = false;
            r->state = OBJ_PENDING;
        }
    }
    if (t->in_flight)
        return true; /* already running again: its DONE sets every return */
    if (t->attempts_left > 0)
        t->attempts_left--;
    c->tasks_retried++;
    queue_when_ready(c, t, false); /* its own arguments may be lost too */
    return true;
}

void prism__task_worker_died(prism_client *c, task_spec *t, const char *why, bool may_have_run)
{
    if (t->cancelled) {
        prism__task_fail(c, t, PRISM_ERR_CANCELLED,
                         "cancelled while it ran (its worker was killed)");
        return;
    }
    if (!may_have_run) {
        prism__pool_enqueue(c, t, true);
        return;
    }
    if (t->attempts_left != 0) {
        if (t->attempts_left > 0)
            t->attempts_left--;
        c->tasks_retried++;
        prism__pool_enqueue(c, t, true);
        return;
    }
    char msg[512];
    if (t->pool->actor) {
        snprintf(msg, sizeof msg,
                 "the actor %s died while the call ran (%s); max_task_retries "
                 "allows no more tries",
                 t->pool->actor->id, why);
        prism__task_fail(c, t, PRISM_ERR_ACTOR_DIED, msg);
        return;
    }
    snprintf(msg, sizeof msg, "the worker died and no retries are left: %s", why);
    prism__task_fail(c, t, PRISM_ERR_WORKER_DIED, msg);
}

/* Takes the task with `id` out of its pool's queue. Lock held. */
static task_spec *unqueue(prism_client *c, const prism_task_id *id)
{
    for (pool *p = c->pools; p; p = p->next) {
        task_spec *prev = NULL;
        for (task_spec *t = p->queue; t; prev = t, t = t->next) {
            if (memcmp(t->id.b, id->b, sizeof id->b) != 0)
                continue;
            if (t->deps_pending > 0) { /* an actor call: dropped when it reaches the front */
                if (!t->dep_failed)
                    prism__task_fail_returns(c, t, PRISM_ERR_CANCELLED, "cancelled before it ran");
                t->dep_failed = true;
                return NULL;
            }
            if (prev)
                prev->next = t->next;
            else
                p->queue = t->next;
            if (p->queue_tail == t)
                p->queue_tail = prev;
            p->queued--;
            t->next = NULL;
            return t;
        }
    }
    return NULL;
}

/* The connection running the task `id`, if one is. Lock held. */
static worker_conn *running_on(prism_client *c, const prism_task_id *id, task_spec **task)
{
    for (pool *p = c->pools; p; p = p->next)
        for (worker_conn *w = p->workers; w; w = w->next)
            for (task_spec *t = w->running; t; t = t->next)
                if (!memcmp(t->id.b, id->b, sizeof id->b)) {
                    *task = t;
                    return w;
                }
    return NULL;
}

/* The task `id` waiting for its arguments (in some object's waiter list). Lock held. */
static task_spec *waiting_task(prism_client *c, const prism_task_id *id)
{
    for (size_t i = 0; i < c->nbuckets; i++)
        for (obj_entry *e = c->buckets[i]; e; e = e->next)
            for (size_t k = 0; k < e->nwaiters; k++)
                if (!memcmp(e->waiters[k]->id.b, id->b, sizeof id->b))
                    return e->waiters[k];
    return NULL;
}

prism_status prism_cancel(prism_client *c, const prism_ref *ref, bool force)
{
    if (!c || !ref || ref->owner)
        return prism__fail(PRISM_ERR_INVALID, "cancel needs a reference this process owns");
    prism_task_id id;
    prism_object_id_task(&ref->id, &id);
    pthread_mutex_lock(&c->lock);
    task_spec *t = unqueue(c, &id);
    if (t)
        prism__task_fail(c, t, PRISM_ERR_CANCELLED, "cancelled before it ran");
    obj_entry *e = prism__obj_find(c, &ref->id);
    bool settled = !e || e->state != OBJ_PENDING;
    task_spec *running = NULL, *waiting = NULL;
    worker_conn *w = t || settled ? NULL : running_on(c, &id, &running);
    if (!t && !settled && !w)
        waiting = waiting_task(c, &id);
    char subject[160] = "", lease[96] = "", actor[PRISM_ID_HEX_LEN + 1] = "";
    prism_status s = PRISM_OK;
    if (t || settled) {
    } else if (waiting) { /* it is let go once its arguments settle */
        if (!waiting->dep_failed)
            prism__task_fail_returns(c, waiting, PRISM_ERR_CANCELLED,
                                     "cancelled while it waited for its arguments");
        waiting->dep_failed = true;
    } else if (!w) {
        s = prism__fail(PRISM_ERR_INVALID, "the task is neither queued, waiting nor running here");
    } else if (w->pool->actor) {
        /* Still queued at the actor: dropped there. Running: only force stops
         * it, by killing the actor's worker (restarted as after a crash). */
        prism__conn_cancel(c, w, &id);
        if (force) {
            running->cancelled = true;
            snprintf(actor, sizeof actor, "%s", w->pool->actor->id);
        }
    } else if (!force) {
        s = prism__fail(PRISM_ERR_INVALID, "the task is running: cancel it with force, which "
                                           "kills its worker");
    } else {
        /* As in Ray, force kills the worker: its other pipelined tasks are retried. */
        running->cancelled = true;
        prism_subject_node(subject, sizeof subject, w->node_id, PRISM_NODE_WORKER_KILL);
        snprintf(lease, sizeof lease, "%s", w->lease_id);
    }
    pthread_mutex_unlock(&c->lock);
    if (actor[0])
        s = prism__actor_kill_id(c, actor, false);
    if (subject[0]) {
        json_t *req = json_pack("{s:s}", "lease_id", lease), *reply = NULL;
        int rc = prism_bus_request_json(c->bus, subject, req, 5000, &reply);
        json_decref(req);
        if (rc != PRISM_BUS_OK || !json_is_true(json_object_get(reply, "ok")))
            s = prism__fail(PRISM_ERR_INTERNAL, "the node agent did not kill the task's worker");
        json_decref(reply);
    }
    return s;
}

prism_status prism_pending_reason(prism_client *c, const prism_ref *ref, char *buf, size_t len)
{
    if (!c || !ref || !buf || !len)
        return prism__fail(PRISM_ERR_INVALID, "pending_reason needs a reference and a buffer");
    buf[0] = '\0';
    prism_task_id id;
    prism_object_id_task(&ref->id, &id);
    pthread_mutex_lock(&c->lock);
    obj_entry *e = prism__obj_find(c, &ref->id);
    for (pool *p = c->pools; e && e->state == OBJ_PENDING && p && !buf[0]; p = p->next)
        for (task_spec *t = p->queue; t && !buf[0]; t = t->next)
            if (!memcmp(t->id.b, id.b, sizeof id.b))
                snprintf(buf, len, "%s",
                         p->pending_reason ? p->pending_reason : "queued for a worker");
    if (e && e->state == OBJ_PENDING && !buf[0])
        snprintf(buf, len, "running, or waiting for its arguments");
    pthread_mutex_unlock(&c->lock);
    return PRISM_OK;
}

static bool has_lost_argument(prism_client *c, const task_spec *t)
{
    for (size_t i = 0; i < t->nargs; i++) {
        const prism_ref *r = prism_value_get_ref(t->args[i]);
        obj_entry *e = r ? prism__obj_find(c, &r->id) : NULL;
        if (e && !e->owner && e->lost && e->state == OBJ_READY)
            return true;
    }
    return false;
}

void prism__tasks_args_lost(prism_client *c)
{
    /* Taken out of their queues first: rebuilding pushes, which changes queues.
     * (An actor's calls keep their order: they fail if an argument is gone.) */
    task_spec *taken = NULL, **tail = &taken;
    for (pool *p = c->pools; p; p = p->next) {
        if (p->actor)
            continue;
        *tail = prism__pool_take(c, p, has_lost_argument);
        while (*tail)
            tail = &(*tail)->next;
    }
    for (task_spec *t = taken, *next; t; t = next) {
        next = t->next;
        t->next = NULL;
        queue_when_ready(c, t, false);
    }
}
