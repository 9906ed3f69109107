#include "codec.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32
/* Tensor data starts at a multiple of this from the start of the encoding, so
 * task code may read it as float or int64 arrays where it lies (the object
 * store's arena and malloc both align at least this much). */
#define TENSOR_ALIGN 16

size_t pw_value_size(const prism_value *v, const char *self_addr)
{
    prism_writer w = {0};
    pw_value(&w, v, self_addr);
    return w.failed ? 0 : w.pos;
}

/* A count byte and that many zeros, up to the next multiple of `align`. */
static void pad_to(prism_writer *w, size_t align)
{
    size_t pos = pw_pos(w) + 1;
    uint8_t n = (uint8_t)((align - pos % align) % align), zeros[16] = {0};
    pw_u8(w, n);
    pw_bytes(w, zeros, n);
}

void pw_tensor_head(prism_writer *w, prism_dtype dtype, int ndim, const int64_t *shape,
                    uint64_t len)
{
    pw_u8(w, (uint8_t)PRISM_VALUE_TENSOR);
    pw_u8(w, (uint8_t)dtype);
    pw_u8(w, (uint8_t)ndim);
    for (int i = 0; i < ndim; i++)
        pw_u64(w, (uint64_t)shape[i]);
    pw_u64(w, len);
    pad_to(w, TENSOR_ALIGN);
}

static void pw_value_depth(prism_writer *w, const prism_value *v, const char *self, int depth)
{
    if (depth > MAX_DEPTH) {
        w->failed = 1;
        return;
    }
    if (v->kind == PRISM_VALUE_TENSOR && v->device1) {
        w->failed = 1; /* device memory: only a DAG's loop moves it */
        return;
    }
    if (v->kind == PRISM_VALUE_TENSOR) {
        pw_tensor_head(w, v->dtype, v->ndim, v->shape, v->len);
        pw_bytes(w, v->data, v->len);
        return;
    }
    pw_u8(w, (uint8_t)v->kind);
    switch (v->kind) {
    case PRISM_VALUE_NULL: break;
    case PRISM_VALUE_JSON: pw_str(w, v->text); break;
    case PRISM_VALUE_BYTES:
        pw_u64(w, v->len);
        pw_bytes(w, v->data, v->len);
        break;
    case PRISM_VALUE_TENSOR: break; /* above */
    case PRISM_VALUE_LIST:
        pw_u32(w, (uint32_t)v->nitems);
        for (size_t i = 0; i < v->nitems; i++)
            pw_value_depth(w, v->items[i], self, depth + 1);
        break;
    case PRISM_VALUE_REF:
        pw_bytes(w, v->ref->id.b, PRISM_OBJECT_ID_BYTES);
        pw_str(w, v->ref->owner ? v->ref->owner : self);
        break;
    case PRISM_VALUE_ERROR:
        pw_str(w, v->text);
        pw_str(w, v->message);
        break;
    }
}

void pw_value(prism_writer *w, const prism_value *v, const char *self_addr)
{
    pw_value_depth(w, v, self_addr, 0);
}

/* Whether `len` bytes are exactly a tensor of this dtype and shape. The
 * shape comes from the network: its product must not overflow, and a copy
 * of `len` bytes must not be sized by the shape. No partial product may
 * pass INT64_MAX, as prism_value_tensor requires of the element count. */
static bool tensor_len_ok(prism_dtype dtype, int ndim, const int64_t *shape, uint64_t len)
{
    uint64_t n = prism_dtype_size(dtype);
    if (!n)
        return false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && n > (uint64_t)INT64_MAX / (uint64_t)shape[i]))
            return false;
        n *= (uint64_t)shape[i];
    }
    return n == len;
}

bool pr_value_info(const uint8_t *buf, size_t len, prism_value_info *out)
{
    prism_reader r = {buf, len, 0, NULL, NULL, NULL};
    memset(out, 0, sizeof *out);
    out->kind = (prism_value_kind)pr_u8(&r);
    if (out->kind == PRISM_VALUE_BYTES) {
        out->size = (size_t)pr_u64(&r);
        return !r.failed;
    }
    if (out->kind != PRISM_VALUE_TENSOR)
        return false;
    out->dtype = (prism_dtype)pr_u8(&r);
    out->ndim = pr_u8(&r);
    if (out->ndim > PRISM_MAX_DIMS)
        return false;
    for (int i = 0; i < out->ndim; i++)
        out->shape[i] = (int64_t)pr_u64(&r);
    uint64_t n = pr_u64(&r);
    out->size = (size_t)n;
    return !r.failed && tensor_len_ok(out->dtype, out->ndim, out->shape, n);
}

/* A tensor's head and where its data lies in the reader's buffer; false
 * (r->failed set) when malformed. */
static bool tensor_at(prism_reader *r, prism_dtype *dtype, int *ndim, int64_t *shape, uint64_t *len,
                      const uint8_t **data)
{
    *dtype = (prism_dtype)pr_u8(r);
    *ndim = pr_u8(r);
    if (*ndim > PRISM_MAX_DIMS) {
        r->failed = 1;
        return false;
    }
    for (int i = 0; i < *ndim; i++)
        shape[i] = (int64_t)pr_u64(r);
    *len = pr_u64(r);
    pr_bytes(r, pr_u8(r)); /* alignment padding */
    if (!(*data = pr_bytes(r, *len)))
        return false;
    if (!tensor_len_ok(*dtype, *ndim, shape, *len)) {
        r->failed = 1;
        return false;
    }
    return true;
}

static prism_value *read_tensor(prism_reader *r)
{
    prism_dtype dtype;
    int ndim;
    int64_t shape[PRISM_MAX_DIMS];
    uint64_t len;
    const uint8_t *data;
    if (!tensor_at(r, &dtype, &ndim, shape, &len, &data))
        return NULL;
    prism_value *v;
    if (r->hold) { /* zero-copy: the value points into the reader's buffer */
        v = prism__value_borrowed(PRISM_VALUE_TENSOR, data, len, r->release, r->ud);
        if (v) {
            r->hold(r->ud);
            v->dtype = dtype;
            v->ndim = ndim;
            memcpy(v->shape, shape, (size_t)ndim * sizeof *shape);
        }
        return v;
    }
    v = prism_value_tensor(dtype, ndim, shape, data);
    if (!v)
        r->failed = 1;
    return v;
}

bool pr_value_view(prism_reader *r, prism_value *out)
{
    memset(out, 0, sizeof *out);
    out->kind = (prism_value_kind)pr_u8(r);
    const uint8_t *data = NULL;
    uint64_t len = 0;
    switch (out->kind) {
    case PRISM_VALUE_NULL: break;
    case PRISM_VALUE_BYTES:
        len = pr_u64(r);
        data = pr_bytes(r, len);
        break;
    case PRISM_VALUE_TENSOR: tensor_at(r, &out->dtype, &out->ndim, out->shape, &len, &data); break;
    default: return false;
    }
    if (r->failed || (out->kind != PRISM_VALUE_NULL && !data))
        return false;
    out->data = (uint8_t *)data;
    out->len = (size_t)len;
    return true;
}

static prism_value *read_value(prism_reader *r, prism_client *c, const char *self, int depth);

static prism_value *read_list(prism_reader *r, prism_client *c, const char *self, int depth)
{
    uint32_t n = pr_u32(r);
    prism_value *l = prism_value_list();
    for (uint32_t i = 0; l && i < n && !r->failed; i++) {
        prism_value *item = read_value(r, c, self, depth + 1);
        if (!item || prism_value_list_append(l, item) != PRISM_OK) {
            r->failed = 1;
            break;
        }
    }
    if (r->failed) {
        prism_value_free(l);
        return NULL;
    }
    return l;
}

static prism_value *read_ref(prism_reader *r, prism_client *c, const char *self)
{
    const uint8_t *id = pr_bytes(r, PRISM_OBJECT_ID_BYTES);
    char *owner = pr_str(r);
    prism_value *v = NULL;
    if (id && owner) {
        prism_object_id oid;
        memcpy(oid.b, id, sizeof oid.b);
        bool mine = self && !strcmp(owner, self);
        prism_ref *ref = prism__ref_new(c, &oid, mine ? NULL : owner);
        v = ref ? prism_value_ref(ref) : NULL;
        prism_ref_release(ref);
    }
    free(owner);
    if (!v)
        r->failed = 1;
    return v;
}

static prism_value *read_value(prism_reader *r, prism_client *c, const char *self, int depth)
{
    if (depth > MAX_DEPTH) {
        r->failed = 1;
        return NULL;
    }
    prism_value_kind kind = (prism_value_kind)pr_u8(r);
    if (r->failed)
        return NULL;
    switch (kind) {
    case PRISM_VALUE_NULL: return prism_value_null();
    case PRISM_VALUE_JSON: {
        char *text = pr_str(r);
        prism_value *v = text ? prism_value_json(text) : NULL;
        free(text);
        if (!v)
            r->failed = 1;
        return v;
    }
    case PRISM_VALUE_BYTES: {
        uint64_t n = pr_u64(r);
        const uint8_t *p = pr_bytes(r, n);
        if (p && r->hold) {
            prism_value *v = prism__value_borrowed(PRISM_VALUE_BYTES, p, n, r->release, r->ud);
            if (v)
                r->hold(r->ud);
            return v;
        }
        return p ? prism_value_bytes(p, n) : NULL;
    }
    case PRISM_VALUE_TENSOR: return read_tensor(r);
    case PRISM_VALUE_LIST: return read_list(r, c, self, depth);
    case PRISM_VALUE_REF: return read_ref(r, c, self);
    case PRISM_VALUE_ERROR: {
        char *task = pr_str(r), *msg = pr_str(r);
        prism_value *v = task && msg ? prism_value_error(task, msg) : NULL;
        free(task);
        free(msg);
        return v;
    }
    }
    r->failed = 1;
    return NULL;
}

prism_value *pr_value(prism_reader *r, prism_client *client, const char *self_addr)
{
    prism_value *v = read_value(r, client, self_addr, 0);
    if (r->failed) {
        prism_value_free(v);
        return NULL;
    }
    return v;
}
