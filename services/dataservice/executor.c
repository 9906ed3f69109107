/* The streaming executor: one thread per running dataset
 * (docs/datasets.md#executing-a-plan).
 *
 * Each stage of the physical plan is a queue of input blocks and a set of
 * tasks in flight. A read stage makes one task per split; a map stage one
 * task per bundle of input blocks (one task runs every operator fused into
 * the stage); a limit stage runs here, letting the first rows through and
 * then cutting the stages upstream. Outputs flow to the next stage as soon
 * as their task ends: every stage runs at once, as a pipeline.
 *
 * Backpressure: the executor counts the bytes of blocks it keeps alive
 * (queued, taken by running tasks, expected from running tasks, and the
 * inputs a stored output pins through its lineage: libprism keeps the task
 * of a stored result, and so its arguments, to make it again if it is lost).
 * A task starts only while that count plus its expected output fits the
 * budget, downstream stages first, so a pipeline whose consumer lags stops
 * reading instead of filling the object stores; one task may always start
 * when none runs, so a budget smaller than a block still makes progress.
 *
 * The dataset's output is consumed here: counted, its first rows kept as
 * JSON for GET .../rows, its blocks released. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataservice.h"
#include "prism_block.h"
#include "prism_internal.h"
#include "prism_id.h"
#include "prism_log.h"
#include "prism_time.h"

#define EX_WAIT_MS 20
#define EX_PREVIEW_GET_MS 60000
#define EX_PREVIEW_MAX_TEXT (8u << 20)
/* What a stored block takes in a store beyond its bytes: the value's
 * encoding and the arena's 64-byte rounding. */
#define EX_STORE_OVERHEAD 256

typedef struct ex_block {
    prism_ref *ref;
    int64_t rows, bytes;
    int64_t cost; /* bytes it keeps alive: itself, and the inputs its lineage pins */
    int64_t take; /* -1: every row; else only the first `take` rows count */
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
    prism_actor *actor;            /* an actor pool's: the actor running it (borrowed) */
    char in_node[DS_NODE_LEN + 1]; /* the node holding most of its input bytes ("" none) */
    int64_t in_cost, in_bytes, est;
    uint64_t seq;
} ex_task;

typedef enum ex_kind { EX_READ, EX_MAP, EX_LIMIT, EX_A2A, EX_SINK } ex_kind;

/* A finished map task of an all-to-all stage: its parts wait in the object
 * stores for the reduces (randomize_block_order and repartition without
 * shuffle: the input block itself, with its rows). */
typedef struct ex_map {
    prism_ref **parts; /* nparts refs; a reduce's submission releases the ones it took */
    size_t nparts;
    int64_t cost; /* bytes it keeps alive: its parts and the input their lineage pins */
    int64_t rows, take;
    uint64_t seq; /* its input block's: the reduces take the maps in this order */
} ex_map;

/* An all-to-all stage (docs/datasets.md#how-the-all-to-all-runs). */
typedef struct ex_a2a {
    prism_plan_op_kind op;
    bool has_map;  /* map tasks cut blocks into parts (not randomize_block_order,
                    * nor repartition without shuffle) */
    size_t parts;  /* reduce tasks, and so output blocks */
    uint64_t seed; /* the stage's: every task's randomness derives from it */
    ex_map *maps;
    size_t nmaps, mcap;
    size_t next_reduce; /* reduces submitted */
    bool reducing;      /* every map has finished: the reduces may start */
    ex_block *outs;     /* reduce outputs waiting for their turn: they leave in reduce
                         * order (sorted ranges; a seeded shuffle the same each run) */
    bool *have;
    size_t next_deliver;
    int64_t parked; /* of the executor's `held`: the maps' costs not yet taken by a reduce */
    /* sort: every block is sampled as it comes (its keys at even steps) and
     * waits; once all are, the maps cut them at the same boundaries */
    bool sampled;        /* every block's sample is in: the maps may start */
    ex_fifo waiting;     /* blocks whose sample was taken */
    prism_ref **samples; /* the samples, every map's extra arguments */
    size_t nsamples, scap;
    int64_t samples_cost;
} ex_a2a;

typedef struct ex_stage {
    ex_kind kind;
    prism_plan_stage info;
    const char *name;
    char *program;    /* the stage as the tasks get it (JSON) */
    char *resources;  /* custom resources (JSON), or NULL */
    ex_fifo queue;    /* input ready to take, in order */
    ex_fifo early;    /* preserve_order: input that came before its turn */
    uint64_t next_in; /* preserve_order: the seq the queue takes next */
    int64_t queued_bytes;
    size_t nsplits, next_split; /* a read's splits */
    int64_t split_rows;         /* a range's rows per split (for the first estimate) */
    json_t *items;              /* from_items: every item (borrowed from the plan) */
    json_t *files;              /* a read of files: [{"path", "size"}...] (owned) */
    size_t *bounds;             /* files: split i is files [bounds[i], bounds[i + 1]) */
    ex_task *tasks;
    size_t ntasks, tcap;
    uint64_t next_out;
    int64_t cap;    /* tasks in flight at most */
    bool closed;    /* no more input will come */
    bool cut;       /* a limit downstream has its rows: nothing more here matters */
    bool saturated; /* this stage made the rows of the limit after it */
    int64_t out_rows, out_blocks, out_bytes, done_tasks, sum_in, sum_out;
    int64_t local_tasks; /* done on the node holding most of their input */
    int64_t passed;      /* a limit's rows let through */
    ds_pool *pool;       /* compute: actors */
    ex_a2a *a2a;         /* an all-to-all stage's state */
} ex_stage;

typedef struct executor {
    dataservice *s;
    ds_dataset *d;
    prism_client *c;
    ex_stage *st; /* nstages + 1: the last is the sink (the dataset's output) */
    size_t n;
    bool preserve;
    int64_t budget, held, peak;
    int64_t stream_cost;   /* a streamed output's blocks the consumer has not given back */
    size_t stream_waiting; /* of which not taken yet */
    int64_t rows, blocks, bytes;
    int64_t skipped; /* files and images skip_corrupt left out */
    size_t preview_have;
    ds_writer *writer; /* the plan ends with a write: output blocks go to files */
    char *error;
} executor;

/* ---------- queues ---------- */

static int fifo_push(ex_fifo *f, ex_block b)
{
    if (f->head > 0 && f->n == f->cap) {
        memmove(f->v, f->v + f->head, (f->n - f->head) * sizeof *f->v);
        f->n -= f->head;
        f->head = 0;
    }
    if (f->n == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 16;
        ex_block *v = realloc(f->v, cap * sizeof *v);
        if (!v)
            return -1;
        f->v = v;
        f->cap = cap;
    }
    f->v[f->n++] = b;
    return 0;
}

static size_t fifo_len(const ex_fifo *f) { return f->n - f->head; }

static ex_block fifo_pop(ex_fifo *f) { return f->v[f->head++]; }

/* ---------- bookkeeping ---------- */

static void fail(executor *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(executor *x, const char *fmt, ...)
{
    if (x->error)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&x->error, fmt, ap) < 0)
        x->error = NULL;
    va_end(ap);
    if (!x->error)
        x->error = strdup("failed (out of memory)");
}

static void drop_block(executor *x, ex_block *b)
{
    x->held -= b->cost;
    prism_ref_release(b->ref);
    b->ref = NULL;
}

static void drop_task(executor *x, ex_task *t)
{
    prism_cancel(x->c, t->block, false); /* a queued task never runs; a running one ends */
    prism_ref_release(t->block);
    prism_ref_release(t->stats);
    for (size_t k = 0; k < t->nparts; k++)
        prism_ref_release(t->parts[k]);
    free(t->parts);
    t->parts = NULL;
    t->nparts = 0;
    x->held -= t->est + t->in_cost;
}

static void a2a_release(executor *x, ex_a2a *a);

/* Nothing more from stage `i` matters: its input, queue and tasks go. */
static void cut_stage(executor *x, size_t i)
{
    ex_stage *st = &x->st[i];
    st->cut = st->closed = true;
    while (fifo_len(&st->queue)) {
        ex_block b = fifo_pop(&st->queue);
        drop_block(x, &b);
    }
    while (fifo_len(&st->early)) {
        ex_block b = fifo_pop(&st->early);
        drop_block(x, &b);
    }
    st->queued_bytes = 0;
    for (size_t k = 0; k < st->ntasks; k++)
        drop_task(x, &st->tasks[k]);
    st->ntasks = 0;
    st->next_split = st->nsplits;
    if (st->a2a)
        a2a_release(x, st->a2a);
}

static void cut_upstream(executor *x, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (!x->st[j].cut)
            cut_stage(x, j);
}

static void enqueue(executor *x, ex_stage *st, ex_block b)
{
    int64_t rows = b.take >= 0 && b.take < b.rows ? b.take : b.rows;
    if (rows == 0 || st->cut) { /* nothing to do with it */
        drop_block(x, &b);
        return;
    }
    if (fifo_push(&st->queue, b) != 0) {
        drop_block(x, &b);
        fail(x, "out of memory");
        return;
    }
    st->queued_bytes += b.bytes;
}

/* Moves what has its turn from `early` to the queue. */
static void release_early(executor *x, ex_stage *st, bool all)
{
    for (bool moved = true; moved;) {
        moved = false;
        size_t best = SIZE_MAX;
        for (size_t k = st->early.head; k < st->early.n; k++)
            if (st->early.v[k].seq == st->next_in ||
                (all && (best == SIZE_MAX || st->early.v[k].seq < st->early.v[best].seq)))
                best = k;
        if (best == SIZE_MAX || (!all && st->early.v[best].seq != st->next_in))
            continue;
        ex_block b = st->early.v[best];
        st->early.v[best] = st->early.v[st->early.head++];
        st->next_in = b.seq + 1;
        enqueue(x, st, b);
        moved = true;
    }
}

/* Hands an output block to stage `i` (the sink when i == n). */
static void deliver(executor *x, size_t i, ex_block b)
{
    ex_stage *st = &x->st[i];
    if (st->cut) {
        drop_block(x, &b);
    } else if (!x->preserve) {
        enqueue(x, st, b);
    } else if (fifo_push(&st->early, b) != 0) {
        drop_block(x, &b);
        fail(x, "out of memory");
    } else {
        release_early(x, st, false);
    }
}

/* ---------- launching ---------- */

static int64_t running_tasks(const executor *x)
{
    int64_t n = 0;
    for (size_t i = 0; i < x->n; i++)
        n += (int64_t)x->st[i].ntasks;
    return n;
}

/* The bytes a task of stage `i` is expected to make from `in_bytes` of input. */
static int64_t estimate(const ex_stage *st, int64_t in_bytes)
{
    if (st->kind == EX_READ) {
        if (st->done_tasks > 0)
            return st->sum_out / st->done_tasks + EX_STORE_OVERHEAD;
        if (st->files) /* at least the files' bytes; images decode to more */
            return st->split_rows + 1024;
        return st->split_rows > 0 ? st->split_rows * 8 + 1024 : 64 * 1024;
    }
    if (st->sum_in > 0)
        return (int64_t)((double)in_bytes * (double)st->sum_out / (double)st->sum_in) +
               EX_STORE_OVERHEAD;
    return in_bytes + EX_STORE_OVERHEAD;
}

/* The bundle a map task would take next: blocks [head, head + k). */
static size_t bundle_size(const ex_stage *st, int64_t *bytes, int64_t *cost)
{
    size_t k = 0;
    int64_t rows = 0;
    *bytes = *cost = 0;
    while (st->queue.head + k < st->queue.n) {
        const ex_block *b = &st->queue.v[st->queue.head + k++];
        rows += b->take >= 0 && b->take < b->rows ? b->take : b->rows;
        *bytes += b->bytes;
        *cost += b->cost;
        if (rows >= st->info.min_rows_per_bundle || k == 64)
            break;
    }
    return k;
}

/* The bytes one task of each map stage after stage `i` is expected to make
 * from what stage `i` makes (`out` bytes a task). */
static int64_t reserve(const executor *x, size_t i, int64_t out)
{
    int64_t total = 0;
    for (size_t j = i + 1; j < x->n; j++) {
        if (x->st[j].kind != EX_MAP || x->st[j].cut)
            continue;
        out = estimate(&x->st[j], out);
        total += out;
    }
    return total;
}

/* The bytes held, as the budget sees them: all-to-all parts waiting for
 * their reduces count up to half the budget; beyond that they are the
 * object stores' to spill, so that the stages before the all-to-all keep
 * streaming while its input is larger than the budget. */
static int64_t held_now(const executor *x)
{
    int64_t parked = 0;
    for (size_t i = 0; i < x->n; i++)
        if (x->st[i].a2a)
            parked += x->st[i].a2a->parked;
    int64_t counted = parked < x->budget / 2 ? parked : x->budget / 2;
    return x->held - parked + counted + x->stream_cost;
}

static bool can_launch(executor *x, size_t i, int64_t *est)
{
    ex_stage *st = &x->st[i];
    if (st->cut || st->saturated || (int64_t)st->ntasks >= st->cap)
        return false;
    if (st->pool && ds_pool_idle(st->pool) < 0 && !ds_pool_can_grow(st->pool))
        return false; /* every actor busy, and no more allowed */
    int64_t in_bytes = 0, in_cost = 0;
    if (st->kind == EX_READ && st->next_split >= st->nsplits)
        return false;
    if (st->kind == EX_MAP && bundle_size(st, &in_bytes, &in_cost) == 0)
        return false;
    *est = estimate(st, in_bytes);
    /* Room is kept for one task of each stage downstream, so that what this
     * stage makes can always move on. One task may always run: a budget
     * below one block still progresses. */
    int64_t held = held_now(x);
    /* A consumer that lags holds the pipeline back: while blocks wait for it,
     * nothing starts. */
    return held + *est + reserve(x, i, *est) <= x->budget ||
           (running_tasks(x) == 0 && x->stream_waiting == 0);
}

/* Split `i` of a from_items read: its share of the items. */
static char *items_split(const ex_stage *st, size_t i)
{
    size_t n = json_array_size(st->items), base = n / st->nsplits, rem = n % st->nsplits;
    size_t start = i * base + (i < rem ? i : rem), end = start + base + (i < rem);
    json_t *slice = json_array();
    for (size_t k = start; slice && k < end; k++)
        json_array_append(slice, json_array_get(st->items, k));
    json_t *split = slice ? json_pack("{so}", "items", slice) : NULL;
    char *text = split ? json_dumps(split, JSON_COMPACT) : NULL;
    json_decref(split);
    return text;
}

static int submit(executor *x, ex_stage *st, prism_value **args, size_t nargs, ex_task *t)
{
    prism_task_options o = PRISM_TASK_OPTIONS_INIT;
    o.num_returns = 2;
    o.num_cpus = st->info.num_cpus;
    o.num_gpus = st->info.num_gpus;
    o.memory = st->info.memory;
    o.resources = st->resources;
    if (*t->in_node) { /* the node holding its input first, others when it is full */
        o.strategy = PRISM_STRATEGY_NODE_AFFINITY;
        o.node_id = t->in_node;
        o.soft = true;
    }
    prism_ref *refs[2] = {NULL, NULL};
    prism_status s;
    if (st->pool) { /* an idle actor, or one more while the pool may grow */
        char err[512];
        int a = ds_pool_idle(st->pool);
        if (a < 0 && ds_pool_grow(st->pool, err, sizeof err) != 0) {
            for (size_t i = 0; i < nargs; i++)
                prism_value_free(args[i]);
            fail(x, "%s: %s", st->name, err);
            return -1;
        }
        if (a < 0)
            a = ds_pool_idle(st->pool);
        t->actor = ds_pool_take(st->pool, a);
        s = prism_actor_call(x->c, t->actor, "run", args, nargs, 2, refs);
    } else {
        s = prism_submit(x->c, "builtin",
                         st->kind == EX_READ ? "data_read_stage" : "data_map_stage", args, nargs,
                         &o, refs);
    }
    for (size_t i = 0; i < nargs; i++)
        prism_value_free(args[i]);
    if (s != PRISM_OK) {
        fail(x, "%s: cannot submit a task: %s", st->name, prism_last_error());
        return -1;
    }
    t->block = refs[0];
    t->stats = refs[1];
    prism_metric_add(x->s->m.tasks, 1);
    return 0;
}

static int add_task(ex_stage *st, ex_task t)
{
    if (st->ntasks == st->tcap) {
        size_t cap = st->tcap ? 2 * st->tcap : 8;
        ex_task *v = realloc(st->tasks, cap * sizeof *v);
        if (!v)
            return -1;
        st->tasks = v;
        st->tcap = cap;
    }
    st->tasks[st->ntasks++] = t;
    return 0;
}

/* Split `i` of a read of files: its files' paths. */
static char *files_split(const ex_stage *st, size_t i)
{
    json_t *paths = json_array();
    for (size_t k = st->bounds[i]; paths && k < st->bounds[i + 1]; k++)
        json_array_append(paths, json_object_get(json_array_get(st->files, k), "path"));
    json_t *split = paths ? json_pack("{so}", "files", paths) : NULL;
    char *text = split ? json_dumps(split, JSON_COMPACT) : NULL;
    json_decref(split);
    return text;
}

/* The read's next split as JSON text. */
static char *next_split(ex_stage *st, int64_t range_n)
{
    size_t i = st->next_split;
    if (st->items)
        return items_split(st, i);
    if (st->files)
        return files_split(st, i);
    int64_t base = range_n / (int64_t)st->nsplits, rem = range_n % (int64_t)st->nsplits;
    int64_t start = (int64_t)i * base + ((int64_t)i < rem ? (int64_t)i : rem);
    int64_t end = start + base + ((int64_t)i < rem);
    char *text = NULL;
    if (asprintf(&text, "{\"start\":%lld,\"end\":%lld}", (long long)start, (long long)end) < 0)
        text = NULL;
    return text;
}

static int launch_one(executor *x, size_t i, int64_t est, int64_t range_n)
{
    ex_stage *st = &x->st[i];
    ex_task t = {.est = est, .seq = st->next_out};
    prism_value *args[2 + 64] = {prism_value_json(st->program), NULL};
    size_t nargs = 2;
    if (st->kind == EX_READ) {
        char *split = next_split(st, range_n);
        args[1] = split ? prism_value_json(split) : NULL;
        free(split);
        st->next_split++;
    } else {
        int64_t bytes, cost;
        size_t k = bundle_size(st, &bytes, &cost);
        json_t *take = json_array();
        int64_t most = 0;
        for (size_t j = 0; j < k; j++) {
            ex_block b = fifo_pop(&st->queue);
            if (b.bytes > most && *b.node) {
                most = b.bytes;
                snprintf(t.in_node, sizeof t.in_node, "%s", b.node);
            }
            json_array_append_new(take, b.take >= 0 ? json_integer(b.take) : json_null());
            args[nargs++] = prism_value_ref(b.ref);
            prism_ref_release(b.ref); /* the task holds its arguments */
            st->queued_bytes -= b.bytes;
            t.in_bytes += b.bytes;
            t.in_cost += b.cost;
        }
        char *text = json_dumps(take, JSON_COMPACT);
        json_decref(take);
        args[1] = text ? prism_value_json(text) : NULL;
        free(text);
    }
    x->held += t.est; /* the inputs were counted while queued; now the output is */
    for (size_t j = 0; j < nargs; j++) {
        if (!args[j]) {
            for (size_t k = 0; k < nargs; k++)
                prism_value_free(args[k]);
            x->held -= t.est + t.in_cost;
            fail(x, "out of memory");
            return -1;
        }
    }
    if (submit(x, st, args, nargs, &t) != 0) {
        x->held -= t.est + t.in_cost;
        return -1;
    }
    st->next_out++;
    if (add_task(st, t) != 0) {
        drop_task(x, &t);
        fail(x, "out of memory");
        return -1;
    }
    return 0;
}

/* A limit stage: the first `limit` rows pass, then everything upstream stops. */
static void run_limit(executor *x, size_t i)
{
    ex_stage *st = &x->st[i];
    while (!st->cut && fifo_len(&st->queue)) {
        ex_block b = fifo_pop(&st->queue);
        st->queued_bytes -= b.bytes;
        int64_t rows = b.take >= 0 && b.take < b.rows ? b.take : b.rows;
        int64_t left = st->info.limit - st->passed;
        if (left <= 0) {
            drop_block(x, &b);
            continue;
        }
        if (rows > left)
            rows = left;
        b.take = rows < b.rows ? rows : -1;
        b.seq = st->next_out++;
        st->passed += rows;
        st->out_rows += rows;
        st->out_blocks++;
        st->out_bytes += b.bytes;
        deliver(x, i + 1, b);
    }
    /* Enough: nothing upstream matters any more, nor what still comes here
     * (blocks waiting for their turn may wait for blocks that never come). */
    if (st->passed >= st->info.limit && !st->cut) {
        cut_upstream(x, i);
        cut_stage(x, i);
    }
}

/* ---------- all-to-all stages ---------- */

static void a2a_release(executor *x, ex_a2a *a)
{
    for (size_t m = 0; m < a->nmaps; m++) {
        for (size_t k = 0; k < a->maps[m].nparts; k++)
            prism_ref_release(a->maps[m].parts[k]);
        free(a->maps[m].parts);
    }
    a->nmaps = 0;
    while (fifo_len(&a->waiting)) {
        ex_block b = fifo_pop(&a->waiting);
        prism_ref_release(b.ref); /* its cost is in `parked` */
    }
    for (size_t k = 0; k < a->nsamples; k++)
        prism_ref_release(a->samples[k]);
    a->nsamples = 0;
    x->held -= a->parked;
    a->parked = 0;
    for (size_t r = 0; a->outs && r < a->parts; r++)
        if (a->have[r]) {
            drop_block(x, &a->outs[r]);
            a->have[r] = false;
        }
    a->next_reduce = a->parts;
}

static int a2a_add_map(ex_a2a *a, ex_map m)
{
    if (a->nmaps == a->mcap) {
        size_t cap = a->mcap ? 2 * a->mcap : 16;
        ex_map *v = realloc(a->maps, cap * sizeof *v);
        if (!v)
            return -1;
        a->maps = v;
        a->mcap = cap;
    }
    a->maps[a->nmaps++] = m;
    return 0;
}

/* Map `m`'s share of its cost that reduce `r` takes (the shares add up). */
static int64_t a2a_share(const ex_a2a *a, const ex_map *m, size_t r)
{
    return (int64_t)((__int128)m->cost * (r + 1) / a->parts - (__int128)m->cost * r / a->parts);
}

static int a2a_submit(executor *x, ex_stage *st, const char *fn, prism_value **args, size_t nargs,
                      int nreturns, prism_ref **refs)
{
    prism_task_options o = PRISM_TASK_OPTIONS_INIT;
    o.num_returns = nreturns;
    o.num_cpus = st->info.num_cpus;
    o.resources = st->resources;
    prism_status s = PRISM_ERR_NO_MEMORY;
    bool ok = true;
    for (size_t i = 0; i < nargs; i++)
        ok &= args[i] != NULL;
    if (ok)
        s = prism_submit(x->c, "builtin", fn, args, nargs, &o, refs);
    for (size_t i = 0; i < nargs; i++)
        prism_value_free(args[i]);
    if (s != PRISM_OK) {
        fail(x, "%s: cannot submit a task: %s", st->name, prism_last_error());
        return -1;
    }
    prism_metric_add(x->s->m.tasks, 1);
    return 0;
}

/* A map task on the next queued block. */
static int a2a_launch_map(executor *x, ex_stage *st, int64_t est)
{
    ex_a2a *a = st->a2a;
    bool sample = a->op == PRISM_OP_SORT && !a->sampled;
    ex_block b = fifo_pop(&st->queue);
    st->queued_bytes -= b.bytes;
    /* Its randomness follows its block's place in the input, not when the
     * block came: a seeded run makes the same parts. */
    ex_task t = {.est = est, .in_bytes = b.bytes, .in_cost = b.cost, .seq = b.seq};
    char task[128];
    snprintf(task, sizeof task, "{\"index\":%llu,\"take\":%lld,\"sample\":%s}",
             (unsigned long long)b.seq, (long long)b.take, sample ? "true" : "false");
    if (b.take < 0)
        snprintf(task, sizeof task, "{\"index\":%llu,\"take\":null,\"sample\":%s}",
                 (unsigned long long)b.seq, sample ? "true" : "false");
    size_t nargs = 3 + (sample ? 0 : a->nsamples);
    prism_value **args = calloc(nargs, sizeof *args);
    if (args) {
        args[0] = prism_value_json(st->program);
        args[1] = prism_value_json(task);
        args[2] = prism_value_ref(b.ref);
        for (size_t k = 3; k < nargs; k++)
            args[k] = prism_value_ref(a->samples[k - 3]);
    }
    if (sample) { /* the block waits for the maps, its cost parked */
        t.sample = true;
        t.in_cost = 0;
        a->parked += b.cost;
        if (fifo_push(&a->waiting, b) != 0) {
            a->parked -= b.cost;
            drop_block(x, &b);
            free(args);
            fail(x, "out of memory");
            return -1;
        }
    } else {
        if (a->op == PRISM_OP_SORT) /* it waited parked: now the task's input */
            a->parked -= b.cost;
        prism_ref_release(b.ref); /* the task holds its argument */
    }
    t.nparts = sample ? 1 : a->parts;
    prism_ref **refs = calloc(t.nparts + 1, sizeof *refs);
    x->held += t.est;
    if (!refs || !args) {
        for (size_t i = 0; args && i < nargs; i++)
            prism_value_free(args[i]);
        free(args);
        free(refs);
        x->held -= t.est + t.in_cost;
        fail(x, "out of memory");
        return -1;
    }
    int rc = a2a_submit(x, st, "data_a2a_map", args, nargs, (int)t.nparts + 1, refs);
    free(args);
    if (rc != 0) {
        free(refs);
        x->held -= t.est + t.in_cost;
        return -1;
    }
    t.parts = refs;
    t.stats = refs[t.nparts];
    if (add_task(st, t) != 0) {
        drop_task(x, &t);
        fail(x, "out of memory");
        return -1;
    }
    return 0;
}

/* Repartition without shuffle: reduce r's rows [r*T/P, (r+1)*T/P) of the
 * input in order, as [[skip, count]...] of the maps it takes (`first`..). */
static json_t *a2a_ranges(const ex_a2a *a, size_t r, size_t *first, size_t *count)
{
    int64_t total = 0;
    for (size_t m = 0; m < a->nmaps; m++)
        total += a->maps[m].rows;
    int64_t lo = (int64_t)((__int128)total * r / a->parts);
    int64_t hi = (int64_t)((__int128)total * (r + 1) / a->parts);
    json_t *ranges = json_array();
    int64_t pos = 0;
    *first = *count = 0;
    for (size_t m = 0; ranges && m < a->nmaps && pos < hi; m++) {
        int64_t rows = a->maps[m].rows, s = lo > pos ? lo - pos : 0;
        int64_t e = hi - pos < rows ? hi - pos : rows;
        if (e > s) {
            if (*count == 0)
                *first = m;
            (*count)++;
            json_array_append_new(ranges, json_pack("[II]", (json_int_t)s, (json_int_t)(e - s)));
        }
        pos += rows;
    }
    if (ranges && *count == 0 && a->nmaps > 0) { /* fewer rows than blocks: an empty one */
        *count = 1;
        json_array_append_new(ranges, json_pack("[ii]", 0, 0));
    }
    return ranges;
}

/* Reduce task r: part r of every map (sort: every sorted block). */
static int a2a_launch_reduce(executor *x, ex_stage *st)
{
    ex_a2a *a = st->a2a;
    size_t r = a->next_reduce, first = 0, count = a->nmaps;
    json_t *ranges = NULL;
    if (!a->has_map && (ranges = a2a_ranges(a, r, &first, &count)) == NULL) {
        fail(x, "out of memory");
        return -1;
    }
    json_t *task = json_pack("{sIso*}", "index", (json_int_t)r, "ranges", ranges);
    char *text = task ? json_dumps(task, JSON_COMPACT) : NULL;
    json_decref(task);
    prism_value **args = calloc(count + 2, sizeof *args);
    ex_task t = {.reduce = true, .seq = r};
    if (args) {
        args[0] = prism_value_json(st->program);
        args[1] = text ? prism_value_json(text) : NULL;
    }
    free(text);
    for (size_t m = 0; m < a->nmaps; m++) {
        ex_map *mp = &a->maps[m];
        int64_t share = a2a_share(a, mp, r);
        t.in_cost += share;
        a->parked -= share;
        if (args && m >= first && m < first + count) {
            size_t k = mp->nparts == 1 ? 0 : r;
            args[2 + m - first] = prism_value_ref(mp->parts[k]);
            t.in_bytes += share;
            if (mp->nparts > 1) { /* nobody else takes this part: the task holds it */
                prism_ref_release(mp->parts[k]);
                mp->parts[k] = NULL;
            }
        }
    }
    if (!args) {
        x->held -= t.in_cost;
        fail(x, "out of memory");
        return -1;
    }
    t.est = t.in_bytes + EX_STORE_OVERHEAD;
    x->held += t.est;
    prism_ref *refs[2] = {NULL, NULL};
    int rc = a2a_submit(x, st, "data_a2a_reduce", args, count + 2, 2, refs);
    free(args);
    if (rc != 0) {
        x->held -= t.est + t.in_cost;
        return -1;
    }
    t.block = refs[0];
    t.stats = refs[1];
    a->next_reduce++;
    if (a->next_reduce == a->parts) /* shared parts (sort, repartition): every reduce has them */
        for (size_t m = 0; m < a->nmaps; m++)
            for (size_t k = 0; k < a->maps[m].nparts; k++) {
                prism_ref_release(a->maps[m].parts[k]);
                a->maps[m].parts[k] = NULL;
            }
    if (add_task(st, t) != 0) {
        drop_task(x, &t);
        fail(x, "out of memory");
        return -1;
    }
    return 0;
}

static int block_order(const void *p, const void *q)
{
    const ex_block *a = p, *b = q;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* randomize_block_order: once every block has come, they leave in an order
 * drawn from the seed. No task: the blocks stay where they are. */
static void a2a_randomize(executor *x, size_t i)
{
    ex_stage *st = &x->st[i];
    ex_a2a *a = st->a2a;
    size_t n = fifo_len(&st->queue);
    ex_block *v = st->queue.v + st->queue.head;
    qsort(v, n, sizeof *v, block_order); /* the input's order first: a seed repeats the result */
    uint64_t s = a->seed;
    for (size_t k = n; k > 1; k--) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t j = (size_t)((s >> 33) % k);
        ex_block tmp = v[k - 1];
        v[k - 1] = v[j];
        v[j] = tmp;
    }
    while (fifo_len(&st->queue)) {
        ex_block b = fifo_pop(&st->queue);
        st->queued_bytes -= b.bytes;
        b.seq = st->next_out++;
        st->out_rows += b.take >= 0 && b.take < b.rows ? b.take : b.rows;
        st->out_blocks++;
        st->out_bytes += b.bytes;
        deliver(x, i + 1, b);
    }
    a->reducing = true;
    a->next_reduce = a->parts;
}

static int map_order(const void *p, const void *q)
{
    const ex_map *a = p, *b = q;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Maps as blocks come; once every map has finished, the reduces. */
static void a2a_step(executor *x, size_t i)
{
    ex_stage *st = &x->st[i];
    ex_a2a *a = st->a2a;
    if (st->cut)
        return;
    bool input_done = st->closed && fifo_len(&st->early) == 0;
    if (!a->has_map) {
        if (!input_done || a->reducing)
            goto reduces;
        if (a->op == PRISM_OP_RANDOMIZE_BLOCK_ORDER) {
            a2a_randomize(x, i);
            return;
        }
        /* repartition without shuffle: the blocks themselves are the parts */
        while (fifo_len(&st->queue)) {
            ex_block b = fifo_pop(&st->queue);
            st->queued_bytes -= b.bytes;
            prism_ref **one = malloc(sizeof *one);
            ex_map m = {.parts = one, .nparts = 1, .cost = b.cost, .take = b.take, .seq = b.seq};
            m.rows = b.take >= 0 && b.take < b.rows ? b.take : b.rows;
            if (!one || a2a_add_map(a, m) != 0) {
                free(one);
                drop_block(x, &b);
                fail(x, "out of memory");
                return;
            }
            one[0] = b.ref;
            a->parked += b.cost;
        }
        a->reducing = true;
    } else {
        int64_t est;
        if (a->op == PRISM_OP_SORT && !a->sampled && input_done && fifo_len(&st->queue) == 0 &&
            st->ntasks == 0) {
            /* every block sampled: they go to the maps, in the input's order */
            ex_block *v = a->waiting.v + a->waiting.head;
            qsort(v, fifo_len(&a->waiting), sizeof *v, block_order);
            while (fifo_len(&a->waiting)) {
                ex_block b = fifo_pop(&a->waiting);
                st->queued_bytes += b.bytes;
                if (fifo_push(&st->queue, b) != 0) {
                    a->parked -= b.cost;
                    drop_block(x, &b);
                    fail(x, "out of memory");
                    return;
                }
            }
            a->sampled = true;
        }
        while (!x->error && fifo_len(&st->queue) && (int64_t)st->ntasks < st->cap) {
            const ex_block *b = &st->queue.v[st->queue.head];
            est = b->bytes + EX_STORE_OVERHEAD * (int64_t)a->parts;
            if (held_now(x) + est > x->budget && running_tasks(x) > 0)
                break;
            if (a2a_launch_map(x, st, est) != 0)
                return;
        }
        if (input_done && fifo_len(&st->queue) == 0 && st->ntasks == 0 &&
            (a->op != PRISM_OP_SORT || a->sampled)) {
            a->reducing = true;
            for (size_t k = 0; k < a->nsamples; k++) /* the maps are done with them */
                prism_ref_release(a->samples[k]);
            a->nsamples = 0;
            x->held -= a->samples_cost;
            a->parked -= a->samples_cost;
            a->samples_cost = 0;
        }
    }
reduces:
    if (!a->reducing || a->nmaps == 0)
        return;
    if (a->next_reduce == 0) /* the input's order, whatever order the maps ended in */
        qsort(a->maps, a->nmaps, sizeof *a->maps, map_order);
    while (!x->error && a->next_reduce < a->parts && (int64_t)st->ntasks < st->cap) {
        if (held_now(x) > x->budget && running_tasks(x) > 0)
            break;
        if (a2a_launch_reduce(x, st) != 0)
            return;
    }
}

/* A map or reduce task of stage `i` finished (taken off its list). */
static void a2a_complete(executor *x, size_t i, ex_task t, json_t *stats)
{
    ex_stage *st = &x->st[i];
    ex_a2a *a = st->a2a;
    x->held -= t.est + t.in_cost;
    st->done_tasks++;
    if (t.sample) { /* sort: one more block's keys */
        int64_t cost = json_integer_value(json_array_get(json_object_get(stats, "bytes"), 0)) +
                       EX_STORE_OVERHEAD;
        if (a->nsamples == a->scap) {
            size_t cap = a->scap ? 2 * a->scap : 16;
            prism_ref **v = realloc(a->samples, cap * sizeof *v);
            if (!v) {
                prism_ref_release(t.parts[0]);
                free(t.parts);
                fail(x, "out of memory");
                return;
            }
            a->samples = v;
            a->scap = cap;
        }
        a->samples[a->nsamples++] = t.parts[0];
        free(t.parts);
        x->held += cost;
        a->parked += cost;
        a->samples_cost += cost;
        return;
    }
    if (!t.reduce) {
        ex_map m = {
            .parts = t.parts, .nparts = t.nparts, .cost = t.in_cost, .take = -1, .seq = t.seq};
        json_t *bytes = json_object_get(stats, "bytes"), *rows = json_object_get(stats, "rows");
        for (size_t k = 0; k < t.nparts; k++) {
            m.cost += json_integer_value(json_array_get(bytes, k)) + EX_STORE_OVERHEAD;
            m.rows += json_integer_value(json_array_get(rows, k));
        }
        x->held += m.cost;
        a->parked += m.cost;
        st->sum_in += t.in_bytes;
        if (a2a_add_map(a, m) != 0) {
            for (size_t k = 0; k < t.nparts; k++)
                prism_ref_release(t.parts[k]);
            free(t.parts);
            fail(x, "out of memory");
        }
        return;
    }
    ex_block b = {.ref = t.block, .take = -1, .seq = t.seq};
    const char *node = json_string_value(json_object_get(stats, "node"));
    snprintf(b.node, sizeof b.node, "%s", node ? node : "");
    b.rows = json_integer_value(json_object_get(stats, "rows"));
    b.bytes = json_integer_value(json_object_get(stats, "bytes"));
    bool stored = b.bytes + 64 > (int64_t)PRISM_INLINE_MAX;
    b.cost = b.bytes + (stored ? EX_STORE_OVERHEAD + t.in_cost : 0);
    x->held += b.cost;
    st->out_rows += b.rows;
    st->out_blocks++;
    st->out_bytes += b.bytes;
    st->sum_out += b.bytes;
    a->outs[t.seq] = b;
    a->have[t.seq] = true;
    while (a->next_deliver < a->parts && a->have[a->next_deliver]) {
        a->have[a->next_deliver] = false;
        deliver(x, i + 1, a->outs[a->next_deliver++]);
    }
}

/* Whether the all-to-all stage has made every output it will. */
static bool a2a_finished(const ex_stage *st)
{
    const ex_a2a *a = st->a2a;
    return a->reducing && (a->nmaps == 0 || a->next_deliver >= a->parts);
}

static void launch(executor *x, int64_t range_n)
{
    for (size_t i = x->n; i-- > 0 && !x->error;) {
        ex_stage *st = &x->st[i];
        if (st->kind == EX_LIMIT) {
            run_limit(x, i);
            continue;
        }
        if (st->kind == EX_A2A) {
            a2a_step(x, i);
            continue;
        }
        int64_t est;
        while (!x->error && can_launch(x, i, &est))
            if (launch_one(x, i, est, range_n) != 0)
                return;
    }
}

/* ---------- output ---------- */

/* Gets output block `b` and opens it: 0, or -1 having failed the dataset. */
static int open_output(executor *x, const ex_block *b, prism_value **v, prism_block **blk)
{
    char why[512] = "";
    size_t len = 0;
    const void *data = NULL;
    *v = NULL;
    *blk = NULL;
    if (prism_get(x->c, b->ref, EX_PREVIEW_GET_MS, v) != PRISM_OK) {
        fail(x, "cannot read an output block: %s", prism_last_error());
        return -1;
    }
    if (prism_value_kind_of(*v) != PRISM_VALUE_TENSOR || !(data = prism_value_data(*v, &len)) ||
        prism_block_open(data, len, blk, why, sizeof why) != PRISM_BLOCK_OK) {
        fail(x, "an output block cannot be read%s%s", *why ? ": " : "", why);
        prism_value_free(*v);
        *v = NULL;
        return -1;
    }
    return 0;
}

/* Writes the first `rows` rows of `b` as the write's file number `index`. */
static void write_out(executor *x, const ex_block *b, int64_t rows, int64_t index)
{
    prism_value *v;
    prism_block *blk;
    char why[1024];
    if (rows > 0 && open_output(x, b, &v, &blk) == 0) {
        if (ds_writer_block(x->writer, blk, (size_t)rows, index, why, sizeof why) != 0) {
            const json_t *spec;
            prism_plan_op_kind k = prism_physical_plan_write(x->d->physical, &spec);
            fail(x, "ops[%zu] (%s): %s: %s", prism_plan_num_ops(x->d->plan) - 1,
                 prism_plan_op_kind_name(k), json_string_value(json_object_get(spec, "path")), why);
        }
        prism_block_destroy(blk);
        prism_value_free(v);
    }
}

/* Keeps the first rows of `b` (its `take` first at most) as JSON. */
static void preview(executor *x, const ex_block *b, int64_t rows)
{
    int64_t want = x->s->cfg.preview_rows - (int64_t)x->preview_have;
    if (want <= 0 || rows <= 0)
        return;
    if (rows > want)
        rows = want;
    prism_value *v = NULL;
    prism_block *blk = NULL;
    char *text = NULL;
    size_t len = 0;
    if (open_output(x, b, &v, &blk) != 0) {
        /* failed */
    } else if (prism_block_to_json(blk, 0, (size_t)rows, EX_PREVIEW_MAX_TEXT, &text, &len) !=
               PRISM_BLOCK_OK) {
        fail(x, "an output block cannot be read as rows");
    } else {
        json_t *arr = json_loads(text, 0, NULL);
        pthread_mutex_lock(&x->s->lock);
        size_t k;
        json_t *row;
        json_array_foreach(arr, k, row)
            json_array_append(x->d->preview, row);
        pthread_mutex_unlock(&x->s->lock);
        x->preview_have += json_array_size(arr);
        json_decref(arr);
    }
    free(text);
    prism_block_destroy(blk);
    prism_value_free(v);
}

/* A streamed output's block goes to the consumer's queue, which holds its
 * bytes from now on. */
static void stream_out(executor *x, ex_block *b)
{
    pthread_mutex_lock(&x->s->lock);
    ds_dataset *d = x->d;
    ds_outblock o = {b->ref, 0, b->rows, b->bytes, 0, b->take, b->cost, 0, ""};
    snprintf(o.node, sizeof o.node, "%s", b->node);
    int rc = ds_stream_push(d, &o);
    if (rc == 0) {
        x->stream_cost = d->stream.cost;
        x->stream_waiting = d->stream.n - d->stream.head;
    }
    pthread_cond_broadcast(&x->s->changed);
    pthread_mutex_unlock(&x->s->lock);
    if (rc != 0) {
        fail(x, "out of memory");
        drop_block(x, b);
        return;
    }
    x->held -= b->cost;
}

/* A materialized dataset's block is kept for its epochs, in the object
 * store, out of the budget: it is the dataset's result, as Ray Data's
 * materialize() holds every block (the store spills what does not fit). */
static void keep_out(executor *x, ex_block *b)
{
    pthread_mutex_lock(&x->s->lock);
    ds_outblock o = {b->ref, 0, b->rows, b->bytes, 0, b->take, b->cost, 0, ""};
    snprintf(o.node, sizeof o.node, "%s", b->node);
    int rc = ds_dataset_keep(x->d, &o);
    pthread_mutex_unlock(&x->s->lock);
    if (rc != 0) {
        fail(x, "out of memory");
        drop_block(x, b);
        return;
    }
    x->held -= b->cost;
}

static void consume(executor *x)
{
    ex_stage *sink = &x->st[x->n];
    while (!x->error && fifo_len(&sink->queue)) {
        ex_block b = fifo_pop(&sink->queue);
        sink->queued_bytes -= b.bytes;
        int64_t rows = b.take >= 0 && b.take < b.rows ? b.take : b.rows;
        x->rows += rows;
        x->blocks++;
        x->bytes += b.bytes;
        prism_metric_add(x->s->m.rows, (double)rows);
        if (x->d->streamed) {
            stream_out(x, &b);
            continue;
        }
        if (x->writer)
            write_out(x, &b, rows, x->blocks - 1);
        preview(x, &b, rows);
        if (x->d->materialize) {
            keep_out(x, &b);
            continue;
        }
        drop_block(x, &b);
    }
}

/* ---------- completions ---------- */

static void complete(executor *x, size_t i, size_t k)
{
    ex_stage *st = &x->st[i];
    ex_task t = st->tasks[k];
    st->tasks[k] = st->tasks[--st->ntasks];
    if (st->pool && t.actor)
        ds_pool_give_back(st->pool, t.actor);
    prism_value *v = NULL;
    prism_status s = prism_get(x->c, t.stats, 0, &v);
    json_t *stats = s == PRISM_OK ? json_loads(prism_value_json_text(v), 0, NULL) : NULL;
    if (s != PRISM_OK) {
        const char *msg = prism_value_error_message(v);
        fail(x, "%s: %s", st->name, msg ? msg : prism_last_error());
    } else if (!json_is_integer(json_object_get(stats, "rows")) &&
               !(st->a2a && json_is_array(json_object_get(stats, "rows")))) {
        fail(x, "%s: a task answered without its row count", st->name);
    }
    prism_value_free(v);
    prism_ref_release(t.stats);
    if (st->a2a && !x->error) {
        a2a_complete(x, i, t, stats);
        json_decref(stats);
        return;
    }
    x->held -= t.est + t.in_cost;
    if (x->error) {
        json_decref(stats);
        prism_ref_release(t.block);
        for (size_t p = 0; p < t.nparts; p++)
            prism_ref_release(t.parts[p]);
        free(t.parts);
        return;
    }
    ex_block b = {.ref = t.block, .take = -1, .seq = t.seq};
    const char *node = json_string_value(json_object_get(stats, "node"));
    snprintf(b.node, sizeof b.node, "%s", node ? node : "");
    if (*t.in_node && !strcmp(t.in_node, b.node))
        st->local_tasks++;
    b.rows = json_integer_value(json_object_get(stats, "rows"));
    b.bytes = json_integer_value(json_object_get(stats, "bytes"));
    x->skipped += json_integer_value(json_object_get(stats, "skipped"));
    json_decref(stats);
    /* A stored output keeps its task, and so the task's inputs, alive. */
    bool stored = b.bytes + 64 > (int64_t)PRISM_INLINE_MAX;
    b.cost = b.bytes + (stored ? EX_STORE_OVERHEAD + t.in_cost : 0);
    x->held += b.cost;
    st->out_rows += b.rows;
    st->out_blocks++;
    st->out_bytes += b.bytes;
    st->done_tasks++;
    st->sum_in += t.in_bytes;
    st->sum_out += b.bytes;
    if (st->info.row_limit >= 0 && st->out_rows >= st->info.row_limit && !st->saturated) {
        st->saturated = true; /* the limit after it has its rows: stop feeding it */
        while (fifo_len(&st->queue)) {
            ex_block q = fifo_pop(&st->queue);
            drop_block(x, &q);
        }
        st->queued_bytes = 0;
        st->next_split = st->nsplits;
        cut_upstream(x, i);
    }
    deliver(x, i + 1, b);
}

static void harvest(executor *x)
{
    size_t n = (size_t)running_tasks(x);
    if (n == 0)
        return;
    prism_ref **refs = calloc(n, sizeof *refs);
    bool *ready = calloc(n, sizeof *ready);
    size_t *stage = calloc(n, sizeof *stage);
    if (!refs || !ready || !stage) {
        fail(x, "out of memory");
    } else {
        size_t m = 0;
        for (size_t i = 0; i < x->n; i++)
            for (size_t k = 0; k < x->st[i].ntasks; k++) {
                stage[m] = i;
                refs[m++] = x->st[i].tasks[k].stats;
            }
        prism_status s = prism_wait(x->c, refs, n, 1, EX_WAIT_MS, ready);
        if (s == PRISM_OK) /* one is marked: find every one that is */
            s = prism_wait(x->c, refs, n, n, 0, ready);
        if (s != PRISM_OK && s != PRISM_ERR_TIMEOUT) {
            fail(x, "waiting for tasks failed: %s", prism_last_error());
        } else {
            /* Completing a task reorders its stage's list: find each by its ref. */
            for (size_t j = 0; j < n && !x->error; j++) {
                if (!ready[j])
                    continue;
                ex_stage *st = &x->st[stage[j]];
                for (size_t k = 0; k < st->ntasks; k++)
                    if (st->tasks[k].stats == refs[j]) {
                        complete(x, stage[j], k);
                        break;
                    }
            }
        }
    }
    free(refs);
    free(ready);
    free(stage);
}

/* Closes the stages whose upstream has finished. */
static void close_finished(executor *x)
{
    for (size_t i = 0; i < x->n; i++) {
        ex_stage *st = &x->st[i], *next = &x->st[i + 1];
        bool finished = st->cut ||
                        (st->closed && fifo_len(&st->queue) == 0 && fifo_len(&st->early) == 0 &&
                         st->ntasks == 0 && (st->kind != EX_READ || st->next_split >= st->nsplits));
        if (st->saturated && st->ntasks == 0)
            finished = true;
        if (st->a2a && !st->cut && !a2a_finished(st))
            finished = false;
        if (finished && !next->closed) {
            next->closed = true;
            release_early(x, next, true); /* what was cut on the way never comes */
        }
    }
}

static bool all_done(const executor *x)
{
    const ex_stage *sink = &x->st[x->n];
    return sink->closed && fifo_len(&sink->queue) == 0 && fifo_len(&sink->early) == 0;
}

/* ---------- publishing ---------- */

/* Copies the progress into the dataset; returns whether a stop was asked. */
static bool publish(executor *x)
{
    dataservice *s = x->s;
    pthread_mutex_lock(&s->lock);
    ds_dataset *d = x->d;
    x->stream_cost = d->stream.cost;
    x->stream_waiting = d->stream.n - d->stream.head;
    if (x->held + x->stream_cost > x->peak)
        x->peak = x->held + x->stream_cost;
    for (size_t i = 0; i < x->n; i++) {
        ex_stage *st = &x->st[i];
        ds_stage_progress *was = &d->stages[i];
        ds_op_metrics *om = &s->ops[was->op];
        /* the operator's counters take what this stage made since the last time */
        prism_metric_add(om->rows, (double)(st->out_rows - was->rows));
        prism_metric_add(om->blocks, (double)(st->out_blocks - was->blocks));
        prism_metric_add(om->bytes, (double)(st->out_bytes - was->bytes));
        d->stages[i] = (ds_stage_progress){
            .op = was->op,
            .rows = st->out_rows,
            .blocks = st->out_blocks,
            .bytes = st->out_bytes,
            .tasks_running = (int64_t)st->ntasks,
            .tasks_done = st->done_tasks,
            .tasks_local = st->local_tasks,
            .queued_blocks = (int64_t)(fifo_len(&st->queue) + fifo_len(&st->early)),
            .queued_bytes = st->queued_bytes,
        };
        ds_pool_counts(st->pool, &d->stages[i].actors_alive, &d->stages[i].actors_busy,
                       &d->stages[i].actors_created);
    }
    d->bytes_in_flight = x->held + x->stream_cost;
    d->peak_bytes_in_flight = x->peak;
    d->rows = x->rows;
    d->blocks = x->blocks;
    d->bytes = x->bytes;
    d->skipped = x->skipped;
    d->files_written = ds_writer_files(x->writer);
    d->bytes_written = ds_writer_bytes(x->writer);
    bool stop = d->stop;
    char *lost = d->lost && !x->error ? strdup(d->lost) : NULL;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    if (lost)
        fail(x, "%s", lost);
    free(lost);
    return stop;
}

/* ---------- setting up ---------- */

/* The stage's custom resources (CPU, GPU and memory are options of their own). */
static char *custom_resources(const json_t *res)
{
    json_t *custom = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)res, k, v)
        if (strcmp(k, "CPU") && strcmp(k, "GPU") && strcmp(k, "memory"))
            json_object_set(custom, k, v);
    char *text = json_object_size(custom) ? json_dumps(custom, JSON_COMPACT) : NULL;
    json_decref(custom);
    return text;
}

/* The stage program the tasks run: its operators, row limit and
 * skip_corrupt (a from_items read without its items: each task gets its own
 * in its split). */
static char *program_of(const json_t *stage_json, bool skip_corrupt)
{
    json_t *ops = json_deep_copy(json_object_get(stage_json, "ops"));
    json_t *spec = json_object_get(json_array_get(ops, 0), "spec");
    json_object_del(spec, "items");
    json_t *prog = json_pack("{sososb}", "ops", ops ? ops : json_array(), "row_limit",
                             json_deep_copy(json_object_get(stage_json, "row_limit")),
                             "skip_corrupt", skip_corrupt);
    char *text = prog ? json_dumps(prog, JSON_COMPACT) : NULL;
    json_decref(prog);
    return text;
}

/* Cuts the files into `blocks` splits of about equal bytes, in order. */
static int cut_files(ex_stage *st, int64_t blocks, int64_t total)
{
    size_t nfiles = json_array_size(st->files);
    if (blocks > (int64_t)nfiles)
        blocks = (int64_t)nfiles;
    if (!(st->bounds = calloc((size_t)blocks + 1, sizeof *st->bounds)))
        return -1;
    size_t k = 0, f = 0;
    int64_t seen = 0;
    for (; f < nfiles && k + 1 < (size_t)blocks; f++) {
        seen += json_integer_value(json_object_get(json_array_get(st->files, f), "size"));
        /* split k ends once it has its share, leaving a file for each after it */
        if (seen * blocks >= total * (int64_t)(k + 1) || nfiles - f - 1 == (size_t)blocks - k - 1)
            st->bounds[++k] = f + 1;
    }
    st->bounds[blocks] = nfiles;
    st->nsplits = (size_t)blocks;
    st->split_rows = total / blocks;
    return 0;
}

/* A read of files: its files listed and cut into splits. Returns 0, or -1
 * having failed the dataset naming the path. */
static int setup_files(executor *x, ex_stage *st, prism_plan_op_kind kind, const json_t *spec,
                       int64_t blocks, bool fixed, int64_t target)
{
    char err[1024];
    int64_t total = 0;
    json_t *exts = json_object_get(spec, "file_extensions");
    json_t *images = json_pack("[sss]", "png", "jpg", "jpeg");
    if (kind == PRISM_OP_READ_IMAGES && !json_is_array(exts))
        exts = images;
    st->files = ds_list_files(json_object_get(spec, "paths"), exts, &total, err, sizeof err);
    json_decref(images);
    size_t i;
    json_t *f;
    if (st->files && x->s->cfg.nroots)
        json_array_foreach(st->files, i, f) {
            const char *path = json_string_value(json_object_get(f, "path"));
            if (prism_plan_path_kind_of(path) != PRISM_PATH_URL &&
                ds_read_allowed(&x->s->cfg, path, err, sizeof err) != 0) {
                json_decref(st->files);
                st->files = NULL;
                break;
            }
        }
    if (!st->files) {
        fail(x, "%s: ops[0] (%s): %s", st->name, prism_plan_op_kind_name(kind), err);
        return -1;
    }
    /* more blocks when they would pass the target size */
    int64_t need = target > 0 ? total / target + 1 : 1;
    if (!fixed && need > blocks)
        blocks = need;
    if (cut_files(st, blocks, total) != 0) {
        fail(x, "out of memory");
        return -1;
    }
    return 0;
}

/* An all-to-all stage: its program, its part count and its seed. */
static int setup_a2a(executor *x, size_t i)
{
    ex_stage *st = &x->st[i];
    st->kind = EX_A2A;
    const json_t *spec;
    prism_plan_op_kind op = prism_physical_plan_op(x->d->physical, i, 0, &spec, NULL, NULL);
    ex_a2a *a = st->a2a = calloc(1, sizeof *a);
    if (!a)
        return -1;
    a->op = op;
    bool shuffle = json_is_true(json_object_get(spec, "shuffle"));
    a->has_map = op != PRISM_OP_RANDOMIZE_BLOCK_ORDER && (op != PRISM_OP_REPARTITION || shuffle);
    /* As many output blocks as the read makes (Ray Data: as many as input
     * blocks), unless repartition says. */
    int64_t parts = op == PRISM_OP_REPARTITION
                        ? json_integer_value(json_object_get(spec, "num_blocks"))
                        : (int64_t)x->st[0].nsplits;
    a->parts = parts > 0 ? (size_t)parts : 1;
    if (a->has_map && a->parts > PRISM_MAX_RETURNS - 1) { /* a map returns every part */
        fail(x, "%s: %zu parts; a map task makes at most %d (fewer blocks)", st->name, a->parts,
             PRISM_MAX_RETURNS - 1);
        return -1;
    }
    json_t *seed = json_object_get(spec, "seed");
    if (json_is_integer(seed))
        a->seed = (uint64_t)json_integer_value(seed);
    else /* drawn once: a task run again (a retry, lineage) makes the same parts */
        prism_random_bytes(&a->seed, sizeof a->seed);
    a->seed &= ((uint64_t)1 << 53) - 1; /* as JSON carries it */
    a->outs = calloc(a->parts, sizeof *a->outs);
    a->have = calloc(a->parts, sizeof *a->have);
    /* unique(column): a groupby on the column with no aggregation */
    json_t *own = op == PRISM_OP_UNIQUE
                      ? json_pack("{s[O]s[]}", "key", json_object_get(spec, "column"), "aggs")
                      : NULL;
    json_t *prog = json_pack("{sssOsIsI}", "op",
                             op == PRISM_OP_UNIQUE ? "groupby" : prism_plan_op_kind_name(op),
                             "spec", own ? own : spec, "parts", (json_int_t)a->parts, "seed",
                             (json_int_t)a->seed);
    json_decref(own);
    st->program = prog ? json_dumps(prog, JSON_COMPACT) : NULL;
    json_decref(prog);
    st->resources = custom_resources(st->info.resources);
    return st->program && a->outs && a->have ? 0 : -1;
}

static int setup(executor *x, int64_t *range_n)
{
    ds_dataset *d = x->d;
    const dataservice *s = x->s;
    x->n = prism_physical_plan_num_stages(d->physical);
    x->st = calloc(x->n + 1, sizeof *x->st);
    if (!x->st)
        return -1;
    const json_t *opts = prism_physical_plan_options(d->physical);
    x->preserve = json_is_true(json_object_get(opts, "preserve_order"));
    int64_t target = json_integer_value(json_object_get(opts, "target_max_block_size"));
    x->budget = d->budget;
    const json_t *stages = json_object_get(d->physical_json, "stages");
    for (size_t i = 0; i < x->n; i++) {
        ex_stage *st = &x->st[i];
        prism_physical_plan_stage(d->physical, i, &st->info);
        st->name = st->info.name;
        st->kind = st->info.kind == PRISM_STAGE_READ    ? EX_READ
                   : st->info.kind == PRISM_STAGE_LIMIT ? EX_LIMIT
                                                        : EX_MAP;
        st->cap = st->info.concurrency > 0 && st->info.concurrency < s->cfg.max_tasks
                      ? st->info.concurrency
                      : s->cfg.max_tasks;
        st->closed = st->kind == EX_READ;
        if (st->kind == EX_LIMIT)
            continue;
        if (st->info.kind == PRISM_STAGE_ALL_TO_ALL) {
            if (setup_a2a(x, i) != 0)
                return -1;
            continue;
        }
        st->program = program_of(json_array_get(stages, i),
                                 json_is_true(json_object_get(opts, "skip_corrupt")));
        st->resources = custom_resources(st->info.resources);
        if (!st->program)
            return -1;
        if (st->info.compute == PRISM_COMPUTE_ACTORS) {
            char err[512];
            st->pool = ds_pool_create(x->c, &st->info, st->program, st->resources, s->cfg.max_tasks,
                                      err, sizeof err);
            if (!st->pool) {
                fail(x, "%s: %s", st->name, err);
                return -1;
            }
            st->cap = st->info.max_size > 0 && st->info.max_size < s->cfg.max_tasks
                          ? st->info.max_size
                          : s->cfg.max_tasks;
        }
        if (st->kind != EX_READ)
            continue;
        const json_t *spec;
        prism_plan_op_kind kind = prism_physical_plan_op(d->physical, i, 0, &spec, NULL, NULL);
        json_t *over = json_object_get(spec, "override_num_blocks");
        int64_t rows,
            blocks = json_is_integer(over) ? json_integer_value(over) : s->cfg.default_blocks;
        if (kind != PRISM_OP_RANGE && kind != PRISM_OP_FROM_ITEMS) {
            if (setup_files(x, st, kind, spec, blocks, json_is_integer(over), target) != 0)
                return -1;
            continue;
        }
        if (kind == PRISM_OP_FROM_ITEMS) {
            st->items = json_object_get(spec, "items");
            rows = (int64_t)json_array_size(st->items);
        } else {
            rows = *range_n = json_integer_value(json_object_get(spec, "n"));
            /* int64 ids: more blocks when they would pass the target size */
            int64_t need = target >= 8 ? rows / (target / 8) + 1 : 1;
            if (!json_is_integer(over) && need > blocks)
                blocks = need;
        }
        if (blocks > rows)
            blocks = rows;
        st->nsplits = (size_t)(blocks > 0 ? blocks : 0);
        st->split_rows = blocks > 0 ? rows / blocks + 1 : 0;
    }
    x->st[x->n].kind = EX_SINK;
    x->st[x->n].name = "output";
    const json_t *wspec;
    prism_plan_op_kind wk = prism_physical_plan_write(d->physical, &wspec);
    if (wk != PRISM_OP_KIND_COUNT) {
        char err[1024];
        if (!(x->writer = ds_writer_open(&s->cfg, wk, wspec, d->id, err, sizeof err))) {
            fail(x, "ops[%zu] (%s): %s", prism_plan_num_ops(d->plan) - 1,
                 prism_plan_op_kind_name(wk), err);
            return -1;
        }
    }
    return 0;
}

/* Releases every block and task the executor holds. */
static void release_all(executor *x)
{
    for (size_t i = 0; x->st && i <= x->n; i++)
        if (!x->st[i].cut)
            cut_stage(x, i);
    x->held = 0;
}

static void teardown(executor *x)
{
    for (size_t i = 0; x->st && i <= x->n; i++) {
        ex_stage *st = &x->st[i];
        free(st->queue.v);
        free(st->early.v);
        free(st->tasks);
        free(st->program);
        free(st->resources);
        free(st->bounds);
        json_decref(st->files);
        if (st->a2a) {
            free(st->a2a->waiting.v);
            free(st->a2a->samples);
            free(st->a2a->maps);
            free(st->a2a->outs);
            free(st->a2a->have);
            free(st->a2a);
        }
        ds_pool_destroy(st->pool);
    }
    free(x->st);
    ds_writer_close(x->writer);
}

void *ds_executor_main(void *arg)
{
    ds_dataset *d = arg;
    executor x = {.s = d->svc, .d = d};
    int64_t range_n = 0;
    x.c = ds_client(x.s);
    bool stopped = false;
    if (!x.c)
        fail(&x, "cannot reach the cluster: %s", prism_last_error());
    else if (setup(&x, &range_n) != 0)
        fail(&x, "out of memory"); /* unless setup said why */
    while (!x.error && !stopped) {
        int64_t now = prism_mono_ms();
        for (size_t i = 0; i < x.n; i++)
            if (x.st[i].pool)
                ds_pool_shrink(x.st[i].pool, now);
        launch(&x, range_n);
        consume(&x);
        close_finished(&x);
        if (all_done(&x))
            break;
        if ((stopped = publish(&x)))
            break;
        if (running_tasks(&x) > 0)
            harvest(&x);
        else
            prism_sleep_ms(EX_WAIT_MS); /* nothing runs: only a stop can change things */
    }
    release_all(&x);
    if (x.st)
        publish(&x);
    teardown(&x);
    dataservice *s = x.s;
    pthread_mutex_lock(&s->lock);
    if (!x.error && d->lost) /* lost while the last blocks were made */
        x.error = strdup(d->lost);
    ds_state end = x.error ? DS_FAILED : stopped || d->stop ? DS_STOPPED : DS_FINISHED;
    d->state = end;
    d->error = x.error;
    if (end != DS_FINISHED) { /* the consumer gets an error or the end, not these */
        ds_stream_clear(d);
        ds_dataset_drop_kept(d);
    }
    d->ended_ms = prism_now_ms();
    prism_metric_add(end == DS_FINISHED ? s->m.finished
                     : end == DS_FAILED ? s->m.failed
                                        : s->m.stopped,
                     1);
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    if (x.error)
        LOG_WARN("dataset %s failed: %s", d->id, x.error);
    else
        LOG_INFO("dataset %s %s: %lld rows in %lld blocks", d->id, ds_state_name(end),
                 (long long)x.rows, (long long)x.blocks);
    return NULL;
}
