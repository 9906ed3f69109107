#include "prism_http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "prism_buf.h"
#include "prism_error.h"
#include "prism_fs.h"
#include "prism_json_text.h"
#include "prism_log.h"
#include "prism_net.h"
#include "prism_time.h"
#include "prism_ws.h"

#define MAX_PARAMS 8
#define MAX_SEGMENTS 16
#define DEFAULT_MAX_BODY (1u << 20)
#define MAX_EXTRA_HEADERS 8
/* An oversized body is read and dropped up to this much, so that clients that
 * send the whole body before reading (most do) still see the 413; past it the
 * connection is cut. */
#define DRAIN_LIMIT (64u << 20)
#define DEFAULT_HEADER_TIMEOUT_MS 5000
/* A request without the token (a public route: static files) has this long
 * from its headers to its response's last byte, however it trickles. */
#define STRANGER_MS 30000
#define DEFAULT_MAX_CONNECTIONS 2048u
/* Files kept for everything else the process opens (database, NATS, logs). */
#define RESERVED_FDS 256u
/* Our limits on the request head sit well below libmicrohttpd's (its
 * per-connection memory), so that nearly every oversized request is answered
 * by us, with the JSON envelope. */
#define MAX_URI 8192u
#define MAX_HEAD (32u << 10)
#define CONNECTION_MEMORY (128u << 10)

typedef struct ws_session ws_session;

/* One accepted connection, from accept to close. `fd` stays the connection's
 * socket for the slot's whole life: libmicrohttpd reports the close (which
 * removes the slot under `conns_lock`) before it closes the socket, and the
 * reaper only shuts sockets down under that lock, so it never touches a
 * reused descriptor. */
typedef struct conn_slot {
    struct conn_slot *prev, *next;
    prism_http_server *srv;
    int fd;
    bool busy;     /* a request's headers arrived and its response is not done */
    bool closing;  /* shut down by the reaper or evicted: no longer counted */
    bool answered; /* the current request has a response queued (connection thread only) */
    /* Its request came without the token (a public route): it may be shut
     * as an idle one is, and once STRANGER_MS passed since its headers. */
    bool stranger;
    int64_t idle_since_ns, stranger_since_ns;
} conn_slot;

struct prism_http_server {
    struct MHD_Daemon *daemon;
    prism_http_config cfg;
    char *token;
    char *name;
    atomic_bool stopping;
    int port;
    pthread_mutex_t conns_lock;
    pthread_cond_t reaper_wake;
    conn_slot *conns; /* newest first */
    size_t nidle;     /* slots that may be shut (evictable()) */
    size_t max_idle;
    int64_t header_timeout_ns;
    char *tls_cert, *tls_key; /* PEM text, kept while the daemon runs; NULL: plain HTTP */
    bool sync_ready, reaper_running;
    pthread_t reaper;
    bool upgrade_ok;         /* libmicrohttpd can hand a connection over (WebSockets) */
    pthread_mutex_t ws_lock; /* guards the three below */
    pthread_cond_t ws_ended;
    size_t ws_running;         /* WebSocket threads that have not ended */
    size_t ws_pending;         /* 101 answers queued whose upgrade has not come yet */
    ws_session *ws_ended_list; /* ended threads, to join */
};

struct prism_http_req {
    prism_http_server *srv;
    struct MHD_Connection *conn;
    conn_slot *slot; /* NULL when it could not be allocated */
    bool started;    /* the headers were seen */
    bool deferred;   /* answered at the headers, sent once the (empty) body ended */
    bool uri_too_long;
    bool uri_has_nul; /* "%00" in the raw URL: decoding would cut the path or a query value */
    const prism_http_route *route;
    const char *method;
    const char *version; /* "HTTP/1.1" */
    char *path;
    int nparams;
    const char *param_names[MAX_PARAMS];
    size_t param_name_lens[MAX_PARAMS];
    char *param_values[MAX_PARAMS];
    prism_buf body;
    size_t max_body;
    bool too_large;
    size_t drained;
    struct MHD_Response *response;
    int status;
    int nheaders;
    char *header_names[MAX_EXTRA_HEADERS], *header_values[MAX_EXTRA_HEADERS];
    int64_t started_ns;
    ws_session *ws; /* a WebSocket answer, until its upgrade takes it */
    bool upgraded;  /* the connection was handed to a WebSocket thread */
};

/* ---------- route matching ---------- */

/* Splits "/a/b/c" into segments in place; returns the count or -1 if too many. */
static int split_path(char *path, char **segs)
{
    int n = 0;
    char *save = NULL;
    for (char *p = strtok_r(path, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
        if (n == MAX_SEGMENTS)
            return -1;
        segs[n++] = p;
    }
    return n;
}

/* Returns 1 when `path` matches `pattern`, filling params; 0 otherwise. */
static int match_route(prism_http_req *req, const char *pattern, const char *path)
{
    char pbuf[512], qbuf[2048], *psegs[MAX_SEGMENTS], *qsegs[MAX_SEGMENTS];
    if (strlen(pattern) >= sizeof pbuf || strlen(path) >= sizeof qbuf)
        return 0;
    strcpy(pbuf, pattern);
    strcpy(qbuf, path);
    int np = split_path(pbuf, psegs), nq = split_path(qbuf, qsegs);
    if (np < 0 || nq < 0 || np != nq)
        return 0;
    int nparams = 0;
    for (int i = 0; i < np; i++) {
        size_t len = strlen(psegs[i]);
        if (psegs[i][0] == '{' && psegs[i][len - 1] == '}') {
            if (nparams == MAX_PARAMS)
                return 0;
            nparams++;
        } else if (strcmp(psegs[i], qsegs[i]) != 0) {
            return 0;
        }
    }
    /* Matched: record the parameters. Names point into the route's pattern. */
    const char *pp = pattern;
    int k = 0;
    for (int i = 0; i < np; i++) {
        size_t len = strlen(psegs[i]);
        if (psegs[i][0] != '{')
            continue;
        const char *name = strstr(pp, psegs[i]);
        req->param_names[k] = name + 1;
        req->param_name_lens[k] = len - 2;
        req->param_values[k] = strdup(qsegs[i]);
        pp = name + len;
        k++;
    }
    req->nparams = k;
    return 1;
}

/* HEAD is answered by the GET route (libmicrohttpd leaves out the body). */
static bool is_method(const prism_http_req *req, const char *method)
{
    if (!strcmp(req->method, method))
        return true;
    return !strcmp(method, "GET") && !strcmp(req->method, "HEAD");
}

/* Finds the route for method+path. Sets *path_known when some route has the path. */
static const prism_http_route *find_route(prism_http_req *req, bool *path_known)
{
    const prism_http_config *cfg = &req->srv->cfg;
    *path_known = false;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const prism_http_route *r = &cfg->routes[i];
        if (!match_route(req, r->pattern, req->path))
            continue;
        if (is_method(req, r->method))
            return r;
        *path_known = true;
        for (int k = 0; k < req->nparams; k++)
            free(req->param_values[k]);
        req->nparams = 0;
    }
    return NULL;
}

/* ---------- replies ---------- */

static void set_response(prism_http_req *req, int status, struct MHD_Response *resp,
                         const char *content_type)
{
    if (req->response) {
        /* A second reply is a handler bug; keep the first. */
        MHD_destroy_response(resp);
        return;
    }
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (int i = 0; i < req->nheaders; i++)
        MHD_add_response_header(resp, req->header_names[i], req->header_values[i]);
    req->response = resp;
    req->status = status;
}

void prism_http_reply(prism_http_req *req, int status, const char *content_type, const void *body,
                      size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (resp)
        set_response(req, status, resp, content_type);
}

void prism_http_reply_static(prism_http_req *req, int status, const char *content_type,
                             const void *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (resp)
        set_response(req, status, resp, content_type);
}

void prism_http_reply_json(prism_http_req *req, int status, json_t *doc)
{
    /* NULL doc: a json_pack that failed, on memory or on a string that is not UTF-8. */
    static const char fallback[] =
        "{\"error\":{\"code\":\"internal\",\"message\":\"could not encode the response\"}}";
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text) {
        prism_http_reply(req, 500, "application/json", fallback, sizeof fallback - 1);
        return;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (resp)
        set_response(req, status, resp, "application/json");
    else
        free(text);
}

void prism_http_reply_error(prism_http_req *req, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    prism_http_reply_json(req, status, prism_error_jsonv(code, fmt, ap));
    va_end(ap);
}

void prism_http_reply_fd(prism_http_req *req, int status, const char *content_type, int fd,
                         uint64_t offset, uint64_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_fd_at_offset64(len, fd, offset);
    if (resp)
        set_response(req, status, resp, content_type);
    else
        close(fd);
}

typedef struct stream_ctx {
    prism_http_server *srv;
    prism_http_stream_read read;
    void (*done)(void *);
    void *ud;
} stream_ctx;

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream_ctx *s = cls;
    /* Thread-per-connection: waiting here blocks only this client. */
    for (;;) {
        if (atomic_load(&s->srv->stopping))
            return MHD_CONTENT_READER_END_OF_STREAM;
        ssize_t n = s->read(s->ud, buf, max);
        if (n > 0)
            return n;
        if (n == PRISM_HTTP_STREAM_END)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (n < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        prism_sleep_ms(50);
    }
}

static void stream_free(void *cls)
{
    stream_ctx *s = cls;
    if (s->done)
        s->done(s->ud);
    free(s);
}

void prism_http_reply_stream(prism_http_req *req, int status, const char *content_type,
                             prism_http_stream_read read, void (*done)(void *ud), void *ud)
{
    stream_ctx *s = malloc(sizeof *s);
    if (!s) {
        if (done)
            done(ud);
        prism_http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    *s = (stream_ctx){req->srv, read, done, ud};
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024,
                                                                  stream_reader, s, stream_free);
    if (!resp) {
        stream_free(s);
        prism_http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    /* libmicrohttpd 0.9.75 ends a chunked answer to HEAD with "0\r\n\r\n",
     * body bytes the client does not expect; without chunking (closing the
     * connection instead) nothing follows the headers. */
    if (!strcmp(req->method, "HEAD"))
        MHD_set_response_options(resp, MHD_RF_HTTP_1_0_COMPATIBLE_STRICT, MHD_RO_END);
    set_response(req, status, resp, content_type);
}

/* ---------- WebSockets ---------- */

/* What the callback is asked for at once: one text message each. */
#define WS_CHUNK (64u << 10)
/* How often an idle stream's callback is asked again. */
#define WS_POLL_MS 200
/* Clients have nothing to say on these routes: their data frames are read
 * and dropped, up to this size each (larger is closed with 1009). */
#define WS_MAX_CLIENT_PAYLOAD 4096u
/* A peer that takes no bytes for this long is given up (1 s once stopping). */
#define WS_WRITE_STALL_MS 30000
/* After our close frame, how long the peer has to answer with its own. */
#define WS_CLOSE_WAIT_MS 2000
/* How long destroy waits for the upgrade of a 101 already sent (that
 * WebSocket then gets a close frame from its upgrade). */
#define WS_PENDING_WAIT_MS 2000

/* One WebSocket: made by prism_http_reply_websocket, run by a thread of its
 * own once libmicrohttpd hands the connection over, joined by whoever reaps
 * the ended ones (the next upgrade or the server's destroy). */
struct ws_session {
    ws_session *next; /* in the server's ended list */
    prism_http_server *srv;
    prism_http_stream_read read;
    void (*done)(void *);
    void *ud;
    struct MHD_UpgradeResponseHandle *urh;
    int sock;
    pthread_t thread;
    uint8_t in[WS_MAX_CLIENT_PAYLOAD + PRISM_WS_MAX_HEADER]; /* unparsed client bytes */
    size_t in_len;
    /* A frame header's room, then carried UTF-8 bytes and a chunk. */
    char *out;
    size_t carry;
    bool close_sent;
};

#define WS_OUT_HEAD PRISM_WS_MAX_SERVER_HEADER
#define WS_OUT_SIZE (WS_OUT_HEAD + 3 + WS_CHUNK)

static void ws_free(ws_session *w)
{
    if (w->done)
        w->done(w->ud);
    free(w->out);
    free(w);
}

/* Sends all of `len` bytes, waiting while the peer's window is full. */
static int ws_write(ws_session *w, const void *data, size_t len)
{
    const char *p = data;
    int64_t progress = prism_mono_ms();
    while (len) {
        ssize_t n = send(w->sock, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            progress = prism_mono_ms();
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return -1;
        int limit = atomic_load(&w->srv->stopping) ? 1000 : WS_WRITE_STALL_MS;
        if (prism_mono_ms() - progress > limit)
            return -1;
        struct pollfd pfd = {.fd = w->sock, .events = POLLOUT};
        (void)poll(&pfd, 1, WS_POLL_MS);
    }
    return 0;
}

/* A control frame (at most 125 bytes of payload, which the parser ensures for pings). */
static int ws_send_control(ws_session *w, unsigned opcode, const void *payload, size_t len)
{
    uint8_t frame[PRISM_WS_MAX_SERVER_HEADER + PRISM_WS_MAX_CONTROL];
    if (len > PRISM_WS_MAX_CONTROL)
        return -1;
    size_t h = prism_ws_frame_header(frame, opcode, len);
    memcpy(frame + h, payload, len);
    return ws_write(w, frame, h + len);
}

static void ws_send_close(ws_session *w, uint16_t code)
{
    if (w->close_sent)
        return;
    w->close_sent = true;
    uint8_t payload[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    (void)ws_send_control(w, PRISM_WS_CLOSE, payload, sizeof payload);
}

/* Answers the complete frames in the input buffer. Returns 0 to go on, or
 * -1 when the session is over (the client closed or broke the protocol). */
static int ws_process(ws_session *w)
{
    size_t off = 0;
    int rc = 0;
    while (rc == 0) {
        prism_ws_frame f;
        uint16_t code;
        ssize_t used =
            prism_ws_parse(w->in + off, w->in_len - off, WS_MAX_CLIENT_PAYLOAD, &f, &code);
        if (used == 0)
            break;
        if (used < 0) {
            ws_send_close(w, code);
            return -1;
        }
        off += (size_t)used;
        if (f.opcode == PRISM_WS_PING && !w->close_sent)
            rc = ws_send_control(w, PRISM_WS_PONG, f.payload, f.len);
        else if (f.opcode == PRISM_WS_CLOSE) {
            /* Echo the client's code (RFC 6455 5.5.1), unless ours went first. */
            if (prism_ws_close_payload(f.payload, f.len, &code) != 0)
                code = PRISM_WS_CLOSE_PROTOCOL_ERROR;
            else if (code == PRISM_WS_CLOSE_NO_STATUS)
                code = PRISM_WS_CLOSE_NORMAL;
            ws_send_close(w, code);
            return -1;
        }
    }
    memmove(w->in, w->in + off, w->in_len - off);
    w->in_len -= off;
    return rc;
}

/* Waits up to `timeout_ms` for client bytes and answers them. Returns 0 to
 * go on, -1 when the session is over (the client left, closed or erred). */
static int ws_input(ws_session *w, int timeout_ms)
{
    struct pollfd pfd = {.fd = w->sock, .events = POLLIN};
    int r = poll(&pfd, 1, timeout_ms);
    if (r <= 0)
        return r < 0 && errno != EINTR ? -1 : 0;
    ssize_t n = recv(w->sock, w->in + w->in_len, sizeof w->in - w->in_len, MSG_DONTWAIT);
    if (n == 0)
        return -1; /* the peer went away */
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    w->in_len += (size_t)n;
    return ws_process(w);
}

/* Sends the `len` bytes read after the carried ones as a text message,
 * keeping an incomplete UTF-8 sequence at its end for the next one. */
static int ws_send_text(ws_session *w, size_t len, bool more)
{
    char *text = w->out + WS_OUT_HEAD;
    size_t total = w->carry + len;
    size_t keep = prism_ws_text_prepare(text, total, more);
    int rc = 0;
    if (total > keep) { /* the header goes in the room before the text: one write */
        uint8_t head[PRISM_WS_MAX_SERVER_HEADER];
        size_t h = prism_ws_frame_header(head, PRISM_WS_TEXT, total - keep);
        memcpy(text - h, head, h);
        rc = ws_write(w, text - h, h + total - keep);
    }
    memmove(text, text + total - keep, keep);
    w->carry = keep;
    return rc;
}

static void *ws_main(void *arg)
{
    ws_session *w = arg;
    prism_http_server *srv = w->srv;
    int rc = ws_process(w); /* what came with the handshake */
    bool idle = false;
    while (rc == 0) {
        if (atomic_load(&srv->stopping)) {
            ws_send_close(w, PRISM_WS_CLOSE_GOING_AWAY);
            break;
        }
        if (ws_input(w, idle ? WS_POLL_MS : 0) != 0)
            break;
        ssize_t n = w->read(w->ud, w->out + WS_OUT_HEAD + w->carry, WS_CHUNK);
        idle = n == 0;
        if (n > 0) {
            rc = ws_send_text(w, (size_t)n, true);
        } else if (n < 0) {
            if (n == PRISM_HTTP_STREAM_END && ws_send_text(w, 0, false) == 0)
                ws_send_close(w, PRISM_WS_CLOSE_NORMAL);
            else
                ws_send_close(w, PRISM_WS_CLOSE_INTERNAL);
            /* The peer answers our close with its own; then the connection goes. */
            int64_t until = prism_mono_ms() + WS_CLOSE_WAIT_MS;
            while (prism_mono_ms() < until && !atomic_load(&srv->stopping) &&
                   ws_input(w, 100) == 0) {
            }
            break;
        }
    }
    if (w->done)
        w->done(w->ud);
    w->done = NULL;
    free(w->out);
    w->out = NULL;
    MHD_upgrade_action(w->urh, MHD_UPGRADE_ACTION_CLOSE);
    pthread_mutex_lock(&srv->ws_lock);
    w->next = srv->ws_ended_list;
    srv->ws_ended_list = w;
    srv->ws_running--;
    pthread_cond_broadcast(&srv->ws_ended);
    pthread_mutex_unlock(&srv->ws_lock);
    return NULL;
}

/* Joins the threads of ended WebSockets and frees them. */
static void ws_reap(prism_http_server *s)
{
    pthread_mutex_lock(&s->ws_lock);
    ws_session *list = s->ws_ended_list;
    s->ws_ended_list = NULL;
    pthread_mutex_unlock(&s->ws_lock);
    while (list) {
        ws_session *next = list->next;
        pthread_join(list->thread, NULL);
        ws_free(list);
        list = next;
    }
}

/* A queued 101 was taken by its upgrade or dropped with its connection. */
static void ws_unpend(prism_http_server *s)
{
    pthread_mutex_lock(&s->ws_lock);
    s->ws_pending--;
    pthread_cond_broadcast(&s->ws_ended);
    pthread_mutex_unlock(&s->ws_lock);
}

/* Called on the connection's thread once the 101 went out. */
static void ws_upgraded(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
                        size_t extra_in_size, MHD_socket sock,
                        struct MHD_UpgradeResponseHandle *urh)
{
    ws_session *w = cls;
    prism_http_server *s = w->srv;
    prism_http_req *req = con_cls;
    if (req) { /* the session is this handler's now, and the connection stays busy */
        req->ws = NULL;
        req->upgraded = true;
    }
    w->urh = urh;
    w->sock = sock;
    ws_reap(s);
    bool fits = extra_in_size <= sizeof w->in;
    if (fits) {
        memcpy(w->in, extra_in, extra_in_size);
        w->in_len = extra_in_size;
    }
    pthread_mutex_lock(&s->ws_lock);
    /* Once stopping, destroy may be waiting for the last thread: start none. */
    bool run = fits && !atomic_load(&s->stopping) &&
               pthread_create(&w->thread, NULL, ws_main, w) == 0;
    if (run)
        s->ws_running++;
    pthread_mutex_unlock(&s->ws_lock);
    if (!run) {
        ws_send_close(w, !fits                       ? PRISM_WS_CLOSE_TOO_BIG
                         : atomic_load(&s->stopping) ? PRISM_WS_CLOSE_GOING_AWAY
                                                     : PRISM_WS_CLOSE_INTERNAL);
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        ws_free(w);
    }
    ws_unpend(s); /* its thread runs, or its close went out */
}

/* Ends every WebSocket (they see `stopping`) and joins their threads. A
 * 101 already sent whose upgrade has not come yet is waited for (up to
 * WS_PENDING_WAIT_MS), so that its client gets a close frame, not a
 * connection cut after a successful handshake. */
static void ws_stop_all(prism_http_server *s)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += WS_PENDING_WAIT_MS / 1000;
    pthread_mutex_lock(&s->ws_lock);
    while (s->ws_pending &&
           pthread_cond_timedwait(&s->ws_ended, &s->ws_lock, &until) != ETIMEDOUT) {
    }
    while (s->ws_running)
        pthread_cond_wait(&s->ws_ended, &s->ws_lock);
    pthread_mutex_unlock(&s->ws_lock);
    ws_reap(s);
}

/* True when the comma-separated header value lists `token` (any case). */
static bool header_has_token(const char *value, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = value; p && *p;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, ",");
        size_t end = len;
        while (end && (p[end - 1] == ' ' || p[end - 1] == '\t'))
            end--;
        if (end == n && !strncasecmp(p, token, n))
            return true;
        p += len;
    }
    return false;
}

void prism_http_reply_websocket(prism_http_req *req, prism_http_stream_read read,
                                void (*done)(void *ud), void *ud)
{
    const char *upgrade = prism_http_header(req, "Upgrade");
    const char *connection = prism_http_header(req, "Connection");
    const char *version = prism_http_header(req, "Sec-WebSocket-Version");
    const char *key = prism_http_header(req, "Sec-WebSocket-Key");
    const char *why = NULL;
    int status = 400;
    if (!upgrade || !header_has_token(upgrade, "websocket")) {
        status = 426;
        why = "this route is a WebSocket: send a handshake (Upgrade: websocket)";
        prism_http_add_header(req, "Upgrade", "websocket");
    } else if (strcmp(req->method, "GET") != 0) {
        why = "a WebSocket handshake is a GET";
    } else if (!req->version || strcmp(req->version, MHD_HTTP_VERSION_1_1) != 0) {
        why = "a WebSocket handshake needs HTTP/1.1";
    } else if (!connection || !header_has_token(connection, "upgrade")) {
        why = "the Connection header must include 'upgrade'";
    } else if (!version || strcmp(version, "13") != 0) {
        status = 426;
        why = "only WebSocket version 13 is served (Sec-WebSocket-Version: 13)";
        prism_http_add_header(req, "Sec-WebSocket-Version", "13");
    } else if (!prism_ws_key_valid(key)) {
        why = "Sec-WebSocket-Key must be the base64 of 16 bytes";
    }
    if (why || req->response) { /* a refused handshake, or a second reply (kept out) */
        if (done)
            done(ud);
        if (why)
            prism_http_reply_error(req, status,
                                   status == 426 ? "upgrade_required" : "bad_handshake", "%s", why);
        return;
    }
    char accept[PRISM_WS_ACCEPT_LEN + 1];
    ws_session *w = req->srv->upgrade_ok ? calloc(1, sizeof *w) : NULL;
    char *out = w ? malloc(WS_OUT_SIZE) : NULL;
    struct MHD_Response *resp = out && prism_ws_accept(key, accept) == 0
                                    ? MHD_create_response_for_upgrade(ws_upgraded, w)
                                    : NULL;
    if (!resp) {
        free(out);
        free(w);
        if (done)
            done(ud);
        if (req->srv->upgrade_ok)
            prism_http_reply_error(req, 500, "internal", "out of memory");
        else
            prism_http_reply_error(req, 501, "unsupported",
                                   "this server's HTTP library cannot serve WebSockets");
        return;
    }
    *w =
        (ws_session){.srv = req->srv, .read = read, .done = done, .ud = ud, .out = out, .sock = -1};
    MHD_add_response_header(resp, "Upgrade", "websocket");
    MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept);
    req->ws = w;
    pthread_mutex_lock(&req->srv->ws_lock);
    req->srv->ws_pending++;
    pthread_mutex_unlock(&req->srv->ws_lock);
    set_response(req, 101, resp, NULL);
}

void prism_http_add_header(prism_http_req *req, const char *name, const char *value)
{
    if (req->nheaders == MAX_EXTRA_HEADERS)
        return;
    req->header_names[req->nheaders] = strdup(name);
    req->header_values[req->nheaders] = strdup(value);
    req->nheaders++;
}

/* ---------- reading a request ---------- */

const char *prism_http_method(const prism_http_req *req) { return req->method; }
const char *prism_http_path(const prism_http_req *req) { return req->path; }

const char *prism_http_param(const prism_http_req *req, const char *name)
{
    size_t len = strlen(name);
    for (int i = 0; i < req->nparams; i++)
        if (req->param_name_lens[i] == len && !strncmp(req->param_names[i], name, len))
            return req->param_values[i];
    return NULL;
}

const char *prism_http_query(const prism_http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* `s` with every byte but the unreserved ones (and '/' when `path`) as %XX. */
static void percent_encode(prism_buf *b, const char *s, bool path)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~' || (path && c == '/')) {
            prism_buf_append(b, s, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            prism_buf_append(b, e, 3);
        }
    }
}

static enum MHD_Result append_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
    prism_buf *b = cls;
    if (b->len)
        prism_buf_append(b, "&", 1);
    percent_encode(b, key, false);
    if (value) {
        prism_buf_append(b, "=", 1);
        percent_encode(b, value, false);
    }
    return MHD_YES;
}

char *prism_http_query_string(const prism_http_req *req)
{
    prism_buf b;
    prism_buf_init(&b, 64 * 1024);
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, append_query_arg, &b);
    size_t len;
    char *out = prism_buf_take(&b, &len);
    return out ? out : strdup("");
}

char *prism_http_path_encoded(const prism_http_req *req)
{
    prism_buf b;
    prism_buf_init(&b, MAX_URI * 3);
    percent_encode(&b, req->path, true);
    size_t len;
    char *out = prism_buf_take(&b, &len);
    return out ? out : strdup("");
}

bool prism_http_stopping(const prism_http_req *req) { return atomic_load(&req->srv->stopping); }

const char *prism_http_header(const prism_http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *prism_http_body(const prism_http_req *req, size_t *len_out)
{
    if (len_out)
        *len_out = req->body.len;
    return req->body.data ? req->body.data : "";
}

/* ---------- built-in endpoints and dispatch ---------- */

static bool token_ok(prism_http_req *req)
{
    const char *want = req->srv->token;
    if (!want)
        return true;
    const char *auth = prism_http_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return false;
    const char *got = auth + 7;
    size_t n = strlen(want), m = strlen(got);
    /* Constant time in the token's length, so timing leaks nothing of it. */
    unsigned diff = (unsigned)(n ^ m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned)(want[i] ^ (i < m ? got[i] : 0));
    return diff == 0;
}

static bool route_public(const prism_http_route *r)
{
    return (r->max_body & PRISM_HTTP_PUBLIC) && !strcmp(r->method, "GET");
}

/* Whether a public route serves this method and path (checked without the token). */
static bool public_match(prism_http_req *req)
{
    const prism_http_config *cfg = &req->srv->cfg;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const prism_http_route *r = &cfg->routes[i];
        if (!route_public(r) || !is_method(req, r->method))
            continue;
        prism_http_req tmp = {.srv = req->srv};
        int ok = match_route(&tmp, r->pattern, req->path);
        for (int k = 0; k < tmp.nparams; k++)
            free(tmp.param_values[k]);
        if (ok)
            return true;
    }
    return false;
}

static void serve_metrics(prism_http_req *req)
{
    prism_buf out;
    prism_buf_init(&out, 16u << 20);
    if (req->srv->cfg.metrics)
        prism_metrics_render(req->srv->cfg.metrics, &out);
    prism_http_reply(req, 200, "text/plain; version=0.0.4", out.data ? out.data : "", out.len);
    prism_buf_free(&out);
}

/* "GET, DELETE": the methods some route serves on this request's path. */
static void allowed_methods(prism_http_req *probe, char *out, size_t n)
{
    const prism_http_config *cfg = &probe->srv->cfg;
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < cfg->nroutes; i++) {
        prism_http_req tmp = {.srv = probe->srv};
        if (!match_route(&tmp, cfg->routes[i].pattern, probe->path))
            continue;
        for (int k = 0; k < tmp.nparams; k++)
            free(tmp.param_values[k]);
        const char *m = cfg->routes[i].method;
        if (len < n)
            len += (size_t)snprintf(out + len, n - len, "%s%s%s", len ? ", " : "", m,
                                    strcmp(m, "GET") ? "" : ", HEAD");
    }
}

static void reply_too_large(prism_http_req *req)
{
    prism_http_reply_error(req, 413, "body_too_large", "request body is over the %zu byte limit",
                           req->max_body);
}

static enum MHD_Result check_query_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                         const char *value)
{
    bool *ok = cls;
    *ok = prism_utf8_valid(key, strlen(key)) && (!value || prism_utf8_valid(value, strlen(value)));
    return *ok ? MHD_YES : MHD_NO;
}

/* Handlers echo path segments and query values into JSON, which must be UTF-8. */
static bool url_text_ok(prism_http_req *req)
{
    bool ok = !req->uri_has_nul && prism_utf8_valid(req->path, strlen(req->path));
    if (ok)
        MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, check_query_value, &ok);
    return ok;
}

/* The request head within our limits (checked before anything else). A
 * request too large to take is answered, and its connection closed as other
 * malformed ones are (not kept until the next request's deadline). */
static bool head_size_ok(prism_http_req *req)
{
    if (req->uri_too_long) {
        prism_http_add_header(req, "Connection", "close");
        prism_http_reply_error(req, 414, "uri_too_long", "the URL is over the %u byte limit",
                               MAX_URI);
        return false;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (ci && ci->header_size > MAX_HEAD) {
        prism_http_add_header(req, "Connection", "close");
        prism_http_reply_error(req, 431, "headers_too_large",
                               "the request line and headers are over the %u byte limit", MAX_HEAD);
        return false;
    }
    return true;
}

static void slot_set_stranger(conn_slot *c);

static bool reply_unauthorized(prism_http_req *req)
{
    prism_http_add_header(req, "WWW-Authenticate", "Bearer");
    prism_http_reply_error(req, 401, "unauthorized",
                           "missing or wrong bearer token (Authorization: Bearer TOKEN)");
    return true;
}

/* Decides before the body is read: built-ins, auth, routing, body limits.
 * Returns true when a response was already set. */
static bool on_headers(prism_http_req *req)
{
    if (!head_size_ok(req))
        return true;
    if (!strcmp(req->path, "/healthz") && is_method(req, "GET")) {
        json_t *doc = json_pack("{s:s,s:s}", "status", "ok", "service",
                                req->srv->name ? req->srv->name : "prism");
        prism_http_reply_json(req, 200, doc);
        return true;
    }
    bool authed = token_ok(req);
    if (!authed && !public_match(req))
        return reply_unauthorized(req);
    if (!url_text_ok(req)) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "the path and query must be UTF-8 without NUL (%%00)");
        return true;
    }
    if (!strcmp(req->path, "/metrics") && is_method(req, "GET")) {
        serve_metrics(req);
        return true;
    }
    bool path_known;
    req->route = find_route(req, &path_known);
    /* Without the token, only a public route: the first route matching may
     * be another one than the public route public_match found. And with no
     * body, which a stranger could trickle to hold the connection. */
    if (!authed && !(req->route && route_public(req->route)))
        return reply_unauthorized(req);
    if (!authed) {
        const char *len = prism_http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (prism_http_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING) || (len && strcmp(len, "0")))
            return reply_unauthorized(req);
        slot_set_stranger(req->slot);
    }
    if (!req->route) {
        if (path_known) {
            char allow[128];
            allowed_methods(req, allow, sizeof allow);
            prism_http_add_header(req, "Allow", allow);
            prism_http_reply_error(req, 405, "method_not_allowed", "%s is not allowed on %s",
                                   req->method, req->path);
        } else {
            prism_http_reply_error(req, 404, "not_found", "no route %s %s", req->method, req->path);
        }
        return true;
    }
    size_t route_max = req->route->max_body & ~PRISM_HTTP_PUBLIC;
    req->max_body = route_max                        ? route_max
                    : req->srv->cfg.default_max_body ? req->srv->cfg.default_max_body
                                                     : DEFAULT_MAX_BODY;
    prism_buf_init(&req->body, req->max_body);
    const char *cl = prism_http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long announced = cl ? strtoull(cl, NULL, 10) : 0;
    if (announced > req->max_body + (unsigned long long)DRAIN_LIMIT) {
        reply_too_large(req);
        return true;
    }
    req->too_large = announced > req->max_body;
    return false;
}

/* Label values come from a fixed set: a client's method text, sent even
 * without a token, must not create series (or break the exposition format). */
static const char *method_label(const char *method)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(method, known[i]))
            return known[i];
    return "other";
}

static void count_request(prism_http_req *req)
{
    prism_metrics *m = req->srv->cfg.metrics;
    if (!m)
        return;
    char labels[256];
    snprintf(labels, sizeof labels, "method=\"%s\",route=\"%s\",code=\"%d\"",
             method_label(req->method), req->route ? req->route->pattern : "other", req->status);
    prism_metric_add(
        prism_metrics_counter(m, "prism_http_requests_total", "HTTP requests served", labels), 1);
}

static enum MHD_Result send_response(prism_http_req *req)
{
    if (!req->response)
        prism_http_reply_error(req, 500, "internal", "the handler gave no response");
    if (req->slot)
        req->slot->answered = true;
    count_request(req);
    int64_t us = (prism_mono_ns() - req->started_ns) / 1000;
    if (req->status >= 500)
        LOG_WARN("%s %s -> %d (%lld us)", req->method, req->path, req->status, (long long)us);
    else
        LOG_DEBUG("%s %s -> %d (%lld us)", req->method, req->path, req->status, (long long)us);
    return MHD_queue_response(req->conn, (unsigned)req->status, req->response);
}

/* ---------- connections: header deadline, eviction, parser errors ---------- */

/* The slot of the connection this thread serves (thread per connection), set
 * once its first request line is parsed: lets the log hook below answer for
 * libmicrohttpd. */
static _Thread_local conn_slot *current_slot;

/* Waiting for a request, or serving one without the token: a slot that a
 * client who sends requests with the token may push out. */
static bool evictable(const conn_slot *c) { return !c->closing && (!c->busy || c->stranger); }

/* Closes the connection under the slot (caller holds conns_lock): its thread
 * sees the end of the stream and lets libmicrohttpd close it. */
static void slot_shut(conn_slot *c)
{
    if (evictable(c))
        c->srv->nidle--;
    c->closing = true;
    shutdown(c->fd, SHUT_RDWR);
}

static void slot_set_busy(conn_slot *c, bool busy)
{
    if (!c)
        return;
    prism_http_server *s = c->srv;
    pthread_mutex_lock(&s->conns_lock);
    if (!c->closing && c->busy != busy) {
        c->busy = busy;
        if (busy) {
            s->nidle--;
        } else {
            if (!c->stranger) /* a stranger's counted already */
                s->nidle++;
            c->stranger = false;
            c->idle_since_ns = prism_mono_ns(); /* the next request's deadline starts */
        }
    }
    pthread_mutex_unlock(&s->conns_lock);
}

static void evict_if_full(prism_http_server *s);

/* The request being served came without the token. */
static void slot_set_stranger(conn_slot *c)
{
    if (!c)
        return;
    prism_http_server *s = c->srv;
    pthread_mutex_lock(&s->conns_lock);
    if (!c->closing && c->busy && !c->stranger) {
        c->stranger = true;
        c->stranger_since_ns = prism_mono_ns();
        s->nidle++;
        evict_if_full(s);
    }
    pthread_mutex_unlock(&s->conns_lock);
}

/* When too many connections wait for headers (or serve a request without
 * the token), the oldest goes, so that clients that send a request with
 * the token at once are always let in, however many trickling connections
 * someone holds (on loopback they all share one address, so limits per
 * address cannot tell them apart). */
static void evict_if_full(prism_http_server *s)
{
    if (s->nidle <= s->max_idle)
        return;
    conn_slot *oldest = NULL;
    for (conn_slot *c = s->conns; c; c = c->next)
        if (evictable(c))
            oldest = c; /* the list is newest first: the last one waited longest */
    if (oldest)
        slot_shut(oldest);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    prism_http_server *s = cls;
    conn_slot *c = *socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        /* a client that opens a connection per request shows here */
        if (s->cfg.metrics)
            prism_metric_add(prism_metrics_counter(s->cfg.metrics, "prism_http_connections_total",
                                                   "HTTP connections accepted", NULL),
                             1);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        c = ci ? calloc(1, sizeof *c) : NULL;
        if (!c)
            return; /* served without a deadline; nothing else depends on the slot */
        c->srv = s;
        c->fd = ci->connect_fd;
        c->idle_since_ns = prism_mono_ns();
        pthread_mutex_lock(&s->conns_lock);
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->nidle++;
        evict_if_full(s);
        pthread_mutex_unlock(&s->conns_lock);
        *socket_context = c;
        return;
    }
    if (!c)
        return;
    pthread_mutex_lock(&s->conns_lock);
    if (evictable(c))
        s->nidle--;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&s->conns_lock);
    *socket_context = NULL;
    free(c);
}

/* Shuts down connections that waited for headers past the deadline, and
 * those serving a request without the token past STRANGER_MS. A byte
 * received or sent does not reset them (libmicrohttpd's own timeout would
 * be). */
static void *reaper_main(void *arg)
{
    prism_http_server *s = arg;
    int64_t period_ns = s->header_timeout_ns / 4;
    if (period_ns < 20 * 1000000LL)
        period_ns = 20 * 1000000LL;
    pthread_mutex_lock(&s->conns_lock);
    while (!atomic_load(&s->stopping)) {
        int64_t now = prism_mono_ns();
        for (conn_slot *c = s->conns; c; c = c->next)
            if (!c->closing &&
                (c->busy ? c->stranger && now - c->stranger_since_ns > STRANGER_MS * 1000000LL
                         : now - c->idle_since_ns > s->header_timeout_ns))
                slot_shut(c);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t wake = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec + period_ns;
        ts.tv_sec = (time_t)(wake / 1000000000LL);
        ts.tv_nsec = (long)(wake % 1000000000LL);
        pthread_cond_timedwait(&s->reaper_wake, &s->conns_lock, &ts);
    }
    pthread_mutex_unlock(&s->conns_lock);
    return NULL;
}

/* The stable code and message for an error libmicrohttpd found itself. */
static const char *parser_error_code(unsigned status, const char **message)
{
    switch (status) {
    case 413: *message = "the Content-Length or a chunk size is too large"; return "body_too_large";
    case 414: *message = "the URL is too long"; return "uri_too_long";
    case 431: *message = "the request headers are too large"; return "headers_too_large";
    case 505:
        *message = "only HTTP/1.0 and HTTP/1.1 are served";
        return "http_version_not_supported";
    case 500: *message = "the request could not be read"; return "internal";
    default:
        *message = "malformed HTTP request (a header, Content-Length or the chunked body)";
        return "bad_request";
    }
}

/* libmicrohttpd answers a request it cannot parse (bad Content-Length,
 * headers over its memory, a malformed chunk...) with an HTML page of its own,
 * and for some of them (0.9.75) sends the status line twice. It offers no
 * hook to change that body, but it logs each such error on the connection's
 * thread just before queueing its answer. So this log hook sends the JSON
 * envelope itself and shuts the socket for writing: the library's own answer
 * then fails to send and it closes the connection. Requests the handler
 * already answered are left alone. The only errors this cannot reach come
 * before a connection's first request line is parsed (no slot is known on
 * the thread yet): libmicrohttpd answers those itself, once. */
static const char PARSER_ERROR_LOG[] = "Error processing request (HTTP response code is %u";

static void send_parser_error(conn_slot *c, unsigned status)
{
    const char *message, *code = parser_error_code(status, &message);
    char body[256], head[256];
    int blen = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code,
                        message);
    const char *reason = MHD_get_reason_phrase_for(status);
    int hlen = snprintf(head, sizeof head,
                        "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\n"
                        "Content-Length: %d\r\nConnection: close\r\n\r\n",
                        status, reason && *reason ? reason : "Error", blen);
    /* Small enough for any socket buffer; a peer that reads nothing loses it. */
    if (send(c->fd, head, (size_t)hlen, MSG_NOSIGNAL | MSG_DONTWAIT) == hlen)
        (void)send(c->fd, body, (size_t)blen, MSG_NOSIGNAL | MSG_DONTWAIT);
    shutdown(c->fd, SHUT_WR);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    conn_slot *c = current_slot;
    if (!strncmp(fmt, PARSER_ERROR_LOG, sizeof PARSER_ERROR_LOG - 1) && c && c->srv == cls &&
        !c->answered) {
        va_list copy;
        va_copy(copy, ap);
        unsigned status = va_arg(copy, unsigned);
        va_end(copy);
        c->answered = true;
        if (!c->srv->tls_cert) /* raw bytes would break a TLS stream: MHD answers itself there */
            send_parser_error(c, status);
    }
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    LOG_DEBUG("http: %s", line);
}

/* Called once the request line is parsed, before the headers, with the URL
 * as sent (not yet percent-decoded). Its result becomes the request's context. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    prism_http_server *s = cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_slot *c = ci ? ci->socket_context : NULL;
    current_slot = c;
    if (c)
        c->answered = false;
    prism_http_req *req = calloc(1, sizeof *req);
    if (!req)
        return NULL; /* on_request tries again */
    req->srv = s;
    req->conn = conn;
    req->slot = c;
    req->uri_too_long = strlen(uri) > MAX_URI;
    for (const char *p = strchr(uri, '%'); p && !req->uri_has_nul; p = strchr(p + 1, '%'))
        req->uri_has_nul = p[1] == '0' && p[2] == '0';
    return req;
}

static char *normalize_path(const char *url)
{
    char *path = strdup(url);
    if (!path)
        return NULL;
    size_t n = strlen(path);
    /* "/api/jobs/" and "/api/jobs" name the same resource. */
    while (n > 1 && path[n - 1] == '/')
        path[--n] = '\0';
    return path;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    prism_http_server *srv = cls;
    prism_http_req *req = *con_cls;
    if (!req) {
        req = calloc(1, sizeof *req);
        if (!req)
            return MHD_NO;
        req->srv = srv;
        req->conn = conn;
        *con_cls = req;
    }
    if (!req->started) {
        req->started = true;
        req->method = method;
        req->version = version;
        req->path = normalize_path(url);
        if (!req->path)
            return MHD_NO;
        req->started_ns = prism_mono_ns();
        slot_set_busy(req->slot, true);
        if (!on_headers(req))
            return MHD_YES;
        /* A reply queued before the body closes the connection (what is left
         * of the request cannot be told apart from the next one). Without a
         * body, the call that ends it comes at once: sent then, the reply
         * keeps the connection (a scraper's, a kept client's). */
        const char *cl = prism_http_header(req, "Content-Length");
        if (!prism_http_header(req, "Transfer-Encoding") && (!cl || !strcmp(cl, "0"))) {
            req->deferred = true;
            return MHD_YES;
        }
        return send_response(req);
    }
    if (req->deferred)
        return send_response(req);
    /* MHD queues a reply only before the body or after all of it: a body that
     * went over the cap mid-way (no Content-Length) is answered once it ends. */
    if (req->too_large && *upload_size == 0) {
        reply_too_large(req); /* a no-op when it was already set */
        return send_response(req);
    }
    if (req->response) { /* already answered (e.g. 413): discard what still arrives */
        req->drained += *upload_size;
        *upload_size = 0;
        return req->drained > DRAIN_LIMIT ? MHD_NO : MHD_YES; /* MHD_NO cuts the connection */
    }
    if (*upload_size) {
        if (prism_buf_append(&req->body, upload_data, *upload_size) != 0) {
            *upload_size = 0;
            req->too_large = true;
            reply_too_large(req);
            return MHD_YES;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    req->route->handler(req, srv->cfg.ctx);
    return send_response(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    prism_http_req *req = *con_cls;
    if (!req)
        return;
    /* The next request on this connection has its own header deadline; an
     * upgraded one has no next request and stays busy until it closes. */
    if (!req->upgraded)
        slot_set_busy(req->slot, false);
    if (req->ws) { /* the 101 never went out: the session never started */
        ws_free(req->ws);
        ws_unpend(req->srv);
    }
    if (req->slot)
        req->slot->answered = false;
    if (req->response)
        MHD_destroy_response(req->response);
    for (int i = 0; i < req->nparams; i++)
        free(req->param_values[i]);
    for (int i = 0; i < req->nheaders; i++) {
        free(req->header_names[i]);
        free(req->header_values[i]);
    }
    prism_buf_free(&req->body);
    free(req->path);
    free(req);
    *con_cls = NULL;
}

static int resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", port);
    struct addrinfo *res;
    if (getaddrinfo(host, portbuf, &hints, &res) != 0)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* The connection limit the process can hold: raises the soft limit on open
 * files toward `want` plus a reserve when allowed, else serves fewer. */
static unsigned connection_limit(unsigned want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return want;
    rlim_t need = (rlim_t)want + RESERVED_FDS;
    if (rl.rlim_cur < need) {
        struct rlimit raised = rl;
        raised.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl.rlim_cur = raised.rlim_cur;
    }
    if (rl.rlim_cur >= need)
        return want;
    return rl.rlim_cur > 2 * RESERVED_FDS ? (unsigned)(rl.rlim_cur - RESERVED_FDS)
                                          : (unsigned)(rl.rlim_cur / 2);
}

static int init_sync(prism_http_server *s)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&s->reaper_wake, &attr);
    if (rc == 0 && pthread_cond_init(&s->ws_ended, &attr) != 0) {
        pthread_cond_destroy(&s->reaper_wake);
        rc = -1;
    }
    pthread_condattr_destroy(&attr);
    if (rc != 0)
        return -1;
    pthread_mutex_init(&s->conns_lock, NULL);
    pthread_mutex_init(&s->ws_lock, NULL);
    s->sync_ready = true;
    return 0;
}

static void stop_reaper(prism_http_server *s)
{
    if (!s->reaper_running)
        return;
    pthread_mutex_lock(&s->conns_lock);
    atomic_store(&s->stopping, true);
    pthread_cond_signal(&s->reaper_wake);
    pthread_mutex_unlock(&s->conns_lock);
    pthread_join(s->reaper, NULL);
    s->reaper_running = false;
}

static void free_server(prism_http_server *s)
{
    atomic_store(&s->stopping, true);
    stop_reaper(s);
    if (s->sync_ready)
        ws_stop_all(s); /* before the daemon: each thread hands its connection back */
    if (s->daemon)
        MHD_stop_daemon(s->daemon); /* reports every close: the slot list ends empty */
    if (s->sync_ready) {
        pthread_cond_destroy(&s->reaper_wake);
        pthread_mutex_destroy(&s->conns_lock);
        pthread_cond_destroy(&s->ws_ended);
        pthread_mutex_destroy(&s->ws_lock);
    }
    free(s->token);
    free(s->name);
    free(s->tls_cert);
    if (s->tls_key) /* the key does not outlive its use in freed memory */
        explicit_bzero(s->tls_key, strlen(s->tls_key));
    free(s->tls_key);
    free(s);
}

#define TLS_FILE_MAX (1u << 20)

/* Reads the certificate and key (from the config or the environment). 0 with
 * none set (plain HTTP), 0 with both read, -1 with `err` otherwise. */
static int load_tls(prism_http_server *s, const prism_http_config *cfg, char *err, size_t errlen)
{
    const char *cert = cfg->tls_cert ? cfg->tls_cert : getenv("PRISM_TLS_CERT");
    const char *key = cfg->tls_key ? cfg->tls_key : getenv("PRISM_TLS_KEY");
    bool have_cert = cert && *cert, have_key = key && *key;
    if (!have_cert && !have_key)
        return 0;
    if (have_cert != have_key) {
        snprintf(err, errlen,
                 "TLS needs both a certificate and a key (PRISM_TLS_CERT, PRISM_TLS_KEY)");
        return -1;
    }
    size_t n;
    if (!(s->tls_cert = prism_read_file(cert, TLS_FILE_MAX, &n)) ||
        !(s->tls_key = prism_read_file(key, TLS_FILE_MAX, &n))) {
        snprintf(err, errlen, "cannot read the TLS %s %s: %s", s->tls_cert ? "key" : "certificate",
                 s->tls_cert ? key : cert, strerror(errno));
        return -1;
    }
    return 0;
}

int prism_http_server_create(prism_http_server **out, const prism_http_config *cfg, char *err,
                             size_t errlen)
{
    *out = NULL;
    const char *host = cfg->host ? cfg->host : "127.0.0.1";
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (resolve(host, cfg->port, &ss, &sslen) != 0) {
        snprintf(err, errlen, "cannot resolve listen address '%s'", host);
        return -1;
    }
    prism_http_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->cfg = *cfg;
    s->token = cfg->token && *cfg->token ? strdup(cfg->token) : NULL;
    s->name = cfg->name ? strdup(cfg->name) : NULL;
    unsigned limit =
        connection_limit(cfg->max_connections ? cfg->max_connections : DEFAULT_MAX_CONNECTIONS);
    s->max_idle = limit / 2 ? limit / 2 : 1;
    s->header_timeout_ns =
        (int64_t)(cfg->header_timeout_ms > 0 ? cfg->header_timeout_ms : DEFAULT_HEADER_TIMEOUT_MS) *
        1000000LL;
    if (init_sync(s) != 0) {
        snprintf(err, errlen, "out of memory");
        free_server(s);
        return -1;
    }
    if (load_tls(s, cfg, err, errlen) != 0) {
        free_server(s);
        return -1;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem tls[] = {{MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert},
                                   {MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key},
                                   {MHD_OPTION_END, 0, NULL}};
    if (s->tls_cert)
        flags |= MHD_USE_TLS;
    s->upgrade_ok = MHD_is_feature_supported(MHD_FEATURE_UPGRADE) == MHD_YES;
    if (s->upgrade_ok)
        flags |= MHD_ALLOW_UPGRADE;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, s->tls_cert ? tls : tls + 2,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        s, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CONNECTION_MEMORY, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
        MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
        MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on %s:%d%s: %s", host, cfg->port,
                 s->tls_cert ? " with TLS (is the certificate and key pair valid PEM?)" : "",
                 strerror(errno));
        free_server(s);
        return -1;
    }
    if (pthread_create(&s->reaper, NULL, reaper_main, s) != 0) {
        snprintf(err, errlen, "cannot start a thread: %s", strerror(errno));
        free_server(s);
        return -1;
    }
    s->reaper_running = true;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : cfg->port;
    *out = s;
    return 0;
}

void prism_http_print_routes(FILE *out, const prism_http_route *routes, size_t n)
{
    fprintf(out, "GET /healthz\nGET /metrics\n");
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s %s\n", routes[i].method, routes[i].pattern);
}

int prism_http_server_port(const prism_http_server *s) { return s->port; }

const char *prism_http_server_scheme(const prism_http_server *s)
{
    return s->tls_cert ? "https" : "http";
}

int prism_http_server_publish(const prism_http_server *s, const char *bind_host, const char *file,
                              char *url, size_t urllen, char *err, size_t errlen)
{
    char host[300];
    prism_advertised_host(bind_host ? bind_host : "127.0.0.1", host, sizeof host);
    snprintf(url, urllen, "%s://%s:%d", prism_http_server_scheme(s), host, s->port);
    if (file && *file && prism_write_file_atomic(file, url, strlen(url), 0644) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", file, strerror(errno));
        return -1;
    }
    return 0;
}

void prism_http_server_destroy(prism_http_server *s)
{
    if (s)
        free_server(s);
}
