/* Ray's Jobs REST API (version 4 of its protocol) as a thin layer over the
 * same job code: a client written for Ray's job server works unchanged.
 * Field names follow Ray's JobDetails; errors use Prism's envelope. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "gcs.h"
#include "prism_json_text.h"
#include "prism_sha256.h"

#define RAY_API_VERSION "4"
/* Ray's clients parse ray_version as a Python (PEP 440) version and compare
 * it with the least they need (1.9 for any job, later ones for newer fields;
 * "prism-0.1.0" made them raise): a Ray release whose Jobs API this matches,
 * Prism's version as the local label. */
#define RAY_VERSION "2.9.0+prism." GCS_VERSION

void gcs_ray_version(prism_http_req *req, void *ctx)
{
    prism_http_reply_json(req, 200,
                          json_pack("{s:s,s:s,s:s,s:s}", "version", RAY_API_VERSION, "ray_version",
                                    RAY_VERSION, "ray_commit", "prism", "session_name", "prism"));
}

/* runtime_env.working_dir as Prism's: a package sha256 as it is, Ray's
 * gcs://NAME as the package uploaded under that name. New reference, or
 * NULL after answering. */
static json_t *working_dir(gcs *g, prism_http_req *req, json_t *renv)
{
    json_t *wd = json_object_get(renv, "working_dir");
    const char *uri = json_string_value(wd);
    if (!uri || !strstr(uri, "://"))
        return wd ? json_incref(wd) : json_null();
    char sha[PRISM_SHA256_HEX_LEN + 1];
    if (strncmp(uri, "gcs://", 6) != 0) {
        prism_http_reply_error(req, 400, "unsupported",
                               "runtime_env.working_dir '%.200s': only gcs:// packages (uploaded "
                               "with PUT /api/packages/gcs/NAME) and package sha256s are supported",
                               uri);
        return NULL;
    }
    if (gcs_ray_package_sha(g, uri, sha) != 0) {
        prism_http_reply_error(req, 404, "not_found",
                               "runtime_env.working_dir: package %.200s does not exist (upload it "
                               "with PUT /api/packages/gcs/NAME)",
                               uri);
        return NULL;
    }
    return json_string(sha);
}

/* Moves Ray's entrypoint_* and runtime_env fields into Prism's submit shape. */
static int ray_to_prism(gcs *g, prism_http_req *req, json_t *body, json_t **out)
{
    json_t *renv = json_object_get(body, "runtime_env");
    if (renv && !json_is_null(renv) && !json_is_object(renv)) {
        prism_http_reply_error(req, 400, "invalid_argument", "runtime_env must be an object");
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(renv, key, v) {
        if (strcmp(key, "env_vars") && strcmp(key, "working_dir")) {
            prism_http_reply_error(req, 400, "unsupported",
                                   "runtime_env field '%s' is not supported: use env_vars and "
                                   "working_dir (a gcs:// package or a package sha256)",
                                   key);
            return -1;
        }
    }
    json_t *wd = working_dir(g, req, renv);
    if (!wd)
        return -1;
    json_t *res = json_object();
    static const struct {
        const char *ray, *prism;
    } amounts[] = {{"entrypoint_num_cpus", "CPU"},
                   {"entrypoint_num_gpus", "GPU"},
                   {"entrypoint_memory", "memory"}};
    for (size_t i = 0; i < 3; i++) {
        json_t *a = json_object_get(body, amounts[i].ray);
        if (a && !json_is_null(a))
            json_object_set(res, amounts[i].prism, a);
    }
    json_t *custom = json_object_get(body, "entrypoint_resources");
    if (json_is_object(custom))
        json_object_update(res, custom);
    else if (custom && !json_is_null(custom)) {
        json_decref(res);
        json_decref(wd);
        prism_http_reply_error(req, 400, "invalid_argument",
                               "entrypoint_resources must be an object");
        return -1;
    }
    json_t *p = json_object();
    json_object_set(p, "entrypoint", json_object_get(body, "entrypoint"));
    json_t *sid = json_object_get(body, "submission_id");
    if (!sid || json_is_null(sid))
        sid = json_object_get(body, "job_id"); /* the older name */
    if (sid)
        json_object_set(p, "submission_id", sid);
    json_object_set(p, "metadata", json_object_get(body, "metadata"));
    json_object_set(p, "env", json_object_get(renv, "env_vars"));
    json_object_set_new(p, "working_dir", wd);
    json_object_set_new(p, "resources", res);
    *out = p;
    return 0;
}

void gcs_ray_jobs_submit(prism_http_req *req, void *ctx)
{
    json_t *body = prism_http_body_json(req), *p = NULL;
    gcs_job_spec spec;
    if (!body || ray_to_prism(ctx, req, body, &p) != 0 ||
        gcs_job_spec_from_json(req, p, &spec) != 0) {
        json_decref(body);
        json_decref(p);
        return;
    }
    spec.ray = true;
    char id[256], err[512];
    const char *code = "internal";
    int status = gcs_job_submit(ctx, &spec, id, sizeof id, &code, err, sizeof err);
    gcs_job_spec_free(&spec);
    json_decref(body);
    json_decref(p);
    if (status) {
        prism_http_reply_error(req, status, code, "%s", err);
        return;
    }
    prism_http_reply_json(req, 200, json_pack("{s:s,s:s}", "submission_id", id, "job_id", id));
}

static json_t *amount_or_null(json_t *res, const char *name)
{
    json_t *v = json_object_get(res, name);
    return v ? json_incref(v) : json_null();
}

/* Prism's job object → Ray's JobDetails. Takes `job`. */
static json_t *job_details(json_t *job)
{
    json_t *res = json_object_get(job, "resources");
    json_t *custom = json_deep_copy(res);
    json_object_del(custom, "CPU");
    json_object_del(custom, "GPU");
    json_object_del(custom, "memory");
    json_t *start = json_object_get(job, "start_time");
    if (json_is_null(start))
        start = json_object_get(job, "submitted_at"); /* Ray stamps jobs when accepted */
    json_t *renv = json_pack("{s:O}", "env_vars", json_object_get(job, "env"));
    if (!json_is_null(json_object_get(job, "working_dir")))
        json_object_set(renv, "working_dir", json_object_get(job, "working_dir"));
    json_t *d = json_pack(
        "{s:s,s:O,s:O,s:n,s:O,s:O,s:O,s:n,s:O,s:O,s:O,s:o,s:n,s:O,s:O,s:o,s:o,s:o,s:o}", "type",
        "SUBMISSION", "job_id", json_object_get(job, "job_id"), "submission_id",
        json_object_get(job, "job_id"), "driver_info", "status", json_object_get(job, "state"),
        "entrypoint", json_object_get(job, "entrypoint"), "message",
        json_object_get(job, "message"), "error_type", "start_time", start, "end_time",
        json_object_get(job, "end_time"), "metadata", json_object_get(job, "metadata"),
        "runtime_env", renv, "driver_agent_http_address", "driver_node_id",
        json_object_get(job, "node_id"), "driver_exit_code",
        json_object_get(job, "driver_exit_code"), "entrypoint_num_cpus", amount_or_null(res, "CPU"),
        "entrypoint_num_gpus", amount_or_null(res, "GPU"), "entrypoint_memory",
        amount_or_null(res, "memory"), "entrypoint_resources",
        json_object_size(custom) ? custom : (json_decref(custom), json_null()));
    if (json_is_null(json_object_get(d, "metadata")))
        json_object_set_new(d, "metadata", json_object());
    json_decref(job);
    return d;
}

void gcs_ray_jobs_list(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    /* Ray answers with a bare array of every job; the newest 1000 are kept here. */
    json_t *list = json_array();
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(g->db, "SELECT id FROM jobs ORDER BY seq DESC LIMIT 1000");
    json_t *ids = json_array();
    while (st && sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(ids, json_string((const char *)sqlite3_column_text(st, 0)));
    gcs_db_finish(st);
    pthread_mutex_unlock(&g->lock);
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        json_t *job = gcs_job_get(g, json_string_value(v));
        if (job)
            json_array_append_new(list, job_details(job));
    }
    json_decref(ids);
    prism_http_reply_json(req, 200, list);
}

void gcs_ray_job_get(prism_http_req *req, void *ctx)
{
    const char *id = prism_http_param(req, "id");
    json_t *job = gcs_job_get(ctx, id);
    if (!job) {
        prism_http_reply_error(req, 404, "not_found", "Job %s does not exist", id);
        return;
    }
    prism_http_reply_json(req, 200, job_details(job));
}

void gcs_ray_job_stop(prism_http_req *req, void *ctx)
{
    const char *id = prism_http_param(req, "id"), *code = "internal";
    char err[512];
    int status = gcs_job_stop(ctx, id, &code, err, sizeof err);
    if (status == 409) { /* Ray reports an ended job as not stopped, not as an error */
        prism_http_reply_json(req, 200, json_pack("{s:b}", "stopped", 0));
        return;
    }
    if (status) {
        prism_http_reply_error(req, status, code, "%s", err);
        return;
    }
    prism_http_reply_json(req, 200, json_pack("{s:b}", "stopped", 1));
}

void gcs_ray_job_delete(prism_http_req *req, void *ctx)
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

void gcs_ray_job_logs(prism_http_req *req, void *ctx)
{
    const char *id = prism_http_param(req, "id"), *code = "internal";
    char *text = NULL, err[512];
    size_t len = 0;
    int status = gcs_job_logs_text(ctx, id, &text, &len, &code, err, sizeof err);
    if (status) {
        prism_http_reply_error(req, status, code, "%s", err);
        return;
    }
    json_t *logs = json_stringn(text, len);
    if (!logs) { /* not UTF-8: replace the bad bytes rather than fail */
        prism_utf8_scrub(text, len);
        logs = json_stringn(text, len);
    }
    free(text);
    prism_http_reply_json(req, 200, json_pack("{s:o}", "logs", logs ? logs : json_string("")));
}

/* Ray's clients (`ray job logs --follow`, JobSubmissionClient.tail_job_logs)
 * follow a log over a WebSocket: text messages until the job ended and its
 * log is drained, then a close frame (1000). Like Ray, an unknown job is
 * answered 404 before any handshake. */
void gcs_ray_job_logs_tail(prism_http_req *req, void *ctx)
{
    const char *id = prism_http_param(req, "id");
    void *f = gcs_job_log_follow(ctx, id);
    if (!f) {
        prism_http_reply_error(req, 404, "not_found", "Job %s does not exist", id);
        return;
    }
    prism_http_reply_websocket(req, gcs_job_log_follow_read, gcs_job_log_follow_done, f);
}
