#include "os_copies.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prism_subjects.h"

typedef struct entry {
    prism_object_id id;
    uint64_t stamp; /* when a copy was last announced: the oldest entry goes first */
    size_t n;
    char urls[OS_COPIES_HOLDERS][OS_COPIES_URL_MAX]; /* oldest first */
} entry;

struct os_copies {
    pthread_mutex_t mu;
    entry *entries; /* OS_COPIES_MAX of them; n == 0: free */
    uint64_t clock;
    char self[OS_COPIES_URL_MAX];
};

/* The entry of `id`, or NULL. With mu held. */
static entry *find(os_copies *c, const prism_object_id *id)
{
    for (size_t i = 0; i < OS_COPIES_MAX; i++)
        if (c->entries[i].n && !memcmp(&c->entries[i].id, id, sizeof *id))
            return &c->entries[i];
    return NULL;
}

static void drop_url(entry *e, size_t i)
{
    memmove(e->urls[i], e->urls[i + 1], (e->n - i - 1) * sizeof e->urls[0]);
    e->n--;
}

void os_copies_add(os_copies *c, const prism_object_id *id, const char *url)
{
    if (!url || !*url || strlen(url) >= OS_COPIES_URL_MAX)
        return;
    pthread_mutex_lock(&c->mu);
    if (!strcmp(url, c->self)) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    entry *e = find(c, id);
    if (!e) { /* a free entry, or the least recently announced */
        e = &c->entries[0];
        for (size_t i = 0; i < OS_COPIES_MAX && e->n; i++)
            if (!c->entries[i].n || c->entries[i].stamp < e->stamp)
                e = &c->entries[i];
        memset(e, 0, sizeof *e);
        e->id = *id;
    }
    for (size_t i = 0; i < e->n; i++)
        if (!strcmp(e->urls[i], url))
            drop_url(e, i--);
    if (e->n == OS_COPIES_HOLDERS)
        drop_url(e, 0);
    snprintf(e->urls[e->n++], OS_COPIES_URL_MAX, "%s", url);
    e->stamp = ++c->clock;
    pthread_mutex_unlock(&c->mu);
}

/* A store no longer holds it, or (primary) the object is gone everywhere. */
static void removed(os_copies *c, const prism_object_id *id, const char *url, bool primary)
{
    pthread_mutex_lock(&c->mu);
    entry *e = find(c, id);
    for (size_t i = 0; e && i < e->n; i++)
        if (primary || (url && !strcmp(e->urls[i], url)))
            drop_url(e, i--);
    pthread_mutex_unlock(&c->mu);
}

static void on_event(prism_bus *bus, const char *subject, const char *reply, const char *data,
                     size_t len, void *ud)
{
    os_copies *c = ud;
    json_t *ev = json_loadb(data, len, 0, NULL);
    const char *hex = json_string_value(json_object_get(ev, "object_id"));
    const char *url = json_string_value(json_object_get(ev, "store_address"));
    json_t *size = json_object_get(ev, "size");
    prism_object_id id;
    if (hex && prism_object_id_from_hex(&id, hex) == 0) {
        if (!strcmp(subject, PRISM_SUBJECT_OBJECT_ADDED)) {
            if (json_is_integer(size) && json_integer_value(size) >= OS_COPIES_MIN_BYTES)
                os_copies_add(c, &id, url);
        } else {
            removed(c, &id, url, json_is_true(json_object_get(ev, "primary")));
        }
    }
    json_decref(ev);
}

int os_copies_create(os_copies **out, prism_bus *bus)
{
    os_copies *c = calloc(1, sizeof *c);
    if (!c || !(c->entries = calloc(OS_COPIES_MAX, sizeof *c->entries))) {
        free(c);
        return -1;
    }
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    if (bus && (prism_bus_subscribe(bus, PRISM_SUBJECT_OBJECT_ADDED, NULL, on_event, c) != 0 ||
                prism_bus_subscribe(bus, PRISM_SUBJECT_OBJECT_REMOVED, NULL, on_event, c) != 0))
        return -1;
    return 0;
}

void os_copies_set_self(os_copies *c, const char *self)
{
    pthread_mutex_lock(&c->mu);
    snprintf(c->self, sizeof c->self, "%s", self ? self : "");
    pthread_mutex_unlock(&c->mu);
}

size_t os_copies_holders(os_copies *c, const prism_object_id *id, char urls[][OS_COPIES_URL_MAX],
                         size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&c->mu);
    entry *e = find(c, id);
    for (size_t i = e ? e->n : 0; i-- > 0 && n < max;)
        memcpy(urls[n++], e->urls[i], OS_COPIES_URL_MAX);
    pthread_mutex_unlock(&c->mu);
    return n;
}

void os_copies_destroy(os_copies *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c->entries);
    free(c);
}
