/* The package check of prism_tar.h: a reader of ustar, GNU (long names) and
 * pax headers over plain or gzip'd bytes, which skips file contents.
 *
 * Why links are judged by their text and not by where they point once
 * extracted: the rule (relative, ".." only leading, no deeper than the link's
 * directory, nothing extracted through a link) keeps every resolution inside
 * the root by itself. Each link starts from a real directory (no member lives
 * under a link), climbs at most to the root, and then only descends; a link
 * met while descending resolves by the same rule. A ".." after a link (as in
 * "s/.." with s -> .) would climb from where the link points, not from where
 * it is named, which is why it is refused. */
#include "prism_tar.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define BLOCK 512
#define LONG_NAME_MAX (64u << 10) /* GNU long names and links */
#define PAX_MAX (1u << 20)        /* one pax extended header */

/* ---------- bytes, plain or gunzipped ---------- */

typedef struct {
    const unsigned char *in;
    size_t len, pos;
    bool gz, z_open, z_end;
    z_stream zs;
} tar_src;

static int src_open(tar_src *s, const void *data, size_t len)
{
    memset(s, 0, sizeof *s);
    s->in = data;
    s->len = len;
    s->gz = len >= 2 && s->in[0] == 0x1f && s->in[1] == 0x8b;
    if (!s->gz)
        return 0;
    if (len > UINT_MAX || inflateInit2(&s->zs, 16 + MAX_WBITS) != Z_OK)
        return -1;
    s->z_open = true;
    s->zs.next_in = (unsigned char *)s->in;
    s->zs.avail_in = (uInt)len;
    return 0;
}

static void src_close(tar_src *s)
{
    if (s->z_open)
        inflateEnd(&s->zs);
}

/* Inflates exactly `n` bytes into `out`. gzip -d reads concatenated members as
 * one stream, and so does this. Returns 0, 1 at the clean end, -1 when corrupt
 * or truncated. */
static int gz_read(tar_src *s, unsigned char *out, size_t n)
{
    s->zs.next_out = out;
    s->zs.avail_out = (uInt)n;
    while (s->zs.avail_out > 0) {
        if (s->z_end)
            return s->zs.avail_out == n ? 1 : -1;
        int rc = inflate(&s->zs, Z_NO_FLUSH);
        if (rc == Z_STREAM_END) {
            if (s->zs.avail_in == 0)
                s->z_end = true;
            else if (inflateReset(&s->zs) != Z_OK)
                return -1;
        } else if (rc != Z_OK) {
            return -1;
        }
    }
    return 0;
}

/* Reads `n` bytes into `out`, or skips them when `out` is NULL. Returns 0, 1
 * when nothing at all was left, -1 when the bytes end early or are corrupt. */
static int src_read(tar_src *s, unsigned char *out, size_t n)
{
    if (!s->gz) {
        if (s->pos == s->len && n > 0)
            return 1;
        if (n > s->len - s->pos)
            return -1;
        if (out)
            memcpy(out, s->in + s->pos, n);
        s->pos += n;
        return 0;
    }
    if (out)
        return gz_read(s, out, n);
    unsigned char scratch[16384];
    for (bool first = true; n > 0; first = false) {
        size_t k = n < sizeof scratch ? n : sizeof scratch;
        int rc = gz_read(s, scratch, k);
        if (rc != 0)
            return rc == 1 && !first ? -1 : rc;
        n -= k;
    }
    return 0;
}

/* ---------- names and links ---------- */

static bool component_is(const char *p, size_t len, const char *what)
{
    return len == strlen(what) && memcmp(p, what, len) == 0;
}

bool prism_tar_name_safe(const char *name)
{
    if (name[0] == '/')
        return false;
    for (const char *p = name; *p;) {
        size_t len = strcspn(p, "/");
        if (component_is(p, len, ".."))
            return false;
        p += len;
        p += *p == '/';
    }
    return true;
}

/* Components of `path` other than "" and "." */
static size_t depth_of(const char *path)
{
    size_t n = 0;
    for (const char *p = path; *p;) {
        size_t len = strcspn(p, "/");
        n += len > 0 && !component_is(p, len, ".");
        p += len;
        p += *p == '/';
    }
    return n;
}

bool prism_tar_link_safe(const char *name, const char *target)
{
    size_t depth = depth_of(name);
    if (depth == 0 || !*target || target[0] == '/')
        return false;
    size_t ups = 0;
    bool descended = false;
    for (const char *p = target; *p;) {
        size_t len = strcspn(p, "/");
        if (component_is(p, len, "..")) {
            if (descended)
                return false;
            ups++;
        } else if (len > 0 && !component_is(p, len, ".")) {
            descended = true;
        }
        p += len;
        p += *p == '/';
    }
    return ups <= depth - 1;
}

/* `path` without "" and "." components, in a heap string; NULL without memory. */
static char *normalized(const char *path)
{
    char *out = malloc(strlen(path) + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (const char *p = path; *p;) {
        size_t len = strcspn(p, "/");
        if (len > 0 && !component_is(p, len, ".")) {
            if (o > 0)
                out[o++] = '/';
            memcpy(out + o, p, len);
            o += len;
        }
        p += len;
        p += *p == '/';
    }
    out[o] = '\0';
    return out;
}

typedef struct {
    char **v;
    size_t n, cap;
} name_list;

static int list_add(name_list *l, const char *path)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = normalized(path)))
        return -1;
    l->n++;
    return 0;
}

static void list_free(name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The first name of `names` that lies under one of `links`, or NULL. */
static const char *under_a_link(name_list *names, name_list *links)
{
    if (links->n == 0)
        return NULL;
    qsort(links->v, links->n, sizeof *links->v, cmp_str);
    for (size_t i = 0; i < names->n; i++) {
        char *name = names->v[i];
        for (char *slash = strchr(name, '/'); slash; slash = strchr(slash + 1, '/')) {
            *slash = '\0';
            const char *key = name;
            bool hit = bsearch(&key, links->v, links->n, sizeof *links->v, cmp_str) != NULL;
            *slash = '/';
            if (hit)
                return name;
        }
    }
    return NULL;
}

/* ---------- headers ---------- */

/* An octal field (spaces and NULs around it), or base-256 when its first byte
 * has the high bit (GNU, for sizes of 8 GiB and more). -1 when malformed. */
static int64_t number(const unsigned char *f, size_t len)
{
    uint64_t v = 0;
    if (f[0] & 0x80) {
        if (f[0] & 0x40)
            return -1; /* negative */
        v = f[0] & 0x3f;
        for (size_t i = 1; i < len; i++) {
            if (v >> 55)
                return -1;
            v = (v << 8) | f[i];
        }
        return (int64_t)v;
    }
    size_t i = 0;
    while (i < len && f[i] == ' ')
        i++;
    for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v >> 60)
            return -1;
        v = v * 8 + (uint64_t)(f[i] - '0');
    }
    for (; i < len; i++)
        if (f[i] != ' ' && f[i] != '\0')
            return -1;
    return (int64_t)v;
}

static bool checksum_ok(const unsigned char *h)
{
    int64_t want = number(h + 148, 8);
    int64_t sum = 0, ssum = 0;
    for (size_t i = 0; i < BLOCK; i++) {
        unsigned char c = i >= 148 && i < 156 ? ' ' : h[i];
        sum += c;
        ssum += (signed char)c;
    }
    return want >= 0 && (want == sum || want == ssum);
}

static bool all_zero(const unsigned char *h)
{
    for (size_t i = 0; i < BLOCK; i++)
        if (h[i])
            return false;
    return true;
}

/* A NUL-terminated copy of a fixed-width header field. */
static void field(char *out, const unsigned char *f, size_t len)
{
    size_t n = strnlen((const char *)f, len);
    memcpy(out, f, n);
    out[n] = '\0';
}

/* ---------- the walk ---------- */

typedef struct {
    tar_src src;
    unsigned char h[BLOCK];
    char *long_name, *long_link; /* GNU 'L' and 'K', or pax path and linkpath */
    int64_t pax_size;            /* -1: none */
    name_list names;             /* every member and hard link target */
    name_list links;             /* symbolic links */
    char *err;
    size_t errlen;
} tar_walk;

__attribute__((format(printf, 2, 3))) static prism_tar_verdict refuse(tar_walk *w, const char *fmt,
                                                                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, w->errlen, fmt, ap);
    va_end(ap);
    return PRISM_TAR_UNSAFE;
}

static uint64_t padded(int64_t size) { return ((uint64_t)size + BLOCK - 1) / BLOCK * BLOCK; }

/* Reads a member's data (a long name or a pax header) into a heap string. */
static char *read_data(tar_walk *w, int64_t size, size_t max)
{
    if (size < 0 || (uint64_t)size > max)
        return NULL;
    size_t n = (size_t)padded(size);
    unsigned char *buf = malloc(n + 1);
    if (!buf)
        return NULL;
    if (src_read(&w->src, buf, n) != 0) {
        free(buf);
        return NULL;
    }
    buf[size] = '\0';
    return (char *)buf;
}

static void set_string(char **slot, const char *value, size_t len)
{
    free(*slot);
    *slot = strndup(value, len);
}

/* Applies the records "LEN key=value\n" of a pax header that matter here. */
static prism_tar_verdict pax_records(tar_walk *w, const char *p, size_t len, bool global)
{
    size_t pos = 0;
    while (pos < len) {
        char *end;
        unsigned long rec = strtoul(p + pos, &end, 10);
        bool fits = rec > 0 && rec <= len - pos && end < p + pos + rec && *end == ' ';
        const char *eq = fits ? memchr(end, '=', (size_t)(p + pos + rec - end)) : NULL;
        if (!eq || p[pos + rec - 1] != '\n')
            return refuse(w, "%s", "the archive has a malformed pax header");
        const char *key = end + 1, *val = eq + 1;
        size_t klen = (size_t)(eq - key), vlen = (size_t)(p + pos + rec - 1 - val);
        if (klen >= 11 && !memcmp(key, "GNU.sparse.", 11))
            return refuse(w, "%s", "the archive has a sparse member (not supported)");
        if ((component_is(key, klen, "path") || component_is(key, klen, "linkpath")) && global)
            return refuse(w, "%s", "the archive sets names in a global pax header");
        if (component_is(key, klen, "path"))
            set_string(&w->long_name, val, vlen);
        else if (component_is(key, klen, "linkpath"))
            set_string(&w->long_link, val, vlen);
        else if (component_is(key, klen, "size") && !global)
            w->pax_size = strtoll(val, NULL, 10);
        pos += rec;
    }
    return PRISM_TAR_SAFE;
}

static prism_tar_verdict extended(tar_walk *w, char type, int64_t size)
{
    bool pax = type == 'x' || type == 'g';
    char *data = read_data(w, size, pax ? PAX_MAX : LONG_NAME_MAX);
    if (!data)
        return refuse(w, "%s",
                      "the archive has an unreadable or oversized long name or pax header");
    prism_tar_verdict v = PRISM_TAR_SAFE;
    if (pax)
        v = pax_records(w, data, (size_t)size, type == 'g');
    else
        set_string(type == 'L' ? &w->long_name : &w->long_link, data, strlen(data));
    free(data);
    return v;
}

static const char *type_name(char type)
{
    switch (type) {
    case '3': return "character device";
    case '4': return "block device";
    case '6': return "FIFO";
    case 'S': return "sparse file";
    default: return "special member";
    }
}

/* Judges one member whose header is in w->h; `name` and `link` are its paths. */
static prism_tar_verdict member(tar_walk *w, char type, const char *name, const char *link,
                                int64_t size)
{
    bool regular = type == '0' || type == '\0' || type == '7';
    if (!regular && type != '5' && type != '1' && type != '2')
        return refuse(w, "member '%.200s' is a %s", name, type_name(type));
    if (!prism_tar_name_safe(name))
        return refuse(w, "member '%.200s' is absolute or has a '..' component", name);
    if (depth_of(name) == 0 && type != '5')
        return refuse(w, "member '%.200s' has no name", name);
    if (!regular && size != 0)
        return refuse(w, "member '%.200s' is a link or directory with data", name);
    if (list_add(&w->names, name) != 0)
        return refuse(w, "%s", "out of memory");
    if (type == '2' && !prism_tar_link_safe(name, link))
        return refuse(w, "symbolic link '%.200s' -> '%.200s' points outside the package", name,
                      link);
    if (type == '2' && list_add(&w->links, name) != 0)
        return refuse(w, "%s", "out of memory");
    if (type == '1' && (!prism_tar_name_safe(link) || depth_of(link) == 0))
        return refuse(w, "hard link '%.200s' -> '%.200s' points outside the package", name, link);
    if (type == '1' && list_add(&w->names, link) != 0)
        return refuse(w, "%s", "out of memory");
    return src_read(&w->src, NULL, padded(size)) == 0
               ? PRISM_TAR_SAFE
               : refuse(w, "member '%.200s' is truncated", name);
}

/* The member of the header in w->h, after its long names and pax records. */
static prism_tar_verdict header(tar_walk *w)
{
    const unsigned char *h = w->h;
    char type = (char)h[156];
    int64_t size = number(h + 124, 12);
    if (size < 0)
        return refuse(w, "%s", "the archive has a malformed size field");
    if (type == 'L' || type == 'K' || type == 'x' || type == 'g')
        return extended(w, type, size);
    if (w->pax_size >= 0)
        size = w->pax_size;
    char name[256 + 1 + 155 + 1], link[100 + 1], prefix[155 + 1];
    field(name, h, 100);
    field(link, h + 157, 100);
    if (!memcmp(h + 257, "ustar\0", 6)) { /* POSIX ustar: a prefix; GNU's has none */
        field(prefix, h + 345, 155);
        if (*prefix) {
            size_t n = strlen(prefix);
            memmove(name + n + 1, name, strlen(name) + 1);
            memcpy(name, prefix, n);
            name[n] = '/';
        }
    }
    prism_tar_verdict v = member(w, type, w->long_name ? w->long_name : name,
                                 w->long_link ? w->long_link : link, size);
    free(w->long_name);
    free(w->long_link);
    w->long_name = w->long_link = NULL;
    w->pax_size = -1;
    return v;
}

/* Reads headers until the end marker (GNU tar stops at the first zero block). */
static prism_tar_verdict walk(tar_walk *w)
{
    for (bool first = true;; first = false) {
        int rc = src_read(&w->src, w->h, BLOCK);
        if (rc == 1 && !first)
            return PRISM_TAR_SAFE; /* no end marker: tar accepts it too */
        if (rc != 0 && first) {
            refuse(w, "%s", "the package is not a tar archive (too short)");
            return PRISM_TAR_NOT_TAR;
        }
        if (rc != 0)
            return refuse(w, "%s", "the archive is truncated or corrupt");
        if (all_zero(w->h))
            return first ? refuse(w, "%s", "the archive is empty") : PRISM_TAR_SAFE;
        if (memcmp(w->h + 257, "ustar", 5) != 0 || !checksum_ok(w->h)) {
            if (!first)
                return refuse(w, "%s", "the archive has a corrupt header");
            refuse(w, "%s",
                   "the package is not a tar archive (ustar, GNU or pax format, plain "
                   "or gzip'd)");
            return PRISM_TAR_NOT_TAR;
        }
        prism_tar_verdict v = header(w);
        if (v != PRISM_TAR_SAFE)
            return v;
    }
}

prism_tar_verdict prism_tar_check(const void *data, size_t len, bool *gzipped, char *err,
                                  size_t errlen)
{
    tar_walk w = {.pax_size = -1, .err = err, .errlen = errlen};
    if (src_open(&w.src, data, len) != 0) {
        snprintf(err, errlen, "cannot read the package");
        return PRISM_TAR_UNSAFE;
    }
    if (gzipped)
        *gzipped = w.src.gz;
    prism_tar_verdict v = walk(&w);
    const char *under = v == PRISM_TAR_SAFE ? under_a_link(&w.names, &w.links) : NULL;
    if (under) {
        snprintf(err, errlen, "member '%.200s' lies under a symbolic link of the package", under);
        v = PRISM_TAR_UNSAFE;
    }
    free(w.long_name);
    free(w.long_link);
    list_free(&w.names);
    list_free(&w.links);
    src_close(&w.src);
    return v;
}
