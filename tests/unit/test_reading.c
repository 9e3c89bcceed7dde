/* SPDX-License-Identifier: Apache-2.0 */
/* The reading record's CSV wire form: what the reference Spark job splits
 * on commas and casts by position. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "reading.h"

static struct ts_reading sample(void)
{
    struct ts_reading r = {
        .ca = "A002", .unit = "R051", .scp = "02-00-00", .station = "59 ST",
        .linename = "NQR456W", .division = "BMT", .desc = "REGULAR",
        .entries = 9, .exits = 5, .agent_id = "ctrl-59st.01", .seq = 42,
        /* 2023-05-27 04:00:00 in New York (EDT, UTC-4) */
        .time_ms = 1685174400000LL, .entries_cum = 2049, .exits_cum = 990,
        .flags = 0,
    };
    return r;
}

static int setup_tz(void **state)
{
    setenv("TZ", "America/New_York", 1);
    tzset();
    return 0;
}

static void split(char *line, char **fields, int *n)
{
    *n = 0;
    for (char *p = line;; p++) {
        fields[(*n)++] = p;
        p = strchr(p, ',');
        if (!p)
            break;
        *p = '\0';
    }
}

static void format_matches_reference_schema(void **state)
{
    struct ts_reading r = sample();
    char line[TS_READING_LINE_MAX], *f[32];
    int n;

    assert_true(ts_reading_format(&r, line, sizeof line) > 0);
    split(line, f, &n);
    assert_int_equal(n, TS_READING_FIELDS);
    const char *want[] = {"A002", "R051", "02-00-00", "59 ST", "NQR456W", "BMT", "05-27-23",
                          "04:00:00", "REGULAR", "9", "5", "ctrl-59st.01:42",
                          "2023-05-27 04:00:00", "1685174400000", "2049", "990", "", "42"};
    for (int i = 0; i < TS_READING_FIELDS; i++)
        assert_string_equal(f[i], want[i]);
}

static void round_trip_keeps_every_field(void **state)
{
    struct ts_reading r = sample(), back;
    char line[TS_READING_LINE_MAX];
    const char *why = NULL;

    r.flags = 0x4 | 0x10 | 0x40;
    r.merged_from = 17;
    strcpy(r.desc, "RECOVR AUD");
    assert_true(ts_reading_format(&r, line, sizeof line) > 0);
    assert_int_equal(ts_reading_parse(line, &back, &why), TS_OK);
    assert_memory_equal(&r, &back, sizeof r);
}

static void parses_the_13_field_reference_form(void **state)
{
    struct ts_reading r;
    const char *why = NULL;
    const char *line = "A002,R051,02-00-00,59 ST,NQR456W,BMT,05-27-23,04:00:00,REGULAR,9,5,"
                       "ctrl-1:7,2023-05-27 04:00:00";
    assert_int_equal(ts_reading_parse(line, &r, &why), TS_OK);
    assert_int_equal(r.seq, 7);
    assert_int_equal(r.time_ms, 1685174400000LL);
    assert_string_equal(r.agent_id, "ctrl-1");
    assert_int_equal(r.merged_from, 7);
}

/* ts_reading_parse_line, the aggregator's fast path: the same reading as
 * ts_reading_parse when it accepts, never a line that one refuses, and it
 * leaves what it does not handle to it. */
static void parse_line_agrees_with_parse(void **state)
{
    struct ts_reading r = sample(), fast, slow;
    char line[TS_READING_LINE_MAX];
    const char *why = NULL;
    int64_t local = 0;

    r.flags = 0x4 | 0x10;
    r.merged_from = 40;
    int n = ts_reading_format(&r, line, sizeof line);
    assert_true(n > 0);
    assert_int_equal(ts_reading_parse_line(line, (size_t)n, &fast, &local), TS_OK);
    assert_int_equal(ts_reading_parse(line, &slow, &why), TS_OK);
    assert_memory_equal(&fast, &slow, sizeof fast);
    assert_int_equal(local - r.time_ms / 1000, -4 * 3600); /* EDT */
    int32_t off = 0;
    assert_int_equal(ts_reading_utc_offset(line, &slow, &off), TS_OK);
    assert_int_equal(off, local - r.time_ms / 1000);
    /* every cut of the line but the one that leaves MERGED_FROM 4 (another
     * valid reading) is refused */
    for (int cut = 0; cut < n - 2; cut++)
        assert_int_equal(ts_reading_parse_line(line, (size_t)cut, &fast, NULL), TS_EPARSE);
    /* a NUL or a line break anywhere within len */
    for (int i = 0; i < n; i++) {
        char copy[TS_READING_LINE_MAX];
        memcpy(copy, line, (size_t)n);
        for (int k = 0; k < 3; k++) {
            copy[i] = "\0\n\r"[k];
            assert_int_equal(ts_reading_parse_line(copy, (size_t)n, &fast, NULL), TS_EPARSE);
        }
    }
    /* what ts_reading_parse accepts but the fast path leaves to it */
    static const char *const left[] = {
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,REGULAR,9,5,c:1,2023-05-27 04:00:00",
        "A002,R051,02-00-00,PL\xc3\x89IADES,NQR,BMT,05-27-23,04:00:00,REGULAR,9,5,c:1,"
        "2023-05-27 04:00:00,1685174400000,1,2,,1",
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,REGULAR,9,5,c:1,"
        "2023-05-27 04:00:00,1685174400000,1,00000000000000000002,,1",
    };
    for (size_t i = 0; i < sizeof left / sizeof left[0]; i++) {
        assert_int_equal(ts_reading_parse(left[i], &slow, &why), TS_OK);
        assert_int_equal(ts_reading_parse_line(left[i], strlen(left[i]), &fast, NULL), TS_EPARSE);
    }
}

static void rejects_malformed_lines(void **state)
{
    static const char *const bad[] = {
        "",
        "A002,R051,02-00-00",
        /* DATE in MTA file form, not MM-DD-YY */
        "A002,R051,02-00-00,59 ST,NQR,BMT,05/27/2023,04:00:00,REGULAR,9,5,c:1,2023-05-27 04:00:00",
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,4:00,REGULAR,9,5,c:1,2023-05-27 04:00:00",
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,WEEKLY,9,5,c:1,2023-05-27 04:00:00",
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,REGULAR,-9,5,c:1,2023-05-27 04:00:00",
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,REGULAR,9x,5,c:1,2023-05-27 04:00:00",
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,REGULAR,9,5,c1,2023-05-27 04:00:00",
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,REGULAR,9,5,c:0,2023-05-27 04:00:00",
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,REGULAR,9,5,c/d:1,2023-05-27 04:00:00",
        /* TIMESTAMP disagrees with DATE/TIME */
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,REGULAR,9,5,c:1,2023-05-28 04:00:00",
        "A002,R051,02-00-00,59 ST,NQR,BMT,13-27-23,04:00:00,REGULAR,9,5,c:1,2023-13-27 04:00:00",
        /* more than 32 bits of people: Spark's IntegerType would turn it to null */
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,REGULAR,4294967296,5,c:1,2023-05-27 04:00:00",
        /* extension fields incomplete or wrong */
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,REGULAR,9,5,c:1,2023-05-27 04:00:00,1",
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,REGULAR,9,5,c:1,2023-05-27 04:00:00,x,1,2,,1",
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,REGULAR,9,5,c:1,2023-05-27 04:00:00,1,1,2,bogus,1",
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,REGULAR,9,5,c:1,2023-05-27 04:00:00,1,1,2,,1,extra",
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,REGULAR,9,5,c:1,2023-05-27 04:00:00,1,1,2,",
        /* MERGED_FROM after SEQ, or 0 */
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,REGULAR,9,5,c:3,2023-05-27 04:00:00,1,1,2,,4",
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,REGULAR,9,5,c:3,2023-05-27 04:00:00,1,1,2,,0",
        ",R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,REGULAR,9,5,c:1,2023-05-27 04:00:00",
        /* found by fuzzing: years the formatter cannot write back as four digits */
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,REGULAR,9,5,c:42,0023-05-27 04:00:00",
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,REGULAR,9,5,c:42,1023-05-27 04:00:00",
        "A002,R051,02-00-00,59 ST,NQR,BMT,05-27-23,04:00:00,REGULAR,9,5,a:42,2023-05-27 04:00:00,999999999999999,0,0,,42",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ts_reading r;
        const char *why = NULL;
        if (ts_reading_parse(bad[i], &r, &why) != TS_EPARSE) {
            fprintf(stderr, "accepted: %s\n", bad[i]);
            fail();
        }
        assert_non_null(why);
        assert_int_equal(ts_reading_parse_line(bad[i], strlen(bad[i]), &r, NULL), TS_EPARSE);
    }
}

static void refuses_fields_that_would_break_the_csv(void **state)
{
    char line[TS_READING_LINE_MAX];
    const char *bad[] = {"59 ST, BKLYN", "59 \"ST\"", "59\nST", "59\rST", "59\tST", "59\x7fST",
                         "59\xc2\x85ST" /* U+0085, a C1 line break */, "59 \xff ST",
                         "\xc0\xafST" /* an overlong '/' */, "\xed\xa0\x80" /* a surrogate */,
                         "\xe2\x82", /* a cut sequence */ ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ts_reading r = sample();
        snprintf(r.station, sizeof r.station, "%s", bad[i]);
        assert_int_equal(ts_reading_format(&r, line, sizeof line), -TS_EINVAL);
    }
    struct ts_reading r = sample();
    strcpy(r.agent_id, "ctrl 1");
    assert_int_equal(ts_reading_format(&r, line, sizeof line), -TS_EINVAL);
    r = sample();
    assert_int_equal(ts_reading_format(&r, line, 20), -TS_EFULL);
}

/* issue 12: real station names hold apostrophes (B'WAY-LAFAYETTE, E 143/ST
 * MARY'S); they go through the codec unquoted and come back exactly. */
static void apostrophes_and_utf8_names_round_trip(void **state)
{
    const char *names[] = {"B'WAY-LAFAYETTE", "E 143/ST MARY'S", "'", "CAF\xc3\x89 \xe2\x82\xac",
                           "\xf0\x9f\x9a\x87 ST", "PIER #5; 2"};
    char line[TS_READING_LINE_MAX];

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct ts_reading r = sample(), back;
        const char *why = NULL;
        snprintf(r.station, sizeof r.station, "%s", names[i]);
        snprintf(r.ca, sizeof r.ca, "%s", names[i]);
        assert_true(ts_field_ok(names[i]));
        assert_null(ts_field_why(names[i]));
        int n = ts_reading_format(&r, line, sizeof line);
        assert_true(n > 0);
        /* unquoted: the reference job's split on commas finds the name as is */
        char want[128];
        snprintf(want, sizeof want, ",R051,02-00-00,%s,NQR456W,", names[i]);
        assert_non_null(strstr(line, want));
        assert_null(strchr(line, '"'));
        if (ts_reading_parse(line, &back, &why) != TS_OK)
            fail_msg("%s: %s", line, why);
        assert_string_equal(back.station, names[i]);
        assert_string_equal(back.ca, names[i]);
    }
}

static void field_why_names_the_reason(void **state)
{
    assert_string_equal(ts_field_why(""), "is empty");
    assert_string_equal(ts_field_why("A,B"), "holds a comma");
    assert_string_equal(ts_field_why("A\"B"), "holds a double quote");
    assert_string_equal(ts_field_why("A\nB"), "holds a line break");
    assert_string_equal(ts_field_why("A\r"), "holds a line break");
    assert_string_equal(ts_field_why("A\x01"), "holds a control character");
    assert_string_equal(ts_field_why("A\xc2\x9f"), "holds a control character");
    assert_string_equal(ts_field_why("A\xfe"), "is not valid UTF-8");
    assert_string_equal(ts_field_why("\xf4\x90\x80\x80"), "is not valid UTF-8"); /* > U+10FFFF */
    const char *why = "x";
    assert_int_equal(ts_field_char("\xe2\x82\xac!", &why), 3);
    assert_null(why);
    assert_int_equal(ts_field_char("\xe2\x82", &why), 1);
    assert_non_null(why);
    assert_int_equal(ts_field_char("'", NULL), 1);
}

static void id_rules(void **state)
{
    assert_true(ts_id_ok("ctrl-01.a_b"));
    assert_false(ts_id_ok("ctrl/01"));
    assert_false(ts_id_ok("ctrl+01"));
    assert_false(ts_id_ok(""));
    assert_true(ts_field_ok("59 ST-7 AV"));
    assert_false(ts_field_ok("a,b"));
    assert_true(ts_field_ok("B'WAY-LAFAYETTE"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(format_matches_reference_schema),
        cmocka_unit_test(round_trip_keeps_every_field),
        cmocka_unit_test(parses_the_13_field_reference_form),
        cmocka_unit_test(parse_line_agrees_with_parse),
        cmocka_unit_test(rejects_malformed_lines),
        cmocka_unit_test(refuses_fields_that_would_break_the_csv),
        cmocka_unit_test(apostrophes_and_utf8_names_round_trip),
        cmocka_unit_test(field_why_names_the_reason),
        cmocka_unit_test(id_rules),
    };
    return cmocka_run_group_tests(tests, setup_tz, NULL);
}
