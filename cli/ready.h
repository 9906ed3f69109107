/* Waiting for the processes of a local cluster to be ready, and showing why
 * one was not. Every wait is bounded and gives up early when the process
 * it waits for has exited. */
#ifndef PRISM_CLI_READY_H
#define PRISM_CLI_READY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Waits until nats-server `pid`, started with --ports_file_dir `dir`,
 * names the port it listens on for clients there, which it does once it
 * listens. Returns 0 with the port in `*port`, or -1 (printed). */
int ready_wait_nats(pid_t pid, const char *dir, int timeout_ms, int *port);
/* Waits until `path` holds a URL (the service's --address-file), then until
 * GET URL/healthz answers 200. Returns 0 with the URL in `url`, or -1. */
int ready_wait_service(const char *name, const char *path, pid_t pid, int timeout_ms, char *url,
                       size_t n);
/* Prints the last `lines` lines of a log file to stderr, framed. */
void ready_print_log_tail(const char *path, int lines);

#endif
