#include "prism_wire_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "prism_time.h"

ssize_t wire_recv(int fd, wire_tls *tls, void *buf, size_t n)
{
    return tls ? wire_tls_recv(tls, buf, n) : recv(fd, buf, n, MSG_DONTWAIT);
}

ssize_t wire_send(int fd, wire_tls *tls, const void *buf, size_t n)
{
    return tls ? wire_tls_send(tls, buf, n) : send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* How long a send may wait for room: the socket's SO_SNDTIMEO (-1: forever). */
static int send_timeout_ms(int fd)
{
    struct timeval tv = {0, 0};
    socklen_t len = sizeof tv;
    if (getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) != 0 || (!tv.tv_sec && !tv.tv_usec))
        return -1;
    return (int)(tv.tv_sec * 1000 + tv.tv_usec / 1000);
}

int wire_send_all(int fd, wire_tls *tls, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = wire_send(fd, tls, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int rc = poll(&pfd, 1, send_timeout_ms(fd));
            if (rc < 0 && errno == EINTR)
                continue;
            if (rc <= 0)
                return -1;
            continue;
        }
        if (w < 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

void wire_tcp_address(const char *advertised, char *out, size_t n)
{
    if (!strncmp(advertised, "tls:", 4))
        snprintf(out, n, "%s", advertised);
    else
        snprintf(out, n, "tcp:%s", advertised);
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return -1;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int why = errno;
        close(fd);
        errno = why;
        fd = -1;
    }
    return fd;
}

/* "HOST:PORT" or "[V6]:PORT" -> host (brackets off) and port. */
static int split_host(const char *hostport, char *host, size_t n, const char **port)
{
    const char *colon = strrchr(hostport, ':');
    if (!colon || colon == hostport || (size_t)(colon - hostport) >= n)
        return -1;
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    if (host[0] == '[' && colon[-1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    *port = colon + 1;
    return 0;
}

/* A TCP connect that gives up after `timeout_ms`: a node cut off from the
 * network must not hold the caller for the kernel's two minutes. */
static int connect_tcp(const char *host, const char *port, int timeout_ms)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int rc = fd < 0 ? -1 : connect(fd, res->ai_addr, res->ai_addrlen);
    int why = errno;
    freeaddrinfo(res);
    if (rc != 0 && fd >= 0 && why == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof err;
        if (poll(&p, 1, timeout_ms) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
            err == 0)
            rc = 0;
    }
    if (rc != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int wire_connect(const char *address, int timeout_ms, wire_tls **tls, bool *config_error, char *err,
                 size_t errlen)
{
    *tls = NULL;
    *config_error = false;
    bool secure = !strncmp(address, "tls:", 4);
    if (!strncmp(address, "unix:", 5)) {
        int fd = connect_unix(address + 5);
        if (fd < 0)
            snprintf(err, errlen, "cannot connect to %s: %s", address, strerror(errno));
        return fd;
    }
    char host[256];
    const char *port;
    if ((!secure && strncmp(address, "tcp:", 4)) ||
        split_host(address + 4, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "not a worker address: %.200s", address);
        *config_error = true;
        return -1;
    }
    int64_t deadline = prism_mono_ms() + timeout_ms;
    int fd = connect_tcp(host, port, timeout_ms);
    if (fd < 0) {
        snprintf(err, errlen, "cannot connect to %s", address);
        return -1;
    }
    int left = (int)(deadline - prism_mono_ms());
    if (secure &&
        wire_tls_connect(tls, fd, host, left > 0 ? left : 1, config_error, err, errlen) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}
