/* The input format of the service targets (fake.h) and small helpers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake.h"

bool fuzz_msg_parse(const uint8_t *data, size_t len, fuzz_msg *m)
{
    *m = (fuzz_msg){0};
    const uint8_t *nl = memchr(data, '\n', len);
    size_t head = nl ? (size_t)(nl - data) : len;
    const uint8_t *rest = nl ? nl + 1 : data + len;
    size_t left = len - (size_t)(rest - data);
    bool nats = head >= 5 && !memcmp(data, "NATS ", 5);
    size_t hlen = 0, skip = 0; /* header bytes, and those before the body */
    if (!nats && left && rest[0] == '\n') {
        skip = 1; /* an empty header block */
    } else if (!nats) {
        for (size_t i = 0; i + 1 < left && !skip; i++)
            if (rest[i] == '\n' && rest[i + 1] == '\n')
                hlen = i + 1, skip = i + 2;
    }
    m->first = malloc(head + 1 + hlen + 1);
    if (!m->first)
        return false;
    memcpy(m->first, data, head);
    m->first[head] = '\0';
    if (strlen(m->first) != head) { /* a NUL in the first line */
        fuzz_msg_free(m);
        return false;
    }
    char *sp = strchr(m->first, ' ');
    if (!sp) {
        fuzz_msg_free(m);
        return false;
    }
    *sp = '\0';
    m->target = sp + 1;
    if (nats && (sp = strchr(m->target, ' ')) != NULL) {
        *sp = '\0';
        m->reply = sp + 1;
    }
    if (!nats) {
        m->headers = m->first + head + 1;
        memcpy(m->headers, rest, hlen);
        m->headers[hlen] = '\0';
        rest += skip;
        left -= skip;
    }
    m->body = rest;
    m->len = left;
    return true;
}

void fuzz_msg_free(fuzz_msg *m)
{
    free(m->first);
    *m = (fuzz_msg){0};
}

void fuzz_msg_run(const fuzz_msg *m)
{
    if (strcmp(m->first, "NATS") != 0) {
        fuzz_http_dispatch(m->first, m->target, m->headers, m->body, m->len);
        return;
    }
    /* NATS hands handlers a NUL-terminated copy: so does this. */
    char *copy = malloc(m->len + 1);
    if (!copy)
        return;
    if (m->len)
        memcpy(copy, m->body, m->len);
    copy[m->len] = '\0';
    fuzz_bus_deliver(m->target, m->reply && *m->reply ? m->reply : NULL, copy, m->len);
    free(copy);
}

void fuzz_run_messages(const uint8_t *data, size_t len, void (*after)(void *), void *ud)
{
    static const char sep[] = "\n===\n";
    for (int n = 0; n < 16 && len; n++) {
        const uint8_t *end = memmem(data, len, sep, sizeof sep - 1);
        size_t one = end ? (size_t)(end - data) : len;
        fuzz_msg m;
        if (fuzz_msg_parse(data, one, &m)) {
            fuzz_msg_run(&m);
            fuzz_msg_free(&m);
            if (after)
                after(ud);
        }
        if (!end)
            break;
        data += one + sizeof sep - 1;
        len -= one + sizeof sep - 1;
    }
}

char *fuzz_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/prism-fuzz-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    char *dir = strdup(path);
    if (dir && !mkdtemp(dir)) {
        free(dir);
        return NULL;
    }
    return dir;
}
