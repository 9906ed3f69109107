/* A streamed dataset's output (docs/datasets.md#streaming-to-a-consumer):
 * the blocks the executor made, kept for one consumer instead of counted
 * and dropped. The consumer takes them in turn (POST .../blocks/next), reads
 * each from the object store as a borrower of the service's reference, and
 * gives it back (POST .../blocks/release), which drops the reference. Until
 * then a block counts in the dataset's bytes in flight, so a consumer that
 * lags holds the executor back. Every function here runs with the lock held. */
#include <stdlib.h>
#include <string.h>

#include "dataservice.h"

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

bool ds_stream_ready(const ds_dataset *d) { return d->stream.head < d->stream.n; }

json_t *ds_stream_next(ds_dataset *d, const char *owner)
{
    ds_stream *q = &d->stream;
    if (q->head == q->n)
        return NULL;
    ds_outblock b = q->v[q->head];
    json_t *doc = json_pack("{s:I,s:s,s:s,s:I,s:I,s:o}", "seq", (json_int_t)b.seq, "object_id",
                            prism_ref_id(b.ref), "owner", owner, "rows", (json_int_t)b.rows,
                            "bytes", (json_int_t)b.bytes, "take",
                            b.take >= 0 ? json_integer(b.take) : json_null());
    if (!doc || lend(q, &b) != 0) {
        json_decref(doc);
        return NULL;
    }
    q->head++;
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
        q->lent[i] = q->lent[--q->nlent];
        if (ds_state_ended(d->state)) /* no executor counts any more */
            d->bytes_in_flight = q->cost;
        return ref;
    }
    return NULL;
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
    int64_t next = q->next_seq;
    memset(q, 0, sizeof *q);
    q->next_seq = next;
    if (ds_state_ended(d->state))
        d->bytes_in_flight = 0;
}
