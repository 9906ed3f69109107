/* Job submission: the submit body checked (both REST APIs share it) and the
 * job stored PENDING for placement (job_placement.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db.h"
#include "jobs.h"
#include "prism_fs.h"
#include "prism_log.h"
#include "prism_sha256.h"
#include "prism_time.h"

#define MAX_JOB_PACKAGES 32
#define PACKAGE_NAME_MAX 64

static bool string_map(json_t *obj)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
        if (!json_is_string(v))
            return false;
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
            snprintf(bad, badlen,
                     "env: variable name '%.128s' is not valid (a name must not be "
                     "empty nor contain '=' or NUL)",
                     k);
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
    json_object_foreach(obj, k, v)
        if (!json_is_number(v) || json_number_value(v) < 0)
            return false;
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
        snprintf(bad, badlen,
                 "field 'packages' must be a list of package sha256s or "
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
            snprintf(bad, badlen,
                     "packages[%zu] must be a package sha256 or an object "
                     "{\"sha256\", \"name\"}",
                     i);
        else if (!sha || !prism_is_hex(sha, PRISM_SHA256_HEX_LEN))
            snprintf(bad, badlen,
                     "packages[%zu] must name a package by its sha256 "
                     "(64 lowercase hex digits)",
                     i);
        else if (name_v && !json_is_null(name_v) && !(name && package_name_ok(name)))
            snprintf(bad, badlen,
                     "packages[%zu]: 'name' must be 1-%d characters of "
                     "A-Z a-z 0-9 _",
                     i, PACKAGE_NAME_MAX);
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
    gcs_db_finish(st);
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

/* Stores the job PENDING. Returns SQLite's status. Lock held. */
static int insert_job_locked(gcs *g, const gcs_job_spec *spec, const char *job_id)
{
    json_t *resources = spec->resources ? json_incref(spec->resources) : json_object();
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
    json_decref(resources);
    return gcs_db_exec_stmt(st);
}

int gcs_job_submit(gcs *g, const gcs_job_spec *spec, char *id_out, size_t idlen, const char **code,
                   char *err, size_t errlen)
{
    char id[PRISM_ID_HEX_LEN + 1];
    const char *job_id = spec->id;
    if (!job_id) {
        prism_id raw;
        prism_id_random(&raw);
        prism_id_to_hex(&raw, id);
        job_id = id;
    }
    pthread_mutex_lock(&g->lock);
    int status = 0, rc;
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
    } else if ((rc = insert_job_locked(g, spec, job_id)) == SQLITE_CONSTRAINT) {
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
        gcs_publish_job_event_locked(g, job_id);
        snprintf(id_out, idlen, "%s", job_id);
    }
    pthread_mutex_unlock(&g->lock);
    if (status == 0)
        LOG_INFO("job %s submitted: %s", id_out, spec->entrypoint);
    return status;
}
