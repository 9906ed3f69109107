/* The cluster's services (GET /api/v1/services): the GCS itself, and every
 * service that announces itself on prism.service.announce (schedulers, the
 * dataservice: prism_service.h's `announce`). Soft state, like history.c: a
 * service is ALIVE while its announcements come, SILENT once it missed
 * SILENT_PERIODS of them, and forgotten FORGET_MS later; after a GCS restart
 * the list fills again within one announcement period. Node agents and object
 * stores are not here: their nodes' heartbeats and store reports say how they
 * are (GET /api/v1/nodes, /api/v1/metrics/history). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gcs.h"
#include "prism_subjects.h"
#include "prism_time.h"

#define SERVICES_MAX 256
#define SILENT_PERIODS 3
#define FORGET_MS 60000
#define FIELD_MAX 512 /* longest string kept from an announcement */

struct gcs_services {
    pthread_mutex_t lock; /* a leaf */
    json_t *by_id;        /* id -> the last announcement, with "last_seen" (ms since the
                           * epoch) and "seen_mono" (removed from answers) */
    char url[512];        /* the GCS's own */
    int64_t started_at;
};

int gcs_services_create(gcs *g)
{
    gcs_services *s = calloc(1, sizeof *s);
    if (!s || !(s->by_id = json_object())) {
        free(s);
        return -1;
    }
    pthread_mutex_init(&s->lock, NULL);
    s->started_at = prism_now_ms();
    g->services = s;
    return 0;
}

void gcs_services_destroy(gcs *g)
{
    gcs_services *s = g->services;
    if (!s)
        return;
    json_decref(s->by_id);
    pthread_mutex_destroy(&s->lock);
    free(s);
    g->services = NULL;
}

void gcs_services_serving(gcs *g, const char *url)
{
    pthread_mutex_lock(&g->services->lock);
    snprintf(g->services->url, sizeof g->services->url, "%s", url);
    pthread_mutex_unlock(&g->services->lock);
}

/* Whether an announcement is one to keep: the fields every one has, of sane
 * size; figures are kept only when they are numbers. */
static json_t *checked(json_t *msg)
{
    const char *kind = json_string_value(json_object_get(msg, "service"));
    const char *id = json_string_value(json_object_get(msg, "id"));
    const char *addr = json_string_value(json_object_get(msg, "address"));
    if (!kind || !id || !addr || !*kind || !*id || strlen(kind) > 64 || strlen(id) > 64 ||
        strlen(addr) > FIELD_MAX || !json_is_integer(json_object_get(msg, "pid")) ||
        !json_is_integer(json_object_get(msg, "started_at")))
        return NULL;
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(msg, k, v) {
        if (json_is_string(v) ? strlen(json_string_value(v)) <= FIELD_MAX : json_is_number(v))
            json_object_set(out, k, v);
    }
    return out;
}

static void on_announce(prism_bus *bus, const char *subject, const char *reply, const char *data,
                        size_t len, void *ud)
{
    gcs_services *s = ((gcs *)ud)->services;
    json_t *msg = json_loadb(data, len, 0, NULL);
    json_t *doc = msg ? checked(msg) : NULL;
    json_decref(msg);
    if (!doc)
        return;
    json_object_set_new(doc, "last_seen", json_integer(prism_now_ms()));
    json_object_set_new(doc, "seen_mono", json_integer(prism_mono_ms()));
    char id[72];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(doc, "id")));
    pthread_mutex_lock(&s->lock);
    if (json_object_get(s->by_id, id) || json_object_size(s->by_id) < SERVICES_MAX)
        json_object_set(s->by_id, id, doc);
    pthread_mutex_unlock(&s->lock);
    json_decref(doc);
}

int gcs_services_start(gcs *g)
{
    return prism_bus_subscribe(g->bus, PRISM_SUBJECT_SERVICE_ANNOUNCE, NULL, on_announce, g);
}

/* The GCS first, then by service and start. */
static int by_kind_then_start(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    const char *p = json_string_value(json_object_get(x, "service"));
    const char *q = json_string_value(json_object_get(y, "service"));
    int c = strcmp(p, "gcs") ? strcmp(q, "gcs") ? strcmp(p, q) : 1 : -1;
    if (c)
        return c;
    json_int_t s1 = json_integer_value(json_object_get(x, "started_at"));
    json_int_t s2 = json_integer_value(json_object_get(y, "started_at"));
    return s1 < s2 ? -1 : s1 > s2;
}

void gcs_api_services(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    gcs_services *s = g->services;
    int64_t now = prism_mono_ms();
    json_t *list = json_array();
    pthread_mutex_lock(&s->lock);
    json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I}", "service", "gcs", "id",
                                          "gcs", "address", s->url, "pid", (json_int_t)getpid(),
                                          "started_at", (json_int_t)s->started_at, "last_seen",
                                          (json_int_t)prism_now_ms()));
    const char *id;
    json_t *doc;
    void *tmp;
    json_object_foreach_safe(s->by_id, tmp, id, doc) {
        int64_t silent = now - json_integer_value(json_object_get(doc, "seen_mono"));
        if (silent > FORGET_MS) {
            json_object_del(s->by_id, id);
            continue;
        }
        json_t *row = json_deep_copy(doc);
        json_object_del(row, "seen_mono");
        json_object_set_new(
            row, "state",
            json_string(silent > SILENT_PERIODS * PRISM_SERVICE_ANNOUNCE_MS ? "SILENT" : "ALIVE"));
        json_array_append_new(list, row);
    }
    pthread_mutex_unlock(&s->lock);
    json_object_set_new(json_array_get(list, 0), "state", json_string("ALIVE"));
    size_t n = json_array_size(list);
    json_t **rows = malloc(n * sizeof *rows);
    for (size_t i = 0; rows && i < n; i++)
        rows[i] = json_incref(json_array_get(list, i));
    if (rows) {
        qsort(rows, n, sizeof *rows, by_kind_then_start);
        json_array_clear(list);
        for (size_t i = 0; i < n; i++)
            json_array_append_new(list, rows[i]);
    }
    free(rows);
    prism_http_reply_json(req, 200, json_pack("{s:o}", "services", list));
}
