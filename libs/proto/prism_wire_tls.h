/* TLS on the TCP connections of the direct protocol (docs/security.md#tls),
 * with GnuTLS. A worker whose environment names a certificate and a key
 * (PRISM_TLS_CERT, PRISM_TLS_KEY) serves its TCP port only over TLS and
 * advertises it as "tls:HOST:PORT"; a peer connecting to such an address
 * verifies the worker's certificate against PRISM_TLS_CA and the host it
 * dialled. The cluster's handshake (prism_wire.h) then runs inside TLS: TLS keeps
 * the bytes secret and whole, the token says who may act. Unix sockets stay
 * plain.
 *
 * A handle is one connection's session over a socket the caller owns: it
 * never closes the fd. Every call is non-blocking (a socket with nothing to
 * read or no room gives -1 with errno EAGAIN), except the client's
 * handshake, which waits up to a deadline. Errors are returned, never
 * printed. A session is used by one thread at a time. */
#ifndef PRISM_WIRE_TLS_H
#define PRISM_WIRE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct wire_tls wire_tls;

/* Loads this process's server credentials from PRISM_TLS_CERT and
 * PRISM_TLS_KEY, once. Returns 1 when loaded (TLS required on the TCP port),
 * 0 when neither is set (plain TCP), -1 with `err` when only one is set or
 * they cannot be loaded. */
int wire_tls_server_setup(char *err, size_t errlen);

/* Starts the server side of a session on an accepted socket; finish the
 * handshake with wire_tls_handshake. Needs wire_tls_server_setup first.
 * Returns 0 or -1. */
int wire_tls_accept(wire_tls **out, int fd);

/* The client side: handshakes on a connected socket within `timeout_ms` and
 * verifies the peer's certificate against PRISM_TLS_CA (loaded on first use)
 * and `host` (a DNS name or an IP address). Returns 0, or -1 with a message
 * in `err`; *config_error is set when the failure is this process's
 * settings or the peer's certificate (no use trying again), not the network. */
int wire_tls_connect(wire_tls **out, int fd, const char *host, int timeout_ms, bool *config_error,
                     char *err, size_t errlen);

/* Advances a server's handshake. Returns 1 when done, 0 when the socket must
 * become readable (or writable, with *want_write) first, -1 when it failed. */
int wire_tls_handshake(wire_tls *t, bool *want_write);

/* As recv(2) and send(2) on the socket: bytes done, 0 from recv when the peer
 * closed, -1 with errno (EAGAIN: try again when the socket is ready). After
 * EAGAIN from send, the next send must start with the same bytes (at least
 * as many): part of them may already be in a record on its way. */
ssize_t wire_tls_recv(wire_tls *t, void *buf, size_t n);
ssize_t wire_tls_send(wire_tls *t, const void *buf, size_t n);

/* Whether decrypted bytes wait inside the session: epoll does not see
 * them, so a reader must drain them before it waits on the socket again. */
bool wire_tls_pending(wire_tls *t);

/* Sends the closing alert if the socket takes it now, and frees the session
 * (not the fd). NULL is a no-op. */
void wire_tls_destroy(wire_tls *t);

#endif
