/* Reads of files (data_ops.h): a read task's files, each read whole, into
 * one block: read_binary_files, read_text, read_jsonl, read_csv (libcsv)
 * and read_images (data_image.c); local files, http(s) URLs and S3 objects
 * (prism_s3.h). Errors name the file, and the line where
 * there is one. */
#include <csv.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data_image.h"
#include "data_ops.h"
#include "prism_httpc.h"
#include "prism_json_text.h"
#include "prism_s3.h"

/* A file larger than a block's string column could hold is refused. */
#define READ_MAX_FILE PRISM_BLOCK_MAX_DATA

static bool is_url(const char *path)
{
    return !strncmp(path, "http://", 7) || !strncmp(path, "https://", 8);
}

/* The body of GET `url` (owned, NUL-terminated), or NULL with `err`. No
 * credentials go with it, and redirects are not followed. */
static uint8_t *fetch_url(const char *url, size_t *len, char *err, size_t n)
{
    prism_httpc *h = NULL;
    prism_httpc_resp resp = {0};
    char why[256] = "";
    if (prism_httpc_create(&h, url, NULL) != 0) {
        snprintf(err, n, "%s: out of memory", url);
        return NULL;
    }
    int rc = prism_httpc_request(h, "GET", "", NULL, NULL, 0, 600000, READ_MAX_FILE, &resp, why,
                                 sizeof why);
    prism_httpc_destroy(h);
    uint8_t *buf = NULL;
    if (rc != 0)
        snprintf(err, n, "%s: %s", url, why);
    else if (resp.status != 200)
        snprintf(err, n, "%s: HTTP %ld", url, resp.status);
    else if (!(buf = (uint8_t *)resp.body))
        snprintf(err, n, "%s: no body", url);
    if (buf) { /* taken from the response */
        *len = resp.len;
        resp.body = NULL;
    }
    prism_httpc_resp_free(&resp);
    return buf;
}

/* The whole file `path`, or the body of an http(s) URL or an S3 object
 * (owned, NUL-terminated), or NULL with `err`. */
static uint8_t *read_file(const char *path, size_t *len, char *err, size_t n)
{
    if (is_url(path))
        return fetch_url(path, len, err, n);
    if (prism_s3_is_path(path)) {
        char *body = NULL;
        return prism_s3_get(path, READ_MAX_FILE, &body, len, err, n) == 0 ? (uint8_t *)body : NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat sb;
    uint8_t *buf = NULL;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        snprintf(err, n, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode) || sb.st_size > (off_t)READ_MAX_FILE) {
        snprintf(err, n, "%s: %s", path,
                 S_ISREG(sb.st_mode) ? "larger than 2 GiB" : "not a regular file");
        goto fail;
    }
    if (!(buf = malloc((size_t)sb.st_size + 1))) {
        snprintf(err, n, "%s: out of memory", path);
        goto fail;
    }
    size_t got = 0;
    while (got < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)sb.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(err, n, "%s: %s", path, r < 0 ? strerror(errno) : "shorter than its size");
            goto fail;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *len = got;
    return buf;
fail:
    if (fd >= 0)
        close(fd);
    free(buf);
    return NULL;
}

typedef struct reader {
    const char *kind;
    const json_t *spec;
    const json_t *files;
    bool paths;             /* include_paths */
    prism_block_builder *b; /* binary, text, images: [value, path?] */
    json_t *rows;           /* jsonl, csv: objects */
    data_skip *skip;
} reader;

/* A builder of `first` (a column of `type`) and, with include_paths, `path`. */
static prism_block_status make_builder(reader *r, const char *first, prism_coltype type)
{
    prism_block_schema *s = NULL;
    prism_block_status st = prism_block_schema_create(&s);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_schema_add(s, first, type);
    if (st == PRISM_BLOCK_OK && r->paths)
        st = prism_block_schema_add(s, "path", PRISM_COL_UTF8);
    if (st == PRISM_BLOCK_OK)
        st = prism_block_builder_create(s, &r->b);
    prism_block_schema_destroy(s);
    return st;
}

static prism_block_status add_path(reader *r, const char *path)
{
    return r->paths ? prism_block_builder_append_bytes(r->b, 1, path, strlen(path))
                    : PRISM_BLOCK_OK;
}

/* ---------- binary and text ---------- */

static int binary_file(reader *r, const char *path, const uint8_t *buf, size_t len, char *err,
                       size_t n)
{
    prism_block_status st = prism_block_builder_append_bytes(r->b, 0, buf, len);
    if (st == PRISM_BLOCK_OK)
        st = add_path(r, path);
    if (st != PRISM_BLOCK_OK)
        snprintf(err, n, "%s: %s", path, prism_block_strerror(st));
    return st == PRISM_BLOCK_OK ? 0 : -1;
}

/* The first line of `buf` that is not UTF-8 (from 1), or 0. */
static size_t bad_line(const uint8_t *buf, size_t len)
{
    size_t line = 0;
    for (size_t at = 0; at < len;) {
        const uint8_t *nl = memchr(buf + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - buf) : len;
        line++;
        if (!prism_utf8_valid((const char *)buf + at, end - at))
            return line;
        at = end + 1;
    }
    return 0;
}

static int text_file(reader *r, const char *path, const uint8_t *buf, size_t len, char *err,
                     size_t n)
{
    bool drop = json_is_true(json_object_get(r->spec, "drop_empty_lines"));
    size_t line = bad_line(buf, len);
    if (line) { /* checked first: a file is read whole or not at all */
        snprintf(err, n, "%s: line %zu: not UTF-8", path, line);
        return -1;
    }
    for (size_t at = 0; at < len;) {
        const uint8_t *nl = memchr(buf + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - buf) : len, l = end - at;
        line++;
        if (l > 0 && buf[at + l - 1] == '\r')
            l--;
        if (l > 0 || !drop) {
            prism_block_status st = prism_block_builder_append_bytes(r->b, 0, buf + at, l);
            if (st == PRISM_BLOCK_OK)
                st = add_path(r, path);
            if (st != PRISM_BLOCK_OK) {
                snprintf(err, n, "%s: line %zu: %s", path, line, prism_block_strerror(st));
                return -1;
            }
        }
        at = end + 1;
    }
    return 0;
}

/* ---------- JSON lines ---------- */

static int add_row(reader *r, json_t *obj, const char *path)
{
    if (r->paths && json_object_set_new(obj, "path", json_string(path)) != 0)
        return -1;
    return json_array_append_new(r->rows, obj);
}

static int jsonl_file(reader *r, const char *path, const uint8_t *buf, size_t len, char *err,
                      size_t n)
{
    size_t line = 0;
    for (size_t at = 0; at < len;) {
        const uint8_t *nl = memchr(buf + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - buf) : len;
        line++;
        json_error_t je;
        const char *text = (const char *)buf + at;
        size_t l = end - at;
        while (l > 0 && (text[l - 1] == '\r' || text[l - 1] == ' ' || text[l - 1] == '\t'))
            l--;
        at = end + 1;
        if (l == 0)
            continue;
        json_t *obj = json_loadb(text, l, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(obj)) {
            snprintf(err, n, "%s: line %zu: %s", path, line, obj ? "not a JSON object" : je.text);
            json_decref(obj);
            return -1;
        }
        if (add_row(r, obj, path) != 0) {
            snprintf(err, n, "%s: out of memory", path);
            return -1;
        }
    }
    return 0;
}

/* ---------- CSV ---------- */

typedef struct csv_state {
    json_t *records; /* arrays of strings and nulls */
    json_t *cur;
    bool bad; /* out of memory, or a field not UTF-8 */
} csv_state;

static void csv_field(void *s, size_t len, void *ud)
{
    csv_state *c = ud;
    if (!c->cur && !(c->cur = json_array()))
        c->bad = true;
    /* an empty unquoted field is null; a quoted one is "" */
    json_t *v = s ? json_stringn(s, len) : json_null();
    if (!v || json_array_append_new(c->cur, v) != 0)
        c->bad = true;
}

static void csv_record(int end, void *ud)
{
    csv_state *c = ud;
    (void)end;
    if (!c->cur && !(c->cur = json_array()))
        c->bad = true;
    if (c->cur && json_array_append_new(c->records, c->cur) != 0)
        c->bad = true;
    c->cur = NULL;
}

static int no_space(unsigned char ch)
{
    (void)ch;
    return 0; /* spaces belong to their field (RFC 4180) */
}

/* The kind of column j: 2 integers, 1 numbers, 0 strings (nulls fit all). */
static int column_kind(const json_t *records, size_t j)
{
    int kind = 2;
    for (size_t i = 1; i < json_array_size(records) && kind > 0; i++) {
        const char *s = json_string_value(json_array_get(json_array_get(records, i), j));
        char *end;
        if (!s)
            continue;
        errno = 0;
        (void)strtoll(s, &end, 10);
        if (*s && !*end && errno == 0)
            continue;
        (void)strtod(s, &end);
        kind = *s && !*end ? 1 : 0;
    }
    return kind;
}

static json_t *typed(const char *s, int kind)
{
    if (!s)
        return json_null();
    if (kind == 2)
        return json_integer(strtoll(s, NULL, 10));
    if (kind == 1)
        return json_real(strtod(s, NULL));
    return json_string(s);
}

/* The records as objects under the header's names, each column typed. */
static int csv_rows(reader *r, const char *path, const json_t *records, char *err, size_t n)
{
    const json_t *header = json_array_get(records, 0);
    size_t cols = json_array_size(header);
    int kinds[PRISM_BLOCK_MAX_COLUMNS];
    if (cols > PRISM_BLOCK_MAX_COLUMNS) {
        snprintf(err, n, "%s: more than %u columns", path, PRISM_BLOCK_MAX_COLUMNS);
        return -1;
    }
    for (size_t j = 0; j < cols; j++) {
        const char *name = json_string_value(json_array_get(header, j));
        for (size_t k = 0; name && k < j; k++)
            if (!strcmp(name, json_string_value(json_array_get(header, k))))
                name = NULL;
        if (!name || !*name) {
            snprintf(err, n, "%s: column %zu of the header is empty or repeated", path, j + 1);
            return -1;
        }
        kinds[j] = column_kind(records, j);
    }
    for (size_t i = 1; i < json_array_size(records); i++) {
        const json_t *rec = json_array_get(records, i);
        if (json_array_size(rec) != cols) {
            snprintf(err, n, "%s: record %zu has %zu fields, the header %zu", path, i + 1,
                     json_array_size(rec), cols);
            return -1;
        }
        json_t *obj = json_object();
        for (size_t j = 0; obj && j < cols; j++)
            if (json_object_set_new(obj, json_string_value(json_array_get(header, j)),
                                    typed(json_string_value(json_array_get(rec, j)), kinds[j])))
                json_decref(obj), obj = NULL;
        if (!obj || add_row(r, obj, path) != 0) {
            snprintf(err, n, "%s: out of memory", path);
            return -1;
        }
    }
    return 0;
}

static int csv_file(reader *r, const char *path, const uint8_t *buf, size_t len, char *err,
                    size_t n)
{
    struct csv_parser p;
    csv_state c = {json_array(), NULL, false};
    const char *delim = json_string_value(json_object_get(r->spec, "delimiter"));
    int rc = -1;
    if (!c.records ||
        csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL | CSV_EMPTY_IS_NULL) != 0) {
        json_decref(c.records);
        snprintf(err, n, "%s: out of memory", path);
        return -1;
    }
    csv_set_delim(&p, delim && *delim ? (unsigned char)*delim : ',');
    csv_set_space_func(&p, no_space);
    if (csv_parse(&p, buf, len, csv_field, csv_record, &c) != len ||
        csv_fini(&p, csv_field, csv_record, &c) != 0)
        snprintf(err, n, "%s: not valid CSV: %s", path, csv_strerror(csv_error(&p)));
    else if (c.bad)
        snprintf(err, n, "%s: a field is not UTF-8 (or out of memory)", path);
    else if (json_array_size(c.records) == 0)
        rc = 0; /* an empty file: no header, no rows */
    else
        rc = csv_rows(r, path, c.records, err, n);
    csv_free(&p);
    json_decref(c.cur);
    json_decref(c.records);
    return rc;
}

/* ---------- images ---------- */

typedef struct image_files {
    const json_t *files;
    uint8_t *buf; /* the file being decoded */
    char err[512];
} image_files;

static const uint8_t *image_file(void *ud, size_t i, size_t *len, char *what, size_t n)
{
    image_files *f = ud;
    const char *path = json_string_value(json_array_get(f->files, i));
    free(f->buf);
    f->buf = read_file(path ? path : "?", len, f->err, sizeof f->err);
    snprintf(what, n, "%s", f->buf ? path : f->err);
    return f->buf;
}

static int read_images(reader *r, prism_block **out, char *err, size_t n)
{
    image_files f = {r->files, NULL, ""};
    const json_t *size = json_object_get(r->spec, "size");
    int64_t want[2] = {json_integer_value(json_array_get(size, 0)),
                       json_integer_value(json_array_get(size, 1))};
    int channels = data_image_channels(json_string_value(json_object_get(r->spec, "mode")));
    size_t count = json_array_size(r->files);
    int64_t shape[3] = {0, 0, channels};
    if (count == 0) {
        snprintf(err, n, "a bad split: no files");
        return -1;
    }
    size_t kept = 0;
    uint8_t *which = malloc(count);
    uint8_t *px = which ? data_decode_all(count, image_file, &f, channels,
                                          json_is_array(size) ? want : NULL, shape, r->skip, which,
                                          &kept, err, n)
                        : NULL;
    free(f.buf);
    if (!px) {
        free(which);
        return -1;
    }
    prism_block *img = NULL, *with = NULL;
    int rc = data_tensor_column("image", PRISM_COL_UINT8, shape, px, kept, NULL, -1, &img, err,
                                n) == PRISM_BLOCK_OK
                 ? 0
                 : -1;
    free(px);
    if (rc == 0 && r->paths) {
        /* the paths: a column built as for the other reads, then joined */
        prism_block *paths = NULL;
        prism_block_status st = PRISM_BLOCK_OK;
        r->paths = false;
        if ((st = make_builder(r, "path", PRISM_COL_UTF8)) == PRISM_BLOCK_OK)
            for (size_t i = 0; st == PRISM_BLOCK_OK && i < count; i++) {
                const char *p = json_string_value(json_array_get(r->files, i));
                if (which[i])
                    st = prism_block_builder_append_bytes(r->b, 0, p, strlen(p));
            }
        if (st == PRISM_BLOCK_OK)
            st = prism_block_builder_finish(r->b, &paths, NULL, 0);
        if (st != PRISM_BLOCK_OK ||
            data_block_with_column(img, "path", paths, &with, err, n) != PRISM_BLOCK_OK) {
            if (st != PRISM_BLOCK_OK)
                snprintf(err, n, "the paths: %s", prism_block_strerror(st));
            rc = -1;
        }
        prism_block_builder_destroy(r->b);
        prism_block_destroy(paths);
        prism_block_destroy(img);
        img = with;
    }
    free(which);
    *out = img;
    return rc;
}

/* ---------- the read ---------- */

typedef int (*file_fn)(reader *r, const char *path, const uint8_t *buf, size_t len, char *err,
                       size_t n);

/* Reads each file with `fn`. A file that fails is left out when skipping:
 * the rows it added so far go (binary and text add none before they know
 * the file is good). */
static int each_file(reader *r, file_fn fn, char *err, size_t n)
{
    for (size_t i = 0; i < json_array_size(r->files); i++) {
        const char *path = json_string_value(json_array_get(r->files, i));
        size_t len = 0, had = json_array_size(r->rows);
        uint8_t *buf = read_file(path ? path : "?", &len, err, n);
        int rc = buf ? fn(r, path, buf, len, err, n) : -1;
        free(buf);
        if (rc != 0 && !r->skip->on)
            return -1;
        if (rc != 0) {
            while (json_array_size(r->rows) > had)
                json_array_remove(r->rows, json_array_size(r->rows) - 1);
            r->skip->count++;
        }
    }
    return 0;
}

static int finish_rows(reader *r, prism_block **out, char *err, size_t n)
{
    char *text = json_dumps(r->rows, JSON_COMPACT);
    char why[512] = "";
    prism_block_status st =
        text ? prism_block_from_json(text, strlen(text), NULL, out, why, sizeof why)
             : PRISM_BLOCK_ENOMEM;
    free(text);
    if (st != PRISM_BLOCK_OK)
        snprintf(err, n, "the rows of %s do not make a block: %s%s%s",
                 json_string_value(json_array_get(r->files, 0)), prism_block_strerror(st),
                 *why ? ": " : "", why);
    return st == PRISM_BLOCK_OK ? 0 : -1;
}

int data_read_files(const char *kind, const json_t *spec, const json_t *split, data_skip *skip,
                    prism_block **out, char *err, size_t n)
{
    reader r = {kind,
                spec,
                json_object_get(split, "files"),
                json_is_true(json_object_get(spec, "include_paths")),
                NULL,
                NULL,
                skip};
    int rc = -1;
    if (!json_is_array(r.files)) {
        snprintf(err, n, "a bad split: no files");
        return -1;
    }
    if (!strcmp(kind, "read_images"))
        return read_images(&r, out, err, n);
    if (!strcmp(kind, "read_jsonl") || !strcmp(kind, "read_csv")) {
        if (!(r.rows = json_array())) {
            snprintf(err, n, "out of memory");
            return -1;
        }
        rc = each_file(&r, !strcmp(kind, "read_csv") ? csv_file : jsonl_file, err, n);
        if (rc == 0)
            rc = finish_rows(&r, out, err, n);
        json_decref(r.rows);
        return rc;
    }
    bool text = !strcmp(kind, "read_text");
    prism_block_status st =
        make_builder(&r, text ? "text" : "bytes", text ? PRISM_COL_UTF8 : PRISM_COL_BINARY);
    json_int_t bytes = json_integer_value(json_object_get(split, "bytes"));
    if (st == PRISM_BLOCK_OK && bytes > 0) /* the listed sizes: a hint, files may have changed */
        (void)prism_block_builder_reserve_bytes(r.b, 0, (size_t)bytes);
    if (st != PRISM_BLOCK_OK)
        snprintf(err, n, "%s", prism_block_strerror(st));
    else if ((rc = each_file(&r, text ? text_file : binary_file, err, n)) == 0 &&
             (st = prism_block_builder_finish(r.b, out, NULL, 0)) != PRISM_BLOCK_OK) {
        snprintf(err, n, "cannot make the block: %s", prism_block_strerror(st));
        rc = -1;
    }
    prism_block_builder_destroy(r.b);
    return rc;
}
