/* prism-gcs entry point: configuration, start-up, the cron loop, shutdown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prism_httpc.h"
#include "db.h"
#include "gcs.h"
#include "prism_config.h"
#include "prism_fs.h"
#include "prism_log.h"
#include "prism_signal.h"

#define TICK_MS 100

static const char usage[] =
    "usage: prism-gcs [options]\n\n"
    "The global control store: cluster metadata in SQLite and the public REST API.";

static prism_option *options(gcs_config *c, size_t *n)
{
    static prism_option opts[32];
    prism_option table[] = {
        {"host", PRISM_OPT_STRING, &c->host, "127.0.0.1", "address to listen on"},
        {"port", PRISM_OPT_INT, &c->port, "8265", "port to listen on (0: any free port)"},
        {"address-file", PRISM_OPT_STRING, &c->address_file, NULL,
         "write the API's URL here once serving"},
        {"token", PRISM_OPT_STRING, &c->token, NULL, "cluster token (bearer auth, NATS auth)"},
        {"token-file", PRISM_OPT_STRING, &c->token_file, NULL, "read the cluster token from here"},
        {"no-auth", PRISM_OPT_BOOL, &c->no_auth, "false", "serve without authentication"},
        {"nats-url", PRISM_OPT_STRING, &c->nats_url, "nats://127.0.0.1:4222", "NATS server"},
        {"data-dir", PRISM_OPT_STRING, &c->data_dir, "./gcs-data",
         "directory of the database and packages"},
        {"node-timeout-ms", PRISM_OPT_INT, &c->node_timeout_ms, "10000",
         "a node silent this long is DEAD"},
        {"job-retention-count", PRISM_OPT_INT, &c->job_retention_count, "10000",
         "ended jobs kept (older ones are pruned with their logs)"},
        {"job-retention-age-s", PRISM_OPT_INT, &c->job_retention_age_s, "604800",
         "ended jobs older than this are pruned"},
        {"max-package-size", PRISM_OPT_SIZE, &c->max_package_size, "256MiB",
         "largest package accepted"},
        {"max-kv-value-size", PRISM_OPT_SIZE, &c->max_kv_value_size, "1MiB",
         "largest key-value value accepted"},
        {"log-level", PRISM_OPT_STRING, &c->log_level, "info", "debug, info, warn or error"},
        {"object-ttl-s", PRISM_OPT_INT, &c->object_ttl_s, "3600",
         "objects made through POST /api/v1/tasks are freed this long after creation"},
        {"task-list-size", PRISM_OPT_INT, &c->task_list_size, "10000",
         "recent tasks kept for GET /api/v1/tasks"},
        {"print-routes", PRISM_OPT_BOOL, &c->print_routes, "false",
         "print the REST routes served and exit"},
    };
    *n = sizeof table / sizeof table[0];
    memcpy(opts, table, sizeof table);
    return opts;
}

/* The route table with the body limits that come from configuration. */
static prism_http_route *routes_for(const gcs_config *c)
{
    prism_http_route *r = malloc(gcs_nroutes * sizeof *r);
    if (!r)
        return NULL;
    memcpy(r, gcs_routes, gcs_nroutes * sizeof *r);
    for (size_t i = 0; i < gcs_nroutes; i++) {
        if (!strcmp(r[i].pattern, "/api/v1/packages") && !strcmp(r[i].method, "POST"))
            r[i].max_body = (size_t)c->max_package_size;
        if (!strcmp(r[i].pattern, "/api/v1/kv/{namespace}/{key}") && !strcmp(r[i].method, "PUT"))
            r[i].max_body = (size_t)c->max_kv_value_size;
    }
    return r;
}

static int open_storage(gcs *g, char *err, size_t errlen)
{
    char path[4096];
    if (prism_mkdir_p(g->cfg.data_dir, 0700) != 0) {
        snprintf(err, errlen, "cannot create data directory %s: %m", g->cfg.data_dir);
        return -1;
    }
    snprintf(path, sizeof path, "%s/packages", g->cfg.data_dir);
    g->packages_dir = strdup(path);
    if (prism_mkdir_p(path, 0700) != 0) {
        snprintf(err, errlen, "cannot create %s: %m", path);
        return -1;
    }
    snprintf(path, sizeof path, "%s/gcs.db", g->cfg.data_dir);
    return gcs_db_open(&g->db, path, err, errlen);
}

static void make_metrics(gcs *g)
{
    g->metrics = prism_metrics_create();
    g->m_jobs_submitted =
        prism_metrics_counter(g->metrics, "prism_gcs_jobs_submitted_total", "Jobs submitted", NULL);
    g->m_jobs_finished = prism_metrics_counter(g->metrics, "prism_gcs_jobs_finished_total",
                                               "Jobs that reached a terminal state", NULL);
    g->m_nodes_dead =
        prism_metrics_counter(g->metrics, "prism_gcs_nodes_dead_total", "Nodes marked DEAD", NULL);
    g->m_heartbeats = prism_metrics_counter(g->metrics, "prism_gcs_heartbeats_total",
                                            "Node heartbeats received", NULL);
}

static double alive_nodes(void *ud)
{
    gcs *g = ud;
    pthread_mutex_lock(&g->lock);
    int n = 0;
    for (gcs_node *node = g->nodes; node; node = node->next)
        n++;
    pthread_mutex_unlock(&g->lock);
    return n;
}

static int start(gcs *g, prism_http_route *routes, char *err, size_t errlen)
{
    if (open_storage(g, err, errlen) != 0)
        return -1;
    make_metrics(g);
    if (gcs_tasks_create(g) != 0 || gcs_task_list_create(g) != 0 ||
        gcs_object_list_create(g) != 0 || gcs_actors_create(g) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    prism_metrics_gauge_fn(g->metrics, "prism_gcs_nodes_alive", "Nodes alive", NULL, alive_nodes, g);
    if (prism_bus_connect(&g->bus, g->cfg.nats_url, g->cfg.token, "prism-gcs", 0, err, errlen) != 0)
        return -1;
    if (gcs_nodes_start(g) != 0 || gcs_jobs_start(g) != 0 || gcs_task_list_start(g) != 0 ||
        gcs_object_list_start(g) != 0 || gcs_actors_start(g) != 0) {
        snprintf(err, errlen, "cannot subscribe to NATS subjects: %s", prism_bus_last_error(g->bus));
        return -1;
    }
    prism_http_config hc = {.host = g->cfg.host, .port = (int)g->cfg.port, .token = g->cfg.token,
                            .routes = routes, .nroutes = gcs_nroutes, .ctx = g,
                            .metrics = g->metrics, .name = "prism-gcs"};
    if (prism_http_server_create(&g->http, &hc, err, errlen) != 0)
        return -1;
    char url[512];
    if (prism_http_server_publish(g->http, g->cfg.host, g->cfg.address_file, url, sizeof url, err,
                                  errlen) != 0)
        return -1;
    LOG_INFO("serving the API at %s (database schema v%d, data in %s)", url, gcs_db_version(g->db),
             g->cfg.data_dir);
    return 0;
}

static void stop(gcs *g)
{
    prism_http_server_destroy(g->http);
    gcs_tasks_destroy(g);
    gcs_actors_stop(g);
    prism_bus_destroy(g->bus);
    gcs_actors_destroy(g);
    gcs_nodes_free(g);
    gcs_task_list_destroy(g);
    gcs_object_list_destroy(g);
    if (g->db)
        gcs_db_close(g->db);
    prism_metrics_destroy(g->metrics);
    free(g->packages_dir);
}

int main(int argc, char **argv)
{
    prism_signal_block();
    static gcs g;
    pthread_mutex_init(&g.lock, NULL);
    size_t nopts;
    prism_option *opts = options(&g.cfg, &nopts);
    char err[1024];
    int rc = prism_config_parse(opts, nopts, argc, argv, NULL, err, sizeof err);
    if (rc == PRISM_CONFIG_HELP) {
        prism_config_print_help(stdout, opts, nopts, usage);
        prism_config_free(opts, nopts);
        return 0;
    }
    if (rc == PRISM_CONFIG_OK && g.cfg.print_routes) {
        prism_http_print_routes(stdout, gcs_routes, gcs_nroutes);
        prism_config_free(opts, nopts);
        return 0;
    }
    prism_log_level level = PRISM_LOG_INFO;
    if (rc == PRISM_CONFIG_OK && prism_log_level_parse(g.cfg.log_level, &level) != 0) {
        snprintf(err, sizeof err, "--log-level: '%s' is not debug, info, warn or error",
                 g.cfg.log_level);
        rc = PRISM_CONFIG_ERROR;
    }
    char *token = NULL;
    if (rc == PRISM_CONFIG_OK &&
        prism_config_token(&token, g.cfg.token, g.cfg.token_file, g.cfg.no_auth, err, sizeof err) != 0)
        rc = PRISM_CONFIG_ERROR;
    if (rc != PRISM_CONFIG_OK) {
        fprintf(stderr, "prism-gcs: %s\n", err);
        prism_config_free(opts, nopts);
        return 2;
    }
    free(g.cfg.token);
    g.cfg.token = token;
    prism_log_init("gcs", level);
    prism_httpc_global_init(); /* before any thread: REST tasks make a client on an HTTP thread */
    prism_http_route *routes = routes_for(&g.cfg);
    int status = 0;
    if (!routes || start(&g, routes, err, sizeof err) != 0) {
        LOG_ERROR("cannot start: %s", routes ? err : "out of memory");
        status = 1;
    } else {
        int sig;
        while (!(sig = prism_signal_wait(TICK_MS))) {
            gcs_nodes_cron(&g);
            gcs_jobs_cron(&g);
            gcs_tasks_cron(&g);
            gcs_object_list_cron(&g);
        }
        LOG_INFO("signal %d: shutting down", sig);
    }
    stop(&g);
    free(routes);
    prism_config_free(opts, nopts);
    pthread_mutex_destroy(&g.lock);
    return status;
}
