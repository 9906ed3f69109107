/* The cluster's compiled DAGs (docs/dags.md#visible-state): each driver
 * publishes its DAGs on prism.gcs.dag.update, with the graph at compile, then
 * their executions and state; each actor's worker adds its loop's health and
 * its inputs' latency to its calls report. The GCS keeps the newest DAG_KEEP, in memory
 * for the listing and in its database (table dags) so that a restarted GCS
 * lists them again; a DAG's loops never need the GCS. A driver found dead
 * (the owners' pings, actor_manager.c) leaves its DAGs BROKEN. */
#include <stdlib.h>
#include <string.h>

#include "actors.h"
#include "db.h"
#include "prism_log.h"
#include "gcs.h"
#include "prism_subjects.h"

#define DAG_KEEP 1000
#define DAG_ID_MAX 64

struct gcs_dags {
    pthread_mutex_t lock;
    json_t *by_id;                   /* DAG id -> its DAG object */
    char ring[DAG_KEEP][DAG_ID_MAX]; /* ids, oldest first from `head` */
    size_t head, count;
};

/* Keeps `dag` (a reference taken) as the newest, forgetting the oldest
 * beyond DAG_KEEP (also in the database). Lock held, or not yet shared. */
static void keep(gcs *g, const char *id, json_t *dag)
{
    gcs_dags *t = g->dags;
    if (t->count == DAG_KEEP) {
        sqlite3_stmt *st = gcs_db_prepare(g->db, "DELETE FROM dags WHERE id=?");
        gcs_db_bind_text(st, 1, t->ring[t->head]);
        gcs_db_exec_stmt(st);
        json_object_del(t->by_id, t->ring[t->head]);
        t->head = (t->head + 1) % DAG_KEEP;
        t->count--;
    }
    memcpy(t->ring[(t->head + t->count) % DAG_KEEP], id, strlen(id) + 1);
    t->count++;
    json_object_set(t->by_id, id, dag);
}

/* Writes the DAG as it is listed now. Lock held. */
static void save(gcs *g, const char *id, json_t *dag)
{
    sqlite3_stmt *st = gcs_db_prepare(g->db, "INSERT INTO dags(id, doc) VALUES(?, ?) "
                                             "ON CONFLICT(id) DO UPDATE SET doc=excluded.doc");
    gcs_db_bind_text(st, 1, id);
    gcs_db_bind_json(st, 2, dag);
    if (gcs_db_exec_stmt(st) != SQLITE_DONE)
        LOG_WARN("cannot save DAG %s: %s", id, sqlite3_errmsg(g->db));
}

/* The DAGs a GCS before this one listed, oldest first. */
static void load(gcs *g)
{
    sqlite3_stmt *st = gcs_db_prepare(g->db, "SELECT id, doc FROM (SELECT seq, id, doc FROM dags "
                                             "ORDER BY seq DESC LIMIT ?) ORDER BY seq");
    if (!st)
        return;
    sqlite3_bind_int(st, 1, DAG_KEEP);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        json_t *doc = gcs_db_column_json(st, 1);
        if (id && strlen(id) < DAG_ID_MAX && json_is_object(doc))
            keep(g, id, doc);
        json_decref(doc);
    }
    gcs_db_finish(st);
}

int gcs_dags_create(gcs *g)
{
    gcs_dags *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    t->by_id = json_object();
    pthread_mutex_init(&t->lock, NULL);
    g->dags = t;
    if (!t->by_id)
        return -1;
    load(g);
    return 0;
}

void gcs_dags_destroy(gcs *g)
{
    gcs_dags *t = g->dags;
    if (!t)
        return;
    json_decref(t->by_id);
    pthread_mutex_destroy(&t->lock);
    free(t);
    g->dags = NULL;
}

/* The states in the order a DAG goes through them: 0 COMPILED, 1 BROKEN,
 * 2 TORN_DOWN; -1 for anything else. */
static int state_rank(const char *s)
{
    static const char *const states[] = {"COMPILED", "BROKEN", "TORN_DOWN"};
    for (int i = 0; s && i < 3; i++)
        if (!strcmp(s, states[i]))
            return i;
    return -1;
}

static bool valid_state(const char *s) { return state_rank(s) >= 0; }

/* Names each bind node's actor class, from the actors' table. No lock held. */
static void add_classes(gcs *g, json_t *dag)
{
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(dag, "nodes"), i, n) {
        const char *aid = json_string_value(json_object_get(n, "actor_id"));
        json_t *a = aid ? gcs_actor_json(g, aid) : NULL;
        json_t *cls = json_object_get(a, "class");
        if (json_is_string(cls))
            json_object_set(n, "class", cls);
        json_decref(a);
    }
}

#define HIST_BUCKETS 15 /* PRISM_CHAN_HIST_BUCKETS */

/* A hop's latency histogram as reported ({"count", "mean_us", "buckets"}),
 * checked and copied; NULL when it is not one. */
static json_t *clean_hist(json_t *h)
{
    json_t *count = json_object_get(h, "count"), *mean = json_object_get(h, "mean_us");
    json_t *buckets = json_object_get(h, "buckets"), *b;
    size_t i;
    if (!json_is_integer(count) || !json_is_number(mean) ||
        json_array_size(buckets) != HIST_BUCKETS)
        return NULL;
    json_array_foreach(buckets, i, b) {
        if (!json_is_integer(b))
            return NULL;
    }
    return json_pack("{s:O,s:f,s:O}", "count", count, "mean_us", json_number_value(mean), "buckets",
                     buckets);
}

/* Puts histogram `h` (reported) on edge `e`, unless it counts fewer values
 * than the one there: an edge's counters only grow, and the driver reports
 * zeros for the edges that their readers' workers count. */
static void set_edge_latency(json_t *e, json_t *h)
{
    json_t *c = clean_hist(h);
    json_t *old = json_object_get(json_object_get(e, "latency"), "count");
    if (json_is_object(e) && c &&
        json_integer_value(json_object_get(c, "count")) >= json_integer_value(old))
        json_object_set(e, "latency", c);
    json_decref(c);
}

/* The report's hop latencies go on the DAG's edges (in their order) and
 * into its output_latency (one per output item). */
static void take_latency(json_t *dag, json_t *rep)
{
    json_t *lat = json_object_get(rep, "latency"), *edges = json_object_get(dag, "edges"), *h;
    json_t *outs = json_array();
    size_t i;
    json_array_foreach(json_object_get(lat, "edges"), i, h)
        set_edge_latency(json_array_get(edges, i), h);
    json_array_foreach(json_object_get(lat, "outputs"), i, h) {
        json_t *c = clean_hist(h);
        if (c)
            json_array_append_new(outs, c);
    }
    if (json_array_size(outs))
        json_object_set(dag, "output_latency", outs);
    json_decref(outs);
}

/* A loop's counts of what became of its values, as its worker reported
 * them (NULL: none yet; docs/dags.md#visible-state). The GCS does not
 * name them: it keeps what looks like a count, and at most VALUES_MAX. */
#define VALUES_MAX 16
static json_t *values_of(json_t *reported)
{
    json_t *v = json_object(), *n;
    const char *name;
    json_object_foreach(reported, name, n) {
        size_t len = strspn(name, "abcdefghijklmnopqrstuvwxyz_");
        if (json_object_size(v) < VALUES_MAX && len > 0 && len <= 32 && !name[len] &&
            json_is_integer(n) && json_integer_value(n) >= 0)
            json_object_set(v, name, n);
    }
    return v;
}

/* One entry per actor of the DAG, in the order of its first node, with no
 * report from its worker yet. */
static void add_loops(json_t *dag)
{
    json_t *loops = json_array(), *n;
    size_t i;
    json_array_foreach(json_object_get(dag, "nodes"), i, n) {
        json_t *aid = json_object_get(n, "actor_id"), *l;
        size_t k;
        bool seen = false;
        json_array_foreach(loops, k, l) {
            seen = seen || json_equal(json_object_get(l, "actor_id"), aid);
        }
        if (json_is_string(aid) && !seen)
            json_array_append_new(loops, json_pack("{s:O,s:s,s:i,s:n,s:n,s:o}", "actor_id", aid,
                                                   "state", "UNKNOWN", "executions", 0, "active_at",
                                                   "error", "values", values_of(NULL)));
    }
    json_object_set_new(dag, "loops", loops);
}

/* Once torn down, no loop runs any more (their workers stop reporting). */
static void stop_loops(json_t *dag)
{
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(dag, "loops"), i, l) {
        json_object_set_new(l, "state", json_string("STOPPED"));
    }
}

/* A DAG's report: a new one (with its graph) is kept, the oldest forgotten
 * beyond DAG_KEEP; a later one updates its state and executions. Lock held. */
static void record(gcs *g, json_t *rep)
{
    gcs_dags *t = g->dags;
    const char *id = json_string_value(json_object_get(rep, "id"));
    json_t *known = id ? json_object_get(t->by_id, id) : NULL;
    if (known) { /* reports may cross: a DAG never goes back to an earlier state or count */
        json_t *state = json_object_get(rep, "state"), *done = json_object_get(rep, "executions");
        if (json_integer_value(done) >= json_integer_value(json_object_get(known, "executions")))
            take_latency(known, rep);
        if (state_rank(json_string_value(state)) >
            state_rank(json_string_value(json_object_get(known, "state"))))
            json_object_set(known, "state", state);
        if (state_rank(json_string_value(state)) == 2)
            stop_loops(known);
        if (json_integer_value(done) > json_integer_value(json_object_get(known, "executions")))
            json_object_set(known, "executions", done);
        save(g, id, known);
        return;
    }
    if (!id || strlen(id) >= DAG_ID_MAX || !json_is_array(json_object_get(rep, "nodes")))
        return; /* its compile report was lost or forgotten */
    take_latency(rep, rep);
    json_object_del(rep, "latency");
    add_loops(rep);
    keep(g, id, rep);
    save(g, id, rep);
}

static void on_update(prism_bus *bus, const char *subject, const char *reply, const char *data,
                      size_t len, void *ud)
{
    (void)bus, (void)subject, (void)reply;
    gcs *g = ud;
    json_t *msg = json_loadb(data, len, 0, NULL);
    size_t i;
    json_t *rep;
    json_array_foreach(json_object_get(msg, "dags"), i, rep) {
        if (!json_is_object(rep) ||
            !valid_state(json_string_value(json_object_get(rep, "state"))) ||
            !json_is_integer(json_object_get(rep, "executions")))
            continue;
        add_classes(g, rep);
        pthread_mutex_lock(&g->dags->lock);
        record(g, rep);
        pthread_mutex_unlock(&g->dags->lock);
    }
    json_decref(msg);
}

static bool valid_loop_state(const char *s)
{
    return s && (!strcmp(s, "LISTENING") || !strcmp(s, "RUNNING") || !strcmp(s, "ENDED"));
}

/* The "inputs" of actor `aid`'s loop report, [[node, argument position,
 * histogram], ...], go on the edges into its nodes, in their order. Lock held. */
static void take_inputs(json_t *dag, const char *aid, json_t *inputs)
{
    size_t i, k;
    json_t *in, *e;
    json_array_foreach(inputs, i, in) {
        json_t *to = json_array_get(in, 0), *pos = json_array_get(in, 1);
        json_t *node =
            json_array_get(json_object_get(dag, "nodes"), (size_t)json_integer_value(to));
        const char *owner = json_string_value(json_object_get(node, "actor_id"));
        if (!json_is_integer(to) || !json_is_integer(pos) || !owner || strcmp(owner, aid) != 0)
            continue;
        json_int_t seen = 0;
        json_array_foreach(json_object_get(dag, "edges"), k, e) {
            if (json_equal(json_object_get(e, "to"), to) && seen++ == json_integer_value(pos)) {
                set_edge_latency(e, json_array_get(in, 2));
                break;
            }
        }
    }
}

void gcs_dags_loop_report(gcs *g, const char *actor_id, json_t *loop)
{
    const char *id = json_string_value(json_object_get(loop, "dag"));
    const char *state = json_string_value(json_object_get(loop, "state"));
    json_t *done = json_object_get(loop, "executions"), *at = json_object_get(loop, "active_at");
    json_t *err = json_object_get(loop, "error");
    if (!id || !valid_loop_state(state) || !json_is_integer(done) || !json_is_integer(at) ||
        (err && !json_is_null(err) && (!json_is_string(err) || json_string_length(err) > 1024)))
        return;
    pthread_mutex_lock(&g->dags->lock);
    json_t *dag = json_object_get(g->dags->by_id, id), *l;
    size_t i;
    const char *dstate = json_string_value(json_object_get(dag, "state"));
    json_array_foreach(json_object_get(dag, "loops"), i, l) {
        const char *aid = json_string_value(json_object_get(l, "actor_id"));
        if (!aid || strcmp(aid, actor_id) != 0)
            continue;
        /* A DAG torn down keeps its loops STOPPED; the last report each
         * worker sends as it stops its loop still brings the final counts.
         * Saved then, and when a loop's state changes (the counts between
         * are soft state: the next save brings them). */
        bool torn = !dstate || !strcmp(dstate, "TORN_DOWN");
        const char *was = json_string_value(json_object_get(l, "state"));
        bool save_it = torn || !was || strcmp(was, state) != 0;
        if (!torn) {
            json_object_set_new(l, "state", json_string(state));
            json_object_set_new(l, "error", json_is_string(err) ? json_copy(err) : json_null());
        }
        if (json_integer_value(done) >= json_integer_value(json_object_get(l, "executions"))) {
            json_object_set(l, "executions", done);
            json_object_set(l, "active_at", at);
            json_object_set_new(l, "values", values_of(json_object_get(loop, "values")));
        }
        take_inputs(dag, actor_id, json_object_get(loop, "inputs"));
        if (save_it)
            save(g, id, dag);
        break;
    }
    pthread_mutex_unlock(&g->dags->lock);
}

int gcs_dags_start(gcs *g)
{
    return prism_bus_subscribe(g->bus, PRISM_SUBJECT_DAG_UPDATE, "gcs", on_update, g);
}

void gcs_dags_owner_gone(gcs *g, const char *owner)
{
    const char *id;
    json_t *d;
    pthread_mutex_lock(&g->dags->lock);
    json_object_foreach(g->dags->by_id, id, d) {
        const char *o = json_string_value(json_object_get(d, "owner"));
        const char *s = json_string_value(json_object_get(d, "state"));
        if (o && s && !strcmp(o, owner) && !strcmp(s, "COMPILED")) {
            json_object_set_new(d, "state", json_string("BROKEN"));
            save(g, id, d);
        }
    }
    pthread_mutex_unlock(&g->dags->lock);
}

void gcs_api_dags_list(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    int64_t limit;
    const char *state = prism_http_query(req, "state");
    if (prism_http_query_int(req, "limit", 100, 1, DAG_KEEP, &limit) != 0)
        return;
    if (state && !valid_state(state)) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "state must be COMPILED, TORN_DOWN or BROKEN");
        return;
    }
    gcs_dags *t = g->dags;
    json_t *list = json_array();
    pthread_mutex_lock(&t->lock);
    for (size_t k = t->count; k > 0 && (int64_t)json_array_size(list) < limit; k--) {
        json_t *d = json_object_get(t->by_id, t->ring[(t->head + k - 1) % DAG_KEEP]);
        const char *s = json_string_value(json_object_get(d, "state"));
        if (d && (!state || (s && !strcmp(s, state))))
            json_array_append_new(list, json_deep_copy(d));
    }
    pthread_mutex_unlock(&t->lock);
    prism_http_reply_json(req, 200, json_pack("{s:o}", "dags", list));
}

void gcs_api_dag_get(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    const char *id = prism_http_param(req, "id");
    pthread_mutex_lock(&g->dags->lock);
    json_t *d = json_deep_copy(json_object_get(g->dags->by_id, id));
    pthread_mutex_unlock(&g->dags->lock);
    if (!d) {
        prism_http_reply_error(req, 404, "not_found", "no DAG '%s'", id);
        return;
    }
    prism_http_reply_json(req, 200, d);
}
