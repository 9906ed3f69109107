/* Text for people: times, durations, sizes, resources, shell words. */
#ifndef PRISM_CLI_FORMAT_H
#define PRISM_CLI_FORMAT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "prism_buf.h"

/* A string member, or `def` when absent or empty. */
const char *fmt_str(json_t *obj, const char *key, const char *def);
/* A number member as an integer (0 when absent). */
int64_t fmt_int(json_t *obj, const char *key);

/* A time in ms since the epoch as local "YYYY-MM-DD HH:MM:SS", or "-" when null. */
void fmt_time(json_t *ms, char *out, size_t n);
/* "850ms", "12.3s", "4m05s", "2h03m". */
void fmt_duration(int64_t ms, char *out, size_t n);
/* "512 B", "1.5 KiB", "8.0 GiB". */
void fmt_bytes(double bytes, char *out, size_t n);
/* One resource amount: memory as bytes, others as numbers ("4", "0.5"). */
void fmt_amount(const char *name, json_t *v, char *out, size_t n);
/* "CPU 4, GPU 1, memory 8.0 GiB" (or "-" when empty). Returns 0 or -1. */
int fmt_resources(json_t *res, prism_buf *out);
/* "CPU 3/4, memory 6.0 GiB/8.0 GiB": available/total for each total resource. */
int fmt_resources_avail(json_t *avail, json_t *total, prism_buf *out);

/* Appends `arg` as one shell word: unchanged when it is plain, else in single quotes. */
int fmt_shell_word(const char *arg, prism_buf *out);
/* Joins arguments into one shell command line, each quoted as needed. */
int fmt_shell_join(char *const *args, int n, prism_buf *out);

#endif
