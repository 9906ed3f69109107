/* What S3's answers say (prism_s3.c): the pages of a ListObjectsV2 listing,
 * the code and message of an error, and which listed keys an s3:// path
 * names. A small parser of just the XML S3 writes (elements without
 * attributes, the five entities and character references), on any bytes:
 * the body comes from the network. Also a profile of an AWS shared
 * credentials file. No I/O. */
#ifndef PRISM_S3_PARSE_H
#define PRISM_S3_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The text of the first <tag>...</tag> in [s, end), entities decoded
 * (owned, NUL-terminated), or NULL when there is none or memory ran out. */
char *prism_s3_parse_text(const char *s, const char *end, const char *tag);

/* One page of a listing, `len` bytes at `body`: calls `entry(ud, key,
 * size)` for each <Contents> in order, and sets `*next` to the continuation
 * token (owned) when <IsTruncated> is true, else to NULL. `entry` returns 0
 * to go on, or -1 to stop (then `err` is left as `entry` left it). Returns
 * 0, or -1 with `err` ("a listing entry without a key or a size"...). */
int prism_s3_parse_listing(const char *body, size_t len,
                           int (*entry)(void *ud, const char *key, int64_t size), void *ud,
                           char **next, char *err, size_t n);

/* "Code: Message" of an S3 error body into `out`; "" when it has neither.
 * `body` may be NULL. */
void prism_s3_parse_error(const char *body, size_t len, char *out, size_t n);

/* Whether a listed `key` is one the path's `prefix` names (prism_s3.h,
 * prism_s3_list): `prefix` itself, or under "prefix/" ("dir" is not
 * "dir2"), leaving out folder markers and names starting with "." or "_". */
bool prism_s3_names(const char *prefix, const char *key);

/* A profile's credentials for SigV4. */
typedef struct prism_s3_creds {
    char *key, *secret, *token; /* owned; token NULL when there is none */
} prism_s3_creds;

/* Profile `profile` of an AWS shared credentials file, `len` bytes of
 * `text` (INI: "[name]" opens a profile, "name = value" lines, "#" or ";"
 * starts a comment line): its aws_access_key_id, aws_secret_access_key and
 * aws_session_token. Returns 0 when the profile has a key and a secret,
 * else -1 (out of memory too) with `*out` zeroed. */
int prism_s3_parse_credentials(const char *text, size_t len, const char *profile,
                               prism_s3_creds *out);
void prism_s3_creds_clear(prism_s3_creds *c);

#endif
