/* SPDX-License-Identifier: Apache-2.0 */
/* test_probe.c - the commissioning probe's judgement (agent/probe.c), pure:
 * which width and word order give plausible counters, from raw registers
 * written out with hal/decode.c. docs/commissioning.md states the rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "probe.h"

/* ---- ts_probe_judge: one counter's values -------------------------------- */

static const int64_t every_second[] = {0, 1000, 2000, 3000, 4000, 5000};

static enum ts_probe_verdict judge(unsigned width, enum ts_direction dir, double rate,
                                   const uint64_t *v, size_t n, char *why)
{
    struct ts_probe_rule rule = {width, dir, rate};
    return ts_probe_judge(&rule, v, every_second, n, why, 160);
}

static void test_judge_monotonic(void **state)
{
    char why[160];
    uint64_t up[] = {1000, 1001, 1001, 1003, 1010};
    uint64_t down[] = {5000, 4999, 4990, 4990, 4985};

    assert_int_equal(judge(32, TS_DIR_UP, 120, up, 5, why), TS_PROBE_MOVING);
    assert_string_equal(why, "");
    assert_int_equal(judge(32, TS_DIR_DOWN, 120, down, 5, why), TS_PROBE_MOVING);
    assert_int_equal(judge(32, TS_DIR_AUTO, 120, up, 5, why), TS_PROBE_MOVING);
    assert_int_equal(judge(32, TS_DIR_AUTO, 120, down, 5, why), TS_PROBE_MOVING);
    /* the wrong way */
    assert_int_equal(judge(32, TS_DIR_DOWN, 120, up, 5, why), TS_PROBE_IMPLAUSIBLE);
    assert_string_equal(why, "+1 in 1.000 s at sample 2 (plausible: down to 10)");
    assert_int_equal(judge(32, TS_DIR_UP, 120, down, 5, why), TS_PROBE_IMPLAUSIBLE);
    assert_string_equal(why, "-1 in 1.000 s at sample 2 (plausible: up to 10)");
}

static void test_judge_constant(void **state)
{
    char why[160];
    uint64_t same[] = {123456, 123456, 123456};
    uint64_t zero[] = {0, 0, 0};

    assert_int_equal(judge(32, TS_DIR_UP, 120, same, 3, why), TS_PROBE_STILL);
    assert_int_equal(judge(16, TS_DIR_AUTO, 120, zero, 3, why), TS_PROBE_STILL);
    assert_int_equal(judge(64, TS_DIR_DOWN, 120, zero, 3, why), TS_PROBE_STILL);
}

/* A step larger than L(dt) = max(rate x dt, 10); the bound grows with dt. */
static void test_judge_steps(void **state)
{
    char why[160];
    uint64_t jump[] = {1000, 1005, 1035};
    struct ts_probe_rule rule = {32, TS_DIR_UP, 120};
    const int64_t slow[] = {0, 1000, 16000}; /* 15 s: 30 people at 120 a minute */

    assert_int_equal(judge(32, TS_DIR_UP, 120, jump, 3, why), TS_PROBE_IMPLAUSIBLE);
    assert_string_equal(why, "+30 in 1.000 s at sample 3 (plausible: up to 10)");
    assert_int_equal(ts_probe_judge(&rule, jump, slow, 3, why, sizeof why), TS_PROBE_MOVING);
    /* ten is always plausible, even in no time */
    const int64_t same_ms[] = {0, 0, 0};
    uint64_t ten[] = {0, 10, 20};
    assert_int_equal(ts_probe_judge(&rule, ten, same_ms, 3, why, sizeof why), TS_PROBE_MOVING);
    /* a higher rate allows more */
    assert_int_equal(judge(32, TS_DIR_UP, 1800, jump, 3, why), TS_PROBE_MOVING);
    /* auto: one way throughout */
    uint64_t zigzag[] = {100, 103, 101};
    assert_int_equal(judge(32, TS_DIR_AUTO, 120, zigzag, 3, why), TS_PROBE_IMPLAUSIBLE);
    assert_string_equal(why, "-2 in 1.000 s at sample 3 (plausible: up to 10)");
}

/* Modulo the width: a 16-bit counter wraps during the probe. */
static void test_judge_wrap(void **state)
{
    char why[160];
    uint64_t wrap16[] = {65530, 65534, 2, 5};
    uint64_t wrap_down[] = {3, 0, 65533};

    assert_int_equal(judge(16, TS_DIR_UP, 120, wrap16, 4, why), TS_PROBE_MOVING);
    assert_int_equal(judge(16, TS_DIR_AUTO, 120, wrap16, 4, why), TS_PROBE_MOVING);
    assert_int_equal(judge(16, TS_DIR_DOWN, 120, wrap_down, 3, why), TS_PROBE_MOVING);
    /* the same values are no wrap for a wider counter */
    assert_int_equal(judge(32, TS_DIR_UP, 120, wrap16, 4, why), TS_PROBE_IMPLAUSIBLE);
    assert_string_equal(why, "-65532 in 1.000 s at sample 3 (plausible: up to 10)");
    uint64_t wrap32[] = {UINT64_C(0xFFFFFFFE), 1};
    assert_int_equal(judge(32, TS_DIR_UP, 120, wrap32, 2, why), TS_PROBE_MOVING);
}

static void test_judge_absurd(void **state)
{
    char why[160];
    uint64_t big[] = {TS_PROBE_ABSURD, TS_PROBE_ABSURD};
    uint64_t below[] = {TS_PROBE_ABSURD - 2, TS_PROBE_ABSURD - 1};

    assert_int_equal(judge(64, TS_DIR_UP, 120, big, 2, why), TS_PROBE_IMPLAUSIBLE);
    assert_string_equal(why, "value 1099511627776 at sample 1 is absurd (2^40 or more)");
    assert_int_equal(judge(64, TS_DIR_UP, 120, below, 2, why), TS_PROBE_MOVING);
    /* a value that does not fit the width is no value of that counter */
    uint64_t wide[] = {70000, 70001};
    assert_int_equal(judge(16, TS_DIR_UP, 120, wide, 2, why), TS_PROBE_IMPLAUSIBLE);
}

/* ---- ts_probe_decide: a turnstile's registers ------------------------------ */

static struct ts_turnstile_cfg turnstile(unsigned width, enum ts_word_order order,
                                         enum ts_direction dir)
{
    struct ts_turnstile_cfg t = {.width = width, .order = order, .direction = dir,
                                 .max_rate_per_min = 120};
    return t;
}

/* Samples one second apart of counters encoded in width/order. */
static void encode(struct ts_probe_sample *s, size_t n, unsigned width, enum ts_word_order order,
                   const uint64_t *entries, const uint64_t *exits)
{
    memset(s, 0, n * sizeof *s);
    for (size_t i = 0; i < n; i++) {
        s[i].t_ms = 1000 * (int64_t)i;
        ts_encode_regs(entries[i], width, order, s[i].entries);
        ts_encode_regs(exits[i], width, order, s[i].exits);
    }
}

static const struct ts_probe_interp *find(const struct ts_probe_decision *d, unsigned width,
                                          enum ts_word_order order)
{
    for (size_t i = 0; i < d->n_interp; i++)
        if (d->interp[i].width == width && d->interp[i].order == order)
            return &d->interp[i];
    fail_msg("no interpretation %u %d", width, order);
    return NULL;
}

static size_t n_plausible(const struct ts_probe_decision *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n_interp; i++)
        n += d->interp[i].plausible;
    return n;
}

static const uint64_t entries5[] = {6085658, 6085661, 6085661, 6085667, 6085670};
static const uint64_t exits5[] = {6328275, 6328276, 6328280, 6328280, 6328281};

static void test_decide_right(void **state)
{
    struct ts_probe_sample s[5];
    struct ts_probe_decision d;

    for (int o = TS_ORDER_ABCD; o <= TS_ORDER_DCBA; o++) {
        struct ts_turnstile_cfg t = turnstile(32, (enum ts_word_order)o, TS_DIR_UP);
        encode(s, 5, 32, (enum ts_word_order)o, entries5, exits5);
        assert_int_equal(ts_probe_decide(&t, s, 5, 2, &d), TS_OK);
        assert_int_equal(d.n_interp, 8); /* 16 and 32 bits, 4 orders each */
        assert_int_equal(d.outcome, TS_PROBE_RIGHT);
        /* low word first (CDAB, DCBA): the 16-bit reading of the first
         * register counts the same people; ABCD, BADC: it reads the high word */
        bool low_first = o == TS_ORDER_CDAB || o == TS_ORDER_DCBA;
        assert_int_equal(n_plausible(&d), low_first ? 3 : 1);
        assert_true(d.has_named);
        assert_int_equal(d.named, d.configured); /* the widest of those that agree */
        const struct ts_probe_interp *c = &d.interp[d.configured];
        assert_true(c->configured && c->plausible);
        assert_int_equal(c->verdict, TS_PROBE_MOVING);
        assert_int_equal(c->width, 32);
        assert_int_equal(c->order, o);
        assert_int_equal(c->entries_first, 6085658);
        assert_int_equal(c->exits_last, 6328281);
    }
}

static void test_decide_wrong_order(void **state)
{
    struct ts_probe_sample s[5];
    struct ts_probe_decision d;
    struct ts_turnstile_cfg t = turnstile(32, TS_ORDER_ABCD, TS_DIR_UP);

    encode(s, 5, 32, TS_ORDER_CDAB, entries5, exits5);
    assert_int_equal(ts_probe_decide(&t, s, 5, 2, &d), TS_OK);
    assert_int_equal(d.outcome, TS_PROBE_WRONG);
    assert_int_equal(n_plausible(&d), 3); /* 16 ABCD = 16 CDAB read the low word */
    assert_true(d.has_named);
    assert_ptr_equal(&d.interp[d.named], find(&d, 32, TS_ORDER_CDAB));
    const struct ts_probe_interp *c = &d.interp[d.configured];
    assert_int_equal(c->verdict, TS_PROBE_IMPLAUSIBLE);
    assert_false(c->plausible);
    assert_non_null(strstr(c->why, "entries: "));
}

/* A 32-bit device configured as 16 bits reads the high words: they stay
 * still while the 32-bit reading counts. */
static void test_decide_wrong_width_narrow(void **state)
{
    struct ts_probe_sample s[5];
    struct ts_probe_decision d;
    struct ts_turnstile_cfg t = turnstile(16, TS_ORDER_ABCD, TS_DIR_AUTO);

    encode(s, 5, 32, TS_ORDER_ABCD, entries5, exits5);
    assert_int_equal(ts_probe_decide(&t, s, 5, 2, &d), TS_OK);
    assert_int_equal(d.outcome, TS_PROBE_WRONG);
    assert_int_equal(d.interp[d.configured].verdict, TS_PROBE_STILL);
    assert_int_equal(n_plausible(&d), 1);
    assert_true(find(&d, 32, TS_ORDER_ABCD)->plausible);
    assert_true(d.has_named);
    assert_ptr_equal(&d.interp[d.named], find(&d, 32, TS_ORDER_ABCD));
}

/* A 16-bit device (entries, exits, next entries, next exits) configured as
 * 32 bits: the 32-bit reading jumps by 65536 a person. */
static void test_decide_wrong_width_wide(void **state)
{
    struct ts_probe_sample s[4];
    struct ts_probe_decision d;
    struct ts_turnstile_cfg t = turnstile(32, TS_ORDER_ABCD, TS_DIR_UP);
    const uint16_t e[] = {100, 101, 104, 104}, x[] = {200, 202, 202, 203};

    memset(s, 0, sizeof s);
    for (int i = 0; i < 4; i++) {
        s[i].t_ms = 1000 * i;
        s[i].entries[0] = e[i];
        s[i].entries[1] = x[i];
        s[i].exits[0] = (uint16_t)(e[i] + 7); /* the next turnstile */
        s[i].exits[1] = (uint16_t)(x[i] + 9);
    }
    assert_int_equal(ts_probe_decide(&t, s, 4, 2, &d), TS_OK);
    assert_int_equal(d.outcome, TS_PROBE_WRONG);
    assert_int_equal(n_plausible(&d), 2); /* ABCD = CDAB at 16 bits */
    assert_true(find(&d, 16, TS_ORDER_ABCD)->plausible);
    assert_true(find(&d, 16, TS_ORDER_CDAB)->plausible);
    assert_true(d.has_named);
    assert_int_equal(d.interp[d.named].width, 16);
    assert_string_equal(d.interp[d.configured].why,
                        "entries: +65538 in 1.000 s at sample 2 (plausible: up to 10)");
}

/* All-zero registers read the same in every order: say so, pick none. */
static void test_decide_all_zero_undecided(void **state)
{
    struct ts_probe_sample s[5];
    struct ts_probe_decision d;
    const uint64_t zero[5] = {0};
    struct ts_turnstile_cfg t = turnstile(32, TS_ORDER_CDAB, TS_DIR_UP);

    encode(s, 5, 32, TS_ORDER_ABCD, zero, zero);
    assert_int_equal(ts_probe_decide(&t, s, 5, 2, &d), TS_OK);
    assert_int_equal(d.outcome, TS_PROBE_UNDECIDED);
    assert_false(d.has_named);
    assert_int_equal(n_plausible(&d), 8);
    for (size_t i = 0; i < d.n_interp; i++)
        assert_int_equal(d.interp[i].verdict, TS_PROBE_STILL);
    /* with four registers a counter, 64 bits are tried too */
    struct ts_turnstile_cfg t64 = turnstile(64, TS_ORDER_ABCD, TS_DIR_UP);
    assert_int_equal(ts_probe_decide(&t64, s, 5, 4, &d), TS_OK);
    assert_int_equal(d.n_interp, 12);
    assert_int_equal(d.outcome, TS_PROBE_UNDECIDED);
}

/* Constant counters: several orders read plausible values; undecided too. */
static void test_decide_constant_undecided(void **state)
{
    struct ts_probe_sample s[3];
    struct ts_probe_decision d;
    const uint64_t e[] = {123456, 123456, 123456}, x[] = {654321, 654321, 654321};
    struct ts_turnstile_cfg t = turnstile(32, TS_ORDER_ABCD, TS_DIR_UP);

    encode(s, 3, 32, TS_ORDER_ABCD, e, x);
    assert_int_equal(ts_probe_decide(&t, s, 3, 2, &d), TS_OK);
    assert_int_equal(d.outcome, TS_PROBE_UNDECIDED);
    assert_true(d.interp[d.configured].plausible);
    assert_true(find(&d, 32, TS_ORDER_DCBA)->plausible);
}

/* Two readings count, but not the same people: a 32-bit counter whose high
 * word carries during the probe, and the 16-bit reading of that high word. */
static void test_decide_disagree(void **state)
{
    struct ts_probe_sample s[3];
    struct ts_probe_decision d;
    const uint64_t e[] = {0x1FFFE, 0x20003, 0x20005}, x[] = {7, 7, 7};
    struct ts_turnstile_cfg t = turnstile(32, TS_ORDER_ABCD, TS_DIR_UP);

    encode(s, 3, 32, TS_ORDER_ABCD, e, x);
    assert_int_equal(ts_probe_decide(&t, s, 3, 2, &d), TS_OK);
    assert_int_equal(d.outcome, TS_PROBE_UNDECIDED);
    assert_false(d.has_named);
    assert_true(d.interp[d.configured].plausible);
    assert_true(find(&d, 16, TS_ORDER_ABCD)->plausible);
    /* configured as 16 bits, the 32-bit reading does not agree either: no advice */
    struct ts_turnstile_cfg t16 = turnstile(16, TS_ORDER_BADC, TS_DIR_UP);
    assert_int_equal(ts_probe_decide(&t16, s, 3, 2, &d), TS_OK);
    assert_int_equal(d.outcome, TS_PROBE_WRONG);
    assert_false(d.has_named);
}

/* Constant counters read as 64 bits where they are 32 (with room for four
 * registers): absurd values, while narrower readings are not. */
static void test_decide_absurd_width(void **state)
{
    struct ts_probe_sample s[3];
    struct ts_probe_decision d;
    struct ts_turnstile_cfg t = turnstile(64, TS_ORDER_ABCD, TS_DIR_UP);

    memset(s, 0, sizeof s);
    for (int i = 0; i < 3; i++) {
        s[i].t_ms = 1000 * i;
        ts_encode_regs(123456, 32, TS_ORDER_ABCD, s[i].entries);
        ts_encode_regs(654321, 32, TS_ORDER_ABCD, s[i].entries + 2); /* the exits, next */
        ts_encode_regs(777, 32, TS_ORDER_ABCD, s[i].exits);
        ts_encode_regs(888, 32, TS_ORDER_ABCD, s[i].exits + 2);
    }
    assert_int_equal(ts_probe_decide(&t, s, 3, 4, &d), TS_OK);
    assert_int_equal(d.outcome, TS_PROBE_WRONG);
    assert_non_null(strstr(d.interp[d.configured].why, "absurd"));
    assert_true(find(&d, 32, TS_ORDER_ABCD)->plausible);
}

/* A 16-bit counter wraps during the probe: the configured reading stays right;
 * CDAB is ABCD at 16 bits, so it is right too, not undecided. */
static void test_decide_wrap16(void **state)
{
    struct ts_probe_sample s[4];
    struct ts_probe_decision d;
    const uint64_t e[] = {65530, 65534, 2, 5}, x[] = {10, 10, 11, 12};

    for (int o = TS_ORDER_ABCD; o <= TS_ORDER_CDAB; o++) {
        struct ts_turnstile_cfg t = turnstile(16, (enum ts_word_order)o, TS_DIR_UP);
        encode(s, 4, 16, TS_ORDER_ABCD, e, x);
        assert_int_equal(ts_probe_decide(&t, s, 4, 1, &d), TS_OK);
        assert_int_equal(d.n_interp, 4);
        assert_int_equal(d.outcome, TS_PROBE_RIGHT);
        assert_int_equal(find(&d, 16, TS_ORDER_BADC)->verdict, TS_PROBE_IMPLAUSIBLE);
    }
    struct ts_turnstile_cfg swapped = turnstile(16, TS_ORDER_DCBA, TS_DIR_UP);
    assert_int_equal(ts_probe_decide(&swapped, s, 4, 1, &d), TS_OK);
    assert_int_equal(d.outcome, TS_PROBE_WRONG);
}

/* Registers that change implausibly in every reading: no answer to give. */
static void test_decide_implausible(void **state)
{
    struct ts_probe_sample s[4];
    struct ts_probe_decision d;
    const uint64_t e[] = {1000, 990, 1000, 980}, x[] = {5000, 5000, 5000, 5000};
    struct ts_turnstile_cfg t = turnstile(32, TS_ORDER_ABCD, TS_DIR_UP);

    encode(s, 4, 32, TS_ORDER_ABCD, e, x);
    assert_int_equal(ts_probe_decide(&t, s, 4, 2, &d), TS_OK);
    assert_int_equal(d.outcome, TS_PROBE_NONE);
    assert_int_equal(n_plausible(&d), 0);
    /* the 16-bit reading of the high words is still, but the registers moved */
    assert_int_equal(find(&d, 16, TS_ORDER_ABCD)->verdict, TS_PROBE_STILL);
    /* with the right direction it is plausible */
    t.direction = TS_DIR_AUTO;
    const uint64_t down[] = {1000, 990, 985, 980};
    encode(s, 4, 32, TS_ORDER_ABCD, down, x);
    assert_int_equal(ts_probe_decide(&t, s, 4, 2, &d), TS_OK);
    assert_int_equal(d.outcome, TS_PROBE_RIGHT);
}

static void test_decide_bad_args(void **state)
{
    struct ts_probe_sample s[2] = {{0}};
    struct ts_probe_decision d;
    struct ts_turnstile_cfg t = turnstile(32, TS_ORDER_ABCD, TS_DIR_UP);

    assert_int_equal(ts_probe_decide(&t, s, 1, 2, &d), TS_EINVAL);
    assert_int_equal(ts_probe_decide(&t, s, 2, 3, &d), TS_EINVAL);
    assert_int_equal(ts_probe_decide(&t, s, 2, 1, &d), TS_EINVAL); /* narrower than configured */
    assert_int_equal(ts_probe_decide(&t, s, TS_PROBE_SAMPLES_MAX + 1, 2, &d), TS_EINVAL);
    t.width = 48;
    assert_int_equal(ts_probe_decide(&t, s, 2, 4, &d), TS_EINVAL);
    t.width = 32;
    t.order = (enum ts_word_order)4;
    assert_int_equal(ts_probe_decide(&t, s, 2, 2, &d), TS_EINVAL);
    t.order = TS_ORDER_DCBA;
    assert_int_equal(ts_probe_decide(&t, s, 2, 2, &d), TS_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_judge_monotonic),
        cmocka_unit_test(test_judge_constant),
        cmocka_unit_test(test_judge_steps),
        cmocka_unit_test(test_judge_wrap),
        cmocka_unit_test(test_judge_absurd),
        cmocka_unit_test(test_decide_right),
        cmocka_unit_test(test_decide_wrong_order),
        cmocka_unit_test(test_decide_wrong_width_narrow),
        cmocka_unit_test(test_decide_wrong_width_wide),
        cmocka_unit_test(test_decide_all_zero_undecided),
        cmocka_unit_test(test_decide_constant_undecided),
        cmocka_unit_test(test_decide_disagree),
        cmocka_unit_test(test_decide_absurd_width),
        cmocka_unit_test(test_decide_wrap16),
        cmocka_unit_test(test_decide_implausible),
        cmocka_unit_test(test_decide_bad_args),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
