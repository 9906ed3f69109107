/* The logical plan: parsing and validating plan JSON, writing it back in
 * canonical form, and the handle's accessors. The checks of each operator
 * are in prism_plan_ops.c, the field types in prism_plan_fields.c. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "prism_plan_internal.h"

const char *prism_plan_status_code(prism_plan_status s)
{
    switch (s) {
    case PRISM_PLAN_OK: return "ok";
    case PRISM_PLAN_INVALID: return "invalid_plan";
    case PRISM_PLAN_UNKNOWN_OPERATOR: return "unknown_operator";
    case PRISM_PLAN_UNSUPPORTED_OPERATOR: return "unsupported_operator";
    case PRISM_PLAN_NO_MEMORY: return "internal";
    }
    return "internal";
}

void plan_set_error(prism_plan_error *err, const prism_plan_error *from)
{
    if (err && err != from)
        *err = *from;
}

static void clear_error(prism_plan_error *err)
{
    if (err) {
        err->status = PRISM_PLAN_OK;
        err->op_index = -1;
        err->field[0] = '\0';
        err->message[0] = '\0';
    }
}

/* A context whose errors land in `err`, or in a scratch struct when the
 * caller passed NULL (the status is still needed). */
static plan_ctx ctx_for(prism_plan_error *err, const char *scope)
{
    plan_ctx c = {err, -1, NULL, scope, PRISM_OP_RANGE};
    return c;
}

static prism_plan *plan_new(void)
{
    prism_plan *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    clear_error(&p->error);
    p->options_full = json_object();
    p->options_min = json_object();
    plan_ctx c = ctx_for(NULL, "options");
    json_t *f, *m;
    if (!p->options_full || !p->options_min || plan_options_parse(&c, NULL, &f, &m) < 0) {
        prism_plan_destroy(p);
        return NULL;
    }
    json_decref(p->options_full);
    json_decref(p->options_min);
    p->options_full = f;
    p->options_min = m;
    return p;
}

void prism_plan_destroy(prism_plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nops; i++) {
        json_decref(p->ops[i].full);
        json_decref(p->ops[i].min);
    }
    free(p->ops);
    free(p->name);
    json_decref(p->options_full);
    json_decref(p->options_min);
    free(p);
}

static const plan_field name_field[] = {
    {"name", PF_STRING, 0, "null", 1, PRISM_PLAN_MAX_NAME, NULL},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};

/* Checks a plan's name (JSON string). 0 or -1. */
static int check_name(plan_ctx *c, json_t *name)
{
    const plan_field *const tabs[] = {name_field, NULL};
    json_t *obj = json_pack("{sO}", "name", name);
    json_t *f = json_object(), *m = json_object();
    int rc = obj && f && m ? plan_fields_read(c, tabs, obj, "", NULL, f, m) : plan_oom(c);
    json_decref(obj);
    json_decref(f);
    json_decref(m);
    return rc;
}

prism_plan_status prism_plan_create(const char *name, prism_plan **out, prism_plan_error *err)
{
    prism_plan_error scratch;
    if (!err)
        err = &scratch;
    clear_error(err);
    *out = NULL;
    plan_ctx c = ctx_for(err, "plan");
    if (name) {
        json_t *n = json_string(name);
        if (!n) {
            /* Not UTF-8, or no memory: jansson does not say which. */
            plan_fail(&c, PRISM_PLAN_INVALID, "name", "\"name\" must be UTF-8 text");
            return err->status;
        }
        int rc = check_name(&c, n);
        json_decref(n);
        if (rc < 0)
            return err->status;
    }
    prism_plan *p = plan_new();
    if (!p || (name && !(p->name = strdup(name)))) {
        prism_plan_destroy(p);
        plan_oom(&c);
        return err->status;
    }
    *out = p;
    return PRISM_PLAN_OK;
}

const prism_plan_error *prism_plan_last_error(const prism_plan *p)
{
    return p->error.status != PRISM_PLAN_OK ? &p->error : NULL;
}

prism_plan_status plan_usable(const prism_plan *p, prism_plan_error *err)
{
    if (p->error.status != PRISM_PLAN_OK) {
        plan_set_error(err, &p->error);
        return p->error.status;
    }
    if (p->nops == 0) {
        prism_plan_error scratch;
        plan_ctx c = ctx_for(err ? err : &scratch, "plan");
        plan_fail(&c, PRISM_PLAN_INVALID, "ops",
                  "\"ops\" must be a non-empty list of operators, starting with a read");
        return PRISM_PLAN_INVALID;
    }
    clear_error(err);
    return PRISM_PLAN_OK;
}

/* The rows a dataset (its operators' full forms, or {"ops": [...]}) makes,
 * when the plan alone says: a range or from_items read and operators that
 * keep every row (or a limit); -1 when only running it can tell. */
static int64_t static_rows(const json_t *ops)
{
    if (json_is_object(ops))
        ops = json_object_get(ops, "ops");
    int64_t n = -1;
    for (size_t i = 0; i < json_array_size(ops); i++) {
        const json_t *spec = json_array_get(ops, i);
        int k = plan_op_lookup(json_string_value(json_object_get(spec, "op")));
        const plan_op_info *info = k >= 0 ? plan_op_info_of((prism_plan_op_kind)k) : NULL;
        if (k == PRISM_OP_RANGE) {
            n = plan_get_int(spec, "n", 0);
        } else if (k == PRISM_OP_FROM_ITEMS) {
            n = (int64_t)json_array_size(json_object_get(spec, "items"));
        } else if (k == PRISM_OP_LIMIT) {
            int64_t l = plan_get_int(spec, "limit", 0);
            n = n >= 0 && n < l ? n : n >= 0 ? l : -1;
        } else if (k == PRISM_OP_UNION) {
            const json_t *other = json_object_get(spec, "other");
            for (size_t j = 0; n >= 0 && j < json_array_size(other); j++) {
                int64_t m = static_rows(json_array_get(other, j));
                n = m >= 0 ? n + m : -1;
            }
        } else if (!(info && info->row_preserving) && k != PRISM_OP_ZIP &&
                   k != PRISM_OP_RANDOM_SHUFFLE && k != PRISM_OP_RANDOMIZE_BLOCK_ORDER &&
                   k != PRISM_OP_REPARTITION && k != PRISM_OP_SORT) {
            n = -1; /* a read of files, a filter, a map_batches, a groupby... */
        }
        if (n < 0)
            return -1;
    }
    return n;
}

/* Checks and adds one operator; on failure the plan is unchanged. */
static int add_op(prism_plan *p, plan_ctx *c, json_t *op)
{
    if (p->nops >= PRISM_PLAN_MAX_OPS) {
        c->op_index = -1;
        c->scope = "plan";
        return plan_fail(c, PRISM_PLAN_INVALID, "ops", "\"ops\" holds more than %d operators",
                         PRISM_PLAN_MAX_OPS);
    }
    if (p->nops == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        plan_op *o = realloc(p->ops, cap * sizeof *o);
        if (!o)
            return plan_oom(c);
        p->ops = o;
        p->cap = cap;
    }
    if (p->nops && prism_plan_op_is_write(p->ops[p->nops - 1].kind)) {
        c->op_index = (int)p->nops;
        c->op_name = NULL;
        return plan_fail(c, PRISM_PLAN_INVALID, "op",
                         "a write ends the plan: nothing may follow ops[%zu] (%s)", p->nops - 1,
                         prism_plan_op_kind_name(p->ops[p->nops - 1].kind));
    }
    plan_op *o = &p->ops[p->nops];
    if (plan_op_parse(c, op, p->nops, p->nops ? p->ops[0].kind : PRISM_OP_RANGE, &o->kind, &o->full,
                      &o->min) < 0)
        return -1;
    if (o->kind == PRISM_OP_ZIP) { /* row counts known now need not wait for the run */
        json_t *own = json_array();
        for (size_t i = 0; own && i < p->nops; i++)
            json_array_append(own, p->ops[i].full);
        int64_t a = static_rows(own), b = static_rows(json_object_get(o->full, "other"));
        json_decref(own);
        if (a >= 0 && b >= 0 && a != b) {
            json_decref(o->full);
            json_decref(o->min);
            return plan_fail(c, PRISM_PLAN_INVALID, "other",
                             "the datasets have different row counts: %lld and %lld (zip joins "
                             "rows by their place: each must have as many)",
                             (long long)a, (long long)b);
        }
    }
    p->nops++;
    return 0;
}

int plan_dataset_parse(plan_ctx *c, const char *path, json_t *v, json_t **full, json_t **min)
{
    json_t *ops = json_object_get(v, "ops");
    if (!json_is_object(v) || json_object_size(v) != 1 || !json_is_array(ops) ||
        json_array_size(ops) == 0)
        return plan_fail(c, PRISM_PLAN_INVALID, path,
                         "\"%s\" must be a dataset: {\"ops\": [a read, then operators]}", path);
    if (json_array_size(ops) > PRISM_PLAN_MAX_OPS)
        return plan_fail(c, PRISM_PLAN_INVALID, path, "\"%s.ops\" holds %zu operators; at most %d",
                         path, json_array_size(ops), PRISM_PLAN_MAX_OPS);
    json_t *fops = json_array(), *mops = json_array();
    prism_plan_error sub;
    plan_ctx sc = ctx_for(&sub, "plan");
    prism_plan_op_kind first = PRISM_OP_RANGE;
    int rc = fops && mops ? 0 : plan_oom(c);
    for (size_t i = 0; rc == 0 && i < json_array_size(ops); i++) {
        prism_plan_op_kind k;
        json_t *f, *m;
        if (plan_op_parse(&sc, json_array_get(ops, i), i, first, &k, &f, &m) < 0) {
            /* its own message, placed: ops[2] (union): other[0].ops[1] (map): ... */
            char field[128];
            snprintf(field, sizeof field, "%s.ops[%zu]%s%s", path, i, sub.field[0] ? "." : "",
                     sub.field);
            rc = sub.status == PRISM_PLAN_NO_MEMORY
                     ? plan_oom(c)
                     : plan_fail(c, sub.status, field, "%s.%s", path, sub.message);
            break;
        }
        if (i == 0)
            first = k;
        if (json_array_append_new(fops, f) < 0 || json_array_append_new(mops, m) < 0) {
            rc = plan_oom(c);
            break;
        }
        const char *bad = prism_plan_op_is_write(k)                  ? "a write"
                          : k == PRISM_OP_UNION || k == PRISM_OP_ZIP ? "union or zip"
                                                                     : NULL;
        char at[160];
        snprintf(at, sizeof at, "%s.ops[%zu]", path, i);
        if (bad)
            rc = plan_fail(c, PRISM_PLAN_INVALID, at,
                           "%s.ops[%zu] (%s): a dataset given to %s cannot hold %s (%s)", path, i,
                           prism_plan_op_kind_name(k), c->op_name, bad,
                           *bad == 'a' ? "write the result of the whole plan"
                                       : "give every dataset to one union, or zip in turn");
    }
    json_t *jf = json_object(), *jm = json_object();
    if (rc == 0 && (!jf || !jm || json_object_set(jf, "ops", fops) < 0 ||
                    json_object_set(jm, "ops", mops) < 0))
        rc = plan_oom(c);
    json_decref(fops);
    json_decref(mops);
    if (rc != 0) {
        json_decref(jf);
        json_decref(jm);
        return rc;
    }
    *full = jf;
    *min = jm;
    return 0;
}

prism_plan_status plan_append(prism_plan *p, json_t *op, prism_plan_error *err)
{
    if (p->error.status != PRISM_PLAN_OK) {
        plan_set_error(err, &p->error);
        return p->error.status;
    }
    plan_ctx c = ctx_for(&p->error, "plan");
    if (!op)
        plan_oom(&c);
    else
        add_op(p, &c, op);
    plan_set_error(err, &p->error);
    return p->error.status;
}

prism_plan_status prism_plan_from_json_value(json_t *j, prism_plan **out, prism_plan_error *err)
{
    prism_plan_error scratch;
    if (!err)
        err = &scratch;
    clear_error(err);
    *out = NULL;
    plan_ctx c = ctx_for(err, "plan");
    if (!json_is_object(j)) {
        plan_fail(&c, PRISM_PLAN_INVALID, NULL,
                  "must be a JSON object {\"name\"?, \"ops\": [...], \"options\"?}");
        return err->status;
    }
    static const char *const keys[] = {"name", "ops", "options", NULL};
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        bool known = false;
        for (size_t i = 0; keys[i]; i++)
            known = known || !strcmp(key, keys[i]);
        if (!known) {
            char q[96];
            const char *near = plan_suggest(key, keys);
            if (near)
                plan_fail(&c, PRISM_PLAN_INVALID, key, "unknown field \"%s\"; did you mean \"%s\"?",
                          plan_quote(q, key), near);
            else
                plan_fail(&c, PRISM_PLAN_INVALID, key,
                          "unknown field \"%s\" (a plan has name, ops and options)",
                          plan_quote(q, key));
            return err->status;
        }
    }
    json_t *name = json_object_get(j, "name");
    if (name && !json_is_null(name) && check_name(&c, name) < 0)
        return err->status;
    json_t *ops = json_object_get(j, "ops");
    if (!json_is_array(ops) || json_array_size(ops) == 0) {
        plan_fail(&c, PRISM_PLAN_INVALID, "ops",
                  "\"ops\" must be a non-empty list of operators, starting with a read");
        return err->status;
    }
    if (json_array_size(ops) > PRISM_PLAN_MAX_OPS) {
        plan_fail(&c, PRISM_PLAN_INVALID, "ops", "\"ops\" holds %zu operators; at most %d",
                  json_array_size(ops), PRISM_PLAN_MAX_OPS);
        return err->status;
    }
    prism_plan *p = plan_new();
    if (!p) {
        plan_oom(&c);
        return err->status;
    }
    if (json_is_string(name) && !(p->name = strdup(json_string_value(name)))) {
        plan_oom(&c);
        goto fail;
    }
    json_t *of, *om;
    if (plan_options_parse(&c, json_object_get(j, "options"), &of, &om) < 0)
        goto fail;
    json_decref(p->options_full);
    json_decref(p->options_min);
    p->options_full = of;
    p->options_min = om;
    c.scope = "plan";
    for (size_t i = 0; i < json_array_size(ops); i++)
        if (add_op(p, &c, json_array_get(ops, i)) < 0)
            goto fail;
    *out = p;
    return PRISM_PLAN_OK;
fail:
    prism_plan_destroy(p);
    return err->status;
}

prism_plan_status prism_plan_from_json(const char *text, size_t len, prism_plan **out,
                                       prism_plan_error *err)
{
    prism_plan_error scratch;
    if (!err)
        err = &scratch;
    clear_error(err);
    *out = NULL;
    plan_ctx c = ctx_for(err, "plan");
    if (len > PRISM_PLAN_MAX_JSON) {
        plan_fail(&c, PRISM_PLAN_INVALID, NULL, "the plan is %zu bytes of JSON; at most %u", len,
                  PRISM_PLAN_MAX_JSON);
        return err->status;
    }
    json_error_t je;
    /* Duplicate keys are refused: one of two values would be dropped silently. */
    json_t *j = json_loadb(text ? text : "", text ? len : 0, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        plan_fail(&c, PRISM_PLAN_INVALID, NULL, "not valid JSON: %s (line %d, column %d)", je.text,
                  je.line, je.column);
        return err->status;
    }
    prism_plan_status st = prism_plan_from_json_value(j, out, err);
    json_decref(j);
    return st;
}

json_t *prism_plan_to_json_value(const prism_plan *p, prism_plan_error *err)
{
    if (plan_usable(p, err) != PRISM_PLAN_OK)
        return NULL;
    json_t *j = json_object(), *ops = json_array();
    if (!j || !ops)
        goto oom;
    if (p->name && json_object_set_new(j, "name", json_string(p->name)) < 0)
        goto oom;
    if (json_object_set(j, "ops", ops) < 0)
        goto oom;
    for (size_t i = 0; i < p->nops; i++)
        if (json_array_append_new(ops, json_deep_copy(p->ops[i].min)) < 0)
            goto oom;
    if (json_object_size(p->options_min) &&
        json_object_set_new(j, "options", json_deep_copy(p->options_min)) < 0)
        goto oom;
    json_decref(ops);
    return j;
oom:
    json_decref(ops);
    json_decref(j);
    if (err) {
        plan_ctx c = ctx_for(err, "plan");
        plan_oom(&c);
    }
    return NULL;
}

char *prism_plan_to_json(const prism_plan *p, prism_plan_error *err)
{
    json_t *j = prism_plan_to_json_value(p, err);
    if (!j)
        return NULL;
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!s && err) {
        plan_ctx c = ctx_for(err, "plan");
        plan_oom(&c);
    }
    return s;
}

const char *prism_plan_name(const prism_plan *p) { return p->name; }

size_t prism_plan_num_ops(const prism_plan *p) { return p->nops; }

prism_plan_op_kind prism_plan_op(const prism_plan *p, size_t i)
{
    return i < p->nops ? p->ops[i].kind : PRISM_OP_KIND_COUNT;
}

const json_t *prism_plan_op_spec(const prism_plan *p, size_t i)
{
    return i < p->nops ? p->ops[i].full : NULL;
}

const json_t *prism_plan_options_json(const prism_plan *p) { return p->options_full; }

prism_plan_path_kind prism_plan_path_kind_of(const char *path)
{
    if (!strncasecmp(path, "http://", 7) || !strncasecmp(path, "https://", 8) ||
        !strncasecmp(path, "s3://", 5))
        return PRISM_PATH_URL;
    if (strpbrk(path, "*?["))
        return PRISM_PATH_GLOB;
    return PRISM_PATH_LOCAL;
}
