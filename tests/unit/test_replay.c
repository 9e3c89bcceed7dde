/* SPDX-License-Identifier: Apache-2.0 */
/* test_replay.c - the MTA file reader and the replay model. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "err.h"
#include "mta_file.h"
#include "replay.h"

#define HOUR_MS 3600000LL
#define MAY27_NY_MS 1685160000000LL /* 2023-05-27 00:00:00 EDT */

static const char *mta_path(void)
{
    const char *p = getenv("TS_MTA_FILE");
    return p && *p ? p : "/work/shared/data/mta/turnstile_230603.csv.gz";
}

/* ---- the real week, loaded once ------------------------------------------ */

static struct ts_mta_data *week;

static int load_week(void **state)
{
    char err[512];
    int rc = ts_mta_load(mta_path(), NULL, &week, err, sizeof err);
    if (rc)
        fprintf(stderr, "cannot load %s: %s\n", mta_path(), err);
    else
        ts_replay_prepare(week);
    return rc;
}

static int free_week(void **state)
{
    ts_mta_free(week);
    week = NULL;
    return 0;
}

static void test_real_counts(void **state)
{
    assert_int_equal(week->n_turnstiles, 5043);
    assert_int_equal(week->n_rows, 253237);
    assert_true(week->file_first_ms == MAY27_NY_MS);
    assert_true(week->first_ms == MAY27_NY_MS);
    assert_true(week->last_ms < MAY27_NY_MS + 7 * 24 * HOUR_MS);
    size_t recovered = 0;
    for (size_t i = 0; i < week->n_turnstiles; i++)
        for (size_t k = 0; k < week->turnstiles[i].n_readings; k++)
            recovered += week->turnstiles[i].readings[k].recovered;
    assert_int_equal(recovered, 1363);
}

static void test_real_known_row(void **state)
{
    /* 0,A002,R051,02-00-00,59 ST,NQR456W,BMT,05/27/2023,00:00:00,REGULAR,2040,985 */
    const struct ts_mta_turnstile *t = ts_mta_find(week, "A002", "R051", "02-00-00");
    assert_non_null(t);
    assert_ptr_equal(t, &week->turnstiles[0]);
    assert_string_equal(t->station, "59 ST");
    assert_string_equal(t->linename, "NQR456W");
    assert_string_equal(t->division, "BMT");
    assert_true(t->readings[0].time_ms == MAY27_NY_MS);
    assert_int_equal(t->readings[0].entries, 2040);
    assert_int_equal(t->readings[0].exits, 985);
    assert_false(t->readings[0].recovered);
    assert_true(t->readings[1].time_ms == MAY27_NY_MS + 4 * HOUR_MS);
    assert_int_equal(t->readings[1].entries, 2049);
    assert_null(ts_mta_find(week, "A002", "R051", "99-99-99"));
}

static void test_real_interpolation(void **state)
{
    const struct ts_mta_turnstile *t = ts_mta_find(week, "A002", "R051", "02-00-00");
    uint64_t e, x;

    ts_replay_at(t, MAY27_NY_MS - HOUR_MS, NULL, &e, &x); /* before the first reading */
    assert_int_equal(e, 2040);
    assert_int_equal(x, 985);
    ts_replay_at(t, MAY27_NY_MS + 2 * HOUR_MS, NULL, &e, &x); /* 2040..2049, 985..990 */
    assert_int_equal(e, 2044);
    assert_int_equal(x, 987);
    ts_replay_at(t, MAY27_NY_MS + 4 * HOUR_MS, NULL, &e, &x);
    assert_int_equal(e, 2049);
    assert_int_equal(x, 990);
    ts_replay_at(t, week->last_ms + 24 * HOUR_MS, NULL, &e, &x); /* after the last */
    assert_int_equal(e, t->readings[t->n_readings - 1].entries);
    assert_int_equal(x, t->readings[t->n_readings - 1].exits);
}

/* B025/R150/00-00-01 at AVENUE U: 632457 (06/01 01:00) -> 306 (06/01 13:00). */
static void test_real_reset_steps(void **state)
{
    const struct ts_mta_turnstile *t = ts_mta_find(week, "B025", "R150", "00-00-01");
    int64_t t1 = 0, t2 = 0;
    uint64_t e, x;

    assert_non_null(t);
    assert_int_equal(ts_mta_parse_time("06/01/2023", "01:00:00", &t1), TS_OK);
    assert_int_equal(ts_mta_parse_time("06/01/2023", "13:00:00", &t2), TS_OK);
    ts_replay_at(t, t1, NULL, &e, &x);
    assert_int_equal(e, 632457);
    assert_int_equal(x, 170244);
    ts_replay_at(t, t1 + 6 * HOUR_MS, NULL, &e, &x);
    assert_int_equal(e, 632457);
    assert_int_equal(x, 170244);
    ts_replay_at(t, t2 - 1, NULL, &e, &x);
    assert_int_equal(e, 632457);
    ts_replay_at(t, t2, NULL, &e, &x);
    assert_int_equal(e, 306);
    assert_int_equal(x, 58);
    ts_replay_at(t, t2 + 2 * HOUR_MS, NULL, &e, &x); /* 306 -> 546 by 17:00 */
    assert_int_equal(e, 426);
}

/* A011/R080/01-03-00 counts downward: it falls linearly, as an up counter
 * rises (885337107 -> 885337086 and 488548944 -> 488548895 in 4 hours). */
static void test_real_downward_falls(void **state)
{
    const struct ts_mta_turnstile *t = ts_mta_find(week, "A011", "R080", "01-03-00");
    uint64_t e, x;

    assert_non_null(t);
    assert_int_equal(t->replay_dir[TS_REPLAY_ENTRIES], -1);
    assert_int_equal(t->replay_dir[TS_REPLAY_EXITS], -1);
    ts_replay_at(t, MAY27_NY_MS + 2 * HOUR_MS, NULL, &e, &x);
    assert_int_equal(e, 885337107 - 10); /* 21 / 2, rounded toward the earlier reading */
    assert_int_equal(x, 488548944 - 24);
    ts_replay_at(t, MAY27_NY_MS + 4 * HOUR_MS - 1, NULL, &e, &x);
    assert_int_equal(e, 885337087);
    ts_replay_at(t, MAY27_NY_MS + 4 * HOUR_MS, NULL, &e, &x);
    assert_int_equal(e, 885337086);
    assert_int_equal(x, 488548895);
    /* the same values when the directions are not prepared (counted at each call) */
    struct ts_mta_turnstile bare = *t;
    bare.replay_dir[0] = bare.replay_dir[1] = 0;
    ts_replay_at(&bare, MAY27_NY_MS + 2 * HOUR_MS, NULL, &e, &x);
    assert_int_equal(e, 885337097);
    assert_int_equal(x, 488548920);
}

/* Within one segment the replay is monotonic, and it reaches every reading
 * at its time, for every turnstile of the week. */
static void test_real_segments(void **state)
{
    size_t linear = 0, steps = 0;

    for (size_t i = 0; i < week->n_turnstiles; i++) {
        const struct ts_mta_turnstile *t = &week->turnstiles[i];
        for (size_t k = 0, nk; k + 1 < t->n_readings; k = nk) {
            /* the value at a time is its last row: from there to the next time's */
            for (nk = k + 1; nk + 1 < t->n_readings && t->readings[nk + 1].time_ms == t->readings[nk].time_ms;)
                nk++;
            const struct ts_mta_reading *a = &t->readings[k], *b = &t->readings[nk];
            uint64_t e[5], x[5];

            if (b->time_ms == a->time_ms)
                continue;
            for (int j = 0; j < 5; j++)
                ts_replay_at(t, a->time_ms + (b->time_ms - a->time_ms) * j / 4, NULL, &e[j], &x[j]);
            for (int j = 1; j < 5; j++) {
                assert_true(b->entries >= a->entries ? e[j] >= e[j - 1] : e[j] <= e[j - 1]);
                assert_true(b->exits >= a->exits ? x[j] >= x[j - 1] : x[j] <= x[j - 1]);
            }
            assert_int_equal(e[4], b->entries);
            assert_int_equal(x[4], b->exits);
            for (int reg = 0; reg < 2; reg++) {
                bool lin = ts_replay_linear(t, k, reg, NULL);
                linear += lin;
                steps += !lin && (reg ? b->exits != a->exits : b->entries != a->entries);
                if (!lin) /* a step keeps the earlier value until the later reading */
                    assert_int_equal(reg ? x[3] : e[3], reg ? a->exits : a->entries);
            }
        }
    }
    printf("week: %zu linear segments, %zu steps\n", linear, steps);
    assert_true(steps < linear / 50);
}

static void test_filters(void **state)
{
    const char *const stations[] = {"AVENUE U"};
    struct ts_mta_filter by_station = {.stations = stations, .n_stations = 1};
    struct ts_mta_filter first10 = {.max_turnstiles = 10};
    struct ts_mta_key keys[] = {{"B025", "R150", "00-00-01"}, {"A002", "R051", "02-00-00"}};
    struct ts_mta_filter by_key = {.keys = keys, .n_keys = 2};
    struct ts_mta_data *d = NULL;

    assert_int_equal(ts_mta_load(mta_path(), &by_station, &d, NULL, 0), TS_OK);
    assert_int_equal(d->n_turnstiles, 19);
    assert_int_equal(d->n_rows, 786);
    assert_true(d->file_first_ms == MAY27_NY_MS);
    for (size_t i = 0; i < d->n_turnstiles; i++)
        assert_string_equal(d->turnstiles[i].station, "AVENUE U");
    ts_mta_free(d);

    assert_int_equal(ts_mta_load(mta_path(), &first10, &d, NULL, 0), TS_OK);
    assert_int_equal(d->n_turnstiles, 10);
    assert_string_equal(d->turnstiles[0].scp, "02-00-00");
    assert_string_equal(d->turnstiles[9].scp, "02-05-00");
    ts_mta_free(d);

    assert_int_equal(ts_mta_load(mta_path(), &by_key, &d, NULL, 0), TS_OK);
    assert_int_equal(d->n_turnstiles, 2);
    assert_non_null(ts_mta_find(d, "B025", "R150", "00-00-01"));
    ts_mta_free(d);
}

/* ---- replay model -------------------------------------------------------- */

static void test_between(void **state)
{
    /* 0 -> 100 over an hour */
    assert_int_equal(ts_replay_between(0, 0, 100, HOUR_MS, HOUR_MS / 2, true), 50);
    assert_int_equal(ts_replay_between(0, 0, 100, HOUR_MS, 0, true), 0);
    assert_int_equal(ts_replay_between(0, 0, 100, HOUR_MS, HOUR_MS, true), 100);
    assert_int_equal(ts_replay_between(0, 0, 100, HOUR_MS, HOUR_MS - 1, true), 99);
    /* down alike, rounded toward the earlier value */
    assert_int_equal(ts_replay_between(100, 0, 0, HOUR_MS, HOUR_MS / 2, true), 50);
    assert_int_equal(ts_replay_between(100, 0, 0, HOUR_MS, HOUR_MS - 1, true), 1);
    assert_int_equal(ts_replay_between(100, 0, 90, HOUR_MS, 1, true), 100);
    /* equal values stay */
    assert_int_equal(ts_replay_between(7, 0, 7, HOUR_MS, HOUR_MS / 2, true), 7);
    /* a step: the earlier value until tb */
    assert_int_equal(ts_replay_between(100, 0, 90, HOUR_MS, HOUR_MS - 1, false), 100);
    assert_int_equal(ts_replay_between(100, 0, 90, HOUR_MS, HOUR_MS, false), 90);
    assert_int_equal(ts_replay_between(0, 0, 3601, HOUR_MS, HOUR_MS / 2, false), 0);
    /* large values do not overflow */
    assert_true(ts_replay_between(UINT64_MAX - 1000, 0, UINT64_MAX, HOUR_MS, HOUR_MS / 2, true) ==
                UINT64_MAX - 500);
    assert_true(ts_replay_between(UINT64_MAX, 0, 0, HOUR_MS, HOUR_MS / 2, true) == UINT64_MAX / 2 + 1);
    assert_true(ts_replay_between(0, 0, 1000, INT64_C(1) << 40, INT64_C(1) << 39, true) == 500);
}

/* Which segments move linearly: the register's direction in the file and
 * the plausible rate; rows at the same time. */
static void test_linear_rule(void **state)
{
    struct ts_replay_cfg cfg = {.max_rate_per_min = 60};
#define SEG(...) ((struct ts_mta_reading[]){__VA_ARGS__})
#define R(h, e) {.time_ms = (h) * HOUR_MS, .entries = (e)}
    /* an up counter: rises plausible up to 3600 an hour, nothing else */
    struct ts_mta_turnstile up = {.readings = SEG(R(0, 100), R(1, 3700), R(2, 7301), R(3, 7290),
                                                  R(4, 7300), R(5, 7310)), .n_readings = 6};
    assert_true(ts_replay_linear(&up, 0, 0, &cfg));   /* +3600 in an hour */
    assert_false(ts_replay_linear(&up, 1, 0, &cfg));  /* +3601: implausible */
    assert_false(ts_replay_linear(&up, 2, 0, &cfg));  /* -11: against the direction */
    assert_true(ts_replay_linear(&up, 3, 0, &cfg));
    assert_false(ts_replay_linear(&up, 5, 0, &cfg));  /* no next reading */
    assert_false(ts_replay_linear(&up, 0, 0, &(struct ts_replay_cfg){.max_rate_per_min = 59}));
    /* a down counter falls linearly; a rise of it steps */
    struct ts_mta_turnstile down = {.readings = SEG(R(0, 1000), R(4, 900), R(8, 800), R(12, 805),
                                                    R(16, 700)), .n_readings = 5};
    assert_true(ts_replay_linear(&down, 0, 0, &cfg));
    assert_true(ts_replay_linear(&down, 1, 0, &cfg));  /* 805 after it: nearer 800, no excursion */
    assert_false(ts_replay_linear(&down, 2, 0, &cfg));         /* +5 against the direction */
    assert_true(ts_replay_linear(&down, 3, 0, &cfg));
    /* alternating levels (TREMONT AV N213/R154/00-05-00, early 2024): two rows
     * at each time, a level 2998 and then the counter, 80, 83, 90. The value
     * at a time is its last row, so the counter rises linearly, as its rows
     * say, and 2998 is never shown (the old replay invented a rise of 2918
     * from each 80 to the next 2998) */
    struct ts_mta_turnstile alt = {.readings = SEG(R(0, 2998), R(0, 80), R(4, 2998), R(4, 83),
                                                   R(8, 2998), R(8, 90)), .n_readings = 6};
    uint64_t e, x;
    ts_replay_prepare_turnstile(&alt);
    assert_int_equal(alt.replay_dir[0], 1);
    assert_true(ts_replay_linear(&alt, 0, 0, &cfg));
    assert_true(ts_replay_linear(&alt, 1, 0, &cfg));
    assert_true(ts_replay_linear(&alt, 2, 0, &cfg));
    assert_false(ts_replay_linear(&alt, 5, 0, &cfg));
    ts_replay_at(&alt, -HOUR_MS, &cfg, &e, &x); /* before the first time: its value */
    assert_int_equal(e, 80);
    ts_replay_at(&alt, 0, &cfg, &e, &x);
    assert_int_equal(e, 80);
    ts_replay_at(&alt, 2 * HOUR_MS, &cfg, &e, &x);
    assert_int_equal(e, 81);
    ts_replay_at(&alt, 4 * HOUR_MS, &cfg, &e, &x);
    assert_int_equal(e, 83);
    ts_replay_at(&alt, 6 * HOUR_MS, &cfg, &e, &x);
    assert_int_equal(e, 86);
    /* the other order shows the level 2998 throughout: each fall to the
     * counter is against the direction, a step, and lasts no time */
    struct ts_mta_turnstile alt2 = {.readings = SEG(R(0, 80), R(0, 2998), R(4, 83), R(4, 2998),
                                                    R(8, 90), R(8, 2998)), .n_readings = 6};
    for (int h = 0; h <= 8; h++) {
        ts_replay_at(&alt2, h * HOUR_MS, &cfg, &e, &x);
        assert_int_equal(e, 2998);
    }
    /* a rise, then a step back: the rise is linear, the step back steps */
    struct ts_mta_turnstile back = {.readings = SEG(R(0, 100), R(1, 150), R(2, 147), R(3, 160)),
                                    .n_readings = 4};
    assert_true(ts_replay_linear(&back, 0, 0, &cfg));
    assert_false(ts_replay_linear(&back, 1, 0, &cfg));
    /* a reset steps, the counting before and after it is linear */
    struct ts_mta_turnstile reset = {.readings = SEG(R(0, 100), R(1, 150), R(2, 5), R(3, 60)),
                                     .n_readings = 4};
    assert_true(ts_replay_linear(&reset, 0, 0, &cfg));
    assert_false(ts_replay_linear(&reset, 1, 0, &cfg));
    assert_true(ts_replay_linear(&reset, 2, 0, &cfg));
#undef R
#undef SEG
}

static void test_replay_at(void **state)
{
    struct ts_mta_reading r[] = {
        {.time_ms = 1000 * HOUR_MS, .entries = 100, .exits = 50},
        {.time_ms = 1001 * HOUR_MS, .entries = 160, .exits = 40},    /* exits go down */
        {.time_ms = 1002 * HOUR_MS, .entries = 5, .exits = 100},     /* entries reset */
        {.time_ms = 1003 * HOUR_MS, .entries = 999999, .exits = 160}, /* entries glitch */
    };
    struct ts_mta_turnstile t = {.readings = r, .n_readings = 4};
    struct ts_mta_turnstile empty = {0};
    struct ts_replay_cfg cfg = {.max_rate_per_min = 60};
    uint64_t e, x;

    ts_replay_at(&t, 0, &cfg, &e, &x);
    assert_int_equal(e, 100);
    assert_int_equal(x, 50);
    ts_replay_at(&t, 1000 * HOUR_MS + HOUR_MS / 2, &cfg, &e, &x);
    assert_int_equal(e, 130);
    assert_int_equal(x, 50);
    ts_replay_at(&t, 1001 * HOUR_MS + HOUR_MS / 2, &cfg, &e, &x);
    assert_int_equal(e, 160);
    assert_int_equal(x, 70);
    ts_replay_at(&t, 1002 * HOUR_MS + HOUR_MS / 2, &cfg, &e, &x);
    assert_int_equal(e, 5);
    assert_int_equal(x, 130);
    ts_replay_at(&t, 1003 * HOUR_MS, &cfg, &e, &x);
    assert_int_equal(e, 999999);
    assert_int_equal(x, 160);
    ts_replay_at(&t, 2000 * HOUR_MS, NULL, &e, &x);
    assert_int_equal(e, 999999);
    ts_replay_at(&empty, 0, NULL, &e, &x);
    assert_int_equal(e, 0);
    assert_int_equal(x, 0);
}

static void test_new_york_time(void **state)
{
    int64_t ms = 0;

    /* values from: TZ=America/New_York date -d '...' +%s */
    assert_true(ts_mta_ny_to_ms(2023, 5, 27, 0, 0, 0) == MAY27_NY_MS);
    assert_true(ts_mta_ny_to_ms(2023, 3, 12, 1, 59, 59) == 1678604399000LL); /* EST */
    assert_true(ts_mta_ny_to_ms(2023, 3, 12, 3, 0, 0) == 1678604400000LL);   /* EDT */
    assert_true(ts_mta_ny_to_ms(2023, 3, 12, 2, 30, 0) == 1678606200000LL);  /* skipped: EST */
    assert_true(ts_mta_ny_to_ms(2023, 11, 5, 0, 59, 59) == 1699160399000LL);
    assert_true(ts_mta_ny_to_ms(2023, 11, 5, 1, 30, 0) == 1699162200000LL);  /* first: EDT */
    assert_true(ts_mta_ny_to_ms(2023, 11, 5, 2, 0, 0) == 1699167600000LL);   /* EST */
    assert_true(ts_mta_ny_to_ms(2024, 1, 1, 0, 0, 0) == 1704085200000LL);
    assert_int_equal(ts_mta_parse_time(NULL, "2023-05-27 00:00:00", &ms), TS_OK);
    assert_true(ms == MAY27_NY_MS);
    assert_int_equal(ts_mta_parse_time("05/27/2023", "04:00:00", &ms), TS_OK);
    assert_true(ms == MAY27_NY_MS + 4 * HOUR_MS);
    assert_int_equal(ts_mta_parse_time("02/30/2023", "00:00:00", &ms), TS_EINVAL);
    assert_int_equal(ts_mta_parse_time("05/27/2023", "24:00:00", &ms), TS_EINVAL);
    assert_int_equal(ts_mta_parse_time("05/27/23", "00:00:00", &ms), TS_EINVAL);
    assert_int_equal(ts_mta_parse_time(NULL, "2023-05-27", &ms), TS_EINVAL);
}

static void test_generate(void **state)
{
    struct ts_mta_data *a = NULL, *b = NULL;
    uint64_t e1, x1, e2, x2;

    assert_int_equal(ts_mta_generate(3, 42, MAY27_NY_MS, 7, &a), TS_OK);
    assert_int_equal(ts_mta_generate(3, 42, MAY27_NY_MS, 7, &b), TS_OK);
    assert_int_equal(a->n_turnstiles, 3);
    assert_int_equal(a->turnstiles[0].n_readings, 7 * 24 + 1);
    for (size_t i = 0; i < 3; i++) {
        const struct ts_mta_turnstile *t = &a->turnstiles[i];
        assert_memory_equal(t->readings, b->turnstiles[i].readings,
                            t->n_readings * sizeof *t->readings);
        for (size_t k = 1; k < t->n_readings; k++) {
            assert_true(t->readings[k].entries >= t->readings[k - 1].entries);
            assert_true(t->readings[k].exits >= t->readings[k - 1].exits);
        }
        assert_true(t->readings[t->n_readings - 1].entries > t->readings[0].entries);
    }
    ts_replay_at(&a->turnstiles[1], MAY27_NY_MS + 30 * HOUR_MS, NULL, &e1, &x1);
    ts_replay_at(&b->turnstiles[1], MAY27_NY_MS + 30 * HOUR_MS, NULL, &e2, &x2);
    assert_int_equal(e1, e2);
    assert_int_equal(x1, x2);
    assert_string_equal(a->turnstiles[2].scp, "00-00-02");
    ts_mta_free(a);
    ts_mta_free(b);
    ts_mta_free(NULL);
    assert_int_equal(ts_mta_generate(1, 1, 0, 0, &a), TS_EINVAL);
}

/* ---- bad files ----------------------------------------------------------- */

static const char header[] =
    ",C/A,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS          \n";
static const char good_row[] =
    "0,A002,R051,02-00-00,59 ST,NQR456W,BMT,05/27/2023,00:00:00,REGULAR,2040,985\n";

/* Writes text into a new temporary gzip file; returns its path (static). */
static const char *write_gz(const char *text, size_t len)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/test_replay_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    gzFile gz = gzdopen(fd, "wb");
    assert_non_null(gz);
    if (len)
        assert_int_equal(gzwrite(gz, text, (unsigned)len), (int)len);
    assert_int_equal(gzclose(gz), Z_OK);
    return path;
}

/* Loads a file made of header + good_row + line; expects rc and err to contain want. */
static void expect_load(const char *text, int rc, const char *want)
{
    const char *path = write_gz(text, strlen(text));
    struct ts_mta_data *d = (void *)1;
    char err[512] = "";

    assert_int_equal(ts_mta_load(path, NULL, &d, err, sizeof err), rc);
    if (rc == TS_OK) {
        assert_non_null(d);
        ts_mta_free(d);
    } else {
        assert_null(d);
    }
    if (!strstr(err, want))
        fail_msg("error '%s' lacks '%s'", err, want);
    if (rc != TS_OK)
        assert_non_null(strstr(err, path));
    unlink(path);
}

static void test_missing_file(void **state)
{
    struct ts_mta_data *d = NULL;
    char err[512];

    errno = 0;
    assert_int_equal(ts_mta_load("/nonexistent/turnstile.csv.gz", NULL, &d, err, sizeof err),
                     TS_ESYS);
    assert_int_equal(errno, ENOENT);
    assert_null(d);
    assert_non_null(strstr(err, "/nonexistent/turnstile.csv.gz"));
    assert_non_null(strstr(err, "No such file"));
}

static void test_malformed(void **state)
{
    char text[1024];

    snprintf(text, sizeof text, "%s%s", header, good_row);
    expect_load(text, TS_OK, "");
    snprintf(text, sizeof text, "%s%s%s", header, good_row,
             "1,A002,R051,02-00-00,59 ST,NQR456W,BMT,05/27/2023,04:00:00,REGULAR,20x9,990\n");
    expect_load(text, TS_EPARSE, ":3: bad ENTRIES/EXITS");
    snprintf(text, sizeof text, "%s%s%s", header, good_row,
             "1,A002,R051,02-00-00,59 ST,NQR456W,BMT,05/27/2023,04:00:00,REGULAR,2049\n");
    expect_load(text, TS_EPARSE, ":3: expected 12 columns, found 11");
    snprintf(text, sizeof text, "%s%s%s", header, good_row,
             "1,A002,R051,02-00-00,59 ST,NQR456W,BMT,2023-05-27,04:00:00,REGULAR,2049,990\n");
    expect_load(text, TS_EPARSE, ":3: bad DATE/TIME");
    snprintf(text, sizeof text, "%s%s%s", header, good_row,
             "1,A002,R051,02-00-00,59 ST,NQR456W,BMT,05/27/2023,04:00:00,REGULAR,-1,990\n");
    expect_load(text, TS_EPARSE, ":3:");
    snprintf(text, sizeof text, "%s%s", "a,b,c\n", good_row);
    expect_load(text, TS_EPARSE, ":1: bad header");
    expect_load("", TS_EPARSE, "empty file");
}

/* The original MTA layout has no index column. */
static void test_original_layout(void **state)
{
    const char text[] = "C/A,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS\r\n"
                        "A002,R051,02-00-00,59 ST,NQR456W,BMT,05/27/2023,04:00:00,RECOVR AUD,9,5\r\n"
                        "A002,R051,02-00-00,59 ST,NQR456W,BMT,05/27/2023,00:00:00,REGULAR,7,3\r\n";
    const char *path = write_gz(text, strlen(text));
    struct ts_mta_data *d = NULL;

    assert_int_equal(ts_mta_load(path, NULL, &d, NULL, 0), TS_OK);
    assert_int_equal(d->n_turnstiles, 1);
    assert_int_equal(d->turnstiles[0].n_readings, 2);
    /* sorted by time */
    assert_int_equal(d->turnstiles[0].readings[0].entries, 7);
    assert_true(d->turnstiles[0].readings[1].recovered);
    ts_mta_free(d);
    unlink(path);
}

static void test_truncated_gzip(void **state)
{
    char text[4096] = "";
    char *p = text;
    strcpy(p, header);
    for (int i = 0; i < 40; i++)
        strcat(text, good_row);
    const char *path = write_gz(text, strlen(text));
    FILE *f = fopen(path, "r+");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    fclose(f);
    assert_int_equal(truncate(path, size - 12), 0);
    struct ts_mta_data *d = NULL;
    char err[512] = "";
    assert_int_equal(ts_mta_load(path, NULL, &d, err, sizeof err), TS_EPARSE);
    if (!strstr(err, "gzip"))
        fail_msg("error: %s", err);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest real[] = {
        cmocka_unit_test(test_real_counts),        cmocka_unit_test(test_real_known_row),
        cmocka_unit_test(test_real_interpolation), cmocka_unit_test(test_real_reset_steps),
        cmocka_unit_test(test_real_downward_falls), cmocka_unit_test(test_real_segments),
        cmocka_unit_test(test_filters),
    };
    const struct CMUnitTest model[] = {
        cmocka_unit_test(test_between),         cmocka_unit_test(test_linear_rule),
        cmocka_unit_test(test_replay_at),
        cmocka_unit_test(test_new_york_time),   cmocka_unit_test(test_generate),
        cmocka_unit_test(test_missing_file),    cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_original_layout), cmocka_unit_test(test_truncated_gzip),
    };
    int failed = cmocka_run_group_tests_name("replay model and file errors", model, NULL, NULL);
    return failed + cmocka_run_group_tests_name("real MTA week", real, load_week, free_week);
}
