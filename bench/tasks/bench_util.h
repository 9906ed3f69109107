/* Small helpers shared by the task and actor benchmarks: monotonic time,
 * percentiles, JSON result lines, resident memory of a process, and rounds
 * run by several client processes at once. Header-only. */
#ifndef PRISM_BENCH_UTIL_H
#define PRISM_BENCH_UTIL_H

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline int bench_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of n sorted samples, nearest rank. */
static inline int64_t bench_quantile(const int64_t *sorted, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(q * (double)n);
    return sorted[i >= n ? n - 1 : i];
}

static inline double bench_median_d(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---------- JSON result lines ---------- */

/* `s` as a JSON string, quotes included. */
static inline void bench_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* {"system": SYSTEM, "bench": BENCH, "error": MSG} on stdout, where the
 * table finds it, and the message on stderr for the person watching. */
static inline void bench_error_line(const char *prog, const char *system, const char *bench,
                                    const char *msg)
{
    printf("{\"system\": ");
    bench_json_string(stdout, system);
    printf(", \"bench\": ");
    bench_json_string(stdout, bench);
    printf(", \"error\": ");
    bench_json_string(stdout, msg);
    printf("}\n");
    fflush(stdout);
    fprintf(stderr, "%s %s: %s\n", prog, bench, msg);
}

/* The fields of a loop of timed operations, without braces: "n", "rate" (n
 * over `total_s`), "unit", then the median, p99, mean and minimum in µs.
 * Sorts `lat` (ns). */
static inline void bench_latency_fields(FILE *f, int64_t *lat, size_t n, double total_s,
                                        const char *unit)
{
    qsort(lat, n, sizeof *lat, bench_cmp_i64);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)lat[i];
    fprintf(f,
            "\"n\": %zu, \"rate\": %.1f, \"unit\": \"%s\", \"median_us\": %.2f, "
            "\"p99_us\": %.2f, \"mean_us\": %.2f, \"min_us\": %.2f",
            n, (double)n / total_s, unit, (double)bench_quantile(lat, n, 0.5) / 1e3,
            (double)bench_quantile(lat, n, 0.99) / 1e3, n ? sum / (double)n / 1e3 : 0.0,
            n ? (double)lat[0] / 1e3 : 0.0);
}

/* A "Name:   N kB" field of /proc/PID/status in KiB (field "VmRSS:",
 * "RssAnon:"...); -1 when the process is gone. */
static inline long bench_status_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kib = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n)) {
            kib = strtol(line + n, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

/* VmRSS of a process in KiB; -1 when it is gone. */
static inline long bench_rss_kib(pid_t pid) { return bench_status_kib(pid, "VmRSS:"); }

/* ---------- command lines and child processes ---------- */

/* A size in bytes: a number with an optional K, M or G (binary) suffix. */
static inline long long bench_parse_size(const char *s)
{
    char *end;
    double x = strtod(s, &end);
    switch (*end) {
    case 'k':
    case 'K': x *= 1024; break;
    case 'm':
    case 'M': x *= 1024 * 1024; break;
    case 'g':
    case 'G': x *= 1024.0 * 1024 * 1024; break;
    default: break;
    }
    return (long long)x;
}

/* An option "--name VALUE" of a benchmark program. */
typedef struct bench_opt {
    const char *name; /* with the dashes */
    char kind;        /* 'l': long, 'd': double, 's': a size (long long, bench_parse_size) */
    void *value;
    bool *set; /* NULL, or set to true when the option is given */
} bench_opt;

/* Parses argv[first..] as options of `opts`; -1 on one it does not know or
 * one without its value. */
static inline int bench_parse_opts(int argc, char **argv, int first, const bench_opt *opts,
                                   size_t nopts)
{
    for (int i = first; i < argc; i += 2) {
        size_t k = 0;
        while (k < nopts && strcmp(argv[i], opts[k].name))
            k++;
        if (k == nopts || i + 1 >= argc)
            return -1;
        const char *v = argv[i + 1];
        if (opts[k].kind == 'l')
            *(long *)opts[k].value = atol(v);
        else if (opts[k].kind == 'd')
            *(double *)opts[k].value = atof(v);
        else
            *(long long *)opts[k].value = bench_parse_size(v);
        if (opts[k].set)
            *opts[k].set = true;
    }
    return 0;
}

/* Runs fn(arg, i) for i from 0 to n-1, each in a child process of its own
 * (a fresh client each, nothing left over from the one before); 0 when
 * every one exited with 0. */
static inline int bench_each_in_child(size_t n, int (*fn)(void *arg, size_t i), void *arg)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0)
            _exit(fn(arg, i));
        int st = 0;
        if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            rc = 1;
    }
    return rc;
}

/* ---------- rounds run by several client processes at once ----------
 *
 * bench_clients_rounds forks k children that each run `fn`: it prepares
 * (connects, warms up), then for every round calls bench_client_ready,
 * which returns when all k are ready, so that the rounds start together,
 * runs the round and reports it with bench_client_done (or gives up with
 * bench_client_fail). A round's rate is all the children's operations over
 * the time from the first start to the last end: what the system does for
 * k clients at once, not the sum of k separate rates. */

typedef struct bench_client {
    int up, go; /* pipes to and from the parent */
} bench_client;

typedef struct bench_client_msg {
    int type; /* 1 ready, 2 result */
    int ok;
    long n;
    int64_t start, end;
    char error[200];
} bench_client_msg;

typedef int (*bench_client_fn)(void *arg, long index, bench_client *cl);

static inline void bench_client_send(const bench_client *cl, const bench_client_msg *m)
{
    ssize_t w;
    do
        w = write(cl->up, m, sizeof *m); /* < PIPE_BUF: atomic */
    while (w < 0 && errno == EINTR);
}

/* 0 once every client is ready for the round; -1 when the parent is gone. */
static inline int bench_client_ready(const bench_client *cl)
{
    bench_client_msg m = {.type = 1};
    bench_client_send(cl, &m);
    char b;
    return read(cl->go, &b, 1) == 1 ? 0 : -1;
}

static inline void bench_client_done(const bench_client *cl, long n, int64_t start, int64_t end)
{
    bench_client_msg m = {.type = 2, .ok = 1, .n = n, .start = start, .end = end};
    bench_client_send(cl, &m);
}

/* Reports a failure; returns 1 (the child's exit status). */
static inline int bench_client_fail(const bench_client *cl, const char *msg)
{
    bench_client_msg m = {.type = 2, .ok = 0};
    snprintf(m.error, sizeof m.error, "%s", msg);
    bench_client_send(cl, &m);
    return 1;
}

/* Runs `rounds` rounds in k child processes; rates[r] receives round r's
 * rate. Returns 0, or -1 with `error` filled (a client failed, died, or said
 * nothing for `silence_ms`): the children are killed then. */
static inline int bench_clients_rounds(long k, long rounds, bench_client_fn fn, void *arg,
                                       int64_t silence_ms, double *rates, char *error,
                                       size_t errlen)
{
    int up[2], go[2];
    error[0] = 0;
    if (pipe(up) != 0 || pipe(go) != 0) {
        snprintf(error, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t *kids = calloc((size_t)k, sizeof *kids);
    for (long i = 0; i < k; i++) {
        fflush(stdout);
        kids[i] = fork();
        if (kids[i] == 0) {
            close(up[0]);
            close(go[1]);
            bench_client cl = {.up = up[1], .go = go[0]};
            _exit(fn(arg, i, &cl));
        }
    }
    close(up[1]);
    close(go[0]);
    long ready = 0, results = 0, round = 0, total_n = 0;
    int64_t first = INT64_MAX, last = 0, last_msg = bench_now_ns();
    while (round < rounds && !error[0]) {
        struct pollfd p = {.fd = up[0], .events = POLLIN};
        int pr = poll(&p, 1, 1000);
        if (pr == 0) { /* a client that died without a word (a crash) */
            for (long i = 0; i < k && !error[0]; i++) {
                int st;
                if (kids[i] > 0 && waitpid(kids[i], &st, WNOHANG) == kids[i]) {
                    snprintf(error, errlen, "client process %ld %s %d", i,
                             WIFSIGNALED(st) ? "was killed by signal" : "exited with status",
                             WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
                    kids[i] = -1;
                }
            }
            if (!error[0] && bench_now_ns() - last_msg > silence_ms * 1000000)
                snprintf(error, errlen, "the client processes did not answer in time");
            continue;
        }
        bench_client_msg m;
        ssize_t got = pr > 0 ? read(up[0], &m, sizeof m) : -1;
        if (got != (ssize_t)sizeof m) {
            snprintf(error, errlen, "the client processes exited early");
            break;
        }
        last_msg = bench_now_ns();
        if (m.type == 1 && ++ready == k) {
            char gobytes[256];
            memset(gobytes, 'g', sizeof gobytes);
            for (long left = k; left > 0;) {
                ssize_t w = write(go[1], gobytes, (size_t)(left < 256 ? left : 256));
                if (w > 0)
                    left -= w;
            }
            ready = 0;
        } else if (m.type == 2) {
            if (!m.ok) {
                snprintf(error, errlen, "a client: %s", m.error);
                break;
            }
            first = m.start < first ? m.start : first;
            last = m.end > last ? m.end : last;
            total_n += m.n;
            if (++results == k) {
                rates[round++] = (double)total_n / ((double)(last - first) / 1e9);
                results = 0;
                total_n = 0;
                first = INT64_MAX;
                last = 0;
            }
        }
    }
    if (error[0])
        for (long i = 0; i < k; i++)
            if (kids[i] > 0)
                kill(kids[i], SIGKILL);
    close(go[1]);
    close(up[0]);
    for (long i = 0; i < k; i++)
        if (kids[i] > 0)
            waitpid(kids[i], NULL, 0);
    free(kids);
    return error[0] ? -1 : 0;
}

#endif
