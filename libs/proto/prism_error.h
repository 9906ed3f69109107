/* The error envelope every REST answer and every NATS reply that fails
 * carries (docs/protocol.md): {"error": {"code": "...", "message": "..."}}.
 * Built here only, so that clients can rely on one shape. */
#ifndef PRISM_ERROR_H
#define PRISM_ERROR_H

#include <stdarg.h>

#include <jansson.h>

/* The envelope with `code` and the formatted message (cut at 1 KiB, and
 * made valid UTF-8, since messages quote what peers sent). NULL only when
 * out of memory. */
json_t *prism_error_json(const char *code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
json_t *prism_error_jsonv(const char *code, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#endif
