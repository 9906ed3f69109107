/* The HTTP server every Prism service uses for its REST API.
 *
 * A service describes its API as a table of routes (method + path pattern →
 * handler). The server adds what every endpoint owes: bearer-token auth on
 * every path but /healthz and the routes marked PRISM_HTTP_PUBLIC, request
 * bodies read into buffers capped per route, one JSON error envelope
 *
 *   {"error": {"code": "not_found", "message": "no job 'abc'"}}
 *
 * with stable codes, GET /healthz and GET /metrics (Prometheus text), and a
 * request counter per route and status.
 *
 * Each connection is served on its own thread, so a handler may block (a
 * streamed log that follows a running job does). Handlers of one server run
 * concurrently: guard shared state.
 *
 * HEAD is served wherever GET is (the GET handler runs; the body is not
 * sent). Path and query must be UTF-8 without NUL (%00), so that handlers can
 * put them in JSON; anything else is answered 400 before routing. Errors the
 * HTTP parser itself finds (a header too large, a malformed Content-Length...)
 * get the JSON envelope too, but for one case: see docs/api.md.
 *
 * A handler answers by calling exactly one prism_http_reply* function on the
 * request. The request and everything read from it stay valid until the
 * handler returns. */
#ifndef PRISM_HTTP_H
#define PRISM_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "prism_metrics.h"

typedef struct prism_http_server prism_http_server;
typedef struct prism_http_req prism_http_req;

typedef void (*prism_http_handler)(prism_http_req *req, void *ctx);

typedef struct prism_http_route {
    const char *method;  /* "GET", "POST", "PUT", "DELETE" */
    const char *pattern; /* "/api/v1/jobs/{id}/logs": {name} matches one path segment */
    prism_http_handler handler;
    size_t max_body; /* request body cap in bytes; 0 means the server default;
                        may carry PRISM_HTTP_PUBLIC */
} prism_http_route;

/* OR'd into a GET route's max_body: the route is served without the token
 * (a flag in an existing field, so that every route table keeps its four
 * members). Only for static, public content, such as the dashboard's files;
 * the server ignores it on other methods. Without the token, a path that no
 * public route matches is still answered 401 before anything else, so the
 * other routes cannot be probed. */
#define PRISM_HTTP_PUBLIC ((size_t)1 << (sizeof(size_t) * 8 - 1))

typedef struct prism_http_config {
    const char *host;               /* address to bind; "127.0.0.1" when NULL */
    int port;                       /* 0 picks a free port: read it with prism_http_server_port */
    const char *token;              /* bearer token required on every path but /healthz and
                                       PRISM_HTTP_PUBLIC routes; NULL or "" turns auth off
                                       (services only allow that when told to) */
    const prism_http_route *routes; /* borrowed: must outlive the server */
    size_t nroutes;
    void *ctx;               /* handed to every handler */
    size_t default_max_body; /* 0 means 1 MiB */
    prism_metrics *metrics;  /* borrowed; rendered at /metrics; may be NULL */
    const char *name;        /* service name reported by /healthz */
    /* A connection must deliver a request's complete headers within this long
     * of being accepted or of its previous response (trickling bytes does not
     * extend it). 0 means 5000. */
    int header_timeout_ms;
    /* Connections served at once; 0 means 2048 (fewer when the process may not
     * open that many files). When half of them wait for headers, accepting
     * one more closes the one that has waited longest. */
    unsigned max_connections;
    /* PEM files of the certificate (chain) and the private key: the server
     * speaks HTTPS when both are set. NULL means PRISM_TLS_CERT and
     * PRISM_TLS_KEY from the environment (docs/security.md#tls). */
    const char *tls_cert, *tls_key;
} prism_http_config;

/* Starts serving in background threads. Raises the process's soft limit on
 * open files when the connection limit needs it (and the hard limit allows).
 * Returns 0, or -1 with `err` filled. */
int prism_http_server_create(prism_http_server **out, const prism_http_config *cfg, char *err,
                             size_t errlen);
/* The bound port (useful after binding port 0). */
int prism_http_server_port(const prism_http_server *s);
/* "https" when the server speaks TLS, else "http". */
const char *prism_http_server_scheme(const prism_http_server *s);
/* Writes the server's URL ("http://host:port", as others reach it: see
 * prism_advertised_host) into `url`, and into `file` when `file` is set
 * (atomically: readers see all of it or nothing). Returns 0, or -1 with `err`. */
int prism_http_server_publish(const prism_http_server *s, const char *bind_host, const char *file,
                              char *url, size_t urllen, char *err, size_t errlen);
/* Stops accepting, ends streamed responses and WebSockets (a close frame of
 * code 1001), waits for running handlers and WebSocket threads. NULL is a no-op. */
void prism_http_server_destroy(prism_http_server *s);

/* Writes "METHOD PATTERN" per line for every route, the built-in /healthz and
 * /metrics included: services print it for `--print-routes`, which the API
 * contract test compares with the OpenAPI spec. */
void prism_http_print_routes(FILE *out, const prism_http_route *routes, size_t n);

/* --- reading a request --- */
const char *prism_http_method(const prism_http_req *req);
const char *prism_http_path(const prism_http_req *req);
/* The value of a {name} segment of the route pattern, or NULL. */
const char *prism_http_param(const prism_http_req *req, const char *name);
/* A query-string argument, or NULL. */
const char *prism_http_query(const prism_http_req *req, const char *name);
/* A request header (case-insensitive name), or NULL. */
const char *prism_http_header(const prism_http_req *req, const char *name);
/* The whole query string as received, re-encoded ("a=1&b=x%20y"; "" when
 * none), for handlers that forward a request. The caller frees; NULL when
 * out of memory. */
char *prism_http_query_string(const prism_http_req *req);
/* The path re-encoded ("/a%20b/c": each byte but the unreserved ones and
 * '/' as %XX), for handlers that forward a request. The caller frees; NULL
 * when out of memory. */
char *prism_http_path_encoded(const prism_http_req *req);
/* True once the server is stopping: a handler that waits (for a state to
 * change) should answer now, since stopping waits for running handlers. */
bool prism_http_stopping(const prism_http_req *req);
/* The request body (NUL-terminated; `len_out` may be NULL). Never NULL. */
const char *prism_http_body(const prism_http_req *req, size_t *len_out);

/* --- helpers that reply 400 themselves and return NULL / -1 on bad input --- */
/* The body parsed as a JSON object. The caller owns the result. */
json_t *prism_http_body_json(prism_http_req *req);
/* A string member; absent is an error only when `required`; `*out` stays
 * untouched when absent. Returns 0 or -1 (already replied). */
int prism_http_field_string(prism_http_req *req, json_t *obj, const char *key, bool required,
                            const char **out);
/* A member that must be a JSON object when present (`*out` NULL when absent). */
int prism_http_field_object(prism_http_req *req, json_t *obj, const char *key, json_t **out);
/* A non-negative number member. */
int prism_http_field_number(prism_http_req *req, json_t *obj, const char *key, double *out);
/* A query integer within [min, max], `def` when absent. */
int prism_http_query_int(prism_http_req *req, const char *name, int64_t def, int64_t min,
                         int64_t max, int64_t *out);
/* A query boolean ("true", "1", "false", "0"), `def` when absent. */
int prism_http_query_bool(prism_http_req *req, const char *name, bool def, bool *out);

/* --- answering --- */
/* Copies `body`. */
void prism_http_reply(prism_http_req *req, int status, const char *content_type, const void *body,
                      size_t len);
/* Does not copy `body`, which outlives the server (a file compiled in):
 * many clients reading a large page hold no copy of it each. */
void prism_http_reply_static(prism_http_req *req, int status, const char *content_type,
                             const void *body, size_t len);
/* Takes the reference to `doc`. */
void prism_http_reply_json(prism_http_req *req, int status, json_t *doc);
/* The error envelope; `code` is a stable machine-readable word. */
void prism_http_reply_error(prism_http_req *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Sends `len` bytes of the open file `fd` from `offset`; the server closes `fd`. */
void prism_http_reply_fd(prism_http_req *req, int status, const char *content_type, int fd,
                         uint64_t offset, uint64_t len);

/* A streamed (chunked) response. `read` is called repeatedly on the
 * connection's thread: it copies up to `max` bytes into `buf` and returns
 * their count, or 0 when nothing is ready yet (it is called again shortly),
 * or PRISM_HTTP_STREAM_END, or PRISM_HTTP_STREAM_ERROR. The stream also ends
 * when the server stops or the client goes away. `done(ud)` is called once at
 * the end, whatever happened. */
#define PRISM_HTTP_STREAM_END (-1)
#define PRISM_HTTP_STREAM_ERROR (-2)
typedef ssize_t (*prism_http_stream_read)(void *ud, char *buf, size_t max);
void prism_http_reply_stream(prism_http_req *req, int status, const char *content_type,
                             prism_http_stream_read read, void (*done)(void *ud), void *ud);

/* The same stream over a WebSocket (RFC 6455), for clients that follow a
 * log that way (Ray's job clients). Checks the handshake: a GET over
 * HTTP/1.1 with `Upgrade: websocket`, `Connection` naming `upgrade`,
 * `Sec-WebSocket-Version: 13` and a `Sec-WebSocket-Key` that is the base64
 * of 16 bytes. Without the Upgrade header, or with another version, the
 * answer is 426 `upgrade_required` (with `Upgrade: websocket`, or
 * `Sec-WebSocket-Version: 13`); any other fault is 400 `bad_handshake`. A
 * good handshake is answered 101, and a thread of the server's own then
 * calls `read` as the streamed responses do (polling every 200 ms while it
 * returns 0) and sends each chunk as one text message; bytes that are not
 * UTF-8 become '?' (a sequence cut by a chunk's end goes with the next
 * chunk), so every text frame is valid. It answers pings, ends with a close
 * frame of code 1000 at PRISM_HTTP_STREAM_END (1011 at
 * PRISM_HTTP_STREAM_ERROR, 1001 when the server stops, 1002 or 1009 when
 * the client breaks the protocol) and when the client closes or goes away.
 * Messages the client sends are read and dropped. `done(ud)` is called once,
 * whatever happened (on a refused handshake before this returns). The route
 * keeps the server's bearer-token check, made before any handler runs. */
void prism_http_reply_websocket(prism_http_req *req, prism_http_stream_read read,
                                void (*done)(void *ud), void *ud);

/* Adds a response header (call before a reply function). Both strings are copied. */
void prism_http_add_header(prism_http_req *req, const char *name, const char *value);

#endif
