/* Actors: the command queue to the manager thread, the table as JSON,
 * events, what workers report of their calls, kills, metrics, start and
 * stop. The lifecycle itself (leases, connections to the actors' workers,
 * restarts, owner pings) runs on the manager thread in actor_manager.c; the
 * NATS requests are actor_requests.c, REST actors_api.c. See docs/actors.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "actors.h"
#include "db.h"
#include "prism_log.h"
#include "prism_subjects.h"
#include "prism_time.h"

#define KILL_WAIT_MS 2000 /* a kill request waits this long for the manager to act */

const char *const gcs_actor_states[4] = {"PENDING_CREATION", "ALIVE", "RESTARTING", "DEAD"};

/* ---------- the queue ---------- */

uint64_t gcs_actors_post(gcs *g, actor_cmd *c)
{
    gcs_actors *A = g->actors;
    c->next = NULL;
    pthread_mutex_lock(&A->lock);
    uint64_t seq = c->seq = ++A->posted; /* `c` is the manager's once unlocked */
    if (A->tail)
        A->tail->next = c;
    else
        A->head = c;
    A->tail = c;
    pthread_mutex_unlock(&A->lock);
    uint64_t one = 1;
    if (write(A->wakefd, &one, sizeof one) < 0 && errno != EAGAIN)
        LOG_WARN("cannot wake the actor manager: %s", strerror(errno));
    return seq;
}

bool gcs_actors_wait(gcs *g, uint64_t seq, int timeout_ms)
{
    gcs_actors *A = g->actors;
    struct timespec until = prism_deadline_ts(CLOCK_MONOTONIC, timeout_ms);
    pthread_mutex_lock(&A->lock);
    while (A->processed < seq && !A->stopping &&
           pthread_cond_timedwait(&A->processed_cv, &A->lock, &until) != ETIMEDOUT) {
    }
    bool done = A->processed >= seq;
    pthread_mutex_unlock(&A->lock);
    return done;
}

actor_cmd *gcs_actor_cmd_new(actor_cmd_kind kind, const char *id)
{
    actor_cmd *c = calloc(1, sizeof *c);
    if (c) {
        c->kind = kind;
        snprintf(c->id, sizeof c->id, "%s", id ? id : "");
    }
    return c;
}

void gcs_actors_node_dead(gcs *g, const char *node_id)
{
    actor_cmd *c = g->actors ? gcs_actor_cmd_new(AC_NODE_DEAD, node_id) : NULL;
    if (c)
        gcs_actors_post(g, c);
}

void gcs_actors_node_room(gcs *g, const char *node_id, json_t *available)
{
    /* Posted only while an actor waits for room: nodes report at every
     * lease granted or returned. */
    if (!g->actors || !__atomic_load_n(&g->actors->busy_waiters, __ATOMIC_RELAXED))
        return;
    actor_cmd *c = gcs_actor_cmd_new(AC_ROOM, node_id);
    char *text = c ? json_dumps(available, JSON_COMPACT) : NULL;
    if (!text) {
        free(c);
        return;
    }
    c->data = text;
    c->len = strlen(text);
    gcs_actors_post(g, c);
}

/* ---------- the table ---------- */

static void set_text_or_skip(json_t *o, const char *key, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    if (t)
        json_object_set_new(o, key, json_string((const char *)t));
}

/* One row of ACTOR_COLUMNS as the ACTOR object; optional members are left
 * out when they have no value. */
json_t *gcs_actor_row_json(sqlite3_stmt *st)
{
    json_t *spec = gcs_db_column_json(st, 20), *res = json_object_get(spec, "resources");
    json_t *a = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:i,s:I,s:I,s:i,s:I,s:I,s:o}", "actor_id",
        (const char *)sqlite3_column_text(st, 0), "class", (const char *)sqlite3_column_text(st, 1),
        "package", (const char *)sqlite3_column_text(st, 2), "namespace",
        (const char *)sqlite3_column_text(st, 4), "state", (const char *)sqlite3_column_text(st, 5),
        "owner", (const char *)sqlite3_column_text(st, 6), "detached", sqlite3_column_int(st, 7),
        "restarts", sqlite3_column_int(st, 12), "max_restarts",
        (json_int_t)sqlite3_column_int64(st, 13), "max_task_retries",
        (json_int_t)sqlite3_column_int64(st, 14), "max_concurrency", sqlite3_column_int(st, 15),
        "created_at", (json_int_t)sqlite3_column_int64(st, 18), "updated_at",
        (json_int_t)sqlite3_column_int64(st, 19), "resources",
        json_is_object(res) ? json_deep_copy(res) : json_object());
    json_decref(spec);
    if (!a)
        return NULL;
    set_text_or_skip(a, "name", st, 3);
    set_text_or_skip(a, "node_id", st, 8);
    set_text_or_skip(a, "worker_id", st, 9);
    if (!strcmp((const char *)sqlite3_column_text(st, 5), "ALIVE")) { /* callers connect there */
        set_text_or_skip(a, "unix", st, 10);
        set_text_or_skip(a, "tcp", st, 11);
    }
    set_text_or_skip(a, "cause", st, 16);
    set_text_or_skip(a, "reason", st, 17);
    return a;
}

#define CALLS_FRESH_MS 15000 /* workers report at least every 5 s while ALIVE */

/* The calls callers of actor `id` reported queued on their side within
 * CALLS_FRESH_MS (a caller that exited stops counting); -1 when none did.
 * Stale reports are dropped. Lock held. */
static json_int_t queued_at_callers(gcs *g, const char *id)
{
    json_t *callers = json_object_get(g->actors->queued, id), *e, *tmp;
    const char *caller;
    json_int_t sum = -1;
    int64_t now = prism_mono_ms();
    json_object_foreach_safe(callers, tmp, caller, e) {
        if (now - json_integer_value(json_object_get(e, "at")) > CALLS_FRESH_MS) {
            json_object_del(callers, caller);
            continue;
        }
        sum = (sum < 0 ? 0 : sum) + json_integer_value(json_object_get(e, "queued"));
    }
    if (callers && !json_object_size(callers))
        json_object_del(g->actors->queued, id);
    return sum;
}

void gcs_actor_add_calls_locked(gcs *g, json_t *a)
{
    const char *id = json_string_value(json_object_get(a, "actor_id"));
    const char *state = json_string_value(json_object_get(a, "state"));
    if (!id || !state || !strcmp(state, "DEAD"))
        return;
    json_int_t queued = queued_at_callers(g, id);
    if (queued >= 0)
        json_object_set_new(a, "pending_calls", json_integer(queued));
    json_t *c = json_object_get(g->actors->calls, id);
    const char *worker = json_string_value(json_object_get(c, "worker_id"));
    const char *now_worker = json_string_value(json_object_get(a, "worker_id"));
    if (!c || strcmp(state, "ALIVE") || !worker || !now_worker || strcmp(worker, now_worker) ||
        prism_mono_ms() - json_integer_value(json_object_get(c, "at")) > CALLS_FRESH_MS)
        return;
    json_object_set_new(a, "pending_calls",
                        json_integer((queued > 0 ? queued : 0) +
                                     json_integer_value(json_object_get(c, "pending"))));
    json_object_set(a, "calls_done", json_object_get(c, "done"));
}

json_t *gcs_actor_json_locked(gcs *g, const char *id)
{
    sqlite3_stmt *st = gcs_db_prepare(g->db, "SELECT " ACTOR_COLUMNS " FROM actors WHERE id = ?");
    gcs_db_bind_text(st, 1, id);
    json_t *a = st && sqlite3_step(st) == SQLITE_ROW ? gcs_actor_row_json(st) : NULL;
    gcs_db_finish(st);
    if (a)
        gcs_actor_add_calls_locked(g, a);
    return a;
}

static void on_calls(prism_bus *bus, const char *subject, const char *reply, const char *data,
                     size_t len, void *ud)
{
    gcs *g = ud;
    json_t *msg = json_loadb(data, len, 0, NULL);
    const char *id = json_string_value(json_object_get(msg, "actor_id"));
    json_t *worker = json_object_get(msg, "worker_id");
    json_t *pending = json_object_get(msg, "pending"), *done = json_object_get(msg, "done");
    if (id && prism_is_hex(id, PRISM_ID_HEX_LEN) && json_is_string(worker) &&
        json_is_integer(pending) && json_is_integer(done)) {
        pthread_mutex_lock(&g->lock);
        if (json_object_size(g->actors->calls) >= 100000)
            json_object_clear(g->actors->calls); /* soft state: bounded, refilled within seconds */
        json_object_set_new(g->actors->calls, id,
                            json_pack("{s:O,s:O,s:O,s:I}", "worker_id", worker, "pending", pending,
                                      "done", done, "at", (json_int_t)prism_mono_ms()));
        pthread_mutex_unlock(&g->lock);
        if (json_is_object(json_object_get(msg, "dag")))
            gcs_dags_loop_report(g, id, json_object_get(msg, "dag"));
        /* The manager checks that it placed the actor there (a worker it
         * does not know of is killed: actor_manager.c, on_report). */
        actor_cmd *c = gcs_actor_cmd_new(AC_REPORT, id);
        if (c && (c->data = malloc(len ? len : 1))) {
            memcpy(c->data, data, len);
            c->len = len;
            gcs_actors_post(g, c);
        } else {
            free(c);
        }
    }
    json_decref(msg);
}

static void on_queued(prism_bus *bus, const char *subject, const char *reply, const char *data,
                      size_t len, void *ud)
{
    gcs *g = ud;
    json_t *msg = json_loadb(data, len, 0, NULL);
    const char *id = json_string_value(json_object_get(msg, "actor_id"));
    const char *caller = json_string_value(json_object_get(msg, "caller"));
    json_t *queued = json_object_get(msg, "queued");
    if (id && prism_is_hex(id, PRISM_ID_HEX_LEN) && caller && *caller && strlen(caller) <= 128 &&
        json_is_integer(queued) && json_integer_value(queued) >= 0) {
        pthread_mutex_lock(&g->lock);
        if (json_object_size(g->actors->queued) >= 100000)
            json_object_clear(g->actors->queued); /* soft state: bounded, refilled within seconds */
        json_t *callers = json_object_get(g->actors->queued, id);
        if (!callers) {
            callers = json_object();
            json_object_set_new(g->actors->queued, id, callers);
        }
        if (json_object_size(callers) < 1024 || json_object_get(callers, caller))
            json_object_set_new(callers, caller,
                                json_pack("{s:O,s:I}", "queued", queued, "at",
                                          (json_int_t)prism_mono_ms()));
        pthread_mutex_unlock(&g->lock);
    }
    json_decref(msg);
}

void gcs_actor_publish_locked(gcs *g, const char *id)
{
    json_t *a = gcs_actor_json_locked(g, id);
    if (a)
        prism_bus_publish_json(g->bus, PRISM_SUBJECT_EVENT_ACTOR, a);
    json_decref(a);
}

json_t *gcs_actor_json(gcs *g, const char *id)
{
    pthread_mutex_lock(&g->lock);
    json_t *a = gcs_actor_json_locked(g, id);
    pthread_mutex_unlock(&g->lock);
    return a;
}

/* The actor not DEAD named `name` in `ns`, or NULL. Lock held. */
json_t *gcs_actor_live_by_name_locked(gcs *g, const char *ns, const char *name)
{
    sqlite3_stmt *st = gcs_db_prepare(g->db, "SELECT " ACTOR_COLUMNS " FROM actors WHERE "
                                             "namespace = ? AND name = ? AND state <> 'DEAD'");
    gcs_db_bind_text(st, 1, ns);
    gcs_db_bind_text(st, 2, name);
    json_t *a = st && sqlite3_step(st) == SQLITE_ROW ? gcs_actor_row_json(st) : NULL;
    gcs_db_finish(st);
    return a;
}

/* ---------- kills and the manager's replies ---------- */

/* Asks the manager to kill `id` and waits for it to act. False: no such actor. */
bool gcs_actor_kill(gcs *g, const char *id, bool no_restart)
{
    json_t *a = gcs_actor_json(g, id);
    if (!a)
        return false;
    json_decref(a);
    actor_cmd *c = gcs_actor_cmd_new(AC_KILL, id);
    if (c) {
        c->no_restart = no_restart;
        gcs_actors_wait(g, gcs_actors_post(g, c), KILL_WAIT_MS);
    }
    return true;
}

/* Answers to the manager's own requests: <prefix>.lease.<actor>.<n> and
 * <prefix>.ping.<owner ID>. An empty body is NATS's "no responders". */
static void on_reply(prism_bus *bus, const char *subject, const char *reply, const char *data,
                     size_t len, void *ud)
{
    gcs *g = ud;
    const char *rest = subject + strlen(g->actors->reply_prefix);
    char id[PRISM_ID_HEX_LEN + 1];
    unsigned long long n = 0;
    actor_cmd_kind kind;
    if (sscanf(rest, ".lease.%32[0-9a-f].%llu", id, &n) == 2)
        kind = AC_LEASE_REPLY;
    else if (sscanf(rest, ".ping.%32[0-9a-f]", id) == 1)
        kind = AC_PING_REPLY;
    else
        return;
    actor_cmd *c = gcs_actor_cmd_new(kind, id);
    if (!c || !(c->data = malloc(len + 1))) {
        free(c);
        return;
    }
    memcpy(c->data, data, len);
    c->data[len] = '\0';
    c->len = len;
    c->n = n;
    gcs_actors_post(g, c);
}

/* ---------- start and stop ---------- */

typedef struct state_gauge {
    gcs *g;
    const char *state;
} state_gauge;
static state_gauge gauges[4];

static double count_state(void *ud)
{
    state_gauge *s = ud;
    pthread_mutex_lock(&s->g->lock);
    sqlite3_stmt *st = gcs_db_prepare(s->g->db, "SELECT count(*) FROM actors WHERE state = ?");
    gcs_db_bind_text(st, 1, s->state);
    double n = st && sqlite3_step(st) == SQLITE_ROW ? (double)sqlite3_column_int64(st, 0) : 0;
    gcs_db_finish(st);
    pthread_mutex_unlock(&s->g->lock);
    return n;
}

int gcs_actors_create(gcs *g)
{
    gcs_actors *A = calloc(1, sizeof *A);
    if (!A)
        return -1;
    pthread_mutex_init(&A->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&A->processed_cv, &ca);
    pthread_condattr_destroy(&ca);
    A->epfd = epoll_create1(EPOLL_CLOEXEC);
    A->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    prism_id inst;
    char hex[PRISM_ID_HEX_LEN + 1];
    prism_id_random(&inst);
    prism_id_to_hex(&inst, hex);
    snprintf(A->reply_prefix, sizeof A->reply_prefix, PRISM_SUBJECT_GCS_REPLY_PREFIX "%s", hex);
    g->actors = A;
    A->calls = json_object();
    A->owners = json_object();
    A->queued = json_object();
    if (A->epfd < 0 || A->wakefd < 0 || !A->calls || !A->owners || !A->queued)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(A->epfd, EPOLL_CTL_ADD, A->wakefd, &ev);
    A->m_created =
        prism_metrics_counter(g->metrics, "prism_gcs_actors_created_total", "Actors created", NULL);
    A->m_restarts =
        prism_metrics_counter(g->metrics, "prism_gcs_actor_restarts_total",
                              "Actor restarts (worker or node lost, or killed to restart)", NULL);
    for (int i = 0; i < 4; i++) {
        char labels[64];
        gauges[i] = (state_gauge){g, gcs_actor_states[i]};
        snprintf(labels, sizeof labels, "state=\"%s\"", gcs_actor_states[i]);
        prism_metrics_gauge_fn(g->metrics, "prism_gcs_actors", "Actors by state", labels,
                               count_state, &gauges[i]);
    }
    return 0;
}

int gcs_actors_start(gcs *g)
{
    gcs_actors *A = g->actors;
    char replies[96];
    snprintf(replies, sizeof replies, "%s.>", A->reply_prefix);
    gcs_actor_manager_load(g);
    if (prism_bus_subscribe(g->bus, replies, NULL, on_reply, g) != 0 ||
        gcs_actor_requests_start(g) != 0 ||
        prism_bus_subscribe(g->bus, PRISM_SUBJECT_EVENT_ACTOR_CALLS, "gcs", on_calls, g) != 0 ||
        prism_bus_subscribe(g->bus, PRISM_SUBJECT_EVENT_ACTOR_QUEUED, "gcs", on_queued, g) != 0)
        return -1;
    if (pthread_create(&A->thread, NULL, gcs_actor_manager_main, g) != 0)
        return -1;
    A->started = true;
    return 0;
}

void gcs_actors_stop(gcs *g)
{
    gcs_actors *A = g->actors;
    if (!A)
        return;
    pthread_mutex_lock(&A->lock);
    A->stopping = true;
    pthread_cond_broadcast(&A->processed_cv);
    pthread_mutex_unlock(&A->lock);
    uint64_t one = 1;
    if (A->wakefd >= 0 && write(A->wakefd, &one, sizeof one) < 0) {
    }
    if (A->started)
        pthread_join(A->thread, NULL);
    A->started = false;
}

void gcs_actors_destroy(gcs *g)
{
    gcs_actors *A = g->actors;
    if (!A)
        return;
    gcs_actor_manager_free(g);
    for (actor_cmd *c = A->head, *next; c; c = next) {
        next = c->next;
        free(c->data);
        free(c);
    }
    if (A->epfd >= 0)
        close(A->epfd);
    if (A->wakefd >= 0)
        close(A->wakefd);
    pthread_cond_destroy(&A->processed_cv);
    pthread_mutex_destroy(&A->lock);
    json_decref(A->calls);
    json_decref(A->owners);
    json_decref(A->queued);
    free(A);
    g->actors = NULL;
}
