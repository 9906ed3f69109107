/* What the files of prism_block share: the in-memory schema and block, and
 * the one writer every serialized block comes from (builder, serialize,
 * concat, Arrow import). Not installed; not for other libraries. */
#ifndef PRISM_BLOCK_INTERNAL_H
#define PRISM_BLOCK_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>

#include "prism_block.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "blocks are little-endian and read in place: a big-endian host would need a copying reader"
#endif

typedef struct pb_field {
    char *name;
    size_t name_len;
    prism_coltype type;
    prism_coltype elem; /* tensor */
    size_t ndim;        /* tensor */
    int64_t shape[PRISM_BLOCK_MAX_DIMS];
    size_t list_size; /* tensor: product of the shape */
} pb_field;

struct prism_block_schema {
    pb_field *f;
    size_t n, cap;
};

/* One column of a block: the serialized buffers' bases and where this
 * block's rows start in them. */
typedef struct pb_col {
    size_t offset;
    size_t null_count;
    const uint8_t *validity; /* NULL: no nulls */
    const uint8_t *values;
    const uint8_t *data;
} pb_col;

struct prism_block {
    atomic_size_t refs;
    prism_block
        *root;   /* a view: the serialized block whose memory it reads (a reference); else NULL */
    void *owned; /* a root's memory to free at the end (built, concatenated, imported) */
    void (*release)(void *ctx); /* a root's memory to give back at the end (open_ex) */
    void *ctx;
    const uint8_t *bytes; /* a root: its serialized bytes */
    size_t len;
    size_t rows;
    prism_block_schema schema;
    pb_col *cols;
};

/* A run of rows of one column to write: `rows` rows from position `offset`
 * in buffers laid out as pb_col's. */
typedef struct pb_seg {
    const uint8_t *validity;
    const uint8_t *values;
    const uint8_t *data;
    size_t offset;
    size_t rows;
    size_t null_count;
} pb_seg;

/* Where the writer puts each column's three buffers. */
typedef struct pb_colplan {
    size_t null_count;
    uint64_t off[3], len[3]; /* validity, values (or offsets), data */
} pb_colplan;

typedef struct pb_plan {
    size_t rows;
    size_t schema_len;
    size_t total;
    pb_colplan *cols;
} pb_plan;

/* A static zeroed, 64-byte aligned area: the buffer of zero bytes. */
extern const uint8_t pb_empty[PRISM_BLOCK_ALIGN];

void pb_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Schema helpers. */
void pb_schema_clear(prism_block_schema *s);
prism_block_status pb_schema_copy_into(const prism_block_schema *s, prism_block_schema *dst);
prism_block_status pb_schema_push(prism_block_schema *s, const char *name, size_t name_len,
                                  prism_coltype type, prism_coltype elem, size_t ndim,
                                  const int64_t *shape);
bool pb_is_number(prism_coltype t);
bool pb_is_varlen(prism_coltype t); /* utf8 or binary */
/* UTF-8 as Arrow's utf8 holds it: NUL is a character like any other. */
bool pb_utf8_valid(const uint8_t *p, size_t n);
/* Bytes of one row's values in a fixed-width or tensor column (0 for others). */
size_t pb_row_width(const pb_field *f);

/* One value of a number type. */
typedef union pb_number {
    int8_t i8;
    int16_t i16;
    int32_t i32;
    int64_t i64;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    float f32;
    double f64;
} pb_number;
/* An integer given as a sign and a magnitude, as a value of number type `t`
 * (floats included): ERANGE when it does not fit, EINVAL when `t` is no
 * number type. */
prism_block_status pb_convert_int(prism_coltype t, bool neg, uint64_t mag, pb_number *v);
/* A real as a float32 or float64 (EINVAL for other types; ERANGE for a
 * finite value past float32's range). */
prism_block_status pb_convert_real(prism_coltype t, double d, pb_number *v);

/* Bitmaps (LSB first). */
static inline bool pb_bit(const uint8_t *bits, size_t i) { return (bits[i >> 3] >> (i & 7)) & 1; }
size_t pb_count_zeros(const uint8_t *bits, size_t offset, size_t n);

/* The writer: plan a block of `rows` rows from `segs` (segs[col * nseg + k]
 * is column col's k-th run; each column's runs must add up to `rows`:
 * ESTATE otherwise), then write exactly plan->total bytes into `dst`. */
prism_block_status pb_plan_make(const prism_block_schema *s, const pb_seg *segs, size_t nseg,
                                size_t rows, pb_plan *plan, char *err, size_t errlen);
void pb_plan_free(pb_plan *plan);
void pb_write(const prism_block_schema *s, const pb_seg *segs, size_t nseg, const pb_plan *plan,
              uint8_t *dst);
/* The bytes pb_write would write; pb_write into `dst` (`cap` bytes, 8-byte
 * aligned: EINVAL; ERANGE when too small), its length in `*written`. */
prism_block_status pb_write_size(const prism_block_schema *s, const pb_seg *segs, size_t nseg,
                                 size_t rows, size_t *size, char *err, size_t errlen);
prism_block_status pb_write_into(const prism_block_schema *s, const pb_seg *segs, size_t nseg,
                                 size_t rows, void *dst, size_t cap, size_t *written, char *err,
                                 size_t errlen);
/* The segment covering all of a block's column `col`. */
pb_seg pb_seg_of(const prism_block *blk, size_t col);
/* plan + write into new aligned memory + open it as an owning block. */
prism_block_status pb_write_block(const prism_block_schema *s, const pb_seg *segs, size_t nseg,
                                  size_t rows, prism_block **out, char *err, size_t errlen);
/* Opens bytes this library wrote into `mem` (from pb_aligned_alloc), which
 * the block then owns (freed with it, or here on failure). */
prism_block_status pb_open_owned(void *mem, size_t len, prism_block **out, char *err,
                                 size_t errlen);
/* A new view of `src`'s memory with room for `ncols` columns (schema empty). */
prism_block *pb_view_new(const prism_block *src, size_t ncols);

/* Memory for blocks (64-byte aligned). */
void *pb_aligned_alloc(size_t n);

#endif
