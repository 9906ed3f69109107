/* SHA-256 (FIPS 180-4), for content-addressed packages and checksums. */
#ifndef PRISM_SHA256_H
#define PRISM_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define PRISM_SHA256_BYTES 32
#define PRISM_SHA256_HEX_LEN 64

typedef struct prism_sha256_ctx {
    uint32_t h[8];
    uint64_t total;
    uint8_t block[64];
    size_t fill;
} prism_sha256_ctx;

void prism_sha256_init(prism_sha256_ctx *c);
void prism_sha256_update(prism_sha256_ctx *c, const void *data, size_t len);
void prism_sha256_final(prism_sha256_ctx *c, uint8_t out[PRISM_SHA256_BYTES]);
/* One call: the digest of `data` as 64 lowercase hex digits and a NUL. */
void prism_sha256_hex(const void *data, size_t len, char out[PRISM_SHA256_HEX_LEN + 1]);

#endif
