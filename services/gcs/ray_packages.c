/* Ray's package routes, which `ray job submit --working-dir DIR` uses: it
 * zips DIR, names the zip gcs://_ray_pkg_HASH.zip (a hash of the
 * directory's files, not of the zip's bytes), asks GET /api/packages/gcs/NAME
 * whether it is stored, PUTs it there when not, and then names the URI in
 * runtime_env.working_dir. The zip is checked (prism_zip.h) and stored as a
 * package like any other; the table ray_packages maps the name to it. */
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "gcs.h"
#include "prism_fs.h"
#include "prism_sha256.h"
#include "prism_time.h"
#include "prism_zip.h"

#define RAY_URI_PREFIX "gcs://"

/* The name of a package in a Ray URI: [A-Za-z0-9._-], ending in ".zip". */
static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    return prism_safe_name(name) && n > 4 && !strcmp(name + n - 4, ".zip");
}

/* Checks the path's protocol and name; answers 400 and returns NULL when wrong. */
static const char *path_name(prism_http_req *req)
{
    const char *protocol = prism_http_param(req, "protocol");
    const char *name = prism_http_param(req, "name");
    if (strcmp(protocol, "gcs") != 0) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "protocol '%s': packages are stored only as gcs://NAME", protocol);
        return NULL;
    }
    if (!name_ok(name)) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "a package name is 1-128 of [A-Za-z0-9._-] ending in .zip");
        return NULL;
    }
    return name;
}

/* The stored package named `name`: its sha256 into `sha` and its size. */
static int lookup(gcs *g, const char *name, char *sha, int64_t *size)
{
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(g->db, "SELECT r.sha256, p.size FROM ray_packages r "
                                             "JOIN packages p ON p.sha256 = r.sha256 "
                                             "WHERE r.name = ?");
    gcs_db_bind_text(st, 1, name);
    int rc = -1;
    if (st && sqlite3_step(st) == SQLITE_ROW) {
        snprintf(sha, PRISM_SHA256_HEX_LEN + 1, "%s", (const char *)sqlite3_column_text(st, 0));
        *size = sqlite3_column_int64(st, 1);
        rc = 0;
    }
    gcs_db_finish(st);
    pthread_mutex_unlock(&g->lock);
    return rc;
}

static json_t *package_json(const char *name, const char *sha, int64_t size)
{
    return json_pack("{s:s+,s:s,s:I}", "uri", RAY_URI_PREFIX, name, "sha256", sha, "size",
                     (json_int_t)size);
}

void gcs_ray_package_get(prism_http_req *req, void *ctx)
{
    const char *name = path_name(req);
    char sha[PRISM_SHA256_HEX_LEN + 1];
    int64_t size;
    if (!name)
        return;
    if (lookup(ctx, name, sha, &size) != 0) {
        prism_http_reply_error(req, 404, "not_found", "package %s%s does not exist", RAY_URI_PREFIX,
                               name);
        return;
    }
    prism_http_reply_json(req, 200, package_json(name, sha, size));
}

static int map_name(gcs *g, const char *name, const char *sha)
{
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(g->db, "INSERT OR REPLACE INTO ray_packages "
                                             "(name, sha256, created_at) VALUES (?, ?, ?)");
    gcs_db_bind_text(st, 1, name);
    gcs_db_bind_text(st, 2, sha);
    sqlite3_bind_int64(st, 3, prism_now_ms());
    int rc = gcs_db_exec_stmt(st) == SQLITE_DONE ? 0 : -1;
    pthread_mutex_unlock(&g->lock);
    return rc;
}

void gcs_ray_package_put(prism_http_req *req, void *ctx)
{
    const char *name = path_name(req);
    size_t len;
    const char *body = prism_http_body(req, &len);
    if (!name)
        return;
    if (!prism_zip_is_zip(body, len)) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "a Ray package must be a zip archive (the body is %zu bytes of "
                               "something else)",
                               len);
        return;
    }
    if (gcs_package_check(req, body, len) != 0)
        return;
    char sha[PRISM_SHA256_HEX_LEN + 1];
    bool created;
    if (gcs_package_store(ctx, body, len, sha, &created) != 0 || map_name(ctx, name, sha) != 0) {
        prism_http_reply_error(req, 500, "internal", "could not store the package");
        return;
    }
    /* 200 either way: Ray's client takes nothing else for success. */
    prism_http_reply_json(req, 200, package_json(name, sha, (int64_t)len));
}

int gcs_ray_package_sha(gcs *g, const char *uri, char *sha)
{
    int64_t size;
    size_t n = strlen(RAY_URI_PREFIX);
    if (strncmp(uri, RAY_URI_PREFIX, n) != 0 || !name_ok(uri + n))
        return -1;
    return lookup(g, uri + n, sha, &size);
}
