/* The scheduler's hooks on the service skeleton (prism_service.h): checking
 * the options, the metrics, starting and stopping the view and the lease
 * threads. Apart from main.c so that the fuzz target starts and stops a
 * scheduler exactly as the service does. */
#include <stdio.h>

#include "scheduler.h"

int sched_configure(void *ctx, const prism_service_settings *set, char *err, size_t errlen)
{
    const sched_config *c = &((scheduler *)ctx)->cfg;
    (void)set;
    if (c->node_timeout_ms <= 0 || c->lease_timeout_ms <= 0 || c->forward_timeout_ms <= 0)
        snprintf(err, errlen,
                 "--node-timeout-ms, --lease-timeout-ms and --forward-timeout-ms "
                 "must be positive");
    else if (c->lease_threads < 1 || c->lease_threads > SCHED_MAX_THREADS)
        snprintf(err, errlen, "--lease-threads must be 1..%d", SCHED_MAX_THREADS);
    else if (c->queue_max < 1 || c->wait_max < 1)
        snprintf(err, errlen, "--queue-max and --wait-max must be positive");
    else
        return 0;
    return -1;
}

static double gauge_nodes(void *ud)
{
    scheduler *s = ud;
    pthread_mutex_lock(&s->lock);
    size_t n = sched_node_count(s);
    pthread_mutex_unlock(&s->lock);
    return (double)n;
}

static double gauge_waiting(void *ud)
{
    scheduler *s = ud;
    pthread_mutex_lock(&s->lock);
    size_t n = s->waiting;
    pthread_mutex_unlock(&s->lock);
    return (double)n;
}

int sched_init(void *ctx, char *err, size_t errlen)
{
    scheduler *s = ctx;
    (void)err, (void)errlen;
    prism_id id;
    prism_id_random(&id);
    prism_id_to_hex(&id, s->id);
    prism_metrics *m = s->metrics;
    s->m.requests = prism_metrics_counter(m, "prism_scheduler_lease_requests_total",
                                          "Lease requests received", NULL);
    s->m.grants =
        prism_metrics_counter(m, "prism_scheduler_lease_grants_total", "Leases granted", NULL);
    s->m.infeasible = prism_metrics_counter(m, "prism_scheduler_lease_infeasible_total",
                                            "Lease requests no node could ever hold", NULL);
    s->m.busy = prism_metrics_counter(m, "prism_scheduler_lease_busy_total",
                                      "Lease requests answered busy", NULL);
    s->m.errors = prism_metrics_counter(m, "prism_scheduler_lease_errors_total",
                                        "Lease requests answered with another error", NULL);
    s->m.forwards = prism_metrics_counter(m, "prism_scheduler_lease_forwards_total",
                                          "Lease requests sent to node agents", NULL);
    s->m.answer_seconds = prism_metrics_histogram(
        m, "prism_scheduler_lease_answer_seconds",
        "From a lease request's arrival to its answer: a grant (the node agent's included), a "
        "refusal, or word that it is queued",
        NULL, prism_metrics_seconds_bounds, prism_metrics_seconds_nbounds);
    prism_metrics_gauge_fn(m, "prism_scheduler_nodes", "Nodes in the resource view", NULL,
                           gauge_nodes, s);
    s->m.queued = prism_metrics_counter(m, "prism_scheduler_lease_queued_total",
                                        "Lease requests queued to wait for room", NULL);
    s->m.queue_grants = prism_metrics_counter(m, "prism_scheduler_lease_queue_grants_total",
                                              "Leases granted to requests that waited", NULL);
    s->m.queue_cancelled = prism_metrics_counter(m, "prism_scheduler_lease_queue_cancelled_total",
                                                 "Queued lease requests their owners cancelled",
                                                 NULL);
    s->m.queue_dropped =
        prism_metrics_counter(m, "prism_scheduler_lease_queue_dropped_total",
                              "Queued lease requests dropped because their owner was gone", NULL);
    s->m.queue_expired =
        prism_metrics_counter(m, "prism_scheduler_lease_queue_expired_total",
                              "Queued lease requests answered busy after their queue_ms", NULL);
    s->m.queue_full = prism_metrics_counter(m, "prism_scheduler_lease_queue_full_total",
                                            "Lease requests refused because the queue was full",
                                            NULL);
    prism_metrics_gauge_fn(m, "prism_scheduler_lease_queue_length",
                           "Lease requests waiting in the queue", NULL, gauge_waiting, s);
    return 0;
}

int sched_start(void *ctx, char *err, size_t errlen)
{
    scheduler *s = ctx;
    if (sched_view_start(s) != 0 || sched_pg_start(s) != 0 || sched_lease_start(s) != 0) {
        snprintf(err, errlen, "cannot subscribe or start threads: %s",
                 prism_bus_last_error(s->bus));
        return -1;
    }
    return 0;
}

/* What this scheduler adds to its prism.service.announce (the GCS lists it). */
void sched_describe(void *ctx, json_t *doc)
{
    scheduler *s = ctx;
    pthread_mutex_lock(&s->lock);
    size_t n = sched_node_count(s);
    pthread_mutex_unlock(&s->lock);
    json_object_set_new(doc, "id", json_string(s->id));
    json_object_set_new(doc, "nodes", json_integer((json_int_t)n));
    json_object_set_new(doc, "lease_requests",
                        json_integer((json_int_t)prism_metric_value(s->m.requests)));
    json_object_set_new(doc, "lease_grants",
                        json_integer((json_int_t)prism_metric_value(s->m.grants)));
}

/* The lease threads may be asking a node: they go before NATS closes. */
void sched_stop(void *ctx) { sched_lease_stop(ctx); }
void sched_cleanup(void *ctx) { sched_view_free(ctx); }
