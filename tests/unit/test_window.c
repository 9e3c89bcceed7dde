/* SPDX-License-Identifier: Apache-2.0 */
/* Event-time windowed aggregation (bridge/window.h): tumbling and sliding
 * sums, edges, the watermark, late rows, the idle fallback, the memory
 * bound, local DATE/TIME, the saved state, and exactness under random input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "window.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define T0 1685160000000LL /* 2023-05-27 04:00:00Z, a multiple of 10 minutes */
#define EDT (-4 * 3600)

/* ---- helpers ---- */

struct rows {
    struct ts_window_row *v;
    size_t n, cap;
};

static void collect(const struct ts_window_row *row, void *ctx)
{
    struct rows *r = ctx;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->v = realloc(r->v, r->cap * sizeof *r->v);
        assert_non_null(r->v);
    }
    r->v[r->n++] = *row;
}

static void rows_free(struct rows *r)
{
    free(r->v);
    *r = (struct rows){0};
}

static struct ts_reading reading(const char *scp, const char *desc, int64_t t, uint64_t e,
                                 uint64_t x)
{
    struct ts_reading r = {.entries = e, .exits = x, .time_ms = t, .seq = 1};
    strcpy(r.ca, "A002");
    strcpy(r.unit, "R051");
    snprintf(r.scp, sizeof r.scp, "%s", scp);
    strcpy(r.station, "59 ST");
    strcpy(r.linename, "NQR456W");
    strcpy(r.division, "BMT");
    snprintf(r.desc, sizeof r.desc, "%s", desc);
    strcpy(r.agent_id, "a1");
    return r;
}

static void add(struct ts_window_agg *a, const char *scp, int64_t t, uint64_t e, uint64_t x,
                int64_t now)
{
    struct ts_reading r = reading(scp, "REGULAR", t, e, x);
    assert_int_equal(ts_window_add(a, &r, EDT, now), TS_OK);
}

static struct ts_window_agg *agg_cfg(const struct ts_window_cfg *cfg)
{
    struct ts_window_agg *a = NULL;
    char why[200] = "";
    int rc = ts_window_new(cfg, &a, why, sizeof why);
    if (rc)
        fprintf(stderr, "%s\n", why);
    assert_int_equal(rc, TS_OK);
    return a;
}

static struct ts_window_agg *agg_new(int64_t size, int64_t slide, int64_t lateness, int64_t idle,
                                     size_t max_open)
{
    struct ts_window_cfg cfg = {.size_ms = size, .slide_ms = slide, .lateness_ms = lateness,
                                .idle_ms = idle, .max_open = max_open};
    return agg_cfg(&cfg);
}

static const struct ts_window_row *find(const struct rows *r, const char *scp, int64_t start,
                                        bool late)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->v[i].scp, scp) && r->v[i].window_start_ms == start && r->v[i].late == late)
            return &r->v[i];
    return NULL;
}

static void expect_row(const struct rows *r, const char *scp, int64_t start, bool late,
                       uint64_t e, uint64_t x)
{
    const struct ts_window_row *row = find(r, scp, start, late);
    if (!row)
        fail_msg("no %s row for %s at %lld", late ? "late" : "on-time", scp, (long long)start);
    assert_int_equal(row->entries, e);
    assert_int_equal(row->exits, x);
}

/* ---- tests ---- */

static void test_cfg_checks(void **state)
{
    struct ts_window_cfg cfg;
    char why[200];
    ts_window_cfg_default(&cfg);
    assert_int_equal(cfg.size_ms, 5 * MIN);
    assert_int_equal(ts_window_cfg_check(&cfg, why, sizeof why), TS_OK);
    cfg.slide_ms = 10 * MIN;
    assert_int_equal(ts_window_cfg_check(&cfg, why, sizeof why), TS_EINVAL);
    assert_non_null(strstr(why, "slide"));
    ts_window_cfg_default(&cfg);
    cfg.size_ms = 1500;
    assert_int_equal(ts_window_cfg_check(&cfg, why, sizeof why), TS_EINVAL);
    ts_window_cfg_default(&cfg);
    cfg.lateness_ms = -2;
    assert_int_equal(ts_window_cfg_check(&cfg, why, sizeof why), TS_EINVAL);
    ts_window_cfg_default(&cfg);
    cfg.size_ms = 3600 * SEC;
    cfg.slide_ms = SEC;
    assert_int_equal(ts_window_cfg_check(&cfg, why, sizeof why), TS_EINVAL);
    struct ts_window_agg *a = NULL;
    assert_int_equal(ts_window_new(&cfg, &a, why, sizeof why), TS_EINVAL);
    assert_null(a);
    ts_window_free(NULL);
}

/* A fresh aggregator (nothing added, nothing allocated) advances, flushes
 * and encodes without touching its empty arrays (UBSan: memmove of NULL). */
static void test_empty_advance(void **state)
{
    struct ts_window_cfg cfg;
    struct ts_window_agg *a = NULL;
    char why[200], *text = NULL;
    size_t len = 0;
    ts_window_cfg_default(&cfg);
    assert_int_equal(ts_window_new(&cfg, &a, why, sizeof why), TS_OK);
    assert_int_equal(ts_window_advance(a, 1000, NULL, NULL), 0);
    assert_int_equal(ts_window_advance(a, 1000 + 3600 * SEC, NULL, NULL), 0);
    assert_int_equal(ts_window_flush_all(a, NULL, NULL), 0);
    assert_int_equal(ts_window_encode(a, &text, &len), TS_OK);
    assert_non_null(strstr(text, "end\n"));
    free(text);
    ts_window_free(a);
}

static void test_bad_readings(void **state)
{
    struct ts_window_agg *a = agg_new(5 * MIN, 0, -1, 0, 0);
    struct ts_reading r = reading("02-00-00", "REGULAR", -1, 1, 1);
    assert_int_equal(ts_window_add(a, &r, 0, 0), TS_EINVAL);
    r = reading("02-00-00", "REGULAR", T0, 1, 1);
    assert_int_equal(ts_window_add(a, &r, 19 * 3600, 0), TS_EINVAL);
    r = reading("02,00", "REGULAR", T0, 1, 1);
    assert_int_equal(ts_window_add(a, &r, 0, 0), TS_EINVAL);
    r = reading("02-00-00", "", T0, 1, 1);
    assert_int_equal(ts_window_add(a, &r, 0, 0), TS_EINVAL);
    r = reading("02-00-00", "REGULAR", T0, 1, 1);
    memset(r.scp, 'x', sizeof r.scp); /* no terminator */
    assert_int_equal(ts_window_add(a, &r, 0, 0), TS_EINVAL);
    struct ts_window_stats st;
    ts_window_stats(a, &st);
    assert_int_equal(st.readings, 0);
    assert_int_equal(st.open_groups, 0);
    assert_true(ts_window_watermark(a) == INT64_MIN);
    ts_window_free(a);
}

static void test_tumbling_sums(void **state)
{
    struct ts_window_agg *a = agg_new(5 * MIN, 0, -1, 0, 0);
    struct rows r = {0};
    add(a, "02-00-00", T0, 3, 1, 0);
    add(a, "02-00-00", T0 + 1 * MIN, 4, 2, 0);
    add(a, "02-00-01", T0 + 2 * MIN, 10, 20, 0);
    add(a, "02-00-00", T0 + 5 * MIN - 1, 5, 3, 0);
    add(a, "02-00-00", T0 + 5 * MIN, 100, 200, 0);
    struct ts_reading rec = reading("02-00-00", "RECOVR AUD", T0 + 3 * MIN, 7, 7);
    assert_int_equal(ts_window_add(a, &rec, EDT, 0), TS_OK);
    struct ts_window_stats st;
    ts_window_stats(a, &st);
    assert_int_equal(st.open_windows, 2);
    assert_int_equal(st.open_groups, 4);
    assert_int_equal(ts_window_advance(a, 0, collect, &r), 0); /* watermark T0 */
    assert_int_equal(ts_window_flush_all(a, collect, &r), 4);
    /* window-end order, then order of first reading */
    assert_int_equal(r.n, 4);
    assert_string_equal(r.v[0].scp, "02-00-00");
    assert_string_equal(r.v[0].desc, "REGULAR");
    assert_int_equal(r.v[0].entries, 12);
    assert_int_equal(r.v[0].exits, 6);
    assert_int_equal(r.v[0].window_start_ms, T0);
    assert_int_equal(r.v[0].window_end_ms, T0 + 5 * MIN);
    assert_false(r.v[0].late);
    assert_string_equal(r.v[1].scp, "02-00-01");
    assert_int_equal(r.v[1].entries, 10);
    assert_string_equal(r.v[2].desc, "RECOVR AUD");
    assert_int_equal(r.v[2].entries, 7);
    assert_int_equal(r.v[3].window_start_ms, T0 + 5 * MIN);
    assert_int_equal(r.v[3].entries, 100);
    assert_string_equal(r.v[3].ca, "A002");
    assert_string_equal(r.v[3].unit, "R051");
    assert_string_equal(r.v[3].station, "59 ST");
    assert_string_equal(r.v[3].linename, "NQR456W");
    assert_string_equal(r.v[3].division, "BMT");
    ts_window_stats(a, &st);
    assert_int_equal(st.rows, 4);
    assert_int_equal(st.closed_flush, 2);
    assert_int_equal(st.open_groups, 0);
    rows_free(&r);
    ts_window_free(a);
}

static void test_sliding(void **state)
{
    struct ts_window_agg *a = agg_new(10 * MIN, 5 * MIN, -1, 0, 0);
    struct rows r = {0};
    add(a, "02-00-00", T0 + 7 * MIN, 2, 1, 0);  /* [T0, T0+10) and [T0+5, T0+15) */
    add(a, "02-00-00", T0 + 12 * MIN, 5, 5, 0); /* [T0+5, T0+15) and [T0+10, T0+20) */
    add(a, "02-00-00", T0 + 10 * MIN, 1, 0, 0); /* the edge: [T0+5..) and [T0+10..) */
    ts_window_flush_all(a, collect, &r);
    assert_int_equal(r.n, 3);
    expect_row(&r, "02-00-00", T0, false, 2, 1);
    expect_row(&r, "02-00-00", T0 + 5 * MIN, false, 8, 6);
    expect_row(&r, "02-00-00", T0 + 10 * MIN, false, 6, 5);
    assert_int_equal(r.v[0].window_end_ms - r.v[0].window_start_ms, 10 * MIN);
    uint64_t sum = 0;
    for (size_t i = 0; i < r.n; i++)
        sum += r.v[i].entries;
    assert_int_equal(sum, 2 * (2 + 5 + 1)); /* each reading in 2 windows */
    rows_free(&r);
    ts_window_free(a);
}

static void test_edges(void **state)
{
    struct ts_window_agg *a = agg_new(5 * MIN, 0, 0, 0, 0);
    struct rows r = {0};
    add(a, "e", T0 - 1, 1, 0, 0);            /* last ms of [T0-5, T0) */
    add(a, "e", T0, 10, 0, 0);               /* first ms of [T0, T0+5) */
    add(a, "e", T0 + 5 * MIN - 1, 100, 0, 0); /* last ms of [T0, T0+5) */
    /* lateness 0: the watermark T0+5min-1 has not reached T0's end yet */
    assert_int_equal(ts_window_advance(a, 0, collect, &r), 1);
    expect_row(&r, "e", T0 - 5 * MIN, false, 1, 0);
    add(a, "e", T0 + 5 * MIN, 1000, 0, 0); /* watermark = T0's end exactly */
    assert_int_equal(ts_window_advance(a, 0, collect, &r), 1);
    expect_row(&r, "e", T0, false, 110, 0);
    assert_string_equal(r.v[1].time, "00:05:00");
    ts_window_flush_all(a, collect, &r);
    expect_row(&r, "e", T0 + 5 * MIN, false, 1000, 0);
    rows_free(&r);
    ts_window_free(a);
}

static void test_watermark_closing(void **state)
{
    struct ts_window_agg *a = agg_new(5 * MIN, 0, -1, 0, 0); /* lateness = 5 min */
    struct rows r = {0};
    add(a, "w", T0 + 1 * MIN, 1, 1, 0);
    assert_true(ts_window_watermark(a) == T0 + 1 * MIN - 5 * MIN);
    add(a, "w", T0 + 10 * MIN - 1, 2, 2, 0);
    assert_int_equal(ts_window_advance(a, 0, collect, &r), 0);
    add(a, "w", T0 + 3 * MIN, 4, 4, 0); /* still on time: the window is open */
    add(a, "w", T0 + 10 * MIN, 8, 8, 0);  /* watermark T0+5min: closes [T0, T0+5) */
    assert_int_equal(ts_window_advance(a, 0, collect, &r), 1);
    expect_row(&r, "w", T0, false, 5, 5);
    add(a, "w", T0 + 20 * MIN, 16, 16, 0); /* closes [T0+5, T0+10) and [T0+10, T0+15) */
    assert_int_equal(ts_window_advance(a, 0, collect, &r), 2);
    assert_int_equal(r.v[1].window_start_ms, T0 + 5 * MIN);
    assert_int_equal(r.v[2].window_start_ms, T0 + 10 * MIN);
    struct ts_window_stats st;
    ts_window_stats(a, &st);
    assert_int_equal(st.closed_watermark, 3);
    assert_int_equal(st.open_windows, 1);
    rows_free(&r);
    ts_window_free(a);
}

static void test_late_rows_exact(void **state)
{
    struct ts_window_agg *a = agg_new(5 * MIN, 0, -1, 0, 0);
    struct rows r = {0};
    uint64_t in_e = 0, in_x = 0;
#define ADD(scp, t, e, x) (add(a, scp, t, e, x, 0), in_e += (e), in_x += (x))
    ADD("l", T0 + 1 * MIN, 1, 2);
    ADD("m", T0 + 2 * MIN, 3, 4);
    ADD("l", T0 + 16 * MIN, 5, 6); /* watermark T0+11min */
    assert_int_equal(ts_window_advance(a, 0, collect, &r), 2); /* [T0, T0+5) emitted */
    ADD("l", T0 + 4 * MIN, 10, 20); /* late for [T0, T0+5) */
    ADD("l", T0 + 0 * MIN, 30, 40); /* merged into the same late row */
    ADD("n", T0 + 3 * MIN, 7, 7);   /* late, a key with no earlier row */
    ADD("l", T0 + 7 * MIN, 50, 60); /* [T0+5, T0+10) never opened but closed: late */
    ADD("l", T0 + 12 * MIN, 1, 1);  /* [T0+10, T0+15) is still open: on time */
    struct ts_window_stats st;
    ts_window_stats(a, &st);
    assert_int_equal(st.late_groups, 3);
    assert_int_equal(st.late_readings, 4);
    assert_int_equal(ts_window_advance(a, 0, collect, &r), 3);
    expect_row(&r, "l", T0, true, 40, 60);
    expect_row(&r, "n", T0, true, 7, 7);
    expect_row(&r, "l", T0 + 5 * MIN, true, 50, 60);
    assert_true(r.v[2].late && r.v[2].window_start_ms == T0);
    assert_int_equal(r.v[4].window_start_ms, T0 + 5 * MIN); /* late rows in window order */
    ADD("l", T0 + 2 * MIN, 100, 100); /* a second late batch: another row */
    assert_int_equal(ts_window_advance(a, 0, collect, &r), 1);
    assert_true(r.v[5].late);
    assert_int_equal(r.v[5].entries, 100);
    ts_window_flush_all(a, collect, &r);
    uint64_t out_e = 0, out_x = 0;
    for (size_t i = 0; i < r.n; i++)
        out_e += r.v[i].entries, out_x += r.v[i].exits;
    assert_int_equal(out_e, in_e);
    assert_int_equal(out_x, in_x);
    ts_window_stats(a, &st);
    assert_int_equal(st.late_rows, 4);
    assert_int_equal(st.rows, r.n);
#undef ADD
    rows_free(&r);
    ts_window_free(a);
}

static void test_idle_fallback(void **state)
{
    /* lateness 1 h: only the idle fallback can close these windows */
    struct ts_window_agg *a = agg_new(5 * MIN, 0, 60 * MIN, 2 * MIN, 0);
    struct rows r = {0};
    int64_t now = 1000000;
    add(a, "i", T0 + 1 * MIN, 1, 0, now);
    /* the stream goes on with rising event times: W0 gets no update, but the
     * watermark moves, so it is not idle */
    for (int k = 0; k < 10; k++) {
        now += 30 * SEC;
        add(a, "i", T0 + 5 * MIN + k * 10 * SEC, 1, 0, now);
        assert_int_equal(ts_window_advance(a, now, collect, &r), 0);
    }
    /* a behind agent keeps updating [T0+5, T0+10) while the max stays put */
    int64_t last = now;
    now += 90 * SEC;
    add(a, "j", T0 + 6 * MIN, 1, 0, now);
    assert_int_equal(ts_window_advance(a, last + 2 * MIN - 1, collect, &r), 0);
    /* T0's window: its last update and the watermark's last rise are >= 2 min old */
    assert_int_equal(ts_window_advance(a, last + 2 * MIN, collect, &r), 1);
    expect_row(&r, "i", T0, false, 1, 0);
    assert_int_equal(ts_window_advance(a, now + 2 * MIN - 1, collect, &r), 0);
    assert_int_equal(ts_window_advance(a, now + 2 * MIN, collect, &r), 2);
    expect_row(&r, "i", T0 + 5 * MIN, false, 10, 0);
    expect_row(&r, "j", T0 + 5 * MIN, false, 1, 0);
    struct ts_window_stats st;
    ts_window_stats(a, &st);
    assert_int_equal(st.closed_idle, 2);
    assert_int_equal(st.open_windows, 0);
    /* closed ahead of the watermark: a reading for it is now late */
    add(a, "i", T0 + 2 * MIN, 5, 0, now + 3 * MIN);
    assert_int_equal(ts_window_advance(a, now + 3 * MIN, collect, &r), 1);
    expect_row(&r, "i", T0, true, 5, 0);
    rows_free(&r);
    ts_window_free(a);
}

static void test_memory_bound(void **state)
{
    struct ts_window_agg *a = agg_new(5 * MIN, 0, 60 * MIN, 0, 3);
    struct rows r = {0};
    add(a, "a", T0 + 5 * MIN, 1, 0, 0);
    add(a, "b", T0 + 5 * MIN, 2, 0, 0);
    add(a, "a", T0, 4, 0, 0);
    add(a, "b", T0, 8, 0, 0);
    add(a, "a", T0 + 10 * MIN, 16, 0, 0);
    assert_int_equal(ts_window_advance(a, 0, collect, &r), 2); /* 5 > 3: [T0..) goes */
    expect_row(&r, "a", T0, false, 4, 0);
    expect_row(&r, "b", T0, false, 8, 0);
    struct ts_window_stats st;
    ts_window_stats(a, &st);
    assert_int_equal(st.closed_memory, 1);
    assert_int_equal(st.open_groups, 3);
    assert_int_equal(ts_window_advance(a, 0, collect, &r), 0); /* at the bound: stays */
    add(a, "a", T0 + 1 * MIN, 32, 0, 0); /* closed early: late */
    add(a, "c", T0 + 10 * MIN, 64, 0, 0); /* 4 open > 3: [T0+5..) goes */
    assert_int_equal(ts_window_advance(a, 0, collect, &r), 3);
    expect_row(&r, "a", T0 + 5 * MIN, false, 1, 0);
    expect_row(&r, "a", T0, true, 32, 0);
    assert_true(r.v[4].late); /* late rows after the closed windows' */
    ts_window_stats(a, &st);
    assert_int_equal(st.closed_memory, 2);
    rows_free(&r);
    ts_window_free(a);
}

static void test_local_date_time(void **state)
{
    struct ts_window_agg *a = agg_new(5 * MIN, 0, -1, 0, 0);
    struct rows r = {0};
    /* 2023-05-27 03:59:00Z is 05/26/2023 23:59:00 at UTC-4; its window ends
     * at 04:00:00Z, local midnight: TIME 00:00:00 with the group's DATE */
    add(a, "d", 1685159940000LL, 1, 0, 0);
    add(a, "d", 1685160000000LL, 2, 0, 0); /* 05/27/2023 00:00:00 local */
    struct ts_reading in = reading("d2", "REGULAR", 1685160000000LL, 4, 0);
    assert_int_equal(ts_window_add(a, &in, 5 * 3600 + 1800, 0), TS_OK); /* +05:30 */
    in = reading("d", "REGULAR", 1685145600000LL + 2 * MIN, 8, 0); /* 00:02Z */
    assert_int_equal(ts_window_add(a, &in, 0, 0), TS_OK);
    ts_window_flush_all(a, collect, &r);
    assert_int_equal(r.n, 4);
    /* 00:02Z at UTC+0 comes first: its window ends earliest */
    assert_string_equal(r.v[0].date, "05/27/2023");
    assert_string_equal(r.v[0].time, "00:05:00");
    assert_string_equal(r.v[1].date, "05/26/2023");
    assert_string_equal(r.v[1].time, "00:00:00");
    assert_int_equal(r.v[1].window_end_ms, 1685160000000LL);
    assert_int_equal(r.v[1].utc_offset_s, EDT);
    assert_int_equal(r.v[1].entries, 1);
    assert_string_equal(r.v[2].date, "05/27/2023");
    assert_string_equal(r.v[2].time, "00:05:00");
    assert_int_equal(r.v[2].entries, 2);
    assert_string_equal(r.v[3].date, "05/27/2023");
    assert_string_equal(r.v[3].time, "09:35:00");
    assert_int_equal(r.v[3].entries, 4);
    rows_free(&r);
    ts_window_free(a);
}

/* Many keys: the tables grow, groups are freed and reused, sums hold. */
static void test_many_keys(void **state)
{
    struct ts_window_agg *a = agg_new(5 * MIN, 0, -1, 0, 0);
    struct rows r = {0};
    enum { KEYS = 3000, SECONDS = 40 * 60 };
    char scp[16];
    uint64_t in = 0;
    for (int64_t sec = 0; sec < SECONDS; sec += 20) {
        for (int k = 0; k < KEYS; k++) {
            snprintf(scp, sizeof scp, "k%d", k);
            add(a, scp, T0 + sec * SEC, (uint64_t)k % 7, 1, sec * SEC);
            in += (uint64_t)k % 7;
        }
        ts_window_advance(a, sec * SEC, collect, &r);
    }
    struct ts_window_stats st;
    ts_window_stats(a, &st);
    assert_int_equal(st.open_windows, 2); /* lateness one window */
    assert_int_equal(st.open_groups, 2 * KEYS);
    ts_window_flush_all(a, collect, &r);
    assert_int_equal(r.n, (size_t)KEYS * (SECONDS / 300));
    uint64_t out = 0;
    for (size_t i = 0; i < r.n; i++) {
        out += r.v[i].entries;
        assert_int_equal(r.v[i].exits, 15);
        assert_false(r.v[i].late);
    }
    assert_int_equal(out, in);
    rows_free(&r);
    ts_window_free(a);
}

/* ---- saved state ---- */

struct step {
    const char *scp;
    int64_t t;
    uint64_t e;
    int advance; /* 1: advance after the add, 2: flush after */
};

static const struct step script[] = {
    {"s1", T0 + 1 * MIN, 1, 0},   {"s2", T0 + 2 * MIN, 2, 0},   {"s1", T0 + 6 * MIN, 4, 0},
    {"s1", T0 + 9 * MIN, 8, 0},   {"s3", T0 + 11 * MIN, 16, 1}, {"s1", T0 + 3 * MIN, 32, 0},
    {"s2", T0 + 12 * MIN, 64, 0}, {"s2", T0 + 26 * MIN, 128, 0}, /* memory bound: 3 */
    {"s1", T0 + 27 * MIN, 256, 1}, {"s1", T0 + 4 * MIN, 512, 0}, {"s3", T0 + 16 * MIN, 1024, 0},
    {"s1", T0 + 29 * MIN, 2048, 0}, {"s2", T0 + 31 * MIN, 4096, 1}, {"s3", T0 + 8 * MIN, 1, 0},
    {"s3", T0 + 33 * MIN, 2, 0},  {"s1", T0 + 40 * MIN, 4, 1},  {"s2", T0 + 2 * MIN, 8, 0},
    {"s1", T0 + 41 * MIN, 16, 0},
};
#define N_SCRIPT (sizeof script / sizeof script[0])

static struct ts_window_agg *run_script(struct ts_window_agg *a, size_t from, size_t to,
                                        struct rows *r)
{
    for (size_t i = from; i < to; i++) {
        add(a, script[i].scp, script[i].t, script[i].e, 0, 0);
        if (script[i].advance)
            ts_window_advance(a, 0, collect, r);
    }
    return a;
}

/* Encodes, frees, makes a new aggregator with cfg, decodes; checks that
 * encoding the decoded state gives the same text. */
static void restart(struct ts_window_agg **a, const struct ts_window_cfg *cfg, int64_t now)
{
    char *text = NULL, *text2 = NULL, why[200] = "";
    size_t len = 0, len2 = 0;
    assert_int_equal(ts_window_encode(*a, &text, &len), TS_OK);
    assert_int_equal(strlen(text), len);
    ts_window_free(*a);
    *a = agg_cfg(cfg);
    int rc = ts_window_decode(*a, text, len, now, why, sizeof why);
    if (rc)
        fprintf(stderr, "%s\n", why);
    assert_int_equal(rc, TS_OK);
    assert_int_equal(ts_window_encode(*a, &text2, &len2), TS_OK);
    assert_string_equal(text, text2); /* the state is the same */
    free(text);
    free(text2);
}

static void same_rows(const struct rows *x, const struct rows *y)
{
    assert_int_equal(x->n, y->n);
    for (size_t i = 0; i < x->n; i++) {
        assert_string_equal(x->v[i].scp, y->v[i].scp);
        assert_string_equal(x->v[i].date, y->v[i].date);
        assert_string_equal(x->v[i].time, y->v[i].time);
        assert_int_equal(x->v[i].window_start_ms, y->v[i].window_start_ms);
        assert_int_equal(x->v[i].entries, y->v[i].entries);
        assert_int_equal(x->v[i].late, y->v[i].late);
    }
}

static void test_state_round_trip(void **state)
{
    const struct ts_window_cfg cfgs[] = {
        {.size_ms = 5 * MIN, .lateness_ms = -1, .max_open = 3},
        {.size_ms = 10 * MIN, .slide_ms = 5 * MIN, .lateness_ms = -1, .max_open = 3},
    };
    for (size_t c = 0; c < 2; c++) {
        struct rows ref = {0};
        struct ts_window_agg *a = agg_cfg(&cfgs[c]);
        run_script(a, 0, N_SCRIPT, &ref);
        ts_window_flush_all(a, collect, &ref);
        ts_window_free(a);
        assert_true(ref.n > 8);
        bool some_late = false;
        for (size_t i = 0; i < ref.n; i++)
            some_late |= ref.v[i].late;
        assert_true(some_late);
        /* a restart after every step gives the same rows */
        for (size_t cut = 0; cut <= N_SCRIPT; cut++) {
            struct rows got = {0};
            a = agg_cfg(&cfgs[c]);
            run_script(a, 0, cut, &got);
            restart(&a, &cfgs[c], 0);
            run_script(a, cut, N_SCRIPT, &got);
            ts_window_flush_all(a, collect, &got);
            same_rows(&ref, &got);
            rows_free(&got);
            ts_window_free(a);
        }
        rows_free(&ref);
    }
}

static void test_state_errors(void **state)
{
    struct ts_window_agg *a = agg_new(5 * MIN, 0, -1, 0, 0);
    struct rows r = {0};
    add(a, "x", T0 + 1 * MIN, 1, 0, 0);
    add(a, "x", T0 + 20 * MIN, 2, 0, 0);
    ts_window_advance(a, 0, collect, &r);
    add(a, "x", T0 + 2 * MIN, 4, 0, 0); /* late, pending */
    char *text = NULL, why[200] = "";
    size_t len = 0;
    assert_int_equal(ts_window_encode(a, &text, &len), TS_OK);
    assert_non_null(strstr(text, "ts-window-state 1\n"));
    assert_non_null(strstr(text, " A002,R051,x,59 ST,NQR456W,BMT,REGULAR\n"));

    /* not fresh */
    assert_int_equal(ts_window_decode(a, text, len, 0, why, sizeof why), TS_EINVAL);
    ts_window_free(a);

    /* another window size */
    a = agg_new(10 * MIN, 0, -1, 0, 0);
    assert_int_equal(ts_window_decode(a, text, len, 0, why, sizeof why), TS_EINVAL);
    assert_non_null(strstr(why, "line 2"));
    ts_window_free(a);

    a = agg_new(5 * MIN, 0, -1, 0, 0);
    /* truncated: every prefix short of "end" fails and leaves the aggregator empty */
    for (size_t cut = 0; cut < len - 1; cut++) {
        int rc = ts_window_decode(a, text, cut, 0, why, sizeof why);
        assert_true(rc == TS_EPARSE || rc == TS_EINVAL);
        struct ts_window_stats st;
        ts_window_stats(a, &st);
        assert_int_equal(st.open_groups + st.late_groups, 0);
    }
    /* a corrupted copy */
    char *bad = strdup(text);
    char *g = strstr(bad, "group ");
    assert_non_null(g);
    g[6] = 'z';
    assert_int_equal(ts_window_decode(a, bad, len, 0, why, sizeof why), TS_EPARSE);
    assert_non_null(strstr(why, "group"));
    free(bad);
    /* trailing garbage */
    size_t blen = len + 4;
    bad = malloc(blen + 1);
    memcpy(bad, text, len);
    memcpy(bad + len, "xyz\n", 5);
    assert_int_equal(ts_window_decode(a, bad, blen, 0, why, sizeof why), TS_EPARSE);
    free(bad);
    /* still usable: the right text decodes and the pending late row comes out */
    assert_int_equal(ts_window_decode(a, text, len, 0, why, sizeof why), TS_OK);
    size_t before = r.n;
    ts_window_advance(a, 0, collect, &r);
    assert_int_equal(r.n, before + 1);
    assert_true(r.v[before].late);
    assert_int_equal(r.v[before].entries, 4);
    free(text);
    rows_free(&r);
    ts_window_free(a);
}

/* ---- randomized exactness ---- */

static uint64_t rng_state;

static uint64_t rnd(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t below(uint64_t n)
{
    return rnd() % n;
}

#define N_SCP 6
#define MAX_W 2048

/* expected and emitted sums per (scp, desc, window index) */
struct tally {
    uint64_t e, x;
};

static void test_random_exactness(void **state)
{
    static struct tally want[N_SCP][2][MAX_W], got[N_SCP][2][MAX_W];
    static const char *desc[2] = {"REGULAR", "RECOVR AUD"};
    const int64_t base = T0 - 3 * 3600 * SEC; /* crosses local midnights */
    for (int round = 0; round < 24; round++) {
        rng_state = 0x5eed0000u + (uint64_t)round;
        int64_t size = (int64_t)(1 + below(3)) * 5 * MIN;
        int64_t slide = below(2) ? size : 5 * MIN;
        int64_t lateness = below(3) == 0 ? 0 : (int64_t)below(20) * MIN;
        int64_t idle = below(2) ? 0 : (int64_t)(1 + below(5)) * MIN;
        size_t max_open = below(2) ? 0 : 1 + below(20);
        struct ts_window_cfg cfg = {.size_ms = size, .slide_ms = slide == size ? 0 : slide,
                                    .lateness_ms = lateness, .idle_ms = idle,
                                    .max_open = max_open};
        struct ts_window_agg *a = agg_cfg(&cfg);
        memset(want, 0, sizeof want);
        memset(got, 0, sizeof got);
        struct rows r = {0};
        int64_t now = 5000, clock = base;
        size_t n = 3000 + below(3000), restarts = 0;
        for (size_t i = 0; i < n; i++) {
            clock += (int64_t)below(20 * SEC);
            now += (int64_t)below(20 * SEC);
            int64_t t = clock;
            uint64_t k = below(100);
            if (k < 10)
                t -= (int64_t)below(60 * MIN); /* late, maybe very */
            else if (k < 12)
                t += (int64_t)below(10 * MIN); /* ahead */
            if (t < base)
                t = base;
            int s = (int)below(N_SCP), d = below(10) == 0;
            char scp[16];
            snprintf(scp, sizeof scp, "01-00-%02d", s);
            struct ts_reading in = reading(scp, desc[d], t, below(50), below(50));
            int32_t off = s % 2 ? EDT : -5 * 3600;
            assert_int_equal(ts_window_add(a, &in, off, now), TS_OK);
            for (int64_t ws = t / slide * slide; ws + size > t; ws -= slide) {
                int64_t w = (ws - (base - size)) / slide;
                assert_true(w >= 0 && w < MAX_W);
                want[s][d][w].e += in.entries;
                want[s][d][w].x += in.exits;
            }
            if (below(10) == 0)
                ts_window_advance(a, now, collect, &r);
            if (below(200) == 0) {
                now += (int64_t)below(10 * MIN); /* a pause: the idle fallback */
                ts_window_advance(a, now, collect, &r);
            }
            if (below(500) == 0) {
                restart(&a, &cfg, now);
                restarts++;
            }
        }
        ts_window_flush_all(a, collect, &r);
        struct ts_window_stats st;
        ts_window_stats(a, &st);
        assert_int_equal(st.open_groups + st.late_groups, 0);
        if (!restarts) /* stats are per process, not part of the state */
            assert_int_equal(st.rows, r.n);

        /* every row matches its key; on-time rows are at most one per key
         * (a sliding window across local midnight has a group per DATE) */
        static unsigned char ontime[N_SCP][2][MAX_W][3];
        memset(ontime, 0, sizeof ontime);
        for (size_t i = 0; i < r.n; i++) {
            const struct ts_window_row *row = &r.v[i];
            int s = atoi(row->scp + 6), d = !strcmp(row->desc, desc[1]);
            int64_t w = (row->window_start_ms - (base - size)) / slide;
            int day = atoi(row->date + 3) - 26; /* 05/26/2023 .. 05/28/2023 */
            assert_true(w >= 0 && w < MAX_W);
            assert_true(day >= 0 && day < 3 && !strncmp(row->date, "05/", 3));
            assert_int_equal(row->window_end_ms - row->window_start_ms, size);
            assert_int_equal(row->window_start_ms % slide, 0);
            if (!row->late) {
                assert_int_equal(ontime[s][d][w][day], 0);
                ontime[s][d][w][day] = 1;
            }
            got[s][d][w].e += row->entries;
            got[s][d][w].x += row->exits;
        }
        assert_memory_equal(want, got, sizeof want);
        size_t late = 0;
        for (size_t i = 0; i < r.n; i++)
            late += r.v[i].late;
        print_message("round %d: size %lld slide %lld lateness %lld idle %lld max_open %zu: "
                      "%zu readings, %zu rows (%zu late), %zu restarts\n",
                      round, (long long)size, (long long)slide, (long long)lateness,
                      (long long)idle, max_open, n, r.n, late, restarts);
        rows_free(&r);
        ts_window_free(a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfg_checks),
        cmocka_unit_test(test_empty_advance),
        cmocka_unit_test(test_bad_readings),
        cmocka_unit_test(test_tumbling_sums),
        cmocka_unit_test(test_sliding),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_watermark_closing),
        cmocka_unit_test(test_late_rows_exact),
        cmocka_unit_test(test_idle_fallback),
        cmocka_unit_test(test_memory_bound),
        cmocka_unit_test(test_local_date_time),
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_state_errors),
        cmocka_unit_test(test_random_exactness),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
