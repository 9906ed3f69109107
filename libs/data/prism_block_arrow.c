/* Blocks through the Arrow C Data Interface: export zero-copy (each exported
 * array holds a reference to the block's memory until it is released), and
 * import by copying through the block writer. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prism_block_internal.h"

/* ---------- export: schemas ---------- */

typedef struct sch_priv {
    char format[32];
    char *name;
    char *metadata; /* Arrow's binary key-value encoding, or NULL */
    struct ArrowSchema **children;
} sch_priv;

static void sch_release(struct ArrowSchema *s)
{
    if (!s || !s->release)
        return;
    sch_priv *p = s->private_data;
    for (int64_t i = 0; i < s->n_children; i++) {
        struct ArrowSchema *c = s->children[i];
        if (c->release) /* a consumer that moved a child marked it released */
            c->release(c);
        free(c);
    }
    free(p->children);
    free(p->name);
    free(p->metadata);
    free(p);
    s->release = NULL;
}

/* Fills `s` as a field of `format` named `name` with `n_children` children
 * allocated (zeroed, each to be filled by the caller). */
static prism_block_status sch_init(struct ArrowSchema *s, const char *format, const char *name,
                                   int64_t flags, size_t n_children)
{
    sch_priv *p = calloc(1, sizeof *p);
    if (!p)
        return PRISM_BLOCK_ENOMEM;
    snprintf(p->format, sizeof p->format, "%s", format);
    p->name = strdup(name);
    p->children = calloc(n_children ? n_children : 1, sizeof *p->children);
    bool ok = p->name && p->children;
    for (size_t i = 0; ok && i < n_children; i++)
        ok = (p->children[i] = calloc(1, sizeof **p->children)) != NULL;
    *s = (struct ArrowSchema){
        .format = p->format,
        .name = p->name,
        .metadata = NULL,
        .flags = flags,
        .n_children = (int64_t)n_children,
        .children = p->children,
        .dictionary = NULL,
        .release = sch_release,
        .private_data = p,
    };
    if (!ok) {
        for (size_t i = 0; i < n_children && p->children; i++)
            free(p->children[i]);
        s->n_children = 0;
        sch_release(s);
        return PRISM_BLOCK_ENOMEM;
    }
    return PRISM_BLOCK_OK;
}

static void put_i32(char *p, int32_t v) { memcpy(p, &v, 4); }

/* The arrow.fixed_shape_tensor extension of a tensor field, in the C Data
 * Interface's metadata encoding (int32 pair count, then each key and value
 * as int32 length + bytes, native order). */
static char *tensor_metadata(const pb_field *f)
{
    static const char k1[] = "ARROW:extension:name", v1[] = "arrow.fixed_shape_tensor",
                      k2[] = "ARROW:extension:metadata";
    char v2[32 + 21 * PRISM_BLOCK_MAX_DIMS];
    size_t n = (size_t)snprintf(v2, sizeof v2, "{\"shape\":[");
    for (size_t d = 0; d < f->ndim; d++)
        n +=
            (size_t)snprintf(v2 + n, sizeof v2 - n, "%s%lld", d ? "," : "", (long long)f->shape[d]);
    n += (size_t)snprintf(v2 + n, sizeof v2 - n, "]}");
    const char *parts[4] = {k1, v1, k2, v2};
    size_t total = 4;
    for (int i = 0; i < 4; i++)
        total += 4 + strlen(parts[i]);
    char *m = malloc(total), *q = m;
    if (!m)
        return NULL;
    put_i32(q, 2);
    q += 4;
    for (int i = 0; i < 4; i++) {
        size_t len = strlen(parts[i]);
        put_i32(q, (int32_t)len);
        memcpy(q + 4, parts[i], len);
        q += 4 + len;
    }
    return m;
}

static prism_block_status export_field(const prism_block_schema *s, size_t i,
                                       struct ArrowSchema *out)
{
    const pb_field *f = &s->f[i];
    char fmt[32];
    prism_block_schema_arrow_format(s, i, fmt, sizeof fmt);
    bool tensor = f->type == PRISM_COL_TENSOR;
    prism_block_status st = sch_init(out, fmt, f->name, ARROW_FLAG_NULLABLE, tensor ? 1 : 0);
    if (st || !tensor)
        return st;
    sch_priv *p = out->private_data;
    p->metadata = tensor_metadata(f);
    out->metadata = p->metadata;
    st = p->metadata ? sch_init(out->children[0], prism_coltype_arrow_format(f->elem), "item",
                                ARROW_FLAG_NULLABLE, 0)
                     : PRISM_BLOCK_ENOMEM;
    if (st)
        sch_release(out);
    return st;
}

prism_block_status prism_block_schema_export_arrow(const prism_block_schema *s,
                                                   struct ArrowSchema *out)
{
    if (!s || !out)
        return PRISM_BLOCK_EINVAL;
    struct ArrowSchema top;
    prism_block_status st = sch_init(&top, "+s", "", 0, s->n);
    for (size_t i = 0; i < s->n && !st; i++)
        st = export_field(s, i, top.children[i]);
    if (st) {
        if (top.release)
            sch_release(&top);
        return st;
    }
    *out = top;
    return PRISM_BLOCK_OK;
}

/* ---------- export: arrays ---------- */

typedef struct arr_priv {
    prism_block *blk; /* a reference: the memory the buffers point into */
    const void *buffers[3];
    struct ArrowArray **children;
} arr_priv;

static void arr_release(struct ArrowArray *a)
{
    if (!a || !a->release)
        return;
    arr_priv *p = a->private_data;
    for (int64_t i = 0; i < a->n_children; i++) {
        struct ArrowArray *c = a->children[i];
        if (c->release)
            c->release(c);
        free(c);
    }
    free(p->children);
    prism_block_destroy(p->blk);
    free(p);
    a->release = NULL;
}

/* Fills `a` (children allocated zeroed, to be filled by the caller). */
static prism_block_status arr_init(struct ArrowArray *a, const prism_block *blk, int64_t length,
                                   int64_t offset, int64_t null_count, size_t n_buffers,
                                   const void *const *buffers, size_t n_children)
{
    arr_priv *p = calloc(1, sizeof *p);
    if (!p)
        return PRISM_BLOCK_ENOMEM;
    p->children = calloc(n_children ? n_children : 1, sizeof *p->children);
    bool ok = p->children != NULL;
    for (size_t i = 0; ok && i < n_children; i++)
        ok = (p->children[i] = calloc(1, sizeof **p->children)) != NULL;
    for (size_t i = 0; i < n_buffers; i++)
        p->buffers[i] = buffers[i];
    p->blk = prism_block_ref((prism_block *)blk);
    *a = (struct ArrowArray){
        .length = length,
        .null_count = null_count,
        .offset = offset,
        .n_buffers = (int64_t)n_buffers,
        .n_children = (int64_t)n_children,
        .buffers = p->buffers,
        .children = p->children,
        .dictionary = NULL,
        .release = arr_release,
        .private_data = p,
    };
    if (!ok) {
        for (size_t i = 0; i < n_children && p->children; i++)
            free(p->children[i]);
        a->n_children = 0;
        arr_release(a);
        return PRISM_BLOCK_ENOMEM;
    }
    return PRISM_BLOCK_OK;
}

static prism_block_status export_column(const prism_block *blk, size_t i, struct ArrowArray *out)
{
    const pb_field *f = &blk->schema.f[i];
    const pb_col *c = &blk->cols[i];
    const void *bufs[3] = {c->validity, c->values, c->data};
    int64_t rows = (int64_t)blk->rows, off = (int64_t)c->offset, nulls = (int64_t)c->null_count;
    if (pb_is_varlen(f->type))
        return arr_init(out, blk, rows, off, nulls, 3, bufs, 0);
    if (f->type != PRISM_COL_TENSOR)
        return arr_init(out, blk, rows, off, nulls, 2, bufs, 0);
    /* A fixed-size list: its validity, and the elements as one child that
     * covers every row up to the last of this block. */
    prism_block_status st = arr_init(out, blk, rows, off, nulls, 1, bufs, 1);
    if (st)
        return st;
    const void *values[2] = {NULL, c->values};
    st = arr_init(out->children[0], blk, (off + rows) * (int64_t)f->list_size, 0, 0, 2, values, 0);
    if (st)
        arr_release(out);
    return st;
}

prism_block_status prism_block_export_arrow(const prism_block *blk, struct ArrowSchema *schema,
                                            struct ArrowArray *array)
{
    if (!blk)
        return PRISM_BLOCK_EINVAL;
    struct ArrowSchema s = {0};
    if (schema) {
        prism_block_status st = prism_block_schema_export_arrow(&blk->schema, &s);
        if (st)
            return st;
    }
    if (array) {
        const void *none[1] = {NULL};
        struct ArrowArray a;
        prism_block_status st = arr_init(&a, blk, (int64_t)blk->rows, 0, 0, 1, none, blk->schema.n);
        for (size_t i = 0; i < blk->schema.n && !st; i++)
            st = export_column(blk, i, a.children[i]);
        if (st) {
            if (a.release)
                arr_release(&a);
            if (s.release)
                sch_release(&s);
            return st;
        }
        *array = a;
    }
    if (schema)
        *schema = s;
    return PRISM_BLOCK_OK;
}

/* ---------- import ---------- */

#define ARROW_FAIL(...)                                                                            \
    do {                                                                                           \
        pb_err(err, errlen, __VA_ARGS__);                                                          \
        return PRISM_BLOCK_EARROW;                                                                 \
    } while (0)

static int32_t get_i32(const char *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* The value of metadata key `key`, or NULL; `*len` its length. */
static const char *metadata_get(const char *m, const char *key, int32_t *len)
{
    if (!m)
        return NULL;
    int32_t n = get_i32(m);
    const char *p = m + 4;
    size_t klen = strlen(key);
    for (int32_t i = 0; i < n; i++) {
        int32_t kl = get_i32(p), vl = get_i32(p + 4 + (kl > 0 ? kl : 0));
        if (kl < 0 || vl < 0)
            return NULL;
        const char *k = p + 4, *v = p + 8 + kl;
        if ((size_t)kl == klen && !memcmp(k, key, klen)) {
            *len = vl;
            return v;
        }
        p = v + vl;
    }
    return NULL;
}

/* A tensor's shape: from arrow.fixed_shape_tensor metadata, else [list]. */
static prism_block_status tensor_shape(const struct ArrowSchema *cs, size_t list, size_t ci,
                                       int64_t *shape, size_t *ndim, char *err, size_t errlen)
{
    int32_t nl = 0, ml = 0;
    const char *name = metadata_get(cs->metadata, "ARROW:extension:name", &nl);
    const char *meta = metadata_get(cs->metadata, "ARROW:extension:metadata", &ml);
    if (!name || (size_t)nl != strlen("arrow.fixed_shape_tensor") ||
        memcmp(name, "arrow.fixed_shape_tensor", (size_t)nl) || !meta) {
        shape[0] = (int64_t)list;
        *ndim = 1;
        return PRISM_BLOCK_OK;
    }
    json_error_t je;
    json_t *m = json_loadb(meta, (size_t)ml, 0, &je);
    json_t *sh = json_object_get(m, "shape"), *perm = json_object_get(m, "permutation");
    prism_block_status st = PRISM_BLOCK_OK;
    size_t n = json_array_size(sh), product = 1;
    if (!json_is_array(sh) || n == 0 || n > PRISM_BLOCK_MAX_DIMS) {
        pb_err(err, errlen, "column %zu: fixed_shape_tensor metadata without a usable shape", ci);
        st = PRISM_BLOCK_EARROW;
    }
    for (size_t d = 0; d < n && !st; d++) {
        json_t *v = json_array_get(sh, d);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > (json_int_t)PRISM_BLOCK_MAX_LIST) {
            pb_err(err, errlen, "column %zu: a tensor dimension is not a size", ci);
            st = PRISM_BLOCK_EARROW;
        } else {
            shape[d] = json_integer_value(v);
            product = product * (size_t)shape[d];
            if (product > PRISM_BLOCK_MAX_LIST)
                product = PRISM_BLOCK_MAX_LIST + (size_t)1; /* stays unequal to list */
        }
    }
    if (!st && product != list) {
        pb_err(err, errlen, "column %zu: tensor shape of %zu elements for a list of %zu", ci,
               product, list);
        st = PRISM_BLOCK_EARROW;
    }
    for (size_t d = 0; !st && json_is_array(perm) && d < json_array_size(perm); d++)
        if (json_integer_value(json_array_get(perm, d)) != (json_int_t)d) {
            pb_err(err, errlen, "column %zu: a permuted tensor layout is not supported", ci);
            st = PRISM_BLOCK_EARROW;
        }
    *ndim = n;
    json_decref(m);
    return st;
}

static prism_coltype parse_format(const char *f)
{
    static const char codes[] = "bcsilCSILfguz";
    static const prism_coltype types[] = {PRISM_COL_BOOL,    PRISM_COL_INT8,    PRISM_COL_INT16,
                                          PRISM_COL_INT32,   PRISM_COL_INT64,   PRISM_COL_UINT8,
                                          PRISM_COL_UINT16,  PRISM_COL_UINT32,  PRISM_COL_UINT64,
                                          PRISM_COL_FLOAT32, PRISM_COL_FLOAT64, PRISM_COL_UTF8,
                                          PRISM_COL_BINARY};
    if (!f || !f[0])
        return 0;
    if (!strncmp(f, "+w:", 3))
        return PRISM_COL_TENSOR;
    const char *p = f[1] ? NULL : strchr(codes, f[0]);
    return p ? types[p - codes] : 0;
}

/* Nulls among `n` entries from `offset` of an array's validity. */
static size_t nulls_of(const struct ArrowArray *a, size_t offset, size_t n)
{
    const uint8_t *v = a->n_buffers > 0 ? a->buffers[0] : NULL;
    if (!v || a->null_count == 0)
        return 0;
    return pb_count_zeros(v, offset, n);
}

static bool valid_array(const struct ArrowArray *a)
{
    return a && a->release && a->length >= 0 && a->offset >= 0 && !a->dictionary &&
           a->length <= (int64_t)PRISM_BLOCK_MAX_ROWS * 2 &&
           a->offset <= (int64_t)PRISM_BLOCK_MAX_ROWS * 2 && (a->n_buffers == 0 || a->buffers) &&
           (a->n_children == 0 || a->children);
}

/* Column `ci` of the struct: its field into `s`, its rows into `seg`. */
static prism_block_status import_column(const struct ArrowSchema *cs, const struct ArrowArray *ca,
                                        size_t start, size_t rows, size_t ci, prism_block_schema *s,
                                        pb_seg *seg, char *err, size_t errlen)
{
    prism_coltype t = parse_format(cs->format);
    if (!t)
        ARROW_FAIL("column %zu: format '%s' is not supported", ci, cs->format ? cs->format : "");
    const char *name = cs->name ? cs->name : "";
    size_t name_len = strlen(name);
    if (name_len == 0 || name_len > PRISM_BLOCK_MAX_NAME ||
        !pb_utf8_valid((const uint8_t *)name, name_len))
        ARROW_FAIL("column %zu: its name is empty, too long or not UTF-8", ci);
    if (prism_block_schema_find(s, name) >= 0)
        ARROW_FAIL("column %zu: a second column named '%s'", ci, name);
    if (!valid_array(ca) || cs->dictionary)
        ARROW_FAIL("column %zu ('%s'): a released, dictionary or malformed array", ci, name);
    size_t want_buffers = t == PRISM_COL_TENSOR ? 1 : pb_is_varlen(t) ? 3 : 2;
    size_t want_children = t == PRISM_COL_TENSOR;
    if ((size_t)ca->n_buffers != want_buffers || (size_t)ca->n_children != want_children ||
        (size_t)cs->n_children != want_children)
        ARROW_FAIL("column %zu ('%s'): %lld buffers and %lld children for format '%s'", ci, name,
                   (long long)ca->n_buffers, (long long)ca->n_children, cs->format);
    if (start + rows > (size_t)ca->length)
        ARROW_FAIL("column %zu ('%s'): %lld rows, the struct needs %zu", ci, name,
                   (long long)ca->length, start + rows);
    size_t at = (size_t)ca->offset + start; /* the struct's row 0 in this array's buffers */
    *seg = (pb_seg){.validity = ca->buffers[0], .offset = at, .rows = rows};
    seg->null_count = nulls_of(ca, at, rows);
    if (!seg->null_count)
        seg->validity = NULL;
    prism_block_status st;
    if (t == PRISM_COL_TENSOR) {
        char *end;
        unsigned long long list = strtoull(cs->format + 3, &end, 10);
        if (*end || end == cs->format + 3 || list > PRISM_BLOCK_MAX_LIST)
            ARROW_FAIL("column %zu ('%s'): format '%s' is not a list size", ci, name, cs->format);
        const struct ArrowSchema *es = cs->children[0];
        const struct ArrowArray *ea = ca->children[0];
        prism_coltype elem = es ? parse_format(es->format) : 0;
        if (!pb_is_number(elem))
            ARROW_FAIL("column %zu ('%s'): tensor elements of format '%s'", ci, name,
                       es && es->format ? es->format : "");
        if (!valid_array(ea) || ea->n_buffers != 2 || ea->n_children != 0 || es->dictionary)
            ARROW_FAIL("column %zu ('%s'): a malformed element array", ci, name);
        uint64_t need;
        if (__builtin_mul_overflow((uint64_t)(at + rows), (uint64_t)list, &need) ||
            need > (uint64_t)ea->length)
            ARROW_FAIL("column %zu ('%s'): %lld elements, too few for its rows", ci, name,
                       (long long)ea->length);
        if (nulls_of(ea, (size_t)ea->offset, (size_t)need))
            ARROW_FAIL("column %zu ('%s'): nulls among tensor elements", ci, name);
        int64_t shape[PRISM_BLOCK_MAX_DIMS];
        size_t ndim;
        st = tensor_shape(cs, (size_t)list, ci, shape, &ndim, err, errlen);
        if (st)
            return st;
        st = prism_block_schema_add_tensor(s, name, elem, ndim, shape);
        const uint8_t *v = ea->buffers[1];
        if (!v && need)
            ARROW_FAIL("column %zu ('%s'): no element buffer", ci, name);
        /* The elements' own offset is folded into the pointer: rows stay in units of lists. */
        seg->values = v ? v + (size_t)ea->offset * prism_coltype_width(elem) : pb_empty;
        return st;
    }
    st = prism_block_schema_add(s, name, t);
    if (st)
        return st;
    seg->values = ca->buffers[1];
    if (!seg->values) {
        if (rows || pb_is_varlen(t)) /* offsets have rows + 1 entries even for 0 rows */
            ARROW_FAIL("column %zu ('%s'): no values buffer", ci, name);
        seg->values = pb_empty;
    }
    if (pb_is_varlen(t)) {
        const int32_t *o = (const int32_t *)seg->values + at;
        if (o[0] < 0)
            ARROW_FAIL("column %zu ('%s'): a negative offset", ci, name);
        for (size_t i = 0; i < rows; i++)
            if (o[i + 1] < o[i])
                ARROW_FAIL("column %zu ('%s'): offsets decrease at row %zu", ci, name, i);
        seg->data = ca->buffers[2];
        if (!seg->data) {
            if (o[rows] != o[0])
                ARROW_FAIL("column %zu ('%s'): no data buffer", ci, name);
            seg->data = pb_empty;
        }
    }
    return PRISM_BLOCK_OK;
}

prism_block_status prism_block_import_arrow(const struct ArrowSchema *schema,
                                            const struct ArrowArray *array, prism_block **out,
                                            char *err, size_t errlen)
{
    if (!schema || !array || !out) {
        pb_err(err, errlen, "invalid arguments");
        return PRISM_BLOCK_EINVAL;
    }
    if (!schema->release || !schema->format || strcmp(schema->format, "+s"))
        ARROW_FAIL("not a struct array (format '%s')", schema->format ? schema->format : "");
    if (!valid_array(array) || array->n_buffers != 1 || array->n_children != schema->n_children ||
        schema->n_children < 0 || (schema->n_children && !schema->children))
        ARROW_FAIL("a released or malformed struct array");
    if (array->length > (int64_t)PRISM_BLOCK_MAX_ROWS)
        ARROW_FAIL("%lld rows (at most %u)", (long long)array->length, PRISM_BLOCK_MAX_ROWS);
    if ((uint64_t)schema->n_children > PRISM_BLOCK_MAX_COLUMNS)
        ARROW_FAIL("%lld columns (at most %u)", (long long)schema->n_children,
                   PRISM_BLOCK_MAX_COLUMNS);
    size_t rows = (size_t)array->length, start = (size_t)array->offset;
    if (nulls_of(array, start, rows))
        ARROW_FAIL("null rows in the struct itself");
    size_t n = (size_t)schema->n_children;
    prism_block_schema s = {0};
    pb_seg *segs = calloc(n ? n : 1, sizeof *segs);
    prism_block_status st = segs ? PRISM_BLOCK_OK : PRISM_BLOCK_ENOMEM;
    for (size_t i = 0; i < n && !st; i++) {
        if (!schema->children[i] || !array->children[i]) {
            pb_err(err, errlen, "column %zu is missing", i);
            st = PRISM_BLOCK_EARROW;
            break;
        }
        st = import_column(schema->children[i], array->children[i], start, rows, i, &s, &segs[i],
                           err, errlen);
    }
    if (st == PRISM_BLOCK_ESCHEMA || st == PRISM_BLOCK_EINVAL || st == PRISM_BLOCK_ERANGE) {
        pb_err(err, errlen, "a column Arrow describes does not fit a block: %s",
               prism_block_strerror(st));
        st = PRISM_BLOCK_EARROW;
    }
    if (!st)
        st = pb_write_block(&s, segs, 1, rows, out, err, errlen);
    free(segs);
    pb_schema_clear(&s);
    return st;
}
