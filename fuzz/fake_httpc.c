/* The HTTP client double: every request fails as if nothing listened, so
 * that URLs taken from fuzzed messages (a node's address, a store's URL)
 * reach no real server. */
#include <stdio.h>
#include <stdlib.h>

#include "prism_httpc.h"

struct prism_httpc {
    int unused;
};

void prism_httpc_global_init(void) {}

int prism_httpc_create(prism_httpc **out, const char *base_url, const char *token)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : -1;
}

void prism_httpc_destroy(prism_httpc *c) { free(c); }

int prism_httpc_request(prism_httpc *c, const char *method, const char *path,
                        const char *content_type, const void *body, size_t len, int timeout_ms,
                        size_t max_resp, prism_httpc_resp *out, char *err, size_t errlen)
{
    *out = (prism_httpc_resp){0};
    snprintf(err, errlen, "connection refused");
    return -1;
}

int prism_httpc_get_head(prism_httpc *c, const char *path, size_t n, int timeout_ms,
                         prism_httpc_resp *out, char *err, size_t errlen)
{
    return prism_httpc_request(c, "GET", path, NULL, NULL, 0, timeout_ms, n, out, err, errlen);
}

void prism_httpc_resp_free(prism_httpc_resp *r)
{
    free(r->body);
    *r = (prism_httpc_resp){0};
}

int prism_httpc_json(prism_httpc *c, const char *method, const char *path, json_t *body,
                     int timeout_ms, long *status, json_t **out, char *err, size_t errlen)
{
    *status = 0;
    *out = NULL;
    snprintf(err, errlen, "connection refused");
    return -1;
}

int prism_httpc_stream(prism_httpc *c, const char *method, const char *path, int timeout_ms,
                       int (*sink)(void *ud, const char *data, size_t len), void *ud, long *status,
                       char *err, size_t errlen)
{
    *status = 0;
    snprintf(err, errlen, "connection refused");
    return -1;
}

const char *prism_httpc_error_message(json_t *doc, const char *fallback)
{
    const char *msg = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
    return msg ? msg : fallback;
}

/* Kept connections: none are kept, every client taken is new. */
struct prism_httpc_pool {
    int unused;
};

prism_httpc_pool *prism_httpc_pool_create(int max_idle)
{
    return max_idle >= 1 && max_idle <= 64 ? calloc(1, sizeof(prism_httpc_pool)) : NULL;
}

void prism_httpc_pool_destroy(prism_httpc_pool *p) { free(p); }

prism_httpc *prism_httpc_pool_take(prism_httpc_pool *p, const char *base_url, const char *token)
{
    prism_httpc *c = NULL;
    return prism_httpc_create(&c, base_url, token) == 0 ? c : NULL;
}

void prism_httpc_pool_give(prism_httpc_pool *p, prism_httpc *c, bool ok) { free(c); }
