/* Task events: each owner reports its tasks' outcomes (and tasks that wait
 * long, with the reason) in batches on `prism.event.tasks`, off the task path;
 * the GCS keeps the recent ones for GET /api/v1/tasks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "prism_time.h"

#define FLUSH_EVERY_MS 200
#define PENDING_AFTER_MS 1000
#define MAX_BUFFERED 20000 /* per flush; beyond it events are counted as dropped */

void prism__event_task(prism_client *c, const task_spec *t, int state, const char *detail)
{
    if (c->nevents == c->capevents) {
        size_t cap = c->capevents ? 2 * c->capevents : 256;
        task_event *ev = cap <= MAX_BUFFERED ? realloc(c->events, cap * sizeof *ev) : NULL;
        if (!ev) {
            c->events_dropped++;
            return;
        }
        c->events = ev;
        c->capevents = cap;
    }
    task_event *e = &c->events[c->nevents++];
    e->id = t->id;
    snprintf(e->name, sizeof e->name, "%s/%s", t->package, t->function);
    e->state = (uint8_t)state;
    memcpy(e->node_id, t->node_id, sizeof e->node_id);
    memcpy(e->worker_id, t->worker_id, sizeof e->worker_id);
    e->submitted_at = t->submitted_at;
    e->started_at = t->started_at;
    e->ended_at = state == TASK_EV_PENDING ? 0 : prism_now_ms();
    e->detail = detail && *detail ? strndup(detail, 512) : NULL;
}

static json_t *event_json(const char *owner, const task_event *e)
{
    static const char *const states[] = {"PENDING", "FINISHED", "FAILED"};
    char id[PRISM_ID_HEX_LEN + 1];
    prism_id_to_hex(&e->id, id);
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:I}", "task_id", id, "name", e->name, "state",
                          states[e->state], "owner", owner, "submitted_at",
                          (json_int_t)e->submitted_at);
    if (e->node_id[0])
        json_object_set_new(j, "node_id", json_string(e->node_id));
    if (e->worker_id[0])
        json_object_set_new(j, "worker_id", json_string(e->worker_id));
    if (e->started_at)
        json_object_set_new(j, "started_at", json_integer(e->started_at));
    if (e->ended_at)
        json_object_set_new(j, "ended_at", json_integer(e->ended_at));
    if (e->detail)
        json_object_set_new(j, e->state == TASK_EV_PENDING ? "reason" : "error",
                            json_string(e->detail));
    return j;
}

/* Tasks queued past PENDING_AFTER_MS are reported once, with the pool's reason. */
static void report_waiting(prism_client *c, int64_t now)
{
    for (pool *p = c->pools; p; p = p->next)
        for (task_spec *t = p->queue; t; t = t->next)
            if (!t->reported_pending && now - t->submitted_ms > PENDING_AFTER_MS) {
                t->reported_pending = true;
                prism__event_task(c, t, TASK_EV_PENDING,
                                  p->pending_reason ? p->pending_reason : "queued for a worker");
            }
}

void prism__events_tick(prism_client *c)
{
    int64_t now = prism_mono_ms();
    if (now - c->last_pending_scan_ms >= PENDING_AFTER_MS) {
        c->last_pending_scan_ms = now;
        report_waiting(c, now);
    }
    if (!c->nevents || now - c->last_events_ms < FLUSH_EVERY_MS)
        return;
    c->last_events_ms = now;
    task_event *batch = c->events;
    size_t n = c->nevents;
    c->events = NULL;
    c->nevents = c->capevents = 0;
    pthread_mutex_unlock(&c->lock);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(list, event_json(c->self_addr, &batch[i]));
        free(batch[i].detail);
    }
    json_t *msg = json_pack("{s:s,s:o}", "owner", c->self_addr, "events", list);
    prism_bus_publish_json(c->bus, "prism.event.tasks", msg);
    json_decref(msg);
    free(batch);
    pthread_mutex_lock(&c->lock);
}
