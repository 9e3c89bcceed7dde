/* SPDX-License-Identifier: Apache-2.0 */
/* test_station_windows.c - the stations' latest-window summaries (dashboards). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "err.h"
#include "station_windows.h"

struct published {
    char topic[8][96];
    char json[8][2048];
    int n;
};

static void collect(const char *topic, const char *json, size_t len, void *ctx)
{
    struct published *p = ctx;
    assert_true(p->n < 8);
    snprintf(p->topic[p->n], sizeof p->topic[0], "%s", topic);
    assert_true(len < sizeof p->json[0]);
    memcpy(p->json[p->n], json, len);
    p->json[p->n][len] = '\0';
    p->n++;
}

static struct ts_reading reading(const char *ca, const char *scp)
{
    struct ts_reading r = {0};
    snprintf(r.ca, sizeof r.ca, "%s", ca);
    snprintf(r.unit, sizeof r.unit, "R051");
    snprintf(r.scp, sizeof r.scp, "%s", scp);
    return r;
}

static struct ts_window_row row(const char *ca, const char *scp, int64_t start, uint64_t e,
                                uint64_t x, bool late)
{
    struct ts_window_row w = {0};
    snprintf(w.ca, sizeof w.ca, "%s", ca);
    snprintf(w.unit, sizeof w.unit, "R051");
    snprintf(w.scp, sizeof w.scp, "%s", scp);
    snprintf(w.station, sizeof w.station, "59 ST\\W");
    snprintf(w.linename, sizeof w.linename, "NQR");
    snprintf(w.division, sizeof w.division, "BMT");
    snprintf(w.desc, sizeof w.desc, "REGULAR");
    snprintf(w.date, sizeof w.date, "05/27/2023");
    snprintf(w.time, sizeof w.time, "00:05:00");
    w.window_start_ms = start;
    w.window_end_ms = start + 300000;
    w.entries = e;
    w.exits = x;
    w.late = late;
    return w;
}

static void summaries(void **state)
{
    struct ts_station_windows *sw;
    struct published p = {0};
    assert_int_equal(ts_station_windows_new(&sw), TS_OK);
    struct ts_reading a = reading("A002", "00-00-00"), b = reading("A002", "00-00-01"),
                      c = reading("B009", "01-00-00");
    assert_int_equal(ts_station_windows_learn(sw, &a, "S1"), TS_OK);
    assert_int_equal(ts_station_windows_learn(sw, &b, "S1"), TS_OK);
    assert_int_equal(ts_station_windows_learn(sw, &c, "S2"), TS_OK);
    assert_int_equal(ts_station_windows_learn(sw, &c, "bad/id"), TS_EINVAL);

    struct ts_window_row r1 = row("A002", "00-00-00", 1000 * 300000LL, 3, 4, false);
    struct ts_window_row r2 = row("A002", "00-00-01", 1000 * 300000LL, 5, 6, false);
    struct ts_window_row late = row("A002", "00-00-01", 999 * 300000LL, 7, 7, true);
    struct ts_window_row unknown = row("ZZZZ", "00-00-01", 1000 * 300000LL, 1, 1, false);
    ts_station_windows_row(sw, &r1);
    ts_station_windows_row(sw, &r2);
    ts_station_windows_row(sw, &late);
    ts_station_windows_row(sw, &unknown);
    ts_station_windows_flush(sw, collect, &p);
    assert_int_equal(p.n, 1); /* S2 has no window yet */
    assert_string_equal(p.topic[0], "turnstile/v1/S1/window");
    assert_string_equal(p.json[0],
        "{\"station_id\":\"S1\",\"window_start_ms\":300000000,\"window_end_ms\":300300000,"
        "\"date\":\"05/27/2023\",\"time\":\"00:05:00\",\"turnstiles\":["
        "{\"ca\":\"A002\",\"unit\":\"R051\",\"scp\":\"00-00-00\",\"station\":\"59 ST\\\\W\","
        "\"linename\":\"NQR\",\"division\":\"BMT\",\"desc\":\"REGULAR\",\"entries\":3,\"exits\":4},"
        "{\"ca\":\"A002\",\"unit\":\"R051\",\"scp\":\"00-00-01\",\"station\":\"59 ST\\\\W\","
        "\"linename\":\"NQR\",\"division\":\"BMT\",\"desc\":\"REGULAR\",\"entries\":5,\"exits\":6}]}");

    /* nothing new: nothing published */
    ts_station_windows_flush(sw, collect, &p);
    assert_int_equal(p.n, 1);
    /* an older window is ignored; a newer one replaces the rows */
    struct ts_window_row old = row("A002", "00-00-00", 999 * 300000LL, 9, 9, false);
    struct ts_window_row next = row("A002", "00-00-01", 1001 * 300000LL, 1, 2, false);
    ts_station_windows_row(sw, &old);
    ts_station_windows_row(sw, &next);
    ts_station_windows_flush(sw, collect, &p);
    assert_int_equal(p.n, 2);
    assert_non_null(strstr(p.json[1], "\"window_start_ms\":300300000,"));
    assert_null(strstr(p.json[1], "00-00-00"));
    assert_non_null(strstr(p.json[1], "\"entries\":1,\"exits\":2}]}"));
    /* a turnstile that moves to another controller follows it */
    assert_int_equal(ts_station_windows_learn(sw, &b, "S2"), TS_OK);
    struct ts_window_row moved = row("A002", "00-00-01", 1002 * 300000LL, 8, 8, false);
    ts_station_windows_row(sw, &moved);
    ts_station_windows_flush(sw, collect, &p);
    assert_int_equal(p.n, 3);
    assert_string_equal(p.topic[2], "turnstile/v1/S2/window");
    ts_station_windows_free(sw);
}

/* Thousands of turnstiles: the table grows and finds each one's station. */
static void many(void **state)
{
    struct ts_station_windows *sw;
    struct published p = {0};
    assert_int_equal(ts_station_windows_new(&sw), TS_OK);
    char scp[16], st[16];
    for (int i = 0; i < 5000; i++) {
        snprintf(scp, sizeof scp, "00-%05d", i);
        snprintf(st, sizeof st, "S%d", i % 5);
        struct ts_reading r = reading("C001", scp);
        assert_int_equal(ts_station_windows_learn(sw, &r, st), TS_OK);
    }
    snprintf(scp, sizeof scp, "00-%05d", 4242);
    struct ts_window_row r = row("C001", scp, 0, 1, 1, false);
    ts_station_windows_row(sw, &r);
    ts_station_windows_flush(sw, collect, &p);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.topic[0], "turnstile/v1/S2/window");
    ts_station_windows_free(sw);
}

/* Past its limits the module forgets everything and learns again: memory
 * stays bounded whatever the readings name, and summaries go on. */
static void bounded(void **state)
{
    struct ts_station_windows *sw;
    struct published p = {0};
    char scp[16], st[16];
    assert_int_equal(ts_station_windows_new(&sw), TS_OK);
    ts_station_windows_set_limits(sw, 10, 3);
    for (int i = 0; i < 25; i++) {
        snprintf(scp, sizeof scp, "00-%05d", i);
        struct ts_reading r = reading("C001", scp);
        assert_int_equal(ts_station_windows_learn(sw, &r, i % 2 ? "S1" : "S2"), TS_OK);
    }
    assert_int_equal(ts_station_windows_resets(sw), 2);   /* at the 11th and the 21st */
    /* the last ones learnt still map to their station */
    struct ts_window_row r = row("C001", "00-00024", 0, 1, 1, false);
    ts_station_windows_row(sw, &r);
    ts_station_windows_flush(sw, collect, &p);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.topic[0], "turnstile/v1/S2/window");
    /* forgotten ones are unknown: no summary */
    r = row("C001", "00-00003", 300000, 1, 1, false);
    ts_station_windows_row(sw, &r);
    ts_station_windows_flush(sw, collect, &p);
    assert_int_equal(p.n, 1);
    /* a fourth station beyond the limit of 3 */
    for (int i = 0; i < 4; i++) {
        snprintf(st, sizeof st, "X%d", i);
        struct ts_reading x = reading("D001", "01-00-00");
        assert_int_equal(ts_station_windows_learn(sw, &x, st), TS_OK);
    }
    assert_int_equal(ts_station_windows_resets(sw), 3);
    ts_station_windows_free(sw);
}

/* Rows are bounded too: groups of one turnstile that differ by their other
 * fields (LINENAME here) are rows of their own, and past max_turnstiles rows
 * in all the rest are left out of the summary (it had no bound before). */
static void rows_bounded(void **state)
{
    struct ts_station_windows *sw;
    struct published p = {0};
    assert_int_equal(ts_station_windows_new(&sw), TS_OK);
    ts_station_windows_set_limits(sw, 10, 3);
    struct ts_reading a = reading("A002", "00-00-00");
    assert_int_equal(ts_station_windows_learn(sw, &a, "S1"), TS_OK);
    for (int i = 0; i < 25; i++) {
        struct ts_window_row r = row("A002", "00-00-00", 1000 * 300000LL, 1, 1, false);
        snprintf(r.linename, sizeof r.linename, "L%d", i);
        ts_station_windows_row(sw, &r);
    }
    ts_station_windows_flush(sw, collect, &p);
    assert_int_equal(p.n, 1);
    int rows = 0;
    for (const char *q = p.json[0]; (q = strstr(q, "\"linename\"")); q++)
        rows++;
    assert_int_equal(rows, 10);
    /* the next window starts again from none */
    struct ts_window_row r = row("A002", "00-00-00", 1001 * 300000LL, 1, 1, false);
    ts_station_windows_row(sw, &r);
    ts_station_windows_flush(sw, collect, &p);
    assert_int_equal(p.n, 2);
    assert_non_null(strstr(p.json[1], "\"window_start_ms\":300300000"));
    ts_station_windows_free(sw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(summaries),
        cmocka_unit_test(many),
        cmocka_unit_test(bounded),
        cmocka_unit_test(rows_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
