/* The NATS subjects of Prism (the table in docs/protocol.md): every subject a
 * process publishes, requests or subscribes to is named here, so that the
 * sender and the receiver cannot drift apart. Fixed subjects are constants;
 * those that name a node, a worker or an owner are built. */
#ifndef PRISM_SUBJECTS_H
#define PRISM_SUBJECTS_H

#include <stdbool.h>
#include <stddef.h>

/* Requests and reports to the GCS (queue "gcs"). */
#define PRISM_SUBJECT_NODE_REGISTER "prism.gcs.node.register"
#define PRISM_SUBJECT_NODE_HEARTBEAT "prism.gcs.node.heartbeat"
#define PRISM_SUBJECT_JOB_UPDATE "prism.gcs.job.update"
#define PRISM_SUBJECT_ACTOR_CREATE "prism.gcs.actor.create"
#define PRISM_SUBJECT_ACTOR_GET "prism.gcs.actor.get"
#define PRISM_SUBJECT_ACTOR_KILL "prism.gcs.actor.kill"
/* A driver's compiled DAGs: {"dags": [...]}, at compile (with the graph),
 * every second while their executions or state change, and at teardown. */
#define PRISM_SUBJECT_DAG_UPDATE "prism.gcs.dag.update"
/* The GCS's own inbox for the answers to its requests: PREFIX.<random hex>. */
#define PRISM_SUBJECT_GCS_REPLY_PREFIX "prism.gcs.actors."

/* The schedulers (queue "scheduler" for leases). */
#define PRISM_SUBJECT_SCHED_LEASE "prism.sched.lease"
/* An owner gives up lease requests waiting in a scheduler's queue (every replica hears it). */
#define PRISM_SUBJECT_SCHED_LEASE_CANCEL "prism.sched.lease.cancel"
#define PRISM_SUBJECT_SCHED_NODE "prism.sched.node"
#define PRISM_SUBJECT_SCHED_PG_PLACE "prism.sched.pg.place"

/* The dataservice: asked for its REST URL (the GCS forwards /api/v1/datasets*
 * there); the answer is {"url": URL}. */
#define PRISM_SUBJECT_DATA_ADDRESS "prism.data.address"

/* A cluster service (a def with `announce`: schedulers, the dataservice)
 * says it is there every PRISM_SERVICE_ANNOUNCE_MS while it serves:
 * {"service", "id", "address", "pid", "started_at", ...its own figures}; the
 * GCS lists them (GET /api/v1/services). */
#define PRISM_SUBJECT_SERVICE_ANNOUNCE "prism.service.announce"
#define PRISM_SERVICE_ANNOUNCE_MS 2000

/* Events anyone may follow. */
#define PRISM_SUBJECT_EVENT_NODE "prism.event.node"
#define PRISM_SUBJECT_EVENT_JOB "prism.event.job"
#define PRISM_SUBJECT_EVENT_ACTOR "prism.event.actor"
#define PRISM_SUBJECT_EVENT_PG "prism.event.placement_group"
#define PRISM_SUBJECT_EVENT_ACTOR_CALLS "prism.event.actor.calls"
/* A caller's calls to an actor still queued on its side (actor.c). */
#define PRISM_SUBJECT_EVENT_ACTOR_QUEUED "prism.event.actor.queued"
#define PRISM_SUBJECT_EVENT_TASKS "prism.event.tasks"
#define PRISM_SUBJECT_EVENT_OBJECTS "prism.event.objects"

/* The object stores' events. */
#define PRISM_SUBJECT_OBJECT_ADDED "prism.object.added"
#define PRISM_SUBJECT_OBJECT_REMOVED "prism.object.removed"
#define PRISM_SUBJECT_OBJECT_SPILLED "prism.object.spilled"
/* Each store's figures (arena use, spilled bytes), every STORE_REPORT_MS:
 * the GCS keeps them for the dashboard (GET /api/v1/metrics/history). */
#define PRISM_SUBJECT_STORE_REPORT "prism.store.report"

/* A node agent serves prism.node.<node_id>.<verb> for each of these verbs. */
#define PRISM_SUBJECT_NODE_PREFIX "prism.node."
#define PRISM_NODE_JOB_START "job.start"
#define PRISM_NODE_JOB_STOP "job.stop"
#define PRISM_NODE_JOB_STATUS "job.status"
#define PRISM_NODE_JOB_DELETE "job.delete"
#define PRISM_NODE_WORKER_LEASE "worker.lease"
#define PRISM_NODE_WORKER_RETURN "worker.return"
#define PRISM_NODE_WORKER_CHECK "worker.check"
#define PRISM_NODE_WORKER_BLOCKED "worker.blocked"
#define PRISM_NODE_WORKER_KILL "worker.kill"
#define PRISM_NODE_BUNDLE_RESERVE "bundle.reserve"
#define PRISM_NODE_BUNDLE_RETURN "bundle.return"

/* An owner's subject, prism.owner.<hex>; its requests' answers come on <that>.r,
 * and the answers to its lease requests that waited in a scheduler's queue on <that>.l. */
#define PRISM_SUBJECT_OWNER_PREFIX "prism.owner."
#define PRISM_SUBJECT_OWNER_REPLY_SUFFIX ".r"
#define PRISM_SUBJECT_OWNER_LEASE_SUFFIX ".l"

/* Room for any subject built below from IDs and verbs of this protocol. */
#define PRISM_SUBJECT_MAX 160

/* Each writes the subject into `out` (`n` bytes) and returns false when it
 * does not fit (`out` then holds a truncated, unusable name). */

/* prism.node.<node_id>.<verb>, verb one of PRISM_NODE_*. */
bool prism_subject_node(char *out, size_t n, const char *node_id, const char *verb);
/* prism.worker.<worker_id>.granted: the node agent tells a worker of a grant. */
bool prism_subject_worker_granted(char *out, size_t n, const char *worker_id);
/* prism.owner.<hex>, and with `reply` its answers' subject prism.owner.<hex>.r. */
bool prism_subject_owner(char *out, size_t n, const char *hex, bool reply);

#endif
