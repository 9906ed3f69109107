/* Job placement. The scheduler places jobs as it places tasks and actors:
 * for each PENDING job, in submission order, the GCS asks prism.sched.lease
 * for a lease of the job's resources naming the job. The node agent that
 * grants it holds those resources for the job (no worker); the GCS records
 * the node and sends job.start naming the lease, and the driver holds them
 * until it ends. The node agents' accounts, which task leases draw on too,
 * are the only ones: the GCS keeps none, so jobs and tasks together never
 * take more than a node has. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "jobs.h"
#include "prism_subjects.h"
#include "prism_time.h"

#define PLACE_BATCH 64
#define PLACE_RETRY_MS 1000 /* jobs that wait for resources are asked for again */
#define LEASE_TIMEOUT_MS 5000

typedef struct place_item {
    char *job_id;
    json_t *resources;
    json_t *request; /* job.start's body, lease_id added once granted */
    struct place_item *next;
} place_item;

static void place_item_free(place_item *it)
{
    free(it->job_id);
    json_decref(it->resources);
    json_decref(it->request);
    free(it);
}

/* The PENDING jobs on no node, first submitted first, at most PLACE_BATCH.
 * Lock held. */
static place_item *pending_jobs_locked(gcs *g, int *count)
{
    place_item *list = NULL, **tail = &list;
    *count = 0;
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "SELECT id, entrypoint, env, working_dir, resources, packages FROM jobs "
               "WHERE state='PENDING' AND node_id IS NULL ORDER BY seq LIMIT ?");
    sqlite3_bind_int(st, 1, PLACE_BATCH);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        place_item *it = calloc(1, sizeof *it);
        if (!it)
            break;
        it->job_id = strdup(id);
        it->resources = gcs_db_column_json(st, 4);
        if (!json_is_object(it->resources)) {
            json_decref(it->resources);
            it->resources = json_object();
        }
        it->request = json_pack("{s:s,s:s,s:o,s:o,s:O,s:o}", "job_id", id, "entrypoint",
                                (const char *)sqlite3_column_text(st, 1), "env",
                                gcs_db_column_json(st, 2), "working_dir",
                                gcs_db_column_text_or_null(st, 3), "resources", it->resources,
                                "packages", gcs_job_packages_column(st, 5));
        if (!it->job_id || !it->request) {
            place_item_free(it);
            break;
        }
        *tail = it;
        tail = &it->next;
        (*count)++;
    }
    gcs_db_finish(st);
    return list;
}

static void set_message_locked(gcs *g, const char *id, const char *message)
{
    sqlite3_stmt *st =
        gcs_db_prepare(g->db, "UPDATE jobs SET message=? WHERE id=? AND message IS NOT ?");
    gcs_db_bind_text(st, 1, message);
    gcs_db_bind_text(st, 2, id);
    gcs_db_bind_text(st, 3, message);
    gcs_db_exec_stmt(st);
}

/* Asks the scheduler for a lease of the job's resources. Returns the grant,
 * or NULL with why not in `why`. Without the lock. */
static json_t *lease_for(gcs *g, const place_item *it, char *why, size_t n)
{
    json_t *req = json_pack("{s:s,s:s,s:O,s:i}", "owner_id", "gcs", "job_id", it->job_id,
                            "resources", it->resources, "timeout_ms", LEASE_TIMEOUT_MS);
    json_t *reply = NULL;
    int rc =
        prism_bus_request_json(g->bus, PRISM_SUBJECT_SCHED_LEASE, req, LEASE_TIMEOUT_MS, &reply);
    json_decref(req);
    if (rc == PRISM_BUS_OK && json_is_true(json_object_get(reply, "ok")) &&
        json_string_value(json_object_get(reply, "node_id")) &&
        json_string_value(json_object_get(reply, "lease_id")))
        return reply;
    if (rc == PRISM_BUS_OK)
        snprintf(why, n, "%s", gcs_reply_error_message(reply));
    else if (rc == PRISM_BUS_NO_RESPONDERS)
        snprintf(why, n, "no scheduler is running");
    else
        snprintf(why, n, "the scheduler did not answer in time");
    json_decref(reply);
    return NULL;
}

/* Records the job on the node that granted its lease, unless it was stopped
 * or placed meanwhile or the node is gone. Lock held. */
static bool assign_locked(gcs *g, const char *id, const char *node_id)
{
    gcs_node *n = gcs_node_find(g, node_id);
    if (!n)
        return false;
    char msg[256];
    snprintf(msg, sizeof msg, "starting on node %s", n->name);
    sqlite3_stmt *st = gcs_db_prepare(g->db, "UPDATE jobs SET node_id=?, assigned_at=?, message=? "
                                             "WHERE id=? AND state='PENDING' AND node_id IS NULL");
    gcs_db_bind_text(st, 1, n->id);
    sqlite3_bind_int64(st, 2, prism_now_ms());
    gcs_db_bind_text(st, 3, msg);
    gcs_db_bind_text(st, 4, id);
    return gcs_db_exec_stmt(st) == SQLITE_DONE && sqlite3_changes(g->db) > 0;
}

/* A lease the GCS will not use goes back at once rather than when it expires. */
static void return_lease(gcs *g, const char *node_id, const char *lease_id)
{
    char subject[PRISM_SUBJECT_MAX];
    prism_subject_node(subject, sizeof subject, node_id, PRISM_NODE_WORKER_RETURN);
    json_t *msg = json_pack("{s:s}", "lease_id", lease_id);
    prism_bus_publish_json(g->bus, subject, msg);
    json_decref(msg);
}

static void start_one(gcs *g, const char *job_id, const char *node_id, json_t *request)
{
    char subject[128];
    prism_subject_node(subject, sizeof subject, node_id, PRISM_NODE_JOB_START);
    json_t *reply = NULL;
    int rc = prism_bus_request_json(g->bus, subject, request, START_TIMEOUT_MS, &reply);
    const char *code = gcs_reply_error_code(reply);
    pthread_mutex_lock(&g->lock);
    if (rc == PRISM_BUS_OK && json_is_true(json_object_get(reply, "ok"))) {
        gcs_job_set_running_locked(g, job_id,
                                   json_integer_value(json_object_get(reply, "start_time")));
    } else if (rc == PRISM_BUS_OK && code && !strcmp(code, "busy")) {
        /* Its lease expired before the start came, and the node filled up meanwhile. */
        gcs_job_unassign_locked(g, job_id, "the node had no room for it any more; placing again");
    } else if (rc == PRISM_BUS_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "the driver could not start: %s", gcs_reply_error_message(reply));
        gcs_job_finish_locked(g, job_id, "FAILED", NULL, prism_now_ms(), msg);
    } else if (rc == PRISM_BUS_NO_RESPONDERS) {
        gcs_job_unassign_locked(g, job_id, "the chosen node did not answer; placing again");
    }
    /* On a timeout the job stays assigned: reconciliation asks the node later. */
    pthread_mutex_unlock(&g->lock);
    json_decref(reply);
}

/* Leases, records and starts one job. False when it was not placed (it waits
 * for resources, or its node went meanwhile): it is asked for again. */
static bool place_one(gcs *g, place_item *it)
{
    char why[512];
    json_t *grant = lease_for(g, it, why, sizeof why);
    if (!grant) {
        char *what = gcs_res_describe(it->resources), *msg = NULL;
        if (asprintf(&msg, "waiting for resources: %s (%s)", what && *what ? what : "none", why) <
            0)
            msg = NULL;
        pthread_mutex_lock(&g->lock);
        set_message_locked(g, it->job_id, msg);
        pthread_mutex_unlock(&g->lock);
        free(msg);
        free(what);
        return false;
    }
    const char *node_id = json_string_value(json_object_get(grant, "node_id"));
    const char *lease_id = json_string_value(json_object_get(grant, "lease_id"));
    pthread_mutex_lock(&g->lock);
    bool assigned = assign_locked(g, it->job_id, node_id);
    pthread_mutex_unlock(&g->lock);
    if (assigned) {
        json_object_set_new(it->request, "lease_id", json_string(lease_id));
        start_one(g, it->job_id, node_id, it->request);
    } else {
        return_lease(g, node_id, lease_id);
    }
    json_decref(grant);
    return assigned;
}

void gcs_jobs_place(gcs *g)
{
    int64_t now = prism_mono_ms();
    int count = 0;
    pthread_mutex_lock(&g->lock);
    bool due = g->placement_wanted || (g->placement_retry_mono && now >= g->placement_retry_mono);
    place_item *list = due ? pending_jobs_locked(g, &count) : NULL;
    g->placement_wanted = false;
    if (due)
        g->placement_retry_mono = 0;
    pthread_mutex_unlock(&g->lock);
    int waiting = 0;
    for (place_item *it = list, *next; it; it = next) {
        next = it->next;
        waiting += !place_one(g, it);
        place_item_free(it);
    }
    pthread_mutex_lock(&g->lock);
    if (count == PLACE_BATCH && waiting < count)
        g->placement_wanted = true; /* more may wait behind the batch */
    /* What is free changes with tasks too, which the GCS does not hear of. */
    if (waiting && !g->placement_retry_mono)
        g->placement_retry_mono = prism_mono_ms() + PLACE_RETRY_MS;
    pthread_mutex_unlock(&g->lock);
}
