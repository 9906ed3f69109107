/* prism-scheduler: its options and periodic jobs, with the hooks of
 * service.c, on the service skeleton (prism_service.h). */
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
    {"wait-max", PRISM_OPT_INT, &s.cfg.wait_max, "10000",
     "lease requests waiting for room (queue_ms) before new ones are refused queue_full"},
};

static int serving(void *ctx, const char *url, char *err, size_t errlen)
{
    LOG_INFO("scheduler %s serving its status at %s", s.id, url);
    return 0;
}

static void view_cron(void *ctx) { sched_view_cron(&s); }
static void waitq_cron(void *ctx) { sched_waitq_cron(&s); }

static const prism_service_job jobs[] = {{"view", 100, view_cron},
                                         {"lease queue", 100, waitq_cron}};

int main(int argc, char **argv)
{
    const prism_service_def def = {
        .name = "scheduler",
        .usage = "usage: prism-scheduler [options]\n\n"
                 "Keeps the cluster's resource view from the node agents' reports and answers "
                 "worker-lease\nrequests (prism.sched.lease). Replicas share the requests through "
                 "a NATS queue group.",
        .options = options,
        .noptions = sizeof options / sizeof options[0],
        .default_port = "0",
        .default_nats_url = "nats://127.0.0.1:4222",
        .routes = sched_routes,
        .nroutes = sched_nroutes,
        .jobs = jobs,
        .njobs = sizeof jobs / sizeof jobs[0],
        .announce = true,
        .describe = sched_describe,
        .ctx = &s,
        .metrics = &s.metrics,
        .bus = &s.bus,
        .http = &s.http,
        .configure = sched_configure,
        .init = sched_init,
        .start = sched_start,
        .serving = serving,
        .stop = sched_stop,
        .cleanup = sched_cleanup,
    };
    return prism_service_main(&def, argc, argv);
}
