/* The job model: rows as JSON, the state machine, what node agents report,
 * stop and delete. Submission, placement, reconciliation, retention and REST
 * each have a file of their own (jobs.h lists them).
 *
 * States: PENDING → RUNNING → SUCCEEDED | FAILED | STOPPED. A PENDING job may
 * also end directly (stopped before it started, or failed to start). Terminal
 * states never change: every transition is an UPDATE guarded by the state. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "jobs.h"
#include "prism_log.h"
#include "prism_subjects.h"
#include "prism_time.h"

bool gcs_state_terminal(const char *state)
{
    return state &&
           (!strcmp(state, "SUCCEEDED") || !strcmp(state, "FAILED") || !strcmp(state, "STOPPED"));
}

/* The job's packages column: a list, empty for a job that names none. */
json_t *gcs_job_packages_column(sqlite3_stmt *st, int i)
{
    json_t *list = gcs_db_column_json(st, i);
    if (json_is_array(list))
        return list;
    json_decref(list);
    return json_array();
}

json_t *gcs_job_row_json(sqlite3_stmt *st)
{
    return json_pack(
        "{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:b,s:o}", "job_id",
        gcs_db_column_text_or_null(st, 0), "submission_id", gcs_db_column_text_or_null(st, 0),
        "state", gcs_db_column_text_or_null(st, 1), "entrypoint", gcs_db_column_text_or_null(st, 2),
        "env", gcs_db_column_json(st, 3), "working_dir", gcs_db_column_text_or_null(st, 4),
        "resources", gcs_db_column_json(st, 5), "metadata", gcs_db_column_json(st, 6), "node_id",
        gcs_db_column_text_or_null(st, 7), "message", gcs_db_column_text_or_null(st, 8),
        "driver_exit_code", gcs_db_column_int_or_null(st, 9), "submitted_at",
        gcs_db_column_int_or_null(st, 10), "start_time", gcs_db_column_int_or_null(st, 11),
        "end_time", gcs_db_column_int_or_null(st, 12), "stop_requested", sqlite3_column_int(st, 13),
        "packages", gcs_job_packages_column(st, 16));
}

static json_t *job_get_locked(gcs *g, const char *id)
{
    sqlite3_stmt *st = gcs_db_prepare(g->db, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?");
    gcs_db_bind_text(st, 1, id);
    json_t *job = st && sqlite3_step(st) == SQLITE_ROW ? gcs_job_row_json(st) : NULL;
    gcs_db_finish(st);
    return job;
}

json_t *gcs_job_get(gcs *g, const char *id)
{
    pthread_mutex_lock(&g->lock);
    json_t *job = job_get_locked(g, id);
    pthread_mutex_unlock(&g->lock);
    return job;
}

void gcs_publish_job_event_locked(gcs *g, const char *id)
{
    json_t *job = job_get_locked(g, id);
    if (!job)
        return;
    json_t *ev =
        json_pack("{s:O,s:O,s:O,s:O,s:O,s:I}", "job_id", json_object_get(job, "job_id"), "state",
                  json_object_get(job, "state"), "node_id", json_object_get(job, "node_id"),
                  "message", json_object_get(job, "message"), "exit_code",
                  json_object_get(job, "driver_exit_code"), "time", (json_int_t)prism_now_ms());
    prism_bus_publish_json(g->bus, PRISM_SUBJECT_EVENT_JOB, ev);
    json_decref(ev);
    json_decref(job);
}

void gcs_publish_job_event(gcs *g, const char *id)
{
    pthread_mutex_lock(&g->lock);
    gcs_publish_job_event_locked(g, id);
    pthread_mutex_unlock(&g->lock);
}

int gcs_job_place_load(gcs *g, const char *id, job_place *out)
{
    sqlite3_stmt *st = gcs_db_prepare(g->db, "SELECT node_id, state FROM jobs WHERE id = ?");
    gcs_db_bind_text(st, 1, id);
    int rc = -1;
    if (st && sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *node = sqlite3_column_text(st, 0);
        out->node_id = node ? strdup((const char *)node) : NULL;
        out->state = strdup((const char *)sqlite3_column_text(st, 1));
        rc = 0;
    }
    gcs_db_finish(st);
    return rc;
}

void gcs_job_place_free(job_place *p)
{
    free(p->node_id);
    free(p->state);
}

bool gcs_job_finish_locked(gcs *g, const char *id, const char *state, json_t *exit_code,
                           int64_t end_time, const char *message)
{
    job_place p;
    if (gcs_job_place_load(g, id, &p) != 0)
        return false;
    bool changed = false;
    if (!gcs_state_terminal(p.state)) {
        sqlite3_stmt *st = gcs_db_prepare(
            g->db,
            "UPDATE jobs SET state=?, exit_code=?, end_time=?, message=? WHERE id=? AND " NOT_ENDED);
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
        if (p.node_id)
            g->placement_wanted = true; /* its node has room again */
        LOG_INFO("job %s %s%s%s", id, state, message && *message ? ": " : "",
                 message ? message : "");
        prism_metric_add(g->m_jobs_finished, 1);
        gcs_publish_job_event_locked(g, id);
    }
    gcs_job_place_free(&p);
    return changed;
}

void gcs_job_set_running_locked(gcs *g, const char *id, int64_t start_time)
{
    sqlite3_stmt *st = gcs_db_prepare(
        g->db,
        "UPDATE jobs SET state='RUNNING', start_time=?, message='' WHERE id=? AND state='PENDING'");
    sqlite3_bind_int64(st, 1, start_time > 0 ? start_time : prism_now_ms());
    gcs_db_bind_text(st, 2, id);
    if (gcs_db_exec_stmt(st) == SQLITE_DONE && sqlite3_changes(g->db) > 0) {
        LOG_INFO("job %s RUNNING", id);
        gcs_publish_job_event_locked(g, id);
    }
}

/* Takes a job that never started off its node so placement tries again. Lock held. */
void gcs_job_unassign_locked(gcs *g, const char *id, const char *message)
{
    job_place p;
    if (gcs_job_place_load(g, id, &p) != 0)
        return;
    if (!strcmp(p.state, "PENDING") && p.node_id) {
        sqlite3_stmt *st = gcs_db_prepare(
            g->db,
            "UPDATE jobs SET node_id=NULL, assigned_at=NULL, message=? WHERE id=? AND state='PENDING'");
        gcs_db_bind_text(st, 1, message);
        gcs_db_bind_text(st, 2, id);
        gcs_db_exec_stmt(st);
        g->placement_wanted = true;
    }
    gcs_job_place_free(&p);
}

void gcs_jobs_fail_node_locked(gcs *g, const char *node_id, const char *message)
{
    sqlite3_stmt *st = gcs_db_prepare(g->db, "SELECT id FROM jobs WHERE node_id=? AND " NOT_ENDED);
    gcs_db_bind_text(st, 1, node_id);
    json_t *ids = json_array();
    while (st && sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(ids, json_string((const char *)sqlite3_column_text(st, 0)));
    gcs_db_finish(st);
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
        gcs_job_finish_locked(g, json_string_value(v), "FAILED", NULL, prism_now_ms(), message);
    json_decref(ids);
}

/* ---------- node agent reports ---------- */

void gcs_job_apply_report_locked(gcs *g, const char *id, json_t *report)
{
    const char *state = json_string_value(json_object_get(report, "state"));
    int64_t start = json_integer_value(json_object_get(report, "start_time"));
    int64_t end = json_integer_value(json_object_get(report, "end_time"));
    const char *message = json_string_value(json_object_get(report, "message"));
    if (!state)
        return;
    if (!strcmp(state, "RUNNING")) {
        gcs_job_set_running_locked(g, id, start);
    } else if (!strcmp(state, "PENDING") && message && *message) {
        /* its node is still getting it ready (fetching its packages) */
        sqlite3_stmt *st =
            gcs_db_prepare(g->db, "UPDATE jobs SET message=? WHERE id=? AND state='PENDING'");
        gcs_db_bind_text(st, 1, message);
        gcs_db_bind_text(st, 2, id);
        gcs_db_exec_stmt(st);
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
        if (gcs_job_place_load(g, id, &p) == 0) {
            if (p.node_id && !strcmp(p.node_id, node))
                gcs_job_apply_report_locked(g, id, msg);
            gcs_job_place_free(&p);
        }
        pthread_mutex_unlock(&g->lock);
    }
    json_decref(msg);
}

/* ---------- requests to node agents ---------- */

const char *gcs_reply_error_code(json_t *reply)
{
    return json_string_value(json_object_get(json_object_get(reply, "error"), "code"));
}

const char *gcs_reply_error_message(json_t *reply)
{
    const char *m = json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
    return m ? m : "no reason given";
}

void gcs_job_node_request(gcs *g, const char *node_id, const char *verb, const char *job_id,
                          int timeout_ms, int *rc, json_t **reply)
{
    char subject[PRISM_SUBJECT_MAX];
    prism_subject_node(subject, sizeof subject, node_id, verb);
    json_t *req = json_pack("{s:s}", "job_id", job_id);
    *rc = prism_bus_request_json(g->bus, subject, req, timeout_ms, reply);
    json_decref(req);
}

/* ---------- start ---------- */

int gcs_jobs_start(gcs *g)
{
    pthread_mutex_lock(&g->lock);
    /* Jobs placed on nodes that died while the GCS was down. */
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "SELECT DISTINCT node_id FROM jobs WHERE node_id IS NOT NULL AND " NOT_ENDED);
    json_t *gone = json_array();
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        const char *node = (const char *)sqlite3_column_text(st, 0);
        if (!gcs_node_find(g, node))
            json_array_append_new(gone, json_string(node));
    }
    gcs_db_finish(st);
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

/* Sends job.stop to the job's node (without the lock). Returns 0, or 503
 * with code/message when the node did not answer. */
static int stop_on_node(gcs *g, const char *id, const char *node, const char **code, char *err,
                        size_t errlen)
{
    int rc, status = 0;
    json_t *reply = NULL;
    gcs_job_node_request(g, node, PRISM_NODE_JOB_STOP, id, START_TIMEOUT_MS, &rc, &reply);
    const char *ecode = gcs_reply_error_code(reply);
    if (rc == PRISM_BUS_OK && ecode && !strcmp(ecode, "not_running")) {
        /* Not started there yet, or just ended: a PENDING job ends here. */
        pthread_mutex_lock(&g->lock);
        job_place q;
        if (gcs_job_place_load(g, id, &q) == 0) {
            if (!strcmp(q.state, "PENDING"))
                gcs_job_finish_locked(g, id, "STOPPED", NULL, prism_now_ms(),
                                      "stopped before it started");
            gcs_job_place_free(&q);
        }
        pthread_mutex_unlock(&g->lock);
    } else if (rc != PRISM_BUS_OK) {
        *code = "node_unavailable";
        snprintf(err, errlen, "node %s did not answer the stop request; try again", node);
        status = 503;
    }
    json_decref(reply);
    return status;
}

int gcs_job_stop(gcs *g, const char *id, const char **code, char *err, size_t errlen)
{
    pthread_mutex_lock(&g->lock);
    job_place p;
    if (gcs_job_place_load(g, id, &p) != 0) {
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
    gcs_job_place_free(&p);
    pthread_mutex_unlock(&g->lock);
    if (node)
        status = stop_on_node(g, id, node, code, err, errlen);
    free(node);
    return status;
}

int gcs_job_delete(gcs *g, const char *id, const char **code, char *err, size_t errlen)
{
    pthread_mutex_lock(&g->lock);
    job_place p;
    int status = 0;
    if (gcs_job_place_load(g, id, &p) != 0) {
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
        gcs_job_place_free(&p);
    pthread_mutex_unlock(&g->lock);
    return status;
}
