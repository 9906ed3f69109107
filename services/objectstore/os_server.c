/* The Unix-socket server: one epoll loop on the main thread serving local
 * clients with the binary protocol of prism_store_proto.h. Each request is
 * dispatched from a table by type; a get that must wait parks its connection
 * (no further requests are read from it, so replies stay in order) until the
 * object is sealed, the wait times out, or the client goes away. A request
 * that waits for the store's disk I/O (OS_WAIT: a create that needs room
 * being spilled, a get of an object being restored) parks the same way and
 * runs again when a disk job ends. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "objectstore.h"
#include "prism_log.h"
#include "prism_store_proto.h"
#include "prism_time.h"

#define IN_CHUNK (64 * 1024)
#define IN_MAX (sizeof(psp_hdr) + PSP_MAX_FRAME)
#define OUT_MAX (16u << 20) /* a client that stops reading is dropped past this */

struct os_conn {
    os_client cl;
    int fd;
    bool hello, dead;
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out;
    size_t out_len, out_cap;
    uint32_t events; /* registered with epoll */
    /* a parked get, or (`retry`) a request parked at the head of `in` until
     * a disk job ends */
    bool waiting, retry;
    prism_object_id wait_id;
    int64_t wait_deadline; /* monotonic ms; -1: forever */
    os_conn *prev, *next;
};

/* Returns 0, -1 on a protocol error, or OS_WAIT having done nothing: the
 * request runs again when a disk job ends. */
typedef int (*op_fn)(objectstore *os, os_conn *c, const psp_hdr *h, const uint8_t *body);

/* --- output --- */

static void conn_events(objectstore *os, os_conn *c)
{
    uint32_t ev = EPOLLRDHUP | (c->waiting ? 0 : EPOLLIN) | (c->out_len ? EPOLLOUT : 0);
    if (ev == c->events || c->dead)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(os->epfd, EPOLL_CTL_MOD, c->fd, &e);
    c->events = ev;
}

static void conn_kill(objectstore *os, os_conn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    uint64_t one = 1;
    ssize_t w = write(os->wake_fd, &one, sizeof one); /* the loop closes it */
    (void)w;
}

static void conn_flush(objectstore *os, os_conn *c)
{
    size_t done = 0;
    while (done < c->out_len) {
        ssize_t w = send(c->fd, c->out + done, c->out_len - done, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (w <= 0) {
            conn_kill(os, c);
            return;
        }
        done += (size_t)w;
    }
    if (done) {
        memmove(c->out, c->out + done, c->out_len - done);
        c->out_len -= done;
    }
    conn_events(os, c);
}

static void reply(objectstore *os, os_conn *c, const psp_hdr *req, const void *body, size_t len)
{
    if (req->flags & PSP_FLAG_NOREPLY)
        return;
    psp_hdr h = {.len = (uint32_t)len, .type = req->type | PSP_REPLY};
    size_t need = c->out_len + sizeof h + len;
    if (need > OUT_MAX) {
        LOG_WARN("client fd %d does not read its replies; closing it", c->fd);
        conn_kill(os, c);
        return;
    }
    if (need > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < need)
            cap *= 2;
        uint8_t *p = realloc(c->out, cap);
        if (!p) {
            conn_kill(os, c);
            return;
        }
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, &h, sizeof h);
    memcpy(c->out + c->out_len + sizeof h, body, len);
    c->out_len = need;
}

static void reply_status(objectstore *os, os_conn *c, const psp_hdr *h, int status)
{
    psp_status_rep r = {.status = status};
    reply(os, c, h, &r, sizeof r);
}

static void reply_get(objectstore *os, os_conn *c, const psp_hdr *h, int status, const os_object *o)
{
    psp_get_rep r = {.status = status};
    if (status == PRISM_STORE_OK) {
        r.offset = o->block->off;
        r.data_size = o->data_size;
        r.metadata_size = o->meta_size;
    }
    reply(os, c, h, &r, sizeof r);
}

/* --- operations --- */

static int op_hello(objectstore *os, os_conn *c, const psp_hdr *h, const uint8_t *body)
{
    psp_hello_req req;
    memcpy(&req, body, sizeof req);
    if (c->hello || c->out_len)
        return -1;
    struct {
        psp_hdr h;
        psp_hello_rep r;
    } rep = {{.len = sizeof(psp_hello_rep), .type = PSP_HELLO | PSP_REPLY},
             {.status = PRISM_STORE_OK,
              .version = PSP_VERSION,
              .arena_size = os->store.capacity,
              .flags = os->store.prefaulted ? PSP_ARENA_PREFAULTED : 0}};
    if (req.version != PSP_VERSION)
        rep.r.status = PRISM_STORE_PROTOCOL;
    snprintf(rep.r.url, sizeof rep.r.url, "%s", os->url ? os->url : "");
    char ctrl[CMSG_SPACE(sizeof(int))] = {0};
    struct iovec iov = {&rep, sizeof rep};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (rep.r.status == PRISM_STORE_OK) {
        m.msg_control = ctrl;
        m.msg_controllen = sizeof ctrl;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &os->store.arena_fd, sizeof(int));
    }
    if (sendmsg(c->fd, &m, MSG_NOSIGNAL) != (ssize_t)sizeof rep)
        return -1;
    c->hello = true;
    LOG_DEBUG("client fd %d: pid %u connected", c->fd, req.pid);
    return rep.r.status == PRISM_STORE_OK ? 0 : -1;
}

static int op_create(objectstore *os, os_conn *c, const psp_hdr *h, const uint8_t *body)
{
    psp_create_req req;
    memcpy(&req, body, sizeof req);
    if (h->len != sizeof req + (uint64_t)req.metadata_size)
        return -1;
    prism_object_id id;
    prism_id owner;
    memcpy(id.b, req.id, sizeof id.b);
    memcpy(owner.b, req.owner, sizeof owner.b);
    os_object *o = NULL;
    psp_create_rep rep = {.status = os_create(&os->store, &c->cl, &id, &owner, req.data_size,
                                              body + sizeof req, req.metadata_size,
                                              h->flags & PSP_FLAG_PIN, &o)};
    if (rep.status == OS_WAIT)
        return OS_WAIT;
    if (rep.status == PRISM_STORE_OK)
        rep.offset = o->block->off;
    reply(os, c, h, &rep, sizeof rep);
    return 0;
}

static int op_put(objectstore *os, os_conn *c, const psp_hdr *h, const uint8_t *body)
{
    psp_create_req req;
    memcpy(&req, body, sizeof req);
    if (req.data_size > PSP_MAX_FRAME ||
        h->len != sizeof req + (uint64_t)req.metadata_size + req.data_size)
        return -1;
    prism_object_id id;
    prism_id owner;
    memcpy(id.b, req.id, sizeof id.b);
    memcpy(owner.b, req.owner, sizeof owner.b);
    os_object *o;
    int r = os_create(&os->store, &c->cl, &id, &owner, req.data_size, body + sizeof req,
                      req.metadata_size, h->flags & PSP_FLAG_PIN, &o);
    if (r == OS_WAIT)
        return OS_WAIT;
    if (r == PRISM_STORE_OK) {
        memcpy(os_data(&os->store, o), body + sizeof req + req.metadata_size, req.data_size);
        r = os_seal(&os->store, &c->cl, &id);
    }
    if (!(h->flags & PSP_FLAG_HOLD)) {
        reply_status(os, c, h, r);
        return 0;
    }
    o = NULL;
    if (r == PRISM_STORE_OK)
        r = os_get(&os->store, &c->cl, &id, &o);
    reply_get(os, c, h, r, o);
    return 0;
}

static void get_id(prism_object_id *id, const uint8_t *body) { memcpy(id->b, body, sizeof id->b); }

static int op_seal(objectstore *os, os_conn *c, const psp_hdr *h, const uint8_t *body)
{
    prism_object_id id;
    get_id(&id, body);
    reply_status(os, c, h, os_seal(&os->store, &c->cl, &id));
    return 0;
}

static int op_abort(objectstore *os, os_conn *c, const psp_hdr *h, const uint8_t *body)
{
    prism_object_id id;
    get_id(&id, body);
    reply_status(os, c, h, os_abort(&os->store, &c->cl, &id));
    return 0;
}

static int op_release(objectstore *os, os_conn *c, const psp_hdr *h, const uint8_t *body)
{
    prism_object_id id;
    get_id(&id, body);
    reply_status(os, c, h, os_release(&os->store, &c->cl, &id));
    return 0;
}

static int op_delete(objectstore *os, os_conn *c, const psp_hdr *h, const uint8_t *body)
{
    prism_object_id id;
    get_id(&id, body);
    reply_status(os, c, h, os_delete(&os->store, &id));
    return 0;
}

static int op_pin(objectstore *os, os_conn *c, const psp_hdr *h, const uint8_t *body)
{
    prism_object_id id;
    get_id(&id, body);
    reply_status(os, c, h, os_pin(&os->store, &id, h->type == PSP_PIN));
    return 0;
}

static int op_contains(objectstore *os, os_conn *c, const psp_hdr *h, const uint8_t *body)
{
    prism_object_id id;
    get_id(&id, body);
    psp_contains_rep rep = {.presence = os_contains(&os->store, &id)};
    reply(os, c, h, &rep, sizeof rep);
    return 0;
}

static int op_stats(objectstore *os, os_conn *c, const psp_hdr *h, const uint8_t *body)
{
    psp_stats_rep rep = {0};
    prism_store_stats st;
    os_stats(&os->store, &st);
    memcpy(rep.v, &st, sizeof rep.v);
    reply(os, c, h, &rep, sizeof rep);
    return 0;
}

static int op_get(objectstore *os, os_conn *c, const psp_hdr *h, const uint8_t *body)
{
    psp_get_req req;
    memcpy(&req, body, sizeof req);
    prism_object_id id;
    get_id(&id, req.id);
    os_object *o = NULL;
    int r = os_get(&os->store, &c->cl, &id, &o);
    if (r == OS_WAIT)
        return OS_WAIT;
    if ((r == PRISM_STORE_NOT_FOUND || r == PRISM_STORE_NOT_SEALED) && req.timeout_ms != 0) {
        c->waiting = true;
        c->wait_id = id;
        c->wait_deadline = req.timeout_ms < 0 ? -1 : prism_mono_ms() + req.timeout_ms;
        conn_events(os, c);
        return 0;
    }
    reply_get(os, c, h, r, o);
    return 0;
}

static const struct {
    op_fn fn;
    uint32_t len; /* the body's exact length, or its fixed part when `var` */
    bool var;
} ops[PSP_TYPE_COUNT] = {
    [PSP_HELLO] = {op_hello, sizeof(psp_hello_req), false},
    [PSP_CREATE] = {op_create, sizeof(psp_create_req), true},
    [PSP_SEAL] = {op_seal, sizeof(psp_id_req), false},
    [PSP_ABORT] = {op_abort, sizeof(psp_id_req), false},
    [PSP_PUT] = {op_put, sizeof(psp_create_req), true},
    [PSP_GET] = {op_get, sizeof(psp_get_req), false},
    [PSP_RELEASE] = {op_release, sizeof(psp_id_req), false},
    [PSP_DELETE] = {op_delete, sizeof(psp_id_req), false},
    [PSP_PIN] = {op_pin, sizeof(psp_id_req), false},
    [PSP_UNPIN] = {op_pin, sizeof(psp_id_req), false},
    [PSP_CONTAINS] = {op_contains, sizeof(psp_id_req), false},
    [PSP_STATS] = {op_stats, 0, false},
};

/* Runs the complete frames in the input buffer. Returns -1 on a protocol error. */
static int process(objectstore *os, os_conn *c)
{
    size_t pos = 0;
    int rc = 0;
    while (!c->waiting && !c->dead && c->in_len - pos >= sizeof(psp_hdr)) {
        psp_hdr h;
        memcpy(&h, c->in + pos, sizeof h);
        if (h.type == 0 || h.type >= PSP_TYPE_COUNT || h.len > PSP_MAX_FRAME ||
            (ops[h.type].var ? h.len < ops[h.type].len : h.len != ops[h.type].len) ||
            (!c->hello && h.type != PSP_HELLO)) {
            rc = -1;
            break;
        }
        if (c->in_len - pos < sizeof h + h.len)
            break;
        const uint8_t *body = c->in + pos + sizeof h;
        int r = ops[h.type].fn(os, c, &h, body);
        if (r == OS_WAIT) { /* the frame stays, to run again */
            c->waiting = c->retry = true;
            conn_events(os, c);
            break;
        }
        pos += sizeof h + h.len;
        if (r != 0) {
            rc = -1;
            break;
        }
    }
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
    return rc;
}

int os_server_feed(objectstore *os, int fd, const uint8_t *data, size_t len)
{
    os_conn *c = calloc(1, sizeof *c);
    if (!c || !(c->in = malloc(len ? len : 1))) {
        free(c);
        return -1;
    }
    os_client_init(&c->cl);
    c->fd = fd;
    memcpy(c->in, data, len);
    c->in_len = c->in_cap = len;
    pthread_mutex_lock(&os->store.mu);
    int rc = process(os, c);
    os_client_drop(&os->store, &c->cl); /* as when the client goes away */
    pthread_mutex_unlock(&os->store.mu);
    free(c->in);
    free(c->out);
    free(c);
    return rc;
}

/* --- connections --- */

static void conn_close(objectstore *os, os_conn *c)
{
    epoll_ctl(os->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    os_client_drop(&os->store, &c->cl);
    if (c->prev)
        c->prev->next = c->next;
    else
        os->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    os->store.clients--;
    free(c->in);
    free(c->out);
    free(c);
}

static void on_accept(objectstore *os)
{
    int fd = accept4(os->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    os_conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    os_client_init(&c->cl);
    c->fd = fd;
    c->events = EPOLLIN | EPOLLRDHUP;
    struct epoll_event e = {.events = c->events, .data.ptr = c};
    if (epoll_ctl(os->epfd, EPOLL_CTL_ADD, fd, &e) != 0) {
        close(fd);
        free(c);
        return;
    }
    c->next = os->conns;
    if (c->next)
        c->next->prev = c;
    os->conns = c;
    os->store.clients++;
}

/* Reads what arrived and runs it. Returns -1 when the connection must close. */
static int on_readable(objectstore *os, os_conn *c)
{
    if (c->in_cap - c->in_len < IN_CHUNK && c->in_cap < IN_MAX) {
        size_t cap = c->in_cap ? c->in_cap * 2 : 2 * IN_CHUNK;
        if (cap > IN_MAX)
            cap = IN_MAX;
        uint8_t *p = realloc(c->in, cap);
        if (!p)
            return -1;
        c->in = p;
        c->in_cap = cap;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n == 0)
        return -1;
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    c->in_len += (size_t)n;
    if (process(os, c) != 0) {
        LOG_WARN("client fd %d sent a malformed frame; closing it", c->fd);
        return -1;
    }
    return 0;
}

static void on_conn_event(objectstore *os, os_conn *c, uint32_t ev)
{
    bool close_it = c->dead || (ev & (EPOLLERR | EPOLLHUP));
    if (!close_it && (ev & EPOLLIN) && !c->waiting)
        close_it = on_readable(os, c) != 0;
    else if (!close_it && (ev & EPOLLRDHUP))
        close_it = true; /* a parked client went away */
    if (!close_it)
        conn_flush(os, c);
    if (close_it || c->dead)
        conn_close(os, c);
}

/* Ends a parked get with `status` (taking the reference when OK). */
static void unpark(objectstore *os, os_conn *c, int status, const os_object *o)
{
    psp_hdr h = {.type = PSP_GET};
    c->waiting = false;
    reply_get(os, c, &h, status, o);
    conn_flush(os, c);
    if (c->in_len) {
        os->resume_pending = true;
        uint64_t one = 1;
        ssize_t w = write(os->wake_fd, &one, sizeof one);
        (void)w;
    }
}

void os_server_sealed(objectstore *os, const os_object *sealed)
{
    for (os_conn *c = os->conns; c; c = c->next) {
        if (!c->waiting || c->retry || c->dead ||
            memcmp(&c->wait_id, &sealed->id, sizeof sealed->id) != 0)
            continue;
        os_object *o = NULL;
        int r = os_get(&os->store, &c->cl, &c->wait_id, &o);
        unpark(os, c, r, o);
    }
}

/* Ends the parked gets whose time is up. Returns the milliseconds until the
 * next one's deadline, or -1 when none waits with one. */
static int64_t expire_waits(objectstore *os)
{
    int64_t now = prism_mono_ms(), next = -1;
    for (os_conn *c = os->conns; c; c = c->next) {
        if (!c->waiting || c->retry || c->dead || c->wait_deadline < 0)
            continue;
        if (now >= c->wait_deadline)
            unpark(os, c, PRISM_STORE_TIMEOUT, NULL);
        else if (next < 0 || c->wait_deadline - now < next)
            next = c->wait_deadline - now;
    }
    return next;
}

void os_server_moved(objectstore *os)
{
    os->moved_pending = true;
    if (os->wake_fd >= 0) {
        uint64_t one = 1;
        ssize_t w = write(os->wake_fd, &one, sizeof one);
        (void)w;
    }
}

/* Runs requests left in the buffers of connections whose get just ended, or
 * that waited for a disk job that ended, and closes connections killed from
 * other threads. */
static void housekeeping(objectstore *os)
{
    bool resume = os->resume_pending, moved = os->moved_pending;
    os->resume_pending = os->moved_pending = false;
    os_conn *next;
    for (os_conn *c = os->conns; c; c = next) {
        next = c->next;
        bool go = resume;
        if (moved && c->retry) {
            c->waiting = c->retry = false;
            go = true;
        }
        if (!c->dead && go && !c->waiting && c->in_len) {
            if (process(os, c) != 0)
                c->dead = true;
            else
                conn_flush(os, c);
        }
        if (c->dead)
            conn_close(os, c);
    }
}

/* --- the loop --- */

static int bind_socket(objectstore *os, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!os->socket_path[0] || strlen(os->socket_path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "--socket is missing or longer than %zu bytes",
                 sizeof sa.sun_path - 1);
        return -1;
    }
    strcpy(sa.sun_path, os->socket_path);
    os->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (os->listen_fd < 0)
        goto fail;
    /* A socket file left by a dead store is removed; a live one is an error. */
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
        close(probe);
        close(os->listen_fd);
        os->listen_fd = -1; /* not ours: never unlink it */
        snprintf(err, errlen, "another object store serves %s", os->socket_path);
        return -1;
    }
    if (probe >= 0)
        close(probe);
    unlink(os->socket_path);
    /* The file's mode is the access control of local clients (the store's own
     * user only, whatever the umask); set before listen, so no connect slips in. */
    if (bind(os->listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        chmod(os->socket_path, 0600) != 0 || listen(os->listen_fd, 256) != 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "cannot listen on %s: %s", os->socket_path, strerror(errno));
    return -1;
}

int os_server_listen(objectstore *os, char *err, size_t errlen)
{
    os->listen_fd = os->epfd = os->sig_fd = os->wake_fd = -1;
    if (bind_socket(os, err, errlen) != 0)
        return -1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    os->epfd = epoll_create1(EPOLL_CLOEXEC);
    os->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    os->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (os->epfd < 0 || os->sig_fd < 0 || os->wake_fd < 0) {
        snprintf(err, errlen, "cannot set up the event loop: %s", strerror(errno));
        return -1;
    }
    int fds[] = {os->listen_fd, os->sig_fd, os->wake_fd};
    for (int i = 0; i < 3; i++) {
        /* tags 0, 1, 2 tell these apart from connections (heap pointers) */
        struct epoll_event e = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
        if (epoll_ctl(os->epfd, EPOLL_CTL_ADD, fds[i], &e) != 0) {
            snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}

void os_server_run(objectstore *os, int (*tick)(void *arg), void *arg)
{
    struct epoll_event evs[64];
    int64_t spin_until = 0;
    int wait_ms = 0;
    for (;;) {
        /* A client's next request often follows its answer within microseconds
         * (put then get): polling briefly after work saves the wake-up. Else
         * the loop sleeps until a parked get's deadline or the service's next
         * job; whatever else needs it (other threads) writes the wake fd. */
        int n = epoll_wait(os->epfd, evs, 64, prism_mono_ns() < spin_until ? 0 : wait_ms);
        if (n > 0)
            spin_until = prism_mono_ns() + 50000;
        bool stop = false;
        pthread_mutex_lock(&os->store.mu);
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == 0) {
                on_accept(os);
            } else if (tag == 1) {
                stop = true;
            } else if (tag == 2) {
                uint64_t v;
                ssize_t r = read(os->wake_fd, &v, sizeof v);
                (void)r;
            } else {
                on_conn_event(os, evs[i].data.ptr, evs[i].events);
            }
        }
        int64_t next_get = expire_waits(os);
        housekeeping(os);
        pthread_mutex_unlock(&os->store.mu);
        if (stop)
            break;
        wait_ms = tick(arg);
        if (next_get >= 0 && next_get < wait_ms)
            wait_ms = (int)next_get;
    }
    LOG_INFO("stopping on a signal");
}

void os_server_close(objectstore *os)
{
    pthread_mutex_lock(&os->store.mu);
    while (os->conns)
        conn_close(os, os->conns);
    int fds[] = {os->listen_fd, os->epfd, os->sig_fd, os->wake_fd};
    os->wake_fd = -1; /* os_server_moved, from the store's I/O thread, checks it */
    pthread_mutex_unlock(&os->store.mu);
    for (int i = 0; i < 4; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (os->listen_fd >= 0)
        unlink(os->socket_path);
}
