/* The scheduler (services/scheduler): node reports on prism.sched.node,
 * node events on prism.event.node, lease requests on prism.sched.lease
 * (parsed and placed on the calling thread, forwarded to node agents that
 * never answer) and its REST status. Input: one or more messages in the
 * format of fake.h; each input starts from an empty view. */
#include <stdlib.h>
#include <string.h>

#include "fake.h"
#include "prism_log.h"
#include "scheduler.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    prism_log_init("fuzz", PRISM_LOG_ERROR);
    return 0;
}

static void after(void *ud)
{
    scheduler *s = ud;
    sched_lease_run_queued(s);
    sched_view_cron(s);
    sched_waitq_cron(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    scheduler *s = calloc(1, sizeof *s);
    if (!s)
        return 0;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->queue_cv, NULL);
    s->cfg = (sched_config){.node_timeout_ms = 10000,
                            .lease_timeout_ms = 1000,
                            .forward_timeout_ms = 100,
                            .lease_threads = 0,
                            .queue_max = 64,
                            .wait_max = 64};
    s->metrics = prism_metrics_create();
    s->bus = fuzz_bus();
    char err[256];
    prism_http_config hc = {.routes = sched_routes, .nroutes = sched_nroutes, .ctx = s};
    /* As the service starts and stops (service.c), with the test doubles. */
    if (sched_init(s, err, sizeof err) == 0 && sched_start(s, err, sizeof err) == 0 &&
        prism_http_server_create(&s->http, &hc, err, sizeof err) == 0)
        fuzz_run_messages(data, size, after, s);
    prism_service_def def = {.ctx = s,
                             .metrics = &s->metrics,
                             .bus = &s->bus,
                             .http = &s->http,
                             .stop = sched_stop,
                             .cleanup = sched_cleanup};
    prism_service_teardown(&def);
    pthread_cond_destroy(&s->queue_cv);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return 0;
}
