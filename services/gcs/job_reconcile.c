/* Reconciliation with the node agents instead of reliable delivery: every
 * 2 s per node, the GCS asks about each job the database says runs there and
 * the node's last heartbeat does not list, and stops any job the node runs
 * that the cluster considers ended. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "jobs.h"
#include "prism_subjects.h"
#include "prism_time.h"

#define RECONCILE_EVERY_MS 2000
#define RECONCILE_GRACE_MS 3000

typedef struct check_item {
    char job_id[160], node_id[PRISM_ID_HEX_LEN + 1];
    bool stop; /* the node runs a job the cluster considers ended */
} check_item;

#define MAX_CHECKS 32

static bool array_has(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
        if (json_is_string(v) && !strcmp(json_string_value(v), s))
            return true;
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
        gcs_db_finish(st);
        size_t i;
        json_t *v;
        json_array_foreach(node->running, i, v) {
            job_place p;
            const char *id = json_string_value(v);
            if (!id || n >= MAX_CHECKS)
                continue;
            bool ended = true;
            if (gcs_job_place_load(g, id, &p) == 0) {
                ended = gcs_state_terminal(p.state);
                gcs_job_place_free(&p);
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

static void check_one(gcs *g, const check_item *it)
{
    int rc;
    json_t *reply = NULL;
    gcs_job_node_request(g, it->node_id, it->stop ? PRISM_NODE_JOB_STOP : PRISM_NODE_JOB_STATUS,
                         it->job_id, 2000, &rc, &reply);
    if (rc != PRISM_BUS_OK || it->stop) {
        json_decref(reply);
        return; /* an unreachable node is the liveness check's business */
    }
    const char *state = json_string_value(json_object_get(reply, "state"));
    pthread_mutex_lock(&g->lock);
    job_place p;
    if (state && gcs_job_place_load(g, it->job_id, &p) == 0) {
        bool same_node = p.node_id && !strcmp(p.node_id, it->node_id);
        if (same_node && !strcmp(state, "UNKNOWN") && !strcmp(p.state, "PENDING"))
            gcs_job_unassign_locked(g, it->job_id,
                                    "the node never started the driver; placing again");
        else if (same_node && !strcmp(state, "UNKNOWN"))
            gcs_job_finish_locked(g, it->job_id, "FAILED", NULL, prism_now_ms(),
                                  "driver lost: its node agent has no record of it");
        else if (same_node)
            gcs_job_apply_report_locked(g, it->job_id, reply);
        gcs_job_place_free(&p);
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
