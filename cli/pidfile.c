#include "pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proc.h"

int pidfile_load(pidfile *t, const char *path)
{
    t->n = 0;
    FILE *f = fopen(path, "r");
    if (!f && errno == ENOENT)
        return 0;
    if (!f) {
        fprintf(stderr, "prism: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[256], name[64];
    int pid;
    while (t->n < PIDFILE_MAX && fgets(line, sizeof line, f)) {
        if (sscanf(line, "%63s %d", name, &pid) != 2 || pid <= 0)
            continue;
        snprintf(t->e[t->n].name, sizeof t->e[t->n].name, "%s", name);
        t->e[t->n++].pid = (pid_t)pid;
    }
    fclose(f);
    return 0;
}

int pidfile_append(const char *path, const char *name, pid_t pid)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    char line[128];
    int len = snprintf(line, sizeof line, "%s %d\n", name, (int)pid);
    if (fd < 0 || write(fd, line, (size_t)len) != len) {
        fprintf(stderr, "prism: cannot write %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

const char *pidfile_program(const char *name)
{
    if (!strcmp(name, "nats-server"))
        return "nats-server";
    if (!strcmp(name, "gcs"))
        return "prism-gcs";
    if (!strcmp(name, "scheduler"))
        return "prism-scheduler";
    if (!strcmp(name, "dataservice"))
        return "prism-dataservice";
    if (!strncmp(name, "objectstore-", 12))
        return "prism-objectstore";
    return "prism-nodeagent";
}

size_t pidfile_count_alive(const pidfile *t)
{
    size_t alive = 0;
    for (size_t i = 0; i < t->n; i++)
        alive += proc_runs(t->e[i].pid, pidfile_program(t->e[i].name));
    return alive;
}
