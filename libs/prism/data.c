/* Datasets from C (include/prism/data.h): the plan built with the plan
 * library (libs/data/prism_plan.h), run by the dataservice through the
 * GCS's REST API, and consumed there (count, take) or streamed here
 * (data_iter.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "data_internal.h"
#include "prism_internal.h"
#include "prism_time.h"

#define WAIT_SLICE_MS 30000 /* one long poll; the dataservice waits 60 s at most */

struct prism_dataset {
    prism_client *c;
    prism_plan *plan;
    char mat[PRISM_DATA_ID_SIZE]; /* materialized: the dataset holding its blocks; "" else */
};

/* ---------- REST ---------- */

int prism__data_rest(prism_httpc *h, const char *method, const char *path, const char *body,
                     int timeout_ms, long *status, json_t **doc, char *err, size_t n)
{
    prism_httpc_resp resp;
    *doc = NULL;
    if (prism_httpc_request(h, method, path, body ? "application/json" : NULL, body,
                            body ? strlen(body) : 0, timeout_ms, 0, &resp, err, n) != 0)
        return -1;
    *status = (long)resp.status;
    *doc = json_loadb(resp.body ? resp.body : "", resp.len, 0, NULL);
    prism_httpc_resp_free(&resp);
    return 0;
}

prism_status prism__data_answer(long status, json_t *doc, const char *what)
{
    const char *code = json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
    const char *msg = prism_httpc_error_message(doc, "no reason given");
    if (status >= 200 && status < 300)
        return PRISM_OK;
    if (code && !strcmp(code, "dataset_failed"))
        return prism__fail(PRISM_ERR_TASK, "%s", msg);
    if (status == 400 || status == 403)
        return prism__fail(PRISM_ERR_INVALID, "%s: %s", what, msg);
    if (status == 503)
        return prism__fail(PRISM_ERR_CONNECT, "%s: %s", what, msg);
    return prism__fail(PRISM_ERR_INTERNAL, "%s: HTTP %ld: %s", what, status, msg);
}

/* ---------- building ---------- */

static prism_status plan_failed(const prism_plan *p)
{
    const prism_plan_error *e = prism_plan_last_error(p);
    return prism__fail(PRISM_ERR_INVALID, "%s", e ? e->message : "out of memory");
}

void prism_data_read_options_init(prism_data_read_options *opts)
{
    *opts = (prism_data_read_options)PRISM_DATA_READ_OPTIONS_INIT;
}

void prism_data_map_options_init(prism_data_map_options *opts)
{
    *opts = (prism_data_map_options)PRISM_DATA_MAP_OPTIONS_INIT;
}

static prism_status new_dataset(prism_client *c, prism_dataset **out)
{
    *out = NULL;
    if (!c)
        return prism__fail(PRISM_ERR_INVALID, "no client");
    prism_dataset *ds = calloc(1, sizeof *ds);
    if (!ds || prism_plan_create(NULL, &ds->plan, NULL) != PRISM_PLAN_OK) {
        free(ds);
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    }
    ds->c = c;
    *out = ds;
    return PRISM_OK;
}

typedef prism_plan_status (*read_fn)(prism_plan *p, const char *const *paths,
                                     const prism_plan_read_options *opts);

static prism_status make_read(prism_client *c, read_fn fn, int64_t n, const char *const *paths,
                              const prism_data_read_options *opts, prism_dataset **out)
{
    prism_data_read_options d = PRISM_DATA_READ_OPTIONS_INIT;
    const prism_data_read_options *o = opts ? opts : &d;
    if (out)
        *out = NULL;
    if (!out || (fn && !paths) || !PRISM__RESERVED_ZERO(o))
        return prism__fail(PRISM_ERR_INVALID,
                           "a read needs its paths and options whose reserved words are zero");
    prism_plan_read_options ro;
    prism_plan_read_options_init(&ro);
    ro.override_num_blocks = o->override_num_blocks;
    ro.include_paths = o->include_paths;
    ro.file_extensions = o->file_extensions;
    ro.size[0] = o->size[0];
    ro.size[1] = o->size[1];
    ro.mode = o->mode;
    prism_dataset *ds;
    prism_status s = new_dataset(c, &ds);
    if (s != PRISM_OK)
        return s;
    prism_plan_status ps = fn ? fn(ds->plan, paths, &ro) : prism_plan_range(ds->plan, n, &ro);
    if (ps != PRISM_PLAN_OK) {
        s = plan_failed(ds->plan);
        prism_data_destroy(ds);
        return s;
    }
    *out = ds;
    return PRISM_OK;
}

prism_status prism_data_read_images(prism_client *c, const char *const *paths,
                                    const prism_data_read_options *opts, prism_dataset **out)
{
    return make_read(c, prism_plan_read_images, 0, paths, opts, out);
}

prism_status prism_data_read_binary_files(prism_client *c, const char *const *paths,
                                          const prism_data_read_options *opts, prism_dataset **out)
{
    return make_read(c, prism_plan_read_binary_files, 0, paths, opts, out);
}

prism_status prism_data_read_text(prism_client *c, const char *const *paths,
                                  const prism_data_read_options *opts, prism_dataset **out)
{
    return make_read(c, prism_plan_read_text, 0, paths, opts, out);
}

prism_status prism_data_read_jsonl(prism_client *c, const char *const *paths,
                                   const prism_data_read_options *opts, prism_dataset **out)
{
    return make_read(c, prism_plan_read_jsonl, 0, paths, opts, out);
}

prism_status prism_data_read_csv(prism_client *c, const char *const *paths,
                                 const prism_data_read_options *opts, prism_dataset **out)
{
    return make_read(c, prism_plan_read_csv, 0, paths, opts, out);
}

prism_status prism_data_range(prism_client *c, int64_t n, const prism_data_read_options *opts,
                              prism_dataset **out)
{
    return make_read(c, NULL, n, NULL, opts, out);
}

prism_status prism_data_from_json(prism_client *c, const char *plan_json, prism_dataset **out)
{
    prism_plan_error e = {0};
    if (!out || !c || !plan_json)
        return prism__fail(PRISM_ERR_INVALID, "a plan needs a client and its JSON");
    *out = NULL;
    prism_dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    if (prism_plan_from_json(plan_json, strlen(plan_json), &ds->plan, &e) != PRISM_PLAN_OK) {
        free(ds);
        return prism__fail(PRISM_ERR_INVALID, "%s", e.message);
    }
    ds->c = c;
    *out = ds;
    return PRISM_OK;
}

void prism_data_destroy(prism_dataset *ds)
{
    if (!ds)
        return;
    if (*ds->mat) { /* its blocks go: stopping an ended dataset drops what it keeps */
        prism_httpc *h = prism__http_take(ds->c);
        if (h) {
            char path[128], err[256];
            long status;
            json_t *doc = NULL;
            snprintf(path, sizeof path, "/api/v1/datasets/%s/stop", ds->mat);
            (void)prism__data_rest(h, "POST", path, NULL, 10000, &status, &doc, err, sizeof err);
            json_decref(doc);
            prism__http_give(ds->c, h);
        }
    }
    prism_plan_destroy(ds->plan);
    free(ds);
}

/* A materialized dataset is consumed, not built on. */
static prism_status frozen(const prism_dataset *ds)
{
    return prism__fail(PRISM_ERR_INVALID,
                       "dataset %s is materialized: it is iterated, split, counted or taken; "
                       "transform it before materialize",
                       ds->mat);
}

typedef prism_plan_status (*map_fn)(prism_plan *p, const char *package, const char *function,
                                    const prism_plan_map_options *opts);

static prism_status add_map(prism_dataset *ds, map_fn fn, const char *package, const char *function,
                            const prism_data_map_options *opts)
{
    prism_data_map_options d = PRISM_DATA_MAP_OPTIONS_INIT;
    const prism_data_map_options *o = opts ? opts : &d;
    if (!ds || !PRISM__RESERVED_ZERO(o))
        return prism__fail(PRISM_ERR_INVALID, "no dataset, or options with reserved words set");
    if (*ds->mat)
        return frozen(ds);
    prism_plan_map_options mo;
    prism_plan_map_options_init(&mo);
    mo.args = o->args;
    mo.batch_size = o->batch_size;
    mo.num_cpus = o->num_cpus;
    mo.num_gpus = o->num_gpus;
    mo.resources = o->resources;
    mo.concurrency = o->concurrency;
    return fn(ds->plan, package, function, &mo) == PRISM_PLAN_OK ? PRISM_OK : plan_failed(ds->plan);
}

prism_status prism_data_map_batches(prism_dataset *ds, const char *package, const char *function,
                                    const prism_data_map_options *opts)
{
    return add_map(ds, prism_plan_map_batches, package, function, opts);
}

prism_status prism_data_map(prism_dataset *ds, const char *package, const char *function,
                            const prism_data_map_options *opts)
{
    return add_map(ds, prism_plan_map, package, function, opts);
}

prism_status prism_data_filter(prism_dataset *ds, const char *package, const char *function,
                               const prism_data_map_options *opts)
{
    return add_map(ds, prism_plan_filter, package, function, opts);
}

prism_status prism_data_select_columns(prism_dataset *ds, const char *const *columns)
{
    if (!ds)
        return prism__fail(PRISM_ERR_INVALID, "no dataset");
    if (*ds->mat)
        return frozen(ds);
    return prism_plan_select_columns(ds->plan, columns) == PRISM_PLAN_OK ? PRISM_OK
                                                                         : plan_failed(ds->plan);
}

prism_status prism_data_drop_columns(prism_dataset *ds, const char *const *columns)
{
    if (!ds)
        return prism__fail(PRISM_ERR_INVALID, "no dataset");
    if (*ds->mat)
        return frozen(ds);
    return prism_plan_drop_columns(ds->plan, columns) == PRISM_PLAN_OK ? PRISM_OK
                                                                       : plan_failed(ds->plan);
}

prism_status prism_data_limit(prism_dataset *ds, int64_t n)
{
    if (!ds)
        return prism__fail(PRISM_ERR_INVALID, "no dataset");
    if (*ds->mat)
        return frozen(ds);
    return prism_plan_limit(ds->plan, n) == PRISM_PLAN_OK ? PRISM_OK : plan_failed(ds->plan);
}

prism_status prism_data_append_json(prism_dataset *ds, const char *op_json)
{
    if (!ds || !op_json)
        return prism__fail(PRISM_ERR_INVALID, "no dataset or operator");
    if (*ds->mat)
        return frozen(ds);
    return prism_plan_append_json(ds->plan, op_json) == PRISM_PLAN_OK ? PRISM_OK
                                                                      : plan_failed(ds->plan);
}

/* Appends `op` (taken), an operator as JSON. */
static prism_status append_op(prism_dataset *ds, json_t *op)
{
    if (!ds || !op) {
        json_decref(op);
        return prism__fail(ds ? PRISM_ERR_NO_MEMORY : PRISM_ERR_INVALID,
                           ds ? "out of memory" : "no dataset");
    }
    char *text = json_dumps(op, JSON_COMPACT);
    json_decref(op);
    prism_status s = text ? prism_data_append_json(ds, text)
                          : prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    free(text);
    return s;
}

static json_t *seed_json(int64_t seed) { return seed >= 0 ? json_integer(seed) : json_null(); }

static json_t *names_json(const char *const *names)
{
    json_t *list = json_array();
    for (size_t i = 0; list && names && names[i]; i++)
        if (json_array_append_new(list, json_string(names[i])) < 0) {
            json_decref(list);
            return NULL;
        }
    return list;
}

prism_status prism_data_random_shuffle(prism_dataset *ds, int64_t seed)
{
    return append_op(ds, json_pack("{ssso}", "op", "random_shuffle", "seed", seed_json(seed)));
}

prism_status prism_data_randomize_block_order(prism_dataset *ds, int64_t seed)
{
    return append_op(ds,
                     json_pack("{ssso}", "op", "randomize_block_order", "seed", seed_json(seed)));
}

prism_status prism_data_repartition(prism_dataset *ds, int64_t num_blocks, bool shuffle)
{
    return append_op(ds, json_pack("{sssIsb}", "op", "repartition", "num_blocks",
                                   (json_int_t)num_blocks, "shuffle", shuffle));
}

prism_status prism_data_sort(prism_dataset *ds, const char *const *key, bool descending)
{
    return append_op(ds, json_pack("{sssosb}", "op", "sort", "key", names_json(key), "descending",
                                   descending));
}

prism_status prism_data_map_groups(prism_dataset *ds, const char *const *key, const char *package,
                                   const char *function, const char *args_json)
{
    json_t *args = args_json ? json_loads(args_json, 0, NULL) : json_object();
    if (!args)
        return prism__fail(PRISM_ERR_INVALID, "map_groups: the arguments are not JSON");
    return append_op(ds, json_pack("{sssos{ssssso}}", "op", "map_groups", "key", names_json(key),
                                   "fn", "package", package ? package : "", "function",
                                   function ? function : "", "args", args));
}

prism_status prism_data_unique(prism_dataset *ds, const char *column)
{
    return append_op(ds, json_pack("{ssss}", "op", "unique", "column", column ? column : ""));
}

prism_status prism_data_groupby_aggregate(prism_dataset *ds, const char *const *key,
                                          const prism_data_agg *aggs, size_t naggs)
{
    json_t *list = json_array();
    for (size_t i = 0; list && aggs && i < naggs; i++) {
        json_t *a = aggs[i].on
                        ? json_pack("{ssss}", "fn", aggs[i].fn ? aggs[i].fn : "", "on", aggs[i].on)
                        : json_pack("{ss}", "fn", aggs[i].fn ? aggs[i].fn : "");
        if (json_array_append_new(list, a) < 0) {
            json_decref(list);
            list = NULL;
        }
    }
    return append_op(ds,
                     json_pack("{sssoso}", "op", "groupby", "key", names_json(key), "aggs", list));
}

/* Another dataset as union and zip take it: {"ops": [...]} (NULL, having
 * failed, when it cannot be). */
static json_t *other_json(const prism_dataset *o)
{
    if (!o) {
        prism__fail(PRISM_ERR_INVALID, "no dataset");
        return NULL;
    }
    if (*o->mat) {
        frozen(o);
        return NULL;
    }
    json_t *plan = prism_plan_to_json_value(o->plan, NULL);
    if (!plan) {
        plan_failed(o->plan);
        return NULL;
    }
    json_t *d = json_pack("{sO}", "ops", json_object_get(plan, "ops"));
    json_decref(plan);
    if (!d)
        prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    return d;
}

prism_status prism_data_union(prism_dataset *ds, const prism_dataset *const *others, size_t n)
{
    json_t *list = json_array();
    for (size_t i = 0; list && others && i < n; i++) {
        json_t *d = other_json(others[i]);
        if (!d) {
            json_decref(list);
            return prism_last_status();
        }
        if (json_array_append_new(list, d) < 0) {
            json_decref(list);
            list = NULL;
        }
    }
    return append_op(ds, list ? json_pack("{ssso}", "op", "union", "other", list) : NULL);
}

prism_status prism_data_zip(prism_dataset *ds, const prism_dataset *other)
{
    json_t *d = other_json(other);
    if (!d)
        return prism_last_status();
    return append_op(ds, json_pack("{ssso}", "op", "zip", "other", d));
}

void prism_data_options_init(prism_data_options *opts)
{
    *opts = (prism_data_options)PRISM_DATA_OPTIONS_INIT;
}

prism_status prism_data_set_options(prism_dataset *ds, const prism_data_options *opts)
{
    if (!ds || !opts || !PRISM__RESERVED_ZERO(opts))
        return prism__fail(PRISM_ERR_INVALID, "no dataset, or options with reserved words set");
    if (*ds->mat)
        return frozen(ds);
    prism_plan_options po;
    prism_plan_options_init(&po);
    po.memory_budget_bytes = opts->memory_budget_bytes;
    po.preserve_order = opts->preserve_order;
    po.use_push_based_shuffle = opts->use_push_based_shuffle;
    if (opts->target_max_block_size)
        po.target_max_block_size = opts->target_max_block_size;
    return prism_plan_set_options(ds->plan, &po) == PRISM_PLAN_OK ? PRISM_OK
                                                                  : plan_failed(ds->plan);
}

char *prism_data_plan_json(const prism_dataset *ds)
{
    return ds ? prism_plan_to_json(ds->plan, NULL) : NULL;
}

/* ---------- running ---------- */

/* The plan's text with `op` (JSON, taken; NULL: none) appended, or NULL
 * having failed. */
static char *plan_text(const prism_dataset *ds, json_t *op)
{
    if (!op)
        return prism_plan_to_json(ds->plan, NULL);
    json_t *plan = prism_plan_to_json_value(ds->plan, NULL);
    if (!plan) {
        json_decref(op);
        plan_failed(ds->plan);
        return NULL;
    }
    char *text = NULL;
    if (json_array_append_new(json_object_get(plan, "ops"), op) == 0)
        text = json_dumps(plan, JSON_COMPACT);
    json_decref(plan);
    if (!text)
        prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    return text;
}

/* Posts the plan, `op` (taken, may be NULL) appended. */
static prism_status start(prism_dataset *ds, json_t *op, const char *query, prism_httpc **h,
                          char *id, size_t idlen)
{
    char err[512];
    *h = NULL;
    if (!ds) {
        json_decref(op);
        return prism__fail(PRISM_ERR_INVALID, "no dataset");
    }
    char path[256];
    if (*ds->mat && op) {
        json_decref(op);
        return frozen(ds);
    }
    if (*ds->mat && !query) { /* count, take: what it keeps */
        if (!(*h = prism__http_take(ds->c)))
            return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
        snprintf(id, idlen, "%s", ds->mat);
        return PRISM_OK;
    }
    /* a materialized dataset streams an epoch of its blocks; else the plan runs */
    char *plan = *ds->mat ? strdup("") : plan_text(ds, op);
    if (!plan)
        return op ? prism_last_status() : plan_failed(ds->plan);
    long status = 0;
    json_t *doc = NULL;
    prism_status s = PRISM_OK;
    if (*ds->mat)
        snprintf(path, sizeof path, "/api/v1/datasets/%s/epochs%s", ds->mat, query);
    else
        snprintf(path, sizeof path, "/api/v1/datasets%s", query ? query : "");
    if (!(*h = prism__http_take(ds->c)))
        s = prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    else if (prism__data_rest(*h, "POST", path, plan, 30000, &status, &doc, err, sizeof err) != 0)
        s = prism__fail(PRISM_ERR_CONNECT, "cannot reach the cluster: %s", err);
    else if ((s = prism__data_answer(status, doc, "the plan was refused")) == PRISM_OK) {
        const char *did = json_string_value(json_object_get(doc, "dataset_id"));
        if (!did || strlen(did) >= idlen)
            s = prism__fail(PRISM_ERR_INTERNAL, "the dataservice answered without an ID");
        else
            snprintf(id, idlen, "%s", did);
    }
    json_decref(doc);
    free(plan);
    if (s != PRISM_OK) {
        prism__http_give(ds->c, *h);
        *h = NULL;
    }
    return s;
}

prism_status prism__data_start(prism_dataset *ds, bool stream, prism_httpc **h, char *id,
                               size_t idlen)
{
    return start(ds, NULL, stream ? "?stream=true" : NULL, h, id, idlen);
}

prism_status prism__data_start_batches(prism_dataset *ds, int64_t batch_size, prism_httpc **h,
                                       char *id, size_t idlen)
{
    char query[64];
    snprintf(query, sizeof query, "?stream=true&batch_size=%lld", (long long)batch_size);
    /* an epoch of a materialized dataset reads nothing: no hint */
    return start(ds, NULL, ds && *ds->mat ? "?stream=true" : query, h, id, idlen);
}

bool prism__data_in_order(const prism_dataset *ds)
{
    return ds && json_is_true(json_object_get(prism_plan_options_json(ds->plan), "preserve_order"));
}

prism_status prism_data_streaming_split(prism_dataset *ds, int n, bool equal,
                                        int consumer_timeout_ms, char *id, size_t idlen)
{
    char query[160];
    prism_httpc *h;
    if (n < 1 || n > 1024 || consumer_timeout_ms < 0 || !id || idlen < PRISM_DATA_ID_SIZE)
        return prism__fail(PRISM_ERR_INVALID,
                           "streaming_split needs 1 to 1024 consumers, a timeout >= 0 and room "
                           "for the ID (PRISM_DATA_ID_SIZE)");
    int len = snprintf(query, sizeof query, "?stream=true&split=%d&equal=%s", n,
                       equal ? "true" : "false");
    if (consumer_timeout_ms)
        snprintf(query + len, sizeof query - (size_t)len, "&consumer_timeout_ms=%d",
                 consumer_timeout_ms);
    prism_status s = start(ds, NULL, query, &h, id, idlen);
    prism__http_give(ds->c, h);
    return s;
}

/* GET /api/v1/datasets/ID/`what` (a route and the start of its query)
 * until its answer is complete or the deadline (< 0: none). */
static prism_status poll(prism_httpc *h, const char *id, const char *what, int timeout_ms,
                         json_t **out)
{
    int64_t deadline = timeout_ms < 0 ? -1 : prism_mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline < 0 ? WAIT_SLICE_MS : deadline - prism_mono_ms();
        if (left < 0)
            left = 0;
        if (left > WAIT_SLICE_MS)
            left = WAIT_SLICE_MS;
        char path[256], err[512];
        long status = 0;
        json_t *doc = NULL;
        snprintf(path, sizeof path, "/api/v1/datasets/%s/%stimeout_ms=%lld", id, what,
                 (long long)left);
        if (prism__data_rest(h, "GET", path, NULL, (int)left + 15000, &status, &doc, err,
                             sizeof err) != 0)
            return prism__fail(PRISM_ERR_CONNECT, "cannot reach the cluster: %s", err);
        prism_status s = prism__data_answer(status, doc, "the dataset");
        if (s != PRISM_OK || json_is_true(json_object_get(doc, "complete")) ||
            (deadline >= 0 && prism_mono_ms() >= deadline)) {
            *out = doc;
            return s;
        }
        json_decref(doc);
    }
}

prism_status prism_data_materialize(prism_dataset *ds, int timeout_ms, prism_dataset **out)
{
    prism_httpc *h;
    char id[64];
    json_t *doc = NULL;
    if (!out)
        return prism__fail(PRISM_ERR_INVALID, "materialize needs a place for the dataset");
    *out = NULL;
    if (ds && *ds->mat)
        return prism__fail(PRISM_ERR_INVALID, "the dataset is materialized already");
    prism_status s = start(ds, NULL, "?materialize=true", &h, id, sizeof id);
    if (s == PRISM_OK)
        s = poll(h, id, "count?", timeout_ms, &doc);
    if (s == PRISM_OK && !json_is_true(json_object_get(doc, "complete")))
        s = prism__fail(PRISM_ERR_TIMEOUT, "the dataset did not end in %d ms", timeout_ms);
    json_decref(doc);
    prism__http_give(ds->c, h);
    char *plan = s == PRISM_OK ? prism_plan_to_json(ds->plan, NULL) : NULL;
    prism_dataset *m = NULL;
    if (s == PRISM_OK && (s = new_dataset(ds->c, &m)) == PRISM_OK) {
        prism_plan_destroy(m->plan);
        m->plan = NULL;
        if (!plan || prism_plan_from_json(plan, strlen(plan), &m->plan, NULL) != PRISM_PLAN_OK)
            s = prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
        snprintf(m->mat, sizeof m->mat, "%s", id); /* destroying m drops the blocks */
        if (s != PRISM_OK) {
            prism_data_destroy(m);
            m = NULL;
        }
    }
    free(plan);
    *out = m;
    return s;
}

prism_status prism_data_count(prism_dataset *ds, int timeout_ms, int64_t *out)
{
    prism_httpc *h;
    char id[64];
    json_t *doc = NULL;
    prism_status s = prism__data_start(ds, false, &h, id, sizeof id);
    if (s == PRISM_OK)
        s = poll(h, id, "count?", timeout_ms, &doc);
    if (s == PRISM_OK && !json_is_true(json_object_get(doc, "complete")))
        s = prism__fail(PRISM_ERR_TIMEOUT, "the dataset did not end in %d ms", timeout_ms);
    if (s == PRISM_OK && out)
        *out = json_integer_value(json_object_get(doc, "count"));
    json_decref(doc);
    prism__http_give(ds->c, h);
    return s;
}

prism_status prism_data_take(prism_dataset *ds, int64_t n, int timeout_ms, char **out)
{
    prism_httpc *h;
    char id[64], what[64];
    json_t *doc = NULL;
    if (!out || n < 1)
        return prism__fail(PRISM_ERR_INVALID, "take needs n >= 1 and a place for the rows");
    *out = NULL;
    snprintf(what, sizeof what, "rows?limit=%lld&", (long long)n);
    prism_status s = prism__data_start(ds, false, &h, id, sizeof id);
    if (s == PRISM_OK)
        s = poll(h, id, what, timeout_ms, &doc);
    if (s == PRISM_OK && !json_is_true(json_object_get(doc, "complete")))
        s = prism__fail(PRISM_ERR_TIMEOUT, "the rows did not come in %d ms", timeout_ms);
    if (s == PRISM_OK && !(*out = json_dumps(json_object_get(doc, "rows"), JSON_COMPACT)))
        s = prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    json_decref(doc);
    prism__http_give(ds->c, h);
    return s;
}

/* Runs the plan ending with `op` (taken) and waits for its end. */
static prism_status write_to(prism_dataset *ds, json_t *op, int timeout_ms, int64_t *rows,
                             int64_t *files)
{
    prism_httpc *h;
    char id[64];
    json_t *doc = NULL;
    if (!op)
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    prism_status s = start(ds, op, NULL, &h, id, sizeof id);
    if (s == PRISM_OK)
        s = poll(h, id, "count?", timeout_ms, &doc);
    if (s == PRISM_OK && !json_is_true(json_object_get(doc, "complete")))
        s = prism__fail(PRISM_ERR_TIMEOUT, "the dataset did not end in %d ms", timeout_ms);
    if (s == PRISM_OK && rows)
        *rows = json_integer_value(json_object_get(doc, "count"));
    json_decref(doc);
    if (s == PRISM_OK && files) {
        /* the count's answer says nothing of files: the dataset does */
        char path[128], err[512];
        long status = 0;
        snprintf(path, sizeof path, "/api/v1/datasets/%s", id);
        if (prism__data_rest(h, "GET", path, NULL, 30000, &status, &doc, err, sizeof err) != 0)
            s = prism__fail(PRISM_ERR_CONNECT, "cannot reach the cluster: %s", err);
        else if ((s = prism__data_answer(status, doc, "the dataset")) == PRISM_OK)
            *files = json_integer_value(json_object_get(json_object_get(doc, "written"), "files"));
        json_decref(doc);
    }
    prism__http_give(ds->c, h);
    return s;
}

prism_status prism_data_write_jsonl(prism_dataset *ds, const char *path, int timeout_ms,
                                    int64_t *rows, int64_t *files)
{
    if (!path)
        return prism__fail(PRISM_ERR_INVALID, "write_jsonl needs a path");
    return write_to(ds, json_pack("{s:s,s:s}", "op", "write_jsonl", "path", path), timeout_ms, rows,
                    files);
}

prism_status prism_data_write_csv(prism_dataset *ds, const char *path, int timeout_ms,
                                  int64_t *rows, int64_t *files)
{
    if (!path)
        return prism__fail(PRISM_ERR_INVALID, "write_csv needs a path");
    return write_to(ds, json_pack("{s:s,s:s}", "op", "write_csv", "path", path), timeout_ms, rows,
                    files);
}

prism_client *prism__data_client(const prism_dataset *ds) { return ds->c; }
