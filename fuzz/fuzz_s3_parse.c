/* S3's answers (libs/http/prism_s3_parse.h) on any bytes: a listing page
 * parsed, every key it gives a string with the size it came with, a
 * truncated page with its token; an error body's code and message; which
 * keys a path's prefix names; and the body as a shared credentials file,
 * the prefix its profile. Input: a prefix line, then the body. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prism_s3_parse.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "%s\n", what);
        abort();
    }
}

typedef struct seen {
    const char *prefix;
    size_t body_len;
    size_t entries;
} seen;

static int on_entry(void *ud, const char *key, int64_t size)
{
    seen *s = ud;
    check(size >= 0, "a negative size");
    check(strlen(key) <= s->body_len, "a key longer than the body");
    bool named = prism_s3_names(s->prefix, key);
    size_t pl = strlen(s->prefix);
    check(!named || !strncmp(key, s->prefix, pl), "a key named outside its prefix");
    check(!named || key[strlen(key) - 1] != '/', "a folder marker named");
    s->entries++;
    return s->entries < 100000 ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size < 256 ? size : 256);
    size_t pl = nl ? (size_t)(nl - data) : 0;
    char prefix[257];
    memcpy(prefix, data, pl);
    prefix[pl] = '\0';
    const uint8_t *body = nl ? nl + 1 : data;
    size_t len = size - (size_t)(body - data);
    /* the client's bodies are NUL-terminated (prism_buf) */
    char *copy = malloc(len + 1);
    check(copy != NULL, "out of memory");
    memcpy(copy, body, len);
    copy[len] = '\0';

    seen s = {prefix, len, 0};
    char err[256] = "", *next = NULL;
    int rc = prism_s3_parse_listing(copy, len, on_entry, &s, &next, err, sizeof err);
    check(rc == 0 || rc == -1, "a listing's verdict is 0 or -1");
    check(rc == 0 || *err || s.entries >= 100000, "a refused listing without a reason");
    check(rc == 0 || !next, "a token with a refused listing");
    check(!next || strlen(next) <= len, "a token longer than the body");
    free(next);

    char e[512];
    prism_s3_parse_error(copy, len, e, sizeof e);
    check(strlen(e) < sizeof e, "an error message past its buffer");
    char *code = prism_s3_parse_text(copy, copy + len, "Code");
    check(!code || strlen(code) <= len, "a text longer than the body");
    free(code);

    prism_s3_creds cr;
    rc = prism_s3_parse_credentials((const char *)body, len, prefix, &cr);
    check(rc == 0 || (!cr.key && !cr.secret && !cr.token), "credentials left with a refusal");
    check(rc != 0 || (cr.key && *cr.key && cr.secret), "credentials without a key or secret");
    check(rc != 0 || (strlen(cr.key) <= len && strlen(cr.secret) <= len &&
                      (!cr.token || strlen(cr.token) <= len)),
          "a credential longer than the file");
    prism_s3_creds_clear(&cr);
    free(copy);
    return 0;
}
