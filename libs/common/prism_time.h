/* Clocks. Wall-clock time is for timestamps people read; monotonic time is for
 * timeouts and durations, which must not jump when the wall clock is set. */
#ifndef PRISM_TIME_H
#define PRISM_TIME_H

#include <stdint.h>
#include <time.h>

/* Milliseconds since the Unix epoch (wall clock). */
int64_t prism_now_ms(void);
/* Monotonic clock in milliseconds and nanoseconds, from an arbitrary origin. */
int64_t prism_mono_ms(void);
int64_t prism_mono_ns(void);
/* Clock `id` (that of the condition variable waited on) `ms` milliseconds
 * from now, as pthread_cond_timedwait takes a deadline. */
struct timespec prism_deadline_ts(clockid_t id, int64_t ms);
/* Sleeps at least `ms` milliseconds, resuming after signals. */
void prism_sleep_ms(int64_t ms);

#endif
