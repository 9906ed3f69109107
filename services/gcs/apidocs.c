/* The API reference (/api/docs) and the spec (/api/openapi.yaml), compiled in
 * (gcs_apidocs.h) and served without the token (routes.c marks them
 * PRISM_HTTP_PUBLIC): they describe the API and hold no data. docs/api.md. */
#include <string.h>

#include "gcs.h"
#include "gcs_apidocs.h"

/* Redoc's page is one file of inline scripts and styles, generated at build
 * time from the spec alone: nothing of a request or of the cluster is in it.
 * It loads nothing from elsewhere and may not be framed. */
#define APIDOCS_CSP                                                                                \
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "                  \
    "img-src 'self' data:; font-src data:; worker-src blob:; connect-src 'self'; "                 \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static const gcs_dashboard_file *find_file(const char *name)
{
    for (size_t i = 0; i < gcs_apidocs_nfiles; i++)
        if (!strcmp(gcs_apidocs_files[i].name, name))
            return &gcs_apidocs_files[i];
    return NULL;
}

static void serve(prism_http_req *req, const gcs_dashboard_file *f, const char *type)
{
    prism_http_add_header(req, "X-Content-Type-Options", "nosniff");
    prism_http_add_header(req, "Referrer-Policy", "no-referrer");
    prism_http_add_header(req, "ETag", f->etag);
    prism_http_add_header(req, "Cache-Control", "no-cache");
    const char *inm = prism_http_header(req, "If-None-Match");
    if (inm && (!strcmp(inm, "*") || strstr(inm, f->etag))) {
        prism_http_reply(req, 304, NULL, "", 0);
        return;
    }
    prism_http_reply_static(req, 200, type, f->data, f->size);
}

void gcs_api_docs(prism_http_req *req, void *ctx)
{
    const gcs_dashboard_file *f = find_file("api-docs.html");
    if (!f) {
        prism_http_reply_error(req, 404, "docs_not_built",
                               "this GCS was built without Node.js, so the API reference was not "
                               "rendered (scripts/bootstrap.sh installs it; then reconfigure and "
                               "rebuild); the spec is at /api/openapi.yaml");
        return;
    }
    prism_http_add_header(req, "Content-Security-Policy", APIDOCS_CSP);
    serve(req, f, "text/html; charset=utf-8");
}

void gcs_api_openapi_spec(prism_http_req *req, void *ctx)
{
    /* Always embedded (apidocs.cmake); RFC 9512's media type. */
    serve(req, find_file("openapi.yaml"), "application/yaml");
}
