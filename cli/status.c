/* prism status: the cluster's summary, then one line per node. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "client.h"
#include "format.h"
#include "prism_time.h"

#define MAX_NODE_PAGES 100

static void print_summary(cli_client *c, json_t *cl)
{
    json_t *res = json_object_get(cl, "resources"), *jobs = json_object_get(cl, "jobs");
    prism_buf buf;
    prism_buf_init(&buf, 1 << 16);
    fmt_resources_avail(json_object_get(res, "available"), json_object_get(res, "total"), &buf);
    printf("Cluster %s (version %s)\n", c->address, fmt_str(cl, "version", "?"));
    printf("  nodes:     %lld alive, %lld dead\n", (long long)fmt_int(cl, "nodes_alive"),
           (long long)fmt_int(cl, "nodes_dead"));
    printf("  resources: %s (available/total)\n", buf.data ? buf.data : "-");
    printf("  jobs:      %lld pending, %lld running\n", (long long)fmt_int(jobs, "pending"),
           (long long)fmt_int(jobs, "running"));
    prism_buf_free(&buf);
}

static void print_node(json_t *node)
{
    prism_buf res;
    prism_buf_init(&res, 1 << 16);
    json_t *avail = json_object_get(node, "available"), *total = json_object_get(node, "resources");
    if (json_is_object(avail))
        fmt_resources_avail(avail, total, &res);
    else
        fmt_resources(total, &res);
    char ago[32] = "-";
    json_t *hb = json_object_get(node, "last_heartbeat");
    if (json_is_number(hb)) {
        fmt_duration(prism_now_ms() - (int64_t)json_number_value(hb), ago, sizeof ago);
        strncat(ago, " ago", sizeof ago - strlen(ago) - 1);
    }
    printf("  %-12s %-6s %-12.12s %-24s %-12s %s\n", fmt_str(node, "name", "-"),
           fmt_str(node, "state", "?"), fmt_str(node, "node_id", "-"),
           fmt_str(node, "address", "-"), ago, res.data ? res.data : "-");
    const char *msg = fmt_str(node, "message", NULL);
    if (msg)
        printf("  %-12s %s\n", "", msg);
    prism_buf_free(&res);
}

/* One line: each service of GET /api/v1/services with its state, e.g.
 * "gcs ALIVE, scheduler ALIVE, dataservice ALIVE". */
static void print_services(cli_client *c)
{
    json_t *doc = NULL, *svc;
    size_t i;
    if (cli_call(c, "GET", "/api/v1/services", NULL, &doc) != 0)
        return;
    printf("  services:  ");
    json_array_foreach(json_object_get(doc, "services"), i, svc)
        printf("%s%s %s", i ? ", " : "", fmt_str(svc, "service", "?"), fmt_str(svc, "state", "?"));
    printf("\n");
    json_decref(doc);
}

/* Prints every page of GET /api/v1/nodes. */
static int print_nodes(cli_client *c)
{
    char path[1200] = "/api/v1/nodes?limit=100";
    printf("\n  %-12s %-6s %-12s %-24s %-12s %s\n", "NAME", "STATE", "NODE ID", "ADDRESS",
           "HEARTBEAT", "RESOURCES (available/total)");
    for (int page = 0; page < MAX_NODE_PAGES; page++) {
        json_t *doc = NULL, *node;
        size_t i;
        if (cli_call(c, "GET", path, NULL, &doc) != 0)
            return -1;
        json_array_foreach(json_object_get(doc, "nodes"), i, node)
            print_node(node);
        const char *next = json_string_value(json_object_get(doc, "next_cursor"));
        char esc[1024];
        bool more = next && *next && cli_escape(next, esc, sizeof esc) == 0;
        if (more)
            snprintf(path, sizeof path, "/api/v1/nodes?limit=100&cursor=%s", esc);
        json_decref(doc);
        if (!more)
            break;
    }
    return 0;
}

static int status_run(bool as_json)
{
    cli_client c;
    json_t *cl = NULL;
    int rc = CLI_EXIT_FAIL;
    if (cli_client_open(&c) != 0)
        return CLI_EXIT_FAIL;
    if (cli_call(&c, "GET", "/api/v1/cluster", NULL, &cl) != 0)
        goto out;
    if (as_json) {
        json_dumpf(cl, stdout, JSON_INDENT(2));
        printf("\n");
        rc = CLI_EXIT_OK;
        goto out;
    }
    print_summary(&c, cl);
    print_services(&c);
    rc = print_nodes(&c) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
out:
    json_decref(cl);
    cli_client_close(&c);
    return rc;
}

int cmd_status(int argc, char **argv)
{
    bool as_json = false;
    cli_opt opts[] = {
        {"json", 0, CLI_FLAG, &as_json, NULL, "print GET /api/v1/cluster as JSON"},
    };
    cli_command cmd = {
        .usage = "prism status [--json]",
        .summary = "Shows the cluster: nodes alive and dead, total and available resources,\n"
                   "pending and running jobs, its services (GCS, schedulers, dataservice) and\n"
                   "whether they answer, then each node with its state and resources.",
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
    };
    cli_parsed p;
    int rc = cli_parse_exit(cli_parse(&cmd, argc, argv, &p));
    return rc >= 0 ? rc : status_run(as_json);
}
