/* Key-value store: small values by namespace and key, for drivers and tools. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "gcs.h"
#include "prism_fs.h"
#include "prism_json_text.h"
#include "prism_time.h"

#define MAX_KEY 512

/* Replies 400 and returns false unless namespace and key are acceptable. */
static bool valid_names(prism_http_req *req, const char **ns, const char **key)
{
    *ns = prism_http_param(req, "namespace");
    *key = prism_http_param(req, "key");
    if (!prism_safe_name(*ns)) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "namespace must be 1-128 characters of A-Z a-z 0-9 . _ -");
        return false;
    }
    if (*key) {
        /* Listings return keys as JSON strings: a key that is not UTF-8 would
         * be stored and never listed. (The server already refuses such paths
         * and %00, which would cut the key short.) */
        size_t n = strlen(*key);
        bool ok = n > 0 && n <= MAX_KEY && prism_utf8_valid(*key, n);
        for (size_t i = 0; ok && i < n; i++)
            ok = (unsigned char)(*key)[i] >= 0x20;
        if (!ok) {
            prism_http_reply_error(req, 400, "invalid_argument",
                                   "key must be 1-%d bytes of UTF-8 without control characters",
                                   MAX_KEY);
            return false;
        }
    }
    return true;
}

void gcs_api_kv_get(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    const char *ns, *key;
    if (!valid_names(req, &ns, &key))
        return;
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st =
        gcs_db_prepare(g->db, "SELECT value, content_type FROM kv WHERE namespace=? AND key=?");
    gcs_db_bind_text(st, 1, ns);
    gcs_db_bind_text(st, 2, key);
    if (st && sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *ct = sqlite3_column_text(st, 1);
        prism_http_reply(req, 200, ct ? (const char *)ct : "application/octet-stream",
                         sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
    } else {
        prism_http_reply_error(req, 404, "not_found", "no key '%s' in namespace '%s'", key, ns);
    }
    gcs_db_finish(st);
    pthread_mutex_unlock(&g->lock);
}

void gcs_api_kv_put(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    const char *ns, *key;
    if (!valid_names(req, &ns, &key))
        return;
    size_t len;
    const char *body = prism_http_body(req, &len);
    const char *ct = prism_http_header(req, "Content-Type");
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "INSERT INTO kv (namespace, key, value, content_type, updated_at) VALUES "
               "(?, ?, ?, ?, ?) ON CONFLICT (namespace, key) DO UPDATE SET value=excluded.value, "
               "content_type=excluded.content_type, updated_at=excluded.updated_at");
    gcs_db_bind_text(st, 1, ns);
    gcs_db_bind_text(st, 2, key);
    sqlite3_bind_blob(st, 3, body, (int)len, SQLITE_TRANSIENT);
    gcs_db_bind_text(st, 4, ct);
    sqlite3_bind_int64(st, 5, prism_now_ms());
    int rc = gcs_db_exec_stmt(st);
    pthread_mutex_unlock(&g->lock);
    if (rc != SQLITE_DONE) {
        prism_http_reply_error(req, 500, "internal", "could not store the value");
        return;
    }
    prism_http_reply_json(
        req, 200, json_pack("{s:s,s:s,s:I}", "namespace", ns, "key", key, "size", (json_int_t)len));
}

void gcs_api_kv_delete(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    const char *ns, *key;
    if (!valid_names(req, &ns, &key))
        return;
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(g->db, "DELETE FROM kv WHERE namespace=? AND key=?");
    gcs_db_bind_text(st, 1, ns);
    gcs_db_bind_text(st, 2, key);
    gcs_db_exec_stmt(st);
    int changed = sqlite3_changes(g->db);
    pthread_mutex_unlock(&g->lock);
    if (!changed) {
        prism_http_reply_error(req, 404, "not_found", "no key '%s' in namespace '%s'", key, ns);
        return;
    }
    prism_http_reply_json(req, 200, json_pack("{s:b}", "deleted", 1));
}

static json_t *kv_key_row(sqlite3_stmt *st, void *ud)
{
    return json_string((const char *)sqlite3_column_text(st, 0));
}

void gcs_api_kv_list(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    const char *ns, *key;
    int64_t limit;
    if (!valid_names(req, &ns, &key) ||
        prism_http_query_int(req, "limit", 1000, 1, 10000, &limit) != 0)
        return;
    const char *prefix = prism_http_query(req, "prefix");
    const char *after = prism_http_query(req, "cursor");
    pthread_mutex_lock(&g->lock);
    /* substr() instead of LIKE: keys may hold % and _. */
    sqlite3_stmt *st = gcs_db_prepare(g->db,
                                      "SELECT key FROM kv WHERE namespace=?1 AND key > ?2 AND "
                                      "substr(key, 1, length(?3)) = ?3 ORDER BY key LIMIT :limit");
    gcs_db_bind_text(st, 1, ns);
    gcs_db_bind_text(st, 2, after ? after : "");
    gcs_db_bind_text(st, 3, prefix ? prefix : "");
    json_t *keys = json_array();
    json_t *next = gcs_db_page(st, "key", limit, kv_key_row, NULL, keys);
    pthread_mutex_unlock(&g->lock);
    prism_http_reply_json(
        req, 200, json_pack("{s:s,s:o,s:o}", "namespace", ns, "keys", keys, "next_cursor", next));
}
