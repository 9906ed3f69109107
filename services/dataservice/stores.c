/* The object stores' memory, for the default memory budget: the node
 * agents' reports (prism.sched.node, which the schedulers follow too) name
 * each node's store; a periodic job asks each for its capacity
 * (GET /api/v1/stats). The reports also give each node's CPUs, which
 * the executor cuts a read's last round by. Soft state: a node silent for
 * STORE_SILENT_MS is forgotten. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataservice.h"
#include "prism_httpc.h"
#include "prism_log.h"
#include "prism_subjects.h"
#include "prism_time.h"

#define STORE_SILENT_MS 10000
#define STATS_TIMEOUT_MS 1000

struct ds_store {
    char node_id[64];
    char *url;
    int64_t seen_mono;
    int64_t capacity;  /* 0 until asked */
    double cpus, gpus; /* the node's CPUs and GPUs (its report's total) */
    struct ds_store *next;
};

/* prism.sched.node: {node_id, store_address, total, ...} every heartbeat. */
static void on_node(prism_bus *bus, const char *subject, const char *reply, const char *data,
                    size_t len, void *ud)
{
    dataservice *s = ud;
    json_t *doc = json_loadb(data, len, 0, NULL);
    const char *node = json_string_value(json_object_get(doc, "node_id"));
    const char *url = json_string_value(json_object_get(doc, "store_address"));
    if (node && url && *url && strlen(node) < sizeof((ds_store *)0)->node_id) {
        pthread_mutex_lock(&s->lock);
        ds_store *st = s->stores;
        while (st && strcmp(st->node_id, node))
            st = st->next;
        if (!st && (st = calloc(1, sizeof *st))) {
            snprintf(st->node_id, sizeof st->node_id, "%s", node);
            st->next = s->stores;
            s->stores = st;
        }
        if (st && (!st->url || strcmp(st->url, url))) {
            free(st->url);
            st->url = strdup(url);
            st->capacity = 0;
        }
        if (st) {
            st->seen_mono = prism_mono_ms();
            json_t *total = json_object_get(doc, "total");
            st->cpus = json_number_value(json_object_get(total, "CPU"));
            st->gpus = json_number_value(json_object_get(total, "GPU"));
        }
        pthread_mutex_unlock(&s->lock);
    }
    json_decref(doc);
}

int ds_stores_start(dataservice *s)
{
    return s->bus ? prism_bus_subscribe(s->bus, PRISM_SUBJECT_SCHED_NODE, NULL, on_node, s) : 0;
}

/* One store's capacity in bytes, or 0 when it does not answer. */
static int64_t ask_capacity(const char *url, const char *token)
{
    prism_httpc *h = NULL;
    json_t *doc = NULL;
    long status = 0;
    char err[256];
    int64_t cap = 0;
    if (prism_httpc_create(&h, url, token) == 0 &&
        prism_httpc_json(h, "GET", "/api/v1/stats", NULL, STATS_TIMEOUT_MS, &status, &doc, err,
                         sizeof err) == 0 &&
        status == 200)
        cap = json_integer_value(json_object_get(doc, "capacity_bytes"));
    json_decref(doc);
    prism_httpc_destroy(h);
    return cap;
}

void ds_stores_cron(dataservice *s)
{
    /* The stores not asked yet (a store's size does not change), asked
     * outside the lock. */
    char *urls[64];
    size_t n = 0;
    int64_t now = prism_mono_ms();
    pthread_mutex_lock(&s->lock);
    for (ds_store **pp = &s->stores; *pp;) {
        ds_store *st = *pp;
        if (now - st->seen_mono > STORE_SILENT_MS) {
            *pp = st->next;
            free(st->url);
            free(st);
            continue;
        }
        if (st->capacity == 0 && n < 64)
            urls[n++] = strdup(st->url);
        pp = &st->next;
    }
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < n; i++) {
        int64_t cap = urls[i] ? ask_capacity(urls[i], s->cfg.token) : 0;
        pthread_mutex_lock(&s->lock);
        for (ds_store *st = s->stores; st && cap > 0; st = st->next)
            if (urls[i] && !strcmp(st->url, urls[i]))
                st->capacity = cap;
        pthread_mutex_unlock(&s->lock);
        free(urls[i]);
    }
}

int64_t ds_stores_capacity(dataservice *s)
{
    int64_t total = 0;
    for (ds_store *st = s->stores; st; st = st->next)
        total += st->capacity;
    return total;
}

double ds_stores_cpus(dataservice *s, double *gpus)
{
    double total = 0;
    *gpus = 0;
    for (ds_store *st = s->stores; st; st = st->next) {
        total += st->cpus;
        *gpus += st->gpus;
    }
    return total;
}

void ds_stores_free(dataservice *s)
{
    for (ds_store *st = s->stores, *next; st; st = next) {
        next = st->next;
        free(st->url);
        free(st);
    }
    s->stores = NULL;
}
