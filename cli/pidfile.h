/* $PRISM_HOME/pids: the processes `prism up` started, one "name pid" per
 * line, in start order; `prism down` stops them. */
#ifndef PRISM_CLI_PIDFILE_H
#define PRISM_CLI_PIDFILE_H

#include <stddef.h>
#include <sys/types.h>

#define PIDFILE_MAX 128 /* nats-server, gcs, scheduler, 2 per node (32 nodes) */

typedef struct pidfile_entry {
    char name[64];
    pid_t pid;
} pidfile_entry;

typedef struct pidfile {
    pidfile_entry e[PIDFILE_MAX];
    size_t n;
} pidfile;

/* Loads the file; a missing file is an empty table. Returns 0 or -1 (printed). */
int pidfile_load(pidfile *t, const char *path);
/* Appends one line (the file is created with mode 0600). Returns 0 or -1 (printed). */
int pidfile_append(const char *path, const char *name, pid_t pid);
/* The program a name stands for: "nats-server", "prism-gcs", "prism-scheduler",
 * "prism-objectstore" (objectstore-NODE) or "prism-nodeagent". */
const char *pidfile_program(const char *name);
/* How many recorded processes still run their program. */
size_t pidfile_count_alive(const pidfile *t);

#endif
