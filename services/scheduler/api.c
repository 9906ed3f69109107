/* The scheduler's REST API (openapi/scheduler.yaml): its view of the cluster
 * and its lease counters. /healthz and /metrics come with the server. */
#include "scheduler.h"

static json_t *counters(scheduler *s)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "requests",
                     (json_int_t)prism_metric_value(s->m.requests), "grants",
                     (json_int_t)prism_metric_value(s->m.grants), "infeasible",
                     (json_int_t)prism_metric_value(s->m.infeasible), "busy",
                     (json_int_t)prism_metric_value(s->m.busy), "errors",
                     (json_int_t)prism_metric_value(s->m.errors), "queued",
                     (json_int_t)prism_metric_value(s->m.queued), "queue_grants",
                     (json_int_t)prism_metric_value(s->m.queue_grants));
}

static void get_scheduler(prism_http_req *req, void *ctx)
{
    scheduler *s = ctx;
    pthread_mutex_lock(&s->lock);
    json_t *nodes = sched_view_json(s);
    json_int_t queued = (json_int_t)s->queued, waiting = (json_int_t)s->waiting;
    pthread_mutex_unlock(&s->lock);
    json_t *doc = nodes ? json_pack("{s:s,s:o,s:o,s:I,s:I}", "scheduler_id", s->id, "nodes", nodes,
                                    "leases", counters(s), "queued", queued, "waiting", waiting)
                        : NULL;
    if (!doc) {
        prism_http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    prism_http_reply_json(req, 200, doc);
}

const prism_http_route sched_routes[] = {
    {"GET", "/api/v1/scheduler", get_scheduler, 0},
};
const size_t sched_nroutes = sizeof sched_routes / sizeof sched_routes[0];
