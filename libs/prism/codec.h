/* Binary encoding of values, on the field codec of libs/proto (prism_codec.h).
 * Every read is bounds-checked, so a malformed value from the network yields
 * an error, never a crash. */
#ifndef PRISM_VALUE_CODEC_H
#define PRISM_VALUE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prism_codec.h"
#include "prism_internal.h"

/* The encoded size of a value (what pw_value would write). */
size_t pw_value_size(const prism_value *v, const char *self_addr);
/* A value; references this process owns are written with `self_addr` as owner. */
void pw_value(prism_writer *w, const prism_value *v, const char *self_addr);
/* What pw_value writes of a tensor before its `len` bytes of data (written
 * at the start of an encoding: the data then starts 16-byte aligned). */
void pw_tensor_head(prism_writer *w, prism_dtype dtype, int ndim, const int64_t *shape,
                    uint64_t len);
/* A decoded value (NULL on a malformed one). References are tracked in `client`
 * (may be NULL); an owner equal to `self_addr` means this process owns it. */
prism_value *pr_value(prism_reader *r, prism_client *client, const char *self_addr);

/* A null, bytes or tensor value read in place into `out`: its data points
 * into the reader's buffer, nothing is allocated, and `out` is never
 * freed (prism_value_free would free what it does not own). false for any
 * other kind or a malformed value. Saves a value's allocation where one is
 * read per message (a compiled DAG's arguments). */
bool pr_value_view(prism_reader *r, prism_value *out);

/* What an encoded bytes or tensor value is (kind, size, dtype, shape), from
 * its first bytes only; false for any other kind or a malformed header. */
bool pr_value_info(const uint8_t *buf, size_t len, prism_value_info *out);

#endif
