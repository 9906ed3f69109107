/* Datasets through the GCS's address, so that users keep one address:
 * /api/v1/datasets* is forwarded as it came (method, path, query, body) to
 * the dataservice, and its answer returned as it is. The GCS asks where the
 * dataservice serves on NATS (prism.data.address) at each request: it keeps
 * no state about it, and "no responders" says at once that none runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs.h"
#include "prism_httpc.h"
#include "prism_subjects.h"

#define FIND_TIMEOUT_MS 2000
/* The dataservice waits at most 60 s for a dataset (timeout_ms). */
#define FORWARD_TIMEOUT_MS 75000
#define MAX_ANSWER (64u << 20)

/* The dataservice's URL into `url`. Returns 0, or -1 when none answers. */
static int find_dataservice(gcs *g, char *url, size_t n)
{
    json_t *req = json_object(), *reply = NULL;
    int rc = g->bus && req ? prism_bus_request_json(g->bus, PRISM_SUBJECT_DATA_ADDRESS, req,
                                                    FIND_TIMEOUT_MS, &reply)
                           : PRISM_BUS_ERROR;
    const char *u = json_string_value(json_object_get(reply, "url"));
    int ok = rc == PRISM_BUS_OK && u && *u ? 0 : -1;
    if (ok == 0)
        snprintf(url, n, "%s", u);
    json_decref(req);
    json_decref(reply);
    return ok;
}

void gcs_api_datasets_proxy(prism_http_req *req, void *ctx)
{
    gcs *g = ctx;
    char url[512], err[512];
    if (find_dataservice(g, url, sizeof url) != 0) {
        prism_http_reply_error(req, 503, "dataservice_unavailable",
                               "no dataservice answers in this cluster (`prism up` starts one)");
        return;
    }
    char *query = prism_http_query_string(req);
    char *path = NULL;
    if (!query || asprintf(&path, "%s%s%s", prism_http_path(req), *query ? "?" : "", query) < 0)
        path = NULL;
    free(query);
    prism_httpc *h = NULL;
    if (!path || prism_httpc_create(&h, url, g->cfg.token) != 0) {
        free(path);
        prism_http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    const char *method = prism_http_method(req);
    if (!strcmp(method, "HEAD"))
        method = "GET"; /* the server leaves the body out */
    size_t len;
    const char *body = prism_http_body(req, &len);
    const char *ctype = prism_http_header(req, "Content-Type");
    prism_httpc_resp resp;
    int rc = prism_httpc_request(h, method, path, len ? (ctype ? ctype : "application/json") : NULL,
                                 len ? body : NULL, len, FORWARD_TIMEOUT_MS, MAX_ANSWER, &resp, err,
                                 sizeof err);
    prism_httpc_destroy(h);
    free(path);
    if (rc != 0) {
        prism_http_reply_error(req, 503, "dataservice_unavailable",
                               "the dataservice at %s does not answer: %s", url, err);
        return;
    }
    prism_http_reply(req, (int)resp.status, "application/json", resp.body, resp.len);
    prism_httpc_resp_free(&resp);
}
