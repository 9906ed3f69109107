/* Device tensors on a compiled DAG's edges (docs/dags.md#gpu-values), for
 * the actor loop (dag_loop.c). Built against the CUDA runtime when the
 * toolkit was found (PRISM_HAVE_CUDA); otherwise every call that would move
 * device memory fails with a message saying the worker has no CUDA.
 *
 * An edge whose readers are all actors of this node carries a device tensor
 * in a ring of device slots its writer makes on first use
 * (libs/channel/prism_chan_cuda.h): the writer copies the tensor into the
 * slot of the channel write it is about to publish and waits for the copy
 * (host-ordered: its readers need no CUDA event), then publishes a device
 * record naming the slot. Its readers map the ring from the ring record sent
 * once before, and hand their methods a device tensor in the slot. Any
 * other edge gets the tensor copied to host memory. */
#ifndef PRISM_WORKER_DAG_DEVICE_H
#define PRISM_WORKER_DAG_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "prism/prism.h"

/* An edge's ring: the writer's (NULL until its first device tensor) or a
 * reader's mapping of it; a prism_cuda_ring in a build with CUDA. */
typedef struct prism_cuda_ring dag_dev_ring;

/* Makes the ring of an edge whose channel has `nslots` slots: slot_size
 * bytes each on `device`. 0, or -1 with `err`. */
int dag_dev_ring_create(dag_dev_ring **out, int device, uint32_t nslots, uint64_t slot_size,
                        char *err, size_t n);
/* Writes the ring record (the ring's handles) into `buf` of `cap` bytes:
 * its length, or 0 when it does not fit. `buf` NULL: the length it needs. */
size_t dag_dev_ring_record(const dag_dev_ring *r, void *buf, size_t cap);
/* Copies device tensor `v` into slot `slot` and waits for the copy, then
 * writes its device record into `buf`: the record's length, or 0 with
 * `err`. */
size_t dag_dev_ring_put(dag_dev_ring *r, uint32_t slot, const prism_value *v, void *buf, size_t cap,
                        char *err, size_t n);
/* A reader's mapping of the ring in ring record `buf`. NULL with `err`. */
dag_dev_ring *dag_dev_ring_open(const void *buf, size_t len, char *err, size_t n);
/* A device record's tensor, in place in the reader's mapping (valid while
 * the channel slot is held). NULL when malformed. */
prism_value *dag_dev_ring_read(dag_dev_ring *r, const void *buf, size_t len);
void dag_dev_ring_destroy(dag_dev_ring *r);

/* `v` (which holds device tensors) with every device tensor copied into a
 * host tensor: a new value, or NULL with `err`. */
prism_value *dag_dev_to_host(const prism_value *v, char *err, size_t n);

#endif
