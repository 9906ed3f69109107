/* HTTP client on libcurl, for the CLI and for service-to-service calls.
 *
 * A client is bound to a base URL ("http://127.0.0.1:8265") and a bearer
 * token, and reuses its connection between requests. One client must not be
 * used by two threads at once: give each thread its own. */
#ifndef PRISM_HTTPC_H
#define PRISM_HTTPC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct prism_httpc prism_httpc;

typedef struct prism_httpc_resp {
    long status; /* HTTP status; 0 when no response came */
    char *body;  /* NUL-terminated, owned; free with prism_httpc_resp_free */
    size_t len;
} prism_httpc_resp;

/* Initializes libcurl (and the TLS library under it) once. A service calls it
 * from its main thread before starting others: libcurl's global init is not
 * thread-safe, and TLS state made on a short-lived callback thread shows up
 * as a leak at exit. prism_httpc_create calls it too, for programs that did not. */
void prism_httpc_global_init(void);

/* `token` may be NULL or "" for no Authorization header. Both strings are copied. */
int prism_httpc_create(prism_httpc **out, const char *base_url, const char *token);
void prism_httpc_destroy(prism_httpc *c);

/* One request. `path` is appended to the base URL and may carry a query.
 * The response body is capped at `max_resp` bytes (0: 64 MiB). Returns 0 when
 * a response arrived (any status), -1 on a transport error with `err` filled. */
int prism_httpc_request(prism_httpc *c, const char *method, const char *path,
                        const char *content_type, const void *body, size_t len, int timeout_ms,
                        size_t max_resp, prism_httpc_resp *out, char *err, size_t errlen);
void prism_httpc_resp_free(prism_httpc_resp *r);

/* At most the first `n` bytes of GET `path` (a Range request; from a server
 * that ignores ranges, the body is cut at `n`). Returns as prism_httpc_request. */
int prism_httpc_get_head(prism_httpc *c, const char *path, size_t n, int timeout_ms,
                         prism_httpc_resp *out, char *err, size_t errlen);

/* A JSON request: `body` is borrowed and may be NULL. On a response, `*status`
 * is set and `*out` receives the parsed body (NULL when it was not JSON).
 * Returns 0, or -1 on a transport error. */
int prism_httpc_json(prism_httpc *c, const char *method, const char *path, json_t *body,
                     int timeout_ms, long *status, json_t **out, char *err, size_t errlen);

/* Streams a response body to `sink(ud, data, len)` as it arrives (for
 * following logs). Only a 2xx body reaches `sink`, which returns 0 to go on or
 * -1 to stop. Any other status sets `*status`, puts the server's error message
 * (or the status) in `err` and returns 0 without calling `sink`. `timeout_ms`
 * of 0 means no overall limit. Returns 0 when the transfer ended, -1 on a
 * transport error. */
int prism_httpc_stream(prism_httpc *c, const char *method, const char *path, int timeout_ms,
                       int (*sink)(void *ud, const char *data, size_t len), void *ud, long *status,
                       char *err, size_t errlen);

/* Message of an error envelope in `doc`, or `fallback`. */
const char *prism_httpc_error_message(json_t *doc, const char *fallback);

/* Kept connections, for a process that makes many short requests to a few
 * servers: a new connection per request costs the server a thread and a
 * connection buffer, and both sides a handshake. A pool is safe to share
 * between threads; a client taken from it is the taker's alone until given
 * back. */
typedef struct prism_httpc_pool prism_httpc_pool;

/* A pool keeping at most `max_idle` idle clients (1-64). NULL when out of
 * memory. */
prism_httpc_pool *prism_httpc_pool_create(int max_idle);
/* Closes the idle clients. Every client taken must have been given back
 * (or destroyed) first. */
void prism_httpc_pool_destroy(prism_httpc_pool *p);
/* An idle client for `base_url` and `token` (the one given back last), or a
 * new one. NULL when out of memory. */
prism_httpc *prism_httpc_pool_take(prism_httpc_pool *p, const char *base_url, const char *token);
/* Gives `c` back: kept when `ok` (its last request got an answer) and there
 * is room (the oldest idle client makes room), else closed. A transport
 * error also closes every idle client of the same base URL: the server may
 * have moved or died. */
void prism_httpc_pool_give(prism_httpc_pool *p, prism_httpc *c, bool ok);

#endif
