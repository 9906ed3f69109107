/* prism-nodeagent: its options, start-up and shutdown hooks and periodic
 * job, on the service skeleton (prism_service.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "nodeagent.h"
#include "prism_fs.h"
#include "prism_service.h"

/* like redis' `server`: the one state of this process. Options without a
 * default stay -1 until config.c detects them. */
static nodeagent na = {
    .cfg =
        {.num_cpus = -1, .num_gpus = -1, .memory = -1, .prestart_workers = -1, .max_workers = -1},
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .pkg_lock = PTHREAD_MUTEX_INITIALIZER,
    .idle = PTHREAD_COND_INITIALIZER,
    .wake_fd = -1,
};

static prism_option options[] = {
    {"gcs-address", PRISM_OPT_STRING, &na.cfg.gcs_address, NULL,
     "GCS REST base URL (packages; PRISM_ADDRESS of drivers)"},
    {"state-dir", PRISM_OPT_STRING, &na.cfg.state_dir, NULL,
     "directory for job logs, records and packages (default: ~/.prism/node-NAME)"},
    {"name", PRISM_OPT_STRING, &na.cfg.name, NULL, "node name (default: host name)"},
    {"num-cpus", PRISM_OPT_INT, &na.cfg.num_cpus, NULL, "CPUs to offer (default: usable CPUs)"},
    {"num-gpus", PRISM_OPT_INT, &na.cfg.num_gpus, NULL, "GPUs to offer (default: detected)"},
    {"memory", PRISM_OPT_SIZE, &na.cfg.memory, NULL, "memory to offer (default: physical)"},
    {"resources", PRISM_OPT_STRING, &na.cfg.resources, "{}",
     "custom resources as a JSON object, e.g. {\"accel\": 2}"},
    {"heartbeat-ms", PRISM_OPT_INT, &na.cfg.heartbeat_ms, "1000", "heartbeat period"},
    {"stop-grace-ms", PRISM_OPT_INT, &na.cfg.stop_grace_ms, "3000",
     "time from SIGTERM to SIGKILL when a job is stopped"},
    {"package-max-size", PRISM_OPT_SIZE, &na.cfg.package_max, "1GiB",
     "largest package fetched (a working directory or a job's package)"},
    {"package-timeout-ms", PRISM_OPT_INT, &na.cfg.package_timeout_ms, "120000",
     "time limit of one package download"},
    {"package-cache-max", PRISM_OPT_SIZE, &na.cfg.package_cache_max, "4GiB",
     "packages kept on disk; the least recently used go beyond this (0: no limit)"},
    {"store-socket", PRISM_OPT_STRING, &na.cfg.store_socket, NULL,
     "Unix socket of the node's object store (handed to workers)"},
    {"store-address", PRISM_OPT_STRING, &na.cfg.store_address, NULL,
     "HTTP URL of the node's object store (reported with the node)"},
    {"worker-bin", PRISM_OPT_STRING, &na.cfg.worker_bin, NULL,
     "worker program (default: prism-worker next to this program)"},
    {"prestart-workers", PRISM_OPT_INT, &na.cfg.prestart_workers, NULL,
     "idle workers kept ready (default: min(2, CPUs))"},
    {"max-workers", PRISM_OPT_INT, &na.cfg.max_workers, NULL,
     "most worker processes at once (default: 4 x CPUs, at least 4)"},
    {"worker-idle-ms", PRISM_OPT_INT, &na.cfg.worker_idle_ms, "60000",
     "idle workers beyond --prestart-workers are stopped after this"},
    {"worker-start-timeout-ms", PRISM_OPT_INT, &na.cfg.worker_start_timeout_ms, "30000",
     "a worker not ready after this is killed"},
};

static int configure(void *ctx, const prism_service_settings *s, char *err, size_t errlen)
{
    na.cfg.host = s->host;
    na.cfg.token = s->token;
    na.cfg.nats_url = s->nats_url;
    if (na_config_check(&na.cfg, err, errlen) == 0)
        return 0;
    json_decref(na.cfg.custom); /* cleanup() does not run after a configuration error */
    na.cfg.custom = NULL;
    return -1;
}

static double worker_gauge(na_worker_state state)
{
    pthread_mutex_lock(&na.lock);
    int n = na_workers_count(&na, state, false);
    pthread_mutex_unlock(&na.lock);
    return n;
}

static double g_starting(void *ud) { return worker_gauge(NA_WORKER_STARTING); }
static double g_idle(void *ud) { return worker_gauge(NA_WORKER_IDLE); }
static double g_leased(void *ud) { return worker_gauge(NA_WORKER_LEASED); }
static double g_stopping(void *ud) { return worker_gauge(NA_WORKER_STOPPING); }
static double (*const worker_gauges[])(void *) = {g_starting, g_idle, g_leased, g_stopping};

static void register_metrics(prism_metrics *m)
{
    na.m.running = prism_metrics_gauge(m, "prism_nodeagent_drivers_running",
                                       "Job drivers running on this node", NULL);
    na.m.started = prism_metrics_counter(m, "prism_nodeagent_drivers_started_total",
                                         "Job drivers started", NULL);
    na.m.heartbeats = prism_metrics_counter(m, "prism_nodeagent_heartbeats_total",
                                            "Heartbeats answered by the GCS", NULL);
    na.m.heartbeat_seconds = prism_metrics_histogram(
        m, "prism_nodeagent_heartbeat_seconds",
        "Round trip of a heartbeat answered by the GCS (NATS, its queue and its handling)", NULL,
        prism_metrics_seconds_bounds, prism_metrics_seconds_nbounds);
    na.m.heartbeat_failures = prism_metrics_counter(m, "prism_nodeagent_heartbeat_failures_total",
                                                    "Heartbeats not answered", NULL);
    na.m.registrations = prism_metrics_counter(m, "prism_nodeagent_registrations_total",
                                               "Incarnations registered with the GCS", NULL);
    na.m.workers_started = prism_metrics_counter(m, "prism_nodeagent_workers_started_total",
                                                 "Worker processes started", NULL);
    na.m.worker_failures = prism_metrics_counter(m, "prism_nodeagent_worker_start_failures_total",
                                                 "Workers that failed to start", NULL);
    na.m.leases_granted = prism_metrics_counter(m, "prism_nodeagent_leases_granted_total",
                                                "Worker leases granted", NULL);
    na.m.leases_busy = prism_metrics_counter(m, "prism_nodeagent_leases_busy_total",
                                             "Worker lease requests answered busy", NULL);
    na.m.leases_returned = prism_metrics_counter(m, "prism_nodeagent_leases_returned_total",
                                                 "Worker leases returned", NULL);
    static const char *const states[] = {"starting", "idle", "leased", "stopping"};
    for (int i = 0; i < 4; i++) {
        char labels[32];
        snprintf(labels, sizeof labels, "state=\"%s\"", states[i]);
        prism_metrics_gauge_fn(m, "prism_nodeagent_workers", "Worker processes by state", labels,
                               worker_gauges[i], &na);
    }
}

static int init(void *ctx, char *err, size_t errlen)
{
    char jobs[NA_PATH_MAX];
    if (na_read_line("/proc/sys/kernel/random/boot_id", na.boot_id, sizeof na.boot_id) != 0)
        snprintf(na.boot_id, sizeof na.boot_id, "unknown");
    snprintf(jobs, sizeof jobs, "%s/jobs", na.cfg.state_dir);
    if (prism_mkdir_p(jobs, 0700) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", jobs, strerror(errno));
        return -1;
    }
    if (na_workers_prepare_dir(&na, err, errlen) != 0)
        return -1;
    if (access(na.cfg.worker_bin, X_OK) != 0)
        LOG_WARN("no worker program at %s (%s): leases will be answered busy until it exists",
                 na.cfg.worker_bin, strerror(errno));
    register_metrics(na.metrics);
    na.resources = na_config_resources(&na.cfg);
    na.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!na.resources || na.wake_fd < 0 || na_launcher_create(&na.launcher) != 0) {
        snprintf(err, errlen, "out of resources at startup");
        return -1;
    }
    return 0;
}

static int start(void *ctx, char *err, size_t errlen)
{
    if (na_jobs_recover(&na) != 0)
        LOG_WARN("cannot scan %s/jobs: %s", na.cfg.state_dir, strerror(errno));
    return 0;
}

static int serving(void *ctx, const char *url, char *err, size_t errlen)
{
    snprintf(na.address, sizeof na.address, "%s", url);
    if (na_link_start(&na) != 0) {
        snprintf(err, errlen, "cannot subscribe: %s", prism_bus_last_error(na.bus));
        return -1;
    }
    char *res = json_dumps(na.resources, JSON_COMPACT | JSON_SORT_KEYS);
    LOG_INFO("node %s serving on %s, state in %s, resources %s", na.cfg.name, na.address,
             na.cfg.state_dir, res ? res : "?");
    free(res);
    return 0;
}

static void cron(void *ctx)
{
    pthread_mutex_lock(&na.lock);
    na_drivers_reap(&na);
    na_drivers_enforce_stops(&na);
    na_workers_cron(&na);
    na_leases_expire(&na);
    bool report = na.report_wanted && na.registered;
    pthread_mutex_unlock(&na.lock);
    na_link_cron(&na);
    if (report)
        na_link_report(&na); /* availability changed since the last report */
}

/* The skeleton's loop, plus the workers: the cron runs when due, and at
 * once when a worker is ready or has exited or another thread started one.
 * A descriptor that cannot be polled (no memory, no pidfd) is still seen by
 * the cron's next tick. */
static int run(void *ctx, prism_service *svc)
{
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGHUP);
    int sig_fd = signalfd(-1, &stops, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sig_fd < 0) {
        LOG_ERROR("signalfd: %s", strerror(errno));
        return -1;
    }
    struct pollfd *fds = malloc(2 * sizeof *fds);
    size_t cap = fds ? 2 : 0;
    int wait = prism_service_tick(svc), rc = fds ? 0 : -1;
    while (fds) {
        fds[0] = (struct pollfd){.fd = sig_fd, .events = POLLIN};
        fds[1] = (struct pollfd){.fd = na.wake_fd, .events = POLLIN};
        pthread_mutex_lock(&na.lock);
        int more = na_workers_pollfds(&na, &fds, &cap, 2);
        pthread_mutex_unlock(&na.lock);
        int n = poll(fds, 2 + (size_t)(more > 0 ? more : 0), wait);
        if (n < 0 && errno != EINTR) {
            LOG_ERROR("poll: %s", strerror(errno));
            rc = -1;
            break;
        }
        struct signalfd_siginfo si;
        if (n > 0 && (fds[0].revents & POLLIN) && read(sig_fd, &si, sizeof si) == sizeof si &&
            si.ssi_signo != SIGHUP) {
            LOG_INFO("signal %u: shutting down", si.ssi_signo);
            break;
        }
        uint64_t count; /* how many wakes: one look at the workers serves them all */
        if (n > 0 && (fds[1].revents & POLLIN) && read(na.wake_fd, &count, sizeof count) < 0)
            LOG_DEBUG("reading the wake counter: %s", strerror(errno));
        if (n > 0 && !(fds[0].revents & POLLIN))
            cron(ctx); /* a worker's event, or a new worker to watch */
        wait = prism_service_tick(svc);
    }
    free(fds);
    close(sig_fd);
    return rc;
}

/* REST is down; NATS stays up until the drivers' last updates are out. */
static void stop(void *ctx)
{
    pthread_mutex_lock(&na.lock);
    na.closing = true; /* NATS handlers refuse work from now on */
    while (na.busy > 0)
        pthread_cond_wait(&na.idle, &na.lock);
    pthread_mutex_unlock(&na.lock);
    na_drivers_shutdown(&na);
    na_workers_shutdown(&na);
    pthread_mutex_lock(&na.lock);
    na_bundles_drop_all(&na, "the node agent is shutting down");
    pthread_mutex_unlock(&na.lock);
}

static void cleanup(void *ctx)
{
    na_launcher_destroy(na.launcher);
    while (na.jobs)
        na_job_remove(&na, na.jobs);
    if (na.wake_fd >= 0)
        close(na.wake_fd);
    na.wake_fd = -1;
    json_decref(na.resources);
    json_decref(na.cfg.custom);
}

/* 50 ms: reaping latency and stop-deadline precision. */
static const prism_service_job jobs[] = {{"drivers, workers and the GCS link", 50, cron}};

int main(int argc, char **argv)
{
    const prism_service_def def = {
        .name = "nodeagent",
        .usage = "usage: prism-nodeagent [options]\n\n"
                 "Registers this node with the GCS, runs the job drivers placed on it,\nkeeps its "
                 "pool of workers and grants worker leases.",
        .options = options,
        .noptions = sizeof options / sizeof options[0],
        .default_port = "0",
        .default_nats_url = "nats://127.0.0.1:4222",
        .routes = na_routes,
        .nroutes = na_nroutes,
        .jobs = jobs,
        .njobs = sizeof jobs / sizeof jobs[0],
        .ctx = &na,
        .metrics = &na.metrics,
        .bus = &na.bus,
        .http = &na.http,
        .configure = configure,
        .init = init,
        .start = start,
        .serving = serving,
        .run = run,
        .stop = stop,
        .cleanup = cleanup,
    };
    return prism_service_main(&def, argc, argv);
}
