/* The package check (libs/common/prism_tar.h) on archives built here, one
 * ustar header at a time: what extracts inside its directory is safe, what
 * could write or point outside it, or make special files, is refused with a
 * reason, and what is no tar archive is told apart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "prism_tar.h"

#define BLOCK 512

typedef struct tar {
    unsigned char data[16 * BLOCK];
    size_t len;
} tar;

/* Appends one member: a header (and `body` in blocks for a regular file). */
static void add(tar *t, const char *name, char type, const char *link, const char *body)
{
    unsigned char *h = t->data + t->len;
    memset(h, 0, BLOCK);
    size_t n = body ? strlen(body) : 0;
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 108, 8, "%07o", 0);
    snprintf((char *)h + 116, 8, "%07o", 0);
    snprintf((char *)h + 124, 12, "%011zo", n);
    snprintf((char *)h + 136, 12, "%011o", 0);
    h[156] = (unsigned char)type;
    if (link)
        snprintf((char *)h + 157, 100, "%s", link);
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < BLOCK; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    t->len += BLOCK;
    if (n) {
        memset(t->data + t->len, 0, (n + BLOCK - 1) / BLOCK * BLOCK);
        memcpy(t->data + t->len, body, n);
        t->len += (n + BLOCK - 1) / BLOCK * BLOCK;
    }
}

static prism_tar_verdict check(tar *t, char *err, size_t n)
{
    memset(t->data + t->len, 0, 2 * BLOCK); /* the end: two zero blocks */
    bool gz = true;
    prism_tar_verdict v = prism_tar_check(t->data, t->len + 2 * BLOCK, &gz, err, n);
    assert_false(gz);
    return v;
}

static void test_safe_archive(void **state)
{
    tar t = {.len = 0};
    char err[256] = "";
    add(&t, "run.sh", '0', NULL, "echo hi\n");
    add(&t, "lib/", '5', NULL, NULL);
    add(&t, "lib/a.txt", '0', NULL, "a");
    add(&t, "lib/link", '2', "../run.sh", NULL); /* up one from lib/: still inside */
    add(&t, "hard", '1', "lib/a.txt", NULL);
    assert_int_equal(check(&t, err, sizeof err), PRISM_TAR_SAFE);
}

static void refused(const char *name, char type, const char *link, const char *why)
{
    tar t = {.len = 0};
    char err[256] = "";
    add(&t, "ok.txt", '0', NULL, "fine");
    add(&t, name, type, link, type == '0' ? "x" : NULL);
    assert_int_equal(check(&t, err, sizeof err), PRISM_TAR_UNSAFE);
    if (!strstr(err, name)) /* the refusal names the member */
        fail_msg("%s (%s): '%s' does not name it", name, why, err);
}

static void test_unsafe_members(void **state)
{
    refused("/etc/passwd", '0', NULL, "absolute name");
    refused("../escape", '0', NULL, "climbs out");
    refused("a/../../escape", '0', NULL, "climbs out midway");
    refused("evil", '2', "/etc/shadow", "absolute link");
    refused("deep/evil", '2', "../../etc", "link above the root");
    refused("hard", '1', "../outside", "hard link outside");
    refused("dev", '3', NULL, "character device");
    refused("blk", '4', NULL, "block device");
    refused("fifo", '6', NULL, "FIFO");
}

static void test_member_under_a_link(void **state)
{
    tar t = {.len = 0};
    char err[256] = "";
    add(&t, "d", '2', "sub", NULL); /* inside, but tar would write through it */
    add(&t, "d/file", '0', NULL, "x");
    assert_int_equal(check(&t, err, sizeof err), PRISM_TAR_UNSAFE);
}

static void test_not_tar(void **state)
{
    char err[256] = "";
    bool gz = false;
    const char elf[] = "\x7f"
                       "ELF this is a task library, not an archive";
    assert_int_equal(prism_tar_check(elf, sizeof elf, &gz, err, sizeof err), PRISM_TAR_NOT_TAR);
    assert_true(err[0] != '\0');
}

static void test_name_rules(void **state)
{
    assert_true(prism_tar_name_safe("a/b/c"));
    assert_true(prism_tar_name_safe("a..b"));
    assert_false(prism_tar_name_safe("/a"));
    assert_false(prism_tar_name_safe(".."));
    assert_false(prism_tar_name_safe("a/../b"));
    assert_true(prism_tar_link_safe("a/l", "../b"));
    assert_false(prism_tar_link_safe("l", "../b"));
    assert_false(prism_tar_link_safe("a/l", "/b"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safe_archive),        cmocka_unit_test(test_unsafe_members),
        cmocka_unit_test(test_member_under_a_link), cmocka_unit_test(test_not_tar),
        cmocka_unit_test(test_name_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
