/* The worker runtime: one thread, one epoll loop. Owners connect (Unix socket
 * on the node, TCP from elsewhere), prove they hold the cluster's secret
 * (wire.h), say HELLO with their lease, and push tasks; the worker runs them
 * in arrival order and answers DONE on the same connection. When an owner's
 * connection closes, the worker gives the lease back to its node agent.
 *
 * What a connection may do (docs/security.md): nothing before AUTH; with a
 * lease that the node agent confirms it granted to that owner for this
 * worker, anything; without one (an actor's callers), only calls to the actor
 * this worker hosts. */
#include "runtime.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"
#include "codec.h"
#include "dag_loop.h"
#include "data_ops.h"
#include "prism_fs.h"
#include "prism_httpc.h"
#include "prism_log.h"
#include "prism_net.h"
#include "prism_sha256.h"
#include "prism_subjects.h"
#include "prism_time.h"
#include "prism_wire.h"
#include "prism_wire_conn.h"
#include "task_ctx.h"

#define CLIENT_CONNECT_WAIT_MS 5000
#define WORKER_SPIN_NS 50000
/* Idle this long after its last task, the worker gives back the memory it
 * kept for the next one: blocks' spare buffers and freed heap (the heap
 * keeps up to 128 MiB freed: main.c). */
#define WORKER_TRIM_AFTER_MS 5000
#define WORKER_IDLE_WAIT_MS 5000 /* the loop's longest sleep (idle_wait_ms) */
#define AUTH_DEADLINE_MS 5000    /* a peer that has not proved itself by then is dropped */
#define MAX_UNAUTHED 64          /* connections still in the handshake; the oldest goes first */
#define MAX_CONNS 1024
#define LEASE_CHECK_MS 2000
/* A stored argument is sealed before its owner names it (here, or pulled
 * here first): one missing now is gone (its store restarted), not late. */
#define ARG_GET_MS 5000
/* DONE frames of a burst go out together (one write, one wake-up of the
 * owner): a DONE waits only while the next job of the same connection, of
 * the same function, is already queued here and the job just run was short,
 * and never for more than HOLD_FRAMES frames or HOLD_NS (the owner's window
 * refills as they go). */
#define HOLD_FRAMES 32
#define HOLD_BYTES 65536
#define HOLD_JOB_NS 100000
#define HOLD_NS 1000000

typedef struct conn {
    int fd;
    wire_tls *tls;  /* on the TCP port of a worker with a certificate */
    bool tls_ready; /* its TLS handshake is done (and CHALLENGE sent) */
    char *lease_id, *owner;
    bool authed; /* AUTH checked */
    bool leased; /* HELLO named a lease the node agent granted to this owner here */
    uint8_t nonce[WIRE_NONCE_BYTES];
    int64_t accepted_ms;
    prism_buf in;
    /* Calls of a concurrent actor run on executor threads: each holds its
     * connection (users, under the pool lock) and sends under send_lock; a
     * connection that closes meanwhile is freed by the last of them. A TLS
     * session takes one thread at a time: its reads take send_lock too. */
    int users;
    bool gone;
    pthread_mutex_t send_lock;
    struct conn *next;
} conn;

typedef struct job {
    conn *from;
    uint8_t type;   /* WIRE_PUSH or WIRE_ACTOR_CREATE */
    uint8_t *frame; /* its payload */
    size_t len;
    struct job *next;
} job;

/* The actor this worker is dedicated to, once ACTOR_CREATE succeeded. */
typedef struct actor_host {
    char id[PRISM_ID_HEX_LEN + 1];
    char *cls;
    char *lease; /* the lease it was created with (the GCS may kill by it) */
    void *lib;   /* the package (owned by the package list); NULL for builtin */
    void *state;
    prism_actor_free_fn free_fn;
    /* Calls for the GCS's view (prism.event.actor.calls): taken, finished. */
    uint64_t taken, done;
    uint64_t reported_taken, reported_done;
    int64_t reported_ms;
    /* Its compiled DAG's loop, as last seen by report_calls: the passes, and
     * when (wall ms) they last changed. */
    char dag_seen[PRISM_ID_HEX_LEN + 1];
    uint64_t dag_passes;
    int64_t dag_active_at;
    char dag_state;
} actor_host;

typedef struct package {
    char sha[PRISM_SHA256_HEX_LEN + 1];
    void *handle;
    struct package *next;
} package;

/* The store object a running task makes a return in (ctx->return_space):
 * one per call, since a threaded actor runs several at once. */
typedef struct ret_space {
    const prism_task_id *task; /* the task running; NULL between tasks */
    const char *owner;
    bool made;
    bool bytes;       /* a bytes value's head, else a 1-D uint8 tensor's */
    prism_value view; /* bytes: the value standing for them in the task's returns (not freed) */
    uint16_t index;
    prism_object_id id;
    uint8_t *data;
    size_t len;
    uint64_t size;
} ret_space;

typedef struct worker_rt {
    const prism_worker_config *cfg;
    int epfd, sigfd, unix_fd, tcp_fd;
    bool tls; /* the TCP port speaks TLS only */
    uint8_t key[WIRE_KEY_BYTES];
    conn *conns;
    int nconns, nunauthed;
    int64_t next_reap_ms;
    /* The last grant the node agent announced (prism.worker.<id>.granted),
     * written by the bus's thread: a HELLO naming it needs no question. */
    pthread_mutex_t grant_lock;
    char granted_lease[128], granted_owner[160];
    int64_t granted_ms; /* when announced */
    bool grant_used;    /* a HELLO named it */
    job *queue, *queue_tail;
    /* DONE frames of serial jobs not sent yet, all for held_conn (run_next). */
    prism_buf held;
    conn *held_conn;
    int held_frames;
    int64_t held_since_ns;
    pthread_t main_thread; /* the loop's: it alone touches `held` */
    package *packages;
    prism_store *store;
    prism_bus *bus;
    prism_client *client;      /* for nested calls, made on first use */
    const char *current_lease; /* of the task running now */
    actor_host *actor;
    pthread_mutex_t client_lock; /* executors may make the client on first use */
    /* The compiled DAG the actor is in (dag_loop.h): ordinary calls are
     * refused while it runs. Under dag_lock (calls may run on executors). */
    pthread_mutex_t dag_lock;
    dag_loop *dag;
    /* Executors of an actor with max_concurrency above 1. */
    pthread_t *threads;
    int nthreads;
    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cond;
    job *pool_queue, *pool_tail;
    bool pool_stop;
    bool stop;
} worker_rt;

/* ---------- task context ---------- */

/* The worker's own client: it owns what its tasks put and submit, and tracks
 * the references its tasks borrow. Made at start, or on first use when the
 * cluster could not be reached then; a task's first use keeps trying for
 * `wait_ms` (CLIENT_CONNECT_WAIT_MS: as long as a node's store or the GCS
 * takes to be restarted), so that it does not fail for a moment's outage. */
static prism_client *worker_client(worker_rt *w, int wait_ms)
{
    pthread_mutex_lock(&w->client_lock);
    if (!w->client && w->cfg->gcs_address && *w->cfg->gcs_address) {
        prism_connect_options o = {.address = w->cfg->gcs_address, .token = w->cfg->token};
        int64_t deadline = prism_mono_ms() + wait_ms;
        prism_status st;
        while ((st = prism__connect_sharing_store(&o, w->store, &w->client)) != PRISM_OK &&
               prism_mono_ms() < deadline)
            prism_sleep_ms(100);
        if (st != PRISM_OK)
            w->client = NULL;
    }
    pthread_mutex_unlock(&w->client_lock);
    return w->client;
}

static const char *self_addr(const worker_rt *w) { return w->client ? w->client->self_addr : NULL; }

static prism_client *ctx_client(prism_task_ctx *ctx)
{
    return worker_client(ctx->runtime, CLIENT_CONNECT_WAIT_MS);
}

/* ---------- packages ---------- */

/* Downloads a package into the cache unless it is there. Returns 0 or -1. */
static int fetch_package(worker_rt *w, const char *sha, const char *path, char *err, size_t n)
{
    struct stat st;
    if (stat(path, &st) == 0)
        return 0;
    prism_httpc *h;
    if (prism_httpc_create(&h, w->cfg->gcs_address, w->cfg->token) != 0) {
        snprintf(err, n, "cannot make an HTTP client");
        return -1;
    }
    char url[128];
    snprintf(url, sizeof url, "/api/v1/packages/%s", sha);
    prism_httpc_resp resp;
    int rc = prism_httpc_request(h, "GET", url, NULL, NULL, 0, 60000, 1u << 30, &resp, err, n);
    prism_httpc_destroy(h);
    if (rc != 0)
        return -1;
    char got[PRISM_SHA256_HEX_LEN + 1];
    prism_sha256_hex(resp.body, resp.len, got);
    if (resp.status != 200 || strcmp(got, sha) != 0) {
        snprintf(err, n,
                 resp.status == 404 ? "no package %s"
                                    : "package %s could not be fetched (HTTP %ld)",
                 sha, resp.status);
        prism_httpc_resp_free(&resp);
        return -1;
    }
    prism_mkdir_p(w->cfg->package_dir, 0700);
    rc = prism_write_file_atomic(path, resp.body, resp.len, 0700);
    prism_httpc_resp_free(&resp);
    if (rc != 0)
        snprintf(err, n, "cannot write the package %.64s: %s", sha, strerror(errno));
    return rc;
}

static void *load_package(worker_rt *w, const char *pkg, char *err, size_t n);

static prism_task_fn find_function(worker_rt *w, const char *pkg, const char *fn, char *err,
                                   size_t n)
{
    if (!strcmp(pkg, "builtin")) {
        prism_task_fn f = prism__builtin_find(fn);
        if (!f)
            snprintf(err, n, "the builtin package has no function '%s'", fn);
        return f;
    }
    void *lib = load_package(w, pkg, err, n);
    if (!lib)
        return NULL;
    char sym[300];
    snprintf(sym, sizeof sym, "prism_task__%s", fn);
    prism_task_fn f = (prism_task_fn)dlsym(lib, sym);
    if (!f)
        snprintf(err, n, "package %s has no task '%s'", pkg, fn);
    return f;
}

prism_task_fn prism__worker_find_task(prism_task_ctx *ctx, const char *pkg, const char *fn,
                                      char *err, size_t n)
{
    return find_function(ctx->runtime, pkg, fn, err, n);
}

/* The loaded package `pkg` (a sha256), fetched first when not cached. */
static void *load_package(worker_rt *w, const char *pkg, char *err, size_t n)
{
    if (!prism_is_hex(pkg, PRISM_SHA256_HEX_LEN)) {
        snprintf(err, n, "a package is 'builtin' or a sha256 (64 hex digits), not '%s'", pkg);
        return NULL;
    }
    package *p = w->packages;
    while (p && strcmp(p->sha, pkg))
        p = p->next;
    if (!p) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.so", w->cfg->package_dir, pkg);
        if (fetch_package(w, pkg, path, err, n) != 0)
            return NULL;
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            snprintf(err, n, "package %s is not a loadable library: %s", pkg, dlerror());
            return NULL;
        }
        p = calloc(1, sizeof *p);
        snprintf(p->sha, sizeof p->sha, "%s", pkg);
        p->handle = h;
        p->next = w->packages;
        w->packages = p;
    }
    return p->handle;
}

/* ---------- arguments ---------- */

/* A stored argument that cannot be read (its store unreachable, restarted
 * empty) sets *why to PRISM_ERR_OBJECT_LOST: the node failed, not the task.
 * The message names the object and the node the owner said holds it, which
 * the owner reads to make the object again (docs/tasks.md). One the store has
 * no room to read back from disk sets PRISM_ERR_NO_MEMORY: the task's
 * arguments are larger than the store, and making them again cannot help. */
static prism_value *read_stored_arg(worker_rt *w, prism_reader *r, char *err, size_t n,
                                    prism_status *why)
{
    const uint8_t *idb = pr_bytes(r, PRISM_OBJECT_ID_BYTES);
    char *node = pr_str(r), *sock = pr_str(r), *url = pr_str(r);
    pr_u64(r);
    prism_value *v = NULL;
    if (idb && !r->failed && w->store) {
        prism_object_id id;
        memcpy(id.b, idb, sizeof id.b);
        bool local = prism__same_store(node, sock, w->cfg->node_id, w->cfg->store_socket);
        char detail[768] = "";
        prism_status ds = PRISM_ERR_OBJECT_LOST;
        if (local || prism__store_pull(w->cfg->store_address, w->cfg->token, &id, url, detail,
                                       sizeof detail) == 0) {
            if ((ds = prism__decode_stored(w->store, &id, ARG_GET_MS, w->client, self_addr(w),
                                           &v)) != PRISM_OK)
                snprintf(detail, sizeof detail, "%s", prism_last_error());
        }
        if (!v) {
            char hex[PRISM_OBJECT_ID_HEX_LEN + 1];
            prism_object_id_to_hex(&id, hex);
            snprintf(err, n, "argument %s, stored on node %s, could not be read: %s", hex,
                     node && *node ? node : "?", detail);
            *why = ds == PRISM_ERR_NO_MEMORY ? PRISM_ERR_NO_MEMORY : PRISM_ERR_OBJECT_LOST;
        }
    } else if (!w->store) {
        snprintf(err, n, "this worker has no object store to read a large argument from");
    }
    free(node);
    free(sock);
    free(url);
    return v;
}

static prism_value *read_arg(worker_rt *w, prism_reader *r, char *err, size_t n, prism_status *why)
{
    uint8_t slot = pr_u8(r);
    if (slot == SLOT_INLINE) {
        uint32_t len = pr_u32(r);
        const uint8_t *p = pr_bytes(r, len);
        prism_reader vr = {p, len, 0, NULL, NULL, NULL};
        prism_value *v = p ? pr_value(&vr, w->client, self_addr(w)) : NULL;
        if (!v)
            snprintf(err, n, "a malformed argument");
        return v;
    }
    if (slot == SLOT_STORED)
        return read_stored_arg(w, r, err, n, why);
    snprintf(err, n, "an unknown argument kind %u", slot);
    r->failed = 1;
    return NULL;
}

/* ---------- results ---------- */

static void write_error_slot(prism_writer *out, prism_status s, const char *task, const char *msg)
{
    pw_u8(out, SLOT_ERROR);
    pw_u8(out, (uint8_t)s);
    pw_str(out, task);
    pw_str(out, msg);
}

/* After a return's slot: the references its value holds (u32 n, n x (object
 * id, str owner)). The task's owner will hold them through the returned
 * object, so it is registered with their owners before DONE leaves. */
static void write_held(worker_rt *w, prism_writer *out, const prism_value *v,
                       const char *task_owner)
{
    const prism_ref **refs = NULL;
    size_t n = 0, cap = 0;
    if (!v || prism__value_refs(v, &refs, &n, &cap) != 0)
        n = 0;
    pw_u32(out, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        pw_bytes(out, refs[i]->id.b, PRISM_OBJECT_ID_BYTES);
        pw_str(out, refs[i]->owner ? refs[i]->owner : self_addr(w));
        prism__borrow_add_for(w->client, refs[i], task_owner);
    }
    free(refs);
}

/* A return already in the node's store: a copy pulled here before its node
 * died, now made again from lineage, or a retried task's. A task's returns
 * are the same whichever run made them, so the copy is the value; it
 * becomes the owner's primary copy (pinned). */
static prism_store_status adopt_existing(prism_store *st, const prism_object_id *id, uint64_t *size)
{
    prism_store_buffer b;
    prism_store_status s = prism_store_get(st, id, 0, &b);
    if (s != PRISM_STORE_OK)
        return PRISM_STORE_EXISTS;
    *size = b.size;
    prism_store_release(st, id);
    return prism_store_pin(st, id);
}

/* Return `index` created in the store for `len` bytes of data after a
 * head, written here: a 1-D uint8 tensor's (`bytes` false) or a bytes
 * value's. The data's address; NULL when a return is made there already
 * (one a task), or for a small value or a full store (the task uses its own
 * memory, stored the usual way). */
static uint8_t *make_space(prism_task_ctx *ctx, uint16_t index, size_t len, bool bytes)
{
    worker_rt *w = ctx->runtime;
    ret_space *r = ctx->call;
    if (!r || !w->store || !r->task || r->made || len <= PRISM_INLINE_MAX)
        return NULL;
    const int64_t shape[1] = {(int64_t)len};
    uint8_t head[64];
    prism_writer hw = {.out = head, .cap = sizeof head};
    if (bytes) {
        pw_u8(&hw, (uint8_t)PRISM_VALUE_BYTES);
        pw_u64(&hw, len);
    } else {
        pw_tensor_head(&hw, PRISM_U8, 1, shape, len);
    }
    prism_id owner;
    bool owned = wire_owner_id(r->owner, &owner);
    prism_object_id_make(&r->id, r->task, index);
    uint8_t *p;
    if (hw.failed || prism_store_create(w->store, &r->id, owned ? &owner : NULL, hw.pos + len, NULL,
                                        0, PRISM_STORE_PIN, &p) != PRISM_STORE_OK)
        return NULL; /* a retry's return already there, a full store: the usual way */
    memcpy(p, head, hw.pos);
    r->made = true;
    r->bytes = bytes;
    r->index = index;
    r->data = p + hw.pos;
    r->len = len;
    r->size = hw.pos + len;
    return r->data;
}

/* ctx->return_space: a data block's tensor made in the store. */
static void *return_space(prism_task_ctx *ctx, uint16_t index, size_t len)
{
    return make_space(ctx, index, len, false);
}

/* ctx->return_bytes (prism_task_return_bytes): a large bytes return made in
 * the store, `*ret` the call's own value viewing it (return_in_place seals
 * it), as a DAG's loop views its slot. */
static void *return_bytes(prism_task_ctx *ctx, size_t index, size_t len, prism_value **ret)
{
    uint8_t *p = index <= UINT16_MAX ? make_space(ctx, (uint16_t)index, len, true) : NULL;
    if (p) {
        ret_space *r = ctx->call;
        r->view = (prism_value){.kind = PRISM_VALUE_BYTES, .data = p, .len = len};
        *ret = &r->view;
    }
    return p;
}

/* Return `i` made in its store object by the task: sealed there. A value
 * made elsewhere instead (images skipped, a later operator's block) is
 * stored the usual way under the same ID, so the space goes first: by now
 * nothing reads it (the blocks made there were replaced, or copied out). */
static bool return_in_place(worker_rt *w, ret_space *r, uint16_t i, const prism_value *v,
                            uint64_t *stored)
{
    if (!r || !r->made || r->index != i)
        return false;
    r->made = false;
    bool same = r->bytes ? prism_value_kind_of(v) == PRISM_VALUE_BYTES
                         : prism_value_kind_of(v) == PRISM_VALUE_TENSOR && v->dtype == PRISM_U8 &&
                               v->ndim == 1;
    if (!same || v->data != r->data || v->len != r->len) {
        prism_store_abort(w->store, &r->id);
        return false;
    }
    *stored = r->size;
    return prism_store_seal(w->store, &r->id) == PRISM_STORE_OK;
}

/* Encodes one return: inline in the DONE frame when small, else straight
 * into the node's store. */
static void write_return(worker_rt *w, ret_space *ret, prism_writer *out, const prism_task_id *task,
                         const char *task_owner, uint16_t i, const prism_value *v, const char *name)
{
    const char *self = self_addr(w);
    size_t size = pw_value_size(v, self);
    if (size == 0) {
        write_error_slot(out, PRISM_ERR_TASK, name,
                         prism__value_on_device(v) ? "the return value " PRISM__ON_DEVICE
                                                   : "the return value could not be encoded");
    } else if (size <= PRISM_INLINE_MAX || !w->store) {
        /* The length is patched in after: alignment padding depends on where
         * in the frame the value lands. */
        pw_u8(out, SLOT_INLINE);
        size_t at = out->buf->len;
        pw_u32(out, 0);
        pw_value(out, v, self);
        uint32_t n = (uint32_t)(out->buf->len - at - 4);
        for (int k = 0; k < 4 && !out->failed; k++)
            out->buf->data[at + (size_t)k] = (char)(n >> (8 * k));
    } else if (!task) {
        write_error_slot(out, PRISM_ERR_INVALID, name, "this value cannot be stored");
    } else {
        prism_object_id oid;
        prism_object_id_make(&oid, task, i);
        uint64_t stored = 0;
        prism_store_status ss =
            return_in_place(w, ret, i, v, &stored)
                ? PRISM_STORE_OK
                : prism__store_value(w->store, &oid, task_owner, v, self, &stored);
        if (ss == PRISM_STORE_EXISTS)
            ss = adopt_existing(w->store, &oid, &stored);
        if (ss == PRISM_STORE_OK) {
            pw_u8(out, SLOT_STORED);
            pw_str(out, w->cfg->node_id);
            pw_str(out, w->cfg->store_socket);
            pw_str(out, w->cfg->store_address);
            pw_u64(out, stored);
        } else {
            /* Only a full arena is the value's fault; a store that went away
             * (restarting) is the node's, and the owner retries the task. */
            bool full = ss == PRISM_STORE_OUT_OF_MEMORY || ss == PRISM_STORE_TOO_LARGE;
            char msg[256];
            snprintf(msg, sizeof msg, "storing the result in the node's object store failed: %s",
                     prism_store_status_text(ss));
            write_error_slot(out, full ? PRISM_ERR_NO_MEMORY : PRISM_ERR_WORKER_DIED, name, msg);
        }
    }
}

/* ---------- running a task ---------- */

typedef struct push {
    prism_task_id id;
    char *package, *function;
    uint16_t nreturns;
    prism_value **args;
    uint32_t nargs;
} push;

static void push_free(push *p)
{
    for (uint32_t i = 0; p->args && i < p->nargs; i++)
        prism_value_free(p->args[i]);
    free(p->args);
    free(p->package);
    free(p->function);
}

/* *why: PRISM_ERR_INVALID for a malformed frame, PRISM_ERR_OBJECT_LOST for an
 * argument that could not be read. */
static int parse_push(worker_rt *w, const uint8_t *data, size_t len, push *p, char *err, size_t n,
                      prism_status *why)
{
    *why = PRISM_ERR_INVALID;
    prism_reader r = {data, len, 0, NULL, NULL, NULL};
    const uint8_t *id = pr_bytes(&r, PRISM_ID_BYTES);
    if (id)
        memcpy(p->id.b, id, PRISM_ID_BYTES);
    p->package = pr_str(&r);
    p->function = pr_str(&r);
    p->nreturns = pr_u16(&r);
    p->nargs = pr_u32(&r);
    if (r.failed || p->nreturns == 0 || p->nargs > 65536) {
        snprintf(err, n, "a malformed task");
        p->nargs = 0;
        return -1;
    }
    p->args = calloc(p->nargs ? p->nargs : 1, sizeof *p->args);
    for (uint32_t i = 0; p->args && i < p->nargs; i++)
        if (!(p->args[i] = read_arg(w, &r, err, n, why)))
            return -1;
    return p->args ? 0 : -1;
}

/* ---------- actors ---------- */

/* Actor calls name the actor (32 hex digits) where tasks name a package. */
static bool is_actor_call(const char *pkg) { return prism_is_hex(pkg, PRISM_ID_HEX_LEN); }

/* The actor class's method `method` (a package's symbol or a builtin). */
static prism_actor_method_fn lookup_method(worker_rt *w, const char *method, char *err, size_t n)
{
    prism_actor_method_fn f = NULL;
    if (!strncmp(method, "__", 2)) {
        f = NULL; /* reserved names are the runtime's */
    } else if (!w->actor->lib) {
        f = prism__builtin_actor_method(w->actor->cls, method);
    } else {
        char sym[300];
        snprintf(sym, sizeof sym, "prism_actor_method__%s__%s", w->actor->cls, method);
        f = (prism_actor_method_fn)dlsym(w->actor->lib, sym);
    }
    if (!f)
        snprintf(err, n, "actor class %s has no method '%s'", w->actor->cls, method);
    return f;
}

static prism_actor_method_fn resolve_for_dag(void *ud, const char *method, char *err, size_t n)
{
    return lookup_method(ud, method, err, n);
}

/* __prism_dag_listen(spec) then __prism_dag_start(spec, constants...): listens for the
 * DAG's edges from other nodes, then starts the actor's loop of a compiled
 * DAG (libs/prism/dag.c sends them; docs/dags.md#compile). */
static prism_status dag_setup(prism_task_ctx *ctx, void *state, const prism_value *const *args,
                              size_t nargs, prism_value **returns, size_t nreturns, bool listen)
{
    worker_rt *w = ctx->runtime;
    if (nargs < 1 || (listen && nargs != 1) || !prism_value_json_text(args[0]))
        return prism_task_fail(ctx, "__prism_dag_start takes the DAG's spec (and its constants)");
    dag_loop_env env = {.state = state,
                        .cls = w->actor->cls,
                        .client = ctx_client,
                        .runtime = w,
                        .resolve = resolve_for_dag,
                        .ud = w,
                        .host = w->cfg->host};
    char err[512] = "", *reply = NULL;
    pthread_mutex_lock(&w->dag_lock);
    if (listen)
        dag_loop_listen(&w->dag, prism_value_json_text(args[0]), &env, &reply, err, sizeof err);
    else if (dag_loop_start(&w->dag, prism_value_json_text(args[0]), args + 1, nargs - 1, &env, err,
                            sizeof err) == 0)
        LOG_INFO("actor %s runs in compiled DAG %s", w->actor->id, dag_loop_id(w->dag));
    pthread_mutex_unlock(&w->dag_lock);
    if (reply && nreturns == 1)
        returns[0] = prism_value_json(reply);
    free(reply);
    return *err ? prism_task_fail(ctx, "%s", err) : PRISM_OK;
}

static prism_status dag_listen(prism_task_ctx *ctx, void *state, const prism_value *const *args,
                               size_t nargs, prism_value **returns, size_t nreturns)
{
    return dag_setup(ctx, state, args, nargs, returns, nreturns, true);
}

static prism_status dag_start(prism_task_ctx *ctx, void *state, const prism_value *const *args,
                              size_t nargs, prism_value **returns, size_t nreturns)
{
    return dag_setup(ctx, state, args, nargs, returns, nreturns, false);
}

static json_t *dag_report_locked(worker_rt *w, bool *changed);
static void publish_calls(worker_rt *w, uint64_t taken, uint64_t done, json_t *dag);

/* __prism_dag_stop({"dag": ID}): stops that DAG's loop; no-op when the actor
 * is not in it (it restarted since). Its last counts go to the GCS first: a
 * short DAG may end between two reports. */
static prism_status dag_stop(prism_task_ctx *ctx, void *state, const prism_value *const *args,
                             size_t nargs, prism_value **returns, size_t nreturns)
{
    worker_rt *w = ctx->runtime;
    const char *text = nargs == 1 ? prism_value_json_text(args[0]) : NULL;
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(j, "dag"));
    json_t *last = NULL;
    bool changed = false;
    pthread_mutex_lock(&w->dag_lock);
    if (w->dag && id && !strcmp(id, dag_loop_id(w->dag))) {
        last = dag_report_locked(w, &changed);
        dag_loop_stop(w->dag);
        w->dag = NULL;
        LOG_INFO("actor %s left compiled DAG %s", w->actor->id, id);
    }
    pthread_mutex_unlock(&w->dag_lock);
    if (last && w->bus)
        publish_calls(w, __atomic_load_n(&w->actor->taken, __ATOMIC_RELAXED),
                      __atomic_load_n(&w->actor->done, __ATOMIC_RELAXED), last);
    else
        json_decref(last);
    json_decref(j);
    return PRISM_OK;
}

/* Whether a compiled DAG holds the actor (one whose loop ended by itself,
 * its driver or a peer gone, is let go). */
static bool dag_holds(worker_rt *w, char *id)
{
    pthread_mutex_lock(&w->dag_lock);
    if (w->dag && dag_loop_ended(w->dag)) {
        dag_loop_stop(w->dag);
        w->dag = NULL;
    }
    if (w->dag)
        snprintf(id, PRISM_ID_HEX_LEN + 1, "%s", dag_loop_id(w->dag));
    bool held = w->dag != NULL;
    pthread_mutex_unlock(&w->dag_lock);
    return held;
}

static prism_actor_method_fn find_method(worker_rt *w, const char *actor, const char *method,
                                         char *err, size_t n, prism_status *why)
{
    *why = PRISM_ERR_UNKNOWN_FUNCTION;
    if (!w->actor || strcmp(w->actor->id, actor) != 0) {
        *why = PRISM_ERR_ACTOR_DIED;
        snprintf(err, n, "this worker hosts no actor %s (it restarted or died)", actor);
        return NULL;
    }
    if (!strcmp(method, "__prism_dag_start"))
        return dag_start;
    if (!strcmp(method, "__prism_dag_listen"))
        return dag_listen;
    if (!strcmp(method, "__prism_dag_stop"))
        return dag_stop;
    char dag[PRISM_ID_HEX_LEN + 1];
    if (dag_holds(w, dag)) {
        *why = PRISM_ERR_INVALID;
        snprintf(err, n,
                 "actor %s is in compiled DAG %s: its methods run only through the DAG "
                 "until prism_dag_teardown",
                 actor, dag);
        return NULL;
    }
    return lookup_method(w, method, err, n);
}

static void run_task(worker_rt *w, const uint8_t *data, size_t len, const char *task_owner,
                     prism_buf *out);
static void conn_free(conn *c);
static int flush_held(worker_rt *w);

/* Sends a whole frame (or several) on a connection, from any thread. */
static int conn_send(conn *c, const void *data, size_t len)
{
    pthread_mutex_lock(&c->send_lock);
    int rc = wire_send_all(c->fd, c->tls, data, len);
    pthread_mutex_unlock(&c->send_lock);
    return rc;
}

/* The pool lock is held. */
static void conn_release(conn *c)
{
    if (--c->users == 0 && c->gone)
        conn_free(c);
}

static void *executor_main(void *arg)
{
    worker_rt *w = arg;
    pthread_mutex_lock(&w->pool_lock);
    for (;;) {
        while (!w->pool_queue && !w->pool_stop)
            pthread_cond_wait(&w->pool_cond, &w->pool_lock);
        if (w->pool_stop)
            break;
        job *j = w->pool_queue;
        w->pool_queue = j->next;
        if (!w->pool_queue)
            w->pool_tail = NULL;
        pthread_mutex_unlock(&w->pool_lock);
        conn *c = j->from;
        prism_buf out;
        prism_buf_init(&out, (size_t)WIRE_MAX_FRAME);
        run_task(w, j->frame, j->len, c->owner, &out);
        __atomic_add_fetch(&w->actor->done, 1, __ATOMIC_RELAXED);
        if (out.len) /* a closed connection only makes this fail */
            conn_send(c, out.data, out.len);
        prism_buf_free(&out);
        free(j->frame);
        free(j);
        pthread_mutex_lock(&w->pool_lock);
        conn_release(c);
    }
    pthread_mutex_unlock(&w->pool_lock);
    return NULL;
}

static int start_executors(worker_rt *w, int n)
{
    w->threads = calloc((size_t)n, sizeof *w->threads);
    for (int i = 0; w->threads && i < n; i++) {
        if (pthread_create(&w->threads[i], NULL, executor_main, w) != 0)
            break;
        w->nthreads++;
    }
    return w->nthreads == n ? 0 : -1;
}

static void stop_executors(worker_rt *w)
{
    pthread_mutex_lock(&w->pool_lock);
    w->pool_stop = true;
    pthread_cond_broadcast(&w->pool_cond);
    pthread_mutex_unlock(&w->pool_lock);
    for (int i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    free(w->threads);
    w->threads = NULL;
    w->nthreads = 0;
    for (job *j = w->pool_queue, *next; j; j = next) { /* calls that never started */
        next = j->next;
        conn_release(j->from);
        free(j->frame);
        free(j);
    }
    w->pool_queue = w->pool_tail = NULL;
}

/* The DONE answering ACTOR_CREATE or ACTOR_ATTACH: one return, null when `s`
 * is PRISM_OK, else an error slot. */
static void actor_done(worker_rt *w, prism_buf *out, const uint8_t *id, prism_status s,
                       const char *name, const char *err)
{
    size_t start = out->len;
    wire_begin(out, WIRE_DONE);
    prism_writer wr = {.buf = out};
    pw_bytes(&wr, id, PRISM_ID_BYTES);
    pw_u16(&wr, 1);
    if (s == PRISM_OK) {
        prism_value *null = prism_value_null();
        write_return(w, NULL, &wr, NULL, NULL, 0, null, name);
        prism_value_free(null);
    } else {
        write_error_slot(&wr, s, name, err);
    }
    pw_u32(&wr, 0);
    wire_end(out, start);
}

/* ACTOR_CREATE: runs the constructor; the worker is the actor's from then on.
 * The DONE frame's one return is null, or the constructor's error. */
static void run_create(worker_rt *w, const uint8_t *data, size_t len, prism_buf *out)
{
    prism_reader r = {data, len, 0, NULL, NULL, NULL};
    const uint8_t *idb = pr_bytes(&r, PRISM_ID_BYTES);
    char *pkg = pr_str(&r), *cls = pr_str(&r);
    uint16_t concurrency = pr_u16(&r);
    uint32_t nargs = pr_u32(&r);
    char err[1024] = "";
    prism_task_ctx ctx = {.client = ctx_client, .runtime = w};
    snprintf(ctx.name, sizeof ctx.name, "%s.__init__", cls ? cls : "?");
    prism_value **args = !r.failed && nargs <= 65536 ? calloc(nargs ? nargs : 1, sizeof *args)
                                                     : NULL;
    bool ok = args != NULL;
    prism_status why = PRISM_ERR_INVALID; /* a constructor's arguments: its failure either way */
    for (uint32_t i = 0; ok && i < nargs; i++)
        ok = (args[i] = read_arg(w, &r, err, sizeof err, &why)) != NULL;
    if (!args)
        snprintf(err, sizeof err, "a malformed ACTOR_CREATE");
    prism_actor_init_fn init = NULL;
    prism_actor_free_fn fr = NULL;
    void *lib = NULL;
    prism_status s = PRISM_ERR_INVALID;
    if (ok && w->actor) {
        snprintf(err, sizeof err, "this worker hosts an actor already");
    } else if (ok && (concurrency < 1 || concurrency > 1024)) {
        snprintf(err, sizeof err, "max_concurrency must be 1-1024, not %u", concurrency);
    } else if (ok && !strcmp(pkg, "builtin")) {
        if (!prism__builtin_actor(cls, &init, &fr))
            snprintf(err, sizeof err, "the builtin package has no actor class '%s'", cls);
    } else if (ok && (lib = load_package(w, pkg, err, sizeof err))) {
        char sym[300];
        snprintf(sym, sizeof sym, "prism_actor_init__%s", cls);
        init = (prism_actor_init_fn)dlsym(lib, sym);
        snprintf(sym, sizeof sym, "prism_actor_free__%s", cls);
        fr = (prism_actor_free_fn)dlsym(lib, sym);
        if (!init)
            snprintf(err, sizeof err, "package %s has no actor class '%s'", pkg, cls);
    }
    void *state = NULL;
    if (init) {
        s = init(&ctx, (const prism_value *const *)args, nargs, &state);
        if (s != PRISM_OK)
            snprintf(err, sizeof err, "%s", ctx.error ? ctx.error : prism_status_text(s));
    }
    if (s == PRISM_OK && (w->actor = calloc(1, sizeof *w->actor))) {
        prism_id_to_hex((const prism_id *)idb, w->actor->id);
        w->actor->cls = strdup(cls);
        w->actor->lease = w->current_lease ? strdup(w->current_lease) : NULL;
        w->actor->lib = lib;
        w->actor->state = state;
        w->actor->free_fn = fr;
        if (concurrency > 1 && start_executors(w, concurrency) != 0)
            LOG_WARN("actor %s: only %d of %u threads started", w->actor->id, w->nthreads,
                     concurrency);
        LOG_INFO("worker %s hosts actor %s of class %s (%d threads)", w->cfg->worker_id,
                 w->actor->id, cls, w->nthreads ? w->nthreads : 1);
    } else if (s == PRISM_OK) {
        if (fr)
            fr(state);
        s = PRISM_ERR_NO_MEMORY;
        snprintf(err, sizeof err, "out of memory");
    }
    uint8_t zero[PRISM_ID_BYTES] = {0};
    actor_done(w, out, idb ? idb : zero,
               s == PRISM_OK ? PRISM_OK
               : init        ? PRISM_ERR_TASK
                             : PRISM_ERR_UNKNOWN_FUNCTION,
               ctx.name, err);
    for (uint32_t i = 0; args && i < nargs; i++)
        prism_value_free(args[i]);
    free(args);
    free(ctx.error);
    free(pkg);
    free(cls);
}

/* ACTOR_ATTACH: a GCS that restarted asks whether this worker hosts the actor. */
static int attach_actor(worker_rt *w, conn *c, const uint8_t *p, size_t n)
{
    if (n < PRISM_ID_BYTES)
        return -1;
    char hex[PRISM_ID_HEX_LEN + 1];
    prism_id_to_hex((const prism_id *)p, hex);
    prism_buf out;
    prism_buf_init(&out, 1u << 20);
    bool hosted = w->actor && !strcmp(w->actor->id, hex);
    actor_done(w, &out, p, hosted ? PRISM_OK : PRISM_ERR_ACTOR_DIED, "attach",
               "this worker hosts no such actor");
    int rc = conn_send(c, out.data, out.len);
    prism_buf_free(&out);
    return rc;
}

/* Runs one PUSH from `task_owner` and writes its DONE frame into `out`. */
static void run_task(worker_rt *w, const uint8_t *data, size_t len, const char *task_owner,
                     prism_buf *out)
{
    push p = {0};
    char err[1024] = "";
    ret_space ret = {.task = &p.id, .owner = task_owner};
    prism_task_ctx ctx = {.client = ctx_client,
                          .runtime = w,
                          .return_space = return_space,
                          .call = &ret,
                          .return_bytes = return_bytes};
    prism_status bad = PRISM_ERR_INVALID;
    int parsed = parse_push(w, data, len, &p, err, sizeof err, &bad);
    snprintf(ctx.name, sizeof ctx.name, "%s/%s", p.package ? p.package : "?",
             p.function ? p.function : "?");
    prism_task_fn fn = NULL;
    prism_actor_method_fn method = NULL;
    prism_status unknown = PRISM_ERR_UNKNOWN_FUNCTION;
    if (parsed == 0 && is_actor_call(p.package)) {
        method = find_method(w, p.package, p.function, err, sizeof err, &unknown);
        if (w->actor)
            snprintf(ctx.name, sizeof ctx.name, "%s.%s", w->actor->cls, p.function);
    } else if (parsed == 0) {
        fn = find_function(w, p.package, p.function, err, sizeof err);
    }
    uint16_t nret = p.nreturns ? p.nreturns : 1;
    prism_value **rets = calloc(nret, sizeof *rets);
    ctx.returns = rets;
    ctx.nreturns = rets ? nret : 0;
    prism_status s = PRISM_ERR_INVALID;
    if (fn && rets)
        s = fn(&ctx, (const prism_value *const *)p.args, p.nargs, rets, nret);
    else if (method && rets)
        s = method(&ctx, w->actor->state, (const prism_value *const *)p.args, p.nargs, rets, nret);
    prism__task_ctx_settle(&ctx);
    size_t start = out->len;
    wire_begin(out, WIRE_DONE);
    prism_writer wr = {.buf = out};
    pw_bytes(&wr, p.id.b, PRISM_ID_BYTES);
    pw_u16(&wr, nret);
    for (uint16_t i = 0; i < nret; i++) {
        if (s == PRISM_OK) {
            prism_value *null = rets[i] ? NULL : prism_value_null();
            write_return(w, &ret, &wr, &p.id, task_owner, i, rets[i] ? rets[i] : null, ctx.name);
            prism_value_free(null);
            write_held(w, &wr, rets[i], task_owner);
        } else if (!fn && !method) {
            write_error_slot(&wr, parsed == 0 ? unknown : bad, ctx.name, err);
            pw_u32(&wr, 0);
        } else {
            write_error_slot(&wr, PRISM_ERR_TASK, ctx.name,
                             ctx.error ? ctx.error : prism_status_text(s));
            pw_u32(&wr, 0);
        }
    }
    wire_end(out, start);
    for (uint16_t i = 0; rets && i < nret; i++)
        if (rets[i] != &ret.view)
            prism_value_free(rets[i]);
    free(rets);
    /* A return space the task did not return (it failed, or made another
     * value): nothing reads it now that the values are freed. */
    if (ret.made)
        prism_store_abort(w->store, &ret.id);
    free(ctx.error);
    push_free(&p);
    /* References the task kept (its arguments are gone now) must be known to
     * their owners before DONE lets the task's owner drop its own. */
    prism__borrow_register(w->client);
}

/* ---------- connections ---------- */

static void on_granted(prism_bus *bus, const char *subject, const char *reply, const char *data,
                       size_t len, void *ud)
{
    worker_rt *w = ud;
    json_t *j = json_loadb(data, len, 0, NULL);
    const char *lease = json_string_value(json_object_get(j, "lease_id"));
    const char *owner = json_string_value(json_object_get(j, "owner_id"));
    pthread_mutex_lock(&w->grant_lock);
    if (lease && owner && strlen(lease) < sizeof w->granted_lease &&
        strlen(owner) < sizeof w->granted_owner) {
        strcpy(w->granted_lease, lease);
        strcpy(w->granted_owner, owner);
        w->granted_ms = prism_mono_ms();
        w->grant_used = false;
    }
    pthread_mutex_unlock(&w->grant_lock);
    json_decref(j);
}

/* Forgets the announced grant once its lease went back. */
static void forget_grant(worker_rt *w, const char *lease)
{
    pthread_mutex_lock(&w->grant_lock);
    if (!strcmp(w->granted_lease, lease))
        w->granted_lease[0] = w->granted_owner[0] = '\0';
    pthread_mutex_unlock(&w->grant_lock);
}

static void return_lease(worker_rt *w, const char *lease_id);

/* A lease granted here whose owner never said HELLO within GRANT_UNUSED_MS
 * (it gave up, or exited, between the grant and its connection) goes back
 * to the node agent: nobody else would return it, and its resources would
 * stay taken. Looked at from the loop (every second while one waits). */
#define GRANT_UNUSED_MS 15000
static void return_unused_grant(worker_rt *w)
{
    char lease[sizeof w->granted_lease] = "";
    int64_t now = prism_mono_ms();
    pthread_mutex_lock(&w->grant_lock);
    if (w->granted_lease[0] && !w->grant_used && now - w->granted_ms > GRANT_UNUSED_MS) {
        strcpy(lease, w->granted_lease);
        w->granted_lease[0] = w->granted_owner[0] = '\0';
    }
    pthread_mutex_unlock(&w->grant_lock);
    if (!lease[0])
        return;
    /* The announcement may have come after the owner's HELLO (another path). */
    for (conn *c = w->conns; c; c = c->next)
        if (c->leased && c->lease_id && !strcmp(c->lease_id, lease))
            return;
    LOG_WARN("lease %s: its owner did not connect within %d ms: given back", lease,
             GRANT_UNUSED_MS);
    return_lease(w, lease);
}

static void return_lease(worker_rt *w, const char *lease_id)
{
    if (!lease_id || !*lease_id || !w->bus)
        return;
    char subject[160];
    prism_subject_node(subject, sizeof subject, w->cfg->node_id, PRISM_NODE_WORKER_RETURN);
    json_t *req = json_pack("{s:s,s:s}", "lease_id", lease_id, "worker_id", w->cfg->worker_id),
           *reply = NULL;
    if (prism_bus_request_json(w->bus, subject, req, 2000, &reply) != PRISM_BUS_OK)
        LOG_WARN("could not return lease %s to the node agent", lease_id);
    json_decref(req);
    json_decref(reply);
}

static void conn_drop(worker_rt *w, conn *c)
{
    for (conn **pp = &w->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    w->nconns--;
    w->nunauthed -= !c->authed;
    if (w->held_conn == c) { /* nobody is there to take them */
        w->held.len = 0;
        w->held_conn = NULL;
        w->held_frames = 0;
    }
    /* Its queued tasks go too: nobody is there to take the results. */
    pthread_mutex_lock(&w->pool_lock);
    for (job **pp = &w->pool_queue; *pp;) {
        job *j = *pp;
        if (j->from != c) {
            pp = &j->next;
            continue;
        }
        *pp = j->next;
        c->users--;
        free(j->frame);
        free(j);
    }
    w->pool_tail = NULL;
    for (job *j = w->pool_queue; j; j = j->next)
        w->pool_tail = j;
    bool in_use = c->users > 0;
    c->gone = true;
    pthread_mutex_unlock(&w->pool_lock);
    job **jp = &w->queue;
    w->queue_tail = NULL;
    while (*jp) {
        if ((*jp)->from == c) {
            job *j = *jp;
            *jp = j->next;
            free(j->frame);
            free(j);
        } else {
            w->queue_tail = *jp;
            jp = &(*jp)->next;
        }
    }
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    LOG_DEBUG("owner %s left (lease %s)", c->owner ? c->owner : "?",
              c->lease_id ? c->lease_id : "-");
    if (!w->actor && c->leased) { /* an actor's worker holds its lease until it exits */
        forget_grant(w, c->lease_id);
        return_lease(w, c->lease_id);
    }
    if (in_use) { /* executors still answer on it: the last one frees it */
        shutdown(c->fd, SHUT_RDWR);
        return;
    }
    conn_free(c);
}

static void conn_free(conn *c)
{
    wire_tls_destroy(c->tls);
    close(c->fd);
    prism_buf_free(&c->in);
    pthread_mutex_destroy(&c->send_lock);
    free(c->lease_id);
    free(c->owner);
    free(c);
}

/* Whether the node agent granted `lease` on this worker to `owner`: as it
 * announced, or else as it answers when asked. */
static bool lease_granted(worker_rt *w, const char *lease, const char *owner)
{
    if (!w->bus) /* no control plane to ask: nothing was granted */
        return false;
    pthread_mutex_lock(&w->grant_lock);
    bool known = !strcmp(w->granted_lease, lease) && !strcmp(w->granted_owner, owner);
    pthread_mutex_unlock(&w->grant_lock);
    if (known)
        return true;
    char subject[160];
    prism_subject_node(subject, sizeof subject, w->cfg->node_id, PRISM_NODE_WORKER_CHECK);
    json_t *req = json_pack("{s:s,s:s,s:s}", "lease_id", lease, "worker_id", w->cfg->worker_id,
                            "owner_id", owner),
           *reply = NULL;
    bool ok = req &&
              prism_bus_request_json(w->bus, subject, req, LEASE_CHECK_MS, &reply) ==
                  PRISM_BUS_OK &&
              json_is_true(json_object_get(reply, "ok"));
    json_decref(req);
    json_decref(reply);
    return ok;
}

static int on_hello(worker_rt *w, conn *c, const uint8_t *p, size_t n)
{
    prism_reader r = {p, n, 0, NULL, NULL, NULL};
    free(c->lease_id);
    free(c->owner);
    c->lease_id = pr_str(&r);
    c->owner = pr_str(&r);
    if (r.failed)
        return -1;
    c->leased = *c->lease_id && lease_granted(w, c->lease_id, c->owner);
    if (c->leased) {
        pthread_mutex_lock(&w->grant_lock);
        if (!strcmp(w->granted_lease, c->lease_id))
            w->grant_used = true;
        pthread_mutex_unlock(&w->grant_lock);
    }
    if (*c->lease_id && !c->leased) {
        LOG_WARN("a peer named lease %.64s for owner %.64s, which the node agent did not grant "
                 "on this worker: connection closed",
                 c->lease_id, c->owner);
        return -1;
    }
    return 0;
}

/* A call on a connection without a lease: only to the actor hosted here. */
static bool is_call_to_own_actor(const worker_rt *w, const uint8_t *p, size_t n)
{
    if (!w->actor)
        return false;
    prism_reader r = {p, n, 0, NULL, NULL, NULL};
    pr_bytes(&r, PRISM_ID_BYTES);
    char *pkg = pr_str(&r);
    bool ok = !r.failed && pkg && !strcmp(pkg, w->actor->id);
    free(pkg);
    return ok;
}

static int on_auth(worker_rt *w, conn *c, uint8_t type, const uint8_t *p, size_t n)
{
    prism_buf ok;
    prism_buf_init(&ok, 256);
    int rc = type == WIRE_AUTH ? wire_auth_accept(w->key, c->nonce, p, n, &ok) : -1;
    if (rc == 0)
        rc = conn_send(c, ok.data, ok.len);
    prism_buf_free(&ok);
    if (rc != 0) {
        LOG_WARN("a peer failed the handshake (frame %u first): connection closed", type);
        return -1;
    }
    c->authed = true;
    w->nunauthed--;
    return 0;
}

/* Takes out of `*list` the PUSH of task `id` that `c` sent, if it is still
 * queued there. */
static job *unqueue_push(job **list, job **tail, const conn *c, const uint8_t *id)
{
    job *prev = NULL;
    for (job *j = *list; j; prev = j, j = j->next) {
        if (j->from != c || j->type != WIRE_PUSH || j->len < PRISM_ID_BYTES ||
            memcmp(j->frame, id, PRISM_ID_BYTES) != 0)
            continue;
        if (prev)
            prev->next = j->next;
        else
            *list = j->next;
        if (*tail == j)
            *tail = prev;
        return j;
    }
    return NULL;
}

/* CANCEL: a call or task still queued here never runs; its DONE says
 * cancelled. One already running goes on (the owner kills the worker to
 * stop it: prism_cancel with force). */
static int on_cancel(worker_rt *w, conn *c, const uint8_t *p, size_t n)
{
    if (n < PRISM_ID_BYTES)
        return -1;
    job *j = unqueue_push(&w->queue, &w->queue_tail, c, p);
    if (!j && w->nthreads) {
        pthread_mutex_lock(&w->pool_lock);
        if ((j = unqueue_push(&w->pool_queue, &w->pool_tail, c, p)))
            c->users--; /* the executors will not see it */
        pthread_mutex_unlock(&w->pool_lock);
    }
    if (!j)
        return 0; /* running or done: its own DONE answers */
    prism_reader r = {j->frame, j->len, 0, NULL, NULL, NULL};
    pr_bytes(&r, PRISM_ID_BYTES);
    char *pkg = pr_str(&r), *fn = pr_str(&r);
    uint16_t nret = pr_u16(&r);
    char name[300];
    snprintf(name, sizeof name, "%s/%s", pkg ? pkg : "?", fn ? fn : "?");
    prism_buf out;
    prism_buf_init(&out, (size_t)WIRE_MAX_FRAME);
    size_t start = out.len;
    wire_begin(&out, WIRE_DONE);
    prism_writer wr = {.buf = &out};
    pw_bytes(&wr, j->frame, PRISM_ID_BYTES);
    pw_u16(&wr, r.failed ? 1 : nret);
    for (uint16_t i = 0; i < (r.failed ? 1 : nret); i++) {
        write_error_slot(&wr, PRISM_ERR_CANCELLED, name, "cancelled before it ran");
        pw_u32(&wr, 0);
    }
    wire_end(&out, start);
    if (w->actor)
        __atomic_add_fetch(&w->actor->done, 1, __ATOMIC_RELAXED);
    int rc = w->held_conn == c ? flush_held(w) : 0; /* the DONEs before it go first */
    if (rc == 0)
        rc = conn_send(c, out.data, out.len);
    prism_buf_free(&out);
    free(pkg);
    free(fn);
    free(j->frame);
    free(j);
    return rc;
}

static int on_frame(worker_rt *w, conn *c, uint8_t type, const uint8_t *p, size_t n)
{
    if (!c->authed)
        return on_auth(w, c, type, p, n);
    if (type == WIRE_HELLO)
        return on_hello(w, c, p, n);
    if (!c->leased && type != WIRE_CANCEL &&
        (type != WIRE_PUSH || !is_call_to_own_actor(w, p, n))) {
        LOG_WARN("a peer without a lease sent frame %u: connection closed", type);
        return -1;
    }
    if (type == WIRE_ACTOR_KILL) {
        bool queued = false; /* killed before its constructor ran: it never will */
        for (job *j = w->queue; j && n >= PRISM_ID_BYTES; j = j->next)
            queued |= j->type == WIRE_ACTOR_CREATE && j->len >= PRISM_ID_BYTES &&
                      !memcmp(j->frame, p, PRISM_ID_BYTES);
        if ((w->actor && n >= PRISM_ID_BYTES) || queued) {
            LOG_INFO("actor %s is killed", w->actor ? w->actor->id : "(not created yet)");
            w->stop = true; /* the destructor runs on the way out */
        }
        return 0;
    }
    if (type == WIRE_ACTOR_ATTACH)
        return attach_actor(w, c, p, n);
    if (type == WIRE_CANCEL)
        return c->leased || w->actor ? on_cancel(w, c, p, n) : 0;
    if (type != WIRE_PUSH && type != WIRE_ACTOR_CREATE)
        return -1;
    job *j = calloc(1, sizeof *j);
    if (!j || !(j->frame = malloc(n ? n : 1))) {
        free(j);
        return -1;
    }
    memcpy(j->frame, p, n);
    j->len = n;
    j->type = type;
    j->from = c;
    if (type == WIRE_PUSH && w->actor)
        __atomic_add_fetch(&w->actor->taken, 1, __ATOMIC_RELAXED);
    if (type == WIRE_PUSH && w->nthreads) { /* a concurrent actor's call: to the executors */
        pthread_mutex_lock(&w->pool_lock);
        c->users++;
        if (w->pool_tail)
            w->pool_tail->next = j;
        else
            w->pool_queue = j;
        w->pool_tail = j;
        pthread_cond_signal(&w->pool_cond);
        pthread_mutex_unlock(&w->pool_lock);
        return 0;
    }
    if (w->queue_tail)
        w->queue_tail->next = j;
    else
        w->queue = j;
    w->queue_tail = j;
    return 0;
}

/* Cuts what arrived into frames and acts on each. Returns -1 when the
 * connection must go. */
static int conn_frames(worker_rt *w, conn *c)
{
    size_t off = 0;
    for (;;) {
        uint8_t type;
        const uint8_t *payload;
        size_t plen;
        /* Before the handshake only a short AUTH may come: no large frame
         * from an unknown peer is ever buffered. */
        if (!c->authed && c->in.len - off >= 5 &&
            (wire_frame_size((uint8_t *)c->in.data + off) > WIRE_AUTH_FRAME_MAX ||
             (uint8_t)c->in.data[off + 4] != WIRE_AUTH))
            return -1;
        long used =
            wire_parse((uint8_t *)c->in.data + off, c->in.len - off, &type, &payload, &plen);
        if (used < 0 || (used > 0 && on_frame(w, c, type, payload, plen) != 0))
            return -1; /* garbage: this connection goes, the worker stays */
        if (used == 0)
            break;
        off += (size_t)used;
    }
    memmove(c->in.data, c->in.data + off, c->in.len - off);
    c->in.len -= off;
    return 0;
}

/* One read; *more when the TLS session holds decrypted bytes still, which
 * epoll cannot see. */
static ssize_t conn_recv(conn *c, void *buf, size_t n, bool *more)
{
    if (!c->tls) {
        *more = false;
        return recv(c->fd, buf, n, MSG_DONTWAIT);
    }
    pthread_mutex_lock(&c->send_lock);
    ssize_t got = wire_tls_recv(c->tls, buf, n);
    int why = errno;
    *more = got > 0 && wire_tls_pending(c->tls);
    pthread_mutex_unlock(&c->send_lock);
    errno = why;
    return got;
}

static int conn_read(worker_rt *w, conn *c)
{
    char chunk[65536];
    bool more;
    do {
        ssize_t n = conn_recv(c, chunk, sizeof chunk, &more);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return -1;
        if (n < 0)
            return 0;
        if (prism_buf_append(&c->in, chunk, (size_t)n) != 0 || conn_frames(w, c) != 0)
            return -1;
    } while (more);
    return 0;
}

/* Moves a TLS connection's handshake on; once done the cluster's handshake
 * starts inside it with CHALLENGE. Returns -1 when the connection must go. */
static int tls_step(worker_rt *w, conn *c)
{
    bool want_write = false;
    int rc = wire_tls_handshake(c->tls, &want_write);
    if (rc < 0) {
        LOG_WARN("a peer failed the TLS handshake: connection closed");
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN | (rc == 0 && want_write ? EPOLLOUT : 0),
                             .data.ptr = c};
    epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    if (rc == 0)
        return 0;
    c->tls_ready = true;
    LOG_DEBUG("a peer completed the TLS handshake");
    prism_buf hello;
    prism_buf_init(&hello, 256);
    wire_auth_challenge(&hello, c->nonce);
    /* A stranger's socket: never wait on it. A fresh one takes a frame this small. */
    rc = wire_tls_send(c->tls, hello.data, hello.len) == (ssize_t)hello.len ? 0 : -1;
    prism_buf_free(&hello);
    return rc == 0 && wire_tls_pending(c->tls) ? conn_read(w, c) : rc;
}

/* The oldest connection still in the handshake (the list is newest first). */
static conn *oldest_unauthed(worker_rt *w)
{
    conn *old = NULL;
    for (conn *c = w->conns; c; c = c->next)
        if (!c->authed)
            old = c;
    return old;
}

/* Drops peers that did not prove themselves in time (looked at once a
 * second: the loop spins between tasks, the deadline is seconds). */
static void reap_unauthed(worker_rt *w)
{
    int64_t now = prism_mono_ms();
    if (now < w->next_reap_ms)
        return;
    w->next_reap_ms = now + 1000;
    for (conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (!c->authed && now - c->accepted_ms > AUTH_DEADLINE_MS) {
            LOG_WARN("a peer did not complete the handshake within %d ms: connection closed",
                     AUTH_DEADLINE_MS);
            conn_drop(w, c);
        }
    }
}

/* A new connection sends CHALLENGE at once; on the TCP port of a worker
 * with TLS, once the TLS handshake is done (tls_step). */
static int greet(worker_rt *w, conn *c, int lfd)
{
    if (lfd == w->tcp_fd && w->tls)
        return wire_tls_accept(&c->tls, c->fd);
    prism_buf hello;
    prism_buf_init(&hello, 256);
    wire_auth_challenge(&hello, c->nonce);
    int rc = send(c->fd, hello.data, hello.len, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)hello.len
                 ? 0
                 : -1;
    prism_buf_free(&hello);
    return rc;
}

static void accept_conn(worker_rt *w, int lfd)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    conn *old = w->nunauthed >= MAX_UNAUTHED ? oldest_unauthed(w) : NULL;
    if (old) /* many strangers: the oldest makes room */
        conn_drop(w, old);
    conn *c = w->nconns < MAX_CONNS ? calloc(1, sizeof *c) : NULL;
    if (c)
        c->fd = fd;
    if (!c || greet(w, c, lfd) != 0) {
        if (!c)
            LOG_WARN("%d connections already: a new one is refused", w->nconns);
        free(c);
        close(fd);
        return;
    }
    c->accepted_ms = prism_mono_ms();
    w->nconns++;
    w->nunauthed++;
    /* Each DONE goes out on its own: over TCP it must not wait for the
     * owner's delayed ACK of the one before. */
    int one = 1;
    if (lfd == w->tcp_fd)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_mutex_init(&c->send_lock, NULL);
    prism_buf_init(&c->in, WIRE_MAX_FRAME + 65536);
    c->next = w->conns;
    w->conns = c;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* ---------- the loop ---------- */

/* Sends the DONE frames held (they stay attributed to held_conn). Returns
 * -1 when that failed. */
static int send_held(worker_rt *w)
{
    conn *c = w->held_conn;
    int rc = c && w->held.len ? conn_send(c, w->held.data, w->held.len) : 0;
    w->held.len = 0;
    w->held_frames = 0;
    w->held_since_ns = prism_mono_ns();
    if (w->held.cap > 4u * HOLD_BYTES) { /* a large return: do not keep its room */
        prism_buf_free(&w->held);
        prism_buf_init(&w->held, (size_t)WIRE_MAX_FRAME + 2u * HOLD_BYTES);
    }
    return rc;
}

/* Sends the DONE frames held for a connection. Returns -1 when it failed
 * (the caller drops the connection). */
static int flush_held(worker_rt *w)
{
    int rc = send_held(w);
    w->held_conn = NULL;
    return rc;
}

/* The function a PUSH names (package and function, after the task id). */
static size_t push_fn(const job *j, const uint8_t **p)
{
    prism_reader r = {j->frame, j->len, 0, NULL, NULL, NULL};
    pr_bytes(&r, PRISM_ID_BYTES);
    *p = r.p;
    pr_bytes(&r, pr_u32(&r));
    pr_bytes(&r, pr_u32(&r));
    return r.failed ? 0 : (size_t)(r.p - *p);
}

/* Whether `next` calls the same function as `j` (a burst of alike calls). */
static bool same_fn(const job *j, const job *next)
{
    const uint8_t *a, *b;
    size_t n = push_fn(j, &a), m = push_fn(next, &b);
    return n && n == m && next->type == WIRE_PUSH && !memcmp(a, b, n);
}

/* Runs the first queued job; its DONE joins those held for its connection
 * and all go out unless the next job is that connection's too, of the same
 * function, and this one was short (see HOLD_FRAMES). A task that blocks in
 * a get sends them first (on_block): it may wait for one of them. */
static void run_next(worker_rt *w)
{
    job *j = w->queue;
    w->queue = j->next;
    if (!w->queue)
        w->queue_tail = NULL;
    conn *c = j->from;
    conn *prev = w->held_conn;
    if (prev && prev != c && flush_held(w) != 0)
        conn_drop(w, prev);
    int64_t t0 = prism_mono_ns();
    if (!w->held_conn)
        w->held_since_ns = t0;
    w->held_conn = c;
    w->current_lease = c->lease_id;
    if (j->type == WIRE_ACTOR_CREATE)
        run_create(w, j->frame, j->len, &w->held);
    else
        run_task(w, j->frame, j->len, c->owner, &w->held);
    if (j->type == WIRE_PUSH && w->actor)
        w->actor->done++;
    w->current_lease = NULL;
    w->held_frames++; /* every job answers one DONE */
    int64_t now = prism_mono_ns();
    bool hold = j->type == WIRE_PUSH && w->queue && w->queue->from == c && now - t0 < HOLD_JOB_NS &&
                now - w->held_since_ns < HOLD_NS && w->held_frames < HOLD_FRAMES &&
                w->held.len < HOLD_BYTES && same_fn(j, w->queue);
    if (!hold && flush_held(w) != 0)
        conn_drop(w, c);
    free(j->frame);
    free(j);
}

static void poll_once(worker_rt *w, int timeout_ms)
{
    struct epoll_event evs[32];
    int n = epoll_wait(w->epfd, evs, 32, timeout_ms);
    if (n < 0 && errno != EINTR) { /* it would fail again at once, forever */
        LOG_ERROR("the event loop failed: %s; stopping", strerror(errno));
        w->stop = true;
    }
    for (int i = 0; i < n; i++) {
        void *tag = evs[i].data.ptr;
        if (tag == &w->sigfd) {
            struct signalfd_siginfo si;
            if (read(w->sigfd, &si, sizeof si) > 0 && si.ssi_signo != SIGHUP)
                w->stop = true;
        } else if (tag == &w->unix_fd) {
            accept_conn(w, w->unix_fd);
        } else if (tag == &w->tcp_fd) {
            accept_conn(w, w->tcp_fd);
        } else {
            conn *c = tag;
            bool known = false;
            for (conn *k = w->conns; k && !known; k = k->next)
                known = k == c;
            if (known && (c->tls && !c->tls_ready ? tls_step(w, c) : conn_read(w, c)) != 0)
                conn_drop(w, c);
        }
    }
}

static int listen_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return -1;
    strcpy(sa.sun_path, path);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* Only the node's own user may connect at all (the handshake still runs);
     * the mode is set before listen, so no connect slips in. */
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || chmod(path, 0600) != 0 ||
        listen(fd, 128) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int listen_tcp(const char *host, char *addr, size_t n)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *res;
    if (getaddrinfo(host, "0", &hints, &res) != 0)
        return -1;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 128) != 0) {
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    char port[16], advertised[300];
    getnameinfo((struct sockaddr *)&ss, sl, NULL, 0, port, sizeof port, NI_NUMERICSERV);
    prism_advertised_host(host, advertised, sizeof advertised);
    snprintf(addr, n, "%s:%s", advertised, port);
    return fd;
}

/* write(2) until done: the ready fd is a pipe, not a socket. */
static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void watch(worker_rt *w, int fd, void *tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static int start(worker_rt *w, char *err, size_t n)
{
    const prism_worker_config *cfg = w->cfg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    wire_auth_key(cfg->token, w->key);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    int tls = wire_tls_server_setup(err, n);
    if (tls < 0)
        return -1;
    w->tls = tls == 1;
    char hostport[290] = "", tcp[300];
    w->unix_fd = listen_unix(cfg->socket_path);
    w->tcp_fd = listen_tcp(cfg->host ? cfg->host : "127.0.0.1", hostport, sizeof hostport);
    /* With TLS the TCP address says so: peers follow the scheme (wire.h). */
    snprintf(tcp, sizeof tcp, "%s%s", w->tls ? "tls:" : "", hostport);
    if (w->epfd < 0 || w->sigfd < 0 || w->unix_fd < 0 || w->tcp_fd < 0) {
        snprintf(err, n, "cannot listen on %s and %s: %s", cfg->socket_path,
                 cfg->host ? cfg->host : "127.0.0.1", strerror(errno));
        return -1;
    }
    watch(w, w->sigfd, &w->sigfd);
    watch(w, w->unix_fd, &w->unix_fd);
    watch(w, w->tcp_fd, &w->tcp_fd);
    /* Lazy: mapping the whole arena first would make every new worker (an
     * actor's, a pool's growth) wait for it, and its exit, with its lease. */
    if (cfg->store_socket && *cfg->store_socket &&
        prism_store_connect_lazy(&w->store, cfg->store_socket, true, err, n) != PRISM_STORE_OK)
        return -1;
    if (cfg->nats_url && *cfg->nats_url &&
        prism_bus_connect(&w->bus, cfg->nats_url, cfg->token, "prism-worker", 0, err, n) != 0)
        return -1;
    char granted[160];
    prism_subject_worker_granted(granted, sizeof granted, cfg->worker_id);
    if (w->bus && prism_bus_subscribe(w->bus, granted, NULL, on_granted, w) != 0)
        LOG_WARN("cannot follow the node agent's grants: each lease is checked by asking");
    worker_client(w, 0); /* a cluster that cannot be reached now is tried again on first use */
    if (cfg->ready_fd >= 0) {
        json_t *ready = json_pack("{s:s,s:s}", "unix", cfg->socket_path, "tcp", tcp);
        char *line = json_dumps(ready, JSON_COMPACT);
        json_decref(ready);
        if (line && write_all(cfg->ready_fd, line, strlen(line)) == 0)
            write_all(cfg->ready_fd, "\n", 1);
        free(line);
        close(cfg->ready_fd);
    }
    LOG_INFO("worker %s serving on unix:%s and %s%s", cfg->worker_id, cfg->socket_path,
             w->tls ? "" : "tcp:", tcp);
    return 0;
}

static void finish(worker_rt *w)
{
    flush_held(w);
    stop_executors(w);
    while (w->conns)
        conn_drop(w, w->conns);
    dag_loop_stop(w->dag); /* before the state its methods use goes */
    w->dag = NULL;
    if (w->actor) {
        if (w->actor->free_fn)
            w->actor->free_fn(w->actor->state);
        free(w->actor->cls);
        free(w->actor->lease);
        free(w->actor);
        w->actor = NULL;
    }
    for (package *p = w->packages, *next; p; p = next) {
        next = p->next;
        dlclose(p->handle);
        free(p);
    }
    prism_disconnect(w->client);
    prism_bus_destroy(w->bus);
    prism_store_destroy(w->store);
    if (w->unix_fd >= 0) {
        close(w->unix_fd);
        unlink(w->cfg->socket_path);
    }
    if (w->tcp_fd >= 0)
        close(w->tcp_fd);
    if (w->sigfd >= 0)
        close(w->sigfd);
    if (w->epfd >= 0)
        close(w->epfd);
}

/* A task waiting in get lends its CPU to the tasks it waits for (nested tasks
 * would otherwise deadlock a full node). */
static void on_block(void *ud, bool blocked)
{
    worker_rt *w = ud;
    /* The task may wait for a result whose DONE is held here. A send that
     * fails drops the connection later, when the loop reads it. */
    if (blocked && w->held.len && pthread_equal(pthread_self(), w->main_thread))
        send_held(w);
    if (!w->bus || !w->current_lease || !*w->current_lease)
        return;
    char subject[160];
    prism_subject_node(subject, sizeof subject, w->cfg->node_id, PRISM_NODE_WORKER_BLOCKED);
    json_t *msg = json_pack("{s:s,s:b}", "lease_id", w->current_lease, "blocked", blocked);
    prism_bus_publish_json(w->bus, subject, msg);
    json_decref(msg);
}

/* The actor's compiled DAG loop, if any: its report with "active_at" (wall
 * ms of the last pass seen, to about a second), and whether it changed since
 * the last look. dag_lock held. */
static json_t *dag_report_locked(worker_rt *w, bool *changed)
{
    actor_host *a = w->actor;
    json_t *r = w->dag ? dag_loop_report(w->dag) : NULL;
    const char *id = json_string_value(json_object_get(r, "dag"));
    const char *state = json_string_value(json_object_get(r, "state"));
    uint64_t passes = (uint64_t)json_integer_value(json_object_get(r, "executions"));
    if (!id || !state) {
        json_decref(r);
        return NULL;
    }
    if (strcmp(id, a->dag_seen) != 0 || passes != a->dag_passes || state[0] != a->dag_state) {
        *changed = true;
        snprintf(a->dag_seen, sizeof a->dag_seen, "%s", id);
        a->dag_passes = passes;
        a->dag_state = state[0];
        a->dag_active_at = prism_now_ms();
    }
    json_object_set_new(r, "active_at", json_integer(a->dag_active_at));
    return r;
}

/* Publishes the actor's calls report (taken - done pending, done), with its
 * DAG loop's `dag` (taken) when not NULL. */
static void publish_calls(worker_rt *w, uint64_t taken, uint64_t done, json_t *dag)
{
    actor_host *a = w->actor;
    json_t *msg = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "actor_id", a->id, "worker_id",
                            w->cfg->worker_id, "node_id", w->cfg->node_id ? w->cfg->node_id : "",
                            "lease_id", a->lease ? a->lease : "", "pending",
                            (json_int_t)(taken - done), "done", (json_int_t)done);
    if (msg && dag)
        json_object_set_new(msg, "dag", dag);
    else
        json_decref(dag);
    prism_bus_publish_json(w->bus, PRISM_SUBJECT_EVENT_ACTOR_CALLS, msg);
    json_decref(msg);
}

/* An actor's worker tells the GCS how many calls it holds (twice a second at
 * most, when that changed, else every 5 s): GET /api/v1/actors shows them,
 * and a GCS that finds it hosts an actor it did not place there kills it.
 * With its compiled DAG's loop, if any: the DAG's listing shows its health
 * and the latency of its inputs (a start or stop in progress holds the lock
 * for seconds: then without it this time). */
#define CALLS_CHANGED_MS 500 /* a change of the counts is reported this soon at most */
#define CALLS_SAME_MS 5000   /* unchanged counts are reported again this often */

static bool calls_changed(const actor_host *a)
{
    return __atomic_load_n(&a->taken, __ATOMIC_RELAXED) != a->reported_taken ||
           __atomic_load_n(&a->done, __ATOMIC_RELAXED) != a->reported_done;
}

static void report_calls(worker_rt *w)
{
    actor_host *a = w->actor;
    if (!a || !w->bus)
        return;
    uint64_t taken = __atomic_load_n(&a->taken, __ATOMIC_RELAXED);
    uint64_t done = __atomic_load_n(&a->done, __ATOMIC_RELAXED);
    int64_t now = prism_mono_ms();
    bool changed = taken != a->reported_taken || done != a->reported_done;
    if (now - a->reported_ms < CALLS_CHANGED_MS)
        return;
    json_t *dag = NULL;
    if (pthread_mutex_trylock(&w->dag_lock) == 0) {
        dag = dag_report_locked(w, &changed);
        pthread_mutex_unlock(&w->dag_lock);
    }
    if (now - a->reported_ms < (changed ? CALLS_CHANGED_MS : CALLS_SAME_MS)) {
        json_decref(dag);
        return;
    }
    a->reported_taken = taken;
    a->reported_done = done;
    a->reported_ms = now;
    publish_calls(w, taken, done, dag);
}

/* How long the loop may sleep with nothing to run: until the next thing it
 * does on a clock (a handshake's deadline, a grant not used, the trim after
 * the last task, an actor's calls report), WORKER_IDLE_WAIT_MS at most.
 * Hundreds of idle actors on a node each waking every second cost a CPU. */
static int idle_wait_ms(worker_rt *w, bool trimmed, int64_t last_task_ms)
{
    int64_t now = prism_mono_ms(), wait = WORKER_IDLE_WAIT_MS;
    pthread_mutex_lock(&w->grant_lock);
    bool grant = w->granted_lease[0] && !w->grant_used;
    pthread_mutex_unlock(&w->grant_lock);
    bool dag = true; /* a DAG loop's executions are reported as they change */
    if (pthread_mutex_trylock(&w->dag_lock) == 0) {
        dag = w->dag != NULL;
        pthread_mutex_unlock(&w->dag_lock);
    }
    if (w->nunauthed || grant || (w->actor && dag))
        wait = 1000;
    if (!trimmed && last_task_ms + WORKER_TRIM_AFTER_MS + 1 - now < wait)
        wait = last_task_ms + WORKER_TRIM_AFTER_MS + 1 - now;
    actor_host *a = w->actor;
    if (a && w->bus) {
        int64_t due = a->reported_ms + (calls_changed(a) ? CALLS_CHANGED_MS : CALLS_SAME_MS) - now;
        if (due < wait)
            wait = due;
    }
    return wait < 1 ? 1 : (int)wait;
}

int prism_worker_run(const prism_worker_config *cfg, char *err, size_t errlen)
{
    worker_rt w = {.cfg = cfg, .epfd = -1, .sigfd = -1, .unix_fd = -1, .tcp_fd = -1};
    pthread_mutex_init(&w.client_lock, NULL);
    pthread_mutex_init(&w.dag_lock, NULL);
    pthread_mutex_init(&w.grant_lock, NULL);
    pthread_mutex_init(&w.pool_lock, NULL);
    pthread_cond_init(&w.pool_cond, NULL);
    prism_buf_init(&w.held, (size_t)WIRE_MAX_FRAME + 2u * HOLD_BYTES);
    w.main_thread = pthread_self();
    prism__set_block_hook(on_block, &w);
    int rc = start(&w, err, errlen);
    int64_t spin_until = 0, last_task_ms = prism_mono_ms();
    bool trimmed = true;
    while (rc == 0 && !w.stop) {
        /* Just after a task the next one often follows within microseconds (an
         * owner waiting on each result): polling briefly saves a wake-up. */
        bool spin = !w.queue && prism_mono_ns() < spin_until;
        conn *held = w.held_conn;
        if (!w.queue && held && flush_held(&w) != 0) /* its next job was cancelled */
            conn_drop(&w, held);
        poll_once(&w, w.queue || spin ? 0 : idle_wait_ms(&w, trimmed, last_task_ms));
        if (w.queue && !w.stop) {
            run_next(&w);
            spin_until = prism_mono_ns() + WORKER_SPIN_NS;
            last_task_ms = prism_mono_ms();
            trimmed = false;
        } else if (!trimmed && prism_mono_ms() - last_task_ms > WORKER_TRIM_AFTER_MS) {
            data_spares_release();
            malloc_trim(0);
            trimmed = true;
        }
        report_calls(&w);
        if (w.nunauthed)
            reap_unauthed(&w);
        return_unused_grant(&w);
    }
    finish(&w);
    prism__set_block_hook(NULL, NULL);
    pthread_mutex_destroy(&w.client_lock);
    pthread_mutex_destroy(&w.dag_lock);
    pthread_mutex_destroy(&w.grant_lock);
    pthread_mutex_destroy(&w.pool_lock);
    pthread_cond_destroy(&w.pool_cond);
    prism_buf_free(&w.held);
    return rc;
}
