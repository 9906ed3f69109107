/* Datasets from C (docs/datasets.md#from-c-libprism): build a dataset's
 * logical plan, then consume it as batches streamed from the dataservice
 * through the object store, or take rows and count them.
 *
 *   prism_dataset *ds;
 *   const char *paths[] = {"/data/imgs", NULL};
 *   prism_data_read_options ro = PRISM_DATA_READ_OPTIONS_INIT;
 *   ro.size[0] = ro.size[1] = 256;
 *   prism_data_read_images(c, paths, &ro, &ds);
 *   prism_data_map_options mo = PRISM_DATA_MAP_OPTIONS_INIT;
 *   mo.args = "{\"size\": [224, 224]}";
 *   prism_data_map_batches(ds, "builtin", "random_crop", &mo);
 *   prism_data_iter *it;
 *   prism_data_iter_batches(ds, 256, NULL, &it);
 *   prism_batch *b;
 *   while (prism_data_iter_next(it, &b) == PRISM_OK && b) {
 *       ... prism_batch_rows(b), prism_batch_values(b, ...) ...
 *       prism_batch_free(b);
 *   }
 *   prism_data_iter_destroy(it);
 *   prism_data_destroy(ds);
 *
 * Building only builds: nothing runs until a dataset is consumed, and each
 * consumption (count, take, iter_batches, a write) runs the plan once more. A
 * builder call checks its operator as the dataservice would; the first
 * failure sticks (later calls return it and add nothing) and consuming
 * the dataset then fails with it (prism_last_error says what).
 *
 * Threads: a dataset or an iterator is used by one thread at a time; batches
 * may be freed from any thread. Free every batch, iterator and dataset
 * before prism_disconnect of their client. */
#ifndef PRISM_DATA_H
#define PRISM_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prism/prism.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The Arrow C Data Interface's structures (the Arrow specification's ABI),
 * declared by any Arrow library's header or by the specification's. */
struct ArrowSchema;
struct ArrowArray;

typedef struct prism_dataset prism_dataset;

#define PRISM_DATA_ID_SIZE 33 /* a dataset's ID: 32 hex digits and the NUL */

/* ---------- reads: each makes a new dataset ---------- */

typedef struct prism_data_read_options {
    int64_t override_num_blocks;        /* blocks to read into; 0 (default): the executor decides */
    bool include_paths;                 /* file reads: add a "path" column; default false */
    const char *const *file_extensions; /* NULL-terminated; NULL (default): any (images: theirs) */
    int64_t size[2];      /* read_images: [height, width]; {0, 0} (default): as stored */
    const char *mode;     /* read_images: "RGB", "RGBA", "L"; NULL (default): as stored */
    uint64_t reserved[8]; /* zero */
} prism_data_read_options;

/* clang-format off */
#define PRISM_DATA_READ_OPTIONS_INIT {.override_num_blocks = 0, .include_paths = false, \
    .file_extensions = NULL, .size = {0, 0}, .mode = NULL, .reserved = {0}}
/* clang-format on */
PRISM_API void prism_data_read_options_init(prism_data_read_options *opts);

/* `paths` is NULL-terminated: files, directories or globs on the nodes.
 * `opts` may be NULL for the defaults. */
PRISM_API prism_status prism_data_read_images(prism_client *c, const char *const *paths,
                                              const prism_data_read_options *opts,
                                              prism_dataset **out);
PRISM_API prism_status prism_data_read_binary_files(prism_client *c, const char *const *paths,
                                                    const prism_data_read_options *opts,
                                                    prism_dataset **out);
PRISM_API prism_status prism_data_read_text(prism_client *c, const char *const *paths,
                                            const prism_data_read_options *opts,
                                            prism_dataset **out);
PRISM_API prism_status prism_data_read_jsonl(prism_client *c, const char *const *paths,
                                             const prism_data_read_options *opts,
                                             prism_dataset **out);
PRISM_API prism_status prism_data_read_csv(prism_client *c, const char *const *paths,
                                           const prism_data_read_options *opts,
                                           prism_dataset **out);
/* The rows 0 .. n-1 in one int64 column "id". */
PRISM_API prism_status prism_data_range(prism_client *c, int64_t n,
                                        const prism_data_read_options *opts, prism_dataset **out);
/* A whole plan as JSON (the body of POST /api/v1/datasets), for what the
 * functions here do not cover. */
PRISM_API prism_status prism_data_from_json(prism_client *c, const char *plan_json,
                                            prism_dataset **out);
/* Frees the dataset (not what it made: iterators and batches live on). */
PRISM_API void prism_data_destroy(prism_dataset *ds);

/* ---------- transformations ---------- */

typedef struct prism_data_map_options {
    const char *args;      /* the function's arguments, a JSON object's text; NULL: none */
    int64_t batch_size;    /* map_batches: rows per batch; default 1024; 0: a whole block */
    double num_cpus;       /* per task; default 1 */
    double num_gpus;       /* per task; default 0 */
    const char *resources; /* custom resources, a JSON object's text; NULL (default): none */
    int64_t concurrency;   /* tasks at once at most; 0 (default): no cap */
    uint64_t reserved[8];  /* zero */
} prism_data_map_options;

/* clang-format off */
#define PRISM_DATA_MAP_OPTIONS_INIT {.args = NULL, .batch_size = 1024, .num_cpus = 1, \
    .num_gpus = 0, .resources = NULL, .concurrency = 0, .reserved = {0}}
/* clang-format on */
PRISM_API void prism_data_map_options_init(prism_data_map_options *opts);

/* `function` of `package`: the sha256 of an uploaded package, or "builtin"
 * (decode_image, random_crop, center_crop, resize, flip, normalize, cast).
 * `opts` may be NULL for the defaults. */
PRISM_API prism_status prism_data_map_batches(prism_dataset *ds, const char *package,
                                              const char *function,
                                              const prism_data_map_options *opts);
PRISM_API prism_status prism_data_map(prism_dataset *ds, const char *package, const char *function,
                                      const prism_data_map_options *opts);
PRISM_API prism_status prism_data_filter(prism_dataset *ds, const char *package,
                                         const char *function, const prism_data_map_options *opts);
/* `columns` is NULL-terminated. */
PRISM_API prism_status prism_data_select_columns(prism_dataset *ds, const char *const *columns);
PRISM_API prism_status prism_data_drop_columns(prism_dataset *ds, const char *const *columns);
PRISM_API prism_status prism_data_limit(prism_dataset *ds, int64_t n);
/* Any operator as JSON ({"op": "flat_map", ...}). */
PRISM_API prism_status prism_data_append_json(prism_dataset *ds, const char *op_json);

/* All-to-all operators (docs/datasets.md#all-to-all-operators): every
 * output block may hold rows of every input block, so they run once all
 * their input has come. `seed` >= 0 repeats the same order on each run; < 0
 * draws a new one. */
PRISM_API prism_status prism_data_random_shuffle(prism_dataset *ds, int64_t seed);
/* Whole blocks in a random order, rows inside each kept (no data moves). */
PRISM_API prism_status prism_data_randomize_block_order(prism_dataset *ds, int64_t seed);
/* `num_blocks` blocks of about equal rows: in order, or with `shuffle`
 * rows spread at random. */
PRISM_API prism_status prism_data_repartition(prism_dataset *ds, int64_t num_blocks, bool shuffle);
/* Rows sorted by the columns of `key` (NULL-terminated: the first decides,
 * then the next...), numbers by value, strings byte-wise (UTF-8 in code
 * point order); nulls last. */
PRISM_API prism_status prism_data_sort(prism_dataset *ds, const char *const *key, bool descending);

/* `function` of the uploaded package `package` (its sha256) called on each
 * group of rows sharing `key` (NULL-terminated columns), with `args_json`
 * (an object's text, or NULL); the results joined. */
PRISM_API prism_status prism_data_map_groups(prism_dataset *ds, const char *const *key,
                                             const char *package, const char *function,
                                             const char *args_json);
/* One row per distinct value of `column` (null included), that column only. */
PRISM_API prism_status prism_data_unique(prism_dataset *ds, const char *column);

/* One aggregation of a group: `fn` "count", "sum", "min", "max", "mean" or
 * "std" (sample standard deviation), over column `on` (NULL for count: the
 * group's rows). Its output column is "fn(on)", as Ray Data names it. */
typedef struct prism_data_agg {
    const char *fn;
    const char *on;
} prism_data_agg;

/* One row per distinct value of `key` (NULL-terminated columns): the key's
 * columns, then the `naggs` aggregations. */
PRISM_API prism_status prism_data_groupby_aggregate(prism_dataset *ds, const char *const *key,
                                                    const prism_data_agg *aggs, size_t naggs);
/* Other datasets joined to `ds` (docs/datasets.md#union-and-zip), each built
 * with the functions above and left the caller's (its plan is copied; the
 * options of `ds` hold for the whole). union: the rows of `ds`, then those
 * of each of `others` (`n`, 1 to 64), in that order with preserve_order;
 * they must share a schema. zip: the columns of `ds` and then of `other`,
 * row by row (a name `ds` has already gets "_1", "_2", ...); both must have
 * as many rows, else the dataset fails naming the operator. */
PRISM_API prism_status prism_data_union(prism_dataset *ds, const prism_dataset *const *others,
                                        size_t n);
PRISM_API prism_status prism_data_zip(prism_dataset *ds, const prism_dataset *other);

/* How the whole plan runs. */
typedef struct prism_data_options {
    int64_t memory_budget_bytes;   /* bytes of blocks in flight at most, a consumer's
                                    * included; 0 (default): the dataservice's share */
    bool preserve_order;           /* rows in the read's order; default false */
    int64_t target_max_block_size; /* bytes a block should stay under; 0 (default): 128 MiB */
    bool use_push_based_shuffle;   /* all-to-all stages merge map outputs as they end
                                    * (Ray Data's DataContext option); default false */
    uint64_t reserved[7];          /* zero */
} prism_data_options;

/* clang-format off */
#define PRISM_DATA_OPTIONS_INIT {.memory_budget_bytes = 0, .preserve_order = false, \
    .target_max_block_size = 0, .use_push_based_shuffle = false, .reserved = {0}}
/* clang-format on */
PRISM_API void prism_data_options_init(prism_data_options *opts);
PRISM_API prism_status prism_data_set_options(prism_dataset *ds, const prism_data_options *opts);

/* The plan as the dataservice gets it (canonical JSON), or NULL when a
 * builder call failed; free() it. */
PRISM_API char *prism_data_plan_json(const prism_dataset *ds);

/* ---------- consuming ---------- */

/* Runs the plan and counts its rows, waiting up to `timeout_ms` (< 0: no
 * limit) for the end. A failed dataset gives PRISM_ERR_TASK with its error
 * (naming the operator) in prism_last_error. */
PRISM_API prism_status prism_data_count(prism_dataset *ds, int timeout_ms, int64_t *out);
/* Runs the plan and returns its first `n` rows (1 .. the dataservice's
 * --preview-rows) as a JSON array of objects; free() it. */
PRISM_API prism_status prism_data_take(prism_dataset *ds, int64_t n, int timeout_ms, char **out);

/* Runs the plan once and keeps every output block in the object stores (the
 * stores spill what does not fit), as a new dataset `*out`: iterating,
 * splitting, counting or taking it reads the kept blocks, so epochs after
 * the first compute nothing. It cannot be transformed further (transform
 * before). Destroying it lets the blocks go. */
PRISM_API prism_status prism_data_materialize(prism_dataset *ds, int timeout_ms,
                                              prism_dataset **out);

/* Run the plan and write its rows into directory `path` on the
 * dataservice's node (made when missing; it must be under the service's
 * --data-roots), one file per output block named
 * "<dataset id>_<block>.jsonl" (or ".csv"), each appearing whole or not at
 * all. jsonl: a JSON object a line, as take gives rows. csv: a header, then
 * a record a row; strings quoted, nulls empty; binary and tensor columns are
 * refused. Waits up to `timeout_ms` (< 0: no limit); `rows` and `files`
 * (each may be NULL) get what was written. A path refused gives
 * PRISM_ERR_INVALID; a failed write PRISM_ERR_TASK naming the file. write_images and
 * write_binary (a file a row) are plan operators: prism_data_append_json, then
 * prism_data_count runs the plan. */
PRISM_API prism_status prism_data_write_jsonl(prism_dataset *ds, const char *path, int timeout_ms,
                                              int64_t *rows, int64_t *files);
PRISM_API prism_status prism_data_write_csv(prism_dataset *ds, const char *path, int timeout_ms,
                                            int64_t *rows, int64_t *files);

typedef struct prism_batch prism_batch;
typedef struct prism_data_iter prism_data_iter;

typedef struct prism_data_iter_options {
    bool drop_last;       /* leave out a last batch of fewer rows; default false */
    int timeout_ms;       /* the most one next waits for a batch; default 0: no limit */
    uint64_t reserved[8]; /* zero */
} prism_data_iter_options;

/* clang-format off */
#define PRISM_DATA_ITER_OPTIONS_INIT {.drop_last = false, .timeout_ms = 0, .reserved = {0}}
/* clang-format on */
PRISM_API void prism_data_iter_options_init(prism_data_iter_options *opts);

/* Runs the plan with its output streamed to this iterator: batches of
 * `batch_size` rows (1 .. 2^31 - 1; the last may hold fewer), as the
 * pipeline makes them. Blocks the iterator has not given back count in the
 * dataset's memory budget: a consumer that lags holds the pipeline back. */
PRISM_API prism_status prism_data_iter_batches(prism_dataset *ds, int64_t batch_size,
                                               const prism_data_iter_options *opts,
                                               prism_data_iter **out);
/* The next batch (owned: prism_batch_free), or PRISM_OK with *out NULL at
 * the end. PRISM_ERR_TASK when the dataset failed (prism_last_error names
 * the operator), PRISM_ERR_TIMEOUT past the options' timeout. */
PRISM_API prism_status prism_data_iter_next(prism_data_iter *it, prism_batch **out);
/* Stops the dataset when it still runs (an iterator of prism_data_iter_split
 * does not: the other consumers go on) and frees the iterator. */
PRISM_API void prism_data_iter_destroy(prism_data_iter *it);

/* ---------- streaming_split: n consumers, e.g. one per trainer process ---------- */

/* Runs the plan with its output split among `n` consumers (1 .. 1024), each
 * iterating its own share from any process with prism_data_iter_split and
 * the ID written to `id` (at least PRISM_DATA_ID_SIZE bytes). Whichever
 * consumer asks gets the next block, so the shares are disjoint and a slow
 * consumer takes fewer rows without stalling the others; with `equal`, each
 * gets the same number of rows (blocks are cut where needed; the last
 * n - 1 rows at most are dropped), a fast consumer waiting when it is ahead
 * by more than what is queued. A consumer that makes no call for
 * `consumer_timeout_ms` (0: 60 s) is taken for dead and the dataset fails
 * (the others get PRISM_ERR_TASK naming the split). */
PRISM_API prism_status prism_data_streaming_split(prism_dataset *ds, int n, bool equal,
                                                  int consumer_timeout_ms, char *id, size_t idlen);
/* Iterates share `split` (0 .. n - 1) of dataset `dataset_id` as
 * prism_data_iter_batches does (batches, the end, errors). */
PRISM_API prism_status prism_data_iter_split(prism_client *c, const char *dataset_id, int split,
                                             int64_t batch_size,
                                             const prism_data_iter_options *opts,
                                             prism_data_iter **out);

/* ---------- batches ---------- */

PRISM_API size_t prism_batch_rows(const prism_batch *b);
PRISM_API size_t prism_batch_num_columns(const prism_batch *b);
/* Column `i`'s name (borrowed), NULL when out of range. */
PRISM_API const char *prism_batch_column_name(const prism_batch *b, size_t i);
/* The index of column `name`, or -1. */
PRISM_API long prism_batch_column_index(const prism_batch *b, const char *name);
/* A number or tensor column's values, row-major, row 0 first (borrowed from
 * the batch): `dtype`, and for a tensor its per-row shape in `shape`
 * (`*ndim` dimensions, at most PRISM_MAX_DIMS; 0 for a number column).
 * NULL for other columns (strings, bytes, bools) and element types
 * prism_dtype lacks: read those through Arrow. */
PRISM_API const void *prism_batch_values(const prism_batch *b, size_t col, prism_dtype *dtype,
                                         int *ndim, int64_t *shape);
/* Row `row` of a utf8 or binary column (borrowed, not NUL-terminated), or
 * NULL for a null row, another column kind or out of range. */
PRISM_API const void *prism_batch_bytes(const prism_batch *b, size_t col, size_t row, size_t *len);
/* The rows as a JSON array of objects; free() it. */
PRISM_API char *prism_batch_to_json(const prism_batch *b);
/* The batch through the Arrow C Data Interface, zero-copy: a struct array
 * with a child per column (docs/datasets.md#the-arrow-c-data-interface).
 * The exported structures keep the batch's memory until their release
 * callbacks run, whether or not the batch is freed first. */
PRISM_API prism_status prism_batch_export_arrow(const prism_batch *b, struct ArrowSchema *schema,
                                                struct ArrowArray *array);
PRISM_API void prism_batch_free(prism_batch *b);

#ifdef __cplusplus
}
#endif

#endif
