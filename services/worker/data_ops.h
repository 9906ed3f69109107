/* The data functions of the built-in package: the tasks the dataservice's
 * executor runs for a dataset (docs/datasets.md#executing-a-plan).
 *
 *   data_read_stage(program, split)           -> [block, stats]
 *   data_map_stage(program, take, block, ...) -> [block, stats]
 *
 * `program` is a stage of the physical plan as JSON ({"ops": [{"op",
 * "name", "logical", "spec"}...], "row_limit": n|null, "skip_corrupt":
 * bool}); the task runs its
 * operators one after the other on one block. `split` says what a read makes
 * ({"start", "end"} of a range, {"items": [...]} of from_items); `take` lists,
 * per input block, how many of its first rows to use (null: all). A block
 * travels as a uint8 tensor holding its serialized bytes (tensor data is
 * 16-byte aligned in the object store, which prism_block_open needs); stats
 * is {"rows", "bytes", "skipped", "node"} of the output (skipped: the files and
 * images skip_corrupt left out; node: $PRISM_NODE_ID, the node it was made
 * on), small enough to come back inline. */
#ifndef PRISM_WORKER_DATA_OPS_H
#define PRISM_WORKER_DATA_OPS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "prism/task.h"
#include "prism_block.h"

prism_status data_read_stage(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                             prism_value **returns, size_t nreturns);
prism_status data_map_stage(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                            prism_value **returns, size_t nreturns);

/* Runs stage program `prog` (as the tasks above get it, parsed; borrowed)
 * on `in`: one split (JSON) when the stage starts with a read, else `nin`
 * blocks, a bundle as data_map_stage takes, each cut to its `take` (a list
 * as data_map_stage's; NULL: every row). Returns the stage's output block,
 * adding the files and images skip_corrupt left out to *skipped; or NULL
 * with `err` naming the operator. The row limit is the caller's. */
prism_block *data_run_stage(prism_task_ctx *ctx, const json_t *prog, const prism_value *const *in,
                            size_t nin, const json_t *take, size_t *skipped, char *err, size_t n);

/* The tasks of an all-to-all stage (data_shuffle.c):
 *   data_a2a_map(program, task, block...)    -> [part 0, ..., part P-1, stats]
 *   data_a2a_reduce(program, task, block...) -> [block, stats]
 * `program` is {"op", "spec", "parts": P, "seed", "stage"?}; a map's task is
 * {"index", "take"}, its stats {"rows": [...], "bytes": [...], "skipped",
 * "node"} per part (sort: one part, the block sorted); a reduce's task is
 * {"index", "ranges"?} and its blocks part `index` of every map output.
 * "stage", the program of a read or map stage fused into the maps: a map
 * runs it on its input (a split, or a bundle of blocks, "take" a list for
 * them) first (data_run_stage). */
prism_status data_a2a_map(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                          prism_value **returns, size_t nreturns);
prism_status data_a2a_reduce(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                             prism_value **returns, size_t nreturns);
/*   data_a2a_merge(task, parts...)            -> [merged 0, ..., merged P-1, stats]
 * (push-based shuffle) joins part j of K map outputs, for every j: task is
 * {"maps": K, "parts": P}, the parts map by map; stats as a map's. */
prism_status data_a2a_merge(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                            prism_value **returns, size_t nreturns);

/* A zip stage's task (data_zip.c):
 *   data_zip(task, left, right...) -> [block, stats]
 * task is {"left": [skip, count], "right": [[skip, count]...]}: those rows
 * of the left block beside as many of the right blocks, joined. */
prism_status data_zip(prism_task_ctx *ctx, const prism_value *const *args, size_t nargs,
                      prism_value **returns, size_t nreturns);
/* `b` (taken) as a task's returns: the block, and its stats {"rows",
 * "bytes", "skipped": 0, "node"} (data_shuffle.c). */
prism_status data_finish_block(prism_task_ctx *ctx, prism_block *b, prism_value **returns,
                               size_t nreturns);

/* Calls the package function `f` (`name` for errors) on `in` with `args`
 * (borrowed): the block it returns, or NULL with `err`. */
prism_block *data_call_fn(prism_task_ctx *ctx, prism_task_fn f, const char *name,
                          const prism_block *in, const json_t *args, char *err, size_t n);

/* The actor class DataStage of the built-in package: an actor of a
 * dataset's actor pool. Its constructor takes the stage program and runs
 * each package function's setup, `<function>__init(args)`, when the package
 * has one; its method `run` is data_map_stage. */
prism_status data_stage_actor_init(prism_task_ctx *ctx, const prism_value *const *args,
                                   size_t nargs, void **state);
prism_status data_stage_actor_run(prism_task_ctx *ctx, void *state, const prism_value *const *args,
                                  size_t nargs, prism_value **returns, size_t nreturns);

/* A package's task function, as the runtime finds it (runtime.c); NULL with
 * `err` when the package or the function cannot be had. */
prism_task_fn prism__worker_find_task(prism_task_ctx *ctx, const char *pkg, const char *fn,
                                      char *err, size_t n);

/* The plan's skip_corrupt: whether files and images that cannot be read or
 * decoded are left out (and counted) instead of failing the task. */
typedef struct data_skip {
    bool on;
    size_t count;
} data_skip;

/* ---------- data_fns.c: block helpers and the built-in functions ---------- */

/* A block of `v`, a uint8 tensor of block bytes (borrowed: `v` outlives it). */
prism_block *data_block_of_value(const prism_value *v, char *err, size_t n);
/* The value carrying `blk` (taken): its own bytes when it has them, else a
 * serialized copy. NULL when out of memory. */
prism_value *data_value_of_block(prism_block *blk);
/* `blk` with column `name` set to column 0 of `col` (replaced in place when
 * `blk` has one of that name, else appended). Both are borrowed. */
prism_block_status data_block_with_column(const prism_block *blk, const char *name,
                                          const prism_block *col, prism_block **out, char *err,
                                          size_t n);
/* The same with a tensor column [rows, shape[0], shape[1], shape[2]] of
 * `elem` from `values` (and `validity`, an Arrow bitmap from bit 0, or NULL),
 * both borrowed: copied once, into the new block. */
prism_block_status data_block_with_tensor(const prism_block *blk, const char *name,
                                          prism_coltype elem, const int64_t *shape,
                                          const void *values, const uint8_t *validity,
                                          prism_block **out, char *err, size_t n);
/* `blk` (borrowed) as a block with bytes of its own: itself (a new
 * reference) when it has them, else (a view) a serialized copy. */
prism_block_status data_block_flat(const prism_block *blk, prism_block **out);
/* A new block of rows `rows[0..k)` of `blk` (borrowed), in that order. */
prism_block_status data_block_take_rows(const prism_block *blk, const size_t *rows, size_t k,
                                        prism_block **out);
/* A built-in function: cast and normalize (any numeric data) here, the
 * image functions in data_transforms.c. `args` has every field, defaults
 * filled in (the plan library's). Returns 0, or -1 with `err`. */
int data_builtin_run(const char *fn, const json_t *args, const prism_block *in, data_skip *skip,
                     prism_block **out, char *err, size_t n);
/* Whether this executor implements the builtin `fn`. */
int data_builtin_known(const char *fn);
/* normalize's table for uint8 elements: table[j][x] = (x - mean[j]) /
 * std[j] as float32, for its k (1-4) numbers. 0, or -1 with `err`. */
int data_normalize_table(const json_t *args, float table[4][256], size_t *k, char *err, size_t n);
/* Whether normalize's k numbers fit `channels` (one, or one a channel). */
int data_normalize_fits(const json_t *args, size_t k, size_t channels, char *err, size_t n);

/* ---------- data_transforms.c: the image builtins ---------- */

/* A one-column block `name` of `rows` tensors [shape[0], shape[1], shape[2]]
 * of `elem` from `values` (borrowed), with the nulls of column `col` of
 * `nulls_of` (NULL or col < 0: none). */
prism_block_status data_tensor_column(const char *name, prism_coltype elem, const int64_t *shape,
                                      const void *values, size_t rows, const prism_block *nulls_of,
                                      long col, prism_block **out, char *err, size_t n);
/* Encoded image `i` of a decode: its bytes, or NULL when they cannot be had;
 * `what` names it for errors. */
typedef const uint8_t *(*data_encoded_fn)(void *ud, size_t i, size_t *len, char *what, size_t n);
/* Decodes `count` images into one buffer [kept, h, w, c] (owned), setting
 * `shape`: `channels` each (0: as the first is stored); every image has the
 * first one's shape, or is resized to `size` ([h, w]) when given. With
 * skip->on an image that cannot be had or decoded is left out and counted
 * (kept[i] says which were kept, when `kept` is not NULL). NULL with `err`
 * naming the image that failed. */
uint8_t *data_decode_all(size_t count, data_encoded_fn get, void *ud, int channels,
                         const int64_t *size, int64_t shape[3], data_skip *skip, uint8_t *kept,
                         size_t *nkept, char *err, size_t n);
/* Frees the image blocks' spare buffers (up to 256 MiB) that the process
 * keeps for the next block: the worker calls it once idle a while. */
void data_spares_release(void);
/* While the operator that makes a stage task's output block runs: its task
 * (NULL otherwise). An image decode then makes the block in the task's
 * return space in the object store (prism_task_ctx.return_space): not
 * copied there after. */
void data_output_op(prism_task_ctx *ctx);
/* decode_image, random_crop, center_crop, resize and flip; as
 * data_builtin_run. A run's first gets the others in "then"
 * (libs/data/prism_plan_opt.c) and does them in the same pass, normalize
 * included. */
int data_image_builtin_known(const char *fn);
int data_image_builtin_run(const char *fn, const json_t *args, const prism_block *in,
                           data_skip *skip, prism_block **out, char *err, size_t n);

/* ---------- data_read.c: reads of files ---------- */

/* Reads the files of a split ({"files": [path...]}) of the read operator
 * `spec` (every field, defaults filled in) into one block; with skip->on a
 * file that cannot be read or parsed is left out and counted. Returns 0, or
 * -1 with `err` naming the file. */
int data_read_files(const char *kind, const json_t *spec, const json_t *split, data_skip *skip,
                    prism_block **out, char *err, size_t n);

#endif
