/* Writing JSON text straight into a buffer, for hot paths where building a
 * jansson tree would cost more than the work it reports (task events), and
 * making arbitrary bytes safe to put in JSON. */
#ifndef PRISM_JSON_TEXT_H
#define PRISM_JSON_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "prism_buf.h"

/* Length of the valid UTF-8 sequence at `p` (1-4), or 0 when it is not one
 * (NUL, overlong forms and surrogates included). */
size_t prism_utf8_seq(const unsigned char *p, size_t left);
/* True when the `len` bytes of `text` are valid UTF-8 without NUL (what jansson accepts). */
bool prism_utf8_valid(const char *text, size_t len);
/* Replaces each byte of `text` that is not part of valid UTF-8 with '?', in place. */
void prism_utf8_scrub(char *text, size_t len);
/* Appends `s` (NULL: "") as a JSON string literal: quoted, escaped, and each
 * byte that is not UTF-8 written as '?', so the text is always valid JSON.
 * Returns 0, or -1 when the buffer refused the data. */
int prism_json_string(prism_buf *b, const char *s);

#endif
