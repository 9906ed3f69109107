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
};

#endif
