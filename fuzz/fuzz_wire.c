/* Frames of the direct protocol (wire.h): a byte stream cut into frames by
 * wire_parse, as workers and owners read their sockets, and each frame's
 * payload read with the pr_* readers in the layout of its type
 * (docs/tasks.md, wire.h). The worker's own frame decoders are static in
 * worker.c; this target reads the same layouts with the same readers, and
 * fuzz_owner runs the owner's real DONE reader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "prism_wire.h"

#define MAX_ARGS 65536

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "wire invariant broken: %s\n", what);
        abort();
    }
}

/* An argument or return slot: an inline value, a stored location or an error. */
static void read_slot(prism_reader *r)
{
    uint8_t slot = pr_u8(r);
    if (slot == SLOT_INLINE) {
        uint32_t len = pr_u32(r);
        const uint8_t *p = pr_bytes(r, len);
        prism_reader vr = {p, p ? len : 0, 0, NULL, NULL, NULL};
        prism_value_free(p ? pr_value(&vr, NULL, NULL) : NULL);
    } else if (slot == SLOT_STORED) {
        pr_bytes(r, PRISM_OBJECT_ID_BYTES);
        for (int i = 0; i < 3; i++)
            free(pr_str(r));
        pr_u64(r);
    } else if (slot == SLOT_ERROR) {
        pr_u8(r);
        free(pr_str(r));
        free(pr_str(r));
    } else {
        r->failed = 1;
    }
}

static void read_slots(prism_reader *r, uint32_t n)
{
    for (uint32_t i = 0; i < n && !r->failed; i++)
        read_slot(r);
}

/* Both sides of the handshake on whatever a peer sends: a proof can only
 * pass when it was made with the key, which random bytes never are. */
static void handshake(uint8_t type, const uint8_t *p, size_t n)
{
    static const uint8_t key[WIRE_KEY_BYTES] = {1, 2, 3};
    static const uint8_t nonce[WIRE_NONCE_BYTES] = {4, 5, 6};
    prism_buf out;
    prism_buf_init(&out, 1024);
    check(type != WIRE_AUTH || wire_auth_accept(key, nonce, p, n, &out) != 0,
          "a forged AUTH passes");
    wire_auth a = {0};
    int rc = wire_auth_step(&a, key, type, p, n, &out);
    check(rc != 0 || (type == WIRE_CHALLENGE && a.state == 1),
          "only a CHALLENGE moves a new peer on");
    if (rc == 0) { /* then an AUTH_OK of random bytes must fail */
        check(wire_auth_step(&a, key, WIRE_AUTH_OK, p, n > 32 ? 32 : n, &out) != 0,
              "a forged AUTH_OK passes");
    }
    prism_buf_free(&out);
}

static void read_payload(uint8_t type, const uint8_t *p, size_t n)
{
    prism_reader r = {p, n, 0, NULL, NULL, NULL};
    switch (type) {
    case WIRE_HELLO:
        free(pr_str(&r));
        free(pr_str(&r));
        break;
    case WIRE_PUSH:           /* task id, package, function, u16 returns, u32 nargs, slots */
    case WIRE_ACTOR_CREATE: { /* actor id, package, class, u16 concurrency, u32 nargs, slots */
        pr_bytes(&r, PRISM_ID_BYTES);
        free(pr_str(&r));
        free(pr_str(&r));
        pr_u16(&r);
        uint32_t nargs = pr_u32(&r);
        if (nargs <= MAX_ARGS)
            read_slots(&r, nargs);
        break;
    }
    case WIRE_DONE: { /* task id, u16 n, n x (slot, u32 m, m x (object id, str owner)) */
        pr_bytes(&r, PRISM_ID_BYTES);
        uint16_t nret = pr_u16(&r);
        for (uint16_t i = 0; i < nret && !r.failed; i++) {
            read_slot(&r);
            uint32_t m = pr_u32(&r);
            for (uint32_t k = 0; k < m && !r.failed; k++) {
                pr_bytes(&r, PRISM_OBJECT_ID_BYTES);
                free(pr_str(&r));
            }
        }
        break;
    }
    case WIRE_CHALLENGE:
    case WIRE_AUTH:
    case WIRE_AUTH_OK: handshake(type, p, n); break;
    default: /* CANCEL, ACTOR_KILL, ACTOR_ATTACH: an id */ pr_bytes(&r, PRISM_ID_BYTES); break;
    }
    check(r.left <= n && r.p >= p && r.p <= p + n, "the reader stays in its frame");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *in = malloc(size ? size : 1);
    if (!in)
        return 0;
    memcpy(in, data, size);
    size_t off = 0;
    for (;;) {
        uint8_t type = 0;
        const uint8_t *payload = NULL;
        size_t plen = 0;
        long used = wire_parse(in + off, size - off, &type, &payload, &plen);
        if (used <= 0)
            break;
        check((size_t)used <= size - off && (size_t)used == 5 + plen && payload == in + off + 5,
              "a frame lies inside the bytes it was cut from");
        read_payload(type, payload, plen);
        off += (size_t)used;
    }
    free(in);
    return 0;
}
