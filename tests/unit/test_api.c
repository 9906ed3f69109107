/* The public API as a program sees it: linked with libprism.so only (no
 * internals), it checks the version the header says against the library's,
 * the options initializers, and why constructors return NULL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include <prism/prism.h>
#include <prism/task.h>

static void test_header_and_library_agree(void **state)
{
    char v[64];
    snprintf(v, sizeof v, "%d.%d.%d", PRISM_VERSION_MAJOR, PRISM_VERSION_MINOR,
             PRISM_VERSION_PATCH);
    assert_string_equal(v, PRISM_VERSION);
    assert_string_equal(prism_version(), PRISM_VERSION);
    assert_int_equal(prism_version_number(), PRISM_VERSION_NUMBER);
    assert_int_equal(PRISM_VERSION_NUMBER, PRISM_VERSION_MAJOR * 1000000 +
                                               PRISM_VERSION_MINOR * 1000 + PRISM_VERSION_PATCH);
    /* CMake's project version, read from the header: the same three numbers. */
    assert_string_equal(PRISM_PROJECT_VERSION, PRISM_VERSION);
}

static void test_options_init(void **state)
{
    prism_task_options t, tm = PRISM_TASK_OPTIONS_INIT;
    memset(&t, 0x5a, sizeof t);
    prism_task_options_init(&t);
    assert_int_equal(t.num_returns, 1);
    assert_true(t.num_cpus == 1.0 && t.num_gpus == 0.0 && t.memory == 0.0);
    assert_null(t.resources);
    assert_int_equal(t.max_retries, 3);
    assert_false(t.retry_exceptions);
    assert_int_equal(t.strategy, PRISM_STRATEGY_DEFAULT);
    assert_null(t.node_id);
    assert_false(t.soft);
    for (size_t i = 0; i < sizeof t.reserved / sizeof t.reserved[0]; i++)
        assert_int_equal(t.reserved[i], 0);
    assert_int_equal(tm.num_returns, t.num_returns);
    assert_int_equal(tm.max_retries, t.max_retries);
    assert_true(tm.num_cpus == t.num_cpus);

    prism_actor_options a, am = PRISM_ACTOR_OPTIONS_INIT;
    memset(&a, 0x5a, sizeof a);
    prism_actor_options_init(&a);
    assert_true(a.num_cpus == 1.0 && a.num_gpus == 0.0 && a.memory == 0.0);
    assert_null(a.resources);
    assert_null(a.name);
    assert_null(a.ns);
    assert_false(a.detached);
    assert_int_equal(a.max_restarts, 0);
    assert_int_equal(a.max_task_retries, 0);
    assert_int_equal(a.max_concurrency, 1);
    assert_int_equal(a.strategy, PRISM_STRATEGY_DEFAULT);
    assert_null(a.node_id);
    assert_false(a.soft);
    for (size_t i = 0; i < sizeof a.reserved / sizeof a.reserved[0]; i++)
        assert_int_equal(a.reserved[i], 0);
    assert_int_equal(am.max_concurrency, a.max_concurrency);
    assert_true(am.num_cpus == a.num_cpus);

    prism_connect_options c, cm = PRISM_CONNECT_OPTIONS_INIT;
    memset(&c, 0x5a, sizeof c);
    prism_connect_options_init(&c);
    assert_null(c.address);
    assert_null(c.token);
    for (size_t i = 0; i < sizeof c.reserved / sizeof c.reserved[0]; i++)
        assert_int_equal(c.reserved[i], 0);
    assert_null(cm.address);
}

/* Options whose reserved room is not zero are refused before anything else. */
static void test_reserved_must_be_zero(void **state)
{
    prism_connect_options c = PRISM_CONNECT_OPTIONS_INIT;
    c.address = "http://127.0.0.1:1";
    c.reserved[7] = 1;
    prism_client *client = (prism_client *)&c;
    assert_int_equal(prism_connect(&c, &client), PRISM_ERR_INVALID);
    assert_null(client);
    assert_non_null(strstr(prism_last_error(), "reserved"));

    prism_task_options t = PRISM_TASK_OPTIONS_INIT;
    t.reserved[0] = 1;
    prism_ref *r = NULL;
    assert_int_equal(prism_submit(NULL, "builtin", "echo", NULL, 0, &t, &r), PRISM_ERR_INVALID);
    assert_non_null(strstr(prism_last_error(), "reserved"));
}

static void expect_invalid(prism_value *v)
{
    assert_null(v);
    assert_int_equal(prism_last_status(), PRISM_ERR_INVALID);
}

static void test_constructors_say_why(void **state)
{
    expect_invalid(prism_value_json("{"));
    expect_invalid(prism_value_json(NULL));
    expect_invalid(prism_value_bytes(NULL, 3));
    int64_t shape[] = {2, 3}, negative[] = {2, -1};
    expect_invalid(prism_value_tensor((prism_dtype)99, 2, shape, NULL));
    expect_invalid(prism_value_tensor(PRISM_F64, PRISM_MAX_DIMS + 1, shape, NULL));
    expect_invalid(prism_value_tensor(PRISM_F64, 2, NULL, NULL));
    expect_invalid(prism_value_tensor(PRISM_F64, 2, negative, NULL));
    int64_t huge[] = {INT64_MAX / 2, 4};
    expect_invalid(prism_value_tensor(PRISM_F64, 2, huge, NULL));
    expect_invalid(prism_value_ref(NULL));
    expect_invalid(prism_value_copy(NULL));
    assert_null(prism_ref_dup(NULL));
    assert_int_equal(prism_last_status(), PRISM_ERR_INVALID);

    /* and they still make what they made */
    prism_value *v = prism_value_json("[1, 2]");
    assert_non_null(v);
    assert_string_equal(prism_value_json_text(v), "[1, 2]");
    prism_value_free(v);
    v = prism_value_tensor(PRISM_F64, 2, shape, NULL);
    assert_non_null(v);
    assert_int_equal(prism_value_ndim(v), 2);
    prism_value_free(v);
    v = prism_value_tensor(PRISM_I32, 0, NULL, NULL); /* a scalar */
    assert_non_null(v);
    prism_value_free(v);
    v = prism_value_bytes(NULL, 0);
    assert_non_null(v);
    prism_value_free(v);
}

/* The status of the last failure stays the thread's until another failure. */
static void test_last_status_stays(void **state)
{
    assert_int_equal(prism_value_list_append(NULL, NULL), PRISM_ERR_INVALID);
    assert_int_equal(prism_last_status(), PRISM_ERR_INVALID);
    prism_value *v = prism_value_null();
    assert_non_null(v);
    prism_value_free(v);
    assert_int_equal(prism_last_status(), PRISM_ERR_INVALID);
    assert_string_equal(prism_status_text(prism_last_status()), "invalid argument");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_and_library_agree),
        cmocka_unit_test(test_options_init),
        cmocka_unit_test(test_reserved_must_be_zero),
        cmocka_unit_test(test_constructors_say_why),
        cmocka_unit_test(test_last_status_stays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
