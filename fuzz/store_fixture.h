/* An object store (services/objectstore) without its sockets, for the
 * store_proto and store_http targets: a small arena, spilling to a
 * temporary directory, and the server's state around it. */
#ifndef PRISM_FUZZ_STORE_FIXTURE_H
#define PRISM_FUZZ_STORE_FIXTURE_H

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake.h"
#include "objectstore.h"
#include "prism_fs.h"
#include "prism_log.h"

#define FIXTURE_ARENA (1u << 20)

static void fixture_on_event(void *ud, os_event ev, const os_object *o)
{
    if (ev == OS_EV_ADDED)
        os_server_sealed(ud, o);
}

/* A fresh store in `os` spilling under `dir`; false when it cannot be made. */
static bool fixture_open(objectstore *os, const char *dir)
{
    memset(os, 0, sizeof *os);
    os->listen_fd = os->epfd = os->sig_fd = os->wake_fd = -1;
    os->node_id = "0123456789abcdef0123456789abcdef";
    os->token = "";
    os->max_put = FIXTURE_ARENA;
    pthread_cond_init(&os->pull_cv, NULL);
    os_store_config cfg = {.capacity = FIXTURE_ARENA,
                           .spill_dir = dir,
                           .spill_batch = 4096,
                           .io_inline = true, /* a run is one thread's, and repeatable */
                           .on_event = fixture_on_event,
                           .ud = os};
    char err[256];
    return os_store_init(&os->store, &cfg, err, sizeof err) == 0;
}

static void fixture_close(objectstore *os)
{
    os_store_destroy(&os->store);
    pthread_cond_destroy(&os->pull_cv);
}

#endif
