/* The image builtins of datasets: decode_image, random_crop, center_crop,
 * resize and flip (docs/datasets.md#built-in-functions). Each works on a
 * tensor column of images [h, w, channels] and replaces it; a block's images
 * share one shape (its column is a fixed-shape tensor). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "data_image.h"
#include "data_ops.h"
#include "task_ctx.h"

/* ---------- spare buffers ----------
 * A block of images is tens of MiB, written once by a task and freed once
 * the object store has its copy. Memory that large comes fresh from the
 * system each time (the allocator gives it back when freed), and a page
 * fault every 4 KiB of it cost the worker more than the copies themselves.
 * So the process keeps the last buffers freed (at most SPARE_COUNT, together
 * at most SPARE_BYTES) and hands them out again, until it has been idle a
 * while (data_spares_release). */
#define SPARE_COUNT 2
#define SPARE_BYTES ((size_t)256 << 20)

typedef struct spare {
    void *p;
    size_t cap;
} spare;

static pthread_mutex_t spare_mu = PTHREAD_MUTEX_INITIALIZER;
static spare spares[SPARE_COUNT];

/* At least `len` bytes, 64-byte aligned: a spare buffer or new memory;
 * `*cap` is what spare_put takes back. NULL when out of memory. */
static void *spare_get(size_t len, size_t *cap)
{
    spare got = {NULL, 0};
    pthread_mutex_lock(&spare_mu);
    for (size_t i = 0; i < SPARE_COUNT; i++)
        if (spares[i].p && spares[i].cap >= len && (!got.p || spares[i].cap < got.cap))
            got = spares[i];
    for (size_t i = 0; got.p && i < SPARE_COUNT; i++)
        if (spares[i].p == got.p)
            spares[i] = (spare){NULL, 0};
    pthread_mutex_unlock(&spare_mu);
    if (!got.p) {
        got.cap = (len + 63) / 64 * 64 + 64;
        got.p = aligned_alloc(64, got.cap);
    }
    *cap = got.cap;
    return got.p;
}

/* `p` (from spare_get) kept for the next spare_get, in place of a smaller
 * spare when all are taken, or freed. */
static void spare_put(void *p, size_t cap)
{
    if (!p)
        return;
    pthread_mutex_lock(&spare_mu);
    size_t held = 0, slot = SPARE_COUNT;
    for (size_t i = 0; i < SPARE_COUNT; i++) {
        held += spares[i].cap;
        if (slot == SPARE_COUNT || spares[i].cap < spares[slot].cap)
            slot = i;
    }
    spare out = {p, cap};
    if (cap > spares[slot].cap && held - spares[slot].cap + cap <= SPARE_BYTES) {
        out = spares[slot];
        spares[slot] = (spare){p, cap};
    }
    pthread_mutex_unlock(&spare_mu);
    free(out.p);
}

static _Thread_local prism_task_ctx *output_ctx;

void data_output_op(prism_task_ctx *ctx) { output_ctx = ctx; }

void data_spares_release(void)
{
    spare all[SPARE_COUNT];
    pthread_mutex_lock(&spare_mu);
    memcpy(all, spares, sizeof all);
    memset(spares, 0, sizeof spares);
    pthread_mutex_unlock(&spare_mu);
    for (size_t i = 0; i < SPARE_COUNT; i++)
        free(all[i].p);
}

static void spare_release(void *ud)
{
    spare *s = ud;
    spare_put(s->p, s->cap);
    free(s);
}

/* The block `b` builds, written into a spare buffer that goes back when the
 * block's last reference does. */
static prism_block_status finish_spare(prism_block_builder *b, prism_block **out, char *err,
                                       size_t n)
{
    size_t len = 0, written = 0;
    prism_block_status st = prism_block_builder_size(b, &len, err, n);
    spare *s = st == PRISM_BLOCK_OK ? calloc(1, sizeof *s) : NULL;
    if (st == PRISM_BLOCK_OK && (!s || !(s->p = spare_get(len, &s->cap))))
        st = PRISM_BLOCK_ENOMEM;
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_finish_into(b, s->p, s->cap, &written, err, n);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_open_ex(s->p, written, 0, spare_release, s, out, err, n);
    if (st != PRISM_BLOCK_OK && s) {
        spare_put(s->p, s->cap);
        free(s);
    }
    return st;
}

prism_block_status data_tensor_column(const char *name, prism_coltype elem, const int64_t *shape,
                                      const void *values, size_t rows, const prism_block *nulls_of,
                                      long col, prism_block **out, char *err, size_t n)
{
    prism_block_schema *s = NULL;
    prism_block_builder *b = NULL;
    uint8_t *valid = NULL;
    prism_block_status st = prism_block_schema_create(&s);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_schema_add_tensor(s, name, elem, 3, shape);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_create(s, &b);
    if (st == PRISM_BLOCK_OK && nulls_of && col >= 0 &&
        prism_block_null_count(nulls_of, (size_t)col) > 0) {
        if (!(valid = calloc(rows / 8 + 1, 1)))
            st = PRISM_BLOCK_ENOMEM;
        for (size_t r = 0; valid && r < rows; r++)
            if (!prism_block_is_null(nulls_of, (size_t)col, r))
                valid[r / 8] |= (uint8_t)(1u << (r % 8));
    }
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_set_fixed(b, 0, values, rows, valid);
    char why[256] = "";
    if (st == PRISM_BLOCK_OK)
        st = finish_spare(b, out, why, sizeof why);
    if (st != PRISM_BLOCK_OK)
        snprintf(err, n, "cannot build column \"%s\": %s %s", name, prism_block_strerror(st), why);
    free(valid);
    prism_block_builder_destroy(b);
    prism_block_schema_destroy(s);
    return st;
}

/* Where the values of a block whose one column is tensor `name` of `elem`
 * (three dimensions) begin: 0 out of memory. */
static size_t tensor_prefix(const char *name, prism_coltype elem)
{
    prism_block_schema *s = NULL;
    const int64_t any[3] = {1, 1, 1}; /* the shape does not move the values */
    size_t off = prism_block_schema_create(&s) == PRISM_BLOCK_OK &&
                         prism_block_schema_add_tensor(s, name, elem, 3, any) == PRISM_BLOCK_OK
                     ? prism_block_schema_data_offset(s)
                     : 0;
    prism_block_schema_destroy(s);
    return off;
}

/* The block of one tensor column whose `rows` values were written in place,
 * tensor_prefix bytes into `base` (`cap` bytes): its header written around
 * them, so that the pixels are not copied again. The block owns `base`, a
 * spare buffer (given back to the spares with it; at once on failure),
 * unless `borrowed` (the task's return space: the runtime's). */
static prism_block_status tensor_in_place(const char *name, prism_coltype elem,
                                          const int64_t *shape, uint8_t *base, size_t cap,
                                          size_t rows, bool borrowed, prism_block **out, char *err,
                                          size_t n)
{
    prism_block_schema *s = NULL;
    prism_block_builder *b = NULL;
    spare *sp = borrowed ? NULL : calloc(1, sizeof *sp);
    size_t written = 0;
    char why[256] = "";
    prism_block_status st = sp || borrowed ? prism_block_schema_create(&s) : PRISM_BLOCK_ENOMEM;
    if (st == PRISM_BLOCK_OK)
        st = prism_block_schema_add_tensor(s, name, elem, 3, shape);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_create(s, &b);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_set_fixed(b, 0, base + prism_block_schema_data_offset(s), rows,
                                           NULL);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_finish_into(b, base, cap, &written, why, sizeof why);
    if (st == PRISM_BLOCK_OK && borrowed) {
        st = prism_block_open_ex(base, written, 0, NULL, NULL, out, why, sizeof why);
    } else if (st == PRISM_BLOCK_OK) {
        *sp = (spare){base, cap};
        st = prism_block_open_ex(base, written, 0, spare_release, sp, out, why, sizeof why);
    }
    if (st != PRISM_BLOCK_OK && !borrowed) {
        spare_put(base, cap);
        free(sp);
    }
    if (st != PRISM_BLOCK_OK) {
        snprintf(err, n, "cannot build column \"%s\": %s %s", name, prism_block_strerror(st), why);
    }
    prism_block_builder_destroy(b);
    prism_block_schema_destroy(s);
    return st;
}

/* The image column `name` of `in`: [h, w, c] of `elem` per row. */
typedef struct img_col {
    long index;
    const char *name;
    prism_coltype elem;
    size_t width; /* bytes an element */
    int64_t h, w, c;
    const uint8_t *rows; /* row 0's first element */
} img_col;

static int find_images(const prism_block *in, const char *fn, const char *name, img_col *ic,
                       char *err, size_t n)
{
    const prism_block_schema *s = prism_block_get_schema(in);
    ic->name = name;
    ic->index = prism_block_column_index(in, name);
    if (ic->index < 0) {
        snprintf(err, n, "%s: no column \"%s\"", fn, name);
        return -1;
    }
    size_t i = (size_t)ic->index;
    if (prism_block_schema_type(s, i) != PRISM_COL_TENSOR || prism_block_schema_ndim(s, i) != 3) {
        snprintf(err, n, "%s: column \"%s\" is not images (a tensor [height, width, channels])", fn,
                 name);
        return -1;
    }
    const int64_t *shape = prism_block_schema_shape(s, i);
    ic->h = shape[0];
    ic->w = shape[1];
    ic->c = shape[2];
    ic->elem = prism_block_schema_elem(s, i);
    ic->width = prism_coltype_width(ic->elem);
    ic->rows = prism_block_values(in, i, PRISM_COL_TENSOR);
    if (!ic->rows) {
        snprintf(err, n, "%s: cannot read column \"%s\"", fn, name);
        return -1;
    }
    return 0;
}

/* `in` with the image column replaced by `values` [rows, h, w, c] of its
 * element type, keeping its nulls. */
static int replace_images(const prism_block *in, const img_col *ic, int64_t h, int64_t w,
                          const void *values, prism_block **out, char *err, size_t n)
{
    const int64_t shape[3] = {h, w, ic->c};
    size_t rows = prism_block_rows(in);
    uint8_t *valid = NULL;
    if (prism_block_null_count(in, (size_t)ic->index) > 0) {
        if (!(valid = calloc(rows / 8 + 1, 1))) {
            snprintf(err, n, "out of memory");
            return -1;
        }
        for (size_t r = 0; r < rows; r++)
            if (!prism_block_is_null(in, (size_t)ic->index, r))
                valid[r / 8] |= (uint8_t)(1u << (r % 8));
    }
    prism_block_status st =
        data_block_with_tensor(in, ic->name, ic->elem, shape, values, valid, out, err, n);
    free(valid);
    return st == PRISM_BLOCK_OK ? 0 : -1;
}

/* ---------- randomness: splitmix64, seeded or not ---------- */

static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t seed_of(const json_t *args)
{
    const json_t *seed = json_object_get(args, "seed");
    uint64_t s = 0;
    if (json_is_integer(seed))
        return (uint64_t)json_integer_value(seed);
    if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s)
        s = (uint64_t)(uintptr_t)&s;
    return s;
}

/* ---------- fused runs: a crop, a flip and normalize in one copy ----------
 * The optimizer marks a run of image builtins on one column in one stage
 * (decode_image or a crop, then a crop, a flip and/or normalize, in that
 * order): the first gets the others' functions and args in "then", each
 * other one "fused": true and passes its block through. Each image is then
 * cut, flipped and normalized in one copy (straight from the decoder's
 * output after decode_image), drawing the same random numbers, in the same
 * order, and making the same floats as the builtins one after the other. */

typedef struct chain {
    const char *crop_fn; /* NULL: no crop (h, w are the input's) */
    int64_t h, w;
    bool random_crop;
    uint64_t crop_rng;
    int flip; /* 0: none, 1: horizontal, 2: vertical */
    double p;
    uint64_t flip_rng;
    const json_t *norm; /* normalize's args (NULL: none): the images become float32 */
    size_t nk;          /* its numbers: one, or one a channel */
    float table[4][256];
    int64_t y0, x0; /* the image's cut and flip, drawn (chain_draw) */
    int flipped;
} chain;

static int size_arg(const json_t *args, int64_t *h, int64_t *w);

/* Adds builtin `fn` with `args` to `ch`. 0, or -1 when it cannot join. */
static int chain_add(chain *ch, const char *fn, const json_t *args)
{
    if (fn && (!strcmp(fn, "random_crop") || !strcmp(fn, "center_crop")) && !ch->crop_fn &&
        !ch->flip && !ch->norm) {
        if (size_arg(args, &ch->h, &ch->w) != 0)
            return -1;
        ch->crop_fn = !strcmp(fn, "random_crop") ? "random_crop" : "center_crop";
        ch->random_crop = !strcmp(fn, "random_crop");
        if (ch->random_crop)
            ch->crop_rng = seed_of(args);
        return 0;
    }
    if (fn && !strcmp(fn, "flip") && !ch->flip && !ch->norm) {
        const char *dir = json_string_value(json_object_get(args, "direction"));
        const json_t *pj = json_object_get(args, "p");
        ch->flip = dir && !strcmp(dir, "vertical") ? 2 : 1;
        ch->p = json_is_number(pj) ? json_number_value(pj) : 1;
        ch->flip_rng = seed_of(args);
        return 0;
    }
    return -1;
}

/* The builtins of `then` (a head's "then") added to `ch`. */
static int chain_load(chain *ch, const json_t *then, char *err, size_t n)
{
    size_t i;
    const json_t *f;
    json_array_foreach(then, i, f) {
        const char *fn = json_string_value(json_object_get(f, "function"));
        const json_t *args = json_object_get(f, "args");
        if (fn && !strcmp(fn, "normalize") && !ch->norm) {
            if (data_normalize_table(args, ch->table, &ch->nk, err, n) != 0)
                return -1;
            ch->norm = args;
            continue;
        }
        if (chain_add(ch, fn, args) != 0) {
            snprintf(err, n, "cannot fuse \"%s\" into this run of image builtins", fn ? fn : "?");
            return -1;
        }
    }
    return 0;
}

/* Whether `ch` fits images of ih x iw x ic; else -1 with `err`. */
static int chain_fits(const chain *ch, int64_t ih, int64_t iw, int64_t ic, char *err, size_t n)
{
    if (ch->norm && data_normalize_fits(ch->norm, ch->nk, (size_t)ic, err, n) != 0)
        return -1;
    if (!ch->crop_fn || (ch->h <= ih && ch->w <= iw))
        return 0;
    snprintf(err, n, "%s: cannot crop images of %lld x %lld to %lld x %lld (height x width)",
             ch->crop_fn, (long long)ih, (long long)iw, (long long)ch->h, (long long)ch->w);
    return -1;
}

/* `count` uint8 elements at `u` normalized into `f`. They may share memory
 * when `u` starts 3 * count bytes into `f`: float i (bytes 4i to 4i + 3)
 * only overwrites elements up to i, already read. */
static void normalize_line(const chain *ch, const uint8_t *u, float *f, size_t count,
                           size_t channels)
{
    if (ch->nk > 1 && channels == 3) { /* RGB, unrolled: no division an element */
        const float *t0 = ch->table[0], *t1 = ch->table[1], *t2 = ch->table[2];
        for (size_t i = 0; i + 3 <= count; i += 3) {
            f[i] = t0[u[i]];
            f[i + 1] = t1[u[i + 1]];
            f[i + 2] = t2[u[i + 2]];
        }
    } else if (ch->nk > 1) {
        for (size_t i = 0; i < count; i += channels)
            for (size_t c = 0; c < channels && i + c < count; c++)
                f[i + c] = ch->table[c][u[i + c]];
    } else {
        for (size_t i = 0; i < count; i++)
            f[i] = ch->table[0][u[i]];
    }
}

/* `k` RGB pixels at `s` into `o` in reverse order, three bytes at a time. */
static void reverse_plain(const uint8_t *s, uint8_t *o, int64_t k)
{
    for (int64_t i = 0; i < k; i++) /* a fixed size the compiler copies inline */
        memcpy(o + (size_t)(k - 1 - i) * 3, s + (size_t)i * 3, 3);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* The same, five pixels a shuffle (SSSE3, which the x86-64 baseline lacks:
 * chosen at run time). Each 16-byte store puts five reversed pixels and,
 * in front, one spare byte that the next store (five pixels further left
 * in `o`) or the plain tail overwrites; loads and stores stay inside the
 * pixels given. */
__attribute__((target("ssse3"))) static void reverse_ssse3(const uint8_t *s, uint8_t *o, int64_t k)
{
    const __m128i rev = _mm_setr_epi8(-1, 12, 13, 14, 9, 10, 11, 6, 7, 8, 3, 4, 5, 0, 1, 2);
    int64_t x = 0;
    for (; x + 6 <= k; x += 5) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + (size_t)x * 3));
        _mm_storeu_si128((__m128i *)(void *)(o + (size_t)(k - 5 - x) * 3 - 1),
                         _mm_shuffle_epi8(v, rev));
    }
    reverse_plain(s + (size_t)x * 3, o, k - x);
}

static bool has_ssse3(void) { return __builtin_cpu_supports("ssse3"); }
#else
static void reverse_ssse3(const uint8_t *s, uint8_t *o, int64_t k) { reverse_plain(s, o, k); }
static bool has_ssse3(void) { return false; }
#endif

/* `w` RGB pixels at `s` into `d` in reverse order. Reversed first into a
 * buffer on the stack, which stays in the cache, then copied whole: stores
 * straight to `d` (the task's output, memory not in the cache) each waited
 * for their line to be read, pixel by pixel or 16 bytes at a time alike.
 * Reversed five pixels a shuffle where the CPU has SSSE3: a 224 x 224
 * image's flip into memory not in the cache takes 16 us against 30, a
 * plain copy 10 (bench/data/README.md). */
static void flip_rgb_line(const uint8_t *s, uint8_t *d, int64_t w)
{
    enum { CHUNK = 1024 }; /* pixels */
    uint8_t tmp[CHUNK * 3];
    bool simd = has_ssse3();
    for (int64_t x = 0; x < w; x += CHUNK) {
        int64_t k = w - x < CHUNK ? w - x : CHUNK;
        if (simd)
            reverse_ssse3(s + (size_t)x * 3, tmp, k);
        else
            reverse_plain(s + (size_t)x * 3, tmp, k);
        memcpy(d + (size_t)(w - x - k) * 3, tmp, (size_t)k * 3);
    }
}

/* Draws the cut and the flip of an image of ih x iw, which the crop fits:
 * its random numbers, in the builtins' order. */
static void chain_draw(chain *ch, int64_t ih, int64_t iw)
{
    int64_t h = ch->crop_fn ? ch->h : ih, w = ch->crop_fn ? ch->w : iw;
    ch->y0 = (ih - h) / 2;
    ch->x0 = (iw - w) / 2;
    if (ch->crop_fn && ch->random_crop) {
        ch->y0 = (int64_t)(next_random(&ch->crop_rng) % (uint64_t)(ih - h + 1));
        ch->x0 = (int64_t)(next_random(&ch->crop_rng) % (uint64_t)(iw - w + 1));
    }
    ch->flipped = 0;
    if (ch->flip) /* 53 random bits as a number in [0, 1), as flip draws them */
        ch->flipped =
            (double)(next_random(&ch->flip_rng) >> 11) / 9007199254740992.0 < ch->p ? ch->flip : 0;
}

/* data_rows_fn of a decode into a run: the draw, and the crop's rows. */
static void chain_pick(void *ud, int ih, int iw, int *top, int *rows)
{
    chain *ch = ud;
    if (ch->crop_fn && (ch->h > ih || ch->w > iw))
        return; /* the run fails on it (chain_fits) */
    chain_draw(ch, ih, iw);
    if (ch->crop_fn) {
        *top = (int)ch->y0;
        *rows = (int)ch->h;
    }
}

/* One image [ih, iw] of `px` bytes a pixel, of which `src` holds the rows
 * from `top` on, cut and flipped as drawn (chain_draw) into `dst` [h, w]
 * (h, w: the crop's, else ih, iw), and normalized (uint8 pixels into
 * float32) when the run ends with normalize. */
static void chain_apply(const chain *ch, const uint8_t *src, int64_t top, int64_t ih, int64_t iw,
                        size_t px, uint8_t *dst)
{
    int64_t h = ch->crop_fn ? ch->h : ih, w = ch->crop_fn ? ch->w : iw;
    int64_t y0 = ch->y0 - top, x0 = ch->x0;
    int flip = ch->flipped;
    size_t line = (size_t)w * px, out_line = ch->norm ? 4 * line : line;
    for (int64_t y = 0; y < h; y++) {
        const uint8_t *s =
            src + ((size_t)(y0 + (flip == 2 ? h - 1 - y : y)) * (size_t)iw + (size_t)x0) * px;
        /* normalized: the bytes go to the last quarter of the line's floats */
        uint8_t *d = dst + (size_t)y * out_line + (ch->norm ? 3 * line : 0);
        if (flip != 1) {
            memcpy(d, s, line);
        } else if (px == 3) {
            flip_rgb_line(s, d, w);
        } else {
            for (int64_t x = 0; x < w; x++)
                memcpy(d + (size_t)(w - 1 - x) * px, s + (size_t)x * px, px);
        }
        if (ch->norm)
            normalize_line(ch, d, (float *)(void *)(dst + (size_t)y * out_line), line, px);
    }
}

/* ---------- crops ---------- */

static int size_arg(const json_t *args, int64_t *h, int64_t *w)
{
    const json_t *size = json_object_get(args, "size");
    *h = json_integer_value(json_array_get(size, 0));
    *w = json_integer_value(json_array_get(size, 1));
    return *h > 0 && *w > 0 ? 0 : -1;
}

/* Crops every image to h x w at (y0, x0), chosen per row: centred, or at
 * random (random_crop); then the flip of a fused run ("then"), in the same
 * copy. */
static int crop(const char *fn, const json_t *args, const prism_block *in, prism_block **out,
                char *err, size_t n)
{
    img_col ic;
    chain ch = {0};
    const char *name = json_string_value(json_object_get(args, "column"));
    if (find_images(in, fn, name ? name : "image", &ic, err, n) != 0)
        return -1;
    if (chain_add(&ch, fn, args) != 0 || ch.h > ic.h || ch.w > ic.w) {
        int64_t h = 0, w = 0;
        size_arg(args, &h, &w);
        snprintf(err, n, "%s: cannot crop images of %lld x %lld to %lld x %lld (height x width)",
                 fn, (long long)ic.h, (long long)ic.w, (long long)h, (long long)w);
        return -1;
    }
    if (chain_load(&ch, json_object_get(args, "then"), err, n) != 0 ||
        chain_fits(&ch, ic.h, ic.w, ic.c, err, n) != 0)
        return -1;
    /* normalize fuses into the copy of uint8 pixels; other images are
     * normalized after it, on their own */
    const json_t *norm_after = ic.elem != PRISM_COL_UINT8 ? ch.norm : NULL;
    if (norm_after)
        ch.norm = NULL;
    size_t rows = prism_block_rows(in), px = (size_t)ic.c * ic.width;
    size_t out_img = (size_t)(ch.h * ch.w) * px * (ch.norm ? 4 : 1);
    size_t in_img = (size_t)(ic.h * ic.w) * px;
    uint8_t *dst = malloc(rows * out_img + 1);
    if (!dst) {
        snprintf(err, n, "%s: out of memory", fn);
        return -1;
    }
    for (size_t r = 0; r < rows; r++) {
        chain_draw(&ch, ic.h, ic.w);
        chain_apply(&ch, ic.rows + r * in_img, 0, ic.h, ic.w, px, dst + r * out_img);
    }
    img_col oc = ic;
    if (ch.norm)
        oc.elem = PRISM_COL_FLOAT32;
    prism_block *cut = NULL;
    int rc = replace_images(in, &oc, ch.h, ch.w, dst, norm_after ? &cut : out, err, n);
    free(dst);
    if (rc == 0 && norm_after)
        rc = data_builtin_run("normalize", norm_after, cut, NULL, out, err, n);
    prism_block_destroy(cut);
    return rc;
}

/* ---------- flip ---------- */

static void flip_one(const uint8_t *src, uint8_t *dst, const img_col *ic, int vertical)
{
    size_t px = (size_t)ic->c * ic->width, line = (size_t)ic->w * px;
    for (int64_t y = 0; y < ic->h; y++) {
        const uint8_t *s = src + (size_t)y * line;
        uint8_t *d = dst + (size_t)(vertical ? ic->h - 1 - y : y) * line;
        if (vertical) {
            memcpy(d, s, line);
            continue;
        }
        if (px == 3) {
            flip_rgb_line(s, d, ic->w);
            continue;
        }
        for (int64_t x = 0; x < ic->w; x++)
            memcpy(d + (size_t)(ic->w - 1 - x) * px, s + (size_t)x * px, px);
    }
}

static int flip(const json_t *args, const prism_block *in, prism_block **out, char *err, size_t n)
{
    img_col ic;
    const char *name = json_string_value(json_object_get(args, "column"));
    const char *dir = json_string_value(json_object_get(args, "direction"));
    const json_t *pj = json_object_get(args, "p");
    double p = json_is_number(pj) ? json_number_value(pj) : 1;
    if (find_images(in, "flip", name ? name : "image", &ic, err, n) != 0)
        return -1;
    size_t rows = prism_block_rows(in), img = (size_t)(ic.h * ic.w * ic.c) * ic.width;
    uint8_t *dst = malloc(rows * img + 1);
    if (!dst) {
        snprintf(err, n, "flip: out of memory");
        return -1;
    }
    uint64_t rng = seed_of(args);
    for (size_t r = 0; r < rows; r++) {
        /* 53 random bits as a number in [0, 1) */
        double u = (double)(next_random(&rng) >> 11) / 9007199254740992.0;
        if (u < p)
            flip_one(ic.rows + r * img, dst + r * img, &ic, dir && !strcmp(dir, "vertical"));
        else
            memcpy(dst + r * img, ic.rows + r * img, img);
    }
    int rc = replace_images(in, &ic, ic.h, ic.w, dst, out, err, n);
    free(dst);
    return rc;
}

/* ---------- resize ---------- */

static int resize(const json_t *args, const prism_block *in, prism_block **out, char *err, size_t n)
{
    img_col ic;
    int64_t h, w;
    const char *name = json_string_value(json_object_get(args, "column"));
    const char *interp = json_string_value(json_object_get(args, "interpolation"));
    if (find_images(in, "resize", name ? name : "image", &ic, err, n) != 0)
        return -1;
    if (ic.elem != PRISM_COL_UINT8 || size_arg(args, &h, &w) != 0) {
        snprintf(err, n, "resize: column \"%s\" must hold uint8 images", ic.name);
        return -1;
    }
    size_t rows = prism_block_rows(in), out_img = (size_t)(h * w * ic.c);
    if (ic.h == 0 || ic.w == 0 || (uint64_t)out_img > DATA_IMAGE_MAX_BYTES) {
        snprintf(err, n, "resize: cannot resize images of %lld x %lld to %lld x %lld",
                 (long long)ic.h, (long long)ic.w, (long long)h, (long long)w);
        return -1;
    }
    uint8_t *dst = malloc(rows * out_img + 1);
    if (!dst) {
        snprintf(err, n, "resize: out of memory");
        return -1;
    }
    size_t in_img = (size_t)(ic.h * ic.w * ic.c);
    for (size_t r = 0; r < rows; r++)
        data_image_resize(ic.rows + r * in_img, (int)ic.h, (int)ic.w, (int)ic.c, dst + r * out_img,
                          (int)h, (int)w, interp && !strcmp(interp, "nearest"));
    int rc = replace_images(in, &ic, h, w, dst, out, err, n);
    free(dst);
    return rc;
}

/* ---------- decode ---------- */

/* Image `i` decoded into `im` (the rows that `ch` cuts when given): 0; -1
 * with `err` naming it. */
static int decode_one(data_encoded_fn get, void *ud, size_t i, int channels, chain *ch,
                      data_image *im, char *err, size_t n)
{
    size_t len = 0;
    char what[512] = "", why[512] = "";
    const uint8_t *buf = get(ud, i, &len, what, sizeof what);
    if (buf &&
        data_image_decode(buf, len, channels, ch ? chain_pick : NULL, ch, im, why, sizeof why) == 0)
        return 0;
    snprintf(err, n, "%s: %s", what, buf ? why : "cannot be read");
    return -1;
}

/* The buffer of decode_images: a spare one when `spare_cap` is set. */
static void drop_images(uint8_t *all, const size_t *spare_cap)
{
    if (spare_cap)
        spare_put(all, *spare_cap);
    else
        free(all);
}

/* The buffer of `count` images of `img` bytes, `prefix` bytes in: with
 * `in_return` set, the task's return space when the operator makes its
 * output block (exactly the block of them all: *in_return then says so),
 * else a spare buffer (spare_put it with *spare_cap) when `spare_cap` is
 * set, else malloc'd. */
static uint8_t *images_buffer(size_t count, size_t img, size_t prefix, bool *in_return,
                              size_t *spare_cap)
{
    size_t block = (prefix + count * img + 63) / 64 * 64;
    uint8_t *p = in_return && output_ctx && output_ctx->return_space
                     ? output_ctx->return_space(output_ctx, 0, block)
                     : NULL;
    if (p) {
        *in_return = true;
        *spare_cap = block;
        return p;
    }
    return spare_cap ? spare_get(prefix + count * img + 1, spare_cap)
                     : malloc(prefix + count * img + 1);
}

/* The buffer of decode_images, unless it is the task's return space (the
 * runtime's: dropped once the task ends). */
static void drop_buffer(uint8_t *all, const size_t *spare_cap, const bool *in_return)
{
    if (!in_return || !*in_return)
        drop_images(all, spare_cap);
}

/* data_decode_all, each image then cut and flipped by `ch` (NULL: none)
 * into the buffer (images_buffer); the images start `prefix` bytes in. */
static uint8_t *decode_images(size_t count, data_encoded_fn get, void *ud, int channels,
                              const int64_t *size, chain *ch, int64_t shape[3], data_skip *skip,
                              uint8_t *kept, size_t *nkept, size_t prefix, bool *in_return,
                              size_t *spare_cap, char *err, size_t n)
{
    uint8_t *all = NULL;
    size_t img = 0, k = 0;
    int fh = 0, fw = 0; /* the first image's size, which every other must have */
    for (size_t i = 0; i < count; i++) {
        data_image im;
        if (kept)
            kept[i] = 0;
        /* an image left out draws nothing: the draws made before its decode failed are undone */
        uint64_t rngs[2] = {ch ? ch->crop_rng : 0, ch ? ch->flip_rng : 0};
        if (decode_one(get, ud, i, channels, size ? NULL : ch, &im, err, n) != 0) {
            if (skip && skip->on) { /* left out, and counted */
                skip->count++;
                if (ch) {
                    ch->crop_rng = rngs[0];
                    ch->flip_rng = rngs[1];
                }
                continue;
            }
            drop_buffer(all, spare_cap, in_return);
            return NULL;
        }
        if (!all) {
            if (ch && chain_fits(ch, im.h, im.w, im.c, err, n) != 0) {
                free(im.px);
                return NULL;
            }
            fh = im.h;
            fw = im.w;
            shape[0] = size ? size[0] : ch && ch->crop_fn ? ch->h : im.h;
            shape[1] = size ? size[1] : ch && ch->crop_fn ? ch->w : im.w;
            shape[2] = im.c;
            img = (size_t)(shape[0] * shape[1] * shape[2]) * (ch && ch->norm ? 4 : 1);
            if ((uint64_t)img > DATA_IMAGE_MAX_BYTES ||
                !(all = images_buffer(count, img, prefix, in_return, spare_cap))) {
                snprintf(err, n, "out of memory for %zu images", count);
                free(im.px);
                return NULL;
            }
        }
        if (im.c != shape[2] || (!size && (im.h != fh || im.w != fw))) {
            char what[512] = "";
            size_t len;
            get(ud, i, &len, what, sizeof what);
            snprintf(err, n,
                     "%s: %d x %d x %d, unlike the first image of its block (%d x %d x %lld): "
                     "give a size (and mode) so that every image has one shape",
                     what, im.h, im.w, im.c, fh, fw, (long long)shape[2]);
            free(im.px);
            drop_buffer(all, spare_cap, in_return);
            return NULL;
        }
        uint8_t *at = all + prefix + k * img;
        if (size && (im.h != shape[0] || im.w != shape[1]))
            data_image_resize(im.px, im.h, im.w, im.c, at, (int)shape[0], (int)shape[1], 0);
        else if (ch)
            chain_apply(ch, im.px, im.top, im.h, im.w, (size_t)im.c, at);
        else
            memcpy(at, im.px, img);
        free(im.px);
        if (kept)
            kept[i] = 1;
        k++;
    }
    if (!all) { /* every image skipped */
        shape[0] = size ? size[0] : ch && ch->crop_fn ? ch->h : 0;
        shape[1] = size ? size[1] : ch && ch->crop_fn ? ch->w : 0;
        shape[2] = channels;
        all = spare_cap ? spare_get(prefix + 1, spare_cap) : calloc(1, prefix + 1);
    }
    *nkept = k;
    return all;
}

uint8_t *data_decode_all(size_t count, data_encoded_fn get, void *ud, int channels,
                         const int64_t *size, int64_t shape[3], data_skip *skip, uint8_t *kept,
                         size_t *nkept, char *err, size_t n)
{
    return decode_images(count, get, ud, channels, size, NULL, shape, skip, kept, nkept, 0, NULL,
                         NULL, err, n);
}

typedef struct bin_rows {
    const prism_block *in;
    long col;
    const char *name;
} bin_rows;

static const uint8_t *bin_row(void *ud, size_t i, size_t *len, char *what, size_t n)
{
    const bin_rows *b = ud;
    snprintf(what, n, "decode_image: row %zu of column \"%s\"", i, b->name);
    if (prism_block_is_null(b->in, (size_t)b->col, i))
        return NULL;
    return prism_block_binary(b->in, (size_t)b->col, i, len);
}

/* `in` less the rows not kept (kept[r] == 0); a new reference. */
static int keep_rows(const prism_block *in, const uint8_t *kept, size_t nkept, prism_block **out,
                     char *err, size_t n)
{
    size_t rows = prism_block_rows(in), *idx = malloc((nkept + 1) * sizeof *idx), k = 0;
    for (size_t r = 0; idx && r < rows; r++)
        if (kept[r])
            idx[k++] = r;
    prism_block_status st = idx ? data_block_take_rows(in, idx, k, out) : PRISM_BLOCK_ENOMEM;
    free(idx);
    if (st != PRISM_BLOCK_OK)
        snprintf(err, n, "decode_image: %s", prism_block_strerror(st));
    return st == PRISM_BLOCK_OK ? 0 : -1;
}

static int decode(const json_t *args, const prism_block *in, data_skip *skip, prism_block **out,
                  char *err, size_t n)
{
    const char *name = json_string_value(json_object_get(args, "column"));
    const char *output = json_string_value(json_object_get(args, "output"));
    const char *mode = json_string_value(json_object_get(args, "mode"));
    bin_rows b = {in, prism_block_column_index(in, name ? name : "bytes"), name ? name : "bytes"};
    output = output ? output : "image";
    const prism_block_schema *s = prism_block_get_schema(in);
    if (b.col < 0 || prism_block_schema_type(s, (size_t)b.col) != PRISM_COL_BINARY) {
        snprintf(err, n, "decode_image: no binary column \"%s\"", b.name);
        return -1;
    }
    chain ch = {0};
    const json_t *then = json_object_get(args, "then");
    if (chain_load(&ch, then, err, n) != 0)
        return -1;
    size_t rows = prism_block_rows(in), nkept = 0;
    int64_t shape[3] = {0, 0, data_image_channels(mode ? mode : "RGB")};
    prism_coltype elem = ch.norm ? PRISM_COL_FLOAT32 : PRISM_COL_UINT8;
    /* The images alone: decoded where the block keeps them */
    bool alone = prism_block_columns(in) == 1;
    size_t prefix = alone ? tensor_prefix(output, elem) : 0;
    uint8_t *kept = malloc(rows + 1);
    size_t cap = 0;
    bool in_return = false; /* decoded into the task's return space */
    uint8_t *px = kept && (prefix || !alone)
                      ? decode_images(rows, bin_row, &b, (int)shape[2], NULL, then ? &ch : NULL,
                                      shape, skip, kept, &nkept, prefix, alone ? &in_return : NULL,
                                      &cap, err, n)
                      : NULL;
    if (!kept || (alone && !prefix))
        snprintf(err, n, "decode_image: out of memory");
    if (px && in_return && nkept < rows) { /* images skipped: a shorter block, of its own */
        size_t img = (size_t)(shape[0] * shape[1] * shape[2]) * (ch.norm ? 4 : 1), scap = 0;
        uint8_t *own = spare_get(prefix + nkept * img + 1, &scap);
        if (own)
            memcpy(own + prefix, px + prefix, nkept * img);
        else
            snprintf(err, n, "decode_image: out of memory");
        px = own;
        cap = scap;
        in_return = false;
    }
    /* The encoded bytes go (the decoded image stands for them) before the
     * images join the block, so that the block is written once, with bytes
     * of its own, and goes to the object store as it is. */
    prism_block *base = NULL, *rest = NULL;
    const char *drop[] = {b.name};
    int rc = -1;
    if (px && alone) {
        rc = tensor_in_place(output, elem, shape, px, cap, nkept, in_return, out, err, n) ==
                     PRISM_BLOCK_OK
                 ? 0
                 : -1;
        px = NULL; /* the block's now, or given back */
    } else if (px && nkept < rows)
        rc = keep_rows(in, kept, nkept, &base, err, n);
    else if (px)
        rc = (base = prism_block_ref((prism_block *)in)) ? 0 : -1;
    if (base && rc == 0 && strcmp(output, b.name) &&
        prism_block_drop(base, drop, 1, &rest) != PRISM_BLOCK_OK) {
        snprintf(err, n, "decode_image: out of memory");
        rc = -1;
    }
    if (base && rc == 0)
        rc = data_block_with_tensor(rest ? rest : base, output, elem, shape, px, NULL, out, err,
                                    n) == PRISM_BLOCK_OK
                 ? 0
                 : -1;
    free(kept);
    if (px)
        spare_put(px, cap);
    prism_block_destroy(base);
    prism_block_destroy(rest);
    return rc;
}

int data_image_builtin_known(const char *fn)
{
    return !strcmp(fn, "decode_image") || !strcmp(fn, "random_crop") ||
           !strcmp(fn, "center_crop") || !strcmp(fn, "resize") || !strcmp(fn, "flip");
}

int data_image_builtin_run(const char *fn, const json_t *args, const prism_block *in,
                           data_skip *skip, prism_block **out, char *err, size_t n)
{
    if (!strcmp(fn, "decode_image"))
        return decode(args, in, skip, out, err, n);
    if (!strcmp(fn, "center_crop") || !strcmp(fn, "random_crop"))
        return crop(!strcmp(fn, "center_crop") ? "center_crop" : "random_crop", args, in, out, err,
                    n);
    if (!strcmp(fn, "resize"))
        return resize(args, in, out, err, n);
    if (!strcmp(fn, "flip"))
        return flip(args, in, out, err, n);
    snprintf(err, n, "no builtin \"%s\"", fn);
    return -1;
}
