/* The actor manager: one thread drives every actor through its lifecycle
 * (docs/actors.md) with one epoll loop over the connections to the actors'
 * workers, a queue of commands from NATS callbacks and HTTP handlers, and a
 * tick every TICK_MS for what is due (lease retries, kill deadlines, owner
 * pings) while actors live; without any, only the pruning of DEAD rows
 * (every PRUNE_EVERY_MS) wakes it.
 *
 * Nothing here waits on the network for long: lease requests and pings are
 * published with a reply subject of ours and their answers come back as
 * commands (an empty answer is NATS's "no responders"); connects go to
 * sockets a worker listens on; sends time out after SEND_TIMEOUT_MS.
 *
 * Only this thread touches `struct actor`; the database row is what
 * everyone else reads, updated here under the GCS lock. An actor is freed
 * only while handling its own connection event, a command or the tick,
 * never while an epoll batch may still name it: each fd appears once per
 * batch, and commands and the tick run after the batch. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "actors.h"
#include "prism_resources.h"
#include "prism_codec.h"
#include "db.h"
#include "prism_log.h"
#include "prism_subjects.h"
#include "prism_time.h"
#include "prism_wire.h"
#include "prism_wire_conn.h"

#define TICK_MS 100
#define LEASE_ASK_MS 9000   /* the scheduler answers within this (timeout_ms)... */
#define LEASE_WAIT_MS 10000 /* ...and we stop waiting after this */
#define INFEASIBLE_RETRY_MS 1000
#define KILL_GRACE_MS 2000 /* a worker told ACTOR_KILL exits within this, or is SIGKILLed */
#define PING_EVERY_MS 1000
#define PING_AGAIN_MS 3000 /* an unanswered ping is sent again: only "no responders" is death */
#define SEND_TIMEOUT_MS 2000
#define CONNECT_TIMEOUT_MS 2000
#define DEAD_KEPT 10000 /* DEAD actors kept in the table, newest first */
#define PRUNE_EVERY_MS 10000
#define GCS_ADDRESS "gcs" /* what the GCS calls itself in leases and HELLO */

typedef enum phase {
    PH_WAIT_LEASE, /* asks the scheduler at next_ms */
    PH_LEASING,    /* lease request lease_n is out until next_ms */
    PH_ATTACH,     /* ALIVE in the database at start: to be re-attached */
    PH_CREATING,   /* HELLO + ACTOR_CREATE sent, DONE awaited */
    PH_ATTACHING,  /* HELLO + ACTOR_ATTACH sent, DONE awaited */
    PH_ALIVE,
    PH_KILLING, /* ACTOR_KILL sent; the connection should close before next_ms */
} phase;

typedef enum loss { LOST_WORKER, LOST_NODE, LOST_KILLED } loss;

struct actor {
    char id[PRISM_ID_HEX_LEN + 1];
    prism_id idb;
    char *package, *cls, *owner;
    bool detached;
    int64_t max_restarts, restarts;
    uint16_t max_concurrency;
    json_t *lease_req; /* resources and placement, as created */
    json_t *arg_refs;  /* [{object_id, owner}] of stored constructor arguments the GCS borrows */
    uint8_t *args;     /* the encoded constructor arguments: u32 nargs, slots */
    size_t args_len;
    phase phase;
    bool dead;  /* killed for good (DEAD stored): only its worker's exit is awaited */
    bool adopt; /* placed but not ALIVE when the GCS started: ATTACH adopts it or re-leases */
    uint64_t lease_n;
    int64_t next_ms;
    int failures; /* lease or creation failures since it was last ALIVE: the backoff */
    bool busy;    /* the scheduler answered busy: a node's room asks again (busy_waiters) */
    char *reason; /* the pending reason last stored */
    int fd;
    wire_tls *tls; /* with a worker whose TCP address is tls: */
    prism_buf in;
    wire_auth auth;    /* of the connection: nothing is sent before the worker's CHALLENGE */
    prism_buf pending; /* frames for after the handshake's AUTH */
    char *lease_id, *node_id, *worker_id, *unix_path, *tcp;
    actor *next;
};

static void set_str(char **field, const char *value)
{
    free(*field);
    *field = value ? strdup(value) : NULL;
}

static const char *or_dash(const char *s) { return s && *s ? s : "-"; }

static int64_t backoff_ms(int failures)
{
    int64_t ms = 50LL << (failures < 5 ? failures : 5);
    return (ms > 1000 ? 1000 : ms) + rand() % 50;
}

/* ---------- the actors in memory ---------- */

static actor *find(gcs *g, const char *id)
{
    for (actor *a = g->actors->live; a; a = a->next)
        if (!strcmp(a->id, id))
            return a;
    return NULL;
}

static void conn_close(gcs *g, actor *a)
{
    if (a->fd < 0)
        return;
    epoll_ctl(g->actors->epfd, EPOLL_CTL_DEL, a->fd, NULL);
    wire_tls_destroy(a->tls);
    a->tls = NULL;
    close(a->fd);
    a->fd = -1;
    prism_buf_free(&a->in);
    prism_buf_free(&a->pending);
}

static void actor_free(actor *a)
{
    free(a->package);
    free(a->cls);
    free(a->owner);
    json_decref(a->lease_req);
    json_decref(a->arg_refs);
    free(a->args);
    free(a->reason);
    prism_buf_free(&a->in);
    prism_buf_free(&a->pending);
    free(a->lease_id);
    free(a->node_id);
    free(a->worker_id);
    free(a->unix_path);
    free(a->tcp);
    free(a);
}

static void set_busy(gcs *g, actor *a, bool busy)
{
    if (a->busy != busy)
        __atomic_add_fetch(&g->actors->busy_waiters, busy ? 1 : -1, __ATOMIC_RELAXED);
    a->busy = busy;
}

static void remove_actor(gcs *g, actor *a)
{
    set_busy(g, a, false);
    for (actor **pp = &g->actors->live; *pp; pp = &(*pp)->next) {
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    }
    conn_close(g, a);
    actor_free(a);
}

#define LOAD_COLUMNS                                                                               \
    "id, package, class, owner, detached, spec, args, state, restarts, max_restarts, "             \
    "max_concurrency, node_id, worker_id, lease_id, unix, tcp"

static const char *col(sqlite3_stmt *st, int i) { return (const char *)sqlite3_column_text(st, i); }

static actor *actor_from_row(sqlite3_stmt *st)
{
    actor *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    snprintf(a->id, sizeof a->id, "%s", col(st, 0));
    prism_id_from_hex(&a->idb, a->id);
    set_str(&a->package, col(st, 1));
    set_str(&a->cls, col(st, 2));
    set_str(&a->owner, col(st, 3));
    a->detached = sqlite3_column_int(st, 4) != 0;
    a->lease_req = gcs_db_column_json(st, 5);
    a->arg_refs = json_incref(json_object_get(a->lease_req, "arg_refs"));
    json_object_del(a->lease_req, "arg_refs"); /* not for the scheduler */
    a->args_len = (size_t)sqlite3_column_bytes(st, 6);
    a->args = malloc(a->args_len ? a->args_len : 1);
    if (a->args && a->args_len)
        memcpy(a->args, sqlite3_column_blob(st, 6), a->args_len);
    a->phase = !strcmp(col(st, 7), "ALIVE") ? PH_ATTACH : PH_WAIT_LEASE;
    a->restarts = sqlite3_column_int64(st, 8);
    a->max_restarts = sqlite3_column_int64(st, 9);
    a->max_concurrency = (uint16_t)sqlite3_column_int(st, 10);
    set_str(&a->node_id, col(st, 11));
    set_str(&a->worker_id, col(st, 12));
    set_str(&a->lease_id, col(st, 13));
    set_str(&a->unix_path, col(st, 14));
    set_str(&a->tcp, col(st, 15));
    /* Granted a worker (its constructor may have run) when the last GCS
     * stopped before ALIVE: that worker is asked, not left holding its lease. */
    if (a->phase == PH_WAIT_LEASE && a->lease_id && *a->lease_id && a->worker_id) {
        a->phase = PH_ATTACH;
        a->adopt = true;
    }
    a->fd = -1;
    prism_buf_init(&a->in, 1u << 20);
    if (!a->package || !a->cls || !a->owner || !a->args) {
        actor_free(a);
        return NULL;
    }
    return a;
}

/* Loads the actors that are not DEAD (all of them, or the one `id`). */
static void load(gcs *g, const char *id)
{
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(g->db, "SELECT " LOAD_COLUMNS " FROM actors WHERE state <> "
                                             "'DEAD' AND (?1 IS NULL OR id = ?1) ORDER BY seq");
    gcs_db_bind_text(st, 1, id);
    int n = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        actor *a = actor_from_row(st);
        if (!a || find(g, a->id)) {
            if (a)
                actor_free(a);
            continue;
        }
        a->next = g->actors->live;
        g->actors->live = a;
        n++;
    }
    gcs_db_finish(st);
    pthread_mutex_unlock(&g->lock);
    if (!id && n)
        LOG_INFO("%d actors to take over (ALIVE ones are re-attached, others leased again)", n);
}

void gcs_actor_manager_load(gcs *g)
{
    wire_auth_key(g->cfg.token, g->actors->wire_key);
    load(g, NULL);
}

void gcs_actor_manager_free(gcs *g)
{
    /* The actors live on in their workers: a GCS started again re-attaches. */
    while (g->actors->live)
        remove_actor(g, g->actors->live);
}

/* ---------- the table ---------- */

static void store_alive(gcs *g, actor *a)
{
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "UPDATE actors SET state='ALIVE', node_id=?, worker_id=?, lease_id=?, unix=?, "
               "tcp=?, reason=NULL, updated_at=? WHERE id=? AND state<>'DEAD'");
    gcs_db_bind_text(st, 1, a->node_id);
    gcs_db_bind_text(st, 2, a->worker_id);
    gcs_db_bind_text(st, 3, a->lease_id);
    gcs_db_bind_text(st, 4, a->unix_path);
    gcs_db_bind_text(st, 5, a->tcp);
    sqlite3_bind_int64(st, 6, prism_now_ms());
    gcs_db_bind_text(st, 7, a->id);
    gcs_db_exec_stmt(st);
    gcs_actor_publish_locked(g, a->id);
    pthread_mutex_unlock(&g->lock);
}

/* Where it is being created, before ACTOR_CREATE leaves (no event: the state
 * has not changed): a GCS started after a crash finds the lease and worker. */
static void store_placed(gcs *g, actor *a)
{
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st =
        gcs_db_prepare(g->db, "UPDATE actors SET node_id=?, worker_id=?, lease_id=?, unix=?, tcp=? "
                              "WHERE id=? AND state<>'DEAD'");
    gcs_db_bind_text(st, 1, a->node_id);
    gcs_db_bind_text(st, 2, a->worker_id);
    gcs_db_bind_text(st, 3, a->lease_id);
    gcs_db_bind_text(st, 4, a->unix_path);
    gcs_db_bind_text(st, 5, a->tcp);
    gcs_db_bind_text(st, 6, a->id);
    gcs_db_exec_stmt(st);
    pthread_mutex_unlock(&g->lock);
}

static void store_restarting(gcs *g, actor *a)
{
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "UPDATE actors SET state='RESTARTING', restarts=?, lease_id=NULL, unix=NULL, "
               "tcp=NULL, reason=NULL, updated_at=? WHERE id=? AND state<>'DEAD'");
    sqlite3_bind_int64(st, 1, a->restarts);
    sqlite3_bind_int64(st, 2, prism_now_ms());
    gcs_db_bind_text(st, 3, a->id);
    gcs_db_exec_stmt(st);
    gcs_actor_publish_locked(g, a->id);
    pthread_mutex_unlock(&g->lock);
}

/* The constructor's stored arguments are let go: REMOVE to their owners
 * for the borrowing the creator registered (docs/actors.md). */
static void release_args(gcs *g, actor *a)
{
    size_t i;
    json_t *r;
    json_array_foreach(a->arg_refs, i, r) {
        char subject[160];
        prism_object_id id;
        const char *hex = json_string_value(json_object_get(r, "object_id"));
        if (!wire_owner_subject(json_string_value(json_object_get(r, "owner")), subject,
                                sizeof subject) ||
            prism_object_id_from_hex(&id, hex) != 0)
            continue;
        prism_buf b;
        wire_owner_request(&b, OWNER_REMOVE, WIRE_GCS_BORROWER, 0, 1);
        prism_writer w = {.buf = &b};
        pw_bytes(&w, id.b, sizeof id.b);
        pw_u32(&w, 1);
        if (!w.failed)
            prism_bus_publish(g->bus, subject, b.data, b.len);
        prism_buf_free(&b);
    }
    json_decref(a->arg_refs);
    a->arg_refs = NULL;
}

/* DEAD for good: the name is free again and the arguments are not needed. */
static void store_dead(gcs *g, actor *a, const char *cause)
{
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "UPDATE actors SET state='DEAD', cause=?, lease_id=NULL, unix=NULL, tcp=NULL, "
               "reason=NULL, args=X'', updated_at=? WHERE id=? AND state<>'DEAD'");
    gcs_db_bind_text(st, 1, cause);
    sqlite3_bind_int64(st, 2, prism_now_ms());
    gcs_db_bind_text(st, 3, a->id);
    bool changed = gcs_db_exec_stmt(st) == SQLITE_DONE && sqlite3_changes(g->db) > 0;
    if (changed)
        gcs_actor_publish_locked(g, a->id);
    pthread_mutex_unlock(&g->lock);
    if (changed)
        release_args(g, a);
    LOG_INFO("actor %s is DEAD: %s", a->id, cause);
}

/* Why a PENDING_CREATION or RESTARTING actor waits (not a state change: no event). */
static void store_reason(gcs *g, actor *a, const char *reason)
{
    if (a->reason && !strcmp(a->reason, reason))
        return;
    set_str(&a->reason, reason);
    LOG_INFO("actor %s waits: %s", a->id, reason);
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(g->db, "UPDATE actors SET reason=? WHERE id=? AND state IN "
                                             "('PENDING_CREATION','RESTARTING')");
    gcs_db_bind_text(st, 1, reason);
    gcs_db_bind_text(st, 2, a->id);
    gcs_db_exec_stmt(st);
    pthread_mutex_unlock(&g->lock);
}

/* DEAD with `cause`; frees `a`. */
static void die(gcs *g, actor *a, const char *cause)
{
    store_dead(g, a, cause);
    remove_actor(g, a);
}

static void prune(gcs *g)
{
    int64_t now = prism_mono_ms();
    if (now - g->actors->last_prune_mono < PRUNE_EVERY_MS)
        return;
    g->actors->last_prune_mono = now;
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "DELETE FROM actors WHERE seq IN (SELECT seq FROM actors WHERE state='DEAD' "
               "ORDER BY seq DESC LIMIT -1 OFFSET ?)");
    sqlite3_bind_int64(st, 1, DEAD_KEPT);
    gcs_db_exec_stmt(st);
    pthread_mutex_unlock(&g->lock);
}

/* ---------- leases ---------- */

static void return_lease(gcs *g, const char *node_id, const char *lease_id, const char *why)
{
    if (!node_id || !*node_id || !lease_id || !*lease_id)
        return;
    char subject[160];
    prism_subject_node(subject, sizeof subject, node_id, PRISM_NODE_WORKER_RETURN);
    json_t *msg = json_pack("{s:s}", "lease_id", lease_id);
    prism_bus_publish_json(g->bus, subject, msg);
    json_decref(msg);
    LOG_DEBUG("lease %s of node %s returned: %s", lease_id, node_id, why);
}

/* Waits for `delay` ms, then asks for a lease again. */
static void pending(gcs *g, actor *a, const char *reason, int64_t delay)
{
    a->phase = PH_WAIT_LEASE;
    a->next_ms = prism_mono_ms() + delay;
    store_reason(g, a, reason);
}

static void request_lease(gcs *g, actor *a)
{
    char reply[192];
    set_busy(g, a, false);
    a->lease_n++;
    snprintf(reply, sizeof reply, "%s.lease.%s.%llu", g->actors->reply_prefix, a->id,
             (unsigned long long)a->lease_n);
    json_t *req = json_deep_copy(a->lease_req);
    json_object_set_new(req, "owner_id", json_string(GCS_ADDRESS));
    json_object_set_new(req, "timeout_ms", json_integer(LEASE_ASK_MS));
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    int rc = text ? prism_bus_publish_request(g->bus, PRISM_SUBJECT_SCHED_LEASE, reply, text,
                                              strlen(text))
                  : PRISM_BUS_ERROR;
    free(text);
    if (rc != PRISM_BUS_OK) {
        pending(g, a, "waiting for NATS to take the lease request", INFEASIBLE_RETRY_MS);
        return;
    }
    a->phase = PH_LEASING;
    a->next_ms = prism_mono_ms() + LEASE_WAIT_MS;
}

/* Connects to the actor's worker and queues HELLO and `frame` (CREATE or
 * ATTACH), sent once the worker's CHALLENGE came (see on_auth). Returns 0,
 * or -1 with nothing left open and the reason in `why`. */
static int open_conn(gcs *g, actor *a, uint8_t frame, char *why, size_t whylen)
{
    char addr[600], err[600] = "no address";
    int fd = -1;
    wire_tls *tls = NULL;
    bool config_error = false;
    /* The socket path only exists on the worker's machine (where a connect is
     * answered at once); TCP works from anywhere, with TLS for a tls: address.
     * A network cut off must not hold the manager for the kernel's two minutes. */
    if (a->unix_path && *a->unix_path) {
        snprintf(addr, sizeof addr, "unix:%s", a->unix_path);
        fd = wire_connect(addr, CONNECT_TIMEOUT_MS, &tls, &config_error, err, sizeof err);
    }
    if (fd < 0 && a->tcp && *a->tcp) {
        wire_tcp_address(a->tcp, addr, sizeof addr);
        fd = wire_connect(addr, CONNECT_TIMEOUT_MS, &tls, &config_error, err, sizeof err);
    }
    if (fd < 0) {
        snprintf(why, whylen, "%s", err);
        return -1;
    }
    struct timeval tv = {SEND_TIMEOUT_MS / 1000, (SEND_TIMEOUT_MS % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    prism_buf *out = &a->pending;
    prism_buf_free(out);
    prism_buf_init(out, (size_t)WIRE_MAX_FRAME);
    prism_writer w = {.buf = out};
    size_t start = out->len;
    wire_begin(out, WIRE_HELLO);
    pw_str(&w, a->lease_id);
    pw_str(&w, GCS_ADDRESS);
    wire_end(out, start);
    start = out->len;
    wire_begin(out, frame);
    pw_bytes(&w, a->idb.b, sizeof a->idb.b);
    if (frame == WIRE_ACTOR_CREATE) {
        pw_str(&w, a->package);
        pw_str(&w, a->cls);
        pw_u16(&w, a->max_concurrency);
        pw_bytes(&w, a->args, a->args_len);
    }
    wire_end(out, start);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = a};
    if (w.failed || epoll_ctl(g->actors->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        prism_buf_free(out);
        wire_tls_destroy(tls);
        close(fd);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    a->fd = fd;
    a->tls = tls;
    a->auth = (wire_auth){0};
    prism_buf_init(&a->in, 1u << 20);
    return 0;
}

/* A frame of the handshake: the AUTH answering the CHALLENGE goes out with
 * the frames queued behind it. Returns -1 when the worker failed it. */
static int on_auth(gcs *g, actor *a, uint8_t type, const uint8_t *p, size_t n)
{
    prism_buf out;
    prism_buf_init(&out, (size_t)WIRE_MAX_FRAME);
    int rc = wire_auth_step(&a->auth, g->actors->wire_key, type, p, n, &out);
    if (rc == 0 && out.len) {
        rc = prism_buf_append(&out, a->pending.data, a->pending.len);
        if (rc == 0)
            rc = wire_send_all(a->fd, a->tls, out.data, out.len);
        prism_buf_free(&a->pending);
    }
    prism_buf_free(&out);
    if (rc != 0)
        LOG_WARN("actor %s: worker %s failed the handshake", a->id, or_dash(a->worker_id));
    return rc;
}

static int send_kill(actor *a)
{
    prism_buf out;
    prism_buf_init(&out, 64);
    prism_writer w = {.buf = &out};
    wire_begin(&out, WIRE_ACTOR_KILL);
    pw_bytes(&w, a->idb.b, sizeof a->idb.b);
    wire_end(&out, 0);
    int rc = -1;
    if (!w.failed && a->auth.state == 0) /* still queued behind the handshake */
        rc = prism_buf_append(&a->pending, out.data, out.len);
    else if (!w.failed)
        rc = wire_send_all(a->fd, a->tls, out.data, out.len);
    prism_buf_free(&out);
    return rc;
}

/* SIGKILL for a worker that did not exit when told to (its exit frees the lease). */
static void force_kill(gcs *g, actor *a)
{
    if (!a->node_id || !*a->node_id || !a->lease_id || !*a->lease_id)
        return;
    char subject[160];
    prism_subject_node(subject, sizeof subject, a->node_id, PRISM_NODE_WORKER_KILL);
    json_t *msg = json_pack("{s:s}", "lease_id", a->lease_id);
    prism_bus_publish_json(g->bus, subject, msg);
    json_decref(msg);
}

static void start_on_grant(gcs *g, actor *a, json_t *grant)
{
    set_str(&a->lease_id, json_string_value(json_object_get(grant, "lease_id")));
    set_str(&a->node_id, json_string_value(json_object_get(grant, "node_id")));
    set_str(&a->worker_id, json_string_value(json_object_get(grant, "worker_id")));
    set_str(&a->unix_path, json_string_value(json_object_get(grant, "unix")));
    set_str(&a->tcp, json_string_value(json_object_get(grant, "tcp")));
    char why[600], reason[700];
    if (open_conn(g, a, WIRE_ACTOR_CREATE, why, sizeof why) != 0) {
        return_lease(g, a->node_id, a->lease_id, "its worker could not be reached");
        LOG_WARN("actor %s: worker %s could not be reached: %s", a->id, or_dash(a->worker_id), why);
        snprintf(reason, sizeof reason, "the granted worker could not be reached: %s", why);
        pending(g, a, reason, backoff_ms(a->failures++));
        return;
    }
    a->phase = PH_CREATING;
    store_placed(g, a);
    if (getenv("PRISM_TEST_GCS_CRASH_AFTER_PLACED")) {
        /* Tests only (test_actors_api.py): dies as a crash between storing
         * the worker and its constructor's run would. */
        LOG_WARN("PRISM_TEST_GCS_CRASH_AFTER_PLACED is set: the GCS kills itself");
        raise(SIGKILL);
    }
    LOG_INFO("actor %s: creating %s/%s on worker %s of node %s", a->id, a->package, a->cls,
             or_dash(a->worker_id), or_dash(a->node_id));
}

static void on_lease_reply(gcs *g, actor_cmd *c)
{
    json_t *reply = c->len ? json_loadb(c->data, c->len, 0, NULL) : NULL;
    bool granted = json_is_true(json_object_get(reply, "ok"));
    actor *a = find(g, c->id);
    if (!a || a->phase != PH_LEASING || a->lease_n != c->n) {
        if (granted) /* a late answer, or the actor was killed meanwhile */
            return_lease(g, json_string_value(json_object_get(reply, "node_id")),
                         json_string_value(json_object_get(reply, "lease_id")), "no longer wanted");
        json_decref(reply);
        return;
    }
    json_t *err = json_object_get(reply, "error");
    const char *code = json_string_value(json_object_get(err, "code"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    char why[600];
    if (!c->len) {
        pending(g, a, "waiting for a scheduler: none is running", INFEASIBLE_RETRY_MS);
    } else if (granted) {
        start_on_grant(g, a, reply);
    } else if (code && !strcmp(code, "infeasible")) {
        /* Like a task: wait with the reason until a node that has it joins. */
        pending(g, a, msg ? msg : "no node has the resources", INFEASIBLE_RETRY_MS);
    } else if (code && (!strcmp(code, "invalid_argument") || !strcmp(code, "invalid_json") ||
                        !strcmp(code, "placement_group_removed"))) {
        snprintf(why, sizeof why, "the scheduler refused its lease: %s", msg ? msg : code);
        die(g, a, why);
    } else {
        pending(g, a, msg ? msg : "the scheduler's answer is not a lease",
                backoff_ms(a->failures++));
        set_busy(g, a, code && !strcmp(code, "busy"));
    }
    json_decref(reply);
}

/* A node reported room: the actors told busy that fit in it ask again now
 * rather than at their backoff (which stays for the others, and for a node
 * whose report came before its room reached the scheduler). */
static void on_room(gcs *g, actor_cmd *c)
{
    json_t *avail = json_loadb(c->data, c->len, 0, NULL), *used = json_object();
    int64_t now = prism_mono_ms();
    for (actor *a = g->actors->live; avail && used && a; a = a->next) {
        json_t *want = json_object_get(a->lease_req, "resources");
        const char *node = json_string_value(json_object_get(a->lease_req, "node_id"));
        bool elsewhere = node && strcmp(node, c->id) &&
                         !json_is_true(json_object_get(a->lease_req, "soft"));
        if (!a->busy || a->phase != PH_WAIT_LEASE || elsewhere ||
            !prism_res_fits(avail, used, want))
            continue;
        prism_res_add(used, want);
        a->next_ms = now;
    }
    json_decref(avail);
    json_decref(used);
}

/* ---------- losing workers, killing ---------- */

/* The actor's worker is gone (or was let go): restart while max_restarts
 * allows, else DEAD. May free `a`. */
static void lose_worker(gcs *g, actor *a, loss why)
{
    conn_close(g, a);
    if (a->max_restarts < 0 || a->restarts < a->max_restarts) {
        a->restarts++;
        a->phase = PH_WAIT_LEASE;
        a->next_ms = prism_mono_ms() + (a->failures ? backoff_ms(a->failures) : 0);
        a->failures++;
        set_str(&a->reason, NULL);
        store_restarting(g, a);
        prism_metric_add(g->actors->m_restarts, 1);
        char max[32] = "no limit";
        if (a->max_restarts >= 0)
            snprintf(max, sizeof max, "max_restarts %lld", (long long)a->max_restarts);
        LOG_WARN("actor %s is RESTARTING (restart %lld, %s): %s", a->id, (long long)a->restarts,
                 max,
                 why == LOST_KILLED ? "killed to be restarted"
                 : why == LOST_NODE ? "its node died"
                                    : "its worker died");
        return;
    }
    char cause[256];
    if (why == LOST_KILLED)
        snprintf(cause, sizeof cause, "killed");
    else
        snprintf(cause, sizeof cause, "%s and max_restarts (%lld) is used up",
                 why == LOST_NODE ? "its node died" : "the worker died",
                 (long long)a->max_restarts);
    die(g, a, cause);
}

/* The connection of a killed actor closed, or its grace ran out. May free `a`. */
static void finish_kill(gcs *g, actor *a)
{
    conn_close(g, a);
    if (a->dead)
        remove_actor(g, a);
    else
        lose_worker(g, a, LOST_KILLED);
}

/* An actor placed by a GCS that stopped before ALIVE whose worker does not
 * host it (the constructor never ran there) or cannot be reached: its lease
 * goes back and another is asked for (not a restart). */
static void adopt_failed(gcs *g, actor *a, const char *why)
{
    LOG_WARN("actor %s: worker %s granted before the GCS restarted is not adopted: %s", a->id,
             or_dash(a->worker_id), why);
    conn_close(g, a);
    return_lease(g, a->node_id, a->lease_id, "its worker does not host the actor");
    a->adopt = false;
    set_str(&a->lease_id, NULL);
    pending(g, a, "leasing again: the worker granted before the GCS restarted does not host it", 0);
}

static int attach(gcs *g, actor *a)
{
    char why[600];
    if (open_conn(g, a, WIRE_ACTOR_ATTACH, why, sizeof why) != 0) {
        LOG_WARN("actor %s: worker %s could not be reached: %s", a->id, or_dash(a->worker_id), why);
        return -1;
    }
    a->phase = PH_ATTACHING;
    return 0;
}

/* Kills `a`: for good (DEAD with `cause`) or to restart it. May free `a`. */
static void kill_actor(gcs *g, actor *a, bool no_restart, const char *cause)
{
    if (a->dead)
        return;
    switch (a->phase) {
    case PH_WAIT_LEASE:
    case PH_LEASING:
        /* Nothing runs yet (so nothing to restart); a grant still on its way is returned. */
        if (no_restart)
            die(g, a, cause);
        return;
    case PH_KILLING:
        if (no_restart) {
            store_dead(g, a, cause);
            a->dead = true;
        }
        return;
    case PH_ATTACH:
        if (attach(g, a) != 0) {
            if (no_restart)
                die(g, a, cause);
            else
                lose_worker(g, a, LOST_KILLED);
            return;
        }
        break;
    default: break;
    }
    if (send_kill(a) != 0) {
        if (no_restart)
            die(g, a, cause);
        else
            lose_worker(g, a, LOST_KILLED);
        return;
    }
    LOG_INFO("actor %s: ACTOR_KILL sent to worker %s (%s)", a->id, or_dash(a->worker_id),
             no_restart ? cause : "to restart it");
    a->phase = PH_KILLING;
    a->next_ms = prism_mono_ms() + KILL_GRACE_MS;
    if (no_restart) {
        store_dead(g, a, cause);
        a->dead = true;
    }
}

/* ---------- the connections ---------- */

/* A DONE on the actor's connection: the answer to ACTOR_CREATE or
 * ACTOR_ATTACH. Returns true when the connection is gone (and `a` may be). */
static bool on_done(gcs *g, actor *a, const uint8_t *p, size_t n)
{
    prism_reader r = {p, n, 0, NULL, NULL, NULL};
    const uint8_t *tid = pr_bytes(&r, PRISM_ID_BYTES);
    uint16_t nret = pr_u16(&r);
    uint8_t slot = pr_u8(&r);
    if (r.failed || nret == 0 || memcmp(tid, a->idb.b, PRISM_ID_BYTES) != 0) {
        LOG_WARN("actor %s: a DONE frame that is not about it is ignored", a->id);
        return false;
    }
    char *message = NULL;
    if (slot == SLOT_ERROR) {
        pr_u8(&r);
        free(pr_str(&r));
        message = pr_str(&r);
    }
    bool ok = slot != SLOT_ERROR, gone = false;
    char cause[2300];
    if (a->phase == PH_CREATING && ok && getenv("PRISM_TEST_GCS_CRASH_BEFORE_ALIVE")) {
        /* Tests only (test_actors_api.py): dies as a crash between the
         * constructor's DONE and storing ALIVE would. */
        LOG_WARN("PRISM_TEST_GCS_CRASH_BEFORE_ALIVE is set: the GCS kills itself");
        raise(SIGKILL);
    }
    if (a->phase == PH_CREATING && ok) {
        a->phase = PH_ALIVE;
        a->failures = 0;
        set_str(&a->reason, NULL);
        store_alive(g, a);
        LOG_INFO("actor %s is ALIVE on worker %s of node %s", a->id, or_dash(a->worker_id),
                 or_dash(a->node_id));
    } else if (a->phase == PH_CREATING) {
        snprintf(cause, sizeof cause, "the constructor failed: %s",
                 message ? message : "no message");
        conn_close(g, a);
        return_lease(g, a->node_id, a->lease_id, "its actor's constructor failed");
        die(g, a, cause);
        gone = true;
    } else if (a->phase == PH_ATTACHING && ok) {
        a->phase = PH_ALIVE;
        LOG_INFO("actor %s: %s worker %s of node %s", a->id,
                 a->adopt ? "ALIVE: adopted from" : "re-attached to", or_dash(a->worker_id),
                 or_dash(a->node_id));
        if (a->adopt) {
            a->adopt = false;
            a->failures = 0;
            set_str(&a->reason, NULL);
            store_alive(g, a);
        }
    } else if (a->phase == PH_ATTACHING && a->adopt) {
        adopt_failed(g, a, message ? message : "no message");
        gone = true; /* the connection: `a` leases again */
    } else if (a->phase == PH_ATTACHING) {
        LOG_WARN("actor %s: its worker %s no longer hosts it: %s", a->id, or_dash(a->worker_id),
                 message ? message : "no message");
        conn_close(g, a);
        return_lease(g, a->node_id, a->lease_id, "its worker no longer hosts the actor");
        lose_worker(g, a, LOST_WORKER);
        gone = true;
    }
    free(message);
    return gone;
}

/* The connection closed (or broke). May free `a`. */
static void conn_lost(gcs *g, actor *a)
{
    if (a->phase == PH_KILLING) {
        finish_kill(g, a);
        return;
    }
    LOG_WARN("actor %s: the connection to its worker %s closed", a->id, or_dash(a->worker_id));
    if (a->adopt)
        adopt_failed(g, a, "the connection closed");
    else
        lose_worker(g, a, LOST_WORKER);
}

static void on_conn_event(gcs *g, actor *a)
{
    char chunk[65536];
    bool closed = false;
    for (;;) {
        ssize_t n = wire_recv(a->fd, a->tls, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0 || prism_buf_append(&a->in, chunk, (size_t)n) != 0) {
            closed = true;
            break;
        }
    }
    size_t off = 0;
    for (;;) {
        uint8_t type;
        const uint8_t *payload;
        size_t plen;
        long used =
            wire_parse((const uint8_t *)a->in.data + off, a->in.len - off, &type, &payload, &plen);
        if (used < 0) {
            closed = true;
            break;
        }
        if (used == 0)
            break;
        off += (size_t)used;
        if (!wire_auth_done(&a->auth)) {
            if (on_auth(g, a, type, payload, plen) != 0) {
                closed = true;
                break;
            }
            continue;
        }
        /* Nothing but DONE comes on this connection (method calls use callers' own). */
        if (type == WIRE_DONE && on_done(g, a, payload, plen))
            return;
    }
    if (off) {
        memmove(a->in.data, a->in.data + off, a->in.len - off);
        a->in.len -= off;
    }
    if (closed)
        conn_lost(g, a);
}

/* ---------- commands ---------- */

static void on_node_dead(gcs *g, const char *node_id)
{
    for (actor *a = g->actors->live, *next; a; a = next) {
        next = a->next;
        if (!a->node_id || strcmp(a->node_id, node_id))
            continue;
        if (a->phase == PH_KILLING)
            finish_kill(g, a);
        else if (a->phase == PH_ATTACH || a->phase == PH_CREATING || a->phase == PH_ATTACHING ||
                 a->phase == PH_ALIVE)
            lose_worker(g, a, LOST_NODE);
    }
}

/* A worker's report of the actor it hosts (prism.event.actor.calls, every
 * 5 s at least): one the GCS did not place there (not live, or live on
 * another worker) is left from a GCS that stopped before it stored the
 * actor, or a duplicate; its node agent kills it, which frees its lease. */
static void on_report(gcs *g, actor_cmd *c)
{
    json_t *msg = json_loadb(c->data, c->len, 0, NULL);
    const char *worker = json_string_value(json_object_get(msg, "worker_id"));
    const char *node = json_string_value(json_object_get(msg, "node_id"));
    const char *lease = json_string_value(json_object_get(msg, "lease_id"));
    actor *a = find(g, c->id);
    if (worker && node && lease && *lease &&
        (!a || !a->worker_id || strcmp(a->worker_id, worker))) {
        LOG_WARN("worker %s of node %s hosts actor %s, which the GCS %s: it is killed", worker,
                 node, c->id, a ? "placed elsewhere" : "does not run");
        char subject[160];
        prism_subject_node(subject, sizeof subject, node, PRISM_NODE_WORKER_KILL);
        json_t *kill = json_pack("{s:s}", "lease_id", lease);
        prism_bus_publish_json(g->bus, subject, kill);
        json_decref(kill);
    }
    json_decref(msg);
}

/* ---------- owners ---------- */

/* One PING per owner, however many actors it made: g->actors->owners maps an
 * owner's address to {"next": ms, "sent": ms}, the entry living as long as
 * the owner has an actor to ping. The reply names the owner (its ID). */
static json_t *owner_entry(gcs *g, const char *owner)
{
    json_t *e = json_object_get(g->actors->owners, owner);
    if (!e) {
        e = json_pack("{s:I,s:I,s:I}", "next", (json_int_t)0, "sent", (json_int_t)0, "seen",
                      (json_int_t)0);
        if (json_object_set_new(g->actors->owners, owner, e) != 0)
            return NULL;
    }
    return e;
}

static int64_t entry_int(json_t *e, const char *key)
{
    return json_integer_value(json_object_get(e, key));
}

static void entry_set(json_t *e, const char *key, int64_t v)
{
    json_object_set_new(e, key, json_integer(v));
}

static void on_ping_reply(gcs *g, actor_cmd *c)
{
    char owner[PRISM_ID_HEX_LEN + 8];
    snprintf(owner, sizeof owner, "owner:%s", c->id);
    json_t *e = json_object_get(g->actors->owners, owner);
    if (e)
        entry_set(e, "sent", 0);
    if (c->len != 0)
        return;
    LOG_INFO("owner %s is gone: its actors go with it", owner);
    gcs_dags_owner_gone(g, owner);
    for (actor *a = g->actors->live, *next; a; a = next) {
        next = a->next; /* a kill may take `a` off the list */
        if (!a->detached && !a->dead && a->owner && !strcmp(a->owner, owner))
            kill_actor(g, a, true, "its owner died");
    }
}

/* PING on prism.owner.HEX (the owners' protocol, tasks.md), at most once per
 * owner every PING_EVERY_MS; an unanswered one again after PING_AGAIN_MS. */
static void ping_owner(gcs *g, actor *a, int64_t now, int64_t tick)
{
    char subject[192], reply[192];
    json_t *e;
    if (a->detached || a->dead || !wire_owner_subject(a->owner, subject, sizeof subject) ||
        !(e = owner_entry(g, a->owner)))
        return;
    entry_set(e, "seen", tick);
    int64_t sent = entry_int(e, "sent");
    if (now < entry_int(e, "next") || (sent && now - sent < PING_AGAIN_MS))
        return;
    snprintf(reply, sizeof reply, "%s.ping.%s", g->actors->reply_prefix, a->owner + 6);
    prism_buf b;
    wire_owner_request(&b, OWNER_PING, GCS_ADDRESS, 0, 0);
    if (b.len)
        prism_bus_publish_request(g->bus, subject, reply, b.data, b.len);
    prism_buf_free(&b);
    entry_set(e, "sent", now);
    entry_set(e, "next", now + PING_EVERY_MS);
}

/* Owners left with no actor to ping are forgotten. */
static void forget_owners(gcs *g, int64_t tick)
{
    const char *key;
    json_t *e, *tmp;
    json_object_foreach_safe(g->actors->owners, tmp, key, e)
        if (entry_int(e, "seen") != tick)
            json_object_del(g->actors->owners, key);
}

static void handle(gcs *g, actor_cmd *c)
{
    actor *a = c->kind == AC_NODE_DEAD || c->kind == AC_REPORT || c->kind == AC_ROOM
                   ? NULL
                   : find(g, c->id);
    switch (c->kind) {
    case AC_CREATED:
        if (!a)
            load(g, c->id);
        break;
    case AC_KILL:
        if (a)
            kill_actor(g, a, c->no_restart, "killed");
        break;
    case AC_LEASE_REPLY: on_lease_reply(g, c); break;
    case AC_PING_REPLY: on_ping_reply(g, c); break;
    case AC_NODE_DEAD: on_node_dead(g, c->id); break;
    case AC_REPORT: on_report(g, c); break;
    case AC_ROOM: on_room(g, c); break;
    }
}

static void run_commands(gcs *g)
{
    gcs_actors *A = g->actors;
    pthread_mutex_lock(&A->lock);
    actor_cmd *list = A->head;
    A->head = A->tail = NULL;
    pthread_mutex_unlock(&A->lock);
    for (actor_cmd *c = list, *next; c; c = next) {
        next = c->next;
        handle(g, c);
        pthread_mutex_lock(&A->lock);
        A->processed = c->seq;
        pthread_cond_broadcast(&A->processed_cv);
        pthread_mutex_unlock(&A->lock);
        free(c->data);
        free(c);
    }
}

/* ---------- the tick ---------- */

static void tick(gcs *g)
{
    int64_t now = prism_mono_ms(), tick = ++g->actors->ticks;
    for (actor *a = g->actors->live, *next; a; a = next) {
        next = a->next;
        if (a->phase == PH_WAIT_LEASE && now >= a->next_ms) {
            request_lease(g, a);
        } else if (a->phase == PH_LEASING && now >= a->next_ms) {
            pending(g, a, "waiting for the scheduler to answer", 200);
        } else if (a->phase == PH_ATTACH && attach(g, a) != 0) {
            LOG_WARN("actor %s: its worker %s cannot be reached to re-attach", a->id,
                     or_dash(a->worker_id));
            if (a->adopt)
                adopt_failed(g, a, "it cannot be reached");
            else
                lose_worker(g, a, LOST_WORKER);
            continue;
        } else if (a->phase == PH_KILLING && now >= a->next_ms) {
            LOG_WARN("actor %s: worker %s did not exit within %d ms of ACTOR_KILL: its node agent "
                     "kills it",
                     a->id, or_dash(a->worker_id), KILL_GRACE_MS);
            force_kill(g, a);
            finish_kill(g, a);
            continue;
        }
        ping_owner(g, a, now, tick);
    }
    forget_owners(g, tick);
    prune(g);
}

void *gcs_actor_manager_main(void *arg)
{
    gcs *g = arg;
    gcs_actors *A = g->actors;
    struct epoll_event evs[64];
    for (;;) {
        pthread_mutex_lock(&A->lock);
        bool stop = A->stopping;
        pthread_mutex_unlock(&A->lock);
        if (stop)
            break;
        int n = epoll_wait(A->epfd, evs, 64, A->live ? TICK_MS : PRUNE_EVERY_MS);
        for (int i = 0; i < n; i++) {
            actor *a = evs[i].data.ptr;
            if (!a) {
                uint64_t v;
                if (read(A->wakefd, &v, sizeof v) < 0) {
                }
                continue;
            }
            on_conn_event(g, a);
        }
        run_commands(g);
        tick(g);
    }
    return NULL;
}
