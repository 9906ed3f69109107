/* Binary encoding of the fields of the direct protocol's frames (prism_wire.h)
 * and of the owners' protocol: little-endian integers and u32-length strings.
 * Every read is bounds-checked, so a malformed frame from the network yields
 * an error, never a crash. Values (prism_value) are encoded on top of this
 * by libprism (libs/prism/codec.h). */
#ifndef PRISM_CODEC_H
#define PRISM_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "prism_buf.h"

/* Writes into `buf`, or, when `buf` is NULL, into the fixed region `out` of
 * `cap` bytes (NULL `out`: only counts, to size a region first). `pos` is
 * how much was written (or counted) in the fixed modes. */
typedef struct prism_writer {
    prism_buf *buf;
    int failed; /* set when the buffer refused data */
    uint8_t *out;
    size_t cap, pos;
} prism_writer;

void pw_u8(prism_writer *w, uint8_t v);
void pw_u16(prism_writer *w, uint16_t v);
void pw_u32(prism_writer *w, uint32_t v);
void pw_u64(prism_writer *w, uint64_t v);
void pw_bytes(prism_writer *w, const void *p, size_t n);
/* u32 length + bytes; NULL writes an empty string. */
void pw_str(prism_writer *w, const char *s);
/* How many bytes the writer holds (or counted) so far. */
size_t pw_pos(const prism_writer *w);

typedef struct prism_reader {
    const uint8_t *p;
    size_t left;
    int failed; /* set on the first read past the end or a malformed field */
    /* Zero-copy decoding of values (libs/prism/codec.h): when `hold` is set,
     * bytes and tensor values point into the buffer; each such value calls
     * hold(ud) when made and release(ud) when freed, so the buffer outlives them. */
    void (*hold)(void *ud);
    void (*release)(void *ud);
    void *ud;
} prism_reader;

uint8_t pr_u8(prism_reader *r);
uint16_t pr_u16(prism_reader *r);
uint32_t pr_u32(prism_reader *r);
uint64_t pr_u64(prism_reader *r);
/* Points into the reader's buffer (no copy); NULL when short. */
const uint8_t *pr_bytes(prism_reader *r, size_t n);
/* A heap copy of a u32-length string; NULL on failure. */
char *pr_str(prism_reader *r);

#endif
