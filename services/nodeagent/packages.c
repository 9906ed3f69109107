/* Working-directory packages: a tar archive (gzip'd or not) or a zip archive
 * (Ray's, extracted with libarchive: prism_zip.h) stored by the GCS under its
 * sha256, fetched once and extracted to STATE_DIR/packages/SHA/.
 *
 * Extraction goes to a temporary directory renamed into place at the end, so
 * a half-extracted package is never used. An archive is refused when its
 * digest is not the one asked for, or when it would put anything outside its
 * directory or make special files (prism_tar.h; GNU tar also refuses some of
 * those, this check does not rely on it). What tar made is walked once more:
 * setuid, setgid, sticky and world-write bits are dropped, links and file
 * types checked on disk. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nodeagent.h"
#include "prism_buf.h"
#include "prism_fs.h"
#include "prism_httpc.h"
#include "prism_sha256.h"
#include "prism_tar.h"
#include "prism_zip.h"

extern char **environ;

bool na_is_package_sha(const char *text)
{
    size_t n = strlen(text);
    if (n != PRISM_SHA256_HEX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f')))
            return false;
    return true;
}

/* ---------- running tar ---------- */

static int spawn_tar(pid_t *pid, char *const argv[], int out_fd, int capture)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, capture == 1 ? 2 : 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out_fd, capture);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &dfl);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawnp(pid, "tar", &fa, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/* Runs tar with its stdout (capture 1) or stderr (capture 2) read into `out`.
 * Returns tar's exit status, or -1 when it could not run or said too much. */
static int run_tar(char *const argv[], int capture, prism_buf *out)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    pid_t pid;
    int rc = spawn_tar(&pid, argv, p[1], capture);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        errno = rc;
        return -1;
    }
    char chunk[8192];
    ssize_t n;
    bool overflow = false;
    while ((n = read(p[0], chunk, sizeof chunk)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || prism_buf_append(out, chunk, (size_t)n) != 0) {
            overflow = true;
            kill(pid, SIGKILL);
            break;
        }
    }
    close(p[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (overflow || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* ---------- checking and extracting ---------- */

/* The archive must pass the same check as at upload (prism_tar.h): the GCS
 * may hold packages stored before it refused unsafe ones. Only a plain or a
 * gzip'd tar archive passes, so tar is never left to guess a format the
 * check did not read. */
static int check_archive(const nodeagent *na, const char *archive, bool *gzipped, char *err,
                         size_t errlen)
{
    size_t len;
    char *data = prism_read_file(archive, (size_t)na->cfg.package_max, &len);
    if (!data) {
        snprintf(err, errlen, "cannot read %s: %s", archive, strerror(errno));
        return -1;
    }
    char why[512];
    prism_tar_verdict v = prism_tar_check(data, len, gzipped, why, sizeof why);
    free(data);
    if (v != PRISM_TAR_SAFE)
        snprintf(err, errlen, "the package is refused: %s", why);
    return v == PRISM_TAR_SAFE ? 0 : -1;
}

#define TIDY_DEPTH_MAX 256
#define MODE_DROPPED (S_ISUID | S_ISGID | S_ISVTX | S_IWOTH)

static int tidy_dir(int fd, const char *rel, int depth, char *err, size_t errlen);

/* One entry of an extracted tree, `name` in the directory `dirfd`, `rel` its
 * path in the package. */
static int tidy_entry(int dirfd, const char *name, const char *rel, int depth, char *err,
                      size_t errlen)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        snprintf(err, errlen, "cannot stat '%.200s' of the package: %s", rel, strerror(errno));
        return -1;
    }
    if (S_ISLNK(st.st_mode)) {
        char target[NA_PATH_MAX];
        ssize_t n = readlinkat(dirfd, name, target, sizeof target - 1);
        if (n < 0 || (target[n] = '\0', !prism_tar_link_safe(rel, target))) {
            snprintf(err, errlen,
                     "the package is refused: symbolic link '%.200s' points outside "
                     "the package",
                     rel);
            return -1;
        }
        return 0;
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "the package is refused: '%.200s' is a special file", rel);
        return -1;
    }
    /* not a link (just checked), in a directory only this agent can enter */
    if ((st.st_mode & MODE_DROPPED) && fchmodat(dirfd, name, st.st_mode & 0777 & ~S_IWOTH, 0)) {
        snprintf(err, errlen, "cannot chmod '%.200s' of the package: %s", rel, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return 0;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open '%.200s' of the package: %s", rel, strerror(errno));
        return -1;
    }
    return tidy_dir(fd, rel, depth + 1, err, errlen);
}

/* Every entry under the directory `fd` (closed here). */
static int tidy_dir(int fd, const char *rel, int depth, char *err, size_t errlen)
{
    DIR *d = fdopendir(fd);
    if (!d || depth > TIDY_DEPTH_MAX) {
        snprintf(err, errlen, "cannot walk '%.200s' of the package%s", rel, d ? ": too deep" : "");
        if (d)
            closedir(d);
        else
            close(fd);
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char path[NA_PATH_MAX];
        if ((size_t)snprintf(path, sizeof path, "%s%s%s", rel, *rel ? "/" : "", e->d_name) >=
            sizeof path) {
            snprintf(err, errlen, "the package has a path too long under '%.200s'", rel);
            rc = -1;
        } else {
            rc = tidy_entry(dirfd(d), e->d_name, path, depth, err, errlen);
        }
    }
    closedir(d);
    return rc;
}

/* After tar: setuid, setgid, sticky and world-write bits dropped everywhere
 * (tar run as root keeps them), and the links and file types checked again on
 * what is really on disk. */
static int tidy(const char *into, char *err, size_t errlen)
{
    int fd = open(into, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fchmod(fd, 0700) != 0) {
        snprintf(err, errlen, "cannot open %s: %s", into, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return tidy_dir(fd, "", 0, err, errlen);
}

static int extract(const char *archive, bool gzipped, const char *into, char *err, size_t errlen)
{
    char *argv[] = {"tar",        gzipped ? "-xzf" : "-xf", (char *)archive,         "-C",
                    (char *)into, "--no-same-owner",        "--no-same-permissions", NULL};
    if (prism_mkdir_p(into, 0700) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", into, strerror(errno));
        return -1;
    }
    prism_buf msg;
    prism_buf_init(&msg, 4096);
    int rc = run_tar(argv, 2, &msg);
    if (rc != 0) {
        char *nl = msg.data ? strchr(msg.data, '\n') : NULL;
        if (nl)
            *nl = '\0';
        snprintf(err, errlen, "extracting the package failed: %.300s",
                 msg.data ? msg.data : "tar did not run");
    }
    prism_buf_free(&msg);
    return rc == 0 ? tidy(into, err, errlen) : -1;
}

/* A zip archive (Ray's working directories, prism_zip.h): checked and
 * extracted with libarchive, then tidied as tar's output is. */
static int extract_zip(const nodeagent *na, const char *archive, const char *into, char *err,
                       size_t errlen)
{
    size_t len;
    char *data = prism_read_file(archive, (size_t)na->cfg.package_max, &len);
    if (!data) {
        snprintf(err, errlen, "cannot read %s: %s", archive, strerror(errno));
        return -1;
    }
    char why[512];
    int rc = prism_mkdir_p(into, 0700);
    if (rc != 0)
        snprintf(err, errlen, "cannot create %s: %s", into, strerror(errno));
    else if ((rc = prism_zip_extract(data, len, into, PRISM_ZIP_BYTES_MAX, why, sizeof why)) != 0)
        snprintf(err, errlen, "the package is refused: %s", why);
    free(data);
    return rc == 0 ? tidy(into, err, errlen) : -1;
}

/* Whether the file starts as a zip archive does. */
static bool is_zip(const char *archive)
{
    unsigned char head[4];
    int fd = open(archive, O_RDONLY | O_CLOEXEC);
    bool zip = fd >= 0 && read(fd, head, sizeof head) == (ssize_t)sizeof head &&
               prism_zip_is_zip(head, sizeof head);
    if (fd >= 0)
        close(fd);
    return zip;
}

/* ---------- fetching ---------- */

/* GET the package into `file` (mode `mode`), checking its digest. */
static int download(const nodeagent *na, const char *sha, const char *file, mode_t mode, char *err,
                    size_t errlen)
{
    const na_config *c = &na->cfg;
    prism_httpc *h = NULL;
    prism_httpc_resp resp = {0};
    char path[128], digest[PRISM_SHA256_HEX_LEN + 1];
    snprintf(path, sizeof path, "/api/v1/packages/%s", sha);
    int rc = -1;
    if (prism_httpc_create(&h, c->gcs_address, c->token) != 0) {
        snprintf(err, errlen, "cannot create an HTTP client");
    } else if (prism_httpc_request(h, "GET", path, NULL, NULL, 0, (int)c->package_timeout_ms,
                                   (size_t)c->package_max, &resp, err, errlen) != 0) {
        /* err filled */
    } else if (resp.status != 200) {
        json_t *doc = json_loadb(resp.body ? resp.body : "", resp.len, 0, NULL);
        snprintf(err, errlen, "GET %s: HTTP %ld: %s", path, resp.status,
                 prism_httpc_error_message(doc, "no message"));
        json_decref(doc);
    } else if (prism_sha256_hex(resp.body, resp.len, digest), strcmp(digest, sha) != 0) {
        snprintf(err, errlen, "package %s arrived with digest %s", sha, digest);
    } else if (prism_write_file_atomic(file, resp.body, resp.len, mode) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", file, strerror(errno));
    } else {
        rc = 0;
    }
    prism_httpc_resp_free(&resp);
    prism_httpc_destroy(h);
    return rc;
}

static int fetch(nodeagent *na, const char *sha, const char *dir, char *err, size_t errlen)
{
    char archive[NA_PATH_MAX], tmpdir[NA_PATH_MAX];
    snprintf(archive, sizeof archive, "%s/packages/.%s.tar", na->cfg.state_dir, sha);
    snprintf(tmpdir, sizeof tmpdir, "%s/packages/.%s.tmp", na->cfg.state_dir, sha);
    prism_remove_tree(tmpdir); /* left by an agent that died extracting */
    bool gzipped = false;
    int rc = download(na, sha, archive, 0600, err, errlen);
    if (rc == 0 && is_zip(archive)) {
        rc = extract_zip(na, archive, tmpdir, err, errlen);
    } else {
        if (rc == 0)
            rc = check_archive(na, archive, &gzipped, err, errlen);
        if (rc == 0)
            rc = extract(archive, gzipped, tmpdir, err, errlen);
    }
    if (rc == 0 && rename(tmpdir, dir) != 0) {
        snprintf(err, errlen, "cannot rename %s: %s", tmpdir, strerror(errno));
        rc = -1;
    }
    unlink(archive);
    if (rc != 0)
        prism_remove_tree(tmpdir);
    else
        LOG_INFO("package %s fetched and extracted to %s", sha, dir);
    return rc;
}

/* ---------- keeping the cache within --package-cache-max ---------- */

typedef struct cached {
    char path[NA_PATH_MAX];
    char sha[PRISM_SHA256_HEX_LEN + 1];
    bool dir;       /* a working directory (else a task library) */
    int64_t used;   /* mtime (ns): set on every use */
    uint64_t bytes; /* on disk */
} cached;

/* Disk bytes of `name` under `dirfd`, directories walked (links not followed). */
static uint64_t tree_bytes(int dirfd, const char *name, int depth)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return 0;
    uint64_t n = (uint64_t)st.st_blocks * 512;
    if (!S_ISDIR(st.st_mode) || depth > 64)
        return n;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return n;
    }
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n += tree_bytes(fd, e->d_name, depth + 1);
    closedir(d);
    return n;
}

/* Appends the packages in `dir` (SHA/ directories, or SHA.so files) to `*list`. */
static void list_cached(const char *dir, bool dirs, cached **list, size_t *n, size_t *cap)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        bool named = dirs ? len == PRISM_SHA256_HEX_LEN
                          : len == PRISM_SHA256_HEX_LEN + 3 && !strcmp(e->d_name + len - 3, ".so");
        struct stat st;
        if (!named || strspn(e->d_name, "0123456789abcdef") != PRISM_SHA256_HEX_LEN ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            (dirs ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)))
            continue;
        if (*n == *cap) {
            size_t ncap = *cap ? 2 * *cap : 32;
            cached *g = realloc(*list, ncap * sizeof *g);
            if (!g)
                break;
            *list = g;
            *cap = ncap;
        }
        cached *c = &(*list)[(*n)++];
        snprintf(c->path, sizeof c->path, "%s/%s", dir, e->d_name);
        snprintf(c->sha, sizeof c->sha, "%.*s", PRISM_SHA256_HEX_LEN, e->d_name);
        c->dir = dirs;
        c->used = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        c->bytes = tree_bytes(dirfd(d), e->d_name, 0);
    }
    if (d)
        closedir(d);
}

static int by_use(const void *a, const void *b)
{
    int64_t x = ((const cached *)a)->used, y = ((const cached *)b)->used;
    return x < y ? -1 : x > y;
}

/* Whether a job that has not ended runs in package `sha`'s directory. */
static bool in_use(nodeagent *na, const char *sha)
{
    bool used = false;
    pthread_mutex_lock(&na->lock);
    for (na_job *j = na->jobs; j && !used; j = j->next)
        used = (j->state == NA_JOB_STARTING || j->state == NA_JOB_RUNNING) &&
               !strcmp(j->package, sha);
    pthread_mutex_unlock(&na->lock);
    return used;
}

/* Removes the least recently used packages until the cache fits its limit,
 * never `keep` (the one just asked for) nor the directory of a running job
 * (a task library may go: it is loaded already, or fetched again). pkg_lock held. */
static void prune(nodeagent *na, const char *keep)
{
    if (na->cfg.package_cache_max <= 0)
        return;
    char dir[NA_PATH_MAX];
    cached *list = NULL;
    size_t n = 0, cap = 0;
    snprintf(dir, sizeof dir, "%s/packages", na->cfg.state_dir);
    list_cached(dir, true, &list, &n, &cap);
    snprintf(dir, sizeof dir, "%s/worker-packages", na->cfg.state_dir);
    list_cached(dir, false, &list, &n, &cap);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += list[i].bytes;
    if (n)
        qsort(list, n, sizeof *list, by_use);
    for (size_t i = 0; i < n && total > (uint64_t)na->cfg.package_cache_max; i++) {
        const cached *c = &list[i];
        if (!strcmp(c->sha, keep) || (c->dir && in_use(na, c->sha)))
            continue;
        if ((c->dir ? prism_remove_tree(c->path) : unlink(c->path)) != 0) {
            LOG_WARN("cannot remove %s from the package cache: %s", c->path, strerror(errno));
            continue;
        }
        total -= c->bytes;
        LOG_INFO("package %s%s removed from the cache (%llu bytes; least recently used)", c->sha,
                 c->dir ? "" : ".so", (unsigned long long)c->bytes);
    }
    free(list);
}

/* Marks a cached package as used now: the cache keeps the most recently used. */
static void touch(const char *path) { utimensat(AT_FDCWD, path, NULL, AT_SYMLINK_NOFOLLOW); }

static int need_gcs(const nodeagent *na, char *err, size_t errlen)
{
    if (na->cfg.gcs_address && *na->cfg.gcs_address)
        return 0;
    snprintf(err, errlen, "the job names a package but the agent has no --gcs-address");
    return -1;
}

int na_package_ensure(nodeagent *na, const char *sha, char *dir, size_t dirlen, char *err,
                      size_t errlen)
{
    const na_config *c = &na->cfg;
    if (need_gcs(na, err, errlen) != 0)
        return -1;
    char parent[NA_PATH_MAX];
    snprintf(parent, sizeof parent, "%s/packages", c->state_dir);
    snprintf(dir, dirlen, "%s/%s", parent, sha);
    if (prism_mkdir_p(parent, 0700) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", parent, strerror(errno));
        return -1;
    }
    pthread_mutex_lock(&na->pkg_lock);
    struct stat st;
    int rc = 0;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
        touch(dir);
    } else if ((rc = fetch(na, sha, dir, err, errlen)) == 0) {
        prune(na, sha);
    }
    pthread_mutex_unlock(&na->pkg_lock);
    return rc;
}

int na_package_cache(nodeagent *na, const char *sha, char *err, size_t errlen)
{
    char dir[NA_PATH_MAX], file[NA_PATH_MAX], why[512];
    if (need_gcs(na, err, errlen) != 0)
        return -1;
    snprintf(dir, sizeof dir, "%s/worker-packages", na->cfg.state_dir);
    snprintf(file, sizeof file, "%s/%s.so", dir, sha);
    if (prism_mkdir_p(dir, 0700) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    pthread_mutex_lock(&na->pkg_lock);
    struct stat st;
    int rc = 0;
    if (stat(file, &st) == 0) {
        touch(file);
    } else if ((rc = download(na, sha, file, 0700, why, sizeof why)) == 0) {
        /* Mode 0700 and the name SHA.so, as a worker writes it when it fetches one itself. */
        prune(na, sha);
    }
    pthread_mutex_unlock(&na->pkg_lock);
    if (rc != 0)
        snprintf(err, errlen, "package %s could not be fetched: %s", sha, why);
    else
        LOG_DEBUG("package %s is in the workers' cache", sha);
    return rc;
}
