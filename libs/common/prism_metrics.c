#include "prism_metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

const double prism_metrics_seconds_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                               0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                               1,      2.5,     5,      10};
const size_t prism_metrics_seconds_nbounds = sizeof prism_metrics_seconds_bounds /
                                             sizeof prism_metrics_seconds_bounds[0];

struct prism_metric {
    char *name, *help, *labels;
    int kind;
    _Atomic double value; /* a histogram's sum */
    /* a histogram's bounds and per-bucket counts, the last one +Inf */
    size_t nbounds;
    double bounds[PRISM_METRICS_MAX_BUCKETS];
    _Atomic uint64_t buckets[PRISM_METRICS_MAX_BUCKETS + 1];
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

prism_metric *prism_metrics_histogram(prism_metrics *m, const char *name, const char *help,
                                      const char *labels, const double *bounds, size_t nbounds)
{
    if (nbounds > PRISM_METRICS_MAX_BUCKETS)
        return NULL;
    prism_metric *h = series(m, KIND_HISTOGRAM, name, help, labels, NULL, NULL);
    if (h && h->kind == KIND_HISTOGRAM && !h->nbounds) {
        memcpy(h->bounds, bounds, nbounds * sizeof *bounds);
        h->nbounds = nbounds;
    }
    return h;
}

void prism_metric_observe(prism_metric *h, double v)
{
    if (!h)
        return;
    size_t i = 0;
    while (i < h->nbounds && v > h->bounds[i])
        i++;
    atomic_fetch_add(&h->buckets[i], 1);
    prism_metric_add(h, v);
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

static uint64_t histogram_count(const prism_metric *h)
{
    uint64_t n = 0;
    for (size_t i = 0; i <= h->nbounds; i++)
        n += atomic_load(&((prism_metric *)h)->buckets[i]);
    return n;
}

double prism_metric_value(const prism_metric *c)
{
    if (c->kind == KIND_HISTOGRAM)
        return (double)histogram_count(c);
    return c->fn ? c->fn(c->ud) : atomic_load(&((prism_metric *)c)->value);
}

/* NAME_bucket{LABELS,le="B"} cumulative counts, then NAME_sum and NAME_count. */
static int render_histogram(const prism_metric *h, prism_buf *out)
{
    const char *l = h->labels ? h->labels : "", *comma = h->labels ? "," : "";
    uint64_t cum = 0;
    int rc = 0;
    for (size_t i = 0; i <= h->nbounds; i++) {
        cum += atomic_load(&((prism_metric *)h)->buckets[i]);
        if (i < h->nbounds)
            rc |= prism_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", h->name, l, comma,
                                   h->bounds[i], (unsigned long long)cum);
        else
            rc |= prism_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", h->name, l, comma,
                                   (unsigned long long)cum);
    }
    double sum = atomic_load(&((prism_metric *)h)->value);
    if (h->labels)
        rc |= prism_buf_printf(out, "%s_sum{%s} %.17g\n%s_count{%s} %llu\n", h->name, l, sum,
                               h->name, l, (unsigned long long)cum);
    else
        rc |= prism_buf_printf(out, "%s_sum %.17g\n%s_count %llu\n", h->name, sum, h->name,
                               (unsigned long long)cum);
    return rc;
}

int prism_metrics_render(prism_metrics *m, prism_buf *out)
{
    int rc = 0;
    pthread_mutex_lock(&m->lock);
    const char *prev = NULL;
    for (prism_metric *s = m->head; s && rc == 0; s = s->next) {
        if (!prev || strcmp(prev, s->name) != 0)
            rc |= prism_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", s->name, s->help, s->name,
                                   s->kind == KIND_COUNTER     ? "counter"
                                   : s->kind == KIND_HISTOGRAM ? "histogram"
                                                               : "gauge");
        prev = s->name;
        if (s->kind == KIND_HISTOGRAM) {
            rc |= render_histogram(s, out);
            continue;
        }
        double v = prism_metric_value(s);
        if (s->labels)
            rc |= prism_buf_printf(out, "%s{%s} %.17g\n", s->name, s->labels, v);
        else
            rc |= prism_buf_printf(out, "%s %.17g\n", s->name, v);
    }
    pthread_mutex_unlock(&m->lock);
    return rc ? -1 : 0;
}
