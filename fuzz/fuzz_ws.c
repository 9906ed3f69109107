/* WebSocket frames as clients send them (libs/http/prism_ws.c): a byte
 * stream cut into frames by prism_ws_parse the way the server's sessions
 * read their socket, each close frame's payload read, and the bytes of the
 * stream made into text as the server sends log chunks.
 *
 * Layout: byte 0 picks the largest payload allowed (its value times 64, and
 * 0: 125 bytes, the control frames' limit); byte 1 picks how many bytes
 * each read delivers (1 + the value), so that frames arrive cut at every
 * place; the rest is the stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prism_json_text.h"
#include "prism_ws.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "ws invariant broken: %s\n", what);
        abort();
    }
}

/* Reads the stream as a session does: bytes arrive `step` at a time into
 * a buffer of one frame's size; complete frames are taken from its front. */
static void frames(const uint8_t *data, size_t size, size_t max_payload, size_t step)
{
    size_t cap = max_payload + PRISM_WS_MAX_HEADER;
    uint8_t *buf = malloc(cap);
    size_t have = 0, fed = 0;
    while (fed < size) {
        size_t n = size - fed < step ? size - fed : step;
        if (n > cap - have)
            n = cap - have;
        memcpy(buf + have, data + fed, n);
        have += n;
        fed += n;
        for (;;) {
            prism_ws_frame f;
            uint16_t code = 0;
            ssize_t used = prism_ws_parse(buf, have, max_payload, &f, &code);
            if (used < 0) {
                check(code == PRISM_WS_CLOSE_PROTOCOL_ERROR || code == PRISM_WS_CLOSE_TOO_BIG,
                      "a refused frame names 1002 or 1009");
                free(buf);
                return;
            }
            if (used == 0) {
                /* A frame that fits the buffer is never left waiting on a full one. */
                check(have < cap, "a full buffer holds a complete frame or an error");
                break;
            }
            check((size_t)used <= have, "a frame within the bytes read");
            check(f.payload >= buf && f.payload + f.len == buf + used,
                  "the payload ends the frame");
            check(f.len <= max_payload, "the payload within the limit");
            check(f.opcode < 3 || (f.opcode >= 8 && f.opcode <= 10), "a known opcode");
            if (f.opcode >= PRISM_WS_CLOSE)
                check(f.fin && f.len <= PRISM_WS_MAX_CONTROL, "control frames are short and whole");
            if (f.opcode == PRISM_WS_CLOSE) {
                uint16_t c;
                if (prism_ws_close_payload(f.payload, f.len, &c) == 0)
                    check(c == PRISM_WS_CLOSE_NO_STATUS ? f.len == 0 : c >= 1000 && c < 5000,
                          "a close code that may be sent");
            }
            memmove(buf, buf + used, have - (size_t)used);
            have -= (size_t)used;
        }
    }
    free(buf);
}

/* The stream's bytes as text messages, cut every `step` bytes: what is sent
 * is valid UTF-8, and only a cut sequence (3 bytes at most) is carried. */
static void text(const uint8_t *data, size_t size, size_t step)
{
    char *buf = malloc(step + 3);
    size_t carry = 0;
    for (size_t at = 0; at < size;) {
        size_t n = size - at < step ? size - at : step;
        memcpy(buf + carry, data + at, n);
        at += n;
        size_t total = carry + n;
        size_t keep = prism_ws_text_prepare(buf, total, at < size);
        check(keep <= 3 && keep <= total, "at most 3 bytes carried");
        check(prism_utf8_valid(buf, total - keep), "text frames are UTF-8");
        memmove(buf, buf + total - keep, keep);
        carry = keep;
    }
    check(carry == 0, "nothing carried past the end");
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max_payload = data[0] ? (size_t)data[0] * 64 : PRISM_WS_MAX_CONTROL;
    size_t step = (size_t)data[1] + 1;
    frames(data + 2, size - 2, max_payload, step);
    text(data + 2, size - 2, step);
    /* The handshake key: whatever is accepted has an answer. */
    char key[32];
    size_t klen = size - 2 < sizeof key - 1 ? size - 2 : sizeof key - 1;
    memcpy(key, data + 2, klen);
    key[klen] = '\0';
    char accept[PRISM_WS_ACCEPT_LEN + 1];
    if (prism_ws_key_valid(key)) {
        check(prism_ws_accept(key, accept) == 0, "a valid key has an accept value");
        check(strlen(accept) == PRISM_WS_ACCEPT_LEN, "the accept value is 28 characters");
    }
    return 0;
}
