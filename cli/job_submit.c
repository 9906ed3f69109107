/* prism job submit: POST /api/v1/jobs, then with --wait follow the job to its end. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cli.h"
#include "format.h"
#include "job.h"
#include "package.h"
#include "prism_id.h"

typedef struct submit_opts {
    bool wait;
    const char *submission_id, *working_dir, *resources;
    double num_cpus, num_gpus;
    int64_t memory;
    cli_list env, metadata, packages;
} submit_opts;

static json_t *number(double v)
{
    return v == floor(v) && fabs(v) < 9e15 ? json_integer((json_int_t)v) : json_real(v);
}

/* {"K": "V"...} from K=V arguments; NULL after printing an error. */
static json_t *pairs(const cli_list *l, const char *flag)
{
    json_t *obj = json_object();
    for (size_t i = 0; obj && i < l->n; i++) {
        const char *eq = strchr(l->items[i], '=');
        if (!eq || eq == l->items[i]) {
            fprintf(stderr, "prism: --%s wants KEY=VALUE, not '%s'\n", flag, l->items[i]);
            json_decref(obj);
            return NULL;
        }
        char *key = strndup(l->items[i], (size_t)(eq - l->items[i]));
        json_object_set_new(obj, key, json_string(eq + 1));
        free(key);
    }
    return obj;
}

/* The resources object: --resources, then --num-cpus, --num-gpus, --memory. */
static json_t *resources(const submit_opts *o)
{
    json_t *res = o->resources ? json_loads(o->resources, 0, NULL) : json_object();
    if (!json_is_object(res)) {
        fprintf(stderr, "prism: --resources must be a JSON object, e.g. '{\"disk\": 1}'\n");
        json_decref(res);
        return NULL;
    }
    if (o->num_cpus >= 0)
        json_object_set_new(res, "CPU", number(o->num_cpus));
    if (o->num_gpus >= 0)
        json_object_set_new(res, "GPU", number(o->num_gpus));
    if (o->memory >= 0)
        json_object_set_new(res, "memory", json_integer(o->memory));
    return res;
}

/* --working-dir: a package sha256 as is; a local file or directory is uploaded first. */
static int working_dir(cli_client *c, const char *arg, json_t *body)
{
    struct stat st;
    char sha[PRISM_SHA256_HEX_LEN + 1];
    if (stat(arg, &st) != 0) {
        if (!prism_is_hex(arg, PRISM_SHA256_HEX_LEN)) {
            fprintf(stderr,
                    "prism: --working-dir: '%s' is neither a package sha256 nor a local path\n",
                    arg);
            return -1;
        }
        return json_object_set_new(body, "working_dir", json_string(arg));
    }
    if (package_upload(c, arg, sha) != 0)
        return -1;
    fprintf(stderr, "Uploaded %s as package %s\n", arg, sha);
    return json_object_set_new(body, "working_dir", json_string(sha));
}

/* --package [NAME=]SHA|PATH: a sha256 as is, a local file (or directory) uploaded
 * first. NAME= is taken only when the text before '=' can be a name (letters,
 * digits, '_'), so a path holding '=' still works. */
static int package_arg(cli_client *c, const char *arg, json_t *list)
{
    const char *eq = strchr(arg, '='), *what = arg;
    char *name = NULL, sha[PRISM_SHA256_HEX_LEN + 1];
    struct stat st;
    size_t n = eq ? (size_t)(eq - arg) : 0;
    const char *name_chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";
    if (n > 0 && strspn(arg, name_chars) == n) {
        name = strndup(arg, n);
        what = eq + 1;
    }
    int rc = 0;
    if (stat(what, &st) == 0) {
        rc = package_upload(c, what, sha);
        if (rc == 0)
            fprintf(stderr, "Uploaded %s as package %s\n", what, sha);
    } else if (prism_is_hex(what, PRISM_SHA256_HEX_LEN)) {
        snprintf(sha, sizeof sha, "%s", what);
    } else {
        fprintf(stderr, "prism: --package: '%s' is neither a package sha256 nor a local file\n",
                what);
        rc = -1;
    }
    if (rc == 0)
        rc = json_array_append_new(list, name ? json_pack("{s:s,s:s}", "name", name, "sha256", sha)
                                              : json_string(sha));
    free(name);
    return rc;
}

static int packages(cli_client *c, const cli_list *l, json_t *body)
{
    json_t *list = json_array();
    for (size_t i = 0; i < l->n; i++) {
        if (package_arg(c, l->items[i], list) != 0) {
            json_decref(list);
            return -1;
        }
    }
    return json_object_set_new(body, "packages", list);
}

/* The entrypoint: one argument is a shell command line as is; several are
 * joined into one, each quoted for the shell where it needs it. */
static char *entrypoint(char *const *args, int n)
{
    if (n == 1)
        return strdup(args[0]);
    prism_buf buf;
    prism_buf_init(&buf, 1 << 20);
    if (fmt_shell_join(args, n, &buf) != 0) {
        prism_buf_free(&buf);
        return NULL;
    }
    return prism_buf_take(&buf, NULL);
}

static json_t *build_body(cli_client *c, const submit_opts *o, char *const *args, int n)
{
    json_t *body = json_object(), *env = pairs(&o->env, "env"),
           *meta = pairs(&o->metadata, "metadata"), *res = resources(o);
    char *entry = entrypoint(args, n);
    int rc = body && env && meta && res && entry ? 0 : -1;
    if (rc == 0) {
        json_object_set_new(body, "entrypoint", json_string(entry));
        if (o->submission_id)
            json_object_set_new(body, "submission_id", json_string(o->submission_id));
        if (json_object_size(env) > 0)
            json_object_set(body, "env", env);
        if (json_object_size(meta) > 0)
            json_object_set(body, "metadata", meta);
        if (json_object_size(res) > 0)
            json_object_set(body, "resources", res);
        if (o->working_dir)
            rc = working_dir(c, o->working_dir, body);
        if (rc == 0 && o->packages.n > 0)
            rc = packages(c, &o->packages, body);
    }
    free(entry);
    json_decref(env);
    json_decref(meta);
    json_decref(res);
    if (rc != 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

/* Follows the job's log to its end; exit status 0 only when it SUCCEEDED. */
static int wait_job(cli_client *c, const char *id)
{
    if (job_print_logs(c, id, true) != 0)
        return CLI_EXIT_FAIL;
    json_t *job = job_get(c, id);
    if (!job)
        return CLI_EXIT_FAIL;
    const char *state = fmt_str(job, "state", "?"), *msg = fmt_str(job, "message", NULL);
    json_t *code = json_object_get(job, "driver_exit_code");
    fprintf(stderr, "Job %s %s", id, state);
    if (json_is_integer(code))
        fprintf(stderr, " (exit code %lld)", (long long)json_integer_value(code));
    fprintf(stderr, "%s%s\n", msg ? ": " : "", msg ? msg : "");
    int rc = !strcmp(state, "SUCCEEDED") ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    json_decref(job);
    return rc;
}

static int submit_run(const submit_opts *o, char *const *args, int n)
{
    cli_client c;
    json_t *body = NULL, *job = NULL;
    int rc = CLI_EXIT_FAIL;
    if (cli_client_open(&c) != 0)
        return CLI_EXIT_FAIL;
    if (!(body = build_body(&c, o, args, n)) ||
        cli_call(&c, "POST", "/api/v1/jobs", body, &job) != 0)
        goto out;
    const char *id = fmt_str(job, "job_id", NULL);
    if (!id) {
        fprintf(stderr, "prism: the cluster's answer has no job_id\n");
        goto out;
    }
    if (!o->wait) {
        printf("%s\n", id);
        rc = CLI_EXIT_OK;
        goto out;
    }
    fprintf(stderr, "Submitted job %s; following its log\n", id);
    rc = wait_job(&c, id);
out:
    json_decref(body);
    json_decref(job);
    cli_client_close(&c);
    return rc;
}

int job_submit(int argc, char **argv)
{
    submit_opts o = {.num_cpus = -1, .num_gpus = -1, .memory = -1};
    cli_opt opts[] = {
        {"wait", 'w', CLI_FLAG, &o.wait, NULL,
         "follow the log until the job ends; exit 0 only if it SUCCEEDED"},
        {"submission-id", 0, CLI_STRING, &o.submission_id, "ID",
         "the job's ID, chosen by you (unique)"},
        {"working-dir", 0, CLI_STRING, &o.working_dir, "PKG",
         "package sha256, or a local directory/file to upload"},
        {"num-cpus", 0, CLI_NUMBER, &o.num_cpus, "N", "CPUs the driver needs"},
        {"num-gpus", 0, CLI_NUMBER, &o.num_gpus, "N", "GPUs the driver needs"},
        {"memory", 0, CLI_SIZE, &o.memory, "SIZE", "memory the driver needs, e.g. 512MiB"},
        {"resources", 0, CLI_STRING, &o.resources, "JSON",
         "custom resources, e.g. '{\"disk\": 1}'"},
        {"env", 'e', CLI_LIST, &o.env, "K=V", "environment variable of the driver"},
        {"metadata", 'm', CLI_LIST, &o.metadata, "K=V", "metadata kept with the job"},
        {"package", 0, CLI_LIST, &o.packages, "[NAME=]PKG",
         "a package the job uses: a sha256, or a local .so to upload"},
    };
    cli_command cmd = {
        .usage = "prism job submit [OPTIONS] -- CMD [ARGS...]",
        .summary =
            "Submits a job whose driver runs CMD with /bin/sh on a node, and prints its ID.\n"
            "Several arguments are joined into one command line, each quoted as needed\n"
            "(`-- echo \"a b\"` prints 'a b'); a single argument is a shell command line\n"
            "as is (`-- 'seq 10 | paste -sd+ | bc'`).",
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
        .tail = true,
    };
    cli_parsed p;
    int rc = cli_parse_exit(cli_parse(&cmd, argc, argv, &p));
    if (rc < 0 && p.tail >= argc) {
        fprintf(stderr, "prism: missing the command to run\nusage: %s\n", cmd.usage);
        rc = CLI_EXIT_USAGE;
    }
    if (rc < 0)
        rc = submit_run(&o, argv + p.tail, argc - p.tail);
    cli_command_free(&cmd);
    return rc;
}
