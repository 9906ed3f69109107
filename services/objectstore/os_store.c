/* The object store's core: see os_store.h. Every function runs with s->mu held. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "os_store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "prism_fs.h"
#include "prism_time.h"

#define HUGE_PAGE ((uint64_t)2 << 20) /* MFD_HUGETLB's size: the system's default */

typedef struct os_ref {
    os_object *obj;
    uint32_t count;
} os_ref;

/* --- LRU lists --- */

static void lru_unlink(os_store *s, os_object *o)
{
    os_lru *l = o->lru == 2 ? &s->primary : &s->secondary;
    if (o->lru_prev)
        o->lru_prev->lru_next = o->lru_next;
    else
        l->head = o->lru_next;
    if (o->lru_next)
        o->lru_next->lru_prev = o->lru_prev;
    else
        l->tail = o->lru_prev;
    o->lru_prev = o->lru_next = NULL;
    o->lru = 0;
}

/* Puts `o` at the most recently used end of the list it belongs to now, or in
 * none when it is not a candidate (unsealed, referenced, deleted, on disk,
 * moving to or from disk). */
void os_lru_update(os_store *s, os_object *o)
{
    if (o->lru)
        lru_unlink(s, o);
    if (o->state != OS_OBJ_SEALED || !o->block || o->readers || o->deleted || o->moving)
        return;
    o->lru = o->pinned ? 2 : 1;
    os_lru *l = o->lru == 2 ? &s->primary : &s->secondary;
    o->lru_prev = l->tail;
    if (l->tail)
        l->tail->lru_next = o;
    else
        l->head = o;
    l->tail = o;
}

/* --- objects --- */

static void emit(os_store *s, os_event ev, const os_object *o)
{
    if (s->on_event)
        s->on_event(s->ud, ev, o);
}

/* Frees an object nobody references; it must be out of the table already. */
static void free_object(os_store *s, os_object *o)
{
    if (o->lru)
        lru_unlink(s, o);
    if (o->block)
        os_alloc_put(&s->alloc, o->block);
    else
        os_spill_forget(s, o);
    if (o->incoming)
        os_alloc_put(&s->alloc, o->incoming);
    if (o->spill)
        os_spill_drop(s, o);
    free(o);
}

static void unlist(os_store *s, os_object *o)
{
    if (os_map_get(&s->objects, &o->id) == o)
        os_map_del(&s->objects, &o->id);
}

static void evict(os_store *s, os_object *o)
{
    emit(s, OS_EV_REMOVED, o);
    unlist(s, o);
    s->evictions++;
    free_object(s, o);
}

bool os_moved_deleted(os_store *s, os_object *o)
{
    if (!o->deleted)
        return false;
    if (!o->readers)
        free_object(s, o);
    else if (o->spill) /* nobody can reach the disk copy any more */
        os_spill_drop(s, o);
    return true;
}

/* Finds `size` bytes, evicting secondary copies, then spilling primary ones:
 * OS_WAIT while a spill under way may make the room. */
static int make_room(os_store *s, uint64_t size, os_block **out)
{
    for (;;) {
        if ((*out = os_alloc_get(&s->alloc, size)))
            return PRISM_STORE_OK;
        if (s->secondary.head) {
            evict(s, s->secondary.head);
            continue;
        }
        if (s->spill_failed) { /* this caller hears of it; the next one tries again */
            s->spill_failed = false;
            return PRISM_STORE_IO_ERROR;
        }
        if (s->spilling)
            return OS_WAIT;
        if (!s->primary.head)
            return PRISM_STORE_OUT_OF_MEMORY;
        int r = os_spill_some(s, os_alloc_rounded(size));
        if (r != PRISM_STORE_OK)
            return r;
    }
}

int os_create(os_store *s, os_client *c, const prism_object_id *id, const prism_id *owner,
              uint64_t size, const void *meta, uint32_t meta_size, bool pin, os_object **out)
{
    if (meta_size > PRISM_STORE_MAX_METADATA || size > UINT64_MAX / 2)
        return PRISM_STORE_INVALID;
    uint64_t total = size + meta_size;
    if (os_alloc_rounded(total) > s->alloc.capacity)
        return PRISM_STORE_TOO_LARGE;
    if (os_map_get(&s->objects, id))
        return PRISM_STORE_EXISTS;
    os_object *o = calloc(1, sizeof *o);
    if (!o)
        return PRISM_STORE_ERROR;
    int r = make_room(s, total, &o->block);
    if (r != PRISM_STORE_OK) {
        free(o);
        return r;
    }
    o->id = *id;
    o->data_size = size;
    o->meta_size = meta_size;
    o->pinned = pin;
    o->creator = c;
    if (owner && !prism_id_is_nil(owner)) {
        o->owned = true;
        o->owner = *owner;
    }
    if (os_map_put(&s->objects, id, o) != 0) {
        free_object(s, o);
        return PRISM_STORE_ERROR;
    }
    if (os_map_put(&c->created, id, o) != 0) {
        unlist(s, o);
        free_object(s, o);
        return PRISM_STORE_ERROR;
    }
    if (meta_size)
        memcpy(os_data(s, o) + size, meta, meta_size);
    if (out)
        *out = o;
    return PRISM_STORE_OK;
}

/* The unsealed object `id` that `c` created, or a status saying why not. */
static int own_unsealed(os_store *s, os_client *c, const prism_object_id *id, os_object **out)
{
    os_object *o = os_map_get(&s->objects, id);
    if (!o)
        return PRISM_STORE_NOT_FOUND;
    if (o->state == OS_OBJ_SEALED)
        return PRISM_STORE_SEALED;
    if (o->creator != c)
        return PRISM_STORE_NOT_OWNER;
    *out = o;
    return PRISM_STORE_OK;
}

int os_seal(os_store *s, os_client *c, const prism_object_id *id)
{
    os_object *o;
    int r = own_unsealed(s, c, id, &o);
    if (r != PRISM_STORE_OK)
        return r;
    os_map_del(&c->created, id);
    o->state = OS_OBJ_SEALED;
    o->creator = NULL;
    o->sealed_ms = prism_mono_ms();
    os_lru_update(s, o);
    emit(s, OS_EV_ADDED, o);
    pthread_cond_broadcast(&s->sealed);
    return PRISM_STORE_OK;
}

int os_abort(os_store *s, os_client *c, const prism_object_id *id)
{
    os_object *o;
    int r = own_unsealed(s, c, id, &o);
    if (r != PRISM_STORE_OK)
        return r;
    os_map_del(&c->created, id);
    unlist(s, o);
    free_object(s, o);
    return PRISM_STORE_OK;
}

static int restore(os_store *s, os_object *o)
{
    if (o->moving)
        return OS_WAIT;
    if (o->restore_failed) { /* this get hears of it; the next one tries again */
        o->restore_failed = false;
        return PRISM_STORE_IO_ERROR;
    }
    os_block *b;
    int r = make_room(s, o->data_size + o->meta_size, &b);
    if (r != PRISM_STORE_OK)
        return r;
    return os_spill_restore(s, o, b);
}

int os_get(os_store *s, os_client *c, const prism_object_id *id, os_object **out)
{
    os_object *o = os_map_get(&s->objects, id);
    if (!o)
        return PRISM_STORE_NOT_FOUND;
    if (o->state != OS_OBJ_SEALED)
        return PRISM_STORE_NOT_SEALED;
    os_ref *ref = os_map_get(&c->refs, id);
    if (ref && ref->obj != o)
        return PRISM_STORE_ERROR; /* still holds a deleted object of the same ID */
    if (!o->block) {
        int r = restore(s, o);
        if (r != PRISM_STORE_OK)
            return r;
    }
    if (!ref) {
        if (!(ref = calloc(1, sizeof *ref)))
            return PRISM_STORE_ERROR;
        ref->obj = o;
        if (os_map_put(&c->refs, id, ref) != 0) {
            free(ref);
            return PRISM_STORE_ERROR;
        }
    }
    ref->count++;
    o->readers++;
    if (o->lru)
        lru_unlink(s, o);
    *out = o;
    return PRISM_STORE_OK;
}

static void unref(os_store *s, os_object *o, uint32_t n)
{
    o->readers -= n;
    if (o->readers)
        return;
    if (o->deleted && !o->moving)
        free_object(s, o);
    else
        os_lru_update(s, o);
}

int os_release(os_store *s, os_client *c, const prism_object_id *id)
{
    os_ref *ref = os_map_get(&c->refs, id);
    if (!ref)
        return PRISM_STORE_NOT_HELD;
    os_object *o = ref->obj;
    if (--ref->count == 0) {
        os_map_del(&c->refs, id);
        free(ref);
    }
    unref(s, o, 1);
    return PRISM_STORE_OK;
}

int os_delete(os_store *s, const prism_object_id *id)
{
    os_object *o = os_map_get(&s->objects, id);
    if (!o)
        return PRISM_STORE_NOT_FOUND;
    if (o->state != OS_OBJ_SEALED)
        return PRISM_STORE_NOT_SEALED;
    emit(s, OS_EV_REMOVED, o);
    unlist(s, o);
    if (o->readers || o->moving) {
        o->deleted = true;
        if (o->lru)
            lru_unlink(s, o);
        if (o->spill && !o->moving) /* nobody can reach the disk copy any more */
            os_spill_drop(s, o);
    } else {
        free_object(s, o);
    }
    return PRISM_STORE_OK;
}

int os_pin(os_store *s, const prism_object_id *id, bool pin)
{
    os_object *o = os_map_get(&s->objects, id);
    if (!o)
        return PRISM_STORE_NOT_FOUND;
    if (o->pinned != pin) {
        o->pinned = pin;
        if (o->lru)
            os_lru_update(s, o);
    }
    return PRISM_STORE_OK;
}

prism_store_presence os_contains(os_store *s, const prism_object_id *id)
{
    os_object *o = os_map_get(&s->objects, id);
    if (!o)
        return PRISM_STORE_ABSENT;
    if (o->state != OS_OBJ_SEALED)
        return PRISM_STORE_PRESENT_UNSEALED;
    return o->block ? PRISM_STORE_PRESENT_MEMORY : PRISM_STORE_PRESENT_SPILLED;
}

void os_stats(os_store *s, prism_store_stats *out)
{
    *out = (prism_store_stats){
        .capacity_bytes = s->alloc.capacity,
        .used_bytes = s->alloc.used,
        .objects = s->objects.len,
        .evictions_total = s->evictions,
        .spills_total = s->spills,
        .spilled_bytes_total = s->spilled_bytes_total,
        .restores_total = s->restores,
        .restored_bytes_total = s->restored_bytes_total,
        .transfer_in_bytes_total = s->transfer_in,
        .transfer_out_bytes_total = s->transfer_out,
        .clients = s->clients,
    };
    out->spilled_objects = s->spilled_now;
    out->spilled_bytes = s->spilled_now_bytes;
    out->objects_in_memory = s->objects.len - s->spilled_now;
    out->spill_files = s->spill_file_count;
}

/* --- clients --- */

void os_client_init(os_client *c) { *c = (os_client){OS_MAP_INIT, OS_MAP_INIT}; }

void os_client_drop(os_store *s, os_client *c)
{
    size_t pos = 0;
    os_object *o;
    while ((o = os_map_next(&c->created, &pos, NULL))) {
        unlist(s, o);
        free_object(s, o);
    }
    os_map_free(&c->created);
    pos = 0;
    os_ref *ref;
    while ((ref = os_map_next(&c->refs, &pos, NULL))) {
        unref(s, ref->obj, ref->count);
        free(ref);
    }
    os_map_free(&c->refs);
}

/* --- the store --- */

int os_store_init(os_store *s, const os_store_config *cfg, char *err, size_t errlen)
{
    *s = (os_store){.arena_fd = -1,
                    .capacity = cfg->capacity,
                    .spill_batch = cfg->spill_batch,
                    .on_event = cfg->on_event,
                    .on_moved = cfg->on_moved,
                    .io_inline = cfg->io_inline,
                    .ud = cfg->ud};
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->sealed, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&s->moved, NULL);
    for (int k = 0; k < 2; k++) {
        s->io[k].s = s;
        pthread_cond_init(&s->io[k].cv, NULL);
    }
    s->arena = MAP_FAILED;
    /* Huge pages: a process's first touch of each page of the arena costs
     * it a fault (on some VMs about 5 us a 4 KiB page, even after
     * MAP_POPULATE: bench/data/README.md); 2 MiB pages take 512 times fewer.
     * Their memory is reserved at mmap, so a shortage fails here, clearly. */
    if (cfg->huge_pages)
        s->capacity &= ~(uint64_t)(HUGE_PAGE - 1);
    if (s->capacity < (cfg->huge_pages ? HUGE_PAGE : OS_ALLOC_ALIGN)) {
        snprintf(err, errlen, "arena of %llu bytes is too small",
                 (unsigned long long)cfg->capacity);
        goto fail;
    }
    s->arena_fd =
        memfd_create("prism-objectstore", MFD_CLOEXEC | (cfg->huge_pages ? MFD_HUGETLB : 0));
    if (s->arena_fd < 0 || ftruncate(s->arena_fd, (off_t)s->capacity) != 0) {
        snprintf(err, errlen, "cannot create the arena: %s", strerror(errno));
        goto fail;
    }
    s->prefaulted = cfg->prefault;
    s->arena = mmap(NULL, s->capacity, PROT_READ | PROT_WRITE,
                    MAP_SHARED | (cfg->prefault ? MAP_POPULATE : 0), s->arena_fd, 0);
    if (s->arena == MAP_FAILED && cfg->huge_pages) {
        snprintf(err, errlen,
                 "cannot map the arena in huge pages: %s (%llu MiB wanted; reserve them in "
                 "/proc/sys/vm/nr_hugepages, HugePages_Free in /proc/meminfo says how many are)",
                 strerror(errno), (unsigned long long)(s->capacity >> 20));
        goto fail;
    }
    if (s->arena == MAP_FAILED) {
        snprintf(err, errlen, "cannot map the arena: %s", strerror(errno));
        goto fail;
    }
    if (!(s->spill_dir = strdup(cfg->spill_dir)) || prism_mkdir_p(s->spill_dir, 0700) != 0) {
        snprintf(err, errlen, "cannot create spill directory %s: %s", cfg->spill_dir,
                 strerror(errno));
        goto fail;
    }
    os_spill_remove_stale(s->spill_dir);
    if (os_alloc_init(&s->alloc, s->capacity) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return 0;
fail:
    os_store_destroy(s);
    return -1;
}

void os_store_destroy(os_store *s)
{
    os_store_stop_io(s);
    size_t pos = 0;
    os_object *o;
    /* Collect first: freeing does not change the table, but keep iteration simple. */
    while ((o = os_map_next(&s->objects, &pos, NULL)))
        free_object(s, o);
    os_map_free(&s->objects);
    os_spill_cleanup(s);
    os_alloc_destroy(&s->alloc);
    if (s->arena != MAP_FAILED && s->arena)
        munmap(s->arena, s->capacity);
    if (s->arena_fd >= 0)
        close(s->arena_fd);
    free(s->spill_dir);
    pthread_cond_destroy(&s->sealed);
    pthread_cond_destroy(&s->moved);
    for (int k = 0; k < 2; k++)
        pthread_cond_destroy(&s->io[k].cv);
    pthread_mutex_destroy(&s->mu);
    s->arena = NULL;
    s->arena_fd = -1;
    s->spill_dir = NULL;
}
