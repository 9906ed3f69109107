/* Reads from S3 and S3-compatible stores (docs/datasets.md#s3): objects
 * named "s3://bucket/key", listed with ListObjectsV2 and fetched with
 * ranged GETs, signed with AWS Signature V4 by libcurl (no SDK).
 *
 * Credentials and the store come from the process's environment:
 * AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY with AWS_SESSION_TOKEN, else
 * profile AWS_PROFILE ("default") of the shared credentials file
 * (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials; without either,
 * requests go unsigned, for public buckets), AWS_REGION (default
 * us-east-1) and AWS_ENDPOINT_URL (an S3-compatible store, addressed
 * path-style: ENDPOINT/bucket/key; without it, AWS's virtual-host style
 * https://bucket.s3.REGION.amazonaws.com/key); AWS_CA_BUNDLE names the CA
 * file of a store over https with a CA of its own.
 *
 * Server errors (5xx, throttling) and lost connections are retried a bounded
 * number of times with backoff; every error names the bucket or object. The
 * calls are thread-safe: each makes its own connection. */
#ifndef PRISM_S3_H
#define PRISM_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether `path` is an s3:// path (the scheme in any case). */
bool prism_s3_is_path(const char *path);

/* The object at `path` (an s3:// path naming a key): its bytes in `*body`
 * (owned, NUL-terminated, at most `max` bytes) and `*len`. Returns 0, or -1
 * with `err` naming the object. */
int prism_s3_get(const char *path, size_t max, char **body, size_t *len, char *err, size_t n);

/* Whether this process has credentials to sign with (above), and where
 * they are looked for, for error messages. */
bool prism_s3_has_credentials(void);
#define PRISM_S3_CREDENTIALS                                                                       \
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment, or a profile of the "         \
    "shared credentials file"

/* Stores `len` bytes of `data` as the object at `path` (an s3:// path
 * naming a key), replacing one there: one PUT, retried as reads are. Needs
 * credentials: no anonymous writes. Returns 0, or -1 with `err` naming the
 * object. */
int prism_s3_put(const char *path, const void *data, size_t len, char *err, size_t n);

/* Calls `fn(ud, object_path, size)` for each object under `path`, in key
 * order: "s3://bucket" or "s3://bucket/" lists the bucket, "s3://bucket/dir"
 * the key "dir" itself and the keys under "dir/", "s3://bucket/dir/" those
 * under "dir/". Keys ending in "/" (folder markers) are left out, as are
 * keys whose last part starts with "." or "_" (as for local directories).
 * `fn` returns 0 to go on or -1 to stop (the listing then fails, keeping the
 * `err` that `fn` wrote). Returns 0, or -1 with `err`. */
int prism_s3_list(const char *path, int (*fn)(void *ud, const char *object_path, int64_t size),
                  void *ud, char *err, size_t n);

#endif
