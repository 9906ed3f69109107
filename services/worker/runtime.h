/* The worker runtime: serves owners' direct connections and runs their tasks
 * (runtime.c), with the built-in package (builtin.c). main.c is a thin
 * service around it. */
#ifndef PRISM_WORKER_RUNTIME_H
#define PRISM_WORKER_RUNTIME_H

#include "prism/task.h"

typedef struct prism_worker_config {
    const char *worker_id, *node_id;
    const char *socket_path; /* Unix socket to listen on */
    const char *host;        /* TCP address to listen on (port chosen by the kernel) */
    const char *store_socket, *store_address; /* the node's object store (may be NULL) */
    const char *gcs_address, *nats_url, *token;
    const char *package_dir; /* downloaded packages are cached here */
    int ready_fd;            /* the addresses are written here once listening; -1: none */
} prism_worker_config;

/* Runs until SIGTERM/SIGINT (blocked by the caller beforehand). Returns 0 on a
 * clean stop, or -1 with `err` when it could not start. */
int prism_worker_run(const prism_worker_config *cfg, char *err, size_t errlen);

/* Built-in task functions (package "builtin"): NULL when unknown. */
prism_task_fn prism__builtin_find(const char *name);
/* Built-in actor classes: false when `cls` is unknown. */
bool prism__builtin_actor(const char *cls, prism_actor_init_fn *init, prism_actor_free_fn *fr);
prism_actor_method_fn prism__builtin_actor_method(const char *cls, const char *method);

#endif
