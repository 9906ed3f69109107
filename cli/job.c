/* prism job: dispatch of its subcommands, and list, status, stop, delete. */
#include "job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "format.h"
#include "prism_time.h"

bool job_state_final(const char *state)
{
    return state &&
           (!strcmp(state, "SUCCEEDED") || !strcmp(state, "FAILED") || !strcmp(state, "STOPPED"));
}

json_t *job_get(cli_client *c, const char *id)
{
    char path[1200];
    json_t *job = NULL;
    if (cli_job_path(path, sizeof path, id, "") != 0 || cli_call(c, "GET", path, NULL, &job) != 0)
        return NULL;
    return job;
}

typedef int (*job_fn)(cli_client *c, const char *id);

static int run_on_job(cli_client *c, const cli_parsed *p, void *ud)
{
    return (*(job_fn *)ud)(c, p->pos[0]);
}

/* Runs fn(client, id) for a command that takes one job ID. */
static int with_job(const cli_command *cmd, int argc, char **argv, job_fn fn)
{
    return cli_command_run(cmd, argc, argv, run_on_job, &fn);
}

/* --- list --- */

static void print_job_row(json_t *job)
{
    char submitted[32], took[32] = "-";
    fmt_time(json_object_get(job, "submitted_at"), submitted, sizeof submitted);
    json_t *start = json_object_get(job, "start_time"), *end = json_object_get(job, "end_time");
    if (json_is_number(start))
        fmt_duration((json_is_number(end) ? fmt_int(job, "end_time") : prism_now_ms()) -
                         fmt_int(job, "start_time"),
                     took, sizeof took);
    printf("%-32s  %-9s  %-12.12s  %-19s  %-8s  %.60s\n", fmt_str(job, "job_id", "-"),
           fmt_str(job, "state", "?"), fmt_str(job, "node_id", "-"), submitted, took,
           fmt_str(job, "entrypoint", ""));
}

typedef struct list_args {
    const char *state;
    int64_t limit;
    bool as_json;
} list_args;

static int list_run(cli_client *c, const cli_parsed *p, void *ud)
{
    const list_args *a = ud;
    char path[4096] = "/api/v1/jobs?", header[256];
    (void)p;
    if (cli_add_query(path, sizeof path, "state", a->state) != 0)
        return -1;
    snprintf(header, sizeof header, "%-32s  %-9s  %-12s  %-19s  %-8s  %s", "JOB ID", "STATE",
             "NODE", "SUBMITTED", "TIME", "ENTRYPOINT");
    return cli_list_pages(c, path, "jobs", a->limit > 0 ? a->limit : 0, a->as_json, header,
                          print_job_row);
}

static int job_list(int argc, char **argv)
{
    list_args a = {.limit = 100};
    cli_opt opts[] = {
        {"state", 's', CLI_STRING, &a.state, "S",
         "only jobs in state S (PENDING, RUNNING, SUCCEEDED...)"},
        {"limit", 'l', CLI_INT, &a.limit, "N", "at most N jobs (default 100)"},
        {"json", 0, CLI_FLAG, &a.as_json, NULL, "one JSON job object per line"},
    };
    cli_command cmd = {
        .usage = "prism job list [--state S] [--limit N] [--json]",
        .summary = "Lists jobs, newest first.",
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
    };
    return cli_command_run(&cmd, argc, argv, list_run, &a);
}

/* --- status --- */

static void print_map(const char *label, json_t *obj)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        printf("%-17s %s=%s\n", label, key, text ? text : json_string_value(v));
        free(text);
        label = "";
    }
}

/* One line per package: NAME=SHA, or the sha256 alone. */
static void print_packages(json_t *list)
{
    const char *label = "packages:";
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p) {
        const char *name = fmt_str(p, "name", NULL);
        printf("%-17s %s%s%s\n", label, name ? name : "", name ? "=" : "",
               fmt_str(p, "sha256", "?"));
        label = "";
    }
}

static void print_job(json_t *job)
{
    static const char *const times[] = {"submitted_at", "start_time", "end_time"};
    printf("%-17s %s\n", "job_id:", fmt_str(job, "job_id", "-"));
    printf("%-17s %s\n", "state:", fmt_str(job, "state", "?"));
    printf("%-17s %s\n", "entrypoint:", fmt_str(job, "entrypoint", ""));
    printf("%-17s %s\n", "node_id:", fmt_str(job, "node_id", "-"));
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        char t[32], label[32];
        fmt_time(json_object_get(job, times[i]), t, sizeof t);
        snprintf(label, sizeof label, "%s:", times[i]);
        printf("%-17s %s\n", label, t);
    }
    json_t *code = json_object_get(job, "driver_exit_code");
    if (json_is_integer(code))
        printf("%-17s %lld\n", "driver_exit_code:", (long long)json_integer_value(code));
    printf("%-17s %s\n", "message:", fmt_str(job, "message", "-"));
    printf("%-17s %s\n", "working_dir:", fmt_str(job, "working_dir", "-"));
    print_packages(json_object_get(job, "packages"));
    prism_buf res;
    prism_buf_init(&res, 1 << 16);
    fmt_resources(json_object_get(job, "resources"), &res);
    printf("%-17s %s\n", "resources:", res.data ? res.data : "-");
    prism_buf_free(&res);
    print_map("env:", json_object_get(job, "env"));
    print_map("metadata:", json_object_get(job, "metadata"));
}

static bool status_as_json;

static int status_one(cli_client *c, const char *id)
{
    json_t *job = job_get(c, id);
    if (!job)
        return -1;
    if (status_as_json) {
        json_dumpf(job, stdout, JSON_INDENT(2));
        printf("\n");
    } else {
        print_job(job);
    }
    json_decref(job);
    return 0;
}

static int job_status(int argc, char **argv)
{
    cli_opt opts[] = {
        {"json", 0, CLI_FLAG, &status_as_json, NULL, "print the job object as JSON"},
    };
    cli_command cmd = {
        .usage = "prism job status ID [--json]",
        .summary = "Shows a job: state, entrypoint, node, times, exit code, message.",
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
        .min_pos = 1,
        .max_pos = 1,
    };
    return with_job(&cmd, argc, argv, status_one);
}

/* --- stop, delete --- */

static int stop_one(cli_client *c, const char *id)
{
    char path[1200];
    json_t *job = NULL;
    if (cli_job_path(path, sizeof path, id, "/stop") != 0 ||
        cli_call(c, "POST", path, NULL, &job) != 0)
        return -1;
    printf("Stop requested for job %s (state %s)\n", id, fmt_str(job, "state", "?"));
    json_decref(job);
    return 0;
}

static int job_stop(int argc, char **argv)
{
    cli_command cmd = {
        .usage = "prism job stop ID",
        .summary = "Stops a job: its driver gets SIGTERM, then SIGKILL after a grace period.",
        .min_pos = 1,
        .max_pos = 1,
    };
    return with_job(&cmd, argc, argv, stop_one);
}

static int delete_one(cli_client *c, const char *id)
{
    char path[1200];
    if (cli_job_path(path, sizeof path, id, "") != 0 ||
        cli_call(c, "DELETE", path, NULL, NULL) != 0)
        return -1;
    printf("Deleted job %s\n", id);
    return 0;
}

static int job_delete(int argc, char **argv)
{
    cli_command cmd = {
        .usage = "prism job delete ID",
        .summary = "Deletes a finished job and its logs.",
        .min_pos = 1,
        .max_pos = 1,
    };
    return with_job(&cmd, argc, argv, delete_one);
}

/* --- dispatch --- */

static const cli_subcommand subcommands[] = {
    {"submit", job_submit, "submit a job: prism job submit [--wait] -- CMD..."},
    {"list", job_list, "list jobs"},
    {"status", job_status, "show one job"},
    {"logs", job_logs, "print a job's driver log (-f to follow)"},
    {"stop", job_stop, "stop a running job"},
    {"delete", job_delete, "delete a finished job"},
};

int cmd_job(int argc, char **argv)
{
    return cli_subcommands("job", subcommands, sizeof subcommands / sizeof subcommands[0], argc,
                           argv);
}
