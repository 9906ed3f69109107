/* Test doubles the fuzz targets link instead of libs/bus/prism_bus.c and
 * libs/http/prism_http.c, so that a service's NATS callbacks and REST
 * handlers run on bytes from the fuzzer in the calling thread, without a
 * broker or a socket. The services' own code is compiled unchanged.
 *
 * The HTTP double also checks the contract of prism_http.h that a handler
 * answers exactly once: a broken contract aborts, which the fuzzer reports
 * as a crash. */
#ifndef PRISM_FUZZ_FAKE_H
#define PRISM_FUZZ_FAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prism_bus.h"

/* ---- bus ---- */
/* Delivers a message to every subscription matching `subject` (NATS wildcards
 * '*' and '>'), as the broker would. Returns how many handlers ran. */
int fuzz_bus_deliver(const char *subject, const char *reply, const void *data, size_t len);
/* The bus every fake prism_bus_connect returns (one per process). */
prism_bus *fuzz_bus(void);
/* Messages published since start (a check that publishing happened at all). */
uint64_t fuzz_bus_published(void);

/* ---- HTTP ---- */
/* Runs the request through the routes of the last server created: `target` is
 * the path with an optional "?query"; `headers` is "Name: value" lines (may be
 * NULL). Returns the status the handler answered, 404/405 when no route
 * matched. Aborts when the handler answered zero or several times. */
int fuzz_http_dispatch(const char *method, const char *target, const char *headers,
                       const void *body, size_t len);

/* ---- input format shared by the service targets ----
 * First line: "METHOD /path?query" (REST) or "NATS subject [reply]".
 * For REST, "Name: value" header lines follow up to an empty line. The rest
 * is the body. Every part is optional after the first word. */
typedef struct fuzz_msg {
    char *first;   /* method or "NATS" (owned buffer holding every string) */
    char *target;  /* path or subject */
    char *reply;   /* NATS reply subject or NULL */
    char *headers; /* REST header lines or NULL */
    const uint8_t *body;
    size_t len;
} fuzz_msg;
/* Splits `data`; false when it has no first line. Free with fuzz_msg_free. */
bool fuzz_msg_parse(const uint8_t *data, size_t len, fuzz_msg *m);
void fuzz_msg_free(fuzz_msg *m);
/* Runs a parsed message: NATS through the bus, anything else through HTTP. */
void fuzz_msg_run(const fuzz_msg *m);
/* Runs each message of an input, messages separated by a line "===" (so an
 * input can register a node, then submit a job to it), calling `after(ud)`
 * after each when it is set. At most 16 messages. */
void fuzz_run_messages(const uint8_t *data, size_t len, void (*after)(void *), void *ud);

/* A fresh directory under TMPDIR (removed by the caller), or NULL. */
char *fuzz_tmpdir(const char *tag);

#endif
