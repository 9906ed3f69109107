/* prism-objectstore: the state of the service, in one struct, shared by the
 * Unix-socket server (os_server.c, one epoll loop on the main thread), the
 * HTTP routes (os_http.c, a thread per connection) and transfers between
 * nodes (os_pull.c). Everything below `store.mu` is guarded by it. */
#ifndef OBJECTSTORE_H
#define OBJECTSTORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "os_copies.h"
#include "os_peers.h"
#include "os_store.h"
#include "prism_bus.h"
#include "prism_http.h"
#include "prism_metrics.h"

typedef struct os_conn os_conn;
typedef struct os_pull os_pull;
typedef struct os_owners os_owners;

typedef struct objectstore {
    os_store store; /* its `mu` guards everything in this struct that changes */

    /* settings (read-only after start) */
    char *socket_path;
    char *node_id;
    char *token; /* NULL when auth is off (borrowed from the service skeleton) */
    char *url;   /* the REST URL, once serving: clients learn it in HELLO */
    uint64_t max_put;

    /* Unix-socket server; touched by the loop thread, and by any thread that
     * wakes a waiting get (under mu) */
    int listen_fd, epfd, sig_fd, wake_fd;
    os_conn *conns;
    bool resume_pending, moved_pending;

    /* transfers in flight, merged by object ID; `pull_cv` signals their end */
    os_pull *pulls;
    pthread_cond_t pull_cv;
    os_peers *peers;   /* the only sources a pull may name */
    os_copies *copies; /* where other stores hold copies of large objects */
    /* pulls of one large object this store serves at once; others are told
     * to try again (a copy made meanwhile may serve them: os_pull.c) */
    int64_t max_uploads;

    prism_http_server *http;
    prism_metrics *metrics;
    prism_bus *bus;
    os_owners *owners; /* the thread asking owners what they still hold */
    prism_metric *m_evictions, *m_spills, *m_spilled_bytes, *m_restores, *m_restored_bytes,
        *m_transfer_in, *m_transfer_out, *m_disk_errors;
    prism_store_stats last; /* counters already added to the metrics */
    uint64_t last_disk_errors;
} objectstore;

/* os_server.c */
int os_server_listen(objectstore *os, char *err, size_t errlen);
/* Serves until SIGTERM or SIGINT, calling `tick(arg)` after each round of
 * events and at the latest when the milliseconds it last returned are over
 * (prism_service_tick: the periodic jobs, and when the next is due). */
void os_server_run(objectstore *os, int (*tick)(void *arg), void *arg);
/* Closes every connection (dropping their references) and the socket. */
void os_server_close(objectstore *os);
/* Answers the gets waiting for `o`, which was just sealed. With mu held. */
void os_server_sealed(objectstore *os, const os_object *o);
/* A disk job ended: the requests parked for one run again (on the loop).
 * With mu held, from any thread. */
void os_server_moved(objectstore *os);
/* Runs `len` bytes of requests as a new connection on `fd` would (replies
 * are queued, not sent; only HELLO writes to `fd`), then drops the
 * connection as if its client went away. Returns -1 on a protocol error.
 * The fuzz target's way in: the parsing is the server's own. */
int os_server_feed(objectstore *os, int fd, const uint8_t *data, size_t len);

/* os_http.c: the REST routes (`ctx` is the objectstore) */
extern const prism_http_route os_routes[];
extern const size_t os_nroutes;
/* The body limit of `route`: --max-put for puts, else the table's. */
size_t os_http_body_limit(void *ctx, const prism_http_route *route);
/* The JSON description of a sealed object (GET .../info, pull replies). With mu held. */
json_t *os_http_object_json(objectstore *os, const os_object *o);

/* os_pull.c */
void os_pull_handler(prism_http_req *req, void *ctx);

/* os_owners.c: every `interval_ms`, asks the owners of the objects here what
 * they still hold and deletes the rest (nothing without NATS, or with
 * interval 0: `*out` NULL). Returns 0, or -1 when the thread cannot start. */
int os_owners_start(os_owners **out, objectstore *os, int interval_ms);
/* Stops the thread (waiting for a round in progress) and frees it. NULL: no-op. */
void os_owners_stop(os_owners *w);

#endif
