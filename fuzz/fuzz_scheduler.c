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
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    scheduler *s = calloc(1, sizeof *s);
    if (!s)
        return 0;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->queue_cv, NULL);
    s->cfg = (sched_config){.node_timeout_ms = 10000, .lease_timeout_ms = 1000,
                            .forward_timeout_ms = 100, .lease_threads = 0, .queue_max = 64};
    memcpy(s->id, "0123456789abcdef0123456789abcdef", sizeof s->id);
    prism_metrics *m = s->metrics = prism_metrics_create();
    s->m.requests = prism_metrics_counter(m, "requests", "", NULL);
    s->m.grants = prism_metrics_counter(m, "grants", "", NULL);
    s->m.infeasible = prism_metrics_counter(m, "infeasible", "", NULL);
    s->m.busy = prism_metrics_counter(m, "busy", "", NULL);
    s->m.errors = prism_metrics_counter(m, "errors", "", NULL);
    s->m.forwards = prism_metrics_counter(m, "forwards", "", NULL);
    s->bus = fuzz_bus();
    char err[256];
    prism_http_config hc = {.routes = sched_routes, .nroutes = sched_nroutes, .ctx = s};
    if (sched_view_start(s) == 0 && sched_lease_start(s) == 0 &&
        prism_http_server_create(&s->http, &hc, err, sizeof err) == 0)
        fuzz_run_messages(data, size, after, s);
    prism_http_server_destroy(s->http);
    sched_lease_stop(s);
    prism_bus_destroy(s->bus);
    sched_view_free(s);
    prism_metrics_destroy(s->metrics);
    pthread_cond_destroy(&s->queue_cv);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return 0;
}
