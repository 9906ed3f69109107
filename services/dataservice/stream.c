/* A streamed dataset's output (docs/datasets.md#streaming-to-a-consumer):
 * the blocks the executor made, kept for its consumers instead of counted
 * and dropped. A consumer takes them in turn (POST .../blocks/next), reads
 * each from the object store as a borrower of the service's reference, and
 * gives it back (POST .../blocks/release), which drops the reference. Until
 * then a block counts in the dataset's bytes in flight, so consumers that
 * lag hold the executor back.
 *
 * streaming_split(n) has n consumers. Whichever asks gets the next block,
 * so a slow consumer takes fewer and does not stall the others. With
 * `equal`, each gets as many rows: a consumer may take only while what is
 * queued could still bring every other one up to it, which is at most
 * floor((rows lent + rows queued) / n) rows in all (the rule of Ray Data's
 * output splitter); a block is cut when only part of it fits, and once the
 * dataset has ended the rows past n equal shares (fewer than n) are dropped.
 *
 * A consumer that has not called for `timeout_ms` (and is not waiting in a
 * call) is lost: the dataset fails (ds_stream_lost, checked by the cron).
 * Every function here runs with the lock held. */
#include <stdlib.h>
#include <string.h>

#include "dataservice.h"
#include "prism_time.h"

int ds_stream_init(ds_dataset *d, const ds_stream_opts *o)
{
    ds_stream *q = &d->stream;
    q->nsplits = o->nsplits > 0 ? o->nsplits : 1;
    q->equal = o->equal;
    q->timeout_ms = o->timeout_ms;
    q->splits = calloc((size_t)q->nsplits, sizeof *q->splits);
    if (!q->splits)
        return -1;
    int64_t now = prism_mono_ms();
    for (int i = 0; i < q->nsplits; i++)
        q->splits[i].seen_ms = now;
    return 0;
}

/* The rows of `b` that belong. */
static int64_t avail(const ds_outblock *b)
{
    int64_t end = b->take >= 0 && b->take < b->rows ? b->take : b->rows;
    return end - b->skip;
}

int ds_stream_push(ds_dataset *d, const ds_outblock *b)
{
    ds_stream *q = &d->stream;
    if (q->head > 0 && q->n == q->cap) {
        memmove(q->v, q->v + q->head, (q->n - q->head) * sizeof *q->v);
        q->n -= q->head;
        q->head = 0;
    }
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 16;
        ds_outblock *v = realloc(q->v, cap * sizeof *v);
        if (!v)
            return -1;
        q->v = v;
        q->cap = cap;
    }
    q->v[q->n++] = *b;
    q->cost += b->cost;
    q->queued_rows += avail(b);
    return 0;
}

static int lend(ds_stream *q, const ds_outblock *b)
{
    if (q->nlent == q->caplent) {
        size_t cap = q->caplent ? 2 * q->caplent : 8;
        ds_outblock *v = realloc(q->lent, cap * sizeof *v);
        if (!v)
            return -1;
        q->lent = v;
        q->caplent = cap;
    }
    q->lent[q->nlent++] = *b;
    return 0;
}

/* Rows consumer `split` may take now: with `equal` its share of what is
 * known so far, less what it has; else any. */
static int64_t may_take(const ds_stream *q, int split)
{
    if (!q->equal)
        return INT64_MAX;
    int64_t lent = 0;
    for (int i = 0; i < q->nsplits; i++)
        lent += q->splits[i].rows;
    return (lent + q->queued_rows) / q->nsplits - q->splits[split].rows;
}

bool ds_stream_ready(const ds_dataset *d, int split)
{
    const ds_stream *q = &d->stream;
    return q->head < q->n && split >= 0 && split < q->nsplits && may_take(q, split) > 0;
}

/* Every consumer had its share: what is left of the queue goes. */
static void drop_rest(ds_dataset *d)
{
    ds_stream *q = &d->stream;
    for (int i = 0; i < q->nsplits; i++)
        if (!q->splits[i].done)
            return;
    for (size_t i = q->head; i < q->n; i++) {
        q->dropped += avail(&q->v[i]);
        q->cost -= q->v[i].cost;
        prism_ref_release(q->v[i].ref);
    }
    q->head = q->n = 0;
    q->queued_rows = 0;
    d->bytes_in_flight = q->cost;
}

/* The queued block for a consumer on `node`: the first made there (a look
 * at the DS_LOCAL_SCAN oldest), else the oldest. */
#define DS_LOCAL_SCAN 4096
static size_t pick(const ds_stream *q, const char *node)
{
    for (size_t i = q->head; node && *node && i < q->n && i < q->head + DS_LOCAL_SCAN; i++)
        if (!strcmp(q->v[i].node, node))
            return i;
    return q->head;
}

json_t *ds_stream_next(ds_dataset *d, const char *owner, int split, const char *node, bool *end)
{
    ds_stream *q = &d->stream;
    *end = false;
    if (split < 0 || split >= q->nsplits)
        return NULL;
    ds_split *sp = &q->splits[split];
    sp->seen_ms = prism_mono_ms();
    int64_t k = q->head < q->n ? avail(&q->v[q->head]) : 0;
    int64_t may = may_take(q, split);
    if (sp->done || k == 0 || may <= 0) {
        /* the end once the executor has made everything and none fits */
        if (ds_state_ended(d->state) && (sp->done || k == 0 || q->equal)) {
            *end = true;
            sp->done = true;
            if (d->state == DS_FINISHED)
                drop_rest(d);
        }
        return NULL;
    }
    size_t at = pick(q, node);
    if (at != q->head) { /* the local one goes first: the others keep their order */
        ds_outblock local = q->v[at];
        memmove(q->v + q->head + 1, q->v + q->head, (at - q->head) * sizeof *q->v);
        q->v[q->head] = local;
        k = avail(&local);
    }
    ds_outblock *h = &q->v[q->head];
    ds_outblock b = *h;
    if (k > may) { /* a part: the block stays queued for the others */
        k = may;
        b.ref = prism_ref_dup(h->ref);
        b.take = h->skip + k;
        b.cost = h->cost * k / avail(h);
        if (!b.ref)
            return NULL;
    }
    b.seq = q->next_seq;
    b.split = split;
    json_t *doc = json_pack("{s:I,s:s,s:s,s:I,s:I,s:I,s:o}", "seq", (json_int_t)b.seq, "object_id",
                            prism_ref_id(b.ref), "owner", owner, "rows", (json_int_t)b.rows,
                            "bytes", (json_int_t)b.bytes, "skip", (json_int_t)b.skip, "take",
                            b.take >= 0 ? json_integer(b.take) : json_null());
    if (!doc || lend(q, &b) != 0) {
        json_decref(doc);
        if (b.ref != h->ref)
            prism_ref_release(b.ref);
        return NULL;
    }
    q->next_seq++;
    q->queued_rows -= k;
    sp->rows += k;
    sp->blocks++;
    sp->local += node && *node && !strcmp(b.node, node);
    if (b.ref == h->ref) {
        q->head++;
    } else {
        h->skip += k;
        h->cost -= b.cost;
    }
    return doc;
}

prism_ref *ds_stream_release(ds_dataset *d, int64_t seq)
{
    ds_stream *q = &d->stream;
    for (size_t i = 0; i < q->nlent; i++) {
        if (q->lent[i].seq != seq)
            continue;
        prism_ref *ref = q->lent[i].ref;
        q->cost -= q->lent[i].cost;
        if (q->splits && q->lent[i].split < q->nsplits)
            q->splits[q->lent[i].split].seen_ms = prism_mono_ms();
        q->lent[i] = q->lent[--q->nlent];
        if (ds_state_ended(d->state)) /* no executor counts any more */
            d->bytes_in_flight = q->cost;
        return ref;
    }
    return NULL;
}

int ds_stream_lost(const ds_dataset *d, int64_t now_ms)
{
    const ds_stream *q = &d->stream;
    if (ds_state_ended(d->state) && q->head == q->n && q->nlent == 0)
        return -1; /* nothing left to lose */
    for (int i = 0; q->timeout_ms > 0 && i < q->nsplits; i++) {
        const ds_split *sp = &q->splits[i];
        if (!sp->done && !sp->waiting && now_ms - sp->seen_ms > q->timeout_ms)
            return i;
    }
    return -1;
}

void ds_stream_clear(ds_dataset *d)
{
    ds_stream *q = &d->stream;
    for (size_t i = q->head; i < q->n; i++)
        prism_ref_release(q->v[i].ref);
    for (size_t i = 0; i < q->nlent; i++)
        prism_ref_release(q->lent[i].ref);
    free(q->v);
    free(q->lent);
    q->v = q->lent = NULL;
    q->head = q->n = q->cap = q->nlent = q->caplent = 0;
    q->cost = q->queued_rows = 0;
    if (ds_state_ended(d->state))
        d->bytes_in_flight = 0;
}
