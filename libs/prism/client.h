/* The owner side of libprism: the ownership table, task queues, leases and
 * the connections to leased workers. One lock guards it all; three threads
 * run in the background: `io` (reads results from workers, flushes writes),
 * `leaser` (asks for leases, returns idle ones, reports) and `courier`
 * (deletes the stored copies of freed objects, sends the borrowing
 * protocol's messages). */
#ifndef PRISM_CLIENT_H
#define PRISM_CLIENT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "prism_buf.h"
#include "prism_bus.h"
#include "prism_httpc.h"
#include "prism_internal.h"
#include "prism_store.h"
#include "codec.h"
#include "prism_wire.h"
#include "prism_wire_conn.h"

#define PIPELINE_DEPTH 16 /* tasks in flight per leased worker */
/* How many times one task runs again because its worker could not read an
 * argument (made again from lineage meanwhile): such runs use none of its
 * retries, so this bounds them. */
#define LOST_ARGUMENT_TRIES 8
/* An actor's calls have one connection and nothing to balance: a deep window
 * keeps its worker busy without a round trip per batch. */
#define ACTOR_PIPELINE_DEPTH 256
/* Workers one owner leases for one shape at most: enough for a thousand
 * fractional-CPU tasks side by side; each is one connection. */
#define MAX_LEASES_PER_SHAPE 1024
#define LEASE_IDLE_MS 50 /* an idle lease is returned after this */
/* While other owners wait for the same shape, a lease used this long is
 * given back once its tasks are done (the scheduler hands it on in turn). */
#define LEASE_SHARE_MS 20
#define IO_SPIN_US 50 /* the io thread polls this long for results before sleeping */

enum obj_state { OBJ_PENDING, OBJ_READY, OBJ_FAILED };

typedef struct task_spec task_spec;
typedef struct worker_conn worker_conn;
typedef struct pool pool;
typedef struct actor_rec actor_rec;

/* Another process holding references to an object this one owns (borrow.c). */
typedef struct borrower {
    char *addr; /* its owner address */
    int count;  /* adds not yet removed */
    struct borrower *next;
} borrower;

typedef struct obj_entry {
    prism_object_id id;
    int refs;  /* prism_ref handles alive in this process */
    int state; /* enum obj_state */
    prism_status error;
    uint8_t *inline_buf; /* encoded value (READY inline, or the error value) */
    size_t inline_len;
    char *node_id, *store_socket, *store_url; /* READY in an object store */
    uint64_t size;
    task_spec **waiters; /* tasks whose arguments include this object */
    size_t nwaiters, capwaiters;
    task_spec *lineage; /* the task that made a stored value, to run again if it is lost */
    bool lost;          /* its store's node died */
    /* Objects referenced inside the value, each counted once in `refs` of its
     * entry (as a handle would be, without the handle): they live as long as it does. */
    prism_object_id *contained;
    size_t ncontained;
    borrower *borrowers; /* owned objects: other processes that hold references */
    /* Borrowed objects (another process owns them; the entry caches the value): */
    char *owner;       /* the owner's address; NULL: this process owns the object */
    int registrations; /* adds the owner holds for this process (sent back on release) */
    bool registering;  /* an add for this process is on its way to the owner */
    bool resolving;    /* a request for the value is out */
    int64_t resolve_sent_ms;
    struct obj_entry *next;
} obj_entry;

struct task_spec {
    prism_task_id id;
    char *package, *function;
    prism_value **args; /* owned; references in them keep their objects alive */
    size_t nargs;
    int num_returns;
    int attempts_left; /* -1: forever */
    bool retry_exceptions;
    int deps_pending;
    bool dep_failed;         /* an argument failed: the returns failed already */
    int lost_argument_tries; /* runs again because a worker could not read an argument */
    int lineage_refs;        /* entries that keep this task as their lineage */
    bool in_flight;          /* queued or running (a lineage task may run again) */
    pool *pool;
    int64_t submitted_ms; /* monotonic, for waits */
    int64_t submitted_at; /* wall clock, for people */
    int64_t started_at;   /* wall clock of the last push */
    int64_t frame_end;    /* where its last push ends in its connection's bytes (sent) */
    char node_id[PRISM_ID_HEX_LEN + 1], worker_id[PRISM_ID_HEX_LEN + 1]; /* where it last ran */
    bool reported_pending; /* a PENDING event went out for it */
    bool cancelled;        /* force-cancelled while it ran: its worker is being killed */
    task_spec *next;       /* queue or in-flight list */
};

/* One task's state for the cluster's task list (published in batches). */
enum task_event_state { TASK_EV_PENDING, TASK_EV_FINISHED, TASK_EV_FAILED };
typedef struct task_event {
    prism_task_id id;
    char name[80];
    uint8_t state;
    char node_id[PRISM_ID_HEX_LEN + 1], worker_id[PRISM_ID_HEX_LEN + 1];
    int64_t submitted_at, started_at, ended_at;
    char *detail; /* the error, or why it waits (owned; NULL for a success) */
} task_event;

struct worker_conn {
    int fd;
    wire_tls *tls;  /* a tls: worker's session; NULL on a plain connection */
    wire_auth auth; /* nothing is sent before the worker's CHALLENGE came */
    char *lease_id, *node_id, *worker_id;
    int inflight;
    task_spec *running, *running_tail; /* pushed, in order */
    prism_buf in, out;
    /* Bytes of `out` the socket took, counted so that `sent + out.len` is
     * where the bytes queued so far end: a task whose push ends past `sent`
     * when the connection breaks never reached the worker, so never ran. */
    int64_t sent;
    int64_t idle_since_ms;
    /* wall clock of its last result: when the task pushed after it started */
    int64_t last_done_ms;
    int64_t leased_ms; /* monotonic: when the lease was granted */
    bool sharing;      /* given back once its tasks are done: other owners wait (pool.c) */
    bool want_out;     /* EPOLLOUT armed */
    bool direct;       /* a waiting caller reads it (prism__read_directly), not the io thread */
    /* Read directly last, at `parked_ns`, and left out of the io thread's
     * wait until a caller waits for another reason or PARK_US pass (pool.c). */
    bool parked;
    int64_t parked_ns;
    uint32_t armed;    /* the events registered with epoll */
    bool slow_replies; /* the last direct read waited past DIRECT_SPIN_US: it sleeps at once */
    bool dead;         /* closed; freed by the io thread once no event can name it */
    pool *pool;
    worker_conn *next;
};

/* A placement group handle (placement_group.c): only its ID. */
struct prism_placement_group {
    char id[PRISM_ID_HEX_LEN + 1];
};

struct pool {
    prism_task_options shape;         /* the options that decide the lease (strings owned; no
                                       * placement_group: pg_id holds its ID) */
    char pg_id[PRISM_ID_HEX_LEN + 1]; /* "" without a placement group */
    char *key;                        /* resources + strategy: tasks of one shape share leases */
    json_t *request;                  /* the lease request body */
    task_spec *queue, *queue_tail;
    size_t queued;
    worker_conn *workers;
    int nworkers;
    bool requesting;
    /* The scheduler had no room for one more lease. Until it grants one
     * again, tasks queue up to PIPELINE_DEPTH deep on the workers the pool
     * has; before, one at a time, so that a queued task waits for a worker
     * of its own rather than behind another task while CPUs are free. */
    bool saturated;
    /* The request out (requesting) waits in the scheduler's queue: its grant
     * comes on lease_subject with this request_id. `contended`: other owners
     * wait for this shape too, so leases held LEASE_SHARE_MS are given back. */
    uint64_t request_id;
    bool sched_queued, contended;
    /* The last request (or asking again) was sent at asked_ms and its answer
     * has not come: past LEASE_TIMEOUT_MS the scheduler is taken as slow. */
    bool awaiting;
    int64_t asked_ms;
    double task_ms; /* a task's run time, smoothed; -1 until one ended */
    int64_t queued_since_ms;
    int64_t next_request_ms;
    char *pending_reason; /* why tasks wait (infeasible, busy), for people */
    actor_rec *actor; /* an actor's calls: no leases, one connection to its worker, order kept */
    pool *next;
};

/* What a caller knows of an actor (actor.c). Kept until the client disconnects. */
enum actor_state { ACTOR_UNKNOWN, ACTOR_PENDING, ACTOR_ALIVE, ACTOR_RESTARTING, ACTOR_DEAD };
struct actor_rec {
    char id[PRISM_ID_HEX_LEN + 1];
    int state;                                   /* enum actor_state */
    char *cause;                                 /* why it is DEAD */
    char *cls;                                   /* its class, once the GCS said */
    char *node_id, *worker_id, *unix_path, *tcp; /* its worker while ALIVE */
    int max_task_retries;
    int64_t restarts;      /* as the GCS last said: orders its answers */
    bool busy;             /* the leaser is connecting or asking the GCS */
    int64_t next_query_ms; /* when to ask the GCS again while not ALIVE */
    uint64_t query_id;     /* the question to the GCS out (0: none), asked at query_ms */
    int64_t query_ms;
    size_t reported_queued; /* calls queued here as last told the GCS */
    int64_t reported_ms;
    pool *pool;
    actor_rec *next;  /* every record, newest first */
    actor_rec *hnext; /* in its bucket of the index by ID */
};

/* A message the leaser thread publishes with the lock dropped (borrow.c). */
typedef struct outmsg {
    char *subject, *reply; /* reply may be NULL */
    uint8_t *data;
    size_t len;
    struct outmsg *next;
} outmsg;

/* A borrower's request for the value of a pending object, answered once it settles. */
typedef struct remote_get {
    prism_object_id id;
    char *reply;
    int64_t deadline_ms;
    struct remote_get *next;
} remote_get;

typedef struct deletion {
    prism_object_id id;
    char *store_socket, *store_url, *node_id;
    int tries; /* failed attempts (its store unreachable): tried again at next_ms */
    int64_t next_ms;
    struct deletion *next;
} deletion;

struct prism_client {
    char *address, *token, *nats_url;
    prism_httpc_pool *http;           /* kept connections to the cluster's services and stores */
    uint8_t wire_key[WIRE_KEY_BYTES]; /* proves the token to workers (wire.h) */
    char self_addr[128];              /* how references this process owns are named elsewhere */
    char node_id[64];                 /* this process's node, when known */
    char *store_socket;               /* the local object store, when there is one */
    char *home_store;                 /* the store of `prism up`'s first node, when used */
    char home_node[64];               /* ... and that node's ID */
    char *store_url; /* its HTTP address, for readers on other nodes (may be NULL) */
    /* the live nodes' stores as the GCS last listed them (stores.c) */
    pthread_mutex_t stores_lock;
    char **stores;
    size_t nstores;
    int64_t stores_asked_ms;
    char owner_subject[80]; /* prism.owner.HEX: where borrowers reach this owner */
    char reply_subject[84]; /* prism.owner.HEX.r: answers to this process's requests */
    /* prism.owner.HEX.l: answers to lease requests that waited; the first
     * answer to request N (a lease request, or an actor's question to the
     * GCS) comes on prism.owner.HEX.l.N */
    char lease_subject[84];
    struct lease_answer *lease_answers; /* arrived there, for the leaser thread */
    uint64_t lease_seq;                 /* request IDs */
    prism_bus *bus;
    prism_store *store; /* NULL without a local store */
    bool store_shared;  /* `store` is the worker runtime's: not destroyed here */
    pthread_mutex_t lock;
    pthread_mutex_t events_lock; /* taken while subscribing to actor events */
    bool actor_events;           /* subscribed (set once, read without `lock`) */
    pthread_cond_t changed;      /* an object or a task changed state */
    pthread_cond_t leaser_wake;
    pthread_cond_t courier_wake; /* deletions to run, messages to send (courier.c) */
    obj_entry **buckets;
    size_t nbuckets, nobjects;
    pool *pools;
    actor_rec *actors;
    actor_rec **actor_index; /* by ID: each call and event finds its record */
    size_t actor_nbuckets, nactors;
    worker_conn *graveyard;    /* closed connections the io thread frees */
    deletion *deletions;       /* stored copies to delete now */
    deletion *deletions_later; /* whose store could not be reached: tried again */
    outmsg *outbox, **outbox_tail;
    bool outbox_sending; /* a thread sends what it took: the others leave theirs to it */
    remote_get *remote_gets;
    prism_object_id *unreg; /* borrowed entries made since the last registration */
    size_t nunreg, capunreg;
    size_t nresolving; /* borrowed entries with a request for their value out */
    size_t nborrowers; /* borrower records over all owned entries */
    size_t nborrowed;  /* entries of objects other processes own */
    int64_t last_resolve_check_ms, last_borrower_check_ms;
    task_event *events; /* waiting to be published */
    size_t nevents, capevents;
    uint64_t events_dropped; /* since the last flush */
    size_t finished_events;  /* FINISHED events in the batch being gathered */
    int64_t last_events_ms, last_pending_scan_ms;
    prism_task_id put_task;
    uint32_t put_index;
    uint64_t task_counter; /* task IDs: a random prefix per client and a counter */
    int epfd, wakefd;
    pthread_t io_thread, leaser_thread, courier_thread;
    /* While the io thread polls for results or handles the events it got
     * (io_spinning), pushes leave their frames in the connections' out
     * buffers (out_pending) and it sends them, many frames a send, instead of
     * a send per task (pool.c flush_soon). */
    _Atomic bool io_spinning, out_pending;
    bool io_timed;  /* the io thread's wait ends by itself: parked connections (pool.c) */
    int io_waiters; /* threads waiting for what the io thread reads: nothing is parked meanwhile */
    bool stopping;
    /* counters for inspection and benchmarks */
    uint64_t tasks_submitted, tasks_finished, tasks_retried;
    /* the last report of the ownership table on prism.event.objects (events.c) */
    struct {
        uint64_t signature; /* of the table when reported */
        int64_t sent_ms;    /* monotonic */
        size_t total;       /* objects it counted */
    } objects_report;
    /* compiled DAGs not torn down, reported to the GCS (dag.c) */
    struct prism_dag_compiled *dags;
    int64_t last_dags_ms;
};

/* An HTTP client for the cluster's address (GCS), a kept one when there is;
 * NULL when out of memory. Given back with prism__http_give. */
static inline prism_httpc *prism__http_take(prism_client *c)
{
    return prism_httpc_pool_take(c->http, c->address, c->token);
}

static inline void prism__http_give(prism_client *c, prism_httpc *h)
{
    prism_httpc_pool_give(c->http, h, true);
}

/* ---- the ownership table (client.c); lock held ---- */
obj_entry *prism__obj_find(prism_client *c, const prism_object_id *id);
obj_entry *prism__obj_add(prism_client *c, const prism_object_id *id);
/* Marks an entry ready with an encoded inline value (copied). */
void prism__obj_set_inline(prism_client *c, obj_entry *e, const uint8_t *buf, size_t len);
void prism__obj_set_stored(prism_client *c, obj_entry *e, const char *node, const char *socket,
                           const char *url, uint64_t size);
void prism__obj_set_failed(prism_client *c, obj_entry *e, prism_status s, const char *task,
                           const char *message);

/* A new handle on `id` counted in `c`'s table; `owner` NULL means `c` owns it,
 * else an entry for the borrowed object is made when there is none. */
prism_ref *prism__ref_new_locked(prism_client *c, const prism_object_id *id, const char *owner);
/* Drops a handle of `c`'s table (and frees it). */
void prism__ref_drop_locked(prism_client *c, prism_ref *ref);
/* Counts one reference to `id` in the table, as a handle does but without
 * one (`owner` as for prism__ref_new_locked). False when it is not tracked
 * (an owned object already freed). */
bool prism__obj_hold(prism_client *c, const prism_object_id *id, const char *owner);
/* Drops a count taken by prism__obj_hold. */
void prism__obj_unhold(prism_client *c, const prism_object_id *id);
/* Frees `e` when nothing holds it any more (no handle, no borrower). */
void prism__obj_maybe_free(prism_client *c, obj_entry *e);
/* Marks an entry failed with an encoded ERROR value (copied). */
void prism__obj_set_failed_encoded(prism_client *c, obj_entry *e, prism_status s,
                                   const uint8_t *buf, size_t len);
/* Appends to `*out` (grown as needed) every reference inside `v`. Returns -1 when out of memory. */
int prism__value_refs(const prism_value *v, const prism_ref ***out, size_t *n, size_t *cap);

/* ---- borrowing (borrow.c) ---- */
/* Subscribes to this owner's subjects. */
int prism__borrow_start(prism_client *c);
/* Ends them and gives back what this process borrowed (disconnecting). */
void prism__borrow_stop(prism_client *c);
/* At disconnect: frees an entry's borrower records and owner address. */
void prism__borrow_free_entry(obj_entry *e);
/* At disconnect, after borrow_stop: frees what is left unsent. */
void prism__borrow_free(prism_client *c);
/* prism_connect, the local store (PRISM_STORE_SOCKET) being `shared`, a
 * connection the caller keeps and destroys after the client: the worker
 * runtime's, so that a worker maps the arena once, not twice. */
prism_status prism__connect_sharing_store(const prism_connect_options *opts, prism_store *shared,
                                          prism_client **out);
/* An owned object settled: answers borrowers waiting for it. Lock held. */
void prism__borrow_settled(prism_client *c, obj_entry *e);
/* An entry goes away: a borrowed one gives its registrations back, an owned
 * one answers whoever still waits for it. Lock held. */
void prism__borrow_forget(prism_client *c, obj_entry *e);
/* Asks the owner of a pending borrowed entry for its value (answered later,
 * on the reply subject). Lock held. */
void prism__borrow_resolve(prism_client *c, obj_entry *e);
/* Publishes what is queued, or leaves it to the thread sending now (which
 * sends until the outbox is empty); called without the lock. */
void prism__borrow_flush(prism_client *c);
/* The same, lock held (dropped meanwhile). */
void prism__borrow_flush_locked(prism_client *c);
/* One synchronous try at a borrowed entry's value, so a dead owner shows at
 * once. Called without the lock. */
void prism__borrow_fetch_now(prism_client *c, const prism_object_id *id);
/* Tells owners about the borrowed entries this process still holds and has
 * not registered yet (before a worker reports a task done, after a get).
 * Called without the lock. */
void prism__borrow_register(prism_client *c);
/* Registers `who` as holding `ref`: locally when this process owns it,
 * else with its owner (synchronously). Called without the lock. */
void prism__borrow_add_for(prism_client *c, const prism_ref *ref, const char *who);
/* Undoes one prism__borrow_add_for (REMOVE published to a remote owner). */
void prism__borrow_remove_for(prism_client *c, const prism_ref *ref, const char *who);
/* Leaser thread, lock held: answers and expiries, dead owners and borrowers. */
void prism__borrow_tick(prism_client *c);

/* Decodes an object of `store` zero-copy: its bytes and tensors point into the arena. */
/* Asks the store at `store_url` (this node's) to pull object `id` from the
 * store at `source`: the store sends the token only to a store of the
 * cluster and refuses any other source (docs/security.md). Returns 0, or -1
 * with `err`. */
int prism__store_pull(const char *store_url, const char *token, const prism_object_id *id,
                      const char *source, char *err, size_t n);
/* stores.c: whether the store at `url` is this client's or a live node's as
 * the GCS lists them, the only stores it sends the token to. A URL the
 * list lacks makes it ask the GCS again (at most once a second, waiting for
 * that). Without the client's lock. */
bool prism__store_known(prism_client *c, const char *url);
void prism__stores_free(prism_client *c);
prism_status prism__decode_stored(prism_store *store, const prism_object_id *id, int timeout_ms,
                                  prism_client *c, const char *self, prism_value **out);

/* Encodes `v` straight into a new pinned object of `store` (one copy, no
 * temporary buffer) owned by `owner` (an owner:HEX address: the store asks
 * it whether it still holds the object); `*size` receives its size. */
prism_store_status prism__store_value(prism_store *store, const prism_object_id *id,
                                      const char *owner, const prism_value *v, const char *self,
                                      uint64_t *size);

/* PRISM_OK when a task's or an actor's resource amounts can be asked for
 * (submit.c): none negative, GPU below 1 (a share of one device) or whole,
 * `resources` (may be NULL) a JSON object of non-negative numbers, and a
 * node_id for NODE_AFFINITY. */
prism_status prism__check_amounts(double num_cpus, double num_gpus, double memory,
                                  const char *resources, prism_strategy strategy,
                                  const char *node_id);

/* ---- tasks (submit.c); lock held ---- */
/* Called when an object a task waits for is ready or failed. */
void prism__task_dep_done(prism_client *c, task_spec *t, obj_entry *dep);
/* A DONE frame for `t` arrived (payload after the task id). */
void prism__task_done(prism_client *c, task_spec *t, const uint8_t *p, size_t len);
/* The worker running `t` died: retry or fail. `may_have_run` false: `t`
 * waited behind another task of that worker, so it never started and goes
 * back to the queue without using a retry. */
void prism__task_worker_died(prism_client *c, task_spec *t, const char *why, bool may_have_run);
/* A task is done with (finished, failed or never to run): freed unless some
 * entry keeps it as lineage. Lock held. */
void prism__task_release(prism_client *c, task_spec *t);
/* Runs the lineage of a lost object again, using one of its task's
 * retries. Returns false when it has none, or no retries are left. Lock held. */
bool prism__reconstruct(prism_client *c, obj_entry *e);
/* Why a lost object cannot be made again (prism__reconstruct said no). */
void prism__lost_message(const obj_entry *e, char *msg, size_t n);
/* Queued tasks with an argument lost with its node wait for it to be rebuilt
 * (or fail when it cannot be). Lock held. */
void prism__tasks_args_lost(prism_client *c);
/* Closes the connections to workers on `node_id` (their tasks are retried). Lock held. */
void prism__pools_node_dead(prism_client *c, const char *node_id);
/* A caller waiting for object `id` reads the result from the worker's
 * socket itself, when the task that makes it is on the only connection with
 * tasks in flight: the kernel then wakes the caller straight from the reply,
 * as in a plain round trip, where the io thread would wake and then wake
 * the caller (a wake-up more, across CPUs as a rule). The io thread leaves
 * that connection's results alone meanwhile. Lock held, dropped while
 * waiting (at most until `deadline_ms`, monotonic, or -1: none, in slices).
 * Returns false when it does not apply (wait as usual), true after a wait:
 * look again. */
bool prism__read_directly(prism_client *c, const prism_object_id *id, int64_t deadline_ms);
/* Gives the io thread the connections parked before `parked_before_ns`: a
 * caller about to wait for the io thread calls it with INT64_MAX. */
void prism__unpark(prism_client *c, int64_t parked_before_ns);
/* Frees a task; `c`'s lock is held (or `c` is NULL when the task never entered the table). */
void prism__task_free(prism_client *c, task_spec *t);
/* At disconnect: frees the tasks still waiting for arguments and those kept
 * as lineage, unhooking them from the table's entries. */
void prism__tasks_free_pending(prism_client *c);
/* Sends CANCEL for task `id` on `wc`: the worker drops it if it has not
 * started it, answering DONE with PRISM_ERR_CANCELLED. Lock held. */
void prism__conn_cancel(prism_client *c, worker_conn *wc, const prism_task_id *id);
/* Fails every return of `t` with `s` and frees it. */
void prism__task_fail(prism_client *c, task_spec *t, prism_status s, const char *message);

/* Submits a task into `actor_pool` (an actor's calls, in order) or, when it is
 * NULL, into the pool of its shape. Called without the lock. */
prism_status prism__submit(prism_client *c, pool *actor_pool, const char *package,
                           const char *function, prism_value *const *args, size_t nargs,
                           const prism_task_options *o, prism_ref **returns);
/* How people see a task's name: "package/function", or "Class.method" for an actor call. */
void prism__task_name(const task_spec *t, char *out, size_t n);
/* Fails every return of `t` with `s`, leaving the task to the caller. Lock held. */
void prism__task_fail_returns(prism_client *c, task_spec *t, prism_status s, const char *message);

/* ---- actors (actor.c) ---- */
/* Leaser thread, lock held: connects to actors that became ALIVE, asks the
 * GCS about the others, fails calls to dead ones. */
void prism__actors_tick(prism_client *c);
/* Leaser thread, lock held: takes the GCS's answer `body` (NULL: no GCS
 * runs) to question `id` (a request ID, from lease_seq) if an actor asked
 * it; false when none did. */
bool prism__actor_answered(prism_client *c, uint64_t id, json_t *body);
/* Lock held: tells the GCS that no calls are queued here any more (disconnect). */
void prism__actors_report_final(prism_client *c);
void prism__actors_free(prism_client *c);
/* Asks the GCS to kill the actor (and restart it unless `no_restart`). */
prism_status prism__actor_kill_id(prism_client *c, const char *actor_id, bool no_restart);

/* ---- task events (events.c) ---- */
/* Records a task's state for the cluster's task list. Lock held. */
void prism__event_task(prism_client *c, const task_spec *t, int state, const char *detail);
/* Publishes what was recorded (drops the lock meanwhile) and reports tasks
 * that have waited long. Leaser thread, lock held. */
void prism__events_tick(prism_client *c);
/* Nothing to report soon: no task events recorded, no changed ownership table
 * to report, no compiled DAGs (whose reports follow their executions). */
bool prism__events_quiet(const prism_client *c);
/* The compiled DAGs' executions and state, every DAG_REPORT_MS when they
 * changed (dag.c). Leaser thread, lock held (dropped meanwhile). */
#define DAG_REPORT_MS 1000
void prism__dags_tick(prism_client *c);
/* At disconnect: frees the events not published. */
void prism__events_free(prism_client *c);

/* ---- pools and workers (pool.c) ---- */
/* Start and stop the background threads (the courier's too). */
int prism__pools_start(prism_client *c);
void prism__pools_stop(prism_client *c);

/* Waits on one of the background threads' condition variables (leaser_wake,
 * courier_wake: CLOCK_REALTIME) for at most `ms`. Lock held. */
void prism__wake_wait(prism_client *c, pthread_cond_t *wake, int64_t ms);

/* ---- the courier: freed objects' stored copies, the outbox (courier.c) ---- */
/* Queues the deletion of owned entry `e`'s stored copy. Lock held. */
void prism__deletion_add(prism_client *c, const obj_entry *e);
/* Forgets the deletions due again on `node_id`: its copies died with it. Lock held. */
void prism__deletions_node_dead(prism_client *c, const char *node_id);
/* Deletes what is queued and what is due again; with `last`, everything
 * queued, once. Lock held, dropped meanwhile. */
void prism__deletions_run(prism_client *c, bool last);
int prism__courier_start(prism_client *c);
/* Joins the courier (c->stopping set); the deletions it left go with
 * prism__deletions_run(c, true). */
void prism__courier_stop(prism_client *c);
/* Queues a task whose arguments are ready and pushes what can go. Lock held. */
void prism__pool_enqueue(prism_client *c, task_spec *t, bool front);
pool *prism__pool_for(prism_client *c, const prism_task_options *o);
/* A pool for an actor's calls. Lock held. */
pool *prism__pool_for_actor(prism_client *c, actor_rec *a);
/* The lease request body for these options. */
json_t *prism__lease_request(const prism_client *c, const prism_task_options *o);
/* Writes an argument slot of a PUSH (stored location or inline value). Lock held. */
void prism__write_arg(prism_client *c, prism_writer *w, const prism_value *v);
/* Connects to a worker named by a grant {unix?, tcp?, lease_id, node_id, worker_id}:
 * its Unix socket when that connects, else its TCP address (with TLS for a
 * "tls:" one). NULL with `err` on failure; *config_error when trying again
 * will not help (see wire_connect). Called without the lock. */
worker_conn *prism__worker_connect(prism_client *c, json_t *grant, bool *config_error, char *err,
                                   size_t errlen);
/* Adds a connected worker to `p` and pushes what waits. Lock held. */
void prism__pool_add_worker(prism_client *c, pool *p, worker_conn *wc);
/* Pushes what can go now. Lock held. */
void prism__dispatch(prism_client *c, pool *p);
/* Fails every queued task of `p` with `s` and `message`; those still waiting
 * for arguments go once their arguments settle. Lock held. */
void prism__pool_fail_queued(prism_client *c, pool *p, prism_status s, const char *message);
/* Takes the tasks `pick` chooses out of `p`'s queue, in queue order (a list
 * through `next`). Lock held. */
task_spec *prism__pool_take(prism_client *c, pool *p,
                            bool (*pick)(prism_client *, const task_spec *));

#endif
