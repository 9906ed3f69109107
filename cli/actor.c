/* prism actor list, prism actor kill: the actors the GCS manages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "client.h"
#include "format.h"

#define LIST_PAGE 100

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

/* Appends "&name=<escaped value>" when `value` is set. Returns 0 or -1. */
static int add_query(char *path, size_t n, const char *name, const char *value)
{
    char esc[1024];
    if (!value)
        return 0;
    size_t len = strlen(path);
    if (cli_escape(value, esc, sizeof esc) != 0 ||
        (size_t)snprintf(path + len, n - len, "&%s=%s", name, esc) >= n - len) {
        fprintf(stderr, "prism: --%s is too long\n", name);
        return -1;
    }
    return 0;
}

static int list_run(cli_client *c, const char *const filters[4], int64_t limit, bool as_json)
{
    static const char *const names[4] = {"state", "name", "namespace", "class"};
    char *cursor = NULL;
    int64_t shown = 0;
    int rc = 0;
    if (!as_json)
        printf("%-32s  %-16s  %-16s  %-16s  %-12s  %-8s  %s\n", "ACTOR ID", "CLASS", "NAME",
               "STATE", "NODE", "RESTARTS", "CAUSE / REASON");
    while (shown < limit && rc == 0) {
        char path[8192];
        int64_t want = limit - shown < LIST_PAGE ? limit - shown : LIST_PAGE;
        snprintf(path, sizeof path, "/api/v1/actors?limit=%lld", (long long)want);
        for (int i = 0; i < 4 && rc == 0; i++)
            rc = add_query(path, sizeof path, names[i], filters[i]);
        if (rc == 0)
            rc = add_query(path, sizeof path, "cursor", cursor);
        json_t *doc = NULL, *a;
        if (rc == 0 && cli_call(c, "GET", path, NULL, &doc) != 0)
            rc = -1;
        size_t i;
        json_array_foreach(json_object_get(doc, "actors"), i, a) {
            shown++;
            if (as_json) {
                json_dumpf(a, stdout, JSON_COMPACT);
                printf("\n");
            } else {
                print_row(a);
            }
        }
        const char *next = json_string_value(json_object_get(doc, "next_cursor"));
        free(cursor);
        cursor = next && *next && i > 0 ? strdup(next) : NULL;
        json_decref(doc);
        if (!cursor)
            break;
    }
    free(cursor);
    return rc;
}

static int actor_list(int argc, char **argv)
{
    const char *filters[4] = {NULL, NULL, NULL, NULL};
    int64_t limit = 100;
    bool as_json = false;
    cli_opt opts[] = {
        {"state", 's', CLI_STRING, &filters[0], "S",
         "only actors in state S (PENDING_CREATION, ALIVE, RESTARTING, DEAD)"},
        {"name", 0, CLI_STRING, &filters[1], "NAME", "only actors named NAME"},
        {"namespace", 0, CLI_STRING, &filters[2], "NS", "only actors in namespace NS"},
        {"class", 0, CLI_STRING, &filters[3], "CLASS", "only actors of class CLASS"},
        {"limit", 'l', CLI_INT, &limit, "N", "at most N actors (default 100)"},
        {"json", 0, CLI_FLAG, &as_json, NULL, "one JSON actor object per line"},
    };
    cli_command cmd = {
        .usage = "prism actor list [--state S] [--name NAME] [--namespace NS] [--class CLASS] "
                 "[--limit N] [--json]",
        .summary = "Lists actors, newest first: class, name, state, node, restarts (done/allowed), "
                   "and why a DEAD one died or a pending one waits.",
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
    };
    cli_parsed p;
    int rc = cli_parse_exit(cli_parse(&cmd, argc, argv, &p));
    if (rc >= 0)
        return rc;
    cli_client c;
    if (cli_client_open(&c) != 0)
        return CLI_EXIT_FAIL;
    rc = list_run(&c, filters, limit > 0 ? limit : 0, as_json) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    cli_client_close(&c);
    return rc;
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
    if (argc >= 2 && !strcmp(argv[1], "list"))
        return actor_list(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "kill"))
        return actor_kill(argc - 1, argv + 1);
    bool help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
                              !strcmp(argv[1], "help"));
    if (argc >= 2 && !help)
        fprintf(stderr, "prism: unknown actor command '%s' (see prism actor --help)\n", argv[1]);
    fprintf(help ? stdout : stderr,
            "usage: prism actor COMMAND [ARGS...]\n\nCommands:\n"
            "  list     list actors: prism actor list [--state S] [--limit N] [--json]\n"
            "  kill     kill an actor: prism actor kill ID [--restart]\n"
            "\nRun `prism actor COMMAND --help` for a command's options.\n");
    return help ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}
