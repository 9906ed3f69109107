/* Retention: ended jobs past --job-retention-count (newest kept) or older
 * than --job-retention-age-s are deleted in batches, and their nodes told to
 * drop the logs. */
#include <stdint.h>

#include "db.h"
#include "jobs.h"
#include "prism_log.h"
#include "prism_subjects.h"
#include "prism_time.h"

#define RETENTION_BATCH 1000

/* Deletes one batch of ended jobs selected by `sql` (bound with `arg`) and
 * tells their nodes to drop the logs. Returns how many went. Lock held. */
static int prune_batch_locked(gcs *g, const char *sql, int64_t arg)
{
    sqlite3_stmt *st = gcs_db_prepare(g->db, sql);
    sqlite3_bind_int64(st, 1, arg);
    sqlite3_bind_int(st, 2, RETENTION_BATCH);
    json_t *by_node = json_object();
    int n = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        const char *node = (const char *)sqlite3_column_text(st, 1);
        n++;
        gcs_job_log_copy_drop(g, id);
        if (!node)
            continue;
        json_t *ids = json_object_get(by_node, node);
        if (!ids) {
            ids = json_array();
            json_object_set_new(by_node, node, ids);
        }
        json_array_append_new(ids, json_string(id));
    }
    gcs_db_finish(st);
    const char *node;
    json_t *ids;
    json_object_foreach(by_node, node, ids) {
        char subject[128];
        prism_subject_node(subject, sizeof subject, node, PRISM_NODE_JOB_DELETE);
        json_t *msg = json_pack("{s:O}", "job_ids", ids);
        prism_bus_publish_json(g->bus, subject, msg);
        json_decref(msg);
    }
    json_decref(by_node);
    return n;
}

void gcs_jobs_prune(gcs *g)
{
    pthread_mutex_lock(&g->lock);
    int by_age = prune_batch_locked(
        g,
        "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs WHERE end_time < ?1 AND NOT " NOT_ENDED
        " LIMIT ?2) RETURNING id, node_id",
        prism_now_ms() - g->cfg.job_retention_age_s * 1000);
    int by_count = prune_batch_locked(
        g,
        "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs WHERE NOT " NOT_ENDED
        " ORDER BY seq DESC LIMIT ?2 OFFSET ?1) RETURNING id, node_id",
        g->cfg.job_retention_count);
    pthread_mutex_unlock(&g->lock);
    if (by_age + by_count > 0)
        LOG_INFO("pruned %d ended jobs past retention (%d by age, %d by count)", by_age + by_count,
                 by_age, by_count);
}
