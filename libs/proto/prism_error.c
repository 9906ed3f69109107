#include "prism_error.h"

#include <stdio.h>
#include <string.h>

#include "prism_json_text.h"

json_t *prism_error_jsonv(const char *code, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* Truncation may split a character: jansson refuses strings that are not UTF-8. */
    prism_utf8_scrub(msg, strlen(msg));
    return json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
}

json_t *prism_error_json(const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *doc = prism_error_jsonv(code, fmt, ap);
    va_end(ap);
    return doc;
}
