/* SPDX-License-Identifier: Apache-2.0 */
/* test_strbuf: the growing printf buffer (common/strbuf.h): text appended and
 * NUL-terminated across many reallocations, the bound held to the byte, a
 * format larger than any bound refused, the first failure sticky, the text
 * handed over or freed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include <cmocka.h>

#include "err.h"
#include "strbuf.h"

static void appends_and_grows(void **state)
{
    (void)state;
    struct ts_strbuf b = {0};
    char want[8000];
    size_t n = 0;
    for (int i = 0; i < 1000; i++) {
        ts_strbuf_printf(&b, "%d,", i);
        n += (size_t)snprintf(want + n, sizeof want - n, "%d,", i);
        assert_int_equal(b.len, n);
        assert_int_equal(strlen(b.s), n);
    }
    assert_int_equal(b.err, TS_OK);
    assert_string_equal(b.s, want);
    char *s;
    size_t len;
    assert_int_equal(ts_strbuf_take(&b, &s, &len), TS_OK);
    assert_int_equal(len, n);
    assert_string_equal(s, want);
    assert_null(b.s);
    free(s);
}

static void empty_text_is_not_null(void **state)
{
    (void)state;
    struct ts_strbuf b = TS_STRBUF_INIT(10);
    ts_strbuf_printf(&b, "%s", "");
    char *s;
    size_t len = 99;
    assert_int_equal(ts_strbuf_take(&b, &s, &len), TS_OK);
    assert_non_null(s);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
}

/* max bytes of text fit; one more byte does not, and the text stays as it
 * was; the failure sticks, so later small appends do nothing. */
static void bound_reached(void **state)
{
    (void)state;
    struct ts_strbuf b = TS_STRBUF_INIT(10);
    ts_strbuf_printf(&b, "%s", "12345");
    ts_strbuf_printf(&b, "%s", "67890");
    assert_int_equal(b.err, TS_OK);
    assert_string_equal(b.s, "1234567890");
    assert_true(b.cap <= 11);
    ts_strbuf_printf(&b, "%s", "x");
    assert_int_equal(b.err, TS_EFULL);
    assert_string_equal(b.s, "1234567890");
    assert_int_equal(b.len, 10);
    struct ts_strbuf c = TS_STRBUF_INIT(10);
    ts_strbuf_printf(&c, "%s", "123456");
    ts_strbuf_printf(&c, "%s", "abcde");   /* 11: refused whole, not cut */
    assert_int_equal(c.err, TS_EFULL);
    assert_string_equal(c.s, "123456");
    ts_strbuf_printf(&c, "%s", "a");        /* would fit, but the failure sticks */
    assert_string_equal(c.s, "123456");
    char *s = (char *)1;
    size_t len = 1;
    assert_int_equal(ts_strbuf_take(&c, &s, &len), TS_EFULL);
    assert_null(s);
    assert_int_equal(len, 0);
    assert_null(c.s);
    ts_strbuf_free(&b);
    ts_strbuf_free(&b);   /* twice: still fine */
    ts_strbuf_free(NULL);
}

/* A format that asks for far more than the bound (16 MiB of padding
 * against 4 KiB) allocates nothing near it and leaves the text as it was.
 * (A width near INT_MAX would do the same but takes glibc half a minute;
 * default_bound below passes the 64 MiB default.) */
static void huge_format(void **state)
{
    (void)state;
    volatile int wide = 16 << 20; /* not a constant for gcc */
    struct ts_strbuf b = TS_STRBUF_INIT(4096);
    ts_strbuf_printf(&b, "%s", "keep");
    ts_strbuf_printf(&b, "%*s", wide, "");
    assert_int_equal(b.err, TS_EFULL);
    assert_string_equal(b.s, "keep");
    assert_true(b.cap < 4096);
    ts_strbuf_free(&b);
}

/* A format vsnprintf refuses (a wide character the C locale cannot write)
 * is TS_EINVAL, and the text stays as it was. */
static void refused_format(void **state)
{
    (void)state;
    static const wchar_t euro[] = {0x20ac, 0};
    struct ts_strbuf b = {0};
    ts_strbuf_printf(&b, "%s", "keep");
    ts_strbuf_printf(&b, "a%lsb", euro);
    assert_int_equal(b.err, TS_EINVAL);
    assert_string_equal(b.s, "keep");
    assert_int_equal(b.len, 4);
    ts_strbuf_free(&b);
}

/* The default bound of a zeroed buffer is TS_STRBUF_DEFAULT_MAX. */
static void default_bound(void **state)
{
    (void)state;
    struct ts_strbuf b = {0};
    ts_strbuf_printf(&b, "%*s", (int)TS_STRBUF_DEFAULT_MAX + 1, "");
    assert_int_equal(b.err, TS_EFULL);
    assert_null(b.s);
    ts_strbuf_free(&b);
    struct ts_strbuf c = {0};
    ts_strbuf_printf(&c, "%*s", (int)TS_STRBUF_DEFAULT_MAX, "");
    assert_int_equal(c.err, TS_OK);
    assert_int_equal(c.len, TS_STRBUF_DEFAULT_MAX);
    ts_strbuf_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(appends_and_grows),
        cmocka_unit_test(empty_text_is_not_null),
        cmocka_unit_test(bound_reached),
        cmocka_unit_test(huge_format),
        cmocka_unit_test(refused_format),
        cmocka_unit_test(default_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
