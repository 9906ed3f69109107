/* A growable byte buffer with a hard cap, for everything read from the network:
 * a peer can never make it grow past `max`. The data is always NUL-terminated
 * (the terminator is not counted in `len`) so text can be parsed in place. */
#ifndef PRISM_BUF_H
#define PRISM_BUF_H

#include <stddef.h>

typedef struct prism_buf {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
    size_t max;
} prism_buf;

void prism_buf_init(prism_buf *b, size_t max);
/* Returns 0, or -1 when the result would pass `max` or memory ran out
 * (the buffer is then unchanged). */
int prism_buf_append(prism_buf *b, const void *data, size_t len);
int prism_buf_printf(prism_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the data to the caller, who frees it; the buffer is left empty. */
char *prism_buf_take(prism_buf *b, size_t *len_out);
void prism_buf_free(prism_buf *b);

#endif
