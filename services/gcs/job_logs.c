/* Job logs: drivers' logs stay on their node's disk; the GCS reads them from
 * the node agent, whole or following a running job until it ends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "gcs.h"
#include "prism_buf.h"
#include "prism_httpc.h"

#define LOG_FETCH_TIMEOUT_MS 5000
#define MAX_WHOLE_LOG (64u << 20)

typedef struct log_source {
    char *address; /* node agent URL; NULL while the job has no node */
    char *state;
} log_source;

/* Returns 0 and where the job's log lives, or -1 for an unknown job. */
static int lookup(gcs *g, const char *id, log_source *out)
{
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "SELECT n.address, j.state FROM jobs j LEFT JOIN nodes n ON n.id = j.node_id "
               "WHERE j.id = ?");
    gcs_db_bind_text(st, 1, id);
    int rc = -1;
    if (st && sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *addr = sqlite3_column_text(st, 0);
        out->address = addr ? strdup((const char *)addr) : NULL;
        out->state = strdup((const char *)sqlite3_column_text(st, 1));
        rc = 0;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&g->lock);
    return rc;
}

static void source_free(log_source *s)
{
    free(s->address);
    free(s->state);
    s->address = s->state = NULL;
}

/* Reads up to `max` bytes at `offset`. Returns the count (0: nothing more now),
 * or -1 when the node agent could not be asked. */
static ssize_t fetch(prism_httpc *c, const char *id, uint64_t offset, size_t max, char *buf)
{
    char path[512], err[256];
    snprintf(path, sizeof path, "/api/v1/jobs/%s/logs?offset=%llu&limit=%zu", id,
             (unsigned long long)offset, max);
    prism_httpc_resp resp;
    if (prism_httpc_request(c, "GET", path, NULL, NULL, 0, LOG_FETCH_TIMEOUT_MS, max + 1, &resp,
                            err, sizeof err) != 0)
        return -1;
    ssize_t n = -1;
    if (resp.status == 200) {
        n = (ssize_t)(resp.len < max ? resp.len : max);
        memcpy(buf, resp.body, (size_t)n);
    } else if (resp.status == 404) {
        n = 0; /* the driver has not written yet */
    }
    prism_httpc_resp_free(&resp);
    return n;
}

int gcs_job_logs_text(gcs *g, const char *id, char **out, size_t *len, const char **code,
                      char *err, size_t errlen)
{
    log_source src = {0};
    if (lookup(g, id, &src) != 0) {
        *code = "not_found";
        snprintf(err, errlen, "no job '%s'", id);
        return 404;
    }
    prism_buf all;
    prism_buf_init(&all, MAX_WHOLE_LOG);
    int status = 0;
    prism_httpc *c = NULL;
    if (src.address && prism_httpc_create(&c, src.address, g->cfg.token) != 0) {
        *code = "internal";
        snprintf(err, errlen, "cannot make an HTTP client");
        status = 500;
    } else if (src.address) {
        char *chunk = malloc(1u << 20);
        for (;;) {
            ssize_t n = chunk ? fetch(c, id, all.len, 1u << 20, chunk) : -1;
            if (n < 0) {
                *code = "node_unavailable";
                snprintf(err, errlen, "the node holding job '%s' logs does not answer", id);
                status = 503;
                break;
            }
            if (n == 0 || prism_buf_append(&all, chunk, (size_t)n) != 0)
                break;
        }
        free(chunk);
        prism_httpc_destroy(c);
    }
    source_free(&src);
    *out = prism_buf_take(&all, len);
    if (status) {
        free(*out);
        *out = NULL;
    }
    return status;
}

/* ---------- following ---------- */

typedef struct follow {
    gcs *g;
    char *id;
    prism_httpc *client;
    char *address;
    uint64_t offset;
    bool ended; /* the job ended: drain what is left, then stop */
} follow;

static bool refresh(follow *f)
{
    log_source src = {0};
    if (lookup(f->g, f->id, &src) != 0)
        return false;
    if (!f->address && src.address) {
        f->address = strdup(src.address);
        prism_httpc_create(&f->client, f->address, f->g->cfg.token);
    }
    f->ended = gcs_state_terminal(src.state);
    source_free(&src);
    return true;
}

ssize_t gcs_job_log_follow_read(void *ud, char *buf, size_t max)
{
    follow *f = ud;
    bool was_ended = f->ended;
    if (!f->client) {
        if (!refresh(f) || (f->ended && !f->client))
            return PRISM_HTTP_STREAM_END;
        if (!f->client)
            return 0;
    }
    ssize_t n = fetch(f->client, f->id, f->offset, max, buf);
    if (n > 0) {
        f->offset += (uint64_t)n;
        return n;
    }
    if (was_ended)
        return PRISM_HTTP_STREAM_END; /* drained after the end */
    if (!refresh(f))
        return PRISM_HTTP_STREAM_END; /* deleted meanwhile */
    /* When the job just ended, one more read collects its last bytes. */
    return n < 0 && f->ended ? PRISM_HTTP_STREAM_END : 0;
}

void gcs_job_log_follow_done(void *ud)
{
    follow *f = ud;
    prism_httpc_destroy(f->client);
    free(f->address);
    free(f->id);
    free(f);
}

void *gcs_job_log_follow(gcs *g, const char *id)
{
    follow *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->g = g;
    f->id = strdup(id);
    if (!f->id || !refresh(f)) {
        gcs_job_log_follow_done(f);
        return NULL;
    }
    f->ended = false; /* read at least once even when it already ended */
    return f;
}

void gcs_api_job_logs(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    const char *id = prism_http_param(req, "id"), *code = "internal";
    bool follow_on;
    if (prism_http_query_bool(req, "follow", false, &follow_on) != 0)
        return;
    if (!follow_on) {
        char *text = NULL, err[512];
        size_t len = 0;
        int status = gcs_job_logs_text(g, id, &text, &len, &code, err, sizeof err);
        if (status)
            prism_http_reply_error(req, status, code, "%s", err);
        else
            prism_http_reply(req, 200, "text/plain; charset=utf-8", text, len);
        free(text);
        return;
    }
    follow *f = gcs_job_log_follow(g, id);
    if (!f) {
        prism_http_reply_error(req, 404, "not_found", "no job '%s'", id);
        return;
    }
    prism_http_reply_stream(req, 200, "text/plain; charset=utf-8", gcs_job_log_follow_read,
                            gcs_job_log_follow_done, f);
}
