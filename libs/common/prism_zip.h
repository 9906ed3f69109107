/* Working-directory packages as zip archives, the form Ray's job clients
 * upload (`ray job submit --working-dir DIR`): checked by the GCS when one is
 * uploaded and by the node agent before it extracts one, read with
 * libarchive from memory.
 *
 * The rule is the tar packages' (prism_tar.h), made stricter because Ray's
 * zips never hold links: every entry is a regular file or a directory with a
 * relative name without a ".." component. Refused: absolute names, ".."
 * components, symbolic and hard links, devices, FIFOs and other special
 * entries, encrypted entries, more than PRISM_ZIP_ENTRIES_MAX entries, and
 * more than `max_bytes` once extracted (a "zip bomb"). */
#ifndef PRISM_ZIP_H
#define PRISM_ZIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PRISM_ZIP_ENTRIES_MAX 65536
/* What the GCS and the node agent allow a zip to extract to. */
#define PRISM_ZIP_BYTES_MAX ((uint64_t)2 << 30)

typedef enum {
    PRISM_ZIP_SAFE = 0,   /* extracts only inside its directory, within the limits */
    PRISM_ZIP_UNSAFE = 1, /* an entry refused, or over a limit (err says which, why) */
    PRISM_ZIP_NOT_ZIP = 2 /* not a zip archive libarchive can read (err says why) */
} prism_zip_verdict;

/* Whether the bytes start as a zip archive does (a local file header, or the
 * end record of an empty archive). */
bool prism_zip_is_zip(const void *data, size_t len);

/* Reads every entry's header (not the contents): the sizes summed are the
 * sizes the archive declares; prism_zip_extract counts what it writes. */
prism_zip_verdict prism_zip_check(const void *data, size_t len, uint64_t max_bytes, char *err,
                                  size_t errlen);

/* Extracts into the directory `dir` (made if missing), checking each entry as
 * prism_zip_check does and stopping past `max_bytes` written. Files are made
 * 0644, or 0755 when the archive marks them executable; directories 0755.
 * Returns 0, or -1 with err filled (`dir` may then hold part of the archive:
 * the caller removes it). */
int prism_zip_extract(const void *data, size_t len, const char *dir, uint64_t max_bytes, char *err,
                      size_t errlen);

#endif
