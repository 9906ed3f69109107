#include "prism_httpc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prism_buf.h"

#define DEFAULT_MAX_RESP (64u << 20)

struct prism_httpc {
    CURL *curl;
    char *base;
    char *auth; /* "Authorization: Bearer ..." or NULL */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

void prism_httpc_global_init(void) { pthread_once(&curl_once, curl_init_once); }

int prism_httpc_create(prism_httpc **out, const char *base_url, const char *token)
{
    prism_httpc_global_init();
    prism_httpc *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    c->curl = curl_easy_init();
    c->base = strdup(base_url);
    size_t n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/')
        c->base[--n] = '\0';
    if (token && *token) {
        size_t len = strlen(token) + 32;
        c->auth = malloc(len);
        if (c->auth)
            snprintf(c->auth, len, "Authorization: Bearer %s", token);
    }
    if (!c->curl || !c->base || (token && *token && !c->auth)) {
        prism_httpc_destroy(c);
        return -1;
    }
    *out = c;
    return 0;
}

void prism_httpc_destroy(prism_httpc *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->base);
    free(c->auth);
    free(c);
}

typedef struct sink_ctx {
    CURL *curl;
    prism_buf *buf;
    int (*fn)(void *, const char *, size_t);
    void *ud;
    int overflow;
    int cut; /* a body past the buffer's limit is cut there, not an error */
} sink_ctx;

static size_t on_data(char *data, size_t size, size_t nmemb, void *userp)
{
    sink_ctx *s = userp;
    size_t n = size * nmemb;
    long status = 0;
    if (s->fn)
        curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    if (s->fn && status >= 200 && status < 300)
        return s->fn(s->ud, data, n) == 0 ? n : 0;
    if (prism_buf_append(s->buf, data, n) != 0) {
        if (s->cut) { /* keep what fits, then end the transfer */
            size_t room = s->buf->max - s->buf->len;
            if (room >= n || prism_buf_append(s->buf, data, room) != 0)
                s->overflow = 1; /* out of memory, not the limit */
            s->cut = 2;
            return 0;
        }
        s->overflow = 1;
        return 0;
    }
    return n;
}

/* A request's URL at most: a path and query that the servers accept
 * (8 KiB), re-encoded by a proxy (each byte as %XX at worst), fit. */
#define URL_MAX (32u << 10)

/* Whether base + path fit URL_MAX; else `err` says so. A URL cut short
 * would still be sent, to a path or with a query that nobody asked for. */
static bool url_fits(const prism_httpc *c, const char *path, char *err, size_t errlen)
{
    if (strlen(c->base) + strlen(path) < URL_MAX)
        return true;
    snprintf(err, errlen, "the request's URL is longer than %u bytes", URL_MAX);
    return false;
}

/* Sets up one transfer on the reused handle. Returns the header list to free. */
static struct curl_slist *prepare(prism_httpc *c, const char *method, const char *path,
                                  const char *content_type, const void *body, size_t len,
                                  int timeout_ms, sink_ctx *sink, char *url, size_t urllen)
{
    CURL *h = c->curl;
    curl_easy_reset(h);
    snprintf(url, urllen, "%s%s", c->base, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    /* 0: none (a log followed); curl would refuse a negative one and keep none */
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms >= 0 ? (long)timeout_ms : 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    /* A cluster with its own CA (docs/security.md#tls): every client trusts it. */
    const char *ca = getenv("PRISM_TLS_CA");
    if (ca && *ca)
        curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    struct curl_slist *headers = NULL;
    if (c->auth)
        headers = curl_slist_append(headers, c->auth);
    if (body || !strcmp(method, "POST") || !strcmp(method, "PUT")) {
        char ct[256];
        snprintf(ct, sizeof ct, "Content-Type: %s",
                 content_type ? content_type : "application/octet-stream");
        headers = curl_slist_append(headers, ct);
        headers = curl_slist_append(headers, "Expect:");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    return headers;
}

static int perform(prism_httpc *c, const char *url, long *status, sink_ctx *sink, char *err,
                   size_t errlen)
{
    CURLcode rc = curl_easy_perform(c->curl);
    *status = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
    if (sink->overflow) {
        snprintf(err, errlen, "response from %s is larger than the limit", url);
        return -1;
    }
    if (rc != CURLE_OK &&
        !(rc == CURLE_WRITE_ERROR && (sink->fn || sink->cut == 2) && !sink->overflow)) {
        snprintf(err, errlen, "%s: %s", url, curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

/* One request into a buffer of at most `max` bytes; `range` (or NULL) asks
 * for bytes 0..range-1, and a longer body is then cut there. */
static int request_into(prism_httpc *c, const char *method, const char *path,
                        const char *content_type, const void *body, size_t len, int timeout_ms,
                        size_t max, size_t range, prism_httpc_resp *out, char *err, size_t errlen)
{
    *out = (prism_httpc_resp){0};
    if (!url_fits(c, path, err, errlen))
        return -1;
    prism_buf buf;
    prism_buf_init(&buf, max);
    sink_ctx sink = {.buf = &buf, .cut = range ? 1 : 0};
    char url[URL_MAX], bytes[64];
    struct curl_slist *headers =
        prepare(c, method, path, content_type, body, len, timeout_ms, &sink, url, sizeof url);
    if (range) {
        snprintf(bytes, sizeof bytes, "0-%zu", range - 1);
        curl_easy_setopt(c->curl, CURLOPT_RANGE, bytes);
    }
    int rc = perform(c, url, &out->status, &sink, err, errlen);
    curl_slist_free_all(headers);
    out->body = prism_buf_take(&buf, &out->len);
    if (rc != 0) {
        prism_httpc_resp_free(out);
        return -1;
    }
    return 0;
}

int prism_httpc_request(prism_httpc *c, const char *method, const char *path,
                        const char *content_type, const void *body, size_t len, int timeout_ms,
                        size_t max_resp, prism_httpc_resp *out, char *err, size_t errlen)
{
    return request_into(c, method, path, content_type, body, len, timeout_ms,
                        max_resp ? max_resp : DEFAULT_MAX_RESP, 0, out, err, errlen);
}

int prism_httpc_get_head(prism_httpc *c, const char *path, size_t n, int timeout_ms,
                         prism_httpc_resp *out, char *err, size_t errlen)
{
    return request_into(c, "GET", path, NULL, NULL, 0, timeout_ms, n ? n : 1, n ? n : 1, out, err,
                        errlen);
}

void prism_httpc_resp_free(prism_httpc_resp *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

int prism_httpc_json(prism_httpc *c, const char *method, const char *path, json_t *body,
                     int timeout_ms, long *status, json_t **out, char *err, size_t errlen)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    prism_httpc_resp resp;
    int rc = prism_httpc_request(c, method, path, "application/json", text, text ? strlen(text) : 0,
                                 timeout_ms, 0, &resp, err, errlen);
    free(text);
    *out = NULL;
    if (rc != 0)
        return -1;
    *status = resp.status;
    if (resp.len)
        *out = json_loadb(resp.body, resp.len, 0, NULL);
    prism_httpc_resp_free(&resp);
    return 0;
}

int prism_httpc_stream(prism_httpc *c, const char *method, const char *path, int timeout_ms,
                       int (*sink_fn)(void *ud, const char *data, size_t len), void *ud,
                       long *status, char *err, size_t errlen)
{
    *status = 0;
    if (!url_fits(c, path, err, errlen))
        return -1;
    prism_buf errbody; /* a non-2xx answer is kept for its message, not streamed */
    prism_buf_init(&errbody, 64u << 10);
    sink_ctx sink = {.curl = c->curl, .buf = &errbody, .fn = sink_fn, .ud = ud};
    char url[URL_MAX];
    struct curl_slist *headers =
        prepare(c, method, path, NULL, NULL, 0, timeout_ms, &sink, url, sizeof url);
    int rc = perform(c, url, status, &sink, err, errlen);
    curl_slist_free_all(headers);
    if (rc == 0 && (*status < 200 || *status >= 300)) {
        json_t *doc = errbody.len ? json_loadb(errbody.data, errbody.len, 0, NULL) : NULL;
        char fallback[64];
        snprintf(fallback, sizeof fallback, "the server answered HTTP %ld", *status);
        snprintf(err, errlen, "%s", prism_httpc_error_message(doc, fallback));
        json_decref(doc);
    }
    prism_buf_free(&errbody);
    return rc;
}

const char *prism_httpc_error_message(json_t *doc, const char *fallback)
{
    const char *msg = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
    return msg ? msg : fallback;
}

/* ---------- kept connections ---------- */

#define POOL_MAX 64

struct prism_httpc_pool {
    pthread_mutex_t lock; /* a leaf */
    int max_idle, nidle;
    prism_httpc *idle[POOL_MAX]; /* oldest first */
};

/* True when `c` was made for `base_url` (trailing slashes aside) and `token`. */
static bool bound_to(const prism_httpc *c, const char *base_url, const char *token)
{
    size_t n = strlen(base_url);
    while (n > 0 && base_url[n - 1] == '/')
        n--;
    if (strlen(c->base) != n || strncmp(c->base, base_url, n) != 0)
        return false;
    if (!token || !*token)
        return !c->auth;
    static const char bearer[] = "Authorization: Bearer ";
    return c->auth && !strcmp(c->auth + sizeof bearer - 1, token);
}

prism_httpc_pool *prism_httpc_pool_create(int max_idle)
{
    if (max_idle < 1 || max_idle > POOL_MAX)
        return NULL;
    prism_httpc_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->lock, NULL);
    p->max_idle = max_idle;
    return p;
}

void prism_httpc_pool_destroy(prism_httpc_pool *p)
{
    if (!p)
        return;
    while (p->nidle > 0)
        prism_httpc_destroy(p->idle[--p->nidle]);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

prism_httpc *prism_httpc_pool_take(prism_httpc_pool *p, const char *base_url, const char *token)
{
    prism_httpc *c = NULL;
    pthread_mutex_lock(&p->lock);
    for (int i = p->nidle - 1; i >= 0 && !c; i--)
        if (bound_to(p->idle[i], base_url, token)) {
            c = p->idle[i];
            memmove(&p->idle[i], &p->idle[i + 1], (size_t)(p->nidle - i - 1) * sizeof c);
            p->nidle--;
        }
    pthread_mutex_unlock(&p->lock);
    if (!c && prism_httpc_create(&c, base_url, token) != 0)
        c = NULL;
    return c;
}

void prism_httpc_pool_give(prism_httpc_pool *p, prism_httpc *c, bool ok)
{
    if (!c)
        return;
    prism_httpc *drop[POOL_MAX + 1];
    int ndrop = 0;
    pthread_mutex_lock(&p->lock);
    if (!ok) {
        int kept = 0;
        for (int i = 0; i < p->nidle; i++) {
            if (!strcmp(p->idle[i]->base, c->base))
                drop[ndrop++] = p->idle[i];
            else
                p->idle[kept++] = p->idle[i];
        }
        p->nidle = kept;
        drop[ndrop++] = c;
    } else {
        if (p->nidle == p->max_idle) {
            drop[ndrop++] = p->idle[0];
            memmove(&p->idle[0], &p->idle[1], (size_t)(p->nidle - 1) * sizeof c);
            p->nidle--;
        }
        p->idle[p->nidle++] = c;
    }
    pthread_mutex_unlock(&p->lock);
    /* closed outside the lock: a TLS close may write to the socket */
    for (int i = 0; i < ndrop; i++)
        prism_httpc_destroy(drop[i]);
}
