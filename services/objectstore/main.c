/* prism-objectstore: the node's shared-memory object store.
 *
 * One state struct (objectstore.h), one epoll loop on the main thread for the
 * Unix socket with a cron for metrics, the HTTP server's threads for REST and
 * transfers, and NATS events for object locations. See docs/objectstore.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objectstore.h"
#include "prism_config.h"
#include "prism_fs.h"
#include "prism_log.h"
#include "prism_signal.h"

static const char *const event_subjects[] = {
    [OS_EV_ADDED] = "prism.object.added",
    [OS_EV_REMOVED] = "prism.object.removed",
    [OS_EV_SPILLED] = "prism.object.spilled",
};

/* Runs with store.mu held, on whichever thread changed the object. */
static void on_event(void *ud, os_event ev, const os_object *o)
{
    objectstore *os = ud;
    if (ev == OS_EV_ADDED)
        os_server_sealed(os, o);
    if (!os->bus)
        return;
    char hex[PRISM_OBJECT_ID_HEX_LEN + 1];
    prism_object_id_to_hex(&o->id, hex);
    json_t *j = json_pack("{s:s, s:s, s:I}", "object_id", hex, "node_id", os->node_id, "size",
                          (json_int_t)o->data_size);
    /* Only a delete removes a primary copy (evictions take secondary ones):
     * its owner freed the object, and other stores drop their copies. */
    if (j && ev == OS_EV_REMOVED && o->pinned)
        json_object_set_new(j, "primary", json_true());
    if (j)
        prism_bus_publish_json(os->bus, event_subjects[ev], j);
    json_decref(j);
}

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

#define GAUGE_FN(name, field)                                                                     \
    static double name(void *ud) { return gauge(ud, offsetof(prism_store_stats, field)); }
GAUGE_FN(g_used, used_bytes)
GAUGE_FN(g_capacity, capacity_bytes)
GAUGE_FN(g_objects, objects)
GAUGE_FN(g_in_memory, objects_in_memory)
GAUGE_FN(g_spilled_bytes, spilled_bytes)
GAUGE_FN(g_spilled_objects, spilled_objects)
GAUGE_FN(g_spill_files, spill_files)
GAUGE_FN(g_clients, clients)

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
}

/* Adds what the counters grew by since the last cron. */
static void cron(objectstore *os)
{
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
}

/* --- start-up --- */

typedef struct settings {
    char *host, *address_file, *token, *token_file, *nats_url, *socket, *spill_dir, *node_id,
        *log_level, *peers;
    int64_t port, memory, spill_batch, max_put;
    bool no_auth, prefault;
} settings;

static int read_token(settings *cfg, char **out)
{
    if (cfg->token_file && cfg->token_file[0]) {
        size_t n;
        char *t = prism_read_file(cfg->token_file, 4096, &n);
        if (!t)
            return -1;
        while (n && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' '))
            t[--n] = '\0';
        *out = t;
        return 0;
    }
    *out = strdup(cfg->token ? cfg->token : "");
    return *out ? 0 : -1;
}

static int start(objectstore *os, settings *cfg, char *err, size_t errlen)
{
    if (read_token(cfg, &os->token) != 0) {
        snprintf(err, errlen, "cannot read --token-file %s", cfg->token_file);
        return -1;
    }
    if (!os->token[0] && !cfg->no_auth) {
        snprintf(err, errlen, "a --token or --token-file is required (or --no-auth)");
        return -1;
    }
    if (cfg->no_auth)
        os->token[0] = '\0';
    if (cfg->memory <= 0) {
        snprintf(err, errlen, "--memory must be positive");
        return -1;
    }
    char spill[4096];
    if (cfg->spill_dir && cfg->spill_dir[0])
        snprintf(spill, sizeof spill, "%s", cfg->spill_dir);
    else
        snprintf(spill, sizeof spill, "%s/prism-objectstore-spill",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    os_store_config sc = {.capacity = (uint64_t)cfg->memory, .spill_dir = spill,
                          .spill_batch = (uint64_t)cfg->spill_batch, .prefault = cfg->prefault,
                          .on_event = on_event, .ud = os};
    if (os_store_init(&os->store, &sc, err, errlen) != 0)
        return -1;
    os->max_put = cfg->max_put > 0 ? (uint64_t)cfg->max_put : os->store.capacity;
    if (os_server_listen(os, err, errlen) != 0)
        return -1;
    if (cfg->nats_url && cfg->nats_url[0] &&
        prism_bus_connect(&os->bus, cfg->nats_url, os->token, "prism-objectstore", 0, err,
                          errlen) != 0)
        return -1;
    if (os_peers_create(&os->peers, cfg->peers, os->bus) != 0) {
        snprintf(err, errlen, "cannot follow the cluster's stores: %s",
                 os->bus ? prism_bus_last_error(os->bus) : "out of memory");
        return -1;
    }
    if (os->bus &&
        prism_bus_subscribe(os->bus, "prism.object.removed", NULL, on_removed, os) != PRISM_BUS_OK) {
        snprintf(err, errlen, "cannot subscribe to prism.object.removed");
        return -1;
    }
    if (!(os->metrics = prism_metrics_create())) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    metrics_init(os);
    if (os_http_start(os, cfg->host, (int)cfg->port, err, errlen) != 0)
        return -1;
    char addr[512];
    if (prism_http_server_publish(os->http, cfg->host, cfg->address_file, addr, sizeof addr, err,
                                  errlen) != 0)
        return -1;
    LOG_INFO("node %s: %llu-byte arena, socket %s, HTTP %s, spill dir %s", os->node_id,
             (unsigned long long)os->store.capacity, os->socket_path, addr, spill);
    return 0;
}

static void stop(objectstore *os)
{
    prism_http_server_destroy(os->http); /* waits for running handlers */
    os_server_close(os);
    prism_bus_destroy(os->bus);
    os_peers_destroy(os->peers);
    if (os->store.arena)
        os_store_destroy(&os->store);
    prism_metrics_destroy(os->metrics);
    pthread_cond_destroy(&os->pull_cv);
    free(os->token);
    free(os->node_id);
}

int main(int argc, char **argv)
{
    prism_signal_block();
    settings cfg = {0};
    prism_option opts[] = {
        {"host", PRISM_OPT_STRING, &cfg.host, "127.0.0.1", "address the HTTP server binds"},
        {"port", PRISM_OPT_INT, &cfg.port, "0", "HTTP port (0: any free port)"},
        {"address-file", PRISM_OPT_STRING, &cfg.address_file, NULL,
         "write http://host:port here once serving"},
        {"token", PRISM_OPT_STRING, &cfg.token, NULL, "cluster token"},
        {"token-file", PRISM_OPT_STRING, &cfg.token_file, NULL, "file holding the cluster token"},
        {"no-auth", PRISM_OPT_BOOL, &cfg.no_auth, "false", "serve HTTP without a token"},
        {"nats-url", PRISM_OPT_STRING, &cfg.nats_url, NULL, "NATS server for object events"},
        {"peers", PRISM_OPT_STRING, &cfg.peers, NULL,
         "stores to pull from besides those of the cluster's nodes (comma-separated URLs)"},
        {"socket", PRISM_OPT_STRING, &cfg.socket, NULL, "Unix socket for local clients (required)"},
        {"memory", PRISM_OPT_SIZE, &cfg.memory, "512MiB", "size of the shared-memory arena"},
        {"prefault", PRISM_OPT_BOOL, &cfg.prefault, "true",
         "allocate every arena page at start (no page faults on put)"},
        {"spill-dir", PRISM_OPT_STRING, &cfg.spill_dir, NULL,
         "directory for spilled objects (default $TMPDIR/prism-objectstore-spill)"},
        {"spill-batch", PRISM_OPT_SIZE, &cfg.spill_batch, "16MiB",
         "spill at least this many bytes per file"},
        {"max-put", PRISM_OPT_SIZE, &cfg.max_put, "0",
         "largest HTTP put body (0: the arena size)"},
        {"node-id", PRISM_OPT_STRING, &cfg.node_id, NULL, "node ID in events (default: random)"},
        {"log-level", PRISM_OPT_STRING, &cfg.log_level, "info", "debug, info, warn or error"},
    };
    size_t nopts = sizeof opts / sizeof opts[0];
    char err[512];
    int rc = prism_config_parse(opts, nopts, argc, argv, NULL, err, sizeof err);
    if (rc == PRISM_CONFIG_HELP) {
        prism_config_print_help(stdout, opts, nopts, "usage: prism-objectstore [options]");
        prism_config_free(opts, nopts);
        return 0;
    }
    prism_log_level level = PRISM_LOG_INFO;
    if (rc != PRISM_CONFIG_OK || prism_log_level_parse(cfg.log_level, &level) != 0) {
        fprintf(stderr, "prism-objectstore: %s\n", rc != PRISM_CONFIG_OK ? err : "bad --log-level");
        prism_config_free(opts, nopts);
        return 2;
    }
    prism_log_init("objectstore", level);
    objectstore os = {.listen_fd = -1, .epfd = -1, .sig_fd = -1, .wake_fd = -1};
    pthread_cond_init(&os.pull_cv, NULL);
    os.socket_path = cfg.socket ? cfg.socket : "";
    if (cfg.node_id && cfg.node_id[0]) {
        os.node_id = strdup(cfg.node_id);
    } else {
        prism_id nid;
        char hex[PRISM_ID_HEX_LEN + 1];
        prism_id_random(&nid);
        prism_id_to_hex(&nid, hex);
        os.node_id = strdup(hex);
    }
    int status = 0;
    if (start(&os, &cfg, err, sizeof err) != 0) {
        LOG_ERROR("%s", err);
        status = 1;
    } else {
        os_server_run(&os, cron, 1000);
    }
    stop(&os);
    prism_config_free(opts, nopts);
    return status;
}
