/* The object store's HTTP routes (os_http.c): put, get with Range, info,
 * delete and stats, called as the HTTP server would call them (fake.h
 * input format) on a fresh store with a 1 MiB arena.
 * Left out: POST .../pull (os_pull.c fetches from the URL in the body: a
 * network client, fuzzed from the other end by this target's GET), and
 * gets that wait (timeout_ms), which only sleep. */
#include "store_fixture.h"

static char *dir;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    prism_log_init("fuzz", PRISM_LOG_ERROR);
    dir = fuzz_tmpdir("store-http");
    return dir ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_msg m;
    if (!fuzz_msg_parse(data, size, &m))
        return 0;
    objectstore os;
    char err[256];
    if (strstr(m.target, "/pull") || strstr(m.target, "timeout_ms") || !fixture_open(&os, dir)) {
        fuzz_msg_free(&m);
        return 0;
    }
    prism_http_config hc = {.routes = os_routes, .nroutes = os_nroutes, .ctx = &os};
    if (prism_http_server_create(&os.http, &hc, err, sizeof err) == 0) {
        /* A put first, so that gets, ranges and deletes find something. */
        static const char id[] = "/api/v1/objects/000102030405060708090a0b0c0d0e0f10111213";
        fuzz_http_dispatch("PUT", id, "Content-Type: text/plain\n", "0123456789", 10);
        fuzz_msg_run(&m);
        prism_http_server_destroy(os.http);
    }
    fixture_close(&os);
    fuzz_msg_free(&m);
    return 0;
}
