#include "prism_http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "prism_buf.h"
#include "prism_fs.h"
#include "prism_log.h"
#include "prism_net.h"
#include "prism_time.h"

#define MAX_PARAMS 8
#define MAX_SEGMENTS 16
#define DEFAULT_MAX_BODY (1u << 20)
#define MAX_EXTRA_HEADERS 8
/* An oversized body is read and dropped up to this much, so that clients that
 * send the whole body before reading (most do) still see the 413; past it the
 * connection is cut. */
#define DRAIN_LIMIT (64u << 20)

struct prism_http_server {
    struct MHD_Daemon *daemon;
    prism_http_config cfg;
    char *token;
    char *name;
    atomic_bool stopping;
    int port;
};

struct prism_http_req {
    prism_http_server *srv;
    struct MHD_Connection *conn;
    const prism_http_route *route;
    const char *method;
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

/* Finds the route for method+path. Sets *path_known when some route has the path. */
static const prism_http_route *find_route(prism_http_req *req, bool *path_known)
{
    const prism_http_config *cfg = &req->srv->cfg;
    *path_known = false;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const prism_http_route *r = &cfg->routes[i];
        if (!match_route(req, r->pattern, req->path))
            continue;
        if (strcmp(r->method, req->method) == 0)
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

void prism_http_reply_json(prism_http_req *req, int status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text) {
        prism_http_reply(req, 500, "application/json",
                         "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}", 56);
        return;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (resp)
        set_response(req, status, resp, "application/json");
    else
        free(text);
}

void prism_http_reply_error(prism_http_req *req, int status, const char *code, const char *fmt,
                            ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    prism_http_reply_json(req, status,
                          json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
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
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_reader, s, stream_free);
    if (!resp) {
        stream_free(s);
        prism_http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    set_response(req, status, resp, content_type);
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

json_t *prism_http_body_json(prism_http_req *req)
{
    if (req->body.len == 0) {
        prism_http_reply_error(req, 400, "invalid_json", "a JSON object body is required");
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(req->body.data, req->body.len, 0, &jerr);
    if (!doc) {
        prism_http_reply_error(req, 400, "invalid_json", "malformed JSON at line %d column %d: %s",
                               jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        prism_http_reply_error(req, 400, "invalid_json", "the body must be a JSON object");
        return NULL;
    }
    return doc;
}

int prism_http_field_string(prism_http_req *req, json_t *obj, const char *key, bool required,
                            const char **out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (!required)
            return 0;
        prism_http_reply_error(req, 400, "invalid_argument", "field '%s' is required", key);
        return -1;
    }
    if (!json_is_string(v)) {
        prism_http_reply_error(req, 400, "invalid_argument", "field '%s' must be a string", key);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

int prism_http_field_object(prism_http_req *req, json_t *obj, const char *key, json_t **out)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v)) {
        prism_http_reply_error(req, 400, "invalid_argument", "field '%s' must be an object", key);
        return -1;
    }
    *out = v;
    return 0;
}

int prism_http_field_number(prism_http_req *req, json_t *obj, const char *key, double *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v) || json_number_value(v) < 0) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "field '%s' must be a non-negative number", key);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

int prism_http_query_int(prism_http_req *req, const char *name, int64_t def, int64_t min,
                         int64_t max, int64_t *out)
{
    const char *text = prism_http_query(req, name);
    if (!text) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end || errno || v < min || v > max) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "query '%s' must be an integer from %lld to %lld", name,
                               (long long)min, (long long)max);
        return -1;
    }
    *out = v;
    return 0;
}

int prism_http_query_bool(prism_http_req *req, const char *name, bool def, bool *out)
{
    const char *text = prism_http_query(req, name);
    if (!text) {
        *out = def;
    } else if (!strcasecmp(text, "true") || !strcmp(text, "1")) {
        *out = true;
    } else if (!strcasecmp(text, "false") || !strcmp(text, "0")) {
        *out = false;
    } else {
        prism_http_reply_error(req, 400, "invalid_argument", "query '%s' must be true or false",
                               name);
        return -1;
    }
    return 0;
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
        if (len < n)
            len += (size_t)snprintf(out + len, n - len, "%s%s", len ? ", " : "", cfg->routes[i].method);
    }
}

static void reply_too_large(prism_http_req *req)
{
    prism_http_reply_error(req, 413, "body_too_large", "request body is over the %zu byte limit",
                           req->max_body);
}

/* Decides before the body is read: built-ins, auth, routing, body limits.
 * Returns true when a response was already set. */
static bool on_headers(prism_http_req *req)
{
    if (!strcmp(req->path, "/healthz") && !strcmp(req->method, "GET")) {
        json_t *doc = json_pack("{s:s,s:s}", "status", "ok", "service",
                                req->srv->name ? req->srv->name : "prism");
        prism_http_reply_json(req, 200, doc);
        return true;
    }
    if (!token_ok(req)) {
        prism_http_add_header(req, "WWW-Authenticate", "Bearer");
        prism_http_reply_error(req, 401, "unauthorized",
                               "missing or wrong bearer token (Authorization: Bearer TOKEN)");
        return true;
    }
    if (!strcmp(req->path, "/metrics") && !strcmp(req->method, "GET")) {
        serve_metrics(req);
        return true;
    }
    bool path_known;
    req->route = find_route(req, &path_known);
    if (!req->route) {
        if (path_known) {
            char allow[128];
            allowed_methods(req, allow, sizeof allow);
            prism_http_add_header(req, "Allow", allow);
            prism_http_reply_error(req, 405, "method_not_allowed", "%s is not allowed on %s",
                                   req->method, req->path);
        }
        else {
            prism_http_reply_error(req, 404, "not_found", "no route %s %s", req->method, req->path);
        }
        return true;
    }
    req->max_body = req->route->max_body ? req->route->max_body
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
    prism_metric_add(prism_metrics_counter(m, "prism_http_requests_total", "HTTP requests served",
                                           labels),
                     1);
}

static enum MHD_Result send_response(prism_http_req *req)
{
    if (!req->response)
        prism_http_reply_error(req, 500, "internal", "the handler gave no response");
    count_request(req);
    int64_t us = (prism_mono_ns() - req->started_ns) / 1000;
    if (req->status >= 500)
        LOG_WARN("%s %s -> %d (%lld us)", req->method, req->path, req->status, (long long)us);
    else
        LOG_DEBUG("%s %s -> %d (%lld us)", req->method, req->path, req->status, (long long)us);
    return MHD_queue_response(req->conn, (unsigned)req->status, req->response);
}

static char *normalize_path(const char *url)
{
    char *path = strdup(url);
    size_t n = strlen(path);
    /* "/api/jobs/" and "/api/jobs" name the same resource. */
    while (n > 1 && path[n - 1] == '/')
        path[--n] = '\0';
    return path;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    prism_http_server *srv = cls;
    prism_http_req *req = *con_cls;
    if (!req) {
        req = calloc(1, sizeof *req);
        if (!req)
            return MHD_NO;
        req->srv = srv;
        req->conn = conn;
        req->method = method;
        req->path = normalize_path(url);
        req->started_ns = prism_mono_ns();
        *con_cls = req;
        if (on_headers(req))
            return send_response(req);
        return MHD_YES;
    }
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
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
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
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                                 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
                                 MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
                                 MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, cfg->port, strerror(errno));
        free(s->token);
        free(s->name);
        free(s);
        return -1;
    }
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

int prism_http_server_publish(const prism_http_server *s, const char *bind_host, const char *file,
                              char *url, size_t urllen, char *err, size_t errlen)
{
    char host[300];
    prism_advertised_host(bind_host ? bind_host : "127.0.0.1", host, sizeof host);
    snprintf(url, urllen, "http://%s:%d", host, s->port);
    if (file && *file && prism_write_file_atomic(file, url, strlen(url), 0644) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", file, strerror(errno));
        return -1;
    }
    return 0;
}

void prism_http_server_destroy(prism_http_server *s)
{
    if (!s)
        return;
    atomic_store(&s->stopping, true);
    MHD_stop_daemon(s->daemon);
    free(s->token);
    free(s->name);
    free(s);
}
