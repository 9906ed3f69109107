/* The TCP connection of a cross-node DAG edge (dag_edge.h). */
#include "dag_edge.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "prism_buf.h"
#include "prism_id.h"
#include "prism_net.h"
#include "prism_time.h"
#include "prism_wire.h"

#define TURN_MS 2000 /* how long one connection may take to prove the secret */
/* Connections proving themselves at once: strangers that hold some delay
 * the writer of the edge by no more than their own handshakes. */
#define PENDING_MAX 16

void prism__dag_edge_secret(char secret[DAG_EDGE_SECRET_HEX + 1])
{
    uint8_t raw[DAG_EDGE_SECRET_HEX / 2];
    prism_random_bytes(raw, sizeof raw);
    prism_hex_encode(raw, (int)sizeof raw, secret);
    secret[DAG_EDGE_SECRET_HEX] = '\0';
}

static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - prism_mono_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd pf = {.fd = fd, .events = events};
        int rc = poll(&pf, 1, (int)left);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

static int send_all(int fd, const void *data, size_t len, int64_t deadline)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            return -1;
        } else if (wait_fd(fd, POLLOUT, deadline) != 0) {
            return -1;
        }
    }
    return 0;
}

static int recv_all(int fd, void *data, size_t len, int64_t deadline)
{
    char *p = data;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n == 0) {
            errno = ECONNRESET;
            return -1;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            return -1;
        } else if (wait_fd(fd, POLLIN, deadline) != 0) {
            return -1;
        }
    }
    return 0;
}

/* One handshake frame (at most WIRE_AUTH_FRAME_MAX bytes) into `f`. */
static int recv_frame(int fd, uint8_t f[WIRE_AUTH_FRAME_MAX], uint8_t *type,
                      const uint8_t **payload, size_t *plen, int64_t deadline)
{
    if (recv_all(fd, f, 4, deadline) != 0)
        return -1;
    size_t size = wire_frame_size(f);
    if (size < 5 || size > WIRE_AUTH_FRAME_MAX) {
        errno = EPROTO;
        return -1;
    }
    if (recv_all(fd, f + 4, size - 4, deadline) != 0)
        return -1;
    if (wire_parse(f, size, type, payload, plen) != (long)size) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

static void tune(int fd, size_t sndbuf)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (sndbuf > 0) {
        int n = sndbuf > (1u << 30) ? 1 << 30 : (int)sndbuf;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &n, sizeof n);
    }
}

int prism__dag_edge_listen(const char *host, char *addr, size_t addrlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *res;
    if (getaddrinfo(host, "0", &hints, &res) != 0) {
        errno = EADDRNOTAVAIL;
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 32) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        errno = e;
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char port[16] = "0", advertised[256];
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    getnameinfo((struct sockaddr *)&ss, sl, NULL, 0, port, sizeof port, NI_NUMERICSERV);
    prism_advertised_host(host, advertised, sizeof advertised);
    snprintf(addr, addrlen, "%s:%s", advertised, port);
    return fd;
}

/* A connection accepted and challenged, proving itself (or not). */
typedef struct pending {
    int fd;
    int64_t until; /* its turn's end */
    uint8_t nonce[WIRE_NONCE_BYTES];
    uint8_t f[WIRE_AUTH_FRAME_MAX]; /* its AUTH frame, as it comes */
    size_t got;
} pending;

/* Closes pending[i], keeping the others in the order they came. */
static void drop(pending *p, size_t *np, size_t i)
{
    close(p[i].fd);
    memmove(&p[i], &p[i + 1], (*np - i - 1) * sizeof *p);
    (*np)--;
}

/* Reads what `p` sent: 1 once its frame is whole, 0 for more, -1 when it
 * cannot be an AUTH frame (or the peer went away). */
static int read_some(pending *p)
{
    for (;;) {
        size_t size = p->got >= 4 ? wire_frame_size(p->f) : 4;
        if (p->got >= 4 && (size < 5 || size > WIRE_AUTH_FRAME_MAX))
            return -1;
        if (p->got == size && p->got > 4)
            return 1;
        ssize_t n = recv(p->fd, p->f + p->got, size - p->got, MSG_DONTWAIT);
        if (n > 0)
            p->got += (size_t)n;
        else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return -1;
        else
            return 0;
    }
}

/* `p`'s whole frame: 0 when it proves the secret (our proof sent back). */
static int answer(pending *p, const uint8_t key[WIRE_KEY_BYTES])
{
    uint8_t type;
    const uint8_t *payload;
    size_t plen;
    prism_buf out;
    prism_buf_init(&out, WIRE_AUTH_FRAME_MAX * 2);
    int rc = -1;
    if (wire_parse(p->f, p->got, &type, &payload, &plen) == (long)p->got && type == WIRE_AUTH &&
        wire_auth_accept(key, p->nonce, payload, plen, &out) == 0)
        rc = send_all(p->fd, out.data, out.len, p->until);
    prism_buf_free(&out);
    return rc;
}

/* Takes the connections waiting on `listen_fd` and challenges each; when
 * PENDING_MAX prove themselves already, the oldest makes room. -1 on an
 * error of the listener's. */
static int take_new(int listen_fd, pending *p, size_t *np)
{
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                           errno == ECONNABORTED
                       ? 0
                       : -1;
        if (*np == PENDING_MAX)
            drop(p, np, 0);
        pending *q = &p[(*np)++];
        *q = (pending){.fd = fd, .until = prism_mono_ms() + TURN_MS};
        prism_buf out;
        prism_buf_init(&out, WIRE_AUTH_FRAME_MAX * 2);
        wire_auth_challenge(&out, q->nonce);
        /* a new connection's buffer takes these few bytes at once */
        if (send(fd, out.data, out.len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)out.len)
            drop(p, np, *np - 1);
        prism_buf_free(&out);
    }
}

int prism__dag_edge_accept(int listen_fd, const char *secret, int timeout_ms)
{
    uint8_t key[WIRE_KEY_BYTES];
    wire_auth_key(secret, key);
    int64_t deadline = prism_mono_ms() + timeout_ms;
    pending p[PENDING_MAX];
    size_t np = 0;
    int won = -1, err = ETIMEDOUT;
    while (won < 0) {
        int64_t now = prism_mono_ms(), until = deadline;
        for (size_t i = np; i-- > 0;)
            if (now >= p[i].until)
                drop(p, &np, i); /* a silent one, its turn over */
        if (now >= deadline)
            break;
        struct pollfd pf[PENDING_MAX + 1] = {{.fd = listen_fd, .events = POLLIN}};
        for (size_t i = 0; i < np; i++) {
            pf[i + 1] = (struct pollfd){.fd = p[i].fd, .events = POLLIN};
            until = p[i].until < until ? p[i].until : until;
        }
        int rc = poll(pf, (nfds_t)np + 1, (int)(until - now));
        if (rc < 0 && errno != EINTR) {
            err = errno;
            break;
        }
        for (size_t i = np; rc > 0 && won < 0 && i-- > 0;) {
            if (!pf[i + 1].revents)
                continue;
            int r = read_some(&p[i]);
            if (r == 1 && answer(&p[i], key) == 0) {
                won = p[i].fd;
                p[i].fd = -1; /* kept: the others go below */
            } else if (r != 0) {
                drop(p, &np, i); /* a wrong answer: closed at once */
            }
        }
        if (won < 0 && rc > 0 && (pf[0].revents & POLLIN) && take_new(listen_fd, p, &np) != 0) {
            err = errno;
            break;
        }
    }
    for (size_t i = 0; i < np; i++)
        if (p[i].fd >= 0)
            close(p[i].fd);
    if (won < 0) {
        errno = err;
        return -1;
    }
    tune(won, 0);
    return won;
}

/* "host:port" or "[v6]:port" into its parts. */
static int split_addr(const char *addr, char *host, size_t hn, char *port, size_t pn)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || !colon[1] || strlen(colon + 1) >= pn)
        return -1;
    const char *h = addr;
    size_t len = (size_t)(colon - addr);
    if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
        h++;
        len -= 2;
    }
    if (len == 0 || len >= hn)
        return -1;
    memcpy(host, h, len);
    host[len] = '\0';
    snprintf(port, pn, "%s", colon + 1);
    return 0;
}

static int connect_to(const char *addr, size_t sndbuf, int64_t deadline)
{
    char host[256], port[16];
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV},
                    *res;
    if (split_addr(addr, host, sizeof host, port, sizeof port) != 0 ||
        getaddrinfo(host, port, &hints, &res) != 0) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0)
        tune(fd, sndbuf); /* SO_SNDBUF before connect: the window is agreed then */
    int rc = fd < 0 ? -1 : connect(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0 && fd >= 0 && errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) == 0) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
        rc = err ? -1 : 0;
        errno = err;
    }
    if (rc != 0 && fd >= 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int prism__dag_edge_connect(const char *addr, const char *secret, size_t sndbuf, int timeout_ms)
{
    int64_t deadline = prism_mono_ms() + timeout_ms;
    int fd = connect_to(addr, sndbuf, deadline);
    if (fd < 0)
        return -1;
    uint8_t key[WIRE_KEY_BYTES], f[WIRE_AUTH_FRAME_MAX], type;
    wire_auth_key(secret, key);
    wire_auth a = {0};
    prism_buf reply;
    prism_buf_init(&reply, WIRE_AUTH_FRAME_MAX * 2);
    const uint8_t *payload;
    size_t plen;
    int rc = -1;
    errno = 0;
    while (!wire_auth_done(&a)) {
        if (recv_frame(fd, f, &type, &payload, &plen, deadline) != 0)
            break;
        reply.len = 0;
        if (wire_auth_step(&a, key, type, payload, plen, &reply) != 0) {
            errno = EACCES;
            break;
        }
        if (reply.len && send_all(fd, reply.data, reply.len, deadline) != 0)
            break;
    }
    if (wire_auth_done(&a))
        rc = 0;
    prism_buf_free(&reply);
    if (rc != 0) {
        int e = errno ? errno : EACCES;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

typedef struct accept_job {
    int listen_fd;
    const char *secret;
    int timeout_ms;
    int fd;
} accept_job;

static void *accept_one(void *arg)
{
    accept_job *j = arg;
    j->fd = j->listen_fd < 0 ? -1 : prism__dag_edge_accept(j->listen_fd, j->secret, j->timeout_ms);
    return NULL;
}

void prism__dag_edge_accept_all(const int *listen_fds, const char *const *secrets, size_t n,
                                int timeout_ms, int *out_fds)
{
    accept_job *jobs = calloc(n + 1, sizeof *jobs);
    pthread_t *threads = calloc(n + 1, sizeof *threads);
    bool *started = calloc(n + 1, sizeof *started);
    for (size_t i = 0; i < n; i++) {
        if (!jobs || !threads || !started) { /* out of memory: none is taken */
            out_fds[i] = -1;
            continue;
        }
        jobs[i] = (accept_job){listen_fds[i], secrets[i], timeout_ms, -1};
        started[i] = listen_fds[i] >= 0 &&
                     pthread_create(&threads[i], NULL, accept_one, &jobs[i]) == 0;
    }
    for (size_t i = 0; jobs && threads && started && i < n; i++) {
        if (started[i])
            pthread_join(threads[i], NULL);
        out_fds[i] = jobs[i].fd;
    }
    free(jobs);
    free(threads);
    free(started);
}
