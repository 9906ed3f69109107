/* The WebSocket protocol (RFC 6455) as the HTTP server speaks it: the
 * handshake's keys, the frames it sends and the parser of the frames
 * clients send. Functions on buffers only, no I/O, so that the parser can be
 * fuzzed (fuzz/fuzz_ws.c); the sessions themselves are in prism_http.c
 * (prism_http_reply_websocket). */
#ifndef PRISM_WS_H
#define PRISM_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Opcodes. */
#define PRISM_WS_CONTINUATION 0x0
#define PRISM_WS_TEXT 0x1
#define PRISM_WS_BINARY 0x2
#define PRISM_WS_CLOSE 0x8
#define PRISM_WS_PING 0x9
#define PRISM_WS_PONG 0xa

/* Close codes. */
#define PRISM_WS_CLOSE_NORMAL 1000
#define PRISM_WS_CLOSE_GOING_AWAY 1001
#define PRISM_WS_CLOSE_PROTOCOL_ERROR 1002
#define PRISM_WS_CLOSE_NO_STATUS 1005 /* never sent: a close frame without a code */
#define PRISM_WS_CLOSE_TOO_BIG 1009
#define PRISM_WS_CLOSE_INTERNAL 1011

/* A control frame's payload is at most this long. */
#define PRISM_WS_MAX_CONTROL 125
/* The longest frame header: 2 bytes, a 64-bit length, a 4-byte mask. */
#define PRISM_WS_MAX_HEADER 14
/* The longest header of a server frame (never masked). */
#define PRISM_WS_MAX_SERVER_HEADER 10
/* Sec-WebSocket-Accept: the base64 of a SHA-1 digest. */
#define PRISM_WS_ACCEPT_LEN 28

/* True when `key` (a Sec-WebSocket-Key) is the base64 of 16 bytes. */
bool prism_ws_key_valid(const char *key);
/* The Sec-WebSocket-Accept answering `key`: base64(SHA-1(key + RFC 6455's
 * GUID)). Returns 0, or -1 when the digest could not be made. */
int prism_ws_accept(const char *key, char out[PRISM_WS_ACCEPT_LEN + 1]);

/* Writes the header of a server frame (FIN set, not masked) carrying `len`
 * payload bytes with `opcode`; returns its size (2, 4 or 10 bytes). */
size_t prism_ws_frame_header(uint8_t out[PRISM_WS_MAX_SERVER_HEADER], unsigned opcode,
                             uint64_t len);

typedef struct prism_ws_frame {
    unsigned opcode;
    bool fin;
    uint8_t *payload; /* inside the parsed buffer, unmasked in place */
    size_t len;
} prism_ws_frame;

/* Parses the client frame at the start of the `len` bytes of `buf`. Returns
 * the frame's size (header and payload) with `*f` filled and the payload
 * unmasked in place; 0 when the bytes do not hold the whole frame yet; or -1
 * when the frame breaks the protocol, with `*close_code` set to the code to
 * close with: 1002 for a frame not masked (clients must mask), reserved bits
 * set (no extension is negotiated), an unknown opcode, a control frame that
 * is fragmented or longer than 125 bytes, or a 64-bit length with its top
 * bit set; 1009 for a payload longer than `max_payload`. Reads nothing past
 * `len` bytes. */
ssize_t prism_ws_parse(uint8_t *buf, size_t len, size_t max_payload, prism_ws_frame *f,
                       uint16_t *close_code);

/* Reads a close frame's payload: `*code` is its status code, 1005 when it
 * has none. Returns -1 when the payload is malformed (one byte, a code that
 * may not be sent, a reason that is not UTF-8). */
int prism_ws_close_payload(const uint8_t *payload, size_t len, uint16_t *code);

/* Makes `len` bytes of text valid UTF-8 for a text frame: each byte that is
 * not part of valid UTF-8 (and NUL) becomes '?', as in the JSON of the log
 * routes. When `more` is true, an incomplete sequence at the end may be
 * completed by the next chunk: it is left alone and its length (1-3) is
 * returned, for the caller to send with what follows; otherwise (and with
 * nothing incomplete) the result is 0. */
size_t prism_ws_text_prepare(char *text, size_t len, bool more);

#endif
