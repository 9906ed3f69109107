/* What an owner tells the cluster, off the task path, from its leaser thread:
 * - its tasks' outcomes (and tasks that wait long, with the reason), in
 *   batches on `prism.event.tasks`; the GCS keeps the recent ones for
 *   GET /api/v1/tasks;
 * - its ownership table on `prism.event.objects`, when it changed and every
 *   few seconds while it holds objects; the GCS keeps the latest report of
 *   each owner for GET /api/v1/objects and forgets owners that go silent. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "prism_json_text.h"
#include "prism_subjects.h"
#include "prism_time.h"

#define FLUSH_EVERY_MS 200
#define PENDING_AFTER_MS 1000
#define MAX_BUFFERED 20000 /* per flush; beyond it events are counted as dropped */
/* Successes per flush (12,500/s): the list is for looking at recent tasks, and
 * the GCS keeps 10,000 in all, so sending every success of an owner doing
 * 100k tasks/s would only cost the GCS its CPU. Failures and waits always go. */
#define FINISHED_PER_FLUSH 2500
#define MESSAGE_MAX (768u << 10) /* bytes of events per message, under NATS's 1 MiB */
#define OBJECTS_MIN_MS 1000      /* a changed table is reported at most this often */
/* An unchanged table holding objects is reported this often: the GCS forgets
 * an owner silent for three periods. */
#define OBJECTS_PERIOD_MS 2000
#define OBJECTS_MAX 1000 /* objects listed per report (`total` counts them all) */

void prism__event_task(prism_client *c, const task_spec *t, int state, const char *detail)
{
    if (state == TASK_EV_FINISHED && c->finished_events >= FINISHED_PER_FLUSH) {
        c->events_dropped++;
        return;
    }
    if (c->nevents == c->capevents) {
        size_t cap = c->capevents ? 2 * c->capevents : 256;
        task_event *ev = cap <= MAX_BUFFERED ? realloc(c->events, cap * sizeof *ev) : NULL;
        if (!ev) {
            c->events_dropped++;
            return;
        }
        c->events = ev;
        c->capevents = cap;
    }
    c->finished_events += state == TASK_EV_FINISHED;
    task_event *e = &c->events[c->nevents++];
    e->id = t->id;
    prism__task_name(t, e->name, sizeof e->name);
    e->state = (uint8_t)state;
    memcpy(e->node_id, t->node_id, sizeof e->node_id);
    memcpy(e->worker_id, t->worker_id, sizeof e->worker_id);
    e->submitted_at = t->submitted_at;
    e->started_at = t->started_at;
    e->ended_at = state == TASK_EV_PENDING ? 0 : prism_now_ms();
    e->detail = detail && *detail ? strndup(detail, 512) : NULL;
}

static int append_text(prism_buf *b, const char *text)
{
    return prism_buf_append(b, text, strlen(text));
}

/* One event as JSON text. Written straight into the batch's buffer: a
 * jansson tree per event cost an owner doing 100k tasks/s a third of its CPU. */
static void event_text(prism_buf *b, const char *owner, const task_event *e)
{
    static const char *const states[] = {"PENDING", "FINISHED", "FAILED"};
    char id[PRISM_ID_HEX_LEN + 1];
    prism_id_to_hex(&e->id, id);
    prism_buf_printf(b, "{\"task_id\":\"%s\",\"name\":", id);
    prism_json_string(b, e->name);
    prism_buf_printf(b, ",\"state\":\"%s\",\"owner\":", states[e->state <= 2 ? e->state : 0]);
    prism_json_string(b, owner);
    prism_buf_printf(b, ",\"submitted_at\":%lld", (long long)e->submitted_at);
    if (e->node_id[0]) {
        append_text(b, ",\"node_id\":");
        prism_json_string(b, e->node_id);
    }
    if (e->worker_id[0]) {
        append_text(b, ",\"worker_id\":");
        prism_json_string(b, e->worker_id);
    }
    if (e->started_at)
        prism_buf_printf(b, ",\"started_at\":%lld", (long long)e->started_at);
    if (e->ended_at)
        prism_buf_printf(b, ",\"ended_at\":%lld", (long long)e->ended_at);
    if (e->detail) {
        prism_buf_printf(b, ",\"%s\":", e->state == TASK_EV_PENDING ? "reason" : "error");
        prism_json_string(b, e->detail);
    }
    append_text(b, "}");
}

/* Tasks queued past PENDING_AFTER_MS are reported once, with the pool's reason. */
static void report_waiting(prism_client *c, int64_t now)
{
    for (pool *p = c->pools; p; p = p->next)
        for (task_spec *t = p->queue; t; t = t->next)
            if (!t->reported_pending && now - t->submitted_ms > PENDING_AFTER_MS) {
                t->reported_pending = true;
                prism__event_task(c, t, TASK_EV_PENDING,
                                  p->pending_reason ? p->pending_reason : "queued for a worker");
            }
}

/* The job this process is the driver of: the node agent starts a job's
 * driver with PRISM_JOB_ID, and the GCS files its tasks under that job (for
 * GET /api/v1/timeline?job_id=). Read once; "" when none or unusable. */
static char job_id[129];
static pthread_once_t job_id_once = PTHREAD_ONCE_INIT;

static void read_job_id(void)
{
    const char *v = getenv("PRISM_JOB_ID");
    if (v && strlen(v) < sizeof job_id)
        memcpy(job_id, v, strlen(v) + 1);
}

/* Publishes the task events recorded since the last batch. Lock held (dropped meanwhile). */
static void flush_tasks(prism_client *c, int64_t now)
{
    if ((!c->nevents && !c->events_dropped) || now - c->last_events_ms < FLUSH_EVERY_MS)
        return;
    c->last_events_ms = now;
    task_event *batch = c->events;
    size_t n = c->nevents;
    uint64_t dropped = c->events_dropped;
    c->events = NULL;
    c->nevents = c->capevents = c->finished_events = 0;
    c->events_dropped = 0;
    pthread_mutex_unlock(&c->lock);
    pthread_once(&job_id_once, read_job_id);
    /* Several messages when the batch is large: a NATS message holds 1 MiB. */
    prism_buf b;
    prism_buf_init(&b, MESSAGE_MAX + 4096);
    for (size_t i = 0; i < n || (i == 0 && dropped); i++) {
        if (b.len == 0) {
            append_text(&b, "{\"owner\":");
            prism_json_string(&b, c->self_addr);
            if (job_id[0]) {
                append_text(&b, ",\"job_id\":");
                prism_json_string(&b, job_id);
            }
            if (dropped) /* successes left out (FINISHED_PER_FLUSH) or no room */
                prism_buf_printf(&b, ",\"dropped\":%llu", (unsigned long long)dropped);
            dropped = 0;
            append_text(&b, ",\"events\":[");
        } else {
            append_text(&b, ",");
        }
        if (i < n) {
            event_text(&b, c->self_addr, &batch[i]);
            free(batch[i].detail);
        }
        if (b.len > MESSAGE_MAX - 2048 || i + 1 >= n) {
            if (append_text(&b, "]}") == 0)
                prism_bus_publish(c->bus, PRISM_SUBJECT_EVENT_TASKS, b.data, b.len);
            b.len = 0;
        }
    }
    prism_buf_free(&b);
    free(batch);
    pthread_mutex_lock(&c->lock);
}

/* One table entry as reported, copied so the report is built without the lock. */
typedef struct obj_row {
    prism_object_id id;
    uint8_t state;
    bool stored, lost;
    int refs, borrowers;
    uint64_t size;
    char node_id[64]; /* where the value is: its store's node, or the owner's */
} obj_row;

/* Notices changes without walking the table: every put, submit, task outcome
 * and retry moves one of these counters, every free moves the count. (A change
 * of reference counts alone, or a loss, waits for the periodic report.) The
 * odd multipliers keep different counters from cancelling out; an idle new
 * client has signature 0, as if it had reported already. */
static uint64_t table_signature(const prism_client *c)
{
    return (uint64_t)c->nobjects + c->nborrowers * 0x94d049bb133111ebULL +
           c->put_index * 0x9e3779b97f4a7c15ULL + c->task_counter * 0xc2b2ae3d27d4eb4fULL +
           c->tasks_finished * 0x165667b19e3779b1ULL + c->tasks_retried * 0x27d4eb2f165667c5ULL;
}

static void row_of(const prism_client *c, const obj_entry *e, obj_row *r)
{
    r->id = e->id;
    r->state = (uint8_t)e->state;
    r->stored = e->state == OBJ_READY && !e->inline_buf;
    r->lost = e->lost;
    r->refs = e->refs;
    r->borrowers = 0;
    for (const borrower *b = e->borrowers; b; b = b->next)
        r->borrowers++;
    r->size = e->state == OBJ_READY ? e->size : 0;
    const char *node = r->stored ? e->node_id : e->state != OBJ_PENDING ? c->node_id : NULL;
    snprintf(r->node_id, sizeof r->node_id, "%s", node ? node : "");
}

static json_t *row_json(const obj_row *r)
{
    static const char *const states[] = {"PENDING", "READY", "FAILED"};
    char id[PRISM_OBJECT_ID_HEX_LEN + 1];
    prism_object_id_to_hex(&r->id, id);
    bool put = prism_object_id_index(&r->id) >= PRISM_PUT_INDEX_BASE;
    json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:i}", "object_id", id, "state",
                          states[r->state <= OBJ_FAILED ? r->state : 0], "source",
                          put ? "put" : "task", "size", (json_int_t)r->size, "refs", r->refs);
    if (r->state != OBJ_PENDING) /* a failed object's error lives in the owner too */
        json_object_set_new(j, "location", json_string(r->stored ? "store" : "owner"));
    if (r->node_id[0])
        json_object_set_new(j, "node_id", json_string(r->node_id));
    if (r->lost)
        json_object_set_new(j, "lost", json_true());
    if (r->borrowers)
        json_object_set_new(j, "borrowers", json_integer(r->borrowers));
    return j;
}

/* Reports the ownership table when it changed (at most once per
 * OBJECTS_MIN_MS) and every OBJECTS_PERIOD_MS while it holds objects, listing
 * at most OBJECTS_MAX of them so a huge table costs bounded time. Called from
 * any other thread than the leaser, it is prism_disconnect's last flush: the
 * owner goes away with all its objects and says so with an empty report.
 * Lock held (dropped while publishing). */
static void report_objects(prism_client *c, int64_t now)
{
    bool last = !pthread_equal(pthread_self(), c->leaser_thread);
    size_t total =
        last ? 0 : c->nobjects - c->nborrowed; /* borrowed entries: their owners report them */
    uint64_t sig = table_signature(c);
    int64_t since = now - c->objects_report.sent_ms;
    bool send;
    if (last)
        send = c->objects_report.total > 0;
    else if (sig != c->objects_report.signature)
        send = since >= OBJECTS_MIN_MS && (total > 0 || c->objects_report.total > 0);
    else
        send = total > 0 && since >= OBJECTS_PERIOD_MS;
    if (!send)
        return;
    c->objects_report.signature = sig;
    c->objects_report.sent_ms = now;
    c->objects_report.total = total;
    size_t n = total < OBJECTS_MAX ? total : OBJECTS_MAX;
    obj_row *rows = n ? malloc(n * sizeof *rows) : NULL;
    size_t k = 0;
    for (size_t i = 0; rows && i < c->nbuckets && k < n; i++)
        for (obj_entry *e = c->buckets[i]; e && k < n; e = e->next)
            if (!e->owner)
                row_of(c, e, &rows[k++]);
    pthread_mutex_unlock(&c->lock);
    json_t *list = json_array();
    for (size_t i = 0; i < k; i++)
        json_array_append_new(list, row_json(&rows[i]));
    free(rows);
    json_t *msg = json_pack("{s:s,s:I,s:i,s:o}", "owner", c->self_addr, "total", (json_int_t)total,
                            "period_ms", OBJECTS_PERIOD_MS, "objects", list);
    if (c->node_id[0])
        json_object_set_new(msg, "node_id", json_string(c->node_id));
    prism_bus_publish_json(c->bus, PRISM_SUBJECT_EVENT_OBJECTS, msg);
    json_decref(msg);
    pthread_mutex_lock(&c->lock);
}

void prism__events_free(prism_client *c)
{
    for (size_t i = 0; i < c->nevents; i++)
        free(c->events[i].detail);
    free(c->events);
    c->events = NULL;
    c->nevents = 0;
}

void prism__events_tick(prism_client *c)
{
    int64_t now = prism_mono_ms();
    if (now - c->last_pending_scan_ms >= PENDING_AFTER_MS) {
        c->last_pending_scan_ms = now;
        report_waiting(c, now);
    }
    flush_tasks(c, now);
    report_objects(c, now);
    prism__dags_tick(c);
}

bool prism__events_quiet(const prism_client *c)
{
    size_t total = c->nobjects - c->nborrowed;
    return !c->nevents && !c->events_dropped && !c->dags &&
           (table_signature(c) == c->objects_report.signature ||
            (total == 0 && c->objects_report.total == 0));
}

const char *prism_client_owner(const prism_client *c) { return c ? c->self_addr : ""; }
