/* The courier thread: what this process owes others, off the thread that
 * owes it and never behind the leaser's rounds (whose lease request may
 * wait for a worker process to start):
 * - the stored copies of the objects it freed: a store frees the space when
 *   the owner says so, and others wait for it (a dataset's memory budget
 *   counts a block as gone once its consumer gives it back). A copy in this
 *   process's node's store is one round trip on the store's socket; one
 *   elsewhere is a DELETE to that store over HTTP, tried again with backoff
 *   while the store cannot be reached;
 * - the borrowing protocol's messages queued in the outbox (borrow.c): a
 *   borrower's REMOVE frees the object at its owner, an owner's late answer
 *   ends a borrower's wait. */
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "prism_httpc.h"
#include "prism_time.h"

#define DELETE_RETRY_MS 1000
#define DELETE_TRIES 30

static void deletion_free(deletion *d)
{
    free(d->store_socket);
    free(d->store_url);
    free(d->node_id);
    free(d);
}

/* Deletes one stored copy. False when its store could not be reached (a
 * restart, a cut link): the copy may still be there. */
static bool delete_copy(prism_client *c, deletion *d)
{
    if (c->store && prism__same_store(d->node_id, d->store_socket, c->node_id, c->store_socket))
        return prism_store_delete(c->store, &d->id) != PRISM_STORE_DISCONNECTED;
    if (!*d->store_url)
        return true;
    if (!prism__store_known(c, d->store_url)) /* not the cluster's: the token stays here */
        return true;
    prism_httpc *h = prism_httpc_pool_take(c->http, d->store_url, c->token);
    if (!h)
        return false;
    char path[128], err[256];
    prism_httpc_resp resp;
    snprintf(path, sizeof path, "/api/v1/objects/");
    prism_object_id_to_hex(&d->id, path + strlen(path));
    bool done = false;
    int rc = prism_httpc_request(h, "DELETE", path, NULL, NULL, 0, 5000, 0, &resp, err, sizeof err);
    if (rc == 0) {
        done = resp.status < 500; /* deleted, or not there (404) */
        prism_httpc_resp_free(&resp);
    }
    prism_httpc_pool_give(c->http, h, rc == 0);
    return done;
}

/* The copies freed since the last call, and those due again. A copy whose
 * store cannot be reached is tried again with backoff (1 s doubling to 10 s,
 * DELETE_TRIES times) until its node is declared dead (its copies died with
 * it); with `last` (the client disconnects) it gets one more try. Lock
 * held; dropped meanwhile. */
void prism__deletions_run(prism_client *c, bool last)
{
    int64_t now = prism_mono_ms();
    deletion *list = c->deletions;
    c->deletions = NULL;
    for (deletion **pp = &c->deletions_later; *pp;) {
        deletion *d = *pp;
        if (!last && d->next_ms > now) {
            pp = &d->next;
            continue;
        }
        *pp = d->next;
        d->next = list;
        list = d;
    }
    if (!list)
        return;
    pthread_mutex_unlock(&c->lock);
    deletion *again = NULL;
    char unreachable[1024] = ""; /* one timeout per store and pass, not one per copy */
    for (deletion *d = list, *next; d; d = next) {
        next = d->next;
        bool done = false;
        if (!*unreachable || strcmp(d->store_url, unreachable) != 0) {
            done = delete_copy(c, d);
            if (!done)
                snprintf(unreachable, sizeof unreachable, "%s", d->store_url);
        }
        if (done || last || ++d->tries >= DELETE_TRIES) {
            deletion_free(d);
            continue;
        }
        int64_t wait = (int64_t)DELETE_RETRY_MS << (d->tries < 4 ? d->tries - 1 : 3);
        d->next_ms = prism_mono_ms() + (wait < 10000 ? wait : 10000);
        d->next = again;
        again = d;
    }
    pthread_mutex_lock(&c->lock);
    while (again) {
        deletion *d = again;
        again = d->next;
        d->next = c->deletions_later;
        c->deletions_later = d;
    }
}

void prism__deletion_add(prism_client *c, const obj_entry *e)
{
    deletion *d = calloc(1, sizeof *d);
    if (!d)
        return;
    d->id = e->id;
    d->store_socket = strdup(e->store_socket);
    d->node_id = strdup(e->node_id ? e->node_id : "");
    d->store_url = strdup(e->store_url ? e->store_url : "");
    if (!d->store_socket || !d->node_id || !d->store_url) {
        deletion_free(d);
        return;
    }
    d->next = c->deletions;
    c->deletions = d;
    pthread_cond_signal(&c->courier_wake);
}

void prism__deletions_node_dead(prism_client *c, const char *node_id)
{
    for (deletion **pp = &c->deletions_later; *pp;) {
        deletion *d = *pp;
        if (!strcmp(d->node_id, node_id)) {
            *pp = d->next;
            deletion_free(d);
        } else {
            pp = &d->next;
        }
    }
}

static void *courier_main(void *arg)
{
    prism_client *c = arg;
    pthread_mutex_lock(&c->lock);
    while (!c->stopping) {
        prism__borrow_flush_locked(c);
        prism__deletions_run(c, false);
        if (c->stopping || c->deletions || (c->outbox && !c->outbox_sending))
            continue;
        int64_t due = INT64_MAX; /* the next copy whose store was out of reach */
        for (const deletion *d = c->deletions_later; d; d = d->next)
            if (d->next_ms < due)
                due = d->next_ms;
        if (due == INT64_MAX)
            pthread_cond_wait(&c->courier_wake, &c->lock);
        else if (due > prism_mono_ms())
            prism__wake_wait(c, &c->courier_wake, due - prism_mono_ms());
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

int prism__courier_start(prism_client *c)
{
    return pthread_create(&c->courier_thread, NULL, courier_main, c) == 0 ? 0 : -1;
}

void prism__courier_stop(prism_client *c)
{
    pthread_mutex_lock(&c->lock);
    pthread_cond_broadcast(&c->courier_wake);
    pthread_mutex_unlock(&c->lock);
    if (c->courier_thread)
        pthread_join(c->courier_thread, NULL);
    c->courier_thread = 0;
}
