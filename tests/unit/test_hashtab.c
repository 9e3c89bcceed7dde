/* SPDX-License-Identifier: Apache-2.0 */
/* test_hashtab: the one hash table (common/hashtab.h): keys found after
 * growing, absent keys not found, removal (backward shift) keeps every other
 * key findable, iteration sees each entry once; the hostile case: every key
 * of one hash, up to max, then TS_EFULL, and lookups of absent keys end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "hashtab.h"

/* keys are numbers; the value is the key itself */
static bool eq_num(uintptr_t value, const void *key)
{
    return value == *(const uintptr_t *)key;
}

static bool find(const struct ts_hashtab *t, uint64_t h, uintptr_t key)
{
    uintptr_t v = 0;
    bool found = ts_hashtab_find(t, h, eq_num, &key, &v);
    if (found)
        assert_int_equal(v, key);
    return found;
}

static uint64_t hash_num(uintptr_t k) { return ts_hash_bytes(TS_HASH_INIT, &k, sizeof k); }

static void grows_finds_and_misses(void **state)
{
    (void)state;
    struct ts_hashtab t;
    ts_hashtab_init(&t, 100000);
    assert_false(find(&t, hash_num(1), 1)); /* empty, nothing allocated */
    for (uintptr_t k = 1; k <= 5000; k++) {
        assert_false(find(&t, hash_num(k), k));
        assert_int_equal(ts_hashtab_add(&t, hash_num(k), k), TS_OK);
    }
    assert_int_equal(ts_hashtab_count(&t), 5000);
    for (uintptr_t k = 1; k <= 5000; k++)
        assert_true(find(&t, hash_num(k), k));
    for (uintptr_t k = 5001; k <= 10000; k++)
        assert_false(find(&t, hash_num(k), k));
    assert_true(t.cap >= 2 * t.count); /* load at most 1/2 */
    ts_hashtab_free(&t);
    assert_int_equal(ts_hashtab_count(&t), 0);
    assert_false(find(&t, hash_num(1), 1));
    ts_hashtab_free(NULL);
}

/* a hash of 0 is a key like any other (slots use 0 for empty) */
static void hash_zero(void **state)
{
    (void)state;
    struct ts_hashtab t;
    ts_hashtab_init(&t, 10);
    assert_int_equal(ts_hashtab_add(&t, 0, 7), TS_OK);
    assert_int_equal(ts_hashtab_add(&t, 1, 8), TS_OK);
    assert_true(find(&t, 0, 7));
    assert_true(find(&t, 1, 8));
    assert_true(ts_hashtab_remove(&t, 0, 7));
    assert_false(find(&t, 0, 7));
    assert_true(find(&t, 1, 8));
    ts_hashtab_free(&t);
}

/* Removing any entry, in any order, from runs that wrap around the end of
 * the slots leaves every other entry findable. */
static void remove_keeps_the_rest(void **state)
{
    (void)state;
    enum { N = 400 };
    struct ts_hashtab t;
    ts_hashtab_init(&t, N);
    /* few homes, so that runs are long and wrap: hash = key % 7 + cap - 3 */
    uint64_t h[N + 1];
    for (uintptr_t k = 1; k <= N; k++) {
        h[k] = (uint64_t)(k % 7) + 1024 - 3;
        assert_int_equal(ts_hashtab_add(&t, h[k], k), TS_OK);
    }
    assert_int_equal(t.cap, 1024);
    srand(16);
    uintptr_t order[N];
    for (uintptr_t k = 0; k < N; k++)
        order[k] = k + 1;
    for (int i = N - 1; i > 0; i--) {
        int j = rand() % (i + 1);
        uintptr_t x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    bool gone[N + 1] = {false};
    for (int i = 0; i < N; i++) {
        uintptr_t k = order[i];
        assert_true(ts_hashtab_remove(&t, h[k], k));
        assert_false(ts_hashtab_remove(&t, h[k], k));
        gone[k] = true;
        if (i % 37 == 0 || i > N - 20)
            for (uintptr_t m = 1; m <= N; m++)
                assert_int_equal(find(&t, h[m], m), !gone[m]);
    }
    assert_int_equal(ts_hashtab_count(&t), 0);
    assert_false(ts_hashtab_remove(&t, 5, 5));
    ts_hashtab_free(&t);
}

static void iterates_each_once(void **state)
{
    (void)state;
    struct ts_hashtab t;
    ts_hashtab_init(&t, 1000);
    for (uintptr_t k = 0; k < 1000; k++)
        assert_int_equal(ts_hashtab_add(&t, hash_num(k), k), TS_OK);
    unsigned seen[1000] = {0};
    size_t cursor = 0, n = 0;
    uintptr_t v;
    while (ts_hashtab_next(&t, &cursor, &v)) {
        assert_true(v < 1000);
        seen[v]++;
        n++;
    }
    assert_int_equal(n, 1000);
    for (int k = 0; k < 1000; k++)
        assert_int_equal(seen[k], 1);
    ts_hashtab_free(&t);
}

/* Hostile: every key has the same hash (a flood built to collide). The
 * table fills to max, refuses the next with TS_EFULL and stays as it was;
 * finding any key, present or absent, ends (each walk meets an empty slot). */
static void all_collide_then_full(void **state)
{
    (void)state;
    enum { MAX = 3000 };
    struct ts_hashtab t;
    ts_hashtab_init(&t, MAX);
    const uint64_t same = UINT64_C(0xdeadbeef);
    for (uintptr_t k = 1; k <= MAX; k++)
        assert_int_equal(ts_hashtab_add(&t, same, k), TS_OK);
    assert_int_equal(ts_hashtab_add(&t, same, MAX + 1), TS_EFULL);
    assert_int_equal(ts_hashtab_add(&t, hash_num(1), MAX + 1), TS_EFULL);
    assert_int_equal(ts_hashtab_count(&t), MAX);
    assert_true(t.cap <= 2 * 4096); /* grown by max, not by the flood */
    for (uintptr_t k = 1; k <= MAX; k += 97)
        assert_true(find(&t, same, k));
    assert_false(find(&t, same, MAX + 1));
    assert_false(find(&t, hash_num(5), MAX + 1));
    /* one out, one in; then still full */
    assert_true(ts_hashtab_remove(&t, same, 1));
    assert_false(find(&t, same, 1));
    assert_true(find(&t, same, MAX));
    assert_int_equal(ts_hashtab_add(&t, same, MAX + 1), TS_OK);
    assert_true(find(&t, same, MAX + 1));
    assert_int_equal(ts_hashtab_add(&t, same, MAX + 2), TS_EFULL);
    ts_hashtab_free(&t);
}

/* A max of 0 or beyond TS_HASHTAB_MAX is clamped: the smallest table holds one. */
static void max_clamped(void **state)
{
    (void)state;
    struct ts_hashtab t;
    ts_hashtab_init(&t, 0);
    assert_int_equal(ts_hashtab_add(&t, 1, 1), TS_OK);
    assert_int_equal(ts_hashtab_add(&t, 2, 2), TS_EFULL);
    ts_hashtab_free(&t);
    ts_hashtab_init(&t, SIZE_MAX);
    assert_int_equal(t.max, TS_HASHTAB_MAX);
}

static void hashes(void **state)
{
    (void)state;
    /* FNV-1a 64 test vectors */
    assert_true(ts_hash_str(TS_HASH_INIT, "") == UINT64_C(0xcbf29ce484222325));
    assert_true(ts_hash_str(TS_HASH_INIT, "a") == UINT64_C(0xaf63dc4c8601ec8c));
    assert_true(ts_hash_str(TS_HASH_INIT, "foobar") == UINT64_C(0x85944171f73967e8));
    assert_true(ts_hash_bytes(TS_HASH_INIT, "foobar", 6) == ts_hash_str(TS_HASH_INIT, "foobar"));
    assert_true(ts_hash_str(ts_hash_str(TS_HASH_INIT, "foo"), "bar") ==
                ts_hash_str(TS_HASH_INIT, "foobar"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grows_finds_and_misses),
        cmocka_unit_test(hash_zero),
        cmocka_unit_test(remove_keeps_the_rest),
        cmocka_unit_test(iterates_each_once),
        cmocka_unit_test(all_collide_then_full),
        cmocka_unit_test(max_clamped),
        cmocka_unit_test(hashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
