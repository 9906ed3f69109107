#include "prism_wire.h"

#include "prism_codec.h"
#include "prism_id.h"
#include "prism_sha256.h"
#include "prism_subjects.h"

#include <stdio.h>
#include <string.h>

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
    return prism_subject_owner(out, n, addr + 6, false);
}

bool wire_owner_id(const char *addr, prism_id *out)
{
    return addr && strncmp(addr, "owner:", 6) == 0 && strlen(addr + 6) == PRISM_ID_HEX_LEN &&
           prism_id_from_hex(out, addr + 6) == 0;
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
