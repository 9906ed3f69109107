#include "prism_metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum { KIND_COUNTER, KIND_GAUGE };

struct prism_metric {
    char *name, *help, *labels;
    int kind;
    _Atomic double value;
    double (*fn)(void *);
    void *ud;
    struct prism_metric *next;
};

struct prism_metrics {
    pthread_mutex_t lock;
    prism_metric *head;
};

prism_metrics *prism_metrics_create(void)
{
    prism_metrics *m = calloc(1, sizeof *m);
    if (m)
        pthread_mutex_init(&m->lock, NULL);
    return m;
}

void prism_metrics_destroy(prism_metrics *m)
{
    if (!m)
        return;
    for (prism_metric *s = m->head, *next; s; s = next) {
        next = s->next;
        free(s->name);
        free(s->help);
        free(s->labels);
        free(s);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static int same_text(const char *a, const char *b) { return strcmp(a ? a : "", b ? b : "") == 0; }

static prism_metric *series(prism_metrics *m, int kind, const char *name, const char *help,
                            const char *labels, double (*fn)(void *), void *ud)
{
    pthread_mutex_lock(&m->lock);
    prism_metric *last_same = NULL, *tail = NULL;
    for (prism_metric *s = m->head; s; s = s->next) {
        if (!strcmp(s->name, name)) {
            if (same_text(s->labels, labels)) {
                pthread_mutex_unlock(&m->lock);
                return s;
            }
            last_same = s;
        }
        tail = s;
    }
    prism_metric *s = calloc(1, sizeof *s);
    if (s) {
        s->name = strdup(name);
        s->help = strdup(help ? help : "");
        s->labels = labels && *labels ? strdup(labels) : NULL;
        s->kind = kind;
        s->fn = fn;
        s->ud = ud;
        /* Keep series of one name adjacent so HELP/TYPE print once per family. */
        prism_metric *after = last_same ? last_same : tail;
        if (after) {
            s->next = after->next;
            after->next = s;
        } else {
            m->head = s;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return s;
}

prism_metric *prism_metrics_counter(prism_metrics *m, const char *name, const char *help,
                                    const char *labels)
{
    return series(m, KIND_COUNTER, name, help, labels, NULL, NULL);
}

prism_metric *prism_metrics_gauge(prism_metrics *m, const char *name, const char *help,
                                  const char *labels)
{
    return series(m, KIND_GAUGE, name, help, labels, NULL, NULL);
}

prism_metric *prism_metrics_gauge_fn(prism_metrics *m, const char *name, const char *help,
                                     const char *labels, double (*fn)(void *ud), void *ud)
{
    return series(m, KIND_GAUGE, name, help, labels, fn, ud);
}

void prism_metric_add(prism_metric *c, double v)
{
    if (!c)
        return;
    double old = atomic_load(&c->value);
    while (!atomic_compare_exchange_weak(&c->value, &old, old + v)) {
    }
}

void prism_metric_set(prism_metric *g, double v)
{
    if (g)
        atomic_store(&g->value, v);
}

double prism_metric_value(const prism_metric *c)
{
    return c->fn ? c->fn(c->ud) : atomic_load(&((prism_metric *)c)->value);
}

int prism_metrics_render(prism_metrics *m, prism_buf *out)
{
    int rc = 0;
    pthread_mutex_lock(&m->lock);
    const char *prev = NULL;
    for (prism_metric *s = m->head; s && rc == 0; s = s->next) {
        if (!prev || strcmp(prev, s->name) != 0)
            rc |= prism_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", s->name, s->help, s->name,
                                   s->kind == KIND_COUNTER ? "counter" : "gauge");
        prev = s->name;
        double v = prism_metric_value(s);
        if (s->labels)
            rc |= prism_buf_printf(out, "%s{%s} %.17g\n", s->name, s->labels, v);
        else
            rc |= prism_buf_printf(out, "%s %.17g\n", s->name, v);
    }
    pthread_mutex_unlock(&m->lock);
    return rc ? -1 : 0;
}
