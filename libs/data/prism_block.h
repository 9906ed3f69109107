/* Blocks: the columnar batches that datasets move between tasks.
 *
 * A block is one contiguous byte string, put in the object store as one
 * object and read back zero-copy from the shared arena: a 64-byte header, the
 * schema, then every buffer of every column 64-byte aligned, laid out as in
 * the Apache Arrow columnar format (validity bitmaps, fixed-width values,
 * int32 offsets + bytes, fixed-size lists for tensors). The exact layout is
 * in docs/datasets.md ("Blocks"); it is little-endian, which is also why this
 * library builds only on little-endian hosts (a reader hands out typed
 * pointers into the bytes, so the bytes must be in host order).
 *
 * The handles:
 *   prism_block_schema   ordered, named, typed columns (a tensor column also
 *                        records its per-row shape);
 *   prism_block_builder  turns values, or whole column arrays, into a block;
 *   prism_block          an immutable block: a serialized one (built here or
 *                        opened from bytes), or a view of one (a slice, a
 *                        choice of columns) that shares its memory.
 *
 * Ownership. Every handle comes from a create/open/finish call and goes with
 * its destroy call. Blocks are reference counted so that views and Arrow
 * exports can outlive the handle they came from: each holds a reference to
 * the memory it reads, and that memory goes when the last reference does.
 * prism_block_destroy drops one reference. Counting is atomic and blocks are
 * immutable, so a block may be read, sliced, exported and destroyed from any
 * thread. Builders and schemas are not thread-safe.
 *
 * Errors. Every call that can fail returns a prism_block_status and changes
 * no output on failure; the calls that read outside bytes (open, JSON, Arrow
 * import) also write a one-line reason into `err` (`errlen` bytes; `err` may
 * be NULL). Nothing here prints or aborts.
 *
 * Cost model (n rows, c columns, b bytes of a buffer):
 *   open           O(c) + O(n) per utf8/binary column (every offset is
 *                  checked) + O(n/8) per column with nulls (the null count is
 *                  checked); with PRISM_BLOCK_CHECK_UTF8 also O(b) of string
 *                  data. No copy: accessors point into the given bytes.
 *                  Fixed-width and tensor columns cost O(1) whatever their size.
 *   accessors      O(1).
 *   slice          O(c) + O(n/8) per column with nulls (its null count). No copy.
 *   select, drop   O(c). No copy.
 *   builder        appends copy each value once into the builder's growing
 *                  buffers (amortized O(1)); set_fixed/set_bool/set_varlen
 *                  borrow the caller's arrays (O(1), plus O(n/8) to count a
 *                  validity bitmap's nulls; set_varlen checks the offsets, O(n)).
 *   finish         writes the block: one memcpy per buffer, plus the header
 *                  and schema (O(c)); so appended values are copied twice in
 *                  all, borrowed arrays once. Offsets are rewritten one by one
 *                  only when they do not start at 0, bitmaps bit by bit only
 *                  when they start inside a byte (slices). finish (not
 *                  finish_into) then opens its result, checking it as open
 *                  does. A 256x224x224x3 uint8 tensor batch is one 38.5 MB
 *                  memcpy (docs/datasets.md has the measured times).
 *   serialize,
 *   concat         the same writer: one memcpy per buffer of each input.
 *   JSON           O(output), text; meant for previews (take), not bulk data.
 *   Arrow export   O(c) small allocations, no copy of data.
 *   Arrow import   one copy, as finish.
 */
#ifndef PRISM_BLOCK_H
#define PRISM_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prism_arrow_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------- format constants ---------- */

#define PRISM_BLOCK_MAGIC "PRISMBLK" /* the first 8 bytes of every block */
#define PRISM_BLOCK_VERSION 1
#define PRISM_BLOCK_ALIGN 64 /* every buffer's offset; Arrow's recommended alignment */
#define PRISM_BLOCK_HEADER_SIZE 64
/* Limits a block may not pass (so that no size computation can overflow,
 * and so that every buffer fits Arrow's int32 offsets and list sizes). */
#define PRISM_BLOCK_MAX_ROWS 2147483647u /* INT32_MAX */
#define PRISM_BLOCK_MAX_COLUMNS 4096u
#define PRISM_BLOCK_MAX_NAME 1024u       /* bytes of a column name */
#define PRISM_BLOCK_MAX_DIMS 32u         /* dimensions of a tensor column's shape */
#define PRISM_BLOCK_MAX_LIST 2147483647u /* elements per tensor row (Arrow's int32 list size) */
#define PRISM_BLOCK_MAX_DATA 2147483647u /* bytes of one utf8/binary column (int32 offsets) */

typedef enum prism_block_status {
    PRISM_BLOCK_OK = 0,
    PRISM_BLOCK_EINVAL,   /* a bad argument: NULL, an index out of range, a call for another type */
    PRISM_BLOCK_ENOMEM,   /* memory ran out */
    PRISM_BLOCK_ECORRUPT, /* bytes that are not a valid block (err says what and where) */
    PRISM_BLOCK_ERANGE,   /* a value or size that does not fit: its type, a limit, a buffer */
    PRISM_BLOCK_ESCHEMA,  /* schemas that differ, a duplicate or unknown column name */
    PRISM_BLOCK_ESTATE,   /* a builder whose columns are incomplete or mixed */
    PRISM_BLOCK_EJSON,    /* JSON that is not rows of a block (err says which row and column) */
    PRISM_BLOCK_EARROW,   /* an Arrow array or schema of a kind not supported here */
} prism_block_status;

/* A constant English phrase for a status. */
const char *prism_block_strerror(prism_block_status st);

/* ---------- column types ---------- */

/* Codes as stored in a block: never renumber. Each is the Arrow type in the
 * comment (its C Data Interface format string in quotes). */
typedef enum prism_coltype {
    PRISM_COL_BOOL = 1, /* boolean, one bit per value: "b" */
    PRISM_COL_INT8,     /* "c" */
    PRISM_COL_INT16,    /* "s" */
    PRISM_COL_INT32,    /* "i" */
    PRISM_COL_INT64,    /* "l" */
    PRISM_COL_UINT8,    /* "C" */
    PRISM_COL_UINT16,   /* "S" */
    PRISM_COL_UINT32,   /* "I" */
    PRISM_COL_UINT64,   /* "L" */
    PRISM_COL_FLOAT32,  /* "f" */
    PRISM_COL_FLOAT64,  /* "g" */
    PRISM_COL_UTF8,     /* utf8, int32 offsets: "u" */
    PRISM_COL_BINARY,   /* binary, int32 offsets: "z" */
    PRISM_COL_TENSOR,   /* fixed-shape tensor: a fixed-size list of a numeric type
                           (int8..uint64, float32, float64) holding the product of
                           the shape per row, row-major: "+w:N" (N = the product) */
} prism_coltype;

/* "bool", "int8", ..., "float64", "utf8", "binary", "tensor"; NULL for an unknown code. */
const char *prism_coltype_name(prism_coltype t);
/* The code of such a name; 0 when unknown. */
prism_coltype prism_coltype_parse(const char *name);
/* Bytes per value of a fixed-width number type; 0 for bool (bits), utf8,
 * binary and tensor, and for unknown codes. */
size_t prism_coltype_width(prism_coltype t);
/* The Arrow format string of every type but tensor ("+w:N" depends on the
 * shape: see prism_block_schema_arrow_format); NULL otherwise. */
const char *prism_coltype_arrow_format(prism_coltype t);

/* ---------- schemas ---------- */

typedef struct prism_block_schema prism_block_schema;

prism_block_status prism_block_schema_create(prism_block_schema **out);
void prism_block_schema_destroy(prism_block_schema *s);
/* Appends a column. Names are 1..PRISM_BLOCK_MAX_NAME bytes of UTF-8
 * without NUL, unique in the schema (EINVAL when not; ESCHEMA when taken).
 * Tensor columns need prism_block_schema_add_tensor. */
prism_block_status prism_block_schema_add(prism_block_schema *s, const char *name,
                                          prism_coltype type);
/* Appends a tensor column: each row holds a row-major array of `ndim`
 * (1..PRISM_BLOCK_MAX_DIMS) dimensions `shape` (each >= 0) of the numeric
 * type `elem`; e.g. images: elem UINT8, shape {224, 224, 3}. The product of
 * the shape may not pass PRISM_BLOCK_MAX_LIST (ERANGE). */
prism_block_status prism_block_schema_add_tensor(prism_block_schema *s, const char *name,
                                                 prism_coltype elem, size_t ndim,
                                                 const int64_t *shape);
/* A copy of `s`, owned by the caller. */
prism_block_status prism_block_schema_copy(const prism_block_schema *s, prism_block_schema **out);
/* Same names, types and shapes in the same order. */
bool prism_block_schema_equal(const prism_block_schema *a, const prism_block_schema *b);

size_t prism_block_schema_columns(const prism_block_schema *s);
/* Where the first buffer of any block of this schema begins: column 0's
 * values when it has no nulls, whatever the row count. A writer may fill
 * them in place there and have the builder write the rest around them
 * (prism_block_builder_set_fixed with values at dst + this offset, then
 * prism_block_builder_finish_into dst). */
size_t prism_block_schema_data_offset(const prism_block_schema *s);
/* Index of the column named `name`, or -1. */
long prism_block_schema_find(const prism_block_schema *s, const char *name);
/* Column `i`'s name (borrowed from the schema), type, and for tensor columns
 * the element type, the shape (borrowed) and elements per row; NULL/0 when
 * `i` is out of range or the column is no tensor. */
const char *prism_block_schema_name(const prism_block_schema *s, size_t i);
prism_coltype prism_block_schema_type(const prism_block_schema *s, size_t i);
prism_coltype prism_block_schema_elem(const prism_block_schema *s, size_t i);
size_t prism_block_schema_ndim(const prism_block_schema *s, size_t i);
const int64_t *prism_block_schema_shape(const prism_block_schema *s, size_t i);
size_t prism_block_schema_list_size(const prism_block_schema *s, size_t i);
/* Column `i`'s Arrow format string ("l", "u", "+w:150528", ...) into `buf`
 * (32 bytes are always enough). EINVAL when `i` is out of range. */
prism_block_status prism_block_schema_arrow_format(const prism_block_schema *s, size_t i, char *buf,
                                                   size_t buflen);
/* The schema as JSON (for a dataset's schema() and explain), a NUL-terminated
 * string the caller frees:
 *   {"columns": [{"name": "id", "type": "int64", "arrow": "l"},
 *                {"name": "image", "type": "tensor", "dtype": "uint8",
 *                 "shape": [224, 224, 3], "arrow": "+w:150528"}]}  */
prism_block_status prism_block_schema_json(const prism_block_schema *s, char **out, size_t *len);

/* ---------- blocks: reading ---------- */

typedef struct prism_block prism_block;

/* Flags of prism_block_open_ex. */
#define PRISM_BLOCK_CHECK_UTF8 1u /* also check that utf8 columns hold valid UTF-8 */

/* Validates `len` bytes at `data` as a block and returns a handle reading
 * them in place. Everything is checked before anything is trusted, since the
 * bytes come from the object store and the network: the header, every
 * length, count and offset against the limits and the byte length (with
 * overflow-checked arithmetic), every buffer's alignment, place in the one
 * layout and exact size for its type and row count, each utf8/binary
 * column's offsets (start
 * at 0, never decrease, end at its data length), each null count against its
 * bitmap, names (UTF-8, unique), tensor shapes, and that every reserved
 * field and padding byte is zero. UTF-8 of string
 * values is not checked here (see prism_block_open_ex); their bounds always are.
 *
 * `data` must be 8-byte aligned (64 is what the format promises and what the
 * object store gives): typed pointers into it are handed out. The block
 * borrows `data`: the caller keeps it readable and unchanged until the last
 * reference to the block is gone, its views and Arrow exports included. */
prism_block_status prism_block_open(const void *data, size_t len, prism_block **out, char *err,
                                    size_t errlen);
/* prism_block_open with `flags` (PRISM_BLOCK_CHECK_UTF8) and a release
 * callback: when the last reference to the block goes (whichever thread
 * drops it), `release(ctx)` is called, so memory such as an object-store
 * object can be held exactly as long as something reads it. When the open
 * fails, release is not called: the caller still owns `data`. */
prism_block_status prism_block_open_ex(const void *data, size_t len, unsigned flags,
                                       void (*release)(void *ctx), void *ctx, prism_block **out,
                                       char *err, size_t errlen);
/* Another reference to `blk` (returns it); each is dropped by a destroy. */
prism_block *prism_block_ref(prism_block *blk);
/* Drops one reference. NULL is ignored. */
void prism_block_destroy(prism_block *blk);

size_t prism_block_rows(const prism_block *blk);
size_t prism_block_columns(const prism_block *blk);
/* The block's schema, borrowed: valid as long as the block. */
const prism_block_schema *prism_block_get_schema(const prism_block *blk);
/* Index of the column named `name`, or -1. */
long prism_block_column_index(const prism_block *blk, const char *name);

/* A column as Arrow lays it out: what prism_block_column fills in. Every
 * pointer is borrowed from the block (valid as long as it). Buffers are those
 * of the serialized block, so a view's rows start at `offset`:
 *   validity   NULL when the column has no nulls; else row i is valid when
 *              bit (offset + i) is set (bit k is byte k/8, bit k%8: LSB first);
 *   values     fixed width: value (offset + i) of the type;
 *              bool: bit (offset + i) as above;
 *              utf8/binary: int32 offsets, row i is the bytes
 *              data[values[offset + i] .. values[offset + i + 1]);
 *              tensor: row i is elements (offset + i) * list_size onwards;
 *   data       utf8/binary bytes; NULL for other types.
 * Buffers of zero bytes point at a static zeroed area, never NULL. */
typedef struct prism_column_view {
    prism_coltype type;
    size_t length;     /* rows */
    size_t offset;     /* the position of the block's row 0 in the buffers */
    size_t null_count; /* nulls among the block's rows */
    const uint8_t *validity;
    const void *values;
    const uint8_t *data;
    prism_coltype elem; /* tensor: element type; 0 otherwise */
    size_t list_size;   /* tensor: elements per row; 0 otherwise */
} prism_column_view;

prism_block_status prism_block_column(const prism_block *blk, size_t col, prism_column_view *out);
size_t prism_block_null_count(const prism_block *blk, size_t col);
/* True when row `row` of column `col` is null (false when out of range). */
bool prism_block_is_null(const prism_block *blk, size_t col, size_t row);
/* The values of a fixed-width number column as an array indexed by row (row
 * 0 of this block at index 0), or for a tensor column its elements, row i
 * starting at i * list_size. `type` is the column's type (TENSOR for a
 * tensor column): a mismatch, a bool or a string column gives NULL. A null
 * row's value is unspecified (usually 0). */
const void *prism_block_values(const prism_block *blk, size_t col, prism_coltype type);
/* A bool column's value: 1 or 0; -1 when the column is no bool or the row
 * is out of range. A null row's value is unspecified. */
int prism_block_bool(const prism_block *blk, size_t col, size_t row);
/* The bytes of row `row` of a utf8 or binary column and their length (not
 * NUL-terminated); NULL when the column is neither or the row is out of
 * range. A null row's bytes are what its offsets say (none when built here). */
const uint8_t *prism_block_binary(const prism_block *blk, size_t col, size_t row, size_t *len);
/* The same for utf8 columns only. */
const char *prism_block_string(const prism_block *blk, size_t col, size_t row, size_t *len);
/* Row `row` of a tensor column: list_size elements of the element type,
 * `*nbytes` bytes; NULL when the column is no tensor or the row out of range. */
const void *prism_block_tensor(const prism_block *blk, size_t col, size_t row, size_t *nbytes);

/* The block's serialized bytes when it is one (built, opened or
 * concatenated: `*len` is its byte length); NULL for views (slices and
 * column choices), which prism_block_serialize writes out. */
const void *prism_block_data(const prism_block *blk, size_t *len);
/* The byte length of the block serialized: what prism_block_serialize
 * writes. The executor's measure of a block's size. */
size_t prism_block_nbytes(const prism_block *blk);
/* Writes the block (a view included) as one serialized block into `dst`
 * (`cap` bytes; ERANGE when fewer than prism_block_nbytes). Canonical: equal
 * blocks give equal bytes. `dst` must be 8-byte aligned (EINVAL), and
 * should be 64-byte aligned for a zero-copy open later (an object store
 * object is). */
prism_block_status prism_block_serialize(const prism_block *blk, void *dst, size_t cap);

/* ---------- blocks: operations of the executor ---------- */

/* Rows [start, end) of `blk` (start <= end <= rows), sharing its memory. */
prism_block_status prism_block_slice(const prism_block *blk, size_t start, size_t end,
                                     prism_block **out);
/* The columns named, in that order, sharing `blk`'s memory. ESCHEMA when a
 * name is unknown or given twice. */
prism_block_status prism_block_select(const prism_block *blk, const char *const *names, size_t n,
                                      prism_block **out);
/* All columns but those named (ESCHEMA when one is unknown), sharing memory. */
prism_block_status prism_block_drop(const prism_block *blk, const char *const *names, size_t n,
                                    prism_block **out);
/* One new serialized block holding the rows of `n` blocks (views allowed) in
 * order: re-batching. The schemas must be equal (ESCHEMA, err names the
 * first difference); the total must stay within the limits (ERANGE). n = 0
 * is EINVAL: there would be no schema. */
prism_block_status prism_block_concat(prism_block *const *blks, size_t n, prism_block **out,
                                      char *err, size_t errlen);
/* The concatenation's byte length, and the concatenation written into `dst`
 * (`cap` bytes, at least that length: ERANGE; 8-byte aligned: EINVAL, and
 * 64-byte aligned to open it) as with prism_block_builder_finish_into: for
 * a caller that reuses its memory (an iterator's batches). */
prism_block_status prism_block_concat_size(prism_block *const *blks, size_t n, size_t *size,
                                           char *err, size_t errlen);
prism_block_status prism_block_concat_into(prism_block *const *blks, size_t n, void *dst,
                                           size_t cap, size_t *written, char *err, size_t errlen);
/* The block for explain: its schema's JSON with "rows", "bytes"
 * (prism_block_nbytes) and each column's "null_count" added. The caller frees. */
prism_block_status prism_block_describe_json(const prism_block *blk, char **out, size_t *len);

/* ---------- rows as JSON ---------- */

/* Rows [start, start + count) (clipped to the block) as a JSON array of
 * objects, one per row, keys in column order, for take(n) over REST:
 *   null            null
 *   bool            true / false
 *   integers        numbers (exact; int64 and uint64 past 2^53 lose precision
 *                   in JavaScript readers, and uint64 past 2^63 - 1 is not
 *                   read back by prism_block_from_json)
 *   floats          numbers that read back to the same value (%.9g / %.17g);
 *                   NaN and infinities, which JSON lacks, are written null
 *   utf8            strings; bytes that are not UTF-8 are written '?'
 *                   (blocks opened without PRISM_BLOCK_CHECK_UTF8)
 *   binary          base64 strings (RFC 4648, with padding)
 *   tensor          nested arrays following the shape, row-major
 *                   (a 224x224x3 row is 224 arrays of 224 arrays of 3 numbers)
 * ERANGE when the text would pass `max_bytes` (0: no limit). The
 * NUL-terminated text is the caller's to free. */
prism_block_status prism_block_to_json(const prism_block *blk, size_t start, size_t count,
                                       size_t max_bytes, char **out, size_t *len);
/* A block from a JSON array of row objects (from_items), the reverse of
 * prism_block_to_json. With `schema`, each row's keys must be columns of it
 * (a missing key is null) and values must fit the column: integers in range,
 * numbers for floats, base64 strings for binary, nested arrays of exactly
 * the shape for tensors. Without (NULL), types are inferred, columns in the
 * order their keys first appear:
 *   only true/false                  bool
 *   only integers                    int64
 *   integers and reals               float64
 *   only strings                     utf8
 *   only nested arrays of numbers    tensor of the common shape, elements int64
 *   of one shape                     when all are integers, else float64
 *   only nulls (or absent)           utf8, all null
 * Anything else (objects, ragged or mixed arrays, strings with numbers in a
 * column) is EJSON, err naming the column and row. Memory: a tensor column
 * takes rows * its row width even for null rows (Arrow's fixed-size
 * layout), so a caller that takes `schema` from outside bounds its shapes. */
prism_block_status prism_block_from_json(const char *text, size_t len,
                                         const prism_block_schema *schema, prism_block **out,
                                         char *err, size_t errlen);

/* ---------- building ---------- */

typedef struct prism_block_builder prism_block_builder;

/* A builder for blocks of `schema` (copied). */
prism_block_status prism_block_builder_create(const prism_block_schema *schema,
                                              prism_block_builder **out);
/* Frees the builder and what it copied; blocks it built are not affected. */
void prism_block_builder_destroy(prism_block_builder *b);
/* Room for `rows` more rows in each appended column (an optimization only;
 * strings' bytes are not known and grow as appended). */
prism_block_status prism_block_builder_reserve(prism_block_builder *b, size_t rows);
/* Room for `bytes` more bytes of strings or binary in column `col` (an
 * optimization only: a reader that knows what is coming spares the copies
 * of growing). */
prism_block_status prism_block_builder_reserve_bytes(prism_block_builder *b, size_t col,
                                                     size_t bytes);

/* Appending: each call adds one row's value to one column; columns fill
 * independently and must reach the same row count by finish. A column is
 * filled either by appends or by one set_* call, not both (ESTATE). Numbers
 * convert when they fit: append_int and append_uint to any integer column
 * (ERANGE when out of its range) or float column; append_float to float
 * columns only. append_null needs no validity up front: the bitmap is made
 * at the first null. */
prism_block_status prism_block_builder_append_null(prism_block_builder *b, size_t col);
prism_block_status prism_block_builder_append_bool(prism_block_builder *b, size_t col, bool v);
prism_block_status prism_block_builder_append_int(prism_block_builder *b, size_t col, int64_t v);
prism_block_status prism_block_builder_append_uint(prism_block_builder *b, size_t col, uint64_t v);
prism_block_status prism_block_builder_append_float(prism_block_builder *b, size_t col, double v);
/* utf8 (checked: EINVAL when not UTF-8) or binary. */
prism_block_status prism_block_builder_append_bytes(prism_block_builder *b, size_t col,
                                                    const void *p, size_t len);
/* One tensor row: `nbytes` must be list_size * the element width. */
prism_block_status prism_block_builder_append_tensor(prism_block_builder *b, size_t col,
                                                     const void *p, size_t nbytes);

/* Whole columns, the fast path of batch functions. The arrays are borrowed,
 * not copied, until finish (or destroy): keep them unchanged until then;
 * finish copies each with one memcpy (none for one that already lies where
 * the block puts it: prism_block_schema_data_offset). `validity` (NULL: no nulls) is an
 * Arrow bitmap of `rows` bits starting at bit 0.
 *   set_fixed    a number column: `rows` values; a tensor column:
 *                rows * list_size elements, row-major (a uint8 image batch
 *                of shape [rows, 224, 224, 3] is its own pixel buffer)
 *   set_bool     a bool column: an Arrow bitmap of `rows` bits from bit 0
 *   set_varlen   a utf8/binary column: rows + 1 int32 offsets, non-decreasing
 *                (checked, ERANGE otherwise; they need not start at 0), and
 *                the bytes they index (utf8 is not checked here) */
prism_block_status prism_block_builder_set_fixed(prism_block_builder *b, size_t col,
                                                 const void *values, size_t rows,
                                                 const uint8_t *validity);
prism_block_status prism_block_builder_set_bool(prism_block_builder *b, size_t col,
                                                const uint8_t *bits, size_t rows,
                                                const uint8_t *validity);
prism_block_status prism_block_builder_set_varlen(prism_block_builder *b, size_t col,
                                                  const int32_t *offsets, const void *data,
                                                  size_t rows, const uint8_t *validity);
/* Rows column `col` has so far. */
size_t prism_block_builder_rows(const prism_block_builder *b, size_t col);

/* The byte length finish will produce: ESTATE (err says which column) when
 * the columns' row counts differ, ERANGE past a limit. */
prism_block_status prism_block_builder_size(const prism_block_builder *b, size_t *size, char *err,
                                            size_t errlen);
/* Writes the block into `dst` (`cap` bytes, at least prism_block_builder_size:
 * ERANGE otherwise; 8-byte aligned, as for prism_block_serialize), e.g.
 * straight into an object store object being created, so that the data is
 * copied once; `*written` is its length. On
 * success the builder is empty again (same schema, borrowed arrays
 * forgotten) and may build the next block. */
prism_block_status prism_block_builder_finish_into(prism_block_builder *b, void *dst, size_t cap,
                                                   size_t *written, char *err, size_t errlen);
/* Writes the block into new 64-byte aligned memory owned by the returned
 * block; the builder is emptied as above. */
prism_block_status prism_block_builder_finish(prism_block_builder *b, prism_block **out, char *err,
                                              size_t errlen);

/* ---------- the Arrow C Data Interface ---------- */

/* Exports `blk` (a view included) as a struct array ("+s", no nulls of its
 * own) with one child per column, zero-copy: the buffers are the block's.
 * Each exported ArrowArray, children included, holds a reference to the
 * block's memory until its release callback runs, so a consumer may keep,
 * move or release them in any order, after `blk` is destroyed. Children
 * carry the view's row offset in `offset` and its null count (0 with a NULL
 * bitmap). Tensor columns are "+w:N" with one child "item" of the element
 * type (no nulls, offset 0, length (offset + rows) * N) and the
 * arrow.fixed_shape_tensor extension (ARROW:extension:name and
 * ARROW:extension:metadata {"shape":[...]}) in the field's metadata.
 * Either output may be NULL. Each is the caller's to release. */
prism_block_status prism_block_export_arrow(const prism_block *blk, struct ArrowSchema *schema,
                                            struct ArrowArray *array);
/* The schema alone (a "+s" struct as above). */
prism_block_status prism_block_schema_export_arrow(const prism_block_schema *s,
                                                   struct ArrowSchema *out);
/* A new block from a struct array of the types above (copied, so the Arrow
 * memory may go right after). Offsets at every level are honoured; "+w:N"
 * takes its shape from arrow.fixed_shape_tensor metadata (else [N]). Refused
 * with EARROW: other formats, dictionaries, nulls in the struct itself or in
 * a tensor's elements. The caller keeps ownership of both structures (this
 * releases neither). */
prism_block_status prism_block_import_arrow(const struct ArrowSchema *schema,
                                            const struct ArrowArray *array, prism_block **out,
                                            char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
