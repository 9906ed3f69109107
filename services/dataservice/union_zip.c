/* The union and zip stages of the streaming executor
 * (docs/datasets.md#how-union-and-zip-run): the stages where other datasets join
 * the plan's own.
 *
 * Union runs no task: its inputs' blocks pass on as they come, or, when
 * order is kept (preserve_order, or a zip after it), every block of its
 * first input in order, then of the second, and so on (Ray Data's union).
 *
 * Zip joins rows by their place, so its inputs come in order (the stages
 * before a zip keep order) and it runs a task per block of its first input
 * (data_zip in services/worker/data_zip.c): that block, and rows cut from
 * the second input's blocks to match it, as Ray Data aligns the other
 * dataset's blocks to its own. Both inputs must bring as many rows; once
 * either has ended with fewer, the dataset fails naming the operator. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executor.h"
#include "prism_internal.h"

typedef struct join_input {
    size_t from;      /* the stage whose output it is */
    ex_fifo ready;    /* blocks whose turn has come, in order */
    ex_fifo early;    /* in order: blocks that came before their turn */
    uint64_t next_in; /* in order: the seq whose turn it is */
    bool done;        /* its stage has made every block */
    int64_t rows;     /* rows it brought so far */
    int64_t skip;     /* zip: rows of the head block taken already */
} join_input;

typedef struct ex_join {
    bool zip;
    join_input *in;
    size_t nin;
    size_t cur;  /* union in order: the input whose blocks leave now */
    int logical; /* the operator's index in the plan, for errors */
} ex_join;

static int64_t rows_of(const ex_block *b)
{
    return b->take >= 0 && b->take < b->rows ? b->take : b->rows;
}

static int seq_order(const void *p, const void *q)
{
    const ex_block *a = p, *b = q;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

int join_setup(executor *x, size_t i)
{
    ex_stage *st = &x->st[i];
    ex_join *j = st->join = calloc(1, sizeof *j);
    if (!j)
        return -1;
    j->zip = st->info.kind == PRISM_STAGE_ZIP;
    const int *logical = NULL;
    size_t nl = 0;
    prism_physical_plan_op(x->d->physical, i, 0, NULL, &logical, &nl);
    j->logical = nl ? logical[0] : -1;
    for (size_t k = 0; k < i; k++)
        j->nin += x->st[k].next == i;
    if (!(j->in = calloc(j->nin ? j->nin : 1, sizeof *j->in)))
        return -1;
    for (size_t k = 0, n = 0; k < i; k++)
        if (x->st[k].next == i)
            j->in[n++].from = k;
    if (j->zip && j->nin != 2) {
        ex_fail(x, "%s: a zip of %zu inputs", st->name, j->nin);
        return -1;
    }
    st->resources = ex_custom_resources(st->info.resources);
    return 0;
}

static join_input *input_of(ex_join *j, size_t from)
{
    for (size_t k = 0; k < j->nin; k++)
        if (j->in[k].from == from)
            return &j->in[k];
    return NULL;
}

/* Block `b` of input `in` has its turn: ready, unless it has no row to
 * join (a filter's empty block still takes its place in the order). */
static void to_ready(executor *x, ex_stage *st, join_input *in, ex_block b)
{
    if (rows_of(&b) > 0 && ex_fifo_push(&in->ready, b) == 0)
        return;
    if (rows_of(&b) > 0)
        ex_fail(x, "out of memory");
    st->queued_bytes -= b.bytes;
    ex_drop_block(x, &b);
}

/* Moves the blocks whose turn has come from `early` to `ready`. */
static void take_turns(executor *x, ex_stage *st, join_input *in)
{
    for (bool moved = true; moved;) {
        moved = false;
        for (size_t k = in->early.head; k < in->early.n; k++) {
            if (in->early.v[k].seq != in->next_in)
                continue;
            ex_block b = in->early.v[k];
            in->early.v[k] = in->early.v[in->early.head++];
            in->next_in = b.seq + 1;
            to_ready(x, st, in, b);
            moved = true;
            break;
        }
    }
}

void join_take(executor *x, size_t i, size_t from, ex_block b)
{
    ex_stage *st = &x->st[i];
    ex_join *j = st->join;
    join_input *in = input_of(j, from);
    if (!in) {
        ex_drop_block(x, &b);
        return;
    }
    in->rows += rows_of(&b);
    st->queued_bytes += b.bytes;
    if (!j->zip && !st->preserve) { /* as they come */
        to_ready(x, st, in, b);
    } else if (ex_fifo_push(&in->early, b) != 0) {
        st->queued_bytes -= b.bytes;
        ex_drop_block(x, &b);
        ex_fail(x, "out of memory");
    } else {
        take_turns(x, st, in);
    }
}

void join_input_done(executor *x, size_t i, size_t from)
{
    ex_stage *st = &x->st[i];
    ex_join *j = st->join;
    join_input *in = input_of(j, from);
    if (!in)
        return;
    in->done = true;
    /* what was cut on the way never comes: the rest in order */
    if (ex_fifo_len(&in->early) > 1)
        qsort(in->early.v + in->early.head, ex_fifo_len(&in->early), sizeof *in->early.v,
              seq_order);
    while (ex_fifo_len(&in->early))
        to_ready(x, st, in, ex_fifo_pop(&in->early));
    bool all = true;
    for (size_t k = 0; k < j->nin; k++)
        all &= j->in[k].done;
    st->closed = all;
}

/* Union: block `b` leaves the stage. */
static void pass_on(executor *x, size_t i, ex_block b)
{
    ex_stage *st = &x->st[i];
    st->queued_bytes -= b.bytes;
    b.seq = st->next_out++;
    st->out_rows += rows_of(&b);
    st->out_blocks++;
    st->out_bytes += b.bytes;
    ex_emit(x, i, b);
}

static void union_step(executor *x, size_t i)
{
    ex_stage *st = &x->st[i];
    ex_join *j = st->join;
    if (!st->preserve) { /* as they come */
        for (size_t k = 0; k < j->nin && !st->cut; k++)
            while (!st->cut && ex_fifo_len(&j->in[k].ready))
                pass_on(x, i, ex_fifo_pop(&j->in[k].ready));
        return;
    }
    while (!st->cut && j->cur < j->nin) { /* the first input's, then the next one's */
        join_input *in = &j->in[j->cur];
        while (!st->cut && ex_fifo_len(&in->ready))
            pass_on(x, i, ex_fifo_pop(&in->ready));
        if (!in->done || ex_fifo_len(&in->early))
            break;
        j->cur++;
    }
}

/* Zip: a task on the first input's next block and as many rows of the
 * second's. Returns 1 when one was launched, 0 when it must wait, -1 when
 * the dataset failed. */
static int zip_launch(executor *x, size_t i)
{
    ex_stage *st = &x->st[i];
    ex_join *j = st->join;
    join_input *l = &j->in[0], *r = &j->in[1];
    if (!ex_fifo_len(&l->ready) || (int64_t)st->ntasks >= st->cap)
        return 0;
    const ex_block *head = &l->ready.v[l->ready.head];
    int64_t need = rows_of(head), have = 0, in_bytes = head->bytes;
    size_t nright = 0;
    for (size_t k = r->ready.head; k < r->ready.n && have < need; k++, nright++) {
        const ex_block *b = &r->ready.v[k];
        int64_t avail = rows_of(b) - (k == r->ready.head ? r->skip : 0);
        int64_t take = avail < need - have ? avail : need - have;
        have += take;
        in_bytes += (int64_t)((__int128)b->bytes * take / (rows_of(b) ? rows_of(b) : 1));
    }
    if (have < need)
        return 0; /* the second input's rows have not come yet (or never will) */
    int64_t est = in_bytes + EX_STORE_OVERHEAD;
    if (ex_held_now(x) + est > x->budget && ex_running_tasks(x) > 0)
        return 0;
    ex_block lb = ex_fifo_pop(&l->ready);
    st->queued_bytes -= lb.bytes;
    ex_task t = {.est = est,
                 .in_bytes = in_bytes,
                 .in_cost = lb.cost,
                 .spill = lb.spill,
                 .seq = st->next_out};
    snprintf(t.in_node, sizeof t.in_node, "%s", lb.node);
    json_t *ranges = json_array();
    prism_value **args = calloc(nright + 2, sizeof *args);
    if (args) {
        args[1] = prism_value_ref(lb.ref);
        for (size_t k = 0; k < nright; k++) {
            ex_block *b = &r->ready.v[r->ready.head];
            int64_t avail = rows_of(b) - r->skip;
            int64_t take = avail < need ? avail : need;
            json_array_append_new(ranges, json_pack("[II]", (json_int_t)r->skip, (json_int_t)take));
            args[2 + k] = prism_value_ref(b->ref);
            need -= take;
            if (take < avail) { /* the next task takes the rest of it */
                r->skip += take;
                continue;
            }
            ex_block done = ex_fifo_pop(&r->ready);
            st->queued_bytes -= done.bytes;
            t.in_cost += done.cost;
            t.spill += done.spill;
            prism_ref_release(done.ref); /* the task holds its arguments */
            r->skip = 0;
        }
    }
    prism_ref_release(lb.ref);
    json_t *task =
        json_pack("{s[II]sO}", "left", (json_int_t)0, (json_int_t)rows_of(&lb), "right", ranges);
    char *text = task ? json_dumps(task, JSON_COMPACT) : NULL;
    json_decref(task);
    json_decref(ranges);
    bool ok = args && text;
    if (args)
        args[0] = text ? prism_value_json(text) : NULL;
    free(text);
    for (size_t k = 0; ok && k < nright + 2; k++)
        ok = args[k] != NULL;
    prism_status s = PRISM_ERR_NO_MEMORY;
    prism_ref *refs[2] = {NULL, NULL};
    if (ok) {
        prism_task_options o = PRISM_TASK_OPTIONS_INIT;
        o.num_returns = 2;
        o.num_cpus = st->info.num_cpus;
        o.resources = st->resources;
        if (*t.in_node) { /* the node holding the first input's block, others when it is full */
            o.strategy = PRISM_STRATEGY_NODE_AFFINITY;
            o.node_id = t.in_node;
            o.soft = true;
        }
        s = prism_submit(x->c, "builtin", "data_zip", args, nright + 2, &o, refs);
    }
    for (size_t k = 0; args && k < nright + 2; k++)
        prism_value_free(args[k]);
    free(args);
    x->held += t.est;
    if (s != PRISM_OK) {
        x->held -= t.est + t.in_cost;
        x->spill -= t.spill;
        ex_fail(x, "%s: cannot submit a task: %s", st->name, prism_last_error());
        return -1;
    }
    prism_metric_add(x->s->m.tasks, 1);
    t.block = refs[0];
    t.stats = refs[1];
    st->next_out++;
    if (ex_add_task(st, t) != 0) {
        ex_drop_task(x, &t);
        ex_fail(x, "out of memory");
        return -1;
    }
    return 1;
}

static void zip_step(executor *x, size_t i)
{
    ex_stage *st = &x->st[i];
    ex_join *j = st->join;
    const join_input *l = &j->in[0], *r = &j->in[1];
    /* an input that ended with fewer rows than the other brought */
    if ((l->done && r->rows > l->rows) || (r->done && l->rows > r->rows)) {
        ex_fail(x,
                "%s: ops[%d] (zip): the datasets have different row counts: %lld and %lld%s "
                "(zip joins rows by their place: each must have as many)",
                st->name, j->logical, (long long)l->rows, (long long)r->rows,
                l->done && r->done ? "" : " so far");
        return;
    }
    while (!x->error && zip_launch(x, i) > 0)
        ;
}

void join_step(executor *x, size_t i)
{
    if (x->st[i].cut)
        return;
    if (x->st[i].join->zip)
        zip_step(x, i);
    else
        union_step(x, i);
}

bool join_finished(const ex_stage *st)
{
    const ex_join *j = st->join;
    for (size_t k = 0; k < j->nin; k++)
        if (!j->in[k].done || ex_fifo_len(&j->in[k].ready) || ex_fifo_len(&j->in[k].early))
            return false;
    return true;
}

void join_release(executor *x, ex_join *j)
{
    for (size_t k = 0; k < j->nin; k++) {
        join_input *in = &j->in[k];
        while (ex_fifo_len(&in->ready)) {
            ex_block b = ex_fifo_pop(&in->ready);
            ex_drop_block(x, &b);
        }
        while (ex_fifo_len(&in->early)) {
            ex_block b = ex_fifo_pop(&in->early);
            ex_drop_block(x, &b);
        }
        in->done = true;
    }
}

void join_free(ex_join *j)
{
    if (!j)
        return;
    for (size_t k = 0; j->in && k < j->nin; k++) {
        free(j->in[k].ready.v);
        free(j->in[k].early.v);
    }
    free(j->in);
    free(j);
}
