/* S3 reads on libcurl (prism_s3.h): addressing, SigV4 through
 * CURLOPT_AWS_SIGV4, ranged GETs and retries; what the answers say is read
 * by prism_s3_parse.c. */
#include "prism_s3.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "prism_buf.h"
#include "prism_httpc.h"
#include "prism_s3_parse.h"

#define S3_ATTEMPTS 5             /* tries of one request, the first included */
#define S3_BACKOFF_MS 100         /* doubled after each failed try ... */
#define S3_BACKOFF_MAX_MS 2000    /* ... up to this */
#define S3_LIST_MAX (8u << 20)    /* bytes of one listing page (1000 keys) */
#define S3_TIMEOUT_MS 600000      /* one request, whole */
#define S3_STALL_S 30L            /* a transfer with no bytes for this long is dropped */
#define S3_RETRY_FOR_S 60         /* no try starts after this long since the first */
#define S3_PART ((size_t)8 << 20) /* bytes of one ranged GET of an object */
#define S3_RANGE_MAX 128          /* bytes of a Content-Range or an ETag kept */
#define S3_PAGES_MAX (1 << 14)    /* pages of one listing: 16M keys at S3's 1000 a page */
#define S3_CREDS_MAX (1u << 20)   /* bytes of a shared credentials file read */

#define S3_BUCKET_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_"

bool prism_s3_is_path(const char *path) { return !strncasecmp(path, "s3://", 5); }

/* ---------- addressing ---------- */

typedef struct s3_loc {
    char *bucket;
    const char *key; /* into bucket's allocation, after its NUL */
} s3_loc;

static int split(const char *path, s3_loc *loc, char *err, size_t n)
{
    const char *b = path + 5, *slash = strchr(b, '/');
    size_t bl = slash ? (size_t)(slash - b) : strlen(b);
    /* the name goes into the URL's host: nothing that could change where it points */
    if (bl == 0 || bl > 255 || strspn(b, S3_BUCKET_CHARS) < bl) {
        snprintf(err, n, "%s: a bucket name is letters, digits, '.', '-' and '_'", path);
        return -1;
    }
    size_t kl = slash ? strlen(slash + 1) : 0;
    if (!(loc->bucket = malloc(bl + kl + 2))) {
        snprintf(err, n, "%s: out of memory", path);
        return -1;
    }
    memcpy(loc->bucket, b, bl);
    loc->bucket[bl] = '\0';
    char *key = loc->bucket + bl + 1;
    memcpy(key, slash ? slash + 1 : "", kl + 1);
    loc->key = key;
    return 0;
}

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

/* The credentials to sign with, as AWS's tools find them: the environment's
 * AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (with AWS_SESSION_TOKEN),
 * else profile AWS_PROFILE ("default") of the shared credentials file
 * (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials). Returns 0, or -1
 * when there are none (requests then go unsigned) or memory ran out. */
static int creds_load(prism_s3_creds *c)
{
    *c = (prism_s3_creds){0};
    const char *key = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
    const char *token = getenv("AWS_SESSION_TOKEN");
    if (key && *key && secret) {
        c->key = strdup(key);
        c->secret = strdup(secret);
        c->token = token && *token ? strdup(token) : NULL;
        if (c->key && c->secret && (c->token || !token || !*token))
            return 0;
        prism_s3_creds_clear(c);
        return -1;
    }
    char path[4096];
    const char *file = getenv("AWS_SHARED_CREDENTIALS_FILE"), *home = getenv("HOME");
    if (file && *file)
        snprintf(path, sizeof path, "%s", file);
    else if (home && *home)
        snprintf(path, sizeof path, "%s/.aws/credentials", home);
    else
        return -1;
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *text = malloc(S3_CREDS_MAX + 1);
    size_t len = text ? fread(text, 1, S3_CREDS_MAX, f) : 0;
    fclose(f);
    int rc = text ? prism_s3_parse_credentials(text, len, env_or("AWS_PROFILE", "default"), c) : -1;
    free(text);
    return rc;
}

/* Appends `s` percent-encoded as SigV4 wants it: unreserved bytes kept, and
 * "/" too where `keep_slash` (a key in the URL's path). */
static int encode(prism_buf *b, const char *s, bool keep_slash)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/');
        if (plain ? prism_buf_append(b, s, 1) != 0 : prism_buf_printf(b, "%%%02X", c) < 0)
            return -1;
    }
    return 0;
}

/* The URL of `key` in `bucket` (key may be ""), with `query` (already
 * encoded) appended when not NULL. Owned; NULL when out of memory. */
static char *object_url(const char *bucket, const char *key, const char *query)
{
    prism_buf b;
    prism_buf_init(&b, 64 << 10);
    const char *endpoint = getenv("AWS_ENDPOINT_URL");
    int rc;
    if (endpoint && *endpoint) {
        size_t el = strlen(endpoint);
        while (el > 0 && endpoint[el - 1] == '/')
            el--;
        rc = prism_buf_printf(&b, "%.*s/", (int)el, endpoint) < 0 || encode(&b, bucket, false) ||
             prism_buf_append(&b, "/", 1);
    } else {
        rc = prism_buf_printf(&b, "https://%s.s3.%s.amazonaws.com/", bucket,
                              env_or("AWS_REGION", "us-east-1")) < 0;
    }
    if (!rc)
        rc = encode(&b, key, true);
    if (!rc && query)
        rc = prism_buf_printf(&b, "?%s", query) < 0;
    if (rc) {
        prism_buf_free(&b);
        return NULL;
    }
    return prism_buf_take(&b, NULL);
}

/* ---------- requests ---------- */

static size_t on_data(char *data, size_t size, size_t nmemb, void *ud)
{
    return prism_buf_append(ud, data, size * nmemb) == 0 ? size * nmemb : 0;
}

/* What a ranged GET's answer says of the object: its Content-Range and
 * ETag (each S3_RANGE_MAX bytes, values trimmed). */
typedef struct s3_meta {
    char range[S3_RANGE_MAX];
    char etag[S3_RANGE_MAX];
} s3_meta;

static void keep_header(const char *data, size_t len, const char *name, char *out)
{
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(data, name, nl))
        return;
    const char *v = data + nl, *e = data + len;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
        e--;
    size_t k = (size_t)(e - v) < S3_RANGE_MAX - 1 ? (size_t)(e - v) : S3_RANGE_MAX - 1;
    memcpy(out, v, k);
    out[k] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    s3_meta *m = ud;
    keep_header(data, size * nmemb, "Content-Range:", m->range);
    keep_header(data, size * nmemb, "ETag:", m->etag);
    return size * nmemb;
}

/* Appends `line` to `*list`: false when memory ran out (the list stays). */
static bool add_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *more = curl_slist_append(*list, line);
    if (more)
        *list = more;
    return more != NULL;
}

/* One request, retried on 5xx, throttling and lost connections: a GET
 * (of `range`, "FIRST-LAST", when given; only if the object's ETag is still
 * `if_match` when given), or a PUT of `put_len` bytes of `put`. Returns 0
 * with the final answer's status and body in `b` and, when `meta` is not
 * NULL, what its headers say of the object; or -1 with `why` after the last
 * try failed, in transport or with a status worth retrying. */
static int s3_request_ex(const char *url, const char *range, const char *if_match, const void *put,
                         size_t put_len, prism_buf *b, long *status, s3_meta *meta, char *why,
                         size_t n)
{
    prism_httpc_global_init();
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(why, n, "out of memory");
        return -1;
    }
    prism_s3_creds creds = {0};
    char sigv4[128], *userpwd = NULL, *tok = NULL;
    struct curl_slist *headers = NULL;
    bool sign = creds_load(&creds) == 0, oom = false;
    int rc = -1;
    if (sign) {
        snprintf(sigv4, sizeof sigv4, "aws:amz:%s:s3", env_or("AWS_REGION", "us-east-1"));
        if (asprintf(&userpwd, "%s:%s", creds.key, creds.secret) < 0)
            userpwd = NULL;
        if (creds.token && asprintf(&tok, "x-amz-security-token: %s", creds.token) < 0)
            tok = NULL;
        oom = !userpwd || (creds.token && !tok);
        /* S3 wants the payload's hash signed; libcurl before 8 does not add it */
        oom = oom || !add_header(&headers, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
        /* no 100-continue round trip before a PUT's body */
        oom = oom || (put && !add_header(&headers, "Expect:")) ||
              (tok && !add_header(&headers, tok));
    }
    if (!oom && if_match && *if_match) {
        char hm[S3_RANGE_MAX + 16];
        snprintf(hm, sizeof hm, "If-Match: %s", if_match);
        oom = !add_header(&headers, hm);
    }
    if (oom) {
        snprintf(why, n, "out of memory");
        goto done;
    }
    long backoff = S3_BACKOFF_MS;
    time_t start = time(NULL);
    size_t max = b->max;
    for (int attempt = 1; attempt <= S3_ATTEMPTS; attempt++) {
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L); /* a key "a/../b" is that key */
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)S3_TIMEOUT_MS);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, S3_STALL_S);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
        const char *ca = getenv("AWS_CA_BUNDLE"); /* a store with its own CA */
        if (ca && *ca)
            curl_easy_setopt(h, CURLOPT_CAINFO, ca);
        if (sign) {
            curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4);
            curl_easy_setopt(h, CURLOPT_USERPWD, userpwd);
        }
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        if (range)
            curl_easy_setopt(h, CURLOPT_RANGE, range);
        if (put) {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, (const char *)put);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)put_len);
        }
        if (meta) {
            *meta = (s3_meta){{0}, {0}};
            curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
            curl_easy_setopt(h, CURLOPT_HEADERDATA, meta);
        }
        prism_buf_free(b);
        prism_buf_init(b, max);
        CURLcode cr = curl_easy_perform(h);
        *status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        bool retry;
        if (cr == CURLE_WRITE_ERROR) {
            snprintf(why, n, "larger than %zu bytes, or out of memory", max);
            break;
        }
        if (cr != CURLE_OK) {
            snprintf(why, n, "%s", curl_easy_strerror(cr));
            retry = true;
        } else {
            retry = *status >= 500 || *status == 429;
            if (retry) {
                char e[256];
                prism_s3_parse_error(b->data, b->len, e, sizeof e);
                snprintf(why, n, "HTTP %ld%s%s", *status, *e ? " " : "", e);
            }
        }
        if (!retry) {
            rc = 0;
            break;
        }
        if (time(NULL) - start >= S3_RETRY_FOR_S) {
            snprintf(why + strlen(why), n - strlen(why), " (after %d tries in %lds)", attempt,
                     (long)(time(NULL) - start));
            break;
        }
        if (attempt < S3_ATTEMPTS) {
            struct timespec ts = {backoff / 1000, (backoff % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            backoff = backoff * 2 > S3_BACKOFF_MAX_MS ? S3_BACKOFF_MAX_MS : backoff * 2;
        }
    }
    if (rc != 0 && !strstr(why, "larger than") && !strstr(why, " tries in "))
        snprintf(why + strlen(why), n - strlen(why), " (after %d tries)", S3_ATTEMPTS);
done:
    curl_slist_free_all(headers);
    free(tok);
    free(userpwd);
    prism_s3_creds_clear(&creds);
    curl_easy_cleanup(h);
    return rc;
}

static int s3_request(const char *url, const char *range, prism_buf *b, long *status, s3_meta *meta,
                      char *why, size_t n)
{
    return s3_request_ex(url, range, NULL, NULL, 0, b, status, meta, why, n);
}

/* The message of a non-2xx answer about `what` (an s3:// path). */
static void status_error(const char *what, const char *bucket, long status, const prism_buf *b,
                         char *err, size_t n)
{
    char e[512];
    prism_s3_parse_error(b->data, b->len, e, sizeof e);
    if (strstr(e, "NoSuchBucket"))
        snprintf(err, n, "s3://%s: no such bucket (HTTP %ld %s)", bucket, status, e);
    else if (strstr(e, "NoSuchKey") || (status == 404 && !*e))
        snprintf(err, n, "%s: no such key (HTTP %ld%s%s)", what, status, *e ? " " : "", e);
    else if (status == 403 || status == 401)
        snprintf(err, n,
                 "%s: access denied to bucket %s: check the credentials and their "
                 "signature (HTTP %ld%s%s)",
                 what, bucket, status, *e ? " " : "", e);
    else
        snprintf(err, n, "%s: HTTP %ld%s%s", what, status, *e ? " " : "", e);
}

/* The object at `url` from byte `b->len` on, in parts of S3_PART bytes,
 * into `b`: `total` bytes in all, each part only while the object's ETag is
 * still `etag` (when known), so that an object replaced in the middle fails
 * instead of mixing two. A part that fails is retried alone. */
static int get_rest(const char *path, const char *bucket, const char *url, size_t total,
                    const char *etag, prism_buf *b, char *err, size_t n)
{
    char why[512], range[64];
    int rc = 0;
    while (rc == 0 && b->len < total) {
        size_t end = total - b->len > S3_PART ? b->len + S3_PART : total;
        prism_buf part;
        long status = 0;
        prism_buf_init(&part, S3_PART);
        snprintf(range, sizeof range, "%zu-%zu", b->len, end - 1);
        rc = -1;
        if (s3_request_ex(url, range, etag, NULL, 0, &part, &status, NULL, why, sizeof why) != 0)
            snprintf(err, n, "%s: bytes %s: %s", path, range, why);
        else if (status == 412)
            snprintf(err, n, "%s: the object changed while it was read (its ETag was %s)", path,
                     etag);
        else if (status != 206)
            status_error(path, bucket, status, &part, err, n);
        else if (part.len != end - b->len)
            snprintf(err, n, "%s: bytes %s: %zu bytes came (the object changed?)", path, range,
                     part.len);
        else if (prism_buf_append(b, part.data, part.len) != 0)
            snprintf(err, n, "%s: out of memory", path);
        else
            rc = 0;
        prism_buf_free(&part);
    }
    return rc;
}

bool prism_s3_has_credentials(void)
{
    prism_s3_creds creds;
    if (creds_load(&creds) != 0)
        return false;
    prism_s3_creds_clear(&creds);
    return true;
}

int prism_s3_put(const char *path, const void *data, size_t len, char *err, size_t n)
{
    if (!prism_s3_has_credentials()) {
        snprintf(err, n, "%s: writes to S3 need credentials (%s)", path, PRISM_S3_CREDENTIALS);
        return -1;
    }
    s3_loc loc = {0};
    if (split(path, &loc, err, n) != 0)
        return -1;
    int rc = -1;
    char *url = *loc.key ? object_url(loc.bucket, loc.key, NULL) : NULL, why[512] = "";
    prism_buf b;
    long status = 0;
    prism_buf_init(&b, 64 << 10);
    if (!*loc.key)
        snprintf(err, n, "%s: a write needs a key, not only a bucket", path);
    else if (!url)
        snprintf(err, n, "%s: out of memory", path);
    else if (s3_request_ex(url, NULL, NULL, data ? data : "", len, &b, &status, NULL, why,
                           sizeof why) != 0)
        snprintf(err, n, "%s: %s", path, why);
    else if (status < 200 || status >= 300)
        status_error(path, loc.bucket, status, &b, err, n);
    else
        rc = 0;
    prism_buf_free(&b);
    free(url);
    free(loc.bucket);
    return rc;
}

int prism_s3_get(const char *path, size_t max, char **body, size_t *len, char *err, size_t n)
{
    s3_loc loc = {0};
    if (split(path, &loc, err, n) != 0)
        return -1;
    int rc = -1;
    char *url = object_url(loc.bucket, loc.key, NULL), why[512];
    s3_meta meta = {{0}, {0}};
    char first[64];
    prism_buf b;
    long status = 0;
    prism_buf_init(&b, max);
    snprintf(first, sizeof first, "0-%zu", S3_PART - 1);
    if (!*loc.key) {
        snprintf(err, n, "%s: names a bucket, not an object", path);
        goto out;
    }
    if (!url) {
        snprintf(err, n, "%s: out of memory", path);
        goto out;
    }
    /* the first part tells the size; an empty object has no range to give (416) */
    int got = s3_request(url, first, &b, &status, &meta, why, sizeof why);
    if (got == 0 && status == 416)
        got = s3_request(url, NULL, &b, &status, NULL, why, sizeof why);
    if (got != 0) {
        snprintf(err, n, "%s: %s", path, why);
        goto out;
    }
    if (status == 206) { /* "bytes 0-8388607/20000000" */
        const char *slash = strrchr(meta.range, '/');
        char *e = NULL;
        unsigned long long total = slash ? strtoull(slash + 1, &e, 10) : 0;
        if (!slash || e == slash + 1 || total < b.len) {
            snprintf(err, n, "%s: an answer without its size (Content-Range \"%.64s\")", path,
                     meta.range);
            goto out;
        }
        if (total > max) {
            snprintf(err, n, "%s: larger than %zu bytes", path, max);
            goto out;
        }
        if (get_rest(path, loc.bucket, url, (size_t)total, meta.etag, &b, err, n) != 0)
            goto out;
    } else if (status != 200) { /* 200: a store that ignores ranges sent it whole */
        status_error(path, loc.bucket, status, &b, err, n);
        goto out;
    }
    *body = prism_buf_take(&b, len);
    rc = *body ? 0 : -1;
    if (rc != 0)
        snprintf(err, n, "%s: out of memory", path);
out:
    prism_buf_free(&b);
    free(url);
    free(loc.bucket);
    return rc;
}

/* One page of a listing: calls `fn` for the keys `loc` names; `*next`
 * gets the continuation token (owned) when the listing goes on. */
typedef struct page_ctx {
    const char *path;
    const s3_loc *loc;
    int (*fn)(void *, const char *, int64_t);
    void *ud;
    char *err;
    size_t n;
} page_ctx;

static int on_entry(void *ud, const char *key, int64_t size)
{
    page_ctx *c = ud;
    if (!prism_s3_names(c->loc->key, key))
        return 0;
    prism_buf p;
    prism_buf_init(&p, 8 << 10);
    int rc = prism_buf_printf(&p, "s3://%s/%s", c->loc->bucket, key);
    if (rc < 0)
        snprintf(c->err, c->n, "%s: a key too long: %.64s...", c->path, key);
    else
        rc = c->fn(c->ud, p.data, size);
    prism_buf_free(&p);
    return rc;
}

static int list_page(const char *path, const s3_loc *loc, const char *body, size_t len,
                     int (*fn)(void *, const char *, int64_t), void *ud, char **next, char *err,
                     size_t n)
{
    page_ctx c = {path, loc, fn, ud, err, n};
    char why[256] = "";
    if (prism_s3_parse_listing(body, len, on_entry, &c, next, why, sizeof why) == 0)
        return 0;
    if (*why) /* else `fn` said why */
        snprintf(err, n, "%s: %s", path, why);
    return -1;
}

int prism_s3_list(const char *path, int (*fn)(void *ud, const char *object_path, int64_t size),
                  void *ud, char *err, size_t n)
{
    s3_loc loc = {0};
    if (split(path, &loc, err, n) != 0)
        return -1;
    /* "dir" lists from "dir" (to see the key itself); prism_s3_names keeps what it names */
    char *token = NULL, *last = NULL, why[512];
    int rc = 0;
    for (int page = 1; rc == 0; page++) {
        prism_buf q, b;
        prism_buf_init(&q, 64 << 10);
        prism_buf_init(&b, S3_LIST_MAX);
        /* parameters in name order: the canonical query SigV4 signs */
        int bad = 0;
        if (token)
            bad |= prism_buf_printf(&q, "continuation-token=") < 0 || encode(&q, token, false) ||
                   prism_buf_printf(&q, "&") < 0;
        bad |= prism_buf_printf(&q, "list-type=2&prefix=") < 0 || encode(&q, loc.key, false) ||
               prism_buf_append(&q, "", 0);
        char *url = bad ? NULL : object_url(loc.bucket, "", q.data ? q.data : "");
        long status = 0;
        free(last);
        last = token; /* a store that gives the same token again would list forever */
        token = NULL;
        if (!url) {
            snprintf(err, n, "%s: out of memory", path);
            rc = -1;
        } else if (s3_request(url, NULL, &b, &status, NULL, why, sizeof why) != 0) {
            snprintf(err, n, "%s: listing: %s", path, why);
            rc = -1;
        } else if (status != 200) {
            status_error(path, loc.bucket, status, &b, err, n);
            rc = -1;
        } else {
            rc = list_page(path, &loc, b.data ? b.data : "", b.len, fn, ud, &token, err, n);
        }
        free(url);
        prism_buf_free(&q);
        prism_buf_free(&b);
        if (rc == 0 && !token)
            break;
        if (rc == 0 && ((last && !strcmp(token, last)) || page == S3_PAGES_MAX)) {
            snprintf(err, n, "%s: the listing does not end (%d pages)", path, page);
            rc = -1;
        }
    }
    free(token);
    free(last);
    free(loc.bucket);
    return rc;
}
