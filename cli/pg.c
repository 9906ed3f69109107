/* prism pg list, get, remove: placement groups (docs/placement-groups.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "client.h"
#include "format.h"
#include "prism_buf.h"

/* "2/3 on 2 nodes": bundles reserved, of how many, on how many nodes. */
static void placed(json_t *g, char *out, size_t n)
{
    json_t *bundles = json_object_get(g, "bundles"), *nodes = json_object();
    size_t i, held = 0;
    json_t *b;
    json_array_foreach(bundles, i, b) {
        const char *node = json_string_value(json_object_get(b, "node_id"));
        if (node) {
            held++;
            json_object_set_new(nodes, node, json_true());
        }
    }
    snprintf(out, n, "%zu/%zu on %zu", held, json_array_size(bundles), json_object_size(nodes));
    json_decref(nodes);
}

static void print_row(json_t *g)
{
    char where[64];
    placed(g, where, sizeof where);
    printf("%-32s  %-16.16s  %-13s  %-12s  %-13s  %s\n", fmt_str(g, "placement_group_id", "?"),
           fmt_str(g, "name", "-"), fmt_str(g, "strategy", "?"), fmt_str(g, "state", "?"), where,
           fmt_str(g, "reason", ""));
}

typedef struct list_args {
    const char *filters[2];
    int64_t limit;
    bool as_json;
} list_args;

static int list_run(cli_client *c, const cli_parsed *p, void *ud)
{
    static const char *const names[2] = {"state", "name"};
    const list_args *a = ud;
    (void)p;
    char path[4096] = "/api/v1/placement_groups?";
    for (int i = 0; i < 2; i++)
        if (cli_add_query(path, sizeof path, names[i], a->filters[i]) != 0)
            return -1;
    char header[256];
    snprintf(header, sizeof header, "%-32s  %-16s  %-13s  %-12s  %-13s  %s", "PLACEMENT GROUP ID",
             "NAME", "STRATEGY", "STATE", "BUNDLES/NODES", "REASON");
    return cli_list_pages(c, path, "placement_groups", a->limit > 0 ? a->limit : 0, a->as_json,
                          header, print_row);
}

static int pg_list(int argc, char **argv)
{
    list_args a = {.limit = 100};
    cli_opt opts[] = {
        {"state", 's', CLI_STRING, &a.filters[0], "S",
         "only groups in state S (PENDING, CREATED, RESCHEDULING, REMOVED)"},
        {"name", 0, CLI_STRING, &a.filters[1], "NAME", "only groups named NAME"},
        {"limit", 'l', CLI_INT, &a.limit, "N", "at most N groups (default 100)"},
        {"json", 0, CLI_FLAG, &a.as_json, NULL, "one JSON placement group object per line"},
    };
    cli_command cmd = {
        .usage = "prism pg list [--state S] [--name NAME] [--limit N] [--json]",
        .summary = "Lists placement groups, newest first: name, strategy, state, bundles reserved "
                   "of all and on how many nodes, and why one is not placed.",
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
    };
    return cli_command_run(&cmd, argc, argv, list_run, &a);
}

static void print_group(json_t *g)
{
    printf("placement group %s\n  name:     %s\n  strategy: %s\n  state:    %s\n",
           fmt_str(g, "placement_group_id", "?"), fmt_str(g, "name", "-"),
           fmt_str(g, "strategy", "?"), fmt_str(g, "state", "?"));
    if (json_is_string(json_object_get(g, "reason")))
        printf("  reason:   %s\n", fmt_str(g, "reason", ""));
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(g, "bundles"), i, b) {
        prism_buf res;
        prism_buf_init(&res, 1 << 16);
        fmt_resources(json_object_get(b, "resources"), &res);
        printf("  bundle %-3lld %-32s  %s\n", (long long)fmt_int(b, "index"),
               fmt_str(b, "node_id", "(not reserved)"), res.data ? res.data : "-");
        prism_buf_free(&res);
    }
}

/* get and remove: one group by ID. */
static int one_group(int argc, char **argv, bool remove)
{
    bool as_json = false;
    cli_opt opts[] = {{"json", 0, CLI_FLAG, &as_json, NULL, "the JSON placement group object"}};
    cli_command cmd = {
        .usage = remove ? "prism pg remove ID" : "prism pg get ID [--json]",
        .summary = remove ? "Removes a placement group: its bundles are returned and the tasks "
                            "and actors in it killed."
                          : "Shows a placement group: its state and where each bundle is.",
        .opts = opts,
        .nopts = remove ? 0 : 1,
        .min_pos = 1,
        .max_pos = 1,
    };
    cli_parsed p;
    int rc = cli_parse_exit(cli_parse(&cmd, argc, argv, &p));
    if (rc >= 0)
        return rc;
    char path[1200], esc[1024];
    if (cli_escape(p.pos[0], esc, sizeof esc) != 0) {
        fprintf(stderr, "prism: placement group id is too long\n");
        return CLI_EXIT_USAGE;
    }
    snprintf(path, sizeof path, "/api/v1/placement_groups/%s", esc);
    cli_client c;
    if (cli_client_open(&c) != 0)
        return CLI_EXIT_FAIL;
    json_t *g = NULL;
    rc = cli_call(&c, remove ? "DELETE" : "GET", path, NULL, &g) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    if (rc == CLI_EXIT_OK && remove)
        printf("Removed placement group %s\n", p.pos[0]);
    else if (rc == CLI_EXIT_OK && as_json) {
        json_dumpf(g, stdout, JSON_COMPACT);
        putchar('\n');
    } else if (rc == CLI_EXIT_OK)
        print_group(g);
    json_decref(g);
    cli_client_close(&c);
    return rc;
}

static int pg_get(int argc, char **argv) { return one_group(argc, argv, false); }
static int pg_remove(int argc, char **argv) { return one_group(argc, argv, true); }

int cmd_pg(int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"list", pg_list, "list placement groups: prism pg list [--state S] [--limit N] [--json]"},
        {"get", pg_get, "show one: prism pg get ID [--json]"},
        {"remove", pg_remove, "remove one: prism pg remove ID"},
    };
    return cli_subcommands("pg", subs, sizeof subs / sizeof subs[0], argc, argv);
}
