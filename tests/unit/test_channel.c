/* DAG channels (libs/channel): the shared-memory ring across processes and
 * threads (ordering, fan-out, timeouts, close, dead peers) and the socket
 * transport (round trips, partial reads and writes, vanishing peers).
 *
 * Every loop is bounded in count and in time; nothing asserts a duration.
 * The fan-out test runs its endpoints as threads of one process on one
 * mapping, so that ThreadSanitizer sees every access to the ring. */
#include <errno.h>
#include <fcntl.h>
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
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "chan_internal.h"
#include "prism_channel.h"

#define LONG_MS 20000 /* a wait that only a bug can exhaust */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---------- values that check themselves ---------- */

/* A value: its sequence number, its payload's length and checksum, then a
 * payload derived from the sequence number. */
typedef struct head {
    uint64_t seq;
    uint32_t len;
    uint32_t sum;
} head;

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static void fill(uint8_t *p, size_t n, uint64_t seq)
{
    uint64_t x = seq * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)x;
    }
}

/* Writes value `seq` with a payload of `len` bytes into `buf`; its size. */
static size_t make_value(void *buf, uint64_t seq, size_t len)
{
    head h = {.seq = seq, .len = (uint32_t)len};
    uint8_t *payload = (uint8_t *)buf + sizeof h;
    fill(payload, len, seq);
    h.sum = fnv1a(payload, len);
    memcpy(buf, &h, sizeof h);
    return sizeof h + len;
}

/* Whether `buf` holds value `seq`, whole. */
static bool check_value(const void *buf, size_t n, uint64_t seq)
{
    head h;
    if (n < sizeof h)
        return false;
    memcpy(&h, buf, sizeof h);
    const uint8_t *payload = (const uint8_t *)buf + sizeof h;
    return h.seq == seq && h.len == n - sizeof h && fnv1a(payload, h.len) == h.sum;
}

/* Payload lengths 0..240 that vary from value to value. */
static size_t vary_len(uint64_t seq) { return (size_t)((seq * 2654435761u) % 241); }

/* ---------- processes ---------- */

/* The child's exit status, waiting at most `ms`; a child still running then
 * is killed and -1 returned, so that a bug fails the test instead of hanging it. */
static int wait_child(pid_t pid, int ms)
{
    int64_t end = now_ns() + (int64_t)ms * 1000000;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0 && errno != EINTR)
            return -2;
        if (now_ns() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        sleep_ms(1);
    }
}

static prism_chan *make_chan(uint32_t nslots, uint32_t nreaders, uint64_t max)
{
    prism_chan_options o = {.nslots = nslots, .nreaders = nreaders, .max_buf_size = max};
    prism_chan *ch = NULL;
    char err[256];
    prism_chan_status s = prism_chan_create(&ch, &o, err, sizeof err);
    if (s != PRISM_CHAN_OK)
        fail_msg("prism_chan_create: %s: %s", prism_chan_status_text(s), err);
    return ch;
}

/* ---------- shared memory ---------- */

static void test_shm_options_and_checks(void **state)
{
    prism_chan *ch = NULL;
    char err[256];
    prism_chan_options bad[] = {
        {.nslots = 4, .nreaders = 0, .max_buf_size = 8},
        {.nslots = 4, .nreaders = PRISM_CHAN_MAX_READERS + 1, .max_buf_size = 8},
        {.nslots = 4, .nreaders = 1, .max_buf_size = 0},
        {.nslots = PRISM_CHAN_MAX_SLOTS + 1, .nreaders = 1, .max_buf_size = 8},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(prism_chan_create(&ch, &bad[i], err, sizeof err), PRISM_CHAN_INVALID);
        assert_null(ch);
    }

    ch = make_chan(0, 2, 100);
    prism_chan_options o;
    prism_chan_get_options(ch, &o);
    assert_int_equal(o.nslots, PRISM_CHAN_DEFAULT_SLOTS);
    assert_int_equal(o.nreaders, 2);
    assert_int_equal(o.max_buf_size, 100);

    /* One writer, each reader index once, indices in range. */
    prism_chan_writer *w, *w2;
    prism_chan_reader *r, *r2;
    assert_int_equal(prism_chan_writer_open_shm(&w, ch, NULL), PRISM_CHAN_OK);
    assert_int_equal(prism_chan_writer_open_shm(&w2, ch, NULL), PRISM_CHAN_IN_USE);
    assert_null(w2);
    assert_int_equal(prism_chan_reader_open_shm(&r, ch, 2, NULL), PRISM_CHAN_INVALID);
    assert_int_equal(prism_chan_reader_open_shm(&r, ch, 1, NULL), PRISM_CHAN_OK);
    assert_int_equal(prism_chan_reader_open_shm(&r2, ch, 1, NULL), PRISM_CHAN_IN_USE);
    assert_int_equal(prism_chan_writer_capacity(w), 100);

    /* A second mapping of the same segment through its fd sees the same ring. */
    prism_chan *ch2;
    assert_int_equal(prism_chan_open_fd(&ch2, prism_chan_fd(ch), err, sizeof err), PRISM_CHAN_OK);
    assert_int_equal(prism_chan_reader_open_shm(&r2, ch2, 0, NULL), PRISM_CHAN_OK);
    assert_int_equal(prism_chan_write(w, "hello", 5, 0), PRISM_CHAN_OK);
    const void *p;
    size_t n;
    assert_int_equal(prism_chan_begin_read(r2, &p, &n, 0), PRISM_CHAN_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(p, "hello", 5);
    /* Out of order calls. */
    assert_int_equal(prism_chan_begin_read(r2, &p, &n, 0), PRISM_CHAN_INVALID);
    assert_int_equal(prism_chan_end_read(r2), PRISM_CHAN_OK);
    assert_int_equal(prism_chan_end_read(r2), PRISM_CHAN_INVALID);
    assert_int_equal(prism_chan_end_write(w, 1), PRISM_CHAN_INVALID);

    /* Too large: refused before any wait; a begun write stays begun. */
    uint8_t big[101] = {0};
    assert_int_equal(prism_chan_write(w, big, sizeof big, 0), PRISM_CHAN_TOO_LARGE);
    void *wp;
    assert_int_equal(prism_chan_begin_write(w, &wp, 0), PRISM_CHAN_OK);
    assert_int_equal(prism_chan_begin_write(w, &wp, 0), PRISM_CHAN_INVALID);
    assert_int_equal(prism_chan_end_write(w, 101), PRISM_CHAN_TOO_LARGE);
    memcpy(wp, "abc", 3);
    assert_int_equal(prism_chan_end_write(w, 3), PRISM_CHAN_OK);
    /* An aborted write publishes nothing. */
    assert_int_equal(prism_chan_begin_write(w, &wp, 0), PRISM_CHAN_OK);
    memcpy(wp, "zzz", 3);
    prism_chan_abort_write(w);
    assert_int_equal(prism_chan_write(w, "xy", 2, 0), PRISM_CHAN_OK);
    assert_int_equal(prism_chan_begin_read(r2, &p, &n, 0), PRISM_CHAN_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(p, "abc", 3);
    prism_chan_end_read(r2);
    assert_int_equal(prism_chan_begin_read(r2, &p, &n, 0), PRISM_CHAN_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(p, "xy", 2);
    prism_chan_end_read(r2);
    assert_int_equal(prism_chan_begin_read(r2, &p, &n, 0), PRISM_CHAN_TIMEOUT);

    prism_chan_reader_destroy(r2);
    prism_chan_reader_destroy(r);
    prism_chan_writer_destroy(w);
    /* A writer's place is taken once: the sequence started with it. */
    assert_int_equal(prism_chan_writer_open_shm(&w2, ch, NULL), PRISM_CHAN_IN_USE);
    prism_chan_destroy(ch2);
    prism_chan_destroy(ch);
    prism_chan_destroy(NULL);

    /* Segments that are not a channel's. */
    int fd = memfd_create("not-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 1 << 16), 0);
    assert_int_equal(prism_chan_open_fd(&ch, fd, err, sizeof err), PRISM_CHAN_PROTOCOL);
    assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
    assert_int_equal(prism_chan_open_fd(&ch, fd, err, sizeof err), PRISM_CHAN_PROTOCOL);
    assert_null(ch);
    close(fd);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    assert_int_equal(prism_chan_open_fd(&ch, pfd[0], err, sizeof err), PRISM_CHAN_PROTOCOL);
    close(pfd[0]);
    close(pfd[1]);

    /* An fd message without an fd. */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(write(sv[0], "x", 1), 1);
    int got = -1;
    assert_int_equal(prism_chan_recv_fd(sv[1], &got), -1);
    assert_int_equal(errno, EPROTO);
    close(sv[0]);
    close(sv[1]);
}

/* One writer and one reader in two processes, the segment passed with
 * SCM_RIGHTS: every value arrives once, in order, whole. */
static void test_shm_order_two_processes(void **state)
{
    const uint64_t count = 1000000;
    const int64_t budget_ns = 60LL * 1000000000; /* a loaded machine stops early, checked */
    prism_chan *ch = make_chan(8, 1, sizeof(head) + 256);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        int fd, code = 0;
        prism_chan *mine;
        prism_chan_reader *r;
        if (prism_chan_recv_fd(sv[1], &fd) != 0 ||
            prism_chan_open_fd(&mine, fd, NULL, 0) != PRISM_CHAN_OK ||
            prism_chan_reader_open_shm(&r, mine, 0, NULL) != PRISM_CHAN_OK)
            _exit(10);
        close(fd);
        uint64_t next = 1;
        for (;;) {
            const void *p;
            size_t n;
            prism_chan_status s = prism_chan_begin_read(r, &p, &n, LONG_MS);
            if (s == PRISM_CHAN_CLOSED)
                break;
            if (s != PRISM_CHAN_OK) {
                code = 11;
                break;
            }
            if (!check_value(p, n, next)) {
                code = 12;
                break;
            }
            prism_chan_end_read(r);
            next++;
        }
        uint64_t got = next - 1;
        if (write(sv[1], &got, sizeof got) != (ssize_t)sizeof got)
            code = 13;
        prism_chan_reader_destroy(r);
        prism_chan_destroy(mine);
        _exit(code);
    }
    close(sv[1]);
    assert_int_equal(prism_chan_send_fd(sv[0], prism_chan_fd(ch)), 0);
    prism_chan_writer *w;
    assert_int_equal(prism_chan_writer_open_shm(&w, ch, NULL), PRISM_CHAN_OK);
    int64_t end = now_ns() + budget_ns;
    uint64_t written = 0;
    prism_chan_status s = PRISM_CHAN_OK;
    for (uint64_t seq = 1; seq <= count; seq++) {
        void *p;
        if ((s = prism_chan_begin_write(w, &p, LONG_MS)) != PRISM_CHAN_OK)
            break;
        if ((s = prism_chan_end_write(w, make_value(p, seq, vary_len(seq)))) != PRISM_CHAN_OK)
            break;
        written = seq;
        if (seq % 4096 == 0 && now_ns() > end)
            break;
    }
    assert_int_equal(prism_chan_writer_close(w, 0), PRISM_CHAN_OK);
    uint64_t got = 0;
    ssize_t rn = read(sv[0], &got, sizeof got);
    int code = wait_child(pid, LONG_MS);
    if (written < count)
        print_message("only %llu values within the time bound (all checked)\n",
                      (unsigned long long)written);
    assert_int_equal(s, PRISM_CHAN_OK);
    assert_int_equal(code, 0);
    assert_int_equal(rn, sizeof got);
    assert_int_equal(got, written);
    prism_chan_writer_destroy(w);
    prism_chan_destroy(ch);
    close(sv[0]);
}

/* Fan-out: three reader threads, one of them slow. Every reader gets every
 * value whole, and the writer is never more than nslots values ahead of the
 * slowest: no slot is reused before all readers released it. */
typedef struct fan_reader {
    prism_chan *ch;
    uint32_t index;
    bool slow;
    prism_chan_wait wait;
    uint32_t nslots;
    _Atomic uint64_t *written; /* values the writer finished publishing */
    uint64_t got;
    int errors;
    prism_chan_status last;
} fan_reader;

static void *fan_reader_main(void *arg)
{
    fan_reader *f = arg;
    prism_chan_reader *r;
    f->last = prism_chan_reader_open_shm(&r, f->ch, f->index, &f->wait);
    if (f->last != PRISM_CHAN_OK)
        return NULL;
    for (uint64_t k = 1;; k++) {
        const void *p;
        size_t n;
        f->last = prism_chan_begin_read(r, &p, &n, LONG_MS);
        if (f->last != PRISM_CHAN_OK)
            break;
        /* Holding value k, the writer can have published at most up to
         * k - 1 + nslots (value k + nslots would take this slot). */
        if (!check_value(p, n, k) || atomic_load(f->written) > k - 1 + f->nslots)
            f->errors++;
        if (f->slow && k % 500 == 0) {
            sleep_ms(2); /* hold the slot while the writer runs into the full ring */
            if (!check_value(p, n, k) || atomic_load(f->written) > k - 1 + f->nslots)
                f->errors++;
        }
        prism_chan_end_read(r);
        f->got = k;
    }
    prism_chan_reader_destroy(r);
    return NULL;
}

static void test_shm_fanout_slow_reader(void **state)
{
    const uint32_t nslots = 4;
    const uint64_t count = 20000;
    prism_chan *ch = make_chan(nslots, 3, sizeof(head) + 256);
    _Atomic uint64_t written = 0;
    fan_reader f[3];
    pthread_t t[3];
    for (uint32_t i = 0; i < 3; i++) {
        f[i] = (fan_reader){
            .ch = ch, .index = i, .slow = i == 2, .nslots = nslots, .written = &written};
        /* Reader 1 sleeps at once: the futex path, under the same checks. */
        f[i].wait = (prism_chan_wait){.spin_us = i == 1 ? 0 : 50};
        assert_int_equal(pthread_create(&t[i], NULL, fan_reader_main, &f[i]), 0);
    }
    prism_chan_writer *w;
    assert_int_equal(prism_chan_writer_open_shm(&w, ch, NULL), PRISM_CHAN_OK);
    prism_chan_status s = PRISM_CHAN_OK;
    for (uint64_t seq = 1; seq <= count; seq++) {
        void *p;
        if ((s = prism_chan_begin_write(w, &p, LONG_MS)) != PRISM_CHAN_OK)
            break;
        prism_chan_end_write(w, make_value(p, seq, vary_len(seq)));
        atomic_store(&written, seq);
    }
    prism_chan_writer_close(w, 0);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(s, PRISM_CHAN_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f[i].last, PRISM_CHAN_CLOSED);
        assert_int_equal(f[i].errors, 0);
        assert_int_equal(f[i].got, count);
    }
    prism_chan_writer_destroy(w);
    prism_chan_destroy(ch);
}

/* Timeouts on both sides, spinning first or sleeping at once: a timeout
 * changes nothing, and the values come afterwards in order. */
static void test_shm_timeouts(void **state)
{
    for (int spin = 0; spin < 2; spin++) {
        prism_chan_wait wait = {.spin_us = spin ? 50 : 0, .liveness_ms = 10};
        prism_chan *ch = make_chan(4, 1, 64);
        prism_chan_writer *w;
        prism_chan_reader *r;
        assert_int_equal(prism_chan_writer_open_shm(&w, ch, &wait), PRISM_CHAN_OK);
        assert_int_equal(prism_chan_reader_open_shm(&r, ch, 0, &wait), PRISM_CHAN_OK);
        const void *p;
        size_t n;
        void *wp;
        assert_int_equal(prism_chan_begin_read(r, &p, &n, 30), PRISM_CHAN_TIMEOUT);
        assert_int_equal(prism_chan_begin_read(r, &p, &n, 0), PRISM_CHAN_TIMEOUT);
        for (uint64_t seq = 1; seq <= 4; seq++) {
            char v[64];
            assert_int_equal(prism_chan_write(w, v, make_value(v, seq, 8), 0), PRISM_CHAN_OK);
        }
        /* The ring is full: the writer times out and may simply try again. */
        assert_int_equal(prism_chan_begin_write(w, &wp, 30), PRISM_CHAN_TIMEOUT);
        assert_int_equal(prism_chan_begin_write(w, &wp, 0), PRISM_CHAN_TIMEOUT);
        assert_int_equal(prism_chan_write(w, "x", 1, 0), PRISM_CHAN_TIMEOUT);
        for (uint64_t seq = 1; seq <= 4; seq++) {
            assert_int_equal(prism_chan_begin_read(r, &p, &n, 0), PRISM_CHAN_OK);
            assert_true(check_value(p, n, seq));
            assert_int_equal(prism_chan_end_read(r), PRISM_CHAN_OK);
        }
        assert_int_equal(prism_chan_begin_read(r, &p, &n, 10), PRISM_CHAN_TIMEOUT);
        char v[64];
        assert_int_equal(prism_chan_write(w, v, make_value(v, 5, 8), 0), PRISM_CHAN_OK);
        assert_int_equal(prism_chan_begin_read(r, &p, &n, 0), PRISM_CHAN_OK);
        assert_true(check_value(p, n, 5));
        prism_chan_end_read(r);
        prism_chan_reader_destroy(r);
        prism_chan_writer_destroy(w);
        prism_chan_destroy(ch);
    }
}

/* The writer's close wakes readers asleep in other processes; each gets the
 * values published before it, then the end. */
static void test_shm_close_wakes_readers(void **state)
{
    prism_chan *ch = make_chan(4, 2, 64);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pids[2];
    for (uint32_t i = 0; i < 2; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            /* The mapping inherited across fork is the same shared segment. */
            prism_chan_wait wait = {.spin_us = 0};
            prism_chan_reader *r;
            if (prism_chan_reader_open_shm(&r, ch, i, &wait) != PRISM_CHAN_OK)
                _exit(10);
            if (write(ready[1], "R", 1) != 1)
                _exit(11);
            for (uint64_t k = 1;; k++) {
                const void *p;
                size_t n;
                prism_chan_status s = prism_chan_begin_read(r, &p, &n, LONG_MS);
                if (s == PRISM_CHAN_CLOSED)
                    _exit(k == 4 ? 0 : 12);
                if (s != PRISM_CHAN_OK || !check_value(p, n, k))
                    _exit(13);
                prism_chan_end_read(r);
            }
        }
    }
    char c;
    for (int i = 0; i < 2; i++)
        assert_int_equal(read(ready[0], &c, 1), 1);
    prism_chan_writer *w;
    assert_int_equal(prism_chan_writer_open_shm(&w, ch, NULL), PRISM_CHAN_OK);
    sleep_ms(20); /* likely asleep on the futex now (either way must work) */
    for (uint64_t seq = 1; seq <= 3; seq++) {
        char v[64];
        assert_int_equal(prism_chan_write(w, v, make_value(v, seq, 16), LONG_MS), PRISM_CHAN_OK);
    }
    sleep_ms(20);
    assert_int_equal(prism_chan_writer_close(w, 0), PRISM_CHAN_OK);
    assert_int_equal(prism_chan_writer_close(w, 0), PRISM_CHAN_OK); /* idempotent */
    void *wp;
    assert_int_equal(prism_chan_begin_write(w, &wp, 0), PRISM_CHAN_CLOSED);
    for (int i = 0; i < 2; i++)
        assert_int_equal(wait_child(pids[i], LONG_MS), 0);
    prism_chan_writer_destroy(w);
    prism_chan_destroy(ch);
    close(ready[0]);
    close(ready[1]);
}

/* A reader killed while holding a slot: the writer, waiting for that slot
 * without a bound, finds it dead instead of hanging; killed but not reaped
 * (a zombie) and reaped (gone) alike. */
static void test_shm_reader_killed(void **state)
{
    prism_chan *ch = make_chan(2, 1, 64);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prism_chan_reader *r;
        if (prism_chan_reader_open_shm(&r, ch, 0, NULL) != PRISM_CHAN_OK)
            _exit(10);
        const void *p;
        size_t n;
        if (prism_chan_begin_read(r, &p, &n, LONG_MS) != PRISM_CHAN_OK)
            _exit(11);
        if (write(ready[1], "R", 1) != 1)
            _exit(12);
        sleep_ms(50); /* the writer is probably waiting by now */
        raise(SIGKILL);
        _exit(13);
    }
    prism_chan_wait wait = {.spin_us = 0, .liveness_ms = 20};
    prism_chan_writer *w;
    assert_int_equal(prism_chan_writer_open_shm(&w, ch, &wait), PRISM_CHAN_OK);
    assert_int_equal(prism_chan_write(w, "1", 1, 0), PRISM_CHAN_OK);
    assert_int_equal(prism_chan_write(w, "2", 1, 0), PRISM_CHAN_OK);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    void *wp;
    assert_int_equal(prism_chan_begin_write(w, &wp, -1), PRISM_CHAN_PEER_DEAD);
    assert_int_equal(wait_child(pid, LONG_MS), 128 + SIGKILL);
    assert_int_equal(prism_chan_begin_write(w, &wp, 0), PRISM_CHAN_PEER_DEAD);
    prism_chan_writer_destroy(w);
    prism_chan_destroy(ch);
    close(ready[0]);
    close(ready[1]);
}

/* A writer killed without closing: the reader gets what it published, then
 * finds it dead. */
static void test_shm_writer_killed(void **state)
{
    prism_chan *ch = make_chan(4, 1, 64);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prism_chan_writer *w;
        if (prism_chan_writer_open_shm(&w, ch, NULL) != PRISM_CHAN_OK)
            _exit(10);
        for (uint64_t seq = 1; seq <= 2; seq++) {
            char v[64];
            if (prism_chan_write(w, v, make_value(v, seq, 8), LONG_MS) != PRISM_CHAN_OK)
                _exit(11);
        }
        raise(SIGKILL);
        _exit(12);
    }
    prism_chan_wait wait = {.spin_us = 0, .liveness_ms = 20};
    prism_chan_reader *r;
    assert_int_equal(prism_chan_reader_open_shm(&r, ch, 0, &wait), PRISM_CHAN_OK);
    const void *p;
    size_t n;
    for (uint64_t seq = 1; seq <= 2; seq++) {
        assert_int_equal(prism_chan_begin_read(r, &p, &n, LONG_MS), PRISM_CHAN_OK);
        assert_true(check_value(p, n, seq));
        prism_chan_end_read(r);
    }
    assert_int_equal(prism_chan_begin_read(r, &p, &n, -1), PRISM_CHAN_PEER_DEAD);
    assert_int_equal(wait_child(pid, LONG_MS), 128 + SIGKILL);
    prism_chan_reader_destroy(r);
    prism_chan_destroy(ch);
}

/* Readers that leave stop holding the writer back; with none left, the
 * writer is told once the ring fills. */
static void test_shm_readers_leave(void **state)
{
    prism_chan *ch = make_chan(2, 2, 64);
    prism_chan_writer *w;
    prism_chan_reader *a, *b;
    assert_int_equal(prism_chan_writer_open_shm(&w, ch, NULL), PRISM_CHAN_OK);
    assert_int_equal(prism_chan_reader_open_shm(&a, ch, 0, NULL), PRISM_CHAN_OK);
    assert_int_equal(prism_chan_reader_open_shm(&b, ch, 1, NULL), PRISM_CHAN_OK);
    assert_int_equal(prism_chan_write(w, "1", 1, 0), PRISM_CHAN_OK);
    assert_int_equal(prism_chan_write(w, "2", 1, 0), PRISM_CHAN_OK);
    const void *p;
    size_t n;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(prism_chan_begin_read(a, &p, &n, 0), PRISM_CHAN_OK);
        prism_chan_end_read(a);
    }
    assert_int_equal(prism_chan_write(w, "3", 1, 0), PRISM_CHAN_TIMEOUT); /* b holds it back */
    prism_chan_reader_destroy(b);
    assert_int_equal(prism_chan_write(w, "3", 1, 0), PRISM_CHAN_OK);
    prism_chan_reader_destroy(a);
    prism_chan_status s = PRISM_CHAN_OK;
    for (int i = 0; i < 10 && s == PRISM_CHAN_OK; i++)
        s = prism_chan_write(w, "x", 1, 0);
    assert_int_equal(s, PRISM_CHAN_CLOSED);
    prism_chan_writer_destroy(w);
    prism_chan_destroy(ch);
}

/* ---------- sockets ---------- */

static void small_buffers(int fd)
{
    int size = 4096;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}

typedef struct echo {
    int fd;
    uint64_t max;
    prism_chan_status last;
    uint64_t echoed;
} echo;

/* Sends back every value until the stream ends, then closes its side. */
static void *echo_main(void *arg)
{
    echo *e = arg;
    prism_chan_reader *r;
    prism_chan_writer *w;
    prism_chan_reader_open_socket(&r, e->fd, e->max, NULL);
    prism_chan_writer_open_socket(&w, e->fd, e->max, NULL);
    for (;;) {
        const void *p;
        size_t n;
        e->last = prism_chan_begin_read(r, &p, &n, LONG_MS);
        if (e->last != PRISM_CHAN_OK)
            break;
        prism_chan_status s = prism_chan_write(w, p, n, LONG_MS);
        prism_chan_end_read(r);
        if (s != PRISM_CHAN_OK) {
            e->last = s;
            break;
        }
        e->echoed++;
    }
    prism_chan_writer_close(w, LONG_MS);
    prism_chan_writer_destroy(w);
    prism_chan_reader_destroy(r);
    return NULL;
}

/* Round trips of values from empty to larger than the socket buffers (so
 * sends and receives are partial), then a clean end both ways. */
/* Each reader times one value in PRISM_CHAN_HIST_EVERY (publish to
 * begin_read) in the segment: another mapping of it reads the same counts. */
static void test_shm_latency_hist(void **state)
{
    prism_chan *ch = make_chan(16, 2, 64);
    prism_chan_writer *w;
    prism_chan_reader *r;
    assert_int_equal(prism_chan_writer_open_shm(&w, ch, NULL), PRISM_CHAN_OK);
    assert_int_equal(prism_chan_reader_open_shm(&r, ch, 0, NULL), PRISM_CHAN_OK);
    int n = PRISM_CHAN_HIST_EVERY + 1; /* the 1st and the 9th are timed */
    for (int i = 0; i < n; i++)
        assert_int_equal(prism_chan_write(w, "x", 1, 0), PRISM_CHAN_OK);
    usleep(3000); /* every value waits at least 3 ms: bucket 12 or above */
    for (int i = 0; i < n; i++) {
        const void *buf;
        size_t len;
        assert_int_equal(prism_chan_begin_read(r, &buf, &len, 0), PRISM_CHAN_OK);
        prism_chan_end_read(r);
    }
    char err[256];
    prism_chan *other;
    assert_int_equal(prism_chan_open_fd(&other, prism_chan_fd(ch), err, sizeof err), PRISM_CHAN_OK);
    prism_chan_hist h, none;
    prism_chan_reader_hist(other, 0, &h);
    prism_chan_reader_hist(other, 1, &none);
    uint64_t timed = 0, slow = 0;
    for (int i = 0; i < PRISM_CHAN_HIST_BUCKETS; i++) {
        timed += h.count[i];
        slow += i >= 12 ? h.count[i] : 0;
        assert_int_equal(none.count[i], 0);
    }
    assert_int_equal(timed, 2);
    assert_int_equal(slow, 2);
    assert_true(h.sum_ns >= 2 * 3000000ull);
    prism_chan_reader_hist(other, 2, &none); /* out of range: zero */
    assert_int_equal(none.sum_ns, 0);
    prism_chan_destroy(other);
    prism_chan_reader_destroy(r);
    prism_chan_writer_destroy(w);
    prism_chan_destroy(ch);
}

static void test_sock_round_trips(void **state)
{
    const uint64_t max = 512 << 10;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    small_buffers(sv[0]);
    small_buffers(sv[1]);
    echo e = {.fd = sv[1], .max = max};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, echo_main, &e), 0);
    prism_chan_writer *w;
    prism_chan_reader *r;
    assert_int_equal(prism_chan_writer_open_socket(&w, sv[0], max, NULL), PRISM_CHAN_OK);
    assert_int_equal(prism_chan_reader_open_socket(&r, sv[0], max, NULL), PRISM_CHAN_OK);
    const size_t lens[] = {0, 1, 7, 100, 4096, 65537, 300000, max - sizeof(head)};
    const int rounds = 200;
    int ok = 0;
    for (int i = 0; i < rounds; i++) {
        uint64_t seq = (uint64_t)i + 1;
        void *p;
        if (prism_chan_begin_write(w, &p, LONG_MS) != PRISM_CHAN_OK)
            break;
        if (prism_chan_end_write(w, make_value(p, seq, lens[i % 8])) != PRISM_CHAN_OK)
            break;
        const void *q;
        size_t n;
        if (prism_chan_begin_read(r, &q, &n, LONG_MS) != PRISM_CHAN_OK)
            break;
        bool good = check_value(q, n, seq);
        prism_chan_end_read(r);
        if (!good)
            break;
        ok++;
    }
    assert_int_equal(ok, rounds);
    /* One value in 8 was stamped (the 1st, the 9th, ...) and timed. */
    prism_chan_hist h;
    prism_chan_reader_get_hist(r, &h);
    uint64_t timed = 0;
    for (int i = 0; i < PRISM_CHAN_HIST_BUCKETS; i++)
        timed += h.count[i];
    assert_int_equal(timed, (rounds + PRISM_CHAN_HIST_EVERY - 1) / PRISM_CHAN_HIST_EVERY);
    assert_true(h.sum_ns > 0);
    uint8_t big[64];
    assert_int_equal(prism_chan_write(w, big, (size_t)max + 1, 0), PRISM_CHAN_TOO_LARGE);
    assert_int_equal(prism_chan_writer_close(w, LONG_MS), PRISM_CHAN_OK);
    const void *q;
    size_t n;
    assert_int_equal(prism_chan_begin_read(r, &q, &n, LONG_MS), PRISM_CHAN_CLOSED);
    assert_int_equal(prism_chan_begin_read(r, &q, &n, 0), PRISM_CHAN_CLOSED);
    pthread_join(t, NULL);
    assert_int_equal(e.last, PRISM_CHAN_CLOSED);
    assert_int_equal(e.echoed, rounds);
    void *p;
    assert_int_equal(prism_chan_begin_write(w, &p, 0), PRISM_CHAN_CLOSED);
    prism_chan_writer_destroy(w);
    prism_chan_reader_destroy(r);
    close(sv[0]);
    close(sv[1]);

    prism_chan_writer *bad;
    assert_int_equal(prism_chan_writer_open_socket(&bad, 0, 0xffffffffu, NULL), PRISM_CHAN_INVALID);
    assert_int_equal(prism_chan_writer_open_socket(&bad, 0, 0x80000000u, NULL), PRISM_CHAN_INVALID);
    assert_int_equal(prism_chan_writer_open_socket(&bad, -1, 64, NULL), PRISM_CHAN_INVALID);
}

static void raw_write(int fd, const void *p, size_t n)
{
    assert_int_equal(write(fd, p, n), (ssize_t)n);
}

/* Frames that arrive a byte at a time, two in one segment, or half before a
 * timeout: the reader assembles them and loses nothing. */
static void test_sock_partial_reads(void **state)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    prism_chan_reader *r;
    assert_int_equal(prism_chan_reader_open_socket(&r, sv[1], 1024, NULL), PRISM_CHAN_OK);
    uint8_t frame[4 + 200];
    size_t len = make_value(frame + 4, 1, 200 - sizeof(head));
    frame[0] = (uint8_t)len;
    frame[1] = frame[2] = frame[3] = 0;
    const void *p;
    size_t n;
    for (size_t i = 0; i < 4 + len; i++) {
        assert_int_equal(prism_chan_begin_read(r, &p, &n, 0), PRISM_CHAN_TIMEOUT);
        raw_write(sv[0], frame + i, 1);
    }
    assert_int_equal(prism_chan_begin_read(r, &p, &n, 0), PRISM_CHAN_OK);
    assert_true(check_value(p, n, 1));
    prism_chan_end_read(r);

    /* Two frames in one write, then half a frame and a timeout. */
    uint8_t two[2 * (4 + 24)];
    for (int i = 0; i < 2; i++) {
        uint8_t *f = two + i * (4 + 24);
        size_t l = make_value(f + 4, 2 + (uint64_t)i, 24 - sizeof(head));
        f[0] = (uint8_t)l;
        f[1] = f[2] = f[3] = 0;
    }
    raw_write(sv[0], two, sizeof two);
    raw_write(sv[0], frame, 50);
    for (uint64_t seq = 2; seq <= 3; seq++) {
        assert_int_equal(prism_chan_begin_read(r, &p, &n, 0), PRISM_CHAN_OK);
        assert_true(check_value(p, n, seq));
        assert_int_equal(prism_chan_end_read(r), PRISM_CHAN_OK);
    }
    assert_int_equal(prism_chan_begin_read(r, &p, &n, 20), PRISM_CHAN_TIMEOUT);
    raw_write(sv[0], frame + 50, 4 + len - 50);
    assert_int_equal(prism_chan_begin_read(r, &p, &n, LONG_MS), PRISM_CHAN_OK);
    assert_true(check_value(p, n, 1));
    prism_chan_end_read(r);

    /* A stamped frame (top bit of the length): the bytes after the stamp,
     * and its age counted in the reader's histogram (5 ms: 4096-8192 µs). */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t stamp = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec - 5000000u;
    uint8_t stamped[4 + 8 + 24];
    size_t sl = make_value(stamped + 12, 4, 24 - sizeof(head));
    stamped[0] = (uint8_t)sl;
    stamped[1] = stamped[2] = 0;
    stamped[3] = 0x80;
    for (int i = 0; i < 8; i++)
        stamped[4 + i] = (uint8_t)(stamp >> (8 * i));
    raw_write(sv[0], stamped, 12 + sl);
    assert_int_equal(prism_chan_begin_read(r, &p, &n, LONG_MS), PRISM_CHAN_OK);
    assert_true(check_value(p, n, 4));
    prism_chan_end_read(r);
    prism_chan_hist h;
    prism_chan_reader_get_hist(r, &h);
    assert_int_equal(h.count[13], 1);
    assert_true(h.sum_ns >= 5000000u);

    /* A frame longer than the reader takes breaks the channel for good. */
    uint8_t huge[4] = {0x01, 0x04, 0, 0}; /* 1025 */
    raw_write(sv[0], huge, 4);
    assert_int_equal(prism_chan_begin_read(r, &p, &n, LONG_MS), PRISM_CHAN_PROTOCOL);
    assert_int_equal(prism_chan_begin_read(r, &p, &n, 0), PRISM_CHAN_PROTOCOL);
    prism_chan_reader_destroy(r);
    close(sv[0]);
    close(sv[1]);
}

typedef struct drain {
    int fd;
    uint64_t max;
    uint64_t got;
    int errors;
    prism_chan_status last;
} drain;

static void *drain_main(void *arg)
{
    drain *d = arg;
    prism_chan_reader *r;
    prism_chan_reader_open_socket(&r, d->fd, d->max, NULL);
    for (uint64_t k = 1;; k++) {
        const void *p;
        size_t n;
        d->last = prism_chan_begin_read(r, &p, &n, LONG_MS);
        if (d->last != PRISM_CHAN_OK)
            break;
        if (!check_value(p, n, k))
            d->errors++;
        prism_chan_end_read(r);
        d->got = k;
    }
    prism_chan_reader_destroy(r);
    return NULL;
}

/* A reader that does not read: the writer returns within its bound (TIMEOUT
 * before publishing, QUEUED after), and once the reader drains, everything
 * published arrives, the partly sent frame included. */
static void test_sock_writer_bound(void **state)
{
    const uint64_t max = 64 << 10;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    small_buffers(sv[0]);
    small_buffers(sv[1]);
    prism_chan_writer *w;
    assert_int_equal(prism_chan_writer_open_socket(&w, sv[0], max, NULL), PRISM_CHAN_OK);
    uint64_t published = 0;
    prism_chan_status s = PRISM_CHAN_OK;
    for (int i = 0; i < 1000 && s == PRISM_CHAN_OK; i++) {
        void *p;
        s = prism_chan_begin_write(w, &p, 10);
        if (s != PRISM_CHAN_OK)
            break;
        s = prism_chan_end_write(w, make_value(p, published + 1, max - sizeof(head)));
        if (s == PRISM_CHAN_OK || s == PRISM_CHAN_QUEUED)
            published++;
    }
    assert_true(s == PRISM_CHAN_QUEUED || s == PRISM_CHAN_TIMEOUT);
    assert_true(published >= 1);
    /* Still stuck: nothing changes, and a close in time says so too. */
    void *p;
    assert_int_equal(prism_chan_begin_write(w, &p, 10), PRISM_CHAN_TIMEOUT);
    assert_int_equal(prism_chan_writer_close(w, 10), PRISM_CHAN_TIMEOUT);

    drain d = {.fd = sv[1], .max = max};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, drain_main, &d), 0);
    assert_int_equal(prism_chan_writer_close(w, LONG_MS), PRISM_CHAN_OK);
    pthread_join(t, NULL);
    assert_int_equal(d.last, PRISM_CHAN_CLOSED);
    assert_int_equal(d.errors, 0);
    assert_int_equal(d.got, published);
    prism_chan_writer_destroy(w);
    close(sv[0]);
    close(sv[1]);
}

/* A peer that vanishes: mid-frame, between frames without closing, killed
 * in another process, and a reader gone under a writer (no SIGPIPE). */
static void test_sock_peer_vanishes(void **state)
{
    const void *p;
    size_t n;
    int sv[2];
    prism_chan_reader *r;

    /* Half a frame, then the socket closes. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(prism_chan_reader_open_socket(&r, sv[1], 64, NULL), PRISM_CHAN_OK);
    uint8_t frame[4 + 32];
    size_t len = make_value(frame + 4, 1, 32 - sizeof(head));
    frame[0] = (uint8_t)len;
    frame[1] = frame[2] = frame[3] = 0;
    raw_write(sv[0], frame, 10);
    close(sv[0]);
    assert_int_equal(prism_chan_begin_read(r, &p, &n, LONG_MS), PRISM_CHAN_PEER_DEAD);
    assert_int_equal(prism_chan_begin_read(r, &p, &n, 0), PRISM_CHAN_PEER_DEAD);
    prism_chan_reader_destroy(r);
    close(sv[1]);

    /* A whole frame, then the socket closes without the end mark. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(prism_chan_reader_open_socket(&r, sv[1], 64, NULL), PRISM_CHAN_OK);
    raw_write(sv[0], frame, sizeof frame);
    close(sv[0]);
    assert_int_equal(prism_chan_begin_read(r, &p, &n, LONG_MS), PRISM_CHAN_OK);
    assert_true(check_value(p, n, 1));
    prism_chan_end_read(r);
    assert_int_equal(prism_chan_begin_read(r, &p, &n, LONG_MS), PRISM_CHAN_PEER_DEAD);
    prism_chan_reader_destroy(r);
    close(sv[1]);

    /* A writer process killed after ten values. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[1]);
        prism_chan_writer *w;
        if (prism_chan_writer_open_socket(&w, sv[0], 64, NULL) != PRISM_CHAN_OK)
            _exit(10);
        for (uint64_t seq = 1; seq <= 10; seq++) {
            char v[64];
            if (prism_chan_write(w, v, make_value(v, seq, 16), LONG_MS) != PRISM_CHAN_OK)
                _exit(11);
        }
        raise(SIGKILL);
        _exit(12);
    }
    close(sv[0]);
    assert_int_equal(prism_chan_reader_open_socket(&r, sv[1], 64, NULL), PRISM_CHAN_OK);
    for (uint64_t seq = 1; seq <= 10; seq++) {
        assert_int_equal(prism_chan_begin_read(r, &p, &n, LONG_MS), PRISM_CHAN_OK);
        assert_true(check_value(p, n, seq));
        prism_chan_end_read(r);
    }
    assert_int_equal(prism_chan_begin_read(r, &p, &n, LONG_MS), PRISM_CHAN_PEER_DEAD);
    assert_int_equal(wait_child(pid, LONG_MS), 128 + SIGKILL);
    prism_chan_reader_destroy(r);
    close(sv[1]);

    /* The reader's socket closes under a writer: PEER_DEAD, not SIGPIPE. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    prism_chan_writer *w;
    assert_int_equal(prism_chan_writer_open_socket(&w, sv[0], 64, NULL), PRISM_CHAN_OK);
    close(sv[1]);
    prism_chan_status s = PRISM_CHAN_OK;
    for (int i = 0; i < 3 && s == PRISM_CHAN_OK; i++)
        s = prism_chan_write(w, "gone", 4, LONG_MS);
    assert_int_equal(s, PRISM_CHAN_PEER_DEAD);
    void *wp;
    assert_int_equal(prism_chan_begin_write(w, &wp, 0), PRISM_CHAN_PEER_DEAD);
    prism_chan_writer_destroy(w);
    close(sv[0]);
}

/* One value to several sockets: every reader gets every value in order, a
 * timeout on a full socket leaves nothing half-published, close ends each. */
static void test_fanout_writer(void **state)
{
    enum { N = 3 };
    int sv[N][2];
    prism_chan_writer *ws[N], *w;
    prism_chan_reader *rs[N];
    prism_chan_wait wait = {0};
    for (int i = 0; i < N; i++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv[i]), 0);
        assert_int_equal(prism_chan_writer_open_socket(&ws[i], sv[i][0], 64, &wait), PRISM_CHAN_OK);
        assert_int_equal(prism_chan_reader_open_socket(&rs[i], sv[i][1], 64, &wait), PRISM_CHAN_OK);
    }
    assert_int_equal(prism_chan_writer_open_fanout(&w, ws, N), PRISM_CHAN_OK);
    assert_int_equal(prism_chan_writer_capacity(w), 64);
    for (int v = 0; v < 50; v++) {
        char text[16];
        int n = snprintf(text, sizeof text, "v%d", v);
        prism_chan_status s = prism_chan_write(w, text, (size_t)n, 1000);
        assert_true(s == PRISM_CHAN_OK || s == PRISM_CHAN_QUEUED);
        for (int i = 0; i < N; i++) {
            const void *buf;
            size_t len;
            assert_int_equal(prism_chan_begin_read(rs[i], &buf, &len, 1000), PRISM_CHAN_OK);
            assert_int_equal(len, (size_t)n);
            assert_memory_equal(buf, text, len);
            prism_chan_end_read(rs[i]);
        }
    }
    void *buf;
    assert_int_equal(prism_chan_begin_write(w, &buf, 0), PRISM_CHAN_OK);
    prism_chan_abort_write(w); /* nothing published: the readers see no value */
    const void *got;
    size_t len;
    assert_int_equal(prism_chan_begin_read(rs[1], &got, &len, 0), PRISM_CHAN_TIMEOUT);
    assert_int_equal(prism_chan_writer_close(w, 1000), PRISM_CHAN_OK);
    for (int i = 0; i < N; i++)
        assert_int_equal(prism_chan_begin_read(rs[i], &got, &len, 1000), PRISM_CHAN_CLOSED);
    assert_int_equal(prism_chan_begin_write(w, &buf, 0), PRISM_CHAN_CLOSED);
    prism_chan_writer_destroy(w); /* and the writers it took */
    for (int i = 0; i < N; i++) {
        prism_chan_reader_destroy(rs[i]);
        close(sv[i][0]);
        close(sv[i][1]);
    }
}

/* A reader of test_fanout_shares_one_frame: `n` values of `size` bytes,
 * byte j of value v being v * 31 + j; `slow` sleeps between them, so that
 * its socket holds back what the writer sent the other one. */
typedef struct frame_reader {
    prism_chan_reader *r;
    int n, slow;
    size_t size;
    int bad; /* the first value that came wrong, plus one; 0: none */
} frame_reader;

static void *frame_reader_main(void *arg)
{
    frame_reader *f = arg;
    for (int v = 0; v < f->n && !f->bad; v++) {
        const uint8_t *buf;
        size_t len;
        if (prism_chan_begin_read(f->r, (const void **)&buf, &len, LONG_MS) != PRISM_CHAN_OK ||
            len != f->size) {
            f->bad = v + 1;
            break;
        }
        for (size_t j = 0; j < len && !f->bad; j++)
            if (buf[j] != (uint8_t)(v * 31 + (int)j))
                f->bad = v + 1;
        prism_chan_end_read(f->r);
        if (f->slow)
            sleep_ms(f->slow);
    }
    return NULL;
}

/* A fan-out over sockets sends the first writer's frame to every socket
 * (no copy): values larger than the sockets' buffers, a reader slower than
 * the other, so one socket still sends a value from that buffer while the
 * other took it all; the writer's next value must wait for both, and each
 * reader gets every byte of every value; close waits for the slow one. */
static void test_fanout_shares_one_frame(void **state)
{
    enum { N = 2, VALUES = 24 };
    const size_t size = 256 << 10;
    int sv[N][2];
    prism_chan_writer *ws[N], *w;
    frame_reader f[N];
    pthread_t t[N];
    prism_chan_wait wait = {0};
    for (int i = 0; i < N; i++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv[i]), 0);
        small_buffers(sv[i][0]);
        small_buffers(sv[i][1]);
        assert_int_equal(prism_chan_writer_open_socket(&ws[i], sv[i][0], size, &wait),
                         PRISM_CHAN_OK);
        f[i] = (frame_reader){.n = VALUES, .slow = i == 1 ? 2 : 0, .size = size};
        assert_int_equal(prism_chan_reader_open_socket(&f[i].r, sv[i][1], size, &wait),
                         PRISM_CHAN_OK);
    }
    assert_int_equal(prism_chan_writer_open_fanout(&w, ws, N), PRISM_CHAN_OK);
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_create(&t[i], NULL, frame_reader_main, &f[i]), 0);
    int shared = 0;
    for (int v = 0; v < VALUES; v++) {
        /* short waits: end_write then leaves a frame queued (QUEUED) */
        uint8_t *buf;
        prism_chan_status b = PRISM_CHAN_TIMEOUT;
        for (int64_t end = now_ns() + (int64_t)LONG_MS * 1000000;
             b == PRISM_CHAN_TIMEOUT && now_ns() < end;)
            b = prism_chan_begin_write(w, (void **)&buf, 1);
        assert_int_equal(b, PRISM_CHAN_OK);
        for (size_t j = 0; j < size; j++)
            buf[j] = (uint8_t)(v * 31 + (int)j);
        prism_chan_status s = prism_chan_end_write(w, size);
        assert_true(s == PRISM_CHAN_OK || s == PRISM_CHAN_QUEUED);
        /* the slow socket still sending the first one's buffer, not a copy */
        shared += ws[1]->u.sock.frame && ws[1]->u.sock.src == ws[0]->u.sock.buf;
    }
    assert_true(shared > 0);
    prism_chan_status s = PRISM_CHAN_TIMEOUT;
    for (int tries = 0; tries < 100 && s == PRISM_CHAN_TIMEOUT; tries++)
        s = prism_chan_writer_close(w, 200);
    assert_int_equal(s, PRISM_CHAN_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(f[i].bad, 0);
        const void *got;
        size_t len;
        assert_int_equal(prism_chan_begin_read(f[i].r, &got, &len, LONG_MS), PRISM_CHAN_CLOSED);
        prism_chan_reader_destroy(f[i].r);
    }
    prism_chan_writer_destroy(w);
    for (int i = 0; i < N; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
}

/* A spinning wait's guess that its CPU is shared: a yield that took a
 * microsecond more than the quickest one timed ran another process. Not a
 * fixed bound: on a VM where the syscall alone took 1.2 us, every yield
 * counted as shared, and waits yielded at every look (the raw ring's 8 B
 * round trip took 0.9 us instead of 0.3). */
static void test_yield_ran_other(void **state)
{
    _Atomic int64_t floor = INT64_MAX;
    assert_false(chan_yield_ran_other(&floor, 1200)); /* the first: the floor */
    assert_int_equal(atomic_load(&floor), 1200);
    assert_false(chan_yield_ran_other(&floor, 1300)); /* a slow syscall, nobody else ran */
    assert_false(chan_yield_ran_other(&floor, 2200));
    assert_true(chan_yield_ran_other(&floor, 2201)); /* another process ran */
    assert_true(chan_yield_ran_other(&floor, 50000));
    assert_int_equal(atomic_load(&floor), 1200);
    assert_false(chan_yield_ran_other(&floor, 150)); /* a quicker one lowers it */
    assert_true(chan_yield_ran_other(&floor, 1200));
    assert_int_equal(atomic_load(&floor), 150);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yield_ran_other),
        cmocka_unit_test(test_shm_options_and_checks),
        cmocka_unit_test(test_shm_order_two_processes),
        cmocka_unit_test(test_shm_fanout_slow_reader),
        cmocka_unit_test(test_shm_timeouts),
        cmocka_unit_test(test_shm_close_wakes_readers),
        cmocka_unit_test(test_shm_reader_killed),
        cmocka_unit_test(test_shm_writer_killed),
        cmocka_unit_test(test_shm_readers_leave),
        cmocka_unit_test(test_shm_latency_hist),
        cmocka_unit_test(test_sock_round_trips),
        cmocka_unit_test(test_sock_partial_reads),
        cmocka_unit_test(test_sock_writer_bound),
        cmocka_unit_test(test_sock_peer_vanishes),
        cmocka_unit_test(test_fanout_writer),
        cmocka_unit_test(test_fanout_shares_one_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
