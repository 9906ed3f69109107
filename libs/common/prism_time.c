#include "prism_time.h"

#include <errno.h>
#include <time.h>

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t prism_now_ms(void) { return clock_ns(CLOCK_REALTIME) / 1000000; }
int64_t prism_mono_ms(void) { return clock_ns(CLOCK_MONOTONIC) / 1000000; }
int64_t prism_mono_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

struct timespec prism_deadline_ts(clockid_t id, int64_t ms)
{
    int64_t ns = clock_ns(id) + ms * 1000000LL;
    return (struct timespec){.tv_sec = (time_t)(ns / 1000000000LL), .tv_nsec = ns % 1000000000LL};
}

void prism_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}
