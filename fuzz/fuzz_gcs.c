/* The GCS (services/gcs): every REST handler (jobs, the Ray jobs API, actors,
 * nodes, key-value, packages, tasks, objects) on request bodies and query
 * arguments, and every NATS subscription (node register and heartbeat, job
 * updates, task and object events, actor create/get/kill/calls, store
 * reports), with the crons that act on what they stored (placement,
 * reconciliation, retention, the history) run after each message. Input:
 * one or more messages in the format of fake.h. Each input starts from an
 * empty in-memory database. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors.h"
#include "db.h"
#include "fake.h"
#include "gcs.h"
#include "prism_fs.h"
#include "prism_log.h"
#include "prism_service.h"

static char *dir;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    prism_log_init("fuzz", PRISM_LOG_ERROR);
    dir = fuzz_tmpdir("gcs");
    return dir ? 0 : -1;
}

/* As the GCS starts, but on an in-memory database and the test doubles. */
static int start(gcs *g)
{
    char err[512], path[600];
    pthread_mutex_init(&g->lock, NULL);
    g->cfg = (gcs_config){.host = "127.0.0.1",
                          .token = "",
                          .data_dir = dir,
                          .node_timeout_ms = 10000,
                          .job_retention_count = 100,
                          .job_retention_age_s = 3600,
                          .max_package_size = 1 << 20,
                          .max_kv_value_size = 1 << 16,
                          .object_ttl_s = 3600,
                          .task_list_size = 100};
    snprintf(path, sizeof path, "%s/packages", dir);
    g->packages_dir = strdup(path);
    prism_mkdir_p(path, 0700);
    if (gcs_db_open(&g->db, ":memory:", err, sizeof err) != 0)
        return -1;
    g->metrics = prism_metrics_create();
    if (gcs_tasks_create(g) != 0 || gcs_task_list_create(g) != 0 ||
        gcs_object_list_create(g) != 0 || gcs_actors_create(g) != 0 || gcs_history_create(g) != 0 ||
        gcs_dags_create(g) != 0 || gcs_data_proxy_create(g) != 0)
        return -1;
    g->bus = fuzz_bus();
    if (gcs_start(g, err, sizeof err) != 0)
        return -1;
    prism_http_config hc = {.routes = gcs_routes,
                            .nroutes = gcs_nroutes,
                            .ctx = g,
                            .metrics = g->metrics,
                            .name = "prism-gcs"};
    return prism_http_server_create(&g->http, &hc, err, sizeof err);
}

/* As the GCS stops: the skeleton's teardown with the GCS's hooks. */
static void stop(gcs *g)
{
    prism_service_def def = {.ctx = g,
                             .metrics = &g->metrics,
                             .bus = &g->bus,
                             .http = &g->http,
                             .stop = gcs_stop,
                             .cleanup = gcs_cleanup};
    prism_service_teardown(&def);
    pthread_mutex_destroy(&g->lock);
}

static void crons(void *ud)
{
    gcs *g = ud;
    gcs_nodes_cron(g);
    gcs_jobs_place(g);
    gcs_jobs_reconcile(g);
    gcs_jobs_prune(g);
    gcs_object_list_cron(g);
    gcs_history_cron(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gcs g = {0};
    if (start(&g) == 0)
        fuzz_run_messages(data, size, crons, &g);
    stop(&g);
    return 0;
}
