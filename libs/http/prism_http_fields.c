/* Typed fields of a request (prism_http.h): a JSON object body, its string,
 * object and number fields, integer and boolean query arguments, each with
 * the 400 answer a person understands when it is wrong. Only the public
 * request API is used, so a test double of the server can run the same code. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "prism_http.h"

json_t *prism_http_body_json(prism_http_req *req)
{
    size_t len;
    const char *body = prism_http_body(req, &len);
    if (len == 0) {
        prism_http_reply_error(req, 400, "invalid_json", "a JSON object body is required");
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, 0, &jerr);
    if (!doc) {
        prism_http_reply_error(req, 400, "invalid_json", "malformed JSON at line %d column %d: %s",
                               jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        prism_http_reply_error(req, 400, "invalid_json", "the body must be a JSON object");
        return NULL;
    }
    return doc;
}

int prism_http_field_string(prism_http_req *req, json_t *obj, const char *key, bool required,
                            const char **out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (!required)
            return 0;
        prism_http_reply_error(req, 400, "invalid_argument", "field '%s' is required", key);
        return -1;
    }
    if (!json_is_string(v)) {
        prism_http_reply_error(req, 400, "invalid_argument", "field '%s' must be a string", key);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

int prism_http_field_object(prism_http_req *req, json_t *obj, const char *key, json_t **out)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v)) {
        prism_http_reply_error(req, 400, "invalid_argument", "field '%s' must be an object", key);
        return -1;
    }
    *out = v;
    return 0;
}

int prism_http_field_number(prism_http_req *req, json_t *obj, const char *key, double *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v) || json_number_value(v) < 0) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "field '%s' must be a non-negative number", key);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

int prism_http_query_int(prism_http_req *req, const char *name, int64_t def, int64_t min,
                         int64_t max, int64_t *out)
{
    const char *text = prism_http_query(req, name);
    if (!text) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end || errno || v < min || v > max) {
        prism_http_reply_error(req, 400, "invalid_argument",
                               "query '%s' must be an integer from %lld to %lld", name,
                               (long long)min, (long long)max);
        return -1;
    }
    *out = v;
    return 0;
}

int prism_http_query_bool(prism_http_req *req, const char *name, bool def, bool *out)
{
    const char *text = prism_http_query(req, name);
    if (!text) {
        *out = def;
    } else if (!strcasecmp(text, "true") || !strcmp(text, "1")) {
        *out = true;
    } else if (!strcasecmp(text, "false") || !strcmp(text, "0")) {
        *out = false;
    } else {
        prism_http_reply_error(req, 400, "invalid_argument", "query '%s' must be true or false",
                               name);
        return -1;
    }
    return 0;
}
