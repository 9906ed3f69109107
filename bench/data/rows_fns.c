/* The rows of the all-to-all benchmark, as a task package: gen_rows turns a
 * block of range()'s "id" column into rows of 96 bytes, the same rows that
 * alltoall_ceiling.c and alltoall_dask.py make (bench/data/rows.h):
 *   key int64 (a hash of id), group int64 (another hash, mod `groups`),
 *   v0 .. v9 float64.
 * Args: {"groups": G} (default 1000). */
#include <jansson.h>
#include <stdlib.h>

#include <prism/task.h>

#include "prism_block.h"
#include "rows.h"

PRISM_TASK(gen_rows)
{
    size_t len = 0;
    const void *data = nargs >= 1 ? prism_value_data(args[0], &len) : NULL;
    prism_block *in = NULL;
    if (!data || prism_block_open(data, len, &in, NULL, 0) != PRISM_BLOCK_OK)
        return prism_task_fail(ctx, "gen_rows needs a block");
    long idc = prism_block_column_index(in, "id");
    const int64_t *ids = idc >= 0 ? prism_block_values(in, (size_t)idc, PRISM_COL_INT64) : NULL;
    if (!ids) {
        prism_block_destroy(in);
        return prism_task_fail(ctx, "gen_rows needs an int64 column \"id\"");
    }
    json_t *a = nargs >= 2 && prism_value_json_text(args[1])
                    ? json_loads(prism_value_json_text(args[1]), 0, NULL)
                    : NULL;
    int64_t groups = json_is_integer(json_object_get(a, "groups"))
                         ? json_integer_value(json_object_get(a, "groups"))
                         : ROWS_GROUPS;
    json_decref(a);
    size_t n = prism_block_rows(in);
    int64_t *cols[2] = {malloc(n * sizeof(int64_t) + 1), malloc(n * sizeof(int64_t) + 1)};
    double *vals = malloc(n * ROWS_VALUES * sizeof(double) + 1);
    prism_block_schema *s = NULL;
    prism_block_builder *bb = NULL;
    prism_block *out = NULL;
    if (cols[0] && cols[1] && vals && groups > 0) {
        for (size_t r = 0; r < n; r++) {
            rows_row row;
            rows_make(ids[r], groups, &row);
            cols[0][r] = row.key;
            cols[1][r] = row.group;
            for (int j = 0; j < ROWS_VALUES; j++)
                vals[(size_t)j * n + r] = row.v[j];
        }
        static const char *const names[ROWS_VALUES] = {"v0", "v1", "v2", "v3", "v4",
                                                       "v5", "v6", "v7", "v8", "v9"};
        bool ok = prism_block_schema_create(&s) == PRISM_BLOCK_OK &&
                  prism_block_schema_add(s, "key", PRISM_COL_INT64) == PRISM_BLOCK_OK &&
                  prism_block_schema_add(s, "group", PRISM_COL_INT64) == PRISM_BLOCK_OK;
        for (int j = 0; ok && j < ROWS_VALUES; j++)
            ok = prism_block_schema_add(s, names[j], PRISM_COL_FLOAT64) == PRISM_BLOCK_OK;
        ok = ok && prism_block_builder_create(s, &bb) == PRISM_BLOCK_OK &&
             prism_block_builder_set_fixed(bb, 0, cols[0], n, NULL) == PRISM_BLOCK_OK &&
             prism_block_builder_set_fixed(bb, 1, cols[1], n, NULL) == PRISM_BLOCK_OK;
        for (int j = 0; ok && j < ROWS_VALUES; j++)
            ok = prism_block_builder_set_fixed(bb, (size_t)j + 2, vals + (size_t)j * n, n, NULL) ==
                 PRISM_BLOCK_OK;
        if (ok)
            prism_block_builder_finish(bb, &out, NULL, 0);
    }
    prism_block_builder_destroy(bb);
    prism_block_schema_destroy(s);
    free(cols[0]);
    free(cols[1]);
    free(vals);
    prism_block_destroy(in);
    if (!out)
        return prism_task_fail(ctx, "gen_rows: out of memory");
    size_t size = prism_block_nbytes(out);
    void *mem = aligned_alloc(64, (size + 63) / 64 * 64);
    prism_status st = PRISM_OK;
    if (!mem || prism_block_serialize(out, mem, size) != PRISM_BLOCK_OK) {
        st = prism_task_fail(ctx, "gen_rows: cannot write the block");
    } else {
        int64_t shape[1] = {(int64_t)size};
        returns[0] = prism_value_tensor(PRISM_U8, 1, shape, mem);
        if (!returns[0])
            st = prism_task_fail(ctx, "gen_rows: out of memory");
    }
    free(mem);
    prism_block_destroy(out);
    return st;
}
