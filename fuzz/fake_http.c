/* The HTTP double: the request-reading and reply functions of prism_http.h
 * over a plain struct, and a dispatcher that matches routes as the real
 * server does ({name} matches one path segment). The helpers that parse
 * bodies and query arguments are the real ones (libs/http/prism_http_fields.c). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "fake.h"
#include "prism_error.h"
#include "prism_http.h"

#define MAX_PARAMS 8
#define MAX_SEGMENTS 16
#define MAX_ARGS 16

struct prism_http_server {
    prism_http_config cfg;
};

struct prism_http_req {
    const char *method, *path;
    const char *param_names[MAX_PARAMS];
    size_t param_lens[MAX_PARAMS];
    char *param_values[MAX_PARAMS];
    int nparams;
    char *query_names[MAX_ARGS], *query_values[MAX_ARGS];
    int nquery;
    const char *headers;
    char *header_values[MAX_ARGS]; /* prism_http_header's answers, valid until the end */
    int nheader_values;
    const char *body;
    size_t len;
    int replies, status;
};

static prism_http_server *last_server;

/* ---------- server ---------- */

int prism_http_server_create(prism_http_server **out, const prism_http_config *cfg, char *err,
                             size_t errlen)
{
    prism_http_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->cfg = *cfg;
    last_server = s;
    *out = s;
    return 0;
}

int prism_http_server_port(const prism_http_server *s) { return 1; }

const char *prism_http_server_scheme(const prism_http_server *s) { return "http"; }

int prism_http_server_publish(const prism_http_server *s, const char *bind_host, const char *file,
                              char *url, size_t urllen, char *err, size_t errlen)
{
    snprintf(url, urllen, "http://127.0.0.1:1");
    return 0;
}

void prism_http_server_destroy(prism_http_server *s)
{
    if (s == last_server)
        last_server = NULL;
    free(s);
}

void prism_http_print_routes(FILE *out, const prism_http_route *routes, size_t n) {}

/* ---------- replies ---------- */

static void answered(prism_http_req *req, int status)
{
    if (req->replies++ == 0)
        req->status = status;
}

void prism_http_reply(prism_http_req *req, int status, const char *content_type, const void *body,
                      size_t len)
{
    answered(req, status);
}

void prism_http_reply_static(prism_http_req *req, int status, const char *content_type,
                             const void *body, size_t len)
{
    answered(req, status);
}

void prism_http_reply_json(prism_http_req *req, int status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    free(text);
    answered(req, status);
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
    close(fd);
    answered(req, status);
}

/* Reads the stream to its end now, as a client that reads everything would. */
void prism_http_reply_stream(prism_http_req *req, int status, const char *content_type,
                             prism_http_stream_read read, void (*done)(void *ud), void *ud)
{
    char buf[64 * 1024];
    for (int idle = 0; idle < 3;) {
        ssize_t n = read(ud, buf, sizeof buf);
        if (n < 0)
            break;
        idle = n == 0 ? idle + 1 : 0;
    }
    if (done)
        done(ud);
    answered(req, status);
}

/* The handshake is the server's (libs/http); the stream is read as above. */
void prism_http_reply_websocket(prism_http_req *req, prism_http_stream_read read,
                                void (*done)(void *ud), void *ud)
{
    prism_http_reply_stream(req, 101, NULL, read, done, ud);
}

void prism_http_add_header(prism_http_req *req, const char *name, const char *value) {}

/* ---------- reading a request ---------- */

const char *prism_http_method(const prism_http_req *req) { return req->method; }
const char *prism_http_path(const prism_http_req *req) { return req->path; }

char *prism_http_path_encoded(const prism_http_req *req) { return strdup(req->path); }

const char *prism_http_param(const prism_http_req *req, const char *name)
{
    size_t len = strlen(name);
    for (int i = 0; i < req->nparams; i++)
        if (req->param_lens[i] == len && !strncmp(req->param_names[i], name, len))
            return req->param_values[i];
    return NULL;
}

const char *prism_http_query(const prism_http_req *req, const char *name)
{
    for (int i = 0; i < req->nquery; i++)
        if (!strcmp(req->query_names[i], name))
            return req->query_values[i];
    return NULL;
}

char *prism_http_query_string(const prism_http_req *req)
{
    size_t n = 1;
    for (int i = 0; i < req->nquery; i++)
        n += strlen(req->query_names[i]) + strlen(req->query_values[i]) + 2;
    char *out = malloc(n);
    if (!out)
        return NULL;
    out[0] = '\0';
    for (int i = 0; i < req->nquery; i++) /* as received: the fuzzer writes the bytes */
        snprintf(out + strlen(out), n - strlen(out), "%s%s=%s", i ? "&" : "", req->query_names[i],
                 req->query_values[i]);
    return out;
}

bool prism_http_stopping(const prism_http_req *req) { return false; }

const char *prism_http_header(const prism_http_req *req, const char *name)
{
    prism_http_req *r = (prism_http_req *)req;
    size_t n = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        size_t len = strcspn(line, "\n");
        if (len > n && line[n] == ':' && !strncasecmp(line, name, n)) {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            if (r->nheader_values == MAX_ARGS)
                return NULL;
            char *value = strndup(v, len - (size_t)(v - line));
            r->header_values[r->nheader_values++] = value;
            return value;
        }
        line += len + (line[len] == '\n');
    }
    return NULL;
}

const char *prism_http_body(const prism_http_req *req, size_t *len_out)
{
    if (len_out)
        *len_out = req->len;
    return req->body;
}

/* ---------- dispatch ---------- */

static int split(char *path, char **segs)
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

static void clear_params(prism_http_req *req)
{
    for (int i = 0; i < req->nparams; i++)
        free(req->param_values[i]);
    req->nparams = 0;
}

/* Whether `path` matches `pattern`; fills the request's parameters when it does. */
static bool match(prism_http_req *req, const char *pattern, const char *path)
{
    char pbuf[512], qbuf[2048], *ps[MAX_SEGMENTS], *qs[MAX_SEGMENTS];
    if (strlen(pattern) >= sizeof pbuf || strlen(path) >= sizeof qbuf)
        return false;
    strcpy(pbuf, pattern);
    strcpy(qbuf, path);
    int np = split(pbuf, ps), nq = split(qbuf, qs);
    if (np < 0 || np != nq)
        return false;
    for (int i = 0; i < np; i++)
        if (ps[i][0] != '{' && strcmp(ps[i], qs[i]) != 0)
            return false;
    const char *pp = pattern;
    for (int i = 0; i < np && req->nparams < MAX_PARAMS; i++) {
        if (ps[i][0] != '{')
            continue;
        size_t len = strlen(ps[i]);
        const char *name = strstr(pp, ps[i]);
        req->param_names[req->nparams] = name + 1;
        req->param_lens[req->nparams] = len - 2;
        req->param_values[req->nparams++] = strdup(qs[i]);
        pp = name + len;
    }
    return true;
}

/* "a=1&b=x" into the request (no %-decoding: the fuzzer writes the bytes). */
static void parse_query(prism_http_req *req, char *q)
{
    char *save = NULL;
    for (char *kv = strtok_r(q, "&", &save); kv && req->nquery < MAX_ARGS;
         kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (eq)
            *eq = '\0';
        req->query_names[req->nquery] = kv;
        req->query_values[req->nquery++] = eq ? eq + 1 : "";
    }
}

int fuzz_http_dispatch(const char *method, const char *target, const char *headers,
                       const void *body, size_t len)
{
    if (!last_server)
        return 0;
    char *copy = strdup(target);
    if (!copy)
        return 0;
    /* The body is NUL-terminated as the real server's is. */
    char *b = malloc(len + 1);
    if (!b) {
        free(copy);
        return 0;
    }
    if (len)
        memcpy(b, body, len);
    b[len] = '\0';
    prism_http_req req = {
        .method = method, .path = copy, .headers = headers, .body = b, .len = len};
    char *q = strchr(copy, '?');
    if (q) {
        *q++ = '\0';
        parse_query(&req, q);
    }
    const prism_http_config *cfg = &last_server->cfg;
    const prism_http_route *route = NULL;
    bool path_known = false;
    for (size_t i = 0; i < cfg->nroutes && !route; i++) {
        if (!match(&req, cfg->routes[i].pattern, copy))
            continue;
        if (!strcmp(cfg->routes[i].method, method))
            route = &cfg->routes[i];
        else
            clear_params(&req), path_known = true;
    }
    size_t route_max = route ? route->max_body & ~PRISM_HTTP_PUBLIC : 0;
    size_t cap = route_max ? route_max : cfg->default_max_body;
    int status = path_known ? 405 : 404;
    if (route && len > (cap ? cap : 1u << 20)) {
        status = 413;
    } else if (route) {
        route->handler(&req, cfg->ctx);
        if (req.replies != 1) {
            fprintf(stderr, "%s %s answered %d times (a handler answers exactly once)\n", method,
                    target, req.replies);
            abort();
        }
        status = req.status;
    }
    clear_params(&req);
    for (int i = 0; i < req.nheader_values; i++)
        free(req.header_values[i]);
    free(b);
    free(copy);
    return status;
}
