/* One-line, level-filtered logging for services and tools.
 *
 * Every line goes to stderr as
 *   2026-11-25T17:40:01.123Z INFO  gcs: job 4f.. started on node 9a..
 * so a service's log is greppable by level and by component. Libraries under
 * libs/ do not log; they return errors. Services and the CLI do. */
#ifndef PRISM_LOG_H
#define PRISM_LOG_H

typedef enum prism_log_level {
    PRISM_LOG_DEBUG = 0,
    PRISM_LOG_INFO,
    PRISM_LOG_WARN,
    PRISM_LOG_ERROR,
} prism_log_level;

/* Sets the component name shown on each line and the lowest level printed.
 * `component` must outlive every later log call (a string literal is typical). */
void prism_log_init(const char *component, prism_log_level level);

/* Parses "debug", "info", "warn" or "error". Returns 0, or -1 for other text. */
int prism_log_level_parse(const char *text, prism_log_level *out);

void prism_log(prism_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_DEBUG(...) prism_log(PRISM_LOG_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) prism_log(PRISM_LOG_INFO, __VA_ARGS__)
#define LOG_WARN(...) prism_log(PRISM_LOG_WARN, __VA_ARGS__)
#define LOG_ERROR(...) prism_log(PRISM_LOG_ERROR, __VA_ARGS__)

#endif
