/* Checking and normalizing JSON fields by table (prism_plan_internal.h).
 * Every operator, the built-in functions' arguments, `fn`, `compute` and the
 * options go through plan_fields_read, so that one field type gives one
 * message everywhere and the canonical form (defaults left out) and the full
 * form (defaults filled in) come from the same table. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "prism_id.h"
#include "prism_plan_internal.h"

/* Integers of JSON numbers stay exact up to here (JavaScript clients). */
#define EXACT_MAX 9007199254740992.0

/* ---------- errors ---------- */

int plan_fail(plan_ctx *c, prism_plan_status st, const char *field, const char *fmt, ...)
{
    prism_plan_error *e = c->err;
    if (!e)
        return -1;
    e->status = st;
    e->op_index = c->op_index;
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    int n;
    if (c->op_index >= 0 && c->op_name)
        n = snprintf(e->message, sizeof e->message, "ops[%d] (%s): ", c->op_index, c->op_name);
    else if (c->op_index >= 0)
        n = snprintf(e->message, sizeof e->message, "ops[%d]: ", c->op_index);
    else
        n = snprintf(e->message, sizeof e->message, "%s: ", c->scope ? c->scope : "plan");
    if (n < 0 || (size_t)n >= sizeof e->message)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message + n, sizeof e->message - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

int plan_oom(plan_ctx *c) { return plan_fail(c, PRISM_PLAN_NO_MEMORY, NULL, "out of memory"); }

const char *plan_quote(char buf[96], const char *s)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p && o < 60) {
        size_t seq = 1;
        if (*p >= 0x80) {
            /* A lead byte's length; the parser guaranteed valid UTF-8. */
            seq = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : 2;
            if (o + seq > 60)
                break;
        }
        for (size_t i = 0; i < seq && p[i]; i++)
            buf[o++] = (char)(seq == 1 && (p[i] < 0x20 || p[i] == 0x7f) ? '?' : p[i]);
        for (size_t i = 0; i < seq && *p; i++)
            p++;
    }
    if (*p) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* Levenshtein distance of two short strings (each at most 63 bytes). */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t sub = diag + (a[i - 1] != b[j - 1]);
            size_t best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
            row[j] = sub < best ? sub : best;
            diag = up;
        }
    }
    return row[lb];
}

const char *plan_suggest(const char *s, const char *const *names)
{
    if (strlen(s) > 63)
        return NULL;
    const char *best = NULL;
    size_t best_d = 3; /* two edits at most, and fewer than the word's length */
    for (size_t i = 0; names[i]; i++) {
        if (strlen(names[i]) > 63)
            continue;
        size_t d = distance(s, names[i]);
        if (d < best_d && d < strlen(s)) {
            best = names[i];
            best_d = d;
        }
    }
    return best;
}

/* ---------- values ---------- */

json_t *plan_number(double d)
{
    if (d == floor(d) && fabs(d) <= EXACT_MAX)
        return json_integer((json_int_t)d);
    return json_real(d);
}

int64_t plan_get_int(const json_t *o, const char *key, int64_t if_null)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : if_null;
}

double plan_get_num(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : 0;
}

json_t *plan_field_default(const plan_field *f)
{
    return f->dflt ? json_loads(f->dflt, JSON_DECODE_ANY, NULL) : NULL;
}

/* Whether every value inside `v` is nested at most `left` levels deep. */
static bool depth_ok(const json_t *v, int left)
{
    if (!json_is_object(v) && !json_is_array(v))
        return true;
    if (left <= 0)
        return false;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (!depth_ok(json_array_get(v, i), left - 1))
                return false;
        return true;
    }
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x) {
        if (!depth_ok(x, left - 1))
            return false;
    }
    return true;
}

static bool has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

static bool is_ident(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") ==
           strlen(s);
}

/* "a positive integer", "a non-negative number", "a number from 0 to 1". */
static void describe(char *out, size_t len, const plan_field *f, bool integer)
{
    const char *what = integer ? "integer" : "number";
    if ((f->min == 1 && integer) || (f->min == 0 && (f->flags & PFL_EXCL_MIN)))
        snprintf(out, len, "a positive %s", what);
    else if (f->min == 0 && f->max > 1)
        snprintf(out, len, "a non-negative %s", what);
    else if (f->max >= EXACT_MAX)
        snprintf(out, len, "%s %s of at least %g", integer ? "an" : "a", what, f->min);
    else
        snprintf(out, len, "%s %s from %g to %g", integer ? "an" : "a", what, f->min, f->max);
}

static int bad_number(plan_ctx *c, const plan_field *f, const char *path, bool integer)
{
    char what[96];
    describe(what, sizeof what, f, integer);
    return plan_fail(c, PRISM_PLAN_INVALID, path, "\"%s\" must be %s%s", path, what,
                     (f->flags & PFL_NULLABLE) ? " or null" : "");
}

/* A number of field `f`: 0 with *out set, or -1. */
static int read_number(plan_ctx *c, const plan_field *f, const char *path, json_t *v, bool integer,
                       double *out)
{
    if (integer ? !json_is_integer(v) : !json_is_number(v))
        return bad_number(c, f, path, integer);
    double d = integer ? (double)json_integer_value(v) : json_number_value(v);
    if (!isfinite(d) || d < f->min || ((f->flags & PFL_EXCL_MIN) && d <= f->min))
        return bad_number(c, f, path, integer);
    /* Integers compare as integers: 2^53 + 1 would round to 2^53 as a double. */
    if (integer ? json_integer_value(v) > (json_int_t)f->max : d > f->max)
        return plan_fail(c, PRISM_PLAN_INVALID, path, "\"%s\" must be at most %.17g", path, f->max);
    *out = d;
    return 0;
}

static int read_string(plan_ctx *c, const plan_field *f, const char *path, json_t *v)
{
    char q[96];
    if (!json_is_string(v))
        return plan_fail(c, PRISM_PLAN_INVALID, path, "\"%s\" must be a string", path);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (f->choices) {
        for (size_t i = 0; f->choices[i]; i++)
            if (!strcmp(s, f->choices[i]))
                return 0;
        char list[256] = "";
        for (size_t i = 0; f->choices[i]; i++) {
            size_t n = strlen(list);
            snprintf(list + n, sizeof list - n, "%s\"%s\"", i ? ", " : "", f->choices[i]);
        }
        return plan_fail(c, PRISM_PLAN_INVALID, path, "\"%s\" must be one of %s, not \"%s\"", path,
                         list, plan_quote(q, s));
    }
    if (f->min == 1 && f->max == 1 && len != 1)
        return plan_fail(c, PRISM_PLAN_INVALID, path, "\"%s\" must be a single ASCII character",
                         path);
    /* a single character is a delimiter: a tab (TSV) is one; the quote is not */
    if (f->min == 1 && f->max == 1 && s[0] == '\t')
        return 0;
    if (f->min == 1 && f->max == 1 && s[0] == '"')
        return plan_fail(c, PRISM_PLAN_INVALID, path,
                         "\"%s\" must not be '\"', which quotes fields", path);
    if (len < (size_t)f->min)
        return plan_fail(c, PRISM_PLAN_INVALID, path,
                         f->min == 1 ? "\"%s\" must not be empty" : "\"%s\" must be longer", path);
    if (len > (size_t)f->max)
        return plan_fail(c, PRISM_PLAN_INVALID, path, "\"%s\" must be at most %.0f bytes", path,
                         f->max);
    if (strlen(s) != len || has_control(s))
        return plan_fail(c, PRISM_PLAN_INVALID, path, "\"%s\" must not hold control characters",
                         path);
    return 0;
}

/* One path of a read: checked, not looked at on disk (the library does no I/O). */
static int read_path(plan_ctx *c, const char *path, json_t *v)
{
    char q[96];
    if (!json_is_string(v) || json_string_length(v) == 0)
        return plan_fail(
            c, PRISM_PLAN_INVALID, path,
            "\"%s\" must be a non-empty string (a path, a glob, an http(s) URL or an s3:// path)",
            path);
    const char *s = json_string_value(v);
    if (json_string_length(v) > PRISM_PLAN_MAX_STRING)
        return plan_fail(c, PRISM_PLAN_INVALID, path, "\"%s\" must be at most %d bytes", path,
                         PRISM_PLAN_MAX_STRING);
    if (strlen(s) != json_string_length(v) || has_control(s))
        return plan_fail(c, PRISM_PLAN_INVALID, path, "\"%s\" must not hold control characters",
                         path);
    const char *sep = strstr(s, "://");
    if (sep) {
        size_t n = (size_t)(sep - s);
        bool scheme =
            n > 0 && ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')) &&
            strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-") == n;
        if (scheme) {
            bool http = (n == 4 && !strncasecmp(s, "http", 4)) ||
                        (n == 5 && !strncasecmp(s, "https", 5));
            bool s3 = n == 2 && !strncasecmp(s, "s3", 2);
            if (!http && !s3)
                return plan_fail(c, PRISM_PLAN_INVALID, path,
                                 "\"%s\": URLs must be http://, https:// or s3://, not \"%s\"",
                                 path, plan_quote(q, s));
            if (!sep[3] || (s3 && sep[3] == '/'))
                return plan_fail(c, PRISM_PLAN_INVALID, path, "\"%s\": the URL has no %s", path,
                                 s3 ? "bucket" : "host");
            size_t bl = strcspn(sep + 3, "/");
            if (s3 && (bl > 255 || strspn(sep + 3, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
                                                   "TUVWXYZ0123456789.-_") < bl))
                return plan_fail(c, PRISM_PLAN_INVALID, path,
                                 "\"%s\": a bucket name is letters, digits, '.', '-' and '_', "
                                 "not \"%s\"",
                                 path, plan_quote(q, s));
        }
    }
    return 0;
}

static int read_paths(plan_ctx *c, const plan_field *f, const char *path, json_t *v, json_t **out)
{
    char sub[160];
    if (json_is_string(v)) {
        if (read_path(c, path, v) < 0)
            return -1;
        *out = json_pack("[s]", json_string_value(v));
        return *out ? 0 : plan_oom(c);
    }
    if (!json_is_array(v) || json_array_size(v) == 0)
        return plan_fail(c, PRISM_PLAN_INVALID, path,
                         "\"%s\" must be a path, a glob, an http(s) URL or an s3:// path, or a "
                         "non-empty list "
                         "of them",
                         path);
    if (json_array_size(v) > PRISM_PLAN_MAX_LIST)
        return plan_fail(c, PRISM_PLAN_INVALID, path, "\"%s\" lists %zu paths; at most %d", path,
                         json_array_size(v), PRISM_PLAN_MAX_LIST);
    for (size_t i = 0; i < json_array_size(v); i++) {
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        if (read_path(c, sub, json_array_get(v, i)) < 0)
            return -1;
    }
    *out = json_deep_copy(v);
    return *out ? 0 : plan_oom(c);
}

static int read_names(plan_ctx *c, const plan_field *f, const char *path, json_t *v, json_t **out)
{
    char q[96];
    if (!json_is_array(v) || json_array_size(v) == 0)
        return plan_fail(c, PRISM_PLAN_INVALID, path, "\"%s\" must be a non-empty list of names",
                         path);
    if (json_array_size(v) > PRISM_PLAN_MAX_LIST)
        return plan_fail(c, PRISM_PLAN_INVALID, path, "\"%s\" lists %zu names; at most %d", path,
                         json_array_size(v), PRISM_PLAN_MAX_LIST);
    /* An object as the set of names seen: duplicates found in linear time. */
    json_t *seen = json_object();
    if (!seen)
        return plan_oom(c);
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *s = json_array_get(v, i);
        const char *str = json_string_value(s);
        if (!json_is_string(s) || json_string_length(s) == 0 ||
            json_string_length(s) > (size_t)f->max || strlen(str) != json_string_length(s) ||
            has_control(str)) {
            json_decref(seen);
            return plan_fail(c, PRISM_PLAN_INVALID, path,
                             "\"%s[%zu]\" must be a name of 1 to %.0f bytes without control "
                             "characters",
                             path, i, f->max);
        }
        if (json_object_get(seen, str)) {
            json_decref(seen);
            return plan_fail(c, PRISM_PLAN_INVALID, path, "\"%s\" names \"%s\" twice", path,
                             plan_quote(q, str));
        }
        if (json_object_set_new(seen, str, json_true()) < 0) {
            json_decref(seen);
            return plan_oom(c);
        }
    }
    json_decref(seen);
    *out = json_deep_copy(v);
    return *out ? 0 : plan_oom(c);
}

/* A key: one column's name, or several (compared in turn). */
static int read_keys(plan_ctx *c, const plan_field *f, const char *path, json_t *v, json_t **out)
{
    if (!json_is_string(v))
        return read_names(c, f, path, v, out);
    json_t *list = json_pack("[O]", v);
    if (!list)
        return plan_oom(c);
    int rc = read_names(c, f, path, list, out);
    json_decref(list);
    return rc;
}

static const char *const agg_names[] = {"count", "sum", "min", "max", "mean", "std", NULL};

/* groupby's aggregations: each {"fn", "on"}; "on" is required except for count. */
static int read_aggs(plan_ctx *c, const char *path, json_t *v, json_t **out)
{
    char q[96];
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 256)
        return plan_fail(c, PRISM_PLAN_INVALID, path,
                         "\"%s\" must be a list of 1 to 256 aggregations {\"fn\", \"on\"}", path);
    json_t *list = json_array();
    if (!list)
        return plan_oom(c);
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *a = json_array_get(v, i), *fn = json_object_get(a, "fn"),
               *on = json_object_get(a, "on");
        const char *name = json_string_value(fn), *key;
        json_t *val;
        size_t k = 0;
        while (name && agg_names[k] && strcmp(agg_names[k], name))
            k++;
        if (!json_is_object(a) || !name || !agg_names[k]) {
            json_decref(list);
            return plan_fail(c, PRISM_PLAN_INVALID, path,
                             "\"%s[%zu].fn\" must be one of count, sum, min, max, mean, std", path,
                             i);
        }
        json_object_foreach(a, key, val)
            if (strcmp(key, "fn") && strcmp(key, "on")) {
                json_decref(list);
                return plan_fail(c, PRISM_PLAN_INVALID, path,
                                 "unknown field \"%s[%zu].%s\" (an aggregation has fn and on)",
                                 path, i, plan_quote(q, key));
            }
        bool count = !strcmp(name, "count");
        if ((on && (!json_is_string(on) || json_string_length(on) == 0 ||
                    json_string_length(on) > PRISM_PLAN_MAX_NAME ||
                    strlen(json_string_value(on)) != json_string_length(on) ||
                    has_control(json_string_value(on)))) ||
            (!on && !count)) {
            json_decref(list);
            return plan_fail(c, PRISM_PLAN_INVALID, path,
                             "\"%s[%zu].on\" must name a column (1 to %d bytes)%s", path, i,
                             PRISM_PLAN_MAX_NAME, count ? "" : "; only count takes none");
        }
        json_t *one = on ? json_pack("{sssO}", "fn", name, "on", on)
                         : json_pack("{ss}", "fn", name);
        if (!one || json_array_append_new(list, one) < 0) {
            json_decref(list);
            return plan_oom(c);
        }
    }
    *out = list;
    return 0;
}

static int read_size2(plan_ctx *c, const plan_field *f, const char *path, json_t *v, json_t **out)
{
    json_t *h = json_array_get(v, 0), *w = json_array_get(v, 1);
    if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(h) ||
        !json_is_integer(w) || json_integer_value(h) < f->min || json_integer_value(h) > f->max ||
        json_integer_value(w) < f->min || json_integer_value(w) > f->max)
        return plan_fail(c, PRISM_PLAN_INVALID, path,
                         "\"%s\" must be [height, width], each an integer from %.0f to %.0f%s",
                         path, f->min, f->max, (f->flags & PFL_NULLABLE) ? ", or null" : "");
    *out = json_deep_copy(v);
    return *out ? 0 : plan_oom(c);
}

static int read_numbers(plan_ctx *c, const plan_field *f, const char *path, json_t *v, json_t **out)
{
    size_t n = json_array_size(v);
    bool ok = json_is_array(v) && n >= 1 && n <= 4;
    for (size_t i = 0; ok && i < n; i++) {
        json_t *x = json_array_get(v, i);
        double d = json_number_value(x);
        ok = json_is_number(x) && isfinite(d) && d >= f->min && d <= f->max &&
             !((f->flags & PFL_EXCL_MIN) && d <= f->min);
    }
    if (!ok)
        return plan_fail(c, PRISM_PLAN_INVALID, path,
                         "\"%s\" must be a list of 1 to 4 %s numbers (one per channel)", path,
                         (f->flags & PFL_EXCL_MIN) ? "positive" : "finite");
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, plan_number(json_number_value(json_array_get(v, i)))) < 0) {
            json_decref(a);
            a = NULL;
        }
    *out = a;
    return a ? 0 : plan_oom(c);
}

static int read_resources(plan_ctx *c, const char *path, json_t *v, json_t **out)
{
    char q[96];
    if (!json_is_object(v))
        return plan_fail(c, PRISM_PLAN_INVALID, path,
                         "\"%s\" must be an object of resource names to amounts", path);
    if (json_object_size(v) > 64)
        return plan_fail(c, PRISM_PLAN_INVALID, path, "\"%s\" names %zu resources; at most 64",
                         path, json_object_size(v));
    json_t *r = json_object();
    if (!r)
        return plan_oom(c);
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
        const char *own = !strcmp(k, "CPU")      ? "num_cpus"
                          : !strcmp(k, "GPU")    ? "num_gpus"
                          : !strcmp(k, "memory") ? "memory"
                                                 : NULL;
        if (own) {
            json_decref(r);
            return plan_fail(c, PRISM_PLAN_INVALID, path,
                             "\"%s\": give %s as \"%s\", not in resources", path, k, own);
        }
        double d = json_number_value(x);
        if (strlen(k) == 0 || strlen(k) > PRISM_PLAN_MAX_NAME || has_control(k) ||
            !json_is_number(x) || !isfinite(d) || d < 0 || d > 1e9) {
            json_decref(r);
            return plan_fail(c, PRISM_PLAN_INVALID, path,
                             "\"%s.%s\" must be a resource name of 1 to %d bytes with an amount "
                             "from 0 to 1e9",
                             path, plan_quote(q, k), PRISM_PLAN_MAX_NAME);
        }
        /* An amount of 0 asks for nothing: left out, so {"a": 0} and {} fuse. */
        if (d > 0 && json_object_set_new(r, k, plan_number(d)) < 0) {
            json_decref(r);
            return plan_oom(c);
        }
    }
    *out = r;
    return 0;
}

static int read_free_json(plan_ctx *c, const char *path, json_t *v, bool list, json_t **out)
{
    if (list ? !json_is_array(v) : !json_is_object(v))
        return plan_fail(c, PRISM_PLAN_INVALID, path,
                         list ? "\"%s\" must be a list of rows" : "\"%s\" must be an object", path);
    if (list && json_array_size(v) > PRISM_PLAN_MAX_ITEMS)
        return plan_fail(c, PRISM_PLAN_INVALID, path, "\"%s\" holds %zu rows; at most %d", path,
                         json_array_size(v), PRISM_PLAN_MAX_ITEMS);
    if (!depth_ok(v, PRISM_PLAN_MAX_DEPTH))
        return plan_fail(c, PRISM_PLAN_INVALID, path, "\"%s\" nests deeper than %d levels", path,
                         PRISM_PLAN_MAX_DEPTH);
    /* A copy of its own: a caller's tree may change after the plan was made. */
    *out = json_deep_copy(v);
    return *out ? 0 : plan_oom(c);
}

/* ---------- fn and compute ---------- */

/* "fn" + "package" -> "fn.package", in `buf`. */
static const char *pre_field(char buf[160], const char *path, const char *name)
{
    snprintf(buf, 160, "%s.%s", path, name);
    return buf;
}

static const plan_field fn_fields[] = {
    {"package", PF_STRING, PFL_REQUIRED, NULL, 1, 64, NULL},
    {"function", PF_IDENT, PFL_REQUIRED, NULL, 1, PRISM_PLAN_MAX_NAME, NULL},
    {"args", PF_OBJECT, 0, "{}", 0, 0, NULL},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};
static const plan_field *const fn_tabs[] = {fn_fields, NULL};

static int read_fn(plan_ctx *c, const char *path, json_t *v, json_t **full, json_t **min)
{
    char q[96], pre[160], fp[160];
    if (!json_is_object(v))
        return plan_fail(c, PRISM_PLAN_INVALID, path,
                         "\"%s\" must be an object {\"package\", \"function\", \"args\"?}", path);
    json_t *f = json_object(), *m = json_object();
    if (!f || !m)
        goto oom;
    snprintf(pre, sizeof pre, "%s.", path);
    if (plan_fields_read(c, fn_tabs, v, pre, NULL, f, m) < 0)
        goto fail;
    const char *pkg = json_string_value(json_object_get(f, "package"));
    const char *fun = json_string_value(json_object_get(f, "function"));
    if (strcmp(pkg, "builtin") != 0) {
        if (!prism_is_hex(pkg, 64)) {
            plan_fail(c, PRISM_PLAN_INVALID, pre_field(fp, path, "package"),
                      "\"%s.package\" must be \"builtin\" or the sha256 of an uploaded package "
                      "(64 lowercase hex digits), not \"%s\"",
                      path, plan_quote(q, pkg));
            goto fail;
        }
        *full = f;
        *min = m;
        return 0;
    }
    const plan_builtin *b = plan_builtin_find(fun);
    if (!b) {
        const char *near = plan_suggest(fun, plan_builtin_names);
        char list[256] = "";
        for (size_t i = 0; plan_builtin_names[i]; i++) {
            size_t n = strlen(list);
            snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", plan_builtin_names[i]);
        }
        if (near)
            plan_fail(c, PRISM_PLAN_INVALID, pre_field(fp, path, "function"),
                      "\"%s.function\": no builtin \"%s\"; did you mean \"%s\"?", path,
                      plan_quote(q, fun), near);
        else
            plan_fail(c, PRISM_PLAN_INVALID, pre_field(fp, path, "function"),
                      "\"%s.function\": no builtin \"%s\" (builtins: %s)", path, plan_quote(q, fun),
                      list);
        goto fail;
    }
    if (!plan_op_info_of(c->kind)->builtins) {
        plan_fail(c, PRISM_PLAN_INVALID, path,
                  "\"%s\": the builtin \"%s\" transforms rows; it runs in map and map_batches, "
                  "not in %s",
                  path, fun, plan_op_info_of(c->kind)->name);
        goto fail;
    }
    /* The builtin's own arguments, by its table, replace the free-form ones. */
    json_t *af = json_object(), *am = json_object();
    if (!af || !am) {
        json_decref(af);
        json_decref(am);
        goto oom;
    }
    snprintf(pre, sizeof pre, "%s.args.", path);
    if (plan_fields_read(c, b->args, json_object_get(v, "args"), pre, NULL, af, am) < 0 ||
        (b->check && b->check(c, af) < 0)) {
        json_decref(af);
        json_decref(am);
        goto fail;
    }
    json_object_del(m, "args");
    if (json_object_set_new(f, "args", af) < 0 ||
        (json_object_size(am) ? json_object_set_new(m, "args", am) : (json_decref(am), 0)) < 0)
        goto oom;
    *full = f;
    *min = m;
    return 0;
oom:
    plan_oom(c);
fail:
    json_decref(f);
    json_decref(m);
    return -1;
}

static const char *const compute_kinds[] = {"tasks", "actors", NULL};
static const plan_field tasks_fields[] = {
    {"kind", PF_STRING, PFL_REQUIRED, NULL, 0, 0, compute_kinds},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};
static const plan_field actors_fields[] = {
    {"kind", PF_STRING, PFL_REQUIRED, NULL, 0, 0, compute_kinds},
    {"min_size", PF_INT, 0, "1", 1, 65536, NULL},
    {"max_size", PF_INT, PFL_NULLABLE, "null", 1, 65536, NULL},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};
static const plan_field *const tasks_tabs[] = {tasks_fields, NULL};
static const plan_field *const actors_tabs[] = {actors_fields, NULL};

static int read_compute(plan_ctx *c, const char *path, json_t *v, json_t **full, json_t **min)
{
    char pre[160];
    if (!json_is_object(v) || !json_is_string(json_object_get(v, "kind")))
        return plan_fail(c, PRISM_PLAN_INVALID, path,
                         "\"%s\" must be {\"kind\": \"tasks\"} or {\"kind\": \"actors\", "
                         "\"min_size\"?, \"max_size\"?}",
                         path);
    bool actors = !strcmp(json_string_value(json_object_get(v, "kind")), "actors");
    if (!actors && (json_object_get(v, "min_size") || json_object_get(v, "max_size")))
        return plan_fail(c, PRISM_PLAN_INVALID, path,
                         "\"%s\": only an actor pool (\"kind\": \"actors\") has a size", path);
    json_t *f = json_object(), *m = json_object();
    if (!f || !m) {
        json_decref(f);
        json_decref(m);
        return plan_oom(c);
    }
    snprintf(pre, sizeof pre, "%s.", path);
    if (plan_fields_read(c, actors ? actors_tabs : tasks_tabs, v, pre, NULL, f, m) < 0) {
        json_decref(f);
        json_decref(m);
        return -1;
    }
    json_t *maxv = json_object_get(f, "max_size");
    if (actors && json_is_integer(maxv) &&
        json_integer_value(maxv) < json_integer_value(json_object_get(f, "min_size"))) {
        json_decref(f);
        json_decref(m);
        return plan_fail(c, PRISM_PLAN_INVALID, pre_field(pre, path, "max_size"),
                         "\"%s.max_size\" must not be below \"%s.min_size\"", path, path);
    }
    *full = f;
    *min = m;
    return 0;
}

/* A non-empty list of other datasets, each as plan_dataset_parse checks it. */
static int read_datasets(plan_ctx *c, const plan_field *f, const char *path, json_t *v,
                         json_t **full, json_t **min)
{
    if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > (size_t)f->max)
        return plan_fail(c, PRISM_PLAN_INVALID, path,
                         "\"%s\" must be a list of 1 to %d datasets, each {\"ops\": [...]}", path,
                         (int)f->max);
    json_t *lf = json_array(), *lm = json_array();
    for (size_t i = 0; lf && lm && i < json_array_size(v); i++) {
        char at[192];
        snprintf(at, sizeof at, "%s[%zu]", path, i);
        json_t *df, *dm;
        if (plan_dataset_parse(c, at, json_array_get(v, i), &df, &dm) < 0) {
            json_decref(lf);
            json_decref(lm);
            return -1;
        }
        if (json_array_append_new(lf, df) < 0 || json_array_append_new(lm, dm) < 0) {
            json_decref(lf);
            lf = NULL;
        }
    }
    if (!lf || !lm) {
        json_decref(lf);
        json_decref(lm);
        return plan_oom(c);
    }
    *full = lf;
    *min = lm;
    return 0;
}

/* ---------- one field ---------- */

static int read_value(plan_ctx *c, const plan_field *f, const char *path, json_t *v, json_t **full,
                      json_t **min)
{
    *min = NULL;
    if (json_is_null(v) && (f->flags & PFL_NULLABLE)) {
        *full = json_null();
        return 0;
    }
    double d;
    switch (f->type) {
    case PF_INT:
        if (read_number(c, f, path, v, true, &d) < 0)
            return -1;
        *full = json_integer(json_integer_value(v));
        break;
    case PF_NUMBER:
        if (read_number(c, f, path, v, false, &d) < 0)
            return -1;
        *full = plan_number(d);
        break;
    case PF_BOOL:
        if (!json_is_boolean(v))
            return plan_fail(c, PRISM_PLAN_INVALID, path, "\"%s\" must be true or false", path);
        *full = json_incref(v);
        break;
    case PF_STRING:
        if (read_string(c, f, path, v) < 0)
            return -1;
        *full = json_string(json_string_value(v));
        break;
    case PF_IDENT: {
        char q[96];
        if (!json_is_string(v) || !is_ident(json_string_value(v)) ||
            json_string_length(v) > PRISM_PLAN_MAX_NAME)
            return plan_fail(c, PRISM_PLAN_INVALID, path,
                             "\"%s\" must be a function name (letters, digits and _, not "
                             "starting with a digit, at most %d bytes)%s%s%s",
                             path, PRISM_PLAN_MAX_NAME, json_is_string(v) ? ", not \"" : "",
                             json_is_string(v) ? plan_quote(q, json_string_value(v)) : "",
                             json_is_string(v) ? "\"" : "");
        *full = json_string(json_string_value(v));
        break;
    }
    case PF_PATHS:
        if (read_paths(c, f, path, v, full) < 0)
            return -1;
        break;
    case PF_NAMES:
        if (read_names(c, f, path, v, full) < 0)
            return -1;
        break;
    case PF_KEYS:
        if (read_keys(c, f, path, v, full) < 0)
            return -1;
        break;
    case PF_AGGS:
        if (read_aggs(c, path, v, full) < 0)
            return -1;
        break;
    case PF_SIZE2:
        if (read_size2(c, f, path, v, full) < 0)
            return -1;
        break;
    case PF_NUMBERS:
        if (read_numbers(c, f, path, v, full) < 0)
            return -1;
        break;
    case PF_FN: return read_fn(c, path, v, full, min);
    case PF_COMPUTE: return read_compute(c, path, v, full, min);
    case PF_RESOURCES:
        if (read_resources(c, path, v, full) < 0)
            return -1;
        break;
    case PF_ITEMS:
        if (read_free_json(c, path, v, true, full) < 0)
            return -1;
        break;
    case PF_OBJECT:
        if (read_free_json(c, path, v, false, full) < 0)
            return -1;
        break;
    case PF_DATASET: return plan_dataset_parse(c, path, v, full, min);
    case PF_DATASETS: return read_datasets(c, f, path, v, full, min);
    }
    return *full ? 0 : plan_oom(c);
}

static const plan_field *find_field(const plan_field *const *tabs, const char *name)
{
    for (size_t t = 0; tabs[t]; t++)
        for (const plan_field *f = tabs[t]; f->name; f++)
            if (!strcmp(f->name, name))
                return f;
    return NULL;
}

static int unknown_field(plan_ctx *c, const plan_field *const *tabs, const char *prefix,
                         const char *key)
{
    const char *names[96];
    size_t n = 0;
    for (size_t t = 0; tabs[t]; t++)
        for (const plan_field *f = tabs[t]; f->name && n < 95; f++)
            names[n++] = f->name;
    names[n] = NULL;
    char q[96], path[160], list[512] = "";
    snprintf(path, sizeof path, "%s%s", prefix, plan_quote(q, key));
    const char *near = plan_suggest(key, names);
    if (near)
        return plan_fail(c, PRISM_PLAN_INVALID, path,
                         "unknown field \"%s\"; did you mean \"%s%s\"?", path, prefix, near);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", names[i]);
    }
    return plan_fail(c, PRISM_PLAN_INVALID, path, "unknown field \"%s\" (%s takes: %s)", path,
                     *prefix      ? "it"
                     : c->op_name ? c->op_name
                     : c->scope   ? c->scope
                                  : "it",
                     n ? list : "no fields");
}

int plan_fields_read(plan_ctx *c, const plan_field *const *tabs, json_t *obj, const char *prefix,
                     const char *skip, json_t *full, json_t *min)
{
    const char *key;
    json_t *v;
    if (obj && !json_is_object(obj))
        return plan_fail(c, PRISM_PLAN_INVALID, prefix, "\"%.*s\" must be an object",
                         (int)(strlen(prefix) ? strlen(prefix) - 1 : 0), prefix);
    if (obj) {
        json_object_foreach(obj, key, v) {
            if (skip && !strcmp(key, skip))
                continue;
            if (!find_field(tabs, key))
                return unknown_field(c, tabs, prefix, key);
        }
    }
    char path[192];
    for (size_t t = 0; tabs[t]; t++) {
        for (const plan_field *f = tabs[t]; f->name; f++) {
            snprintf(path, sizeof path, "%s%s", prefix, f->name);
            v = obj ? json_object_get(obj, f->name) : NULL;
            json_t *dflt = plan_field_default(f);
            if (!v) {
                if (f->flags & PFL_REQUIRED)
                    return plan_fail(c, PRISM_PLAN_INVALID, path, "missing \"%s\"", path);
                if (!dflt)
                    return plan_oom(c);
                if (json_object_set_new(full, f->name, dflt) < 0)
                    return plan_oom(c);
                continue;
            }
            json_t *vf = NULL, *vm = NULL;
            if (read_value(c, f, path, v, &vf, &vm) < 0) {
                json_decref(dflt);
                return -1;
            }
            bool is_default = dflt && json_equal(vf, dflt);
            json_decref(dflt);
            if (!vm)
                vm = json_incref(vf);
            if (json_object_set_new(full, f->name, vf) < 0) {
                json_decref(vm);
                return plan_oom(c);
            }
            if (is_default)
                json_decref(vm);
            else if (json_object_set_new(min, f->name, vm) < 0)
                return plan_oom(c);
        }
    }
    return 0;
}
