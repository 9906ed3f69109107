/* prism task list, prism object list: what the cluster ran lately, and the
 * objects every owner holds, as the owners report them. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "client.h"
#include "format.h"

/* Runs a list command: GET `path`, then one row (or JSON line) per member of
 * `key`. Objects are also filtered by owner and node. */
static int list(int argc, char **argv, const char *usage, const char *summary, const char *base,
                const char *key, void (*header)(void), void (*row)(json_t *), bool objects)
{
    const char *state = NULL, *owner = NULL, *node = NULL;
    int64_t limit = 100;
    bool as_json = false;
    cli_opt opts[] = {
        {"state", 's', CLI_STRING, &state, "S", "only those in state S"},
        {"limit", 'l', CLI_INT, &limit, "N", "at most N (default 100, at most 1000)"},
        {"json", 0, CLI_FLAG, &as_json, NULL, "one JSON object per line"},
        {"owner", 'o', CLI_STRING, &owner, "OWNER",
         "only those this owner holds (\"gcs\": the REST API's)"},
        {"node", 'n', CLI_STRING, &node, "NODE_ID", "only those whose value is on this node"},
    };
    cli_command cmd = {.usage = usage,
                       .summary = summary,
                       .opts = opts,
                       .nopts = sizeof opts / sizeof opts[0] - (objects ? 0 : 2)};
    cli_parsed p;
    int rc = cli_parse_exit(cli_parse(&cmd, argc, argv, &p));
    if (rc >= 0)
        return rc;
    char path[2048];
    snprintf(path, sizeof path, "%s?limit=%lld", base, (long long)limit);
    if (cli_add_query(path, sizeof path, "state", state) != 0 ||
        cli_add_query(path, sizeof path, "owner", owner) != 0 ||
        cli_add_query(path, sizeof path, "node_id", node) != 0)
        return CLI_EXIT_USAGE;
    cli_client c;
    if (cli_client_open(&c) != 0)
        return CLI_EXIT_FAIL;
    json_t *doc = NULL, *item;
    rc = cli_call(&c, "GET", path, NULL, &doc) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    if (rc == CLI_EXIT_OK && !as_json)
        header();
    size_t i;
    json_array_foreach(json_object_get(doc, key), i, item) {
        if (as_json) {
            json_dumpf(item, stdout, JSON_COMPACT);
            printf("\n");
        } else {
            row(item);
        }
    }
    json_int_t total = json_integer_value(json_object_get(doc, "total"));
    json_int_t unreported = json_integer_value(json_object_get(doc, "unreported"));
    if (objects && !as_json && total > (json_int_t)i)
        printf("(%zu of %lld shown)\n", i, (long long)total);
    if (objects && !as_json && unreported > 0)
        printf("(and %lld more that their owners hold but do not list)\n", (long long)unreported);
    json_decref(doc);
    cli_client_close(&c);
    return rc;
}

static void task_header(void)
{
    printf("%-32s  %-8s  %-24s  %-12s  %-19s  %s\n", "TASK ID", "STATE", "NAME", "NODE",
           "SUBMITTED", "ERROR / REASON");
}

static void task_row(json_t *t)
{
    char when[32], node[13];
    fmt_time(json_object_get(t, "submitted_at"), when, sizeof when);
    snprintf(node, sizeof node, "%s", fmt_str(t, "node_id", "-"));
    const char *why = fmt_str(t, "error", fmt_str(t, "reason", ""));
    printf("%-32s  %-8s  %-24.24s  %-12s  %-19s  %s\n", fmt_str(t, "task_id", "?"),
           fmt_str(t, "state", "?"), fmt_str(t, "name", "?"), node, when, why);
}

static void object_header(void)
{
    printf("%-40s  %-38s  %-7s  %-5s  %-12s  %-5s  %-10s  %s\n", "OBJECT ID", "OWNER", "STATE",
           "IN", "NODE", "FROM", "SIZE", "REFS");
}

/* IN: the value is in the owner's memory or in the object store of NODE. */
static void object_row(json_t *o)
{
    char node[13], size[32], borrowers[48] = "";
    snprintf(node, sizeof node, "%s", fmt_str(o, "node_id", "-")); /* as in the task list */
    fmt_bytes((double)fmt_int(o, "size"), size, sizeof size);
    if (fmt_int(o, "borrowers") > 0) /* other processes holding references */
        snprintf(borrowers, sizeof borrowers, " +%lld borrowing",
                 (long long)fmt_int(o, "borrowers"));
    printf("%-40s  %-38s  %-7s  %-5s  %-12s  %-5s  %-10s  %lld%s%s\n", fmt_str(o, "object_id", "?"),
           fmt_str(o, "owner", "?"), fmt_str(o, "state", "?"), fmt_str(o, "location", "-"), node,
           fmt_str(o, "source", "?"), !strcmp(fmt_str(o, "state", ""), "READY") ? size : "-",
           (long long)fmt_int(o, "refs"), borrowers,
           json_is_true(json_object_get(o, "lost")) ? "  (lost)" : "");
}

int cmd_task(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "list"))
        return list(
            argc - 1, argv + 1,
            "prism task list [--state PENDING|FINISHED|FAILED] [--limit N] [--json]",
            "Lists the cluster's recent tasks, newest first (as their owners reported them).",
            "/api/v1/tasks", "tasks", task_header, task_row, false);
    fprintf(argc < 2 || strcmp(argv[1], "--help") ? stderr : stdout,
            "usage: prism task list [--state S] [--limit N] [--json]\n");
    return argc >= 2 && !strcmp(argv[1], "--help") ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

int cmd_object(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "list"))
        return list(argc - 1, argv + 1,
                    "prism object list [--owner OWNER] [--node NODE_ID]\n"
                    "                         [--state PENDING|READY|FAILED] [--limit N] [--json]",
                    "Lists the objects of every owner in the cluster, as the owners last reported\n"
                    "them (each lists at most 1000 of its objects; the others are counted).",
                    "/api/v1/objects", "objects", object_header, object_row, true);
    fprintf(argc < 2 || strcmp(argv[1], "--help") ? stderr : stdout,
            "usage: prism object list [--owner OWNER] [--node NODE_ID] [--state S] [--limit N] "
            "[--json]\n");
    return argc >= 2 && !strcmp(argv[1], "--help") ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}
