/* The dashboard: static files compiled into the GCS (gcs_dashboard.h),
 * served without the token (routes.c marks them PRISM_HTTP_PUBLIC). They hold
 * no data: the page asks the REST API for everything, with the token the
 * user signs in with. docs/dashboard.md. */
#include <string.h>

#include "gcs.h"
#include "gcs_dashboard.h"

/* Scripts and styles only from files of this origin (no inline code, no
 * eval), requests only to this origin, no framing. */
#define DASHBOARD_CSP                                                                              \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static const char *content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".svg", "image/svg+xml"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(dot, types[i].ext))
            return types[i].type;
    return "application/octet-stream";
}

static const gcs_dashboard_file *find_file(const char *name)
{
    for (size_t i = 0; name && i < gcs_dashboard_nfiles; i++)
        if (!strcmp(gcs_dashboard_files[i].name, name))
            return &gcs_dashboard_files[i];
    return NULL;
}

/* Whether an If-None-Match header names `etag` ("*", one tag or a list). */
static bool etag_matches(const char *header, const char *etag)
{
    if (!header)
        return false;
    if (!strcmp(header, "*"))
        return true;
    size_t n = strlen(etag);
    for (const char *p = strstr(header, etag); p; p = strstr(p + 1, etag)) {
        /* A weak validator (W/"...") compares equal too (RFC 9110 8.8.3.2). */
        char after = p[n];
        if (after == '\0' || after == ',' || after == ' ')
            return true;
    }
    return false;
}

static void serve(prism_http_req *req, const gcs_dashboard_file *f)
{
    if (!f) {
        prism_http_reply_error(req, 404, "not_found", "no dashboard file '%s'",
                               prism_http_param(req, "file"));
        return;
    }
    prism_http_add_header(req, "Content-Security-Policy", DASHBOARD_CSP);
    prism_http_add_header(req, "X-Content-Type-Options", "nosniff");
    prism_http_add_header(req, "Referrer-Policy", "no-referrer");
    prism_http_add_header(req, "ETag", f->etag);
    /* Revalidate on every load: a 304 costs a few bytes, and a GCS upgraded
     * in place never serves a page mixing old and new files. */
    prism_http_add_header(req, "Cache-Control", "no-cache");
    if (etag_matches(prism_http_header(req, "If-None-Match"), f->etag)) {
        prism_http_reply(req, 304, NULL, "", 0);
        return;
    }
    prism_http_reply_static(req, 200, content_type(f->name), f->data, f->size);
}

void gcs_dashboard_index(prism_http_req *req, void *ctx) { serve(req, find_file("index.html")); }

void gcs_dashboard_file_get(prism_http_req *req, void *ctx)
{
    serve(req, find_file(prism_http_param(req, "file")));
}
