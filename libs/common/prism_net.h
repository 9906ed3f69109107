/* Addresses a service gives others to reach it. */
#ifndef PRISM_NET_H
#define PRISM_NET_H

#include <stddef.h>

/* The host others use for a service bound to `bind_host`: the host's name for
 * a wildcard (0.0.0.0 or ::), else `bind_host` itself; an IPv6 address comes
 * in brackets, ready to be followed by ":port". */
void prism_advertised_host(const char *bind_host, char *out, size_t n);

/* The host a process uses to reach its own listener bound to `bind_host`:
 * loopback for a wildcard (127.0.0.1 for 0.0.0.0, ::1 for ::), which a TLS
 * certificate can name (no certificate names 0.0.0.0), else `bind_host`;
 * an IPv6 address comes in brackets. */
void prism_local_host(const char *bind_host, char *out, size_t n);

#endif
