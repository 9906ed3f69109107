/* Job logs: drivers' logs stay on their node's disk; the GCS reads them from
 * the node agent, whole or following a running job until it ends. Once a
 * job has ended, the GCS copies its log (the first 64 MiB) into its data
 * directory, DATA_DIR/logs/ID, and reads the copy when the node no longer
 * answers or is dead: the log of a job outlives its node. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "gcs.h"
#include "prism_buf.h"
#include "prism_fs.h"
#include "prism_httpc.h"
#include "prism_log.h"
#include "prism_time.h"

#define LOG_FETCH_TIMEOUT_MS 5000
#define MAX_WHOLE_LOG (64u << 20)
#define PIECE (1u << 20)
/* Jobs that ended this recently, on a node alive, have their logs copied:
 * each run of the copier looks at them (a stat each) and copies what is
 * missing. A job that ended while the GCS was down longer is not copied. */
#define COPY_WINDOW_MS (10 * 60 * 1000)
#define COPY_MAX_JOBS 4096
/* What one run copies at most, so that a long log does not hold the service
 * loop: the rest follows in the next runs (a copy resumes where it stopped). */
#define COPY_BUDGET (8u << 20)
#define COPY_FETCH_TIMEOUT_MS 1000

typedef struct log_source {
    char *address; /* node agent URL; NULL while the job has no node */
    char *state;
    bool node_dead;
} log_source;

/* Returns 0 and where the job's log lives, or -1 for an unknown job. */
static int lookup(gcs *g, const char *id, log_source *out)
{
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(g->db,
                                      "SELECT n.address, j.state, n.state FROM jobs j "
                                      "LEFT JOIN nodes n ON n.id = j.node_id WHERE j.id = ?");
    gcs_db_bind_text(st, 1, id);
    int rc = -1;
    if (st && sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *addr = sqlite3_column_text(st, 0);
        out->address = addr ? strdup((const char *)addr) : NULL;
        out->state = strdup((const char *)sqlite3_column_text(st, 1));
        const unsigned char *node_state = sqlite3_column_text(st, 2);
        out->node_dead = node_state && !strcmp((const char *)node_state, "DEAD");
        rc = 0;
    }
    gcs_db_finish(st);
    pthread_mutex_unlock(&g->lock);
    return rc;
}

static void source_free(log_source *s)
{
    free(s->address);
    free(s->state);
    s->address = s->state = NULL;
}

/* ---------- the GCS's copies ---------- */

/* DATA_DIR/logs/ID, with `suffix`. -1 for an ID that cannot be a file name. */
static int copy_path(const gcs *g, const char *id, const char *suffix, char *out, size_t len)
{
    if (!prism_safe_name(id))
        return -1;
    int n = snprintf(out, len, "%s/logs/%s%s", g->cfg.data_dir, id, suffix);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Reads up to `max` bytes of the job's copy at `offset`: the count (0 at its
 * end), or -1 when there is no copy. */
static ssize_t copy_read(const gcs *g, const char *id, uint64_t offset, char *buf, size_t max)
{
    char path[4096];
    int fd = copy_path(g, id, "", path, sizeof path) == 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0)
        return -1;
    ssize_t n = pread(fd, buf, max, (off_t)offset);
    close(fd);
    return n < 0 ? -1 : n;
}

void gcs_job_log_copy_drop(gcs *g, const char *id)
{
    char path[4096];
    if (copy_path(g, id, "", path, sizeof path) == 0)
        unlink(path);
    if (copy_path(g, id, ".part", path, sizeof path) == 0)
        unlink(path);
}

/* Reads up to `max` bytes at `offset`. Returns the count (0: nothing more now),
 * or -1 when the node agent could not be asked. */
static ssize_t fetch_within(prism_httpc *c, const char *id, uint64_t offset, size_t max, char *buf,
                            int timeout_ms)
{
    char path[512], err[256];
    snprintf(path, sizeof path, "/api/v1/jobs/%s/logs?offset=%llu&limit=%zu", id,
             (unsigned long long)offset, max);
    prism_httpc_resp resp;
    if (prism_httpc_request(c, "GET", path, NULL, NULL, 0, timeout_ms, max + 1, &resp, err,
                            sizeof err) != 0)
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

static ssize_t fetch(prism_httpc *c, const char *id, uint64_t offset, size_t max, char *buf)
{
    return fetch_within(c, id, offset, max, buf, LOG_FETCH_TIMEOUT_MS);
}

/* The whole copy, when the GCS has one. */
static int copy_text(const gcs *g, const char *id, prism_buf *all)
{
    char path[4096];
    size_t n;
    char *text = copy_path(g, id, "", path, sizeof path) == 0
                     ? prism_read_file(path, MAX_WHOLE_LOG, &n)
                     : NULL;
    if (!text)
        return -1;
    int rc = prism_buf_append(all, text, n);
    free(text);
    return rc;
}

int gcs_job_logs_text(gcs *g, const char *id, char **out, size_t *len, const char **code, char *err,
                      size_t errlen)
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
    bool ended = gcs_state_terminal(src.state);
    if (ended && src.node_dead && copy_text(g, id, &all) == 0) {
        /* its node is gone; the copy answers */
    } else if (src.address && prism_httpc_create(&c, src.address, g->cfg.token) != 0) {
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
        if (status == 503 && ended) { /* the copy, if the GCS made one */
            prism_buf_free(&all);
            prism_buf_init(&all, MAX_WHOLE_LOG);
            if (copy_text(g, id, &all) == 0)
                status = 0;
        }
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
    bool ended;     /* the job ended: drain what is left, then stop */
    bool from_copy; /* read the GCS's copy: the node is dead, or stopped answering after the end */
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
    f->from_copy = f->from_copy || src.node_dead;
    source_free(&src);
    return true;
}

/* The rest from the GCS's copy of an ended job's log; the end when it has
 * none or it is drained. */
static ssize_t follow_copy(follow *f, char *buf, size_t max)
{
    f->from_copy = true; /* the node is not asked again */
    ssize_t n = copy_read(f->g, f->id, f->offset, buf, max);
    if (n <= 0)
        return PRISM_HTTP_STREAM_END;
    f->offset += (uint64_t)n;
    return n;
}

ssize_t gcs_job_log_follow_read(void *ud, char *buf, size_t max)
{
    follow *f = ud;
    bool was_ended = f->ended;
    if (f->ended && f->from_copy)
        return follow_copy(f, buf, max);
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
    if (n < 0 && was_ended)
        return follow_copy(f, buf, max); /* the node does not answer */
    if (was_ended)
        return PRISM_HTTP_STREAM_END; /* drained after the end */
    if (!refresh(f))
        return PRISM_HTTP_STREAM_END; /* deleted meanwhile */
    /* When the job just ended, one more read collects its last bytes. */
    return n < 0 && f->ended ? follow_copy(f, buf, max) : 0;
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
    /* Read at least once even when it already ended (unless its node is dead). */
    f->ended = f->ended && f->from_copy;
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

/* ---------- copying ---------- */

typedef struct copy_job {
    char *id, *address;
} copy_job;

/* Ended jobs of the window whose node is alive, oldest first. */
static int copy_candidates(gcs *g, copy_job *out, int max)
{
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "SELECT j.id, n.address FROM jobs j JOIN nodes n ON n.id = j.node_id "
               "WHERE j.end_time >= ? AND j.state IN ('SUCCEEDED', 'FAILED', 'STOPPED') "
               "AND n.state = 'ALIVE' AND n.address IS NOT NULL ORDER BY j.end_time LIMIT ?");
    sqlite3_bind_int64(st, 1, prism_now_ms() - COPY_WINDOW_MS);
    sqlite3_bind_int(st, 2, max);
    int n = 0;
    while (st && n < max && sqlite3_step(st) == SQLITE_ROW) {
        out[n].id = strdup((const char *)sqlite3_column_text(st, 0));
        out[n].address = strdup((const char *)sqlite3_column_text(st, 1));
        if (out[n].id && out[n].address) {
            n++;
        } else {
            free(out[n].id);
            free(out[n].address);
        }
    }
    gcs_db_finish(st);
    pthread_mutex_unlock(&g->lock);
    return n;
}

/* Appends the job's log to its partial copy from where that stopped, within
 * `*budget` bytes; once the log (or 64 MiB of it) is in, the copy takes its
 * final name. Returns -1 when the node did not answer. */
static int copy_one(gcs *g, const copy_job *j, char *piece, size_t *budget)
{
    char path[4096], part[4096];
    struct stat sb;
    if (copy_path(g, j->id, "", path, sizeof path) != 0 ||
        copy_path(g, j->id, ".part", part, sizeof part) != 0 || stat(path, &sb) == 0)
        return 0;
    int fd = open(part, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || fstat(fd, &sb) != 0) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    prism_httpc *c = NULL;
    if (prism_httpc_create(&c, j->address, g->cfg.token) != 0) {
        close(fd);
        return 0;
    }
    uint64_t offset = (uint64_t)sb.st_size;
    int rc = 0;
    bool complete = false, failed = false;
    while (*budget > 0 && !failed) {
        size_t want = PIECE;
        if (want > MAX_WHOLE_LOG - offset)
            want = MAX_WHOLE_LOG - offset;
        if (want == 0) {
            complete = true; /* the first 64 MiB: as much as a whole read returns */
            break;
        }
        ssize_t n = fetch_within(c, j->id, offset, want, piece, COPY_FETCH_TIMEOUT_MS);
        if (n < 0) {
            rc = -1;
            break;
        }
        if (n == 0) {
            complete = true;
            break;
        }
        failed = write(fd, piece, (size_t)n) != n;
        offset += (uint64_t)n;
        *budget = *budget > (size_t)n ? *budget - (size_t)n : 0;
    }
    prism_httpc_destroy(c);
    if (failed || fsync(fd) != 0) {
        LOG_WARN("job %s: cannot write the copy of its log: %s", j->id, strerror(errno));
        complete = false;
    }
    close(fd);
    /* Under the lock, which deleting a job holds: a job deleted meanwhile
     * leaves no copy behind. */
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(g->db, "SELECT 1 FROM jobs WHERE id = ?");
    gcs_db_bind_text(st, 1, j->id);
    bool exists = st && sqlite3_step(st) == SQLITE_ROW;
    gcs_db_finish(st);
    if (!exists || failed)
        unlink(part);
    else if (complete && rename(part, path) != 0)
        LOG_WARN("job %s: cannot keep the copy of its log: %s", j->id, strerror(errno));
    pthread_mutex_unlock(&g->lock);
    return rc;
}

void gcs_job_logs_copy(gcs *g)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/logs", g->cfg.data_dir);
    if (prism_mkdir_p(dir, 0700) != 0)
        return;
    copy_job *jobs = calloc(COPY_MAX_JOBS, sizeof *jobs);
    char *piece = malloc(PIECE);
    int n = jobs && piece ? copy_candidates(g, jobs, COPY_MAX_JOBS) : 0;
    size_t budget = COPY_BUDGET;
    const char *unreachable = NULL; /* one node that did not answer: not asked again this run */
    for (int i = 0; i < n && budget > 0; i++) {
        if (unreachable && !strcmp(unreachable, jobs[i].address))
            continue;
        if (copy_one(g, &jobs[i], piece, &budget) != 0)
            unreachable = jobs[i].address;
    }
    for (int i = 0; i < n; i++) {
        free(jobs[i].id);
        free(jobs[i].address);
    }
    free(jobs);
    free(piece);
}
