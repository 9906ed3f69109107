/* Zip packages (libs/common/prism_zip.h) on any bytes: the check must give a
 * verdict, with a reason for a refusal, and what it calls safe must extract
 * (within a small size limit) into a directory of its own or be refused
 * with a reason: the node agent's path after the GCS's. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "prism_fs.h"
#include "prism_zip.h"

#define MAX_BYTES (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char dir[64];
    char err[512] = "";
    prism_zip_verdict v = prism_zip_check(data, size, MAX_BYTES, err, sizeof err);
    if (v != PRISM_ZIP_SAFE && v != PRISM_ZIP_UNSAFE && v != PRISM_ZIP_NOT_ZIP)
        abort();
    if (v != PRISM_ZIP_SAFE && !err[0]) {
        fprintf(stderr, "a refusal without a reason\n");
        abort();
    }
    if (v != PRISM_ZIP_SAFE)
        return 0;
    if (!dir[0])
        snprintf(dir, sizeof dir, "/tmp/prism-fuzz-zip-%d", (int)getpid());
    err[0] = '\0';
    if (prism_zip_extract(data, size, dir, MAX_BYTES, err, sizeof err) != 0 && !err[0]) {
        fprintf(stderr, "a failed extraction without a reason\n");
        abort();
    }
    prism_remove_tree(dir);
    return 0;
}
