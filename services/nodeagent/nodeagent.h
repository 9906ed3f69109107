/* prism-nodeagent: the per-node service that registers the node with the GCS,
 * heartbeats, runs job drivers and the worker pool, and grants worker leases
 * (docs/nodeagent.md, docs/protocol.md, docs/tasks.md).
 *
 * All of the service's state is one struct, `nodeagent`. Three kinds of
 * threads touch it: the main thread (signal wait + cron: heartbeats, reaping,
 * stop deadlines, worker starts), NATS callbacks (job.*, worker.lease,
 * worker.return) and HTTP handlers. Everything below `lock` in the struct is guarded by it; the
 * configuration and what is set before serving starts are read-only after. */
#ifndef PRISM_NODEAGENT_H
#define PRISM_NODEAGENT_H

#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "prism_bus.h"
#include "prism_error.h"
#include "prism_http.h"
#include "prism_id.h"
#include "prism_log.h"
#include "prism_sha256.h"
#include "prism_metrics.h"

#define NA_JOB_ID_MAX 128
#define NA_PATH_MAX 4096
#define NA_MESSAGE_MAX 1024 /* room for a start failure naming package digests */

/* ---------- configuration (config.c) ---------- */

/* Its own options (main.c), and the common ones it uses, which the service
 * skeleton owns (borrowed here). */
typedef struct na_config {
    char *host;
    char *token; /* NULL when authentication is off */
    char *nats_url;
    char *gcs_address;
    char *state_dir;
    char *name;
    int64_t num_cpus; /* -1 until resolved */
    int64_t num_gpus;
    int64_t memory;
    char *resources; /* JSON object text of custom resources */
    int64_t heartbeat_ms;
    int64_t stop_grace_ms;
    int64_t package_max;
    int64_t package_timeout_ms;
    int64_t package_cache_max; /* bytes of packages kept on disk (0: no limit) */
    char *store_socket;        /* the node's object store (handed to workers) */
    char *store_address;       /* its HTTP URL (reported) */
    char *worker_bin;          /* default: prism-worker next to this program */
    int64_t prestart_workers;
    int64_t max_workers;
    int64_t worker_idle_ms;
    int64_t worker_start_timeout_ms;
    json_t *custom; /* parsed `resources`; owned */
} na_config;

/* Checks the parsed options and fills in the detected defaults (name, state
 * dir, CPUs, GPUs, memory, workers). Options without a default are -1 when
 * not given. Returns 0 or -1 with `err`. */
int na_config_check(na_config *cfg, char *err, size_t errlen);
/* The first line of a small file (procfs, sysfs), without its newline. */
int na_read_line(const char *path, char *buf, size_t len);
/* {CPU, GPU, memory, custom...} as registered with the GCS. */
json_t *na_config_resources(const na_config *cfg);

/* ---------- GPUs (gpu.c) ---------- */

/* The number of CUDA devices, 0 without CUDA support or without a device. */
int na_gpu_detect(void);
/* Writes the CUDA_VISIBLE_DEVICES value for pool indices `idx`, mapped
 * through the agent's own CUDA_VISIBLE_DEVICES when it has one. */
int na_gpu_visible_devices(const int *idx, int n, char *out, size_t outlen);

/* ---------- process launching (launch.c) ---------- */

typedef struct na_launcher na_launcher;

typedef struct na_spawn {
    char *const *argv;
    char *const *envp;
    const char *dir; /* working directory of the child */
    int stdout_fd;   /* stdout and stderr of the child */
    int extra_fd;    /* when > 2: becomes descriptor 3 of the child */
} na_spawn;

/* Starts the thread that forks every driver: PR_SET_PDEATHSIG fires when the
 * thread that forked dies, so that thread must live as long as the agent. */
int na_launcher_create(na_launcher **out);
void na_launcher_destroy(na_launcher *l);
/* Forks and execs `s` as the leader of a new process group. Returns the pid,
 * or -1 with errno set. */
pid_t na_launcher_spawn(na_launcher *l, const na_spawn *s);

/* ---------- environments of children (env.c) ---------- */

typedef struct na_env {
    char **v; /* NULL-terminated */
    size_t n, cap;
} na_env;

void na_env_free(na_env *e);
/* Sets NAME=VALUE, replacing an earlier NAME. Returns 0 or -1. */
int na_env_set(na_env *e, const char *name, const char *value);
/* The agent's environment without its own PRISM_* settings (its port, state
 * directory... mean nothing to a child and would mislead a prism client),
 * but with PRISM_TLS_CERT, PRISM_TLS_KEY and PRISM_TLS_CA. */
int na_env_inherit(na_env *e);

/* ---------- jobs ---------- */

typedef enum na_job_state {
    NA_JOB_STARTING, /* accepted, package being fetched; no process yet */
    NA_JOB_RUNNING,
    NA_JOB_SUCCEEDED,
    NA_JOB_FAILED,
    NA_JOB_STOPPED,
} na_job_state;

typedef struct na_job {
    char id[NA_JOB_ID_MAX + 1];
    char node_id[PRISM_ID_HEX_LEN + 1]; /* the incarnation that started it */
    pid_t pid;                          /* also its process group; 0 while STARTING */
    na_job_state state;
    int exit_code;
    char package[PRISM_SHA256_HEX_LEN + 1]; /* its working directory's package, or "" */
    int64_t start_time, end_time;           /* ms since the epoch */
    char message[NA_MESSAGE_MAX];
    bool stop_requested;
    int64_t kill_at_ms; /* monotonic time to send SIGKILL after a stop; 0: none */
    int gpus[64];
    int ngpus;
    json_t *resources; /* what job.start asked for (counted as used); owned */
    struct na_job *next;
} na_job;

/* ---------- workers and leases ---------- */

#define NA_READY_MAX 4096 /* the ready line of a worker */
#define NA_LEASE_ID_MAX 128

typedef enum na_worker_state {
    NA_WORKER_STARTING, /* forked; its ready line not read yet */
    NA_WORKER_IDLE,
    NA_WORKER_LEASED,
    NA_WORKER_STOPPING, /* told to exit (or died); reaped by the cron */
} na_worker_state;

typedef struct na_lease na_lease;

/* A device's shares are counted in these units, so that leases of 0.1 add
 * and subtract exactly (as Ray keeps resources in fixed point). */
#define NA_GPU_UNITS 10000

typedef struct na_worker {
    char id[PRISM_ID_HEX_LEN + 1];
    pid_t pid; /* also its process group */
    na_worker_state state;
    bool dedicated; /* started for one lease (GPUs): stopped when it is returned */
    int ready_fd;   /* our end of its ready channel; -1 once done */
    int pidfd;      /* readable once it has exited; -1 where the kernel has none */
    char ready[NA_READY_MAX];
    size_t ready_len;
    char socket[NA_PATH_MAX]; /* --socket given to it */
    char *unix_path, *tcp;    /* from its ready line */
    int64_t started_ms;       /* wall clock */
    int64_t started_mono, idle_since_mono, kill_at_mono;
    /* When its last lease was returned, as a count of returns (two often
     * share a millisecond); 0: never leased. */
    uint64_t returned;
    int gpus[64];
    int ngpus;
    int gpu_share;   /* above 0: it holds that share of gpus[0] (NA_GPU_UNITS: all) */
    na_lease *lease; /* granted or pending on it */
    struct na_worker *next;
} na_worker;

struct na_lease {
    char id[NA_LEASE_ID_MAX + 1];
    char owner_id[NA_LEASE_ID_MAX + 1];
    json_t *resources;              /* owned */
    na_worker *worker;              /* NULL for a job's lease */
    char job_id[NA_JOB_ID_MAX + 1]; /* a job's lease: held for that job's driver; else "" */
    int gpus[64];                   /* a job's lease: the devices it holds for the driver */
    int ngpus;
    char *reply;           /* pending: answer here once the worker is ready; NULL once granted */
    int64_t deadline_mono; /* pending: grant nothing after this (the asker gave up); a job's
                            * lease: freed after this unless job.start took it */
    int64_t granted_ms;    /* wall clock; 0 while pending */
    bool blocked;          /* its worker waits in a get: its CPU is lent out meanwhile */
    char pg_id[PRISM_ID_HEX_LEN + 1]; /* drawn from this placement group's bundle, or "" */
    int bundle_index;
    struct na_lease *next;
};

/* A placement group's bundle reserved on this node (bundles.c): its
 * resources leave the free pool; leases in the group draw on them instead. */
typedef struct na_bundle {
    char pg_id[PRISM_ID_HEX_LEN + 1];
    int index;
    json_t *resources; /* owned */
    struct na_bundle *next;
} na_bundle;

/* ---------- the service ---------- */

typedef struct nodeagent {
    na_config cfg;
    json_t *resources; /* registered totals; read-only after startup */
    char address[512]; /* our REST base URL, http://host:port */
    char boot_id[64];
    prism_metrics *metrics;
    struct {
        prism_metric *running, *started, *heartbeats, *heartbeat_failures, *registrations;
        prism_metric *heartbeat_seconds;
        prism_metric *workers_started, *worker_failures, *leases_granted, *leases_busy,
            *leases_returned;
    } m;
    prism_bus *bus;
    prism_http_server *http;
    na_launcher *launcher;
    int wake_fd; /* an eventfd: written when the main loop's set of descriptors changed */
    /* Where the workers' sockets go: STATE_DIR/workers, or a directory of
     * our own under $TMPDIR (`socket_dir_made`, removed at shutdown) when
     * that path is too long for a socket address. */
    char socket_dir[NA_PATH_MAX];
    bool socket_dir_made;
    pthread_mutex_t pkg_lock; /* one package download/extraction at a time */

    /* Main thread only (cron). */
    int64_t next_link_ms; /* monotonic time of the next register/heartbeat */
    bool link_ok;         /* the last heartbeat was answered */
    int register_failures;

    pthread_mutex_t lock; /* guards what follows */
    pthread_cond_t idle;  /* signalled when `busy` drops to 0 */
    char node_id[PRISM_ID_HEX_LEN + 1];
    bool registered;
    bool closing; /* shutting down: refuse new work */
    int busy;     /* NATS handlers in progress */
    na_job *jobs;
    bool gpu_used[64]; /* held whole (a worker's, a job's) */
    int gpu_share[64]; /* shares held by workers of fractional leases (NA_GPU_UNITS: all) */
    na_worker *workers;
    na_lease *leases;
    na_bundle *bundles;
    bool report_wanted;                /* availability changed: publish prism.sched.node */
    uint64_t returns;                  /* leases of pool workers returned so far */
    int worker_failures;               /* worker starts that failed in a row */
    int64_t worker_retry_mono;         /* no new worker before this (after failures) */
    char worker_error[NA_MESSAGE_MAX]; /* why the last start failed */
} nodeagent;

/* jobs.c: the job table and the records on disk. Callers hold `lock`. */
const char *na_state_name(na_job_state s);
bool na_state_ended(na_job_state s);
int na_job_path(const nodeagent *na, const char *id, const char *file, char *out, size_t len);
na_job *na_job_find(nodeagent *na, const char *id);
void na_job_remove(nodeagent *na, na_job *j);
json_t *na_job_json(const na_job *j);
int na_job_write_status(const nodeagent *na, const na_job *j);
int na_job_write_driver_file(const nodeagent *na, const na_job *j);
json_t *na_job_read_status(const nodeagent *na, const char *id);
int na_jobs_recover(nodeagent *na);
void na_jobs_delete(nodeagent *na, json_t *ids);

/* drivers.c: starting a driver. */
/* Handles a job.start payload; returns the reply (a result or error envelope). */
json_t *na_driver_start(nodeagent *na, json_t *req);

/* reaper.c: stopping drivers and noticing their exits. Callers hold `lock`
 * except for na_drivers_shutdown. */
/* SIGTERM to the job's group, SIGKILL after --stop-grace-ms. Returns -1 when
 * it is not running (a start in progress is told to give up). */
int na_driver_stop(nodeagent *na, na_job *j);
void na_drivers_reap(nodeagent *na);
void na_drivers_enforce_stops(nodeagent *na);
void na_drivers_kill_all(nodeagent *na, const char *why);
void na_drivers_shutdown(nodeagent *na);
int na_running_count(const nodeagent *na);
json_t *na_running_jobs(const nodeagent *na);

/* packages.c: fetch and extract a working-directory package; fetch a job's
 * packages into the workers' cache. */
bool na_is_package_sha(const char *text);
int na_package_ensure(nodeagent *na, const char *sha, char *dir, size_t dirlen, char *err,
                      size_t errlen);
/* Downloads package `sha` to STATE_DIR/worker-packages/SHA.so (the file a
 * worker started with --package-dir loads it from) unless it is there. */
int na_package_cache(nodeagent *na, const char *sha, char *err, size_t errlen);

/* gcs_link.c: register, heartbeat, job updates, resource reports. */
/* Starts a new incarnation: a fresh node ID, subscribed, to be registered. */
int na_link_start(nodeagent *na);
void na_link_cron(nodeagent *na);
void na_link_publish_job(nodeagent *na, const na_job *j);
/* Publishes prism.sched.node now (takes the lock). */
void na_link_report(nodeagent *na);

/* workers.c: the worker pool. Callers hold `lock` unless noted. */
const char *na_worker_state_name(na_worker_state s);
/* Starts a worker; `gpus` devices (pool indices) make it dedicated: it
 * holds them whole, or with `share` above 0 that share of its one device. */
na_worker *na_worker_start(nodeagent *na, const int *gpus, int ngpus, int share, char *err,
                           size_t errlen);
/* SIGTERM (SIGKILL after --stop-grace-ms); the cron reaps it. */
void na_worker_stop(nodeagent *na, na_worker *w);
/* Reads ready lines, reaps, enforces deadlines, keeps the pool's size. */
void na_workers_cron(nodeagent *na);
/* The descriptors that say a worker is ready (its ready channel, while it
 * starts) or has exited (its pidfd), written to `*fds` (grown as needed,
 * owned by the caller) from index `first` on. Returns how many were added,
 * or -1 when out of memory. */
int na_workers_pollfds(const nodeagent *na, struct pollfd **fds, size_t *cap, size_t first);
/* Tells the main loop to look at the workers again (any thread, lock or not). */
void na_wake(nodeagent *na);
/* SIGKILL to every worker, their leases freed (a new incarnation). */
void na_workers_kill_all(nodeagent *na, const char *why);
/* Stops every worker and waits for them (no NATS handler runs any more). No lock. */
void na_workers_shutdown(nodeagent *na);
json_t *na_workers_json(nodeagent *na);
int na_workers_count(const nodeagent *na, na_worker_state state, bool unleased_only);
int na_workers_prepare_dir(nodeagent *na, char *err, size_t errlen);

/* leases.c: worker.lease, worker.return and the node's free resources. */
/* Handles a lease request: the grant or an error now, or NULL when the
 * answer goes to `reply` once a worker is ready. */
json_t *na_lease_request(nodeagent *na, json_t *req, const char *reply);
/* worker.check: whether a lease is granted on a worker to an owner. */
json_t *na_lease_check(nodeagent *na, json_t *req);
json_t *na_lease_return(nodeagent *na, json_t *req);
/* worker.blocked: a worker blocked in a get lends its lease's CPU until it unblocks. */
json_t *na_lease_blocked(nodeagent *na, json_t *req);
/* worker.kill: SIGKILLs the worker holding a lease (a force-cancelled task, an
 * actor that does not exit when told); its death frees the lease as usual. */
json_t *na_lease_kill(nodeagent *na, json_t *req);
/* The worker of a pending lease is ready: grant it (lock held). */
void na_lease_worker_ready(nodeagent *na, na_worker *w);
/* Frees a lease; `error` (code busy) answers it first when it is pending. */
void na_lease_free(nodeagent *na, na_lease *l, const char *error);
/* job.start names the lease granted for the job: the driver takes its
 * resources and GPUs (copied to `gpus`, `ngpus`) and the lease ends. False
 * when there is no such lease for that job (expired, returned). Lock held. */
bool na_lease_take_for_job(nodeagent *na, const char *lease_id, const char *job_id, int *gpus,
                           int *ngpus);
/* Frees the jobs' leases that job.start did not take in time (lock held). */
void na_leases_expire(nodeagent *na);
/* NULL when `want` fits in what is free, else why not (the caller frees). Lock held. */
char *na_shortfall(nodeagent *na, json_t *want);
/* Total minus leases minus jobs; GPU is what devices have free, shares
 * counted (0.5 when half of one is leased). Owned by the caller. */
json_t *na_available(nodeagent *na);
/* Devices free whole: neither held nor shared. */
int na_free_gpus(const nodeagent *na);
bool na_gpu_free_whole(const nodeagent *na, int i);

/* bundles.c: bundle.reserve, bundle.return and leases in a bundle. Lock
 * held unless noted. */
json_t *na_bundle_reserve(nodeagent *na, json_t *req); /* takes the lock */
json_t *na_bundle_return(nodeagent *na, json_t *req);  /* takes the lock */
/* Subtracts what the bundles hold from `avail` (na_available). */
void na_bundles_subtract(nodeagent *na, json_t *avail);
/* For a lease naming a placement group: NULL and the index of a bundle it
 * fits in, or an error (busy). `index` -1 takes any bundle of the group. */
json_t *na_bundle_pick(nodeagent *na, const char *pg_id, int index, json_t *want, int *picked);
/* The bundles with what each has free, for the scheduler's report. */
json_t *na_bundles_json(nodeagent *na);
/* Drops every bundle, killing what runs in them (a new incarnation). */
void na_bundles_drop_all(nodeagent *na, const char *why);

/* subjects.c: prism.node.<node_id>.{job.*, worker.*} */
int na_subjects_subscribe(nodeagent *na, const char *node_id);
void na_subjects_unsubscribe(nodeagent *na, const char *node_id);

/* api.c: the REST API's routes. */
extern const prism_http_route na_routes[];
extern const size_t na_nroutes;

#endif
