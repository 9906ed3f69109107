/* The processes of a local cluster: finding their programs, starting them
 * detached with their output in a log file, stopping them. Every function
 * prints its own errors as "prism: ...". */
#ifndef PRISM_CLI_PROC_H
#define PRISM_CLI_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Finds a service program next to the running prism executable, then on PATH.
 * Returns 0 with the path in `out`, or -1. */
int proc_find_service(const char *program, char *out, size_t n);
/* Finds a program on PATH, then in /usr/sbin and /usr/bin. Returns 0 or -1. */
int proc_find_system(const char *program, char *out, size_t n);

/* Starts argv[0] (a path) in a new session, stdin from /dev/null, stdout and
 * stderr appended to `log_path`, with the variables that tie a process to
 * another cluster (PRISM_ADDRESS, PRISM_TOKEN, ...) removed from its
 * environment. Returns 0 with `*pid`, or -1 (also when exec failed). */
int proc_spawn(char *const argv[], const char *log_path, pid_t *pid);

/* Whether `pid` still runs (a zombie does not). Reaps it when it is our child. */
bool proc_alive(pid_t pid);
/* Whether the process `pid` runs `program` (compares argv[0]'s base name). */
bool proc_runs(pid_t pid, const char *program);
/* Sends SIGTERM to each pid, waits up to `grace_ms` for them to exit, then
 * sends SIGKILL to those left. Returns how many needed SIGKILL. */
int proc_stop(const pid_t *pids, size_t n, int grace_ms);

#endif
