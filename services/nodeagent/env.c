/* The environment of a child (driver or worker), built before the fork. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodeagent.h"

extern char **environ;

void na_env_free(na_env *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i]);
    free(e->v);
    *e = (na_env){0};
}

static int env_push(na_env *e, char *owned)
{
    if (!owned)
        return -1;
    if (e->n + 2 > e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 64;
        char **v = realloc(e->v, cap * sizeof *v);
        if (!v) {
            free(owned);
            return -1;
        }
        e->v = v;
        e->cap = cap;
    }
    e->v[e->n++] = owned;
    e->v[e->n] = NULL;
    return 0;
}

int na_env_set(na_env *e, const char *name, const char *value)
{
    char *entry;
    if (asprintf(&entry, "%s=%s", name, value) < 0)
        return -1;
    size_t len = strlen(name);
    for (size_t i = 0; i < e->n; i++) {
        if (!strncmp(e->v[i], name, len) && e->v[i][len] == '=') {
            free(e->v[i]);
            e->v[i] = entry;
            return 0;
        }
    }
    return env_push(e, entry);
}

/* The agent's own PRISM_ settings stay with it (children get theirs set),
 * except TLS's: workers serve and dial with the node's certificate and CA,
 * drivers dial with the CA (docs/security.md#tls). */
static bool inherited(const char *entry)
{
    return strncmp(entry, "PRISM_", 6) != 0 || !strncmp(entry, "PRISM_TLS_CERT=", 15) ||
           !strncmp(entry, "PRISM_TLS_KEY=", 14) || !strncmp(entry, "PRISM_TLS_CA=", 13);
}

int na_env_inherit(na_env *e)
{
    for (char **p = environ; *p; p++)
        if (inherited(*p) && env_push(e, strdup(*p)) != 0)
            return -1;
    return 0;
}
