#include "prism_wire_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "prism_time.h"

/* Handshake messages a stranger may make the worker hold before it proved
 * anything: a ClientHello is well under this. */
#define SERVER_HANDSHAKE_MAX 16384

struct wire_tls {
    gnutls_session_t s;
    int fd;
};

/* Process-wide credentials: the server's once at start, the client's on the
 * first tls: connect. Both live as long as the process. */
static gnutls_certificate_credentials_t server_cred;
static gnutls_certificate_credentials_t client_cred;
static char client_err[512];
static pthread_once_t client_once = PTHREAD_ONCE_INIT;

/* ---------- the transport: the caller's socket, never blocking ---------- */

static ssize_t pull(gnutls_transport_ptr_t p, void *buf, size_t n)
{
    return recv(((wire_tls *)p)->fd, buf, n, MSG_DONTWAIT);
}

static ssize_t push(gnutls_transport_ptr_t p, const void *buf, size_t n)
{
    return send(((wire_tls *)p)->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static int pull_timeout(gnutls_transport_ptr_t p, unsigned int ms)
{
    struct pollfd pfd = {.fd = ((wire_tls *)p)->fd, .events = POLLIN};
    return poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
}

static wire_tls *session_new(int fd, unsigned flags, gnutls_certificate_credentials_t cred)
{
    wire_tls *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->fd = fd;
    /* No session tickets: every connection is long-lived and new. */
    if (gnutls_init(&t->s, flags | GNUTLS_NONBLOCK | GNUTLS_NO_TICKETS) != GNUTLS_E_SUCCESS) {
        free(t);
        return NULL;
    }
    if (gnutls_set_default_priority(t->s) != GNUTLS_E_SUCCESS ||
        gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, cred) != GNUTLS_E_SUCCESS) {
        wire_tls_destroy(t);
        return NULL;
    }
    gnutls_transport_set_ptr(t->s, t);
    gnutls_transport_set_pull_function(t->s, pull);
    gnutls_transport_set_push_function(t->s, push);
    gnutls_transport_set_pull_timeout_function(t->s, pull_timeout);
    return t;
}

/* ---------- the server ---------- */

int wire_tls_server_setup(char *err, size_t errlen)
{
    const char *cert = getenv("PRISM_TLS_CERT"), *key = getenv("PRISM_TLS_KEY");
    bool have_cert = cert && *cert, have_key = key && *key;
    if (!have_cert && !have_key)
        return 0;
    if (!have_cert || !have_key) {
        snprintf(err, errlen,
                 "TLS needs both a certificate and a key (PRISM_TLS_CERT, PRISM_TLS_KEY)");
        return -1;
    }
    if (server_cred)
        return 1;
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) != GNUTLS_E_SUCCESS) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = gnutls_certificate_set_x509_key_file(cred, cert, key, GNUTLS_X509_FMT_PEM);
    if (rc < 0) {
        snprintf(err, errlen, "cannot load the TLS certificate %s and key %s: %s", cert, key,
                 gnutls_strerror(rc));
        gnutls_certificate_free_credentials(cred);
        return -1;
    }
    server_cred = cred;
    return 1;
}

int wire_tls_accept(wire_tls **out, int fd)
{
    *out = NULL;
    if (!server_cred)
        return -1;
    wire_tls *t = session_new(fd, GNUTLS_SERVER, server_cred);
    if (!t)
        return -1;
    gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_IGNORE);
    gnutls_handshake_set_max_packet_length(t->s, SERVER_HANDSHAKE_MAX);
    *out = t;
    return 0;
}

int wire_tls_handshake(wire_tls *t, bool *want_write)
{
    for (;;) {
        int rc = gnutls_handshake(t->s);
        if (rc == GNUTLS_E_SUCCESS)
            return 1;
        if (rc == GNUTLS_E_INTERRUPTED)
            continue;
        if (rc == GNUTLS_E_AGAIN) {
            *want_write = gnutls_record_get_direction(t->s) == 1;
            return 0;
        }
        return -1;
    }
}

/* ---------- the client ---------- */

static void client_load(void)
{
    const char *ca = getenv("PRISM_TLS_CA");
    if (!ca || !*ca) {
        snprintf(client_err, sizeof client_err,
                 "PRISM_TLS_CA is not set: a tls: worker address needs the cluster's CA to "
                 "verify the worker's certificate");
        return;
    }
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) != GNUTLS_E_SUCCESS) {
        snprintf(client_err, sizeof client_err, "out of memory");
        return;
    }
    int n = gnutls_certificate_set_x509_trust_file(cred, ca, GNUTLS_X509_FMT_PEM);
    if (n <= 0) {
        snprintf(client_err, sizeof client_err,
                 "PRISM_TLS_CA (%s) holds no usable CA certificate: %s", ca,
                 n < 0 ? gnutls_strerror(n) : "none found");
        gnutls_certificate_free_credentials(cred);
        return;
    }
    client_cred = cred;
}

/* Why the worker's certificate was refused, in words. */
static void verify_error(wire_tls *t, const char *host, char *err, size_t errlen)
{
    gnutls_datum_t why = {NULL, 0};
    unsigned status = gnutls_session_get_verify_cert_status(t->s);
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0) == 0)
        snprintf(err, errlen, "the TLS certificate of %s is not trusted (PRISM_TLS_CA): %s", host,
                 (const char *)why.data);
    else
        snprintf(err, errlen, "the TLS certificate of %s is not trusted (PRISM_TLS_CA)", host);
    gnutls_free(why.data);
}

static int handshake_until(wire_tls *t, const char *host, int64_t deadline, bool *config_error,
                           char *err, size_t errlen)
{
    for (;;) {
        int rc = gnutls_handshake(t->s);
        if (rc == GNUTLS_E_SUCCESS)
            return 0;
        if (rc == GNUTLS_E_INTERRUPTED)
            continue;
        int left = (int)(deadline - prism_mono_ms());
        if (rc == GNUTLS_E_AGAIN && left > 0) {
            bool out = gnutls_record_get_direction(t->s) == 1;
            struct pollfd pfd = {.fd = t->fd, .events = out ? POLLOUT : POLLIN};
            poll(&pfd, 1, left);
            continue;
        }
        if (rc == GNUTLS_E_AGAIN) {
            snprintf(err, errlen, "the TLS handshake with %s timed out", host);
        } else if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
            verify_error(t, host, err, errlen);
            *config_error = true;
        } else {
            /* A closed or reset connection may be the network; anything
             * else means the two ends do not speak the same thing (e.g. a
             * plain port), which trying again will not change. */
            *config_error = rc != GNUTLS_E_PREMATURE_TERMINATION && rc != GNUTLS_E_PULL_ERROR &&
                            rc != GNUTLS_E_PUSH_ERROR;
            snprintf(err, errlen, "the TLS handshake with %s failed: %s", host,
                     gnutls_strerror(rc));
        }
        return -1;
    }
}

int wire_tls_connect(wire_tls **out, int fd, const char *host, int timeout_ms, bool *config_error,
                     char *err, size_t errlen)
{
    *out = NULL;
    *config_error = false;
    pthread_once(&client_once, client_load);
    if (!client_cred) {
        snprintf(err, errlen, "%s", client_err);
        *config_error = true;
        return -1;
    }
    wire_tls *t = session_new(fd, GNUTLS_CLIENT, client_cred);
    if (!t) {
        snprintf(err, errlen, "cannot start a TLS session: out of memory");
        return -1;
    }
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    if (!is_ip) /* SNI names hosts, never addresses */
        gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, host, strlen(host));
    /* The certificate must chain to the CA and name `host` (an IP address
     * is matched against the certificate's IP addresses). */
    gnutls_session_set_verify_cert(t->s, host, 0);
    if (handshake_until(t, host, prism_mono_ms() + timeout_ms, config_error, err, errlen) != 0) {
        wire_tls_destroy(t);
        return -1;
    }
    *out = t;
    return 0;
}

/* ---------- records ---------- */

static ssize_t io_result(ssize_t rc)
{
    if (rc >= 0)
        return rc;
    if (rc == GNUTLS_E_AGAIN) {
        errno = EAGAIN;
        return -1;
    }
    if (rc == GNUTLS_E_PREMATURE_TERMINATION) /* closed without the alert: closed all the same */
        return 0;
    errno = rc == GNUTLS_E_PUSH_ERROR || rc == GNUTLS_E_PULL_ERROR ? ECONNRESET : EPROTO;
    return -1;
}

ssize_t wire_tls_recv(wire_tls *t, void *buf, size_t n)
{
    ssize_t rc;
    do
        rc = gnutls_record_recv(t->s, buf, n);
    while (rc == GNUTLS_E_INTERRUPTED);
    return io_result(rc);
}

ssize_t wire_tls_send(wire_tls *t, const void *buf, size_t n)
{
    ssize_t rc;
    do
        rc = gnutls_record_send(t->s, buf, n);
    while (rc == GNUTLS_E_INTERRUPTED);
    if (rc == 0 && n > 0) { /* nothing sent, nothing wrong: as EAGAIN */
        errno = EAGAIN;
        return -1;
    }
    return io_result(rc);
}

bool wire_tls_pending(wire_tls *t) { return gnutls_record_check_pending(t->s) > 0; }

void wire_tls_destroy(wire_tls *t)
{
    if (!t)
        return;
    gnutls_bye(t->s, GNUTLS_SHUT_WR); /* best effort: the socket closes right after */
    gnutls_deinit(t->s);
    free(t);
}
