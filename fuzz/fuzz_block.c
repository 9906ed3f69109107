/* Blocks (libs/data/prism_block.h) from any bytes: prism_block_open must
 * accept or refuse with a reason, never read outside the bytes. A block it
 * accepts is walked through every accessor (a bounded number of rows: a
 * tensor of shape [0] holds any row count in no bytes), sliced, narrowed,
 * concatenated, serialized and opened again (the serialized form is
 * canonical: writing it again gives the same bytes), written as JSON, and
 * exported through the Arrow C Data Interface, read back by Arrow's rules
 * and imported (the import serializes to the same bytes as the block).
 * Input starting with '[' is also read as JSON rows (from_items). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prism_block.h"

#define MAX_WALK 512

static volatile uint64_t sink;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond);                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static uint8_t *aligned_copy(const void *p, size_t n)
{
    void *q = NULL;
    if (posix_memalign(&q, 64, n ? n : 1))
        abort();
    if (p && n)
        memcpy(q, p, n);
    return q;
}

/* Reads rows [0, MAX_WALK) and the last one of every column. */
static void walk(const prism_block *blk)
{
    size_t rows = prism_block_rows(blk), cols = prism_block_columns(blk);
    const prism_block_schema *s = prism_block_get_schema(blk);
    CHECK(prism_block_schema_columns(s) == cols);
    for (size_t c = 0; c < cols; c++) {
        const char *name = prism_block_schema_name(s, c);
        CHECK(name && prism_block_column_index(blk, name) == (long)c);
        prism_column_view v;
        CHECK(prism_block_column(blk, c, &v) == PRISM_BLOCK_OK);
        CHECK(v.length == rows && v.null_count <= rows && v.values);
        CHECK((v.validity != NULL) == (v.null_count > 0));
        size_t nulls = 0;
        for (size_t r = 0; r < rows; r = r + 1 == MAX_WALK && rows > MAX_WALK ? rows - 1 : r + 1) {
            nulls += prism_block_is_null(blk, c, r);
            size_t len;
            switch (v.type) {
            case PRISM_COL_BOOL: CHECK(prism_block_bool(blk, c, r) >= 0); break;
            case PRISM_COL_UTF8:
            case PRISM_COL_BINARY: {
                const uint8_t *p = prism_block_binary(blk, c, r, &len);
                CHECK(p);
                if (len)
                    sink += p[0] + p[len - 1];
                break;
            }
            case PRISM_COL_TENSOR: {
                const uint8_t *p = prism_block_tensor(blk, c, r, &len);
                CHECK(p);
                if (len)
                    sink += p[0] + p[len - 1];
                break;
            }
            default: {
                const uint8_t *p = prism_block_values(blk, c, v.type);
                size_t w = prism_coltype_width(v.type);
                CHECK(p && w);
                sink += p[r * w] + p[r * w + w - 1];
            }
            }
        }
        if (rows <= MAX_WALK)
            CHECK(nulls == v.null_count);
    }
}

/* The serialized bytes of `blk`; *len their length. */
static uint8_t *serialized(const prism_block *blk, size_t *len)
{
    *len = prism_block_nbytes(blk);
    uint8_t *p = aligned_copy(NULL, *len);
    CHECK(prism_block_serialize(blk, p, *len) == PRISM_BLOCK_OK);
    return p;
}

/* Serialized, opened again: valid, the same rows, and a fixed point. */
static void round_trip(const prism_block *blk)
{
    size_t len, len2;
    uint8_t *p = serialized(blk, &len);
    prism_block *again;
    char err[256];
    if (prism_block_open(p, len, &again, err, sizeof err) != PRISM_BLOCK_OK) {
        fprintf(stderr, "a serialized block does not open: %s\n", err);
        abort();
    }
    CHECK(prism_block_rows(again) == prism_block_rows(blk));
    CHECK(prism_block_schema_equal(prism_block_get_schema(again), prism_block_get_schema(blk)));
    uint8_t *q = serialized(again, &len2);
    CHECK(len == len2 && !memcmp(p, q, len));
    prism_block_destroy(again);
    free(q);
    free(p);
}

static void arrow(const prism_block *blk)
{
    struct ArrowSchema as;
    struct ArrowArray aa;
    CHECK(prism_block_export_arrow(blk, &as, &aa) == PRISM_BLOCK_OK);
    CHECK(aa.length == (int64_t)prism_block_rows(blk) && aa.n_children == as.n_children);
    for (int64_t i = 0; i < aa.n_children; i++) {
        const struct ArrowArray *c = aa.children[i];
        if (c->length == 0 || c->n_buffers < 2)
            continue;
        int64_t last = c->offset + c->length - 1;
        const char *f = as.children[i]->format;
        if (!strcmp(f, "u") || !strcmp(f, "z")) {
            const int32_t *o = c->buffers[1];
            CHECK(o[last + 1] >= o[c->offset]);
            if (o[last + 1] > o[last])
                sink += ((const uint8_t *)c->buffers[2])[o[last + 1] - 1];
        }
    }
    prism_block *imp;
    char err[256];
    if (prism_block_import_arrow(&as, &aa, &imp, err, sizeof err) != PRISM_BLOCK_OK) {
        fprintf(stderr, "an exported block does not import: %s\n", err);
        abort();
    }
    size_t la, lb;
    uint8_t *a = serialized(blk, &la), *b = serialized(imp, &lb);
    CHECK(la == lb && !memcmp(a, b, la));
    free(a);
    free(b);
    prism_block_destroy(imp);
    as.release(&as);
    aa.release(&aa);
}

static void json(const prism_block *blk)
{
    char *text, err[256];
    size_t len;
    prism_block_status st = prism_block_to_json(blk, 0, 64, 1 << 20, &text, &len);
    CHECK(st == PRISM_BLOCK_OK || st == PRISM_BLOCK_ERANGE);
    if (st == PRISM_BLOCK_OK) {
        prism_block *back;
        /* Under the block's schema the rows read back (but NaN, written
         * null, and uint64 past INT64_MAX, which jansson does not read). */
        if (prism_block_from_json(text, len, prism_block_get_schema(blk), &back, err, sizeof err) ==
            PRISM_BLOCK_OK) {
            CHECK(prism_block_rows(back) ==
                  (prism_block_rows(blk) < 64 ? prism_block_rows(blk) : 64));
            prism_block_destroy(back);
        }
        free(text);
    }
    CHECK(prism_block_describe_json(blk, &text, NULL) == PRISM_BLOCK_OK);
    free(text);
    CHECK(prism_block_schema_json(prism_block_get_schema(blk), &text, NULL) == PRISM_BLOCK_OK);
    free(text);
}

static void exercise(prism_block *blk)
{
    size_t rows = prism_block_rows(blk), cols = prism_block_columns(blk);
    walk(blk);
    round_trip(blk);
    prism_block *sl;
    CHECK(prism_block_slice(blk, rows / 3, rows - rows / 3, &sl) == PRISM_BLOCK_OK);
    walk(sl);
    round_trip(sl);
    arrow(sl);
    prism_block *parts[2] = {sl, blk}, *cat;
    char err[256];
    if (rows + prism_block_rows(sl) <= PRISM_BLOCK_MAX_ROWS) {
        CHECK(prism_block_concat(parts, 2, &cat, err, sizeof err) == PRISM_BLOCK_OK);
        CHECK(prism_block_rows(cat) == rows + prism_block_rows(sl));
        walk(cat);
        prism_block_destroy(cat);
    }
    const prism_block_schema *s = prism_block_get_schema(blk);
    if (cols) {
        const char *names[2] = {prism_block_schema_name(s, cols - 1),
                                prism_block_schema_name(s, 0)};
        prism_block *sel, *dr;
        CHECK(prism_block_select(sl, names, cols > 1 ? 2 : 1, &sel) == PRISM_BLOCK_OK);
        walk(sel);
        round_trip(sel);
        CHECK(prism_block_drop(blk, names + 1, 1, &dr) == PRISM_BLOCK_OK);
        CHECK(prism_block_columns(dr) == cols - 1);
        walk(dr);
        prism_block_destroy(dr);
        prism_block_destroy(sel);
    }
    prism_block_destroy(sl);
    arrow(blk);
    json(blk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *mem = aligned_copy(data, size); /* exactly `size` bytes: ASan sees any over-read */
    prism_block *blk;
    char err[256] = "";
    prism_block_status st = prism_block_open(mem, size, &blk, err, sizeof err);
    if (st == PRISM_BLOCK_OK) {
        size_t len;
        CHECK(prism_block_data(blk, &len) == mem && len == size);
        CHECK(prism_block_nbytes(blk) == size);
        exercise(blk);
        prism_block_destroy(blk);
        st = prism_block_open_ex(mem, size, PRISM_BLOCK_CHECK_UTF8, NULL, NULL, &blk, err,
                                 sizeof err);
        CHECK(st == PRISM_BLOCK_OK || st == PRISM_BLOCK_ECORRUPT);
        if (st == PRISM_BLOCK_OK)
            prism_block_destroy(blk);
    } else if (st != PRISM_BLOCK_ECORRUPT || !err[0]) {
        fprintf(stderr, "a refusal without a reason (status %d)\n", st);
        abort();
    }
    if (size && data[0] == '[') {
        st = prism_block_from_json((const char *)data, size, NULL, &blk, err, sizeof err);
        if (st == PRISM_BLOCK_OK) {
            exercise(blk);
            prism_block_destroy(blk);
        } else {
            CHECK(err[0]);
        }
    }
    free(mem);
    return 0;
}
