/* prism_zip.h over libarchive: the archive is read from memory (libarchive's
 * seekable zip reader, which trusts the central directory), one entry at a
 * time, and each entry is judged before anything of it is written. */
#include "prism_zip.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "prism_tar.h"

#define NAME_MAX_LEN 4000

bool prism_zip_is_zip(const void *data, size_t len)
{
    const unsigned char *p = data;
    return len >= 4 && p[0] == 'P' && p[1] == 'K' &&
           ((p[2] == 3 && p[3] == 4) || (p[2] == 5 && p[3] == 6));
}

static struct archive *open_zip(const void *data, size_t len, char *err, size_t errlen)
{
    struct archive *a = archive_read_new();
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    archive_read_support_format_zip(a);
    if (!prism_zip_is_zip(data, len) || archive_read_open_memory(a, data, len) != ARCHIVE_OK) {
        snprintf(err, errlen, "not a zip archive%s%s", prism_zip_is_zip(data, len) ? ": " : "",
                 prism_zip_is_zip(data, len) ? archive_error_string(a) : "");
        archive_read_free(a);
        return NULL;
    }
    return a;
}

/* The entry's name, or NULL with err filled when the entry is refused. */
static const char *judge(struct archive_entry *e, char *err, size_t errlen)
{
    const char *name = archive_entry_pathname(e);
    if (!name || !*name || strlen(name) > NAME_MAX_LEN) {
        snprintf(err, errlen, "an entry has an empty, unreadable or too long name");
        return NULL;
    }
    if (!prism_tar_name_safe(name)) {
        snprintf(err, errlen, "'%.200s' would extract outside the package directory", name);
        return NULL;
    }
    mode_t type = archive_entry_filetype(e);
    if (type == AE_IFLNK || archive_entry_hardlink(e)) {
        snprintf(err, errlen, "'%.200s' is a link: a zip package holds files and directories only",
                 name);
        return NULL;
    }
    if (type != AE_IFREG && type != AE_IFDIR) {
        snprintf(err, errlen, "'%.200s' is a special file", name);
        return NULL;
    }
    if (archive_entry_is_encrypted(e)) {
        snprintf(err, errlen, "'%.200s' is encrypted", name);
        return NULL;
    }
    return name;
}

/* Adds `n` bytes to `*total`; false (err filled) past the limit. */
static bool within(uint64_t *total, uint64_t n, uint64_t max_bytes, char *err, size_t errlen)
{
    if (n > max_bytes || *total > max_bytes - n) {
        snprintf(err, errlen, "the package extracts to more than %llu bytes",
                 (unsigned long long)max_bytes);
        return false;
    }
    *total += n;
    return true;
}

/* The next entry: 1, 0 at the end, -1 (err filled) when unreadable, -2 when one too many. */
static int next_entry(struct archive *a, struct archive_entry **e, size_t *count, char *err,
                      size_t errlen)
{
    int rc = archive_read_next_header(a, e);
    if (rc == ARCHIVE_EOF)
        return 0;
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
        snprintf(err, errlen, "the zip archive is corrupt: %s", archive_error_string(a));
        return -1;
    }
    if (++*count > PRISM_ZIP_ENTRIES_MAX) {
        snprintf(err, errlen, "the package has more than %d entries", PRISM_ZIP_ENTRIES_MAX);
        return -2;
    }
    return 1;
}

prism_zip_verdict prism_zip_check(const void *data, size_t len, uint64_t max_bytes, char *err,
                                  size_t errlen)
{
    struct archive *a = open_zip(data, len, err, errlen);
    if (!a)
        return PRISM_ZIP_NOT_ZIP;
    prism_zip_verdict v = PRISM_ZIP_SAFE;
    struct archive_entry *e;
    size_t count = 0;
    uint64_t total = 0;
    int rc;
    while ((rc = next_entry(a, &e, &count, err, errlen)) == 1) {
        uint64_t size = archive_entry_size_is_set(e) ? (uint64_t)archive_entry_size(e) : 0;
        if (!judge(e, err, errlen) || !within(&total, size, max_bytes, err, errlen))
            break;
    }
    if (rc != 0)
        v = rc == -1 ? PRISM_ZIP_NOT_ZIP : PRISM_ZIP_UNSAFE;
    archive_read_free(a);
    return v;
}

/* Copies the entry's data, counting it against the limit. */
static int copy_data(struct archive *in, struct archive *out, uint64_t *total, uint64_t max_bytes,
                     char *err, size_t errlen)
{
    const void *buf;
    size_t size;
    la_int64_t offset;
    int rc;
    while ((rc = archive_read_data_block(in, &buf, &size, &offset)) == ARCHIVE_OK) {
        if (!within(total, size, max_bytes, err, errlen))
            return -1;
        if (archive_write_data_block(out, buf, size, offset) != ARCHIVE_OK) {
            snprintf(err, errlen, "writing the package failed: %s", archive_error_string(out));
            return -1;
        }
    }
    if (rc != ARCHIVE_EOF) {
        snprintf(err, errlen, "the zip archive is corrupt: %s", archive_error_string(in));
        return -1;
    }
    return 0;
}

/* One entry written under `dir`, by its checked name and with tame modes. */
static int write_entry(struct archive *in, struct archive *out, struct archive_entry *e,
                       const char *dir, uint64_t *total, uint64_t max_bytes, char *err,
                       size_t errlen)
{
    const char *name = judge(e, err, errlen);
    if (!name)
        return -1;
    char path[NAME_MAX_LEN + 512];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        snprintf(err, errlen, "the package directory's path is too long");
        return -1;
    }
    name = path + strlen(dir) + 1; /* the entry's own copy goes with the next line */
    bool is_dir = archive_entry_filetype(e) == AE_IFDIR;
    archive_entry_set_pathname(e, path);
    archive_entry_set_perm(e, is_dir || (archive_entry_perm(e) & 0111) ? 0755 : 0644);
    if (archive_write_header(out, e) != ARCHIVE_OK) {
        snprintf(err, errlen, "cannot extract '%.200s': %s", name, archive_error_string(out));
        return -1;
    }
    if (!is_dir && copy_data(in, out, total, max_bytes, err, errlen) != 0)
        return -1;
    if (archive_write_finish_entry(out) != ARCHIVE_OK) {
        snprintf(err, errlen, "cannot extract '%.200s': %s", name, archive_error_string(out));
        return -1;
    }
    return 0;
}

int prism_zip_extract(const void *data, size_t len, const char *dir, uint64_t max_bytes, char *err,
                      size_t errlen)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    struct archive *in = open_zip(data, len, err, errlen);
    struct archive *out = in ? archive_write_disk_new() : NULL;
    if (!out) {
        archive_read_free(in);
        return -1;
    }
    /* Belt and braces, besides judge(): libarchive refuses ".." too. Links
     * need no guard, none is ever made in the fresh directory; the path
     * written is `dir`/name, absolute when `dir` is. Owners and times are
     * not restored. */
    archive_write_disk_set_options(out, ARCHIVE_EXTRACT_SECURE_NODOTDOT);
    struct archive_entry *e;
    size_t count = 0;
    uint64_t total = 0;
    int rc;
    while ((rc = next_entry(in, &e, &count, err, errlen)) == 1)
        if (write_entry(in, out, e, dir, &total, max_bytes, err, errlen) != 0)
            break;
    if (archive_write_close(out) != ARCHIVE_OK && rc == 0) {
        snprintf(err, errlen, "writing the package failed: %s", archive_error_string(out));
        rc = -1;
    }
    archive_write_free(out);
    archive_read_free(in);
    return rc == 0 ? 0 : -1;
}
