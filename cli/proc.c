#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "prism_time.h"

extern char **environ;

static bool executable_at(const char *dir, const char *program, char *out, size_t n)
{
    if ((size_t)snprintf(out, n, "%s/%s", dir, program) >= n)
        return false;
    return access(out, X_OK) == 0;
}

static bool find_on_path(const char *program, char *out, size_t n)
{
    const char *path = getenv("PATH");
    if (!path)
        return false;
    char *copy = strdup(path), *save = NULL;
    bool found = false;
    for (char *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir && !found;
         dir = strtok_r(NULL, ":", &save))
        found = *dir && executable_at(dir, program, out, n);
    free(copy);
    return found;
}

int proc_find_service(const char *program, char *out, size_t n)
{
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len > 0) {
        self[len] = '\0';
        if (executable_at(dirname(self), program, out, n))
            return 0;
    }
    if (find_on_path(program, out, n))
        return 0;
    fprintf(stderr, "prism: cannot find %s next to the prism command or on PATH\n", program);
    return -1;
}

int proc_find_system(const char *program, char *out, size_t n)
{
    if (find_on_path(program, out, n) || executable_at("/usr/sbin", program, out, n) ||
        executable_at("/usr/bin", program, out, n))
        return 0;
    fprintf(stderr, "prism: cannot find %s on PATH, in /usr/sbin or in /usr/bin\n", program);
    return -1;
}

/* Variables that would tie a service to another cluster or job. */
static bool foreign_variable(const char *entry)
{
    static const char *const names[] = {"PRISM_ADDRESS=", "PRISM_TOKEN=",   "PRISM_NATS_URL=",
                                        "PRISM_JOB_ID=",  "PRISM_NODE_ID=", "PRISM_NO_AUTH="};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strncmp(entry, names[i], strlen(names[i])))
            return true;
    return false;
}

/* The environment for services, built before fork (the child must not allocate). */
static char **service_environ(void)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 1, sizeof *env);
    for (size_t i = 0, j = 0; env && i < n; i++)
        if (!foreign_variable(environ[i]))
            env[j++] = environ[i];
    return env;
}

static void child_exec(char *const argv[], char **env, int logfd, int nullfd, int errfd)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid();
    dup2(nullfd, STDIN_FILENO);
    dup2(logfd, STDOUT_FILENO);
    dup2(logfd, STDERR_FILENO);
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC); /* nothing the caller left open leaks in */
    execve(argv[0], argv, env);
    int e = errno;
    if (write(errfd, &e, sizeof e) < 0)
        _exit(126);
    _exit(127);
}

/* After fork: reads the child's exec errno from the pipe (nothing when exec succeeded). */
static int await_exec(pid_t pid, int errfd, const char *program)
{
    int e = 0;
    ssize_t r;
    do
        r = read(errfd, &e, sizeof e);
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof e)
        return 0;
    waitpid(pid, NULL, 0);
    fprintf(stderr, "prism: cannot run %s: %s\n", program, strerror(e));
    return -1;
}

int proc_spawn(char *const argv[], const char *log_path, pid_t *pid)
{
    int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int pipefd[2] = {-1, -1};
    char **env = service_environ();
    int rc = -1;
    if (logfd < 0 || nullfd < 0 || !env || pipe2(pipefd, O_CLOEXEC) != 0) {
        fprintf(stderr, "prism: cannot start %s: %s\n", argv[0], strerror(errno));
        goto out;
    }
    *pid = fork();
    if (*pid == 0)
        child_exec(argv, env, logfd, nullfd, pipefd[1]);
    close(pipefd[1]);
    pipefd[1] = -1;
    if (*pid < 0)
        fprintf(stderr, "prism: fork: %s\n", strerror(errno));
    else
        rc = await_exec(*pid, pipefd[0], argv[0]);
out:
    free(env);
    for (int i = 0; i < 2; i++)
        if (pipefd[i] >= 0)
            close(pipefd[i]);
    if (logfd >= 0)
        close(logfd);
    if (nullfd >= 0)
        close(nullfd);
    return rc;
}

/* The state letter of /proc/PID/stat, or 0 when it cannot be read. */
static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')'); /* the command name may hold spaces */
    return paren && paren[1] == ' ' ? paren[2] : 0;
}

bool proc_alive(pid_t pid)
{
    if (pid <= 0)
        return false;
    pid_t r = waitpid(pid, NULL, WNOHANG);
    if (r == pid)
        return false;
    if (r == 0)
        return true;
    if (kill(pid, 0) != 0 && errno != EPERM)
        return false;
    char state = proc_state(pid);
    return state != 'Z' && state != 'X';
}

bool proc_runs(pid_t pid, const char *program)
{
    char path[64], cmd[4096];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(cmd, 1, sizeof cmd - 1, f); /* argv[0] ends at the first NUL */
    fclose(f);
    cmd[n] = '\0';
    const char *slash = strrchr(cmd, '/');
    return !strcmp(slash ? slash + 1 : cmd, program) && proc_alive(pid);
}

static size_t count_alive(const pid_t *pids, size_t n)
{
    size_t alive = 0;
    for (size_t i = 0; i < n; i++)
        alive += proc_alive(pids[i]);
    return alive;
}

int proc_stop(const pid_t *pids, size_t n, int grace_ms)
{
    for (size_t i = 0; i < n; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGTERM);
    int64_t deadline = prism_mono_ms() + grace_ms;
    while (count_alive(pids, n) > 0 && prism_mono_ms() < deadline)
        prism_sleep_ms(50);
    int killed = 0;
    for (size_t i = 0; i < n; i++) {
        if (proc_alive(pids[i])) {
            kill(pids[i], SIGKILL);
            killed++;
        }
    }
    for (size_t i = 0; i < n && killed > 0; i++)
        waitpid(pids[i], NULL, 0); /* reaps our own children; fails at once for others */
    return killed;
}
