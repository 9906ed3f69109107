/* Actors inside the GCS (docs/actors.md), shared by
 *   actors.c          the command queue, the table as JSON, events, kills,
 *                     metrics, start and stop
 *   actor_requests.c  the NATS requests: create, get, kill
 *   actors_api.c      the REST API
 *   actor_manager.c   the lifecycle thread
 *
 * The database is the truth everyone reads; only the manager thread changes
 * an actor after its row is inserted. NATS callbacks and HTTP handlers hand
 * it work through a queue of commands and never touch a connection. */
#ifndef PRISM_GCS_ACTORS_H
#define PRISM_GCS_ACTORS_H

#include <stdint.h>

#include "gcs.h"
#include "prism_id.h"

#define ACTOR_COLUMNS                                                                              \
    "id, class, package, name, namespace, state, owner, detached, node_id, worker_id, unix, "      \
    "tcp, restarts, max_restarts, max_task_retries, max_concurrency, cause, reason, "              \
    "created_at, updated_at, spec, seq"

typedef enum actor_cmd_kind {
    AC_CREATED,     /* a row was inserted: load it and start creating */
    AC_KILL,        /* kill `id` (no_restart) */
    AC_LEASE_REPLY, /* the scheduler's answer to lease request `n` of `id` */
    AC_PING_REPLY,  /* the answer of owner `id` (its ID) to a PING (empty: nobody there) */
    AC_NODE_DEAD,   /* the GCS declared node `id` dead */
    AC_REPORT,      /* a worker says it hosts actor `id`: data is its JSON report */
    AC_ROOM,        /* node `id` reported room: data is its available resources (JSON) */
} actor_cmd_kind;

typedef struct actor_cmd {
    actor_cmd_kind kind;
    char id[PRISM_ID_HEX_LEN + 1];
    uint64_t n;
    bool no_restart;
    char *data; /* a reply's bytes (owned) */
    size_t len;
    uint64_t seq; /* set by gcs_actors_post */
    struct actor_cmd *next;
} actor_cmd;

typedef struct actor actor;

struct gcs_actors {
    pthread_mutex_t lock; /* the queue and `processed` */
    pthread_cond_t processed_cv;
    actor_cmd *head, *tail;
    uint64_t posted, processed;
    bool stopping;
    int epfd, wakefd;
    uint8_t wire_key[32]; /* proves the cluster token to actors' workers (prism_wire.h) */
    pthread_t thread;
    bool started;
    char reply_prefix[64]; /* prism.gcs.actors.<random hex>: replies to our requests */
    actor *live;           /* actors not DEAD, or killed and not gone yet: manager thread only */
    json_t *owners;        /* owner address -> its PING's times (actor_manager.c): manager only */
    int64_t ticks;         /* the manager's ticks so far */
    int busy_waiters;      /* actors told busy, waiting to ask again: read by any thread */
    int64_t last_prune_mono;
    prism_metric *m_created, *m_restarts;
    /* What actors' workers last said of their calls (prism.event.actor.calls):
     * actor ID -> {worker_id, pending, done, at}. Soft state, under the GCS lock. */
    json_t *calls;
    /* What callers last said of their calls still queued on their side
     * (prism.event.actor.queued): actor ID -> {caller -> {queued, at}}.
     * Soft state, under the GCS lock. */
    json_t *queued;
};

/* actors.c */
/* The states, in lifecycle order. */
extern const char *const gcs_actor_states[4];
/* A command of `kind` on `id` (an actor's or a node's), or NULL out of memory. */
actor_cmd *gcs_actor_cmd_new(actor_cmd_kind kind, const char *id);
/* Queues `c` (taken) for the manager. Returns its sequence number. */
uint64_t gcs_actors_post(gcs *g, actor_cmd *c);
/* Waits until the manager handled command `seq` (true) or `timeout_ms` passed. */
bool gcs_actors_wait(gcs *g, uint64_t seq, int timeout_ms);
/* The ACTOR object of docs/actors.md, or NULL. Lock held. */
json_t *gcs_actor_json_locked(gcs *g, const char *id);
/* The same, taking the lock. */
json_t *gcs_actor_json(gcs *g, const char *id);
/* One row of ACTOR_COLUMNS as the ACTOR object, without the calls; NULL out of memory. */
json_t *gcs_actor_row_json(sqlite3_stmt *st);
/* Adds to `a` the calls its callers last reported queued on their side
 * and, while ALIVE, those its worker last reported holding. Lock held. */
void gcs_actor_add_calls_locked(gcs *g, json_t *a);
/* The actor not DEAD named `name` in `ns`, or NULL. Lock held. */
json_t *gcs_actor_live_by_name_locked(gcs *g, const char *ns, const char *name);
/* Publishes the actor on prism.event.actor. Lock held. */
void gcs_actor_publish_locked(gcs *g, const char *id);
/* Asks the manager to kill `id` and waits for it to act. False: no such actor. */
bool gcs_actor_kill(gcs *g, const char *id, bool no_restart);

/* actor_requests.c */
/* Subscribes to prism.gcs.actor.create, get and kill. */
int gcs_actor_requests_start(gcs *g);

/* actor_manager.c */
/* Loads the actors that are not DEAD from the database (before the thread starts). */
void gcs_actor_manager_load(gcs *g);
void *gcs_actor_manager_main(void *arg);
/* Closes every connection and frees what the manager holds (after the thread ended). */
void gcs_actor_manager_free(gcs *g);

#endif
