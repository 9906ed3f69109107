/* Borrowing: references to objects that another process owns.
 *
 * Every client answers requests about the objects it owns on NATS
 * `prism.owner.HEX` (its address is "owner:HEX"):
 *   GET     a borrower wants a value: answered at once when the object has
 *           settled, else when it settles or the long-poll wait ends;
 *   ADD     a process holds references: for itself, or for a task's owner
 *           when a worker returns a value that holds them;
 *   REMOVE  it dropped them;
 *   PING    liveness: no responder on the subject means the process is gone.
 * Borrowed objects have entries in the same table (`owner` set) that cache
 * the answer. The message layout is in docs/tasks.md.
 *
 * Failures: a borrower whose owner has no responder fails its pending gets
 * with PRISM_ERR_OWNER_DIED (fate sharing); an owner drops the borrower
 * records of processes that no longer answer a ping. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "codec.h"
#include "prism_subjects.h"
#include "prism_time.h"
#include "prism_wire.h"

#define LONG_POLL_MS 2000                /* an owner holds a GET this long for a pending object */
#define ANSWER_MS 2000                   /* synchronous requests wait this long */
#define OVERDUE_MS (LONG_POLL_MS + 1000) /* a GET unanswered this long: is the owner alive? */
#define OWNER_CHECK_MS 500
#define BORROWER_CHECK_MS 5000
#define MAX_ANSWER (900u * 1024u) /* under the NATS server's default 1 MiB payload */
#define MAX_CHECKED 32            /* processes pinged per check */

enum { ANS_INLINE = 1, ANS_STORED, ANS_FAILED, ANS_PENDING, ANS_UNKNOWN };

static void request_item(prism_buf *b, const prism_object_id *id, uint32_t count)
{
    prism_writer w = {.buf = b};
    pw_bytes(&w, id->b, sizeof id->b);
    pw_u32(&w, count);
}

/* ---------- the outbox ---------- */

static void outbox_put(prism_client *c, const char *subject, const char *reply, prism_buf *b)
{
    outmsg *m = calloc(1, sizeof *m);
    if (!m) {
        prism_buf_free(b);
        return;
    }
    m->subject = strdup(subject);
    m->reply = reply ? strdup(reply) : NULL;
    m->data = (uint8_t *)prism_buf_take(b, &m->len);
    if (!c->outbox)
        c->outbox_tail = &c->outbox;
    *c->outbox_tail = m;
    c->outbox_tail = &m->next;
    pthread_cond_signal(&c->courier_wake);
}

static outmsg *outbox_take(prism_client *c)
{
    outmsg *list = c->outbox;
    c->outbox = NULL;
    c->outbox_tail = NULL;
    return list;
}

static void send_all(prism_client *c, outmsg *list)
{
    for (outmsg *m = list, *next; m; m = next) {
        next = m->next;
        if (m->subject && m->data) {
            if (m->reply)
                prism_bus_publish_request(c->bus, m->subject, m->reply, m->data, m->len);
            else
                prism_bus_publish(c->bus, m->subject, m->data, m->len);
        }
        free(m->subject);
        free(m->reply);
        free(m->data);
        free(m);
    }
}

/* One thread at a time sends, until the outbox is empty: an owner must see
 * a borrower's ADD before its REMOVE, which two threads sending what each
 * took could reorder. Lock held, dropped meanwhile. */
void prism__borrow_flush_locked(prism_client *c)
{
    while (c->outbox && !c->outbox_sending) {
        outmsg *list = outbox_take(c);
        c->outbox_sending = true;
        pthread_mutex_unlock(&c->lock);
        send_all(c, list);
        pthread_mutex_lock(&c->lock);
        c->outbox_sending = false;
    }
}

void prism__borrow_flush(prism_client *c)
{
    pthread_mutex_lock(&c->lock);
    prism__borrow_flush_locked(c);
    pthread_mutex_unlock(&c->lock);
}

/* Tells `owner` that this process dropped `count` references to `id`. Lock held. */
static void queue_remove(prism_client *c, const char *owner, const prism_object_id *id, int count)
{
    char subject[96];
    if (count <= 0 || !wire_owner_subject(owner, subject, sizeof subject))
        return;
    prism_buf b;
    wire_owner_request(&b, OWNER_REMOVE, c->self_addr, 0, 1);
    request_item(&b, id, (uint32_t)count);
    outbox_put(c, subject, NULL, &b);
}

/* ---------- the owner's side ---------- */

static void borrower_add(prism_client *c, obj_entry *e, const char *addr, int count)
{
    for (borrower *b = e->borrowers; b; b = b->next) {
        if (!strcmp(b->addr, addr)) {
            /* Saturates: a peer's adds must not wrap the count negative. */
            b->count = count > INT_MAX - b->count ? INT_MAX : b->count + count;
            return;
        }
    }
    borrower *b = calloc(1, sizeof *b);
    if (!b || !(b->addr = strdup(addr))) {
        free(b);
        return;
    }
    b->count = count;
    b->next = e->borrowers;
    e->borrowers = b;
    c->nborrowers++;
}

/* Drops `count` of `addr`'s references (all of them when `count` < 0) and
 * frees the object when nothing holds it any more. */
static void borrower_remove(prism_client *c, obj_entry *e, const char *addr, int count)
{
    for (borrower **pp = &e->borrowers; *pp; pp = &(*pp)->next) {
        borrower *b = *pp;
        if (strcmp(b->addr, addr) != 0)
            continue;
        b->count = count < 0 ? 0 : b->count - count;
        if (b->count <= 0) {
            *pp = b->next;
            free(b->addr);
            free(b);
            c->nborrowers--;
        }
        break;
    }
    prism__obj_maybe_free(c, e);
}

/* A FAILED answer with an error of this process's making. */
static void write_failed(prism_buf *b, const prism_object_id *id, prism_status s,
                         const char *message)
{
    prism_value *err = prism_value_error("", message);
    prism_writer w = {.buf = b};
    pw_u8(&w, ANS_FAILED);
    pw_bytes(&w, id->b, sizeof id->b);
    pw_u8(&w, (uint8_t)s);
    size_t at = b->len;
    pw_u32(&w, 0);
    if (err)
        pw_value(&w, err, NULL);
    prism_value_free(err);
    uint32_t n = (uint32_t)(b->len - at - 4); /* patched in: the value's size */
    for (int i = 0; i < 4 && !w.failed; i++)
        b->data[at + (size_t)i] = (char)(n >> (8 * i));
}

/* An answer to GET: u8 kind, object id, then the value as the kind says. */
static void encode_answer(const obj_entry *e, const prism_object_id *id, prism_buf *b)
{
    prism_buf_init(b, 2u << 20);
    prism_writer w = {.buf = b};
    if (!e || e->owner) {
        pw_u8(&w, ANS_UNKNOWN);
        pw_bytes(&w, id->b, sizeof id->b);
    } else if (e->state == OBJ_PENDING) {
        pw_u8(&w, ANS_PENDING);
        pw_bytes(&w, id->b, sizeof id->b);
    } else if (e->state == OBJ_FAILED) {
        pw_u8(&w, ANS_FAILED);
        pw_bytes(&w, id->b, sizeof id->b);
        pw_u8(&w, (uint8_t)(e->error ? e->error : PRISM_ERR_TASK));
        pw_u32(&w, (uint32_t)e->inline_len);
        pw_bytes(&w, e->inline_buf, e->inline_len);
    } else if (e->inline_buf && e->inline_len > MAX_ANSWER) {
        /* Owners with an object store keep large values there; one without cannot hand them out. */
        char msg[160];
        snprintf(msg, sizeof msg,
                 "the value (%zu bytes) is too large to send from its owner, "
                 "which has no object store",
                 e->inline_len);
        write_failed(b, id, PRISM_ERR_OBJECT_LOST, msg);
    } else if (e->inline_buf) {
        pw_u8(&w, ANS_INLINE);
        pw_bytes(&w, id->b, sizeof id->b);
        pw_u32(&w, (uint32_t)e->inline_len);
        pw_bytes(&w, e->inline_buf, e->inline_len);
    } else {
        pw_u8(&w, ANS_STORED);
        pw_bytes(&w, id->b, sizeof id->b);
        pw_str(&w, e->node_id);
        pw_str(&w, e->store_socket);
        pw_str(&w, e->store_url);
        pw_u64(&w, e->size);
    }
}

/* Answers the borrowers waiting for `id` (e NULL: it is gone). Lock held. */
static void answer_waiters(prism_client *c, const prism_object_id *id, const obj_entry *e)
{
    for (remote_get **pp = &c->remote_gets; *pp;) {
        remote_get *g = *pp;
        if (memcmp(g->id.b, id->b, sizeof id->b) != 0) {
            pp = &g->next;
            continue;
        }
        *pp = g->next;
        prism_buf b;
        encode_answer(e, id, &b);
        outbox_put(c, g->reply, NULL, &b);
        free(g->reply);
        free(g);
    }
}

void prism__borrow_settled(prism_client *c, obj_entry *e)
{
    if (c->remote_gets && !e->owner)
        answer_waiters(c, &e->id, e);
}

void prism__borrow_forget(prism_client *c, obj_entry *e)
{
    if (e->owner) {
        queue_remove(c, e->owner, &e->id, e->registrations);
        if (e->resolving)
            c->nresolving--;
        e->resolving = false;
        e->registrations = 0;
        free(e->owner);
        e->owner = NULL;
        c->nborrowed--;
        return;
    }
    for (borrower *b = e->borrowers, *next; b; b = next) {
        next = b->next;
        free(b->addr);
        free(b);
        c->nborrowers--;
    }
    e->borrowers = NULL;
    if (c->remote_gets)
        answer_waiters(c, &e->id, NULL);
}

/* A GET: answered now, or held until the object settles. Lock held. */
static bool on_get(prism_client *c, const prism_object_id *id, uint32_t wait_ms, const char *reply,
                   prism_buf *ans)
{
    obj_entry *e = prism__obj_find(c, id);
    if (e && !e->owner && e->lost && !prism__reconstruct(c, e)) {
        char msg[512];
        prism__lost_message(e, msg, sizeof msg);
        prism_buf_init(ans, 1u << 20);
        write_failed(ans, id, PRISM_ERR_OBJECT_LOST, msg);
        return true;
    }
    if (e && !e->owner && e->state == OBJ_PENDING && wait_ms && reply) {
        remote_get *g = calloc(1, sizeof *g);
        if (g && (g->reply = strdup(reply))) {
            g->id = *id;
            g->deadline_ms = prism_mono_ms() + (wait_ms > LONG_POLL_MS ? LONG_POLL_MS : wait_ms);
            g->next = c->remote_gets;
            c->remote_gets = g;
            pthread_cond_signal(&c->leaser_wake); /* answered at its deadline */
            return false;
        }
        free(g);
    }
    encode_answer(e, id, ans);
    return true;
}

static void on_request(prism_bus *bus, const char *subject, const char *reply, const char *data,
                       size_t len, void *ud)
{
    prism_client *c = ud;
    prism_reader r = {(const uint8_t *)data, len, 0, NULL, NULL, NULL};
    uint8_t op = pr_u8(&r);
    char *from = pr_str(&r);
    uint32_t wait_ms = pr_u32(&r);
    uint32_t n = pr_u32(&r);
    if (r.failed || !from || !*from || n > r.left / (PRISM_OBJECT_ID_BYTES + 4)) {
        free(from);
        return; /* malformed: nothing to answer */
    }
    prism_buf ans;
    prism_buf_init(&ans, 1u << 20);
    prism_writer w = {.buf = &ans};
    bool answer = true;
    pthread_mutex_lock(&c->lock);
    if (op == OWNER_GET && n == 1) {
        prism_object_id id;
        memcpy(id.b, pr_bytes(&r, sizeof id.b), sizeof id.b);
        prism_buf_free(&ans);
        answer = on_get(c, &id, wait_ms, reply, &ans);
    } else if (op == OWNER_ADD || op == OWNER_REMOVE) {
        uint32_t unknown = 0;
        for (uint32_t i = 0; i < n; i++) {
            prism_object_id id;
            memcpy(id.b, pr_bytes(&r, sizeof id.b), sizeof id.b);
            int count = (int)pr_u32(&r);
            obj_entry *e = prism__obj_find(c, &id);
            if (!e || e->owner || count <= 0) {
                unknown++;
            } else if (op == OWNER_ADD) {
                borrower_add(c, e, from, count);
            } else {
                borrower_remove(c, e, from, count);
            }
        }
        pw_u32(&w, unknown);
    } else if (op == OWNER_HOLDS) {
        /* An object store asks which of its copies still have an owner here;
         * it deletes the rest (services/objectstore/os_owners.c). */
        pw_u32(&w, n);
        for (uint32_t i = 0; i < n; i++) {
            prism_object_id id;
            memcpy(id.b, pr_bytes(&r, sizeof id.b), sizeof id.b);
            pr_u32(&r);
            obj_entry *e = prism__obj_find(c, &id);
            pw_u8(&w, e && !e->owner);
        }
    } else {
        pw_u8(&w, 0); /* PING, or an operation this version does not know */
    }
    pthread_mutex_unlock(&c->lock);
    if (answer && reply)
        prism_bus_publish(bus, reply, ans.data, ans.len);
    prism_buf_free(&ans);
    free(from);
    prism__borrow_flush(c);
}

/* ---------- the borrower's side ---------- */

static void fail_owner_died(prism_client *c, obj_entry *e)
{
    char msg[256];
    snprintf(msg, sizeof msg,
             "its owner died: the process %s that made it is gone, and an "
             "object shares the fate of its owner",
             e->owner);
    prism__obj_set_failed(c, e, PRISM_ERR_OWNER_DIED, "", msg);
}

void prism__borrow_resolve(prism_client *c, obj_entry *e)
{
    if (!e->owner || e->resolving || e->state != OBJ_PENDING)
        return;
    char subject[96];
    if (!wire_owner_subject(e->owner, subject, sizeof subject)) {
        fail_owner_died(c, e);
        return;
    }
    e->resolving = true;
    e->resolve_sent_ms = prism_mono_ms();
    c->nresolving++;
    prism_buf b;
    wire_owner_request(&b, OWNER_GET, c->self_addr, LONG_POLL_MS, 1);
    request_item(&b, &e->id, 0);
    outbox_put(c, subject, c->reply_subject, &b);
}

/* Applies a GET answer (after its kind and id) to a pending borrowed entry. Lock held. */
static void apply_answer(prism_client *c, obj_entry *e, uint8_t kind, prism_reader *r)
{
    if (e->resolving) {
        e->resolving = false;
        c->nresolving--;
    }
    if (e->state != OBJ_PENDING)
        return;
    if (kind == ANS_INLINE) {
        uint32_t n = pr_u32(r);
        const uint8_t *p = pr_bytes(r, n);
        if (p)
            prism__obj_set_inline(c, e, p, n);
    } else if (kind == ANS_STORED) {
        char *node = pr_str(r), *sock = pr_str(r), *url = pr_str(r);
        uint64_t size = pr_u64(r);
        if (!r->failed)
            prism__obj_set_stored(c, e, node, sock, url, size);
        free(node);
        free(sock);
        free(url);
    } else if (kind == ANS_FAILED) {
        prism_status s = (prism_status)pr_u8(r);
        uint32_t n = pr_u32(r);
        const uint8_t *p = pr_bytes(r, n);
        if (p)
            prism__obj_set_failed_encoded(c, e, s ? s : PRISM_ERR_TASK, p, n);
    } else if (kind == ANS_PENDING) {
        prism__borrow_resolve(c, e);
        return;
    } else {
        r->failed = 1;
    }
    if (r->failed || kind == ANS_UNKNOWN) {
        char msg[200];
        snprintf(msg, sizeof msg, "its owner %s no longer has it (it was freed)", e->owner);
        prism__obj_set_failed(c, e, PRISM_ERR_OBJECT_LOST, "", msg);
    }
}

static void on_answer(prism_bus *bus, const char *subject, const char *reply, const char *data,
                      size_t len, void *ud)
{
    prism_client *c = ud;
    prism_reader r = {(const uint8_t *)data, len, 0, NULL, NULL, NULL};
    uint8_t kind = pr_u8(&r);
    const uint8_t *idb = pr_bytes(&r, PRISM_OBJECT_ID_BYTES);
    if (!idb)
        return;
    prism_object_id id;
    memcpy(id.b, idb, sizeof id.b);
    pthread_mutex_lock(&c->lock);
    obj_entry *e = prism__obj_find(c, &id);
    if (e && e->owner)
        apply_answer(c, e, kind, &r);
    pthread_mutex_unlock(&c->lock);
    prism__borrow_flush(c);
}

void prism__borrow_fetch_now(prism_client *c, const prism_object_id *id)
{
    char subject[96];
    pthread_mutex_lock(&c->lock);
    obj_entry *e = prism__obj_find(c, id);
    if (!e || !e->owner || e->state != OBJ_PENDING || e->resolving) {
        pthread_mutex_unlock(&c->lock);
        return;
    }
    if (!wire_owner_subject(e->owner, subject, sizeof subject)) {
        fail_owner_died(c, e);
        pthread_mutex_unlock(&c->lock);
        return;
    }
    e->resolving = true; /* no duplicate request meanwhile */
    e->resolve_sent_ms = prism_mono_ms();
    c->nresolving++;
    pthread_mutex_unlock(&c->lock);
    prism_buf b;
    wire_owner_request(&b, OWNER_GET, c->self_addr, 0, 1);
    request_item(&b, id, 0);
    char *reply = NULL;
    size_t rlen = 0;
    int rc = prism_bus_request(c->bus, subject, b.data, b.len, ANSWER_MS, &reply, &rlen);
    prism_buf_free(&b);
    pthread_mutex_lock(&c->lock);
    e = prism__obj_find(c, id);
    if (e && e->owner && e->resolving) {
        prism_reader r = {(const uint8_t *)reply, rlen, 0, NULL, NULL, NULL};
        uint8_t kind = pr_u8(&r);
        pr_bytes(&r, PRISM_OBJECT_ID_BYTES);
        if (rc == PRISM_BUS_NO_RESPONDERS) {
            e->resolving = false;
            c->nresolving--;
            fail_owner_died(c, e);
        } else if (rc == PRISM_BUS_OK && !r.failed) {
            apply_answer(c, e, kind, &r);
        } else { /* slow or unreachable for now: the long poll and its checks take over */
            e->resolving = false;
            c->nresolving--;
            prism__borrow_resolve(c, e);
        }
    }
    pthread_mutex_unlock(&c->lock);
    free(reply);
    prism__borrow_flush(c);
}

/* One synchronous ADD of `ids` for `borrower` at `owner`. Returns the bus status. */
static int send_add(prism_client *c, const char *owner, const char *who, const prism_object_id *ids,
                    size_t n)
{
    char subject[96];
    if (!wire_owner_subject(owner, subject, sizeof subject))
        return PRISM_BUS_NO_RESPONDERS;
    prism_buf b;
    wire_owner_request(&b, OWNER_ADD, who, 0, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        request_item(&b, &ids[i], 1);
    char *reply = NULL;
    size_t rlen = 0;
    int rc = b.len ? prism_bus_request(c->bus, subject, b.data, b.len, ANSWER_MS, &reply, &rlen)
                   : PRISM_BUS_ERROR;
    prism_buf_free(&b);
    free(reply);
    return rc;
}

void prism__borrow_register(prism_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    prism_object_id *ids = c->unreg;
    size_t n = c->nunreg;
    c->unreg = NULL;
    c->nunreg = c->capunreg = 0;
    char **owners = n ? calloc(n, sizeof *owners) : NULL;
    size_t keep = 0;
    for (size_t i = 0; owners && i < n; i++) {
        obj_entry *e = prism__obj_find(c, &ids[i]);
        if (!e || !e->owner || e->refs <= 0 || e->registrations || e->registering)
            continue;
        e->registering = true;
        owners[keep] = strdup(e->owner);
        ids[keep++] = ids[i];
    }
    pthread_mutex_unlock(&c->lock);
    /* One request per owner, for all of its objects. */
    prism_object_id *group = keep ? malloc(keep * sizeof *group) : NULL;
    bool *done = keep ? calloc(keep, sizeof *done) : NULL;
    for (size_t i = 0; group && done && i < keep; i++) {
        if (done[i] || !owners[i])
            continue;
        size_t g = 0;
        for (size_t k = i; k < keep; k++)
            if (!done[k] && owners[k] && !strcmp(owners[k], owners[i]))
                group[g++] = ids[k];
        int rc = send_add(c, owners[i], c->self_addr, group, g);
        pthread_mutex_lock(&c->lock);
        for (size_t k = i; k < keep; k++) {
            if (done[k] || !owners[k] || strcmp(owners[k], owners[i]) != 0)
                continue;
            done[k] = true;
            obj_entry *e = prism__obj_find(c, &ids[k]);
            if (e && e->owner) {
                e->registering = false;
                if (rc == PRISM_BUS_OK)
                    e->registrations++;
            } else if (rc == PRISM_BUS_OK) {
                queue_remove(c, owners[i], &ids[k], 1); /* dropped while we registered it */
            }
        }
        pthread_mutex_unlock(&c->lock);
    }
    for (size_t i = 0; owners && i < keep; i++)
        free(owners[i]);
    free(owners);
    free(group);
    free(done);
    free(ids);
    prism__borrow_flush(c);
}

/* `who` borrows (add) or stops borrowing an object this client owns. */
static void own_borrower(prism_client *c, const prism_ref *ref, const char *who, bool add)
{
    if (ref->client != c)
        return;
    pthread_mutex_lock(&c->lock);
    obj_entry *e = prism__obj_find(c, &ref->id);
    if (e && !e->owner) {
        if (add)
            borrower_add(c, e, who, 1);
        else
            borrower_remove(c, e, who, 1);
    }
    pthread_mutex_unlock(&c->lock);
}

void prism__borrow_add_for(prism_client *c, const prism_ref *ref, const char *who)
{
    if (!c || !ref || !who || !*who)
        return;
    if (!ref->owner) {
        own_borrower(c, ref, who, true);
        return;
    }
    if (strcmp(ref->owner, who) != 0)
        send_add(c, ref->owner, who, &ref->id, 1);
}

void prism__borrow_remove_for(prism_client *c, const prism_ref *ref, const char *who)
{
    if (!c || !ref || !who || !*who)
        return;
    if (!ref->owner) {
        own_borrower(c, ref, who, false);
        return;
    }
    char subject[96];
    if (strcmp(ref->owner, who) == 0 || !wire_owner_subject(ref->owner, subject, sizeof subject))
        return;
    prism_buf b;
    wire_owner_request(&b, OWNER_REMOVE, who, 0, 1);
    request_item(&b, &ref->id, 1);
    if (b.len)
        prism_bus_publish(c->bus, subject, b.data, b.len);
    prism_buf_free(&b);
}

/* ---------- liveness ---------- */

/* Pings the `n` processes at once (one wait of ANSWER_MS at most, however
 * many are slow): live[k] is false for those gone. Lock not held. */
static void alive(prism_client *c, char *const *addrs, size_t n, bool *live)
{
    char subjects[MAX_CHECKED][96];
    const char *to[MAX_CHECKED];
    size_t m = 0, at[MAX_CHECKED];
    for (size_t k = 0; k < n; k++) {
        live[k] = wire_owner_subject(addrs[k], subjects[m], sizeof subjects[m]);
        if (live[k]) {
            to[m] = subjects[m];
            at[m++] = k;
        }
    }
    prism_buf b;
    wire_owner_request(&b, OWNER_PING, c->self_addr, 0, 0);
    int rc[MAX_CHECKED];
    prism_bus_request_all(c->bus, to, m, b.data, b.len, ANSWER_MS, rc);
    prism_buf_free(&b);
    /* Only "nobody subscribes" is proof: a slow answer is not a death. */
    for (size_t i = 0; i < m; i++)
        live[at[i]] = rc[i] != PRISM_BUS_NO_RESPONDERS;
}

static bool add_unique(char **list, size_t *n, const char *addr)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(list[i], addr))
            return true;
    if (*n >= MAX_CHECKED)
        return false;
    list[(*n)++] = strdup(addr);
    return true;
}

/* Pings the owners of overdue GETs: a dead one fails them, a live one gets them again. */
static void check_owners(prism_client *c, int64_t now)
{
    char *owners[MAX_CHECKED];
    size_t n = 0;
    for (size_t i = 0; i < c->nbuckets; i++)
        for (obj_entry *e = c->buckets[i]; e; e = e->next)
            if (e->owner && e->resolving && now - e->resolve_sent_ms > OVERDUE_MS)
                add_unique(owners, &n, e->owner);
    if (!n)
        return;
    bool live[MAX_CHECKED];
    pthread_mutex_unlock(&c->lock);
    alive(c, owners, n, live);
    pthread_mutex_lock(&c->lock);
    /* Settling runs task code paths that may free entries: collect first. */
    size_t cap = 64, m = 0;
    prism_object_id *ids = malloc(cap * sizeof *ids);
    for (size_t i = 0; ids && i < c->nbuckets; i++) {
        for (obj_entry *e = c->buckets[i]; e; e = e->next) {
            if (!e->owner || !e->resolving || now - e->resolve_sent_ms <= OVERDUE_MS)
                continue;
            if (m == cap) {
                prism_object_id *more = realloc(ids, 2 * cap * sizeof *ids);
                if (!more)
                    break;
                ids = more;
                cap *= 2;
            }
            ids[m++] = e->id;
        }
    }
    for (size_t i = 0; ids && i < m; i++) {
        obj_entry *e = prism__obj_find(c, &ids[i]);
        if (!e || !e->owner || !e->resolving)
            continue;
        bool checked = false, dead = false;
        for (size_t k = 0; k < n; k++)
            if (!strcmp(owners[k], e->owner)) {
                checked = true;
                dead = !live[k];
            }
        if (!checked)
            continue;
        e->resolving = false;
        c->nresolving--;
        if (dead)
            fail_owner_died(c, e);
        else
            prism__borrow_resolve(c, e);
    }
    free(ids);
    for (size_t k = 0; k < n; k++)
        free(owners[k]);
}

/* Drops the borrower records of processes that are gone. */
static void check_borrowers(prism_client *c)
{
    char *addrs[MAX_CHECKED];
    size_t n = 0;
    for (size_t i = 0; i < c->nbuckets && c->nborrowers; i++)
        for (obj_entry *e = c->buckets[i]; e; e = e->next)
            for (borrower *b = e->borrowers; b; b = b->next)
                add_unique(addrs, &n, b->addr);
    if (!n)
        return;
    bool live[MAX_CHECKED];
    pthread_mutex_unlock(&c->lock);
    alive(c, addrs, n, live);
    pthread_mutex_lock(&c->lock);
    for (size_t k = 0; k < n; k++) {
        if (live[k])
            continue;
        /* Freeing entries changes the table: one entry at a time, from the top. */
        for (bool again = true; again;) {
            again = false;
            for (size_t i = 0; i < c->nbuckets && !again; i++) {
                for (obj_entry *e = c->buckets[i]; e && !again; e = e->next) {
                    for (borrower *b = e->borrowers; b; b = b->next) {
                        if (!strcmp(b->addr, addrs[k])) {
                            borrower_remove(c, e, addrs[k], -1);
                            again = true;
                            break;
                        }
                    }
                }
            }
        }
    }
    for (size_t k = 0; k < n; k++)
        free(addrs[k]);
}

void prism__borrow_tick(prism_client *c)
{
    int64_t now = prism_mono_ms();
    for (remote_get **pp = &c->remote_gets; *pp;) {
        remote_get *g = *pp;
        if (now < g->deadline_ms) {
            pp = &g->next;
            continue;
        }
        *pp = g->next;
        prism_buf b;
        prism_buf_init(&b, 64);
        prism_writer w = {.buf = &b};
        pw_u8(&w, ANS_PENDING);
        pw_bytes(&w, g->id.b, sizeof g->id.b);
        outbox_put(c, g->reply, NULL, &b);
        free(g->reply);
        free(g);
    }
    if (c->nresolving && now - c->last_resolve_check_ms >= OWNER_CHECK_MS) {
        c->last_resolve_check_ms = now;
        check_owners(c, now);
    }
    if (c->nborrowers && now - c->last_borrower_check_ms >= BORROWER_CHECK_MS) {
        c->last_borrower_check_ms = now;
        check_borrowers(c);
    }
}

int prism__borrow_start(prism_client *c)
{
    const char *hex = c->self_addr + strlen("owner:");
    prism_subject_owner(c->owner_subject, sizeof c->owner_subject, hex, false);
    prism_subject_owner(c->reply_subject, sizeof c->reply_subject, hex, true);
    if (prism_bus_subscribe(c->bus, c->owner_subject, NULL, on_request, c) != PRISM_BUS_OK ||
        prism_bus_subscribe(c->bus, c->reply_subject, NULL, on_answer, c) != PRISM_BUS_OK)
        return -1;
    return 0;
}

void prism__borrow_free_entry(obj_entry *e)
{
    for (borrower *b = e->borrowers, *next; b; b = next) {
        next = b->next;
        free(b->addr);
        free(b);
    }
    e->borrowers = NULL;
    free(e->owner);
    e->owner = NULL;
}

void prism__borrow_free(prism_client *c)
{
    free(c->unreg);
    c->unreg = NULL;
    for (outmsg *m = outbox_take(c), *next; m; m = next) {
        next = m->next;
        free(m->subject);
        free(m->reply);
        free(m->data);
        free(m);
    }
}

void prism__borrow_stop(prism_client *c)
{
    if (!c->bus || !c->owner_subject[0])
        return;
    prism_bus_unsubscribe(c->bus, c->owner_subject);
    prism_bus_unsubscribe(c->bus, c->reply_subject);
    /* What this process borrowed goes back to the owners. */
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->nbuckets; i++)
        for (obj_entry *e = c->buckets[i]; e; e = e->next)
            if (e->owner)
                queue_remove(c, e->owner, &e->id, e->registrations);
    for (remote_get *g = c->remote_gets, *next; g; g = next) {
        next = g->next;
        free(g->reply);
        free(g);
    }
    c->remote_gets = NULL;
    prism__borrow_flush_locked(c);
    pthread_mutex_unlock(&c->lock);
}
