/* The operator table and the built-in functions: what fields each operator
 * and each builtin takes, with their types, bounds and defaults. The table
 * of docs/datasets.md#plans is this file in prose; keep them together. */
#include <stdio.h>
#include <string.h>

#include "prism_plan_internal.h"

/* clang-format off */
#define END {NULL, 0, 0, NULL, 0, 0, NULL}
/* clang-format on */
#define BIG 9007199254740992.0 /* 2^53: integers JSON carries exactly */

/* ---------- field groups ---------- */

/* Every read: how many blocks, and the resources of its tasks. */
static const plan_field read_common[] = {
    {"override_num_blocks", PF_INT, PFL_NULLABLE, "null", 1, 1 << 20, NULL},
    {"num_cpus", PF_NUMBER, 0, "1", 0, 1e6, NULL},
    {"memory", PF_NUMBER, 0, "0", 0, BIG, NULL},
    {"concurrency", PF_INT, PFL_NULLABLE, "null", 1, 1 << 20, NULL},
    END,
};

/* Reads of files. */
static const plan_field file_common[] = {
    {"paths", PF_PATHS, PFL_REQUIRED, NULL, 0, 0, NULL},
    {"include_paths", PF_BOOL, 0, "false", 0, 0, NULL},
    {"file_extensions", PF_NAMES, PFL_NULLABLE, "null", 1, 16, NULL},
    END,
};

static const plan_field range_fields[] = {
    {"n", PF_INT, PFL_REQUIRED, NULL, 0, BIG, NULL},
    END,
};

static const plan_field from_items_fields[] = {
    {"items", PF_ITEMS, PFL_REQUIRED, NULL, 0, 0, NULL},
    END,
};

static const char *const image_modes[] = {"RGB", "RGBA", "L", NULL};
static const plan_field images_fields[] = {
    {"size", PF_SIZE2, PFL_NULLABLE, "null", 1, 65536, NULL},
    {"mode", PF_STRING, PFL_NULLABLE, "null", 0, 0, image_modes},
    END,
};

static const char *const encodings[] = {"utf-8", NULL};
static const plan_field text_fields[] = {
    {"encoding", PF_STRING, 0, "\"utf-8\"", 0, 0, encodings},
    {"drop_empty_lines", PF_BOOL, 0, "true", 0, 0, NULL},
    END,
};

static const plan_field csv_fields[] = {
    {"delimiter", PF_STRING, 0, "\",\"", 1, 1, NULL},
    END,
};

/* Writes: a directory on the dataservice's node. */
static const plan_field write_fields[] = {
    {"path", PF_STRING, PFL_REQUIRED, NULL, 1, PRISM_PLAN_MAX_STRING, NULL},
    END,
};

/* Every operator that runs a function: how, and on what resources. */
static const plan_field compute_common[] = {
    {"compute", PF_COMPUTE, 0, "{\"kind\": \"tasks\"}", 0, 0, NULL},
    {"num_cpus", PF_NUMBER, 0, "1", 0, 1e6, NULL},
    {"num_gpus", PF_NUMBER, 0, "0", 0, 1e6, NULL},
    {"memory", PF_NUMBER, 0, "0", 0, BIG, NULL},
    {"resources", PF_RESOURCES, 0, "{}", 0, 0, NULL},
    {"concurrency", PF_INT, PFL_NULLABLE, "null", 1, 1 << 20, NULL},
    END,
};

static const plan_field fn_field[] = {
    {"fn", PF_FN, PFL_REQUIRED, NULL, 0, 0, NULL},
    END,
};

static const plan_field batch_fields[] = {
    {"batch_size", PF_INT, PFL_NULLABLE, "1024", 1, 1 << 30, NULL},
    END,
};

static const plan_field add_column_fields[] = {
    {"col", PF_STRING, PFL_REQUIRED, NULL, 1, PRISM_PLAN_MAX_NAME, NULL},
    END,
};

static const plan_field columns_fields[] = {
    {"columns", PF_NAMES, PFL_REQUIRED, NULL, 1, PRISM_PLAN_MAX_NAME, NULL},
    END,
};

static const plan_field limit_fields[] = {
    {"limit", PF_INT, PFL_REQUIRED, NULL, 0, BIG, NULL},
    END,
};

/* All-to-all operators (Ray Data's parameter names). */
static const plan_field shuffle_fields[] = {
    {"seed", PF_INT, PFL_NULLABLE, "null", 0, BIG, NULL},
    END,
};

static const plan_field sort_fields[] = {
    {"key", PF_KEYS, PFL_REQUIRED, NULL, 1, PRISM_PLAN_MAX_NAME, NULL},
    {"descending", PF_BOOL, 0, "false", 0, 0, NULL},
    END,
};

static const plan_field groupby_fields[] = {
    {"key", PF_KEYS, PFL_REQUIRED, NULL, 1, PRISM_PLAN_MAX_NAME, NULL},
    {"aggs", PF_AGGS, PFL_REQUIRED, NULL, 0, 0, NULL},
    END,
};

static const plan_field unique_fields[] = {
    {"column", PF_STRING, PFL_REQUIRED, NULL, 1, PRISM_PLAN_MAX_NAME, NULL},
    END,
};

static const plan_field repartition_fields[] = {
    {"num_blocks", PF_INT, PFL_REQUIRED, NULL, 1, 1 << 20, NULL},
    {"shuffle", PF_BOOL, 0, "false", 0, 0, NULL},
    END,
};

static const plan_field *const range_tabs[] = {range_fields, read_common, NULL};
static const plan_field *const from_items_tabs[] = {from_items_fields, read_common, NULL};
static const plan_field *const images_tabs[] = {file_common, images_fields, read_common, NULL};
static const plan_field *const binary_tabs[] = {file_common, read_common, NULL};
static const plan_field *const text_tabs[] = {file_common, text_fields, read_common, NULL};
static const plan_field *const csv_tabs[] = {file_common, csv_fields, read_common, NULL};
static const plan_field *const map_tabs[] = {fn_field, compute_common, NULL};
static const plan_field *const map_batches_tabs[] = {fn_field, batch_fields, compute_common, NULL};
static const plan_field *const add_column_tabs[] = {add_column_fields, fn_field, compute_common,
                                                    NULL};
static const plan_field *const columns_tabs[] = {columns_fields, NULL};
static const plan_field *const limit_tabs[] = {limit_fields, NULL};
static const plan_field *const shuffle_tabs[] = {shuffle_fields, NULL};
static const plan_field *const sort_tabs[] = {sort_fields, NULL};
static const plan_field *const groupby_tabs[] = {groupby_fields, NULL};
static const plan_field *const repartition_tabs[] = {repartition_fields, NULL};
static const plan_field *const unique_tabs[] = {unique_fields, NULL};
/* The other datasets: union takes several (Ray Data's union(*other)), zip one. */
#define PRISM_PLAN_MAX_UNION 64
static const plan_field union_fields[] = {
    {"other", PF_DATASETS, PFL_REQUIRED, NULL, 1, PRISM_PLAN_MAX_UNION, NULL},
    END,
};
static const plan_field zip_fields[] = {
    {"other", PF_DATASET, PFL_REQUIRED, NULL, 0, 0, NULL},
    END,
};
static const plan_field *const union_tabs[] = {union_fields, NULL};
static const plan_field *const zip_tabs[] = {zip_fields, NULL};
static const plan_field map_groups_fields[] = {
    {"key", PF_KEYS, PFL_REQUIRED, NULL, 1, PRISM_PLAN_MAX_NAME, NULL},
    END,
};
static const plan_field *const map_groups_tabs[] = {map_groups_fields, fn_field, NULL};
static const char *const image_formats[] = {"png", "jpeg", NULL};
static const plan_field write_images_fields[] = {
    {"column", PF_STRING, 0, "\"image\"", 1, PRISM_PLAN_MAX_NAME, NULL},
    {"file_format", PF_STRING, 0, "\"png\"", 0, 0, image_formats},
    END,
};
static const plan_field write_binary_fields[] = {
    {"column", PF_STRING, 0, "\"bytes\"", 1, PRISM_PLAN_MAX_NAME, NULL},
    END,
};
static const plan_field *const write_jsonl_tabs[] = {write_fields, NULL};
static const plan_field *const write_images_tabs[] = {write_fields, write_images_fields, NULL};
static const plan_field *const write_binary_tabs[] = {write_fields, write_binary_fields, NULL};
static const plan_field *const write_csv_tabs[] = {write_fields, csv_fields, NULL};

/* In the order of prism_plan_op_kind. */
static const plan_op_info ops[PRISM_OP_KIND_COUNT] = {
    {"range", "ReadRange", OPC_READ, false, true, false, range_tabs},
    {"from_items", "FromItems", OPC_READ, false, true, false, from_items_tabs},
    {"read_images", "ReadImages", OPC_READ, false, false, false, images_tabs},
    {"read_binary_files", "ReadBinaryFiles", OPC_READ, false, false, false, binary_tabs},
    {"read_text", "ReadText", OPC_READ, false, false, false, text_tabs},
    {"read_jsonl", "ReadJSONL", OPC_READ, false, false, false, binary_tabs},
    {"read_csv", "ReadCSV", OPC_READ, false, false, false, csv_tabs},
    {"map", "Map", OPC_MAP, true, false, true, map_tabs},
    {"map_batches", "MapBatches", OPC_MAP, false, false, true, map_batches_tabs},
    {"filter", "Filter", OPC_MAP, false, false, false, map_tabs},
    {"flat_map", "FlatMap", OPC_MAP, false, false, false, map_tabs},
    {"add_column", "AddColumn", OPC_MAP, true, false, false, add_column_tabs},
    {"select_columns", "SelectColumns", OPC_PROJECT, true, false, false, columns_tabs},
    {"drop_columns", "DropColumns", OPC_PROJECT, true, false, false, columns_tabs},
    {"limit", "Limit", OPC_LIMIT, false, false, false, limit_tabs},
    {"random_shuffle", "RandomShuffle", OPC_ALL_TO_ALL, false, false, false, shuffle_tabs},
    {"sort", "Sort", OPC_ALL_TO_ALL, false, false, false, sort_tabs},
    {"groupby", "GroupBy", OPC_ALL_TO_ALL, false, false, false, groupby_tabs},
    {"repartition", "Repartition", OPC_ALL_TO_ALL, false, false, false, repartition_tabs},
    {"randomize_block_order", "RandomizeBlockOrder", OPC_ALL_TO_ALL, false, false, false,
     shuffle_tabs},
    {"unique", "Unique", OPC_ALL_TO_ALL, false, false, false, unique_tabs},
    {"map_groups", "MapGroups", OPC_ALL_TO_ALL, false, false, false, map_groups_tabs},
    {"union", "Union", OPC_NARY, false, false, false, union_tabs},
    {"zip", "Zip", OPC_NARY, false, false, false, zip_tabs},
    {"write_jsonl", "WriteJSONL", OPC_WRITE, false, false, false, write_jsonl_tabs},
    {"write_csv", "WriteCSV", OPC_WRITE, false, false, false, write_csv_tabs},
    {"write_images", "WriteImages", OPC_WRITE, false, false, false, write_images_tabs},
    {"write_binary", "WriteBinary", OPC_WRITE, false, false, false, write_binary_tabs},
};

const char *const plan_op_names[] = {
    "range",
    "from_items",
    "read_images",
    "read_binary_files",
    "read_text",
    "read_jsonl",
    "read_csv",
    "map",
    "map_batches",
    "filter",
    "flat_map",
    "add_column",
    "select_columns",
    "drop_columns",
    "limit",
    "random_shuffle",
    "sort",
    "groupby",
    "repartition",
    "randomize_block_order",
    "unique",
    "map_groups",
    "union",
    "zip",
    "write_jsonl",
    "write_csv",
    "write_images",
    "write_binary",
    NULL,
};

const plan_op_info *plan_op_info_of(prism_plan_op_kind kind)
{
    return (unsigned)kind < PRISM_OP_KIND_COUNT ? &ops[kind] : NULL;
}

int plan_op_lookup(const char *name)
{
    for (int i = 0; i < PRISM_OP_KIND_COUNT; i++)
        if (!strcmp(ops[i].name, name))
            return i;
    return -1;
}

const char *prism_plan_op_kind_name(prism_plan_op_kind kind)
{
    const plan_op_info *i = plan_op_info_of(kind);
    return i ? i->name : NULL;
}

bool prism_plan_op_is_read(prism_plan_op_kind kind)
{
    const plan_op_info *i = plan_op_info_of(kind);
    return i && i->cls == OPC_READ;
}

bool prism_plan_op_is_write(prism_plan_op_kind kind)
{
    const plan_op_info *i = plan_op_info_of(kind);
    return i && i->cls == OPC_WRITE;
}

/* ---------- built-in functions ----------
 * Image transforms on a column of images (uint8 tensors [h, w, channels]);
 * the executor implements them. */

static const plan_field image_column[] = {
    {"column", PF_STRING, 0, "\"image\"", 1, PRISM_PLAN_MAX_NAME, NULL},
    END,
};
static const plan_field decode_args[] = {
    {"column", PF_STRING, 0, "\"bytes\"", 1, PRISM_PLAN_MAX_NAME, NULL},
    {"output", PF_STRING, 0, "\"image\"", 1, PRISM_PLAN_MAX_NAME, NULL},
    {"mode", PF_STRING, 0, "\"RGB\"", 0, 0, image_modes},
    END,
};
static const plan_field random_crop_args[] = {
    {"size", PF_SIZE2, PFL_REQUIRED, NULL, 1, 65536, NULL},
    {"seed", PF_INT, PFL_NULLABLE, "null", 0, BIG, NULL},
    END,
};
static const plan_field center_crop_args[] = {
    {"size", PF_SIZE2, PFL_REQUIRED, NULL, 1, 65536, NULL},
    END,
};
static const char *const interpolations[] = {"bilinear", "nearest", NULL};
static const plan_field resize_args[] = {
    {"size", PF_SIZE2, PFL_REQUIRED, NULL, 1, 65536, NULL},
    {"interpolation", PF_STRING, 0, "\"bilinear\"", 0, 0, interpolations},
    END,
};
static const char *const directions[] = {"horizontal", "vertical", NULL};
static const plan_field flip_args[] = {
    {"direction", PF_STRING, 0, "\"horizontal\"", 0, 0, directions},
    {"p", PF_NUMBER, 0, "1", 0, 1, NULL},
    {"seed", PF_INT, PFL_NULLABLE, "null", 0, BIG, NULL},
    END,
};
static const plan_field normalize_args[] = {
    {"mean", PF_NUMBERS, PFL_REQUIRED, NULL, -1e9, 1e9, NULL},
    {"std", PF_NUMBERS, PFL_REQUIRED | PFL_EXCL_MIN, NULL, 0, 1e9, NULL},
    END,
};
static const char *const dtypes[] = {"uint8", "int32", "int64", "float32", "float64", NULL};
static const plan_field cast_args[] = {
    {"dtype", PF_STRING, PFL_REQUIRED, NULL, 0, 0, dtypes},
    END,
};

static const plan_field *const decode_tabs[] = {decode_args, NULL};
static const plan_field *const random_crop_tabs[] = {random_crop_args, image_column, NULL};
static const plan_field *const center_crop_tabs[] = {center_crop_args, image_column, NULL};
static const plan_field *const resize_tabs[] = {resize_args, image_column, NULL};
static const plan_field *const flip_tabs[] = {flip_args, image_column, NULL};
static const plan_field *const normalize_tabs[] = {normalize_args, image_column, NULL};
static const plan_field *const cast_tabs[] = {cast_args, image_column, NULL};

static int normalize_check(plan_ctx *c, const json_t *args)
{
    size_t m = json_array_size(json_object_get(args, "mean"));
    size_t s = json_array_size(json_object_get(args, "std"));
    if (m != s)
        return plan_fail(c, PRISM_PLAN_INVALID, "fn.args.std",
                         "\"fn.args.std\" has %zu numbers and \"fn.args.mean\" %zu: one of each "
                         "per channel",
                         s, m);
    return 0;
}

static const plan_builtin builtins[] = {
    {"decode_image", decode_tabs, NULL},
    {"random_crop", random_crop_tabs, NULL},
    {"center_crop", center_crop_tabs, NULL},
    {"resize", resize_tabs, NULL},
    {"flip", flip_tabs, NULL},
    {"normalize", normalize_tabs, normalize_check},
    {"cast", cast_tabs, NULL},
};

const char *const plan_builtin_names[] = {
    "decode_image", "random_crop", "center_crop", "resize", "flip", "normalize", "cast", NULL,
};

const plan_builtin *plan_builtin_find(const char *name)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (!strcmp(builtins[i].name, name))
            return &builtins[i];
    return NULL;
}

/* ---------- names ---------- */

int plan_op_display(prism_buf *b, prism_plan_op_kind kind, const json_t *spec)
{
    const plan_op_info *info = plan_op_info_of(kind);
    switch (info->cls) {
    case OPC_MAP:
        if (kind == PRISM_OP_ADD_COLUMN)
            return prism_buf_printf(b, "%s(%s)", info->display,
                                    json_string_value(json_object_get(spec, "col")));
        return prism_buf_printf(
            b, "%s(%s)", info->display,
            json_string_value(json_object_get(json_object_get(spec, "fn"), "function")));
    case OPC_LIMIT:
        return prism_buf_printf(b, "%s(%lld)", info->display,
                                (long long)plan_get_int(spec, "limit", 0));
    case OPC_WRITE:
        return prism_buf_printf(b, "%s(%s)", info->display,
                                json_string_value(json_object_get(spec, "path")));
    case OPC_ALL_TO_ALL:
        if (kind == PRISM_OP_REPARTITION)
            return prism_buf_printf(b, "%s(%lld)", info->display,
                                    (long long)plan_get_int(spec, "num_blocks", 0));
        if (kind == PRISM_OP_UNIQUE)
            return prism_buf_printf(b, "%s(%s)", info->display,
                                    json_string_value(json_object_get(spec, "column")));
        if (kind == PRISM_OP_MAP_GROUPS)
            return prism_buf_printf(
                b, "%s(%s)", info->display,
                json_string_value(json_object_get(json_object_get(spec, "fn"), "function")));
        if (kind == PRISM_OP_SORT || kind == PRISM_OP_GROUPBY) {
            json_t *key = json_object_get(spec, "key");
            int rc = prism_buf_printf(b, "%s(", info->display);
            for (size_t i = 0; rc == 0 && i < json_array_size(key); i++)
                rc = prism_buf_printf(b, "%s%s", i ? "," : "",
                                      json_string_value(json_array_get(key, i)));
            return rc ? rc : prism_buf_printf(b, ")");
        }
        return prism_buf_printf(b, "%s", info->display);
    default: return prism_buf_printf(b, "%s", info->display);
    }
}

/* ---------- checking one operator ---------- */

static const char *read_names_list =
    "range, from_items, read_images, read_binary_files, read_text, read_jsonl, read_csv";

int plan_op_parse(plan_ctx *c, json_t *op, size_t index, prism_plan_op_kind first,
                  prism_plan_op_kind *kind, json_t **full, json_t **min)
{
    char q[96];
    c->op_index = (int)index;
    c->op_name = NULL;
    if (!json_is_object(op))
        return plan_fail(c, PRISM_PLAN_INVALID, NULL,
                         "must be an object {\"op\": NAME, ...fields}");
    json_t *name = json_object_get(op, "op");
    if (!name)
        return plan_fail(c, PRISM_PLAN_INVALID, "op", "missing \"op\" (the operator's name)");
    if (!json_is_string(name))
        return plan_fail(c, PRISM_PLAN_INVALID, "op", "\"op\" must be a string");
    int k = plan_op_lookup(json_string_value(name));
    if (k < 0) {
        const char *near = plan_suggest(json_string_value(name), plan_op_names);
        if (near)
            return plan_fail(c, PRISM_PLAN_UNKNOWN_OPERATOR, "op",
                             "unknown operator \"%s\"; did you mean \"%s\"?",
                             plan_quote(q, json_string_value(name)), near);
        return plan_fail(
            c, PRISM_PLAN_UNKNOWN_OPERATOR, "op",
            "unknown operator \"%s\" (reads: %s; then map, map_batches, filter, "
            "flat_map, add_column, select_columns, drop_columns, limit, random_shuffle, "
            "randomize_block_order, sort, groupby, repartition, unique, map_groups, union, zip; last, "
            "write_jsonl, write_csv, write_images or write_binary)",
            plan_quote(q, json_string_value(name)), read_names_list);
    }
    const plan_op_info *info = &ops[k];
    c->op_name = info->name;
    c->kind = (prism_plan_op_kind)k;
    if (index == 0 && info->cls != OPC_READ)
        return plan_fail(c, PRISM_PLAN_INVALID, "op", "a plan starts with a read (%s)",
                         read_names_list);
    if (index > 0 && info->cls == OPC_READ)
        return plan_fail(c, PRISM_PLAN_INVALID, "op",
                         "a plan has one read, and it comes first (ops[0] is %s)", ops[first].name);

    json_t *f = json_object(), *m = json_object();
    if (!f || !m || json_object_set_new(f, "op", json_string(info->name)) < 0 ||
        json_object_set_new(m, "op", json_string(info->name)) < 0) {
        json_decref(f);
        json_decref(m);
        return plan_oom(c);
    }
    if (plan_fields_read(c, info->fields, op, "", "op", f, m) < 0)
        goto fail;
    /* An actor pool's size bounds its parallelism; a second knob would contradict it. */
    json_t *compute = json_object_get(f, "compute");
    if (compute && !strcmp(json_string_value(json_object_get(compute, "kind")), "actors") &&
        !json_is_null(json_object_get(f, "concurrency"))) {
        plan_fail(c, PRISM_PLAN_INVALID, "concurrency",
                  "\"concurrency\" is for tasks; an actor pool's size is "
                  "\"compute.min_size\" and \"compute.max_size\"");
        goto fail;
    }
    *kind = (prism_plan_op_kind)k;
    *full = f;
    *min = m;
    return 0;
fail:
    json_decref(f);
    json_decref(m);
    return -1;
}

static const plan_field options_fields[] = {
    {"memory_budget_bytes", PF_INT, PFL_NULLABLE, "null", 1, BIG, NULL},
    {"skip_corrupt", PF_BOOL, 0, "false", 0, 0, NULL},
    {"preserve_order", PF_BOOL, 0, "false", 0, 0, NULL},
    {"target_max_block_size", PF_INT, 0, "134217728", 1024, BIG, NULL},
    {"use_push_based_shuffle", PF_BOOL, 0, "false", 0, 0, NULL},
    END,
};
static const plan_field *const options_tabs[] = {options_fields, NULL};

int plan_options_parse(plan_ctx *c, json_t *options, json_t **full, json_t **min)
{
    c->op_index = -1;
    c->op_name = NULL;
    c->scope = "options";
    json_t *f = json_object(), *m = json_object();
    if (!f || !m) {
        json_decref(f);
        json_decref(m);
        return plan_oom(c);
    }
    if (options && !json_is_object(options)) {
        json_decref(f);
        json_decref(m);
        c->scope = "plan";
        return plan_fail(c, PRISM_PLAN_INVALID, "options", "\"options\" must be an object");
    }
    if (plan_fields_read(c, options_tabs, options, "", NULL, f, m) < 0) {
        json_decref(f);
        json_decref(m);
        return -1;
    }
    *full = f;
    *min = m;
    return 0;
}
