/* GET /api/v1/timeline: the recent tasks as a Chrome trace, the JSON object
 * form of the Trace Event Format (what `ray timeline` writes for Ray), for
 * Perfetto or chrome://tracing. One complete event ("ph": "X") per task that
 * ran, in a lane per worker ("tid") grouped by node ("pid"), with metadata
 * events naming both. It is made from the task list (task_list.c): the
 * timeline shows the tasks that list keeps, and the times their owners
 * reported: from when the worker took the task up (its push, or the end of
 * the task pushed before it) until its outcome reached the owner. */
#include <stdlib.h>
#include <string.h>

#include "gcs.h"
#include "prism_json_text.h"

#define TIMELINE_MAX (64u << 20) /* bytes of JSON; the default limit makes a few MiB */
#define JOB_ID_MAX 128

typedef struct timeline {
    prism_buf b;
    const char *job_id; /* only this job's tasks, or NULL */
    int64_t limit, n;
    json_t *pids; /* node id -> pid */
    json_t *tids; /* worker id -> [tid, pid] */
    int err;      /* the buffer refused: past TIMELINE_MAX or out of memory */
} timeline;

static const char *field(json_t *rec, const char *key)
{
    return json_string_value(json_object_get(rec, key));
}

static int pid_of(timeline *t, const char *node)
{
    json_t *v = json_object_get(t->pids, node);
    if (v)
        return (int)json_integer_value(v);
    int pid = (int)json_object_size(t->pids) + 1;
    json_object_set_new(t->pids, node, json_integer(pid));
    return pid;
}

static int tid_of(timeline *t, const char *worker, int pid)
{
    json_t *v = json_object_get(t->tids, worker);
    if (v)
        return (int)json_integer_value(json_array_get(v, 0));
    int tid = (int)json_object_size(t->tids) + 1;
    json_object_set_new(t->tids, worker, json_pack("[i,i]", tid, pid));
    return tid;
}

static void write_args(timeline *t, json_t *rec, const char *state, const char *job)
{
    prism_buf *b = &t->b;
    t->err |= prism_buf_printf(b, ",\"args\":{\"task_id\":");
    t->err |= prism_json_string(b, field(rec, "task_id"));
    t->err |= prism_buf_printf(b, ",\"state\":\"%s\",\"owner\":", state);
    t->err |= prism_json_string(b, field(rec, "owner"));
    if (job) {
        t->err |= prism_buf_printf(b, ",\"job_id\":");
        t->err |= prism_json_string(b, job);
    }
    if (field(rec, "error")) {
        t->err |= prism_buf_printf(b, ",\"error\":");
        t->err |= prism_json_string(b, field(rec, "error"));
    }
    t->err |= prism_buf_printf(b, "}}");
}

/* One task record (task list lock held). Returns false when done. */
static bool add_task(json_t *rec, void *ud)
{
    timeline *t = ud;
    const char *state = field(rec, "state"), *node = field(rec, "node_id");
    const char *worker = field(rec, "worker_id"), *job = field(rec, "job_id");
    json_int_t start = json_integer_value(json_object_get(rec, "started_at"));
    json_int_t end = json_integer_value(json_object_get(rec, "ended_at"));
    if (!state || !strcmp(state, "PENDING") || !node || !worker || start <= 0 || end < start)
        return true; /* it has not run (yet) */
    if (t->job_id && (!job || strcmp(job, t->job_id) != 0))
        return true;
    int pid = pid_of(t, node), tid = tid_of(t, worker, pid);
    prism_buf *b = &t->b;
    t->err |= prism_buf_printf(b, "%s{\"name\":", t->n ? "," : "");
    t->err |= prism_json_string(b, field(rec, "name"));
    /* microseconds; a failed task in the viewer's "error" color */
    t->err |= prism_buf_printf(b,
                               ",\"cat\":\"task\",\"ph\":\"X\",\"ts\":%lld,\"dur\":%lld,"
                               "\"pid\":%d,\"tid\":%d%s",
                               (long long)start * 1000, (long long)(end - start) * 1000, pid, tid,
                               !strcmp(state, "FAILED") ? ",\"cname\":\"terrible\"" : "");
    write_args(t, rec, state, job);
    t->n++;
    return !t->err && t->n < t->limit;
}

/* The live nodes' names by ID, to name the lanes (a dead node keeps its ID). */
static json_t *node_names(gcs *g)
{
    json_t *names = json_object();
    pthread_mutex_lock(&g->lock);
    for (gcs_node *n = g->nodes; n; n = n->next)
        json_object_set_new(names, n->id, json_string(n->name));
    pthread_mutex_unlock(&g->lock);
    return names;
}

static void write_lane_name(timeline *t, const char *kind, int pid, int tid, const char *label,
                            const char *id)
{
    prism_buf *b = &t->b;
    t->err |= prism_buf_printf(b, "%s{\"name\":\"%s\",\"ph\":\"M\",\"pid\":%d", t->n++ ? "," : "",
                               kind, pid);
    if (tid)
        t->err |= prism_buf_printf(b, ",\"tid\":%d", tid);
    t->err |= prism_buf_printf(b, ",\"args\":{\"name\":");
    char text[256];
    snprintf(text, sizeof text, "%s %s", label, id);
    t->err |= prism_json_string(b, text);
    t->err |= prism_buf_printf(b, "}}");
}

static void write_lanes(timeline *t, json_t *names)
{
    const char *id;
    json_t *v;
    json_object_foreach(t->pids, id, v) {
        const char *name = json_string_value(json_object_get(names, id));
        write_lane_name(t, "process_name", (int)json_integer_value(v), 0, name ? name : "node", id);
    }
    json_object_foreach(t->tids, id, v) {
        write_lane_name(t, "thread_name", (int)json_integer_value(json_array_get(v, 1)),
                        (int)json_integer_value(json_array_get(v, 0)), "worker", id);
    }
}

void gcs_api_timeline(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    timeline t = {.job_id = prism_http_query(req, "job_id")};
    if (prism_http_query_int(req, "limit", 10000, 1, 100000, &t.limit) != 0)
        return;
    if (t.job_id && (!*t.job_id || strlen(t.job_id) > JOB_ID_MAX)) {
        prism_http_reply_error(req, 400, "invalid_argument", "job_id must be 1-%d characters",
                               JOB_ID_MAX);
        return;
    }
    json_t *names = node_names(g);
    t.pids = json_object();
    t.tids = json_object();
    prism_buf_init(&t.b, TIMELINE_MAX);
    t.err |= prism_buf_printf(&t.b, "{\"traceEvents\":[");
    gcs_task_list_each(g, add_task, &t);
    int64_t tasks = t.n;
    write_lanes(&t, names);
    t.err |= prism_buf_printf(&t.b,
                              "],\"displayTimeUnit\":\"ms\",\"otherData\":{\"generator\":"
                              "\"prism-gcs\",\"tasks\":%lld}}",
                              (long long)tasks);
    if (t.err)
        prism_http_reply_error(req, 500, "too_large",
                               "the timeline passed %u MiB: ask for fewer tasks (limit)",
                               TIMELINE_MAX >> 20);
    else
        prism_http_reply(req, 200, "application/json", t.b.data, t.b.len);
    prism_buf_free(&t.b);
    json_decref(t.pids);
    json_decref(t.tids);
    json_decref(names);
}
