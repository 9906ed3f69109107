/* Frames of the direct protocol between owners and workers (docs/tasks.md):
 *   u32 length (of type + payload, little-endian) | u8 type | payload
 *
 * Every connection opens with a challenge-response on the cluster's secret
 * (docs/security.md): the worker sends CHALLENGE on accept, the peer answers
 * AUTH, and the worker acts on nothing before a valid AUTH; its AUTH_OK proves
 * to the peer that the worker holds the secret too. The token itself never
 * crosses the connection. A peer may send its frames right after AUTH without
 * waiting for AUTH_OK, so the handshake costs no round trip of its own. */
#ifndef PRISM_WIRE_H
#define PRISM_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prism_buf.h"
#include "prism_id.h"

#define WIRE_MAX_FRAME (256u << 20)

enum wire_type {
    WIRE_HELLO = 1,        /* owner → worker: str lease_id, str owner address */
    WIRE_PUSH = 2,         /* owner → worker: a task */
    WIRE_DONE = 3,         /* worker → owner: task id, u16 n, n x (slot, u32 m, m x (object id,
                            * str owner): the references inside that return) */
    WIRE_CANCEL = 4,       /* owner → worker: task id (drop it if not started) */
    WIRE_ACTOR_CREATE = 5, /* GCS → worker: actor id, str package, str class, u16
                            * max_concurrency, u32 nargs, slots (docs/actors.md) */
    WIRE_ACTOR_KILL = 6,   /* GCS → worker: actor id: run the destructor and exit */
    WIRE_ACTOR_ATTACH = 7, /* GCS → worker: actor id: a restarted GCS takes over */
    WIRE_CHALLENGE = 8,    /* worker → peer, first: u8 version, server nonce */
    WIRE_AUTH = 9,         /* peer → worker, first: client nonce, client proof */
    WIRE_AUTH_OK = 10,     /* worker → peer: server proof */
};

#define WIRE_NONCE_BYTES 32
#define WIRE_KEY_BYTES 32
/* The longest frame a worker reads before the peer proved itself. */
#define WIRE_AUTH_FRAME_MAX (4 + 1 + 2 * WIRE_NONCE_BYTES)

/* How an argument or a return travels. */
enum wire_slot {
    SLOT_INLINE = 1, /* the encoded value follows (u32 length + bytes) */
    SLOT_STORED = 2, /* object id, str node id, str store socket, str store URL, u64 size */
    SLOT_ERROR = 3,  /* u8 status, str task, str message */
};

/* The owners' protocol over NATS (docs/tasks.md#borrowing): a request is
 * u8 op, str from, u32 wait_ms, u32 n, then n x (object id, u32 count).
 * HOLDS (from object stores) is answered u32 n, then n bytes: 1 for each
 * object the owner still holds. */
enum owner_op { OWNER_GET = 1, OWNER_ADD, OWNER_REMOVE, OWNER_PING, OWNER_HOLDS };

/* The GCS's address as a borrower: it holds an actor's stored constructor
 * arguments while the actor may restart, and answers PING on it. */
#define WIRE_GCS_BORROWER "owner:gcs"

/* The key of the handshake, derived from the cluster token ("" when the
 * cluster runs without auth): proofs made with it reveal nothing of the token. */
void wire_auth_key(const char *token, uint8_t key[WIRE_KEY_BYTES]);

/* Worker side: appends a CHALLENGE with a fresh nonce (kept in `nonce`) to `out`. */
void wire_auth_challenge(prism_buf *out, uint8_t nonce[WIRE_NONCE_BYTES]);
/* Worker side: checks the payload of an AUTH frame against the nonce sent;
 * on success appends AUTH_OK to `out` and returns 0, else returns -1. */
int wire_auth_accept(const uint8_t key[WIRE_KEY_BYTES], const uint8_t nonce[WIRE_NONCE_BYTES],
                     const uint8_t *payload, size_t len, prism_buf *out);

/* Peer side of one connection's handshake. Zero-initialized: waiting for the challenge. */
typedef struct wire_auth {
    int state; /* 0 waiting for CHALLENGE, 1 for AUTH_OK, 2 done */
    uint8_t server_nonce[WIRE_NONCE_BYTES], client_nonce[WIRE_NONCE_BYTES];
} wire_auth;

static inline bool wire_auth_done(const wire_auth *a) { return a->state == 2; }
/* Peer side: feeds a frame that arrived before the handshake was done. A
 * CHALLENGE makes the AUTH frame, which `reply` gets and which must be sent
 * before any other frame; AUTH_OK is checked. Returns 0, or -1 when the
 * worker failed to prove itself or sent something else first. */
int wire_auth_step(wire_auth *a, const uint8_t key[WIRE_KEY_BYTES], uint8_t type,
                   const uint8_t *payload, size_t len, prism_buf *reply);

/* "owner:HEX" -> "prism.owner.HEX" in `out`; false for an address that names no owner. */
bool wire_owner_subject(const char *addr, char *out, size_t n);
/* "owner:HEX" -> the owner's ID; false for an address that names no owner (e.g. "gcs"). */
bool wire_owner_id(const char *addr, prism_id *out);

/* Initializes `b` with a request's head; its n items are appended after. */
void wire_owner_request(prism_buf *b, uint8_t op, const char *from, uint32_t wait_ms, uint32_t n);

/* Starts a frame in `b` (reserving the length); finish it with wire_end. */
void wire_begin(prism_buf *b, uint8_t type);
/* Fills in the length of the frame that starts at `start`. */
void wire_end(prism_buf *b, size_t start);

/* The total size a frame declares in its first 4 bytes (header included). */
static inline size_t wire_frame_size(const uint8_t *data)
{
    return 4 +
           ((size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 | (size_t)data[3] << 24);
}

/* Parses one complete frame at the start of `data`. Returns its total size
 * (0 when more bytes are needed, -1 for a malformed length). */
long wire_parse(const uint8_t *data, size_t len, uint8_t *type, const uint8_t **payload,
                size_t *payload_len);

#endif
