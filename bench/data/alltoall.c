/* Prism's side of the all-to-all benchmark (bench/data/alltoall.sh): ROWS
 * rows of bench/data/rows.h made by the package's gen_rows from range(ROWS),
 * then one operator, streamed to this driver, which checks every row:
 *   none     gen_rows only (what the others cost besides their operator)
 *   shuffle  random_shuffle: the keys' sum and count are the input's
 *   sort     sort by key: in order, and the keys' sum and count
 *   groupby  groupby(group).aggregate(count, sum(v0), mean(v1)): every group
 *            once, the counts adding up to ROWS
 * Prints one JSON line.
 *   prism-data-alltoall PACKAGE_SHA256 none|shuffle|sort|groupby ROWS [BLOCKS [BUDGET_BYTES]] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <prism/data.h>
#include <prism/prism.h>

#include "rows.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what)
{
    fprintf(stderr, "prism-data-alltoall: %s: %s\n", what, prism_last_error());
    return 1;
}

static const int64_t *int_column(const prism_batch *b, const char *name)
{
    long i = prism_batch_column_index(b, name);
    prism_dtype dt;
    int ndim;
    int64_t shape[PRISM_MAX_DIMS];
    const void *v = i >= 0 ? prism_batch_values(b, (size_t)i, &dt, &ndim, shape) : NULL;
    return v && dt == PRISM_I64 ? v : NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: prism-data-alltoall PACKAGE_SHA256 none|shuffle|sort|groupby ROWS "
                        "[BLOCKS [BUDGET_BYTES]]\n");
        return 2;
    }
    const char *pkg = argv[1], *op = argv[2];
    int64_t rows = strtoll(argv[3], NULL, 10);
    prism_data_read_options ro = PRISM_DATA_READ_OPTIONS_INIT;
    ro.override_num_blocks = argc > 4 ? strtoll(argv[4], NULL, 10) : 0;
    prism_data_options o = PRISM_DATA_OPTIONS_INIT;
    o.memory_budget_bytes = argc > 5 ? strtoll(argv[5], NULL, 10) : 0;
    uint64_t want_sum = 0;
    for (int64_t i = 0; i < rows; i++) {
        rows_row r;
        rows_make(i, ROWS_GROUPS, &r);
        want_sum += (uint64_t)r.key;
    }

    prism_client *c;
    if (prism_connect(NULL, &c) != PRISM_OK)
        return fail("connect");
    prism_dataset *ds;
    double t0 = now();
    if (prism_data_range(c, rows, &ro, &ds) != PRISM_OK)
        return fail("range");
    prism_data_map_options mo = PRISM_DATA_MAP_OPTIONS_INIT;
    mo.batch_size = 0;
    static const char *const key[] = {"key", NULL}, *const group[] = {"group", NULL};
    static const prism_data_agg aggs[] = {{"count", NULL}, {"sum", "v0"}, {"mean", "v1"}};
    prism_status s = prism_data_map_batches(ds, pkg, "gen_rows", &mo);
    if (s == PRISM_OK && !strcmp(op, "shuffle"))
        s = prism_data_random_shuffle(ds, 1);
    else if (s == PRISM_OK && !strcmp(op, "sort"))
        s = prism_data_sort(ds, key, false);
    else if (s == PRISM_OK && !strcmp(op, "groupby"))
        s = prism_data_groupby_aggregate(ds, group, aggs, 3);
    else if (s == PRISM_OK && strcmp(op, "none"))
        return fprintf(stderr, "prism-data-alltoall: unknown operator %s\n", op), 2;
    if (s != PRISM_OK || prism_data_set_options(ds, &o) != PRISM_OK)
        return fail("build the plan");
    prism_data_iter *it;
    if (prism_data_iter_batches(ds, 65536, NULL, &it) != PRISM_OK)
        return fail("iterate");
    prism_batch *b;
    int64_t seen = 0, groups = 0, counted = 0, last = INT64_MIN;
    uint64_t sum = 0;
    bool ordered = true;
    double first = 0;
    while ((s = prism_data_iter_next(it, &b)) == PRISM_OK && b) {
        size_t n = prism_batch_rows(b);
        if (!first)
            first = now() - t0;
        if (!strcmp(op, "groupby")) {
            const int64_t *cnt = int_column(b, "count()");
            if (!cnt)
                return fprintf(stderr, "prism-data-alltoall: no count() column\n"), 1;
            for (size_t i = 0; i < n; i++)
                counted += cnt[i];
            groups += (int64_t)n;
        } else {
            const int64_t *k = int_column(b, "key");
            if (!k)
                return fprintf(stderr, "prism-data-alltoall: no int64 key column\n"), 1;
            for (size_t i = 0; i < n; i++) {
                sum += (uint64_t)k[i];
                ordered = ordered && k[i] >= last;
                last = k[i];
            }
        }
        seen += (int64_t)n;
        prism_batch_free(b);
    }
    if (s != PRISM_OK)
        return fail("a batch");
    double secs = now() - t0;
    prism_data_iter_destroy(it);
    prism_data_destroy(ds);
    prism_disconnect(c);
    bool ok = !strcmp(op, "groupby")
                  ? groups == ROWS_GROUPS && counted == rows
                  : seen == rows && sum == want_sum && (strcmp(op, "sort") || ordered);
    if (!ok) {
        fprintf(stderr,
                "prism-data-alltoall: %s gave wrong rows (%lld rows, %lld groups, %lld counted, "
                "sum %s, %s)\n",
                op, (long long)seen, (long long)groups, (long long)counted,
                sum == want_sum ? "right" : "wrong", ordered ? "in order" : "out of order");
        return 1;
    }
    printf("{\"peer\": \"Prism\", \"op\": \"%s\", \"rows\": %lld, \"seconds\": %.3f, "
           "\"rows_per_s\": %.0f, \"gb_per_s\": %.3f, \"first_batch_s\": %.3f}\n",
           op, (long long)rows, secs, (double)rows / secs, (double)rows * ROWS_BYTES / secs / 1e9,
           first);
    return 0;
}
