/* prism timeline: the cluster's recent tasks as a Chrome trace (GET
 * /api/v1/timeline), to open in Perfetto or chrome://tracing, as Ray's
 * `ray timeline` does. Written as the GCS sent it, to a file or stdout. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "client.h"

typedef struct timeline_args {
    const char *out, *job;
    int64_t limit;
} timeline_args;

static int write_file(const char *path, const char *data, size_t len)
{
    FILE *f = path ? fopen(path, "w") : stdout;
    if (!f) {
        fprintf(stderr, "prism: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = fwrite(data, 1, len, f) == len ? 0 : -1;
    if (path)
        rc |= fclose(f);
    else
        rc |= fflush(f);
    if (rc != 0)
        fprintf(stderr, "prism: cannot write %s: %s\n", path ? path : "stdout", strerror(errno));
    return rc;
}

static int fetch(cli_client *c, const cli_parsed *p, void *ud)
{
    const timeline_args *a = ud;
    char path[1024], err[512];
    snprintf(path, sizeof path, "/api/v1/timeline?limit=%lld", (long long)a->limit);
    if (cli_add_query(path, sizeof path, "job_id", a->job) != 0)
        return -1;
    prism_httpc_resp r = {0};
    if (prism_httpc_request(c->http, "GET", path, NULL, NULL, 0, CLI_TIMEOUT_MS, 0, &r, err,
                            sizeof err) != 0) {
        cli_report_error(c, 0, NULL, err);
        return -1;
    }
    int rc = 0;
    if (r.status < 200 || r.status >= 300) {
        json_t *doc = json_loadb(r.body, r.len, 0, NULL);
        cli_report_error(c, r.status, doc, NULL);
        json_decref(doc);
        rc = -1;
    } else {
        rc = write_file(a->out, r.body, r.len);
    }
    if (rc == 0 && a->out) {
        json_t *doc = json_loadb(r.body, r.len, 0, NULL);
        json_int_t n =
            json_integer_value(json_object_get(json_object_get(doc, "otherData"), "tasks"));
        fprintf(stderr,
                "%lld tasks written to %s (open it in https://ui.perfetto.dev or "
                "chrome://tracing)\n",
                (long long)n, a->out);
        json_decref(doc);
    }
    prism_httpc_resp_free(&r);
    return rc;
}

int cmd_timeline(int argc, char **argv)
{
    timeline_args a = {.limit = 10000};
    cli_opt opts[] = {
        {"output", 'o', CLI_STRING, &a.out, "FILE", "write the trace to FILE (default: stdout)"},
        {"job", 'j', CLI_STRING, &a.job, "ID", "only the tasks of this job's driver"},
        {"limit", 'l', CLI_INT, &a.limit, "N", "the newest N tasks that ran (default 10000)"},
    };
    cli_command cmd = {.usage = "prism timeline [-o FILE] [--job ID] [--limit N]",
                       .summary = "Writes the cluster's recent tasks as a Chrome trace (JSON): one "
                                  "event per task, in a lane per worker, grouped by node. Open it "
                                  "in Perfetto or chrome://tracing.",
                       .opts = opts,
                       .nopts = sizeof opts / sizeof opts[0]};
    return cli_command_run(&cmd, argc, argv, fetch, &a);
}
