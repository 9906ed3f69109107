/* The rendezvous socket of a compile (dag_rendezvous.h). */
#include "dag_rendezvous.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "prism_internal.h"
#include "prism_time.h"

#define RDV_NONCE_MS 2000 /* a worker sends its nonce as soon as it connected */
#define RDV_PENDING 16

typedef struct rdv_peer {
    int fd;       /* -1: a free place */
    uint64_t seq; /* in accept order */
    int64_t deadline;
    size_t got;
    char nonce[DAG_NONCE_HEX];
} rdv_peer;

struct dag_rdv {
    int listen_fd;
    uint64_t accepted;
    rdv_peer peers[RDV_PENDING];
};

prism_status prism__dag_rdv_listen(dag_rdv **out, const char *id)
{
    *out = NULL;
    dag_rdv *r = calloc(1, sizeof *r);
    if (!r)
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < RDV_PENDING; i++)
        r->peers[i].fd = -1;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "prism-dag-%s", id);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    r->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (r->listen_fd < 0 || bind(r->listen_fd, (struct sockaddr *)&a, len) != 0 ||
        listen(r->listen_fd, 64) != 0) {
        prism_status s =
            prism__fail(PRISM_ERR_INTERNAL, "the DAG's rendezvous socket: %s", strerror(errno));
        prism__dag_rdv_close(r);
        return s;
    }
    *out = r;
    return PRISM_OK;
}

static void drop(rdv_peer *p)
{
    if (p->fd >= 0)
        close(p->fd);
    *p = (rdv_peer){.fd = -1};
}

/* A place for a new peer: a free one, or that of the one accepted first. */
static rdv_peer *place(dag_rdv *r)
{
    rdv_peer *oldest = &r->peers[0];
    for (size_t i = 0; i < RDV_PENDING; i++) {
        if (r->peers[i].fd < 0)
            return &r->peers[i];
        if (r->peers[i].seq < oldest->seq)
            oldest = &r->peers[i];
    }
    drop(oldest);
    return oldest;
}

/* Only the driver's own uid may even send its nonce. */
static void accept_peers(dag_rdv *r)
{
    for (;;) {
        int fd = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        struct ucred cred;
        socklen_t clen = sizeof cred;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 || cred.uid != getuid()) {
            close(fd);
            continue;
        }
        rdv_peer *p = place(r);
        *p = (rdv_peer){.fd = fd, .seq = r->accepted++, .deadline = prism_mono_ms() + RDV_NONCE_MS};
    }
}

/* Reads what the peer sent of its nonce: 1 once complete, -1 when it
 * closed or failed. */
static int read_nonce(rdv_peer *p)
{
    ssize_t n = recv(p->fd, p->nonce + p->got, DAG_NONCE_HEX - p->got, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        return -1;
    if (n > 0)
        p->got += (size_t)n;
    return p->got == DAG_NONCE_HEX ? 1 : 0;
}

/* A peer whose nonce is complete (its fd, taken from the table), or -1;
 * peers that failed or ran out of time are dropped. */
static int ready_peer(dag_rdv *r, char nonce[DAG_NONCE_HEX])
{
    int64_t now = prism_mono_ms();
    for (size_t i = 0; i < RDV_PENDING; i++) {
        rdv_peer *p = &r->peers[i];
        if (p->fd < 0)
            continue;
        int rc = read_nonce(p);
        if (rc == 1) {
            int fd = p->fd;
            memcpy(nonce, p->nonce, DAG_NONCE_HEX);
            p->fd = -1;
            drop(p);
            return fd;
        }
        if (rc < 0 || now >= p->deadline)
            drop(p);
    }
    return -1;
}

int prism__dag_rdv_next(dag_rdv *r, int timeout_ms, char nonce[DAG_NONCE_HEX])
{
    int64_t deadline = prism_mono_ms() + timeout_ms;
    for (;;) {
        accept_peers(r);
        int fd = ready_peer(r, nonce);
        if (fd >= 0)
            return fd;
        int64_t left = deadline - prism_mono_ms();
        if (left <= 0)
            return -1;
        struct pollfd pf[RDV_PENDING + 1] = {{.fd = r->listen_fd, .events = POLLIN}};
        for (size_t i = 0; i < RDV_PENDING; i++)
            pf[i + 1] = (struct pollfd){.fd = r->peers[i].fd, .events = POLLIN};
        poll(pf, RDV_PENDING + 1, left < 50 ? (int)left : 50); /* fd -1 is ignored */
    }
}

void prism__dag_rdv_close(dag_rdv *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < RDV_PENDING; i++)
        drop(&r->peers[i]);
    if (r->listen_fd >= 0)
        close(r->listen_fd);
    free(r);
}
