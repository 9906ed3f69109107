/* Clocks. Wall-clock time is for timestamps people read; monotonic time is for
 * timeouts and durations, which must not jump when the wall clock is set. */
#ifndef PRISM_TIME_H
#define PRISM_TIME_H

#include <stdint.h>

/* Milliseconds since the Unix epoch (wall clock). */
int64_t prism_now_ms(void);
/* Monotonic clock in milliseconds and nanoseconds, from an arbitrary origin. */
int64_t prism_mono_ms(void);
int64_t prism_mono_ns(void);
/* Sleeps at least `ms` milliseconds, resuming after signals. */
void prism_sleep_ms(int64_t ms);

#endif
