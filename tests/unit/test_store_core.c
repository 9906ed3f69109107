/* The object store's core, in process: lifecycle, eviction order, spilling
 * and restoring, out-of-memory errors, cleanup of a dropped client. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "os_store.h"
#include "prism_fs.h"
#include "prism_time.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)

typedef struct fixture {
    os_store s;
    os_client c;
    char dir[64];
    int added, removed, spilled;
} fixture;

static void on_event(void *ud, os_event ev, const os_object *o)
{
    fixture *f = ud;
    if (ev == OS_EV_ADDED)
        f->added++;
    else if (ev == OS_EV_REMOVED)
        f->removed++;
    else
        f->spilled++;
}

static fixture *setup_io(uint64_t capacity, uint64_t batch, bool io_inline)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/prism-test-store-%d", (int)getpid());
    os_store_config cfg = {.capacity = capacity,
                           .spill_dir = f->dir,
                           .spill_batch = batch,
                           .io_inline = io_inline,
                           .on_event = on_event,
                           .ud = f};
    char err[256];
    assert_int_equal(os_store_init(&f->s, &cfg, err, sizeof err), 0);
    os_client_init(&f->c);
    return f;
}

/* Disk I/O inline: the async I/O has its own tests (test_async_*). */
static fixture *setup(uint64_t capacity, uint64_t batch) { return setup_io(capacity, batch, true); }

static void teardown(fixture *f)
{
    os_client_drop(&f->s, &f->c);
    os_store_destroy(&f->s);
    prism_remove_tree(f->dir);
    free(f);
}

static prism_object_id oid(uint32_t n)
{
    prism_object_id id;
    memset(&id, 0x5a, sizeof id);
    memcpy(id.b + 16, &n, 4);
    return id;
}

static void fill(uint8_t *p, uint64_t n, uint32_t seed)
{
    for (uint64_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 9));
}

static int check(const uint8_t *p, uint64_t n, uint32_t seed)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(seed * 31 + i * 7 + (i >> 9)))
            return -1;
    return 0;
}

static void put(fixture *f, uint32_t n, uint64_t size, bool pin)
{
    prism_object_id id = oid(n);
    os_object *o;
    assert_int_equal(os_create(&f->s, &f->c, &id, NULL, size, "t", 1, pin, &o), PRISM_STORE_OK);
    fill(os_data(&f->s, o), size, n);
    assert_int_equal(os_seal(&f->s, &f->c, &id), PRISM_STORE_OK);
}

/* An object remembers its owner (a nil ID is none) and when it was sealed:
 * what the owner checks (os_owners.c) go by. */
static void test_owner_recorded(void **state)
{
    fixture *f = setup(1 * MiB, 0);
    prism_object_id a = oid(1), b = oid(2);
    prism_id owner, nil = {{0}};
    prism_id_random(&owner);
    os_object *o;
    assert_int_equal(os_create(&f->s, &f->c, &a, &owner, 100, NULL, 0, true, &o), PRISM_STORE_OK);
    assert_true(o->owned && prism_id_equal(&o->owner, &owner));
    assert_int_equal(o->sealed_ms, 0);
    int64_t before = prism_mono_ms();
    assert_int_equal(os_seal(&f->s, &f->c, &a), PRISM_STORE_OK);
    assert_true(o->sealed_ms >= before && o->sealed_ms <= prism_mono_ms());
    assert_int_equal(os_create(&f->s, &f->c, &b, &nil, 100, NULL, 0, true, &o), PRISM_STORE_OK);
    assert_false(o->owned);
    teardown(f);
    (void)state;
}

static void test_lifecycle(void **state)
{
    fixture *f = setup(1 * MiB, 0);
    prism_object_id id = oid(1);
    os_object *o;
    assert_int_equal(os_get(&f->s, &f->c, &id, &o), PRISM_STORE_NOT_FOUND);
    assert_int_equal(os_create(&f->s, &f->c, &id, NULL, 1000, "meta", 4, false, &o),
                     PRISM_STORE_OK);
    assert_int_equal(os_create(&f->s, &f->c, &id, NULL, 10, NULL, 0, false, &o),
                     PRISM_STORE_EXISTS);
    assert_int_equal(os_contains(&f->s, &id), PRISM_STORE_PRESENT_UNSEALED);
    assert_int_equal(os_get(&f->s, &f->c, &id, &o), PRISM_STORE_NOT_SEALED);
    os_client other;
    os_client_init(&other);
    assert_int_equal(os_seal(&f->s, &other, &id), PRISM_STORE_NOT_OWNER);
    assert_int_equal(os_seal(&f->s, &f->c, &id), PRISM_STORE_OK);
    assert_int_equal(os_seal(&f->s, &f->c, &id), PRISM_STORE_SEALED);
    assert_int_equal(f->added, 1);
    assert_int_equal(os_get(&f->s, &other, &id, &o), PRISM_STORE_OK);
    assert_memory_equal(os_data(&f->s, o) + 1000, "meta", 4);
    assert_int_equal(o->readers, 1);
    /* delete while read: hidden at once, freed at the last release */
    assert_int_equal(os_delete(&f->s, &id), PRISM_STORE_OK);
    assert_int_equal(os_contains(&f->s, &id), PRISM_STORE_ABSENT);
    assert_int_not_equal(f->s.alloc.used, 0);
    assert_int_equal(os_release(&f->s, &other, &id), PRISM_STORE_OK);
    assert_int_equal(os_release(&f->s, &other, &id), PRISM_STORE_NOT_HELD);
    assert_int_equal(f->s.alloc.used, 0);
    assert_int_equal(f->removed, 1);
    os_client_drop(&f->s, &other);
    teardown(f);
}

static void test_too_large_and_oom(void **state)
{
    fixture *f = setup(1 * MiB, 0);
    prism_object_id id = oid(1);
    os_object *o;
    assert_int_equal(os_create(&f->s, &f->c, &id, NULL, 2 * MiB, NULL, 0, true, &o),
                     PRISM_STORE_TOO_LARGE);
    /* referenced and unsealed objects can be neither evicted nor spilled */
    assert_int_equal(os_create(&f->s, &f->c, &id, NULL, 600 * KiB, NULL, 0, true, &o),
                     PRISM_STORE_OK);
    prism_object_id id2 = oid(2);
    assert_int_equal(os_create(&f->s, &f->c, &id2, NULL, 600 * KiB, NULL, 0, true, &o),
                     PRISM_STORE_OUT_OF_MEMORY);
    teardown(f); /* drops the unsealed object */
}

/* Secondary copies go least recently used first; a get refreshes. */
static void test_eviction_order(void **state)
{
    const uint64_t quarter = 256 * KiB - 64; /* + 1 byte of metadata: a quarter of the arena */
    fixture *f = setup(1 * MiB, 0);
    for (uint32_t i = 0; i < 4; i++)
        put(f, i, quarter, false);
    assert_int_equal(f->s.alloc.used, f->s.capacity);
    os_object *o;
    prism_object_id id0 = oid(0), id1 = oid(1), id2 = oid(2), id3 = oid(3);
    assert_int_equal(os_get(&f->s, &f->c, &id0, &o), PRISM_STORE_OK); /* 0 is now newest */
    assert_int_equal(os_release(&f->s, &f->c, &id0), PRISM_STORE_OK);
    put(f, 4, 200 * KiB, false); /* evicts 1, the least recently used */
    assert_int_equal(os_contains(&f->s, &id1), PRISM_STORE_ABSENT);
    assert_int_equal(os_contains(&f->s, &id2), PRISM_STORE_PRESENT_MEMORY);
    assert_int_equal(os_contains(&f->s, &id0), PRISM_STORE_PRESENT_MEMORY);
    /* a referenced object is skipped: hold 2, so 3 goes next */
    assert_int_equal(os_get(&f->s, &f->c, &id2, &o), PRISM_STORE_OK);
    put(f, 5, 200 * KiB, false);
    assert_int_equal(os_contains(&f->s, &id3), PRISM_STORE_ABSENT);
    assert_int_equal(os_contains(&f->s, &id2), PRISM_STORE_PRESENT_MEMORY);
    assert_int_equal(os_contains(&f->s, &id0), PRISM_STORE_PRESENT_MEMORY);
    assert_int_equal(os_release(&f->s, &f->c, &id2), PRISM_STORE_OK);
    assert_int_equal(f->s.evictions, 2);
    assert_int_equal(f->removed, 2);
    assert_int_equal(f->spilled, 0);
    teardown(f);
}

/* os_stats (counters kept as objects change) against a walk of every
 * object and spill file. */
static void check_stats(fixture *f)
{
    prism_store_stats st;
    os_stats(&f->s, &st);
    uint64_t mem = 0, spilled = 0, bytes = 0, files = 0;
    size_t pos = 0;
    os_object *o;
    while ((o = os_map_next(&f->s.objects, &pos, NULL))) {
        if (o->block) {
            mem++;
        } else {
            spilled++;
            bytes += o->data_size + o->meta_size;
        }
    }
    for (os_spill_file *sf = f->s.spill_files; sf; sf = sf->next)
        files++;
    assert_int_equal(st.objects_in_memory, mem);
    assert_int_equal(st.spilled_objects, spilled);
    assert_int_equal(st.spilled_bytes, bytes);
    assert_int_equal(st.spill_files, files);
}

/* Three arenas' worth of pinned objects all come back intact through spilling. */
static void test_spill_restore(void **state)
{
    enum { N = 48 };
    fixture *f = setup(4 * MiB, 512 * KiB);
    for (uint32_t i = 0; i < N; i++)
        put(f, i, 256 * KiB, true);
    prism_store_stats st;
    os_stats(&f->s, &st);
    assert_true(st.spilled_objects > 0);
    assert_true(st.spill_files < st.spills_total); /* batched */
    assert_true(f->s.alloc.used <= f->s.capacity);
    assert_int_equal(f->s.evictions, 0);
    check_stats(f);
    for (uint32_t i = 0; i < N; i++) {
        prism_object_id id = oid(i);
        os_object *o;
        assert_int_equal(os_get(&f->s, &f->c, &id, &o), PRISM_STORE_OK);
        assert_int_equal(check(os_data(&f->s, o), 256 * KiB, i), 0);
        assert_int_equal(os_release(&f->s, &f->c, &id), PRISM_STORE_OK);
        check_stats(f);
    }
    assert_true(f->s.restores > 0);
    /* deleting everything removes every spill file */
    for (uint32_t i = 0; i < N; i++) {
        prism_object_id id = oid(i);
        assert_int_equal(os_delete(&f->s, &id), PRISM_STORE_OK);
        check_stats(f);
    }
    os_stats(&f->s, &st);
    assert_int_equal(st.spill_files, 0);
    assert_int_equal(st.used_bytes, 0);
    teardown(f);
}

static void test_client_drop(void **state)
{
    fixture *f = setup(1 * MiB, 0);
    os_client dead;
    os_client_init(&dead);
    prism_object_id a = oid(1), b = oid(2);
    os_object *o;
    assert_int_equal(os_create(&f->s, &dead, &a, NULL, 100 * KiB, NULL, 0, false, &o),
                     PRISM_STORE_OK);
    put(f, 2, 100 * KiB, false);
    assert_int_equal(os_get(&f->s, &dead, &b, &o), PRISM_STORE_OK);
    assert_int_equal(os_get(&f->s, &dead, &b, &o), PRISM_STORE_OK);
    assert_int_equal(o->readers, 2);
    os_client_drop(&f->s, &dead);
    assert_int_equal(os_contains(&f->s, &a), PRISM_STORE_ABSENT);
    assert_int_equal(o->readers, 0);
    assert_int_equal(f->s.alloc.used, os_alloc_rounded(100 * KiB + 1));
    teardown(f);
}

/* --- disk I/O on the store's thread: the test holds `mu` as the server does --- */

/* Waits for the end of a disk job, failing after 10 s. */
static void wait_moved(fixture *f)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += 10;
    assert_int_equal(pthread_cond_timedwait(&f->s.moved, &f->s.mu, &t), 0);
}

static int create_waiting(fixture *f, uint32_t n, uint64_t size, os_object **o)
{
    prism_object_id id = oid(n);
    int r;
    while ((r = os_create(&f->s, &f->c, &id, NULL, size, "t", 1, true, o)) == OS_WAIT)
        wait_moved(f);
    return r;
}

/* Gets object `n` (waiting while it comes back from disk), checks its
 * `size` bytes and releases it. */
static void read_back(fixture *f, uint32_t n, uint64_t size)
{
    prism_object_id id = oid(n);
    os_object *o;
    int r;
    while ((r = os_get(&f->s, &f->c, &id, &o)) == OS_WAIT)
        wait_moved(f);
    assert_int_equal(r, PRISM_STORE_OK);
    assert_int_equal(check(os_data(&f->s, o), size, n), 0);
    assert_int_equal(os_release(&f->s, &f->c, &id), PRISM_STORE_OK);
}

static void put_waiting(fixture *f, uint32_t n, uint64_t size)
{
    os_object *o;
    assert_int_equal(create_waiting(f, n, size, &o), PRISM_STORE_OK);
    fill(os_data(&f->s, o), size, n);
    prism_object_id id = oid(n);
    assert_int_equal(os_seal(&f->s, &f->c, &id), PRISM_STORE_OK);
}

/* A create that needs room waits for the spill (OS_WAIT), and meanwhile the
 * objects being written out can be read and deleted; a get of a spilled
 * object waits for its restore and finds its bytes. */
static void test_async_spill_restore(void **state)
{
    const uint64_t quarter = 256 * KiB - 64; /* + 1 byte of metadata: a quarter of the arena */
    fixture *f = setup_io(1 * MiB, 512 * KiB, false);
    pthread_mutex_lock(&f->s.mu);
    for (uint32_t i = 0; i < 4; i++)
        put_waiting(f, i, quarter);
    prism_object_id id0 = oid(0), id1 = oid(1), id4 = oid(4), id5 = oid(5);
    os_object *o, *o0;
    assert_int_equal(os_create(&f->s, &f->c, &id4, NULL, 200 * KiB, "t", 1, true, &o), OS_WAIT);
    assert_int_equal(os_contains(&f->s, &id4), PRISM_STORE_ABSENT); /* nothing done */
    /* the oldest two are being written (one batch): still readable, deletable */
    assert_true(f->s.spilling);
    assert_int_equal(f->s.io_pending, 1);
    assert_int_equal(os_contains(&f->s, &id0), PRISM_STORE_PRESENT_MEMORY);
    assert_int_equal(os_get(&f->s, &f->c, &id0, &o0), PRISM_STORE_OK);
    assert_int_equal(os_delete(&f->s, &id1), PRISM_STORE_OK);
    assert_int_equal(os_create(&f->s, &f->c, &id4, NULL, 200 * KiB, "t", 1, true, &o), OS_WAIT);
    put_waiting(f, 4, 200 * KiB);
    assert_false(f->s.spilling);
    assert_int_equal(f->s.io_pending, 0);
    /* the one read meanwhile stayed in memory, with its disk copy */
    assert_int_equal(os_contains(&f->s, &id0), PRISM_STORE_PRESENT_MEMORY);
    assert_non_null(o0->spill);
    assert_int_equal(os_contains(&f->s, &id1), PRISM_STORE_ABSENT);
    assert_int_equal(f->s.spill_file_count, 1);
    assert_int_equal(f->s.spills, 2);
    assert_int_equal(os_release(&f->s, &f->c, &id0), PRISM_STORE_OK);
    check_stats(f);
    /* with 0 the least recently used, its disk copy lets its block go at
     * once: a create that fits there does not wait */
    for (uint32_t i = 2; i < 5; i++) {
        prism_object_id id = oid(i);
        assert_int_equal(os_get(&f->s, &f->c, &id, &o), PRISM_STORE_OK);
        assert_int_equal(os_release(&f->s, &f->c, &id), PRISM_STORE_OK);
    }
    assert_int_equal(os_create(&f->s, &f->c, &id5, NULL, 250 * KiB, "t", 1, true, &o),
                     PRISM_STORE_OK);
    fill(os_data(&f->s, o), 250 * KiB, 5);
    assert_int_equal(os_seal(&f->s, &f->c, &id5), PRISM_STORE_OK);
    assert_int_equal(os_contains(&f->s, &id0), PRISM_STORE_PRESENT_SPILLED);
    check_stats(f);
    /* its get restores it, once 2 (the rest of that batch) is out */
    read_back(f, 0, quarter);
    assert_int_equal(f->s.restores, 1);
    for (uint32_t i = 2; i < 4; i++)
        read_back(f, i, quarter);
    check_stats(f);
    pthread_mutex_unlock(&f->s.mu);
    teardown(f);
    (void)state;
}

/* An object deleted while it comes back from disk is freed when the read
 * ends, block and spill file too. */
static void test_async_delete_while_restoring(void **state)
{
    fixture *f = setup_io(1 * MiB, 0, false);
    pthread_mutex_lock(&f->s.mu);
    put_waiting(f, 0, 600 * KiB);
    put_waiting(f, 1, 600 * KiB); /* spills 0 */
    prism_object_id id0 = oid(0), id1 = oid(1);
    assert_int_equal(os_contains(&f->s, &id0), PRISM_STORE_PRESENT_SPILLED);
    assert_int_equal(os_delete(&f->s, &id1), PRISM_STORE_OK);
    os_object *o;
    assert_int_equal(os_get(&f->s, &f->c, &id0, &o), OS_WAIT);
    assert_int_equal(os_get(&f->s, &f->c, &id0, &o), OS_WAIT); /* the same restore */
    assert_int_equal(os_delete(&f->s, &id0), PRISM_STORE_OK);
    assert_int_equal(os_get(&f->s, &f->c, &id0, &o), PRISM_STORE_NOT_FOUND);
    while (f->s.alloc.used || f->s.spill_file_count)
        wait_moved(f);
    check_stats(f);
    assert_int_equal(f->s.objects.len, 0);
    pthread_mutex_unlock(&f->s.mu);
    teardown(f);
    (void)state;
}

/* A get of a spilled object is restored while a spill is under way (held
 * here until the restore is done): spills and restores have a thread each. */
static void test_async_restore_beside_spill(void **state)
{
    fixture *f = setup_io(1 * MiB, 0, false);
    pthread_mutex_lock(&f->s.mu);
    for (uint32_t i = 0; i < 4; i++)
        put_waiting(f, i, 300 * KiB); /* the fourth spills 0 */
    prism_object_id id0 = oid(0), id1 = oid(1), id4 = oid(4);
    assert_int_equal(os_contains(&f->s, &id0), PRISM_STORE_PRESENT_SPILLED);
    assert_int_equal(os_delete(&f->s, &id1), PRISM_STORE_OK); /* room for 0 again */
    f->s.hold_spills = true;
    os_object *o;
    assert_int_equal(os_create(&f->s, &f->c, &id4, NULL, 500 * KiB, "t", 1, true, &o), OS_WAIT);
    assert_true(f->s.spilling);
    read_back(f, 0, 300 * KiB); /* its restore does not wait for the spill */
    assert_int_equal(f->s.restores, 1);
    assert_true(f->s.spilling);
    assert_int_equal(f->s.io_pending, 1);
    f->s.hold_spills = false;
    pthread_cond_signal(&f->s.io[OS_IO_SPILLS].cv);
    put_waiting(f, 4, 500 * KiB);
    assert_false(f->s.spilling);
    read_back(f, 4, 500 * KiB);
    check_stats(f);
    pthread_mutex_unlock(&f->s.mu);
    teardown(f);
    (void)state;
}

/* A spill that cannot write fails the create that waited for it, and the
 * objects stay in memory, intact; the next create tries again. */
static void test_async_spill_fails(void **state)
{
    fixture *f = setup_io(1 * MiB, 0, false);
    pthread_mutex_lock(&f->s.mu);
    put_waiting(f, 0, 600 * KiB);
    prism_remove_tree(f->dir); /* the spill file cannot be made */
    os_object *o;
    assert_int_equal(create_waiting(f, 1, 600 * KiB, &o), PRISM_STORE_IO_ERROR);
    assert_int_equal(f->s.io_errors, 1);
    prism_object_id id0 = oid(0);
    assert_int_equal(os_contains(&f->s, &id0), PRISM_STORE_PRESENT_MEMORY);
    assert_int_equal(os_get(&f->s, &f->c, &id0, &o), PRISM_STORE_OK);
    assert_int_equal(check(os_data(&f->s, o), 600 * KiB, 0), 0);
    assert_int_equal(os_release(&f->s, &f->c, &id0), PRISM_STORE_OK);
    assert_int_equal(prism_mkdir_p(f->dir, 0700), 0);
    put_waiting(f, 1, 600 * KiB);
    assert_int_equal(os_contains(&f->s, &id0), PRISM_STORE_PRESENT_SPILLED);
    check_stats(f);
    pthread_mutex_unlock(&f->s.mu);
    teardown(f);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_owner_recorded),
        cmocka_unit_test(test_too_large_and_oom),
        cmocka_unit_test(test_eviction_order),
        cmocka_unit_test(test_spill_restore),
        cmocka_unit_test(test_client_drop),
        cmocka_unit_test(test_async_spill_restore),
        cmocka_unit_test(test_async_delete_while_restoring),
        cmocka_unit_test(test_async_restore_beside_spill),
        cmocka_unit_test(test_async_spill_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
