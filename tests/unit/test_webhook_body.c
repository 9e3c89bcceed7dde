/* SPDX-License-Identifier: Apache-2.0 */
/* bridge/webhook_body: a webhook body cut into readings, CSV and JSON, and
 * hostile bodies (unterminated strings, bad escapes, surrogates, nesting,
 * NUL bytes, text after the value, more lines than allowed) refused or
 * bounded, never read past their end (ASan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhook_body.h"

#define MAX 8

/* The body copied to a heap block of exactly its size, so that ASan sees
 * any read past it. */
static size_t json(const char *text, size_t n, struct ts_webhook_line *out, size_t max,
                   char **dec, const char **why)
{
    char *body = malloc(n ? n : 1);
    assert_non_null(body);
    memcpy(body, text, n);
    *dec = malloc(n ? n : 1);
    assert_non_null(*dec);
    *why = NULL;
    size_t k = ts_webhook_json_lines(body, n, *dec, out, max, why);
    free(body);
    return k;
}

static void line_is(const struct ts_webhook_line *l, const char *want)
{
    assert_int_equal(l->n, strlen(want));
    assert_memory_equal(l->p, want, l->n);
}

static void csv(void **state)
{
    (void)state;
    struct ts_webhook_line out[MAX];
    const char *b = "a,1\r\n\nb,2\n\r\nc,3";
    assert_int_equal(ts_webhook_csv_lines(b, strlen(b), out, MAX), 3);
    line_is(&out[0], "a,1");
    line_is(&out[1], "b,2");
    line_is(&out[2], "c,3");
    assert_int_equal(ts_webhook_csv_lines("", 0, out, MAX), 0);
    assert_int_equal(ts_webhook_csv_lines("\n\n\r\n", 4, out, MAX), 0);
    /* a NUL byte stays in its line (the verdict refuses it) */
    assert_int_equal(ts_webhook_csv_lines("x\0y\nz", 5, out, MAX), 2);
    assert_int_equal(out[0].n, 3);
    /* more than max: max + 1, nothing written past out[max - 1] */
    assert_int_equal(ts_webhook_csv_lines("1\n2\n3\n", 6, out, 2), 3);
    assert_int_equal(ts_webhook_csv_lines("1\n2\n", 4, out, 2), 2);
}

static void json_forms(void **state)
{
    (void)state;
    struct ts_webhook_line out[MAX];
    char *dec;
    const char *why;
    const char *b = " { \"readings\" : [ \"a,1\" , \"b\\\"\\\\\\/\\u0041\\u00e9\\u20ac\" ] } \n";
    assert_int_equal(json(b, strlen(b), out, MAX, &dec, &why), 2);
    line_is(&out[0], "a,1");
    line_is(&out[1], "b\"\\/A\xc3\xa9\xe2\x82\xac");
    free(dec);
    b = "[\"x\",\"y\",\"z\"]";
    assert_int_equal(json(b, strlen(b), out, MAX, &dec, &why), 3);
    line_is(&out[2], "z");
    free(dec);
    b = "[ ]";
    assert_int_equal(json(b, strlen(b), out, MAX, &dec, &why), 0);
    free(dec);
    b = "{\"readings\":[]}";
    assert_int_equal(json(b, strlen(b), out, MAX, &dec, &why), 0);
    free(dec);
    /* an escaped line break is kept: the verdict refuses the line, not the body */
    b = "[\"a\\nb\"]";
    assert_int_equal(json(b, strlen(b), out, MAX, &dec, &why), 1);
    line_is(&out[0], "a\nb");
    free(dec);
    /* more than max */
    b = "[\"1\",\"2\",\"3\"]";
    assert_int_equal(json(b, strlen(b), out, 2, &dec, &why), 3);
    free(dec);
}

static void json_hostile(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", " ", "{", "[", "[\"", "[\"a", "[\"a\\", "[\"a\\u12", "[\"a\\u12zz\"]",
        "[\"a\\ud83d\\ude00\"]", "[\"a\\x\"]", "[\"a\"", "[\"a\",", "[\"a\",]", "[\"a\" \"b\"]",
        "[1]", "[null]", "[[\"a\"]]", "[{\"readings\":[]}]", "{\"readings\":[\"a\"]", "{\"readings\":[\"a\"]]",
        "{\"other\":[\"a\"]}", "{\"readings\" [\"a\"]}", "{\"readings\":\"a\"}", "{}", "[\"a\"] x",
        "[\"a\"]]", "[\"a\tb\"]", "[\"a\x01\"]", "\"a\"", "{\"readingsX\":[]}", "{\"reading\":[]}",
        "[\"a\"]\0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ts_webhook_line out[MAX];
        char *dec;
        const char *why;
        size_t n = strlen(bad[i]) + (i == sizeof bad / sizeof bad[0] - 1); /* the last: a NUL */
        size_t k = json(bad[i], n, out, MAX, &dec, &why);
        if (k != (size_t)-1)
            fail_msg("body %zu '%s' taken (%zu lines)", i, bad[i], k);
        assert_non_null(why);
        free(dec);
    }
}

/* 100,000 nested arrays: refused at the second '[' (no recursion) */
static void json_deep(void **state)
{
    (void)state;
    size_t n = 100000;
    char *b = malloc(n);
    assert_non_null(b);
    memset(b, '[', n);
    struct ts_webhook_line out[MAX];
    char *dec;
    const char *why;
    assert_int_equal(json(b, n, out, MAX, &dec, &why), (size_t)-1);
    free(dec);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(csv),
        cmocka_unit_test(json_forms),
        cmocka_unit_test(json_hostile),
        cmocka_unit_test(json_deep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
