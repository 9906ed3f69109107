/* The launcher: one long-lived thread that forks every driver and worker.
 *
 * A driver must die with the agent, which PR_SET_PDEATHSIG arranges, but the
 * kernel sends that signal when the *thread* that forked exits, not the
 * process. NATS callbacks and HTTP handlers run on threads that come and go,
 * so they hand the fork to this thread, which lives until shutdown. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "nodeagent.h"

struct na_launcher {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const na_spawn *req; /* the request in progress, NULL when none */
    bool pending;        /* `req` waits for the launcher thread */
    bool quit;
    pid_t pid;
    int err;
};

static void child_fail(const char *msg)
{
    ssize_t w = write(2, msg, strlen(msg));
    (void)w;
    _exit(127);
}

/* Runs in the child between fork and exec: async-signal-safe calls only. */
static void child_exec(const na_spawn *s, pid_t agent)
{
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != agent) /* the agent died before prctl took effect */
        _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* the agent blocks its stop signals */
    signal(SIGPIPE, SIG_DFL);              /* and ignores SIGPIPE */
    dup2(s->stdout_fd, 1);
    dup2(s->stdout_fd, 2);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0)
        dup2(null_fd, 0);
    int keep = 3; /* descriptors below this stay open */
    if (s->extra_fd > 2) {
        if (s->extra_fd != 3)
            dup2(s->extra_fd, 3);
        keep = 4;
    }
    for (int fd = 0; fd < keep; fd++)
        fcntl(fd, F_SETFD, 0);
    if (close_range((unsigned)keep, ~0U, 0) != 0)
        for (int fd = keep; fd < 4096; fd++)
            close(fd);
    if (chdir(s->dir) != 0)
        child_fail("prism-nodeagent: cannot enter the working directory\n");
    execve(s->argv[0], s->argv, s->envp);
    child_fail("prism-nodeagent: cannot execute the program\n");
}

static void fork_request(na_launcher *l)
{
    pid_t agent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        child_exec(l->req, agent);
    l->err = pid < 0 ? errno : 0;
    if (pid > 0)
        setpgid(pid, pid); /* also here, so the group exists when we return */
    l->pid = pid;
}

static void *launcher_main(void *arg)
{
    na_launcher *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->pending && !l->quit)
            pthread_cond_wait(&l->cv, &l->mu);
        if (!l->pending)
            break; /* quit, with nothing left to serve */
        fork_request(l);
        l->pending = false;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int na_launcher_create(na_launcher **out)
{
    na_launcher *l = calloc(1, sizeof *l);
    if (!l)
        return -1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    if (pthread_create(&l->thread, NULL, launcher_main, l) != 0) {
        pthread_cond_destroy(&l->cv);
        pthread_mutex_destroy(&l->mu);
        free(l);
        return -1;
    }
    *out = l;
    return 0;
}

void na_launcher_destroy(na_launcher *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->quit = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

pid_t na_launcher_spawn(na_launcher *l, const na_spawn *s)
{
    pthread_mutex_lock(&l->mu);
    while (l->req && !l->quit) /* one request at a time */
        pthread_cond_wait(&l->cv, &l->mu);
    if (l->quit) {
        pthread_mutex_unlock(&l->mu);
        errno = ECANCELED;
        return -1;
    }
    l->req = s;
    l->pending = true;
    pthread_cond_broadcast(&l->cv);
    while (l->pending)
        pthread_cond_wait(&l->cv, &l->mu);
    pid_t pid = l->pid;
    int err = l->err;
    l->req = NULL;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    errno = err;
    return pid;
}
