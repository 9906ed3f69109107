/* A dataset's write (docs/datasets.md#writes): each output block becomes
 * one file in the write's directory (or one object under an s3:// prefix), named after the dataset
 * and the block's place in the output ("<dataset id>_000003.jsonl"); write_images and write_binary
 * make a file of each row's image or bytes instead
 * ("<dataset id>_000003_000017.png"). A file is
 * written under a hidden temporary name (".<name>.tmp", which reads leave
 * out), flushed to disk, then renamed: a half-written file never appears
 * under its final name. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <png.h>
#include <turbojpeg.h>

#include "dataservice.h"
#include "prism_buf.h"
#include "prism_s3.h"

#define WRITE_MAX_FILE ((size_t)4 << 30) /* bytes of one file's text at most */

struct ds_writer {
    int dirfd; /* a local directory's, or -1 */
    char *s3;  /* an s3:// prefix (no trailing '/'), or NULL */
    prism_plan_op_kind kind;
    char delimiter;
    char column[PRISM_PLAN_MAX_NAME + 1]; /* write_images, write_binary: the column */
    bool jpeg;                            /* write_images: JPEG, else PNG */
    char prefix[DS_ID_LEN + 1];
    int64_t files, bytes;
};

ds_writer *ds_writer_open(const ds_config *c, prism_plan_op_kind kind, const json_t *spec,
                          const char *dataset_id, char *err, size_t n)
{
    const char *path = json_string_value(json_object_get(spec, "path"));
    ds_writer *w = calloc(1, sizeof *w);
    if (!w || !path) {
        free(w);
        snprintf(err, n, "out of memory");
        return NULL;
    }
    w->kind = kind;
    const char *delim = json_string_value(json_object_get(spec, "delimiter"));
    w->delimiter = delim && *delim ? *delim : ',';
    const char *col = json_string_value(json_object_get(spec, "column"));
    snprintf(w->column, sizeof w->column, "%s", col ? col : "");
    const char *fmt = json_string_value(json_object_get(spec, "file_format"));
    w->jpeg = fmt && !strcmp(fmt, "jpeg");
    snprintf(w->prefix, sizeof w->prefix, "%s", dataset_id);
    w->dirfd = -1;
    if (prism_s3_is_path(path)) { /* each file one object, PUT whole */
        size_t len = strlen(path);
        while (len > 5 && path[len - 1] == '/')
            len--;
        if (!(w->s3 = strndup(path, len))) {
            snprintf(err, n, "out of memory");
            free(w);
            return NULL;
        }
    } else if ((w->dirfd = ds_write_dir_open(c, path, err, n)) < 0) {
        free(w);
        return NULL;
    }
    return w;
}

void ds_writer_close(ds_writer *w)
{
    if (!w)
        return;
    if (w->dirfd >= 0)
        close(w->dirfd);
    free(w->s3);
    free(w);
}

int64_t ds_writer_files(const ds_writer *w) { return w ? w->files : 0; }
int64_t ds_writer_bytes(const ds_writer *w) { return w ? w->bytes : 0; }

/* One JSON object a line, as prism_block_to_json writes a row. */
static int jsonl_text(const prism_block *blk, size_t rows, prism_buf *out, char *err, size_t n)
{
    for (size_t r = 0; r < rows; r++) {
        char *text = NULL;
        size_t len = 0;
        prism_block_status st = prism_block_to_json(blk, r, 1, 0, &text, &len);
        /* "[{...}]": the row is what the brackets hold */
        int rc = st == PRISM_BLOCK_OK && len >= 2
                     ? prism_buf_append(out, text + 1, len - 2) | prism_buf_append(out, "\n", 1)
                     : -1;
        free(text);
        if (rc != 0) {
            snprintf(err, n, "row %zu: %s", r,
                     st != PRISM_BLOCK_OK ? prism_block_strerror(st) : "the file is too large");
            return -1;
        }
    }
    return 0;
}

/* A field quoted as RFC 4180 says (so that an empty string stays apart from
 * a null, which is an empty unquoted field, as read_csv reads them). */
static int csv_quoted(prism_buf *out, const char *s, size_t len)
{
    int rc = prism_buf_append(out, "\"", 1);
    for (size_t i = 0; i < len && rc == 0; i++)
        rc = prism_buf_append(out, s[i] == '"' ? "\"\"" : s + i, s[i] == '"' ? 2 : 1);
    return rc ? rc : prism_buf_append(out, "\"", 1);
}

static int csv_value(prism_buf *out, const prism_block *blk, size_t col, prism_coltype t, size_t r)
{
    const void *v = prism_block_values(blk, col, t);
    double d;
    switch (t) {
    case PRISM_COL_BOOL:
        return prism_buf_printf(out, "%s", prism_block_bool(blk, col, r) == 1 ? "true" : "false");
    case PRISM_COL_INT8: return prism_buf_printf(out, "%d", ((const int8_t *)v)[r]);
    case PRISM_COL_INT16: return prism_buf_printf(out, "%d", ((const int16_t *)v)[r]);
    case PRISM_COL_INT32: return prism_buf_printf(out, "%d", ((const int32_t *)v)[r]);
    case PRISM_COL_INT64: return prism_buf_printf(out, "%lld", (long long)((const int64_t *)v)[r]);
    case PRISM_COL_UINT8: return prism_buf_printf(out, "%u", ((const uint8_t *)v)[r]);
    case PRISM_COL_UINT16: return prism_buf_printf(out, "%u", ((const uint16_t *)v)[r]);
    case PRISM_COL_UINT32: return prism_buf_printf(out, "%u", ((const uint32_t *)v)[r]);
    case PRISM_COL_UINT64:
        return prism_buf_printf(out, "%llu", (unsigned long long)((const uint64_t *)v)[r]);
    case PRISM_COL_FLOAT32:
    case PRISM_COL_FLOAT64:
        d = t == PRISM_COL_FLOAT32 ? ((const float *)v)[r] : ((const double *)v)[r];
        /* NaN and infinities as nulls, as the JSON of a row writes them */
        if (!isfinite(d))
            return 0;
        return prism_buf_printf(out, t == PRISM_COL_FLOAT32 ? "%.9g" : "%.17g", d);
    case PRISM_COL_UTF8: {
        size_t len = 0;
        const char *s = prism_block_string(blk, col, r, &len);
        return csv_quoted(out, s ? s : "", s ? len : 0);
    }
    default: return -1;
    }
}

/* A header of the columns' names, then a record a row. */
static int csv_text(const prism_block *blk, size_t rows, char delim, prism_buf *out, char *err,
                    size_t n)
{
    const prism_block_schema *sc = prism_block_get_schema(blk);
    size_t ncols = prism_block_schema_columns(sc);
    for (size_t c = 0; c < ncols; c++) {
        prism_coltype t = prism_block_schema_type(sc, c);
        if (t == PRISM_COL_BINARY || t == PRISM_COL_TENSOR) {
            snprintf(err, n,
                     "column \"%s\" is %s: CSV holds numbers, booleans and strings (drop the "
                     "column, or use write_jsonl)",
                     prism_block_schema_name(sc, c), t == PRISM_COL_BINARY ? "binary" : "a tensor");
            return -1;
        }
    }
    int rc = 0;
    for (size_t c = 0; c < ncols && rc == 0; c++) {
        const char *name = prism_block_schema_name(sc, c);
        rc = (c ? prism_buf_append(out, &delim, 1) : 0) | csv_quoted(out, name, strlen(name));
    }
    rc |= prism_buf_append(out, "\r\n", 2);
    for (size_t r = 0; r < rows && rc == 0; r++) {
        for (size_t c = 0; c < ncols && rc == 0; c++) {
            if (c)
                rc = prism_buf_append(out, &delim, 1);
            if (rc == 0 && !prism_block_is_null(blk, c, r))
                rc = csv_value(out, blk, c, prism_block_schema_type(sc, c), r);
        }
        rc = rc ? rc : prism_buf_append(out, "\r\n", 2);
    }
    if (rc != 0)
        snprintf(err, n, "the file would pass %zu bytes", WRITE_MAX_FILE);
    return rc;
}

/* Writes `len` bytes as `name`: a temporary name first, flushed, renamed. */
static int put_file(ds_writer *w, const char *name, const char *data, size_t len, char *err,
                    size_t n)
{
    if (w->s3) { /* a PUT is whole or nothing: no temporary name needed */
        char *path = NULL;
        if (asprintf(&path, "%s/%s", w->s3, name) < 0) {
            snprintf(err, n, "out of memory");
            return -1;
        }
        int rc = prism_s3_put(path, data, len, err, n);
        free(path);
        return rc;
    }
    char tmp[DS_ID_LEN + 64];
    snprintf(tmp, sizeof tmp, ".%s.tmp", name);
    int fd = openat(w->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, n, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t k = write(fd, data + off, len - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        off += (size_t)k;
    }
    int rc = off == len && fsync(fd) == 0 ? 0 : -1;
    if (rc != 0)
        snprintf(err, n, "%s: %s", tmp, strerror(errno ? errno : EIO));
    if (close(fd) != 0 && rc == 0) {
        snprintf(err, n, "%s: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && renameat(w->dirfd, tmp, w->dirfd, name) != 0) {
        snprintf(err, n, "%s: %s", name, strerror(errno));
        rc = -1;
    }
    if (rc != 0)
        unlinkat(w->dirfd, tmp, 0);
    return rc;
}

/* An image [h, w, c] of uint8 as PNG or JPEG (quality 95), in `*out`
 * (malloc'd or tj-allocated: free with `*tj` set accordingly). */
static int encode(bool jpeg, const uint8_t *px, int64_t h, int64_t wd, int64_t c,
                  unsigned char **out, size_t *len, bool *tj, char *err, size_t n)
{
    *out = NULL;
    *tj = jpeg;
    if (jpeg) {
        if (c != 1 && c != 3) {
            snprintf(err, n, "JPEG holds 1 or 3 channels, not %lld", (long long)c);
            return -1;
        }
        tjhandle t = tjInitCompress();
        unsigned long size = 0;
        int rc = t ? tjCompress2(t, px, (int)wd, 0, (int)h, c == 1 ? TJPF_GRAY : TJPF_RGB, out,
                                 &size, c == 1 ? TJSAMP_GRAY : TJSAMP_420, 95, 0)
                   : -1;
        if (rc != 0)
            snprintf(err, n, "JPEG: %s", t ? tjGetErrorStr2(t) : "out of memory");
        if (t)
            tjDestroy(t);
        *len = size;
        return rc == 0 ? 0 : -1;
    }
    if (c < 1 || c > 4 || c == 2) {
        snprintf(err, n, "PNG is written from 1, 3 or 4 channels, not %lld", (long long)c);
        return -1;
    }
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)wd;
    img.height = (png_uint_32)h;
    img.format = c == 1 ? PNG_FORMAT_GRAY : c == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
    png_alloc_size_t size = 0;
    if (!png_image_write_to_memory(&img, NULL, &size, 0, px, 0, NULL) || !(*out = malloc(size)) ||
        !png_image_write_to_memory(&img, *out, &size, 0, px, 0, NULL)) {
        snprintf(err, n, "PNG: %s", *img.message ? img.message : "out of memory");
        free(*out);
        *out = NULL;
        png_image_free(&img);
        return -1;
    }
    *len = size;
    return 0;
}

/* write_images and write_binary: a file a row of the column (nulls none). */
static int row_files(ds_writer *w, const prism_block *blk, size_t rows, int64_t index, char *err,
                     size_t n)
{
    bool images = w->kind == PRISM_OP_WRITE_IMAGES;
    const prism_block_schema *sc = prism_block_get_schema(blk);
    long col = prism_block_column_index(blk, w->column);
    prism_coltype t = col >= 0 ? prism_block_schema_type(sc, (size_t)col) : 0;
    if (col < 0 || (images ? t != PRISM_COL_TENSOR ||
                                 prism_block_schema_elem(sc, (size_t)col) != PRISM_COL_UINT8 ||
                                 prism_block_schema_ndim(sc, (size_t)col) != 3
                           : t != PRISM_COL_BINARY)) {
        snprintf(err, n, "no %s column \"%s\"",
                 images ? "image (uint8 tensor [h, w, channels])" : "binary", w->column);
        return -1;
    }
    const int64_t *shape = images ? prism_block_schema_shape(sc, (size_t)col) : NULL;
    for (size_t r = 0; r < rows; r++) {
        if (prism_block_is_null(blk, (size_t)col, r))
            continue;
        char name[DS_ID_LEN + 48];
        snprintf(name, sizeof name, "%s_%06lld_%06zu.%s", w->prefix, (long long)index, r,
                 images ? (w->jpeg ? "jpg" : "png") : "bin");
        size_t len = 0;
        int rc;
        if (images) {
            unsigned char *data = NULL;
            bool tj = false;
            size_t nbytes = 0;
            const uint8_t *px = prism_block_tensor(blk, (size_t)col, r, &nbytes);
            rc = px ? encode(w->jpeg, px, shape[0], shape[1], shape[2], &data, &len, &tj, err, n)
                    : -1;
            if (rc == 0)
                rc = put_file(w, name, (const char *)data, len, err, n);
            if (tj)
                tjFree(data);
            else
                free(data);
        } else {
            const uint8_t *data = prism_block_binary(blk, (size_t)col, r, &len);
            rc = put_file(w, name, data ? (const char *)data : "", data ? len : 0, err, n);
        }
        if (rc != 0)
            return -1;
        w->files++;
        w->bytes += (int64_t)len;
    }
    return 0;
}

int ds_writer_block(ds_writer *w, const prism_block *blk, size_t rows, int64_t index, char *err,
                    size_t n)
{
    if (w->kind == PRISM_OP_WRITE_IMAGES || w->kind == PRISM_OP_WRITE_BINARY)
        return row_files(w, blk, rows, index, err, n);
    prism_buf text;
    prism_buf_init(&text, WRITE_MAX_FILE);
    bool csv = w->kind == PRISM_OP_WRITE_CSV;
    int rc = csv ? csv_text(blk, rows, w->delimiter, &text, err, n)
                 : jsonl_text(blk, rows, &text, err, n);
    char name[DS_ID_LEN + 32];
    snprintf(name, sizeof name, "%s_%06lld.%s", w->prefix, (long long)index, csv ? "csv" : "jsonl");
    size_t len = 0;
    char *data = rc == 0 ? prism_buf_take(&text, &len) : NULL;
    if (rc == 0 && !data) {
        snprintf(err, n, "out of memory");
        rc = -1;
    }
    if (rc == 0 && (rc = put_file(w, name, data ? data : "", len, err, n)) == 0) {
        w->files++;
        w->bytes += (int64_t)len;
    }
    free(data);
    prism_buf_free(&text);
    return rc;
}
