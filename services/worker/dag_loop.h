/* An actor's part of a compiled DAG (docs/dags.md#the-actor-loop): a thread
 * that reads the actor's input channels, runs its methods and writes their
 * outputs, started by the reserved method __prism_dag_start and stopped by
 * __prism_dag_stop (runtime.c). */
#ifndef PRISM_WORKER_DAG_LOOP_H
#define PRISM_WORKER_DAG_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "prism/task.h"

typedef struct dag_loop dag_loop;

/* What the loop needs of the runtime: the actor, and how to find its methods. */
typedef struct dag_loop_env {
    void *state; /* the actor's */
    const char *cls;
    prism_client *(*client)(prism_task_ctx *ctx); /* the task context's */
    void *runtime;
    prism_actor_method_fn (*resolve)(void *ud, const char *method, char *err, size_t n);
    void *ud;
    const char *host; /* this node's address: TCP edges from other nodes are listened for on it */
} dag_loop_env;

/* __prism_dag_listen({"dag": ID, "in": [[node, reader], ...]}), the first
 * call of a compile: a listener on env->host for each argument position
 * whose channel may come from another node. Makes a loop not started yet in `*out` (which must be
 * NULL) and sets `*reply` (heap JSON) to {"node": this node's ID, "addrs":
 * ["host:port", ...]}. 0, or -1 with `err`. A loop whose start does not
 * come within twice the spec's "timeout_ms" (its driver died) counts as
 * ended (dag_loop_ended): the actor takes ordinary calls and DAGs again. */
int dag_loop_listen(dag_loop **out, const char *spec, const dag_loop_env *env, char **reply,
                    char *err, size_t errlen);
/* Parses the start call's JSON (its nodes' arguments: [node, reader] for a
 * channel, {"const": k} for consts[k], copied), fetches the shared-memory channels from the
 * driver's rendezvous socket, makes those it writes to readers of its own
 * node (not the driver's) and serves them on a rendezvous socket of its own
 * (a thread, until each reader came, or stop or timeout), fetches those the
 * other workers of its node made, connects the TCP ones (inputs: one proven
 * connection per listener; outputs: to their readers' listeners) and starts
 * the thread. `*out` is NULL, or the loop dag_loop_listen made for the same
 * DAG (freed on failure). 0, or -1 with `err`. `env` is copied; what it
 * points to outlives the loop. */
int dag_loop_start(dag_loop **out, const char *spec, const prism_value *const *consts,
                   size_t nconsts, const dag_loop_env *env, char *err, size_t errlen);
/* The DAG's ID (32 hex digits). */
const char *dag_loop_id(const dag_loop *l);
/* The loop's health and its inputs' latency, for the actor's reports to
 * the GCS (docs/dags.md#visible-state), from any thread while the loop
 * lives: {"dag": ID, "state": "LISTENING" | "RUNNING" | "ENDED",
 * "executions": passes done, "error": why it ended, or null, "inputs":
 * [[graph node, k, histogram], ...], "values": {"read_in_place": n, ...}}
 * (the node's k-th channel: constant arguments have none; "values" counts
 * what became of the values read and written: docs/dags.md#visible-state).
 * NULL when out of memory. */
json_t *dag_loop_report(const dag_loop *l);
/* Its passes done (each one execution through the actor's nodes). */
uint64_t dag_loop_executions(const dag_loop *l);
/* Whether the thread ended by itself (the driver closed the input, or a
 * peer died): the actor may take ordinary calls again once it is stopped. */
bool dag_loop_ended(const dag_loop *l);
/* Stops the thread (it ends within a wait slice, or when the method running
 * returns), then frees the channels. NULL is a no-op. */
void dag_loop_stop(dag_loop *l);

#endif
