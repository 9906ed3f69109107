/* The GCS's start-up and shutdown, as hooks of the service skeleton
 * (prism_service.h): main.c names them, the fuzz target calls them too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "gcs.h"
#include "prism_fs.h"
#include "prism_log.h"

static int open_storage(gcs *g, char *err, size_t errlen)
{
    char path[4096];
    if (prism_mkdir_p(g->cfg.data_dir, 0700) != 0) {
        snprintf(err, errlen, "cannot create data directory %s: %m", g->cfg.data_dir);
        return -1;
    }
    snprintf(path, sizeof path, "%s/packages", g->cfg.data_dir);
    g->packages_dir = strdup(path);
    if (prism_mkdir_p(path, 0700) != 0) {
        snprintf(err, errlen, "cannot create %s: %m", path);
        return -1;
    }
    snprintf(path, sizeof path, "%s/gcs.db", g->cfg.data_dir);
    return gcs_db_open(&g->db, path, err, errlen);
}

static double alive_nodes(void *ud)
{
    gcs *g = ud;
    pthread_mutex_lock(&g->lock);
    int n = 0;
    for (gcs_node *node = g->nodes; node; node = node->next)
        n++;
    pthread_mutex_unlock(&g->lock);
    return n;
}

static void make_metrics(gcs *g)
{
    prism_metrics *m = g->metrics;
    g->m_jobs_submitted =
        prism_metrics_counter(m, "prism_gcs_jobs_submitted_total", "Jobs submitted", NULL);
    g->m_jobs_finished = prism_metrics_counter(m, "prism_gcs_jobs_finished_total",
                                               "Jobs that reached a terminal state", NULL);
    g->m_nodes_dead =
        prism_metrics_counter(m, "prism_gcs_nodes_dead_total", "Nodes marked DEAD", NULL);
    g->m_heartbeats =
        prism_metrics_counter(m, "prism_gcs_heartbeats_total", "Node heartbeats received", NULL);
    prism_metrics_gauge_fn(m, "prism_gcs_nodes_alive", "Nodes alive", NULL, alive_nodes, g);
}

int gcs_init(void *ctx, char *err, size_t errlen)
{
    gcs *g = ctx;
    if (open_storage(g, err, errlen) != 0)
        return -1;
    make_metrics(g);
    if (gcs_tasks_create(g) != 0 || gcs_task_list_create(g) != 0 ||
        gcs_object_list_create(g) != 0 || gcs_actors_create(g) != 0 || gcs_history_create(g) != 0 ||
        gcs_dags_create(g) != 0 || gcs_services_create(g) != 0 || gcs_data_proxy_create(g) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

int gcs_start(void *ctx, char *err, size_t errlen)
{
    gcs *g = ctx;
    if (gcs_nodes_start(g) != 0 || gcs_jobs_start(g) != 0 || gcs_task_list_start(g) != 0 ||
        gcs_object_list_start(g) != 0 || gcs_actors_start(g) != 0 || gcs_history_start(g) != 0 ||
        gcs_dags_start(g) != 0 || gcs_services_start(g) != 0) {
        snprintf(err, errlen, "cannot subscribe to NATS subjects: %s",
                 prism_bus_last_error(g->bus));
        return -1;
    }
    return 0;
}

int gcs_serving(void *ctx, const char *url, char *err, size_t errlen)
{
    gcs *g = ctx;
    LOG_INFO("serving the API at %s (database schema v%d, data in %s)", url, gcs_db_version(g->db),
             g->cfg.data_dir);
    gcs_services_serving(g, url);
    return 0;
}

void gcs_stop(void *ctx)
{
    gcs *g = ctx;
    gcs_tasks_destroy(g);
    gcs_actors_stop(g);
}

void gcs_cleanup(void *ctx)
{
    gcs *g = ctx;
    gcs_actors_destroy(g);
    gcs_nodes_free(g);
    gcs_task_list_destroy(g);
    gcs_object_list_destroy(g);
    gcs_history_destroy(g);
    gcs_dags_destroy(g);
    gcs_services_destroy(g);
    gcs_data_proxy_destroy(g);
    if (g->db)
        gcs_db_close(g->db);
    free(g->packages_dir);
}
