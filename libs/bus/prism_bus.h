/* The NATS connection every service uses for events and for requests to
 * cluster services (see docs/protocol.md for the subjects).
 *
 * The connection authenticates with a token and reconnects forever: a
 * service may start before the broker and survives broker restarts;
 * publishes made while disconnected are buffered by the client up to its
 * limit. Message callbacks run on the client's threads, one per
 * subscription; they must not block for long. */
#ifndef PRISM_BUS_H
#define PRISM_BUS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct prism_bus prism_bus;

/* `reply` is the subject to answer on (NULL when no answer is expected).
 * `data` is valid only during the call. */
typedef void (*prism_bus_handler)(prism_bus *bus, const char *subject, const char *reply,
                                  const char *data, size_t len, void *ud);

enum {
    PRISM_BUS_OK = 0,
    PRISM_BUS_ERROR = -1,
    PRISM_BUS_TIMEOUT = -2,      /* a request got no answer in time */
    PRISM_BUS_NO_RESPONDERS = -3 /* nobody subscribes to the request's subject */
};

/* Connects to `url` ("nats://127.0.0.1:4222") with `token` (may be NULL).
 * `name` identifies the client to the server. When `wait_ms` > 0 the call
 * waits that long for a first connection and fails if none came; with 0 it
 * returns at once and the client keeps trying in the background. */
int prism_bus_connect(prism_bus **out, const char *url, const char *token, const char *name,
                      int wait_ms, char *err, size_t errlen);
/* Flushes what is buffered, ends the subscriptions (waiting for callbacks
 * that are running), closes. NULL is a no-op. */
void prism_bus_destroy(prism_bus *b);
bool prism_bus_connected(prism_bus *b);

int prism_bus_publish(prism_bus *b, const char *subject, const void *data, size_t len);
/* Publishes with a reply subject: the answer arrives later on a subscription
 * of the caller's to `reply` (a request that does not wait). */
int prism_bus_publish_request(prism_bus *b, const char *subject, const char *reply,
                              const void *data, size_t len);
/* Publishes `doc` as compact JSON; `doc` is borrowed. */
int prism_bus_publish_json(prism_bus *b, const char *subject, json_t *doc);

/* Subscribes `fn` to `subject` (wildcards allowed). With a `queue` name the
 * subscribers of that queue share the messages: each goes to one of them. */
int prism_bus_subscribe(prism_bus *b, const char *subject, const char *queue, prism_bus_handler fn,
                        void *ud);

/* Ends this bus's subscriptions to exactly `subject`, waiting for callbacks
 * already running on them. Returns how many ended. */
int prism_bus_unsubscribe(prism_bus *b, const char *subject);

/* Sends a request and waits up to `timeout_ms` for one reply, which the
 * caller frees. Returns PRISM_BUS_OK, _TIMEOUT, _NO_RESPONDERS or _ERROR. */
int prism_bus_request(prism_bus *b, const char *subject, const void *data, size_t len,
                      int timeout_ms, char **reply, size_t *reply_len);
/* The same with JSON both ways; `req` is borrowed, `*reply` owned by the
 * caller (NULL when the answer was not JSON). */
int prism_bus_request_json(prism_bus *b, const char *subject, json_t *req, int timeout_ms,
                           json_t **reply);

/* Sends `n` requests at once, the same `len` bytes to each of `subjects`,
 * and waits up to `timeout_ms` in all for their answers (whose bytes are
 * dropped): rc[i] is PRISM_BUS_OK (answered), _NO_RESPONDERS (nobody
 * subscribes to subjects[i]) or _TIMEOUT. Checking n peers costs one wait,
 * not n. Returns PRISM_BUS_OK, or _ERROR when they could not be sent (every
 * rc[i] _ERROR then). */
int prism_bus_request_all(prism_bus *b, const char *const *subjects, size_t n, const void *data,
                          size_t len, int timeout_ms, int *rc);

/* Shortest waits for error text: the last failure of this bus, for logs. */
const char *prism_bus_last_error(prism_bus *b);

#endif
