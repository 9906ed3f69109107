/* Writing task functions for Prism.
 *
 * Task code is C in a shared library (a package). Each function is declared
 * with PRISM_TASK and receives its arguments as values — a reference argument
 * arrives resolved to its object's value, read zero-copy from the node's
 * object store when it is large — and fills its return values:
 *
 *   #include <prism/task.h>
 *
 *   PRISM_TASK(double_it)
 *   {
 *       if (nargs != 1 || prism_value_kind_of(args[0]) != PRISM_VALUE_JSON)
 *           return prism_task_fail(ctx, "double_it takes one JSON number");
 *       double x = atof(prism_value_json_text(args[0]));
 *       char out[64];
 *       snprintf(out, sizeof out, "%.17g", 2 * x);
 *       returns[0] = prism_value_json(out);
 *       return PRISM_OK;
 *   }
 *
 * Build it with `cc -shared -fPIC`, upload it with `prism package upload`, and
 * submit it by the package's sha256 and the function's name. A task may use
 * the cluster itself (nested tasks, put, get) through prism_task_client(ctx).
 *
 * Returns: the function sets returns[0..nreturns-1] (values it gives away);
 * a slot left NULL returns null. Arguments stay owned by the runtime. */
#ifndef PRISM_TASK_H
#define PRISM_TASK_H

#include "prism.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct prism_task_ctx prism_task_ctx;

typedef prism_status (*prism_task_fn)(prism_task_ctx *ctx, const prism_value *const *args,
                                      size_t nargs, prism_value **returns, size_t nreturns);

/* Defines a task function exported as `prism_task__NAME`, the symbol workers look up. */
#define PRISM_TASK(name)                                                                           \
    __attribute__((visibility("default")))                                                         \
    prism_status prism_task__##name(prism_task_ctx *ctx, const prism_value *const *args,           \
                                    size_t nargs, prism_value **returns, size_t nreturns)

/* Actor classes: a constructor that makes the state, methods that get it,
 * and a destructor. The worker looks the symbols up by class and method name
 * (docs/actors.md has an example):
 *
 *   PRISM_ACTOR_INIT(Counter)      { ... *state = calloc(1, 8); return PRISM_OK; }
 *   PRISM_ACTOR_METHOD(Counter, inc) { long *n = state; ... returns[0] = ...; }
 *   PRISM_ACTOR_FREE(Counter)      { free(state); }
 *
 * With max_concurrency above 1 methods run on several threads at once and
 * must guard the state themselves. */
typedef prism_status (*prism_actor_init_fn)(prism_task_ctx *ctx, const prism_value *const *args,
                                            size_t nargs, void **state);
typedef prism_status (*prism_actor_method_fn)(prism_task_ctx *ctx, void *state,
                                              const prism_value *const *args, size_t nargs,
                                              prism_value **returns, size_t nreturns);
typedef void (*prism_actor_free_fn)(void *state);

#define PRISM_ACTOR_INIT(cls)                                                                      \
    __attribute__((visibility("default"))) prism_status prism_actor_init__##cls(                   \
        prism_task_ctx *ctx, const prism_value *const *args, size_t nargs, void **state)

#define PRISM_ACTOR_METHOD(cls, method)                                                            \
    __attribute__((visibility("default"))) prism_status prism_actor_method__##cls##__##method(     \
        prism_task_ctx *ctx, void *state, const prism_value *const *args, size_t nargs,            \
        prism_value **returns, size_t nreturns)

/* Optional: a class without one frees nothing. */
#define PRISM_ACTOR_FREE(cls)                                                                      \
    __attribute__((visibility("default"))) void prism_actor_free__##cls(void *state)

/* A task's context is the runtime's, valid during the one call it was passed
 * to: use it within that call (from its thread, or from threads the call
 * waits for), never after. The client it gives is shared by every task of
 * the worker and, like any client, may be used from several threads. */

/* The client of the worker running this task, for nested calls; NULL when
 * the worker cannot reach the cluster. */
PRISM_API prism_client *prism_task_client(prism_task_ctx *ctx);
/* The task's name ("package/function"). */
PRISM_API const char *prism_task_name(prism_task_ctx *ctx);
/* Return `index` as a bytes value of `len` bytes that the function writes
 * in place, rather than making a value the runtime then copies:
 *
 *   uint8_t *out = prism_task_return_bytes(ctx, 0, n);
 *   if (!out)
 *       return prism_task_fail(ctx, "%s", prism_last_error());
 *   produce(out, n);
 *   return PRISM_OK;
 *
 * The memory is where the value is going: in a compiled DAG, the slot of
 * the node's output channel (nothing allocated, nothing copied, when the
 * value fits max_buf_size); for a task's or an actor call's return larger
 * than the frames carry inline, the object in the node's store. Anywhere
 * else it is a bytes value's own memory. It is the function's to write
 * until it returns: returns[index] then stands for it (leave it as it is;
 * a value put there instead replaces it, copied the usual way). A function
 * that fails drops it. NULL, with prism_last_error set: an index past
 * nreturns or one already set (PRISM_ERR_INVALID), no memory. */
PRISM_API void *prism_task_return_bytes(prism_task_ctx *ctx, size_t index, size_t len);
/* Fails the task with a message (an application error): returns PRISM_ERR_TASK. */
PRISM_API prism_status prism_task_fail(prism_task_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif
