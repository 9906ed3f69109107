/* libprism internals shared between its files; not part of the public API. */
#ifndef PRISM_INTERNAL_H
#define PRISM_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>

#include "prism/prism.h"
#include "prism_id.h"

#define PRISM_INLINE_MAX (100u * 1024u) /* values up to this size travel inline */
#define WIRE_VALUE_MAX (1ull << 40)     /* largest encoded value */

/* Sets this thread's last error and status and returns `s`. */
prism_status prism__fail(prism_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Whether an options struct's `reserved` words are all zero (as its
 * initializers leave them): the room later minor versions take fields from. */
bool prism__reserved_zero(const uint64_t *reserved, size_t n);
#define PRISM__RESERVED_ZERO(opts)                                                                 \
    prism__reserved_zero((opts)->reserved, sizeof(opts)->reserved / sizeof(opts)->reserved[0])

struct prism_value {
    prism_value_kind kind;
    char *text;    /* JSON text; ERROR task name */
    char *message; /* ERROR message */
    uint8_t *data; /* BYTES / TENSOR bytes */
    size_t len;
    prism_dtype dtype;
    int ndim;
    int64_t shape[PRISM_MAX_DIMS];
    prism_value **items; /* LIST */
    size_t nitems, cap;
    prism_ref *ref; /* REF */
    /* When `data` points into memory someone else owns (the object store's
     * arena), `release(release_ud)` is called instead of free(data). */
    void (*release)(void *ud);
    void *release_ud;
    /* A TENSOR whose `data` is CUDA device memory: its device + 1 (0: host
     * memory). Never encoded: only a compiled DAG's loop moves it. */
    int device1;
};

/* A reference handle. Each live handle counts once in its owner's table. */
struct prism_ref {
    prism_object_id id;
    char hex[PRISM_OBJECT_ID_HEX_LEN + 1];
    char *owner;          /* owner's address ("tcp:host:port"); NULL: this process owns it */
    prism_client *client; /* the client that tracks this handle, or NULL */
};

/* Creates a handle to `id` owned at `owner` (NULL: the caller's client).
 * Counts one reference in `client`'s table when `client` is not NULL. */
prism_ref *prism__ref_new(prism_client *client, const prism_object_id *id, const char *owner);

/* Called with true before a get or wait blocks, and with false after: the
 * worker runtime lends its CPU back to the node meanwhile. One per process. */
void prism__set_block_hook(void (*hook)(void *ud, bool blocked), void *ud);

/* prism_value_free for code that holds `c`'s lock: references it tracks are
 * dropped without taking the lock again. */
void prism__value_free_locked(prism_client *c, prism_value *v);

/* Whether a value stored by node `node` through socket `socket` is in the local
 * store (node `my_node`, socket `my_socket`). Node IDs decide when both are
 * known: socket paths are only unique on one machine. */
bool prism__same_store(const char *node, const char *socket, const char *my_node,
                       const char *my_socket);

/* A bytes value of `len` bytes not yet written (its data never NULL). */
prism_value *prism__value_bytes_room(size_t len);
/* A value that borrows `data` (zero-copy); `release(ud)` runs when it is freed. */
prism_value *prism__value_borrowed(prism_value_kind kind, const uint8_t *data, size_t len,
                                   void (*release)(void *), void *ud);
/* Why a value holding device memory was refused (after "the value " or
 * "argument N "). */
#define PRISM__ON_DEVICE                                                                           \
    "holds a tensor in device memory, which travels only between the actors of a compiled DAG "    \
    "(docs/dags.md#gpu-values)"
/* Whether `v` is, or holds, a tensor in device memory. */
bool prism__value_on_device(const prism_value *v);

#endif
