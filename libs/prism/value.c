/* prism_value: typed values (JSON, bytes, tensors, lists, references, errors). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "prism_internal.h"

/* The release of memory the value does not own. */
static void keep(void *ud) { (void)ud; }

/* NULL from a constructor: prism_last_status() tells a bad argument from no memory. */
static prism_value *invalid(const char *why)
{
    prism__fail(PRISM_ERR_INVALID, "%s", why);
    return NULL;
}

static prism_value *no_memory(void)
{
    prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    return NULL;
}

/* malloc and memset, not calloc: glibc's calloc bypasses its per-thread
 * cache, and made a third of the instructions of a DAG driver's get. */
static prism_value *value_new(prism_value_kind kind)
{
    prism_value *v = malloc(sizeof *v);
    if (!v)
        return no_memory();
    memset(v, 0, sizeof *v);
    v->kind = kind;
    return v;
}

/* Data of up to this many bytes shares one allocation with its value: on a
 * compiled DAG's hop, where a method's return and the driver's result are
 * small values made and freed every execution, an allocation less each is
 * a measurable part of the hop (bench/dag/README.md). Kept small: glibc's
 * per-thread cache takes blocks up to about 1 KiB only, and freeing one
 * larger block cost more than the two small ones it replaced (a DAG's hop
 * with 1 KiB values got slower). */
#define INLINE_MAX 512
#define INLINE_AT ((sizeof(prism_value) + 15) / 16 * 16) /* data 16-byte aligned, as malloc's */

/* A value of `kind` with room for `len` bytes of data (zeroed when
 * `zero`): in the same allocation when small, else its own. */
static prism_value *value_with_data(prism_value_kind kind, size_t len, bool zero)
{
    if (len > INLINE_MAX) {
        prism_value *v = value_new(kind);
        if (!v)
            return NULL;
        if (!(v->data = zero ? calloc(1, len) : malloc(len))) {
            free(v);
            return no_memory();
        }
        v->len = len;
        return v;
    }
    prism_value *v = malloc(INLINE_AT + len);
    if (!v)
        return no_memory();
    memset(v, 0, zero ? INLINE_AT + len : sizeof *v);
    v->kind = kind;
    v->data = (uint8_t *)v + INLINE_AT;
    v->len = len;
    v->release = keep; /* freed with the value */
    return v;
}

size_t prism_dtype_size(prism_dtype dtype)
{
    switch (dtype) {
    case PRISM_F32: return 4;
    case PRISM_F64: return 8;
    case PRISM_I32: return 4;
    case PRISM_I64: return 8;
    case PRISM_U8: return 1;
    }
    return 0;
}

prism_value *prism_value_null(void) { return value_new(PRISM_VALUE_NULL); }

prism_value *prism_value_json(const char *text)
{
    json_error_t err;
    json_t *doc = text ? json_loads(text, JSON_DECODE_ANY, &err) : NULL;
    if (!doc && text && json_error_code(&err) == json_error_out_of_memory)
        return no_memory();
    if (!doc)
        return invalid(text ? "the text is not valid JSON" : "no JSON text");
    json_decref(doc);
    prism_value *v = value_new(PRISM_VALUE_JSON);
    if (v && !(v->text = strdup(text))) {
        free(v);
        return no_memory();
    }
    return v;
}

prism_value *prism__value_bytes_room(size_t len)
{
    return value_with_data(PRISM_VALUE_BYTES, len, false);
}

prism_value *prism_value_bytes(const void *data, size_t len)
{
    if (!data && len)
        return invalid("bytes of a nonzero length need data");
    prism_value *v = value_with_data(PRISM_VALUE_BYTES, len, false);
    if (v && len)
        memcpy(v->data, data, len);
    return v;
}

/* Elements of a shape, or -1 when a dimension is negative or it overflows. */
static int64_t shape_elements(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && n > INT64_MAX / shape[i]))
            return -1;
        n *= shape[i];
    }
    return n;
}

/* A tensor, its dtype, shape and length checked and set: with room for its
 * data when `host` (zeroed when `zero`), else without (the caller sets
 * `data` to device memory). */
static prism_value *tensor_new(prism_dtype dtype, int ndim, const int64_t *shape, bool host,
                               bool zero)
{
    size_t esize = prism_dtype_size(dtype);
    if (!esize)
        return invalid("unknown tensor dtype");
    if (ndim < 0 || ndim > PRISM_MAX_DIMS || (ndim && !shape))
        return invalid("a tensor has 0 to PRISM_MAX_DIMS dimensions, with a shape");
    int64_t n = shape_elements(ndim, shape);
    if (n < 0 || (uint64_t)n > SIZE_MAX / esize)
        return invalid("a tensor dimension is negative or the tensor is too large");
    size_t len = (size_t)n * esize;
    prism_value *v = host ? value_with_data(PRISM_VALUE_TENSOR, len, zero)
                          : value_new(PRISM_VALUE_TENSOR);
    if (!v)
        return NULL;
    v->len = len;
    v->dtype = dtype;
    v->ndim = ndim;
    if (ndim)
        memcpy(v->shape, shape, (size_t)ndim * sizeof *shape);
    return v;
}

prism_value *prism_value_tensor(prism_dtype dtype, int ndim, const int64_t *shape, const void *data)
{
    prism_value *v = tensor_new(dtype, ndim, shape, true, !data);
    if (v && data && v->len)
        memcpy(v->data, data, v->len);
    return v;
}

prism_value *prism_value_device_tensor(int device, prism_dtype dtype, int ndim,
                                       const int64_t *shape, void *dev_ptr,
                                       void (*release)(void *ud), void *ud)
{
    if (device < 0 || device > 1023 || !dev_ptr)
        return invalid("a device tensor needs a CUDA device (0-1023) and device memory");
    prism_value *v = tensor_new(dtype, ndim, shape, false, false);
    if (!v)
        return NULL;
    v->data = dev_ptr;
    v->release = release ? release : keep;
    v->release_ud = ud;
    v->device1 = device + 1;
    return v;
}

int prism_value_device(const prism_value *v)
{
    return v && v->kind == PRISM_VALUE_TENSOR ? v->device1 - 1 : -1;
}

bool prism__value_on_device(const prism_value *v)
{
    if (!v)
        return false;
    if (v->device1)
        return true;
    for (size_t i = 0; i < v->nitems; i++)
        if (prism__value_on_device(v->items[i]))
            return true;
    return false;
}

prism_value *prism_value_list(void) { return value_new(PRISM_VALUE_LIST); }

prism_status prism_value_list_append(prism_value *list, prism_value *item)
{
    if (!list || list->kind != PRISM_VALUE_LIST || !item) {
        prism_value_free(item);
        return prism__fail(PRISM_ERR_INVALID, "list append needs a list and an item");
    }
    if (list->nitems == list->cap) {
        size_t cap = list->cap ? 2 * list->cap : 4;
        prism_value **items = realloc(list->items, cap * sizeof *items);
        if (!items) {
            prism_value_free(item);
            return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
        }
        list->items = items;
        list->cap = cap;
    }
    list->items[list->nitems++] = item;
    return PRISM_OK;
}

prism_value *prism_value_ref(const prism_ref *ref)
{
    if (!ref)
        return invalid("no reference");
    prism_value *v = value_new(PRISM_VALUE_REF);
    if (v && !(v->ref = prism_ref_dup(ref))) {
        free(v);
        return NULL; /* prism_ref_dup said why */
    }
    return v;
}

prism_value *prism_value_error(const char *task, const char *message)
{
    prism_value *v = value_new(PRISM_VALUE_ERROR);
    if (!v)
        return NULL;
    v->text = strdup(task ? task : "");
    v->message = strdup(message ? message : "");
    if (!v->text || !v->message) {
        prism_value_free(v);
        return no_memory();
    }
    return v;
}

prism_value *prism__value_borrowed(prism_value_kind kind, const uint8_t *data, size_t len,
                                   void (*release)(void *), void *ud)
{
    prism_value *v = value_new(kind);
    if (!v)
        return NULL;
    v->data = (uint8_t *)data;
    v->len = len;
    v->release = release;
    v->release_ud = ud;
    return v;
}

prism_value *prism_value_copy(const prism_value *v)
{
    if (!v)
        return invalid("no value to copy");
    switch (v->kind) {
    case PRISM_VALUE_NULL: return prism_value_null();
    case PRISM_VALUE_JSON: return prism_value_json(v->text);
    case PRISM_VALUE_BYTES: return prism_value_bytes(v->data, v->len);
    case PRISM_VALUE_TENSOR:
        if (v->device1)
            return invalid("a tensor in device memory is not copied on the host");
        return prism_value_tensor(v->dtype, v->ndim, v->shape, v->data);
    case PRISM_VALUE_REF: return prism_value_ref(v->ref);
    case PRISM_VALUE_ERROR: return prism_value_error(v->text, v->message);
    case PRISM_VALUE_LIST: {
        prism_value *l = prism_value_list();
        for (size_t i = 0; l && i < v->nitems; i++) {
            prism_value *item = prism_value_copy(v->items[i]);
            if (!item || prism_value_list_append(l, item) != PRISM_OK) {
                prism_value_free(l);
                return NULL; /* the failed call said why */
            }
        }
        return l;
    }
    }
    return invalid("unknown value kind");
}

void prism_value_free(prism_value *v)
{
    if (!v)
        return;
    if (v->release == keep) { /* bytes or a tensor in the value's own block: the common case */
        free(v);
        return;
    }
    free(v->text);
    free(v->message);
    if (v->release)
        v->release(v->release_ud);
    else
        free(v->data);
    for (size_t i = 0; i < v->nitems; i++)
        prism_value_free(v->items[i]); /* NULL items are skipped */
    free(v->items);
    prism_ref_release(v->ref);
    free(v);
}

prism_value_kind prism_value_kind_of(const prism_value *v)
{
    return v ? v->kind : PRISM_VALUE_NULL;
}

const char *prism_value_json_text(const prism_value *v)
{
    return v && v->kind == PRISM_VALUE_JSON ? v->text : NULL;
}

const void *prism_value_data(const prism_value *v, size_t *len)
{
    bool has = v && (v->kind == PRISM_VALUE_BYTES || v->kind == PRISM_VALUE_TENSOR);
    if (len)
        *len = has ? v->len : 0;
    return has ? v->data : NULL;
}

prism_dtype prism_value_dtype(const prism_value *v) { return v ? v->dtype : 0; }
int prism_value_ndim(const prism_value *v)
{
    return v && v->kind == PRISM_VALUE_TENSOR ? v->ndim : 0;
}
const int64_t *prism_value_shape(const prism_value *v) { return v ? v->shape : NULL; }

size_t prism_value_list_size(const prism_value *v)
{
    return v && v->kind == PRISM_VALUE_LIST ? v->nitems : 0;
}

const prism_value *prism_value_list_get(const prism_value *v, size_t i)
{
    return v && v->kind == PRISM_VALUE_LIST && i < v->nitems ? v->items[i] : NULL;
}

const prism_ref *prism_value_get_ref(const prism_value *v)
{
    return v && v->kind == PRISM_VALUE_REF ? v->ref : NULL;
}

const char *prism_value_error_task(const prism_value *v)
{
    return v && v->kind == PRISM_VALUE_ERROR ? v->text : NULL;
}

const char *prism_value_error_message(const prism_value *v)
{
    return v && v->kind == PRISM_VALUE_ERROR ? v->message : NULL;
}
