/* The cluster token: one precedence for every service (prism_service.h). */
#include <stdlib.h>
#include <string.h>

#include "prism_fs.h"
#include "prism_service.h"

#define TOKEN_FILE_MAX 4096

static bool given(const char *s) { return s && *s; }

/* The first word of `path`. */
static int read_token_file(char **out, const char *path, char *err, size_t errlen)
{
    char *text = prism_read_file(path, TOKEN_FILE_MAX, NULL);
    if (!text) {
        snprintf(err, errlen, "cannot read token file %s", path);
        return -1;
    }
    text[strcspn(text, " \t\r\n")] = '\0';
    if (!*text) {
        free(text);
        snprintf(err, errlen, "token file %s is empty", path);
        return -1;
    }
    *out = text;
    return 0;
}

static int copy_token(char **out, const char *token, char *err, size_t errlen)
{
    *out = strdup(token);
    if (!*out)
        snprintf(err, errlen, "out of memory");
    return *out ? 0 : -1;
}

int prism_token_resolve(char **out, const prism_token_sources *src, bool required, char *err,
                        size_t errlen)
{
    *out = NULL;
    if (src->no_auth)
        return 0;
    if (given(src->flag_token))
        return copy_token(out, src->flag_token, err, errlen);
    if (given(src->flag_file))
        return read_token_file(out, src->flag_file, err, errlen);
    if (given(src->env_token))
        return copy_token(out, src->env_token, err, errlen);
    if (given(src->env_file))
        return read_token_file(out, src->env_file, err, errlen);
    if (!required)
        return 0;
    snprintf(err, errlen,
             "no cluster token: set --token or --token-file (PRISM_TOKEN, "
             "PRISM_TOKEN_FILE), or pass --no-auth to turn authentication off");
    return -1;
}

/* A value set by a flag or by the environment goes to its slot; a default to none. */
static void take(const char **flag_slot, const char **env_slot, prism_opt_origin from,
                 const char *value)
{
    if (from == PRISM_OPT_FROM_FLAG)
        *flag_slot = value;
    else if (from == PRISM_OPT_FROM_ENV)
        *env_slot = value;
}

prism_token_sources prism_token_sources_of(const prism_option *opts, const prism_opt_origin *from,
                                           size_t n)
{
    prism_token_sources src = {0};
    for (size_t i = 0; i < n; i++) {
        const prism_option *o = &opts[i];
        if (!strcmp(o->name, "no-auth"))
            src.no_auth = *(bool *)o->value;
        else if (!strcmp(o->name, "token"))
            take(&src.flag_token, &src.env_token, from[i], *(char **)o->value);
        else if (!strcmp(o->name, "token-file"))
            take(&src.flag_file, &src.env_file, from[i], *(char **)o->value);
    }
    return src;
}
