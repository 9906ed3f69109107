/* The actors REST API (/api/v1/actors; openapi/gcs.yaml). */
#include <stdint.h>
#include <string.h>

#include "actors.h"
#include "db.h"

static bool valid_state(const char *s)
{
    for (int i = 0; s && i < 4; i++)
        if (!strcmp(s, gcs_actor_states[i]))
            return true;
    return !s;
}

/* Lock held. */
static json_t *actor_list_row(sqlite3_stmt *st, void *ud)
{
    json_t *a = gcs_actor_row_json(st);
    if (a)
        gcs_actor_add_calls_locked(ud, a);
    return a;
}

void gcs_api_actors_list(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    int64_t limit, cursor;
    const char *state = prism_http_query(req, "state"), *name = prism_http_query(req, "name");
    const char *ns = prism_http_query(req, "namespace"), *cls = prism_http_query(req, "class");
    if (prism_http_query_int(req, "limit", 100, 1, 1000, &limit) != 0 ||
        prism_http_query_int(req, "cursor", INT64_MAX, 0, INT64_MAX, &cursor) != 0)
        return;
    if (!valid_state(state)) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "state must be PENDING_CREATION, ALIVE, RESTARTING or DEAD");
        return;
    }
    pthread_mutex_lock(&g->lock);
    sqlite3_stmt *st = gcs_db_prepare(
        g->db, "SELECT " ACTOR_COLUMNS " FROM actors WHERE seq < ?1 AND (?2 IS NULL OR state = ?2)"
               " AND (?3 IS NULL OR name = ?3) AND (?4 IS NULL OR namespace = ?4)"
               " AND (?5 IS NULL OR class = ?5) ORDER BY seq DESC LIMIT :limit");
    sqlite3_bind_int64(st, 1, cursor);
    gcs_db_bind_text(st, 2, state);
    gcs_db_bind_text(st, 3, name);
    gcs_db_bind_text(st, 4, ns);
    gcs_db_bind_text(st, 5, cls);
    json_t *list = json_array();
    json_t *next = gcs_db_page(st, "seq", limit, actor_list_row, g, list);
    pthread_mutex_unlock(&g->lock);
    prism_http_reply_json(req, 200, json_pack("{s:o,s:o}", "actors", list, "next_cursor", next));
}

void gcs_api_actor_get(prism_http_req *req, void *ctx)
{
    const char *id = prism_http_param(req, "id");
    json_t *a = gcs_actor_json(ctx, id);
    if (!a) {
        prism_http_reply_error(req, 404, "not_found", "no actor '%s'", id);
        return;
    }
    prism_http_reply_json(req, 200, a);
}

void gcs_api_actor_kill(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    const char *id = prism_http_param(req, "id");
    json_t *a = gcs_actor_json(g, id);
    if (!a) {
        prism_http_reply_error(req, 404, "not_found", "no actor '%s'", id);
        return;
    }
    json_decref(a);
    size_t len = 0;
    prism_http_body(req, &len);
    json_t *body = len ? prism_http_body_json(req) : json_object();
    if (!body)
        return;
    json_t *v = json_object_get(body, "no_restart");
    if (v && !json_is_boolean(v)) {
        prism_http_reply_error(req, 400, "invalid_argument", "'no_restart' must be true or false");
        json_decref(body);
        return;
    }
    bool no_restart = !v || json_is_true(v); /* as Ray's ray.kill: for good unless asked */
    json_decref(body);
    if (!gcs_actor_kill(g, id, no_restart)) {
        prism_http_reply_error(req, 404, "not_found", "no actor '%s'", id);
        return;
    }
    a = gcs_actor_json(g, id);
    if (!a)
        prism_http_reply_error(req, 404, "not_found", "actor '%s' was pruned meanwhile", id);
    else
        prism_http_reply_json(req, 200, a);
}
