/* Job placement: PENDING jobs in submission order, each on the live node
 * with room for its resources and the most free CPU, then the start request
 * to that node's agent. The GCS accounts what placed jobs hold on each node
 * (gcs_node.used): taken here, given back when a job ends or is taken off
 * its node, rebuilt from the database on start. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "jobs.h"
#include "prism_resources.h"
#include "prism_subjects.h"
#include "prism_time.h"

/* ---------- what placed jobs hold ---------- */

/* Gives back what a placed job held on its node. Lock held. */
void gcs_job_release_locked(gcs *g, const char *node_id, json_t *resources)
{
    gcs_node *n = node_id ? gcs_node_find(g, node_id) : NULL;
    if (n && resources) {
        gcs_res_add(n->used, resources, -1);
        g->placement_wanted = true; /* a waiting job may fit now */
    }
}

/* What placed jobs hold is soft state: rebuilt from the database on start. */
void gcs_jobs_usage_rebuild_locked(gcs *g)
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
                                  "packages", gcs_job_packages_column(st, 5));
        item->next = list;
        list = item;
    }
    sqlite3_finalize(st);
    return list;
}

static void start_one(gcs *g, start_item *item)
{
    char subject[128];
    prism_subject_node(subject, sizeof subject, item->node_id, PRISM_NODE_JOB_START);
    json_t *reply = NULL;
    int rc = prism_bus_request_json(g->bus, subject, item->request, START_TIMEOUT_MS, &reply);
    pthread_mutex_lock(&g->lock);
    if (rc == PRISM_BUS_OK && json_is_true(json_object_get(reply, "ok"))) {
        gcs_job_set_running_locked(g, item->job_id,
                               json_integer_value(json_object_get(reply, "start_time")));
    } else if (rc == PRISM_BUS_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "the driver could not start: %s", gcs_reply_error_message(reply));
        gcs_job_finish_locked(g, item->job_id, "FAILED", NULL, prism_now_ms(), msg);
    } else if (rc == PRISM_BUS_NO_RESPONDERS) {
        gcs_job_unassign_locked(g, item->job_id, "the chosen node did not answer; placing again");
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
