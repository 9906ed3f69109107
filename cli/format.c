#include "format.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

const char *fmt_str(json_t *obj, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s && *s ? s : def;
}

int64_t fmt_int(json_t *obj, const char *key)
{
    return (int64_t)json_number_value(json_object_get(obj, key));
}

void fmt_time(json_t *ms, char *out, size_t n)
{
    if (!json_is_number(ms)) {
        snprintf(out, n, "-");
        return;
    }
    time_t t = (time_t)(json_number_value(ms) / 1000);
    struct tm tm;
    if (!localtime_r(&t, &tm) || strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(out, n, "-");
}

void fmt_duration(int64_t ms, char *out, size_t n)
{
    if (ms < 0)
        snprintf(out, n, "-");
    else if (ms < 1000)
        snprintf(out, n, "%lldms", (long long)ms);
    else if (ms < 60000)
        snprintf(out, n, "%.1fs", (double)ms / 1000);
    else if (ms < 3600000)
        snprintf(out, n, "%lldm%02llds", (long long)(ms / 60000), (long long)(ms / 1000 % 60));
    else
        snprintf(out, n, "%lldh%02lldm", (long long)(ms / 3600000), (long long)(ms / 60000 % 60));
}

void fmt_bytes(double bytes, char *out, size_t n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    size_t u = 0;
    while (bytes >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        bytes /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, n, "%.0f B", bytes);
    else
        snprintf(out, n, "%.1f %s", bytes, units[u]);
}

void fmt_amount(const char *name, json_t *v, char *out, size_t n)
{
    if (!json_is_number(v))
        snprintf(out, n, "?");
    else if (!strcmp(name, "memory") || !strcmp(name, "object_store_memory"))
        fmt_bytes(json_number_value(v), out, n);
    else
        snprintf(out, n, "%g", json_number_value(v));
}

int fmt_resources(json_t *res, prism_buf *out)
{
    const char *name;
    json_t *v;
    int rc = 0;
    size_t count = 0;
    json_object_foreach(res, name, v) {
        char amount[64];
        fmt_amount(name, v, amount, sizeof amount);
        rc |= prism_buf_printf(out, "%s%s %s", count++ ? ", " : "", name, amount);
    }
    if (count == 0)
        rc |= prism_buf_append(out, "-", 1);
    return rc;
}

int fmt_resources_avail(json_t *avail, json_t *total, prism_buf *out)
{
    const char *name;
    json_t *v;
    int rc = 0;
    size_t count = 0;
    json_object_foreach(total, name, v) {
        char a[64], t[64];
        json_t *av = json_object_get(avail, name);
        if (av)
            fmt_amount(name, av, a, sizeof a);
        else
            snprintf(a, sizeof a, "0");
        fmt_amount(name, v, t, sizeof t);
        rc |= prism_buf_printf(out, "%s%s %s/%s", count++ ? ", " : "", name, a, t);
    }
    if (count == 0)
        rc |= prism_buf_append(out, "-", 1);
    return rc;
}

static int plain_word(const char *arg)
{
    if (!*arg)
        return 0;
    for (const char *p = arg; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("_-+=@%:,./", c)))
            return 0;
    }
    return 1;
}

int fmt_shell_word(const char *arg, prism_buf *out)
{
    if (plain_word(arg))
        return prism_buf_append(out, arg, strlen(arg));
    int rc = prism_buf_append(out, "'", 1);
    for (const char *p = arg; *p && rc == 0; p++)
        rc = *p == '\'' ? prism_buf_append(out, "'\\''", 4) : prism_buf_append(out, p, 1);
    return rc | prism_buf_append(out, "'", 1);
}

int fmt_shell_join(char *const *args, int n, prism_buf *out)
{
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        if (i > 0)
            rc = prism_buf_append(out, " ", 1);
        rc |= fmt_shell_word(args[i], out);
    }
    return rc;
}
