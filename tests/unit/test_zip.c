/* Zip packages (libs/common/prism_zip.h) on archives built here with
 * libarchive's writer: what extracts inside its directory is safe and is
 * extracted with tame modes; names that leave it, links, special files and
 * archives over the size limit are refused with a reason, before or while
 * extracting, and nothing lands outside the directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>

#include "prism_fs.h"
#include "prism_zip.h"

typedef struct zip {
    unsigned char data[64 * 1024];
    size_t len;
    struct archive *a;
} zip;

static void zip_open(zip *z)
{
    z->a = archive_write_new();
    assert_int_equal(archive_write_set_format_zip(z->a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_memory(z->a, z->data, sizeof z->data, &z->len), ARCHIVE_OK);
}

/* One entry: a file with `body`, a directory (body NULL, no link), or a
 * symbolic link to `link`. */
static void add(zip *z, const char *name, mode_t type, int perm, const char *body, const char *link)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, perm);
    archive_entry_set_size(e, body ? (la_int64_t)strlen(body) : 0);
    if (link)
        archive_entry_set_symlink(e, link);
    assert_int_equal(archive_write_header(z->a, e), ARCHIVE_OK);
    if (body)
        assert_int_equal(archive_write_data(z->a, body, strlen(body)), (la_ssize_t)strlen(body));
    archive_entry_free(e);
}

static void zip_close(zip *z)
{
    assert_int_equal(archive_write_close(z->a), ARCHIVE_OK);
    archive_write_free(z->a);
}

static char *read_all(const char *path)
{
    size_t n;
    return prism_read_file(path, 1 << 20, &n);
}

static void test_safe_zip_extracts(void **state)
{
    zip z;
    zip_open(&z);
    add(&z, "sub/", AE_IFDIR, 0755, NULL, NULL);
    add(&z, "sub/data.txt", AE_IFREG, 04666, "some data\n", NULL);
    add(&z, "run.sh", AE_IFREG, 0755, "#!/bin/sh\necho ran\n", NULL);
    add(&z, "deep/er/file", AE_IFREG, 0600, "x", NULL); /* parents made as needed */
    zip_close(&z);
    assert_true(prism_zip_is_zip(z.data, z.len));
    char err[512] = "";
    assert_int_equal(prism_zip_check(z.data, z.len, 1 << 20, err, sizeof err), PRISM_ZIP_SAFE);

    char dir[] = "/tmp/prism-zip-XXXXXX", path[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/pkg", dir);
    if (prism_zip_extract(z.data, z.len, path, 1 << 20, err, sizeof err) != 0)
        fail_msg("extracting a safe zip failed: %s", err);
    struct stat st;
    snprintf(path, sizeof path, "%s/pkg/sub/data.txt", dir);
    char *text = read_all(path);
    assert_string_equal(text, "some data\n");
    free(text);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644); /* setuid and world-write gone */
    snprintf(path, sizeof path, "%s/pkg/run.sh", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_mode & S_IXUSR);
    snprintf(path, sizeof path, "%s/pkg/deep/er/file", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(prism_remove_tree(dir), 0);
}

/* `name` (of type `type`, linking to `link`) is refused by the check and by
 * the extraction, with `why` in the message, and nothing is written next to
 * the package directory. */
static void refused(const char *name, mode_t type, const char *link, const char *why)
{
    zip z;
    zip_open(&z);
    add(&z, "ok.txt", AE_IFREG, 0644, "fine", NULL);
    add(&z, name, type, 0644, type == AE_IFREG ? "payload" : NULL, link);
    zip_close(&z);
    char err[512] = "";
    assert_int_equal(prism_zip_check(z.data, z.len, 1 << 20, err, sizeof err), PRISM_ZIP_UNSAFE);
    if (!strstr(err, why))
        fail_msg("'%s': wanted '%s' in '%s'", name, why, err);

    char dir[] = "/tmp/prism-zip-XXXXXX", path[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/a/pkg", dir);
    assert_int_equal(prism_mkdir_p(path, 0700), 0);
    err[0] = '\0';
    assert_int_equal(prism_zip_extract(z.data, z.len, path, 1 << 20, err, sizeof err), -1);
    assert_non_null(strstr(err, why));
    snprintf(path, sizeof path, "%s/a/evil", dir);
    assert_int_not_equal(access(path, F_OK), 0);
    assert_int_equal(prism_remove_tree(dir), 0);
}

static void test_unsafe_entries(void **state)
{
    refused("../evil", AE_IFREG, NULL, "outside the package directory");
    refused("sub/../../evil", AE_IFREG, NULL, "outside the package directory");
    refused("/tmp/evil", AE_IFREG, NULL, "outside the package directory");
    refused("link", AE_IFLNK, "/etc/passwd", "is a link");
    refused("inside-link", AE_IFLNK, "ok.txt", "is a link");
    /* (No FIFO: libarchive writes none into a zip, and reads every zip entry
     * that is not a directory or a link as a regular file.) */
}

static void test_size_limit(void **state)
{
    static char big[8192];
    memset(big, 'a', sizeof big - 1);
    zip z;
    zip_open(&z);
    add(&z, "big.txt", AE_IFREG, 0644, big, NULL);
    zip_close(&z);
    char err[512] = "";
    assert_int_equal(prism_zip_check(z.data, z.len, 8191, err, sizeof err), PRISM_ZIP_SAFE);
    assert_int_equal(prism_zip_check(z.data, z.len, 4096, err, sizeof err), PRISM_ZIP_UNSAFE);
    assert_non_null(strstr(err, "more than 4096 bytes"));
    char dir[] = "/tmp/prism-zip-XXXXXX", path[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/pkg", dir);
    assert_int_equal(prism_zip_extract(z.data, z.len, path, 4096, err, sizeof err), -1);
    assert_non_null(strstr(err, "more than 4096 bytes"));
    assert_int_equal(prism_remove_tree(dir), 0);
}

static void test_not_zip(void **state)
{
    char err[512] = "";
    const char *text = "just some text, not an archive";
    assert_false(prism_zip_is_zip(text, strlen(text)));
    assert_int_equal(prism_zip_check(text, strlen(text), 1 << 20, err, sizeof err),
                     PRISM_ZIP_NOT_ZIP);
    assert_non_null(strstr(err, "not a zip archive"));
    /* A zip's signature and then garbage. */
    const char bad[] = "PK\003\004garbage that is no zip at all, not even close to one";
    assert_true(prism_zip_is_zip(bad, sizeof bad));
    assert_int_not_equal(prism_zip_check(bad, sizeof bad, 1 << 20, err, sizeof err),
                         PRISM_ZIP_SAFE);
}

int main(void)
{
    umask(022); /* the modes asserted are the extractor's, under the usual umask */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safe_zip_extracts),
        cmocka_unit_test(test_unsafe_entries),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_not_zip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
