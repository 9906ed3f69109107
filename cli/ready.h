/* Waiting for the processes of a local cluster to be ready, and showing why
 * one was not. Every wait is bounded and gives up early when the process
 * it waits for has exited. */
#ifndef PRISM_CLI_READY_H
#define PRISM_CLI_READY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A TCP port on 127.0.0.1 that was free a moment ago, or -1. */
int ready_free_port(void);
/* Waits until 127.0.0.1:port accepts connections; `name` is the process in messages.
 * Returns 0 or -1. */
int ready_wait_port(const char *name, int port, pid_t pid, int timeout_ms);
/* Waits until `path` holds a URL (the service's --address-file), then until
 * GET URL/healthz answers 200. Returns 0 with the URL in `url`, or -1. */
int ready_wait_service(const char *name, const char *path, pid_t pid, int timeout_ms, char *url,
                       size_t n);
/* Prints the last `lines` lines of a log file to stderr, framed. */
void ready_print_log_tail(const char *path, int lines);

#endif
