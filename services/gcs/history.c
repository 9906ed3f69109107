/* The cluster's recent figures, for the dashboard's live charts (GET
 * /api/v1/metrics/history): every HISTORY_INTERVAL_MS the GCS samples what it
 * already knows (live nodes' resources, jobs, actors, task outcomes) and the
 * object stores' reports (prism.store.report), and keeps the last
 * HISTORY_SAMPLES of them in a fixed ring: a page opened now shows the last
 * ten minutes at once. Soft state: it starts empty after a restart. */
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "gcs.h"
#include "prism_subjects.h"
#include "prism_time.h"

#define HISTORY_SAMPLES 300 /* ten minutes at HISTORY_INTERVAL_MS */
#define STORES_MAX 1024     /* store reports kept at once (each with its series) */
#define STORE_SILENT_PERIODS 3

typedef struct sample {
    int64_t t; /* ms since the epoch */
    double cpu_used, cpu_total, gpu_used, gpu_total, memory_used, memory_total;
    double store_used, store_capacity, store_spilled;
    double nodes_alive, actors_alive, jobs_running, jobs_pending;
    double tasks_finished, tasks_failed; /* outcomes reported during the interval */
} sample;

/* The series, by name, in the answer's order. */
#define SERIES(X)                                                                                  \
    X(tasks_finished)                                                                              \
    X(tasks_failed)                                                                                \
    X(cpu_used)                                                                                    \
    X(cpu_total)                                                                                   \
    X(gpu_used)                                                                                    \
    X(gpu_total)                                                                                   \
    X(memory_used)                                                                                 \
    X(memory_total)                                                                                \
    X(store_used)                                                                                  \
    X(store_capacity)                                                                              \
    X(store_spilled)                                                                               \
    X(nodes_alive)                                                                                 \
    X(actors_alive)                                                                                \
    X(jobs_running)                                                                                \
    X(jobs_pending)

struct gcs_history {
    pthread_mutex_t lock; /* a leaf: taken with no other lock held */
    sample ring[HISTORY_SAMPLES];
    size_t head, count;
    uint64_t finished, failed; /* the task list's totals at the last sample */
    json_t *stores;            /* store URL -> its last report, with "expires" (mono ms) and
                                * "series" (its used bytes at each sample since it reports) */
};

int gcs_history_create(gcs *g)
{
    gcs_history *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    pthread_mutex_init(&h->lock, NULL);
    h->stores = json_object();
    g->history = h;
    return h->stores ? 0 : -1;
}

void gcs_history_destroy(gcs *g)
{
    gcs_history *h = g->history;
    if (!h)
        return;
    json_decref(h->stores);
    pthread_mutex_destroy(&h->lock);
    free(h);
    g->history = NULL;
}

static json_int_t field_int(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* What is kept of a store's report: its figures only (a report is network
 * input: nothing else in it may grow the GCS). */
static json_t *report_kept(json_t *msg, json_int_t period)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "capacity_bytes",
                     field_int(msg, "capacity_bytes"), "used_bytes", field_int(msg, "used_bytes"),
                     "spilled_bytes", field_int(msg, "spilled_bytes"), "objects",
                     field_int(msg, "objects"), "reported_at", (json_int_t)prism_now_ms(),
                     "expires", (json_int_t)(prism_mono_ms() + STORE_SILENT_PERIODS * period));
}

static void on_store_report(prism_bus *bus, const char *subject, const char *reply,
                            const char *data, size_t len, void *ud)
{
    gcs_history *h = ((gcs *)ud)->history;
    json_t *msg = json_loadb(data, len, 0, NULL);
    const char *url = json_string_value(json_object_get(msg, "url"));
    json_int_t period = field_int(msg, "period_ms");
    json_t *rep = NULL;
    if (url && *url && strlen(url) < 1024 && period > 0 && period <= 60000 &&
        json_is_integer(json_object_get(msg, "used_bytes")) &&
        json_is_integer(json_object_get(msg, "capacity_bytes")))
        rep = report_kept(msg, period);
    if (rep) {
        pthread_mutex_lock(&h->lock);
        json_t *old = json_object_get(h->stores, url);
        if (old)
            json_object_set(rep, "series", json_object_get(old, "series"));
        else
            json_object_set_new(rep, "series", json_array());
        if (old || json_object_size(h->stores) < STORES_MAX)
            json_object_set(h->stores, url, rep);
        pthread_mutex_unlock(&h->lock);
    }
    json_decref(rep);
    json_decref(msg);
}

int gcs_history_start(gcs *g)
{
    return prism_bus_subscribe(g->bus, PRISM_SUBJECT_STORE_REPORT, "gcs", on_store_report, g);
}

static double count_rows(gcs *g, const char *sql, const char *arg)
{
    sqlite3_stmt *st = gcs_db_prepare(g->db, sql);
    gcs_db_bind_text(st, 1, arg);
    double n = st && sqlite3_step(st) == SQLITE_ROW ? (double)sqlite3_column_int64(st, 0) : 0;
    gcs_db_finish(st);
    return n;
}

static double amount(json_t *res, const char *name)
{
    return json_number_value(json_object_get(res, name));
}

/* What the GCS's own state says (lock taken here). */
static void sample_cluster(gcs *g, sample *s)
{
    pthread_mutex_lock(&g->lock);
    for (gcs_node *n = g->nodes; n; n = n->next) {
        s->nodes_alive++;
        s->cpu_total += amount(n->resources, "CPU");
        s->cpu_used += amount(n->resources, "CPU") - amount(n->available, "CPU");
        s->gpu_total += amount(n->resources, "GPU");
        s->gpu_used += amount(n->resources, "GPU") - amount(n->available, "GPU");
        s->memory_total += amount(n->resources, "memory");
        s->memory_used += amount(n->resources, "memory") - amount(n->available, "memory");
    }
    const char *jobs = "SELECT count(*) FROM jobs WHERE state = ?";
    s->jobs_running = count_rows(g, jobs, "RUNNING");
    s->jobs_pending = count_rows(g, jobs, "PENDING");
    s->actors_alive = count_rows(g, "SELECT count(*) FROM actors WHERE state = ?", "ALIVE");
    pthread_mutex_unlock(&g->lock);
}

/* Appends a store's use to its series, which keeps HISTORY_SAMPLES. */
static void append_use(json_t *rep, json_int_t used)
{
    json_t *series = json_object_get(rep, "series");
    if (json_array_size(series) == HISTORY_SAMPLES)
        json_array_remove(series, 0);
    json_array_append_new(series, json_integer(used));
}

/* Forgets silent stores and sums the others. History lock held. */
static void sample_stores(gcs_history *h, sample *s)
{
    int64_t now = prism_mono_ms();
    const char *url;
    void *tmp;
    json_t *rep;
    json_object_foreach_safe(h->stores, tmp, url, rep) {
        if (json_integer_value(json_object_get(rep, "expires")) < now) {
            json_object_del(h->stores, url);
            continue;
        }
        json_int_t used = json_integer_value(json_object_get(rep, "used_bytes"));
        append_use(rep, used);
        s->store_used += (double)used;
        s->store_capacity += (double)json_integer_value(json_object_get(rep, "capacity_bytes"));
        s->store_spilled += (double)json_integer_value(json_object_get(rep, "spilled_bytes"));
    }
}

void gcs_history_cron(gcs *g)
{
    gcs_history *h = g->history;
    sample s = {.t = prism_now_ms()};
    uint64_t finished, failed;
    sample_cluster(g, &s);
    gcs_task_list_counts(g, &finished, &failed);
    pthread_mutex_lock(&h->lock);
    sample_stores(h, &s);
    s.tasks_finished = (double)(finished - h->finished);
    s.tasks_failed = (double)(failed - h->failed);
    h->finished = finished;
    h->failed = failed;
    if (h->count == HISTORY_SAMPLES) {
        h->head = (h->head + 1) % HISTORY_SAMPLES;
        h->count--;
    }
    h->ring[(h->head + h->count) % HISTORY_SAMPLES] = s;
    h->count++;
    pthread_mutex_unlock(&h->lock);
}

/* The live nodes' store URLs: [[node_id, name, store URL], ...]. */
static json_t *node_stores(gcs *g)
{
    json_t *list = json_array();
    pthread_mutex_lock(&g->lock);
    for (gcs_node *n = g->nodes; n; n = n->next)
        if (n->store_address)
            json_array_append_new(list, json_pack("[s,s,s]", n->id, n->name, n->store_address));
    pthread_mutex_unlock(&g->lock);
    return list;
}

/* The newest `n` values of a store's series. */
static json_t *series_tail(json_t *rep, size_t n)
{
    json_t *series = json_object_get(rep, "series"), *out = json_array();
    size_t len = json_array_size(series);
    for (size_t i = len > n ? len - n : 0; i < len; i++)
        json_array_append(out, json_array_get(series, i));
    return out;
}

/* Each live node's store, from its last report, with its use at each of the
 * newest `samples` samples it was in. History lock held. */
static json_t *stores_json(gcs_history *h, json_t *nodes, size_t samples)
{
    json_t *out = json_array(), *n;
    size_t i;
    json_array_foreach(nodes, i, n) {
        json_t *rep = json_object_get(h->stores, json_string_value(json_array_get(n, 2)));
        if (!rep)
            continue;
        json_t *o = json_pack("{s:O,s:O,s:O}", "node_id", json_array_get(n, 0), "name",
                              json_array_get(n, 1), "url", json_array_get(n, 2));
        static const char *const keys[] = {"capacity_bytes", "used_bytes", "spilled_bytes",
                                           "objects", "reported_at"};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            json_object_set_new(o, keys[k],
                                json_integer(json_integer_value(json_object_get(rep, keys[k]))));
        json_object_set_new(o, "used_series", series_tail(rep, samples));
        json_array_append_new(out, o);
    }
    return out;
}

/* The samples after `since`, as one array per series. History lock held. */
static json_t *series_json(gcs_history *h, int64_t since, json_t **times)
{
#define NEW_ARRAY(name) json_t *name = json_array();
    SERIES(NEW_ARRAY)
#undef NEW_ARRAY
    *times = json_array();
    for (size_t k = 0; k < h->count; k++) {
        const sample *s = &h->ring[(h->head + k) % HISTORY_SAMPLES];
        if (s->t <= since)
            continue;
        json_array_append_new(*times, json_integer(s->t));
#define APPEND(name) json_array_append_new(name, json_real(s->name));
        SERIES(APPEND)
#undef APPEND
    }
    json_t *series = json_object();
#define SET(name) json_object_set_new(series, #name, name);
    SERIES(SET)
#undef SET
    return series;
}

void gcs_api_metrics_history(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    int64_t since;
    if (prism_http_query_int(req, "since", 0, 0, INT64_MAX, &since) != 0)
        return;
    json_t *nodes = node_stores(g), *times;
    gcs_history *h = g->history;
    pthread_mutex_lock(&h->lock);
    json_t *series = series_json(h, since, &times);
    json_t *stores = stores_json(h, nodes, json_array_size(times));
    pthread_mutex_unlock(&h->lock);
    json_decref(nodes);
    prism_http_reply_json(req, 200,
                          json_pack("{s:i,s:i,s:o,s:o,s:o}", "interval_ms", HISTORY_INTERVAL_MS,
                                    "max_samples", HISTORY_SAMPLES, "t", times, "series", series,
                                    "stores", stores));
}
