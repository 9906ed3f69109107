/* explain: the plan before and after optimization, as text for people (a
 * tree as Ray Data's Dataset.explain() prints it, the last operator first)
 * and as JSON; and the physical plan as JSON, which is what the executor
 * and the REST API hand around. Trees handed out share nothing with the
 * plan, so that callers may change them and other threads read the plan. */
#include <stdlib.h>
#include <string.h>

#include "prism_plan_internal.h"

static const char *stage_kind_name(prism_plan_stage_kind k)
{
    return k == PRISM_STAGE_READ         ? "read"
           : k == PRISM_STAGE_MAP        ? "map"
           : k == PRISM_STAGE_ALL_TO_ALL ? "all_to_all"
           : k == PRISM_STAGE_UNION      ? "union"
           : k == PRISM_STAGE_ZIP        ? "zip"
                                         : "limit";
}

/* The class name Ray Data would print for the stage's physical operator. */
static const char *stage_operator(const opt_stage *s)
{
    if (s->kind == PRISM_STAGE_LIMIT)
        return "LimitOperator";
    if (s->kind == PRISM_STAGE_ALL_TO_ALL)
        return "AllToAllOperator";
    if (s->kind == PRISM_STAGE_UNION)
        return "UnionOperator";
    if (s->kind == PRISM_STAGE_ZIP)
        return "ZipOperator";
    return s->compute == PRISM_COMPUTE_ACTORS ? "ActorPoolMapOperator" : "TaskPoolMapOperator";
}

int plan_ops_ref(prism_buf *b, const int *idx, size_t n)
{
    int rc = prism_buf_printf(b, "ops[");
    for (size_t i = 0; i < n && rc == 0;) {
        size_t j = i;
        while (j + 1 < n && idx[j + 1] == idx[j] + 1)
            j++;
        if (j > i)
            rc = prism_buf_printf(b, "%s%d-%d", i ? "," : "", idx[i], idx[j]);
        else
            rc = prism_buf_printf(b, "%s%d", i ? "," : "", idx[i]);
        i = j + 1;
    }
    return rc ? rc : prism_buf_printf(b, "]");
}

/* The union of the logical indices of a stage's operators, ascending. */
static int *stage_logical(const prism_physical_plan *pp, const opt_stage *s, size_t *n)
{
    size_t total = 0;
    for (size_t j = 0; j < s->nops; j++)
        total += pp->ops[s->first + j].nlogical;
    int *v = malloc((total ? total : 1) * sizeof *v);
    if (!v)
        return NULL;
    size_t k = 0;
    for (size_t j = 0; j < s->nops; j++) {
        const opt_op *o = &pp->ops[s->first + j];
        for (size_t x = 0; x < o->nlogical; x++) {
            /* Insertion keeps it sorted; stages hold a handful of operators. */
            size_t at = k;
            while (at > 0 && v[at - 1] > o->logical[x])
                at--;
            if (at > 0 && v[at - 1] == o->logical[x])
                continue; /* another dataset's operators all stand for their union or zip */
            memmove(v + at + 1, v + at, (k - at) * sizeof *v);
            v[at] = o->logical[x];
            k++;
        }
    }
    *n = k;
    return v;
}

static json_t *int_array(const int *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_integer(v[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *nullable_int(int64_t v, int64_t none)
{
    return v == none ? json_null() : json_integer((json_int_t)v);
}

static char *display_name(prism_plan_op_kind kind, const json_t *spec)
{
    prism_buf b;
    prism_buf_init(&b, (size_t)1 << 20);
    char *s = plan_op_display(&b, kind, spec) == 0 ? prism_buf_take(&b, NULL) : NULL;
    prism_buf_free(&b);
    return s;
}

/* Sets `key` to `v` (taken, may be NULL), clearing `ok` on failure. */
static void set(json_t *o, const char *key, json_t *v, bool *ok)
{
    if (!v || json_object_set_new(o, key, v) < 0)
        *ok = false;
}

/* One operator of the optimized plan as JSON. */
static json_t *opt_op_json(const opt_op *o, bool with_spec)
{
    json_t *j = json_object();
    bool ok = j != NULL;
    set(j, "op", json_string(prism_plan_op_kind_name(o->kind)), &ok);
    char *name = display_name(o->kind, o->spec);
    set(j, "name", name ? json_string(name) : NULL, &ok);
    free(name);
    set(j, "logical", int_array(o->logical, o->nlogical), &ok);
    if (with_spec)
        set(j, "spec", json_deep_copy(o->spec), &ok);
    if (!ok) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static json_t *stage_json(const prism_physical_plan *pp, const opt_stage *s)
{
    json_t *j = json_object();
    bool ok = j != NULL;
    set(j, "name", json_string(s->name), &ok);
    set(j, "kind", json_string(stage_kind_name(s->kind)), &ok);
    set(j, "operator", json_string(stage_operator(s)), &ok);
    set(j, "next", nullable_int((int64_t)s->next, (int64_t)pp->nstages), &ok);
    json_t *compute = NULL;
    if (s->kind == PRISM_STAGE_LIMIT || s->kind == PRISM_STAGE_UNION) {
        compute = json_null();
    } else if ((compute = json_object())) {
        bool actors = s->compute == PRISM_COMPUTE_ACTORS;
        set(compute, "kind", json_string(actors ? "actors" : "tasks"), &ok);
        if (actors) {
            set(compute, "min_size", json_integer((json_int_t)s->min_size), &ok);
            set(compute, "max_size", nullable_int(s->max_size, 0), &ok);
        }
    }
    set(j, "compute", compute, &ok);
    set(j, "resources", json_deep_copy(s->resources), &ok);
    set(j, "concurrency", nullable_int(s->concurrency, 0), &ok);
    set(j, "min_rows_per_bundle", nullable_int(s->min_rows, 0), &ok);
    set(j, "row_limit", nullable_int(s->row_limit, -1), &ok);
    set(j, "limit", s->kind == PRISM_STAGE_LIMIT ? json_integer(s->limit) : json_null(), &ok);
    size_t nl = 0;
    int *logical = stage_logical(pp, s, &nl);
    set(j, "logical", logical ? int_array(logical, nl) : NULL, &ok);
    free(logical);
    json_t *ops = json_array();
    for (size_t i = 0; ops && i < s->nops; i++)
        if (json_array_append_new(ops, opt_op_json(&pp->ops[s->first + i], true)) < 0)
            ok = false;
    set(j, "ops", ops, &ok);
    if (!ok) {
        json_decref(j);
        return NULL;
    }
    return j;
}

json_t *prism_physical_plan_to_json(const prism_physical_plan *pp)
{
    json_t *j = json_object();
    bool ok = j != NULL;
    if (pp->name)
        set(j, "name", json_string(pp->name), &ok);
    set(j, "options", json_deep_copy(pp->options), &ok);
    json_t *stages = json_array();
    for (size_t i = 0; stages && i < pp->nstages; i++)
        if (json_array_append_new(stages, stage_json(pp, &pp->stages[i])) < 0)
            ok = false;
    set(j, "stages", stages, &ok);
    set(j, "write", pp->write ? opt_op_json(pp->write, true) : json_null(), &ok);
    if (!ok) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* ---------- text ---------- */

/* The tree prefix of line `depth` (0: the last operator, unindented). */
static int indent(prism_buf *b, size_t depth)
{
    int rc = 0;
    for (size_t i = 1; i < depth && rc == 0; i++)
        rc = prism_buf_printf(b, "   ");
    return rc == 0 && depth ? prism_buf_printf(b, "+- ") : rc;
}

/* A line of a tree: operator `i` of a chain, `ops` (full forms). */
typedef int (*line_fn)(prism_buf *b, const void *ctx, size_t i);

/* Prints node `i` at `depth`, then the nodes whose output goes to it
 * (next[j] == i), in order, one level deeper: a tree whose root is the
 * last operator, and a union's or zip's inputs side by side under it. */
static int tree(prism_buf *b, const void *ctx, const size_t *next, line_fn line, size_t i,
                size_t depth)
{
    int rc = indent(b, depth);
    rc = rc ? rc : line(b, ctx, i);
    for (size_t j = 0; j < i && rc == 0; j++)
        if (next[j] == i)
            rc = tree(b, ctx, next, line, j, depth + 1);
    return rc;
}

/* The logical plan laid out as the optimizer lays it out (its own chain
 * and each other dataset's), without pushdown. */
typedef struct logical_view {
    const json_t **spec;
    size_t *next, *index;
    size_t *other; /* 0: the plan's own; k + 1: union's other[k]; SIZE_MAX: zip's other */
    size_t n;
} logical_view;

static int logical_line(prism_buf *b, const void *ctx, size_t i)
{
    const logical_view *v = ctx;
    const json_t *spec = v->spec[i];
    int kind = plan_op_lookup(json_string_value(json_object_get(spec, "op")));
    int idx = (int)v->index[i];
    int rc = plan_op_display(b, (prism_plan_op_kind)kind, spec);
    rc = rc ? rc : prism_buf_printf(b, "  ");
    rc = rc ? rc : plan_ops_ref(b, &idx, 1);
    if (rc == 0 && v->other[i] == SIZE_MAX)
        rc = prism_buf_printf(b, " other");
    else if (rc == 0 && v->other[i])
        rc = prism_buf_printf(b, " other[%zu]", v->other[i] - 1);
    return rc ? rc : prism_buf_printf(b, "\n");
}

static int explain_logical(prism_buf *b, const prism_plan *p)
{
    int rc = prism_buf_printf(b, "-------- Logical Plan --------\n");
    size_t total = p->nops;
    for (size_t i = 0; i < p->nops; i++) {
        const json_t *other = json_object_get(p->ops[i].full, "other");
        for (size_t k = 0; k < (json_is_array(other) ? json_array_size(other) : other ? 1 : 0); k++)
            total += json_array_size(
                json_object_get(json_is_array(other) ? json_array_get(other, k) : other, "ops"));
    }
    logical_view v = {calloc(total, sizeof *v.spec), calloc(total, sizeof(size_t)),
                      calloc(total, sizeof(size_t)), calloc(total, sizeof(size_t)), 0};
    if (!v.spec || !v.next || !v.index || !v.other)
        rc = -1;
    size_t prev = SIZE_MAX;
    for (size_t i = 0; rc == 0 && i < p->nops; i++) {
        const json_t *other = json_object_get(p->ops[i].full, "other");
        size_t nother = json_is_array(other) ? json_array_size(other) : other ? 1 : 0;
        size_t at = v.n;
        for (size_t k = 0; k < nother; k++) { /* each other dataset's chain, ending here */
            const json_t *ops =
                json_object_get(json_is_array(other) ? json_array_get(other, k) : other, "ops");
            for (size_t j = 0; j < json_array_size(ops); j++) {
                v.spec[v.n] = json_array_get(ops, j);
                v.index[v.n] = i;
                v.other[v.n] = json_is_array(other) ? k + 1 : SIZE_MAX;
                v.next[v.n] = j + 1 < json_array_size(ops) ? v.n + 1 : SIZE_MAX;
                v.n++;
            }
        }
        v.spec[v.n] = p->ops[i].full;
        v.index[v.n] = i;
        v.next[v.n] = total;
        for (size_t j = at; j < v.n; j++)
            if (v.next[j] == SIZE_MAX)
                v.next[j] = v.n;
        if (prev != SIZE_MAX)
            v.next[prev] = v.n;
        prev = v.n++;
    }
    if (rc == 0)
        rc = tree(b, &v, v.next, logical_line, v.n - 1, 0);
    free(v.spec);
    free(v.next);
    free(v.index);
    free(v.other);
    return rc;
}

static int optimized_line(prism_buf *b, const void *ctx, size_t i)
{
    const prism_physical_plan *pp = ctx;
    const opt_op *o = &pp->ops[i];
    int rc = plan_op_display(b, o->kind, o->spec);
    rc = rc ? rc : prism_buf_printf(b, "  ");
    rc = rc ? rc : plan_ops_ref(b, o->logical, o->nlogical);
    if (rc == 0 && plan_op_info_of(o->kind)->cls == OPC_READ && o->nlogical > 1) {
        if (o->kind == PRISM_OP_RANGE)
            rc = prism_buf_printf(b, " (limit pushed into the read: n=%lld)",
                                  (long long)plan_get_int(o->spec, "n", 0));
        else
            rc = prism_buf_printf(b, " (limit pushed into the read: %zu items)",
                                  json_array_size(json_object_get(o->spec, "items")));
    }
    return rc ? rc : prism_buf_printf(b, "\n");
}

static int explain_optimized(prism_buf *b, const prism_physical_plan *pp)
{
    int rc = prism_buf_printf(b, "\n-------- Logical Plan (Optimized) --------\n");
    size_t *next = malloc(pp->nops * sizeof *next);
    for (size_t i = 0; next && i < pp->nops; i++)
        next[i] = plan_op_next(pp, i);
    rc = rc ? rc : next ? tree(b, pp, next, optimized_line, pp->nops - 1, 0) : -1;
    free(next);
    return rc;
}

static int resources_text(prism_buf *b, const json_t *r)
{
    const char *k;
    json_t *v;
    int rc = 0;
    bool first = true;
    json_object_foreach((json_t *)r, k, v) {
        rc = rc ? rc
                : prism_buf_printf(b, "%s%s %.17g", first ? "" : ", ", k, json_number_value(v));
        first = false;
    }
    return rc;
}

static int stage_line(prism_buf *b, const void *ctx, size_t i)
{
    const prism_physical_plan *pp = ctx;
    const opt_stage *s = &pp->stages[i];
    size_t nl = 0;
    int *logical = stage_logical(pp, s, &nl);
    if (!logical)
        return -1;
    int rc = prism_buf_printf(b, "%s[%s]  ", stage_operator(s), s->name);
    rc = rc ? rc : plan_ops_ref(b, logical, nl);
    free(logical);
    if (rc == 0 && s->kind != PRISM_STAGE_LIMIT && s->kind != PRISM_STAGE_UNION) {
        rc = prism_buf_printf(b, "; ");
        rc = rc ? rc : resources_text(b, s->resources);
    }
    if (rc == 0 && s->compute == PRISM_COMPUTE_ACTORS) {
        rc = s->max_size ? prism_buf_printf(b, "; actors %lld-%lld", (long long)s->min_size,
                                            (long long)s->max_size)
                         : prism_buf_printf(b, "; actors %lld+", (long long)s->min_size);
    }
    if (rc == 0 && s->concurrency)
        rc = prism_buf_printf(b, "; concurrency %lld", (long long)s->concurrency);
    if (rc == 0 && s->min_rows)
        rc = prism_buf_printf(b, "; bundles of %lld+ rows", (long long)s->min_rows);
    if (rc == 0 && s->row_limit >= 0)
        rc = prism_buf_printf(b, "; stops after %lld rows", (long long)s->row_limit);
    return rc ? rc : prism_buf_printf(b, "\n");
}

static int explain_physical(prism_buf *b, const prism_physical_plan *pp)
{
    int rc = prism_buf_printf(b, "\n-------- Physical Plan --------\n");
    size_t top = 0; /* a write is the tree's root, the stages below it */
    if (pp->write) {
        rc = plan_op_display(b, pp->write->kind, pp->write->spec);
        rc = rc ? rc : prism_buf_printf(b, "  ");
        rc = rc ? rc : plan_ops_ref(b, pp->write->logical, pp->write->nlogical);
        rc = rc ? rc : prism_buf_printf(b, "; written by the executor\n");
        top = 1;
    }
    size_t *next = malloc(pp->nstages * sizeof *next);
    for (size_t i = 0; next && i < pp->nstages; i++)
        next[i] = pp->stages[i].next;
    rc = rc ? rc : next ? tree(b, pp, next, stage_line, pp->nstages - 1, top) : -1;
    free(next);
    return rc;
}

static void oom_error(prism_plan_error *err)
{
    if (err) {
        plan_ctx c = {err, -1, NULL, "plan", PRISM_OP_RANGE};
        plan_oom(&c);
    }
}

char *prism_plan_explain(const prism_plan *p, prism_plan_error *err)
{
    prism_physical_plan *pp;
    if (prism_plan_optimize(p, &pp, err) != PRISM_PLAN_OK)
        return NULL;
    prism_buf b;
    prism_buf_init(&b, (size_t)1 << 26);
    char *s = NULL;
    if (explain_logical(&b, p) == 0 && explain_optimized(&b, pp) == 0 &&
        explain_physical(&b, pp) == 0)
        s = prism_buf_take(&b, NULL);
    prism_buf_free(&b);
    prism_physical_plan_destroy(pp);
    if (!s)
        oom_error(err);
    return s;
}

json_t *prism_plan_explain_json(const prism_plan *p, prism_plan_error *err)
{
    prism_physical_plan *pp;
    if (prism_plan_optimize(p, &pp, err) != PRISM_PLAN_OK)
        return NULL;
    json_t *j = json_object(), *logical = json_array(), *optimized = json_array();
    bool ok = j != NULL;
    for (size_t i = 0; logical && i < p->nops; i++) {
        json_t *o = json_object();
        bool ook = o != NULL;
        set(o, "index", json_integer((json_int_t)i), &ook);
        set(o, "op", json_string(prism_plan_op_kind_name(p->ops[i].kind)), &ook);
        char *name = display_name(p->ops[i].kind, p->ops[i].full);
        set(o, "name", name ? json_string(name) : NULL, &ook);
        free(name);
        if (!ook || json_array_append_new(logical, o) < 0)
            ok = false;
        if (!ook)
            json_decref(o);
    }
    for (size_t i = 0; optimized && i < pp->nops; i++)
        if (json_array_append_new(optimized, opt_op_json(&pp->ops[i], false)) < 0)
            ok = false;
    set(j, "logical", logical, &ok);
    set(j, "optimized", optimized, &ok);
    set(j, "physical", prism_physical_plan_to_json(pp), &ok);
    prism_physical_plan_destroy(pp);
    if (!ok) {
        json_decref(j);
        oom_error(err);
        return NULL;
    }
    return j;
}
