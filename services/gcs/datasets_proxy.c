/* Datasets through the GCS's address, so that users keep one address:
 * /api/v1/datasets* is forwarded as it came (method, path, query, body) to
 * the dataservice, and its answer returned as it is. The GCS asks where the
 * dataservice serves on NATS (prism.data.address): "no responders" says at
 * once that none runs. A consumer fetches and releases a block per batch, so
 * the answer is kept for URL_KEEP_MS (or until a forward fails), and so are
 * a few connections to it: a new one per request cost the dataservice a
 * thread and a connection buffer, and both sides a TCP handshake. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs.h"
#include "prism_httpc.h"
#include "prism_subjects.h"
#include "prism_time.h"

#define FIND_TIMEOUT_MS 2000
/* The dataservice waits at most 60 s for a dataset (timeout_ms). */
#define FORWARD_TIMEOUT_MS 75000
#define MAX_ANSWER (64u << 20)
#define URL_KEEP_MS 1000
#define IDLE_MAX 8 /* connections kept between requests */

struct gcs_data_proxy {
    pthread_mutex_t lock;    /* a leaf */
    char url[512];           /* the dataservice's, as it last answered; "" when unknown */
    int64_t url_mono;        /* when it answered */
    prism_httpc_pool *conns; /* to it */
};

int gcs_data_proxy_create(gcs *g)
{
    if (!(g->data_proxy = calloc(1, sizeof *g->data_proxy)))
        return -1;
    if (!(g->data_proxy->conns = prism_httpc_pool_create(IDLE_MAX))) {
        free(g->data_proxy);
        g->data_proxy = NULL;
        return -1;
    }
    pthread_mutex_init(&g->data_proxy->lock, NULL);
    return 0;
}

void gcs_data_proxy_destroy(gcs *g)
{
    if (!g->data_proxy)
        return;
    prism_httpc_pool_destroy(g->data_proxy->conns);
    pthread_mutex_destroy(&g->data_proxy->lock);
    free(g->data_proxy);
    g->data_proxy = NULL;
}

/* The dataservice's URL into `url`. Returns 0, or -1 when none answers. */
static int find_dataservice(gcs *g, char *url, size_t n)
{
    gcs_data_proxy *p = g->data_proxy;
    pthread_mutex_lock(&p->lock);
    bool kept = p->url[0] && prism_mono_ms() - p->url_mono < URL_KEEP_MS;
    if (kept)
        snprintf(url, n, "%s", p->url);
    pthread_mutex_unlock(&p->lock);
    if (kept)
        return 0;
    json_t *req = json_object(), *reply = NULL;
    int rc = g->bus && req ? prism_bus_request_json(g->bus, PRISM_SUBJECT_DATA_ADDRESS, req,
                                                    FIND_TIMEOUT_MS, &reply)
                           : PRISM_BUS_ERROR;
    const char *u = json_string_value(json_object_get(reply, "url"));
    int ok = rc == PRISM_BUS_OK && u && *u && strlen(u) < sizeof p->url ? 0 : -1;
    if (ok == 0) {
        snprintf(url, n, "%s", u);
        pthread_mutex_lock(&p->lock);
        snprintf(p->url, sizeof p->url, "%s", u);
        p->url_mono = prism_mono_ms();
        pthread_mutex_unlock(&p->lock);
    }
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
    /* re-encoded: the server decoded them ("a%20b", "x%3Fy") */
    char *query = prism_http_query_string(req), *encoded = prism_http_path_encoded(req);
    char *path = NULL;
    if (!query || !encoded || asprintf(&path, "%s%s%s", encoded, *query ? "?" : "", query) < 0)
        path = NULL;
    free(query);
    free(encoded);
    gcs_data_proxy *p = g->data_proxy;
    prism_httpc *h = path ? prism_httpc_pool_take(p->conns, url, g->cfg.token) : NULL;
    if (!h) {
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
    prism_httpc_pool_give(p->conns, h, rc == 0);
    free(path);
    if (rc != 0) {
        pthread_mutex_lock(&p->lock); /* ask again next time: it may have moved or died */
        if (!strcmp(p->url, url))
            p->url[0] = '\0';
        pthread_mutex_unlock(&p->lock);
        prism_http_reply_error(req, 503, "dataservice_unavailable",
                               "the dataservice at %s does not answer: %s", url, err);
        return;
    }
    prism_http_reply(req, (int)resp.status, "application/json", resp.body, resp.len);
    prism_httpc_resp_free(&resp);
}
