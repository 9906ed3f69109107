/* The actors' NATS requests (docs/actors.md): prism.gcs.actor.create (the
 * request checked, the row inserted, the manager told), prism.gcs.actor.get
 * and prism.gcs.actor.kill. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors.h"
#include "pgroups.h"
#include "prism_codec.h"
#include "db.h"
#include "prism_error.h"
#include "prism_log.h"
#include "prism_sha256.h"
#include "prism_subjects.h"
#include "prism_time.h"
#include "prism_wire.h"

#define MAX_TEXT 128     /* owner, class */
#define MAX_NAME 256     /* name, namespace (what libprism allows) */
#define MAX_RESOURCES 64 /* names in a resource map */
#define MAX_ARGS 65536   /* constructor arguments (the worker's limit) */

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
            snprintf(err, n,
                     "'resources' must map names to non-negative numbers ('%.64s' does not)", name);
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
    if (!opt_string(msg, "strategy", &strategy, err, n) ||
        !opt_string(msg, "node_id", &node, err, n) || !opt_bool(msg, "soft", &soft, err, n))
        return NULL;
    const char *pg = NULL;
    json_int_t bundle = -1;
    if (!opt_string(msg, "placement_group_id", &pg, err, n) ||
        !opt_int(msg, "bundle_index", -1, INT32_MAX, &bundle, err, n))
        return NULL;
    if (pg && !prism_is_hex(pg, PRISM_ID_HEX_LEN)) {
        snprintf(err, n, "'placement_group_id' must be 32 lowercase hex digits");
        return NULL;
    }
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
    if (pg) {
        json_object_set_new(spec, "placement_group_id", json_string(pg));
        json_object_set_new(spec, "bundle_index", json_integer(bundle));
    }
    return spec;
}

/* "arg_refs": the constructor's arguments that live in an object store, each
 * {object_id, owner}; the creator registered the GCS as their borrower
 * (WIRE_GCS_BORROWER) and the manager lets go of them once the actor is
 * DEAD. Kept in the spec. Returns false with `err`. */
static bool take_arg_refs(json_t *msg, json_t *spec, char *err, size_t n)
{
    json_t *refs = json_object_get(msg, "arg_refs"), *r;
    size_t i;
    if (!refs || json_is_null(refs))
        return true;
    if (!json_is_array(refs) || json_array_size(refs) > MAX_ARGS) {
        snprintf(err, n, "'arg_refs' must be an array of at most %d objects", MAX_ARGS);
        return false;
    }
    json_array_foreach(refs, i, r) {
        const char *id = json_string_value(json_object_get(r, "object_id"));
        const char *owner = json_string_value(json_object_get(r, "owner"));
        char subject[160];
        if (!prism_is_hex(id, PRISM_OBJECT_ID_HEX_LEN) || !plain_text(owner, MAX_TEXT) ||
            !wire_owner_subject(owner, subject, sizeof subject)) {
            snprintf(err, n,
                     "'arg_refs' items are {object_id: %d lowercase hex digits, owner: an "
                     "owner address}",
                     PRISM_OBJECT_ID_HEX_LEN);
            return false;
        }
    }
    json_object_set(spec, "arg_refs", refs);
    return true;
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
    if (!opt_string(m, "actor_id", &out->id, err, n) ||
        !opt_string(m, "owner", &out->owner, err, n) ||
        !opt_string(m, "package", &out->package, err, n) ||
        !opt_string(m, "class", &out->cls, err, n) || !opt_string(m, "name", &out->name, err, n) ||
        !opt_string(m, "namespace", &out->ns, err, n) ||
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
        snprintf(err, n,
                 "an actor that is not detached needs an owner address (owner:HEX) to "
                 "share its fate with");
    else if (!out->package ||
             (strcmp(out->package, "builtin") && !prism_is_hex(out->package, PRISM_SHA256_HEX_LEN)))
        snprintf(err, n, "'package' must be \"builtin\" or a package's sha256 (64 lowercase hex)");
    else if (!identifier(out->cls))
        snprintf(err, n,
                 "'class' must be 1-%d characters of A-Z a-z 0-9 _, not starting with a digit",
                 MAX_TEXT);
    else if (out->name && !plain_text(out->name, MAX_NAME))
        snprintf(err, n, "'name' must be 1-%d bytes without control characters", MAX_NAME);
    else if (!plain_text(out->ns, MAX_NAME))
        snprintf(err, n, "'namespace' must be 1-%d bytes without control characters", MAX_NAME);
    else if (!(out->lease = lease_spec(m, err, n)))
        return -1;
    else if (!take_arg_refs(m, out->lease, err, n))
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
/* An actor may live only in a placement group that exists and is not removed. */
static json_t *group_error_locked(gcs *g, json_t *lease)
{
    const char *pg = json_string_value(json_object_get(lease, "placement_group_id"));
    json_t *doc = pg ? gcs_pg_json_locked(g, pg) : NULL;
    const char *state = json_string_value(json_object_get(doc, "state"));
    json_t *err = NULL;
    if (pg && !doc)
        err = prism_error_json("invalid_argument", "no placement group %s", pg);
    else if (state && !strcmp(state, "REMOVED"))
        err = prism_error_json("invalid_argument", "placement group %s was removed", pg);
    json_decref(doc);
    return err;
}

static json_t *insert_locked(gcs *g, const create_req *r)
{
    json_t *named = r->name ? gcs_actor_live_by_name_locked(g, r->ns, r->name) : NULL;
    if (named) {
        json_t *err = prism_error_json("name_taken", "actor %s is named '%s' in namespace '%s'",
                                       json_string_value(json_object_get(named, "actor_id")),
                                       r->name, r->ns);
        json_decref(named);
        return err;
    }
    json_t *refused = group_error_locked(g, r->lease);
    if (refused)
        return refused;
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
    int rc = gcs_db_exec_stmt(st);
    if (rc == SQLITE_CONSTRAINT) /* the ID is UNIQUE: no lookup before */
        return prism_error_json("exists", "actor %s exists", r->id);
    if (rc != SQLITE_DONE)
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
    actor_cmd *c = gcs_actor_cmd_new(AC_CREATED, r.id);
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
        answer = prism_error_json("invalid_argument", "%s",
                                  *err ? err : "give actor_id, or name and namespace");
    } else {
        pthread_mutex_lock(&g->lock);
        json_t *a = id ? gcs_actor_json_locked(g, id) : gcs_actor_live_by_name_locked(g, ns, name);
        pthread_mutex_unlock(&g->lock);
        if (a)
            answer = json_pack("{s:b,s:o}", "ok", 1, "actor", a);
        else if (id)
            answer = prism_error_json("not_found", "no actor %s", id);
        else
            answer = prism_error_json("not_found", "no live actor named '%s' in namespace '%s'",
                                      name, ns);
    }
    reply_json(g, reply, answer);
    json_decref(msg);
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
        answer = prism_error_json("invalid_argument", "%s",
                                  *err ? err : "give actor_id (and no_restart)");
    else if (!gcs_actor_kill(g, id, no_restart))
        answer = prism_error_json("not_found", "no actor %s", id);
    else
        answer = json_pack("{s:b}", "ok", 1);
    reply_json(g, reply, answer);
    json_decref(msg);
}

/* The GCS's address as a borrower (WIRE_GCS_BORROWER): owners ping it to
 * know it still holds the constructor arguments it borrowed. */
static void on_owner_request(prism_bus *bus, const char *subject, const char *reply,
                             const char *data, size_t len, void *ud)
{
    uint8_t zero = 0; /* PING's answer; nothing else is asked of a borrower */
    if (reply)
        prism_bus_publish(bus, reply, (const char *)&zero, 1);
}

int gcs_actor_requests_start(gcs *g)
{
    char borrower[96];
    if (!wire_owner_subject(WIRE_GCS_BORROWER, borrower, sizeof borrower) ||
        prism_bus_subscribe(g->bus, borrower, NULL, on_owner_request, g) != 0)
        return -1;
    if (prism_bus_subscribe(g->bus, PRISM_SUBJECT_ACTOR_CREATE, "gcs", on_create, g) != 0 ||
        prism_bus_subscribe(g->bus, PRISM_SUBJECT_ACTOR_GET, "gcs", on_get, g) != 0 ||
        prism_bus_subscribe(g->bus, PRISM_SUBJECT_ACTOR_KILL, "gcs", on_kill, g) != 0)
        return -1;
    return 0;
}
