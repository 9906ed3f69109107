/* What S3's answers say (prism_s3_parse.h). */
#include "prism_s3_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *prism_s3_parse_text(const char *s, const char *end, const char *tag)
{
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = memmem(s, (size_t)(end - s), open, strlen(open));
    if (!a)
        return NULL;
    a += strlen(open);
    const char *z = memmem(a, (size_t)(end - a), close, strlen(close));
    if (!z)
        return NULL;
    char *out = malloc((size_t)(z - a) + 1), *o = out;
    if (!out)
        return NULL;
    static const struct {
        const char *name;
        char c;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    while (a < z) {
        size_t i, k = sizeof ents / sizeof *ents;
        if (*a == '&') {
            for (i = 0; i < k; i++)
                if ((size_t)(z - a) >= strlen(ents[i].name) &&
                    !strncmp(a, ents[i].name, strlen(ents[i].name)))
                    break;
            if (i < k) {
                *o++ = ents[i].c;
                a += strlen(ents[i].name);
                continue;
            }
            if (a + 2 < z && a[1] == '#') { /* &#NN; or &#xNN; of a byte-sized code */
                char *e;
                bool hex = a[2] == 'x';
                unsigned long v = strtoul(a + (hex ? 3 : 2), &e, hex ? 16 : 10);
                if (e < z && *e == ';' && v > 0 && v < 0x80) {
                    *o++ = (char)v;
                    a = e + 1;
                    continue;
                }
            }
        }
        *o++ = *a++;
    }
    *o = '\0';
    return out;
}

void prism_s3_parse_error(const char *body, size_t len, char *out, size_t n)
{
    char *code = body ? prism_s3_parse_text(body, body + len, "Code") : NULL;
    char *msg = body ? prism_s3_parse_text(body, body + len, "Message") : NULL;
    snprintf(out, n, "%s%s%s", code ? code : "", code && msg ? ": " : "", msg ? msg : "");
    free(code);
    free(msg);
}

int prism_s3_parse_listing(const char *body, size_t len,
                           int (*entry)(void *ud, const char *key, int64_t size), void *ud,
                           char **next, char *err, size_t n)
{
    const char *s = body, *end = body + len;
    *next = NULL;
    while ((s = memmem(s, (size_t)(end - s), "<Contents>", 10))) {
        const char *z = memmem(s, (size_t)(end - s), "</Contents>", 11);
        if (!z) {
            snprintf(err, n, "a listing cut short");
            return -1;
        }
        char *key = prism_s3_parse_text(s, z, "Key"), *size = prism_s3_parse_text(s, z, "Size");
        char *e = NULL;
        long long sz = size ? strtoll(size, &e, 10) : -1;
        int rc = 0;
        if (!key || !size || e == size || *e || sz < 0) {
            snprintf(err, n, "a listing entry without a key or a size");
            rc = -1;
        } else {
            rc = entry(ud, key, (int64_t)sz);
        }
        free(key);
        free(size);
        if (rc != 0)
            return -1;
        s = z + 11;
    }
    char *trunc = prism_s3_parse_text(body, end, "IsTruncated");
    bool more = trunc && !strcmp(trunc, "true");
    free(trunc);
    if (more && !(*next = prism_s3_parse_text(body, end, "NextContinuationToken"))) {
        snprintf(err, n, "a listing truncated without a continuation token");
        return -1;
    }
    return 0;
}

bool prism_s3_names(const char *prefix, const char *key)
{
    size_t pl = strlen(prefix), kl = strlen(key);
    if (kl == 0 || key[kl - 1] == '/' || kl < pl || strncmp(key, prefix, pl) != 0)
        return false; /* a store may list what was not asked for */
    if (kl == pl)
        return true; /* the key named */
    if (pl && prefix[pl - 1] != '/' && key[pl] != '/')
        return false; /* "dir" names "dir" and "dir/...", not "dir2" */
    const char *last = strrchr(key, '/');
    last = last ? last + 1 : key;
    return last[0] != '.' && last[0] != '_';
}

void prism_s3_creds_clear(prism_s3_creds *c)
{
    free(c->key);
    free(c->secret);
    free(c->token);
    *c = (prism_s3_creds){0};
}

/* [a, z) without the spaces and tabs around it. */
static void trim(const char **a, const char **z)
{
    while (*a < *z && (**a == ' ' || **a == '\t' || **a == '\r'))
        (*a)++;
    while (*z > *a && ((*z)[-1] == ' ' || (*z)[-1] == '\t' || (*z)[-1] == '\r'))
        (*z)--;
}

static bool same(const char *a, const char *z, const char *word)
{
    return (size_t)(z - a) == strlen(word) && !memcmp(a, word, (size_t)(z - a));
}

int prism_s3_parse_credentials(const char *text, size_t len, const char *profile,
                               prism_s3_creds *out)
{
    *out = (prism_s3_creds){0};
    const char *p = text, *end = text + len;
    bool in = false;
    int rc = 0;
    while (p < end && rc == 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *a = p, *z = nl ? nl : end;
        p = nl ? nl + 1 : end;
        trim(&a, &z);
        if (a == z || *a == '#' || *a == ';')
            continue;
        if (*a == '[') {
            const char *na = a + 1, *nz = z > na && z[-1] == ']' ? z - 1 : z;
            trim(&na, &nz);
            in = same(na, nz, profile);
            continue;
        }
        const char *eq = memchr(a, '=', (size_t)(z - a));
        if (!in || !eq)
            continue;
        const char *ka = a, *kz = eq, *va = eq + 1, *vz = z;
        trim(&ka, &kz);
        trim(&va, &vz);
        char **slot = same(ka, kz, "aws_access_key_id")       ? &out->key
                      : same(ka, kz, "aws_secret_access_key") ? &out->secret
                      : same(ka, kz, "aws_session_token")     ? &out->token
                                                              : NULL;
        if (!slot)
            continue;
        free(*slot);
        if (!(*slot = strndup(va, (size_t)(vz - va))))
            rc = -1;
    }
    if (out->token && !*out->token) { /* "aws_session_token =": none */
        free(out->token);
        out->token = NULL;
    }
    if (rc == 0 && out->key && *out->key && out->secret)
        return 0;
    prism_s3_creds_clear(out);
    return -1;
}
