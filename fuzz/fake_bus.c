/* The bus double: subscriptions in a table, deliveries on the caller's
 * thread, publishes counted and dropped, requests answered "no responders"
 * (as NATS answers when nobody listens), so code waiting for a reply fails
 * at once instead of timing out. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fake.h"

#define MAX_SUBS 64

struct prism_bus {
    int unused;
};

typedef struct sub {
    char *subject;
    prism_bus_handler fn;
    void *ud;
} sub;

static prism_bus the_bus;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static sub subs[MAX_SUBS];
static uint64_t published;

prism_bus *fuzz_bus(void) { return &the_bus; }

uint64_t fuzz_bus_published(void)
{
    pthread_mutex_lock(&mu);
    uint64_t n = published;
    pthread_mutex_unlock(&mu);
    return n;
}

int prism_bus_connect(prism_bus **out, const char *url, const char *token, const char *name,
                      int wait_ms, char *err, size_t errlen)
{
    *out = &the_bus;
    return 0;
}

void prism_bus_destroy(prism_bus *b)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < MAX_SUBS; i++) {
        free(subs[i].subject);
        subs[i] = (sub){0};
    }
    pthread_mutex_unlock(&mu);
}

bool prism_bus_connected(prism_bus *b) { return true; }

int prism_bus_publish(prism_bus *b, const char *subject, const void *data, size_t len)
{
    pthread_mutex_lock(&mu);
    published++;
    pthread_mutex_unlock(&mu);
    return PRISM_BUS_OK;
}

int prism_bus_publish_request(prism_bus *b, const char *subject, const char *reply,
                              const void *data, size_t len)
{
    return prism_bus_publish(b, subject, data, len);
}

int prism_bus_publish_json(prism_bus *b, const char *subject, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text)
        return PRISM_BUS_ERROR;
    int rc = prism_bus_publish(b, subject, text, strlen(text));
    free(text);
    return rc;
}

int prism_bus_subscribe(prism_bus *b, const char *subject, const char *queue, prism_bus_handler fn,
                        void *ud)
{
    pthread_mutex_lock(&mu);
    int rc = PRISM_BUS_ERROR;
    for (int i = 0; i < MAX_SUBS && rc != PRISM_BUS_OK; i++) {
        if (subs[i].subject)
            continue;
        subs[i] = (sub){strdup(subject), fn, ud};
        rc = subs[i].subject ? PRISM_BUS_OK : PRISM_BUS_ERROR;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

int prism_bus_unsubscribe(prism_bus *b, const char *subject)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < MAX_SUBS; i++) {
        if (subs[i].subject && !strcmp(subs[i].subject, subject)) {
            free(subs[i].subject);
            subs[i] = (sub){0};
        }
    }
    pthread_mutex_unlock(&mu);
    return PRISM_BUS_OK;
}

int prism_bus_request(prism_bus *b, const char *subject, const void *data, size_t len,
                      int timeout_ms, char **reply, size_t *reply_len)
{
    *reply = NULL;
    *reply_len = 0;
    prism_bus_publish(b, subject, data, len);
    return PRISM_BUS_NO_RESPONDERS;
}

int prism_bus_request_json(prism_bus *b, const char *subject, json_t *req, int timeout_ms,
                           json_t **reply)
{
    *reply = NULL;
    prism_bus_publish(b, subject, "", 0);
    return PRISM_BUS_NO_RESPONDERS;
}

int prism_bus_request_all(prism_bus *b, const char *const *subjects, size_t n, const void *data,
                          size_t len, int timeout_ms, int *rc)
{
    for (size_t i = 0; i < n; i++) {
        prism_bus_publish(b, subjects[i], data, len);
        rc[i] = PRISM_BUS_NO_RESPONDERS;
    }
    return PRISM_BUS_OK;
}

const char *prism_bus_last_error(prism_bus *b) { return "fake bus"; }

/* NATS subject matching: tokens split on '.', '*' matches one token, a
 * final '>' matches one or more. */
static bool subject_matches(const char *pattern, const char *subject)
{
    while (*pattern && *subject) {
        size_t pl = strcspn(pattern, "."), sl = strcspn(subject, ".");
        if (pl == 1 && *pattern == '>' && !pattern[1])
            return true;
        if (!(pl == 1 && *pattern == '*') && (pl != sl || memcmp(pattern, subject, pl) != 0))
            return false;
        pattern += pl;
        subject += sl;
        if (*pattern != *subject)
            return false;
        pattern += *pattern == '.';
        subject += *subject == '.';
    }
    return !*pattern && !*subject;
}

int fuzz_bus_deliver(const char *subject, const char *reply, const void *data, size_t len)
{
    /* Handlers may subscribe or unsubscribe: collect first, run unlocked. */
    prism_bus_handler fns[MAX_SUBS];
    void *uds[MAX_SUBS];
    int n = 0;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < MAX_SUBS; i++) {
        if (subs[i].subject && subject_matches(subs[i].subject, subject)) {
            fns[n] = subs[i].fn;
            uds[n++] = subs[i].ud;
        }
    }
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < n; i++)
        fns[i](&the_bus, subject, reply, data, len, uds[i]);
    return n;
}
