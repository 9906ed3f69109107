/* The streaming executor: one thread per running dataset
 * (docs/datasets.md#executing-a-plan).
 *
 * Each stage of the physical plan is a queue of input blocks and a set of
 * tasks in flight. A read stage makes one task per split; a map stage one
 * task per bundle of input blocks (one task runs every operator fused into
 * the stage); a limit stage runs here, letting the first rows through and
 * then cutting the stages upstream; an all-to-all stage is all_to_all.c's.
 * Outputs flow to the next stage as soon as their task ends: every stage
 * runs at once, as a pipeline.
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
#include "executor.h"
#include "prism_block.h"
#include "prism_internal.h"
#include "prism_id.h"
#include "prism_log.h"
#include "prism_time.h"

#define EX_WAIT_MS 20
#define EX_PREVIEW_GET_MS 60000
#define EX_PREVIEW_MAX_TEXT (8u << 20)

/* ---------- queues ---------- */

int ex_fifo_push(ex_fifo *f, ex_block b)
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

/* ---------- bookkeeping ---------- */

void ex_fail(executor *x, const char *fmt, ...)
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

void ex_drop_block(executor *x, ex_block *b)
{
    x->held -= b->cost;
    x->spill -= b->spill;
    prism_ref_release(b->ref);
    b->ref = NULL;
}

void ex_drop_task(executor *x, ex_task *t)
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
    x->spill -= t->spill;
}

/* Nothing more from stage `i` matters: its input, queue and tasks go. */
static void cut_stage(executor *x, size_t i)
{
    ex_stage *st = &x->st[i];
    st->cut = st->closed = true;
    while (ex_fifo_len(&st->queue)) {
        ex_block b = ex_fifo_pop(&st->queue);
        ex_drop_block(x, &b);
    }
    while (ex_fifo_len(&st->early)) {
        ex_block b = ex_fifo_pop(&st->early);
        ex_drop_block(x, &b);
    }
    st->queued_bytes = 0;
    for (size_t k = 0; k < st->ntasks; k++)
        ex_drop_task(x, &st->tasks[k]);
    st->ntasks = 0;
    st->next_split = st->nsplits;
    if (st->a2a)
        a2a_release(x, st->a2a);
    if (st->join)
        join_release(x, st->join);
}

static void cut_upstream(executor *x, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (!x->st[j].cut && ex_reaches(x, j, i))
            cut_stage(x, j);
}

static void enqueue(executor *x, ex_stage *st, ex_block b)
{
    int64_t rows = b.take >= 0 && b.take < b.rows ? b.take : b.rows;
    if (rows == 0 || st->cut) { /* nothing to do with it */
        ex_drop_block(x, &b);
        return;
    }
    if (ex_fifo_push(&st->queue, b) != 0) {
        ex_drop_block(x, &b);
        ex_fail(x, "out of memory");
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
        ex_drop_block(x, &b);
    } else if (!st->preserve) {
        enqueue(x, st, b);
    } else if (ex_fifo_push(&st->early, b) != 0) {
        ex_drop_block(x, &b);
        ex_fail(x, "out of memory");
    } else {
        release_early(x, st, false);
    }
}

void ex_emit(executor *x, size_t i, ex_block b)
{
    size_t to = x->st[i].next;
    if (x->st[to].kind == EX_JOIN && !x->st[to].cut)
        join_take(x, to, i, b);
    else
        deliver(x, to, b);
}

bool ex_reaches(const executor *x, size_t j, size_t i)
{
    while (j < i)
        j = x->st[j].next;
    return j == i;
}

size_t ex_upstream_splits(const executor *x, size_t i)
{
    size_t n = x->st[i].nsplits;   /* a read fused into stage i */
    for (size_t j = 0; j < i; j++) /* reads, and all-to-alls a read is fused into */
        if (x->st[j].nsplits && ex_reaches(x, j, i))
            n += x->st[j].nsplits;
    return n;
}

/* ---------- launching ---------- */

int64_t ex_running_tasks(const executor *x)
{
    int64_t n = 0;
    for (size_t i = 0; i < x->n; i++)
        n += (int64_t)x->st[i].ntasks;
    return n;
}

/* The bytes a task of stage `i` is expected to make from `in_bytes` of input
 * (a read: from a split weighing `in_bytes`, see ex_split_weight). */
static int64_t estimate(const ex_stage *st, int64_t in_bytes)
{
    if (st->kind == EX_READ) {
        if (st->sum_units > 0)
            return (int64_t)((double)in_bytes * (double)st->sum_out / (double)st->sum_units) +
                   EX_STORE_OVERHEAD;
        if (st->files) /* at least the files' bytes; images decode to more */
            return in_bytes + 1024;
        return in_bytes * 8 + 1024; /* int64 ids */
    }
    if (st->sum_in > 0)
        return (int64_t)((double)in_bytes * (double)st->sum_out / (double)st->sum_in) +
               EX_STORE_OVERHEAD;
    return in_bytes + EX_STORE_OVERHEAD;
}

/* ---------- a read's splits ----------
 * A read has nominal splits: override_num_blocks, or the default count
 * (more when the input passes the target size). Without the override each
 * is cut smaller as it launches once its output would pass the executor's
 * target: what a unit of the read (a row, an item, a byte of files) makes is
 * learned from the tasks that ended (decoding and normalizing an image makes
 * tens of times its file's bytes). A read of files starts with one small
 * split alone, to learn it before a large block is made. */

/* Where nominal split `i` begins: a file, row or item index. */
static int64_t split_start(const ex_stage *st, size_t i)
{
    if (st->files)
        return (int64_t)st->bounds[i];
    int64_t n = st->items ? (int64_t)json_array_size(st->items) : st->range_n;
    int64_t k = (int64_t)st->nsplits, base = n / k, rem = n % k;
    return (int64_t)i * base + ((int64_t)i < rem ? (int64_t)i : rem);
}

/* Whether a read runs one small split alone first: its output per unit is
 * not known before (files decode; operators fused after the read may make
 * any size). */
static bool split_probes(const ex_stage *st)
{
    return st->adaptive && (st->files || st->info.num_ops > 1);
}

/* `n` rows cut down to a whole number of the stage's batches (its
 * min_rows_per_bundle: the largest batch_size fused in) when at least one
 * fits, so that cutting a block leaves its batches full; a batch larger
 * than the target is cut too (batch_size is a target, as in Ray Data: the
 * memory bound wins). */
static int64_t whole_batches(const ex_stage *st, int64_t n)
{
    int64_t b = st->info.min_rows_per_bundle;
    return b > 1 && n >= b ? n / b * b : n;
}

/* What the next split may weigh (rows, items, or bytes of files). */
static int64_t split_fit(const executor *x, const ex_stage *st)
{
    if (!st->adaptive)
        return INT64_MAX;
    if (st->sum_units > 0 && st->sum_out > 0) {
        double fit = (double)x->target * (double)st->sum_units / (double)st->sum_out;
        int64_t n = fit < 1 ? 1 : fit > 1e18 ? INT64_MAX : (int64_t)fit;
        return st->files ? n : whole_batches(st, n);
    }
    if (!split_probes(st))
        return INT64_MAX;
    if (st->files)
        return x->target / 64;
    int64_t nominal = (split_start(st, 1) - split_start(st, 0)) / 8;
    return whole_batches(st, nominal > 1 ? nominal : 1);
}

/* A read's last round cut finer. When what is left to launch is no more
 * than one split of this size for each CPU the read can use, its splits
 * become quarter batches (quarters of the split when it has no batches),
 * so that the CPUs run out of work together: whole blocks ended the read
 * with one CPU busy for up to a block's time and the others idle (a tenth
 * of a second in the image benchmark). The consumer joins the quarters
 * into whole batches. Returns where the split from `from` ends, at most
 * `to`. */
static int64_t last_round(const executor *x, const ex_stage *st, int64_t from, int64_t to)
{
    double per = st->info.num_cpus > 0 ? st->info.num_cpus : 1;
    int64_t slots = (int64_t)(x->cpus / per), k = to - from;
    int64_t g = (st->align > 1 ? st->align : k) / 4;
    if (!st->adaptive || slots < 1 || g < 1 || split_start(st, st->nsplits) - from > slots * k)
        return to;
    /* in order, batches count from the first file: quarters keep to them */
    int64_t base = st->preserve ? 0 : from, next = base + ((from - base) / g + 1) * g;
    return next < to ? next : to;
}

int64_t ex_split_weight(const executor *x, const ex_stage *st, int64_t *to)
{
    /* learned splits of whole batches may span nominal ones */
    bool align = st->align > 1 && st->sum_units > 0;
    int64_t from = st->cursor, end = split_start(st, align ? st->nsplits : st->next_split + 1);
    int64_t fit = split_fit(x, st);
    if (!st->files) {
        *to = end - from > fit ? from + fit : end;
        return *to - from;
    }
    /* the files after `from` whose bytes fit (at least one), by bisection
     * of the bytes before each file: asked at every look at the stage */
    const int64_t *before = st->bytes_before;
    int64_t lo = from + 1, hi = end;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (before[mid] - before[from] <= fit)
            lo = mid;
        else
            hi = mid - 1;
    }
    /* Whole batches: fewer files, or one batch of up to twice the fit. In
     * order, batches count from the first file (only the block after the
     * probe is short); else each block is (the consumer sets the short
     * probe aside: libs/prism/data_iter.c). */
    if (align) {
        int64_t b = st->align, base = st->preserve ? 0 : from;
        int64_t down = base + (lo - base) / b * b, up = base + ((from - base) / b + 1) * b;
        if (down > from)
            lo = down;
        else if (up <= end && before[up] - before[from] <= 2 * fit)
            lo = up;
    }
    *to = lo = last_round(x, st, from, lo);
    return before[lo] - before[from];
}

/* The rows of `b` that count, from its `skip`. */
static int64_t rows_of(const ex_block *b)
{
    int64_t left = b->rows - b->skip;
    return b->take >= 0 && b->take < left ? b->take : left;
}

size_t ex_bundle_size(const ex_stage *st, int64_t *bytes, int64_t *cost)
{
    size_t k = 0;
    int64_t rows = 0;
    *bytes = *cost = 0;
    while (st->queue.head + k < st->queue.n) {
        const ex_block *b = &st->queue.v[st->queue.head + k++];
        rows += rows_of(b);
        *bytes += b->bytes;
        *cost += b->cost;
        if (rows >= st->info.min_rows_per_bundle || k == 64)
            break;
    }
    return k;
}

/* A map task takes a slice of its one input block when the whole block
 * would make an output past the target (a decode on an actor pool after a
 * read of files; docs/datasets.md#block-sizes): the rows to take (whole
 * batches), or 0 for every row. The stage's output per input byte is
 * learned from its tasks that ended; before any has, a block of more than
 * a 64th of the target is probed with an eighth of its rows, alone. */
static int64_t slice_rows(const executor *x, const ex_stage *st, size_t k)
{
    if (k != 1)
        return 0;
    const ex_block *b = &st->queue.v[st->queue.head];
    int64_t rows = rows_of(b);
    if (rows < 2)
        return 0;
    int64_t n = 0;
    if (st->sum_in > 0 && st->sum_out > 0) {
        double out = (double)b->bytes * (double)st->sum_out / (double)st->sum_in;
        if (out > (double)x->target)
            n = (int64_t)((double)rows * (double)x->target / out);
    } else if (st->done_tasks == 0 && b->bytes > x->target / 64) {
        n = rows / 8 > 0 ? rows / 8 : 1;
    }
    n = n > 0 ? whole_batches(st, n) : 0;
    return n < rows ? n : 0;
}

/* The bytes one task of each map stage after stage `i` is expected to make
 * from what stage `i` makes (`out` bytes a task). */
static int64_t reserve(const executor *x, size_t i, int64_t out)
{
    int64_t total = 0;
    for (size_t j = x->st[i].next; j < x->n; j = x->st[j].next) {
        if (x->st[j].kind != EX_MAP || x->st[j].cut)
            continue;
        out = estimate(&x->st[j], out);
        total += out;
    }
    return total;
}

int64_t ex_held_now(const executor *x)
{
    int64_t spill = x->spill;
    for (size_t i = 0; i < x->n; i++)
        if (x->st[i].a2a)
            spill += a2a_parked(x->st[i].a2a);
    int64_t counted = spill < x->budget / 2 ? spill : x->budget / 2;
    return x->held - spill + counted + x->stream_cost;
}

static bool same_shape(const ex_stage *a, const ex_stage *b)
{
    return a->info.num_cpus == b->info.num_cpus && a->info.num_gpus == b->info.num_gpus &&
           a->info.memory == b->info.memory && !a->resources == !b->resources &&
           (!a->resources || !strcmp(a->resources, b->resources));
}

/* Whether one more task of stage `i` fits the cluster's CPUs and GPUs
 * beside the tasks in flight and the actors of the pools, leaving room for
 * one task of each stage downstream of another shape that has input waiting
 * and no task running (for an actor pool: one more actor, while every actor
 * is busy and the pool may grow).
 * Tasks of one shape share their leases in submission order, but a stage of
 * another shape needs leases of its own: while the stages before it kept
 * every CPU busy with queued tasks, it got none until they had run them
 * all, and the pipeline ran stage after stage (a GPU stage idle while a CPU
 * stage ran). Ray Data reserves resources for each operator the same way.
 * Without such a stage downstream nothing is held back (queued tasks run
 * back to back on their leases), and one task of a stage may always run. */
static bool leaves_room(const executor *x, size_t i)
{
    const ex_stage *st = &x->st[i];
    if (st->ntasks == 0 || (x->cpus <= 0 && x->gpus <= 0) ||
        (st->pool && ds_pool_idle(st->pool) >= 0)) /* an idle actor takes nothing more */
        return true;
    double cpus = st->info.num_cpus, gpus = st->info.num_gpus;
    bool other = false;
    for (size_t j = st->next; j < x->n; j = x->st[j].next) {
        const ex_stage *d = &x->st[j];
        if (d->kind != EX_MAP || d->done || d->cut ||
            (d->info.num_cpus <= 0 && d->info.num_gpus <= 0) || (!d->pool && same_shape(st, d)))
            continue;
        other = true; /* an actor pool's actors have leases of their own, whatever the shape */
        bool waits = ex_fifo_len(&d->queue) > 0;
        if (d->pool ? waits && ds_pool_idle(d->pool) < 0 && ds_pool_can_grow(d->pool)
                    : waits && d->ntasks == 0) {
            cpus += d->info.num_cpus;
            gpus += d->info.num_gpus;
        }
    }
    if (!other)
        return true;
    for (size_t k = 0; k < x->n; k++) {
        const ex_stage *o = &x->st[k];
        int64_t held = (int64_t)o->ntasks, busy, created;
        if (o->pool) /* an actor holds its resources, busy or not */
            ds_pool_counts(o->pool, &held, &busy, &created);
        if (o->kind == EX_MAP || o->kind == EX_READ) {
            cpus += (double)held * o->info.num_cpus;
            gpus += (double)held * o->info.num_gpus;
        }
    }
    return (x->cpus <= 0 || cpus <= x->cpus + 1e-9) && (x->gpus <= 0 || gpus <= x->gpus + 1e-9);
}

static bool can_launch(executor *x, size_t i, int64_t *est)
{
    ex_stage *st = &x->st[i];
    if (st->cut || st->saturated || (int64_t)st->ntasks >= st->cap || !leaves_room(x, i))
        return false;
    if (st->pool && ds_pool_idle(st->pool) < 0 && !ds_pool_can_grow(st->pool))
        return false; /* every actor busy, and no more allowed */
    int64_t in_bytes = 0, in_cost = 0, to;
    if (st->kind == EX_READ && st->next_split >= st->nsplits)
        return false;
    if (st->kind == EX_READ && split_probes(st) && st->ntasks > 0 && st->done_tasks == 0)
        return false; /* the first split, alone, tells what a unit of the read makes */
    if (st->kind == EX_READ)
        in_bytes = ex_split_weight(x, st, &to);
    size_t k = st->kind == EX_MAP ? ex_bundle_size(st, &in_bytes, &in_cost) : 0;
    if (st->kind == EX_MAP && k == 0)
        return false;
    if (st->kind == EX_MAP && k == 1 && st->done_tasks == 0 && st->ntasks > 0 &&
        in_bytes > x->target / 64)
        return false; /* the first task, alone, tells what a byte of input makes */
    int64_t slice = st->kind == EX_MAP ? slice_rows(x, st, k) : 0;
    if (slice > 0)
        in_bytes = in_bytes * slice / rows_of(&st->queue.v[st->queue.head]);
    *est = estimate(st, in_bytes);
    /* Room is kept for one task of each stage downstream, so that what this
     * stage makes can always move on. One task may always run: a budget
     * below one block still progresses. */
    int64_t held = ex_held_now(x);
    /* A consumer that lags holds the pipeline back: while blocks wait for it,
     * nothing starts. */
    return held + *est + reserve(x, i, *est) <= x->budget ||
           (ex_running_tasks(x) == 0 && x->stream_waiting == 0);
}

/* Items [from, to) of a from_items read. */
static char *items_split(const ex_stage *st, int64_t from, int64_t to)
{
    json_t *slice = json_array();
    for (int64_t k = from; slice && k < to; k++)
        json_array_append(slice, json_array_get(st->items, (size_t)k));
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
            ex_fail(x, "%s: %s", st->name, err);
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
        ex_fail(x, "%s: cannot submit a task: %s", st->name, prism_last_error());
        return -1;
    }
    t->block = refs[0];
    t->stats = refs[1];
    prism_metric_add(x->s->m.tasks, 1);
    return 0;
}

int ex_add_task(ex_stage *st, ex_task t)
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

/* Files [from, to) of a read of files: their paths, and their bytes as
 * listed (the reader makes room for them at once). */
static char *files_split(const ex_stage *st, int64_t from, int64_t to)
{
    json_t *paths = json_array();
    json_int_t bytes = 0;
    for (int64_t k = from; paths && k < to; k++) {
        json_t *f = json_array_get(st->files, (size_t)k);
        json_array_append(paths, json_object_get(f, "path"));
        bytes += json_integer_value(json_object_get(f, "size"));
    }
    json_t *split = paths ? json_pack("{sosI}", "files", paths, "bytes", bytes) : NULL;
    char *text = split ? json_dumps(split, JSON_COMPACT) : NULL;
    json_decref(split);
    return text;
}

char *ex_next_split(const executor *x, ex_stage *st, int64_t *weight)
{
    int64_t from = st->cursor, to;
    *weight = ex_split_weight(x, st, &to);
    st->cursor = to;
    while (st->next_split < st->nsplits && to >= split_start(st, st->next_split + 1))
        st->next_split++;
    if (st->items)
        return items_split(st, from, to);
    if (st->files)
        return files_split(st, from, to);
    char *text = NULL;
    if (asprintf(&text, "{\"start\":%lld,\"end\":%lld}", (long long)from, (long long)to) < 0)
        text = NULL;
    return text;
}

static int launch_one(executor *x, size_t i, int64_t est)
{
    ex_stage *st = &x->st[i];
    ex_task t = {.est = est, .seq = st->next_out};
    prism_value *args[2 + 64] = {prism_value_json(st->program), NULL};
    size_t nargs = 2;
    if (st->kind == EX_READ) {
        char *split = ex_next_split(x, st, &t.units);
        args[1] = split ? prism_value_json(split) : NULL;
        free(split);
    } else {
        int64_t bytes, cost;
        size_t k = ex_bundle_size(st, &bytes, &cost);
        int64_t slice = slice_rows(x, st, k);
        json_t *take = json_array();
        int64_t most = 0;
        for (size_t j = 0; j < k; j++) {
            ex_block b = ex_fifo_pop(&st->queue);
            if (b.bytes > most && *b.node) {
                most = b.bytes;
                snprintf(t.in_node, sizeof t.in_node, "%s", b.node);
            }
            args[nargs++] = prism_value_ref(b.ref);
            if (slice > 0) { /* the rest waits at the queue's head for the next task */
                ex_block rest = b;
                int64_t rows = rows_of(&b);
                b.bytes = b.bytes * slice / rows;
                b.cost = b.cost * slice / rows;
                b.spill = b.spill * slice / rows;
                rest.bytes -= b.bytes;
                rest.cost -= b.cost;
                rest.spill -= b.spill;
                rest.skip += slice;
                rest.take = b.take >= 0 ? b.take - slice : -1;
                b.take = slice;
                st->queue.v[--st->queue.head] = rest;
            } else {
                prism_ref_release(b.ref); /* the task holds its arguments */
            }
            json_array_append_new(take, b.skip > 0    ? json_pack("[II]", (json_int_t)b.skip,
                                                                  (json_int_t)rows_of(&b))
                                        : b.take >= 0 ? json_integer(b.take)
                                                      : json_null());
            st->queued_bytes -= b.bytes;
            t.in_bytes += b.bytes;
            t.in_cost += b.cost;
            t.spill += b.spill;
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
            x->spill -= t.spill;
            ex_fail(x, "out of memory");
            return -1;
        }
    }
    if (submit(x, st, args, nargs, &t) != 0) {
        x->held -= t.est + t.in_cost;
        x->spill -= t.spill;
        return -1;
    }
    st->next_out++;
    if (ex_add_task(st, t) != 0) {
        ex_drop_task(x, &t);
        ex_fail(x, "out of memory");
        return -1;
    }
    return 0;
}

/* A limit stage: the first `limit` rows pass, then everything upstream stops. */
static void run_limit(executor *x, size_t i)
{
    ex_stage *st = &x->st[i];
    while (!st->cut && ex_fifo_len(&st->queue)) {
        ex_block b = ex_fifo_pop(&st->queue);
        st->queued_bytes -= b.bytes;
        int64_t rows = b.take >= 0 && b.take < b.rows ? b.take : b.rows;
        int64_t left = st->info.limit - st->passed;
        if (left <= 0) {
            ex_drop_block(x, &b);
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
        ex_emit(x, i, b);
    }
    /* Enough: nothing upstream matters any more, nor what still comes here
     * (blocks waiting for their turn may wait for blocks that never come). */
    if (st->passed >= st->info.limit && !st->cut) {
        cut_upstream(x, i);
        cut_stage(x, i);
    }
}

static void launch(executor *x)
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
        if (st->kind == EX_JOIN) {
            join_step(x, i);
            continue;
        }
        int64_t est;
        while (!x->error && can_launch(x, i, &est))
            if (launch_one(x, i, est) != 0)
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
        ex_fail(x, "cannot read an output block: %s", prism_last_error());
        return -1;
    }
    if (prism_value_kind_of(*v) != PRISM_VALUE_TENSOR || !(data = prism_value_data(*v, &len)) ||
        prism_block_open(data, len, blk, why, sizeof why) != PRISM_BLOCK_OK) {
        ex_fail(x, "an output block cannot be read%s%s", *why ? ": " : "", why);
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
            ex_fail(x, "ops[%zu] (%s): %s: %s", prism_plan_num_ops(x->d->plan) - 1,
                    prism_plan_op_kind_name(k), json_string_value(json_object_get(spec, "path")),
                    why);
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
        ex_fail(x, "an output block cannot be read as rows");
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
    /* what its lineage pins of all-to-all parts stays the stores' to spill */
    ds_outblock o = {b->ref, 0, b->rows, b->bytes, 0, b->take, b->cost - b->spill, 0, ""};
    snprintf(o.node, sizeof o.node, "%s", b->node);
    int rc = ds_stream_push(d, &o);
    if (rc == 0) {
        x->stream_cost = d->stream.cost;
        x->stream_waiting = d->stream.n - d->stream.head;
    }
    pthread_cond_broadcast(&x->s->changed);
    pthread_mutex_unlock(&x->s->lock);
    if (rc != 0) {
        ex_fail(x, "out of memory");
        ex_drop_block(x, b);
        return;
    }
    x->held -= b->cost;
    x->spill -= b->spill;
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
        ex_fail(x, "out of memory");
        ex_drop_block(x, b);
        return;
    }
    x->held -= b->cost;
    x->spill -= b->spill;
}

static void consume(executor *x)
{
    ex_stage *sink = &x->st[x->n];
    while (!x->error && ex_fifo_len(&sink->queue)) {
        ex_block b = ex_fifo_pop(&sink->queue);
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
        ex_drop_block(x, &b);
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
        ex_fail(x, "%s: %s", st->name, msg ? msg : prism_last_error());
    } else if (!json_is_integer(json_object_get(stats, "rows")) &&
               !(st->a2a && json_is_array(json_object_get(stats, "rows")))) {
        ex_fail(x, "%s: a task answered without its row count", st->name);
    }
    prism_value_free(v);
    prism_ref_release(t.stats);
    if (st->a2a && !x->error) {
        a2a_complete(x, i, t, stats);
        json_decref(stats);
        return;
    }
    x->held -= t.est + t.in_cost;
    x->spill -= t.spill;
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
    b.spill = stored ? t.spill : 0;
    x->held += b.cost;
    x->spill += b.spill;
    st->out_rows += b.rows;
    st->out_blocks++;
    st->out_bytes += b.bytes;
    st->done_tasks++;
    st->sum_in += t.in_bytes;
    st->sum_units += t.units;
    st->sum_out += b.bytes;
    if (st->info.row_limit >= 0 && st->out_rows >= st->info.row_limit && !st->saturated) {
        st->saturated = true; /* the limit after it has its rows: stop feeding it */
        while (ex_fifo_len(&st->queue)) {
            ex_block q = ex_fifo_pop(&st->queue);
            ex_drop_block(x, &q);
        }
        st->queued_bytes = 0;
        st->next_split = st->nsplits;
        cut_upstream(x, i);
    }
    ex_emit(x, i, b);
}

static void harvest(executor *x)
{
    size_t n = (size_t)ex_running_tasks(x);
    if (n == 0)
        return;
    prism_ref **refs = calloc(n, sizeof *refs);
    bool *ready = calloc(n, sizeof *ready);
    size_t *stage = calloc(n, sizeof *stage);
    if (!refs || !ready || !stage) {
        ex_fail(x, "out of memory");
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
            ex_fail(x, "waiting for tasks failed: %s", prism_last_error());
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
        ex_stage *st = &x->st[i], *next = &x->st[st->next];
        if (st->done)
            continue;
        bool finished = st->cut || (st->closed && ex_fifo_len(&st->queue) == 0 &&
                                    ex_fifo_len(&st->early) == 0 && st->ntasks == 0 &&
                                    (st->kind != EX_READ || st->next_split >= st->nsplits));
        if (st->saturated && st->ntasks == 0)
            finished = true;
        if (st->a2a && !st->cut && !a2a_finished(st))
            finished = false;
        if (st->join && !st->cut && !join_finished(st))
            finished = false;
        if (!finished)
            continue;
        st->done = true;
        if (next->kind == EX_JOIN && !next->cut) {
            join_input_done(x, st->next, i);
        } else if (!next->closed) {
            next->closed = true;
            release_early(x, next, true); /* what was cut on the way never comes */
        }
    }
}

static bool all_done(const executor *x)
{
    const ex_stage *sink = &x->st[x->n];
    return sink->closed && ex_fifo_len(&sink->queue) == 0 && ex_fifo_len(&sink->early) == 0;
}

/* The budget, and with it the target size of a read's blocks: under the
 * plan's target, and under an eighth of the budget so that several can be
 * in flight (at least 1 MiB). */
static void set_budget(executor *x, int64_t budget)
{
    const json_t *opts = prism_physical_plan_options(x->d->physical);
    int64_t share = budget / 8 > (1 << 20) ? budget / 8 : (1 << 20);
    int64_t target = json_integer_value(json_object_get(opts, "target_max_block_size"));
    x->budget = budget;
    x->target = target > 0 && target < share ? target : share;
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
    int64_t now = ex_held_now(x);
    if (now > x->peak)
        x->peak = now;
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
            .queued_blocks = (int64_t)(ex_fifo_len(&st->queue) + ex_fifo_len(&st->early)),
            .queued_bytes = st->queued_bytes,
        };
        ds_pool_counts(st->pool, &d->stages[i].actors_alive, &d->stages[i].actors_busy,
                       &d->stages[i].actors_created);
    }
    /* A default budget follows the stores: taken before their sizes were
     * known it was the fallback, and nodes come and go. */
    int64_t budget = ds_budget_of(s, d);
    if (budget != d->budget)
        set_budget(x, d->budget = budget);
    x->cpus = ds_stores_cpus(s, &x->gpus);
    d->bytes_in_flight = now;
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
        ex_fail(x, "%s", lost);
    free(lost);
    return stop;
}

/* ---------- setting up ---------- */

/* The stage's custom resources (CPU, GPU and memory are options of their own). */
char *ex_custom_resources(const json_t *res)
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

/* The stage program the tasks run: its first `nops` operators, row limit
 * and skip_corrupt (a from_items read without its items: each task gets
 * its own in its split). */
static json_t *program_json(const json_t *stage_json, bool skip_corrupt, size_t nops)
{
    json_t *ops = json_deep_copy(json_object_get(stage_json, "ops"));
    while (json_array_size(ops) > nops)
        json_array_remove(ops, nops);
    json_t *spec = json_object_get(json_array_get(ops, 0), "spec");
    json_object_del(spec, "items");
    json_t *prog = json_pack("{sososb}", "ops", ops ? ops : json_array(), "row_limit",
                             json_deep_copy(json_object_get(stage_json, "row_limit")),
                             "skip_corrupt", skip_corrupt);
    return prog;
}

static char *program_of(const json_t *stage_json, bool skip_corrupt)
{
    json_t *prog = program_json(stage_json, skip_corrupt, SIZE_MAX);
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
    if (!(st->bounds = calloc((size_t)blocks + 1, sizeof *st->bounds)) ||
        !(st->bytes_before = calloc(nfiles + 1, sizeof *st->bytes_before)))
        return -1;
    for (size_t f = 0; f < nfiles; f++)
        st->bytes_before[f + 1] =
            st->bytes_before[f] +
            json_integer_value(json_object_get(json_array_get(st->files, f), "size"));
    size_t k = 0, f = 0;
    int64_t seen = 0;
    for (; f < nfiles && k + 1 < (size_t)blocks; f++) {
        seen = st->bytes_before[f + 1];
        /* split k ends once it has its share, leaving a file for each after it */
        if (seen * blocks >= total * (int64_t)(k + 1) || nfiles - f - 1 == (size_t)blocks - k - 1)
            st->bounds[++k] = f + 1;
    }
    st->bounds[blocks] = nfiles;
    st->nsplits = (size_t)blocks;
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
        /* a read of another dataset stands for its union or zip: ops[2] (union): ... */
        const int *logical = NULL;
        size_t nl = 0, at_stage = (size_t)(st - x->st);
        prism_physical_plan_op(x->d->physical, at_stage, 0, NULL, &logical, &nl);
        int at = nl ? logical[0] : 0;
        prism_plan_op_kind op = prism_plan_op(x->d->plan, (size_t)at);
        if (op == kind)
            ex_fail(x, "%s: ops[%d] (%s): %s", st->name, at, prism_plan_op_kind_name(kind), err);
        else
            ex_fail(x, "%s: ops[%d] (%s): %s: %s", st->name, at, prism_plan_op_kind_name(op),
                    prism_plan_op_kind_name(kind), err);
        return -1;
    }
    /* more blocks when they would pass the target size */
    int64_t need = target > 0 ? total / target + 1 : 1;
    if (!fixed && need > blocks)
        blocks = need;
    if (cut_files(st, blocks, total) != 0) {
        ex_fail(x, "out of memory");
        return -1;
    }
    return 0;
}

/* Stage `i`'s read (its first operator): the splits it makes. 0, or -1
 * (having failed the dataset, or out of memory). */
static int setup_read(executor *x, size_t i)
{
    ex_stage *st = &x->st[i];
    const json_t *opts = prism_physical_plan_options(x->d->physical);
    int64_t target = json_integer_value(json_object_get(opts, "target_max_block_size"));
    const json_t *spec;
    prism_plan_op_kind kind = prism_physical_plan_op(x->d->physical, i, 0, &spec, NULL, NULL);
    json_t *over = json_object_get(spec, "override_num_blocks");
    /* a read fused into an all-to-all's maps keeps its splits: its blocks
     * never leave the task whole */
    st->adaptive = !json_is_integer(over) && st->kind == EX_READ;
    int64_t rows,
        blocks = json_is_integer(over) ? json_integer_value(over) : x->s->cfg.default_blocks;
    /* One row a file, straight to the consumer: blocks of whole batches are
     * read in place, not joined (docs/datasets.md#block-sizes). */
    if (st->adaptive && st->next == x->n && x->d->batch_size > 1 &&
        (kind == PRISM_OP_READ_BINARY_FILES || kind == PRISM_OP_READ_IMAGES))
        st->align = x->d->batch_size;
    if (kind != PRISM_OP_RANGE && kind != PRISM_OP_FROM_ITEMS)
        return setup_files(x, st, kind, spec, blocks, json_is_integer(over), target);
    if (kind == PRISM_OP_FROM_ITEMS) {
        st->items = json_object_get(spec, "items");
        rows = (int64_t)json_array_size(st->items);
    } else {
        rows = st->range_n = json_integer_value(json_object_get(spec, "n"));
        /* int64 ids: more blocks when they would pass the target size */
        int64_t need = target >= 8 ? rows / (target / 8) + 1 : 1;
        if (!json_is_integer(over) && need > blocks)
            blocks = need;
    }
    if (blocks > rows)
        blocks = rows;
    st->nsplits = (size_t)(blocks > 0 ? blocks : 0);
    return 0;
}

static int setup(executor *x)
{
    ds_dataset *d = x->d;
    const dataservice *s = x->s;
    x->n = prism_physical_plan_num_stages(d->physical);
    x->st = calloc(x->n + 1, sizeof *x->st);
    if (!x->st)
        return -1;
    const json_t *opts = prism_physical_plan_options(d->physical);
    x->preserve = json_is_true(json_object_get(opts, "preserve_order"));
    set_budget(x, d->budget);
    const json_t *stages = json_object_get(d->physical_json, "stages");
    for (size_t i = 0; i <= x->n; i++) {
        ex_stage *st = &x->st[i];
        if (i < x->n)
            prism_physical_plan_stage(d->physical, i, &st->info);
        st->next = i < x->n ? st->info.next : x->n;
        st->preserve = x->preserve;
        /* a zip joins rows by their place: every stage before it keeps order */
        for (size_t j = 0; i < x->n && st->info.kind == PRISM_STAGE_ZIP && j < i; j++)
            if (ex_reaches(x, j, i))
                x->st[j].preserve = true;
    }
    for (size_t i = 0; i < x->n; i++) {
        ex_stage *st = &x->st[i];
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
            /* a read or map stage fused into its maps: every operator but the last */
            json_t *up = NULL;
            if (st->info.num_ops > 1) {
                up = program_json(json_array_get(stages, i),
                                  json_is_true(json_object_get(opts, "skip_corrupt")),
                                  st->info.num_ops - 1);
                if (!up)
                    return -1;
                /* a read: the maps make their blocks from its splits */
                st->closed = prism_plan_op_is_read(
                    prism_physical_plan_op(d->physical, i, 0, NULL, NULL, NULL));
                if (st->closed && setup_read(x, i) != 0) {
                    json_decref(up);
                    return -1;
                }
            }
            int rc = a2a_setup(x, i, up);
            json_decref(up);
            if (rc != 0)
                return -1;
            continue;
        }
        if (st->info.kind == PRISM_STAGE_UNION || st->info.kind == PRISM_STAGE_ZIP) {
            st->kind = EX_JOIN;
            if (join_setup(x, i) != 0)
                return -1;
            continue;
        }
        st->program = program_of(json_array_get(stages, i),
                                 json_is_true(json_object_get(opts, "skip_corrupt")));
        st->resources = ex_custom_resources(st->info.resources);
        if (!st->program)
            return -1;
        if (st->info.compute == PRISM_COMPUTE_ACTORS) {
            char err[512];
            st->pool = ds_pool_create(x->c, &st->info, st->program, st->resources, s->cfg.max_tasks,
                                      err, sizeof err);
            if (!st->pool) {
                ex_fail(x, "%s: %s", st->name, err);
                return -1;
            }
            st->cap = st->info.max_size > 0 && st->info.max_size < s->cfg.max_tasks
                          ? st->info.max_size
                          : s->cfg.max_tasks;
        }
        if (st->kind == EX_READ && setup_read(x, i) != 0)
            return -1;
    }
    x->st[x->n].kind = EX_SINK;
    x->st[x->n].name = "output";
    const json_t *wspec;
    prism_plan_op_kind wk = prism_physical_plan_write(d->physical, &wspec);
    if (wk != PRISM_OP_KIND_COUNT) {
        char err[1024];
        if (!(x->writer = ds_writer_open(&s->cfg, wk, wspec, d->id, err, sizeof err))) {
            ex_fail(x, "ops[%zu] (%s): %s", prism_plan_num_ops(d->plan) - 1,
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
    x->held = x->spill = 0;
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
        free(st->bytes_before);
        json_decref(st->files);
        a2a_free(st->a2a);
        join_free(st->join);
        ds_pool_destroy(st->pool);
    }
    free(x->st);
    ds_writer_close(x->writer);
}

void *ds_executor_main(void *arg)
{
    ds_dataset *d = arg;
    executor x = {.s = d->svc, .d = d};
    x.c = ds_client(x.s);
    bool stopped = false;
    if (!x.c)
        ex_fail(&x, "cannot reach the cluster: %s", prism_last_error());
    else if (setup(&x) != 0)
        ex_fail(&x, "out of memory"); /* unless setup said why */
    pthread_mutex_lock(&x.s->lock);
    x.cpus = ds_stores_cpus(x.s, &x.gpus);
    pthread_mutex_unlock(&x.s->lock);
    while (!x.error && !stopped) {
        int64_t now = prism_mono_ms();
        for (size_t i = 0; i < x.n; i++)
            if (x.st[i].pool)
                ds_pool_shrink(x.st[i].pool, now);
        launch(&x);
        consume(&x);
        close_finished(&x);
        if (all_done(&x))
            break;
        if ((stopped = publish(&x)))
            break;
        if (ex_running_tasks(&x) > 0)
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
