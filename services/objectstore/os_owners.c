/* Frees what no owner holds any more. An owner frees an object by deleting
 * it from the store that holds it; that delete is lost when the owner dies
 * first, or when the store cannot be reached then (a node cut off, a store
 * restarting). So every round this thread asks each owner of the objects
 * here, on the owner's own NATS subject, which of them it still holds
 * (OWNER_HOLDS, docs/tasks.md#borrowing), and deletes the others. An owner
 * that has no subscriber in GONE_AFTER rounds in a row is gone, and so are
 * its objects: the same "no responders" proof the GCS uses for the owners of
 * actors. A slow or missing answer proves nothing and frees nothing.
 *
 * Objects sealed less than two rounds ago are left out: a put is sealed here
 * a moment before its owner records it. */
#include <stdlib.h>
#include <string.h>

#include "objectstore.h"
#include "prism_buf.h"
#include "prism_codec.h"
#include "prism_log.h"
#include "prism_subjects.h"
#include "prism_time.h"
#include "prism_wire.h"

#define BATCH 4096 /* object IDs per question: about 100 KB, far below a NATS message */
#define ANSWER_MS 2000
#define GONE_AFTER 3 /* rounds in a row an owner must have no subscriber */

typedef struct owned {
    prism_id owner;
    prism_object_id id;
} owned;

typedef struct miss {
    prism_id owner;
    int rounds;
} miss;

struct os_owners {
    objectstore *os;
    int interval_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    char from[96]; /* who asks: store:NODE */
    miss *misses;  /* owners without a subscriber in the last round */
    size_t nmisses;
};

static int by_owner(const void *a, const void *b)
{
    return memcmp(&((const owned *)a)->owner, &((const owned *)b)->owner, sizeof(prism_id));
}

/* The owned, sealed objects old enough to ask about, sorted by owner. The
 * walk lets go of the store's lock every SLICE objects, so that puts and
 * gets never wait for a walk of them all; an object moved meanwhile may be
 * missed or listed twice this round (the next round has it; a second
 * delete finds nothing). */
#define SLICE 8192
static owned *snapshot(objectstore *os, int64_t sealed_before, size_t *n)
{
    owned *list = NULL;
    size_t cap = 0, pos = 0, walked = 0;
    prism_object_id id;
    os_object *o;
    *n = 0;
    pthread_mutex_lock(&os->store.mu);
    while ((o = os_map_next(&os->store.objects, &pos, &id))) {
        if (o->owned && o->state == OS_OBJ_SEALED && o->sealed_ms <= sealed_before) {
            if (*n == cap) {
                size_t ncap = cap ? 2 * cap : 256;
                owned *g = realloc(list, ncap * sizeof *g);
                if (!g)
                    break; /* ask about what fits; the rest waits for the next round */
                list = g;
                cap = ncap;
            }
            list[(*n)++] = (owned){o->owner, o->id};
        }
        if (++walked % SLICE == 0) { /* `o` is not used past this */
            pthread_mutex_unlock(&os->store.mu);
            pthread_mutex_lock(&os->store.mu);
        }
    }
    pthread_mutex_unlock(&os->store.mu);
    if (*n)
        qsort(list, *n, sizeof *list, by_owner);
    return list;
}

/* Deletes `ids` (n of them, all of `owner`) unless they changed meanwhile. */
static size_t free_objects(objectstore *os, const prism_id *owner, const owned *ids,
                           const uint8_t *keep, size_t n)
{
    size_t freed = 0;
    pthread_mutex_lock(&os->store.mu);
    for (size_t i = 0; i < n; i++) {
        if (keep && keep[i])
            continue;
        os_object *o = os_map_get(&os->store.objects, &ids[i].id);
        if (o && o->owned && prism_id_equal(&o->owner, owner) && o->state == OS_OBJ_SEALED &&
            os_delete(&os->store, &ids[i].id) == PRISM_STORE_OK)
            freed++;
    }
    pthread_mutex_unlock(&os->store.mu);
    return freed;
}

enum answer { HOLDS_ANSWERED, OWNER_GONE, NO_ANSWER };

/* Asks `owner` which of `ids` it holds; fills keep[i] on an answer. */
static enum answer ask(os_owners *w, const prism_id *owner, const owned *ids, size_t n,
                       uint8_t *keep)
{
    char hex[PRISM_ID_HEX_LEN + 1], subject[96];
    prism_id_to_hex(owner, hex);
    if (!prism_subject_owner(subject, sizeof subject, hex, false))
        return NO_ANSWER;
    prism_buf b;
    wire_owner_request(&b, OWNER_HOLDS, w->from, 0, (uint32_t)n);
    prism_writer wr = {.buf = &b};
    for (size_t i = 0; i < n; i++) {
        pw_bytes(&wr, ids[i].id.b, PRISM_OBJECT_ID_BYTES);
        pw_u32(&wr, 0);
    }
    char *reply = NULL;
    size_t rlen = 0;
    int rc = wr.failed
                 ? PRISM_BUS_ERROR
                 : prism_bus_request(w->os->bus, subject, b.data, b.len, ANSWER_MS, &reply, &rlen);
    prism_buf_free(&b);
    enum answer a = rc == PRISM_BUS_NO_RESPONDERS ? OWNER_GONE : NO_ANSWER;
    prism_reader r = {(const uint8_t *)reply, rlen, 0, NULL, NULL, NULL};
    /* An owner of an older version answers 1 byte: no answer, nothing freed. */
    if (rc == PRISM_BUS_OK && pr_u32(&r) == n && !r.failed && r.left == n) {
        memcpy(keep, pr_bytes(&r, n), n);
        a = HOLDS_ANSWERED;
    }
    free(reply);
    return a;
}

static int missed_rounds(const os_owners *w, const prism_id *owner)
{
    for (size_t i = 0; i < w->nmisses; i++)
        if (prism_id_equal(&w->misses[i].owner, owner))
            return w->misses[i].rounds;
    return 0;
}

/* One owner's objects (`n` of them from `ids`). Returns the rounds it has
 * now gone without a subscriber (0 when it answered or might be there). */
static int check_owner(os_owners *w, const prism_id *owner, const owned *ids, size_t n)
{
    char hex[PRISM_ID_HEX_LEN + 1];
    prism_id_to_hex(owner, hex);
    uint8_t *keep = malloc(BATCH);
    size_t freed = 0;
    for (size_t at = 0; keep && at < n; at += BATCH) {
        size_t k = n - at < BATCH ? n - at : BATCH;
        enum answer a = ask(w, owner, ids + at, k, keep);
        if (a == OWNER_GONE) {
            int rounds = missed_rounds(w, owner) + 1;
            if (rounds < GONE_AFTER) {
                free(keep);
                return rounds;
            }
            size_t all = free_objects(w->os, owner, ids, NULL, n);
            LOG_INFO("freed %zu objects of owner:%s: it has been gone for %d rounds", all, hex,
                     rounds);
            free(keep);
            return 0;
        }
        if (a == HOLDS_ANSWERED)
            freed += free_objects(w->os, owner, ids + at, keep, k);
    }
    if (freed)
        LOG_INFO("freed %zu objects owner:%s no longer holds", freed, hex);
    free(keep);
    return 0;
}

static void round_once(os_owners *w)
{
    size_t n;
    owned *list = snapshot(w->os, prism_mono_ms() - 2 * (int64_t)w->interval_ms, &n);
    miss *misses = NULL;
    size_t nmisses = 0;
    for (size_t at = 0, end; at < n; at = end) {
        for (end = at + 1; end < n && prism_id_equal(&list[end].owner, &list[at].owner); end++)
            ;
        int rounds = check_owner(w, &list[at].owner, list + at, end - at);
        miss *g = rounds ? realloc(misses, (nmisses + 1) * sizeof *g) : NULL;
        if (g) {
            misses = g;
            misses[nmisses++] = (miss){list[at].owner, rounds};
        }
    }
    free(list);
    free(w->misses);
    w->misses = misses;
    w->nmisses = nmisses;
}

static void *owners_main(void *arg)
{
    os_owners *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += w->interval_ms / 1000;
        ts.tv_nsec += (long)(w->interval_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!w->stop && pthread_cond_timedwait(&w->cv, &w->mu, &ts) == 0)
            ;
        if (w->stop)
            break;
        pthread_mutex_unlock(&w->mu);
        round_once(w);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int os_owners_start(os_owners **out, objectstore *os, int interval_ms)
{
    *out = NULL;
    if (!os->bus || interval_ms <= 0)
        return 0;
    os_owners *w = calloc(1, sizeof *w);
    if (!w)
        return -1;
    w->os = os;
    w->interval_ms = interval_ms;
    snprintf(w->from, sizeof w->from, "store:%s", os->node_id);
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&w->thread, NULL, owners_main, w) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return -1;
    }
    *out = w;
    return 0;
}

void os_owners_stop(os_owners *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->misses);
    free(w);
}
