/* prism: the command-line client. Starts and stops a local cluster, submits
 * and follows jobs, uploads packages. Subcommands dispatch from one table. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "cli.h"

#ifndef PRISM_VERSION
#define PRISM_VERSION "dev"
#endif

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"up", cmd_up, "start a local cluster (nats-server, GCS, node agents) on loopback"},
    {"down", cmd_down, "stop the local cluster"},
    {"status", cmd_status, "show the cluster's nodes, resources and jobs"},
    {"job", cmd_job, "submit, list, follow, stop and delete jobs"},
    {"package", cmd_package, "upload a file or directory as a package"},
    {"task", cmd_task, "list the cluster's recent tasks"},
    {"object", cmd_object, "list the objects the GCS holds for REST task users"},
    {"actor", cmd_actor, "list and kill actors"},
    {"pg", cmd_pg, "list, show and remove placement groups"},
    {"dag", cmd_dag, "list and show compiled DAGs"},
    {"dashboard", cmd_dashboard, "print the URL of the cluster's web dashboard"},
    {"data", cmd_data, "run, list, inspect, stop and explain datasets"},
    {"timeline", cmd_timeline, "write the recent tasks as a Chrome trace (Perfetto)"},
};

int cli_parse_exit(int parse_rc)
{
    if (parse_rc == CLI_PARSE_HELP)
        return CLI_EXIT_OK;
    if (parse_rc == CLI_PARSE_ERROR)
        return CLI_EXIT_USAGE;
    return -1;
}

static void print_help(FILE *f)
{
    fprintf(f, "usage: prism [--address URL] [--token TOKEN] COMMAND [ARGS...]\n\n"
               "The command-line client of Prism, a distributed execution system.\n\n"
               "Commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-10s %s\n", "version", "print the version");
    cli_print_global_help(f);
    fprintf(f, "\nEnvironment: PRISM_HOME (state of `prism up`, default ~/.prism),\n"
               "PRISM_ADDRESS and PRISM_TOKEN (the cluster to talk to).\n"
               "Run `prism COMMAND --help` for a command's options.\n");
}

int main(int argc, char **argv)
{
    int i = cli_parse_globals(argc, argv);
    if (i < 0)
        return CLI_EXIT_USAGE;
    if (i >= argc) {
        print_help(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[i];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        print_help(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(name, "version") || !strcmp(name, "--version")) {
        printf("prism %s\n", PRISM_VERSION);
        return CLI_EXIT_OK;
    }
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++)
        if (!strcmp(name, commands[c].name))
            return commands[c].run(argc - i, argv + i);
    fprintf(stderr, "prism: unknown command '%s' (see prism --help)\n", name);
    return CLI_EXIT_USAGE;
}
