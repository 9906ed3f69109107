#include "ready.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "client.h"
#include "prism_httpc.h"
#include "prism_time.h"
#include "proc.h"

/* One step of a bounded wait for `name`: 0 to go on polling, -1 (printed) to give up. */
static int wait_step(pid_t pid, int64_t deadline, const char *name, const char *what)
{
    if (!proc_alive(pid)) {
        fprintf(stderr, "prism: %s exited before %s\n", name, what);
        return -1;
    }
    if (prism_mono_ms() >= deadline) {
        fprintf(stderr, "prism: %s: gave up waiting until %s\n", name, what);
        return -1;
    }
    prism_sleep_ms(50);
    return 0;
}

/* The port of the first client URL in a ports file ({"nats":
 * ["nats://127.0.0.1:PORT"]}), or -1 while it is not there or whole. */
static int ports_file_port(const char *path)
{
    json_t *doc = json_load_file(path, 0, NULL);
    const char *url = json_string_value(json_array_get(json_object_get(doc, "nats"), 0));
    const char *colon = url ? strrchr(url, ':') : NULL;
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    bool whole = end && !*end && port > 0 && port < 65536;
    json_decref(doc);
    return whole ? (int)port : -1;
}

int ready_wait_nats(pid_t pid, const char *dir, int timeout_ms, int *port)
{
    int64_t deadline = prism_mono_ms() + timeout_ms;
    char path[4200], what[4300];
    snprintf(path, sizeof path, "%s/nats-server_%lld.ports", dir, (long long)pid);
    snprintf(what, sizeof what, "it named its port in %s", path);
    while ((*port = ports_file_port(path)) < 0)
        if (wait_step(pid, deadline, "nats-server", what) != 0)
            return -1;
    return 0;
}

static bool read_url(const char *path, char *url, size_t n)
{
    char *text = cli_read_text(path);
    bool ok = text && !strncmp(text, "http", 4) && strlen(text) < n;
    if (ok)
        snprintf(url, n, "%s", text);
    free(text);
    return ok;
}

static bool healthy(const char *url)
{
    prism_httpc *c = NULL;
    prism_httpc_resp resp = {0};
    char err[256];
    bool ok = prism_httpc_create(&c, url, NULL) == 0 &&
              prism_httpc_request(c, "GET", "/healthz", NULL, NULL, 0, 1000, 4096, &resp, err,
                                  sizeof err) == 0 &&
              resp.status == 200;
    prism_httpc_resp_free(&resp);
    prism_httpc_destroy(c);
    return ok;
}

int ready_wait_service(const char *name, const char *path, pid_t pid, int timeout_ms, char *url,
                       size_t n)
{
    int64_t deadline = prism_mono_ms() + timeout_ms;
    char what[4200];
    snprintf(what, sizeof what, "it wrote its address to %s", path);
    while (!read_url(path, url, n))
        if (wait_step(pid, deadline, name, what) != 0)
            return -1;
    snprintf(what, sizeof what, "%s/healthz answered", url);
    while (!healthy(url))
        if (wait_step(pid, deadline, name, what) != 0)
            return -1;
    return 0;
}

void ready_print_log_tail(const char *path, int lines)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char buf[8192];
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long from = size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0;
    fseek(f, from, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *start = buf + n;
    for (int seen = 0; start > buf && seen < lines;)
        if (*--start == '\n' && start + 1 < buf + n)
            seen++;
    if (*start == '\n')
        start++;
    fprintf(stderr, "--- last lines of %s ---\n%s%s--- end of %s ---\n", path, start,
            n > 0 && buf[n - 1] != '\n' ? "\n" : "", path);
}
