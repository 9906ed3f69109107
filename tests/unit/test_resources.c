/* Resource maps (libs/proto/prism_resources.h): the one rule by which the
 * GCS, the scheduler and the node agent decide whether a request fits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "prism_resources.h"

static bool fits(const char *have, const char *used, const char *want)
{
    json_t *h = json_loads(have, 0, NULL), *u = used ? json_loads(used, 0, NULL) : NULL,
           *w = json_loads(want, 0, NULL);
    assert_non_null(h);
    assert_non_null(w);
    bool ok = prism_res_fits(h, u, w);
    json_decref(h);
    json_decref(u);
    json_decref(w);
    return ok;
}

static void test_amounts(void **state)
{
    (void)state;
    assert_true(prism_res_amount_fits(1, 1));
    assert_true(prism_res_amount_fits(2, 1));
    assert_false(prism_res_amount_fits(1, 1.5));
    /* Asking nothing, or less than nothing, fits anywhere. */
    assert_true(prism_res_amount_fits(0, 0));
    assert_true(prism_res_amount_fits(-3, -1));
    /* Within the slack: rounding does not refuse an exact fit. */
    assert_true(prism_res_amount_fits(1 - PRISM_RES_EPSILON / 2, 1));
    assert_false(prism_res_amount_fits(1 - 2 * PRISM_RES_EPSILON, 1));
}

static void test_fractions_add_up(void **state)
{
    (void)state;
    double used = 0;
    for (int i = 0; i < 9; i++)
        used += 0.1;
    /* Nine tenths taken (not exactly 0.9 in binary): a tenth still fits. */
    assert_true(prism_res_amount_fits(1 - used, 0.1));
}

static void test_maps(void **state)
{
    (void)state;
    assert_true(fits("{\"CPU\": 4, \"memory\": 1024}", NULL, "{\"CPU\": 4}"));
    assert_false(fits("{\"CPU\": 4}", NULL, "{\"CPU\": 5}"));
    assert_true(fits("{\"CPU\": 4}", NULL, "{}"));
    /* A resource the node lacks: a positive ask never fits, zero does. */
    assert_false(fits("{\"CPU\": 4}", NULL, "{\"GPU\": 1}"));
    assert_true(fits("{\"CPU\": 4}", NULL, "{\"GPU\": 0}"));
    /* Every name must fit, not just one. */
    assert_false(fits("{\"CPU\": 4, \"GPU\": 1}", NULL, "{\"CPU\": 1, \"GPU\": 2}"));
}

static void test_used(void **state)
{
    (void)state;
    assert_true(fits("{\"CPU\": 4}", "{\"CPU\": 3}", "{\"CPU\": 1}"));
    assert_false(fits("{\"CPU\": 4}", "{\"CPU\": 3.5}", "{\"CPU\": 1}"));
    assert_true(fits("{\"CPU\": 4}", "{\"GPU\": 1}", "{\"CPU\": 4}"));
    assert_true(fits("{\"CPU\": 1}", "{\"CPU\": 0.7}", "{\"CPU\": 0.3}"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_amounts),
        cmocka_unit_test(test_fractions_add_up),
        cmocka_unit_test(test_maps),
        cmocka_unit_test(test_used),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
