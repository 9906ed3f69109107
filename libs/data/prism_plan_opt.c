/* The optimizer: from a valid logical plan to the stages the executor runs
 * (docs/datasets.md#the-optimizer).
 *
 * 1. Limit pushdown. A limit moves up past the operators that keep one row
 *    per row (map, add_column, select_columns, drop_columns), so that fewer
 *    rows reach them; limits that meet merge (the smallest wins). Reaching
 *    range or from_items, it goes into the read itself, which then makes
 *    only those rows. Otherwise it stays, after any projections that
 *    precede it, and becomes a stage of its own that stops upstream work.
 * 2. Fusion. Consecutive one-to-one operators with compatible compute run
 *    as one stage: one task per block runs them all in turn, as Ray Data
 *    fuses them, so blocks do not go through the object store in between.
 *    Projections fuse into whatever stage precedes them. A read or map
 *    stage right before an all-to-all that maps each block as it comes
 *    (not sort) runs in that all-to-all's map tasks.
 * 3. Image runs. Within a stage, decode_image or a crop followed by a crop,
 *    a flip and/or normalize (in that order) of the same column run as one
 *    pass per image: the first builtin's args get the others in "then", and
 *    each other one "fused": true (it passes its block through), so that an
 *    image is cut, flipped and normalized in one copy, straight from the
 *    decoder.
 * A write that ends the plan is in no stage: the executor consumes the
 * last stage's blocks by writing them.
 *
 * The other datasets of a union or zip are optimized alike, each on its own
 * (a limit does not move past a union or zip), and laid out before the
 * union or zip they join, a chain of stages each: the stages form a tree,
 * each stage's output going to `next`.
 */
#include <stdlib.h>
#include <string.h>

#include "prism_plan_internal.h"

/* ---------- optimized operators ---------- */

typedef struct op_list {
    opt_op *v;
    size_t n, cap;
} op_list;

static void op_free(opt_op *o)
{
    json_decref(o->spec);
    free(o->logical);
}

static int list_push(op_list *l, opt_op o)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        opt_op *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = o;
    return 0;
}

/* Merges `add` into `o`'s ascending logical indices. 0 or -1. */
static int add_logical(opt_op *o, const int *add, size_t nadd)
{
    int *v = malloc((o->nlogical + nadd) * sizeof *v);
    if (!v)
        return -1;
    size_t i = 0, j = 0, n = 0;
    while (i < o->nlogical || j < nadd) {
        if (j == nadd || (i < o->nlogical && o->logical[i] < add[j]))
            v[n++] = o->logical[i++];
        else if (i == o->nlogical || add[j] < o->logical[i])
            v[n++] = add[j++];
        else {
            v[n++] = o->logical[i++];
            j++;
        }
    }
    free(o->logical);
    o->logical = v;
    o->nlogical = n;
    return 0;
}

/* Makes `read` (range or from_items) produce at most `k` rows. 0 or -1. */
static int limit_into_read(opt_op *read, int64_t k)
{
    json_t *spec = json_deep_copy(read->spec);
    if (!spec)
        return -1;
    int rc = 0;
    if (read->kind == PRISM_OP_RANGE) {
        if (plan_get_int(spec, "n", 0) > k)
            rc = json_object_set_new(spec, "n", json_integer((json_int_t)k));
    } else {
        json_t *items = json_object_get(spec, "items");
        while (rc == 0 && json_array_size(items) > (size_t)k)
            rc = json_array_remove(items, json_array_size(items) - 1);
    }
    if (rc < 0) {
        json_decref(spec);
        return -1;
    }
    json_decref(read->spec);
    read->spec = spec;
    return 0;
}

/* Pass 1 over `in` (taken: every operator moves to `out` or is freed). */
static int push_limits(op_list *in, op_list *out)
{
    size_t i = 0;
    int rc = 0;
    while (i < in->n) {
        const plan_op_info *info = plan_op_info_of(in->v[i].kind);
        if (rc < 0 || out->n == 0 || !(info->row_preserving || info->cls == OPC_LIMIT)) {
            /* Not a run of row-preserving operators and limits (the read never is one). */
            if (rc < 0 || list_push(out, in->v[i]) < 0) {
                op_free(&in->v[i]);
                rc = -1;
            }
            i++;
            continue;
        }
        size_t j = i;
        int64_t k = -1;
        opt_op lim = {PRISM_OP_LIMIT, NULL, NULL, 0, 0};
        for (; j < in->n; j++) {
            const plan_op_info *ji = plan_op_info_of(in->v[j].kind);
            if (!ji->row_preserving && ji->cls != OPC_LIMIT)
                break;
            if (ji->cls == OPC_LIMIT) {
                int64_t n = plan_get_int(in->v[j].spec, "limit", 0);
                k = k < 0 || n < k ? n : k;
                if (add_logical(&lim, in->v[j].logical, in->v[j].nlogical) < 0)
                    rc = -1;
            }
        }
        opt_op *prev = &out->v[out->n - 1];
        bool into_read = k >= 0 && plan_op_info_of(prev->kind)->limit_into;
        if (into_read && rc == 0 &&
            (limit_into_read(prev, k) < 0 || add_logical(prev, lim.logical, lim.nlogical) < 0))
            rc = -1;
        bool placed = k < 0 || into_read;
        for (size_t x = i; x < j; x++) {
            opt_op *o = &in->v[x];
            const plan_op_info *xi = plan_op_info_of(o->kind);
            if (xi->cls == OPC_LIMIT) {
                op_free(o);
                continue;
            }
            if (!placed && xi->cls != OPC_PROJECT) {
                /* Past the leading projections, before the first operator that does work. */
                lim.spec = json_pack("{sssI}", "op", "limit", "limit", (json_int_t)k);
                if (rc < 0 || !lim.spec || list_push(out, lim) < 0) {
                    op_free(&lim);
                    rc = -1;
                }
                lim = (opt_op){PRISM_OP_LIMIT, NULL, NULL, 0, 0};
                placed = true;
            }
            if (rc < 0 || list_push(out, *o) < 0) {
                op_free(o);
                rc = -1;
            }
        }
        if (!placed) {
            lim.spec = json_pack("{sssI}", "op", "limit", "limit", (json_int_t)k);
            if (rc < 0 || !lim.spec || list_push(out, lim) < 0) {
                op_free(&lim);
                rc = -1;
            }
        } else {
            op_free(&lim);
        }
        i = j;
    }
    in->n = 0;
    return rc;
}

/* ---------- stages ---------- */

/* ---------- other datasets ---------- */

size_t plan_op_next(const prism_physical_plan *pp, size_t i)
{
    size_t ch = pp->ops[i].chain;
    for (size_t j = i + 1; j < pp->nops; j++)
        if (pp->ops[j].chain == ch)
            return j;
    return ch ? pp->feeds[ch] : pp->nops;
}

/* Pass 1 over other dataset `d` (its full form) of the operator at
 * `logical` in the plan, appended to `out` as chain `chain`. 0 or -1. */
static int lay_out_dataset(op_list *out, const json_t *d, int logical, size_t chain)
{
    op_list in = {0}, opt = {0};
    const json_t *ops = json_object_get(d, "ops");
    int rc = 0;
    for (size_t j = 0; rc == 0 && j < json_array_size(ops); j++) {
        json_t *spec = json_array_get(ops, j);
        int k = plan_op_lookup(json_string_value(json_object_get(spec, "op")));
        opt_op o = {(prism_plan_op_kind)k, json_incref(spec), malloc(sizeof(int)), 1, chain};
        if (o.logical)
            o.logical[0] = logical;
        if (k < 0 || !o.logical || list_push(&in, o) < 0) {
            op_free(&o);
            rc = -1;
        }
    }
    if (rc == 0)
        rc = push_limits(&in, &opt);
    for (size_t j = 0; j < in.n; j++)
        op_free(&in.v[j]);
    free(in.v);
    for (size_t j = 0; j < opt.n; j++) {
        opt.v[j].chain = chain;
        if (rc < 0 || list_push(out, opt.v[j]) < 0) {
            op_free(&opt.v[j]);
            rc = -1;
        }
    }
    free(opt.v);
    return rc;
}

/* Moves the plan's own operators (`own`, taken) into pp->ops, each union's
 * and zip's other datasets laid out before it. 0 or -1. */
static int lay_out(prism_physical_plan *pp, op_list *own)
{
    op_list all = {0};
    int rc = 0;
    size_t chains = 1;
    for (size_t i = 0; i < own->n; i++) {
        const json_t *other = json_object_get(own->v[i].spec, "other");
        if (own->v[i].kind == PRISM_OP_UNION)
            chains += json_array_size(other);
        else if (own->v[i].kind == PRISM_OP_ZIP)
            chains++;
    }
    pp->feeds = calloc(chains, sizeof *pp->feeds);
    pp->nchains = 1;
    if (!pp->feeds)
        rc = -1;
    for (size_t i = 0; i < own->n; i++) {
        opt_op *o = &own->v[i];
        const json_t *other = json_object_get(o->spec, "other");
        size_t n = o->kind == PRISM_OP_UNION ? json_array_size(other) : o->kind == PRISM_OP_ZIP;
        for (size_t k = 0; rc == 0 && k < n; k++) {
            const json_t *d = o->kind == PRISM_OP_ZIP ? other : json_array_get(other, k);
            rc = lay_out_dataset(&all, d, o->logical[0], pp->nchains + k);
        }
        for (size_t k = 0; rc == 0 && k < n; k++)
            pp->feeds[pp->nchains + k] = all.n;
        pp->nchains += n;
        o->chain = 0;
        if (rc < 0 || list_push(&all, *o) < 0) {
            op_free(o);
            rc = -1;
        }
    }
    own->n = 0;
    pp->ops = all.v;
    pp->nops = all.n;
    return rc;
}

static void stage_from_op(opt_stage *s, const opt_op *o)
{
    const json_t *spec = o->spec;
    const plan_op_info *info = plan_op_info_of(o->kind);
    s->compute = PRISM_COMPUTE_TASKS;
    s->min_size = s->max_size = 0;
    s->cpus = s->gpus = s->memory = 0;
    s->concurrency = s->min_rows = s->limit = 0;
    s->row_limit = -1;
    s->custom = NULL;
    switch (info->cls) {
    case OPC_READ:
        s->kind = PRISM_STAGE_READ;
        s->cpus = plan_get_num(spec, "num_cpus");
        s->memory = plan_get_num(spec, "memory");
        s->concurrency = plan_get_int(spec, "concurrency", 0);
        break;
    case OPC_MAP: {
        s->kind = PRISM_STAGE_MAP;
        json_t *c = json_object_get(spec, "compute");
        if (!strcmp(json_string_value(json_object_get(c, "kind")), "actors")) {
            s->compute = PRISM_COMPUTE_ACTORS;
            s->min_size = plan_get_int(c, "min_size", 1);
            s->max_size = plan_get_int(c, "max_size", 0);
        }
        s->cpus = plan_get_num(spec, "num_cpus");
        s->gpus = plan_get_num(spec, "num_gpus");
        s->memory = plan_get_num(spec, "memory");
        s->custom = json_incref(json_object_get(spec, "resources"));
        s->concurrency = plan_get_int(spec, "concurrency", 0);
        s->min_rows = plan_get_int(spec, "batch_size", 0);
        break;
    }
    case OPC_LIMIT:
        s->kind = PRISM_STAGE_LIMIT;
        s->limit = plan_get_int(spec, "limit", 0);
        break;
    case OPC_ALL_TO_ALL:
        s->kind = PRISM_STAGE_ALL_TO_ALL;
        s->cpus = 1;
        break;
    case OPC_NARY:
        s->kind = o->kind == PRISM_OP_UNION ? PRISM_STAGE_UNION : PRISM_STAGE_ZIP;
        s->cpus = o->kind == PRISM_OP_ZIP; /* union runs no task */
        break;
    default:
        /* A projection with no stage before it to join (pushdown never leaves
         * one after a limit): a task stage of its own. */
        s->kind = PRISM_STAGE_MAP;
        s->cpus = 1;
        break;
    }
}

/* Custom resource maps, NULL standing for none. */
static bool same_custom(const json_t *a, const json_t *b)
{
    if (!json_object_size(a) && !json_object_size(b))
        return true;
    return a && b && json_equal((json_t *)a, (json_t *)b);
}

/* Whether `o` (one-to-one) can run in the tasks or actors of stage `s`:
 * the same kind of compute (tasks, or actor pools of the same bounds), the
 * same resources per task or actor, and concurrency caps that agree. */
static bool fuses(const opt_stage *s, const opt_op *o)
{
    const plan_op_info *info = plan_op_info_of(o->kind);
    if (s->kind != PRISM_STAGE_READ && s->kind != PRISM_STAGE_MAP)
        return false;
    if (info->cls == OPC_PROJECT)
        return true;
    if (info->cls != OPC_MAP)
        return false;
    opt_stage t;
    stage_from_op(&t, o);
    bool ok = t.compute == s->compute && t.min_size == s->min_size && t.max_size == s->max_size &&
              t.cpus == s->cpus && t.gpus == s->gpus && t.memory == s->memory &&
              same_custom(t.custom, s->custom) &&
              (s->concurrency == 0 || t.concurrency == 0 || s->concurrency == t.concurrency);
    json_decref(t.custom);
    return ok;
}

/* Whether all-to-all stage `a` cuts each block into parts as it comes,
 * needing no look at the whole input first: random_shuffle, repartition
 * with shuffle, groupby, map_groups, unique. Not sort (its maps wait for
 * every block's sample), nor randomize_block_order or repartition without
 * shuffle (no map). */
static bool maps_as_blocks_come(const prism_physical_plan *pp, const opt_stage *a)
{
    const opt_op *o = &pp->ops[a->first];
    switch (o->kind) {
    case PRISM_OP_RANDOM_SHUFFLE:
    case PRISM_OP_GROUPBY:
    case PRISM_OP_MAP_GROUPS:
    case PRISM_OP_UNIQUE: return true;
    case PRISM_OP_REPARTITION: return json_is_true(json_object_get(o->spec, "shuffle"));
    default: return false;
    }
}

/* Whether read or map stage `up` can run in the map tasks of all-to-all
 * stage `a`: tasks with the all-to-all's resources and no cap of their
 * own. */
static bool fuses_into_maps(const opt_stage *up, const opt_stage *a)
{
    return (up->kind == PRISM_STAGE_READ || up->kind == PRISM_STAGE_MAP) &&
           up->compute == PRISM_COMPUTE_TASKS && up->cpus == a->cpus && up->gpus == 0 &&
           up->memory == 0 && !json_object_size(up->custom) && up->concurrency == 0;
}

/* A read or map stage right before an all-to-all that maps blocks as they
 * come joins the all-to-all stage: its operators run in the map tasks,
 * which cut their output into parts, so its blocks never go through the
 * object store whole (Ray Data fuses a map into a shuffle's map alike). */
static void fuse_into_all_to_all(prism_physical_plan *pp)
{
    for (size_t i = 1; i < pp->nstages; i++) {
        opt_stage *up = &pp->stages[i - 1], *a = &pp->stages[i];
        if (a->kind != PRISM_STAGE_ALL_TO_ALL || up->next != i ||
            up->first + up->nops != a->first || !maps_as_blocks_come(pp, a) ||
            !fuses_into_maps(up, a))
            continue;
        a->first = up->first;
        a->nops += up->nops;
        /* a map stage's bundles (a read makes one block a task anyway) */
        a->min_rows = up->kind == PRISM_STAGE_MAP ? up->min_rows : 0;
        json_decref(up->custom);
        memmove(up, a, (pp->nstages - i) * sizeof *up);
        pp->nstages--;
        for (size_t j = 0; j < pp->nstages; j++)
            if (pp->stages[j].next >= i)
                pp->stages[j].next--;
    }
}

static json_t *resource_map(const opt_stage *s)
{
    json_t *r = json_object();
    if (!r)
        return NULL;
    bool oom = false;
    if (s->kind != PRISM_STAGE_LIMIT && s->kind != PRISM_STAGE_UNION)
        oom |= json_object_set_new(r, "CPU", plan_number(s->cpus)) < 0;
    if (s->gpus > 0)
        oom |= json_object_set_new(r, "GPU", plan_number(s->gpus)) < 0;
    if (s->memory > 0)
        oom |= json_object_set_new(r, "memory", plan_number(s->memory)) < 0;
    if (s->custom)
        oom |= json_object_update(r, s->custom) < 0;
    if (oom) {
        json_decref(r);
        return NULL;
    }
    return r;
}

/* ---------- image runs ---------- */

/* The builtin that map or map_batches `o` runs, and its args; else NULL. */
static const char *builtin_of(const opt_op *o, const json_t **args)
{
    if (o->kind != PRISM_OP_MAP && o->kind != PRISM_OP_MAP_BATCHES)
        return NULL;
    const json_t *fn = json_object_get(o->spec, "fn");
    const char *pkg = json_string_value(json_object_get(fn, "package"));
    *args = json_object_get(fn, "args");
    if (!pkg || strcmp(pkg, "builtin") || !json_is_object(*args))
        return NULL;
    return json_string_value(json_object_get(fn, "function"));
}

static bool is_crop(const char *fn)
{
    return fn && (!strcmp(fn, "random_crop") || !strcmp(fn, "center_crop"));
}

/* `o`'s spec made its own (it is shared with the logical plan); its args. */
static json_t *own_args(opt_op *o)
{
    json_t *spec = json_deep_copy(o->spec);
    if (!spec)
        return NULL;
    json_decref(o->spec);
    o->spec = spec;
    return json_object_get(json_object_get(spec, "fn"), "args");
}

/* Marks the runs of ops[first, end) (one stage's). 0 or -1. */
static int mark_image_runs(prism_physical_plan *pp, size_t first, size_t end)
{
    for (size_t j = first; j < end; j++) {
        const json_t *args;
        const char *head = builtin_of(&pp->ops[j], &args);
        if (!head || (strcmp(head, "decode_image") && !is_crop(head)))
            continue;
        const char *col = json_string_value(
            json_object_get(args, strcmp(head, "decode_image") ? "column" : "output"));
        bool crop = is_crop(head), flip = false, norm = false;
        size_t k = j + 1;
        for (; k < end && col && !norm; k++) {
            const json_t *a;
            const char *fn = builtin_of(&pp->ops[k], &a);
            const char *c = json_string_value(json_object_get(a, "column"));
            bool joins = !fn                   ? false
                         : is_crop(fn)         ? !crop && !flip
                         : !strcmp(fn, "flip") ? !flip
                                               : !strcmp(fn, "normalize");
            if (!c || strcmp(c, col) || !joins)
                break;
            crop |= is_crop(fn);
            flip |= !strcmp(fn, "flip");
            norm |= !strcmp(fn, "normalize");
        }
        if (k == j + 1)
            continue;
        json_t *then = json_array(), *hargs = then ? own_args(&pp->ops[j]) : NULL;
        int rc = hargs ? 0 : -1;
        for (size_t x = j + 1; x < k && rc == 0; x++) {
            const json_t *a;
            const char *fn = builtin_of(&pp->ops[x], &a);
            rc = json_array_append_new(then, json_pack("{sssO}", "function", fn, "args", a));
            json_t *own = rc == 0 ? own_args(&pp->ops[x]) : NULL;
            rc = own ? json_object_set_new(own, "fused", json_true()) : -1;
        }
        if (rc < 0 || json_object_set_new(hargs, "then", then) < 0) {
            if (rc < 0)
                json_decref(then);
            return -1;
        }
        j = k - 1;
    }
    return 0;
}

static int fuse(prism_physical_plan *pp)
{
    pp->stages = calloc(pp->nops ? pp->nops : 1, sizeof *pp->stages);
    if (!pp->stages)
        return -1;
    for (size_t i = 0; i < pp->nops; i++) {
        const opt_op *o = &pp->ops[i];
        if (plan_op_info_of(o->kind)->cls == OPC_WRITE) {
            pp->write = o; /* the last operator: the executor's, in no stage */
            break;
        }
        opt_stage *cur = pp->nstages ? &pp->stages[pp->nstages - 1] : NULL;
        const plan_op_info *info = plan_op_info_of(o->kind);
        if (cur && info->cls != OPC_READ && info->cls != OPC_LIMIT && fuses(cur, o)) {
            cur->nops++;
            if (info->cls == OPC_MAP) {
                int64_t c = plan_get_int(o->spec, "concurrency", 0);
                int64_t b = plan_get_int(o->spec, "batch_size", 0);
                if (c)
                    cur->concurrency = c;
                if (b > cur->min_rows)
                    cur->min_rows = b;
            }
            continue;
        }
        opt_stage *s = &pp->stages[pp->nstages++];
        stage_from_op(s, o);
        s->first = i;
        s->nops = 1;
    }
    for (size_t i = 0; i < pp->nstages; i++) {
        opt_stage *s = &pp->stages[i];
        size_t last = plan_op_next(pp, s->first + s->nops - 1);
        s->next = pp->nstages;
        for (size_t j = i + 1; j < pp->nstages; j++)
            if (pp->stages[j].first == last)
                s->next = j;
    }
    fuse_into_all_to_all(pp);
    for (size_t i = 0; i < pp->nstages; i++) {
        opt_stage *s = &pp->stages[i];
        /* An all-to-all stage cannot stop early: any of its reduces may hold
         * the first rows; nor can a union or zip (they run no operator of the
         * stage's own before it). */
        if (s->next < pp->nstages && pp->stages[s->next].kind == PRISM_STAGE_LIMIT &&
            (s->kind == PRISM_STAGE_READ || s->kind == PRISM_STAGE_MAP))
            s->row_limit = pp->stages[s->next].limit;
        s->resources = resource_map(s);
        if (mark_image_runs(pp, s->first, s->first + s->nops) < 0)
            return -1;
        prism_buf b;
        prism_buf_init(&b, (size_t)1 << 24);
        int rc = 0;
        for (size_t j = 0; j < s->nops && rc == 0; j++) {
            const opt_op *o = &pp->ops[s->first + j];
            if (j)
                rc = prism_buf_printf(&b, "->");
            if (rc == 0)
                rc = plan_op_display(&b, o->kind, o->spec);
        }
        s->name = rc == 0 ? prism_buf_take(&b, NULL) : NULL;
        prism_buf_free(&b);
        if (!s->resources || !s->name)
            return -1;
    }
    return 0;
}

void prism_physical_plan_destroy(prism_physical_plan *pp)
{
    if (!pp)
        return;
    for (size_t i = 0; i < pp->nops; i++)
        op_free(&pp->ops[i]);
    free(pp->ops);
    for (size_t i = 0; i < pp->nstages; i++) {
        free(pp->stages[i].name);
        json_decref(pp->stages[i].custom);
        json_decref(pp->stages[i].resources);
    }
    free(pp->stages);
    free(pp->feeds);
    free(pp->name);
    json_decref(pp->options);
    free(pp);
}

prism_plan_status prism_plan_optimize(const prism_plan *p, prism_physical_plan **out,
                                      prism_plan_error *err)
{
    *out = NULL;
    prism_plan_status st = plan_usable(p, err);
    if (st != PRISM_PLAN_OK)
        return st;
    prism_physical_plan *pp = calloc(1, sizeof *pp);
    op_list in = {0}, opt = {0};
    if (!pp || (p->name && !(pp->name = strdup(p->name))))
        goto oom;
    pp->options = json_incref(p->options_full);
    for (size_t i = 0; i < p->nops; i++) {
        opt_op o = {p->ops[i].kind, json_incref(p->ops[i].full), malloc(sizeof(int)), 1, 0};
        if (o.logical)
            o.logical[0] = (int)i;
        if (!o.logical || list_push(&in, o) < 0) {
            op_free(&o);
            goto oom;
        }
    }
    int rc = push_limits(&in, &opt);
    if (rc == 0)
        rc = lay_out(pp, &opt);
    else
        for (size_t i = 0; i < opt.n; i++)
            op_free(&opt.v[i]);
    free(opt.v);
    if (rc < 0 || fuse(pp) < 0)
        goto oom;
    free(in.v);
    *out = pp;
    return PRISM_PLAN_OK;
oom:
    for (size_t i = 0; i < in.n; i++)
        op_free(&in.v[i]);
    free(in.v);
    prism_physical_plan_destroy(pp);
    if (err) {
        plan_ctx c = {err, -1, NULL, "plan", PRISM_OP_RANGE};
        plan_oom(&c);
    }
    return PRISM_PLAN_NO_MEMORY;
}

/* ---------- accessors ---------- */

size_t prism_physical_plan_num_stages(const prism_physical_plan *pp) { return pp->nstages; }

void prism_physical_plan_stage(const prism_physical_plan *pp, size_t i, prism_plan_stage *out)
{
    memset(out, 0, sizeof *out);
    if (i >= pp->nstages)
        return;
    const opt_stage *s = &pp->stages[i];
    out->name = s->name;
    out->kind = s->kind;
    out->compute = s->compute;
    out->min_size = s->min_size;
    out->max_size = s->max_size;
    out->num_cpus = s->cpus;
    out->num_gpus = s->gpus;
    out->memory = s->memory;
    out->resources = s->resources;
    out->concurrency = s->concurrency;
    out->min_rows_per_bundle = s->min_rows;
    out->row_limit = s->row_limit;
    out->limit = s->limit;
    out->num_ops = s->nops;
    out->next = s->next;
}

prism_plan_op_kind prism_physical_plan_op(const prism_physical_plan *pp, size_t i, size_t j,
                                          const json_t **spec, const int **logical,
                                          size_t *num_logical)
{
    if (i >= pp->nstages || j >= pp->stages[i].nops)
        return PRISM_OP_KIND_COUNT;
    const opt_op *o = &pp->ops[pp->stages[i].first + j];
    if (spec)
        *spec = o->spec;
    if (logical)
        *logical = o->logical;
    if (num_logical)
        *num_logical = o->nlogical;
    return o->kind;
}

const json_t *prism_physical_plan_options(const prism_physical_plan *pp) { return pp->options; }

prism_plan_op_kind prism_physical_plan_write(const prism_physical_plan *pp, const json_t **spec)
{
    if (spec)
        *spec = pp->write ? pp->write->spec : NULL;
    return pp->write ? pp->write->kind : PRISM_OP_KIND_COUNT;
}
