/* Actors on the caller's side: creating them through the GCS, handles, and
 * calls pushed straight to the actor's worker (docs/actors.md).
 *
 * Each actor a client knows has a record and a pool of its own: the pool's
 * queue keeps the calls in the order they were made, its one connection goes
 * to the actor's worker. The leaser thread connects once the actor is ALIVE
 * and asks the GCS again whenever the connection drops (the actor may have
 * restarted elsewhere); `prism.event.actor` tells it sooner. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "codec.h"
#include "dag_internal.h"
#include "prism_subjects.h"
#include "prism_time.h"
#include "prism_wire.h"

#define GCS_REQUEST_MS 10000
#define QUERY_EVERY_MS 500 /* while not ALIVE, in case an event was missed */

struct prism_actor {
    prism_client *client;
    char id[PRISM_ID_HEX_LEN + 1];
};

static const char *const state_names[] = {"UNKNOWN", "PENDING_CREATION", "ALIVE", "RESTARTING",
                                          "DEAD"};

static int state_of(const char *name)
{
    for (int i = 1; name && i < 5; i++)
        if (!strcmp(name, state_names[i]))
            return i;
    return ACTOR_UNKNOWN;
}

/* FNV-1a of an actor ID. */
static size_t id_hash(const char *id)
{
    uint64_t h = 1469598103934665603ull;
    for (; *id; id++)
        h = (h ^ (uint8_t)*id) * 1099511628211ull;
    return (size_t)h;
}

/* The record of actor `id`, or NULL. Lock held. */
static actor_rec *find_rec(prism_client *c, const char *id)
{
    if (!c->actor_nbuckets)
        return NULL;
    for (actor_rec *a = c->actor_index[id_hash(id) & (c->actor_nbuckets - 1)]; a; a = a->hnext)
        if (!strcmp(a->id, id))
            return a;
    return NULL;
}

/* Room in the index for one more record: 0, or -1 out of memory. */
static int index_room(prism_client *c)
{
    if (c->nactors < c->actor_nbuckets)
        return 0;
    size_t n = c->actor_nbuckets ? 2 * c->actor_nbuckets : 4;
    actor_rec **v = calloc(n, sizeof *v);
    if (!v)
        return -1;
    for (actor_rec *a = c->actors; a; a = a->next) {
        size_t k = id_hash(a->id) & (n - 1);
        a->hnext = v[k];
        v[k] = a;
    }
    free(c->actor_index);
    c->actor_index = v;
    c->actor_nbuckets = n;
    return 0;
}

/* The record of actor `id`, made when new. Lock held. */
static actor_rec *rec_for(prism_client *c, const char *id)
{
    actor_rec *a = find_rec(c, id);
    if (a)
        return a;
    if (index_room(c) != 0 || !(a = calloc(1, sizeof *a)))
        return NULL;
    snprintf(a->id, sizeof a->id, "%s", id);
    if (!(a->pool = prism__pool_for_actor(c, a))) {
        free(a);
        return NULL;
    }
    a->next = c->actors;
    c->actors = a;
    size_t k = id_hash(a->id) & (c->actor_nbuckets - 1);
    a->hnext = c->actor_index[k];
    c->actor_index[k] = a;
    c->nactors++;
    return a;
}

static void set_text(char **field, json_t *value)
{
    free(*field);
    *field = json_is_string(value) && *json_string_value(value) ? strdup(json_string_value(value))
                                                                : NULL;
}

/* Where a state comes in an actor's life: an answer to a query sent before
 * an event came may arrive after it, and must not take the actor back (an
 * ALIVE actor seen as PENDING again would wait for the next query). Each
 * restart begins a new life (RESTARTING, with `restarts` one more). */
static bool is_older(const actor_rec *a, int state, int64_t restarts)
{
    if (a->state == ACTOR_DEAD || restarts < a->restarts)
        return true;
    return restarts == a->restarts && a->state == ACTOR_ALIVE && state != ACTOR_ALIVE &&
           state != ACTOR_DEAD;
}

/* Takes what the GCS says of an actor (ACTOR of docs/actors.md). Lock held. */
static void rec_update(actor_rec *a, json_t *j)
{
    int state = state_of(json_string_value(json_object_get(j, "state")));
    json_t *restarts = json_object_get(j, "restarts");
    int64_t n = json_is_integer(restarts) ? (int64_t)json_integer_value(restarts) : a->restarts;
    if (state == ACTOR_UNKNOWN || is_older(a, state, n))
        return;
    a->state = state;
    a->restarts = n;
    set_text(&a->cause, json_object_get(j, "cause"));
    if (json_is_string(json_object_get(j, "class")))
        set_text(&a->cls, json_object_get(j, "class"));
    set_text(&a->node_id, json_object_get(j, "node_id"));
    set_text(&a->worker_id, json_object_get(j, "worker_id"));
    set_text(&a->unix_path, json_object_get(j, "unix"));
    set_text(&a->tcp, json_object_get(j, "tcp"));
    json_t *retries = json_object_get(j, "max_task_retries");
    if (json_is_integer(retries))
        a->max_task_retries = (int)json_integer_value(retries);
    if (state == ACTOR_ALIVE && !a->tcp && !a->unix_path)
        a->state = ACTOR_UNKNOWN; /* an address is missing: ask again */
}

static void on_actor_event(prism_bus *bus, const char *subject, const char *reply, const char *data,
                           size_t len, void *ud)
{
    prism_client *c = ud;
    json_t *ev = json_loadb(data, len, 0, NULL);
    const char *id = json_string_value(json_object_get(ev, "actor_id"));
    if (id) {
        pthread_mutex_lock(&c->lock);
        actor_rec *a = find_rec(c, id);
        if (a) {
            rec_update(a, ev);
            pthread_cond_signal(&c->leaser_wake);
        }
        pthread_mutex_unlock(&c->lock);
    }
    json_decref(ev);
}

/* A client follows actor events from the first actor it knows of: a process
 * that never uses actors (most workers) is not woken by every state change
 * of every actor in the cluster. The subscription is in place before the
 * request that makes or looks up the actor, so no event of it is missed. */
static prism_status follow_actor_events(prism_client *c)
{
    if (__atomic_load_n(&c->actor_events, __ATOMIC_ACQUIRE))
        return PRISM_OK;
    pthread_mutex_lock(&c->events_lock);
    int rc = PRISM_BUS_OK;
    if (!c->actor_events) {
        rc = prism_bus_subscribe(c->bus, PRISM_SUBJECT_EVENT_ACTOR, NULL, on_actor_event, c);
        if (rc == PRISM_BUS_OK)
            __atomic_store_n(&c->actor_events, true, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&c->events_lock);
    return rc == PRISM_BUS_OK ? PRISM_OK
                              : prism__fail(PRISM_ERR_CONNECT, "cannot subscribe to actor events");
}

void prism__actors_free(prism_client *c)
{
    for (actor_rec *a = c->actors, *next; a; a = next) {
        next = a->next;
        free(a->cause);
        free(a->cls);
        free(a->node_id);
        free(a->worker_id);
        free(a->unix_path);
        free(a->tcp);
        free(a);
    }
    c->actors = NULL;
    free(c->actor_index);
    c->actor_index = NULL;
    c->actor_nbuckets = c->nactors = 0;
}

/* A request to the GCS about actors; `*reply` is its JSON. */
static prism_status gcs_request(prism_client *c, const char *subject, const void *body, size_t len,
                                json_t **reply)
{
    char *data = NULL;
    size_t n = 0;
    *reply = NULL;
    int rc = prism_bus_request(c->bus, subject, body, len, GCS_REQUEST_MS, &data, &n);
    if (rc == PRISM_BUS_NO_RESPONDERS)
        return prism__fail(PRISM_ERR_CONNECT, "no GCS answers %s", subject);
    if (rc != PRISM_BUS_OK)
        return prism__fail(PRISM_ERR_CONNECT, "the GCS did not answer %s in time", subject);
    *reply = json_loadb(data, n, 0, NULL);
    free(data);
    if (!json_is_object(*reply)) {
        json_decref(*reply);
        *reply = NULL;
        return prism__fail(PRISM_ERR_INTERNAL, "the GCS answered %s with something else than JSON",
                           subject);
    }
    json_t *err = json_object_get(*reply, "error");
    if (err) {
        prism_status s =
            prism__fail(PRISM_ERR_INVALID, "%s",
                        json_string_value(json_object_get(err, "message")) ?: "refused");
        json_decref(*reply);
        *reply = NULL;
        return s;
    }
    return PRISM_OK;
}

static prism_status gcs_request_json(prism_client *c, const char *subject, json_t *req,
                                     json_t **reply)
{
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!text)
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    prism_status s = gcs_request(c, subject, text, strlen(text), reply);
    free(text);
    return s;
}

/* Its callers follow actor events already (before their request to the GCS). */
static prism_status make_handle(prism_client *c, const char *id, json_t *actor, prism_actor **out)
{
    prism_actor *h = calloc(1, sizeof *h);
    if (!h)
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    h->client = c;
    snprintf(h->id, sizeof h->id, "%s", id);
    pthread_mutex_lock(&c->lock);
    actor_rec *a = rec_for(c, id);
    if (a && actor)
        rec_update(a, actor);
    pthread_mutex_unlock(&c->lock);
    if (!a) {
        free(h);
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    }
    *out = h;
    return PRISM_OK;
}

static const char *namespace_of(const char *ns)
{
    if (ns && *ns)
        return ns;
    const char *env = getenv("PRISM_NAMESPACE");
    return env && *env ? env : "default";
}

/* The constructor's arguments as a PUSH carries them. References are waited
 * for first: the GCS keeps these bytes to run the constructor again. */
static prism_status encode_args(prism_client *c, prism_value *const *args, size_t nargs,
                                prism_buf *out)
{
    for (size_t i = 0; i < nargs; i++) {
        const prism_ref *r = prism_value_get_ref(args[i]);
        if (!r)
            continue;
        prism_value *v = NULL;
        prism_status s = prism_get(c, r, 60000, &v);
        prism_value_free(v);
        if (s != PRISM_OK)
            return prism__fail(s, "constructor argument %zu: %s", i, prism_last_error());
    }
    prism_writer w = {.buf = out};
    pw_u32(&w, (uint32_t)nargs);
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < nargs; i++)
        prism__write_arg(c, &w, args[i]);
    pthread_mutex_unlock(&c->lock);
    return w.failed ? prism__fail(PRISM_ERR_NO_MEMORY, "the constructor arguments are too large")
                    : PRISM_OK;
}

/* The arguments that live in an object store are held by the GCS too (a
 * restart after the caller dropped them still finds them): the GCS is
 * registered as their borrower here, before the create request, and lets
 * go once the actor is DEAD. Those are the top-level references whose value
 * is stored (an inline one travels in the arguments) and every reference
 * inside a list argument (the constructor gets it as a reference). */
typedef struct gcs_holds {
    json_t *list;           /* [{object_id, owner}] for the GCS */
    const prism_ref **refs; /* the same, to undo them */
    size_t n, cap;
} gcs_holds;

static void hold_one(prism_client *c, gcs_holds *h, const prism_ref *r)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 8;
        const prism_ref **more = realloc(h->refs, cap * sizeof *more);
        if (!more)
            return;
        h->refs = more;
        h->cap = cap;
    }
    prism__borrow_add_for(c, r, WIRE_GCS_BORROWER);
    h->refs[h->n++] = r;
    json_array_append_new(h->list, json_pack("{s:s,s:s}", "object_id", r->hex, "owner",
                                             r->owner ? r->owner : c->self_addr));
}

static void hold_inside(prism_client *c, gcs_holds *h, const prism_value *v, int depth)
{
    for (size_t i = 0; depth < 64 && i < prism_value_list_size(v); i++) {
        const prism_value *item = prism_value_list_get(v, i);
        const prism_ref *r = prism_value_get_ref(item);
        if (r)
            hold_one(c, h, r);
        else if (prism_value_kind_of(item) == PRISM_VALUE_LIST)
            hold_inside(c, h, item, depth + 1);
    }
}

static void hold_for_gcs(prism_client *c, prism_value *const *args, size_t nargs, gcs_holds *h)
{
    if (!(h->list = json_array()))
        return;
    for (size_t i = 0; i < nargs; i++) {
        const prism_ref *r = prism_value_get_ref(args[i]);
        if (!r) {
            if (prism_value_kind_of(args[i]) == PRISM_VALUE_LIST)
                hold_inside(c, h, args[i], 0);
            continue;
        }
        pthread_mutex_lock(&c->lock);
        obj_entry *e = prism__obj_find(c, &r->id);
        bool stored = e && e->state == OBJ_READY && !e->inline_buf; /* as prism__write_arg */
        pthread_mutex_unlock(&c->lock);
        if (stored)
            hold_one(c, h, r);
    }
}

/* Undoes hold_for_gcs (`undo`: the GCS never took them) and frees `h`. */
static void holds_done(prism_client *c, gcs_holds *h, bool undo)
{
    for (size_t i = 0; undo && i < h->n; i++)
        prism__borrow_remove_for(c, h->refs[i], WIRE_GCS_BORROWER);
    json_decref(h->list);
    free(h->refs);
}

void prism_actor_options_init(prism_actor_options *opts)
{
    if (opts)
        *opts = (prism_actor_options)PRISM_ACTOR_OPTIONS_INIT;
}

static prism_status check_options(const prism_actor_options *o)
{
    if (!PRISM__RESERVED_ZERO(o))
        return prism__fail(PRISM_ERR_INVALID, "prism_actor_options: `reserved` is not zero "
                                              "(initialize it with PRISM_ACTOR_OPTIONS_INIT)");
    prism_status s = prism__check_amounts(o->num_cpus, o->num_gpus, o->memory, o->resources,
                                          o->strategy, o->node_id);
    if (s != PRISM_OK)
        return s;
    if (o->max_restarts < -1 || o->max_task_retries < -1)
        return prism__fail(PRISM_ERR_INVALID,
                           "max_restarts and max_task_retries are -1 (forever) or more");
    if (o->placement_group && o->bundle_index < -1)
        return prism__fail(PRISM_ERR_INVALID, "bundle_index is -1 (any bundle) or more");
    if (o->max_concurrency < 1 || o->max_concurrency > 1024)
        return prism__fail(PRISM_ERR_INVALID, "max_concurrency must be 1-1024");
    if ((o->name && strlen(o->name) > 256) || (o->ns && strlen(o->ns) > 256))
        return prism__fail(PRISM_ERR_INVALID, "names and namespaces are at most 256 bytes");
    return PRISM_OK;
}

prism_status prism_actor_create(prism_client *c, const char *package, const char *cls,
                                prism_value *const *args, size_t nargs,
                                const prism_actor_options *opts, prism_actor **out)
{
    static const prism_actor_options defaults = PRISM_ACTOR_OPTIONS_INIT;
    const prism_actor_options *o = opts ? opts : &defaults;
    if (out)
        *out = NULL;
    if (!c || !package || !*package || !cls || !*cls || !out || (nargs && !args))
        return prism__fail(PRISM_ERR_INVALID, "actor_create needs a client, a package and a class");
    for (size_t i = 0; i < nargs; i++)
        if (!args[i] || prism__value_on_device(args[i]))
            return prism__fail(PRISM_ERR_INVALID,
                               args[i] ? "argument %zu " PRISM__ON_DEVICE : "argument %zu is NULL",
                               i);
    prism_status s = check_options(o);
    if (s == PRISM_OK)
        s = follow_actor_events(c);
    if (s != PRISM_OK)
        return s;
    prism_id id;
    prism_id_random(&id);
    char hex[PRISM_ID_HEX_LEN + 1];
    prism_id_to_hex(&id, hex);

    prism_task_options shape = PRISM_TASK_OPTIONS_INIT;
    shape.num_cpus = o->num_cpus;
    shape.num_gpus = o->num_gpus;
    shape.memory = o->memory;
    shape.resources = o->resources;
    shape.strategy = o->strategy;
    shape.node_id = o->node_id;
    shape.soft = o->soft;
    shape.placement_group = o->placement_group;
    shape.bundle_index = o->bundle_index;
    prism_buf argbuf;
    prism_buf_init(&argbuf, 64u << 20);
    s = encode_args(c, args, nargs, &argbuf);
    if (s != PRISM_OK) {
        prism_buf_free(&argbuf);
        return s;
    }
    gcs_holds held = {0};
    hold_for_gcs(c, args, nargs, &held);
    json_t *lease = prism__lease_request(c, &shape);
    json_t *req = json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:i,s:i,s:i,s:O,s:O}", "actor_id", hex,
                            "owner", c->self_addr, "package", package, "class", cls, "namespace",
                            namespace_of(o->ns), "detached", o->detached, "max_restarts",
                            o->max_restarts, "max_task_retries", o->max_task_retries,
                            "max_concurrency", o->max_concurrency, "resources",
                            json_object_get(lease, "resources"), "strategy",
                            json_object_get(lease, "strategy"));
    if (req && o->name && *o->name)
        json_object_set_new(req, "name", json_string(o->name));
    if (req && o->strategy == PRISM_STRATEGY_NODE_AFFINITY) {
        json_object_set(req, "node_id", json_object_get(lease, "node_id"));
        json_object_set(req, "soft", json_object_get(lease, "soft"));
    }
    if (req && o->placement_group) {
        json_object_set(req, "placement_group_id", json_object_get(lease, "placement_group_id"));
        json_object_set(req, "bundle_index", json_object_get(lease, "bundle_index"));
    }
    if (req && json_array_size(held.list))
        json_object_set(req, "arg_refs", held.list);
    json_decref(lease);
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    /* u32 length, the JSON, then the arguments. */
    prism_buf body;
    prism_buf_init(&body, 64u << 20);
    prism_writer w = {.buf = &body};
    bool encoded = text != NULL;
    if (text) {
        pw_str(&w, text);
        pw_bytes(&w, argbuf.data, argbuf.len);
    }
    free(text);
    prism_buf_free(&argbuf);
    s = !encoded   ? prism__fail(PRISM_ERR_INVALID, "the actor's options cannot be encoded (a name "
                                                      "that is not UTF-8?)")
        : w.failed ? prism__fail(PRISM_ERR_NO_MEMORY, "the constructor arguments are too large")
                   : PRISM_OK;
    /* The record exists before the GCS hears of the actor: its ALIVE event
     * may come before the GCS's answer does. */
    pthread_mutex_lock(&c->lock);
    actor_rec *a = s == PRISM_OK ? rec_for(c, hex) : NULL;
    if (a) {
        a->state = ACTOR_PENDING;
        a->max_task_retries = o->max_task_retries;
        a->next_query_ms = prism_mono_ms() + QUERY_EVERY_MS; /* its events come first */
        a->cls = strdup(cls);
    }
    pthread_mutex_unlock(&c->lock);
    if (s == PRISM_OK && !a)
        s = prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    json_t *reply = NULL;
    if (s == PRISM_OK)
        s = gcs_request(c, PRISM_SUBJECT_ACTOR_CREATE, body.data, body.len, &reply);
    prism_buf_free(&body);
    json_decref(reply);
    holds_done(c, &held, s != PRISM_OK);
    if (s != PRISM_OK) {
        pthread_mutex_lock(&c->lock);
        if (a) { /* never created: calls through a stale handle fail, not wait */
            a->state = ACTOR_DEAD;
            free(a->cause);
            a->cause = strdup("it was never created");
        }
        pthread_mutex_unlock(&c->lock);
        return s;
    }
    return make_handle(c, hex, NULL, out);
}

prism_status prism_actor_get(prism_client *c, const char *name, const char *ns, prism_actor **out)
{
    if (out)
        *out = NULL;
    if (!c || !name || !*name || !out)
        return prism__fail(PRISM_ERR_INVALID, "actor_get needs a client and a name");
    json_t *reply = NULL;
    prism_status s = follow_actor_events(c);
    if (s != PRISM_OK)
        return s;
    s = gcs_request_json(c, PRISM_SUBJECT_ACTOR_GET,
                         json_pack("{s:s,s:s}", "name", name, "namespace", namespace_of(ns)),
                         &reply);
    json_t *actor = json_object_get(reply, "actor");
    const char *id = json_string_value(json_object_get(actor, "actor_id"));
    if (s == PRISM_OK && !id)
        s = prism__fail(PRISM_ERR_INTERNAL, "the GCS named no actor ID");
    if (s == PRISM_OK)
        s = make_handle(c, id, actor, out);
    json_decref(reply);
    return s;
}

prism_status prism_actor_open(prism_client *c, const char *actor_id, prism_actor **out)
{
    if (out)
        *out = NULL;
    if (!c || !out || !prism_is_hex(actor_id, PRISM_ID_HEX_LEN))
        return prism__fail(PRISM_ERR_INVALID, "an actor ID is 32 lowercase hex digits");
    json_t *reply = NULL;
    prism_status s = follow_actor_events(c);
    if (s == PRISM_OK)
        s = gcs_request_json(c, PRISM_SUBJECT_ACTOR_GET, json_pack("{s:s}", "actor_id", actor_id),
                             &reply);
    if (s == PRISM_OK)
        s = make_handle(c, actor_id, json_object_get(reply, "actor"), out);
    json_decref(reply);
    return s;
}

prism_status prism__actor_kill_id(prism_client *c, const char *actor_id, bool no_restart)
{
    json_t *reply = NULL;
    prism_status s = gcs_request_json(
        c, PRISM_SUBJECT_ACTOR_KILL,
        json_pack("{s:s,s:b}", "actor_id", actor_id, "no_restart", no_restart), &reply);
    json_decref(reply);
    return s;
}

prism_status prism_actor_kill(prism_client *c, const prism_actor *a, bool no_restart)
{
    if (!c || !a)
        return prism__fail(PRISM_ERR_INVALID, "actor_kill needs a client and a handle");
    return prism__actor_kill_id(c, a->id, no_restart);
}

prism_status prism_actor_call(prism_client *c, prism_actor *a, const char *method,
                              prism_value *const *args, size_t nargs, int num_returns,
                              prism_ref **returns)
{
    if (!c || !a || !method || !*method)
        return prism__fail(PRISM_ERR_INVALID, "actor_call needs a client, a handle and a method");
    prism_status s = follow_actor_events(c); /* a handle made by another client */
    if (s != PRISM_OK)
        return s;
    pthread_mutex_lock(&c->lock);
    actor_rec *rec = rec_for(c, a->id);
    pool *p = rec ? rec->pool : NULL;
    prism_task_options o = PRISM_TASK_OPTIONS_INIT;
    o.num_returns = num_returns;
    o.max_retries = rec ? rec->max_task_retries : 0;
    pthread_mutex_unlock(&c->lock);
    if (!p)
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    return prism__submit(c, p, a->id, method, args, nargs, &o, returns);
}

const char *prism_actor_id(const prism_actor *a) { return a ? a->id : ""; }

void prism_actor_release(prism_actor *a) { free(a); }

prism_actor *prism__actor_dup(const prism_actor *a)
{
    prism_actor *h = malloc(sizeof *h);
    if (h)
        *h = *a;
    return h;
}

/* ---------- the leaser's part ---------- */

/* The Unix socket first, as for task workers: a driver may not know its
 * node, and a path of another machine just does not connect (then TCP). */
static void connect_actor(prism_client *c, actor_rec *a)
{
    json_t *grant = json_pack("{s:s,s:s,s:s,s:s,s:s}", "unix", a->unix_path ? a->unix_path : "",
                              "tcp", a->tcp ? a->tcp : "", "lease_id", "", "node_id",
                              a->node_id ? a->node_id : "", "worker_id",
                              a->worker_id ? a->worker_id : "");
    a->busy = true;
    pthread_mutex_unlock(&c->lock);
    bool config_error = false;
    char err[600] = "";
    worker_conn *wc = grant ? prism__worker_connect(c, grant, &config_error, err, sizeof err)
                            : NULL;
    json_decref(grant);
    pthread_mutex_lock(&c->lock);
    a->busy = false;
    if (wc) {
        prism__pool_add_worker(c, a->pool, wc);
    } else if (config_error) { /* e.g. TLS without a CA: the calls fail, the actor lives */
        char msg[700];
        snprintf(msg, sizeof msg, "the actor %s cannot be reached: %s", a->id, err);
        prism__pool_fail_queued(c, a->pool, PRISM_ERR_CONNECT, msg);
    } else if (a->state != ACTOR_DEAD) {
        a->state = ACTOR_UNKNOWN; /* gone from that address: ask where it is now */
        a->next_query_ms = prism_mono_ms() + 100;
    }
}

/* Asks the GCS where the actor is, without waiting: the answer comes to
 * the leaser as a lease request's does (prism__actor_answered). */
static void query_actor(prism_client *c, actor_rec *a)
{
    json_t *req = json_pack("{s:s}", "actor_id", a->id);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    a->busy = true;
    a->query_id = ++c->lease_seq;
    a->query_ms = prism_mono_ms();
    char reply[sizeof c->lease_subject + 24];
    snprintf(reply, sizeof reply, "%s.%llu", c->lease_subject, (unsigned long long)a->query_id);
    pthread_mutex_unlock(&c->lock);
    int rc =
        body ? prism_bus_publish_request(c->bus, PRISM_SUBJECT_ACTOR_GET, reply, body, strlen(body))
             : PRISM_BUS_ERROR;
    free(body);
    pthread_mutex_lock(&c->lock);
    if (rc != PRISM_BUS_OK)
        prism__actor_answered(c, a->query_id, NULL);
}

bool prism__actor_answered(prism_client *c, uint64_t id, json_t *body)
{
    actor_rec *a = c->actors;
    while (a && a->query_id != id)
        a = a->next;
    if (!a || !id)
        return false;
    a->busy = false;
    a->query_id = 0;
    a->next_query_ms = prism_mono_ms() + QUERY_EVERY_MS;
    json_t *actor = json_object_get(body, "actor");
    const char *refused =
        json_string_value(json_object_get(json_object_get(body, "error"), "message"));
    if (actor) {
        rec_update(a, actor);
    } else if (json_object_get(body, "error")) { /* the GCS does not know it */
        a->state = ACTOR_DEAD;
        free(a->cause);
        a->cause = strdup(refused ? refused : "refused");
    }
    return true;
}

/* Calls to a dead actor fail; those still waiting for arguments go once
 * their arguments settle (dispatch drops them then). */
static void fail_queued(prism_client *c, actor_rec *a)
{
    char msg[600];
    snprintf(msg, sizeof msg, "the actor %s is dead: %s", a->id,
             a->cause ? a->cause : "no cause given");
    prism__pool_fail_queued(c, a->pool, PRISM_ERR_ACTOR_DIED, msg);
}

/* Tells the GCS how many calls to each actor are queued here, not sent yet
 * (a stuck actor's callers hold them): twice a second at most while that
 * changes, every 5 s while some are queued, at once when none are left
 * (`final`: none are, the client goes). Lock held (dropped to publish). */
static void report_queued(prism_client *c, int64_t now, bool final)
{
    json_t *out = NULL;
    for (actor_rec *a = c->actors; a; a = a->next) {
        size_t n = final ? 0 : a->pool->queued;
        bool changed = n != a->reported_queued;
        if ((!changed && !n) || (n && now - a->reported_ms < (changed ? 500 : 5000)))
            continue;
        if (!out && !(out = json_array()))
            return;
        json_array_append_new(out, json_pack("{s:s,s:s,s:I}", "actor_id", a->id, "caller",
                                             c->self_addr, "queued", (json_int_t)n));
        a->reported_queued = n;
        a->reported_ms = now;
    }
    if (!out)
        return;
    pthread_mutex_unlock(&c->lock);
    size_t i;
    json_t *msg;
    json_array_foreach(out, i, msg)
        prism_bus_publish_json(c->bus, PRISM_SUBJECT_EVENT_ACTOR_QUEUED, msg);
    json_decref(out);
    pthread_mutex_lock(&c->lock);
}

void prism__actors_report_final(prism_client *c) { report_queued(c, prism_mono_ms(), true); }

void prism__actors_tick(prism_client *c)
{
    int64_t now = prism_mono_ms();
    report_queued(c, now, false);
    for (actor_rec *a = c->actors; a; a = a->next) {
        if (a->query_id && now - a->query_ms >= GCS_REQUEST_MS) /* no answer: ask again */
            prism__actor_answered(c, a->query_id, NULL);
        pool *p = a->pool;
        if (!p->queue || p->workers || a->busy)
            continue;
        if (a->state == ACTOR_DEAD)
            fail_queued(c, a);
        else if (a->state == ACTOR_ALIVE)
            connect_actor(c, a);
        else if (now >= a->next_query_ms)
            query_actor(c, a);
    }
}
