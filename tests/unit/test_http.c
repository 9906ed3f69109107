/* Unit tests of libs/http: a server on a free loopback port with a small
 * route table, exercised through the client library (and a raw socket where
 * the client cannot shape the request). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "prism_buf.h"
#include "prism_http.h"
#include "prism_httpc.h"
#include "prism_log.h"
#include "prism_metrics.h"
#include "prism_time.h"
#include "prism_ws.h"

#define TOKEN "s3cret-token"
#define ECHO_MAX_BODY 64
#define TIMEOUT_MS 5000

typedef struct handler_ctx {
    atomic_int streams_done; /* done() calls of streamed responses */
    atomic_int waiting;      /* the never-ready stream was polled */
} handler_ctx;

typedef struct fixture {
    handler_ctx ctx;
    prism_metrics *metrics;
    prism_http_server *srv;
    prism_httpc *client; /* right token */
    prism_httpc *anon;   /* no token */
    prism_httpc *wrong;  /* wrong token */
} fixture;

/* ---------- handlers ---------- */

static void get_item(prism_http_req *req, void *ctx)
{
    prism_http_reply_json(req, 200, json_pack("{s:s}", "id", prism_http_param(req, "id")));
}

static void get_part(prism_http_req *req, void *ctx)
{
    prism_http_reply_json(req, 200,
                          json_pack("{s:s,s:s}", "id", prism_http_param(req, "id"), "part",
                                    prism_http_param(req, "part")));
}

static void delete_item(prism_http_req *req, void *ctx)
{
    prism_http_reply(req, 204, NULL, NULL, 0);
}

static void list_items(prism_http_req *req, void *ctx)
{
    int64_t limit;
    if (prism_http_query_int(req, "limit", 10, 1, 100, &limit) != 0)
        return;
    prism_http_reply_json(req, 200, json_pack("{s:I}", "limit", (json_int_t)limit));
}

static void public_file(prism_http_req *req, void *ctx)
{
    prism_http_reply_json(req, 200, json_pack("{s:s}", "name", prism_http_param(req, "name")));
}

static void echo(prism_http_req *req, void *ctx)
{
    json_t *doc = prism_http_body_json(req);
    if (doc)
        prism_http_reply_json(req, 200, doc);
}

static void silent(prism_http_req *req, void *ctx) {}

/* A document that could not be built (as json_pack gives on bad input). */
static void null_json(prism_http_req *req, void *ctx) { prism_http_reply_json(req, 200, NULL); }

/* A message quoting bytes that are not UTF-8. */
static void bad_message(prism_http_req *req, void *ctx)
{
    prism_http_reply_error(req, 404, "not_found", "no item '%s'", "a\xff\xfe");
}

typedef struct counting_stream {
    handler_ctx *ctx;
    int sent;
    int polls;
} counting_stream;

/* Five chunks, with "nothing ready yet" before the first. */
static ssize_t counting_read(void *ud, char *buf, size_t max)
{
    counting_stream *s = ud;
    if (s->polls++ == 0)
        return 0;
    if (s->sent == 5)
        return PRISM_HTTP_STREAM_END;
    return snprintf(buf, max, "chunk %d\n", s->sent++);
}

/* Never ready: the stream only ends when the server stops or the client leaves. */
static ssize_t never_ready_read(void *ud, char *buf, size_t max)
{
    counting_stream *s = ud;
    atomic_store(&s->ctx->waiting, 1);
    return 0;
}

/* Data without end, a little at a time. */
static ssize_t endless_read(void *ud, char *buf, size_t max)
{
    prism_sleep_ms(5);
    return snprintf(buf, max, "tick\n");
}

static void stream_done(void *ud)
{
    counting_stream *s = ud;
    atomic_fetch_add(&s->ctx->streams_done, 1);
    free(s);
}

static void start_stream(prism_http_req *req, handler_ctx *ctx, prism_http_stream_read fn)
{
    counting_stream *s = calloc(1, sizeof *s);
    s->ctx = ctx;
    prism_http_reply_stream(req, 200, "text/plain", fn, stream_done, s);
}

static void stream(prism_http_req *req, void *ctx) { start_stream(req, ctx, counting_read); }
static void wait_forever(prism_http_req *req, void *ctx)
{
    start_stream(req, ctx, never_ready_read);
}
static void endless(prism_http_req *req, void *ctx) { start_stream(req, ctx, endless_read); }

/* The same readers over WebSockets. */
static void start_ws(prism_http_req *req, handler_ctx *ctx, prism_http_stream_read fn)
{
    counting_stream *s = calloc(1, sizeof *s);
    s->ctx = ctx;
    prism_http_reply_websocket(req, fn, stream_done, s);
}

/* UTF-8 cut between chunks, and a byte that is not UTF-8. */
static ssize_t utf8_read(void *ud, char *buf, size_t max)
{
    static const char *const chunks[] = {"caf\xc3", "\xa9 ok\n", "bad \xff byte\n", "end \xe2\x82"};
    counting_stream *s = ud;
    if (s->sent == 4)
        return PRISM_HTTP_STREAM_END;
    const char *c = chunks[s->sent++];
    memcpy(buf, c, strlen(c));
    return (ssize_t)strlen(c);
}

/* One chunk as large as asked for (64 KiB: over a 16-bit frame length), then the end. */
static ssize_t big_read(void *ud, char *buf, size_t max)
{
    counting_stream *s = ud;
    if (s->sent == 1)
        return PRISM_HTTP_STREAM_END;
    s->sent++;
    memset(buf, 'x', max);
    return (ssize_t)max;
}

static void ws_count(prism_http_req *req, void *ctx) { start_ws(req, ctx, counting_read); }
static void ws_wait(prism_http_req *req, void *ctx) { start_ws(req, ctx, never_ready_read); }
static void ws_utf8(prism_http_req *req, void *ctx) { start_ws(req, ctx, utf8_read); }
static void ws_big(prism_http_req *req, void *ctx) { start_ws(req, ctx, big_read); }

static const prism_http_route routes[] = {
    {"GET", "/api/v1/items/{id}", get_item, 0},
    {"DELETE", "/api/v1/items/{id}", delete_item, 0},
    {"GET", "/api/v1/items/{id}/parts/{part}", get_part, 0},
    {"GET", "/api/v1/list", list_items, 0},
    {"POST", "/api/v1/echo", echo, ECHO_MAX_BODY},
    {"GET", "/api/v1/silent", silent, 0},
    {"GET", "/api/v1/stream", stream, 0},
    {"GET", "/api/v1/wait", wait_forever, 0},
    {"GET", "/api/v1/endless", endless, 0},
    {"GET", "/api/v1/nulljson", null_json, 0},
    {"GET", "/api/v1/badmsg", bad_message, 0},
    {"GET", "/api/v1/ws/count", ws_count, 0},
    {"GET", "/api/v1/ws/wait", ws_wait, 0},
    {"GET", "/api/v1/ws/utf8", ws_utf8, 0},
    {"GET", "/api/v1/ws/big", ws_big, 0},
    {"GET", "/pub/secret", list_items, 0}, /* matched first: needs the token */
    {"GET", "/pub/{name}", public_file, PRISM_HTTP_PUBLIC},
    {"POST", "/pub/{name}", echo, PRISM_HTTP_PUBLIC}, /* ignored: only GET is public */
};

/* Overrides for the servers of the deadline and eviction tests. */
static int header_timeout_ms;
static unsigned max_connections;

/* ---------- fixture ---------- */

static int start_server(fixture *fx)
{
    prism_http_config cfg = {
        .port = 0,
        .token = TOKEN,
        .routes = routes,
        .nroutes = sizeof routes / sizeof routes[0],
        .ctx = &fx->ctx,
        .metrics = fx->metrics,
        .name = "testsvc",
        .header_timeout_ms = header_timeout_ms,
        .max_connections = max_connections,
    };
    char err[256];
    if (prism_http_server_create(&fx->srv, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "server: %s\n", err);
        return -1;
    }
    return 0;
}

static int make_client(fixture *fx, prism_httpc **out, const char *token)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", prism_http_server_port(fx->srv));
    return prism_httpc_create(out, url, token);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    *state = fx;
    fx->metrics = prism_metrics_create();
    if (!fx->metrics || start_server(fx) != 0)
        return -1;
    if (make_client(fx, &fx->client, TOKEN) != 0 || make_client(fx, &fx->anon, NULL) != 0 ||
        make_client(fx, &fx->wrong, TOKEN "x") != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    if (!fx)
        return 0;
    prism_httpc_destroy(fx->client);
    prism_httpc_destroy(fx->anon);
    prism_httpc_destroy(fx->wrong);
    prism_http_server_destroy(fx->srv);
    prism_metrics_destroy(fx->metrics);
    free(fx);
    return 0;
}

/* One request; returns the parsed JSON body (NULL when not JSON), status in *status. */
static json_t *call(prism_httpc *c, const char *method, const char *path, const char *body,
                    long *status)
{
    prism_httpc_resp resp;
    char err[256];
    int rc = prism_httpc_request(c, method, path, body ? "application/json" : NULL, body,
                                 body ? strlen(body) : 0, TIMEOUT_MS, 0, &resp, err, sizeof err);
    if (rc != 0)
        fail_msg("%s %s: %s", method, path, err);
    *status = resp.status;
    json_t *doc = resp.len ? json_loadb(resp.body, resp.len, 0, NULL) : NULL;
    prism_httpc_resp_free(&resp);
    return doc;
}

/* Checks a response is the error envelope with `code`. */
static void expect_error(prism_httpc *c, const char *method, const char *path, const char *body,
                         long want_status, const char *want_code)
{
    long status = 0;
    json_t *doc = call(c, method, path, body, &status);
    assert_int_equal(status, want_status);
    assert_non_null(doc);
    json_t *err = json_object_get(doc, "error");
    assert_non_null(err);
    assert_string_equal(json_string_value(json_object_get(err, "code")), want_code);
    assert_non_null(json_string_value(json_object_get(err, "message")));
    json_decref(doc);
}

static const char *member(json_t *doc, const char *key)
{
    return json_string_value(json_object_get(doc, key));
}

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    return fd;
}

/* Sends raw bytes and reads the answer until the server closes. */
static size_t raw_exchange(int port, const char *request, char *out, size_t cap)
{
    int fd = raw_connect(port);
    size_t len = strlen(request);
    assert_int_equal(send(fd, request, len, MSG_NOSIGNAL), (ssize_t)len);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < cap && (r = recv(fd, out + got, cap - 1 - got, 0)) > 0)
        got += (size_t)r;
    out[got] = '\0';
    close(fd);
    return got;
}

/* ---------- tests ---------- */

static void test_json_and_params(void **state)
{
    fixture *fx = *state;
    long status = 0;
    json_t *doc = call(fx->client, "GET", "/api/v1/items/abc", NULL, &status);
    assert_int_equal(status, 200);
    assert_string_equal(member(doc, "id"), "abc");
    json_decref(doc);

    doc = call(fx->client, "GET", "/api/v1/items/i-7/parts/p9", NULL, &status);
    assert_int_equal(status, 200);
    assert_string_equal(member(doc, "id"), "i-7");
    assert_string_equal(member(doc, "part"), "p9");
    json_decref(doc);

    doc = call(fx->client, "DELETE", "/api/v1/items/abc", NULL, &status);
    assert_int_equal(status, 204);
    assert_null(doc);

    /* The typed helper works end to end too. */
    json_t *body = json_pack("{s:i}", "n", 3);
    char err[256];
    assert_int_equal(prism_httpc_json(fx->client, "POST", "/api/v1/echo", body, TIMEOUT_MS, &status,
                                      &doc, err, sizeof err),
                     0);
    assert_int_equal(status, 200);
    assert_true(json_equal(doc, body));
    json_decref(doc);
    json_decref(body);
}

static void test_trailing_slash(void **state)
{
    fixture *fx = *state;
    long status = 0;
    json_t *doc = call(fx->client, "GET", "/api/v1/items/abc/", NULL, &status);
    assert_int_equal(status, 200);
    assert_string_equal(member(doc, "id"), "abc");
    json_decref(doc);
    doc = call(fx->client, "GET", "/api/v1/list/?limit=5", NULL, &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_integer_value(json_object_get(doc, "limit")), 5);
    json_decref(doc);
}

static void test_query_int(void **state)
{
    fixture *fx = *state;
    long status = 0;
    json_t *doc = call(fx->client, "GET", "/api/v1/list", NULL, &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_integer_value(json_object_get(doc, "limit")), 10);
    json_decref(doc);
    doc = call(fx->client, "GET", "/api/v1/list?limit=100", NULL, &status);
    assert_int_equal(json_integer_value(json_object_get(doc, "limit")), 100);
    json_decref(doc);
    static const char *const bad[] = {"abc", "5x", "", "0", "101", "-3", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "/api/v1/list?limit=%s", bad[i]);
        expect_error(fx->client, "GET", path, NULL, 400, "invalid_argument");
    }
}

static void test_auth(void **state)
{
    fixture *fx = *state;
    expect_error(fx->anon, "GET", "/api/v1/items/abc", NULL, 401, "unauthorized");
    expect_error(fx->wrong, "GET", "/api/v1/items/abc", NULL, 401, "unauthorized");
    expect_error(fx->anon, "GET", "/metrics", NULL, 401, "unauthorized");
    /* Unknown paths are not revealed without a token. */
    expect_error(fx->anon, "GET", "/no/such/thing", NULL, 401, "unauthorized");

    char url[64];
    prism_httpc *prefix;
    snprintf(url, sizeof url, "http://127.0.0.1:%d", prism_http_server_port(fx->srv));
    assert_int_equal(prism_httpc_create(&prefix, url, "s3cret"), 0); /* a prefix of it */
    expect_error(prefix, "GET", "/api/v1/items/abc", NULL, 401, "unauthorized");
    prism_httpc_destroy(prefix);
}

static void test_healthz_without_token(void **state)
{
    fixture *fx = *state;
    long status = 0;
    json_t *doc = call(fx->anon, "GET", "/healthz", NULL, &status);
    assert_int_equal(status, 200);
    assert_string_equal(member(doc, "status"), "ok");
    assert_string_equal(member(doc, "service"), "testsvc");
    json_decref(doc);
}

/* Routes marked PRISM_HTTP_PUBLIC answer without the token (GET and HEAD only);
 * every other path keeps answering 401 first. */
static void test_public_routes(void **state)
{
    fixture *fx = *state;
    prism_httpc *clients[] = {fx->anon, fx->wrong, fx->client};
    for (size_t i = 0; i < sizeof clients / sizeof clients[0]; i++) {
        long status = 0;
        json_t *doc = call(clients[i], "GET", "/pub/page", NULL, &status);
        assert_int_equal(status, 200);
        assert_string_equal(member(doc, "name"), "page");
        json_decref(doc);
    }
    expect_error(fx->anon, "POST", "/pub/page", "{}", 401, "unauthorized");
    expect_error(fx->anon, "DELETE", "/pub/page", NULL, 401, "unauthorized");
    expect_error(fx->anon, "GET", "/pub/page/more", NULL, 401, "unauthorized");
    expect_error(fx->anon, "GET", "/pub", NULL, 401, "unauthorized");
    /* A secured route listed before the public one it overlaps stays secured. */
    expect_error(fx->anon, "GET", "/pub/secret", NULL, 401, "unauthorized");
    expect_error(fx->wrong, "GET", "/pub/secret", NULL, 401, "unauthorized");
    long status = 0;
    json_decref(call(fx->client, "GET", "/pub/secret", NULL, &status));
    assert_int_equal(status, 200);
    /* With the token, the POST route works, under the default body limit. */
    json_t *doc = call(fx->client, "POST", "/pub/page", "{\"a\": 1}", &status);
    assert_int_equal(status, 200);
    json_decref(doc);
}

static void test_metrics_endpoint(void **state)
{
    fixture *fx = *state;
    long status = 0;
    json_decref(call(fx->client, "GET", "/api/v1/items/m", NULL, &status));
    /* A made-up method, without a token, must not become a label value. */
    char response[4096];
    raw_exchange(prism_http_server_port(fx->srv),
                 "BREW\"x /pot HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", response,
                 sizeof response);
    assert_memory_equal(response, "HTTP/1.1 401", 12);
    prism_httpc_resp resp;
    char err[256];
    assert_int_equal(prism_httpc_request(fx->client, "GET", "/metrics", NULL, NULL, 0, TIMEOUT_MS,
                                         0, &resp, err, sizeof err),
                     0);
    assert_int_equal(resp.status, 200);
    assert_non_null(strstr(resp.body, "# TYPE prism_http_requests_total counter"));
    assert_non_null(strstr(resp.body, "prism_http_requests_total{method=\"GET\",route=\"/api/v1/"
                                      "items/{id}\",code=\"200\"}"));
    assert_null(strstr(resp.body, "BREW"));
    assert_non_null(strstr(resp.body, "{method=\"other\",route=\"other\",code=\"401\"}"));
    prism_httpc_resp_free(&resp);
}

static void test_not_found_and_method(void **state)
{
    fixture *fx = *state;
    expect_error(fx->client, "GET", "/api/v1/nothing", NULL, 404, "not_found");
    expect_error(fx->client, "GET", "/api/v1/items/a/b", NULL, 404, "not_found");
    expect_error(fx->client, "PUT", "/api/v1/items/abc", "{}", 405, "method_not_allowed");
    expect_error(fx->client, "GET", "/api/v1/echo", NULL, 405, "method_not_allowed");
}

static void test_body_limits(void **state)
{
    fixture *fx = *state;
    char body[ECHO_MAX_BODY + 64];
    /* Exactly the limit is accepted. */
    int n = snprintf(body, sizeof body, "{\"s\":\"%0*d\"}", ECHO_MAX_BODY - 8, 0);
    assert_int_equal(n, ECHO_MAX_BODY);
    long status = 0;
    json_t *doc = call(fx->client, "POST", "/api/v1/echo", body, &status);
    assert_int_equal(status, 200);
    json_decref(doc);
    /* One byte more is refused from its Content-Length. */
    snprintf(body, sizeof body, "{\"s\":\"%0*d\"}", ECHO_MAX_BODY - 7, 0);
    expect_error(fx->client, "POST", "/api/v1/echo", body, 413, "body_too_large");
    /* Far over: refused before any of the body is read. */
    char response[4096];
    int port = prism_http_server_port(fx->srv);
    raw_exchange(port,
                 "POST /api/v1/echo HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer " TOKEN
                 "\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n{",
                 response, sizeof response);
    assert_memory_equal(response, "HTTP/1.1 413", 12);
    assert_non_null(strstr(response, "body_too_large"));
    /* The connection stays usable afterwards. */
    doc = call(fx->client, "GET", "/api/v1/items/after", NULL, &status);
    assert_int_equal(status, 200);
    json_decref(doc);
}

#define CHUNKED_POST                                                                               \
    "POST /api/v1/echo HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer " TOKEN "\r\n"              \
    "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"

static void test_chunked_body(void **state)
{
    fixture *fx = *state;
    char response[4096];
    int port = prism_http_server_port(fx->srv);
    assert_true(raw_exchange(port, CHUNKED_POST "4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n", response,
                             sizeof response) > 12);
    assert_memory_equal(response, "HTTP/1.1 200", 12);
    assert_non_null(strstr(response, "{\"a\":1}"));
}

static void test_chunked_body_over_limit(void **state)
{
    fixture *fx = *state;
    /* No Content-Length: the cap must hold while the body is read. */
    char chunk[41];
    memset(chunk, 'x', 40);
    chunk[40] = '\0';
    char request[1024], response[4096];
    snprintf(request, sizeof request, CHUNKED_POST "28\r\n%s\r\n28\r\n%s\r\n0\r\n\r\n", chunk,
             chunk);
    int port = prism_http_server_port(fx->srv);
    assert_true(raw_exchange(port, request, response, sizeof response) > 12);
    assert_memory_equal(response, "HTTP/1.1 413", 12);
    assert_non_null(strstr(response, "body_too_large"));
}

static void test_bad_json(void **state)
{
    fixture *fx = *state;
    expect_error(fx->client, "POST", "/api/v1/echo", "{\"a\":", 400, "invalid_json");
    expect_error(fx->client, "POST", "/api/v1/echo", "[1,2]", 400, "invalid_json");
    expect_error(fx->client, "POST", "/api/v1/echo", "", 400, "invalid_json");
}

static void test_no_reply_is_500(void **state)
{
    fixture *fx = *state;
    expect_error(fx->client, "GET", "/api/v1/silent", NULL, 500, "internal");
}

static int collect(void *ud, const char *data, size_t len)
{
    return prism_buf_append(ud, data, len);
}

static void wait_for(atomic_int *v, int want)
{
    int64_t deadline = prism_mono_ms() + TIMEOUT_MS;
    while (atomic_load(v) < want && prism_mono_ms() < deadline)
        prism_sleep_ms(5);
    assert_true(atomic_load(v) >= want);
}

static void test_stream(void **state)
{
    fixture *fx = *state;
    int done_before = atomic_load(&fx->ctx.streams_done);
    prism_buf got;
    prism_buf_init(&got, 4096);
    long status = 0;
    char err[256];
    assert_int_equal(prism_httpc_stream(fx->client, "GET", "/api/v1/stream", TIMEOUT_MS, collect,
                                        &got, &status, err, sizeof err),
                     0);
    assert_int_equal(status, 200);
    assert_string_equal(got.data, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");
    prism_buf_free(&got);
    wait_for(&fx->ctx.streams_done, done_before + 1);
}

static int stop_after_first(void *ud, const char *data, size_t len)
{
    (*(int *)ud)++;
    return -1;
}

static void test_stream_client_leaves(void **state)
{
    fixture *fx = *state;
    int done_before = atomic_load(&fx->ctx.streams_done);
    int calls = 0;
    long status = 0;
    char err[256];
    assert_int_equal(prism_httpc_stream(fx->client, "GET", "/api/v1/endless", TIMEOUT_MS,
                                        stop_after_first, &calls, &status, err, sizeof err),
                     0);
    assert_int_equal(calls, 1);
    /* The server notices the client is gone and ends the stream. */
    wait_for(&fx->ctx.streams_done, done_before + 1);
}

typedef struct stream_thread {
    prism_httpc *c;
    long status;
    int rc;
} stream_thread;

static int discard(void *ud, const char *data, size_t len) { return 0; }

/* Reads until the time in *ud (ms), then stops the transfer. */
static int read_until(void *ud, const char *data, size_t len)
{
    return prism_mono_ms() < *(int64_t *)ud ? 0 : -1;
}

static void *run_stream(void *arg)
{
    stream_thread *t = arg;
    char err[256];
    t->rc = prism_httpc_stream(t->c, "GET", "/api/v1/wait", 3 * TIMEOUT_MS, discard, NULL,
                               &t->status, err, sizeof err);
    return NULL;
}

static void test_destroy_during_stream(void **state)
{
    fixture *fx = *state; /* a server of its own for this test */
    stream_thread t = {0};
    assert_int_equal(make_client(fx, &t.c, TOKEN), 0);
    int done_before = atomic_load(&fx->ctx.streams_done);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_stream, &t), 0);
    wait_for(&fx->ctx.waiting, 1);

    int64_t t0 = prism_mono_ms();
    prism_http_server_destroy(fx->srv);
    fx->srv = NULL;
    int64_t took = prism_mono_ms() - t0;
    pthread_join(th, NULL);
    prism_httpc_destroy(t.c);
    assert_true(took < 2000);
    assert_int_equal(atomic_load(&fx->ctx.streams_done), done_before + 1);
    assert_int_equal(t.status, 200);
}

#define AUTH "Authorization: Bearer " TOKEN "\r\n"

/* Sends `len` raw bytes (the server may stop reading early) and checks the
 * answer is one response (one status line) carrying the JSON error `code`. */
static void expect_raw_error(int port, const char *request, size_t len, int status,
                             const char *code)
{
    int fd = raw_connect(port);
    (void)send(fd, request, len, MSG_NOSIGNAL);
    char out[8192];
    size_t got = 0;
    ssize_t r;
    while (got + 1 < sizeof out && (r = recv(fd, out + got, sizeof out - 1 - got, 0)) > 0)
        got += (size_t)r;
    out[got] = '\0';
    close(fd);
    char want[32];
    snprintf(want, sizeof want, "HTTP/1.1 %d ", status);
    if (strncmp(out, want, strlen(want)) != 0)
        fail_msg("want %s, got: %.300s", want, out);
    assert_null(strstr(out + 1, "HTTP/1.1 "));
    const char *body = strstr(out, "\r\n\r\n");
    const char *cl = strstr(out, "Content-Length: ");
    assert_non_null(body);
    assert_non_null(cl);
    body += 4;
    assert_int_equal(strtoul(cl + 16, NULL, 10), strlen(body));
    assert_non_null(strstr(out, "Content-Type: application/json"));
    json_t *doc = json_loads(body, 0, NULL);
    assert_non_null(doc);
    json_t *err = json_object_get(doc, "error");
    assert_string_equal(json_string_value(json_object_get(err, "code")), code);
    assert_non_null(json_string_value(json_object_get(err, "message")));
    json_decref(doc);
}

static void test_fallback_500_is_json(void **state)
{
    fixture *fx = *state;
    prism_httpc_resp resp;
    char err[256];
    assert_int_equal(prism_httpc_request(fx->client, "GET", "/api/v1/nulljson", NULL, NULL, 0,
                                         TIMEOUT_MS, 0, &resp, err, sizeof err),
                     0);
    assert_int_equal(resp.status, 500);
    assert_null(memchr(resp.body, '\0', resp.len)); /* no NUL counted in Content-Length */
    json_t *doc = json_loadb(resp.body, resp.len, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "error"), "code")),
                        "internal");
    json_decref(doc);
    prism_httpc_resp_free(&resp);
}

static void test_error_message_not_utf8(void **state)
{
    fixture *fx = *state;
    expect_error(fx->client, "GET", "/api/v1/badmsg", NULL, 404, "not_found");
}

static void test_url_not_utf8_or_nul(void **state)
{
    fixture *fx = *state;
    static const char *const bad[] = {
        "/api/v1/items/%ff",         "/api/v1/items/a%C0%AFb",  "/api/v1/items/%ed%a0%80",
        "/api/v1/items/a%00b",       "/api/v1/items/abc?x=%ff", "/api/v1/items/abc?x=a%00",
        "/api/v1/items/%ff/parts/p", "/api/v1/nothing/%fe",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error(fx->client, "GET", bad[i], NULL, 400, "invalid_argument");
    /* Without a token the answer stays 401. */
    expect_error(fx->anon, "GET", "/api/v1/items/%ff", NULL, 401, "unauthorized");
    /* Multi-byte UTF-8 is fine. */
    long status = 0;
    json_t *doc = call(fx->client, "GET", "/api/v1/items/%C3%A9t%C3%A9", NULL, &status);
    assert_int_equal(status, 200);
    assert_string_equal(member(doc, "id"), "\xc3\xa9t\xc3\xa9");
    json_decref(doc);
}

static void test_head(void **state)
{
    fixture *fx = *state;
    int port = prism_http_server_port(fx->srv);
    char out[4096];
    raw_exchange(port,
                 "HEAD /api/v1/items/abc HTTP/1.1\r\nHost: t\r\n" AUTH "Connection: close\r\n\r\n",
                 out, sizeof out);
    assert_memory_equal(out, "HTTP/1.1 200", 12);
    assert_non_null(strstr(out, "Content-Length: 12\r\n")); /* {"id":"abc"}, not sent */
    assert_string_equal(strstr(out, "\r\n\r\n"), "\r\n\r\n");
    raw_exchange(port, "HEAD /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", out,
                 sizeof out);
    assert_memory_equal(out, "HTTP/1.1 200", 12);
    assert_string_equal(strstr(out, "\r\n\r\n"), "\r\n\r\n");
    raw_exchange(port, "HEAD /api/v1/items/abc HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                 out, sizeof out);
    assert_memory_equal(out, "HTTP/1.1 401", 12);
    raw_exchange(port, "HEAD /metrics HTTP/1.1\r\nHost: t\r\n" AUTH "Connection: close\r\n\r\n",
                 out, sizeof out);
    assert_memory_equal(out, "HTTP/1.1 200", 12);
    /* A streamed answer is not read at all: a stream that never has data ends at once. */
    int done_before = atomic_load(&fx->ctx.streams_done);
    raw_exchange(port, "HEAD /api/v1/wait HTTP/1.1\r\nHost: t\r\n" AUTH "Connection: close\r\n\r\n",
                 out, sizeof out);
    assert_memory_equal(out, "HTTP/1.1 200", 12);
    assert_string_equal(strstr(out, "\r\n\r\n"), "\r\n\r\n");
    wait_for(&fx->ctx.streams_done, done_before + 1);
    raw_exchange(port, "HEAD /api/v1/echo HTTP/1.1\r\nHost: t\r\n" AUTH "Connection: close\r\n\r\n",
                 out, sizeof out);
    assert_memory_equal(out, "HTTP/1.1 405", 12);
    raw_exchange(port,
                 "PUT /api/v1/items/abc HTTP/1.1\r\nHost: t\r\n" AUTH
                 "Content-Length: 0\r\nConnection: close\r\n\r\n",
                 out, sizeof out);
    assert_memory_equal(out, "HTTP/1.1 405", 12);
    assert_non_null(strstr(out, "Allow: GET, HEAD, DELETE\r\n"));
}

static void test_parser_errors_are_json(void **state)
{
    fixture *fx = *state;
    int port = prism_http_server_port(fx->srv);
    static const struct {
        const char *request;
        int status;
        const char *code;
    } cases[] = {
        {"POST /api/v1/echo HTTP/1.1\r\nHost: t\r\n" AUTH "Content-Length: abc\r\n\r\n", 400,
         "bad_request"},
        {"POST /api/v1/echo HTTP/1.1\r\nHost: t\r\n" AUTH
         "Content-Length: 99999999999999999999999\r\n\r\n",
         413, "body_too_large"},
        {"GET /api/v1/list HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n", 400, "bad_request"},
        {"POST /api/v1/echo HTTP/1.1\r\nHost: t\r\n" AUTH
         "Transfer-Encoding: chunked\r\n\r\nzz\r\n",
         400, "bad_request"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_raw_error(port, cases[i].request, strlen(cases[i].request), cases[i].status,
                         cases[i].code);
    /* Oversized heads: our limits, then past what libmicrohttpd can hold. */
    static const size_t header_sizes[] = {40u << 10, 300u << 10};
    for (size_t i = 0; i < 2; i++) {
        size_t n = header_sizes[i];
        char *big = malloc(n + 256);
        assert_non_null(big);
        int k = snprintf(big, 256, "GET /api/v1/list HTTP/1.1\r\nHost: t\r\nX-Big: ");
        memset(big + k, 'a', n);
        memcpy(big + k + n, "\r\n\r\n", 5);
        expect_raw_error(port, big, strlen(big), 431, "headers_too_large");
        free(big);
    }
    char *uri = malloc(20000);
    assert_non_null(uri);
    int k = snprintf(uri, 64, "GET /api/v1/items/");
    memset(uri + k, 'a', 10000);
    strcpy(uri + k + 10000, " HTTP/1.1\r\nHost: t\r\n\r\n");
    expect_raw_error(port, uri, strlen(uri), 414, "uri_too_long");
    free(uri);
    /* The server still serves. */
    long status = 0;
    json_decref(call(fx->client, "GET", "/api/v1/items/ok", NULL, &status));
    assert_int_equal(status, 200);
}

/* Waits until the server closes `fd`, trickling a byte every 50 ms; returns ms waited. */
static int64_t trickle_until_closed(int fd, int64_t limit_ms)
{
    int64_t t0 = prism_mono_ms();
    while (prism_mono_ms() - t0 < limit_ms) {
        if (send(fd, "X", 1, MSG_NOSIGNAL) != 1)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char c;
        if (poll(&p, 1, 50) > 0 && recv(fd, &c, 1, 0) <= 0)
            break;
    }
    return prism_mono_ms() - t0;
}

static int setup_short_deadline(void **state)
{
    header_timeout_ms = 300;
    int rc = setup(state);
    header_timeout_ms = 0;
    return rc;
}

static void test_header_deadline(void **state)
{
    fixture *fx = *state; /* its own server: headers due within 300 ms */
    int port = prism_http_server_port(fx->srv);
    int fd = raw_connect(port);
    assert_int_equal(send(fd, "GET /healthz HTTP/1.1\r\nX-Slow: ", 32, MSG_NOSIGNAL), 32);
    int64_t took = trickle_until_closed(fd, 5000);
    close(fd);
    assert_true(took >= 200 && took < 2000);
    /* An idle keep-alive connection has the same deadline for its next request. */
    fd = raw_connect(port);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    char out[1024];
    assert_true(recv(fd, out, sizeof out, 0) > 12);
    assert_memory_equal(out, "HTTP/1.1 200", 12);
    assert_true(trickle_until_closed(fd, 5000) < 2000);
    close(fd);
    /* A request being answered is not cut: a stream outlives the deadline. */
    int64_t until = prism_mono_ms() + 1000;
    long status = 0;
    char err[256];
    assert_int_equal(prism_httpc_stream(fx->client, "GET", "/api/v1/endless", TIMEOUT_MS,
                                        read_until, &until, &status, err, sizeof err),
                     0);
    assert_int_equal(status, 200);
    assert_true(prism_mono_ms() >= until);
}

static int setup_few_connections(void **state)
{
    max_connections = 8; /* evicts past 4 connections waiting for headers */
    int rc = setup(state);
    max_connections = 0;
    return rc;
}

static void test_eviction(void **state)
{
    fixture *fx = *state; /* its own server, 8 connections at most */
    int port = prism_http_server_port(fx->srv);
    enum { HELD = 12 };
    int fds[HELD];
    for (int i = 0; i < HELD; i++) {
        fds[i] = raw_connect(port);
        assert_int_equal(send(fds[i], "G", 1, MSG_NOSIGNAL), 1);
        prism_sleep_ms(5); /* in order: the oldest go first */
    }
    /* Clients that send their request at once are still served. */
    for (int i = 0; i < 3; i++) {
        long status = 0;
        int64_t t0 = prism_mono_ms();
        json_decref(call(fx->client, "GET", "/api/v1/items/in", NULL, &status));
        assert_int_equal(status, 200);
        assert_true(prism_mono_ms() - t0 < 2000);
    }
    /* The connections that waited longest were closed, the newest kept. */
    int closed_old = 0, open_new = 0;
    for (int i = 0; i < HELD; i++) {
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        char c;
        bool closed = poll(&p, 1, i < 4 ? 1000 : 0) > 0 && recv(fds[i], &c, 1, 0) <= 0;
        closed_old += i < 4 && closed;
        open_new += i >= HELD - 3 && !closed;
        close(fds[i]);
    }
    assert_int_equal(closed_old, 4);
    assert_int_equal(open_new, 3);
}

/* The value of an unlabelled series in the server's /metrics. */
static double metric_value(fixture *fx, const char *name)
{
    prism_httpc_resp resp;
    char err[256];
    assert_int_equal(prism_httpc_request(fx->client, "GET", "/metrics", NULL, NULL, 0, TIMEOUT_MS,
                                         0, &resp, err, sizeof err),
                     0);
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *at = strstr(resp.body, key);
    double v = at ? strtod(at + strlen(key), NULL) : -1;
    prism_httpc_resp_free(&resp);
    return v;
}

/* Fails unless the server has accepted `want` connections in all. */
static void expect_connections(fixture *fx, double want, const char *why)
{
    double got = metric_value(fx, "prism_http_connections_total");
    if (got != want)
        fail_msg("%.0f connections accepted, not %.0f: %s", got, want, why);
}

/* Replies made before the body (health, metrics, refusals) keep a
 * bodiless request's connection, as the routes' replies do. */
static void test_early_replies_keep_the_connection(void **state)
{
    fixture *fx = *state;
    long status = 0;
    json_decref(call(fx->anon, "GET", "/healthz", NULL, &status)); /* connected, if not yet */
    double before = metric_value(fx, "prism_http_connections_total");
    for (int i = 0; i < 3; i++) {
        json_decref(call(fx->anon, "GET", "/healthz", NULL, &status));
        assert_int_equal(status, 200);
        expect_error(fx->anon, "GET", "/api/v1/items/x", NULL, 401, "unauthorized");
        expect_error(fx->client, "GET", "/api/v1/nothing", NULL, 404, "not_found");
    }
    expect_connections(fx, before, "an early reply closed its connection");
}

static void test_httpc_pool(void **state)
{
    fixture *fx = *state;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", prism_http_server_port(fx->srv));
    assert_null(prism_httpc_pool_create(0));
    prism_httpc_pool *p = prism_httpc_pool_create(2);
    assert_non_null(p);
    long status = 0;
    /* A client given back is taken again (the base URL's trailing slash
     * aside), and so is its connection: ten requests, one new connection. */
    prism_httpc *a = prism_httpc_pool_take(p, url, TOKEN);
    assert_non_null(a);
    json_decref(call(a, "GET", "/api/v1/items/x", NULL, &status));
    assert_int_equal(status, 200);
    prism_httpc_pool_give(p, a, true);
    double before = metric_value(fx, "prism_http_connections_total");
    assert_true(before >= 1);
    char slash[80];
    snprintf(slash, sizeof slash, "%s/", url);
    for (int i = 0; i < 10; i++) {
        prism_httpc *h = prism_httpc_pool_take(p, i % 2 ? slash : url, TOKEN);
        assert_ptr_equal(h, a);
        json_decref(call(h, "GET", "/api/v1/items/x", NULL, &status));
        assert_int_equal(status, 200);
        prism_httpc_pool_give(p, h, true);
    }
    expect_connections(fx, before, "a kept client connected again");
    /* Another token, or none, is another client: a kept one never speaks
     * with a token it was not made with. */
    prism_httpc *anon = prism_httpc_pool_take(p, url, NULL);
    prism_httpc *wrong = prism_httpc_pool_take(p, url, TOKEN "x");
    assert_non_null(anon);
    assert_non_null(wrong);
    assert_ptr_not_equal(anon, a);
    assert_ptr_not_equal(wrong, a);
    assert_ptr_not_equal(anon, wrong);
    json_decref(call(anon, "GET", "/api/v1/items/x", NULL, &status));
    assert_int_equal(status, 401);
    /* Two kept at most: the oldest (a) makes room; the last given comes first. */
    prism_httpc_pool_give(p, anon, true);
    prism_httpc_pool_give(p, wrong, true);
    assert_ptr_equal(prism_httpc_pool_take(p, url, TOKEN "x"), wrong);
    assert_ptr_equal(prism_httpc_pool_take(p, url, NULL), anon);
    prism_httpc *fresh = prism_httpc_pool_take(p, url, TOKEN); /* a was closed */
    assert_non_null(fresh);
    double n = metric_value(fx, "prism_http_connections_total");
    json_decref(call(fresh, "GET", "/api/v1/items/y", NULL, &status));
    assert_int_equal(status, 200);
    expect_connections(fx, n + 1, "the oldest idle client was kept past the pool's size");
    /* A transport error closes it and every kept client of its server. */
    prism_httpc_pool_give(p, anon, true);
    prism_httpc_pool_give(p, fresh, false);
    prism_httpc *again = prism_httpc_pool_take(p, url, NULL);
    assert_non_null(again);
    n = metric_value(fx, "prism_http_connections_total");
    json_decref(call(again, "GET", "/api/v1/items/y", NULL, &status));
    assert_int_equal(status, 401);
    expect_connections(fx, n + 1, "a transport error left its server's idle clients kept");
    prism_httpc_pool_give(p, again, true);
    prism_httpc_pool_give(p, wrong, true);
    prism_httpc_pool_destroy(p); /* closes what it keeps (ASan: nothing leaks) */
}

/* ---------- WebSockets ---------- */

#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="        /* RFC 6455's example key */
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" /* and its answer */

static void test_ws_accept_key(void **state)
{
    char out[PRISM_WS_ACCEPT_LEN + 1];
    assert_int_equal(prism_ws_accept(WS_KEY, out), 0);
    assert_string_equal(out, WS_ACCEPT);
    assert_true(prism_ws_key_valid(WS_KEY));
    assert_true(prism_ws_key_valid("AAAAAAAAAAAAAAAAAAAAAA=="));
    assert_false(prism_ws_key_valid(NULL));
    assert_false(prism_ws_key_valid(""));
    assert_false(prism_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ="));   /* 23 characters */
    assert_false(prism_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ===")); /* 25 */
    assert_false(prism_ws_key_valid("dGhlIHNhbXBsZSBub25jZXh4"));  /* 18 bytes */
    assert_false(prism_ws_key_valid("dGhlIHNhbXBsZSBub25j*Q=="));  /* not base64 */
}

/* A client frame: masked unless told otherwise. Returns its size. */
static size_t client_frame(uint8_t *out, unsigned first, const void *payload, size_t len, bool mask)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t at = 0;
    out[at++] = (uint8_t)first;
    uint8_t m = mask ? 0x80 : 0;
    if (len < 126) {
        out[at++] = (uint8_t)(m | len);
    } else if (len <= 0xffff) {
        out[at++] = m | 126;
        out[at++] = (uint8_t)(len >> 8);
        out[at++] = (uint8_t)len;
    } else {
        out[at++] = m | 127;
        for (int i = 0; i < 8; i++)
            out[at++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    if (mask) {
        memcpy(out + at, key, 4);
        at += 4;
    }
    for (size_t i = 0; i < len; i++)
        out[at + i] = ((const uint8_t *)payload)[i] ^ (mask ? key[i & 3] : 0);
    return at + len;
}

static void test_ws_parse(void **state)
{
    uint8_t buf[70000];
    prism_ws_frame f;
    uint16_t code;
    /* RFC 6455 5.7: a masked "Hello". */
    uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    for (size_t cut = 0; cut < sizeof hello; cut++)
        assert_int_equal(prism_ws_parse(hello, cut, 100, &f, &code), 0);
    assert_int_equal(prism_ws_parse(hello, sizeof hello, 100, &f, &code), sizeof hello);
    assert_int_equal(f.opcode, PRISM_WS_TEXT);
    assert_true(f.fin);
    assert_int_equal(f.len, 5);
    assert_memory_equal(f.payload, "Hello", 5);
    /* 16- and 64-bit lengths. */
    char big[300];
    memset(big, 'b', sizeof big);
    size_t n = client_frame(buf, 0x82, big, sizeof big, true);
    assert_int_equal(prism_ws_parse(buf, n, 1000, &f, &code), (ssize_t)n);
    assert_int_equal(f.len, sizeof big);
    assert_memory_equal(f.payload, big, sizeof big);
    uint8_t long_len[] = {0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4};
    assert_int_equal(prism_ws_parse(long_len, sizeof long_len, 1 << 20, &f, &code), 0);
    assert_int_equal(prism_ws_parse(long_len, sizeof long_len, 1000, &f, &code), -1);
    assert_int_equal(code, PRISM_WS_CLOSE_TOO_BIG);
    uint8_t top_bit[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
    assert_int_equal(prism_ws_parse(top_bit, sizeof top_bit, SIZE_MAX, &f, &code), -1);
    assert_int_equal(code, PRISM_WS_CLOSE_PROTOCOL_ERROR);
    /* Protocol errors: unmasked, reserved bits, unknown opcode, long or fragmented control. */
    n = client_frame(buf, 0x81, "hi", 2, false);
    assert_int_equal(prism_ws_parse(buf, n, 100, &f, &code), -1);
    assert_int_equal(code, PRISM_WS_CLOSE_PROTOCOL_ERROR);
    n = client_frame(buf, 0xc1, "hi", 2, true);
    assert_int_equal(prism_ws_parse(buf, n, 100, &f, &code), -1);
    n = client_frame(buf, 0x83, "hi", 2, true);
    assert_int_equal(prism_ws_parse(buf, n, 100, &f, &code), -1);
    n = client_frame(buf, 0x89, big, 126, true);
    assert_int_equal(prism_ws_parse(buf, n, 1000, &f, &code), -1);
    n = client_frame(buf, 0x09, "p", 1, true);
    assert_int_equal(prism_ws_parse(buf, n, 100, &f, &code), -1);
    /* A ping of 125 bytes is fine; a text frame over the limit is 1009. */
    n = client_frame(buf, 0x89, big, 125, true);
    assert_int_equal(prism_ws_parse(buf, n, 1000, &f, &code), (ssize_t)n);
    assert_int_equal(f.opcode, PRISM_WS_PING);
    n = client_frame(buf, 0x81, big, 101, true);
    assert_int_equal(prism_ws_parse(buf, n, 100, &f, &code), -1);
    assert_int_equal(code, PRISM_WS_CLOSE_TOO_BIG);

    /* Close payloads. */
    assert_int_equal(prism_ws_close_payload((const uint8_t *)"", 0, &code), 0);
    assert_int_equal(code, PRISM_WS_CLOSE_NO_STATUS);
    assert_int_equal(prism_ws_close_payload((const uint8_t *)"\x03\xe8", 2, &code), 0);
    assert_int_equal(code, 1000);
    static const uint8_t bye[] = {0x0f, 0xa0, 'b', 'y', 'e'}; /* 4000, "bye" */
    assert_int_equal(prism_ws_close_payload(bye, sizeof bye, &code), 0);
    assert_int_equal(code, 4000);
    assert_int_equal(prism_ws_close_payload((const uint8_t *)"\x03", 1, &code), -1);
    assert_int_equal(prism_ws_close_payload((const uint8_t *)"\x03\xed", 2, &code), -1); /* 1005 */
    assert_int_equal(prism_ws_close_payload((const uint8_t *)"\x03\xe8\xff", 3, &code), -1);

    /* Server headers. */
    uint8_t h[PRISM_WS_MAX_SERVER_HEADER];
    assert_int_equal(prism_ws_frame_header(h, PRISM_WS_TEXT, 125), 2);
    assert_int_equal(h[0], 0x81);
    assert_int_equal(h[1], 125);
    assert_int_equal(prism_ws_frame_header(h, PRISM_WS_BINARY, 65535), 4);
    assert_int_equal(h[1], 126);
    assert_int_equal(h[2] << 8 | h[3], 65535);
    assert_int_equal(prism_ws_frame_header(h, PRISM_WS_CLOSE, 65536), 10);
    assert_int_equal(h[0], 0x88);
    assert_int_equal(h[1], 127);
    assert_int_equal(h[7], 1);

    /* Text: bad bytes become '?', a sequence cut at the end waits for the rest. */
    char t1[] = "ok \xff\xc3";
    assert_int_equal(prism_ws_text_prepare(t1, 5, true), 1);
    assert_memory_equal(t1, "ok ?\xc3", 5);
    char t2[] = "x\xe2\x82";
    assert_int_equal(prism_ws_text_prepare(t2, 3, true), 2);
    assert_int_equal(prism_ws_text_prepare(t2, 3, false), 0);
    assert_string_equal(t2, "x??");
    char t3[] = "\xf0\x9f\x98\x80";
    assert_int_equal(prism_ws_text_prepare(t3, 4, true), 0);
    assert_string_equal(t3, "\xf0\x9f\x98\x80");
    char t4[] = "a\x80";
    assert_int_equal(prism_ws_text_prepare(t4, 2, true), 0);
    assert_string_equal(t4, "a?");
}

/* A raw WebSocket client: the handshake, then frames off the socket. */
typedef struct ws_client {
    int fd;
    uint8_t buf[1 << 18];
    size_t len;
} ws_client;

/* Sends a handshake (`extra` header lines replace none of the defaults) and
 * reads the answer's head into `head`. Returns the status. */
static int ws_open(ws_client *c, int port, const char *path, const char *headers, char *head,
                   size_t cap)
{
    c->fd = raw_connect(port);
    c->len = 0;
    char req[2048];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n", path, headers);
    assert_int_equal(send(c->fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    for (;;) {
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        assert_true(r > 0);
        c->len += (size_t)r;
        uint8_t *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end)
            continue;
        size_t hlen = (size_t)(end - c->buf) + 4;
        assert_true(hlen < cap);
        memcpy(head, c->buf, hlen);
        head[hlen] = '\0';
        memmove(c->buf, c->buf + hlen, c->len - hlen);
        c->len -= hlen;
        return atoi(head + 9);
    }
}

#define WS_HANDSHAKE(extra)                                                                        \
    AUTH "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"              \
         "Sec-WebSocket-Key: " WS_KEY "\r\n" extra

/* Opens a WebSocket on `path` and checks the 101. */
static void ws_open_ok(ws_client *c, int port, const char *path)
{
    char head[4096];
    assert_int_equal(ws_open(c, port, path, WS_HANDSHAKE(""), head, sizeof head), 101);
    assert_non_null(strcasestr(head, "\r\nUpgrade: websocket\r\n"));
    assert_non_null(strcasestr(head, "\r\nConnection: Upgrade\r\n"));
    assert_non_null(strstr(head, "\r\nSec-WebSocket-Accept: " WS_ACCEPT "\r\n"));
}

/* Reads one server frame (it must be unmasked and whole). Returns its opcode,
 * or -1 when the connection ended first. */
static int ws_read(ws_client *c, uint8_t *payload, size_t cap, size_t *len)
{
    for (;;) {
        if (c->len >= 2) {
            assert_int_equal(c->buf[1] & 0x80, 0); /* servers never mask */
            assert_int_equal(c->buf[0] & 0x70, 0);
            assert_true(c->buf[0] & 0x80); /* never fragmented */
            uint64_t plen = c->buf[1] & 0x7f;
            size_t at = 2;
            if (plen == 126 && c->len >= 4) {
                plen = (uint64_t)c->buf[2] << 8 | c->buf[3];
                at = 4;
            } else if (plen == 127 && c->len >= 10) {
                plen = 0;
                for (int i = 0; i < 8; i++)
                    plen = plen << 8 | c->buf[2 + i];
                at = 10;
            } else if (plen >= 126) {
                at = 0;
            }
            if (at && c->len >= at + plen) {
                assert_true(plen <= cap);
                int op = c->buf[0] & 0x0f;
                memcpy(payload, c->buf + at, plen);
                *len = plen;
                memmove(c->buf, c->buf + at + plen, c->len - at - plen);
                c->len -= at + plen;
                return op;
            }
        }
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (r <= 0)
            return -1;
        c->len += (size_t)r;
    }
}

static void ws_write_frame(ws_client *c, unsigned first, const void *p, size_t len, bool mask)
{
    uint8_t frame[512];
    size_t n = client_frame(frame, first, p, len, mask);
    assert_int_equal(send(c->fd, frame, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Expects a close frame with `code`, then the end of the connection. */
static void ws_expect_close(ws_client *c, uint16_t code, bool answer)
{
    uint8_t p[256];
    size_t len;
    int op;
    while ((op = ws_read(c, p, sizeof p, &len)) == PRISM_WS_TEXT) {
    }
    assert_int_equal(op, PRISM_WS_CLOSE);
    assert_int_equal(len, 2);
    assert_int_equal(p[0] << 8 | p[1], code);
    if (answer)
        ws_write_frame(c, 0x88, p, 2, true);
    assert_int_equal(ws_read(c, p, sizeof p, &len), -1);
    close(c->fd);
}

static void test_ws_stream(void **state)
{
    fixture *fx = *state;
    int port = prism_http_server_port(fx->srv);
    int done_before = atomic_load(&fx->ctx.streams_done);
    ws_client *c = calloc(1, sizeof *c);
    ws_open_ok(c, port, "/api/v1/ws/count");
    char text[256] = "";
    uint8_t p[256];
    size_t len;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ws_read(c, p, sizeof p - 1, &len), PRISM_WS_TEXT);
        strncat(text, (const char *)p, len);
    }
    assert_string_equal(text, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");
    int64_t t0 = prism_mono_ms();
    ws_expect_close(c, PRISM_WS_CLOSE_NORMAL, true);
    assert_true(prism_mono_ms() - t0 < 1500); /* closed once our close answered */
    wait_for(&fx->ctx.streams_done, done_before + 1);

    /* Text is valid UTF-8 whatever the stream holds; 64 KiB go in one message. */
    ws_open_ok(c, port, "/api/v1/ws/utf8");
    text[0] = '\0';
    int op;
    while ((op = ws_read(c, p, sizeof p - 1, &len)) == PRISM_WS_TEXT) {
        p[len] = '\0';
        assert_int_equal(strlen((char *)p), len);
        strncat(text, (const char *)p, len);
    }
    assert_int_equal(op, PRISM_WS_CLOSE);
    close(c->fd);
    assert_string_equal(text, "caf\xc3\xa9 ok\nbad ? byte\nend ??");
    ws_open_ok(c, port, "/api/v1/ws/big");
    static uint8_t big[100000];
    assert_int_equal(ws_read(c, big, sizeof big, &len), PRISM_WS_TEXT);
    assert_int_equal(len, 65536);
    assert_int_equal(big[0], 'x');
    assert_int_equal(big[65535], 'x');
    ws_expect_close(c, PRISM_WS_CLOSE_NORMAL, true);
    free(c);
    wait_for(&fx->ctx.streams_done, done_before + 3);
}

/* The answer to a bad handshake: status, JSON error code, and a header. */
static void expect_ws_refused(int port, const char *path, const char *headers, int status,
                              const char *code, const char *header_line)
{
    ws_client *c = calloc(1, sizeof *c);
    char head[4096];
    assert_int_equal(ws_open(c, port, path, headers, head, sizeof head), status);
    if (header_line)
        assert_non_null(strcasestr(head, header_line));
    assert_non_null(strstr(head, "Content-Type: application/json"));
    const char *cl = strcasestr(head, "Content-Length: ");
    assert_non_null(cl);
    size_t want = strtoul(cl + 16, NULL, 10);
    while (c->len < want) {
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        assert_true(r > 0);
        c->len += (size_t)r;
    }
    json_t *doc = json_loadb((const char *)c->buf, want, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "error"), "code")),
                        code);
    json_decref(doc);
    close(c->fd);
    free(c);
}

static void test_ws_handshake_refused(void **state)
{
    fixture *fx = *state;
    int port = prism_http_server_port(fx->srv);
    int done_before = atomic_load(&fx->ctx.streams_done);
    const char *path = "/api/v1/ws/wait";
    /* No token: 401 before the handler runs (no stream is made). */
    expect_ws_refused(port, path,
                      "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Key: " WS_KEY "\r\n",
                      401, "unauthorized", "WWW-Authenticate: Bearer");
    /* A plain GET. */
    expect_ws_refused(port, path, AUTH, 426, "upgrade_required", "\r\nUpgrade: websocket\r\n");
    expect_ws_refused(port, path,
                      AUTH "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                           "Sec-WebSocket-Key: " WS_KEY "\r\n",
                      400, "bad_handshake", NULL);
    expect_ws_refused(port, path,
                      AUTH "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: " WS_KEY "\r\n",
                      426, "upgrade_required", "\r\nSec-WebSocket-Version: 13\r\n");
    expect_ws_refused(port, path,
                      AUTH "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n",
                      400, "bad_handshake", NULL);
    expect_ws_refused(port, path,
                      AUTH "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Version: 13\r\n",
                      400, "bad_handshake", NULL);
    /* Each refused handshake released its stream. */
    wait_for(&fx->ctx.streams_done, done_before + 5);
    /* Browsers' forms of the headers. */
    ws_client *c = calloc(1, sizeof *c);
    char head[4096];
    assert_int_equal(ws_open(c, port, path,
                             AUTH "Upgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
                                  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " WS_KEY "\r\n",
                             head, sizeof head),
                     101);
    ws_write_frame(c, 0x88, "\x03\xe8", 2, true);
    ws_expect_close(c, PRISM_WS_CLOSE_NORMAL, false);
    free(c);
    wait_for(&fx->ctx.streams_done, done_before + 6);
}

static void test_ws_ping_and_close(void **state)
{
    fixture *fx = *state; /* its own server: headers due within 300 ms */
    int port = prism_http_server_port(fx->srv);
    int done_before = atomic_load(&fx->ctx.streams_done);
    ws_client *c = calloc(1, sizeof *c);
    ws_open_ok(c, port, "/api/v1/ws/wait");
    /* An open WebSocket outlives the header deadline of idle connections. */
    prism_sleep_ms(800);
    uint8_t p[256];
    size_t len;
    ws_write_frame(c, 0x89, "are you there", 13, true);
    assert_int_equal(ws_read(c, p, sizeof p, &len), PRISM_WS_PONG);
    assert_int_equal(len, 13);
    assert_memory_equal(p, "are you there", 13);
    /* Data from the client is dropped; a close is echoed and the connection ends. */
    ws_write_frame(c, 0x81, "hello", 5, true);
    static const uint8_t bye[] = {0x0f, 0xa0, 'b', 'y', 'e'}; /* 4000, "bye" */
    ws_write_frame(c, 0x88, bye, sizeof bye, true);
    ws_expect_close(c, 4000, false);
    wait_for(&fx->ctx.streams_done, done_before + 1);

    /* Protocol errors are closed: an unmasked frame (1002), a message too large (1009). */
    ws_open_ok(c, port, "/api/v1/ws/wait");
    ws_write_frame(c, 0x81, "hi", 2, false);
    ws_expect_close(c, PRISM_WS_CLOSE_PROTOCOL_ERROR, true);
    ws_open_ok(c, port, "/api/v1/ws/wait");
    uint8_t huge[] = {0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4};
    assert_int_equal(send(c->fd, huge, sizeof huge, MSG_NOSIGNAL), (ssize_t)sizeof huge);
    ws_expect_close(c, PRISM_WS_CLOSE_TOO_BIG, true);
    /* A client that goes away without a word. */
    ws_open_ok(c, port, "/api/v1/ws/wait");
    close(c->fd);
    wait_for(&fx->ctx.streams_done, done_before + 4);
    /* Frames sent right behind the handshake (read with it) are answered too. */
    char head[4096];
    uint8_t ping[64];
    size_t pn = client_frame(ping, 0x89, "early", 5, true);
    const char *hs = "GET /api/v1/ws/wait HTTP/1.1\r\nHost: t\r\n" WS_HANDSHAKE("") "\r\n";
    c->fd = raw_connect(port);
    char both[1024];
    memcpy(both, hs, strlen(hs));
    memcpy(both + strlen(hs), ping, pn);
    assert_int_equal(send(c->fd, both, strlen(hs) + pn, MSG_NOSIGNAL), (ssize_t)(strlen(hs) + pn));
    c->len = 0;
    while (!memmem(c->buf, c->len, "\r\n\r\n", 4)) {
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        assert_true(r > 0);
        c->len += (size_t)r;
    }
    size_t hlen = (size_t)((uint8_t *)memmem(c->buf, c->len, "\r\n\r\n", 4) - c->buf) + 4;
    memcpy(head, c->buf, hlen);
    head[hlen] = '\0';
    assert_memory_equal(head, "HTTP/1.1 101", 12);
    memmove(c->buf, c->buf + hlen, c->len - hlen);
    c->len -= hlen;
    assert_int_equal(ws_read(c, p, sizeof p, &len), PRISM_WS_PONG);
    assert_memory_equal(p, "early", 5);
    ws_write_frame(c, 0x88, "", 0, true); /* a close without a code is answered 1000 */
    ws_expect_close(c, PRISM_WS_CLOSE_NORMAL, false);
    wait_for(&fx->ctx.streams_done, done_before + 5);
    free(c);
}

static void test_destroy_during_ws(void **state)
{
    fixture *fx = *state; /* a server of its own for this test */
    int port = prism_http_server_port(fx->srv);
    int done_before = atomic_load(&fx->ctx.streams_done);
    ws_client *c[2];
    for (int i = 0; i < 2; i++) {
        c[i] = calloc(1, sizeof *c[i]);
        ws_open_ok(c[i], port, "/api/v1/ws/wait");
    }
    int64_t t0 = prism_mono_ms();
    prism_http_server_destroy(fx->srv);
    fx->srv = NULL;
    /* Its streams never end by themselves: destroy must end them, not wait
     * for them. The bound only tells that from a wait (20 s, not a measure
     * of speed: a loaded CI machine took over 2 s once). */
    assert_true(prism_mono_ms() - t0 < 20000);
    assert_int_equal(atomic_load(&fx->ctx.streams_done), done_before + 2);
    for (int i = 0; i < 2; i++) {
        ws_expect_close(c[i], PRISM_WS_CLOSE_GOING_AWAY, false);
        free(c[i]);
    }
}

int main(void)
{
    prism_log_init("test_http", PRISM_LOG_ERROR); /* the 500 test logs a warning */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_and_params),
        cmocka_unit_test(test_trailing_slash),
        cmocka_unit_test(test_query_int),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_healthz_without_token),
        cmocka_unit_test(test_public_routes),
        cmocka_unit_test(test_metrics_endpoint),
        cmocka_unit_test(test_not_found_and_method),
        cmocka_unit_test(test_body_limits),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_chunked_body_over_limit),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_no_reply_is_500),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_stream_client_leaves),
        cmocka_unit_test(test_fallback_500_is_json),
        cmocka_unit_test(test_error_message_not_utf8),
        cmocka_unit_test(test_url_not_utf8_or_nul),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_parser_errors_are_json),
        cmocka_unit_test(test_httpc_pool),
        cmocka_unit_test(test_early_replies_keep_the_connection),
        cmocka_unit_test(test_ws_accept_key),
        cmocka_unit_test(test_ws_parse),
        cmocka_unit_test(test_ws_stream),
        cmocka_unit_test(test_ws_handshake_refused),
        cmocka_unit_test_setup_teardown(test_destroy_during_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_deadline, setup_short_deadline, teardown),
        cmocka_unit_test_setup_teardown(test_eviction, setup_few_connections, teardown),
        cmocka_unit_test_setup_teardown(test_ws_ping_and_close, setup_short_deadline, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_during_ws, setup, teardown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
