/* The value codec (codec.h): pr_value and the pr_* readers on bytes that
 * come from workers, owners and the object store.
 *
 * Input: one flags byte, then an encoded value.
 *   bit 0: zero-copy decoding (bytes and tensors point into the input)
 *   bit 1: decode with a self address, so references may be "ours"
 * Checks: a decoded value re-encodes; the encoding decodes again to a value
 * whose encoding is the same bytes (the codec is stable after one round);
 * pw_value_size agrees with what pw_value writes; zero-copy values release
 * the buffer exactly as often as they hold it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

#define SELF "owner:0123456789abcdef0123456789abcdef"

static int holds;
static void hold(void *ud) { holds++; }
static void release(void *ud) { holds--; }

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "codec invariant broken: %s\n", what);
        abort();
    }
}

/* Encodes `v` into `b` (initialized here); false when the writer refused it. */
static bool encode(const prism_value *v, const char *self, prism_buf *b)
{
    prism_buf_init(b, 1u << 30);
    prism_writer w = {.buf = b};
    pw_value(&w, v, self);
    if (w.failed)
        return false;
    check(pw_value_size(v, self) == b->len, "pw_value_size matches pw_value");
    return true;
}

/* The fixed-size writer must agree with the buffer writer. */
static void check_fixed(const prism_value *v, const char *self, const prism_buf *b)
{
    uint8_t *out = malloc(b->len ? b->len : 1);
    if (!out)
        return;
    prism_writer w = {.out = out, .cap = b->len};
    pw_value(&w, v, self);
    check(!w.failed && w.pos == b->len && !memcmp(out, b->data, b->len),
          "fixed-region writer matches the buffer writer");
    /* One byte short must fail, not overflow. */
    if (b->len) {
        prism_writer s = {.out = out, .cap = b->len - 1};
        pw_value(&s, v, self);
        check(s.failed, "a short region is refused");
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    const char *self = flags & 2 ? SELF : NULL;
    /* A heap copy of exactly the input: reads past it are caught. */
    uint8_t *in = malloc(size - 1 ? size - 1 : 1);
    if (!in)
        return 0;
    memcpy(in, data + 1, size - 1);
    prism_reader r = {in, size - 1, 0, NULL, NULL, NULL};
    if (flags & 1) {
        r.hold = hold;
        r.release = release;
    }
    prism_value *v = pr_value(&r, NULL, self);
    check(v || r.failed, "a NULL value sets failed");
    if (v) {
        prism_buf one, two;
        if (encode(v, self, &one)) {
            check_fixed(v, self, &one);
            prism_reader r2 = {(const uint8_t *)one.data, one.len, 0, NULL, NULL, NULL};
            prism_value *again = pr_value(&r2, NULL, self);
            check(again != NULL && r2.left == 0, "an encoding decodes whole");
            check(prism_value_kind_of(again) == prism_value_kind_of(v), "the kind survives");
            check(encode(again, self, &two), "a decoded value encodes");
            check(two.len == one.len && !memcmp(two.data, one.data, one.len),
                  "the encoding is stable");
            prism_value *copy = prism_value_copy(again);
            prism_value_free(copy);
            prism_value_free(again);
            prism_buf_free(&two);
        }
        prism_buf_free(&one);
        prism_value_free(v);
    }
    check(holds == 0, "zero-copy values release what they hold");
    /* The scalar readers on the same bytes: never past the end. */
    prism_reader s = {in, size - 1, 0, NULL, NULL, NULL};
    while (!s.failed) {
        switch (pr_u8(&s) & 7) {
        case 0: pr_u16(&s); break;
        case 1: pr_u32(&s); break;
        case 2: pr_u64(&s); break;
        case 3: free(pr_str(&s)); break;
        case 4: pr_bytes(&s, pr_u8(&s)); break;
        default: break;
        }
    }
    check(s.left <= size - 1, "the reader stays in bounds");
    free(in);
    return 0;
}
