/* The context a task function is handed (include/prism/task.h): made by the
 * worker runtime (services/worker), read by the task calls libprism exports,
 * so that task code links against libprism alone. Not part of the public API. */
#ifndef PRISM_TASK_CTX_H
#define PRISM_TASK_CTX_H

#include "prism/task.h"

struct prism_task_ctx {
    /* The runtime's own client (it owns what tasks put and submit), made on
     * first use; NULL when the cluster cannot be reached. */
    prism_client *(*client)(prism_task_ctx *ctx);
    void *runtime;  /* the runtime's state, for `client` */
    char name[256]; /* "package/function" or "Class.method" */
    char *error;    /* set by prism_task_fail; the runtime frees it */
    /* Memory in the object store for return `index` when it will be a 1-D
     * uint8 tensor of exactly `len` bytes (a data block): a task that makes
     * its return there, and returns a value whose data is that memory, is
     * not copied. NULL (no store, a small value, one already taken): the
     * task uses its own memory. Set by the worker runtime only. */
    void *(*return_space)(prism_task_ctx *ctx, uint16_t index, size_t len);
    void *call; /* the runtime's state of this call (calls may run at once) */
    /* The call's returns (the function's `returns`), for
     * prism_task_return_bytes; NULL where the call has none (a constructor). */
    prism_value **returns;
    size_t nreturns;
    /* Memory for return `index` as `len` bytes, where the runtime would
     * copy that value to, with *ret set to a value standing for it (the
     * runtime's own way of telling it when the function returns). NULL:
     * not here (the bytes go into a value of their own). May be NULL. */
    void *(*return_bytes)(prism_task_ctx *ctx, size_t index, size_t len, prism_value **ret);
    /* Per return, the bytes value prism_task_return_bytes made itself (not
     * through return_bytes); NULL until it makes one. */
    prism_value **made;
};

/* After the function returned (whatever it returned), before its returns
 * are read: frees what prism_task_return_bytes made that the function
 * replaced in `returns`, and forgets the rest (now the returns'). */
void prism__task_ctx_settle(prism_task_ctx *ctx);

#endif
