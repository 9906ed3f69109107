/* The cluster's resource view, built from the node agents' reports.
 *
 * prism.sched.node  {node_id, name, total, available, workers_idle, time}
 *   replaces what this scheduler knows of the node.
 * prism.event.node  {node_id, state: "DEAD"}  (from the GCS)
 *   drops the node at once; a report of that incarnation arriving late (it
 *   was in flight) is ignored for a while, so a dead node does not come back.
 * A node silent past --node-timeout-ms is dropped by the cron, and one whose
 * lease subject has no subscriber (its agent exited) at once. */
#include <stdlib.h>
#include <string.h>

#include "prism_log.h"
#include "prism_subjects.h"
#include "prism_time.h"
#include "scheduler.h"

#define TOMB_MS 60000

sched_node *sched_node_find(scheduler *s, const char *id)
{
    for (sched_node *n = s->nodes; n; n = n->next)
        if (!strcmp(n->id, id))
            return n;
    return NULL;
}

static void node_free(sched_node *n)
{
    free(n->name);
    json_decref(n->total);
    json_decref(n->available);
    json_decref(n->bundles);
    free(n);
}

static void node_remove(scheduler *s, sched_node *n)
{
    for (sched_node **p = &s->nodes; *p; p = &(*p)->next) {
        if (*p == n) {
            *p = n->next;
            node_free(n);
            return;
        }
    }
}

void sched_view_free(scheduler *s)
{
    while (s->nodes)
        node_remove(s, s->nodes);
}

size_t sched_node_count(scheduler *s)
{
    size_t n = 0;
    for (sched_node *node = s->nodes; node; node = node->next)
        n++;
    return n;
}

static bool is_tomb(scheduler *s, const char *id)
{
    int64_t now = prism_mono_ms();
    for (size_t i = 0; i < SCHED_TOMBS; i++)
        if (s->tombs[i].until_mono > now && !strcmp(s->tombs[i].id, id))
            return true;
    return false;
}

static void add_tomb(scheduler *s, const char *id)
{
    sched_tomb *t = &s->tombs[s->next_tomb++ % SCHED_TOMBS];
    snprintf(t->id, sizeof t->id, "%s", id);
    t->until_mono = prism_mono_ms() + TOMB_MS;
}

/* The node of a report, created on first sight. NULL for a dead incarnation. */
static sched_node *report_node(scheduler *s, const char *id, const char *name)
{
    sched_node *n = sched_node_find(s, id);
    if (n || is_tomb(s, id))
        return n;
    n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    snprintf(n->id, sizeof n->id, "%s", id);
    n->next = s->nodes;
    s->nodes = n;
    LOG_INFO("node %s (%s) joined the view", id, name);
    return n;
}

static void apply_report(scheduler *s, json_t *msg)
{
    const char *id = json_string_value(json_object_get(msg, "node_id"));
    const char *name = json_string_value(json_object_get(msg, "name"));
    json_t *total = json_object_get(msg, "total"), *avail = json_object_get(msg, "available");
    prism_id parsed;
    if (!id || prism_id_from_hex(&parsed, id) != 0 || !name || sched_res_check(total) ||
        sched_res_check(avail)) {
        LOG_DEBUG("ignored a malformed node report");
        return;
    }
    sched_node *n = report_node(s, id, name);
    if (!n)
        return;
    char *copy = strdup(name);
    if (copy) {
        free(n->name);
        n->name = copy;
    }
    json_decref(n->total);
    json_decref(n->available);
    n->total = json_deep_copy(total);
    n->available = json_deep_copy(avail);
    json_t *bundles = json_object_get(msg, "bundles");
    json_decref(n->bundles);
    n->bundles = json_is_array(bundles) ? json_deep_copy(bundles) : json_array();
    n->workers_idle = json_integer_value(json_object_get(msg, "workers_idle"));
    n->last_report_ms = prism_now_ms();
    n->last_report_mono = prism_mono_ms();
}

static void on_report(prism_bus *bus, const char *subject, const char *reply, const char *data,
                      size_t len, void *ud)
{
    scheduler *s = ud;
    json_t *msg = json_loadb(data, len, 0, NULL);
    if (json_is_object(msg)) {
        pthread_mutex_lock(&s->lock);
        apply_report(s, msg);
        sched_waitq_unstick(s); /* room may have come for what waits */
        pthread_mutex_unlock(&s->lock);
    }
    json_decref(msg);
}

static void on_node_event(prism_bus *bus, const char *subject, const char *reply, const char *data,
                          size_t len, void *ud)
{
    scheduler *s = ud;
    json_t *msg = json_loadb(data, len, 0, NULL);
    const char *id = json_string_value(json_object_get(msg, "node_id"));
    const char *state = json_string_value(json_object_get(msg, "state"));
    if (id && state && !strcmp(state, "DEAD")) {
        pthread_mutex_lock(&s->lock);
        add_tomb(s, id);
        sched_node *n = sched_node_find(s, id);
        if (n) {
            LOG_INFO("node %s (%s) is DEAD: dropped from the view", id, n->name);
            node_remove(s, n);
        }
        sched_waitq_unstick(s); /* what waits may have become infeasible */
        pthread_mutex_unlock(&s->lock);
    }
    json_decref(msg);
}

void sched_view_forget(scheduler *s, const char *id)
{
    pthread_mutex_lock(&s->lock);
    sched_node *n = sched_node_find(s, id);
    if (n) {
        LOG_INFO("node %s (%s) does not answer (no subscriber): dropped from the view", id,
                 n->name);
        node_remove(s, n);
    }
    pthread_mutex_unlock(&s->lock);
}

int sched_view_start(scheduler *s)
{
    if (prism_bus_subscribe(s->bus, PRISM_SUBJECT_SCHED_NODE, NULL, on_report, s) != 0 ||
        prism_bus_subscribe(s->bus, PRISM_SUBJECT_EVENT_NODE, NULL, on_node_event, s) != 0)
        return -1;
    return 0;
}

void sched_view_cron(scheduler *s)
{
    int64_t now = prism_mono_ms();
    pthread_mutex_lock(&s->lock);
    for (sched_node *n = s->nodes, *next; n; n = next) {
        next = n->next;
        if (now - n->last_report_mono > s->cfg.node_timeout_ms) {
            LOG_WARN("node %s (%s) sent no report for %.1f s: dropped from the view", n->id,
                     n->name, (double)(now - n->last_report_mono) / 1000.0);
            node_remove(s, n);
        }
    }
    pthread_mutex_unlock(&s->lock);
}

static int by_name(const void *a, const void *b)
{
    const sched_node *x = *(sched_node *const *)a, *y = *(sched_node *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->id, y->id);
}

/* Copies, not references: the answer is written out after the lock is dropped. */
static json_t *node_json(const sched_node *n)
{
    return json_pack("{s:s,s:s,s:o,s:o,s:I,s:I,s:o}", "node_id", n->id, "name", n->name, "total",
                     json_deep_copy(n->total), "available", json_deep_copy(n->available),
                     "workers_idle", (json_int_t)n->workers_idle, "last_report",
                     (json_int_t)n->last_report_ms, "bundles",
                     n->bundles ? json_deep_copy(n->bundles) : json_array());
}

json_t *sched_view_json(scheduler *s)
{
    size_t count = sched_node_count(s), i = 0;
    sched_node **sorted = calloc(count ? count : 1, sizeof *sorted);
    json_t *list = json_array();
    if (!sorted || !list) {
        free(sorted);
        json_decref(list);
        return NULL;
    }
    for (sched_node *n = s->nodes; n; n = n->next)
        sorted[i++] = n;
    qsort(sorted, count, sizeof *sorted, by_name);
    for (i = 0; i < count; i++)
        json_array_append_new(list, node_json(sorted[i]));
    free(sorted);
    return list;
}
