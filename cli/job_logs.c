/* prism job logs: the driver log of a job, once or followed to the job's end.
 *
 * A followed log is GET /api/v1/jobs/{id}/logs?follow=true streamed to
 * stdout. When the stream ends while the job still runs (the GCS restarted,
 * the connection dropped), the log is followed again from the start and the
 * bytes already shown are skipped. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "format.h"
#include "job.h"
#include "prism_time.h"

#define RETRY_MS 500
#define MAX_FAILURES 60 /* consecutive failed attempts (~30 s) before giving up */
#define PENDING_NOTICE_MS 2000

typedef struct log_stream {
    size_t shown; /* bytes written to stdout, over every attempt */
    size_t seen;  /* bytes received in this attempt */
    bool write_failed;
    bool following; /* missing logs and broken streams are retried */
} log_stream;

/* Writes the part of `data` (at offset `seen` of this attempt) not shown yet. */
static int emit(log_stream *s, const char *data, size_t len)
{
    size_t start = s->seen, end = s->seen + len;
    s->seen = end;
    if (end <= s->shown)
        return 0;
    size_t skip = s->shown > start ? s->shown - start : 0;
    if (fwrite(data + skip, 1, len - skip, stdout) != len - skip || fflush(stdout) != 0) {
        s->write_failed = true;
        return -1;
    }
    s->shown = end;
    return 0;
}

static int sink(void *ud, const char *data, size_t len) { return emit(ud, data, len); }

/* One GET of the log. Returns 0 (done), 1 (try again later: only while
 * following) or -1 (error printed). */
static int fetch(cli_client *c, const char *id, bool follow, log_stream *s)
{
    char path[1200], err[512];
    long status = 0;
    if (cli_job_path(path, sizeof path, id, follow ? "/logs?follow=true" : "/logs") != 0)
        return -1;
    s->seen = 0;
    int rc = prism_httpc_stream(c->http, "GET", path, 0, sink, s, &status, err, sizeof err);
    bool ok = status >= 200 && status < 300;
    if (s->write_failed)
        rc = -1;
    else if (rc == 0 && ok)
        rc = 0;
    else if (s->following && (rc != 0 || status == 404 || status >= 500))
        rc = 1; /* no log yet, the node is away, the connection dropped */
    else if (rc != 0)
        cli_report_error(c, 0, NULL, err);
    else
        fprintf(stderr, "prism: %s\n", err);
    return rc == 0 && !ok && !s->following ? -1 : rc;
}

/* The job's state, copied into `out`. Returns 0 or -1 (printed). */
static int job_state(cli_client *c, const char *id, char *out, size_t n)
{
    json_t *job = job_get(c, id);
    if (!job)
        return -1;
    snprintf(out, n, "%s", fmt_str(job, "state", "?"));
    json_decref(job);
    return 0;
}

/* Follows while the job runs, then reads the log once more after it ended. */
static int follow(cli_client *c, const char *id, log_stream *s)
{
    char state[32];
    bool told_pending = false, rest = false;
    int64_t since = prism_mono_ms();
    s->following = true;
    for (int failures = 0; failures < MAX_FAILURES;) {
        if (job_state(c, id, state, sizeof state) != 0)
            return -1;
        bool final = job_state_final(state), pending = !strcmp(state, "PENDING");
        if (pending && !told_pending && prism_mono_ms() - since >= PENDING_NOTICE_MS) {
            fprintf(stderr, "Job %s is pending: waiting for a node with the resources it needs\n",
                    id);
            told_pending = true;
        }
        if (rest && !final) { /* the last stream ended early: do not spin */
            prism_sleep_ms(RETRY_MS);
            rest = false;
            continue;
        }
        int64_t began = prism_mono_ms();
        int rc = pending ? 1 : fetch(c, id, !final, s);
        if (rc < 0 || final)
            return rc < 0 ? -1 : 0;
        rest = rc == 0 && prism_mono_ms() - began < RETRY_MS;
        if (rc == 0)
            continue; /* the stream ended: the job is over, or the stream broke */
        failures = pending ? 0 : failures + 1;
        prism_sleep_ms(RETRY_MS);
    }
    fprintf(stderr, "prism: gave up following the log of job %s\n", id);
    return -1;
}

int job_print_logs(cli_client *c, const char *id, bool follow_it)
{
    log_stream s = {0};
    return follow_it ? follow(c, id, &s) : fetch(c, id, false, &s);
}

static int print_logs(cli_client *c, const cli_parsed *p, void *ud)
{
    return job_print_logs(c, p->pos[0], *(bool *)ud);
}

int job_logs(int argc, char **argv)
{
    bool follow_it = false;
    cli_opt opts[] = {
        {"follow", 'f', CLI_FLAG, &follow_it, NULL, "keep printing until the job ends"},
    };
    cli_command cmd = {
        .usage = "prism job logs ID [-f|--follow]",
        .summary = "Prints the output (stdout and stderr) of a job's driver.",
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
        .min_pos = 1,
        .max_pos = 1,
    };
    return cli_command_run(&cmd, argc, argv, print_logs, &follow_it);
}
