/* Actors: the table, the NATS requests (prism.gcs.actor.create / get /
 * kill), events, metrics and the REST API. The lifecycle itself (leases,
 * connections to the actors' workers, restarts, owner pings) runs on the
 * manager thread in actor_manager.c. See docs/actors.md. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "actors.h"
#include "prism_codec.h"
#include "db.h"
#include "prism_error.h"
#include "prism_log.h"
#include "prism_sha256.h"
#include "prism_subjects.h"
#include "prism_time.h"
#include "prism_wire.h"

#define MAX_TEXT 128       /* owner, class */
#define MAX_NAME 256       /* name, namespace (what libprism allows) */
#define MAX_RESOURCES 64   /* names in a resource map */
#define MAX_ARGS 65536     /* constructor arguments (the worker's limit) */
#define KILL_WAIT_MS 2000  /* a kill request waits this long for the manager to act */

static const char *const states[] = {"PENDING_CREATION", "ALIVE", "RESTARTING", "DEAD"};

/* ---------- the queue ---------- */

uint64_t gcs_actors_post(gcs *g, actor_cmd *c)
{
    gcs_actors *A = g->actors;
    c->next = NULL;
    pthread_mutex_lock(&A->lock);
    uint64_t seq = c->seq = ++A->posted; /* `c` is the manager's once unlocked */
    if (A->tail)
        A->tail->next = c;
    else
        A->head = c;
    A->tail = c;
    pthread_mutex_unlock(&A->lock);
    uint64_t one = 1;
    if (write(A->wakefd, &one, sizeof one) < 0 && errno != EAGAIN)
        LOG_WARN("cannot wake the actor manager: %s", strerror(errno));
    return seq;
}

bool gcs_actors_wait(gcs *g, uint64_t seq, int timeout_ms)
{
    gcs_actors *A = g->actors;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&A->lock);
    while (A->processed < seq && !A->stopping &&
           pthread_cond_timedwait(&A->processed_cv, &A->lock, &until) != ETIMEDOUT) {
    }
    bool done = A->processed >= seq;
    pthread_mutex_unlock(&A->lock);
    return done;
}

static actor_cmd *new_cmd(actor_cmd_kind kind, const char *id)
{
    actor_cmd *c = calloc(1, sizeof *c);
    if (c) {
        c->kind = kind;
        snprintf(c->id, sizeof c->id, "%s", id ? id : "");
    }
    return c;
}

void gcs_actors_node_dead(gcs *g, const char *node_id)
{
    actor_cmd *c = g->actors ? new_cmd(AC_NODE_DEAD, node_id) : NULL;
    if (c)
        gcs_actors_post(g, c);
}

/* ---------- the table ---------- */

static void set_text_or_skip(json_t *o, const char *key, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    if (t)
        json_object_set_new(o, key, json_string((const char *)t));
}

/* One row of ACTOR_COLUMNS as the ACTOR object; optional members are left
 * out when they have no value. */
static json_t *actor_row_json(sqlite3_stmt *st)
{
    json_t *spec = gcs_db_column_json(st, 20), *res = json_object_get(spec, "resources");
    json_t *a = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:i,s:I,s:I,s:i,s:I,s:I,s:o}", "actor_id",
        (const char *)sqlite3_column_text(st, 0), "class", (const char *)sqlite3_column_text(st, 1),
        "package", (const char *)sqlite3_column_text(st, 2), "namespace",
        (const char *)sqlite3_column_text(st, 4), "state", (const char *)sqlite3_column_text(st, 5),
        "owner", (const char *)sqlite3_column_text(st, 6), "detached", sqlite3_column_int(st, 7),
        "restarts", sqlite3_column_int(st, 12), "max_restarts",
        (json_int_t)sqlite3_column_int64(st, 13), "max_task_retries",
        (json_int_t)sqlite3_column_int64(st, 14), "max_concurrency", sqlite3_column_int(st, 15),
        "created_at", (json_int_t)sqlite3_column_int64(st, 18), "updated_at",
        (json_int_t)sqlite3_column_int64(st, 19), "resources",
        json_is_object(res) ? json_deep_copy(res) : json_object());
    json_decref(spec);
    if (!a)
        return NULL;
    set_text_or_skip(a, "name", st, 3);
    set_text_or_skip(a, "node_id", st, 8);
    set_text_or_skip(a, "worker_id", st, 9);
    set_text_or_skip(a, "unix", st, 10);
    set_text_or_skip(a, "tcp", st, 11);
    set_text_or_skip(a, "cause", st, 16);
    set_text_or_skip(a, "reason", st, 17);
    return a;
}


#define CALLS_FRESH_MS 15000 /* workers report at least every 5 s while ALIVE */

/* Adds the calls an ALIVE actor's worker last reported holding. Lock held. */
static void add_calls(gcs *g, json_t *a)
{
    const char *id = json_string_value(json_object_get(a, "actor_id"));
    const char *state = json_string_value(json_object_get(a, "state"));
    json_t *c = id ? json_object_get(g->actors->calls, id) : NULL;
    const char *worker = json_string_value(json_object_get(c, "worker_id"));
    const char *now_worker = json_string_value(json_object_get(a, "worker_id"));
    if (!c || !state || strcmp(state, "ALIVE") || !worker || !now_worker || strcmp(worker, now_worker) ||
        prism_mono_ms() - json_integer_value(json_object_get(c, "at")) > CALLS_FRESH_MS)
        return;
    json_object_set(a, "pending_calls", json_object_get(c, "pending"));
    json_object_set(a, "calls_done", json_object_get(c, "done"));
}

json_t *gcs_actor_json_locked(gcs *g, const char *id)
{
    sqlite3_stmt *st = gcs_db_prepare(g->db, "SELECT " ACTOR_COLUMNS " FROM actors WHERE id = ?");
    gcs_db_bind_text(st, 1, id);
    json_t *a = st && sqlite3_step(st) == SQLITE_ROW ? actor_row_json(st) : NULL;
    sqlite3_finalize(st);
    if (a)
        add_calls(g, a);
    return a;
}

static void on_calls(prism_bus *bus, const char *subject, const char *reply, const char *data,
                     size_t len, void *ud)
{
    gcs *g = ud;
    json_t *msg = json_loadb(data, len, 0, NULL);
    const char *id = json_string_value(json_object_get(msg, "actor_id"));
    json_t *worker = json_object_get(msg, "worker_id");
    json_t *pending = json_object_get(msg, "pending"), *done = json_object_get(msg, "done");
    if (id && prism_is_hex(id, PRISM_ID_HEX_LEN) && json_is_string(worker) && json_is_integer(pending) &&
        json_is_integer(done)) {
        pthread_mutex_lock(&g->lock);
        if (json_object_size(g->actors->calls) >= 100000)
            json_object_clear(g->actors->calls); /* soft state: bounded, refilled within seconds */
        json_object_set_new(g->actors->calls, id,
                            json_pack("{s:O,s:O,s:O,s:I}", "worker_id", worker, "pending", pending,
                                      "done", done, "at", (json_int_t)prism_mono_ms()));
        pthread_mutex_unlock(&g->lock);
    }
    json_decref(msg);
}

void gcs_actor_publish_locked(gcs *g, const char *id)
{
    json_t *a = gcs_actor_json_locked(g, id);
    if (a)
        prism_bus_publish_json(g->bus, PRISM_SUBJECT_EVENT_ACTOR, a);
    json_decref(a);
}

static json_t *actor_json(gcs *g, const char *id)
{
    pthread_mutex_lock(&g->lock);
    json_t *a = gcs_actor_json_locked(g, id);
    pthread_mutex_unlock(&g->lock);
    return a;
}

/* The actor not DEAD named `name` in `ns`, or NULL. Lock held. */
static json_t *live_by_name_locked(gcs *g, const char *ns, const char *name)
{
    sqlite3_stmt *st = gcs_db_prepare(g->db, "SELECT " ACTOR_COLUMNS " FROM actors WHERE "
                                             "namespace = ? AND name = ? AND state <> 'DEAD'");
    gcs_db_bind_text(st, 1, ns);
    gcs_db_bind_text(st, 2, name);
    json_t *a = st && sqlite3_step(st) == SQLITE_ROW ? actor_row_json(st) : NULL;
    sqlite3_finalize(st);
    return a;
}

/* ---------- validation ---------- */


/* 1-max bytes without control characters. */
static bool plain_text(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* A class name becomes part of a symbol the worker looks up. */
static bool identifier(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > MAX_TEXT || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/* "owner:HEX": an address that answers PING on prism.owner.HEX. */
static bool owner_address(const char *s)
{
    if (!s || strncmp(s, "owner:", 6) != 0 || !s[6] || strlen(s) > MAX_TEXT)
        return false;
    for (const char *p = s + 6; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F')))
            return false;
    return true;
}

/* Skips one u32-length string. */
static void skip_str(prism_reader *r) { pr_bytes(r, pr_u32(r)); }

/* The encoded constructor arguments: u32 nargs, then nargs slots as in a
 * PUSH (inline or stored), nothing after. */
static bool args_well_formed(const uint8_t *p, size_t n)
{
    prism_reader r = {p, n, 0, NULL, NULL, NULL};
    uint32_t nargs = pr_u32(&r);
    if (r.failed || nargs > MAX_ARGS)
        return false;
    for (uint32_t i = 0; i < nargs && !r.failed; i++) {
        uint8_t slot = pr_u8(&r);
        if (slot == SLOT_INLINE) {
            pr_bytes(&r, pr_u32(&r));
        } else if (slot == SLOT_STORED) {
            pr_bytes(&r, PRISM_OBJECT_ID_BYTES);
            skip_str(&r);
            skip_str(&r);
            skip_str(&r);
            pr_u64(&r);
        } else {
            return false;
        }
    }
    return !r.failed && r.left == 0;
}

typedef struct create_req {
    const char *id, *owner, *package, *cls, *name, *ns;
    bool detached;
    json_int_t max_restarts, max_task_retries, max_concurrency;
    json_t *lease; /* {resources, strategy, node_id?, soft?}: owned */
    const uint8_t *args;
    size_t args_len;
} create_req;

/* Each reader checks one optional member: absent or null keeps the default.
 * They return false with `err` set when the member is there and wrong. */
static bool opt_string(json_t *o, const char *key, const char **out, char *err, size_t n)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v)) {
        snprintf(err, n, "'%s' must be a string", key);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool opt_bool(json_t *o, const char *key, bool *out, char *err, size_t n)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_boolean(v)) {
        snprintf(err, n, "'%s' must be true or false", key);
        return false;
    }
    *out = json_is_true(v);
    return true;
}

static bool opt_int(json_t *o, const char *key, json_int_t min, json_int_t max, json_int_t *out,
                    char *err, size_t n)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(err, n, "'%s' must be an integer from %lld to %lld", key, (long long)min,
                 (long long)max);
        return false;
    }
    *out = json_integer_value(v);
    return true;
}

static bool check_resources(json_t *res, char *err, size_t n)
{
    const char *name;
    json_t *v;
    if (!json_is_object(res) || json_object_size(res) > MAX_RESOURCES) {
        snprintf(err, n, "'resources' must be an object of at most %d names", MAX_RESOURCES);
        return false;
    }
    json_object_foreach(res, name, v) {
        if (!plain_text(name, MAX_TEXT) || !json_is_number(v) || !isfinite(json_number_value(v)) ||
            json_number_value(v) < 0) {
            snprintf(err, n, "'resources' must map names to non-negative numbers ('%.64s' does not)",
                     name);
            return false;
        }
    }
    return true;
}

/* The placement part of the lease request: what restarts ask for again. */
static json_t *lease_spec(json_t *msg, char *err, size_t n)
{
    const char *strategy = "DEFAULT", *node = NULL;
    bool soft = false;
    json_t *res = json_object_get(msg, "resources");
    if (res && !json_is_null(res) && !check_resources(res, err, n))
        return NULL;
    if (!opt_string(msg, "strategy", &strategy, err, n) || !opt_string(msg, "node_id", &node, err, n) ||
        !opt_bool(msg, "soft", &soft, err, n))
        return NULL;
    bool affinity = !strcmp(strategy, "NODE_AFFINITY");
    if (!affinity && strcmp(strategy, "DEFAULT") && strcmp(strategy, "SPREAD")) {
        snprintf(err, n, "'strategy' must be DEFAULT, SPREAD or NODE_AFFINITY");
        return NULL;
    }
    if (affinity && !prism_is_hex(node, PRISM_ID_HEX_LEN)) {
        snprintf(err, n, "NODE_AFFINITY needs 'node_id' (32 lowercase hex digits)");
        return NULL;
    }
    json_t *spec = json_pack("{s:o,s:s}", "resources",
                             json_is_object(res) ? json_deep_copy(res) : json_object(), "strategy",
                             strategy);
    if (affinity) {
        json_object_set_new(spec, "node_id", json_string(node));
        json_object_set_new(spec, "soft", json_boolean(soft));
    }
    return spec;
}

/* Parses and checks a create request (docs/actors.md). Returns 0, or -1
 * with `err`. `msg` must outlive `out`. */
static int parse_create(const char *data, size_t len, json_t **msg, create_req *out, char *err,
                        size_t n)
{
    *msg = NULL;
    memset(out, 0, sizeof *out);
    const uint8_t *p = (const uint8_t *)data;
    uint32_t jlen = len >= 4 ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                                   (uint32_t)p[3] << 24
                             : 0;
    if (len < 4 || jlen > len - 4) {
        snprintf(err, n, "the body is u32 length, that many bytes of JSON, then the arguments");
        return -1;
    }
    *msg = json_loadb(data + 4, jlen, 0, NULL);
    if (!json_is_object(*msg)) {
        snprintf(err, n, "the JSON part is not a JSON object");
        return -1;
    }
    out->args = p + 4 + jlen;
    out->args_len = len - 4 - jlen;
    if (!args_well_formed(out->args, out->args_len)) {
        snprintf(err, n, "the constructor's arguments are malformed (u32 nargs, then slots)");
        return -1;
    }
    json_t *m = *msg;
    out->ns = "default";
    out->max_concurrency = 1;
    if (!opt_string(m, "actor_id", &out->id, err, n) || !opt_string(m, "owner", &out->owner, err, n) ||
        !opt_string(m, "package", &out->package, err, n) || !opt_string(m, "class", &out->cls, err, n) ||
        !opt_string(m, "name", &out->name, err, n) || !opt_string(m, "namespace", &out->ns, err, n) ||
        !opt_bool(m, "detached", &out->detached, err, n) ||
        !opt_int(m, "max_restarts", -1, INT32_MAX, &out->max_restarts, err, n) ||
        !opt_int(m, "max_task_retries", -1, INT32_MAX, &out->max_task_retries, err, n) ||
        !opt_int(m, "max_concurrency", 1, UINT16_MAX, &out->max_concurrency, err, n))
        return -1;
    if (!prism_is_hex(out->id, PRISM_ID_HEX_LEN))
        snprintf(err, n, "'actor_id' must be 32 lowercase hex digits");
    else if (!plain_text(out->owner, MAX_TEXT))
        snprintf(err, n, "'owner' must be 1-%d characters", MAX_TEXT);
    else if (!out->detached && !owner_address(out->owner) && strcmp(out->owner, "gcs"))
        snprintf(err, n, "an actor that is not detached needs an owner address (owner:HEX) to "
                         "share its fate with");
    else if (!out->package || (strcmp(out->package, "builtin") && !prism_is_hex(out->package, PRISM_SHA256_HEX_LEN)))
        snprintf(err, n, "'package' must be \"builtin\" or a package's sha256 (64 lowercase hex)");
    else if (!identifier(out->cls))
        snprintf(err, n, "'class' must be 1-%d characters of A-Z a-z 0-9 _, not starting with a digit",
                 MAX_TEXT);
    else if (out->name && !plain_text(out->name, MAX_NAME))
        snprintf(err, n, "'name' must be 1-%d bytes without control characters", MAX_NAME);
    else if (!plain_text(out->ns, MAX_NAME))
        snprintf(err, n, "'namespace' must be 1-%d bytes without control characters", MAX_NAME);
    else if (!(out->lease = lease_spec(m, err, n)))
        return -1;
    else
        return 0;
    return -1;
}

static void reply_json(gcs *g, const char *reply, json_t *doc)
{
    if (reply && doc)
        prism_bus_publish_json(g->bus, reply, doc);
    json_decref(doc);
}

/* Inserts the actor. Returns NULL, or the error answer. Lock held. */
static json_t *insert_locked(gcs *g, const create_req *r)
{
    json_t *known = gcs_actor_json_locked(g, r->id);
    if (known) {
        json_decref(known);
        return prism_error_json("exists", "actor %s exists", r->id);
    }
    json_t *named = r->name ? live_by_name_locked(g, r->ns, r->name) : NULL;
    if (named) {
        json_t *err = prism_error_json("name_taken", "actor %s is named '%s' in namespace '%s'",
                                json_string_value(json_object_get(named, "actor_id")), r->name,
                                r->ns);
        json_decref(named);
        return err;
    }
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "INSERT INTO actors (id, name, namespace, class, package, owner, detached, state, "
               "spec, args, max_restarts, max_task_retries, max_concurrency, created_at, "
               "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'PENDING_CREATION', ?, ?, ?, ?, ?, ?, ?)");
    int64_t now = prism_now_ms();
    gcs_db_bind_text(st, 1, r->id);
    gcs_db_bind_text(st, 2, r->name);
    gcs_db_bind_text(st, 3, r->ns);
    gcs_db_bind_text(st, 4, r->cls);
    gcs_db_bind_text(st, 5, r->package);
    gcs_db_bind_text(st, 6, r->owner);
    sqlite3_bind_int(st, 7, r->detached);
    gcs_db_bind_json(st, 8, r->lease);
    sqlite3_bind_blob(st, 9, r->args, (int)r->args_len, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 10, r->max_restarts);
    sqlite3_bind_int64(st, 11, r->max_task_retries);
    sqlite3_bind_int64(st, 12, r->max_concurrency);
    sqlite3_bind_int64(st, 13, now);
    sqlite3_bind_int64(st, 14, now);
    if (gcs_db_exec_stmt(st) != SQLITE_DONE)
        return prism_error_json("internal", "the actor could not be stored");
    return NULL;
}

/* ---------- NATS requests ---------- */

static void on_create(prism_bus *bus, const char *subject, const char *reply, const char *data,
                      size_t len, void *ud)
{
    gcs *g = ud;
    json_t *msg, *answer = NULL;
    create_req r;
    char err[512];
    if (parse_create(data, len, &msg, &r, err, sizeof err) != 0) {
        LOG_DEBUG("actor create refused: %s", err);
        reply_json(g, reply, prism_error_json("invalid_argument", "%s", err));
        json_decref(msg);
        json_decref(r.lease);
        return;
    }
    actor_cmd *c = new_cmd(AC_CREATED, r.id);
    pthread_mutex_lock(&g->lock);
    answer = c ? insert_locked(g, &r) : prism_error_json("internal", "out of memory");
    if (!answer)
        gcs_actor_publish_locked(g, r.id); /* before the manager can publish a later state */
    pthread_mutex_unlock(&g->lock);
    if (!answer) {
        LOG_INFO("actor %s (%s/%s%s%s) created by %s", r.id, r.package, r.cls, r.name ? ", " : "",
                 r.name ? r.name : "", r.owner);
        prism_metric_add(g->actors->m_created, 1);
        gcs_actors_post(g, c);
        answer = json_pack("{s:b,s:s}", "ok", 1, "actor_id", r.id);
    } else {
        free(c);
    }
    reply_json(g, reply, answer);
    json_decref(msg);
    json_decref(r.lease);
}

static void on_get(prism_bus *bus, const char *subject, const char *reply, const char *data,
                   size_t len, void *ud)
{
    gcs *g = ud;
    json_t *msg = json_loadb(data, len, 0, NULL), *answer;
    const char *id = NULL, *name = NULL, *ns = "default";
    char err[256] = "";
    if (!json_is_object(msg) || !opt_string(msg, "actor_id", &id, err, sizeof err) ||
        !opt_string(msg, "name", &name, err, sizeof err) ||
        !opt_string(msg, "namespace", &ns, err, sizeof err) || (!id && !name)) {
        answer = prism_error_json("invalid_argument", "%s", *err ? err : "give actor_id, or name and namespace");
    } else {
        pthread_mutex_lock(&g->lock);
        json_t *a = id ? gcs_actor_json_locked(g, id) : live_by_name_locked(g, ns, name);
        pthread_mutex_unlock(&g->lock);
        if (a)
            answer = json_pack("{s:b,s:o}", "ok", 1, "actor", a);
        else if (id)
            answer = prism_error_json("not_found", "no actor %s", id);
        else
            answer = prism_error_json("not_found", "no live actor named '%s' in namespace '%s'", name, ns);
    }
    reply_json(g, reply, answer);
    json_decref(msg);
}

/* Asks the manager to kill `id` and waits for it to act. False: no such actor. */
static bool kill_actor(gcs *g, const char *id, bool no_restart)
{
    json_t *a = actor_json(g, id);
    if (!a)
        return false;
    json_decref(a);
    actor_cmd *c = new_cmd(AC_KILL, id);
    if (c) {
        c->no_restart = no_restart;
        gcs_actors_wait(g, gcs_actors_post(g, c), KILL_WAIT_MS);
    }
    return true;
}

static void on_kill(prism_bus *bus, const char *subject, const char *reply, const char *data,
                    size_t len, void *ud)
{
    gcs *g = ud;
    json_t *msg = json_loadb(data, len, 0, NULL), *answer;
    const char *id = NULL;
    bool no_restart = true; /* as Ray's ray.kill: killed for good unless asked */
    char err[256] = "";
    if (!json_is_object(msg) || !opt_string(msg, "actor_id", &id, err, sizeof err) ||
        !opt_bool(msg, "no_restart", &no_restart, err, sizeof err) || !id)
        answer = prism_error_json("invalid_argument", "%s", *err ? err : "give actor_id (and no_restart)");
    else if (!kill_actor(g, id, no_restart))
        answer = prism_error_json("not_found", "no actor %s", id);
    else
        answer = json_pack("{s:b}", "ok", 1);
    reply_json(g, reply, answer);
    json_decref(msg);
}

/* Answers to the manager's own requests: <prefix>.lease.<actor>.<n> and
 * <prefix>.ping.<actor>. An empty body is NATS's "no responders". */
static void on_reply(prism_bus *bus, const char *subject, const char *reply, const char *data,
                     size_t len, void *ud)
{
    gcs *g = ud;
    const char *rest = subject + strlen(g->actors->reply_prefix);
    char id[PRISM_ID_HEX_LEN + 1];
    unsigned long long n = 0;
    actor_cmd_kind kind;
    if (sscanf(rest, ".lease.%32[0-9a-f].%llu", id, &n) == 2)
        kind = AC_LEASE_REPLY;
    else if (sscanf(rest, ".ping.%32[0-9a-f]", id) == 1)
        kind = AC_PING_REPLY;
    else
        return;
    actor_cmd *c = new_cmd(kind, id);
    if (!c || !(c->data = malloc(len + 1))) {
        free(c);
        return;
    }
    memcpy(c->data, data, len);
    c->data[len] = '\0';
    c->len = len;
    c->n = n;
    gcs_actors_post(g, c);
}

/* ---------- start and stop ---------- */

typedef struct state_gauge {
    gcs *g;
    const char *state;
} state_gauge;
static state_gauge gauges[4];

static double count_state(void *ud)
{
    state_gauge *s = ud;
    pthread_mutex_lock(&s->g->lock);
    sqlite3_stmt *st = gcs_db_prepare(s->g->db, "SELECT count(*) FROM actors WHERE state = ?");
    gcs_db_bind_text(st, 1, s->state);
    double n = st && sqlite3_step(st) == SQLITE_ROW ? (double)sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->g->lock);
    return n;
}

int gcs_actors_create(gcs *g)
{
    gcs_actors *A = calloc(1, sizeof *A);
    if (!A)
        return -1;
    pthread_mutex_init(&A->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&A->processed_cv, &ca);
    pthread_condattr_destroy(&ca);
    A->epfd = epoll_create1(EPOLL_CLOEXEC);
    A->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    prism_id inst;
    char hex[PRISM_ID_HEX_LEN + 1];
    prism_id_random(&inst);
    prism_id_to_hex(&inst, hex);
    snprintf(A->reply_prefix, sizeof A->reply_prefix, PRISM_SUBJECT_GCS_REPLY_PREFIX "%s", hex);
    g->actors = A;
    A->calls = json_object();
    if (A->epfd < 0 || A->wakefd < 0 || !A->calls)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(A->epfd, EPOLL_CTL_ADD, A->wakefd, &ev);
    A->m_created = prism_metrics_counter(g->metrics, "prism_gcs_actors_created_total",
                                         "Actors created", NULL);
    A->m_restarts = prism_metrics_counter(g->metrics, "prism_gcs_actor_restarts_total",
                                          "Actor restarts (worker or node lost, or killed to restart)",
                                          NULL);
    for (int i = 0; i < 4; i++) {
        char labels[64];
        gauges[i] = (state_gauge){g, states[i]};
        snprintf(labels, sizeof labels, "state=\"%s\"", states[i]);
        prism_metrics_gauge_fn(g->metrics, "prism_gcs_actors", "Actors by state", labels,
                               count_state, &gauges[i]);
    }
    return 0;
}

int gcs_actors_start(gcs *g)
{
    gcs_actors *A = g->actors;
    char replies[96];
    snprintf(replies, sizeof replies, "%s.>", A->reply_prefix);
    gcs_actor_manager_load(g);
    if (prism_bus_subscribe(g->bus, replies, NULL, on_reply, g) != 0 ||
        prism_bus_subscribe(g->bus, PRISM_SUBJECT_ACTOR_CREATE, "gcs", on_create, g) != 0 ||
        prism_bus_subscribe(g->bus, PRISM_SUBJECT_ACTOR_GET, "gcs", on_get, g) != 0 ||
        prism_bus_subscribe(g->bus, PRISM_SUBJECT_ACTOR_KILL, "gcs", on_kill, g) != 0 ||
        prism_bus_subscribe(g->bus, PRISM_SUBJECT_EVENT_ACTOR_CALLS, "gcs", on_calls, g) != 0)
        return -1;
    if (pthread_create(&A->thread, NULL, gcs_actor_manager_main, g) != 0)
        return -1;
    A->started = true;
    return 0;
}

void gcs_actors_stop(gcs *g)
{
    gcs_actors *A = g->actors;
    if (!A)
        return;
    pthread_mutex_lock(&A->lock);
    A->stopping = true;
    pthread_cond_broadcast(&A->processed_cv);
    pthread_mutex_unlock(&A->lock);
    uint64_t one = 1;
    if (A->wakefd >= 0 && write(A->wakefd, &one, sizeof one) < 0) {
    }
    if (A->started)
        pthread_join(A->thread, NULL);
    A->started = false;
}

void gcs_actors_destroy(gcs *g)
{
    gcs_actors *A = g->actors;
    if (!A)
        return;
    gcs_actor_manager_free(g);
    for (actor_cmd *c = A->head, *next; c; c = next) {
        next = c->next;
        free(c->data);
        free(c);
    }
    if (A->epfd >= 0)
        close(A->epfd);
    if (A->wakefd >= 0)
        close(A->wakefd);
    pthread_cond_destroy(&A->processed_cv);
    pthread_mutex_destroy(&A->lock);
    json_decref(A->calls);
    free(A);
    g->actors = NULL;
}

/* ---------- REST ---------- */

static bool valid_state(const char *s)
{
    for (int i = 0; s && i < 4; i++)
        if (!strcmp(s, states[i]))
            return true;
    return !s;
}

void gcs_api_actors_list(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    int64_t limit, cursor;
    const char *state = prism_http_query(req, "state"), *name = prism_http_query(req, "name");
    const char *ns = prism_http_query(req, "namespace"), *cls = prism_http_query(req, "class");
    if (prism_http_query_int(req, "limit", 100, 1, 1000, &limit) != 0 ||
        prism_http_query_int(req, "cursor", INT64_MAX, 0, INT64_MAX, &cursor) != 0)
        return;
    if (!valid_state(state)) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "state must be PENDING_CREATION, ALIVE, RESTARTING or DEAD");
        return;
    }
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "SELECT " ACTOR_COLUMNS " FROM actors WHERE seq < ?1 AND (?2 IS NULL OR state = ?2)"
               " AND (?3 IS NULL OR name = ?3) AND (?4 IS NULL OR namespace = ?4)"
               " AND (?5 IS NULL OR class = ?5) ORDER BY seq DESC LIMIT ?6");
    sqlite3_bind_int64(st, 1, cursor);
    gcs_db_bind_text(st, 2, state);
    gcs_db_bind_text(st, 3, name);
    gcs_db_bind_text(st, 4, ns);
    gcs_db_bind_text(st, 5, cls);
    sqlite3_bind_int64(st, 6, limit + 1); /* one more tells whether a next page exists */
    json_t *list = json_array();
    int64_t last = 0;
    bool more = false;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        if ((int64_t)json_array_size(list) == limit) {
            more = true;
            break;
        }
        json_t *a = actor_row_json(st);
        if (a)
            add_calls(g, a);
        json_array_append_new(list, a);
        last = sqlite3_column_int64(st, 21);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&g->lock);
    json_t *next = more ? json_sprintf("%lld", (long long)last) : json_null();
    prism_http_reply_json(req, 200, json_pack("{s:o,s:o}", "actors", list, "next_cursor", next));
}

void gcs_api_actor_get(prism_http_req *req, void *ctx)
{
    const char *id = prism_http_param(req, "id");
    json_t *a = actor_json(ctx, id);
    if (!a) {
        prism_http_reply_error(req, 404, "not_found", "no actor '%s'", id);
        return;
    }
    prism_http_reply_json(req, 200, a);
}

void gcs_api_actor_kill(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    const char *id = prism_http_param(req, "id");
    json_t *a = actor_json(g, id);
    if (!a) {
        prism_http_reply_error(req, 404, "not_found", "no actor '%s'", id);
        return;
    }
    json_decref(a);
    size_t len = 0;
    prism_http_body(req, &len);
    json_t *body = len ? prism_http_body_json(req) : json_object();
    if (!body)
        return;
    json_t *v = json_object_get(body, "no_restart");
    if (v && !json_is_boolean(v)) {
        prism_http_reply_error(req, 400, "invalid_argument", "'no_restart' must be true or false");
        json_decref(body);
        return;
    }
    bool no_restart = !v || json_is_true(v); /* as Ray's ray.kill: for good unless asked */
    json_decref(body);
    if (!kill_actor(g, id, no_restart)) {
        prism_http_reply_error(req, 404, "not_found", "no actor '%s'", id);
        return;
    }
    a = actor_json(g, id);
    if (!a)
        prism_http_reply_error(req, 404, "not_found", "actor '%s' was pruned meanwhile", id);
    else
        prism_http_reply_json(req, 200, a);
}
