/* Checks a working-directory package (a tar archive, plain or gzip'd) before
 * anything extracts it: the GCS when it is uploaded, the node agent before it
 * runs tar on it. The archive is read, never written out, and only its
 * headers are kept in memory. */
#ifndef PRISM_TAR_H
#define PRISM_TAR_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    PRISM_TAR_SAFE = 0,   /* a tar archive that extracts only inside its directory */
    PRISM_TAR_UNSAFE = 1, /* a tar archive with a member refused (err says which, why) */
    PRISM_TAR_NOT_TAR = 2 /* neither a ustar/GNU/pax archive nor one gzip'd (err says why) */
} prism_tar_verdict;

/* What a safe archive holds: regular files, directories, and links that stay
 * inside the directory it is extracted to. Refused: absolute names or names
 * with a ".." component; devices, FIFOs and other special members; symbolic
 * links with an absolute target or a ".." after the first component, or more
 * leading ".." than the link's own depth; hard links to a name that is not
 * safe; any member under the name of a symbolic link of the archive (tar
 * would follow the link). Mode bits are not judged here: the extractor drops
 * setuid, setgid, sticky and world-write bits. `gzipped` tells which. */
prism_tar_verdict prism_tar_check(const void *data, size_t len, bool *gzipped, char *err,
                                  size_t errlen);

/* True when `name` (a member's path inside the package) is relative and has
 * no ".." component. */
bool prism_tar_name_safe(const char *name);

/* True when a symbolic link named `name` (relative to the package's root)
 * with `target` resolves inside the root by the rule above. */
bool prism_tar_link_safe(const char *name, const char *target);

#endif
