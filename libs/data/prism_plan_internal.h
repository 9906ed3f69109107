/* What the files of prism_plan share: the field tables that every operator's
 * JSON is checked and normalized by (prism_plan_fields.c), the operator and
 * built-in function tables (prism_plan_ops.c), and the plan's struct. */
#ifndef PRISM_PLAN_INTERNAL_H
#define PRISM_PLAN_INTERNAL_H

#include <stdarg.h>

#include "prism_buf.h"
#include "prism_plan.h"

/* ---------- fields ---------- */

typedef enum plan_ftype {
    PF_INT,    /* an integer in [min, max] */
    PF_NUMBER, /* a finite number in [min, max]; integral ones are stored as integers */
    PF_BOOL,
    PF_STRING,    /* [min, max] bytes; `choices` when set; no control characters */
    PF_IDENT,     /* a C identifier of at most PRISM_PLAN_MAX_NAME bytes (function names) */
    PF_PATHS,     /* a path, glob, http(s) or s3:// URL, or a non-empty list: stored as a list */
    PF_NAMES,     /* a non-empty list of distinct names of at most `max` bytes */
    PF_SIZE2,     /* [height, width], each in [min, max] */
    PF_NUMBERS,   /* a list of 1 to 4 numbers in [min, max] */
    PF_FN,        /* {"package", "function", "args"?} */
    PF_COMPUTE,   /* {"kind": "tasks"} or {"kind": "actors", "min_size"?, "max_size"?} */
    PF_RESOURCES, /* {name: amount}: custom resources */
    PF_ITEMS,     /* a list of at most PRISM_PLAN_MAX_ITEMS JSON values */
    PF_OBJECT,    /* any JSON object nested at most PRISM_PLAN_MAX_DEPTH deep */
    PF_KEYS,     /* a name, or a non-empty list of distinct names (as PF_NAMES): stored as a list */
    PF_AGGS,     /* groupby's aggregations: [{"fn": count|sum|min|max|mean|std, "on"?: name}] */
    PF_DATASET,  /* another dataset: {"ops": [a read, then operators]} */
    PF_DATASETS, /* a list of 1 to `max` of them */
} plan_ftype;

#define PFL_REQUIRED 1u /* no default: absence is an error */
#define PFL_NULLABLE 2u /* null is a value (and the default when `dflt` is "null") */
#define PFL_EXCL_MIN 4u /* numbers: strictly above `min` */

typedef struct plan_field {
    const char *name;
    plan_ftype type;
    unsigned flags;
    const char *dflt; /* the default as JSON text; NULL with PFL_REQUIRED */
    double min, max;
    const char *const *choices; /* PF_STRING: the values allowed (NULL-terminated) */
} plan_field;

/* Where a check is: which operator (for the message's "ops[i] (name): "),
 * or the plan itself ("plan: ") or its options ("options: "). */
typedef struct plan_ctx {
    prism_plan_error *err;
    int op_index;            /* -1: not an operator */
    const char *op_name;     /* NULL while the operator's name is not known */
    const char *scope;       /* op_index -1: "plan" or "options" */
    prism_plan_op_kind kind; /* the operator's, once known */
} plan_ctx;

/* Records the error (status, operator, field, message with the context's
 * prefix) and returns -1. */
int plan_fail(plan_ctx *c, prism_plan_status st, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int plan_oom(plan_ctx *c);

/* Checks `obj` (an object; NULL: {}) against `tabs` (NULL-terminated tables,
 * each ended by a field without name): fields not in them are refused,
 * `skip` (may be NULL) excepted. Sets in `full` every field, defaults
 * filled in, and in `min` those that differ from their default. Field names
 * in messages are `prefix` + name ("fn.args." + "size"). 0 or -1. */
int plan_fields_read(plan_ctx *c, const plan_field *const *tabs, json_t *obj, const char *prefix,
                     const char *skip, json_t *full, json_t *min);
/* A field's default as a new JSON value (NULL when it has none). */
json_t *plan_field_default(const plan_field *f);

/* Quotes user text for a message: at most ~60 bytes, cut on a UTF-8 boundary,
 * control characters as '?'. Returns `buf`. */
const char *plan_quote(char buf[96], const char *s);
/* The name in `names` (NULL-terminated) closest to `s`, when close enough to
 * be a likely typo; NULL otherwise. */
const char *plan_suggest(const char *s, const char *const *names);

/* Typed reads of a normalized object (values the checks guaranteed). */
int64_t plan_get_int(const json_t *o, const char *key, int64_t if_null);
double plan_get_num(const json_t *o, const char *key);
/* A number as JSON: integral values (up to 2^53) as integers, so that 1 and
 * 1.0 compare equal. NULL when out of memory. */
json_t *plan_number(double d);

/* ---------- operators ---------- */

typedef enum plan_op_class {
    OPC_READ,
    OPC_MAP,     /* runs a function: map, map_batches, filter, flat_map, add_column */
    OPC_PROJECT, /* select_columns, drop_columns */
    OPC_LIMIT,
    OPC_ALL_TO_ALL,
    OPC_NARY,  /* union, zip: other datasets join this one */
    OPC_WRITE, /* write_jsonl, write_csv: last, in no stage */
} plan_op_class;

typedef struct plan_op_info {
    const char *name;    /* in JSON */
    const char *display; /* in stage names: "MapBatches" */
    plan_op_class cls;
    bool row_preserving; /* one row out per row in: a limit may move above it */
    bool limit_into;     /* a read that takes a limit exactly (range, from_items) */
    bool builtins;       /* may run the built-in functions */
    const plan_field *const *fields;
} plan_op_info;

const plan_op_info *plan_op_info_of(prism_plan_op_kind kind);
/* The kind named `name`, or -1. */
int plan_op_lookup(const char *name);
extern const char *const plan_op_names[]; /* every operator's name, NULL-terminated */

/* The built-in functions of map and map_batches. */
typedef struct plan_builtin {
    const char *name;
    const plan_field *const *args;
    /* Checks across arguments (normalize's mean and std); may be NULL. */
    int (*check)(plan_ctx *c, const json_t *args);
} plan_builtin;

const plan_builtin *plan_builtin_find(const char *name);
extern const char *const plan_builtin_names[];

/* The operator's name in stage names ("MapBatches(decode_image)"),
 * appended to `b`. 0 or -1. */
int plan_op_display(prism_buf *b, prism_plan_op_kind kind, const json_t *spec);

/* Checks operator `index` (`op`, borrowed) of a plan whose operators so far
 * are `first` (the kind of ops[0]; ignored when index is 0). On success
 * `*full` and `*min` are its normalized forms (with "op" first). */
int plan_op_parse(plan_ctx *c, json_t *op, size_t index, prism_plan_op_kind first,
                  prism_plan_op_kind *kind, json_t **full, json_t **min);
/* Checks another dataset of union or zip (`v`, at field `path`): an object
 * {"ops": [...]} whose operators are checked as a plan's, starting with a
 * read, without a write, union or zip. `*full` and `*min` are its
 * normalized forms. 0 or -1. */
int plan_dataset_parse(plan_ctx *c, const char *path, json_t *v, json_t **full, json_t **min);
/* Checks the plan's options (NULL: {}). */
int plan_options_parse(plan_ctx *c, json_t *options, json_t **full, json_t **min);

/* ---------- the plan ---------- */

typedef struct plan_op {
    prism_plan_op_kind kind;
    json_t *full; /* every field, defaults filled in */
    json_t *min;  /* canonical: fields at their default left out */
} plan_op;

struct prism_plan {
    char *name;
    json_t *options_full, *options_min;
    plan_op *ops;
    size_t nops, cap;
    prism_plan_error error; /* status != OK once a builder call failed */
};

/* Appends an operator (borrowed JSON) after checking it; a failure sticks. */
prism_plan_status plan_append(prism_plan *p, json_t *op, prism_plan_error *err);
/* Copies the sticky error (or "the plan has no operator") into `err` and
 * returns its status; PRISM_PLAN_OK when the plan can be used. */
prism_plan_status plan_usable(const prism_plan *p, prism_plan_error *err);
void plan_set_error(prism_plan_error *err, const prism_plan_error *from);

/* ---------- the physical plan ---------- */

/* An operator of the optimized plan. */
typedef struct opt_op {
    prism_plan_op_kind kind;
    json_t *spec; /* full form, after pushdown (a read's n or items cut by a limit) */
    int *logical; /* indices of the original plan's operators it stands for, ascending
                   * (an operator of another dataset: its union's or zip's) */
    size_t nlogical;
    size_t chain; /* 0: the plan's own operators; k: those of the k-th other dataset */
} opt_op;

typedef struct opt_stage {
    prism_plan_stage_kind kind;
    char *name;
    prism_plan_compute_kind compute;
    int64_t min_size, max_size;
    double cpus, gpus, memory;
    json_t *custom;    /* custom resources of its operators */
    json_t *resources; /* the whole map: CPU, GPU, memory and custom */
    int64_t concurrency, min_rows, row_limit, limit;
    size_t first, nops; /* its operators: ops[first .. first + nops) */
    size_t next;        /* the stage its output goes to; nstages: the dataset's output */
} opt_stage;

struct prism_physical_plan {
    char *name;
    json_t *options;
    opt_op *ops;
    size_t nops;
    opt_stage *stages;
    size_t nstages;
    const opt_op *write; /* the last of ops when the plan ends with a write; NULL: none */
    size_t *feeds;       /* chain k > 0: the index in ops of the union or zip it joins */
    size_t nchains;      /* chains: 1 + the other datasets */
};

/* The operator of `pp` that operator `i`'s output goes to: the next of its
 * chain, else the union or zip the chain joins; pp->nops: the output. */
size_t plan_op_next(const prism_physical_plan *pp, size_t i);

/* "ops[0-2,5]" for indices in ascending order, appended to `b`. 0 or -1. */
int plan_ops_ref(prism_buf *b, const int *idx, size_t n);

#endif
