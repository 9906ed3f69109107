#include "dag_record.h"

#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "codec.h"

bool prism__dag_has_ref(const prism_value *v)
{
    if (v->kind == PRISM_VALUE_REF)
        return true;
    for (size_t i = 0; v->kind == PRISM_VALUE_LIST && i < v->nitems; i++)
        if (prism__dag_has_ref(v->items[i]))
            return true;
    return false;
}

static void put_head(void *buf, int tag)
{
    memset(buf, 0, DAG_REC_HEAD);
    *(uint8_t *)buf = (uint8_t)tag;
}

/* A bytes value's record, as the codec writes it (head, kind byte, u64
 * length, the bytes) but without its calls: on a compiled DAG's hop the
 * record is written and read once a side, and for small values the
 * codec's general path was most of the DAG's own instructions
 * (bench/README.md#a-hop-without-the-codecs-general-path). */
#define FLAT_AT (DAG_REC_HEAD + 9) /* where a bytes value's bytes start */

size_t prism__dag_bytes_size(size_t n) { return n > SIZE_MAX - FLAT_AT ? SIZE_MAX : FLAT_AT + n; }

uint8_t *prism__dag_bytes_room(void *buf, size_t cap, size_t n)
{
    if (prism__dag_bytes_size(n) > cap)
        return NULL;
    uint8_t *b = buf;
    uint64_t k = htole64(n);
    memset(b, 0, DAG_REC_HEAD); /* tag DAG_REC_VALUE (0) and the zeros */
    b[DAG_REC_HEAD] = PRISM_VALUE_BYTES;
    memcpy(b + DAG_REC_HEAD + 1, &k, 8);
    return b + FLAT_AT;
}

static size_t put_bytes(uint8_t *buf, size_t cap, const prism_value *v)
{
    uint8_t *at = prism__dag_bytes_room(buf, cap, v->len);
    if (!at)
        return 0;
    if (v->len)
        memcpy(at, v->data, v->len);
    return FLAT_AT + v->len;
}

/* The bytes of a bytes value's record, or NULL when the record is anything
 * else (read it with the codec, which also tells a malformed one). */
static const uint8_t *get_bytes(const void *buf, size_t len, size_t *n)
{
    const uint8_t *b = buf;
    if (len < FLAT_AT || b[0] != DAG_REC_VALUE || b[DAG_REC_HEAD] != PRISM_VALUE_BYTES)
        return NULL;
    uint64_t k;
    memcpy(&k, b + DAG_REC_HEAD + 1, 8);
    if (le64toh(k) != len - FLAT_AT)
        return NULL;
    *n = len - FLAT_AT;
    return b + FLAT_AT;
}

size_t prism__dag_put_value(void *buf, size_t cap, const prism_value *v)
{
    if (v->kind == PRISM_VALUE_BYTES)
        return put_bytes(buf, cap, v);
    if (cap < DAG_REC_HEAD || prism__dag_has_ref(v))
        return 0;
    prism_writer w = {.out = (uint8_t *)buf + DAG_REC_HEAD, .cap = cap - DAG_REC_HEAD};
    pw_value(&w, v, NULL);
    if (w.failed)
        return 0;
    put_head(buf, DAG_REC_VALUE);
    return DAG_REC_HEAD + w.pos;
}

size_t prism__dag_put_error(void *buf, size_t cap, int tag, const char *name, const char *msg)
{
    size_t nlen = name ? strnlen(name, 255) : 0, mlen = msg ? strlen(msg) : 0;
    if (cap < DAG_REC_HEAD + 8 + nlen)
        return 0;
    if (mlen > cap - DAG_REC_HEAD - 8 - nlen)
        mlen = cap - DAG_REC_HEAD - 8 - nlen;
    prism_writer w = {.out = (uint8_t *)buf + DAG_REC_HEAD, .cap = cap - DAG_REC_HEAD};
    pw_u32(&w, (uint32_t)nlen);
    pw_bytes(&w, name, nlen);
    pw_u32(&w, (uint32_t)mlen);
    pw_bytes(&w, msg, mlen);
    put_head(buf, tag);
    return DAG_REC_HEAD + w.pos;
}

int prism__dag_tag(const void *buf, size_t len)
{
    if (len < DAG_REC_HEAD)
        return -1;
    int tag = *(const uint8_t *)buf;
    return tag <= DAG_REC_RING ? tag : -1;
}

size_t prism__dag_put_device(void *buf, size_t cap, uint32_t slot, const prism_value *v)
{
    if (cap < DAG_REC_HEAD || v->kind != PRISM_VALUE_TENSOR || !v->device1)
        return 0;
    prism_writer w = {.out = (uint8_t *)buf + DAG_REC_HEAD, .cap = cap - DAG_REC_HEAD};
    pw_u32(&w, slot);
    pw_u8(&w, (uint8_t)v->dtype);
    pw_u8(&w, (uint8_t)v->ndim);
    for (int i = 0; i < v->ndim; i++)
        pw_u64(&w, (uint64_t)v->shape[i]);
    pw_u64(&w, v->len);
    if (w.failed)
        return 0;
    put_head(buf, DAG_REC_DEVICE);
    return DAG_REC_HEAD + w.pos;
}

prism_value *prism__dag_get_device(const void *buf, size_t len, int device,
                                   void *(*slot_addr)(void *ud, uint32_t slot), void *ud,
                                   uint64_t slot_size)
{
    if (prism__dag_tag(buf, len) != DAG_REC_DEVICE)
        return NULL;
    prism_reader r = {(const uint8_t *)buf + DAG_REC_HEAD, len - DAG_REC_HEAD, 0, NULL, NULL, NULL};
    uint32_t slot = pr_u32(&r);
    prism_dtype dtype = (prism_dtype)pr_u8(&r);
    int ndim = pr_u8(&r);
    int64_t shape[PRISM_MAX_DIMS];
    if (ndim > PRISM_MAX_DIMS)
        return NULL;
    for (int i = 0; i < ndim; i++)
        shape[i] = (int64_t)pr_u64(&r);
    uint64_t bytes = pr_u64(&r);
    void *base = r.failed || r.left ? NULL : slot_addr(ud, slot);
    prism_value *v = base ? prism_value_device_tensor(device, dtype, ndim, shape, base, NULL, NULL)
                          : NULL;
    if (v && (v->len != bytes || bytes > slot_size)) {
        prism_value_free(v);
        return NULL;
    }
    return v;
}

size_t prism__dag_ring_size(size_t n) { return DAG_REC_HEAD + 8 + n; }

size_t prism__dag_put_ring(void *buf, size_t cap, const void *handles, size_t n)
{
    if (cap < prism__dag_ring_size(n))
        return 0;
    prism_writer w = {.out = (uint8_t *)buf + DAG_REC_HEAD, .cap = cap - DAG_REC_HEAD};
    pw_u64(&w, n);
    pw_bytes(&w, handles, n);
    if (w.failed)
        return 0;
    put_head(buf, DAG_REC_RING);
    return DAG_REC_HEAD + w.pos;
}

const void *prism__dag_get_ring(const void *buf, size_t len, size_t *n)
{
    if (prism__dag_tag(buf, len) != DAG_REC_RING)
        return NULL;
    prism_reader r = {(const uint8_t *)buf + DAG_REC_HEAD, len - DAG_REC_HEAD, 0, NULL, NULL, NULL};
    uint64_t k = pr_u64(&r);
    const void *p = pr_bytes(&r, k);
    if (!p || r.left)
        return NULL;
    *n = (size_t)k;
    return p;
}

static void no_op(void *ud) { (void)ud; }

prism_value *prism__dag_get_value(const void *buf, size_t len, bool in_place)
{
    size_t n;
    const uint8_t *bytes = in_place ? NULL : get_bytes(buf, len, &n);
    if (bytes)
        return prism_value_bytes(bytes, n);
    if (prism__dag_tag(buf, len) != DAG_REC_VALUE)
        return NULL;
    prism_reader r = {(const uint8_t *)buf + DAG_REC_HEAD, len - DAG_REC_HEAD, 0, NULL, NULL, NULL};
    if (in_place) {
        r.hold = no_op;
        r.release = no_op;
    }
    prism_value *v = pr_value(&r, NULL, NULL);
    if (v && (r.left || prism__dag_has_ref(v))) {
        prism_value_free(v);
        return NULL;
    }
    return v;
}

bool prism__dag_view_value(const void *buf, size_t len, prism_value *out)
{
    size_t n;
    const uint8_t *bytes = get_bytes(buf, len, &n);
    if (bytes) {
        memset(out, 0, sizeof *out);
        out->kind = PRISM_VALUE_BYTES;
        out->data = (uint8_t *)bytes;
        out->len = n;
        return true;
    }
    if (prism__dag_tag(buf, len) != DAG_REC_VALUE)
        return false;
    prism_reader r = {(const uint8_t *)buf + DAG_REC_HEAD, len - DAG_REC_HEAD, 0, NULL, NULL, NULL};
    return pr_value_view(&r, out) && !r.left;
}

int prism__dag_get_error(const void *buf, size_t len, char **name, char **msg)
{
    *name = *msg = NULL;
    int tag = prism__dag_tag(buf, len);
    if (tag != DAG_REC_ERROR && tag != DAG_REC_DIED)
        return -1;
    prism_reader r = {(const uint8_t *)buf + DAG_REC_HEAD, len - DAG_REC_HEAD, 0, NULL, NULL, NULL};
    *name = pr_str(&r);
    *msg = pr_str(&r);
    if (*name && *msg)
        return 0;
    free(*name);
    free(*msg);
    *name = *msg = NULL;
    return -1;
}

size_t prism__dag_put_ref(void *buf, size_t cap, const prism_ref *ref, const char *self_addr)
{
    prism_value *v = prism_value_ref(ref);
    size_t n = 0;
    if (v && cap >= DAG_REC_HEAD) {
        prism_writer w = {.out = (uint8_t *)buf + DAG_REC_HEAD, .cap = cap - DAG_REC_HEAD};
        pw_value(&w, v, self_addr);
        if (!w.failed) {
            put_head(buf, DAG_REC_REF);
            n = DAG_REC_HEAD + w.pos;
        }
    }
    prism_value_free(v);
    return n;
}

prism_ref *prism__dag_get_ref(const void *buf, size_t len)
{
    if (prism__dag_tag(buf, len) != DAG_REC_REF)
        return NULL;
    prism_reader r = {(const uint8_t *)buf + DAG_REC_HEAD, len - DAG_REC_HEAD, 0, NULL, NULL, NULL};
    prism_value *v = pr_value(&r, NULL, NULL);
    prism_ref *ref = NULL;
    if (v && !r.left && v->kind == PRISM_VALUE_REF)
        ref = prism_ref_dup(v->ref);
    prism_value_free(v);
    return ref;
}

size_t prism__dag_put(prism_client *c, void *buf, size_t cap, const prism_value *v,
                      prism_ref **held)
{
    *held = NULL;
    size_t n = prism__dag_put_value(buf, cap, v);
    if (n > 0 || prism__dag_has_ref(v) || prism_put(c, v, held) != PRISM_OK)
        return n;
    if ((n = prism__dag_put_ref(buf, cap, *held, c->self_addr)) == 0) {
        prism_ref_release(*held);
        *held = NULL;
    }
    return n;
}

prism_value *prism__dag_read(prism_client *c, const void *buf, size_t len, bool in_place,
                             int timeout_ms)
{
    if (prism__dag_tag(buf, len) == DAG_REC_VALUE)
        return prism__dag_get_value(buf, len, in_place);
    /* Untracked: the get borrows it for its own length only, so the owner
     * hears of no borrower; the writer's reference keeps the object until
     * this reader released the slot. */
    prism_ref *ref = prism__dag_get_ref(buf, len);
    prism_value *v = NULL;
    if (!ref)
        prism__fail(PRISM_ERR_INTERNAL, "a malformed value on the DAG");
    else if (prism_get(c, ref, timeout_ms, &v) != PRISM_OK || prism__dag_has_ref(v)) {
        prism_value_free(v);
        v = NULL;
    }
    prism_ref_release(ref);
    return v;
}

bool prism__dag_is_value(const void *buf, size_t len)
{
    int tag = prism__dag_tag(buf, len);
    return tag == DAG_REC_VALUE || tag == DAG_REC_REF || tag == DAG_REC_DEVICE;
}

int prism__dag_held_init(dag_held *h, size_t nslots)
{
    if (!nslots)
        nslots = 1;
    *h = (dag_held){.refs = calloc(nslots, sizeof *h->refs), .nslots = nslots};
    return h->refs ? 0 : -1;
}

void prism__dag_held_begin(dag_held *h)
{
    prism_ref **slot = &h->refs[h->slot];
    prism_ref_release(*slot);
    *slot = NULL;
}

void prism__dag_held_end(dag_held *h, prism_ref *ref)
{
    h->refs[h->slot] = ref;
    if (++h->slot == h->nslots)
        h->slot = 0;
}

void prism__dag_held_free(dag_held *h)
{
    for (size_t i = 0; h->refs && i < h->nslots; i++)
        prism_ref_release(h->refs[i]);
    free(h->refs);
    h->refs = NULL;
}
