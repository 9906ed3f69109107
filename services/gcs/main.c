/* prism-gcs: its options, body limits and periodic jobs, on the service
 * skeleton (prism_service.h); start-up and shutdown are in lifecycle.c. */
#include <string.h>

#include "gcs.h"
#include "pgroups.h"
#include "prism_service.h"

static gcs g = {.lock = PTHREAD_MUTEX_INITIALIZER}; /* the one state of this process */

static prism_option options[] = {
    {"data-dir", PRISM_OPT_STRING, &g.cfg.data_dir, "./gcs-data",
     "directory of the database, packages and copies of ended jobs' logs"},
    {"node-timeout-ms", PRISM_OPT_INT, &g.cfg.node_timeout_ms, "10000",
     "a node silent this long is DEAD"},
    {"job-retention-count", PRISM_OPT_INT, &g.cfg.job_retention_count, "10000",
     "ended jobs kept (older ones are pruned with their logs)"},
    {"job-retention-age-s", PRISM_OPT_INT, &g.cfg.job_retention_age_s, "604800",
     "ended jobs older than this are pruned"},
    {"max-package-size", PRISM_OPT_SIZE, &g.cfg.max_package_size, "256MiB",
     "largest package accepted"},
    {"max-kv-value-size", PRISM_OPT_SIZE, &g.cfg.max_kv_value_size, "1MiB",
     "largest key-value value accepted"},
    {"object-ttl-s", PRISM_OPT_INT, &g.cfg.object_ttl_s, "3600",
     "objects made through POST /api/v1/tasks are freed this long after creation"},
    {"task-list-size", PRISM_OPT_INT, &g.cfg.task_list_size, "10000",
     "recent tasks kept for GET /api/v1/tasks"},
};

static int configure(void *ctx, const prism_service_settings *s, char *err, size_t errlen)
{
    g.cfg.host = s->host;
    g.cfg.token = s->token;
    g.cfg.nats_url = s->nats_url;
    return 0;
}

static size_t body_limit(void *ctx, const prism_http_route *r)
{
    if ((!strcmp(r->pattern, "/api/v1/packages") && !strcmp(r->method, "POST")) ||
        (!strcmp(r->pattern, "/api/packages/{protocol}/{name}") && !strcmp(r->method, "PUT")))
        return (size_t)g.cfg.max_package_size;
    if (!strcmp(r->pattern, "/api/v1/kv/{namespace}/{key}") && !strcmp(r->method, "PUT"))
        return (size_t)g.cfg.max_kv_value_size;
    return 0;
}

static void nodes_cron(void *ctx) { gcs_nodes_cron(ctx); }
static void place_cron(void *ctx) { gcs_jobs_place(ctx); }
static void reconcile_cron(void *ctx) { gcs_jobs_reconcile(ctx); }
static void prune_cron(void *ctx) { gcs_jobs_prune(ctx); }
static void tasks_cron(void *ctx) { gcs_tasks_cron(ctx); }
static void objects_cron(void *ctx) { gcs_object_list_cron(ctx); }
static void log_copy_cron(void *ctx) { gcs_job_logs_copy(ctx); }
static void pg_cron(void *ctx)
{
    gcs_pgs_place(ctx);
    gcs_pgs_check_owners(ctx);
}
static void history_cron(void *ctx) { gcs_history_cron(ctx); }

/* Reconciliation keeps a clock per node (each node every 2 s). */
static const prism_service_job jobs[] = {
    {"nodes", 100, nodes_cron},
    {"job placement", 100, place_cron},
    {"job reconciliation", 100, reconcile_cron},
    {"job retention", 5000, prune_cron},
    {"tasks", 100, tasks_cron},
    {"objects", 100, objects_cron},
    {"job log copies", 500, log_copy_cron},
    {"placement groups", 100, pg_cron},
    {"history", HISTORY_INTERVAL_MS, history_cron},
};

int main(int argc, char **argv)
{
    const prism_service_def def = {
        .name = "gcs",
        .usage = "usage: prism-gcs [options]\n\n"
                 "The global control store: cluster metadata in SQLite and the public REST API.",
        .options = options,
        .noptions = sizeof options / sizeof options[0],
        .default_port = "8265",
        .default_nats_url = "nats://127.0.0.1:4222",
        .routes = gcs_routes,
        .nroutes = gcs_nroutes,
        .body_limit = body_limit,
        .jobs = jobs,
        .njobs = sizeof jobs / sizeof jobs[0],
        .ctx = &g,
        .metrics = &g.metrics,
        .bus = &g.bus,
        .http = &g.http,
        .configure = configure,
        .init = gcs_init,
        .start = gcs_start,
        .serving = gcs_serving,
        .stop = gcs_stop,
        .cleanup = gcs_cleanup,
    };
    return prism_service_main(&def, argc, argv);
}
