/* prism.sched.lease: an owner asks for a worker lease; the scheduler picks
 * candidate nodes from its view and asks each node agent in turn
 * (prism.node.<id>.worker.lease) until one grants it.
 *
 *   request  {owner_id, resources, strategy?, node_id?, soft?,
 *             locality?: {node_id: bytes}, timeout_ms?, job_id?,
 *             placement_group_id?, bundle_index?, queue_ms?, request_id?}
 *   reply    the node agent's grant {ok, lease_id, worker_id, node_id, unix, tcp}
 *            or an error: infeasible (no node alive has the resources at all),
 *            busy (every node that could run it is full), invalid_argument.
 *
 * With `queue_ms` (and a `request_id` of the owner's choosing) an owner of
 * the form owner:<hex> is not answered busy: its request waits in the
 * scheduler's queue (waitq.c) for up to queue_ms, and the reply says so:
 * {ok: false, queued: true, request_id, contended}. The grant (or the error
 * that ends the wait) comes later, with the request_id, on the owner's lease
 * subject prism.owner.<hex>.l; so does {queued, contended: true} when other
 * owners come to wait for the same shape. A request of a shape others wait
 * for waits behind them, even when a node has room: the turns stay fair.
 * The same request asked again (owner and request_id) keeps its place, and
 * its wait starts anew: owners ask so now and then, to learn that it is
 * still there (a scheduler that died lost its queue).
 * A lease thread serves the queue (the pump) when a node's report may show
 * room. Placement groups' and jobs' leases never wait here.
 *
 * With `placement_group_id` the lease draws on a bundle of that group
 * (bundle_index, or -1 for any): only nodes whose report lists such a bundle
 * with room are asked (docs/placement-groups.md); a removed group's leases
 * are answered placement_group_removed.
 *
 * With `job_id` the GCS asks for a job's driver: the node agent holds the
 * resources for that job without a worker (grant {ok, lease_id, job_id,
 * node_id}) until the GCS's job.start takes them. Jobs and tasks are placed
 * by this one code, on the node agents' one account.
 *
 * The NATS callback only queues the request: lease threads answer it, so a
 * node agent that is slow to answer (a worker starting) holds up one thread,
 * not every request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prism_buf.h"
#include "prism_log.h"
#include "prism_resources.h"
#include "prism_subjects.h"
#include "prism_time.h"
#include "prism_wire.h"
#include "scheduler.h"

#define MAX_CANDIDATES 8
#define OWNER_ID_MAX 128
#define REPLY_MARGIN_MS 100 /* answer the owner this long before its deadline */
#define MIN_FORWARD_MS 50   /* not worth asking a node with less time left */
#define TIMEOUT_MAX_MS 600000
#define REQUEST_ID_MAX 64

typedef enum strategy { STRATEGY_DEFAULT, STRATEGY_SPREAD, STRATEGY_NODE_AFFINITY } strategy;

static const char *const strategy_names[] = {"DEFAULT", "SPREAD", "NODE_AFFINITY"};

/* A parsed request; JSON borrowed from the message. */
typedef struct lease_req {
    const char *owner_id;
    const char *job_id; /* a job's driver (the GCS asks), or NULL */
    json_t *resources;
    strategy strategy;
    const char *node_id; /* NODE_AFFINITY */
    bool soft;
    json_t *locality; /* object or NULL */
    int64_t deadline_mono;
    const char *pg_id;       /* drawn from a placement group's bundle, or NULL */
    json_int_t bundle_index; /* -1: any of its bundles */
    int64_t queue_ms;        /* > 0: wait this long in the queue rather than be answered busy */
    const char *request_id;  /* the owner's name for the request (with queue_ms) */
} lease_req;

typedef struct candidates {
    char ids[MAX_CANDIDATES][PRISM_ID_HEX_LEN + 1];
    int n;
} candidates;

/* A node and its sort keys (smaller first). */
typedef struct ranked {
    sched_node *node;
    double k1, k2;
} ranked;

/* ---------- the request ---------- */

static json_t *parse_strategy(json_t *msg, lease_req *r)
{
    json_t *v = json_object_get(msg, "strategy");
    const char *name = json_string_value(v);
    r->strategy = STRATEGY_DEFAULT;
    if (v && !json_is_null(v) && !name)
        return prism_error_json("invalid_argument", "'strategy' must be a string");
    if (!name)
        return NULL;
    for (int i = 0; i < 3; i++) {
        if (!strcmp(name, strategy_names[i])) {
            r->strategy = (strategy)i;
            return NULL;
        }
    }
    return prism_error_json("invalid_argument",
                            "'strategy' must be DEFAULT, SPREAD or NODE_AFFINITY, not '%s'", name);
}

static json_t *parse_group(json_t *msg, lease_req *r)
{
    json_t *pg = json_object_get(msg, "placement_group_id");
    json_t *index = json_object_get(msg, "bundle_index");
    r->bundle_index = -1;
    if (!pg || json_is_null(pg))
        return NULL;
    r->pg_id = json_string_value(pg);
    if (!prism_is_hex(r->pg_id, PRISM_ID_HEX_LEN))
        return prism_error_json("invalid_argument",
                                "'placement_group_id' must be 32 lowercase hex digits");
    if (index && (!json_is_integer(index) || json_integer_value(index) < -1))
        return prism_error_json("invalid_argument", "'bundle_index' must be an integer from -1");
    r->bundle_index = index ? json_integer_value(index) : -1;
    if (r->job_id)
        return prism_error_json("invalid_argument", "a job's lease cannot name a placement group");
    return NULL;
}

static json_t *parse_placement(json_t *msg, lease_req *r)
{
    json_t *err = parse_strategy(msg, r);
    if (!err)
        err = parse_group(msg, r);
    if (err)
        return err;
    r->node_id = json_string_value(json_object_get(msg, "node_id"));
    r->soft = json_is_true(json_object_get(msg, "soft"));
    if (r->strategy == STRATEGY_NODE_AFFINITY && (!r->node_id || !*r->node_id))
        return prism_error_json("invalid_argument", "NODE_AFFINITY needs 'node_id'");
    r->locality = json_object_get(msg, "locality");
    if (r->locality && !json_is_null(r->locality) && sched_res_check(r->locality))
        return prism_error_json("invalid_argument",
                                "'locality' must map node IDs to non-negative byte counts");
    if (json_is_null(r->locality))
        r->locality = NULL;
    return NULL;
}

static json_t *parse(json_t *msg, lease_req *r, int64_t received, int64_t timeout_ms)
{
    r->owner_id = json_string_value(json_object_get(msg, "owner_id"));
    if (!r->owner_id || !*r->owner_id || strlen(r->owner_id) > OWNER_ID_MAX)
        return prism_error_json("invalid_argument",
                                "'owner_id' must be a string of 1-%d characters", OWNER_ID_MAX);
    if (!json_object_get(msg, "resources"))
        json_object_set_new(msg, "resources", json_object());
    r->resources = json_object_get(msg, "resources");
    const char *why = sched_res_check(r->resources);
    if (why)
        return prism_error_json("invalid_argument", "%s", why);
    json_t *t = json_object_get(msg, "timeout_ms");
    if (t && (!json_is_integer(t) || json_integer_value(t) < 1 ||
              json_integer_value(t) > TIMEOUT_MAX_MS))
        return prism_error_json("invalid_argument", "'timeout_ms' must be an integer from 1 to %d",
                                TIMEOUT_MAX_MS);
    r->deadline_mono = received + (t ? json_integer_value(t) : timeout_ms);
    json_t *q = json_object_get(msg, "queue_ms");
    if (q && (!json_is_integer(q) || json_integer_value(q) < 0 ||
              json_integer_value(q) > TIMEOUT_MAX_MS))
        return prism_error_json("invalid_argument", "'queue_ms' must be an integer from 0 to %d",
                                TIMEOUT_MAX_MS);
    r->queue_ms = q ? json_integer_value(q) : 0;
    r->request_id = json_string_value(json_object_get(msg, "request_id"));
    if (r->queue_ms > 0 &&
        (!r->request_id || !*r->request_id || strlen(r->request_id) > REQUEST_ID_MAX))
        return prism_error_json("invalid_argument",
                                "'queue_ms' needs a 'request_id' of 1-%d characters",
                                REQUEST_ID_MAX);
    json_t *job = json_object_get(msg, "job_id");
    r->job_id = json_string_value(job);
    if (job && !json_is_null(job) &&
        (!r->job_id || !*r->job_id || strlen(r->job_id) > OWNER_ID_MAX))
        return prism_error_json("invalid_argument", "'job_id' must be a string of 1-%d characters",
                                OWNER_ID_MAX);
    return parse_placement(msg, r);
}

/* ---------- choosing candidates (lock held) ---------- */

/* "GPU 1, accel 2": what `want` asks for that no node in the view has. */
static char *missing_everywhere(scheduler *s, json_t *want)
{
    json_t *missing = json_object();
    const char *name;
    json_t *v;
    json_object_foreach(want, name, v) {
        double need = json_number_value(v);
        bool found = false;
        for (sched_node *n = s->nodes; n && !found; n = n->next)
            found = json_number_value(json_object_get(n->total, name)) + 1e-9 >= need;
        if (need > 0 && !found)
            json_object_set(missing, name, v);
    }
    char *text = json_object_size(missing) ? sched_res_describe(missing) : NULL;
    json_decref(missing);
    return text;
}

static json_t *infeasible(scheduler *s, json_t *want)
{
    char *asked = sched_res_describe(want);
    char *missing = missing_everywhere(s, want);
    json_t *err;
    if (!s->nodes)
        err = prism_error_json("infeasible", "no node is alive to run it (it asks for %s)", asked);
    else if (missing)
        err = prism_error_json("infeasible", "no node has %s", missing);
    else
        err = prism_error_json("infeasible", "no single node has %s together", asked);
    free(asked);
    free(missing);
    return err;
}

static double locality_bytes(const lease_req *r, const sched_node *n)
{
    return r->locality ? json_number_value(json_object_get(r->locality, n->id)) : 0;
}

static void rank_node(ranked *x, const lease_req *r, sched_node *n)
{
    x->node = n;
    if (r->strategy == STRATEGY_SPREAD) {
        x->k1 = (double)n->last_chosen; /* least recently chosen first */
        x->k2 = sched_res_load(n->total, n->available);
    } else {
        x->k1 = -locality_bytes(r, n); /* most argument bytes first */
        x->k2 = sched_res_load(n->total, n->available);
    }
}

static int ranked_cmp(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->k1 != y->k1)
        return x->k1 < y->k1 ? -1 : 1;
    if (x->k2 != y->k2)
        return x->k2 < y->k2 ? -1 : 1;
    if (x->node->last_chosen != y->node->last_chosen)
        return x->node->last_chosen < y->node->last_chosen ? -1 : 1;
    return strcmp(x->node->name, y->node->name);
}

/* Appends the nodes with room (but `skip`) in the strategy's order. */
static void add_ranked(scheduler *s, const lease_req *r, const char *skip, candidates *c)
{
    size_t count = sched_node_count(s), k = 0;
    ranked *list = calloc(count ? count : 1, sizeof *list);
    if (!list)
        return;
    for (sched_node *n = s->nodes; n; n = n->next)
        if ((!skip || strcmp(n->id, skip)) && prism_res_fits(n->total, NULL, r->resources) &&
            prism_res_fits(n->available, NULL, r->resources))
            rank_node(&list[k++], r, n);
    qsort(list, k, sizeof *list, ranked_cmp);
    for (size_t i = 0; i < k && c->n < MAX_CANDIDATES; i++)
        snprintf(c->ids[c->n++], sizeof c->ids[0], "%s", list[i].node->id);
    free(list);
}

static json_t *busy_everywhere(scheduler *s, json_t *want)
{
    int feasible = 0;
    for (sched_node *n = s->nodes; n; n = n->next)
        feasible += prism_res_fits(n->total, NULL, want);
    char *asked = sched_res_describe(want);
    json_t *err = prism_error_json("busy", "all %d node%s that can hold %s are busy", feasible,
                                   feasible == 1 ? "" : "s", asked);
    free(asked);
    return err;
}

/* NODE_AFFINITY: the node first; soft falls back to DEFAULT, hard fails. */
static json_t *choose_affinity(scheduler *s, const lease_req *r, candidates *c)
{
    sched_node *n = sched_node_find(s, r->node_id);
    bool feasible = n && prism_res_fits(n->total, NULL, r->resources);
    if (feasible && prism_res_fits(n->available, NULL, r->resources))
        snprintf(c->ids[c->n++], sizeof c->ids[0], "%s", n->id);
    if (r->soft) {
        add_ranked(s, r, r->node_id, c);
        return NULL;
    }
    if (!n)
        return prism_error_json("infeasible", "node %s is not alive (NODE_AFFINITY, not soft)",
                                r->node_id);
    if (!feasible) {
        char *asked = sched_res_describe(r->resources);
        json_t *err =
            prism_error_json("infeasible", "node %s (%s) does not have %s", n->id, n->name, asked);
        free(asked);
        return err;
    }
    return c->n ? NULL : prism_error_json("busy", "node %s (%s) is busy", n->id, n->name);
}

/* A placement group's lease: the nodes holding a bundle it fits in. */
static json_t *choose_group(scheduler *s, const lease_req *r, candidates *c)
{
    if (sched_pg_removed(s, r->pg_id))
        return prism_error_json("placement_group_removed", "placement group %s was removed",
                                r->pg_id);
    bool held = false, feasible = false;
    for (sched_node *n = s->nodes; n; n = n->next) {
        bool room = false;
        size_t i;
        json_t *b;
        json_array_foreach(n->bundles, i, b) {
            const char *id = json_string_value(json_object_get(b, "placement_group_id"));
            json_int_t index = json_integer_value(json_object_get(b, "index"));
            if (!id || strcmp(id, r->pg_id) != 0 ||
                (r->bundle_index >= 0 && index != r->bundle_index))
                continue;
            held = true;
            feasible |= prism_res_fits(json_object_get(b, "resources"), NULL, r->resources);
            room |= prism_res_fits(json_object_get(b, "available"), NULL, r->resources);
        }
        if (room && c->n < MAX_CANDIDATES)
            snprintf(c->ids[c->n++], sizeof c->ids[0], "%s", n->id);
    }
    if (c->n)
        return NULL;
    char *asked = sched_res_describe(r->resources);
    json_t *err;
    if (!held)
        err = prism_error_json("busy",
                               "placement group %s has no bundle%s reserved (it is not "
                               "placed yet, or was removed)",
                               r->pg_id, r->bundle_index >= 0 ? " of that index" : "");
    else if (!feasible)
        err = prism_error_json("infeasible", "no bundle of placement group %s can hold %s",
                               r->pg_id, asked);
    else
        err = prism_error_json("busy", "the bundles of placement group %s are busy", r->pg_id);
    free(asked);
    return err;
}

static json_t *choose(scheduler *s, const lease_req *r, candidates *c)
{
    if (r->pg_id)
        return choose_group(s, r, c);
    bool feasible = false;
    for (sched_node *n = s->nodes; n && !feasible; n = n->next)
        feasible = prism_res_fits(n->total, NULL, r->resources);
    if (r->strategy == STRATEGY_NODE_AFFINITY) {
        json_t *err = choose_affinity(s, r, c);
        if (err || c->n)
            return err;
    } else {
        add_ranked(s, r, NULL, c);
    }
    if (c->n)
        return NULL;
    return feasible ? busy_everywhere(s, r->resources) : infeasible(s, r->resources);
}

/* ---------- asking the node agents ---------- */

/* Takes what the node has free after the grant from the grant itself (or
 * subtracts the lease) until its next report; drops that from the reply. */
static void note_grant(scheduler *s, const lease_req *r, const char *node_id, json_t *grant)
{
    json_t *resources = r->resources;
    json_t *avail = json_object_get(grant, "available");
    pthread_mutex_lock(&s->lock);
    sched_node *n = sched_node_find(s, node_id);
    if (n && !sched_res_check(avail)) {
        json_decref(n->available);
        n->available = json_deep_copy(avail);
    } else if (n && !r->pg_id) {
        sched_res_add(n->available, resources, -1);
    }
    json_t *bundle = n && r->pg_id && r->bundle_index >= 0
                         ? sched_bundle_find(n, r->pg_id, r->bundle_index)
                         : NULL;
    if (bundle) /* until the next report (any bundle: that report tells which) */
        sched_res_add(json_object_get(bundle, "available"), resources, -1);
    if (n)
        n->last_chosen = ++s->grant_seq;
    pthread_mutex_unlock(&s->lock);
    json_object_del(grant, "available");
}

static bool is_error(json_t *reply, const char *code)
{
    const char *c = json_string_value(json_object_get(json_object_get(reply, "error"), "code"));
    return c && !strcmp(c, code);
}

/* The grant, an error for the owner, or NULL to try the next node. */
static json_t *forward(scheduler *s, const lease_req *r, const char *node_id, int timeout_ms,
                       prism_buf *why)
{
    prism_id lid;
    char lease_id[PRISM_ID_HEX_LEN + 1], subject[128];
    prism_id_random(&lid);
    prism_id_to_hex(&lid, lease_id);
    prism_subject_node(subject, sizeof subject, node_id, PRISM_NODE_WORKER_LEASE);
    json_t *req = json_pack("{s:s,s:s,s:O,s:i}", "lease_id", lease_id, "owner_id", r->owner_id,
                            "resources", r->resources, "timeout_ms", timeout_ms);
    if (req && r->job_id)
        json_object_set_new(req, "job_id", json_string(r->job_id));
    if (req && r->pg_id) {
        json_object_set_new(req, "placement_group_id", json_string(r->pg_id));
        json_object_set_new(req, "bundle_index", json_integer(r->bundle_index));
    }
    json_t *reply = NULL;
    int rc = prism_bus_request_json(s->bus, subject, req, timeout_ms, &reply);
    json_decref(req);
    prism_metric_add(s->m.forwards, 1);
    if (rc == PRISM_BUS_OK && json_is_true(json_object_get(reply, "ok"))) {
        if (!json_object_get(reply, "node_id"))
            json_object_set_new(reply, "node_id", json_string(node_id));
        note_grant(s, r, node_id, reply);
        return reply;
    }
    if (rc == PRISM_BUS_OK && reply && !is_error(reply, "busy") &&
        !is_error(reply, "unknown_node") && !is_error(reply, "shutting_down"))
        return reply; /* the request itself is wrong: the owner should know */
    if (rc == PRISM_BUS_NO_RESPONDERS)
        sched_view_forget(s, node_id); /* its agent is gone; a report brings it back */
    const char *msg =
        json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
    prism_buf_printf(why, "; node %.8s: %s", node_id,
                     msg                       ? msg
                     : rc == PRISM_BUS_TIMEOUT ? "no answer in time"
                                               : "not reachable");
    json_decref(reply);
    return NULL;
}

/* Asks the candidates in turn: the grant, an error for the owner, or a
 * busy error when none could grant it. No lock held. */
static json_t *ask_nodes(scheduler *s, const lease_req *r, const candidates *c)
{
    json_t *answer = NULL;
    prism_buf why;
    prism_buf_init(&why, 4096);
    for (int i = 0; !answer && i < c->n; i++) {
        int64_t left = r->deadline_mono - prism_mono_ms() - REPLY_MARGIN_MS;
        if (left < MIN_FORWARD_MS)
            break;
        int timeout = (int)(left < s->cfg.forward_timeout_ms ? left : s->cfg.forward_timeout_ms);
        answer = forward(s, r, c->ids[i], timeout, &why);
    }
    if (!answer)
        answer =
            prism_error_json("busy", "no node could grant the lease%s", why.data ? why.data : "");
    prism_buf_free(&why);
    return answer;
}

static json_t *place(scheduler *s, const lease_req *r)
{
    candidates c = {0};
    pthread_mutex_lock(&s->lock);
    json_t *answer = choose(s, r, &c);
    pthread_mutex_unlock(&s->lock);
    return answer ? answer : ask_nodes(s, r, &c);
}

static void count(scheduler *s, json_t *answer)
{
    if (json_is_true(json_object_get(answer, "queued")))
        return; /* counted as queued */
    if (json_is_true(json_object_get(answer, "ok")))
        prism_metric_add(s->m.grants, 1);
    else if (is_error(answer, "infeasible"))
        prism_metric_add(s->m.infeasible, 1);
    else if (is_error(answer, "busy"))
        prism_metric_add(s->m.busy, 1);
    else
        prism_metric_add(s->m.errors, 1);
}

static void send_answer(scheduler *s, const char *reply, json_t *answer)
{
    if (answer && prism_bus_publish_json(s->bus, reply, answer) != 0)
        LOG_WARN("cannot answer a lease request: %s", prism_bus_last_error(s->bus));
    json_decref(answer);
}

/* ---------- the queue ---------- */

/* What requests of one shape share: resources and placement (not locality). */
static char *shape_key(const lease_req *r)
{
    json_t *k =
        json_pack("{s:O,s:s}", "resources", r->resources, "strategy", strategy_names[r->strategy]);
    if (k && r->strategy == STRATEGY_NODE_AFFINITY) {
        json_object_set_new(k, "node_id", json_string(r->node_id));
        json_object_set_new(k, "soft", json_boolean(r->soft));
    }
    char *key = k ? json_dumps(k, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(k);
    return key;
}

/* Whether `r` may wait in the queue, and where its later answers go. */
static bool queueable(const lease_req *r, char *subject, size_t n)
{
    if (r->queue_ms <= 0 || r->pg_id || r->job_id || !wire_owner_subject(r->owner_id, subject, n))
        return false;
    size_t len = strlen(subject);
    return snprintf(subject + len, n - len, "%s", PRISM_SUBJECT_OWNER_LEASE_SUFFIX) <
           (int)(n - len);
}

/* Queues `r` (its message `msg`): the reply that says so, or why not. */
static json_t *enqueue(scheduler *s, const lease_req *r, json_t *msg, const char *key,
                       const char *subject)
{
    sched_waiter *w = calloc(1, sizeof *w);
    if (w) {
        w->owner = strdup(r->owner_id);
        w->request_id = strdup(r->request_id);
        w->reply = strdup(subject);
        w->msg = json_incref(msg);
        w->queued_mono = prism_mono_ms();
        w->deadline_mono = w->queued_mono + r->queue_ms;
    }
    if (!w || !w->owner || !w->request_id || !w->reply) {
        sched_waiter_free(w);
        return prism_error_json("internal", "out of memory");
    }
    json_t *notices = json_array();
    bool contended = false;
    pthread_mutex_lock(&s->lock);
    json_t *err = sched_waitq_add(s, key, w, &contended, notices);
    if (!err) { /* room may have come since the look that found none */
        s->pump_wanted = true;
        pthread_cond_signal(&s->queue_cv);
    }
    pthread_mutex_unlock(&s->lock);
    sched_waitq_publish(s, notices);
    json_decref(notices);
    if (err) {
        sched_waiter_free(w);
        prism_metric_add(s->m.queue_full, 1);
        return err;
    }
    prism_metric_add(s->m.queued, 1);
    return json_pack("{s:b,s:b,s:s,s:b}", "ok", 0, "queued", 1, "request_id", r->request_id,
                     "contended", contended);
}

/* A lease granted for a request dropped meanwhile: back to its node. */
static void give_back(scheduler *s, json_t *grant)
{
    const char *node = json_string_value(json_object_get(grant, "node_id"));
    const char *lease = json_string_value(json_object_get(grant, "lease_id"));
    char subject[PRISM_SUBJECT_MAX];
    if (!node || !lease ||
        !prism_subject_node(subject, sizeof subject, node, PRISM_NODE_WORKER_RETURN))
        return;
    json_t *msg = json_pack("{s:s}", "lease_id", lease);
    prism_bus_publish_json(s->bus, subject, msg);
    json_decref(msg);
}

/* Serves waiting requests while some shape has room, owners taking turns.
 * Called and returns with the lock held; drops it while asking nodes. */
static void pump(scheduler *s)
{
    s->pumping = true;
    s->pump_wanted = false;
    sched_shape *sh = NULL;
    sched_waiter *w;
    while (!s->quit && (w = sched_waitq_next(s, &sh))) {
        lease_req r = {0};
        candidates c = {0};
        json_t *answer = parse(w->msg, &r, prism_mono_ms(), s->cfg.lease_timeout_ms);
        if (!answer)
            answer = choose(s, &r, &c);
        if (!answer) { /* a node has room: `w` stays queued (and `sh` with it) meanwhile */
            w->placing = true;
            pthread_mutex_unlock(&s->lock);
            answer = ask_nodes(s, &r, &c);
            pthread_mutex_lock(&s->lock);
            w->placing = false;
        }
        if (is_error(answer, "busy") && !w->dropped) { /* until the next report */
            sh->stuck = true;
            json_decref(answer);
            continue;
        }
        sched_waitq_done(s, sh, w);
        pthread_mutex_unlock(&s->lock);
        bool granted = json_is_true(json_object_get(answer, "ok"));
        if (w->dropped) {
            if (granted)
                give_back(s, answer);
            json_decref(answer);
        } else {
            json_object_set_new(answer, "request_id", json_string(w->request_id));
            count(s, answer);
            if (granted)
                prism_metric_add(s->m.queue_grants, 1);
            LOG_DEBUG("queued lease request %s of %s: %s", w->request_id, w->owner,
                      granted ? "granted" : "refused");
            send_answer(s, w->reply, answer);
        }
        sched_waiter_free(w);
        pthread_mutex_lock(&s->lock);
    }
    s->pumping = false;
}

static json_t *place_or_queue(scheduler *s, const lease_req *r, json_t *msg)
{
    char subject[PRISM_SUBJECT_MAX];
    char *key = queueable(r, subject, sizeof subject) ? shape_key(r) : NULL;
    bool behind = false, waits = false, contended = false;
    if (key) {
        pthread_mutex_lock(&s->lock);
        waits = sched_waitq_refresh(s, r->owner_id, r->request_id, prism_mono_ms() + r->queue_ms,
                                    &contended);
        behind = sched_waitq_has(s, key); /* others wait for this shape: after them */
        pthread_mutex_unlock(&s->lock);
    }
    if (waits) { /* asked again: it keeps its place */
        free(key);
        return json_pack("{s:b,s:b,s:s,s:b}", "ok", 0, "queued", 1, "request_id", r->request_id,
                         "contended", contended);
    }
    json_t *answer = behind ? NULL : place(s, r);
    if (key && (behind || is_error(answer, "busy"))) {
        json_decref(answer);
        answer = enqueue(s, r, msg, key, subject);
    }
    free(key);
    return answer;
}

static void handle(scheduler *s, sched_job *j)
{
    json_t *msg = json_loadb(j->data, j->len, 0, NULL), *answer;
    lease_req r = {0};
    if (!json_is_object(msg))
        answer = prism_error_json("invalid_json", "the payload must be a JSON object");
    else if (!(answer = parse(msg, &r, j->received_mono, s->cfg.lease_timeout_ms)))
        answer = place_or_queue(s, &r, msg);
    count(s, answer);
    if (json_is_true(json_object_get(answer, "queued")))
        LOG_DEBUG("lease request %s of %s queued", r.request_id, r.owner_id);
    else if (json_is_true(json_object_get(answer, "ok")))
        LOG_DEBUG("lease %s for owner %s on node %s",
                  json_string_value(json_object_get(answer, "lease_id")), r.owner_id,
                  json_string_value(json_object_get(answer, "node_id")));
    else
        LOG_DEBUG("lease refused: %s",
                  json_string_value(json_object_get(json_object_get(answer, "error"), "message")));
    send_answer(s, j->reply, answer);
    prism_metric_observe(s->m.answer_seconds, (double)(prism_mono_ns() - j->received_ns) / 1e9);
    json_decref(msg);
}

/* ---------- the queue and its threads ---------- */

static void job_free(sched_job *j)
{
    if (!j)
        return;
    free(j->reply);
    free(j->data);
    free(j);
}

static sched_job *job_new(const char *reply, const char *data, size_t len)
{
    sched_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->reply = strdup(reply);
    j->data = malloc(len + 1);
    if (!j->reply || !j->data) {
        job_free(j);
        return NULL;
    }
    memcpy(j->data, data, len);
    j->data[len] = '\0';
    j->len = len;
    j->received_mono = prism_mono_ms();
    j->received_ns = prism_mono_ns();
    return j;
}

static void on_lease(prism_bus *bus, const char *subject, const char *reply, const char *data,
                     size_t len, void *ud)
{
    scheduler *s = ud;
    if (!reply)
        return; /* nobody to answer */
    prism_metric_add(s->m.requests, 1);
    sched_job *j = job_new(reply, data, len);
    json_t *refusal = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->quit)
        refusal = prism_error_json("shutting_down", "the scheduler is shutting down");
    else if (!j || s->queued >= (size_t)s->cfg.queue_max)
        refusal = prism_error_json("busy", "the scheduler has too many requests queued");
    if (!refusal) {
        *(s->tail ? &s->tail->next : &s->head) = j;
        s->tail = j;
        s->queued++;
        pthread_cond_signal(&s->queue_cv);
    }
    pthread_mutex_unlock(&s->lock);
    if (refusal) {
        count(s, refusal);
        send_answer(s, reply, refusal);
        job_free(j);
    }
}

static sched_job *pop(scheduler *s)
{
    sched_job *j = s->head;
    s->head = j->next;
    if (!s->head)
        s->tail = NULL;
    s->queued--;
    return j;
}

static void *lease_thread(void *arg)
{
    scheduler *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->head && !s->quit && !(s->pump_wanted && !s->pumping))
            pthread_cond_wait(&s->queue_cv, &s->lock);
        if (!s->head && s->quit)
            break;
        if (!s->head) {
            pump(s);
            continue;
        }
        sched_job *j = pop(s);
        bool quitting = s->quit;
        pthread_mutex_unlock(&s->lock);
        if (quitting)
            send_answer(s, j->reply,
                        prism_error_json("shutting_down", "the scheduler is shutting down"));
        else
            handle(s, j);
        job_free(j);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

void sched_lease_run_queued(scheduler *s)
{
    pthread_mutex_lock(&s->lock);
    while (s->head) {
        sched_job *j = pop(s);
        pthread_mutex_unlock(&s->lock);
        handle(s, j);
        job_free(j);
        pthread_mutex_lock(&s->lock);
    }
    if (s->pump_wanted && !s->pumping)
        pump(s);
    pthread_mutex_unlock(&s->lock);
}

int sched_lease_start(scheduler *s)
{
    for (int i = 0; i < s->cfg.lease_threads; i++) {
        if (pthread_create(&s->threads[i], NULL, lease_thread, s) != 0)
            return -1;
        s->nthreads++;
    }
    if (sched_waitq_start(s) != 0)
        return -1;
    return prism_bus_subscribe(s->bus, PRISM_SUBJECT_SCHED_LEASE, "scheduler", on_lease, s);
}

void sched_lease_stop(scheduler *s)
{
    pthread_mutex_lock(&s->lock);
    s->quit = true;
    pthread_cond_broadcast(&s->queue_cv);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < s->nthreads; i++)
        pthread_join(s->threads[i], NULL);
    s->nthreads = 0;
    while (s->head)
        job_free(pop(s));
    json_t *answers = json_array();
    pthread_mutex_lock(&s->lock);
    sched_waitq_free(s, answers); /* their owners ask again, another replica or a new one */
    pthread_mutex_unlock(&s->lock);
    sched_waitq_publish(s, answers);
    json_decref(answers);
}
