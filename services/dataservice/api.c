/* The dataservice's REST API (openapi/dataservice.yaml); the GCS forwards
 * /api/v1/datasets* to it (services/gcs/datasets_proxy.c). /healthz and
 * /metrics come with the server. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataservice.h"
#include "prism_time.h"

#define MAX_WAIT_MS 60000
#define WAIT_SLICE_MS 200

static void post_dataset(prism_http_req *req, void *ctx)
{
    dataservice *s = ctx;
    size_t len;
    const char *body = prism_http_body(req, &len);
    char id[DS_ID_LEN + 1], err[1200];
    const char *code = "internal";
    ds_stream_opts so;
    int64_t nsplits;
    if (prism_http_query_bool(req, "stream", false, &so.streamed) != 0 ||
        prism_http_query_int(req, "batch_size", 0, 0, INT32_MAX, &so.batch_size) != 0 ||
        prism_http_query_bool(req, "materialize", false, &so.materialize) != 0 ||
        prism_http_query_int(req, "split", 1, 1, DS_MAX_SPLITS, &nsplits) != 0 ||
        prism_http_query_bool(req, "equal", false, &so.equal) != 0 ||
        prism_http_query_int(req, "consumer_timeout_ms", DS_CONSUMER_TIMEOUT_MS, 1000, 86400000,
                             &so.timeout_ms) != 0)
        return;
    so.nsplits = (int)nsplits;
    if (!so.streamed && (nsplits > 1 || so.equal)) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "split and equal are for a streamed dataset (stream=true)");
        return;
    }
    int status = ds_dataset_create(s, body, len, &so, id, &code, err, sizeof err);
    if (status) {
        prism_http_reply_error(req, status, code, "%s", err);
        return;
    }
    pthread_mutex_lock(&s->lock);
    ds_dataset *d = ds_dataset_find(s, id);
    json_t *doc = d ? ds_dataset_json(s, d, false) : NULL;
    pthread_mutex_unlock(&s->lock);
    if (!doc)
        prism_http_reply_error(req, 500, "internal", "the dataset went away");
    else
        prism_http_reply_json(req, 201, doc);
}

static void list_datasets(prism_http_req *req, void *ctx)
{
    dataservice *s = ctx;
    json_t *list = json_array();
    pthread_mutex_lock(&s->lock);
    for (ds_dataset *d = s->datasets; list && d; d = d->next)
        json_array_append_new(list, ds_dataset_json(s, d, false));
    pthread_mutex_unlock(&s->lock);
    prism_http_reply_json(req, 200, json_pack("{s:o}", "datasets", list ? list : json_array()));
}

/* Looks the dataset up (replying 404 when unknown) and returns it with the
 * lock held, or NULL without it. */
static ds_dataset *lookup_locked(prism_http_req *req, dataservice *s)
{
    const char *id = prism_http_param(req, "id");
    pthread_mutex_lock(&s->lock);
    ds_dataset *d = ds_dataset_find(s, id);
    if (!d) {
        pthread_mutex_unlock(&s->lock);
        prism_http_reply_error(req, 404, "not_found", "no dataset '%s'", id);
    }
    return d;
}

static void get_dataset(prism_http_req *req, void *ctx)
{
    dataservice *s = ctx;
    ds_dataset *d = lookup_locked(req, s);
    if (!d)
        return;
    json_t *doc = ds_dataset_json(s, d, true);
    pthread_mutex_unlock(&s->lock);
    prism_http_reply_json(req, 200, doc);
}

static void stop_dataset(prism_http_req *req, void *ctx)
{
    dataservice *s = ctx;
    ds_dataset *d = lookup_locked(req, s);
    if (!d)
        return;
    if (ds_state_ended(d->state)) {
        const char *state = ds_state_name(d->state);
        ds_stream_clear(d); /* a streamed output's blocks go all the same */
        ds_dataset_drop_kept(d);
        for (int i = 0; i < d->stream.nsplits; i++)
            d->stream.splits[i].done = true;
        pthread_mutex_unlock(&s->lock);
        prism_http_reply_error(req, 409, "dataset_ended", "the dataset has ended (%s)", state);
        return;
    }
    d->stop = true;
    for (int i = 0; i < d->stream.nsplits; i++) /* its consumers are not waited for */
        d->stream.splits[i].done = true;
    json_t *doc = json_pack("{s:s,s:s,s:b}", "dataset_id", d->id, "state", ds_state_name(d->state),
                            "stopping", 1);
    pthread_mutex_unlock(&s->lock);
    prism_http_reply_json(req, 200, doc);
}

/* Waits (lock held) until `done(d)` or the deadline; the dataset may not go
 * away meanwhile: only ended datasets whose executor is joined are pruned,
 * and `done` holds once it ended. */
static void wait_until(prism_http_req *req, dataservice *s, ds_dataset *d,
                       bool (*done)(const ds_dataset *d, int64_t arg), int64_t arg,
                       int64_t timeout_ms)
{
    int64_t deadline = prism_mono_ms() + timeout_ms;
    while (!done(d, arg) && !prism_http_stopping(req)) {
        int64_t left = deadline - prism_mono_ms();
        if (left <= 0)
            break;
        if (left > WAIT_SLICE_MS)
            left = WAIT_SLICE_MS;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)(left % 1000) * 1000000L;
        ts.tv_sec += (time_t)(left / 1000) + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&s->changed, &s->lock, &ts);
    }
}

static bool ended(const ds_dataset *d, int64_t arg)
{
    (void)arg;
    return ds_state_ended(d->state);
}

static bool has_rows(const ds_dataset *d, int64_t limit)
{
    return ds_state_ended(d->state) || (int64_t)json_array_size(d->preview) >= limit;
}

static int wait_arg(prism_http_req *req, int64_t *timeout_ms)
{
    return prism_http_query_int(req, "timeout_ms", 30000, 0, MAX_WAIT_MS, timeout_ms);
}

static void get_count(prism_http_req *req, void *ctx)
{
    dataservice *s = ctx;
    int64_t timeout_ms;
    if (wait_arg(req, &timeout_ms) != 0)
        return;
    ds_dataset *d = lookup_locked(req, s);
    if (!d)
        return;
    wait_until(req, s, d, ended, 0, timeout_ms);
    if (d->state == DS_FAILED) {
        char *msg = strdup(d->error ? d->error : "failed");
        pthread_mutex_unlock(&s->lock);
        prism_http_reply_error(req, 409, "dataset_failed", "%s", msg ? msg : "failed");
        free(msg);
        return;
    }
    json_t *doc = json_pack("{s:s,s:s,s:I,s:b}", "dataset_id", d->id, "state",
                            ds_state_name(d->state), "count", (json_int_t)d->rows, "complete",
                            d->state == DS_FINISHED);
    pthread_mutex_unlock(&s->lock);
    prism_http_reply_json(req, 200, doc);
}

static void get_rows(prism_http_req *req, void *ctx)
{
    dataservice *s = ctx;
    int64_t timeout_ms, limit;
    if (prism_http_query_int(req, "limit", 20, 1, s->cfg.preview_rows, &limit) != 0 ||
        wait_arg(req, &timeout_ms) != 0)
        return;
    ds_dataset *d = lookup_locked(req, s);
    if (!d)
        return;
    wait_until(req, s, d, has_rows, limit, timeout_ms);
    if (d->state == DS_FAILED) {
        char *msg = strdup(d->error ? d->error : "failed");
        pthread_mutex_unlock(&s->lock);
        prism_http_reply_error(req, 409, "dataset_failed", "%s", msg ? msg : "failed");
        free(msg);
        return;
    }
    json_t *rows = json_array();
    size_t have = json_array_size(d->preview);
    for (size_t i = 0; rows && i < have && (int64_t)i < limit; i++)
        json_array_append(rows, json_array_get(d->preview, i));
    json_t *doc = json_pack("{s:s,s:s,s:o,s:b}", "dataset_id", d->id, "state",
                            ds_state_name(d->state), "rows", rows ? rows : json_array(), "complete",
                            (int64_t)have >= limit || d->state == DS_FINISHED);
    pthread_mutex_unlock(&s->lock);
    prism_http_reply_json(req, 200, doc);
}

/* ---------- streamed output ---------- */

static bool has_block(const ds_dataset *d, int64_t split)
{
    return ds_stream_ready(d, (int)split) || ds_state_ended(d->state) || d->lost;
}

/* The dataset (lock held) when it is streamed; else replies 409, unlocks
 * and returns NULL. */
static ds_dataset *streamed_locked(prism_http_req *req, dataservice *s)
{
    ds_dataset *d = lookup_locked(req, s);
    if (d && !d->streamed) {
        pthread_mutex_unlock(&s->lock);
        prism_http_reply_error(req, 409, "not_streamed",
                               "the dataset was not created with ?stream=true");
        return NULL;
    }
    return d;
}

static void next_block(prism_http_req *req, void *ctx)
{
    dataservice *s = ctx;
    int64_t timeout_ms, split;
    if (wait_arg(req, &timeout_ms) != 0 ||
        prism_http_query_int(req, "split", 0, 0, DS_MAX_SPLITS - 1, &split) != 0)
        return;
    prism_client *c = ds_client(s);
    if (!c) {
        prism_http_reply_error(req, 503, "unavailable", "cannot reach the cluster: %s",
                               prism_last_error());
        return;
    }
    ds_dataset *d = streamed_locked(req, s);
    if (!d)
        return;
    if (split >= d->stream.nsplits) {
        int n = d->stream.nsplits;
        pthread_mutex_unlock(&s->lock);
        prism_http_reply_error(req, 400, "invalid_argument",
                               "split %lld: the dataset has %d consumer%s (0 to %d)",
                               (long long)split, n, n == 1 ? "" : "s", n - 1);
        return;
    }
    ds_split *sp = &d->stream.splits[split];
    sp->waiting++; /* a consumer in a call is alive, however long it waits */
    wait_until(req, s, d, has_block, split, timeout_ms);
    sp->waiting--;
    if (d->state == DS_FAILED) {
        char *msg = strdup(d->error ? d->error : "failed");
        pthread_mutex_unlock(&s->lock);
        prism_http_reply_error(req, 409, "dataset_failed", "%s", msg ? msg : "failed");
        free(msg);
        return;
    }
    bool end = false;
    json_t *block = d->lost ? NULL
                            : ds_stream_next(d, prism_client_owner(c), (int)split,
                                             prism_http_query(req, "node"), &end);
    json_t *doc = json_pack("{s:s,s:s,s:o,s:b,s:b}", "dataset_id", d->id, "state",
                            ds_state_name(d->state), "block", block ? block : json_null(), "end",
                            end, "complete", end && d->state == DS_FINISHED);
    pthread_mutex_unlock(&s->lock);
    prism_http_reply_json(req, 200, doc);
}

static void release_block(prism_http_req *req, void *ctx)
{
    dataservice *s = ctx;
    int64_t seq;
    if (prism_http_query_int(req, "seq", -1, -1, INT64_MAX, &seq) != 0)
        return;
    ds_dataset *d = streamed_locked(req, s);
    if (!d)
        return;
    if (seq < 0) { /* after the lookup: an unknown dataset is a 404 first */
        pthread_mutex_unlock(&s->lock);
        prism_http_reply_error(req, 400, "invalid_argument",
                               "seq (the block's, from blocks/next) is required");
        return;
    }
    prism_ref *ref = ds_stream_release(d, seq);
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    if (!ref) {
        prism_http_reply_error(req, 404, "not_found", "no block %lld is lent", (long long)seq);
        return;
    }
    prism_ref_release(ref);
    prism_http_reply_json(req, 200, json_pack("{s:b}", "released", 1));
}

/* POST .../{id}/epochs: an epoch of a materialized dataset, streamed to
 * `split` consumers as any streamed dataset. */
static void post_epoch(prism_http_req *req, void *ctx)
{
    dataservice *s = ctx;
    char id[DS_ID_LEN + 1], err[1200];
    const char *code = "internal";
    ds_stream_opts so = {.streamed = true}; /* nothing is read: no batch_size */
    int64_t nsplits;
    if (prism_http_query_int(req, "split", 1, 1, DS_MAX_SPLITS, &nsplits) != 0 ||
        prism_http_query_bool(req, "equal", false, &so.equal) != 0 ||
        prism_http_query_int(req, "consumer_timeout_ms", DS_CONSUMER_TIMEOUT_MS, 1000, 86400000,
                             &so.timeout_ms) != 0)
        return;
    so.nsplits = (int)nsplits;
    int status = ds_dataset_epoch(s, prism_http_param(req, "id"), &so, id, &code, err, sizeof err);
    if (status) {
        prism_http_reply_error(req, status, code, "%s", err);
        return;
    }
    pthread_mutex_lock(&s->lock);
    ds_dataset *d = ds_dataset_find(s, id);
    json_t *doc = d ? ds_dataset_json(s, d, false) : NULL;
    pthread_mutex_unlock(&s->lock);
    if (!doc)
        prism_http_reply_error(req, 500, "internal", "the dataset went away");
    else
        prism_http_reply_json(req, 201, doc);
}

/* A plan is at most PRISM_PLAN_MAX_JSON bytes. */
const prism_http_route ds_routes[] = {
    {"POST", "/api/v1/datasets", post_dataset, PRISM_PLAN_MAX_JSON},
    {"GET", "/api/v1/datasets", list_datasets, 0},
    {"GET", "/api/v1/datasets/{id}", get_dataset, 0},
    {"POST", "/api/v1/datasets/{id}/stop", stop_dataset, 0},
    {"POST", "/api/v1/datasets/{id}/epochs", post_epoch, 0},
    {"GET", "/api/v1/datasets/{id}/rows", get_rows, 0},
    {"GET", "/api/v1/datasets/{id}/count", get_count, 0},
    {"POST", "/api/v1/datasets/{id}/blocks/next", next_block, 0},
    {"POST", "/api/v1/datasets/{id}/blocks/release", release_block, 0},
};
const size_t ds_nroutes = sizeof ds_routes / sizeof ds_routes[0];
