/* The socket transport: frames of "u32 length (little-endian) | bytes" on a
 * connected stream socket that the caller authenticated before handing it
 * over. One value in PRISM_CHAN_HIST_EVERY is stamped: its length has the
 * top bit set and an i64 (little-endian) CLOCK_REALTIME of its publish, in
 * ns, comes before the bytes, for the reader's latency histogram. A length
 * of 0xffffffff is the end of the stream, sent by close: a
 * stream that simply stops (at a frame boundary or not) is a writer that
 * died, never a clean end. Every send and receive uses MSG_DONTWAIT and every wait is a poll()
 * with the time left, so no call blocks past its timeout whether the socket
 * is blocking or not (and the socket's flags, shared with every dup of it,
 * are left alone). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chan_internal.h"

#define HDR 4
#define STAMP 8
#define FRAME_END 0xffffffffu
#define FRAME_STAMPED 0x80000000u /* in the length: a stamp follows */
/* The reader takes up to this much beyond the frame it needs in one recv,
 * so that small frames arriving together cost one syscall, while what a recv
 * can leave to move to the buffer's front stays small. */
#define READAHEAD (64u << 10)

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* poll() for `events` until `deadline` (INT64_MAX: no bound). Returns false
 * once the deadline passed. Errors and hang-ups count as ready: the next
 * send or recv reports them. */
static bool poll_until(int fd, short events, int64_t deadline)
{
    for (;;) {
        int ms = -1;
        if (deadline != INT64_MAX) {
            int64_t left = deadline - chan_now_ns();
            if (left <= 0)
                return false;
            int64_t m = (left + 999999) / 1000000;
            ms = m > 1000000 ? 1000000 : (int)m;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, ms);
        if (r > 0)
            return true;
        if (r < 0 && errno != EINTR)
            return true;
    }
}

static bool peer_gone(int e) { return e == EPIPE || e == ECONNRESET || e == ENOTCONN; }

/* ---------- writer ---------- */

prism_chan_status prism_chan_writer_open_socket(prism_chan_writer **out, int sock,
                                                uint64_t max_buf_size, const prism_chan_wait *wait)
{
    if (!out)
        return PRISM_CHAN_INVALID;
    *out = NULL;
    /* The length prefix is 31 bits (the top one says a stamp follows). */
    if (sock < 0 || max_buf_size < 1 || max_buf_size >= FRAME_STAMPED)
        return PRISM_CHAN_INVALID;
    prism_chan_writer *w = calloc(1, sizeof *w);
    uint8_t *buf = malloc(HDR + STAMP + (size_t)max_buf_size);
    if (!w || !buf) {
        free(w);
        free(buf);
        return PRISM_CHAN_ERROR;
    }
    w->kind = CHAN_KIND_SOCKET;
    chan_wait_defaults(&w->wait, wait);
    w->u.sock.fd = sock;
    w->u.sock.cap = max_buf_size;
    w->u.sock.buf = buf;
    w->u.sock.next = 1;
    *out = w;
    return PRISM_CHAN_OK;
}

/* Sends what the socket takes now. OK when the frame is all out, TIMEOUT
 * when the socket is full. */
static prism_chan_status push(prism_chan_writer *w)
{
    const uint8_t *from = w->u.sock.src ? w->u.sock.src : w->u.sock.buf;
    while (w->u.sock.sent < w->u.sock.frame) {
        ssize_t r = send(w->u.sock.fd, from + w->u.sock.base + w->u.sock.sent,
                         w->u.sock.frame - w->u.sock.sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r > 0) {
            w->u.sock.sent += (size_t)r;
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return PRISM_CHAN_TIMEOUT;
        } else if (r < 0 && peer_gone(errno)) {
            w->u.sock.broken = true;
            return PRISM_CHAN_PEER_DEAD;
        } else {
            return PRISM_CHAN_ERROR;
        }
    }
    w->u.sock.frame = w->u.sock.sent = 0;
    w->u.sock.src = NULL;
    return PRISM_CHAN_OK;
}

prism_chan_status chan_sock_flush(prism_chan_writer *w, int timeout_ms)
{
    if (w->u.sock.broken)
        return PRISM_CHAN_PEER_DEAD;
    prism_chan_status s = push(w);
    if (s != PRISM_CHAN_TIMEOUT || timeout_ms == 0)
        return s;
    int64_t deadline = chan_deadline(timeout_ms);
    for (;;) {
        if (!poll_until(w->u.sock.fd, POLLOUT, deadline))
            return PRISM_CHAN_TIMEOUT;
        if ((s = push(w)) != PRISM_CHAN_TIMEOUT)
            return s;
    }
}

prism_chan_status chan_sock_begin_write(prism_chan_writer *w, void **buf, int timeout_ms)
{
    /* The one buffer is free once the previous frame is all in the kernel:
     * the socket's send buffer plays the ring's free slots. */
    if (w->u.sock.frame) {
        prism_chan_status s = chan_sock_flush(w, timeout_ms);
        if (s != PRISM_CHAN_OK)
            return s;
    } else if (w->u.sock.broken) {
        return PRISM_CHAN_PEER_DEAD;
    }
    *buf = w->u.sock.buf + HDR + STAMP;
    w->u.sock.timeout_ms = timeout_ms;
    return PRISM_CHAN_OK;
}

void chan_sock_frame(prism_chan_writer *w, size_t len)
{
    /* The bytes are at HDR + STAMP: a stamped frame starts at 0, another
     * one STAMP later, its length right before the bytes. */
    bool stamped = PRISM_CHAN_HIST_SAMPLED(w->u.sock.next++);
    w->u.sock.base = stamped ? 0 : STAMP;
    put_le32(w->u.sock.buf + w->u.sock.base, (uint32_t)len | (stamped ? FRAME_STAMPED : 0));
    if (stamped)
        put_le64(w->u.sock.buf + HDR, (uint64_t)chan_wall_ns());
    w->u.sock.frame = HDR + (stamped ? STAMP : 0) + len;
    w->u.sock.sent = 0;
}

void chan_sock_share(prism_chan_writer *w, const prism_chan_writer *first)
{
    w->u.sock.next++; /* in step with `first`, had it framed the value itself */
    w->u.sock.src = first->u.sock.buf;
    w->u.sock.base = first->u.sock.base;
    w->u.sock.frame = first->u.sock.frame;
    w->u.sock.sent = 0;
}

prism_chan_status chan_sock_send(prism_chan_writer *w)
{
    /* The frame leaves now, waiting as long as begin_write could: a writer
     * that goes on to block elsewhere (reading its next input) must not
     * leave half a value stuck here. */
    prism_chan_status s = chan_sock_flush(w, w->u.sock.timeout_ms);
    return s == PRISM_CHAN_TIMEOUT ? PRISM_CHAN_QUEUED : s;
}

prism_chan_status chan_sock_end_write(prism_chan_writer *w, size_t len)
{
    chan_sock_frame(w, len);
    return chan_sock_send(w);
}

prism_chan_status chan_sock_writer_close(prism_chan_writer *w, int timeout_ms)
{
    if (w->closed)
        return PRISM_CHAN_OK;
    int64_t deadline = chan_deadline(timeout_ms);
    prism_chan_status s = chan_sock_flush(w, timeout_ms);
    if (s == PRISM_CHAN_OK && !w->u.sock.ending) {
        /* The end mark, in the buffer the last frame no longer needs. */
        put_le32(w->u.sock.buf, FRAME_END);
        w->u.sock.base = 0;
        w->u.sock.frame = HDR;
        w->u.sock.sent = 0;
        w->u.sock.ending = true;
        int64_t left = deadline - chan_now_ns();
        int ms = timeout_ms < 0 ? -1 : left <= 0 ? 0 : (int)((left + 999999) / 1000000);
        s = chan_sock_flush(w, ms);
    }
    if (s == PRISM_CHAN_TIMEOUT)
        return s; /* still open: close again, or destroy to cut the stream short */
    shutdown(w->u.sock.fd, SHUT_WR);
    w->closed = true;
    return s;
}

void chan_sock_writer_free(prism_chan_writer *w)
{
    /* Without waiting: if the end mark (or the rest of a frame) does not go
     * out at once, the stream is cut and the reader sees
     * PRISM_CHAN_PEER_DEAD. */
    if (!w->closed && chan_sock_writer_close(w, 0) != PRISM_CHAN_OK)
        shutdown(w->u.sock.fd, SHUT_WR);
    free(w->u.sock.buf);
    free(w);
}

/* ---------- reader ---------- */

prism_chan_status prism_chan_reader_open_socket(prism_chan_reader **out, int sock,
                                                uint64_t max_buf_size, const prism_chan_wait *wait)
{
    if (!out)
        return PRISM_CHAN_INVALID;
    *out = NULL;
    if (sock < 0 || max_buf_size < 1 || max_buf_size >= FRAME_STAMPED)
        return PRISM_CHAN_INVALID;
    prism_chan_reader *r = calloc(1, sizeof *r);
    size_t size = HDR + STAMP + (size_t)max_buf_size + READAHEAD;
    uint8_t *buf = malloc(size);
    if (!r || !buf) {
        free(r);
        free(buf);
        return PRISM_CHAN_ERROR;
    }
    r->kind = CHAN_KIND_SOCKET;
    chan_wait_defaults(&r->wait, wait);
    r->u.sock.fd = sock;
    r->u.sock.cap = max_buf_size;
    r->u.sock.buf = buf;
    r->u.sock.bufsize = size;
    r->u.sock.broken = PRISM_CHAN_OK;
    *out = r;
    return PRISM_CHAN_OK;
}

prism_chan_status chan_sock_begin_read(prism_chan_reader *r, const void **buf, size_t *len,
                                       int timeout_ms)
{
    if (r->u.sock.broken != PRISM_CHAN_OK)
        return r->u.sock.broken;
    uint8_t *b = r->u.sock.buf;
    int64_t deadline = 0, spin_end = 0, spin_began = 0;
    bool waited = false;
    for (;;) {
        size_t avail = r->u.sock.end - r->u.sock.start;
        size_t need = HDR;
        if (avail >= HDR) {
            uint32_t n = get_le32(b + r->u.sock.start);
            if (n == FRAME_END)
                return r->u.sock.broken = PRISM_CHAN_CLOSED;
            size_t stamp = n & FRAME_STAMPED ? STAMP : 0;
            n &= ~FRAME_STAMPED;
            if (n > r->u.sock.cap)
                return r->u.sock.broken = PRISM_CHAN_PROTOCOL;
            need = HDR + stamp + n;
            if (avail >= need) {
                const uint8_t *f = b + r->u.sock.start;
                if (stamp)
                    chan_count_latency(r->u.sock.hist, &r->u.sock.hist_sum_ns,
                                       chan_wall_ns() - (int64_t)get_le64(f + HDR));
                *buf = f + HDR + stamp;
                *len = n;
                r->u.sock.frame = need;
                return PRISM_CHAN_OK;
            }
        }
        /* The frame must fit between start and the buffer's end; move the
         * part received to the front when it does not (at most a partial
         * frame: see READAHEAD). */
        if (r->u.sock.start + need > r->u.sock.bufsize) {
            memmove(b, b + r->u.sock.start, avail);
            r->u.sock.start = 0;
            r->u.sock.end = avail;
        }
        ssize_t got =
            recv(r->u.sock.fd, b + r->u.sock.end, r->u.sock.bufsize - r->u.sock.end, MSG_DONTWAIT);
        if (got > 0) {
            r->u.sock.end += (size_t)got;
            continue;
        }
        if (got == 0) /* the stream stopped without the end mark: the writer died */
            return r->u.sock.broken = PRISM_CHAN_PEER_DEAD;
        if (errno == EINTR)
            continue;
        if (errno == ECONNRESET || errno == EPIPE || errno == ENOTCONN)
            return r->u.sock.broken = PRISM_CHAN_PEER_DEAD;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return PRISM_CHAN_ERROR;
        /* Nothing to receive: spin a little on recv, then poll. A partial
         * frame stays buffered for the next call. */
        if (!waited) {
            waited = true;
            if (timeout_ms == 0)
                return PRISM_CHAN_TIMEOUT;
            deadline = chan_deadline(timeout_ms);
            spin_began = chan_now_ns();
            spin_end = spin_began + (int64_t)r->wait.spin_us * 1000;
        }
        int64_t now = chan_now_ns();
        if (now >= deadline)
            return PRISM_CHAN_TIMEOUT;
        if (now < spin_end) {
            chan_cpu_relax();
            chan_spin_yield(&r->cpu_shared, spin_began, now); /* each look is a recv */
            continue;
        }
        if (!poll_until(r->u.sock.fd, POLLIN, deadline))
            return PRISM_CHAN_TIMEOUT;
    }
}

void chan_sock_end_read(prism_chan_reader *r)
{
    r->u.sock.start += r->u.sock.frame;
    r->u.sock.frame = 0;
    if (r->u.sock.start == r->u.sock.end)
        r->u.sock.start = r->u.sock.end = 0;
}

void chan_sock_reader_free(prism_chan_reader *r)
{
    free(r->u.sock.buf);
    free(r);
}
