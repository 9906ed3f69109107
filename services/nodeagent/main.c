/* prism-nodeagent: startup, the main loop with its cron, and shutdown. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "prism_httpc.h"
#include "nodeagent.h"
#include "prism_fs.h"
#include "prism_signal.h"

#define TICK_MS 50 /* cron period: reaping latency and stop-deadline precision */

static void read_boot_id(nodeagent *na)
{
    if (na_read_line("/proc/sys/kernel/random/boot_id", na->boot_id, sizeof na->boot_id) != 0)
        snprintf(na->boot_id, sizeof na->boot_id, "unknown");
}

static double worker_gauge(nodeagent *na, na_worker_state state)
{
    pthread_mutex_lock(&na->lock);
    int n = na_workers_count(na, state, false);
    pthread_mutex_unlock(&na->lock);
    return n;
}

static double g_starting(void *na) { return worker_gauge(na, NA_WORKER_STARTING); }
static double g_idle(void *na) { return worker_gauge(na, NA_WORKER_IDLE); }
static double g_leased(void *na) { return worker_gauge(na, NA_WORKER_LEASED); }
static double g_stopping(void *na) { return worker_gauge(na, NA_WORKER_STOPPING); }
static double (*const worker_gauges[])(void *) = {g_starting, g_idle, g_leased, g_stopping};

static int register_metrics(nodeagent *na)
{
    prism_metrics *m = na->metrics = prism_metrics_create();
    if (!m)
        return -1;
    na->m.running = prism_metrics_gauge(m, "prism_nodeagent_drivers_running",
                                        "Job drivers running on this node", NULL);
    na->m.started = prism_metrics_counter(m, "prism_nodeagent_drivers_started_total",
                                          "Job drivers started", NULL);
    na->m.heartbeats = prism_metrics_counter(m, "prism_nodeagent_heartbeats_total",
                                             "Heartbeats answered by the GCS", NULL);
    na->m.heartbeat_failures = prism_metrics_counter(
        m, "prism_nodeagent_heartbeat_failures_total", "Heartbeats not answered", NULL);
    na->m.registrations = prism_metrics_counter(m, "prism_nodeagent_registrations_total",
                                                "Incarnations registered with the GCS", NULL);
    na->m.workers_started = prism_metrics_counter(m, "prism_nodeagent_workers_started_total",
                                                  "Worker processes started", NULL);
    na->m.worker_failures = prism_metrics_counter(
        m, "prism_nodeagent_worker_start_failures_total", "Workers that failed to start", NULL);
    na->m.leases_granted = prism_metrics_counter(m, "prism_nodeagent_leases_granted_total",
                                                 "Worker leases granted", NULL);
    na->m.leases_busy = prism_metrics_counter(m, "prism_nodeagent_leases_busy_total",
                                              "Worker lease requests answered busy", NULL);
    na->m.leases_returned = prism_metrics_counter(m, "prism_nodeagent_leases_returned_total",
                                                  "Worker leases returned", NULL);
    static const char *const states[] = {"starting", "idle", "leased", "stopping"};
    for (int i = 0; i < 4; i++) {
        char labels[32];
        snprintf(labels, sizeof labels, "state=\"%s\"", states[i]);
        prism_metrics_gauge_fn(m, "prism_nodeagent_workers", "Worker processes by state", labels,
                               worker_gauges[i], na);
    }
    return 0;
}

static int serve(nodeagent *na, char *err, size_t errlen)
{
    if (na_api_start(na, err, errlen) != 0)
        return -1;
    return prism_http_server_publish(na->http, na->cfg.host, na->cfg.address_file, na->address,
                                     sizeof na->address, err, errlen);
}

static int startup(nodeagent *na, char *err, size_t errlen)
{
    char jobs[NA_PATH_MAX];
    read_boot_id(na);
    snprintf(jobs, sizeof jobs, "%s/jobs", na->cfg.state_dir);
    if (prism_mkdir_p(jobs, 0700) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", jobs, strerror(errno));
        return -1;
    }
    if (na_workers_prepare_dir(na, err, errlen) != 0)
        return -1;
    if (access(na->cfg.worker_bin, X_OK) != 0)
        LOG_WARN("no worker program at %s (%s): leases will be answered busy until it exists",
                 na->cfg.worker_bin, strerror(errno));
    na->resources = na_config_resources(&na->cfg);
    if (!na->resources || register_metrics(na) != 0 || na_launcher_create(&na->launcher) != 0) {
        snprintf(err, errlen, "out of resources at startup");
        return -1;
    }
    /* Without waiting: the agent may start before the broker. */
    if (prism_bus_connect(&na->bus, na->cfg.nats_url, na->cfg.token, "prism-nodeagent", 0, err,
                          errlen) != 0)
        return -1;
    if (na_jobs_recover(na) != 0)
        LOG_WARN("cannot scan %s: %s", jobs, strerror(errno));
    if (serve(na, err, errlen) != 0)
        return -1;
    if (na_link_start(na) != 0) {
        snprintf(err, errlen, "cannot subscribe: %s", prism_bus_last_error(na->bus));
        return -1;
    }
    char *res = json_dumps(na->resources, JSON_COMPACT | JSON_SORT_KEYS);
    LOG_INFO("node %s serving on %s, state in %s, resources %s", na->cfg.name, na->address,
             na->cfg.state_dir, res ? res : "?");
    free(res);
    return 0;
}

static void cron(nodeagent *na)
{
    pthread_mutex_lock(&na->lock);
    na_drivers_reap(na);
    na_drivers_enforce_stops(na);
    na_workers_cron(na);
    bool report = na->report_wanted && na->registered;
    pthread_mutex_unlock(&na->lock);
    na_link_cron(na);
    if (report)
        na_link_report(na); /* availability changed since the last report */
}

static void shutdown_agent(nodeagent *na)
{
    if (na->address[0] && na->cfg.address_file && *na->cfg.address_file)
        unlink(na->cfg.address_file); /* stop advertising a service that is going away */
    pthread_mutex_lock(&na->lock);
    na->closing = true; /* NATS handlers refuse work from now on */
    while (na->busy > 0)
        pthread_cond_wait(&na->idle, &na->lock);
    pthread_mutex_unlock(&na->lock);
    na_drivers_shutdown(na);
    na_workers_shutdown(na);
    prism_bus_destroy(na->bus); /* flushes the last job updates */
    prism_http_server_destroy(na->http);
    na_launcher_destroy(na->launcher);
    while (na->jobs)
        na_job_remove(na, na->jobs);
    json_decref(na->resources);
    prism_metrics_destroy(na->metrics);
}

int main(int argc, char **argv)
{
    prism_signal_block();
    static nodeagent na; /* like redis' `server`: the one state of this process */
    char err[1024];
    int rc = na_config_load(&na.cfg, argc, argv, err, sizeof err);
    if (rc != NA_CONFIG_OK) {
        if (rc == NA_CONFIG_HELP)
            na_config_print_help(stdout);
        else if (rc == NA_CONFIG_ROUTES)
            na_api_print_routes(stdout);
        else
            fprintf(stderr, "prism-nodeagent: %s\n", err);
        na_config_free(&na.cfg);
        return rc == NA_CONFIG_ERROR ? 2 : 0;
    }
    prism_log_init("nodeagent", na.cfg.level);
    prism_httpc_global_init(); /* before any thread: package fetches run on NATS callbacks */
    pthread_mutex_init(&na.lock, NULL);
    pthread_mutex_init(&na.pkg_lock, NULL);
    pthread_cond_init(&na.idle, NULL);
    rc = startup(&na, err, sizeof err);
    if (rc != 0) {
        LOG_ERROR("%s", err);
    } else {
        int sig;
        while ((sig = prism_signal_wait(TICK_MS)) == 0)
            cron(&na);
        LOG_INFO("signal %d: stopping drivers and workers, shutting down", sig);
    }
    shutdown_agent(&na);
    pthread_cond_destroy(&na.idle);
    pthread_mutex_destroy(&na.pkg_lock);
    pthread_mutex_destroy(&na.lock);
    na_config_free(&na.cfg);
    return rc == 0 ? 0 : 1;
}
