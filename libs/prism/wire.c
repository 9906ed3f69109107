#include "wire.h"

#include "codec.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

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

int wire_send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return -1;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static int connect_tcp(const char *hostport)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof host)
        return -1;
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    if (host[0] == '[' && colon > hostport + 1 && colon[-1] == ']') { /* [v6]:port */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
        return -1;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int wire_connect(const char *address)
{
    if (!strncmp(address, "unix:", 5))
        return connect_unix(address + 5);
    if (!strncmp(address, "tcp:", 4))
        return connect_tcp(address + 4);
    return -1;
}
