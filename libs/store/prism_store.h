/* Client of the node's object store (prism-objectstore) over its Unix socket.
 *
 * The store keeps immutable objects in one shared-memory arena per node.
 * Connecting maps that arena into this process, so reading an object is
 * zero-copy: prism_store_get hands back a pointer into the arena, valid until
 * the matching prism_store_release.
 *
 *   prism_store *st;
 *   char err[256];
 *   if (prism_store_connect(&st, "/run/prism/objectstore.sock", err, sizeof err) != PRISM_STORE_OK)
 *       die("%s", err);
 *
 *   // write: create -> fill -> seal (or prism_store_put in one call)
 *   uint8_t *p;
 *   IFOK(s, prism_store_create(st, &id, NULL, size, NULL, 0, 0, &p));
 *   memcpy(p, bytes, size);
 *   IFOK(s, prism_store_seal(st, &id));
 *
 *   // read: get -> use -> release
 *   prism_store_buffer b;
 *   if (prism_store_get(st, &id, 5000, &b) == PRISM_STORE_OK) {
 *       use(b.data, b.size);
 *       prism_store_release(st, &id);
 *   }
 *   prism_store_destroy(st);
 *
 * Object lifecycle: an object is created (the creator alone may write its
 * bytes), then sealed (from then on it is immutable and visible to every
 * client), or aborted (its space is reclaimed). Deleting a sealed object hides
 * it at once and frees its space when its last reader releases it.
 *
 * Primary and secondary copies: an object created with PRISM_STORE_PIN (or
 * pinned later) is a primary copy. The store never drops it: when the arena is
 * full it spills primary copies to disk and restores them on the next get.
 * Unpinned objects are secondary copies, evicted least-recently-used when
 * space is needed. Objects with readers are never evicted or spilled.
 *
 * Crashes: when a client's connection closes (exit, crash, prism_store_destroy)
 * the store aborts the objects it was still writing and drops its references.
 * When the store goes away, the call in progress returns
 * PRISM_STORE_DISCONNECTED instead of hanging, and the next call connects
 * again (a supervisor restarts a store on the same socket): the new store
 * starts empty. Pointers from the old store stay valid until released (or
 * destroy); their releases, seals and aborts are not sent to the new store,
 * where a seal or abort fails with PRISM_STORE_DISCONNECTED. While the store
 * is gone every call returns PRISM_STORE_DISCONNECTED.
 *
 * Threads: calls on one handle are serialized by a lock, so a handle may be
 * shared, but a get that waits blocks the handle's other callers; give each
 * thread its own handle for concurrency. */
#ifndef PRISM_STORE_H
#define PRISM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prism_id.h"

typedef struct prism_store prism_store;

typedef enum prism_store_status {
    PRISM_STORE_OK = 0,
    PRISM_STORE_ERROR = 1,         /* unexpected failure; see prism_store_last_error */
    PRISM_STORE_NOT_FOUND = 2,     /* no such object (or it was deleted) */
    PRISM_STORE_EXISTS = 3,        /* create: an object with this ID already exists */
    PRISM_STORE_TIMEOUT = 4,       /* get: not sealed within the timeout */
    PRISM_STORE_OUT_OF_MEMORY = 5, /* create: no space even after evicting and spilling */
    PRISM_STORE_TOO_LARGE = 6,     /* create: the object is larger than the whole arena */
    PRISM_STORE_NOT_SEALED = 7,    /* the object is still being written */
    PRISM_STORE_SEALED = 8,        /* seal/abort: the object is already sealed */
    PRISM_STORE_NOT_OWNER = 9,     /* seal/abort: another client created the object */
    PRISM_STORE_NOT_HELD = 10,     /* (reserved) no reference to release */
    PRISM_STORE_INVALID = 11,      /* a bad argument (size, metadata too long, NULL) */
    PRISM_STORE_IO_ERROR = 12,     /* spilling or restoring failed on disk */
    PRISM_STORE_DISCONNECTED = 13, /* the store closed the connection or is gone */
    PRISM_STORE_PROTOCOL = 14,     /* the store answered something unexpected */
} prism_store_status;

/* A stable English text for a status ("object not found"). Never NULL. */
const char *prism_store_status_text(prism_store_status s);

/* Flags of prism_store_create / prism_store_put. */
#define PRISM_STORE_PIN 0x1u /* the object is a primary copy: spilled, never evicted */

/* Longest metadata an object may carry. By convention the metadata is the
 * object's content type ("application/octet-stream"); HTTP clients see it as
 * Content-Type. */
#define PRISM_STORE_MAX_METADATA 1024

/* A sealed object mapped into this process by prism_store_get. The pointers
 * point into the shared arena: read-only, valid until prism_store_release of
 * this ID (or prism_store_destroy). */
typedef struct prism_store_buffer {
    const uint8_t *data;
    uint64_t size;
    const uint8_t *metadata;
    uint32_t metadata_size;
} prism_store_buffer;

/* What prism_store_contains reports. */
typedef enum prism_store_presence {
    PRISM_STORE_ABSENT = 0,
    PRISM_STORE_PRESENT_UNSEALED = 1, /* being written */
    PRISM_STORE_PRESENT_MEMORY = 2,   /* sealed, in the arena */
    PRISM_STORE_PRESENT_SPILLED = 3,  /* sealed, on disk only; a get restores it */
} prism_store_presence;

typedef struct prism_store_stats {
    uint64_t capacity_bytes; /* arena size */
    uint64_t used_bytes;     /* allocated in the arena (sealed, unsealed, restored) */
    uint64_t objects;        /* objects known to the store, spilled ones included */
    uint64_t objects_in_memory;
    uint64_t spilled_bytes;   /* bytes of objects whose only copy is on disk now */
    uint64_t spilled_objects; /* objects whose only copy is on disk now */
    uint64_t spill_files;
    uint64_t evictions_total;     /* secondary copies dropped for space */
    uint64_t spills_total;        /* objects written to disk */
    uint64_t spilled_bytes_total; /* bytes written to disk */
    uint64_t restores_total;      /* objects read back from disk */
    uint64_t restored_bytes_total;
    uint64_t transfer_in_bytes_total;  /* pulled from other nodes */
    uint64_t transfer_out_bytes_total; /* served to other nodes / HTTP clients */
    uint64_t clients;                  /* connected Unix-socket clients */
} prism_store_stats;

/* Connects to the store listening on `socket_path` and maps its arena.
 * On failure `*out` is NULL and `err` (may be NULL) says why. */
prism_store_status prism_store_connect(prism_store **out, const char *socket_path, char *err,
                                       size_t errlen);
/* The same; with `lazy` the arena's pages are never all mapped at connect,
 * only as large creates and gets use them (docs/objectstore.md): for a
 * process that must be ready at once and exit fast, as a worker. */
prism_store_status prism_store_connect_lazy(prism_store **out, const char *socket_path, bool lazy,
                                            char *err, size_t errlen);
/* Closes the connection and unmaps the arena: every pointer from this handle
 * becomes invalid, and the store drops its references. NULL is a no-op. */
void prism_store_destroy(prism_store *st);

/* Creates an unsealed object of `size` bytes and returns in `*data` where to
 * write them (writable until seal or abort). `metadata` (may be NULL, at most
 * PRISM_STORE_MAX_METADATA bytes) is copied into the store now. When the
 * arena is full the store evicts secondary copies and spills primary copies
 * first; PRISM_STORE_OUT_OF_MEMORY or PRISM_STORE_TOO_LARGE if that is not
 * enough.
 *
 * `owner` is the ID of the Prism client that owns the object (its address is
 * owner:HEX of that ID). A store on NATS asks each owner now and then whether
 * it still holds its objects, and frees those it no longer holds or whose
 * owner is gone (docs/objectstore.md#owners). NULL: no owner; the object
 * stays until deleted. */
prism_store_status prism_store_create(prism_store *st, const prism_object_id *id,
                                      const prism_id *owner, uint64_t size, const void *metadata,
                                      uint32_t metadata_size, unsigned flags, uint8_t **data);
/* Makes the object immutable and visible; wakes clients waiting in get. */
prism_store_status prism_store_seal(prism_store *st, const prism_object_id *id);
/* Drops an unsealed object this client created and reclaims its space. */
prism_store_status prism_store_abort(prism_store *st, const prism_object_id *id);

/* create + copy + seal in one call; small objects travel inside the request
 * (one round trip). `data` is copied; the caller keeps it.
 *
 * A creator often reads back what it put, so a small put also leaves this
 * handle a reference to the object: until the handle's next request to the
 * store, a get of that object is answered without asking the store (as
 * plasma's clients do). The reference goes with that next request (in the
 * same send), or after the last such get is released if one is still out;
 * meanwhile the object is neither evicted nor spilled, and its space, if
 * another client deletes it, is freed then. */
prism_store_status prism_store_put(prism_store *st, const prism_object_id *id,
                                   const prism_id *owner, const void *data, uint64_t size,
                                   const void *metadata, uint32_t metadata_size, unsigned flags);

/* Maps a sealed object, waiting up to `timeout_ms` for it to be sealed
 * (0: do not wait, -1: wait forever). A spilled object is restored first.
 * Each successful get takes one reference; give it back with release. */
prism_store_status prism_store_get(prism_store *st, const prism_object_id *id, int timeout_ms,
                                   prism_store_buffer *out);
/* Gives back one reference taken by get. Asynchronous: it returns once the
 * request is sent, without waiting for an answer; the store ignores a release
 * of a reference this client does not hold. */
prism_store_status prism_store_release(prism_store *st, const prism_object_id *id);

/* Deletes a sealed object (its space is freed after the last release) and
 * its spilled copy. */
prism_store_status prism_store_delete(prism_store *st, const prism_object_id *id);
/* Marks the object as a primary copy (never evicted, spilled instead), or
 * back as an evictable secondary copy. */
prism_store_status prism_store_pin(prism_store *st, const prism_object_id *id);
prism_store_status prism_store_unpin(prism_store *st, const prism_object_id *id);

prism_store_status prism_store_contains(prism_store *st, const prism_object_id *id,
                                        prism_store_presence *out);
prism_store_status prism_store_stats_get(prism_store *st, prism_store_stats *out);

/* Size of the arena this handle mapped. */
uint64_t prism_store_capacity(const prism_store *st);
/* The store's HTTP URL, as it said on connecting ("" when it did not know it
 * yet): where stores on other nodes pull this store's objects from. */
const char *prism_store_url(const prism_store *st);

/* Text of the last failure on this handle ("" when none); valid until the next call. */
const char *prism_store_last_error(const prism_store *st);

#endif
