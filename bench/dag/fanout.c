/* One value to several readers over TCP: what a compiled DAG's fan-out edge
 * across nodes costs its writer (docs/dags.md#cross-node-edges). A
 * prism_channel fan-out writer over N loopback connections
 * (prism_chan_writer_open_fanout), each read by a thread of its own that
 * takes every value and lets it go; the writer sends VALUES values of SIZE
 * bytes back to back (waits: spin 50 µs, as a DAG's default).
 *
 *   prism-dag-fanout [--quick]
 *
 * Readers 1 and 3, values of 1 KiB and 1 MiB. One JSON line per row:
 * microseconds per value at the writer (from the first begin_write to the
 * last reader's last value) and the bytes delivered to the readers per
 * second. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "prism_channel.h"

#define MAX_READERS 8
#define WAIT_MS 20000

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    fprintf(stderr, "prism-dag-fanout: %s\n", what);
    exit(1);
}

typedef struct reader {
    prism_chan_reader *r;
    long n;
} reader;

static void *read_all(void *arg)
{
    reader *x = arg;
    for (long i = 0; i < x->n; i++) {
        const void *buf;
        size_t len;
        if (prism_chan_begin_read(x->r, &buf, &len, WAIT_MS) != PRISM_CHAN_OK)
            die("a reader's value did not come");
        prism_chan_end_read(x->r);
    }
    return NULL;
}

/* A connected TCP pair over loopback: sv[0] the writer's, sv[1] the reader's. */
static void tcp_pair(int sv[2])
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &alen) != 0)
        die("listen on loopback");
    sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sv[0] < 0 || connect(sv[0], (struct sockaddr *)&a, sizeof a) != 0 ||
        (sv[1] = accept(l, NULL, NULL)) < 0)
        die("connect on loopback");
    close(l);
    setsockopt(sv[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void run(int n, size_t size, long values)
{
    prism_chan_writer *ws[MAX_READERS], *w;
    reader rs[MAX_READERS];
    pthread_t t[MAX_READERS];
    int fds[MAX_READERS][2];
    prism_chan_wait wait = {.spin_us = 50};
    for (int i = 0; i < n; i++) {
        tcp_pair(fds[i]);
        rs[i].n = values;
        if (prism_chan_writer_open_socket(&ws[i], fds[i][0], size, &wait) != PRISM_CHAN_OK ||
            prism_chan_reader_open_socket(&rs[i].r, fds[i][1], size, &wait) != PRISM_CHAN_OK)
            die("open the channel");
    }
    if (prism_chan_writer_open_fanout(&w, ws, (size_t)n) != PRISM_CHAN_OK)
        die("open the fan-out");
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, read_all, &rs[i]) != 0)
            die("start a reader");
    double t0 = now_s();
    for (long v = 0; v < values; v++) {
        void *buf;
        if (prism_chan_begin_write(w, &buf, WAIT_MS) != PRISM_CHAN_OK)
            die("no room to write");
        memset(buf, (int)v, size < 64 ? size : 64);
        prism_chan_status s = prism_chan_end_write(w, size);
        if (s != PRISM_CHAN_OK && s != PRISM_CHAN_QUEUED)
            die("a write failed");
    }
    if (prism_chan_flush(w, WAIT_MS) != PRISM_CHAN_OK)
        die("flush");
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    double s = now_s() - t0;
    printf("{\"system\": \"chan-fanout\", \"readers\": %d, \"payload\": %zu, \"values\": %ld, "
           "\"us_per_value\": %.2f, \"gb_per_s\": %.3f}\n",
           n, size, values, s / (double)values * 1e6, (double)size * n * (double)values / s / 1e9);
    prism_chan_writer_destroy(w);
    for (int i = 0; i < n; i++) {
        prism_chan_reader_destroy(rs[i].r);
        close(fds[i][0]);
        close(fds[i][1]);
    }
}

int main(int argc, char **argv)
{
    bool quick = argc > 1 && !strcmp(argv[1], "--quick");
    if (argc > 1 && !quick) {
        fprintf(stderr, "usage: prism-dag-fanout [--quick]\n");
        return 2;
    }
    static const int readers[] = {1, 3};
    for (size_t i = 0; i < 2; i++) {
        run(readers[i], 1024, quick ? 20000 : 100000);
        run(readers[i], 1 << 20, quick ? 600 : 3000);
    }
    return 0;
}
