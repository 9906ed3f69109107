/* Tasks for curl users: POST /api/v1/tasks submits through a libprism client
 * the GCS holds, so the GCS owns the returned objects; GET
 * /api/v1/objects/{id} reads them. Such an object lives until DELETE, or
 * until --object-ttl-s after it was created. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs.h"
#include "prism_net.h"
#include "prism/prism.h"
#include "prism_time.h"

#define MAX_REST_OBJECTS 100000
#define MAX_ARGS 64
#define MAX_RETRIES 1000000

typedef struct rest_object {
    prism_ref *ref;
    int64_t created_ms;
    struct rest_object *next;
} rest_object;

struct gcs_tasks {
    pthread_mutex_t lock;
    prism_client *client;
    rest_object *objects;
    size_t count;
};

int gcs_tasks_create(gcs *g)
{
    g->tasks = calloc(1, sizeof *g->tasks);
    if (!g->tasks)
        return -1;
    pthread_mutex_init(&g->tasks->lock, NULL);
    return 0;
}

void gcs_tasks_destroy(gcs *g)
{
    if (!g->tasks)
        return;
    for (rest_object *o = g->tasks->objects, *next; o; o = next) {
        next = o->next;
        prism_ref_release(o->ref);
        free(o);
    }
    prism_disconnect(g->tasks->client);
    pthread_mutex_destroy(&g->tasks->lock);
    free(g->tasks);
}

/* The GCS's own client, connected on first use. Tasks lock held. */
static prism_client *client(gcs *g)
{
    if (!g->tasks->client) {
        char url[512], host[256];
        prism_local_host(g->cfg.host, host, sizeof host);
        snprintf(url, sizeof url, "%s://%s:%d", prism_http_server_scheme(g->http), host,
                 prism_http_server_port(g->http));
        prism_connect_options o = {.address = url, .token = g->cfg.token};
        if (prism_connect(&o, &g->tasks->client) != PRISM_OK)
            g->tasks->client = NULL;
        else
            gcs_object_list_set_own(g, prism_client_owner(g->tasks->client));
    }
    return g->tasks->client;
}

void gcs_tasks_cron(gcs *g)
{
    int64_t cutoff = prism_now_ms() - g->cfg.object_ttl_s * 1000;
    pthread_mutex_lock(&g->tasks->lock);
    for (rest_object **pp = &g->tasks->objects; *pp;) {
        rest_object *o = *pp;
        if (o->created_ms < cutoff) {
            *pp = o->next;
            prism_ref_release(o->ref);
            free(o);
            g->tasks->count--;
        } else {
            pp = &o->next;
        }
    }
    pthread_mutex_unlock(&g->tasks->lock);
}

static rest_object *find_locked(gcs *g, const char *id)
{
    for (rest_object *o = g->tasks->objects; o; o = o->next)
        if (!strcmp(prism_ref_id(o->ref), id))
            return o;
    return NULL;
}

/* A JSON argument: {"$ref": ID} names an object the GCS owns; anything else is a value. */
static prism_value *arg_value(gcs *g, json_t *a, char *err, size_t n)
{
    json_t *ref = json_object_get(a, "$ref");
    if (json_is_object(a) && json_object_size(a) == 1 && json_is_string(ref)) {
        rest_object *o = find_locked(g, json_string_value(ref));
        if (!o)
            snprintf(err, n, "no object '%s' (only objects made through this API can be passed)",
                     json_string_value(ref));
        return o ? prism_value_ref(o->ref) : NULL;
    }
    char *text = json_dumps(a, JSON_ENCODE_ANY | JSON_COMPACT);
    prism_value *v = text ? prism_value_json(text) : NULL;
    free(text);
    return v;
}

static int read_options(prism_http_req *req, json_t *o, prism_task_options *out, char **res)
{
    static const char *const strategies[] = {"DEFAULT", "SPREAD", "NODE_AFFINITY"};
    double num_returns = 1, retries = out->max_retries;
    const char *strategy = NULL, *node = NULL;
    json_t *resources = NULL;
    if (!o)
        return 0;
    if (prism_http_field_number(req, o, "num_returns", &num_returns) != 0 ||
        prism_http_field_number(req, o, "num_cpus", &out->num_cpus) != 0 ||
        prism_http_field_number(req, o, "num_gpus", &out->num_gpus) != 0 ||
        prism_http_field_number(req, o, "memory", &out->memory) != 0 ||
        prism_http_field_string(req, o, "strategy", false, &strategy) != 0 ||
        prism_http_field_string(req, o, "node_id", false, &node) != 0 ||
        prism_http_field_object(req, o, "resources", &resources) != 0)
        return -1;
    if (num_returns < 1 || num_returns > 64 || num_returns != (int)num_returns) {
        prism_http_reply_error(req, 400, "invalid_argument", "num_returns must be 1-64");
        return -1;
    }
    json_t *mr = json_object_get(o, "max_retries"); /* -1 too: not a field_number */
    if (mr)
        retries = json_is_number(mr) ? json_number_value(mr) : -2;
    if (retries < -1 || retries > MAX_RETRIES || retries != (int)retries) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "max_retries must be -1 (forever) to %d", MAX_RETRIES);
        return -1;
    }
    json_t *flag;
    for (size_t i = 0; i < 2; i++) {
        static const char *const flags[] = {"retry_exceptions", "soft"};
        if ((flag = json_object_get(o, flags[i])) && !json_is_boolean(flag)) {
            prism_http_reply_error(req, 400, "invalid_argument", "'%s' must be a boolean",
                                   flags[i]);
            return -1;
        }
    }
    out->num_returns = (int)num_returns;
    out->max_retries = (int)retries;
    out->retry_exceptions = json_is_true(json_object_get(o, "retry_exceptions"));
    out->soft = json_is_true(json_object_get(o, "soft"));
    out->node_id = node;
    for (int i = 0; strategy && i < 3; i++)
        if (!strcmp(strategy, strategies[i]))
            out->strategy = (prism_strategy)i, strategy = NULL;
    if (strategy) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "strategy must be DEFAULT, SPREAD or NODE_AFFINITY");
        return -1;
    }
    *res = resources ? json_dumps(resources, JSON_COMPACT) : NULL;
    return 0;
}

static json_t *submit_locked(gcs *g, prism_http_req *req, const char *pkg, const char *fn,
                             json_t *args, prism_task_options *o)
{
    prism_value *values[MAX_ARGS];
    size_t n = json_array_size(args);
    char err[512] = "";
    size_t made = 0;
    for (; made < n; made++)
        if (!(values[made] = arg_value(g, json_array_get(args, made), err, sizeof err)))
            break;
    prism_client *c = made == n ? client(g) : NULL;
    prism_ref *refs[64] = {0};
    prism_status s = c ? prism_submit(c, pkg, fn, values, n, o, refs) : PRISM_ERR_INVALID;
    for (size_t i = 0; i < made; i++)
        prism_value_free(values[i]);
    if (made < n) {
        prism_http_reply_error(req, 404, "not_found", "%s", err);
        return NULL;
    }
    if (!c || s != PRISM_OK) {
        prism_http_reply_error(req, c && s == PRISM_ERR_INVALID ? 400 : 503,
                               c && s == PRISM_ERR_INVALID ? "invalid_argument" : "unavailable",
                               "%s", prism_last_error());
        return NULL;
    }
    json_t *ids = json_array();
    for (int i = 0; i < o->num_returns; i++) {
        rest_object *ro = calloc(1, sizeof *ro);
        ro->ref = refs[i];
        ro->created_ms = prism_now_ms();
        ro->next = g->tasks->objects;
        g->tasks->objects = ro;
        g->tasks->count++;
        json_array_append_new(ids, json_string(prism_ref_id(refs[i])));
    }
    return ids;
}

void gcs_api_tasks_submit(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    json_t *body = prism_http_body_json(req), *args = NULL, *opts = NULL;
    const char *pkg = NULL, *fn = NULL;
    char *res = NULL;
    prism_task_options o = PRISM_TASK_OPTIONS_INIT;
    if (!body || prism_http_field_string(req, body, "package", true, &pkg) != 0 ||
        prism_http_field_string(req, body, "function", true, &fn) != 0 ||
        prism_http_field_object(req, body, "options", &opts) != 0 ||
        read_options(req, opts, &o, &res) != 0)
        goto out;
    args = json_object_get(body, "args");
    if (args && !json_is_array(args)) {
        prism_http_reply_error(req, 400, "invalid_argument", "field 'args' must be an array");
        goto out;
    }
    if (json_array_size(args) > MAX_ARGS) {
        prism_http_reply_error(req, 400, "invalid_argument", "at most %d arguments", MAX_ARGS);
        goto out;
    }
    o.resources = res;
    pthread_mutex_lock(&g->tasks->lock);
    json_t *ids = NULL;
    if (g->tasks->count + (size_t)o.num_returns > MAX_REST_OBJECTS)
        prism_http_reply_error(req, 429, "too_many_objects",
                               "%d objects are held: delete some (DELETE /api/v1/objects/{id})",
                               MAX_REST_OBJECTS);
    else
        ids = submit_locked(g, req, pkg, fn, args, &o);
    pthread_mutex_unlock(&g->tasks->lock);
    if (ids)
        prism_http_reply_json(req, 201, json_pack("{s:s,s:o}", "owner", "gcs", "object_ids", ids));
out:
    free(res);
    json_decref(body);
}

/* A bytes or tensor value as the API describes it (its bytes come with ?format=raw). */
static json_t *describe_info(const prism_value_info *in)
{
    if (in->kind == PRISM_VALUE_BYTES)
        return json_pack("{s:s,s:I}", "kind", "bytes", "size", (json_int_t)in->size);
    static const char *const dtypes[] = {"", "float32", "float64", "int32", "int64", "uint8"};
    json_t *shape = json_array();
    for (int i = 0; i < in->ndim; i++)
        json_array_append_new(shape, json_integer(in->shape[i]));
    return json_pack("{s:s,s:s,s:o,s:I}", "kind", "tensor", "dtype",
                     dtypes[in->dtype <= 5 ? in->dtype : 0], "shape", shape, "size",
                     (json_int_t)in->size);
}

/* The value as JSON for the API: JSON stays JSON; bytes and tensors are described. */
static json_t *describe(const prism_value *v)
{
    prism_value_info in = {.kind = prism_value_kind_of(v)};
    switch (in.kind) {
    case PRISM_VALUE_JSON: {
        json_t *j = json_loads(prism_value_json_text(v), JSON_DECODE_ANY, NULL);
        return json_pack("{s:s,s:o}", "kind", "json", "value", j ? j : json_null());
    }
    case PRISM_VALUE_TENSOR:
        in.dtype = prism_value_dtype(v);
        in.ndim = prism_value_ndim(v);
        memcpy(in.shape, prism_value_shape(v), (size_t)in.ndim * sizeof in.shape[0]);
        /* fall through */
    case PRISM_VALUE_BYTES: prism_value_data(v, &in.size); return describe_info(&in);
    case PRISM_VALUE_NULL: return json_pack("{s:s,s:n}", "kind", "json", "value");
    default: return json_pack("{s:s}", "kind", "other");
    }
}

/* A value larger than this, in a node's store, is described from its first
 * bytes rather than copied to the GCS to be described. */
#define DESCRIBE_WHOLE_MAX (64 << 10)

void gcs_api_object_get(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    const char *id = prism_http_param(req, "id");
    int64_t wait_ms;
    if (prism_http_query_int(req, "timeout_ms", 0, 0, 60000, &wait_ms) != 0)
        return;
    bool raw = prism_http_query(req, "format") && !strcmp(prism_http_query(req, "format"), "raw");
    pthread_mutex_lock(&g->tasks->lock);
    rest_object *o = find_locked(g, id);
    prism_ref *ref = o ? prism_ref_dup(o->ref) : NULL;
    prism_client *c = g->tasks->client;
    pthread_mutex_unlock(&g->tasks->lock);
    if (!ref) {
        prism_http_reply_error(req, 404, "not_found", "no object '%s' owned by the GCS", id);
        return;
    }
    prism_value *v = NULL;
    prism_value_info info = {0};
    prism_status s =
        raw ? prism_get(c, ref, (int)wait_ms, &v)
            : prism_get_or_describe(c, ref, (int)wait_ms, DESCRIBE_WHOLE_MAX, &v, &info);
    char reason[512] = "";
    if (s == PRISM_ERR_TIMEOUT)
        prism_pending_reason(c, ref, reason, sizeof reason);
    prism_ref_release(ref);
    if (s == PRISM_ERR_TIMEOUT) {
        prism_http_reply_json(req, 202,
                              json_pack("{s:s,s:s,s:s}", "object_id", id, "state", "PENDING",
                                        "reason", reason));
    } else if (s != PRISM_OK) {
        prism_http_reply_json(req, 200,
                              json_pack("{s:s,s:s,s:{s:s,s:s,s:s}}", "object_id", id, "state",
                                        "FAILED", "error", "code", prism_status_text(s), "task",
                                        prism_value_error_task(v) ?: "", "message",
                                        prism_value_error_message(v) ?: prism_last_error()));
    } else if (raw) {
        size_t len = 0;
        const void *data = prism_value_data(v, &len);
        const char *text = prism_value_json_text(v);
        prism_http_reply(req, 200, data ? "application/octet-stream" : "application/json",
                         data   ? data
                         : text ? text
                                : "null",
                         data ? len : strlen(text ? text : "null"));
    } else {
        prism_http_reply_json(req, 200,
                              json_pack("{s:s,s:s,s:o}", "object_id", id, "state", "READY", "value",
                                        v ? describe(v) : describe_info(&info)));
    }
    prism_value_free(v);
}

void gcs_api_object_delete(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    const char *id = prism_http_param(req, "id");
    pthread_mutex_lock(&g->tasks->lock);
    rest_object *gone = NULL;
    for (rest_object **pp = &g->tasks->objects; *pp; pp = &(*pp)->next) {
        if (!strcmp(prism_ref_id((*pp)->ref), id)) {
            gone = *pp;
            *pp = gone->next;
            g->tasks->count--;
            break;
        }
    }
    pthread_mutex_unlock(&g->tasks->lock);
    if (!gone) {
        prism_http_reply_error(req, 404, "not_found", "no object '%s' owned by the GCS", id);
        return;
    }
    prism_ref_release(gone->ref);
    free(gone);
    prism_http_reply_json(req, 200, json_pack("{s:b}", "deleted", 1));
}
