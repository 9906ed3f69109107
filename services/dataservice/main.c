/* prism-dataservice: its options and periodic jobs, with the hooks of
 * service.c, on the service skeleton (prism_service.h). */
#include "dataservice.h"

/* the one state of this process */
static dataservice s = {.client_lock = PTHREAD_MUTEX_INITIALIZER,
                        .lock = PTHREAD_MUTEX_INITIALIZER,
                        .changed = PTHREAD_COND_INITIALIZER};

static prism_option options[] = {
    {"gcs-address", PRISM_OPT_STRING, &s.cfg.gcs_address, "http://127.0.0.1:8265",
     "the GCS URL: the service's client submits the datasets' tasks through it"},
    {"memory-budget", PRISM_OPT_SIZE, &s.cfg.memory_budget, "0",
     "bytes of blocks a dataset may hold in flight, unless its plan sets memory_budget_bytes "
     "(0: --memory-fraction of the object stores' memory)"},
    {"memory-fraction", PRISM_OPT_DOUBLE, &s.cfg.memory_fraction, "0.5",
     "the share of the object stores' memory a dataset may hold, without --memory-budget"},
    {"max-tasks-per-stage", PRISM_OPT_INT, &s.cfg.max_tasks, "16",
     "tasks in flight per stage at most, unless the plan caps it lower (concurrency)"},
    {"max-running", PRISM_OPT_INT, &s.cfg.max_running, "8",
     "datasets running at once; more wait PENDING"},
    {"max-datasets", PRISM_OPT_INT, &s.cfg.max_datasets, "1000",
     "datasets kept in memory; the oldest that ended are forgotten first"},
    {"preview-rows", PRISM_OPT_INT, &s.cfg.preview_rows, "10000",
     "rows of each dataset's output kept for GET /api/v1/datasets/{id}/rows"},
    {"default-blocks", PRISM_OPT_INT, &s.cfg.default_blocks, "16",
     "blocks a read makes when the plan gives no override_num_blocks"},
    {"data-roots", PRISM_OPT_STRING, &s.cfg.data_roots, "",
     "directories, separated by ':', that datasets' reads and writes must stay under "
     "(empty: reads anywhere, writes refused)"},
};

static void datasets_cron(void *ctx) { ds_datasets_cron(ctx); }
static void stores_cron(void *ctx) { ds_stores_cron(ctx); }

static const prism_service_job jobs[] = {{"datasets", 50, datasets_cron},
                                         {"stores", 2000, stores_cron}};

int main(int argc, char **argv)
{
    const prism_service_def def = {
        .name = "dataservice",
        .usage = "usage: prism-dataservice [options]\n\n"
                 "Runs datasets: plans posted to POST /api/v1/datasets, executed as streaming\n"
                 "pipelines of tasks that this service owns (docs/datasets.md).",
        .options = options,
        .noptions = sizeof options / sizeof options[0],
        .default_port = "0",
        .default_nats_url = "nats://127.0.0.1:4222",
        .routes = ds_routes,
        .nroutes = ds_nroutes,
        .jobs = jobs,
        .njobs = sizeof jobs / sizeof jobs[0],
        .announce = true,
        .ctx = &s,
        .metrics = &s.metrics,
        .bus = &s.bus,
        .http = &s.http,
        .configure = ds_configure,
        .init = ds_init,
        .start = ds_start,
        .serving = ds_serving,
        .stop = ds_stop,
        .cleanup = ds_cleanup,
    };
    return prism_service_main(&def, argc, argv);
}
