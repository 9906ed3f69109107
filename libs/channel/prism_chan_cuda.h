/* CUDA device channels (docs/dags.md#cuda-channels), built only with the CUDA
 * toolkit (PRISM_HAVE_CUDA): the device side of a channel between GPU actors.
 *
 * Same node: a ring of `nslots` device buffers of `slot_size` bytes,
 * allocated once when the channel is made (at compile) by its writer's
 * process and exported as CUDA IPC handles; each reader's process maps them
 * once (prism_cuda_ring_open). Which slot holds which value, and when, still
 * rides on an ordinary channel (prism_channel.h): the writer begins a write
 * there (which waits until every reader released that slot), copies the
 * value into the device slot on its stream and records the slot's
 * interprocess event, then publishes a small record naming the slot and the
 * length. A reader that read the record makes its stream wait for the
 * slot's event, so the device bytes are ordered after the writer's copy
 * without the host waiting; it must be done with the slot on the device
 * (prism_cuda_ring_get, or prism_cuda_ring_sync after its own work) before
 * it releases the record.
 *
 *   writer                                   reader (another process)
 *   prism_chan_begin_write(ctl, &rec, t)     prism_chan_begin_read(ctl, &rec, &n, t)
 *   prism_cuda_ring_put(ring, s, src, len)   prism_cuda_ring_get(ring, s, dst, len)
 *   prism_chan_end_write(ctl, record)        prism_chan_end_read(ctl)
 *
 * Across nodes: a device value is staged through pinned host memory
 * (prism_cuda_stage) and travels in an ordinary channel's frame.
 *
 * Every call returns 0, or -1 with the CUDA error in `err`. A ring is used
 * by one thread at a time. */
#ifndef PRISM_CHAN_CUDA_H
#define PRISM_CHAN_CUDA_H

#include <stddef.h>
#include <stdint.h>

/* Whether this process sees a CUDA device: 1, or 0 with why not in `why`
 * (no driver, no device, CUDA_VISIBLE_DEVICES empty). */
int prism_cuda_available(char *why, size_t n);

typedef struct prism_cuda_ring prism_cuda_ring;

#define PRISM_CUDA_RING_MAX_SLOTS 1024

/* Allocates the ring on `device`: nslots (1 to PRISM_CUDA_RING_MAX_SLOTS)
 * buffers of slot_size bytes, and one interprocess event per slot. */
int prism_cuda_ring_create(prism_cuda_ring **out, int device, uint32_t nslots, uint64_t slot_size,
                           char *err, size_t n);
/* The bytes of the ring's handles (a header, the memory's IPC handle, one
 * per slot's event): what a reader's process needs, to be sent over an
 * authenticated channel. `buf` NULL: the size needed. */
size_t prism_cuda_ring_export(const prism_cuda_ring *r, void *buf, size_t len);
/* Maps a ring exported by another process of this node (not this one: CUDA
 * IPC refuses the process that allocated). The handles are checked. */
int prism_cuda_ring_open(prism_cuda_ring **out, const void *buf, size_t len, char *err, size_t n);
/* The exported handles over a connected stream socket, length first (an
 * authenticated one: a rendezvous socket, a socketpair). `r` NULL sends
 * "none" (length 0), for a writer that has no device. 0, or -1 with errno. */
int prism_cuda_ring_send(int sock, const prism_cuda_ring *r);
/* Receives what prism_cuda_ring_send sent and maps it (prism_cuda_ring_open):
 * 0 with `*out` the ring, or NULL when "none" was sent; -1 with `err`. */
int prism_cuda_ring_recv(int sock, prism_cuda_ring **out, char *err, size_t n);
/* Slot `slot`'s device address (valid while the ring lives), for a method
 * that works on the value in place. */
void *prism_cuda_ring_slot(const prism_cuda_ring *r, uint32_t slot);
uint64_t prism_cuda_ring_slot_size(const prism_cuda_ring *r);
/* The device the ring is on, as this process numbers it. */
int prism_cuda_ring_device(const prism_cuda_ring *r);
uint32_t prism_cuda_ring_nslots(const prism_cuda_ring *r);
/* Writer: copies `len` bytes from `src` (device or host memory) into the
 * slot on the ring's stream, then records the slot's event. Returns without
 * waiting for the copy. `src` must be ready in that stream's order: made on
 * prism_cuda_ring_stream, or its maker synchronised (a cudaMemcpy from
 * pageable host memory may return before the device has the bytes). */
int prism_cuda_ring_put(prism_cuda_ring *r, uint32_t slot, const void *src, uint64_t len, char *err,
                        size_t n);
/* Reader: orders the ring's stream after the slot's last put (no host
 * wait); work queued on prism_cuda_ring_stream after it sees the value. */
int prism_cuda_ring_wait(prism_cuda_ring *r, uint32_t slot, char *err, size_t n);
/* The ring's stream (a cudaStream_t). */
void *prism_cuda_ring_stream(const prism_cuda_ring *r);
/* Reader: waits for the slot, copies `len` bytes out into `dst` (device or
 * host) and waits until the copy is done: the slot may then be released. */
int prism_cuda_ring_get(prism_cuda_ring *r, uint32_t slot, void *dst, uint64_t len, char *err,
                        size_t n);
/* Waits until everything queued on the ring's stream is done. */
int prism_cuda_ring_sync(prism_cuda_ring *r, char *err, size_t n);
/* Unmaps (a reader) or frees (the writer) the ring. NULL is a no-op. */
void prism_cuda_ring_destroy(prism_cuda_ring *r);

/* The host-staged path across nodes: one pinned host buffer of `max`
 * bytes and a stream on `device`. */
typedef struct prism_cuda_stage prism_cuda_stage;
int prism_cuda_stage_create(prism_cuda_stage **out, int device, uint64_t max, char *err, size_t n);
/* Copies `len` device bytes at `dev` into the pinned buffer and waits:
 * `*host` points at them until the next call (send them in a frame). */
int prism_cuda_stage_out(prism_cuda_stage *s, const void *dev, uint64_t len, const void **host,
                         char *err, size_t n);
/* Copies `len` host bytes (a received frame) to `dev` through the pinned
 * buffer and waits. */
int prism_cuda_stage_in(prism_cuda_stage *s, void *dev, const void *host, uint64_t len, char *err,
                        size_t n);
void prism_cuda_stage_destroy(prism_cuda_stage *s);

#endif
