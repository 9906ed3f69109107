/* The all-to-all stages of the streaming executor
 * (docs/datasets.md#how-the-all-to-all-runs): random_shuffle,
 * randomize_block_order, repartition, sort, groupby, map_groups, unique.
 *
 * A map phase and a reduce phase over P parts. Each input block, as it
 * comes, is one map task that cuts it into P parts (objects in the stores);
 * merge tasks join the parts of every K maps of consecutive blocks as they
 * end (push-based); once every map and merge is done, reduce r joins part r
 * of every map or merge into output block r. Sort samples every block first, to pick the range
 * boundaries. randomize_block_order and repartition without shuffle run no map: the blocks
 * themselves are the parts. Outputs leave in reduce order. The tasks are in
 * services/worker/data_shuffle.c.
 *
 * A read or map stage that the optimizer fused into the stage runs in its
 * map tasks: each makes its block (from a split of the read, or from a
 * bundle of the blocks that came) and cuts it into parts in the same task,
 * so that the block never goes through the object store whole. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executor.h"
#include "prism_id.h"
#include "prism_internal.h"

/* Push-based shuffle (the plan's use_push_based_shuffle, off by default as
 * in Ray Data): a merge task joins the parts of this many maps of
 * consecutive blocks as soon as the last of them ends, while the stage's
 * parts fit in half the budget; stages of more parts than
 * EX_MERGE_MAX_PARTS (a merge takes K * P arguments) do not merge. */
#define EX_MERGE_MAPS 4
#define EX_MERGE_MAX_PARTS 256

/* A finished map task of an all-to-all stage: its parts wait in the object
 * stores for the reduces (randomize_block_order and repartition without
 * shuffle: the input block itself, with its rows). */
typedef struct ex_map {
    prism_ref **parts; /* nparts refs; a reduce's submission releases the ones it took */
    size_t nparts;
    int64_t cost;  /* bytes it keeps alive: its parts and the input their lineage pins */
    int64_t bytes; /* of which its parts' own */
    int64_t rows, take;
    uint64_t seq; /* its input block's: the reduces take the maps in this order */
    bool merged;  /* a merge task's output: the parts of maps seq .. seq + K - 1 joined */
} ex_map;

/* An all-to-all stage (docs/datasets.md#how-the-all-to-all-runs). */
typedef struct ex_a2a {
    prism_plan_op_kind op;
    bool has_map;            /* map tasks cut blocks into parts (not randomize_block_order,
                              * nor repartition without shuffle) */
    bool fused;              /* a read or map stage runs in the maps first */
    int64_t map_in, map_out; /* fused: the maps' input and parts bytes so far */
    int64_t maps_done;
    size_t parts;     /* reduce tasks, and so output blocks */
    size_t merge_k;   /* maps a merge task joins (push-based); 0: no merge */
    bool merge_check; /* a map ended since the last look for a group to merge */
    uint64_t seed;    /* the stage's: every task's randomness derives from it */
    ex_map *maps;
    size_t nmaps, mcap;
    size_t next_reduce; /* reduces submitted */
    bool reducing;      /* every map has finished: the reduces may start */
    ex_block *outs;     /* reduce outputs waiting for their turn: they leave in reduce
                         * order (sorted ranges; a seeded shuffle the same each run) */
    bool *have;
    size_t next_deliver;
    int64_t parked; /* of the executor's `held`: the maps' costs not yet taken by a reduce
                     * (and sort's waiting blocks and samples): the stores' to spill */
    /* sort: every block is sampled as it comes (its keys at even steps) and
     * waits; once all are, the maps cut them at the same boundaries */
    bool sampled;        /* every block's sample is in: the maps may start */
    ex_fifo waiting;     /* blocks whose sample was taken */
    prism_ref **samples; /* the samples, every map's extra arguments */
    size_t nsamples, scap;
    int64_t samples_cost;
} ex_a2a;

void a2a_release(executor *x, ex_a2a *a)
{
    for (size_t m = 0; m < a->nmaps; m++) {
        for (size_t k = 0; k < a->maps[m].nparts; k++)
            prism_ref_release(a->maps[m].parts[k]);
        free(a->maps[m].parts);
    }
    a->nmaps = 0;
    while (ex_fifo_len(&a->waiting)) {
        ex_block b = ex_fifo_pop(&a->waiting);
        prism_ref_release(b.ref); /* its cost is in `parked` */
    }
    for (size_t k = 0; k < a->nsamples; k++)
        prism_ref_release(a->samples[k]);
    a->nsamples = 0;
    x->held -= a->parked;
    a->parked = 0;
    for (size_t r = 0; a->outs && r < a->parts; r++)
        if (a->have[r]) {
            ex_drop_block(x, &a->outs[r]);
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

/* Reduce `r`'s share of `total` (a map's cost or bytes): the shares add up. */
static int64_t a2a_share(const ex_a2a *a, int64_t total, size_t r)
{
    return (int64_t)((__int128)total * (r + 1) / a->parts - (__int128)total * r / a->parts);
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
        ex_fail(x, "%s: cannot submit a task: %s", st->name, prism_last_error());
        return -1;
    }
    prism_metric_add(x->s->m.tasks, 1);
    return 0;
}

/* The bytes a map is expected to make: its block's, or with a stage fused
 * in, what the maps made so far for their input (a read's: a split's). */
static int64_t a2a_map_estimate(const executor *x, const ex_stage *st, const ex_a2a *a)
{
    int64_t overhead = EX_STORE_OVERHEAD * (int64_t)a->parts;
    if (st->next_split < st->nsplits) {
        if (a->maps_done > 0)
            return a->map_out / a->maps_done + overhead;
        int64_t to, weight = ex_split_weight(x, st, &to);
        return (st->files ? weight : weight * 8) + 1024 + overhead;
    }
    int64_t in = st->queue.v[st->queue.head].bytes, cost;
    if (!a->fused)
        return in + overhead;
    ex_bundle_size(st, &in, &cost);
    if (a->map_in > 0)
        in = (int64_t)((double)in * (double)a->map_out / (double)a->map_in);
    return in + overhead;
}

/* Submits map task `t` (its parts and stats its returns) on `args` (taken). */
static int a2a_submit_map(executor *x, ex_stage *st, ex_task t, prism_value **args, size_t nargs)
{
    prism_ref **refs = calloc(t.nparts + 1, sizeof *refs);
    x->held += t.est;
    if (!refs) {
        for (size_t i = 0; i < nargs; i++)
            prism_value_free(args[i]);
        x->held -= t.est + t.in_cost;
        x->spill -= t.spill;
        ex_fail(x, "out of memory");
        return -1;
    }
    if (a2a_submit(x, st, "data_a2a_map", args, nargs, (int)t.nparts + 1, refs) != 0) {
        free(refs);
        x->held -= t.est + t.in_cost;
        x->spill -= t.spill;
        return -1;
    }
    t.parts = refs;
    t.stats = refs[t.nparts];
    if (ex_add_task(st, t) != 0) {
        ex_drop_task(x, &t);
        ex_fail(x, "out of memory");
        return -1;
    }
    return 0;
}

/* A map task with a stage fused in: on the read's next split, else on the
 * next bundle of queued blocks, as the map stage would have taken it. */
static int a2a_launch_fused(executor *x, ex_stage *st, int64_t est)
{
    ex_a2a *a = st->a2a;
    ex_task t = {.est = est, .nparts = a->parts};
    prism_value *args[2 + 64] = {prism_value_json(st->program), NULL};
    size_t nargs = 2;
    json_t *take = json_array();
    if (st->next_split < st->nsplits) {
        t.seq = st->next_split; /* one whole split: a fused read's are not cut */
        char *split = ex_next_split(x, st, &t.units);
        args[nargs++] = split ? prism_value_json(split) : NULL;
        free(split);
    } else {
        int64_t bytes, cost;
        size_t k = ex_bundle_size(st, &bytes, &cost);
        for (size_t j = 0; j < k; j++) {
            ex_block b = ex_fifo_pop(&st->queue);
            st->queued_bytes -= b.bytes;
            if (j == 0) /* its randomness follows its first block's place in the input */
                t.seq = b.seq;
            json_array_append_new(take, b.take >= 0 ? json_integer(b.take) : json_null());
            args[nargs++] = prism_value_ref(b.ref);
            prism_ref_release(b.ref); /* the task holds its arguments */
            t.in_bytes += b.bytes;
            t.in_cost += b.cost;
            t.spill += b.spill;
        }
    }
    json_t *task = json_pack("{sIsOsb}", "index", (json_int_t)t.seq, "take",
                             take ? take : json_null(), "sample", 0);
    json_decref(take);
    char *text = task ? json_dumps(task, JSON_COMPACT) : NULL;
    json_decref(task);
    args[1] = text ? prism_value_json(text) : NULL;
    free(text);
    return a2a_submit_map(x, st, t, args, nargs);
}

/* A map task on the next queued block. */
static int a2a_launch_map(executor *x, ex_stage *st, int64_t est)
{
    ex_a2a *a = st->a2a;
    bool sample = a->op == PRISM_OP_SORT && !a->sampled;
    ex_block b = ex_fifo_pop(&st->queue);
    st->queued_bytes -= b.bytes;
    /* Its randomness follows its block's place in the input, not when the
     * block came: a seeded run makes the same parts. */
    ex_task t = {
        .est = est, .in_bytes = b.bytes, .in_cost = b.cost, .spill = b.spill, .seq = b.seq};
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
        t.in_cost = t.spill = 0;
        a->parked += b.cost;
        x->spill -= b.spill;
        if (ex_fifo_push(&a->waiting, b) != 0) {
            a->parked -= b.cost;
            x->spill += b.spill;
            ex_drop_block(x, &b);
            free(args);
            ex_fail(x, "out of memory");
            return -1;
        }
    } else {
        if (a->op == PRISM_OP_SORT) { /* it waited parked: now the task's input */
            a->parked -= b.cost;
            x->spill += b.spill;
        }
        prism_ref_release(b.ref); /* the task holds its argument */
    }
    t.nparts = sample ? 1 : a->parts;
    if (!args) {
        x->held -= t.in_cost;
        x->spill -= t.spill;
        ex_fail(x, "out of memory");
        return -1;
    }
    int rc = a2a_submit_map(x, st, t, args, nargs);
    free(args);
    return rc;
}

/* A merge task on maps `idx` (`k` of them, consecutive blocks in order):
 * part j of each, joined, for every j. The maps leave the list; the task
 * holds their parts. */
static int a2a_launch_merge(executor *x, ex_stage *st, const size_t *idx, size_t k)
{
    ex_a2a *a = st->a2a;
    size_t np = a->parts, nargs = 1 + k * np;
    prism_value **args = calloc(nargs, sizeof *args);
    prism_ref **refs = calloc(np + 1, sizeof *refs);
    char task[96];
    snprintf(task, sizeof task, "{\"maps\":%zu,\"parts\":%zu}", k, np);
    ex_task t = {.merge = true, .nparts = np, .seq = a->maps[idx[0]].seq};
    if (args)
        args[0] = prism_value_json(task);
    for (size_t j = 0; j < k; j++) {
        ex_map *mp = &a->maps[idx[j]];
        for (size_t r = 0; r < np; r++) {
            if (args)
                args[1 + j * np + r] = prism_value_ref(mp->parts[r]);
            prism_ref_release(mp->parts[r]); /* the task holds its arguments */
        }
        free(mp->parts);
        mp->parts = NULL;
        t.in_cost += mp->cost;
        t.in_bytes += mp->bytes;
    }
    size_t kept = 0; /* the list without them */
    for (size_t m = 0; m < a->nmaps; m++)
        if (a->maps[m].parts)
            a->maps[kept++] = a->maps[m];
    a->nmaps = kept;
    /* parked before, parked after: the stores' to spill, as what it makes */
    t.est = t.in_bytes;
    t.spill = t.in_cost + t.est;
    a->parked -= t.in_cost;
    x->held += t.est;
    x->spill += t.spill;
    int rc = -1;
    if (args && refs) {
        rc = a2a_submit(x, st, "data_a2a_merge", args, nargs, (int)np + 1, refs);
    } else {
        for (size_t j = 0; args && j < nargs; j++)
            prism_value_free(args[j]);
        ex_fail(x, "out of memory");
    }
    free(args);
    if (rc != 0) {
        free(refs);
        x->held -= t.est + t.in_cost;
        x->spill -= t.spill;
        return -1;
    }
    t.parts = refs;
    t.stats = refs[np];
    if (ex_add_task(st, t) != 0) {
        ex_drop_task(x, &t);
        ex_fail(x, "out of memory");
        return -1;
    }
    return 0;
}

/* Merges every group of K maps (blocks g*K .. g*K + K - 1) that has ended. */
static void a2a_merges(executor *x, ex_stage *st)
{
    ex_a2a *a = st->a2a;
    if (!a->merge_k || !a->merge_check)
        return;
    a->merge_check = false;
    size_t idx[EX_MERGE_MAPS];
    for (size_t m = 0; m < a->nmaps && !x->error; m++) {
        if (a->maps[m].merged)
            continue;
        if ((int64_t)st->ntasks >= st->cap) {
            a->merge_check = true; /* look again once a task ends */
            return;
        }
        uint64_t g = a->maps[m].seq / a->merge_k;
        size_t n = 0;
        for (size_t q = 0; q < a->nmaps && n < a->merge_k; q++)
            if (!a->maps[q].merged && a->maps[q].seq / a->merge_k == g) {
                size_t at = n++; /* in the input's order */
                while (at > 0 && a->maps[idx[at - 1]].seq > a->maps[q].seq) {
                    idx[at] = idx[at - 1];
                    at--;
                }
                idx[at] = q;
            }
        if (n < a->merge_k)
            continue;
        /* The merged parts are copies, and the maps' parts stay (the merge's
         * lineage pins them): merging parts that the stores already spill
         * would write them to disk twice. Merge while they fit in memory. */
        int64_t bytes = 0;
        for (size_t j = 0; j < n; j++)
            bytes += a->maps[idx[j]].bytes;
        if (a->parked + bytes > x->budget / 2)
            continue;
        if (a2a_launch_merge(x, st, idx, n) != 0)
            return;
        m = (size_t)-1; /* the list changed: from its start again */
    }
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
        ex_fail(x, "out of memory");
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
        int64_t share = a2a_share(a, mp->cost, r);
        t.in_cost += share;
        a->parked -= share;
        if (args && m >= first && m < first + count) {
            size_t k = mp->nparts == 1 ? 0 : r;
            args[2 + m - first] = prism_value_ref(mp->parts[k]);
            t.in_bytes += a2a_share(a, mp->bytes, r);
            if (mp->nparts > 1) { /* nobody else takes this part: the task holds it */
                prism_ref_release(mp->parts[k]);
                mp->parts[k] = NULL;
            }
        }
    }
    /* its parts, and the inputs they pin, stay the stores' to spill */
    t.spill = t.in_cost;
    x->spill += t.spill;
    if (!args) {
        x->held -= t.in_cost;
        x->spill -= t.spill;
        ex_fail(x, "out of memory");
        return -1;
    }
    t.est = t.in_bytes + EX_STORE_OVERHEAD;
    x->held += t.est;
    prism_ref *refs[2] = {NULL, NULL};
    int rc = a2a_submit(x, st, "data_a2a_reduce", args, count + 2, 2, refs);
    free(args);
    if (rc != 0) {
        x->held -= t.est + t.in_cost;
        x->spill -= t.spill;
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
    if (ex_add_task(st, t) != 0) {
        ex_drop_task(x, &t);
        ex_fail(x, "out of memory");
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
    size_t n = ex_fifo_len(&st->queue);
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
    while (ex_fifo_len(&st->queue)) {
        ex_block b = ex_fifo_pop(&st->queue);
        st->queued_bytes -= b.bytes;
        b.seq = st->next_out++;
        st->out_rows += b.take >= 0 && b.take < b.rows ? b.take : b.rows;
        st->out_blocks++;
        st->out_bytes += b.bytes;
        ex_emit(x, i, b);
    }
    a->reducing = true;
    a->next_reduce = a->parts;
}

static int map_order(const void *p, const void *q)
{
    const ex_map *a = p, *b = q;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

void a2a_step(executor *x, size_t i)
{
    ex_stage *st = &x->st[i];
    ex_a2a *a = st->a2a;
    if (st->cut)
        return;
    bool input_done = st->closed && ex_fifo_len(&st->early) == 0 && st->next_split >= st->nsplits;
    if (!a->has_map) {
        if (!input_done || a->reducing)
            goto reduces;
        if (a->op == PRISM_OP_RANDOMIZE_BLOCK_ORDER) {
            a2a_randomize(x, i);
            return;
        }
        /* repartition without shuffle: the blocks themselves are the parts */
        while (ex_fifo_len(&st->queue)) {
            ex_block b = ex_fifo_pop(&st->queue);
            st->queued_bytes -= b.bytes;
            prism_ref **one = malloc(sizeof *one);
            ex_map m = {.parts = one,
                        .nparts = 1,
                        .cost = b.cost,
                        .bytes = b.bytes,
                        .take = b.take,
                        .seq = b.seq};
            m.rows = b.take >= 0 && b.take < b.rows ? b.take : b.rows;
            if (!one || a2a_add_map(a, m) != 0) {
                free(one);
                ex_drop_block(x, &b);
                ex_fail(x, "out of memory");
                return;
            }
            one[0] = b.ref;
            a->parked += b.cost;
            x->spill -= b.spill;
        }
        a->reducing = true;
    } else {
        int64_t est;
        if (a->op == PRISM_OP_SORT && !a->sampled && input_done && ex_fifo_len(&st->queue) == 0 &&
            st->ntasks == 0) {
            /* every block sampled: they go to the maps, in the input's order */
            ex_block *v = a->waiting.v + a->waiting.head;
            qsort(v, ex_fifo_len(&a->waiting), sizeof *v, block_order);
            while (ex_fifo_len(&a->waiting)) {
                ex_block b = ex_fifo_pop(&a->waiting);
                st->queued_bytes += b.bytes;
                if (ex_fifo_push(&st->queue, b) != 0) {
                    a->parked -= b.cost;
                    x->spill += b.spill;
                    ex_drop_block(x, &b);
                    ex_fail(x, "out of memory");
                    return;
                }
            }
            a->sampled = true;
        }
        a2a_merges(x, st);
        while (!x->error && (ex_fifo_len(&st->queue) || st->next_split < st->nsplits) &&
               (int64_t)st->ntasks < st->cap) {
            est = a2a_map_estimate(x, st, a);
            if (ex_held_now(x) + est > x->budget && ex_running_tasks(x) > 0)
                break;
            if ((a->fused ? a2a_launch_fused : a2a_launch_map)(x, st, est) != 0)
                return;
        }
        if (input_done && ex_fifo_len(&st->queue) == 0 && st->ntasks == 0 &&
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
        int64_t est = EX_STORE_OVERHEAD; /* the output: about its parts' bytes */
        for (size_t m = 0; m < a->nmaps; m++)
            est += a2a_share(a, a->maps[m].bytes, a->next_reduce);
        if (ex_held_now(x) + est > x->budget && ex_running_tasks(x) > 0)
            break;
        if (a2a_launch_reduce(x, st) != 0)
            return;
    }
}

void a2a_complete(executor *x, size_t i, ex_task t, json_t *stats)
{
    ex_stage *st = &x->st[i];
    ex_a2a *a = st->a2a;
    x->held -= t.est + t.in_cost;
    x->spill -= t.spill;
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
                ex_fail(x, "out of memory");
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
    if (t.merge || !t.reduce) { /* a map's parts, or K maps' joined by a merge */
        ex_map m = {.parts = t.parts,
                    .nparts = t.nparts,
                    .cost = t.in_cost, /* a merge's maps' parts stay too, pinned by lineage */
                    .take = -1,
                    .seq = t.seq,
                    .merged = t.merge};
        json_t *bytes = json_object_get(stats, "bytes"), *rows = json_object_get(stats, "rows");
        for (size_t k = 0; k < t.nparts; k++) {
            int64_t b = json_integer_value(json_array_get(bytes, k)) + EX_STORE_OVERHEAD;
            m.bytes += b;
            m.cost += b;
            m.rows += json_integer_value(json_array_get(rows, k));
        }
        x->held += m.cost;
        a->parked += m.cost;
        if (!t.merge) {
            a->merge_check = true;
            st->sum_in += t.in_bytes;
            a->map_in += t.in_bytes;
            a->map_out += m.bytes;
            a->maps_done++;
            x->skipped += json_integer_value(json_object_get(stats, "skipped"));
        }
        if (a2a_add_map(a, m) != 0) {
            for (size_t k = 0; k < t.nparts; k++)
                prism_ref_release(t.parts[k]);
            free(t.parts);
            ex_fail(x, "out of memory");
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
    b.spill = stored ? t.spill : 0; /* the parts its lineage pins: the stores' to spill */
    x->held += b.cost;
    x->spill += b.spill;
    st->out_rows += b.rows;
    st->out_blocks++;
    st->out_bytes += b.bytes;
    st->sum_out += b.bytes;
    a->outs[t.seq] = b;
    a->have[t.seq] = true;
    while (a->next_deliver < a->parts && a->have[a->next_deliver]) {
        a->have[a->next_deliver] = false;
        ex_emit(x, i, a->outs[a->next_deliver++]);
    }
}

bool a2a_finished(const ex_stage *st)
{
    const ex_a2a *a = st->a2a;
    return a->reducing && (a->nmaps == 0 || a->next_deliver >= a->parts);
}

int a2a_setup(executor *x, size_t i, const json_t *fused)
{
    ex_stage *st = &x->st[i];
    st->kind = EX_A2A;
    const json_t *spec;
    prism_plan_op_kind op =
        prism_physical_plan_op(x->d->physical, i, st->info.num_ops - 1, &spec, NULL, NULL);
    ex_a2a *a = st->a2a = calloc(1, sizeof *a);
    if (!a)
        return -1;
    a->op = op;
    a->fused = fused != NULL;
    bool shuffle = json_is_true(json_object_get(spec, "shuffle"));
    a->has_map = op != PRISM_OP_RANDOMIZE_BLOCK_ORDER && (op != PRISM_OP_REPARTITION || shuffle);
    /* As many output blocks as the read makes (Ray Data: as many as input
     * blocks), unless repartition says. */
    int64_t parts = op == PRISM_OP_REPARTITION
                        ? json_integer_value(json_object_get(spec, "num_blocks"))
                        : (int64_t)ex_upstream_splits(x, i);
    a->parts = parts > 0 ? (size_t)parts : 1;
    bool push = json_is_true(
        json_object_get(prism_physical_plan_options(x->d->physical), "use_push_based_shuffle"));
    a->merge_k =
        push && a->has_map && a->parts >= 2 && a->parts <= EX_MERGE_MAX_PARTS ? EX_MERGE_MAPS : 0;
    if (a->has_map && a->parts > PRISM_MAX_RETURNS - 1) { /* a map returns every part */
        ex_fail(x, "%s: %zu parts; a map task makes at most %d (fewer blocks)", st->name, a->parts,
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
    if (prog && fused && json_object_set(prog, "stage", (json_t *)fused) < 0) {
        json_decref(prog);
        prog = NULL;
    }
    st->program = prog ? json_dumps(prog, JSON_COMPACT) : NULL;
    json_decref(prog);
    st->resources = ex_custom_resources(st->info.resources);
    return st->program && a->outs && a->have ? 0 : -1;
}

int64_t a2a_parked(const ex_a2a *a) { return a->parked; }

void a2a_free(ex_a2a *a)
{
    if (!a)
        return;
    free(a->waiting.v);
    free(a->samples);
    free(a->maps);
    free(a->outs);
    free(a->have);
    free(a);
}
