/* prism-worker: runs tasks pushed by owners over direct connections.
 * The node agent starts it (docs/tasks.md); it is not started by hand. Its
 * options and token come from the service skeleton (prism_service.h); the
 * loop is the worker's own (runtime.c). */
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "prism_log.h"
#include "prism_service.h"
#include "runtime.h"

static char *worker_id, *node_id, *socket_path, *host, *store_socket, *store_address, *gcs,
    *package_dir;
static int64_t ready_fd;
static prism_worker_config wc;

static prism_option options[] = {
    {"worker-id", PRISM_OPT_STRING, &worker_id, "worker", "this worker's ID"},
    {"node-id", PRISM_OPT_STRING, &node_id, "", "the node's ID (for lease returns)"},
    {"socket", PRISM_OPT_STRING, &socket_path, NULL, "Unix socket to listen on (required)"},
    {"host", PRISM_OPT_STRING, &host, "127.0.0.1", "TCP address to listen on"},
    {"store-socket", PRISM_OPT_STRING, &store_socket, NULL, "the node's object store socket"},
    {"store-address", PRISM_OPT_STRING, &store_address, NULL, "the node's object store URL"},
    {"gcs-address", PRISM_OPT_STRING, &gcs, NULL, "the GCS URL (packages, nested tasks)"},
    {"package-dir", PRISM_OPT_STRING, &package_dir, "./packages", "package cache directory"},
    {"ready-fd", PRISM_OPT_INT, &ready_fd, "-1", "write the listening addresses here"},
};

static int configure(void *ctx, const prism_service_settings *s, char *err, size_t errlen)
{
    if (!socket_path) {
        snprintf(err, errlen, "--socket is required");
        return -1;
    }
    /* Checked before the worker opens anything: a number that is not open
     * now would be its own next descriptor (its event loop's), which it
     * would close once ready. */
    if (ready_fd >= 0 && (ready_fd > 1 << 20 || fcntl((int)ready_fd, F_GETFD) < 0)) {
        snprintf(err, errlen, "--ready-fd %lld is not an open descriptor", (long long)ready_fd);
        return -1;
    }
    wc = (prism_worker_config){worker_id,    node_id,       socket_path,  host,
                               store_socket, store_address, gcs,          s->nats_url,
                               s->token,     package_dir,   (int)ready_fd};
    return 0;
}

static int run(void *ctx, prism_service *svc)
{
    /* Nested tasks connect through the same settings. */
    if (gcs)
        setenv("PRISM_ADDRESS", gcs, 1);
    if (wc.token)
        setenv("PRISM_TOKEN", wc.token, 1);
    if (wc.nats_url)
        setenv("PRISM_NATS_URL", wc.nats_url, 1);
    if (store_socket)
        setenv("PRISM_STORE_SOCKET", store_socket, 1);
    if (store_address) /* where borrowers on other nodes pull this node's objects from */
        setenv("PRISM_STORE_URL", store_address, 1);
    if (node_id)
        setenv("PRISM_NODE_ID", node_id, 1);
    char err[1024];
    if (prism_worker_run(&wc, err, sizeof err) == 0)
        return 0;
    LOG_ERROR("cannot start: %s", err);
    return -1;
}

int main(int argc, char **argv)
{
    /* Dataset tasks make and drop blocks of tens of MiB one after another.
     * Past glibc's mmap threshold (32 MiB at most by default) each is a
     * fresh mapping whose every page faults in, and its unmapping zaps
     * them again: that cost more than the work (bench/data/alltoall.sh,
     * groupby of 4 GiB: about 5 s, 2-2.5 s without it). Blocks up to
     * 64 MiB come from the heap, and up to 128 MiB of it freed stays for
     * the next task. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
    const prism_service_def def = {
        .name = "worker",
        .usage = "usage: prism-worker [options]\n\n"
                 "Runs tasks for owners that lease it (started by prism-nodeagent).",
        .options = options,
        .noptions = sizeof options / sizeof options[0],
        /* the node agent hands it the token only when the cluster has one */
        .token_optional = true,
        .configure = configure,
        .run = run,
    };
    return prism_service_main(&def, argc, argv);
}
