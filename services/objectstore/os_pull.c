/* POST /api/v1/objects/{id}/pull {"source": "http://host:port"}: copies an
 * object from another node's store into this one. The source must be a store
 * of the cluster (os_peers.c): the pull sends it the cluster token. The bytes stream from the
 * source's GET /api/v1/objects/{id} straight into a block of the local arena;
 * the object is sealed only when every byte arrived, and aborted otherwise
 * (no partial object is ever visible). Concurrent pulls of one object are
 * merged: later requests wait for the transfer in flight and share its result.
 *
 * A large object (os_copies.h) is pulled from a copy another store announced,
 * the most recent first, before the source named; a store that already
 * serves its share of pulls of the object answers busy, and the pull tries
 * the next, then waits (BUSY_WAIT_MS, doubling up to BUSY_WAIT_MAX_MS) and
 * looks again. So a value read on many nodes at once spreads as a tree: each
 * finished copy serves the next ones, instead of every node pulling from the
 * first store. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "objectstore.h"
#include "prism_httpc.h"
#include "prism_log.h"
#include "prism_time.h"

#define INFO_TIMEOUT_MS 10000
#define PEER_WAIT_MS 3000 /* a store that just joined is announced within this */
#define DEFAULT_TIMEOUT_MS 600000
#define MAX_TIMEOUT_MS 86400000 /* a day */
#define BUSY_WAIT_MS 20         /* the first wait while every holder is busy, doubling... */
#define BUSY_WAIT_MAX_MS 200    /* ... up to this */
#define COPY_GRACE_MS 100

enum { PULL_DONE = 0, PULL_FAILED = -1, PULL_BUSY = 1 };

struct os_pull {
    prism_object_id id;
    int refs; /* requests that wait for this transfer, the first included */
    bool done;
    int http; /* 200 on success, else the HTTP status to answer */
    const char *code;
    char msg[256];
    uint64_t size;
    bool owned; /* the source named the object's owner: the copy keeps it */
    prism_id owner;
    os_pull *next;
};

typedef struct sink_ctx {
    uint8_t *dst;
    uint64_t size, pos;
} sink_ctx;

static int sink(void *ud, const char *data, size_t len)
{
    sink_ctx *s = ud;
    if (len > s->size - s->pos)
        return -1; /* more bytes than the object has */
    memcpy(s->dst + s->pos, data, len);
    s->pos += len;
    return 0;
}

__attribute__((format(printf, 4, 5))) static void pull_fail(os_pull *p, int http, const char *code,
                                                            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->msg, sizeof p->msg, fmt, ap);
    va_end(ap);
    p->http = http;
    p->code = code;
}

/* Asks the source for the object's size and metadata. Returns PULL_DONE,
 * PULL_BUSY or PULL_FAILED (p filled). */
static int source_info(prism_httpc *hc, os_pull *p, const char *hex, uint8_t *meta,
                       uint32_t *meta_len)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "/api/v1/objects/%s/info?pull=1", hex);
    long status = 0;
    json_t *info = NULL;
    if (prism_httpc_json(hc, "GET", path, NULL, INFO_TIMEOUT_MS, &status, &info, err, sizeof err) !=
        0) {
        pull_fail(p, 502, "source_unreachable", "source store: %s", err);
        return -1;
    }
    int rc = PULL_FAILED;
    const char *mh = json_string_value(json_object_get(info, "metadata_hex"));
    json_t *size = json_object_get(info, "size");
    const char *state = json_string_value(json_object_get(info, "state"));
    const char *owner = json_string_value(json_object_get(info, "owner"));
    if (status == 503) {
        rc = PULL_BUSY;
    } else if (status == 404) {
        pull_fail(p, 404, "not_found", "the source store has no object %s", hex);
    } else if (status != 200 || !json_is_integer(size) || json_integer_value(size) < 0 || !mh ||
               strlen(mh) % 2 || strlen(mh) / 2 > PRISM_STORE_MAX_METADATA) {
        pull_fail(p, 502, "bad_source", "the source store answered %ld with an unusable body",
                  status);
    } else if (!state || strcmp(state, "sealed") != 0) {
        pull_fail(p, 409, "not_sealed", "object %s is not sealed at the source", hex);
    } else if (prism_hex_decode(meta, (int)(strlen(mh) / 2), mh) != 0) {
        pull_fail(p, 502, "bad_source", "the source store sent bad metadata");
    } else if (owner && prism_id_from_hex(&p->owner, owner) != 0) {
        pull_fail(p, 502, "bad_source", "the source store sent a bad owner");
    } else {
        p->owned = owner != NULL;
        *meta_len = (uint32_t)(strlen(mh) / 2);
        p->size = (uint64_t)json_integer_value(size);
        rc = PULL_DONE;
    }
    json_decref(info);
    return rc;
}

/* One try from one store: PULL_DONE, PULL_BUSY (it serves enough pulls of
 * the object now) or PULL_FAILED (p filled). */
static int pull_from(objectstore *os, os_pull *p, const char *source, int64_t timeout_ms, bool pin)
{
    char hex[PRISM_OBJECT_ID_HEX_LEN + 1], path[128], err[256] = "";
    prism_object_id_to_hex(&p->id, hex);
    prism_httpc *hc = NULL;
    if (prism_httpc_create(&hc, source, os->token) != 0) {
        pull_fail(p, 500, "internal", "cannot create an HTTP client");
        return PULL_FAILED;
    }
    uint8_t meta[PRISM_STORE_MAX_METADATA];
    uint32_t meta_len = 0;
    int result = source_info(hc, p, hex, meta, &meta_len);
    if (result != PULL_DONE)
        goto out;
    result = PULL_FAILED;
    os_client cl;
    os_client_init(&cl);
    os_object *o = NULL;
    pthread_mutex_lock(&os->store.mu);
    int st;
    while ((st = os_create(&os->store, &cl, &p->id, p->owned ? &p->owner : NULL, p->size, meta,
                           meta_len, pin, &o)) == OS_WAIT)
        pthread_cond_wait(&os->store.moved, &os->store.mu); /* room is being spilled */
    if (st == PRISM_STORE_OK)
        o->pulled = true;
    sink_ctx sc = {.dst = st == PRISM_STORE_OK ? os_data(&os->store, o) : NULL, .size = p->size};
    pthread_mutex_unlock(&os->store.mu);
    if (st != PRISM_STORE_OK) {
        pull_fail(p, st == PRISM_STORE_EXISTS ? 409 : 507,
                  st == PRISM_STORE_EXISTS ? "exists" : "out_of_memory", "%s",
                  prism_store_status_text(st));
        goto out;
    }
    snprintf(path, sizeof path, "/api/v1/objects/%s?pull=1", hex);
    long status = 0;
    int rc =
        prism_httpc_stream(hc, "GET", path, (int)timeout_ms, sink, &sc, &status, err, sizeof err);
    pthread_mutex_lock(&os->store.mu);
    if (rc == 0 && status == 200 && sc.pos == p->size) {
        st = os_seal(&os->store, &cl, &p->id);
        os->store.transfer_in += p->size;
        p->http = st == PRISM_STORE_OK ? 200 : 500;
        result = p->http == 200 ? PULL_DONE : PULL_FAILED;
    } else if (status == 503) { /* became busy since its info: (rare) */
        os_abort(&os->store, &cl, &p->id);
        result = PULL_BUSY;
    } else {
        os_abort(&os->store, &cl, &p->id);
        pull_fail(p, 502, "transfer_failed",
                  "transfer of %s failed after %llu of %llu bytes (HTTP %ld%s%s)", hex,
                  (unsigned long long)sc.pos, (unsigned long long)p->size, status,
                  err[0] ? ": " : "", err);
    }
    os_client_drop(&os->store, &cl);
    pthread_mutex_unlock(&os->store.mu);
out:
    if (result == PULL_FAILED)
        LOG_WARN("pull of %s from %s: %s", hex, source, p->msg);
    prism_httpc_destroy(hc);
    return result;
}

/* Copies first (os_copies.h), then the source named; while every one is busy,
 * waits and looks again until the timeout. A copy that fails (evicted, its
 * node gone) is passed over; the source's failure is the pull's. */
/* Whether `source` would turn a pull of `p`'s object away now (503). */
static bool source_busy(objectstore *os, const os_pull *p, const char *source)
{
    char hex[PRISM_OBJECT_ID_HEX_LEN + 1], path[128], err[256];
    prism_object_id_to_hex(&p->id, hex);
    snprintf(path, sizeof path, "/api/v1/objects/%s/info?pull=1", hex);
    prism_httpc *hc = NULL;
    long status = 0;
    json_t *info = NULL;
    if (prism_httpc_create(&hc, source, os->token) != 0)
        return false;
    prism_httpc_json(hc, "GET", path, NULL, INFO_TIMEOUT_MS, &status, &info, err, sizeof err);
    json_decref(info);
    prism_httpc_destroy(hc);
    return status == 503;
}

static size_t holders_of(objectstore *os, const os_pull *p,
                         char holders[OS_COPIES_HOLDERS][OS_COPIES_URL_MAX])
{
    return os->copies ? os_copies_holders(os->copies, &p->id, holders, OS_COPIES_HOLDERS) : 0;
}

static void run_pull(objectstore *os, os_pull *p, const char *source, int64_t timeout_ms, bool pin)
{
    int64_t deadline = prism_mono_ms() + timeout_ms;
    char holders[OS_COPIES_HOLDERS][OS_COPIES_URL_MAX];
    bool waited = false; /* for the copies of the pulls that kept this one waiting */
    for (int round = 0;; round++) {
        size_t n = holders_of(os, p, holders);
        /* Busy meant other pulls of it were under way; their copies are
         * announced a moment after the source frees (its last bytes are still
         * on the wire then): once it is free, give them that moment rather
         * than take the source. */
        if (round > 0 && n == 0 && !waited && deadline - prism_mono_ms() > COPY_GRACE_MS &&
            !source_busy(os, p, source)) {
            waited = true;
            prism_sleep_ms(COPY_GRACE_MS);
            n = holders_of(os, p, holders);
        }
        for (size_t i = 0; i < n; i++) {
            int64_t left = deadline - prism_mono_ms();
            /* the token goes only to the cluster's own stores */
            if (!strcmp(holders[i], source) || left <= 0 ||
                !os_peers_known(os->peers, holders[i], 0))
                continue;
            if (pull_from(os, p, holders[i], left, pin) == PULL_DONE) {
                LOG_DEBUG("pulled from the copy at %s (asked for %s)", holders[i], source);
                return;
            }
            p->http = 500; /* a copy's failure is not the pull's */
        }
        int64_t left = deadline - prism_mono_ms();
        int rc = left > 0 ? pull_from(os, p, source, left, pin) : PULL_BUSY;
        if (rc != PULL_BUSY)
            return;
        int wait = BUSY_WAIT_MS << (round < 4 ? round : 4);
        if (wait > BUSY_WAIT_MAX_MS)
            wait = BUSY_WAIT_MAX_MS;
        if (deadline - prism_mono_ms() <= wait) {
            pull_fail(p, 504, "timeout",
                      "every store holding the object was busy serving other pulls of it "
                      "until the timeout");
            return;
        }
        prism_sleep_ms(wait);
    }
}

static os_pull **find(objectstore *os, const prism_object_id *id)
{
    os_pull **pp = &os->pulls;
    while (*pp && memcmp(&(*pp)->id, id, sizeof *id) != 0)
        pp = &(*pp)->next;
    return pp;
}

void os_pull_handler(prism_http_req *req, void *ctx)
{
    objectstore *os = ctx;
    prism_object_id id;
    const char *hex = prism_http_param(req, "id");
    if (!hex || prism_object_id_from_hex(&id, hex) != 0) {
        prism_http_reply_error(req, 400, "bad_request", "object IDs are %d hex digits",
                               PRISM_OBJECT_ID_HEX_LEN);
        return;
    }
    json_t *body = prism_http_body_json(req);
    const char *source = NULL;
    double timeout = DEFAULT_TIMEOUT_MS;
    json_t *pin = NULL;
    if (!body || prism_http_field_string(req, body, "source", true, &source) != 0 ||
        prism_http_field_number(req, body, "timeout_ms", &timeout) != 0) {
        json_decref(body);
        return;
    }
    /* bounded: a transfer's timeout is an int of milliseconds, and 0 or one
     * past it would leave the transfer none at all */
    if (timeout < 1 || timeout > MAX_TIMEOUT_MS) {
        prism_http_reply_error(req, 400, "bad_request", "timeout_ms must be 1 to %d",
                               MAX_TIMEOUT_MS);
        json_decref(body);
        return;
    }
    pin = json_object_get(body, "pin");
    if (!os_peers_known(os->peers, source, PEER_WAIT_MS)) {
        LOG_WARN("a pull of %s named source %.200s, which is no store of the cluster: refused", hex,
                 source);
        prism_http_reply_error(req, 403, "unknown_source",
                               "%.200s is not the store of a node of this cluster (nor a --peers "
                               "entry): objects are pulled only from those",
                               source);
        json_decref(body);
        return;
    }
    pthread_mutex_lock(&os->store.mu);
    os_object *o = os_map_get(&os->store.objects, &id);
    if (o && o->state == OS_OBJ_SEALED) { /* already here */
        json_t *j = os_http_object_json(os, o);
        pthread_mutex_unlock(&os->store.mu);
        json_decref(body);
        prism_http_reply_json(req, 200, j);
        return;
    }
    os_pull **pp = find(os, &id), *p = *pp;
    bool late = false;
    if (p) { /* another request pulls it: its end is ours, within our own timeout */
        /* pull_cv waits on the realtime clock (its default) */
        struct timespec until = prism_deadline_ts(CLOCK_REALTIME, (int64_t)timeout);
        p->refs++;
        while (!p->done && !late)
            late = pthread_cond_timedwait(&os->pull_cv, &os->store.mu, &until) == ETIMEDOUT &&
                   !p->done;
    } else if ((p = calloc(1, sizeof *p))) {
        p->id = id;
        p->refs = 1;
        p->http = 500;
        p->next = os->pulls;
        os->pulls = p;
        pthread_mutex_unlock(&os->store.mu);
        run_pull(os, p, source, (int64_t)timeout, json_is_true(pin));
        pthread_mutex_lock(&os->store.mu);
        *find(os, &id) = p->next;
        p->done = true;
        pthread_cond_broadcast(&os->pull_cv);
    }
    json_t *j = NULL;
    int http = late ? 504 : p ? p->http : 500;
    const char *code = late ? "timeout" : p && p->code ? p->code : "internal";
    char msg[256];
    snprintf(msg, sizeof msg, "%s",
             late ? "the pull of this object that another request began did not end within "
                    "timeout_ms"
             : p  ? p->msg
                  : "out of memory");
    if (http == 200) {
        j = json_pack("{s:s, s:I, s:s}", "object_id", hex, "size", (json_int_t)p->size, "state",
                      "sealed");
    }
    if (p && --p->refs == 0)
        free(p);
    pthread_mutex_unlock(&os->store.mu);
    json_decref(body);
    if (j)
        prism_http_reply_json(req, 200, j);
    else
        prism_http_reply_error(req, http, code, "%s", msg);
}
