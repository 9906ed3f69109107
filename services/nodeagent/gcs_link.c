/* The link to the cluster over NATS: registering each incarnation with the
 * GCS, heartbeats, job updates, and the resource reports schedulers build
 * their view from (prism.sched.node). Register, heartbeat and reports run
 * from the main thread's cron. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nodeagent.h"
#include "prism_subjects.h"
#include "prism_time.h"

#define REGISTER_TIMEOUT_MS 2000
#define REGISTER_RETRY_MS 1000
#define HEARTBEAT_TIMEOUT_MAX_MS 2000

/* 0 when `reply` is {"ok": true}; else the error code (or "no_answer"). */
static const char *reply_error(int rc, json_t *reply)
{
    if (rc == PRISM_BUS_TIMEOUT)
        return "timeout";
    if (rc == PRISM_BUS_NO_RESPONDERS)
        return "no_responders";
    if (rc != PRISM_BUS_OK || !reply)
        return "no_answer";
    if (json_is_true(json_object_get(reply, "ok")))
        return NULL;
    const char *code = json_string_value(json_object_get(json_object_get(reply, "error"), "code"));
    return code ? code : "bad_answer";
}

/* A new incarnation: a fresh node ID and its subscriptions. Main thread. */
int na_link_start(nodeagent *na)
{
    prism_id id;
    prism_id_random(&id);
    char hex[PRISM_ID_HEX_LEN + 1];
    prism_id_to_hex(&id, hex);
    pthread_mutex_lock(&na->lock);
    snprintf(na->node_id, sizeof na->node_id, "%s", hex);
    na->registered = false;
    pthread_mutex_unlock(&na->lock);
    na->next_link_ms = 0;
    return na_subjects_subscribe(na, hex);
}

static json_t *register_payload(nodeagent *na)
{
    pthread_mutex_lock(&na->lock);
    json_t *p = json_pack("{s:s,s:s,s:s,s:O,s:i,s:s?}", "node_id", na->node_id, "name",
                          na->cfg.name, "address", na->address, "resources", na->resources, "pid",
                          (int)getpid(), "store_address", na->cfg.store_address);
    pthread_mutex_unlock(&na->lock);
    return p;
}

static void try_register(nodeagent *na)
{
    json_t *req = register_payload(na), *reply = NULL;
    int rc = prism_bus_request_json(na->bus, PRISM_SUBJECT_NODE_REGISTER, req, REGISTER_TIMEOUT_MS,
                                    &reply);
    const char *code = reply_error(rc, reply);
    if (!code) {
        pthread_mutex_lock(&na->lock);
        na->registered = true;
        pthread_mutex_unlock(&na->lock);
        na->link_ok = true;
        na->register_failures = 0;
        prism_metric_add(na->m.registrations, 1);
        LOG_INFO("registered as node %s (%s) at %s",
                 json_string_value(json_object_get(req, "node_id")), na->cfg.name, na->address);
    } else {
        prism_log(na->register_failures++ ? PRISM_LOG_DEBUG : PRISM_LOG_WARN,
                  "register failed (%s), retrying every %d ms", code, REGISTER_RETRY_MS);
        na->next_link_ms = prism_mono_ms() + REGISTER_RETRY_MS;
    }
    json_decref(req);
    json_decref(reply);
}

/* The GCS gave up on this incarnation: its jobs are failed there already. */
static void reincarnate(nodeagent *na, const char *code)
{
    char why[NA_MESSAGE_MAX];
    snprintf(why, sizeof why, "the GCS declared node %s dead (%s)", na->node_id, code);
    pthread_mutex_lock(&na->lock);
    na_drivers_kill_all(na, why);
    na_workers_kill_all(na, why); /* they carry the old node ID */
    na_bundles_drop_all(na, why); /* the GCS re-reserves them elsewhere */
    pthread_mutex_unlock(&na->lock);
    LOG_WARN("%s: registering again under a new node ID", why);
    char old[PRISM_ID_HEX_LEN + 1];
    snprintf(old, sizeof old, "%s", na->node_id);
    if (na_link_start(na) != 0)
        LOG_ERROR("cannot subscribe to the new node's subjects: %s", prism_bus_last_error(na->bus));
    na_subjects_unsubscribe(na, old);
}

static void heartbeat(nodeagent *na)
{
    pthread_mutex_lock(&na->lock);
    json_t *req =
        json_pack("{s:s,s:o}", "node_id", na->node_id, "running_jobs", na_running_jobs(na));
    pthread_mutex_unlock(&na->lock);
    json_t *reply = NULL;
    int timeout = na->cfg.heartbeat_ms < HEARTBEAT_TIMEOUT_MAX_MS ? (int)na->cfg.heartbeat_ms
                                                                  : HEARTBEAT_TIMEOUT_MAX_MS;
    int64_t t0 = prism_mono_ns();
    int rc = prism_bus_request_json(na->bus, PRISM_SUBJECT_NODE_HEARTBEAT, req, timeout, &reply);
    const char *code = reply_error(rc, reply);
    if (!code) {
        prism_metric_observe(na->m.heartbeat_seconds, (double)(prism_mono_ns() - t0) / 1e9);
        prism_metric_add(na->m.heartbeats, 1);
        if (!na->link_ok)
            LOG_INFO("heartbeats are answered again");
        na->link_ok = true;
    } else if (!strcmp(code, "unknown_node") || !strcmp(code, "node_dead")) {
        reincarnate(na, code);
    } else {
        prism_metric_add(na->m.heartbeat_failures, 1);
        if (na->link_ok)
            LOG_WARN("heartbeat failed (%s); will keep trying", code);
        na->link_ok = false;
    }
    json_decref(req);
    json_decref(reply);
}

void na_link_cron(nodeagent *na)
{
    int64_t now = prism_mono_ms();
    if (now < na->next_link_ms)
        return;
    na->next_link_ms = now + na->cfg.heartbeat_ms;
    /* Only this thread changes `registered`, so reading it unlocked is safe. */
    if (!na->registered)
        try_register(na);
    else
        heartbeat(na);
    if (na->registered)
        na_link_report(na);
}

static json_t *report_payload(nodeagent *na)
{
    pthread_mutex_lock(&na->lock);
    na->report_wanted = false;
    json_t *p = json_pack("{s:s,s:s,s:O,s:o,s:i,s:i,s:I,s:s,s:s?}", "node_id", na->node_id, "name",
                          na->cfg.name, "total", na->resources, "available", na_available(na),
                          "workers_idle", na_workers_count(na, NA_WORKER_IDLE, true), "workers",
                          na_workers_count(na, NA_WORKER_IDLE, false) +
                              na_workers_count(na, NA_WORKER_LEASED, false) +
                              na_workers_count(na, NA_WORKER_STARTING, false),
                          "time", (json_int_t)prism_now_ms(), "address", na->address,
                          "store_address", na->cfg.store_address);
    if (p && na->bundles)
        json_object_set_new(p, "bundles", na_bundles_json(na));
    pthread_mutex_unlock(&na->lock);
    return p;
}

void na_link_report(nodeagent *na)
{
    json_t *p = report_payload(na);
    if (!p || prism_bus_publish_json(na->bus, PRISM_SUBJECT_SCHED_NODE, p) != 0)
        LOG_DEBUG("cannot publish the resource report: %s", prism_bus_last_error(na->bus));
    json_decref(p);
}

void na_link_publish_job(nodeagent *na, const na_job *j)
{
    json_t *doc = na_job_json(j);
    json_object_del(doc, "pid");
    if (!doc || prism_bus_publish_json(na->bus, PRISM_SUBJECT_JOB_UPDATE, doc) != 0)
        LOG_WARN("job %s: cannot publish its update: %s", j->id, prism_bus_last_error(na->bus));
    json_decref(doc);
}
