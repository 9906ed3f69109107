/* Unit tests of libs/common: IDs, configuration, SHA-256, capped buffers,
 * metrics rendering and the file-system helpers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "prism_buf.h"
#include "prism_config.h"
#include "prism_fs.h"
#include "prism_id.h"
#include "prism_json_text.h"
#include "prism_metrics.h"
#include "prism_net.h"
#include "prism_sha256.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---------- IDs ---------- */

static void test_id_hex_round_trip(void **state)
{
    prism_id a, b;
    char hex[PRISM_ID_HEX_LEN + 1];
    prism_id_random(&a);
    assert_false(prism_id_is_nil(&a));
    prism_id_to_hex(&a, hex);
    assert_int_equal(strlen(hex), PRISM_ID_HEX_LEN);
    for (size_t i = 0; i < PRISM_ID_HEX_LEN; i++)
        assert_non_null(strchr("0123456789abcdef", hex[i]));
    assert_int_equal(prism_id_from_hex(&b, hex), 0);
    assert_true(prism_id_equal(&a, &b));

    /* Upper case is read too. */
    assert_int_equal(prism_id_from_hex(&b, "00112233445566778899AABBCCDDEEFF"), 0);
    prism_id_to_hex(&b, hex);
    assert_string_equal(hex, "00112233445566778899aabbccddeeff");

    prism_id nil = {{0}};
    assert_true(prism_id_is_nil(&nil));
    assert_false(prism_id_equal(&nil, &a));
}

static void test_is_hex(void **state)
{
    assert_true(prism_is_hex("0123456789abcdef", 16));
    assert_true(prism_is_hex("", 0));
    assert_false(prism_is_hex("0123456789abcdef", 15)); /* too long */
    assert_false(prism_is_hex("0123456789abcde", 16));  /* too short */
    assert_false(prism_is_hex("0123456789ABCDEF", 16)); /* upper case */
    assert_false(prism_is_hex("0123456789abcdeg", 16));
    assert_false(prism_is_hex(NULL, 0));
}

static void json_text_is(const char *in, const char *want)
{
    prism_buf b;
    prism_buf_init(&b, 1024);
    assert_int_equal(prism_json_string(&b, in), 0);
    assert_string_equal(b.data, want);
    prism_buf_free(&b);
}

static void test_json_string(void **state)
{
    json_text_is("plain", "\"plain\"");
    json_text_is(NULL, "\"\"");
    json_text_is("a\"b\\c", "\"a\\\"b\\\\c\"");
    json_text_is("tab\there\n", "\"tab\\u0009here\\u000a\"");
    json_text_is("caf\xc3\xa9", "\"caf\xc3\xa9\""); /* UTF-8 stays */
    json_text_is("bad\xff\xc3x", "\"bad??x\"");     /* not UTF-8: one ? a byte */
    json_text_is("\xed\xa0\x80", "\"???\"");        /* a surrogate */
    prism_buf small;
    prism_buf_init(&small, 4);
    assert_int_equal(prism_json_string(&small, "too long"), -1);
    prism_buf_free(&small);
    char text[] = "ok\xfe!";
    prism_utf8_scrub(text, strlen(text));
    assert_string_equal(text, "ok?!");
}

static void test_id_bad_hex(void **state)
{
    prism_id id;
    assert_int_equal(prism_id_from_hex(&id, NULL), -1);
    assert_int_equal(prism_id_from_hex(&id, ""), -1);
    assert_int_equal(prism_id_from_hex(&id, "00112233445566778899aabbccddeef"), -1);   /* 31 */
    assert_int_equal(prism_id_from_hex(&id, "00112233445566778899aabbccddeeff0"), -1); /* 33 */
    assert_int_equal(prism_id_from_hex(&id, "00112233445566778899aabbccddeefg"), -1);
    assert_int_equal(prism_id_from_hex(&id, "0011223344556677 899aabbccddeeff"), -1);
    assert_int_equal(prism_id_from_hex(&id, "-0112233445566778899aabbccddeeff"), -1);
    prism_object_id oid;
    assert_int_equal(prism_object_id_from_hex(&oid, "00112233445566778899aabbccddeeff"), -1);
}

static void test_object_id(void **state)
{
    prism_task_id task, back;
    prism_id_random(&task);
    prism_object_id oid, oid2;
    prism_object_id_make(&oid, &task, PRISM_PUT_INDEX_BASE + 1);
    prism_object_id_task(&oid, &back);
    assert_true(prism_id_equal(&task, &back));
    assert_int_equal(prism_object_id_index(&oid), PRISM_PUT_INDEX_BASE + 1);

    char hex[PRISM_OBJECT_ID_HEX_LEN + 1], task_hex[PRISM_ID_HEX_LEN + 1];
    prism_object_id_to_hex(&oid, hex);
    prism_id_to_hex(&task, task_hex);
    assert_int_equal(strlen(hex), PRISM_OBJECT_ID_HEX_LEN);
    /* The task's ID, then the index big-endian. */
    assert_memory_equal(hex, task_hex, PRISM_ID_HEX_LEN);
    assert_string_equal(hex + PRISM_ID_HEX_LEN, "80000001");

    assert_int_equal(prism_object_id_from_hex(&oid2, hex), 0);
    assert_memory_equal(oid.b, oid2.b, PRISM_OBJECT_ID_BYTES);
    prism_object_id_make(&oid, &task, 0);
    assert_int_equal(prism_object_id_index(&oid), 0);
    prism_object_id_make(&oid, &task, UINT32_MAX);
    assert_int_equal(prism_object_id_index(&oid), UINT32_MAX);
}

/* ---------- configuration ---------- */

typedef struct cfg {
    char *listen;
    int64_t port;
    bool verbose;
    int64_t mem;
    double ratio;
    prism_option opts[5];
} cfg;

static void cfg_init(cfg *c)
{
    memset(c, 0, sizeof *c);
    prism_option opts[] = {
        {"listen", PRISM_OPT_STRING, &c->listen, "127.0.0.1", "address to bind"},
        {"port", PRISM_OPT_INT, &c->port, "8265", "port to bind"},
        {"verbose", PRISM_OPT_BOOL, &c->verbose, "false", "say more"},
        {"object-memory", PRISM_OPT_SIZE, &c->mem, "1GiB", "object store size"},
        {"ratio", PRISM_OPT_DOUBLE, &c->ratio, NULL, "a ratio"},
    };
    memcpy(c->opts, opts, sizeof opts);
}

/* Each parse starts over: free what the last one set (the table is reusable). */
static int cfg_parse(cfg *c, int argc, char **argv, int *rest, char *err)
{
    prism_config_free(c->opts, ARRAY_LEN(c->opts));
    return prism_config_parse(c->opts, ARRAY_LEN(c->opts), argc, argv, rest, err, 256);
}

static void unset_env(void)
{
    unsetenv("PRISM_LISTEN");
    unsetenv("PRISM_PORT");
    unsetenv("PRISM_VERBOSE");
    unsetenv("PRISM_OBJECT_MEMORY");
    unsetenv("PRISM_RATIO");
}

static int env_setup(void **state)
{
    unset_env();
    return 0;
}

static int env_teardown(void **state)
{
    unset_env();
    return 0;
}

static void test_config_defaults(void **state)
{
    cfg c;
    char err[256] = "";
    char *argv[] = {"prog", NULL};
    cfg_init(&c);
    c.ratio = 0.25; /* no default: left untouched */
    assert_int_equal(cfg_parse(&c, 1, argv, NULL, err), PRISM_CONFIG_OK);
    assert_string_equal(c.listen, "127.0.0.1");
    assert_int_equal(c.port, 8265);
    assert_false(c.verbose);
    assert_int_equal(c.mem, 1LL << 30);
    assert_true(c.ratio == 0.25);
    prism_config_free(c.opts, ARRAY_LEN(c.opts));
    assert_null(c.listen);
}

static void test_config_env_and_flags(void **state)
{
    cfg c;
    char err[256] = "";
    setenv("PRISM_LISTEN", "0.0.0.0", 1);
    setenv("PRISM_PORT", "9000", 1);
    setenv("PRISM_OBJECT_MEMORY", "512MiB", 1);
    setenv("PRISM_VERBOSE", "yes", 1);
    char *argv0[] = {"prog", NULL};
    cfg_init(&c);
    assert_int_equal(cfg_parse(&c, 1, argv0, NULL, err), PRISM_CONFIG_OK);
    assert_string_equal(c.listen, "0.0.0.0");
    assert_int_equal(c.port, 9000);
    assert_int_equal(c.mem, 512LL << 20);
    assert_true(c.verbose);

    /* Flags win over the environment, in both spellings. */
    char *argv[] = {
        "prog", "--port",          "8000", "--listen=::1", "--object-memory=2GiB", "--ratio",
        "0.5",  "--verbose=false", NULL};
    assert_int_equal(cfg_parse(&c, 8, argv, NULL, err), PRISM_CONFIG_OK);
    assert_int_equal(c.port, 8000);
    assert_string_equal(c.listen, "::1");
    assert_int_equal(c.mem, 2LL << 30);
    assert_true(c.ratio == 0.5);
    assert_false(c.verbose);
    prism_config_free(c.opts, ARRAY_LEN(c.opts));
}

static void test_config_origins(void **state)
{
    cfg c;
    char err[256] = "";
    prism_opt_origin from[5];
    setenv("PRISM_PORT", "9000", 1);
    setenv("PRISM_LISTEN", "0.0.0.0", 1);
    char *argv[] = {"prog", "--listen", "::1", "--verbose", NULL};
    cfg_init(&c);
    assert_int_equal(prism_config_parse_from(c.opts, ARRAY_LEN(c.opts), 4, argv, NULL, from, err,
                                             sizeof err),
                     PRISM_CONFIG_OK);
    assert_int_equal(from[0], PRISM_OPT_FROM_FLAG); /* listen: the flag beat the variable */
    assert_int_equal(from[1], PRISM_OPT_FROM_ENV);  /* port */
    assert_int_equal(from[2], PRISM_OPT_FROM_FLAG); /* verbose, a bare flag */
    assert_int_equal(from[3], PRISM_OPT_FROM_DEFAULT);
    assert_int_equal(from[4], PRISM_OPT_FROM_DEFAULT); /* ratio: no default, unset */
    prism_config_free(c.opts, ARRAY_LEN(c.opts));
}

static void test_config_bool_bare_flag(void **state)
{
    cfg c;
    char err[256] = "";
    char *argv[] = {"prog", "--verbose", "--port", "1", NULL};
    cfg_init(&c);
    assert_int_equal(cfg_parse(&c, 4, argv, NULL, err), PRISM_CONFIG_OK);
    assert_true(c.verbose);
    assert_int_equal(c.port, 1);
    char *argv2[] = {"prog", "--verbose=maybe", NULL};
    assert_int_equal(cfg_parse(&c, 2, argv2, NULL, err), PRISM_CONFIG_ERROR);
    assert_non_null(strstr(err, "--verbose"));
    prism_config_free(c.opts, ARRAY_LEN(c.opts));
}

static void test_config_errors(void **state)
{
    cfg c;
    char err[256] = "";
    cfg_init(&c);
    char *unknown[] = {"prog", "--nope", "1", NULL};
    assert_int_equal(cfg_parse(&c, 3, unknown, NULL, err), PRISM_CONFIG_ERROR);
    assert_non_null(strstr(err, "unknown flag '--nope'"));
    char *missing[] = {"prog", "--port", NULL};
    assert_int_equal(cfg_parse(&c, 2, missing, NULL, err), PRISM_CONFIG_ERROR);
    assert_non_null(strstr(err, "needs a value"));
    char *notint[] = {"prog", "--port", "80x", NULL};
    assert_int_equal(cfg_parse(&c, 3, notint, NULL, err), PRISM_CONFIG_ERROR);
    assert_non_null(strstr(err, "not an integer"));
    char *badsize[] = {"prog", "--object-memory=lots", NULL};
    assert_int_equal(cfg_parse(&c, 2, badsize, NULL, err), PRISM_CONFIG_ERROR);
    char *leftover[] = {"prog", "run", NULL};
    assert_int_equal(cfg_parse(&c, 2, leftover, NULL, err), PRISM_CONFIG_ERROR);
    assert_non_null(strstr(err, "unexpected argument 'run'"));
    /* A bad environment value is an error too. */
    setenv("PRISM_PORT", "eighty", 1);
    char *argv0[] = {"prog", NULL};
    assert_int_equal(cfg_parse(&c, 1, argv0, NULL, err), PRISM_CONFIG_ERROR);
    assert_non_null(strstr(err, "eighty"));
    prism_config_free(c.opts, ARRAY_LEN(c.opts));
}

static void test_config_rest(void **state)
{
    cfg c;
    char err[256] = "";
    int rest = -1;
    cfg_init(&c);
    char *argv[] = {"prog", "--port", "1", "submit", "--port", "2", NULL};
    assert_int_equal(cfg_parse(&c, 6, argv, &rest, err), PRISM_CONFIG_OK);
    assert_int_equal(rest, 3);
    assert_int_equal(c.port, 1);
    char *dashdash[] = {"prog", "--verbose", "--", "--port", NULL};
    assert_int_equal(cfg_parse(&c, 4, dashdash, &rest, err), PRISM_CONFIG_OK);
    assert_int_equal(rest, 3);
    assert_int_equal(c.port, 8265);
    char *none[] = {"prog", NULL};
    assert_int_equal(cfg_parse(&c, 1, none, &rest, err), PRISM_CONFIG_OK);
    assert_int_equal(rest, 1);
    prism_config_free(c.opts, ARRAY_LEN(c.opts));
}

static void test_config_help(void **state)
{
    cfg c;
    char err[256] = "";
    cfg_init(&c);
    char *argv[] = {"prog", "--port", "1", "--help", NULL};
    assert_int_equal(cfg_parse(&c, 4, argv, NULL, err), PRISM_CONFIG_HELP);
    char *argv2[] = {"prog", "-h", NULL};
    assert_int_equal(cfg_parse(&c, 2, argv2, NULL, err), PRISM_CONFIG_HELP);
    prism_config_free(c.opts, ARRAY_LEN(c.opts));

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    prism_config_print_help(f, c.opts, ARRAY_LEN(c.opts), "usage: prog [options]");
    fclose(f);
    assert_non_null(strstr(text, "usage: prog [options]"));
    assert_non_null(strstr(text, "--object-memory"));
    assert_non_null(strstr(text, "PRISM_OBJECT_MEMORY, default: 1GiB"));
    assert_non_null(strstr(text, "[PRISM_RATIO]"));
    assert_non_null(strstr(text, "--help"));
    free(text);
}

static void test_parse_size(void **state)
{
    static const struct {
        const char *text;
        int64_t want;
    } good[] = {{"0", 0},
                {"4096", 4096},
                {"1K", 1024},
                {"2GiB", 2LL << 30},
                {"2gib", 2LL << 30},
                {"512MiB", 512LL << 20},
                {"1.5G", 3LL << 29},
                {"3 TiB", 3LL << 40},
                {"10b", 10}};
    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        int64_t v = -1;
        assert_int_equal(prism_parse_size(good[i].text, &v), 0);
        assert_int_equal(v, good[i].want);
    }
    static const char *const bad[] = {"", "GiB", "-1", "12XB", "1e30", "inf", "nan", "2 GiB x"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int64_t v = 42;
        assert_int_equal(prism_parse_size(bad[i], &v), -1);
        assert_int_equal(v, 42);
    }
}

/* ---------- SHA-256 ---------- */

static void digest_hex(prism_sha256_ctx *c, char out[PRISM_SHA256_HEX_LEN + 1])
{
    uint8_t d[PRISM_SHA256_BYTES];
    prism_sha256_final(c, d);
    prism_hex_encode(d, PRISM_SHA256_BYTES, out);
}

static void test_sha256_vectors(void **state)
{
    static const struct {
        const char *msg, *digest;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
         "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    char hex[PRISM_SHA256_HEX_LEN + 1];
    for (size_t i = 0; i < ARRAY_LEN(v); i++) {
        prism_sha256_hex(v[i].msg, strlen(v[i].msg), hex);
        assert_string_equal(hex, v[i].digest);
    }
}

static void test_sha256_million_a(void **state)
{
    /* Odd-sized pieces cross block boundaries at every offset. */
    static const size_t pieces[] = {1, 3, 7, 63, 64, 65, 127, 200, 1000, 4093};
    char a[4096];
    memset(a, 'a', sizeof a);
    prism_sha256_ctx c;
    prism_sha256_init(&c);
    size_t left = 1000000;
    for (size_t i = 0; left > 0; i++) {
        size_t n = pieces[i % ARRAY_LEN(pieces)];
        if (n > left)
            n = left;
        prism_sha256_update(&c, a, n);
        left -= n;
    }
    char hex[PRISM_SHA256_HEX_LEN + 1];
    digest_hex(&c, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_sha256_incremental_matches_one_shot(void **state)
{
    /* Every length around the padding boundaries (55, 56, 63, 64, 119, 120...). */
    char msg[200];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (char)('A' + i % 57);
    for (size_t n = 0; n <= sizeof msg; n++) {
        char one[PRISM_SHA256_HEX_LEN + 1], inc[PRISM_SHA256_HEX_LEN + 1];
        prism_sha256_hex(msg, n, one);
        prism_sha256_ctx c;
        prism_sha256_init(&c);
        for (size_t i = 0; i < n; i++)
            prism_sha256_update(&c, msg + i, 1);
        digest_hex(&c, inc);
        assert_string_equal(one, inc);
    }
}

/* RFC 4231's test cases 2 (a short key) and 6 (a key longer than a block),
 * the message split in parts as the handshake passes it. */
static void test_hmac_sha256_vectors(void **state)
{
    uint8_t mac[PRISM_SHA256_BYTES], big[131];
    char hex[PRISM_SHA256_HEX_LEN + 1];
    const void *parts[] = {"what do ya ", "want for nothing?"};
    size_t lens[] = {11, 17};
    prism_hmac_sha256("Jefe", 4, parts, lens, 2, mac);
    prism_hex_encode(mac, sizeof mac, hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    memset(big, 0xaa, sizeof big);
    const char *msg = "Test Using Larger Than Block-Size Key - Hash Key First";
    const void *one[] = {msg};
    size_t len[] = {strlen(msg)};
    prism_hmac_sha256(big, sizeof big, one, len, 1, mac);
    prism_hex_encode(mac, sizeof mac, hex);
    assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    uint8_t other[PRISM_SHA256_BYTES];
    memcpy(other, mac, sizeof mac);
    assert_true(prism_equal_ct(mac, other, sizeof mac));
    other[31] ^= 1;
    assert_false(prism_equal_ct(mac, other, sizeof mac));
}

/* ---------- capped buffers ---------- */

static void test_buf_cap(void **state)
{
    prism_buf b;
    prism_buf_init(&b, 10);
    assert_int_equal(prism_buf_append(&b, "0123456", 7), 0);
    assert_int_equal(prism_buf_printf(&b, "%d", 789), 0);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "0123456789");
    /* Past the cap: refused, buffer unchanged. */
    assert_int_equal(prism_buf_append(&b, "x", 1), -1);
    assert_int_equal(prism_buf_printf(&b, "%s", "y"), -1);
    /* volatile: seeing SIZE_MAX through the inlined append, link-time
     * optimization warns of the memcpy that the cap keeps it from */
    volatile size_t huge = SIZE_MAX;
    assert_int_equal(prism_buf_append(&b, "x", huge), -1);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "0123456789");
    assert_int_equal(prism_buf_append(&b, NULL, 0), 0);

    size_t len = 0;
    char *p = prism_buf_take(&b, &len);
    assert_int_equal(len, 10);
    assert_string_equal(p, "0123456789");
    free(p);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    p = prism_buf_take(&b, &len); /* empty: still a string */
    assert_string_equal(p, "");
    assert_int_equal(len, 0);
    free(p);
    prism_buf_free(&b);
}

static void test_buf_growth(void **state)
{
    prism_buf b;
    prism_buf_init(&b, 1u << 20);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(prism_buf_printf(&b, "%04d", i % 10000), 0);
    assert_int_equal(b.len, 40000);
    assert_memory_equal(b.data + 39996, "9999", 4);
    assert_int_equal(b.data[b.len], '\0');
    prism_buf_free(&b);
    assert_null(b.data);
}

/* ---------- metrics ---------- */

static double forty_two(void *ud) { return *(double *)ud; }

static int count_substr(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_metrics_render(void **state)
{
    prism_metrics *m = prism_metrics_create();
    assert_non_null(m);
    prism_metric *get = prism_metrics_counter(m, "prism_req_total", "Requests", "method=\"GET\"");
    prism_metric *up = prism_metrics_gauge(m, "prism_up", "Up", NULL);
    prism_metric *post = prism_metrics_counter(m, "prism_req_total", "Requests", "method=\"POST\"");
    double v = 42;
    prism_metrics_gauge_fn(m, "prism_answer", "The answer", "", forty_two, &v);
    assert_ptr_equal(prism_metrics_counter(m, "prism_req_total", "Requests", "method=\"GET\""),
                     get);
    prism_metric_add(get, 2);
    prism_metric_add(get, 1);
    prism_metric_add(post, 0.5);
    prism_metric_set(up, 1);
    prism_metric_add(NULL, 1);
    prism_metric_set(NULL, 1);
    assert_true(prism_metric_value(get) == 3);

    prism_buf out;
    prism_buf_init(&out, 1 << 16);
    assert_int_equal(prism_metrics_render(m, &out), 0);
    const char *t = out.data;
    assert_int_equal(count_substr(t, "# HELP prism_req_total Requests\n"), 1);
    assert_int_equal(count_substr(t, "# TYPE prism_req_total counter\n"), 1);
    assert_int_equal(count_substr(t, "# TYPE prism_up gauge\n"), 1);
    assert_int_equal(count_substr(t, "# TYPE prism_answer gauge\n"), 1);
    const char *g = strstr(t, "prism_req_total{method=\"GET\"} 3\n");
    const char *p = strstr(t, "prism_req_total{method=\"POST\"} 0.5\n");
    const char *u = strstr(t, "\nprism_up 1\n");
    assert_non_null(g);
    assert_non_null(p);
    assert_non_null(u);
    assert_true(g < p && p < u); /* one family's series stay together */
    assert_non_null(strstr(t, "\nprism_answer 42\n"));
    prism_buf_free(&out);

    /* A render that does not fit fails instead of growing. */
    prism_buf_init(&out, 32);
    assert_int_equal(prism_metrics_render(m, &out), -1);
    prism_buf_free(&out);
    prism_metrics_destroy(m);
    prism_metrics_destroy(NULL);
}

static void test_metrics_histogram(void **state)
{
    prism_metrics *m = prism_metrics_create();
    const double bounds[] = {0.25, 1, 4}; /* exact in binary: the sum below prints exactly */
    prism_metric *h =
        prism_metrics_histogram(m, "prism_rtt_seconds", "Round trips", "peer=\"a\"", bounds, 3);
    assert_non_null(h);
    prism_metric_observe(h, 0.125);
    prism_metric_observe(h, 0.25); /* a bound is inclusive: le */
    prism_metric_observe(h, 2);
    prism_metric_observe(h, 8);
    prism_metric_observe(NULL, 1);
    assert_true(prism_metric_value(h) == 4);
    double many[PRISM_METRICS_MAX_BUCKETS + 1] = {0};
    assert_null(
        prism_metrics_histogram(m, "prism_x", "X", NULL, many, PRISM_METRICS_MAX_BUCKETS + 1));
    prism_buf out;
    prism_buf_init(&out, 1 << 16);
    assert_int_equal(prism_metrics_render(m, &out), 0);
    const char *t = out.data;
    assert_non_null(strstr(t, "# TYPE prism_rtt_seconds histogram\n"));
    assert_non_null(strstr(t, "prism_rtt_seconds_bucket{peer=\"a\",le=\"0.25\"} 2\n"));
    assert_non_null(strstr(t, "prism_rtt_seconds_bucket{peer=\"a\",le=\"1\"} 2\n"));
    assert_non_null(strstr(t, "prism_rtt_seconds_bucket{peer=\"a\",le=\"4\"} 3\n"));
    assert_non_null(strstr(t, "prism_rtt_seconds_bucket{peer=\"a\",le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(t, "prism_rtt_seconds_sum{peer=\"a\"} 10.375\n"));
    assert_non_null(strstr(t, "prism_rtt_seconds_count{peer=\"a\"} 4\n"));
    prism_buf_free(&out);
    prism_metrics_destroy(m);
}

/* ---------- file system ---------- */

static int tmpdir_setup(void **state)
{
    const char *base = getenv("TMPDIR");
    char *dir = NULL;
    if (asprintf(&dir, "%s/prism-unit-XXXXXX", base && *base ? base : "/tmp") < 0)
        return -1;
    if (!mkdtemp(dir)) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

static int tmpdir_teardown(void **state)
{
    int rc = prism_remove_tree(*state);
    free(*state);
    return rc;
}

static void test_fs_atomic_write(void **state)
{
    const char *dir = *state;
    char path[512];
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    assert_int_equal(prism_mkdir_p(path, 0700), 0);
    assert_int_equal(prism_mkdir_p(path, 0700), 0); /* exists: fine */
    snprintf(path, sizeof path, "%s/a/b/c/file.json", dir);
    assert_int_equal(prism_write_file_atomic(path, "first", 5, 0600), 0);
    assert_int_equal(prism_write_file_atomic(path, "{\"x\":1}", 7, 0640), 0);

    size_t len = 0;
    char *data = prism_read_file(path, 1024, &len);
    assert_non_null(data);
    assert_int_equal(len, 7);
    assert_string_equal(data, "{\"x\":1}");
    free(data);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    /* No temporary file is left beside it. */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    assert_int_not_equal(access(tmp, F_OK), 0);

    data = prism_read_file(path, 7, NULL); /* exactly the limit */
    assert_non_null(data);
    free(data);
    errno = 0;
    assert_null(prism_read_file(path, 6, &len));
    assert_int_equal(errno, EFBIG);
    errno = 0;
    snprintf(path, sizeof path, "%s/missing", dir);
    assert_null(prism_read_file(path, 1024, &len));
    assert_int_equal(errno, ENOENT);
    snprintf(path, sizeof path, "%s/no/such/dir/f", dir);
    assert_int_equal(prism_write_file_atomic(path, "x", 1, 0600), -1);

    snprintf(path, sizeof path, "%s/a", dir);
    assert_int_equal(prism_remove_tree(path), 0);
    assert_int_not_equal(access(path, F_OK), 0);
    assert_int_equal(prism_remove_tree(path), 0); /* already gone */
}

static void test_fs_safe_name(void **state)
{
    char long_name[130];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[129] = '\0';
    assert_false(prism_safe_name(long_name)); /* 129 */
    long_name[128] = '\0';
    assert_true(prism_safe_name(long_name)); /* 128 */
    assert_true(prism_safe_name("job-1_v2.tar.gz"));
    assert_true(prism_safe_name("..."));
    assert_true(prism_safe_name(".hidden"));
    static const char *const bad[] = {"", ".", "..", "a/b", "/", "a b", "a\\b", "ä", "a\nb", "$x"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        assert_false(prism_safe_name(bad[i]));
}

/* A process on the same machine reaches a wildcard listener on loopback,
 * which certificates can name; a specific address stays as it is. */
static void test_local_host(void **state)
{
    char h[64];
    prism_local_host("0.0.0.0", h, sizeof h);
    assert_string_equal(h, "127.0.0.1");
    prism_local_host("::", h, sizeof h);
    assert_string_equal(h, "[::1]");
    prism_local_host("198.51.100.7", h, sizeof h);
    assert_string_equal(h, "198.51.100.7");
    prism_local_host("fe80::1", h, sizeof h);
    assert_string_equal(h, "[fe80::1]");
    prism_local_host("gcs", h, sizeof h);
    assert_string_equal(h, "gcs");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_hex_round_trip),
        cmocka_unit_test(test_id_bad_hex),
        cmocka_unit_test(test_is_hex),
        cmocka_unit_test(test_json_string),
        cmocka_unit_test(test_object_id),
        cmocka_unit_test_setup_teardown(test_config_defaults, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_config_env_and_flags, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_config_bool_bare_flag, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_config_rest, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_config_help, env_setup, env_teardown),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test_setup_teardown(test_config_origins, env_setup, env_teardown),
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_sha256_million_a),
        cmocka_unit_test(test_sha256_incremental_matches_one_shot),
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_buf_growth),
        cmocka_unit_test(test_metrics_render),
        cmocka_unit_test(test_metrics_histogram),
        cmocka_unit_test(test_hmac_sha256_vectors),
        cmocka_unit_test_setup_teardown(test_fs_atomic_write, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test(test_fs_safe_name),
        cmocka_unit_test(test_local_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
