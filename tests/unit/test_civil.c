/* SPDX-License-Identifier: Apache-2.0 */
/* common/civil: known dates, and the two directions inverse over 1600..2400. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "civil.h"

static void known_dates(void **state)
{
    (void)state;
    assert_int_equal(ts_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(ts_days_from_civil(1969, 12, 31), -1);
    assert_int_equal(ts_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(ts_days_from_civil(2023, 5, 27), 19504);   /* 1685145600 / 86400 */
    assert_int_equal(ts_days_from_civil(2024, 2, 29) + 1, ts_days_from_civil(2024, 3, 1));
    assert_int_equal(ts_days_from_civil(2100, 2, 28) + 1, ts_days_from_civil(2100, 3, 1));
}

static void round_trip(void **state)
{
    (void)state;
    int64_t first = ts_days_from_civil(1600, 1, 1), last = ts_days_from_civil(2400, 12, 31);
    for (int64_t z = first; z <= last; z++) {
        int64_t y;
        unsigned m, d;
        ts_civil_from_days(z, &y, &m, &d);
        assert_true(m >= 1 && m <= 12 && d >= 1 && d <= 31);
        assert_true(ts_days_from_civil(y, m, d) == z);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(known_dates), cmocka_unit_test(round_trip)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
