#include "prism_id.h"

#include <string.h>
#include <sys/random.h>

void prism_hex_encode(const uint8_t *bytes, int n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int prism_hex_decode(uint8_t *out, int n, const char *hex)
{
    if (!hex || strlen(hex) != (size_t)(2 * n))
        return -1;
    for (int i = 0; i < n; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

void prism_random_bytes(void *out, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom((uint8_t *)out + got, n - got, 0);
        if (r > 0)
            got += (size_t)r;
    }
}

void prism_id_random(prism_id *out) { prism_random_bytes(out->b, sizeof out->b); }

bool prism_id_is_nil(const prism_id *id)
{
    static const prism_id nil;
    return memcmp(id, &nil, sizeof nil) == 0;
}

bool prism_id_equal(const prism_id *a, const prism_id *b) { return memcmp(a, b, sizeof *a) == 0; }

void prism_id_to_hex(const prism_id *id, char out[PRISM_ID_HEX_LEN + 1])
{
    prism_hex_encode(id->b, PRISM_ID_BYTES, out);
}

int prism_id_from_hex(prism_id *out, const char *hex)
{
    return prism_hex_decode(out->b, PRISM_ID_BYTES, hex);
}

void prism_object_id_make(prism_object_id *out, const prism_task_id *task, uint32_t index)
{
    memcpy(out->b, task->b, PRISM_ID_BYTES);
    for (int i = 0; i < 4; i++)
        out->b[PRISM_ID_BYTES + i] = (uint8_t)(index >> (24 - 8 * i));
}

void prism_object_id_task(const prism_object_id *oid, prism_task_id *task_out)
{
    memcpy(task_out->b, oid->b, PRISM_ID_BYTES);
}

uint32_t prism_object_id_index(const prism_object_id *oid)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v = v << 8 | oid->b[PRISM_ID_BYTES + i];
    return v;
}

void prism_object_id_to_hex(const prism_object_id *oid, char out[PRISM_OBJECT_ID_HEX_LEN + 1])
{
    prism_hex_encode(oid->b, PRISM_OBJECT_ID_BYTES, out);
}

int prism_object_id_from_hex(prism_object_id *out, const char *hex)
{
    return prism_hex_decode(out->b, PRISM_OBJECT_ID_BYTES, hex);
}

bool prism_is_hex(const char *s, size_t n)
{
    return s && strspn(s, "0123456789abcdef") == n && s[n] == '\0';
}
