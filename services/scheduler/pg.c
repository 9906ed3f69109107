/* prism.sched.pg.place: the GCS asks for a placement group's bundles to be
 * reserved (docs/placement-groups.md).
 *
 *   request  {placement_group_id, strategy, bundles: [{index, resources}],
 *             avoid?: [node_id]}
 *   reply    {ok, placement: [{index, node_id}]}, every bundle reserved,
 *            or an error: infeasible (the nodes alive could never hold the
 *            group), busy (not now), invalid_argument.
 *
 * Bundles are assigned on a copy of the view by the strategy, then each
 * node agent reserves its share (bundle.reserve, all or none on that node);
 * when one refuses, what the others reserved is returned: all or nothing.
 * `avoid` names nodes that hold the group's other bundles (a STRICT_SPREAD
 * group re-placing the bundles of a dead node). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prism_buf.h"
#include "prism_log.h"
#include "prism_resources.h"
#include "prism_subjects.h"
#include "prism_time.h"
#include "scheduler.h"

#define MAX_BUNDLES 1024
#define MAX_NODES 4096
#define RESERVE_TIMEOUT_MS 3000

typedef enum pg_strategy { PG_PACK, PG_SPREAD, PG_STRICT_PACK, PG_STRICT_SPREAD } pg_strategy;

static const char *const pg_strategy_names[] = {"PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"};

/* A node of the copy the assignment works on. */
typedef struct slot {
    char id[PRISM_ID_HEX_LEN + 1];
    json_t *total, *free_; /* owned copies */
    double load;
    int used; /* bundles of this group assigned to it */
} slot;

typedef struct pg_req {
    const char *pg_id;
    pg_strategy strategy;
    json_t *bundles; /* borrowed */
    size_t n;
    int *assign; /* bundle → slot */
    slot *slots;
    size_t nslots;
} pg_req;

json_t *sched_bundle_find(const sched_node *n, const char *pg_id, json_int_t index)
{
    size_t i;
    json_t *b;
    json_array_foreach(n->bundles, i, b) {
        const char *id = json_string_value(json_object_get(b, "placement_group_id"));
        if (id && !strcmp(id, pg_id) && json_integer_value(json_object_get(b, "index")) == index)
            return b;
    }
    return NULL;
}

/* ---------- the request ---------- */

static json_t *parse_bundles(pg_req *r, json_t *list)
{
    r->n = json_array_size(list);
    if (!json_is_array(list) || r->n == 0 || r->n > MAX_BUNDLES)
        return prism_error_json("invalid_argument", "'bundles' must be an array of 1-%d bundles",
                                MAX_BUNDLES);
    size_t i;
    json_t *b;
    json_array_foreach(list, i, b) {
        json_t *index = json_object_get(b, "index");
        if (!json_is_integer(index) || json_integer_value(index) < 0 ||
            sched_res_check(json_object_get(b, "resources")))
            return prism_error_json("invalid_argument",
                                    "each bundle needs 'index' and 'resources' (an object of "
                                    "non-negative numbers)");
    }
    r->bundles = list;
    return NULL;
}

static json_t *parse(json_t *msg, pg_req *r)
{
    r->pg_id = json_string_value(json_object_get(msg, "placement_group_id"));
    if (!prism_is_hex(r->pg_id, PRISM_ID_HEX_LEN))
        return prism_error_json("invalid_argument",
                                "'placement_group_id' must be 32 lowercase hex digits");
    const char *name = json_string_value(json_object_get(msg, "strategy"));
    int k = 0;
    while (name && k < 4 && strcmp(name, pg_strategy_names[k]))
        k++;
    if (!name || k == 4)
        return prism_error_json("invalid_argument",
                                "'strategy' must be PACK, SPREAD, STRICT_PACK or STRICT_SPREAD");
    r->strategy = (pg_strategy)k;
    return parse_bundles(r, json_object_get(msg, "bundles"));
}

/* ---------- assigning (on a copy of the view) ---------- */

static bool avoided(json_t *avoid, const char *id)
{
    size_t i;
    json_t *v;
    json_array_foreach(avoid, i, v) {
        if (json_is_string(v) && !strcmp(json_string_value(v), id))
            return true;
    }
    return false;
}

static int slot_load_cmp(const void *a, const void *b)
{
    const slot *x = a, *y = b;
    if (x->load != y->load)
        return x->load < y->load ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* Copies the nodes not avoided, least loaded first (lock held). */
static int copy_view(scheduler *s, pg_req *r, json_t *avoid)
{
    size_t count = sched_node_count(s);
    r->slots = calloc(count ? count : 1, sizeof *r->slots);
    r->assign = calloc(r->n, sizeof *r->assign);
    if (!r->slots || !r->assign)
        return -1;
    for (sched_node *n = s->nodes; n && r->nslots < MAX_NODES; n = n->next) {
        if (avoided(avoid, n->id))
            continue;
        slot *x = &r->slots[r->nslots++];
        snprintf(x->id, sizeof x->id, "%s", n->id);
        x->total = json_deep_copy(n->total);
        x->free_ = json_deep_copy(n->available);
        x->load = sched_res_load(n->total, n->available);
    }
    qsort(r->slots, r->nslots, sizeof *r->slots, slot_load_cmp);
    return 0;
}

static void free_req(pg_req *r)
{
    for (size_t i = 0; i < r->nslots; i++) {
        json_decref(r->slots[i].total);
        json_decref(r->slots[i].free_);
    }
    free(r->slots);
    free(r->assign);
}

static json_t *bundle_res(const pg_req *r, size_t i)
{
    return json_object_get(json_array_get(r->bundles, i), "resources");
}

static void take(pg_req *r, size_t bundle, size_t k)
{
    r->assign[bundle] = (int)k;
    r->slots[k].used++;
    sched_res_add(r->slots[k].free_, bundle_res(r, bundle), -1);
}

/* The slot for one bundle: `pass` 0 looks at slots the group uses already
 * (PACK) or does not use yet (SPREAD, STRICT_SPREAD); pass 1 at any slot. */
static int pick(pg_req *r, size_t bundle)
{
    json_t *want = bundle_res(r, bundle);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k < r->nslots; k++) {
            slot *x = &r->slots[k];
            bool preferred = r->strategy == PG_PACK ? x->used > 0 : x->used == 0;
            if ((pass == 0 && !preferred) || (pass == 1 && r->strategy == PG_STRICT_SPREAD))
                continue;
            if (prism_res_fits(x->free_, NULL, want))
                return (int)k;
        }
    }
    return -1;
}

static json_t *sum_bundles(const pg_req *r)
{
    json_t *sum = json_object();
    for (size_t i = 0; i < r->n; i++) {
        const char *name;
        json_t *v;
        json_object_foreach(bundle_res(r, i), name, v) {
            double old = json_number_value(json_object_get(sum, name));
            json_object_set_new(sum, name, json_real(old + json_number_value(v)));
        }
    }
    return sum;
}

/* true when every bundle got a slot. */
static bool assign(pg_req *r)
{
    if (r->strategy == PG_STRICT_PACK) {
        json_t *sum = sum_bundles(r);
        size_t k = 0;
        while (k < r->nslots && !prism_res_fits(r->slots[k].free_, NULL, sum))
            k++;
        json_decref(sum);
        for (size_t i = 0; k < r->nslots && i < r->n; i++)
            take(r, i, k);
        return k < r->nslots;
    }
    for (size_t i = 0; i < r->n; i++) {
        int k = pick(r, i);
        if (k < 0)
            return false;
        take(r, i, (size_t)k);
    }
    return true;
}

/* Whether the nodes could hold the group were they idle (by totals). */
static json_t *why_not(pg_req *r)
{
    for (size_t i = 0; i < r->nslots; i++) {
        json_decref(r->slots[i].free_);
        r->slots[i].free_ = json_deep_copy(r->slots[i].total);
        r->slots[i].used = 0;
    }
    if (!r->nslots)
        return prism_error_json("infeasible", "no node is alive to hold it");
    if (!assign(r)) {
        const char *how = r->strategy == PG_STRICT_PACK     ? " on one node"
                          : r->strategy == PG_STRICT_SPREAD ? " on distinct nodes"
                                                            : "";
        return prism_error_json("infeasible", "the %zu node%s alive cannot hold its %zu bundle%s%s",
                                r->nslots, r->nslots == 1 ? "" : "s", r->n, r->n == 1 ? "" : "s",
                                how);
    }
    return prism_error_json("busy", "not enough free resources now");
}

/* ---------- reserving ---------- */

static json_t *share_of(const pg_req *r, size_t k)
{
    json_t *list = json_array();
    for (size_t i = 0; i < r->n; i++)
        if ((size_t)r->assign[i] == k)
            json_array_append(list, json_array_get(r->bundles, i));
    return list;
}

/* The node's free pool from the reply, and the bundles in the view at once
 * (the group's leases may come before the node's next report). */
static void note_reserved(scheduler *s, const char *node_id, const char *pg_id, json_t *share,
                          json_t *reply)
{
    json_t *avail = json_object_get(reply, "available");
    pthread_mutex_lock(&s->lock);
    sched_node *n = sched_node_find(s, node_id);
    if (n && !sched_res_check(avail)) {
        json_decref(n->available);
        n->available = json_deep_copy(avail);
    }
    if (n && !n->bundles)
        n->bundles = json_array();
    size_t i;
    json_t *b;
    json_array_foreach(n ? share : NULL, i, b) {
        json_t *index = json_object_get(b, "index"), *res = json_object_get(b, "resources");
        if (!sched_bundle_find(n, pg_id, json_integer_value(index)))
            json_array_append_new(n->bundles, json_pack("{s:s,s:O,s:O,s:o}", "placement_group_id",
                                                        pg_id, "index", index, "resources", res,
                                                        "available", json_deep_copy(res)));
    }
    pthread_mutex_unlock(&s->lock);
}

static int send_node(scheduler *s, const char *node_id, const char *verb, json_t *req,
                     prism_buf *why)
{
    const char *pg_id = json_string_value(json_object_get(req, "placement_group_id"));
    char subject[PRISM_SUBJECT_MAX];
    prism_subject_node(subject, sizeof subject, node_id, verb);
    json_t *reply = NULL;
    int rc = prism_bus_request_json(s->bus, subject, req, RESERVE_TIMEOUT_MS, &reply);
    bool ok = rc == PRISM_BUS_OK && json_is_true(json_object_get(reply, "ok"));
    if (ok && !strcmp(verb, PRISM_NODE_BUNDLE_RESERVE))
        note_reserved(s, node_id, pg_id, json_object_get(req, "bundles"), reply);
    if (!ok && why) {
        const char *msg =
            json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
        prism_buf_printf(why, "node %.8s: %s", node_id,
                         msg                       ? msg
                         : rc == PRISM_BUS_TIMEOUT ? "no answer in time"
                                                   : "not reachable");
    }
    json_decref(reply);
    return ok ? 0 : -1;
}

static void give_back(scheduler *s, const pg_req *r, size_t upto)
{
    for (size_t k = 0; k < upto; k++) {
        for (size_t i = 0; i < r->n; i++) {
            if ((size_t)r->assign[i] != k)
                continue;
            json_t *req = json_pack("{s:s,s:O}", "placement_group_id", r->pg_id, "index",
                                    json_object_get(json_array_get(r->bundles, i), "index"));
            if (send_node(s, r->slots[k].id, PRISM_NODE_BUNDLE_RETURN, req, NULL) != 0)
                LOG_WARN("placement group %s: node %s did not take back a bundle", r->pg_id,
                         r->slots[k].id);
            json_decref(req);
        }
    }
}

static json_t *reserve(scheduler *s, const pg_req *r)
{
    prism_buf why;
    prism_buf_init(&why, 4096);
    size_t k = 0;
    for (; k < r->nslots; k++) {
        if (!r->slots[k].used)
            continue;
        json_t *req =
            json_pack("{s:s,s:o}", "placement_group_id", r->pg_id, "bundles", share_of(r, k));
        int rc = send_node(s, r->slots[k].id, PRISM_NODE_BUNDLE_RESERVE, req, &why);
        json_decref(req);
        if (rc != 0)
            break;
    }
    json_t *answer;
    if (k < r->nslots) {
        give_back(s, r, k);
        answer = prism_error_json("busy", "a node refused its bundles: %s", why.data);
    } else {
        json_t *placement = json_array();
        for (size_t i = 0; i < r->n; i++)
            json_array_append_new(placement,
                                  json_pack("{s:O,s:s}", "index",
                                            json_object_get(json_array_get(r->bundles, i), "index"),
                                            "node_id", r->slots[r->assign[i]].id));
        answer = json_pack("{s:b,s:o}", "ok", 1, "placement", placement);
    }
    prism_buf_free(&why);
    return answer;
}

static json_t *place(scheduler *s, json_t *msg)
{
    pg_req r = {0};
    json_t *answer = parse(msg, &r);
    if (answer)
        return answer;
    pthread_mutex_lock(&s->lock);
    int rc = copy_view(s, &r, json_object_get(msg, "avoid"));
    bool fits = rc == 0 && assign(&r);
    if (rc != 0)
        answer = prism_error_json("busy", "out of memory");
    else if (!fits)
        answer = why_not(&r);
    pthread_mutex_unlock(&s->lock);
    if (!answer)
        answer = reserve(s, &r);
    free_req(&r);
    return answer;
}

static void on_place(prism_bus *bus, const char *subject, const char *reply, const char *data,
                     size_t len, void *ud)
{
    scheduler *s = ud;
    if (!reply)
        return;
    json_t *msg = json_loadb(data, len, 0, NULL);
    json_t *answer = json_is_object(msg)
                         ? place(s, msg)
                         : prism_error_json("invalid_json", "the payload must be a JSON object");
    const char *code = json_string_value(json_object_get(json_object_get(answer, "error"), "code"));
    const char *id = json_string_value(json_object_get(msg, "placement_group_id"));
    LOG_DEBUG("placement group %s: %s", id ? id : "?", code ? code : "placed");
    if (answer && prism_bus_publish_json(s->bus, reply, answer) != 0)
        LOG_WARN("cannot answer a placement request: %s", prism_bus_last_error(s->bus));
    json_decref(answer);
    json_decref(msg);
}

/* ---------- removed groups ---------- */

#define REMOVED_MS 3600000 /* leases of a removed group are refused this long */

bool sched_pg_removed(scheduler *s, const char *pg_id)
{
    int64_t now = prism_mono_ms();
    for (size_t i = 0; i < SCHED_TOMBS; i++)
        if (s->removed_pgs[i].until_mono > now && !strcmp(s->removed_pgs[i].id, pg_id))
            return true;
    return false;
}

static void on_pg_event(prism_bus *bus, const char *subject, const char *reply, const char *data,
                        size_t len, void *ud)
{
    scheduler *s = ud;
    json_t *msg = json_loadb(data, len, 0, NULL);
    const char *id = json_string_value(json_object_get(msg, "placement_group_id"));
    const char *state = json_string_value(json_object_get(msg, "state"));
    if (prism_is_hex(id, PRISM_ID_HEX_LEN) && state && !strcmp(state, "REMOVED")) {
        pthread_mutex_lock(&s->lock);
        sched_tomb *t = &s->removed_pgs[s->next_removed_pg++ % SCHED_TOMBS];
        snprintf(t->id, sizeof t->id, "%s", id);
        t->until_mono = prism_mono_ms() + REMOVED_MS;
        pthread_mutex_unlock(&s->lock);
    }
    json_decref(msg);
}

int sched_pg_start(scheduler *s)
{
    if (prism_bus_subscribe(s->bus, PRISM_SUBJECT_EVENT_PG, NULL, on_pg_event, s) != 0)
        return -1;
    return prism_bus_subscribe(s->bus, PRISM_SUBJECT_SCHED_PG_PLACE, "scheduler", on_place, s);
}
