#include "prism_bus.h"

#include <nats/nats.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prism_time.h"

typedef struct bus_sub {
    prism_bus *bus;
    natsSubscription *sub;
    prism_bus_handler fn;
    void *ud;
    bool draining; /* while it ends */
    struct bus_sub *next;
} bus_sub;

struct prism_bus {
    natsConnection *nc;
    pthread_mutex_t lock;
    bus_sub *subs;
    char last_error[256];
};

/* nats.c frees OpenSSL's list of compression methods when it closes over
 * TLS and leaves OpenSSL's pointer to it behind (nats.c issue 904), so
 * OpenSSL's own exit handler would free it again and crash the exit. The
 * handler is turned off before anything starts OpenSSL (libcurl, nats.c):
 * its memory goes back with the process. */
__attribute__((constructor)) static void openssl_without_exit_handler(void)
{
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
}

/* nats.c keeps library-wide threads; they are released when the last bus goes. */
static pthread_mutex_t lib_lock = PTHREAD_MUTEX_INITIALIZER;
static int lib_users;

static void set_error(prism_bus *b, const char *what, natsStatus s)
{
    pthread_mutex_lock(&b->lock);
    snprintf(b->last_error, sizeof b->last_error, "%s: %s", what, natsStatus_GetText(s));
    pthread_mutex_unlock(&b->lock);
}

static void on_connected(natsConnection *nc, void *closure) {}

/* TLS follows the URL: `tls://` asks for it, and nats.c also switches to it
 * when the server requires it. The server's certificate is checked against
 * PRISM_TLS_CA (the same CA bundle the REST clients use) and the URL's host. */
static natsStatus set_tls(natsOptions *opts, const char *url)
{
    natsStatus s = NATS_OK;
    const char *ca = getenv("PRISM_TLS_CA");
    if (ca && *ca)
        s = natsOptions_LoadCATrustedCertificates(opts, ca);
    if (s == NATS_OK && !strncmp(url, "tls://", 6))
        s = natsOptions_SetSecure(opts, true);
    return s;
}

static natsStatus make_options(natsOptions **opts, const char *url, const char *token,
                               const char *name, bool retry)
{
    natsStatus s = natsOptions_Create(opts);
    if (s == NATS_OK)
        s = natsOptions_SetURL(*opts, url);
    if (s == NATS_OK)
        s = set_tls(*opts, url);
    if (s == NATS_OK && token && *token)
        s = natsOptions_SetToken(*opts, token);
    if (s == NATS_OK && name)
        s = natsOptions_SetName(*opts, name);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(*opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(*opts, 250);
    /* Replies go out at once instead of waiting for the background flusher:
     * without this a responder caps at about a thousand replies a second. */
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(*opts, true);
    if (s == NATS_OK && retry)
        s = natsOptions_SetRetryOnFailedConnect(*opts, true, on_connected, NULL);
    return s;
}

/* One connection attempt; a failure's reason (nats.c keeps it per thread) goes to `why`. */
static natsStatus try_connect(prism_bus *b, const char *url, const char *token, const char *name,
                              bool retry, char *why, size_t whylen)
{
    natsOptions *opts = NULL;
    natsStatus s = make_options(&opts, url, token, name, retry);
    if (s == NATS_OK)
        s = natsConnection_Connect(&b->nc, opts);
    if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
        const char *text = nats_GetLastError(NULL);
        const char *detail = text ? strstr(text, "): ") : NULL; /* drop nats.c's "(file:line)" */
        snprintf(why, whylen, "%s",
                 detail          ? detail + 3
                 : text && *text ? text
                                 : natsStatus_GetText(s));
    }
    natsOptions_Destroy(opts);
    return s;
}

int prism_bus_connect(prism_bus **out, const char *url, const char *token, const char *name,
                      int wait_ms, char *err, size_t errlen)
{
    *out = NULL;
    pthread_mutex_lock(&lib_lock);
    lib_users++;
    pthread_mutex_unlock(&lib_lock);
    prism_bus *b = calloc(1, sizeof *b);
    char why[256] = "";
    natsStatus s = NATS_NO_MEMORY;
    if (b) {
        pthread_mutex_init(&b->lock, NULL);
        /* A server that is not up yet is waited for (services may start
         * before the broker); one that refuses us (token, certificate) is a
         * mistake in the configuration, reported now. */
        s = try_connect(b, url, token, name, false, why, sizeof why);
        if (s == NATS_NO_SERVER)
            s = try_connect(b, url, token, name, true, why, sizeof why);
        if (s == NATS_NOT_YET_CONNECTED)
            s = NATS_OK;
    }
    if (s == NATS_OK && wait_ms > 0) {
        int64_t deadline = prism_mono_ms() + wait_ms;
        while (!prism_bus_connected(b) && prism_mono_ms() < deadline)
            prism_sleep_ms(20);
        if (!prism_bus_connected(b)) {
            s = NATS_NO_SERVER;
            snprintf(why, sizeof why, "no server answered in time");
        }
    }
    if (s != NATS_OK) {
        snprintf(err, errlen, "cannot connect to NATS at %s: %s", url,
                 *why ? why : natsStatus_GetText(s));
        prism_bus_destroy(b);
        if (!b) {
            pthread_mutex_lock(&lib_lock);
            lib_users--;
            pthread_mutex_unlock(&lib_lock);
        }
        return PRISM_BUS_ERROR;
    }
    *out = b;
    return PRISM_BUS_OK;
}

/* Stops delivery to the subscriptions of the list `subs` and waits for
 * their running callbacks, so nothing touches the subscribers' state after
 * this returns. Every drain is begun before any is waited for, so that they
 * share their round trips to the server (one by one, each cost one: a
 * client of six subscriptions took 5-10 ms to disconnect, which a worker's
 * exit, and its lease, waited for). */
static void end_subscriptions(prism_bus *b, bus_sub *subs)
{
    /* Draining needs the server: without it, it would only wait out its timeout. */
    bool up = prism_bus_connected(b);
    for (bus_sub *s = subs; s; s = s->next) {
        s->draining = up && natsSubscription_Drain(s->sub) == NATS_OK;
        if (!s->draining)
            natsSubscription_Unsubscribe(s->sub);
    }
    for (bus_sub *s = subs; s; s = s->next)
        if (s->draining)
            natsSubscription_WaitForDrainCompletion(s->sub, 2000);
}

void prism_bus_destroy(prism_bus *b)
{
    if (!b)
        return;
    if (b->nc) {
        if (prism_bus_connected(b))
            natsConnection_FlushTimeout(b->nc, 1000);
        end_subscriptions(b, b->subs);
        natsConnection_Close(b->nc);
    }
    for (bus_sub *s = b->subs, *next; s; s = next) {
        next = s->next;
        natsSubscription_Destroy(s->sub);
        free(s);
    }
    natsConnection_Destroy(b->nc);
    pthread_mutex_destroy(&b->lock);
    free(b);
    pthread_mutex_lock(&lib_lock);
    if (--lib_users == 0)
        nats_CloseAndWait(2000);
    pthread_mutex_unlock(&lib_lock);
}

bool prism_bus_connected(prism_bus *b)
{
    return b && b->nc && natsConnection_Status(b->nc) == NATS_CONN_STATUS_CONNECTED;
}

int prism_bus_publish(prism_bus *b, const char *subject, const void *data, size_t len)
{
    natsStatus s = natsConnection_Publish(b->nc, subject, data, (int)len);
    if (s != NATS_OK) {
        set_error(b, subject, s);
        return PRISM_BUS_ERROR;
    }
    return PRISM_BUS_OK;
}

int prism_bus_publish_request(prism_bus *b, const char *subject, const char *reply,
                              const void *data, size_t len)
{
    natsStatus s = natsConnection_PublishRequest(b->nc, subject, reply, data, (int)len);
    if (s != NATS_OK) {
        set_error(b, subject, s);
        return PRISM_BUS_ERROR;
    }
    return PRISM_BUS_OK;
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

static void on_message(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    bus_sub *s = closure;
    s->fn(s->bus, natsMsg_GetSubject(msg), natsMsg_GetReply(msg), natsMsg_GetData(msg),
          (size_t)natsMsg_GetDataLength(msg), s->ud);
    natsMsg_Destroy(msg);
}

int prism_bus_subscribe(prism_bus *b, const char *subject, const char *queue, prism_bus_handler fn,
                        void *ud)
{
    bus_sub *s = calloc(1, sizeof *s);
    if (!s)
        return PRISM_BUS_ERROR;
    *s = (bus_sub){.bus = b, .fn = fn, .ud = ud};
    natsStatus st =
        queue ? natsConnection_QueueSubscribe(&s->sub, b->nc, subject, queue, on_message, s)
              : natsConnection_Subscribe(&s->sub, b->nc, subject, on_message, s);
    if (st != NATS_OK) {
        set_error(b, subject, st);
        free(s);
        return PRISM_BUS_ERROR;
    }
    pthread_mutex_lock(&b->lock);
    s->next = b->subs;
    b->subs = s;
    pthread_mutex_unlock(&b->lock);
    return PRISM_BUS_OK;
}

int prism_bus_unsubscribe(prism_bus *b, const char *subject)
{
    bus_sub *gone = NULL;
    pthread_mutex_lock(&b->lock);
    for (bus_sub **pp = &b->subs; *pp;) {
        bus_sub *s = *pp;
        if (!strcmp(natsSubscription_GetSubject(s->sub), subject)) {
            *pp = s->next;
            s->next = gone;
            gone = s;
        } else {
            pp = &s->next;
        }
    }
    pthread_mutex_unlock(&b->lock);
    int n = 0;
    end_subscriptions(b, gone);
    for (bus_sub *s = gone, *next; s; s = next, n++) {
        next = s->next;
        natsSubscription_Destroy(s->sub);
        free(s);
    }
    return n;
}

int prism_bus_request(prism_bus *b, const char *subject, const void *data, size_t len,
                      int timeout_ms, char **reply, size_t *reply_len)
{
    natsMsg *msg = NULL;
    *reply = NULL;
    natsStatus s = natsConnection_Request(&msg, b->nc, subject, data, (int)len, timeout_ms);
    if (s != NATS_OK) {
        set_error(b, subject, s);
        return s == NATS_TIMEOUT         ? PRISM_BUS_TIMEOUT
               : s == NATS_NO_RESPONDERS ? PRISM_BUS_NO_RESPONDERS
                                         : PRISM_BUS_ERROR;
    }
    size_t n = (size_t)natsMsg_GetDataLength(msg);
    *reply = malloc(n + 1);
    if (*reply) {
        memcpy(*reply, natsMsg_GetData(msg), n);
        (*reply)[n] = '\0';
        if (reply_len)
            *reply_len = n;
    }
    natsMsg_Destroy(msg);
    return *reply ? PRISM_BUS_OK : PRISM_BUS_ERROR;
}

int prism_bus_request_all(prism_bus *b, const char *const *subjects, size_t n, const void *data,
                          size_t len, int timeout_ms, int *rc)
{
    /* An inbox of its own per request: a sync subscription tells a
     * no-responders notice only as a status, not in a message naming it. */
    natsSubscription **subs = calloc(n + 1, sizeof *subs);
    natsStatus s = subs ? NATS_OK : NATS_NO_MEMORY;
    for (size_t i = 0; i < n; i++)
        rc[i] = PRISM_BUS_ERROR;
    for (size_t i = 0; s == NATS_OK && i < n; i++) {
        natsInbox *inbox = NULL;
        s = natsInbox_Create(&inbox);
        if (s == NATS_OK)
            s = natsConnection_SubscribeSync(&subs[i], b->nc, inbox);
        if (s == NATS_OK)
            s = natsConnection_PublishRequest(b->nc, subjects[i], inbox, data, (int)len);
        natsInbox_Destroy(inbox);
    }
    if (s != NATS_OK)
        set_error(b, "a request to several peers", s);
    /* All went out at once: waiting for each in turn takes one wait in all. */
    int64_t deadline = prism_mono_ms() + timeout_ms;
    for (size_t i = 0; s == NATS_OK && i < n; i++) {
        int64_t wait = deadline - prism_mono_ms();
        natsMsg *msg = NULL;
        natsStatus r = natsSubscription_NextMsg(&msg, subs[i], wait > 0 ? wait : 0);
        rc[i] = r == NATS_NO_RESPONDERS || (r == NATS_OK && natsMsg_IsNoResponders(msg))
                    ? PRISM_BUS_NO_RESPONDERS
                : r == NATS_OK ? PRISM_BUS_OK
                               : PRISM_BUS_TIMEOUT;
        natsMsg_Destroy(msg);
    }
    for (size_t i = 0; subs && i < n; i++) {
        if (subs[i])
            natsSubscription_Unsubscribe(subs[i]);
        natsSubscription_Destroy(subs[i]);
    }
    free(subs);
    return s == NATS_OK ? PRISM_BUS_OK : PRISM_BUS_ERROR;
}

int prism_bus_request_json(prism_bus *b, const char *subject, json_t *req, int timeout_ms,
                           json_t **reply)
{
    *reply = NULL;
    char *text = json_dumps(req, JSON_COMPACT);
    if (!text)
        return PRISM_BUS_ERROR;
    char *raw = NULL;
    size_t n = 0;
    int rc = prism_bus_request(b, subject, text, strlen(text), timeout_ms, &raw, &n);
    free(text);
    if (rc == PRISM_BUS_OK) {
        *reply = json_loadb(raw, n, 0, NULL);
        free(raw);
    }
    return rc;
}

const char *prism_bus_last_error(prism_bus *b) { return b->last_error; }
