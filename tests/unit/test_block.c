/* Blocks (libs/data/prism_block.h): every column type through build,
 * serialize and a validating open, nulls and empty blocks included; the
 * reader refusing corrupt bytes with a reason; slices, concatenation and
 * column choices; JSON both ways; and the Arrow C Data Interface export
 * checked field by field against the specification, then imported back. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "prism_block.h"

#define OK PRISM_BLOCK_OK

static char err[256];

/* ---------- helpers ---------- */

static uint64_t ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint32_t ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void st64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static void st32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* A 64-byte aligned copy of `len` bytes, as the object store would hold them. */
static uint8_t *aligned_copy(const void *p, size_t len)
{
    void *q = NULL;
    assert_int_equal(posix_memalign(&q, 64, len ? len : 64), 0);
    if (p && len)
        memcpy(q, p, len);
    return q;
}

static int releases;

static void release_free(void *ctx)
{
    releases++;
    free(ctx);
}

/* `blk` serialized into fresh memory and opened from there (the memory is
 * freed with the block): what another process reading it would see. */
static prism_block *reopen(const prism_block *blk)
{
    size_t n = prism_block_nbytes(blk);
    uint8_t *mem = aligned_copy(NULL, n);
    assert_int_equal(prism_block_serialize(blk, mem, n), OK);
    prism_block *out = NULL;
    prism_block_status st = prism_block_open_ex(mem, n, PRISM_BLOCK_CHECK_UTF8, release_free, mem,
                                                &out, err, sizeof err);
    if (st)
        fail_msg("reopen: %s", err);
    return out;
}

/* The serialized bytes of `blk` (a view included), malloc'd. */
static uint8_t *bytes_of(const prism_block *blk, size_t *len)
{
    *len = prism_block_nbytes(blk);
    uint8_t *mem = aligned_copy(NULL, *len);
    assert_int_equal(prism_block_serialize(blk, mem, *len), OK);
    return mem;
}

static void assert_same_bytes(const prism_block *a, const prism_block *b)
{
    size_t la, lb;
    uint8_t *x = bytes_of(a, &la), *y = bytes_of(b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(x, y, la);
    free(x);
    free(y);
}

/* Offset of column `c`'s record in a serialized block. */
static size_t record_at(const uint8_t *p, size_t c)
{
    size_t pos = 64;
    for (size_t i = 0; i < c; i++)
        pos += 64 + 8 * p[pos + 2] + ((ld32(p + pos + 4) + 7) & ~7u);
    return pos;
}

static prism_block_schema *schema_of(const char *spec)
{
    /* "name:type,name:type" */
    prism_block_schema *s;
    assert_int_equal(prism_block_schema_create(&s), OK);
    char *copy = strdup(spec), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        *colon = 0;
        assert_int_equal(prism_block_schema_add(s, tok, prism_coltype_parse(colon + 1)), OK);
    }
    free(copy);
    return s;
}

/* The block every round trip uses: each type, nulls in most columns. */
enum {
    C_B,
    C_I8,
    C_I16,
    C_I32,
    C_I64,
    C_U8,
    C_U16,
    C_U32,
    C_U64,
    C_F32,
    C_F64,
    C_S,
    C_BIN,
    C_T,
    C_TF,
    NCOLS
};
#define ROWS 11

static prism_block *every_type(void)
{
    prism_block_schema *s = schema_of("b:bool,i8:int8,i16:int16,i32:int32,i64:int64,u8:uint8,"
                                      "u16:uint16,u32:uint32,u64:uint64,f32:float32,f64:float64,"
                                      "s:utf8,bin:binary");
    int64_t shape[2] = {2, 3}, shape1[1] = {2};
    assert_int_equal(prism_block_schema_add_tensor(s, "t", PRISM_COL_UINT8, 2, shape), OK);
    assert_int_equal(prism_block_schema_add_tensor(s, "tf", PRISM_COL_FLOAT32, 1, shape1), OK);
    prism_block_builder *b;
    assert_int_equal(prism_block_builder_create(s, &b), OK);
    prism_block_schema_destroy(s);
    for (int r = 0; r < ROWS; r++) {
        bool null = r % 4 == 3; /* rows 3 and 7 are null in every column but i64 */
        for (size_t c = 0; c < NCOLS; c++) {
            if (null && c != C_I64) {
                assert_int_equal(prism_block_builder_append_null(b, c), OK);
                continue;
            }
            prism_block_status st = OK;
            switch (c) {
            case C_B: st = prism_block_builder_append_bool(b, c, r % 3 == 0); break;
            case C_I8:
                st = prism_block_builder_append_int(b, c, r == 0 ? -128 : r == 1 ? 127 : -r);
                break;
            case C_I16:
                st = prism_block_builder_append_int(b, c, r == 0 ? -32768 : r * 1000);
                break;
            case C_I32: st = prism_block_builder_append_int(b, c, r == 0 ? INT32_MIN : r); break;
            case C_I64:
                st = prism_block_builder_append_int(b, c,
                                                    r == 0   ? INT64_MIN
                                                    : r == 1 ? INT64_MAX
                                                             : r);
                break;
            case C_U8:
                st = prism_block_builder_append_uint(b, c, r == 0 ? 255 : (uint64_t)r);
                break;
            case C_U16:
                st = prism_block_builder_append_uint(b, c, r == 0 ? 65535 : (uint64_t)r);
                break;
            case C_U32:
                st = prism_block_builder_append_uint(b, c, r == 0 ? UINT32_MAX : (uint64_t)r);
                break;
            case C_U64:
                st = prism_block_builder_append_uint(b, c, r == 0 ? UINT64_MAX : (uint64_t)r);
                break;
            case C_F32: st = prism_block_builder_append_float(b, c, r + 0.5); break;
            case C_F64:
                st = prism_block_builder_append_float(b, c, r == 0 ? -0.1 : r * 1e300);
                break;
            case C_S: {
                static const char *const strs[] = {"", "héllo", "a\"b\\c\n", "x"};
                const char *v = strs[r % 4];
                if (r == 2) /* a NUL is a character of UTF-8 */
                    st = prism_block_builder_append_bytes(b, c, "n\0l", 3);
                else
                    st = prism_block_builder_append_bytes(b, c, v, strlen(v));
                break;
            }
            case C_BIN: {
                uint8_t bytes[5] = {0xff, 0x00, (uint8_t)r, 0x80, 0x7f};
                st = prism_block_builder_append_bytes(b, c, bytes, (size_t)r % 6);
                break;
            }
            case C_T: {
                uint8_t px[6];
                for (int i = 0; i < 6; i++)
                    px[i] = (uint8_t)(r * 10 + i);
                st = prism_block_builder_append_tensor(b, c, px, sizeof px);
                break;
            }
            case C_TF: {
                float v[2] = {(float)r, -(float)r / 4};
                st = prism_block_builder_append_tensor(b, c, v, sizeof v);
                break;
            }
            }
            assert_int_equal(st, OK);
        }
    }
    prism_block *blk;
    if (prism_block_builder_finish(b, &blk, err, sizeof err))
        fail_msg("finish: %s", err);
    prism_block_builder_destroy(b);
    return blk;
}

/* Checks row `r` of every_type()'s block, read as row `at` of `blk`. */
static void check_every_type_row(const prism_block *blk, size_t at, int r)
{
    bool null = r % 4 == 3;
    for (size_t c = 0; c < NCOLS; c++)
        assert_int_equal(prism_block_is_null(blk, c, at), null && c != C_I64);
    if (!null) {
        assert_int_equal(prism_block_bool(blk, C_B, at), r % 3 == 0);
        assert_int_equal(((const int8_t *)prism_block_values(blk, C_I8, PRISM_COL_INT8))[at],
                         r == 0   ? -128
                         : r == 1 ? 127
                                  : -r);
        assert_int_equal(((const int16_t *)prism_block_values(blk, C_I16, PRISM_COL_INT16))[at],
                         r == 0 ? -32768 : r * 1000);
        assert_int_equal(((const int32_t *)prism_block_values(blk, C_I32, PRISM_COL_INT32))[at],
                         r == 0 ? INT32_MIN : r);
        assert_int_equal(((const uint8_t *)prism_block_values(blk, C_U8, PRISM_COL_UINT8))[at],
                         r == 0 ? 255 : r);
        assert_int_equal(((const uint16_t *)prism_block_values(blk, C_U16, PRISM_COL_UINT16))[at],
                         r == 0 ? 65535 : r);
        assert_int_equal(((const uint32_t *)prism_block_values(blk, C_U32, PRISM_COL_UINT32))[at],
                         r == 0 ? UINT32_MAX : (uint32_t)r);
        assert_true(((const uint64_t *)prism_block_values(blk, C_U64, PRISM_COL_UINT64))[at] ==
                    (r == 0 ? UINT64_MAX : (uint64_t)r));
        assert_true(((const float *)prism_block_values(blk, C_F32, PRISM_COL_FLOAT32))[at] ==
                    (float)(r + 0.5));
        assert_true(((const double *)prism_block_values(blk, C_F64, PRISM_COL_FLOAT64))[at] ==
                    (r == 0 ? -0.1 : r * 1e300));
        size_t len;
        const char *s = prism_block_string(blk, C_S, at, &len);
        assert_non_null(s);
        if (r == 2) {
            assert_int_equal(len, 3);
            assert_memory_equal(s, "n\0l", 3);
        } else {
            static const char *const strs[] = {"", "héllo", "a\"b\\c\n", "x"};
            assert_int_equal(len, strlen(strs[r % 4]));
            assert_memory_equal(s, strs[r % 4], len);
        }
        const uint8_t *bin = prism_block_binary(blk, C_BIN, at, &len);
        uint8_t bytes[5] = {0xff, 0x00, (uint8_t)r, 0x80, 0x7f};
        assert_int_equal(len, (size_t)r % 6);
        if (len)
            assert_memory_equal(bin, bytes, len);
        size_t nb;
        const uint8_t *px = prism_block_tensor(blk, C_T, at, &nb);
        assert_int_equal(nb, 6);
        for (int i = 0; i < 6; i++)
            assert_int_equal(px[i], r * 10 + i);
        const float *tf = prism_block_tensor(blk, C_TF, at, &nb);
        assert_int_equal(nb, 8);
        assert_true(tf[0] == (float)r && tf[1] == -(float)r / 4);
    }
    assert_true(((const int64_t *)prism_block_values(blk, C_I64, PRISM_COL_INT64))[at] ==
                (r == 0   ? INT64_MIN
                 : r == 1 ? INT64_MAX
                          : r));
}

static void check_every_type(const prism_block *blk, int first, int n)
{
    assert_int_equal(prism_block_rows(blk), (size_t)n);
    assert_int_equal(prism_block_columns(blk), NCOLS);
    for (int i = 0; i < n; i++)
        check_every_type_row(blk, (size_t)i, first + i);
}

/* ---------- types and schemas ---------- */

static void test_types_and_schema(void **state)
{
    (void)state;
    static const struct {
        prism_coltype t;
        const char *name, *arrow;
        size_t width;
    } want[] = {
        {PRISM_COL_BOOL, "bool", "b", 0},       {PRISM_COL_INT8, "int8", "c", 1},
        {PRISM_COL_INT16, "int16", "s", 2},     {PRISM_COL_INT32, "int32", "i", 4},
        {PRISM_COL_INT64, "int64", "l", 8},     {PRISM_COL_UINT8, "uint8", "C", 1},
        {PRISM_COL_UINT16, "uint16", "S", 2},   {PRISM_COL_UINT32, "uint32", "I", 4},
        {PRISM_COL_UINT64, "uint64", "L", 8},   {PRISM_COL_FLOAT32, "float32", "f", 4},
        {PRISM_COL_FLOAT64, "float64", "g", 8}, {PRISM_COL_UTF8, "utf8", "u", 0},
        {PRISM_COL_BINARY, "binary", "z", 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_string_equal(prism_coltype_name(want[i].t), want[i].name);
        assert_string_equal(prism_coltype_arrow_format(want[i].t), want[i].arrow);
        assert_int_equal(prism_coltype_width(want[i].t), want[i].width);
        assert_int_equal(prism_coltype_parse(want[i].name), want[i].t);
    }
    assert_null(prism_coltype_name(0));
    assert_null(prism_coltype_name(99));
    assert_null(prism_coltype_arrow_format(PRISM_COL_TENSOR));
    assert_int_equal(prism_coltype_parse("nope"), 0);

    prism_block_schema *s;
    assert_int_equal(prism_block_schema_create(&s), OK);
    assert_int_equal(prism_block_schema_add(s, "id", PRISM_COL_INT64), OK);
    assert_int_equal(prism_block_schema_add(s, "id", PRISM_COL_UTF8), PRISM_BLOCK_ESCHEMA);
    assert_int_equal(prism_block_schema_add(s, "", PRISM_COL_UTF8), PRISM_BLOCK_EINVAL);
    assert_int_equal(prism_block_schema_add(s, "bad\xff", PRISM_COL_UTF8), PRISM_BLOCK_EINVAL);
    assert_int_equal(prism_block_schema_add(s, "x", PRISM_COL_TENSOR), PRISM_BLOCK_EINVAL);
    assert_int_equal(prism_block_schema_add(s, "x", 0), PRISM_BLOCK_EINVAL);
    int64_t img[3] = {224, 224, 3}, neg[1] = {-1}, huge[2] = {1 << 20, 1 << 20};
    assert_int_equal(prism_block_schema_add_tensor(s, "image", PRISM_COL_UINT8, 3, img), OK);
    assert_int_equal(prism_block_schema_add_tensor(s, "t", PRISM_COL_BOOL, 1, img),
                     PRISM_BLOCK_EINVAL);
    assert_int_equal(prism_block_schema_add_tensor(s, "t", PRISM_COL_UINT8, 0, img),
                     PRISM_BLOCK_EINVAL);
    assert_int_equal(prism_block_schema_add_tensor(s, "t", PRISM_COL_UINT8, 1, neg),
                     PRISM_BLOCK_EINVAL);
    assert_int_equal(prism_block_schema_add_tensor(s, "t", PRISM_COL_UINT8, 2, huge),
                     PRISM_BLOCK_ERANGE);
    assert_int_equal(prism_block_schema_columns(s), 2);
    assert_int_equal(prism_block_schema_find(s, "image"), 1);
    assert_int_equal(prism_block_schema_find(s, "nope"), -1);
    assert_int_equal(prism_block_schema_type(s, 1), PRISM_COL_TENSOR);
    assert_int_equal(prism_block_schema_elem(s, 1), PRISM_COL_UINT8);
    assert_int_equal(prism_block_schema_ndim(s, 1), 3);
    assert_int_equal(prism_block_schema_shape(s, 1)[2], 3);
    assert_int_equal(prism_block_schema_list_size(s, 1), 150528);
    assert_null(prism_block_schema_shape(s, 0));
    assert_null(prism_block_schema_name(s, 2));
    char fmt[32];
    assert_int_equal(prism_block_schema_arrow_format(s, 1, fmt, sizeof fmt), OK);
    assert_string_equal(fmt, "+w:150528");
    assert_int_equal(prism_block_schema_arrow_format(s, 0, fmt, sizeof fmt), OK);
    assert_string_equal(fmt, "l");

    char *json;
    size_t len;
    assert_int_equal(prism_block_schema_json(s, &json, &len), OK);
    assert_string_equal(json, "{\"columns\":[{\"name\":\"id\",\"type\":\"int64\",\"arrow\":\"l\"},"
                              "{\"name\":\"image\",\"type\":\"tensor\",\"dtype\":\"uint8\","
                              "\"shape\":[224,224,3],\"arrow\":\"+w:150528\"}]}");
    assert_int_equal(len, strlen(json));
    free(json);

    prism_block_schema *c;
    assert_int_equal(prism_block_schema_copy(s, &c), OK);
    assert_true(prism_block_schema_equal(s, c));
    assert_int_equal(prism_block_schema_add(c, "more", PRISM_COL_BOOL), OK);
    assert_false(prism_block_schema_equal(s, c));
    prism_block_schema_destroy(c);
    prism_block_schema_destroy(s);
    assert_string_equal(prism_block_strerror(PRISM_BLOCK_ECORRUPT), "not a valid block");
}

/* ---------- round trips ---------- */

static void test_every_type_round_trip(void **state)
{
    (void)state;
    prism_block *blk = every_type();
    check_every_type(blk, 0, ROWS);
    for (size_t c = 0; c < NCOLS; c++)
        assert_int_equal(prism_block_null_count(blk, c), c == C_I64 ? 0 : 2);

    /* The layout: header fields, and every buffer 64-byte aligned. */
    size_t len;
    const uint8_t *p = prism_block_data(blk, &len);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 64, 0);
    assert_memory_equal(p, "PRISMBLK", 8);
    assert_int_equal(p[8] | p[9] << 8, 1);
    assert_int_equal(ld32(p + 12), NCOLS);
    assert_int_equal(ld64(p + 16), ROWS);
    assert_int_equal(ld64(p + 24), len);
    assert_int_equal(len % 64, 0);
    assert_int_equal(prism_block_nbytes(blk), len);
    size_t end = 64 + ld32(p + 32);
    for (size_t c = 0; c < NCOLS; c++) {
        const uint8_t *r = p + record_at(p, c);
        for (int k = 0; k < 3; k++) {
            uint64_t off = ld64(r + 16 + 16 * k), n = ld64(r + 24 + 16 * k);
            if (n) {
                assert_int_equal(off % 64, 0);
                assert_true(off >= end);
                end = off + n;
            }
        }
        assert_int_equal(ld64(r + 8), c == C_I64 ? 0 : 2); /* null count */
        if (c == C_I64) {                                  /* no nulls: no bitmap */
            assert_int_equal(ld64(r + 16), 0);
            assert_int_equal(ld64(r + 24), 0);
        }
    }
    assert_int_equal(record_at(p, NCOLS), 64 + ld32(p + 32));

    /* Views point into the block: zero-copy. */
    prism_column_view v;
    assert_int_equal(prism_block_column(blk, C_S, &v), OK);
    assert_int_equal(v.type, PRISM_COL_UTF8);
    assert_int_equal(v.length, ROWS);
    assert_int_equal(v.offset, 0);
    assert_int_equal(v.null_count, 2);
    assert_true(v.validity > p && v.validity < p + len);
    assert_true((const uint8_t *)v.values > p && (const uint8_t *)v.values < p + len);
    assert_int_equal(((const int32_t *)v.values)[0], 0);
    assert_int_equal(prism_block_column(blk, C_T, &v), OK);
    assert_int_equal(v.elem, PRISM_COL_UINT8);
    assert_int_equal(v.list_size, 6);
    assert_null(v.data);
    assert_int_equal(prism_block_column(blk, NCOLS, &v), PRISM_BLOCK_EINVAL);

    /* Accessors refuse the wrong type or row. */
    assert_null(prism_block_values(blk, C_I8, PRISM_COL_INT16));
    assert_null(prism_block_values(blk, C_B, PRISM_COL_BOOL));
    assert_null(prism_block_values(blk, C_S, PRISM_COL_UTF8));
    assert_int_equal(prism_block_bool(blk, C_I8, 0), -1);
    assert_int_equal(prism_block_bool(blk, C_B, ROWS), -1);
    assert_null(prism_block_string(blk, C_BIN, 0, NULL));
    assert_non_null(prism_block_binary(blk, C_S, 0, NULL));
    assert_null(prism_block_binary(blk, C_S, ROWS, NULL));
    assert_null(prism_block_tensor(blk, C_S, 0, NULL));
    assert_false(prism_block_is_null(blk, 0, ROWS));
    assert_int_equal(prism_block_column_index(blk, "tf"), C_TF);
    assert_int_equal(prism_block_column_index(blk, "zz"), -1);

    /* Serialized again, read again: the same values, the same bytes. */
    prism_block *again = reopen(blk);
    check_every_type(again, 0, ROWS);
    assert_same_bytes(blk, again);
    size_t len2;
    assert_memory_equal(prism_block_data(again, &len2), p, len);
    prism_block_destroy(again);
    prism_block_destroy(blk);
}

static void test_empty_blocks(void **state)
{
    (void)state;
    /* Zero rows of every type. */
    prism_block_schema *s = schema_of("b:bool,i:int32,s:utf8,z:binary,f:float64");
    int64_t shape[1] = {4};
    assert_int_equal(prism_block_schema_add_tensor(s, "t", PRISM_COL_INT16, 1, shape), OK);
    prism_block_builder *b;
    assert_int_equal(prism_block_builder_create(s, &b), OK);
    prism_block *blk;
    assert_int_equal(prism_block_builder_finish(b, &blk, err, sizeof err), OK);
    assert_int_equal(prism_block_rows(blk), 0);
    assert_int_equal(prism_block_columns(blk), 6);
    prism_block *again = reopen(blk);
    assert_same_bytes(blk, again);
    prism_column_view v;
    assert_int_equal(prism_block_column(again, 2, &v), OK);
    assert_non_null(v.values); /* one offset, 0 */
    assert_int_equal(((const int32_t *)v.values)[0], 0);
    assert_non_null(v.data);
    assert_int_equal(prism_block_column(again, 1, &v), OK);
    assert_non_null(v.values); /* zero bytes: still not NULL */
    char *json;
    assert_int_equal(prism_block_to_json(again, 0, 10, 0, &json, NULL), OK);
    assert_string_equal(json, "[]");
    free(json);
    prism_block_destroy(again);
    prism_block_destroy(blk);

    /* An empty slice of a full block. */
    prism_block *full = every_type(), *none;
    assert_int_equal(prism_block_slice(full, 5, 5, &none), OK);
    assert_int_equal(prism_block_rows(none), 0);
    again = reopen(none);
    assert_int_equal(prism_block_rows(again), 0);
    prism_block_destroy(again);
    prism_block_destroy(none);
    prism_block_destroy(full);

    /* No columns at all. */
    prism_block_schema *e;
    assert_int_equal(prism_block_schema_create(&e), OK);
    prism_block_builder *eb;
    assert_int_equal(prism_block_builder_create(e, &eb), OK);
    assert_int_equal(prism_block_builder_finish(eb, &blk, err, sizeof err), OK);
    size_t len;
    const uint8_t *p = prism_block_data(blk, &len);
    assert_int_equal(len, 64); /* the header alone */
    assert_int_equal(ld32(p + 32), 0);
    again = reopen(blk);
    assert_int_equal(prism_block_columns(again), 0);
    prism_block_destroy(again);
    prism_block_destroy(blk);
    prism_block_builder_destroy(eb);
    prism_block_schema_destroy(e);
    prism_block_builder_destroy(b);
    prism_block_schema_destroy(s);
}

/* ---------- building ---------- */

static void test_whole_columns(void **state)
{
    (void)state;
    enum { N = 20 };
    prism_block_schema *s = schema_of("id:int64,flag:bool,name:utf8");
    int64_t shape[3] = {4, 4, 3};
    assert_int_equal(prism_block_schema_add_tensor(s, "image", PRISM_COL_UINT8, 3, shape), OK);
    uint8_t *pixels = malloc(N * 48);
    for (int i = 0; i < N * 48; i++)
        pixels[i] = (uint8_t)(i * 7);
    int64_t ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = 1000 + i;
    uint8_t valid[3] = {0xff, 0xfe, 0x0f}; /* row 8 is null */
    uint8_t flags[3] = {0x55, 0x55, 0x05};
    /* Offsets that do not start at 0 (a slice of someone's array): rebased. */
    int32_t offs[N + 1];
    char text[256];
    for (int i = 0; i <= N; i++)
        offs[i] = 10 + i * 2;
    for (int i = 0; i < (int)sizeof text; i++)
        text[i] = (char)('a' + i % 26);

    prism_block_builder *b;
    assert_int_equal(prism_block_builder_create(s, &b), OK);
    assert_int_equal(prism_block_builder_set_fixed(b, 0, ids, N, valid), OK);
    assert_int_equal(prism_block_builder_set_bool(b, 1, flags, N, NULL), OK);
    assert_int_equal(prism_block_builder_set_varlen(b, 2, offs, text, N, NULL), OK);
    assert_int_equal(prism_block_builder_set_fixed(b, 3, pixels, N, NULL), OK);
    /* A column is set once, and not appended to besides. */
    assert_int_equal(prism_block_builder_set_fixed(b, 0, ids, N, NULL), PRISM_BLOCK_ESTATE);
    assert_int_equal(prism_block_builder_append_int(b, 0, 1), PRISM_BLOCK_ESTATE);
    assert_int_equal(prism_block_builder_rows(b, 3), N);
    prism_block *blk;
    assert_int_equal(prism_block_builder_finish(b, &blk, err, sizeof err), OK);
    assert_int_equal(prism_block_builder_rows(b, 0), 0); /* emptied for the next block */
    const int64_t *got = prism_block_values(blk, 0, PRISM_COL_INT64);
    for (int i = 0; i < N; i++) {
        assert_int_equal(prism_block_is_null(blk, 0, (size_t)i), i == 8);
        if (i != 8)
            assert_int_equal(got[i], 1000 + i);
        assert_int_equal(prism_block_bool(blk, 1, (size_t)i), i % 2 == 0);
        size_t len;
        const char *str = prism_block_string(blk, 2, (size_t)i, &len);
        assert_int_equal(len, 2);
        assert_memory_equal(str, text + 10 + 2 * i, 2);
    }
    assert_int_equal(prism_block_null_count(blk, 0), 1);
    assert_memory_equal(prism_block_values(blk, 3, PRISM_COL_TENSOR), pixels, N * 48);
    prism_column_view v;
    assert_int_equal(prism_block_column(blk, 2, &v), OK);
    assert_int_equal(((const int32_t *)v.values)[0], 0);
    assert_int_equal(((const int32_t *)v.values)[N], 2 * N);
    prism_block_destroy(blk);

    /* Columns of different lengths cannot finish, and say which. */
    assert_int_equal(prism_block_builder_set_fixed(b, 0, ids, N, NULL), OK);
    assert_int_equal(prism_block_builder_set_fixed(b, 3, pixels, N - 1, NULL), OK);
    size_t size;
    assert_int_equal(prism_block_builder_size(b, &size, err, sizeof err), PRISM_BLOCK_ESTATE);
    assert_non_null(strstr(err, "flag"));
    assert_int_equal(prism_block_builder_finish(b, &blk, err, sizeof err), PRISM_BLOCK_ESTATE);
    prism_block_builder_destroy(b);

    /* Offsets that decrease are refused when set. */
    prism_block_builder *b2;
    assert_int_equal(prism_block_builder_create(s, &b2), OK);
    int32_t bad[3] = {0, 4, 2};
    assert_int_equal(prism_block_builder_set_varlen(b2, 2, bad, text, 2, NULL), PRISM_BLOCK_ERANGE);
    assert_int_equal(prism_block_builder_set_fixed(b2, 2, ids, 2, NULL), PRISM_BLOCK_EINVAL);
    assert_int_equal(prism_block_builder_set_bool(b2, 0, flags, 2, NULL), PRISM_BLOCK_EINVAL);
    prism_block_builder_destroy(b2);
    prism_block_schema_destroy(s);
    free(pixels);
}

static void test_builder_errors(void **state)
{
    (void)state;
    prism_block_schema *s = schema_of("i8:int8,u8:uint8,f32:float32,s:utf8,b:bool,u64:uint64,"
                                      "i64:int64,f64:float64");
    int64_t shape[1] = {2};
    assert_int_equal(prism_block_schema_add_tensor(s, "t", PRISM_COL_INT32, 1, shape), OK);
    prism_block_builder *b;
    assert_int_equal(prism_block_builder_create(s, &b), OK);
    assert_int_equal(prism_block_builder_append_int(b, 0, 128), PRISM_BLOCK_ERANGE);
    assert_int_equal(prism_block_builder_append_int(b, 0, -129), PRISM_BLOCK_ERANGE);
    assert_int_equal(prism_block_builder_append_int(b, 1, -1), PRISM_BLOCK_ERANGE);
    assert_int_equal(prism_block_builder_append_uint(b, 1, 256), PRISM_BLOCK_ERANGE);
    assert_int_equal(prism_block_builder_append_uint(b, 6, (uint64_t)INT64_MAX + 1),
                     PRISM_BLOCK_ERANGE);
    assert_int_equal(prism_block_builder_append_float(b, 2, 1e39), PRISM_BLOCK_ERANGE);
    assert_int_equal(prism_block_builder_append_float(b, 0, 1.0), PRISM_BLOCK_EINVAL);
    assert_int_equal(prism_block_builder_append_bool(b, 0, true), PRISM_BLOCK_EINVAL);
    assert_int_equal(prism_block_builder_append_bytes(b, 3, "\xc3(", 2), PRISM_BLOCK_EINVAL);
    assert_int_equal(prism_block_builder_append_bytes(b, 0, "x", 1), PRISM_BLOCK_EINVAL);
    assert_int_equal(prism_block_builder_append_tensor(b, 8, "abc", 3), PRISM_BLOCK_EINVAL);
    assert_int_equal(prism_block_builder_append_int(b, 99, 1), PRISM_BLOCK_EINVAL);
    /* Failures left nothing behind: every column still has no row, and
     * could still be set whole. */
    for (size_t c = 0; c < 9; c++)
        assert_int_equal(prism_block_builder_rows(b, c), 0);
    int32_t offs[2] = {0, 1};
    assert_int_equal(prism_block_builder_set_varlen(b, 3, offs, "x", 1, NULL), OK);
    /* What converts: ints to floats, float32 infinities. */
    assert_int_equal(prism_block_builder_append_int(b, 2, -3), OK);
    assert_int_equal(prism_block_builder_append_int(b, 0, -128), OK);
    assert_int_equal(prism_block_builder_append_uint(b, 5, UINT64_MAX), OK);
    assert_int_equal(prism_block_builder_append_int(b, 7, 1 << 30), OK);
    prism_block_builder_destroy(b);

    /* Float32 takes infinities and NaN as they are. */
    assert_int_equal(prism_block_builder_create(s, &b), OK);
    assert_int_equal(prism_block_builder_append_float(b, 2, INFINITY), OK);
    assert_int_equal(prism_block_builder_append_float(b, 2, NAN), OK);
    prism_block_builder_destroy(b);
    prism_block_schema_destroy(s);
}

static void test_finish_into(void **state)
{
    (void)state;
    prism_block_schema *s = schema_of("x:float64,s:utf8");
    prism_block_builder *b;
    assert_int_equal(prism_block_builder_create(s, &b), OK);
    assert_int_equal(prism_block_builder_reserve(b, 100), OK);
    assert_int_equal(prism_block_builder_reserve_bytes(b, 1, 500), OK);
    assert_int_equal(prism_block_builder_reserve_bytes(b, 0, 500), PRISM_BLOCK_EINVAL);
    assert_int_equal(prism_block_builder_reserve_bytes(b, 2, 500), PRISM_BLOCK_EINVAL);
    assert_int_equal(prism_block_builder_reserve_bytes(b, 1, SIZE_MAX), PRISM_BLOCK_ERANGE);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(prism_block_builder_append_float(b, 0, i * 0.25), OK);
        char t[16];
        snprintf(t, sizeof t, "row%d", i);
        assert_int_equal(prism_block_builder_append_bytes(b, 1, t, strlen(t)), OK);
    }
    size_t size, written = 0;
    assert_int_equal(prism_block_builder_size(b, &size, err, sizeof err), OK);
    uint8_t *mem = aligned_copy(NULL, size);
    assert_int_equal(prism_block_builder_finish_into(b, mem, size - 1, &written, err, sizeof err),
                     PRISM_BLOCK_ERANGE);
    assert_int_equal(prism_block_builder_rows(b, 0), 100); /* a failure changes nothing */
    assert_int_equal(prism_block_builder_finish_into(b, mem + 4, size, &written, err, sizeof err),
                     PRISM_BLOCK_EINVAL);
    assert_int_equal(prism_block_builder_finish_into(b, mem, size, &written, err, sizeof err), OK);
    assert_int_equal(written, size);
    prism_block *blk;
    assert_int_equal(prism_block_open(mem, size, &blk, err, sizeof err), OK);
    assert_int_equal(prism_block_rows(blk), 100);
    size_t len;
    const char *str = prism_block_string(blk, 1, 42, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(str, "row42", 5);
    assert_true(((const double *)prism_block_values(blk, 0, PRISM_COL_FLOAT64))[99] == 24.75);
    /* The builder goes on with the next block. */
    assert_int_equal(prism_block_builder_append_float(b, 0, 1), OK);
    assert_int_equal(prism_block_builder_append_bytes(b, 1, "z", 1), OK);
    prism_block *next;
    assert_int_equal(prism_block_builder_finish(b, &next, err, sizeof err), OK);
    assert_int_equal(prism_block_rows(next), 1);
    assert_int_equal(*prism_block_string(next, 1, 0, &len), 'z');
    prism_block_destroy(next);
    prism_block_destroy(blk);
    free(mem);
    prism_block_builder_destroy(b);
    prism_block_schema_destroy(s);
}

/* ---------- validation ---------- */

/* A small valid block: x int32 with a null, s utf8, t tensor. */
static uint8_t *valid_block(size_t *len)
{
    prism_block_schema *s = schema_of("x:int32,s:utf8");
    int64_t shape[2] = {2, 2};
    assert_int_equal(prism_block_schema_add_tensor(s, "t", PRISM_COL_UINT8, 2, shape), OK);
    prism_block_builder *b;
    assert_int_equal(prism_block_builder_create(s, &b), OK);
    for (int i = 0; i < 10; i++) {
        if (i == 4)
            assert_int_equal(prism_block_builder_append_null(b, 0), OK);
        else
            assert_int_equal(prism_block_builder_append_int(b, 0, i), OK);
        assert_int_equal(prism_block_builder_append_bytes(b, 1, "abc", (size_t)i % 4), OK);
        uint8_t px[4] = {1, 2, 3, (uint8_t)i};
        assert_int_equal(prism_block_builder_append_tensor(b, 2, px, 4), OK);
    }
    assert_int_equal(prism_block_builder_size(b, len, err, sizeof err), OK);
    uint8_t *mem = aligned_copy(NULL, *len);
    assert_int_equal(prism_block_builder_finish_into(b, mem, *len, NULL, err, sizeof err), OK);
    prism_block_builder_destroy(b);
    prism_block_schema_destroy(s);
    return mem;
}

/* Opens a copy of `p` changed by `mutate`; returns the status, err set. */
static prism_block_status open_mutated(const uint8_t *p, size_t len, size_t open_len,
                                       void (*mutate)(uint8_t *p, size_t len))
{
    uint8_t *q = aligned_copy(p, len);
    if (mutate)
        mutate(q, len);
    prism_block *blk = NULL;
    err[0] = 0;
    prism_block_status st = prism_block_open(q, open_len, &blk, err, sizeof err);
    prism_block_destroy(blk);
    free(q);
    return st;
}

#define REC(p, c) ((p) + record_at((p), (c)))
static void m_magic(uint8_t *p, size_t n) { p[0] = 'X'; }
static void m_version(uint8_t *p, size_t n) { p[8] = 2; }
static void m_flags(uint8_t *p, size_t n) { p[10] = 1; }
static void m_reserved(uint8_t *p, size_t n) { p[63] = 1; }
static void m_blen(uint8_t *p, size_t n) { st64(p + 24, n + 64); }
static void m_rows_huge(uint8_t *p, size_t n) { st64(p + 16, (uint64_t)1 << 40); }
static void m_rows_more(uint8_t *p, size_t n) { st64(p + 16, 11); }
static void m_cols_huge(uint8_t *p, size_t n) { st32(p + 12, 100000); }
static void m_cols_more(uint8_t *p, size_t n) { st32(p + 12, 4); }
static void m_schema_len(uint8_t *p, size_t n) { st32(p + 32, 0xffffffffu); }
static void m_schema_short(uint8_t *p, size_t n) { st32(p + 32, ld32(p + 32) - 8); }
static void m_type(uint8_t *p, size_t n) { REC(p, 1)[0] = 99; }
static void m_elem(uint8_t *p, size_t n) { REC(p, 2)[1] = PRISM_COL_BOOL; }
static void m_ndim(uint8_t *p, size_t n) { REC(p, 0)[2] = 1; }
static void m_name_len0(uint8_t *p, size_t n) { st32(REC(p, 0) + 4, 0); }
static void m_name_len_huge(uint8_t *p, size_t n) { st32(REC(p, 0) + 4, 0xfffffff0u); }
static void m_name_utf8(uint8_t *p, size_t n) { REC(p, 0)[64] = 0xff; }
static void m_name_dup(uint8_t *p, size_t n) { REC(p, 1)[64] = 'x'; } /* "s" -> "x" */
static void m_shape_neg(uint8_t *p, size_t n) { st64(REC(p, 2) + 64, (uint64_t)-2); }
static void m_shape_overflow(uint8_t *p, size_t n)
{
    st64(REC(p, 2) + 64, (uint64_t)1 << 31);
    st64(REC(p, 2) + 72, (uint64_t)1 << 31);
}
static void m_shape_bigger(uint8_t *p, size_t n) { st64(REC(p, 2) + 64, 3); }
static void m_nulls_more(uint8_t *p, size_t n) { st64(REC(p, 0) + 8, 2); }
static void m_nulls_past_rows(uint8_t *p, size_t n) { st64(REC(p, 0) + 8, 11); }
static void m_nulls_none(uint8_t *p, size_t n) { st64(REC(p, 0) + 8, 0); }
static void m_bitmap(uint8_t *p, size_t n) { p[ld64(REC(p, 0) + 16)] ^= 1; }
static void m_unaligned(uint8_t *p, size_t n) { st64(REC(p, 0) + 32, ld64(REC(p, 0) + 32) + 8); }
static void m_past_end(uint8_t *p, size_t n) { st64(REC(p, 2) + 32, n); }
static void m_len_overflow(uint8_t *p, size_t n) { st64(REC(p, 2) + 40, (uint64_t)-64); }
static void m_overlap(uint8_t *p, size_t n) { st64(REC(p, 1) + 32, ld64(REC(p, 0) + 32)); }
static void m_values_len(uint8_t *p, size_t n) { st64(REC(p, 0) + 40, 36); }
static void m_empty_at(uint8_t *p, size_t n) { st64(REC(p, 0) + 48, 64); }
static void m_data_in_fixed(uint8_t *p, size_t n)
{
    st64(REC(p, 0) + 48, ld64(REC(p, 1) + 32));
    st64(REC(p, 0) + 56, 1);
}
static void m_offsets_first(uint8_t *p, size_t n) { st32(p + ld64(REC(p, 1) + 32), 1); }
static void m_offsets_down(uint8_t *p, size_t n) { st32(p + ld64(REC(p, 1) + 32) + 12, 0); }
static void m_offsets_past(uint8_t *p, size_t n) { st32(p + ld64(REC(p, 1) + 32) + 40, 1000); }
static void m_offsets_negative(uint8_t *p, size_t n)
{
    st32(p + ld64(REC(p, 1) + 32) + 8, (uint32_t)-5);
}
static void m_data_len(uint8_t *p, size_t n) { st64(REC(p, 1) + 56, ld64(REC(p, 1) + 56) - 1); }
static void m_name_pad(uint8_t *p, size_t n) { REC(p, 0)[66] = 1; }
static void m_gap(uint8_t *p, size_t n) { st64(REC(p, 0) + 32, ld64(REC(p, 0) + 32) + 64); }
static void m_buffer_pad(uint8_t *p, size_t n) { p[ld64(REC(p, 0) + 16) + 2] = 1; }
static void m_tail_pad(uint8_t *p, size_t n) { p[n - 1] = 1; }
static void m_schema_pad(uint8_t *p, size_t n) { p[64 + ld32(p + 32)] = 1; }
static void m_trailing(uint8_t *p, size_t n) { st64(p + 24, n); }

/* Values written in place, at the schema's data offset, then the block
 * written around them: the same bytes as a block built from a copy. */
static void test_values_in_place(void **state)
{
    (void)state;
    const int64_t shape[3] = {4, 3, 2};
    const size_t rows = 5, n = rows * 4 * 3 * 2;
    prism_block_schema *s;
    assert_int_equal(prism_block_schema_create(&s), OK);
    assert_int_equal(prism_block_schema_add_tensor(s, "image", PRISM_COL_UINT8, 3, shape), OK);
    size_t off = prism_block_schema_data_offset(s);
    assert_true(off >= PRISM_BLOCK_HEADER_SIZE && off % 64 == 0);
    uint8_t *values = malloc(n);
    for (size_t i = 0; i < n; i++)
        values[i] = (uint8_t)(i * 7);
    prism_block_builder *b;
    assert_int_equal(prism_block_builder_create(s, &b), OK);
    assert_int_equal(prism_block_builder_set_fixed(b, 0, values, rows, NULL), OK);
    prism_block *copied;
    assert_int_equal(prism_block_builder_finish(b, &copied, err, sizeof err), OK);
    size_t len;
    const uint8_t *want = prism_block_data(copied, &len);
    uint8_t *mem = aligned_copy(NULL, len + 64);
    memset(mem, 0xee, len + 64); /* the header and the padding must be written */
    memcpy(mem + off, values, n);
    assert_int_equal(prism_block_builder_set_fixed(b, 0, mem + off, rows, NULL), OK);
    size_t written = 0;
    assert_int_equal(prism_block_builder_finish_into(b, mem, len + 64, &written, err, sizeof err),
                     OK);
    assert_int_equal(written, len);
    assert_memory_equal(mem, want, len);
    prism_block_destroy(copied);
    prism_block_builder_destroy(b);
    prism_block_schema_destroy(s);
    free(values);
    free(mem);
}

static void test_open_rejects_corrupt(void **state)
{
    (void)state;
    size_t len;
    uint8_t *p = valid_block(&len);
    assert_int_equal(open_mutated(p, len, len, NULL), OK);
    /* Truncated anywhere. */
    static const size_t cuts[] = {0, 1, 63, 64, 100};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        assert_int_equal(open_mutated(p, len, cuts[i], NULL), PRISM_BLOCK_ECORRUPT);
        assert_true(strlen(err) > 0);
    }
    assert_int_equal(open_mutated(p, len, len - 1, NULL), PRISM_BLOCK_ECORRUPT);
    assert_int_equal(open_mutated(p, len, len - 64, NULL), PRISM_BLOCK_ECORRUPT);
    assert_non_null(strstr(err, "byte length"));

    static const struct {
        void (*m)(uint8_t *, size_t);
        const char *why; /* a word the reason must hold */
    } cases[] = {
        {m_magic, "magic"},          {m_version, "version"},          {m_flags, "flags"},
        {m_reserved, "reserved"},    {m_blen, "byte length"},         {m_rows_huge, "rows"},
        {m_rows_more, "bytes"},      {m_cols_huge, "columns"},        {m_cols_more, "column 3"},
        {m_schema_len, "schema"},    {m_schema_short, "schema"},      {m_type, "type"},
        {m_elem, "element"},         {m_ndim, "dimensions"},          {m_name_len0, "name"},
        {m_name_len_huge, "name"},   {m_name_utf8, "UTF-8"},          {m_name_dup, "two columns"},
        {m_shape_neg, "shape"},      {m_shape_overflow, "shape"},     {m_shape_bigger, "values"},
        {m_nulls_more, "null"},      {m_nulls_past_rows, "nulls"},    {m_nulls_none, "validity"},
        {m_bitmap, "null count"},    {m_unaligned, "aligned"},        {m_past_end, "past"},
        {m_len_overflow, "past"},    {m_overlap, "overlaps"},         {m_values_len, "values"},
        {m_empty_at, "empty"},       {m_data_in_fixed, "data"},       {m_offsets_first, "start"},
        {m_offsets_down, "below"},   {m_offsets_past, "offsets end"}, {m_offsets_negative, "below"},
        {m_data_len, "offsets end"}, {m_name_pad, "padding"},         {m_schema_pad, "padding"},
        {m_gap, "layout"},           {m_buffer_pad, "padding"},       {m_tail_pad, "padding"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        prism_block_status st = open_mutated(p, len, len, cases[i].m);
        if (st != PRISM_BLOCK_ECORRUPT || !strstr(err, cases[i].why))
            fail_msg("case %zu: status %d, reason '%s' (wanted '%s')", i, st, err, cases[i].why);
    }
    /* Trailing bytes past the block's byte length. */
    uint8_t *longer = aligned_copy(NULL, len + 64);
    memcpy(longer, p, len);
    memset(longer + len, 0, 64);
    m_trailing(longer, len + 64);
    prism_block *blk;
    assert_int_equal(prism_block_open(longer, len + 64, &blk, err, sizeof err),
                     PRISM_BLOCK_ECORRUPT);
    assert_non_null(strstr(err, "buffers end"));
    free(longer);

    /* Misaligned bytes: refused before anything is read through a typed pointer. */
    uint8_t *off = aligned_copy(NULL, len + 8);
    memcpy(off + 4, p, len);
    assert_int_equal(prism_block_open(off + 4, len, &blk, err, sizeof err), PRISM_BLOCK_EINVAL);
    free(off);
    assert_int_equal(prism_block_open(NULL, 0, &blk, err, sizeof err), PRISM_BLOCK_ECORRUPT);
    assert_int_equal(prism_block_open_ex(p, len, 0x80, NULL, NULL, &blk, err, sizeof err),
                     PRISM_BLOCK_EINVAL);
    /* err may be NULL. */
    assert_int_equal(prism_block_open(p, 10, &blk, NULL, 0), PRISM_BLOCK_ECORRUPT);
    free(p);
}

static void test_utf8_check(void **state)
{
    (void)state;
    prism_block_schema *s = schema_of("s:utf8,b:binary");
    prism_block_builder *b;
    assert_int_equal(prism_block_builder_create(s, &b), OK);
    /* Borrowed columns are not checked for UTF-8: a bad one gets through. */
    int32_t offs[3] = {0, 2, 4};
    assert_int_equal(prism_block_builder_set_varlen(b, 0, offs, "ok\xc3(", 2, NULL), OK);
    assert_int_equal(prism_block_builder_set_varlen(b, 1, offs, "\xff\xfe\x00\x01", 2, NULL), OK);
    size_t len;
    assert_int_equal(prism_block_builder_size(b, &len, err, sizeof err), OK);
    uint8_t *mem = aligned_copy(NULL, len);
    assert_int_equal(prism_block_builder_finish_into(b, mem, len, NULL, err, sizeof err), OK);
    prism_block *blk;
    assert_int_equal(prism_block_open(mem, len, &blk, err, sizeof err), OK);
    /* JSON stays valid: the bad bytes become '?'. */
    char *json;
    assert_int_equal(prism_block_to_json(blk, 0, 2, 0, &json, NULL), OK);
    assert_string_equal(json, "[{\"s\":\"ok\",\"b\":\"//4=\"},{\"s\":\"?(\",\"b\":\"AAE=\"}]");
    free(json);
    prism_block_destroy(blk);
    assert_int_equal(prism_block_open_ex(mem, len, PRISM_BLOCK_CHECK_UTF8, NULL, NULL, &blk, err,
                                         sizeof err),
                     PRISM_BLOCK_ECORRUPT);
    assert_non_null(strstr(err, "row 1 is not UTF-8"));
    free(mem);
    prism_block_builder_destroy(b);
    prism_block_schema_destroy(s);
}

/* ---------- views and re-batching ---------- */

static void test_slice(void **state)
{
    (void)state;
    prism_block *blk = every_type(), *sl, *sl2;
    assert_int_equal(prism_block_slice(blk, 3, 10, &sl), OK); /* starts inside a bitmap byte */
    size_t len;
    assert_null(prism_block_data(sl, &len));
    check_every_type(sl, 3, 7);
    assert_int_equal(prism_block_null_count(sl, C_S), 2); /* rows 3 and 7 */
    prism_column_view v;
    assert_int_equal(prism_block_column(sl, C_S, &v), OK);
    assert_int_equal(v.offset, 3);
    assert_int_equal(v.length, 7);
    prism_column_view full;
    assert_int_equal(prism_block_column(blk, C_S, &full), OK);
    assert_ptr_equal(v.values, full.values); /* zero-copy */

    assert_int_equal(prism_block_slice(sl, 1, 4, &sl2), OK); /* rows 4..6 of blk: no nulls */
    check_every_type(sl2, 4, 3);
    assert_int_equal(prism_block_null_count(sl2, C_B), 0);
    assert_int_equal(prism_block_column(sl2, C_B, &v), OK);
    assert_null(v.validity);
    assert_int_equal(v.offset, 4);

    /* Serialized: an ordinary block of those rows, sized as promised. */
    prism_block *again = reopen(sl);
    check_every_type(again, 3, 7);
    assert_int_equal(prism_block_nbytes(sl), prism_block_nbytes(again));
    assert_non_null(prism_block_data(again, &len));
    assert_int_equal(prism_block_column(again, C_S, &v), OK);
    assert_int_equal(v.offset, 0);
    assert_int_equal(((const int32_t *)v.values)[0], 0);
    prism_block_destroy(again);
    again = reopen(sl2);
    check_every_type(again, 4, 3);
    prism_block_destroy(again);
    prism_block_destroy(sl2);

    assert_int_equal(prism_block_slice(blk, 5, 4, &sl2), PRISM_BLOCK_EINVAL);
    assert_int_equal(prism_block_slice(blk, 0, ROWS + 1, &sl2), PRISM_BLOCK_EINVAL);
    /* The view outlives the handle it came from. */
    prism_block_destroy(blk);
    check_every_type(sl, 3, 7);
    prism_block_destroy(sl);
}

static void test_concat(void **state)
{
    (void)state;
    prism_block *blk = every_type(), *a, *b, *c;
    assert_int_equal(prism_block_slice(blk, 0, 3, &a), OK);  /* no nulls */
    assert_int_equal(prism_block_slice(blk, 3, 8, &b), OK);  /* nulls, odd start */
    assert_int_equal(prism_block_slice(blk, 8, 11, &c), OK); /* no nulls */
    prism_block *parts[4] = {a, b, c, blk}, *all;
    assert_int_equal(prism_block_concat(parts, 4, &all, err, sizeof err), OK);
    assert_int_equal(prism_block_rows(all), 2 * ROWS);
    for (int i = 0; i < ROWS; i++) {
        check_every_type_row(all, (size_t)i, i);
        check_every_type_row(all, (size_t)(ROWS + i), i);
    }
    assert_int_equal(prism_block_null_count(all, C_S), 4);
    prism_block *again = reopen(all);
    assert_same_bytes(all, again);
    prism_block_destroy(again);
    prism_block_destroy(all);

    /* The pieces of a block concatenated are the block, byte for byte. */
    prism_block *three[3] = {a, b, c};
    assert_int_equal(prism_block_concat(three, 3, &all, err, sizeof err), OK);
    assert_same_bytes(all, blk);
    prism_block_destroy(all);

    /* Into the caller's memory: the same bytes; too small, unaligned: refused. */
    size_t len = 0, written = 0;
    assert_int_equal(prism_block_concat_size(three, 3, &len, err, sizeof err), OK);
    assert_int_equal(len, prism_block_nbytes(blk));
    void *mem = aligned_alloc(64, (len + 63) / 64 * 64);
    assert_int_equal(prism_block_concat_into(three, 3, mem, len - 1, &written, err, sizeof err),
                     PRISM_BLOCK_ERANGE);
    assert_int_equal(prism_block_concat_into(three, 3, (char *)mem + 4, len, &written, err,
                                             sizeof err),
                     PRISM_BLOCK_EINVAL);
    assert_int_equal(prism_block_concat_into(three, 3, mem, len, &written, err, sizeof err), OK);
    assert_int_equal(written, len);
    assert_int_equal(prism_block_open(mem, written, &all, err, sizeof err), OK);
    assert_same_bytes(all, blk);
    prism_block_destroy(all);
    free(mem);

    /* Only blocks of one schema. */
    prism_block *sel;
    const char *names[] = {"b", "i8"};
    assert_int_equal(prism_block_select(blk, names, 2, &sel), OK);
    prism_block *mixed[2] = {blk, sel};
    assert_int_equal(prism_block_concat(mixed, 2, &all, err, sizeof err), PRISM_BLOCK_ESCHEMA);
    assert_non_null(strstr(err, "columns"));
    prism_block_schema *s1 = schema_of("x:int32"), *s2 = schema_of("x:int64");
    prism_block_builder *b1, *b2;
    prism_block *x1, *x2;
    assert_int_equal(prism_block_builder_create(s1, &b1), OK);
    assert_int_equal(prism_block_builder_create(s2, &b2), OK);
    assert_int_equal(prism_block_builder_finish(b1, &x1, err, sizeof err), OK);
    assert_int_equal(prism_block_builder_finish(b2, &x2, err, sizeof err), OK);
    prism_block *xs[2] = {x1, x2};
    assert_int_equal(prism_block_concat(xs, 2, &all, err, sizeof err), PRISM_BLOCK_ESCHEMA);
    assert_non_null(strstr(err, "types differ"));
    assert_int_equal(prism_block_concat(xs, 0, &all, err, sizeof err), PRISM_BLOCK_EINVAL);
    prism_block_destroy(x1);
    prism_block_destroy(x2);
    prism_block_builder_destroy(b1);
    prism_block_builder_destroy(b2);
    prism_block_schema_destroy(s1);
    prism_block_schema_destroy(s2);
    prism_block_destroy(sel);
    prism_block_destroy(a);
    prism_block_destroy(b);
    prism_block_destroy(c);
    prism_block_destroy(blk);
}

static void test_select_drop(void **state)
{
    (void)state;
    prism_block *blk = every_type(), *sel, *dropped;
    const char *names[] = {"s", "i64", "t"};
    assert_int_equal(prism_block_select(blk, names, 3, &sel), OK);
    assert_int_equal(prism_block_columns(sel), 3);
    assert_string_equal(prism_block_schema_name(prism_block_get_schema(sel), 0), "s");
    assert_string_equal(prism_block_schema_name(prism_block_get_schema(sel), 2), "t");
    size_t len;
    const char *str = prism_block_string(sel, 0, 1, &len);
    assert_int_equal(len, strlen("héllo"));
    assert_memory_equal(str, "héllo", len);
    assert_true(((const int64_t *)prism_block_values(sel, 1, PRISM_COL_INT64))[1] == INT64_MAX);
    prism_block *again = reopen(sel);
    assert_int_equal(prism_block_columns(again), 3);
    assert_int_equal(((const uint8_t *)prism_block_tensor(again, 2, 2, NULL))[5], 25);
    prism_block_destroy(again);

    const char *bad[] = {"s", "nope"}, *twice[] = {"s", "s"};
    assert_int_equal(prism_block_select(blk, bad, 2, &dropped), PRISM_BLOCK_ESCHEMA);
    assert_int_equal(prism_block_select(blk, twice, 2, &dropped), PRISM_BLOCK_ESCHEMA);
    assert_int_equal(prism_block_drop(blk, bad, 2, &dropped), PRISM_BLOCK_ESCHEMA);

    const char *gone[] = {"b", "bin", "tf"};
    assert_int_equal(prism_block_drop(blk, gone, 3, &dropped), OK);
    assert_int_equal(prism_block_columns(dropped), NCOLS - 3);
    assert_int_equal(prism_block_column_index(dropped, "bin"), -1);
    assert_int_equal(prism_block_column_index(dropped, "i8"), 0);
    /* A view of a view: a slice of the columns chosen. */
    prism_block *sl;
    assert_int_equal(prism_block_slice(sel, 9, 11, &sl), OK);
    assert_int_equal(((const int64_t *)prism_block_values(sl, 1, PRISM_COL_INT64))[0], 9);
    prism_block_destroy(sl);
    prism_block_destroy(dropped);
    prism_block_destroy(sel);
    prism_block_destroy(blk);
}

static void test_release_callback(void **state)
{
    (void)state;
    size_t len;
    uint8_t *p = valid_block(&len);
    releases = 0;
    prism_block *blk, *sl;
    assert_int_equal(prism_block_open_ex(p, len, 0, release_free, p, &blk, err, sizeof err), OK);
    assert_int_equal(prism_block_slice(blk, 1, 3, &sl), OK);
    struct ArrowArray arr;
    assert_int_equal(prism_block_export_arrow(sl, NULL, &arr), OK);
    prism_block_destroy(prism_block_ref(blk));
    prism_block_destroy(blk);
    prism_block_destroy(sl);
    assert_int_equal(releases, 0); /* the export still reads the bytes */
    arr.release(&arr);
    assert_int_equal(releases, 1);
    /* A failed open does not release. */
    uint8_t junk[64] __attribute__((aligned(64))) = {0};
    assert_int_equal(prism_block_open_ex(junk, 64, 0, release_free, junk, &blk, err, sizeof err),
                     PRISM_BLOCK_ECORRUPT);
    assert_int_equal(releases, 1);
}

/* ---------- JSON ---------- */

static void test_json_out(void **state)
{
    (void)state;
    prism_block_schema *s = schema_of("id:int64,x:float64,y:float32,ok:bool,name:utf8,raw:binary");
    int64_t shape[2] = {2, 2};
    assert_int_equal(prism_block_schema_add_tensor(s, "m", PRISM_COL_INT16, 2, shape), OK);
    prism_block_builder *b;
    assert_int_equal(prism_block_builder_create(s, &b), OK);
    assert_int_equal(prism_block_builder_append_int(b, 0, -7), OK);
    assert_int_equal(prism_block_builder_append_float(b, 1, 3.0), OK);
    assert_int_equal(prism_block_builder_append_float(b, 2, 0.1), OK);
    assert_int_equal(prism_block_builder_append_bool(b, 3, true), OK);
    assert_int_equal(prism_block_builder_append_bytes(b, 4, "q\"\\\n\x01\0é", 8), OK);
    assert_int_equal(prism_block_builder_append_bytes(b, 5, "hi!", 3), OK);
    int16_t m[4] = {1, -2, 3, 32767};
    assert_int_equal(prism_block_builder_append_tensor(b, 6, m, sizeof m), OK);
    assert_int_equal(prism_block_builder_append_int(b, 0, INT64_MAX), OK);
    assert_int_equal(prism_block_builder_append_float(b, 1, NAN), OK);
    assert_int_equal(prism_block_builder_append_float(b, 2, -INFINITY), OK);
    for (size_t c = 3; c < 7; c++)
        assert_int_equal(prism_block_builder_append_null(b, c), OK);
    prism_block *blk;
    assert_int_equal(prism_block_builder_finish(b, &blk, err, sizeof err), OK);
    char *json;
    size_t len;
    assert_int_equal(prism_block_to_json(blk, 0, 100, 0, &json, &len), OK);
    assert_string_equal(json, "[{\"id\":-7,\"x\":3.0,\"y\":0.1,\"ok\":true,"
                              "\"name\":\"q\\\"\\\\\\u000a\\u0001\\u0000é\",\"raw\":\"aGkh\","
                              "\"m\":[[1,-2],[3,32767]]},"
                              "{\"id\":9223372036854775807,\"x\":null,\"y\":null,\"ok\":null,"
                              "\"name\":null,\"raw\":null,\"m\":null}]");
    assert_int_equal(len, strlen(json));
    free(json);
    /* A window of rows, clipped to the block. */
    assert_int_equal(prism_block_to_json(blk, 1, 100, 0, &json, NULL), OK);
    assert_true(!strncmp(json, "[{\"id\":9223372036854775807", 26));
    free(json);
    assert_int_equal(prism_block_to_json(blk, 5, 1, 0, &json, NULL), OK);
    assert_string_equal(json, "[]");
    free(json);
    /* A cap on the text. */
    assert_int_equal(prism_block_to_json(blk, 0, 100, 40, &json, NULL), PRISM_BLOCK_ERANGE);

    char *desc;
    assert_int_equal(prism_block_describe_json(blk, &desc, NULL), OK);
    char want[64];
    snprintf(want, sizeof want, "{\"rows\":2,\"bytes\":%zu,", prism_block_nbytes(blk));
    assert_true(!strncmp(desc, want, strlen(want)));
    assert_non_null(
        strstr(desc, "\"name\":\"ok\",\"type\":\"bool\",\"arrow\":\"b\",\"null_count\":1"));
    assert_non_null(strstr(desc, "\"dtype\":\"int16\",\"shape\":[2,2],\"arrow\":\"+w:4\""));
    free(desc);
    prism_block_destroy(blk);
    prism_block_builder_destroy(b);
    prism_block_schema_destroy(s);
}

static prism_block *from_json(const char *text, const prism_block_schema *s,
                              prism_block_status want)
{
    prism_block *blk = NULL;
    err[0] = 0;
    prism_block_status st = prism_block_from_json(text, strlen(text), s, &blk, err, sizeof err);
    if (st != want)
        fail_msg("from_json(%s): status %d (%s), wanted %d", text, st, err, want);
    if (st)
        assert_true(strlen(err) > 0);
    return blk;
}

static void test_json_in_inferred(void **state)
{
    (void)state;
    prism_block *blk = from_json("[{\"a\": 1, \"b\": 1.5, \"c\": \"x\", \"d\": true, "
                                 "\"e\": [[1, 2], [3, 4]], \"f\": null},"
                                 " {\"b\": 2, \"a\": null, \"e\": [[1, 2.5], [3, 4]], \"g\": \"\"},"
                                 " {}]",
                                 NULL, OK);
    const prism_block_schema *s = prism_block_get_schema(blk);
    assert_int_equal(prism_block_rows(blk), 3);
    assert_int_equal(prism_block_columns(blk), 7);
    static const prism_coltype types[7] = {PRISM_COL_INT64, PRISM_COL_FLOAT64, PRISM_COL_UTF8,
                                           PRISM_COL_BOOL,  PRISM_COL_TENSOR,  PRISM_COL_UTF8,
                                           PRISM_COL_UTF8};
    static const char *const names[7] = {"a", "b", "c", "d", "e", "f", "g"};
    for (size_t c = 0; c < 7; c++) {
        assert_string_equal(prism_block_schema_name(s, c), names[c]);
        assert_int_equal(prism_block_schema_type(s, c), types[c]);
    }
    assert_int_equal(prism_block_schema_elem(s, 4), PRISM_COL_FLOAT64);
    assert_int_equal(prism_block_schema_ndim(s, 4), 2);
    assert_int_equal(prism_block_null_count(blk, 0), 2);
    assert_int_equal(prism_block_null_count(blk, 5), 3);
    assert_true(((const double *)prism_block_values(blk, 1, PRISM_COL_FLOAT64))[1] == 2.0);
    const double *e = prism_block_tensor(blk, 4, 1, NULL);
    assert_true(e[1] == 2.5 && e[3] == 4.0);
    assert_true(prism_block_is_null(blk, 4, 2));
    prism_block_destroy(blk);

    blk = from_json("[{\"t\": [[1, 2]]}, {\"t\": [[3, 4]]}]", NULL, OK);
    assert_int_equal(prism_block_schema_elem(prism_block_get_schema(blk), 0), PRISM_COL_INT64);
    assert_int_equal(((const int64_t *)prism_block_tensor(blk, 0, 1, NULL))[1], 4);
    prism_block_destroy(blk);

    blk = from_json("[]", NULL, OK);
    assert_int_equal(prism_block_rows(blk), 0);
    assert_int_equal(prism_block_columns(blk), 0);
    prism_block_destroy(blk);
    blk = from_json("[{}, {}]", NULL, OK);
    assert_int_equal(prism_block_rows(blk), 2);
    prism_block_destroy(blk);

    from_json("[{\"a\": 1}, {\"a\": \"x\"}]", NULL, PRISM_BLOCK_EJSON);
    assert_non_null(strstr(err, "'a' mixes"));
    from_json("[{\"a\": true}, {\"a\": 1}]", NULL, PRISM_BLOCK_EJSON);
    from_json("[{\"a\": {\"b\": 1}}]", NULL, PRISM_BLOCK_EJSON);
    assert_non_null(strstr(err, "object"));
    from_json("[{\"a\": [[1, 2], [3]]}]", NULL, PRISM_BLOCK_EJSON);
    from_json("[{\"a\": [1, \"x\"]}]", NULL, PRISM_BLOCK_EJSON);
    from_json("[{\"a\": [1, 2]}, {\"a\": [1, 2, 3]}]", NULL, PRISM_BLOCK_EJSON);
    assert_non_null(strstr(err, "shape"));
    from_json("[{\"a\": 1}, 5]", NULL, PRISM_BLOCK_EJSON);
    assert_non_null(strstr(err, "row 1"));
    from_json("{\"a\": 1}", NULL, PRISM_BLOCK_EJSON);
    from_json("[{\"a\": 1,", NULL, PRISM_BLOCK_EJSON);
    from_json("[{\"a\": 1, \"a\": 2}]", NULL, PRISM_BLOCK_EJSON);
    from_json("[{\"\": 1}]", NULL, PRISM_BLOCK_EJSON);
    from_json("[{\"a\": 99999999999999999999}]", NULL, PRISM_BLOCK_EJSON);
}

static void test_json_in_schema(void **state)
{
    (void)state;
    prism_block_schema *s = schema_of("i:int8,u:uint32,f:float32,s:utf8,b:binary,ok:bool");
    int64_t shape[2] = {2, 2};
    assert_int_equal(prism_block_schema_add_tensor(s, "t", PRISM_COL_UINT8, 2, shape), OK);
    prism_block *blk = from_json("[{\"i\": -5, \"u\": 7, \"f\": 2, \"s\": \"é\", \"b\": \"AP8=\","
                                 " \"ok\": false, \"t\": [[1, 2], [3, 255]]}, {\"i\": null}]",
                                 s, OK);
    assert_int_equal(prism_block_rows(blk), 2);
    assert_int_equal(((const int8_t *)prism_block_values(blk, 0, PRISM_COL_INT8))[0], -5);
    assert_true(((const float *)prism_block_values(blk, 2, PRISM_COL_FLOAT32))[0] == 2.0f);
    size_t len;
    const uint8_t *bin = prism_block_binary(blk, 4, 0, &len);
    assert_int_equal(len, 2);
    assert_true(bin[0] == 0 && bin[1] == 0xff);
    assert_int_equal(((const uint8_t *)prism_block_tensor(blk, 6, 0, NULL))[3], 255);
    for (size_t c = 0; c < 7; c++)
        assert_true(prism_block_is_null(blk, c, 1));

    /* to_json then from_json under the schema: the same block. */
    char *json;
    assert_int_equal(prism_block_to_json(blk, 0, 2, 0, &json, NULL), OK);
    prism_block *back = from_json(json, s, OK);
    assert_same_bytes(blk, back);
    free(json);
    prism_block_destroy(back);
    prism_block_destroy(blk);

    from_json("[{\"i\": 128}]", s, PRISM_BLOCK_EJSON);
    assert_non_null(strstr(err, "out of range"));
    from_json("[{\"u\": -1}]", s, PRISM_BLOCK_EJSON);
    from_json("[{\"i\": 1.5}]", s, PRISM_BLOCK_EJSON);
    from_json("[{\"f\": \"1\"}]", s, PRISM_BLOCK_EJSON);
    from_json("[{\"b\": \"not base64!\"}]", s, PRISM_BLOCK_EJSON);
    from_json("[{\"b\": \"AP8\"}]", s, PRISM_BLOCK_EJSON);
    from_json("[{\"t\": [[1, 2], [3, 256]]}]", s, PRISM_BLOCK_EJSON);
    from_json("[{\"t\": [[1, 2, 3], [3, 4, 5]]}]", s, PRISM_BLOCK_EJSON);
    from_json("[{\"ok\": 1}]", s, PRISM_BLOCK_EJSON);
    from_json("[{\"zz\": 1}]", s, PRISM_BLOCK_EJSON);
    assert_non_null(strstr(err, "'zz'"));
    prism_block_schema_destroy(s);

    /* Every type of every_type() back through JSON (NaN-free, valid UTF-8),
     * but uint64 past INT64_MAX, which jansson does not read. */
    prism_block *all = every_type(), *some;
    const char *u64[] = {"u64"};
    assert_int_equal(prism_block_drop(all, u64, 1, &some), OK);
    assert_int_equal(prism_block_to_json(some, 0, ROWS, 0, &json, NULL), OK);
    back = from_json(json, prism_block_get_schema(some), OK);
    assert_same_bytes(some, back);
    free(json);
    prism_block_destroy(back);
    prism_block_destroy(some);
    assert_int_equal(prism_block_to_json(all, 0, 1, 0, &json, NULL), OK);
    assert_non_null(strstr(json, "\"u64\":18446744073709551615"));
    from_json(json, prism_block_get_schema(all), PRISM_BLOCK_EJSON);
    free(json);
    prism_block_destroy(all);
}

/* ---------- Arrow ---------- */

/* The pairs of an ArrowSchema's metadata, "k=v;k=v". */
static void metadata_text(const char *m, char *out, size_t n)
{
    int32_t pairs;
    memcpy(&pairs, m, 4);
    m += 4;
    out[0] = 0;
    for (int32_t i = 0; i < pairs; i++) {
        int32_t kl, vl;
        memcpy(&kl, m, 4);
        memcpy(&vl, m + 4 + kl, 4);
        snprintf(out + strlen(out), n - strlen(out), "%s%.*s=%.*s", i ? ";" : "", kl, m + 4, vl,
                 m + 8 + kl);
        m += 8 + kl + vl;
    }
}

static void test_arrow_export(void **state)
{
    (void)state;
    enum { N = 5 };
    prism_block_schema *s = schema_of("id:int64,score:float64,name:utf8,ok:bool,tiny:uint8");
    int64_t shape[3] = {224, 224, 3};
    assert_int_equal(prism_block_schema_add_tensor(s, "image", PRISM_COL_UINT8, 3, shape), OK);
    prism_block_builder *b;
    assert_int_equal(prism_block_builder_create(s, &b), OK);
    uint8_t *pixels = calloc(N, 150528);
    for (size_t i = 0; i < N; i++)
        pixels[i * 150528] = (uint8_t)(i + 1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(prism_block_builder_append_int(b, 0, i), OK);
        assert_int_equal(i == 2 ? prism_block_builder_append_null(b, 1)
                                : prism_block_builder_append_float(b, 1, i / 2.0),
                         OK);
        assert_int_equal(prism_block_builder_append_bytes(b, 2, "abcdef", (size_t)i), OK);
        assert_int_equal(prism_block_builder_append_bool(b, 3, i & 1), OK);
        assert_int_equal(prism_block_builder_append_uint(b, 4, (uint64_t)i), OK);
    }
    assert_int_equal(prism_block_builder_set_fixed(b, 5, pixels, N, NULL), OK);
    prism_block *blk;
    assert_int_equal(prism_block_builder_finish(b, &blk, err, sizeof err), OK);
    free(pixels);

    struct ArrowSchema as;
    struct ArrowArray aa;
    assert_int_equal(prism_block_export_arrow(blk, &as, &aa), OK);
    /* The schema: a struct of the columns. */
    assert_string_equal(as.format, "+s");
    assert_non_null(as.release);
    assert_int_equal(as.n_children, 6);
    assert_null(as.dictionary);
    assert_null(as.metadata);
    static const char *const formats[6] = {"l", "g", "u", "b", "C", "+w:150528"};
    static const char *const names[6] = {"id", "score", "name", "ok", "tiny", "image"};
    for (int i = 0; i < 6; i++) {
        struct ArrowSchema *c = as.children[i];
        assert_string_equal(c->format, formats[i]);
        assert_string_equal(c->name, names[i]);
        assert_int_equal(c->flags, ARROW_FLAG_NULLABLE);
        assert_int_equal(c->n_children, i == 5 ? 1 : 0);
        assert_null(c->dictionary);
        assert_non_null(c->release);
    }
    struct ArrowSchema *item = as.children[5]->children[0];
    assert_string_equal(item->format, "C");
    assert_string_equal(item->name, "item");
    assert_int_equal(item->n_children, 0);
    char meta[256];
    metadata_text(as.children[5]->metadata, meta, sizeof meta);
    assert_string_equal(meta, "ARROW:extension:name=arrow.fixed_shape_tensor;"
                              "ARROW:extension:metadata={\"shape\":[224,224,3]}");

    /* The array: buffers are the block's own. */
    assert_int_equal(aa.length, N);
    assert_int_equal(aa.null_count, 0);
    assert_int_equal(aa.offset, 0);
    assert_int_equal(aa.n_buffers, 1);
    assert_null(aa.buffers[0]);
    assert_int_equal(aa.n_children, 6);
    assert_null(aa.dictionary);
    static const int64_t n_buffers[6] = {2, 2, 3, 2, 2, 1};
    for (int i = 0; i < 6; i++) {
        struct ArrowArray *c = aa.children[i];
        prism_column_view v;
        assert_int_equal(prism_block_column(blk, (size_t)i, &v), OK);
        assert_int_equal(c->length, N);
        assert_int_equal(c->offset, 0);
        assert_int_equal(c->n_buffers, n_buffers[i]);
        assert_int_equal(c->null_count, i == 1 ? 1 : 0);
        assert_ptr_equal(c->buffers[0], v.validity);
        if (i == 1)
            assert_non_null(c->buffers[0]);
        else
            assert_null(c->buffers[0]);
        if (i < 5)
            assert_ptr_equal(c->buffers[1], v.values);
        assert_null(c->dictionary);
        assert_non_null(c->release);
    }
    const int64_t *ids = aa.children[0]->buffers[1];
    assert_int_equal(ids[4], 4);
    const double *scores = aa.children[1]->buffers[1];
    assert_true(scores[3] == 1.5);
    assert_int_equal(((const uint8_t *)aa.children[1]->buffers[0])[0], 0x1b); /* rows 0,1,3,4 */
    const int32_t *offs = aa.children[2]->buffers[1];
    assert_int_equal(offs[0], 0);
    assert_int_equal(offs[5], 0 + 1 + 2 + 3 + 4);
    assert_memory_equal((const char *)aa.children[2]->buffers[2] + offs[3], "abc", 3);
    assert_int_equal(((const uint8_t *)aa.children[3]->buffers[1])[0] & 0x1f, 0x0a);
    struct ArrowArray *img = aa.children[5], *elems = img->children[0];
    assert_int_equal(img->n_children, 1);
    assert_int_equal(elems->length, (int64_t)N * 150528);
    assert_int_equal(elems->offset, 0);
    assert_int_equal(elems->null_count, 0);
    assert_int_equal(elems->n_buffers, 2);
    assert_null(elems->buffers[0]);
    assert_ptr_equal(elems->buffers[1], prism_block_values(blk, 5, PRISM_COL_TENSOR));
    assert_int_equal(((const uint8_t *)elems->buffers[1])[3 * 150528], 4);
    for (int i = 0; i < 6; i++)
        assert_int_equal((uintptr_t)aa.children[i]->buffers[aa.children[i]->n_buffers - 1] % 64, 0);

    /* The block may go first; a child moved out lives on its own. */
    prism_block_destroy(blk);
    struct ArrowArray moved = *aa.children[2];
    aa.children[2]->release = NULL;
    assert_int_equal(((const int32_t *)aa.children[2]->buffers[1])[5], 10);
    aa.release(&aa);
    assert_null(aa.release);
    assert_memory_equal((const char *)moved.buffers[2], "aababc", 6);
    moved.release(&moved);
    struct ArrowSchema moved_s = *as.children[5];
    as.children[5]->release = NULL;
    as.release(&as);
    assert_string_equal(moved_s.children[0]->format, "C");
    moved_s.release(&moved_s);
    prism_block_builder_destroy(b);
    prism_block_schema_destroy(s);
}

static void test_arrow_export_slice(void **state)
{
    (void)state;
    prism_block *blk = every_type(), *sl;
    assert_int_equal(prism_block_slice(blk, 3, 9, &sl), OK);
    struct ArrowArray aa;
    assert_int_equal(prism_block_export_arrow(sl, NULL, &aa), OK);
    assert_int_equal(aa.length, 6);
    for (size_t c = 0; c < NCOLS; c++) {
        struct ArrowArray *ch = aa.children[c];
        assert_int_equal(ch->offset, 3);
        assert_int_equal(ch->length, 6);
        assert_int_equal(ch->null_count, c == C_I64 ? 0 : 2);
    }
    assert_int_equal(aa.children[C_T]->children[0]->length, 9 * 6);
    /* Reading through Arrow's rules: row i is at offset + i. */
    const int64_t *v = aa.children[C_I64]->buffers[1];
    assert_int_equal(v[aa.children[C_I64]->offset + 2], 5);
    const uint8_t *valid = aa.children[C_S]->buffers[0];
    assert_false((valid[(3 + 0) / 8] >> ((3 + 0) % 8)) & 1); /* row 3 of blk is null */

    /* Imported back: the slice, as a block of its own. */
    struct ArrowSchema as;
    assert_int_equal(prism_block_export_arrow(sl, &as, NULL), OK);
    prism_block *imp;
    if (prism_block_import_arrow(&as, &aa, &imp, err, sizeof err))
        fail_msg("import: %s", err);
    check_every_type(imp, 3, 6);
    assert_same_bytes(imp, sl);
    prism_block_destroy(imp);
    as.release(&as);
    aa.release(&aa);

    /* The whole block too, tensors' shapes from the extension metadata. */
    assert_int_equal(prism_block_export_arrow(blk, &as, &aa), OK);
    assert_int_equal(prism_block_import_arrow(&as, &aa, &imp, err, sizeof err), OK);
    assert_same_bytes(imp, blk);
    assert_int_equal(prism_block_schema_ndim(prism_block_get_schema(imp), C_T), 2);
    prism_block_destroy(imp);
    as.release(&as);
    aa.release(&aa);
    prism_block_destroy(sl);
    prism_block_destroy(blk);
}

/* ArrowArrays made by hand, as another producer would: offsets at every level. */
static void no_release_s(struct ArrowSchema *s) { s->release = NULL; }
static void no_release_a(struct ArrowArray *a) { a->release = NULL; }

static void test_arrow_import(void **state)
{
    (void)state;
    struct ArrowSchema f_i = {.format = "i", .name = "n", .release = no_release_s};
    struct ArrowSchema f_u = {.format = "u", .name = "s", .release = no_release_s};
    struct ArrowSchema f_w = {.format = "+w:2", .name = "pair", .release = no_release_s};
    struct ArrowSchema f_e = {.format = "s", .name = "item", .release = no_release_s};
    struct ArrowSchema *w_children[1] = {&f_e};
    f_w.n_children = 1;
    f_w.children = w_children;
    struct ArrowSchema *children[3] = {&f_i, &f_u, &f_w};
    struct ArrowSchema top = {
        .format = "+s", .name = "", .n_children = 3, .children = children, .release = no_release_s};

    int32_t ints[6] = {100, 101, 102, 103, 104, 105};
    uint8_t ivalid[1] = {0x37}; /* 0b110111: index 3 null */
    const void *ibufs[2] = {ivalid, ints};
    struct ArrowArray a_i = {.length = 5,
                             .null_count = -1,
                             .offset = 1,
                             .n_buffers = 2,
                             .buffers = ibufs,
                             .release = no_release_a};
    int32_t soffs[6] = {3, 4, 6, 6, 9, 10}; /* not from 0 */
    const char *sdata = "...abcdefg";
    const void *sbufs[3] = {NULL, soffs, sdata};
    struct ArrowArray a_u = {.length = 5,
                             .null_count = 0,
                             .offset = 0,
                             .n_buffers = 3,
                             .buffers = sbufs,
                             .release = no_release_a};
    int16_t elems[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    const void *ebufs[2] = {NULL, elems};
    struct ArrowArray a_e = {.length = 11,
                             .null_count = 0,
                             .offset = 1,
                             .n_buffers = 2,
                             .buffers = ebufs,
                             .release = no_release_a};
    struct ArrowArray *e_children[1] = {&a_e};
    const void *wbufs[1] = {NULL};
    struct ArrowArray a_w = {.length = 5,
                             .null_count = 0,
                             .offset = 0,
                             .n_buffers = 1,
                             .buffers = wbufs,
                             .n_children = 1,
                             .children = e_children,
                             .release = no_release_a};
    struct ArrowArray *a_children[3] = {&a_i, &a_u, &a_w};
    const void *tbufs[1] = {NULL};
    struct ArrowArray a_top = {.length = 3,
                               .null_count = 0,
                               .offset = 1,
                               .n_buffers = 1,
                               .buffers = tbufs,
                               .n_children = 3,
                               .children = a_children,
                               .release = no_release_a};
    prism_block *blk;
    if (prism_block_import_arrow(&top, &a_top, &blk, err, sizeof err))
        fail_msg("import: %s", err);
    /* Struct row i is child index 1 + i: ints from physical 2, strings from 1. */
    assert_int_equal(prism_block_rows(blk), 3);
    const int32_t *n = prism_block_values(blk, 0, PRISM_COL_INT32);
    assert_false(prism_block_is_null(blk, 0, 0)); /* physical 2: bit 2 set */
    assert_true(prism_block_is_null(blk, 0, 1));  /* physical 3: bit 3 clear */
    assert_int_equal(n[0], 102);
    assert_int_equal(n[2], 104);
    assert_int_equal(prism_block_null_count(blk, 0), 1);
    size_t len;
    const char *s = prism_block_string(blk, 1, 0, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(s, "bc", 2);
    prism_block_string(blk, 1, 1, &len);
    assert_int_equal(len, 0);
    s = prism_block_string(blk, 1, 2, &len);
    assert_memory_equal(s, "def", 3);
    const int16_t *pair = prism_block_tensor(blk, 2, 0, NULL); /* list 1: elements 1+2, 1+3 */
    assert_int_equal(pair[0], 3);
    assert_int_equal(pair[1], 4);
    assert_int_equal(prism_block_schema_ndim(prism_block_get_schema(blk), 2), 1);
    prism_block_destroy(blk);

    /* What is refused, with a reason. */
    f_u.format = "U";
    assert_int_equal(prism_block_import_arrow(&top, &a_top, &blk, err, sizeof err),
                     PRISM_BLOCK_EARROW);
    assert_non_null(strstr(err, "'U'"));
    f_u.format = "u";
    uint8_t tvalid[1] = {0x05};
    tbufs[0] = tvalid;
    a_top.null_count = 1;
    assert_int_equal(prism_block_import_arrow(&top, &a_top, &blk, err, sizeof err),
                     PRISM_BLOCK_EARROW);
    tbufs[0] = NULL;
    a_top.null_count = 0;
    a_e.length = 7; /* too few elements for the lists */
    assert_int_equal(prism_block_import_arrow(&top, &a_top, &blk, err, sizeof err),
                     PRISM_BLOCK_EARROW);
    a_e.length = 11;
    soffs[2] = 2; /* offsets that go down */
    assert_int_equal(prism_block_import_arrow(&top, &a_top, &blk, err, sizeof err),
                     PRISM_BLOCK_EARROW);
    soffs[2] = 6;
    f_i.name = "s"; /* a duplicate name */
    assert_int_equal(prism_block_import_arrow(&top, &a_top, &blk, err, sizeof err),
                     PRISM_BLOCK_EARROW);
    f_i.name = "n";
    a_i.length = 3; /* shorter than the struct needs */
    assert_int_equal(prism_block_import_arrow(&top, &a_top, &blk, err, sizeof err),
                     PRISM_BLOCK_EARROW);
    a_i.length = 5;
    top.format = "i";
    assert_int_equal(prism_block_import_arrow(&top, &a_top, &blk, err, sizeof err),
                     PRISM_BLOCK_EARROW);
    top.format = "+s";
    assert_int_equal(prism_block_import_arrow(&top, &a_top, &blk, err, sizeof err), OK);
    prism_block_destroy(blk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types_and_schema), cmocka_unit_test(test_every_type_round_trip),
        cmocka_unit_test(test_empty_blocks),     cmocka_unit_test(test_whole_columns),
        cmocka_unit_test(test_builder_errors),   cmocka_unit_test(test_finish_into),
        cmocka_unit_test(test_values_in_place),  cmocka_unit_test(test_open_rejects_corrupt),
        cmocka_unit_test(test_utf8_check),       cmocka_unit_test(test_slice),
        cmocka_unit_test(test_concat),           cmocka_unit_test(test_select_drop),
        cmocka_unit_test(test_release_callback), cmocka_unit_test(test_json_out),
        cmocka_unit_test(test_json_in_inferred), cmocka_unit_test(test_json_in_schema),
        cmocka_unit_test(test_arrow_export),     cmocka_unit_test(test_arrow_export_slice),
        cmocka_unit_test(test_arrow_import),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
