/* Where datasets may read and write on this node: --data-roots
 * (docs/datasets.md#writes). With roots, every local file a read lists and
 * every directory a write makes must resolve (symbolic links and ".."
 * followed) to a path under one of them; without, reads go anywhere this
 * process may read and writes are refused: writing files for whoever posts
 * a plan is opt-in. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataservice.h"
#include "prism_s3.h"

int ds_roots_parse(ds_config *c, char *err, size_t n)
{
    const char *spec = c->data_roots ? c->data_roots : "";
    while (*spec) {
        const char *end = strchr(spec, ':');
        size_t len = end ? (size_t)(end - spec) : strlen(spec);
        if (len) {
            char path[PATH_MAX], real[PATH_MAX];
            if (len >= sizeof path) {
                snprintf(err, n, "--data-roots: a root is longer than %d bytes", PATH_MAX - 1);
                return -1;
            }
            memcpy(path, spec, len);
            path[len] = '\0';
            struct stat sb;
            if (path[0] != '/' || !realpath(path, real) || stat(real, &sb) != 0 ||
                !S_ISDIR(sb.st_mode)) {
                snprintf(err, n, "--data-roots: %s is not an absolute path of a directory", path);
                return -1;
            }
            char **v = realloc(c->roots, (c->nroots + 1) * sizeof *v);
            if (!v || !(v[c->nroots] = strdup(real))) {
                if (v)
                    c->roots = v;
                snprintf(err, n, "out of memory");
                return -1;
            }
            c->roots = v;
            c->nroots++;
        }
        spec += len + (end ? 1 : 0);
    }
    return 0;
}

void ds_roots_free(ds_config *c)
{
    for (size_t i = 0; i < c->nroots; i++)
        free(c->roots[i]);
    free(c->roots);
    c->roots = NULL;
    c->nroots = 0;
}

/* Whether `real` (resolved) is a root or under one. */
static bool under_roots(const ds_config *c, const char *real)
{
    for (size_t i = 0; i < c->nroots; i++) {
        const char *r = c->roots[i];
        size_t len = strlen(r);
        if (!strcmp(r, "/") || (!strncmp(real, r, len) && (real[len] == '\0' || real[len] == '/')))
            return true;
    }
    return false;
}

int ds_read_allowed(const ds_config *c, const char *path, char *err, size_t n)
{
    char real[PATH_MAX];
    if (!c->nroots)
        return 0;
    if (!realpath(path, real)) {
        snprintf(err, n, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!under_roots(c, real)) {
        snprintf(err, n, "%s: outside the dataservice's --data-roots", path);
        return -1;
    }
    return 0;
}

int ds_write_check(const ds_config *c, const char *path, char *err, size_t n)
{
    if (prism_s3_is_path(path)) { /* --data-roots bound local files; S3 has its credentials */
        if (!prism_s3_has_credentials()) {
            snprintf(err, n, "writes to s3:// need credentials: %s of the dataservice",
                     PRISM_S3_CREDENTIALS);
            return -1;
        }
        return 0;
    }
    if (!c->nroots) {
        snprintf(err, n,
                 "writes are off: the dataservice was started without --data-roots (the "
                 "directories datasets may write under)");
        return -1;
    }
    if (path[0] != '/') {
        snprintf(err, n, "\"path\" must be absolute, not \"%s\"", path);
        return -1;
    }
    /* ".." would be resolved again at the write; refusing it keeps the rule simple */
    for (const char *p = path; *p; p++)
        if ((p == path || p[-1] == '/') && p[0] == '.' && p[1] == '.' &&
            (p[2] == '/' || p[2] == '\0')) {
            snprintf(err, n, "\"path\" must not hold \"..\": %s", path);
            return -1;
        }
    if (strlen(path) >= PATH_MAX) {
        snprintf(err, n, "\"path\" is longer than %d bytes", PATH_MAX - 1);
        return -1;
    }
    /* The deepest directory that exists must resolve under a root; what
     * follows it is made by the write, below it. */
    char prefix[PATH_MAX], real[PATH_MAX];
    snprintf(prefix, sizeof prefix, "%s", path);
    for (;;) {
        if (realpath(prefix, real))
            break;
        char *slash = strrchr(prefix, '/');
        if (errno != ENOENT || !slash || slash == prefix) {
            snprintf(err, n, "%s: %s", prefix, strerror(errno));
            return -1;
        }
        *slash = '\0';
    }
    if (!under_roots(c, real)) {
        snprintf(err, n, "%s: outside the dataservice's --data-roots", path);
        return -1;
    }
    return 0;
}

int ds_write_dir_open(const ds_config *c, const char *path, char *err, size_t n)
{
    if (ds_write_check(c, path, err, n) != 0)
        return -1;
    if (n)
        *err = '\0';
    /* mkdir -p, one component at a time below "/", never through a link
     * made meanwhile: each new directory is opened O_NOFOLLOW */
    int fd = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    char comp[NAME_MAX + 1];
    const char *p = path;
    while (fd >= 0 && *p) {
        while (*p == '/')
            p++;
        size_t len = strcspn(p, "/");
        if (!len)
            break;
        if (len > NAME_MAX) {
            close(fd);
            snprintf(err, n, "%s: a name is longer than %d bytes", path, NAME_MAX);
            return -1;
        }
        memcpy(comp, p, len);
        comp[len] = '\0';
        p += len;
        if (!strcmp(comp, "."))
            continue;
        int next = openat(fd, comp, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (next < 0 && errno == ENOENT) {
            if (mkdirat(fd, comp, 0755) != 0 && errno != EEXIST) {
                snprintf(err, n, "%s: cannot make %s: %s", path, comp, strerror(errno));
                close(fd);
                return -1;
            }
            next = openat(fd, comp, O_DIRECTORY | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (next < 0)
            snprintf(err, n, "%s: %s: %s", path, comp, strerror(errno));
        close(fd);
        fd = next;
    }
    if (fd < 0) {
        if (!*err)
            snprintf(err, n, "%s: %s", path, strerror(errno));
        return -1;
    }
    /* the directory reached is still under a root (an existing link on the
     * way was resolved by the check above, and may have changed since) */
    char self[64], real[PATH_MAX];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(self, real, sizeof real - 1);
    if (len <= 0) {
        snprintf(err, n, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    real[len] = '\0';
    if (!under_roots(c, real)) {
        snprintf(err, n, "%s: outside the dataservice's --data-roots", path);
        close(fd);
        return -1;
    }
    return fd;
}
