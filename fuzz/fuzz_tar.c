/* The package check (libs/common/prism_tar.h) on any bytes, plain or as if
 * gzip'd: it must give a verdict, never read outside the archive, and call
 * safe only what names stay inside the package directory. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prism_tar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool gz = false;
    char err[512] = "";
    prism_tar_verdict v = prism_tar_check(data, size, &gz, err, sizeof err);
    if (v != PRISM_TAR_SAFE && v != PRISM_TAR_UNSAFE && v != PRISM_TAR_NOT_TAR)
        abort();
    if (v != PRISM_TAR_SAFE && !err[0]) {
        fprintf(stderr, "a refusal without a reason\n");
        abort();
    }
    /* The name rules on the same bytes, cut in two at the first NUL. */
    char *name = strndup((const char *)data, size);
    if (name) {
        size_t n = strlen(name);
        const char *target = n < size ? (const char *)data + n + 1 : "";
        char *t = strndup(target, size - (n < size ? n + 1 : n));
        if (t) {
            bool safe = prism_tar_name_safe(name);
            if (safe && (name[0] == '/' || !strcmp(name, "..") || !strncmp(name, "../", 3) ||
                         strstr(name, "/../"))) {
                fprintf(stderr, "an escaping name judged safe: %s\n", name);
                abort();
            }
            if (safe && prism_tar_link_safe(name, t) && t[0] == '/') {
                fprintf(stderr, "an absolute link judged safe: %s -> %s\n", name, t);
                abort();
            }
        }
        free(t);
    }
    free(name);
    return 0;
}
