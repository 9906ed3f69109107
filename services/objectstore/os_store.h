/* The object store's core: objects in the arena, references, LRU eviction of
 * secondary copies, spilling and restoring of primary copies. It knows
 * nothing of sockets or HTTP; the Unix-socket server and the HTTP routes call
 * it with `mu` held, on behalf of an os_client (a connection, an HTTP request,
 * a transfer), which is what owns references and unsealed objects.
 *
 * Functions return a prism_store_status, or OS_WAIT: disk I/O this call
 * needs runs on the store's I/O thread, off the lock; the caller tries the
 * same call again once `moved` is broadcast (on_moved says so to an event
 * loop). OS_WAIT never leaves the store. */
#ifndef OS_STORE_H
#define OS_STORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "os_alloc.h"
#include "os_map.h"
#include "prism_id.h"
#include "prism_store.h"

typedef struct os_spill_file {
    uint64_t seq;
    int fd;
    char *path;
    uint64_t live; /* objects whose spilled copy is in this file */
    uint64_t size;
    struct os_spill_file *prev, *next;
} os_spill_file;

/* Not a prism_store_status: "a spill or restore is under way; call again". */
#define OS_WAIT 1000

typedef enum os_obj_state { OS_OBJ_CREATED, OS_OBJ_SEALED } os_obj_state;

typedef struct os_client os_client;

typedef struct os_object {
    prism_object_id id;
    uint64_t data_size;
    uint32_t meta_size;
    os_obj_state state;
    bool pinned;          /* primary copy: spilled, never evicted */
    bool deleted;         /* out of the table; freed when the last reader goes */
    os_block *block;      /* the arena copy; NULL while only on disk */
    os_spill_file *spill; /* the disk copy; NULL when none */
    uint64_t spill_off;
    /* A disk job has it (os_spill.c): its block (spilled) or `incoming`
     * (restored) and its spill file stay put, it is in no LRU list, and a
     * delete leaves the freeing to the job's end. */
    bool moving;
    os_block *incoming;  /* while restored: the block being filled */
    bool restore_failed; /* the last restore failed: the next get says so */
    uint32_t readers;    /* references held by clients */
    os_client *creator;  /* while OS_OBJ_CREATED */
    bool owned;          /* `owner` names the Prism client that owns the object */
    prism_id owner;
    int64_t sealed_ms; /* monotonic: when it was sealed (os_owners.c spares new objects) */
    uint32_t uploads;  /* pulls by other stores being served now (os_http.c) */
    bool served;       /* another store pulled it from here: may hold a copy */
    bool pulled;       /* a copy pulled from another store (os_pull.c) */
    int lru;           /* which LRU list holds it: 0 none, 1 secondary, 2 primary */
    struct os_object *lru_prev, *lru_next;
} os_object;

/* A holder of references and of unsealed objects. */
struct os_client {
    os_map refs;    /* id -> os_ref */
    os_map created; /* id -> os_object, unsealed objects it writes */
};

typedef struct os_lru {
    os_object *head, *tail; /* head: least recently used */
} os_lru;

typedef enum os_event { OS_EV_ADDED, OS_EV_REMOVED, OS_EV_SPILLED } os_event;

typedef struct os_store_config {
    uint64_t capacity;
    const char *spill_dir;
    uint64_t spill_batch; /* spill at least this many bytes at a time */
    bool prefault;        /* touch every arena page at start */
    bool huge_pages;      /* the arena in reserved huge pages (MFD_HUGETLB) */
    /* Disk I/O on the calling thread, under the lock, and never OS_WAIT:
     * deterministic, for the fuzz targets and single-threaded tests. */
    bool io_inline;
    /* Called with `mu` held on every added / removed / spilled object. */
    void (*on_event)(void *ud, os_event ev, const os_object *o);
    /* Called with `mu` held on the I/O thread when a disk job ended: calls
     * that answered OS_WAIT may go on. */
    void (*on_moved)(void *ud);
    void *ud;
} os_store_config;

/* The disk jobs of one kind, run in order by a thread of their own (os_spill.c). */
typedef struct os_io_queue {
    struct os_store *s;
    struct os_io_job *head, *tail;
    pthread_cond_t cv;
    pthread_t thread;
    bool started;
} os_io_queue;

enum { OS_IO_SPILLS, OS_IO_RESTORES };

typedef struct os_store {
    pthread_mutex_t mu;
    pthread_cond_t sealed; /* broadcast at every seal, for HTTP gets that wait (CLOCK_MONOTONIC) */
    pthread_cond_t moved;  /* broadcast when a disk job ended (OS_WAIT) */
    int arena_fd;
    uint8_t *arena;
    uint64_t capacity;
    bool prefaulted;
    os_alloc alloc;
    os_map objects;
    os_lru secondary, primary;
    char *spill_dir;
    uint64_t spill_batch;
    uint64_t spill_seq;
    os_spill_file *spill_files;
    void (*on_event)(void *ud, os_event ev, const os_object *o);
    void (*on_moved)(void *ud);
    void *ud;
    /* The disk jobs (os_spill.c): spills and restores each in a queue of
     * its own, with a thread started at its first job, so that a get of a
     * spilled object does not wait behind a spill. One spill at a time
     * (`spilling`); a failed one fails the next create that needs room
     * (`spill_failed`). `hold_spills` (unit tests only) keeps the spill
     * thread from taking its next job. */
    os_io_queue io[2];                                   /* [OS_IO_SPILLS], [OS_IO_RESTORES] */
    bool io_inline, spilling, spill_failed, hold_spills; /* io_inline: see the config */
    uint64_t io_pending, io_errors; /* jobs queued or running; jobs whose I/O failed */
    /* What is on disk now, kept as it changes: stats are asked often (every
     * /metrics gauge, the reports) and must not walk every object. */
    uint64_t spilled_now, spilled_now_bytes, spill_file_count;
    /* counters */
    uint64_t evictions, spills, spilled_bytes_total, restores, restored_bytes_total;
    uint64_t transfer_in, transfer_out, clients;
} os_store;

int os_store_init(os_store *s, const os_store_config *cfg, char *err, size_t errlen);
/* Finishes the disk jobs and stops the I/O threads; later ones run inline.
 * Call without `mu`, before what on_event and on_moved use goes away. */
void os_store_stop_io(os_store *s);
/* Stops the I/O thread, frees every object and removes the spill files. */
void os_store_destroy(os_store *s);

void os_client_init(os_client *c);
/* Aborts the client's unsealed objects and drops its references (a closed
 * connection, a finished request). The client is reusable afterwards. */
void os_client_drop(os_store *s, os_client *c);

/* `owner` (NULL: none) is the client that owns the object, or whose object
 * this is a copy of. */
int os_create(os_store *s, os_client *c, const prism_object_id *id, const prism_id *owner,
              uint64_t size, const void *meta, uint32_t meta_size, bool pin, os_object **out);
int os_seal(os_store *s, os_client *c, const prism_object_id *id);
int os_abort(os_store *s, os_client *c, const prism_object_id *id);
/* Takes a reference to a sealed object. NOT_FOUND when absent, NOT_SEALED
 * while being written (the caller may wait), OS_WAIT while it comes back
 * from disk (a spilled object's first get starts its restore). */
int os_get(os_store *s, os_client *c, const prism_object_id *id, os_object **out);
int os_release(os_store *s, os_client *c, const prism_object_id *id);
int os_delete(os_store *s, const prism_object_id *id);
int os_pin(os_store *s, const prism_object_id *id, bool pin);
prism_store_presence os_contains(os_store *s, const prism_object_id *id);
void os_stats(os_store *s, prism_store_stats *out);

static inline uint8_t *os_data(const os_store *s, const os_object *o)
{
    return s->arena + o->block->off;
}

/* --- os_spill.c --- */
/* Frees the blocks of the least recently used unreferenced primary copies
 * until at least `need` bytes (and the batch size): those already on disk
 * at once, the others once one spill file holds them. OK when some room was
 * made now, OS_WAIT when it comes with the spill's end. */
int os_spill_some(os_store *s, uint64_t need);
/* Reads a spilled object back into `b`, allocated for it. OK when it is
 * back (inline I/O), OS_WAIT when its get must wait for the job. */
int os_spill_restore(os_store *s, os_object *o, os_block *b);
/* Drops an object's disk copy; removes the file with its last object. */
void os_spill_drop(os_store *s, os_object *o);
/* Counts a spilled object out of what is on disk now: back in memory, or gone. */
void os_spill_forget(os_store *s, const os_object *o);
/* Removes every spill file. */
void os_spill_cleanup(os_store *s);
/* Removes spill files left by stores that died (their pid is gone). */
void os_spill_remove_stale(const char *dir);

/* internal to the core, shared with os_spill.c */
void os_lru_update(os_store *s, os_object *o);
/* The end of a disk job for `o`: frees it when it was deleted meanwhile and
 * nobody reads it. Returns true when it did. */
bool os_moved_deleted(os_store *s, os_object *o);

#endif
