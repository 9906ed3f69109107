/* How the CLI finds the cluster and talks to it.
 *
 * The state directory is $PRISM_HOME (default ~/.prism). The GCS address is
 * --address, else $PRISM_ADDRESS, else the file $PRISM_HOME/address written by
 * `prism up`; the token is --token, else $PRISM_TOKEN, else $PRISM_HOME/token.
 * Drivers started as jobs get PRISM_ADDRESS and PRISM_TOKEN, so the CLI works
 * inside them unchanged. Every helper here prints its own errors as
 * "prism: ..." on stderr; callers only map failure to an exit status. */
#ifndef PRISM_CLI_CLIENT_H
#define PRISM_CLI_CLIENT_H

#include <jansson.h>
#include <stddef.h>

#include "prism_httpc.h"

#define CLI_TIMEOUT_MS 30000

typedef struct cli_client {
    prism_httpc *http;
    char address[1024];
} cli_client;

/* The state directory, from $PRISM_HOME or ~/.prism. */
const char *cli_home(void);
/* Writes "$PRISM_HOME/name" to `out`. Returns 0, or -1 when it does not fit. */
int cli_home_path(char *out, size_t n, const char *name);
/* Reads a small text file, trailing whitespace removed; NULL when missing. Caller frees. */
char *cli_read_text(const char *path);

/* Resolves the address and token and makes the HTTP client. Returns 0 or -1. */
int cli_client_open(cli_client *c);
void cli_client_close(cli_client *c);

/* A JSON request. On a 2xx answer returns 0 with `*out` (may be NULL when
 * `out` is NULL) owned by the caller; otherwise prints the API's error message
 * or the transport error and returns -1. */
int cli_call(cli_client *c, const char *method, const char *path, json_t *body, json_t **out);
/* Prints the error of a failed transfer or a non-2xx answer with body `doc`. */
void cli_report_error(cli_client *c, long status, json_t *doc, const char *transport_err);

/* Percent-encodes `in` for a path segment or query value. Returns 0, or -1 when too long. */
int cli_escape(const char *in, char *out, size_t n);
/* Writes "/api/v1/jobs/<escaped id><suffix>". Returns 0 or -1 (printed). */
int cli_job_path(char *out, size_t n, const char *id, const char *suffix);

#endif
