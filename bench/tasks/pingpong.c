/* The physical limits of the task benchmarks on this machine, as JSON lines
 * ({"system": "limit", ...}):
 *
 *   unix_rtt            a 64-byte message to another process over a Unix
 *                       stream socket and back (blocking read/write): the
 *                       floor of one synchronous task; median and p99 µs
 *   unix_rtt_same_cpu, unix_rtt_two_cpus   unix_rtt with both ends pinned
 *                       to one CPU, or to two
 *   unix_rtt_handoff    the same as unix_rtt, but the answer is read by a second thread
 *                       that wakes the sender through a mutex and condition
 *                       variable (the shape of a client with an io thread)
 *   unix_pipelined      64-byte messages sent in windows of 16 before the
 *                       answers are read: messages/s, the floor of async
 *                       tasks when each costs one message each way
 *   memcpy_1mib, memcpy_100mib   one copy of an argument of that size (ms)
 *
 *   prism-tasks-pingpong [--n N] */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"

#define MSG 64
#define WINDOW 16

static int full_io(int fd, void *buf, size_t n, bool writing)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = writing ? write(fd, (char *)buf + done, n - done)
                            : read(fd, (char *)buf + done, n - done);
        if (r > 0)
            done += (size_t)r;
        else if (r < 0 && errno == EINTR)
            continue;
        else
            return -1;
    }
    return 0;
}

/* The other side: echoes every message until the socket closes. */
static void echo_server(int fd)
{
    char buf[MSG * WINDOW];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0)
            _exit(0);
        if (full_io(fd, buf, (size_t)r, true) != 0)
            _exit(0);
    }
}

/* -1: no pinning; otherwise the CPU the echo process runs on */
static int echo_cpu = -1;

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

static pid_t start_echo(int *fd)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        perror("socketpair");
        exit(1);
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        if (echo_cpu >= 0)
            pin(echo_cpu);
        echo_server(sv[1]);
    }
    close(sv[1]);
    *fd = sv[0];
    return pid;
}

static void stop_echo(int fd, pid_t pid)
{
    close(fd);
    waitpid(pid, NULL, 0);
}

static void print_latency(const char *name, int64_t *lat, long n)
{
    qsort(lat, (size_t)n, sizeof *lat, bench_cmp_i64);
    printf("{\"system\": \"limit\", \"bench\": \"%s\", \"n\": %ld, \"median_us\": %.2f, "
           "\"p99_us\": %.2f, \"rate\": %.0f, \"unit\": \"round trips/s\"}\n",
           name, n, (double)bench_quantile(lat, (size_t)n, 0.5) / 1e3,
           (double)bench_quantile(lat, (size_t)n, 0.99) / 1e3,
           1e9 / (double)bench_quantile(lat, (size_t)n, 0.5));
    fflush(stdout);
}

static void rtt(const char *name, long n)
{
    int fd;
    pid_t pid = start_echo(&fd);
    char msg[MSG] = {1};
    int64_t *lat = malloc((size_t)n * sizeof *lat);
    for (long i = -n / 10; i < n; i++) {
        int64_t a = bench_now_ns();
        if (full_io(fd, msg, MSG, true) || full_io(fd, msg, MSG, false))
            exit(1);
        if (i >= 0)
            lat[i] = bench_now_ns() - a;
    }
    print_latency(name, lat, n);
    free(lat);
    stop_echo(fd, pid);
}

/* ---- the answer read by an io thread, handed over with a condition variable ---- */

typedef struct handoff {
    int fd;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long answered;
    bool stop;
} handoff;

static void *reader(void *arg)
{
    handoff *h = arg;
    char msg[MSG];
    while (full_io(h->fd, msg, MSG, false) == 0) {
        pthread_mutex_lock(&h->mu);
        h->answered++;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
    }
    return NULL;
}

static void rtt_handoff(long n)
{
    handoff h = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    pid_t pid = start_echo(&h.fd);
    pthread_t t;
    pthread_create(&t, NULL, reader, &h);
    char msg[MSG] = {1};
    int64_t *lat = malloc((size_t)n * sizeof *lat);
    for (long i = -n / 10, sent = 0; i < n; i++) {
        int64_t a = bench_now_ns();
        pthread_mutex_lock(&h.mu);
        if (full_io(h.fd, msg, MSG, true))
            exit(1);
        sent++;
        while (h.answered < sent)
            pthread_cond_wait(&h.cv, &h.mu);
        pthread_mutex_unlock(&h.mu);
        if (i >= 0)
            lat[i] = bench_now_ns() - a;
    }
    print_latency("unix_rtt_handoff", lat, n);
    free(lat);
    shutdown(h.fd, SHUT_RDWR);
    pthread_join(t, NULL);
    stop_echo(h.fd, pid);
}

static void pipelined(long n)
{
    int fd;
    pid_t pid = start_echo(&fd);
    char msgs[MSG * WINDOW];
    memset(msgs, 1, sizeof msgs);
    long rounds = n / WINDOW;
    int64_t t0 = 0;
    for (long r = -rounds / 10; r < rounds; r++) {
        if (r == 0)
            t0 = bench_now_ns();
        for (int i = 0; i < WINDOW; i++) /* one write per message, as a client pushes them */
            if (full_io(fd, msgs + i * MSG, MSG, true))
                exit(1);
        if (full_io(fd, msgs, sizeof msgs, false))
            exit(1);
    }
    double s = (double)(bench_now_ns() - t0) / 1e9;
    printf("{\"system\": \"limit\", \"bench\": \"unix_pipelined\", \"n\": %ld, \"window\": %d, "
           "\"rate\": %.0f, \"unit\": \"messages/s\"}\n",
           rounds * WINDOW, WINDOW, (double)(rounds * WINDOW) / s);
    fflush(stdout);
    stop_echo(fd, pid);
}

static void copy(const char *name, size_t size, int reps)
{
    char *a = malloc(size), *b = malloc(size);
    memset(a, 1, size);
    memset(b, 2, size); /* both touched: no page faults in the timing */
    double *ms = malloc((size_t)reps * sizeof *ms);
    for (int r = 0; r < reps; r++) {
        int64_t t = bench_now_ns();
        memcpy(b, a, size);
        ms[r] = (double)(bench_now_ns() - t) / 1e6;
        a[r % size] = b[(r * 31) % size]; /* keep the copy */
    }
    double med = bench_median_d(ms, (size_t)reps);
    printf("{\"system\": \"limit\", \"bench\": \"%s\", \"size\": %zu, \"median_ms\": %.4f, "
           "\"gb_per_s\": %.2f}\n",
           name, size, med, (double)size / (med / 1e3) / 1e9);
    fflush(stdout);
    free(a);
    free(b);
    free(ms);
}

int main(int argc, char **argv)
{
    long n = 200000;
    if (argc == 3 && !strcmp(argv[1], "--n"))
        n = atol(argv[2]);
    else if (argc != 1) {
        fprintf(stderr, "usage: prism-tasks-pingpong [--n N]\n");
        return 2;
    }
    if (n < WINDOW * 10)
        n = WINDOW * 10;
    rtt("unix_rtt", n);
    rtt_handoff(n);
    /* where the two ends run: one CPU (a wake-up without an inter-processor
     * interrupt) or two (in a VM, waking an idle virtual CPU costs extra) */
    cpu_set_t all;
    if (sysconf(_SC_NPROCESSORS_ONLN) >= 2 && sched_getaffinity(0, sizeof all, &all) == 0) {
        pin(0);
        echo_cpu = 0;
        rtt("unix_rtt_same_cpu", n / 2);
        echo_cpu = 1;
        rtt("unix_rtt_two_cpus", n / 2);
        echo_cpu = -1;
        sched_setaffinity(0, sizeof all, &all);
    }
    pipelined(n * 5);
    copy("memcpy_1mib", 1 << 20, 200);
    copy("memcpy_100mib", 100 << 20, 10);
    return 0;
}
