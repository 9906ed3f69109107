/* Identifiers of nodes, workers, jobs, tasks, actors and objects.
 *
 * Every ID is 16 random bytes written as 32 lowercase hex digits, except an
 * object ID: the ID of the task that creates it followed by a 4-byte return
 * index (40 hex digits), so an owner can tell from an object ID alone which
 * task in its lineage rebuilds it. A `put` object uses the putting task's ID
 * with an index counted from PRISM_PUT_INDEX_BASE. */
#ifndef PRISM_ID_H
#define PRISM_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PRISM_ID_BYTES 16
#define PRISM_ID_HEX_LEN (2 * PRISM_ID_BYTES)
#define PRISM_OBJECT_ID_BYTES (PRISM_ID_BYTES + 4)
#define PRISM_OBJECT_ID_HEX_LEN (2 * PRISM_OBJECT_ID_BYTES)
#define PRISM_PUT_INDEX_BASE 0x80000000u

typedef struct prism_id {
    uint8_t b[PRISM_ID_BYTES];
} prism_id;

/* The kinds share one representation; the names say what a field holds. */
typedef prism_id prism_node_id;
typedef prism_id prism_worker_id;
typedef prism_id prism_job_id;
typedef prism_id prism_task_id;

typedef struct prism_object_id {
    uint8_t b[PRISM_OBJECT_ID_BYTES];
} prism_object_id;

/* Fills `n` bytes at `out` from the kernel's random source (nonces, keys). */
void prism_random_bytes(void *out, size_t n);
/* Fills `out` from the kernel's random source. */
void prism_id_random(prism_id *out);
bool prism_id_is_nil(const prism_id *id);
bool prism_id_equal(const prism_id *a, const prism_id *b);
/* Writes 32 hex digits and a NUL. */
void prism_id_to_hex(const prism_id *id, char out[PRISM_ID_HEX_LEN + 1]);
/* Parses exactly 32 hex digits (either case). Returns 0, or -1 on bad text. */
int prism_id_from_hex(prism_id *out, const char *hex);

void prism_object_id_make(prism_object_id *out, const prism_task_id *task, uint32_t index);
void prism_object_id_task(const prism_object_id *oid, prism_task_id *task_out);
uint32_t prism_object_id_index(const prism_object_id *oid);
void prism_object_id_to_hex(const prism_object_id *oid, char out[PRISM_OBJECT_ID_HEX_LEN + 1]);
int prism_object_id_from_hex(prism_object_id *out, const char *hex);

/* Hex helpers shared by the ID kinds and by digests. Returns 0 or -1. */
void prism_hex_encode(const uint8_t *bytes, int n, char *out);
int prism_hex_decode(uint8_t *out, int n, const char *hex);
/* Whether `s` is exactly `n` lowercase hex digits (IDs, sha256s; NULL: false). */
bool prism_is_hex(const char *s, size_t n);

#endif
