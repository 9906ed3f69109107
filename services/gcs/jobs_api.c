/* The jobs REST API (/api/v1/jobs; openapi/gcs.yaml). Ray's is raycompat.c,
 * drivers' logs job_logs.c. */
#include <stdint.h>
#include <string.h>

#include "db.h"
#include "jobs.h"

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

static json_t *job_list_row(sqlite3_stmt *st, void *ud) { return gcs_job_row_json(st); }

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
    sqlite3_stmt *st = gcs_db_prepare(g->db,
                                      "SELECT " JOB_COLUMNS
                                      " FROM jobs WHERE seq < ?1 AND (?2 IS NULL OR state = ?2) "
                                      "ORDER BY seq DESC LIMIT :limit");
    sqlite3_bind_int64(st, 1, cursor);
    gcs_db_bind_text(st, 2, state);
    json_t *list = json_array();
    json_t *next = gcs_db_page(st, "seq", limit, job_list_row, NULL, list);
    pthread_mutex_unlock(&g->lock);
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
