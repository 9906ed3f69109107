/* The object store's Unix-socket protocol (prism_store_proto.h): a client's
 * byte stream parsed and run by the server's own dispatcher (os_server.c,
 * through os_server_feed) against a fresh store with a 1 MiB arena, so that
 * creates, puts, gets, pins and deletes meet eviction and spilling.
 * HELLO's reply (with the arena's descriptor) goes to a socket pair that is
 * closed afterwards. */
#include <sys/socket.h>

#include "store_fixture.h"

static char *dir;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    prism_log_init("fuzz", PRISM_LOG_ERROR);
    dir = fuzz_tmpdir("store");
    return dir ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    objectstore os;
    int sv[2];
    if (!fixture_open(&os, dir))
        return 0;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
        os_server_feed(&os, sv[0], data, size);
        close(sv[0]);
        close(sv[1]);
    }
    fixture_close(&os);
    return 0;
}
