/* Accelerated DAGs: a static graph of actor method calls, compiled once into
 * shared-memory channels between the actors, then executed many times
 * (docs/dags.md). Each execution only writes the input channel and reads the
 * output ones: no scheduler, lease or object store on the way, a few
 * microseconds per hop.
 *
 * Pipeline-parallel (each stage takes the previous one's output):
 *
 *   prism_dag *g;
 *   prism_dag_node *n;
 *   prism_dag_create(&g);
 *   prism_dag_input(g, &n);
 *   for (int i = 0; i < nstages; i++)
 *       prism_dag_bind(g, stage[i], "fwd", &n, 1, &n);
 *   prism_dag_compiled *d;
 *   prism_dag_compile(c, g, NULL, &d);      // the output is the last node made
 *   prism_dag_free(g);                      // the compiled DAG needs it no more
 *   prism_dag_future *f;
 *   prism_dag_execute(d, input, &f);
 *   prism_value *out;
 *   prism_dag_get(f, 10000, &out);          // takes f
 *   prism_dag_teardown(d);
 *
 * Tensor-parallel (the input fans out to N actors; one node gathers):
 *
 *   prism_dag_node *in, *part[N], *all;
 *   prism_dag_input(g, &in);
 *   for (int i = 0; i < N; i++)
 *       prism_dag_bind(g, shard[i], "fwd", &in, 1, &part[i]);
 *   prism_dag_multi_output(g, part, N, &all);  // get gives a list of N values
 *
 * Several inputs (Ray's `inp[0]`, `inp[1]`; execute gets a list of two):
 *
 *   prism_dag_node *x, *y, *xy[2];
 *   prism_dag_input_item(g, in, 0, &x);
 *   prism_dag_input_item(g, in, 1, &y);
 *   xy[0] = x, xy[1] = y;
 *   prism_dag_bind(g, a, "f", xy, 2, &n);     // a.f(input[0], input[1])
 *
 * A constant argument (the same value in every execution):
 *
 *   prism_dag_node *scale, *args[2];
 *   prism_dag_constant(g, v, &scale);          // v copied
 *   args[0] = in, args[1] = scale;
 *   prism_dag_bind(g, a, "mul", args, 2, &n);  // a.mul(input, v)
 *
 * The graph is acyclic by construction: a node can only take nodes made
 * before it. Every actor of a DAG runs one loop thread in its worker, which
 * runs its nodes in the order they were made; an actor may appear in several
 * nodes. While it is in a compiled DAG, ordinary calls to the actor are
 * refused (PRISM_ERR_INVALID, naming the DAG) until teardown.
 *
 * Values on the edges are plain values (no object references). One whose
 * encoding fits `max_buf_size` travels in the channel's slot; a larger one
 * goes through the object store, with a reference in the slot, and is freed
 * once every reader is done with it (slower: size max_buf_size for the
 * common values).
 *
 * Errors. A method that fails puts an error value through the rest of the
 * graph: that execution's get returns PRISM_ERR_TASK and an ERROR value
 * naming "Class.method", and the DAG stays usable. An actor that dies
 * breaks the DAG: executions in flight and every later execute and get
 * return PRISM_ERR_ACTOR_DIED; tear it down and compile again once the actor
 * restarted.
 *
 * Channels are shared memory when their writer and readers are on one node
 * (the driver's or another), else one authenticated TCP connection per
 * reader (docs/dags.md#cross-node-edges).
 *
 * GPU values (docs/dags.md#gpu-values): a method may return a tensor in CUDA
 * device memory (prism_value_device_tensor), whose data must be complete
 * (its stream synchronised) when the method returns. With
 * max_device_buf_size set, it goes to readers on the writer's node through
 * a ring of device slots over CUDA IPC: the reader's method gets a device
 * tensor in the slot, valid until it returns (it must be done with it on the
 * device by then). To the driver, across nodes, when the tensor is larger
 * than max_device_buf_size or without it set, the tensor is copied to a host
 * tensor. Workers built without CUDA fail such a method's execution.
 *
 * Threads: a prism_dag and a prism_dag_compiled (with its futures) are used
 * by one thread at a time. */
#ifndef PRISM_DAG_H
#define PRISM_DAG_H

#include "prism.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct prism_dag prism_dag;                   /* a graph being built */
typedef struct prism_dag_node prism_dag_node;         /* a node, owned by its graph */
typedef struct prism_dag_compiled prism_dag_compiled; /* a compiled, running graph */
typedef struct prism_dag_future prism_dag_future;     /* one execution's result */

PRISM_API prism_status prism_dag_create(prism_dag **out);
/* Frees the graph and its nodes (a compiled DAG does not need them). NULL is a no-op. */
PRISM_API void prism_dag_free(prism_dag *dag);

/* The graph's input: what prism_dag_execute is given. One per graph. */
PRISM_API prism_status prism_dag_input(prism_dag *dag, prism_dag_node **out);
/* Item `i` (0-1023) of the input, as a node of its own (Ray's `inp[i]`):
 * execute is then given a list of at least i + 1 values, and the driver
 * writes each item into the channel of the nodes that take it, so an actor
 * that takes one item reads that value alone. The input node itself may
 * be taken too (the whole list). */
PRISM_API prism_status prism_dag_input_item(prism_dag *dag, prism_dag_node *input, size_t i,
                                            prism_dag_node **out);
/* The input's value named `key` (1-200 bytes; Ray's `inp.key`), as a node
 * of its own: the DAG is then executed with prism_dag_execute_kwargs, which
 * names it, and the driver writes it into the channel of the nodes that
 * take it. Several nodes of one key are one value. The keys count as items
 * after the positional ones (prism_dag_input_item), in the order nodes
 * first take them: that is the list a node taking the whole input gets. */
PRISM_API prism_status prism_dag_input_key(prism_dag *dag, prism_dag_node *input, const char *key,
                                           prism_dag_node **out);
/* A value the same in every execution (Ray's `bind(inp, 5)`), to give a
 * bind as an argument: `v` is copied, and goes to the actors that take it
 * once, at compile. Plain values only (no object references, no device
 * memory). It may be taken by several binds, not be an output item. */
PRISM_API prism_status prism_dag_constant(prism_dag *dag, const prism_value *v,
                                          prism_dag_node **out);
/* A call of `method` on actor `a` taking the values of `nargs` earlier
 * nodes of this graph as its arguments, in order; at least one of them
 * not a constant (the call runs once for each execution that reaches it).
 * `a` is borrowed until compile returns (the compiled DAG keeps its own
 * handle). `out` may be one of `args` (`prism_dag_bind(g, a, "fwd", &n, 1,
 * &n)`). */
PRISM_API prism_status prism_dag_bind(prism_dag *dag, prism_actor *a, const char *method,
                                      prism_dag_node *const *args, size_t nargs,
                                      prism_dag_node **out);
/* A call whose method makes `num_returns` values (1-64; its `nreturns`):
 * `outs` receives one node per return, each usable as an argument or an
 * output item (every one of them must lead to the output). */
PRISM_API prism_status prism_dag_bind_returns(prism_dag *dag, prism_actor *a, const char *method,
                                              prism_dag_node *const *args, size_t nargs,
                                              size_t num_returns, prism_dag_node **outs);
/* Gathers `n` earlier nodes: its value is a list of theirs, in order. */
PRISM_API prism_status prism_dag_multi_output(prism_dag *dag, prism_dag_node *const *nodes,
                                              size_t n, prism_dag_node **out);

typedef struct prism_dag_options {
    int max_inflight;             /* executions started and not yet got, 1-1024; default 8 */
    uint64_t max_buf_size;        /* bytes of one encoded value in a channel's slot, 64 to
                                     1 GiB (larger values go through the object store);
                                     default 1 MiB */
    int timeout_ms;               /* compile and teardown: how long actors may take to start
                                     or stop their loops; execute: how long it waits for
                                     room in the input channel; default 30000 */
    uint32_t spin_us;             /* how long a waiting side polls before it sleeps on a futex;
                                     default 50 */
    uint64_t max_device_buf_size; /* bytes of one device tensor in a GPU edge's slot
                                     (docs/dags.md#gpu-values), up to 16 GiB; default 0:
                                     device tensors are copied to host memory on every edge */
    uint64_t reserved[7];         /* zero */
} prism_dag_options;

/* clang-format off */
#define PRISM_DAG_OPTIONS_INIT                                                                \
    {.max_inflight = 8, .max_buf_size = 1u << 20, .timeout_ms = 30000, .spin_us = 50,         \
     .max_device_buf_size = 0, .reserved = {0}}
/* clang-format on */
PRISM_API void prism_dag_options_init(prism_dag_options *opts);

/* Checks the graph (an input, every node leads to the output, every actor
 * alive), makes the channels, and starts the loop in each
 * actor's worker. The output is the graph's last node (its last bind or
 * multi_output). `opts` may be NULL for the defaults. */
PRISM_API prism_status prism_dag_compile(prism_client *c, const prism_dag *dag,
                                         const prism_dag_options *opts, prism_dag_compiled **out);

/* Starts one execution with `input` (borrowed; copied into the input
 * channel). At most max_inflight executions may be started and not yet got:
 * the next one fails with PRISM_ERR_INVALID until the oldest is got or
 * released. A DAG that takes items of its input (prism_dag_input_item)
 * needs a list long enough: else PRISM_ERR_INVALID, nothing written. */
PRISM_API prism_status prism_dag_execute(prism_dag_compiled *d, const prism_value *input,
                                         prism_dag_future **out);
/* As prism_dag_execute with the list of `nargs` values `args` (borrowed)
 * as its input, without building it: the channel of item i gets args[i]
 * itself, and a node that takes the whole input gets the list encoded
 * straight from `args` (no value is copied). */
PRISM_API prism_status prism_dag_execute_args(prism_dag_compiled *d, const prism_value *const *args,
                                              size_t nargs, prism_dag_future **out);
/* As prism_dag_execute_args with values by key besides (Ray's
 * `execute(x, key=v)`): `nargs` positional values, exactly as many as the
 * DAG's items (prism_dag_input_item) take, and `nkw` values `kwargs[i]`
 * named `keys[i]`, each key of the DAG (prism_dag_input_key) once and no
 * other; all borrowed, none copied. A DAG that takes keys is executed this
 * way only: prism_dag_execute and _execute_args refuse it. */
PRISM_API prism_status prism_dag_execute_kwargs(prism_dag_compiled *d,
                                                const prism_value *const *args, size_t nargs,
                                                const char *const *keys,
                                                const prism_value *const *kwargs, size_t nkw,
                                                prism_dag_future **out);
/* An execution whose input is `len` bytes that the caller writes in place,
 * the driver's half of a hop without a copy (docs/dags.md#writing-the-input-in-place):
 *
 *   uint8_t *in;
 *   prism_dag_execute_begin(d, n, (void **)&in);  // waits for a free slot
 *   produce(in, n);
 *   prism_dag_execute_end(d, &f);                   // as prism_dag_execute of those bytes
 *
 * `*buf` is the input channel's slot (over TCP, its connection's frame),
 * valid until _end or _cancel; write exactly `len` bytes there. Meanwhile
 * nothing else may execute (PRISM_ERR_INVALID), though gets may run. For a
 * DAG that takes its input whole (no items or keys: PRISM_ERR_INVALID),
 * and bytes that fit max_buf_size less a record's head of 25 bytes (else
 * PRISM_ERR_INVALID: prism_dag_execute puts larger ones in the object
 * store). Errors as prism_dag_execute's. */
PRISM_API prism_status prism_dag_execute_begin(prism_dag_compiled *d, size_t len, void **buf);
/* Starts the execution begun: its future, as prism_dag_execute gives. */
PRISM_API prism_status prism_dag_execute_end(prism_dag_compiled *d, prism_dag_future **out);
/* Gives up the execution begun: nothing is written, the slot is free again.
 * A no-op without one. */
PRISM_API void prism_dag_execute_cancel(prism_dag_compiled *d);
/* Waits up to `timeout_ms` (-1: as long as the DAG lives) for the execution's
 * result. It takes the future, except when it returns PRISM_ERR_TIMEOUT
 * (then nothing changed: get it again or release it). PRISM_ERR_TASK: a method
 * failed, `*out` is an ERROR value naming it. PRISM_ERR_ACTOR_DIED: the DAG
 * is broken. */
PRISM_API prism_status prism_dag_get(prism_dag_future *f, int timeout_ms, prism_value **out);
/* As prism_dag_get, but without copying the result out of the output
 * channel: bytes and tensors point into the channel's slot. `*out` is
 * borrowed, not to be freed: it stays valid until the next prism_dag_get or
 * prism_dag_get_in_place on this DAG, or its teardown. Until then its slot
 * is held, so the last actors write ahead into max_inflight - 1 slots. A
 * value that went through the object store, an error, and an execution read
 * before (because a later future was got first) are handed out the same
 * way, borrowed. */
PRISM_API prism_status prism_dag_get_in_place(prism_dag_future *f, int timeout_ms,
                                              const prism_value **out);
/* Drops a future without getting it (its result is discarded when it comes).
 * NULL is a no-op. */
PRISM_API void prism_dag_future_release(prism_dag_future *f);

/* Stops every actor's loop, frees the channels and the compiled DAG (its
 * futures with it); the actors take ordinary calls again. Returns PRISM_OK,
 * or the first loop that could not be stopped in time (the DAG is freed
 * anyway). NULL is a no-op. */
PRISM_API prism_status prism_dag_teardown(prism_dag_compiled *d);

#ifdef __cplusplus
}
#endif
#endif
