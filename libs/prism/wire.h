/* Frames of the direct protocol between owners and workers (docs/tasks.md):
 *   u32 length (of type + payload, little-endian) | u8 type | payload */
#ifndef PRISM_WIRE_H
#define PRISM_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prism_buf.h"

#define WIRE_MAX_FRAME (256u << 20)

enum wire_type {
    WIRE_HELLO = 1, /* owner → worker: str lease_id, str owner address */
    WIRE_PUSH = 2,  /* owner → worker: a task */
    WIRE_DONE = 3,  /* worker → owner: task id, u16 n, n x (slot, u32 m, m x (object id,
                     * str owner): the references inside that return) */
    WIRE_CANCEL = 4, /* owner → worker: task id (drop it if not started) */
    WIRE_ACTOR_CREATE = 5, /* GCS → worker: actor id, str package, str class, u16
                            * max_concurrency, u32 nargs, slots (docs/actors.md) */
    WIRE_ACTOR_KILL = 6,   /* GCS → worker: actor id: run the destructor and exit */
    WIRE_ACTOR_ATTACH = 7, /* GCS → worker: actor id: a restarted GCS takes over */
};

/* How an argument or a return travels. */
enum wire_slot {
    SLOT_INLINE = 1, /* the encoded value follows (u32 length + bytes) */
    SLOT_STORED = 2, /* object id, str node id, str store socket, str store URL, u64 size */
    SLOT_ERROR = 3,  /* u8 status, str task, str message */
};

/* The owners' protocol over NATS (docs/tasks.md#borrowing): a request is
 * u8 op, str from, u32 wait_ms, u32 n, then n x (object id, u32 count). */
enum owner_op { OWNER_GET = 1, OWNER_ADD, OWNER_REMOVE, OWNER_PING };

/* "owner:HEX" -> "prism.owner.HEX" in `out`; false for an address that names no owner. */
bool wire_owner_subject(const char *addr, char *out, size_t n);

/* Initializes `b` with a request's head; its n items are appended after. */
void wire_owner_request(prism_buf *b, uint8_t op, const char *from, uint32_t wait_ms, uint32_t n);

/* Starts a frame in `b` (reserving the length); finish it with wire_end. */
void wire_begin(prism_buf *b, uint8_t type);
/* Fills in the length of the frame that starts at `start`. */
void wire_end(prism_buf *b, size_t start);

/* Parses one complete frame at the start of `data`. Returns its total size
 * (0 when more bytes are needed, -1 for a malformed length). */
long wire_parse(const uint8_t *data, size_t len, uint8_t *type, const uint8_t **payload,
                size_t *payload_len);

/* Sends all of `len` bytes on a blocking socket. Returns 0 or -1. */
int wire_send_all(int fd, const void *data, size_t len);

/* Connects to "unix:PATH" or "tcp:HOST:PORT". Returns the fd or -1. */
int wire_connect(const char *address);

#endif
