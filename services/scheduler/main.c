/* prism-scheduler: its options, start-up and shutdown hooks and periodic
 * jobs, on the service skeleton (prism_service.h). */
#include <stdio.h>

#include "prism_log.h"
#include "prism_service.h"
#include "scheduler.h"

/* the one state of this process */
static scheduler s = {.lock = PTHREAD_MUTEX_INITIALIZER, .queue_cv = PTHREAD_COND_INITIALIZER};

static prism_option options[] = {
    {"node-timeout-ms", PRISM_OPT_INT, &s.cfg.node_timeout_ms, "5000",
     "a node that sent no report this long leaves the view"},
    {"lease-timeout-ms", PRISM_OPT_INT, &s.cfg.lease_timeout_ms, "5000",
     "time to answer a lease request that gives no timeout_ms"},
    {"forward-timeout-ms", PRISM_OPT_INT, &s.cfg.forward_timeout_ms, "3000",
     "longest wait for one node agent's answer"},
    {"lease-threads", PRISM_OPT_INT, &s.cfg.lease_threads, "4",
     "lease requests answered at the same time"},
    {"queue-max", PRISM_OPT_INT, &s.cfg.queue_max, "10000",
     "lease requests queued before new ones are answered busy"},
};

static int configure(void *ctx, const prism_service_settings *set, char *err, size_t errlen)
{
    const sched_config *c = &s.cfg;
    if (c->node_timeout_ms <= 0 || c->lease_timeout_ms <= 0 || c->forward_timeout_ms <= 0)
        snprintf(err, errlen, "--node-timeout-ms, --lease-timeout-ms and --forward-timeout-ms "
                              "must be positive");
    else if (c->lease_threads < 1 || c->lease_threads > SCHED_MAX_THREADS)
        snprintf(err, errlen, "--lease-threads must be 1..%d", SCHED_MAX_THREADS);
    else if (c->queue_max < 1)
        snprintf(err, errlen, "--queue-max must be positive");
    else
        return 0;
    return -1;
}

static double gauge_nodes(void *ud)
{
    pthread_mutex_lock(&s.lock);
    size_t n = sched_node_count(&s);
    pthread_mutex_unlock(&s.lock);
    return (double)n;
}

static int init(void *ctx, char *err, size_t errlen)
{
    prism_id id;
    prism_id_random(&id);
    prism_id_to_hex(&id, s.id);
    prism_metrics *m = s.metrics;
    s.m.requests = prism_metrics_counter(m, "prism_scheduler_lease_requests_total",
                                         "Lease requests received", NULL);
    s.m.grants = prism_metrics_counter(m, "prism_scheduler_lease_grants_total", "Leases granted",
                                       NULL);
    s.m.infeasible = prism_metrics_counter(m, "prism_scheduler_lease_infeasible_total",
                                           "Lease requests no node could ever hold", NULL);
    s.m.busy = prism_metrics_counter(m, "prism_scheduler_lease_busy_total",
                                     "Lease requests answered busy", NULL);
    s.m.errors = prism_metrics_counter(m, "prism_scheduler_lease_errors_total",
                                       "Lease requests answered with another error", NULL);
    s.m.forwards = prism_metrics_counter(m, "prism_scheduler_lease_forwards_total",
                                         "Lease requests sent to node agents", NULL);
    prism_metrics_gauge_fn(m, "prism_scheduler_nodes", "Nodes in the resource view", NULL,
                           gauge_nodes, &s);
    return 0;
}

static int start(void *ctx, char *err, size_t errlen)
{
    if (sched_view_start(&s) != 0 || sched_lease_start(&s) != 0) {
        snprintf(err, errlen, "cannot subscribe or start threads: %s", prism_bus_last_error(s.bus));
        return -1;
    }
    return 0;
}

static int serving(void *ctx, const char *url, char *err, size_t errlen)
{
    LOG_INFO("scheduler %s serving its status at %s", s.id, url);
    return 0;
}

static void stop(void *ctx) { sched_lease_stop(&s); /* the threads may be asking a node */ }
static void cleanup(void *ctx) { sched_view_free(&s); }
static void view_cron(void *ctx) { sched_view_cron(&s); }

static const prism_service_job jobs[] = {{"view", 100, view_cron}};

int main(int argc, char **argv)
{
    const prism_service_def def = {
        .name = "scheduler",
        .usage = "usage: prism-scheduler [options]\n\n"
                 "Keeps the cluster's resource view from the node agents' reports and answers "
                 "worker-lease\nrequests (prism.sched.lease). Replicas share the requests through "
                 "a NATS queue group.",
        .options = options, .noptions = sizeof options / sizeof options[0],
        .default_port = "0", .default_nats_url = "nats://127.0.0.1:4222",
        .routes = sched_routes, .nroutes = sched_nroutes,
        .jobs = jobs, .njobs = sizeof jobs / sizeof jobs[0],
        .ctx = &s, .metrics = &s.metrics, .bus = &s.bus, .http = &s.http,
        .configure = configure, .init = init, .start = start, .serving = serving,
        .stop = stop, .cleanup = cleanup,
    };
    return prism_service_main(&def, argc, argv);
}
