/* Placement group bundles (docs/placement-groups.md): the scheduler reserves
 * them here, the node agent being the authority on what its node has free.
 *
 *   prism.node.<id>.bundle.reserve  {placement_group_id, bundles: [{index, resources}]}
 *       → {ok, available} when every bundle fits together, else error busy
 *         (all or none on this node; a bundle already held is not held twice)
 *   prism.node.<id>.bundle.return   {placement_group_id, index?} → {ok}
 *       frees the group's bundles (or one) and kills the workers leased in them
 *
 * A bundle's resources leave the node's free pool. A lease that names the
 * group draws on the bundle instead (na_bundle_pick), so it never competes
 * with leases outside the group. GPUs are counted, not pinned: a bundle
 * holds a number of devices, and a lease in it takes free devices up to
 * that number. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodeagent.h"
#include "prism_resources.h"

#define MAX_BUNDLES 1024 /* per request */

/* What bundle `b` has free: its resources less the leases drawn on it. */
static json_t *bundle_free(nodeagent *na, const na_bundle *b)
{
    json_t *free_ = json_deep_copy(b->resources);
    for (na_lease *l = na->leases; l && free_; l = l->next) {
        if (strcmp(l->pg_id, b->pg_id) != 0 || l->bundle_index != b->index)
            continue;
        const char *name;
        json_t *v;
        json_object_foreach(l->resources, name, v) {
            json_t *have = json_object_get(free_, name);
            if (have)
                json_object_set_new(free_, name,
                                    json_real(json_number_value(have) - json_number_value(v)));
        }
    }
    return free_;
}

void na_bundles_subtract(nodeagent *na, json_t *avail)
{
    double gpus = 0;
    for (na_bundle *b = na->bundles; b; b = b->next) {
        const char *name;
        json_t *v;
        json_object_foreach(b->resources, name, v) {
            json_t *have = json_object_get(avail, name);
            if (have && strcmp(name, "GPU") != 0)
                json_object_set_new(avail, name,
                                    json_real(json_number_value(have) - json_number_value(v)));
        }
        /* Devices its leases took are counted used already; the rest it holds. */
        json_t *f = bundle_free(na, b);
        gpus += json_number_value(json_object_get(f, "GPU"));
        json_decref(f);
    }
    json_t *g = json_object_get(avail, "GPU");
    if (g && gpus > 0)
        json_object_set_new(avail, "GPU", json_real(json_number_value(g) - gpus));
}

static na_bundle *bundle_find(nodeagent *na, const char *pg_id, int index)
{
    for (na_bundle *b = na->bundles; b; b = b->next)
        if (!strcmp(b->pg_id, pg_id) && b->index == index)
            return b;
    return NULL;
}

json_t *na_bundle_pick(nodeagent *na, const char *pg_id, int index, json_t *want, int *picked)
{
    bool any = false;
    for (na_bundle *b = na->bundles; b; b = b->next) {
        if (strcmp(b->pg_id, pg_id) != 0 || (index >= 0 && b->index != index))
            continue;
        any = true;
        json_t *f = bundle_free(na, b);
        bool fits = prism_res_fits(f, NULL, want);
        json_decref(f);
        if (fits) {
            *picked = b->index;
            return NULL;
        }
    }
    if (!any)
        return prism_error_json("busy", "placement group %s has no bundle%s here", pg_id,
                                index >= 0 ? " of that index" : "");
    return prism_error_json("busy", "the bundle%s of placement group %s on this node %s full",
                            index >= 0 ? "" : "s", pg_id, index >= 0 ? "is" : "are");
}

json_t *na_bundles_json(nodeagent *na)
{
    json_t *list = json_array();
    for (na_bundle *b = na->bundles; b && list; b = b->next)
        json_array_append_new(list, json_pack("{s:s,s:i,s:O,s:o}", "placement_group_id", b->pg_id,
                                              "index", b->index, "resources", b->resources,
                                              "available", bundle_free(na, b)));
    return list;
}

/* Kills the workers leased in the bundle and ends their leases. */
static void bundle_free_leases(nodeagent *na, const na_bundle *b, const char *why)
{
    for (na_lease *l = na->leases, *next; l; l = next) {
        next = l->next;
        if (strcmp(l->pg_id, b->pg_id) != 0 || l->bundle_index != b->index)
            continue;
        if (l->worker && l->worker->pid > 0) {
            LOG_INFO("killing worker %s (lease %s): %s", l->worker->id, l->id, why);
            kill(-l->worker->pid, SIGKILL); /* the reaper collects it */
        }
        na_lease_free(na, l, why);
    }
}

static void bundle_remove(nodeagent *na, na_bundle *b, const char *why)
{
    bundle_free_leases(na, b, why);
    for (na_bundle **p = &na->bundles; *p; p = &(*p)->next) {
        if (*p == b) {
            *p = b->next;
            break;
        }
    }
    json_decref(b->resources);
    free(b);
    na->report_wanted = true;
}

void na_bundles_drop_all(nodeagent *na, const char *why)
{
    while (na->bundles)
        bundle_remove(na, na->bundles, why);
}

/* ---------- bundle.reserve ---------- */

static json_t *check_bundles(json_t *list)
{
    if (!json_is_array(list) || !json_array_size(list) || json_array_size(list) > MAX_BUNDLES)
        return prism_error_json("invalid_argument", "'bundles' must be an array of 1-%d bundles",
                                MAX_BUNDLES);
    size_t i;
    json_t *b;
    json_array_foreach(list, i, b) {
        json_t *index = json_object_get(b, "index"), *res = json_object_get(b, "resources");
        if (!json_is_integer(index) || json_integer_value(index) < 0 ||
            json_integer_value(index) >= MAX_BUNDLES || !json_is_object(res))
            return prism_error_json("invalid_argument",
                                    "each bundle needs 'index' (0-%d) and 'resources' (object)",
                                    MAX_BUNDLES - 1);
        const char *name;
        json_t *v;
        json_object_foreach(res, name, v) {
            if (!json_is_number(v) || json_number_value(v) < 0)
                return prism_error_json("invalid_argument",
                                        "bundle resources must be non-negative numbers");
        }
    }
    return NULL;
}

/* The sum of the bundles not held yet. */
static json_t *new_demand(nodeagent *na, const char *pg_id, json_t *list)
{
    json_t *sum = json_object();
    size_t i;
    json_t *b;
    json_array_foreach(list, i, b) {
        if (bundle_find(na, pg_id, (int)json_integer_value(json_object_get(b, "index"))))
            continue;
        prism_res_add(sum, json_object_get(b, "resources"));
    }
    return sum;
}

static void add_bundles(nodeagent *na, const char *pg_id, json_t *list)
{
    size_t i;
    json_t *j;
    json_array_foreach(list, i, j) {
        int index = (int)json_integer_value(json_object_get(j, "index"));
        if (bundle_find(na, pg_id, index))
            continue;
        na_bundle *b = calloc(1, sizeof *b);
        if (!b)
            continue; /* counted as held by the asker; its next report corrects it */
        snprintf(b->pg_id, sizeof b->pg_id, "%s", pg_id);
        b->index = index;
        b->resources = json_deep_copy(json_object_get(j, "resources"));
        b->next = na->bundles;
        na->bundles = b;
        LOG_INFO("bundle %d of placement group %s reserved", index, pg_id);
    }
    na->report_wanted = true;
}

json_t *na_bundle_reserve(nodeagent *na, json_t *req)
{
    const char *pg_id = json_string_value(json_object_get(req, "placement_group_id"));
    json_t *list = json_object_get(req, "bundles");
    if (!prism_is_hex(pg_id, PRISM_ID_HEX_LEN))
        return prism_error_json("invalid_argument",
                                "'placement_group_id' must be 32 lowercase hex digits");
    json_t *err = check_bundles(list);
    if (err)
        return err;
    pthread_mutex_lock(&na->lock);
    json_t *want = new_demand(na, pg_id, list);
    char *why = want ? na_shortfall(na, want) : NULL;
    json_t *out;
    if (!want)
        out = prism_error_json("busy", "out of memory");
    else if (why)
        out = prism_error_json("busy", "the bundles do not fit on this node: %s", why);
    else {
        add_bundles(na, pg_id, list);
        out = json_pack("{s:b,s:o}", "ok", 1, "available", na_available(na));
    }
    pthread_mutex_unlock(&na->lock);
    json_decref(want);
    free(why);
    return out;
}

/* ---------- bundle.return ---------- */

json_t *na_bundle_return(nodeagent *na, json_t *req)
{
    const char *pg_id = json_string_value(json_object_get(req, "placement_group_id"));
    json_t *index = json_object_get(req, "index");
    if (!prism_is_hex(pg_id, PRISM_ID_HEX_LEN) || (index && !json_is_integer(index)))
        return prism_error_json("invalid_argument",
                                "'placement_group_id' (32 hex digits) and an optional integer "
                                "'index' are needed");
    pthread_mutex_lock(&na->lock);
    for (na_bundle *b = na->bundles, *next; b; b = next) {
        next = b->next;
        if (!strcmp(b->pg_id, pg_id) && (!index || b->index == json_integer_value(index))) {
            LOG_INFO("bundle %d of placement group %s returned", b->index, pg_id);
            bundle_remove(na, b, "its placement group bundle was returned");
        }
    }
    pthread_mutex_unlock(&na->lock);
    return json_pack("{s:b}", "ok", 1); /* idempotent, like worker.return */
}
