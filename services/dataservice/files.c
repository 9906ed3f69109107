/* The files a read names (docs/datasets.md#reads): each path a file, a
 * directory or a glob on this node's file system, an http(s) URL (one
 * file, its extension not checked), or an s3:// object or prefix (listed
 * with prism_s3.h, as a directory is). A directory gives every
 * regular file under it, in name order, leaving out names that start with
 * "." or "_" (as Ray Data) and symbolic links (the walk stays under what was
 * named); a path named, or matched by a glob, is followed as given. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataservice.h"
#include "prism_s3.h"

#define FILES_MAX (1u << 20) /* files one read may list */
#define FILES_MAX_DEPTH 32   /* directories deep under a path named */

typedef struct lister {
    json_t *out; /* [{"path", "size"}...] */
    const json_t *exts;
    int64_t total;
    char *err;
    size_t n;
} lister;

static bool has_extension(const lister *l, const char *path)
{
    size_t len = strlen(path), i;
    const json_t *e;
    if (!json_is_array(l->exts))
        return true;
    json_array_foreach(l->exts, i, e) {
        const char *x = json_string_value(e);
        size_t xl = x ? strlen(x) : 0;
        /* "jpg" matches "a.jpg" and "a.JPG" */
        if (x && len > xl + 1 && path[len - xl - 1] == '.' && !strcasecmp(path + len - xl, x))
            return true;
    }
    return false;
}

static int add_sized(lister *l, const char *path, int64_t size)
{
    if (!has_extension(l, path))
        return 0;
    if (json_array_size(l->out) >= FILES_MAX) {
        snprintf(l->err, l->n, "more than %u files", FILES_MAX);
        return -1;
    }
    if (json_array_append_new(l->out,
                              json_pack("{sssI}", "path", path, "size", (json_int_t)size)) != 0) {
        snprintf(l->err, l->n, "out of memory");
        return -1;
    }
    l->total += size;
    return 0;
}

static int add_file(lister *l, const char *path, const struct stat *sb)
{
    return add_sized(l, path, (int64_t)sb->st_size);
}

static int on_object(void *ud, const char *path, int64_t size) { return add_sized(ud, path, size); }

/* The objects under an s3:// path; none is an error, as a missing file is. */
static int add_s3(lister *l, const char *path)
{
    size_t before = json_array_size(l->out);
    if (prism_s3_list(path, on_object, l, l->err, l->n) != 0)
        return -1;
    if (json_array_size(l->out) == before) {
        snprintf(l->err, l->n, "%s: no objects%s", path,
                 json_is_array(l->exts) ? " with those extensions" : "");
        return -1;
    }
    return 0;
}

/* A directory entry the walk visits: its name and type (DT_UNKNOWN when
 * the file system does not say). */
typedef struct entry {
    char *name;
    unsigned char type;
} entry;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

/* The entries of the open directory `d` that the walk visits, sorted; NULL
 * with err. */
static entry *dir_entries(lister *l, DIR *d, size_t *count)
{
    entry *v = NULL;
    size_t k = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || e->d_name[0] == '_')
            continue;
        if (k == cap) {
            entry *bigger = realloc(v, (cap = cap ? 2 * cap : 16) * sizeof *v);
            if (!bigger)
                break;
            v = bigger;
        }
        if (!(v[k].name = strdup(e->d_name)))
            break;
        v[k++].type = e->d_type;
    }
    if (e) {
        for (size_t i = 0; i < k; i++)
            free(v[i].name);
        free(v);
        snprintf(l->err, l->n, "out of memory");
        return NULL;
    }
    qsort(v, k, sizeof *v, by_name);
    *count = k;
    return v ? v : calloc(1, sizeof *v);
}

/* What a walk learns of an entry (fstatat): a regular file and its size, a
 * directory, or neither (not looked at, or something else). */
enum { LOOKED_NONE, LOOKED_FILE, LOOKED_DIR };
typedef struct looked {
    int64_t size;
    unsigned char kind;
} looked;

/* Entries [from, to) of a directory, each looked at by name within it
 * (fstatat) when the walk wants it: a directory, or a file whose extension
 * is read (the type comes from the directory where it can). */
typedef struct look_job {
    const lister *l;
    int dfd;
    const entry *v;
    looked *out;
    size_t from, to;
} look_job;

static void *look_at(void *arg)
{
    look_job *j = arg;
    for (size_t i = j->from; i < j->to; i++) {
        unsigned char t = j->v[i].type;
        bool want = t == DT_DIR || t == DT_UNKNOWN ||
                    (t == DT_REG && has_extension(j->l, j->v[i].name));
        struct stat sb;
        looked *o = &j->out[i];
        o->kind = LOOKED_NONE;
        if (want && fstatat(j->dfd, j->v[i].name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
            o->kind = S_ISREG(sb.st_mode)   ? LOOKED_FILE
                      : S_ISDIR(sb.st_mode) ? LOOKED_DIR
                                            : LOOKED_NONE;
            o->size = (int64_t)sb.st_size;
        }
    }
    return NULL;
}

/* A `stat` is a few microseconds: a directory of many files (a dataset of
 * images) is looked at by up to LOOK_THREADS threads, LOOK_MIN entries or
 * more each, so that the read's first tasks start sooner. */
#define LOOK_THREADS 4
#define LOOK_MIN 1024

static void look_all(const lister *l, int dfd, const entry *v, size_t k, looked *out)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t n = k / LOOK_MIN;
    if (n > LOOK_THREADS)
        n = LOOK_THREADS;
    if (cpus > 0 && n > (size_t)cpus)
        n = (size_t)cpus;
    if (n < 1)
        n = 1;
    look_job jobs[LOOK_THREADS];
    pthread_t th[LOOK_THREADS];
    bool started[LOOK_THREADS] = {false};
    for (size_t t = 0; t < n; t++) {
        jobs[t] = (look_job){l, dfd, v, out, k * t / n, k * (t + 1) / n};
        /* the first chunk is this thread's; a helper that cannot start leaves its
         * chunk to this thread too */
        started[t] = t > 0 && pthread_create(&th[t], NULL, look_at, &jobs[t]) == 0;
    }
    look_at(&jobs[0]);
    for (size_t t = 1; t < n; t++) {
        if (started[t])
            pthread_join(th[t], NULL);
        else
            look_at(&jobs[t]);
    }
}

static int walk(lister *l, const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(l->err, l->n, "%s: %s", dir, strerror(errno));
        return -1;
    }
    size_t k = 0;
    entry *v = dir_entries(l, d, &k);
    looked *seen = v ? calloc(k ? k : 1, sizeof *seen) : NULL;
    int rc = seen ? 0 : -1;
    if (v && !seen)
        snprintf(l->err, l->n, "out of memory");
    if (seen)
        look_all(l, dirfd(d), v, k, seen);
    for (size_t i = 0; i < k; i++) {
        char *path = NULL;
        if (rc == 0 && seen[i].kind != LOOKED_NONE &&
            asprintf(&path, "%s/%s", dir, v[i].name) < 0) {
            snprintf(l->err, l->n, "out of memory");
            rc = -1;
            path = NULL;
        }
        if (path) {
            if (seen[i].kind == LOOKED_FILE)
                rc = add_sized(l, path, seen[i].size);
            else if (depth < FILES_MAX_DEPTH)
                rc = walk(l, path, depth + 1);
        }
        free(path);
        free(v[i].name);
    }
    free(seen);
    free(v);
    closedir(d);
    return rc;
}

/* One path as named (or matched): a file, or a directory to walk. */
static int add_path(lister *l, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        snprintf(l->err, l->n, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(sb.st_mode)) {
        /* "dir/" and "dir" list the same names */
        size_t len = strlen(path);
        char *dir = strndup(path, len > 1 && path[len - 1] == '/' ? len - 1 : len);
        int rc = dir ? walk(l, dir, 0) : -1;
        free(dir);
        return rc;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(l->err, l->n, "%s: not a regular file or a directory", path);
        return -1;
    }
    return add_file(l, path, &sb);
}

static int add_glob(lister *l, const char *pattern)
{
    glob_t g;
    int rc = glob(pattern, GLOB_ERR, NULL, &g);
    if (rc == GLOB_NOMATCH) {
        snprintf(l->err, l->n, "%s: matches no file", pattern);
        return -1;
    }
    if (rc != 0) {
        snprintf(l->err, l->n, "%s: cannot be listed", pattern);
        return -1;
    }
    for (size_t i = 0; rc == 0 && i < g.gl_pathc; i++)
        rc = add_path(l, g.gl_pathv[i]);
    globfree(&g);
    return rc;
}

static bool is_url(const char *path)
{
    return !strncmp(path, "http://", 7) || !strncmp(path, "https://", 8);
}

/* A URL is one file, read by the task as named (its size unknown here). */
static int add_url(lister *l, const char *url)
{
    if (json_array_size(l->out) >= FILES_MAX ||
        json_array_append_new(l->out, json_pack("{sssi}", "path", url, "size", 0)) != 0) {
        snprintf(l->err, l->n, "more than %u files, or out of memory", FILES_MAX);
        return -1;
    }
    return 0;
}

json_t *ds_list_files(const json_t *paths, const json_t *exts, int64_t *total, char *err, size_t n)
{
    lister l = {json_array(), exts, 0, err, n};
    size_t i;
    const json_t *p;
    if (!l.out) {
        snprintf(err, n, "out of memory");
        return NULL;
    }
    json_array_foreach(paths, i, p) {
        const char *path = json_string_value(p);
        int rc = !path                    ? -1
                 : is_url(path)           ? add_url(&l, path)
                 : prism_s3_is_path(path) ? add_s3(&l, path)
                 : strpbrk(path, "*?[")   ? add_glob(&l, path)
                                          : add_path(&l, path);
        if (rc != 0) {
            json_decref(l.out);
            return NULL;
        }
    }
    if (json_array_size(l.out) == 0) {
        snprintf(err, n, "no files found%s", json_is_array(exts) ? " with those extensions" : "");
        json_decref(l.out);
        return NULL;
    }
    *total = l.total;
    return l.out;
}
