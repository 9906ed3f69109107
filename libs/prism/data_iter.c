/* Streaming a dataset's output to this process (include/prism/data.h):
 * the dataservice lends each output block (its object ID and owner); this
 * process reads it from its node's store (zero-copy) when the block is
 * there, else as a borrower through the object store, cuts and joins blocks into
 * batches of the size asked, and gives each block back when the last batch
 * using it is freed, which lets the dataservice drop it. Also the batches'
 * accessors. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client.h"
#include "data_internal.h"
#include "prism_id.h"
#include "prism_internal.h"
#include "prism_time.h"

#define NEXT_SLICE_MS 30000
#define GET_MS 60000
/* Buffers of joined batches kept for the next ones. */
#define SPARE_BATCHES 2

/* The memory of batches joined from several blocks, reused: a batch of
 * images is tens of MiB, and fresh memory for each cost a page fault every
 * 4 KiB and an unmap, more than copying the rows. Shared by the iterator
 * and its batches (which may outlive it, and be freed on other threads). */
typedef struct batch_mem {
    pthread_mutex_t mu;
    int refs;
    void *spare[SPARE_BATCHES];
    size_t cap[SPARE_BATCHES];
} batch_mem;

struct prism_data_iter {
    prism_client *c;
    prism_httpc *h;
    char id[64];
    int64_t batch_size;
    int split;     /* which consumer of a streaming_split; 0 for a plain iterator */
    bool owns;     /* this iterator started the dataset: it stops it when left early */
    bool in_order; /* preserve_order: blocks are batched in the order they came */
    prism_data_iter_options o;
    prism_block **pend; /* blocks (views cut to their rows) not wholly batched yet */
    size_t npend, cap;
    size_t first;      /* rows of pend[0] already batched */
    int64_t pend_rows; /* rows in pend not batched yet */
    bool end;          /* the dataservice has no more */
    batch_mem *mem;    /* joined batches' buffers */
};

void prism_data_iter_options_init(prism_data_iter_options *opts)
{
    *opts = (prism_data_iter_options)PRISM_DATA_ITER_OPTIONS_INIT;
}

/* ---------- a lent block ---------- */

/* What giving a block back needs, whatever outlives what: the value read,
 * the borrowed reference, and where to say it is done. */
typedef struct lent {
    prism_client *c; /* outlives its batches (prism_disconnect's contract) */
    prism_value *v;
    prism_ref *ref;
    char path[160];
} lent;

static void give_back(void *ud)
{
    lent *l = ud;
    prism_value_free(l->v);
    prism_ref_release(l->ref);
    prism_httpc *h = prism__http_take(l->c);
    if (h) {
        long status;
        json_t *doc = NULL;
        char err[256];
        /* a failure only leaves the block to the dataset's end */
        int rc = prism__data_rest(h, "POST", l->path, NULL, 10000, &status, &doc, err, sizeof err);
        json_decref(doc);
        prism_httpc_pool_give(l->c->http, h, rc == 0);
    }
    free(l);
}

/* Reads the block the dataservice lent (`b`: {seq, object_id, owner, take})
 * as a block whose last reference gives it back. */
static prism_status borrow(prism_data_iter *it, const json_t *b, prism_block **out)
{
    const char *hex = json_string_value(json_object_get(b, "object_id"));
    const char *owner = json_string_value(json_object_get(b, "owner"));
    json_int_t seq = json_integer_value(json_object_get(b, "seq"));
    prism_object_id oid;
    lent *l = calloc(1, sizeof *l);
    if (!l)
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    snprintf(l->path, sizeof l->path, "/api/v1/datasets/%s/blocks/release?seq=%lld", it->id,
             (long long)seq);
    l->c = it->c;
    if (!hex || !owner || prism_object_id_from_hex(&oid, hex) != 0) {
        give_back(l);
        return prism__fail(PRISM_ERR_INTERNAL, "the dataservice lent a block without its ID");
    }
    /* A block in this process's own store is read there at once, without
     * borrowing it from its owner (a get, an add and a remove on NATS a
     * block): the dataservice keeps it until it is given back, and a delete
     * meanwhile waits for this read's release. Elsewhere (or gone from
     * here), it is borrowed, as any reference is. */
    prism_status s =
        it->c->store ? prism__decode_stored(it->c->store, &oid, 0, it->c, it->c->self_addr, &l->v)
                     : PRISM_ERR_OBJECT_LOST;
    if (s != PRISM_OK) {
        l->ref = prism__ref_new(it->c, &oid, owner);
        s = l->ref ? prism_get(it->c, l->ref, GET_MS, &l->v) : PRISM_ERR_NO_MEMORY;
    }
    size_t len = 0;
    const void *data = s == PRISM_OK ? prism_value_data(l->v, &len) : NULL;
    char why[512] = "";
    if (s != PRISM_OK) {
        /* a copy: prism__fail writes where prism_last_error() points */
        snprintf(why, sizeof why, "%s", prism_last_error());
        s = prism__fail(s, "cannot read block %lld of the dataset: %s", (long long)seq, why);
        give_back(l);
        return s;
    }
    if (!data ||
        prism_block_open_ex(data, len, 0, give_back, l, out, why, sizeof why) != PRISM_BLOCK_OK) {
        give_back(l);
        return prism__fail(PRISM_ERR_INTERNAL, "block %lld is not a block: %s", (long long)seq,
                           why);
    }
    return PRISM_OK;
}

/* Keeps rows [skip, take) of `blk` (take null: to the end). */
static prism_status keep(prism_data_iter *it, prism_block *blk, const json_t *skip,
                         const json_t *take)
{
    size_t rows = prism_block_rows(blk), from = 0;
    if (json_is_integer(skip) && json_integer_value(skip) > 0)
        from = (size_t)json_integer_value(skip);
    if (json_is_integer(take) && (size_t)json_integer_value(take) < rows)
        rows = (size_t)json_integer_value(take);
    if (from > rows)
        from = rows;
    if (from > 0 || rows < prism_block_rows(blk)) {
        prism_block *cut = NULL;
        prism_block_status st = prism_block_slice(blk, from, rows, &cut);
        prism_block_destroy(blk);
        if (st != PRISM_BLOCK_OK)
            return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
        blk = cut;
        rows -= from;
    }
    if (rows == 0) {
        prism_block_destroy(blk);
        return PRISM_OK;
    }
    if (it->npend == it->cap) {
        size_t cap = it->cap ? 2 * it->cap : 8;
        prism_block **v = realloc(it->pend, cap * sizeof *v);
        if (!v) {
            prism_block_destroy(blk);
            return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
        }
        it->pend = v;
        it->cap = cap;
    }
    it->pend[it->npend++] = blk;
    it->pend_rows += (int64_t)rows;
    return PRISM_OK;
}

/* Asks for the next block, waiting up to `wait_ms`; sets it->end at the end. */
static prism_status fetch(prism_data_iter *it, int64_t wait_ms)
{
    char path[256], err[512];
    long status = 0;
    json_t *doc = NULL;
    /* its node, when this process knows it: blocks already there come first */
    const char *node = getenv("PRISM_NODE_ID");
    bool hint = node && *node && strlen(node) <= 64 &&
                strspn(node, "0123456789abcdefABCDEF-_.") == strlen(node);
    snprintf(path, sizeof path, "/api/v1/datasets/%s/blocks/next?timeout_ms=%lld&split=%d%s%s",
             it->id, (long long)wait_ms, it->split, hint ? "&node=" : "", hint ? node : "");
    if (prism__data_rest(it->h, "POST", path, NULL, (int)wait_ms + 15000, &status, &doc, err,
                         sizeof err) != 0)
        return prism__fail(PRISM_ERR_CONNECT, "cannot reach the cluster: %s", err);
    prism_status s = prism__data_answer(status, doc, "the dataset's next block");
    const json_t *b = json_object_get(doc, "block");
    if (s == PRISM_OK && json_is_object(b)) {
        prism_block *blk = NULL;
        s = borrow(it, b, &blk);
        if (s == PRISM_OK)
            s = keep(it, blk, json_object_get(b, "skip"), json_object_get(b, "take"));
    } else if (s == PRISM_OK && json_is_true(json_object_get(doc, "end"))) {
        it->end = true;
        if (!json_is_true(json_object_get(doc, "complete")))
            s = prism__fail(PRISM_ERR_CANCELLED, "the dataset was stopped (%s)",
                            json_string_value(json_object_get(doc, "state")));
    }
    json_decref(doc);
    return s;
}

/* ---------- joined batches' memory ---------- */

static void mem_unref(batch_mem *m)
{
    pthread_mutex_lock(&m->mu);
    bool last = --m->refs == 0;
    pthread_mutex_unlock(&m->mu);
    if (!last)
        return;
    for (int i = 0; i < SPARE_BATCHES; i++)
        free(m->spare[i]);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* A joined batch's buffer, given back when its block's last reference goes. */
typedef struct lent_mem {
    batch_mem *m;
    void *p;
    size_t cap;
} lent_mem;

/* A new buffer's pages made in one call: a batch of images joined into
 * memory never touched took a page fault every 4 KiB (tens of ms for a
 * batch of 256 images, longer than the read's last block it joins).
 * Best effort: an older kernel faults them in as they come. */
static void prefault(void *p, size_t len)
{
#ifdef MADV_POPULATE_WRITE
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + page - 1) / page * page, z = ((uintptr_t)p + len) / page * page;
    if (z > a)
        (void)madvise((void *)a, z - a, MADV_POPULATE_WRITE);
#else
    (void)p;
    (void)len;
#endif
}

/* At least `len` bytes, 64-byte aligned: the smallest spare that fits, or new. */
static lent_mem *mem_take(batch_mem *m, size_t len)
{
    lent_mem *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    pthread_mutex_lock(&m->mu);
    int best = -1;
    for (int i = 0; i < SPARE_BATCHES; i++)
        if (m->spare[i] && m->cap[i] >= len && (best < 0 || m->cap[i] < m->cap[best]))
            best = i;
    if (best >= 0) {
        l->p = m->spare[best];
        l->cap = m->cap[best];
        m->spare[best] = NULL;
    }
    m->refs++;
    pthread_mutex_unlock(&m->mu);
    l->m = m;
    if (!l->p) {
        l->cap = (len + 63) / 64 * 64;
        l->p = aligned_alloc(64, l->cap ? l->cap : 64);
        if (l->p)
            prefault(l->p, l->cap);
    }
    if (!l->p) {
        mem_unref(m);
        free(l);
        return NULL;
    }
    return l;
}

/* Keeps the buffer in an empty slot or in place of a smaller spare. */
static void mem_give_back(void *ud)
{
    lent_mem *l = ud;
    batch_mem *m = l->m;
    pthread_mutex_lock(&m->mu);
    int slot = 0;
    for (int i = 1; i < SPARE_BATCHES; i++)
        if (!m->spare[i] || (m->spare[slot] && m->cap[i] < m->cap[slot]))
            slot = i;
    if (!m->spare[slot] || m->cap[slot] < l->cap) {
        void *old = m->spare[slot];
        m->spare[slot] = l->p;
        m->cap[slot] = l->cap;
        l->p = old;
    }
    pthread_mutex_unlock(&m->mu);
    free(l->p);
    mem_unref(m);
    free(l);
}

/* The `n` pieces joined into one block in the iterator's reused memory. */
static prism_block_status join_pieces(prism_data_iter *it, prism_block *const *parts, size_t n,
                                      prism_block **out, char *why, size_t wn)
{
    size_t len = 0, written = 0;
    prism_block_status st = prism_block_concat_size(parts, n, &len, why, wn);
    lent_mem *l = st == PRISM_BLOCK_OK ? mem_take(it->mem, len) : NULL;
    if (st == PRISM_BLOCK_OK && !l)
        st = PRISM_BLOCK_ENOMEM;
    if (st == PRISM_BLOCK_OK)
        st = prism_block_concat_into(parts, n, l->p, l->cap, &written, why, wn);
    if (st == PRISM_BLOCK_OK)
        return prism_block_open_ex(l->p, written, 0, mem_give_back, l, out, why, wn);
    if (l)
        mem_give_back(l);
    return st;
}

/* ---------- batches out of blocks ---------- */

static prism_status wrap(prism_block *blk, prism_batch **out)
{
    prism_batch *b = malloc(sizeof *b);
    if (!b) {
        prism_block_destroy(blk);
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    }
    b->blk = blk;
    *out = b;
    return PRISM_OK;
}

/* The next `want` rows of pend (there are as many): a view when one block
 * holds them, else the pieces joined into a new block. */
static prism_status cut_batch(prism_data_iter *it, size_t want, prism_batch **out)
{
    /* Out of order, a whole batch read in place beats a join: a short block
     * not started yet (a read's first, small one) waits behind one that
     * holds a batch. */
    if (!it->in_order && it->first == 0 && prism_block_rows(it->pend[0]) < want)
        for (size_t k = 1; k < it->npend; k++)
            if (prism_block_rows(it->pend[k]) >= want) {
                prism_block *b = it->pend[k];
                memmove(it->pend + 1, it->pend, k * sizeof *it->pend);
                it->pend[0] = b;
                break;
            }
    prism_block **parts = calloc(it->npend, sizeof *parts);
    size_t k = 0, got = 0, used = 0; /* used: blocks wholly taken */
    prism_block_status st = parts ? PRISM_BLOCK_OK : PRISM_BLOCK_ENOMEM;
    while (st == PRISM_BLOCK_OK && got < want) {
        prism_block *b = it->pend[k];
        size_t start = k == 0 ? it->first : 0, rows = prism_block_rows(b) - start;
        size_t n = rows < want - got ? rows : want - got;
        st = prism_block_slice(b, start, start + n, &parts[k]);
        got += n;
        if (n == rows)
            used++;
        else
            it->first = start + n;
        k++;
    }
    prism_block *batch = NULL;
    char why[256] = "";
    if (st == PRISM_BLOCK_OK && k == 1)
        batch = prism_block_ref(parts[0]);
    else if (st == PRISM_BLOCK_OK)
        st = join_pieces(it, parts, k, &batch, why, sizeof why);
    for (size_t i = 0; parts && i < k; i++)
        prism_block_destroy(parts[i]);
    free(parts);
    if (st != PRISM_BLOCK_OK)
        return prism__fail(st == PRISM_BLOCK_ENOMEM ? PRISM_ERR_NO_MEMORY : PRISM_ERR_INTERNAL,
                           "cannot make a batch: %s%s%s", prism_block_strerror(st),
                           *why ? ": " : "", why);
    for (size_t i = 0; i < used; i++)
        prism_block_destroy(it->pend[i]);
    memmove(it->pend, it->pend + used, (it->npend - used) * sizeof *it->pend);
    it->npend -= used;
    if (used)
        it->first = k > used ? it->first : 0;
    it->pend_rows -= (int64_t)want;
    return wrap(batch, out);
}

/* A new iterator (zeroed) with its batches' memory; NULL out of memory. */
static prism_data_iter *iter_alloc(void)
{
    prism_data_iter *it = calloc(1, sizeof *it);
    batch_mem *m = it ? calloc(1, sizeof *m) : NULL;
    if (!m || pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        free(it);
        return NULL;
    }
    m->refs = 1;
    it->mem = m;
    return it;
}

prism_status prism_data_iter_batches(prism_dataset *ds, int64_t batch_size,
                                     const prism_data_iter_options *opts, prism_data_iter **out)
{
    prism_data_iter_options d = PRISM_DATA_ITER_OPTIONS_INIT;
    const prism_data_iter_options *o = opts ? opts : &d;
    if (!out || !ds || batch_size < 1 || batch_size > INT32_MAX || !PRISM__RESERVED_ZERO(o))
        return prism__fail(PRISM_ERR_INVALID,
                           "iter_batches needs a dataset, a batch size of 1 to 2^31 - 1 and "
                           "options whose reserved words are zero");
    *out = NULL;
    prism_data_iter *it = iter_alloc();
    if (!it)
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    it->c = prism__data_client(ds);
    it->batch_size = batch_size;
    it->o = *o;
    it->owns = true;
    it->in_order = prism__data_in_order(ds);
    prism_status s = prism__data_start_batches(ds, batch_size, &it->h, it->id, sizeof it->id);
    if (s != PRISM_OK) {
        it->end = true; /* nothing started: nothing to stop */
        prism_data_iter_destroy(it);
        return s;
    }
    *out = it;
    return PRISM_OK;
}

prism_status prism_data_iter_split(prism_client *c, const char *dataset_id, int split,
                                   int64_t batch_size, const prism_data_iter_options *opts,
                                   prism_data_iter **out)
{
    prism_data_iter_options d = PRISM_DATA_ITER_OPTIONS_INIT;
    const prism_data_iter_options *o = opts ? opts : &d;
    if (!c || !out || !dataset_id || strlen(dataset_id) >= PRISM_DATA_ID_SIZE || split < 0 ||
        batch_size < 1 || batch_size > INT32_MAX || !PRISM__RESERVED_ZERO(o))
        return prism__fail(PRISM_ERR_INVALID,
                           "iter_split needs a client, a dataset ID, a split >= 0, a batch size "
                           "of 1 to 2^31 - 1 and options whose reserved words are zero");
    *out = NULL;
    prism_data_iter *it = iter_alloc();
    if (it)
        it->c = c;
    if (!it || !(it->h = prism__http_take(c))) {
        prism_data_iter_destroy(it);
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    }
    it->batch_size = batch_size;
    it->in_order = true; /* not known here: kept */
    it->split = split;
    it->o = *o;
    snprintf(it->id, sizeof it->id, "%s", dataset_id);
    *out = it;
    return PRISM_OK;
}

prism_status prism_data_iter_next(prism_data_iter *it, prism_batch **out)
{
    if (!it || !out)
        return prism__fail(PRISM_ERR_INVALID, "no iterator");
    *out = NULL;
    int64_t deadline = it->o.timeout_ms > 0 ? prism_mono_ms() + it->o.timeout_ms : -1;
    while (!it->end && it->pend_rows < it->batch_size) {
        int64_t left = deadline < 0 ? NEXT_SLICE_MS : deadline - prism_mono_ms();
        if (left <= 0)
            return prism__fail(PRISM_ERR_TIMEOUT, "no batch in %d ms", it->o.timeout_ms);
        prism_status s = fetch(it, left < NEXT_SLICE_MS ? left : NEXT_SLICE_MS);
        if (s != PRISM_OK)
            return s;
    }
    int64_t want = it->pend_rows < it->batch_size ? it->pend_rows : it->batch_size;
    if (want == 0 || (want < it->batch_size && it->o.drop_last))
        return PRISM_OK; /* the end */
    return cut_batch(it, (size_t)want, out);
}

void prism_data_iter_destroy(prism_data_iter *it)
{
    if (!it)
        return;
    if (!it->end && it->owns) { /* the rest is not wanted: stop the dataset, which drops its
                                 * blocks */
        char path[160], err[256];
        long status;
        json_t *doc = NULL;
        snprintf(path, sizeof path, "/api/v1/datasets/%s/stop", it->id);
        (void)prism__data_rest(it->h, "POST", path, NULL, 10000, &status, &doc, err, sizeof err);
        json_decref(doc);
    }
    for (size_t i = 0; i < it->npend; i++)
        prism_block_destroy(it->pend[i]);
    free(it->pend);
    if (it->h)
        prism__http_give(it->c, it->h);
    if (it->mem)
        mem_unref(it->mem);
    free(it);
}

/* ---------- batches ---------- */

size_t prism_batch_rows(const prism_batch *b) { return b ? prism_block_rows(b->blk) : 0; }

size_t prism_batch_num_columns(const prism_batch *b) { return b ? prism_block_columns(b->blk) : 0; }

const char *prism_batch_column_name(const prism_batch *b, size_t i)
{
    if (!b || i >= prism_block_columns(b->blk))
        return NULL;
    return prism_block_schema_name(prism_block_get_schema(b->blk), i);
}

long prism_batch_column_index(const prism_batch *b, const char *name)
{
    return b && name ? prism_block_column_index(b->blk, name) : -1;
}

static int dtype_of(prism_coltype t)
{
    switch (t) {
    case PRISM_COL_FLOAT32: return PRISM_F32;
    case PRISM_COL_FLOAT64: return PRISM_F64;
    case PRISM_COL_INT32: return PRISM_I32;
    case PRISM_COL_INT64: return PRISM_I64;
    case PRISM_COL_UINT8: return PRISM_U8;
    default: return 0;
    }
}

const void *prism_batch_values(const prism_batch *b, size_t col, prism_dtype *dtype, int *ndim,
                               int64_t *shape)
{
    if (!b || col >= prism_block_columns(b->blk))
        return NULL;
    const prism_block_schema *s = prism_block_get_schema(b->blk);
    prism_coltype t = prism_block_schema_type(s, col);
    bool tensor = t == PRISM_COL_TENSOR;
    int dt = dtype_of(tensor ? prism_block_schema_elem(s, col) : t);
    size_t nd = tensor ? prism_block_schema_ndim(s, col) : 0;
    if (!dt || nd > PRISM_MAX_DIMS)
        return NULL;
    if (dtype)
        *dtype = (prism_dtype)dt;
    if (ndim)
        *ndim = (int)nd;
    for (size_t i = 0; shape && i < nd; i++)
        shape[i] = prism_block_schema_shape(s, col)[i];
    return prism_block_values(b->blk, col, t);
}

const void *prism_batch_bytes(const prism_batch *b, size_t col, size_t row, size_t *len)
{
    if (!b || col >= prism_block_columns(b->blk) || prism_block_is_null(b->blk, col, row))
        return NULL;
    return prism_block_binary(b->blk, col, row, len);
}

char *prism_batch_to_json(const prism_batch *b)
{
    char *text = NULL;
    size_t len;
    if (!b || prism_block_to_json(b->blk, 0, prism_block_rows(b->blk), (size_t)1 << 30, &text,
                                  &len) != PRISM_BLOCK_OK)
        return NULL;
    return text;
}

prism_status prism_batch_export_arrow(const prism_batch *b, struct ArrowSchema *schema,
                                      struct ArrowArray *array)
{
    if (!b || !schema || !array)
        return prism__fail(PRISM_ERR_INVALID, "no batch or no structures to fill");
    prism_block_status st = prism_block_export_arrow(b->blk, schema, array);
    return st == PRISM_BLOCK_OK
               ? PRISM_OK
               : prism__fail(PRISM_ERR_NO_MEMORY, "cannot export: %s", prism_block_strerror(st));
}

void prism_batch_free(prism_batch *b)
{
    if (!b)
        return;
    prism_block_destroy(b->blk);
    free(b);
}
