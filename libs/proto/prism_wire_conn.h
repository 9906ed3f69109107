/* Connections of the direct protocol (prism_wire.h): dialling a worker's
 * address and moving bytes over a socket, in the clear or through TLS
 * (prism_wire_tls.h). Apart from the frames so that what only encodes or
 * parses them does not link GnuTLS. */
#ifndef PRISM_WIRE_CONN_H
#define PRISM_WIRE_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include <sys/types.h>

#include "prism_wire_tls.h"

/* Reads or sends what the socket allows now, in the clear or through `tls`
 * (NULL: plain): as recv(2)/send(2) with MSG_DONTWAIT (see prism_wire_tls.h for
 * what EAGAIN from a TLS send asks of the next call). */
ssize_t wire_recv(int fd, wire_tls *tls, void *buf, size_t n);
ssize_t wire_send(int fd, wire_tls *tls, const void *buf, size_t n);

/* Sends all of `len` bytes, waiting for room as long as the socket's
 * SO_SNDTIMEO allows (forever without one). Returns 0 or -1. */
int wire_send_all(int fd, wire_tls *tls, const void *data, size_t len);

/* The address to connect to for a worker's advertised TCP endpoint (the
 * "tcp" of a grant): "HOST:PORT" is plain TCP ("tcp:HOST:PORT"),
 * "tls:HOST:PORT" is TLS. */
void wire_tcp_address(const char *advertised, char *out, size_t n);

/* Connects to "unix:PATH", "tcp:HOST:PORT" or "tls:HOST:PORT" within
 * `timeout_ms` (the TLS handshake included; a Unix socket answers at once).
 * Returns a blocking fd, with *tls set for a tls: address (NULL otherwise),
 * or -1 with `err`; *config_error when trying again will not help (TLS
 * settings, an untrusted certificate, a peer that does not speak TLS). */
int wire_connect(const char *address, int timeout_ms, wire_tls **tls, bool *config_error, char *err,
                 size_t errlen);

#endif
