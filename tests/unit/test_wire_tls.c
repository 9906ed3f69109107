/* wire_tls.{c,h} over real loopback sockets: a worker-side session in a
 * thread, a client through wire_connect. The certificate (for IP 127.0.0.1,
 * its own CA) is made with openssl(1) in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "prism_wire.h"
#include "prism_wire_conn.h"

#define BIG (1u << 20) /* many records, more than a socket buffer holds */

static char dir[] = "/tmp/prism-wire-tls-XXXXXX";
static int lfd = -1, port;

typedef struct server {
    bool tls;      /* else the peer is a plain worker port */
    int handshake; /* what the TLS handshake ended with */
    size_t echoed;
    pthread_t thread;
} server;

static void wait_fd(int fd, bool out)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | (out ? POLLOUT : 0)};
    poll(&p, 1, 5000);
}

/* Reads everything the client sends and sends it back, as a worker's
 * event loop would: non-blocking, draining the session before polling. */
static void echo(server *s, int fd, wire_tls *t)
{
    char *buf = malloc(BIG);
    size_t got = 0;
    while (got < BIG) {
        ssize_t n = wire_recv(fd, t, buf + got, BIG - got);
        if (n > 0)
            got += (size_t)n;
        else if (n < 0 && errno == EAGAIN)
            wait_fd(fd, false);
        else
            break;
    }
    if (got == BIG && wire_send_all(fd, t, buf, got) == 0)
        s->echoed = got;
    free(buf);
}

static void *serve(void *arg)
{
    server *s = arg;
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    if (!s->tls) { /* a plain port greets at once with its CHALLENGE */
        prism_buf hello;
        uint8_t nonce[WIRE_NONCE_BYTES];
        prism_buf_init(&hello, 256);
        wire_auth_challenge(&hello, nonce);
        wire_send_all(fd, NULL, hello.data, hello.len);
        prism_buf_free(&hello);
        char junk[256];
        while (recv(fd, junk, sizeof junk, 0) > 0) {
        }
        close(fd);
        return NULL;
    }
    wire_tls *t = NULL;
    s->handshake = wire_tls_accept(&t, fd);
    bool want_write = false;
    while (s->handshake == 0 && (s->handshake = wire_tls_handshake(t, &want_write)) == 0)
        wait_fd(fd, want_write);
    if (s->handshake == 1)
        echo(s, fd, t);
    wire_tls_destroy(t);
    close(fd);
    return NULL;
}

static void start(server *s, bool tls)
{
    *s = (server){.tls = tls};
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static int setup(void **state)
{
    if (!mkdtemp(dir))
        return -1;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout %s/key.pem -out %s/cert.pem -days 1 -subj /CN=prism-unit "
             "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
             dir, dir);
    if (system(cmd) != 0)
        return -1;
    char cert[300], key[300];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    setenv("PRISM_TLS_CERT", cert, 1);
    setenv("PRISM_TLS_KEY", key, 1);
    setenv("PRISM_TLS_CA", cert, 1);
    char err[256];
    if (wire_tls_server_setup(err, sizeof err) != 1)
        return -1;
    /* Any local address: 127.0.0.2 reaches it too, under a name the
     * certificate does not have. */
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
    socklen_t len = sizeof sa;
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 8) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    port = ntohs(sa.sin_port);
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return -1;
    close(lfd);
    return 0;
}

static int dial(const char *scheme_host, wire_tls **t, bool *config_error, char *err, size_t n)
{
    char addr[128];
    snprintf(addr, sizeof addr, "%s:%d", scheme_host, port);
    return wire_connect(addr, 5000, t, config_error, err, n);
}

/* A megabyte each way: partial sends, EAGAIN, records left in the session. */
static void test_round_trip(void **state)
{
    server s;
    start(&s, true);
    wire_tls *t = NULL;
    bool config_error;
    char err[512] = "";
    int fd = dial("tls:127.0.0.1", &t, &config_error, err, sizeof err);
    assert_true(fd >= 0);
    assert_non_null(t);
    char *out = malloc(BIG), *in = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        out[i] = (char)(i * 7 + i / 4096);
    size_t sent = 0, got = 0;
    while (got < BIG) { /* both at once, as the owner's io thread does */
        if (sent < BIG) {
            ssize_t n = wire_send(fd, t, out + sent, BIG - sent);
            if (n > 0)
                sent += (size_t)n;
            else
                assert_int_equal(errno, EAGAIN);
        }
        ssize_t n = wire_recv(fd, t, in + got, BIG - got);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        assert_true(n < 0 && errno == EAGAIN);
        assert_false(wire_tls_pending(t));
        wait_fd(fd, sent < BIG); /* a record half sent goes on only when we send again */
    }
    assert_memory_equal(in, out, BIG);
    wire_tls_destroy(t);
    close(fd);
    pthread_join(s.thread, NULL);
    assert_int_equal(s.handshake, 1);
    assert_int_equal(s.echoed, BIG);
    free(out);
    free(in);
}

static void test_wrong_name_is_refused(void **state)
{
    server s;
    start(&s, true);
    wire_tls *t = NULL;
    bool config_error;
    char err[512] = "";
    assert_int_equal(dial("tls:127.0.0.2", &t, &config_error, err, sizeof err), -1);
    assert_null(t);
    assert_true(config_error);
    assert_non_null(strstr(err, "not trusted"));
    pthread_join(s.thread, NULL);
    assert_int_equal(s.handshake, -1);
}

static void test_tls_client_at_a_plain_port(void **state)
{
    server s;
    start(&s, false);
    wire_tls *t = NULL;
    bool config_error;
    char err[512] = "";
    assert_int_equal(dial("tls:127.0.0.1", &t, &config_error, err, sizeof err), -1);
    assert_true(config_error);
    assert_non_null(strstr(err, "TLS handshake"));
    pthread_join(s.thread, NULL);
}

static void test_plain_client_at_a_tls_port(void **state)
{
    server s;
    start(&s, true);
    wire_tls *t = NULL;
    bool config_error;
    char err[512] = "";
    int fd = dial("tcp:127.0.0.1", &t, &config_error, err, sizeof err);
    assert_true(fd >= 0);
    assert_null(t);
    /* An AUTH frame in the clear is no TLS record: the server stops there. */
    uint8_t auth[69] = {65, 0, 0, 0, WIRE_AUTH};
    assert_int_equal(wire_send_all(fd, NULL, auth, sizeof auth), 0);
    pthread_join(s.thread, NULL);
    assert_int_equal(s.handshake, -1);
    close(fd);
}

static void test_addresses(void **state)
{
    char out[64];
    wire_tcp_address("10.0.0.1:7000", out, sizeof out);
    assert_string_equal(out, "tcp:10.0.0.1:7000");
    wire_tcp_address("tls:10.0.0.1:7000", out, sizeof out);
    assert_string_equal(out, "tls:10.0.0.1:7000");
    wire_tls *t = NULL;
    bool config_error;
    char err[128];
    assert_int_equal(wire_connect("tls:no-port", 100, &t, &config_error, err, sizeof err), -1);
    assert_true(config_error);
    wire_tls_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_wrong_name_is_refused),
        cmocka_unit_test(test_tls_client_at_a_plain_port),
        cmocka_unit_test(test_plain_client_at_a_tls_port),
        cmocka_unit_test(test_addresses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
