/* Value encoding: round trips, tensor alignment, and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "dag_record.h"
#include "prism_wire.h"

static prism_buf encode(const prism_value *v)
{
    prism_buf b;
    prism_buf_init(&b, 1u << 26);
    prism_writer w = {.buf = &b};
    pw_value(&w, v, "owner:me");
    assert_false(w.failed);
    return b;
}

static prism_value *decode(const prism_buf *b)
{
    prism_reader r = {(const uint8_t *)b->data, b->len, 0, NULL, NULL, NULL};
    prism_value *v = pr_value(&r, NULL, NULL);
    if (v)
        assert_int_equal(r.left, 0);
    return v;
}

static void test_round_trips(void **state)
{
    int64_t shape[] = {3, 4};
    double data[12];
    for (int i = 0; i < 12; i++)
        data[i] = i * 1.5;
    prism_value *list = prism_value_list();
    prism_value_list_append(list, prism_value_json("{\"a\": [1, 2, \"x\"]}"));
    prism_value_list_append(list, prism_value_bytes("\0\1\2", 3));
    prism_value_list_append(list, prism_value_tensor(PRISM_F64, 2, shape, data));
    prism_value_list_append(list, prism_value_null());
    prism_value_list_append(list, prism_value_error("pkg/fn", "it broke"));
    prism_value *inner = prism_value_list();
    prism_value_list_append(inner, prism_value_json("7"));
    prism_value_list_append(list, inner);
    prism_buf b = encode(list);
    prism_value *back = decode(&b);
    assert_non_null(back);
    assert_int_equal(prism_value_list_size(back), 6);
    assert_string_equal(prism_value_json_text(prism_value_list_get(back, 0)),
                        "{\"a\": [1, 2, \"x\"]}");
    size_t len;
    const void *p = prism_value_data(prism_value_list_get(back, 1), &len);
    assert_int_equal(len, 3);
    assert_memory_equal(p, "\0\1\2", 3);
    const prism_value *t = prism_value_list_get(back, 2);
    assert_int_equal(prism_value_ndim(t), 2);
    assert_int_equal(prism_value_shape(t)[1], 4);
    assert_memory_equal(prism_value_data(t, &len), data, sizeof data);
    assert_int_equal(prism_value_kind_of(prism_value_list_get(back, 3)), PRISM_VALUE_NULL);
    assert_string_equal(prism_value_error_message(prism_value_list_get(back, 4)), "it broke");
    assert_string_equal(
        prism_value_json_text(prism_value_list_get(prism_value_list_get(back, 5), 0)), "7");
    prism_value_free(back);
    prism_value_free(list);
    prism_buf_free(&b);
}

static void test_tensor_data_is_aligned(void **state)
{
    for (int ndim = 0; ndim <= 3; ndim++) {
        int64_t shape[3] = {2, 2, 2};
        prism_value *t = prism_value_tensor(PRISM_F32, ndim, shape, NULL);
        prism_buf b = encode(t);
        /* The data is the last len bytes of the encoding. */
        size_t len;
        prism_value_data(t, &len);
        assert_int_equal((b.len - len) % 16, 0);
        prism_value_free(t);
        prism_buf_free(&b);
    }
}

/* A value's first bytes describe a bytes or tensor value without its data. */
static void test_info_from_the_head(void **state)
{
    (void)state;
    int64_t shape[2] = {300, 200};
    prism_value *t = prism_value_tensor(PRISM_F64, 2, shape, NULL);
    prism_buf b = encode(t);
    prism_value_info in;
    assert_true(pr_value_info((const uint8_t *)b.data, 64, &in));
    assert_int_equal(in.kind, PRISM_VALUE_TENSOR);
    assert_int_equal(in.dtype, PRISM_F64);
    assert_int_equal(in.ndim, 2);
    assert_int_equal(in.shape[0], 300);
    assert_int_equal(in.shape[1], 200);
    assert_int_equal(in.size, 300 * 200 * 8);
    assert_false(pr_value_info((const uint8_t *)b.data, 10, &in)); /* header cut short */
    prism_value_free(t);
    prism_buf_free(&b);
    prism_value *bytes = prism_value_bytes("abcdef", 6);
    b = encode(bytes);
    assert_true(pr_value_info((const uint8_t *)b.data, b.len, &in));
    assert_int_equal(in.kind, PRISM_VALUE_BYTES);
    assert_int_equal(in.size, 6);
    prism_value_free(bytes);
    prism_buf_free(&b);
    prism_value *json = prism_value_json("[1, 2]");
    b = encode(json);
    assert_false(pr_value_info((const uint8_t *)b.data, b.len, &in));
    prism_value_free(json);
    prism_buf_free(&b);
}

static void test_invalid_values_are_refused(void **state)
{
    assert_null(prism_value_json("{not json"));
    int64_t bad[] = {-1};
    assert_null(prism_value_tensor(PRISM_F32, 1, bad, NULL));
    assert_null(prism_value_tensor((prism_dtype)99, 0, NULL, NULL));
    int64_t huge[] = {INT64_MAX / 2, 4};
    assert_null(prism_value_tensor(PRISM_F64, 2, huge, NULL));
    prism_value *not_list = prism_value_null();
    assert_int_equal(prism_value_list_append(not_list, NULL), PRISM_ERR_INVALID);
    prism_value_free(not_list);
}

static int released;
static void count_release(void *ud) { released += *(int *)ud; }

/* A tensor in device memory (a pointer never dereferenced here) is not
 * encoded, copied or put; its release runs once; a list holding one is
 * refused as a whole; a device record names the slot it lies in. */
static void test_device_tensors_stay_off_the_wire(void **state)
{
    static uint8_t fake[4096];
    int64_t shape[] = {4, 8};
    int one = 1;
    assert_null(prism_value_device_tensor(-1, PRISM_F32, 2, shape, fake, NULL, NULL));
    assert_null(prism_value_device_tensor(0, PRISM_F32, 2, shape, NULL, NULL, NULL));
    prism_value *v = prism_value_device_tensor(2, PRISM_F32, 2, shape, fake, count_release, &one);
    assert_non_null(v);
    assert_int_equal(prism_value_device(v), 2);
    size_t len;
    assert_ptr_equal(prism_value_data(v, &len), fake);
    assert_int_equal(len, 128);
    assert_int_equal(pw_value_size(v, NULL), 0);
    assert_null(prism_value_copy(v));
    assert_int_equal(prism_last_status(), PRISM_ERR_INVALID);
    prism_value *host = prism_value_tensor(PRISM_F32, 2, shape, NULL);
    assert_int_equal(prism_value_device(host), -1);
    prism_value_free(host);

    uint8_t rec[DAG_REC_HEAD + 64];
    size_t n = prism__dag_put_device(rec, sizeof rec, 3, v);
    assert_true(n > 0);
    assert_int_equal(prism__dag_tag(rec, n), DAG_REC_DEVICE);
    assert_true(prism__dag_is_value(rec, n));

    prism_value *l = prism_value_list();
    assert_int_equal(prism_value_list_append(l, v), PRISM_OK);
    assert_int_equal(pw_value_size(l, NULL), 0);
    assert_true(prism__value_on_device(l));
    released = 0;
    prism_value_free(l);
    assert_int_equal(released, 1);
}

/* Every truncation of a valid encoding fails cleanly; so does random garbage. */
static void test_malformed_input(void **state)
{
    int64_t shape[] = {2, 3};
    prism_value *list = prism_value_list();
    prism_value_list_append(list, prism_value_tensor(PRISM_I32, 2, shape, NULL));
    prism_value_list_append(list, prism_value_json("[1,2,3]"));
    prism_value_list_append(list, prism_value_error("t", "m"));
    prism_buf b = encode(list);
    for (size_t cut = 0; cut < b.len; cut++) {
        prism_reader r = {(const uint8_t *)b.data, cut, 0, NULL, NULL, NULL};
        assert_null(pr_value(&r, NULL, NULL));
    }
    srand(42);
    uint8_t junk[256];
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(rand() % (int)sizeof junk);
        for (size_t i = 0; i < n; i++)
            junk[i] = (uint8_t)rand();
        if (n && round % 2)
            junk[0] = (uint8_t)(rand() % 8); /* a plausible kind, to go deeper */
        prism_reader r = {junk, n, 0, NULL, NULL, NULL};
        prism_value_free(pr_value(&r, NULL, NULL));
    }
    /* Lists nested past the depth limit are refused, not recursed into. */
    uint8_t deep[400];
    for (size_t i = 0; i + 5 <= sizeof deep; i += 5) {
        deep[i] = PRISM_VALUE_LIST;
        deep[i + 1] = 1;
        deep[i + 2] = deep[i + 3] = deep[i + 4] = 0;
    }
    prism_reader r = {deep, sizeof deep, 0, NULL, NULL, NULL};
    assert_null(pr_value(&r, NULL, NULL));
    prism_value_free(list);
    prism_buf_free(&b);
}

/* Sizing, then writing into a fixed region (how large values go straight into
 * the object store), gives the same bytes as the growable buffer. */
static void test_fixed_region(void **state)
{
    int64_t shape[] = {300, 7};
    prism_value *list = prism_value_list();
    prism_value_list_append(list, prism_value_json("\"x\""));
    prism_value_list_append(list, prism_value_tensor(PRISM_F64, 2, shape, NULL));
    prism_buf b = encode(list);
    size_t n = pw_value_size(list, "owner:me");
    assert_int_equal(n, b.len);
    uint8_t *region = malloc(n);
    prism_writer w = {.out = region, .cap = n};
    pw_value(&w, list, "owner:me");
    assert_false(w.failed);
    assert_int_equal(w.pos, n);
    assert_memory_equal(region, b.data, n);
    prism_writer small = {.out = region, .cap = n - 1};
    pw_value(&small, list, "owner:me");
    assert_true(small.failed);
    free(region);
    prism_value_free(list);
    prism_buf_free(&b);

    /* Every kind of field, written in place where it fits: a region cut
     * anywhere fails, never writes past its end, and whole gives the bytes
     * of the growable buffer. */
    prism_object_id id = {{1, 2, 3}};
    prism_ref *r = prism__ref_new(NULL, &id, "owner:x");
    prism_value *all = prism_value_list();
    prism_value_list_append(all, prism_value_bytes("abcde", 5));
    prism_value_list_append(all, prism_value_null());
    prism_value_list_append(all, prism_value_error("pkg/fn", "no"));
    prism_value_list_append(all, prism_value_ref(r));
    int64_t three[] = {3};
    prism_value_list_append(all, prism_value_tensor(PRISM_I32, 1, three, NULL));
    b = encode(all);
    region = malloc(b.len + 8);
    for (size_t cap = 0; cap <= b.len; cap++) {
        memset(region, 0xee, b.len + 8);
        prism_writer cut = {.out = region, .cap = cap};
        pw_value(&cut, all, "owner:me");
        assert_int_equal(cut.failed, cap < b.len);
        assert_true(cut.pos <= cap);
        for (size_t i = cap; i < b.len + 8; i++)
            assert_int_equal(region[i], 0xee);
    }
    assert_memory_equal(region, b.data, b.len);
    free(region);
    prism_value_free(all);
    prism_ref_release(r);
    prism_buf_free(&b);
}

/* Values whose data shares their allocation (small) and values whose data
 * has its own (large), on either side of the limit: the bytes given, a
 * zeroed tensor, a copy and a round trip. */
static void test_data_sizes(void **state)
{
    const size_t sizes[] = {0, 1, 511, 512, 513, 4096, 100000};
    uint8_t *pattern = malloc(100000);
    for (size_t i = 0; i < 100000; i++)
        pattern[i] = (uint8_t)(i * 7 + 1);
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t n = sizes[k], len;
        prism_value *v = prism_value_bytes(pattern, n);
        const uint8_t *p = prism_value_data(v, &len);
        assert_int_equal(len, n);
        assert_non_null(p);
        assert_memory_equal(p, pattern, n);
        prism_value *copy = prism_value_copy(v);
        assert_memory_equal(prism_value_data(copy, NULL), pattern, n);
        prism_buf b = encode(v);
        prism_value *back = decode(&b);
        assert_memory_equal(prism_value_data(back, &len), pattern, n);
        assert_int_equal(len, n);
        int64_t shape[] = {(int64_t)n};
        prism_value *zero = prism_value_tensor(PRISM_U8, 1, shape, NULL);
        const uint8_t *z = prism_value_data(zero, &len);
        assert_int_equal(len, n);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(z[i], 0);
        assert_int_equal((uintptr_t)z % 16, 0);
        prism_value_free(zero);
        prism_value_free(back);
        prism_value_free(copy);
        prism_value_free(v);
        prism_buf_free(&b);
    }
    free(pattern);
}

static void test_frames(void **state)
{
    prism_buf b;
    prism_buf_init(&b, 1 << 20);
    wire_begin(&b, WIRE_PUSH);
    prism_buf_append(&b, "abc", 3);
    wire_end(&b, 0);
    uint8_t type;
    const uint8_t *payload;
    size_t plen;
    assert_int_equal(wire_parse((uint8_t *)b.data, b.len - 1, &type, &payload, &plen), 0);
    assert_int_equal(wire_parse((uint8_t *)b.data, b.len, &type, &payload, &plen), (long)b.len);
    assert_int_equal(type, WIRE_PUSH);
    assert_int_equal(plen, 3);
    uint8_t bad[5] = {0, 0, 0, 0, 1}; /* zero length: malformed */
    assert_int_equal(wire_parse(bad, 5, &type, &payload, &plen), -1);
    uint8_t huge[5] = {0xff, 0xff, 0xff, 0x7f, 1};
    assert_int_equal(wire_parse(huge, 5, &type, &payload, &plen), -1);
    prism_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_tensor_data_is_aligned),
        cmocka_unit_test(test_info_from_the_head),
        cmocka_unit_test(test_invalid_values_are_refused),
        cmocka_unit_test(test_device_tensors_stay_off_the_wire),
        cmocka_unit_test(test_malformed_input),
        cmocka_unit_test(test_fixed_region),
        cmocka_unit_test(test_data_sizes),
        cmocka_unit_test(test_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
