/* Blocks and JSON: the schema and a block's description (schema(), explain),
 * rows out (take) and rows in (from_items). Output is written as text
 * straight into a capped buffer; input is parsed with jansson, which
 * checks the JSON and its UTF-8. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prism_block_internal.h"
#include "prism_buf.h"
#include "prism_json_text.h"

/* ---------- writing ---------- */

typedef struct jw {
    prism_buf b;
    prism_block_status st; /* the first failure; later writes do nothing */
} jw;

static void jw_init(jw *w, size_t max)
{
    prism_buf_init(&w->b, max ? max : SIZE_MAX / 4);
    w->st = PRISM_BLOCK_OK;
}

static void put(jw *w, const void *p, size_t n)
{
    if (w->st || prism_buf_append(&w->b, p, n) == 0)
        return;
    w->st = n > w->b.max || w->b.len > w->b.max - n ? PRISM_BLOCK_ERANGE : PRISM_BLOCK_ENOMEM;
}

static void puts_(jw *w, const char *s) { put(w, s, strlen(s)); }

static prism_block_status jw_take(jw *w, char **out, size_t *len)
{
    if (w->st) {
        prism_buf_free(&w->b);
        return w->st;
    }
    size_t n = 0;
    char *s = prism_buf_take(&w->b, &n);
    if (!s)
        return PRISM_BLOCK_ENOMEM;
    *out = s;
    if (len)
        *len = n;
    return PRISM_BLOCK_OK;
}

/* A JSON string of `n` bytes: escapes as JSON requires; each byte that is not
 * part of valid UTF-8 is written '?', so the text is always valid JSON. */
static void put_string(jw *w, const uint8_t *p, size_t n)
{
    put(w, "\"", 1);
    size_t i = 0;
    while (i < n && !w->st) {
        size_t run = 0; /* plain ASCII goes in one append */
        while (i + run < n && p[i + run] >= 0x20 && p[i + run] < 0x80 && p[i + run] != '"' &&
               p[i + run] != '\\')
            run++;
        if (run) {
            put(w, p + i, run);
            i += run;
            continue;
        }
        uint8_t c = p[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            put(w, esc, 2);
            i++;
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(w, esc, 6);
            i++;
        } else {
            size_t k = prism_utf8_seq(p + i, n - i);
            if (k) {
                put(w, p + i, k);
                i += k;
            } else {
                put(w, "?", 1);
                i++;
            }
        }
    }
    put(w, "\"", 1);
}

static void put_cstring(jw *w, const char *s) { put_string(w, (const uint8_t *)s, strlen(s)); }

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void put_base64(jw *w, const uint8_t *p, size_t n)
{
    put(w, "\"", 1);
    char q[4];
    for (size_t i = 0; i < n && !w->st; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        q[0] = b64[v >> 18];
        q[1] = b64[(v >> 12) & 63];
        q[2] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? b64[v & 63] : '=';
        put(w, q, 4);
    }
    put(w, "\"", 1);
}

/* The shortest of %.{6,9}g (float32) or %.{15,17}g (float64) that reads
 * back to the same value, with ".0" added to integral values so that they
 * read back as reals; null for NaN and infinities. */
static void put_real(jw *w, double d, bool f32)
{
    if (!isfinite(d)) {
        puts_(w, "null");
        return;
    }
    char buf[48];
    if (f32) {
        snprintf(buf, sizeof buf, "%.6g", d);
        if (strtof(buf, NULL) != (float)d)
            snprintf(buf, sizeof buf, "%.9g", d);
    } else {
        snprintf(buf, sizeof buf, "%.15g", d);
        if (strtod(buf, NULL) != d)
            snprintf(buf, sizeof buf, "%.17g", d);
    }
    if (!strpbrk(buf, ".e"))
        strcat(buf, ".0");
    puts_(w, buf);
}

/* The element at `p` of number type `t`. */
static void put_number(jw *w, prism_coltype t, const uint8_t *p)
{
    pb_number v;
    memcpy(&v, p, prism_coltype_width(t));
    char buf[32];
    switch (t) {
    case PRISM_COL_INT8: snprintf(buf, sizeof buf, "%d", v.i8); break;
    case PRISM_COL_INT16: snprintf(buf, sizeof buf, "%d", v.i16); break;
    case PRISM_COL_INT32: snprintf(buf, sizeof buf, "%d", v.i32); break;
    case PRISM_COL_INT64: snprintf(buf, sizeof buf, "%lld", (long long)v.i64); break;
    case PRISM_COL_UINT8: snprintf(buf, sizeof buf, "%u", v.u8); break;
    case PRISM_COL_UINT16: snprintf(buf, sizeof buf, "%u", v.u16); break;
    case PRISM_COL_UINT32: snprintf(buf, sizeof buf, "%u", v.u32); break;
    case PRISM_COL_UINT64: snprintf(buf, sizeof buf, "%llu", (unsigned long long)v.u64); break;
    case PRISM_COL_FLOAT32: put_real(w, v.f32, true); return;
    default: put_real(w, v.f64, false); return;
    }
    puts_(w, buf);
}

/* Nested arrays of dimension `d` onwards of a tensor row; `*p` advances. */
static void put_tensor(jw *w, const pb_field *f, size_t d, const uint8_t **p)
{
    size_t width = prism_coltype_width(f->elem);
    put(w, "[", 1);
    for (int64_t i = 0; i < f->shape[d] && !w->st; i++) {
        if (i)
            put(w, ",", 1);
        if (d + 1 < f->ndim) {
            put_tensor(w, f, d + 1, p);
        } else {
            put_number(w, f->elem, *p);
            *p += width;
        }
    }
    put(w, "]", 1);
}

static void put_schema_columns(jw *w, const prism_block_schema *s, const prism_block *blk)
{
    puts_(w, "\"columns\":[");
    for (size_t i = 0; i < s->n; i++) {
        const pb_field *f = &s->f[i];
        char fmt[32], num[32];
        prism_block_schema_arrow_format(s, i, fmt, sizeof fmt);
        puts_(w, i ? ",{\"name\":" : "{\"name\":");
        put_cstring(w, f->name);
        puts_(w, ",\"type\":\"");
        puts_(w, prism_coltype_name(f->type));
        puts_(w, "\"");
        if (f->type == PRISM_COL_TENSOR) {
            puts_(w, ",\"dtype\":\"");
            puts_(w, prism_coltype_name(f->elem));
            puts_(w, "\",\"shape\":[");
            for (size_t d = 0; d < f->ndim; d++) {
                snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)f->shape[d]);
                puts_(w, num);
            }
            puts_(w, "]");
        }
        puts_(w, ",\"arrow\":\"");
        puts_(w, fmt);
        puts_(w, "\"");
        if (blk) {
            snprintf(num, sizeof num, "%zu", blk->cols[i].null_count);
            puts_(w, ",\"null_count\":");
            puts_(w, num);
        }
        puts_(w, "}");
    }
    puts_(w, "]");
}

prism_block_status prism_block_schema_json(const prism_block_schema *s, char **out, size_t *len)
{
    if (!s || !out)
        return PRISM_BLOCK_EINVAL;
    jw w;
    jw_init(&w, 0);
    puts_(&w, "{");
    put_schema_columns(&w, s, NULL);
    puts_(&w, "}");
    return jw_take(&w, out, len);
}

prism_block_status prism_block_describe_json(const prism_block *blk, char **out, size_t *len)
{
    if (!blk || !out)
        return PRISM_BLOCK_EINVAL;
    jw w;
    jw_init(&w, 0);
    char num[64];
    snprintf(num, sizeof num, "{\"rows\":%zu,\"bytes\":%zu,", blk->rows, prism_block_nbytes(blk));
    puts_(&w, num);
    put_schema_columns(&w, &blk->schema, blk);
    puts_(&w, "}");
    return jw_take(&w, out, len);
}

prism_block_status prism_block_to_json(const prism_block *blk, size_t start, size_t count,
                                       size_t max_bytes, char **out, size_t *len)
{
    if (!blk || !out)
        return PRISM_BLOCK_EINVAL;
    size_t end = start >= blk->rows ? start : count > blk->rows - start ? blk->rows : start + count;
    jw w;
    jw_init(&w, max_bytes);
    put(&w, "[", 1);
    for (size_t r = start; r < end && !w.st; r++) {
        put(&w, r > start ? ",{" : "{", r > start ? 2 : 1);
        for (size_t c = 0; c < blk->schema.n; c++) {
            const pb_field *f = &blk->schema.f[c];
            const pb_col *col = &blk->cols[c];
            if (c)
                put(&w, ",", 1);
            put_cstring(&w, f->name);
            put(&w, ":", 1);
            size_t at = col->offset + r;
            if (col->validity && !pb_bit(col->validity, at)) {
                puts_(&w, "null");
                continue;
            }
            switch (f->type) {
            case PRISM_COL_BOOL: puts_(&w, pb_bit(col->values, at) ? "true" : "false"); break;
            case PRISM_COL_UTF8:
            case PRISM_COL_BINARY: {
                const int32_t *o = (const int32_t *)col->values + at;
                if (f->type == PRISM_COL_UTF8)
                    put_string(&w, col->data + o[0], (size_t)(o[1] - o[0]));
                else
                    put_base64(&w, col->data + o[0], (size_t)(o[1] - o[0]));
                break;
            }
            case PRISM_COL_TENSOR: {
                const uint8_t *p = col->values + at * pb_row_width(f);
                put_tensor(&w, f, 0, &p);
                break;
            }
            default: put_number(&w, f->type, col->values + at * prism_coltype_width(f->type));
            }
        }
        put(&w, "}", 1);
    }
    put(&w, "]", 1);
    return jw_take(&w, out, len);
}

/* ---------- reading ---------- */

#define JSON_FAIL(...)                                                                             \
    do {                                                                                           \
        pb_err(err, errlen, __VA_ARGS__);                                                          \
        return PRISM_BLOCK_EJSON;                                                                  \
    } while (0)

static const char *kind_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real";
    case JSON_TRUE:
    case JSON_FALSE: return "a bool";
    default: return "null";
    }
}

static int b64_value(unsigned char c)
{
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

/* Decodes base64 (with padding) into new memory; false when it is not base64. */
static bool base64_decode(const char *s, size_t n, uint8_t **out, size_t *len)
{
    if (n % 4)
        return false;
    uint8_t *o = malloc(n / 4 * 3 + 1);
    if (!o)
        return false;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        size_t pads = 0;
        for (int j = 0; j < 4; j++) {
            unsigned char c = (unsigned char)s[i + j];
            if (c == '=' && i + 4 == n && j >= 2) {
                v[j] = 0;
                pads++;
            } else if (pads || (v[j] = b64_value(c)) < 0) {
                free(o);
                return false;
            }
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        o[k++] = (uint8_t)(x >> 16);
        if (pads < 2)
            o[k++] = (uint8_t)(x >> 8);
        if (pads < 1)
            o[k++] = (uint8_t)x;
    }
    *out = o;
    *len = k;
    return true;
}

/* One JSON number as a value of number type `t`. */
static prism_block_status json_number(const json_t *v, prism_coltype t, pb_number *n)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        return pb_convert_int(t, i < 0, i < 0 ? 0 - (uint64_t)i : (uint64_t)i, n);
    }
    if (json_is_real(v))
        return pb_convert_real(t, json_real_value(v), n);
    return PRISM_BLOCK_EINVAL;
}

/* Flattens nested arrays of exactly `f`'s shape into `out`, from dimension
 * `d`; `*idx` counts elements written. */
static bool flatten(const json_t *a, const pb_field *f, size_t d, uint8_t *out, size_t *idx)
{
    if (!json_is_array(a) || json_array_size(a) != (size_t)f->shape[d])
        return false;
    size_t width = prism_coltype_width(f->elem);
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *e = json_array_get(a, i);
        if (d + 1 < f->ndim) {
            if (!flatten(e, f, d + 1, out, idx))
                return false;
            continue;
        }
        pb_number n;
        if (json_number(e, f->elem, &n))
            return false;
        memcpy(out + *idx * width, &n, width);
        (*idx)++;
    }
    return true;
}

static bool rectangular(const json_t *a, const int64_t *shape, size_t ndim, size_t d,
                        bool *all_int);

/* Appends value `v` (NULL: absent) of row `row` to column `c`. */
static prism_block_status put_value(prism_block_builder *b, const pb_field *f, size_t c,
                                    const json_t *v, size_t row, uint8_t **scratch, char *err,
                                    size_t errlen)
{
    if (!v || json_is_null(v))
        return prism_block_builder_append_null(b, c);
    prism_block_status st = PRISM_BLOCK_EINVAL;
    const char *want = prism_coltype_name(f->type);
    switch (f->type) {
    case PRISM_COL_BOOL:
        if (json_is_boolean(v))
            st = prism_block_builder_append_bool(b, c, json_is_true(v));
        break;
    case PRISM_COL_UTF8:
        if (json_is_string(v))
            st =
                prism_block_builder_append_bytes(b, c, json_string_value(v), json_string_length(v));
        break;
    case PRISM_COL_BINARY: {
        uint8_t *bytes;
        size_t n;
        want = "a base64 string";
        if (json_is_string(v) &&
            base64_decode(json_string_value(v), json_string_length(v), &bytes, &n)) {
            st = prism_block_builder_append_bytes(b, c, bytes, n);
            free(bytes);
        }
        break;
    }
    case PRISM_COL_TENSOR: {
        /* The shape first: the row's memory is only taken for a row that
         * has its elements in the text (a schema may name a huge shape). */
        size_t idx = 0;
        bool ints = true;
        want = "nested arrays of the column's shape and element type";
        if (!rectangular(v, f->shape, f->ndim, 0, &ints))
            break;
        uint8_t *row_mem = realloc(*scratch, pb_row_width(f) ? pb_row_width(f) : 1);
        if (!row_mem)
            return PRISM_BLOCK_ENOMEM;
        *scratch = row_mem;
        if (flatten(v, f, 0, row_mem, &idx))
            st = prism_block_builder_append_tensor(b, c, row_mem, pb_row_width(f));
        break;
    }
    default: {
        pb_number n;
        st = json_number(v, f->type, &n);
        if (st == PRISM_BLOCK_ERANGE)
            JSON_FAIL("row %zu, column '%s': %s out of range for %s", row, f->name, kind_name(v),
                      want);
        if (st == PRISM_BLOCK_OK) {
            if (json_is_integer(v)) {
                json_int_t i = json_integer_value(v);
                st = prism_block_builder_append_int(b, c, i);
            } else {
                st = prism_block_builder_append_float(b, c, json_real_value(v));
            }
        }
    }
    }
    if (st == PRISM_BLOCK_EINVAL || st == PRISM_BLOCK_ERANGE)
        JSON_FAIL("row %zu, column '%s': %s where %s was expected", row, f->name, kind_name(v),
                  want);
    return st;
}

/* What inference learns of a column. */
enum { K_BOOL = 1, K_INT = 2, K_REAL = 4, K_STR = 8, K_ARR = 16 };

typedef struct icol {
    const char *name;
    size_t name_len;
    unsigned kinds;
    bool all_int; /* arrays: every element an integer */
    size_t ndim;
    int64_t shape[PRISM_BLOCK_MAX_DIMS];
    size_t shape_row; /* the row the shape was first seen in */
} icol;

/* True when `a` is nested arrays of numbers of exactly `shape` from dimension `d`. */
static bool rectangular(const json_t *a, const int64_t *shape, size_t ndim, size_t d, bool *all_int)
{
    if (!json_is_array(a) || json_array_size(a) != (size_t)shape[d])
        return false;
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *e = json_array_get(a, i);
        if (d + 1 < ndim) {
            if (!rectangular(e, shape, ndim, d + 1, all_int))
                return false;
        } else if (json_is_real(e)) {
            *all_int = false;
        } else if (!json_is_integer(e)) {
            return false;
        }
    }
    return true;
}

static prism_block_status infer_array(icol *ic, const json_t *v, size_t row, char *err,
                                      size_t errlen)
{
    int64_t shape[PRISM_BLOCK_MAX_DIMS];
    size_t ndim = 0;
    for (const json_t *a = v; json_is_array(a); a = json_array_get(a, 0)) {
        if (ndim == PRISM_BLOCK_MAX_DIMS)
            JSON_FAIL("row %zu, column '%s': arrays nested deeper than %u", row, ic->name,
                      PRISM_BLOCK_MAX_DIMS);
        shape[ndim++] = (int64_t)json_array_size(a);
        if (json_array_size(a) == 0)
            break;
    }
    if (!rectangular(v, shape, ndim, 0, &ic->all_int))
        JSON_FAIL("row %zu, column '%s': not nested arrays of numbers of one shape (a tensor)", row,
                  ic->name);
    if (!(ic->kinds & K_ARR)) {
        ic->ndim = ndim;
        memcpy(ic->shape, shape, ndim * sizeof shape[0]);
        ic->shape_row = row;
    } else if (ndim != ic->ndim || memcmp(shape, ic->shape, ndim * sizeof shape[0])) {
        JSON_FAIL("row %zu, column '%s': a tensor of another shape than row %zu's", row, ic->name,
                  ic->shape_row);
    }
    return PRISM_BLOCK_OK;
}

/* The schema the rows imply (see prism_block_from_json). */
static prism_block_status infer(const json_t *rows, prism_block_schema *s, char *err, size_t errlen)
{
    icol *cols = NULL;
    size_t n = 0, cap = 0;
    prism_block_status st = PRISM_BLOCK_OK;
    for (size_t r = 0; r < json_array_size(rows) && !st; r++) {
        const json_t *row = json_array_get(rows, r);
        const char *key;
        size_t key_len, j = 0;
        json_t *v;
        json_object_keylen_foreach((json_t *)row, key, key_len, v) {
            if (st)
                break;
            size_t c = j < n && cols[j].name_len == key_len && !memcmp(cols[j].name, key, key_len)
                           ? j
                           : n; /* rows usually repeat the same keys in the same order */
            for (size_t i = 0; c == n && i < n; i++)
                if (cols[i].name_len == key_len && !memcmp(cols[i].name, key, key_len))
                    c = i;
            j = c + 1;
            if (c == n) {
                if (key_len == 0 || key_len > PRISM_BLOCK_MAX_NAME || strlen(key) != key_len) {
                    pb_err(err, errlen, "row %zu: a key is empty, too long or holds NUL", r);
                    st = PRISM_BLOCK_EJSON;
                    break;
                }
                if (n == PRISM_BLOCK_MAX_COLUMNS) {
                    pb_err(err, errlen, "more than %u columns", PRISM_BLOCK_MAX_COLUMNS);
                    st = PRISM_BLOCK_ERANGE;
                    break;
                }
                if (n == cap) {
                    cap = cap ? cap * 2 : 16;
                    icol *more = realloc(cols, cap * sizeof *cols);
                    if (!more) {
                        st = PRISM_BLOCK_ENOMEM;
                        break;
                    }
                    cols = more;
                }
                cols[n] = (icol){.name = key, .name_len = key_len, .all_int = true};
                n++;
            }
            icol *ic = &cols[c];
            switch (json_typeof(v)) {
            case JSON_TRUE:
            case JSON_FALSE: ic->kinds |= K_BOOL; break;
            case JSON_INTEGER: ic->kinds |= K_INT; break;
            case JSON_REAL: ic->kinds |= K_REAL; break;
            case JSON_STRING: ic->kinds |= K_STR; break;
            case JSON_ARRAY:
                st = infer_array(ic, v, r, err, errlen);
                ic->kinds |= K_ARR;
                break;
            case JSON_NULL: break;
            default:
                pb_err(err, errlen, "row %zu, column '%s': an object (no column type holds one)", r,
                       ic->name);
                st = PRISM_BLOCK_EJSON;
            }
        }
    }
    for (size_t c = 0; c < n && !st; c++) {
        icol *ic = &cols[c];
        switch (ic->kinds) {
        case 0:
        case K_STR: st = prism_block_schema_add(s, ic->name, PRISM_COL_UTF8); break;
        case K_BOOL: st = prism_block_schema_add(s, ic->name, PRISM_COL_BOOL); break;
        case K_INT: st = prism_block_schema_add(s, ic->name, PRISM_COL_INT64); break;
        case K_REAL:
        case K_INT | K_REAL: st = prism_block_schema_add(s, ic->name, PRISM_COL_FLOAT64); break;
        case K_ARR:
            st = prism_block_schema_add_tensor(s, ic->name,
                                               ic->all_int ? PRISM_COL_INT64 : PRISM_COL_FLOAT64,
                                               ic->ndim, ic->shape);
            if (st == PRISM_BLOCK_ERANGE)
                pb_err(err, errlen, "column '%s': tensors of more than %u elements", ic->name,
                       PRISM_BLOCK_MAX_LIST);
            break;
        default:
            pb_err(err, errlen, "column '%s' mixes %s%s%s%s%s", ic->name,
                   ic->kinds & K_BOOL ? "bools " : "", ic->kinds & K_INT ? "integers " : "",
                   ic->kinds & K_REAL ? "reals " : "", ic->kinds & K_STR ? "strings " : "",
                   ic->kinds & K_ARR ? "arrays " : "");
            st = PRISM_BLOCK_EJSON;
        }
    }
    free(cols);
    return st;
}

/* Every row into the builder; each row's keys must be columns. */
static prism_block_status fill(prism_block_builder *b, const prism_block_schema *s,
                               const json_t *rows, char *err, size_t errlen)
{
    uint8_t *scratch = NULL; /* a tensor row as it is converted */
    prism_block_status st = PRISM_BLOCK_OK;
    for (size_t r = 0; r < json_array_size(rows) && !st; r++) {
        const json_t *row = json_array_get(rows, r);
        size_t found = 0;
        for (size_t c = 0; c < s->n && !st; c++) {
            const json_t *v = json_object_get(row, s->f[c].name);
            found += v != NULL;
            st = put_value(b, &s->f[c], c, v, r, &scratch, err, errlen);
        }
        if (!st && found != json_object_size(row)) {
            const char *key;
            json_t *v;
            json_object_foreach((json_t *)row, key, v) {
                if (prism_block_schema_find(s, key) < 0)
                    break;
            }
            pb_err(err, errlen, "row %zu: key '%s' is not a column of the schema", r,
                   key ? key : "?");
            st = PRISM_BLOCK_EJSON;
        }
    }
    free(scratch);
    return st;
}

prism_block_status prism_block_from_json(const char *text, size_t len,
                                         const prism_block_schema *schema, prism_block **out,
                                         char *err, size_t errlen)
{
    if ((!text && len) || !out) {
        pb_err(err, errlen, "invalid arguments");
        return PRISM_BLOCK_EINVAL;
    }
    json_error_t je;
    json_t *root = json_loadb(text ? text : "", len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!root)
        JSON_FAIL("JSON: %s (line %d, column %d)", je.text, je.line, je.column);
    prism_block_status st = PRISM_BLOCK_OK;
    prism_block_schema inferred = {0};
    prism_block_builder *b = NULL;
    size_t nrows = json_array_size(root);
    if (!json_is_array(root)) {
        pb_err(err, errlen, "not a JSON array of rows");
        st = PRISM_BLOCK_EJSON;
    } else if (nrows > PRISM_BLOCK_MAX_ROWS) {
        pb_err(err, errlen, "%zu rows (at most %u)", nrows, PRISM_BLOCK_MAX_ROWS);
        st = PRISM_BLOCK_ERANGE;
    }
    for (size_t r = 0; r < nrows && !st; r++)
        if (!json_is_object(json_array_get(root, r))) {
            pb_err(err, errlen, "row %zu is %s, not an object", r,
                   kind_name(json_array_get(root, r)));
            st = PRISM_BLOCK_EJSON;
        }
    if (!st && !schema) {
        st = infer(root, &inferred, err, errlen);
        schema = &inferred;
    }
    if (!st)
        st = prism_block_builder_create(schema, &b);
    if (!st)
        st = fill(b, schema, root, err, errlen);
    if (!st && schema->n) {
        st = prism_block_builder_finish(b, out, err, errlen);
    } else if (!st) { /* rows without keys: a builder counts rows in columns, so write directly */
        pb_seg none;
        st = pb_write_block(schema, &none, 0, nrows, out, err, errlen);
    }
    prism_block_builder_destroy(b);
    pb_schema_clear(&inferred);
    json_decref(root);
    return st;
}
