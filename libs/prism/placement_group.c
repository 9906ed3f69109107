/* Placement groups (include/prism/prism.h, docs/placement-groups.md): the
 * GCS's REST API (/api/v1/placement_groups) through the client's address
 * and token. A handle is only the group's ID; the GCS holds the rest. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "prism_httpc.h"
#include "prism_internal.h"
#include "prism_time.h"

#define MAX_BUNDLES 256
#define REQUEST_TIMEOUT_MS 10000
#define POLL_MIN_MS 20
#define POLL_MAX_MS 500

static const char *const strategy_names[] = {"PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"};
static const char *const state_names[] = {"PENDING", "CREATED", "RESCHEDULING", "REMOVED"};

void prism_placement_group_options_init(prism_placement_group_options *opts)
{
    if (opts)
        *opts = (prism_placement_group_options)PRISM_PLACEMENT_GROUP_OPTIONS_INIT;
}

/* One REST call; PRISM_OK with the answer for a 2xx, else the failure. */
static prism_status call(prism_client *c, const char *method, const char *path, json_t *body,
                         json_t **out)
{
    *out = NULL;
    prism_httpc *h = prism__http_take(c);
    if (!h)
        return prism__fail(PRISM_ERR_NO_MEMORY, "cannot make an HTTP client");
    long status = 0;
    char err[512];
    int rc =
        prism_httpc_json(h, method, path, body, REQUEST_TIMEOUT_MS, &status, out, err, sizeof err);
    prism__http_give(c, h);
    if (rc != 0)
        return prism__fail(PRISM_ERR_CONNECT, "cannot reach the GCS at %s: %s", c->address, err);
    if (status >= 200 && status < 300)
        return PRISM_OK;
    prism_status s = status == 400 || status == 404 ? PRISM_ERR_INVALID : PRISM_ERR_INTERNAL;
    s = prism__fail(s, "the GCS refused (%ld): %s", status,
                    prism_httpc_error_message(*out, "no reason given"));
    json_decref(*out);
    *out = NULL;
    return s;
}

/* A bundle as the resource object the API takes, or NULL with the reason. */
static json_t *bundle_json(const prism_bundle *b, const char **why)
{
    json_t *res = b->resources ? json_loads(b->resources, 0, NULL) : json_object();
    if (!json_is_object(res)) {
        json_decref(res);
        *why = "a bundle's `resources` is not a JSON object";
        return NULL;
    }
    if (!isfinite(b->num_cpus) || !isfinite(b->num_gpus) || !isfinite(b->memory) ||
        b->num_cpus < 0 || b->num_gpus < 0 || b->memory < 0) {
        json_decref(res);
        *why = "bundle amounts must be finite and not negative";
        return NULL;
    }
    if (b->num_cpus > 0)
        json_object_set_new(res, "CPU", json_real(b->num_cpus));
    if (b->num_gpus > 0)
        json_object_set_new(res, "GPU", json_real(b->num_gpus));
    if (b->memory > 0)
        json_object_set_new(res, "memory", json_real(b->memory));
    return res;
}

static prism_status create_body(prism_client *c, const prism_bundle *bundles, size_t n,
                                prism_pg_strategy strategy, const prism_placement_group_options *o,
                                json_t **out)
{
    json_t *list = json_array();
    const char *why = NULL;
    for (size_t i = 0; i < n && !why; i++) {
        json_t *b = bundle_json(&bundles[i], &why);
        if (b)
            json_array_append_new(list, b);
    }
    if (why) {
        json_decref(list);
        return prism__fail(PRISM_ERR_INVALID, "%s", why);
    }
    *out = json_pack("{s:o,s:s}", "bundles", list, "strategy", strategy_names[strategy]);
    if (*out && o->name)
        json_object_set_new(*out, "name", json_string(o->name));
    if (*out && !o->detached) /* fate-shares with this process */
        json_object_set_new(*out, "owner", json_string(c->self_addr));
    return *out ? PRISM_OK : prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
}

static prism_status new_handle(const char *id, prism_placement_group **out)
{
    if (!prism_is_hex(id, PRISM_ID_HEX_LEN))
        return prism__fail(PRISM_ERR_INVALID, "a placement group ID is 32 lowercase hex digits");
    prism_placement_group *pg = calloc(1, sizeof *pg);
    if (!pg)
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    snprintf(pg->id, sizeof pg->id, "%s", id);
    *out = pg;
    return PRISM_OK;
}

prism_status prism_placement_group_create(prism_client *c, const prism_bundle *bundles, size_t n,
                                          prism_pg_strategy strategy,
                                          const prism_placement_group_options *opts,
                                          prism_placement_group **out)
{
    static const prism_placement_group_options defaults = PRISM_PLACEMENT_GROUP_OPTIONS_INIT;
    const prism_placement_group_options *o = opts ? opts : &defaults;
    if (!c || !bundles || !out || n == 0 || n > MAX_BUNDLES)
        return prism__fail(PRISM_ERR_INVALID,
                           "placement_group_create needs a client, 1-%d "
                           "bundles and room for the handle",
                           MAX_BUNDLES);
    if ((unsigned)strategy > PRISM_PG_STRICT_SPREAD)
        return prism__fail(PRISM_ERR_INVALID, "unknown placement strategy %d", (int)strategy);
    if (!PRISM__RESERVED_ZERO(o))
        return prism__fail(PRISM_ERR_INVALID,
                           "prism_placement_group_options: `reserved` is not zero (initialize "
                           "it with PRISM_PLACEMENT_GROUP_OPTIONS_INIT)");
    json_t *body = NULL, *doc = NULL;
    prism_status s = create_body(c, bundles, n, strategy, o, &body);
    if (s == PRISM_OK)
        s = call(c, "POST", "/api/v1/placement_groups", body, &doc);
    if (s == PRISM_OK)
        s = new_handle(json_string_value(json_object_get(doc, "placement_group_id")), out);
    json_decref(body);
    json_decref(doc);
    return s;
}

static prism_status get_state(prism_client *c, const prism_placement_group *pg,
                              prism_pg_state *state, char *reason, size_t len)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/placement_groups/%s", pg->id);
    json_t *doc;
    prism_status s = call(c, "GET", path, NULL, &doc);
    if (s != PRISM_OK)
        return s;
    const char *name = json_string_value(json_object_get(doc, "state"));
    const char *why = json_string_value(json_object_get(doc, "reason"));
    int k = 0;
    while (name && k < 4 && strcmp(name, state_names[k]))
        k++;
    if (!name || k == 4)
        s = prism__fail(PRISM_ERR_INTERNAL, "the GCS answered an unknown state");
    *state = (prism_pg_state)(k & 3);
    if (reason && len)
        snprintf(reason, len, "%s", why ? why : "");
    json_decref(doc);
    return s;
}

prism_status prism_placement_group_state(prism_client *c, const prism_placement_group *pg,
                                         prism_pg_state *state, char *reason, size_t len)
{
    if (!c || !pg || !state)
        return prism__fail(PRISM_ERR_INVALID, "placement_group_state needs a client, a handle "
                                              "and room for the state");
    return get_state(c, pg, state, reason, len);
}

prism_status prism_placement_group_wait(prism_client *c, const prism_placement_group *pg,
                                        int timeout_ms)
{
    if (!c || !pg || timeout_ms < 0)
        return prism__fail(PRISM_ERR_INVALID, "placement_group_wait needs a client, a handle "
                                              "and a timeout of 0 or more");
    int64_t deadline = prism_mono_ms() + timeout_ms, pause = POLL_MIN_MS;
    char reason[512];
    for (;;) {
        prism_pg_state state;
        prism_status s = get_state(c, pg, &state, reason, sizeof reason);
        if (s != PRISM_OK || state == PRISM_PG_CREATED)
            return s;
        if (state == PRISM_PG_REMOVED)
            return prism__fail(PRISM_ERR_INVALID, "placement group %s was removed", pg->id);
        int64_t left = deadline - prism_mono_ms();
        if (left <= 0)
            return prism__fail(PRISM_ERR_TIMEOUT, "placement group %s is not placed: %s", pg->id,
                               reason);
        prism_sleep_ms(pause < left ? pause : left);
        pause = pause * 2 < POLL_MAX_MS ? pause * 2 : POLL_MAX_MS;
    }
}

prism_status prism_placement_group_remove(prism_client *c, const prism_placement_group *pg)
{
    if (!c || !pg)
        return prism__fail(PRISM_ERR_INVALID, "placement_group_remove needs a client and a handle");
    char path[128];
    snprintf(path, sizeof path, "/api/v1/placement_groups/%s", pg->id);
    json_t *doc;
    prism_status s = call(c, "DELETE", path, NULL, &doc);
    json_decref(doc);
    return s;
}

prism_status prism_placement_group_open(prism_client *c, const char *id,
                                        prism_placement_group **out)
{
    if (!c || !id || !out)
        return prism__fail(PRISM_ERR_INVALID, "placement_group_open needs a client, an ID and "
                                              "room for the handle");
    return new_handle(id, out);
}

const char *prism_placement_group_id(const prism_placement_group *pg) { return pg ? pg->id : ""; }

void prism_placement_group_release(prism_placement_group *pg) { free(pg); }
