/* SPDX-License-Identifier: Apache-2.0 */
/* test_counter.c - counter semantics on synthetic sequences (docs/counters.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "counter.h"
#include "err.h"

#define MIN_MS (60 * INT64_C(1000))
#define HOUR_MS (60 * MIN_MS)

static struct ts_counter mk(unsigned width, enum ts_direction dir)
{
    struct ts_counter c;
    struct ts_counter_cfg cfg = {.width = width, .direction = dir, .max_rate_per_min = 60};

    assert_int_equal(ts_counter_init(&c, &cfg), TS_OK);
    return c;
}

/* One step; checks the delta and the exact flags. */
static void expect(struct ts_counter *c, uint64_t raw, int64_t t, uint64_t delta, uint32_t flags)
{
    uint32_t f = 0;
    uint64_t d = ts_counter_step(c, raw, t, &f);

    if (d != delta || f != flags)
        print_error("raw %llu at %lld: delta %llu flags 0x%x, expected %llu 0x%x\n",
                    (unsigned long long)raw, (long long)t, (unsigned long long)d, f,
                    (unsigned long long)delta, flags);
    assert_int_equal(d, delta);
    assert_int_equal(f, flags);
}

static void test_first_reading(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_UP);
    uint32_t f = TS_FLAG_RECOVERED; /* flags are ORed in, not overwritten */

    assert_int_equal(ts_counter_step(&c, 123456, 0, &f), 0);
    assert_int_equal(f, TS_FLAG_RECOVERED | TS_FLAG_FIRST);
    assert_true(c.have_prev);
    assert_int_equal(c.prev, 123456);
    assert_int_equal(c.n_wrap + c.n_reset + c.n_glitch + c.n_signed + c.n_downward + c.n_rebased, 0);
    expect(&c, 123456, HOUR_MS, 0, 0); /* the next one is an ordinary reading */
}

static void test_normal_counting(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_UP);
    uint64_t v = 2040, sum = 0;
    const uint64_t adds[] = {9, 8, 35, 0, 120, 1, 0, 240};

    expect(&c, v, 0, 0, TS_FLAG_FIRST);
    for (size_t i = 0; i < sizeof adds / sizeof adds[0]; i++) {
        v += adds[i];
        sum += adds[i];
        expect(&c, v, (int64_t)(i + 1) * 4 * MIN_MS, adds[i], 0); /* limit 240 */
    }
    assert_int_equal(sum, v - 2040);
    assert_int_equal(c.n_glitch, 0);
    /* exactly the limit is plausible, one more is not */
    expect(&c, v + 60, 9 * 4 * MIN_MS + MIN_MS, 60, 0);
    expect(&c, v + 60 + 61, 9 * 4 * MIN_MS + 2 * MIN_MS, 0, TS_FLAG_GLITCH);
}

static void test_floor_short_interval(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_UP);
    struct ts_counter_cfg cfg = {.width = 32, .direction = TS_DIR_UP, .max_rate_per_min = 60,
                                 .min_plausible = 100};

    expect(&c, 500, 0, 0, TS_FLAG_FIRST);
    expect(&c, 510, 1000, 10, 0);              /* 1 s: 1 by rate, 10 by the default floor */
    expect(&c, 510, 1000, 0, 0);               /* same time again */
    expect(&c, 521, 2000, 0, TS_FLAG_GLITCH);  /* 11 in 1 s */
    expect(&c, 515, 1500, 5, 0);               /* clock stepped back: floor only */

    assert_int_equal(ts_counter_init(&c, &cfg), TS_OK);
    expect(&c, 500, 0, 0, TS_FLAG_FIRST);
    expect(&c, 600, 1000, 100, 0);
    expect(&c, 701, 2000, 0, TS_FLAG_GLITCH);
}

static void test_wrap_16(void **state)
{
    struct ts_counter c = mk(16, TS_DIR_UP);

    expect(&c, 65530, 0, 0, TS_FLAG_FIRST);
    expect(&c, 65535, MIN_MS, 5, 0);
    expect(&c, 5, 2 * MIN_MS, 6, TS_FLAG_WRAP);
    expect(&c, 20, 3 * MIN_MS, 15, 0);
    assert_int_equal(c.n_wrap, 1);
}

static void test_wrap_32(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_UP);

    expect(&c, 0xFFFFFFF0u, 0, 0, TS_FLAG_FIRST);
    expect(&c, 0x10, MIN_MS, 32, TS_FLAG_WRAP);
    expect(&c, 0x20, 2 * MIN_MS, 16, 0);
    assert_int_equal(c.n_wrap, 1);
}

static void test_wrap_64(void **state)
{
    struct ts_counter c = mk(64, TS_DIR_UP);

    expect(&c, UINT64_MAX - 4, 0, 0, TS_FLAG_FIRST);
    expect(&c, 3, MIN_MS, 8, TS_FLAG_WRAP);
    expect(&c, 13, 2 * MIN_MS, 10, 0);
    /* 2^32 is nothing special at 64 bits */
    expect(&c, UINT64_C(0xFFFFFFFE), 3 * MIN_MS, 0, TS_FLAG_GLITCH);
    assert_int_equal(c.n_wrap, 1);
}

static void test_wrap_downward(void **state)
{
    struct ts_counter c = mk(16, TS_DIR_DOWN);

    expect(&c, 3, 0, 0, TS_FLAG_FIRST);
    expect(&c, 65533, MIN_MS, 6, TS_FLAG_WRAP | TS_FLAG_DOWNWARD);
    expect(&c, 65500, 2 * MIN_MS, 33, TS_FLAG_DOWNWARD);
}

static void test_reset_small_nonzero(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_UP);

    /* B025/R150/00-00-01 on 2023-06-01: 632457 at 01:00, 306 at 13:00 */
    expect(&c, 632400, 0, 0, TS_FLAG_FIRST);
    expect(&c, 632457, 4 * HOUR_MS, 57, 0);
    expect(&c, 306, 16 * HOUR_MS, 306, TS_FLAG_RESET); /* counted from 0 */
    expect(&c, 350, 20 * HOUR_MS, 44, 0);
    /* reset to zero */
    c = mk(32, TS_DIR_UP);
    expect(&c, 50000, 0, 0, TS_FLAG_FIRST);
    expect(&c, 0, 4 * HOUR_MS, 0, TS_FLAG_RESET);
    expect(&c, 12, 8 * HOUR_MS, 12, 0);
    assert_int_equal(c.n_reset, 1);
    /* a reset is not a step back that could be a count: 14400 can pass in 4 hours */
    expect(&c, 14412, 12 * HOUR_MS, 14400, 0);
    expect(&c, 20, 16 * HOUR_MS, 0, TS_FLAG_GLITCH); /* 14392 back */
    expect(&c, 20, 20 * HOUR_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 20, 24 * HOUR_MS, 0, TS_FLAG_REBASED); /* the third reading confirms it */
    expect(&c, 30, 28 * HOUR_MS, 10, 0);
    assert_int_equal(c.n_reset, 1);
}

static void test_small_step_back_is_not_a_reset(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_UP);

    /* 997 is small, but so is the step back: not a reset (that would invent 997) */
    expect(&c, 1000, 0, 0, TS_FLAG_FIRST);
    expect(&c, 997, 4 * HOUR_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 1005, 8 * HOUR_MS, 5, 0); /* from 1000, the smaller count */
    /* a step back that persists (three readings) becomes the new baseline */
    expect(&c, 990, 12 * HOUR_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 990, 16 * HOUR_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 992, 20 * HOUR_MS, 2, TS_FLAG_REBASED);
    expect(&c, 1000, 24 * HOUR_MS, 8, 0);
    assert_int_equal(c.n_reset, 0);
    assert_int_equal(c.n_glitch, 3);
    assert_int_equal(c.n_rebased, 1);
}

static void test_downward_configured(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_DOWN);

    /* A011/R080/01-03-00 entries, every 4 hours */
    expect(&c, 885337107, 0, 0, TS_FLAG_FIRST);
    expect(&c, 885337086, 4 * HOUR_MS, 21, TS_FLAG_DOWNWARD);
    expect(&c, 885337075, 8 * HOUR_MS, 11, TS_FLAG_DOWNWARD);
    expect(&c, 885337075, 12 * HOUR_MS, 0, TS_FLAG_DOWNWARD);
    /* a move up is not a count; a jump up that persists is a new level */
    expect(&c, 885337080, 16 * HOUR_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 885337070, 20 * HOUR_MS, 5, TS_FLAG_DOWNWARD);
    expect(&c, 900000000, 24 * HOUR_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 899999990, 28 * HOUR_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 899999985, 32 * HOUR_MS, 15, TS_FLAG_REBASED | TS_FLAG_DOWNWARD);
    assert_int_equal(ts_counter_direction(&c), TS_DIR_DOWN);
    assert_int_equal(c.n_downward, 5);
}

static void test_downward_auto(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_AUTO);
    const uint64_t v[] = {885337107, 885337086, 885337075, 885337035, 885336967, 885336866};
    int64_t t = 0;

    expect(&c, v[0], t, 0, TS_FLAG_FIRST);
    assert_int_equal(ts_counter_direction(&c), TS_DIR_AUTO);
    /* held (delta 0) until down leads the vote by 3 ... */
    expect(&c, v[1], t += 4 * HOUR_MS, 0, TS_FLAG_DOWNWARD);
    expect(&c, v[2], t += 4 * HOUR_MS, 0, TS_FLAG_DOWNWARD);
    /* ... then published from the baseline in one delta: nothing lost */
    expect(&c, v[3], t += 4 * HOUR_MS, v[0] - v[3], TS_FLAG_DOWNWARD);
    assert_int_equal(ts_counter_direction(&c), TS_DIR_DOWN);
    expect(&c, v[4], t += 4 * HOUR_MS, v[3] - v[4], TS_FLAG_DOWNWARD);
    expect(&c, v[5], t += 4 * HOUR_MS, v[4] - v[5], TS_FLAG_DOWNWARD);
    assert_int_equal(c.down_votes, 5);
    assert_int_equal(c.up_votes, 0);
    assert_int_equal(c.n_downward, 5);

    /* idle between the moves (N006A/R280/00-00-00): still held, nothing lost */
    c = mk(32, TS_DIR_AUTO);
    expect(&c, 1441071340, 0, 0, TS_FLAG_FIRST);
    expect(&c, 1441071330, 4 * HOUR_MS, 0, TS_FLAG_DOWNWARD);
    expect(&c, 1441071330, 8 * HOUR_MS, 0, TS_FLAG_DOWNWARD);
    expect(&c, 1441071330, 12 * HOUR_MS, 0, TS_FLAG_DOWNWARD);
    expect(&c, 1441071325, 16 * HOUR_MS, 0, TS_FLAG_DOWNWARD);
    expect(&c, 1441071319, 20 * HOUR_MS, 21, TS_FLAG_DOWNWARD);
    expect(&c, 1441071319, 24 * HOUR_MS, 0, TS_FLAG_DOWNWARD);
    assert_int_equal(c.n_rebased, 0);
}

static void test_upward_auto(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_AUTO);

    /* up moves count at once, even before the vote is clear */
    expect(&c, 1000, 0, 0, TS_FLAG_FIRST);
    expect(&c, 1010, HOUR_MS, 10, 0);
    expect(&c, 1010, 2 * HOUR_MS, 0, 0); /* no move, no vote */
    expect(&c, 1020, 3 * HOUR_MS, 10, 0);
    assert_int_equal(ts_counter_direction(&c), TS_DIR_AUTO);
    /* a step back while the vote is open is held, not counted */
    expect(&c, 1015, 4 * HOUR_MS, 0, TS_FLAG_DOWNWARD);
    expect(&c, 1030, 5 * HOUR_MS, 10, 0); /* from 1020 */
    expect(&c, 1040, 6 * HOUR_MS, 10, 0);
    expect(&c, 1050, 7 * HOUR_MS, 10, 0);
    assert_int_equal(ts_counter_direction(&c), TS_DIR_UP);
    assert_int_equal(c.up_votes, 5);
    assert_int_equal(c.down_votes, 1);
}

static void test_auto_reset_to_zero_while_vote_open(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_AUTO);
    uint64_t sum = 0;

    /* R605/R456/00-00-00 exits: 3050, 3083, then 0 and counting up again */
    expect(&c, 3050, 0, 0, TS_FLAG_FIRST);
    expect(&c, 3083, 4 * HOUR_MS, 33, 0);
    expect(&c, 0, 8 * HOUR_MS, 0, TS_FLAG_DOWNWARD); /* could be a down count: held */
    expect(&c, 0, 12 * HOUR_MS, 0, TS_FLAG_DOWNWARD); /* still */
    expect(&c, 1, 16 * HOUR_MS, 1, TS_FLAG_REBASED);   /* counts up from 0 */
    const uint64_t v[] = {1, 3, 169, 707, 1063};
    sum = 1;
    for (size_t i = 1; i < 5; i++) {
        uint32_t f = 0;
        sum += ts_counter_step(&c, v[i], (int64_t)(16 + 4 * i) * HOUR_MS, &f);
        assert_int_equal(f, 0);
    }
    assert_int_equal(sum, 1063); /* no people invented by the drop */
    assert_int_equal(ts_counter_direction(&c), TS_DIR_UP);
}

static void test_glitch_flip(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_AUTO);
    uint64_t truth = 0, published = 0, v = 7;
    int64_t t = 0;

    /* every 15 minutes (limit 900): a counter flipping between its real
     * value (7, counting up slowly) and 22618 */
    expect(&c, v, t, 0, TS_FLAG_FIRST);
    for (int i = 0; i < 40; i++) {
        uint32_t f = 0;
        uint64_t d;

        t += 15 * MIN_MS;
        if (i % 2 == 0) {
            d = ts_counter_step(&c, 22618, t, &f);
            assert_int_equal(d, 0);
            assert_int_equal(f, TS_FLAG_GLITCH);
        } else {
            v += (uint64_t)(i % 5);
            truth += (uint64_t)(i % 5);
            d = ts_counter_step(&c, v, t, &f);
            assert_int_equal(d, (uint64_t)(i % 5));
            assert_int_equal(f, 0);
        }
        published += d;
    }
    assert_int_equal(published, truth);
    assert_int_equal(c.n_glitch, 20);
    assert_int_equal(c.n_rebased, 0);
    assert_int_equal(c.prev, v);
}

static void test_glitch_flip_from_high(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_UP);

    /* starting on the wrong level: the drop to 7 is a reset (7 counted from
     * 0), and the jumps back to 22618 are withheld */
    expect(&c, 22618, 0, 0, TS_FLAG_FIRST);
    expect(&c, 7, 4 * HOUR_MS, 7, TS_FLAG_RESET);
    expect(&c, 22618, 8 * HOUR_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 9, 12 * HOUR_MS, 2, 0);
    expect(&c, 22618, 16 * HOUR_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 9, 20 * HOUR_MS, 0, 0);
}

static void test_withheld_never_published(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_UP);

    /* the jump to 22618 is withheld; 8 hours later the same value would be a
     * plausible 22611 from the baseline, but the withheld level wins: still
     * withheld, then rebased by the third reading, counting 0 */
    expect(&c, 7, 0, 0, TS_FLAG_FIRST);
    expect(&c, 22618, 4 * HOUR_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 22618, 8 * HOUR_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 22618, 12 * HOUR_MS, 0, TS_FLAG_REBASED);
    expect(&c, 22630, 16 * HOUR_MS, 12, 0);
    /* the same when the run moves on: the count from the baseline must not
     * pass through the first withheld value either */
    c = mk(32, TS_DIR_UP);
    expect(&c, 7, 0, 0, TS_FLAG_FIRST);
    expect(&c, 22618, 4 * HOUR_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 22620, 8 * HOUR_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 22625, 12 * HOUR_MS, 7, TS_FLAG_REBASED);
}

static void test_one_off_jump_persists(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_UP);

    expect(&c, 1000, 0, 0, TS_FLAG_FIRST);
    expect(&c, 1000 + 65536 + 4, 15 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 1000 + 65536 + 14, 30 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 1000 + 65536 + 20, 45 * MIN_MS, 16, TS_FLAG_REBASED); /* from +4 */
    expect(&c, 1000 + 65536 + 26, 60 * MIN_MS, 6, 0);
    /* N605/R024/00-05-00: 542824 at 09:00, 327680 at 09:15 (RECOVR AUD),
     * 327684 at 12:00 (and 327690 at 16:00) */
    expect(&c, 542824, 75 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 542824, 90 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 542824, 105 * MIN_MS, 0, TS_FLAG_REBASED);
    expect(&c, 327680, 120 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 327684, 285 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 327690, 525 * MIN_MS, 10, TS_FLAG_REBASED);
    assert_int_equal(c.n_glitch, 6);
    assert_int_equal(c.n_rebased, 3);
}

static void test_recovered_flip(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_AUTO);

    /* N606/R025/00-05-00 on 2023-05-30 */
    expect(&c, 489988, 8 * HOUR_MS, 0, TS_FLAG_FIRST);
    expect(&c, 490001, 9 * HOUR_MS + 29 * MIN_MS + 38000, 13, 0);
    expect(&c, 542824, 11 * HOUR_MS + 45 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 490015, 12 * HOUR_MS, 14, 0);
}

/* The bug found by test_agent_faults: a glitch served for two reads became
 * the baseline, and the return to the real value was then taken as a reset,
 * counting its people a second time. */
static void test_glitch_lasting_two_reads_counts_nothing(void **state)
{
    const enum ts_direction dirs[] = {TS_DIR_AUTO, TS_DIR_UP};

    for (size_t i = 0; i < 2; i++) {
        /* as in the agent: polled every 200 ms, 600 people a minute (limit 10) */
        struct ts_counter c;
        struct ts_counter_cfg cfg = {.width = 32, .direction = dirs[i], .max_rate_per_min = 600};
        int64_t t = 0;

        assert_int_equal(ts_counter_init(&c, &cfg), TS_OK);
        expect(&c, 1000, t, 0, TS_FLAG_FIRST);
        expect(&c, 1008, t += 200, 8, 0);
        expect(&c, 3, t += 200, 3, TS_FLAG_RESET);
        expect(&c, 99999999, t += 200, 0, TS_FLAG_GLITCH);
        expect(&c, 99999999, t += 200, 0, TS_FLAG_GLITCH); /* was: rebased */
        expect(&c, 3, t += 200, 0, 0);                     /* was: reset, 3 again */
        expect(&c, 3, t += 200, 0, 0);
        expect(&c, 9, t += 200, 6, 0);
        assert_int_equal(c.n_reset, 1);
        assert_int_equal(c.n_glitch, 2);
        assert_int_equal(c.n_rebased, 0);
        assert_int_equal(c.prev, 9);
        assert_int_equal(c.run_len, 0);
    }
    /* 15 minutes apart, the glitch level moving a little */
    struct ts_counter c = mk(32, TS_DIR_UP);
    expect(&c, 50000, 0, 0, TS_FLAG_FIRST);
    expect(&c, 99999999, 15 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 100000003, 30 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 50020, 45 * MIN_MS, 20, 0);
}

/* A counter flipping to the glitch level for two readings at a time: the run
 * never reaches three, the glitch level is never counted. */
static void test_glitch_flip_two_reads_never_confirmed(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_AUTO);
    uint64_t truth = 0, published = 0, v = 7;
    int64_t t = 0;

    expect(&c, v, t, 0, TS_FLAG_FIRST);
    for (int i = 0; i < 60; i++) {
        uint32_t f = 0;
        uint64_t d;

        t += 15 * MIN_MS;
        if (i % 3 != 2) {
            d = ts_counter_step(&c, 22618, t, &f);
            assert_int_equal(d, 0);
            assert_int_equal(f, TS_FLAG_GLITCH);
        } else {
            v += (uint64_t)(i % 7);
            truth += (uint64_t)(i % 7);
            d = ts_counter_step(&c, v, t, &f);
            assert_int_equal(d, (uint64_t)(i % 7));
            assert_int_equal(f, 0);
        }
        published += d;
    }
    assert_int_equal(published, truth);
    assert_int_equal(c.n_glitch, 40);
    assert_int_equal(c.n_rebased, 0);
    assert_int_equal(c.prev, v);
}

/* A real new level (a controller replaced): confirmed by the third reading,
 * which publishes everything counted from the first withheld value. */
static void test_confirmed_rebase_counts_from_first_withheld(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_UP);

    expect(&c, 5000000, 0, 0, TS_FLAG_FIRST);
    expect(&c, 90000, 15 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 90004, 30 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 90010, 45 * MIN_MS, 10, TS_FLAG_REBASED); /* 4 + 6 */
    expect(&c, 90015, 60 * MIN_MS, 5, 0);
    assert_int_equal(c.prev, 90015);
    assert_int_equal(c.n_glitch, 2);
    assert_int_equal(c.n_rebased, 1);

    /* a new controller starting near 0 (within the limit) is a reset at once */
    c = mk(32, TS_DIR_UP);
    expect(&c, 5000000, 0, 0, TS_FLAG_FIRST);
    expect(&c, 120, 15 * MIN_MS, 120, TS_FLAG_RESET);
    expect(&c, 125, 30 * MIN_MS, 5, 0);
    expect(&c, 131, 45 * MIN_MS, 6, 0);

    /* the same in auto mode, and counting down */
    c = mk(32, TS_DIR_AUTO);
    expect(&c, 5000000, 0, 0, TS_FLAG_FIRST);
    expect(&c, 90000, 15 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 90004, 30 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 90010, 45 * MIN_MS, 10, TS_FLAG_REBASED);
    c = mk(32, TS_DIR_DOWN);
    expect(&c, 90000, 0, 0, TS_FLAG_FIRST);
    expect(&c, 5000000, 15 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 4999990, 30 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 4999983, 45 * MIN_MS, 17, TS_FLAG_REBASED | TS_FLAG_DOWNWARD);

    /* wrapping inside the run is counted and flagged on the rebase */
    c = mk(16, TS_DIR_UP);
    expect(&c, 30000, 0, 0, TS_FLAG_FIRST);
    expect(&c, 65530, 15 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 4, 30 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 10, 45 * MIN_MS, 16, TS_FLAG_REBASED | TS_FLAG_WRAP);
}

/* The run is broken by a return to the baseline (the glitch is over) or by a
 * reading implausible from the last withheld one (a new run starts there). */
static void test_glitch_run_restarts(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_UP);

    expect(&c, 1000, 0, 0, TS_FLAG_FIRST);
    expect(&c, 50000, 15 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 50002, 30 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 1003, 45 * MIN_MS, 3, 0); /* back: counted from the baseline */
    expect(&c, 50005, 60 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 50006, 75 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 70000, 90 * MIN_MS, 0, TS_FLAG_GLITCH); /* a new run */
    expect(&c, 70003, 105 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 70004, 120 * MIN_MS, 4, TS_FLAG_REBASED);
    assert_int_equal(c.n_glitch, 6);
    assert_int_equal(c.n_rebased, 1);
    /* a reading outside the width leaves the run alone */
    c = mk(32, TS_DIR_UP);
    expect(&c, 1000, 0, 0, TS_FLAG_FIRST);
    expect(&c, 50000, 15 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, UINT64_C(0x100000000), 30 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 50001, 45 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 50002, 60 * MIN_MS, 2, TS_FLAG_REBASED);
    /* while the auto vote is open, the run goes on before a hold */
    c = mk(32, TS_DIR_AUTO);
    expect(&c, 100000, 0, 0, TS_FLAG_FIRST);
    expect(&c, 98000, 15 * MIN_MS, 0, TS_FLAG_GLITCH); /* 2000 down in 15 min */
    expect(&c, 98500, 45 * MIN_MS, 0, TS_FLAG_GLITCH); /* up from 98000 */
    expect(&c, 98600, 60 * MIN_MS, 600, TS_FLAG_REBASED);
}

/* Issue 12: the same people whether polled every 100 ms or every minute. */
static void test_issue12_reset_judged_over_a_minute(void **state)
{
    struct ts_counter_cfg cfg = {.width = 32, .direction = TS_DIR_AUTO, .max_rate_per_min = 120};
    const int64_t polls[] = {100, MIN_MS};

    for (size_t i = 0; i < 2; i++) {
        struct ts_counter c;
        int64_t t = 0, p = polls[i];

        /* B025/R150/00-00-01 exits: 170244, then 58 (a reset), 60: the 58
         * are counted at both rates (at 100 ms they were withheld: 58 > 10) */
        assert_int_equal(ts_counter_init(&c, &cfg), TS_OK);
        expect(&c, 170244, t, 0, TS_FLAG_FIRST);
        for (int k = 0; k < 4; k++)
            expect(&c, 170244 + k + 1, t += p, 1, 0);
        expect(&c, 58, t += p, 58, TS_FLAG_RESET);
        expect(&c, 60, t += p, 2, 0);
        /* a reset to more than a minute can count is a new level at both rates */
        assert_int_equal(ts_counter_init(&c, &cfg), TS_OK);
        expect(&c, 170244, t, 0, TS_FLAG_FIRST);
        expect(&c, 170245, t += p, 1, 0);
        expect(&c, 121, t += p, 0, TS_FLAG_GLITCH);
    }
    /* a counter stepping back 3 and counting on: not confirmed before it is
     * back above the baseline, at 100 ms as at a minute; nothing counted twice */
    struct ts_counter c;
    int64_t t = 0;
    assert_int_equal(ts_counter_init(&c, &cfg), TS_OK);
    expect(&c, 4990, t, 0, TS_FLAG_FIRST);
    for (uint64_t v = 4991; v <= 5003; v++) /* the vote says up */
        expect(&c, v, t += 100, 1, 0);
    expect(&c, 5000, t += 100, 0, TS_FLAG_GLITCH);
    for (int k = 0; k < 300; k++) /* 30 s of the same value: 300 readings */
        expect(&c, 5000, t += 100, 0, TS_FLAG_GLITCH);
    expect(&c, 5001, t += 100, 0, TS_FLAG_GLITCH);
    expect(&c, 5003, t += 100, 0, 0);
    expect(&c, 5004, t += 100, 1, 0);
    assert_int_equal(c.n_rebased, 0);
    /* a level that lasts: confirmed two minutes after its first reading */
    expect(&c, 900000, t += 100, 0, TS_FLAG_GLITCH);
    int64_t first = t;
    while (t + 100 < first + 2 * MIN_MS)
        expect(&c, 900000, t += 100, 0, TS_FLAG_GLITCH);
    expect(&c, 900001, t += 100, 1, TS_FLAG_REBASED);
}

static void test_rebase_after(void **state)
{
    struct ts_counter c;
    struct ts_counter_cfg cfg = {.width = 32, .direction = TS_DIR_UP, .max_rate_per_min = 60,
                                 .rebase_after = 2};

    /* 2: the second reading confirms (the old rule); a glitch of two
     * readings then does count its return as a reset */
    assert_int_equal(ts_counter_init(&c, &cfg), TS_OK);
    expect(&c, 5000000, 0, 0, TS_FLAG_FIRST);
    expect(&c, 90000, 15 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 90004, 30 * MIN_MS, 4, TS_FLAG_REBASED);
    expect(&c, 90010, 45 * MIN_MS, 6, 0);
    assert_int_equal(ts_counter_init(&c, &cfg), TS_OK);
    expect(&c, 3, 0, 0, TS_FLAG_FIRST);
    expect(&c, 99999999, MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 99999999, 2 * MIN_MS, 0, TS_FLAG_REBASED);
    expect(&c, 3, 3 * MIN_MS, 3, TS_FLAG_RESET);
    /* polled every 200 ms, the level must also last TS_COUNTER_WINDOW_MS
     * to be confirmed: two readings of garbage are withheld (until issue 12,
     * they were rebased at 400 ms, as above) */
    assert_int_equal(ts_counter_init(&c, &cfg), TS_OK);
    expect(&c, 3, 0, 0, TS_FLAG_FIRST);
    expect(&c, 99999999, 200, 0, TS_FLAG_GLITCH);
    expect(&c, 99999999, 400, 0, TS_FLAG_GLITCH);
    expect(&c, 3, 600, 0, 0);
    assert_int_equal(c.n_reset, 0);

    /* 5: four readings withheld, the fifth publishes the people of all five */
    cfg.rebase_after = 5;
    assert_int_equal(ts_counter_init(&c, &cfg), TS_OK);
    expect(&c, 5000000, 0, 0, TS_FLAG_FIRST);
    for (int i = 1; i <= 4; i++)
        expect(&c, 90000 + (uint64_t)i * 3, i * 15 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, 90015, 5 * 15 * MIN_MS, 12, TS_FLAG_REBASED);
    assert_int_equal(c.n_glitch, 4);

    /* range: 0 is the default, 2..100 accepted, others refused */
    cfg.rebase_after = 0;
    assert_int_equal(ts_counter_init(&c, &cfg), TS_OK);
    assert_int_equal(c.cfg.rebase_after, TS_COUNTER_DEFAULT_REBASE_AFTER);
    assert_int_equal(c.cfg.rebase_after, 3);
    cfg.rebase_after = 100;
    assert_int_equal(ts_counter_init(&c, &cfg), TS_OK);
    assert_int_equal(c.cfg.rebase_after, 100);
    cfg.rebase_after = 1;
    assert_int_equal(ts_counter_init(&c, &cfg), TS_EINVAL);
    assert_int_equal(c.cfg.rebase_after, 3);
    cfg.rebase_after = 101;
    assert_int_equal(ts_counter_init(&c, &cfg), TS_EINVAL);
    assert_int_equal(c.cfg.rebase_after, 3);
}

static void test_signed_sign_extended(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_UP);
    int32_t s = (int32_t)0x80000005u - 0; /* what an int32_t read makes of it */

    expect(&c, 0x7FFFFFFEu, 0, 0, TS_FLAG_FIRST);
    /* past 2^31-1 as unsigned: plain counting */
    expect(&c, 0x80000001u, MIN_MS, 3, 0);
    /* read as int32 and widened to 64 bits: sign-extended */
    expect(&c, (uint64_t)(int64_t)s, 2 * MIN_MS, 4, TS_FLAG_SIGNED);
    assert_int_equal(c.prev, 0x80000005u);
    expect(&c, 0x80000010u, 3 * MIN_MS, 11, 0);
    /* bits above the width that are no sign extension: refused, state kept */
    expect(&c, UINT64_C(0x100000012), 4 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, UINT64_C(0x180000012), 4 * MIN_MS, 0, TS_FLAG_GLITCH);
    expect(&c, UINT64_C(0xFFFFFFFE80000012), 4 * MIN_MS, 0, TS_FLAG_GLITCH);
    assert_int_equal(c.prev, 0x80000010u);
    assert_false(c.have_held);
    assert_int_equal(c.run_len, 0);
    expect(&c, 0x80000020u, 5 * MIN_MS, 16, 0);
    assert_int_equal(c.n_signed, 1);

    /* a 16-bit register read as int16 */
    c = mk(16, TS_DIR_UP);
    expect(&c, 0x7FFF, 0, 0, TS_FLAG_FIRST);
    expect(&c, (uint64_t)(int64_t)(int16_t)-32766, MIN_MS, 3, TS_FLAG_SIGNED);
    /* a first reading can be fixed too */
    c = mk(32, TS_DIR_UP);
    expect(&c, (uint64_t)(int64_t)INT32_MIN, 0, 0, TS_FLAG_FIRST | TS_FLAG_SIGNED);
    assert_int_equal(c.prev, 0x80000000u);
}

static void test_signed_wrap_at_2_31(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_UP);

    /* a signed counter that goes from INT32_MAX to 0 */
    expect(&c, 0x7FFFFFF0u, 0, 0, TS_FLAG_FIRST);
    expect(&c, 0x5, MIN_MS, 21, TS_FLAG_WRAP | TS_FLAG_SIGNED);
    expect(&c, 0x15, 2 * MIN_MS, 16, 0);
    assert_int_equal(c.n_wrap, 1);
    assert_int_equal(c.n_signed, 1);

    /* the same counter counting down from 0 to INT32_MAX */
    c = mk(32, TS_DIR_DOWN);
    expect(&c, 0x5, 0, 0, TS_FLAG_FIRST);
    expect(&c, 0x7FFFFFF0u, MIN_MS, 21, TS_FLAG_WRAP | TS_FLAG_SIGNED | TS_FLAG_DOWNWARD);

    /* at 64 bits too */
    c = mk(64, TS_DIR_UP);
    expect(&c, 0x7FFFFFF0u, 0, 0, TS_FLAG_FIRST);
    expect(&c, 0x5, MIN_MS, 21, TS_FLAG_WRAP | TS_FLAG_SIGNED);

    /* not at 16 bits, where 0x7FF0 -> 5 is a reset */
    c = mk(16, TS_DIR_UP);
    expect(&c, 0x7FF0, 0, 0, TS_FLAG_FIRST);
    expect(&c, 0x5, MIN_MS, 5, TS_FLAG_RESET);
}

static void test_direction_change(void **state)
{
    struct ts_counter c = mk(32, TS_DIR_AUTO);
    uint64_t v = 100000, published = 0, truth = 0;
    int64_t t = 0;
    uint32_t f = 0;

    ts_counter_step(&c, v, t, &f);
    for (int i = 0; i < 100; i++) {
        v += 10;
        published += ts_counter_step(&c, v, t += HOUR_MS, &f);
    }
    assert_int_equal(published, 1000);
    assert_int_equal(ts_counter_direction(&c), TS_DIR_UP);
    assert_true(c.up_votes + c.down_votes <= TS_COUNTER_VOTE_CAP);
    /* the counter is replaced by one counting down from the same value */
    published = 0;
    for (int i = 0; i < 100; i++) {
        v -= 10;
        truth += 10;
        published += ts_counter_step(&c, v, t += HOUR_MS, &f);
    }
    assert_int_equal(ts_counter_direction(&c), TS_DIR_DOWN);
    assert_int_equal(published, truth); /* withheld, then published from the baseline */
}

static void test_init(void **state)
{
    struct ts_counter c;
    struct ts_counter_cfg cfg = {0};

    assert_int_equal(ts_counter_init(&c, &cfg), TS_OK);
    assert_int_equal(c.cfg.width, TS_COUNTER_DEFAULT_WIDTH);
    assert_true(c.cfg.max_rate_per_min == TS_COUNTER_DEFAULT_RATE);
    assert_int_equal(c.cfg.min_plausible, TS_COUNTER_DEFAULT_MIN_PLAUSIBLE);
    assert_int_equal(c.cfg.direction, TS_DIR_UP);
    assert_false(c.have_prev);

    cfg.width = 24;
    assert_int_equal(ts_counter_init(&c, &cfg), TS_EINVAL);
    assert_int_equal(c.cfg.width, TS_COUNTER_DEFAULT_WIDTH);
    cfg.width = 16;
    cfg.max_rate_per_min = -1;
    assert_int_equal(ts_counter_init(&c, &cfg), TS_EINVAL);
    cfg.max_rate_per_min = 1.0 / 0.0;
    assert_int_equal(ts_counter_init(&c, &cfg), TS_EINVAL);
    assert_true(c.cfg.max_rate_per_min == TS_COUNTER_DEFAULT_RATE);
    cfg.max_rate_per_min = 30;
    cfg.direction = (enum ts_direction)7;
    assert_int_equal(ts_counter_init(&c, &cfg), TS_EINVAL);
    assert_int_equal(c.cfg.direction, TS_DIR_UP);
    cfg.direction = TS_DIR_AUTO;
    assert_int_equal(ts_counter_init(&c, &cfg), TS_OK);
    assert_int_equal(c.cfg.width, 16);
}

static void test_flags_format(void **state)
{
    char buf[160];
    uint32_t f;

    ts_flags_format(0, buf, sizeof buf);
    assert_string_equal(buf, "");
    ts_flags_format(TS_FLAG_FIRST, buf, sizeof buf);
    assert_string_equal(buf, "first");
    ts_flags_format(TS_FLAG_WRAP | TS_FLAG_RESET, buf, sizeof buf);
    assert_string_equal(buf, "wrap|reset");
    ts_flags_format(0x1FF, buf, sizeof buf);
    assert_string_equal(buf, "first|wrap|reset|downward|glitch|signed|recovered|merged|rebased");
    ts_flags_format(TS_FLAG_GLITCH | (1u << 9) | (1u << 31), buf, sizeof buf);
    assert_string_equal(buf, "glitch|0x80000200");
    ts_flags_format(1u << 12, buf, sizeof buf);
    assert_string_equal(buf, "0x1000");

    /* truncated, always terminated; size 0 writes nothing */
    ts_flags_format(TS_FLAG_WRAP | TS_FLAG_RESET, buf, 7);
    assert_string_equal(buf, "wrap|r");
    ts_flags_format(TS_FLAG_WRAP | TS_FLAG_RESET, buf, 1);
    assert_string_equal(buf, "");
    buf[0] = 'x';
    ts_flags_format(TS_FLAG_WRAP, buf, 0);
    assert_int_equal(buf[0], 'x');

    /* parse: the round trip, and refusals */
    for (uint32_t v = 0; v < 0x400; v += 7) {
        ts_flags_format(v, buf, sizeof buf);
        assert_int_equal(ts_flags_parse(buf, &f), TS_OK);
        assert_int_equal(f, v);
    }
    assert_int_equal(ts_flags_parse("", &f), TS_OK);
    assert_int_equal(f, 0);
    f = 42;
    assert_int_equal(ts_flags_parse("wrap|bogus", &f), TS_EINVAL);
    assert_int_equal(f, 42);
    assert_int_equal(ts_flags_parse("wrap|", &f), TS_EINVAL);
    assert_int_equal(ts_flags_parse("|wrap", &f), TS_EINVAL);
    assert_int_equal(ts_flags_parse("wrap||reset", &f), TS_EINVAL);
    assert_int_equal(ts_flags_parse("WRAP", &f), TS_EINVAL);
    assert_int_equal(ts_flags_parse("wra", &f), TS_EINVAL);
    assert_int_equal(ts_flags_parse("0x", &f), TS_EINVAL);
    assert_int_equal(ts_flags_parse("0xg1", &f), TS_EINVAL);
    assert_int_equal(ts_flags_parse("0x123456789", &f), TS_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_reading),
        cmocka_unit_test(test_normal_counting),
        cmocka_unit_test(test_floor_short_interval),
        cmocka_unit_test(test_wrap_16),
        cmocka_unit_test(test_wrap_32),
        cmocka_unit_test(test_wrap_64),
        cmocka_unit_test(test_wrap_downward),
        cmocka_unit_test(test_reset_small_nonzero),
        cmocka_unit_test(test_small_step_back_is_not_a_reset),
        cmocka_unit_test(test_downward_configured),
        cmocka_unit_test(test_downward_auto),
        cmocka_unit_test(test_upward_auto),
        cmocka_unit_test(test_auto_reset_to_zero_while_vote_open),
        cmocka_unit_test(test_glitch_flip),
        cmocka_unit_test(test_glitch_flip_from_high),
        cmocka_unit_test(test_withheld_never_published),
        cmocka_unit_test(test_one_off_jump_persists),
        cmocka_unit_test(test_recovered_flip),
        cmocka_unit_test(test_glitch_lasting_two_reads_counts_nothing),
        cmocka_unit_test(test_glitch_flip_two_reads_never_confirmed),
        cmocka_unit_test(test_confirmed_rebase_counts_from_first_withheld),
        cmocka_unit_test(test_glitch_run_restarts),
        cmocka_unit_test(test_issue12_reset_judged_over_a_minute),
        cmocka_unit_test(test_rebase_after),
        cmocka_unit_test(test_signed_sign_extended),
        cmocka_unit_test(test_signed_wrap_at_2_31),
        cmocka_unit_test(test_direction_change),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_flags_format),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
