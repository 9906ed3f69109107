/* The node's NATS subjects, prism.node.<node_id>.<verb>, dispatched from one
 * table. Each verb has its own subscription (so its own thread): a start
 * that fetches a package does not hold up a stop, a status or a lease. */
#include <stdio.h>
#include <string.h>

#include "nodeagent.h"
#include "prism_error.h"
#include "prism_fs.h"
#include "prism_subjects.h"

/* Returns the answer, or NULL when there is none (yet: a lease whose worker
 * is starting is answered on `reply` later). */
typedef json_t *(*subject_fn)(nodeagent *na, json_t *req, const char *reply);

/* The job_id member, checked to be usable in a path; NULL when it is not. */
static const char *job_id_of(json_t *req)
{
    const char *id = json_string_value(json_object_get(req, "job_id"));
    return id && prism_safe_name(id) ? id : NULL;
}

static json_t *on_start(nodeagent *na, json_t *req, const char *reply)
{
    return na_driver_start(na, req);
}

static json_t *on_stop(nodeagent *na, json_t *req, const char *reply)
{
    const char *id = job_id_of(req);
    if (!id)
        return prism_error_json("invalid_argument", "'job_id' must be 1-128 of [A-Za-z0-9._-]");
    pthread_mutex_lock(&na->lock);
    na_job *j = na_job_find(na, id);
    int rc = j ? na_driver_stop(na, j) : -1;
    pthread_mutex_unlock(&na->lock);
    return rc == 0 ? json_pack("{s:b}", "ok", 1)
                   : prism_error_json("not_running", "job '%s' is not running on this node", id);
}

static json_t *on_status(nodeagent *na, json_t *req, const char *reply)
{
    const char *id = job_id_of(req);
    if (!id)
        return prism_error_json("invalid_argument", "'job_id' must be 1-128 of [A-Za-z0-9._-]");
    pthread_mutex_lock(&na->lock);
    na_job *j = na_job_find(na, id);
    json_t *st = j ? na_job_json(j) : na_job_read_status(na, id);
    pthread_mutex_unlock(&na->lock);
    return st ? st : json_pack("{s:s,s:s}", "job_id", id, "state", "UNKNOWN");
}

static json_t *on_delete(nodeagent *na, json_t *req, const char *reply)
{
    json_t *ids = json_object_get(req, "job_ids");
    if (!json_is_array(ids))
        return prism_error_json("invalid_argument", "'job_ids' must be an array");
    pthread_mutex_lock(&na->lock);
    na_jobs_delete(na, ids);
    pthread_mutex_unlock(&na->lock);
    return json_pack("{s:b}", "ok", 1); /* sent only when asked as a request */
}

static json_t *on_lease(nodeagent *na, json_t *req, const char *reply)
{
    return na_lease_request(na, req, reply);
}

static json_t *on_return(nodeagent *na, json_t *req, const char *reply)
{
    return na_lease_return(na, req);
}

static json_t *on_check(nodeagent *na, json_t *req, const char *reply)
{
    return na_lease_check(na, req);
}

static json_t *on_blocked(nodeagent *na, json_t *req, const char *reply)
{
    return na_lease_blocked(na, req);
}

static json_t *on_kill(nodeagent *na, json_t *req, const char *reply)
{
    return na_lease_kill(na, req);
}

static json_t *on_bundle_reserve(nodeagent *na, json_t *req, const char *reply)
{
    return na_bundle_reserve(na, req);
}

static json_t *on_bundle_return(nodeagent *na, json_t *req, const char *reply)
{
    return na_bundle_return(na, req);
}

static const struct {
    const char *verb;
    subject_fn fn;
} subjects[] = {
    {PRISM_NODE_JOB_START, on_start},
    {PRISM_NODE_JOB_STOP, on_stop},
    {PRISM_NODE_JOB_STATUS, on_status},
    {PRISM_NODE_JOB_DELETE, on_delete},
    {PRISM_NODE_WORKER_LEASE, on_lease},
    {PRISM_NODE_WORKER_RETURN, on_return},
    {PRISM_NODE_WORKER_CHECK, on_check},
    {PRISM_NODE_WORKER_BLOCKED, on_blocked},
    {PRISM_NODE_WORKER_KILL, on_kill},
    {PRISM_NODE_BUNDLE_RESERVE, on_bundle_reserve},
    {PRISM_NODE_BUNDLE_RETURN, on_bundle_return},
};

/* Splits prism.node.<id>.<verb> into the node ID and the table entry. */
static subject_fn route(const char *subject, char node_id[PRISM_ID_HEX_LEN + 1])
{
    const char *p = subject + strlen(PRISM_SUBJECT_NODE_PREFIX);
    if (strncmp(subject, PRISM_SUBJECT_NODE_PREFIX, strlen(PRISM_SUBJECT_NODE_PREFIX)) != 0 ||
        strlen(p) < PRISM_ID_HEX_LEN + 2 || p[PRISM_ID_HEX_LEN] != '.')
        return NULL;
    memcpy(node_id, p, PRISM_ID_HEX_LEN);
    node_id[PRISM_ID_HEX_LEN] = '\0';
    for (size_t i = 0; i < sizeof subjects / sizeof subjects[0]; i++)
        if (!strcmp(p + PRISM_ID_HEX_LEN + 1, subjects[i].verb))
            return subjects[i].fn;
    return NULL;
}

/* Counts a handler in (see `busy`): NULL, or the error to answer instead. */
static json_t *enter(nodeagent *na, const char *node_id)
{
    json_t *err = NULL;
    pthread_mutex_lock(&na->lock);
    na->busy++;
    if (na->closing)
        err = prism_error_json("shutting_down", "the node agent is shutting down");
    else if (strcmp(node_id, na->node_id) != 0)
        err = prism_error_json("unknown_node",
                               "node %s is a previous incarnation of this node, now %s", node_id,
                               na->node_id);
    pthread_mutex_unlock(&na->lock);
    return err;
}

static void leave(nodeagent *na)
{
    pthread_mutex_lock(&na->lock);
    if (--na->busy == 0)
        pthread_cond_broadcast(&na->idle);
    pthread_mutex_unlock(&na->lock);
}

static void send_reply(prism_bus *bus, const char *subject, const char *reply, json_t *answer)
{
    if (reply && answer && prism_bus_publish_json(bus, reply, answer) != 0)
        LOG_WARN("%s: cannot send the reply: %s", subject, prism_bus_last_error(bus));
    json_decref(answer);
}

static void on_message(prism_bus *bus, const char *subject, const char *reply, const char *data,
                       size_t len, void *ud)
{
    nodeagent *na = ud;
    char node_id[PRISM_ID_HEX_LEN + 1];
    subject_fn fn = route(subject, node_id);
    if (!fn)
        return;
    json_t *answer = enter(na, node_id);
    if (!answer) {
        json_t *req = json_loadb(data, len, 0, NULL);
        answer = json_is_object(req)
                     ? fn(na, req, reply)
                     : prism_error_json("invalid_json", "the payload must be a JSON object");
        json_decref(req);
    }
    send_reply(bus, subject, reply, answer);
    leave(na);
}

int na_subjects_subscribe(nodeagent *na, const char *node_id)
{
    for (size_t i = 0; i < sizeof subjects / sizeof subjects[0]; i++) {
        char subject[PRISM_SUBJECT_MAX];
        prism_subject_node(subject, sizeof subject, node_id, subjects[i].verb);
        if (prism_bus_subscribe(na->bus, subject, NULL, on_message, na) != 0)
            return -1;
    }
    return 0;
}

void na_subjects_unsubscribe(nodeagent *na, const char *node_id)
{
    for (size_t i = 0; i < sizeof subjects / sizeof subjects[0]; i++) {
        char subject[PRISM_SUBJECT_MAX];
        prism_subject_node(subject, sizeof subject, node_id, subjects[i].verb);
        prism_bus_unsubscribe(na->bus, subject);
    }
}
