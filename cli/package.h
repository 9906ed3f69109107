/* Packages: a file or a directory (archived with tar -czf) uploaded to the GCS,
 * named by the sha256 of its bytes. */
#ifndef PRISM_CLI_PACKAGE_H
#define PRISM_CLI_PACKAGE_H

#include <stddef.h>

#include "client.h"
#include "prism_sha256.h"

/* Uploads `path` and writes the package's sha256 (64 hex digits) to `sha`.
 * Returns 0, or -1 after printing an error. */
int package_upload(cli_client *c, const char *path, char sha[PRISM_SHA256_HEX_LEN + 1]);

#endif
