/* The builder: each function writes the operator's JSON, holding only the
 * fields whose option differs from its default, and appends it through the
 * same check as prism_plan_from_json (plan_append), so a C user and a REST
 * user get the same plan and the same errors. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "prism_plan_internal.h"

/* An operator being written. Failures that JSON cannot carry to the check
 * (text that is not UTF-8 or not JSON, numbers that are not finite) are
 * noted and reported for the field they concern. */
typedef struct bop {
    const char *name;
    json_t *op;
    bool oom;
    char field[128];
    char why[512];
} bop;

static bop bop_new(const char *name)
{
    bop b = {name, json_object(), false, "", ""};
    if (!b.op || json_object_set_new(b.op, "op", json_string(name)) < 0)
        b.oom = true;
    return b;
}

static bool bop_ok(const bop *b) { return !b->oom && !b->field[0]; }

static void bad(bop *b, const char *field, const char *why)
{
    if (bop_ok(b)) {
        snprintf(b->field, sizeof b->field, "%s", field);
        snprintf(b->why, sizeof b->why, "%s", why);
    }
}

static void put(bop *b, json_t *obj, const char *key, json_t *v)
{
    if (!v || !obj) {
        json_decref(v);
        b->oom = true;
        return;
    }
    if (json_object_set_new(obj, key, v) < 0)
        b->oom = true;
}

static void put_str(bop *b, json_t *obj, const char *key, const char *field, const char *s)
{
    if (!s)
        return;
    json_t *v = json_string(s);
    if (!v) {
        char why[160];
        snprintf(why, sizeof why, "\"%s\" must be UTF-8 text", field);
        bad(b, field, why);
        return;
    }
    put(b, obj, key, v);
}

static void put_num(bop *b, const char *key, double d)
{
    if (!isfinite(d)) {
        char why[160];
        snprintf(why, sizeof why, "\"%s\" must be a finite number", key);
        bad(b, key, why);
        return;
    }
    put(b, b->op, key, plan_number(d));
}

static void put_int(bop *b, const char *key, int64_t n)
{
    put(b, b->op, key, json_integer((json_int_t)n));
}

static void put_strs(bop *b, const char *key, const char *const *list)
{
    if (!list)
        return;
    json_t *a = json_array();
    char field[160];
    for (size_t i = 0; a && list[i]; i++) {
        if (i >= PRISM_PLAN_MAX_LIST + 1)
            break; /* the check reports the length */
        snprintf(field, sizeof field, "%s[%zu]", key, i);
        json_t *s = json_string(list[i]);
        if (!s) {
            char why[200];
            snprintf(why, sizeof why, "\"%s\" must be UTF-8 text", field);
            bad(b, field, why);
            break;
        }
        if (json_array_append_new(a, s) < 0)
            b->oom = true;
    }
    put(b, b->op, key, a);
}

static void put_json(bop *b, json_t *obj, const char *key, const char *field, const char *text)
{
    if (!text)
        return;
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!v) {
        char why[400];
        snprintf(why, sizeof why, "\"%s\" is not valid JSON: %s (column %d)", field, je.text,
                 je.column);
        bad(b, field, why);
        return;
    }
    put(b, obj, key, v);
}

static prism_plan_status bop_finish(prism_plan *p, bop *b)
{
    prism_plan_status st;
    if (p->error.status != PRISM_PLAN_OK) {
        st = p->error.status;
    } else if (!bop_ok(b)) {
        plan_ctx c = {&p->error, (int)p->nops, b->name, "plan", PRISM_OP_RANGE};
        if (b->oom)
            plan_oom(&c);
        else
            plan_fail(&c, PRISM_PLAN_INVALID, b->field, "%s", b->why);
        st = p->error.status;
    } else {
        st = plan_append(p, b->op, NULL);
    }
    json_decref(b->op);
    return st;
}

/* ---------- reads ---------- */

void prism_plan_read_options_init(prism_plan_read_options *o)
{
    memset(o, 0, sizeof *o);
    o->num_cpus = 1;
    o->drop_empty_lines = true;
}

static prism_plan_status read_op(prism_plan *p, bool files, const char *const *paths,
                                 const prism_plan_read_options *opts, bop *b)
{
    prism_plan_read_options d;
    if (!opts) {
        prism_plan_read_options_init(&d);
        opts = &d;
    }
    if (files)
        put_strs(b, "paths", paths);
    if (opts->override_num_blocks != 0)
        put_int(b, "override_num_blocks", opts->override_num_blocks);
    if (opts->num_cpus != 1)
        put_num(b, "num_cpus", opts->num_cpus);
    if (opts->memory != 0)
        put_num(b, "memory", opts->memory);
    if (opts->concurrency != 0)
        put_int(b, "concurrency", opts->concurrency);
    if (opts->include_paths)
        put(b, b->op, "include_paths", json_true());
    put_strs(b, "file_extensions", opts->file_extensions);
    if (opts->size[0] || opts->size[1])
        put(b, b->op, "size",
            json_pack("[II]", (json_int_t)opts->size[0], (json_int_t)opts->size[1]));
    put_str(b, b->op, "mode", "mode", opts->mode);
    if (!opts->drop_empty_lines)
        put(b, b->op, "drop_empty_lines", json_false());
    put_str(b, b->op, "delimiter", "delimiter", opts->delimiter);
    return bop_finish(p, b);
}

prism_plan_status prism_plan_range(prism_plan *p, int64_t n, const prism_plan_read_options *opts)
{
    bop b = bop_new("range");
    put_int(&b, "n", n);
    return read_op(p, false, NULL, opts, &b);
}

prism_plan_status prism_plan_from_items(prism_plan *p, const char *items_json,
                                        const prism_plan_read_options *opts)
{
    bop b = bop_new("from_items");
    put_json(&b, b.op, "items", "items", items_json);
    return read_op(p, false, NULL, opts, &b);
}

#define FILE_READ(fn, opname)                                                                      \
    prism_plan_status fn(prism_plan *p, const char *const *paths,                                  \
                         const prism_plan_read_options *opts)                                      \
    {                                                                                              \
        bop b = bop_new(opname);                                                                   \
        return read_op(p, true, paths, opts, &b);                                                  \
    }

FILE_READ(prism_plan_read_images, "read_images")
FILE_READ(prism_plan_read_binary_files, "read_binary_files")
FILE_READ(prism_plan_read_text, "read_text")
FILE_READ(prism_plan_read_jsonl, "read_jsonl")
FILE_READ(prism_plan_read_csv, "read_csv")

/* ---------- operators with a function ---------- */

void prism_plan_map_options_init(prism_plan_map_options *o)
{
    memset(o, 0, sizeof *o);
    o->batch_size = PRISM_PLAN_DEFAULT_BATCH_SIZE;
    o->compute = PRISM_COMPUTE_TASKS;
    o->min_size = 1;
    o->num_cpus = 1;
}

static prism_plan_status map_op(prism_plan *p, const char *name, const char *col,
                                const char *package, const char *function,
                                const prism_plan_map_options *opts)
{
    prism_plan_map_options d;
    if (!opts) {
        prism_plan_map_options_init(&d);
        opts = &d;
    }
    bop b = bop_new(name);
    put_str(&b, b.op, "col", "col", col);
    json_t *fn = json_object();
    put_str(&b, fn, "package", "fn.package", package);
    put_str(&b, fn, "function", "fn.function", function);
    put_json(&b, fn, "args", "fn.args", opts->args);
    put(&b, b.op, "fn", fn);
    if (opts->batch_size != PRISM_PLAN_DEFAULT_BATCH_SIZE)
        put(&b, b.op, "batch_size",
            opts->batch_size == 0 ? json_null() : json_integer((json_int_t)opts->batch_size));
    bool actors = opts->compute == PRISM_COMPUTE_ACTORS;
    if (actors || opts->compute != PRISM_COMPUTE_TASKS || opts->min_size != 1 ||
        opts->max_size != 0) {
        /* Sizes with tasks, or an unknown kind, go to the check, which says what is wrong. */
        json_t *c = json_object();
        put(&b, c, "kind",
            json_string(actors                                 ? "actors"
                        : opts->compute == PRISM_COMPUTE_TASKS ? "tasks"
                                                               : "unknown"));
        if (opts->min_size != 1)
            put(&b, c, "min_size", json_integer((json_int_t)opts->min_size));
        if (opts->max_size != 0)
            put(&b, c, "max_size", json_integer((json_int_t)opts->max_size));
        put(&b, b.op, "compute", c);
    }
    if (opts->num_cpus != 1)
        put_num(&b, "num_cpus", opts->num_cpus);
    if (opts->num_gpus != 0)
        put_num(&b, "num_gpus", opts->num_gpus);
    if (opts->memory != 0)
        put_num(&b, "memory", opts->memory);
    put_json(&b, b.op, "resources", "resources", opts->resources);
    if (opts->concurrency != 0)
        put_int(&b, "concurrency", opts->concurrency);
    return bop_finish(p, &b);
}

prism_plan_status prism_plan_map(prism_plan *p, const char *package, const char *function,
                                 const prism_plan_map_options *opts)
{
    return map_op(p, "map", NULL, package, function, opts);
}

prism_plan_status prism_plan_map_batches(prism_plan *p, const char *package, const char *function,
                                         const prism_plan_map_options *opts)
{
    return map_op(p, "map_batches", NULL, package, function, opts);
}

prism_plan_status prism_plan_filter(prism_plan *p, const char *package, const char *function,
                                    const prism_plan_map_options *opts)
{
    return map_op(p, "filter", NULL, package, function, opts);
}

prism_plan_status prism_plan_flat_map(prism_plan *p, const char *package, const char *function,
                                      const prism_plan_map_options *opts)
{
    return map_op(p, "flat_map", NULL, package, function, opts);
}

prism_plan_status prism_plan_add_column(prism_plan *p, const char *col, const char *package,
                                        const char *function, const prism_plan_map_options *opts)
{
    return map_op(p, "add_column", col, package, function, opts);
}

/* ---------- the others ---------- */

prism_plan_status prism_plan_select_columns(prism_plan *p, const char *const *columns)
{
    bop b = bop_new("select_columns");
    put_strs(&b, "columns", columns);
    return bop_finish(p, &b);
}

prism_plan_status prism_plan_drop_columns(prism_plan *p, const char *const *columns)
{
    bop b = bop_new("drop_columns");
    put_strs(&b, "columns", columns);
    return bop_finish(p, &b);
}

prism_plan_status prism_plan_limit(prism_plan *p, int64_t n)
{
    bop b = bop_new("limit");
    put_int(&b, "limit", n);
    return bop_finish(p, &b);
}

prism_plan_status prism_plan_append_json(prism_plan *p, const char *op_json)
{
    if (p->error.status != PRISM_PLAN_OK)
        return p->error.status;
    json_error_t je;
    json_t *op = op_json ? json_loads(op_json, JSON_REJECT_DUPLICATES, &je) : NULL;
    if (!op) {
        plan_ctx c = {&p->error, (int)p->nops, NULL, "plan", PRISM_OP_RANGE};
        plan_fail(&c, PRISM_PLAN_INVALID, NULL, "not valid JSON: %s (column %d)",
                  op_json ? je.text : "no text", op_json ? je.column : 0);
        return p->error.status;
    }
    prism_plan_status st = plan_append(p, op, NULL);
    json_decref(op);
    return st;
}

/* ---------- options ---------- */

void prism_plan_options_init(prism_plan_options *o)
{
    memset(o, 0, sizeof *o);
    o->target_max_block_size = 128 << 20;
}

prism_plan_status prism_plan_set_options(prism_plan *p, const prism_plan_options *o)
{
    if (p->error.status != PRISM_PLAN_OK)
        return p->error.status;
    prism_plan_options d;
    if (!o) {
        prism_plan_options_init(&d);
        o = &d;
    }
    json_t *j = json_object();
    bool oom = !j;
    if (j && o->memory_budget_bytes != 0)
        oom |= json_object_set_new(j, "memory_budget_bytes",
                                   json_integer((json_int_t)o->memory_budget_bytes)) < 0;
    if (j && o->skip_corrupt)
        oom |= json_object_set_new(j, "skip_corrupt", json_true()) < 0;
    if (j && o->preserve_order)
        oom |= json_object_set_new(j, "preserve_order", json_true()) < 0;
    if (j && o->target_max_block_size != 128 << 20)
        oom |= json_object_set_new(j, "target_max_block_size",
                                   json_integer((json_int_t)o->target_max_block_size)) < 0;
    if (j && o->use_push_based_shuffle)
        oom |= json_object_set_new(j, "use_push_based_shuffle", json_true()) < 0;
    plan_ctx c = {&p->error, -1, NULL, "options", PRISM_OP_RANGE};
    json_t *f, *m;
    if (oom)
        plan_oom(&c);
    else if (plan_options_parse(&c, j, &f, &m) == 0) {
        json_decref(p->options_full);
        json_decref(p->options_min);
        p->options_full = f;
        p->options_min = m;
    }
    json_decref(j);
    return p->error.status;
}
