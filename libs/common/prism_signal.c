#include "prism_signal.h"

#include <errno.h>
#include <signal.h>
#include <time.h>

#include <pthread.h>

static sigset_t stop_set(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    return set;
}

void prism_signal_block(void)
{
    sigset_t set = stop_set();
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int prism_signal_wait(int timeout_ms)
{
    sigset_t set = stop_set();
    struct timespec ts = {.tv_sec = timeout_ms / 1000,
                          .tv_nsec = (long)(timeout_ms % 1000) * 1000000};
    for (;;) {
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGHUP)
            continue;
        if (sig > 0)
            return sig;
        if (errno == EAGAIN)
            return 0;
        /* EINTR: another signal arrived; wait again (the remaining time is approximate). */
    }
}
