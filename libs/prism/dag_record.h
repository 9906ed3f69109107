/* What travels on a compiled DAG's channels, shared by the driver (dag.c)
 * and the actors' loops (services/worker/dag_loop.c); docs/dags.md#records.
 *
 * A record is a 16-byte head, then a body:
 *
 *   u8 tag | 15 zero bytes | body
 *   DAG_REC_VALUE  the value (codec.h); the head keeps tensor data aligned
 *   DAG_REC_ERROR  str name ("Class.method"), str message: a method failed
 *   DAG_REC_DIED   str name, str message: an actor upstream died
 *   DAG_REC_REF    a reference (codec.h) to the value in the object store,
 *                  for a value whose encoding does not fit the slot
 *   DAG_REC_DEVICE u32 slot, u8 dtype, u8 ndim, u64 shape[ndim], u64 bytes:
 *                  a device tensor in slot `slot` of the edge's CUDA ring
 *   DAG_REC_RING   u64 n, n bytes: the edge's CUDA ring (prism_cuda_ring_export),
 *                  sent once, before the first DEVICE record
 *
 * An error record goes on through every node downstream, so the execution's
 * get names the method that failed, and the next execution runs normally. */
#ifndef PRISM_DAG_RECORD_H
#define PRISM_DAG_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prism_internal.h"

enum {
    DAG_REC_VALUE = 0,
    DAG_REC_ERROR = 1,
    DAG_REC_DIED = 2,
    DAG_REC_REF = 3,
    DAG_REC_DEVICE = 4,
    DAG_REC_RING = 5
};
#define DAG_REC_HEAD 16

/* Whether a value holds an object reference anywhere (edges carry plain values). */
bool prism__dag_has_ref(const prism_value *v);
/* Writes a value record into `buf` of `cap` bytes: its length, or 0 when it
 * does not fit. */
size_t prism__dag_put_value(void *buf, size_t cap, const prism_value *v);
/* The record of a bytes value of `n` bytes: its length, and its head
 * written into `buf` of `cap` bytes, giving where its bytes go (NULL when
 * it does not fit). */
size_t prism__dag_bytes_size(size_t n);
uint8_t *prism__dag_bytes_room(void *buf, size_t cap, size_t n);
/* Writes an error or died record (truncating the message to fit); 0 when
 * not even the head fits. */
size_t prism__dag_put_error(void *buf, size_t cap, int tag, const char *name, const char *msg);
/* The record's tag, or -1 when it is malformed. */
int prism__dag_tag(const void *buf, size_t len);
/* A value record's value: copied, or with `in_place` pointing into `buf`
 * for bytes and tensors (valid while the slot is held). NULL when malformed. */
prism_value *prism__dag_get_value(const void *buf, size_t len, bool in_place);
/* A value record holding a null, bytes or a host tensor, viewed in place
 * into `out` (pr_value_view: nothing allocated, never freed; valid while
 * the slot is held). false for any other record or value: read it with
 * prism__dag_read. */
bool prism__dag_view_value(const void *buf, size_t len, prism_value *out);
/* An error or died record's name and message (heap copies, the caller's). */
int prism__dag_get_error(const void *buf, size_t len, char **name, char **msg);

/* Writes a reference record for `ref`, which `self_addr` owns (0 when it
 * does not fit). */
size_t prism__dag_put_ref(void *buf, size_t cap, const prism_ref *ref, const char *self_addr);
/* A reference record's reference (not tracked in any client); NULL when
 * malformed. */
prism_ref *prism__dag_get_ref(const void *buf, size_t len);

/* Writes `v` as a value record, or, when it does not fit in `cap`, puts it
 * in the object store through `c` and writes a reference record: `*held`
 * is then the reference, which the writer keeps until every reader is done
 * with the slot (the object is freed when the writer lets it go). 0 when
 * neither could be written (a value holding a reference, a failed put). */
size_t prism__dag_put(prism_client *c, void *buf, size_t cap, const prism_value *v,
                      prism_ref **held);
/* The value of a value record (in place as prism__dag_get_value) or of a
 * reference record (fetched through `c`, waiting up to `timeout_ms`).
 * NULL, with prism_last_error set, when malformed or not fetched. */
prism_value *prism__dag_read(prism_client *c, const void *buf, size_t len, bool in_place,
                             int timeout_ms);
/* Whether the record carries a value (a value, reference or device record). */
bool prism__dag_is_value(const void *buf, size_t len);

/* A device tensor's record: `v`'s dtype and shape, its bytes in `slot`. 0
 * when it does not fit. */
size_t prism__dag_put_device(void *buf, size_t cap, uint32_t slot, const prism_value *v);
/* A device record's slot, and the tensor it describes, as a value of
 * device `device` whose data is `base` (not owned: valid while the slot is
 * held), provided its bytes fit `slot_size`. NULL when malformed. */
prism_value *prism__dag_get_device(const void *buf, size_t len, int device,
                                   void *(*slot_addr)(void *ud, uint32_t slot), void *ud,
                                   uint64_t slot_size);
/* A ring record holding the `n` bytes of a ring's handles; 0 when it does not fit. */
size_t prism__dag_put_ring(void *buf, size_t cap, const void *handles, size_t n);
/* The length of that record. */
size_t prism__dag_ring_size(size_t n);
/* A ring record's handles (pointing into `buf`) and their length; NULL when malformed. */
const void *prism__dag_get_ring(const void *buf, size_t len, size_t *n);

/* The references a writer holds for the values in its channel's slots
 * (prism__dag_put): slot k mod nslots holds write k's. `slot` is the next
 * write's (kept, not computed: a division per write shows on a hop). */
typedef struct dag_held {
    prism_ref **refs;
    size_t nslots;
    size_t slot;
} dag_held;

int prism__dag_held_init(dag_held *h, size_t nslots);
/* A write began: the slot it got is free, so every reader is done with the
 * value written there nslots writes ago: its reference goes. */
void prism__dag_held_begin(dag_held *h);
/* The write was published, holding `ref` (may be NULL). */
void prism__dag_held_end(dag_held *h, prism_ref *ref);
void prism__dag_held_free(dag_held *h);

#endif
