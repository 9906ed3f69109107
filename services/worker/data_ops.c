/* The tasks of a dataset's stages (data_ops.h): a read makes a block from
 * its split, then every operator fused into the stage runs on it in turn,
 * in this one task, without a trip through the object store. */
#include "data_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prism_internal.h"
#include "task_ctx.h"

#define ERR_LEN 1536

typedef struct stage_prog {
    json_t *doc;
    json_t *ops;       /* [{"op", "name", "logical", "spec"}...] */
    int64_t row_limit; /* -1: none */
    data_skip skip;    /* the plan's skip_corrupt, and what it left out */
    bool parts;        /* an all-to-all's map: its block is cut, not returned */
} stage_prog;

static void prog_free(stage_prog *p) { json_decref(p->doc); }

static int prog_load(const prism_value *v, stage_prog *p, char *err, size_t n)
{
    p->doc = v && v->kind == PRISM_VALUE_JSON ? json_loads(v->text, 0, NULL) : NULL;
    p->ops = json_object_get(p->doc, "ops");
    json_t *lim = json_object_get(p->doc, "row_limit");
    p->row_limit = json_is_integer(lim) ? json_integer_value(lim) : -1;
    p->skip.on = json_is_true(json_object_get(p->doc, "skip_corrupt"));
    if (!json_is_array(p->ops) || json_array_size(p->ops) == 0) {
        snprintf(err, n, "the stage program must be JSON with a list of operators");
        return -1;
    }
    return 0;
}

/* "ops[3] (filter)": the operator as the plan named it. */
static void op_label(const json_t *op, char *buf, size_t n)
{
    const json_t *logical = json_object_get(op, "logical");
    json_int_t i = json_integer_value(json_array_get(logical, 0));
    const char *kind = json_string_value(json_object_get(op, "op"));
    snprintf(buf, n, "ops[%lld] (%s)", (long long)i, kind ? kind : "?");
}

/* ---------- reads ---------- */

static int read_range(const json_t *split, prism_block **out, char *err, size_t n)
{
    json_int_t start = json_integer_value(json_object_get(split, "start"));
    json_int_t end = json_integer_value(json_object_get(split, "end"));
    if (start < 0 || end < start || end - start > (json_int_t)PRISM_BLOCK_MAX_ROWS) {
        snprintf(err, n, "a bad split [%lld, %lld)", (long long)start, (long long)end);
        return -1;
    }
    size_t rows = (size_t)(end - start);
    int64_t *ids = malloc(rows * sizeof *ids + sizeof *ids);
    prism_block_schema *s = NULL;
    prism_block_builder *b = NULL;
    prism_block_status st = ids ? prism_block_schema_create(&s) : PRISM_BLOCK_ENOMEM;
    if (st == PRISM_BLOCK_OK)
        st = prism_block_schema_add(s, "id", PRISM_COL_INT64);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_create(s, &b);
    for (size_t i = 0; st == PRISM_BLOCK_OK && i < rows; i++)
        ids[i] = (int64_t)start + (int64_t)i;
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_set_fixed(b, 0, ids, rows, NULL);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_finish(b, out, err, n);
    if (st != PRISM_BLOCK_OK)
        snprintf(err, n, "cannot make the block: %s", prism_block_strerror(st));
    prism_block_builder_destroy(b);
    prism_block_schema_destroy(s);
    free(ids);
    return st == PRISM_BLOCK_OK ? 0 : -1;
}

/* Rows of from_items: an object's keys are columns; any other item is the
 * row's "item". */
static int read_items(const json_t *split, prism_block **out, char *err, size_t n)
{
    const json_t *items = json_object_get(split, "items");
    json_t *rows = json_array();
    size_t i;
    json_t *it;
    if (!json_is_array(items) || !rows) {
        json_decref(rows);
        snprintf(err, n, "a bad split: no items");
        return -1;
    }
    json_array_foreach(items, i, it)
        json_array_append_new(rows,
                              json_is_object(it) ? json_incref(it) : json_pack("{sO}", "item", it));
    char *text = json_dumps(rows, JSON_COMPACT);
    json_decref(rows);
    char why[512] = "";
    prism_block_status st =
        text ? prism_block_from_json(text, strlen(text), NULL, out, why, sizeof why)
             : PRISM_BLOCK_ENOMEM;
    free(text);
    if (st != PRISM_BLOCK_OK)
        snprintf(err, n, "the items are not rows of a block: %s%s%s", prism_block_strerror(st),
                 *why ? ": " : "", why);
    return st == PRISM_BLOCK_OK ? 0 : -1;
}

/* ---------- package functions ---------- */

static void free_value(void *ud) { prism_value_free(ud); }

/* A block of the value a package function returned (taken): read in place
 * when its bytes are 8-byte aligned, else from an aligned copy. */
static prism_block *block_of_returned(prism_value *v, char *err, size_t n)
{
    if (!v || (v->kind != PRISM_VALUE_TENSOR && v->kind != PRISM_VALUE_BYTES) ||
        (v->kind == PRISM_VALUE_TENSOR && v->dtype != PRISM_U8)) {
        prism_value_free(v);
        snprintf(err, n, "the function must return a block (uint8 tensor or bytes)");
        return NULL;
    }
    prism_block *b = NULL;
    char why[512] = "";
    prism_block_status st;
    if ((uintptr_t)v->data % 8 == 0) {
        st = prism_block_open_ex(v->data, v->len, 0, free_value, v, &b, why, sizeof why);
        if (st != PRISM_BLOCK_OK)
            prism_value_free(v);
    } else {
        void *mem = aligned_alloc(PRISM_BLOCK_ALIGN, (v->len + PRISM_BLOCK_ALIGN - 1) /
                                                             PRISM_BLOCK_ALIGN * PRISM_BLOCK_ALIGN +
                                                         PRISM_BLOCK_ALIGN);
        if (mem)
            memcpy(mem, v->data, v->len);
        st = mem ? prism_block_open_ex(mem, v->len, 0, free, mem, &b, why, sizeof why)
                 : PRISM_BLOCK_ENOMEM;
        if (st != PRISM_BLOCK_OK)
            free(mem);
        prism_value_free(v);
    }
    if (st != PRISM_BLOCK_OK) {
        snprintf(err, n, "the function returned no valid block: %s",
                 *why ? why : prism_block_strerror(st));
        return NULL;
    }
    return b;
}

/* Runs `f` on `in` (borrowed) with the operator's args; the block it returns. */
prism_block *data_call_fn(prism_task_ctx *ctx, prism_task_fn f, const char *name,
                          const prism_block *in, const json_t *args, char *err, size_t n)
{
    char *text = args ? json_dumps(args, JSON_COMPACT) : strdup("{}");
    prism_value *argv[2] = {data_value_of_block(prism_block_ref((prism_block *)in)),
                            text ? prism_value_json(text) : NULL};
    free(text);
    prism_value *ret[1] = {NULL};
    prism_block *out = NULL;
    if (!argv[0] || !argv[1]) {
        snprintf(err, n, "out of memory");
    } else {
        free(ctx->error);
        ctx->error = NULL;
        prism_status s = f(ctx, (const prism_value *const *)argv, 2, ret, 1);
        if (s != PRISM_OK) {
            snprintf(err, n, "%s failed: %s", name, ctx->error ? ctx->error : prism_status_text(s));
            prism_value_free(ret[0]);
        } else {
            char why[512] = "";
            out = block_of_returned(ret[0], why, sizeof why);
            if (!out)
                snprintf(err, n, "%s: %s", name, why);
        }
        free(ctx->error);
        ctx->error = NULL;
    }
    prism_value_free(argv[0]);
    prism_value_free(argv[1]);
    return out;
}

/* One block of `parts` (taken): the first non-empty ones concatenated. */
static prism_block *join(prism_block **parts, size_t k, char *err, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        if (prism_block_rows(parts[i]) > 0 || (m == 0 && i == k - 1))
            parts[m++] = parts[i];
        else
            prism_block_destroy(parts[i]);
    }
    prism_block *out = NULL;
    if (m == 1) {
        out = parts[0];
    } else {
        char why[512] = "";
        if (prism_block_concat(parts, m, &out, why, sizeof why) != PRISM_BLOCK_OK)
            snprintf(err, n, "the batches cannot be joined into one block: %s", why);
        for (size_t i = 0; i < m; i++)
            prism_block_destroy(parts[i]);
    }
    return out;
}

/* map_batches: the function on each batch of `size` rows (0: the block). */
static prism_block *batches(prism_task_ctx *ctx, prism_task_fn f, const char *name,
                            const prism_block *in, const json_t *args, int64_t size, char *err,
                            size_t n)
{
    size_t rows = prism_block_rows(in);
    if (size <= 0 || (size_t)size >= rows)
        return data_call_fn(ctx, f, name, in, args, err, n);
    size_t k = (rows + (size_t)size - 1) / (size_t)size;
    prism_block **parts = calloc(k, sizeof *parts);
    if (!parts) {
        snprintf(err, n, "out of memory");
        return NULL;
    }
    size_t done = 0;
    for (; done < k; done++) {
        size_t start = done * (size_t)size, end = start + (size_t)size;
        prism_block *batch = NULL;
        if (prism_block_slice(in, start, end < rows ? end : rows, &batch) != PRISM_BLOCK_OK) {
            snprintf(err, n, "out of memory");
            break;
        }
        parts[done] = data_call_fn(ctx, f, name, batch, args, err, n);
        prism_block_destroy(batch);
        if (!parts[done])
            break;
    }
    prism_block *out = NULL;
    if (done == k) {
        out = join(parts, k, err, n);
    } else {
        for (size_t i = 0; i < done; i++)
            prism_block_destroy(parts[i]);
    }
    free(parts);
    return out;
}

/* filter: the rows whose mask value is true (null is false), gathered into
 * a new block (the block itself when every row stays). */
static prism_block *apply_mask(const prism_block *in, const prism_block *mask, char *err, size_t n)
{
    size_t rows = prism_block_rows(in);
    if (prism_block_columns(mask) != 1 || prism_block_rows(mask) != rows ||
        prism_block_schema_type(prism_block_get_schema(mask), 0) != PRISM_COL_BOOL) {
        snprintf(err, n,
                 "a filter function must return one bool column of %zu rows, not %zu "
                 "column%s of %zu rows",
                 rows, prism_block_columns(mask), prism_block_columns(mask) == 1 ? "" : "s",
                 prism_block_rows(mask));
        return NULL;
    }
    size_t *keep = malloc(rows * sizeof *keep + 1), k = 0;
    for (size_t r = 0; keep && r < rows; r++)
        if (prism_block_bool(mask, 0, r) == 1 && !prism_block_is_null(mask, 0, r))
            keep[k++] = r;
    prism_block *out = NULL;
    if (!keep)
        snprintf(err, n, "out of memory");
    else if (k == rows)
        out = prism_block_ref((prism_block *)in);
    else if (data_block_take_rows(in, keep, k, &out) != PRISM_BLOCK_OK)
        snprintf(err, n, "cannot gather the rows kept: out of memory");
    free(keep);
    return out;
}

/* The columns named in `list` as a NULL-terminated array (borrowed strings). */
static const char **names_of(const json_t *list, size_t *count)
{
    *count = json_array_size(list);
    const char **v = calloc(*count + 1, sizeof *v);
    for (size_t i = 0; v && i < *count; i++)
        v[i] = json_string_value(json_array_get(list, i));
    return v;
}

static prism_block *columns_op(const char *kind, const json_t *spec, const prism_block *in,
                               char *err, size_t n)
{
    size_t k;
    const char **names = names_of(json_object_get(spec, "columns"), &k);
    prism_block *out = NULL;
    prism_block_status st = !names ? PRISM_BLOCK_ENOMEM
                            : !strcmp(kind, "select_columns")
                                ? prism_block_select(in, names, k, &out)
                                : prism_block_drop(in, names, k, &out);
    if (st == PRISM_BLOCK_ESCHEMA) {
        const char *missing = NULL;
        for (size_t i = 0; names && i < k && !missing; i++)
            if (prism_block_column_index(in, names[i]) < 0)
                missing = names[i];
        snprintf(err, n, missing ? "no column \"%s\"" : "a column is named twice",
                 missing ? missing : "");
    } else if (st != PRISM_BLOCK_OK) {
        snprintf(err, n, "%s", prism_block_strerror(st));
    }
    free(names);
    return out;
}

/* Runs one operator on *b, replacing it by the result. Returns 0 or -1. */
static int run_op(prism_task_ctx *ctx, const json_t *op, data_skip *skip, prism_block **b,
                  char *err, size_t n)
{
    const json_t *spec = json_object_get(op, "spec");
    const char *kind = json_string_value(json_object_get(op, "op"));
    const char *oname = json_string_value(json_object_get(op, "name"));
    prism_block *out = NULL;
    if (!kind || !spec) {
        snprintf(err, n, "an operator without \"op\" or \"spec\"");
        return -1;
    }
    if (!strcmp(kind, "select_columns") || !strcmp(kind, "drop_columns")) {
        out = columns_op(kind, spec, *b, err, n);
    } else if (!strcmp(kind, "limit")) {
        json_int_t lim = json_integer_value(json_object_get(spec, "limit"));
        size_t rows = prism_block_rows(*b);
        if (prism_block_slice(*b, 0, (size_t)lim < rows ? (size_t)lim : rows, &out) !=
            PRISM_BLOCK_OK)
            snprintf(err, n, "out of memory");
    } else if (json_object_get(spec, "fn")) {
        const json_t *fn = json_object_get(spec, "fn");
        const char *pkg = json_string_value(json_object_get(fn, "package"));
        const char *function = json_string_value(json_object_get(fn, "function"));
        const json_t *args = json_object_get(fn, "args");
        if (!pkg || !function) {
            snprintf(err, n, "\"fn\" needs a package and a function");
            return -1;
        }
        if (!strcmp(pkg, "builtin")) {
            if (data_builtin_run(function, args, *b, skip, &out, err, n) != 0)
                out = NULL;
        } else {
            prism_task_fn f = prism__worker_find_task(ctx, pkg, function, err, n);
            if (!f)
                return -1;
            const char *label = oname ? oname : function;
            if (!strcmp(kind, "map_batches")) {
                json_t *bs = json_object_get(spec, "batch_size");
                out = batches(ctx, f, label, *b, args,
                              json_is_integer(bs) ? json_integer_value(bs) : 0, err, n);
            } else if (!strcmp(kind, "map") || !strcmp(kind, "flat_map") ||
                       !strcmp(kind, "filter") || !strcmp(kind, "add_column")) {
                out = data_call_fn(ctx, f, label, *b, args, err, n);
                if (out && !strcmp(kind, "map") && prism_block_rows(out) != prism_block_rows(*b)) {
                    snprintf(err, n,
                             "a map function must return a row per row: %zu rows in, "
                             "%zu out",
                             prism_block_rows(*b), prism_block_rows(out));
                    prism_block_destroy(out);
                    out = NULL;
                } else if (out && !strcmp(kind, "filter")) {
                    prism_block *kept = apply_mask(*b, out, err, n);
                    prism_block_destroy(out);
                    out = kept;
                } else if (out && !strcmp(kind, "add_column")) {
                    prism_block *with = NULL;
                    const char *col = json_string_value(json_object_get(spec, "col"));
                    if (data_block_with_column(*b, col ? col : "", out, &with, err, n) !=
                        PRISM_BLOCK_OK)
                        with = NULL;
                    prism_block_destroy(out);
                    out = with;
                }
            } else {
                snprintf(err, n, "this executor cannot run \"%s\" yet", kind);
            }
        }
    } else {
        snprintf(err, n, "this executor cannot run \"%s\" yet", kind);
    }
    if (!out)
        return -1;
    prism_block_destroy(*b);
    *b = out;
    return 0;
}

/* An operator's function arguments (NULL for one without a function). */
static const json_t *fn_args(const json_t *op)
{
    return json_object_get(json_object_get(json_object_get(op, "spec"), "fn"), "args");
}

/* Runs ops[first..] on *b. Returns 0, or -1 with err naming the operator. */
static int run_ops(prism_task_ctx *ctx, stage_prog *p, size_t first, prism_block **b, char *err,
                   size_t n)
{
    /* The last operator that does work makes the stage's block: those after
     * it ran in its pass already (fused into a run of builtins) */
    size_t last = json_array_size(p->ops);
    while (last > first &&
           json_is_true(json_object_get(fn_args(json_array_get(p->ops, last - 1)), "fused")))
        last--;
    for (size_t i = first; i < json_array_size(p->ops); i++) {
        const json_t *op = json_array_get(p->ops, i);
        char why[ERR_LEN] = "", label[160];
        data_output_op(i + 1 == last && !p->parts ? ctx : NULL);
        int rc = run_op(ctx, op, &p->skip, b, why, sizeof why);
        data_output_op(NULL);
        if (rc != 0) {
            op_label(op, label, sizeof label);
            snprintf(err, n, "%s: %s", label, why);
            return -1;
        }
    }
    return 0;
}

/* The stage's output (taken): cut to the row limit, then the returns. */
static prism_status finish(prism_task_ctx *ctx, const stage_prog *p, prism_block *b,
                           prism_value **returns, size_t nreturns)
{
    size_t rows = prism_block_rows(b);
    if (p->row_limit >= 0 && rows > (size_t)p->row_limit) {
        prism_block *cut = NULL;
        if (prism_block_slice(b, 0, (size_t)p->row_limit, &cut) != PRISM_BLOCK_OK) {
            prism_block_destroy(b);
            return prism_task_fail(ctx, "out of memory");
        }
        prism_block_destroy(b);
        b = cut;
        rows = prism_block_rows(b);
    }
    /* the node the block is made on (where its store copy lives): the
     * dataservice lends consumers the blocks of their own node first */
    const char *node = getenv("PRISM_NODE_ID");
    char stats[256];
    snprintf(stats, sizeof stats, "{\"rows\":%zu,\"bytes\":%zu,\"skipped\":%zu,\"node\":\"%.64s\"}",
             rows, prism_block_nbytes(b), p->skip.count,
             node && strspn(node, "0123456789abcdefABCDEF-_.") == strlen(node) ? node : "");
    returns[0] = data_value_of_block(b);
    if (nreturns > 1)
        returns[1] = prism_value_json(stats);
    if (!returns[0] || (nreturns > 1 && !returns[1]))
        return prism_task_fail(ctx, "out of memory");
    return PRISM_OK;
}

/* The block of the read that starts the stage. Returns 0, or -1 with err
 * naming the read. */
static int read_split(stage_prog *p, const json_t *split, prism_block **b, char *err, size_t n)
{
    const json_t *read = json_array_get(p->ops, 0);
    const char *kind = json_string_value(json_object_get(read, "op"));
    char why[ERR_LEN] = "", label[160];
    int rc = -1;
    if (kind && !strcmp(kind, "range"))
        rc = read_range(split, b, why, sizeof why);
    else if (kind && !strcmp(kind, "from_items"))
        rc = read_items(split, b, why, sizeof why);
    else if (kind && !strncmp(kind, "read_", 5))
        rc = data_read_files(kind, json_object_get(read, "spec"), split, &p->skip, b, why,
                             sizeof why);
    else
        snprintf(why, sizeof why, "this executor cannot read \"%s\" yet", kind ? kind : "?");
    if (rc != 0) {
        op_label(read, label, sizeof label);
        snprintf(err, n, "%s: %s", label, why);
    }
    return rc;
}

prism_status data_read_stage(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                             prism_value **returns, size_t nreturns)
{
    stage_prog p = {0};
    char err[ERR_LEN] = "";
    json_t *split =
        nargs == 2 && args[1]->kind == PRISM_VALUE_JSON ? json_loads(args[1]->text, 0, NULL) : NULL;
    prism_block *b = NULL;
    if (nargs != 2 || !split || prog_load(args[0], &p, err, sizeof err) != 0) {
        json_decref(split);
        prog_free(&p);
        return prism_task_fail(ctx, "data_read_stage takes a stage program and a split%s%s",
                               *err ? ": " : "", err);
    }
    int rc = read_split(&p, split, &b, err, sizeof err);
    json_decref(split);
    if (rc == 0)
        rc = run_ops(ctx, &p, 1, &b, err, sizeof err);
    prism_status s = rc == 0 ? finish(ctx, &p, b, returns, nreturns)
                             : prism_task_fail(ctx, "%s", err);
    if (rc != 0)
        prism_block_destroy(b);
    prog_free(&p);
    return s;
}

/* The input blocks, each cut to its `take`: its first rows (an integer),
 * or [first, count] (a slice of a block taken in parts). Returns how many
 * were opened. */
static size_t open_inputs(const prism_value *const *blocks, size_t nblocks, const json_t *take,
                          prism_block **in, char *err, size_t n)
{
    size_t k = 0;
    for (; k < nblocks; k++) {
        prism_block *b = data_block_of_value(blocks[k], err, n);
        if (!b)
            break;
        json_t *t = json_array_get(take, k);
        size_t rows = prism_block_rows(b), from = 0, to = rows;
        if (json_is_integer(t) && json_integer_value(t) >= 0 &&
            (size_t)json_integer_value(t) < rows)
            to = (size_t)json_integer_value(t);
        if (json_is_array(t)) {
            json_int_t a = json_integer_value(json_array_get(t, 0));
            json_int_t c = json_integer_value(json_array_get(t, 1));
            from = a > 0 && (size_t)a < rows ? (size_t)a : a > 0 ? rows : 0;
            to = c > 0 && (size_t)c < rows - from ? from + (size_t)c : c > 0 ? rows : from;
        }
        if (from > 0 || to < rows) {
            prism_block *cut = NULL;
            prism_block_status st = prism_block_slice(b, from, to, &cut);
            prism_block_destroy(b);
            if (st != PRISM_BLOCK_OK) {
                snprintf(err, n, "out of memory");
                break;
            }
            b = cut;
        }
        in[k] = b;
    }
    return k;
}

/* The stage's operators on a bundle of input blocks, each cut to its
 * `take`: on one block when their schemas agree, else on each block on its
 * own and the results joined. Returns 0 with *out, or -1 with err. */
static int run_on_blocks(prism_task_ctx *ctx, stage_prog *p, const prism_value *const *blocks,
                         size_t want, const json_t *take, prism_block **out, char *err, size_t n)
{
    prism_block **in = calloc(want ? want : 1, sizeof *in);
    size_t got = in ? open_inputs(blocks, want, take, in, err, n) : 0;
    prism_block *b = NULL;
    int rc = -1;
    if (!in) {
        snprintf(err, n, "out of memory");
    } else if (got == want && want == 1) {
        b = in[0];
        in[0] = NULL;
        rc = run_ops(ctx, p, 0, &b, err, n);
    } else if (got == want) {
        char why[512];
        if (prism_block_concat(in, want, &b, why, sizeof why) == PRISM_BLOCK_OK) {
            rc = run_ops(ctx, p, 0, &b, err, n);
        } else {
            size_t i = 0;
            for (; i < want; i++)
                if (run_ops(ctx, p, 0, &in[i], err, n) != 0)
                    break;
            if (i == want) {
                b = join(in, want, err, n);
                memset(in, 0, want * sizeof *in);
                rc = b ? 0 : -1;
            }
        }
    }
    for (size_t i = 0; in && i < got; i++)
        prism_block_destroy(in[i]);
    free(in);
    if (rc != 0) {
        prism_block_destroy(b);
        b = NULL;
    }
    *out = b;
    return rc;
}

prism_status data_map_stage(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                            prism_value **returns, size_t nreturns)
{
    stage_prog p = {0};
    char err[ERR_LEN] = "";
    json_t *take = nargs >= 2 && args[1]->kind == PRISM_VALUE_JSON
                       ? json_loads(args[1]->text, JSON_DECODE_ANY, NULL)
                       : NULL;
    if (nargs < 3 || prog_load(args[0], &p, err, sizeof err) != 0) {
        json_decref(take);
        prog_free(&p);
        return prism_task_fail(ctx,
                               "data_map_stage takes a stage program, the rows to take "
                               "and blocks%s%s",
                               *err ? ": " : "", err);
    }
    prism_block *b = NULL;
    int rc = run_on_blocks(ctx, &p, args + 2, nargs - 2, take, &b, err, sizeof err);
    json_decref(take);
    prism_status s = rc == 0 ? finish(ctx, &p, b, returns, nreturns)
                             : prism_task_fail(ctx, "%s", err);
    if (rc != 0)
        prism_block_destroy(b);
    prog_free(&p);
    return s;
}

prism_block *data_run_stage(prism_task_ctx *ctx, const json_t *prog, const prism_value *const *in,
                            size_t nin, const json_t *take, size_t *skipped, char *err, size_t n)
{
    stage_prog p = {.ops = json_object_get(prog, "ops"), .row_limit = -1, .parts = true};
    p.skip.on = json_is_true(json_object_get(prog, "skip_corrupt"));
    prism_block *b = NULL;
    int rc = -1;
    if (!json_is_array(p.ops) || json_array_size(p.ops) == 0 || nin == 0) {
        snprintf(err, n, "the stage program must be JSON with a list of operators");
    } else if (prism_value_kind_of(in[0]) == PRISM_VALUE_JSON) { /* a split: the stage reads */
        json_t *split = json_loads(prism_value_json_text(in[0]), 0, NULL);
        rc = split ? read_split(&p, split, &b, err, n) : -1;
        if (!split)
            snprintf(err, n, "a split must be JSON");
        json_decref(split);
        if (rc == 0)
            rc = run_ops(ctx, &p, 1, &b, err, n);
    } else {
        rc = run_on_blocks(ctx, &p, in, nin, take, &b, err, n);
    }
    if (rc != 0) {
        prism_block_destroy(b);
        return NULL;
    }
    *skipped += p.skip.count;
    return b;
}

/* ---------- the actor pools' class ---------- */

prism_status data_stage_actor_init(prism_task_ctx *ctx, const prism_value *const *args,
                                   size_t nargs, void **state)
{
    stage_prog p = {0};
    char err[ERR_LEN] = "";
    *state = NULL;
    if (nargs != 1 || prog_load(args[0], &p, err, sizeof err) != 0) {
        prog_free(&p);
        return prism_task_fail(ctx, "DataStage takes a stage program%s%s", *err ? ": " : "", err);
    }
    /* Each package function's setup, `<function>__init`, once in this actor
     * (its own process: what the setup keeps in globals stays for the
     * batches, a model loaded once). */
    size_t i;
    json_t *op;
    prism_status s = PRISM_OK;
    json_array_foreach(p.ops, i, op) {
        json_t *fn = json_object_get(json_object_get(op, "spec"), "fn");
        const char *pkg = json_string_value(json_object_get(fn, "package"));
        const char *name = json_string_value(json_object_get(fn, "function"));
        if (!pkg || !name || !strcmp(pkg, "builtin"))
            continue;
        char setup[300], why[512];
        snprintf(setup, sizeof setup, "%s__init", name);
        prism_task_fn f = prism__worker_find_task(ctx, pkg, setup, why, sizeof why);
        if (!f)
            continue; /* no setup: the batches need none */
        char *text =
            json_dumps(json_object_get(fn, "args") ? json_object_get(fn, "args") : json_object(),
                       JSON_COMPACT);
        prism_value *a = text ? prism_value_json(text) : NULL;
        free(text);
        prism_value *ret = NULL;
        s = a ? f(ctx, (const prism_value *const *)&a, 1, &ret, 1) : PRISM_ERR_NO_MEMORY;
        prism_value_free(a);
        prism_value_free(ret);
        if (s != PRISM_OK)
            break;
    }
    prog_free(&p);
    return s;
}

prism_status data_stage_actor_run(prism_task_ctx *ctx, void *state, const prism_value *const *args,
                                  size_t nargs, prism_value **returns, size_t nreturns)
{
    (void)state;
    return data_map_stage(ctx, args, nargs, returns, nreturns);
}
