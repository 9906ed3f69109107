/* Placement groups (docs/placement-groups.md): the GCS keeps each group in
 * SQLite, one row with its bundles and the node of each (null: not
 * reserved), and drives its state:
 *
 *   PENDING ──placed──▶ CREATED ──a node with bundles died──▶ RESCHEDULING ──placed──▶ CREATED
 *      └────────────┴──────────────── remove ──────────────────────┴──▶ REMOVED
 *
 * A periodic job asks the scheduler (prism.sched.pg.place) to reserve the
 * bundles of groups PENDING or RESCHEDULING that are on no node, and
 * records where they went or why not. The node agents hold the
 * reservations; removing a group returns them (bundle.return), which kills
 * the workers leased in them, and kills the group's actors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors.h"
#include "db.h"
#include "pgroups.h"
#include "prism_log.h"
#include "prism_subjects.h"
#include "prism_time.h"
#include "prism_wire.h"

#define PLACE_BATCH 8
#define PLACE_RETRY_MS 1000 /* groups that could not be placed are asked for again */
#define PLACE_BUDGET_MS 50  /* the longest one run of the job places groups */
#define PLACE_TIMEOUT_MS 5000
#define RETURN_TIMEOUT_MS 2000
#define REASON_MAX 1024
#define OWNER_CHECK_MS 2000 /* owners of groups are pinged this often */
#define OWNER_PING_MS 1000  /* ... and given this long to answer */
#define REMOVED_KEPT 10000

const char *const gcs_pg_states[4] = {"PENDING", "CREATED", "RESCHEDULING", "REMOVED"};
const char *const gcs_pg_strategies[4] = {"PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"};

/* ---------- rows ---------- */

json_t *gcs_pg_row_json(sqlite3_stmt *st)
{
    json_t *bundles = gcs_db_column_json(st, 4), *nodes = gcs_db_column_json(st, 5);
    json_t *list = json_array();
    size_t i;
    json_t *b;
    json_array_foreach(bundles, i, b) {
        json_t *node = json_array_get(nodes, i);
        json_array_append_new(list, json_pack("{s:i,s:O,s:O}", "index", (int)i, "resources", b,
                                              "node_id", node ? node : json_null()));
    }
    json_decref(bundles);
    json_decref(nodes);
    return json_pack("{s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "placement_group_id",
                     sqlite3_column_text(st, 1), "owner", gcs_db_column_text_or_null(st, 10),
                     "name", gcs_db_column_text_or_null(st, 2), "strategy",
                     gcs_db_column_text_or_null(st, 3), "state", gcs_db_column_text_or_null(st, 6),
                     "reason", gcs_db_column_text_or_null(st, 7), "bundles", list, "created_at",
                     gcs_db_column_int_or_null(st, 8), "removed_at",
                     gcs_db_column_int_or_null(st, 9));
}

json_t *gcs_pg_json_locked(gcs *g, const char *id)
{
    sqlite3_stmt *st =
        gcs_db_prepare(g->db, "SELECT " PG_COLUMNS " FROM placement_groups WHERE id = ?");
    gcs_db_bind_text(st, 1, id);
    json_t *doc = st && sqlite3_step(st) == SQLITE_ROW ? gcs_pg_row_json(st) : NULL;
    gcs_db_finish(st);
    return doc;
}

json_t *gcs_pg_json(gcs *g, const char *id)
{
    pthread_mutex_lock(&g->lock);
    json_t *doc = gcs_pg_json_locked(g, id);
    pthread_mutex_unlock(&g->lock);
    return doc;
}

int gcs_pg_insert_locked(gcs *g, const char *id, const char *name, const char *owner,
                         const char *strategy, json_t *bundles)
{
    json_t *nodes = json_array();
    for (size_t i = 0; i < json_array_size(bundles); i++)
        json_array_append_new(nodes, json_null());
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "INSERT INTO placement_groups (id, name, strategy, bundles, nodes, state, "
               "reason, created_at, owner) VALUES (?, ?, ?, ?, ?, 'PENDING', ?, ?, ?)");
    gcs_db_bind_text(st, 1, id);
    gcs_db_bind_text(st, 2, name);
    gcs_db_bind_text(st, 3, strategy);
    gcs_db_bind_json(st, 4, bundles);
    gcs_db_bind_json(st, 5, nodes);
    gcs_db_bind_text(st, 6, "waiting to be placed");
    sqlite3_bind_int64(st, 7, prism_now_ms());
    gcs_db_bind_text(st, 8, owner);
    json_decref(nodes);
    return gcs_db_exec_stmt(st) == SQLITE_DONE ? 0 : -1;
}

static void set_state_locked(gcs *g, const char *id, const char *state, const char *reason,
                             json_t *nodes)
{
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "UPDATE placement_groups SET state = ?, reason = ?, nodes = coalesce(?, nodes) "
               "WHERE id = ? AND state <> 'REMOVED'");
    gcs_db_bind_text(st, 1, state);
    gcs_db_bind_text(st, 2, reason);
    gcs_db_bind_json(st, 3, nodes);
    gcs_db_bind_text(st, 4, id);
    if (gcs_db_exec_stmt(st) != SQLITE_DONE)
        LOG_ERROR("placement group %s: cannot record state %s", id, state);
}

/* ---------- placing ---------- */

typedef struct pg_item {
    char id[PRISM_ID_HEX_LEN + 1];
    char *strategy;
    json_t *bundles, *nodes;
    struct pg_item *next;
} pg_item;

static void item_free(pg_item *it)
{
    free(it->strategy);
    json_decref(it->bundles);
    json_decref(it->nodes);
    free(it);
}

/* Up to PLACE_BATCH groups waiting for bundles, oldest first from after
 * `*cursor` (a seq), which moves to the last one; *full tells whether there
 * may be more after it (lock held). */
static pg_item *waiting_locked(gcs *g, int64_t *cursor, bool *full)
{
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "SELECT id, strategy, bundles, nodes, seq FROM placement_groups WHERE state IN "
               "('PENDING', 'RESCHEDULING') AND seq > ? ORDER BY seq LIMIT ?");
    sqlite3_bind_int64(st, 1, *cursor);
    sqlite3_bind_int(st, 2, PLACE_BATCH);
    pg_item *head = NULL, **tail = &head;
    int n = 0;
    *full = false;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        *cursor = sqlite3_column_int64(st, 4);
        *full = ++n == PLACE_BATCH;
        pg_item *it = calloc(1, sizeof *it);
        if (!it)
            break;
        snprintf(it->id, sizeof it->id, "%s", (const char *)sqlite3_column_text(st, 0));
        it->strategy = strdup((const char *)sqlite3_column_text(st, 1));
        it->bundles = gcs_db_column_json(st, 2);
        it->nodes = gcs_db_column_json(st, 3);
        *tail = it;
        tail = &it->next;
    }
    gcs_db_finish(st);
    return head;
}

/* The request for the bundles on no node; `avoid` the others' nodes for STRICT_SPREAD. */
static json_t *place_request(const pg_item *it)
{
    json_t *bundles = json_array(), *avoid = json_array();
    size_t i;
    json_t *b;
    json_array_foreach(it->bundles, i, b) {
        json_t *node = json_array_get(it->nodes, i);
        if (json_is_string(node))
            json_array_append(avoid, node);
        else
            json_array_append_new(bundles, json_pack("{s:i,s:O}", "index", (int)i, "resources", b));
    }
    if (strcmp(it->strategy, "STRICT_SPREAD") != 0)
        json_array_clear(avoid);
    return json_pack("{s:s,s:s,s:o,s:o}", "placement_group_id", it->id, "strategy", it->strategy,
                     "bundles", bundles, "avoid", avoid);
}

void gcs_pg_return_bundles(gcs *g, const char *pg_id, const char *node_id, json_t *index)
{
    char subject[PRISM_SUBJECT_MAX];
    prism_subject_node(subject, sizeof subject, node_id, PRISM_NODE_BUNDLE_RETURN);
    json_t *req = json_pack("{s:s}", "placement_group_id", pg_id), *reply = NULL;
    if (index)
        json_object_set(req, "index", index);
    if (prism_bus_request_json(g->bus, subject, req, RETURN_TIMEOUT_MS, &reply) != PRISM_BUS_OK)
        LOG_WARN("placement group %s: node %s did not answer bundle.return", pg_id, node_id);
    json_decref(req);
    json_decref(reply);
}

/* Records a placement; false when the group was removed meanwhile (lock held). */
static bool record_locked(gcs *g, pg_item *it, json_t *placement)
{
    json_t *now = gcs_pg_json_locked(g, it->id);
    const char *state = json_string_value(json_object_get(now, "state"));
    bool live = state && strcmp(state, "REMOVED") != 0;
    json_decref(now);
    if (!live)
        return false;
    size_t i;
    json_t *p;
    json_array_foreach(placement, i, p) {
        json_int_t index = json_integer_value(json_object_get(p, "index"));
        json_array_set(it->nodes, (size_t)index, json_object_get(p, "node_id"));
    }
    set_state_locked(g, it->id, "CREATED", NULL, it->nodes);
    LOG_INFO("placement group %s is CREATED", it->id);
    return true;
}

static void place_one(gcs *g, pg_item *it)
{
    json_t *req = place_request(it), *reply = NULL;
    int rc =
        prism_bus_request_json(g->bus, PRISM_SUBJECT_SCHED_PG_PLACE, req, PLACE_TIMEOUT_MS, &reply);
    json_decref(req);
    json_t *placement = json_object_get(reply, "placement");
    bool ok = rc == PRISM_BUS_OK && json_is_true(json_object_get(reply, "ok"));
    char reason[REASON_MAX];
    const char *msg =
        json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
    snprintf(reason, sizeof reason, "waiting for resources: %s",
             msg                             ? msg
             : rc == PRISM_BUS_NO_RESPONDERS ? "no scheduler is running"
                                             : "the scheduler did not answer");
    pthread_mutex_lock(&g->lock);
    bool kept = ok && record_locked(g, it, placement);
    if (!ok) {
        json_t *now = gcs_pg_json_locked(g, it->id);
        const char *state = json_string_value(json_object_get(now, "state"));
        if (state && strcmp(state, "REMOVED") != 0)
            set_state_locked(g, it->id, state, reason, NULL);
        json_decref(now);
    }
    pthread_mutex_unlock(&g->lock);
    size_t i;
    json_t *p;
    json_array_foreach(ok && !kept ? placement : NULL, i, p) /* removed meanwhile */
        gcs_pg_return_bundles(g, it->id, json_string_value(json_object_get(p, "node_id")),
                              json_object_get(p, "index"));
    json_decref(reply);
}

/* A pass asks for every waiting group, oldest first, a batch at a time for
 * at most PLACE_BUDGET_MS per run; a pass cut short goes on at the next run
 * (from `pg_cursor`), so groups that cannot be placed never keep newer ones
 * from being tried. A new pass starts when a group was created or a node
 * died (`pg_wanted`), or PLACE_RETRY_MS after the last one. */
void gcs_pgs_place(gcs *g)
{
    int64_t start = prism_mono_ms();
    pthread_mutex_lock(&g->lock); /* pg_wanted is set under it */
    bool more = g->pg_cursor > 0 || g->pg_wanted || start >= g->pg_retry_mono;
    if (g->pg_cursor == 0 && more) {
        g->pg_wanted = false;
        g->pg_retry_mono = start + PLACE_RETRY_MS;
    }
    pthread_mutex_unlock(&g->lock);
    while (more && prism_mono_ms() - start < PLACE_BUDGET_MS) {
        pthread_mutex_lock(&g->lock);
        pg_item *items = waiting_locked(g, &g->pg_cursor, &more);
        if (!more)
            g->pg_cursor = 0; /* the pass is done */
        pthread_mutex_unlock(&g->lock);
        while (items) {
            pg_item *next = items->next;
            place_one(g, items);
            item_free(items);
            items = next;
        }
    }
}

/* ---------- node death, removal ---------- */

void gcs_pgs_node_dead_locked(gcs *g, const char *node_id)
{
    pg_item *items = NULL;
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "SELECT id, strategy, bundles, nodes FROM placement_groups WHERE state IN "
               "('CREATED', 'RESCHEDULING') AND instr(nodes, ?) > 0");
    gcs_db_bind_text(st, 1, node_id);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        pg_item *it = calloc(1, sizeof *it);
        if (!it)
            break;
        snprintf(it->id, sizeof it->id, "%s", (const char *)sqlite3_column_text(st, 0));
        it->nodes = gcs_db_column_json(st, 3);
        it->next = items;
        items = it;
    }
    gcs_db_finish(st);
    char reason[256];
    snprintf(reason, sizeof reason, "node %s died: its bundles are placed again", node_id);
    while (items) {
        pg_item *it = items;
        items = it->next;
        size_t i;
        json_t *n;
        json_array_foreach(it->nodes, i, n) {
            if (json_is_string(n) && !strcmp(json_string_value(n), node_id))
                json_array_set_new(it->nodes, i, json_null());
        }
        set_state_locked(g, it->id, "RESCHEDULING", reason, it->nodes);
        LOG_WARN("placement group %s is RESCHEDULING: node %s died", it->id, node_id);
        item_free(it);
    }
    g->pg_wanted = true;
}

/* prism.event.placement_group: the scheduler refuses the leases of a group
 * removed (owners then fail what waits for it instead of waiting forever). */
static void publish_state(gcs *g, const json_t *doc)
{
    json_t *ev = json_pack("{s:O,s:O,s:I}", "placement_group_id",
                           json_object_get(doc, "placement_group_id"), "state",
                           json_object_get(doc, "state"), "time", (json_int_t)prism_now_ms());
    if (!ev || prism_bus_publish_json(g->bus, PRISM_SUBJECT_EVENT_PG, ev) != 0)
        LOG_WARN("cannot publish a placement group event");
    json_decref(ev);
}

/* The IDs of the actors of group `id` that are not DEAD (lock held). */
static json_t *group_actors_locked(gcs *g, const char *id)
{
    json_t *list = json_array();
    sqlite3_stmt *st = gcs_db_prepare(g->db, "SELECT id FROM actors WHERE state <> 'DEAD' AND "
                                             "json_extract(spec, '$.placement_group_id') = ?");
    gcs_db_bind_text(st, 1, id);
    while (st && sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(list, json_string((const char *)sqlite3_column_text(st, 0)));
    gcs_db_finish(st);
    return list;
}

int gcs_pg_remove(gcs *g, const char *id)
{
    pthread_mutex_lock(&g->lock);
    json_t *doc = gcs_pg_json_locked(g, id);
    const char *state = json_string_value(json_object_get(doc, "state"));
    json_t *actors = NULL;
    if (doc && strcmp(state, "REMOVED") != 0) {
        sqlite3_stmt *st =
            gcs_db_prepare(g->db, "UPDATE placement_groups SET state = 'REMOVED', reason = NULL, "
                                  "removed_at = ? WHERE id = ?");
        sqlite3_bind_int64(st, 1, prism_now_ms());
        gcs_db_bind_text(st, 2, id);
        if (gcs_db_exec_stmt(st) != SQLITE_DONE)
            LOG_ERROR("placement group %s: cannot record its removal", id);
        actors = group_actors_locked(g, id);
        LOG_INFO("placement group %s is REMOVED", id);
    }
    json_t *after = actors ? gcs_pg_json_locked(g, id) : NULL;
    pthread_mutex_unlock(&g->lock);
    if (!doc)
        return -1;
    if (after)
        publish_state(g, after);
    json_decref(after);
    size_t i;
    json_t *v;
    json_array_foreach(actors, i, v)
        gcs_actor_kill(g, json_string_value(v), true);
    json_array_foreach(actors ? json_object_get(doc, "bundles") : NULL, i, v) {
        const char *node = json_string_value(json_object_get(v, "node_id"));
        if (node)
            gcs_pg_return_bundles(g, id, node, json_object_get(v, "index"));
    }
    json_decref(actors);
    json_decref(doc);
    return 0;
}

/* ---------- owners ---------- */

/* The owners of groups not REMOVED, each once (lock held). */
static json_t *owners_locked(gcs *g)
{
    json_t *list = json_array();
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "SELECT DISTINCT owner FROM placement_groups WHERE state <> 'REMOVED' AND "
               "owner IS NOT NULL");
    while (st && sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(list, json_string((const char *)sqlite3_column_text(st, 0)));
    gcs_db_finish(st);
    return list;
}

/* Only "no responders" is death: a slow owner is alive (as for actors). */
static bool owner_gone(gcs *g, const char *owner)
{
    char subject[PRISM_SUBJECT_MAX];
    if (!wire_owner_subject(owner, subject, sizeof subject))
        return false;
    prism_buf b;
    wire_owner_request(&b, OWNER_PING, "gcs", 0, 0);
    char *reply = NULL;
    size_t len = 0;
    int rc = b.len ? prism_bus_request(g->bus, subject, b.data, b.len, OWNER_PING_MS, &reply, &len)
                   : PRISM_BUS_ERROR;
    prism_buf_free(&b);
    free(reply);
    return rc == PRISM_BUS_NO_RESPONDERS;
}

/* The groups of `owner` not REMOVED (lock held). */
static json_t *groups_of_locked(gcs *g, const char *owner)
{
    json_t *list = json_array();
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "SELECT id FROM placement_groups WHERE state <> 'REMOVED' AND owner = ?");
    gcs_db_bind_text(st, 1, owner);
    while (st && sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(list, json_string((const char *)sqlite3_column_text(st, 0)));
    gcs_db_finish(st);
    return list;
}

/* REMOVED groups are history: the newest REMOVED_KEPT stay listed. Lock held. */
static void prune_removed_locked(gcs *g)
{
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "DELETE FROM placement_groups WHERE seq IN (SELECT seq FROM placement_groups "
               "WHERE state = 'REMOVED' ORDER BY seq DESC LIMIT 1000 OFFSET ?)");
    sqlite3_bind_int64(st, 1, REMOVED_KEPT);
    if (gcs_db_exec_stmt(st) != SQLITE_DONE)
        LOG_WARN("cannot prune removed placement groups");
}

void gcs_pgs_check_owners(gcs *g)
{
    int64_t now = prism_mono_ms();
    if (now < g->pg_owners_mono)
        return;
    g->pg_owners_mono = now + OWNER_CHECK_MS;
    pthread_mutex_lock(&g->lock);
    prune_removed_locked(g);
    json_t *owners = owners_locked(g);
    pthread_mutex_unlock(&g->lock);
    size_t i, k;
    json_t *o, *id;
    json_array_foreach(owners, i, o) {
        if (!owner_gone(g, json_string_value(o)))
            continue;
        pthread_mutex_lock(&g->lock);
        json_t *ids = groups_of_locked(g, json_string_value(o));
        pthread_mutex_unlock(&g->lock);
        json_array_foreach(ids, k, id) {
            LOG_INFO("placement group %s: its owner %s is gone", json_string_value(id),
                     json_string_value(o));
            gcs_pg_remove(g, json_string_value(id));
        }
        json_decref(ids);
    }
    json_decref(owners);
}

/* ---------- what nodes hold ---------- */

/* Whether bundle `index` of group `doc` (NULL: unknown) belongs on `node_id`:
 * false for a removed or unknown group, or a CREATED one that has it
 * elsewhere. A group being placed may not have recorded it yet: true. */
static bool bundle_belongs(json_t *doc, json_int_t index, const char *node_id)
{
    const char *state = json_string_value(json_object_get(doc, "state"));
    if (!state || !strcmp(state, "REMOVED"))
        return false;
    if (strcmp(state, "CREATED") != 0)
        return true;
    json_t *b = json_array_get(json_object_get(doc, "bundles"), (size_t)index);
    const char *node = json_string_value(json_object_get(b, "node_id"));
    return node && !strcmp(node, node_id);
}

void gcs_pgs_reconcile(gcs *g, const char *node_id, json_t *bundles)
{
    json_t *stale = json_array();
    size_t i;
    json_t *b;
    pthread_mutex_lock(&g->lock);
    json_array_foreach(bundles, i, b) {
        const char *pg = json_string_value(json_object_get(b, "placement_group_id"));
        json_t *index = json_object_get(b, "index");
        if (!prism_is_hex(pg, PRISM_ID_HEX_LEN) || !json_is_integer(index))
            continue;
        json_t *doc = gcs_pg_json_locked(g, pg);
        if (!bundle_belongs(doc, json_integer_value(index), node_id))
            json_array_append_new(stale,
                                  json_pack("{s:s,s:O}", "placement_group_id", pg, "index", index));
        json_decref(doc);
    }
    pthread_mutex_unlock(&g->lock);
    char subject[PRISM_SUBJECT_MAX];
    prism_subject_node(subject, sizeof subject, node_id, PRISM_NODE_BUNDLE_RETURN);
    json_array_foreach(stale, i, b) {
        LOG_WARN("node %s holds bundle %lld of placement group %s, which is not its: returned",
                 node_id, (long long)json_integer_value(json_object_get(b, "index")),
                 json_string_value(json_object_get(b, "placement_group_id")));
        if (prism_bus_publish_json(g->bus, subject, b) != 0)
            LOG_WARN("cannot publish a bundle return: %s", prism_bus_last_error(g->bus));
    }
    json_decref(stale);
}
