/* Blocks as task values, a column put into a block, and the built-in
 * functions of datasets that work on any numeric column: cast and normalize
 * (docs/datasets.md#built-in-functions); the image functions are in
 * data_transforms.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_ops.h"
#include "prism_internal.h"

/* ---------- blocks as values ---------- */

prism_block *data_block_of_value(const prism_value *v, char *err, size_t n)
{
    if (!v || v->kind != PRISM_VALUE_TENSOR || v->dtype != PRISM_U8 || v->ndim != 1) {
        snprintf(err, n, "a block argument must be a uint8 tensor of block bytes");
        return NULL;
    }
    prism_block *b = NULL;
    char why[512] = "";
    if (prism_block_open(v->data, v->len, &b, why, sizeof why) != PRISM_BLOCK_OK) {
        snprintf(err, n, "not a valid block: %s", why);
        return NULL;
    }
    return b;
}

static void release_block(void *ud) { prism_block_destroy(ud); }

prism_value *data_value_of_block(prism_block *blk)
{
    size_t len = 0;
    const void *data = prism_block_data(blk, &len);
    if (!data) { /* a view: written out as a block of its own */
        len = prism_block_nbytes(blk);
        void *mem = aligned_alloc(PRISM_BLOCK_ALIGN, (len + PRISM_BLOCK_ALIGN - 1) /
                                                         PRISM_BLOCK_ALIGN * PRISM_BLOCK_ALIGN);
        prism_block *own = NULL;
        if (!mem || prism_block_serialize(blk, mem, len) != PRISM_BLOCK_OK ||
            prism_block_open_ex(mem, len, 0, free, mem, &own, NULL, 0) != PRISM_BLOCK_OK) {
            free(mem);
            prism_block_destroy(blk);
            return NULL;
        }
        prism_block_destroy(blk);
        blk = own;
        data = mem;
    }
    prism_value *v = prism__value_borrowed(PRISM_VALUE_TENSOR, data, len, release_block, blk);
    if (!v) {
        prism_block_destroy(blk);
        return NULL;
    }
    v->dtype = PRISM_U8;
    v->ndim = 1;
    v->shape[0] = (int64_t)len;
    return v;
}

/* `blk` itself when it has bytes of its own (its buffers then start at row
 * 0), else a serialized copy; a new reference either way. */
prism_block_status data_block_flat(const prism_block *blk, prism_block **out)
{
    size_t len;
    if (prism_block_data(blk, &len)) {
        *out = prism_block_ref((prism_block *)blk);
        return PRISM_BLOCK_OK;
    }
    len = prism_block_nbytes(blk);
    void *mem = aligned_alloc(PRISM_BLOCK_ALIGN, (len + PRISM_BLOCK_ALIGN - 1) / PRISM_BLOCK_ALIGN *
                                                     PRISM_BLOCK_ALIGN);
    if (!mem)
        return PRISM_BLOCK_ENOMEM;
    prism_block_status st = prism_block_serialize(blk, mem, len);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_open_ex(mem, len, 0, free, mem, out, NULL, 0);
    if (st != PRISM_BLOCK_OK)
        free(mem);
    return st;
}

/* Adds column `i` of `src` (a flat block) to `s` under `name`. */
static prism_block_status schema_add_like(prism_block_schema *s, const char *name,
                                          const prism_block *src, size_t i)
{
    const prism_block_schema *ss = prism_block_get_schema(src);
    prism_coltype t = prism_block_schema_type(ss, i);
    if (t == PRISM_COL_TENSOR)
        return prism_block_schema_add_tensor(s, name, prism_block_schema_elem(ss, i),
                                             prism_block_schema_ndim(ss, i),
                                             prism_block_schema_shape(ss, i));
    return prism_block_schema_add(s, name, t);
}

/* Column `col` of `b` is column `i` of `src` (a flat block): its buffers,
 * borrowed until the builder finishes. */
static prism_block_status set_like(prism_block_builder *b, size_t col, const prism_block *src,
                                   size_t i)
{
    prism_column_view v;
    prism_block_status st = prism_block_column(src, i, &v);
    if (st != PRISM_BLOCK_OK)
        return st;
    if (v.offset != 0)
        return PRISM_BLOCK_EINVAL; /* flat blocks start at row 0 */
    switch (v.type) {
    case PRISM_COL_BOOL:
        return prism_block_builder_set_bool(b, col, v.values, v.length, v.validity);
    case PRISM_COL_UTF8:
    case PRISM_COL_BINARY:
        return prism_block_builder_set_varlen(b, col, v.values, v.data, v.length, v.validity);
    default: return prism_block_builder_set_fixed(b, col, v.values, v.length, v.validity);
    }
}

/* The column a block gets: column 0 of a flat block, or a tensor column
 * [rows, shape...] of `elem` from `values` (borrowed until finish). */
typedef struct new_col {
    const prism_block *fc;
    prism_coltype elem;
    const int64_t *shape; /* 3 dimensions */
    const void *values;
    const uint8_t *validity;
} new_col;

static prism_block_status add_new(prism_block_schema *s, const char *name, const new_col *c)
{
    return c->fc ? schema_add_like(s, name, c->fc, 0)
                 : prism_block_schema_add_tensor(s, name, c->elem, 3, c->shape);
}

static prism_block_status set_new(prism_block_builder *b, size_t i, const new_col *c, size_t rows)
{
    return c->fc ? set_like(b, i, c->fc, 0)
                 : prism_block_builder_set_fixed(b, i, c->values, rows, c->validity);
}

/* `blk` with column `name` set to `c`: replaced in place, or appended. */
static prism_block_status with_new(const prism_block *blk, const char *name, const new_col *c,
                                   prism_block **out, char *err, size_t n)
{
    prism_block *fb = NULL;
    prism_block_schema *s = NULL;
    prism_block_builder *b = NULL;
    long at = prism_block_column_index(blk, name);
    size_t ncols = prism_block_columns(blk), rows = prism_block_rows(blk);
    prism_block_status st = data_block_flat(blk, &fb);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_schema_create(&s);
    const prism_block_schema *bs = fb ? prism_block_get_schema(fb) : NULL;
    for (size_t i = 0; st == PRISM_BLOCK_OK && i < ncols; i++)
        st = (long)i == at ? add_new(s, name, c)
                           : schema_add_like(s, prism_block_schema_name(bs, i), fb, i);
    if (st == PRISM_BLOCK_OK && at < 0)
        st = add_new(s, name, c);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_create(s, &b);
    for (size_t i = 0; st == PRISM_BLOCK_OK && i < ncols; i++)
        st = (long)i == at ? set_new(b, i, c, rows) : set_like(b, i, fb, i);
    if (st == PRISM_BLOCK_OK && at < 0)
        st = set_new(b, ncols, c, rows);
    char why[256] = "";
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_finish(b, out, why, sizeof why);
    if (st != PRISM_BLOCK_OK && !*err)
        snprintf(err, n, "cannot set column \"%s\": %s%s%s", name, prism_block_strerror(st),
                 *why ? ": " : "", why);
    prism_block_builder_destroy(b);
    prism_block_schema_destroy(s);
    prism_block_destroy(fb);
    return st;
}

prism_block_status data_block_with_column(const prism_block *blk, const char *name,
                                          const prism_block *col, prism_block **out, char *err,
                                          size_t n)
{
    if (n)
        err[0] = '\0';
    if (prism_block_columns(col) != 1 || prism_block_rows(col) != prism_block_rows(blk)) {
        snprintf(err, n, "the new column must be one column of %zu rows, not %zu of %zu rows",
                 prism_block_rows(blk), prism_block_columns(col), prism_block_rows(col));
        return PRISM_BLOCK_ESCHEMA;
    }
    new_col c = {0};
    prism_block *fc = NULL;
    prism_block_status st = data_block_flat(col, &fc);
    c.fc = fc;
    if (st == PRISM_BLOCK_OK)
        st = with_new(blk, name, &c, out, err, n);
    else
        snprintf(err, n, "cannot set column \"%s\": %s", name, prism_block_strerror(st));
    prism_block_destroy(fc);
    return st;
}

prism_block_status data_block_with_tensor(const prism_block *blk, const char *name,
                                          prism_coltype elem, const int64_t *shape,
                                          const void *values, const uint8_t *validity,
                                          prism_block **out, char *err, size_t n)
{
    new_col c = {NULL, elem, shape, values, validity};
    if (n)
        err[0] = '\0';
    return with_new(blk, name, &c, out, err, n);
}

/* ---------- choosing rows ---------- */

static bool bit(const uint8_t *bits, size_t i) { return (bits[i / 8] >> (i % 8)) & 1; }

static void set_bit(uint8_t *bits, size_t i) { bits[i / 8] |= (uint8_t)(1u << (i % 8)); }

/* The arrays of column `c` of `src` (a flat block) for the rows `rows[0..k)`,
 * set on column `c` of `b`; what is allocated is added to `mem` (freed by the
 * caller after finish: the builder borrows it). */
static prism_block_status take_column(prism_block_builder *b, size_t c, const prism_block *src,
                                      const size_t *rows, size_t k, void **mem, size_t *nmem)
{
    prism_column_view v;
    prism_block_status st = prism_block_column(src, c, &v);
    if (st != PRISM_BLOCK_OK)
        return st;
    uint8_t *valid = NULL;
    if (v.validity) {
        if (!(valid = mem[(*nmem)++] = calloc(k / 8 + 1, 1)))
            return PRISM_BLOCK_ENOMEM;
        for (size_t i = 0; i < k; i++)
            if (bit(v.validity, rows[i]))
                set_bit(valid, i);
    }
    if (v.type == PRISM_COL_BOOL) {
        uint8_t *bits = mem[(*nmem)++] = calloc(k / 8 + 1, 1);
        if (!bits)
            return PRISM_BLOCK_ENOMEM;
        for (size_t i = 0; i < k; i++)
            if (bit(v.values, rows[i]))
                set_bit(bits, i);
        return prism_block_builder_set_bool(b, c, bits, k, valid);
    }
    if (v.type == PRISM_COL_UTF8 || v.type == PRISM_COL_BINARY) {
        const int32_t *off = v.values;
        size_t bytes = 0;
        for (size_t i = 0; i < k; i++)
            bytes += (size_t)(off[rows[i] + 1] - off[rows[i]]);
        int32_t *noff = mem[(*nmem)++] = malloc((k + 1) * sizeof *noff);
        uint8_t *data = mem[(*nmem)++] = malloc(bytes + 1);
        if (!noff || !data)
            return PRISM_BLOCK_ENOMEM;
        noff[0] = 0;
        for (size_t i = 0; i < k; i++) {
            size_t len = (size_t)(off[rows[i] + 1] - off[rows[i]]);
            memcpy(data + noff[i], v.data + off[rows[i]], len);
            noff[i + 1] = noff[i] + (int32_t)len;
        }
        return prism_block_builder_set_varlen(b, c, noff, data, k, valid);
    }
    size_t width = v.type == PRISM_COL_TENSOR ? prism_coltype_width(v.elem) * v.list_size
                                              : prism_coltype_width(v.type);
    uint8_t *out = mem[(*nmem)++] = malloc(k * width + 1);
    if (!out)
        return PRISM_BLOCK_ENOMEM;
    const uint8_t *in = v.values;
    switch (width) { /* the common widths copied as values, not bytes */
    case 8:
        for (size_t i = 0; i < k; i++)
            ((uint64_t *)(void *)out)[i] = ((const uint64_t *)(const void *)in)[rows[i]];
        break;
    case 4:
        for (size_t i = 0; i < k; i++)
            ((uint32_t *)(void *)out)[i] = ((const uint32_t *)(const void *)in)[rows[i]];
        break;
    default:
        for (size_t i = 0; i < k; i++)
            memcpy(out + i * width, in + rows[i] * width, width);
    }
    return prism_block_builder_set_fixed(b, c, out, k, valid);
}

prism_block_status data_block_take_rows(const prism_block *blk, const size_t *rows, size_t k,
                                        prism_block **out)
{
    prism_block *fb = NULL;
    prism_block_builder *b = NULL;
    size_t ncols = prism_block_columns(blk);
    void **mem = calloc(ncols * 3 + 1, sizeof *mem);
    size_t nmem = 0;
    prism_block_status st = mem ? data_block_flat(blk, &fb) : PRISM_BLOCK_ENOMEM;
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_create(prism_block_get_schema(fb), &b);
    for (size_t c = 0; st == PRISM_BLOCK_OK && c < ncols; c++)
        st = take_column(b, c, fb, rows, k, mem, &nmem);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_finish(b, out, NULL, 0);
    prism_block_builder_destroy(b);
    for (size_t i = 0; i < nmem; i++)
        free(mem[i]);
    free(mem);
    prism_block_destroy(fb);
    return st;
}

/* ---------- numbers ---------- */

static bool numeric(prism_coltype t) { return t >= PRISM_COL_INT8 && t <= PRISM_COL_FLOAT64; }

/* Element `i` of an array of `t` (bool: bits). long double holds every int64
 * and uint64 exactly. */
static long double get_num(const void *p, prism_coltype t, size_t i)
{
    switch (t) {
    case PRISM_COL_BOOL: return (((const uint8_t *)p)[i / 8] >> (i % 8)) & 1;
    case PRISM_COL_INT8: return ((const int8_t *)p)[i];
    case PRISM_COL_INT16: return ((const int16_t *)p)[i];
    case PRISM_COL_INT32: return ((const int32_t *)p)[i];
    case PRISM_COL_INT64: return ((const int64_t *)p)[i];
    case PRISM_COL_UINT8: return ((const uint8_t *)p)[i];
    case PRISM_COL_UINT16: return ((const uint16_t *)p)[i];
    case PRISM_COL_UINT32: return ((const uint32_t *)p)[i];
    case PRISM_COL_UINT64: return ((const uint64_t *)p)[i];
    case PRISM_COL_FLOAT32: return ((const float *)p)[i];
    case PRISM_COL_FLOAT64: return ((const double *)p)[i];
    default: return 0;
    }
}

/* x converted to an integer in [lo, hi]: truncated toward zero, saturating,
 * NaN as 0 (C leaves out-of-range conversions undefined). */
static long double saturate(long double x, long double lo, long double hi)
{
    if (isnan(x))
        return 0;
    x = truncl(x);
    return x < lo ? lo : x > hi ? hi : x;
}

static void put_num(void *p, prism_coltype t, size_t i, long double x)
{
    switch (t) {
    case PRISM_COL_UINT8: ((uint8_t *)p)[i] = (uint8_t)saturate(x, 0, UINT8_MAX); break;
    case PRISM_COL_INT32: ((int32_t *)p)[i] = (int32_t)saturate(x, INT32_MIN, INT32_MAX); break;
    case PRISM_COL_INT64:
        /* INT64_MAX is not a long double exactly below 2^63: compare first */
        ((int64_t *)p)[i] =
            x >= 9223372036854775807.0L ? INT64_MAX : (int64_t)saturate(x, INT64_MIN, INT64_MAX);
        break;
    case PRISM_COL_FLOAT32: ((float *)p)[i] = (float)x; break;
    case PRISM_COL_FLOAT64: ((double *)p)[i] = (double)x; break;
    default: break;
    }
}

static prism_coltype dtype_of(const char *name)
{
    static const struct {
        const char *name;
        prism_coltype t;
    } map[] = {{"uint8", PRISM_COL_UINT8},
               {"int32", PRISM_COL_INT32},
               {"int64", PRISM_COL_INT64},
               {"float32", PRISM_COL_FLOAT32},
               {"float64", PRISM_COL_FLOAT64}};
    for (size_t i = 0; name && i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(map[i].name, name))
            return map[i].t;
    return 0;
}

/* The numeric column `name` of `in`: its view, element type and elements. */
typedef struct num_col {
    long index;
    prism_column_view v;
    prism_coltype elem; /* the type of each element */
    size_t per_row;     /* elements per row: 1, or a tensor's list size */
    size_t first;       /* index of row 0's first element in v.values */
} num_col;

static int find_numeric(const prism_block *in, const char *fn, const char *name, num_col *c,
                        char *err, size_t n)
{
    c->index = prism_block_column_index(in, name);
    if (c->index < 0) {
        snprintf(err, n, "%s: no column \"%s\"", fn, name);
        return -1;
    }
    prism_block_column(in, (size_t)c->index, &c->v);
    if (c->v.type == PRISM_COL_TENSOR) {
        c->elem = c->v.elem;
        c->per_row = c->v.list_size;
    } else if (numeric(c->v.type) || c->v.type == PRISM_COL_BOOL) {
        c->elem = c->v.type;
        c->per_row = 1;
    } else {
        snprintf(err, n, "%s: column \"%s\" holds %s, not numbers", fn, name,
                 prism_coltype_name(c->v.type));
        return -1;
    }
    c->first = c->v.offset * c->per_row;
    return 0;
}

/* A one-column block named `name` shaped like `c` (a tensor keeps its shape)
 * with elements of `t` in `values` (rows * per_row of them) and `c`'s
 * validity. */
static int one_column(const prism_block *in, const num_col *c, const char *name, prism_coltype t,
                      const void *values, prism_block **out, char *err, size_t n)
{
    prism_block_schema *s = NULL;
    prism_block_builder *b = NULL;
    const prism_block_schema *ins = prism_block_get_schema(in);
    size_t rows = prism_block_rows(in);
    prism_block_status st = prism_block_schema_create(&s);
    if (st == PRISM_BLOCK_OK)
        st = c->v.type == PRISM_COL_TENSOR
                 ? prism_block_schema_add_tensor(s, name, t,
                                                 prism_block_schema_ndim(ins, (size_t)c->index),
                                                 prism_block_schema_shape(ins, (size_t)c->index))
                 : prism_block_schema_add(s, name, t);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_create(s, &b);
    /* A validity bitmap is borrowed from bit 0: a view's that starts inside
     * a byte is copied to start there. */
    uint8_t *valid = NULL;
    const uint8_t *validity = c->v.validity;
    if (st == PRISM_BLOCK_OK && validity && c->v.offset % 8) {
        valid = calloc(rows / 8 + 1, 1);
        if (!valid)
            st = PRISM_BLOCK_ENOMEM;
        for (size_t r = 0; valid && r < rows; r++)
            if (!prism_block_is_null(in, (size_t)c->index, r))
                valid[r / 8] |= (uint8_t)(1u << (r % 8));
        validity = valid;
    } else if (validity) {
        validity += c->v.offset / 8;
    }
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_set_fixed(b, 0, values, rows, validity);
    char why[256] = "";
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_finish(b, out, why, sizeof why);
    if (st != PRISM_BLOCK_OK)
        snprintf(err, n, "cannot build column \"%s\": %s %s", name, prism_block_strerror(st), why);
    free(valid);
    prism_block_builder_destroy(b);
    prism_block_schema_destroy(s);
    return st == PRISM_BLOCK_OK ? 0 : -1;
}

/* Replaces column c by `values` of type `t`. */
static int replace(const prism_block *in, const num_col *c, prism_coltype t, const void *values,
                   prism_block **out, char *err, size_t n)
{
    const char *name = prism_block_schema_name(prism_block_get_schema(in), (size_t)c->index);
    prism_block *col = NULL;
    if (one_column(in, c, name, t, values, &col, err, n) != 0)
        return -1;
    prism_block_status st = data_block_with_column(in, name, col, out, err, n);
    prism_block_destroy(col);
    return st == PRISM_BLOCK_OK ? 0 : -1;
}

/* cast(column, dtype): the column's numbers (or a tensor's elements) as
 * `dtype`; to an integer type truncated toward zero and saturated. */
static int run_cast(const json_t *args, const prism_block *in, prism_block **out, char *err,
                    size_t n)
{
    const char *name = json_string_value(json_object_get(args, "column"));
    prism_coltype t = dtype_of(json_string_value(json_object_get(args, "dtype")));
    num_col c;
    if (!t) {
        snprintf(err, n, "cast: \"dtype\" must be uint8, int32, int64, float32 or float64");
        return -1;
    }
    if (find_numeric(in, "cast", name ? name : "image", &c, err, n) != 0)
        return -1;
    size_t count = prism_block_rows(in) * c.per_row;
    void *values = malloc(count * prism_coltype_width(t) + 1);
    if (!values) {
        snprintf(err, n, "cast: out of memory");
        return -1;
    }
    for (size_t i = 0; i < count; i++)
        put_num(values, t, i, get_num(c.v.values, c.elem, c.first + i));
    int rc = replace(in, &c, t, values, out, err, n);
    free(values);
    return rc;
}

/* normalize's mean and std: k (1-4) of each. 0, or -1 with `err`. */
static int normalize_args(const json_t *args, double m[4], double d[4], size_t *k, char *err,
                          size_t n)
{
    const json_t *mean = json_object_get(args, "mean"), *sd = json_object_get(args, "std");
    *k = json_array_size(mean);
    if (*k == 0 || *k != json_array_size(sd) || *k > 4) {
        snprintf(err, n, "normalize: \"mean\" and \"std\" must be 1-4 numbers each, as many");
        return -1;
    }
    for (size_t j = 0; j < *k; j++) {
        m[j] = json_number_value(json_array_get(mean, j));
        d[j] = json_number_value(json_array_get(sd, j));
        if (!(d[j] > 0)) {
            snprintf(err, n, "normalize: \"std\" must be above 0");
            return -1;
        }
    }
    return 0;
}

int data_normalize_table(const json_t *args, float table[4][256], size_t *k, char *err, size_t n)
{
    double m[4], d[4];
    if (normalize_args(args, m, d, k, err, n) != 0)
        return -1;
    for (size_t j = 0; j < *k; j++)
        for (int x = 0; x < 256; x++)
            table[j][x] = (float)(((double)x - m[j]) / d[j]);
    return 0;
}

int data_normalize_fits(const json_t *args, size_t k, size_t channels, char *err, size_t n)
{
    if (k <= 1 || channels == k)
        return 0;
    const char *name = json_string_value(json_object_get(args, "column"));
    snprintf(err, n,
             "normalize: column \"%s\" has %zu channel%s (its last dimension) but "
             "\"mean\" has %zu numbers",
             name ? name : "image", channels, channels == 1 ? "" : "s", k);
    return -1;
}

/* normalize(column, mean, std): (x - mean) / std as float32; one mean and
 * std for every element, or one per channel (a tensor's last dimension). */
static int run_normalize(const json_t *args, const prism_block *in, prism_block **out, char *err,
                         size_t n)
{
    const char *name = json_string_value(json_object_get(args, "column"));
    size_t k;
    double m[4], d[4];
    num_col c;
    if (normalize_args(args, m, d, &k, err, n) != 0 ||
        find_numeric(in, "normalize", name ? name : "image", &c, err, n) != 0)
        return -1;
    const prism_block_schema *s = prism_block_get_schema(in);
    size_t ndim = c.v.type == PRISM_COL_TENSOR ? prism_block_schema_ndim(s, (size_t)c.index) : 0;
    size_t channels = ndim ? (size_t)prism_block_schema_shape(s, (size_t)c.index)[ndim - 1] : 1;
    if (data_normalize_fits(args, k, channels, err, n) != 0)
        return -1;
    size_t count = prism_block_rows(in) * c.per_row;
    float *values = malloc(count * sizeof *values + 1);
    if (!values) {
        snprintf(err, n, "normalize: out of memory");
        return -1;
    }
    if (c.elem == PRISM_COL_UINT8) { /* images: a table of the 256 values per channel */
        float table[4][256];
        const uint8_t *px = (const uint8_t *)c.v.values + c.first;
        data_normalize_table(args, table, &k, err, n);
        for (size_t i = 0; i < count; i++)
            values[i] = table[k > 1 ? i % channels : 0][px[i]];
    } else {
        for (size_t i = 0; i < count; i++) {
            size_t j = k > 1 ? i % channels : 0;
            values[i] = (float)(((double)get_num(c.v.values, c.elem, c.first + i) - m[j]) / d[j]);
        }
    }
    int rc = replace(in, &c, PRISM_COL_FLOAT32, values, out, err, n);
    free(values);
    return rc;
}

int data_builtin_known(const char *fn)
{
    return !strcmp(fn, "cast") || !strcmp(fn, "normalize") || data_image_builtin_known(fn);
}

int data_builtin_run(const char *fn, const json_t *args, const prism_block *in, data_skip *skip,
                     prism_block **out, char *err, size_t n)
{
    if (json_is_true(json_object_get(args, "fused"))) {
        /* done by its run's first builtin, in the same pass (data_transforms.c) */
        *out = prism_block_ref((prism_block *)in);
        return *out ? 0 : -1;
    }
    if (!strcmp(fn, "cast"))
        return run_cast(args, in, out, err, n);
    if (!strcmp(fn, "normalize"))
        return run_normalize(args, in, out, err, n);
    return data_image_builtin_run(fn, args, in, skip, out, err, n);
}
