/* Worker leases: the node agent is the authority on what its node has free.
 *
 *   prism.node.<id>.worker.lease   {lease_id, owner_id, resources, timeout_ms?,
 *                                   placement_group_id?, bundle_index?}
 *       → {ok, lease_id, worker_id, node_id, unix, tcp} or error busy
 *   prism.node.<id>.worker.return  {lease_id} → {ok}
 *   prism.node.<id>.worker.check   {lease_id, worker_id, owner_id} → {ok} or error not_granted
 *   prism.worker.<worker>.granted  {lease_id, owner_id}, published to the worker before a grant
 *                                  is answered (it checks such a lease without asking)
 *
 * Free = registered totals − granted and pending leases − jobs' resources
 * − placement group bundles (bundles.c; a lease naming a group draws on its
 * bundle instead);
 * GPUs are devices from the pool drivers also take from: a lease asks for
 * whole ones, or for a share of one (0 < GPU < 1, as Ray's fractional GPUs:
 * several such leases share a device, packed onto the fullest one that
 * has room). A lease that does not fit is answered `busy`. A lease without GPUs takes an idle
 * worker (answered at once) or one being started (answered by the cron once it is ready); a lease
 * with GPUs gets a worker of its own, started with those devices and stopped when the lease is
 * returned.
 *
 * A lease that names a `job_id` is the GCS's, for that job's driver: no
 * worker, granted at once when it fits, its GPUs picked now. job.start
 * naming it hands its resources to the driver (drivers.c); one that no
 * job.start took within JOB_LEASE_HOLD_MS is freed. So jobs and tasks draw
 * on one account, this one, whichever the scheduler chose. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>

#include "nodeagent.h"
#include "prism_buf.h"
#include "prism_fs.h"
#include "prism_resources.h"
#include "prism_subjects.h"
#include "prism_time.h"

#define ANSWER_MARGIN_MS 50 /* a pending lease gives up this long before the asker does */
#define DEFAULT_TIMEOUT_MS 5000
#define JOB_LEASE_HOLD_MS 30000 /* the GCS sends job.start right after the grant */

bool na_gpu_free_whole(const nodeagent *na, int i)
{
    return !na->gpu_used[i] && na->gpu_share[i] == 0;
}

int na_free_gpus(const nodeagent *na)
{
    int n = 0;
    for (int i = 0; i < na->cfg.num_gpus; i++)
        n += na_gpu_free_whole(na, i);
    return n;
}

/* What the devices have free, shares counted. */
static double free_gpu_amount(const nodeagent *na)
{
    int n = 0;
    for (int i = 0; i < na->cfg.num_gpus; i++)
        if (!na->gpu_used[i])
            n += NA_GPU_UNITS - na->gpu_share[i];
    return (double)n / NA_GPU_UNITS;
}

/* GPUs are counted by device elsewhere; `skip` (may be NULL) is not subtracted either. */
static void subtract_but(json_t *avail, json_t *used, const char *skip)
{
    const char *name;
    json_t *v;
    json_object_foreach(used, name, v) {
        json_t *have = json_object_get(avail, name);
        if (have && strcmp(name, "GPU") != 0 && (!skip || strcmp(name, skip) != 0))
            json_object_set_new(avail, name,
                                json_real(json_number_value(have) - json_number_value(v)));
    }
}

json_t *na_available(nodeagent *na)
{
    json_t *avail = json_deep_copy(na->resources);
    if (!avail)
        return NULL;
    for (na_lease *l = na->leases; l; l = l->next)
        if (!l->pg_id[0]) /* a bundle's lease draws on the bundle */
            subtract_but(avail, l->resources, l->blocked ? "CPU" : NULL);
    for (na_job *j = na->jobs; j; j = j->next)
        if (!na_state_ended(j->state))
            subtract_but(avail, j->resources, NULL);
    const char *name;
    json_t *v;
    json_object_foreach(avail, name, v) {
        if (json_number_value(v) < PRISM_RES_EPSILON) /* clamped: CPU lent by a blocked lease */
            json_object_set_new(avail, name, json_integer(0));
    }
    double gpus = free_gpu_amount(na);
    json_object_set_new(avail, "GPU",
                        gpus == floor(gpus) ? json_integer((json_int_t)gpus) : json_real(gpus));
    na_bundles_subtract(na, avail);
    return avail;
}

char *na_shortfall(nodeagent *na, json_t *want)
{
    json_t *avail = na_available(na);
    prism_buf b;
    prism_buf_init(&b, 4096);
    const char *name;
    json_t *v;
    json_object_foreach(want, name, v) {
        double need = json_number_value(v), have = json_number_value(json_object_get(avail, name));
        if (!strcmp(name, "GPU") && need > 1)
            need = ceil(need); /* whole devices; below 1, a share of one */
        if (!prism_res_amount_fits(have, need))
            prism_buf_printf(&b, "%s%s %g asked, %g free", b.len ? "; " : "", name, need, have);
    }
    json_decref(avail);
    char *why = b.len ? prism_buf_take(&b, NULL) : NULL;
    prism_buf_free(&b);
    return why;
}

/* ---------- the lease table (lock held) ---------- */

static na_lease *lease_find(nodeagent *na, const char *id)
{
    for (na_lease *l = na->leases; l; l = l->next)
        if (!strcmp(l->id, id))
            return l;
    return NULL;
}

/* The grant, with what the node has free after it (for the scheduler's view). */
static json_t *grant_json(nodeagent *na, const na_lease *l)
{
    const na_worker *w = l->worker;
    if (!w)
        return json_pack("{s:b,s:s,s:s,s:s,s:o}", "ok", 1, "lease_id", l->id, "job_id", l->job_id,
                         "node_id", na->node_id, "available", na_available(na));
    return json_pack("{s:b,s:s,s:s,s:s,s:s?,s:s?,s:o}", "ok", 1, "lease_id", l->id, "worker_id",
                     w->id, "node_id", na->node_id, "unix", w->unix_path, "tcp", w->tcp,
                     "available", na_available(na));
}

/* Tells the worker of a grant before the asker hears of it, so that the
 * worker knows the lease when the owner's connection names it (without it,
 * the worker asks: worker.check). */
static void tell_worker(nodeagent *na, const na_lease *l)
{
    char subject[160];
    prism_subject_worker_granted(subject, sizeof subject, l->worker->id);
    json_t *msg = json_pack("{s:s,s:s}", "lease_id", l->id, "owner_id", l->owner_id);
    if (!msg || prism_bus_publish_json(na->bus, subject, msg) != 0)
        LOG_DEBUG("could not tell worker %s of lease %s", l->worker->id, l->id);
    json_decref(msg);
}

static void answer(nodeagent *na, const char *reply, json_t *doc)
{
    if (reply && doc && prism_bus_publish_json(na->bus, reply, doc) != 0)
        LOG_WARN("cannot answer a lease request: %s", prism_bus_last_error(na->bus));
    json_decref(doc);
}

void na_lease_free(nodeagent *na, na_lease *l, const char *error)
{
    if (l->reply && error)
        answer(na, l->reply, prism_error_json("busy", "%s", error));
    for (na_lease **p = &na->leases; *p; p = &(*p)->next) {
        if (*p == l) {
            *p = l->next;
            break;
        }
    }
    if (l->worker)
        l->worker->lease = NULL;
    for (int k = 0; k < l->ngpus; k++)
        na->gpu_used[l->gpus[k]] = false;
    json_decref(l->resources);
    free(l->reply);
    free(l);
    na->report_wanted = true;
}

void na_lease_worker_ready(nodeagent *na, na_worker *w)
{
    na_lease *l = w->lease;
    if (prism_mono_ms() > l->deadline_mono) {
        LOG_INFO("lease %s: worker %s was ready too late, the request was given up", l->id, w->id);
        na_lease_free(na, l, NULL);
        if (w->dedicated)
            na_worker_stop(na, w);
        else
            w->state = NA_WORKER_IDLE;
        return;
    }
    w->state = NA_WORKER_LEASED;
    l->granted_ms = prism_now_ms();
    tell_worker(na, l);
    answer(na, l->reply, grant_json(na, l));
    free(l->reply);
    l->reply = NULL;
    prism_metric_add(na->m.leases_granted, 1);
    LOG_DEBUG("lease %s granted: worker %s for owner %s", l->id, w->id, l->owner_id);
}

/* ---------- worker.lease ---------- */

typedef struct lease_req {
    const char *id, *owner_id;
    const char *job_id; /* the GCS's lease for a job's driver, or NULL */
    json_t *resources;
    int64_t timeout_ms;
    int gpus;          /* whole devices */
    int gpu_share;     /* or a share of one (NA_GPU_UNITS: all of it) */
    const char *pg_id; /* a placement group's lease, or NULL */
    int bundle_index;  /* -1: any of the group's bundles here */
} lease_req;

static json_t *parse_group(json_t *req, lease_req *r)
{
    json_t *pg = json_object_get(req, "placement_group_id");
    json_t *index = json_object_get(req, "bundle_index");
    r->bundle_index = -1;
    if (!pg || json_is_null(pg))
        return NULL;
    r->pg_id = json_string_value(pg);
    if (!prism_is_hex(r->pg_id, PRISM_ID_HEX_LEN))
        return prism_error_json("invalid_argument",
                                "'placement_group_id' must be 32 lowercase hex digits");
    if (index && (!json_is_integer(index) || json_integer_value(index) < -1 ||
                  json_integer_value(index) > INT32_MAX))
        return prism_error_json("invalid_argument", "'bundle_index' must be an integer from -1");
    r->bundle_index = index ? (int)json_integer_value(index) : -1;
    if (r->job_id)
        return prism_error_json("invalid_argument", "a job's lease cannot name a placement group");
    return NULL;
}

static json_t *parse(json_t *req, lease_req *r)
{
    r->id = json_string_value(json_object_get(req, "lease_id"));
    r->owner_id = json_string_value(json_object_get(req, "owner_id"));
    r->resources = json_object_get(req, "resources");
    json_t *job = json_object_get(req, "job_id");
    r->job_id = json_string_value(job);
    if (job && !json_is_null(job) && (!r->job_id || !prism_safe_name(r->job_id)))
        return prism_error_json("invalid_argument", "'job_id' must be 1-128 of [A-Za-z0-9._-]");
    json_t *t = json_object_get(req, "timeout_ms");
    if (!r->id || !*r->id || strlen(r->id) > NA_LEASE_ID_MAX || !r->owner_id || !*r->owner_id ||
        strlen(r->owner_id) > NA_LEASE_ID_MAX)
        return prism_error_json("invalid_argument",
                                "'lease_id' and 'owner_id' must be strings of 1-%d "
                                "characters",
                                NA_LEASE_ID_MAX);
    if (!json_is_object(r->resources))
        return prism_error_json("invalid_argument", "'resources' must be an object");
    const char *name;
    json_t *v;
    json_object_foreach(r->resources, name, v) {
        if (!json_is_number(v) || json_number_value(v) < 0)
            return prism_error_json("invalid_argument",
                                    "resources.%s must be a non-negative number", name);
    }
    if (t && (!json_is_integer(t) || json_integer_value(t) < 1))
        return prism_error_json("invalid_argument", "'timeout_ms' must be a positive integer");
    r->timeout_ms = t ? json_integer_value(t) : DEFAULT_TIMEOUT_MS;
    double g = json_number_value(json_object_get(r->resources, "GPU"));
    if (g > 1 && g != floor(g))
        return prism_error_json("invalid_argument",
                                "resources.GPU above 1 must be a whole number of devices");
    r->gpus = g >= 1 - PRISM_RES_EPSILON ? (int)ceil(g - PRISM_RES_EPSILON) : 0;
    r->gpu_share = r->gpus == 0 && g > 0 ? (int)lround(g * NA_GPU_UNITS) : 0;
    if (r->gpus == 0 && g > 0 && r->gpu_share == 0)
        r->gpu_share = 1;              /* the smallest share */
    if (r->gpu_share > 0 && r->job_id) /* a driver takes whole devices */
        r->gpus = 1, r->gpu_share = 0;
    return parse_group(req, r);
}

static na_lease *lease_new(nodeagent *na, const lease_req *r, const char *reply)
{
    na_lease *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    snprintf(l->id, sizeof l->id, "%s", r->id);
    snprintf(l->owner_id, sizeof l->owner_id, "%s", r->owner_id);
    l->resources = json_deep_copy(r->resources);
    l->reply = reply ? strdup(reply) : NULL;
    l->deadline_mono = prism_mono_ms() + r->timeout_ms - ANSWER_MARGIN_MS;
    if (!l->resources || (reply && !l->reply)) {
        json_decref(l->resources);
        free(l->reply);
        free(l);
        return NULL;
    }
    l->next = na->leases;
    na->leases = l;
    na->report_wanted = true;
    return l;
}

/* A pool worker for a lease: idle first, else one starting, else a new one.
 * Of the idle ones, the one whose lease was returned last: its heap, caches
 * and mappings are warm (a worker's first task runs slower, mostly first
 * touches of memory), and the spares left cold are the ones idle longest,
 * which trim_idle stops first. */
static na_worker *pool_worker(nodeagent *na, char *err, size_t errlen)
{
    na_worker *idle = NULL, *starting = NULL;
    for (na_worker *w = na->workers; w; w = w->next) {
        if (w->dedicated || w->lease)
            continue;
        if (w->state == NA_WORKER_IDLE && (!idle || w->returned > idle->returned))
            idle = w;
        if (w->state == NA_WORKER_STARTING && !starting)
            starting = w;
    }
    if (idle)
        return idle;
    return starting ? starting : na_worker_start(na, NULL, 0, 0, err, errlen);
}

/* A worker of its own with `n` whole devices, or with `share` of one: the
 * device already most shared that has room, so that whole ones stay free. */
static na_worker *gpu_worker(nodeagent *na, int n, int share, char *err, size_t errlen)
{
    int idx[64], k = 0;
    for (int i = 0; share > 0 && i < na->cfg.num_gpus; i++)
        if (!na->gpu_used[i] && na->gpu_share[i] + share <= NA_GPU_UNITS &&
            (!k || na->gpu_share[i] > na->gpu_share[idx[0]]))
            idx[0] = i, k = 1;
    for (int i = 0; share <= 0 && i < na->cfg.num_gpus && k < n; i++)
        if (na_gpu_free_whole(na, i))
            idx[k++] = i;
    if (share > 0 && !k) {
        snprintf(err, errlen, "GPU %g asked, no device has that share free",
                 (double)share / NA_GPU_UNITS);
        return NULL;
    }
    if (share <= 0 && k < n) {
        snprintf(err, errlen, "GPU %d asked, %d free", n, k);
        return NULL;
    }
    return na_worker_start(na, idx, share > 0 ? 1 : n, share, err, errlen);
}

/* Attaches a new lease to a worker; the answer now, or NULL (later). */
static json_t *lease_on(nodeagent *na, const lease_req *r, int bundle, const char *reply)
{
    char err[NA_MESSAGE_MAX] = "";
    na_worker *w = r->gpus > 0 || r->gpu_share > 0
                       ? gpu_worker(na, r->gpus, r->gpu_share, err, sizeof err)
                       : pool_worker(na, err, sizeof err);
    if (!w)
        return prism_error_json("busy", "no worker for the lease: %s", err);
    na_lease *l = lease_new(na, r, w->state == NA_WORKER_IDLE ? NULL : reply);
    if (!l) {
        if (w->dedicated)
            na_worker_stop(na, w);
        return prism_error_json("busy", "out of memory");
    }
    l->worker = w;
    w->lease = l;
    if (r->pg_id) {
        snprintf(l->pg_id, sizeof l->pg_id, "%s", r->pg_id);
        l->bundle_index = bundle;
    }
    if (w->state != NA_WORKER_IDLE)
        return NULL; /* the cron answers once the worker is ready */
    w->state = NA_WORKER_LEASED;
    l->granted_ms = prism_now_ms();
    prism_metric_add(na->m.leases_granted, 1);
    LOG_DEBUG("lease %s granted: idle worker %s for owner %s", l->id, w->id, l->owner_id);
    tell_worker(na, l);
    return grant_json(na, l);
}

/* A job's lease: its resources and GPUs held until job.start takes them. */
static json_t *lease_for_job(nodeagent *na, const lease_req *r)
{
    na_lease *l = lease_new(na, r, NULL);
    if (!l)
        return prism_error_json("busy", "out of memory");
    snprintf(l->job_id, sizeof l->job_id, "%s", r->job_id);
    for (int i = 0; i < na->cfg.num_gpus && l->ngpus < r->gpus; i++) {
        if (na_gpu_free_whole(na, i)) {
            na->gpu_used[i] = true;
            l->gpus[l->ngpus++] = i;
        }
    }
    l->deadline_mono = prism_mono_ms() + JOB_LEASE_HOLD_MS;
    l->granted_ms = prism_now_ms();
    prism_metric_add(na->m.leases_granted, 1);
    LOG_DEBUG("lease %s granted for job %s", l->id, l->job_id);
    return grant_json(na, l);
}

bool na_lease_take_for_job(nodeagent *na, const char *lease_id, const char *job_id, int *gpus,
                           int *ngpus)
{
    na_lease *l = lease_id ? lease_find(na, lease_id) : NULL;
    *ngpus = 0;
    if (!l || l->worker || strcmp(l->job_id, job_id) != 0)
        return false;
    for (int k = 0; k < l->ngpus; k++)
        gpus[(*ngpus)++] = l->gpus[k];
    l->ngpus = 0; /* the driver holds them now */
    na_lease_free(na, l, NULL);
    return true;
}

void na_leases_expire(nodeagent *na)
{
    int64_t now = prism_mono_ms();
    for (na_lease *l = na->leases, *next; l; l = next) {
        next = l->next;
        if (!l->worker && now > l->deadline_mono) {
            LOG_INFO("lease %s for job %s: no job.start came for it; freed", l->id, l->job_id);
            na_lease_free(na, l, NULL);
        }
    }
}

/* The same request again (the asker retried): the same answer. */
static json_t *repeat(na_lease *l, nodeagent *na, const char *reply)
{
    if (!l->reply)
        return grant_json(na, l);
    char *copy = reply ? strdup(reply) : NULL;
    if (copy) {
        free(l->reply);
        l->reply = copy;
    }
    return NULL;
}

json_t *na_lease_request(nodeagent *na, json_t *req, const char *reply)
{
    lease_req r = {0};
    json_t *err = parse(req, &r);
    if (err)
        return err;
    pthread_mutex_lock(&na->lock);
    na_lease *old = lease_find(na, r.id);
    int bundle = -1;
    json_t *refused =
        old || !r.pg_id ? NULL : na_bundle_pick(na, r.pg_id, r.bundle_index, r.resources, &bundle);
    char *why = old || r.pg_id ? NULL : na_shortfall(na, r.resources);
    json_t *out;
    if (old)
        out = repeat(old, na, reply);
    else if (refused)
        out = json_incref(refused);
    else if (why)
        out = prism_error_json("busy", "not enough free on this node: %s", why);
    else if (r.job_id)
        out = lease_for_job(na, &r);
    else
        out = lease_on(na, &r, bundle, reply);
    json_decref(refused);
    if (out && !json_is_true(json_object_get(out, "ok")))
        prism_metric_add(na->m.leases_busy, 1);
    pthread_mutex_unlock(&na->lock);
    free(why);
    return out;
}

/* ---------- worker.return ---------- */

json_t *na_lease_return(nodeagent *na, json_t *req)
{
    const char *id = json_string_value(json_object_get(req, "lease_id"));
    if (!id)
        return prism_error_json("invalid_argument", "'lease_id' must be a string");
    pthread_mutex_lock(&na->lock);
    na_lease *l = lease_find(na, id);
    /* Now, not at the next cron: a lease request may wait in a scheduler's queue for this room. */
    bool report = l && na->registered;
    if (l) {
        na_worker *w = l->worker;
        LOG_DEBUG("lease %s returned (worker %s)", l->id, w ? w->id : "-");
        na_lease_free(na, l, "the lease was returned before its worker was ready");
        prism_metric_add(na->m.leases_returned, 1);
        if (w && w->dedicated)
            na_worker_stop(na, w);
        else if (w && w->state == NA_WORKER_LEASED) {
            w->state = NA_WORKER_IDLE;
            w->idle_since_mono = prism_mono_ms();
            w->returned = ++na->returns;
        }
    }
    pthread_mutex_unlock(&na->lock);
    if (report)
        na_link_report(na);
    return json_pack("{s:b}", "ok", 1); /* an unknown lease is fine: returns are idempotent */
}

/* ---------- worker.check ---------- */

/* A worker asks before it serves a connection that names a lease: only what
 * this agent granted, on that worker, to that owner, is served. */
json_t *na_lease_check(nodeagent *na, json_t *req)
{
    const char *id = json_string_value(json_object_get(req, "lease_id"));
    const char *worker = json_string_value(json_object_get(req, "worker_id"));
    const char *owner = json_string_value(json_object_get(req, "owner_id"));
    if (!id || !worker || !owner)
        return prism_error_json("invalid_argument",
                                "'lease_id', 'worker_id' and 'owner_id' must be strings");
    pthread_mutex_lock(&na->lock);
    na_lease *l = lease_find(na, id);
    bool ok = l && !l->reply && l->worker && !strcmp(l->worker->id, worker) &&
              !strcmp(l->owner_id, owner);
    pthread_mutex_unlock(&na->lock);
    if (ok)
        return json_pack("{s:b}", "ok", 1);
    LOG_WARN("worker %.32s asked about lease %.64s for owner %.64s: not granted here", worker, id,
             owner);
    return prism_error_json("not_granted",
                            "lease %.64s is not granted to that owner on that worker", id);
}

/* ---------- worker.blocked ---------- */

json_t *na_lease_blocked(nodeagent *na, json_t *req)
{
    const char *id = json_string_value(json_object_get(req, "lease_id"));
    json_t *blocked = json_object_get(req, "blocked");
    if (!id || !json_is_boolean(blocked))
        return prism_error_json("invalid_argument",
                                "'lease_id' (string) and 'blocked' (boolean) are needed");
    pthread_mutex_lock(&na->lock);
    na_lease *l = lease_find(na, id);
    if (l && l->blocked != json_is_true(blocked)) {
        /* Like Ray: a worker waiting for other tasks must not hold the CPU they need
         * (the node may run over its CPUs briefly when it wakes). */
        l->blocked = json_is_true(blocked);
        na->report_wanted = true;
        LOG_DEBUG("lease %s %s", l->id, l->blocked ? "blocked: its CPU is lent" : "unblocked");
    }
    pthread_mutex_unlock(&na->lock);
    return json_pack("{s:b}", "ok", 1);
}

/* ---------- worker.kill ---------- */

json_t *na_lease_kill(nodeagent *na, json_t *req)
{
    const char *id = json_string_value(json_object_get(req, "lease_id"));
    if (!id || !*id)
        return prism_error_json("invalid_argument", "'lease_id' must be a string");
    pthread_mutex_lock(&na->lock);
    na_lease *l = lease_find(na, id);
    na_worker *w = l ? l->worker : NULL;
    bool found = w && w->pid > 0;
    if (found) {
        LOG_INFO("killing worker %s (lease %s), as asked", w->id, l->id);
        kill(-w->pid, SIGKILL);
    }
    pthread_mutex_unlock(&na->lock);
    return found ? json_pack("{s:b}", "ok", 1)
                 : prism_error_json("not_found", "no worker holds lease %s on this node", id);
}
