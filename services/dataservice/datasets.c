/* The table of datasets: creation (the plan checked, optimized and
 * explained), their states, their JSON, and the cron that starts and joins
 * their executors. In memory only: a restarted service knows no datasets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataservice.h"
#include "prism_log.h"
#include "prism_time.h"

static const char *const state_names[] = {"PENDING", "RUNNING", "FINISHED", "FAILED", "STOPPED"};

const char *ds_state_name(ds_state s) { return state_names[s]; }

bool ds_state_ended(ds_state s) { return s == DS_FINISHED || s == DS_FAILED || s == DS_STOPPED; }

static void dataset_free(ds_dataset *d)
{
    ds_stream_clear(d);
    ds_dataset_drop_kept(d);
    free(d->stream.splits);
    free(d->lost);
    prism_physical_plan_destroy(d->physical);
    prism_plan_destroy(d->plan);
    json_decref(d->plan_json);
    json_decref(d->physical_json);
    json_decref(d->explain_json);
    json_decref(d->preview);
    free(d->explain);
    free(d->error);
    free(d->name);
    free(d->stages);
    free(d);
}

/* Forgets the oldest dataset that ended, to make room. Lock held. */
static bool prune_one(dataservice *s)
{
    ds_dataset **oldest = NULL;
    for (ds_dataset **pp = &s->datasets; *pp; pp = &(*pp)->next)
        if (ds_state_ended((*pp)->state) && !(*pp)->thread_running)
            oldest = pp;
    if (!oldest)
        return false;
    ds_dataset *d = *oldest;
    *oldest = d->next;
    s->count--;
    dataset_free(d);
    return true;
}

/* The plan, optimized and explained, as a new dataset (not yet in the table). */
static ds_dataset *prepare(dataservice *s, prism_plan *plan, const char **code, char *err, size_t n)
{
    ds_dataset *d = calloc(1, sizeof *d);
    prism_plan_error pe = {0};
    if (!d) {
        prism_plan_destroy(plan);
        return NULL;
    }
    d->svc = s;
    d->plan = plan;
    prism_id id;
    prism_id_random(&id);
    prism_id_to_hex(&id, d->id);
    d->name = prism_plan_name(plan) ? strdup(prism_plan_name(plan)) : NULL;
    if (prism_plan_optimize(plan, &d->physical, &pe) != PRISM_PLAN_OK ||
        !(d->plan_json = prism_plan_to_json_value(plan, &pe)) ||
        !(d->explain = prism_plan_explain(plan, &pe)) ||
        !(d->explain_json = prism_plan_explain_json(plan, &pe)) ||
        !(d->physical_json = prism_physical_plan_to_json(d->physical)) ||
        !(d->preview = json_array())) {
        *code = pe.status == PRISM_PLAN_OK ? "internal" : prism_plan_status_code(pe.status);
        snprintf(err, n, "%s", *pe.message ? pe.message : "out of memory");
        dataset_free(d);
        return NULL;
    }
    d->nstages = prism_physical_plan_num_stages(d->physical);
    d->stages = calloc(d->nstages ? d->nstages : 1, sizeof *d->stages);
    for (size_t i = 0; d->stages && i < d->nstages; i++) {
        prism_plan_stage st;
        prism_physical_plan_stage(d->physical, i, &st);
        d->stages[i].op = prism_physical_plan_op(d->physical, i, st.num_ops - 1, NULL, NULL, NULL);
    }
    const json_t *budget = json_object_get(prism_plan_options_json(plan), "memory_budget_bytes");
    d->plan_budget = json_is_integer(budget) ? json_integer_value(budget) : 0;
    d->created_ms = prism_now_ms();
    if (!d->stages) {
        *code = "internal";
        snprintf(err, n, "out of memory");
        dataset_free(d);
        return NULL;
    }
    return d;
}

static int insert(dataservice *s, ds_dataset *d, const ds_stream_opts *so, char *id_out,
                  const char **code, char *err, size_t errlen);
static void start_pending(dataservice *s);

int ds_dataset_create(dataservice *s, const char *plan_text, size_t len, const ds_stream_opts *so,
                      char *id_out, const char **code, char *err, size_t errlen)
{
    prism_plan *plan = NULL;
    prism_plan_error pe = {0};
    if (prism_plan_from_json(plan_text, len, &plan, &pe) != PRISM_PLAN_OK) {
        *code = prism_plan_status_code(pe.status);
        snprintf(err, errlen, "%s", pe.message);
        return pe.status == PRISM_PLAN_NO_MEMORY ? 500 : 400;
    }
    size_t last = prism_plan_num_ops(plan) - 1;
    prism_plan_op_kind wk = prism_plan_op(plan, last);
    if (prism_plan_op_is_write(wk)) {
        char why[1024];
        const char *path =
            json_string_value(json_object_get(prism_plan_op_spec(plan, last), "path"));
        int status = 0;
        if (so->streamed) {
            *code = "invalid_plan";
            snprintf(err, errlen, "ops[%zu] (%s): a plan that ends with a write is not streamed",
                     last, prism_plan_op_kind_name(wk));
            status = 400;
        } else if (ds_write_check(&s->cfg, path, why, sizeof why) != 0) {
            *code = "path_not_allowed";
            snprintf(err, errlen, "ops[%zu] (%s): %s", last, prism_plan_op_kind_name(wk), why);
            status = 403;
        }
        if (status) {
            prism_plan_destroy(plan);
            return status;
        }
    }
    if (so->materialize && (so->streamed || prism_plan_op_is_write(wk))) {
        *code = "invalid_argument";
        snprintf(err, errlen,
                 "materialize keeps the output for epochs: it is not streamed "
                 "and does not write");
        prism_plan_destroy(plan);
        return 400;
    }
    ds_dataset *d = prepare(s, plan, code, err, errlen);
    if (!d)
        return 500;
    d->materialize = so->materialize;
    return insert(s, d, so, id_out, code, err, errlen);
}

/* Adds a prepared dataset to the table. */
static int insert(dataservice *s, ds_dataset *d, const ds_stream_opts *so, char *id_out,
                  const char **code, char *err, size_t errlen)
{
    if (ds_stream_init(d, so) != 0) {
        dataset_free(d);
        *code = "internal";
        snprintf(err, errlen, "out of memory");
        return 500;
    }
    pthread_mutex_lock(&s->lock);
    if (s->count >= (size_t)s->cfg.max_datasets && !prune_one(s)) {
        pthread_mutex_unlock(&s->lock);
        dataset_free(d);
        *code = "too_many_datasets";
        snprintf(err, errlen, "%lld datasets are running or waiting: stop some first",
                 (long long)s->cfg.max_datasets);
        return 429;
    }
    d->seq = s->next_seq++;
    d->streamed = so->streamed;
    d->batch_size = so->batch_size;
    d->budget = ds_budget_of(s, d);
    if (*d->source) { /* an epoch: made, nothing to run, its blocks queued */
        ds_dataset *src = ds_dataset_find(s, d->source);
        if (!src || src->state != DS_FINISHED) {
            pthread_mutex_unlock(&s->lock);
            dataset_free(d);
            *code = "dataset_ended";
            snprintf(err, errlen, "the materialized dataset went away");
            return 409;
        }
        for (size_t i = 0; i < src->nkept; i++) {
            ds_outblock b = src->kept[i];
            if (!(b.ref = prism_ref_dup(b.ref)) || ds_stream_push(d, &b) != 0) {
                prism_ref_release(b.ref);
                pthread_mutex_unlock(&s->lock);
                dataset_free(d);
                *code = "internal";
                snprintf(err, errlen, "out of memory");
                return 500;
            }
        }
        d->rows = src->rows;
        d->blocks = src->blocks;
        d->bytes = src->bytes;
        d->bytes_in_flight = d->stream.cost;
        d->state = DS_FINISHED;
        d->started_ms = d->ended_ms = prism_now_ms();
    }
    d->next = s->datasets;
    s->datasets = d;
    s->count++;
    snprintf(id_out, DS_ID_LEN + 1, "%s", d->id);
    start_pending(s); /* now, not at the next cron: the consumer is waiting */
    pthread_mutex_unlock(&s->lock);
    prism_metric_add(s->m.submitted, 1);
    LOG_INFO("dataset %s%s%s: %zu stage%s", d->id, d->name ? " " : "", d->name ? d->name : "",
             d->nstages, d->nstages == 1 ? "" : "s");
    return 0;
}

int ds_dataset_epoch(dataservice *s, const char *src_id, const ds_stream_opts *so, char *id_out,
                     const char **code, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->lock);
    ds_dataset *src = ds_dataset_find(s, src_id);
    json_t *plan_json = src ? json_incref(src->plan_json) : NULL;
    int status = !src ? 404 : !src->materialize ? 409 : src->state != DS_FINISHED ? 409 : 0;
    if (!src) {
        *code = "not_found";
        snprintf(err, errlen, "no dataset '%s'", src_id);
    } else if (status) {
        *code = !src->materialize ? "not_materialized" : "not_finished";
        snprintf(err, errlen,
                 !src->materialize ? "the dataset was not created with materialize=true"
                                   : "the dataset is %s: epochs start once it FINISHED",
                 ds_state_name(src->state));
    }
    pthread_mutex_unlock(&s->lock);
    if (status) {
        json_decref(plan_json);
        return status;
    }
    prism_plan *plan = NULL;
    prism_plan_error pe = {0};
    int rc = prism_plan_from_json_value(plan_json, &plan, &pe);
    json_decref(plan_json);
    ds_dataset *d = rc == PRISM_PLAN_OK ? prepare(s, plan, code, err, errlen) : NULL;
    if (!d) {
        if (rc != PRISM_PLAN_OK)
            prism_plan_destroy(plan);
        *code = "internal";
        snprintf(err, errlen, "out of memory");
        return 500;
    }
    snprintf(d->source, sizeof d->source, "%s", src_id);
    return insert(s, d, so, id_out, code, err, errlen);
}

int ds_dataset_keep(ds_dataset *d, const ds_outblock *b)
{
    if (d->nkept == d->capkept) {
        size_t cap = d->capkept ? 2 * d->capkept : 16;
        ds_outblock *v = realloc(d->kept, cap * sizeof *v);
        if (!v)
            return -1;
        d->kept = v;
        d->capkept = cap;
    }
    d->kept[d->nkept++] = *b;
    d->kept_bytes += b->bytes;
    return 0;
}

void ds_dataset_drop_kept(ds_dataset *d)
{
    for (size_t i = 0; i < d->nkept; i++)
        prism_ref_release(d->kept[i].ref);
    free(d->kept);
    d->kept = NULL;
    d->nkept = d->capkept = 0;
    d->kept_bytes = 0;
}

int64_t ds_budget_of(dataservice *s, const ds_dataset *d)
{
    if (d->plan_budget > 0)
        return d->plan_budget;
    if (s->cfg.memory_budget > 0)
        return s->cfg.memory_budget;
    int64_t stores = ds_stores_capacity(s);
    int64_t b = (int64_t)((double)stores * s->cfg.memory_fraction);
    return b > 0 ? b : DS_FALLBACK_BUDGET;
}

ds_dataset *ds_dataset_find(dataservice *s, const char *id)
{
    for (ds_dataset *d = s->datasets; d; d = d->next)
        if (!strcmp(d->id, id))
            return d;
    return NULL;
}

static json_t *time_or_null(int64_t ms) { return ms ? json_integer(ms) : json_null(); }

static json_t *stages_json(const ds_dataset *d)
{
    json_t *out = json_array();
    /* rows/s over the time the dataset ran (so far) */
    int64_t ran = d->started_ms ? (d->ended_ms ? d->ended_ms : prism_now_ms()) - d->started_ms : 0;
    const json_t *phys = json_object_get(d->physical_json, "stages");
    for (size_t i = 0; out && i < d->nstages; i++) {
        const json_t *st = json_array_get(phys, i);
        const ds_stage_progress *p = &d->stages[i];
        json_array_append_new(
            out,
            json_pack("{s:O,s:O,s:O,s:O,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "name",
                      json_object_get(st, "name"), "kind", json_object_get(st, "kind"), "operator",
                      json_object_get(st, "operator"), "logical", json_object_get(st, "logical"),
                      "rows", (json_int_t)p->rows, "blocks", (json_int_t)p->blocks, "bytes",
                      (json_int_t)p->bytes, "tasks_running", (json_int_t)p->tasks_running,
                      "tasks_done", (json_int_t)p->tasks_done, "queued_blocks",
                      (json_int_t)p->queued_blocks, "queued_bytes", (json_int_t)p->queued_bytes));
        json_object_set(json_array_get(out, i), "next", json_object_get(st, "next"));
        if (strcmp(json_string_value(json_object_get(st, "kind")), "read"))
            json_object_set_new(json_array_get(out, i), "tasks_local",
                                json_integer(p->tasks_local));
        json_object_set_new(json_array_get(out, i), "rows_per_s",
                            json_real(ran > 0 ? (double)p->rows * 1000.0 / (double)ran : 0));
        if (!strcmp(json_string_value(json_object_get(st, "operator")), "ActorPoolMapOperator"))
            json_object_set_new(json_array_get(out, i), "actors",
                                json_pack("{s:I,s:I,s:I}", "alive", (json_int_t)p->actors_alive,
                                          "busy", (json_int_t)p->actors_busy, "created",
                                          (json_int_t)p->actors_created));
    }
    return out;
}

json_t *ds_dataset_json(dataservice *s, const ds_dataset *d, bool full)
{
    (void)s;
    json_t *j = json_pack("{s:s,s:s?,s:s,s:s?,s:I,s:o,s:o,s:I,s:I,s:I,s:{s:I,s:I,s:I,s:I}}",
                          "dataset_id", d->id, "name", d->name, "state", ds_state_name(d->state),
                          "error", d->error, "created_at", (json_int_t)d->created_ms, "started_at",
                          time_or_null(d->started_ms), "ended_at", time_or_null(d->ended_ms),
                          "memory_budget_bytes", (json_int_t)d->budget, "bytes_in_flight",
                          (json_int_t)d->bytes_in_flight, "peak_bytes_in_flight",
                          (json_int_t)d->peak_bytes_in_flight, "output", "rows",
                          (json_int_t)d->rows, "blocks", (json_int_t)d->blocks, "bytes",
                          (json_int_t)d->bytes, "skipped", (json_int_t)d->skipped);
    if (j)
        json_object_set_new(j, "streamed", json_boolean(d->streamed));
    if (j && d->materialize) {
        json_t *nodes = json_object();
        for (size_t i = 0; nodes && i < d->nkept; i++) {
            const char *node = d->kept[i].node;
            json_int_t had = json_integer_value(json_object_get(nodes, node));
            json_object_set_new(nodes, node, json_integer(had + 1));
        }
        json_object_set_new(j, "materialized",
                            json_pack("{s:I,s:I,s:o}", "blocks", (json_int_t)d->nkept, "bytes",
                                      (json_int_t)d->kept_bytes, "nodes",
                                      nodes ? nodes : json_object()));
    }
    if (j && *d->source)
        json_object_set_new(j, "source", json_string(d->source));
    if (j && d->streamed) {
        const ds_stream *q = &d->stream;
        json_t *rows = json_array(), *blocks = json_array(), *local = json_array();
        for (int i = 0; rows && blocks && local && i < q->nsplits; i++) {
            json_array_append_new(rows, json_integer(q->splits[i].rows));
            json_array_append_new(blocks, json_integer(q->splits[i].blocks));
            json_array_append_new(local, json_integer(q->splits[i].local));
        }
        json_object_set_new(
            j, "split",
            json_pack("{s:i,s:b,s:o,s:o,s:o,s:I,s:I}", "n", q->nsplits, "equal", q->equal, "rows",
                      rows ? rows : json_array(), "blocks", blocks ? blocks : json_array(),
                      "local_blocks", local ? local : json_array(), "dropped",
                      (json_int_t)q->dropped, "consumer_timeout_ms", (json_int_t)q->timeout_ms));
    }
    const json_t *wspec = NULL;
    if (j && prism_physical_plan_write(d->physical, &wspec) != PRISM_OP_KIND_COUNT)
        json_object_set_new(j, "written",
                            json_pack("{s:O,s:I,s:I}", "path", json_object_get(wspec, "path"),
                                      "files", (json_int_t)d->files_written, "bytes",
                                      (json_int_t)d->bytes_written));
    if (j && full) {
        json_object_set(j, "plan", d->plan_json);
        json_object_set_new(j, "explain", json_string(d->explain));
        json_object_set(j, "explain_json", d->explain_json);
        json_object_set_new(j, "stages", stages_json(d));
    }
    return j;
}

/* Joins the executors whose dataset ended. A dataset stays in the table
 * (thread_running) until its thread is joined, so it is not pruned while its
 * executor still returns. */
static void join_ended(dataservice *s, bool all)
{
    ds_dataset *ended[64];
    size_t n = 0;
    pthread_mutex_lock(&s->lock);
    for (ds_dataset *d = s->datasets; d && n < 64; d = d->next)
        if (d->thread_running && (all || ds_state_ended(d->state)))
            ended[n++] = d;
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < n; i++)
        pthread_join(ended[i]->thread, NULL);
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < n; i++)
        ended[i]->thread_running = false;
    pthread_mutex_unlock(&s->lock);
}

/* A streamed dataset whose consumer went silent fails: the executor takes
 * `lost` while it runs; a dataset that has ended fails here, dropping the
 * blocks kept for its consumers. Lock held. */
static void check_consumers(dataservice *s)
{
    int64_t now = prism_mono_ms();
    for (ds_dataset *d = s->datasets; d; d = d->next) {
        if (!d->streamed || d->lost || (d->state != DS_RUNNING && d->state != DS_FINISHED))
            continue;
        int i = ds_stream_lost(d, now);
        if (i < 0)
            continue;
        char msg[256];
        if (d->stream.nsplits > 1)
            snprintf(msg, sizeof msg,
                     "the consumer of split %d was lost: no call for %lld ms "
                     "(consumer_timeout_ms)",
                     i, (long long)d->stream.timeout_ms);
        else
            snprintf(msg, sizeof msg,
                     "the consumer was lost: no call for %lld ms "
                     "(consumer_timeout_ms)",
                     (long long)d->stream.timeout_ms);
        LOG_WARN("dataset %s: %s", d->id, msg);
        if (d->state == DS_RUNNING) {
            d->lost = strdup(msg);
            continue;
        }
        d->state = DS_FAILED;
        free(d->error);
        d->error = strdup(msg);
        ds_stream_clear(d);
        prism_metric_add(s->m.failed, 1);
        pthread_cond_broadcast(&s->changed);
    }
}

/* Starts the oldest PENDING datasets while fewer than max_running run. With
 * the lock held. */
static void start_pending(dataservice *s)
{
    size_t running = 0;
    for (ds_dataset *d = s->datasets; d; d = d->next)
        running += d->thread_running;
    /* The oldest PENDING first (the list is newest first). */
    while (!s->quit && running < (size_t)s->cfg.max_running) {
        ds_dataset *next = NULL;
        for (ds_dataset *d = s->datasets; d; d = d->next)
            if (d->state == DS_PENDING)
                next = d;
        if (!next)
            break;
        if (next->stop) { /* stopped before it started */
            next->state = DS_STOPPED;
            next->ended_ms = prism_now_ms();
            prism_metric_add(s->m.stopped, 1);
            pthread_cond_broadcast(&s->changed);
            continue;
        }
        next->state = DS_RUNNING;
        next->started_ms = prism_now_ms();
        next->budget = ds_budget_of(s, next); /* the stores may be known by now */
        if (pthread_create(&next->thread, NULL, ds_executor_main, next) != 0) {
            next->state = DS_FAILED;
            next->error = strdup("cannot start an executor thread");
            next->ended_ms = prism_now_ms();
            continue;
        }
        next->thread_running = true;
        running++;
        pthread_cond_broadcast(&s->changed);
    }
}

void ds_datasets_cron(dataservice *s)
{
    join_ended(s, false);
    pthread_mutex_lock(&s->lock);
    check_consumers(s);
    start_pending(s);
    pthread_mutex_unlock(&s->lock);
}

void ds_datasets_stop_all(dataservice *s)
{
    pthread_mutex_lock(&s->lock);
    s->quit = true;
    for (ds_dataset *d = s->datasets; d; d = d->next)
        d->stop = true;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    for (;;) {
        pthread_mutex_lock(&s->lock);
        bool any = false;
        for (ds_dataset *d = s->datasets; d && !any; d = d->next)
            any = d->thread_running;
        pthread_mutex_unlock(&s->lock);
        if (!any)
            break;
        join_ended(s, true);
    }
    /* streamed and kept blocks go while the client that owns them is still there */
    pthread_mutex_lock(&s->lock);
    for (ds_dataset *d = s->datasets; d; d = d->next) {
        ds_stream_clear(d);
        ds_dataset_drop_kept(d);
    }
    pthread_mutex_unlock(&s->lock);
}

void ds_datasets_free(dataservice *s)
{
    for (ds_dataset *d = s->datasets, *next; d; d = next) {
        next = d->next;
        dataset_free(d);
    }
    s->datasets = NULL;
    s->count = 0;
}
