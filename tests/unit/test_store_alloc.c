/* The object store's arena allocator and its ID hash map. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "os_alloc.h"
#include "os_map.h"

static void test_alloc_basic(void **state)
{
    os_alloc a;
    assert_int_equal(os_alloc_init(&a, 1 << 20), 0);
    os_block *b1 = os_alloc_get(&a, 100);
    os_block *b2 = os_alloc_get(&a, 0);
    assert_non_null(b1);
    assert_non_null(b2);
    assert_int_equal(b1->size, 128);
    assert_int_equal(b2->size, 64);
    assert_int_equal(b1->off % OS_ALLOC_ALIGN, 0);
    assert_int_equal(b2->off % OS_ALLOC_ALIGN, 0);
    assert_int_equal(a.used, 192);
    assert_int_equal(os_alloc_check(&a), 0);
    assert_null(os_alloc_get(&a, 1 << 20)); /* does not fit next to the others */
    os_alloc_put(&a, b1);
    os_alloc_put(&a, b2);
    assert_int_equal(a.used, 0);
    assert_int_equal(a.nblocks, 1); /* coalesced back into one range */
    assert_int_equal(os_alloc_check(&a), 0);
    os_block *all = os_alloc_get(&a, 1 << 20);
    assert_non_null(all);
    assert_null(os_alloc_get(&a, 1));
    os_alloc_put(&a, all);
    os_alloc_destroy(&a);
}

static void test_alloc_coalesce_middle(void **state)
{
    os_alloc a;
    assert_int_equal(os_alloc_init(&a, 64 * 10), 0);
    os_block *b[10];
    for (int i = 0; i < 10; i++)
        assert_non_null(b[i] = os_alloc_get(&a, 64));
    assert_null(os_alloc_get(&a, 1));
    /* free 1, 3, 2: the hole 1..3 must serve a 192-byte request */
    os_alloc_put(&a, b[1]);
    os_alloc_put(&a, b[3]);
    assert_null(os_alloc_get(&a, 128));
    os_alloc_put(&a, b[2]);
    assert_int_equal(os_alloc_check(&a), 0);
    os_block *big = os_alloc_get(&a, 192);
    assert_non_null(big);
    assert_int_equal(big->off, 64);
    os_alloc_put(&a, big);
    for (int i = 0; i < 10; i++)
        if (i < 1 || i > 3)
            os_alloc_put(&a, b[i]);
    assert_int_equal(a.nblocks, 1);
    assert_int_equal(os_alloc_check(&a), 0);
    os_alloc_destroy(&a);
}

/* Random allocations and frees never overlap and always add up. */
static void test_alloc_random(void **state)
{
    enum { N = 2000, CAP = 64 << 20 };
    os_alloc a;
    assert_int_equal(os_alloc_init(&a, CAP), 0);
    os_block *live[N] = {0};
    unsigned seed = 12345;
    for (int step = 0; step < 100000; step++) {
        int i = rand_r(&seed) % N;
        if (live[i]) {
            os_alloc_put(&a, live[i]);
            live[i] = NULL;
        } else {
            uint64_t size = (uint64_t)1 << (rand_r(&seed) % 20);
            size += rand_r(&seed) % size;
            live[i] = os_alloc_get(&a, size);
            if (live[i])
                assert_true(live[i]->size >= size && live[i]->off + live[i]->size <= CAP);
        }
        if (step % 5000 == 0)
            assert_int_equal(os_alloc_check(&a), 0);
    }
    assert_int_equal(os_alloc_check(&a), 0);
    for (int i = 0; i < N; i++)
        if (live[i])
            os_alloc_put(&a, live[i]);
    assert_int_equal(a.used, 0);
    assert_int_equal(a.nblocks, 1);
    os_alloc_destroy(&a);
}

static prism_object_id oid(uint32_t n)
{
    prism_object_id id;
    memset(&id, 0xab, sizeof id);
    memcpy(id.b + 16, &n, 4);
    return id;
}

static void test_map(void **state)
{
    enum { N = 5000 };
    os_map m = OS_MAP_INIT;
    static int vals[N];
    assert_null(os_map_get(&m, &(prism_object_id){{0}}));
    for (uint32_t i = 0; i < N; i++) {
        prism_object_id k = oid(i);
        assert_int_equal(os_map_put(&m, &k, &vals[i]), 0);
    }
    assert_int_equal(m.len, N);
    for (uint32_t i = 0; i < N; i += 2) {
        prism_object_id k = oid(i);
        assert_ptr_equal(os_map_del(&m, &k), &vals[i]);
        assert_null(os_map_del(&m, &k));
    }
    for (uint32_t i = 0; i < N; i++) {
        prism_object_id k = oid(i);
        assert_ptr_equal(os_map_get(&m, &k), (i % 2) ? &vals[i] : NULL);
    }
    size_t pos = 0, n = 0;
    prism_object_id key;
    void *v;
    while ((v = os_map_next(&m, &pos, &key))) {
        uint32_t idx;
        memcpy(&idx, key.b + 16, 4);
        assert_ptr_equal(v, &vals[idx]);
        n++;
    }
    assert_int_equal(n, N / 2);
    os_map_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_basic),
        cmocka_unit_test(test_alloc_coalesce_middle),
        cmocka_unit_test(test_alloc_random),
        cmocka_unit_test(test_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
