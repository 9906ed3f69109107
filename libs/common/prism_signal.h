/* Signal handling for services: a stop signal (SIGTERM, SIGINT) is received
 * synchronously by the main loop instead of interrupting arbitrary code.
 *
 *   prism_signal_block();              // first thing in main, before threads
 *   ... start servers and threads ...
 *   while (!prism_signal_wait(500))    // one cron tick per wait
 *       service_cron(&svc);
 *   ... clean shutdown ... */
#ifndef PRISM_SIGNAL_H
#define PRISM_SIGNAL_H

/* Blocks SIGTERM, SIGINT and SIGHUP in this thread and every thread it creates
 * afterwards, and ignores SIGPIPE (a closed peer is an error return instead). */
void prism_signal_block(void);

/* Waits up to `timeout_ms` for a stop signal. Returns the signal number, or 0
 * when the time ran out. SIGHUP is taken and ignored. */
int prism_signal_wait(int timeout_ms);

#endif
