/* A driver for the dataset tests of the C API (include/prism/data.h): each
 * subcommand builds a dataset, consumes it, prints what it saw, and exits 0
 * only when every result was right.
 *   data_probe range N BLOCKS BATCH [SLOW_MS [BUDGET]]  iter_batches of range(N): every
 *                                             id once (a consumer of SLOW_MS a batch)
 *   data_probe images DIR BATCH               read_images + center_crop, batches checked
 *   data_probe count_take N                   count and take (in order) of range(N)
 *   data_probe plan JSON N                    iter_batches of a plan whose output is
 *                                             range(N)'s "id": every id once
 *   data_probe early N                        two batches of range(N), one kept past the
 *                                             iterator's end, then the iterator destroyed
 *   data_probe bad DIR                        errors: builder, missing path, failed stage
 *   data_probe write jsonl|csv DIR N BLOCKS   range(N) cast to float64, written to DIR
 *                                             (the test reads the files back)
 *   data_probe materialize N BLOCKS EPOCHS   range(N) materialized, then EPOCHS iterations
 *                                             (every id once each), count, a refused limit
 *   data_probe split JSON N EQUAL TIMEOUT_MS  streaming_split(N) of a plan: prints its ID
 *   data_probe consume ID SPLIT BATCH SLOW_MS iterates one split: prints "first" after the
 *                                             first batch, then "rows R ids ..." (every "id")
 *   data_probe a2a N PKG                      range(N): random_shuffle (a permutation, the
 *                                             same twice with a seed), then sort descending,
 *                                             repartition, unique; prints the rows (take) of
 *                                             a groupby and of map_groups(PKG's group_spread)
 *   data_probe union_zip N                    range(N) union range(N): counts 2N; range(N)
 *                                             zip range(N) sorted descending: prints its rows
 *                                             (take); zip with range(N - 1): refused, and
 *                                             after a map_batches the run's error */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <prism/data.h>
#include <prism/prism.h>

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "probe: " __VA_ARGS__);                                                \
            fprintf(stderr, " (%s)\n", prism_last_error());                                        \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* The ArrowSchema and ArrowArray structures, as the specification writes them. */
struct ArrowSchema {
    const char *format, *name, *metadata;
    int64_t flags, n_children;
    struct ArrowSchema **children, *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};
struct ArrowArray {
    int64_t length, null_count, offset, n_buffers, n_children;
    const void **buffers;
    struct ArrowArray **children, *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Every id of range(n) once, in batches of `batch` rows, from `ds`. */
static int every_id(prism_dataset *ds, int64_t n, int64_t batch, int slow_ms);

static int range(prism_client *c, int64_t n, int64_t blocks, int64_t batch, int slow_ms,
                 int64_t budget)
{
    prism_dataset *ds;
    prism_data_read_options ro = PRISM_DATA_READ_OPTIONS_INIT;
    ro.override_num_blocks = blocks;
    CHECK(prism_data_range(c, n, &ro, &ds) == PRISM_OK, "range");
    prism_data_options o = PRISM_DATA_OPTIONS_INIT;
    o.memory_budget_bytes = budget;
    CHECK(prism_data_set_options(ds, &o) == PRISM_OK, "options");
    int rc = every_id(ds, n, batch, slow_ms);
    prism_data_destroy(ds);
    return rc;
}

static int every_id(prism_dataset *ds, int64_t n, int64_t batch, int slow_ms)
{
    prism_data_iter *it;
    CHECK(prism_data_iter_batches(ds, batch, NULL, &it) == PRISM_OK, "iter_batches");
    char *seen = calloc((size_t)n + 1, 1);
    int64_t rows = 0, batches = 0;
    prism_batch *b;
    prism_status s;
    while ((s = prism_data_iter_next(it, &b)) == PRISM_OK && b) {
        prism_dtype dt;
        int ndim = -1;
        int64_t shape[PRISM_MAX_DIMS];
        long col = prism_batch_column_index(b, "id");
        CHECK(col == 0 && prism_batch_num_columns(b) == 1, "no id column");
        const int64_t *ids = prism_batch_values(b, (size_t)col, &dt, &ndim, shape);
        size_t k = prism_batch_rows(b);
        CHECK(ids && dt == PRISM_I64 && ndim == 0, "ids are not int64");
        CHECK((int64_t)k == batch || rows + (int64_t)k == n, "a batch of %zu rows mid-stream", k);
        for (size_t i = 0; i < k; i++) {
            CHECK(ids[i] >= 0 && ids[i] < n && !seen[ids[i]], "id %lld twice or out of range",
                  (long long)ids[i]);
            seen[ids[i]] = 1;
        }
        rows += (int64_t)k;
        batches++;
        prism_batch_free(b);
        if (slow_ms)
            sleep_ms(slow_ms);
    }
    CHECK(s == PRISM_OK, "next: %s", prism_status_text(s));
    CHECK(rows == n, "%lld rows, not %lld", (long long)rows, (long long)n);
    printf("range ok: %lld rows in %lld batches\n", (long long)rows, (long long)batches);
    free(seen);
    prism_data_iter_destroy(it);
    return 0;
}

static int images(prism_client *c, const char *dir, int64_t batch)
{
    const char *paths[] = {dir, NULL};
    prism_dataset *ds;
    prism_data_read_options ro = PRISM_DATA_READ_OPTIONS_INIT;
    ro.size[0] = 4;
    ro.size[1] = 6;
    ro.mode = "RGB";
    ro.include_paths = true;
    CHECK(prism_data_read_images(c, paths, &ro, &ds) == PRISM_OK, "read_images");
    prism_data_map_options mo = PRISM_DATA_MAP_OPTIONS_INIT;
    mo.args = "{\"size\": [2, 4]}";
    CHECK(prism_data_map_batches(ds, "builtin", "center_crop", &mo) == PRISM_OK, "center_crop");
    prism_data_iter *it;
    prism_data_iter_options io = PRISM_DATA_ITER_OPTIONS_INIT;
    io.timeout_ms = 60000;
    CHECK(prism_data_iter_batches(ds, batch, &io, &it) == PRISM_OK, "iter_batches");
    prism_batch *b;
    int64_t rows = 0;
    prism_status s;
    while ((s = prism_data_iter_next(it, &b)) == PRISM_OK && b) {
        prism_dtype dt;
        int ndim = 0;
        int64_t shape[PRISM_MAX_DIMS];
        long col = prism_batch_column_index(b, "image");
        const uint8_t *px = prism_batch_values(b, (size_t)col, &dt, &ndim, shape);
        CHECK(px && dt == PRISM_U8 && ndim == 3 && shape[0] == 2 && shape[1] == 4 && shape[2] == 3,
              "not 2 x 4 x 3 uint8 images");
        /* the gradient: channel 2 is 128 everywhere */
        for (size_t i = 0; i < prism_batch_rows(b) * 24; i += 3)
            CHECK(px[i + 2] == 128, "pixel %zu is %u", i / 3, px[i + 2]);
        size_t len = 0;
        const char *path =
            prism_batch_bytes(b, (size_t)prism_batch_column_index(b, "path"), 0, &len);
        CHECK(path && len > 4 && !memcmp(path + len - 4, ".png", 4), "no path");
        struct ArrowSchema as;
        struct ArrowArray aa;
        CHECK(prism_batch_export_arrow(b, &as, &aa) == PRISM_OK, "export");
        CHECK(!strcmp(as.format, "+s") && as.n_children == 2 &&
                  aa.length == (int64_t)prism_batch_rows(b),
              "an Arrow struct of 2 columns");
        rows += (int64_t)prism_batch_rows(b);
        prism_batch_free(b); /* the Arrow structures keep what they point at */
        CHECK(aa.children[0]->length == aa.length, "child length");
        as.release(&as);
        aa.release(&aa);
    }
    CHECK(s == PRISM_OK, "next: %s", prism_status_text(s));
    printf("images ok: %lld rows\n", (long long)rows);
    prism_data_iter_destroy(it);
    prism_data_destroy(ds);
    return 0;
}

static int count_take(prism_client *c, int64_t n)
{
    prism_dataset *ds;
    CHECK(prism_data_range(c, n, NULL, &ds) == PRISM_OK, "range");
    /* the first rows of the read, not of whichever block comes first */
    prism_data_options o = PRISM_DATA_OPTIONS_INIT;
    o.preserve_order = true;
    CHECK(prism_data_set_options(ds, &o) == PRISM_OK, "options");
    prism_data_map_options mo = PRISM_DATA_MAP_OPTIONS_INIT;
    mo.args = "{\"column\": \"id\", \"dtype\": \"float64\"}";
    CHECK(prism_data_map_batches(ds, "builtin", "cast", &mo) == PRISM_OK, "cast");
    int64_t count = -1;
    CHECK(prism_data_count(ds, 60000, &count) == PRISM_OK && count == n, "count %lld",
          (long long)count);
    CHECK(prism_data_limit(ds, 3) == PRISM_OK, "limit");
    char *rows = NULL;
    CHECK(prism_data_take(ds, 3, 60000, &rows) == PRISM_OK, "take");
    CHECK(!strcmp(rows, "[{\"id\":0.0},{\"id\":1.0},{\"id\":2.0}]") ||
              !strcmp(rows, "[{\"id\": 0.0}, {\"id\": 1.0}, {\"id\": 2.0}]"),
          "take gave %s", rows);
    char *plan = prism_data_plan_json(ds);
    CHECK(plan && strstr(plan, "\"limit\""), "plan %s", plan ? plan : "(null)");
    printf("count_take ok: %lld rows, take %s\n", (long long)count, rows);
    free(plan);
    free(rows);
    prism_data_destroy(ds);
    return 0;
}

static int early(prism_client *c, int64_t n)
{
    prism_dataset *ds;
    prism_data_read_options ro = PRISM_DATA_READ_OPTIONS_INIT;
    ro.override_num_blocks = 64;
    CHECK(prism_data_range(c, n, &ro, &ds) == PRISM_OK, "range");
    prism_data_iter *it;
    prism_batch *first = NULL, *second = NULL;
    CHECK(prism_data_iter_batches(ds, 1000, NULL, &it) == PRISM_OK, "iter_batches");
    CHECK(prism_data_iter_next(it, &first) == PRISM_OK && first, "first batch");
    CHECK(prism_data_iter_next(it, &second) == PRISM_OK && second, "second batch");
    prism_batch_free(second);
    prism_data_iter_destroy(it); /* stops the dataset; the batch kept stays readable */
    prism_data_destroy(ds);
    char *rows = prism_batch_to_json(first);
    CHECK(rows && prism_batch_rows(first) == 1000, "the kept batch");
    printf("early ok: %.20s\n", rows);
    free(rows);
    prism_batch_free(first);
    return 0;
}

static int bad(prism_client *c, const char *dir)
{
    prism_dataset *ds;
    CHECK(prism_data_range(c, 10, NULL, &ds) == PRISM_OK, "range");
    prism_data_map_options mo = PRISM_DATA_MAP_OPTIONS_INIT;
    mo.args = "{\"size\": [2]}";
    CHECK(prism_data_map_batches(ds, "builtin", "center_crop", &mo) == PRISM_ERR_INVALID &&
              strstr(prism_last_error(), "ops[1] (map_batches)"),
          "a bad builtin argument was accepted");
    CHECK(prism_data_limit(ds, 1) == PRISM_ERR_INVALID, "the first failure does not stick");
    int64_t n;
    CHECK(prism_data_count(ds, 10000, &n) == PRISM_ERR_INVALID, "a failed plan ran");
    prism_data_destroy(ds);

    char missing[512];
    snprintf(missing, sizeof missing, "%s/missing", dir);
    const char *paths[] = {missing, NULL};
    CHECK(prism_data_read_text(c, paths, NULL, &ds) == PRISM_OK, "read_text");
    prism_data_iter *it;
    prism_batch *b = NULL;
    CHECK(prism_data_iter_batches(ds, 10, NULL, &it) == PRISM_OK, "iter_batches");
    CHECK(prism_data_iter_next(it, &b) == PRISM_ERR_TASK && !b &&
              strstr(prism_last_error(), "ops[0] (read_text)") &&
              strstr(prism_last_error(), "missing"),
          "a missing path did not fail the iteration");
    printf("bad ok: %s\n", prism_last_error());
    prism_data_iter_destroy(it);
    prism_data_destroy(ds);
    return 0;
}

static int write_files(prism_client *c, const char *format, const char *dir, int64_t n,
                       int64_t blocks)
{
    prism_dataset *ds;
    prism_data_read_options ro = PRISM_DATA_READ_OPTIONS_INIT;
    ro.override_num_blocks = blocks;
    CHECK(prism_data_range(c, n, &ro, &ds) == PRISM_OK, "range");
    prism_data_map_options mo = PRISM_DATA_MAP_OPTIONS_INIT;
    mo.args = "{\"column\": \"id\", \"dtype\": \"float64\"}";
    CHECK(prism_data_map_batches(ds, "builtin", "cast", &mo) == PRISM_OK, "cast");
    int64_t rows = -1, files = -1;
    prism_status st = !strcmp(format, "csv")
                          ? prism_data_write_csv(ds, dir, 60000, &rows, &files)
                          : prism_data_write_jsonl(ds, dir, 60000, &rows, &files);
    CHECK(st == PRISM_OK && rows == n, "write_%s: %lld rows", format, (long long)rows);
    /* a path outside the roots is refused before anything runs */
    CHECK(prism_data_write_jsonl(ds, "/proc/self", 60000, NULL, NULL) == PRISM_ERR_INVALID &&
              strstr(prism_last_error(), "write_jsonl"),
          "a write outside the roots was not refused");
    printf("write ok: %lld rows in %lld files\n", (long long)rows, (long long)files);
    prism_data_destroy(ds);
    return 0;
}

static int split_start(prism_client *c, const char *plan, int n, bool equal, int timeout_ms)
{
    prism_dataset *ds;
    char id[PRISM_DATA_ID_SIZE];
    CHECK(prism_data_from_json(c, plan, &ds) == PRISM_OK, "the plan");
    CHECK(prism_data_streaming_split(ds, n, equal, timeout_ms, id, sizeof id) == PRISM_OK,
          "streaming_split");
    printf("%s\n", id);
    prism_data_destroy(ds);
    return 0;
}

static int consume(prism_client *c, const char *id, int split, int64_t batch, int slow_ms)
{
    prism_data_iter *it;
    prism_batch *b;
    prism_status st;
    int64_t rows = 0;
    size_t nbatches = 0;
    CHECK(prism_data_iter_split(c, id, split, batch, NULL, &it) == PRISM_OK, "iter_split");
    char *ids = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&ids, &len);
    CHECK(f, "memstream");
    while ((st = prism_data_iter_next(it, &b)) == PRISM_OK && b) {
        long col = prism_batch_column_index(b, "id");
        prism_dtype dt;
        int ndim;
        int64_t shape[PRISM_MAX_DIMS];
        const void *v = col >= 0 ? prism_batch_values(b, (size_t)col, &dt, &ndim, shape) : NULL;
        for (size_t r = 0; v && r < prism_batch_rows(b); r++)
            fprintf(f, " %lld",
                    dt == PRISM_I64 ? (long long)((const int64_t *)v)[r]
                                    : (long long)((const double *)v)[r]);
        rows += (int64_t)prism_batch_rows(b);
        prism_batch_free(b);
        if (nbatches++ == 0) {
            printf("first\n");
            fflush(stdout);
        }
        if (slow_ms)
            sleep_ms(slow_ms);
    }
    fclose(f);
    prism_data_iter_destroy(it);
    if (st != PRISM_OK) {
        printf("error %d: %s\n", (int)st, prism_last_error());
        free(ids);
        return 1;
    }
    printf("rows %lld ids%s\n", (long long)rows, ids ? ids : "");
    free(ids);
    return 0;
}

static int materialize(prism_client *c, int64_t n, int64_t blocks, int epochs)
{
    prism_dataset *ds, *m;
    prism_data_read_options ro = PRISM_DATA_READ_OPTIONS_INIT;
    ro.override_num_blocks = blocks;
    CHECK(prism_data_range(c, n, &ro, &ds) == PRISM_OK, "range");
    CHECK(prism_data_materialize(ds, 60000, &m) == PRISM_OK, "materialize");
    prism_data_destroy(ds);
    for (int e = 0; e < epochs; e++)
        if (every_id(m, n, 1000, 0) != 0)
            return 1;
    int64_t count = -1;
    CHECK(prism_data_count(m, 60000, &count) == PRISM_OK && count == n, "count %lld",
          (long long)count);
    CHECK(prism_data_limit(m, 1) == PRISM_ERR_INVALID && strstr(prism_last_error(), "materialized"),
          "a materialized dataset took a transform");
    printf("materialize ok: %lld rows, %d epochs\n", (long long)n, epochs);
    prism_data_destroy(m);
    return 0;
}

/* Every "id" of `ds` in the order iteration gives them (`*out`: n of them). */
static int ids_of(prism_dataset *ds, int64_t n, int64_t *out)
{
    prism_data_iter *it;
    CHECK(prism_data_iter_batches(ds, 777, NULL, &it) == PRISM_OK, "iter_batches");
    prism_batch *b;
    prism_status s;
    int64_t rows = 0;
    while ((s = prism_data_iter_next(it, &b)) == PRISM_OK && b) {
        prism_dtype dt;
        int ndim = -1;
        int64_t shape[PRISM_MAX_DIMS];
        const int64_t *ids =
            prism_batch_values(b, (size_t)prism_batch_column_index(b, "id"), &dt, &ndim, shape);
        size_t k = prism_batch_rows(b);
        CHECK(ids && dt == PRISM_I64 && rows + (int64_t)k <= n, "ids");
        memcpy(out + rows, ids, k * sizeof *ids);
        rows += (int64_t)k;
        prism_batch_free(b);
    }
    prism_data_iter_destroy(it);
    CHECK(s == PRISM_OK && rows == n, "%lld rows, not %lld", (long long)rows, (long long)n);
    return 0;
}

static int all_to_all(prism_client *c, int64_t n, const char *pkg)
{
    prism_data_read_options ro = PRISM_DATA_READ_OPTIONS_INIT;
    ro.override_num_blocks = 8;
    int64_t *ids[2] = {calloc((size_t)n, sizeof(int64_t)), calloc((size_t)n, sizeof(int64_t))};
    char *seen = calloc((size_t)n, 1);
    CHECK(ids[0] && ids[1] && seen, "out of memory");
    for (int run = 0; run < 2; run++) { /* a seeded shuffle: a permutation, twice the same */
        prism_dataset *ds;
        CHECK(prism_data_range(c, n, &ro, &ds) == PRISM_OK, "range");
        CHECK(prism_data_random_shuffle(ds, 11) == PRISM_OK, "random_shuffle");
        int rc = ids_of(ds, n, ids[run]);
        prism_data_destroy(ds);
        if (rc)
            return rc;
    }
    int64_t in_place = 0;
    for (int64_t i = 0; i < n; i++) {
        CHECK(ids[0][i] >= 0 && ids[0][i] < n && !seen[ids[0][i]], "id %lld twice",
              (long long)ids[0][i]);
        seen[ids[0][i]] = 1;
        in_place += ids[0][i] == i;
        CHECK(ids[0][i] == ids[1][i], "the seeded shuffles differ at row %lld", (long long)i);
    }
    CHECK(in_place < n / 10, "%lld of %lld rows stayed in place", (long long)in_place,
          (long long)n);
    prism_dataset *ds;
    const char *key[] = {"id", NULL};
    CHECK(prism_data_range(c, n, &ro, &ds) == PRISM_OK, "range");
    CHECK(prism_data_random_shuffle(ds, -1) == PRISM_OK, "random_shuffle");
    CHECK(prism_data_sort(ds, key, true) == PRISM_OK, "sort");
    int rc = ids_of(ds, n, ids[0]);
    prism_data_destroy(ds);
    for (int64_t i = 0; rc == 0 && i < n; i++)
        CHECK(ids[0][i] == n - 1 - i, "row %lld of the sort is %lld", (long long)i,
              (long long)ids[0][i]);
    CHECK(prism_data_range(c, n, &ro, &ds) == PRISM_OK, "range");
    CHECK(prism_data_repartition(ds, 3, false) == PRISM_OK, "repartition");
    rc = rc ? rc : ids_of(ds, n, ids[0]);
    prism_data_destroy(ds);
    for (int64_t i = 0; rc == 0 && i < n; i++)
        CHECK(ids[0][i] == i, "row %lld of the repartition is %lld", (long long)i,
              (long long)ids[0][i]);
    CHECK(prism_data_range(c, n, &ro, &ds) == PRISM_OK, "range");
    CHECK(prism_data_repartition(ds, 0, false) == PRISM_ERR_INVALID &&
              strstr(prism_last_error(), "num_blocks"),
          "repartition(0) was taken");
    prism_data_destroy(ds);
    /* groupby: the test checks the rows against its own sums */
    char items[4096];
    size_t len =
        (size_t)snprintf(items, sizeof items, "{\"ops\": [{\"op\": \"from_items\", \"items\": [");
    for (int i = 0; i < 100; i++)
        len += (size_t)snprintf(items + len, sizeof items - len, "%s{\"g\": %d, \"x\": %d}",
                                i ? ", " : "", i % 5, i);
    snprintf(items + len, sizeof items - len, "]}]}");
    CHECK(prism_data_from_json(c, items, &ds) == PRISM_OK, "from_json");
    const char *g[] = {"g", NULL};
    prism_data_agg aggs[] = {{"count", NULL}, {"sum", "x"},  {"min", "x"},
                             {"max", "x"},    {"mean", "x"}, {"std", "x"}};
    CHECK(prism_data_groupby_aggregate(ds, g, aggs, 6) == PRISM_OK, "groupby");
    char *out = NULL;
    CHECK(prism_data_take(ds, 10, 60000, &out) == PRISM_OK, "take");
    printf("groupby: %s\n", out);
    free(out);
    prism_data_destroy(ds);
    int64_t distinct = -1;
    CHECK(prism_data_from_json(c, items, &ds) == PRISM_OK, "from_json");
    CHECK(prism_data_unique(ds, "g") == PRISM_OK, "unique");
    CHECK(prism_data_count(ds, 60000, &distinct) == PRISM_OK && distinct == 5,
          "unique: %lld values, not 5", (long long)distinct);
    prism_data_destroy(ds);
    CHECK(prism_data_from_json(c, items, &ds) == PRISM_OK, "from_json");
    CHECK(prism_data_map_groups(ds, g, pkg, "group_spread",
                                "{\"key\": \"g\", \"column\": \"x\"}") == PRISM_OK,
          "map_groups");
    CHECK(prism_data_take(ds, 10, 60000, &out) == PRISM_OK, "take");
    printf("map_groups: %s\n", out);
    free(out);
    prism_data_destroy(ds);
    free(ids[0]);
    free(ids[1]);
    free(seen);
    if (rc == 0)
        printf("a2a ok: %lld rows\n", (long long)n);
    return rc;
}

static int union_zip(prism_client *c, int64_t n)
{
    prism_data_map_options cast = PRISM_DATA_MAP_OPTIONS_INIT;
    cast.args = "{\"column\": \"id\", \"dtype\": \"int32\"}";
    prism_data_read_options ro = PRISM_DATA_READ_OPTIONS_INIT;
    prism_dataset *a, *b, *d, *e;
    ro.override_num_blocks = 4;
    CHECK(prism_data_range(c, n, &ro, &a) == PRISM_OK, "range");
    ro.override_num_blocks = 3;
    CHECK(prism_data_range(c, n, &ro, &b) == PRISM_OK, "range");
    const prism_dataset *others[] = {b};
    CHECK(prism_data_union(a, others, 1) == PRISM_OK, "union");
    int64_t count = 0;
    CHECK(prism_data_count(a, 60000, &count) == PRISM_OK && count == 2 * n, "union count %lld",
          (long long)count);
    prism_data_destroy(a);
    const char *key[] = {"id", NULL};
    CHECK(prism_data_sort(b, key, true) == PRISM_OK, "sort");
    CHECK(prism_data_range(c, n, &ro, &d) == PRISM_OK, "range");
    CHECK(prism_data_zip(d, b) == PRISM_OK, "zip");
    char *rows = NULL;
    CHECK(prism_data_take(d, n, 60000, &rows) == PRISM_OK, "zip take");
    printf("zip: %s\n", rows);
    free(rows);
    prism_data_destroy(d);
    prism_data_destroy(b);
    /* row counts the plans tell: refused as the zip is added */
    CHECK(prism_data_range(c, n, NULL, &d) == PRISM_OK, "range");
    CHECK(prism_data_range(c, n - 1, NULL, &e) == PRISM_OK, "range");
    prism_status s = prism_data_zip(d, e);
    printf("zip refused: %s %s\n", s == PRISM_ERR_INVALID ? "PRISM_ERR_INVALID" : "?",
           prism_last_error());
    prism_data_destroy(d);
    /* row counts only the run tells (a map_batches may change them): the run fails */
    CHECK(prism_data_range(c, n, NULL, &d) == PRISM_OK, "range");
    CHECK(prism_data_map_batches(e, "builtin", "cast", &cast) == PRISM_OK, "map_batches");
    CHECK(prism_data_zip(d, e) == PRISM_OK, "zip");
    s = prism_data_count(d, 60000, &count);
    printf("zip of %lld and %lld rows: %s %s\n", (long long)n, (long long)n - 1,
           s == PRISM_ERR_TASK ? "PRISM_ERR_TASK" : prism_status_text(s), prism_last_error());
    prism_data_destroy(d);
    prism_data_destroy(e);
    return 0;
}

int main(int argc, char **argv)
{
    prism_client *c;
    if (argc < 2 || prism_connect(NULL, &c) != PRISM_OK) {
        fprintf(stderr, "usage: data_probe range|images|count_take|bad ... (%s)\n",
                prism_last_error());
        return 2;
    }
    int rc = 2;
    if (!strcmp(argv[1], "range") && argc >= 5)
        rc = range(c, atoll(argv[2]), atoll(argv[3]), atoll(argv[4]), argc > 5 ? atoi(argv[5]) : 0,
                   argc > 6 ? atoll(argv[6]) : 0);
    else if (!strcmp(argv[1], "images") && argc == 4)
        rc = images(c, argv[2], atoll(argv[3]));
    else if (!strcmp(argv[1], "count_take") && argc == 3)
        rc = count_take(c, atoll(argv[2]));
    else if (!strcmp(argv[1], "plan") && argc == 4) {
        prism_dataset *ds = NULL;
        rc = prism_data_from_json(c, argv[2], &ds) == PRISM_OK
                 ? every_id(ds, atoll(argv[3]), 1000, 0)
                 : 1;
        if (!ds)
            fprintf(stderr, "probe: the plan: %s\n", prism_last_error());
        prism_data_destroy(ds);
    } else if (!strcmp(argv[1], "early") && argc == 3)
        rc = early(c, atoll(argv[2]));
    else if (!strcmp(argv[1], "bad") && argc == 3)
        rc = bad(c, argv[2]);
    else if (!strcmp(argv[1], "materialize") && argc == 5)
        rc = materialize(c, atoll(argv[2]), atoll(argv[3]), atoi(argv[4]));
    else if (!strcmp(argv[1], "split") && argc == 6)
        rc = split_start(c, argv[2], atoi(argv[3]), !strcmp(argv[4], "true"), atoi(argv[5]));
    else if (!strcmp(argv[1], "consume") && argc == 6)
        rc = consume(c, argv[2], atoi(argv[3]), atoll(argv[4]), atoi(argv[5]));
    else if (!strcmp(argv[1], "a2a") && argc == 4)
        rc = all_to_all(c, atoll(argv[2]), argv[3]);
    else if (!strcmp(argv[1], "union_zip") && argc == 3)
        rc = union_zip(c, atoll(argv[2]));
    else if (!strcmp(argv[1], "write") && argc == 6)
        rc = write_files(c, argv[2], argv[3], atoll(argv[4]), atoll(argv[5]));
    prism_disconnect(c);
    return rc;
}
