/* The service skeleton: options, start-up, the loop of periodic jobs and
 * shutdown, in the order prism_service.h lists. */
#include "prism_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "prism_httpc.h"
#include "prism_id.h"
#include "prism_signal.h"
#include "prism_subjects.h"
#include "prism_time.h"

#define MAX_COMMON_OPTIONS 10
#define IDLE_WAIT_MS 1000 /* the loop's wait when no job is ever due */

enum { GO_ON = -1, EXIT_OK = 0, EXIT_START = 1, EXIT_CONFIG = 2 };

struct prism_service {
    const prism_service_def *def;
    prism_service_settings settings;
    char *token, *token_file, *log_level; /* as given; `settings.token` is the resolved one */
    bool no_auth, print_routes;
    prism_option *opts; /* the common options, then the service's */
    prism_opt_origin *from;
    size_t nopts;
    prism_http_route *routes; /* the def's, with the body limits of configuration */
    int64_t *next_due;        /* per job, in prism_mono_ms() */
    bool published;           /* the address file is ours to remove */
    /* with def->announce: what prism.service.announce says, and when next */
    char id[PRISM_ID_HEX_LEN + 1], url[512];
    int64_t started_at, next_announce;
};

/* --- options --- */

static size_t common_options(prism_service *s, prism_option *o)
{
    const prism_service_def *d = s->def;
    prism_service_settings *st = &s->settings;
    size_t n = 0;
    if (d->default_port) {
        o[n++] = (prism_option){"host", PRISM_OPT_STRING, &st->host, "127.0.0.1",
                                "address the REST API binds"};
        o[n++] = (prism_option){"port", PRISM_OPT_INT, &st->port, d->default_port,
                                "port of the REST API (0: any free port)"};
        o[n++] = (prism_option){"address-file", PRISM_OPT_STRING, &st->address_file, NULL,
                                "write the REST API's URL here once serving"};
    }
    o[n++] = (prism_option){"token", PRISM_OPT_STRING, &s->token, NULL,
                            "cluster token (REST, NATS, direct connections)"};
    o[n++] = (prism_option){"token-file", PRISM_OPT_STRING, &s->token_file, NULL,
                            "read the cluster token from this file"};
    o[n++] = (prism_option){"no-auth", PRISM_OPT_BOOL, &s->no_auth, "false",
                            "no token anywhere, whatever else is set (tests only)"};
    o[n++] = (prism_option){"nats-url", PRISM_OPT_STRING, &st->nats_url, d->default_nats_url,
                            "NATS server"};
    o[n++] = (prism_option){"log-level", PRISM_OPT_STRING, &s->log_level, "info",
                            "debug, info, warn or error"};
    if (d->default_port)
        o[n++] = (prism_option){"print-routes", PRISM_OPT_BOOL, &s->print_routes, "false",
                                "print the REST routes served and exit"};
    return n;
}

static int make_options(prism_service *s)
{
    const prism_service_def *d = s->def;
    size_t max = MAX_COMMON_OPTIONS + d->noptions;
    s->opts = calloc(max, sizeof *s->opts);
    s->from = calloc(max, sizeof *s->from);
    if (!s->opts || !s->from)
        return -1;
    s->nopts = common_options(s, s->opts);
    if (d->noptions)
        memcpy(s->opts + s->nopts, d->options, d->noptions * sizeof *d->options);
    s->nopts += d->noptions;
    return 0;
}

/* Flags, help, routes, log level, token, then the service's own checks. */
static int configure(prism_service *s, int argc, char **argv, char *err, size_t errlen)
{
    const prism_service_def *d = s->def;
    if (make_options(s) != 0) {
        snprintf(err, errlen, "out of memory");
        return EXIT_CONFIG;
    }
    int rc = prism_config_parse_from(s->opts, s->nopts, argc, argv, NULL, s->from, err, errlen);
    if (rc == PRISM_CONFIG_HELP) {
        prism_config_print_help(stdout, s->opts, s->nopts, d->usage);
        /* Read where the connections are made, not as flags: one set for every process. */
        printf("\nEnvironment only (docs/security.md#tls):\n"
               "  [PRISM_TLS_CERT] [PRISM_TLS_KEY]  PEM certificate and key: this process's\n"
               "                           listeners speak TLS (HTTPS, workers' TCP ports)\n"
               "  [PRISM_TLS_CA]           PEM CA bundle its HTTPS, NATS and worker connections\n"
               "                           verify the cluster's certificates with\n");
        return EXIT_OK;
    }
    if (rc != PRISM_CONFIG_OK)
        return EXIT_CONFIG;
    if (s->print_routes) {
        prism_http_print_routes(stdout, d->routes, d->nroutes);
        return EXIT_OK;
    }
    if (prism_log_level_parse(s->log_level, &s->settings.level) != 0) {
        snprintf(err, errlen, "--log-level: '%s' is not debug, info, warn or error", s->log_level);
        return EXIT_CONFIG;
    }
    if (d->default_port && (s->settings.port < 0 || s->settings.port > 65535)) {
        snprintf(err, errlen, "--port must be 0..65535");
        return EXIT_CONFIG;
    }
    prism_token_sources src = prism_token_sources_of(s->opts, s->from, s->nopts);
    if (prism_token_resolve(&s->settings.token, &src, !d->token_optional, err, errlen) != 0)
        return EXIT_CONFIG;
    if (d->configure && d->configure(d->ctx, &s->settings, err, errlen) != 0)
        return EXIT_CONFIG;
    return GO_ON;
}

/* --- start-up --- */

static int start_http(prism_service *s, char *err, size_t errlen)
{
    const prism_service_def *d = s->def;
    s->routes = calloc(d->nroutes ? d->nroutes : 1, sizeof *s->routes);
    if (!s->routes) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < d->nroutes; i++) {
        s->routes[i] = d->routes[i];
        size_t limit = d->body_limit ? d->body_limit(d->ctx, &d->routes[i]) : 0;
        if (limit)
            s->routes[i].max_body = limit;
    }
    char name[64], url[512];
    snprintf(name, sizeof name, "prism-%s", d->name);
    prism_http_config hc = {.host = s->settings.host,
                            .port = (int)s->settings.port,
                            .token = s->settings.token,
                            .routes = s->routes,
                            .nroutes = d->nroutes,
                            .ctx = d->ctx,
                            .metrics = d->metrics ? *d->metrics : NULL,
                            .name = name};
    if (prism_http_server_create(d->http, &hc, err, errlen) != 0 ||
        prism_http_server_publish(*d->http, s->settings.host, s->settings.address_file, url,
                                  sizeof url, err, errlen) != 0)
        return -1;
    s->published = true;
    snprintf(s->url, sizeof s->url, "%s", url);
    return d->serving ? d->serving(d->ctx, url, err, errlen) : 0;
}

static int start(prism_service *s, char *err, size_t errlen)
{
    const prism_service_def *d = s->def;
    if (d->metrics && !(*d->metrics = prism_metrics_create())) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (d->init && d->init(d->ctx, err, errlen) != 0)
        return -1;
    const char *nats = s->settings.nats_url;
    if (d->bus && nats && *nats) {
        char name[64];
        snprintf(name, sizeof name, "prism-%s", d->name);
        /* Without waiting: a service may start before the broker. */
        if (prism_bus_connect(d->bus, nats, s->settings.token, name, 0, err, errlen) != 0)
            return -1;
    }
    if (d->start && d->start(d->ctx, err, errlen) != 0)
        return -1;
    if (d->http)
        return start_http(s, err, errlen);
    return d->serving ? d->serving(d->ctx, "", err, errlen) : 0;
}

/* --- the loop --- */

/* prism.service.announce: the service is there, at this address. */
static void announce(prism_service *s)
{
    const prism_service_def *d = s->def;
    json_t *doc = json_pack("{s:s,s:s,s:s,s:I,s:I}", "service", d->name, "id", s->id, "address",
                            s->url, "pid", (json_int_t)getpid(), "started_at",
                            (json_int_t)s->started_at);
    if (doc && d->describe)
        d->describe(d->ctx, doc);
    if (doc && prism_bus_publish_json(*d->bus, PRISM_SUBJECT_SERVICE_ANNOUNCE, doc) != 0)
        LOG_DEBUG("cannot announce the service: %s", prism_bus_last_error(*d->bus));
    json_decref(doc);
}

int prism_service_tick(prism_service *s)
{
    const prism_service_def *d = s->def;
    int64_t now = prism_mono_ms(), wait = IDLE_WAIT_MS;
    if (d->announce && d->bus && *d->bus) {
        if (now >= s->next_announce) {
            announce(s);
            now = prism_mono_ms();
            s->next_announce = now + PRISM_SERVICE_ANNOUNCE_MS;
        }
        wait = s->next_announce - now;
    }
    for (size_t i = 0; i < d->njobs; i++) {
        if (now >= s->next_due[i]) {
            d->jobs[i].fn(d->ctx);
            now = prism_mono_ms();
            s->next_due[i] = now + d->jobs[i].period_ms;
        }
        if (s->next_due[i] - now < wait)
            wait = s->next_due[i] - now;
    }
    return wait < 1 ? 1 : (int)wait;
}

static int run(prism_service *s)
{
    const prism_service_def *d = s->def;
    s->next_due = calloc(d->njobs ? d->njobs : 1, sizeof *s->next_due);
    if (!s->next_due) {
        LOG_ERROR("out of memory");
        return EXIT_START;
    }
    int64_t now = prism_mono_ms();
    for (size_t i = 0; i < d->njobs; i++)
        s->next_due[i] = now + d->jobs[i].period_ms;
    if (d->run)
        return d->run(d->ctx, s) == 0 ? EXIT_OK : EXIT_START;
    int sig, wait = prism_service_tick(s);
    while (!(sig = prism_signal_wait(wait)))
        wait = prism_service_tick(s);
    LOG_INFO("signal %d: shutting down", sig);
    return EXIT_OK;
}

/* --- shutdown --- */

void prism_service_teardown(const prism_service_def *d)
{
    if (d->http) {
        prism_http_server_destroy(*d->http); /* waits for running handlers */
        *d->http = NULL;
    }
    if (d->stop)
        d->stop(d->ctx);
    if (d->bus) {
        prism_bus_destroy(*d->bus); /* flushes what the stop hook published */
        *d->bus = NULL;
    }
    if (d->cleanup)
        d->cleanup(d->ctx);
    if (d->metrics) {
        prism_metrics_destroy(*d->metrics);
        *d->metrics = NULL;
    }
}

static void free_service(prism_service *s)
{
    if (s->opts)
        prism_config_free(s->opts, s->nopts);
    free(s->opts);
    free(s->from);
    free(s->settings.token);
    free(s->routes);
    free(s->next_due);
}

int prism_service_main(const prism_service_def *d, int argc, char **argv)
{
    prism_signal_block(); /* before any thread: stop signals reach only the loop */
    prism_service s = {.def = d};
    prism_id id;
    prism_id_random(&id);
    prism_id_to_hex(&id, s.id);
    s.started_at = prism_now_ms();
    char err[1024];
    int status = configure(&s, argc, argv, err, sizeof err);
    if (status == EXIT_CONFIG)
        fprintf(stderr, "prism-%s: %s\n", d->name, err);
    if (status == GO_ON) {
        prism_log_init(d->name, s.settings.level);
        if (s.no_auth && ((s.token && *s.token) || (s.token_file && *s.token_file)))
            LOG_WARN("authentication is off (--no-auth): the token given is not used");
        prism_httpc_global_init(); /* before any thread: handlers and callbacks make clients */
        if (start(&s, err, sizeof err) != 0) {
            LOG_ERROR("cannot start: %s", err);
            status = EXIT_START;
        } else {
            status = run(&s);
        }
        /* Stop advertising a service that is going away. */
        if (s.published && s.settings.address_file && *s.settings.address_file)
            unlink(s.settings.address_file);
        prism_service_teardown(d);
    }
    free_service(&s);
    return status;
}
