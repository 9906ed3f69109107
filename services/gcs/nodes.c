/* Nodes: registration, heartbeats, what each has free (its node agent's
 * reports), liveness, and the nodes REST API. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "gcs.h"
#include "pgroups.h"
#include "prism_error.h"
#include "prism_httpc.h"
#include "prism_log.h"
#include "prism_subjects.h"
#include "prism_time.h"

#define DEAD_NODES_KEPT 1000
/* the database's last_heartbeat of a live node lags by at most this; the API
 * shows the live value */
#define HEARTBEAT_PERSIST_MS 30000
/* A node agent answers its worker list at once; one that does not within
 * this is reported unavailable (a page polls every 2 s). */
#define WORKERS_TIMEOUT_MS 2000
#define WORKERS_MAX_ANSWER (4u << 20)
#define NODE_COLUMNS                                                                               \
    "id, name, state, address, resources, registered_at, last_heartbeat, dead_at, message"

gcs_node *gcs_node_find(gcs *g, const char *id)
{
    for (gcs_node *n = g->nodes; n; n = n->next)
        if (!strcmp(n->id, id))
            return n;
    return NULL;
}

static void node_free(gcs_node *n)
{
    free(n->name);
    free(n->address);
    free(n->store_address);
    json_decref(n->resources);
    json_decref(n->available);
    json_decref(n->running);
    free(n);
}

void gcs_nodes_free(gcs *g)
{
    for (gcs_node *n = g->nodes, *next; n; n = next) {
        next = n->next;
        node_free(n);
    }
    g->nodes = NULL;
}

static void publish_node_event(gcs *g, const char *id, const char *name, const char *state,
                               const char *message)
{
    json_t *ev = json_pack("{s:s,s:s,s:s,s:s,s:I}", "node_id", id, "name", name, "state", state,
                           "message", message ? message : "", "time", (json_int_t)prism_now_ms());
    prism_bus_publish_json(g->bus, PRISM_SUBJECT_EVENT_NODE, ev);
    json_decref(ev);
}

/* Marks a live node DEAD everywhere and fails its jobs. Lock held. */
static void node_kill_locked(gcs *g, gcs_node *node, const char *message)
{
    sqlite3_stmt *st = gcs_db_prepare(g->db,
                                      "UPDATE nodes SET state='DEAD', dead_at=?, message=?, "
                                      "last_heartbeat=COALESCE(?, last_heartbeat) WHERE id=?");
    sqlite3_bind_int64(st, 1, prism_now_ms());
    gcs_db_bind_text(st, 2, message);
    if (node->last_heartbeat_ms)
        sqlite3_bind_int64(st, 3, node->last_heartbeat_ms);
    gcs_db_bind_text(st, 4, node->id);
    gcs_db_exec_stmt(st);
    char jobmsg[512];
    snprintf(jobmsg, sizeof jobmsg, "node %s (%s) died: %s", node->name, node->id, message);
    gcs_jobs_fail_node_locked(g, node->id, jobmsg);
    gcs_actors_node_dead(g, node->id);
    gcs_pgs_node_dead_locked(g, node->id);
    LOG_WARN("node %s (%s) is DEAD: %s", node->name, node->id, message);
    publish_node_event(g, node->id, node->name, "DEAD", message);
    prism_metric_add(g->m_nodes_dead, 1);
    for (gcs_node **pp = &g->nodes; *pp; pp = &(*pp)->next) {
        if (*pp == node) {
            *pp = node->next;
            break;
        }
    }
    node_free(node);
}

static void reply_json(gcs *g, const char *reply, json_t *doc)
{
    if (reply)
        prism_bus_publish_json(g->bus, reply, doc);
    json_decref(doc);
}

static bool valid_resources(json_t *res)
{
    const char *name;
    json_t *v;
    if (!json_is_object(res))
        return false;
    json_object_foreach(res, name, v)
        if (!json_is_number(v) || json_number_value(v) < 0)
            return false;
    return true;
}

static void insert_node_locked(gcs *g, gcs_node *n)
{
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "INSERT INTO nodes (id, name, state, address, resources, registered_at, "
               "last_heartbeat) VALUES (?, ?, 'ALIVE', ?, ?, ?, ?)");
    gcs_db_bind_text(st, 1, n->id);
    gcs_db_bind_text(st, 2, n->name);
    gcs_db_bind_text(st, 3, n->address);
    gcs_db_bind_json(st, 4, n->resources);
    sqlite3_bind_int64(st, 5, n->last_heartbeat_ms);
    sqlite3_bind_int64(st, 6, n->last_heartbeat_ms);
    gcs_db_exec_stmt(st);
}

static bool node_id_known(gcs *g, const char *id)
{
    sqlite3_stmt *st = gcs_db_prepare(g->db, "SELECT 1 FROM nodes WHERE id=?");
    gcs_db_bind_text(st, 1, id);
    bool known = sqlite3_step(st) == SQLITE_ROW;
    gcs_db_finish(st);
    return known;
}

static void on_register(prism_bus *bus, const char *subject, const char *reply, const char *data,
                        size_t len, void *ud)
{
    gcs *g = ud;
    json_t *msg = json_loadb(data, len, 0, NULL);
    const char *id = json_string_value(json_object_get(msg, "node_id"));
    const char *name = json_string_value(json_object_get(msg, "name"));
    const char *address = json_string_value(json_object_get(msg, "address"));
    json_t *res = json_object_get(msg, "resources");
    prism_id parsed;
    if (!id || prism_id_from_hex(&parsed, id) != 0 || !name || !*name || !valid_resources(res)) {
        reply_json(g, reply,
                   prism_error_json("invalid_argument",
                                    "register needs node_id (32 hex), name and resources"));
        json_decref(msg);
        return;
    }
    pthread_mutex_lock(&g->lock);
    if (gcs_node_find(g, id) || node_id_known(g, id)) {
        bool alive = gcs_node_find(g, id) != NULL;
        pthread_mutex_unlock(&g->lock);
        reply_json(g, reply,
                   alive ? json_pack("{s:b}", "ok", 1)
                         : prism_error_json("node_dead", "this node incarnation is dead"));
        json_decref(msg);
        return;
    }
    for (gcs_node *old = g->nodes; old; old = old->next) {
        if (!strcmp(old->name, name)) {
            node_kill_locked(g, old, "replaced by a new incarnation of the node");
            break;
        }
    }
    gcs_node *n = calloc(1, sizeof *n);
    snprintf(n->id, sizeof n->id, "%s", id);
    n->name = strdup(name);
    n->address = address ? strdup(address) : NULL;
    const char *store = json_string_value(json_object_get(msg, "store_address"));
    n->store_address = store ? strdup(store) : NULL;
    n->resources = json_deep_copy(res);
    n->available = json_deep_copy(res);
    n->running = json_array();
    n->last_heartbeat_mono = prism_mono_ms();
    n->last_heartbeat_ms = n->persisted_heartbeat_ms = prism_now_ms();
    n->next = g->nodes;
    g->nodes = n;
    insert_node_locked(g, n);
    g->placement_wanted = true;
    pthread_mutex_unlock(&g->lock);
    LOG_INFO("node %s (%s) registered at %s", name, id, address ? address : "-");
    publish_node_event(g, id, name, "ALIVE", "registered");
    reply_json(g, reply, json_pack("{s:b}", "ok", 1));
    json_decref(msg);
}

static void on_heartbeat(prism_bus *bus, const char *subject, const char *reply, const char *data,
                         size_t len, void *ud)
{
    gcs *g = ud;
    json_t *msg = json_loadb(data, len, 0, NULL);
    const char *id = json_string_value(json_object_get(msg, "node_id"));
    json_t *running = json_object_get(msg, "running_jobs");
    json_t *answer;
    pthread_mutex_lock(&g->lock);
    gcs_node *n = id ? gcs_node_find(g, id) : NULL;
    if (n) {
        n->last_heartbeat_mono = prism_mono_ms();
        n->last_heartbeat_ms = prism_now_ms();
        if (json_is_array(running)) {
            json_decref(n->running);
            n->running = json_deep_copy(running);
        }
        if (n->last_heartbeat_ms - n->persisted_heartbeat_ms >= HEARTBEAT_PERSIST_MS) {
            sqlite3_stmt *st =
                gcs_db_prepare(g->db, "UPDATE nodes SET last_heartbeat=? WHERE id=?");
            sqlite3_bind_int64(st, 1, n->last_heartbeat_ms);
            gcs_db_bind_text(st, 2, id);
            gcs_db_exec_stmt(st);
            n->persisted_heartbeat_ms = n->last_heartbeat_ms;
        }
        answer = json_pack("{s:b}", "ok", 1);
    } else if (id && node_id_known(g, id)) {
        answer = prism_error_json("node_dead", "the cluster marked this node incarnation dead");
    } else {
        answer = prism_error_json("unknown_node", "no such node: register first");
    }
    pthread_mutex_unlock(&g->lock);
    prism_metric_add(g->m_heartbeats, 1);
    reply_json(g, reply, answer);
    json_decref(msg);
}

/* What a node has free, as its node agent reports it to the schedulers
 * after every heartbeat and every change: the one account of what jobs and
 * tasks hold there, shown by the REST API. */
static void on_report(prism_bus *bus, const char *subject, const char *reply, const char *data,
                      size_t len, void *ud)
{
    gcs *g = ud;
    json_t *msg = json_loadb(data, len, 0, NULL);
    const char *id = json_string_value(json_object_get(msg, "node_id"));
    json_t *avail = json_object_get(msg, "available");
    if (id && valid_resources(avail)) {
        pthread_mutex_lock(&g->lock);
        gcs_node *n = gcs_node_find(g, id);
        json_t *copy = n ? json_deep_copy(avail) : NULL;
        if (copy) {
            json_decref(n->available);
            n->available = copy;
        }
        /* The store's URL, which the database does not keep: a GCS that
         * restarted learns it again from the next report. */
        const char *store = json_string_value(json_object_get(msg, "store_address"));
        if (n && store && *store && (!n->store_address || strcmp(n->store_address, store))) {
            free(n->store_address);
            n->store_address = strdup(store);
        }
        pthread_mutex_unlock(&g->lock);
        if (copy && json_array_size(json_object_get(msg, "bundles")))
            gcs_pgs_reconcile(g, id, json_object_get(msg, "bundles"));
        if (copy)
            gcs_actors_node_room(g, id, avail);
    }
    json_decref(msg);
}

/* Rebuilds the live-node list from the database after a restart. Liveness
 * clocks start now, so nodes get a full timeout to show they are still there. */
static void load_live_nodes(gcs *g)
{
    sqlite3_stmt *st =
        gcs_db_prepare(g->db, "SELECT id, name, address, resources, last_heartbeat FROM nodes "
                              "WHERE state='ALIVE'");
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        gcs_node *n = calloc(1, sizeof *n);
        snprintf(n->id, sizeof n->id, "%s", (const char *)sqlite3_column_text(st, 0));
        n->name = strdup((const char *)sqlite3_column_text(st, 1));
        const unsigned char *addr = sqlite3_column_text(st, 2);
        n->address = addr ? strdup((const char *)addr) : NULL;
        n->resources = gcs_db_column_json(st, 3);
        n->last_heartbeat_ms = n->persisted_heartbeat_ms = sqlite3_column_int64(st, 4);
        n->available = json_deep_copy(n->resources);
        n->running = json_array();
        n->last_heartbeat_mono = prism_mono_ms();
        n->next = g->nodes;
        g->nodes = n;
    }
    gcs_db_finish(st);
}

int gcs_nodes_start(gcs *g)
{
    load_live_nodes(g);
    if (prism_bus_subscribe(g->bus, PRISM_SUBJECT_NODE_REGISTER, "gcs", on_register, g) != 0 ||
        prism_bus_subscribe(g->bus, PRISM_SUBJECT_NODE_HEARTBEAT, "gcs", on_heartbeat, g) != 0 ||
        prism_bus_subscribe(g->bus, PRISM_SUBJECT_SCHED_NODE, NULL, on_report, g) != 0)
        return -1;
    return 0;
}

/* Dead incarnations are history: keep the newest ones, so restarts over
 * months do not grow the table without bound. Lock held. */
static void prune_dead_nodes_locked(gcs *g)
{
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "DELETE FROM nodes WHERE seq IN (SELECT seq FROM nodes WHERE state='DEAD' "
               "ORDER BY seq DESC LIMIT 1000 OFFSET ?)");
    sqlite3_bind_int64(st, 1, DEAD_NODES_KEPT);
    gcs_db_exec_stmt(st);
}

void gcs_nodes_cron(gcs *g)
{
    int64_t now = prism_mono_ms();
    pthread_mutex_lock(&g->lock);
    for (gcs_node *n = g->nodes, *next; n; n = next) {
        next = n->next;
        int64_t silent = now - n->last_heartbeat_mono;
        if (silent > g->cfg.node_timeout_ms) {
            char msg[128];
            snprintf(msg, sizeof msg, "no heartbeat for %.1f s", (double)silent / 1000.0);
            node_kill_locked(g, n, msg);
            prune_dead_nodes_locked(g);
        }
    }
    pthread_mutex_unlock(&g->lock);
}

/* ---------- REST ---------- */

json_t *gcs_node_row_json(sqlite3_stmt *st)
{
    return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "node_id",
                     gcs_db_column_text_or_null(st, 0), "name", gcs_db_column_text_or_null(st, 1),
                     "state", gcs_db_column_text_or_null(st, 2), "address",
                     gcs_db_column_text_or_null(st, 3), "resources", gcs_db_column_json(st, 4),
                     "registered_at", gcs_db_column_int_or_null(st, 5), "last_heartbeat",
                     gcs_db_column_int_or_null(st, 6), "dead_at", gcs_db_column_int_or_null(st, 7),
                     "message", gcs_db_column_text_or_null(st, 8));
}

/* Adds what only the live view knows: free resources, the store's URL.
 * Lock held. */
static void add_live_fields(gcs *g, json_t *node)
{
    gcs_node *n = gcs_node_find(g, json_string_value(json_object_get(node, "node_id")));
    json_t *avail = json_object();
    if (n) {
        gcs_res_add(avail, n->available, 1);
        json_object_set_new(node, "last_heartbeat", json_integer(n->last_heartbeat_ms));
        if (n->store_address)
            json_object_set_new(node, "store_address", json_string(n->store_address));
    }
    json_object_set_new(node, "available", avail);
}

static bool valid_node_state(const char *s)
{
    return !s || !strcmp(s, "ALIVE") || !strcmp(s, "DEAD");
}

/* Lock held. */
static json_t *node_list_row(sqlite3_stmt *st, void *ud)
{
    json_t *node = gcs_node_row_json(st);
    add_live_fields(ud, node);
    return node;
}

void gcs_api_nodes_list(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    int64_t limit, cursor;
    const char *state = prism_http_query(req, "state");
    if (prism_http_query_int(req, "limit", 100, 1, 1000, &limit) != 0 ||
        prism_http_query_int(req, "cursor", INT64_MAX, 0, INT64_MAX, &cursor) != 0)
        return;
    if (!valid_node_state(state)) {
        prism_http_reply_error(req, 400, "invalid_argument", "state must be ALIVE or DEAD");
        return;
    }
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st =
        gcs_db_prepare(g->db, "SELECT " NODE_COLUMNS
                              ", seq FROM nodes WHERE seq < ? AND (?2 IS NULL OR state = ?2)"
                              " ORDER BY seq DESC LIMIT :limit");
    sqlite3_bind_int64(st, 1, cursor);
    gcs_db_bind_text(st, 2, state);
    json_t *list = json_array();
    json_t *next = gcs_db_page(st, "seq", limit, node_list_row, g, list);
    pthread_mutex_unlock(&g->lock);
    prism_http_reply_json(req, 200, json_pack("{s:o,s:o}", "nodes", list, "next_cursor", next));
}

void gcs_api_node_get(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    const char *id = prism_http_param(req, "id");
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(g->db, "SELECT " NODE_COLUMNS " FROM nodes WHERE id = ?");
    gcs_db_bind_text(st, 1, id);
    json_t *node = NULL;
    if (st && sqlite3_step(st) == SQLITE_ROW) {
        node = gcs_node_row_json(st);
        add_live_fields(g, node);
    }
    gcs_db_finish(st);
    pthread_mutex_unlock(&g->lock);
    if (!node) {
        prism_http_reply_error(req, 404, "not_found", "no node '%s'", id);
        return;
    }
    prism_http_reply_json(req, 200, node);
}

/* The node agent's worker pool (its GET /api/v1/workers), asked with the
 * cluster token and answered as it came: only a live node has workers. */
void gcs_api_node_workers(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    const char *id = prism_http_param(req, "id");
    pthread_mutex_lock(&g->lock);
    gcs_node *n = gcs_node_find(g, id);
    bool alive = n != NULL, known = alive || node_id_known(g, id);
    char *address = n && n->address ? strdup(n->address) : NULL;
    pthread_mutex_unlock(&g->lock);
    if (!known) {
        prism_http_reply_error(req, 404, "not_found", "no node '%s'", id);
        return;
    }
    if (!alive) {
        prism_http_reply_error(req, 409, "node_dead", "node '%s' is dead: it has no workers", id);
        return;
    }
    char err[256] = "it registered no address";
    prism_httpc *c = NULL;
    prism_httpc_resp resp = {0};
    int rc = address && prism_httpc_create(&c, address, g->cfg.token) == 0
                 ? prism_httpc_request(c, "GET", "/api/v1/workers", NULL, NULL, 0,
                                       WORKERS_TIMEOUT_MS, WORKERS_MAX_ANSWER, &resp, err,
                                       sizeof err)
                 : -1;
    prism_httpc_destroy(c);
    if (rc == 0 && resp.status == 200)
        prism_http_reply(req, 200, "application/json", resp.body, resp.len);
    else if (rc == 0)
        prism_http_reply_error(req, 503, "node_unavailable",
                               "the agent of node '%s' answered %ld to its worker list", id,
                               resp.status);
    else
        prism_http_reply_error(req, 503, "node_unavailable",
                               "the agent of node '%s' does not answer: %s", id, err);
    if (rc == 0)
        prism_httpc_resp_free(&resp);
    free(address);
}

static int64_t count_rows(gcs *g, const char *sql, const char *arg)
{
    sqlite3_stmt *st = gcs_db_prepare(g->db, sql);
    gcs_db_bind_text(st, 1, arg);
    int64_t n = st && sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    gcs_db_finish(st);
    return n;
}

void gcs_api_cluster(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    json_t *total = json_object(), *avail = json_object();
    int alive = 0;
    pthread_mutex_lock(&g->lock);
    for (gcs_node *n = g->nodes; n; n = n->next) {
        alive++;
        gcs_res_add(total, n->resources, 1);
        gcs_res_add(avail, n->available, 1);
    }
    const char *by_state = "SELECT count(*) FROM jobs WHERE state = ?";
    json_t *jobs = json_pack("{s:I,s:I}", "pending", (json_int_t)count_rows(g, by_state, "PENDING"),
                             "running", (json_int_t)count_rows(g, by_state, "RUNNING"));
    int64_t dead = count_rows(g, "SELECT count(*) FROM nodes WHERE state = ?", "DEAD");
    pthread_mutex_unlock(&g->lock);
    prism_http_reply_json(req, 200,
                          json_pack("{s:s,s:i,s:I,s:{s:o,s:o},s:o,s:s}", "version", GCS_VERSION,
                                    "nodes_alive", alive, "nodes_dead", (json_int_t)dead,
                                    "resources", "total", total, "available", avail, "jobs", jobs,
                                    "nats_url", g->cfg.nats_url));
}
