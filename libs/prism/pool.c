/* Leases and the connections to leased workers.
 *
 * Tasks of one shape (resources + strategy) share a pool of leased workers.
 * The leaser thread asks the scheduler for a lease when a pool has queued
 * tasks and every worker of it is full, and gives back (closes) workers idle
 * for LEASE_IDLE_MS. It never waits for an answer: a request goes out with
 * a reply subject of its own (the scheduler's answer may wait for a worker
 * to start, and meanwhile the leaser serves the other pools, connects to
 * actors and sends reports), and the answer comes to it as those of the
 * scheduler's queue do. A request the scheduler cannot grant now waits in its
 * queue (docs/scheduler.md): the grant comes later on this owner's lease
 * subject, with no retrying (only asking again every LEASE_CONFIRM_MS under
 * the same request ID, which keeps its place); meanwhile the pool's tasks
 * queue deeper on its workers; a request no longer needed (the tasks ran or
 * were cancelled) is cancelled. While other owners wait for the same shape,
 * each lease is given back after LEASE_SHARE_MS once its tasks are done, so
 * that the scheduler hands it to them in turn. The io thread reads DONE
 * frames, flushes pending writes and notices dead workers. Pushing happens
 * under the client lock from whichever thread made a task ready: writes are
 * non-blocking, and what does not fit waits in the connection's out buffer
 * for the io thread; while the io thread is busy anyway, pushes leave their
 * frames to it, and it sends them many a write (flush_soon). */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"
#include "codec.h"
#include "prism_httpc.h"
#include "prism_subjects.h"
#include "prism_time.h"
#include "prism_wire.h"
#include "prism_wire_conn.h"

#define LEASE_TIMEOUT_MS 10000
#define LEASE_QUEUE_MS 60000  /* how long a request may wait in the scheduler's queue */
#define LEASE_CONFIRM_MS 5000 /* a waiting request is asked again this often (still there?) */
#define MAX_BACKOFF_MS 1000
#define CONNECT_TIMEOUT_MS 5000 /* a worker's TCP connect and TLS handshake */
/* The leaser's rounds: every LEASER_TICK_MS while it has work with a
 * deadline, every LEASER_QUIET_MS when not. An idle process (a worker waiting
 * for a lease, an actor waiting for calls) would otherwise wake 20 times a
 * second: 500 idle actors cost a CPU in wake-ups alone. */
#define LEASER_TICK_MS 50
#define DIRECT_SLICE_MS 100 /* a direct read looks up this often (a close, a deadline) */
/* A caller's synchronous get polls its worker's socket this long before it
 * sleeps: a result due in microseconds then costs no wake-up, which across
 * CPUs of a VM costs more than the call itself (bench/actors, finding 10).
 * Only while the connection's replies come within it: a longer task (one
 * that reads its argument from the store, say) needs the CPU the poll would
 * take, from the worker or the store. */
#define DIRECT_SPIN_US 20
/* Past its first 2 us the poll yields the CPU each time: a worker or store
 * that shares the caller's CPU runs then (as the DAG channels' waits do). */
#define DIRECT_SPIN_ALONE_NS 2000
/* A connection read directly stays out of the io thread's wait this long
 * after, so that the next synchronous call wakes no other thread. */
#define PARK_US 2000
#define LEASER_QUIET_MS 1000
/* A client that disconnects waits this long for the answers to its lease
 * requests still out, to give back a grant among them at once. */
#define STOP_ANSWERS_MS 2000

/* ---------- pools ---------- */

json_t *prism__lease_request(const prism_client *c, const prism_task_options *o)
{
    json_t *res = o->resources ? json_loads(o->resources, 0, NULL) : NULL;
    if (!json_is_object(res)) {
        json_decref(res);
        res = json_object();
    }
    if (o->num_cpus > 0)
        json_object_set_new(res, "CPU", json_real(o->num_cpus));
    if (o->num_gpus > 0)
        json_object_set_new(res, "GPU", json_real(o->num_gpus));
    if (o->memory > 0)
        json_object_set_new(res, "memory", json_real(o->memory));
    static const char *const names[] = {"DEFAULT", "SPREAD", "NODE_AFFINITY"};
    json_t *req = json_pack("{s:s,s:o,s:s}", "owner_id", c->self_addr, "resources", res, "strategy",
                            names[o->strategy <= 2 ? o->strategy : 0]);
    if (o->strategy == PRISM_STRATEGY_NODE_AFFINITY) {
        json_object_set_new(req, "node_id", json_string(o->node_id ? o->node_id : ""));
        json_object_set_new(req, "soft", json_boolean(o->soft));
    }
    if (o->placement_group) {
        json_object_set_new(req, "placement_group_id", json_string(o->placement_group->id));
        json_object_set_new(req, "bundle_index", json_integer(o->bundle_index));
    }
    return req;
}

static bool same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* Only what decides the lease counts: resources and placement. */
static bool same_shape(const pool *p, const prism_task_options *b)
{
    const prism_task_options *a = &p->shape;
    const char *pg = b->placement_group ? b->placement_group->id : "";
    return a->num_cpus == b->num_cpus && a->num_gpus == b->num_gpus && a->memory == b->memory &&
           a->strategy == b->strategy && a->soft == b->soft &&
           same_text(a->resources, b->resources) && same_text(a->node_id, b->node_id) &&
           !strcmp(p->pg_id, pg) && (!*pg || a->bundle_index == b->bundle_index);
}

pool *prism__pool_for(prism_client *c, const prism_task_options *o)
{
    /* The common case, checked without building any JSON: a pool of this shape exists. */
    for (pool *p = c->pools; p; p = p->next)
        if (same_shape(p, o))
            return p;
    json_t *req = prism__lease_request(c, o);
    char *key = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS);
    for (pool *p = c->pools; p && key; p = p->next) {
        if (!strcmp(p->key, key)) {
            free(key);
            json_decref(req);
            return p;
        }
    }
    pool *p = key ? calloc(1, sizeof *p) : NULL;
    if (!p) {
        free(key);
        json_decref(req);
        return NULL;
    }
    p->key = key;
    p->request = req;
    p->shape = *o;
    p->shape.resources = o->resources ? strdup(o->resources) : NULL;
    p->shape.node_id = o->node_id ? strdup(o->node_id) : NULL;
    p->shape.placement_group = NULL; /* the caller's handle may go: its ID stays */
    p->task_ms = -1;
    if (o->placement_group)
        snprintf(p->pg_id, sizeof p->pg_id, "%s", o->placement_group->id);
    p->next = c->pools;
    c->pools = p;
    return p;
}

pool *prism__pool_for_actor(prism_client *c, actor_rec *a)
{
    pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    size_t n = strlen("actor:") + sizeof a->id;
    if (!(p->key = malloc(n))) {
        free(p);
        return NULL;
    }
    snprintf(p->key, n, "actor:%s", a->id);
    p->actor = a;
    p->next = c->pools;
    c->pools = p;
    return p;
}

/* ---------- pushing ---------- */

void prism__write_arg(prism_client *c, prism_writer *w, const prism_value *v)
{
    const prism_ref *r = prism_value_get_ref(v);
    obj_entry *e = r ? prism__obj_find(c, &r->id) : NULL; /* owned, or borrowed and fetched */
    if (e && e->state == OBJ_READY && !e->inline_buf) {
        pw_u8(w, SLOT_STORED);
        pw_bytes(w, e->id.b, sizeof e->id.b);
        pw_str(w, e->node_id);
        pw_str(w, e->store_socket);
        pw_str(w, e->store_url);
        pw_u64(w, e->size);
        return;
    }
    pw_u8(w, SLOT_INLINE);
    if (e && e->inline_buf) { /* the reference's value travels in its place */
        pw_u32(w, (uint32_t)e->inline_len);
        pw_bytes(w, e->inline_buf, e->inline_len);
        return;
    }
    size_t at = w->buf->len;
    pw_u32(w, 0);
    pw_value(w, v, c->self_addr);
    uint32_t n = (uint32_t)(w->buf->len - at - 4);
    for (int i = 0; i < 4 && !w->failed; i++)
        w->buf->data[at + (size_t)i] = (char)(n >> (8 * i));
}

static void encode_push(prism_client *c, prism_buf *out, const task_spec *t)
{
    size_t start = out->len;
    wire_begin(out, WIRE_PUSH);
    prism_writer w = {.buf = out};
    pw_bytes(&w, t->id.b, sizeof t->id.b);
    pw_str(&w, t->package);
    pw_str(&w, t->function);
    pw_u16(&w, (uint16_t)t->num_returns);
    pw_u32(&w, (uint32_t)t->nargs);
    for (size_t i = 0; i < t->nargs; i++)
        prism__write_arg(c, &w, t->args[i]);
    wire_end(out, start);
}

/* What the io thread waits for on wc: its results, unless a caller reads
 * them (prism__read_directly), and room to send while frames wait. */
static void set_events(prism_client *c, worker_conn *wc)
{
    uint32_t want = (wc->direct || wc->parked ? 0 : EPOLLIN) | (wc->want_out ? EPOLLOUT : 0);
    if (want == wc->armed)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = wc};
    epoll_ctl(c->epfd, EPOLL_CTL_MOD, wc->fd, &ev);
    wc->armed = want;
}

static void arm_out(prism_client *c, worker_conn *wc, bool on)
{
    if (wc->want_out == on)
        return;
    wc->want_out = on;
    set_events(c, wc);
}

/* Sends what the socket takes now. Returns -1 when the connection broke. */
static int flush_out(prism_client *c, worker_conn *wc)
{
    if (wc->auth.state == 0) /* the worker's CHALLENGE first: AUTH goes before all else */
        return 0;
    size_t sent = 0;
    while (sent < wc->out.len) {
        ssize_t n = wire_send(wc->fd, wc->tls, wc->out.data + sent, wc->out.len - sent);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        return -1;
    }
    if (sent) {
        memmove(wc->out.data, wc->out.data + sent, wc->out.len - sent);
        wc->out.len -= sent;
        wc->sent += (int64_t)sent;
    }
    arm_out(c, wc, wc->out.len > 0);
    return 0;
}

/* How many tasks a worker of a pool that gets no more workers takes at once:
 * PIPELINE_DEPTH of short tasks, fewer of long ones, so that what waits on
 * a worker is done within about LEASE_SHARE_MS (its lease can then be given
 * back to an owner waiting in turn); one until a task's length is known. */
static int pipeline_depth(const pool *p)
{
    if (p->task_ms < 0)
        return 1;
    if (p->task_ms * PIPELINE_DEPTH <= LEASE_SHARE_MS)
        return PIPELINE_DEPTH;
    int depth = (int)(LEASE_SHARE_MS / p->task_ms);
    return depth < 1 ? 1 : depth;
}

static worker_conn *least_loaded(pool *p)
{
    worker_conn *best = NULL;
    int depth = p->actor                                              ? ACTOR_PIPELINE_DEPTH
                : p->saturated || p->nworkers >= MAX_LEASES_PER_SHAPE ? pipeline_depth(p)
                                                                      : 1;
    for (worker_conn *w = p->workers; w; w = w->next) {
        if (w->sharing)
            continue;
        if (w->inflight == 0)
            return w; /* none is less loaded: the walk of a long list stops here */
        if (w->inflight < depth && (!best || w->inflight < best->inflight))
            best = w;
    }
    return best;
}

static void conn_close(prism_client *c, worker_conn *wc, const char *why);

/* Sends w's frames now, or leaves them to the io thread when it is polling
 * anyway. Both flags are sequentially consistent: either this thread sees
 * the io thread stopped polling and sends, or the io thread, having stopped,
 * sees out_pending and sends (both may: the second finds nothing). Lock held. */
static void flush_soon(prism_client *c, worker_conn *w)
{
    atomic_store(&c->out_pending, true);
    if (!atomic_load(&c->io_spinning))
        flush_out(c, w);
}

/* The frames pushes left for the io thread. Lock held. */
static void flush_pending(prism_client *c)
{
    if (!atomic_exchange(&c->out_pending, false))
        return;
    for (pool *p = c->pools; p; p = p->next)
        for (worker_conn *w = p->workers, *next; w; w = next) {
            next = w->next;
            if (w->out.len && flush_out(c, w) != 0)
                conn_close(c, w, "its connection closed");
        }
}

static void dispatch(prism_client *c, pool *p)
{
    worker_conn *w;
    while (p->queue && (w = least_loaded(p))) {
        task_spec *t = p->queue;
        /* An actor's calls go in the order they were made: one whose
         * arguments are not ready holds back those behind it. */
        if (t->deps_pending > 0)
            break;
        p->queue = t->next;
        if (!p->queue)
            p->queue_tail = NULL;
        p->queued--;
        t->next = NULL;
        if (t->dep_failed) { /* its returns failed already */
            prism__task_release(c, t);
            continue;
        }
        encode_push(c, &w->out, t);
        t->frame_end = w->sent + (int64_t)w->out.len;
        t->started_at = prism_now_ms();
        memcpy(t->node_id, w->node_id, strnlen(w->node_id, PRISM_ID_HEX_LEN) + 1);
        t->node_id[PRISM_ID_HEX_LEN] = '\0';
        memcpy(t->worker_id, w->worker_id, strnlen(w->worker_id, PRISM_ID_HEX_LEN) + 1);
        t->worker_id[PRISM_ID_HEX_LEN] = '\0';
        if (w->running_tail)
            w->running_tail->next = t;
        else
            w->running = t;
        w->running_tail = t;
        w->inflight++;
        flush_soon(c, w);
    }
    if (p->queue)
        pthread_cond_signal(&c->leaser_wake);
}

void prism__dispatch(prism_client *c, pool *p) { dispatch(c, p); }

void prism__conn_cancel(prism_client *c, worker_conn *wc, const prism_task_id *id)
{
    size_t start = wc->out.len;
    wire_begin(&wc->out, WIRE_CANCEL);
    prism_writer w = {.buf = &wc->out};
    pw_bytes(&w, id->b, PRISM_ID_BYTES);
    wire_end(&wc->out, start);
    flush_out(c, wc);
}

task_spec *prism__pool_take(prism_client *c, pool *p,
                            bool (*pick)(prism_client *, const task_spec *))
{
    task_spec *taken = NULL, **tail = &taken, **pp = &p->queue;
    p->queue_tail = NULL;
    while (*pp) {
        task_spec *t = *pp;
        if (!pick(c, t)) {
            p->queue_tail = t;
            pp = &t->next;
            continue;
        }
        *pp = t->next;
        t->next = NULL;
        *tail = t;
        tail = &t->next;
        p->queued--;
    }
    return taken;
}

void prism__pool_enqueue(prism_client *c, task_spec *t, bool front)
{
    pool *p = t->pool;
    t->next = NULL;
    t->in_flight = true;
    if (front) {
        t->next = p->queue;
        p->queue = t;
        if (!p->queue_tail)
            p->queue_tail = t;
    } else if (p->queue_tail) {
        p->queue_tail->next = t;
        p->queue_tail = t;
    } else {
        p->queue = p->queue_tail = t;
    }
    p->queued++;
    dispatch(c, p);
}

/* ---------- connections ---------- */

static void conn_close(prism_client *c, worker_conn *wc, const char *why)
{
    pool *p = wc->pool;
    for (worker_conn **pp = &p->workers; *pp; pp = &(*pp)->next) {
        if (*pp == wc) {
            *pp = wc->next;
            p->nworkers--;
            break;
        }
    }
    epoll_ctl(c->epfd, EPOLL_CTL_DEL, wc->fd, NULL);
    wire_tls_destroy(wc->tls);
    wc->tls = NULL;
    if (!wc->direct) /* else the caller polling it closes it (prism__read_directly) */
        close(wc->fd);
    /* Retried tasks go back to the front in their original order. A task
     * worker runs its tasks one at a time, in order: only the first may have
     * started; an actor's calls may run side by side. Neither ran when its
     * push never left (a call made just after the actor's worker died: the
     * send fails, and the call waits for the actor's restart). */
    task_spec *first = wc->running;
    task_spec *list = wc->running, *rev = NULL;
    while (list) {
        task_spec *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    for (task_spec *t = rev, *next; t; t = next) {
        next = t->next;
        prism__task_worker_died(c, t, why, (p->actor || t == first) && t->frame_end <= wc->sent);
    }
    prism_buf_free(&wc->in);
    prism_buf_free(&wc->out);
    if (p->actor && p->actor->state != ACTOR_DEAD) { /* it may have restarted elsewhere: ask */
        p->actor->state = ACTOR_UNKNOWN;
        p->actor->next_query_ms = 0;
    }
    /* The io thread may hold this pointer from its last wait: it frees it. */
    wc->dead = true;
    wc->next = c->graveyard;
    c->graveyard = wc;
    dispatch(c, p);
}

static void bury(prism_client *c)
{
    worker_conn **kept = &c->graveyard;
    for (worker_conn *wc = c->graveyard, *next; wc; wc = next) {
        next = wc->next;
        if (wc->direct) { /* a caller still polls it: the next time */
            *kept = wc;
            kept = &wc->next;
            continue;
        }
        free(wc->lease_id);
        free(wc->node_id);
        free(wc->worker_id);
        free(wc);
    }
    *kept = NULL;
}

void prism__pools_node_dead(prism_client *c, const char *node_id)
{
    prism__deletions_node_dead(c, node_id); /* its copies died with it */
    for (pool *p = c->pools; p; p = p->next)
        for (worker_conn *w = p->workers, *next; w; w = next) {
            next = w->next;
            if (!strcmp(w->node_id, node_id))
                conn_close(c, w, "its node died");
        }
}

static void on_done(prism_client *c, worker_conn *wc, const uint8_t *p, size_t len)
{
    if (len < PRISM_ID_BYTES)
        return;
    task_spec *prev = NULL;
    for (task_spec *t = wc->running; t; prev = t, t = t->next) {
        if (memcmp(t->id.b, p, PRISM_ID_BYTES) != 0)
            continue;
        if (prev)
            prev->next = t->next;
        else
            wc->running = t->next;
        if (wc->running_tail == t)
            wc->running_tail = prev;
        t->next = NULL;
        if (--wc->inflight == 0) {
            wc->idle_since_ms = prism_mono_ms();
            if (wc->sharing) /* the leaser gives it back */
                pthread_cond_signal(&c->leaser_wake);
        }
        /* A task worker runs the tasks pushed to it one at a time, in order:
         * this one started when the one before it ended, when that was after
         * its push (the start its task event reports). Actor calls may run
         * concurrently: they keep their push time. */
        if (!wc->pool->actor && wc->last_done_ms > t->started_at)
            t->started_at = wc->last_done_ms;
        if (!wc->pool->actor) { /* how long its tasks run, smoothed (pipeline_depth) */
            double ran = (double)(prism_now_ms() - t->started_at);
            pool *tp = wc->pool;
            tp->task_ms = tp->task_ms < 0 ? ran : tp->task_ms * 0.875 + ran * 0.125;
        }
        prism__task_done(c, t, p + PRISM_ID_BYTES, len - PRISM_ID_BYTES);
        wc->last_done_ms = prism_now_ms(); /* not before the end its event reported */
        break;
    }
    dispatch(c, wc->pool);
}

/* A frame of the handshake: the AUTH answering the CHALLENGE goes out before
 * the frames queued meanwhile. Returns -1 when the worker failed it. */
static int on_auth(prism_client *c, worker_conn *wc, uint8_t type, const uint8_t *p, size_t n)
{
    prism_buf auth;
    prism_buf_init(&auth, (size_t)WIRE_MAX_FRAME * 4);
    int rc = wire_auth_step(&wc->auth, c->wire_key, type, p, n, &auth);
    if (rc == 0 && auth.len) { /* the AUTH frame */
        size_t front = auth.len;
        if (prism_buf_append(&auth, wc->out.data, wc->out.len) != 0) {
            prism_buf_free(&auth);
            return -1;
        }
        prism_buf_free(&wc->out);
        wc->out = auth;
        wc->sent -= (int64_t)front; /* the frames queued meanwhile end that much later */
        return flush_out(c, wc);
    }
    prism_buf_free(&auth);
    return rc;
}

/* Reads what arrived. Returns -1 when the connection is finished. */
static int conn_read(prism_client *c, worker_conn *wc)
{
    char chunk[65536];
    for (;;) {
        ssize_t n = wire_recv(wc->fd, wc->tls, chunk, sizeof chunk);
        if (n == 0)
            return -1;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        if (prism_buf_append(&wc->in, chunk, (size_t)n) != 0)
            return -1;
        size_t off = 0;
        for (;;) {
            uint8_t type;
            const uint8_t *payload;
            size_t plen;
            long used =
                wire_parse((uint8_t *)wc->in.data + off, wc->in.len - off, &type, &payload, &plen);
            if (used < 0)
                return -1;
            if (used == 0)
                break;
            off += (size_t)used;
            if (!wire_auth_done(&wc->auth)) {
                if (on_auth(c, wc, type, payload, plen) != 0)
                    return -1;
            } else if (type == WIRE_DONE) {
                on_done(c, wc, payload, plen);
            }
        }
        memmove(wc->in.data, wc->in.data + off, wc->in.len - off);
        wc->in.len -= off;
        /* A short read emptied the socket, but not necessarily the TLS
         * session, which epoll does not see. */
        if ((size_t)n < sizeof chunk && !(wc->tls && wire_tls_pending(wc->tls)))
            return 0;
    }
}

/* Whether the io thread waits for results (`busy`), and whether a
 * connection is parked: one walk of the connections, before each wait. */
static void io_wants(prism_client *c, bool *busy, bool *parked)
{
    *busy = *parked = false;
    for (pool *p = c->pools; p; p = p->next)
        for (worker_conn *w = p->workers; w; w = w->next) {
            *parked |= w->parked;
            *busy |= w->inflight && !w->direct && !w->parked;
        }
}

static bool runs(const worker_conn *wc, const prism_task_id *id)
{
    for (const task_spec *t = wc->running; t; t = t->next)
        if (prism_id_equal(&t->id, id))
            return true;
    return false;
}

bool prism__read_directly(prism_client *c, const prism_object_id *id, int64_t deadline_ms)
{
    prism_task_id task;
    prism_object_id_task(id, &task);
    worker_conn *wc = NULL;
    for (pool *p = c->pools; p; p = p->next)
        for (worker_conn *w = p->workers; w; w = w->next) {
            if (!w->inflight)
                continue;
            if (wc)
                return false; /* several: the io thread serves them together */
            wc = w;
        }
    if (!wc || wc->direct || wc->tls || wc->out.len || !wire_auth_done(&wc->auth) ||
        !runs(wc, &task))
        return false;
    wc->direct = true;
    set_events(c, wc);
    int fd = wc->fd;
    int64_t left = deadline_ms < 0 ? DIRECT_SLICE_MS : deadline_ms - prism_mono_ms();
    pthread_mutex_unlock(&c->lock);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n = 0;
    int64_t began = prism_mono_ns(), now = began, spin = wc->slow_replies ? 0 : DIRECT_SPIN_US;
    while (left > 0 && (n = poll(&pfd, 1, 0)) == 0 && now < began + spin * 1000) {
        if (now - began > DIRECT_SPIN_ALONE_NS)
            sched_yield();
        now = prism_mono_ns();
    }
    if (n == 0 && left > 0)
        n = poll(&pfd, 1, (int)(left < DIRECT_SLICE_MS ? left : DIRECT_SLICE_MS));
    wc->slow_replies = n == 0 || prism_mono_ns() - began > DIRECT_SPIN_US * 1000;
    pthread_mutex_lock(&c->lock);
    wc->direct = false;
    if (wc->dead) { /* closed meanwhile (its tasks moved on): the fd was left to this thread */
        close(fd);
        return true;
    }
    if (n > 0 && conn_read(c, wc) != 0) {
        conn_close(c, wc, "its connection closed");
        return true;
    }
    if (c->io_waiters) /* another thread waits for the io thread to read */
        return true;
    wc->parked = true;
    wc->parked_ns = prism_mono_ns();
    set_events(c, wc);
    uint64_t one = 1; /* a wait without end would never take it back */
    if (!c->io_timed && write(c->wakefd, &one, sizeof one) < 0) {
    }
    return true;
}

/* Gives the io thread back the connections parked before the given time.
 * Lock held. */
void prism__unpark(prism_client *c, int64_t parked_before_ns)
{
    for (pool *p = c->pools; p; p = p->next)
        for (worker_conn *w = p->workers; w; w = w->next)
            if (w->parked && w->parked_ns < parked_before_ns) {
                w->parked = false;
                set_events(c, w);
            }
}

/* While results are due, polls for a moment before sleeping: a result that
 * arrives within microseconds then costs no wake-up of this thread. */
static int wait_events(prism_client *c, struct epoll_event *evs, int max)
{
    pthread_mutex_lock(&c->lock);
    bool busy, parked;
    io_wants(c, &busy, &parked);
    c->io_timed = parked;
    pthread_mutex_unlock(&c->lock);
    if (busy) {
        atomic_store(&c->io_spinning, true);
        int64_t until = prism_mono_ns() + IO_SPIN_US * 1000;
        do {
            int n = epoll_wait(c->epfd, evs, max, 0);
            if (n != 0 || atomic_load(&c->out_pending)) {
                atomic_store(&c->io_spinning, false);
                return n;
            }
        } while (prism_mono_ns() < until);
        atomic_store(&c->io_spinning, false);
        if (atomic_load(&c->out_pending))
            return 0;
    }
    /* Nothing else here runs on a clock: connections closed meanwhile are
     * freed after the next event, or when the client stops. */
    return epoll_wait(c->epfd, evs, max, parked ? PARK_US / 1000 : -1);
}

static void *io_main(void *arg)
{
    prism_client *c = arg;
    struct epoll_event evs[64];
    for (;;) {
        pthread_mutex_lock(&c->lock);
        bury(c); /* no event from the coming wait can name these */
        pthread_mutex_unlock(&c->lock);
        int n = wait_events(c, evs, 64);
        pthread_mutex_lock(&c->lock);
        /* The tasks the results below make room for go out together, after. */
        atomic_store(&c->io_spinning, true);
        bool stop = c->stopping;
        for (int i = 0; i < n && !stop; i++) {
            worker_conn *wc = evs[i].data.ptr;
            if (wc && wc->dead)
                continue;
            if (!wc) {
                uint64_t v;
                if (read(c->wakefd, &v, sizeof v) < 0) {
                }
                continue;
            }
            int rc = 0;
            if (!wc->direct && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                rc = conn_read(c, wc); /* a caller reads a direct one */
            if (rc == 0 && (evs[i].events & EPOLLOUT))
                rc = flush_out(c, wc);
            if (rc != 0)
                conn_close(c, wc, "its connection closed");
        }
        atomic_store(&c->io_spinning, false);
        if (c->io_timed)
            prism__unpark(c, prism_mono_ns() - PARK_US * 1000);
        flush_pending(c);
        pthread_mutex_unlock(&c->lock);
        if (stop)
            return NULL;
    }
}

/* ---------- leases ---------- */

worker_conn *prism__worker_connect(prism_client *c, json_t *grant, bool *config_error, char *err,
                                   size_t errlen)
{
    const char *unix_path = json_string_value(json_object_get(grant, "unix"));
    const char *tcp = json_string_value(json_object_get(grant, "tcp"));
    char addr[512];
    int fd = -1;
    wire_tls *tls = NULL;
    *config_error = false;
    snprintf(err, errlen, "the granted worker has no address");
    if (unix_path && *unix_path) {
        snprintf(addr, sizeof addr, "unix:%s", unix_path);
        fd = wire_connect(addr, CONNECT_TIMEOUT_MS, &tls, config_error, err, errlen);
    }
    if (fd < 0 && tcp && *tcp) {
        wire_tcp_address(tcp, addr, sizeof addr);
        fd = wire_connect(addr, CONNECT_TIMEOUT_MS, &tls, config_error, err, errlen);
    }
    if (fd < 0)
        return NULL;
    worker_conn *wc = calloc(1, sizeof *wc);
    if (!wc) {
        wire_tls_destroy(tls);
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    wc->fd = fd;
    wc->tls = tls;
    wc->lease_id = strdup(json_string_value(json_object_get(grant, "lease_id")) ?: "");
    wc->node_id = strdup(json_string_value(json_object_get(grant, "node_id")) ?: "");
    wc->worker_id = strdup(json_string_value(json_object_get(grant, "worker_id")) ?: "");
    prism_buf_init(&wc->in, WIRE_MAX_FRAME + 65536);
    prism_buf_init(&wc->out, (size_t)WIRE_MAX_FRAME * 4);
    wc->idle_since_ms = wc->leased_ms = prism_mono_ms();
    size_t start = wc->out.len;
    wire_begin(&wc->out, WIRE_HELLO);
    prism_writer w = {.buf = &wc->out};
    pw_str(&w, wc->lease_id);
    pw_str(&w, c->self_addr);
    wire_end(&wc->out, start);
    return wc;
}

static const char *reply_error(json_t *reply, const char **code)
{
    json_t *err = json_object_get(reply, "error");
    *code = json_string_value(json_object_get(err, "code"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    return msg ? msg : "no reason given";
}

static bool is_code(json_t *reply, const char *want)
{
    const char *code = json_string_value(json_object_get(json_object_get(reply, "error"), "code"));
    return code && !strcmp(code, want);
}

static void set_reason(pool *p, const char *reason)
{
    free(p->pending_reason);
    p->pending_reason = reason ? strdup(reason) : NULL;
}

/* One lease request for `p`. Called and returns with the lock held; drops it meanwhile. */
/* The request for `p`, with where the next task's stored arguments lie: the
 * scheduler prefers the node holding most of their bytes. Lock held. */
static json_t *lease_request_now(prism_client *c, pool *p)
{
    json_t *req = json_copy(p->request), *where = json_object();
    for (size_t i = 0; p->queue && i < p->queue->nargs; i++) {
        const prism_ref *r = prism_value_get_ref(p->queue->args[i]);
        obj_entry *e = r ? prism__obj_find(c, &r->id) : NULL;
        if (!e || e->state != OBJ_READY || e->inline_buf || !e->node_id || !*e->node_id)
            continue;
        double before = json_number_value(json_object_get(where, e->node_id));
        json_object_set_new(where, e->node_id, json_real(before + (double)e->size));
    }
    if (json_object_size(where))
        json_object_set(req, "locality", where);
    json_decref(where);
    /* The scheduler answers within this, before our own wait ends. */
    json_object_set_new(req, "timeout_ms", json_integer(LEASE_TIMEOUT_MS - 1000));
    char id[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)p->request_id);
    json_object_set_new(req, "request_id", json_string(id));
    json_object_set_new(req, "queue_ms", json_integer(LEASE_QUEUE_MS));
    return req;
}

/* Gives back a lease whose worker could not be reached: nobody else would. */
static void return_lease(prism_client *c, json_t *grant)
{
    const char *node = json_string_value(json_object_get(grant, "node_id"));
    const char *lease = json_string_value(json_object_get(grant, "lease_id"));
    if (!node || !lease)
        return;
    char subject[160];
    prism_subject_node(subject, sizeof subject, node, PRISM_NODE_WORKER_RETURN);
    json_t *msg = json_pack("{s:s}", "lease_id", lease);
    prism_bus_publish_json(c->bus, subject, msg);
    json_decref(msg);
}

/* The scheduler's answer to the request out for `p` (rc and reply of the
 * request, or an answer that waited in its queue): a worker connected, or
 * why not. Called without the lock; returns with it held. */
static void take_answer(prism_client *c, pool *p, int rc, json_t *reply)
{
    bool granted = rc == PRISM_BUS_OK && json_is_true(json_object_get(reply, "ok"));
    bool config_error = false;
    char err[600] = "";
    worker_conn *wc = granted ? prism__worker_connect(c, reply, &config_error, err, sizeof err)
                              : NULL;
    if (granted && !wc)
        return_lease(c, reply);
    pthread_mutex_lock(&c->lock);
    p->requesting = p->sched_queued = p->contended = p->awaiting = false;
    int64_t now = prism_mono_ms();
    const char *code = NULL;
    /* No new worker: the ones the pool has take tasks deeper. */
    p->saturated = !wc;
    if (wc) {
        prism__pool_add_worker(c, p, wc);
    } else if (rc == PRISM_BUS_NO_RESPONDERS) {
        set_reason(p, "waiting for a scheduler: none is running");
        p->next_request_ms = now + MAX_BACKOFF_MS;
    } else if (rc != PRISM_BUS_OK) {
        set_reason(p, "waiting for the scheduler to answer");
        p->next_request_ms = now + 200;
    } else if (config_error) { /* e.g. TLS without a CA: waiting would not help */
        char msg[700];
        snprintf(msg, sizeof msg, "the granted worker cannot be used: %s", err);
        prism__pool_fail_queued(c, p, PRISM_ERR_CONNECT, msg);
        p->next_request_ms = now + MAX_BACKOFF_MS;
    } else if (!granted &&
               (is_code(reply, "placement_group_removed") || is_code(reply, "invalid_argument"))) {
        /* Waiting would never end: what asks for the group (or in a way
         * the scheduler refuses) fails. */
        prism__pool_fail_queued(c, p, PRISM_ERR_INVALID, reply_error(reply, &code));
        p->next_request_ms = now + MAX_BACKOFF_MS;
    } else {
        char msg[700];
        if (granted)
            snprintf(msg, sizeof msg, "the granted worker could not be reached: %s", err);
        set_reason(p, granted ? msg : reply_error(reply, &code));
        bool infeasible = code && !strcmp(code, "infeasible");
        p->next_request_ms = now + (infeasible ? MAX_BACKOFF_MS : 50 + (int64_t)(rand() % 150));
    }
    if (!wc && p->workers)
        dispatch(c, p);
}

/* The scheduler queued the request out for `p`: its grant comes later. Lock held. */
static void on_queued(prism_client *c, pool *p, json_t *reply)
{
    if (json_is_true(json_object_get(reply, "contended")))
        p->contended = true;
    if (p->sched_queued)
        return; /* a notice: others wait too */
    p->sched_queued = true;
    p->queued_since_ms = prism_mono_ms();
    p->saturated = true; /* until the grant, the workers it has take tasks deeper */
    set_reason(p, "waiting in the scheduler's queue for room on a node");
    dispatch(c, p);
}

/* Asks for a lease for `p`, or, for a request waiting in the scheduler's
 * queue, asks again under the same request_id: the scheduler that holds it
 * says so and it keeps its place; one that does not (it restarted) takes it
 * anew. The answer comes on lease_subject.<request_id> (take_lease_answers).
 * Lock held; dropped meanwhile. */
static void request_lease(prism_client *c, pool *p)
{
    if (!p->sched_queued)
        p->request_id = ++c->lease_seq;
    p->requesting = p->awaiting = true;
    p->asked_ms = p->queued_since_ms = prism_mono_ms();
    json_t *req = lease_request_now(c, p);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    char reply[sizeof c->lease_subject + 24];
    snprintf(reply, sizeof reply, "%s.%llu", c->lease_subject, (unsigned long long)p->request_id);
    pthread_mutex_unlock(&c->lock);
    int rc = body ? prism_bus_publish_request(c->bus, PRISM_SUBJECT_SCHED_LEASE, reply, body,
                                              strlen(body))
                  : PRISM_BUS_ERROR;
    free(body);
    if (rc != PRISM_BUS_OK)
        take_answer(c, p, rc, NULL);
    else
        pthread_mutex_lock(&c->lock);
}

/* A request whose answer did not come in LEASE_TIMEOUT_MS: the scheduler is
 * slow or gone (its queue went with it). Asked anew, under a new ID; a grant
 * that comes late for the old one is given back. Lock held. */
static void tend_unanswered(prism_client *c, int64_t now)
{
    for (pool *p = c->pools; p; p = p->next) {
        if (!p->requesting || !p->awaiting || now - p->asked_ms < LEASE_TIMEOUT_MS)
            continue;
        pthread_mutex_unlock(&c->lock);
        take_answer(c, p, PRISM_BUS_TIMEOUT, NULL);
    }
}

/* An answer that arrived on the lease subjects (a NATS thread). */
typedef struct lease_answer {
    json_t *body;
    uint64_t id;        /* the request's (0: none given) */
    bool no_responders; /* nobody took the request */
    struct lease_answer *next;
} lease_answer;

static void on_lease_answer(prism_bus *bus, const char *subject, const char *reply,
                            const char *data, size_t len, void *ud)
{
    prism_client *c = ud;
    lease_answer *a = calloc(1, sizeof *a);
    if (!a)
        return;
    /* The first answer to a request comes on lease_subject.<request_id>;
     * the server's no-responders notice there is empty. */
    size_t n = strlen(c->lease_subject);
    const char *id = !strncmp(subject, c->lease_subject, n) && subject[n] == '.' ? subject + n + 1
                                                                                 : NULL;
    if (id && len == 0) {
        a->no_responders = true;
        a->body = json_object();
    } else {
        a->body = json_loadb(data, len, 0, NULL);
    }
    if (!json_is_object(a->body)) {
        json_decref(a->body);
        free(a);
        return;
    }
    if (!id)
        id = json_string_value(json_object_get(a->body, "request_id"));
    a->id = id ? strtoull(id, NULL, 10) : 0;
    pthread_mutex_lock(&c->lock);
    a->next = c->lease_answers;
    c->lease_answers = a;
    pthread_cond_signal(&c->leaser_wake);
    pthread_mutex_unlock(&c->lock);
}

static pool *pool_of_request(prism_client *c, uint64_t id)
{
    for (pool *p = c->pools; p && id; p = p->next)
        if (p->requesting && p->request_id == id)
            return p;
    return NULL;
}

static void publish_cancel(prism_client *c, const pool *p)
{
    json_t *msg = json_pack("{s:s}", "owner_id", c->self_addr);
    if (p) {
        char id[24];
        snprintf(id, sizeof id, "%llu", (unsigned long long)p->request_id);
        json_object_set_new(msg, "request_id", json_string(id));
    }
    prism_bus_publish_json(c->bus, PRISM_SUBJECT_SCHED_LEASE_CANCEL, msg);
    json_decref(msg);
}

/* The answers that came on the lease subject, oldest first. Lock held; dropped meanwhile. */
static void take_lease_answers(prism_client *c)
{
    lease_answer *list = NULL;
    while (c->lease_answers) { /* they were pushed newest first */
        lease_answer *a = c->lease_answers;
        c->lease_answers = a->next;
        a->next = list;
        list = a;
    }
    for (lease_answer *a = list, *next; a; a = next) {
        next = a->next;
        pool *p = pool_of_request(c, a->id);
        if (p) {
            p->awaiting = false;
        } else if (prism__actor_answered(c, a->id, a->no_responders ? NULL : a->body)) {
            json_decref(a->body); /* an actor's question to the GCS */
            free(a);
            continue;
        }
        if (p && a->no_responders) {
            pthread_mutex_unlock(&c->lock);
            take_answer(c, p, PRISM_BUS_NO_RESPONDERS, NULL);
        } else if (p && json_is_true(json_object_get(a->body, "queued"))) {
            on_queued(c, p, a->body);
        } else if (p) {
            /* A copy asked again just then may wait on (it went from the
             * queue as the asking crossed it): it goes too. */
            if (p->sched_queued)
                publish_cancel(c, p);
            p->sched_queued = false;
            pthread_mutex_unlock(&c->lock);
            take_answer(c, p, PRISM_BUS_OK, a->body);
        } else if (json_is_true(json_object_get(a->body, "ok"))) {
            pthread_mutex_unlock(&c->lock); /* cancelled, or given up: nobody wants it */
            return_lease(c, a->body);
            pthread_mutex_lock(&c->lock);
        }
        json_decref(a->body);
        free(a);
    }
}

/* Requests waiting in the scheduler's queue that no task needs any more are
 * cancelled (a grant would hold a worker for nothing). Leases are shared
 * while others wait. Lock held. */
static void tend_queued(prism_client *c, int64_t now)
{
    for (pool *p = c->pools; p; p = p->next) {
        if (!p->requesting || !p->sched_queued)
            continue;
        if (!p->queue) {
            publish_cancel(c, p);
            for (worker_conn *w = p->workers; w && p->contended; w = w->next)
                w->sharing = true; /* others wait: no idle time before they get it */
            p->requesting = p->sched_queued = p->contended = false;
            continue;
        }
        for (worker_conn *w = p->workers, *next; w && p->contended; w = next) {
            next = w->next;
            if (!w->sharing && now - w->leased_ms >= LEASE_SHARE_MS)
                w->sharing = true;
            if (w->sharing && w->inflight == 0)
                conn_close(c, w, "lease given back: other owners wait");
        }
    }
}

static bool arguments_ready(prism_client *c, const task_spec *t) { return t->deps_pending == 0; }

void prism__pool_fail_queued(prism_client *c, pool *p, prism_status s, const char *message)
{
    for (task_spec *t = p->queue; t; t = t->next) {
        if (!t->dep_failed)
            prism__task_fail_returns(c, t, s, message);
        t->dep_failed = true;
    }
    for (task_spec *t = prism__pool_take(c, p, arguments_ready), *next; t; t = next) {
        next = t->next;
        prism__task_release(c, t);
    }
}

void prism__pool_add_worker(prism_client *c, pool *p, worker_conn *wc)
{
    wc->pool = p;
    wc->next = p->workers;
    p->workers = wc;
    p->nworkers++;
    set_reason(p, NULL);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = wc};
    epoll_ctl(c->epfd, EPOLL_CTL_ADD, wc->fd, &ev);
    wc->armed = EPOLLIN;
    dispatch(c, p);
    flush_out(c, wc);
}

/* Closes workers idle past the lease timeout, and those given back to share
 * once idle; the worker gives the lease back. Connections to actors stay:
 * they hold no lease. */
static void return_idle(prism_client *c, int64_t now)
{
    for (pool *p = c->pools; p; p = p->next) {
        for (worker_conn *w = p->workers, *next; w && !p->actor; w = next) {
            next = w->next;
            if (w->inflight == 0 &&
                (w->sharing || (!p->queue && now - w->idle_since_ms > LEASE_IDLE_MS)))
                conn_close(c, w, "lease returned");
        }
    }
}

/* A task still queued after dispatch found every worker at its depth
 * (least_loaded): one more worker is worth asking for. */
static bool wants_lease(const pool *p, int64_t now)
{
    if (p->requesting) /* one waiting in the scheduler's queue is confirmed now and then */
        return p->sched_queued && !p->awaiting && p->queue &&
               now - p->queued_since_ms >= LEASE_CONFIRM_MS;
    return !p->actor && p->queue && now >= p->next_request_ms && p->nworkers < MAX_LEASES_PER_SHAPE;
}

void prism__wake_wait(prism_client *c, pthread_cond_t *wake, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(wake, &c->lock, &ts);
}

/* Nothing of the leaser's rounds is due soon: no tasks queued, running or
 * waiting for a lease, no leases held (each is given back on time), nothing to
 * answer, no events to send. Whatever starts such work signals
 * leaser_wake or happens on a connection the round then sees. Lock held. */
static bool leaser_quiet(const prism_client *c)
{
    if (c->remote_gets || c->nresolving || !prism__events_quiet(c))
        return false;
    for (const pool *p = c->pools; p; p = p->next) {
        if (p->queue || p->requesting || (p->workers && !p->actor))
            return false;
        for (const worker_conn *w = p->workers; w; w = w->next)
            if (w->inflight)
                return false;
    }
    for (const actor_rec *a = c->actors; a; a = a->next)
        if (a->reported_queued)
            return false;
    return true;
}

static void *leaser_main(void *arg)
{
    prism_client *c = arg;
    pthread_mutex_lock(&c->lock);
    while (!c->stopping) {
        int64_t now = prism_mono_ms();
        pool *need = NULL;
        for (pool *p = c->pools; p && !need; p = p->next)
            if (wants_lease(p, now))
                need = p;
        if (c->lease_answers) {
            take_lease_answers(c);
            continue;
        }
        if (need) {
            request_lease(c, need);
            continue;
        }
        tend_unanswered(c, now);
        tend_queued(c, now);
        return_idle(c, now);
        prism__events_tick(c);
        prism__borrow_tick(c);
        prism__actors_tick(c);
        if (!c->stopping && !c->lease_answers)
            prism__wake_wait(c, &c->leaser_wake,
                             leaser_quiet(c) ? LEASER_QUIET_MS : LEASER_TICK_MS);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

int prism__pools_start(prism_client *c)
{
    snprintf(c->lease_subject, sizeof c->lease_subject, "%s%s", c->owner_subject,
             PRISM_SUBJECT_OWNER_LEASE_SUFFIX);
    char first[sizeof c->lease_subject + 2];
    snprintf(first, sizeof first, "%s.*", c->lease_subject);
    if (prism_bus_subscribe(c->bus, c->lease_subject, NULL, on_lease_answer, c) != PRISM_BUS_OK ||
        prism_bus_subscribe(c->bus, first, NULL, on_lease_answer, c) != PRISM_BUS_OK)
        return -1;
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    c->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->epfd < 0 || c->wakefd < 0)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->wakefd, &ev);
    if (prism__courier_start(c) != 0 || pthread_create(&c->io_thread, NULL, io_main, c) != 0)
        return -1;
    if (pthread_create(&c->leaser_thread, NULL, leaser_main, c) != 0) {
        c->stopping = true;
        uint64_t one = 1;
        if (write(c->wakefd, &one, sizeof one) < 0) {
        }
        pthread_join(c->io_thread, NULL);
        c->io_thread = 0;
        return -1;
    }
    return 0;
}

static void free_pool(prism_client *c, pool *p)
{
    while (p->workers)
        conn_close(c, p->workers, "the client disconnected");
    for (task_spec *t = p->queue, *next; t; t = next) {
        next = t->next;
        t->next = NULL;
        if (t->deps_pending == 0) /* else a waiter list frees it with the table */
            prism__task_fail(c, t, PRISM_ERR_CANCELLED, "the client disconnected");
    }
    json_decref(p->request);
    free((char *)p->shape.resources);
    free((char *)p->shape.node_id);
    free(p->key);
    free(p->pending_reason);
    free(p);
}

/* Drops the answers that came, once the leaser is gone: the requests they
 * answer are no longer out (queued ones are cancelled after), and a grant
 * among them is given back. Lock held. */
static void give_back_answers(prism_client *c)
{
    while (c->lease_answers) {
        lease_answer *a = c->lease_answers;
        c->lease_answers = a->next;
        pool *p = pool_of_request(c, a->id);
        if (p) {
            p->awaiting = false;
            p->requesting = json_is_true(json_object_get(a->body, "queued"));
        }
        if (json_is_true(json_object_get(a->body, "ok")))
            return_lease(c, a->body);
        json_decref(a->body);
        free(a);
    }
}

void prism__pools_stop(prism_client *c)
{
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    pthread_cond_broadcast(&c->leaser_wake);
    pthread_mutex_unlock(&c->lock);
    uint64_t one = 1;
    if (c->wakefd >= 0 && write(c->wakefd, &one, sizeof one) < 0) {
    }
    if (c->io_thread)
        pthread_join(c->io_thread, NULL);
    if (c->leaser_thread)
        pthread_join(c->leaser_thread, NULL);
    prism__courier_stop(c);
    /* No request goes out now. The answers still due are waited for a
     * while (a grant may wait for a worker to start): a grant is given back
     * at once, not by its worker after GRANT_UNUSED_MS with nobody using
     * it. What this owner left in a scheduler's queue goes at once, not at
     * the scheduler's next ping; a grant that comes meanwhile is given back
     * below. */
    pthread_mutex_lock(&c->lock);
    int64_t until = prism_mono_ms() + STOP_ANSWERS_MS;
    bool asked = false;
    for (;;) {
        give_back_answers(c);
        bool due = false;
        asked = false;
        for (pool *p = c->pools; p; p = p->next) {
            asked |= p->requesting;
            due |= p->awaiting;
        }
        int64_t now = prism_mono_ms();
        if (!due || now >= until)
            break;
        prism__wake_wait(c, &c->leaser_wake, until - now);
    }
    pthread_mutex_unlock(&c->lock);
    if (asked)
        publish_cancel(c, NULL);
    if (c->bus && c->lease_subject[0]) {
        char first[sizeof c->lease_subject + 2];
        snprintf(first, sizeof first, "%s.*", c->lease_subject);
        prism_bus_unsubscribe(c->bus, c->lease_subject);
        prism_bus_unsubscribe(c->bus, first);
    }
    pthread_mutex_lock(&c->lock);
    for (pool *p = c->pools, *next; p; p = next) {
        next = p->next;
        free_pool(c, p);
    }
    c->pools = NULL;
    give_back_answers(c);
    bury(c);
    /* Tasks held only as dependents of pending objects go with the table. */
    prism__deletions_run(c, true);
    pthread_mutex_unlock(&c->lock);
    if (c->epfd >= 0)
        close(c->epfd);
    if (c->wakefd >= 0)
        close(c->wakefd);
}
