/* Prometheus metrics: counters, gauges and histograms a service registers once and
 * updates from any thread; rendered in the text exposition format at /metrics.
 *
 *   prism_metric *jobs = prism_metrics_counter(m, "prism_gcs_jobs_submitted_total",
 *                                              "Jobs submitted", NULL);
 *   prism_metric_add(jobs, 1);
 *
 * A series may carry fixed labels in Prometheus syntax (`method="GET",code="200"`);
 * series of one name share its HELP and TYPE lines. Handles live as long as the
 * registry. Updates are lock-free; registration and rendering take a lock. */
#ifndef PRISM_METRICS_H
#define PRISM_METRICS_H

#include "prism_buf.h"

typedef struct prism_metrics prism_metrics;
typedef struct prism_metric prism_metric;

prism_metrics *prism_metrics_create(void);
void prism_metrics_destroy(prism_metrics *m);

/* Returns the series with this name and labels, creating it on first use
 * (so a call with the same arguments returns the same handle). NULL when out of memory. */
prism_metric *prism_metrics_counter(prism_metrics *m, const char *name, const char *help,
                                    const char *labels);
prism_metric *prism_metrics_gauge(prism_metrics *m, const char *name, const char *help,
                                  const char *labels);
/* A gauge whose value is read by calling `fn(ud)` at each render. */
prism_metric *prism_metrics_gauge_fn(prism_metrics *m, const char *name, const char *help,
                                     const char *labels, double (*fn)(void *ud), void *ud);

/* A histogram of observations (e.g. durations in seconds) over `nbounds`
 * increasing upper bounds, copied; rendered as NAME_bucket{le=...}, NAME_sum
 * and NAME_count. At most PRISM_METRICS_MAX_BUCKETS bounds. */
#define PRISM_METRICS_MAX_BUCKETS 24
prism_metric *prism_metrics_histogram(prism_metrics *m, const char *name, const char *help,
                                      const char *labels, const double *bounds, size_t nbounds);
/* Bounds from 100 µs to 10 s, for the durations of requests and round trips. */
extern const double prism_metrics_seconds_bounds[];
extern const size_t prism_metrics_seconds_nbounds;

void prism_metric_observe(prism_metric *h, double v); /* NULL is ignored */
void prism_metric_add(prism_metric *c, double v);     /* NULL is ignored */
void prism_metric_set(prism_metric *g, double v);     /* NULL is ignored */
/* A counter's or gauge's value; a histogram's count of observations. */
double prism_metric_value(const prism_metric *c);

/* Appends the exposition text of every series. Returns 0 or -1 (buffer cap). */
int prism_metrics_render(prism_metrics *m, prism_buf *out);

#endif
