/* Dataset functions for the integration tests: a task package whose
 * PRISM_TASK functions take a block (args[0], a uint8 tensor of block bytes)
 * and their JSON arguments (args[1]), and return a block, as the executor
 * calls them (docs/datasets.md#package-functions). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <prism/task.h>

#include "prism_block.h"

static prism_block *open_arg(const prism_value *const *args, size_t nargs)
{
    size_t len = 0;
    const void *data = nargs >= 1 ? prism_value_data(args[0], &len) : NULL;
    prism_block *b = NULL;
    return data && prism_block_open(data, len, &b, NULL, 0) == PRISM_BLOCK_OK ? b : NULL;
}

static json_t *args_of(const prism_value *const *args, size_t nargs)
{
    const char *text = nargs >= 2 ? prism_value_json_text(args[1]) : NULL;
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    return j ? j : json_object();
}

static const char *str_arg(json_t *a, const char *key, const char *def)
{
    const char *v = json_string_value(json_object_get(a, key));
    return v ? v : def;
}

/* Row `r` of a numeric column as a double; 0 for other types. */
static double num(const prism_block *b, size_t col, size_t r)
{
    prism_coltype t = prism_block_schema_type(prism_block_get_schema(b), col);
    const void *v = prism_block_values(b, col, t);
    switch (t) {
    case PRISM_COL_INT64: return (double)((const int64_t *)v)[r];
    case PRISM_COL_INT32: return ((const int32_t *)v)[r];
    case PRISM_COL_FLOAT64: return ((const double *)v)[r];
    case PRISM_COL_FLOAT32: return ((const float *)v)[r];
    case PRISM_COL_UINT8: return ((const uint8_t *)v)[r];
    default: return 0;
    }
}

/* The block's bytes as the value to return (a copy). */
static prism_status give(prism_task_ctx *ctx, prism_block *b, prism_value **returns)
{
    size_t len = prism_block_nbytes(b);
    void *mem = aligned_alloc(64, (len + 63) / 64 * 64);
    if (!mem || prism_block_serialize(b, mem, len) != PRISM_BLOCK_OK) {
        free(mem);
        prism_block_destroy(b);
        return prism_task_fail(ctx, "cannot write the block");
    }
    int64_t shape[1] = {(int64_t)len};
    returns[0] = prism_value_tensor(PRISM_U8, 1, shape, mem);
    free(mem);
    prism_block_destroy(b);
    return returns[0] ? PRISM_OK : prism_task_fail(ctx, "out of memory");
}

/* A block of one float64 or bool column named `name` from `values`. */
static prism_block *one_column(const char *name, prism_coltype t, const void *values, size_t rows)
{
    prism_block_schema *s = NULL;
    prism_block_builder *bb = NULL;
    prism_block *out = NULL;
    if (prism_block_schema_create(&s) == PRISM_BLOCK_OK &&
        prism_block_schema_add(s, name, t) == PRISM_BLOCK_OK &&
        prism_block_builder_create(s, &bb) == PRISM_BLOCK_OK &&
        (t == PRISM_COL_BOOL
             ? prism_block_builder_set_bool(bb, 0, values, rows, NULL)
             : prism_block_builder_set_fixed(bb, 0, values, rows, NULL)) == PRISM_BLOCK_OK)
        prism_block_builder_finish(bb, &out, NULL, 0);
    prism_block_builder_destroy(bb);
    prism_block_schema_destroy(s);
    return out;
}

/* filter: keeps the rows whose `column` (default "id") is a multiple of `of` (default 3). */
PRISM_TASK(keep_multiples)
{
    prism_block *b = open_arg(args, nargs);
    json_t *a = args_of(args, nargs);
    long col = b ? prism_block_column_index(b, str_arg(a, "column", "id")) : -1;
    long long of = json_is_integer(json_object_get(a, "of"))
                       ? json_integer_value(json_object_get(a, "of"))
                       : 3;
    json_decref(a);
    if (col < 0 || of == 0) {
        prism_block_destroy(b);
        return prism_task_fail(ctx, "keep_multiples needs a block with the column, and of != 0");
    }
    size_t rows = prism_block_rows(b);
    uint8_t *bits = calloc(rows / 8 + 1, 1);
    for (size_t r = 0; bits && r < rows; r++)
        if ((long long)num(b, (size_t)col, r) % of == 0)
            bits[r / 8] |= (uint8_t)(1u << (r % 8));
    prism_block *mask = bits ? one_column("keep", PRISM_COL_BOOL, bits, rows) : NULL;
    free(bits);
    prism_block_destroy(b);
    return mask ? give(ctx, mask, returns) : prism_task_fail(ctx, "out of memory");
}

/* map_batches: a block of `column` (as float64) and "square", its square. */
PRISM_TASK(square)
{
    prism_block *b = open_arg(args, nargs);
    json_t *a = args_of(args, nargs);
    const char *name = str_arg(a, "column", "id");
    long col = b ? prism_block_column_index(b, name) : -1;
    if (col < 0) {
        json_decref(a);
        prism_block_destroy(b);
        return prism_task_fail(ctx, "square: no such column");
    }
    size_t rows = prism_block_rows(b);
    double *v = malloc(rows * sizeof *v + 8), *sq = malloc(rows * sizeof *sq + 8);
    for (size_t r = 0; v && sq && r < rows; r++) {
        v[r] = num(b, (size_t)col, r);
        sq[r] = v[r] * v[r];
    }
    prism_block_schema *s = NULL;
    prism_block_builder *bb = NULL;
    prism_block *out = NULL;
    if (v && sq && prism_block_schema_create(&s) == PRISM_BLOCK_OK &&
        prism_block_schema_add(s, name, PRISM_COL_FLOAT64) == PRISM_BLOCK_OK &&
        prism_block_schema_add(s, "square", PRISM_COL_FLOAT64) == PRISM_BLOCK_OK &&
        prism_block_builder_create(s, &bb) == PRISM_BLOCK_OK &&
        prism_block_builder_set_fixed(bb, 0, v, rows, NULL) == PRISM_BLOCK_OK &&
        prism_block_builder_set_fixed(bb, 1, sq, rows, NULL) == PRISM_BLOCK_OK)
        prism_block_builder_finish(bb, &out, NULL, 0);
    prism_block_builder_destroy(bb);
    prism_block_schema_destroy(s);
    free(v);
    free(sq);
    json_decref(a);
    prism_block_destroy(b);
    return out ? give(ctx, out, returns) : prism_task_fail(ctx, "square: cannot build the block");
}

/* add_column: twice `column`, as float64. */
PRISM_TASK(twice)
{
    prism_block *b = open_arg(args, nargs);
    json_t *a = args_of(args, nargs);
    long col = b ? prism_block_column_index(b, str_arg(a, "column", "id")) : -1;
    json_decref(a);
    size_t rows = b ? prism_block_rows(b) : 0;
    double *v = col >= 0 ? malloc(rows * sizeof *v + 8) : NULL;
    for (size_t r = 0; v && r < rows; r++)
        v[r] = 2 * num(b, (size_t)col, r);
    prism_block *out = v ? one_column("twice", PRISM_COL_FLOAT64, v, rows) : NULL;
    free(v);
    prism_block_destroy(b);
    return out ? give(ctx, out, returns) : prism_task_fail(ctx, "twice: no such column");
}

/* map_groups: one row per group: "key" (its `key` column, as float64), "rows" and
 * "spread" (the largest `column` less the smallest). */
PRISM_TASK(group_spread)
{
    prism_block *b = open_arg(args, nargs);
    json_t *a = args_of(args, nargs);
    long key = b ? prism_block_column_index(b, str_arg(a, "key", "k")) : -1;
    long col = b ? prism_block_column_index(b, str_arg(a, "column", "v")) : -1;
    json_decref(a);
    size_t rows = b ? prism_block_rows(b) : 0;
    if (key < 0 || col < 0 || rows == 0) {
        prism_block_destroy(b);
        return prism_task_fail(ctx, "group_spread needs a non-empty group with its columns");
    }
    double lo = num(b, (size_t)col, 0), hi = lo;
    for (size_t r = 1; r < rows; r++) {
        double v = num(b, (size_t)col, r);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    double vals[3] = {num(b, (size_t)key, 0), (double)rows, hi - lo};
    const char *names[3] = {"key", "rows", "spread"};
    prism_block_destroy(b);
    prism_block_schema *s = NULL;
    prism_block_builder *bb = NULL;
    prism_block *out = NULL;
    prism_block_status st = prism_block_schema_create(&s);
    for (int i = 0; st == PRISM_BLOCK_OK && i < 3; i++)
        st = prism_block_schema_add(s, names[i], PRISM_COL_FLOAT64);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_create(s, &bb);
    for (size_t i = 0; st == PRISM_BLOCK_OK && i < 3; i++)
        st = prism_block_builder_set_fixed(bb, i, &vals[i], 1, NULL);
    if (st == PRISM_BLOCK_OK)
        prism_block_builder_finish(bb, &out, NULL, 0);
    prism_block_builder_destroy(bb);
    prism_block_schema_destroy(s);
    return out ? give(ctx, out, returns) : prism_task_fail(ctx, "out of memory");
}

/* map_batches: the batch as it is, after `ms` milliseconds (a slow stage). */
PRISM_TASK(slow)
{
    prism_block *b = open_arg(args, nargs);
    json_t *a = args_of(args, nargs);
    double ms = json_number_value(json_object_get(a, "ms"));
    json_decref(a);
    if (!b)
        return prism_task_fail(ctx, "slow: no block");
    struct timespec ts = {(time_t)(ms / 1000), (long)((ms - 1000 * (long)(ms / 1000)) * 1e6)};
    nanosleep(&ts, NULL);
    return give(ctx, b, returns);
}

/* map_batches: always fails (the error path). */
PRISM_TASK(broken) { return prism_task_fail(ctx, "this batch function always fails"); }

/* An actor pool's setup and batches, as a model would be: model__init runs once in each actor
 * of the pool (it appends the actor's process ID to the file `log`, so the test counts the
 * constructors) and `model` fails unless it ran in the same process. */
static int model_loaded;

PRISM_TASK(model__init)
{
    const char *text = nargs >= 1 ? prism_value_json_text(args[0]) : NULL;
    json_t *a = text ? json_loads(text, 0, NULL) : NULL;
    const char *log = json_string_value(json_object_get(a, "log"));
    FILE *f = log ? fopen(log, "a") : NULL;
    if (f) {
        fprintf(f, "%ld\n", (long)getpid());
        fclose(f);
    }
    json_decref(a);
    if (!f)
        return prism_task_fail(ctx, "model__init: cannot append to the log");
    model_loaded = 1;
    return PRISM_OK;
}

PRISM_TASK(model)
{
    prism_block *b = open_arg(args, nargs);
    json_t *a = args_of(args, nargs);
    double ms = json_number_value(json_object_get(a, "ms"));
    json_decref(a);
    if (!model_loaded) {
        prism_block_destroy(b);
        return prism_task_fail(ctx, "model: the setup did not run in this process");
    }
    if (!b)
        return prism_task_fail(ctx, "model: no block");
    struct timespec ts = {(time_t)(ms / 1000), (long)((ms - 1000 * (long)(ms / 1000)) * 1e6)};
    nanosleep(&ts, NULL);
    return give(ctx, b, returns);
}
