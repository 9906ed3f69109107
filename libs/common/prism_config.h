/* Configuration from command-line flags and PRISM_* environment variables.
 *
 * A binary declares its options in one table. Each option `name` is set by
 * `--name VALUE` (or `--name=VALUE`), else by the environment variable
 * PRISM_NAME (upper case, '-' becomes '_'), else by its default. Flags win
 * over the environment, which wins over defaults.
 *
 *   static char *listen; static int64_t port;
 *   prism_option opts[] = {
 *       {"listen", PRISM_OPT_STRING, &listen, "127.0.0.1", "address to bind"},
 *       {"port", PRISM_OPT_INT, &port, "8265", "port to bind (0: any free port)"},
 *   };
 *
 * Strings set by the parser are heap copies owned by the table: release them
 * with prism_config_free(). */
#ifndef PRISM_CONFIG_H
#define PRISM_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum prism_opt_type {
    PRISM_OPT_STRING, /* value: char ** */
    PRISM_OPT_INT,    /* value: int64_t * */
    PRISM_OPT_BOOL,   /* value: bool *; a bare flag means true, "true|false|1|0" are read */
    PRISM_OPT_SIZE,   /* value: int64_t *; bytes, with K/M/G/T or KiB/MiB/GiB/TiB suffixes */
    PRISM_OPT_DOUBLE, /* value: double * */
} prism_opt_type;

typedef struct prism_option {
    const char *name;
    prism_opt_type type;
    void *value;
    const char *def; /* default in the same text form as a flag; NULL for none */
    const char *help;
} prism_option;

enum {
    PRISM_CONFIG_OK = 0,
    PRISM_CONFIG_HELP = 1,   /* --help or -h was given: print help, exit 0 */
    PRISM_CONFIG_ERROR = -1, /* `err` says what was wrong */
};

/* Parses argv[1..] up to the first argument that is not a flag, or past "--".
 * When `rest` is not NULL it receives the index of the first argument left
 * over; when it is NULL, left-over arguments are an error. */
int prism_config_parse(prism_option *opts, size_t n, int argc, char **argv, int *rest, char *err,
                       size_t errlen);

/* Where an option's value came from. */
typedef enum prism_opt_origin {
    PRISM_OPT_FROM_DEFAULT = 0, /* its default, or unset */
    PRISM_OPT_FROM_ENV,         /* its PRISM_* variable */
    PRISM_OPT_FROM_FLAG,        /* the command line */
} prism_opt_origin;

/* prism_config_parse that also says, in `from[i]`, where the value of
 * opts[i] came from (`from` has `n` entries; NULL is allowed). */
int prism_config_parse_from(prism_option *opts, size_t n, int argc, char **argv, int *rest,
                            prism_opt_origin *from, char *err, size_t errlen);

/* Writes "usage" and one line per option with its environment variable and default. */
void prism_config_print_help(FILE *out, const prism_option *opts, size_t n, const char *usage);

/* Frees the strings the parser set; leaves the table reusable. */
void prism_config_free(prism_option *opts, size_t n);

/* Parses a byte size such as "512MiB", "2G" or "4096". Returns 0 or -1. */
int prism_parse_size(const char *text, int64_t *out);

#endif
