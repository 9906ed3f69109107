/* Jobs inside the GCS: what their files share. The jobs' public side (the
 * REST handlers, Ray's API, node deaths, the periodic jobs) is in gcs.h.
 *
 *   jobs.c           the job model: rows as JSON, the state machine, what
 *                    node agents report, stop and delete, start-up
 *   job_submit.c     the submit body checked, the job stored PENDING
 *   job_placement.c  PENDING jobs placed through the scheduler, the start
 *                    requests
 *   job_reconcile.c  running jobs checked against their nodes
 *   job_retention.c  ended jobs pruned
 *   jobs_api.c       the jobs REST API
 *   job_logs.c       drivers' logs, read from the node agents
 *
 * Every function named _locked expects the GCS lock held. */
#ifndef PRISM_GCS_JOBS_H
#define PRISM_GCS_JOBS_H

#include <stdint.h>

#include "gcs.h"

#define JOB_COLUMNS                                                                                \
    "id, state, entrypoint, env, working_dir, resources, metadata, node_id, message, exit_code, "  \
    "submitted_at, start_time, end_time, stop_requested, ray, seq, packages"
#define NOT_ENDED "state NOT IN ('SUCCEEDED','FAILED','STOPPED')"
/* How long a node agent has to answer a start or stop request. */
#define START_TIMEOUT_MS 5000

/* jobs.c */
/* One row of JOB_COLUMNS as the JOB object of the REST API. */
json_t *gcs_job_row_json(sqlite3_stmt *st);
/* The packages column `i` of a row: a list, empty for a job that names none. */
json_t *gcs_job_packages_column(sqlite3_stmt *st, int i);
/* Publishes the job's state on prism.event.job. */
void gcs_publish_job_event_locked(gcs *g, const char *id);

/* Where a job runs and its state, as the database has them. */
typedef struct job_place {
    char *node_id; /* NULL when not placed */
    char *state;
} job_place;
/* Returns 0, or -1 when there is no such job (nothing to free then). */
int gcs_job_place_load(gcs *g, const char *id, job_place *out);
void gcs_job_place_free(job_place *p);

/* PENDING → RUNNING (start_time 0: now). */
void gcs_job_set_running_locked(gcs *g, const char *id, int64_t start_time);
/* Takes a job that never started off its node so placement tries again. */
void gcs_job_unassign_locked(gcs *g, const char *id, const char *message);
/* Applies a node agent's report on a job ({state, start_time, end_time,
 * exit_code, message}: prism.gcs.job.update or a job.status answer). */
void gcs_job_apply_report_locked(gcs *g, const char *id, json_t *report);

/* Sends {job_id} to the node agent's `verb` subject (PRISM_NODE_JOB_*) and
 * waits up to `timeout_ms`: `rc` is the bus's status, `reply` the answer.
 * Without the lock. */
void gcs_job_node_request(gcs *g, const char *node_id, const char *verb, const char *job_id,
                          int timeout_ms, int *rc, json_t **reply);
/* The code and message of an error envelope a node agent answered (NULL, and
 * "no reason given", when it has none). */
const char *gcs_reply_error_code(json_t *reply);
const char *gcs_reply_error_message(json_t *reply);

#endif
