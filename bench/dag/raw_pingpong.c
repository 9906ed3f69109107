/* The raw hop: what one value costs between two processes on this machine,
 * the floor that accelerated DAGs (docs/dags.md) are measured against.
 *
 * Two processes play ping-pong: the first writes a value, the second reads
 * it and writes it back, the first reads the echo. Half a round trip is one
 * hop. Transports:
 *
 *   bare         a shared-memory ring written inline here, as small as it
 *                gets: per-slot sequence numbers, acquire/release atomics,
 *                spinning, no futex, no checks (the reference floor)
 *   chan         prism_channel's shared-memory ring, default wait (spin 50 µs,
 *                then futex)
 *   chan-futex   the same with spin_us = 0: every wait sleeps on the futex,
 *                every hop costs a wake-up (an idle DAG's first value)
 *   unix         a Unix socket pair, blocking read/write
 *   tcp          TCP over loopback, TCP_NODELAY, blocking read/write
 *   chan-unix    prism_channel's socket transport on a Unix socket pair
 *   chan-tcp     prism_channel's socket transport on TCP loopback
 *
 * Each hop moves the value once the way a DAG does: the sender writes it
 * (a memcpy into the slot, or write() from its buffer), the receiver uses it
 * where it lies (shm: in the slot; sockets: after read() into its buffer),
 * and the echo forwards what it received. The first 8 bytes carry the round
 * number, checked on return.
 *
 * Both processes are pinned to a CPU each when two are available
 * (sched_setaffinity); spinning transports need that to mean anything.
 *
 * With --chain K[,K...], instead: the value goes round k + 1 processes (a
 * chain of k echoes and back) through prism_channel rings, none pinned, 8 B
 * and 1 KiB: a compiled chain of k actors with nothing but the channel, the
 * floor its per-hop figure is compared with when there are more processes
 * than CPUs.
 *
 *   prism-dag-raw-pingpong [--quick] [--json] [--only NAME[,NAME...]] [--chain K[,K...]]
 *
 * Prints a Markdown table (or one JSON line per result with --json): median
 * and p99 of the one-way hop in µs, and messages per second (both directions
 * counted) over the whole timed run. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "prism_channel.h"

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* ---------- the bare ring: the floor ---------- */

#define BARE_SLOTS 8
#define MAX_CHAIN 8
#define LINE 64

typedef struct bare_ring {
    _Atomic uint64_t released; /* values the reader is done with */
    char pad[LINE - 8];
    /* then BARE_SLOTS slots: a line with seq and len, then the data */
} bare_ring;

typedef struct bare_slot {
    _Atomic uint64_t seq;
    uint64_t len;
    char pad[LINE - 16];
} bare_slot;

static size_t bare_stride(size_t payload) { return LINE + (payload + LINE - 1) / LINE * LINE; }
static size_t bare_size(size_t payload) { return LINE + BARE_SLOTS * bare_stride(payload); }

static bare_slot *bare_at(bare_ring *r, size_t payload, uint64_t k)
{
    return (bare_slot *)((uint8_t *)r + LINE +
                         (size_t)((k - 1) % BARE_SLOTS) * bare_stride(payload));
}

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* ---------- transports ---------- */

typedef struct pair {
    size_t payload;
    int fd[2];               /* sockets: the parent's end, the child's end */
    prism_chan *ping, *pong; /* chan: parent -> child, child -> parent */
    prism_chan_wait wait;
    uint8_t *bare; /* bare: two rings, ping then pong */
    size_t bare_len;
} pair;

typedef struct ep {
    pair *p;
    int which; /* 0 parent, 1 child */
    int fd;
    uint8_t *buf;
    prism_chan_writer *w;
    prism_chan_reader *r;
    bare_ring *out, *in;
    uint64_t out_next, in_next;
} ep;

typedef struct transport {
    const char *name;
    int (*open)(pair *p);
    void (*side)(pair *p, ep *e);
    void (*send)(ep *e, const uint8_t *src, size_t n);
    const uint8_t *(*recv)(ep *e, size_t n);
    void (*done)(ep *e);
    void (*close_side)(ep *e);
    void (*close_pair)(pair *p);
} transport;

/* bare */

static int bare_open(pair *p)
{
    p->bare_len = 2 * bare_size(p->payload);
    p->bare = mmap(NULL, p->bare_len, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    return p->bare == MAP_FAILED ? -1 : 0;
}

static void bare_side(pair *p, ep *e)
{
    bare_ring *ping = (bare_ring *)p->bare;
    bare_ring *pong = (bare_ring *)(p->bare + bare_size(p->payload));
    e->out = e->which == 0 ? ping : pong;
    e->in = e->which == 0 ? pong : ping;
    e->out_next = e->in_next = 1;
}

static void bare_send(ep *e, const uint8_t *src, size_t n)
{
    uint64_t k = e->out_next++;
    if (k > BARE_SLOTS)
        while (atomic_load_explicit(&e->out->released, memory_order_acquire) < k - BARE_SLOTS)
            relax();
    bare_slot *s = bare_at(e->out, e->p->payload, k);
    memcpy((uint8_t *)s + LINE, src, n);
    s->len = n;
    atomic_store_explicit(&s->seq, k, memory_order_release);
}

static const uint8_t *bare_recv(ep *e, size_t n)
{
    bare_slot *s = bare_at(e->in, e->p->payload, e->in_next);
    while (atomic_load_explicit(&s->seq, memory_order_acquire) != e->in_next)
        relax();
    return (const uint8_t *)s + LINE;
}

static void bare_done(ep *e)
{
    atomic_store_explicit(&e->in->released, e->in_next++, memory_order_release);
}

static void bare_close_side(ep *e) {}
static void bare_close_pair(pair *p) { munmap(p->bare, p->bare_len); }

/* chan (shared memory) */

static int chan_open(pair *p)
{
    prism_chan_options o = {.nslots = 8, .nreaders = 1, .max_buf_size = p->payload};
    char err[256];
    if (prism_chan_create(&p->ping, &o, err, sizeof err) != PRISM_CHAN_OK ||
        prism_chan_create(&p->pong, &o, err, sizeof err) != PRISM_CHAN_OK) {
        fprintf(stderr, "prism_chan_create: %s\n", err);
        return -1;
    }
    return 0;
}

static void chan_side(pair *p, ep *e)
{
    prism_chan *out = e->which == 0 ? p->ping : p->pong;
    prism_chan *in = e->which == 0 ? p->pong : p->ping;
    if (prism_chan_writer_open_shm(&e->w, out, &p->wait) != PRISM_CHAN_OK ||
        prism_chan_reader_open_shm(&e->r, in, 0, &p->wait) != PRISM_CHAN_OK) {
        fprintf(stderr, "opening the channel's endpoints failed\n");
        exit(1);
    }
}

static void chan_send(ep *e, const uint8_t *src, size_t n)
{
    void *buf;
    prism_chan_status s = prism_chan_begin_write(e->w, &buf, -1);
    if (s == PRISM_CHAN_OK) {
        memcpy(buf, src, n);
        s = prism_chan_end_write(e->w, n);
    }
    if (s != PRISM_CHAN_OK) {
        fprintf(stderr, "write: %s\n", prism_chan_status_text(s));
        exit(1);
    }
}

static const uint8_t *chan_recv(ep *e, size_t n)
{
    const void *p;
    size_t len;
    prism_chan_status s = prism_chan_begin_read(e->r, &p, &len, -1);
    if (s != PRISM_CHAN_OK || len != n) {
        fprintf(stderr, "read: %s (%zu bytes)\n", prism_chan_status_text(s), len);
        exit(1);
    }
    return p;
}

static void chan_done(ep *e) { prism_chan_end_read(e->r); }

static void chan_close_side(ep *e)
{
    prism_chan_writer_destroy(e->w);
    prism_chan_reader_destroy(e->r);
}

static void chan_close_pair(pair *p)
{
    prism_chan_destroy(p->ping);
    prism_chan_destroy(p->pong);
}

/* raw sockets */

static int unix_open(pair *p) { return socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd); }

static int tcp_open(pair *p)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    p->fd[0] = socket(AF_INET, SOCK_STREAM, 0);
    if (p->fd[0] < 0 || connect(p->fd[0], (struct sockaddr *)&a, sizeof a) != 0)
        return -1;
    p->fd[1] = accept(l, NULL, NULL);
    close(l);
    int one = 1;
    for (int i = 0; i < 2; i++)
        if (p->fd[i] < 0 || setsockopt(p->fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one))
            return -1;
    return 0;
}

static void sock_side(pair *p, ep *e)
{
    e->fd = p->fd[e->which];
    close(p->fd[!e->which]);
    e->buf = malloc(p->payload);
    if (!e->buf)
        die("malloc");
}

static void full_io(int fd, uint8_t *buf, size_t n, bool writing)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = writing ? write(fd, buf + done, n - done) : read(fd, buf + done, n - done);
        if (r > 0)
            done += (size_t)r;
        else if (!(r < 0 && errno == EINTR))
            die(writing ? "write" : "read");
    }
}

static void sock_send(ep *e, const uint8_t *src, size_t n)
{
    full_io(e->fd, (uint8_t *)src, n, true);
}

static const uint8_t *sock_recv(ep *e, size_t n)
{
    full_io(e->fd, e->buf, n, false);
    return e->buf;
}

static void sock_done(ep *e) {}

static void sock_close_side(ep *e)
{
    close(e->fd);
    free(e->buf);
}

static void sock_close_pair(pair *p) {} /* each side closed its end */

/* prism_channel on sockets: a writer and a reader on each process's socket */

static void chsock_side(pair *p, ep *e)
{
    e->fd = p->fd[e->which];
    close(p->fd[!e->which]);
    if (prism_chan_writer_open_socket(&e->w, e->fd, p->payload, &p->wait) != PRISM_CHAN_OK ||
        prism_chan_reader_open_socket(&e->r, e->fd, p->payload, &p->wait) != PRISM_CHAN_OK) {
        fprintf(stderr, "opening the socket channel failed\n");
        exit(1);
    }
}

static void chsock_close_side(ep *e)
{
    prism_chan_writer_close(e->w, 1000);
    prism_chan_writer_destroy(e->w);
    prism_chan_reader_destroy(e->r);
    close(e->fd);
}

static const transport transports[] = {
    {"bare", bare_open, bare_side, bare_send, bare_recv, bare_done, bare_close_side,
     bare_close_pair},
    {"chan", chan_open, chan_side, chan_send, chan_recv, chan_done, chan_close_side,
     chan_close_pair},
    {"chan-futex", chan_open, chan_side, chan_send, chan_recv, chan_done, chan_close_side,
     chan_close_pair},
    {"unix", unix_open, sock_side, sock_send, sock_recv, sock_done, sock_close_side,
     sock_close_pair},
    {"tcp", tcp_open, sock_side, sock_send, sock_recv, sock_done, sock_close_side, sock_close_pair},
    {"chan-unix", unix_open, chsock_side, chan_send, chan_recv, chan_done, chsock_close_side,
     sock_close_pair},
    {"chan-tcp", tcp_open, chsock_side, chan_send, chan_recv, chan_done, chsock_close_side,
     sock_close_pair},
};

/* ---------- the run ---------- */

static int cpus[2] = {-1, -1};

static void find_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return;
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
        if (CPU_ISSET(c, &set))
            cpus[n++] = c;
    if (n < 2)
        cpus[0] = cpus[1] = -1;
}

static void pin(int which)
{
    if (cpus[which] < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpus[which], &set);
    sched_setaffinity(0, sizeof set, &set);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static bool json;

static void run(const transport *t, size_t payload, long n)
{
    long warm = n / 10 + 1;
    pair p = {.payload = payload, .fd = {-1, -1}};
    p.wait = (prism_chan_wait){
        .spin_us = strcmp(t->name, "chan-futex") == 0 ? 0 : PRISM_CHAN_DEFAULT_SPIN_US};
    if (t->open(&p) != 0)
        die(t->name);
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        pin(1);
        ep e = {.p = &p, .which = 1};
        t->side(&p, &e);
        for (long i = 0; i < warm + n; i++) {
            const uint8_t *v = t->recv(&e, payload);
            t->send(&e, v, payload);
            t->done(&e);
        }
        t->close_side(&e);
        _exit(0);
    }
    pin(0);
    ep e = {.p = &p, .which = 0};
    t->side(&p, &e);
    uint8_t *src = malloc(payload);
    int64_t *lat = malloc((size_t)n * sizeof *lat);
    if (!src || !lat)
        die("malloc");
    memset(src, 0x5a, payload);
    int64_t start = 0;
    for (long i = -warm; i < n; i++) {
        uint64_t tag = (uint64_t)(i + warm);
        memcpy(src, &tag, payload < 8 ? payload : 8);
        if (i == 0)
            start = now_ns();
        int64_t a = now_ns();
        t->send(&e, src, payload);
        const uint8_t *v = t->recv(&e, payload);
        uint64_t back = 0;
        memcpy(&back, v, payload < 8 ? payload : 8);
        t->done(&e);
        int64_t b = now_ns();
        if (back != tag) {
            fprintf(stderr, "%s: round %ld came back as %llu\n", t->name, i,
                    (unsigned long long)back);
            exit(1);
        }
        if (i >= 0)
            lat[i] = b - a;
    }
    int64_t elapsed = now_ns() - start;
    t->close_side(&e);
    int st;
    waitpid(pid, &st, 0);
    t->close_pair(&p);

    qsort(lat, (size_t)n, sizeof *lat, cmp_i64);
    double med = (double)lat[n / 2] / 2e3, p99 = (double)lat[(size_t)((double)n * 0.99)] / 2e3;
    double rate = 2.0 * (double)n / ((double)elapsed / 1e9);
    char size[32];
    if (payload >= (1u << 20))
        snprintf(size, sizeof size, "%zu MiB", payload >> 20);
    else if (payload >= 1024)
        snprintf(size, sizeof size, "%zu KiB", payload >> 10);
    else
        snprintf(size, sizeof size, "%zu B", payload);
    if (json)
        printf("{\"system\": \"dag-raw\", \"transport\": \"%s\", \"payload\": %zu, \"n\": %ld, "
               "\"median_us\": %.3f, \"p99_us\": %.3f, \"rate\": %.0f, "
               "\"unit\": \"messages/s\", \"pinned\": %s}\n",
               t->name, payload, n, med, p99, rate, cpus[0] >= 0 ? "true" : "false");
    else
        printf("| %s | %s | %.2f | %.2f | %.0f |\n", t->name, size, med, p99, rate);
    fflush(stdout);
    free(src);
    free(lat);
}

/* --chain K: the value goes round k + 1 processes through k + 1 channel rings
 * (the first writes ring 0 and reads ring k; process i reads ring i - 1 and
 * writes ring i), none pinned: what a compiled chain of k actors costs with
 * nothing but the channel, the same number of processes on the same CPUs.
 * A hop is a round's time over k + 1. */
static void run_chain(int k, size_t payload, long n)
{
    long warm = n / 10 + 1;
    prism_chan *c[MAX_CHAIN + 1];
    prism_chan_options o = {.nslots = 8, .nreaders = 1, .max_buf_size = payload};
    prism_chan_wait wait = {.spin_us = PRISM_CHAN_DEFAULT_SPIN_US};
    char err[256];
    for (int i = 0; i <= k; i++)
        if (prism_chan_create(&c[i], &o, err, sizeof err) != PRISM_CHAN_OK) {
            fprintf(stderr, "prism_chan_create: %s\n", err);
            exit(1);
        }
    pid_t pids[MAX_CHAIN];
    for (int i = 1; i <= k; i++) {
        if ((pids[i - 1] = fork()) < 0)
            die("fork");
        if (pids[i - 1] == 0) {
            ep e = {0};
            if (prism_chan_reader_open_shm(&e.r, c[i - 1], 0, &wait) != PRISM_CHAN_OK ||
                prism_chan_writer_open_shm(&e.w, c[i], &wait) != PRISM_CHAN_OK)
                die("open");
            for (long x = 0; x < warm + n; x++) {
                chan_send(&e, chan_recv(&e, payload), payload);
                chan_done(&e);
            }
            chan_close_side(&e);
            _exit(0);
        }
    }
    ep e = {0};
    if (prism_chan_writer_open_shm(&e.w, c[0], &wait) != PRISM_CHAN_OK ||
        prism_chan_reader_open_shm(&e.r, c[k], 0, &wait) != PRISM_CHAN_OK)
        die("open");
    uint8_t *src = calloc(1, payload);
    int64_t *lat = malloc((size_t)n * sizeof *lat);
    if (!src || !lat)
        die("malloc");
    for (long i = -warm; i < n; i++) {
        int64_t a = now_ns();
        chan_send(&e, src, payload);
        chan_recv(&e, payload);
        chan_done(&e);
        if (i >= 0)
            lat[i] = now_ns() - a;
    }
    chan_close_side(&e);
    for (int i = 0; i < k; i++)
        waitpid(pids[i], NULL, 0);
    for (int i = 0; i <= k; i++)
        prism_chan_destroy(c[i]);
    qsort(lat, (size_t)n, sizeof *lat, cmp_i64);
    double hops = k + 1;
    double med = (double)lat[n / 2] / 1e3 / hops;
    double p99 = (double)lat[(size_t)((double)n * 0.99)] / 1e3 / hops;
    if (json)
        printf("{\"system\": \"dag-raw\", \"transport\": \"chan-chain\", \"chain\": %d, "
               "\"payload\": %zu, \"n\": %ld, \"median_us\": %.3f, \"p99_us\": %.3f, "
               "\"pinned\": false}\n",
               k, payload, n, med, p99);
    else
        printf("| chan-chain %d | %zu B | %.2f | %.2f | |\n", k, payload, med, p99);
    fflush(stdout);
    free(src);
    free(lat);
}

static bool wanted(const char *only, const char *name)
{
    if (!only)
        return true;
    size_t len = strlen(name);
    for (const char *p = only; *p;) {
        const char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);
        if (l == len && strncmp(p, name, l) == 0)
            return true;
        p += l + (comma ? 1 : 0);
    }
    return false;
}

int main(int argc, char **argv)
{
    bool quick = false;
    const char *only = NULL, *chains = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--chain") == 0 && i + 1 < argc)
            chains = argv[++i];
        else {
            fprintf(stderr,
                    "usage: %s [--quick] [--json] [--only NAME[,NAME...]] [--chain K[,K...]]\n",
                    argv[0]);
            return 2;
        }
    }
    if (chains) { /* the chains alone: 8 B and 1 KiB */
        for (const char *p = chains; *p;) {
            char *end;
            long k = strtol(p, &end, 10);
            if (end == p || k < 1 || k > MAX_CHAIN) {
                fprintf(stderr, "--chain: 1..%d actors\n", MAX_CHAIN);
                return 2;
            }
            for (size_t size = 8; size <= 1024; size *= 128)
                run_chain((int)k, size, quick ? 10000 : 100000);
            p = *end == ',' ? end + 1 : end;
        }
        return 0;
    }
    find_cpus();
    if (!json) {
        if (cpus[0] >= 0)
            printf("pinned: parent on CPU %d, echo on CPU %d\n\n", cpus[0], cpus[1]);
        else
            printf("not pinned (fewer than two CPUs available)\n\n");
        printf("| transport | payload | one-way median µs | one-way p99 µs | messages/s |\n");
        printf("|---|---|---|---|---|\n");
    }
    const size_t payloads[] = {8, 1024, 1 << 20};
    for (size_t t = 0; t < sizeof transports / sizeof *transports; t++) {
        if (!wanted(only, transports[t].name))
            continue;
        for (size_t i = 0; i < 3; i++) {
            long n = payloads[i] >= (1u << 20) ? 2000 : 100000;
            if (quick)
                n /= 10;
            run(&transports[t], payloads[i], n);
        }
    }
    return 0;
}
