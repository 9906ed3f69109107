/* The skeleton every long-running Prism service runs on (docs/services.md).
 *
 * A service describes itself in one prism_service_def: its own options, its
 * REST routes, its periodic jobs and a few hooks. prism_service_main() does
 * the rest, the same way for every service:
 *
 *   block the stop signals (before any thread starts)
 *   parse the common options and the service's own; --help; --print-routes
 *   set the log level, resolve the cluster token (one precedence, below)
 *   configure()  check and derive the service's settings
 *   create the metrics registry
 *   init()       state, storage, metrics: no NATS yet
 *   connect to NATS (when a URL is set)
 *   start()      subscriptions and threads: NATS is up
 *   start HTTP from the static route table, publish the address file
 *   serving()    REST is up: announce the service
 *   loop until SIGTERM or SIGINT, running the jobs due (or run()), and
 *                with `announce`, saying on NATS that the service is there
 *   remove the address file, stop HTTP
 *   stop()       REST is down, NATS still up: stop threads, flush work
 *   close NATS
 *   cleanup()    free everything (also after a failed start)
 *   free the metrics registry
 *
 * The token: --no-auth (or PRISM_NO_AUTH) turns authentication off whatever
 * else is set; otherwise the first of --token, --token-file (flags), then
 * PRISM_TOKEN, PRISM_TOKEN_FILE (environment) is the cluster token; with none
 * of them the service refuses to start. */
#ifndef PRISM_SERVICE_H
#define PRISM_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prism_bus.h"
#include "prism_config.h"
#include "prism_http.h"
#include "prism_log.h"
#include "prism_metrics.h"

typedef struct prism_service prism_service;

/* A periodic job, run from the service's loop every `period_ms` (as redis's
 * serverCron runs with run_with_period). Jobs run on the main thread, one
 * after the other, in table order. */
typedef struct prism_service_job {
    const char *name;
    int period_ms;
    void (*fn)(void *ctx);
} prism_service_job;

/* The common settings, as parsed and resolved. Owned by the skeleton: valid
 * from configure() until prism_service_main returns. */
typedef struct prism_service_settings {
    char *host;         /* REST bind address */
    int64_t port;       /* REST port (0: any free port) */
    char *address_file; /* where the REST URL is written once serving; may be NULL */
    char *nats_url;     /* NULL or "": no NATS */
    char *token;        /* the cluster token; NULL when authentication is off */
    prism_log_level level;
} prism_service_settings;

typedef struct prism_service_def {
    const char *name;      /* "gcs": the log tag; the program is prism-NAME */
    const char *usage;     /* the first lines of --help */
    prism_option *options; /* the service's own; values point into its state */
    size_t noptions;
    const char *default_port;     /* NULL: the service has no REST API */
    const char *default_nats_url; /* NULL: no NATS unless --nats-url is given */
    bool token_optional;          /* no token given means authentication off, not an error */

    const prism_http_route *routes; /* static: --print-routes prints them */
    size_t nroutes;
    /* The body limit of `route` from configuration (0 keeps the table's). */
    size_t (*body_limit)(void *ctx, const prism_http_route *route);

    const prism_service_job *jobs;
    size_t njobs;
    /* A cluster service (not one per node): publish prism.service.announce
     * every PRISM_SERVICE_ANNOUNCE_MS while serving, so the GCS can list it;
     * `describe` (optional) adds the service's own fields ("id", figures) to
     * the message. */
    bool announce;
    void (*describe)(void *ctx, json_t *doc);

    void *ctx; /* the service's state, handed to every hook and job */
    /* Where the service keeps what the skeleton makes (each may be NULL). */
    prism_metrics **metrics;
    prism_bus **bus;
    prism_http_server **http;

    /* Hooks, each optional, in the order they run (see above). Those that
     * return int return 0, or -1 with `err` filled. */
    int (*configure)(void *ctx, const prism_service_settings *s, char *err, size_t errlen);
    int (*init)(void *ctx, char *err, size_t errlen);
    int (*start)(void *ctx, char *err, size_t errlen);
    int (*serving)(void *ctx, const char *url, char *err, size_t errlen);
    /* Replaces the skeleton's loop: serves until a stop signal, calling
     * prism_service_tick() at least as often as the shortest job period.
     * Returns 0, or -1 (logged) to exit with status 1. */
    int (*run)(void *ctx, prism_service *svc);
    void (*stop)(void *ctx);
    void (*cleanup)(void *ctx);
} prism_service_def;

/* Runs the service described by `def`. Returns the process's exit status:
 * 0 (stopped by a signal, or --help / --print-routes), 1 when it could not
 * start, 2 for a configuration error (written to stderr). */
int prism_service_main(const prism_service_def *def, int argc, char **argv);

/* Runs the jobs that are due. Returns the milliseconds until the next one is. */
int prism_service_tick(prism_service *svc);

/* The shutdown half of prism_service_main: HTTP, stop(), NATS, cleanup(),
 * metrics, each when present. For tests that start a service's parts by
 * hand. */
void prism_service_teardown(const prism_service_def *def);

/* --- the token --- */

/* Where the cluster token may come from; NULL or "" is "not given". */
typedef struct prism_token_sources {
    bool no_auth;           /* --no-auth or PRISM_NO_AUTH */
    const char *flag_token; /* --token */
    const char *flag_file;  /* --token-file */
    const char *env_token;  /* PRISM_TOKEN */
    const char *env_file;   /* PRISM_TOKEN_FILE */
} prism_token_sources;

/* Resolves the token with the precedence above. `*out` is a heap copy, or
 * NULL when authentication is off. A token file's first word is the token.
 * With no source, fails when `required`, else leaves authentication off.
 * Returns 0 or -1 with `err`. */
int prism_token_resolve(char **out, const prism_token_sources *src, bool required, char *err,
                        size_t errlen);

/* The sources in an option table parsed with prism_config_parse_from (its
 * "token", "token-file" and "no-auth" options, each optional): a value is a
 * flag's or an environment variable's by `from`. */
prism_token_sources prism_token_sources_of(const prism_option *opts, const prism_opt_origin *from,
                                           size_t n);

#endif
