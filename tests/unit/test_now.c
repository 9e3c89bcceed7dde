/* SPDX-License-Identifier: Apache-2.0 */
/* common/now: the deadline of a timed wait, normalised, on either side of now;
 * the timed wait on a condition variable that ends at a deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <time.h>

#include "now.h"

static int64_t ns_of(struct timespec ts) { return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec; }

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ns_of(ts);
}

/* Every offset lands between now-before and now-after plus the offset, with
 * tv_nsec in [0, 1e9): across a second boundary and backwards too. */
static void deadline_is_now_plus_ms(void **state)
{
    (void)state;
    static const int64_t offsets[] = {0, 1, 999, 1000, 1001, 1999, 2500, 86400000,
                                      -1, -999, -1000, -1001, -2500};
    for (size_t k = 0; k < sizeof offsets / sizeof offsets[0]; k++) {
        for (int i = 0; i < 200; i++) {   /* different tv_nsec each time */
            int64_t before = mono_ns();
            struct timespec d = ts_mono_deadline(offsets[k]);
            int64_t after = mono_ns();
            assert_in_range(d.tv_nsec, 0, 999999999);
            int64_t got = ns_of(d) - offsets[k] * 1000000;
            assert_true(got >= before && got <= after);
        }
    }
}

static void the_units_agree(void **state)
{
    (void)state;
    int64_t ms = ts_mono_ms(), us = ts_mono_us(), ns = ts_mono_ns();
    assert_true(us / 1000 >= ms);
    assert_true(ns / 1000 >= us);
    assert_true(ts_mono_ms() >= ns / 1000000);
    assert_true(ts_wall_ms() > 1600000000000LL);   /* after 2020 */
}

/* A deadline already past: false at once. One ahead: the loop that waits
 * while it is true (nobody signals) ends, and only once the deadline is
 * reached (what the callers' flush loops rely on to stop). */
static void cond_wait_until_stops_at_the_deadline(void **state)
{
    (void)state;
    pthread_condattr_t attr;
    pthread_cond_t cond;
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    assert_int_equal(pthread_condattr_init(&attr), 0);
    assert_int_equal(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC), 0);
    assert_int_equal(pthread_cond_init(&cond, &attr), 0);
    pthread_mutex_lock(&lock);
    assert_false(ts_cond_wait_until(&cond, &lock, ts_mono_ms()));
    assert_false(ts_cond_wait_until(&cond, &lock, ts_mono_ms() - 1000));
    int64_t deadline = ts_mono_ms() + 30;
    int waits = 0;
    while (ts_cond_wait_until(&cond, &lock, deadline))
        waits++;
    assert_true(waits >= 1);
    assert_true(ts_mono_ms() >= deadline);
    pthread_mutex_unlock(&lock);
    pthread_cond_destroy(&cond);
    pthread_condattr_destroy(&attr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(deadline_is_now_plus_ms),
        cmocka_unit_test(the_units_agree),
        cmocka_unit_test(cond_wait_until_stops_at_the_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
