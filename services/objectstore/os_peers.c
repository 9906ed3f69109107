/* The stores this one may pull from. A pull sends the cluster token to its
 * source, so the source must be one of the cluster's own stores, never a URL
 * as some request or frame names it (docs/security.md): the stores of nodes
 * that are alive in the cluster, as their node agents announce them on
 * prism.sched.node (dropped when the GCS declares the node DEAD on
 * prism.event.node, or PEER_TTL_MS after its last report), and those an
 * operator named with --peer. */
#include "os_peers.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "prism_subjects.h"
#include "prism_time.h"

#define PEER_TTL_MS 30000

typedef struct peer {
    char *url, *node_id; /* node_id NULL for --peer entries, which never expire */
    int64_t seen_ms;
    struct peer *next;
} peer;

struct os_peers {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a new store became known */
    peer *list;
    prism_bus *bus;
};

static peer *find_url(os_peers *p, const char *url)
{
    for (peer *e = p->list; e; e = e->next)
        if (e->url && !strcmp(e->url, url))
            return e;
    return NULL;
}

static void add(os_peers *p, const char *url, const char *node_id)
{
    peer *e = find_url(p, url);
    if (!e && (e = calloc(1, sizeof *e))) {
        e->url = strdup(url);
        e->next = p->list;
        p->list = e;
    }
    if (!e || !e->url) /* (an entry without its URL matches nothing) */
        return;
    if (node_id && (!e->node_id || strcmp(e->node_id, node_id) != 0)) {
        free(e->node_id);
        e->node_id = strdup(node_id);
    }
    e->seen_ms = prism_mono_ms();
    pthread_cond_broadcast(&p->cv);
}

static void forget_node(os_peers *p, const char *node_id)
{
    for (peer **pp = &p->list; *pp;) {
        peer *e = *pp;
        if (e->node_id && !strcmp(e->node_id, node_id)) {
            *pp = e->next;
            free(e->url);
            free(e->node_id);
            free(e);
        } else {
            pp = &e->next;
        }
    }
}

static void on_event(prism_bus *bus, const char *subject, const char *reply, const char *data,
                     size_t len, void *ud)
{
    os_peers *p = ud;
    json_t *j = json_loadb(data, len, 0, NULL);
    const char *node = json_string_value(json_object_get(j, "node_id"));
    const char *url = json_string_value(json_object_get(j, "store_address"));
    const char *state = json_string_value(json_object_get(j, "state"));
    pthread_mutex_lock(&p->mu);
    if (node && !strcmp(subject, PRISM_SUBJECT_EVENT_NODE) && state && !strcmp(state, "DEAD"))
        forget_node(p, node);
    else if (node && url && *url && !strcmp(subject, PRISM_SUBJECT_SCHED_NODE))
        add(p, url, node);
    pthread_mutex_unlock(&p->mu);
    json_decref(j);
}

int os_peers_create(os_peers **out, const char *static_list, prism_bus *bus)
{
    os_peers *p = calloc(1, sizeof *p);
    if (!p)
        return -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    *out = p;
    char *copy = strdup(static_list ? static_list : ""), *save = NULL;
    for (char *tok = copy ? strtok_r(copy, ", ", &save) : NULL; tok;
         tok = strtok_r(NULL, ", ", &save))
        add(p, tok, NULL);
    free(copy);
    if (!bus)
        return 0;
    p->bus = bus;
    if (prism_bus_subscribe(bus, PRISM_SUBJECT_SCHED_NODE, NULL, on_event, p) != 0 ||
        prism_bus_subscribe(bus, PRISM_SUBJECT_EVENT_NODE, NULL, on_event, p) != 0)
        return -1;
    return 0;
}

bool os_peers_known(os_peers *p, const char *url, int wait_ms)
{
    int64_t deadline = prism_mono_ms() + wait_ms;
    pthread_mutex_lock(&p->mu);
    peer *e;
    for (;;) {
        e = find_url(p, url);
        if (e && e->node_id && prism_mono_ms() - e->seen_ms > PEER_TTL_MS)
            e = NULL; /* no report for long: the node is gone or cut off */
        int64_t left = deadline - prism_mono_ms();
        if (e || left <= 0 || !p->bus)
            break;
        /* A node that joined a moment ago is announced within a heartbeat. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    pthread_mutex_unlock(&p->mu);
    return e != NULL;
}

void os_peers_destroy(os_peers *p)
{
    if (!p)
        return;
    while (p->list) {
        peer *e = p->list;
        p->list = e->next;
        free(e->url);
        free(e->node_id);
        free(e);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
