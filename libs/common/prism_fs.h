/* Small file-system helpers shared by the services and the CLI. */
#ifndef PRISM_FS_H
#define PRISM_FS_H

#include <stddef.h>
#include <sys/types.h>

/* Creates `path` and its missing parents with `mode`. Returns 0 or -1 (errno set). */
int prism_mkdir_p(const char *path, mode_t mode);

/* Writes a whole file through a temporary name and rename(2), so readers see
 * the old or the new content, never a part. Returns 0 or -1 (errno set). */
int prism_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* Reads a whole file of at most `max` bytes into a NUL-terminated heap buffer the
 * caller frees. Returns NULL on error (errno set; EFBIG when it is larger). */
char *prism_read_file(const char *path, size_t max, size_t *len_out);

/* Removes a directory tree. Returns 0 or -1. */
int prism_remove_tree(const char *path);

/* True when `name` is one safe path component: [A-Za-z0-9._-], not "." or "..",
 * 1 to 128 characters. Used before any user text becomes part of a path. */
int prism_safe_name(const char *name);

#endif
