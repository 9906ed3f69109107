#include "prism_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int prism_parse_size(const char *text, int64_t *out)
{
    static const struct {
        const char *suffix;
        int64_t mult;
    } units[] = {{"", 1},           {"b", 1},           {"k", 1LL << 10},
                 {"kb", 1LL << 10}, {"kib", 1LL << 10}, {"m", 1LL << 20},
                 {"mb", 1LL << 20}, {"mib", 1LL << 20}, {"g", 1LL << 30},
                 {"gb", 1LL << 30}, {"gib", 1LL << 30}, {"t", 1LL << 40},
                 {"tb", 1LL << 40}, {"tib", 1LL << 40}};
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || errno != 0 || !(v >= 0)) /* also refuses "nan" */
        return -1;
    while (*end == ' ')
        end++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(end, units[i].suffix) == 0) {
            double bytes = v * (double)units[i].mult;
            if (bytes > 9.0e18)
                return -1;
            *out = (int64_t)bytes;
            return 0;
        }
    }
    return -1;
}

static int parse_bool(const char *text, bool *out)
{
    if (!strcasecmp(text, "true") || !strcmp(text, "1") || !strcasecmp(text, "yes")) {
        *out = true;
        return 0;
    }
    if (!strcasecmp(text, "false") || !strcmp(text, "0") || !strcasecmp(text, "no")) {
        *out = false;
        return 0;
    }
    return -1;
}

static int set_value(prism_option *o, const char *text, char *err, size_t errlen)
{
    char *end;
    switch (o->type) {
    case PRISM_OPT_STRING: {
        char **slot = o->value;
        free(*slot);
        *slot = strdup(text);
        return 0;
    }
    case PRISM_OPT_INT: {
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (end == text || *end || errno) {
            snprintf(err, errlen, "--%s: '%s' is not an integer", o->name, text);
            return -1;
        }
        *(int64_t *)o->value = v;
        return 0;
    }
    case PRISM_OPT_BOOL:
        if (parse_bool(text, o->value) != 0) {
            snprintf(err, errlen, "--%s: '%s' is not true or false", o->name, text);
            return -1;
        }
        return 0;
    case PRISM_OPT_SIZE:
        if (prism_parse_size(text, o->value) != 0) {
            snprintf(err, errlen, "--%s: '%s' is not a size (e.g. 512MiB, 2GiB)", o->name, text);
            return -1;
        }
        return 0;
    case PRISM_OPT_DOUBLE: {
        errno = 0;
        double v = strtod(text, &end);
        if (end == text || *end || errno) {
            snprintf(err, errlen, "--%s: '%s' is not a number", o->name, text);
            return -1;
        }
        *(double *)o->value = v;
        return 0;
    }
    }
    return -1;
}

static void env_name(const char *name, char *out, size_t outlen)
{
    size_t j = (size_t)snprintf(out, outlen, "PRISM_");
    for (size_t i = 0; name[i] && j + 1 < outlen; i++)
        out[j++] = name[i] == '-' ? '_' : (char)toupper((unsigned char)name[i]);
    out[j] = '\0';
}

static prism_option *find_option(prism_option *opts, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
            return &opts[i];
    return NULL;
}

static int apply_defaults_and_env(prism_option *opts, size_t n, prism_opt_origin *from, char *err,
                                  size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        char env[128];
        env_name(opts[i].name, env, sizeof env);
        const char *text = getenv(env);
        if (from)
            from[i] = text ? PRISM_OPT_FROM_ENV : PRISM_OPT_FROM_DEFAULT;
        if (!text)
            text = opts[i].def;
        if (opts[i].type == PRISM_OPT_STRING) {
            char **slot = opts[i].value;
            *slot = NULL;
        }
        if (text && set_value(&opts[i], text, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int prism_config_parse(prism_option *opts, size_t n, int argc, char **argv, int *rest, char *err,
                       size_t errlen)
{
    return prism_config_parse_from(opts, n, argc, argv, rest, NULL, err, errlen);
}

int prism_config_parse_from(prism_option *opts, size_t n, int argc, char **argv, int *rest,
                            prism_opt_origin *from, char *err, size_t errlen)
{
    if (apply_defaults_and_env(opts, n, from, err, errlen) != 0)
        return PRISM_CONFIG_ERROR;
    int i = 1;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--")) {
            i++;
            break;
        }
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h"))
            return PRISM_CONFIG_HELP;
        if (strncmp(arg, "--", 2) != 0)
            break;
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        prism_option *o = find_option(opts, n, name, len);
        if (!o) {
            snprintf(err, errlen, "unknown flag '%s' (see --help)", arg);
            return PRISM_CONFIG_ERROR;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (from)
            from[o - opts] = PRISM_OPT_FROM_FLAG;
        if (!value && o->type == PRISM_OPT_BOOL) {
            *(bool *)o->value = true;
            continue;
        }
        if (!value) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "flag '--%s' needs a value", o->name);
                return PRISM_CONFIG_ERROR;
            }
            value = argv[++i];
        }
        if (set_value(o, value, err, errlen) != 0)
            return PRISM_CONFIG_ERROR;
    }
    if (rest) {
        *rest = i;
    } else if (i < argc) {
        snprintf(err, errlen, "unexpected argument '%s' (see --help)", argv[i]);
        return PRISM_CONFIG_ERROR;
    }
    return PRISM_CONFIG_OK;
}

void prism_config_print_help(FILE *out, const prism_option *opts, size_t n, const char *usage)
{
    fprintf(out, "%s\n\nOptions (each also read from its environment variable):\n", usage);
    for (size_t i = 0; i < n; i++) {
        char env[128];
        env_name(opts[i].name, env, sizeof env);
        fprintf(out, "  --%-22s %s\n  %-24s [%s%s%s]\n", opts[i].name, opts[i].help, "", env,
                opts[i].def ? ", default: " : "", opts[i].def ? opts[i].def : "");
    }
    fprintf(out, "  --%-22s %s\n", "help", "show this help");
}

void prism_config_free(prism_option *opts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (opts[i].type == PRISM_OPT_STRING) {
            char **slot = opts[i].value;
            free(*slot);
            *slot = NULL;
        }
    }
}
