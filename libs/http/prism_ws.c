#include "prism_ws.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>

#include "prism_json_text.h"

/* RFC 6455, section 1.3. */
static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/* The base64 of 16 bytes: 22 characters and "==". */
#define KEY_LEN 24

static bool b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

bool prism_ws_key_valid(const char *key)
{
    if (!key || strlen(key) != KEY_LEN || strcmp(key + KEY_LEN - 2, "=="))
        return false;
    for (size_t i = 0; i < KEY_LEN - 2; i++)
        if (!b64_char(key[i]))
            return false;
    gnutls_datum_t in = {(unsigned char *)key, KEY_LEN}, out = {NULL, 0};
    if (gnutls_base64_decode2(&in, &out) < 0)
        return false;
    bool ok = out.size == 16;
    gnutls_free(out.data);
    return ok;
}

int prism_ws_accept(const char *key, char out[PRISM_WS_ACCEPT_LEN + 1])
{
    char joined[128];
    size_t klen = strlen(key);
    if (klen + sizeof WS_GUID > sizeof joined)
        return -1;
    memcpy(joined, key, klen);
    memcpy(joined + klen, WS_GUID, sizeof WS_GUID - 1);
    unsigned char digest[20];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA1, joined, klen + sizeof WS_GUID - 1, digest) < 0)
        return -1;
    gnutls_datum_t in = {digest, sizeof digest}, b64 = {NULL, 0};
    if (gnutls_base64_encode2(&in, &b64) < 0)
        return -1;
    int rc = -1;
    if (b64.size == PRISM_WS_ACCEPT_LEN) {
        memcpy(out, b64.data, PRISM_WS_ACCEPT_LEN);
        out[PRISM_WS_ACCEPT_LEN] = '\0';
        rc = 0;
    }
    gnutls_free(b64.data);
    return rc;
}

size_t prism_ws_frame_header(uint8_t out[PRISM_WS_MAX_SERVER_HEADER], unsigned opcode, uint64_t len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

static bool known_opcode(unsigned op)
{
    return op <= PRISM_WS_BINARY || (op >= PRISM_WS_CLOSE && op <= PRISM_WS_PONG);
}

ssize_t prism_ws_parse(uint8_t *buf, size_t len, size_t max_payload, prism_ws_frame *f,
                       uint16_t *close_code)
{
    if (len < 2)
        return 0;
    unsigned op = buf[0] & 0x0f;
    bool fin = buf[0] & 0x80, masked = buf[1] & 0x80;
    *close_code = PRISM_WS_CLOSE_PROTOCOL_ERROR;
    if ((buf[0] & 0x70) || !known_opcode(op) || !masked)
        return -1;
    bool control = op >= PRISM_WS_CLOSE;
    uint64_t plen = buf[1] & 0x7f;
    size_t at = 2;
    if (control && (!fin || plen > PRISM_WS_MAX_CONTROL))
        return -1;
    if (plen == 126) {
        if (len < 4)
            return 0;
        plen = (uint64_t)buf[2] << 8 | buf[3];
        at = 4;
    } else if (plen == 127) {
        if (len < 10)
            return 0;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | buf[2 + i];
        if (plen >> 63)
            return -1;
        at = 10;
    }
    if (plen > max_payload) {
        *close_code = PRISM_WS_CLOSE_TOO_BIG;
        return -1;
    }
    /* plen <= max_payload, a size_t: the sums below cannot overflow for any
     * buffer that exists. */
    if (len - at < 4 || len - at - 4 < plen)
        return 0;
    const uint8_t *mask = buf + at;
    uint8_t *p = buf + at + 4;
    for (size_t i = 0; i < plen; i++)
        p[i] ^= mask[i & 3];
    *f = (prism_ws_frame){.opcode = op, .fin = fin, .payload = p, .len = (size_t)plen};
    *close_code = 0;
    return (ssize_t)(at + 4 + plen);
}

/* The codes a peer may put in a close frame (RFC 6455 7.4, IANA's registry). */
static bool sendable_code(unsigned code)
{
    if (code >= 3000 && code <= 4999)
        return true;
    return code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006;
}

int prism_ws_close_payload(const uint8_t *payload, size_t len, uint16_t *code)
{
    *code = PRISM_WS_CLOSE_NO_STATUS;
    if (len == 0)
        return 0;
    if (len == 1)
        return -1;
    unsigned c = (unsigned)payload[0] << 8 | payload[1];
    if (!sendable_code(c))
        return -1;
    /* The reason must be UTF-8 (NUL is valid UTF-8, though our checker refuses it). */
    for (size_t i = 2; i < len;) {
        if (payload[i] == 0) {
            i++;
            continue;
        }
        size_t n = prism_utf8_seq(payload + i, len - i);
        if (n == 0)
            return -1;
        i += n;
    }
    *code = (uint16_t)c;
    return 0;
}

/* The length of the sequence a lead byte starts (0 when it cannot start one). */
static size_t lead_len(unsigned char c)
{
    return c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
}

size_t prism_ws_text_prepare(char *text, size_t len, bool more)
{
    unsigned char *p = (unsigned char *)text;
    size_t keep = 0;
    if (more) {
        /* The last lead byte within 3 bytes of the end, followed only by
         * continuation bytes, and short of its length: the rest may follow. */
        for (size_t back = 1; back <= 3 && back <= len; back++) {
            unsigned char c = p[len - back];
            if ((c & 0xc0) == 0x80)
                continue;
            size_t need = lead_len(c);
            if (need > back)
                keep = back;
            break;
        }
    }
    prism_utf8_scrub(text, len - keep);
    return keep;
}
