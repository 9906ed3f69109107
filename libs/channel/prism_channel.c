/* The API of both transports (dispatched on the endpoint's kind), passing
 * fds, and the waiting and liveness helpers the transports share. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "chan_internal.h"

const char *prism_chan_status_text(prism_chan_status s)
{
    switch (s) {
    case PRISM_CHAN_OK: return "ok";
    case PRISM_CHAN_TIMEOUT: return "timed out";
    case PRISM_CHAN_CLOSED: return "channel closed";
    case PRISM_CHAN_TOO_LARGE: return "value larger than the channel's buffer";
    case PRISM_CHAN_PEER_DEAD: return "the other end is gone";
    case PRISM_CHAN_INVALID: return "invalid argument or call out of order";
    case PRISM_CHAN_IN_USE: return "endpoint already taken";
    case PRISM_CHAN_PROTOCOL: return "not a channel, or a malformed frame";
    case PRISM_CHAN_ERROR: return "system error";
    case PRISM_CHAN_QUEUED: return "published, partly still to send";
    }
    return "unknown status";
}

/* ---------- time and waiting ---------- */

int64_t chan_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The quickest sched_yield this process has timed: what a yield costs here
 * when it runs nobody else. Threads race on it harmlessly (a lower value
 * lost comes back with the next quick yield). */
static _Atomic int64_t yield_floor_ns = INT64_MAX;

bool chan_yield_ran_other(_Atomic int64_t *floor, int64_t took)
{
    int64_t f = atomic_load_explicit(floor, memory_order_relaxed);
    if (took < f)
        atomic_store_explicit(floor, f = took, memory_order_relaxed);
    return took > f + YIELD_RAN_NS;
}

void chan_yield(bool *shared, int64_t now)
{
    sched_yield();
    *shared = chan_yield_ran_other(&yield_floor_ns, chan_now_ns() - now);
}

int64_t chan_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Only the counting thread writes the counters: a load and a store, no
 * atomic read-modify-write on the hot path. */
static void bump(_Atomic uint64_t *c, uint64_t by)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by,
                          memory_order_relaxed);
}

void chan_count_latency(_Atomic uint64_t *hist, _Atomic uint64_t *sum_ns, int64_t ns)
{
    uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
    int b = us == 0 ? 0 : 64 - __builtin_clzll(us); /* 1 µs -> 1, 2-3 -> 2, ... */
    bump(&hist[b < PRISM_CHAN_HIST_BUCKETS ? b : PRISM_CHAN_HIST_BUCKETS - 1], 1);
    bump(sum_ns, ns > 0 ? (uint64_t)ns : 0);
}

void prism_chan_reader_get_hist(const prism_chan_reader *r, prism_chan_hist *out)
{
    memset(out, 0, sizeof *out);
    if (r && r->kind == CHAN_KIND_SHM) {
        prism_chan_reader_hist(r->u.shm.ch, r->u.shm.index, out);
    } else if (r) {
        for (int i = 0; i < PRISM_CHAN_HIST_BUCKETS; i++)
            out->count[i] = atomic_load_explicit(&r->u.sock.hist[i], memory_order_relaxed);
        out->sum_ns = atomic_load_explicit(&r->u.sock.hist_sum_ns, memory_order_relaxed);
    }
}

int64_t chan_deadline(int timeout_ms)
{
    if (timeout_ms < 0)
        return INT64_MAX;
    return chan_now_ns() + (int64_t)timeout_ms * 1000000;
}

void chan_wait_defaults(prism_chan_wait *dst, const prism_chan_wait *src)
{
    dst->spin_us = src ? src->spin_us : PRISM_CHAN_DEFAULT_SPIN_US;
    dst->liveness_ms = src && src->liveness_ms ? src->liveness_ms : PRISM_CHAN_DEFAULT_LIVENESS_MS;
}

void chan_futex_wait(_Atomic uint32_t *word, uint32_t expected, int64_t ns)
{
    struct timespec ts, *tp = NULL;
    if (ns >= 0) {
        ts.tv_sec = (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        tp = &ts;
    }
    /* EAGAIN (the word moved on), EINTR and ETIMEDOUT all mean "look again". */
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expected, tp, NULL, 0);
}

void chan_futex_wake(_Atomic uint32_t *word, int n)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* Field 22 (starttime) and field 3 (state) of /proc/PID/stat. The command
 * name (field 2) may hold spaces and parentheses, so parsing starts after
 * the last ')'. Returns 0, or -1 with errno. */
static int proc_stat(int32_t pid, char *state, uint64_t *start)
{
    char path[64], buf[1024];
    if (pid > 0)
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    else
        snprintf(path, sizeof path, "/proc/self/stat");
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ') {
        errno = EPROTO;
        return -1;
    }
    p += 2;
    *state = *p;
    /* p is at field 3; starttime is 19 fields further. */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p) {
            errno = EPROTO;
            return -1;
        }
        p++;
    }
    *start = strtoull(p, NULL, 10);
    return 0;
}

uint64_t chan_self_start(void)
{
    char state;
    uint64_t start;
    return proc_stat(0, &state, &start) == 0 ? start : 0;
}

bool chan_process_alive(int32_t pid, uint64_t start)
{
    if (pid <= 0 || pid == (int32_t)getpid())
        return true;
    char state;
    uint64_t t;
    if (proc_stat(pid, &state, &t) != 0)
        return errno != ENOENT && errno != ESRCH; /* gone, or we cannot tell */
    if (state == 'Z' || state == 'X')
        return false; /* killed, not yet reaped */
    return start == 0 || t == start;
}

/* ---------- passing fds ---------- */

int prism_chan_send_fd(int sock, int fd)
{
    char byte = 'F';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    ssize_t r;
    do
        r = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r == 1 ? 0 : -1;
}

int prism_chan_recv_fd(int sock, int *fd)
{
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    ssize_t r;
    do
        r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (r != 1 || (msg.msg_flags & MSG_CTRUNC) || !c || c->cmsg_level != SOL_SOCKET ||
        c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int))) {
        errno = EPROTO;
        return -1;
    }
    memcpy(fd, CMSG_DATA(c), sizeof *fd);
    return 0;
}

/* ---------- the API, on either transport ---------- */

/* ---------- fan-out: one value to several writers ---------- */

prism_chan_status prism_chan_writer_open_fanout(prism_chan_writer **out, prism_chan_writer **ws,
                                                size_t n)
{
    *out = NULL;
    if (!ws || n == 0)
        return PRISM_CHAN_INVALID;
    prism_chan_writer *w = calloc(1, sizeof *w);
    prism_chan_writer **copy = calloc(n, sizeof *copy);
    void **bufs = calloc(n, sizeof *bufs);
    if (!w || !copy || !bufs) {
        free(w);
        free(copy);
        free(bufs);
        return PRISM_CHAN_ERROR;
    }
    memcpy(copy, ws, n * sizeof *copy);
    w->kind = CHAN_KIND_FANOUT;
    w->u.fan.shared = true;
    for (size_t i = 0; i < n; i++)
        w->u.fan.shared &= ws[i]->kind == CHAN_KIND_SOCKET;
    w->u.fan.w = copy;
    w->u.fan.bufs = bufs;
    w->u.fan.n = n;
    *out = w;
    return PRISM_CHAN_OK;
}

/* Room in every writer, in order; those begun stay begun across a timeout,
 * so the next call goes on where this one stopped. */
static prism_chan_status fan_begin_write(prism_chan_writer *w, void **buf, int timeout_ms)
{
    int64_t deadline = chan_deadline(timeout_ms);
    while (w->u.fan.begun < w->u.fan.n) {
        size_t i = w->u.fan.begun;
        int left = timeout_ms;
        if (timeout_ms > 0) {
            int64_t ms = (deadline - chan_now_ns()) / 1000000;
            left = ms > 0 ? (int)ms : 0;
        }
        prism_chan_status s = prism_chan_begin_write(w->u.fan.w[i], &w->u.fan.bufs[i], left);
        if (s != PRISM_CHAN_OK)
            return s;
        w->u.fan.begun++;
    }
    *buf = w->u.fan.bufs[0];
    return PRISM_CHAN_OK;
}

static void fan_abort(prism_chan_writer *w)
{
    for (size_t i = 0; i < w->u.fan.begun; i++)
        prism_chan_abort_write(w->u.fan.w[i]);
    w->u.fan.begun = 0;
}

/* The first writer's buffer holds the value: sockets send that one frame
 * (no copy), other writers get a copy; then it is published in every one.
 * The worst status wins. */
static prism_chan_status fan_end_write(prism_chan_writer *w, size_t len)
{
    prism_chan_status worst = PRISM_CHAN_OK;
    if (w->u.fan.shared) {
        chan_sock_frame(w->u.fan.w[0], len);
        for (size_t i = 1; i < w->u.fan.n; i++)
            chan_sock_share(w->u.fan.w[i], w->u.fan.w[0]);
    }
    for (size_t i = 0; i < w->u.fan.n; i++) {
        prism_chan_status s;
        if (w->u.fan.shared) {
            w->u.fan.w[i]->writing = false;
            s = chan_sock_send(w->u.fan.w[i]);
        } else {
            if (i > 0 && len)
                memcpy(w->u.fan.bufs[i], w->u.fan.bufs[0], len);
            s = prism_chan_end_write(w->u.fan.w[i], len);
        }
        if (s != PRISM_CHAN_OK && (worst == PRISM_CHAN_OK || worst == PRISM_CHAN_QUEUED))
            worst = s;
    }
    w->u.fan.begun = 0;
    return worst;
}

/* ---------- the API, on either transport ---------- */

size_t prism_chan_writer_capacity(const prism_chan_writer *w)
{
    if (w->kind == CHAN_KIND_FANOUT) {
        size_t least = SIZE_MAX;
        for (size_t i = 0; i < w->u.fan.n; i++) {
            size_t c = prism_chan_writer_capacity(w->u.fan.w[i]);
            least = c < least ? c : least;
        }
        return least;
    }
    return w->kind == CHAN_KIND_SHM ? (size_t)w->u.shm.ch->slot_size : (size_t)w->u.sock.cap;
}

prism_chan_status prism_chan_begin_write(prism_chan_writer *w, void **buf, int timeout_ms)
{
    if (!w || !buf || w->writing)
        return PRISM_CHAN_INVALID;
    if (w->closed)
        return PRISM_CHAN_CLOSED;
    prism_chan_status s = w->kind == CHAN_KIND_SHM      ? chan_shm_begin_write(w, buf, timeout_ms)
                          : w->kind == CHAN_KIND_FANOUT ? fan_begin_write(w, buf, timeout_ms)
                                                        : chan_sock_begin_write(w, buf, timeout_ms);
    if (s == PRISM_CHAN_OK)
        w->writing = true;
    return s;
}

prism_chan_status prism_chan_end_write(prism_chan_writer *w, size_t len)
{
    if (!w || !w->writing)
        return PRISM_CHAN_INVALID;
    if (len > prism_chan_writer_capacity(w))
        return PRISM_CHAN_TOO_LARGE;
    w->writing = false;
    if (w->kind == CHAN_KIND_FANOUT)
        return fan_end_write(w, len);
    return w->kind == CHAN_KIND_SHM ? chan_shm_end_write(w, len) : chan_sock_end_write(w, len);
}

void prism_chan_abort_write(prism_chan_writer *w)
{
    /* Nothing was published: the slot (or buffer) is simply handed out again. */
    if (!w)
        return;
    w->writing = false;
    if (w->kind == CHAN_KIND_FANOUT)
        fan_abort(w);
}

prism_chan_status prism_chan_write(prism_chan_writer *w, const void *data, size_t len,
                                   int timeout_ms)
{
    if (!w || (!data && len))
        return PRISM_CHAN_INVALID;
    if (len > prism_chan_writer_capacity(w))
        return PRISM_CHAN_TOO_LARGE;
    void *buf;
    prism_chan_status s = prism_chan_begin_write(w, &buf, timeout_ms);
    if (s != PRISM_CHAN_OK)
        return s;
    if (len)
        memcpy(buf, data, len);
    return prism_chan_end_write(w, len);
}

prism_chan_status prism_chan_flush(prism_chan_writer *w, int timeout_ms)
{
    if (!w)
        return PRISM_CHAN_INVALID;
    if (w->kind == CHAN_KIND_FANOUT) {
        prism_chan_status worst = PRISM_CHAN_OK;
        for (size_t i = 0; i < w->u.fan.n; i++) {
            prism_chan_status s = prism_chan_flush(w->u.fan.w[i], timeout_ms);
            worst = worst == PRISM_CHAN_OK ? s : worst;
        }
        return worst;
    }
    return w->kind == CHAN_KIND_SHM ? PRISM_CHAN_OK : chan_sock_flush(w, timeout_ms);
}

prism_chan_status prism_chan_writer_close(prism_chan_writer *w, int timeout_ms)
{
    if (!w)
        return PRISM_CHAN_INVALID;
    w->writing = false;
    if (w->kind == CHAN_KIND_FANOUT) {
        fan_abort(w);
        w->closed = true;
        /* The last first: the others may still be sending the first one's
         * frame, which its end mark would overwrite. */
        prism_chan_status worst = PRISM_CHAN_OK;
        for (size_t i = w->u.fan.n; i-- > 0;) {
            prism_chan_status s = prism_chan_writer_close(w->u.fan.w[i], timeout_ms);
            if (s == PRISM_CHAN_TIMEOUT && i > 0 && w->u.fan.shared)
                return s; /* still open: close again */
            worst = worst == PRISM_CHAN_OK ? s : worst;
        }
        return worst;
    }
    if (w->kind == CHAN_KIND_SHM) {
        chan_shm_writer_close(w);
        return PRISM_CHAN_OK;
    }
    return chan_sock_writer_close(w, timeout_ms);
}

void prism_chan_writer_destroy(prism_chan_writer *w)
{
    if (!w)
        return;
    w->writing = false;
    if (w->kind == CHAN_KIND_FANOUT) {
        for (size_t i = w->u.fan.n; i-- > 0;) /* the first's buffer last (fan_end_write) */
            prism_chan_writer_destroy(w->u.fan.w[i]);
        free(w->u.fan.w);
        free(w->u.fan.bufs);
        free(w);
    } else if (w->kind == CHAN_KIND_SHM) {
        chan_shm_writer_free(w);
    } else {
        chan_sock_writer_free(w);
    }
}

prism_chan_status prism_chan_begin_read(prism_chan_reader *r, const void **buf, size_t *len,
                                        int timeout_ms)
{
    if (!r || !buf || !len || r->reading)
        return PRISM_CHAN_INVALID;
    prism_chan_status s = r->kind == CHAN_KIND_SHM ? chan_shm_begin_read(r, buf, len, timeout_ms)
                                                   : chan_sock_begin_read(r, buf, len, timeout_ms);
    if (s == PRISM_CHAN_OK)
        r->reading = true;
    return s;
}

prism_chan_status prism_chan_end_read(prism_chan_reader *r)
{
    if (!r || !r->reading)
        return PRISM_CHAN_INVALID;
    r->reading = false;
    if (r->kind == CHAN_KIND_SHM)
        chan_shm_end_read(r);
    else
        chan_sock_end_read(r);
    return PRISM_CHAN_OK;
}

void prism_chan_reader_destroy(prism_chan_reader *r)
{
    if (!r)
        return;
    if (r->kind == CHAN_KIND_SHM)
        chan_shm_reader_free(r);
    else
        chan_sock_reader_free(r);
}
