/* The streaming executor's working state, shared by its files: executor.c
 * (stages, launching, completions, output) and all_to_all.c (the
 * all-to-all stages). Private to the executor thread of one dataset: no
 * lock guards any of it. */
#ifndef PRISM_DATASERVICE_EXECUTOR_H
#define PRISM_DATASERVICE_EXECUTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "dataservice.h"

/* What a stored block takes in a store beyond its bytes: the value's
 * encoding and the arena's 64-byte rounding. */
#define EX_STORE_OVERHEAD 256

typedef struct ex_block {
    prism_ref *ref;
    int64_t rows, bytes;
    int64_t cost;  /* bytes it keeps alive: itself, and the inputs its lineage pins */
    int64_t spill; /* of which all-to-all parts and what they pin (the stores' to spill) */
    int64_t take;  /* -1: every row; else only the first `take` rows count */
    int64_t skip;  /* rows before the ones that count: a map stage's block taken in slices
                    * (its `bytes`, `cost` and `spill` are then the rest's) */
    uint64_t seq;
    char node[DS_NODE_LEN + 1]; /* the node its task ran on ("" unknown) */
} ex_block;

typedef struct ex_fifo {
    ex_block *v;
    size_t head, n, cap; /* entries [head, n) */
} ex_fifo;

typedef struct ex_task {
    prism_ref *block, *stats;
    prism_ref **parts; /* an all-to-all map's outputs (owned), NULL otherwise */
    size_t nparts;
    bool reduce;                   /* an all-to-all reduce: its output is block `seq` */
    bool sample;                   /* sort's sample of its input block */
    bool merge;                    /* an all-to-all merge: `parts` join K maps' (seq: the first) */
    prism_actor *actor;            /* an actor pool's: the actor running it (borrowed) */
    char in_node[DS_NODE_LEN + 1]; /* the node holding most of its input bytes ("" none) */
    int64_t in_cost, in_bytes, est;
    int64_t spill; /* of in_cost: all-to-all parts and what they pin */
    int64_t units; /* a read's: what its split weighs (rows, items, or files' bytes) */
    uint64_t seq;
} ex_task;

typedef enum ex_kind { EX_READ, EX_MAP, EX_LIMIT, EX_A2A, EX_JOIN, EX_SINK } ex_kind;

typedef struct ex_stage {
    ex_kind kind;
    prism_plan_stage info;
    const char *name;
    char *program;    /* the stage as the tasks get it (JSON) */
    char *resources;  /* custom resources (JSON), or NULL */
    size_t next;      /* the stage its output goes to (n: the sink) */
    bool preserve;    /* takes its input in order: preserve_order, or a zip after it */
    ex_fifo queue;    /* input ready to take, in order */
    ex_fifo early;    /* preserve_order: input that came before its turn */
    uint64_t next_in; /* preserve_order: the seq the queue takes next */
    int64_t queued_bytes;
    /* A read's nominal splits, each cut smaller as it launches when its
     * output would pass the target block size (docs/datasets.md#block-sizes) */
    size_t nsplits, next_split; /* next_split: the nominal split `cursor` is in */
    int64_t cursor;             /* the next row, item or file to read */
    bool adaptive;              /* splits are cut to the target (no override_num_blocks) */
    int64_t align;              /* > 1: splits hold whole consumer batches (files) */
    int64_t sum_units;          /* the weights of the splits read so far */
    int64_t range_n;            /* a range's rows */
    json_t *items;              /* from_items: every item (borrowed from the plan) */
    json_t *files;              /* a read of files: [{"path", "size"}...] (owned) */
    size_t *bounds;             /* files: split i is files [bounds[i], bounds[i + 1]) */
    int64_t *bytes_before;      /* files: bytes of the files before file f, f in [0, n] */
    ex_task *tasks;
    size_t ntasks, tcap;
    uint64_t next_out;
    int64_t cap;    /* tasks in flight at most */
    bool closed;    /* no more input will come */
    bool done;      /* every output made; the stage after it was told */
    bool cut;       /* a limit downstream has its rows: nothing more here matters */
    bool saturated; /* this stage made the rows of the limit after it */
    int64_t out_rows, out_blocks, out_bytes, done_tasks, sum_in, sum_out;
    int64_t local_tasks;  /* done on the node holding most of their input */
    int64_t passed;       /* a limit's rows let through */
    ds_pool *pool;        /* compute: actors */
    struct ex_a2a *a2a;   /* an all-to-all stage's state (all_to_all.c) */
    struct ex_join *join; /* a union's or zip's (union_zip.c) */
} ex_stage;

typedef struct executor {
    dataservice *s;
    ds_dataset *d;
    prism_client *c;
    ex_stage *st; /* nstages + 1: the last is the sink (the dataset's output) */
    size_t n;
    bool preserve;
    int64_t budget, held, peak;
    int64_t target; /* the bytes a read's block should stay under */
    double cpus;    /* the cluster's, from the node agents' reports (0: not known yet) */
    double gpus;    /* the same for GPUs */
    int64_t spill;  /* of held: the blocks' and tasks' `spill` (the all-to-alls' parked apart) */
    int64_t stream_cost;   /* a streamed output's blocks the consumer has not given back */
    size_t stream_waiting; /* of which not taken yet */
    int64_t rows, blocks, bytes;
    int64_t skipped; /* files and images skip_corrupt left out */
    size_t preview_have;
    ds_writer *writer; /* the plan ends with a write: output blocks go to files */
    char *error;
} executor;

/* ---------- executor.c, for the stage kinds in other files ---------- */

int ex_fifo_push(ex_fifo *f, ex_block b); /* 0, or -1 out of memory */
static inline size_t ex_fifo_len(const ex_fifo *f) { return f->n - f->head; }
static inline ex_block ex_fifo_pop(ex_fifo *f) { return f->v[f->head++]; }

/* Fails the dataset (the first error sticks). */
void ex_fail(executor *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Releases a block and takes its cost off what is held. */
void ex_drop_block(executor *x, ex_block *b);
/* Cancels and releases a task, taking its expected output and input off. */
void ex_drop_task(executor *x, ex_task *t);
/* Adds a submitted task to the stage's list: 0, or -1 out of memory. */
int ex_add_task(ex_stage *st, ex_task t);
/* Stage `i` made block `b`: it goes to the stage after it (its `next`). */
void ex_emit(executor *x, size_t i, ex_block b);
/* Whether stage `j`'s output flows, through the stages after it, into `i`. */
bool ex_reaches(const executor *x, size_t j, size_t i);
/* The read splits of the reads whose output flows into stage `i`. */
size_t ex_upstream_splits(const executor *x, size_t i);
/* Tasks in flight over every stage. */
int64_t ex_running_tasks(const executor *x);
/* The bytes held as the budget sees them: all-to-all parts, and what
 * their lineage pins wherever it goes on (reduce tasks, their outputs and
 * the blocks made from those), count up to half the budget; beyond that
 * they are the object stores' to spill. */
int64_t ex_held_now(const executor *x);
/* The bundle a map task would take next: queued blocks [head, head + k),
 * enough rows for the stage's min_rows_per_bundle (64 blocks at most), and
 * their bytes and cost. */
size_t ex_bundle_size(const ex_stage *st, int64_t *bytes, int64_t *cost);
/* A read's next split: units [st->cursor, *to) (rows of a range, items,
 * files); returns its weight (rows, items, or the files' bytes). */
int64_t ex_split_weight(const executor *x, const ex_stage *st, int64_t *to);
/* A read's next split as JSON text (NULL out of memory), its weight in
 * `*weight`; the read moves past it (docs/datasets.md#block-sizes). */
char *ex_next_split(const executor *x, ex_stage *st, int64_t *weight);
/* The custom resources of a stage's resource map as JSON text (NULL: none). */
char *ex_custom_resources(const json_t *res);

/* ---------- all_to_all.c: an all-to-all stage (stage kind EX_A2A) ---------- */

/* Sets up stage `i` as the all-to-all of its last operator: 0, or -1
 * (having failed the dataset, or out of memory). `fused` (borrowed; NULL:
 * none) is the program of the read or map stage fused into its maps, the
 * stage's other operators: the maps run it first, on the read's splits
 * (the stage's own, set up before) or on the blocks that come. */
int a2a_setup(executor *x, size_t i, const json_t *fused);
/* Starts what may start: maps as blocks come, then the reduces. */
void a2a_step(executor *x, size_t i);
/* Task `t` of stage `i` ended well with `stats` (taken off the task list). */
void a2a_complete(executor *x, size_t i, ex_task t, json_t *stats);
/* Whether the stage has made every output it will. */
bool a2a_finished(const ex_stage *st);
/* The bytes of parts waiting for their reduces (of the executor's `held`). */
int64_t a2a_parked(const struct ex_a2a *a);
/* Drops every part, sample and waiting output (a cut, or the end). */
void a2a_release(executor *x, struct ex_a2a *a);
void a2a_free(struct ex_a2a *a);

/* ---------- union_zip.c: a union or zip stage (stage kind EX_JOIN) ----------
 * Its inputs are the stages whose `next` it is, in order (the first the
 * plan's own chain). */

/* Sets up stage `i`: 0, or -1 out of memory. */
int join_setup(executor *x, size_t i);
/* Input stage `from` of stage `i` made block `b`. */
void join_take(executor *x, size_t i, size_t from, ex_block b);
/* Input stage `from` of stage `i` has made every block it will. */
void join_input_done(executor *x, size_t i, size_t from);
/* Starts what may start: blocks on (union), tasks (zip). */
void join_step(executor *x, size_t i);
/* Whether the stage has made every output it will. */
bool join_finished(const ex_stage *st);
/* Drops every block it holds (a cut, or the end). */
void join_release(executor *x, struct ex_join *j);
void join_free(struct ex_join *j);

#endif
