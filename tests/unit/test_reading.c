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
    }
}

static void refuses_fields_that_would_break_the_csv(void **state)
{
    char line[TS_READING_LINE_MAX];
    const char *bad[] = {"59 ST, BKLYN", "59 \"ST\"", "59\nST", ""};
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

static void id_rules(void **state)
{
    assert_true(ts_id_ok("ctrl-01.a_b"));
    assert_false(ts_id_ok("ctrl/01"));
    assert_false(ts_id_ok("ctrl+01"));
    assert_false(ts_id_ok(""));
    assert_true(ts_field_ok("59 ST-7 AV"));
    assert_false(ts_field_ok("a,b"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(format_matches_reference_schema),
        cmocka_unit_test(round_trip_keeps_every_field),
        cmocka_unit_test(parses_the_13_field_reference_form),
        cmocka_unit_test(rejects_malformed_lines),
        cmocka_unit_test(refuses_fields_that_would_break_the_csv),
        cmocka_unit_test(id_rules),
    };
    return cmocka_run_group_tests(tests, setup_tz, NULL);
}
