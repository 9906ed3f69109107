/* Compiled DAGs on the driver's side (include/prism/dag.h, docs/dags.md).
 *
 * Compile first calls the reserved method __prism_dag_listen of every actor
 * (it listens for each argument position and says its node), then makes one
 * channel per node that others read (its readers: every argument position
 * that takes it, and the driver for the output's items): shared memory when
 * the writer and the readers are on the driver's node, else a TCP connection
 * per reader, proven with a secret of its own (dag_edge.h). It then starts
 * each actor's loop with __prism_dag_start. Its argument (JSON) names the
 * channels and the actor's nodes; the shared channels' memfds go over a
 * rendezvous Unix socket in the abstract namespace that the driver listens on
 * during compile, since fds cannot travel in a call: the actor's worker
 * connects, proves it is the one the call went to with the nonce the call
 * carried, and receives its fds (SCM_RIGHTS). A channel whose writer and
 * readers share another node is made by the writer's worker, which hands it
 * to the readers' workers the same way (a socket of its own, a nonce per
 * reader actor). Teardown calls __prism_dag_stop.
 *
 * Executions are numbered; execution k's result is read into future slot
 * k mod max_inflight, in order, whichever future the caller gets first. */
#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "client.h"
#include "dag_edge.h"
#include "dag_internal.h"
#include "dag_record.h"
#include "dag_rendezvous.h"
#include "prism_json_text.h"
#include "prism_sha256.h"
#include "prism_subjects.h"
#include "prism_time.h"

typedef struct dag_node_rt {
    int kind;
    size_t actor; /* index in actors (DAG_BIND) */
    char *method;
    size_t *args, nargs;
    uint32_t *arg_reader; /* the reader index each argument reads its channel with */
    size_t nreturns;      /* DAG_BIND */
    size_t item;          /* DAG_ITEM: which item of the input */
    prism_value *value;   /* DAG_CONST: its own copy, for the start calls */
} dag_node_rt;

/* A channel the driver writes each execution: the input's, or that of an
 * item of it (prism_dag_input_item). */
typedef struct dag_in {
    size_t node;
    prism_chan_writer *w;
    dag_held held; /* its values in the object store, per slot */
    int *fds;      /* TCP: one connection per reader, then -1; NULL: shared memory */
    void *buf;     /* an execution's slot, between begin and end */
    size_t len;    /* and what was put there */
    prism_ref *ref;
} dag_in;

typedef struct dag_actor {
    prism_actor *handle;
    char nonce[DAG_NONCE_HEX + 1];
    size_t *chans, nchans; /* nodes whose channels it uses, in the order its fds go */
    bool served, started;
    prism_ref *call;           /* the listen, start or stop call in flight */
    char *node;                /* its node's ID, as its listen call said */
    json_t *addrs;             /* where it listens for each argument position (listen order) */
    size_t *read_node, nreads; /* its argument positions: the channel and */
    uint32_t *read_reader;     /* the reader index, in listen order */
} dag_actor;

struct prism_dag_future {
    prism_dag_compiled *d;
    bool in_use, released, ready;
    bool in_place; /* its value lies in the DAG's held slots */
    prism_status status;
    prism_value *value;
};

struct prism_dag_compiled {
    prism_client *c;
    char id[PRISM_ID_HEX_LEN + 1];
    prism_dag_options o;
    dag_node_rt *nodes;
    size_t nnodes;
    prism_chan **chans; /* per node; NULL when nobody reads it */
    uint32_t *nreaders; /* per node */
    dag_actor *actors;
    size_t nactors;
    dag_in *ins;         /* the input and its items that nodes read */
    size_t nins, nitems; /* nitems: how many items of the input they take (0: none) */
    /* prism_dag_input_key: the keys nodes take, items npos .. npos + nkeys - 1
     * after the positional ones (0 .. npos - 1) */
    char **keys;
    size_t nkeys, npos;
    prism_chan_reader **outs; /* one per output item */
    size_t *out_nodes, nouts;
    uint32_t *out_reader; /* the reader index the driver reads each output item with */
    bool multi;
    uint64_t next_seq, read_seq; /* executions started; executions read */
    size_t next_slot, read_slot; /* their futures' indexes: seq mod max_inflight, kept (a
                                  * division an execution shows on a hop) */
    size_t parts;                /* items of execution read_seq read so far */
    prism_value *partial;        /* what they gave (a list; without a multi-output node,
                                  * the one value itself) */
    prism_value *partial_error;  /* the first error among them */
    prism_status partial_status;
    /* Reading in place (prism_dag_get_in_place): the items of execution
     * read_seq are read where they lie, and their slots stay held (not
     * released to the writer) until the value is given back. */
    bool in_place;             /* execution read_seq is read in place */
    size_t holding;            /* items whose slot is held: items 0 .. holding - 1 */
    prism_value view;          /* the value of a single output item, viewed in its slot */
    prism_value *lent;         /* what prism_dag_get_in_place handed out last */
    bool lent_holds;           /* it lies in the held slots */
    prism_dag_future *futures; /* max_inflight */
    bool writing_in;           /* prism_dag_execute_begin began the input's write */
    prism_status broken;       /* PRISM_OK while it runs */
    char *broken_msg;
    dag_rdv *rdv; /* during compile */
    /* Cross-node edges (docs/dags.md#cross-node-edges), per node: */
    bool *tcp;  /* its channel is a TCP connection */
    bool *peer; /* its channel is shared memory made by its writer's worker (another node) */
    char (*pair)[DAG_NONCE_HEX + 1]; /* [writer * nactors + reader]: the nonce with which
                                        reader actor fetches writer actor's channels */
    /* Per actor: the random part of its worker's rendezvous socket's name,
     * which nobody can take first: known only from the start calls. */
    char (*rdv_name)[DAG_NONCE_HEX + 1];
    size_t *sbase; /* node n's readers' secrets start at secret[sbase[n]] */
    char (*secret)[DAG_EDGE_SECRET_HEX + 1]; /* per reader of a TCP channel: its connection's */
    int *out_fds, *out_listen;               /* the driver's ends (-1: none) */
    char **out_addr;                         /* where the driver listens for output item i */
    /* Its reports to the GCS (GET /api/v1/dags): the leaser thread reads
     * these two, and the list of the client's DAGs, under the client's lock. */
    _Atomic uint64_t done;    /* executions read */
    _Atomic bool broken_seen; /* broken != PRISM_OK */
    uint64_t reported;        /* `done` when last reported (leaser thread) */
    bool reported_broken;     /* leaser thread */
    bool listed;              /* in c->dags */
    prism_dag_compiled *next; /* in c->dags */
};

/* Frees a value the DAG read, unless it is the view kept in the DAG itself. */
static void drop(prism_dag_compiled *d, prism_value *v)
{
    if (v != &d->view)
        prism_value_free(v);
}

/* ---------- building the compiled form ---------- */

/* Whether argument `j` of node `i` is a constant (no channel: its value went
 * with the start call). */
static bool const_arg(const prism_dag_compiled *d, size_t i, size_t j)
{
    return d->nodes[d->nodes[i].args[j]].kind == DAG_CONST;
}

/* Whether argument `j` of node `i` is a bind's read of a channel. */
static bool chan_arg(const prism_dag_compiled *d, size_t i, size_t j)
{
    return d->nodes[i].kind == DAG_BIND && !const_arg(d, i, j);
}

static size_t actor_index(prism_dag_compiled *d, prism_actor *a)
{
    for (size_t i = 0; i < d->nactors; i++)
        if (!strcmp(prism_actor_id(d->actors[i].handle), prism_actor_id(a)))
            return i;
    d->actors[d->nactors].handle = prism__actor_dup(a);
    return d->actors[d->nactors].handle ? d->nactors++ : SIZE_MAX;
}

static void add_chan(dag_actor *a, size_t node)
{
    for (size_t i = 0; i < a->nchans; i++)
        if (a->chans[i] == node)
            return;
    a->chans[a->nchans++] = node;
}

/* Copies the graph, finds its actors and numbers every reader. */
static size_t key_index(const prism_dag_compiled *d, const char *key)
{
    size_t k = 0;
    while (k < d->nkeys && strcmp(d->keys[k], key))
        k++;
    return k;
}

/* The input's items: the positional ones first, then one per key, in the
 * order nodes first take them. */
static prism_status input_keys(prism_dag_compiled *d, const prism_dag *g)
{
    size_t nkeyed = 0;
    for (size_t i = 0; i < g->n; i++) {
        const prism_dag_node *n = g->nodes[i];
        if (n->kind == DAG_ITEM && !n->key && n->ret + 1 > d->npos)
            d->npos = n->ret + 1;
        nkeyed += n->kind == DAG_ITEM && n->key;
    }
    if (nkeyed && !(d->keys = calloc(nkeyed, sizeof *d->keys)))
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < g->n; i++) {
        const prism_dag_node *n = g->nodes[i];
        if (n->kind != DAG_ITEM || !n->key || key_index(d, n->key) < d->nkeys)
            continue;
        if (!(d->keys[d->nkeys] = strdup(n->key)))
            return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
        d->nkeys++;
    }
    d->nitems = d->npos + d->nkeys;
    return PRISM_OK;
}

static prism_status copy_graph(prism_dag_compiled *d, const prism_dag *g)
{
    d->nnodes = g->n;
    d->nodes = calloc(g->n, sizeof *d->nodes);
    d->nreaders = calloc(g->n, sizeof *d->nreaders);
    d->chans = calloc(g->n, sizeof *d->chans);
    d->actors = calloc(g->n, sizeof *d->actors);
    if (!d->nodes || !d->nreaders || !d->chans || !d->actors)
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    prism_status s = input_keys(d, g);
    if (s != PRISM_OK)
        return s;
    for (size_t i = 0; i < g->n; i++) {
        const prism_dag_node *n = g->nodes[i];
        dag_node_rt *r = &d->nodes[i];
        r->kind = n->kind;
        r->nargs = n->nargs;
        r->nreturns = n->nreturns;
        r->item = n->kind == DAG_ITEM ? (n->key ? d->npos + key_index(d, n->key) : n->ret) : 0;
        r->args = calloc(n->nargs + 1, sizeof *r->args);
        r->arg_reader = calloc(n->nargs + 1, sizeof *r->arg_reader);
        if (!r->args || !r->arg_reader || (n->method && !(r->method = strdup(n->method))) ||
            (n->value && !(r->value = prism_value_copy(n->value))))
            return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
        for (size_t j = 0; j < n->nargs; j++) { /* the output's readers are plan_outputs' */
            r->args[j] = n->args[j];
            if (chan_arg(d, i, j))
                r->arg_reader[j] = d->nreaders[n->args[j]]++;
        }
        if (n->kind == DAG_BIND && (r->actor = actor_index(d, n->actor)) == SIZE_MAX)
            return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    }
    return PRISM_OK;
}

/* Whether bind node `i` writes node `j`'s channel: its own, or those of its
 * DAG_RETURN nodes when it makes several returns. */
static bool writes(const prism_dag_compiled *d, size_t i, size_t j)
{
    if (d->nodes[i].nreturns <= 1)
        return j == i;
    return d->nodes[j].kind == DAG_RETURN && d->nodes[j].args[0] == i;
}

/* The channels each actor uses: its nodes' arguments and its nodes' own. */
static prism_status list_actor_chans(prism_dag_compiled *d)
{
    for (size_t a = 0; a < d->nactors; a++) {
        dag_actor *da = &d->actors[a];
        size_t most = 0;
        for (size_t i = 0; i < d->nnodes; i++)
            if (d->nodes[i].kind == DAG_BIND && d->nodes[i].actor == a)
                most += d->nodes[i].nargs + d->nodes[i].nreturns;
        if (!(da->chans = calloc(most, sizeof *da->chans)))
            return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
        for (size_t i = 0; i < d->nnodes; i++) {
            if (d->nodes[i].kind != DAG_BIND || d->nodes[i].actor != a)
                continue;
            for (size_t j = 0; j < d->nodes[i].nargs; j++)
                if (chan_arg(d, i, j))
                    add_chan(da, d->nodes[i].args[j]);
            for (size_t j = i; j < d->nnodes; j++)
                if (writes(d, i, j))
                    add_chan(da, j);
        }
        prism_id nonce;
        prism_id_random(&nonce);
        prism_id_to_hex(&nonce, da->nonce);
    }
    return PRISM_OK;
}

/* The output's items (the multi-output node's arguments, or the last node)
 * are read by the driver: one more reader each. */
static prism_status plan_outputs(prism_dag_compiled *d)
{
    dag_node_rt *last = &d->nodes[d->nnodes - 1];
    d->multi = last->kind == DAG_MULTI;
    d->nouts = d->multi ? last->nargs : 1;
    d->out_nodes = calloc(d->nouts, sizeof *d->out_nodes);
    d->outs = calloc(d->nouts, sizeof *d->outs);
    d->out_fds = calloc(d->nouts, sizeof *d->out_fds);
    d->out_listen = calloc(d->nouts, sizeof *d->out_listen);
    d->out_addr = calloc(d->nouts, sizeof *d->out_addr);
    uint32_t *idx = d->out_reader = calloc(d->nouts, sizeof *idx);
    if (!d->out_nodes || !d->outs || !idx || !d->out_fds || !d->out_listen || !d->out_addr)
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < d->nouts; i++) {
        d->out_fds[i] = d->out_listen[i] = -1;
        d->out_nodes[i] = d->multi ? last->args[i] : d->nnodes - 1;
        idx[i] = d->nreaders[d->out_nodes[i]]++;
    }
    for (size_t i = 0; i < d->nnodes; i++)
        if (d->nreaders[i] > PRISM_CHAN_MAX_READERS)
            return prism__fail(PRISM_ERR_INVALID, "node %zu is read by %u nodes, more than %d", i,
                               d->nreaders[i], PRISM_CHAN_MAX_READERS);
    return PRISM_OK;
}

/* The channels the driver writes: the input's, when a node takes the whole
 * input, and each item's that a node takes. */
static prism_status plan_inputs(prism_dag_compiled *d)
{
    if (!(d->ins = calloc(d->nnodes, sizeof *d->ins)))
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    for (size_t n = 0; n < d->nnodes; n++)
        if ((d->nodes[n].kind == DAG_INPUT || d->nodes[n].kind == DAG_ITEM) && d->nreaders[n])
            d->ins[d->nins++].node = n;
    return PRISM_OK;
}

/* ---------- where the actors are: the listen calls ---------- */

/* Whether actor `a` reads node `n`'s channel. */
static bool reads(const prism_dag_compiled *d, size_t a, size_t n)
{
    for (size_t i = 0; i < d->nnodes; i++)
        for (size_t j = 0;
             d->nodes[i].kind == DAG_BIND && d->nodes[i].actor == a && j < d->nodes[i].nargs; j++)
            if (d->nodes[i].args[j] == n && chan_arg(d, i, j))
                return true;
    return false;
}

/* The first call to every actor: it listens for each argument position (the
 * writer may be on another node) and says its node. */
static prism_status listen_actors(prism_dag_compiled *d)
{
    prism_status s = PRISM_OK;
    for (size_t a = 0; s == PRISM_OK && a < d->nactors; a++) {
        dag_actor *da = &d->actors[a];
        json_t *in = json_array();
        size_t most = 0;
        for (size_t i = 0; i < d->nnodes; i++)
            most += d->nodes[i].kind == DAG_BIND && d->nodes[i].actor == a ? d->nodes[i].nargs : 0;
        da->read_node = calloc(most + 1, sizeof *da->read_node);
        da->read_reader = calloc(most + 1, sizeof *da->read_reader);
        if (!da->read_node || !da->read_reader) {
            json_decref(in);
            return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
        }
        for (size_t i = 0; i < d->nnodes; i++)
            for (size_t j = 0;
                 d->nodes[i].kind == DAG_BIND && d->nodes[i].actor == a && j < d->nodes[i].nargs;
                 j++) {
                if (const_arg(d, i, j))
                    continue;
                da->read_node[da->nreads] = d->nodes[i].args[j];
                da->read_reader[da->nreads++] = d->nodes[i].arg_reader[j];
                json_array_append_new(in, json_pack("[I,I]", (json_int_t)d->nodes[i].args[j],
                                                    (json_int_t)d->nodes[i].arg_reader[j]));
            }
        json_t *j = json_pack("{s:s,s:o,s:I}", "dag", d->id, "in", in, "timeout_ms",
                              (json_int_t)d->o.timeout_ms);
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        prism_value *arg = text ? prism_value_json(text) : NULL;
        free(text);
        if (!arg)
            return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
        s = prism_actor_call(d->c, da->handle, "__prism_dag_listen", &arg, 1, 1, &da->call);
        prism_value_free(arg);
    }
    for (size_t a = 0; a < d->nactors; a++) {
        dag_actor *da = &d->actors[a];
        if (!da->call)
            continue;
        prism_value *v = NULL;
        prism_status g = prism_get(d->c, da->call, d->o.timeout_ms, &v);
        json_t *r = g == PRISM_OK && prism_value_json_text(v)
                        ? json_loads(prism_value_json_text(v), 0, NULL)
                        : NULL;
        const char *node = json_string_value(json_object_get(r, "node"));
        da->started = true; /* its worker holds listeners: the stop call frees them */
        if (s == PRISM_OK && g != PRISM_OK)
            s = prism__fail(g, "actor %s: %s", prism_actor_id(da->handle),
                            v && prism_value_error_message(v) ? prism_value_error_message(v)
                                                              : prism_last_error());
        else if (s == PRISM_OK &&
                 (!node || json_array_size(json_object_get(r, "addrs")) != da->nreads))
            s = prism__fail(PRISM_ERR_INTERNAL, "actor %s: a malformed listen answer",
                            prism_actor_id(da->handle));
        if (s == PRISM_OK) {
            da->node = strdup(node);
            da->addrs = json_incref(json_object_get(r, "addrs"));
        }
        json_decref(r);
        prism_value_free(v);
        prism_ref_release(da->call);
        da->call = NULL;
    }
    return s;
}

/* The actor that writes node `n`'s channel (SIZE_MAX: the driver). */
static size_t writer_of(const prism_dag_compiled *d, size_t n)
{
    const dag_node_rt *r = &d->nodes[n];
    if (r->kind == DAG_BIND)
        return r->actor;
    if (r->kind == DAG_RETURN)
        return d->nodes[r->args[0]].actor;
    return SIZE_MAX;
}

/* The driver's node: its own when it knows it (PRISM_NODE_ID), else that of
 * the DAG's first actor, as before edges could cross nodes. */
static const char *driver_node(const prism_dag_compiled *d)
{
    return d->c->node_id[0] ? d->c->node_id : d->actors[0].node;
}

static bool on_driver_node(const prism_dag_compiled *d, size_t actor)
{
    return actor == SIZE_MAX || !strcmp(d->actors[actor].node, driver_node(d));
}

/* The node of `actor` (SIZE_MAX: the driver). */
static const char *node_of(const prism_dag_compiled *d, size_t actor)
{
    return actor == SIZE_MAX ? driver_node(d) : d->actors[actor].node;
}

static bool is_output(const prism_dag_compiled *d, size_t n)
{
    for (size_t i = 0; i < d->nouts; i++)
        if (d->out_nodes[i] == n)
            return true;
    return false;
}

/* Whether node `n`'s writer and all its readers are on one node. */
static bool one_node(const prism_dag_compiled *d, size_t n)
{
    const char *w = node_of(d, writer_of(d, n));
    if (is_output(d, n) && strcmp(w, driver_node(d)) != 0)
        return false;
    for (size_t a = 0; a < d->nactors; a++)
        if (reads(d, a, n) && strcmp(d->actors[a].node, w) != 0)
            return false;
    return true;
}

/* The nonces of the actors that fetch channels made by another actor's
 * worker: one per (writer, reader) pair; and each actor's rendezvous
 * socket's name. */
static void plan_pairs(prism_dag_compiled *d)
{
    for (size_t a = 0; a < d->nactors; a++) {
        prism_id id;
        prism_id_random(&id);
        prism_id_to_hex(&id, d->rdv_name[a]);
    }
    for (size_t n = 0; n < d->nnodes; n++)
        for (size_t a = 0; d->peer[n] && a < d->nactors; a++) {
            char *nonce = d->pair[writer_of(d, n) * d->nactors + a];
            if (a != writer_of(d, n) && reads(d, a, n) && !nonce[0]) {
                prism_id id;
                prism_id_random(&id);
                prism_id_to_hex(&id, nonce);
            }
        }
}

/* Each channel's kind: shared memory when its writer and readers are all on
 * one node — made by the driver on its own node (and handed out over its
 * rendezvous socket), by the writer's worker on another —, otherwise TCP: one
 * connection per reader, each with its own secret. */
static prism_status plan_kinds(prism_dag_compiled *d)
{
    d->tcp = calloc(d->nnodes, sizeof *d->tcp);
    d->peer = calloc(d->nnodes, sizeof *d->peer);
    d->pair = calloc(d->nactors * d->nactors + 1, sizeof *d->pair);
    d->rdv_name = calloc(d->nactors + 1, sizeof *d->rdv_name);
    d->sbase = calloc(d->nnodes + 1, sizeof *d->sbase);
    if (!d->tcp || !d->peer || !d->pair || !d->rdv_name || !d->sbase)
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    for (size_t n = 0; n < d->nnodes; n++)
        d->sbase[n + 1] = d->sbase[n] + d->nreaders[n];
    if (!(d->secret = calloc(d->sbase[d->nnodes] + 1, sizeof *d->secret)))
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    for (size_t n = 0; n < d->nnodes; n++) {
        if (d->nreaders[n] == 0 || d->nodes[n].kind == DAG_MULTI)
            continue;
        if (one_node(d, n)) {
            d->peer[n] = !on_driver_node(d, writer_of(d, n));
            continue;
        }
        d->tcp[n] = true;
        for (uint32_t r = 0; r < d->nreaders[n]; r++)
            prism__dag_edge_secret(d->secret[d->sbase[n] + r]);
    }
    plan_pairs(d);
    /* The segments an actor fetches from the driver are those it made. */
    for (size_t a = 0; a < d->nactors; a++) {
        dag_actor *da = &d->actors[a];
        size_t k = 0;
        for (size_t i = 0; i < da->nchans; i++)
            if (!d->tcp[da->chans[i]] && !d->peer[da->chans[i]])
                da->chans[k++] = da->chans[i];
        da->nchans = k;
        da->served = k == 0; /* nothing to fetch: it does not come to the rendezvous */
    }
    return PRISM_OK;
}

/* The driver's address towards `actor` ("host:port" of its listener): the
 * local address the route to it goes out of. */
static int local_host_towards(const dag_actor *da, char *host, size_t n)
{
    const char *addr = json_string_value(json_array_get(da->addrs, 0));
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    char peer[256];
    if (!colon || (size_t)(colon - addr) >= sizeof peer)
        return -1;
    snprintf(peer, sizeof peer, "%.*s", (int)(colon - addr), addr);
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *res;
    if (getaddrinfo(peer, "9", &hints, &res) != 0)
        return -1;
    int fd = socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int rc = fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0 &&
                     getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
                     getnameinfo((struct sockaddr *)&ss, sl, host, (socklen_t)n, NULL, 0,
                                 NI_NUMERICHOST) == 0
                 ? 0
                 : -1;
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return rc;
}

/* The shared-memory channels, and the driver's ends of them; the driver's
 * TCP outputs are listened for now (their writers connect while they start). */
static prism_status make_chans(prism_dag_compiled *d)
{
    for (size_t i = 0; i < d->nnodes; i++) {
        if (d->nreaders[i] == 0 || d->nodes[i].kind == DAG_MULTI || d->tcp[i] || d->peer[i])
            continue;
        prism_chan_options co = {.nslots = (uint32_t)d->o.max_inflight,
                                 .nreaders = d->nreaders[i],
                                 .max_buf_size = d->o.max_buf_size};
        char err[256];
        if (prism_chan_create(&d->chans[i], &co, err, sizeof err) != PRISM_CHAN_OK)
            return prism__fail(PRISM_ERR_NO_MEMORY, "a channel: %s", err);
    }
    prism_chan_wait wait = {.spin_us = d->o.spin_us};
    for (size_t i = 0; i < d->nouts; i++) {
        size_t n = d->out_nodes[i];
        if (d->tcp[n]) {
            char host[256], addr[300];
            if (local_host_towards(&d->actors[writer_of(d, n)], host, sizeof host) != 0 ||
                (d->out_listen[i] = prism__dag_edge_listen(host, addr, sizeof addr)) < 0 ||
                !(d->out_addr[i] = strdup(addr)))
                return prism__fail(PRISM_ERR_INTERNAL,
                                   "cannot listen for the DAG's output from another node: %s",
                                   strerror(errno));
        } else if (prism_chan_reader_open_shm(&d->outs[i], d->chans[n], d->out_reader[i], &wait) !=
                   PRISM_CHAN_OK) {
            return prism__fail(PRISM_ERR_INTERNAL, "cannot read the output channel");
        }
    }
    for (size_t i = 0; i < d->nins; i++) {
        dag_in *in = &d->ins[i];
        if (prism__dag_held_init(&in->held, (size_t)d->o.max_inflight) != 0 ||
            (!d->tcp[in->node] &&
             prism_chan_writer_open_shm(&in->w, d->chans[in->node], &wait) != PRISM_CHAN_OK))
            return prism__fail(PRISM_ERR_INTERNAL, "cannot write the input channel");
    }
    return PRISM_OK;
}

/* Where reader `r` of node `n`'s (TCP) channel listens: an actor's
 * listener, or the driver's. */
static const char *reader_addr(const prism_dag_compiled *d, size_t n, uint32_t r)
{
    for (size_t i = 0; i < d->nouts; i++)
        if (d->out_nodes[i] == n && d->out_reader[i] == r)
            return d->out_addr[i];
    for (size_t a = 0; a < d->nactors; a++)
        for (size_t k = 0; k < d->actors[a].nreads; k++)
            if (d->actors[a].read_node[k] == n && d->actors[a].read_reader[k] == r)
                return json_string_value(json_array_get(d->actors[a].addrs, k));
    return NULL;
}

static const char *secret_of(const prism_dag_compiled *d, size_t n, uint32_t r)
{
    return d->secret[d->sbase[n] + r];
}

/* Connects input channel `in` (TCP) to each of its readers. */
static prism_status connect_input(prism_dag_compiled *d, dag_in *in)
{
    prism_chan_wait wait = {.spin_us = d->o.spin_us};
    size_t sndbuf = (size_t)d->o.max_inflight * (size_t)(d->o.max_buf_size + 4);
    uint32_t n = d->nreaders[in->node];
    prism_chan_writer **ws = calloc(n + 1, sizeof *ws);
    if (!ws || !(in->fds = malloc((n + 1) * sizeof *in->fds))) {
        free(ws);
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    }
    for (uint32_t r = 0; r <= n; r++)
        in->fds[r] = -1;
    prism_status s = PRISM_OK;
    uint32_t k = 0;
    for (; k < n; k++) {
        const char *addr = reader_addr(d, in->node, k);
        if (!addr ||
            (in->fds[k] = prism__dag_edge_connect(addr, secret_of(d, in->node, k), sndbuf,
                                                  d->o.timeout_ms)) < 0 ||
            prism_chan_writer_open_socket(&ws[k], in->fds[k], d->o.max_buf_size, &wait) !=
                PRISM_CHAN_OK) {
            s = prism__fail(PRISM_ERR_CONNECT, "cannot connect the DAG's input to %s: %s",
                            addr ? addr : "?", strerror(errno));
            break;
        }
    }
    if (s == PRISM_OK && n == 1)
        in->w = ws[0];
    else if (s == PRISM_OK && n > 1 &&
             prism_chan_writer_open_fanout(&in->w, ws, n) != PRISM_CHAN_OK)
        s = prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    if (s != PRISM_OK)
        while (k > 0)
            prism_chan_writer_destroy(ws[--k]);
    free(ws);
    return s;
}

/* The driver's TCP ends, while the actors start: it connects the input
 * channels and takes each output's one proven connection. */
static prism_status connect_driver(prism_dag_compiled *d)
{
    prism_chan_wait wait = {.spin_us = d->o.spin_us};
    prism_status s = PRISM_OK;
    for (size_t i = 0; s == PRISM_OK && i < d->nins; i++)
        if (d->tcp[d->ins[i].node])
            s = connect_input(d, &d->ins[i]);
    const char **secrets = s == PRISM_OK ? calloc(d->nouts, sizeof *secrets) : NULL;
    if (s == PRISM_OK && !secrets)
        s = prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    for (size_t i = 0; s == PRISM_OK && i < d->nouts; i++)
        secrets[i] = secret_of(d, d->out_nodes[i], d->out_reader[i]);
    if (s == PRISM_OK)
        prism__dag_edge_accept_all(d->out_listen, secrets, d->nouts, d->o.timeout_ms, d->out_fds);
    free(secrets);
    for (size_t i = 0; s == PRISM_OK && i < d->nouts; i++) {
        if (d->out_listen[i] < 0)
            continue;
        close(d->out_listen[i]);
        d->out_listen[i] = -1;
        if (d->out_fds[i] < 0 ||
            prism_chan_reader_open_socket(&d->outs[i], d->out_fds[i], d->o.max_buf_size, &wait) !=
                PRISM_CHAN_OK)
            s = prism__fail(PRISM_ERR_CONNECT,
                            "the actor writing the DAG's output item %zu did not connect "
                            "with its secret in time",
                            i);
    }
    return s;
}

/* ---------- starting the actors' loops ---------- */

/* The channels of writer actor `w`'s worker that reader actor `r` fetches
 * (those it reads; none when r is w, which made them). */
static json_t *pair_chans(const prism_dag_compiled *d, size_t w, size_t r)
{
    json_t *l = json_array();
    for (size_t n = 0; w != r && n < d->nnodes; n++)
        if (d->peer[n] && writer_of(d, n) == w && reads(d, r, n))
            json_array_append_new(l, json_integer((json_int_t)n));
    return l;
}

/* Actor `a`'s part in the channels made off the driver's node
 * (docs/dags.md#shared-memory-on-other-nodes): "make" [[node, readers], ...]
 * (those it writes), "serve" {"socket", "peers": [[nonce, [node, ...]], ...]}
 * (who may fetch which) and "fetch" [[socket, nonce, [node, ...]], ...]
 * (what it gets from the other writers' workers). */
static void peer_spec(const prism_dag_compiled *d, size_t a, json_t *j)
{
    json_t *make = json_array(), *peers = json_array(), *fetch = json_array();
    for (size_t n = 0; n < d->nnodes; n++)
        if (d->peer[n] && writer_of(d, n) == a)
            json_array_append_new(make,
                                  json_pack("[I,I]", (json_int_t)n, (json_int_t)d->nreaders[n]));
    for (size_t o = 0; o < d->nactors; o++) {
        char sock[80];
        json_t *mine = pair_chans(d, a, o), *theirs = pair_chans(d, o, a);
        snprintf(sock, sizeof sock, "prism-dag-%s-%s", d->id, d->rdv_name[o]);
        if (json_array_size(mine))
            json_array_append_new(peers, json_pack("[s,O]", d->pair[a * d->nactors + o], mine));
        if (json_array_size(theirs))
            json_array_append_new(fetch,
                                  json_pack("[s,s,O]", sock, d->pair[o * d->nactors + a], theirs));
        json_decref(mine);
        json_decref(theirs);
    }
    char sock[80];
    snprintf(sock, sizeof sock, "prism-dag-%s-%s", d->id, d->rdv_name[a]);
    json_object_set_new(j, "make", make);
    json_object_set_new(j, "serve", json_pack("{s:s,s:o}", "socket", sock, "peers", peers));
    json_object_set_new(j, "fetch", fetch);
}

/* The JSON argument of __prism_dag_start for actor `a` (docs/dags.md#compile).
 * The constants its nodes take follow it as the call's next arguments:
 * `consts` (room for one per graph node) gets them, `*nconsts` their count. */
static json_t *start_spec(const prism_dag_compiled *d, size_t a, const prism_value **consts,
                          size_t *nconsts)
{
    const dag_actor *da = &d->actors[a];
    json_t *chans = json_array(), *nodes = json_array();
    *nconsts = 0;
    for (size_t i = 0; i < da->nchans; i++)
        json_array_append_new(chans, json_integer((json_int_t)da->chans[i]));
    for (size_t i = 0; i < d->nnodes; i++) {
        const dag_node_rt *n = &d->nodes[i];
        if (n->kind != DAG_BIND || n->actor != a)
            continue;
        json_t *in = json_array(), *out = json_array();
        for (size_t j = 0; j < n->nargs; j++) {
            const prism_value *v = d->nodes[n->args[j]].value;
            size_t k = 0;
            while (k < *nconsts && consts[k] != v)
                k++;
            if (v && k == *nconsts)
                consts[(*nconsts)++] = v;
            json_array_append_new(in, v ? json_pack("{s:I}", "const", (json_int_t)k)
                                        : json_pack("[I,I]", (json_int_t)n->args[j],
                                                    (json_int_t)n->arg_reader[j]));
        }
        for (size_t j = i; j < d->nnodes; j++)
            if (writes(d, i, j))
                json_array_append_new(out, json_integer((json_int_t)j));
        json_array_append_new(nodes, json_pack("{s:I,s:s,s:o,s:o}", "index", (json_int_t)i,
                                               "method", n->method, "in", in, "out", out));
    }
    json_t *tin = json_array(), *tout = json_array();
    for (size_t k = 0; k < da->nreads; k++) {
        size_t n = da->read_node[k];
        uint32_t r = da->read_reader[k];
        if (d->tcp[n])
            json_array_append_new(tin, json_pack("[I,I,s]", (json_int_t)n, (json_int_t)r,
                                                 secret_of(d, n, r)));
    }
    for (size_t n = 0; n < d->nnodes; n++)
        for (uint32_t r = 0; d->tcp[n] && writer_of(d, n) == a && r < d->nreaders[n]; r++)
            json_array_append_new(tout, json_pack("[I,I,s,s]", (json_int_t)n, (json_int_t)r,
                                                  reader_addr(d, n, r), secret_of(d, n, r)));
    /* Edges whose readers are all actors of the writer's node: a device
     * tensor may stay on the device there. */
    json_t *dev = json_array();
    for (size_t n = 0; d->o.max_device_buf_size && n < d->nnodes; n++)
        if (writer_of(d, n) == a && d->nreaders[n] && !d->tcp[n] && !is_output(d, n))
            json_array_append_new(dev, json_integer((json_int_t)n));
    char sock[64];
    snprintf(sock, sizeof sock, "prism-dag-%s", d->id);
    json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:o,s:o,s:o,s:o,s:I,s:I,s:I}", "dag", d->id, "socket",
                          sock, "nonce", da->nonce, "spin_us", (json_int_t)d->o.spin_us, "chans",
                          chans, "nodes", nodes, "tcp_in", tin, "tcp_out", tout, "max_buf_size",
                          (json_int_t)d->o.max_buf_size, "nslots", (json_int_t)d->o.max_inflight,
                          "timeout_ms", (json_int_t)d->o.timeout_ms);
    if (j) {
        json_object_set_new(j, "device_out", dev);
        json_object_set_new(j, "device_buf_size",
                            json_integer((json_int_t)d->o.max_device_buf_size));
        peer_spec(d, a, j);
    } else {
        json_decref(dev);
    }
    return j;
}

/* Calls __prism_dag_start of every actor (with its spec), or __prism_dag_stop
 * of those started (with the DAG's ID). */
static prism_status call_actors(prism_dag_compiled *d, bool start)
{
    const char *method = start ? "__prism_dag_start" : "__prism_dag_stop";
    /* the spec, then the constants (borrowed from the nodes) */
    prism_value **args = calloc(d->nnodes + 1, sizeof *args);
    prism_status s = args ? PRISM_OK : prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    for (size_t a = 0; s == PRISM_OK && a < d->nactors; a++) {
        if (!start && !d->actors[a].started)
            continue;
        size_t nconsts = 0;
        json_t *j = start ? start_spec(d, a, (const prism_value **)args + 1, &nconsts)
                          : json_pack("{s:s}", "dag", d->id);
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        args[0] = text ? prism_value_json(text) : NULL;
        free(text);
        if (!args[0])
            s = prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
        else
            s = prism_actor_call(d->c, d->actors[a].handle, method, args, 1 + nconsts, 1,
                                 &d->actors[a].call);
        prism_value_free(args[0]);
    }
    free(args);
    return s;
}

/* A worker that sent a nonce gets the channels of the actor whose start call
 * carried it, once; anyone else gets nothing. */
static void serve(prism_dag_compiled *d, int fd, const char *nonce)
{
    for (size_t a = 0; a < d->nactors; a++) {
        dag_actor *da = &d->actors[a];
        if (da->served || !prism_equal_ct(da->nonce, nonce, DAG_NONCE_HEX))
            continue;
        da->served = true;
        for (size_t i = 0; i < da->nchans; i++)
            if (prism_chan_send_fd(fd, prism_chan_fd(d->chans[da->chans[i]])) != 0)
                break;
        return;
    }
}

/* Serves workers until every actor has its channels, one start call ends
 * before (it failed), or the time is up. */
static prism_status rendezvous(prism_dag_compiled *d, int64_t deadline)
{
    size_t served = 0;
    while (served < d->nactors) {
        int64_t left = deadline - prism_mono_ms();
        if (left <= 0)
            return prism__fail(PRISM_ERR_TIMEOUT, "the DAG's actors did not start their loops "
                                                  "in time");
        char nonce[DAG_NONCE_HEX];
        int fd = prism__dag_rdv_next(d->rdv, left < 50 ? (int)left : 50, nonce);
        if (fd >= 0) {
            serve(d, fd, nonce);
            close(fd);
        }
        served = 0;
        for (size_t a = 0; a < d->nactors; a++) {
            bool done = false;
            if (d->actors[a].served) {
                served++;
                continue;
            }
            if (prism_wait(d->c, &d->actors[a].call, 1, 1, 0, &done) == PRISM_OK && done)
                return PRISM_OK; /* it failed: its get says why */
        }
    }
    return PRISM_OK;
}

/* Gets every call in flight; the first failure is returned. */
static prism_status finish_calls(prism_dag_compiled *d, bool start)
{
    prism_status first = PRISM_OK;
    char msg[1024] = "";
    for (size_t a = 0; a < d->nactors; a++) {
        dag_actor *da = &d->actors[a];
        if (!da->call)
            continue;
        prism_value *v = NULL;
        prism_status s = prism_get(d->c, da->call, d->o.timeout_ms, &v);
        if (s == PRISM_OK && start)
            da->started = true;
        if (s != PRISM_OK && first == PRISM_OK) {
            first = s;
            snprintf(msg, sizeof msg, "actor %s: %s", prism_actor_id(da->handle),
                     v && prism_value_error_message(v) ? prism_value_error_message(v)
                                                       : prism_last_error());
        }
        prism_value_free(v);
        prism_ref_release(da->call);
        da->call = NULL;
    }
    return first == PRISM_OK ? PRISM_OK : prism__fail(first, "%s", msg);
}

/* ---------- reports to the GCS ---------- */

/* A report is one NATS message: under the server's default 1 MiB payload.
 * A printf that would pass the cap fails and leaves the text without it,
 * and none writes more than DAG_REPORT_PIECE bytes (method names are at most
 * 200 characters), so a report that ends this far below the cap is whole;
 * one that does not is not sent. */
#define DAG_REPORT_MAX (900u * 1024u)
#define DAG_REPORT_PIECE 4096u

static bool report_whole(const prism_buf *b) { return b->len + DAG_REPORT_PIECE <= b->max; }

static const char *const kind_names[] = {"input",  "bind",     "multi_output",
                                         "return", "constant", "input_item"};

/* A latency histogram (prism_chan_hist) as JSON. */
static void hist_text(prism_buf *b, const prism_chan_hist *h)
{
    uint64_t n = 0;
    for (int i = 0; i < PRISM_CHAN_HIST_BUCKETS; i++)
        n += h->count[i];
    prism_buf_printf(b, "{\"count\":%llu,\"mean_us\":%.3f,\"buckets\":[", (unsigned long long)n,
                     n ? (double)h->sum_ns / 1e3 / (double)n : 0.0);
    for (int i = 0; i < PRISM_CHAN_HIST_BUCKETS; i++)
        prism_buf_printf(b, "%s%llu", i ? "," : "", (unsigned long long)h->count[i]);
    prism_buf_printf(b, "]}");
}

/* Each hop's latency from the channels' own counters: the edges' in the
 * order of the graph's edges, from the channels the driver made and maps
 * (zeros for the others: their readers' workers report them), and the
 * output items', read by the driver (over shared memory or TCP). */
static void latency_text(prism_buf *b, const prism_dag_compiled *d)
{
    prism_buf_printf(b, ",\"latency\":{\"edges\":[");
    bool first = true;
    for (size_t i = 0; i < d->nnodes; i++)
        for (size_t j = 0; d->nodes[i].kind == DAG_BIND && j < d->nodes[i].nargs; j++) {
            if (const_arg(d, i, j))
                continue;
            prism_chan_hist h;
            prism_chan_reader_hist(d->chans[d->nodes[i].args[j]], d->nodes[i].arg_reader[j], &h);
            prism_buf_printf(b, "%s", first ? "" : ",");
            hist_text(b, &h);
            first = false;
        }
    prism_buf_printf(b, "],\"outputs\":[");
    for (size_t i = 0; i < d->nouts; i++) {
        prism_chan_hist h;
        prism_chan_reader_get_hist(d->outs ? d->outs[i] : NULL, &h);
        prism_buf_printf(b, "%s", i ? "," : "");
        hist_text(b, &h);
    }
    prism_buf_printf(b, "]}");
}

/* One DAG's state as JSON text, with its graph when `graph`. */
static void report_text(prism_buf *b, const prism_dag_compiled *d, const char *state, bool graph)
{
    prism_buf_printf(b, "{\"id\":\"%s\",\"owner\":", d->id);
    prism_json_string(b, d->c->self_addr);
    prism_buf_printf(b, ",\"state\":\"%s\",\"executions\":%llu", state,
                     (unsigned long long)atomic_load_explicit(&d->done, memory_order_relaxed));
    latency_text(b, d);
    if (!graph) {
        prism_buf_printf(b, "}");
        return;
    }
    prism_buf_printf(b,
                     ",\"created_at\":%lld,\"max_inflight\":%d,\"max_buf_size\":%llu,"
                     "\"nodes\":[",
                     (long long)prism_now_ms(), d->o.max_inflight,
                     (unsigned long long)d->o.max_buf_size);
    for (size_t i = 0; i < d->nnodes; i++) {
        const dag_node_rt *n = &d->nodes[i];
        prism_buf_printf(b, "%s{\"index\":%zu,\"kind\":\"%s\"", i ? "," : "", i,
                         kind_names[n->kind]);
        if (n->kind == DAG_BIND) {
            prism_buf_printf(
                b, ",\"actor_id\":\"%s\",\"method\":", prism_actor_id(d->actors[n->actor].handle));
            prism_json_string(b, n->method);
        }
        prism_buf_printf(b, ",\"args\":[");
        for (size_t j = 0; j < n->nargs; j++)
            prism_buf_printf(b, "%s%zu", j ? "," : "", n->args[j]);
        prism_buf_printf(b, "]}");
    }
    /* Every channel a node reads: shared memory (one slot per execution in
     * flight) or, across nodes, TCP. */
    prism_buf_printf(b, "],\"edges\":[");
    bool first = true;
    for (size_t i = 0; i < d->nnodes; i++)
        for (size_t j = 0; d->nodes[i].kind == DAG_BIND && j < d->nodes[i].nargs; j++) {
            if (const_arg(d, i, j))
                continue;
            prism_buf_printf(b, "%s{\"from\":%zu,\"to\":%zu,\"kind\":\"%s\",\"slot_size\":%llu}",
                             first ? "" : ",", d->nodes[i].args[j], i,
                             d->tcp[d->nodes[i].args[j]] ? "tcp" : "shm",
                             (unsigned long long)d->o.max_buf_size);
            first = false;
        }
    prism_buf_printf(b, "],\"outputs\":[");
    for (size_t i = 0; i < d->nouts; i++)
        prism_buf_printf(b, "%s%zu", i ? "," : "", d->out_nodes[i]);
    prism_buf_printf(b, "]}");
}

/* Publishes {"dags":[...]} of `d` alone. Called without the client's lock. */
static void report_one(prism_dag_compiled *d, const char *state, bool graph)
{
    prism_buf b;
    prism_buf_init(&b, DAG_REPORT_MAX);
    prism_buf_printf(&b, "{\"dags\":[");
    report_text(&b, d, state, graph);
    if (prism_buf_printf(&b, "]}") == 0 && report_whole(&b))
        prism_bus_publish(d->c->bus, PRISM_SUBJECT_DAG_UPDATE, b.data, b.len);
    prism_buf_free(&b);
}

/* Leaser thread, lock held: the DAGs whose count or state changed since
 * their last report, at most once a second, in one message. */
void prism__dags_tick(prism_client *c)
{
    int64_t now = prism_mono_ms();
    if (!c->dags || now - c->last_dags_ms < DAG_REPORT_MS)
        return;
    c->last_dags_ms = now;
    prism_buf b;
    prism_buf_init(&b, DAG_REPORT_MAX);
    prism_buf_printf(&b, "{\"dags\":[");
    size_t n = 0;
    for (prism_dag_compiled *d = c->dags; d; d = d->next) {
        uint64_t done = atomic_load_explicit(&d->done, memory_order_relaxed);
        bool broken = atomic_load_explicit(&d->broken_seen, memory_order_relaxed);
        if (done == d->reported && broken == d->reported_broken)
            continue;
        d->reported = done;
        d->reported_broken = broken;
        if (n++)
            prism_buf_printf(&b, ",");
        report_text(&b, d, broken ? "BROKEN" : "COMPILED", false);
    }
    if (n == 0 || prism_buf_printf(&b, "]}") != 0 || !report_whole(&b)) {
        prism_buf_free(&b);
        return;
    }
    /* Published after a teardown's TORN_DOWN at worst: the GCS never
     * takes a DAG back from a later state to an earlier one. */
    pthread_mutex_unlock(&c->lock);
    prism_bus_publish(c->bus, PRISM_SUBJECT_DAG_UPDATE, b.data, b.len);
    prism_buf_free(&b);
    pthread_mutex_lock(&c->lock);
}

/* Compiled: reported with its graph, then followed by the leaser thread. */
static void list_dag(prism_dag_compiled *d)
{
    report_one(d, "COMPILED", true);
    pthread_mutex_lock(&d->c->lock);
    d->next = d->c->dags;
    d->c->dags = d;
    d->listed = true;
    pthread_mutex_unlock(&d->c->lock);
}

static void unlist_dag(prism_dag_compiled *d)
{
    if (!d->listed)
        return;
    pthread_mutex_lock(&d->c->lock);
    for (prism_dag_compiled **p = &d->c->dags; *p; p = &(*p)->next)
        if (*p == d) {
            *p = d->next;
            break;
        }
    pthread_mutex_unlock(&d->c->lock);
    report_one(d, "TORN_DOWN", false);
}

/* ---------- teardown ---------- */

static void close_fd(int fd)
{
    if (fd >= 0)
        close(fd);
}

static void free_compiled(prism_dag_compiled *d)
{
    for (size_t i = 0; d->ins && i < d->nins; i++) {
        dag_in *in = &d->ins[i];
        prism_chan_writer_destroy(in->w);
        for (uint32_t r = 0; in->fds && in->fds[r] >= 0; r++)
            close_fd(in->fds[r]);
        free(in->fds);
        prism__dag_held_free(&in->held);
    }
    free(d->ins);
    for (size_t i = 0; d->outs && i < d->nouts; i++) {
        prism_chan_reader_destroy(d->outs[i]);
        if (d->out_fds) {
            close_fd(d->out_fds[i]);
            close_fd(d->out_listen[i]);
            free(d->out_addr[i]);
        }
    }
    for (size_t i = 0; d->nodes && i < d->nnodes; i++) { /* NULL when out of memory early */
        prism_chan_destroy(d->chans ? d->chans[i] : NULL);
        free(d->nodes[i].method);
        free(d->nodes[i].args);
        free(d->nodes[i].arg_reader);
        prism_value_free(d->nodes[i].value);
    }
    for (size_t a = 0; a < d->nactors; a++) {
        prism_ref_release(d->actors[a].call);
        prism_actor_release(d->actors[a].handle);
        free(d->actors[a].chans);
        free(d->actors[a].node);
        free(d->actors[a].read_node);
        free(d->actors[a].read_reader);
        json_decref(d->actors[a].addrs);
    }
    for (int i = 0; d->futures && i < d->o.max_inflight; i++)
        prism_value_free(d->futures[i].value);
    prism__dag_rdv_close(d->rdv);
    drop(d, d->lent);
    drop(d, d->partial);
    prism_value_free(d->partial_error);
    free(d->futures);
    free(d->broken_msg);
    free(d->out_nodes);
    free(d->out_reader);
    free(d->out_fds);
    free(d->out_listen);
    free(d->out_addr);
    free(d->tcp);
    free(d->peer);
    free(d->pair);
    free(d->rdv_name);
    free(d->sbase);
    free(d->secret);
    free(d->outs);
    free(d->chans);
    free(d->nreaders);
    free(d->nodes);
    free(d->actors);
    for (size_t k = 0; k < d->nkeys; k++)
        free(d->keys[k]);
    free(d->keys);
    free(d);
}

prism_status prism_dag_teardown(prism_dag_compiled *d)
{
    if (!d)
        return PRISM_OK;
    unlist_dag(d);
    /* Leaving the output channels and closing the input lets every loop end
     * by itself; the stop calls then wait for their threads. */
    for (size_t i = 0; d->outs && i < d->nouts; i++) {
        prism_chan_reader_destroy(d->outs[i]);
        d->outs[i] = NULL;
        if (d->out_fds)
            close_fd(d->out_fds[i]);
        if (d->out_fds)
            d->out_fds[i] = -1;
    }
    for (size_t i = 0; i < d->nins; i++)
        prism_chan_writer_close(d->ins[i].w, d->ins[i].fds ? d->o.timeout_ms : 0);
    prism_status s = PRISM_OK, stop = call_actors(d, false);
    prism_status done = finish_calls(d, false);
    if (stop == PRISM_OK)
        stop = done;
    /* A dead actor has no loop left to stop. */
    if (stop != PRISM_OK && stop != PRISM_ERR_ACTOR_DIED)
        s = stop;
    free_compiled(d);
    return s;
}

/* ---------- compile ---------- */

static prism_status check_options(const prism_dag_options *o)
{
    if (!PRISM__RESERVED_ZERO(o))
        return prism__fail(PRISM_ERR_INVALID, "prism_dag_options: `reserved` is not zero "
                                              "(initialize it with PRISM_DAG_OPTIONS_INIT)");
    if (o->max_inflight < 1 || o->max_inflight > 1024)
        return prism__fail(PRISM_ERR_INVALID, "max_inflight must be 1-1024");
    if (o->max_buf_size < 64 || o->max_buf_size > (1u << 30))
        return prism__fail(PRISM_ERR_INVALID, "max_buf_size must be 64 bytes to 1 GiB");
    if (o->timeout_ms < 1 || o->spin_us > 1000000)
        return prism__fail(PRISM_ERR_INVALID, "timeout_ms must be positive, spin_us at most 1 s");
    if (o->max_device_buf_size > ((uint64_t)16 << 30))
        return prism__fail(PRISM_ERR_INVALID, "max_device_buf_size must be at most 16 GiB");
    return PRISM_OK;
}

static prism_status compile_steps(prism_dag_compiled *d, const prism_dag *dag)
{
    prism_status s = copy_graph(d, dag);
    if (s == PRISM_OK)
        s = list_actor_chans(d);
    if (s == PRISM_OK)
        s = plan_outputs(d);
    if (s == PRISM_OK)
        s = plan_inputs(d);
    if (s == PRISM_OK)
        s = prism__dag_rdv_listen(&d->rdv, d->id);
    if (s == PRISM_OK)
        s = listen_actors(d);
    if (s == PRISM_OK)
        s = plan_kinds(d);
    if (s == PRISM_OK)
        s = make_chans(d);
    if (s == PRISM_OK)
        s = call_actors(d, true);
    if (s == PRISM_OK)
        s = rendezvous(d, prism_mono_ms() + d->o.timeout_ms);
    if (s == PRISM_OK)
        s = connect_driver(d);
    prism_status started = finish_calls(d, true);
    if (s == PRISM_OK)
        s = started;
    prism__dag_rdv_close(d->rdv); /* the socket exists only while the actors start */
    d->rdv = NULL;
    return s;
}

prism_status prism_dag_compile(prism_client *c, const prism_dag *dag, const prism_dag_options *opts,
                               prism_dag_compiled **out)
{
    static const prism_dag_options defaults = PRISM_DAG_OPTIONS_INIT;
    const prism_dag_options *o = opts ? opts : &defaults;
    if (out)
        *out = NULL;
    if (!c || !dag || !out)
        return prism__fail(PRISM_ERR_INVALID, "dag_compile needs a client, a graph and an "
                                              "out-pointer");
    prism_status s = check_options(o);
    if (s == PRISM_OK)
        s = prism__dag_check(dag);
    if (s != PRISM_OK)
        return s;
    prism_dag_compiled *d = calloc(1, sizeof *d);
    if (!d || !(d->futures = calloc((size_t)o->max_inflight, sizeof *d->futures))) {
        free(d);
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    }
    d->c = c;
    d->o = *o;
    prism_id id;
    prism_id_random(&id);
    prism_id_to_hex(&id, d->id);
    for (int i = 0; i < o->max_inflight; i++)
        d->futures[i].d = d;
    s = compile_steps(d, dag);
    if (s != PRISM_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", prism_last_error());
        prism_dag_teardown(d);
        return prism__fail(s, "compiling the DAG: %s", msg);
    }
    list_dag(d);
    *out = d;
    return PRISM_OK;
}

/* ---------- executions ---------- */

/* The DAG broke (an actor died): every execution not read yet fails. */
static prism_status set_broken(prism_dag_compiled *d, const char *msg)
{
    if (d->broken == PRISM_OK) {
        d->broken = PRISM_ERR_ACTOR_DIED;
        d->broken_msg = msg ? strdup(msg) : NULL;
        atomic_store_explicit(&d->broken_seen, true, memory_order_relaxed);
    }
    return prism__fail(d->broken, "%s (tear the DAG down and compile it again)",
                       d->broken_msg ? d->broken_msg : "an actor of the DAG died");
}

/* Who writes output item `i`, for messages. */
static const char *item_name(const prism_dag_compiled *d, size_t i)
{
    const dag_node_rt *n = &d->nodes[d->out_nodes[i]];
    const char *m = n->kind == DAG_RETURN ? d->nodes[n->args[0]].method : n->method;
    return m ? m : "the input";
}

/* Why an input channel gave no room: `cs`, begin_write's. */
static prism_status input_refused(prism_dag_compiled *d, prism_chan_status cs)
{
    return cs == PRISM_CHAN_TIMEOUT
               ? prism__fail(PRISM_ERR_TIMEOUT, "the DAG's first actors took no input for %d ms",
                             d->o.timeout_ms)
               : set_broken(d, "an actor that reads the DAG's input died");
}

/* Publishes the record written in `in`'s begun slot. Over TCP, the frame
 * must be in the kernel before the caller blocks in get (an actor waits
 * for all of it); read_next sends what is left. */
static void publish_input(prism_dag_compiled *d, dag_in *in)
{
    if (prism_chan_end_write(in->w, in->len) == PRISM_CHAN_QUEUED)
        prism_chan_flush(in->w, d->o.timeout_ms);
    prism__dag_held_end(&in->held, in->ref);
}

/* Writes `input` and its items into every input channel, or into none:
 * each slot is begun before any is published. */
static prism_status write_inputs(prism_dag_compiled *d, const prism_value *input)
{
    size_t begun = 0, put = 0;
    prism_chan_status cs = PRISM_CHAN_OK;
    int64_t deadline = d->nins > 1 ? prism_mono_ms() + d->o.timeout_ms : 0; /* for them all */
    while (begun < d->nins && cs == PRISM_CHAN_OK) {
        int64_t left = begun ? deadline - prism_mono_ms() : d->o.timeout_ms;
        cs = prism_chan_begin_write(d->ins[begun].w, &d->ins[begun].buf, left > 0 ? (int)left : 0);
        begun += cs == PRISM_CHAN_OK;
    }
    while (cs == PRISM_CHAN_OK && put < d->nins) {
        dag_in *in = &d->ins[put];
        const prism_value *v = d->nodes[in->node].kind != DAG_ITEM
                                   ? input
                                   : prism_value_list_get(input, d->nodes[in->node].item);
        prism__dag_held_begin(&in->held);
        in->ref = NULL;
        in->len = prism__dag_put(d->c, in->buf, prism_chan_writer_capacity(in->w), v, &in->ref);
        if (in->len == 0)
            break;
        put++;
    }
    if (put < d->nins) {
        prism_status s = cs != PRISM_CHAN_OK
                             ? input_refused(d, cs)
                             : prism__fail(prism_last_status(),
                                           "the input is larger than max_buf_size and the object "
                                           "store did not take it: %s",
                                           prism_last_error());
        for (size_t i = 0; i < begun; i++)
            prism_chan_abort_write(d->ins[i].w);
        for (size_t i = 0; i < put; i++)
            prism_ref_release(d->ins[i].ref); /* nobody will read them */
        return s;
    }
    for (size_t i = 0; i < d->nins; i++)
        publish_input(d, &d->ins[i]);
    return PRISM_OK;
}

/* Whether one more execution may start now. */
static prism_status room_for_one(prism_dag_compiled *d)
{
    if (d->broken != PRISM_OK)
        return set_broken(d, NULL);
    if (d->writing_in)
        return prism__fail(PRISM_ERR_INVALID, "an execution's input is being written "
                                              "(prism_dag_execute_begin): end or cancel it first");
    if (d->futures[d->next_slot].in_use)
        return prism__fail(PRISM_ERR_INVALID,
                           "%d executions are in flight (max_inflight): get "
                           "or release the oldest first",
                           d->o.max_inflight);
    return PRISM_OK;
}

/* The execution whose input was just written. */
static prism_dag_future *started(prism_dag_compiled *d)
{
    prism_dag_future *f = &d->futures[d->next_slot];
    *f = (prism_dag_future){.d = d, .in_use = true};
    d->next_seq++;
    if (++d->next_slot == (size_t)d->o.max_inflight)
        d->next_slot = 0;
    return f;
}

static prism_status execute(prism_dag_compiled *d, const prism_value *input, prism_dag_future **out)
{
    prism_status room = room_for_one(d);
    if (room != PRISM_OK)
        return room;
    if (prism__dag_has_ref(input))
        return prism__fail(PRISM_ERR_INVALID, "a DAG's values cannot hold object references");
    if (prism_value_list_size(input) < d->nitems)
        return prism__fail(PRISM_ERR_INVALID,
                           "the DAG takes items of its input up to item %zu "
                           "(prism_dag_input_item): execute it with a list of at least %zu",
                           d->nitems - 1, d->nitems);
    prism_status s = write_inputs(d, input);
    if (s != PRISM_OK)
        return s;
    *out = started(d);
    return PRISM_OK;
}

/* A DAG that takes keys of its input is given them by name only. */
static prism_status keys_unnamed(const prism_dag_compiled *d)
{
    return prism__fail(PRISM_ERR_INVALID,
                       "the DAG takes the input's key \"%s\" (prism_dag_input_key): execute it "
                       "with prism_dag_execute_kwargs",
                       d->keys[0]);
}

prism_status prism_dag_execute(prism_dag_compiled *d, const prism_value *input,
                               prism_dag_future **out)
{
    if (out)
        *out = NULL;
    if (!d || !input || !out)
        return prism__fail(PRISM_ERR_INVALID, "dag_execute needs a DAG, an input and an "
                                              "out-pointer");
    return d->nkeys ? keys_unnamed(d) : execute(d, input, out);
}

prism_status prism_dag_execute_args(prism_dag_compiled *d, const prism_value *const *args,
                                    size_t nargs, prism_dag_future **out)
{
    if (out)
        *out = NULL;
    bool ok = d && out && (args || nargs == 0) && nargs <= 1024;
    for (size_t i = 0; ok && i < nargs; i++)
        ok = args[i] != NULL;
    if (!ok)
        return prism__fail(PRISM_ERR_INVALID, "dag_execute_args needs a DAG, up to 1024 values "
                                              "and an out-pointer");
    if (d->nkeys)
        return keys_unnamed(d);
    /* The input is the list of the values, a view of `args` that is only
     * read (its items into their channels; encoded, into the slot or by a
     * put, for a node that takes the whole input) and never freed: no
     * value is copied. */
    prism_value list = {
        .kind = PRISM_VALUE_LIST, .items = (prism_value **)args, .nitems = nargs, .cap = nargs};
    return execute(d, &list, out);
}

prism_status prism_dag_execute_kwargs(prism_dag_compiled *d, const prism_value *const *args,
                                      size_t nargs, const char *const *keys,
                                      const prism_value *const *kwargs, size_t nkw,
                                      prism_dag_future **out)
{
    if (out)
        *out = NULL;
    bool ok = d && out && (args || nargs == 0) && ((keys && kwargs) || nkw == 0) &&
              nargs + nkw <= 1024;
    for (size_t i = 0; ok && i < nargs; i++)
        ok = args[i] != NULL;
    for (size_t i = 0; ok && i < nkw; i++)
        ok = keys[i] && kwargs[i];
    if (!ok)
        return prism__fail(PRISM_ERR_INVALID, "dag_execute_kwargs needs a DAG, up to 1024 values "
                                              "with a key for each named one, and an "
                                              "out-pointer");
    if (nargs != d->npos)
        return prism__fail(PRISM_ERR_INVALID,
                           "the DAG takes %zu positional items of its input "
                           "(prism_dag_input_item); dag_execute_kwargs was given %zu",
                           d->npos, nargs);
    /* The list the nodes read: the positional values, then one per key in
     * the DAG's order (a view, as in prism_dag_execute_args). */
    prism_value **items = malloc((d->nitems ? d->nitems : 1) * sizeof *items);
    if (!items)
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    memcpy(items, args, nargs * sizeof *items);
    prism_status s = PRISM_OK;
    for (size_t i = 0; i < nkw && s == PRISM_OK; i++) {
        size_t k = key_index(d, keys[i]);
        if (k == d->nkeys)
            s = prism__fail(PRISM_ERR_INVALID, "the DAG takes no key \"%.200s\" of its input",
                            keys[i]);
        for (size_t j = 0; j < i && s == PRISM_OK; j++)
            if (!strcmp(keys[j], keys[i]))
                s = prism__fail(PRISM_ERR_INVALID, "the key \"%.200s\" is given twice", keys[i]);
    }
    for (size_t k = 0; k < d->nkeys && s == PRISM_OK; k++) {
        size_t i = 0;
        while (i < nkw && strcmp(keys[i], d->keys[k]))
            i++;
        if (i == nkw)
            s = prism__fail(PRISM_ERR_INVALID,
                            "the DAG takes the input's key \"%s\": "
                            "dag_execute_kwargs was not given it",
                            d->keys[k]);
        else
            items[d->npos + k] = (prism_value *)kwargs[i];
    }
    prism_value list = {
        .kind = PRISM_VALUE_LIST, .items = items, .nitems = d->nitems, .cap = d->nitems};
    if (s == PRISM_OK)
        s = execute(d, &list, out);
    free(items);
    return s;
}

prism_status prism_dag_execute_begin(prism_dag_compiled *d, size_t len, void **buf)
{
    if (buf)
        *buf = NULL;
    if (!d || !buf)
        return prism__fail(PRISM_ERR_INVALID, "dag_execute_begin needs a DAG and an out-pointer");
    prism_status s = room_for_one(d);
    if (s != PRISM_OK)
        return s;
    if (d->nkeys || d->nitems || d->nins != 1)
        return prism__fail(PRISM_ERR_INVALID,
                           "the DAG takes items or keys of its input: its input cannot be "
                           "written in place (execute it with prism_dag_execute_args or "
                           "_kwargs)");
    dag_in *in = &d->ins[0];
    size_t cap = prism_chan_writer_capacity(in->w);
    if (prism__dag_bytes_size(len) > cap)
        return prism__fail(PRISM_ERR_INVALID,
                           "%zu bytes do not fit the input's slot (max_buf_size %llu, less a "
                           "record's head of %zu bytes): execute them with prism_dag_execute, "
                           "which puts them in the object store",
                           len, (unsigned long long)d->o.max_buf_size, prism__dag_bytes_size(0));
    prism_chan_status cs = prism_chan_begin_write(in->w, &in->buf, d->o.timeout_ms);
    if (cs != PRISM_CHAN_OK)
        return input_refused(d, cs);
    prism__dag_held_begin(&in->held);
    in->ref = NULL;
    in->len = prism__dag_bytes_size(len);
    *buf = prism__dag_bytes_room(in->buf, cap, len);
    d->writing_in = true;
    return PRISM_OK;
}

prism_status prism_dag_execute_end(prism_dag_compiled *d, prism_dag_future **out)
{
    if (out)
        *out = NULL;
    if (!d || !out || !d->writing_in)
        return prism__fail(PRISM_ERR_INVALID, "dag_execute_end needs a DAG whose input "
                                              "prism_dag_execute_begin began, and an out-pointer");
    d->writing_in = false;
    publish_input(d, &d->ins[0]);
    *out = started(d);
    return PRISM_OK;
}

void prism_dag_execute_cancel(prism_dag_compiled *d)
{
    if (!d || !d->writing_in)
        return;
    prism_chan_abort_write(d->ins[0].w);
    d->writing_in = false;
}

/* Takes item `i` of execution read_seq from its record. */
static void take_item(prism_dag_compiled *d, size_t i, const void *buf, size_t len)
{
    int tag = prism__dag_tag(buf, len);
    prism_value *v = NULL;
    if (d->in_place && !d->multi && prism__dag_view_value(buf, len, &d->view))
        v = &d->view;
    else if (prism__dag_is_value(buf, len))
        v = prism__dag_read(d->c, buf, len, d->in_place, d->o.timeout_ms);
    if (v) {
        if (d->multi)
            prism_value_list_append(d->partial, v);
        else
            d->partial = v;
        return;
    }
    char *name = NULL, *msg = NULL;
    if (tag == DAG_REC_DIED && prism__dag_get_error(buf, len, &name, &msg) == 0) {
        set_broken(d, msg);
    } else if (!d->partial_error) {
        if (tag == DAG_REC_REF)
            d->partial_error = prism_value_error(item_name(d, i), prism_last_error());
        else if (prism__dag_get_error(buf, len, &name, &msg) != 0)
            d->partial_error = prism_value_error(item_name(d, i), "a malformed value on the DAG");
        else
            d->partial_error = prism_value_error(name, msg);
        d->partial_status = PRISM_ERR_TASK;
    }
    free(name);
    free(msg);
}

/* Lets the writers have the held slots again. */
static void release_held(prism_dag_compiled *d)
{
    for (size_t i = 0; i < d->holding; i++)
        prism_chan_end_read(d->outs[i]);
    d->holding = 0;
}

/* Gives back what prism_dag_get_in_place handed out: before any other read,
 * and at teardown. */
static void give_back(prism_dag_compiled *d)
{
    if (!d->lent)
        return;
    drop(d, d->lent);
    d->lent = NULL;
    if (d->lent_holds)
        release_held(d);
    d->lent_holds = false;
}

/* The execution just read goes to its future (or is dropped if released).
 * `keep` when it was read in place for prism_dag_get_in_place: its slots
 * stay held. */
static void settle(prism_dag_compiled *d, bool keep)
{
    prism_dag_future *f = &d->futures[d->read_slot];
    prism_value *v = d->partial;
    f->status = PRISM_OK;
    if (d->partial_error) {
        drop(d, d->partial);
        v = d->partial_error;
        f->status = d->partial_status;
    } else if (d->multi ? v->nitems != d->nouts : !v) {
        drop(d, v);
        v = NULL;
        f->status = PRISM_ERR_NO_MEMORY;
    }
    if (d->in_place && !keep) {
        /* Begun in place, finished by a get that copies: the value leaves
         * the slots before they are let go. */
        if (f->status == PRISM_OK && !f->released) {
            prism_value *copy = prism_value_copy(v);
            drop(d, v);
            if (!(v = copy))
                f->status = PRISM_ERR_NO_MEMORY;
        }
        release_held(d);
    }
    if (f->released) {
        drop(d, v);
        f->in_use = f->released = false;
    } else {
        f->value = v;
        f->ready = true;
        f->in_place = d->in_place && keep;
    }
    d->partial = d->partial_error = NULL;
    d->parts = 0;
    d->in_place = false;
    d->read_seq++;
    if (++d->read_slot == (size_t)d->o.max_inflight)
        d->read_slot = 0;
    atomic_store_explicit(&d->done, d->read_seq, memory_order_relaxed);
}

/* Reads the outputs of execution read_seq, waiting up to `timeout_ms` in all. */
static prism_status read_next(prism_dag_compiled *d, int timeout_ms, bool in_place)
{
    if (d->parts == 0)
        d->in_place = in_place;
    /* One item (no list, no clock): the channel's wait keeps the time. */
    bool one = !d->multi || timeout_ms < 0;
    int64_t deadline = one ? 0 : prism_mono_ms() + timeout_ms;
    if (d->multi && !d->partial && !(d->partial = prism_value_list()))
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    while (d->parts < d->nouts) {
        int64_t left = one ? 0 : deadline - prism_mono_ms();
        int wait_ms = one ? timeout_ms : left > 0 ? (int)left : 0;
        const void *buf;
        size_t len;
        for (size_t i = 0; i < d->nins; i++)
            if (d->ins[i].fds)
                prism_chan_flush(d->ins[i].w, 0); /* a frame left partly unsent */
        prism_chan_status cs = prism_chan_begin_read(d->outs[d->parts], &buf, &len, wait_ms);
        if (cs == PRISM_CHAN_TIMEOUT)
            return prism__fail(PRISM_ERR_TIMEOUT, "the DAG's execution is not done yet");
        if (cs != PRISM_CHAN_OK) {
            char msg[300];
            snprintf(msg, sizeof msg, "the actor running %s died", item_name(d, d->parts));
            return set_broken(d, msg);
        }
        take_item(d, d->parts, buf, len);
        if (d->in_place)
            d->holding++;
        else
            prism_chan_end_read(d->outs[d->parts]);
        d->parts++;
        if (d->broken != PRISM_OK)
            return d->broken;
    }
    settle(d, in_place);
    return PRISM_OK;
}

static void future_done(prism_dag_future *f)
{
    f->in_use = f->ready = f->released = f->in_place = false;
    f->value = NULL;
}

/* prism_dag_get and prism_dag_get_in_place: the latter reads f's execution
 * in place when it is the next one read (earlier ones are copied into their
 * futures as usual). */
static prism_status get(prism_dag_future *f, int timeout_ms, bool in_place, prism_value **out)
{
    if (out)
        *out = NULL;
    if (!f || !out || !f->in_use || f->released)
        return prism__fail(PRISM_ERR_INVALID, "dag_get needs a future not yet got and an "
                                              "out-pointer");
    prism_dag_compiled *d = f->d;
    give_back(d);
    while (!f->ready && d->broken == PRISM_OK) {
        prism_status s = read_next(d, timeout_ms, in_place && &d->futures[d->read_slot] == f);
        if (s == PRISM_ERR_TIMEOUT)
            return s;
    }
    if (!f->ready) {
        future_done(f);
        return set_broken(d, NULL);
    }
    prism_status s = f->status;
    *out = f->value;
    if (in_place) {
        d->lent = *out;
        d->lent_holds = f->in_place;
    }
    future_done(f);
    if (s == PRISM_ERR_TASK)
        return prism__fail(s, "%s failed: %s", prism_value_error_task(*out),
                           prism_value_error_message(*out));
    return s == PRISM_OK ? s : prism__fail(s, "out of memory");
}

prism_status prism_dag_get(prism_dag_future *f, int timeout_ms, prism_value **out)
{
    return get(f, timeout_ms, false, out);
}

prism_status prism_dag_get_in_place(prism_dag_future *f, int timeout_ms, const prism_value **out)
{
    return get(f, timeout_ms, true, (prism_value **)out);
}

void prism_dag_future_release(prism_dag_future *f)
{
    if (!f || !f->in_use)
        return;
    if (f->ready) {
        prism_value_free(f->value);
        future_done(f);
    } else {
        f->released = true; /* settle drops it when it comes */
    }
}
