/* The tasks of dataset stages (services/worker/data_ops.c, data_fns.c),
 * called as the worker calls them: reads, the builtins cast and normalize,
 * package functions (here a stub finder), bundles with their takes, the
 * row limit, errors that name the operator, and JPEG decodes of a crop's
 * rows (data_image.c). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <turbojpeg.h>

#include "data_image.h"
#include "data_ops.h"
#include "prism_internal.h"
#include "task_ctx.h"

/* ---------- package functions the stub finder knows ---------- */

static prism_block *arg_block(const prism_value *v)
{
    size_t len;
    const void *data = prism_value_data(v, &len);
    prism_block *b = NULL;
    assert_int_equal(prism_block_open(data, len, &b, NULL, 0), PRISM_BLOCK_OK);
    return b;
}

static prism_value *give(prism_block *b)
{
    prism_value *v = data_value_of_block(b);
    assert_non_null(v);
    return v;
}

static prism_block *bool_column(const uint8_t *bits, size_t rows)
{
    prism_block_schema *s;
    prism_block_builder *bb;
    prism_block *out;
    assert_int_equal(prism_block_schema_create(&s), PRISM_BLOCK_OK);
    assert_int_equal(prism_block_schema_add(s, "keep", PRISM_COL_BOOL), PRISM_BLOCK_OK);
    assert_int_equal(prism_block_builder_create(s, &bb), PRISM_BLOCK_OK);
    assert_int_equal(prism_block_builder_set_bool(bb, 0, bits, rows, NULL), PRISM_BLOCK_OK);
    assert_int_equal(prism_block_builder_finish(bb, &out, NULL, 0), PRISM_BLOCK_OK);
    prism_block_builder_destroy(bb);
    prism_block_schema_destroy(s);
    return out;
}

/* filter: keeps even ids */
static prism_status keep_even(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                              prism_value **returns, size_t nreturns)
{
    prism_block *b = arg_block(args[0]);
    size_t rows = prism_block_rows(b);
    const int64_t *id = prism_block_values(b, 0, PRISM_COL_INT64);
    uint8_t bits[64] = {0};
    assert_true(rows <= 512);
    for (size_t r = 0; r < rows; r++)
        if (id[r] % 2 == 0)
            bits[r / 8] |= (uint8_t)(1u << (r % 8));
    returns[0] = give(bool_column(bits, rows));
    prism_block_destroy(b);
    return PRISM_OK;
}

/* map_batches: counts its calls, returns the batch */
static int batch_calls;
static prism_status same(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                         prism_value **returns, size_t nreturns)
{
    batch_calls++;
    assert_string_equal(prism_value_json_text(args[1]), "{\"k\":1}");
    returns[0] = prism_value_copy(args[0]); /* a copy, as packages make their values */
    return PRISM_OK;
}

static prism_status broken(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                           prism_value **returns, size_t nreturns)
{
    return prism_task_fail(ctx, "broken on purpose");
}

prism_task_fn prism__worker_find_task(prism_task_ctx *ctx, const char *pkg, const char *fn,
                                      char *err, size_t n)
{
    if (!strcmp(fn, "keep_even"))
        return keep_even;
    if (!strcmp(fn, "same"))
        return same;
    if (!strcmp(fn, "broken"))
        return broken;
    snprintf(err, n, "package %s has no task '%s'", pkg, fn);
    return NULL;
}

/* ---------- running stages ---------- */

#define PKG "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

typedef struct result {
    prism_status status;
    char error[2048];
    prism_block *block;
    json_t *stats;
    prism_value *values[2];
} result;

static void result_free(result *r)
{
    prism_block_destroy(r->block);
    json_decref(r->stats);
    prism_value_free(r->values[0]);
    prism_value_free(r->values[1]);
}

static void run(bool read, const char *program, const char *second, prism_value **blocks,
                size_t nblocks, result *r)
{
    memset(r, 0, sizeof *r);
    prism_task_ctx ctx = {.runtime = NULL};
    prism_value *args[8] = {prism_value_json(program), prism_value_json(second)};
    for (size_t i = 0; i < nblocks; i++)
        args[2 + i] = blocks[i];
    r->status = (read ? data_read_stage : data_map_stage)(&ctx, (const prism_value *const *)args,
                                                          2 + nblocks, r->values, 2);
    prism_value_free(args[0]);
    prism_value_free(args[1]);
    if (ctx.error)
        snprintf(r->error, sizeof r->error, "%s", ctx.error);
    free(ctx.error);
    if (r->status == PRISM_OK) {
        r->block = arg_block(r->values[0]);
        r->stats = json_loads(prism_value_json_text(r->values[1]), 0, NULL);
        assert_int_equal(json_integer_value(json_object_get(r->stats, "rows")),
                         prism_block_rows(r->block));
        assert_int_equal(json_integer_value(json_object_get(r->stats, "bytes")),
                         prism_block_nbytes(r->block));
    }
}

/* A stage program of these operators (JSON specs), the first one ops[0]. */
static char *program(int row_limit, int n, ...)
{
    json_t *ops = json_array();
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        json_t *spec = json_loads(va_arg(ap, const char *), 0, NULL);
        assert_non_null(spec);
        json_array_append_new(ops,
                              json_pack("{s:O,s:s,s:[i],s:o}", "op", json_object_get(spec, "op"),
                                        "name", "X", "logical", i, "spec", spec));
    }
    va_end(ap);
    json_t *p = json_pack("{s:o,s:o}", "ops", ops, "row_limit",
                          row_limit >= 0 ? json_integer(row_limit) : json_null());
    char *text = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    return text;
}

static void test_range_cast_normalize(void **state)
{
    char *prog = program(-1, 3, "{\"op\": \"range\", \"n\": 100}",
                         "{\"op\": \"map_batches\", \"fn\": {\"package\": \"builtin\", "
                         "\"function\": \"cast\", \"args\": {\"column\": \"id\", \"dtype\": "
                         "\"float64\"}}}",
                         "{\"op\": \"map\", \"fn\": {\"package\": \"builtin\", \"function\": "
                         "\"normalize\", \"args\": {\"column\": \"id\", \"mean\": [10], "
                         "\"std\": [4]}}}");
    result r;
    run(true, prog, "{\"start\": 5, \"end\": 12}", NULL, 0, &r);
    assert_int_equal(r.status, PRISM_OK);
    assert_int_equal(prism_block_rows(r.block), 7);
    assert_int_equal(prism_block_schema_type(prism_block_get_schema(r.block), 0),
                     PRISM_COL_FLOAT32);
    const float *v = prism_block_values(r.block, 0, PRISM_COL_FLOAT32);
    for (int i = 0; i < 7; i++)
        assert_true(fabsf(v[i] - (float)(5 + i - 10) / 4) < 1e-6f);
    result_free(&r);
    free(prog);
}

static void test_cast_saturates(void **state)
{
    char *prog = program(-1, 2, "{\"op\": \"from_items\", \"items\": []}",
                         "{\"op\": \"map_batches\", \"fn\": {\"package\": \"builtin\", "
                         "\"function\": \"cast\", \"args\": {\"column\": \"x\", \"dtype\": "
                         "\"uint8\"}}}");
    result r;
    run(true, prog, "{\"items\": [{\"x\": -5.5}, {\"x\": 300.0}, {\"x\": 7.9}, {\"x\": null}]}",
        NULL, 0, &r);
    assert_int_equal(r.status, PRISM_OK);
    const uint8_t *v = prism_block_values(r.block, 0, PRISM_COL_UINT8);
    assert_int_equal(v[0], 0);
    assert_int_equal(v[1], 255);
    assert_int_equal(v[2], 7);
    assert_true(prism_block_is_null(r.block, 0, 3));
    result_free(&r);
    free(prog);
}

static void test_items_and_row_limit(void **state)
{
    char *prog = program(2, 1, "{\"op\": \"from_items\", \"items\": []}");
    result r;
    run(true, prog, "{\"items\": [1, 2, 3]}", NULL, 0, &r);
    assert_int_equal(r.status, PRISM_OK);
    char *text;
    size_t len;
    assert_int_equal(prism_block_to_json(r.block, 0, 10, 0, &text, &len), PRISM_BLOCK_OK);
    assert_string_equal(text, "[{\"item\":1},{\"item\":2}]");
    free(text);
    result_free(&r);
    free(prog);
}

/* Two input blocks, the first cut to 3 rows, then a package filter, batches
 * of 2 rows through a package map, and a column choice. */
static void test_bundle_filter_batches(void **state)
{
    char *read = program(-1, 1, "{\"op\": \"range\", \"n\": 100}");
    result a, b;
    run(true, read, "{\"start\": 0, \"end\": 6}", NULL, 0, &a);
    run(true, read, "{\"start\": 10, \"end\": 15}", NULL, 0, &b);
    free(read);
    char *prog = program(-1, 3,
                         "{\"op\": \"filter\", \"fn\": {\"package\": \"" PKG "\", "
                         "\"function\": \"keep_even\", \"args\": {}}}",
                         "{\"op\": \"map_batches\", \"batch_size\": 2, \"fn\": {\"package\": \"" PKG
                         "\", \"function\": \"same\", \"args\": {\"k\": 1}}}",
                         "{\"op\": \"select_columns\", \"columns\": [\"id\"]}");
    prism_value *blocks[2] = {prism_value_copy(a.values[0]), prism_value_copy(b.values[0])};
    result r;
    batch_calls = 0;
    run(false, prog, "[3, null]", blocks, 2, &r);
    prism_value_free(blocks[0]);
    prism_value_free(blocks[1]);
    assert_int_equal(r.status, PRISM_OK);
    /* 0 1 2 | 10 11 12 13 14 -> 0 2 10 12 14, in batches of 2: three calls */
    assert_int_equal(prism_block_rows(r.block), 5);
    const int64_t *id = prism_block_values(r.block, 0, PRISM_COL_INT64);
    int64_t want[] = {0, 2, 10, 12, 14};
    for (int i = 0; i < 5; i++)
        assert_int_equal(id[i], want[i]);
    assert_int_equal(batch_calls, 3);
    result_free(&r);
    result_free(&a);
    result_free(&b);
    free(prog);
}

static void test_errors_name_the_operator(void **state)
{
    char *prog = program(-1, 3, "{\"op\": \"range\", \"n\": 10}",
                         "{\"op\": \"drop_columns\", \"columns\": [\"id\"]}",
                         "{\"op\": \"select_columns\", \"columns\": [\"nope\"]}");
    result r;
    run(true, prog, "{\"start\": 0, \"end\": 3}", NULL, 0, &r);
    assert_int_equal(r.status, PRISM_ERR_TASK);
    assert_string_equal(r.error, "ops[2] (select_columns): no column \"nope\"");
    free(prog);

    prog = program(-1, 2, "{\"op\": \"range\", \"n\": 10}",
                   "{\"op\": \"map_batches\", \"fn\": {\"package\": \"" PKG
                   "\", \"function\": \"broken\", \"args\": {}}}");
    run(true, prog, "{\"start\": 0, \"end\": 3}", NULL, 0, &r);
    assert_int_equal(r.status, PRISM_ERR_TASK);
    assert_non_null(strstr(r.error, "ops[1] (map_batches): X failed: broken on purpose"));
    free(prog);

    prog = program(-1, 2, "{\"op\": \"range\", \"n\": 10}",
                   "{\"op\": \"map_batches\", \"fn\": {\"package\": \"builtin\", \"function\": "
                   "\"normalize\", \"args\": {\"column\": \"id\", \"mean\": [1, 2], "
                   "\"std\": [1, 1]}}}");
    run(true, prog, "{\"start\": 0, \"end\": 3}", NULL, 0, &r);
    assert_int_equal(r.status, PRISM_ERR_TASK);
    assert_non_null(strstr(r.error, "ops[1] (map_batches): normalize: column \"id\" has 1 "
                                    "channel"));
    free(prog);

    prog = program(-1, 1, "{\"op\": \"from_items\", \"items\": []}");
    run(true, prog, "{\"items\": [{\"a\": 1}, {\"a\": \"x\"}]}", NULL, 0, &r);
    assert_int_equal(r.status, PRISM_ERR_TASK);
    assert_non_null(strstr(r.error, "ops[0] (from_items): the items are not rows of a block"));
    free(prog);
}

/* Rows gathered from every kind of column, nulls included. */
static void test_take_rows(void **state)
{
    const char *items = "[{\"s\": \"a\", \"b\": true, \"t\": [1, 2], \"x\": 1.5},"
                        " {\"s\": null, \"b\": false, \"t\": [3, 4], \"x\": null},"
                        " {\"s\": \"ccc\", \"b\": null, \"t\": [5, 6], \"x\": -2}]";
    prism_block *b = NULL, *view = NULL, *out = NULL;
    assert_int_equal(prism_block_from_json(items, strlen(items), NULL, &b, NULL, 0),
                     PRISM_BLOCK_OK);
    size_t rows[] = {2, 0, 1};
    assert_int_equal(data_block_take_rows(b, rows, 3, &out), PRISM_BLOCK_OK);
    char *text;
    size_t len;
    assert_int_equal(prism_block_to_json(out, 0, 3, 0, &text, &len), PRISM_BLOCK_OK);
    assert_string_equal(text, "[{\"s\":\"ccc\",\"b\":null,\"t\":[5,6],\"x\":-2.0},"
                              "{\"s\":\"a\",\"b\":true,\"t\":[1,2],\"x\":1.5},"
                              "{\"s\":null,\"b\":false,\"t\":[3,4],\"x\":null}]");
    free(text);
    prism_block_destroy(out);
    /* from a view that starts at row 1 */
    assert_int_equal(prism_block_slice(b, 1, 3, &view), PRISM_BLOCK_OK);
    size_t one[] = {1};
    assert_int_equal(data_block_take_rows(view, one, 1, &out), PRISM_BLOCK_OK);
    assert_int_equal(prism_block_to_json(out, 0, 1, 0, &text, &len), PRISM_BLOCK_OK);
    assert_string_equal(text, "[{\"s\":\"ccc\",\"b\":null,\"t\":[5,6],\"x\":-2.0}]");
    free(text);
    prism_block_destroy(out);
    prism_block_destroy(view);
    prism_block_destroy(b);
}

/* ---------- a crop's rows of a JPEG ---------- */

typedef struct band {
    int top, rows;
    int h, w; /* as told */
} band;

static void pick(void *ud, int h, int w, int *top, int *rows)
{
    band *b = ud;
    b->h = h;
    b->w = w;
    *top = b->top;
    *rows = b->rows;
}

/* A JPEG of w x h noisy pixels (sharp chroma edges for the upsampling),
 * tjFree it. */
static unsigned char *noisy_jpeg(int w, int h, int sub, int flags, unsigned long *len)
{
    uint8_t *px = malloc((size_t)w * (size_t)h * 3);
    assert_non_null(px);
    uint32_t r = 12345;
    for (size_t i = 0; i < (size_t)w * (size_t)h * 3; i++) {
        r = r * 1103515245u + 12345u;
        px[i] = (uint8_t)((r >> 16) & 0xff);
    }
    tjhandle tj = tjInitCompress();
    unsigned char *jpeg = NULL;
    assert_int_equal(tjCompress2(tj, px, w, 0, h, TJPF_RGB, &jpeg, len, sub, 90, flags), 0);
    tjDestroy(tj);
    free(px);
    return jpeg;
}

/* Every band of rows (a crop's decode) equals the same rows of the whole
 * image, whatever the subsampling, the channels asked for, progressive or
 * not; rows out of the image give the whole; a file cut short fails whole
 * but decodes a band above the cut. */
static void test_jpeg_rows(void **state)
{
    (void)state;
    const int subs[] = {TJSAMP_420, TJSAMP_422, TJSAMP_444, TJSAMP_440, TJSAMP_GRAY};
    const int w = 61, h = 45;
    char err[256];
    for (size_t s = 0; s < sizeof subs / sizeof subs[0]; s++)
        for (int prog = 0; prog < 2; prog++) {
            unsigned long len = 0;
            unsigned char *jpeg = noisy_jpeg(w, h, subs[s], prog ? TJFLAG_PROGRESSIVE : 0, &len);
            for (int channels = 0; channels <= 4; channels++) {
                if (channels == 2)
                    continue;
                data_image all;
                assert_int_equal(
                    data_image_decode(jpeg, len, channels, NULL, NULL, &all, err, sizeof err), 0);
                assert_true(all.h == h && all.w == w && all.top == 0 && all.rows == h);
                size_t line = (size_t)w * (size_t)all.c;
                for (int top = 0; top < h; top += 3)
                    for (int rows = 1; top + rows <= h; rows += 7) {
                        band b = {top, rows, 0, 0};
                        data_image im;
                        assert_int_equal(data_image_decode(jpeg, len, channels, pick, &b, &im, err,
                                                           sizeof err),
                                         0);
                        assert_true(b.h == h && b.w == w);
                        assert_true(im.top == top && im.rows == rows && im.h == h && im.c == all.c);
                        assert_memory_equal(im.px, all.px + (size_t)top * line,
                                            (size_t)rows * line);
                        free(im.px);
                    }
                band out = {h - 2, 5, 0, 0};
                data_image im;
                assert_int_equal(
                    data_image_decode(jpeg, len, channels, pick, &out, &im, err, sizeof err), 0);
                assert_true(im.top == 0 && im.rows == h);
                assert_memory_equal(im.px, all.px, (size_t)h * line);
                free(im.px);
                free(all.px);
            }
            if (!prog) { /* baseline: cut short, the rows above the cut still decode */
                data_image im;
                band first = {0, 8, 0, 0};
                assert_int_equal(
                    data_image_decode(jpeg, len * 2 / 3, 3, NULL, NULL, &im, err, sizeof err), -1);
                assert_non_null(strstr(err, "a corrupt JPEG"));
                assert_null(im.px);
                assert_int_equal(
                    data_image_decode(jpeg, len * 2 / 3, 3, pick, &first, &im, err, sizeof err), 0);
                free(im.px);
            }
            tjFree(jpeg);
        }
    data_image im;
    band any = {0, 1, 0, 0};
    assert_int_equal(data_image_decode((const uint8_t *)"\xff\xd8\xff\x01", 4, 3, pick, &any, &im,
                                       err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "not a valid JPEG"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_cast_normalize),
        cmocka_unit_test(test_cast_saturates),
        cmocka_unit_test(test_items_and_row_limit),
        cmocka_unit_test(test_bundle_filter_batches),
        cmocka_unit_test(test_errors_name_the_operator),
        cmocka_unit_test(test_take_rows),
        cmocka_unit_test(test_jpeg_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
