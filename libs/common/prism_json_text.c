#include "prism_json_text.h"

#include <stdio.h>
#include <string.h>

size_t prism_utf8_seq(const unsigned char *p, size_t left)
{
    size_t n = p[0] < 0x80         ? 1
               : (p[0] >> 5) == 6  ? 2
               : (p[0] >> 4) == 14 ? 3
               : (p[0] >> 3) == 30 ? 4
                                   : 0;
    if (n == 0 || n > left || (n == 1 && p[0] == 0))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((n == 2 && p[0] < 0xc2) || (n == 3 && p[0] == 0xe0 && p[1] < 0xa0) ||
        (n == 3 && p[0] == 0xed && p[1] >= 0xa0) || (n == 4 && p[0] == 0xf0 && p[1] < 0x90) ||
        (n == 4 && p[0] > 0xf4) || (n == 4 && p[0] == 0xf4 && p[1] >= 0x90))
        return 0; /* overlong, surrogate or past U+10FFFF */
    return n;
}

bool prism_utf8_valid(const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        size_t n = prism_utf8_seq(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

void prism_utf8_scrub(char *text, size_t len)
{
    unsigned char *p = (unsigned char *)text;
    for (size_t i = 0; i < len;) {
        size_t n = prism_utf8_seq(p + i, len - i);
        if (n == 0)
            p[i++] = '?';
        else
            i += n;
    }
}

int prism_json_string(prism_buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t left = strlen((const char *)p);
    int rc = prism_buf_append(b, "\"", 1);
    while (left && rc == 0) {
        size_t run = 0; /* plain bytes go in one append */
        while (run < left && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        if (run) {
            rc = prism_buf_append(b, p, run);
            p += run;
            left -= run;
            continue;
        }
        size_t n = p[0] >= 0x80 ? prism_utf8_seq(p, left) : 1;
        if (p[0] == '"' || p[0] == '\\') {
            char esc[2] = {'\\', (char)p[0]};
            rc = prism_buf_append(b, esc, 2);
        } else if (p[0] < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", p[0]);
            rc = prism_buf_append(b, esc, 6);
        } else if (n == 0) {
            rc = prism_buf_append(b, "?", 1);
            n = 1;
        } else {
            rc = prism_buf_append(b, p, n);
        }
        p += n;
        left -= n;
    }
    return rc == 0 ? prism_buf_append(b, "\"", 1) : rc;
}
