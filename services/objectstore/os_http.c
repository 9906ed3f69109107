/* The object store's HTTP routes: put and get objects (with Range), their
 * description, deletion, stats, and pulls from other nodes (os_pull.c).
 * Handlers run on the HTTP server's threads and take store.mu around every
 * use of the store; bytes are copied in and out of the arena without the
 * lock, while a reference (get) or the creator's claim (put) keeps the
 * object's block in place. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "objectstore.h"
#include "prism_time.h"

#define SMALL_REPLY (1u << 20) /* larger bodies are streamed from the arena */

static void reply_status(prism_http_req *req, int st, const char *what)
{
    switch (st) {
    case PRISM_STORE_NOT_FOUND:
    case PRISM_STORE_TIMEOUT:
        prism_http_reply_error(req, 404, "not_found", "no object %s", what);
        break;
    case PRISM_STORE_NOT_SEALED:
        prism_http_reply_error(req, 409, "not_sealed", "object %s is still being written", what);
        break;
    case PRISM_STORE_EXISTS:
        prism_http_reply_error(req, 409, "exists", "object %s already exists", what);
        break;
    case PRISM_STORE_TOO_LARGE:
        prism_http_reply_error(req, 413, "too_large", "object %s is larger than the arena", what);
        break;
    case PRISM_STORE_OUT_OF_MEMORY:
        prism_http_reply_error(req, 507, "out_of_memory",
                               "no room for object %s even after evicting and spilling", what);
        break;
    case PRISM_STORE_INVALID:
        prism_http_reply_error(req, 400, "bad_request", "invalid object %s", what);
        break;
    default:
        prism_http_reply_error(req, 500, "internal", "object %s: %s", what,
                               prism_store_status_text(st));
    }
}

static int parse_id(prism_http_req *req, prism_object_id *id)
{
    const char *hex = prism_http_param(req, "id");
    if (!hex || prism_object_id_from_hex(id, hex) != 0) {
        prism_http_reply_error(req, 400, "bad_request", "object IDs are %d hex digits",
                               PRISM_OBJECT_ID_HEX_LEN);
        return -1;
    }
    return 0;
}

/* The metadata as a content type when it reads like one. */
static void content_type(const uint8_t *meta, uint32_t n, char *out, size_t outlen)
{
    bool ok = n > 0 && n < outlen;
    for (uint32_t i = 0; ok && i < n; i++)
        ok = meta[i] > 0x20 && meta[i] < 0x7f;
    if (ok) {
        memcpy(out, meta, n);
        out[n] = '\0';
    } else {
        snprintf(out, outlen, "application/octet-stream");
    }
}

/* An owned object's `owner`: the ID in its owner's address owner:HEX. */
static void set_owner(json_t *j, const os_object *o)
{
    if (j && o->owned) {
        char owner[PRISM_ID_HEX_LEN + 1];
        prism_id_to_hex(&o->owner, owner);
        json_object_set_new(j, "owner", json_string(owner));
    }
}

json_t *os_http_object_json(objectstore *os, const os_object *o)
{
    char hex[PRISM_OBJECT_ID_HEX_LEN + 1], ct[256];
    prism_object_id_to_hex(&o->id, hex);
    json_t *j = json_pack("{s:s, s:I, s:s, s:s, s:b, s:I}", "object_id", hex, "size",
                          (json_int_t)o->data_size, "state",
                          o->state == OS_OBJ_SEALED ? "sealed" : "unsealed", "location",
                          o->block ? "memory" : "spilled", "pinned", o->pinned, "readers",
                          (json_int_t)o->readers);
    set_owner(j, o);
    if (o->state == OS_OBJ_SEALED && o->block) {
        const uint8_t *meta = os_data(&os->store, o) + o->data_size;
        char *mh = malloc(2 * (size_t)o->meta_size + 1);
        if (mh) {
            prism_hex_encode(meta, (int)o->meta_size, mh);
            mh[2 * o->meta_size] = '\0';
            json_object_set_new(j, "metadata_hex", json_string(mh));
            free(mh);
        }
        content_type(meta, o->meta_size, ct, sizeof ct);
        json_object_set_new(j, "content_type", json_string(ct));
    }
    return j;
}

/* --- GET /api/v1/objects/{id} --- */

typedef struct get_stream {
    objectstore *os;
    os_client cl;
    os_object *upload; /* counted in its `uploads`: a pull by another store */
    const uint8_t *p;
    uint64_t pos, end, sent;
} get_stream;

static ssize_t stream_read(void *ud, char *buf, size_t max)
{
    get_stream *g = ud;
    uint64_t n = g->end - g->pos;
    if (n == 0)
        return PRISM_HTTP_STREAM_END;
    if (n > max)
        n = max;
    memcpy(buf, g->p + g->pos, n);
    g->pos += n;
    g->sent += n;
    return (ssize_t)n;
}

static void stream_done(void *ud)
{
    get_stream *g = ud;
    pthread_mutex_lock(&g->os->store.mu);
    g->os->store.transfer_out += g->sent;
    if (g->upload)
        g->upload->uploads--;
    os_client_drop(&g->os->store, &g->cl);
    pthread_mutex_unlock(&g->os->store.mu);
    free(g);
}

/* Parses a single "bytes=A-B", "bytes=A-" or "bytes=-N". Returns 1 for a
 * satisfiable range, 0 for none (or one we ignore), -1 for unsatisfiable. */
static int parse_range(const char *h, uint64_t size, uint64_t *start, uint64_t *end)
{
    unsigned long long a, b;
    int n = 0;
    if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
        return 0;
    h += 6;
    if (sscanf(h, "-%llu%n", &a, &n) == 1 && !h[n]) {
        if (a == 0 || size == 0)
            return -1;
        *start = a >= size ? 0 : size - a;
        *end = size;
        return 1;
    }
    if (sscanf(h, "%llu-%n", &a, &n) == 1 && !h[n]) {
        b = size ? size - 1 : 0;
    } else if (!(sscanf(h, "%llu-%llu%n", &a, &b, &n) == 2 && !h[n] && b >= a)) {
        return 0;
    }
    if (a >= size)
        return -1;
    *start = a;
    *end = (b >= size ? size - 1 : b) + 1;
    return 1;
}

static void h_get(prism_http_req *req, void *ctx)
{
    objectstore *os = ctx;
    prism_object_id id;
    int64_t timeout;
    bool pull;
    if (parse_id(req, &id) != 0 ||
        prism_http_query_int(req, "timeout_ms", 0, 0, 600000, &timeout) != 0 ||
        prism_http_query_bool(req, "pull", false, &pull) != 0)
        return;
    get_stream *g = calloc(1, sizeof *g);
    if (!g) {
        prism_http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    g->os = os;
    os_client_init(&g->cl);
    os_object *o = NULL;
    struct timespec deadline = prism_deadline_ts(CLOCK_MONOTONIC, timeout);
    pthread_mutex_lock(&os->store.mu);
    int st;
    /* Woken by each seal, not polling: the object is served as soon as it is;
     * one coming back from disk is waited for whatever the timeout. */
    for (;;) {
        st = os_get(&os->store, &g->cl, &id, &o);
        if (st == OS_WAIT)
            pthread_cond_wait(&os->store.moved, &os->store.mu);
        else if (!(st == PRISM_STORE_NOT_FOUND || st == PRISM_STORE_NOT_SEALED) || timeout <= 0 ||
                 pthread_cond_timedwait(&os->store.sealed, &os->store.mu, &deadline) == ETIMEDOUT)
            break;
    }
    uint64_t size = o ? o->data_size : 0;
    char ct[256] = "";
    bool busy = st == PRISM_STORE_OK && pull && size >= OS_COPIES_MIN_BYTES &&
                o->uploads >= (uint32_t)os->max_uploads;
    if (busy) {
        os_client_drop(&os->store, &g->cl);
    } else if (st == PRISM_STORE_OK && pull) {
        o->served = true;
        if (size >= OS_COPIES_MIN_BYTES) {
            o->uploads++;
            g->upload = o;
        }
    }
    if (st == PRISM_STORE_OK && !busy) {
        g->p = os_data(&os->store, o);
        content_type(g->p + size, o->meta_size, ct, sizeof ct);
    }
    pthread_mutex_unlock(&os->store.mu);
    if (busy) {
        prism_http_reply_error(req, 503, "busy",
                               "this store already serves %lld pulls of the object; pull it "
                               "from another copy or try again",
                               (long long)os->max_uploads);
        free(g);
        return;
    }
    if (st != PRISM_STORE_OK) {
        reply_status(req, st, prism_http_param(req, "id"));
        free(g);
        return;
    }
    uint64_t start = 0, end = size;
    int ranged = parse_range(prism_http_header(req, "Range"), size, &start, &end);
    char hv[96];
    snprintf(hv, sizeof hv, "%llu", (unsigned long long)size);
    prism_http_add_header(req, "X-Prism-Object-Size", hv);
    prism_http_add_header(req, "Accept-Ranges", "bytes");
    if (ranged < 0) {
        snprintf(hv, sizeof hv, "bytes */%llu", (unsigned long long)size);
        prism_http_add_header(req, "Content-Range", hv);
        prism_http_reply_error(req, 416, "range_not_satisfiable", "object has %llu bytes",
                               (unsigned long long)size);
        stream_done(g);
        return;
    }
    if (ranged > 0) {
        snprintf(hv, sizeof hv, "bytes %llu-%llu/%llu", (unsigned long long)start,
                 (unsigned long long)end - 1, (unsigned long long)size);
        prism_http_add_header(req, "Content-Range", hv);
    }
    g->pos = start;
    g->end = end;
    int code = ranged > 0 ? 206 : 200;
    if (end - start <= SMALL_REPLY) {
        prism_http_reply(req, code, ct, g->p + start, end - start);
        g->sent = end - start;
        stream_done(g);
        return;
    }
    prism_http_reply_stream(req, code, ct, stream_read, stream_done, g);
}

/* --- PUT /api/v1/objects/{id}, POST /api/v1/objects --- */

static void do_put(prism_http_req *req, objectstore *os, const prism_object_id *id)
{
    size_t len;
    const char *body = prism_http_body(req, &len);
    const char *ct = prism_http_header(req, "Content-Type");
    if (!ct || !*ct)
        ct = "application/octet-stream";
    bool pin;
    if (prism_http_query_bool(req, "pin", true, &pin) != 0)
        return;
    if (strlen(ct) > PRISM_STORE_MAX_METADATA) {
        prism_http_reply_error(req, 400, "bad_request", "Content-Type is too long");
        return;
    }
    for (const char *p = ct; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) { /* a media type is ASCII */
            prism_http_reply_error(req, 400, "bad_request", "Content-Type must be printable ASCII");
            return;
        }
    }
    char hex[PRISM_OBJECT_ID_HEX_LEN + 1];
    prism_object_id_to_hex(id, hex);
    os_client cl;
    os_client_init(&cl);
    os_object *o = NULL;
    pthread_mutex_lock(&os->store.mu);
    int st;
    while ((st = os_create(&os->store, &cl, id, NULL, len, ct, (uint32_t)strlen(ct), pin, &o)) ==
           OS_WAIT)
        pthread_cond_wait(&os->store.moved, &os->store.mu); /* room is being spilled */
    uint8_t *dst = st == PRISM_STORE_OK ? os_data(&os->store, o) : NULL;
    pthread_mutex_unlock(&os->store.mu);
    if (st != PRISM_STORE_OK) {
        os_client_drop(&os->store, &cl); /* nothing held: no lock needed */
        reply_status(req, st, hex);
        return;
    }
    memcpy(dst, body, len);
    pthread_mutex_lock(&os->store.mu);
    st = os_seal(&os->store, &cl, id);
    os_client_drop(&os->store, &cl);
    pthread_mutex_unlock(&os->store.mu);
    if (st != PRISM_STORE_OK) {
        reply_status(req, st, hex);
        return;
    }
    prism_http_reply_json(req, 201,
                          json_pack("{s:s, s:I, s:s}", "object_id", hex, "size", (json_int_t)len,
                                    "content_type", ct));
}

static void h_put(prism_http_req *req, void *ctx)
{
    prism_object_id id;
    if (parse_id(req, &id) == 0)
        do_put(req, ctx, &id);
}

static void h_post(prism_http_req *req, void *ctx)
{
    prism_task_id task;
    prism_object_id id;
    prism_id_random(&task);
    prism_object_id_make(&id, &task, PRISM_PUT_INDEX_BASE);
    do_put(req, ctx, &id);
}

/* --- DELETE, info, stats --- */

static void h_delete(prism_http_req *req, void *ctx)
{
    objectstore *os = ctx;
    prism_object_id id;
    if (parse_id(req, &id) != 0)
        return;
    pthread_mutex_lock(&os->store.mu);
    int st = os_delete(&os->store, &id);
    pthread_mutex_unlock(&os->store.mu);
    if (st != PRISM_STORE_OK)
        reply_status(req, st, prism_http_param(req, "id"));
    else
        prism_http_reply_json(req, 200, json_pack("{s:b}", "deleted", 1));
}

/* The objects held, in no order (`limit` of them; `total` counts all): what
 * a node keeps, for people and for tests that look for leaks. */
static void h_list(prism_http_req *req, void *ctx)
{
    objectstore *os = ctx;
    int64_t limit;
    if (prism_http_query_int(req, "limit", 1000, 1, 10000, &limit) != 0)
        return;
    json_t *list = json_array();
    json_int_t total = 0;
    size_t pos = 0;
    prism_object_id id;
    os_object *o;
    pthread_mutex_lock(&os->store.mu);
    while ((o = os_map_next(&os->store.objects, &pos, &id))) {
        if (total++ >= limit)
            continue;
        char hex[PRISM_OBJECT_ID_HEX_LEN + 1];
        prism_object_id_to_hex(&o->id, hex);
        json_t *j = json_pack("{s:s, s:I, s:s, s:b}", "object_id", hex, "size",
                              (json_int_t)o->data_size, "state",
                              o->state == OS_OBJ_SEALED ? "sealed" : "unsealed", "pinned",
                              o->pinned);
        set_owner(j, o);
        json_array_append_new(list, j);
    }
    pthread_mutex_unlock(&os->store.mu);
    prism_http_reply_json(req, 200, json_pack("{s:o, s:I}", "objects", list, "total", total));
}

static void h_info(prism_http_req *req, void *ctx)
{
    objectstore *os = ctx;
    prism_object_id id;
    bool pull;
    if (parse_id(req, &id) != 0 || prism_http_query_bool(req, "pull", false, &pull) != 0)
        return;
    pthread_mutex_lock(&os->store.mu);
    os_object *o = os_map_get(&os->store.objects, &id);
    if (o && pull && o->data_size >= OS_COPIES_MIN_BYTES &&
        o->uploads >= (uint32_t)os->max_uploads) {
        pthread_mutex_unlock(&os->store.mu);
        prism_http_reply_error(req, 503, "busy",
                               "this store already serves %lld pulls of the object; pull it "
                               "from another copy or try again",
                               (long long)os->max_uploads);
        return;
    }
    if (o && pull)
        o->served = true;
    json_t *j = o ? os_http_object_json(os, o) : NULL;
    if (j && !o->block && o->spill) { /* the metadata of a spilled object is on disk */
        uint8_t meta[PRISM_STORE_MAX_METADATA];
        ssize_t n = pread(o->spill->fd, meta, o->meta_size, (off_t)(o->spill_off + o->data_size));
        if (n == (ssize_t)o->meta_size) {
            char mh[2 * PRISM_STORE_MAX_METADATA + 1], ct[256];
            prism_hex_encode(meta, (int)n, mh);
            mh[2 * n] = '\0';
            json_object_set_new(j, "metadata_hex", json_string(mh));
            content_type(meta, o->meta_size, ct, sizeof ct);
            json_object_set_new(j, "content_type", json_string(ct));
        }
    }
    pthread_mutex_unlock(&os->store.mu);
    if (!j)
        reply_status(req, PRISM_STORE_NOT_FOUND, prism_http_param(req, "id"));
    else
        prism_http_reply_json(req, 200, j);
}

static void h_stats(prism_http_req *req, void *ctx)
{
    objectstore *os = ctx;
    prism_store_stats s;
    pthread_mutex_lock(&os->store.mu);
    os_stats(&os->store, &s);
    pthread_mutex_unlock(&os->store.mu);
    json_t *j = json_object();
    json_object_set_new(j, "node_id", json_string(os->node_id));
    uint64_t v[sizeof s / sizeof(uint64_t)];
    memcpy(v, &s, sizeof v);
    static const char *const names[] = {"capacity_bytes",
                                        "used_bytes",
                                        "objects",
                                        "objects_in_memory",
                                        "spilled_bytes",
                                        "spilled_objects",
                                        "spill_files",
                                        "evictions_total",
                                        "spills_total",
                                        "spilled_bytes_total",
                                        "restores_total",
                                        "restored_bytes_total",
                                        "transfer_in_bytes_total",
                                        "transfer_out_bytes_total",
                                        "clients"};
    _Static_assert(sizeof names / sizeof names[0] == sizeof s / sizeof(uint64_t), "stats names");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        json_object_set_new(j, names[i], json_integer((json_int_t)v[i]));
    prism_http_reply_json(req, 200, j);
}

const prism_http_route os_routes[] = {
    {"GET", "/api/v1/objects", h_list, 0},
    {"GET", "/api/v1/objects/{id}", h_get, 0},
    {"PUT", "/api/v1/objects/{id}", h_put, 0},
    {"POST", "/api/v1/objects", h_post, 0},
    {"DELETE", "/api/v1/objects/{id}", h_delete, 0},
    {"GET", "/api/v1/objects/{id}/info", h_info, 0},
    {"POST", "/api/v1/objects/{id}/pull", os_pull_handler, 0},
    {"GET", "/api/v1/stats", h_stats, 0},
};
const size_t os_nroutes = sizeof os_routes / sizeof os_routes[0];

size_t os_http_body_limit(void *ctx, const prism_http_route *route)
{
    objectstore *os = ctx;
    return route->handler == h_put || route->handler == h_post ? os->max_put : 0;
}
