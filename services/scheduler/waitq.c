/* Lease requests waiting for room (docs/scheduler.md, "Queued leases").
 *
 * An owner that asks with `queue_ms` is not answered busy: its request
 * waits here, under the shape it asks for (resources and placement), and
 * lease.c's pump grants it when a node's report shows room. Within a shape
 * the owners take turns: the pump serves the oldest request of the owner
 * whose turn it is, then moves the turn on, so an owner with many requests
 * does not keep the others waiting.
 *
 *   prism.sched.lease.cancel  {owner_id, request_id?}
 *       drops that request of the owner, or (no request_id) all of them;
 *       every replica hears it (no queue group), each drops what it holds.
 *
 * What waits is bounded, per owner and in all. A request is answered busy
 * when it waited its `queue_ms`; one of an owner that is gone (its owner
 * subject has no responder) is dropped without an answer. Everything here
 * runs with `lock` held unless said otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prism_log.h"
#include "prism_subjects.h"
#include "prism_time.h"
#include "prism_wire.h"
#include "scheduler.h"

#define OWNER_CHECK_MS 1000 /* how often the owners of waiting requests are pinged */
#define OWNER_PING_MS 500   /* only "no responders" is death: a slow owner is alive */
#define OWNERS_PER_CHECK 32

void sched_waiter_free(sched_waiter *w)
{
    if (!w)
        return;
    free(w->owner);
    free(w->request_id);
    free(w->reply);
    json_decref(w->msg);
    free(w);
}

static sched_shape *shape_find(scheduler *s, const char *key)
{
    for (sched_shape *sh = s->shapes; sh; sh = sh->next)
        if (!strcmp(sh->key, key))
            return sh;
    return NULL;
}

bool sched_waitq_has(scheduler *s, const char *key) { return shape_find(s, key) != NULL; }

static sched_owner_q *owner_find(sched_shape *sh, const char *owner)
{
    for (sched_owner_q *o = sh->owners; o; o = o->next)
        if (!strcmp(o->owner, owner))
            return o;
    return NULL;
}

static size_t owner_count(scheduler *s, const char *owner)
{
    size_t n = 0;
    for (sched_shape *sh = s->shapes; sh; sh = sh->next) {
        sched_owner_q *o = owner_find(sh, owner);
        n += o ? o->n : 0;
    }
    return n;
}

static size_t owners_of(const sched_shape *sh)
{
    size_t n = 0;
    for (sched_owner_q *o = sh->owners; o; o = o->next)
        n++;
    return n;
}

/* The notice for a waiter that others wait for the same shape too. */
static void notice(json_t *notices, const sched_waiter *w)
{
    json_array_append_new(notices,
                          json_pack("{s:s,s:{s:b,s:b,s:s,s:b}}", "subject", w->reply, "body", "ok",
                                    0, "queued", 1, "request_id", w->request_id, "contended", 1));
}

json_t *sched_waitq_add(scheduler *s, const char *key, sched_waiter *w, bool *contended,
                        json_t *notices)
{
    if (s->waiting >= (size_t)s->cfg.wait_max)
        return prism_error_json("queue_full",
                                "the scheduler's lease queue is full (%zu requests wait; "
                                "--wait-max)",
                                s->waiting);
    if (owner_count(s, w->owner) >= SCHED_WAIT_PER_OWNER)
        return prism_error_json("queue_full", "owner %s has %d lease requests waiting already",
                                w->owner, SCHED_WAIT_PER_OWNER);
    sched_shape *sh = shape_find(s, key);
    if (!sh) {
        sh = calloc(1, sizeof *sh);
        if (!sh || !(sh->key = strdup(key))) {
            free(sh);
            return prism_error_json("internal", "out of memory");
        }
        sh->next = s->shapes;
        s->shapes = sh;
    }
    sched_owner_q *o = owner_find(sh, w->owner);
    if (!o) {
        o = calloc(1, sizeof *o);
        if (!o || !(o->owner = strdup(w->owner))) {
            free(o);
            if (!sh->owners) { /* just made: nothing else holds it */
                s->shapes = sh->next;
                free(sh->key);
                free(sh);
            }
            return prism_error_json("internal", "out of memory");
        }
        sched_owner_q **tail = &sh->owners; /* a newcomer waits for the others' turns */
        while (*tail)
            tail = &(*tail)->next;
        *tail = o;
        if (!sh->turn)
            sh->turn = o;
    }
    *(o->tail ? &o->tail->next : &o->head) = w;
    o->tail = w;
    o->n++;
    sh->n++;
    s->waiting++;
    sh->stuck = false; /* worth one look: room may have come since the last */
    *contended = owners_of(sh) > 1;
    for (sched_owner_q *x = sh->owners; x && *contended; x = x->next)
        for (sched_waiter *y = x->head; y; y = y->next)
            if (y != w && !y->told) {
                y->told = true;
                notice(notices, y);
            }
    w->told = *contended;
    return NULL;
}

bool sched_waitq_refresh(scheduler *s, const char *owner, const char *request_id,
                         int64_t deadline_mono, bool *contended)
{
    for (sched_shape *sh = s->shapes; sh; sh = sh->next) {
        sched_owner_q *o = owner_find(sh, owner);
        for (sched_waiter *w = o ? o->head : NULL; w; w = w->next) {
            if (w->dropped || strcmp(w->request_id, request_id) != 0)
                continue;
            w->deadline_mono = deadline_mono;
            *contended = owners_of(sh) > 1;
            w->told |= *contended;
            return true;
        }
    }
    return false;
}

sched_waiter *sched_waitq_next(scheduler *s, sched_shape **shape)
{
    for (sched_shape *sh = s->shapes; sh; sh = sh->next) {
        if (sh->stuck || !sh->turn)
            continue;
        *shape = sh;
        return sh->turn->head;
    }
    return NULL;
}

/* Unlinks `w` from `o` of `sh`, dropping what is left empty. */
static void unlink_waiter(scheduler *s, sched_shape *sh, sched_owner_q *o, sched_waiter *w)
{
    for (sched_waiter **pp = &o->head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
        if (*pp != w)
            continue;
        *pp = w->next;
        if (o->tail == w)
            o->tail = prev;
        w->next = NULL;
        o->n--;
        sh->n--;
        s->waiting--;
        break;
    }
    if (!o->head) {
        sched_owner_q **pp = &sh->owners;
        while (*pp != o)
            pp = &(*pp)->next;
        *pp = o->next;
        if (sh->turn == o)
            sh->turn = o->next ? o->next : sh->owners;
        free(o->owner);
        free(o);
    }
    if (!sh->owners) {
        sched_shape **pp = &s->shapes;
        while (*pp != sh)
            pp = &(*pp)->next;
        *pp = sh->next;
        free(sh->key);
        free(sh);
    }
}

void sched_waitq_done(scheduler *s, sched_shape *sh, sched_waiter *w)
{
    sched_owner_q *o = owner_find(sh, w->owner);
    if (!o)
        return;
    if (sh->turn == o) /* served: the next owner's turn */
        sh->turn = o->next ? o->next : sh->owners;
    unlink_waiter(s, sh, o, w);
}

void sched_waitq_unstick(scheduler *s)
{
    for (sched_shape *sh = s->shapes; sh; sh = sh->next)
        sh->stuck = false;
    if (s->shapes) {
        s->pump_wanted = true;
        pthread_cond_broadcast(&s->queue_cv);
    }
}

/* Drops the owner's waiters (`request_id` NULL: all). One being placed is
 * marked instead: the pump drops it when the node answers (and gives back
 * a lease granted meanwhile). Returns how many went. */
static size_t drop(scheduler *s, const char *owner, const char *request_id, const char *why)
{
    size_t n = 0;
    for (sched_shape *sh = s->shapes, *next_sh; sh; sh = next_sh) {
        next_sh = sh->next;
        sched_owner_q *o = owner_find(sh, owner);
        for (sched_waiter *w = o ? o->head : NULL, *next; w; w = next) {
            next = w->next;
            if (request_id && strcmp(w->request_id, request_id) != 0)
                continue;
            n++;
            if (w->placing) {
                w->dropped = true;
                continue;
            }
            LOG_DEBUG("lease request %s of %s dropped: %s", w->request_id, owner, why);
            bool last = o->n == 1;
            unlink_waiter(s, sh, o, w); /* may free o and sh */
            sched_waiter_free(w);
            if (last)
                break;
        }
    }
    return n;
}

static void on_cancel(prism_bus *bus, const char *subject, const char *reply, const char *data,
                      size_t len, void *ud)
{
    scheduler *s = ud;
    json_t *msg = json_loadb(data, len, 0, NULL);
    const char *owner = json_string_value(json_object_get(msg, "owner_id"));
    json_t *rid = json_object_get(msg, "request_id");
    if (owner && (!rid || json_is_string(rid))) {
        pthread_mutex_lock(&s->lock);
        size_t n = drop(s, owner, json_string_value(rid), "cancelled by its owner");
        pthread_mutex_unlock(&s->lock);
        prism_metric_add(s->m.queue_cancelled, (double)n);
    }
    json_decref(msg);
}

int sched_waitq_start(scheduler *s)
{
    return prism_bus_subscribe(s->bus, PRISM_SUBJECT_SCHED_LEASE_CANCEL, NULL, on_cancel, s);
}

/* ---------- the cron: requests that waited too long, owners that are gone ---------- */

static void expire(scheduler *s, int64_t now, json_t *answers)
{
    for (sched_shape *sh = s->shapes, *next_sh; sh; sh = next_sh) {
        next_sh = sh->next;
        bool shape_gone = false;
        for (sched_owner_q *o = sh->owners, *next_o; o && !shape_gone; o = next_o) {
            next_o = o->next;
            for (sched_waiter *w = o->head, *next; w; w = next) {
                next = w->next;
                if (w->placing || now < w->deadline_mono)
                    continue;
                json_t *err = prism_error_json("busy", "no room came for %s in %lld ms of waiting",
                                               sh->key, (long long)(now - w->queued_mono));
                json_object_set_new(err, "request_id", json_string(w->request_id));
                json_array_append_new(answers,
                                      json_pack("{s:s,s:o}", "subject", w->reply, "body", err));
                bool last_owner = o->n == 1, last_shape = sh->n == 1;
                unlink_waiter(s, sh, o, w);
                sched_waiter_free(w);
                shape_gone = last_shape;
                if (last_owner)
                    break;
            }
        }
    }
}

static bool owner_gone(scheduler *s, const char *owner)
{
    char subject[PRISM_SUBJECT_MAX];
    if (!wire_owner_subject(owner, subject, sizeof subject))
        return false;
    prism_buf b;
    wire_owner_request(&b, OWNER_PING, "scheduler", 0, 0);
    char *reply = NULL;
    size_t len = 0;
    int rc = b.len ? prism_bus_request(s->bus, subject, b.data, b.len, OWNER_PING_MS, &reply, &len)
                   : PRISM_BUS_ERROR;
    prism_buf_free(&b);
    free(reply);
    return rc == PRISM_BUS_NO_RESPONDERS;
}

void sched_waitq_publish(scheduler *s, json_t *messages)
{
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m) {
        const char *subject = json_string_value(json_object_get(m, "subject"));
        if (subject && prism_bus_publish_json(s->bus, subject, json_object_get(m, "body")) != 0)
            LOG_WARN("cannot answer a queued lease request: %s", prism_bus_last_error(s->bus));
    }
}

/* No lock held: it takes it, and drops it while pinging owners. */
void sched_waitq_cron(scheduler *s)
{
    int64_t now = prism_mono_ms();
    json_t *answers = json_array(), *owners = json_array();
    pthread_mutex_lock(&s->lock);
    size_t before = s->waiting;
    expire(s, now, answers);
    prism_metric_add(s->m.queue_expired, (double)(before - s->waiting));
    if (s->shapes && now - s->last_owner_check_mono >= OWNER_CHECK_MS) {
        s->last_owner_check_mono = now;
        for (sched_shape *sh = s->shapes; sh; sh = sh->next)
            for (sched_owner_q *o = sh->owners; o; o = o->next) {
                bool seen = false;
                size_t i;
                json_t *v;
                json_array_foreach(owners, i, v)
                    seen |= !strcmp(json_string_value(v), o->owner);
                if (!seen && json_array_size(owners) < OWNERS_PER_CHECK)
                    json_array_append_new(owners, json_string(o->owner));
            }
    }
    pthread_mutex_unlock(&s->lock);
    sched_waitq_publish(s, answers);
    size_t i;
    json_t *v;
    json_array_foreach(owners, i, v) {
        const char *owner = json_string_value(v);
        if (!owner_gone(s, owner))
            continue;
        pthread_mutex_lock(&s->lock);
        size_t n = drop(s, owner, NULL, "its owner is gone");
        pthread_mutex_unlock(&s->lock);
        if (n)
            LOG_INFO("dropped %zu queued lease request%s of %s: it is gone", n, n == 1 ? "" : "s",
                     owner);
        prism_metric_add(s->m.queue_dropped, (double)n);
    }
    json_decref(answers);
    json_decref(owners);
}

void sched_waitq_free(scheduler *s, json_t *answers)
{
    while (s->shapes) {
        sched_shape *sh = s->shapes;
        sched_owner_q *o = sh->owners;
        sched_waiter *w = o->head;
        if (answers) {
            json_t *err = prism_error_json("shutting_down", "the scheduler is shutting down");
            json_object_set_new(err, "request_id", json_string(w->request_id));
            json_array_append_new(answers,
                                  json_pack("{s:s,s:o}", "subject", w->reply, "body", err));
        }
        unlink_waiter(s, sh, o, w);
        sched_waiter_free(w);
    }
}
