/* prism-worker: runs tasks pushed by owners over direct connections.
 * The node agent starts it (docs/tasks.md); it is not started by hand. */
#include <stdio.h>
#include <stdlib.h>

#include "prism_config.h"
#include "prism_log.h"
#include "prism_signal.h"
#include "worker.h"

static const char usage[] = "usage: prism-worker [options]\n\n"
                            "Runs tasks for owners that lease it (started by prism-nodeagent).";

int main(int argc, char **argv)
{
    prism_signal_block();
    char *worker_id, *node_id, *socket_path, *host, *store_socket, *store_address, *gcs, *nats,
        *package_dir, *token, *token_file, *log_level;
    int64_t ready_fd;
    prism_option opts[] = {
        {"worker-id", PRISM_OPT_STRING, &worker_id, "worker", "this worker's ID"},
        {"node-id", PRISM_OPT_STRING, &node_id, "", "the node's ID (for lease returns)"},
        {"socket", PRISM_OPT_STRING, &socket_path, NULL, "Unix socket to listen on (required)"},
        {"host", PRISM_OPT_STRING, &host, "127.0.0.1", "TCP address to listen on"},
        {"store-socket", PRISM_OPT_STRING, &store_socket, NULL, "the node's object store socket"},
        {"store-address", PRISM_OPT_STRING, &store_address, NULL, "the node's object store URL"},
        {"gcs-address", PRISM_OPT_STRING, &gcs, NULL, "the GCS URL (packages, nested tasks)"},
        {"nats-url", PRISM_OPT_STRING, &nats, NULL, "NATS server"},
        {"package-dir", PRISM_OPT_STRING, &package_dir, "./packages", "package cache directory"},
        {"token", PRISM_OPT_STRING, &token, NULL, "cluster token"},
        {"token-file", PRISM_OPT_STRING, &token_file, NULL, "file holding the cluster token"},
        {"ready-fd", PRISM_OPT_INT, &ready_fd, "-1", "write the listening addresses here"},
        {"log-level", PRISM_OPT_STRING, &log_level, "info", "debug, info, warn or error"},
    };
    size_t n = sizeof opts / sizeof opts[0];
    char err[1024];
    char *tok = NULL;
    prism_log_level level = PRISM_LOG_INFO;
    int rc = prism_config_parse(opts, n, argc, argv, NULL, err, sizeof err);
    if (rc == PRISM_CONFIG_HELP) {
        prism_config_print_help(stdout, opts, n, usage);
        prism_config_free(opts, n);
        return 0;
    }
    if (rc == PRISM_CONFIG_OK && !socket_path) {
        snprintf(err, sizeof err, "--socket is required");
        rc = PRISM_CONFIG_ERROR;
    }
    if (rc == PRISM_CONFIG_OK && prism_log_level_parse(log_level, &level) != 0) {
        snprintf(err, sizeof err, "--log-level: '%s' is not debug, info, warn or error", log_level);
        rc = PRISM_CONFIG_ERROR;
    }
    if (rc == PRISM_CONFIG_OK && prism_config_token(&tok, token, token_file, 1, err, sizeof err) != 0)
        rc = PRISM_CONFIG_ERROR;
    if (rc != PRISM_CONFIG_OK) {
        fprintf(stderr, "prism-worker: %s\n", err);
        prism_config_free(opts, n);
        return 2;
    }
    prism_log_init("worker", level);
    /* Nested tasks connect through the same settings. */
    if (gcs)
        setenv("PRISM_ADDRESS", gcs, 1);
    if (tok)
        setenv("PRISM_TOKEN", tok, 1);
    if (nats)
        setenv("PRISM_NATS_URL", nats, 1);
    if (store_socket)
        setenv("PRISM_STORE_SOCKET", store_socket, 1);
    if (node_id)
        setenv("PRISM_NODE_ID", node_id, 1);
    prism_worker_config cfg = {worker_id, node_id, socket_path, host, store_socket, store_address,
                               gcs, nats, tok, package_dir, (int)ready_fd};
    int status = prism_worker_run(&cfg, err, sizeof err);
    if (status != 0)
        LOG_ERROR("cannot start: %s", err);
    free(tok);
    prism_config_free(opts, n);
    return status == 0 ? 0 : 1;
}
