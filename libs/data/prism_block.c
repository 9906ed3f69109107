/* Blocks: types, schemas, the reader (every check of prism_block_open),
 * accessors, views, and the operations built on the writer (serialize,
 * concat). The writer and the builder are in prism_block_write.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prism_block_internal.h"
#include "prism_json_text.h"

_Alignas(PRISM_BLOCK_ALIGN) const uint8_t pb_empty[PRISM_BLOCK_ALIGN];

void pb_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void *pb_aligned_alloc(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, PRISM_BLOCK_ALIGN, n ? n : PRISM_BLOCK_ALIGN) != 0)
        return NULL;
    return p;
}

const char *prism_block_strerror(prism_block_status st)
{
    switch (st) {
    case PRISM_BLOCK_OK: return "ok";
    case PRISM_BLOCK_EINVAL: return "invalid argument";
    case PRISM_BLOCK_ENOMEM: return "out of memory";
    case PRISM_BLOCK_ECORRUPT: return "not a valid block";
    case PRISM_BLOCK_ERANGE: return "value or size out of range";
    case PRISM_BLOCK_ESCHEMA: return "schema mismatch";
    case PRISM_BLOCK_ESTATE: return "builder columns incomplete or mixed";
    case PRISM_BLOCK_EJSON: return "JSON is not rows of a block";
    case PRISM_BLOCK_EARROW: return "unsupported Arrow data";
    }
    return "unknown status";
}

/* ---------- types ---------- */

static const struct {
    const char *name, *arrow;
    size_t width;
} types[] = {
    [PRISM_COL_BOOL] = {"bool", "b", 0},       [PRISM_COL_INT8] = {"int8", "c", 1},
    [PRISM_COL_INT16] = {"int16", "s", 2},     [PRISM_COL_INT32] = {"int32", "i", 4},
    [PRISM_COL_INT64] = {"int64", "l", 8},     [PRISM_COL_UINT8] = {"uint8", "C", 1},
    [PRISM_COL_UINT16] = {"uint16", "S", 2},   [PRISM_COL_UINT32] = {"uint32", "I", 4},
    [PRISM_COL_UINT64] = {"uint64", "L", 8},   [PRISM_COL_FLOAT32] = {"float32", "f", 4},
    [PRISM_COL_FLOAT64] = {"float64", "g", 8}, [PRISM_COL_UTF8] = {"utf8", "u", 0},
    [PRISM_COL_BINARY] = {"binary", "z", 0},   [PRISM_COL_TENSOR] = {"tensor", NULL, 0},
};

static bool known(prism_coltype t) { return t >= PRISM_COL_BOOL && t <= PRISM_COL_TENSOR; }

const char *prism_coltype_name(prism_coltype t) { return known(t) ? types[t].name : NULL; }

prism_coltype prism_coltype_parse(const char *name)
{
    for (int t = PRISM_COL_BOOL; name && t <= PRISM_COL_TENSOR; t++)
        if (!strcmp(name, types[t].name))
            return (prism_coltype)t;
    return 0;
}

size_t prism_coltype_width(prism_coltype t) { return known(t) ? types[t].width : 0; }

const char *prism_coltype_arrow_format(prism_coltype t) { return known(t) ? types[t].arrow : NULL; }

bool pb_is_varlen(prism_coltype t) { return t == PRISM_COL_UTF8 || t == PRISM_COL_BINARY; }

bool pb_is_number(prism_coltype t) { return t >= PRISM_COL_INT8 && t <= PRISM_COL_FLOAT64; }

size_t pb_row_width(const pb_field *f)
{
    if (f->type == PRISM_COL_TENSOR)
        return f->list_size * types[f->elem].width; /* within limits: checked when added */
    return prism_coltype_width(f->type);
}

/* ---------- schemas ---------- */

void pb_schema_clear(prism_block_schema *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->f[i].name);
    free(s->f);
    s->f = NULL;
    s->n = s->cap = 0;
}

prism_block_status pb_schema_push(prism_block_schema *s, const char *name, size_t name_len,
                                  prism_coltype type, prism_coltype elem, size_t ndim,
                                  const int64_t *shape)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        pb_field *f = realloc(s->f, cap * sizeof *f);
        if (!f)
            return PRISM_BLOCK_ENOMEM;
        s->f = f;
        s->cap = cap;
    }
    pb_field *f = &s->f[s->n];
    memset(f, 0, sizeof *f);
    f->name = malloc(name_len + 1);
    if (!f->name)
        return PRISM_BLOCK_ENOMEM;
    memcpy(f->name, name, name_len);
    f->name[name_len] = 0;
    f->name_len = name_len;
    f->type = type;
    if (type == PRISM_COL_TENSOR) {
        f->elem = elem;
        f->ndim = ndim;
        f->list_size = 1;
        for (size_t d = 0; d < ndim; d++) {
            f->shape[d] = shape[d];
            f->list_size *= (size_t)shape[d]; /* the caller checked the product */
        }
    }
    s->n++;
    return PRISM_BLOCK_OK;
}

prism_block_status pb_schema_copy_into(const prism_block_schema *s, prism_block_schema *dst)
{
    memset(dst, 0, sizeof *dst);
    for (size_t i = 0; i < s->n; i++) {
        const pb_field *f = &s->f[i];
        prism_block_status st =
            pb_schema_push(dst, f->name, f->name_len, f->type, f->elem, f->ndim, f->shape);
        if (st) {
            pb_schema_clear(dst);
            return st;
        }
    }
    return PRISM_BLOCK_OK;
}

prism_block_status prism_block_schema_create(prism_block_schema **out)
{
    if (!out)
        return PRISM_BLOCK_EINVAL;
    prism_block_schema *s = calloc(1, sizeof *s);
    if (!s)
        return PRISM_BLOCK_ENOMEM;
    *out = s;
    return PRISM_BLOCK_OK;
}

void prism_block_schema_destroy(prism_block_schema *s)
{
    if (!s)
        return;
    pb_schema_clear(s);
    free(s);
}

static prism_block_status check_new_name(const prism_block_schema *s, const char *name)
{
    if (!s || !name)
        return PRISM_BLOCK_EINVAL;
    size_t n = strlen(name);
    if (n == 0 || n > PRISM_BLOCK_MAX_NAME || !prism_utf8_valid(name, n))
        return PRISM_BLOCK_EINVAL;
    if (s->n >= PRISM_BLOCK_MAX_COLUMNS)
        return PRISM_BLOCK_ERANGE;
    if (prism_block_schema_find(s, name) >= 0)
        return PRISM_BLOCK_ESCHEMA;
    return PRISM_BLOCK_OK;
}

prism_block_status prism_block_schema_add(prism_block_schema *s, const char *name,
                                          prism_coltype type)
{
    prism_block_status st = check_new_name(s, name);
    if (st)
        return st;
    if (!known(type) || type == PRISM_COL_TENSOR)
        return PRISM_BLOCK_EINVAL;
    return pb_schema_push(s, name, strlen(name), type, 0, 0, NULL);
}

/* The product of a shape, or false when a dimension is negative or the
 * product passes PRISM_BLOCK_MAX_LIST. */
static bool shape_product(const int64_t *shape, size_t ndim, size_t *out)
{
    uint64_t p = 1;
    for (size_t d = 0; d < ndim; d++) {
        if (shape[d] < 0 || (uint64_t)shape[d] > PRISM_BLOCK_MAX_LIST)
            return false;
        p *= (uint64_t)shape[d]; /* both <= 2^31: no overflow */
        if (p > PRISM_BLOCK_MAX_LIST)
            return false;
    }
    *out = (size_t)p;
    return true;
}

prism_block_status prism_block_schema_add_tensor(prism_block_schema *s, const char *name,
                                                 prism_coltype elem, size_t ndim,
                                                 const int64_t *shape)
{
    prism_block_status st = check_new_name(s, name);
    if (st)
        return st;
    if (!pb_is_number(elem) || ndim == 0 || ndim > PRISM_BLOCK_MAX_DIMS || !shape)
        return PRISM_BLOCK_EINVAL;
    size_t n;
    for (size_t d = 0; d < ndim; d++)
        if (shape[d] < 0)
            return PRISM_BLOCK_EINVAL;
    if (!shape_product(shape, ndim, &n) || n * types[elem].width > SIZE_MAX / 2)
        return PRISM_BLOCK_ERANGE;
    return pb_schema_push(s, name, strlen(name), PRISM_COL_TENSOR, elem, ndim, shape);
}

prism_block_status prism_block_schema_copy(const prism_block_schema *s, prism_block_schema **out)
{
    if (!s || !out)
        return PRISM_BLOCK_EINVAL;
    prism_block_schema *c = calloc(1, sizeof *c);
    if (!c)
        return PRISM_BLOCK_ENOMEM;
    prism_block_status st = pb_schema_copy_into(s, c);
    if (st) {
        free(c);
        return st;
    }
    *out = c;
    return PRISM_BLOCK_OK;
}

/* Why fields differ, or NULL when they are equal. */
static const char *field_diff(const pb_field *a, const pb_field *b)
{
    if (a->name_len != b->name_len || memcmp(a->name, b->name, a->name_len))
        return "names differ";
    if (a->type != b->type)
        return "types differ";
    if (a->type == PRISM_COL_TENSOR) {
        if (a->elem != b->elem)
            return "tensor element types differ";
        if (a->ndim != b->ndim || memcmp(a->shape, b->shape, a->ndim * sizeof a->shape[0]))
            return "tensor shapes differ";
    }
    return NULL;
}

bool prism_block_schema_equal(const prism_block_schema *a, const prism_block_schema *b)
{
    if (!a || !b || a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (field_diff(&a->f[i], &b->f[i]))
            return false;
    return true;
}

size_t prism_block_schema_columns(const prism_block_schema *s) { return s ? s->n : 0; }

long prism_block_schema_find(const prism_block_schema *s, const char *name)
{
    if (!s || !name)
        return -1;
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->f[i].name, name))
            return (long)i;
    return -1;
}

static const pb_field *field_at(const prism_block_schema *s, size_t i)
{
    return s && i < s->n ? &s->f[i] : NULL;
}

const char *prism_block_schema_name(const prism_block_schema *s, size_t i)
{
    const pb_field *f = field_at(s, i);
    return f ? f->name : NULL;
}

prism_coltype prism_block_schema_type(const prism_block_schema *s, size_t i)
{
    const pb_field *f = field_at(s, i);
    return f ? f->type : 0;
}

prism_coltype prism_block_schema_elem(const prism_block_schema *s, size_t i)
{
    const pb_field *f = field_at(s, i);
    return f ? f->elem : 0;
}

size_t prism_block_schema_ndim(const prism_block_schema *s, size_t i)
{
    const pb_field *f = field_at(s, i);
    return f ? f->ndim : 0;
}

const int64_t *prism_block_schema_shape(const prism_block_schema *s, size_t i)
{
    const pb_field *f = field_at(s, i);
    return f && f->type == PRISM_COL_TENSOR ? f->shape : NULL;
}

size_t prism_block_schema_list_size(const prism_block_schema *s, size_t i)
{
    const pb_field *f = field_at(s, i);
    return f ? f->list_size : 0;
}

prism_block_status prism_block_schema_arrow_format(const prism_block_schema *s, size_t i, char *buf,
                                                   size_t buflen)
{
    const pb_field *f = field_at(s, i);
    if (!f || !buf)
        return PRISM_BLOCK_EINVAL;
    int n = f->type == PRISM_COL_TENSOR ? snprintf(buf, buflen, "+w:%zu", f->list_size)
                                        : snprintf(buf, buflen, "%s", types[f->type].arrow);
    return n < 0 || (size_t)n >= buflen ? PRISM_BLOCK_ERANGE : PRISM_BLOCK_OK;
}

/* ---------- the reader ---------- */

static uint16_t ld16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint32_t ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint64_t ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint64_t align64(uint64_t n)
{
    return (n + PRISM_BLOCK_ALIGN - 1) & ~(uint64_t)(PRISM_BLOCK_ALIGN - 1);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

size_t pb_count_zeros(const uint8_t *bits, size_t offset, size_t n)
{
    size_t ones = 0, i = 0;
    for (; i < n && ((offset + i) & 7); i++) /* up to a byte boundary */
        ones += pb_bit(bits, offset + i);
    const uint8_t *p = bits + (offset + i) / 8;
    for (; i + 64 <= n; i += 64, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        ones += (size_t)__builtin_popcountll(w);
    }
    for (; i < n; i++)
        ones += pb_bit(bits, offset + i);
    return n - ones;
}

bool pb_utf8_valid(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = p[i] ? prism_utf8_seq(p + i, n - i) : 1;
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

static int cmp_names(const void *a, const void *b)
{
    const pb_field *x = *(const pb_field *const *)a, *y = *(const pb_field *const *)b;
    return strcmp(x->name, y->name);
}

#define CORRUPT(...)                                                                               \
    do {                                                                                           \
        pb_err(err, errlen, __VA_ARGS__);                                                          \
        return PRISM_BLOCK_ECORRUPT;                                                               \
    } while (0)

/* The checks of one column's buffers; `*prev_end` is where the previous
 * buffer ended (buffers are in order and do not overlap). */
static prism_block_status parse_buffers(const uint8_t *p, size_t len, uint64_t rows,
                                        const pb_field *f, const uint8_t *rec, unsigned flags,
                                        uint64_t *prev_end, pb_col *col, size_t ci, char *err,
                                        size_t errlen)
{
    static const char *const what[3] = {"validity", "values", "data"};
    uint64_t off[3], blen[3], want[3] = {0, 0, 0};
    uint64_t nulls = ld64(rec + 8);
    for (int k = 0; k < 3; k++) {
        off[k] = ld64(rec + 16 + 16 * k);
        blen[k] = ld64(rec + 24 + 16 * k);
    }
    if (nulls > rows)
        CORRUPT("column %zu ('%s'): %llu nulls in %llu rows", ci, f->name,
                (unsigned long long)nulls, (unsigned long long)rows);
    uint64_t bitmap = (rows + 7) / 8;
    want[0] = nulls ? bitmap : 0;
    bool varlen = f->type == PRISM_COL_UTF8 || f->type == PRISM_COL_BINARY;
    if (f->type == PRISM_COL_BOOL)
        want[1] = bitmap;
    else if (varlen)
        want[1] = (rows + 1) * 4;
    else if (__builtin_mul_overflow(rows, (uint64_t)pb_row_width(f), &want[1]))
        CORRUPT("column %zu ('%s'): values overflow", ci, f->name);
    for (int k = 0; k < 3; k++) {
        if (blen[k] == 0) {
            if (off[k] != 0)
                CORRUPT("column %zu ('%s'): empty %s buffer at offset %llu, not 0", ci, f->name,
                        what[k], (unsigned long long)off[k]);
        } else {
            if (off[k] % PRISM_BLOCK_ALIGN)
                CORRUPT("column %zu ('%s'): %s buffer at offset %llu is not 64-byte aligned", ci,
                        f->name, what[k], (unsigned long long)off[k]);
            if (off[k] < *prev_end)
                CORRUPT("column %zu ('%s'): %s buffer at %llu overlaps what precedes it (ends at "
                        "%llu)",
                        ci, f->name, what[k], (unsigned long long)off[k],
                        (unsigned long long)*prev_end);
            if (off[k] > len || blen[k] > len - off[k])
                CORRUPT("column %zu ('%s'): %s buffer [%llu, +%llu) is past the block's %zu bytes",
                        ci, f->name, what[k], (unsigned long long)off[k],
                        (unsigned long long)blen[k], len);
            /* One layout only: each buffer at the first 64-byte boundary
             * after the one before, zeroes between. */
            if (off[k] != align64(*prev_end))
                CORRUPT("column %zu ('%s'): %s buffer at %llu, but the layout puts it at %llu", ci,
                        f->name, what[k], (unsigned long long)off[k],
                        (unsigned long long)align64(*prev_end));
            if (!all_zero(p + *prev_end, (size_t)(off[k] - *prev_end)))
                CORRUPT("column %zu ('%s'): padding before the %s buffer is not zero", ci, f->name,
                        what[k]);
            *prev_end = off[k] + blen[k];
        }
        if (k == 2) /* the data's length comes from the offsets, checked below */
            break;
        if (blen[k] != want[k])
            CORRUPT("column %zu ('%s'): %s buffer of %llu bytes, %llu expected", ci, f->name,
                    what[k], (unsigned long long)blen[k], (unsigned long long)want[k]);
    }
    col->offset = 0;
    col->null_count = (size_t)nulls;
    col->validity = nulls ? p + off[0] : NULL;
    col->values = blen[1] ? p + off[1] : pb_empty;
    col->data = NULL;
    if (nulls) {
        size_t zeros = pb_count_zeros(col->validity, 0, (size_t)rows);
        if (zeros != nulls)
            CORRUPT("column %zu ('%s'): null count %llu, but the bitmap has %zu", ci, f->name,
                    (unsigned long long)nulls, zeros);
    }
    if (!varlen) {
        if (blen[2])
            CORRUPT("column %zu ('%s'): a data buffer in a %s column", ci, f->name,
                    types[f->type].name);
        return PRISM_BLOCK_OK;
    }
    const int32_t *o = (const int32_t *)col->values; /* 4-aligned: base 8, offset 64 */
    if (o[0] != 0)
        CORRUPT("column %zu ('%s'): offsets start at %d, not 0", ci, f->name, (int)o[0]);
    for (size_t i = 0; i < rows; i++)
        if (o[i + 1] < o[i])
            CORRUPT("column %zu ('%s'): offset of row %zu (%d) is below row %zu's (%d)", ci,
                    f->name, i + 1, (int)o[i + 1], i, (int)o[i]);
    if ((uint64_t)o[rows] != blen[2])
        CORRUPT("column %zu ('%s'): offsets end at %d, the data buffer has %llu bytes", ci, f->name,
                (int)o[rows], (unsigned long long)blen[2]);
    col->data = blen[2] ? p + off[2] : pb_empty;
    if (f->type == PRISM_COL_UTF8 && (flags & PRISM_BLOCK_CHECK_UTF8))
        for (size_t i = 0; i < rows; i++)
            if (!pb_utf8_valid(col->data + o[i], (size_t)(o[i + 1] - o[i])))
                CORRUPT("column %zu ('%s'): row %zu is not UTF-8", ci, f->name, i);
    return PRISM_BLOCK_OK;
}

/* Every check of a block, filling blk's rows, schema and columns. */
static prism_block_status parse(prism_block *blk, const uint8_t *p, size_t len, unsigned flags,
                                char *err, size_t errlen)
{
    if (len < PRISM_BLOCK_HEADER_SIZE)
        CORRUPT("truncated: %zu bytes, shorter than the %d-byte header", len,
                PRISM_BLOCK_HEADER_SIZE);
    if (memcmp(p, PRISM_BLOCK_MAGIC, 8))
        CORRUPT("not a block (bad magic)");
    if (ld16(p + 8) != PRISM_BLOCK_VERSION)
        CORRUPT("block version %u (this reader knows %d)", ld16(p + 8), PRISM_BLOCK_VERSION);
    if (ld16(p + 10) != 0)
        CORRUPT("unknown header flags 0x%x", ld16(p + 10));
    uint32_t ncols = ld32(p + 12);
    uint64_t rows = ld64(p + 16), blen = ld64(p + 24);
    uint32_t slen = ld32(p + 32);
    if (!all_zero(p + 36, PRISM_BLOCK_HEADER_SIZE - 36))
        CORRUPT("reserved header bytes are not zero");
    if (blen != len)
        CORRUPT("byte length %llu, but %zu bytes given", (unsigned long long)blen, len);
    if (len % PRISM_BLOCK_ALIGN)
        CORRUPT("byte length %zu is not a multiple of %d", len, PRISM_BLOCK_ALIGN);
    if (ncols > PRISM_BLOCK_MAX_COLUMNS)
        CORRUPT("%u columns (at most %u)", ncols, PRISM_BLOCK_MAX_COLUMNS);
    if (rows > PRISM_BLOCK_MAX_ROWS)
        CORRUPT("%llu rows (at most %u)", (unsigned long long)rows, PRISM_BLOCK_MAX_ROWS);
    if (slen > len - PRISM_BLOCK_HEADER_SIZE)
        CORRUPT("schema of %u bytes in a block of %zu", slen, len);
    size_t pos = PRISM_BLOCK_HEADER_SIZE, end = PRISM_BLOCK_HEADER_SIZE + (size_t)slen;
    uint64_t region = align64(end); /* <= len: len is a multiple of 64 */
    if (!all_zero(p + end, (size_t)region - end))
        CORRUPT("padding after the schema is not zero");
    blk->rows = (size_t)rows;
    blk->cols = calloc(ncols ? ncols : 1, sizeof *blk->cols);
    if (!blk->cols)
        return PRISM_BLOCK_ENOMEM;
    uint64_t prev_end = region;
    for (uint32_t c = 0; c < ncols; c++) {
        if (end - pos < 64)
            CORRUPT("column %u: record truncated (%zu bytes of schema left)", c, end - pos);
        const uint8_t *r = p + pos;
        prism_coltype type = r[0], elem = r[1];
        size_t ndim = r[2];
        uint32_t name_len = ld32(r + 4);
        if (!known(type))
            CORRUPT("column %u: unknown type %u", c, (unsigned)type);
        if (r[3])
            CORRUPT("column %u: reserved byte is not zero", c);
        if (type == PRISM_COL_TENSOR) {
            if (!pb_is_number(elem))
                CORRUPT("column %u: tensor of unknown element type %u", c, (unsigned)elem);
            if (ndim == 0 || ndim > PRISM_BLOCK_MAX_DIMS)
                CORRUPT("column %u: tensor of %zu dimensions (1..%u)", c, ndim,
                        PRISM_BLOCK_MAX_DIMS);
        } else if (elem || ndim) {
            CORRUPT("column %u: element type or dimensions given for a %s column", c,
                    types[type].name);
        }
        if (name_len == 0 || name_len > PRISM_BLOCK_MAX_NAME)
            CORRUPT("column %u: name of %u bytes (1..%u)", c, name_len, PRISM_BLOCK_MAX_NAME);
        size_t padded = ((size_t)name_len + 7) & ~(size_t)7;
        size_t rec = 64 + 8 * ndim + padded;
        if (end - pos < rec)
            CORRUPT("column %u: record of %zu bytes, %zu bytes of schema left", c, rec, end - pos);
        int64_t shape[PRISM_BLOCK_MAX_DIMS];
        for (size_t d = 0; d < ndim; d++)
            shape[d] = (int64_t)ld64(r + 64 + 8 * d);
        size_t list = 0;
        if (ndim && !shape_product(shape, ndim, &list))
            CORRUPT("column %u: tensor shape has a negative dimension or more than %u elements", c,
                    PRISM_BLOCK_MAX_LIST);
        const uint8_t *name = r + 64 + 8 * ndim;
        if (!prism_utf8_valid((const char *)name, name_len))
            CORRUPT("column %u: name is not UTF-8 (or holds NUL)", c);
        if (!all_zero(name + name_len, padded - name_len))
            CORRUPT("column %u: padding after the name is not zero", c);
        prism_block_status st =
            pb_schema_push(&blk->schema, (const char *)name, name_len, type, elem, ndim, shape);
        if (st)
            return st;
        st = parse_buffers(p, len, rows, &blk->schema.f[c], r, flags, &prev_end, &blk->cols[c], c,
                           err, errlen);
        if (st)
            return st;
        pos += rec;
    }
    if (pos != end)
        CORRUPT("schema of %u bytes, but its %u columns end at byte %zu", slen, ncols, pos);
    if (align64(prev_end) != len)
        CORRUPT("block of %zu bytes, but its buffers end at %llu", len,
                (unsigned long long)prev_end);
    if (!all_zero(p + prev_end, len - (size_t)prev_end))
        CORRUPT("padding after the last buffer is not zero");
    if (ncols > 1) { /* unique names: sorted, neighbours differ */
        const pb_field **sorted = malloc(ncols * sizeof *sorted);
        if (!sorted)
            return PRISM_BLOCK_ENOMEM;
        for (uint32_t c = 0; c < ncols; c++)
            sorted[c] = &blk->schema.f[c];
        qsort(sorted, ncols, sizeof *sorted, cmp_names);
        const char *dup = NULL;
        for (uint32_t c = 1; c < ncols && !dup; c++)
            if (!strcmp(sorted[c - 1]->name, sorted[c]->name))
                dup = sorted[c]->name;
        free(sorted);
        if (dup)
            CORRUPT("two columns named '%s'", dup);
    }
    return PRISM_BLOCK_OK;
}

static void block_free(prism_block *blk)
{
    pb_schema_clear(&blk->schema);
    free(blk->cols);
    free(blk);
}

static prism_block_status open_root(const void *data, size_t len, unsigned flags, void *owned,
                                    void (*release)(void *), void *ctx, prism_block **out,
                                    char *err, size_t errlen)
{
    prism_block *blk = calloc(1, sizeof *blk);
    if (!blk)
        return PRISM_BLOCK_ENOMEM;
    prism_block_status st = parse(blk, data, len, flags, err, errlen);
    if (st) {
        block_free(blk);
        return st;
    }
    atomic_init(&blk->refs, 1);
    blk->owned = owned;
    blk->release = release;
    blk->ctx = ctx;
    blk->bytes = data;
    blk->len = len;
    *out = blk;
    return PRISM_BLOCK_OK;
}

prism_block_status prism_block_open_ex(const void *data, size_t len, unsigned flags,
                                       void (*release)(void *ctx), void *ctx, prism_block **out,
                                       char *err, size_t errlen)
{
    if (!out || (flags & ~PRISM_BLOCK_CHECK_UTF8)) {
        pb_err(err, errlen, "invalid arguments");
        return PRISM_BLOCK_EINVAL;
    }
    if (!data) {
        pb_err(err, errlen, "no bytes");
        return PRISM_BLOCK_ECORRUPT;
    }
    if ((uintptr_t)data % 8) {
        pb_err(err, errlen, "block bytes at an address that is not 8-byte aligned");
        return PRISM_BLOCK_EINVAL;
    }
    return open_root(data, len, flags, NULL, release, ctx, out, err, errlen);
}

prism_block_status prism_block_open(const void *data, size_t len, prism_block **out, char *err,
                                    size_t errlen)
{
    return prism_block_open_ex(data, len, 0, NULL, NULL, out, err, errlen);
}

prism_block_status pb_open_owned(void *mem, size_t len, prism_block **out, char *err, size_t errlen)
{
    prism_block_status st = open_root(mem, len, 0, mem, NULL, NULL, out, err, errlen);
    if (st)
        free(mem);
    return st;
}

prism_block *prism_block_ref(prism_block *blk)
{
    if (blk)
        atomic_fetch_add_explicit(&blk->refs, 1, memory_order_relaxed);
    return blk;
}

void prism_block_destroy(prism_block *blk)
{
    if (!blk || atomic_fetch_sub_explicit(&blk->refs, 1, memory_order_acq_rel) != 1)
        return;
    prism_block *root = blk->root;
    if (!root) {
        if (blk->release)
            blk->release(blk->ctx);
        free(blk->owned);
    }
    block_free(blk);
    prism_block_destroy(root);
}

/* ---------- accessors ---------- */

size_t prism_block_rows(const prism_block *blk) { return blk ? blk->rows : 0; }

size_t prism_block_columns(const prism_block *blk) { return blk ? blk->schema.n : 0; }

const prism_block_schema *prism_block_get_schema(const prism_block *blk)
{
    return blk ? &blk->schema : NULL;
}

long prism_block_column_index(const prism_block *blk, const char *name)
{
    return blk ? prism_block_schema_find(&blk->schema, name) : -1;
}

prism_block_status prism_block_column(const prism_block *blk, size_t col, prism_column_view *out)
{
    if (!blk || !out || col >= blk->schema.n)
        return PRISM_BLOCK_EINVAL;
    const pb_field *f = &blk->schema.f[col];
    const pb_col *c = &blk->cols[col];
    *out = (prism_column_view){
        .type = f->type,
        .length = blk->rows,
        .offset = c->offset,
        .null_count = c->null_count,
        .validity = c->validity,
        .values = c->values,
        .data = c->data,
        .elem = f->elem,
        .list_size = f->list_size,
    };
    return PRISM_BLOCK_OK;
}

size_t prism_block_null_count(const prism_block *blk, size_t col)
{
    return blk && col < blk->schema.n ? blk->cols[col].null_count : 0;
}

bool prism_block_is_null(const prism_block *blk, size_t col, size_t row)
{
    if (!blk || col >= blk->schema.n || row >= blk->rows)
        return false;
    const pb_col *c = &blk->cols[col];
    return c->validity && !pb_bit(c->validity, c->offset + row);
}

const void *prism_block_values(const prism_block *blk, size_t col, prism_coltype type)
{
    if (!blk || col >= blk->schema.n)
        return NULL;
    const pb_field *f = &blk->schema.f[col];
    if (f->type != type || !(pb_is_number(type) || type == PRISM_COL_TENSOR))
        return NULL;
    return blk->cols[col].values + blk->cols[col].offset * pb_row_width(f);
}

int prism_block_bool(const prism_block *blk, size_t col, size_t row)
{
    if (!blk || col >= blk->schema.n || row >= blk->rows ||
        blk->schema.f[col].type != PRISM_COL_BOOL)
        return -1;
    const pb_col *c = &blk->cols[col];
    return pb_bit(c->values, c->offset + row);
}

const uint8_t *prism_block_binary(const prism_block *blk, size_t col, size_t row, size_t *len)
{
    if (!blk || col >= blk->schema.n || row >= blk->rows)
        return NULL;
    prism_coltype t = blk->schema.f[col].type;
    if (t != PRISM_COL_UTF8 && t != PRISM_COL_BINARY)
        return NULL;
    const pb_col *c = &blk->cols[col];
    const int32_t *o = (const int32_t *)c->values + c->offset + row;
    if (len)
        *len = (size_t)(o[1] - o[0]);
    return c->data + o[0];
}

const char *prism_block_string(const prism_block *blk, size_t col, size_t row, size_t *len)
{
    if (!blk || col >= blk->schema.n || blk->schema.f[col].type != PRISM_COL_UTF8)
        return NULL;
    return (const char *)prism_block_binary(blk, col, row, len);
}

const void *prism_block_tensor(const prism_block *blk, size_t col, size_t row, size_t *nbytes)
{
    if (!blk || col >= blk->schema.n || row >= blk->rows ||
        blk->schema.f[col].type != PRISM_COL_TENSOR)
        return NULL;
    size_t w = pb_row_width(&blk->schema.f[col]);
    if (nbytes)
        *nbytes = w;
    return blk->cols[col].values + (blk->cols[col].offset + row) * w;
}

const void *prism_block_data(const prism_block *blk, size_t *len)
{
    if (!blk || blk->root)
        return NULL;
    if (len)
        *len = blk->len;
    return blk->bytes;
}

/* ---------- views ---------- */

pb_seg pb_seg_of(const prism_block *blk, size_t col)
{
    const pb_col *c = &blk->cols[col];
    return (pb_seg){.validity = c->validity,
                    .values = c->values,
                    .data = c->data,
                    .offset = c->offset,
                    .rows = blk->rows,
                    .null_count = c->null_count};
}

prism_block *pb_view_new(const prism_block *src, size_t ncols)
{
    prism_block *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->cols = calloc(ncols ? ncols : 1, sizeof *v->cols);
    if (!v->cols) {
        free(v);
        return NULL;
    }
    atomic_init(&v->refs, 1);
    v->root = prism_block_ref(src->root ? src->root : (prism_block *)src);
    v->rows = src->rows;
    return v;
}

prism_block_status prism_block_slice(const prism_block *blk, size_t start, size_t end,
                                     prism_block **out)
{
    if (!blk || !out || start > end || end > blk->rows)
        return PRISM_BLOCK_EINVAL;
    prism_block *v = pb_view_new(blk, blk->schema.n);
    if (!v)
        return PRISM_BLOCK_ENOMEM;
    prism_block_status st = pb_schema_copy_into(&blk->schema, &v->schema);
    if (st) {
        prism_block_destroy(v);
        return st;
    }
    v->rows = end - start;
    for (size_t i = 0; i < blk->schema.n; i++) {
        pb_col c = blk->cols[i];
        c.offset += start;
        if (c.validity) {
            c.null_count = pb_count_zeros(c.validity, c.offset, v->rows);
            if (c.null_count == 0)
                c.validity = NULL;
        }
        v->cols[i] = c;
    }
    *out = v;
    return PRISM_BLOCK_OK;
}

/* A view of the columns `idx` (n of them) of `blk`. */
static prism_block_status pick(const prism_block *blk, const size_t *idx, size_t n,
                               prism_block **out)
{
    prism_block *v = pb_view_new(blk, n);
    if (!v)
        return PRISM_BLOCK_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const pb_field *f = &blk->schema.f[idx[i]];
        prism_block_status st =
            pb_schema_push(&v->schema, f->name, f->name_len, f->type, f->elem, f->ndim, f->shape);
        if (st) {
            prism_block_destroy(v);
            return st;
        }
        v->cols[i] = blk->cols[idx[i]];
    }
    *out = v;
    return PRISM_BLOCK_OK;
}

prism_block_status prism_block_select(const prism_block *blk, const char *const *names, size_t n,
                                      prism_block **out)
{
    if (!blk || !out || (n && !names))
        return PRISM_BLOCK_EINVAL;
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    bool *taken = calloc(blk->schema.n ? blk->schema.n : 1, 1);
    prism_block_status st = idx && taken ? PRISM_BLOCK_OK : PRISM_BLOCK_ENOMEM;
    for (size_t i = 0; i < n && !st; i++) {
        long c = prism_block_schema_find(&blk->schema, names[i]);
        if (c < 0 || taken[c])
            st = PRISM_BLOCK_ESCHEMA;
        else {
            taken[c] = true;
            idx[i] = (size_t)c;
        }
    }
    if (!st)
        st = pick(blk, idx, n, out);
    free(idx);
    free(taken);
    return st;
}

prism_block_status prism_block_drop(const prism_block *blk, const char *const *names, size_t n,
                                    prism_block **out)
{
    if (!blk || !out || (n && !names))
        return PRISM_BLOCK_EINVAL;
    size_t cols = blk->schema.n;
    size_t *idx = malloc((cols ? cols : 1) * sizeof *idx);
    bool *gone = calloc(cols ? cols : 1, 1);
    prism_block_status st = idx && gone ? PRISM_BLOCK_OK : PRISM_BLOCK_ENOMEM;
    for (size_t i = 0; i < n && !st; i++) {
        long c = prism_block_schema_find(&blk->schema, names[i]);
        if (c < 0)
            st = PRISM_BLOCK_ESCHEMA;
        else
            gone[c] = true;
    }
    size_t k = 0;
    for (size_t c = 0; c < cols && !st; c++)
        if (!gone[c])
            idx[k++] = c;
    if (!st)
        st = pick(blk, idx, k, out);
    free(idx);
    free(gone);
    return st;
}

/* ---------- serialize and concat ---------- */

/* One segment per column: the whole of `blk`. */
static pb_seg *segs_of(const prism_block *blk)
{
    pb_seg *segs = malloc((blk->schema.n ? blk->schema.n : 1) * sizeof *segs);
    for (size_t c = 0; segs && c < blk->schema.n; c++)
        segs[c] = pb_seg_of(blk, c);
    return segs;
}

size_t prism_block_nbytes(const prism_block *blk)
{
    if (!blk)
        return 0;
    if (!blk->root)
        return blk->len;
    pb_seg *segs = segs_of(blk);
    pb_plan plan;
    size_t n = 0;
    if (segs && pb_plan_make(&blk->schema, segs, 1, blk->rows, &plan, NULL, 0) == 0) {
        n = plan.total;
        pb_plan_free(&plan);
    }
    free(segs);
    return n;
}

prism_block_status prism_block_serialize(const prism_block *blk, void *dst, size_t cap)
{
    if (!blk || !dst || (uintptr_t)dst % 8)
        return PRISM_BLOCK_EINVAL;
    pb_seg *segs = segs_of(blk);
    if (!segs)
        return PRISM_BLOCK_ENOMEM;
    pb_plan plan;
    prism_block_status st = pb_plan_make(&blk->schema, segs, 1, blk->rows, &plan, NULL, 0);
    if (!st) {
        if (plan.total > cap)
            st = PRISM_BLOCK_ERANGE;
        else
            pb_write(&blk->schema, segs, 1, &plan, dst);
        pb_plan_free(&plan);
    }
    free(segs);
    return st;
}

/* The pieces of a concatenation (every column of every block; the caller
 * frees), after checking the schemas agree; `*rows` their total. */
static prism_block_status concat_segs(prism_block *const *blks, size_t n, pb_seg **out,
                                      size_t *rows, char *err, size_t errlen)
{
    if (!blks || !out || n == 0) {
        pb_err(err, errlen, "nothing to concatenate");
        return PRISM_BLOCK_EINVAL;
    }
    const prism_block_schema *s = &blks[0]->schema;
    uint64_t total = 0;
    for (size_t k = 0; k < n; k++) {
        const prism_block_schema *t = &blks[k]->schema;
        if (t->n != s->n) {
            pb_err(err, errlen, "block %zu has %zu columns, block 0 has %zu", k, t->n, s->n);
            return PRISM_BLOCK_ESCHEMA;
        }
        for (size_t c = 0; c < s->n; c++) {
            const char *why = field_diff(&s->f[c], &t->f[c]);
            if (why) {
                pb_err(err, errlen, "block %zu, column %zu ('%s'): %s from block 0's ('%s')", k, c,
                       t->f[c].name, why, s->f[c].name);
                return PRISM_BLOCK_ESCHEMA;
            }
        }
        total += blks[k]->rows;
    }
    if (total > PRISM_BLOCK_MAX_ROWS) {
        pb_err(err, errlen, "%llu rows in all (at most %u)", (unsigned long long)total,
               PRISM_BLOCK_MAX_ROWS);
        return PRISM_BLOCK_ERANGE;
    }
    pb_seg *segs = malloc((s->n ? s->n : 1) * n * sizeof *segs);
    if (!segs)
        return PRISM_BLOCK_ENOMEM;
    for (size_t c = 0; c < s->n; c++)
        for (size_t k = 0; k < n; k++)
            segs[c * n + k] = pb_seg_of(blks[k], c);
    *out = segs;
    *rows = (size_t)total;
    return PRISM_BLOCK_OK;
}

prism_block_status prism_block_concat(prism_block *const *blks, size_t n, prism_block **out,
                                      char *err, size_t errlen)
{
    pb_seg *segs;
    size_t rows;
    prism_block_status st = out ? concat_segs(blks, n, &segs, &rows, err, errlen)
                                : PRISM_BLOCK_EINVAL;
    if (st)
        return st;
    st = pb_write_block(&blks[0]->schema, segs, n, rows, out, err, errlen);
    free(segs);
    return st;
}

prism_block_status prism_block_concat_size(prism_block *const *blks, size_t n, size_t *size,
                                           char *err, size_t errlen)
{
    pb_seg *segs;
    size_t rows;
    prism_block_status st = size ? concat_segs(blks, n, &segs, &rows, err, errlen)
                                 : PRISM_BLOCK_EINVAL;
    if (st)
        return st;
    st = pb_write_size(&blks[0]->schema, segs, n, rows, size, err, errlen);
    free(segs);
    return st;
}

prism_block_status prism_block_concat_into(prism_block *const *blks, size_t n, void *dst,
                                           size_t cap, size_t *written, char *err, size_t errlen)
{
    pb_seg *segs;
    size_t rows;
    prism_block_status st = concat_segs(blks, n, &segs, &rows, err, errlen);
    if (st)
        return st;
    st = pb_write_into(&blks[0]->schema, segs, n, rows, dst, cap, written, err, errlen);
    free(segs);
    return st;
}
