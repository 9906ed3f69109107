/* Working-directory packages: a tar archive (gzip'd or not) stored by the GCS
 * under its sha256, fetched once and extracted to STATE_DIR/packages/SHA/.
 *
 * Extraction goes to a temporary directory renamed into place at the end, so
 * a half-extracted package is never used. An archive is refused when its
 * digest is not the one asked for or when a member name is absolute or has a
 * ".." component (GNU tar also refuses those; this check does not rely on it). */
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

#define TAR_OUTPUT_MAX (16u << 20)

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

static bool member_safe(const char *name)
{
    if (name[0] == '/')
        return false;
    for (const char *p = name; *p;) {
        size_t len = strcspn(p, "/");
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return false;
        p += len;
        p += *p == '/';
    }
    return true;
}

static int check_members(const char *archive, char *err, size_t errlen)
{
    prism_buf list;
    prism_buf_init(&list, TAR_OUTPUT_MAX);
    char *argv[] = {"tar", "-tPf", (char *)archive, NULL}; /* -P: names exactly as stored */
    int rc = run_tar(argv, 1, &list);
    if (rc != 0) {
        snprintf(err, errlen, "the package is not a readable tar archive");
        prism_buf_free(&list);
        return -1;
    }
    char *save = NULL;
    for (char *line = strtok_r(list.data ? list.data : "", "\n", &save); line && rc == 0;
         line = strtok_r(NULL, "\n", &save)) {
        if (!member_safe(line)) {
            snprintf(err, errlen, "the package has an unsafe member '%.200s'", line);
            rc = -1;
        }
    }
    prism_buf_free(&list);
    return rc;
}

static int extract(const char *archive, const char *into, char *err, size_t errlen)
{
    char *argv[] = {"tar", "-xf", (char *)archive, "-C", (char *)into, "--no-same-owner", NULL};
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
    return rc == 0 ? 0 : -1;
}

/* ---------- fetching ---------- */

/* GET the package into `file` (mode `mode`), checking its digest. */
static int download(const nodeagent *na, const char *sha, const char *file, mode_t mode,
                    char *err, size_t errlen)
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
    int rc = download(na, sha, archive, 0600, err, errlen);
    if (rc == 0)
        rc = check_members(archive, err, errlen);
    if (rc == 0)
        rc = extract(archive, tmpdir, err, errlen);
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
    int rc = stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : fetch(na, sha, dir, err, errlen);
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
    /* Mode 0700 and the name SHA.so, as a worker writes it when it fetches one itself. */
    int rc = stat(file, &st) == 0 ? 0 : download(na, sha, file, 0700, why, sizeof why);
    pthread_mutex_unlock(&na->pkg_lock);
    if (rc != 0)
        snprintf(err, errlen, "package %s could not be fetched: %s", sha, why);
    else
        LOG_DEBUG("package %s is in the workers' cache", sha);
    return rc;
}
