/* prism-objectstore: the node's shared-memory object store, on the service
 * skeleton (prism_service.h).
 *
 * One state struct (objectstore.h), one epoll loop on the main thread for the
 * Unix socket with a periodic job for metrics, the HTTP server's threads for
 * REST and transfers, and NATS events for object locations. See
 * docs/objectstore.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objectstore.h"
#include "prism_log.h"
#include "prism_service.h"
#include "prism_subjects.h"

#define STORE_REPORT_MS 2000

static const char *const event_subjects[] = {
    [OS_EV_ADDED] = PRISM_SUBJECT_OBJECT_ADDED,
    [OS_EV_REMOVED] = PRISM_SUBJECT_OBJECT_REMOVED,
    [OS_EV_SPILLED] = PRISM_SUBJECT_OBJECT_SPILLED,
};

/* Runs with store.mu held, on whichever thread changed the object. */
static void on_event(void *ud, os_event ev, const os_object *o)
{
    objectstore *os = ud;
    if (ev == OS_EV_ADDED)
        os_server_sealed(os, o);
    /* An event is a NATS message to every store of the cluster, and its
     * readers care about two things only: large copies made by pulls, which
     * serve later pulls (os_copies.c; the first copy is the source pulls are
     * given anyway), and objects some other store copied, whose deletion
     * drops those copies. Nothing else is announced, so that puts stay local. */
    if (!os->bus || !((o->pulled && o->data_size >= OS_COPIES_MIN_BYTES) || o->served))
        return;
    char hex[PRISM_OBJECT_ID_HEX_LEN + 1];
    prism_object_id_to_hex(&o->id, hex);
    json_t *j = json_pack("{s:s, s:s, s:I}", "object_id", hex, "node_id", os->node_id, "size",
                          (json_int_t)o->data_size);
    /* where the copy is, for the stores pulling it next (os_copies.c) */
    if (j && os->url)
        json_object_set_new(j, "store_address", json_string(os->url));
    /* Only a delete removes a primary copy (evictions take secondary ones):
     * its owner freed the object, and other stores drop their copies. */
    if (j && ev == OS_EV_REMOVED && o->pinned)
        json_object_set_new(j, "primary", json_true());
    if (j)
        prism_bus_publish_json(os->bus, event_subjects[ev], j);
    json_decref(j);
}

/* A spill or restore ended on the store's I/O thread (with store.mu held). */
static void on_moved(void *ud) { os_server_moved(ud); }

/* Another node's primary copy was deleted: the object is freed, so a copy
 * pulled here (secondary) would only wait for eviction; it goes now. A
 * primary copy here is left alone: its owner deletes it. */
static void on_removed(prism_bus *bus, const char *subject, const char *reply, const char *data,
                       size_t len, void *ud)
{
    objectstore *os = ud;
    json_t *ev = json_loadb(data, len, 0, NULL);
    const char *hex = json_string_value(json_object_get(ev, "object_id"));
    const char *node = json_string_value(json_object_get(ev, "node_id"));
    prism_object_id id;
    if (json_is_true(json_object_get(ev, "primary")) && hex && node &&
        strcmp(node, os->node_id) != 0 && prism_object_id_from_hex(&id, hex) == 0) {
        pthread_mutex_lock(&os->store.mu);
        os_object *o = os_map_get(&os->store.objects, &id);
        if (o && o->state == OS_OBJ_SEALED && !o->pinned) {
            os_delete(&os->store, &id);
            LOG_DEBUG("dropped the copy of %s: its primary copy was deleted on node %s", hex, node);
        }
        pthread_mutex_unlock(&os->store.mu);
    }
    json_decref(ev);
}

/* --- metrics --- */

static double gauge(objectstore *os, size_t field)
{
    prism_store_stats s;
    pthread_mutex_lock(&os->store.mu);
    os_stats(&os->store, &s);
    pthread_mutex_unlock(&os->store.mu);
    uint64_t v[sizeof s / sizeof(uint64_t)];
    memcpy(v, &s, sizeof v);
    return (double)v[field / sizeof(uint64_t)];
}

#define GAUGE_FN(name, field)                                                                      \
    static double name(void *ud) { return gauge(ud, offsetof(prism_store_stats, field)); }
GAUGE_FN(g_used, used_bytes)
GAUGE_FN(g_capacity, capacity_bytes)
GAUGE_FN(g_objects, objects)
GAUGE_FN(g_in_memory, objects_in_memory)
GAUGE_FN(g_spilled_bytes, spilled_bytes)
GAUGE_FN(g_spilled_objects, spilled_objects)
GAUGE_FN(g_spill_files, spill_files)
GAUGE_FN(g_clients, clients)

static double g_disk_jobs(void *ud)
{
    objectstore *os = ud;
    pthread_mutex_lock(&os->store.mu);
    double n = (double)os->store.io_pending;
    pthread_mutex_unlock(&os->store.mu);
    return n;
}

static void metrics_init(objectstore *os)
{
    prism_metrics *m = os->metrics;
    static const struct {
        const char *name, *help;
        double (*fn)(void *);
    } gauges[] = {
        {"prism_objectstore_used_bytes", "Bytes allocated in the arena", g_used},
        {"prism_objectstore_capacity_bytes", "Size of the arena", g_capacity},
        {"prism_objectstore_objects", "Objects in the store, spilled ones included", g_objects},
        {"prism_objectstore_objects_in_memory", "Objects with a copy in the arena", g_in_memory},
        {"prism_objectstore_spilled_bytes", "Bytes of objects only on disk", g_spilled_bytes},
        {"prism_objectstore_spilled_objects", "Objects only on disk", g_spilled_objects},
        {"prism_objectstore_spill_files", "Spill files on disk", g_spill_files},
        {"prism_objectstore_clients", "Connected Unix-socket clients", g_clients},
        {"prism_objectstore_disk_jobs",
         "Spills and restores queued or running on the I/O thread (creates and gets wait for "
         "them)",
         g_disk_jobs},
    };
    for (size_t i = 0; i < sizeof gauges / sizeof gauges[0]; i++)
        prism_metrics_gauge_fn(m, gauges[i].name, gauges[i].help, NULL, gauges[i].fn, os);
    os->m_evictions = prism_metrics_counter(m, "prism_objectstore_evictions_total",
                                            "Secondary copies evicted for space", NULL);
    os->m_spills = prism_metrics_counter(m, "prism_objectstore_spills_total",
                                         "Objects written to spill files", NULL);
    os->m_spilled_bytes = prism_metrics_counter(m, "prism_objectstore_spilled_bytes_total",
                                                "Bytes written to spill files", NULL);
    os->m_restores = prism_metrics_counter(m, "prism_objectstore_restores_total",
                                           "Objects restored from spill files", NULL);
    os->m_restored_bytes = prism_metrics_counter(m, "prism_objectstore_restored_bytes_total",
                                                 "Bytes restored from spill files", NULL);
    os->m_transfer_in = prism_metrics_counter(m, "prism_objectstore_transfer_bytes_total",
                                              "Bytes moved between nodes", "direction=\"in\"");
    os->m_transfer_out = prism_metrics_counter(m, "prism_objectstore_transfer_bytes_total",
                                               "Bytes moved between nodes", "direction=\"out\"");
    os->m_disk_errors = prism_metrics_counter(m, "prism_objectstore_disk_errors_total",
                                              "Spills and restores that failed on disk", NULL);
}

/* Adds what the counters grew by since the last run. */
static void metrics_job(void *ctx)
{
    objectstore *os = ctx;
    prism_store_stats s;
    pthread_mutex_lock(&os->store.mu);
    os_stats(&os->store, &s);
    pthread_mutex_unlock(&os->store.mu);
    const prism_store_stats *l = &os->last;
    prism_metric_add(os->m_evictions, (double)(s.evictions_total - l->evictions_total));
    prism_metric_add(os->m_spills, (double)(s.spills_total - l->spills_total));
    prism_metric_add(os->m_spilled_bytes, (double)(s.spilled_bytes_total - l->spilled_bytes_total));
    prism_metric_add(os->m_restores, (double)(s.restores_total - l->restores_total));
    prism_metric_add(os->m_restored_bytes,
                     (double)(s.restored_bytes_total - l->restored_bytes_total));
    prism_metric_add(os->m_transfer_in,
                     (double)(s.transfer_in_bytes_total - l->transfer_in_bytes_total));
    prism_metric_add(os->m_transfer_out,
                     (double)(s.transfer_out_bytes_total - l->transfer_out_bytes_total));
    os->last = s;
    pthread_mutex_lock(&os->store.mu);
    uint64_t errors = os->store.io_errors;
    pthread_mutex_unlock(&os->store.mu);
    prism_metric_add(os->m_disk_errors, (double)(errors - os->last_disk_errors));
    os->last_disk_errors = errors;
}

/* Tells the GCS how full this store is (the dashboard's object store use
 * per node), under its URL: the node agent registered that URL as its
 * node's store. */
static void report_job(void *ctx)
{
    objectstore *os = ctx;
    prism_store_stats s;
    if (!os->bus || !os->url)
        return;
    pthread_mutex_lock(&os->store.mu);
    os_stats(&os->store, &s);
    pthread_mutex_unlock(&os->store.mu);
    json_t *j = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:i}", "store_id", os->node_id, "url", os->url,
                          "capacity_bytes", (json_int_t)s.capacity_bytes, "used_bytes",
                          (json_int_t)s.used_bytes, "spilled_bytes", (json_int_t)s.spilled_bytes,
                          "objects", (json_int_t)s.objects, "period_ms", STORE_REPORT_MS);
    if (j)
        prism_bus_publish_json(os->bus, PRISM_SUBJECT_STORE_REPORT, j);
    json_decref(j);
}

/* --- the service --- */

static objectstore the_store = {
    .listen_fd = -1, .epfd = -1, .sig_fd = -1, .wake_fd = -1, .pull_cv = PTHREAD_COND_INITIALIZER};

/* The options only the object store has. */
static struct {
    char *socket, *spill_dir, *node_id, *peers;
    int64_t memory, spill_batch, max_put, owner_check_ms, max_uploads;
    bool prefault, huge_pages;
    char spill_path[4096];
} cfg;

static prism_option options[] = {
    {"peers", PRISM_OPT_STRING, &cfg.peers, NULL,
     "stores to pull from besides those of the cluster's nodes (comma-separated URLs)"},
    {"socket", PRISM_OPT_STRING, &cfg.socket, NULL, "Unix socket for local clients (required)"},
    {"memory", PRISM_OPT_SIZE, &cfg.memory, "512MiB", "size of the shared-memory arena"},
    {"prefault", PRISM_OPT_BOOL, &cfg.prefault, "true",
     "allocate every arena page at start (no page faults on put)"},
    {"huge-pages", PRISM_OPT_BOOL, &cfg.huge_pages, "false",
     "back the arena with huge pages reserved in /proc/sys/vm/nr_hugepages (size rounded down "
     "to 2 MiB)"},
    {"spill-dir", PRISM_OPT_STRING, &cfg.spill_dir, NULL,
     "directory for spilled objects (default $TMPDIR/prism-objectstore-spill)"},
    {"spill-batch", PRISM_OPT_SIZE, &cfg.spill_batch, "16MiB",
     "spill at least this many bytes per file"},
    {"max-put", PRISM_OPT_SIZE, &cfg.max_put, "0", "largest HTTP put body (0: the arena size)"},
    {"node-id", PRISM_OPT_STRING, &cfg.node_id, NULL, "node ID in events (default: random)"},
    {"max-uploads-per-object", PRISM_OPT_INT, &cfg.max_uploads, "1",
     "pulls of one object of 1 MiB or more served at once; more wait for a copy elsewhere"},
    {"owner-check-ms", PRISM_OPT_INT, &cfg.owner_check_ms, "2000",
     "how often to ask owners which of their objects they still hold (0: never)"},
};

static int configure(void *ctx, const prism_service_settings *s, char *err, size_t errlen)
{
    objectstore *os = ctx;
    if (cfg.memory <= 0) {
        snprintf(err, errlen, "--memory must be positive");
        return -1;
    }
    if (cfg.owner_check_ms < 0 || cfg.owner_check_ms > 3600000) {
        snprintf(err, errlen, "--owner-check-ms must be between 0 and 3600000");
        return -1;
    }
    if (cfg.max_uploads < 1 || cfg.max_uploads > 1024) {
        snprintf(err, errlen, "--max-uploads-per-object must be between 1 and 1024");
        return -1;
    }
    os->max_uploads = cfg.max_uploads;
    os->token = s->token;
    os->socket_path = cfg.socket ? cfg.socket : "";
    if (cfg.spill_dir && cfg.spill_dir[0])
        snprintf(cfg.spill_path, sizeof cfg.spill_path, "%s", cfg.spill_dir);
    else
        snprintf(cfg.spill_path, sizeof cfg.spill_path, "%s/prism-objectstore-spill",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return 0;
}

static int init(void *ctx, char *err, size_t errlen)
{
    objectstore *os = ctx;
    char hex[PRISM_ID_HEX_LEN + 1];
    if (!cfg.node_id || !cfg.node_id[0]) {
        prism_id nid;
        prism_id_random(&nid);
        prism_id_to_hex(&nid, hex);
    }
    os->node_id = strdup(cfg.node_id && cfg.node_id[0] ? cfg.node_id : hex);
    os_store_config sc = {.capacity = (uint64_t)cfg.memory,
                          .spill_dir = cfg.spill_path,
                          .spill_batch = (uint64_t)cfg.spill_batch,
                          .prefault = cfg.prefault,
                          .huge_pages = cfg.huge_pages,
                          .on_event = on_event,
                          .on_moved = on_moved,
                          .ud = os};
    if (!os->node_id || os_store_init(&os->store, &sc, err, errlen) != 0)
        return -1;
    os->max_put = cfg.max_put > 0 ? (uint64_t)cfg.max_put : os->store.capacity;
    metrics_init(os);
    return os_server_listen(os, err, errlen);
}

static int start(void *ctx, char *err, size_t errlen)
{
    objectstore *os = ctx;
    if (os_peers_create(&os->peers, cfg.peers, os->bus) != 0 ||
        os_copies_create(&os->copies, os->bus) != 0) {
        snprintf(err, errlen, "cannot follow the cluster's stores: %s",
                 os->bus ? prism_bus_last_error(os->bus) : "out of memory");
        return -1;
    }
    if (os->bus && prism_bus_subscribe(os->bus, PRISM_SUBJECT_OBJECT_REMOVED, NULL, on_removed,
                                       os) != PRISM_BUS_OK) {
        snprintf(err, errlen, "cannot subscribe to prism.object.removed");
        return -1;
    }
    if (os_owners_start(&os->owners, os, (int)cfg.owner_check_ms) != 0) {
        snprintf(err, errlen, "cannot start the owner checks");
        return -1;
    }
    return 0;
}

static int serving(void *ctx, const char *url, char *err, size_t errlen)
{
    objectstore *os = ctx;
    pthread_mutex_lock(&os->store.mu); /* events read it (with mu) from the HTTP threads */
    os->url = strdup(url);
    pthread_mutex_unlock(&os->store.mu);
    if (os->copies)
        os_copies_set_self(os->copies, url);
    LOG_INFO("node %s: %llu-byte arena, socket %s, HTTP %s, spill dir %s", os->node_id,
             (unsigned long long)os->store.capacity, os->socket_path, url, cfg.spill_path);
    return 0;
}

static int tick(void *svc) { return prism_service_tick(svc); }

static int run(void *ctx, prism_service *svc)
{
    os_server_run(ctx, tick, svc);
    return 0;
}

static void stop(void *ctx)
{
    objectstore *os = ctx;
    os_owners_stop(os->owners); /* it may be asking NATS: before NATS closes */
    os->owners = NULL;
    os_store_stop_io(&os->store); /* its events go to NATS and the loop too */
    os_server_close(os);
}

static void cleanup(void *ctx)
{
    objectstore *os = ctx;
    os_peers_destroy(os->peers);
    os_copies_destroy(os->copies);
    free(os->url);
    if (os->store.arena)
        os_store_destroy(&os->store);
    free(os->node_id);
}

static const prism_service_job jobs[] = {{"metrics", 1000, metrics_job},
                                         {"store report", STORE_REPORT_MS, report_job}};

int main(int argc, char **argv)
{
    const prism_service_def def = {
        .name = "objectstore",
        .usage = "usage: prism-objectstore [options]\n\n"
                 "The node's shared-memory object store: local clients on a Unix socket,\n"
                 "REST and transfers between nodes over HTTP.",
        .options = options,
        .noptions = sizeof options / sizeof options[0],
        .default_port = "0",
        .default_nats_url = NULL,
        .routes = os_routes,
        .nroutes = os_nroutes,
        .body_limit = os_http_body_limit,
        .jobs = jobs,
        .njobs = sizeof jobs / sizeof jobs[0],
        .ctx = &the_store,
        .metrics = &the_store.metrics,
        .bus = &the_store.bus,
        .http = &the_store.http,
        .configure = configure,
        .init = init,
        .start = start,
        .serving = serving,
        .run = run,
        .stop = stop,
        .cleanup = cleanup,
    };
    return prism_service_main(&def, argc, argv);
}
