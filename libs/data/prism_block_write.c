/* The writer every serialized block comes from, and the builder on top of
 * it. The writer lays a block out from runs of rows of each column (a
 * builder's buffers, views of other blocks, Arrow arrays) and copies each
 * run of each buffer once: memcpy, unless offsets must be rebased or bits
 * shifted. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "prism_block_internal.h"
#include "prism_json_text.h"

static uint64_t align64(uint64_t n)
{
    return (n + PRISM_BLOCK_ALIGN - 1) & ~(uint64_t)(PRISM_BLOCK_ALIGN - 1);
}

static bool is_varlen(prism_coltype t) { return pb_is_varlen(t); }

static void st16(uint8_t *p, uint16_t v) { memcpy(p, &v, sizeof v); }

static void st32(uint8_t *p, uint32_t v) { memcpy(p, &v, sizeof v); }

static void st64(uint8_t *p, uint64_t v) { memcpy(p, &v, sizeof v); }

/* ---------- bitmaps ---------- */

static inline void set_bit(uint8_t *bits, size_t i) { bits[i >> 3] |= (uint8_t)(1u << (i & 7)); }

/* Copies n bits from src at bit `s` to dst at bit `d`; dst's bits there are zero. */
static void copy_bits(uint8_t *dst, size_t d, const uint8_t *src, size_t s, size_t n)
{
    size_t i = 0;
    if ((d & 7) == 0 && n >= 8) {
        size_t bytes = n / 8, sh = s & 7;
        const uint8_t *in = src + s / 8;
        uint8_t *o = dst + d / 8;
        if (sh == 0) {
            memcpy(o, in, bytes);
        } else { /* output byte k takes bits s+8k..s+8k+7: in bytes k and k+1, both inside n */
            for (size_t k = 0; k < bytes; k++)
                o[k] = (uint8_t)((in[k] >> sh) | (in[k + 1] << (8 - sh)));
        }
        i = bytes * 8;
    }
    for (; i < n; i++)
        if (pb_bit(src, s + i))
            set_bit(dst, d + i);
}

/* Sets n bits of dst from bit `d`. */
static void set_bits(uint8_t *dst, size_t d, size_t n)
{
    size_t i = 0;
    for (; i < n && ((d + i) & 7); i++)
        set_bit(dst, d + i);
    if (n - i >= 8) {
        memset(dst + (d + i) / 8, 0xff, (n - i) / 8);
        i += (n - i) / 8 * 8;
    }
    for (; i < n; i++)
        set_bit(dst, d + i);
}

/* ---------- the writer ---------- */

static size_t record_size(const pb_field *f)
{
    return 64 + 8 * f->ndim + ((f->name_len + 7) & ~(size_t)7);
}

size_t prism_block_schema_data_offset(const prism_block_schema *s)
{
    size_t len = 0;
    for (size_t c = 0; s && c < s->n; c++)
        len += record_size(&s->f[c]);
    return (size_t)align64(PRISM_BLOCK_HEADER_SIZE + len);
}

void pb_plan_free(pb_plan *plan)
{
    free(plan->cols);
    plan->cols = NULL;
}

prism_block_status pb_plan_make(const prism_block_schema *s, const pb_seg *segs, size_t nseg,
                                size_t rows, pb_plan *plan, char *err, size_t errlen)
{
    if (rows > PRISM_BLOCK_MAX_ROWS) {
        pb_err(err, errlen, "%zu rows (at most %u)", rows, PRISM_BLOCK_MAX_ROWS);
        return PRISM_BLOCK_ERANGE;
    }
    memset(plan, 0, sizeof *plan);
    plan->rows = rows;
    plan->cols = calloc(s->n ? s->n : 1, sizeof *plan->cols);
    if (!plan->cols)
        return PRISM_BLOCK_ENOMEM;
    for (size_t c = 0; c < s->n; c++)
        plan->schema_len += record_size(&s->f[c]); /* <= 4096 * (64 + 256 + 1024) */
    uint64_t pos = align64(PRISM_BLOCK_HEADER_SIZE + plan->schema_len);
    for (size_t c = 0; c < s->n; c++) {
        const pb_field *f = &s->f[c];
        pb_colplan *cp = &plan->cols[c];
        uint64_t n = 0, data = 0;
        for (size_t k = 0; k < nseg; k++) {
            const pb_seg *g = &segs[c * nseg + k];
            n += g->rows;
            cp->null_count += g->null_count;
            if (is_varlen(f->type)) {
                const int32_t *o = (const int32_t *)g->values + g->offset;
                data += (uint64_t)(o[g->rows] - o[0]);
            }
        }
        if (n != rows) {
            pb_err(err, errlen, "column %zu ('%s') has %llu rows, the block %zu", c, f->name,
                   (unsigned long long)n, rows);
            pb_plan_free(plan);
            return PRISM_BLOCK_ESTATE;
        }
        if (data > PRISM_BLOCK_MAX_DATA) {
            pb_err(err, errlen, "column %zu ('%s') holds %llu bytes (int32 offsets: at most %u)", c,
                   f->name, (unsigned long long)data, PRISM_BLOCK_MAX_DATA);
            pb_plan_free(plan);
            return PRISM_BLOCK_ERANGE;
        }
        uint64_t bitmap = (rows + 7) / 8;
        cp->len[0] = cp->null_count ? bitmap : 0;
        if (f->type == PRISM_COL_BOOL)
            cp->len[1] = bitmap;
        else if (is_varlen(f->type))
            cp->len[1] = ((uint64_t)rows + 1) * 4;
        else if (__builtin_mul_overflow((uint64_t)rows, (uint64_t)pb_row_width(f), &cp->len[1]))
            cp->len[1] = UINT64_MAX;
        cp->len[2] = data;
        for (int k = 0; k < 3; k++) {
            if (!cp->len[k])
                continue;
            if (cp->len[k] > SIZE_MAX / 4 || pos > SIZE_MAX / 4) {
                pb_err(err, errlen, "column %zu ('%s') is too large", c, f->name);
                pb_plan_free(plan);
                return PRISM_BLOCK_ERANGE;
            }
            cp->off[k] = pos;
            pos = align64(pos + cp->len[k]);
        }
    }
    plan->total = (size_t)pos;
    return PRISM_BLOCK_OK;
}

/* Zeroes the bytes from the end of a buffer to the next 64-byte boundary. */
static void pad(uint8_t *dst, uint64_t end) { memset(dst + end, 0, (size_t)(align64(end) - end)); }

void pb_write(const prism_block_schema *s, const pb_seg *segs, size_t nseg, const pb_plan *plan,
              uint8_t *dst)
{
    memset(dst, 0, PRISM_BLOCK_HEADER_SIZE);
    memcpy(dst, PRISM_BLOCK_MAGIC, 8);
    st16(dst + 8, PRISM_BLOCK_VERSION);
    st32(dst + 12, (uint32_t)s->n);
    st64(dst + 16, plan->rows);
    st64(dst + 24, plan->total);
    st32(dst + 32, (uint32_t)plan->schema_len);
    uint8_t *r = dst + PRISM_BLOCK_HEADER_SIZE;
    for (size_t c = 0; c < s->n; c++) {
        const pb_field *f = &s->f[c];
        const pb_colplan *cp = &plan->cols[c];
        size_t rec = record_size(f);
        memset(r, 0, rec);
        r[0] = (uint8_t)f->type;
        r[1] = (uint8_t)f->elem;
        r[2] = (uint8_t)f->ndim;
        st32(r + 4, (uint32_t)f->name_len);
        st64(r + 8, cp->null_count);
        for (int k = 0; k < 3; k++) {
            st64(r + 16 + 16 * k, cp->off[k]);
            st64(r + 24 + 16 * k, cp->len[k]);
        }
        for (size_t d = 0; d < f->ndim; d++)
            st64(r + 64 + 8 * d, (uint64_t)f->shape[d]);
        memcpy(r + 64 + 8 * f->ndim, f->name, f->name_len);
        r += rec;
    }
    pad(dst, PRISM_BLOCK_HEADER_SIZE + plan->schema_len);
    for (size_t c = 0; c < s->n; c++) {
        const pb_field *f = &s->f[c];
        const pb_colplan *cp = &plan->cols[c];
        const pb_seg *g = &segs[c * nseg];
        if (cp->len[0]) { /* validity: runs without a bitmap are all valid */
            uint8_t *v = dst + cp->off[0];
            memset(v, 0, (size_t)cp->len[0]);
            for (size_t k = 0, at = 0; k < nseg; at += g[k].rows, k++) {
                if (g[k].validity)
                    copy_bits(v, at, g[k].validity, g[k].offset, g[k].rows);
                else
                    set_bits(v, at, g[k].rows);
            }
            pad(dst, cp->off[0] + cp->len[0]);
        }
        uint8_t *out = dst + cp->off[1];
        if (f->type == PRISM_COL_BOOL) {
            memset(out, 0, (size_t)cp->len[1]);
            for (size_t k = 0, at = 0; k < nseg; at += g[k].rows, k++)
                copy_bits(out, at, g[k].values, g[k].offset, g[k].rows);
        } else if (is_varlen(f->type)) {
            int32_t *o = (int32_t *)out, base = 0;
            o[0] = 0;
            uint8_t *data = dst + cp->off[2];
            for (size_t k = 0, at = 0; k < nseg; at += g[k].rows, k++) {
                const int32_t *in = (const int32_t *)g[k].values + g[k].offset;
                int32_t first = in[0], n = in[g[k].rows] - first;
                if (base == first) {
                    if (g[k].rows)
                        memcpy(o + at + 1, in + 1, g[k].rows * 4);
                } else { /* every offset stays within [0, MAX_DATA]: int64 is not needed */
                    for (size_t i = 1; i <= g[k].rows; i++)
                        o[at + i] = in[i] - first + base;
                }
                if (n)
                    memcpy(data + base, g[k].data + first, (size_t)n);
                base += n;
            }
            if (cp->len[2])
                pad(dst, cp->off[2] + cp->len[2]);
        } else {
            size_t w = pb_row_width(f);
            for (size_t k = 0, at = 0; k < nseg; at += g[k].rows, k++)
                if (g[k].rows && w && out + at * w != g[k].values + g[k].offset * w)
                    memcpy(out + at * w, g[k].values + g[k].offset * w, g[k].rows * w);
        }
        if (cp->len[1])
            pad(dst, cp->off[1] + cp->len[1]);
    }
}

prism_block_status pb_write_block(const prism_block_schema *s, const pb_seg *segs, size_t nseg,
                                  size_t rows, prism_block **out, char *err, size_t errlen)
{
    pb_plan plan;
    prism_block_status st = pb_plan_make(s, segs, nseg, rows, &plan, err, errlen);
    if (st)
        return st;
    uint8_t *mem = pb_aligned_alloc(plan.total);
    if (!mem) {
        pb_plan_free(&plan);
        return PRISM_BLOCK_ENOMEM;
    }
    pb_write(s, segs, nseg, &plan, mem);
    size_t total = plan.total;
    pb_plan_free(&plan);
    return pb_open_owned(mem, total, out, err, errlen);
}

/* ---------- the builder ---------- */

enum { COL_EMPTY, COL_APPENDED, COL_SET };

typedef struct bcol {
    int mode;
    size_t rows, nulls;
    bool has_validity;
    uint8_t *validity;
    size_t validity_cap;
    uint8_t *values; /* fixed width, tensor rows, bool bits, or int32 offsets */
    size_t values_len, values_cap;
    uint8_t *data;
    size_t data_len, data_cap;
    pb_seg set; /* COL_SET: the borrowed arrays */
} bcol;

struct prism_block_builder {
    prism_block_schema schema;
    bcol *cols;
};

prism_block_status prism_block_builder_create(const prism_block_schema *schema,
                                              prism_block_builder **out)
{
    if (!schema || !out)
        return PRISM_BLOCK_EINVAL;
    prism_block_builder *b = calloc(1, sizeof *b);
    if (!b)
        return PRISM_BLOCK_ENOMEM;
    b->cols = calloc(schema->n ? schema->n : 1, sizeof *b->cols);
    prism_block_status st = b->cols ? pb_schema_copy_into(schema, &b->schema) : PRISM_BLOCK_ENOMEM;
    if (st) {
        free(b->cols);
        free(b);
        return st;
    }
    *out = b;
    return PRISM_BLOCK_OK;
}

void prism_block_builder_destroy(prism_block_builder *b)
{
    if (!b)
        return;
    for (size_t c = 0; c < b->schema.n; c++) {
        free(b->cols[c].validity);
        free(b->cols[c].values);
        free(b->cols[c].data);
    }
    free(b->cols);
    pb_schema_clear(&b->schema);
    free(b);
}

/* Room for `need` bytes in *p, doubling. What is new is left as it comes:
 * every byte below a column's length is written by its append (bits_grow
 * zeroes, for buffers set a bit at a time). */
static bool grow(uint8_t **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : 64;
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return false;
        n *= 2;
    }
    uint8_t *q = realloc(*p, n);
    if (!q)
        return false;
    *p = q;
    *cap = n;
    return true;
}

/* grow for a bitmap: the new bytes are zero (a bit is only ever set). */
static bool bits_grow(uint8_t **p, size_t *cap, size_t need)
{
    size_t had = *cap;
    if (!grow(p, cap, need))
        return false;
    memset(*p + had, 0, *cap - had);
    return true;
}

prism_block_status prism_block_builder_reserve(prism_block_builder *b, size_t rows)
{
    if (!b || rows > PRISM_BLOCK_MAX_ROWS)
        return PRISM_BLOCK_EINVAL;
    for (size_t c = 0; c < b->schema.n; c++) {
        bcol *k = &b->cols[c];
        const pb_field *f = &b->schema.f[c];
        if (k->mode == COL_SET)
            continue;
        size_t n = k->rows + rows, need;
        if (f->type == PRISM_COL_BOOL)
            need = (n + 7) / 8;
        else if (is_varlen(f->type))
            need = (n + 1) * 4;
        else if (__builtin_mul_overflow(n, pb_row_width(f), &need))
            return PRISM_BLOCK_ERANGE;
        if (!(f->type == PRISM_COL_BOOL ? bits_grow : grow)(&k->values, &k->values_cap, need))
            return PRISM_BLOCK_ENOMEM;
    }
    return PRISM_BLOCK_OK;
}

/* Column `col`'s field when it is of a type `ok` accepts; NULL otherwise. */
static const pb_field *field_of(const prism_block_builder *b, size_t col, bool (*ok)(prism_coltype))
{
    return b && col < b->schema.n && ok(b->schema.f[col].type) ? &b->schema.f[col] : NULL;
}

prism_block_status prism_block_builder_reserve_bytes(prism_block_builder *b, size_t col,
                                                     size_t bytes)
{
    const pb_field *f = field_of(b, col, pb_is_varlen);
    if (!f)
        return PRISM_BLOCK_EINVAL;
    bcol *k = &b->cols[col];
    if (k->mode == COL_SET)
        return PRISM_BLOCK_ESTATE;
    if (bytes > PRISM_BLOCK_MAX_DATA - k->data_len)
        return PRISM_BLOCK_ERANGE;
    return grow(&k->data, &k->data_cap, k->data_len + bytes) ? PRISM_BLOCK_OK : PRISM_BLOCK_ENOMEM;
}

static bool is_bool(prism_coltype t) { return t == PRISM_COL_BOOL; }

static bool is_any(prism_coltype t) { return true; }

static bool is_tensor(prism_coltype t) { return t == PRISM_COL_TENSOR; }

/* The column `col` ready for one more appended row (its type already
 * checked); NULL with *st set if not. */
static bcol *appendable(prism_block_builder *b, size_t col, prism_block_status *st)
{
    bcol *k = &b->cols[col];
    if (k->mode == COL_SET) {
        *st = PRISM_BLOCK_ESTATE;
        return NULL;
    }
    if (k->rows >= PRISM_BLOCK_MAX_ROWS) {
        *st = PRISM_BLOCK_ERANGE;
        return NULL;
    }
    if (k->mode == COL_EMPTY && is_varlen(b->schema.f[col].type)) {
        if (!grow(&k->values, &k->values_cap, 4)) { /* offsets start with 0 */
            *st = PRISM_BLOCK_ENOMEM;
            return NULL;
        }
        memset(k->values, 0, 4);
        k->values_len = 4;
    }
    if (k->has_validity && !bits_grow(&k->validity, &k->validity_cap, (k->rows + 8) / 8)) {
        *st = PRISM_BLOCK_ENOMEM;
        return NULL;
    }
    k->mode = COL_APPENDED;
    return k;
}

/* Records row k->rows as valid and counts it. */
static void row_done(bcol *k)
{
    if (k->has_validity)
        set_bit(k->validity, k->rows);
    k->rows++;
}

static prism_block_status push_values(bcol *k, const void *p, size_t n)
{
    if (n == 0) /* a tensor of no elements: nothing to store, maybe no buffer yet */
        return PRISM_BLOCK_OK;
    if (!grow(&k->values, &k->values_cap, k->values_len + n))
        return PRISM_BLOCK_ENOMEM;
    if (p)
        memcpy(k->values + k->values_len, p, n);
    else
        memset(k->values + k->values_len, 0, n);
    k->values_len += n;
    return PRISM_BLOCK_OK;
}

static prism_block_status push_bit(bcol *k, bool v)
{
    if (!bits_grow(&k->values, &k->values_cap, (k->rows + 8) / 8))
        return PRISM_BLOCK_ENOMEM;
    k->values[k->rows / 8] &= (uint8_t) ~(1u << (k->rows & 7));
    if (v)
        set_bit(k->values, k->rows);
    k->values_len = (k->rows + 8) / 8;
    return PRISM_BLOCK_OK;
}

static prism_block_status push_bytes(bcol *k, const void *p, size_t n)
{
    if (n > PRISM_BLOCK_MAX_DATA - k->data_len)
        return PRISM_BLOCK_ERANGE;
    if (n && !grow(&k->data, &k->data_cap, k->data_len + n))
        return PRISM_BLOCK_ENOMEM;
    int32_t end = (int32_t)(k->data_len + n);
    prism_block_status st = push_values(k, &end, 4);
    if (st)
        return st;
    if (n)
        memcpy(k->data + k->data_len, p, n);
    k->data_len += n;
    return PRISM_BLOCK_OK;
}

prism_block_status prism_block_builder_append_null(prism_block_builder *b, size_t col)
{
    const pb_field *f = field_of(b, col, is_any);
    if (!f)
        return PRISM_BLOCK_EINVAL;
    prism_block_status st = PRISM_BLOCK_OK;
    bcol *k = appendable(b, col, &st);
    if (!k)
        return st;
    if (!k->has_validity) { /* the first null: all rows so far were valid */
        if (!grow(&k->validity, &k->validity_cap, (k->rows + 8) / 8))
            return PRISM_BLOCK_ENOMEM;
        memset(k->validity, 0, k->validity_cap);
        set_bits(k->validity, 0, k->rows);
        k->has_validity = true;
    }
    if (f->type == PRISM_COL_BOOL)
        st = push_bit(k, false);
    else if (is_varlen(f->type))
        st = push_bytes(k, NULL, 0);
    else
        st = push_values(k, NULL, pb_row_width(f));
    if (st)
        return st;
    k->validity[k->rows / 8] &= (uint8_t) ~(1u << (k->rows & 7));
    k->rows++;
    k->nulls++;
    return PRISM_BLOCK_OK;
}

prism_block_status prism_block_builder_append_bool(prism_block_builder *b, size_t col, bool v)
{
    if (!field_of(b, col, is_bool))
        return PRISM_BLOCK_EINVAL;
    prism_block_status st = PRISM_BLOCK_OK;
    bcol *k = appendable(b, col, &st);
    if (!k)
        return st;
    st = push_bit(k, v);
    if (!st)
        row_done(k);
    return st;
}

prism_block_status pb_convert_int(prism_coltype t, bool neg, uint64_t mag, pb_number *v)
{
    uint64_t max_pos, max_neg = 0;
    switch (t) {
    case PRISM_COL_INT8: max_pos = INT8_MAX, max_neg = 128; break;
    case PRISM_COL_INT16: max_pos = INT16_MAX, max_neg = 32768; break;
    case PRISM_COL_INT32: max_pos = INT32_MAX, max_neg = 2147483648u; break;
    case PRISM_COL_INT64: max_pos = INT64_MAX, max_neg = (uint64_t)INT64_MAX + 1; break;
    case PRISM_COL_UINT8: max_pos = UINT8_MAX; break;
    case PRISM_COL_UINT16: max_pos = UINT16_MAX; break;
    case PRISM_COL_UINT32: max_pos = UINT32_MAX; break;
    case PRISM_COL_UINT64: max_pos = UINT64_MAX; break;
    case PRISM_COL_FLOAT32: v->f32 = neg ? -(float)mag : (float)mag; return PRISM_BLOCK_OK;
    case PRISM_COL_FLOAT64: v->f64 = neg ? -(double)mag : (double)mag; return PRISM_BLOCK_OK;
    default: return PRISM_BLOCK_EINVAL;
    }
    if (neg ? mag > max_neg : mag > max_pos)
        return PRISM_BLOCK_ERANGE;
    /* In range, so the two's complement of the magnitude is the value. */
    int64_t sv = neg ? (int64_t)(~mag + 1) : (int64_t)mag;
    switch (t) {
    case PRISM_COL_INT8: v->i8 = (int8_t)sv; break;
    case PRISM_COL_INT16: v->i16 = (int16_t)sv; break;
    case PRISM_COL_INT32: v->i32 = (int32_t)sv; break;
    case PRISM_COL_INT64: v->i64 = sv; break;
    case PRISM_COL_UINT8: v->u8 = (uint8_t)mag; break;
    case PRISM_COL_UINT16: v->u16 = (uint16_t)mag; break;
    case PRISM_COL_UINT32: v->u32 = (uint32_t)mag; break;
    default: v->u64 = mag; break;
    }
    return PRISM_BLOCK_OK;
}

prism_block_status pb_convert_real(prism_coltype t, double d, pb_number *v)
{
    if (t == PRISM_COL_FLOAT64) {
        v->f64 = d;
        return PRISM_BLOCK_OK;
    }
    if (t != PRISM_COL_FLOAT32)
        return PRISM_BLOCK_EINVAL;
    if (isfinite(d) && fabs(d) > FLT_MAX)
        return PRISM_BLOCK_ERANGE; /* a finite value that float cannot hold */
    v->f32 = (float)d;
    return PRISM_BLOCK_OK;
}

static prism_block_status push_number(prism_block_builder *b, size_t col, const pb_number *v)
{
    prism_block_status st = PRISM_BLOCK_OK;
    bcol *k = appendable(b, col, &st);
    if (!k)
        return st;
    st = push_values(k, v, prism_coltype_width(b->schema.f[col].type));
    if (!st)
        row_done(k);
    return st;
}

static prism_block_status append_integer(prism_block_builder *b, size_t col, bool neg, uint64_t mag)
{
    const pb_field *f = field_of(b, col, pb_is_number);
    if (!f)
        return PRISM_BLOCK_EINVAL;
    pb_number v;
    prism_block_status st = pb_convert_int(f->type, neg, mag, &v);
    return st ? st : push_number(b, col, &v);
}

prism_block_status prism_block_builder_append_int(prism_block_builder *b, size_t col, int64_t v)
{
    return append_integer(b, col, v < 0, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
}

prism_block_status prism_block_builder_append_uint(prism_block_builder *b, size_t col, uint64_t v)
{
    return append_integer(b, col, false, v);
}

prism_block_status prism_block_builder_append_float(prism_block_builder *b, size_t col, double v)
{
    const pb_field *f = field_of(b, col, pb_is_number);
    if (!f)
        return PRISM_BLOCK_EINVAL;
    pb_number n;
    prism_block_status st = pb_convert_real(f->type, v, &n);
    return st ? st : push_number(b, col, &n);
}

prism_block_status prism_block_builder_append_bytes(prism_block_builder *b, size_t col,
                                                    const void *p, size_t len)
{
    const pb_field *f = field_of(b, col, pb_is_varlen);
    if (!f || (len && !p))
        return PRISM_BLOCK_EINVAL;
    if (f->type == PRISM_COL_UTF8 && !pb_utf8_valid(p, len))
        return PRISM_BLOCK_EINVAL;
    prism_block_status st = PRISM_BLOCK_OK;
    bcol *k = appendable(b, col, &st);
    if (!k)
        return st;
    st = push_bytes(k, p, len);
    if (!st)
        row_done(k);
    return st;
}

prism_block_status prism_block_builder_append_tensor(prism_block_builder *b, size_t col,
                                                     const void *p, size_t nbytes)
{
    const pb_field *f = field_of(b, col, is_tensor);
    if (!f || nbytes != pb_row_width(f) || (nbytes && !p))
        return PRISM_BLOCK_EINVAL;
    prism_block_status st = PRISM_BLOCK_OK;
    bcol *k = appendable(b, col, &st);
    if (!k)
        return st;
    st = push_values(k, p ? p : pb_empty, nbytes);
    if (!st)
        row_done(k);
    return st;
}

/* The column `col` ready to take borrowed arrays of `rows` rows; NULL with *st if not. */
static bcol *settable(prism_block_builder *b, size_t col, size_t rows, prism_block_status *st)
{
    if (!b || col >= b->schema.n || rows > PRISM_BLOCK_MAX_ROWS) {
        *st = !b || col >= b->schema.n ? PRISM_BLOCK_EINVAL : PRISM_BLOCK_ERANGE;
        return NULL;
    }
    bcol *k = &b->cols[col];
    if (k->mode != COL_EMPTY) {
        *st = PRISM_BLOCK_ESTATE;
        return NULL;
    }
    return k;
}

static void set_column(bcol *k, const void *values, const void *data, size_t rows,
                       const uint8_t *validity)
{
    size_t nulls = validity ? pb_count_zeros(validity, 0, rows) : 0;
    k->set = (pb_seg){.validity = nulls ? validity : NULL,
                      .values = values ? values : pb_empty,
                      .data = data ? data : pb_empty,
                      .offset = 0,
                      .rows = rows,
                      .null_count = nulls};
    k->mode = COL_SET;
    k->rows = rows;
    k->nulls = nulls;
}

prism_block_status prism_block_builder_set_fixed(prism_block_builder *b, size_t col,
                                                 const void *values, size_t rows,
                                                 const uint8_t *validity)
{
    prism_block_status st = PRISM_BLOCK_OK;
    bcol *k = settable(b, col, rows, &st);
    if (!k)
        return st;
    const pb_field *f = &b->schema.f[col];
    size_t w = pb_row_width(f);
    if (!(pb_is_number(f->type) || f->type == PRISM_COL_TENSOR) || (rows && w && !values))
        return PRISM_BLOCK_EINVAL;
    size_t bytes;
    if (__builtin_mul_overflow(rows, w, &bytes))
        return PRISM_BLOCK_ERANGE;
    set_column(k, values, NULL, rows, validity);
    return PRISM_BLOCK_OK;
}

prism_block_status prism_block_builder_set_bool(prism_block_builder *b, size_t col,
                                                const uint8_t *bits, size_t rows,
                                                const uint8_t *validity)
{
    prism_block_status st = PRISM_BLOCK_OK;
    bcol *k = settable(b, col, rows, &st);
    if (!k)
        return st;
    if (b->schema.f[col].type != PRISM_COL_BOOL || (rows && !bits))
        return PRISM_BLOCK_EINVAL;
    set_column(k, bits, NULL, rows, validity);
    return PRISM_BLOCK_OK;
}

prism_block_status prism_block_builder_set_varlen(prism_block_builder *b, size_t col,
                                                  const int32_t *offsets, const void *data,
                                                  size_t rows, const uint8_t *validity)
{
    prism_block_status st = PRISM_BLOCK_OK;
    bcol *k = settable(b, col, rows, &st);
    if (!k)
        return st;
    if (!is_varlen(b->schema.f[col].type) || !offsets)
        return PRISM_BLOCK_EINVAL;
    if (offsets[0] < 0)
        return PRISM_BLOCK_ERANGE;
    for (size_t i = 0; i < rows; i++)
        if (offsets[i + 1] < offsets[i])
            return PRISM_BLOCK_ERANGE;
    if (offsets[rows] > offsets[0] && !data)
        return PRISM_BLOCK_EINVAL;
    set_column(k, offsets, data, rows, validity);
    return PRISM_BLOCK_OK;
}

size_t prism_block_builder_rows(const prism_block_builder *b, size_t col)
{
    return b && col < b->schema.n ? b->cols[col].rows : 0;
}

/* One run per column: the builder's buffers or the borrowed arrays; the
 * block's rows (those of column 0, 0 without columns). */
static pb_seg *builder_segs(const prism_block_builder *b, size_t *rows)
{
    pb_seg *segs = malloc((b->schema.n ? b->schema.n : 1) * sizeof *segs);
    if (!segs)
        return NULL;
    for (size_t c = 0; c < b->schema.n; c++) {
        const bcol *k = &b->cols[c];
        if (k->mode == COL_SET) {
            segs[c] = k->set;
            continue;
        }
        segs[c] = (pb_seg){.validity = k->nulls ? k->validity : NULL,
                           .values = k->mode == COL_APPENDED ? k->values : pb_empty,
                           .data = k->data ? k->data : pb_empty,
                           .offset = 0,
                           .rows = k->rows,
                           .null_count = k->nulls};
    }
    *rows = b->schema.n ? b->cols[0].rows : 0;
    return segs;
}

static void builder_reset(prism_block_builder *b)
{
    for (size_t c = 0; c < b->schema.n; c++) {
        bcol *k = &b->cols[c];
        k->mode = COL_EMPTY;
        k->rows = k->nulls = 0;
        k->has_validity = false;
        k->values_len = k->data_len = 0;
        memset(&k->set, 0, sizeof k->set);
    }
}

prism_block_status pb_write_size(const prism_block_schema *s, const pb_seg *segs, size_t nseg,
                                 size_t rows, size_t *size, char *err, size_t errlen)
{
    pb_plan plan;
    prism_block_status st = pb_plan_make(s, segs, nseg, rows, &plan, err, errlen);
    if (!st) {
        *size = plan.total;
        pb_plan_free(&plan);
    }
    return st;
}

prism_block_status pb_write_into(const prism_block_schema *s, const pb_seg *segs, size_t nseg,
                                 size_t rows, void *dst, size_t cap, size_t *written, char *err,
                                 size_t errlen)
{
    if (!dst || (uintptr_t)dst % 8) { /* offsets are stored as int32 in place */
        pb_err(err, errlen, "no destination, or one that is not 8-byte aligned");
        return PRISM_BLOCK_EINVAL;
    }
    pb_plan plan;
    prism_block_status st = pb_plan_make(s, segs, nseg, rows, &plan, err, errlen);
    if (st)
        return st;
    if (plan.total > cap) {
        pb_err(err, errlen, "the block needs %zu bytes, %zu given", plan.total, cap);
        st = PRISM_BLOCK_ERANGE;
    } else {
        pb_write(s, segs, nseg, &plan, dst);
        if (written)
            *written = plan.total;
    }
    pb_plan_free(&plan);
    return st;
}

prism_block_status prism_block_builder_size(const prism_block_builder *b, size_t *size, char *err,
                                            size_t errlen)
{
    if (!b || !size)
        return PRISM_BLOCK_EINVAL;
    size_t rows;
    pb_seg *segs = builder_segs(b, &rows);
    if (!segs)
        return PRISM_BLOCK_ENOMEM;
    prism_block_status st = pb_write_size(&b->schema, segs, 1, rows, size, err, errlen);
    free(segs);
    return st;
}

prism_block_status prism_block_builder_finish_into(prism_block_builder *b, void *dst, size_t cap,
                                                   size_t *written, char *err, size_t errlen)
{
    if (!b)
        return PRISM_BLOCK_EINVAL;
    size_t rows;
    pb_seg *segs = builder_segs(b, &rows);
    if (!segs)
        return PRISM_BLOCK_ENOMEM;
    prism_block_status st =
        pb_write_into(&b->schema, segs, 1, rows, dst, cap, written, err, errlen);
    free(segs);
    if (!st)
        builder_reset(b);
    return st;
}

prism_block_status prism_block_builder_finish(prism_block_builder *b, prism_block **out, char *err,
                                              size_t errlen)
{
    if (!b || !out)
        return PRISM_BLOCK_EINVAL;
    size_t rows;
    pb_seg *segs = builder_segs(b, &rows);
    if (!segs)
        return PRISM_BLOCK_ENOMEM;
    prism_block_status st = pb_write_block(&b->schema, segs, 1, rows, out, err, errlen);
    free(segs);
    if (!st)
        builder_reset(b);
    return st;
}
