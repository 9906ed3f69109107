/* Jobs: submission, placement on nodes, the state machine, reconciliation
 * with the node agents, retention, and the jobs REST API.
 *
 * States: PENDING → RUNNING → SUCCEEDED | FAILED | STOPPED. A PENDING job may
 * also end directly (stopped before it started, or failed to start). Terminal
 * states never change: every transition is an UPDATE guarded by the state. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db.h"
#include "gcs.h"
#include "prism_sha256.h"
#include "prism_fs.h"
#include "prism_log.h"
#include "prism_resources.h"
#include "prism_subjects.h"
#include "prism_time.h"

#define JOB_COLUMNS                                                                             \
    "id, state, entrypoint, env, working_dir, resources, metadata, node_id, message, exit_code, " \
    "submitted_at, start_time, end_time, stop_requested, ray, seq, packages"
#define NOT_ENDED "state NOT IN ('SUCCEEDED','FAILED','STOPPED')"
#define START_TIMEOUT_MS 5000
#define RECONCILE_EVERY_MS 2000
#define RECONCILE_GRACE_MS 3000
#define RETENTION_BATCH 1000
#define MAX_JOB_PACKAGES 32
#define PACKAGE_NAME_MAX 64

bool gcs_state_terminal(const char *state)
{
    return state && (!strcmp(state, "SUCCEEDED") || !strcmp(state, "FAILED") ||
                     !strcmp(state, "STOPPED"));
}

/* The job's packages column: a list, empty for a job that names none. */
static json_t *packages_column(sqlite3_stmt *st, int i)
{
    json_t *list = gcs_db_column_json(st, i);
    if (json_is_array(list))
        return list;
    json_decref(list);
    return json_array();
}

static json_t *job_row_json(sqlite3_stmt *st)
{
    return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:b,s:o}", "job_id",
                     gcs_db_column_text_or_null(st, 0), "submission_id",
                     gcs_db_column_text_or_null(st, 0), "state", gcs_db_column_text_or_null(st, 1),
                     "entrypoint", gcs_db_column_text_or_null(st, 2), "env",
                     gcs_db_column_json(st, 3), "working_dir", gcs_db_column_text_or_null(st, 4),
                     "resources", gcs_db_column_json(st, 5), "metadata", gcs_db_column_json(st, 6),
                     "node_id", gcs_db_column_text_or_null(st, 7), "message",
                     gcs_db_column_text_or_null(st, 8), "driver_exit_code",
                     gcs_db_column_int_or_null(st, 9), "submitted_at",
                     gcs_db_column_int_or_null(st, 10), "start_time",
                     gcs_db_column_int_or_null(st, 11), "end_time",
                     gcs_db_column_int_or_null(st, 12), "stop_requested",
                     sqlite3_column_int(st, 13), "packages", packages_column(st, 16));
}

static json_t *job_get_locked(gcs *g, const char *id)
{
    sqlite3_stmt *st = gcs_db_prepare(g->db, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?");
    gcs_db_bind_text(st, 1, id);
    json_t *job = st && sqlite3_step(st) == SQLITE_ROW ? job_row_json(st) : NULL;
    sqlite3_finalize(st);
    return job;
}

json_t *gcs_job_get(gcs *g, const char *id)
{
    pthread_mutex_lock(&g->lock);
    json_t *job = job_get_locked(g, id);
    pthread_mutex_unlock(&g->lock);
    return job;
}

static void publish_job_event_locked(gcs *g, const char *id)
{
    json_t *job = job_get_locked(g, id);
    if (!job)
        return;
    json_t *ev = json_pack("{s:O,s:O,s:O,s:O,s:O,s:I}", "job_id", json_object_get(job, "job_id"),
                           "state", json_object_get(job, "state"), "node_id",
                           json_object_get(job, "node_id"), "message",
                           json_object_get(job, "message"), "exit_code",
                           json_object_get(job, "driver_exit_code"), "time",
                           (json_int_t)prism_now_ms());
    prism_bus_publish_json(g->bus, PRISM_SUBJECT_EVENT_JOB, ev);
    json_decref(ev);
    json_decref(job);
}

void gcs_publish_job_event(gcs *g, const char *id)
{
    pthread_mutex_lock(&g->lock);
    publish_job_event_locked(g, id);
    pthread_mutex_unlock(&g->lock);
}

/* Gives back what a placed job held on its node. Lock held. */
static void release_locked(gcs *g, const char *node_id, json_t *resources)
{
    gcs_node *n = node_id ? gcs_node_find(g, node_id) : NULL;
    if (n && resources) {
        gcs_res_add(n->used, resources, -1);
        g->placement_wanted = true; /* a waiting job may fit now */
    }
}

typedef struct job_place {
    char *node_id;
    json_t *resources;
    char *state;
} job_place;

static int job_place_load(gcs *g, const char *id, job_place *out)
{
    sqlite3_stmt *st =
        gcs_db_prepare(g->db, "SELECT node_id, resources, state FROM jobs WHERE id = ?");
    gcs_db_bind_text(st, 1, id);
    int rc = -1;
    if (st && sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *node = sqlite3_column_text(st, 0);
        out->node_id = node ? strdup((const char *)node) : NULL;
        out->resources = gcs_db_column_json(st, 1);
        out->state = strdup((const char *)sqlite3_column_text(st, 2));
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

static void job_place_free(job_place *p)
{
    free(p->node_id);
    json_decref(p->resources);
    free(p->state);
}

bool gcs_job_finish_locked(gcs *g, const char *id, const char *state, json_t *exit_code,
                           int64_t end_time, const char *message)
{
    job_place p;
    if (job_place_load(g, id, &p) != 0)
        return false;
    bool changed = false;
    if (!gcs_state_terminal(p.state)) {
        sqlite3_stmt *st = gcs_db_prepare(
            g->db, "UPDATE jobs SET state=?, exit_code=?, end_time=?, message=? WHERE id=? AND " NOT_ENDED);
        gcs_db_bind_text(st, 1, state);
        if (json_is_integer(exit_code))
            sqlite3_bind_int64(st, 2, json_integer_value(exit_code));
        else
            sqlite3_bind_null(st, 2);
        sqlite3_bind_int64(st, 3, end_time);
        gcs_db_bind_text(st, 4, message ? message : "");
        gcs_db_bind_text(st, 5, id);
        changed = gcs_db_exec_stmt(st) == SQLITE_DONE && sqlite3_changes(g->db) > 0;
    }
    if (changed) {
        release_locked(g, p.node_id, p.resources);
        LOG_INFO("job %s %s%s%s", id, state, message && *message ? ": " : "",
                 message ? message : "");
        prism_metric_add(g->m_jobs_finished, 1);
        publish_job_event_locked(g, id);
    }
    job_place_free(&p);
    return changed;
}

static void job_set_running_locked(gcs *g, const char *id, int64_t start_time)
{
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "UPDATE jobs SET state='RUNNING', start_time=?, message='' WHERE id=? AND state='PENDING'");
    sqlite3_bind_int64(st, 1, start_time > 0 ? start_time : prism_now_ms());
    gcs_db_bind_text(st, 2, id);
    if (gcs_db_exec_stmt(st) == SQLITE_DONE && sqlite3_changes(g->db) > 0) {
        LOG_INFO("job %s RUNNING", id);
        publish_job_event_locked(g, id);
    }
}

/* Takes a job that never started off its node so placement tries again. Lock held. */
static void job_unassign_locked(gcs *g, const char *id, const char *message)
{
    job_place p;
    if (job_place_load(g, id, &p) != 0)
        return;
    if (!strcmp(p.state, "PENDING") && p.node_id) {
        sqlite3_stmt *st = gcs_db_prepare(
            g->db, "UPDATE jobs SET node_id=NULL, assigned_at=NULL, message=? WHERE id=? AND state='PENDING'");
        gcs_db_bind_text(st, 1, message);
        gcs_db_bind_text(st, 2, id);
        gcs_db_exec_stmt(st);
        release_locked(g, p.node_id, p.resources);
        g->placement_wanted = true;
    }
    job_place_free(&p);
}

void gcs_jobs_fail_node_locked(gcs *g, const char *node_id, const char *message)
{
    sqlite3_stmt *st = gcs_db_prepare(g->db, "SELECT id FROM jobs WHERE node_id=? AND " NOT_ENDED);
    gcs_db_bind_text(st, 1, node_id);
    json_t *ids = json_array();
    while (st && sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(ids, json_string((const char *)sqlite3_column_text(st, 0)));
    sqlite3_finalize(st);
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
        gcs_job_finish_locked(g, json_string_value(v), "FAILED", NULL, prism_now_ms(), message);
    json_decref(ids);
}

/* ---------- node agent reports ---------- */

static void apply_report_locked(gcs *g, const char *id, json_t *report)
{
    const char *state = json_string_value(json_object_get(report, "state"));
    int64_t start = json_integer_value(json_object_get(report, "start_time"));
    int64_t end = json_integer_value(json_object_get(report, "end_time"));
    const char *message = json_string_value(json_object_get(report, "message"));
    if (!state)
        return;
    if (!strcmp(state, "RUNNING")) {
        job_set_running_locked(g, id, start);
    } else if (gcs_state_terminal(state)) {
        if (start > 0) {
            sqlite3_stmt *st = gcs_db_prepare(
                g->db, "UPDATE jobs SET start_time=COALESCE(start_time, ?) WHERE id=?");
            sqlite3_bind_int64(st, 1, start);
            gcs_db_bind_text(st, 2, id);
            gcs_db_exec_stmt(st);
        }
        gcs_job_finish_locked(g, id, state, json_object_get(report, "exit_code"),
                              end > 0 ? end : prism_now_ms(), message);
    }
}

static void on_job_update(prism_bus *bus, const char *subject, const char *reply, const char *data,
                          size_t len, void *ud)
{
    gcs *g = ud;
    json_t *msg = json_loadb(data, len, 0, NULL);
    const char *id = json_string_value(json_object_get(msg, "job_id"));
    const char *node = json_string_value(json_object_get(msg, "node_id"));
    if (id && node) {
        pthread_mutex_lock(&g->lock);
        job_place p;
        if (job_place_load(g, id, &p) == 0) {
            if (p.node_id && !strcmp(p.node_id, node))
                apply_report_locked(g, id, msg);
            job_place_free(&p);
        }
        pthread_mutex_unlock(&g->lock);
    }
    json_decref(msg);
}

/* ---------- submission ---------- */

static bool string_map(json_t *obj)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) if (!json_is_string(v)) return false;
    return true;
}

/* The driver's environment is built from these names as NAME=VALUE strings:
 * an empty name, '=' or NUL in a name, or NUL in a value would make another
 * variable or a truncated one, so they are refused here rather than on the
 * node when the driver starts. Fills `bad` and returns -1 on the first one. */
static int env_check(json_t *env, char *bad, size_t badlen)
{
    const char *k;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach(env, k, klen, v) {
        if (klen == 0 || klen != strlen(k) || strchr(k, '=')) {
            snprintf(bad, badlen, "env: variable name '%.128s' is not valid (a name must not be "
                                  "empty nor contain '=' or NUL)", k);
            return -1;
        }
        if (json_string_length(v) != strlen(json_string_value(v))) {
            snprintf(bad, badlen, "env: the value of '%.128s' contains NUL", k);
            return -1;
        }
    }
    return 0;
}

static bool number_map(json_t *obj)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) if (!json_is_number(v) || json_number_value(v) < 0) return false;
    return true;
}


/* A package's name becomes part of the driver's PRISM_PACKAGE_<NAME>. */
static bool package_name_ok(const char *s)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");
    return n > 0 && n <= PACKAGE_NAME_MAX && s[n] == '\0';
}

/* Whether `out` already has the sha256 or (ignoring case, as the variable
 * names are upper case) the name. */
static const char *package_duplicate(json_t *out, const char *sha, const char *name)
{
    size_t i;
    json_t *e;
    json_array_foreach(out, i, e) {
        const char *other = json_string_value(json_object_get(e, "name"));
        if (!strcmp(json_string_value(json_object_get(e, "sha256")), sha))
            return "is listed twice";
        if (name && other && !strcasecmp(name, other))
            return "has a name used twice (names are compared ignoring case)";
    }
    return NULL;
}

/* `packages`: a list whose entries are a package sha256 or {"sha256", "name"},
 * made into [{"sha256", "name"}] (name null when none). NULL with `bad` set
 * when it is not valid. */
static json_t *parse_packages(json_t *list, char *bad, size_t badlen)
{
    if (!json_is_array(list)) {
        snprintf(bad, badlen, "field 'packages' must be a list of package sha256s or "
                              "{\"sha256\", \"name\"} objects");
        return NULL;
    }
    if (json_array_size(list) > MAX_JOB_PACKAGES) {
        snprintf(bad, badlen, "field 'packages' has %zu entries; a job names at most %d",
                 json_array_size(list), MAX_JOB_PACKAGES);
        return NULL;
    }
    json_t *out = json_array(), *e;
    size_t i;
    json_array_foreach(list, i, e) {
        json_t *name_v = json_is_object(e) ? json_object_get(e, "name") : NULL;
        const char *sha = json_string_value(json_is_object(e) ? json_object_get(e, "sha256") : e);
        const char *name = json_string_value(name_v), *dup = NULL;
        if (!json_is_string(e) && !json_is_object(e))
            snprintf(bad, badlen, "packages[%zu] must be a package sha256 or an object "
                                  "{\"sha256\", \"name\"}", i);
        else if (!sha || !prism_is_hex(sha, PRISM_SHA256_HEX_LEN))
            snprintf(bad, badlen, "packages[%zu] must name a package by its sha256 "
                                  "(64 lowercase hex digits)", i);
        else if (name_v && !json_is_null(name_v) && !(name && package_name_ok(name)))
            snprintf(bad, badlen, "packages[%zu]: 'name' must be 1-%d characters of "
                                  "A-Z a-z 0-9 _", i, PACKAGE_NAME_MAX);
        else if ((dup = package_duplicate(out, sha, name)) != NULL)
            snprintf(bad, badlen, "packages[%zu] (%s) %s", i, name ? name : sha, dup);
        else {
            json_array_append_new(out, json_pack("{s:s,s:s?}", "sha256", sha, "name", name));
            continue;
        }
        json_decref(out);
        return NULL;
    }
    return out;
}

void gcs_job_spec_free(gcs_job_spec *spec)
{
    json_decref(spec->packages);
    spec->packages = NULL;
}

int gcs_job_spec_from_json(prism_http_req *req, json_t *body, gcs_job_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    if (prism_http_field_string(req, body, "entrypoint", true, &spec->entrypoint) != 0 ||
        prism_http_field_string(req, body, "submission_id", false, &spec->id) != 0 ||
        prism_http_field_string(req, body, "working_dir", false, &spec->working_dir) != 0 ||
        prism_http_field_object(req, body, "env", &spec->env) != 0 ||
        prism_http_field_object(req, body, "resources", &spec->resources) != 0 ||
        prism_http_field_object(req, body, "metadata", &spec->metadata) != 0)
        return -1;
    const char *bad = NULL;
    if (!*spec->entrypoint)
        bad = "field 'entrypoint' must not be empty";
    else if (spec->id && !prism_safe_name(spec->id))
        bad = "field 'submission_id' must be 1-128 characters of A-Z a-z 0-9 . _ -";
    else if (spec->working_dir && !prism_is_hex(spec->working_dir, PRISM_SHA256_HEX_LEN))
        bad = "field 'working_dir' must be a package sha256 (64 lowercase hex digits)";
    else if (spec->env && !string_map(spec->env))
        bad = "field 'env' must map names to strings";
    else if (spec->metadata && !string_map(spec->metadata))
        bad = "field 'metadata' must map names to strings";
    else if (spec->resources && !number_map(spec->resources))
        bad = "field 'resources' must map names to non-negative numbers";
    char env_bad[256];
    if (!bad && spec->env && env_check(spec->env, env_bad, sizeof env_bad) != 0)
        bad = env_bad;
    if (bad) {
        prism_http_reply_error(req, 400, "invalid_argument", "%s", bad);
        return -1;
    }
    json_t *packages = json_object_get(body, "packages");
    if (packages && !json_is_null(packages)) {
        char why[256];
        if (!(spec->packages = parse_packages(packages, why, sizeof why))) {
            prism_http_reply_error(req, 400, "invalid_argument", "%s", why);
            return -1;
        }
    }
    return 0;
}

static bool package_known_locked(gcs *g, const char *sha)
{
    sqlite3_stmt *st = gcs_db_prepare(g->db, "SELECT 1 FROM packages WHERE sha256=?");
    gcs_db_bind_text(st, 1, sha);
    bool known = st && sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return known;
}

/* The first of the job's packages the GCS does not have, or NULL. Lock held. */
static const char *unknown_package_locked(gcs *g, json_t *packages)
{
    size_t i;
    json_t *e;
    json_array_foreach(packages, i, e) {
        const char *sha = json_string_value(json_object_get(e, "sha256"));
        if (!package_known_locked(g, sha))
            return sha;
    }
    return NULL;
}

int gcs_job_submit(gcs *g, const gcs_job_spec *spec, char *id_out, size_t idlen,
                   const char **code, char *err, size_t errlen)
{
    char id[PRISM_ID_HEX_LEN + 1];
    const char *job_id = spec->id;
    if (!job_id) {
        prism_id raw;
        prism_id_random(&raw);
        prism_id_to_hex(&raw, id);
        job_id = id;
    }
    json_t *resources = spec->resources ? json_incref(spec->resources) : json_object();
    pthread_mutex_lock(&g->lock);
    int status = 0;
    const char *unknown = NULL;
    if (spec->working_dir && !package_known_locked(g, spec->working_dir)) {
        *code = "not_found";
        snprintf(err, errlen, "no package '%s' (upload it with POST /api/v1/packages)",
                 spec->working_dir);
        status = 404;
    } else if ((unknown = unknown_package_locked(g, spec->packages)) != NULL) {
        /* 400, not 404 like working_dir: the route exists, a field of the body is wrong. */
        *code = "unknown_package";
        snprintf(err, errlen, "no package '%s' (upload it with POST /api/v1/packages)", unknown);
        status = 400;
    } else {
        sqlite3_stmt *st = gcs_db_prepare(
            g->db, "INSERT INTO jobs (id, state, entrypoint, env, working_dir, resources, metadata, "
                   "message, submitted_at, ray, packages) VALUES (?, 'PENDING', ?, ?, ?, ?, ?, "
                   "'waiting for a node', ?, ?, ?)");
        gcs_db_bind_text(st, 1, job_id);
        gcs_db_bind_text(st, 2, spec->entrypoint);
        json_t *no_env = json_object();
        gcs_db_bind_json(st, 3, spec->env ? spec->env : no_env);
        json_decref(no_env);
        gcs_db_bind_text(st, 4, spec->working_dir);
        gcs_db_bind_json(st, 5, resources);
        gcs_db_bind_json(st, 6, spec->metadata);
        sqlite3_bind_int64(st, 7, prism_now_ms());
        sqlite3_bind_int(st, 8, spec->ray);
        gcs_db_bind_json(st, 9, json_array_size(spec->packages) ? spec->packages : NULL);
        int rc = gcs_db_exec_stmt(st);
        if (rc == SQLITE_CONSTRAINT) {
            *code = "duplicate_submission_id";
            snprintf(err, errlen, "a job with submission_id '%s' already exists", job_id);
            status = 409;
        } else if (rc != SQLITE_DONE) {
            *code = "internal";
            snprintf(err, errlen, "could not store the job");
            status = 500;
        } else {
            g->placement_wanted = true;
            prism_metric_add(g->m_jobs_submitted, 1);
            publish_job_event_locked(g, job_id);
            snprintf(id_out, idlen, "%s", job_id);
        }
    }
    pthread_mutex_unlock(&g->lock);
    json_decref(resources);
    if (status == 0)
        LOG_INFO("job %s submitted: %s", id_out, spec->entrypoint);
    return status;
}

/* ---------- placement ---------- */

typedef struct start_item {
    char *job_id, *node_id;
    json_t *request;
    struct start_item *next;
} start_item;

/* The live node with room for `want` and the most free CPU (spreads drivers). Lock held. */
static gcs_node *choose_node_locked(gcs *g, json_t *want)
{
    gcs_node *best = NULL;
    double best_free = -1;
    for (gcs_node *n = g->nodes; n; n = n->next) {
        if (!prism_res_fits(n->resources, n->used, want))
            continue;
        double free_cpu = json_number_value(json_object_get(n->resources, "CPU")) -
                          json_number_value(json_object_get(n->used, "CPU"));
        if (free_cpu > best_free) {
            best = n;
            best_free = free_cpu;
        }
    }
    return best;
}

static char *waiting_message_locked(gcs *g, json_t *want)
{
    bool any_total = false;
    json_t *none = json_object();
    for (gcs_node *n = g->nodes; n && !any_total; n = n->next)
        any_total = prism_res_fits(n->resources, none, want);
    json_decref(none);
    char *what = gcs_res_describe(want), *msg = NULL;
    const char *why = !g->nodes ? "no node is alive"
                      : any_total ? "the nodes that have them are busy"
                                  : "no alive node has that much";
    if (asprintf(&msg, "waiting for resources: %s (%s)", *what ? what : "none", why) < 0)
        msg = NULL;
    free(what);
    return msg;
}

static void set_message_locked(gcs *g, const char *id, const char *message)
{
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "UPDATE jobs SET message=? WHERE id=? AND message IS NOT ?");
    gcs_db_bind_text(st, 1, message);
    gcs_db_bind_text(st, 2, id);
    gcs_db_bind_text(st, 3, message);
    gcs_db_exec_stmt(st);
}

/* Assigns pending jobs to nodes under the lock; the start requests go out after. */
static start_item *place_jobs_locked(gcs *g)
{
    start_item *list = NULL;
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "SELECT id, entrypoint, env, working_dir, resources, packages FROM jobs "
               "WHERE state='PENDING' AND node_id IS NULL ORDER BY seq LIMIT 64");
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        json_t *want = gcs_db_column_json(st, 4);
        gcs_node *n = choose_node_locked(g, want);
        if (!n) {
            char *msg = waiting_message_locked(g, want);
            set_message_locked(g, id, msg);
            free(msg);
            json_decref(want);
            continue;
        }
        gcs_res_add(n->used, want, 1);
        sqlite3_stmt *up = gcs_db_prepare(
            g->db, "UPDATE jobs SET node_id=?, assigned_at=?, message=? WHERE id=?");
        char msg[256];
        snprintf(msg, sizeof msg, "starting on node %s", n->name);
        gcs_db_bind_text(up, 1, n->id);
        sqlite3_bind_int64(up, 2, prism_now_ms());
        gcs_db_bind_text(up, 3, msg);
        gcs_db_bind_text(up, 4, id);
        gcs_db_exec_stmt(up);
        start_item *item = calloc(1, sizeof *item);
        item->job_id = strdup(id);
        item->node_id = strdup(n->id);
        item->request = json_pack("{s:s,s:s,s:o,s:o,s:o,s:o}", "job_id", id, "entrypoint",
                                  (const char *)sqlite3_column_text(st, 1), "env",
                                  gcs_db_column_json(st, 2), "working_dir",
                                  gcs_db_column_text_or_null(st, 3), "resources", want,
                                  "packages", packages_column(st, 5));
        item->next = list;
        list = item;
    }
    sqlite3_finalize(st);
    return list;
}

static const char *error_code(json_t *reply)
{
    return json_string_value(json_object_get(json_object_get(reply, "error"), "code"));
}

static const char *error_message(json_t *reply)
{
    const char *m =
        json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
    return m ? m : "no reason given";
}

static void start_one(gcs *g, start_item *item)
{
    char subject[128];
    prism_subject_node(subject, sizeof subject, item->node_id, PRISM_NODE_JOB_START);
    json_t *reply = NULL;
    int rc = prism_bus_request_json(g->bus, subject, item->request, START_TIMEOUT_MS, &reply);
    pthread_mutex_lock(&g->lock);
    if (rc == PRISM_BUS_OK && json_is_true(json_object_get(reply, "ok"))) {
        job_set_running_locked(g, item->job_id,
                               json_integer_value(json_object_get(reply, "start_time")));
    } else if (rc == PRISM_BUS_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "the driver could not start: %s", error_message(reply));
        gcs_job_finish_locked(g, item->job_id, "FAILED", NULL, prism_now_ms(), msg);
    } else if (rc == PRISM_BUS_NO_RESPONDERS) {
        job_unassign_locked(g, item->job_id, "the chosen node did not answer; placing again");
    }
    /* On a timeout the job stays assigned: reconciliation asks the node later. */
    pthread_mutex_unlock(&g->lock);
    json_decref(reply);
}

void gcs_jobs_place(gcs *g)
{
    pthread_mutex_lock(&g->lock);
    start_item *list = g->placement_wanted ? place_jobs_locked(g) : NULL;
    g->placement_wanted = list != NULL; /* more may wait behind the batch */
    pthread_mutex_unlock(&g->lock);
    for (start_item *it = list, *next; it; it = next) {
        next = it->next;
        start_one(g, it);
        free(it->job_id);
        free(it->node_id);
        json_decref(it->request);
        free(it);
    }
}

/* ---------- reconciliation with the node agents ---------- */

typedef struct check_item {
    char job_id[160], node_id[PRISM_ID_HEX_LEN + 1];
    bool stop; /* the node runs a job the cluster considers ended */
} check_item;

#define MAX_CHECKS 32

static bool array_has(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), s)) return true;
    return false;
}

static int collect_checks_locked(gcs *g, check_item *items)
{
    int n = 0;
    int64_t now = prism_mono_ms(), cutoff = prism_now_ms() - RECONCILE_GRACE_MS;
    for (gcs_node *node = g->nodes; node && n < MAX_CHECKS; node = node->next) {
        if (now - node->last_reconcile_mono < RECONCILE_EVERY_MS)
            continue;
        node->last_reconcile_mono = now;
        sqlite3_stmt *st = gcs_db_prepare(
            g->db, "SELECT id FROM jobs WHERE node_id=? AND " NOT_ENDED " AND assigned_at < ?");
        gcs_db_bind_text(st, 1, node->id);
        sqlite3_bind_int64(st, 2, cutoff);
        while (st && sqlite3_step(st) == SQLITE_ROW && n < MAX_CHECKS) {
            const char *id = (const char *)sqlite3_column_text(st, 0);
            if (array_has(node->running, id))
                continue;
            snprintf(items[n].job_id, sizeof items[n].job_id, "%s", id);
            snprintf(items[n].node_id, sizeof items[n].node_id, "%s", node->id);
            items[n++].stop = false;
        }
        sqlite3_finalize(st);
        size_t i;
        json_t *v;
        json_array_foreach(node->running, i, v) {
            job_place p;
            const char *id = json_string_value(v);
            if (!id || n >= MAX_CHECKS)
                continue;
            bool ended = true;
            if (job_place_load(g, id, &p) == 0) {
                ended = gcs_state_terminal(p.state);
                job_place_free(&p);
            }
            if (!ended)
                continue;
            snprintf(items[n].job_id, sizeof items[n].job_id, "%s", id);
            snprintf(items[n].node_id, sizeof items[n].node_id, "%s", node->id);
            items[n++].stop = true;
        }
    }
    return n;
}

static void node_request(gcs *g, const char *node_id, const char *verb, const char *job_id,
                         int timeout_ms, int *rc, json_t **reply)
{
    char subject[PRISM_SUBJECT_MAX];
    prism_subject_node(subject, sizeof subject, node_id, verb);
    json_t *req = json_pack("{s:s}", "job_id", job_id);
    *rc = prism_bus_request_json(g->bus, subject, req, timeout_ms, reply);
    json_decref(req);
}

static void check_one(gcs *g, const check_item *it)
{
    int rc;
    json_t *reply = NULL;
    node_request(g, it->node_id, it->stop ? PRISM_NODE_JOB_STOP : PRISM_NODE_JOB_STATUS, it->job_id, 2000, &rc, &reply);
    if (rc != PRISM_BUS_OK || it->stop) {
        json_decref(reply);
        return; /* an unreachable node is the liveness check's business */
    }
    const char *state = json_string_value(json_object_get(reply, "state"));
    pthread_mutex_lock(&g->lock);
    job_place p;
    if (state && job_place_load(g, it->job_id, &p) == 0) {
        bool same_node = p.node_id && !strcmp(p.node_id, it->node_id);
        if (same_node && !strcmp(state, "UNKNOWN") && !strcmp(p.state, "PENDING"))
            job_unassign_locked(g, it->job_id, "the node never started the driver; placing again");
        else if (same_node && !strcmp(state, "UNKNOWN"))
            gcs_job_finish_locked(g, it->job_id, "FAILED", NULL, prism_now_ms(),
                                  "driver lost: its node agent has no record of it");
        else if (same_node)
            apply_report_locked(g, it->job_id, reply);
        job_place_free(&p);
    }
    pthread_mutex_unlock(&g->lock);
    json_decref(reply);
}

void gcs_jobs_reconcile(gcs *g)
{
    check_item *items = calloc(MAX_CHECKS, sizeof *items);
    if (!items)
        return;
    pthread_mutex_lock(&g->lock);
    int n = collect_checks_locked(g, items);
    pthread_mutex_unlock(&g->lock);
    for (int i = 0; i < n; i++)
        check_one(g, &items[i]);
    free(items);
}

/* ---------- retention ---------- */

/* Deletes one batch of ended jobs selected by `sql` (bound with `arg`) and
 * tells their nodes to drop the logs. Returns how many went. Lock held. */
static int prune_batch_locked(gcs *g, const char *sql, int64_t arg)
{
    sqlite3_stmt *st = gcs_db_prepare(g->db, sql);
    sqlite3_bind_int64(st, 1, arg);
    sqlite3_bind_int(st, 2, RETENTION_BATCH);
    json_t *by_node = json_object();
    int n = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        const char *node = (const char *)sqlite3_column_text(st, 1);
        n++;
        gcs_job_log_copy_drop(g, id);
        if (!node)
            continue;
        json_t *ids = json_object_get(by_node, node);
        if (!ids) {
            ids = json_array();
            json_object_set_new(by_node, node, ids);
        }
        json_array_append_new(ids, json_string(id));
    }
    sqlite3_finalize(st);
    const char *node;
    json_t *ids;
    json_object_foreach(by_node, node, ids) {
        char subject[128];
        prism_subject_node(subject, sizeof subject, node, PRISM_NODE_JOB_DELETE);
        json_t *msg = json_pack("{s:O}", "job_ids", ids);
        prism_bus_publish_json(g->bus, subject, msg);
        json_decref(msg);
    }
    json_decref(by_node);
    return n;
}

void gcs_jobs_prune(gcs *g)
{
    pthread_mutex_lock(&g->lock);
    int by_age = prune_batch_locked(
        g, "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs WHERE end_time < ?1 AND NOT " NOT_ENDED
           " LIMIT ?2) RETURNING id, node_id",
        prism_now_ms() - g->cfg.job_retention_age_s * 1000);
    int by_count = prune_batch_locked(
        g, "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs WHERE NOT " NOT_ENDED
           " ORDER BY seq DESC LIMIT ?2 OFFSET ?1) RETURNING id, node_id",
        g->cfg.job_retention_count);
    pthread_mutex_unlock(&g->lock);
    if (by_age + by_count > 0)
        LOG_INFO("pruned %d ended jobs past retention (%d by age, %d by count)", by_age + by_count,
                 by_age, by_count);
}

/* What placed jobs hold is soft state: rebuilt from the database on start. */
static void rebuild_usage_locked(gcs *g)
{
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "SELECT node_id, resources FROM jobs WHERE node_id IS NOT NULL AND " NOT_ENDED);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        gcs_node *n = gcs_node_find(g, (const char *)sqlite3_column_text(st, 0));
        json_t *res = gcs_db_column_json(st, 1);
        if (n)
            gcs_res_add(n->used, res, 1);
        json_decref(res);
    }
    sqlite3_finalize(st);
}

int gcs_jobs_start(gcs *g)
{
    pthread_mutex_lock(&g->lock);
    rebuild_usage_locked(g);
    /* Jobs placed on nodes that died while the GCS was down. */
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "SELECT DISTINCT node_id FROM jobs WHERE node_id IS NOT NULL AND " NOT_ENDED);
    json_t *gone = json_array();
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        const char *node = (const char *)sqlite3_column_text(st, 0);
        if (!gcs_node_find(g, node))
            json_array_append_new(gone, json_string(node));
    }
    sqlite3_finalize(st);
    size_t i;
    json_t *v;
    json_array_foreach(gone, i, v)
        gcs_jobs_fail_node_locked(g, json_string_value(v), "its node died");
    json_decref(gone);
    g->placement_wanted = true;
    pthread_mutex_unlock(&g->lock);
    return prism_bus_subscribe(g->bus, PRISM_SUBJECT_JOB_UPDATE, "gcs", on_job_update, g);
}

/* ---------- stop and delete ---------- */

int gcs_job_stop(gcs *g, const char *id, const char **code, char *err, size_t errlen)
{
    pthread_mutex_lock(&g->lock);
    job_place p;
    if (job_place_load(g, id, &p) != 0) {
        pthread_mutex_unlock(&g->lock);
        *code = "not_found";
        snprintf(err, errlen, "no job '%s'", id);
        return 404;
    }
    int status = 0;
    char *node = NULL;
    if (gcs_state_terminal(p.state)) {
        *code = "job_ended";
        snprintf(err, errlen, "job '%s' already ended (%s)", id, p.state);
        status = 409;
    } else if (!p.node_id) {
        gcs_job_finish_locked(g, id, "STOPPED", NULL, prism_now_ms(), "stopped before it started");
    } else {
        sqlite3_stmt *st = gcs_db_prepare(g->db, "UPDATE jobs SET stop_requested=1 WHERE id=?");
        gcs_db_bind_text(st, 1, id);
        gcs_db_exec_stmt(st);
        node = strdup(p.node_id);
    }
    job_place_free(&p);
    pthread_mutex_unlock(&g->lock);
    if (!node)
        return status;
    int rc;
    json_t *reply = NULL;
    node_request(g, node, PRISM_NODE_JOB_STOP, id, START_TIMEOUT_MS, &rc, &reply);
    const char *ecode = error_code(reply);
    if (rc == PRISM_BUS_OK && ecode && !strcmp(ecode, "not_running")) {
        /* Not started there yet, or just ended: a PENDING job ends here. */
        pthread_mutex_lock(&g->lock);
        job_place q;
        if (job_place_load(g, id, &q) == 0) {
            if (!strcmp(q.state, "PENDING"))
                gcs_job_finish_locked(g, id, "STOPPED", NULL, prism_now_ms(),
                                      "stopped before it started");
            job_place_free(&q);
        }
        pthread_mutex_unlock(&g->lock);
    } else if (rc != PRISM_BUS_OK) {
        *code = "node_unavailable";
        snprintf(err, errlen, "node %s did not answer the stop request; try again", node);
        status = 503;
    }
    json_decref(reply);
    free(node);
    return status;
}

int gcs_job_delete(gcs *g, const char *id, const char **code, char *err, size_t errlen)
{
    pthread_mutex_lock(&g->lock);
    job_place p;
    int status = 0;
    if (job_place_load(g, id, &p) != 0) {
        *code = "not_found";
        snprintf(err, errlen, "no job '%s'", id);
        status = 404;
    } else if (!gcs_state_terminal(p.state)) {
        *code = "job_not_ended";
        snprintf(err, errlen, "job '%s' is %s: stop it before deleting it", id, p.state);
        status = 409;
    } else {
        sqlite3_stmt *st = gcs_db_prepare(g->db, "DELETE FROM jobs WHERE id=?");
        gcs_db_bind_text(st, 1, id);
        gcs_db_exec_stmt(st);
        gcs_job_log_copy_drop(g, id);
        if (p.node_id) {
            char subject[128];
            prism_subject_node(subject, sizeof subject, p.node_id, PRISM_NODE_JOB_DELETE);
            json_t *msg = json_pack("{s:[s]}", "job_ids", id);
            prism_bus_publish_json(g->bus, subject, msg);
            json_decref(msg);
        }
        LOG_INFO("job %s deleted", id);
    }
    if (status != 404)
        job_place_free(&p);
    pthread_mutex_unlock(&g->lock);
    return status;
}

/* ---------- REST ---------- */

/* Answers with `job`, or 404 when it was deleted or pruned meanwhile. Takes `job`. */
static void reply_job(prism_http_req *req, int status, json_t *job, const char *id)
{
    if (!job) {
        prism_http_reply_error(req, 404, "not_found", "job '%s' was deleted meanwhile", id);
        return;
    }
    prism_http_reply_json(req, status, job);
}

void gcs_api_jobs_submit(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    json_t *body = prism_http_body_json(req);
    gcs_job_spec spec;
    if (!body || gcs_job_spec_from_json(req, body, &spec) != 0) {
        json_decref(body);
        return;
    }
    char id[256], err[512];
    const char *code = "internal";
    int status = gcs_job_submit(g, &spec, id, sizeof id, &code, err, sizeof err);
    gcs_job_spec_free(&spec);
    json_decref(body);
    if (status) {
        prism_http_reply_error(req, status, code, "%s", err);
        return;
    }
    reply_job(req, 201, gcs_job_get(g, id), id);
}

static bool valid_job_state(const char *s)
{
    return !s || !strcmp(s, "PENDING") || !strcmp(s, "RUNNING") || gcs_state_terminal(s);
}

void gcs_api_jobs_list(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    int64_t limit, cursor;
    const char *state = prism_http_query(req, "state");
    if (prism_http_query_int(req, "limit", 100, 1, 1000, &limit) != 0 ||
        prism_http_query_int(req, "cursor", INT64_MAX, 0, INT64_MAX, &cursor) != 0)
        return;
    if (!valid_job_state(state)) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "state must be PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED");
        return;
    }
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "SELECT " JOB_COLUMNS " FROM jobs WHERE seq < ?1 AND (?2 IS NULL OR state = ?2) "
               "ORDER BY seq DESC LIMIT ?3");
    sqlite3_bind_int64(st, 1, cursor);
    gcs_db_bind_text(st, 2, state);
    sqlite3_bind_int64(st, 3, limit + 1); /* one more tells whether a next page exists */
    json_t *list = json_array();
    int64_t last = 0;
    bool more = false;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        if ((int64_t)json_array_size(list) == limit) {
            more = true;
            break;
        }
        json_array_append_new(list, job_row_json(st));
        last = sqlite3_column_int64(st, 15);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&g->lock);
    json_t *next = more ? json_sprintf("%lld", (long long)last) : json_null();
    prism_http_reply_json(req, 200, json_pack("{s:o,s:o}", "jobs", list, "next_cursor", next));
}

void gcs_api_job_get(prism_http_req *req, void *ctx)
{
    const char *id = prism_http_param(req, "id");
    json_t *job = gcs_job_get(ctx, id);
    if (!job) {
        prism_http_reply_error(req, 404, "not_found", "no job '%s'", id);
        return;
    }
    prism_http_reply_json(req, 200, job);
}

void gcs_api_job_stop(prism_http_req *req, void *ctx)
{
    const char *id = prism_http_param(req, "id"), *code = "internal";
    char err[512];
    int status = gcs_job_stop(ctx, id, &code, err, sizeof err);
    if (status) {
        prism_http_reply_error(req, status, code, "%s", err);
        return;
    }
    reply_job(req, 200, gcs_job_get(ctx, id), id);
}

void gcs_api_job_delete(prism_http_req *req, void *ctx)
{
    const char *id = prism_http_param(req, "id"), *code = "internal";
    char err[512];
    int status = gcs_job_delete(ctx, id, &code, err, sizeof err);
    if (status) {
        prism_http_reply_error(req, status, code, "%s", err);
        return;
    }
    prism_http_reply_json(req, 200, json_pack("{s:b}", "deleted", 1));
}
