/* The loop of an actor in a compiled DAG (dag_loop.h). Each pass runs the
 * actor's nodes in the order the graph made them: read one record from every
 * input, run the method on the values read in place (bytes and tensors are
 * not copied), write its return as one record, release the inputs. A record
 * that is an error is passed on without running the method. A constant
 * argument has no channel: its value came with the start call. */
#include "dag_loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "dag_device.h"
#include "dag_edge.h"
#include "dag_record.h"
#include "dag_rendezvous.h"
#include "prism_channel.h"
#include "prism_id.h"
#include "prism_log.h"
#include "prism_sha256.h"
#include "task_ctx.h"

#define SLICE_MS 100 /* a blocked wait looks at the stop flag this often */
#define RENDEZVOUS_MS 5000
#define MAX_CHANS 4096
#define NONCE_HEX 32
#define FETCH_MS 30000 /* a value in the object store: its owner holds it until we are done */
#define SOCKET_MAX 90  /* characters of a rendezvous socket's abstract name */

typedef struct loop_node {
    dag_loop *loop;
    json_int_t index; /* its graph node (-1: not said) */
    prism_actor_method_fn fn;
    prism_task_ctx ctx; /* what the method runs with, made once; ctx.name: "Class.method" */
    size_t nin, nout;
    prism_chan_reader **in;  /* per argument: its channel (NULL: a constant) */
    prism_value **consts;    /* per argument: its constant, owned (NULL: a channel) */
    prism_chan_writer **out; /* one per return */
    dag_held *held;          /* per return: its values in the object store */
    const void **bufs;
    size_t *lens;
    prism_value **args;
    prism_value *views; /* per argument: its value in place, when flat (no allocation) */
    prism_value **rets;
    dag_dev_ring **dev_in;  /* per argument: its edge's CUDA ring, once its record came */
    dag_dev_ring **dev_out; /* per return: its edge's ring, once made */
    bool *dev_edge;         /* per return: device tensors may stay on the device */
    /* Per return: the slot a method writes its bytes into
     * (prism_task_return_bytes), once begun, and the value standing for
     * them in `rets` (never freed). */
    void **slot;
    prism_value *in_slot;
} loop_node;

/* A channel of another node's actor (or driver): one TCP connection. */
typedef struct tcp_edge {
    json_int_t node;   /* the graph node whose values it carries */
    json_int_t reader; /* which of the node's readers is at its other end */
    int listen_fd;     /* an input's listener, until its writer is in */
    int fd;            /* the connection, once proven */
    char secret[DAG_EDGE_SECRET_HEX + 1];
} tcp_edge;

/* A reader actor of this node that may fetch channels this worker made. */
typedef struct serve_peer {
    char nonce[NONCE_HEX + 1];
    int *fds; /* the segments of the channels it gets (owned by their mappings) */
    size_t n;
    bool served;
} serve_peer;

/* What became of the values the loop read and wrote, counted for the
 * listing: a value that takes a slow path (the object store, a decode)
 * shows there, not only in its latency. Names as in dag_loop_report. */
enum {
    READ_IN_PLACE,    /* null, bytes or a host tensor viewed in its slot */
    READ_DECODED,     /* any other value: decoded into a value of its own */
    READ_FROM_STORE,  /* a reference record: fetched from the object store */
    READ_DEVICE,      /* a device tensor from its edge's CUDA ring */
    WRITTEN_IN_SLOT,  /* bytes the method wrote in the slot itself */
    WRITTEN_COPIED,   /* a value encoded into the slot */
    WRITTEN_TO_STORE, /* too large for the slot: its reference written */
    WRITTEN_DEVICE,   /* a device tensor through the edge's CUDA ring */
    WRITTEN_ERRORS,   /* an error record: the method failed, or an input's error passed on */
    NCOUNTS
};
static const char *const count_names[NCOUNTS] = {
    "read_in_place",  "read_decoded",     "read_from_store", "read_device",   "written_in_slot",
    "written_copied", "written_to_store", "written_device",  "written_errors"};

struct dag_loop {
    char id[PRISM_ID_HEX_LEN + 1];
    dag_loop_env env;
    prism_client *client; /* the worker's client, once asked for (the loop thread's) */
    prism_chan **chans;
    json_int_t *chan_nodes; /* the graph node each channel belongs to */
    size_t nchans, chans_cap;
    dag_rdv *rdv;      /* where the readers of the channels it made fetch them */
    serve_peer *peers; /* who may, and what */
    size_t npeers;
    pthread_t server; /* serves them until each came once, stop, or the timeout */
    bool serving;
    tcp_edge *tin, *tout; /* TCP inputs (listened for) and outputs (connected) */
    size_t ntin, ntout;
    uint64_t max_buf_size;
    uint64_t dev_buf_size; /* a device slot's bytes (0: device tensors go to the host) */
    json_t *dev_nodes;     /* the graph nodes whose edges may carry device tensors */
    uint32_t nslots;
    int timeout_ms;
    loop_node *nodes;
    size_t nnodes;
    pthread_t thread;
    bool started;
    int64_t listen_until;     /* listened for, not started: given up after this (monotonic ms) */
    int stop, ended;          /* atomics */
    uint64_t passes;          /* atomic: passes over its nodes done (the loop thread writes it) */
    uint64_t counts[NCOUNTS]; /* atomics, as `passes` */
    char error[200];          /* why the loop ended, set before `ended` */
};

enum { STEP_OK, STEP_END, STEP_DIED };

/* ---------- the thread ---------- */

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static bool stopping(dag_loop *l) { return __atomic_load_n(&l->stop, __ATOMIC_ACQUIRE); }

/* One writer (the loop thread): a plain increment, published for the reports. */
static void count(dag_loop *l, int k)
{
    __atomic_store_n(&l->counts[k], l->counts[k] + 1, __ATOMIC_RELAXED);
}

static int wait_read(dag_loop *l, prism_chan_reader *r, const void **buf, size_t *len)
{
    for (;;) {
        prism_chan_status cs = prism_chan_begin_read(r, buf, len, SLICE_MS);
        if (cs == PRISM_CHAN_OK)
            return STEP_OK;
        if (cs != PRISM_CHAN_TIMEOUT || stopping(l))
            return cs == PRISM_CHAN_PEER_DEAD ? STEP_DIED : STEP_END;
    }
}

static int wait_write(dag_loop *l, prism_chan_writer *w, void **buf)
{
    for (;;) {
        prism_chan_status cs = prism_chan_begin_write(w, buf, SLICE_MS);
        if (cs == PRISM_CHAN_OK)
            return STEP_OK;
        if (cs != PRISM_CHAN_TIMEOUT || stopping(l))
            return cs == PRISM_CHAN_PEER_DEAD ? STEP_DIED : STEP_END;
    }
}

/* The worker's client, which puts and gets the values that go through the
 * object store. The worker keeps it for its life once made, so it is asked
 * for (a lock, and a connect on first use) once, not per value. */
static prism_client *loop_client(dag_loop *l)
{
    if (!l->client) {
        prism_task_ctx ctx = {.client = l->env.client, .runtime = l->env.runtime};
        l->client = l->env.client(&ctx);
    }
    return l->client;
}

/* Argument record `i` as a value; the client only for one in the object
 * store. */
static prism_value *read_arg(dag_loop *l, loop_node *nd, size_t i)
{
    if (nd->consts[i])
        return nd->consts[i];
    const void *buf = nd->bufs[i];
    size_t len = nd->lens[i];
    int tag = prism__dag_tag(buf, len);
    if (tag == DAG_REC_DEVICE) {
        count(l, READ_DEVICE);
        prism_value *v = nd->dev_in[i] ? dag_dev_ring_read(nd->dev_in[i], buf, len) : NULL;
        if (!v)
            prism__fail(PRISM_ERR_INTERNAL, nd->dev_in[i] ? "a malformed device record"
                                                          : "a device tensor, and its edge's "
                                                            "CUDA ring could not be mapped here");
        return v;
    }
    if (prism__dag_view_value(buf, len, &nd->views[i])) {
        count(l, READ_IN_PLACE);
        return &nd->views[i];
    }
    count(l, tag == DAG_REC_REF ? READ_FROM_STORE : READ_DECODED);
    prism_client *c = tag == DAG_REC_REF ? loop_client(l) : NULL;
    return prism__dag_read(c, buf, len, true, FETCH_MS);
}

/* Return `j`'s value gone: freed, unless it stands for bytes in the slot. */
static void drop_ret(loop_node *nd, size_t j)
{
    if (nd->rets[j] != &nd->in_slot[j])
        prism_value_free(nd->rets[j]);
    nd->rets[j] = NULL;
}

/* ctx->return_bytes (prism_task_return_bytes): return `j`'s bytes written
 * by the method straight into its channel's slot, when they fit. The write
 * begins here, before the method fills it; write_one publishes it, or an
 * error record in its place. */
static void *return_in_slot(prism_task_ctx *ctx, size_t j, size_t len, prism_value **ret)
{
    loop_node *nd = ctx->call;
    void *p;
    if (j >= nd->nout || nd->slot[j] ||
        prism__dag_bytes_size(len) > prism_chan_writer_capacity(nd->out[j]) ||
        wait_write(nd->loop, nd->out[j], &p) != STEP_OK)
        return NULL; /* a bytes value of its own; a loop ending finds out at the write */
    prism__dag_held_begin(&nd->held[j]);
    nd->slot[j] = p;
    prism_value *v = &nd->in_slot[j];
    *v = (prism_value){.kind = PRISM_VALUE_BYTES, .len = len};
    v->data = prism__dag_bytes_room(p, prism_chan_writer_capacity(nd->out[j]), len);
    *ret = v;
    return v->data;
}

/* Runs the method on the records read: nd->rets are its values, or *emsg
 * (heap) says why it failed. The arguments stay in nd->args for the caller
 * to free once the returns are out (the next actor waits for those). */
static void run_method(dag_loop *l, loop_node *nd, char **emsg)
{
    size_t n = 0;
    while (n < nd->nin && (nd->args[n] = read_arg(l, nd, n)))
        n++;
    if (n < nd->nin) {
        char msg[600];
        snprintf(msg, sizeof msg, "its argument %zu could not be read: %s", n, prism_last_error());
        *emsg = strdup(msg);
    } else {
        prism_task_ctx *ctx = &nd->ctx;
        ctx->error = NULL;
        prism_status s = nd->fn(ctx, l->env.state, (const prism_value *const *)nd->args, nd->nin,
                                nd->rets, nd->nout);
        prism__task_ctx_settle(ctx);
        for (size_t i = 0; i < nd->nout; i++) {
            if (s != PRISM_OK) {
                drop_ret(nd, i);
            } else if (!nd->rets[i]) {
                nd->rets[i] = prism_value_null();
            }
        }
        if (s != PRISM_OK)
            *emsg = strdup(ctx->error ? ctx->error : prism_status_text(s));
        free(ctx->error);
        ctx->error = NULL;
    }
}

/* One record of return `j` on a shared-memory channel: `rec` (`len`
 * bytes) when given, else the device record of its value, or an error
 * record saying why that could not be made (the execution's value). */
static int write_record(dag_loop *l, loop_node *nd, size_t j, const void *rec, size_t len)
{
    void *p;
    int rc = wait_write(l, nd->out[j], &p);
    if (rc != STEP_OK)
        return rc;
    dag_held *h = &nd->held[j];
    prism__dag_held_begin(h);
    size_t cap = prism_chan_writer_capacity(nd->out[j]);
    char err[400] = "";
    if (rec) {
        memcpy(p, rec, len);
    } else if ((len = dag_dev_ring_put(nd->dev_out[j], (uint32_t)h->slot, nd->rets[j], p, cap, err,
                                       sizeof err))) {
        count(l, WRITTEN_DEVICE);
    } else {
        /* the slot of the write being published is free of every reader,
         * so is the ring's slot of the same number */
        len = prism__dag_put_error(p, cap, DAG_REC_ERROR, nd->ctx.name, err);
        count(l, WRITTEN_ERRORS);
    }
    prism_chan_status cs = prism_chan_end_write(nd->out[j], len);
    prism__dag_held_end(h, NULL);
    return cs == PRISM_CHAN_PEER_DEAD ? STEP_DIED : STEP_OK;
}

/* Return `j`, a device tensor, through its edge's CUDA ring (made, and its
 * record sent, on first use). STEP_OK with `*staged` set when the edge
 * cannot take it (the ring or its record could not be made): the caller
 * then sends it as a host copy, as every later value of the edge. */
static int write_device(dag_loop *l, loop_node *nd, size_t j, bool *staged)
{
    if (!nd->dev_out[j]) {
        /* The ring record is made before the channel write that carries it:
         * a slot begun must hold a record, and anything but this one would
         * count as an execution's value for its readers. */
        char err[300] = "out of memory";
        size_t len = 0;
        uint8_t *rec = NULL;
        if (dag_dev_ring_create(&nd->dev_out[j], prism_value_device(nd->rets[j]),
                                (uint32_t)nd->held[j].nslots, l->dev_buf_size, err,
                                sizeof err) == 0 &&
            (len = dag_dev_ring_record(nd->dev_out[j], NULL, 0)) >
                prism_chan_writer_capacity(nd->out[j]))
            snprintf(err, sizeof err, "the ring's handles do not fit max_buf_size");
        else if (nd->dev_out[j] && (rec = malloc(len)) &&
                 dag_dev_ring_record(nd->dev_out[j], rec, len) == len) {
            int rc = write_record(l, nd, j, rec, len);
            free(rec);
            return rc != STEP_OK ? rc : write_record(l, nd, j, NULL, 0);
        }
        prism_log(PRISM_LOG_WARN,
                  "%s: device tensors on its channel %zu go through host memory (%s)", nd->ctx.name,
                  j, err);
        free(rec);
        dag_dev_ring_destroy(nd->dev_out[j]);
        nd->dev_out[j] = NULL;
        nd->dev_edge[j] = false;
        *staged = true;
        return STEP_OK;
    }
    return write_record(l, nd, j, NULL, 0);
}

/* Writes return `j`'s record: the input record `fwd` passed on, the value,
 * or the error (*emsg, set here when the value does not fit). */
static int write_one(dag_loop *l, loop_node *nd, size_t j, int fwd, char **emsg)
{
    const prism_value *ret = nd->rets[j];
    prism_value *host = NULL;
    void *p = nd->slot[j]; /* begun by return_in_slot */
    nd->slot[j] = NULL;
    if (fwd < 0 && !*emsg && ret && prism__value_on_device(ret)) {
        bool staged =
            p || !(nd->dev_edge[j] && prism_value_device(ret) >= 0 && ret->len <= l->dev_buf_size);
        if (!staged) {
            int rc = write_device(l, nd, j, &staged);
            if (!staged)
                return rc;
        }
        char err[400];
        if (!(ret = host = dag_dev_to_host(nd->rets[j], err, sizeof err)))
            *emsg = strdup(err);
    }
    if (!p) {
        int rc = wait_write(l, nd->out[j], &p);
        if (rc != STEP_OK) {
            prism_value_free(host);
            return rc;
        }
        prism__dag_held_begin(&nd->held[j]);
    }
    size_t cap = prism_chan_writer_capacity(nd->out[j]), len = 0;
    prism_ref *held = NULL;
    int what = WRITTEN_ERRORS;
    if (fwd >= 0 && nd->lens[fwd] <= cap) {
        memcpy(p, nd->bufs[fwd], nd->lens[fwd]);
        len = nd->lens[fwd];
    } else if (!*emsg && ret == &nd->in_slot[j]) {
        len = prism__dag_bytes_size(ret->len); /* written in place */
        what = WRITTEN_IN_SLOT;
    } else if (!*emsg && ret && !(len = prism__dag_put(loop_client(l), p, cap, ret, &held))) {
        char msg[600];
        snprintf(msg, sizeof msg,
                 "it returned a value holding an object reference, or one larger than "
                 "max_buf_size that the object store did not take (%s)",
                 prism_last_error());
        *emsg = strdup(msg);
    } else if (len) {
        what = held ? WRITTEN_TO_STORE : WRITTEN_COPIED;
    }
    if (!len)
        len = prism__dag_put_error(p, cap, DAG_REC_ERROR, nd->ctx.name,
                                   *emsg ? *emsg : "out of memory");
    count(l, what);
    prism_chan_status cs = prism_chan_end_write(nd->out[j], len);
    prism__dag_held_end(&nd->held[j], held);
    prism_value_free(host);
    /* A TCP channel whose socket is full: the rest of the frame must leave
     * before the loop blocks on a read, or a reader downstream could wait
     * for it forever. Waited for in slices, as a full ring is. */
    while (cs == PRISM_CHAN_QUEUED || cs == PRISM_CHAN_TIMEOUT) {
        if (stopping(l))
            return STEP_END;
        cs = prism_chan_flush(nd->out[j], SLICE_MS);
    }
    return cs == PRISM_CHAN_PEER_DEAD ? STEP_DIED : STEP_OK;
}

/* Writes the node's records for the inputs read: the first error among them
 * passed on, or what the method made of them. */
static int run_and_write(dag_loop *l, loop_node *nd)
{
    int fwd = -1;
    for (size_t i = 0; fwd < 0 && i < nd->nin; i++)
        if (!nd->consts[i] && !prism__dag_is_value(nd->bufs[i], nd->lens[i]))
            fwd = (int)i;
    char *emsg = NULL;
    if (fwd < 0)
        run_method(l, nd, &emsg);
    int rc = STEP_OK;
    for (size_t j = 0; rc == STEP_OK && j < nd->nout; j++)
        rc = write_one(l, nd, j, fwd, &emsg);
    for (size_t j = 0; j < nd->nout; j++) {
        drop_ret(nd, j);
        nd->slot[j] = NULL; /* a write left begun: the loop ends, its channel is closed */
    }
    for (size_t i = 0; i < nd->nin; i++) {
        if (nd->args[i] != &nd->views[i] && nd->args[i] != nd->consts[i])
            prism_value_free(nd->args[i]);
        nd->args[i] = NULL;
    }
    free(emsg);
    return rc;
}

/* A ring record on argument `i`'s edge: its writer's CUDA ring, mapped here
 * for the device records that follow. */
static void map_ring(loop_node *nd, size_t i)
{
    char err[300];
    dag_dev_ring_destroy(nd->dev_in[i]);
    if (!(nd->dev_in[i] = dag_dev_ring_open(nd->bufs[i], nd->lens[i], err, sizeof err)))
        prism_log(PRISM_LOG_WARN, "%s: its argument %zu's CUDA ring: %s", nd->ctx.name, i, err);
}

static int step(dag_loop *l, loop_node *nd)
{
    size_t got = 0; /* arguments read (or constant) */
    int rc = STEP_OK;
    while (rc == STEP_OK && got < nd->nin) {
        if (!nd->in[got]) {
            got++;
            continue;
        }
        rc = wait_read(l, nd->in[got], &nd->bufs[got], &nd->lens[got]);
        if (rc == STEP_OK && prism__dag_tag(nd->bufs[got], nd->lens[got]) == DAG_REC_RING) {
            map_ring(nd, got);
            prism_chan_end_read(nd->in[got]);
        } else if (rc == STEP_OK) {
            got++;
        }
    }
    if (rc == STEP_OK)
        rc = run_and_write(l, nd);
    for (size_t i = 0; i < got; i++)
        if (nd->in[i])
            prism_chan_end_read(nd->in[i]);
    return rc;
}

/* A peer died: tell whoever reads this actor, so that the driver's get says so
 * rather than waiting for its own liveness check. */
static void write_died(dag_loop *l)
{
    for (size_t i = 0; i < l->nnodes; i++) {
        loop_node *nd = &l->nodes[i];
        char msg[400];
        snprintf(msg, sizeof msg, "an actor that %s depends on died", nd->ctx.name);
        for (size_t j = 0; j < nd->nout; j++) {
            void *p;
            if (prism_chan_begin_write(nd->out[j], &p, SLICE_MS) != PRISM_CHAN_OK)
                continue;
            size_t cap = prism_chan_writer_capacity(nd->out[j]);
            prism_chan_end_write(nd->out[j],
                                 prism__dag_put_error(p, cap, DAG_REC_DIED, nd->ctx.name, msg));
        }
    }
}

static void *loop_main(void *arg)
{
    dag_loop *l = arg;
    int rc = STEP_OK;
    while (rc == STEP_OK) {
        for (size_t i = 0; rc == STEP_OK && i < l->nnodes; i++)
            rc = step(l, &l->nodes[i]);
        if (rc == STEP_OK) /* one writer: a plain increment, published for the reports */
            __atomic_store_n(&l->passes, l->passes + 1, __ATOMIC_RELAXED);
    }
    if (rc == STEP_DIED && !stopping(l)) {
        snprintf(l->error, sizeof l->error,
                 "a peer of the DAG died (the writer of an input or the reader of an output)");
        write_died(l);
    }
    for (size_t i = 0; i < l->nnodes; i++)
        for (size_t j = 0; j < l->nodes[i].nout; j++)
            prism_chan_writer_close(l->nodes[i].out[j], 0);
    __atomic_store_n(&l->ended, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* ---------- setting it up ---------- */

/* Whether the rendezvous socket's other end runs as this worker's uid, as
 * the driver does: an abstract name is anyone's to bind. */
static bool peer_is_us(int s)
{
    struct ucred cred;
    socklen_t clen = sizeof cred;
    return getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0 && cred.uid == getuid();
}

/* Connects to the abstract socket `name`; a socket not there yet (another
 * actor's worker about to listen) is tried again until `wait_ms` ran out. */
static int connect_abstract(const char *name, int wait_ms)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int len = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "%s", name);
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len);
    int64_t deadline = mono_ms() + wait_ms;
    for (;;) {
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0 || connect(s, (struct sockaddr *)&a, alen) == 0)
            return s;
        int e = errno;
        close(s);
        if (e != ECONNREFUSED || mono_ms() >= deadline) {
            errno = e;
            return -1;
        }
        struct timespec ts = {.tv_nsec = 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* A rendezvous socket (abstract namespace: the driver's, or another actor's
 * worker's on this node) hands over the channels' fds to the holder of the
 * nonce the start call carried. */
static int fetch_fds(const char *name, const char *nonce, int *fds, size_t n, int wait_ms,
                     char *err, size_t errlen)
{
    int s = connect_abstract(name, wait_ms);
    struct timeval tv = {.tv_sec = RENDEZVOUS_MS / 1000};
    size_t got = 0;
    if (s >= 0 && setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0 && peer_is_us(s) &&
        send(s, nonce, NONCE_HEX, MSG_NOSIGNAL) == NONCE_HEX)
        while (got < n && prism_chan_recv_fd(s, &fds[got]) == 0)
            got++;
    if (got < n)
        snprintf(err, errlen, "cannot get the DAG's channels from %s (%s)", name,
                 strerror(errno ? errno : EPROTO));
    if (s >= 0)
        close(s);
    if (got == n)
        return 0;
    while (got > 0)
        close(fds[--got]);
    return -1;
}

static prism_chan *chan_of(dag_loop *l, json_int_t node)
{
    for (size_t i = 0; i < l->nchans; i++)
        if (l->chan_nodes[i] == node)
            return l->chans[i];
    return NULL;
}

/* Fetches the channels of graph nodes `chans` from rendezvous socket `sock`
 * and maps them. */
static int open_chans(dag_loop *l, json_t *chans, const char *sock, const char *nonce, int wait_ms,
                      char *err, size_t errlen)
{
    size_t n = json_array_size(chans);
    if (n == 0)
        return 0;
    int *fds = calloc(n, sizeof *fds);
    if (!fds || n > l->chans_cap - l->nchans || !sock || strlen(sock) > SOCKET_MAX ||
        !prism_is_hex(nonce, NONCE_HEX)) {
        free(fds);
        snprintf(err, errlen, "too many channels, a malformed rendezvous, or out of memory");
        return -1;
    }
    if (fetch_fds(sock, nonce, fds, n, wait_ms, err, errlen) != 0) {
        free(fds);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        l->chan_nodes[l->nchans] = json_integer_value(json_array_get(chans, i));
        if (prism_chan_open_fd(&l->chans[l->nchans], fds[i], err, errlen) != PRISM_CHAN_OK)
            rc = -1;
        else
            l->nchans++;
    }
    for (size_t i = 0; i < n; i++) /* each mapping holds its own reference */
        close(fds[i]);
    free(fds);
    return rc;
}

/* ---------- channels made here (docs/dags.md#shared-memory-on-other-nodes) ---------- */

/* The channels this worker writes whose readers are all on its node (not
 * the driver's): "make": [[node, readers], ...]. */
static int make_chans(dag_loop *l, json_t *make, char *err, size_t errlen)
{
    for (size_t i = 0; i < json_array_size(make); i++) {
        json_t *e = json_array_get(make, i);
        json_int_t node = json_integer_value(json_array_get(e, 0));
        json_int_t nreaders = json_integer_value(json_array_get(e, 1));
        if (l->nchans >= l->chans_cap || nreaders < 1 || nreaders > PRISM_CHAN_MAX_READERS) {
            snprintf(err, errlen, "a malformed channel to make");
            return -1;
        }
        prism_chan_options o = {
            .nslots = l->nslots, .nreaders = (uint32_t)nreaders, .max_buf_size = l->max_buf_size};
        if (prism_chan_create(&l->chans[l->nchans], &o, err, errlen) != PRISM_CHAN_OK)
            return -1;
        l->chan_nodes[l->nchans++] = node;
    }
    return 0;
}

static prism_chan *chan_of(dag_loop *l, json_int_t node);

/* Sends reader `p` its channels, once. */
static void serve_one(int fd, serve_peer *p)
{
    p->served = true;
    for (size_t i = 0; i < p->n; i++)
        if (prism_chan_send_fd(fd, p->fds[i]) != 0)
            return;
}

/* The server thread: hands each reader actor its channels when it proves
 * itself with its nonce (the rendezvous took only peers of our uid); anyone
 * else gets nothing. Ends once every reader came, or at stop or timeout. */
static void *serve_main(void *arg)
{
    dag_loop *l = arg;
    int64_t deadline = mono_ms() + l->timeout_ms;
    size_t left = l->npeers;
    while (left > 0 && !stopping(l) && mono_ms() < deadline) {
        char nonce[NONCE_HEX];
        int fd = prism__dag_rdv_next(l->rdv, SLICE_MS, nonce);
        if (fd < 0)
            continue;
        for (size_t i = 0; i < l->npeers; i++)
            if (!l->peers[i].served && prism_equal_ct(l->peers[i].nonce, nonce, NONCE_HEX)) {
                serve_one(fd, &l->peers[i]);
                left--;
                break;
            }
        close(fd);
    }
    prism__dag_rdv_close(l->rdv);
    l->rdv = NULL;
    return NULL;
}

/* "serve": {"socket": "prism-dag-<dag>-<random>", "peers": [[nonce, [node, ...]], ...]}
 * (nodes of channels made here): listens there and serves in a thread of its
 * own, so that two workers that fetch from each other do not wait on each
 * other. The thread sees only the peers' table, made before it starts. */
static int start_serving(dag_loop *l, json_t *serve, char *err, size_t errlen)
{
    json_t *peers = json_object_get(serve, "peers");
    const char *sock = json_string_value(json_object_get(serve, "socket"));
    size_t n = json_array_size(peers);
    if (n == 0)
        return 0;
    size_t pre = strlen("prism-dag-");
    if (!sock || strncmp(sock, "prism-dag-", pre) != 0 || strlen(sock) > SOCKET_MAX ||
        n > MAX_CHANS || !(l->peers = calloc(n, sizeof *l->peers))) {
        snprintf(err, errlen, "a malformed \"serve\" in the DAG's spec");
        return -1;
    }
    for (; l->npeers < n; l->npeers++) {
        json_t *e = json_array_get(peers, l->npeers), *nodes = json_array_get(e, 1);
        serve_peer *p = &l->peers[l->npeers];
        const char *nonce = json_string_value(json_array_get(e, 0));
        if (!prism_is_hex(nonce, NONCE_HEX) || json_array_size(nodes) > MAX_CHANS ||
            !(p->fds = calloc(json_array_size(nodes) + 1, sizeof *p->fds))) {
            snprintf(err, errlen, "a malformed peer in the DAG's spec");
            return -1;
        }
        snprintf(p->nonce, sizeof p->nonce, "%s", nonce);
        for (; p->n < json_array_size(nodes); p->n++) {
            prism_chan *ch = chan_of(l, json_integer_value(json_array_get(nodes, p->n)));
            if (!ch) {
                snprintf(err, errlen, "a peer of the DAG's spec reads a channel not made here");
                return -1;
            }
            p->fds[p->n] = prism_chan_fd(ch);
        }
    }
    if (prism__dag_rdv_listen(&l->rdv, sock + pre) != PRISM_OK) {
        snprintf(err, errlen, "%s", prism_last_error());
        return -1;
    }
    if (pthread_create(&l->server, NULL, serve_main, l) != 0) {
        snprintf(err, errlen, "cannot start the DAG's rendezvous thread");
        return -1;
    }
    l->serving = true;
    return 0;
}

/* "fetch": [[socket, nonce, [node, ...]], ...]: the channels made by the
 * workers of the other actors of this node that this one reads. */
static int fetch_peers(dag_loop *l, json_t *fetch, char *err, size_t errlen)
{
    for (size_t i = 0; i < json_array_size(fetch); i++) {
        json_t *e = json_array_get(fetch, i);
        const char *sock = json_string_value(json_array_get(e, 0));
        if (!sock || strncmp(sock, "prism-dag-", 10) != 0 ||
            open_chans(l, json_array_get(e, 2), sock, json_string_value(json_array_get(e, 1)),
                       l->timeout_ms, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* Room for every channel the spec names: the driver's, those made here and
 * those fetched from this node's other workers. */
static int alloc_chans(dag_loop *l, json_t *spec)
{
    size_t n = json_array_size(json_object_get(spec, "chans")) +
               json_array_size(json_object_get(spec, "make"));
    json_t *fetch = json_object_get(spec, "fetch");
    for (size_t i = 0; i < json_array_size(fetch); i++)
        n += json_array_size(json_array_get(json_array_get(fetch, i), 2));
    if (n > MAX_CHANS)
        return -1;
    l->chans = calloc(n + 1, sizeof *l->chans);
    l->chan_nodes = calloc(n + 1, sizeof *l->chan_nodes);
    l->chans_cap = n;
    return l->chans && l->chan_nodes ? 0 : -1;
}

static tcp_edge *tcp_of(tcp_edge *e, size_t n, json_int_t node, json_int_t reader)
{
    for (size_t i = 0; i < n; i++)
        if (e[i].node == node && (reader < 0 || e[i].reader == reader))
            return &e[i];
    return NULL;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Takes the one proven connection of every TCP input, all at once (a
 * writer connects its edges in an order of its own), then closes the
 * listeners. Runs beside the start call, which connects the outputs: two
 * actors that write to each other must not wait on each other. */
static void *accept_inputs(void *arg)
{
    dag_loop *l = arg;
    int *listens = calloc(l->ntin + 1, sizeof *listens), *fds = calloc(l->ntin + 1, sizeof *fds);
    const char **secrets = calloc(l->ntin + 1, sizeof *secrets);
    for (size_t i = 0; listens && fds && secrets && i < l->ntin; i++) {
        listens[i] = l->tin[i].secret[0] ? l->tin[i].listen_fd : -1;
        secrets[i] = l->tin[i].secret;
    }
    if (listens && fds && secrets) /* else no input connects: the start fails saying so */
        prism__dag_edge_accept_all(listens, secrets, l->ntin, l->timeout_ms, fds);
    for (size_t i = 0; i < l->ntin; i++) {
        if (listens && fds && secrets && listens[i] >= 0)
            l->tin[i].fd = fds[i];
        close_fd(&l->tin[i].listen_fd);
    }
    free(listens);
    free(fds);
    free(secrets);
    return NULL;
}

/* The start spec's TCP edges: "tcp_in": [[node, reader, secret], ...] for
 * inputs the listen call opened a listener for, "tcp_out": [[node, reader,
 * "host:port", secret], ...] (a node read by several readers has one
 * connection each). Listeners of inputs that turned out to be shared memory
 * are closed. */
static int open_tcp(dag_loop *l, json_t *spec, char *err, size_t errlen)
{
    json_t *tin = json_object_get(spec, "tcp_in"), *tout = json_object_get(spec, "tcp_out");
    size_t nout = json_array_size(tout);
    for (size_t i = 0; i < json_array_size(tin); i++) {
        json_t *e = json_array_get(tin, i);
        json_int_t reader = json_integer_value(json_array_get(e, 1));
        tcp_edge *t =
            reader < 0 ? NULL
                       : tcp_of(l->tin, l->ntin, json_integer_value(json_array_get(e, 0)), reader);
        const char *secret = json_string_value(json_array_get(e, 2));
        if (!t || !prism_is_hex(secret, DAG_EDGE_SECRET_HEX)) {
            snprintf(err, errlen, "a TCP input of the DAG's spec was not listened for");
            return -1;
        }
        snprintf(t->secret, sizeof t->secret, "%s", secret);
    }
    for (size_t i = 0; i < l->ntin; i++)
        if (!l->tin[i].secret[0])
            close_fd(&l->tin[i].listen_fd);
    if (nout > MAX_CHANS || !(l->tout = calloc(nout + 1, sizeof *l->tout))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_t acceptor;
    bool accepting = pthread_create(&acceptor, NULL, accept_inputs, l) == 0;
    int rc = accepting ? 0 : -1;
    size_t sndbuf = (size_t)l->nslots * (size_t)(l->max_buf_size + 4);
    for (; rc == 0 && l->ntout < nout; l->ntout++) {
        json_t *e = json_array_get(tout, l->ntout);
        tcp_edge *t = &l->tout[l->ntout];
        const char *addr = json_string_value(json_array_get(e, 2));
        const char *secret = json_string_value(json_array_get(e, 3));
        t->node = json_integer_value(json_array_get(e, 0));
        t->reader = json_integer_value(json_array_get(e, 1));
        t->listen_fd = -1;
        t->fd = addr && prism_is_hex(secret, DAG_EDGE_SECRET_HEX)
                    ? prism__dag_edge_connect(addr, secret, sndbuf, l->timeout_ms)
                    : -1;
        if (t->fd < 0) {
            snprintf(err, errlen, "cannot connect the DAG's edge to %s: %s", addr ? addr : "?",
                     strerror(errno));
            rc = -1;
        }
    }
    if (accepting)
        pthread_join(acceptor, NULL);
    for (size_t i = 0; rc == 0 && i < l->ntin; i++)
        if (l->tin[i].secret[0] && l->tin[i].fd < 0) {
            snprintf(err, errlen,
                     "the writer of the DAG's edge from node %lld did not connect "
                     "with its secret in time",
                     (long long)l->tin[i].node);
            rc = -1;
        }
    return rc;
}

/* The writer of node `node`'s TCP channel: its one connection's, or a
 * fan-out over one per reader. */
static prism_chan_status open_tcp_writer(dag_loop *l, json_int_t node, prism_chan_writer **out,
                                         const prism_chan_wait *wait)
{
    size_t n = 0;
    for (size_t i = 0; i < l->ntout; i++)
        n += l->tout[i].node == node;
    prism_chan_writer **ws = calloc(n + 1, sizeof *ws);
    prism_chan_status cs = ws && n ? PRISM_CHAN_OK : PRISM_CHAN_INVALID;
    size_t k = 0;
    for (size_t i = 0; cs == PRISM_CHAN_OK && i < l->ntout; i++)
        if (l->tout[i].node == node &&
            (cs = prism_chan_writer_open_socket(&ws[k], l->tout[i].fd, l->max_buf_size, wait)) ==
                PRISM_CHAN_OK)
            k++;
    if (cs == PRISM_CHAN_OK && n == 1) {
        *out = ws[0];
    } else if (cs == PRISM_CHAN_OK && prism_chan_writer_open_fanout(out, ws, n) == PRISM_CHAN_OK) {
        /* the fan-out owns them */
    } else {
        cs = cs == PRISM_CHAN_OK ? PRISM_CHAN_ERROR : cs;
        while (k > 0)
            prism_chan_writer_destroy(ws[--k]);
    }
    free(ws);
    return cs;
}

/* One node of the spec: {"method": M, "in": [[node, reader] or {"const": k}, ...],
 * "out": [node, ...]}; consts[k] is copied. */
static int open_node(dag_loop *l, loop_node *nd, json_t *j, const prism_value *const *consts,
                     size_t nconsts, const prism_chan_wait *wait, char *err, size_t errlen)
{
    const char *method = json_string_value(json_object_get(j, "method"));
    json_t *in = json_object_get(j, "in"), *out = json_object_get(j, "out");
    nd->nin = json_array_size(in);
    nd->nout = json_array_size(out);
    nd->in = calloc(nd->nin + 1, sizeof *nd->in);
    nd->consts = calloc(nd->nin + 1, sizeof *nd->consts);
    nd->out = calloc(nd->nout + 1, sizeof *nd->out);
    nd->bufs = calloc(nd->nin + 1, sizeof *nd->bufs);
    nd->lens = calloc(nd->nin + 1, sizeof *nd->lens);
    nd->args = calloc(nd->nin + 1, sizeof *nd->args);
    nd->views = calloc(nd->nin + 1, sizeof *nd->views);
    nd->rets = calloc(nd->nout + 1, sizeof *nd->rets);
    nd->held = calloc(nd->nout + 1, sizeof *nd->held);
    nd->dev_in = calloc(nd->nin + 1, sizeof *nd->dev_in);
    nd->dev_out = calloc(nd->nout + 1, sizeof *nd->dev_out);
    nd->dev_edge = calloc(nd->nout + 1, sizeof *nd->dev_edge);
    nd->slot = calloc(nd->nout + 1, sizeof *nd->slot);
    nd->in_slot = calloc(nd->nout + 1, sizeof *nd->in_slot);
    if (!method || !nd->in || !nd->consts || !nd->out || !nd->bufs || !nd->lens || !nd->args ||
        !nd->views || !nd->rets || !nd->held || !nd->dev_in || !nd->dev_out || !nd->dev_edge ||
        !nd->slot || !nd->in_slot || nd->nin == 0 || nd->nout == 0 || nd->nout > 64) {
        snprintf(err, errlen, "a malformed DAG node");
        return -1;
    }
    nd->loop = l;
    nd->ctx = (prism_task_ctx){.client = l->env.client,
                               .runtime = l->env.runtime,
                               .call = nd,
                               .returns = nd->rets,
                               .nreturns = nd->nout,
                               .return_bytes = return_in_slot};
    snprintf(nd->ctx.name, sizeof nd->ctx.name, "%s.%s", l->env.cls, method);
    json_t *index = json_object_get(j, "index");
    nd->index = json_is_integer(index) ? json_integer_value(index) : -1;
    if (!(nd->fn = l->env.resolve(l->env.ud, method, err, errlen)))
        return -1;
    size_t nchans = 0;
    for (size_t i = 0; i < nd->nin; i++) {
        json_t *e = json_array_get(in, i);
        json_t *k = json_object_get(e, "const");
        if (k) {
            json_int_t ki = json_integer_value(k);
            if (!json_is_integer(k) || ki < 0 || (size_t)ki >= nconsts ||
                !(nd->consts[i] = prism_value_copy(consts[ki]))) {
                snprintf(err, errlen, "%s: its argument %zu is a constant not sent", nd->ctx.name,
                         i);
                return -1;
            }
            continue;
        }
        nchans++;
        json_int_t node = json_integer_value(json_array_get(e, 0));
        json_int_t reader = json_integer_value(json_array_get(e, 1));
        prism_chan *ch = chan_of(l, node);
        tcp_edge *t = reader < 0 ? NULL : tcp_of(l->tin, l->ntin, node, reader);
        if (t && t->fd >= 0 &&
            prism_chan_reader_open_socket(&nd->in[i], t->fd, l->max_buf_size, wait) ==
                PRISM_CHAN_OK)
            continue;
        if (!ch || reader < 0 || reader >= PRISM_CHAN_MAX_READERS ||
            prism_chan_reader_open_shm(&nd->in[i], ch, (uint32_t)reader, wait) != PRISM_CHAN_OK) {
            snprintf(err, errlen, "%s: cannot read its argument %zu's channel", nd->ctx.name, i);
            return -1;
        }
    }
    if (nchans == 0) {
        snprintf(err, errlen, "%s: every argument is a constant", nd->ctx.name);
        return -1;
    }
    for (size_t i = 0; i < nd->nout; i++) {
        json_int_t node = json_integer_value(json_array_get(out, i));
        prism_chan *ch = chan_of(l, node);
        prism_chan_options o = {.nslots = l->nslots};
        if (ch)
            prism_chan_get_options(ch, &o);
        prism_chan_status cs = ch ? prism_chan_writer_open_shm(&nd->out[i], ch, wait)
                                  : open_tcp_writer(l, node, &nd->out[i], wait);
        if (cs != PRISM_CHAN_OK || prism__dag_held_init(&nd->held[i], o.nslots) != 0) {
            snprintf(err, errlen, "%s: cannot write its channel %zu", nd->ctx.name, i);
            return -1;
        }
        for (size_t k = 0; ch && k < json_array_size(l->dev_nodes); k++)
            if (json_integer_value(json_array_get(l->dev_nodes, k)) == node)
                nd->dev_edge[i] = true;
    }
    return 0;
}

static int parse_and_open(dag_loop *l, json_t *spec, const prism_value *const *consts,
                          size_t nconsts, char *err, size_t errlen)
{
    const char *id = json_string_value(json_object_get(spec, "dag"));
    const char *sock = json_string_value(json_object_get(spec, "socket"));
    const char *nonce = json_string_value(json_object_get(spec, "nonce"));
    json_t *nodes = json_object_get(spec, "nodes");
    if (!prism_is_hex(id, PRISM_ID_HEX_LEN) || !sock || strlen(sock) > 90 ||
        !prism_is_hex(nonce, NONCE_HEX) || !json_array_size(nodes) ||
        json_array_size(nodes) > MAX_CHANS) {
        snprintf(err, errlen, "__prism_dag_start takes the DAG's spec (docs/dags.md)");
        return -1;
    }
    snprintf(l->id, sizeof l->id, "%s", id);
    prism_chan_wait wait = {
        .spin_us = (uint32_t)json_integer_value(json_object_get(spec, "spin_us"))};
    json_int_t mbs = json_integer_value(json_object_get(spec, "max_buf_size"));
    json_int_t nslots = json_integer_value(json_object_get(spec, "nslots"));
    json_int_t tmo = json_integer_value(json_object_get(spec, "timeout_ms"));
    l->max_buf_size = mbs >= 64 && mbs <= (1 << 30) ? (uint64_t)mbs : 64;
    l->nslots = nslots >= 1 && nslots <= 1024 ? (uint32_t)nslots : 1;
    l->timeout_ms = tmo >= 1 && tmo <= 600000 ? (int)tmo : RENDEZVOUS_MS;
    json_int_t dbs = json_integer_value(json_object_get(spec, "device_buf_size"));
    l->dev_buf_size = dbs > 0 ? (uint64_t)dbs : 0;
    json_t *dev = json_object_get(spec, "device_out");
    l->dev_nodes = json_is_array(dev) && l->dev_buf_size ? json_incref(dev) : json_array();
    if (alloc_chans(l, spec) != 0) {
        snprintf(err, errlen, "too many channels, or out of memory");
        return -1;
    }
    if (open_chans(l, json_object_get(spec, "chans"), sock, nonce, 0, err, errlen) != 0 ||
        make_chans(l, json_object_get(spec, "make"), err, errlen) != 0 ||
        start_serving(l, json_object_get(spec, "serve"), err, errlen) != 0 ||
        fetch_peers(l, json_object_get(spec, "fetch"), err, errlen) != 0 ||
        open_tcp(l, spec, err, errlen) != 0)
        return -1;
    l->nodes = calloc(json_array_size(nodes), sizeof *l->nodes);
    if (!l->nodes) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < json_array_size(nodes); i++) {
        l->nnodes++;
        if (open_node(l, &l->nodes[i], json_array_get(nodes, i), consts, nconsts, &wait, err,
                      errlen) != 0)
            return -1;
    }
    return 0;
}

static void loop_free(dag_loop *l)
{
    if (l->serving) {
        __atomic_store_n(&l->stop, 1, __ATOMIC_RELEASE);
        pthread_join(l->server, NULL);
    }
    prism__dag_rdv_close(l->rdv); /* its thread closed it, unless it never started */
    for (size_t i = 0; i < l->npeers; i++)
        free(l->peers[i].fds);
    free(l->peers);
    for (size_t i = 0; i < l->nnodes; i++) {
        loop_node *nd = &l->nodes[i];
        for (size_t j = 0; nd->in && j < nd->nin; j++)
            prism_chan_reader_destroy(nd->in[j]);
        for (size_t j = 0; nd->consts && j < nd->nin; j++)
            prism_value_free(nd->consts[j]);
        free(nd->consts);
        for (size_t j = 0; nd->out && j < nd->nout; j++)
            prism_chan_writer_destroy(nd->out[j]);
        for (size_t j = 0; nd->held && j < nd->nout; j++)
            prism__dag_held_free(&nd->held[j]);
        for (size_t j = 0; nd->dev_in && j < nd->nin; j++)
            dag_dev_ring_destroy(nd->dev_in[j]);
        for (size_t j = 0; nd->dev_out && j < nd->nout; j++)
            dag_dev_ring_destroy(nd->dev_out[j]);
        free(nd->dev_in);
        free(nd->dev_out);
        free(nd->dev_edge);
        free(nd->slot);
        free(nd->in_slot);
        free(nd->held);
        free(nd->in);
        free(nd->out);
        free(nd->rets);
        free(nd->bufs);
        free(nd->lens);
        free(nd->args);
        free(nd->views);
    }
    for (size_t i = 0; i < l->nchans; i++)
        prism_chan_destroy(l->chans[i]);
    for (size_t i = 0; i < l->ntin; i++) {
        close_fd(&l->tin[i].listen_fd);
        close_fd(&l->tin[i].fd);
    }
    for (size_t i = 0; i < l->ntout; i++)
        close_fd(&l->tout[i].fd);
    free(l->tin);
    free(l->tout);
    free(l->nodes);
    free(l->chans);
    free(l->chan_nodes);
    json_decref(l->dev_nodes);
    free(l);
}

int dag_loop_listen(dag_loop **out, const char *spec, const dag_loop_env *env, char **reply,
                    char *err, size_t errlen)
{
    *reply = NULL;
    if (*out && dag_loop_ended(*out)) {
        dag_loop_stop(*out);
        *out = NULL;
    }
    if (*out) {
        snprintf(err, errlen, "the actor is in compiled DAG %s already", (*out)->id);
        return -1;
    }
    json_t *j = spec ? json_loads(spec, 0, NULL) : NULL;
    json_t *in = json_object_get(j, "in"), *addrs = json_array();
    const char *id = json_string_value(json_object_get(j, "dag"));
    const char *node = getenv("PRISM_NODE_ID");
    dag_loop *l = calloc(1, sizeof *l);
    int rc = l && addrs && prism_is_hex(id, PRISM_ID_HEX_LEN) && json_array_size(in) <= MAX_CHANS &&
                     (l->tin = calloc(json_array_size(in) + 1, sizeof *l->tin))
                 ? 0
                 : -1;
    if (rc != 0)
        snprintf(err, errlen,
                 "__prism_dag_listen takes {\"dag\": ID, \"in\": [[node, reader], ...]}");
    else
        snprintf(l->id, sizeof l->id, "%s", id);
    json_int_t tmo = json_integer_value(json_object_get(j, "timeout_ms"));
    if (l)
        /* The start follows the listen calls within the driver's timeout. */
        l->listen_until = mono_ms() + 2 * (tmo >= 500 && tmo <= 600000 ? tmo : RENDEZVOUS_MS);
    for (size_t i = 0; rc == 0 && i < json_array_size(in); i++) {
        tcp_edge *t = &l->tin[l->ntin++];
        char addr[300];
        t->node = json_integer_value(json_array_get(json_array_get(in, i), 0));
        t->reader = json_integer_value(json_array_get(json_array_get(in, i), 1));
        t->fd = -1;
        t->listen_fd =
            prism__dag_edge_listen(env->host ? env->host : "127.0.0.1", addr, sizeof addr);
        if (t->listen_fd < 0) {
            snprintf(err, errlen, "cannot listen for the DAG's edges: %s", strerror(errno));
            rc = -1;
        } else {
            json_array_append_new(addrs, json_string(addr));
        }
    }
    if (rc == 0) {
        json_t *r = json_pack("{s:s,s:O}", "node", node ? node : "", "addrs", addrs);
        *reply = r ? json_dumps(r, JSON_COMPACT) : NULL;
        json_decref(r);
    }
    json_decref(addrs);
    json_decref(j);
    if (rc != 0 || !*reply) {
        if (l)
            loop_free(l);
        if (rc == 0)
            snprintf(err, errlen, "out of memory");
        return -1;
    }
    l->env = *env;
    *out = l;
    return 0;
}

int dag_loop_start(dag_loop **out, const char *spec, const prism_value *const *consts,
                   size_t nconsts, const dag_loop_env *env, char *err, size_t errlen)
{
    json_t *j = spec ? json_loads(spec, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(j, "dag"));
    if (!j || (*out && ((*out)->started || !id || strcmp((*out)->id, id) != 0))) {
        if (j)
            snprintf(err, errlen, "the actor is in compiled DAG %s already", (*out)->id);
        else
            snprintf(err, errlen, "__prism_dag_start takes a JSON spec");
        json_decref(j);
        return -1;
    }
    dag_loop *l = *out ? *out : calloc(1, sizeof *l); /* listened for, or a new one */
    *out = NULL;
    if (!l) {
        snprintf(err, errlen, "out of memory");
        json_decref(j);
        return -1;
    }
    l->env = *env;
    int rc = parse_and_open(l, j, consts, nconsts, err, errlen);
    json_decref(j);
    if (rc == 0 && pthread_create(&l->thread, NULL, loop_main, l) != 0) {
        snprintf(err, errlen, "cannot start the DAG's thread");
        rc = -1;
    }
    if (rc != 0) {
        loop_free(l);
        return -1;
    }
    l->started = true;
    *out = l;
    return 0;
}

const char *dag_loop_id(const dag_loop *l) { return l->id; }

uint64_t dag_loop_executions(const dag_loop *l)
{
    return __atomic_load_n(&l->passes, __ATOMIC_RELAXED);
}

static json_t *hist_json(const prism_chan_reader *r)
{
    prism_chan_hist h;
    prism_chan_reader_get_hist(r, &h);
    json_t *b = json_array();
    uint64_t n = 0;
    for (int i = 0; i < PRISM_CHAN_HIST_BUCKETS; i++) {
        json_array_append_new(b, json_integer((json_int_t)h.count[i]));
        n += h.count[i];
    }
    return json_pack("{s:I,s:f,s:o}", "count", (json_int_t)n, "mean_us",
                     n ? (double)h.sum_ns / 1e3 / (double)n : 0.0, "buckets", b);
}

json_t *dag_loop_report(const dag_loop *l)
{
    bool ended = __atomic_load_n(&l->ended, __ATOMIC_ACQUIRE);
    const char *state = !l->started ? "LISTENING" : ended ? "ENDED" : "RUNNING";
    json_t *inputs = json_array();
    for (size_t i = 0; l->started && i < l->nnodes;
         i++) /* nodes and readers are fixed once started */
        for (size_t j = 0, k = 0; l->nodes[i].index >= 0 && j < l->nodes[i].nin; j++)
            if (l->nodes[i].in[j])
                json_array_append_new(inputs,
                                      json_pack("[I,I,o]", l->nodes[i].index, (json_int_t)k++,
                                                hist_json(l->nodes[i].in[j])));
    json_t *values = json_object();
    for (int k = 0; k < NCOUNTS; k++)
        json_object_set_new(
            values, count_names[k],
            json_integer((json_int_t)__atomic_load_n(&l->counts[k], __ATOMIC_RELAXED)));
    return json_pack("{s:s,s:s,s:I,s:s?,s:o,s:o}", "dag", l->id, "state", state, "executions",
                     (json_int_t)dag_loop_executions(l), "error",
                     ended && l->error[0] ? l->error : NULL, "inputs", inputs, "values", values);
}

/* A loop listened for whose start never came (its driver died in between)
 * lets the actor go, as one that ended does. */
bool dag_loop_ended(const dag_loop *l)
{
    return __atomic_load_n(&l->ended, __ATOMIC_ACQUIRE) ||
           (!l->started && mono_ms() > l->listen_until);
}

void dag_loop_stop(dag_loop *l)
{
    if (!l)
        return;
    __atomic_store_n(&l->stop, 1, __ATOMIC_RELEASE);
    if (l->started)
        pthread_join(l->thread, NULL);
    loop_free(l);
}
