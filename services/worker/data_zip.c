/* The task of a dataset's zip stage (docs/datasets.md#how-union-and-zip-run): rows
 * of the left dataset beside the rows at the same places of the right one.
 * The executor cuts the right dataset's blocks to the left block's rows, so
 * each output block is one left block with the right's columns after its
 * own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_ops.h"

#define ERR_LEN 1024

/* Rows [skip, skip + count) of the block of `v`, as `range` ([skip,
 * count]) says. NULL with `err`. */
static prism_block *rows_of(const prism_value *v, const json_t *range, char *err, size_t n)
{
    prism_block *b = data_block_of_value(v, err, n), *cut = NULL;
    if (!b)
        return NULL;
    size_t rows = prism_block_rows(b);
    json_int_t skip = json_integer_value(json_array_get(range, 0));
    json_int_t count = json_integer_value(json_array_get(range, 1));
    if (!json_is_array(range) || skip < 0 || count < 0 || (size_t)skip > rows ||
        (size_t)count > rows - (size_t)skip)
        snprintf(err, n, "rows [%lld, +%lld) of a block of %zu rows", (long long)skip,
                 (long long)count, rows);
    else if (prism_block_slice(b, (size_t)skip, (size_t)(skip + count), &cut) != PRISM_BLOCK_OK)
        snprintf(err, n, "out of memory");
    prism_block_destroy(b);
    return cut;
}

/* `left` with every column of `right` after its own (both borrowed; the
 * same rows). A name the result has already gets the first free suffix
 * "_1", "_2", ... (Ray Data's zip). NULL with `err`. */
static prism_block *beside(const prism_block *left, const prism_block *right, char *err, size_t n)
{
    prism_block *res = NULL;
    if (data_block_flat(left, &res) != PRISM_BLOCK_OK) {
        snprintf(err, n, "out of memory");
        return NULL;
    }
    const prism_block_schema *s = prism_block_get_schema(right);
    for (size_t c = 0; res && c < prism_block_schema_columns(s); c++) {
        const char *col = prism_block_schema_name(s, c);
        char name[1100];
        snprintf(name, sizeof name, "%s", col);
        for (int k = 1; prism_block_column_index(res, name) >= 0; k++)
            snprintf(name, sizeof name, "%s_%d", col, k);
        prism_block *one = NULL, *next = NULL;
        prism_block_status st = prism_block_select(right, &col, 1, &one);
        if (st == PRISM_BLOCK_OK)
            st = data_block_with_column(res, name, one, &next, err, n);
        if (st != PRISM_BLOCK_OK && !*err)
            snprintf(err, n, "column \"%.128s\": %s", col, prism_block_strerror(st));
        prism_block_destroy(one);
        prism_block_destroy(res);
        res = next;
    }
    return res;
}

prism_status data_zip(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                      prism_value **returns, size_t nreturns)
{
    char err[ERR_LEN] = "";
    json_t *task = nargs >= 3 && prism_value_kind_of(args[0]) == PRISM_VALUE_JSON
                       ? json_loads(prism_value_json_text(args[0]), 0, NULL)
                       : NULL;
    const json_t *ranges = json_object_get(task, "right");
    if (!task || json_array_size(ranges) != nargs - 2) {
        json_decref(task);
        return prism_task_fail(ctx, "data_zip takes a task, a left block and right blocks");
    }
    size_t nright = nargs - 2, got = 0;
    prism_block *left = rows_of(args[1], json_object_get(task, "left"), err, sizeof err);
    prism_block **right = calloc(nright, sizeof *right);
    prism_block *joined = NULL, *res = NULL;
    if (left && !right)
        snprintf(err, sizeof err, "out of memory");
    for (; left && right && got < nright; got++)
        if (!(right[got] = rows_of(args[got + 2], json_array_get(ranges, got), err, sizeof err)))
            break;
    if (left && right && got == nright &&
        prism_block_concat(right, nright, &joined, err, sizeof err) == PRISM_BLOCK_OK) {
        if (prism_block_rows(joined) != prism_block_rows(left))
            snprintf(err, sizeof err, "%zu rows beside %zu", prism_block_rows(left),
                     prism_block_rows(joined));
        else
            res = beside(left, joined, err, sizeof err);
    }
    for (size_t i = 0; right && i < got; i++)
        prism_block_destroy(right[i]);
    free(right);
    prism_block_destroy(joined);
    prism_block_destroy(left);
    json_decref(task);
    if (!res)
        return prism_task_fail(ctx, "zip: %s", *err ? err : "out of memory");
    return data_finish_block(ctx, res, returns, nreturns);
}
