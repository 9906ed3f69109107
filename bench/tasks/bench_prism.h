/* Helpers of the benchmark drivers on libprism (prism-tasks-bench,
 * prism-actors-bench): error lines that name the benchmark, connecting, and
 * getting a trivial call's null result. Header-only; include after
 * bench_util.h. */
#ifndef PRISM_BENCH_PRISM_H
#define PRISM_BENCH_PRISM_H

#include <prism/prism.h>

#include "bench_util.h"

#define BENCH_GET_TIMEOUT_MS 120000

/* What error lines name: the program (set once in main) and the benchmark
 * (set by each benchmark as it starts). */
static const char *bench_prog = "?";
static const char *bench_name = "?";

/* One error line for the current benchmark; returns 1 (the exit status). */
static inline int bench_fail(const char *what, prism_status s)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s: %s: %s", what, prism_status_text(s), prism_last_error());
    bench_error_line(bench_prog, "prism", bench_name, msg);
    return 1;
}

/* Returns from the benchmark with an error line when `call` fails. */
#define BENCH_TRY(call, what)                                                                      \
    do {                                                                                           \
        prism_status s_ = (call);                                                                  \
        if (s_ != PRISM_OK)                                                                        \
            return bench_fail(what, s_);                                                           \
    } while (0)

/* 0, or 1 after an error line. */
static inline int bench_connect(prism_client **out)
{
    prism_status s = prism_connect(NULL, out);
    return s == PRISM_OK ? 0 : bench_fail("connect", s);
}

/* Gets, checks and frees the result of a trivial task or call (echo() with
 * no argument returns null). */
static inline prism_status bench_get_null(prism_client *c, prism_ref *r)
{
    prism_value *v = NULL;
    prism_status s = prism_get(c, r, BENCH_GET_TIMEOUT_MS, &v);
    if (s == PRISM_OK && prism_value_kind_of(v) != PRISM_VALUE_NULL)
        s = PRISM_ERR_INTERNAL;
    prism_value_free(v);
    return s;
}

/* A client process's failure as bench_client_fail reports it. */
static inline int bench_client_fail_status(const bench_client *cl, const char *what, prism_status s)
{
    char msg[300];
    snprintf(msg, sizeof msg, "%s: %s: %s", what, prism_status_text(s), prism_last_error());
    return bench_client_fail(cl, msg);
}

/* The result line of bench_clients_rounds: the rate of each round, then
 * their median (which sorts `rates`). */
static inline void bench_print_rounds(long clients, long n_total, double *rates, long rounds,
                                      const char *unit)
{
    printf("{\"system\": \"prism\", \"bench\": \"%s\", \"clients\": %ld, \"n\": %ld, "
           "\"rounds\": %ld, \"round_rates\": [",
           bench_name, clients, n_total, rounds);
    for (long r = 0; r < rounds; r++)
        printf("%s%.0f", r ? ", " : "", rates[r]);
    printf("], \"rate\": %.1f, \"unit\": \"%s\"}\n", bench_median_d(rates, (size_t)rounds), unit);
    fflush(stdout);
}

#endif
