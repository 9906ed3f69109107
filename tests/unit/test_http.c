/* Unit tests of libs/http: a server on a free loopback port with a small
 * route table, exercised through the client library (and a raw socket where
 * the client cannot shape the request). */
#include <arpa/inet.h>
#include <netinet/in.h>
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
    prism_http_reply_json(req, 200, json_pack("{s:s,s:s}", "id", prism_http_param(req, "id"),
                                              "part", prism_http_param(req, "part")));
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

static void echo(prism_http_req *req, void *ctx)
{
    json_t *doc = prism_http_body_json(req);
    if (doc)
        prism_http_reply_json(req, 200, doc);
}

static void silent(prism_http_req *req, void *ctx) {}

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
};

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

/* Sends raw bytes and reads the answer until the server closes. */
static size_t raw_exchange(int port, const char *request, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
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
    assert_int_equal(prism_httpc_json(fx->client, "POST", "/api/v1/echo", body, TIMEOUT_MS,
                                      &status, &doc, err, sizeof err),
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

#define CHUNKED_POST                                                                       \
    "POST /api/v1/echo HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer " TOKEN "\r\n"         \
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

int main(void)
{
    prism_log_init("test_http", PRISM_LOG_ERROR); /* the 500 test logs a warning */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_and_params),
        cmocka_unit_test(test_trailing_slash),
        cmocka_unit_test(test_query_int),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_healthz_without_token),
        cmocka_unit_test(test_metrics_endpoint),
        cmocka_unit_test(test_not_found_and_method),
        cmocka_unit_test(test_body_limits),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_chunked_body_over_limit),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_no_reply_is_500),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_stream_client_leaves),
        cmocka_unit_test_setup_teardown(test_destroy_during_stream, setup, teardown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
