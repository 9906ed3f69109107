#include "prism_codec.h"

#include <endian.h>
#include <stdlib.h>
#include <string.h>

void pw_bytes(prism_writer *w, const void *p, size_t n)
{
    if (w->failed)
        return;
    if (w->buf) {
        if (prism_buf_append(w->buf, p, n) != 0)
            w->failed = 1;
        return;
    }
    if (w->out && (n > w->cap || w->pos > w->cap - n)) {
        w->failed = 1;
        return;
    }
    if (w->out && n && w->out + w->pos != (const uint8_t *)p) /* already in place: no copy */
        memcpy(w->out + w->pos, p, n);
    w->pos += n;
}

size_t pw_pos(const prism_writer *w) { return w->buf ? w->buf->len : w->pos; }

/* Whether `n` more bytes fit a fixed buffer being written: the fixed-width
 * fields then go straight in, without pw_bytes' memcpy call for one to
 * eight bytes (a value's encoding on a compiled DAG's hop is mostly these). */
static inline int fits(const prism_writer *w, size_t n)
{
    return !w->failed && !w->buf && w->out && n <= w->cap - w->pos;
}

void pw_u8(prism_writer *w, uint8_t v)
{
    if (fits(w, 1))
        w->out[w->pos++] = v;
    else
        pw_bytes(w, &v, 1);
}

/* The `n` low bytes of `v`, little-endian: one store when they fit (the
 * first n bytes of v's little-endian form, on any host). */
static inline void put_le(prism_writer *w, uint64_t v, size_t n)
{
    uint64_t le = htole64(v);
    if (fits(w, n)) {
        memcpy(w->out + w->pos, &le, n);
        w->pos += n;
    } else {
        pw_bytes(w, &le, n);
    }
}

void pw_u16(prism_writer *w, uint16_t v) { put_le(w, v, 2); }
void pw_u32(prism_writer *w, uint32_t v) { put_le(w, v, 4); }
void pw_u64(prism_writer *w, uint64_t v) { put_le(w, v, 8); }

void pw_str(prism_writer *w, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    pw_u32(w, (uint32_t)n);
    pw_bytes(w, s, n);
}

const uint8_t *pr_bytes(prism_reader *r, size_t n)
{
    if (r->failed || n > r->left) {
        r->failed = 1;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static uint64_t get_le(prism_reader *r, int n)
{
    const uint8_t *b = pr_bytes(r, (size_t)n);
    uint64_t v = 0;
    for (int i = n - 1; b && i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

uint8_t pr_u8(prism_reader *r) { return (uint8_t)get_le(r, 1); }
uint16_t pr_u16(prism_reader *r) { return (uint16_t)get_le(r, 2); }
uint32_t pr_u32(prism_reader *r) { return (uint32_t)get_le(r, 4); }
uint64_t pr_u64(prism_reader *r) { return get_le(r, 8); }

char *pr_str(prism_reader *r)
{
    uint32_t n = pr_u32(r);
    const uint8_t *p = pr_bytes(r, n);
    if (!p)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) {
        r->failed = 1;
        return NULL;
    }
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}
