/* The tasks of an all-to-all stage (data_ops.h; docs/datasets.md#all-to-all-operators):
 * a map task cuts one input block into the parts the reduce tasks take, a
 * reduce task makes one output block from its part of every map output.
 *
 *   random_shuffle, repartition(shuffle): each row to a random part; the
 *       reduce of random_shuffle shuffles its rows again.
 *   groupby: each map aggregates its block's groups into partial rows (one a
 *       group), each to the part its key hashes to; the reduce sorts its
 *       partial rows by key and merges each group's.
 *   sort: a first task per block samples its keys as it comes; once all
 *       are sampled, each map cuts its block at the same P - 1 boundaries
 *       (even steps of the sorted samples) and each reduce sorts its range.
 *   repartition(no shuffle): no map; the reduce joins the row ranges the
 *       executor gives it.
 *
 * Randomness comes from the stage's seed and the task's index only, so a
 * task run again (a retry, or lineage remaking a lost part) makes the same
 * rows in the same parts. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_ops.h"
#include "prism_internal.h"

#define ERR_LEN 1024
/* Sort: sampled keys per output range at most. */
#define SORT_SAMPLES_PER_PART 64

typedef struct a2a_prog {
    json_t *doc;
    const char *op;     /* "random_shuffle", "sort", "groupby", "repartition" */
    const json_t *spec; /* its fields, defaults filled in */
    size_t parts;       /* reduce tasks */
    uint64_t seed;
} a2a_prog;

static int prog_load(const prism_value *v, a2a_prog *p, char *err, size_t n)
{
    p->doc = v && v->kind == PRISM_VALUE_JSON ? json_loads(v->text, 0, NULL) : NULL;
    p->op = json_string_value(json_object_get(p->doc, "op"));
    p->spec = json_object_get(p->doc, "spec");
    json_int_t parts = json_integer_value(json_object_get(p->doc, "parts"));
    p->parts = parts > 0 ? (size_t)parts : 0;
    p->seed = (uint64_t)json_integer_value(json_object_get(p->doc, "seed"));
    if (!p->op || !json_is_object(p->spec) || p->parts == 0 || p->parts > PRISM_MAX_RETURNS - 1) {
        snprintf(err, n, "the all-to-all program must be JSON {op, spec, parts, seed}");
        return -1;
    }
    return 0;
}

/* splitmix64: a small generator whose stream depends only on its seed. */
static uint64_t mix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* ---------- keys: compared and hashed across blocks ---------- */

typedef struct keyset {
    size_t n;                /* key columns */
    prism_column_view *view; /* per block, n views: view[block * n + k] */
    bool descending;
} keyset;

static bool is_null(const prism_column_view *v, size_t r)
{
    size_t i = v->offset + r;
    return v->validity && !(v->validity[i / 8] >> (i % 8) & 1);
}

/* Numbers as int64 when integral types, else double. Returns 0 for a
 * number, 1 for bytes (utf8, binary), -1 for a type that has no order. */
static int value_at(const prism_column_view *v, size_t r, int64_t *iv, double *dv, bool *is_int,
                    const uint8_t **bytes, size_t *len)
{
    size_t i = v->offset + r;
    *is_int = true;
    switch (v->type) {
    case PRISM_COL_BOOL:
        *iv = v->values ? (((const uint8_t *)v->values)[i / 8] >> (i % 8)) & 1 : 0;
        break;
    case PRISM_COL_INT8: *iv = ((const int8_t *)v->values)[i]; break;
    case PRISM_COL_INT16: *iv = ((const int16_t *)v->values)[i]; break;
    case PRISM_COL_INT32: *iv = ((const int32_t *)v->values)[i]; break;
    case PRISM_COL_INT64: *iv = ((const int64_t *)v->values)[i]; break;
    case PRISM_COL_UINT8: *iv = ((const uint8_t *)v->values)[i]; break;
    case PRISM_COL_UINT16: *iv = ((const uint16_t *)v->values)[i]; break;
    case PRISM_COL_UINT32: *iv = ((const uint32_t *)v->values)[i]; break;
    case PRISM_COL_UINT64: /* above 2^63 compared as doubles */
        if (((const uint64_t *)v->values)[i] > (uint64_t)INT64_MAX) {
            *is_int = false;
            *dv = (double)((const uint64_t *)v->values)[i];
        } else {
            *iv = (int64_t)((const uint64_t *)v->values)[i];
        }
        break;
    case PRISM_COL_FLOAT32:
        *is_int = false;
        *dv = ((const float *)v->values)[i];
        break;
    case PRISM_COL_FLOAT64:
        *is_int = false;
        *dv = ((const double *)v->values)[i];
        break;
    case PRISM_COL_UTF8:
    case PRISM_COL_BINARY: {
        const int32_t *off = v->values;
        *bytes = v->data + off[i];
        *len = (size_t)(off[i + 1] - off[i]);
        return 1;
    }
    default: return -1;
    }
    if (*is_int)
        *dv = (double)*iv;
    return 0;
}

/* Two values of key columns: numbers by value (ints exactly), bytes as
 * memcmp (UTF-8 in code point order), a number before bytes. NaN sorts last
 * among numbers. */
static int cmp_values(const prism_column_view *a, size_t ra, const prism_column_view *b, size_t rb)
{
    int64_t ia = 0, ib = 0;
    double da = 0, db = 0;
    bool inta, intb;
    const uint8_t *pa = NULL, *pb = NULL;
    size_t la = 0, lb = 0;
    int ka = value_at(a, ra, &ia, &da, &inta, &pa, &la);
    int kb = value_at(b, rb, &ib, &db, &intb, &pb, &lb);
    if (ka != kb)
        return ka < kb ? -1 : 1;
    if (ka == 1) {
        int c = memcmp(pa, pb, la < lb ? la : lb);
        return c ? (c < 0 ? -1 : 1) : la < lb ? -1 : la > lb;
    }
    if (inta && intb)
        return ia < ib ? -1 : ia > ib;
    if (isnan(da) || isnan(db))
        return isnan(da) - isnan(db);
    return da < db ? -1 : da > db;
}

/* Row `ra` of block `a` against row `rb` of block `b` in the sort order:
 * each key in turn, descending flipping the values' order; nulls last. */
static int cmp_rows(const keyset *ks, size_t a, size_t ra, size_t b, size_t rb)
{
    for (size_t k = 0; k < ks->n; k++) {
        const prism_column_view *va = &ks->view[a * ks->n + k], *vb = &ks->view[b * ks->n + k];
        bool na = is_null(va, ra), nb = is_null(vb, rb);
        if (na || nb) {
            if (na != nb)
                return na ? 1 : -1;
            continue;
        }
        int c = cmp_values(va, ra, vb, rb);
        if (c)
            return ks->descending ? -c : c;
    }
    return 0;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

/* The hash of row `r`'s key: equal keys (by cmp_values) hash equal. */
static uint64_t hash_row(const keyset *ks, size_t block, size_t r)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t k = 0; k < ks->n; k++) {
        const prism_column_view *v = &ks->view[block * ks->n + k];
        int64_t iv;
        double dv = 0;
        bool is_int;
        const uint8_t *bytes = NULL;
        size_t len = 0;
        if (is_null(v, r)) {
            h = fnv(h, "\0n", 2);
            continue;
        }
        if (value_at(v, r, &iv, &dv, &is_int, &bytes, &len) == 1) {
            h = fnv(fnv(h, "s", 1), bytes, len);
        } else { /* as a double: 1 and 1.0 are one key */
            if (dv == 0)
                dv = 0; /* -0.0 */
            h = fnv(fnv(h, "d", 1), &dv, sizeof dv);
        }
    }
    return h;
}

/* The key columns of `blks` (views into them). */
static int keyset_open(keyset *ks, const json_t *key, bool descending, prism_block *const *blks,
                       size_t nblks, char *err, size_t n)
{
    ks->n = json_array_size(key);
    ks->descending = descending;
    ks->view = calloc(ks->n * (nblks ? nblks : 1), sizeof *ks->view);
    if (!ks->view) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    for (size_t b = 0; b < nblks; b++)
        for (size_t k = 0; k < ks->n; k++) {
            const char *name = json_string_value(json_array_get(key, k));
            long col = prism_block_column_index(blks[b], name);
            prism_column_view *v = &ks->view[b * ks->n + k];
            if (col < 0 || prism_block_column(blks[b], (size_t)col, v) != PRISM_BLOCK_OK) {
                snprintf(err, n, "no column \"%.128s\" to key on", name);
                return -1;
            }
            if (v->type == PRISM_COL_TENSOR) {
                snprintf(err, n, "column \"%.128s\" is a tensor: keys are numbers or strings",
                         name);
                return -1;
            }
        }
    return 0;
}

/* Sorting a block's rows (ties by row, so the order is deterministic). */
typedef struct sort_ctx {
    const keyset *ks;
} sort_ctx;
static _Thread_local sort_ctx sort_by;

static int cmp_entry(const void *x, const void *y)
{
    const size_t *a = x, *b = y; /* entries: pairs {block, row} */
    int c = cmp_rows(sort_by.ks, a[0], a[1], b[0], b[1]);
    if (c)
        return c;
    return a[0] != b[0] ? (a[0] < b[0] ? -1 : 1) : a[1] < b[1] ? -1 : a[1] > b[1];
}

/* Row order of `rows` rows of block 0 sorted by `ks`: `order` gets the rows. */
static int sorted_rows(const keyset *ks, size_t rows, size_t *order)
{
    size_t *pairs = malloc((rows ? rows : 1) * 2 * sizeof *pairs);
    if (!pairs)
        return -1;
    for (size_t i = 0; i < rows; i++) {
        pairs[2 * i] = 0;
        pairs[2 * i + 1] = i;
    }
    sort_by.ks = ks;
    qsort(pairs, rows, 2 * sizeof *pairs, cmp_entry);
    for (size_t i = 0; i < rows; i++)
        order[i] = pairs[2 * i + 1];
    free(pairs);
    return 0;
}

/* ---------- returns ---------- */

static const char *node_id(void)
{
    const char *node = getenv("PRISM_NODE_ID");
    return node && strspn(node, "0123456789abcdefABCDEF-_.") == strlen(node) ? node : "";
}

/* The reduce's output (taken) and its stats. */
prism_status data_finish_block(prism_task_ctx *ctx, prism_block *b, prism_value **returns,
                               size_t nreturns)
{
    char stats[256];
    snprintf(stats, sizeof stats, "{\"rows\":%zu,\"bytes\":%zu,\"skipped\":0,\"node\":\"%.64s\"}",
             prism_block_rows(b), prism_block_nbytes(b), node_id());
    returns[0] = data_value_of_block(b);
    if (nreturns > 1)
        returns[1] = prism_value_json(stats);
    if (!returns[0] || (nreturns > 1 && !returns[1]))
        return prism_task_fail(ctx, "out of memory");
    return PRISM_OK;
}

/* ---------- map ---------- */

/* Sort: where each row of `b` falls among the range boundaries, P - 1
 * rows at even steps of the sorted sample (the concatenated samples, the
 * same in every map task: each cuts at the same keys). A row equal to a
 * boundary goes above it, so equal keys meet in one range. */
static int range_parts(const a2a_prog *p, prism_block *b, prism_block *const *samples,
                       size_t nsamples, size_t *part, char *err, size_t n)
{
    prism_block *pair[2] = {NULL, b};
    keyset ks = {0};
    size_t rows = prism_block_rows(b), ns = 0, *order = NULL, *bound = NULL;
    int rc = 0;
    if (nsamples && prism_block_concat(samples, nsamples, &pair[0], err, n) != PRISM_BLOCK_OK)
        rc = -1;
    ns = pair[0] ? prism_block_rows(pair[0]) : 0;
    if (rc == 0 && ns == 0) { /* nothing sampled: no row either */
        for (size_t i = 0; i < rows; i++)
            part[i] = 0;
        prism_block_destroy(pair[0]);
        return 0;
    }
    if (rc == 0)
        rc = keyset_open(&ks, json_object_get(p->spec, "key"),
                         json_is_true(json_object_get(p->spec, "descending")), pair, 2, err, n);
    if (rc == 0 && (!(order = malloc(ns * sizeof *order)) ||
                    !(bound = malloc(p->parts * sizeof *bound)) || sorted_rows(&ks, ns, order))) {
        snprintf(err, n, "out of memory");
        rc = -1;
    }
    for (size_t j = 1; rc == 0 && j < p->parts; j++)
        bound[j - 1] = order[j * ns / p->parts];
    for (size_t i = 0; rc == 0 && i < rows; i++) {
        size_t a = 0, z = p->parts - 1; /* the boundaries at or below the row */
        while (a < z) {
            size_t m = a + (z - a) / 2;
            if (cmp_rows(&ks, 0, bound[m], 1, i) <= 0)
                a = m + 1;
            else
                z = m;
        }
        part[i] = a;
    }
    free(order);
    free(bound);
    free(ks.view);
    prism_block_destroy(pair[0]);
    return rc;
}

/* Which part each row goes to. */
static int assign_parts(const a2a_prog *p, uint64_t index, prism_block *b,
                        prism_block *const *samples, size_t nsamples, size_t *part, char *err,
                        size_t n)
{
    size_t rows = prism_block_rows(b);
    if (!strcmp(p->op, "sort"))
        return range_parts(p, b, samples, nsamples, part, err, n);
    if (!strcmp(p->op, "groupby") || !strcmp(p->op, "map_groups")) {
        keyset ks = {0};
        int rc = keyset_open(&ks, json_object_get(p->spec, "key"), false, &b, 1, err, n);
        for (size_t i = 0; rc == 0 && i < rows; i++)
            part[i] = (size_t)(hash_row(&ks, 0, i) % p->parts);
        free(ks.view);
        return rc;
    }
    uint64_t s = p->seed ^ (index * 0x632be59bd9b4e019ULL);
    for (size_t i = 0; i < rows; i++)
        part[i] = (size_t)(mix64(&s) % p->parts);
    return 0;
}

/* Sort's sample of one block: its key columns at even steps, about one row
 * in 256 (at least 16, at most SORT_SAMPLES_PER_PART a part). */
static int sample_keys(const a2a_prog *p, prism_block *b, prism_block **out, char *err, size_t n)
{
    const json_t *key = json_object_get(p->spec, "key");
    size_t rows = prism_block_rows(b), k = rows / 256, nk = json_array_size(key);
    if (k < 16)
        k = 16;
    if (k > SORT_SAMPLES_PER_PART * p->parts)
        k = SORT_SAMPLES_PER_PART * p->parts;
    if (k > rows)
        k = rows;
    const char **names = calloc(nk + 1, sizeof *names);
    size_t *at = malloc((k ? k : 1) * sizeof *at);
    prism_block *sel = NULL;
    for (size_t i = 0; names && i < nk; i++)
        names[i] = json_string_value(json_array_get(key, i));
    for (size_t j = 0; at && j < k; j++)
        at[j] = (size_t)((double)rows * ((double)j + 0.5) / (double)k);
    int rc = 0;
    prism_block_status st = names && at ? prism_block_select(b, names, nk, &sel)
                                        : PRISM_BLOCK_ENOMEM;
    if (st == PRISM_BLOCK_ESCHEMA) {
        size_t i = 0;
        while (i + 1 < nk && prism_block_column_index(b, names[i]) >= 0)
            i++;
        snprintf(err, n, "no column \"%.128s\" to key on", names[i]);
        rc = -1;
    } else if (st != PRISM_BLOCK_OK || data_block_take_rows(sel, at, k, out) != PRISM_BLOCK_OK) {
        snprintf(err, n, "out of memory");
        rc = -1;
    }
    prism_block_destroy(sel);
    free(names);
    free(at);
    return rc;
}

/* data_a2a_map(program, task, block, sample...) -> [part 0, ..., part P-1,
 * stats]: task is {"index": m, "take": n|null, "sample": bool}. Sort first
 * samples every block ("sample": true -> [keys, stats]), then cuts each at
 * the boundaries the samples (its later arguments) give. With a fused
 * stage in the program, the block is that stage's output on the other
 * arguments (a split, or a bundle of blocks and "take" a list). */
static int group_block(const a2a_prog *p, prism_block *b, bool partial, prism_block **out,
                       char *err, size_t n);

prism_status data_a2a_map(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                          prism_value **returns, size_t nreturns)
{
    a2a_prog p = {0};
    char err[ERR_LEN] = "";
    json_t *task =
        nargs >= 3 && args[1]->kind == PRISM_VALUE_JSON ? json_loads(args[1]->text, 0, NULL) : NULL;
    prism_block *b = NULL;
    json_t *take = json_object_get(task, "take");
    int64_t take_rows = json_is_integer(take) ? json_integer_value(take) : -1;
    const json_t *stage = NULL;
    size_t skipped = 0;
    if (task && prog_load(args[0], &p, err, sizeof err) == 0 &&
        (stage = json_object_get(p.doc, "stage"))) {
        /* the stage fused into the maps makes the block from the rest */
        if (!(b = data_run_stage(ctx, stage, args + 2, nargs - 2, take, &skipped, err,
                                 sizeof err))) {
            json_decref(task);
            json_decref(p.doc);
            return prism_task_fail(ctx, "%s", err);
        }
        take_rows = -1;
    } else if (!task || *err || !(b = data_block_of_value(args[2], err, sizeof err))) {
        json_decref(task);
        json_decref(p.doc);
        return prism_task_fail(ctx, "data_a2a_map takes a program, a task and a block%s%s",
                               *err ? ": " : "", err);
    }
    bool sample = json_is_true(json_object_get(task, "sample"));
    size_t nparts = sample ? 1 : p.parts, nsamples = stage ? 0 : nargs - 3;
    uint64_t index = (uint64_t)json_integer_value(json_object_get(task, "index"));
    json_decref(task);
    if (nreturns != nparts + 1) {
        prism_block_destroy(b);
        json_decref(p.doc);
        return prism_task_fail(ctx, "data_a2a_map: %zu returns for %zu parts", nreturns, nparts);
    }
    if (take_rows >= 0 && (size_t)take_rows < prism_block_rows(b)) {
        /* flat once, not once per part */
        prism_block *cut = NULL, *own = NULL;
        if (prism_block_slice(b, 0, (size_t)take_rows, &cut) == PRISM_BLOCK_OK)
            data_block_flat(cut, &own);
        prism_block_destroy(cut);
        prism_block_destroy(b);
        b = own;
    }
    int pre = 0;
    if (b && !sample && !strcmp(p.op, "groupby")) { /* its groups' partial aggregates */
        prism_block *partial = NULL;
        pre = group_block(&p, b, true, &partial, err, sizeof err);
        prism_block_destroy(b);
        b = partial;
    }
    size_t rows = b ? prism_block_rows(b) : 0;
    size_t *part = malloc((rows ? rows : 1) * sizeof *part);
    size_t *count = calloc(nparts, sizeof *count), *start = calloc(nparts + 1, sizeof *start);
    size_t *order = malloc((rows ? rows : 1) * sizeof *order);
    prism_block **samples = calloc(nsamples + 1, sizeof *samples);
    json_t *rows_j = json_array(), *bytes_j = json_array();
    int rc = pre == 0 && b && part && count && start && order && samples && rows_j && bytes_j ? 0
                                                                                              : -1;
    if (rc != 0 && !*err)
        snprintf(err, sizeof err, "out of memory");
    for (size_t k = 0; rc == 0 && k < nsamples; k++)
        if (!(samples[k] = data_block_of_value(args[3 + k], err, sizeof err)))
            rc = -1;
    prism_block *keys = NULL;
    if (rc == 0 && sample) {
        rc = sample_keys(&p, b, &keys, err, sizeof err);
    } else if (rc == 0 &&
               (rc = assign_parts(&p, index, b, samples, nsamples, part, err, sizeof err)) == 0) {
        /* a counting sort of the rows by part, keeping their order */
        for (size_t i = 0; i < rows; i++)
            count[part[i]]++;
        for (size_t k = 0; k < nparts; k++)
            start[k + 1] = start[k] + count[k];
        memset(count, 0, nparts * sizeof *count);
        for (size_t i = 0; i < rows; i++)
            order[start[part[i]] + count[part[i]]++] = i;
    }
    for (size_t k = 0; rc == 0 && k < nparts; k++) {
        prism_block *out = keys;
        keys = NULL;
        if (!out && data_block_take_rows(b, order + start[k], start[k + 1] - start[k], &out) !=
                        PRISM_BLOCK_OK) {
            snprintf(err, sizeof err, "out of memory");
            rc = -1;
            break;
        }
        json_array_append_new(rows_j, json_integer((json_int_t)prism_block_rows(out)));
        json_array_append_new(bytes_j, json_integer((json_int_t)prism_block_nbytes(out)));
        if (!(returns[k] = data_value_of_block(out))) {
            snprintf(err, sizeof err, "out of memory");
            rc = -1;
        }
    }
    json_t *stats = rc == 0 ? json_pack("{sOsOsIss}", "rows", rows_j, "bytes", bytes_j, "skipped",
                                        (json_int_t)skipped, "node", node_id())
                            : NULL;
    char *text = stats ? json_dumps(stats, JSON_COMPACT) : NULL;
    if (rc == 0 && !(returns[nparts] = text ? prism_value_json(text) : NULL)) {
        snprintf(err, sizeof err, "out of memory");
        rc = -1;
    }
    free(text);
    json_decref(stats);
    json_decref(rows_j);
    json_decref(bytes_j);
    for (size_t k = 0; samples && k < nsamples; k++)
        prism_block_destroy(samples[k]);
    free(samples);
    free(part);
    free(count);
    free(start);
    free(order);
    prism_block_destroy(keys);
    prism_block_destroy(b);
    json_decref(p.doc);
    return rc == 0 ? PRISM_OK : prism_task_fail(ctx, "%s", err);
}

/* ---------- merge ---------- */

/* data_a2a_merge(task, parts...) -> [merged 0, ..., merged P-1, stats]:
 * task is {"maps": K, "parts": P}; the parts are every part of K map
 * outputs, map by map (K * P of them, the maps in the input's order).
 * Merged part j joins part j of each map in that order, what the reduce
 * would have joined: the result does not change, the reduce reads fewer,
 * larger pieces. Stats as a map's. */
prism_status data_a2a_merge(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                            prism_value **returns, size_t nreturns)
{
    char err[ERR_LEN] = "";
    json_t *task = nargs >= 1 && prism_value_kind_of(args[0]) == PRISM_VALUE_JSON
                       ? json_loads(prism_value_json_text(args[0]), 0, NULL)
                       : NULL;
    size_t k = (size_t)json_integer_value(json_object_get(task, "maps"));
    size_t np = (size_t)json_integer_value(json_object_get(task, "parts"));
    json_decref(task);
    if (k == 0 || np == 0 || nargs != 1 + k * np || nreturns != np + 1)
        return prism_task_fail(ctx,
                               "data_a2a_merge takes a task and %zu parts of %zu maps, "
                               "and returns %zu merged parts and stats",
                               np, k, np);
    prism_block **in = calloc(k, sizeof *in);
    json_t *rows_j = json_array(), *bytes_j = json_array();
    int rc = in && rows_j && bytes_j ? 0 : -1;
    for (size_t j = 0; rc == 0 && j < np; j++) {
        size_t got = 0;
        for (; got < k; got++)
            if (!(in[got] = data_block_of_value(args[1 + got * np + j], err, sizeof err))) {
                rc = -2;
                break;
            }
        prism_block *out = NULL;
        if (rc == 0 && prism_block_concat(in, k, &out, err, sizeof err) != PRISM_BLOCK_OK)
            rc = -2;
        for (size_t m = 0; m < got; m++)
            prism_block_destroy(in[m]);
        if (rc != 0)
            break;
        json_array_append_new(rows_j, json_integer((json_int_t)prism_block_rows(out)));
        json_array_append_new(bytes_j, json_integer((json_int_t)prism_block_nbytes(out)));
        if (!(returns[j] = data_value_of_block(out)))
            rc = -1;
    }
    json_t *stats = rc == 0 ? json_pack("{sOsOsiss}", "rows", rows_j, "bytes", bytes_j, "skipped",
                                        0, "node", node_id())
                            : NULL;
    char *text = stats ? json_dumps(stats, JSON_COMPACT) : NULL;
    if (rc == 0 && !(returns[np] = text ? prism_value_json(text) : NULL))
        rc = -1;
    free(text);
    json_decref(stats);
    json_decref(rows_j);
    json_decref(bytes_j);
    free(in);
    if (rc == -1)
        snprintf(err, sizeof err, "out of memory");
    return rc == 0 ? PRISM_OK : prism_task_fail(ctx, "merge: %s", err);
}

/* ---------- reduce ---------- */

/* Sort: the range's rows (part r of every map) in order. */
static int reduce_sort(const a2a_prog *p, prism_block *b, prism_block **out, char *err, size_t n)
{
    keyset ks = {0};
    size_t rows = prism_block_rows(b);
    size_t *order = malloc((rows ? rows : 1) * sizeof *order);
    int rc = order ? 0 : -1;
    if (rc == 0 &&
        keyset_open(&ks, json_object_get(p->spec, "key"),
                    json_is_true(json_object_get(p->spec, "descending")), &b, 1, err, n) != 0)
        rc = -2;
    if (rc == 0 && (sorted_rows(&ks, rows, order) != 0 ||
                    data_block_take_rows(b, order, rows, out) != PRISM_BLOCK_OK))
        rc = -1;
    if (rc == -1)
        snprintf(err, n, "out of memory");
    free(order);
    free(ks.view);
    return rc == 0 ? 0 : -1;
}

/* ---------- groupby: aggregates in two steps ----------
 *
 * Each map aggregates the groups of its own block into partial rows, one a
 * group: the key's columns, then for each aggregation "fn(on)#n" (the rows
 * counted), except for count "fn(on)#v" (a sum, min, max, or a mean for std)
 * and for std "fn(on)#m2" (the sum of squared deviations, Welford's). So at
 * most one row a group leaves a map rather than every row, as Dask's and
 * Spark's partial aggregation does. The reduce merges a group's partial rows
 * into the final "fn(on)" ("count()" for a count of rows). */

typedef struct agg_stats {
    size_t n;
    int64_t isum, imin, imax;
    double fsum, dmin, dmax, mean, m2;
} agg_stats;

/* The non-null values of rows order[first..last) of column `v`: their
 * count and sums, and with `full` their minimum, maximum, mean and m2 too
 * (Welford's update divides once a value: only min, max and std need it). */
static void stats_of(const prism_column_view *v, const size_t *order, size_t first, size_t last,
                     bool full, agg_stats *s)
{
    memset(s, 0, sizeof *s);
    if (v->type == PRISM_COL_FLOAT64 && !v->null_count) { /* the common case, without a switch */
        const double *d = (const double *)v->values + v->offset;
        if (!full) {
            double sum = 0;
            for (size_t i = first; i < last; i++)
                sum += d[order[i]];
            s->n = last - first;
            s->fsum = sum;
            return;
        }
        for (size_t i = first; i < last; i++) {
            double dv = d[order[i]];
            s->n++;
            s->fsum += dv;
            if (s->n == 1 || dv < s->dmin)
                s->dmin = dv;
            if (s->n == 1 || dv > s->dmax)
                s->dmax = dv;
            double dd = dv - s->mean;
            s->mean += dd / (double)s->n;
            s->m2 += dd * (dv - s->mean);
        }
        return;
    }
    for (size_t i = first; i < last; i++) {
        int64_t iv = 0;
        double dv = 0;
        bool is_int;
        const uint8_t *bytes;
        size_t len;
        if (is_null(v, order[i]) || value_at(v, order[i], &iv, &dv, &is_int, &bytes, &len) != 0)
            continue;
        s->n++;
        s->isum = (int64_t)((uint64_t)s->isum + (uint64_t)iv);
        s->fsum += dv;
        if (s->n == 1 || iv < s->imin)
            s->imin = iv;
        if (s->n == 1 || iv > s->imax)
            s->imax = iv;
        if (s->n == 1 || dv < s->dmin)
            s->dmin = dv;
        if (s->n == 1 || dv > s->dmax)
            s->dmax = dv;
        double d = dv - s->mean; /* Welford */
        s->mean += d / (double)s->n;
        s->m2 += d * (dv - s->mean);
    }
}

/* Appends a column `name` of `rows` fixed-width values to *blk. */
static int with_fixed(prism_block **blk, const char *name, prism_coltype t, const void *values,
                      size_t rows, char *err, size_t n)
{
    prism_block_schema *s = NULL;
    prism_block_builder *bld = NULL;
    prism_block *col = NULL, *next = NULL;
    prism_block_status st = prism_block_schema_create(&s);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_schema_add(s, name, t);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_create(s, &bld);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_set_fixed(bld, 0, values, rows, NULL);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_finish(bld, &col, err, n);
    if (st == PRISM_BLOCK_OK)
        st = data_block_with_column(*blk, name, col, &next, err, n);
    prism_block_builder_destroy(bld);
    prism_block_schema_destroy(s);
    prism_block_destroy(col);
    if (st != PRISM_BLOCK_OK) {
        if (!*err)
            snprintf(err, n, "%s: %s", name, prism_block_strerror(st));
        return -1;
    }
    prism_block_destroy(*blk);
    *blk = next;
    return 0;
}

/* One aggregation's partial columns for `ngroups` groups of rows
 * order[starts[g]..starts[g+1]) of `b`. */
static int partial_columns(prism_block **keys, prism_block *b, const char *fn, const char *on,
                           const size_t *order, const size_t *starts, size_t ngroups, char *err,
                           size_t n)
{
    prism_column_view v = {0};
    long col = on ? prism_block_column_index(b, on) : -1;
    if (on && (col < 0 || prism_block_column(b, (size_t)col, &v) != PRISM_BLOCK_OK ||
               v.type < PRISM_COL_BOOL || v.type > PRISM_COL_FLOAT64)) {
        snprintf(err, n, "%s(%.128s): %s", fn, on,
                 col < 0 ? "no such column" : "the column is not numeric");
        return -1;
    }
    bool ints = on && v.type <= PRISM_COL_UINT64;
    bool int_v = ints && (!strcmp(fn, "sum") || !strcmp(fn, "min") || !strcmp(fn, "max"));
    bool has_v = strcmp(fn, "count") != 0, has_m2 = !strcmp(fn, "std");
    bool full = has_m2 || !strcmp(fn, "min") || !strcmp(fn, "max");
    int64_t *cnt = malloc((ngroups ? ngroups : 1) * sizeof *cnt);
    int64_t *iv = malloc((ngroups ? ngroups : 1) * sizeof *iv);
    double *dv = malloc((ngroups ? ngroups : 1) * sizeof *dv);
    double *m2 = malloc((ngroups ? ngroups : 1) * sizeof *m2);
    int rc = cnt && iv && dv && m2 ? 0 : -1;
    if (rc != 0)
        snprintf(err, n, "out of memory");
    for (size_t g = 0; rc == 0 && g < ngroups; g++) {
        agg_stats st = {.n = starts[g + 1] - starts[g]};
        if (on)
            stats_of(&v, order, starts[g], starts[g + 1], full, &st);
        cnt[g] = (int64_t)st.n;
        iv[g] = !strcmp(fn, "min") ? st.imin : !strcmp(fn, "max") ? st.imax : st.isum;
        dv[g] = !strcmp(fn, "min")   ? st.dmin
                : !strcmp(fn, "max") ? st.dmax
                : !strcmp(fn, "std") ? st.mean
                                     : st.fsum;
        m2[g] = st.m2;
    }
    char name[300];
    snprintf(name, sizeof name, "%s(%s)#n", fn, on ? on : "");
    if (rc == 0)
        rc = with_fixed(keys, name, PRISM_COL_INT64, cnt, ngroups, err, n);
    snprintf(name, sizeof name, "%s(%s)#v", fn, on ? on : "");
    if (rc == 0 && has_v)
        rc = with_fixed(keys, name, int_v ? PRISM_COL_INT64 : PRISM_COL_FLOAT64,
                        int_v ? (const void *)iv : (const void *)dv, ngroups, err, n);
    snprintf(name, sizeof name, "%s(%s)#m2", fn, on ? on : "");
    if (rc == 0 && has_m2)
        rc = with_fixed(keys, name, PRISM_COL_FLOAT64, m2, ngroups, err, n);
    free(cnt);
    free(iv);
    free(dv);
    free(m2);
    return rc;
}

/* A typed view of partial column "fn(on)#suffix" of `b`, or NULL. */
static const void *partial_of(prism_block *b, const char *fn, const char *on, const char *suffix,
                              prism_coltype *type)
{
    char name[300];
    snprintf(name, sizeof name, "%s(%s)#%s", fn, on ? on : "", suffix);
    long col = prism_block_column_index(b, name);
    prism_column_view v = {0};
    if (col < 0 || prism_block_column(b, (size_t)col, &v) != PRISM_BLOCK_OK ||
        (v.type != PRISM_COL_INT64 && v.type != PRISM_COL_FLOAT64) || v.validity)
        return NULL;
    *type = v.type;
    return (const char *)v.values + v.offset * 8;
}

/* One aggregation's final column "fn(on)" from the partial rows
 * order[starts[g]..starts[g+1]) of each group. */
static int merge_column(prism_block **keys, prism_block *b, const char *fn, const char *on,
                        const size_t *order, const size_t *starts, size_t ngroups, char *err,
                        size_t n)
{
    prism_coltype tn = PRISM_COL_INT64, tv = PRISM_COL_FLOAT64, tm = PRISM_COL_FLOAT64;
    const int64_t *cnt = partial_of(b, fn, on, "n", &tn);
    const void *v = strcmp(fn, "count") ? partial_of(b, fn, on, "v", &tv) : NULL;
    const double *m2 = !strcmp(fn, "std") ? partial_of(b, fn, on, "m2", &tm) : NULL;
    if (!cnt || tn != PRISM_COL_INT64 || (strcmp(fn, "count") && !v) ||
        (!strcmp(fn, "std") && !m2)) {
        snprintf(err, n, "%s(%.128s): the maps' partial aggregates are missing", fn, on ? on : "");
        return -1;
    }
    bool ints = v && tv == PRISM_COL_INT64;
    bool int_out = !strcmp(fn, "count") || ints;
    const int64_t *vi = v;
    const double *vd = v;
    char name[300];
    snprintf(name, sizeof name, "%s(%s)", fn, on ? on : "");
    prism_block_schema *s = NULL;
    prism_block_builder *bld = NULL;
    prism_block *colb = NULL, *next = NULL;
    prism_block_status st = prism_block_schema_create(&s);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_schema_add(s, name, int_out ? PRISM_COL_INT64 : PRISM_COL_FLOAT64);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_create(s, &bld);
    for (size_t g = 0; st == PRISM_BLOCK_OK && g < ngroups; g++) {
        int64_t total = 0, isum = 0, iext = 0;
        double fsum = 0, dext = 0, mean = 0, sq = 0;
        bool any = false;
        for (size_t i = starts[g]; i < starts[g + 1]; i++) {
            size_t r = order[i];
            int64_t k = cnt[r];
            if (k <= 0)
                continue;
            if (!strcmp(fn, "std")) { /* Chan's merge of two (n, mean, m2) */
                double d = vd[r] - mean, nt = (double)(total + k);
                mean += d * (double)k / nt;
                sq += m2[r] + d * d * (double)total * (double)k / nt;
            } else if (ints) {
                isum = (int64_t)((uint64_t)isum + (uint64_t)vi[r]);
                if (!any || (!strcmp(fn, "min") ? vi[r] < iext : vi[r] > iext))
                    iext = vi[r];
            } else if (v) {
                fsum += vd[r];
                if (!any || (!strcmp(fn, "min") ? vd[r] < dext : vd[r] > dext))
                    dext = vd[r];
            }
            total += k;
            any = true;
        }
        bool ext = !strcmp(fn, "min") || !strcmp(fn, "max");
        if (!strcmp(fn, "count"))
            st = prism_block_builder_append_int(bld, 0, total);
        else if (!any || (!strcmp(fn, "std") && total < 2))
            st = prism_block_builder_append_null(bld, 0);
        else if (!strcmp(fn, "std"))
            st = prism_block_builder_append_float(bld, 0, sqrt(sq / (double)(total - 1)));
        else if (!strcmp(fn, "mean"))
            st = prism_block_builder_append_float(bld, 0, fsum / (double)total);
        else if (ints)
            st = prism_block_builder_append_int(bld, 0, ext ? iext : isum);
        else
            st = prism_block_builder_append_float(bld, 0, ext ? dext : fsum);
    }
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_finish(bld, &colb, err, n);
    if (st == PRISM_BLOCK_OK)
        st = data_block_with_column(*keys, name, colb, &next, err, n);
    prism_block_builder_destroy(bld);
    prism_block_schema_destroy(s);
    prism_block_destroy(colb);
    if (st != PRISM_BLOCK_OK) {
        if (!*err)
            snprintf(err, n, "%s: %s", name, prism_block_strerror(st));
        return -1;
    }
    prism_block_destroy(*keys);
    *keys = next;
    return 0;
}

/* The groups of `rows` rows of block 0 by a hash table: `order` lists the
 * rows group by group (groups in the order first seen, rows in order),
 * group g being order[starts[g]..starts[g+1]). Cheaper than sorting a whole
 * block by key with a comparison per step. */
static int hashed_groups(const keyset *ks, size_t rows, size_t *order, size_t *starts,
                         size_t *ngroups)
{
    size_t cap = 16;
    while (cap < 2 * rows)
        cap *= 2;
    size_t *slot = malloc(cap * sizeof *slot);                 /* group + 1, 0: empty */
    size_t *first = malloc((rows ? rows : 1) * sizeof *first); /* a group's first row */
    size_t *gid = malloc((rows ? rows : 1) * sizeof *gid);
    size_t *count = calloc(rows + 1, sizeof *count);
    if (!slot || !first || !gid || !count) {
        free(slot);
        free(first);
        free(gid);
        free(count);
        return -1;
    }
    memset(slot, 0, cap * sizeof *slot);
    size_t groups = 0;
    /* one int64 key without nulls: hashed and compared as it is */
    const int64_t *ik = ks->n == 1 && ks->view[0].type == PRISM_COL_INT64 && !ks->view[0].null_count
                            ? (const int64_t *)ks->view[0].values + ks->view[0].offset
                            : NULL;
    for (size_t r = 0; r < rows; r++) {
        uint64_t seed = ik ? (uint64_t)ik[r] : 0;
        size_t i = (size_t)(ik ? mix64(&seed) : hash_row(ks, 0, r)) & (cap - 1);
        while (slot[i] && (ik ? ik[first[slot[i] - 1]] != ik[r]
                              : cmp_rows(ks, 0, first[slot[i] - 1], 0, r) != 0))
            i = (i + 1) & (cap - 1);
        if (!slot[i]) {
            first[groups] = r;
            slot[i] = ++groups;
        }
        gid[r] = slot[i] - 1;
        count[gid[r]]++;
    }
    starts[0] = 0;
    for (size_t g = 0; g < groups; g++)
        starts[g + 1] = starts[g] + count[g];
    memset(count, 0, (groups + 1) * sizeof *count);
    for (size_t r = 0; r < rows; r++)
        order[starts[gid[r]] + count[gid[r]]++] = r;
    *ngroups = groups;
    free(slot);
    free(first);
    free(gid);
    free(count);
    return 0;
}

/* Groupby, one row a group of `b`'s rows: the key columns, then for each
 * aggregation its partial columns (`partial`, a map) or its final column
 * (a reduce, from the maps' partial rows). */
static int group_block(const a2a_prog *p, prism_block *b, bool partial, prism_block **out,
                       char *err, size_t n)
{
    const json_t *key = json_object_get(p->spec, "key"), *aggs = json_object_get(p->spec, "aggs");
    size_t rows = prism_block_rows(b), ngroups = 0;
    keyset ks = {0};
    size_t *order = malloc((rows ? rows : 1) * sizeof *order);
    size_t *starts = malloc((rows + 1) * sizeof *starts);
    const char **names = calloc(json_array_size(key) + 1, sizeof *names);
    prism_block *keys = NULL;
    int rc = !order || !starts || !names                   ? -1
             : keyset_open(&ks, key, false, &b, 1, err, n) ? -2
                                                           : 0;
    if (rc == 0 && partial) { /* a map's whole block: hashed, in first-seen order */
        if (hashed_groups(&ks, rows, order, starts, &ngroups) != 0)
            rc = -1;
    } else if (rc == 0) { /* the reduce's partial rows: its output sorted by key */
        if (sorted_rows(&ks, rows, order) != 0)
            rc = -1;
        for (size_t i = 0; rc == 0 && i < rows; i++)
            if (i == 0 || cmp_rows(&ks, 0, order[i - 1], 0, order[i]) != 0)
                starts[ngroups++] = i;
        if (starts)
            starts[ngroups] = rows;
    }
    for (size_t k = 0; rc == 0 && k < json_array_size(key); k++)
        names[k] = json_string_value(json_array_get(key, k));
    prism_block *sel = NULL;
    if (rc == 0 && prism_block_select(b, names, json_array_size(key), &sel) != PRISM_BLOCK_OK)
        rc = -1;
    size_t *firsts = rc == 0 ? malloc((ngroups ? ngroups : 1) * sizeof *firsts) : NULL;
    for (size_t g = 0; firsts && g < ngroups; g++)
        firsts[g] = order[starts[g]];
    if (rc == 0 && (!firsts || data_block_take_rows(sel, firsts, ngroups, &keys) != PRISM_BLOCK_OK))
        rc = -1;
    prism_block_destroy(sel);
    free(firsts);
    size_t i;
    json_t *a;
    json_array_foreach(aggs, i, a) {
        if (rc != 0)
            break;
        const char *fn = json_string_value(json_object_get(a, "fn"));
        const char *on = json_string_value(json_object_get(a, "on"));
        if ((partial ? partial_columns : merge_column)(&keys, b, fn, on, order, starts, ngroups,
                                                       err, n) != 0)
            rc = -2;
    }
    if (rc == -1)
        snprintf(err, n, "out of memory");
    if (rc == 0) {
        *out = keys;
        keys = NULL;
    }
    prism_block_destroy(keys);
    free(order);
    free(starts);
    free(names);
    free(ks.view);
    return rc == 0 ? 0 : -1;
}

/* map_groups: the rows sorted by key, the package function called on each
 * group's rows (a batch), the results joined (one schema). */
static int reduce_map_groups(prism_task_ctx *ctx, const a2a_prog *p, prism_block *b,
                             prism_block **out, char *err, size_t n)
{
    const json_t *fn = json_object_get(p->spec, "fn");
    const char *pkg = json_string_value(json_object_get(fn, "package"));
    const char *function = json_string_value(json_object_get(fn, "function"));
    prism_task_fn f = pkg && function ? prism__worker_find_task(ctx, pkg, function, err, n) : NULL;
    if (!f) {
        if (!*err)
            snprintf(err, n, "\"fn\" needs a package and a function");
        return -1;
    }
    keyset ks = {0};
    size_t rows = prism_block_rows(b), k = 0;
    size_t *order = malloc((rows ? rows : 1) * sizeof *order);
    prism_block **res = calloc(rows + 1, sizeof *res);
    int rc = !order || !res                                                            ? -1
             : keyset_open(&ks, json_object_get(p->spec, "key"), false, &b, 1, err, n) ? -2
                                                                                       : 0;
    if (rc == 0 && sorted_rows(&ks, rows, order) != 0)
        rc = -1;
    for (size_t i = 0; rc == 0 && i < rows;) {
        size_t j = i + 1;
        while (j < rows && cmp_rows(&ks, 0, order[i], 0, order[j]) == 0)
            j++;
        prism_block *group = NULL;
        if (data_block_take_rows(b, order + i, j - i, &group) != PRISM_BLOCK_OK) {
            rc = -1;
            break;
        }
        res[k] = data_call_fn(ctx, f, function, group, json_object_get(fn, "args"), err, n);
        prism_block_destroy(group);
        if (!res[k]) {
            rc = -2;
            break;
        }
        if (prism_block_rows(res[k]) > 0 || k == 0) /* an empty result adds nothing */
            k++;
        else
            prism_block_destroy(res[k]);
        i = j;
    }
    if (rc == 0 && k > 1 && prism_block_rows(res[0]) == 0) { /* only the non-empty ones */
        prism_block_destroy(res[0]);
        memmove(res, res + 1, --k * sizeof *res);
    }
    if (rc == 0 && k == 0) /* no group: no row, the input's columns */
        rc = prism_block_slice(b, 0, 0, out) == PRISM_BLOCK_OK ? 0 : -1;
    else if (rc == 0 && prism_block_concat(res, k, out, err, n) != PRISM_BLOCK_OK)
        rc = -2;
    if (rc == -1)
        snprintf(err, n, "out of memory");
    for (size_t i = 0; res && i < k; i++)
        prism_block_destroy(res[i]);
    free(res);
    free(order);
    free(ks.view);
    return rc == 0 ? 0 : -1;
}

/* data_a2a_reduce(program, task, block...) -> [block, stats]: task is
 * {"index": r, "ranges": [[skip, count]...] | null}; the blocks are part r
 * of every map output (sort: every sorted block; repartition without
 * shuffle: the input blocks, each cut to its range). */
prism_status data_a2a_reduce(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                             prism_value **returns, size_t nreturns)
{
    a2a_prog p = {0};
    char err[ERR_LEN] = "";
    json_t *task =
        nargs >= 2 && args[1]->kind == PRISM_VALUE_JSON ? json_loads(args[1]->text, 0, NULL) : NULL;
    if (!task || prog_load(args[0], &p, err, sizeof err) != 0) {
        json_decref(task);
        json_decref(p.doc);
        return prism_task_fail(ctx, "data_a2a_reduce takes a program, a task and blocks%s%s",
                               *err ? ": " : "", err);
    }
    size_t r = (size_t)json_integer_value(json_object_get(task, "index"));
    const json_t *ranges = json_object_get(task, "ranges");
    size_t nin = nargs - 2, got = 0;
    prism_block **in = calloc(nin + 1, sizeof *in);
    int rc = in ? 0 : -1;
    for (; rc == 0 && got < nin; got++) {
        if (!(in[got] = data_block_of_value(args[got + 2], err, sizeof err))) {
            rc = -2;
            break;
        }
        json_t *rg = json_array_get(ranges, got);
        if (json_is_array(rg)) {
            size_t skip = (size_t)json_integer_value(json_array_get(rg, 0));
            size_t cnt = (size_t)json_integer_value(json_array_get(rg, 1));
            size_t rows = prism_block_rows(in[got]);
            prism_block *cut = NULL;
            if (skip > rows)
                skip = rows;
            if (cnt > rows - skip)
                cnt = rows - skip;
            if (prism_block_slice(in[got], skip, skip + cnt, &cut) != PRISM_BLOCK_OK)
                rc = -1;
            prism_block_destroy(in[got]);
            in[got] = cut;
        }
    }
    prism_block *b = NULL, *res = NULL;
    if (rc == 0 && nin > 0) {
        if (prism_block_concat(in, nin, &b, err, sizeof err) != PRISM_BLOCK_OK)
            rc = -2;
        if (rc == 0 && !strcmp(p.op, "sort")) {
            rc = reduce_sort(&p, b, &res, err, sizeof err) == 0 ? 0 : -2;
        } else if (rc == 0 && !strcmp(p.op, "map_groups")) {
            rc = reduce_map_groups(ctx, &p, b, &res, err, sizeof err) == 0 ? 0 : -2;
        } else if (rc == 0 && !strcmp(p.op, "groupby")) {
            rc = group_block(&p, b, false, &res, err, sizeof err) == 0 ? 0 : -2;
        } else if (rc == 0 && !strcmp(p.op, "random_shuffle")) {
            size_t rows = prism_block_rows(b);
            size_t *perm = malloc((rows ? rows : 1) * sizeof *perm);
            uint64_t s = p.seed ^ ((uint64_t)(r + 1) * 0xd1b54a32d192ed03ULL);
            for (size_t i = 0; perm && i < rows; i++)
                perm[i] = i;
            for (size_t i = rows; perm && i > 1; i--) { /* Fisher-Yates */
                size_t j = (size_t)(mix64(&s) % i), t = perm[i - 1];
                perm[i - 1] = perm[j];
                perm[j] = t;
            }
            if (!perm || data_block_take_rows(b, perm, rows, &res) != PRISM_BLOCK_OK)
                rc = -1;
            free(perm);
        } else if (rc == 0) { /* repartition: the parts joined */
            res = b;
            b = NULL;
        }
    }
    if (rc == 0 && !res)
        snprintf(err, sizeof err, "an all-to-all reduce with no input");
    if (rc == -1)
        snprintf(err, sizeof err, "out of memory");
    for (size_t i = 0; in && i < got; i++)
        prism_block_destroy(in[i]);
    free(in);
    prism_block_destroy(b);
    json_decref(task);
    json_decref(p.doc);
    if (rc != 0 || !res) {
        prism_block_destroy(res);
        return prism_task_fail(ctx, "%s", err);
    }
    return data_finish_block(ctx, res, returns, nreturns);
}
