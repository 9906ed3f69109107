/* The node agent's REST API (openapi/nodeagent.yaml). /healthz and /metrics
 * come with the server. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nodeagent.h"
#include "prism_fs.h"

#define LOG_LIMIT_DEFAULT (1 << 20)
#define LOG_LIMIT_MAX (64 << 20)

static void get_node(prism_http_req *req, void *ctx)
{
    nodeagent *na = ctx;
    pthread_mutex_lock(&na->lock);
    json_t *doc = json_pack("{s:s,s:s,s:s,s:O,s:o,s:o,s:b,s:i,s:s?}", "node_id", na->node_id,
                            "name", na->cfg.name, "address", na->address, "resources",
                            na->resources, "available", na_available(na), "running_jobs",
                            na_running_jobs(na), "registered", na->registered, "pid", (int)getpid(),
                            "store_address", na->cfg.store_address);
    pthread_mutex_unlock(&na->lock);
    if (!doc) {
        prism_http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    prism_http_reply_json(req, 200, doc);
}

static void get_workers(prism_http_req *req, void *ctx)
{
    nodeagent *na = ctx;
    pthread_mutex_lock(&na->lock);
    json_t *doc = json_pack("{s:s,s:o,s:I,s:I}", "node_id", na->node_id, "workers",
                            na_workers_json(na), "prestart_workers",
                            (json_int_t)na->cfg.prestart_workers, "max_workers",
                            (json_int_t)na->cfg.max_workers);
    pthread_mutex_unlock(&na->lock);
    if (!doc) {
        prism_http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    prism_http_reply_json(req, 200, doc);
}

/* Opens a job's log; -1 with a reply sent when there is none. */
static int open_log(prism_http_req *req, const nodeagent *na, const char *id)
{
    char path[NA_PATH_MAX];
    struct stat st;
    if (!prism_safe_name(id) || na_job_path(na, id, "driver.log", path, sizeof path) != 0) {
        prism_http_reply_error(req, 404, "not_found", "no job '%s' on this node", id);
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        return fd;
    if (errno != ENOENT) {
        prism_http_reply_error(req, 500, "internal", "cannot open the log: %s", strerror(errno));
        return -1;
    }
    /* The job exists but its driver has not started yet: an empty log. */
    if (na_job_path(na, id, NULL, path, sizeof path) == 0 && stat(path, &st) == 0)
        prism_http_reply(req, 200, "text/plain", "", 0);
    else
        prism_http_reply_error(req, 404, "not_found", "no job '%s' on this node", id);
    return -1;
}

static void get_logs(prism_http_req *req, void *ctx)
{
    nodeagent *na = ctx;
    const char *id = prism_http_param(req, "id");
    int64_t offset, limit;
    if (prism_http_query_int(req, "offset", 0, 0, INT64_MAX, &offset) != 0 ||
        prism_http_query_int(req, "limit", LOG_LIMIT_DEFAULT, 0, LOG_LIMIT_MAX, &limit) != 0)
        return;
    int fd = open_log(req, na, id);
    if (fd < 0)
        return;
    struct stat st;
    int64_t size = fstat(fd, &st) == 0 ? (int64_t)st.st_size : 0;
    char size_text[32];
    snprintf(size_text, sizeof size_text, "%" PRId64, size);
    prism_http_add_header(req, "X-Prism-Log-Size", size_text);
    int64_t len = offset < size ? size - offset : 0;
    if (len > limit)
        len = limit;
    if (len == 0) {
        close(fd);
        prism_http_reply(req, 200, "text/plain", "", 0);
        return;
    }
    prism_http_reply_fd(req, 200, "text/plain", fd, (uint64_t)offset, (uint64_t)len);
}

const prism_http_route na_routes[] = {
    {"GET", "/api/v1/node", get_node, 0},
    {"GET", "/api/v1/jobs/{id}/logs", get_logs, 0},
    {"GET", "/api/v1/workers", get_workers, 0},
};
const size_t na_nroutes = sizeof na_routes / sizeof na_routes[0];
