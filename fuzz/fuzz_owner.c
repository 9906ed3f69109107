/* The owners' protocol over NATS (borrow.c, docs/tasks.md#borrowing) and an
 * owner's reader of DONE frames (prism__task_done in submit.c), run against
 * a client whose table holds owned and borrowed objects in every state.
 *
 * Input: one byte choosing where the rest goes, then the message:
 *   0: a request on prism.owner.HEX (GET, ADD, REMOVE, PING), as from a borrower
 *   1: an answer on prism.owner.HEX.r, as from an owner (long-poll answers)
 *   2: the payload of a DONE frame (after the task id) for a task of one return
 * Objects are named bytes([i]) * 20 for i in 0..5 (see make_seeds.py). */
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "codec.h"
#include "fake.h"

#define SELF_HEX "0123456789abcdef0123456789abcdef"
#define OTHER "owner:fedcba9876543210fedcba9876543210"

static prism_client *client_new(void)
{
    prism_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->changed, NULL);
    pthread_cond_init(&c->leaser_wake, NULL);
    c->epfd = c->wakefd = -1;
    c->nbuckets = 64;
    c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
    snprintf(c->self_addr, sizeof c->self_addr, "owner:%s", SELF_HEX);
    c->bus = fuzz_bus();
    if (!c->buckets || prism__borrow_start(c) != 0) {
        prism_disconnect(c);
        return NULL;
    }
    return c;
}

static obj_entry *add(prism_client *c, uint8_t n, int refs)
{
    prism_object_id id;
    memset(id.b, n, sizeof id.b);
    obj_entry *e = prism__obj_add(c, &id);
    if (e)
        e->refs = refs;
    return e;
}

/* The table: one object of each kind a message can name. Lock held. */
static void populate(prism_client *c)
{
    static const uint8_t one[] = {1, 4, 0, 0, 0, '1'}; /* JSON "1" */
    obj_entry *e;
    if ((e = add(c, 0, 1)))
        prism__obj_set_inline(c, e, one, sizeof one);
    add(c, 1, 1); /* owned, pending */
    if ((e = add(c, 2, 0))) {
        prism__obj_set_stored(c, e, "n", "/nonexistent/store.sock", "http://127.0.0.1:1", 10);
        e->borrowers = calloc(1, sizeof *e->borrowers);
        if (e->borrowers && !(e->borrowers->addr = strdup(OTHER))) {
            free(e->borrowers);
            e->borrowers = NULL;
        }
        if (e->borrowers) {
            e->borrowers->count = 2;
            c->nborrowers++;
        }
    }
    for (uint8_t n = 3; n <= 4; n++) { /* borrowed, pending; 3 has a request out */
        if ((e = add(c, n, 1)) && (e->owner = strdup(OTHER))) {
            c->nborrowed++;
            e->registrations = 1;
            e->resolving = n == 3;
            c->nresolving += n == 3;
        }
    }
    if ((e = add(c, 5, 1)))
        prism__obj_set_failed(c, e, PRISM_ERR_TASK, "pkg/fn", "it failed");
}

/* A DONE for a task of one return whose object is pending. */
static void done(prism_client *c, pool *p, const uint8_t *data, size_t len)
{
    task_spec *t = calloc(1, sizeof *t);
    if (!t)
        return;
    memset(t->id.b, 7, sizeof t->id.b);
    t->package = strdup("pkg");
    t->function = strdup("fn");
    t->num_returns = 1;
    t->in_flight = true;
    t->pool = p;
    prism_object_id oid;
    prism_object_id_make(&oid, &t->id, 0);
    obj_entry *e = prism__obj_add(c, &oid);
    if (e)
        e->refs = 1;
    prism__task_done(c, t, data, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    prism_client *c = client_new();
    pool *p = calloc(1, sizeof *p);
    if (!c || !p) {
        prism_disconnect(c);
        free(p);
        return 0;
    }
    pthread_mutex_lock(&c->lock);
    populate(c);
    pthread_mutex_unlock(&c->lock);
    /* A heap copy of exactly the message: reads past it are caught. */
    uint8_t *msg = malloc(size);
    if (msg) {
        memcpy(msg, data + 1, size - 1);
        switch (data[0] % 3) {
        case 0: fuzz_bus_deliver(c->owner_subject, "reply.subject", msg, size - 1); break;
        case 1: fuzz_bus_deliver(c->reply_subject, NULL, msg, size - 1); break;
        default:
            pthread_mutex_lock(&c->lock);
            done(c, p, msg, size - 1);
            pthread_mutex_unlock(&c->lock);
            break;
        }
        free(msg);
    }
    prism_disconnect(c);
    free(p);
    return 0;
}
