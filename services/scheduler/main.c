/* prism-scheduler entry point: configuration, start-up, the cron loop, shutdown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "prism_config.h"
#include "prism_fs.h"
#include "prism_log.h"
#include "prism_signal.h"
#include "scheduler.h"

#define TICK_MS 100

static const char usage[] =
    "usage: prism-scheduler [options]\n\n"
    "Keeps the cluster's resource view from the node agents' reports and answers worker-lease\n"
    "requests (prism.sched.lease). Replicas share the requests through a NATS queue group.";

static prism_option *options(sched_config *c, size_t *n)
{
    static prism_option opts[16];
    prism_option table[] = {
        {"host", PRISM_OPT_STRING, &c->host, "127.0.0.1", "address of the status API"},
        {"port", PRISM_OPT_INT, &c->port, "0", "port of the status API (0: any free port)"},
        {"address-file", PRISM_OPT_STRING, &c->address_file, NULL,
         "write the API's URL here once serving"},
        {"token", PRISM_OPT_STRING, &c->token, NULL, "cluster token (bearer auth, NATS auth)"},
        {"token-file", PRISM_OPT_STRING, &c->token_file, NULL, "read the cluster token from here"},
        {"no-auth", PRISM_OPT_BOOL, &c->no_auth, "false", "serve without authentication"},
        {"nats-url", PRISM_OPT_STRING, &c->nats_url, "nats://127.0.0.1:4222", "NATS server"},
        {"node-timeout-ms", PRISM_OPT_INT, &c->node_timeout_ms, "5000",
         "a node that sent no report this long leaves the view"},
        {"lease-timeout-ms", PRISM_OPT_INT, &c->lease_timeout_ms, "5000",
         "time to answer a lease request that gives no timeout_ms"},
        {"forward-timeout-ms", PRISM_OPT_INT, &c->forward_timeout_ms, "3000",
         "longest wait for one node agent's answer"},
        {"lease-threads", PRISM_OPT_INT, &c->lease_threads, "4",
         "lease requests answered at the same time"},
        {"queue-max", PRISM_OPT_INT, &c->queue_max, "10000",
         "lease requests queued before new ones are answered busy"},
        {"log-level", PRISM_OPT_STRING, &c->log_level, "info", "debug, info, warn or error"},
        {"print-routes", PRISM_OPT_BOOL, &c->print_routes, "false",
         "print the REST routes served and exit"},
    };
    *n = sizeof table / sizeof table[0];
    memcpy(opts, table, sizeof table);
    return opts;
}

static int check_config(const sched_config *c, char *err, size_t errlen)
{
    if (c->port < 0 || c->port > 65535)
        snprintf(err, errlen, "--port must be 0..65535");
    else if (c->node_timeout_ms <= 0 || c->lease_timeout_ms <= 0 || c->forward_timeout_ms <= 0)
        snprintf(err, errlen, "--node-timeout-ms, --lease-timeout-ms and --forward-timeout-ms "
                              "must be positive");
    else if (c->lease_threads < 1 || c->lease_threads > SCHED_MAX_THREADS)
        snprintf(err, errlen, "--lease-threads must be 1..%d", SCHED_MAX_THREADS);
    else if (c->queue_max < 1)
        snprintf(err, errlen, "--queue-max must be positive");
    else
        return 0;
    return -1;
}

static double gauge_nodes(void *ud)
{
    scheduler *s = ud;
    pthread_mutex_lock(&s->lock);
    size_t n = sched_node_count(s);
    pthread_mutex_unlock(&s->lock);
    return (double)n;
}

static int make_metrics(scheduler *s)
{
    prism_metrics *m = s->metrics = prism_metrics_create();
    if (!m)
        return -1;
    s->m.requests = prism_metrics_counter(m, "prism_scheduler_lease_requests_total",
                                          "Lease requests received", NULL);
    s->m.grants = prism_metrics_counter(m, "prism_scheduler_lease_grants_total",
                                        "Leases granted", NULL);
    s->m.infeasible = prism_metrics_counter(m, "prism_scheduler_lease_infeasible_total",
                                            "Lease requests no node could ever hold", NULL);
    s->m.busy = prism_metrics_counter(m, "prism_scheduler_lease_busy_total",
                                      "Lease requests answered busy", NULL);
    s->m.errors = prism_metrics_counter(m, "prism_scheduler_lease_errors_total",
                                        "Lease requests answered with another error", NULL);
    s->m.forwards = prism_metrics_counter(m, "prism_scheduler_lease_forwards_total",
                                          "Lease requests sent to node agents", NULL);
    prism_metrics_gauge_fn(m, "prism_scheduler_nodes", "Nodes in the resource view", NULL,
                           gauge_nodes, s);
    return 0;
}

static int serve(scheduler *s, char *err, size_t errlen)
{
    prism_http_config hc = {.host = s->cfg.host, .port = (int)s->cfg.port, .token = s->cfg.token,
                            .routes = sched_routes, .nroutes = sched_nroutes, .ctx = s,
                            .metrics = s->metrics, .name = "prism-scheduler"};
    if (prism_http_server_create(&s->http, &hc, err, errlen) != 0)
        return -1;
    char url[512];
    if (prism_http_server_publish(s->http, s->cfg.host, s->cfg.address_file, url, sizeof url, err,
                                  errlen) != 0)
        return -1;
    LOG_INFO("scheduler %s serving its status at %s", s->id, url);
    return 0;
}

static int start(scheduler *s, char *err, size_t errlen)
{
    prism_id id;
    prism_id_random(&id);
    prism_id_to_hex(&id, s->id);
    if (make_metrics(s) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (prism_bus_connect(&s->bus, s->cfg.nats_url, s->cfg.token, "prism-scheduler", 0, err,
                          errlen) != 0)
        return -1;
    if (sched_view_start(s) != 0 || sched_lease_start(s) != 0) {
        snprintf(err, errlen, "cannot subscribe or start threads: %s",
                 prism_bus_last_error(s->bus));
        return -1;
    }
    return serve(s, err, errlen);
}

static void stop(scheduler *s)
{
    if (s->cfg.address_file && *s->cfg.address_file && s->http)
        unlink(s->cfg.address_file);
    prism_http_server_destroy(s->http);
    sched_lease_stop(s); /* before the bus: the threads may be asking a node */
    prism_bus_destroy(s->bus); /* callbacks from now on refuse: `quit` is set */
    sched_view_free(s);
    prism_metrics_destroy(s->metrics);
}

/* Parses flags, token and level. Returns -1 to go on, else the exit status. */
static int configure(scheduler *s, prism_option *opts, size_t nopts, int argc, char **argv,
                     prism_log_level *level)
{
    char err[1024];
    int rc = prism_config_parse(opts, nopts, argc, argv, NULL, err, sizeof err);
    if (rc == PRISM_CONFIG_HELP) {
        prism_config_print_help(stdout, opts, nopts, usage);
        return 0;
    }
    if (rc == PRISM_CONFIG_OK && s->cfg.print_routes) {
        prism_http_print_routes(stdout, sched_routes, sched_nroutes);
        return 0;
    }
    char *token = NULL;
    if (rc == PRISM_CONFIG_OK && prism_log_level_parse(s->cfg.log_level, level) != 0) {
        snprintf(err, sizeof err, "--log-level: '%s' is not debug, info, warn or error",
                 s->cfg.log_level);
        rc = PRISM_CONFIG_ERROR;
    }
    if (rc == PRISM_CONFIG_OK && (check_config(&s->cfg, err, sizeof err) != 0 ||
                                  prism_config_token(&token, s->cfg.token, s->cfg.token_file,
                                                     s->cfg.no_auth, err, sizeof err) != 0))
        rc = PRISM_CONFIG_ERROR;
    if (rc != PRISM_CONFIG_OK) {
        fprintf(stderr, "prism-scheduler: %s\n", err);
        return 2;
    }
    free(s->cfg.token);
    s->cfg.token = token;
    return -1;
}

int main(int argc, char **argv)
{
    prism_signal_block();
    static scheduler s; /* the one state of this process */
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.queue_cv, NULL);
    size_t nopts;
    prism_option *opts = options(&s.cfg, &nopts);
    prism_log_level level = PRISM_LOG_INFO;
    int status = configure(&s, opts, nopts, argc, argv, &level);
    if (status < 0) {
        char err[1024];
        prism_log_init("scheduler", level);
        status = 0;
        if (start(&s, err, sizeof err) != 0) {
            LOG_ERROR("cannot start: %s", err);
            status = 1;
        } else {
            int sig;
            while (!(sig = prism_signal_wait(TICK_MS)))
                sched_view_cron(&s);
            LOG_INFO("signal %d: shutting down", sig);
        }
        stop(&s);
    }
    prism_config_free(opts, nopts);
    pthread_cond_destroy(&s.queue_cv);
    pthread_mutex_destroy(&s.lock);
    return status;
}
