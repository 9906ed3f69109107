/* prism-gcs: the cluster's metadata store and public REST API.
 *
 * All state lives in one struct guarded by one lock: the SQLite database
 * (the truth, surviving restarts) plus what is soft and rebuilt on start
 * (node liveness clocks, resource accounting). HTTP handlers and NATS
 * callbacks take the lock; nothing slow (network calls) runs while holding it. */
#ifndef PRISM_GCS_H
#define PRISM_GCS_H

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "prism_bus.h"
#include "prism_http.h"
#include "prism_id.h"
#include "prism_metrics.h"

#define GCS_VERSION "0.1.0"

/* The GCS's settings: its own options, and the common ones it uses, which
 * the service skeleton owns (borrowed here). */
typedef struct gcs_config {
    char *host;
    char *token; /* NULL when authentication is off */
    char *nats_url;
    char *data_dir;
    int64_t node_timeout_ms;
    int64_t job_retention_count;
    int64_t job_retention_age_s;
    int64_t max_package_size;
    int64_t max_kv_value_size;
    int64_t object_ttl_s;
    int64_t task_list_size;
} gcs_config;

/* A node as the GCS sees it. Live nodes are kept in memory; dead ones only in the database. */
typedef struct gcs_node {
    char id[PRISM_ID_HEX_LEN + 1];
    char *name;
    char *address;     /* the node agent's REST base URL */
    json_t *resources; /* totals the node registered */
    json_t *available; /* what its node agent last reported free (prism.sched.node): jobs'
                        * and tasks' leases taken; the totals until it reports */
    json_t *running;   /* job ids the last heartbeat listed */
    /* its object store's URL, as registered (NULL: none, or registered
     * before the GCS restarted) */
    char *store_address;
    int64_t last_heartbeat_mono;
    /* wall clock of its last heartbeat, and of the last one written to the
     * database (heartbeats are written at most every HEARTBEAT_PERSIST_MS:
     * a write per heartbeat was the GCS's largest cost per node) */
    int64_t last_heartbeat_ms, persisted_heartbeat_ms;
    int64_t last_reconcile_mono;
    struct gcs_node *next;
} gcs_node;

typedef struct gcs_tasks gcs_tasks;
typedef struct gcs_task_list gcs_task_list;
typedef struct gcs_dags gcs_dags;
typedef struct gcs_object_list gcs_object_list;
typedef struct gcs_actors gcs_actors;
typedef struct gcs_history gcs_history;
typedef struct gcs_services gcs_services;
typedef struct gcs_data_proxy gcs_data_proxy;

typedef struct gcs {
    gcs_config cfg;
    gcs_tasks *tasks;             /* objects owned through the REST task API */
    gcs_task_list *task_list;     /* recent tasks of every owner */
    gcs_object_list *object_list; /* the objects every owner reports */
    gcs_actors *actors;           /* the actors' lifecycle (actors.h) */
    gcs_history *history;         /* the cluster's recent figures (history.c) */
    gcs_services *services;       /* the services that announce themselves (services.c) */
    gcs_dags *dags;               /* the drivers' compiled DAGs (dags.c) */
    gcs_data_proxy *data_proxy;   /* where the dataservice is (datasets_proxy.c) */
    /* Lock order, outermost first; a thread holding one may take only those
     * after it:
     *   tasks->lock      (tasks_api.c: the REST task API's objects and client)
     *   lock             (this one: the database, nodes, jobs, actors' rows)
     *   actors->lock     (the actor manager's command queue; a leaf)
     *   object_list->lock, task_list->lock, dags->lock, data_proxy->lock (leaves)
     *   history->lock, services->lock (leaves taken with no other lock held)
     * Holding `lock`, never wait for the actor manager (gcs_actors_wait): it
     * takes `lock` to handle the very command waited for. Its thread takes
     * `lock` and `actors->lock` only one at a time. */
    pthread_mutex_t lock;
    sqlite3 *db;
    prism_bus *bus;
    prism_http_server *http;
    prism_metrics *metrics;
    gcs_node *nodes; /* ALIVE nodes */
    char *packages_dir;
    bool placement_wanted;
    int64_t placement_retry_mono; /* jobs wait for resources: ask for them again then */
    bool pg_wanted;               /* placement groups wait for bundles: place them now */
    int64_t pg_retry_mono;        /* ... or then (pgroups.h) */
    int64_t pg_cursor;            /* seq of the last group the placement pass asked for; 0:
                                   * no pass under way (the cron's alone) */
    int64_t pg_owners_mono;       /* when to ping the groups' owners next */
    prism_metric *m_jobs_submitted, *m_jobs_finished, *m_nodes_dead, *m_heartbeats;
} gcs;

/* lifecycle.c: the hooks of the service skeleton (prism_service.h); `ctx` is the gcs */
int gcs_init(void *ctx, char *err, size_t errlen);  /* storage, metrics, state */
int gcs_start(void *ctx, char *err, size_t errlen); /* subscriptions, the actor manager */
int gcs_serving(void *ctx, const char *url, char *err, size_t errlen);
void gcs_stop(void *ctx);    /* REST is down, NATS still up */
void gcs_cleanup(void *ctx); /* NATS is down: frees the rest */

/* routes.c */
extern const prism_http_route gcs_routes[];
extern const size_t gcs_nroutes;

/* nodes.c: registration, heartbeats, liveness, REST */
int gcs_nodes_start(gcs *g);
void gcs_nodes_cron(gcs *g);
gcs_node *gcs_node_find(gcs *g, const char *id);
void gcs_nodes_free(gcs *g);
json_t *gcs_node_row_json(sqlite3_stmt *st);
void gcs_api_nodes_list(prism_http_req *req, void *ctx);
void gcs_api_node_get(prism_http_req *req, void *ctx);
/* GET /api/v1/nodes/{id}/workers: the node agent's worker pool, asked now */
void gcs_api_node_workers(prism_http_req *req, void *ctx);
void gcs_api_cluster(prism_http_req *req, void *ctx);

/* Jobs: the model and state machine (jobs.c), submission (job_submit.c),
 * placement (job_placement.c), reconciliation (job_reconcile.c), retention
 * (job_retention.c), REST (jobs_api.c); what those share is in jobs.h. */
typedef struct gcs_job_spec {
    const char *id; /* NULL: generate */
    const char *entrypoint;
    json_t *env, *resources, *metadata; /* borrowed */
    const char *working_dir;
    json_t *packages; /* [{sha256, name}] (name null when none), or NULL; owned */
    bool ray;         /* submitted through the Ray-compatible API */
} gcs_job_spec;
int gcs_jobs_start(gcs *g);
/* Periodic jobs (main.c's table): jobs waiting for a node placed, running
 * jobs checked against their nodes (each node every 2 s), ended jobs pruned. */
void gcs_jobs_place(gcs *g);
void gcs_jobs_reconcile(gcs *g);
void gcs_jobs_prune(gcs *g);
/* Returns 0 and the new job's id in `id_out`, or an HTTP status with `err` (code, message). */
int gcs_job_submit(gcs *g, const gcs_job_spec *spec, char *id_out, size_t idlen, const char **code,
                   char *err, size_t errlen);
/* The job as JSON (NULL when unknown). */
json_t *gcs_job_get(gcs *g, const char *id);
/* Requests a stop. Returns 0, or an HTTP status with code/message. */
int gcs_job_stop(gcs *g, const char *id, const char **code, char *err, size_t errlen);
int gcs_job_delete(gcs *g, const char *id, const char **code, char *err, size_t errlen);
/* Terminal transition from whatever non-terminal state; false when already terminal. Lock held. */
bool gcs_job_finish_locked(gcs *g, const char *id, const char *state, json_t *exit_code,
                           int64_t end_time, const char *message);
/* Fails every unfinished job placed on `node_id` (lock held). */
void gcs_jobs_fail_node_locked(gcs *g, const char *node_id, const char *message);
bool gcs_state_terminal(const char *state);
void gcs_api_jobs_submit(prism_http_req *req, void *ctx);
void gcs_api_jobs_list(prism_http_req *req, void *ctx);
void gcs_api_job_get(prism_http_req *req, void *ctx);
void gcs_api_job_stop(prism_http_req *req, void *ctx);
void gcs_api_job_delete(prism_http_req *req, void *ctx);
/* Parses the JSON submit body shared by both APIs into `spec`; replies 400 itself.
 * After success, gcs_job_spec_free releases what the spec owns. */
int gcs_job_spec_from_json(prism_http_req *req, json_t *body, gcs_job_spec *spec);
void gcs_job_spec_free(gcs_job_spec *spec);

/* job_logs.c */
void gcs_api_job_logs(prism_http_req *req, void *ctx);
/* The whole log of a job as text (Ray's API). Returns 0 or an HTTP status. */
int gcs_job_logs_text(gcs *g, const char *id, char **out, size_t *len, const char **code, char *err,
                      size_t errlen);
/* Follows a job's log until the job ended and its log is drained: a reader
 * for prism_http_reply_stream or _websocket (NULL: no such job). */
void *gcs_job_log_follow(gcs *g, const char *id);
ssize_t gcs_job_log_follow_read(void *ud, char *buf, size_t max);
void gcs_job_log_follow_done(void *ud);
/* Copies the logs of jobs that ended lately into the data directory, where
 * they outlive their node (periodic; a little at a time). */
void gcs_job_logs_copy(gcs *g);
/* Removes the GCS's copy of a job's log (the job is being deleted; lock held). */
void gcs_job_log_copy_drop(gcs *g, const char *id);

/* kv.c, packages.c */
void gcs_api_kv_get(prism_http_req *req, void *ctx);
void gcs_api_kv_put(prism_http_req *req, void *ctx);
void gcs_api_kv_delete(prism_http_req *req, void *ctx);
void gcs_api_kv_list(prism_http_req *req, void *ctx);
void gcs_api_package_put(prism_http_req *req, void *ctx);
void gcs_api_package_get(prism_http_req *req, void *ctx);
/* Refuses (answering 400 unsafe_package) a tar or zip archive that would
 * extract outside its directory; 0 when the blob may be stored. */
int gcs_package_check(prism_http_req *req, const void *body, size_t len);
/* Stores a blob under its sha256 (`sha`: 65 bytes), unless stored already
 * (`*created` false). -1 when it could not be written. Takes the lock. */
int gcs_package_store(gcs *g, const void *body, size_t len, char *sha, bool *created);

/* ray_packages.c: Ray's package routes (gcs://_ray_pkg_*.zip), names mapped
 * to stored packages */
void gcs_ray_package_get(prism_http_req *req, void *ctx);
void gcs_ray_package_put(prism_http_req *req, void *ctx);
/* The sha256 of the package a Ray URI ("gcs://NAME") names, into `sha` (65
 * bytes): 0, or -1 when no package was uploaded under that name. */
int gcs_ray_package_sha(gcs *g, const char *uri, char *sha);

/* tasks_api.c: tasks for curl users, owned by the GCS */
int gcs_tasks_create(gcs *g);
void gcs_tasks_destroy(gcs *g);
void gcs_tasks_cron(gcs *g);
void gcs_api_tasks_submit(prism_http_req *req, void *ctx);
void gcs_api_object_get(prism_http_req *req, void *ctx);
void gcs_api_object_delete(prism_http_req *req, void *ctx);

/* task_list.c: recent tasks reported by owners */
int gcs_task_list_create(gcs *g);
int gcs_task_list_start(gcs *g);
void gcs_task_list_destroy(gcs *g);
void gcs_api_tasks_list(prism_http_req *req, void *ctx);
/* Calls fn on the kept task records, newest first, with the list's lock
 * held (fn must not keep `rec` or take other locks), until fn returns false. */
void gcs_task_list_each(gcs *g, bool (*fn)(json_t *rec, void *ud), void *ud);
/* Outcomes reported since start: FINISHED (successes owners left out
 * included) and FAILED. */
void gcs_task_list_counts(gcs *g, uint64_t *finished, uint64_t *failed);

/* dags.c: the drivers' compiled DAGs, as they report them */
int gcs_dags_create(gcs *g);
int gcs_dags_start(gcs *g);
void gcs_dags_destroy(gcs *g);
/* The DAGs still COMPILED of `owner` (an owner:HEX address) become BROKEN. */
void gcs_dags_owner_gone(gcs *g, const char *owner);
/* An actor's worker reported its DAG loop (the "dag" of its
 * prism.event.actor.calls report): the DAG's listing takes the loop's
 * health and its inputs' latency. */
void gcs_dags_loop_report(gcs *g, const char *actor_id, json_t *loop);
void gcs_api_dags_list(prism_http_req *req, void *ctx);
void gcs_api_dag_get(prism_http_req *req, void *ctx);

/* timeline.c: the recent tasks as Chrome trace events */
void gcs_api_timeline(prism_http_req *req, void *ctx);

/* services.c: GET /api/v1/services, the GCS and the services announcing
 * themselves on prism.service.announce (schedulers, the dataservice) */
int gcs_services_create(gcs *g);
int gcs_services_start(gcs *g);
void gcs_services_serving(gcs *g, const char *url);
void gcs_services_destroy(gcs *g);
void gcs_api_services(prism_http_req *req, void *ctx);

/* history.c: the cluster's figures every HISTORY_INTERVAL_MS for the last ten
 * minutes, and the object stores' last reports */
#define HISTORY_INTERVAL_MS 2000
int gcs_history_create(gcs *g);
int gcs_history_start(gcs *g);
void gcs_history_destroy(gcs *g);
void gcs_history_cron(gcs *g);
void gcs_api_metrics_history(prism_http_req *req, void *ctx);

/* object_list.c: the objects of every owner, as they report them */
int gcs_object_list_create(gcs *g);
int gcs_object_list_start(gcs *g);
void gcs_object_list_destroy(gcs *g);
void gcs_object_list_cron(gcs *g);
/* Names the GCS's own client: its objects are listed with owner "gcs". */
void gcs_object_list_set_own(gcs *g, const char *owner);
void gcs_api_objects_list(prism_http_req *req, void *ctx);

/* Actors, whose lifecycle the GCS owns (docs/actors.md): actors.c,
 * actor_requests.c (NATS), actors_api.c (REST), actor_manager.c; actors.h. */
int gcs_actors_create(gcs *g);
/* Loads the actors, subscribes to their subjects and starts the manager thread. */
int gcs_actors_start(gcs *g);
/* Ends the manager thread (before the bus goes); destroy frees the rest (after). */
void gcs_actors_stop(gcs *g);
void gcs_actors_destroy(gcs *g);
/* The GCS declared `node_id` dead: its actors restart or die. Any lock may be held. */
void gcs_actors_node_dead(gcs *g, const char *node_id);
/* Node `node_id` reported `available` (borrowed): actors the scheduler
 * answered busy ask again at once where they fit, not at their backoff. */
void gcs_actors_node_room(gcs *g, const char *node_id, json_t *available);
void gcs_api_actors_list(prism_http_req *req, void *ctx);
void gcs_api_actor_get(prism_http_req *req, void *ctx);
void gcs_api_actor_kill(prism_http_req *req, void *ctx);

/* datasets_proxy.c: /api/v1/datasets* forwarded to the dataservice */
int gcs_data_proxy_create(gcs *g);
void gcs_data_proxy_destroy(gcs *g);
void gcs_api_datasets_proxy(prism_http_req *req, void *ctx);

/* raycompat.c: Ray's Jobs REST API over the same code */
void gcs_ray_version(prism_http_req *req, void *ctx);
void gcs_ray_jobs_submit(prism_http_req *req, void *ctx);
void gcs_ray_jobs_list(prism_http_req *req, void *ctx);
void gcs_ray_job_get(prism_http_req *req, void *ctx);
void gcs_ray_job_stop(prism_http_req *req, void *ctx);
void gcs_ray_job_delete(prism_http_req *req, void *ctx);
void gcs_ray_job_logs(prism_http_req *req, void *ctx);
void gcs_ray_job_logs_tail(prism_http_req *req, void *ctx);

/* dashboard.c: the dashboard's static files (docs/dashboard.md), served without the token */
void gcs_dashboard_index(prism_http_req *req, void *ctx);
void gcs_dashboard_file_get(prism_http_req *req, void *ctx);

/* apidocs.c: the API reference and the spec, served without the token */
void gcs_api_docs(prism_http_req *req, void *ctx);
void gcs_api_openapi_spec(prism_http_req *req, void *ctx);

/* resources.c: resource maps are JSON objects name → amount (whether one
 * fits: prism_res_fits, libs/proto/prism_resources.h) */
void gcs_res_add(json_t *acc, json_t *delta, double sign);
/* "GPU 1, CPU 4" for messages; the caller frees. */
char *gcs_res_describe(json_t *res);

/* events */
void gcs_publish_job_event(gcs *g, const char *id);

#endif
