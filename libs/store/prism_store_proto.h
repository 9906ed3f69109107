/* Wire format of the object store's Unix-socket protocol, shared by the
 * client library and prism-objectstore. Not part of the public API.
 *
 * Every message is a frame: an 8-byte header then `len` body bytes. Requests
 * are answered in order, one reply per request, except those sent with
 * PSP_FLAG_NOREPLY. A reply has the request's type with PSP_REPLY set and its
 * body starts with an int32 status (prism_store_status). Integers are in host
 * byte order: both ends are on one machine. The HELLO reply carries the
 * arena's memfd as SCM_RIGHTS ancillary data.
 *
 * The store closes a connection that sends a frame it cannot parse: an unknown
 * type, a body longer than PSP_MAX_FRAME, or a body whose length does not
 * match its type. */
#ifndef PRISM_STORE_PROTO_H
#define PRISM_STORE_PROTO_H

#include <stdint.h>

#include "prism_id.h"

#define PSP_VERSION 3u
#define PSP_MAX_FRAME (1u << 20)     /* largest request body */
#define PSP_INLINE_MAX (256u * 1024) /* put sends data inline up to this size */
#define PSP_REPLY 0x8000u
#define PSP_FLAG_NOREPLY 0x1u
#define PSP_FLAG_PIN 0x2u
/* PUT: the creator also takes a reference, as a get would; the reply is then
 * a psp_get_rep (where the object is). */
#define PSP_FLAG_HOLD 0x4u

/* HELLO reply flags */
#define PSP_ARENA_PREFAULTED 0x1u /* the store touched every page: map with MAP_POPULATE */

enum psp_type {
    PSP_HELLO = 1,
    PSP_CREATE,
    PSP_SEAL,
    PSP_ABORT,
    PSP_PUT,
    PSP_GET,
    PSP_RELEASE,
    PSP_DELETE,
    PSP_PIN,
    PSP_UNPIN,
    PSP_CONTAINS,
    PSP_STATS,
    PSP_TYPE_COUNT
};

typedef struct psp_hdr {
    uint32_t len; /* body bytes after this header */
    uint16_t type;
    uint16_t flags;
} psp_hdr;

typedef struct psp_hello_req {
    uint32_t version;
    uint32_t pid;
} psp_hello_req;

#define PSP_URL_MAX 256

typedef struct psp_hello_rep {
    int32_t status;
    uint32_t version;
    uint64_t arena_size;
    uint32_t flags;
    uint32_t pad;
    char url[PSP_URL_MAX]; /* the store's HTTP URL, NUL-terminated ("" before it serves) */
} psp_hello_rep;

/* SEAL, ABORT, RELEASE, DELETE, PIN, UNPIN, CONTAINS */
typedef struct psp_id_req {
    uint8_t id[PRISM_OBJECT_ID_BYTES];
} psp_id_req;

/* CREATE, and PUT followed by metadata_size + data_size bytes; CREATE is
 * followed by metadata_size bytes. */
typedef struct psp_create_req {
    uint8_t id[PRISM_OBJECT_ID_BYTES];
    uint32_t metadata_size;
    uint64_t data_size;
    uint8_t owner[PRISM_ID_BYTES]; /* the owning client's ID; all zero: no owner */
} psp_create_req;

typedef struct psp_create_rep {
    int32_t status;
    uint32_t pad;
    uint64_t offset; /* of the data in the arena; metadata follows the data */
} psp_create_rep;

typedef struct psp_get_req {
    uint8_t id[PRISM_OBJECT_ID_BYTES];
    int32_t timeout_ms;
} psp_get_req;

/* GET, and PUT with PSP_FLAG_HOLD */
typedef struct psp_get_rep {
    int32_t status;
    uint32_t metadata_size;
    uint64_t offset;
    uint64_t data_size;
} psp_get_rep;

/* SEAL, ABORT, DELETE, PIN, UNPIN, PUT without PSP_FLAG_HOLD */
typedef struct psp_status_rep {
    int32_t status;
} psp_status_rep;

typedef struct psp_contains_rep {
    int32_t status;
    uint32_t presence; /* prism_store_presence */
} psp_contains_rep;

typedef struct psp_stats_rep {
    int32_t status;
    uint32_t pad;
    uint64_t v[15]; /* the fields of prism_store_stats, in order */
} psp_stats_rep;

_Static_assert(sizeof(psp_hdr) == 8, "header layout");
_Static_assert(sizeof(psp_create_req) == 48, "create layout");
_Static_assert(sizeof(psp_get_req) == 24, "get layout");
_Static_assert(sizeof(psp_hello_rep) == 24 + PSP_URL_MAX, "hello reply layout");
_Static_assert(sizeof(psp_get_rep) == 24, "get reply layout");

#endif
