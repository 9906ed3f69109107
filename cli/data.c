/* prism data run|list|get|stop|explain: datasets (docs/datasets.md), through
 * the GCS's address, which forwards /api/v1/datasets* to the dataservice.
 * explain needs no cluster: it runs the plan library here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "client.h"
#include "format.h"
#include "prism_time.h"
#include "prism_plan.h"

#define PLAN_MAX (16u << 20)

/* The plan in file `path` ("-": standard input), parsed; NULL (printed). */
static json_t *load_plan(const char *path)
{
    json_error_t e;
    json_t *plan = !strcmp(path, "-") ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &e)
                                      : json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!plan)
        fprintf(stderr, "prism: %s: line %d: %s\n", path, e.line, e.text);
    return plan;
}

static void print_row(json_t *d)
{
    char created[32], rows[32];
    fmt_time(json_object_get(d, "created_at"), created, sizeof created);
    snprintf(rows, sizeof rows, "%lld", (long long)fmt_int(json_object_get(d, "output"), "rows"));
    printf("%-32s  %-16.16s  %-9s  %-19s  %12s  %s\n", fmt_str(d, "dataset_id", "?"),
           fmt_str(d, "name", "-"), fmt_str(d, "state", "?"), created, rows,
           fmt_str(d, "error", ""));
}

static int list_run(cli_client *c, const cli_parsed *p, void *ud)
{
    const bool *as_json = ud;
    json_t *doc = NULL;
    (void)p;
    if (cli_call(c, "GET", "/api/v1/datasets", NULL, &doc) != 0)
        return -1;
    size_t i;
    json_t *d;
    if (!*as_json)
        printf("%-32s  %-16s  %-9s  %-19s  %12s  %s\n", "DATASET ID", "NAME", "STATE", "CREATED",
               "ROWS", "ERROR");
    json_array_foreach(json_object_get(doc, "datasets"), i, d) {
        if (*as_json) {
            char *line = json_dumps(d, JSON_COMPACT);
            printf("%s\n", line ? line : "{}");
            free(line);
        } else {
            print_row(d);
        }
    }
    json_decref(doc);
    return 0;
}

static int data_list(int argc, char **argv)
{
    bool as_json = false;
    cli_opt opts[] = {{"json", 0, CLI_FLAG, &as_json, NULL, "one JSON dataset object per line"}};
    cli_command cmd = {
        .usage = "prism data list [--json]",
        .summary = "Lists the datasets the dataservice keeps, newest first.",
        .opts = opts,
        .nopts = 1,
    };
    return cli_command_run(&cmd, argc, argv, list_run, &as_json);
}

/* A dataset's state and per-stage progress, for people. */
static void print_dataset(json_t *d)
{
    char inflight[32], peak[32], budget[32], bytes[32];
    json_t *out = json_object_get(d, "output");
    fmt_bytes((double)fmt_int(d, "bytes_in_flight"), inflight, sizeof inflight);
    fmt_bytes((double)fmt_int(d, "peak_bytes_in_flight"), peak, sizeof peak);
    fmt_bytes((double)fmt_int(d, "memory_budget_bytes"), budget, sizeof budget);
    fmt_bytes((double)fmt_int(out, "bytes"), bytes, sizeof bytes);
    printf("Dataset %s%s%s: %s\n", fmt_str(d, "dataset_id", "?"),
           json_is_string(json_object_get(d, "name")) ? " " : "", fmt_str(d, "name", ""),
           fmt_str(d, "state", "?"));
    if (json_is_string(json_object_get(d, "error")))
        printf("Error: %s\n", fmt_str(d, "error", ""));
    printf("Output: %lld rows in %lld blocks (%s)\n", (long long)fmt_int(out, "rows"),
           (long long)fmt_int(out, "blocks"), bytes);
    printf("Memory: %s in flight (peak %s) of a %s budget\n", inflight, peak, budget);
    json_t *w = json_object_get(d, "written"), *m = json_object_get(d, "materialized");
    json_t *sp = json_object_get(d, "split");
    char wb[32];
    if (json_is_object(w)) {
        fmt_bytes((double)fmt_int(w, "bytes"), wb, sizeof wb);
        printf("Written: %lld files (%s) in %s\n", (long long)fmt_int(w, "files"), wb,
               fmt_str(w, "path", "?"));
    }
    if (json_is_object(m)) {
        fmt_bytes((double)fmt_int(m, "bytes"), wb, sizeof wb);
        printf("Materialized: %lld blocks kept (%s)\n", (long long)fmt_int(m, "blocks"), wb);
    }
    if (json_is_string(json_object_get(d, "source")))
        printf("Epoch of: %s\n", fmt_str(d, "source", "?"));
    if (json_is_object(sp) && fmt_int(sp, "n") > 1) {
        char *rows = json_dumps(json_object_get(sp, "rows"), JSON_COMPACT);
        char *local = json_dumps(json_object_get(sp, "local_blocks"), JSON_COMPACT);
        printf("Consumers: %lld%s, rows %s, local blocks %s, dropped %lld\n",
               (long long)fmt_int(sp, "n"),
               json_is_true(json_object_get(sp, "equal")) ? " (equal)" : "", rows ? rows : "?",
               local ? local : "?", (long long)fmt_int(sp, "dropped"));
        free(rows);
        free(local);
    }
    size_t i;
    json_t *st;
    printf("\n%-60s  %12s  %10s  %8s  %8s  %8s  %8s\n", "STAGE", "ROWS", "ROWS/S", "BLOCKS",
           "RUNNING", "DONE", "QUEUED");
    json_array_foreach(json_object_get(d, "stages"), i, st)
        printf("%-60.60s  %12lld  %10.0f  %8lld  %8lld  %8lld  %8lld\n", fmt_str(st, "name", "?"),
               (long long)fmt_int(st, "rows"), json_number_value(json_object_get(st, "rows_per_s")),
               (long long)fmt_int(st, "blocks"), (long long)fmt_int(st, "tasks_running"),
               (long long)fmt_int(st, "tasks_done"), (long long)fmt_int(st, "queued_blocks"));
    json_array_foreach(json_object_get(d, "stages"), i, st) {
        json_t *a = json_object_get(st, "actors");
        if (json_is_object(a))
            printf("%s: actors %lld alive, %lld busy, %lld made\n", fmt_str(st, "name", "?"),
                   (long long)fmt_int(a, "alive"), (long long)fmt_int(a, "busy"),
                   (long long)fmt_int(a, "created"));
    }
    if (json_is_string(json_object_get(d, "explain")))
        printf("\n%s", fmt_str(d, "explain", ""));
}

static int dataset_path(char *out, size_t n, const char *id, const char *suffix)
{
    char esc[256];
    if (cli_escape(id, esc, sizeof esc) != 0 ||
        (size_t)snprintf(out, n, "/api/v1/datasets/%s%s", esc, suffix) >= n) {
        fprintf(stderr, "prism: the dataset ID is too long\n");
        return -1;
    }
    return 0;
}

/* One line per stage with a bar of the work it has seen that is done
 * (tasks done against done + running + queued blocks: a streaming stage's
 * total is not known ahead). */
static void print_bars(json_t *d)
{
    size_t i;
    json_t *st;
    printf("Dataset %s: %s, %lld rows out\n", fmt_str(d, "dataset_id", "?"),
           fmt_str(d, "state", "?"), (long long)fmt_int(json_object_get(d, "output"), "rows"));
    json_array_foreach(json_object_get(d, "stages"), i, st) {
        long long done = fmt_int(st, "tasks_done"), running = fmt_int(st, "tasks_running");
        long long queued = fmt_int(st, "queued_blocks"), seen = done + running + queued;
        int filled = seen ? (int)(30 * done / seen) : 0;
        char bar[31];
        for (int k = 0; k < 30; k++)
            bar[k] = k < filled                                             ? '#'
                     : k < (seen ? (int)(30 * (done + running) / seen) : 0) ? '>'
                                                                            : '.';
        bar[30] = '\0';
        printf("  %-32.32s [%s] %6lld done %4lld running %4lld queued  %10lld rows %8.0f/s\n",
               fmt_str(st, "name", "?"), bar, done, running, queued, (long long)fmt_int(st, "rows"),
               json_number_value(json_object_get(st, "rows_per_s")));
    }
}

typedef struct get_args {
    bool as_json, watch;
} get_args;

/* Redraws the stages' bars every half second until the dataset ends. */
static int watch(cli_client *c, const char *path)
{
    bool tty = isatty(STDOUT_FILENO);
    int lines = 0;
    for (;;) {
        json_t *d = NULL;
        if (cli_call(c, "GET", path, NULL, &d) != 0)
            return -1;
        if (tty && lines)
            printf("\033[%dA\033[J", lines); /* up over the last drawing, clear to the end */
        print_bars(d);
        lines = 1 + (int)json_array_size(json_object_get(d, "stages"));
        fflush(stdout);
        bool running = !strcmp(fmt_str(d, "state", ""), "RUNNING") ||
                       !strcmp(fmt_str(d, "state", ""), "PENDING");
        if (!running && json_is_string(json_object_get(d, "error")))
            printf("Error: %s\n", fmt_str(d, "error", ""));
        json_decref(d);
        if (!running)
            return 0;
        prism_sleep_ms(500);
    }
}

static int get_run(cli_client *c, const cli_parsed *p, void *ud)
{
    const get_args *a = ud;
    const bool *as_json = &a->as_json;
    char path[512];
    json_t *d = NULL;
    if (dataset_path(path, sizeof path, p->pos[0], "") != 0)
        return -1;
    if (a->watch && !a->as_json)
        return watch(c, path);
    if (cli_call(c, "GET", path, NULL, &d) != 0)
        return -1;
    if (*as_json) {
        char *text = json_dumps(d, JSON_INDENT(2));
        printf("%s\n", text ? text : "{}");
        free(text);
    } else {
        print_dataset(d);
    }
    json_decref(d);
    return 0;
}

static int data_get(int argc, char **argv)
{
    get_args a = {0};
    cli_opt opts[] = {{"json", 0, CLI_FLAG, &a.as_json, NULL, "the dataset as JSON"},
                      {"watch", 'w', CLI_FLAG, &a.watch, NULL,
                       "live progress bars per stage, redrawn every 0.5 s until it ends"}};
    cli_command cmd = {
        .usage = "prism data get ID [--json | --watch]",
        .summary = "Shows a dataset: its state, error, output, memory in flight, per-stage "
                   "progress (rows, blocks, tasks running and done, queued blocks) and its plan "
                   "before and after optimization; with --watch, a progress bar per stage "
                   "until the dataset ends.",
        .opts = opts,
        .nopts = 2,
        .min_pos = 1,
        .max_pos = 1,
    };
    return cli_command_run(&cmd, argc, argv, get_run, &a);
}

static int stop_run(cli_client *c, const cli_parsed *p, void *ud)
{
    char path[512];
    json_t *d = NULL;
    (void)ud;
    if (dataset_path(path, sizeof path, p->pos[0], "/stop") != 0 ||
        cli_call(c, "POST", path, NULL, &d) != 0)
        return -1;
    printf("Stopping dataset %s\n", p->pos[0]);
    json_decref(d);
    return 0;
}

static int data_stop(int argc, char **argv)
{
    cli_command cmd = {
        .usage = "prism data stop ID",
        .summary = "Stops a running dataset: its tasks are cancelled and its blocks released.",
        .min_pos = 1,
        .max_pos = 1,
    };
    return cli_command_run(&cmd, argc, argv, stop_run, NULL);
}

typedef struct run_args {
    bool wait;
    int64_t take;
} run_args;

/* Waits for the end (count), or for the first `take` rows, and prints them. */
static int follow(cli_client *c, const char *id, const run_args *a)
{
    char path[512], suffix[96];
    if (a->take > 0)
        snprintf(suffix, sizeof suffix, "/rows?limit=%lld&timeout_ms=60000", (long long)a->take);
    else
        snprintf(suffix, sizeof suffix, "/count?timeout_ms=60000");
    if (dataset_path(path, sizeof path, id, suffix) != 0)
        return -1;
    for (;;) {
        json_t *doc = NULL;
        if (cli_call(c, "GET", path, NULL, &doc) != 0)
            return -1;
        bool done = json_is_true(json_object_get(doc, "complete")) ||
                    (strcmp(fmt_str(doc, "state", "?"), "RUNNING") &&
                     strcmp(fmt_str(doc, "state", "?"), "PENDING"));
        if (done && a->take > 0) {
            size_t i;
            json_t *row;
            json_array_foreach(json_object_get(doc, "rows"), i, row) {
                char *line = json_dumps(row, JSON_COMPACT);
                printf("%s\n", line ? line : "{}");
                free(line);
            }
        } else if (done) {
            printf("Dataset %s %s: %lld rows\n", id, fmt_str(doc, "state", "?"),
                   (long long)fmt_int(doc, "count"));
        }
        json_decref(doc);
        if (done)
            return 0;
    }
}

static int run_run(cli_client *c, const cli_parsed *p, void *ud)
{
    const run_args *a = ud;
    json_t *plan = load_plan(p->pos[0]), *d = NULL;
    if (!plan || cli_call(c, "POST", "/api/v1/datasets", plan, &d) != 0) {
        json_decref(plan);
        return -1;
    }
    json_decref(plan);
    char id[64];
    snprintf(id, sizeof id, "%s", fmt_str(d, "dataset_id", "?"));
    json_decref(d);
    if (!a->wait && a->take <= 0) {
        printf("Dataset %s submitted (prism data get %s)\n", id, id);
        return 0;
    }
    return follow(c, id, a);
}

static int data_run(int argc, char **argv)
{
    run_args a = {0};
    cli_opt opts[] = {
        {"wait", 'w', CLI_FLAG, &a.wait, NULL, "wait for the end and print the row count"},
        {"take", 't', CLI_INT, &a.take, "N", "wait for the first N rows and print them as JSON"},
    };
    cli_command cmd = {
        .usage = "prism data run PLAN.json [--wait] [--take N]",
        .summary = "Runs a dataset: the file (\"-\": standard input) is a plan "
                   "(docs/datasets.md#plans), as POST /api/v1/datasets takes it.",
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
        .min_pos = 1,
        .max_pos = 1,
    };
    return cli_command_run(&cmd, argc, argv, run_run, &a);
}

static int data_explain(int argc, char **argv)
{
    cli_command cmd = {
        .usage = "prism data explain PLAN.json",
        .summary = "Prints a plan before and after optimization, without running it (no cluster "
                   "needed); a plan the library refuses gives its error, naming the operator.",
        .min_pos = 1,
        .max_pos = 1,
    };
    cli_parsed p;
    int rc = cli_parse_exit(cli_parse(&cmd, argc, argv, &p));
    if (rc >= 0)
        return rc;
    json_t *doc = load_plan(p.pos[0]);
    prism_plan *plan = NULL;
    prism_plan_error e = {0};
    char *text = NULL;
    if (doc && prism_plan_from_json_value(doc, &plan, &e) == PRISM_PLAN_OK)
        text = prism_plan_explain(plan, &e);
    if (text)
        printf("%s", text);
    else if (doc)
        fprintf(stderr, "prism: %s: %s: %s\n", p.pos[0], prism_plan_status_code(e.status),
                e.message);
    free(text);
    prism_plan_destroy(plan);
    json_decref(doc);
    return text ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

int cmd_data(int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"run", data_run, "run a plan: prism data run PLAN.json [--wait] [--take N]"},
        {"list", data_list, "list datasets: prism data list [--json]"},
        {"get", data_get, "a dataset's state and progress: prism data get ID [--json | --watch]"},
        {"stop", data_stop, "stop a dataset: prism data stop ID"},
        {"explain", data_explain,
         "a plan before and after optimization: prism data explain PLAN.json"},
    };
    return cli_subcommands("data", subs, sizeof subs / sizeof subs[0], argc, argv);
}
