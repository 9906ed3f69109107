/* Dataset plans: the JSON a dataset is described by, its validation, the
 * optimizer that turns it into stages, and `explain` (docs/datasets.md#plans).
 *
 * A plan is a list of operators: one read first, then one-to-one operators
 * (map, map_batches, filter, ...), all-to-all ones (sort, groupby, ...),
 * union and zip (which take other datasets, each a list of operators of its
 * own starting with a read), and optionally a write last. It comes either as JSON (the body
 * of POST /api/v1/datasets) or from the builder functions below, which make exactly the JSON the
 * REST API takes:
 *
 *   prism_plan *p;
 *   prism_plan_create("train", &p, NULL);
 *   const char *paths[] = {"/data/imagenet/train", NULL};
 *   prism_plan_read_binary_files(p, paths, NULL);
 *   prism_plan_map_options mo;
 *   prism_plan_map_options_init(&mo);
 *   prism_plan_map_batches(p, "builtin", "decode_image", &mo);
 *   mo.args = "{\"size\": [224, 224]}";
 *   prism_plan_map_batches(p, "builtin", "random_crop", &mo);
 *   char *json = prism_plan_to_json(p, NULL);      // or prism_plan_explain(p, NULL)
 *
 * The optimizer (prism_plan_optimize) fuses consecutive one-to-one operators
 * with the same compute and resources into one stage, run as one task per
 * block, pushes `limit` towards the read, and names each stage after its
 * operators ("ReadBinaryFiles->MapBatches(decode_image)->MapBatches(random_crop)").
 * The streaming executor runs the stages of the physical plan it returns.
 *
 * Errors are returned, never printed: every function that can fail returns
 * a prism_plan_status and fills a prism_plan_error (which may be NULL) with
 * a message naming the operator and the field, e.g.
 *   ops[2] (map_batches): "batch_size" must be a positive integer or null
 *
 * Memory rules: handles are created and destroyed in pairs; strings and JSON
 * a function returns are the caller's (free(), json_decref()) unless the
 * comment says "borrowed". Arguments are borrowed.
 *
 * Threads: a handle may be read from several threads at once (to_json,
 * optimize, explain); building one must not overlap with anything else on it.
 * Distinct handles are independent. The library does no I/O. */
#ifndef PRISM_PLAN_H
#define PRISM_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------- limits ----------
 * What a plan may hold; anything larger is refused as invalid_plan. The REST
 * API caps the body besides. */
#define PRISM_PLAN_MAX_OPS 128          /* operators in a plan */
#define PRISM_PLAN_MAX_NAME 128         /* bytes of a name: plan, function, column */
#define PRISM_PLAN_MAX_STRING 4096      /* bytes of any other string (a path, a URL) */
#define PRISM_PLAN_MAX_LIST 65536       /* entries of a list (paths, columns) */
#define PRISM_PLAN_MAX_ITEMS 1048576    /* rows of from_items */
#define PRISM_PLAN_MAX_DEPTH 16         /* nesting of free-form JSON (args, items) */
#define PRISM_PLAN_MAX_JSON (16u << 20) /* bytes of plan text prism_plan_from_json reads */

/* The batch size of map_batches when none is given (rows), as Ray Data's. */
#define PRISM_PLAN_DEFAULT_BATCH_SIZE 1024

/* ---------- errors ---------- */

typedef enum prism_plan_status {
    PRISM_PLAN_OK = 0,
    PRISM_PLAN_INVALID,              /* "invalid_plan": a field, a type, a limit, the order */
    PRISM_PLAN_UNKNOWN_OPERATOR,     /* "unknown_operator": no operator of that name */
    PRISM_PLAN_UNSUPPORTED_OPERATOR, /* "unsupported_operator": known, not supported yet */
    PRISM_PLAN_NO_MEMORY,            /* "internal": out of memory */
} prism_plan_status;

/* The stable code of a status, for the REST error envelope: "ok",
 * "invalid_plan", "unknown_operator", "unsupported_operator", "internal". */
const char *prism_plan_status_code(prism_plan_status s);

typedef struct prism_plan_error {
    prism_plan_status status;
    int op_index;       /* the operator at fault (ops[i]), -1 when none */
    char field[128];    /* the field at fault ("batch_size", "fn.args.size"), "" when none */
    char message[1024]; /* for people; starts with "ops[i] (name): " for an operator's fault */
} prism_plan_error;

/* ---------- operators ---------- */

typedef enum prism_plan_op_kind {
    /* reads: exactly one, first */
    PRISM_OP_RANGE = 0,
    PRISM_OP_FROM_ITEMS,
    PRISM_OP_READ_IMAGES,
    PRISM_OP_READ_BINARY_FILES,
    PRISM_OP_READ_TEXT,
    PRISM_OP_READ_JSONL,
    PRISM_OP_READ_CSV,
    /* one-to-one */
    PRISM_OP_MAP,
    PRISM_OP_MAP_BATCHES,
    PRISM_OP_FILTER,
    PRISM_OP_FLAT_MAP,
    PRISM_OP_ADD_COLUMN,
    PRISM_OP_SELECT_COLUMNS,
    PRISM_OP_DROP_COLUMNS,
    PRISM_OP_LIMIT,
    /* all-to-all: every output block may depend on every input block */
    PRISM_OP_RANDOM_SHUFFLE,
    PRISM_OP_SORT,
    PRISM_OP_GROUPBY,
    PRISM_OP_REPARTITION,
    PRISM_OP_RANDOMIZE_BLOCK_ORDER,
    PRISM_OP_UNIQUE,
    PRISM_OP_MAP_GROUPS,
    /* other datasets joined to this one: union (their rows after its own),
     * zip (their columns beside its own, row by row) */
    PRISM_OP_UNION,
    PRISM_OP_ZIP,
    /* writes: at most one, last (it consumes the dataset) */
    PRISM_OP_WRITE_JSONL,
    PRISM_OP_WRITE_CSV,
    PRISM_OP_WRITE_IMAGES,
    PRISM_OP_WRITE_BINARY,
    PRISM_OP_KIND_COUNT
} prism_plan_op_kind;

/* The operator's name in JSON ("map_batches"); NULL for an unknown kind. */
const char *prism_plan_op_kind_name(prism_plan_op_kind kind);
/* Whether the kind is a read (what a plan starts with). */
bool prism_plan_op_is_read(prism_plan_op_kind kind);
/* Whether the kind is a write (what a plan may end with). */
bool prism_plan_op_is_write(prism_plan_op_kind kind);

/* ---------- the logical plan ---------- */

typedef struct prism_plan prism_plan;

/* An empty plan, named `name` (NULL: unnamed; at most PRISM_PLAN_MAX_NAME
 * bytes of printable text). Operators are added with the builder functions. */
prism_plan_status prism_plan_create(const char *name, prism_plan **out, prism_plan_error *err);
void prism_plan_destroy(prism_plan *p);

/* Parses and validates plan JSON (`len` bytes of text, at most
 * PRISM_PLAN_MAX_JSON). On success `*out` is a valid plan. */
prism_plan_status prism_plan_from_json(const char *text, size_t len, prism_plan **out,
                                       prism_plan_error *err);
/* The same from a JSON tree (borrowed), for callers that parsed a body already. */
prism_plan_status prism_plan_from_json_value(json_t *plan, prism_plan **out, prism_plan_error *err);

/* The plan as JSON text in its canonical form: keys in the documented
 * order, fields that hold their default left out, `paths` always a list.
 * prism_plan_from_json of it gives the same plan. NULL when the plan has no
 * operator, when a builder call failed (the error it failed with), or when
 * out of memory. */
char *prism_plan_to_json(const prism_plan *p, prism_plan_error *err);
/* The same as a JSON tree. */
json_t *prism_plan_to_json_value(const prism_plan *p, prism_plan_error *err);

/* The plan's name (borrowed; NULL when unnamed), its operators and, per
 * operator, its kind and its fields with every default filled in (borrowed,
 * valid as long as the plan; the object has "op" too). */
const char *prism_plan_name(const prism_plan *p);
size_t prism_plan_num_ops(const prism_plan *p);
prism_plan_op_kind prism_plan_op(const prism_plan *p, size_t i);
const json_t *prism_plan_op_spec(const prism_plan *p, size_t i);
/* The plan's options with every default filled in (borrowed). */
const json_t *prism_plan_options_json(const prism_plan *p);

/* ---------- building a plan ----------
 *
 * Each call appends one operator after checking it exactly as
 * prism_plan_from_json would, and returns the same errors. The first
 * failure sticks: the plan keeps the operators added before it, every later
 * builder call returns that error again without adding anything, and
 * to_json, optimize and explain return it, so a chain of calls whose results
 * were not checked cannot turn into a plan missing a step.
 * `err` may be NULL; prism_plan_last_error gives it later. */

/* The error that stuck, or NULL while every call succeeded (borrowed). */
const prism_plan_error *prism_plan_last_error(const prism_plan *p);

/* Options of every read. Defaults as documented on each field; set them
 * with prism_plan_read_options_init, so that fields added later get their
 * defaults. A field that does not belong to the read it is given to (say
 * `delimiter` to read_images) is refused when set to other than its default. */
typedef struct prism_plan_read_options {
    int64_t override_num_blocks; /* blocks to read into; 0 (default): the executor decides */
    double num_cpus;             /* per read task; default 1 */
    double memory;               /* bytes per read task; default 0 */
    int64_t concurrency;         /* read tasks at once at most; 0 (default): no cap */
    /* file reads (read_*) */
    bool include_paths;                 /* add a "path" column; default false */
    const char *const *file_extensions; /* NULL-terminated; NULL (default): the read's own */
    /* read_images */
    int64_t size[2];  /* decode to [height, width]; {0, 0} (default): as stored */
    const char *mode; /* "RGB", "RGBA" or "L"; NULL (default): as stored */
    /* read_text */
    bool drop_empty_lines; /* default true */
    /* read_csv */
    const char *delimiter; /* one character; NULL (default): "," */
} prism_plan_read_options;

void prism_plan_read_options_init(prism_plan_read_options *o);

/* Reads. `paths` is NULL-terminated: each a file, a directory (every file
 * under it), a glob ("*", "?", "[...]"), an http(s) URL or an s3:// path
 * (docs/datasets.md#s3). `opts` may be NULL for the defaults. */
prism_plan_status prism_plan_range(prism_plan *p, int64_t n, const prism_plan_read_options *opts);
/* `items_json`: a JSON array, one row per element (an object's keys are
 * columns; any other value is the row's "item"). */
prism_plan_status prism_plan_from_items(prism_plan *p, const char *items_json,
                                        const prism_plan_read_options *opts);
prism_plan_status prism_plan_read_images(prism_plan *p, const char *const *paths,
                                         const prism_plan_read_options *opts);
prism_plan_status prism_plan_read_binary_files(prism_plan *p, const char *const *paths,
                                               const prism_plan_read_options *opts);
prism_plan_status prism_plan_read_text(prism_plan *p, const char *const *paths,
                                       const prism_plan_read_options *opts);
prism_plan_status prism_plan_read_jsonl(prism_plan *p, const char *const *paths,
                                        const prism_plan_read_options *opts);
prism_plan_status prism_plan_read_csv(prism_plan *p, const char *const *paths,
                                      const prism_plan_read_options *opts);

typedef enum prism_plan_compute_kind {
    PRISM_COMPUTE_TASKS = 0, /* one stateless task per block (or bundle of blocks) */
    PRISM_COMPUTE_ACTORS,    /* a pool of actors, each running the function on many blocks */
} prism_plan_compute_kind;

/* Options of map, map_batches, filter, flat_map and add_column. Defaults as
 * documented; prism_plan_map_options_init sets them. */
typedef struct prism_plan_map_options {
    const char *args;   /* the function's arguments, a JSON object's text; NULL: none */
    int64_t batch_size; /* map_batches only: rows per batch; default
                         * PRISM_PLAN_DEFAULT_BATCH_SIZE; 0: a whole block per batch */
    prism_plan_compute_kind compute; /* default PRISM_COMPUTE_TASKS */
    int64_t min_size;                /* actors: the pool's least size; default 1 */
    int64_t max_size;                /* actors: the pool's largest size; 0 (default): no bound */
    double num_cpus;                 /* per task or actor; default 1 */
    double num_gpus;                 /* default 0 */
    double memory;                   /* bytes; default 0 */
    const char *resources; /* custom resources, a JSON object's text ({"accel": 1}); NULL: none */
    int64_t concurrency;   /* tasks: at most this many at once; 0 (default): no cap.
                            * Must stay 0 with actors (the pool's size bounds them). */
} prism_plan_map_options;

void prism_plan_map_options_init(prism_plan_map_options *o);

/* One-to-one operators running `function` of `package` (the sha256 of an
 * uploaded package, or "builtin" for the built-in image functions, which
 * map and map_batches take: decode_image, random_crop, center_crop, resize,
 * flip, normalize, cast). `opts` may be NULL for the defaults. */
prism_plan_status prism_plan_map(prism_plan *p, const char *package, const char *function,
                                 const prism_plan_map_options *opts);
prism_plan_status prism_plan_map_batches(prism_plan *p, const char *package, const char *function,
                                         const prism_plan_map_options *opts);
prism_plan_status prism_plan_filter(prism_plan *p, const char *package, const char *function,
                                    const prism_plan_map_options *opts);
prism_plan_status prism_plan_flat_map(prism_plan *p, const char *package, const char *function,
                                      const prism_plan_map_options *opts);
/* Adds column `col` holding what the function returns for each batch. */
prism_plan_status prism_plan_add_column(prism_plan *p, const char *col, const char *package,
                                        const char *function, const prism_plan_map_options *opts);
/* `columns` is NULL-terminated. */
prism_plan_status prism_plan_select_columns(prism_plan *p, const char *const *columns);
prism_plan_status prism_plan_drop_columns(prism_plan *p, const char *const *columns);
prism_plan_status prism_plan_limit(prism_plan *p, int64_t n);

/* Appends an operator given as JSON text ({"op": ...}), for operators and
 * fields the functions above do not cover. */
prism_plan_status prism_plan_append_json(prism_plan *p, const char *op_json);

/* Options of the whole execution. */
typedef struct prism_plan_options {
    int64_t memory_budget_bytes;   /* object store bytes the executor may hold in flight;
                                    * 0 (default): its own share of the store */
    bool skip_corrupt;             /* skip rows whose file cannot be read or decoded,
                                    * instead of failing; default false */
    bool preserve_order;           /* emit blocks in the read's order; default false */
    int64_t target_max_block_size; /* bytes a block should stay under; default 128 MiB */
    bool use_push_based_shuffle;   /* all-to-all stages merge map outputs as they end
                                    * (Ray Data's DataContext option); default false */
} prism_plan_options;

void prism_plan_options_init(prism_plan_options *o);
prism_plan_status prism_plan_set_options(prism_plan *p, const prism_plan_options *o);

/* ---------- the physical plan ---------- */

typedef struct prism_physical_plan prism_physical_plan;

/* Optimizes a valid plan: limits pushed down, operators fused into stages
 * (docs/datasets.md#the-optimizer). Fails only on a plan whose builder
 * failed, an empty plan, or out of memory. */
prism_plan_status prism_plan_optimize(const prism_plan *p, prism_physical_plan **out,
                                      prism_plan_error *err);
void prism_physical_plan_destroy(prism_physical_plan *pp);

typedef enum prism_plan_stage_kind {
    PRISM_STAGE_READ = 0,   /* the read, with what fused into it: tasks per block */
    PRISM_STAGE_MAP,        /* one-to-one operators: tasks or an actor pool */
    PRISM_STAGE_LIMIT,      /* the first `limit` rows pass; upstream work stops then */
    PRISM_STAGE_ALL_TO_ALL, /* one all-to-all operator: map tasks as input comes, then
                             * reduce tasks once every map is done (randomize_block_order:
                             * the executor reorders the blocks, no task) */
    PRISM_STAGE_UNION,      /* union: its inputs' blocks pass on (no task) */
    PRISM_STAGE_ZIP,        /* zip: tasks join the columns of rows at the same place */
} prism_plan_stage_kind;

/* What the executor needs to run one stage. Strings and JSON are borrowed
 * from the physical plan. */
typedef struct prism_plan_stage {
    const char *name; /* "ReadImages->MapBatches(decode_image)" */
    prism_plan_stage_kind kind;
    prism_plan_compute_kind compute;
    int64_t min_size, max_size;        /* actors: the pool's bounds (max 0: none) */
    double num_cpus, num_gpus, memory; /* per task or actor */
    const json_t *resources;           /* the whole resource map to lease with:
                                        * {"CPU": 1, "GPU": 1, "memory": ..., custom...} */
    int64_t concurrency;               /* tasks at once at most; 0: no cap */
    int64_t min_rows_per_bundle;       /* give a task at least this many rows (the largest
                                        * batch_size fused in); 0: one block is enough */
    int64_t row_limit;                 /* -1, or: a limit of this many rows follows this stage,
                                        * so its tasks and the stage may stop after as many */
    int64_t limit;                     /* a LIMIT stage's row count */
    size_t num_ops;                    /* operators run in order, one after the other */
    size_t next;                       /* the stage its output goes to (always a later one);
                                        * num_stages: the dataset's output. Stages form a
                                        * tree: a union or zip stage has several inputs, in
                                        * order (the first the plan's own chain), every
                                        * other stage but a read one */
} prism_plan_stage;

size_t prism_physical_plan_num_stages(const prism_physical_plan *pp);
/* Fills `out` with stage `i` (0: a read; the last one's output is the
 * dataset). A plan with union or zip has a read stage per dataset. */
void prism_physical_plan_stage(const prism_physical_plan *pp, size_t i, prism_plan_stage *out);
/* Operator `j` of stage `i`: its kind, its fields with defaults filled in
 * (borrowed; for a read the limit pushed into it is applied already), and
 * the indices in the original plan it comes from (borrowed; several when
 * limits were merged or pushed into a read). */
prism_plan_op_kind prism_physical_plan_op(const prism_physical_plan *pp, size_t i, size_t j,
                                          const json_t **spec, const int **logical,
                                          size_t *num_logical);
/* The plan's options with every default filled in (borrowed). */
const json_t *prism_physical_plan_options(const prism_physical_plan *pp);
/* The write that ends the plan: its kind and its fields with defaults filled
 * in (borrowed); PRISM_OP_KIND_COUNT when the plan has none. The write is
 * in no stage: the executor writes the last stage's blocks. */
prism_plan_op_kind prism_physical_plan_write(const prism_physical_plan *pp, const json_t **spec);

/* The physical plan as JSON (docs/datasets.md#the-physical-plan). */
json_t *prism_physical_plan_to_json(const prism_physical_plan *pp);

/* ---------- explain ---------- */

/* The plan before and after optimization as text, one line per operator or
 * stage, the last one first and its inputs indented below it (as Ray Data's
 * Dataset.explain()). NULL on the errors of prism_plan_optimize. */
char *prism_plan_explain(const prism_plan *p, prism_plan_error *err);
/* The same as JSON: {"logical": [...], "optimized": [...], "physical": {...}}. */
json_t *prism_plan_explain_json(const prism_plan *p, prism_plan_error *err);

/* ---------- paths ---------- */

typedef enum prism_plan_path_kind {
    PRISM_PATH_LOCAL = 0, /* a file or a directory: which one, the executor finds out */
    PRISM_PATH_GLOB,      /* a local pattern with *, ? or [...] */
    PRISM_PATH_URL,       /* http://, https:// or s3:// (not this node's file system) */
} prism_plan_path_kind;

/* How a read's path is to be listed (for a path the plan accepted). */
prism_plan_path_kind prism_plan_path_kind_of(const char *path);

#ifdef __cplusplus
}
#endif

#endif
