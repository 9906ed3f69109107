/* The records on compiled DAGs' channels (libs/prism/dag_record.h), as an
 * actor's loop or the driver reads them from a slot another process wrote.
 *
 * Input: a record. Checks: a value record decodes the same in place and
 * copied (for bytes, the record's own path against the codec's), and viewed
 * without an allocation where it is flat (null, bytes, a tensor: same kind,
 * bytes and shape, its data within the record); what decodes re-encodes,
 * and decoding that gives the same bytes again (stable after one round); a
 * bytes value's record is byte for byte what the codec writes; an error
 * record's name and message survive a round trip; a device record's tensor
 * lies within its slot and re-encodes; a ring record re-encodes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "dag_record.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "dag record invariant broken: %s\n", what);
        abort();
    }
}

/* A record of `v` in a buffer of its own (`*len` bytes), or NULL. */
static uint8_t *put(const prism_value *v, size_t cap, size_t *len)
{
    uint8_t *buf = malloc(cap);
    *len = buf ? prism__dag_put_value(buf, cap, v) : 0;
    if (!*len) {
        free(buf);
        return NULL;
    }
    return buf;
}

static void value_round_trip(const uint8_t *data, size_t size)
{
    prism_value *copy = prism__dag_get_value(data, size, false);
    prism_value *in_place = prism__dag_get_value(data, size, true);
    check(!copy == !in_place, "in place and copied decoding agree");
    prism_value view;
    if (prism__dag_view_value(data, size, &view)) {
        size_t n = 0;
        const uint8_t *p = prism_value_data(&view, &n), *q = prism_value_data(copy, NULL);
        check(copy && prism_value_kind_of(copy) == view.kind && n == copy->len &&
                  (!n || (p > data && p + n <= data + size && !memcmp(p, q, n))) &&
                  view.ndim == copy->ndim && view.dtype == copy->dtype &&
                  !memcmp(view.shape, copy->shape, sizeof view.shape),
              "a view is the copied value, in place");
    }
    if (!copy)
        return;
    size_t nc = 0, ni = 0;
    const uint8_t *pc = prism_value_data(copy, &nc), *pi = prism_value_data(in_place, &ni);
    check(prism_value_kind_of(copy) == prism_value_kind_of(in_place) && nc == ni &&
              (!nc || !memcmp(pc, pi, nc)),
          "copied (a bytes record's own path) and in place (the codec's) agree");
    /* Not the input's size: the reader takes any tensor padding, the writer
     * pads to the alignment, so a canonical record may be the longer one. */
    size_t cap = DAG_REC_HEAD + pw_value_size(copy, NULL), n1, n2;
    uint8_t *once = put(copy, cap, &n1), *twice = NULL;
    check(once != NULL && n1 == cap, "a decoded value re-encodes at its size");
    if (prism_value_kind_of(copy) == PRISM_VALUE_BYTES) {
        uint8_t *gen = calloc(1, cap);
        prism_writer w = {.out = gen ? gen + DAG_REC_HEAD : NULL, .cap = cap - DAG_REC_HEAD};
        if (gen)
            pw_value(&w, copy, NULL);
        check(!gen || (!w.failed && DAG_REC_HEAD + w.pos == n1 && !memcmp(gen, once, n1)),
              "a bytes record is what the codec writes");
        free(gen);
    }
    prism_value *again = prism__dag_get_value(once, n1, false);
    check(again != NULL, "a re-encoded value decodes");
    twice = put(again, cap, &n2);
    check(twice && n1 == n2 && !memcmp(once, twice, n1), "stable after one round");
    prism_value_free(again);
    prism_value_free(copy);
    prism_value_free(in_place);
    free(once);
    free(twice);
}

static void error_round_trip(const uint8_t *data, size_t size, int tag)
{
    char *name, *msg, *name2, *msg2;
    if (prism__dag_get_error(data, size, &name, &msg) != 0)
        return;
    size_t cap = DAG_REC_HEAD + 8 + strlen(name) + strlen(msg);
    uint8_t *buf = malloc(cap);
    size_t n = buf ? prism__dag_put_error(buf, cap, tag, name, msg) : 0;
    if (n && strlen(name) <= 255 && strlen(name) == strnlen(name, 255)) {
        check(prism__dag_get_error(buf, n, &name2, &msg2) == 0, "an error record decodes");
        check(!strncmp(name, name2, 255) && !strcmp(msg, msg2), "an error survives");
        free(name2);
        free(msg2);
    }
    free(buf);
    free(name);
    free(msg);
}

/* A device slot's address for prism__dag_get_device: a fake base, never
 * dereferenced (the value only points at it). */
static void *slot_addr(void *ud, uint32_t slot)
{
    return slot < 4 ? (uint8_t *)ud + (size_t)slot * 4096 : NULL;
}

static void device_round_trip(const uint8_t *data, size_t size)
{
    static uint8_t base[4 * 4096];
    prism_value *v = prism__dag_get_device(data, size, 0, slot_addr, base, 4096);
    if (!v)
        return;
    size_t len;
    const uint8_t *p = prism_value_data(v, &len);
    check(prism_value_device(v) == 0 && len <= 4096 && p >= base && p < base + sizeof base,
          "a device record stays within its slot");
    uint8_t buf[DAG_REC_HEAD + 16 + 8 * PRISM_MAX_DIMS];
    size_t n = prism__dag_put_device(buf, sizeof buf, (uint32_t)((p - base) / 4096), v);
    prism_value *again = n ? prism__dag_get_device(buf, n, 0, slot_addr, base, 4096) : NULL;
    check(again && prism_value_data(again, NULL) == p, "a device record re-encodes");
    prism_value_free(again);
    prism_value_free(v);
}

static void ring_round_trip(const uint8_t *data, size_t size)
{
    size_t n;
    const void *h = prism__dag_get_ring(data, size, &n);
    if (!h)
        return;
    uint8_t *buf = malloc(size);
    check(buf && prism__dag_put_ring(buf, size, h, n) == size && buf[0] == data[0],
          "a ring record re-encodes at its size");
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int tag = prism__dag_tag(data, size);
    if (tag == DAG_REC_VALUE)
        value_round_trip(data, size);
    else if (tag == DAG_REC_REF)
        prism_ref_release(prism__dag_get_ref(data, size));
    else if (tag == DAG_REC_DEVICE)
        device_round_trip(data, size);
    else if (tag == DAG_REC_RING)
        ring_round_trip(data, size);
    else if (tag >= 0)
        error_round_trip(data, size, tag);
    return 0;
}
