/* Connecting, the ownership table, put, get, wait and reference handles. */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "codec.h"
#include "prism_fs.h"
#include "prism_httpc.h"
#include "prism_subjects.h"
#include "prism_time.h"

/* ---------- the ownership table ---------- */

static size_t bucket_of(const prism_client *c, const prism_object_id *id)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < sizeof id->b; i++)
        h = (h ^ id->b[i]) * 1099511628211ULL;
    return (size_t)(h & (c->nbuckets - 1));
}

obj_entry *prism__obj_find(prism_client *c, const prism_object_id *id)
{
    for (obj_entry *e = c->buckets[bucket_of(c, id)]; e; e = e->next)
        if (!memcmp(e->id.b, id->b, sizeof id->b))
            return e;
    return NULL;
}

static void grow_table(prism_client *c)
{
    size_t n = c->nbuckets * 2;
    obj_entry **b = calloc(n, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    obj_entry **old = c->buckets;
    size_t oldn = c->nbuckets;
    c->buckets = b;
    c->nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        for (obj_entry *e = old[i], *next; e; e = next) {
            next = e->next;
            size_t k = bucket_of(c, &e->id);
            e->next = b[k];
            b[k] = e;
        }
    }
    free(old);
}

obj_entry *prism__obj_add(prism_client *c, const prism_object_id *id)
{
    obj_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->id = *id;
    if (c->nobjects + 1 > c->nbuckets)
        grow_table(c);
    size_t k = bucket_of(c, id);
    e->next = c->buckets[k];
    c->buckets[k] = e;
    c->nobjects++;
    return e;
}

static void clear_value(prism_client *c, obj_entry *e)
{
    free(e->inline_buf);
    free(e->node_id);
    free(e->store_socket);
    free(e->store_url);
    e->inline_buf = NULL;
    e->node_id = e->store_socket = e->store_url = NULL;
    e->lost = false;
    prism_object_id *held = e->contained;
    size_t n = e->ncontained;
    e->contained = NULL;
    e->ncontained = 0;
    for (size_t i = 0; i < n; i++)
        prism__obj_unhold(c, &held[i]);
    free(held);
}

/* Tells the tasks waiting on `e` that it is settled. */
static void settle(prism_client *c, obj_entry *e)
{
    task_spec **w = e->waiters;
    size_t n = e->nwaiters;
    e->waiters = NULL;
    e->nwaiters = e->capwaiters = 0;
    for (size_t i = 0; i < n; i++)
        prism__task_dep_done(c, w[i], e);
    free(w);
    prism__borrow_settled(c, e);
    pthread_cond_broadcast(&c->changed);
}

void prism__obj_set_inline(prism_client *c, obj_entry *e, const uint8_t *buf, size_t len)
{
    clear_value(c, e);
    e->inline_buf = malloc(len ? len : 1);
    if (!e->inline_buf) {
        prism__obj_set_failed(c, e, PRISM_ERR_NO_MEMORY, "", "out of memory storing a result");
        return;
    }
    memcpy(e->inline_buf, buf, len);
    e->inline_len = len;
    e->size = len;
    e->state = OBJ_READY;
    settle(c, e);
}

void prism__obj_set_stored(prism_client *c, obj_entry *e, const char *node, const char *socket,
                           const char *url, uint64_t size)
{
    clear_value(c, e);
    e->node_id = strdup(node ? node : "");
    e->store_socket = strdup(socket ? socket : "");
    e->store_url = strdup(url ? url : "");
    e->size = size;
    e->state = OBJ_READY;
    settle(c, e);
}

void prism__obj_set_failed(prism_client *c, obj_entry *e, prism_status s, const char *task,
                           const char *message)
{
    clear_value(c, e);
    prism_value *err = prism_value_error(task, message);
    prism_buf b;
    prism_buf_init(&b, 1u << 20);
    prism_writer w = {.buf = &b};
    if (err)
        pw_value(&w, err, c->self_addr);
    prism_value_free(err);
    e->inline_buf = (uint8_t *)prism_buf_take(&b, &e->inline_len);
    e->error = s;
    e->state = OBJ_FAILED;
    settle(c, e);
}

void prism__obj_set_failed_encoded(prism_client *c, obj_entry *e, prism_status s,
                                   const uint8_t *buf, size_t len)
{
    clear_value(c, e);
    e->inline_buf = malloc(len ? len : 1);
    if (e->inline_buf)
        memcpy(e->inline_buf, buf, len);
    e->inline_len = e->inline_buf ? len : 0;
    e->error = s;
    e->state = OBJ_FAILED;
    settle(c, e);
}

/* Nothing holds the object any more: forget it and free its stored copy
 * (borrowed ones give their registrations back instead). Lock held. */
static void obj_free(prism_client *c, obj_entry *e)
{
    if (!e->owner && e->store_socket && *e->store_socket)
        prism__deletion_add(c, e);
    obj_entry **pp = &c->buckets[bucket_of(c, &e->id)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    c->nobjects--;
    prism__borrow_forget(c, e);
    task_spec *lineage = e->lineage;
    clear_value(c, e);
    free(e->waiters);
    free(e);
    /* Last: freeing the lineage drops its arguments, which may free more entries. */
    if (lineage && --lineage->lineage_refs == 0 && !lineage->in_flight)
        prism__task_free(c, lineage);
}

void prism__obj_maybe_free(prism_client *c, obj_entry *e)
{
    if (e->refs <= 0 && !e->borrowers)
        obj_free(c, e);
}

/* A node died: what its stores held is lost, what its workers ran is retried. */
static void on_node_event(prism_bus *bus, const char *subject, const char *reply, const char *data,
                          size_t len, void *ud)
{
    prism_client *c = ud;
    json_t *ev = json_loadb(data, len, 0, NULL);
    const char *node = json_string_value(json_object_get(ev, "node_id"));
    const char *state = json_string_value(json_object_get(ev, "state"));
    if (node && *node && state && !strcmp(state, "DEAD")) {
        pthread_mutex_lock(&c->lock);
        prism__pools_node_dead(c, node);
        for (size_t i = 0; i < c->nbuckets; i++)
            for (obj_entry *e = c->buckets[i]; e; e = e->next)
                if (e->state == OBJ_READY && !e->inline_buf && e->node_id &&
                    !strcmp(e->node_id, node))
                    e->lost = true;
        prism__tasks_args_lost(c);
        pthread_cond_broadcast(&c->changed);
        pthread_mutex_unlock(&c->lock);
    }
    json_decref(ev);
}

/* ---------- references ---------- */

/* A borrowed entry is registered with its owner only when this process keeps
 * it past the task or get that brought it (prism__borrow_register). */
static void note_unregistered(prism_client *c, const prism_object_id *id)
{
    if (c->nunreg == c->capunreg) {
        size_t cap = c->capunreg ? 2 * c->capunreg : 16;
        prism_object_id *ids = realloc(c->unreg, cap * sizeof *ids);
        if (!ids)
            return;
        c->unreg = ids;
        c->capunreg = cap;
    }
    c->unreg[c->nunreg++] = *id;
}

bool prism__obj_hold(prism_client *c, const prism_object_id *id, const char *owner)
{
    obj_entry *e = prism__obj_find(c, id);
    if (!e && owner && (e = prism__obj_add(c, id))) {
        e->owner = strdup(owner);
        c->nborrowed++;
        note_unregistered(c, id);
    }
    if (e)
        e->refs++;
    return e != NULL;
}

void prism__obj_unhold(prism_client *c, const prism_object_id *id)
{
    obj_entry *e = prism__obj_find(c, id);
    if (e && --e->refs <= 0)
        prism__obj_maybe_free(c, e);
}

prism_ref *prism__ref_new_locked(prism_client *c, const prism_object_id *id, const char *owner)
{
    prism_ref *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->id = *id;
    prism_object_id_to_hex(id, r->hex);
    r->owner = owner ? strdup(owner) : NULL;
    r->client = c;
    if (c && !prism__obj_hold(c, id, owner))
        r->client = NULL; /* already freed: the handle names a lost object */
    return r;
}

prism_ref *prism__ref_new(prism_client *client, const prism_object_id *id, const char *owner)
{
    if (!client)
        return prism__ref_new_locked(NULL, id, owner);
    pthread_mutex_lock(&client->lock);
    prism_ref *r = prism__ref_new_locked(client, id, owner);
    pthread_mutex_unlock(&client->lock);
    return r;
}

prism_ref *prism_ref_dup(const prism_ref *ref)
{
    if (!ref) {
        prism__fail(PRISM_ERR_INVALID, "no reference to duplicate");
        return NULL;
    }
    prism_ref *r = prism__ref_new(ref->client, &ref->id, ref->owner);
    if (!r)
        prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    return r;
}

void prism__ref_drop_locked(prism_client *c, prism_ref *ref)
{
    prism__obj_unhold(c, &ref->id);
    free(ref->owner);
    free(ref);
}

void prism_ref_release(prism_ref *ref)
{
    if (!ref)
        return;
    prism_client *c = ref->client;
    if (c) {
        pthread_mutex_lock(&c->lock);
        prism__ref_drop_locked(c, ref);
        pthread_mutex_unlock(&c->lock);
        return;
    }
    free(ref->owner);
    free(ref);
}

void prism__value_free_locked(prism_client *c, prism_value *v)
{
    if (!v)
        return;
    if (v->ref && v->ref->client == c) {
        prism__ref_drop_locked(c, v->ref);
        v->ref = NULL;
    }
    for (size_t i = 0; i < v->nitems; i++) {
        prism__value_free_locked(c, v->items[i]);
        v->items[i] = NULL;
    }
    prism_value_free(v);
}

int prism__value_refs(const prism_value *v, const prism_ref ***out, size_t *n, size_t *cap)
{
    if (!v)
        return 0;
    if (v->kind == PRISM_VALUE_REF && v->ref) {
        if (*n == *cap) {
            size_t more = *cap ? 2 * *cap : 8;
            const prism_ref **grown = realloc(*out, more * sizeof *grown);
            if (!grown)
                return -1;
            *out = grown;
            *cap = more;
        }
        (*out)[(*n)++] = v->ref;
    }
    for (size_t i = 0; i < v->nitems; i++)
        if (prism__value_refs(v->items[i], out, n, cap) != 0)
            return -1;
    return 0;
}

const char *prism_ref_id(const prism_ref *ref) { return ref ? ref->hex : ""; }

/* ---------- connecting ---------- */

/* "$PRISM_HOME/<name>" (default home ~/.prism), the state of `prism up`. */
static void home_path(char *path, size_t len, const char *name)
{
    const char *home = getenv("PRISM_HOME");
    if (home && *home)
        snprintf(path, len, "%s/%s", home, name);
    else
        snprintf(path, len, "%s/.prism/%s", getenv("HOME") ? getenv("HOME") : ".", name);
}

static char *home_file(const char *name)
{
    char path[4096];
    home_path(path, sizeof path, name);
    char *text = prism_read_file(path, 4096, NULL);
    if (text)
        text[strcspn(text, "\r\n")] = '\0';
    return text;
}

static char *setting(const char *given, const char *env, const char *file)
{
    if (given && *given)
        return strdup(given);
    const char *e = getenv(env);
    if (e && *e)
        return strdup(e);
    return home_file(file);
}

#define HOME_NODE "node-1" /* the first node of `prism up` */
/* connections kept: a consumer releases a block per batch, an owner deletes
 * a stored copy per freed object, each a request to a service or a store */
#define HTTP_IDLE_MAX 8
/* The ID of the node `prism up` named `name`, into c->home_node (left empty
 * when the GCS does not list it). */
static void home_node_id(prism_client *c, prism_httpc *http, const char *name)
{
    long status = 0;
    json_t *doc = NULL;
    char err[256];
    if (prism_httpc_json(http, "GET", "/api/v1/nodes?state=ALIVE&limit=1000", NULL, 10000, &status,
                         &doc, err, sizeof err) == 0 &&
        status == 200) {
        size_t i;
        json_t *n;
        json_array_foreach(json_object_get(doc, "nodes"), i, n) {
            const char *id = json_string_value(json_object_get(n, "node_id"));
            if (id && json_is_string(json_object_get(n, "name")) &&
                !strcmp(json_string_value(json_object_get(n, "name")), name))
                snprintf(c->home_node, sizeof c->home_node, "%s", id);
        }
    }
    json_decref(doc);
}

/* Asks the GCS for what the client needs to know about the cluster. A GCS
 * that does not answer may be restarting (a supervisor brings it back within
 * seconds), so the question is asked again for up to CONNECT_RETRY_MS; a GCS
 * that answers with a refusal is believed at once. */
#define CONNECT_RETRY_MS 10000
static prism_status fetch_cluster(prism_client *c)
{
    prism_httpc *http = prism_httpc_pool_take(c->http, c->address, c->token);
    if (!http)
        return prism__fail(PRISM_ERR_NO_MEMORY, "cannot make an HTTP client");
    long status = 0;
    json_t *doc = NULL;
    char err[512];
    int64_t give_up = prism_mono_ms() + CONNECT_RETRY_MS, pause = 50;
    int rc;
    while ((rc = prism_httpc_json(http, "GET", "/api/v1/cluster", NULL, 10000, &status, &doc, err,
                                  sizeof err)) != 0 &&
           prism_mono_ms() + pause < give_up) {
        prism_sleep_ms(pause);
        pause = pause < 800 ? 2 * pause : 1000;
    }
    if (rc == 0 && status == 200 && c->home_store)
        home_node_id(c, http, HOME_NODE);
    prism_httpc_pool_give(c->http, http, rc == 0);
    prism_status s = PRISM_OK;
    if (rc != 0)
        s = prism__fail(PRISM_ERR_CONNECT, "cannot reach the cluster at %s: %s", c->address, err);
    else if (status != 200)
        s = prism__fail(PRISM_ERR_CONNECT, "the cluster at %s refused: %s", c->address,
                        prism_httpc_error_message(doc, "unexpected answer"));
    else if (!c->nats_url && json_is_string(json_object_get(doc, "nats_url")))
        c->nats_url = strdup(json_string_value(json_object_get(doc, "nats_url")));
    json_decref(doc);
    if (s == PRISM_OK && !c->nats_url)
        s = prism__fail(PRISM_ERR_CONNECT, "the cluster did not say where its NATS server is");
    return s;
}

/* A process on the machine of `prism up` that talks to that cluster (the
 * address it takes from the environment or the home is $PRISM_HOME/address)
 * uses the store of the cluster's first node as its own, as a job's driver
 * on that node would: large values go there and are read from there without
 * a copy. Returns its socket path (malloc'd), or NULL. */
static char *home_store_socket(const prism_client *c)
{
    char *address = home_file("address");
    bool same = address && c->address && !strcmp(address, c->address);
    free(address);
    char path[4096];
    home_path(path, sizeof path, "nodes/" HOME_NODE "/objectstore.sock");
    struct stat st;
    return same && stat(path, &st) == 0 && S_ISSOCK(st.st_mode) ? strdup(path) : NULL;
}

static prism_status open_local_store(prism_client *c, prism_store *shared)
{
    const char *sock = getenv("PRISM_STORE_SOCKET");
    char err[256];
    if (c->home_store) {
        if (prism_store_connect(&c->store, c->home_store, err, sizeof err) != PRISM_STORE_OK)
            return PRISM_OK; /* gone since: like no store at all */
        sock = c->home_store;
        if (!c->node_id[0])
            snprintf(c->node_id, sizeof c->node_id, "%s", c->home_node);
    } else if (!sock || !*sock) {
        return PRISM_OK; /* no local store: large values stay in this process */
    } else if (shared) {
        c->store = shared;
        c->store_shared = true;
    } else if (prism_store_connect(&c->store, sock, err, sizeof err) != PRISM_STORE_OK) {
        return prism__fail(PRISM_ERR_CONNECT, "cannot use the object store at %s: %s", sock, err);
    }
    c->store_socket = strdup(sock);
    const char *url = getenv("PRISM_STORE_URL");
    if (!url || !*url) /* the store says where it serves: borrowers elsewhere pull from there */
        url = prism_store_url(c->store);
    c->store_url = url && *url ? strdup(url) : NULL;
    return PRISM_OK;
}

/* The ownership table, at the end: owned stored objects are deleted from
 * the store; nothing is dropped entry by entry (the whole table goes). */
static void objects_free(prism_client *c)
{
    for (size_t i = 0; c->buckets && i < c->nbuckets; i++) {
        for (obj_entry *e = c->buckets[i], *next; e; e = next) {
            next = e->next;
            if (!e->owner && e->store_socket && *e->store_socket && c->store)
                prism_store_delete(c->store, &e->id);
            free(e->contained); /* dropped with the table, not one by one */
            e->contained = NULL;
            e->ncontained = 0;
            prism__borrow_free_entry(e);
            clear_value(c, e);
            free(e->waiters);
            free(e);
        }
    }
    free(c->buckets);
    c->buckets = NULL;
}

void prism_disconnect(prism_client *c)
{
    if (!c)
        return;
    if (c->bus && c->buckets) { /* what finished last still reaches the task list */
        pthread_mutex_lock(&c->lock);
        c->last_events_ms = 0;
        prism__events_tick(c);
        prism__actors_report_final(c); /* its queued calls stop counting at once */
        pthread_mutex_unlock(&c->lock);
    }
    prism__borrow_stop(c);
    prism__pools_stop(c);
    prism_bus_destroy(c->bus);
    prism__actors_free(c);
    prism__tasks_free_pending(c); /* before the table: freeing tasks drops references */
    objects_free(c);
    if (!c->store_shared)
        prism_store_destroy(c->store);
    prism__events_free(c);
    prism__borrow_free(c);
    prism_httpc_pool_destroy(c->http);
    free(c->store_url);
    free(c->address);
    free(c->token);
    free(c->nats_url);
    free(c->store_socket);
    free(c->home_store);
    prism__stores_free(c);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->events_lock);
    pthread_mutex_destroy(&c->stores_lock);
    pthread_cond_destroy(&c->changed);
    pthread_cond_destroy(&c->leaser_wake);
    pthread_cond_destroy(&c->courier_wake);
    free(c);
}

void prism_connect_options_init(prism_connect_options *opts)
{
    if (opts)
        *opts = (prism_connect_options)PRISM_CONNECT_OPTIONS_INIT;
}

prism_status prism_connect(const prism_connect_options *opts, prism_client **out)
{
    return prism__connect_sharing_store(opts, NULL, out);
}

prism_status prism__connect_sharing_store(const prism_connect_options *opts, prism_store *shared,
                                          prism_client **out)
{
    *out = NULL;
    if (opts && !PRISM__RESERVED_ZERO(opts))
        return prism__fail(PRISM_ERR_INVALID, "prism_connect_options: `reserved` is not zero "
                                              "(initialize it with PRISM_CONNECT_OPTIONS_INIT)");
    prism_client *c = calloc(1, sizeof *c);
    if (!c)
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->events_lock, NULL);
    pthread_mutex_init(&c->stores_lock, NULL);
    pthread_condattr_t ca; /* get/wait deadlines are on the monotonic clock */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->changed, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&c->leaser_wake, NULL);
    pthread_cond_init(&c->courier_wake, NULL);
    c->epfd = c->wakefd = -1;
    c->nbuckets = 1024;
    c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
    c->http = prism_httpc_pool_create(HTTP_IDLE_MAX);
    c->address = setting(opts ? opts->address : NULL, "PRISM_ADDRESS", "address");
    c->token = setting(opts ? opts->token : NULL, "PRISM_TOKEN", "token");
    wire_auth_key(c->token, c->wire_key);
    const char *nats = getenv("PRISM_NATS_URL");
    c->nats_url = nats && *nats ? strdup(nats) : NULL;
    const char *node = getenv("PRISM_NODE_ID");
    snprintf(c->node_id, sizeof c->node_id, "%s", node ? node : "");
    const char *sock = getenv("PRISM_STORE_SOCKET");
    if (!shared && (!sock || !*sock) && !(opts && opts->address && *opts->address))
        c->home_store = home_store_socket(c); /* services name their address: never theirs */
    prism_id_random(&c->put_task);
    char hex[PRISM_ID_HEX_LEN + 1];
    prism_id_to_hex(&c->put_task, hex);
    snprintf(c->self_addr, sizeof c->self_addr, "owner:%s", hex);
    prism_status s = PRISM_OK;
    char err[512];
    if (!c->buckets || !c->http)
        s = prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    else if (!c->address)
        s = prism__fail(PRISM_ERR_CONNECT,
                        "no cluster address: set PRISM_ADDRESS or run `prism up`");
    if (s == PRISM_OK)
        s = fetch_cluster(c);
    if (s == PRISM_OK && prism_bus_connect(&c->bus, c->nats_url, c->token, "prism-client", 5000,
                                           err, sizeof err) != 0)
        s = prism__fail(PRISM_ERR_CONNECT, "%s", err);
    if (s == PRISM_OK)
        s = open_local_store(c, shared);
    if (s == PRISM_OK && prism_bus_subscribe(c->bus, PRISM_SUBJECT_EVENT_NODE, NULL, on_node_event,
                                             c) != PRISM_BUS_OK)
        s = prism__fail(PRISM_ERR_CONNECT, "cannot subscribe to node events");
    if (s == PRISM_OK && prism__borrow_start(c) != 0)
        s = prism__fail(PRISM_ERR_CONNECT, "cannot subscribe to this owner's subject");
    if (s == PRISM_OK && prism__pools_start(c) != 0)
        s = prism__fail(PRISM_ERR_INTERNAL, "cannot start the client's threads");
    if (s != PRISM_OK) {
        prism_disconnect(c);
        return s;
    }
    *out = c;
    return PRISM_OK;
}

/* ---------- put ---------- */

prism_store_status prism__store_value(prism_store *store, const prism_object_id *id,
                                      const char *owner, const prism_value *v, const char *self,
                                      uint64_t *size)
{
    size_t n = pw_value_size(v, self);
    uint8_t *p;
    if (n == 0)
        return PRISM_STORE_INVALID;
    prism_id oid;
    bool owned = wire_owner_id(owner, &oid);
    prism_store_status s =
        prism_store_create(store, id, owned ? &oid : NULL, n, NULL, 0, PRISM_STORE_PIN, &p);
    if (s != PRISM_STORE_OK)
        return s;
    prism_writer w = {.out = p, .cap = n};
    pw_value(&w, v, self);
    if (w.failed || w.pos != n) {
        prism_store_abort(store, id);
        return PRISM_STORE_INVALID;
    }
    *size = n;
    return prism_store_seal(store, id);
}

/* The references inside a value live as long as the object holding it. Lock held. */
static void hold_contained(prism_client *c, obj_entry *e, const prism_value *v)
{
    const prism_ref **refs = NULL;
    size_t n = 0, cap = 0;
    if (prism__value_refs(v, &refs, &n, &cap) == 0 && n)
        e->contained = malloc(n * sizeof *e->contained);
    for (size_t i = 0; e->contained && i < n; i++) {
        const prism_ref *r = refs[i];
        bool mine = !r->owner || !strcmp(r->owner, c->self_addr);
        if (prism__obj_hold(c, &r->id, mine ? NULL : r->owner))
            e->contained[e->ncontained++] = r->id;
    }
    free(refs);
}

prism_status prism_put(prism_client *c, const prism_value *v, prism_ref **out)
{
    *out = NULL;
    if (!c || !v)
        return prism__fail(PRISM_ERR_INVALID, "put needs a client and a value");
    if (prism__value_on_device(v))
        return prism__fail(PRISM_ERR_INVALID, "the value " PRISM__ON_DEVICE);
    size_t size = pw_value_size(v, c->self_addr);
    if (size == 0)
        return prism__fail(PRISM_ERR_INVALID, "the value is too large or too deeply nested");
    pthread_mutex_lock(&c->lock);
    prism_object_id id;
    prism_object_id_make(&id, &c->put_task, PRISM_PUT_INDEX_BASE + c->put_index++);
    pthread_mutex_unlock(&c->lock);
    bool stored = size > PRISM_INLINE_MAX && c->store;
    prism_buf b;
    prism_buf_init(&b, WIRE_VALUE_MAX);
    uint64_t stored_size = 0;
    if (stored) {
        prism_store_status ss =
            prism__store_value(c->store, &id, c->self_addr, v, c->self_addr, &stored_size);
        /* The node's store is down (being restarted): the value stays in this
         * process, as in a driver without a store, rather than fail the put. */
        stored = ss != PRISM_STORE_DISCONNECTED;
        if (ss != PRISM_STORE_OK && stored)
            return prism__fail(ss == PRISM_STORE_OUT_OF_MEMORY || ss == PRISM_STORE_TOO_LARGE
                                   ? PRISM_ERR_NO_MEMORY
                                   : PRISM_ERR_INTERNAL,
                               "object store put failed: %s", prism_store_status_text(ss));
    }
    if (!stored) {
        prism_writer w = {.buf = &b};
        pw_value(&w, v, c->self_addr);
        if (w.failed) {
            prism_buf_free(&b);
            return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory encoding the value");
        }
    }
    pthread_mutex_lock(&c->lock);
    obj_entry *e = prism__obj_add(c, &id);
    if (e && stored)
        prism__obj_set_stored(c, e, c->node_id, c->store_socket, c->store_url, stored_size);
    else if (e)
        prism__obj_set_inline(c, e, (const uint8_t *)b.data, b.len);
    if (e)
        hold_contained(c, e, v);
    pthread_mutex_unlock(&c->lock);
    prism_buf_free(&b);
    if (!e)
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    *out = prism__ref_new(c, &id, NULL);
    return *out ? PRISM_OK : prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
}

/* ---------- get and wait ---------- */

/* Waits for `e` to settle. Lock held; returns false on timeout. */
static bool wait_settled(prism_client *c, const prism_object_id *id, int timeout_ms)
{
    struct timespec ts;
    ts = prism_deadline_ts(CLOCK_MONOTONIC, timeout_ms);
    int64_t deadline_ms = timeout_ms < 0 ? -1 : prism_mono_ms() + timeout_ms;
    for (;;) {
        obj_entry *e = prism__obj_find(c, id);
        if (!e || e->state != OBJ_PENDING)
            return true;
        if (deadline_ms >= 0 && prism_mono_ms() >= deadline_ms)
            return false;
        if (prism__read_directly(c, id, deadline_ms))
            continue;
        prism__unpark(c, INT64_MAX);
        c->io_waiters++;
        int rc = timeout_ms < 0 ? pthread_cond_wait(&c->changed, &c->lock)
                                : pthread_cond_timedwait(&c->changed, &c->lock, &ts);
        c->io_waiters--;
        if (rc == ETIMEDOUT)
            return false;
    }
}

typedef struct store_hold {
    prism_store *store;
    prism_object_id id;
    int users;
    pthread_mutex_t lock;
} store_hold;

static void hold_ref(void *ud)
{
    store_hold *h = ud;
    pthread_mutex_lock(&h->lock);
    h->users++;
    pthread_mutex_unlock(&h->lock);
}

static void hold_release(void *ud)
{
    store_hold *h = ud;
    pthread_mutex_lock(&h->lock);
    int left = --h->users;
    pthread_mutex_unlock(&h->lock);
    if (left > 0)
        return;
    prism_store_release(h->store, &h->id);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

prism_status prism__decode_stored(prism_store *store, const prism_object_id *id, int timeout_ms,
                                  prism_client *c, const char *self, prism_value **out)
{
    prism_store_buffer buf;
    prism_store_status ss = prism_store_get(store, id, timeout_ms, &buf);
    /* A spilled object with no room to come back is there, not lost: making
     * it again would only fill the store again. */
    bool full = ss == PRISM_STORE_OUT_OF_MEMORY || ss == PRISM_STORE_TOO_LARGE;
    if (ss != PRISM_STORE_OK)
        return prism__fail(ss == PRISM_STORE_TIMEOUT ? PRISM_ERR_TIMEOUT
                           : full                    ? PRISM_ERR_NO_MEMORY
                                                     : PRISM_ERR_OBJECT_LOST,
                           "object store get failed: %s%s", prism_store_status_text(ss),
                           full ? " (spilled, and no room in the arena to read it back: the "
                                  "values read at once are larger than the object store)"
                                : "");
    store_hold *h = calloc(1, sizeof *h);
    if (!h) {
        prism_store_release(store, id);
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    }
    h->store = store;
    h->id = *id;
    h->users = 1; /* the decoder's own hold, dropped below */
    pthread_mutex_init(&h->lock, NULL);
    prism_reader r = {buf.data, buf.size, 0, hold_ref, hold_release, h};
    *out = pr_value(&r, c, self);
    hold_release(h);
    return *out ? PRISM_OK : prism__fail(PRISM_ERR_INTERNAL, "a stored value is malformed");
}

int prism__store_pull(const char *store_url, const char *token, const prism_object_id *id,
                      const char *source, char *err, size_t n)
{
    if (!store_url || !*store_url || !source || !*source) {
        snprintf(err, n, "the object is on another node and cannot be pulled here");
        return -1;
    }
    prism_httpc *h;
    if (prism_httpc_create(&h, store_url, token) != 0) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    char path[128], hex[PRISM_OBJECT_ID_HEX_LEN + 1];
    prism_object_id_to_hex(id, hex);
    snprintf(path, sizeof path, "/api/v1/objects/%s/pull", hex);
    json_t *body = json_pack("{s:s,s:i}", "source", source, "timeout_ms", 600000);
    long status = 0;
    json_t *reply = NULL;
    int rc = prism_httpc_json(h, "POST", path, body, 600000, &status, &reply, err, n);
    json_decref(body);
    prism_httpc_destroy(h);
    if (rc == 0 && status != 200) {
        snprintf(err, n, "pull failed: %s", prism_httpc_error_message(reply, "no reason given"));
        rc = -1;
    }
    json_decref(reply);
    return rc;
}

/* A stored object held by another node's store. With a store of its own, this
 * process has it pulled there and reads it zero-copy (its store vouches for
 * the source before the token goes there); without one, it reads the bytes
 * over the holding store's HTTP API, when `listed` (prism__store_known). */
static prism_status fetch_remote(prism_client *c, const char *url, bool listed,
                                 const prism_ref *ref, prism_value **out)
{
    if (!url || !*url)
        return prism__fail(PRISM_ERR_OBJECT_LOST,
                           "object %s is in an object store this process "
                           "cannot reach",
                           ref->hex);
    if (c->store && c->store_url) {
        char err[512];
        if (prism__store_pull(c->store_url, c->token, &ref->id, url, err, sizeof err) != 0)
            return prism__fail(PRISM_ERR_OBJECT_LOST, "object %s: %s", ref->hex, err);
        return prism__decode_stored(c->store, &ref->id, 10000, c, c->self_addr, out);
    }
    if (!listed)
        return prism__fail(PRISM_ERR_OBJECT_LOST,
                           "object %s is said to be in the object store at %s, which the GCS "
                           "does not list as a live node's: the cluster's token is not sent there",
                           ref->hex, url);
    prism_httpc *h = prism_httpc_pool_take(c->http, url, c->token);
    if (!h)
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    char path[128], err[512];
    snprintf(path, sizeof path, "/api/v1/objects/%s", ref->hex);
    prism_httpc_resp resp;
    int rc = prism_httpc_request(h, "GET", path, NULL, NULL, 0, 600000, (size_t)1 << 40, &resp, err,
                                 sizeof err);
    prism_httpc_pool_give(c->http, h, rc == 0);
    if (rc != 0)
        return prism__fail(PRISM_ERR_OBJECT_LOST, "object %s: its store does not answer: %s",
                           ref->hex, err);
    prism_status s = PRISM_OK;
    if (resp.status != 200) {
        s = prism__fail(PRISM_ERR_OBJECT_LOST, "object %s: its store answered HTTP %ld", ref->hex,
                        resp.status);
    } else {
        prism_reader r = {(const uint8_t *)resp.body, resp.len, 0, NULL, NULL, NULL};
        *out = pr_value(&r, c, c->self_addr);
        if (!*out)
            s = prism__fail(PRISM_ERR_INTERNAL, "a stored value is malformed");
    }
    prism_httpc_resp_free(&resp);
    return s;
}

static void (*block_hook)(void *, bool);
static void *block_ud;

void prism__set_block_hook(void (*hook)(void *ud, bool blocked), void *ud)
{
    block_hook = hook;
    block_ud = ud;
}

/* True (and the hook told) when a get or wait of these objects would block. */
static bool enter_block(prism_client *c, prism_ref *const *refs, size_t n, size_t k)
{
    if (!block_hook || !c)
        return false;
    size_t ready = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < n; i++) {
        obj_entry *e = refs[i] ? prism__obj_find(c, &refs[i]->id) : NULL;
        ready += !e || e->state != OBJ_PENDING;
    }
    pthread_mutex_unlock(&c->lock);
    if (ready >= k)
        return false;
    block_hook(block_ud, true);
    return true;
}

static void leave_block(bool blocked)
{
    if (blocked)
        block_hook(block_ud, false);
}

static prism_status get_value(prism_client *c, const prism_ref *ref, int timeout_ms,
                              size_t max_bytes, prism_value **out, prism_value_info *info);

prism_status prism_get(prism_client *c, const prism_ref *ref, int timeout_ms, prism_value **out)
{
    prism_ref *one = (prism_ref *)ref;
    bool blocked = ref && enter_block(c, &one, 1, 1);
    prism_status s = get_value(c, ref, timeout_ms, 0, out, NULL);
    leave_block(blocked);
    return s;
}

prism_status prism_get_or_describe(prism_client *c, const prism_ref *ref, int timeout_ms,
                                   size_t max_bytes, prism_value **out, prism_value_info *info)
{
    if (!info || !out)
        return prism__fail(PRISM_ERR_INVALID, "get_or_describe needs out and info");
    memset(info, 0, sizeof *info);
    prism_ref *one = (prism_ref *)ref;
    bool blocked = ref && enter_block(c, &one, 1, 1);
    prism_status s = get_value(c, ref, timeout_ms, max_bytes, out, info);
    leave_block(blocked);
    return s;
}

/* Enough for any bytes or tensor value's header (kind, dtype, 8 dimensions, size). */
#define VALUE_HEAD_BYTES 256

/* For prism_get_or_describe: true when the first bytes of an object in
 * another node's store (one the GCS lists) show a bytes or tensor value of
 * more than `max_bytes` (`info` then says what it is); false to fetch it
 * whole. */
static bool describe_remote(prism_client *c, const char *url, const prism_ref *ref,
                            size_t max_bytes, prism_value_info *info)
{
    prism_httpc *h = prism_httpc_pool_take(c->http, url, c->token);
    if (!h)
        return false;
    char path[128], err[256];
    snprintf(path, sizeof path, "/api/v1/objects/%s", ref->hex);
    prism_httpc_resp resp;
    bool big = false;
    int rc = prism_httpc_get_head(h, path, VALUE_HEAD_BYTES, 30000, &resp, err, sizeof err);
    if (rc == 0) {
        big = (resp.status == 200 || resp.status == 206) &&
              pr_value_info((const uint8_t *)resp.body, resp.len, info) && info->size > max_bytes;
        prism_httpc_resp_free(&resp);
    }
    prism_httpc_pool_give(c->http, h, rc == 0);
    if (!big)
        memset(info, 0, sizeof *info);
    return big;
}

/* While a get or wait uses a handle that `c` does not track (another
 * client's, or a bare one), a temporary handle of `c`'s makes the borrowed
 * entry it needs. Returns it (to release after) or NULL. Lock held. */
static prism_ref *track(prism_client *c, const prism_ref *ref)
{
    /* another client's handle of its own object: that client owns it */
    const char *owner = ref->owner ? ref->owner : ref->client ? ref->client->self_addr : NULL;
    if (ref->client == c || prism__obj_find(c, &ref->id) || !owner || !strcmp(owner, c->self_addr))
        return NULL;
    return prism__ref_new_locked(c, &ref->id, owner);
}

/* Whether a borrowed entry needs its value fetched from the owner. A copy lost
 * with its node is forgotten: the owner knows where the object lives now (or
 * rebuilds it). Lock held. */
static bool needs_fetch(prism_client *c, obj_entry *e)
{
    if (!e || !e->owner)
        return false;
    if (e->lost) {
        clear_value(c, e);
        e->lost = false;
        e->state = OBJ_PENDING;
    }
    return e->state == OBJ_PENDING && !e->resolving;
}

static prism_status get_value(prism_client *c, const prism_ref *ref, int timeout_ms,
                              size_t max_bytes, prism_value **out, prism_value_info *info)
{
    *out = NULL;
    if (!c || !ref)
        return prism__fail(PRISM_ERR_INVALID, "get needs a client and a reference");
    pthread_mutex_lock(&c->lock);
    prism_ref *temp = track(c, ref);
    obj_entry *lost = prism__obj_find(c, &ref->id);
    if (lost && !lost->owner && lost->lost && !prism__reconstruct(c, lost)) {
        char msg[512];
        prism__lost_message(lost, msg, sizeof msg);
        pthread_mutex_unlock(&c->lock);
        prism_ref_release(temp);
        return prism__fail(PRISM_ERR_OBJECT_LOST, "%s", msg);
    }
    bool fetch = needs_fetch(c, lost);
    pthread_mutex_unlock(&c->lock);
    if (fetch)
        prism__borrow_fetch_now(c, &ref->id);
    pthread_mutex_lock(&c->lock);
    prism_status s = PRISM_OK;
    obj_entry *e = NULL;
    if (!wait_settled(c, &ref->id, timeout_ms))
        s = prism__fail(PRISM_ERR_TIMEOUT, "object %s was not ready within %d ms", ref->hex,
                        timeout_ms);
    else if (!(e = prism__obj_find(c, &ref->id)))
        s = prism__fail(PRISM_ERR_OBJECT_LOST, "object %s was freed", ref->hex);
    if (s != PRISM_OK) {
        pthread_mutex_unlock(&c->lock);
        prism_ref_release(temp);
        return s;
    }
    s = e->state == OBJ_FAILED ? (e->error ? e->error : PRISM_ERR_TASK) : PRISM_OK;
    if (e->inline_buf) {
        /* Decoded unlocked: references inside make handles, which take the lock. */
        size_t len = e->inline_len;
        uint8_t *copy = malloc(len ? len : 1);
        if (copy)
            memcpy(copy, e->inline_buf, len);
        pthread_mutex_unlock(&c->lock);
        prism_reader r = {copy, len, 0, NULL, NULL, NULL};
        *out = copy ? pr_value(&r, c, c->self_addr) : NULL;
        free(copy);
        if (!*out)
            s = prism__fail(PRISM_ERR_INTERNAL, "a stored value is malformed");
    } else {
        char *url = e->store_url ? strdup(e->store_url) : NULL;
        bool local = c->store &&
                     prism__same_store(e->node_id, e->store_socket, c->node_id, c->store_socket);
        pthread_mutex_unlock(&c->lock);
        /* The token goes straight to `url` (a describe, or a read without a
         * store here) only when the GCS lists it; asked once, when needed. */
        bool pulls = c->store && c->store_url;
        bool listed = !local && url && *url && (info || !pulls) && prism__store_known(c, url);
        if (local)
            s = prism__decode_stored(c->store, &ref->id, 10000, c, c->self_addr, out);
        else if (!info || !listed || !describe_remote(c, url, ref, max_bytes, info))
            s = fetch_remote(c, url, listed, ref, out);
        free(url);
    }
    prism_ref_release(temp);
    /* References that came inside the value: their owners learn this process holds them. */
    prism__borrow_register(c);
    if (*out && (s == PRISM_ERR_TASK || s != PRISM_OK)) {
        const char *task = prism_value_error_task(*out), *msg = prism_value_error_message(*out);
        if (task && *task)
            prism__fail(s, "%s: %s", task, msg ? msg : "");
        else
            prism__fail(s, "object %s: %s", ref->hex, msg ? msg : "");
    }
    return s;
}

static prism_status wait_refs(prism_client *c, prism_ref *const *refs, size_t n, size_t k,
                              int timeout_ms, bool *ready);

prism_status prism_wait(prism_client *c, prism_ref *const *refs, size_t n, size_t k, int timeout_ms,
                        bool *ready)
{
    if (!c || (n && (!refs || !ready)) || k > n)
        return prism__fail(PRISM_ERR_INVALID, "wait needs k <= n references");
    bool blocked = enter_block(c, refs, n, k);
    prism_status s = wait_refs(c, refs, n, k, timeout_ms, ready);
    leave_block(blocked);
    return s;
}

static prism_status wait_refs(prism_client *c, prism_ref *const *refs, size_t n, size_t k,
                              int timeout_ms, bool *ready)
{
    struct timespec ts;
    ts = prism_deadline_ts(CLOCK_MONOTONIC, timeout_ms);
    /* One look at each object until k are found ready (as Ray's num_returns:
     * the first k found are marked); then each settling wakes this thread and
     * only the objects still pending are looked at again, a scan stopping at
     * the k-th ready one or once too many are pending for k (tasks tend to
     * finish in order: a wait costs a look or two per wake-up, not n). */
    size_t *pending = malloc((n ? n : 1) * sizeof *pending), npending = 0, done = 0;
    prism_ref **temps = NULL; /* handles of `c` for references it did not track */
    if (!pending)
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < n; i++)
        ready[i] = false;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < n && done < k; i++) {
        obj_entry *e = prism__obj_find(c, &refs[i]->id);
        if (!e && (temps || (temps = calloc(n, sizeof *temps))) && (temps[i] = track(c, refs[i])))
            e = prism__obj_find(c, &refs[i]->id);
        if (!e || e->state != OBJ_PENDING) {
            ready[i] = true;
            done++;
            continue;
        }
        if (needs_fetch(c, e)) /* borrowed: its owner is asked */
            prism__borrow_resolve(c, e);
        pending[npending++] = i;
    }
    prism_status s = PRISM_OK;
    prism__unpark(c, INT64_MAX);
    while (done < k) {
        c->io_waiters++;
        int rc = timeout_ms < 0 ? pthread_cond_wait(&c->changed, &c->lock)
                                : pthread_cond_timedwait(&c->changed, &c->lock, &ts);
        c->io_waiters--;
        size_t kept = 0, seen = 0, i = 0;
        for (; i < npending; i++) {
            size_t x = pending[i];
            obj_entry *e = prism__obj_find(c, &refs[x]->id);
            if (!e || e->state != OBJ_PENDING) {
                ready[x] = true;
                if (++done == k) {
                    i++;
                    break;
                }
                continue;
            }
            pending[kept++] = x;
            if (++seen > n - k) { /* fewer than k can be ready now */
                i++;
                break;
            }
        }
        while (i < npending)
            pending[kept++] = pending[i++];
        npending = kept;
        if (done < k && rc == ETIMEDOUT) {
            s = prism__fail(PRISM_ERR_TIMEOUT, "fewer than %zu of %zu objects were ready", k, n);
            for (size_t j = 0; j < npending; j++) { /* ready[] exact on timeout */
                obj_entry *e = prism__obj_find(c, &refs[pending[j]]->id);
                ready[pending[j]] = !e || e->state != OBJ_PENDING;
            }
            break;
        }
    }
    for (size_t i = 0; temps && i < n; i++)
        if (temps[i])
            prism__ref_drop_locked(c, temps[i]);
    pthread_mutex_unlock(&c->lock);
    free(pending);
    free(temps);
    return s;
}
