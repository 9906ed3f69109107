/* The rendezvous socket of a compile (docs/dags.md#compile): a Unix socket
 * in the abstract namespace, "prism-dag-<dag id>", that the driver listens
 * on while its actors start, so that each actor's worker can fetch its
 * channels' fds (which cannot travel in a call).
 *
 * This file only does the connections: it accepts peers of the driver's own
 * uid (SO_PEERCRED), reads the 32-character nonce each one sends first, and
 * hands back a peer whose nonce is complete. The caller compares the nonce
 * with the ones its start calls carried and sends fds only on a match. Every
 * other peer is closed without a byte: a wrong uid at once, a short or
 * missing nonce when its RDV_NONCE_MS run out (peers are served side by
 * side, so a silent one holds up nobody). */
#ifndef PRISM_DAG_RENDEZVOUS_H
#define PRISM_DAG_RENDEZVOUS_H

#include <stddef.h>

#include "prism/prism.h"

#define DAG_NONCE_HEX 32

typedef struct dag_rdv dag_rdv;

/* Listens on "prism-dag-<id>" (`id`: the DAG's 32 hex digits; a worker
 * that hands out the channels it made adds "-<its actor's index>"). */
prism_status prism__dag_rdv_listen(dag_rdv **out, const char *id);
/* Waits up to `timeout_ms` for a peer to complete its nonce: returns its fd
 * (the caller closes it) and the nonce in `nonce`, or -1 when none did in
 * time. */
int prism__dag_rdv_next(dag_rdv *r, int timeout_ms, char nonce[DAG_NONCE_HEX]);
/* Stops listening and closes every peer still pending. NULL is a no-op. */
void prism__dag_rdv_close(dag_rdv *r);

#endif
