/* The cluster's recent tasks: every owner publishes its tasks' outcomes on
 * `prism.event.tasks` in batches; the GCS keeps the newest --task-list-size
 * of them in memory (not in SQLite: they are for looking, not for recovery). */
#include <stdlib.h>
#include <string.h>

#include "gcs.h"
#include "prism_subjects.h"

struct gcs_task_list {
    pthread_mutex_t lock;
    json_t *by_id;    /* task id -> its latest record */
    char (*ring)[64]; /* ids, oldest first from `head` */
    size_t cap, head, count;
    uint64_t dropped; /* events owners left out (they send failures, and successes up to a rate) */
    uint64_t finished, failed; /* outcomes reported since start (dropped successes counted) */
};

int gcs_task_list_create(gcs *g)
{
    gcs_task_list *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    t->cap = g->cfg.task_list_size > 0 ? (size_t)g->cfg.task_list_size : 1;
    t->ring = calloc(t->cap, sizeof *t->ring);
    t->by_id = json_object();
    pthread_mutex_init(&t->lock, NULL);
    g->task_list = t;
    return t->ring && t->by_id ? 0 : -1;
}

void gcs_task_list_destroy(gcs *g)
{
    gcs_task_list *t = g->task_list;
    if (!t)
        return;
    json_decref(t->by_id);
    free(t->ring);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static void count_outcome(gcs_task_list *t, json_t *ev)
{
    const char *state = json_string_value(json_object_get(ev, "state"));
    if (state && !strcmp(state, "FINISHED"))
        t->finished++;
    else if (state && !strcmp(state, "FAILED"))
        t->failed++;
}

static void record(gcs_task_list *t, json_t *ev)
{
    const char *id = json_string_value(json_object_get(ev, "task_id"));
    if (!id || strlen(id) >= sizeof t->ring[0])
        return;
    count_outcome(t, ev);
    json_t *known = json_object_get(t->by_id, id);
    if (known) { /* a later state of the same task */
        json_object_update(known, ev);
        return;
    }
    if (t->count == t->cap) { /* forget the oldest */
        json_object_del(t->by_id, t->ring[t->head]);
        t->head = (t->head + 1) % t->cap;
        t->count--;
    }
    memcpy(t->ring[(t->head + t->count) % t->cap], id, strlen(id) + 1);
    t->count++;
    json_object_set(t->by_id, id, ev);
}

static void on_tasks(prism_bus *bus, const char *subject, const char *reply, const char *data,
                     size_t len, void *ud)
{
    gcs *g = ud;
    json_t *msg = json_loadb(data, len, 0, NULL);
    json_t *events = json_object_get(msg, "events");
    size_t i;
    json_t *ev;
    json_t *dropped = json_object_get(msg, "dropped");
    json_t *job = json_object_get(msg, "job_id"); /* the owner is that job's driver */
    pthread_mutex_lock(&g->task_list->lock);
    json_array_foreach(events, i, ev) {
        if (!json_is_object(ev))
            continue;
        if (json_is_string(job) && json_string_length(job) <= 128)
            json_object_set(ev, "job_id", job);
        record(g->task_list, ev);
    }
    if (json_is_integer(dropped) && json_integer_value(dropped) > 0) {
        g->task_list->dropped += (uint64_t)json_integer_value(dropped);
        g->task_list->finished += (uint64_t)json_integer_value(dropped);
    }
    pthread_mutex_unlock(&g->task_list->lock);
    json_decref(msg);
}

int gcs_task_list_start(gcs *g)
{
    return prism_bus_subscribe(g->bus, PRISM_SUBJECT_EVENT_TASKS, "gcs", on_tasks, g);
}

void gcs_task_list_each(gcs *g, bool (*fn)(json_t *rec, void *ud), void *ud)
{
    gcs_task_list *t = g->task_list;
    pthread_mutex_lock(&t->lock);
    for (size_t k = t->count; k > 0; k--) {
        json_t *rec = json_object_get(t->by_id, t->ring[(t->head + k - 1) % t->cap]);
        if (rec && !fn(rec, ud))
            break;
    }
    pthread_mutex_unlock(&t->lock);
}

void gcs_task_list_counts(gcs *g, uint64_t *finished, uint64_t *failed)
{
    pthread_mutex_lock(&g->task_list->lock);
    *finished = g->task_list->finished;
    *failed = g->task_list->failed;
    pthread_mutex_unlock(&g->task_list->lock);
}

static bool valid_state(const char *s)
{
    return !s || !strcmp(s, "PENDING") || !strcmp(s, "FINISHED") || !strcmp(s, "FAILED");
}

void gcs_api_tasks_list(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    int64_t limit;
    const char *state = prism_http_query(req, "state");
    if (prism_http_query_int(req, "limit", 100, 1, 1000, &limit) != 0)
        return;
    if (!valid_state(state)) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "state must be PENDING, FINISHED or FAILED");
        return;
    }
    gcs_task_list *t = g->task_list;
    json_t *list = json_array();
    pthread_mutex_lock(&t->lock);
    for (size_t k = t->count; k > 0 && (int64_t)json_array_size(list) < limit; k--) {
        json_t *rec = json_object_get(t->by_id, t->ring[(t->head + k - 1) % t->cap]);
        const char *s = json_string_value(json_object_get(rec, "state"));
        if (rec && (!state || (s && !strcmp(s, state))))
            json_array_append_new(list, json_deep_copy(rec));
    }
    size_t total = t->count;
    uint64_t dropped = t->dropped;
    pthread_mutex_unlock(&t->lock);
    prism_http_reply_json(req, 200,
                          json_pack("{s:o,s:I,s:I}", "tasks", list, "kept", (json_int_t)total,
                                    "dropped", (json_int_t)dropped));
}
