/* Packages: content-addressed blobs (task libraries, working directories as
 * tar or zip archives).
 * The bytes live in files named by their sha256 under the data directory;
 * the database records which exist. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "gcs.h"
#include "prism_fs.h"
#include "prism_log.h"
#include "prism_sha256.h"
#include "prism_tar.h"
#include "prism_zip.h"
#include "prism_time.h"

int gcs_package_store(gcs *g, const void *body, size_t len, char *sha, bool *created)
{
    char path[4096];
    prism_sha256_hex(body, len, sha);
    snprintf(path, sizeof path, "%s/%s", g->packages_dir, sha);
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(g->db, "SELECT 1 FROM packages WHERE sha256=?");
    gcs_db_bind_text(st, 1, sha);
    bool exists = st && sqlite3_step(st) == SQLITE_ROW;
    gcs_db_finish(st);
    int rc = 0;
    if (!exists && prism_write_file_atomic(path, body, len, 0644) != 0) {
        LOG_ERROR("cannot write package %s: %m", path);
        rc = -1;
    } else if (!exists) {
        st = gcs_db_prepare(g->db,
                            "INSERT INTO packages (sha256, size, created_at) VALUES (?, ?, ?)");
        gcs_db_bind_text(st, 1, sha);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)len);
        sqlite3_bind_int64(st, 3, prism_now_ms());
        if (gcs_db_exec_stmt(st) != SQLITE_DONE)
            rc = -1;
    }
    pthread_mutex_unlock(&g->lock);
    if (rc == 0 && !exists)
        LOG_INFO("package %s stored (%zu bytes)", sha, len);
    *created = !exists;
    return rc;
}

int gcs_package_check(prism_http_req *req, const void *body, size_t len)
{
    /* A tar or zip archive is a working directory a node agent will
     * extract: one that would put anything outside its directory is refused
     * here, before a job names it. Other blobs (task libraries) are stored
     * as they are. */
    char why[512];
    if (prism_tar_check(body, len, NULL, why, sizeof why) == PRISM_TAR_UNSAFE ||
        (prism_zip_is_zip(body, len) &&
         prism_zip_check(body, len, PRISM_ZIP_BYTES_MAX, why, sizeof why) != PRISM_ZIP_SAFE)) {
        prism_http_reply_error(req, 400, "unsafe_package", "%s", why);
        return -1;
    }
    return 0;
}

void gcs_api_package_put(prism_http_req *req, void *ctx)
{
    size_t len;
    const char *body = prism_http_body(req, &len);
    if (len == 0) {
        prism_http_reply_error(req, 400, "invalid_argument", "a package must not be empty");
        return;
    }
    if (gcs_package_check(req, body, len) != 0)
        return;
    char sha[PRISM_SHA256_HEX_LEN + 1];
    bool created;
    if (gcs_package_store(ctx, body, len, sha, &created) != 0) {
        prism_http_reply_error(req, 500, "internal", "could not store the package");
        return;
    }
    prism_http_reply_json(req, created ? 201 : 200,
                          json_pack("{s:s,s:I}", "sha256", sha, "size", (json_int_t)len));
}

void gcs_api_package_get(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    const char *sha = prism_http_param(req, "sha256");
    if (!prism_is_hex(sha, PRISM_SHA256_HEX_LEN)) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "a package is named by its sha256: 64 lowercase hex digits");
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", g->packages_dir, sha);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat stbuf;
    if (fd < 0 || fstat(fd, &stbuf) != 0) {
        if (fd >= 0)
            close(fd);
        prism_http_reply_error(req, 404, "not_found", "no package '%s'", sha);
        return;
    }
    prism_http_reply_fd(req, 200, "application/octet-stream", fd, 0, (uint64_t)stbuf.st_size);
}
