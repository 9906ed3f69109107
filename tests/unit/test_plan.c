/* Dataset plans (libs/data/prism_plan.h): every operator parsed, every
 * validation error's message, the optimizer's fusion and limit pushdown,
 * explain, and the builder making the same JSON as a hand-written plan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "prism_plan.h"

#define PKG "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define FN(name) "{\"package\": \"" PKG "\", \"function\": \"" name "\"}"
#define BUILTIN(name, args)                                                                        \
    "{\"package\": \"builtin\", \"function\": \"" name "\", \"args\": " args "}"

static prism_plan *parse_ok(const char *text)
{
    prism_plan *p = NULL;
    prism_plan_error e;
    prism_plan_status st = prism_plan_from_json(text, strlen(text), &p, &e);
    if (st != PRISM_PLAN_OK)
        fail_msg("refused: %s\n  plan: %s", e.message, text);
    assert_non_null(p);
    return p;
}

/* The plan's canonical JSON, for comparisons. */
static json_t *canon(const prism_plan *p)
{
    prism_plan_error e;
    json_t *j = prism_plan_to_json_value(p, &e);
    if (!j)
        fail_msg("to_json: %s", e.message);
    return j;
}

static void assert_json_eq(json_t *got, const char *want_text)
{
    json_t *want = json_loads(want_text, JSON_DECODE_ANY, NULL);
    assert_non_null(want);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
        char *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
        fail_msg("JSON differs\n  got:  %s\n  want: %s", g, w);
    }
    json_decref(want);
}

/* to_json, from_json of it, to_json again: the same text. */
static void assert_round_trip(const prism_plan *p)
{
    char *a = prism_plan_to_json(p, NULL);
    assert_non_null(a);
    prism_plan *q = parse_ok(a);
    char *b = prism_plan_to_json(q, NULL);
    assert_string_equal(a, b);
    free(a);
    free(b);
    prism_plan_destroy(q);
}

static void expect_error(const char *text, prism_plan_status st, int op_index, const char *field,
                         const char *message)
{
    prism_plan *p = (prism_plan *)0x1;
    prism_plan_error e;
    prism_plan_status got = prism_plan_from_json(text, strlen(text), &p, &e);
    if (got != st || strcmp(e.message, message) != 0)
        fail_msg("plan: %s\n  got:  %s %s\n  want: %s %s", text, prism_plan_status_code(got),
                 e.message, prism_plan_status_code(st), message);
    assert_null(p);
    assert_int_equal(e.status, st);
    assert_int_equal(e.op_index, op_index);
    assert_string_equal(e.field, field);
}

/* ---------- parsing ---------- */

static const char *every_read[] = {
    "{\"op\": \"range\", \"n\": 1000, \"override_num_blocks\": 10, \"num_cpus\": 0.5, "
    "\"memory\": 1024, \"concurrency\": 4}",
    "{\"op\": \"from_items\", \"items\": [{\"a\": 1}, {\"a\": 2}, 3, \"x\", null]}",
    "{\"op\": \"read_images\", \"paths\": [\"/data/a\", \"/data/*.png\", "
    "\"https://example.com/x.jpg\"], \"size\": [224, 224], \"mode\": \"RGB\", "
    "\"include_paths\": true, \"file_extensions\": [\"png\", \"jpg\"]}",
    "{\"op\": \"read_binary_files\", \"paths\": \"/data\", \"include_paths\": true}",
    "{\"op\": \"read_text\", \"paths\": [\"a.txt\"], \"encoding\": \"utf-8\", "
    "\"drop_empty_lines\": false}",
    "{\"op\": \"read_jsonl\", \"paths\": \"http://host/rows.jsonl\", \"override_num_blocks\": 3}",
    "{\"op\": \"read_csv\", \"paths\": [\"a.csv\", \"b.csv\"], \"delimiter\": \";\"}",
};

static const char *every_one_to_one[] = {
    "{\"op\": \"map\", \"fn\": " FN("f") "}",
    "{\"op\": \"map_batches\", \"fn\": {\"package\": \"" PKG "\", \"function\": \"g\", "
    "\"args\": {\"k\": [1, {\"x\": true}]}}, \"batch_size\": 32, "
    "\"compute\": {\"kind\": \"actors\", \"min_size\": 2, \"max_size\": 8}, \"num_cpus\": 2, "
    "\"num_gpus\": 1, \"memory\": 1e9, \"resources\": {\"accel\": 1}}",
    "{\"op\": \"map_batches\", \"fn\": " FN("h") ", \"batch_size\": null, \"concurrency\": 3}",
    "{\"op\": \"filter\", \"fn\": " FN("keep") "}",
    "{\"op\": \"flat_map\", \"fn\": " FN("split") ", \"compute\": {\"kind\": \"tasks\"}}",
    "{\"op\": \"add_column\", \"col\": \"label\", \"fn\": " FN("label_of") "}",
    "{\"op\": \"select_columns\", \"columns\": [\"image\", \"label\"]}",
    "{\"op\": \"drop_columns\", \"columns\": [\"path\"]}",
    "{\"op\": \"map_batches\", \"fn\": " BUILTIN("decode_image", "{\"mode\": \"L\"}") "}",
    "{\"op\": \"map_batches\", \"fn\": " BUILTIN("random_crop",
                                                 "{\"size\": [8, 8], \"seed\": 7}") "}",
    "{\"op\": \"map\", \"fn\": " BUILTIN("center_crop", "{\"size\": [4, 6]}") "}",
    "{\"op\": \"map_batches\", \"fn\": " BUILTIN(
        "resize", "{\"size\": [2, 2], \"interpolation\": \"nearest\"}") "}",
    "{\"op\": \"map_batches\", \"fn\": " BUILTIN("flip",
                                                 "{\"direction\": \"vertical\", \"p\": 0.5}") "}",
    "{\"op\": \"map_batches\", \"fn\": " BUILTIN(
        "normalize", "{\"mean\": [0.485, 0.456, 0.406], \"std\": [0.229, 0.224, 0.225]}") "}",
    "{\"op\": \"map_batches\", \"fn\": " BUILTIN("cast", "{\"dtype\": \"float32\"}") "}",
    "{\"op\": \"limit\", \"limit\": 10}",
};

static void test_every_operator(void **state)
{
    (void)state;
    char text[4096];
    /* Each read alone, then each one-to-one operator after a read. */
    for (size_t i = 0; i < sizeof every_read / sizeof *every_read; i++) {
        snprintf(text, sizeof text, "{\"ops\": [%s]}", every_read[i]);
        prism_plan *p = parse_ok(text);
        assert_int_equal(prism_plan_num_ops(p), 1);
        assert_true(prism_plan_op_is_read(prism_plan_op(p, 0)));
        assert_round_trip(p);
        prism_plan_destroy(p);
    }
    for (size_t i = 0; i < sizeof every_one_to_one / sizeof *every_one_to_one; i++) {
        snprintf(text, sizeof text, "{\"ops\": [{\"op\": \"range\", \"n\": 5}, %s]}",
                 every_one_to_one[i]);
        prism_plan *p = parse_ok(text);
        assert_int_equal(prism_plan_num_ops(p), 2);
        assert_false(prism_plan_op_is_read(prism_plan_op(p, 1)));
        assert_round_trip(p);
        /* Every plan optimizes and explains. */
        char *x = prism_plan_explain(p, NULL);
        assert_non_null(x);
        free(x);
        prism_plan_destroy(p);
    }
    /* All of them in one plan, with a name and options. */
    char all[16384];
    size_t n =
        (size_t)snprintf(all, sizeof all, "{\"name\": \"every op\", \"ops\": [%s", every_read[2]);
    for (size_t i = 0; i < sizeof every_one_to_one / sizeof *every_one_to_one; i++)
        n += (size_t)snprintf(all + n, sizeof all - n, ", %s", every_one_to_one[i]);
    snprintf(all + n, sizeof all - n,
             "], \"options\": {\"memory_budget_bytes\": 1073741824, \"skip_corrupt\": true, "
             "\"preserve_order\": true, \"target_max_block_size\": 1048576}}");
    prism_plan *p = parse_ok(all);
    assert_string_equal(prism_plan_name(p), "every op");
    assert_int_equal(prism_plan_num_ops(p), 1 + sizeof every_one_to_one / sizeof *every_one_to_one);
    assert_round_trip(p);
    prism_plan_destroy(p);
    assert_string_equal(prism_plan_op_kind_name(PRISM_OP_MAP_BATCHES), "map_batches");
    assert_null(prism_plan_op_kind_name(PRISM_OP_KIND_COUNT));
}

static void test_defaults_filled(void **state)
{
    (void)state;
    prism_plan *p = parse_ok("{\"ops\": [{\"op\": \"read_images\", \"paths\": \"/d\"}, "
                             "{\"op\": \"map_batches\", \"fn\": " FN(
                                 "f") "}, "
                                      "{\"op\": \"map\", \"fn\": " BUILTIN("flip", "{}") "}]}");
    assert_json_eq((json_t *)prism_plan_op_spec(p, 0),
                   "{\"op\": \"read_images\", \"paths\": [\"/d\"], \"include_paths\": false, "
                   "\"file_extensions\": null, \"size\": null, \"mode\": null, "
                   "\"override_num_blocks\": null, \"num_cpus\": 1, \"memory\": 0, "
                   "\"concurrency\": null}");
    assert_json_eq((json_t *)prism_plan_op_spec(p, 1),
                   "{\"op\": \"map_batches\", \"fn\": {\"package\": \"" PKG "\", \"function\": "
                   "\"f\", \"args\": {}}, \"batch_size\": 1024, \"compute\": {\"kind\": "
                   "\"tasks\"}, \"num_cpus\": 1, \"num_gpus\": 0, \"memory\": 0, "
                   "\"resources\": {}, \"concurrency\": null}");
    /* A builtin's arguments get their defaults too. */
    assert_json_eq(json_object_get(prism_plan_op_spec(p, 2), "fn"),
                   "{\"package\": \"builtin\", \"function\": \"flip\", \"args\": "
                   "{\"direction\": \"horizontal\", \"p\": 1, \"seed\": null, "
                   "\"column\": \"image\"}}");
    assert_json_eq((json_t *)prism_plan_options_json(p),
                   "{\"memory_budget_bytes\": null, \"skip_corrupt\": false, "
                   "\"preserve_order\": false, \"target_max_block_size\": 134217728, "
                   "\"use_push_based_shuffle\": false}");
    prism_plan_destroy(p);
}

static void test_canonical_form(void **state)
{
    (void)state;
    /* Defaults written out, 1.0 for 1, a single path, zero resources: all
     * disappear or normalize in the canonical form. */
    prism_plan *p = parse_ok(
        "{\"ops\": [{\"op\": \"read_text\", \"paths\": \"/a\", \"num_cpus\": 1.0, "
        "\"drop_empty_lines\": true, \"encoding\": \"utf-8\"}, "
        "{\"op\": \"map_batches\", \"fn\": {\"package\": \"builtin\", \"function\": \"resize\", "
        "\"args\": {\"size\": [2, 3], \"interpolation\": \"bilinear\"}}, \"batch_size\": 1024, "
        "\"compute\": {\"kind\": \"tasks\"}, \"resources\": {\"accel\": 0}, "
        "\"concurrency\": null, \"num_gpus\": 0.0}], \"options\": {\"skip_corrupt\": false}}");
    json_t *j = canon(p);
    assert_json_eq(j, "{\"ops\": [{\"op\": \"read_text\", \"paths\": [\"/a\"]}, "
                      "{\"op\": \"map_batches\", \"fn\": {\"package\": \"builtin\", "
                      "\"function\": \"resize\", \"args\": {\"size\": [2, 3]}}}]}");
    json_decref(j);
    /* Keys in table order, compact. */
    char *s = prism_plan_to_json(p, NULL);
    assert_string_equal(s, "{\"ops\":[{\"op\":\"read_text\",\"paths\":[\"/a\"]},{\"op\":"
                           "\"map_batches\",\"fn\":{\"package\":\"builtin\",\"function\":"
                           "\"resize\",\"args\":{\"size\":[2,3]}}}]}");
    free(s);
    prism_plan_destroy(p);
}

/* ---------- validation errors ---------- */

typedef struct bad_case {
    const char *plan;
    prism_plan_status status;
    int op;
    const char *field;
    const char *message;
} bad_case;

#define R "{\"op\": \"range\", \"n\": 10}"

static const bad_case bad[] = {
    {"{\"ops\": [" R ", {\"op\": \"map_batches\", \"fn\": " FN("f") ", \"batch_size\": 0}]}",
     PRISM_PLAN_INVALID, 1, "batch_size",
     "ops[1] (map_batches): \"batch_size\" must be a positive integer or null"},
    {"{\"ops\": [" R ", {\"op\": \"map_batches\", \"fn\": " FN("f") ", \"batch_size\": \"8\"}]}",
     PRISM_PLAN_INVALID, 1, "batch_size",
     "ops[1] (map_batches): \"batch_size\" must be a positive integer or null"},
    {"{\"ops\": [" R ", {\"op\": \"map_batches\", \"fn\": " FN("f") ", \"batchsize\": 8}]}",
     PRISM_PLAN_INVALID, 1, "batchsize",
     "ops[1] (map_batches): unknown field \"batchsize\"; did you mean \"batch_size\"?"},
    {"{\"ops\": [" R ", {\"op\": \"map\", \"fn\": " FN("f") ", \"zzz\": 1}]}", PRISM_PLAN_INVALID,
     1, "zzz",
     "ops[1] (map): unknown field \"zzz\" (map takes: fn, compute, num_cpus, num_gpus, memory, "
     "resources, concurrency)"},
    {"{\"ops\": [" R ", {\"op\": \"mapbatches\"}]}", PRISM_PLAN_UNKNOWN_OPERATOR, 1, "op",
     "ops[1]: unknown operator \"mapbatches\"; did you mean \"map_batches\"?"},
    {"{\"ops\": [" R ", {\"op\": \"window\"}]}", PRISM_PLAN_UNKNOWN_OPERATOR, 1, "op",
     "ops[1]: unknown operator \"window\" (reads: range, from_items, read_images, "
     "read_binary_files, read_text, read_jsonl, read_csv; then map, map_batches, filter, "
     "flat_map, add_column, select_columns, drop_columns, limit, random_shuffle, "
     "randomize_block_order, sort, groupby, repartition, unique, map_groups, union, zip; last, "
     "write_jsonl, write_csv, write_images or write_binary)"},
    {"{\"ops\": [" R ", {\"op\": \"write_images\", \"path\": \"/o\", \"file_format\": "
     "\"gif\"}]}",
     PRISM_PLAN_INVALID, 1, "file_format",
     "ops[1] (write_images): \"file_format\" must be one of \"png\", \"jpeg\", not \"gif\""},
    {"{\"ops\": [" R ", {\"op\": \"write_jsonl\", \"path\": \"/o\"}, {\"op\": \"limit\", "
     "\"limit\": 1}]}",
     PRISM_PLAN_INVALID, 2, "op",
     "ops[2]: a write ends the plan: nothing may follow ops[1] (write_jsonl)"},
    {"{\"ops\": [" R ", {\"op\": \"write_csv\"}]}", PRISM_PLAN_INVALID, 1, "path",
     "ops[1] (write_csv): missing \"path\""},
    {"{\"ops\": [" R ", {\"op\": \"sort\", \"key\": []}]}", PRISM_PLAN_INVALID, 1, "key",
     "ops[1] (sort): \"key\" must be a non-empty list of names"},
    {"{\"ops\": [" R ", {\"op\": \"groupby\", \"key\": \"a\", \"aggs\": [{\"fn\": \"sum\"}]}]}",
     PRISM_PLAN_INVALID, 1, "aggs",
     "ops[1] (groupby): \"aggs[0].on\" must name a column (1 to 128 bytes); only count takes "
     "none"},
    {"{\"ops\": [" R ", {\"op\": \"repartition\"}]}", PRISM_PLAN_INVALID, 1, "num_blocks",
     "ops[1] (repartition): missing \"num_blocks\""},
    {"{\"ops\": [{\"op\": \"map\", \"fn\": " FN("f") "}]}", PRISM_PLAN_INVALID, 0, "op",
     "ops[0] (map): a plan starts with a read (range, from_items, read_images, "
     "read_binary_files, read_text, read_jsonl, read_csv)"},
    {"{\"ops\": [" R ", {\"op\": \"read_csv\", \"paths\": \"a\"}]}", PRISM_PLAN_INVALID, 1, "op",
     "ops[1] (read_csv): a plan has one read, and it comes first (ops[0] is range)"},
    {"{\"ops\": [" R ", 7]}", PRISM_PLAN_INVALID, 1, "",
     "ops[1]: must be an object {\"op\": NAME, ...fields}"},
    {"{\"ops\": [{\"n\": 3}]}", PRISM_PLAN_INVALID, 0, "op",
     "ops[0]: missing \"op\" (the operator's name)"},
    {"{\"ops\": [{\"op\": 3}]}", PRISM_PLAN_INVALID, 0, "op", "ops[0]: \"op\" must be a string"},
    {"{\"ops\": [{\"op\": \"range\"}]}", PRISM_PLAN_INVALID, 0, "n",
     "ops[0] (range): missing \"n\""},
    {"{\"ops\": [{\"op\": \"range\", \"n\": -1}]}", PRISM_PLAN_INVALID, 0, "n",
     "ops[0] (range): \"n\" must be a non-negative integer"},
    {"{\"ops\": [{\"op\": \"range\", \"n\": 2.5}]}", PRISM_PLAN_INVALID, 0, "n",
     "ops[0] (range): \"n\" must be a non-negative integer"},
    {"{\"ops\": [{\"op\": \"range\", \"n\": 9007199254740993}]}", PRISM_PLAN_INVALID, 0, "n",
     "ops[0] (range): \"n\" must be at most 9007199254740992"},
    {"{\"ops\": [{\"op\": \"range\", \"n\": 1, \"override_num_blocks\": 0}]}", PRISM_PLAN_INVALID,
     0, "override_num_blocks",
     "ops[0] (range): \"override_num_blocks\" must be a positive integer or null"},
    {"{\"ops\": [{\"op\": \"from_items\", \"items\": {}}]}", PRISM_PLAN_INVALID, 0, "items",
     "ops[0] (from_items): \"items\" must be a list of rows"},
    {"{\"ops\": [{\"op\": \"from_items\", \"items\": [[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}]}",
     PRISM_PLAN_INVALID, 0, "items", "ops[0] (from_items): \"items\" nests deeper than 16 levels"},
    {"{\"ops\": [{\"op\": \"read_images\"}]}", PRISM_PLAN_INVALID, 0, "paths",
     "ops[0] (read_images): missing \"paths\""},
    {"{\"ops\": [{\"op\": \"read_images\", \"paths\": []}]}", PRISM_PLAN_INVALID, 0, "paths",
     "ops[0] (read_images): \"paths\" must be a path, a glob, an http(s) URL or an s3:// path, "
     "or a non-empty list of them"},
    {"{\"ops\": [{\"op\": \"read_images\", \"paths\": [\"a\", 3]}]}", PRISM_PLAN_INVALID, 0,
     "paths[1]",
     "ops[0] (read_images): \"paths[1]\" must be a non-empty string (a path, a glob, an "
     "http(s) URL or an s3:// path)"},
    {"{\"ops\": [{\"op\": \"read_images\", \"paths\": \"gs://bucket/k\"}]}", PRISM_PLAN_INVALID, 0,
     "paths",
     "ops[0] (read_images): \"paths\": URLs must be http://, https:// or s3://, not "
     "\"gs://bucket/k\""},
    {"{\"ops\": [{\"op\": \"read_images\", \"paths\": \"s3:///k\"}]}", PRISM_PLAN_INVALID, 0,
     "paths", "ops[0] (read_images): \"paths\": the URL has no bucket"},
    {"{\"ops\": [{\"op\": \"read_images\", \"paths\": \"s3://evil.example:80#/k\"}]}",
     PRISM_PLAN_INVALID, 0, "paths",
     "ops[0] (read_images): \"paths\": a bucket name is letters, digits, '.', '-' and '_', not "
     "\"s3://evil.example:80#/k\""},
    {"{\"ops\": [{\"op\": \"read_images\", \"paths\": \"https://\"}]}", PRISM_PLAN_INVALID, 0,
     "paths", "ops[0] (read_images): \"paths\": the URL has no host"},
    {"{\"ops\": [{\"op\": \"read_images\", \"paths\": \"a\\tb\"}]}", PRISM_PLAN_INVALID, 0, "paths",
     "ops[0] (read_images): \"paths\" must not hold control characters"},
    {"{\"ops\": [{\"op\": \"read_images\", \"paths\": \"a\", \"size\": [0, 2]}]}",
     PRISM_PLAN_INVALID, 0, "size",
     "ops[0] (read_images): \"size\" must be [height, width], each an integer from 1 to 65536, "
     "or null"},
    {"{\"ops\": [{\"op\": \"read_images\", \"paths\": \"a\", \"mode\": \"CMYK\"}]}",
     PRISM_PLAN_INVALID, 0, "mode",
     "ops[0] (read_images): \"mode\" must be one of \"RGB\", \"RGBA\", \"L\", not \"CMYK\""},
    {"{\"ops\": [{\"op\": \"read_images\", \"paths\": \"a\", \"file_extensions\": [\"png\", "
     "\"png\"]}]}",
     PRISM_PLAN_INVALID, 0, "file_extensions",
     "ops[0] (read_images): \"file_extensions\" names \"png\" twice"},
    {"{\"ops\": [{\"op\": \"read_images\", \"paths\": \"a\", \"include_paths\": 1}]}",
     PRISM_PLAN_INVALID, 0, "include_paths",
     "ops[0] (read_images): \"include_paths\" must be true or false"},
    {"{\"ops\": [{\"op\": \"read_images\", \"paths\": \"a\", \"delimiter\": \",\"}]}",
     PRISM_PLAN_INVALID, 0, "delimiter",
     "ops[0] (read_images): unknown field \"delimiter\" (read_images takes: paths, "
     "include_paths, file_extensions, size, mode, override_num_blocks, num_cpus, memory, "
     "concurrency)"},
    {"{\"ops\": [{\"op\": \"read_csv\", \"paths\": \"a\", \"delimiter\": \";;\"}]}",
     PRISM_PLAN_INVALID, 0, "delimiter",
     "ops[0] (read_csv): \"delimiter\" must be a single ASCII character"},
    {"{\"ops\": [{\"op\": \"read_csv\", \"paths\": \"a\", \"delimiter\": \"\\n\"}]}",
     PRISM_PLAN_INVALID, 0, "delimiter",
     "ops[0] (read_csv): \"delimiter\" must not hold control characters"},
    {"{\"ops\": [{\"op\": \"read_csv\", \"paths\": \"a\", \"delimiter\": \"\\\"\"}]}",
     PRISM_PLAN_INVALID, 0, "delimiter",
     "ops[0] (read_csv): \"delimiter\" must not be '\"', which quotes fields"},
    {"{\"ops\": [{\"op\": \"read_text\", \"paths\": \"a\", \"encoding\": \"latin-1\"}]}",
     PRISM_PLAN_INVALID, 0, "encoding",
     "ops[0] (read_text): \"encoding\" must be one of \"utf-8\", not \"latin-1\""},
    {"{\"ops\": [" R ", {\"op\": \"map\"}]}", PRISM_PLAN_INVALID, 1, "fn",
     "ops[1] (map): missing \"fn\""},
    {"{\"ops\": [" R ", {\"op\": \"map\", \"fn\": \"f\"}]}", PRISM_PLAN_INVALID, 1, "fn",
     "ops[1] (map): \"fn\" must be an object {\"package\", \"function\", \"args\"?}"},
    {"{\"ops\": [" R ", {\"op\": \"map\", \"fn\": {\"function\": \"f\"}}]}", PRISM_PLAN_INVALID, 1,
     "fn.package", "ops[1] (map): missing \"fn.package\""},
    {"{\"ops\": [" R ", {\"op\": \"map\", \"fn\": {\"package\": \"ABC\", \"function\": \"f\"}}]}",
     PRISM_PLAN_INVALID, 1, "fn.package",
     "ops[1] (map): \"fn.package\" must be \"builtin\" or the sha256 of an uploaded package (64 "
     "lowercase hex digits), not \"ABC\""},
    {"{\"ops\": [" R ", {\"op\": \"map\", \"fn\": {\"package\": \"" PKG "\", \"function\": "
     "\"no-dash\"}}]}",
     PRISM_PLAN_INVALID, 1, "fn.function",
     "ops[1] (map): \"fn.function\" must be a function name (letters, digits and _, not "
     "starting with a digit, at most 128 bytes), not \"no-dash\""},
    {"{\"ops\": [" R ", {\"op\": \"map\", \"fn\": {\"package\": \"" PKG "\", \"function\": "
     "\"f\", \"args\": []}}]}",
     PRISM_PLAN_INVALID, 1, "fn.args", "ops[1] (map): \"fn.args\" must be an object"},
    {"{\"ops\": [" R ", {\"op\": \"map\", \"fn\": {\"package\": \"" PKG "\", \"function\": "
     "\"f\", \"kwargs\": {}}}]}",
     PRISM_PLAN_INVALID, 1, "fn.kwargs",
     "ops[1] (map): unknown field \"fn.kwargs\"; did you mean \"fn.args\"?"},
    {"{\"ops\": [" R ", {\"op\": \"map\", \"fn\": " BUILTIN("resise", "{}") "}]}",
     PRISM_PLAN_INVALID, 1, "fn.function",
     "ops[1] (map): \"fn.function\": no builtin \"resise\"; did you mean \"resize\"?"},
    {"{\"ops\": [" R ", {\"op\": \"map\", \"fn\": " BUILTIN("blur", "{}") "}]}", PRISM_PLAN_INVALID,
     1, "fn.function",
     "ops[1] (map): \"fn.function\": no builtin \"blur\" (builtins: decode_image, random_crop, "
     "center_crop, resize, flip, normalize, cast)"},
    {"{\"ops\": [" R ", {\"op\": \"filter\", \"fn\": " BUILTIN("flip", "{}") "}]}",
     PRISM_PLAN_INVALID, 1, "fn",
     "ops[1] (filter): \"fn\": the builtin \"flip\" transforms rows; it runs in map and "
     "map_batches, not in filter"},
    {"{\"ops\": [" R ", {\"op\": \"map_batches\", \"fn\": " BUILTIN("resize", "{}") "}]}",
     PRISM_PLAN_INVALID, 1, "fn.args.size", "ops[1] (map_batches): missing \"fn.args.size\""},
    {"{\"ops\": [" R ", {\"op\": \"map_batches\", \"fn\": " BUILTIN(
         "resize", "{\"size\": [2, 2], \"antialias\": true}") "}]}",
     PRISM_PLAN_INVALID, 1, "fn.args.antialias",
     "ops[1] (map_batches): unknown field \"fn.args.antialias\" (it takes: size, interpolation, "
     "column)"},
    {"{\"ops\": [" R
     ", {\"op\": \"map_batches\", \"fn\": " BUILTIN("random_crop", "{\"size\": [2]}") "}]}",
     PRISM_PLAN_INVALID, 1, "fn.args.size",
     "ops[1] (map_batches): \"fn.args.size\" must be [height, width], each an integer from 1 "
     "to 65536"},
    {"{\"ops\": [" R ", {\"op\": \"map_batches\", \"fn\": " BUILTIN("flip", "{\"p\": 1.5}") "}]}",
     PRISM_PLAN_INVALID, 1, "fn.args.p", "ops[1] (map_batches): \"fn.args.p\" must be at most 1"},
    {"{\"ops\": [" R ", {\"op\": \"map_batches\", \"fn\": " BUILTIN("flip", "{\"p\": -0.5}") "}]}",
     PRISM_PLAN_INVALID, 1, "fn.args.p",
     "ops[1] (map_batches): \"fn.args.p\" must be a number from 0 to 1"},
    {"{\"ops\": [" R ", {\"op\": \"map_batches\", \"fn\": " BUILTIN(
         "normalize", "{\"mean\": [0.5], \"std\": [0]}") "}]}",
     PRISM_PLAN_INVALID, 1, "fn.args.std",
     "ops[1] (map_batches): \"fn.args.std\" must be a list of 1 to 4 positive numbers (one per "
     "channel)"},
    {"{\"ops\": [" R ", {\"op\": \"map_batches\", \"fn\": " BUILTIN(
         "normalize", "{\"mean\": [0.5, 0.5, 0.5], \"std\": [0.2]}") "}]}",
     PRISM_PLAN_INVALID, 1, "fn.args.std",
     "ops[1] (map_batches): \"fn.args.std\" has 1 numbers and \"fn.args.mean\" 3: one of each "
     "per channel"},
    {"{\"ops\": [" R
     ", {\"op\": \"map_batches\", \"fn\": " BUILTIN("cast", "{\"dtype\": \"float16\"}") "}]}",
     PRISM_PLAN_INVALID, 1, "fn.args.dtype",
     "ops[1] (map_batches): \"fn.args.dtype\" must be one of \"uint8\", \"int32\", \"int64\", "
     "\"float32\", \"float64\", not \"float16\""},
    {"{\"ops\": [" R ", {\"op\": \"map\", \"fn\": " FN("f") ", \"compute\": \"actors\"}]}",
     PRISM_PLAN_INVALID, 1, "compute",
     "ops[1] (map): \"compute\" must be {\"kind\": \"tasks\"} or {\"kind\": \"actors\", "
     "\"min_size\"?, \"max_size\"?}"},
    {"{\"ops\": [" R ", {\"op\": \"map\", \"fn\": " FN("f") ", \"compute\": {\"kind\": \"gpu\"}}]}",
     PRISM_PLAN_INVALID, 1, "compute.kind",
     "ops[1] (map): \"compute.kind\" must be one of \"tasks\", \"actors\", not \"gpu\""},
    {"{\"ops\": [" R ", {\"op\": \"map\", \"fn\": " FN("f") ", \"compute\": {\"kind\": "
                                                            "\"tasks\", \"max_size\": 3}}]}",
     PRISM_PLAN_INVALID, 1, "compute",
     "ops[1] (map): \"compute\": only an actor pool (\"kind\": \"actors\") has a size"},
    {"{\"ops\": [" R
     ", {\"op\": \"map\", \"fn\": " FN("f") ", \"compute\": {\"kind\": "
                                            "\"actors\", \"min_size\": 4, \"max_size\": 2}}]}",
     PRISM_PLAN_INVALID, 1, "compute.max_size",
     "ops[1] (map): \"compute.max_size\" must not be below \"compute.min_size\""},
    {"{\"ops\": [" R ", {\"op\": \"map\", \"fn\": " FN("f") ", \"compute\": {\"kind\": "
                                                            "\"actors\", \"min_size\": 0}}]}",
     PRISM_PLAN_INVALID, 1, "compute.min_size",
     "ops[1] (map): \"compute.min_size\" must be a positive integer"},
    {"{\"ops\": [" R ", {\"op\": \"map\", \"fn\": " FN("f") ", \"compute\": {\"kind\": "
                                                            "\"actors\"}, \"concurrency\": 4}]}",
     PRISM_PLAN_INVALID, 1, "concurrency",
     "ops[1] (map): \"concurrency\" is for tasks; an actor pool's size is \"compute.min_size\" "
     "and \"compute.max_size\""},
    {"{\"ops\": [" R ", {\"op\": \"map\", \"fn\": " FN("f") ", \"num_cpus\": -1}]}",
     PRISM_PLAN_INVALID, 1, "num_cpus", "ops[1] (map): \"num_cpus\" must be a non-negative number"},
    {"{\"ops\": [" R ", {\"op\": \"map\", \"fn\": " FN("f") ", \"num_gpus\": true}]}",
     PRISM_PLAN_INVALID, 1, "num_gpus", "ops[1] (map): \"num_gpus\" must be a non-negative number"},
    {"{\"ops\": [" R ", {\"op\": \"map\", \"fn\": " FN("f") ", \"resources\": {\"CPU\": 2}}]}",
     PRISM_PLAN_INVALID, 1, "resources",
     "ops[1] (map): \"resources\": give CPU as \"num_cpus\", not in resources"},
    {"{\"ops\": [" R ", {\"op\": \"map\", \"fn\": " FN("f") ", \"resources\": {\"accel\": -1}}]}",
     PRISM_PLAN_INVALID, 1, "resources",
     "ops[1] (map): \"resources.accel\" must be a resource name of 1 to 128 bytes with an amount "
     "from 0 to 1e9"},
    {"{\"ops\": [" R ", {\"op\": \"map\", \"fn\": " FN("f") ", \"concurrency\": 0}]}",
     PRISM_PLAN_INVALID, 1, "concurrency",
     "ops[1] (map): \"concurrency\" must be a positive integer or null"},
    {"{\"ops\": [" R ", {\"op\": \"add_column\", \"fn\": " FN("f") "}]}", PRISM_PLAN_INVALID, 1,
     "col", "ops[1] (add_column): missing \"col\""},
    {"{\"ops\": [" R ", {\"op\": \"select_columns\", \"columns\": []}]}", PRISM_PLAN_INVALID, 1,
     "columns", "ops[1] (select_columns): \"columns\" must be a non-empty list of names"},
    {"{\"ops\": [" R ", {\"op\": \"drop_columns\", \"columns\": [\"a\", \"a\"]}]}",
     PRISM_PLAN_INVALID, 1, "columns", "ops[1] (drop_columns): \"columns\" names \"a\" twice"},
    {"{\"ops\": [" R ", {\"op\": \"drop_columns\", \"columns\": [\"\"]}]}", PRISM_PLAN_INVALID, 1,
     "columns",
     "ops[1] (drop_columns): \"columns[0]\" must be a name of 1 to 128 bytes without control "
     "characters"},
    {"{\"ops\": [" R ", {\"op\": \"limit\"}]}", PRISM_PLAN_INVALID, 1, "limit",
     "ops[1] (limit): missing \"limit\""},
    {"{\"ops\": [" R ", {\"op\": \"limit\", \"limit\": -5}]}", PRISM_PLAN_INVALID, 1, "limit",
     "ops[1] (limit): \"limit\" must be a non-negative integer"},
    {"{\"ops\": [" R "], \"options\": {\"skip_corrupt\": \"yes\"}}", PRISM_PLAN_INVALID, -1,
     "skip_corrupt", "options: \"skip_corrupt\" must be true or false"},
    {"{\"ops\": [" R "], \"options\": {\"memory_budget\": 1}}", PRISM_PLAN_INVALID, -1,
     "memory_budget",
     "options: unknown field \"memory_budget\" (options takes: memory_budget_bytes, "
     "skip_corrupt, preserve_order, target_max_block_size, use_push_based_shuffle)"},
    {"{\"ops\": [" R "], \"options\": {\"target_max_block_size\": 10}}", PRISM_PLAN_INVALID, -1,
     "target_max_block_size",
     "options: \"target_max_block_size\" must be an integer of at least 1024"},
    {"{\"ops\": [" R "], \"options\": []}", PRISM_PLAN_INVALID, -1, "options",
     "plan: \"options\" must be an object"},
    {"{\"ops\": [" R "], \"option\": {}}", PRISM_PLAN_INVALID, -1, "option",
     "plan: unknown field \"option\"; did you mean \"options\"?"},
    {"{\"ops\": [" R "], \"version\": 2}", PRISM_PLAN_INVALID, -1, "version",
     "plan: unknown field \"version\" (a plan has name, ops and options)"},
    {"{\"ops\": [" R "], \"name\": 3}", PRISM_PLAN_INVALID, -1, "name",
     "plan: \"name\" must be a string"},
    {"{\"ops\": [" R "], \"name\": \"\"}", PRISM_PLAN_INVALID, -1, "name",
     "plan: \"name\" must not be empty"},
    {"{\"ops\": []}", PRISM_PLAN_INVALID, -1, "ops",
     "plan: \"ops\" must be a non-empty list of operators, starting with a read"},
    {"{}", PRISM_PLAN_INVALID, -1, "ops",
     "plan: \"ops\" must be a non-empty list of operators, starting with a read"},
    {"[]", PRISM_PLAN_INVALID, -1, "",
     "plan: must be a JSON object {\"name\"?, \"ops\": [...], \"options\"?}"},
    {"{\"ops\": [" R "]", PRISM_PLAN_INVALID, -1, "",
     "plan: not valid JSON: '}' expected near end of file (line 1, column 34)"},
    {"{\"ops\": [{\"op\": \"range\", \"n\": 1, \"n\": 2}]}", PRISM_PLAN_INVALID, -1, "",
     "plan: not valid JSON: duplicate object key near '\"n\"' (line 1, column 36)"},
};

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_error(bad[i].plan, bad[i].status, bad[i].op, bad[i].field, bad[i].message);
    assert_string_equal(prism_plan_status_code(PRISM_PLAN_OK), "ok");
    assert_string_equal(prism_plan_status_code(PRISM_PLAN_INVALID), "invalid_plan");
    assert_string_equal(prism_plan_status_code(PRISM_PLAN_UNKNOWN_OPERATOR), "unknown_operator");
    assert_string_equal(prism_plan_status_code(PRISM_PLAN_UNSUPPORTED_OPERATOR),
                        "unsupported_operator");
    assert_string_equal(prism_plan_status_code(PRISM_PLAN_NO_MEMORY), "internal");
}

/* A plan text with `n` copies of `op` after a range. */
static char *repeat_ops(const char *op, size_t n)
{
    size_t len = 64 + n * (strlen(op) + 2);
    char *s = malloc(len);
    size_t o = (size_t)snprintf(s, len, "{\"ops\": [" R);
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(s + o, len - o, ", %s", op);
    snprintf(s + o, len - o, "]}");
    return s;
}

static void test_size_limits(void **state)
{
    (void)state;
    char *s = repeat_ops("{\"op\": \"limit\", \"limit\": 1}", PRISM_PLAN_MAX_OPS - 1);
    prism_plan *p = parse_ok(s);
    prism_plan_destroy(p);
    free(s);
    s = repeat_ops("{\"op\": \"limit\", \"limit\": 1}", PRISM_PLAN_MAX_OPS);
    expect_error(s, PRISM_PLAN_INVALID, -1, "ops",
                 "plan: \"ops\" holds 129 operators; at most 128");
    free(s);

    /* A path of PRISM_PLAN_MAX_STRING bytes passes, one more does not. */
    size_t len = PRISM_PLAN_MAX_STRING + 64;
    char *path = malloc(PRISM_PLAN_MAX_STRING + 2), *text = malloc(len);
    memset(path, 'a', PRISM_PLAN_MAX_STRING);
    path[PRISM_PLAN_MAX_STRING] = '\0';
    snprintf(text, len, "{\"ops\": [{\"op\": \"read_text\", \"paths\": \"%s\"}]}", path);
    prism_plan_destroy(parse_ok(text));
    strcat(path, "a");
    snprintf(text, len, "{\"ops\": [{\"op\": \"read_text\", \"paths\": \"%s\"}]}", path);
    expect_error(text, PRISM_PLAN_INVALID, 0, "paths",
                 "ops[0] (read_text): \"paths\" must be at most 4096 bytes");
    free(path);
    free(text);

    /* Names: a function of 129 bytes. */
    char fn[300];
    memset(fn, 'f', 129);
    fn[129] = '\0';
    char plan[600];
    snprintf(plan, sizeof plan,
             "{\"ops\": [" R ", {\"op\": \"map\", \"fn\": {\"package\": \"" PKG "\", \"function\": "
             "\"%s\"}}]}",
             fn);
    prism_plan *q = (prism_plan *)0x1;
    prism_plan_error e;
    assert_int_equal(prism_plan_from_json(plan, strlen(plan), &q, &e), PRISM_PLAN_INVALID);
    assert_string_equal(e.field, "fn.function");
    assert_null(q);

    /* A list of paths over PRISM_PLAN_MAX_LIST. */
    json_t *paths = json_array();
    for (int i = 0; i <= PRISM_PLAN_MAX_LIST; i++)
        json_array_append_new(paths, json_string("p"));
    json_t *j = json_pack("{s[{sssO}]}", "ops", "op", "read_text", "paths", paths);
    assert_int_equal(prism_plan_from_json_value(j, &q, &e), PRISM_PLAN_INVALID);
    assert_string_equal(e.message,
                        "ops[0] (read_text): \"paths\" lists 65537 paths; at most 65536");
    json_array_remove(paths, 0);
    assert_int_equal(prism_plan_from_json_value(j, &q, &e), PRISM_PLAN_OK);
    prism_plan_destroy(q);
    json_decref(paths);
    json_decref(j);

    /* Plan text over PRISM_PLAN_MAX_JSON is refused before parsing. */
    assert_int_equal(prism_plan_from_json("{}", PRISM_PLAN_MAX_JSON + 1, &q, &e),
                     PRISM_PLAN_INVALID);
    assert_string_equal(e.message, "plan: the plan is 16777217 bytes of JSON; at most 16777216");
    /* Unicode is kept; messages cut long user text on a character boundary. */
    p = parse_ok("{\"name\": \"d\\u00e9j\\u00e0 vu\", \"ops\": [{\"op\": \"read_images\", "
                 "\"paths\": \"/donn\\u00e9es\"}]}");
    assert_string_equal(prism_plan_name(p), "d\xc3\xa9j\xc3\xa0 vu");
    prism_plan_destroy(p);
    char longop[200] = "{\"ops\": [{\"op\": \"";
    for (int i = 0; i < 40; i++)
        strcat(longop, "\xc3\xa9");
    strcat(longop, "\"}]}");
    assert_int_equal(prism_plan_from_json(longop, strlen(longop), &q, &e),
                     PRISM_PLAN_UNKNOWN_OPERATOR);
    assert_non_null(strstr(e.message, "\xc3\xa9...\" ("));
}

/* ---------- the optimizer ---------- */

static prism_physical_plan *optimize(const char *text)
{
    prism_plan *p = parse_ok(text);
    prism_physical_plan *pp = NULL;
    prism_plan_error e;
    if (prism_plan_optimize(p, &pp, &e) != PRISM_PLAN_OK)
        fail_msg("optimize: %s", e.message);
    prism_plan_destroy(p);
    return pp;
}

static json_int_t plan_n(const json_t *spec)
{
    return json_integer_value(json_object_get(spec, "n"));
}

/* The stages' names joined by " | ". */
static void assert_stages(const prism_physical_plan *pp, const char *want)
{
    char got[4096] = "";
    for (size_t i = 0; i < prism_physical_plan_num_stages(pp); i++) {
        prism_plan_stage s;
        prism_physical_plan_stage(pp, i, &s);
        if (i)
            strcat(got, " | ");
        strncat(got, s.name, sizeof got - strlen(got) - 1);
    }
    assert_string_equal(got, want);
}

#define DECODE "{\"op\": \"map_batches\", \"fn\": " BUILTIN("decode_image", "{}") "}"
#define CROP                                                                                       \
    "{\"op\": \"map_batches\", \"fn\": " BUILTIN("random_crop", "{\"size\": [224, 224]}") "}"
#define FLIP "{\"op\": \"map_batches\", \"fn\": " BUILTIN("flip", "{\"p\": 0.5}") "}"
#define READ_BIN "{\"op\": \"read_binary_files\", \"paths\": \"/data\"}"

static void test_fusion(void **state)
{
    (void)state;
    /* read -> decode -> crop -> flip: one task per block. */
    prism_physical_plan *pp = optimize("{\"ops\": [" READ_BIN ", " DECODE ", " CROP ", " FLIP "]}");
    assert_stages(pp, "ReadBinaryFiles->MapBatches(decode_image)->MapBatches(random_crop)->"
                      "MapBatches(flip)");
    prism_plan_stage s;
    prism_physical_plan_stage(pp, 0, &s);
    assert_int_equal(s.kind, PRISM_STAGE_READ);
    assert_int_equal(s.compute, PRISM_COMPUTE_TASKS);
    assert_int_equal(s.num_ops, 4);
    assert_true(s.num_cpus == 1 && s.num_gpus == 0);
    assert_json_eq((json_t *)s.resources, "{\"CPU\": 1}");
    assert_int_equal(s.concurrency, 0);
    assert_int_equal(s.min_rows_per_bundle, PRISM_PLAN_DEFAULT_BATCH_SIZE);
    assert_int_equal(s.row_limit, -1);
    const json_t *spec;
    const int *logical;
    size_t nl;
    assert_int_equal(prism_physical_plan_op(pp, 0, 2, &spec, &logical, &nl), PRISM_OP_MAP_BATCHES);
    assert_int_equal(nl, 1);
    assert_int_equal(logical[0], 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(spec, "fn"), "function")),
                        "random_crop");
    assert_int_equal(prism_physical_plan_op(pp, 0, 4, NULL, NULL, NULL), PRISM_OP_KIND_COUNT);
    prism_physical_plan_destroy(pp);

    /* A change of resources is a boundary; the same resources again fuse. */
    pp = optimize(
        "{\"ops\": [" READ_BIN ", " DECODE ", "
        "{\"op\": \"map_batches\", \"fn\": " FN(
            "a") ", \"num_gpus\": 1}, "
                 "{\"op\": \"map_batches\", \"fn\": " FN(
                     "b") ", \"num_gpus\": 1.0}, "
                          "{\"op\": \"map\", \"fn\": " FN(
                              "c") ", \"num_cpus\": 2}, "
                                   "{\"op\": \"map\", \"fn\": " FN(
                                       "d") ", \"num_cpus\": 2, \"resources\": "
                                            "{\"accel\": 1}}, "
                                            "{\"op\": \"map\", \"fn\": " FN(
                                                "e") ", \"num_cpus\": 2, \"memory\": 100}]}");
    assert_stages(pp, "ReadBinaryFiles->MapBatches(decode_image) | "
                      "MapBatches(a)->MapBatches(b) | Map(c) | Map(d) | Map(e)");
    prism_physical_plan_stage(pp, 1, &s);
    assert_json_eq((json_t *)s.resources, "{\"CPU\": 1, \"GPU\": 1}");
    prism_physical_plan_stage(pp, 3, &s);
    assert_json_eq((json_t *)s.resources, "{\"CPU\": 2, \"accel\": 1}");
    prism_physical_plan_stage(pp, 4, &s);
    assert_json_eq((json_t *)s.resources, "{\"CPU\": 2, \"memory\": 100}");
    prism_physical_plan_destroy(pp);

    /* Tasks then an actor pool: a boundary. The same pool again fuses; another
     * pool, or tasks after it, do not. Projections join the pool's stage. */
    pp = optimize(
        "{\"ops\": [" READ_BIN ", " DECODE ", "
        "{\"op\": \"map_batches\", \"fn\": " FN(
            "embed") ", \"num_gpus\": 1, "
                     "\"compute\": {\"kind\": \"actors\", \"min_size\": 2, \"max_size\": 4}, "
                     "\"batch_size\": 64}, "
                     "{\"op\": \"map_batches\", \"fn\": " FN(
                         "score") ", \"num_gpus\": 1, "
                                  "\"compute\": {\"kind\": \"actors\", \"min_size\": 2, \"max_size\": 4}, "
                                  "\"batch_size\": 128}, "
                                  "{\"op\": \"select_columns\", \"columns\": [\"score\"]}, "
                                  "{\"op\": \"map_batches\", \"fn\": " FN(
                                      "other") ", \"num_gpus\": 1, "
                                               "\"compute\": {\"kind\": \"actors\", \"min_size\": 2}}, "
                                               "{\"op\": \"map\", \"fn\": " FN(
                                                   "post") ", \"num_gpus\": 1}]}");
    assert_stages(pp, "ReadBinaryFiles->MapBatches(decode_image) | "
                      "MapBatches(embed)->MapBatches(score)->SelectColumns | "
                      "MapBatches(other) | Map(post)");
    prism_physical_plan_stage(pp, 1, &s);
    assert_int_equal(s.kind, PRISM_STAGE_MAP);
    assert_int_equal(s.compute, PRISM_COMPUTE_ACTORS);
    assert_int_equal(s.min_size, 2);
    assert_int_equal(s.max_size, 4);
    assert_int_equal(s.min_rows_per_bundle, 128);
    prism_physical_plan_stage(pp, 2, &s);
    assert_int_equal(s.max_size, 0);
    prism_physical_plan_stage(pp, 3, &s);
    assert_int_equal(s.compute, PRISM_COMPUTE_TASKS);
    prism_physical_plan_destroy(pp);

    /* Concurrency caps: unset fuses with set (the set one holds), two
     * different caps do not. A whole-block batch size asks no bundle. */
    pp = optimize(
        "{\"ops\": [{\"op\": \"range\", \"n\": 100, \"concurrency\": 4}, "
        "{\"op\": \"map\", \"fn\": " FN("a") "}, "
                                             "{\"op\": \"map\", \"fn\": " FN(
                                                 "b") ", \"concurrency\": 4}, "
                                                      "{\"op\": \"map_batches\", \"fn\": " FN(
                                                          "c") ", \"concurrency\": 8, "
                                                               "\"batch_size\": null}]}");
    assert_stages(pp, "ReadRange->Map(a)->Map(b) | MapBatches(c)");
    prism_physical_plan_stage(pp, 0, &s);
    assert_int_equal(s.concurrency, 4);
    assert_int_equal(s.min_rows_per_bundle, 0);
    prism_physical_plan_stage(pp, 1, &s);
    assert_int_equal(s.concurrency, 8);
    assert_int_equal(s.min_rows_per_bundle, 0);
    prism_physical_plan_destroy(pp);

    /* A read asking for other resources than the map after it: a boundary. */
    pp = optimize("{\"ops\": [{\"op\": \"read_images\", \"paths\": \"/i\", \"num_cpus\": 0.5}, "
                  "{\"op\": \"map\", \"fn\": " FN("a") "}]}");
    assert_stages(pp, "ReadImages | Map(a)");
    prism_physical_plan_destroy(pp);
}

static void test_limit_boundary(void **state)
{
    (void)state;
    /* A limit after an operator that may change the row count stays: a
     * stage of its own, which the stage before may stop at. */
    prism_physical_plan *pp = optimize("{\"ops\": [" READ_BIN ", " DECODE ", "
                                       "{\"op\": \"limit\", \"limit\": 100}, " CROP "]}");
    assert_stages(pp, "ReadBinaryFiles->MapBatches(decode_image) | Limit(100) | "
                      "MapBatches(random_crop)");
    prism_plan_stage s;
    prism_physical_plan_stage(pp, 0, &s);
    assert_int_equal(s.row_limit, 100);
    prism_physical_plan_stage(pp, 1, &s);
    assert_int_equal(s.kind, PRISM_STAGE_LIMIT);
    assert_int_equal(s.limit, 100);
    assert_int_equal(s.num_ops, 1);
    assert_json_eq((json_t *)s.resources, "{}");
    prism_physical_plan_stage(pp, 2, &s);
    assert_int_equal(s.row_limit, -1);
    prism_physical_plan_destroy(pp);
}

static void test_limit_pushdown(void **state)
{
    (void)state;
    /* Into range, past map, add_column and the projections: range makes 10
     * rows and no limit stage is left. */
    prism_physical_plan *pp =
        optimize("{\"ops\": [{\"op\": \"range\", \"n\": 1000}, {\"op\": \"map\", \"fn\": " FN(
            "f") "}, "
                 "{\"op\": \"add_column\", \"col\": \"y\", \"fn\": " FN(
                     "g") "}, "
                          "{\"op\": \"select_columns\", \"columns\": [\"y\"]}, "
                          "{\"op\": \"limit\", \"limit\": 10}]}");
    assert_stages(pp, "ReadRange->Map(f)->AddColumn(y)->SelectColumns");
    const json_t *spec;
    const int *logical;
    size_t nl;
    assert_int_equal(prism_physical_plan_op(pp, 0, 0, &spec, &logical, &nl), PRISM_OP_RANGE);
    assert_int_equal(plan_n(spec), 10);
    assert_int_equal(nl, 2);
    assert_int_equal(logical[0], 0);
    assert_int_equal(logical[1], 4);
    prism_physical_plan_destroy(pp);

    /* A limit larger than the range changes nothing but is absorbed. */
    pp = optimize("{\"ops\": [{\"op\": \"range\", \"n\": 5}, {\"op\": \"limit\", \"limit\": 9}]}");
    assert_stages(pp, "ReadRange");
    prism_physical_plan_op(pp, 0, 0, &spec, NULL, NULL);
    assert_int_equal(plan_n(spec), 5);
    prism_physical_plan_destroy(pp);

    /* from_items keeps its first rows; merged limits take the smallest. */
    pp = optimize("{\"ops\": [{\"op\": \"from_items\", \"items\": [1, 2, 3, 4, 5]}, "
                  "{\"op\": \"limit\", \"limit\": 4}, {\"op\": \"drop_columns\", "
                  "\"columns\": [\"z\"]}, {\"op\": \"limit\", \"limit\": 2}]}");
    assert_stages(pp, "FromItems->DropColumns");
    prism_physical_plan_op(pp, 0, 0, &spec, &logical, &nl);
    assert_json_eq(json_object_get(spec, "items"), "[1, 2]");
    assert_int_equal(nl, 3);
    prism_physical_plan_destroy(pp);

    /* Not past filter, flat_map or map_batches (they change the row count):
     * the limit stays after them, ahead of the maps that follow. */
    static const char *blockers[] = {
        "{\"op\": \"filter\", \"fn\": " FN("keep") "}",
        "{\"op\": \"flat_map\", \"fn\": " FN("split") "}",
        "{\"op\": \"map_batches\", \"fn\": " FN("batch") "}",
    };
    static const char *want[] = {
        "ReadRange->Filter(keep) | Limit(3) | Map(f)",
        "ReadRange->FlatMap(split) | Limit(3) | Map(f)",
        "ReadRange->MapBatches(batch) | Limit(3) | Map(f)",
    };
    for (size_t i = 0; i < 3; i++) {
        char text[1024];
        snprintf(text, sizeof text,
                 "{\"ops\": [{\"op\": \"range\", \"n\": 100}, %s, {\"op\": \"map\", \"fn\": " FN(
                     "f") "}, {\"op\": \"limit\", \"limit\": 3}]}",
                 blockers[i]);
        pp = optimize(text);
        assert_stages(pp, want[i]);
        prism_physical_plan_op(pp, 0, 0, &spec, NULL, NULL);
        assert_int_equal(plan_n(spec), 100);
        prism_physical_plan_destroy(pp);
    }

    /* A file read cannot take the limit itself: the limit goes right after
     * the read's leading projections, before the first operator doing work. */
    pp = optimize(
        "{\"ops\": [{\"op\": \"read_images\", \"paths\": \"/i\"}, "
        "{\"op\": \"select_columns\", \"columns\": [\"image\"]}, "
        "{\"op\": \"map\", \"fn\": " FN("f") "}, "
                                             "{\"op\": \"drop_columns\", \"columns\": [\"x\"]}, "
                                             "{\"op\": \"limit\", \"limit\": 7}]}");
    assert_stages(pp, "ReadImages->SelectColumns | Limit(7) | Map(f)->DropColumns");
    prism_plan_stage s;
    prism_physical_plan_stage(pp, 0, &s);
    assert_int_equal(s.row_limit, 7);
    prism_physical_plan_destroy(pp);
    /* ... and with nothing after the read but projections, at the end. */
    pp = optimize("{\"ops\": [{\"op\": \"read_text\", \"paths\": \"/t\"}, "
                  "{\"op\": \"limit\", \"limit\": 7}, "
                  "{\"op\": \"select_columns\", \"columns\": [\"text\"]}]}");
    assert_stages(pp, "ReadText->SelectColumns | Limit(7)");
    prism_physical_plan_destroy(pp);
    /* limit 0 is a plan too. */
    pp = optimize("{\"ops\": [{\"op\": \"range\", \"n\": 5}, {\"op\": \"limit\", \"limit\": 0}]}");
    prism_physical_plan_op(pp, 0, 0, &spec, NULL, NULL);
    assert_int_equal(plan_n(spec), 0);
    prism_physical_plan_destroy(pp);
}

/* ---------- explain ---------- */

static const char *explain_plan =
    "{\"name\": \"train\", \"ops\": [{\"op\": \"read_binary_files\", \"paths\": \"/data\"}, " DECODE
    ", " CROP ", " FLIP ", "
    "{\"op\": \"map_batches\", \"fn\": " FN(
        "embed") ", \"num_gpus\": 1, \"batch_size\": 64, "
                 "\"compute\": {\"kind\": \"actors\", \"min_size\": 1, \"max_size\": 2}}, "
                 "{\"op\": \"select_columns\", \"columns\": [\"embedding\"]}, "
                 "{\"op\": \"limit\", \"limit\": 1000}]}";

static void test_explain(void **state)
{
    (void)state;
    prism_plan *p = parse_ok(explain_plan);
    prism_plan_error e;
    char *text = prism_plan_explain(p, &e);
    assert_non_null(text);
    assert_string_equal(
        text,
        "-------- Logical Plan --------\n"
        "Limit(1000)  ops[6]\n"
        "+- SelectColumns  ops[5]\n"
        "   +- MapBatches(embed)  ops[4]\n"
        "      +- MapBatches(flip)  ops[3]\n"
        "         +- MapBatches(random_crop)  ops[2]\n"
        "            +- MapBatches(decode_image)  ops[1]\n"
        "               +- ReadBinaryFiles  ops[0]\n"
        "\n"
        "-------- Logical Plan (Optimized) --------\n"
        "Limit(1000)  ops[6]\n"
        "+- SelectColumns  ops[5]\n"
        "   +- MapBatches(embed)  ops[4]\n"
        "      +- MapBatches(flip)  ops[3]\n"
        "         +- MapBatches(random_crop)  ops[2]\n"
        "            +- MapBatches(decode_image)  ops[1]\n"
        "               +- ReadBinaryFiles  ops[0]\n"
        "\n"
        "-------- Physical Plan --------\n"
        "LimitOperator[Limit(1000)]  ops[6]\n"
        "+- ActorPoolMapOperator[MapBatches(embed)->SelectColumns]  ops[4-5]; CPU 1, GPU 1; "
        "actors 1-2; bundles of 64+ rows; stops after 1000 rows\n"
        "   +- TaskPoolMapOperator[ReadBinaryFiles->MapBatches(decode_image)->"
        "MapBatches(random_crop)->MapBatches(flip)]  ops[0-3]; CPU 1; bundles of 1024+ rows\n");
    free(text);

    /* Pushdown shows in the optimized plan. */
    prism_plan *q = parse_ok("{\"ops\": [{\"op\": \"range\", \"n\": 1000}, {\"op\": \"map\", "
                             "\"fn\": " FN("f") ", \"concurrency\": 2}, {\"op\": \"limit\", "
                                                "\"limit\": 10}]}");
    text = prism_plan_explain(q, NULL);
    assert_string_equal(text, "-------- Logical Plan --------\n"
                              "Limit(10)  ops[2]\n"
                              "+- Map(f)  ops[1]\n"
                              "   +- ReadRange  ops[0]\n"
                              "\n"
                              "-------- Logical Plan (Optimized) --------\n"
                              "Map(f)  ops[1]\n"
                              "+- ReadRange  ops[0,2] (limit pushed into the read: n=10)\n"
                              "\n"
                              "-------- Physical Plan --------\n"
                              "TaskPoolMapOperator[ReadRange->Map(f)]  ops[0-2]; CPU 1; "
                              "concurrency 2\n");
    free(text);
    prism_plan_destroy(q);

    json_t *j = prism_plan_explain_json(p, &e);
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(j, "logical")), 7);
    assert_json_eq(json_array_get(json_object_get(j, "logical"), 4),
                   "{\"index\": 4, \"op\": \"map_batches\", \"name\": \"MapBatches(embed)\"}");
    assert_int_equal(json_array_size(json_object_get(j, "optimized")), 7);
    json_t *phys = json_object_get(j, "physical");
    assert_string_equal(json_string_value(json_object_get(phys, "name")), "train");
    json_t *stages = json_object_get(phys, "stages");
    assert_int_equal(json_array_size(stages), 3);
    json_t *actors = json_array_get(stages, 1);
    /* Everything but the operators' specs, which are the full forms above. */
    json_t *ops = json_incref(json_object_get(actors, "ops"));
    json_object_del(actors, "ops");
    assert_json_eq(actors,
                   "{\"name\": \"MapBatches(embed)->SelectColumns\", \"kind\": \"map\", "
                   "\"operator\": \"ActorPoolMapOperator\", \"compute\": {\"kind\": \"actors\", "
                   "\"min_size\": 1, \"max_size\": 2}, \"resources\": {\"CPU\": 1, \"GPU\": 1}, "
                   "\"concurrency\": null, \"min_rows_per_bundle\": 64, \"row_limit\": 1000, "
                   "\"limit\": null, \"logical\": [4, 5], \"next\": 2}");
    assert_int_equal(json_array_size(ops), 2);
    json_t *op1 = json_array_get(ops, 1);
    assert_string_equal(json_string_value(json_object_get(op1, "name")), "SelectColumns");
    assert_json_eq(json_object_get(op1, "logical"), "[5]");
    assert_json_eq(json_object_get(op1, "spec"),
                   "{\"op\": \"select_columns\", \"columns\": [\"embedding\"]}");
    json_decref(ops);
    json_t *lim = json_array_get(stages, 2);
    assert_json_eq(json_object_get(lim, "compute"), "null");
    assert_json_eq(json_object_get(lim, "limit"), "1000");
    json_decref(j);

    /* The physical plan's own JSON is the explain's "physical". */
    prism_physical_plan *pp;
    assert_int_equal(prism_plan_optimize(p, &pp, &e), PRISM_PLAN_OK);
    json_t *pj = prism_physical_plan_to_json(pp);
    assert_int_equal(json_array_size(json_object_get(pj, "stages")), 3);
    assert_json_eq(json_object_get(pj, "options"),
                   "{\"memory_budget_bytes\": null, \"skip_corrupt\": false, "
                   "\"preserve_order\": false, \"target_max_block_size\": 134217728, "
                   "\"use_push_based_shuffle\": false}");
    assert_true(
        json_equal(json_object_get(pj, "options"), (json_t *)prism_physical_plan_options(pp)));
    json_decref(pj);
    prism_physical_plan_destroy(pp);
    prism_plan_destroy(p);
}

/* ---------- the builder ---------- */

static void test_builder_matches_json(void **state)
{
    (void)state;
    prism_plan *p;
    assert_int_equal(prism_plan_create("train", &p, NULL), PRISM_PLAN_OK);
    const char *paths[] = {"/data/train", "https://example.com/more.tar", NULL};
    prism_plan_read_options ro;
    prism_plan_read_options_init(&ro);
    ro.include_paths = true;
    ro.override_num_blocks = 64;
    assert_int_equal(prism_plan_read_binary_files(p, paths, &ro), PRISM_PLAN_OK);
    prism_plan_map_options mo;
    prism_plan_map_options_init(&mo);
    assert_int_equal(prism_plan_map_batches(p, "builtin", "decode_image", &mo), PRISM_PLAN_OK);
    mo.args = "{\"size\": [224, 224]}";
    assert_int_equal(prism_plan_map_batches(p, "builtin", "random_crop", &mo), PRISM_PLAN_OK);
    prism_plan_map_options_init(&mo);
    mo.args = "{\"p\": 0.5}";
    assert_int_equal(prism_plan_map_batches(p, "builtin", "flip", NULL), PRISM_PLAN_OK);
    assert_int_equal(prism_plan_map(p, "builtin", "flip", &mo), PRISM_PLAN_OK);
    prism_plan_map_options_init(&mo);
    mo.compute = PRISM_COMPUTE_ACTORS;
    mo.min_size = 2;
    mo.max_size = 8;
    mo.num_gpus = 1;
    mo.batch_size = 0;
    mo.resources = "{\"accel\": 1}";
    mo.args = "{\"model\": \"resnet50\"}";
    assert_int_equal(prism_plan_map_batches(p, PKG, "embed", &mo), PRISM_PLAN_OK);
    prism_plan_map_options_init(&mo);
    mo.concurrency = 4;
    mo.num_cpus = 0.5;
    assert_int_equal(prism_plan_filter(p, PKG, "keep", &mo), PRISM_PLAN_OK);
    assert_int_equal(prism_plan_flat_map(p, PKG, "split", NULL), PRISM_PLAN_OK);
    assert_int_equal(prism_plan_add_column(p, "label", PKG, "label_of", NULL), PRISM_PLAN_OK);
    const char *keep[] = {"embedding", "label", NULL}, *drop[] = {"label", NULL};
    assert_int_equal(prism_plan_select_columns(p, keep), PRISM_PLAN_OK);
    assert_int_equal(prism_plan_drop_columns(p, drop), PRISM_PLAN_OK);
    assert_int_equal(prism_plan_limit(p, 500), PRISM_PLAN_OK);
    prism_plan_options o;
    prism_plan_options_init(&o);
    o.skip_corrupt = true;
    o.memory_budget_bytes = 1 << 30;
    assert_int_equal(prism_plan_set_options(p, &o), PRISM_PLAN_OK);
    assert_null(prism_plan_last_error(p));

    static const char *hand =
        "{\"name\": \"train\", \"ops\": ["
        "{\"op\": \"read_binary_files\", \"paths\": [\"/data/train\", "
        "\"https://example.com/more.tar\"], \"include_paths\": true, "
        "\"override_num_blocks\": 64},"
        "{\"op\": \"map_batches\", \"fn\": {\"package\": \"builtin\", \"function\": "
        "\"decode_image\"}},"
        "{\"op\": \"map_batches\", \"fn\": {\"package\": \"builtin\", \"function\": "
        "\"random_crop\", \"args\": {\"size\": [224, 224]}}},"
        "{\"op\": \"map_batches\", \"fn\": {\"package\": \"builtin\", \"function\": \"flip\"}},"
        "{\"op\": \"map\", \"fn\": {\"package\": \"builtin\", \"function\": \"flip\", "
        "\"args\": {\"p\": 0.5}}},"
        "{\"op\": \"map_batches\", \"fn\": {\"package\": \"" PKG "\", \"function\": \"embed\", "
        "\"args\": {\"model\": \"resnet50\"}}, \"batch_size\": null, \"compute\": {\"kind\": "
        "\"actors\", \"min_size\": 2, \"max_size\": 8}, \"num_gpus\": 1, \"resources\": "
        "{\"accel\": 1}},"
        "{\"op\": \"filter\", \"fn\": " FN(
            "keep") ", \"num_cpus\": 0.5, \"concurrency\": 4},"
                    "{\"op\": \"flat_map\", \"fn\": " FN(
                        "split") "},"
                                 "{\"op\": \"add_column\", \"col\": \"label\", \"fn\": " FN(
                                     "label_of") "},"
                                                 "{\"op\": \"select_columns\", \"columns\": [\"embedding\", \"label\"]},"
                                                 "{\"op\": \"drop_columns\", \"columns\": [\"label\"]},"
                                                 "{\"op\": \"limit\", \"limit\": 500}],"
                                                 "\"options\": {\"memory_budget_bytes\": 1073741824, \"skip_corrupt\": true}}";
    json_t *built = canon(p);
    assert_json_eq(built, hand);
    /* And the hand-written plan's canonical form is the same text. */
    prism_plan *h = parse_ok(hand);
    char *a = prism_plan_to_json(p, NULL), *b = prism_plan_to_json(h, NULL);
    assert_string_equal(a, b);
    free(a);
    free(b);
    json_decref(built);
    assert_round_trip(p);
    prism_plan_destroy(h);
    prism_plan_destroy(p);

    /* Every read and the other builder calls. */
    static const struct {
        prism_plan_status (*fn)(prism_plan *, const char *const *, const prism_plan_read_options *);
        const char *want;
    } reads[] = {
        {prism_plan_read_images, "{\"ops\": [{\"op\": \"read_images\", \"paths\": [\"/i\"], "
                                 "\"size\": [32, 48], \"mode\": \"L\"}]}"},
        {prism_plan_read_text, "{\"ops\": [{\"op\": \"read_text\", \"paths\": [\"/i\"], "
                               "\"drop_empty_lines\": false}]}"},
        {prism_plan_read_jsonl, "{\"ops\": [{\"op\": \"read_jsonl\", \"paths\": [\"/i\"], "
                                "\"file_extensions\": [\"jsonl\"]}]}"},
        {prism_plan_read_csv, "{\"ops\": [{\"op\": \"read_csv\", \"paths\": [\"/i\"], "
                              "\"delimiter\": \"|\", \"num_cpus\": 2, \"memory\": 4096, "
                              "\"concurrency\": 3}]}"},
    };
    const char *one[] = {"/i", NULL}, *ext[] = {"jsonl", NULL};
    for (size_t i = 0; i < 4; i++) {
        prism_plan_read_options_init(&ro);
        if (i == 0) {
            ro.size[0] = 32;
            ro.size[1] = 48;
            ro.mode = "L";
        } else if (i == 1) {
            ro.drop_empty_lines = false;
        } else if (i == 2) {
            ro.file_extensions = ext;
        } else {
            ro.delimiter = "|";
            ro.num_cpus = 2;
            ro.memory = 4096;
            ro.concurrency = 3;
        }
        assert_int_equal(prism_plan_create(NULL, &p, NULL), PRISM_PLAN_OK);
        assert_int_equal(reads[i].fn(p, one, &ro), PRISM_PLAN_OK);
        built = canon(p);
        assert_json_eq(built, reads[i].want);
        json_decref(built);
        prism_plan_destroy(p);
    }
    assert_int_equal(prism_plan_create(NULL, &p, NULL), PRISM_PLAN_OK);
    assert_int_equal(prism_plan_range(p, 100, NULL), PRISM_PLAN_OK);
    assert_int_equal(prism_plan_append_json(p, "{\"op\": \"limit\", \"limit\": 5}"), PRISM_PLAN_OK);
    built = canon(p);
    assert_json_eq(built, "{\"ops\": [{\"op\": \"range\", \"n\": 100}, "
                          "{\"op\": \"limit\", \"limit\": 5}]}");
    json_decref(built);
    prism_plan_destroy(p);
    assert_int_equal(prism_plan_create(NULL, &p, NULL), PRISM_PLAN_OK);
    assert_int_equal(prism_plan_from_items(p, "[{\"a\": 1}, 2]", NULL), PRISM_PLAN_OK);
    built = canon(p);
    assert_json_eq(built, "{\"ops\": [{\"op\": \"from_items\", \"items\": [{\"a\": 1}, 2]}]}");
    json_decref(built);
    prism_plan_destroy(p);
}

static void test_builder_errors(void **state)
{
    (void)state;
    prism_plan *p;
    prism_plan_error e;
    /* The same message as the same JSON would get. */
    assert_int_equal(prism_plan_create(NULL, &p, NULL), PRISM_PLAN_OK);
    assert_int_equal(prism_plan_range(p, 10, NULL), PRISM_PLAN_OK);
    prism_plan_map_options mo;
    prism_plan_map_options_init(&mo);
    mo.batch_size = -3;
    assert_int_equal(prism_plan_map_batches(p, PKG, "f", &mo), PRISM_PLAN_INVALID);
    const prism_plan_error *le = prism_plan_last_error(p);
    assert_non_null(le);
    assert_string_equal(le->message,
                        "ops[1] (map_batches): \"batch_size\" must be a positive integer or null");
    assert_string_equal(le->field, "batch_size");
    assert_int_equal(le->op_index, 1);
    /* It sticks: nothing more is added, and the plan cannot be used. */
    assert_int_equal(prism_plan_limit(p, 5), PRISM_PLAN_INVALID);
    assert_int_equal(prism_plan_num_ops(p), 1);
    assert_null(prism_plan_to_json(p, &e));
    assert_string_equal(e.message, le->message);
    prism_physical_plan *pp = (prism_physical_plan *)0x1;
    assert_int_equal(prism_plan_optimize(p, &pp, &e), PRISM_PLAN_INVALID);
    assert_null(pp);
    assert_null(prism_plan_explain(p, &e));
    assert_null(prism_plan_explain_json(p, NULL));
    prism_plan_destroy(p);

    /* Options that belong to another read are refused by name. */
    assert_int_equal(prism_plan_create(NULL, &p, NULL), PRISM_PLAN_OK);
    prism_plan_read_options ro;
    prism_plan_read_options_init(&ro);
    ro.delimiter = ";";
    const char *paths[] = {"/d", NULL};
    assert_int_equal(prism_plan_read_images(p, paths, &ro), PRISM_PLAN_INVALID);
    assert_string_equal(prism_plan_last_error(p)->field, "delimiter");
    prism_plan_destroy(p);

    /* A map before a read; batch_size on map; sizes without actors; concurrency with actors;
     * arguments that are not JSON; a number that is not finite; a missing package. */
    struct {
        const char *message;
        int which;
    } cases[] = {
        {"ops[0] (map): a plan starts with a read (range, from_items, read_images, "
         "read_binary_files, read_text, read_jsonl, read_csv)",
         0},
        {"ops[1] (map): unknown field \"batch_size\" (map takes: fn, compute, num_cpus, "
         "num_gpus, memory, resources, concurrency)",
         1},
        {"ops[1] (map): \"compute\": only an actor pool (\"kind\": \"actors\") has a size", 2},
        {"ops[1] (map): \"concurrency\" is for tasks; an actor pool's size is "
         "\"compute.min_size\" and \"compute.max_size\"",
         3},
        {"ops[1] (map): \"fn.args\" is not valid JSON: '}' expected near end of file "
         "(column 7)",
         4},
        {"ops[1] (map): \"num_gpus\" must be a finite number", 5},
        {"ops[1] (map): missing \"fn.package\"", 6},
        {"ops[1] (map): \"fn.args\" must be an object", 7},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        assert_int_equal(prism_plan_create(NULL, &p, NULL), PRISM_PLAN_OK);
        if (cases[i].which != 0)
            assert_int_equal(prism_plan_range(p, 1, NULL), PRISM_PLAN_OK);
        prism_plan_map_options_init(&mo);
        const char *pkg = PKG;
        switch (cases[i].which) {
        case 1: mo.batch_size = 8; break;
        case 2: mo.max_size = 3; break;
        case 3:
            mo.compute = PRISM_COMPUTE_ACTORS;
            mo.concurrency = 2;
            break;
        case 4: mo.args = "{\"a\": 1"; break;
        case 5: mo.num_gpus = 1.0 / 0.0; break;
        case 6: pkg = NULL; break;
        case 7: mo.args = "[1]"; break;
        }
        assert_int_equal(prism_plan_map(p, pkg, "f", &mo), PRISM_PLAN_INVALID);
        assert_string_equal(prism_plan_last_error(p)->message, cases[i].message);
        prism_plan_destroy(p);
    }

    /* Names, limits, options. */
    assert_int_equal(prism_plan_create("", &p, &e), PRISM_PLAN_INVALID);
    assert_string_equal(e.message, "plan: \"name\" must not be empty");
    assert_int_equal(prism_plan_create("bad\xff", &p, &e), PRISM_PLAN_INVALID);
    assert_string_equal(e.message, "plan: \"name\" must be UTF-8 text");
    assert_int_equal(prism_plan_create(NULL, &p, &e), PRISM_PLAN_OK);
    assert_null(prism_plan_to_json(p, &e));
    assert_string_equal(e.message, "plan: \"ops\" must be a non-empty list of operators, "
                                   "starting with a read");
    assert_int_equal(prism_plan_range(p, -1, NULL), PRISM_PLAN_INVALID);
    assert_string_equal(prism_plan_last_error(p)->message,
                        "ops[0] (range): \"n\" must be a non-negative integer");
    prism_plan_destroy(p);
    assert_int_equal(prism_plan_create(NULL, &p, &e), PRISM_PLAN_OK);
    prism_plan_options o;
    prism_plan_options_init(&o);
    o.target_max_block_size = 5;
    assert_int_equal(prism_plan_set_options(p, &o), PRISM_PLAN_INVALID);
    assert_string_equal(prism_plan_last_error(p)->message,
                        "options: \"target_max_block_size\" must be an integer of at least 1024");
    prism_plan_destroy(p);
    assert_int_equal(prism_plan_create(NULL, &p, &e), PRISM_PLAN_OK);
    assert_int_equal(prism_plan_range(p, 1, NULL), PRISM_PLAN_OK);
    assert_int_equal(prism_plan_append_json(p, "{\"op\": "), PRISM_PLAN_INVALID);
    assert_string_equal(prism_plan_last_error(p)->message,
                        "ops[1]: not valid JSON: unexpected token near end of file (column 7)");
    prism_plan_destroy(p);
    assert_int_equal(prism_plan_create(NULL, &p, &e), PRISM_PLAN_OK);
    assert_int_equal(prism_plan_range(p, 1, NULL), PRISM_PLAN_OK);
    const char *none[] = {NULL};
    assert_int_equal(prism_plan_select_columns(p, none), PRISM_PLAN_INVALID);
    assert_string_equal(prism_plan_last_error(p)->message,
                        "ops[1] (select_columns): \"columns\" must be a non-empty list of names");
    prism_plan_destroy(p);
}

/* A write ends the plan, in no stage: the physical plan names it apart. */
static void test_write(void **state)
{
    (void)state;
    prism_plan *p = parse_ok("{\"ops\": [" R ", {\"op\": \"limit\", \"limit\": 3}, "
                             "{\"op\": \"write_csv\", \"path\": \"/out\", "
                             "\"delimiter\": \";\"}]}");
    assert_true(prism_plan_op_is_write(prism_plan_op(p, 2)));
    /* TSV: a tab is a delimiter */
    prism_plan *tsv = parse_ok("{\"ops\": [{\"op\": \"read_csv\", \"paths\": \"a.tsv\", "
                               "\"delimiter\": \"\\t\"}]}");
    assert_string_equal(json_string_value(json_object_get(prism_plan_op_spec(tsv, 0), "delimiter")),
                        "\t");
    assert_round_trip(tsv);
    prism_plan_destroy(tsv);
    assert_false(prism_plan_op_is_write(prism_plan_op(p, 1)));
    assert_round_trip(p);
    prism_physical_plan *pp;
    assert_int_equal(prism_plan_optimize(p, &pp, NULL), PRISM_PLAN_OK);
    assert_int_equal(prism_physical_plan_num_stages(pp), 1); /* the limit went into the range */
    const json_t *spec;
    assert_int_equal(prism_physical_plan_write(pp, &spec), PRISM_OP_WRITE_CSV);
    assert_string_equal(json_string_value(json_object_get(spec, "path")), "/out");
    assert_string_equal(json_string_value(json_object_get(spec, "delimiter")), ";");
    json_t *j = prism_physical_plan_to_json(pp);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "write"), "name")),
                        "WriteCSV(/out)");
    json_decref(j);
    prism_physical_plan_destroy(pp);
    char *x = prism_plan_explain(p, NULL);
    assert_non_null(strstr(x, "WriteCSV(/out)  ops[2]; written by the executor\n"
                              "+- TaskPoolMapOperator[ReadRange]"));
    free(x);
    prism_plan_destroy(p);
    p = parse_ok("{\"ops\": [" R "]}");
    assert_int_equal(prism_plan_optimize(p, &pp, NULL), PRISM_PLAN_OK);
    assert_int_equal(prism_physical_plan_write(pp, &spec), PRISM_OP_KIND_COUNT);
    assert_null(spec);
    prism_physical_plan_destroy(pp);
    prism_plan_destroy(p);
}

static void test_all_to_all(void **state)
{
    (void)state;
    prism_plan *p = parse_ok(
        "{\"ops\": [" R ", {\"op\": \"select_columns\", \"columns\": [\"id\"]}, "
        "{\"op\": \"random_shuffle\", \"seed\": 3}, {\"op\": \"sort\", \"key\": \"id\"}, "
        "{\"op\": \"groupby\", \"key\": [\"id\"], \"aggs\": [{\"fn\": \"count\"}, "
        "{\"fn\": \"std\", \"on\": \"id\"}]}, {\"op\": \"repartition\", \"num_blocks\": 2}, "
        "{\"op\": \"randomize_block_order\"}, {\"op\": \"limit\", \"limit\": 4}]}");
    assert_round_trip(p);
    /* a key of one name is a list of one; defaults filled in */
    json_t *key = json_object_get(prism_plan_op_spec(p, 3), "key");
    assert_int_equal(json_array_size(key), 1);
    assert_string_equal(json_string_value(json_array_get(key, 0)), "id");
    assert_true(json_is_false(json_object_get(prism_plan_op_spec(p, 3), "descending")));
    assert_true(json_is_false(json_object_get(prism_plan_op_spec(p, 5), "shuffle")));
    assert_true(json_is_null(json_object_get(prism_plan_op_spec(p, 6), "seed")));
    char *text = prism_plan_to_json(p, NULL);
    assert_non_null(strstr(text, "{\"op\":\"sort\",\"key\":[\"id\"]}"));
    free(text);
    /* each its own stage (the read fused into the shuffle's maps), never
     * fused with each other, never cut short by the limit after it */
    prism_physical_plan *pp;
    assert_int_equal(prism_plan_optimize(p, &pp, NULL), PRISM_PLAN_OK);
    assert_int_equal(prism_physical_plan_num_stages(pp), 6);
    const char *names[] = {"ReadRange->SelectColumns->RandomShuffle",
                           "Sort(id)",
                           "GroupBy(id)",
                           "Repartition(2)",
                           "RandomizeBlockOrder",
                           "Limit(4)"};
    for (size_t i = 0; i < 6; i++) {
        prism_plan_stage s;
        prism_physical_plan_stage(pp, i, &s);
        assert_string_equal(s.name, names[i]);
        assert_int_equal(s.kind, i == 5 ? PRISM_STAGE_LIMIT : PRISM_STAGE_ALL_TO_ALL);
        if (s.kind == PRISM_STAGE_ALL_TO_ALL)
            assert_int_equal(s.row_limit, -1);
    }
    prism_physical_plan_destroy(pp);
    char *x = prism_plan_explain(p, NULL);
    assert_non_null(strstr(x, "+- AllToAllOperator[RandomizeBlockOrder]  ops[6]; CPU 1\n"));
    free(x);
    prism_plan_destroy(p);
}

/* Optimizes `text`'s plan: its stages in *n, and whether its explain
 * holds `want` (printed when not). */
static int stages_of(const char *text, size_t *n, const char *want)
{
    prism_plan *p = parse_ok(text);
    prism_physical_plan *pp;
    assert_int_equal(prism_plan_optimize(p, &pp, NULL), PRISM_PLAN_OK);
    *n = prism_physical_plan_num_stages(pp);
    prism_physical_plan_destroy(pp);
    char *x = prism_plan_explain(p, NULL);
    int found = strstr(x, want) != NULL;
    if (!found)
        print_message("%s\n", x);
    free(x);
    prism_plan_destroy(p);
    return found;
}

/* A read or map stage right before an all-to-all that maps blocks as they
 * come runs in that all-to-all's map tasks (a map stage's bundles kept);
 * not before a sort, not an actor pool, nor a GPU stage. */
static void test_all_to_all_fusion(void **state)
{
    (void)state;
    size_t n;
    const char *gb = "{\"op\": \"groupby\", \"key\": \"k\", \"aggs\": [{\"fn\": \"count\"}]}";
    char text[2048];
    snprintf(text, sizeof text,
             "{\"ops\": [" R ", {\"op\": \"map_batches\", \"fn\": " FN("f") "}, %s]}", gb);
    assert_true(
        stages_of(text, &n,
                  "-------- Physical Plan --------\n"
                  "AllToAllOperator[ReadRange->MapBatches(f)->GroupBy(k)]  ops[0-2]; CPU 1\n"));
    assert_int_equal(n, 1);
    prism_plan *p = parse_ok(text);
    prism_physical_plan *pp;
    assert_int_equal(prism_plan_optimize(p, &pp, NULL), PRISM_PLAN_OK);
    prism_plan_stage s;
    prism_physical_plan_stage(pp, 0, &s);
    assert_int_equal(s.kind, PRISM_STAGE_ALL_TO_ALL);
    assert_int_equal(s.num_ops, 3);
    assert_int_equal(s.next, 1);
    assert_int_equal(prism_physical_plan_op(pp, 0, 2, NULL, NULL, NULL), PRISM_OP_GROUPBY);
    json_t *j = prism_physical_plan_to_json(pp);
    json_t *st0 = json_array_get(json_object_get(j, "stages"), 0);
    assert_string_equal(json_string_value(json_object_get(st0, "kind")), "all_to_all");
    assert_string_equal(json_string_value(json_object_get(st0, "operator")), "AllToAllOperator");
    assert_int_equal(json_array_size(json_object_get(st0, "ops")), 3);
    json_decref(j);
    prism_physical_plan_destroy(pp);
    prism_plan_destroy(p);
    /* every all-to-all with maps that need no look at the whole input */
    const char *fused[] = {"{\"op\": \"random_shuffle\"}",
                           "{\"op\": \"repartition\", \"num_blocks\": 3, \"shuffle\": true}",
                           "{\"op\": \"unique\", \"column\": \"k\"}",
                           "{\"op\": \"map_groups\", \"key\": \"k\", \"fn\": " FN("g") "}"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(text, sizeof text,
                 "{\"ops\": [" R ", {\"op\": \"map\", \"fn\": " FN("f") "}, %s]}", fused[i]);
        assert_true(stages_of(text, &n, "AllToAllOperator[ReadRange->Map(f)->"));
        assert_int_equal(n, 1);
    }
    /* not a sort (its maps wait for every sample), nor maps that never run */
    const char *not_fused[] = {"{\"op\": \"sort\", \"key\": \"k\"}",
                               "{\"op\": \"repartition\", \"num_blocks\": 3}",
                               "{\"op\": \"randomize_block_order\"}"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(text, sizeof text,
                 "{\"ops\": [" R ", {\"op\": \"map\", \"fn\": " FN("f") "}, %s]}", not_fused[i]);
        assert_true(stages_of(text, &n, "+- TaskPoolMapOperator[ReadRange->Map(f)]"));
        assert_int_equal(n, 2);
    }
    /* an actor pool is not fused; a task map after it is, when it takes one block a task */
    snprintf(text, sizeof text,
             "{\"ops\": [" R ", {\"op\": \"map_batches\", \"fn\": " FN(
                 "a") ", \"compute\": "
                      "{\"kind\": \"actors\", \"max_size\": 2}}, {\"op\": \"map\", \"fn\": " FN(
                          "f") "}, %s]}",
             gb);
    assert_true(stages_of(text, &n,
                          "AllToAllOperator[Map(f)->GroupBy(k)]  ops[2-3]; CPU 1\n"
                          "+- ActorPoolMapOperator[MapBatches(a)]"));
    assert_int_equal(n, 3);
    snprintf(text, sizeof text,
             "{\"ops\": [" R ", {\"op\": \"map_batches\", \"fn\": " FN(
                 "a") ", \"compute\": "
                      "{\"kind\": \"actors\", \"max_size\": 2}}, %s]}",
             gb);
    assert_true(stages_of(text, &n, "AllToAllOperator[GroupBy(k)]"));
    assert_int_equal(n, 3);
    /* a map stage that bundles blocks for its batch_size: its maps take bundles */
    const char *pre = "{\"op\": \"map\", \"fn\": " FN("a") ", \"num_cpus\": 2}";
    snprintf(text, sizeof text,
             "{\"ops\": [" R
             ", %s, {\"op\": \"map_batches\", \"fn\": " FN("f") ", "
                                                                "\"batch_size\": 64}, %s]}",
             pre, gb);
    assert_true(stages_of(text, &n,
                          "AllToAllOperator[MapBatches(f)->GroupBy(k)]  ops[2-3]; CPU 1; "
                          "bundles of 64+ rows\n"));
    assert_int_equal(n, 3);
    /* not a GPU stage, other resources, a cap */
    const char *kept[] = {"{\"op\": \"map_batches\", \"fn\": " FN("f") ", \"num_gpus\": 1}",
                          "{\"op\": \"map_batches\", \"fn\": " FN("f") ", \"num_cpus\": 2}",
                          "{\"op\": \"map_batches\", \"fn\": " FN("f") ", \"concurrency\": 2}"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(text, sizeof text, "{\"ops\": [" R ", %s, %s, %s]}", pre, kept[i], gb);
        assert_true(stages_of(text, &n, "AllToAllOperator[GroupBy(k)]"));
    }
    /* a limit between stays a stage of its own */
    snprintf(text, sizeof text,
             "{\"ops\": [" R
             ", {\"op\": \"filter\", \"fn\": " FN("f") "}, {\"op\": "
                                                       "\"limit\", \"limit\": 3}, %s]}",
             gb);
    assert_true(stages_of(text, &n, "AllToAllOperator[GroupBy(k)]"));
    assert_int_equal(n, 3);
}

/* union and zip: other datasets checked as plans, laid out as branches of
 * stages that meet at the union or zip stage. */
static void test_union_zip(void **state)
{
    (void)state;
    prism_plan *p =
        parse_ok("{\"ops\": [" R ", {\"op\": \"limit\", \"limit\": 5}, "
                 "{\"op\": \"union\", \"other\": [{\"ops\": [{\"op\": \"range\", \"n\": 7}, "
                 "{\"op\": \"limit\", \"limit\": 3}]}, {\"ops\": [{\"op\": \"from_items\", "
                 "\"items\": [1]}, {\"op\": \"sort\", \"key\": \"item\"}]}]}, "
                 "{\"op\": \"zip\", \"other\": {\"ops\": [{\"op\": \"range\", \"n\": 9, "
                 "\"override_num_blocks\": null}]}}, {\"op\": \"select_columns\", \"columns\": "
                 "[\"id\"]}]}");
    assert_round_trip(p);
    char *text = prism_plan_to_json(p, NULL);
    /* the other datasets in canonical form too: defaults left out, keys as a list */
    assert_non_null(strstr(text, "{\"op\":\"zip\",\"other\":{\"ops\":[{\"op\":\"range\","
                                 "\"n\":9}]}}"));
    assert_non_null(strstr(text, "{\"op\":\"sort\",\"key\":[\"item\"]}"));
    free(text);
    prism_physical_plan *pp;
    assert_int_equal(prism_plan_optimize(p, &pp, NULL), PRISM_PLAN_OK);
    /* limits pushed into each dataset's own read; a projection after a zip is a stage */
    const char *names[] = {"ReadRange", "ReadRange", "FromItems", "Sort(item)",
                           "Union",     "ReadRange", "Zip",       "SelectColumns"};
    const prism_plan_stage_kind kinds[] = {PRISM_STAGE_READ,  PRISM_STAGE_READ,
                                           PRISM_STAGE_READ,  PRISM_STAGE_ALL_TO_ALL,
                                           PRISM_STAGE_UNION, PRISM_STAGE_READ,
                                           PRISM_STAGE_ZIP,   PRISM_STAGE_MAP};
    const size_t next[] = {4, 4, 3, 4, 6, 6, 7, 8};
    assert_int_equal(prism_physical_plan_num_stages(pp), 8);
    for (size_t i = 0; i < 8; i++) {
        prism_plan_stage s;
        prism_physical_plan_stage(pp, i, &s);
        assert_string_equal(s.name, names[i]);
        assert_int_equal(s.kind, kinds[i]);
        assert_int_equal(s.next, next[i]);
    }
    const json_t *spec;
    const int *logical;
    size_t nl;
    prism_physical_plan_op(pp, 1, 0, &spec, &logical, &nl);
    assert_int_equal(json_integer_value(json_object_get(spec, "n")), 3);
    assert_int_equal(nl, 1);
    assert_int_equal(logical[0], 2); /* another dataset's operators stand for their union */
    prism_physical_plan_op(pp, 0, 0, &spec, NULL, NULL);
    assert_int_equal(json_integer_value(json_object_get(spec, "n")), 5);
    json_t *pj = prism_physical_plan_to_json(pp);
    assert_json_eq(json_object_get(json_array_get(json_object_get(pj, "stages"), 4), "compute"),
                   "null");
    assert_json_eq(json_object_get(json_array_get(json_object_get(pj, "stages"), 7), "next"),
                   "null");
    json_decref(pj);
    prism_physical_plan_destroy(pp);
    char *x = prism_plan_explain(p, NULL);
    assert_non_null(strstr(x, "   +- UnionOperator[Union]  ops[2]\n"
                              "      +- TaskPoolMapOperator[ReadRange]  ops[0-1]; CPU 1\n"
                              "      +- TaskPoolMapOperator[ReadRange]  ops[2]; CPU 1\n"
                              "      +- AllToAllOperator[Sort(item)]  ops[2]; CPU 1\n"
                              "         +- TaskPoolMapOperator[FromItems]  ops[2]; CPU 1\n"
                              "   +- TaskPoolMapOperator[ReadRange]  ops[3]; CPU 1\n"));
    assert_non_null(strstr(x, "         +- ReadRange  ops[2] other[0]\n"));
    assert_non_null(strstr(x, "   +- ReadRange  ops[3] other\n"));
    free(x);
    prism_plan_destroy(p);

    /* errors inside another dataset name where they are */
    static const struct {
        const char *plan, *field, *msg;
    } faults[] = {
        {"{\"ops\": [" R ", {\"op\": \"zip\", \"other\": {\"ops\": [" R ", "
         "{\"op\": \"limit\"}]}}]}",
         "other.ops[1].limit", "ops[1] (zip): other.ops[1] (limit): missing \"limit\""},
        {"{\"ops\": [" R ", {\"op\": \"union\", \"other\": [{\"ops\": [" R "]}, "
         "{\"ops\": [" R ", " R "]}]}]}",
         "other[1].ops[1].op", "ops[1] (union): other[1].ops[1] (range): a plan has one read"},
        {"{\"ops\": [" R ", {\"op\": \"union\", \"other\": [{\"ops\": [" R ", "
         "{\"op\": \"union\", \"other\": [{\"ops\": [" R "]}]}]}]}]}",
         "other[0].ops[1]",
         "ops[1] (union): other[0].ops[1] (union): a dataset given to union "
         "cannot hold union or zip"},
        {"{\"ops\": [" R ", {\"op\": \"zip\", \"other\": [{\"ops\": [" R "]}]}]}", "other",
         "ops[1] (zip): \"other\" must be a dataset"},
        {"{\"ops\": [" R ", {\"op\": \"union\", \"other\": {\"ops\": [" R "]}}]}", "other",
         "ops[1] (union): \"other\" must be a list of 1 to 64 datasets"},
        /* row counts the plan tells: a range, a sort keeps every row */
        {"{\"ops\": [" R ", {\"op\": \"zip\", \"other\": {\"ops\": [{\"op\": \"range\", "
         "\"n\": 11}, {\"op\": \"sort\", \"key\": \"id\"}]}}]}",
         "other", "ops[1] (zip): the datasets have different row counts: 10 and 11"},
    };
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        prism_plan_error e;
        prism_plan *q = NULL;
        assert_int_equal(prism_plan_from_json(faults[i].plan, strlen(faults[i].plan), &q, &e),
                         PRISM_PLAN_INVALID);
        assert_null(q);
        assert_int_equal(e.op_index, 1);
        assert_string_equal(e.field, faults[i].field);
        if (strncmp(e.message, faults[i].msg, strlen(faults[i].msg)))
            fail_msg("message: %s", e.message);
    }
}

static void test_paths(void **state)
{
    (void)state;
    assert_int_equal(prism_plan_path_kind_of("/data/train"), PRISM_PATH_LOCAL);
    assert_int_equal(prism_plan_path_kind_of("rel/dir"), PRISM_PATH_LOCAL);
    assert_int_equal(prism_plan_path_kind_of("/data/*.png"), PRISM_PATH_GLOB);
    assert_int_equal(prism_plan_path_kind_of("/data/img[0-9].png"), PRISM_PATH_GLOB);
    assert_int_equal(prism_plan_path_kind_of("HTTPS://host/x"), PRISM_PATH_URL);
    assert_int_equal(prism_plan_path_kind_of("http://host/x*"), PRISM_PATH_URL);
    assert_int_equal(prism_plan_path_kind_of("S3://bucket/prefix"), PRISM_PATH_URL);
    prism_plan_destroy(parse_ok("{\"ops\": [{\"op\": \"read_jsonl\", \"paths\": \"s3://b\"}]}"));
    /* "://" after something that is not a scheme is a local name. */
    prism_plan_destroy(parse_ok("{\"ops\": [{\"op\": \"read_text\", \"paths\": \"a/b://c\"}]}"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_operator),
        cmocka_unit_test(test_defaults_filled),
        cmocka_unit_test(test_canonical_form),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_fusion),
        cmocka_unit_test(test_limit_boundary),
        cmocka_unit_test(test_limit_pushdown),
        cmocka_unit_test(test_explain),
        cmocka_unit_test(test_union_zip),
        cmocka_unit_test(test_builder_matches_json),
        cmocka_unit_test(test_builder_errors),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_write),
        cmocka_unit_test(test_all_to_all),
        cmocka_unit_test(test_all_to_all_fusion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
