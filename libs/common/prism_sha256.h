/* SHA-256 (FIPS 180-4), for content-addressed packages and checksums, and
 * HMAC-SHA256 (RFC 2104), for proofs of the cluster's secret. */
#ifndef PRISM_SHA256_H
#define PRISM_SHA256_H

#include <stdbool.h>
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

/* HMAC-SHA256 of the concatenation of `nparts` byte strings under `key`. */
void prism_hmac_sha256(const void *key, size_t key_len, const void *const *parts,
                       const size_t *lens, size_t nparts, uint8_t out[PRISM_SHA256_BYTES]);
/* Compares `n` bytes in time that does not depend on where they differ
 * (for MACs: an early exit would tell an attacker how much of a guess was right). */
bool prism_equal_ct(const void *a, const void *b, size_t n);

#endif
