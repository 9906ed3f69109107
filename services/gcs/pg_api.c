/* The placement groups REST API (/api/v1/placement_groups; openapi/gcs.yaml). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "db.h"
#include "pgroups.h"
#include "prism_id.h"
#include "prism_wire.h"

#define NAME_MAX_LEN 128
#define RESOURCE_NAME_MAX 64

static bool one_of(const char *s, const char *const *set, int n)
{
    for (int i = 0; s && i < n; i++)
        if (!strcmp(s, set[i]))
            return true;
    return false;
}

static bool plain_text(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* NULL when `b` is a bundle: resource names to non-negative amounts, one positive. */
static const char *bundle_error(json_t *b)
{
    if (!json_is_object(b))
        return "each bundle must be an object of resource name to amount";
    bool some = false;
    const char *name;
    json_t *v;
    json_object_foreach(b, name, v) {
        double x = json_number_value(v);
        if (!plain_text(name, RESOURCE_NAME_MAX) || !json_is_number(v) || !isfinite(x) || x < 0)
            return "bundle amounts must be non-negative numbers under names of 1-64 characters";
        some |= x > 0;
    }
    return some ? NULL : "a bundle must ask for some resource (Ray refuses empty bundles too)";
}

static const char *bundles_error(json_t *bundles)
{
    if (!json_is_array(bundles) || !json_array_size(bundles) ||
        json_array_size(bundles) > PG_MAX_BUNDLES)
        return "'bundles' must be an array of 1-256 bundles";
    size_t i;
    json_t *b;
    json_array_foreach(bundles, i, b) {
        const char *why = bundle_error(b);
        if (why)
            return why;
    }
    return NULL;
}

void gcs_api_pg_create(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    json_t *body = prism_http_body_json(req);
    if (!body)
        return;
    const char *strategy = "PACK", *name = NULL, *owner = NULL;
    json_t *bundles = json_object_get(body, "bundles");
    const char *why = bundles_error(bundles);
    if (prism_http_field_string(req, body, "strategy", false, &strategy) != 0 ||
        prism_http_field_string(req, body, "name", false, &name) != 0 ||
        prism_http_field_string(req, body, "owner", false, &owner) != 0)
        goto out;
    if (why) {
        prism_http_reply_error(req, 400, "invalid_argument", "%s", why);
        goto out;
    }
    if (!one_of(strategy, gcs_pg_strategies, 4)) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "'strategy' must be PACK, SPREAD, STRICT_PACK or STRICT_SPREAD");
        goto out;
    }
    if (owner && (!plain_text(owner, NAME_MAX_LEN) || !wire_owner_id(owner, &(prism_id){0}))) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "'owner' must be an owner address (owner:HEX)");
        goto out;
    }
    if (name && !plain_text(name, NAME_MAX_LEN)) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "'name' must be 1-128 characters without control characters");
        goto out;
    }
    prism_id pid;
    char id[PRISM_ID_HEX_LEN + 1];
    prism_id_random(&pid);
    prism_id_to_hex(&pid, id);
    pthread_mutex_lock(&g->lock);
    int rc = gcs_pg_insert_locked(g, id, name, owner, strategy, bundles);
    json_t *doc = rc == 0 ? gcs_pg_json_locked(g, id) : NULL;
    g->pg_wanted = true;
    pthread_mutex_unlock(&g->lock);
    if (!doc)
        prism_http_reply_error(req, 500, "internal", "cannot store the placement group");
    else
        prism_http_reply_json(req, 201, doc);
out:
    json_decref(body);
}

static json_t *pg_row(sqlite3_stmt *st, void *ud) { return gcs_pg_row_json(st); }

void gcs_api_pgs_list(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    int64_t limit, cursor;
    const char *state = prism_http_query(req, "state"), *name = prism_http_query(req, "name");
    if (prism_http_query_int(req, "limit", 100, 1, 1000, &limit) != 0 ||
        prism_http_query_int(req, "cursor", INT64_MAX, 0, INT64_MAX, &cursor) != 0)
        return;
    if (state && !one_of(state, gcs_pg_states, 4)) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "state must be PENDING, CREATED, RESCHEDULING or REMOVED");
        return;
    }
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "SELECT " PG_COLUMNS " FROM placement_groups WHERE seq < ?1 AND (?2 IS NULL OR "
               "state = ?2) AND (?3 IS NULL OR name = ?3) ORDER BY seq DESC LIMIT :limit");
    sqlite3_bind_int64(st, 1, cursor);
    gcs_db_bind_text(st, 2, state);
    gcs_db_bind_text(st, 3, name);
    json_t *list = json_array();
    json_t *next = gcs_db_page(st, "seq", limit, pg_row, NULL, list);
    pthread_mutex_unlock(&g->lock);
    prism_http_reply_json(req, 200,
                          json_pack("{s:o,s:o}", "placement_groups", list, "next_cursor", next));
}

void gcs_api_pg_get(prism_http_req *req, void *ctx)
{
    const char *id = prism_http_param(req, "id");
    json_t *doc = gcs_pg_json(ctx, id);
    if (!doc)
        prism_http_reply_error(req, 404, "not_found", "no placement group '%s'", id);
    else
        prism_http_reply_json(req, 200, doc);
}

void gcs_api_pg_remove(prism_http_req *req, void *ctx)
{
    const char *id = prism_http_param(req, "id");
    json_t *doc = gcs_pg_remove(ctx, id) == 0 ? gcs_pg_json(ctx, id) : NULL;
    if (!doc)
        prism_http_reply_error(req, 404, "not_found", "no placement group '%s'", id);
    else
        prism_http_reply_json(req, 200, doc);
}
