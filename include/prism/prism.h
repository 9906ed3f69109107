/* libprism: the C API of Prism for drivers and for task code.
 *
 * A driver connects to a cluster, submits tasks that return futures
 * (references to objects), and gets their values:
 *
 *   prism_client *c;
 *   if (prism_connect(NULL, &c) != PRISM_OK)        // address and token from the
 *       die(prism_last_error());                     // environment or $PRISM_HOME
 *   int64_t shape[] = {5, 5};
 *   prism_value *arg = prism_value_json("[5, 5]");
 *   prism_ref *o1, *o2, *o3;
 *   prism_submit(c, "builtin", "zeros", &arg, 1, NULL, &o1);
 *   prism_submit(c, "builtin", "zeros", &arg, 1, NULL, &o2);
 *   prism_value *args[] = {prism_value_ref(o1), prism_value_ref(o2)};
 *   prism_submit(c, "builtin", "add", args, 2, NULL, &o3);
 *   prism_value *result;
 *   prism_get(c, o3, 10000, &result);               // a 5x5 tensor of zeros
 *
 * Ownership: the process that submits a task owns the objects it returns.
 * An object lives while some prism_ref to it exists anywhere (here, in tasks
 * that take it, in processes it was passed to); releasing the last one frees
 * every copy in the cluster. If the owner exits, its objects are lost: gets
 * of them elsewhere fail with PRISM_ERR_OWNER_DIED.
 *
 * Memory rules: a function that returns a new prism_value or prism_ref gives
 * it to the caller, who frees it (prism_value_free, prism_ref_release).
 * Arguments are borrowed unless a comment says "takes".
 *
 * Calls: a call returns a prism_status; what it makes goes through
 * out-parameters, which come last (`prism_ref **out`, `prism_value **out`,
 * `returns`, `ready`, a caller's buffer as `buf, len`). A single out-pointer
 * is set to NULL when the call fails. A constructor that returns a pointer instead
 * (prism_value_json, prism_ref_dup, ...) returns NULL on failure, and
 * prism_last_status says why: PRISM_ERR_INVALID or PRISM_ERR_NO_MEMORY.
 *
 * Threads, per type (docs/api-c.md has the table):
 *   prism_client     several threads at once, any call; except prism_disconnect,
 *                    which runs alone: after every other call on the client has
 *                    returned and the refs it made (and values holding them)
 *                    are released.
 *   prism_ref        read-only: several threads may use one handle at once
 *                    (get, wait, dup, submit it); release it once, when no
 *                    other thread uses it.
 *   prism_actor      as a ref: several threads may call through one handle at
 *                    once (calls made at once have no order between them).
 *   prism_value      several threads may read one value; changing it
 *                    (prism_value_list_append, prism_value_free) needs it alone.
 *   prism_task_ctx   belongs to one running task: use it within that call.
 *   prism_last_error, prism_last_status: per thread. Everything else (status
 *   texts, versions, options initializers): any thread. */
#ifndef PRISM_PRISM_H
#define PRISM_PRISM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The version of this header. libprism is ABI-compatible within a major
 * version (its SONAME is libprism.so.MAJOR): a minor version only adds, a
 * patch changes no interface (docs/api-c.md). CMakeLists.txt reads these
 * three lines for the project's version: they are its one source. */
#define PRISM_VERSION_MAJOR 0
#define PRISM_VERSION_MINOR 1
#define PRISM_VERSION_PATCH 0

#define PRISM__STR2(x) #x
#define PRISM__STR(x) PRISM__STR2(x)
/* "MAJOR.MINOR.PATCH" */
#define PRISM_VERSION                                                                              \
    PRISM__STR(PRISM_VERSION_MAJOR)                                                                \
    "." PRISM__STR(PRISM_VERSION_MINOR) "." PRISM__STR(PRISM_VERSION_PATCH)
/* MAJOR * 1000000 + MINOR * 1000 + PATCH: compares in order */
#define PRISM_VERSION_NUMBER                                                                       \
    (PRISM_VERSION_MAJOR * 1000000 + PRISM_VERSION_MINOR * 1000 + PRISM_VERSION_PATCH)

/* What libprism exports. The library is built with hidden visibility: a
 * function without PRISM_API is not part of the API, whatever its name. */
#if defined(__GNUC__) || defined(__clang__)
#define PRISM_API __attribute__((visibility("default")))
#else
#define PRISM_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library running (which may be newer than the header a
 * program was built with, within the same major version). */
PRISM_API const char *prism_version(void); /* PRISM_VERSION of the library */
PRISM_API int prism_version_number(void);  /* PRISM_VERSION_NUMBER of the library */

typedef enum prism_status {
    PRISM_OK = 0,
    PRISM_ERR_INVALID,          /* a bad argument */
    PRISM_ERR_CONNECT,          /* the cluster cannot be reached */
    PRISM_ERR_TIMEOUT,          /* a get or wait ran out of time */
    PRISM_ERR_TASK,             /* the task failed: the value holds its name and message */
    PRISM_ERR_UNKNOWN_FUNCTION, /* no such package or function */
    PRISM_ERR_WORKER_DIED,      /* the task's worker died more often than its retries allow */
    PRISM_ERR_OBJECT_LOST,      /* every copy is gone and it cannot be rebuilt */
    PRISM_ERR_OWNER_DIED,       /* the object's owner exited */
    PRISM_ERR_CANCELLED,        /* the task was cancelled */
    PRISM_ERR_NO_MEMORY,        /* out of memory, here or in the object store */
    PRISM_ERR_INTERNAL,         /* a bug or an unexpected failure; see prism_last_error */
    PRISM_ERR_ACTOR_DIED,       /* the actor died (the error says why) before the call finished */
} prism_status;

/* A stable English text for a status. Never NULL. */
PRISM_API const char *prism_status_text(prism_status s);
/* What went wrong in the last failed call of this thread. Never NULL. */
PRISM_API const char *prism_last_error(void);
/* The status of the last failed call of this thread (the code of
 * prism_last_error's text); PRISM_OK before any. It is how a constructor
 * that returned NULL tells why: PRISM_ERR_INVALID (a bad argument) or
 * PRISM_ERR_NO_MEMORY. */
PRISM_API prism_status prism_last_status(void);

/* ---------- values ---------- */

typedef struct prism_value prism_value;
typedef struct prism_ref prism_ref;

typedef enum prism_value_kind {
    PRISM_VALUE_NULL = 0,
    PRISM_VALUE_JSON,   /* UTF-8 JSON text */
    PRISM_VALUE_BYTES,  /* raw bytes */
    PRISM_VALUE_TENSOR, /* dtype, shape and dense row-major data */
    PRISM_VALUE_LIST,   /* values, which may be references */
    PRISM_VALUE_REF,    /* a reference to an object */
    PRISM_VALUE_ERROR,  /* a task's failure: task name and message */
} prism_value_kind;

typedef enum prism_dtype {
    PRISM_F32 = 1,
    PRISM_F64,
    PRISM_I32,
    PRISM_I64,
    PRISM_U8,
} prism_dtype;

#define PRISM_MAX_DIMS 8

/* Constructors return a new value, or NULL: prism_last_status() is then
 * PRISM_ERR_INVALID (the reason each names) or PRISM_ERR_NO_MEMORY. */
PRISM_API prism_value *prism_value_null(void);
/* INVALID when `text` is NULL or not valid JSON. */
PRISM_API prism_value *prism_value_json(const char *text);
/* `data` is copied; it may be NULL only when `len` is 0 (else INVALID). */
PRISM_API prism_value *prism_value_bytes(const void *data, size_t len);
/* A tensor of `ndim` dimensions; `data` (may be NULL for zeros) is copied.
 * INVALID for an unknown dtype, `ndim` outside 0..PRISM_MAX_DIMS, a NULL
 * `shape` with `ndim` above 0, a negative dimension or a size that overflows. */
PRISM_API prism_value *prism_value_tensor(prism_dtype dtype, int ndim, const int64_t *shape,
                                          const void *data);
/* A tensor whose data is CUDA device memory on `device` (0-based), not
 * copied: `release(ud)` (may be NULL) runs when the value is freed. Such a
 * value travels only between the actors of a compiled DAG
 * (docs/dags.md#gpu-values); a put, a task's argument or return, an actor
 * call or a copy of it fails (PRISM_ERR_INVALID). prism_value_data gives
 * the device pointer. INVALID for a device outside 0-1023, a NULL
 * `dev_ptr`, or a dtype or shape prism_value_tensor refuses (the memory
 * then stays the caller's: `release` is not called). */
PRISM_API prism_value *prism_value_device_tensor(int device, prism_dtype dtype, int ndim,
                                                 const int64_t *shape, void *dev_ptr,
                                                 void (*release)(void *ud), void *ud);
/* The CUDA device a tensor's data is on, or -1 (host memory, or not a tensor). */
PRISM_API int prism_value_device(const prism_value *v);
PRISM_API prism_value *prism_value_list(void);
/* Appends to a list; takes `item`. Returns PRISM_ERR_INVALID if `list` is not a list. */
PRISM_API prism_status prism_value_list_append(prism_value *list, prism_value *item);
/* A value that stands for the object `ref` names (passing it to a task
 * passes the object; the task receives the object's value). INVALID when
 * `ref` is NULL. */
PRISM_API prism_value *prism_value_ref(const prism_ref *ref);
PRISM_API prism_value *prism_value_error(const char *task, const char *message);
/* A deep copy. INVALID when `v` is NULL. */
PRISM_API prism_value *prism_value_copy(const prism_value *v);
PRISM_API void prism_value_free(prism_value *v);

PRISM_API prism_value_kind prism_value_kind_of(const prism_value *v);
/* JSON text, bytes or tensor data. For values read from the object store the
 * pointer is into shared memory (zero-copy): valid as long as the value. */
PRISM_API const char *prism_value_json_text(const prism_value *v);
PRISM_API const void *prism_value_data(const prism_value *v, size_t *len);
PRISM_API prism_dtype prism_value_dtype(const prism_value *v);
PRISM_API int prism_value_ndim(const prism_value *v);
PRISM_API const int64_t *prism_value_shape(const prism_value *v);
PRISM_API size_t prism_value_list_size(const prism_value *v);
PRISM_API const prism_value *prism_value_list_get(const prism_value *v, size_t i);
/* The reference a REF value holds (borrowed from the value). */
PRISM_API const prism_ref *prism_value_get_ref(const prism_value *v);
PRISM_API const char *prism_value_error_task(const prism_value *v);
PRISM_API const char *prism_value_error_message(const prism_value *v);
/* Bytes per element of a dtype (0 for an unknown one). */
PRISM_API size_t prism_dtype_size(prism_dtype dtype);

/* ---------- the cluster ---------- */

/* A connection to a cluster: the owner of what it puts and submits.
 * Threads: any call on one client may run from several threads at once,
 * except prism_disconnect (see the top of this file). */
typedef struct prism_client prism_client;

/* Options structs: initialize them with their _INIT macro or _init()
 * function, then set fields by name. A field a later minor version adds
 * takes room from `reserved` (the struct's size never changes within a major
 * version) and its zero means what the version before did; calls reject
 * options whose `reserved` is not zero (PRISM_ERR_INVALID), so a struct left
 * uninitialized fails now rather than change meaning later (docs/api-c.md). */

/* A client keeps values above the inline size in its node's object store
 * ($PRISM_STORE_SOCKET, set for jobs and workers). A driver started by hand
 * on the machine of `prism up`, whose address (not given here) is that of
 * $PRISM_HOME/address, uses the store of that cluster's first node. Without
 * a store, large values stay in the driver and are read over HTTP. */
typedef struct prism_connect_options {
    const char *address;  /* GCS URL; default NULL: $PRISM_ADDRESS, else $PRISM_HOME/address */
    const char *token;    /* default NULL: $PRISM_TOKEN, else $PRISM_HOME/token */
    uint64_t reserved[8]; /* zero */
} prism_connect_options;

/* clang-format off */
#define PRISM_CONNECT_OPTIONS_INIT {.address = NULL, .token = NULL, .reserved = {0}}
/* clang-format on */
PRISM_API void prism_connect_options_init(prism_connect_options *opts);

/* Connects to the cluster; `opts` may be NULL for the defaults. A GCS that
 * does not answer (restarting) is asked again for up to 10 s; a refusal
 * (a wrong token) fails at once. */
PRISM_API prism_status prism_connect(const prism_connect_options *opts, prism_client **out);
/* Returns leases and frees everything; objects this client owns are freed.
 * Call it alone and last: no other call on `c` may be running, and the refs
 * and values (with references) it made are released before, since their
 * release uses the client. */
PRISM_API void prism_disconnect(prism_client *c);
/* How the cluster names this client as an owner: the `owner` of its tasks and
 * objects in GET /api/v1/tasks and GET /api/v1/objects (borrowed). */
PRISM_API const char *prism_client_owner(const prism_client *c);

/* Stores a value in the cluster; the caller owns the object. */
PRISM_API prism_status prism_put(prism_client *c, const prism_value *v, prism_ref **out);

/* Waits up to `timeout_ms` (-1: forever) for the object and returns its value.
 * A failed task gives PRISM_ERR_TASK and an ERROR value naming the task. */
PRISM_API prism_status prism_get(prism_client *c, const prism_ref *ref, int timeout_ms,
                                 prism_value **out);

/* What a bytes or tensor value is, without its data. */
typedef struct prism_value_info {
    prism_value_kind kind; /* PRISM_VALUE_BYTES or PRISM_VALUE_TENSOR */
    prism_dtype dtype;     /* a tensor's */
    int ndim;
    int64_t shape[PRISM_MAX_DIMS];
    size_t size; /* bytes of data */
} prism_value_info;

/* prism_get for a caller that only describes large values (the GCS's REST
 * answer for an object): a bytes or tensor value of more than `max_bytes`
 * held in another node's store is not copied here; `*out` stays NULL and
 * `*info` says what it is, read from the value's first bytes. Any other
 * value comes in `*out` as prism_get gives it. */
PRISM_API prism_status prism_get_or_describe(prism_client *c, const prism_ref *ref, int timeout_ms,
                                             size_t max_bytes, prism_value **out,
                                             prism_value_info *info);

/* Waits until `k` of the `n` objects are ready or `timeout_ms` passes.
 * `ready[i]` marks k ready ones (the first found, as Ray's num_returns: others
 * may be ready too), or on PRISM_ERR_TIMEOUT every one that is. */
PRISM_API prism_status prism_wait(prism_client *c, prism_ref *const *refs, size_t n, size_t k,
                                  int timeout_ms, bool *ready);

/* A second handle on the same object (counted as one more reference). NULL
 * with PRISM_ERR_INVALID when `ref` is NULL, or PRISM_ERR_NO_MEMORY. */
PRISM_API prism_ref *prism_ref_dup(const prism_ref *ref);
PRISM_API void prism_ref_release(prism_ref *ref);
/* The object's ID as 40 hex digits (borrowed from the ref). */
PRISM_API const char *prism_ref_id(const prism_ref *ref);

typedef enum prism_strategy {
    PRISM_STRATEGY_DEFAULT = 0,
    PRISM_STRATEGY_SPREAD,
    PRISM_STRATEGY_NODE_AFFINITY,
} prism_strategy;

/* The most returns one task or actor call may have. */
#define PRISM_MAX_RETURNS 65535

/* A placement group (see "placement groups" below); tasks and actors name one
 * in their options to run on its reserved bundles. */
typedef struct prism_placement_group prism_placement_group;

typedef struct prism_task_options {
    int num_returns;         /* 1-PRISM_MAX_RETURNS; default 1 */
    double num_cpus;         /* default 1 */
    double num_gpus;         /* default 0; below 1, a share of one device (0.25: four
                                share it), else a whole number of devices */
    double memory;           /* bytes; default 0 */
    const char *resources;   /* custom resources as a JSON object, e.g. {"accel": 1};
                                default NULL: none */
    int max_retries;         /* retries after worker or node death; default 3, -1 forever */
    bool retry_exceptions;   /* also retry application errors; default false */
    prism_strategy strategy; /* default PRISM_STRATEGY_DEFAULT */
    const char *node_id;     /* NODE_AFFINITY target; default NULL */
    bool soft;               /* NODE_AFFINITY may fall back to other nodes; default false */
    /* Run on a bundle of this group (borrowed; it must outlive the call), drawing
     * on the bundle's resources; default NULL: none */
    const prism_placement_group *placement_group;
    int64_t bundle_index; /* with placement_group: the bundle, from 0; -1 any; default -1 */
    uint64_t reserved[6]; /* zero */
} prism_task_options;

/* The defaults documented on each field. */
/* clang-format off */
#define PRISM_TASK_OPTIONS_INIT                                                               \
    {.num_returns = 1, .num_cpus = 1.0, .num_gpus = 0.0, .memory = 0.0, .resources = NULL,    \
     .max_retries = 3, .retry_exceptions = false, .strategy = PRISM_STRATEGY_DEFAULT,         \
     .node_id = NULL, .soft = false, .placement_group = NULL, .bundle_index = -1,             \
     .reserved = {0}}
/* clang-format on */
PRISM_API void prism_task_options_init(prism_task_options *opts);

/* Submits `package`/`function` with `nargs` arguments (borrowed). `opts` may be
 * NULL for the defaults. `returns` receives num_returns references. */
PRISM_API prism_status prism_submit(prism_client *c, const char *package, const char *function,
                                    prism_value *const *args, size_t nargs,
                                    const prism_task_options *opts, prism_ref **returns);

/* Why the task that produces `ref` has not run yet (for people): copies a
 * reason such as "waiting for resources: no node has GPU 1" into `buf`.
 * Returns PRISM_OK with an empty string when it is not waiting. */
PRISM_API prism_status prism_pending_reason(prism_client *c, const prism_ref *ref, char *buf,
                                            size_t len);

/* Cancels the task (or actor call) that produces `ref`: a queued one never
 * runs; a running one is interrupted only when `force` (its worker is
 * killed; an actor is restarted as after a crash). */
PRISM_API prism_status prism_cancel(prism_client *c, const prism_ref *ref, bool force);

/* ---------- actors ----------
 *
 * An actor is an instance of a class from a package (PRISM_ACTOR_* in
 * task.h) living in a worker of its own. Calls through a handle run in the
 * order this process made them and return futures like tasks:
 *
 *   prism_actor *counter;
 *   prism_actor_create(c, "builtin", "Counter", NULL, 0, NULL, &counter);
 *   prism_ref *r1, *r2;
 *   prism_actor_call(c, counter, "inc", NULL, 0, 1, &r1);
 *   prism_actor_call(c, counter, "inc", NULL, 0, 1, &r2);  // get: 1, then 2
 *
 * The GCS keeps the actor's state and restarts it (fresh state) when its
 * worker dies, up to max_restarts. An actor that is not detached dies with
 * the process that created it. A handle is passed to tasks and other actors
 * as its ID (prism_actor_id), which they open with prism_actor_open.
 *
 * Threads: a handle does not change once made; several threads may call
 * through it at once (calls made at once from different threads have no
 * order between them). Release it once, when no thread uses it. */

typedef struct prism_actor prism_actor;

typedef struct prism_actor_options {
    double num_cpus;         /* held for the actor's life; default 1 */
    double num_gpus;         /* default 0; below 1, a share of one device, else whole
                                devices (as prism_task_options) */
    double memory;           /* bytes; default 0 */
    const char *resources;   /* custom resources as a JSON object; default NULL: none */
    const char *name;        /* to find it with prism_actor_get; default NULL: unnamed */
    const char *ns;          /* the name's namespace; default NULL: $PRISM_NAMESPACE,
                                else "default" */
    bool detached;           /* outlives its creator; ends only when killed; default false */
    int max_restarts;        /* restarts after its worker dies; default 0, -1 forever */
    int max_task_retries;    /* pushes again of calls in flight when it died; default 0,
                                -1 forever */
    int max_concurrency;     /* calls running at once (threads), 1-1024; default 1: one at
                                a time, in order */
    prism_strategy strategy; /* default PRISM_STRATEGY_DEFAULT */
    const char *node_id;     /* NODE_AFFINITY target; default NULL */
    bool soft;               /* NODE_AFFINITY may fall back to other nodes; default false */
    /* Live on a bundle of this group (borrowed), as in prism_task_options;
     * removing the group kills the actor; default NULL: none */
    const prism_placement_group *placement_group;
    int64_t bundle_index; /* with placement_group: the bundle, from 0; -1 any; default -1 */
    uint64_t reserved[6]; /* zero */
} prism_actor_options;

/* The defaults documented on each field. */
/* clang-format off */
#define PRISM_ACTOR_OPTIONS_INIT                                                              \
    {.num_cpus = 1.0, .num_gpus = 0.0, .memory = 0.0, .resources = NULL, .name = NULL,        \
     .ns = NULL, .detached = false, .max_restarts = 0, .max_task_retries = 0,                 \
     .max_concurrency = 1, .strategy = PRISM_STRATEGY_DEFAULT, .node_id = NULL, .soft = false, \
     .placement_group = NULL, .bundle_index = -1, .reserved = {0}}
/* clang-format on */
PRISM_API void prism_actor_options_init(prism_actor_options *opts);

/* Creates an actor of `package`/`cls` with constructor arguments `args`
 * (borrowed; references are resolved first). `opts` may be NULL for the
 * defaults. Returns once the GCS has it; the constructor runs in the
 * background (calls wait for it). */
PRISM_API prism_status prism_actor_create(prism_client *c, const char *package, const char *cls,
                                          prism_value *const *args, size_t nargs,
                                          const prism_actor_options *opts, prism_actor **out);

/* Calls `method` with `nargs` arguments (borrowed); `returns` receives
 * `num_returns` references. A call to a dead actor fails with
 * PRISM_ERR_ACTOR_DIED in its objects. */
PRISM_API prism_status prism_actor_call(prism_client *c, prism_actor *a, const char *method,
                                        prism_value *const *args, size_t nargs, int num_returns,
                                        prism_ref **returns);

/* Finds a named actor (`ns` NULL: as in prism_actor_options). PRISM_ERR_INVALID
 * when no live actor has that name. */
PRISM_API prism_status prism_actor_get(prism_client *c, const char *name, const char *ns,
                                       prism_actor **out);

/* A handle on the actor with this ID (as prism_actor_id gives). */
PRISM_API prism_status prism_actor_open(prism_client *c, const char *actor_id, prism_actor **out);

/* Kills the actor: with `no_restart` it is DEAD for good, else it restarts
 * as after a crash (when max_restarts allows). */
PRISM_API prism_status prism_actor_kill(prism_client *c, const prism_actor *a, bool no_restart);

/* The actor's ID as 32 hex digits (borrowed from the handle). */
PRISM_API const char *prism_actor_id(const prism_actor *a);
PRISM_API void prism_actor_release(prism_actor *a);

/* ---------- placement groups ----------
 *
 * A placement group reserves bundles of resources together, all or none,
 * by a strategy (docs/placement-groups.md), as Ray's placement_group:
 *
 *   prism_bundle b[2] = {PRISM_BUNDLE_INIT, PRISM_BUNDLE_INIT};  // CPU 1 each
 *   prism_placement_group *pg;
 *   prism_placement_group_create(c, b, 2, PRISM_PG_STRICT_SPREAD, NULL, &pg);
 *   prism_placement_group_wait(c, pg, 30000);   // PRISM_OK once CREATED
 *   prism_task_options o = PRISM_TASK_OPTIONS_INIT;
 *   o.placement_group = pg; o.bundle_index = 1;
 *
 * The GCS keeps the group until it is removed, or until the process that
 * made it exits (unless `detached`, as Ray's lifetime "detached"). Tasks and
 * actors in it draw on the bundles' resources, not the nodes' free pool;
 * removing it kills them. Threads: a handle does not change once made. */

typedef enum prism_pg_strategy {
    PRISM_PG_PACK,          /* as few nodes as fit, best effort */
    PRISM_PG_SPREAD,        /* distinct nodes where possible, best effort */
    PRISM_PG_STRICT_PACK,   /* every bundle on one node */
    PRISM_PG_STRICT_SPREAD, /* every bundle on a different node */
} prism_pg_strategy;

typedef enum prism_pg_state {
    PRISM_PG_PENDING,      /* not every bundle is reserved yet (see the reason) */
    PRISM_PG_CREATED,      /* every bundle is reserved */
    PRISM_PG_RESCHEDULING, /* a node holding bundles died; those are being reserved again */
    PRISM_PG_REMOVED,      /* removed: final */
} prism_pg_state;

/* A bundle: the amounts, as in prism_task_options. */
typedef struct prism_bundle {
    double num_cpus;       /* default 1 */
    double num_gpus;       /* default 0 */
    double memory;         /* bytes; default 0 */
    const char *resources; /* custom resources as a JSON object; default NULL: none */
} prism_bundle;

/* clang-format off */
#define PRISM_BUNDLE_INIT {.num_cpus = 1.0, .num_gpus = 0.0, .memory = 0.0, .resources = NULL}
/* clang-format on */

typedef struct prism_placement_group_options {
    const char *name;     /* a label to find it by (prism pg list); default NULL: none */
    bool detached;        /* outlives this process (removed only when asked); default
                             false: removed when the process that made it exits, as Ray's */
    uint64_t reserved[7]; /* zero */
} prism_placement_group_options;

/* clang-format off */
#define PRISM_PLACEMENT_GROUP_OPTIONS_INIT {.name = NULL, .detached = false, .reserved = {0}}
/* clang-format on */
PRISM_API void prism_placement_group_options_init(prism_placement_group_options *opts);

/* Creates a group of `n` bundles (1-256, copied) placed by `strategy`.
 * Returns once the GCS has it, PENDING: wait for it with
 * prism_placement_group_wait. `opts` may be NULL for the defaults. */
PRISM_API prism_status prism_placement_group_create(prism_client *c, const prism_bundle *bundles,
                                                    size_t n, prism_pg_strategy strategy,
                                                    const prism_placement_group_options *opts,
                                                    prism_placement_group **out);

/* Waits up to `timeout_ms` for every bundle to be reserved: PRISM_OK once
 * CREATED, PRISM_ERR_TIMEOUT (prism_last_error has the reason it waits),
 * PRISM_ERR_INVALID when the group was removed. */
PRISM_API prism_status prism_placement_group_wait(prism_client *c, const prism_placement_group *pg,
                                                  int timeout_ms);

/* The group's state now, and why it is not CREATED (`reason`, `len` bytes;
 * may be NULL) or an empty string. */
PRISM_API prism_status prism_placement_group_state(prism_client *c, const prism_placement_group *pg,
                                                   prism_pg_state *state, char *reason, size_t len);

/* Removes the group: its bundles are returned and what runs in them killed. */
PRISM_API prism_status prism_placement_group_remove(prism_client *c,
                                                    const prism_placement_group *pg);

/* A handle on the group with this ID (as prism_placement_group_id gives). */
PRISM_API prism_status prism_placement_group_open(prism_client *c, const char *id,
                                                  prism_placement_group **out);

/* The group's ID as 32 hex digits (borrowed from the handle). */
PRISM_API const char *prism_placement_group_id(const prism_placement_group *pg);
/* Frees the handle (the group stays until removed). */
PRISM_API void prism_placement_group_release(prism_placement_group *pg);

#ifdef __cplusplus
}
#endif
#endif
