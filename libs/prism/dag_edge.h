/* The TCP connection of a cross-node DAG edge (docs/dags.md#cross-node-edges).
 *
 * One connection per edge, between its writer and its reader. The reader
 * listens on its node's address; the writer connects and proves that it
 * holds the edge's secret (32 random hex digits that compile makes and only
 * the two ends are given) with the direct protocol's HMAC challenge-response
 * (libs/proto/prism_wire.h, keyed by the secret instead of the cluster token):
 * the reader sends CHALLENGE, the writer answers AUTH, the reader checks it
 * and answers AUTH_OK, which the writer checks in turn. The secret never
 * crosses the wire, and a peer that does not prove it gets nothing but the
 * challenge's nonce before its connection is closed.
 *
 * Once both sides are through, the socket carries the channel's frames
 * (prism_chan_*_open_socket): TCP_NODELAY is set on both ends, and the
 * writer's send buffer is sized to the ring's slots so that the kernel holds
 * at most about as many values as a ring would. */
#ifndef PRISM_DAG_EDGE_H
#define PRISM_DAG_EDGE_H

#include <stddef.h>
#include <stdint.h>

#define DAG_EDGE_SECRET_HEX 32

/* A fresh secret for one edge (NUL-terminated). */
void prism__dag_edge_secret(char secret[DAG_EDGE_SECRET_HEX + 1]);

/* Listens on `host` (an address of this node; port chosen by the kernel) and
 * writes "host:port" to `addr`. Returns the listening fd, or -1 with errno. */
int prism__dag_edge_listen(const char *host, char *addr, size_t addrlen);

/* Accepts connections on `listen_fd` until one proves `secret`, for up to
 * `timeout_ms` in all. Up to 16 prove themselves at once (a 17th closes the
 * oldest), so silent strangers do not hold the writer back. Every other
 * connection is closed: one that answers wrongly at once, a silent one
 * when its turn (2 s) runs out. Returns the
 * connected fd (TCP_NODELAY), or -1 (errno ETIMEDOUT when none proved it in
 * time). The listener stays the caller's to close: one edge takes exactly
 * one connection. */
int prism__dag_edge_accept(int listen_fd, const char *secret, int timeout_ms);

/* prism__dag_edge_accept on `n` listeners at once, one thread each: the
 * writers may connect in any order (one writer's edges one after another,
 * each waiting for its proof), so taking them one by one could wait on a
 * listener whose writer waits on another. out_fds[i] for listen_fds[i]; -1
 * where it is -1, or where none proved secrets[i] in time. */
void prism__dag_edge_accept_all(const int *listen_fds, const char *const *secrets, size_t n,
                                int timeout_ms, int *out_fds);

/* Connects to "host:port", proves `secret` and checks the reader's proof.
 * `sndbuf` (bytes, 0: the system's) bounds what the kernel queues for the
 * reader. Returns the connected fd (TCP_NODELAY), or -1 with errno
 * (EACCES: the other end did not prove the secret). */
int prism__dag_edge_connect(const char *addr, const char *secret, size_t sndbuf, int timeout_ms);

#endif
