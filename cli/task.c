/* prism task list, prism object list: what the cluster ran lately, and the
 * objects the GCS holds for curl users. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "client.h"
#include "format.h"

/* Runs a list command: GET `path`, then one row (or JSON line) per member of `key`. */
static int list(int argc, char **argv, const char *usage, const char *summary, const char *base,
                const char *key, void (*header)(void), void (*row)(json_t *))
{
    const char *state = NULL;
    int64_t limit = 100;
    bool as_json = false;
    cli_opt opts[] = {
        {"state", 's', CLI_STRING, &state, "S", "only those in state S"},
        {"limit", 'l', CLI_INT, &limit, "N", "at most N (default 100, at most 1000)"},
        {"json", 0, CLI_FLAG, &as_json, NULL, "one JSON object per line"},
    };
    cli_command cmd = {.usage = usage, .summary = summary, .opts = opts,
                       .nopts = sizeof opts / sizeof opts[0]};
    cli_parsed p;
    int rc = cli_parse_exit(cli_parse(&cmd, argc, argv, &p));
    if (rc >= 0)
        return rc;
    char path[512], esc[128] = "";
    if (state && cli_escape(state, esc, sizeof esc) != 0)
        return CLI_EXIT_USAGE;
    snprintf(path, sizeof path, "%s?limit=%lld%s%s", base, (long long)limit,
             state ? "&state=" : "", esc);
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
    printf("%-40s  %-6s  %-24s  %s\n", "OBJECT ID", "OWNER", "TASK", "CREATED");
}

static void object_row(json_t *o)
{
    char when[32];
    fmt_time(json_object_get(o, "created_at"), when, sizeof when);
    printf("%-40s  %-6s  %-24.24s  %s\n", fmt_str(o, "object_id", "?"), fmt_str(o, "owner", "?"),
           fmt_str(o, "task", "?"), when);
}

int cmd_task(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "list"))
        return list(argc - 1, argv + 1, "prism task list [--state PENDING|FINISHED|FAILED] [--limit N] [--json]",
                    "Lists the cluster's recent tasks, newest first (as their owners reported them).",
                    "/api/v1/tasks", "tasks", task_header, task_row);
    fprintf(argc < 2 || strcmp(argv[1], "--help") ? stderr : stdout,
            "usage: prism task list [--state S] [--limit N] [--json]\n");
    return argc >= 2 && !strcmp(argv[1], "--help") ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

int cmd_object(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "list"))
        return list(argc - 1, argv + 1, "prism object list [--limit N] [--json]",
                    "Lists the objects the GCS holds for POST /api/v1/tasks, newest first.",
                    "/api/v1/objects", "objects", object_header, object_row);
    fprintf(argc < 2 || strcmp(argv[1], "--help") ? stderr : stdout,
            "usage: prism object list [--limit N] [--json]\n");
    return argc >= 2 && !strcmp(argv[1], "--help") ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}
