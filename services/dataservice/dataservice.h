/* prism-dataservice: datasets (docs/datasets.md#the-dataservice).
 *
 * A dataset is a plan posted over REST; the service checks it with the plan
 * library, optimizes it into stages, and runs it with a streaming executor
 * that submits the stages' tasks through the service's own libprism client,
 * so the service owns every task and block of its datasets (as the GCS owns
 * the tasks of POST /api/v1/tasks).
 *
 * State is in memory (this process is the only one that knows its
 * datasets). One lock guards the table of datasets and what the executors
 * publish into it (state, progress, output rows); each running dataset has
 * an executor thread of its own, whose working state (queues, tasks in
 * flight) is private to that thread. Nothing slow runs under the lock:
 * executors submit and wait outside it and publish after. */
#ifndef PRISM_DATASERVICE_H
#define PRISM_DATASERVICE_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "prism/prism.h"
#include "prism_block.h"
#include "prism_bus.h"
#include "prism_http.h"
#include "prism_id.h"
#include "prism_metrics.h"
#include "prism_plan.h"
#include "prism_service.h"

#define DS_ID_LEN 32 /* hex digits of a dataset ID */
/* The memory budget while no object store is known yet. */
#define DS_FALLBACK_BUDGET (256 << 20)
#define DS_NODE_LEN 64               /* bytes of a node ID the service keeps */
#define DS_MAX_SPLITS 1024           /* consumers of one streaming_split */
#define DS_CONSUMER_TIMEOUT_MS 60000 /* a streamed dataset's consumer silent this long is lost */

typedef struct ds_config {
    char *gcs_address;     /* where the service's client connects */
    int64_t memory_budget; /* bytes of blocks in flight per dataset, unless its plan
                            * says; 0: memory_fraction of the stores' memory */
    double memory_fraction;
    int64_t max_tasks;      /* tasks in flight per stage, unless the plan caps lower */
    int64_t max_running;    /* datasets running at once; more wait PENDING */
    int64_t max_datasets;   /* datasets kept; the oldest ended ones go first */
    int64_t preview_rows;   /* rows of output kept for GET .../rows */
    int64_t default_blocks; /* blocks a read makes when the plan does not say */
    char *data_roots;       /* --data-roots: directories reads and writes stay under */
    char **roots;           /* data_roots resolved (realpath), nroots of them */
    size_t nroots;
    /* the common settings (the skeleton's, borrowed) */
    const char *host, *token;
} ds_config;

typedef enum ds_state {
    DS_PENDING = 0, /* waiting for a free executor */
    DS_RUNNING,
    DS_FINISHED,
    DS_FAILED,
    DS_STOPPED,
} ds_state;

const char *ds_state_name(ds_state s);
bool ds_state_ended(ds_state s);

/* What an executor publishes about one stage of its dataset. */
typedef struct ds_stage_progress {
    int64_t rows, blocks, bytes;         /* output so far */
    int64_t tasks_running, tasks_done;   /* tasks submitted and not done; done */
    int64_t tasks_local;                 /* done on the node holding most of their input */
    int64_t queued_blocks, queued_bytes; /* input waiting for a task */
    int64_t actors_alive, actors_busy, actors_created; /* an actor pool's */
    prism_plan_op_kind op; /* its last operator: the one whose output it makes (metrics) */
} ds_stage_progress;

/* /metrics per operator: a stage counts under its last operator's kind. */
typedef struct ds_op_metrics {
    struct dataservice *svc;
    prism_plan_op_kind kind;
    prism_metric *rows, *blocks, *bytes; /* output so far, every dataset */
} ds_op_metrics;

/* A block of a streamed dataset's output (stream.c), or the part of one
 * lent to a consumer: rows [skip, take) belong (take -1: to the end). */
typedef struct ds_outblock {
    prism_ref *ref;
    int64_t seq, rows, bytes;
    int64_t skip;               /* rows before the part that belongs */
    int64_t take;               /* -1: every row from skip; else the rows before `take` */
    int64_t cost;               /* bytes it keeps alive (the executor's measure) */
    int split;                  /* lent: to which consumer */
    char node[DS_NODE_LEN + 1]; /* the node it was made on ("" unknown) */
} ds_outblock;

/* One consumer of a streamed dataset (streaming_split has n). */
typedef struct ds_split {
    int64_t rows;    /* rows lent to it so far */
    int64_t blocks;  /* blocks (or parts) lent to it */
    int64_t local;   /* of which made on the node it said it is on */
    int64_t seen_ms; /* its last call (monotonic); the dataset's creation before any */
    int waiting;     /* calls of it waiting in blocks/next now */
    bool done;       /* told the end */
} ds_split;

/* How a streamed dataset's output is consumed (POST ...?stream=true&split=). */
typedef struct ds_stream_opts {
    bool streamed;
    int nsplits;        /* consumers: 1, or streaming_split's n */
    bool equal;         /* each consumer gets as many rows (up to n - 1 dropped) */
    int64_t timeout_ms; /* a consumer silent this long is lost: the dataset fails */
    int64_t batch_size; /* the consumer's batch size, 0 unknown: blocks hold whole batches */
    bool materialize;   /* not streamed: every output block is kept for later epochs */
} ds_stream_opts;

typedef struct ds_stream {
    ds_outblock *v; /* waiting for a consumer: entries [head, n) */
    size_t head, n, cap;
    ds_outblock *lent; /* handed to consumers, not given back yet */
    size_t nlent, caplent;
    int64_t cost;        /* of every block above */
    int64_t queued_rows; /* rows of v[head, n) that belong */
    int64_t next_seq;
    int nsplits;
    bool equal;
    int64_t timeout_ms;
    ds_split *splits; /* nsplits */
    int64_t dropped;  /* equal: rows left over once every consumer had its share */
} ds_stream;

typedef struct ds_dataset {
    struct dataservice *svc;
    char id[DS_ID_LEN + 1];
    char *name;
    ds_state state;
    char *error; /* why it FAILED, naming the stage and operator */
    prism_plan *plan;
    prism_physical_plan *physical;
    json_t *plan_json;     /* the canonical plan */
    json_t *physical_json; /* the stages */
    json_t *explain_json;
    char *explain;
    size_t nstages;
    ds_stage_progress *stages;
    int64_t plan_budget; /* the plan's memory_budget_bytes; 0: none */
    int64_t budget;      /* bytes of blocks in flight at most */
    int64_t bytes_in_flight, peak_bytes_in_flight;
    int64_t rows, blocks, bytes;          /* the dataset's output */
    int64_t skipped;                      /* files and images skip_corrupt left out */
    int64_t files_written, bytes_written; /* a write's files so far */
    json_t *preview;                      /* the first output rows, up to preview_rows */
    int64_t created_ms, started_ms, ended_ms;
    bool streamed;      /* the output goes to a consumer (stream.c), not counted and dropped */
    int64_t batch_size; /* the consumer's batches (ds_stream_opts) */
    ds_stream stream;
    bool stop;        /* asked to stop (POST .../stop, or the service ends) */
    char *lost;       /* a consumer was lost: why the dataset fails (the executor's to take) */
    bool materialize; /* its output blocks are kept (kept), for epochs to stream */
    ds_outblock *kept;
    size_t nkept, capkept;
    int64_t kept_bytes;
    char source[DS_ID_LEN + 1]; /* an epoch: the materialized dataset it streams; "" else */
    bool thread_running;        /* its executor thread was started and not joined */
    pthread_t thread;
    uint64_t seq; /* creation order */
    struct ds_dataset *next;
} ds_dataset;

typedef struct ds_store ds_store;

typedef struct dataservice {
    ds_config cfg;
    prism_bus *bus;
    prism_http_server *http;
    prism_metrics *metrics;
    char url[512]; /* this service's REST URL, once serving */
    struct {
        prism_metric *submitted, *finished, *failed, *stopped, *tasks, *rows;
    } m;
    ds_op_metrics ops[PRISM_OP_KIND_COUNT];

    pthread_mutex_t client_lock; /* guards `client` (taken alone: connecting is slow) */
    prism_client *client;        /* connected once serving (connector), or on first use */
    pthread_t connector;
    bool connecting;            /* connector started: joined at stop */
    atomic_bool connector_stop; /* the service stops: the connector gives up */

    pthread_mutex_t lock;   /* guards what follows */
    pthread_cond_t changed; /* broadcast when any dataset's state or output changes */
    ds_dataset *datasets;   /* newest first */
    size_t count;
    uint64_t next_seq;
    bool quit;
    ds_store *stores; /* the object stores the node agents report */
} dataservice;

/* service.c: the hooks on the service skeleton */
int ds_configure(void *ctx, const prism_service_settings *set, char *err, size_t errlen);
int ds_init(void *ctx, char *err, size_t errlen);
int ds_start(void *ctx, char *err, size_t errlen);
int ds_serving(void *ctx, const char *url, char *err, size_t errlen);
void ds_stop(void *ctx);
void ds_cleanup(void *ctx);
/* The service's client, connected on first use; NULL (with prism_last_error)
 * when the cluster cannot be reached. Takes the lock. */
prism_client *ds_client(dataservice *s);

/* datasets.c: the table. Callers hold the lock unless noted. */
/* Checks and adds a dataset of `plan_text`. Returns 0 with the new
 * dataset's ID, or an HTTP status with `code` and `err` (a plan's error code
 * and message naming the operator). Takes the lock. */
int ds_dataset_create(dataservice *s, const char *plan_text, size_t len, const ds_stream_opts *so,
                      char *id_out, const char **code, char *err, size_t errlen);
ds_dataset *ds_dataset_find(dataservice *s, const char *id);
/* An epoch of materialized dataset `src_id`: a new streamed dataset, ended
 * at once, whose consumers get the kept blocks (nothing runs again).
 * Returns 0 with its ID, or an HTTP status with `code` and `err`. Takes the
 * lock. */
int ds_dataset_epoch(dataservice *s, const char *src_id, const ds_stream_opts *so, char *id_out,
                     const char **code, char *err, size_t errlen);
/* Keeps output block `b` of a materialized dataset (lock held; -1 out of
 * memory). drop_kept: releases them all. */
int ds_dataset_keep(ds_dataset *d, const ds_outblock *b);
void ds_dataset_drop_kept(ds_dataset *d);
/* The dataset as JSON for GET (`full`: the plan, explain, stages). */
json_t *ds_dataset_json(dataservice *s, const ds_dataset *d, bool full);
/* Starts the executors of PENDING datasets while fewer than max_running
 * run, and joins those that ended (periodic job; takes the lock). */
void ds_datasets_cron(dataservice *s);
/* Asks every executor to stop and joins them (service stop). */
void ds_datasets_stop_all(dataservice *s);
void ds_datasets_free(dataservice *s);

/* The budget of a dataset (lock held): its plan's, --memory-budget, or
 * --memory-fraction of the stores' memory. */
int64_t ds_budget_of(dataservice *s, const ds_dataset *d);

/* stores.c: the object stores' memory, for the default budget */
int ds_stores_start(dataservice *s);        /* subscribes to the node agents' reports */
void ds_stores_cron(dataservice *s);        /* asks new stores their size; takes the lock */
int64_t ds_stores_capacity(dataservice *s); /* bytes of all known stores; lock held */
double ds_stores_cpus(dataservice *s,
                      double *gpus); /* CPUs (and GPUs) of the nodes known; lock held */
void ds_stores_free(dataservice *s);

/* files.c: the files of a read's `paths` ([{"path", "size"}...], owned),
 * only those ending in one of `exts` (a list, or null: any), and their
 * bytes in `total`; NULL with `err` naming the path. */
json_t *ds_list_files(const json_t *paths, const json_t *exts, int64_t *total, char *err, size_t n);

/* paths.c: --data-roots. parse: resolves cfg->data_roots into roots
 * (0, or -1 with err). read_allowed: whether a read may list `path` (always
 * without roots). write_check: whether a write may make and fill directory
 * `path` (never without roots; absolute, no "..", under a root once
 * resolved). write_dir_open: makes the directory as mkdir -p does and
 * opens it (a descriptor, or -1 with err). */
int ds_roots_parse(ds_config *c, char *err, size_t n);
void ds_roots_free(ds_config *c);
int ds_read_allowed(const ds_config *c, const char *path, char *err, size_t n);
int ds_write_check(const ds_config *c, const char *path, char *err, size_t n);
int ds_write_dir_open(const ds_config *c, const char *path, char *err, size_t n);

/* writes.c: a dataset's write, a file per output block. open: the write's
 * directory made and opened (NULL with err). block: the first `rows` rows
 * of `blk` as file number `index` (0, or -1 with err). */
typedef struct ds_writer ds_writer;
ds_writer *ds_writer_open(const ds_config *c, prism_plan_op_kind kind, const json_t *spec,
                          const char *dataset_id, char *err, size_t n);
int ds_writer_block(ds_writer *w, const prism_block *blk, size_t rows, int64_t index, char *err,
                    size_t n);
int64_t ds_writer_files(const ds_writer *w);
int64_t ds_writer_bytes(const ds_writer *w);
void ds_writer_close(ds_writer *w);

/* actor_pool.c: a stage's actor pool (the executor's thread only). create:
 * min_size actors of the stage (NULL with err). idle: an actor not busy
 * (its index), or -1. can_grow: under max_size (at most `max_cap`). grow:
 * one actor more (0, or -1 with err). take: actor `i` busy, for one call;
 * give_back: done. shrink: actors idle DS_POOL_IDLE_MS go, down to
 * min_size. destroy: every actor killed. */
#define DS_POOL_IDLE_MS 1000
typedef struct ds_pool ds_pool;
typedef struct ds_pool_actor {
    prism_actor *actor;
    bool busy;
    int64_t idle_since;
} ds_pool_actor;
ds_pool *ds_pool_create(prism_client *c, const prism_plan_stage *info, const char *program,
                        const char *resources, int64_t max_cap, char *err, size_t n);
int ds_pool_idle(const ds_pool *p);
bool ds_pool_can_grow(const ds_pool *p);
int ds_pool_grow(ds_pool *p, char *err, size_t n);
prism_actor *ds_pool_take(ds_pool *p, int i);
void ds_pool_give_back(ds_pool *p, prism_actor *a);
void ds_pool_shrink(ds_pool *p, int64_t now_ms);
void ds_pool_counts(const ds_pool *p, int64_t *alive, int64_t *busy, int64_t *created);
void ds_pool_destroy(ds_pool *p);

/* stream.c: a streamed dataset's output blocks (lock held). init: the
 * consumers (0, or -1 out of memory). push: a block made (taken; -1 when
 * out of memory). ready: whether consumer `split` can be lent something
 * now. next: the next block or part of one for consumer `split` as JSON,
 * the first queued on `node` (its node; NULL or "": any) if one is, else
 * the oldest (NULL: none now; *end when none will come), lent until release, which
 * returns its reference to drop (NULL: no such block lent). lost: a
 * consumer silent past the timeout (its index), or -1. clear: drops every
 * block. */
int ds_stream_init(ds_dataset *d, const ds_stream_opts *o);
int ds_stream_push(ds_dataset *d, const ds_outblock *b);
bool ds_stream_ready(const ds_dataset *d, int split);
json_t *ds_stream_next(ds_dataset *d, const char *owner, int split, const char *node, bool *end);
prism_ref *ds_stream_release(ds_dataset *d, int64_t seq);
int ds_stream_lost(const ds_dataset *d, int64_t now_ms);
void ds_stream_clear(ds_dataset *d);

/* executor.c: runs one dataset on its own thread (started by the cron). */
void *ds_executor_main(void *arg);

/* api.c: the REST API (openapi/dataservice.yaml) */
extern const prism_http_route ds_routes[];
extern const size_t ds_nroutes;

#endif
