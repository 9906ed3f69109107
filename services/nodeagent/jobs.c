/* The job table and each job's records under STATE_DIR/jobs/JOB_ID/:
 *   driver.log   the driver's stdout and stderr
 *   driver.json  {pgid, boot_id, start_time, node_id}, written at start
 *   status.json  {job_id, state, exit_code, start_time, end_time, message,
 *                 node_id}, written when the driver ended
 * A job is in the table from job.start until its status.json is written;
 * after that the records on disk answer for it. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nodeagent.h"
#include "prism_fs.h"
#include "prism_time.h"

#define RECORD_MAX (64 * 1024)

const char *na_state_name(na_job_state s)
{
    /* A job whose packages are still being fetched has no driver yet: it
     * is PENDING, with a message saying so (na_job_json). */
    static const char *const names[] = {"PENDING", "RUNNING", "SUCCEEDED", "FAILED", "STOPPED"};
    return names[s];
}

bool na_state_ended(na_job_state s)
{
    return s == NA_JOB_SUCCEEDED || s == NA_JOB_FAILED || s == NA_JOB_STOPPED;
}

int na_job_path(const nodeagent *na, const char *id, const char *file, char *out, size_t len)
{
    int n = file ? snprintf(out, len, "%s/jobs/%s/%s", na->cfg.state_dir, id, file)
                 : snprintf(out, len, "%s/jobs/%s", na->cfg.state_dir, id);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

na_job *na_job_find(nodeagent *na, const char *id)
{
    for (na_job *j = na->jobs; j; j = j->next)
        if (!strcmp(j->id, id))
            return j;
    return NULL;
}

void na_job_remove(nodeagent *na, na_job *j)
{
    for (na_job **p = &na->jobs; *p; p = &(*p)->next) {
        if (*p == j) {
            *p = j->next;
            json_decref(j->resources);
            free(j);
            na->report_wanted = true;
            return;
        }
    }
}

json_t *na_job_json(const na_job *j)
{
    json_t *o = json_pack("{s:s,s:s,s:s}", "job_id", j->id, "state", na_state_name(j->state),
                          "node_id", j->node_id);
    if (!o)
        return NULL;
    if (j->start_time > 0)
        json_object_set_new(o, "start_time", json_integer(j->start_time));
    if (j->state == NA_JOB_RUNNING)
        json_object_set_new(o, "pid", json_integer(j->pid));
    if (na_state_ended(j->state)) {
        if (j->exit_code >= 0)
            json_object_set_new(o, "exit_code", json_integer(j->exit_code));
        json_object_set_new(o, "end_time", json_integer(j->end_time));
    }
    if (j->message[0])
        json_object_set_new(o, "message", json_string(j->message));
    else if (j->state == NA_JOB_STARTING)
        json_object_set_new(o, "message", json_string("fetching its packages on the node"));
    return o;
}

static int write_json(const nodeagent *na, const char *id, const char *file, json_t *doc)
{
    char path[NA_PATH_MAX];
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    int rc = -1;
    if (text && na_job_path(na, id, file, path, sizeof path) == 0)
        rc = prism_write_file_atomic(path, text, strlen(text), 0600);
    free(text);
    return rc;
}

int na_job_write_status(const nodeagent *na, const na_job *j)
{
    json_t *doc = na_job_json(j);
    int rc = write_json(na, j->id, "status.json", doc);
    json_decref(doc);
    return rc;
}

int na_job_write_driver_file(const nodeagent *na, const na_job *j)
{
    json_t *doc = json_pack("{s:i,s:s,s:I,s:s}", "pgid", (int)j->pid, "boot_id", na->boot_id,
                            "start_time", (json_int_t)j->start_time, "node_id", j->node_id);
    int rc = write_json(na, j->id, "driver.json", doc);
    json_decref(doc);
    return rc;
}

static json_t *read_json(const nodeagent *na, const char *id, const char *file)
{
    char path[NA_PATH_MAX];
    if (na_job_path(na, id, file, path, sizeof path) != 0)
        return NULL;
    char *text = prism_read_file(path, RECORD_MAX, NULL);
    json_t *doc = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (doc && !json_is_object(doc)) {
        json_decref(doc);
        doc = NULL;
    }
    return doc;
}

json_t *na_job_read_status(const nodeagent *na, const char *id)
{
    return read_json(na, id, "status.json");
}

/* Kills what is left of a driver's process group from an earlier incarnation
 * (the driver itself died with that agent; its children may not have). The
 * boot id guards against a process group number reused after a reboot. */
static void kill_stale_group(const nodeagent *na, json_t *drv)
{
    json_int_t pgid = json_integer_value(json_object_get(drv, "pgid"));
    const char *boot = json_string_value(json_object_get(drv, "boot_id"));
    if (pgid > 1 && boot && !strcmp(boot, na->boot_id) && kill(-(pid_t)pgid, SIGKILL) == 0)
        LOG_INFO("killed stale process group %lld of a previous incarnation", (long long)pgid);
}

static void recover_job(nodeagent *na, const char *id)
{
    json_t *st = na_job_read_status(na, id);
    if (st) {
        json_decref(st);
        return;
    }
    na_job j = {.state = NA_JOB_FAILED, .exit_code = -1, .end_time = prism_now_ms()};
    snprintf(j.id, sizeof j.id, "%s", id);
    snprintf(j.message, sizeof j.message, "node agent restarted");
    json_t *drv = read_json(na, id, "driver.json");
    if (drv) {
        kill_stale_group(na, drv);
        j.start_time = json_integer_value(json_object_get(drv, "start_time"));
        const char *node = json_string_value(json_object_get(drv, "node_id"));
        snprintf(j.node_id, sizeof j.node_id, "%s", node ? node : "");
        json_decref(drv);
    }
    if (na_job_write_status(na, &j) != 0)
        LOG_WARN("job %s: cannot write status.json: %s", id, strerror(errno));
    else
        LOG_INFO("job %s: FAILED (node agent restarted while it ran)", id);
    if (j.node_id[0])
        na_link_publish_job(na, &j);
}

int na_jobs_recover(nodeagent *na)
{
    char path[NA_PATH_MAX];
    snprintf(path, sizeof path, "%s/jobs", na->cfg.state_dir);
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !prism_safe_name(e->d_name))
            continue;
        recover_job(na, e->d_name);
    }
    closedir(d);
    return 0;
}

static int delete_one(nodeagent *na, const char *id)
{
    na_job *j = na_job_find(na, id);
    if (j && !na_state_ended(j->state)) {
        LOG_WARN("job %s: not deleted, it is still running", id);
        return -1;
    }
    if (j)
        na_job_remove(na, j);
    char dir[NA_PATH_MAX];
    if (na_job_path(na, id, NULL, dir, sizeof dir) != 0 || prism_remove_tree(dir) != 0) {
        LOG_WARN("job %s: cannot remove its records: %s", id, strerror(errno));
        return -1;
    }
    return 0;
}

void na_jobs_delete(nodeagent *na, json_t *ids)
{
    size_t i, deleted = 0;
    json_t *v;
    json_array_foreach(ids, i, v) {
        const char *id = json_string_value(v);
        if (id && prism_safe_name(id) && delete_one(na, id) == 0)
            deleted++;
    }
    LOG_INFO("deleted the records of %zu of %zu jobs", deleted, json_array_size(ids));
}
