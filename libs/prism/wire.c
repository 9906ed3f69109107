#include "wire.h"

#include "codec.h"
#include "prism_id.h"
#include "prism_sha256.h"
#include "prism_time.h"

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

/* ---------- the handshake ---------- */

#define AUTH_VERSION 1

void wire_auth_key(const char *token, uint8_t key[WIRE_KEY_BYTES])
{
    static const char label[] = "prism direct connections v1";
    const void *parts[] = {label};
    size_t lens[] = {sizeof label - 1};
    prism_hmac_sha256(token ? token : "", token ? strlen(token) : 0, parts, lens, 1, key);
}

/* The proof of one side: the two nonces under the key, with the side's role
 * so that a worker's proof cannot be played back as a peer's. */
static void proof(const uint8_t key[WIRE_KEY_BYTES], char role, const uint8_t *server_nonce,
                  const uint8_t *client_nonce, uint8_t out[PRISM_SHA256_BYTES])
{
    const void *parts[] = {&role, server_nonce, client_nonce};
    size_t lens[] = {1, WIRE_NONCE_BYTES, WIRE_NONCE_BYTES};
    prism_hmac_sha256(key, WIRE_KEY_BYTES, parts, lens, 3, out);
}

void wire_auth_challenge(prism_buf *out, uint8_t nonce[WIRE_NONCE_BYTES])
{
    prism_random_bytes(nonce, WIRE_NONCE_BYTES);
    size_t start = out->len;
    wire_begin(out, WIRE_CHALLENGE);
    uint8_t version = AUTH_VERSION;
    prism_buf_append(out, &version, 1);
    prism_buf_append(out, nonce, WIRE_NONCE_BYTES);
    wire_end(out, start);
}

int wire_auth_accept(const uint8_t key[WIRE_KEY_BYTES], const uint8_t nonce[WIRE_NONCE_BYTES],
                     const uint8_t *payload, size_t len, prism_buf *out)
{
    uint8_t want[PRISM_SHA256_BYTES];
    if (len != 2 * WIRE_NONCE_BYTES)
        return -1;
    proof(key, 'C', nonce, payload, want);
    if (!prism_equal_ct(want, payload + WIRE_NONCE_BYTES, sizeof want))
        return -1;
    proof(key, 'S', nonce, payload, want);
    size_t start = out->len;
    wire_begin(out, WIRE_AUTH_OK);
    prism_buf_append(out, want, sizeof want);
    wire_end(out, start);
    return 0;
}

int wire_auth_step(wire_auth *a, const uint8_t key[WIRE_KEY_BYTES], uint8_t type,
                   const uint8_t *payload, size_t len, prism_buf *reply)
{
    uint8_t mac[PRISM_SHA256_BYTES];
    if (a->state == 0 && type == WIRE_CHALLENGE && len == 1 + WIRE_NONCE_BYTES &&
        payload[0] == AUTH_VERSION) {
        memcpy(a->server_nonce, payload + 1, WIRE_NONCE_BYTES);
        prism_random_bytes(a->client_nonce, WIRE_NONCE_BYTES);
        proof(key, 'C', a->server_nonce, a->client_nonce, mac);
        size_t start = reply->len;
        wire_begin(reply, WIRE_AUTH);
        prism_buf_append(reply, a->client_nonce, WIRE_NONCE_BYTES);
        prism_buf_append(reply, mac, sizeof mac);
        wire_end(reply, start);
        a->state = 1;
        return 0;
    }
    if (a->state == 1 && type == WIRE_AUTH_OK && len == sizeof mac) {
        proof(key, 'S', a->server_nonce, a->client_nonce, mac);
        if (!prism_equal_ct(mac, payload, sizeof mac))
            return -1;
        a->state = 2;
        return 0;
    }
    return -1;
}

/* ---------- the owners' protocol ---------- */

bool wire_owner_subject(const char *addr, char *out, size_t n)
{
    if (!addr || strncmp(addr, "owner:", 6) != 0 || !addr[6] || strpbrk(addr + 6, ". *>"))
        return false;
    snprintf(out, n, "prism.owner.%s", addr + 6);
    return true;
}

void wire_owner_request(prism_buf *b, uint8_t op, const char *from, uint32_t wait_ms, uint32_t n)
{
    prism_buf_init(b, 64u << 20);
    prism_writer w = {.buf = b};
    pw_u8(&w, op);
    pw_str(&w, from);
    pw_u32(&w, wait_ms);
    pw_u32(&w, n);
}

/* ---------- frames ---------- */

void wire_begin(prism_buf *b, uint8_t type)
{
    uint8_t hdr[5] = {0, 0, 0, 0, type};
    prism_buf_append(b, hdr, sizeof hdr);
}

void wire_end(prism_buf *b, size_t start)
{
    if (b->len < start + 5)
        return;
    uint32_t n = (uint32_t)(b->len - start - 4);
    for (int i = 0; i < 4; i++)
        b->data[start + (size_t)i] = (char)(n >> (8 * i));
}

long wire_parse(const uint8_t *data, size_t len, uint8_t *type, const uint8_t **payload,
                size_t *payload_len)
{
    if (len < 5)
        return 0;
    uint32_t n = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
                 (uint32_t)data[3] << 24;
    if (n < 1 || n > WIRE_MAX_FRAME)
        return -1;
    if (len < 4 + (size_t)n)
        return 0;
    *type = data[4];
    *payload = data + 5;
    *payload_len = n - 1;
    return (long)(4 + n);
}

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
        if (poll(&p, 1, timeout_ms) == 1 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
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

int wire_connect(const char *address, int timeout_ms, wire_tls **tls, bool *config_error,
                 char *err, size_t errlen)
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
    if (secure && wire_tls_connect(tls, fd, host, left > 0 ? left : 1, config_error, err,
                                   errlen) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}
