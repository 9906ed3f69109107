/* Unit tests of libs/bus against a real nats-server started on a free
 * loopback port with token auth. Without a nats-server the test is skipped
 * (exit status 77). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "prism_bus.h"
#include "prism_time.h"

#define TOKEN "bus-test-token"
#define WAIT_MS 5000
#define SKIP 77

/* ---------- the nats-server under test ---------- */

static struct {
    char bin[PATH_MAX];
    int port;
    char url[64];
    pid_t pid; /* 0 when not running */
} nats;

static int find_server(void)
{
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s:/usr/sbin:/usr/local/sbin", path ? path : "");
    char *save = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(nats.bin, sizeof nats.bin, "%s/nats-server", *d ? d : ".");
        if (access(nats.bin, X_OK) == 0)
            return 0;
    }
    return -1;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void exec_server(pid_t parent)
{
    /* Dies with the test, whatever way the test ends. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    char port[16];
    snprintf(port, sizeof port, "%d", nats.port);
    execl(nats.bin, "nats-server", "-a", "127.0.0.1", "-p", port, "--auth", TOKEN, (char *)NULL);
    _exit(127);
}

static void stop_server(void)
{
    if (nats.pid <= 0)
        return;
    kill(nats.pid, SIGKILL);
    waitpid(nats.pid, NULL, 0);
    nats.pid = 0;
}

/* Starts the server on nats.port and waits until it accepts connections. */
static int start_server(void)
{
    pid_t parent = getpid();
    nats.pid = fork();
    if (nats.pid < 0)
        return -1;
    if (nats.pid == 0)
        exec_server(parent);
    int64_t deadline = prism_mono_ms() + WAIT_MS;
    while (prism_mono_ms() < deadline) {
        if (waitpid(nats.pid, NULL, WNOHANG) == nats.pid) {
            nats.pid = 0;
            return -1;
        }
        if (port_open(nats.port))
            return 0;
        prism_sleep_ms(10);
    }
    stop_server();
    return -1;
}

static int group_setup(void **state)
{
    nats.port = free_port();
    snprintf(nats.url, sizeof nats.url, "nats://127.0.0.1:%d", nats.port);
    if (nats.port <= 0 || start_server() != 0) {
        fprintf(stderr, "cannot start %s on port %d\n", nats.bin, nats.port);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    stop_server();
    return 0;
}

/* ---------- helpers ---------- */

static prism_bus *connect_bus(const char *name)
{
    prism_bus *b = NULL;
    char err[256] = "";
    if (prism_bus_connect(&b, nats.url, TOKEN, name, WAIT_MS, err, sizeof err) != PRISM_BUS_OK)
        fail_msg("%s", err);
    assert_true(prism_bus_connected(b));
    return b;
}

typedef struct inbox {
    pthread_mutex_t lock;
    int count;
    char subject[128];
    char data[256];
} inbox;

static void inbox_init(inbox *in)
{
    memset(in, 0, sizeof *in);
    pthread_mutex_init(&in->lock, NULL);
}

static void on_message(prism_bus *bus, const char *subject, const char *reply, const char *data,
                       size_t len, void *ud)
{
    inbox *in = ud;
    pthread_mutex_lock(&in->lock);
    in->count++;
    snprintf(in->subject, sizeof in->subject, "%s", subject);
    snprintf(in->data, sizeof in->data, "%.*s", (int)len, data);
    pthread_mutex_unlock(&in->lock);
}

static int inbox_count(inbox *in)
{
    pthread_mutex_lock(&in->lock);
    int n = in->count;
    pthread_mutex_unlock(&in->lock);
    return n;
}

/* Waits until the inboxes together hold `want` messages; returns how many they hold. */
static int wait_count(inbox *a, inbox *b, int want)
{
    int64_t deadline = prism_mono_ms() + WAIT_MS;
    int n;
    while ((n = inbox_count(a) + (b ? inbox_count(b) : 0)) < want && prism_mono_ms() < deadline)
        prism_sleep_ms(5);
    return n;
}

/* Answers {"echo": request} (or text that is not JSON on "*.raw" subjects). */
static void on_echo(prism_bus *bus, const char *subject, const char *reply, const char *data,
                    size_t len, void *ud)
{
    if (!reply)
        return;
    if (strstr(subject, ".raw")) {
        prism_bus_publish(bus, reply, "not json", 8);
        return;
    }
    json_t *doc = json_pack("{s:o?}", "echo", json_loadb(data, len, 0, NULL));
    prism_bus_publish_json(bus, reply, doc);
    json_decref(doc);
}

static void on_silence(prism_bus *bus, const char *subject, const char *reply, const char *data,
                       size_t len, void *ud)
{
}

/* Asks until the responder on `subject` answers: subscriptions made on another
 * connection take effect on the server a little later. */
static void await_responder(prism_bus *b, const char *subject)
{
    int64_t deadline = prism_mono_ms() + WAIT_MS;
    for (;;) {
        char *reply = NULL;
        int rc = prism_bus_request(b, subject, "{}", 2, 200, &reply, NULL);
        free(reply);
        if (rc == PRISM_BUS_OK)
            return;
        if (prism_mono_ms() > deadline)
            fail_msg("nobody answers on %s: %s", subject, prism_bus_last_error(b));
        prism_sleep_ms(10);
    }
}

/* ---------- tests ---------- */

static void test_publish_subscribe(void **state)
{
    prism_bus *b = connect_bus("pubsub");
    inbox in;
    inbox_init(&in);
    assert_int_equal(prism_bus_subscribe(b, "t.events.*", NULL, on_message, &in), PRISM_BUS_OK);
    assert_int_equal(prism_bus_publish(b, "t.events.a", "hello", 5), PRISM_BUS_OK);
    assert_int_equal(wait_count(&in, NULL, 1), 1);
    assert_string_equal(in.subject, "t.events.a");
    assert_string_equal(in.data, "hello");

    json_t *doc = json_pack("{s:i}", "k", 1);
    assert_int_equal(prism_bus_publish_json(b, "t.events.b", doc), PRISM_BUS_OK);
    json_decref(doc);
    assert_int_equal(prism_bus_publish(b, "t.other", "x", 1), PRISM_BUS_OK); /* not matched */
    assert_int_equal(wait_count(&in, NULL, 2), 2);
    pthread_mutex_lock(&in.lock);
    assert_string_equal(in.subject, "t.events.b");
    assert_string_equal(in.data, "{\"k\":1}");
    pthread_mutex_unlock(&in.lock);
    prism_bus_destroy(b);
    prism_bus_destroy(NULL);
    assert_int_equal(in.count, 2);
    pthread_mutex_destroy(&in.lock);
}

static void test_queue_group(void **state)
{
    enum { N = 40 };
    prism_bus *b1 = connect_bus("queue-1"), *b2 = connect_bus("queue-2");
    inbox w1, w2, all;
    inbox_init(&w1);
    inbox_init(&w2);
    inbox_init(&all);
    assert_int_equal(prism_bus_subscribe(b1, "t.work", "workers", on_message, &w1), 0);
    assert_int_equal(prism_bus_subscribe(b2, "t.work", "workers", on_message, &w2), 0);
    assert_int_equal(prism_bus_subscribe(b1, "t.work", NULL, on_message, &all), 0);
    /* b2's later subscription answering means its queue subscription is in place too. */
    assert_int_equal(prism_bus_subscribe(b2, "t.ready.q", NULL, on_echo, NULL), 0);
    await_responder(b1, "t.ready.q");

    for (int i = 0; i < N; i++)
        assert_int_equal(prism_bus_publish(b1, "t.work", "job", 3), PRISM_BUS_OK);
    assert_int_equal(wait_count(&all, NULL, N), N);
    assert_int_equal(wait_count(&w1, &w2, N), N);
    prism_sleep_ms(50); /* room for a duplicate to show up */
    prism_bus_destroy(b1);
    prism_bus_destroy(b2);
    /* Each message went to exactly one member; both members got some. */
    assert_int_equal(w1.count + w2.count, N);
    assert_true(w1.count > 0 && w2.count > 0);
    assert_int_equal(all.count, N);
    pthread_mutex_destroy(&w1.lock);
    pthread_mutex_destroy(&w2.lock);
    pthread_mutex_destroy(&all.lock);
}

static void test_request_reply(void **state)
{
    prism_bus *server = connect_bus("responder"), *client = connect_bus("requester");
    assert_int_equal(prism_bus_subscribe(server, "t.svc.*", "svc", on_echo, NULL), 0);
    await_responder(client, "t.svc.echo");

    json_t *req = json_pack("{s:i,s:s}", "x", 7, "s", "hi"), *reply = NULL;
    assert_int_equal(prism_bus_request_json(client, "t.svc.echo", req, WAIT_MS, &reply),
                     PRISM_BUS_OK);
    assert_non_null(reply);
    assert_true(json_equal(json_object_get(reply, "echo"), req));
    json_decref(reply);
    /* An answer that is not JSON: OK, but no document. */
    assert_int_equal(prism_bus_request_json(client, "t.svc.raw", req, WAIT_MS, &reply),
                     PRISM_BUS_OK);
    assert_null(reply);
    json_decref(req);

    char *raw = NULL;
    size_t len = 0;
    assert_int_equal(prism_bus_request(client, "t.svc.raw", "q", 1, WAIT_MS, &raw, &len), 0);
    assert_int_equal(len, 8);
    assert_string_equal(raw, "not json");
    free(raw);
    prism_bus_destroy(client);
    prism_bus_destroy(server);
}

static void test_request_timeout(void **state)
{
    prism_bus *b = connect_bus("timeouts");
    json_t *req = json_object(), *reply = NULL;

    int64_t t0 = prism_mono_ms();
    int rc = prism_bus_request_json(b, "t.nobody.home", req, 300, &reply);
    assert_true(rc == PRISM_BUS_NO_RESPONDERS || rc == PRISM_BUS_TIMEOUT);
    assert_true(prism_mono_ms() - t0 < 2000);
    assert_null(reply);
    assert_true(strlen(prism_bus_last_error(b)) > 0);

    /* Somebody listens but never answers: a timeout, after about the time asked. */
    assert_int_equal(prism_bus_subscribe(b, "t.silent", NULL, on_silence, NULL), 0);
    t0 = prism_mono_ms();
    assert_int_equal(prism_bus_request_json(b, "t.silent", req, 200, &reply), PRISM_BUS_TIMEOUT);
    int64_t took = prism_mono_ms() - t0;
    assert_true(took >= 190 && took < 2000);
    assert_null(reply);
    json_decref(req);
    prism_bus_destroy(b);
}

/* Three peers at once: one answers, one is not there, one never answers.
 * One wait for them all, about the time asked. */
static void test_request_all(void **state)
{
    prism_bus *server = connect_bus("peers"), *client = connect_bus("asker");
    assert_int_equal(prism_bus_subscribe(server, "t.all.live", NULL, on_echo, NULL), 0);
    assert_int_equal(prism_bus_subscribe(server, "t.all.silent", NULL, on_silence, NULL), 0);
    await_responder(client, "t.all.live");
    const char *subjects[4] = {"t.all.silent", "t.all.live", "t.all.gone", "t.all.live"};
    int rc[4];
    int64_t t0 = prism_mono_ms();
    assert_int_equal(prism_bus_request_all(client, subjects, 4, "{}", 2, 300, rc), PRISM_BUS_OK);
    int64_t took = prism_mono_ms() - t0;
    assert_int_equal(rc[0], PRISM_BUS_TIMEOUT);
    assert_int_equal(rc[1], PRISM_BUS_OK);
    assert_int_equal(rc[2], PRISM_BUS_NO_RESPONDERS);
    assert_int_equal(rc[3], PRISM_BUS_OK);
    assert_true(took >= 290 && took < 2000);
    /* All answered: no wait for the deadline. */
    const char *live[2] = {"t.all.live", "t.all.gone"};
    t0 = prism_mono_ms();
    assert_int_equal(prism_bus_request_all(client, live, 2, "{}", 2, 5000, rc), PRISM_BUS_OK);
    assert_int_equal(rc[0], PRISM_BUS_OK);
    assert_int_equal(rc[1], PRISM_BUS_NO_RESPONDERS);
    assert_true(prism_mono_ms() - t0 < 4000);
    assert_int_equal(prism_bus_request_all(client, live, 0, "{}", 2, 5000, rc), PRISM_BUS_OK);
    prism_bus_destroy(client);
    prism_bus_destroy(server);
}

static void expect_refused(const char *token)
{
    prism_bus *b = NULL;
    char err[256] = "";
    int64_t t0 = prism_mono_ms();
    assert_int_equal(prism_bus_connect(&b, nats.url, token, "intruder", 1000, err, sizeof err),
                     PRISM_BUS_ERROR);
    int64_t took = prism_mono_ms() - t0;
    assert_null(b);
    assert_non_null(strstr(err, nats.url));
    /* refused at once with the server's reason, not left retrying until the wait ends */
    assert_non_null(strstr(err, "Authorization Violation"));
    assert_true(took < 1000 + 2500);
}

static void test_wrong_token(void **state)
{
    expect_refused("not-the-token");
    expect_refused(NULL);
}

static bool wait_connected(prism_bus *a, prism_bus *b, bool want)
{
    int64_t deadline = prism_mono_ms() + 2 * WAIT_MS;
    while ((prism_bus_connected(a) != want || prism_bus_connected(b) != want) &&
           prism_mono_ms() < deadline)
        prism_sleep_ms(10);
    return prism_bus_connected(a) == want && prism_bus_connected(b) == want;
}

static void test_reconnect(void **state)
{
    prism_bus *server = connect_bus("rc-responder"), *client = connect_bus("rc-requester");
    inbox in;
    inbox_init(&in);
    assert_int_equal(prism_bus_subscribe(server, "t.rc.echo", NULL, on_echo, NULL), 0);
    assert_int_equal(prism_bus_subscribe(server, "t.rc.msg", NULL, on_message, &in), 0);
    await_responder(client, "t.rc.echo");

    stop_server(); /* killed, not shut down */
    assert_true(wait_connected(server, client, false));
    /* Published while the broker is away: buffered and sent after reconnecting. */
    assert_int_equal(prism_bus_publish(server, "t.rc.msg", "while away", 10), PRISM_BUS_OK);
    assert_int_equal(start_server(), 0);
    assert_true(wait_connected(server, client, true));

    await_responder(client, "t.rc.echo"); /* subscriptions came back */
    assert_int_equal(wait_count(&in, NULL, 1), 1);
    assert_string_equal(in.data, "while away");
    prism_bus_destroy(client);
    prism_bus_destroy(server);
    pthread_mutex_destroy(&in.lock);
}

int main(void)
{
    if (find_server() != 0) {
        printf("nats-server not found on PATH or in /usr/sbin: skipping the bus tests\n");
        return SKIP;
    }
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_subscribe), cmocka_unit_test(test_queue_group),
        cmocka_unit_test(test_request_reply),     cmocka_unit_test(test_request_timeout),
        cmocka_unit_test(test_wrong_token),       cmocka_unit_test(test_reconnect),
        cmocka_unit_test(test_request_all),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    stop_server();
    return rc;
}
