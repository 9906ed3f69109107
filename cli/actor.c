/* prism actor list, prism actor kill: the actors the GCS manages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "client.h"
#include "format.h"

static void print_row(json_t *a)
{
    char restarts[32];
    int64_t max = fmt_int(a, "max_restarts");
    if (max < 0)
        snprintf(restarts, sizeof restarts, "%lld/-", (long long)fmt_int(a, "restarts"));
    else
        snprintf(restarts, sizeof restarts, "%lld/%lld", (long long)fmt_int(a, "restarts"),
                 (long long)max);
    /* The last column says why: the cause of a DEAD actor, the reason a pending one waits. */
    printf("%-32s  %-16.16s  %-16.16s  %-16s  %-12.12s  %-8s  %s\n", fmt_str(a, "actor_id", "?"),
           fmt_str(a, "class", "?"), fmt_str(a, "name", "-"), fmt_str(a, "state", "?"),
           fmt_str(a, "node_id", "-"), restarts, fmt_str(a, "cause", fmt_str(a, "reason", "")));
}

typedef struct list_args {
    const char *filters[4];
    int64_t limit;
    bool as_json;
} list_args;

static int list_run(cli_client *c, const cli_parsed *p, void *ud)
{
    static const char *const names[4] = {"state", "name", "namespace", "class"};
    const list_args *a = ud;
    const char *const *filters = a->filters;
    (void)p;
    char path[8192] = "/api/v1/actors?";
    for (int i = 0; i < 4; i++)
        if (cli_add_query(path, sizeof path, names[i], filters[i]) != 0)
            return -1;
    char header[256];
    snprintf(header, sizeof header, "%-32s  %-16s  %-16s  %-16s  %-12s  %-8s  %s", "ACTOR ID",
             "CLASS", "NAME", "STATE", "NODE", "RESTARTS", "CAUSE / REASON");
    return cli_list_pages(c, path, "actors", a->limit > 0 ? a->limit : 0, a->as_json, header,
                          print_row);
}

static int actor_list(int argc, char **argv)
{
    list_args a = {.limit = 100};
    cli_opt opts[] = {
        {"state", 's', CLI_STRING, &a.filters[0], "S",
         "only actors in state S (PENDING_CREATION, ALIVE, RESTARTING, DEAD)"},
        {"name", 0, CLI_STRING, &a.filters[1], "NAME", "only actors named NAME"},
        {"namespace", 0, CLI_STRING, &a.filters[2], "NS", "only actors in namespace NS"},
        {"class", 0, CLI_STRING, &a.filters[3], "CLASS", "only actors of class CLASS"},
        {"limit", 'l', CLI_INT, &a.limit, "N", "at most N actors (default 100)"},
        {"json", 0, CLI_FLAG, &a.as_json, NULL, "one JSON actor object per line"},
    };
    cli_command cmd = {
        .usage = "prism actor list [--state S] [--name NAME] [--namespace NS] [--class CLASS] "
                 "[--limit N] [--json]",
        .summary = "Lists actors, newest first: class, name, state, node, restarts (done/allowed), "
                   "and why a DEAD one died or a pending one waits.",
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
    };
    return cli_command_run(&cmd, argc, argv, list_run, &a);
}

static int actor_kill(int argc, char **argv)
{
    bool restart = false;
    cli_opt opts[] = {
        {"restart", 0, CLI_FLAG, &restart, NULL,
         "restart it as after a crash, if max_restarts allows (without it: killed for good)"},
    };
    cli_command cmd = {
        .usage = "prism actor kill ID [--restart]",
        .summary = "Kills an actor: its worker runs the destructor and exits. The actor is then "
                   "DEAD (\"killed\"), or with --restart restarts as after a crash.",
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
        .min_pos = 1,
        .max_pos = 1,
    };
    cli_parsed p;
    int rc = cli_parse_exit(cli_parse(&cmd, argc, argv, &p));
    if (rc >= 0)
        return rc;
    char path[1200], esc[1024];
    if (cli_escape(p.pos[0], esc, sizeof esc) != 0) {
        fprintf(stderr, "prism: actor id is too long\n");
        return CLI_EXIT_USAGE;
    }
    snprintf(path, sizeof path, "/api/v1/actors/%s/kill", esc);
    cli_client c;
    if (cli_client_open(&c) != 0)
        return CLI_EXIT_FAIL;
    json_t *body = json_pack("{s:b}", "no_restart", !restart), *a = NULL;
    rc = cli_call(&c, "POST", path, body, &a) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    if (rc == CLI_EXIT_OK)
        printf("Killed actor %s (state %s%s%s)\n", p.pos[0], fmt_str(a, "state", "?"),
               json_object_get(a, "cause") ? ": " : "", fmt_str(a, "cause", ""));
    json_decref(body);
    json_decref(a);
    cli_client_close(&c);
    return rc;
}

int cmd_actor(int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"list", actor_list, "list actors: prism actor list [--state S] [--limit N] [--json]"},
        {"kill", actor_kill, "kill an actor: prism actor kill ID [--restart]"},
    };
    return cli_subcommands("actor", subs, sizeof subs / sizeof subs[0], argc, argv);
}
