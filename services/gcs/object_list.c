/* The cluster's objects: every owner (driver, worker, the GCS's own client)
 * reports its ownership table on `prism.event.objects` when it changes and
 * every few seconds while it holds objects; the GCS keeps the latest report
 * of each owner in memory (soft state, like the task list) for
 * GET /api/v1/objects. An owner that reports an empty table, or goes silent
 * for three of its report periods (it exited or died), is forgotten. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs.h"
#include "prism_subjects.h"
#include "prism_time.h"

#define SILENT_PERIODS 3
#define DEFAULT_PERIOD_MS 2000 /* for a report that does not say */

struct gcs_object_list {
    pthread_mutex_t lock;
    json_t *owners; /* owner -> {"objects": [...], "total": N, "expires": monotonic ms} */
    char own[128];  /* the GCS's own client's owner name, listed as "gcs" */
};

static double count_owners(void *ud)
{
    gcs_object_list *l = ((gcs *)ud)->object_list;
    pthread_mutex_lock(&l->lock);
    size_t n = json_object_size(l->owners);
    pthread_mutex_unlock(&l->lock);
    return (double)n;
}

static double count_objects(void *ud)
{
    gcs_object_list *l = ((gcs *)ud)->object_list;
    const char *owner;
    json_t *rep;
    double n = 0;
    pthread_mutex_lock(&l->lock);
    json_object_foreach(l->owners, owner, rep) {
        n += (double)json_integer_value(json_object_get(rep, "total"));
    }
    pthread_mutex_unlock(&l->lock);
    return n;
}

int gcs_object_list_create(gcs *g)
{
    gcs_object_list *l = calloc(1, sizeof *l);
    if (!l)
        return -1;
    l->owners = json_object();
    pthread_mutex_init(&l->lock, NULL);
    g->object_list = l;
    prism_metrics_gauge_fn(g->metrics, "prism_gcs_object_owners", "Owners reporting objects", NULL,
                           count_owners, g);
    prism_metrics_gauge_fn(g->metrics, "prism_gcs_objects", "Objects their owners report holding",
                           NULL, count_objects, g);
    return l->owners ? 0 : -1;
}

void gcs_object_list_destroy(gcs *g)
{
    gcs_object_list *l = g->object_list;
    if (!l)
        return;
    json_decref(l->owners);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

void gcs_object_list_set_own(gcs *g, const char *owner)
{
    pthread_mutex_lock(&g->object_list->lock);
    snprintf(g->object_list->own, sizeof g->object_list->own, "%s", owner);
    pthread_mutex_unlock(&g->object_list->lock);
}

static void on_objects(prism_bus *bus, const char *subject, const char *reply, const char *data,
                       size_t len, void *ud)
{
    gcs_object_list *l = ((gcs *)ud)->object_list;
    json_t *msg = json_loadb(data, len, 0, NULL);
    const char *owner = json_string_value(json_object_get(msg, "owner"));
    const char *node = json_string_value(json_object_get(msg, "node_id"));
    json_t *objects = json_object_get(msg, "objects"), *o;
    json_int_t total = json_integer_value(json_object_get(msg, "total"));
    json_int_t period = json_integer_value(json_object_get(msg, "period_ms"));
    if (!owner || !*owner || !json_is_array(objects)) {
        json_decref(msg);
        return;
    }
    if (total < (json_int_t)json_array_size(objects))
        total = (json_int_t)json_array_size(objects);
    if (period <= 0 || period > 60000)
        period = DEFAULT_PERIOD_MS;
    pthread_mutex_lock(&l->lock);
    const char *name = strcmp(owner, l->own) ? owner : "gcs";
    size_t i;
    /* Each entry names its owner, so a page of the union stands on its own. */
    json_array_foreach(objects, i, o) {
        json_object_set_new(o, "owner", json_string(name));
        if (node && *node)
            json_object_set_new(o, "owner_node_id", json_string(node));
    }
    if (total == 0)
        json_object_del(l->owners, name);
    else
        json_object_set_new(l->owners, name,
                            json_pack("{s:O,s:I,s:I}", "objects", objects, "total", total,
                                      "expires",
                                      (json_int_t)(prism_mono_ms() + SILENT_PERIODS * period)));
    pthread_mutex_unlock(&l->lock);
    json_decref(msg);
}

int gcs_object_list_start(gcs *g)
{
    return prism_bus_subscribe(g->bus, PRISM_SUBJECT_EVENT_OBJECTS, "gcs", on_objects, g);
}

void gcs_object_list_cron(gcs *g)
{
    gcs_object_list *l = g->object_list;
    int64_t now = prism_mono_ms();
    const char *owner;
    void *tmp;
    json_t *rep;
    pthread_mutex_lock(&l->lock);
    json_object_foreach_safe(l->owners, tmp, owner, rep) {
        if (json_integer_value(json_object_get(rep, "expires")) < now)
            json_object_del(l->owners, owner);
    }
    pthread_mutex_unlock(&l->lock);
}

static bool field_is(json_t *o, const char *key, const char *want)
{
    const char *v = json_string_value(json_object_get(o, key));
    return !want || (v && !strcmp(v, want));
}

static json_int_t size_of(json_t *o) { return json_integer_value(json_object_get(o, "size")); }

static int by_size_desc(const void *a, const void *b)
{
    json_int_t x = size_of(*(json_t *const *)a), y = size_of(*(json_t *const *)b);
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Appends `o` (borrowed) to the growing array `*all`. -1 when out of memory. */
static int keep(json_t ***all, size_t *n, size_t *cap, json_t *o)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        json_t **grown = realloc(*all, c * sizeof *grown);
        if (!grown)
            return -1;
        *all = grown;
        *cap = c;
    }
    (*all)[(*n)++] = o;
    return 0;
}

void gcs_api_objects_list(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    gcs_object_list *l = g->object_list;
    int64_t limit;
    const char *owner = prism_http_query(req, "owner"), *node = prism_http_query(req, "node_id");
    const char *state = prism_http_query(req, "state"), *sort = prism_http_query(req, "sort");
    if (prism_http_query_int(req, "limit", 100, 1, 1000, &limit) != 0)
        return;
    if (state && strcmp(state, "PENDING") && strcmp(state, "READY") && strcmp(state, "FAILED")) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "state must be PENDING, READY or FAILED");
        return;
    }
    if (sort && strcmp(sort, "size")) {
        prism_http_reply_error(req, 400, "invalid_argument", "sort must be size");
        return;
    }
    json_t *list = json_array(), *rep, *o;
    json_t **all = NULL; /* with sort: every match (borrowed), largest first once sorted */
    size_t nall = 0, cap = 0;
    json_int_t total = 0, unreported = 0;
    const char *name;
    size_t i;
    int rc = 0;
    pthread_mutex_lock(&l->lock);
    json_object_foreach(l->owners, name, rep) {
        if (owner && strcmp(owner, name))
            continue;
        json_t *objects = json_object_get(rep, "objects");
        unreported += json_integer_value(json_object_get(rep, "total")) -
                      (json_int_t)json_array_size(objects);
        json_array_foreach(objects, i, o) {
            if (!field_is(o, "state", state) || !field_is(o, "node_id", node))
                continue;
            total++;
            if (sort && rc == 0)
                rc = keep(&all, &nall, &cap, o);
            else if (!sort && (int64_t)json_array_size(list) < limit)
                json_array_append_new(list, json_deep_copy(o));
        }
    }
    if (sort && rc == 0) {
        if (nall)
            qsort(all, nall, sizeof *all, by_size_desc);
        for (size_t k = 0; k < nall && (int64_t)k < limit; k++)
            json_array_append_new(list, json_deep_copy(all[k]));
    }
    pthread_mutex_unlock(&l->lock);
    free(all);
    if (rc != 0) {
        json_decref(list);
        prism_http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    prism_http_reply_json(req, 200,
                          json_pack("{s:o,s:I,s:I}", "objects", list, "total", total, "unreported",
                                    unreported));
}
