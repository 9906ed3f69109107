/* The machine's ceiling for the all-to-all benchmark: the same ROWS rows
 * (bench/data/rows.h) made in one process's memory, then the operator done
 * there by one thread: a Fisher-Yates shuffle, qsort by key, or a hash
 * aggregate by group (count, sum(v0), mean(v1)). Prints one JSON line.
 *   prism-data-alltoall-ceiling none|shuffle|sort|groupby ROWS */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rows.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int by_key(const void *a, const void *b)
{
    int64_t x = ((const rows_row *)a)->key, y = ((const rows_row *)b)->key;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: prism-data-alltoall-ceiling none|shuffle|sort|groupby ROWS\n");
        return 2;
    }
    const char *op = argv[1];
    size_t n = (size_t)strtoll(argv[2], NULL, 10);
    double t0 = now();
    rows_row *r = malloc(n * sizeof *r + 1);
    if (!r)
        return fprintf(stderr, "out of memory\n"), 1;
    for (size_t i = 0; i < n; i++)
        rows_make((int64_t)i, ROWS_GROUPS, &r[i]);
    uint64_t check = 0;
    if (!strcmp(op, "shuffle")) {
        uint64_t s = 1;
        for (size_t i = n; i > 1; i--) {
            s = rows_mix(s);
            size_t j = (size_t)(s % i);
            rows_row t = r[i - 1];
            r[i - 1] = r[j];
            r[j] = t;
        }
    } else if (!strcmp(op, "sort")) {
        qsort(r, n, sizeof *r, by_key);
    } else if (!strcmp(op, "groupby")) {
        static int64_t count[ROWS_GROUPS];
        static double sum[ROWS_GROUPS], msum[ROWS_GROUPS];
        for (size_t i = 0; i < n; i++) {
            count[r[i].group]++;
            sum[r[i].group] += r[i].v[0];
            msum[r[i].group] += r[i].v[1];
        }
        for (int g = 0; g < ROWS_GROUPS; g++)
            check += (uint64_t)count[g] + (uint64_t)(sum[g] + msum[g] / (count[g] ? count[g] : 1));
    } else if (strcmp(op, "none")) {
        return fprintf(stderr, "unknown operator %s\n", op), 2;
    }
    for (size_t i = 0; i < n; i++) /* the consumer touching each row */
        check += (uint64_t)r[i].key;
    double secs = now() - t0;
    free(r);
    printf("{\"peer\": \"C, one process in memory\", \"op\": \"%s\", \"rows\": %zu, "
           "\"seconds\": %.3f, \"rows_per_s\": %.0f, \"gb_per_s\": %.3f, \"checksum\": %llu}\n",
           op, n, secs, (double)n / secs, (double)n * ROWS_BYTES / secs / 1e9,
           (unsigned long long)check);
    return 0;
}
