/* Starting a job's driver: `/bin/sh -c ENTRYPOINT` in its own process group,
 * in the job's directory or its package, output appended to driver.log. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nodeagent.h"
#include "prism_fs.h"
#include "prism_sha256.h"
#include "prism_time.h"

/* What job.start asked for; strings borrowed from the request. */
typedef struct start_req {
    const char *job_id;
    const char *entrypoint;
    const char *package;  /* NULL: run in the job's directory */
    json_t *env;          /* object of strings, may be NULL */
    json_t *resources;    /* object, may be NULL */
    json_t *packages;     /* [{sha256, name?}] for the workers' cache, may be NULL */
    const char *lease_id; /* the lease the scheduler granted for the job, or NULL */
    int gpus;
} start_req;

#define MAX_JOB_PACKAGES 32
#define PACKAGE_NAME_MAX 64

/* ---------- the environment ---------- */

static int env_job(na_env *e, json_t *env)
{
    const char *key;
    json_t *v;
    json_object_foreach(env, key, v) {
        if (na_env_set(e, key, json_string_value(v)) != 0)
            return -1;
    }
    return 0;
}

static int env_prism(na_env *e, const nodeagent *na, const na_job *j)
{
    const na_config *c = &na->cfg;
    int rc = 0;
    if (c->gcs_address && *c->gcs_address)
        rc |= na_env_set(e, "PRISM_ADDRESS", c->gcs_address);
    if (c->token && *c->token)
        rc |= na_env_set(e, "PRISM_TOKEN", c->token);
    rc |= na_env_set(e, "PRISM_NATS_URL", c->nats_url);
    rc |= na_env_set(e, "PRISM_JOB_ID", j->id);
    rc |= na_env_set(e, "PRISM_NODE_ID", j->node_id);
    /* Drivers use the node's object store like workers: large values go there. */
    if (c->store_socket && *c->store_socket)
        rc |= na_env_set(e, "PRISM_STORE_SOCKET", c->store_socket);
    if (c->store_address && *c->store_address)
        rc |= na_env_set(e, "PRISM_STORE_URL", c->store_address);
    if (j->ngpus > 0) {
        char devices[512];
        rc |= na_gpu_visible_devices(j->gpus, j->ngpus, devices, sizeof devices);
        rc |= na_env_set(e, "CUDA_VISIBLE_DEVICES", devices);
    }
    return rc ? -1 : 0;
}

/* PRISM_PACKAGES (the sha256s, space-separated) and PRISM_PACKAGE_<NAME>
 * (upper case) for each named one, so a driver submits tasks by name. */
static int env_packages(na_env *e, json_t *packages)
{
    if (json_array_size(packages) == 0)
        return 0;
    char all[MAX_JOB_PACKAGES * (PRISM_SHA256_HEX_LEN + 1)] = "";
    size_t i, used = 0;
    json_t *p;
    int rc = 0;
    json_array_foreach(packages, i, p) {
        const char *sha = json_string_value(json_object_get(p, "sha256"));
        const char *name = json_string_value(json_object_get(p, "name"));
        used += (size_t)snprintf(all + used, sizeof all - used, "%s%s", i ? " " : "", sha);
        if (name) {
            char var[sizeof "PRISM_PACKAGE_" + PACKAGE_NAME_MAX];
            snprintf(var, sizeof var, "PRISM_PACKAGE_%s", name);
            for (char *c = var + strlen("PRISM_PACKAGE_"); *c; c++)
                *c = (char)toupper((unsigned char)*c);
            rc |= na_env_set(e, var, sha);
        }
    }
    rc |= na_env_set(e, "PRISM_PACKAGES", all);
    return rc ? -1 : 0;
}

static int build_env(na_env *e, const nodeagent *na, const na_job *j, const start_req *r)
{
    if (na_env_inherit(e) != 0 || (r->env && env_job(e, r->env) != 0) ||
        env_packages(e, r->packages) != 0)
        return -1;
    return env_prism(e, na, j);
}

/* ---------- parsing the request ---------- */

static json_t *check_env(json_t *env)
{
    if (env && !json_is_object(env))
        return prism_error_json("invalid_argument", "'env' must be an object of strings");
    const char *key;
    json_t *v;
    json_object_foreach(env, key, v) {
        if (!json_is_string(v) || !*key || strchr(key, '='))
            return prism_error_json("invalid_argument",
                                    "env '%s' must be a string with a name "
                                    "without '='",
                                    key);
    }
    return NULL;
}

static json_t *check_resources(json_t *res, start_req *r)
{
    if (res && !json_is_object(res))
        return prism_error_json("invalid_argument", "'resources' must be an object");
    json_t *gpu = json_object_get(res, "GPU");
    if (gpu && (!json_is_number(gpu) || json_number_value(gpu) < 0 || json_number_value(gpu) > 64))
        return prism_error_json("invalid_argument", "resources.GPU must be a number from 0 to 64");
    r->resources = res;
    /* A fraction of a GPU takes a whole device: drivers do not share GPUs. */
    r->gpus = gpu ? (int)ceil(json_number_value(gpu)) : 0;
    return NULL;
}

/* A package name is 1-64 of [A-Za-z0-9_]: it becomes part of a variable's name. */
static bool package_name_ok(const char *s)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");
    return n > 0 && n <= PACKAGE_NAME_MAX && s[n] == '\0';
}

static json_t *check_packages(json_t *packages, start_req *r)
{
    if (packages && !json_is_null(packages) &&
        (!json_is_array(packages) || json_array_size(packages) > MAX_JOB_PACKAGES))
        return prism_error_json("invalid_argument",
                                "'packages' must be a list of at most %d packages",
                                MAX_JOB_PACKAGES);
    size_t i;
    json_t *p;
    json_array_foreach(packages, i, p) {
        const char *sha = json_string_value(json_object_get(p, "sha256"));
        json_t *name = json_object_get(p, "name");
        if (!sha || !na_is_package_sha(sha))
            return prism_error_json("invalid_argument",
                                    "packages[%zu] must have a 'sha256' of 64 hex "
                                    "digits",
                                    i);
        if (name && !json_is_null(name) &&
            !(json_is_string(name) && package_name_ok(json_string_value(name))))
            return prism_error_json("invalid_argument",
                                    "packages[%zu]: 'name' must be 1-%d of "
                                    "[A-Za-z0-9_]",
                                    i, PACKAGE_NAME_MAX);
    }
    r->packages = json_is_array(packages) ? packages : NULL;
    return NULL;
}

static json_t *parse_request(json_t *req, start_req *r)
{
    r->job_id = json_string_value(json_object_get(req, "job_id"));
    r->entrypoint = json_string_value(json_object_get(req, "entrypoint"));
    if (!r->job_id || !prism_safe_name(r->job_id))
        return prism_error_json("invalid_argument", "'job_id' must be 1-128 of [A-Za-z0-9._-]");
    if (!r->entrypoint || !*r->entrypoint)
        return prism_error_json("invalid_argument", "'entrypoint' is required");
    json_t *wd = json_object_get(req, "working_dir");
    const char *sha = json_string_value(wd);
    if (wd && !json_is_null(wd) && !(sha && (!*sha || na_is_package_sha(sha))))
        return prism_error_json("invalid_argument",
                                "'working_dir' must name a package (64 hex digits)");
    r->package = sha && *sha ? sha : NULL;
    r->env = json_object_get(req, "env");
    json_t *lease = json_object_get(req, "lease_id");
    r->lease_id = json_string_value(lease);
    if (lease && !json_is_null(lease) && !r->lease_id)
        return prism_error_json("invalid_argument", "'lease_id' must be a string");
    json_t *err = check_env(r->env);
    if (!err)
        err = check_packages(json_object_get(req, "packages"), r);
    return err ? err : check_resources(json_object_get(req, "resources"), r);
}

/* ---------- the steps of a start ---------- */

static json_t *ok_reply(const na_job *j)
{
    return json_pack("{s:b,s:i,s:I}", "ok", 1, "pid", (int)j->pid, "start_time",
                     (json_int_t)j->start_time);
}

/* Puts a STARTING entry in the table, so that a second start of the same job
 * waits for nothing and fails. The job's resources come from the lease the
 * request names; without one (it expired), from what is free, and a job that
 * does not fit is refused `busy`, as a worker lease would be: what drivers
 * and workers hold never adds up to more than the node has. Returns NULL, or
 * the reply to give at once. */
static json_t *claim(nodeagent *na, const start_req *r)
{
    if (na->closing)
        return prism_error_json("start_failed", "the node agent is shutting down");
    na_job *j = na_job_find(na, r->job_id);
    if (j && j->state == NA_JOB_RUNNING)
        return ok_reply(j); /* a repeated start (the GCS retried): same answer */
    if (j)
        return prism_error_json("start_failed", "job '%s' is already being started", r->job_id);
    json_t *st = na_job_read_status(na, r->job_id);
    if (st) {
        json_decref(st);
        return prism_error_json("start_failed", "job '%s' already ran on this node", r->job_id);
    }
    int gpus[64], ngpus = 0;
    if (!na_lease_take_for_job(na, r->lease_id, r->job_id, gpus, &ngpus)) {
        json_t *want = r->resources ? json_incref(r->resources) : json_object();
        char *why = na_shortfall(na, want);
        json_decref(want);
        if (why) {
            json_t *busy = prism_error_json("busy", "not enough free on this node: %s", why);
            free(why);
            return busy;
        }
    }
    j = calloc(1, sizeof *j);
    if (!j) {
        for (int k = 0; k < ngpus; k++)
            na->gpu_used[gpus[k]] = false;
        return prism_error_json("start_failed", "out of memory");
    }
    for (int k = 0; k < ngpus; k++)
        j->gpus[j->ngpus++] = gpus[k];
    snprintf(j->id, sizeof j->id, "%s", r->job_id);
    snprintf(j->node_id, sizeof j->node_id, "%s", na->node_id);
    snprintf(j->package, sizeof j->package, "%s", r->package ? r->package : "");
    j->state = NA_JOB_STARTING;
    j->resources = r->resources ? json_deep_copy(r->resources) : json_object();
    j->next = na->jobs;
    na->jobs = j;
    na->report_wanted = true; /* what the job holds is not free for leases */
    return NULL;
}

static void free_gpus(nodeagent *na, na_job *j)
{
    for (int k = 0; k < j->ngpus; k++)
        na->gpu_used[j->gpus[k]] = false;
    j->ngpus = 0;
}

/* The devices the job's lease held, or free ones. */
static int alloc_gpus(nodeagent *na, na_job *j, int want)
{
    for (int i = 0; i < na->cfg.num_gpus && j->ngpus < want; i++)
        if (na_gpu_free_whole(na, i))
            j->gpus[j->ngpus++] = i;
    if (j->ngpus < want) {
        free_gpus(na, j);
        return -1;
    }
    for (int k = 0; k < j->ngpus; k++)
        na->gpu_used[j->gpus[k]] = true;
    return 0;
}

static int open_log(const nodeagent *na, const char *id)
{
    char path[NA_PATH_MAX];
    if (na_job_path(na, id, "driver.log", path, sizeof path) != 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

/* Forks the driver. Called with `lock` held. */
static int spawn(nodeagent *na, na_job *j, const start_req *r, const char *dir, char *err,
                 size_t errlen)
{
    na_env env = {0};
    int fd = open_log(na, j->id);
    if (fd < 0 || build_env(&env, na, j, r) != 0) {
        snprintf(err, errlen, "cannot prepare the driver: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        na_env_free(&env);
        return -1;
    }
    char *argv[] = {"/bin/sh", "-c", (char *)r->entrypoint, NULL};
    na_spawn s = {.argv = argv, .envp = env.v, .dir = dir, .stdout_fd = fd};
    pid_t pid = na_launcher_spawn(na->launcher, &s);
    if (pid < 0)
        snprintf(err, errlen, "fork failed: %s", strerror(errno));
    close(fd);
    na_env_free(&env);
    if (pid < 0)
        return -1;
    j->pid = pid;
    j->start_time = prism_now_ms();
    j->state = NA_JOB_RUNNING;
    return 0;
}

static int launch(nodeagent *na, na_job *j, const start_req *r, const char *dir, char *err,
                  size_t errlen)
{
    if (na->closing) {
        snprintf(err, errlen, "the node agent is shutting down");
        return -1;
    }
    if (j->stop_requested) {
        snprintf(err, errlen, "the job was stopped before its driver started");
        return -1;
    }
    if (strcmp(j->node_id, na->node_id) != 0) {
        snprintf(err, errlen, "the node re-registered as %s meanwhile", na->node_id);
        return -1;
    }
    if (alloc_gpus(na, j, r->gpus) != 0) {
        snprintf(err, errlen, "the job asks for %d GPU(s), %d are free on this node", r->gpus,
                 na_free_gpus(na));
        return -1;
    }
    if (spawn(na, j, r, dir, err, errlen) != 0) {
        free_gpus(na, j);
        return -1;
    }
    if (na_job_write_driver_file(na, j) != 0)
        LOG_WARN("job %s: cannot write driver.json: %s", j->id, strerror(errno));
    /* Published as well as answered: after a long download the GCS has
     * given up waiting for the answer, and shows the job PENDING until it
     * hears. */
    na_link_publish_job(na, j);
    prism_metric_add(na->m.started, 1);
    prism_metric_set(na->m.running, na_running_count(na));
    LOG_INFO("job %s: driver started, pid %d, in %s", j->id, (int)j->pid, dir);
    return 0;
}

/* The directory the driver runs in, made ready (package fetched), and the
 * job's packages in the workers' cache, so that its first tasks do not wait
 * for a download and a package that cannot be fetched fails the job now. */
static int prepare_dir(nodeagent *na, const start_req *r, char *dir, size_t dirlen, char *err,
                       size_t errlen)
{
    char jobdir[NA_PATH_MAX];
    if (na_job_path(na, r->job_id, NULL, jobdir, sizeof jobdir) != 0 ||
        prism_mkdir_p(jobdir, 0700) != 0) {
        snprintf(err, errlen, "cannot create the job directory: %s", strerror(errno));
        return -1;
    }
    size_t i;
    json_t *p;
    json_array_foreach(r->packages, i, p) {
        if (na_package_cache(na, json_string_value(json_object_get(p, "sha256")), err, errlen) != 0)
            return -1;
    }
    if (r->package)
        return na_package_ensure(na, r->package, dir, dirlen, err, errlen);
    snprintf(dir, dirlen, "%s", jobdir);
    return 0;
}

static json_t *start_failed(nodeagent *na, na_job *j, const char *err)
{
    char dir[NA_PATH_MAX];
    LOG_WARN("job %s: start failed: %s", j->id, err);
    /* Published as well as answered: after a long download the GCS has given
     * up waiting for this answer, and would otherwise place the job again. */
    j->state = j->stop_requested ? NA_JOB_STOPPED : NA_JOB_FAILED;
    j->exit_code = -1;
    j->end_time = prism_now_ms();
    snprintf(j->message, sizeof j->message, "the driver could not start: %s", err);
    na_link_publish_job(na, j);
    if (na_job_path(na, j->id, NULL, dir, sizeof dir) == 0)
        prism_remove_tree(dir);
    json_t *reply = prism_error_json("start_failed", "%s", err);
    free_gpus(na, j); /* those its lease held, when it failed before the driver started */
    na_job_remove(na, j);
    return reply;
}

json_t *na_driver_start(nodeagent *na, json_t *req)
{
    start_req r = {0};
    json_t *reply = parse_request(req, &r);
    if (reply)
        return reply;
    pthread_mutex_lock(&na->lock);
    reply = claim(na, &r);
    na_job *j = reply ? NULL : na_job_find(na, r.job_id);
    /* The job shows PENDING "fetching its packages" while they come. */
    if (j && (r.package || json_array_size(r.packages) > 0))
        na_link_publish_job(na, j);
    pthread_mutex_unlock(&na->lock);
    if (reply)
        return reply;
    /* Fetching a package may take long: the lock is not held meanwhile. */
    char dir[NA_PATH_MAX], err[512];
    int rc = prepare_dir(na, &r, dir, sizeof dir, err, sizeof err);
    pthread_mutex_lock(&na->lock);
    if (rc == 0)
        rc = launch(na, j, &r, dir, err, sizeof err);
    reply = rc == 0 ? ok_reply(j) : start_failed(na, j, err);
    pthread_mutex_unlock(&na->lock);
    return reply;
}
