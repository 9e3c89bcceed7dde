/* SPDX-License-Identifier: Apache-2.0 */
/* common/decimal: digits only, 1 to 20 of them, no wrap on overflow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "decimal.h"

static void numbers_and_non_numbers(void **state)
{
    (void)state;
    uint64_t v = 7;
    static const char *bad[] = {"", "-1", "+1", " 1", "1 ", "1a", "0x10", "18446744073709551616",
                                "99999999999999999999", "000000000000000000001", "1.0"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        assert_false(ts_decimal_u64(bad[k], strlen(bad[k]), &v));
        assert_int_equal(v, 7);   /* untouched */
    }
    assert_true(ts_decimal_u64("18446744073709551615", 20, &v));
    assert_true(v == UINT64_MAX);
    assert_true(ts_decimal_u64("00042", 5, &v));
    assert_int_equal(v, 42);
    assert_true(ts_decimal_u64("123456", 3, &v));   /* exactly len bytes */
    assert_int_equal(v, 123);
    assert_true(ts_decimal_u64("0", 1, &v));
    assert_int_equal(v, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(numbers_and_non_numbers)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
