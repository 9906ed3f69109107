/* Command-line parsing for the prism command: each subcommand declares its
 * flags in one table, and the parser fills the values, collects positional
 * arguments and prints help. Unlike the services' prism_config, flags are not
 * read from the environment: a PRISM_* variable meant for a service must not
 * change what a CLI command does. */
#ifndef PRISM_CLI_ARGS_H
#define PRISM_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum cli_arg_type {
    CLI_FLAG,   /* bool *: present or not */
    CLI_STRING, /* const char **: points into argv */
    CLI_INT,    /* int64_t * */
    CLI_SIZE,   /* int64_t *: bytes, with K/M/G/T or KiB/MiB/GiB/TiB suffixes */
    CLI_NUMBER, /* double *: non-negative */
    CLI_LIST,   /* cli_list *: every occurrence, in order */
} cli_arg_type;

typedef struct cli_list {
    const char **items; /* the array is owned (free with cli_command_free); items point into argv */
    size_t n;
} cli_list;

typedef struct cli_opt {
    const char *name; /* long name, used as --name */
    char short_name;  /* -x, or 0 */
    cli_arg_type type;
    void *value;
    const char *metavar; /* shown in help: "N", "SIZE"... NULL for flags */
    const char *help;
} cli_opt;

#define CLI_MAX_POS 8

typedef struct cli_command {
    const char *usage;   /* "prism job logs ID [-f]" */
    const char *summary; /* one paragraph shown under the usage */
    cli_opt *opts;
    size_t nopts;
    int min_pos, max_pos; /* positional arguments accepted */
    /* When true, "--" or the first positional argument ends parsing and the
     * rest of argv is the command's tail (job submit's entrypoint). */
    bool tail;
} cli_command;

typedef struct cli_parsed {
    char *pos[CLI_MAX_POS];
    int npos;
    int tail; /* index in argv of the first tail argument; argc when none */
} cli_parsed;

enum { CLI_PARSE_OK = 0, CLI_PARSE_HELP = 1, CLI_PARSE_ERROR = 2 };

/* Parses argv[1..]: the command's flags and the global ones (--address,
 * --token). Prints help (CLI_PARSE_HELP) or an error (CLI_PARSE_ERROR) itself. */
int cli_parse(const cli_command *cmd, int argc, char **argv, cli_parsed *out);
void cli_print_help(FILE *f, const cli_command *cmd);
/* Frees the arrays of the command's CLI_LIST options. */
void cli_command_free(const cli_command *cmd);

/* The global flags, settable before the command or among its flags. */
extern const char *cli_global_address;
extern const char *cli_global_token;
/* Parses leading global flags of argv[1..] (up to the command name).
 * Returns the index of the command name, argc when none, or -1 after an error. */
int cli_parse_globals(int argc, char **argv);
void cli_print_global_help(FILE *f);

#endif
