/* The cluster's object stores, as the GCS lists them: a process without a
 * store of its own reads values from other nodes' stores, and deletes its
 * copies there, over their HTTP APIs with the cluster's token. The URLs it
 * uses come from workers and owners; before the token goes to one, the GCS
 * (which the client trusts already) must list it as a live node's store, so
 * that a wrong or stale address never receives it. */
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "prism_httpc.h"
#include "prism_time.h"

/* A URL the list lacks makes the client ask again, at most this often. */
#define STORES_ASK_MS 1000
#define STORES_ASK_TIMEOUT_MS 10000

static bool listed(const prism_client *c, const char *url)
{
    for (size_t i = 0; i < c->nstores; i++)
        if (!strcmp(c->stores[i], url))
            return true;
    return false;
}

static void forget(prism_client *c)
{
    for (size_t i = 0; i < c->nstores; i++)
        free(c->stores[i]);
    free(c->stores);
    c->stores = NULL;
    c->nstores = 0;
}

/* The live nodes' store addresses, every page of GET /api/v1/nodes. */
static void ask(prism_client *c)
{
    prism_httpc *h = prism_httpc_pool_take(c->http, c->address, c->token);
    if (!h)
        return;
    char **found = NULL, err[256], path[96] = "/api/v1/nodes?state=ALIVE&limit=1000";
    size_t n = 0;
    bool ok = true;
    for (;;) {
        long status = 0;
        json_t *doc = NULL;
        if (prism_httpc_json(h, "GET", path, NULL, STORES_ASK_TIMEOUT_MS, &status, &doc, err,
                             sizeof err) != 0 ||
            status != 200) {
            ok = false;
            json_decref(doc);
            break;
        }
        size_t i;
        json_t *node;
        json_array_foreach(json_object_get(doc, "nodes"), i, node) {
            const char *url = json_string_value(json_object_get(node, "store_address"));
            char **more = url && *url ? realloc(found, (n + 1) * sizeof *found) : NULL;
            if (more && (more[n] = strdup(url)))
                n++;
            if (more)
                found = more;
        }
        json_t *next = json_object_get(doc, "next_cursor");
        if (json_is_integer(next))
            snprintf(path, sizeof path, "/api/v1/nodes?state=ALIVE&limit=1000&cursor=%lld",
                     (long long)json_integer_value(next));
        json_decref(doc);
        if (!json_is_integer(next))
            break;
    }
    prism_httpc_pool_give(c->http, h, ok);
    if (!ok) { /* keep what was known: the GCS may be restarting */
        for (size_t i = 0; i < n; i++)
            free(found[i]);
        free(found);
        return;
    }
    forget(c);
    c->stores = found;
    c->nstores = n;
}

bool prism__store_known(prism_client *c, const char *url)
{
    if (!url || !*url)
        return false;
    if (c->store_url && !strcmp(c->store_url, url))
        return true;
    pthread_mutex_lock(&c->stores_lock);
    bool known = listed(c, url);
    if (!known) { /* a node that joined since: its store is listed by now */
        int64_t wait = c->stores_asked_ms + STORES_ASK_MS - prism_mono_ms();
        if (c->stores_asked_ms && wait > 0)
            prism_sleep_ms(wait);
        c->stores_asked_ms = prism_mono_ms();
        ask(c);
        known = listed(c, url);
    }
    pthread_mutex_unlock(&c->stores_lock);
    return known;
}

void prism__stores_free(prism_client *c) { forget(c); }
