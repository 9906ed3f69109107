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
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "args.h"
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
/* Appends "&name=<escaped value>" to the path `path` (room `n`) when `value`
 * is set. Returns 0, or -1 (printed) when it does not fit. */
int cli_add_query(char *path, size_t n, const char *name, const char *value);

/* The body of most commands: parses `cmd` (usage errors and --help are
 * answered here), opens a client, runs fn(client, parsed, ud) and closes it.
 * Returns the exit status: CLI_EXIT_OK when fn returned 0, else
 * CLI_EXIT_FAIL. */
int cli_command_run(const cli_command *cmd, int argc, char **argv,
                    int (*fn)(cli_client *c, const cli_parsed *p, void *ud), void *ud);

/* A paginated list (`key` is the array in each page: "jobs", "actors"...):
 * GET `path` (which has its query filters after a "?") page by page,
 * following next_cursor, until `limit` items. Without `as_json` prints
 * `header` then each item with `row`; with it, one JSON object per line.
 * Returns 0 or -1 (printed). */
int cli_list_pages(cli_client *c, const char *path, const char *key, int64_t limit, bool as_json,
                   const char *header, void (*row)(json_t *item));

/* A command made of subcommands (prism job, actor, pg, dag, data). */
typedef struct cli_subcommand {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand's name */
    const char *summary;               /* one line in the group's help */
} cli_subcommand;

/* Runs the subcommand argv[1] names; `prism GROUP [--help]` prints the list
 * (to stdout when asked for, else to stderr as a usage error), an unknown
 * name is a usage error. Returns the exit status. */
int cli_subcommands(const char *group, const cli_subcommand *subs, size_t n, int argc, char **argv);

#endif
