/* The dataservice's hooks on the service skeleton (prism_service.h): its
 * options checked, metrics, the answer to "where is the dataservice?" on
 * NATS, the client it owns its tasks through, and shutdown. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataservice.h"
#include "prism_error.h"
#include "prism_httpc.h"
#include "prism_log.h"
#include "prism_subjects.h"
#include "prism_time.h"

#define CONNECTOR_PROBE_MS 500

int ds_configure(void *ctx, const prism_service_settings *set, char *err, size_t errlen)
{
    dataservice *s = ctx;
    ds_config *c = &s->cfg;
    c->host = set->host;
    c->token = set->token;
    if (!c->gcs_address || !*c->gcs_address)
        snprintf(err, errlen, "--gcs-address is required");
    else if (c->memory_budget < 0)
        snprintf(err, errlen, "--memory-budget must not be negative");
    else if (!(c->memory_fraction > 0 && c->memory_fraction <= 1))
        snprintf(err, errlen, "--memory-fraction must be above 0 and at most 1");
    else if (c->max_tasks < 1 || c->max_running < 1 || c->max_datasets < 1)
        snprintf(err, errlen,
                 "--max-tasks-per-stage, --max-running and --max-datasets must be "
                 "positive");
    else if (c->preview_rows < 1 || c->preview_rows > 1000000)
        snprintf(err, errlen, "--preview-rows must be 1..1000000");
    else if (c->default_blocks < 1 || c->default_blocks > 1048576)
        snprintf(err, errlen, "--default-blocks must be 1..1048576");
    else if (ds_roots_parse(c, err, errlen) == 0)
        return 0;
    return -1;
}

static double count_state(dataservice *s, ds_state st)
{
    pthread_mutex_lock(&s->lock);
    double n = 0;
    for (ds_dataset *d = s->datasets; d; d = d->next)
        n += d->state == st;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static double gauge_running(void *ud) { return count_state(ud, DS_RUNNING); }
static double gauge_pending(void *ud) { return count_state(ud, DS_PENDING); }

static double gauge_stores(void *ud)
{
    dataservice *s = ud;
    pthread_mutex_lock(&s->lock);
    double n = (double)ds_stores_capacity(s);
    pthread_mutex_unlock(&s->lock);
    return n;
}

static double gauge_cluster(void *ud, bool gpus)
{
    dataservice *s = ud;
    double g;
    pthread_mutex_lock(&s->lock);
    double c = ds_stores_cpus(s, &g);
    pthread_mutex_unlock(&s->lock);
    return gpus ? g : c;
}

static double gauge_cpus(void *ud) { return gauge_cluster(ud, false); }
static double gauge_gpus(void *ud) { return gauge_cluster(ud, true); }

static double gauge_in_flight(void *ud)
{
    dataservice *s = ud;
    pthread_mutex_lock(&s->lock);
    double n = 0;
    for (ds_dataset *d = s->datasets; d; d = d->next)
        n += (double)d->bytes_in_flight;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* The sum over running datasets of a field of the stages of one operator kind. */
static double op_sum(ds_op_metrics *om, size_t offset)
{
    dataservice *s = om->svc;
    double n = 0;
    pthread_mutex_lock(&s->lock);
    for (ds_dataset *d = s->datasets; d; d = d->next)
        for (size_t i = 0; d->state == DS_RUNNING && i < d->nstages; i++)
            if (d->stages[i].op == om->kind)
                n += (double)*(const int64_t *)((const char *)&d->stages[i] + offset);
    pthread_mutex_unlock(&s->lock);
    return n;
}

static double op_tasks(void *ud) { return op_sum(ud, offsetof(ds_stage_progress, tasks_running)); }
static double op_queued(void *ud) { return op_sum(ud, offsetof(ds_stage_progress, queued_bytes)); }
static double op_actors(void *ud) { return op_sum(ud, offsetof(ds_stage_progress, actors_alive)); }

/* Per operator (labelled by its name in plans): what the stages ending in
 * it made, and what runs and waits now. */
static void op_metrics_init(dataservice *s)
{
    prism_metrics *m = s->metrics;
    for (int k = 0; k < PRISM_OP_KIND_COUNT; k++) {
        ds_op_metrics *om = &s->ops[k];
        om->svc = s;
        om->kind = (prism_plan_op_kind)k;
        if (prism_plan_op_is_write(om->kind))
            continue; /* never a stage's last operator */
        char label[96];
        snprintf(label, sizeof label, "operator=\"%s\"", prism_plan_op_kind_name(om->kind));
        om->rows = prism_metrics_counter(m, "prism_dataservice_operator_output_rows_total",
                                         "Rows the stages ending in the operator made", label);
        om->blocks = prism_metrics_counter(m, "prism_dataservice_operator_output_blocks_total",
                                           "Blocks the stages ending in the operator made", label);
        om->bytes = prism_metrics_counter(m, "prism_dataservice_operator_output_bytes_total",
                                          "Bytes of blocks the stages ending in the operator made",
                                          label);
        prism_metrics_gauge_fn(m, "prism_dataservice_operator_tasks_running",
                               "Tasks (or actor calls) of the running datasets' stages ending in "
                               "the operator",
                               label, op_tasks, om);
        prism_metrics_gauge_fn(m, "prism_dataservice_operator_queued_bytes",
                               "Bytes of input blocks waiting for those stages' tasks", label,
                               op_queued, om);
        prism_metrics_gauge_fn(m, "prism_dataservice_operator_actors",
                               "Actors of those stages' pools", label, op_actors, om);
    }
}

int ds_init(void *ctx, char *err, size_t errlen)
{
    dataservice *s = ctx;
    (void)err, (void)errlen;
    prism_httpc_global_init(); /* the client's HTTP, from this thread before any other */
    prism_metrics *m = s->metrics;
    s->m.submitted = prism_metrics_counter(m, "prism_dataservice_datasets_submitted_total",
                                           "Datasets accepted", NULL);
    s->m.finished = prism_metrics_counter(m, "prism_dataservice_datasets_ended_total",
                                          "Datasets that ended, by state", "state=\"FINISHED\"");
    s->m.failed = prism_metrics_counter(m, "prism_dataservice_datasets_ended_total",
                                        "Datasets that ended, by state", "state=\"FAILED\"");
    s->m.stopped = prism_metrics_counter(m, "prism_dataservice_datasets_ended_total",
                                         "Datasets that ended, by state", "state=\"STOPPED\"");
    s->m.tasks = prism_metrics_counter(m, "prism_dataservice_tasks_submitted_total",
                                       "Tasks the executors submitted", NULL);
    s->m.rows = prism_metrics_counter(m, "prism_dataservice_output_rows_total",
                                      "Rows the datasets produced", NULL);
    prism_metrics_gauge_fn(m, "prism_dataservice_datasets", "Datasets by state",
                           "state=\"RUNNING\"", gauge_running, s);
    prism_metrics_gauge_fn(m, "prism_dataservice_datasets", "Datasets by state",
                           "state=\"PENDING\"", gauge_pending, s);
    prism_metrics_gauge_fn(m, "prism_dataservice_store_capacity_bytes",
                           "Memory of the object stores the node agents report", NULL, gauge_stores,
                           s);
    prism_metrics_gauge_fn(m, "prism_dataservice_cluster_resources",
                           "CPUs and GPUs of the nodes the node agents report (what stages of "
                           "other shapes get room in)",
                           "resource=\"CPU\"", gauge_cpus, s);
    prism_metrics_gauge_fn(m, "prism_dataservice_cluster_resources",
                           "CPUs and GPUs of the nodes the node agents report (what stages of "
                           "other shapes get room in)",
                           "resource=\"GPU\"", gauge_gpus, s);
    prism_metrics_gauge_fn(m, "prism_dataservice_bytes_in_flight",
                           "Bytes of blocks the running datasets hold", NULL, gauge_in_flight, s);
    op_metrics_init(s);
    return 0;
}

int ds_start(void *ctx, char *err, size_t errlen)
{
    dataservice *s = ctx;
    if (ds_stores_start(s) != 0) {
        snprintf(err, errlen, "cannot subscribe to %s: %s", PRISM_SUBJECT_SCHED_NODE,
                 prism_bus_last_error(s->bus));
        return -1;
    }
    return 0;
}

/* prism.data.address: the GCS asks where the dataservice serves. */
static void on_address(prism_bus *bus, const char *subject, const char *reply, const char *data,
                       size_t len, void *ud)
{
    dataservice *s = ud;
    if (!reply)
        return;
    json_t *doc = json_pack("{s:s}", "url", s->url);
    if (doc)
        prism_bus_publish_json(bus, reply, doc);
    json_decref(doc);
}

/* The client's connection (the object store's arena mapped, the bus) takes
 * tens of milliseconds: made before the first dataset waits on it (100 ms
 * of the first dataset's first batch). Only once the GCS answers its
 * /healthz: a connection to a GCS not up yet waits up to 10 s, which a stop
 * would then wait for too. */
static void *connector_main(void *arg)
{
    dataservice *s = arg;
    prism_httpc *h = NULL;
    if (prism_httpc_create(&h, s->cfg.gcs_address, NULL) != 0)
        return NULL;
    while (!atomic_load(&s->connector_stop)) {
        prism_httpc_resp r = {0};
        char err[256];
        bool up = prism_httpc_request(h, "GET", "/healthz", NULL, NULL, 0, CONNECTOR_PROBE_MS, 0,
                                      &r, err, sizeof err) == 0 &&
                  r.status == 200;
        prism_httpc_resp_free(&r);
        if (up) {
            if (ds_client(s))
                LOG_INFO("connected to the cluster through the GCS at %s", s->cfg.gcs_address);
            break;
        }
        for (int i = 0; i < 10 && !atomic_load(&s->connector_stop); i++)
            prism_sleep_ms(CONNECTOR_PROBE_MS / 10);
    }
    prism_httpc_destroy(h);
    return NULL;
}

int ds_serving(void *ctx, const char *url, char *err, size_t errlen)
{
    dataservice *s = ctx;
    snprintf(s->url, sizeof s->url, "%s", url);
    if (!s->bus) {
        LOG_WARN("no NATS: the GCS cannot find this service (its API is at %s)", url);
        return 0;
    }
    if (prism_bus_subscribe(s->bus, PRISM_SUBJECT_DATA_ADDRESS, NULL, on_address, s) != 0) {
        snprintf(err, errlen, "cannot subscribe to %s: %s", PRISM_SUBJECT_DATA_ADDRESS,
                 prism_bus_last_error(s->bus));
        return -1;
    }
    LOG_INFO("dataservice serving its API at %s (tasks through the GCS at %s)", url,
             s->cfg.gcs_address);
    s->connecting = pthread_create(&s->connector, NULL, connector_main, s) == 0;
    return 0;
}

prism_client *ds_client(dataservice *s)
{
    pthread_mutex_lock(&s->client_lock);
    if (!s->client) {
        prism_connect_options o = PRISM_CONNECT_OPTIONS_INIT;
        o.address = s->cfg.gcs_address;
        o.token = s->cfg.token;
        if (prism_connect(&o, &s->client) != PRISM_OK)
            s->client = NULL;
    }
    prism_client *c = s->client;
    pthread_mutex_unlock(&s->client_lock);
    return c;
}

/* REST is down: the executors stop (releasing their blocks), then the client
 * goes, while NATS is still up for its last messages. */
void ds_stop(void *ctx)
{
    dataservice *s = ctx;
    if (s->bus) {
        prism_bus_unsubscribe(s->bus, PRISM_SUBJECT_DATA_ADDRESS);
        prism_bus_unsubscribe(s->bus, PRISM_SUBJECT_SCHED_NODE);
    }
    ds_datasets_stop_all(s);
    atomic_store(&s->connector_stop, true);
    if (s->connecting)
        pthread_join(s->connector, NULL);
    s->connecting = false;
    pthread_mutex_lock(&s->client_lock);
    if (s->client)
        prism_disconnect(s->client);
    s->client = NULL;
    pthread_mutex_unlock(&s->client_lock);
}

void ds_cleanup(void *ctx)
{
    dataservice *s = ctx;
    ds_datasets_free(s);
    ds_stores_free(s);
    ds_roots_free(&s->cfg);
}
