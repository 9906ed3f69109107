/* prism-scheduler: the cluster's resource view and the worker-lease broker
 * (docs/scheduler.md, docs/tasks.md).
 *
 * All of the service's state is one struct, `scheduler`. The view of the
 * nodes is soft: it is rebuilt from the `prism.sched.node` reports the node
 * agents publish, so a restarted scheduler (or a new replica) knows the
 * cluster again after one heartbeat. Lease requests arrive on the queue group
 * "scheduler" and are handed to a few lease threads, because answering one
 * means a NATS request to a node agent, which may take a worker start.
 * Everything below `lock` in the struct is guarded by it; nothing slow runs
 * while it is held. */
#ifndef PRISM_SCHEDULER_H
#define PRISM_SCHEDULER_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "prism_bus.h"
#include "prism_error.h"
#include "prism_http.h"
#include "prism_id.h"
#include "prism_metrics.h"
#include "prism_service.h"

#define SCHED_MAX_THREADS 64
#define SCHED_TOMBS 256           /* recently dead node incarnations remembered */
#define SCHED_WAIT_PER_OWNER 1024 /* queued lease requests of one owner (waitq.c) */

typedef struct sched_config {
    int64_t node_timeout_ms;
    int64_t lease_timeout_ms;
    int64_t forward_timeout_ms;
    int64_t lease_threads;
    int64_t queue_max;
    int64_t wait_max; /* queued lease requests in all (waitq.c) */
} sched_config;

/* A node as its last report described it. */
typedef struct sched_node {
    char id[PRISM_ID_HEX_LEN + 1];
    char *name;
    json_t *total;
    json_t *available; /* as reported, less what this scheduler granted since */
    json_t *bundles;   /* placement group bundles held there: [{placement_group_id, index,
                        * resources, available}], as reported (docs/placement-groups.md) */
    int64_t workers_idle;
    int64_t last_report_ms;   /* wall clock, for people */
    int64_t last_report_mono; /* for the silence timeout */
    uint64_t last_chosen;     /* grant sequence number; 0: never (SPREAD) */
    struct sched_node *next;
} sched_node;

/* A lease request waiting for a lease thread. */
typedef struct sched_job {
    char *reply;
    char *data;
    size_t len;
    int64_t received_mono;
    int64_t received_ns; /* for the answer-time histogram */
    struct sched_job *next;
} sched_job;

/* A lease request waiting for room (waitq.c), answered on `reply` (the
 * owner's lease subject) with `request_id` in the answer. */
typedef struct sched_waiter {
    char *owner, *request_id, *reply;
    json_t *msg; /* the request as received */
    int64_t queued_mono, deadline_mono;
    bool told;    /* it heard that other owners wait for the same shape */
    bool placing; /* the pump is asking a node for it (lock dropped) */
    bool dropped; /* cancelled or its owner gone while placing */
    struct sched_waiter *next;
} sched_waiter;

/* One owner's waiting requests of one shape, oldest first. */
typedef struct sched_owner_q {
    char *owner;
    sched_waiter *head, *tail;
    size_t n;
    struct sched_owner_q *next;
} sched_owner_q;

/* The requests waiting for one shape (resources and placement); the owners
 * take turns, `turn` first. */
typedef struct sched_shape {
    char *key;
    sched_owner_q *owners, *turn;
    size_t n;
    bool stuck; /* no room for it since the last report: the pump passes it */
    struct sched_shape *next;
} sched_shape;

typedef struct sched_tomb {
    char id[PRISM_ID_HEX_LEN + 1];
    int64_t until_mono;
} sched_tomb;

typedef struct scheduler {
    sched_config cfg;
    char id[PRISM_ID_HEX_LEN + 1]; /* this replica */
    prism_bus *bus;
    prism_http_server *http;
    prism_metrics *metrics;
    struct {
        prism_metric *requests, *grants, *infeasible, *busy, *errors, *forwards, *answer_seconds;
        prism_metric *queued, *queue_grants, *queue_cancelled, *queue_dropped, *queue_expired,
            *queue_full;
    } m;
    pthread_t threads[SCHED_MAX_THREADS];
    int nthreads;

    pthread_mutex_t lock; /* guards what follows */
    pthread_cond_t queue_cv;
    sched_job *head, *tail;
    size_t queued;
    bool quit;
    sched_node *nodes;
    sched_tomb tombs[SCHED_TOMBS];
    size_t next_tomb;
    sched_tomb removed_pgs[SCHED_TOMBS]; /* placement groups removed lately (pg.c) */
    size_t next_removed_pg;
    uint64_t grant_seq;
    sched_shape *shapes; /* lease requests waiting for room (waitq.c) */
    size_t waiting;      /* in all of them */
    bool pump_wanted;    /* room may have come: a lease thread should look */
    bool pumping;        /* one is looking */
    int64_t last_owner_check_mono;
} scheduler;

/* res.c: resource maps are JSON objects name → amount (whether one fits:
 * prism_res_fits, libs/proto/prism_resources.h). */
/* acc[name] += sign * delta[name], never below 0. */
void sched_res_add(json_t *acc, json_t *delta, double sign);
/* "GPU 1, CPU 4" (the positive amounts of `res`); the caller frees. */
char *sched_res_describe(json_t *res);
/* The largest used fraction of any resource the node has. */
double sched_res_load(json_t *total, json_t *available);
/* NULL when `res` is an object of non-negative numbers, else why not. */
const char *sched_res_check(json_t *res);

/* view.c: the nodes. Callers hold `lock` unless noted. */
int sched_view_start(scheduler *s); /* subscribes; no lock */
void sched_view_cron(scheduler *s); /* takes the lock */
sched_node *sched_node_find(scheduler *s, const char *id);
void sched_view_free(scheduler *s);
json_t *sched_view_json(scheduler *s);
size_t sched_node_count(scheduler *s);
/* Drops a node whose agent is gone (takes the lock). */
void sched_view_forget(scheduler *s, const char *id);

/* lease.c: prism.sched.lease. */
int sched_lease_start(scheduler *s); /* threads and subscription; no lock */
void sched_lease_stop(scheduler *s); /* answers what is queued, joins the threads */
/* Handles the queued requests on the calling thread (with lease_threads 0: the fuzz target). */
void sched_lease_run_queued(scheduler *s);

/* waitq.c: the queue of lease requests waiting for room, owners taking
 * turns per shape. Lock held unless noted. */
int sched_waitq_start(scheduler *s); /* subscribes to cancels; no lock */
/* Queues `w` (taken on success) under shape `key`. NULL, or the error for the
 * owner (queue_full). `*contended`: other owners wait for it too; notices
 * for those who had not heard are appended to `notices` ({subject, body}). */
json_t *sched_waitq_add(scheduler *s, const char *key, sched_waiter *w, bool *contended,
                        json_t *notices);
bool sched_waitq_has(scheduler *s, const char *key);
/* An owner asks again for a request that waits (it checks that the queue
 * still holds it): true when it does, with its deadline moved on. */
bool sched_waitq_refresh(scheduler *s, const char *owner, const char *request_id,
                         int64_t deadline_mono, bool *contended);
/* The request to serve next (its shape in `*shape`), of a shape not stuck; NULL when none. */
sched_waiter *sched_waitq_next(scheduler *s, sched_shape **shape);
/* Removes `w` (served or answered): the turn passes to the next owner. */
void sched_waitq_done(scheduler *s, sched_shape *shape, sched_waiter *w);
/* A report came: every shape may fit again; wakes a lease thread. */
void sched_waitq_unstick(scheduler *s);
void sched_waiter_free(sched_waiter *w);
/* Answers requests past their wait, drops those of owners gone. No lock. */
void sched_waitq_cron(scheduler *s);
/* Publishes [{subject, body}]. No lock. */
void sched_waitq_publish(scheduler *s, json_t *messages);
/* Empties the queue; each request's answer (shutting_down) goes to `answers` unless NULL. */
void sched_waitq_free(scheduler *s, json_t *answers);

/* pg.c: prism.sched.pg.place, placing a placement group's bundles. */
int sched_pg_start(scheduler *s); /* subscribes; no lock */
/* Whether group `pg_id` was removed lately (lock held). */
bool sched_pg_removed(scheduler *s, const char *pg_id);
/* The bundle of group `pg_id` on `n` (index -1: NULL), or NULL. Lock held. */
json_t *sched_bundle_find(const sched_node *n, const char *pg_id, json_int_t index);

/* service.c: the hooks on the service skeleton (`ctx` is the scheduler). */
int sched_configure(void *ctx, const prism_service_settings *set, char *err, size_t errlen);
int sched_init(void *ctx, char *err, size_t errlen);  /* metrics: needs `metrics` set */
int sched_start(void *ctx, char *err, size_t errlen); /* view and lease threads: needs `bus` */
void sched_stop(void *ctx);
void sched_describe(void *ctx, json_t *doc);
void sched_cleanup(void *ctx);

/* api.c: the REST API (openapi/scheduler.yaml). */
extern const prism_http_route sched_routes[];
extern const size_t sched_nroutes;

#endif
