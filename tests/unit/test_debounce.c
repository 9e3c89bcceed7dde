/* SPDX-License-Identifier: Apache-2.0 */
/* test_debounce.c - the GPIO event-to-count logic, fed with injected edges
 * (no gpio-sim here), and the gpio backend's failure paths. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "err.h"
#include "gpio_debounce.h"
#include "hal_private.h"   /* the gpio backend through its table */

#define US 1000ull
#define MS 1000000ull
#define S 1000000000ull

static struct ts_debounce make(enum ts_gpio_edge edge, bool active_low, uint32_t debounce_us,
                               int level)
{
    struct ts_debounce d;
    struct ts_debounce_cfg cfg = { .edge = edge, .active_low = active_low,
                                   .debounce_us = debounce_us };
    ts_debounce_init(&d, &cfg, level);
    return d;
}

/* An event list, fed to several debouncers alike. */
struct edge { bool rising; uint64_t t; };
struct edges { struct edge *e; size_t n, cap; };

static void push(struct edges *v, bool rising, uint64_t t)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 256;
        v->e = realloc(v->e, v->cap * sizeof v->e[0]);
        assert_non_null(v->e);
    }
    v->e[v->n++] = (struct edge){ rising, t };
}

static uint64_t feed(struct ts_debounce *d, const struct edges *v, bool invert)
{
    for (size_t i = 0; i < v->n; i++)
        ts_debounce_edge(d, v->e[i].rising != invert, v->e[i].t);
    return d->count;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(uint64_t n)  /* xorshift64, 0..n-1 */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state % n;
}

/* A contact closing (to_high) or opening at t0: `bounces` extra pairs of
 * edges within `span`, ending at the new level; sometimes a repeated edge,
 * as the v1 kernel reports when it reads the level mid-bounce. */
static void burst(struct edges *v, bool to_high, uint64_t t0, unsigned bounces, uint64_t span)
{
    uint64_t t = t0, gap = span / (2 * bounces + 1);
    push(v, to_high, t);
    for (unsigned b = 0; b < 2 * bounces; b++) {
        t += 1 + rnd(gap);
        push(v, (b % 2) ? to_high : !to_high, t);
        if (rnd(8) == 0)
            push(v, (b % 2) ? to_high : !to_high, t);
    }
}

static void clean_pulse(void **state)
{
    struct ts_debounce r = make(TS_EDGE_RISING, false, 10000, 0);
    struct ts_debounce f = make(TS_EDGE_FALLING, false, 10000, 0);
    struct ts_debounce b = make(TS_EDGE_BOTH, false, 10000, 0);
    struct edges v = { 0 };

    push(&v, true, 1 * S);
    push(&v, false, 1 * S + 200 * MS);
    assert_int_equal(feed(&r, &v, false), 1);
    assert_int_equal(feed(&f, &v, false), 1);
    assert_int_equal(feed(&b, &v, false), 2);  /* both: press + release = 2 edges */
    assert_int_equal(r.ignored, 0);
    assert_int_equal(r.level, 0);
    free(v.e);
}

static void counted_edge_is_reported(void **state)
{
    struct ts_debounce r = make(TS_EDGE_RISING, false, 0, 0);
    assert_int_equal(ts_debounce_edge(&r, true, 10), 1);
    assert_int_equal(ts_debounce_edge(&r, false, 20), 0);
    assert_int_equal(r.accepted, 2);
}

static void bounce_burst_counts_once(void **state)
{
    struct ts_debounce r = make(TS_EDGE_RISING, false, 10000, 0);
    struct ts_debounce b = make(TS_EDGE_BOTH, false, 10000, 0);
    struct edges v = { 0 };
    /* press: R F R F R within 1.6 ms; release 200 ms later: F R F R F */
    uint64_t press[] = { 0, 300 * US, 700 * US, 1100 * US, 1600 * US };
    for (int i = 0; i < 5; i++)
        push(&v, i % 2 == 0, 5 * S + press[i]);
    for (int i = 0; i < 5; i++)
        push(&v, i % 2 != 0, 5 * S + 200 * MS + press[i]);
    assert_int_equal(feed(&r, &v, false), 1);
    assert_int_equal(r.ignored, 8);
    assert_int_equal(feed(&b, &v, false), 2);
    free(v.e);
}

static void debounce_boundary(void **state)
{
    struct ts_debounce r = make(TS_EDGE_BOTH, false, 1000, 0);

    assert_int_equal(ts_debounce_edge(&r, true, 1 * MS), 1);
    /* 1 ns short of the lock-out: ignored */
    assert_int_equal(ts_debounce_edge(&r, false, 2 * MS - 1), 0);
    /* exactly debounce_us after the accepted edge: accepted */
    assert_int_equal(ts_debounce_edge(&r, false, 2 * MS), 1);
    /* measured from the accepted edge, not from the ignored one */
    assert_int_equal(ts_debounce_edge(&r, true, 3 * MS - 1), 0);
    assert_int_equal(ts_debounce_edge(&r, true, 3 * MS), 1);
    assert_int_equal(r.count, 3);
    assert_int_equal(r.ignored, 2);
}

static void edge_kinds(void **state)
{
    struct edges v = { 0 };
    for (uint64_t i = 0; i < 5; i++) {
        push(&v, true, i * S);
        push(&v, false, i * S + 300 * MS);
    }
    push(&v, true, 9 * S);  /* left pressed */
    struct ts_debounce r = make(TS_EDGE_RISING, false, 20000, 0);
    struct ts_debounce f = make(TS_EDGE_FALLING, false, 20000, 0);
    struct ts_debounce b = make(TS_EDGE_BOTH, false, 20000, 0);
    assert_int_equal(feed(&r, &v, false), 6);
    assert_int_equal(feed(&f, &v, false), 5);
    assert_int_equal(feed(&b, &v, false), 11);
    free(v.e);
}

static void active_low_inverts(void **state)
{
    /* Contact to ground with a pull-up: idle high, a press pulls it low. */
    struct ts_debounce r = make(TS_EDGE_RISING, true, 10000, 1);
    struct ts_debounce f = make(TS_EDGE_FALLING, true, 10000, 1);
    struct ts_debounce plain = make(TS_EDGE_RISING, false, 10000, 1);
    assert_int_equal(r.level, 0);  /* physical 1 is logical 0 */

    assert_int_equal(ts_debounce_edge(&r, false, 1 * S), 1);  /* press: physical fall */
    assert_int_equal(ts_debounce_edge(&r, true, 1 * S + 250 * MS), 0);
    assert_int_equal(ts_debounce_edge(&f, false, 1 * S), 0);
    assert_int_equal(ts_debounce_edge(&f, true, 1 * S + 250 * MS), 1);
    assert_int_equal(ts_debounce_edge(&plain, false, 1 * S), 0);
    assert_int_equal(ts_debounce_edge(&plain, true, 1 * S + 250 * MS), 1);
}

static void repeated_level_and_unknown_start(void **state)
{
    struct ts_debounce r = make(TS_EDGE_RISING, false, 10000, 0);
    assert_int_equal(ts_debounce_edge(&r, false, 1 * S), 0);  /* already low */
    assert_int_equal(ts_debounce_edge(&r, true, 2 * S), 1);
    assert_int_equal(ts_debounce_edge(&r, true, 3 * S), 0);   /* already high */
    assert_int_equal(r.ignored, 2);

    struct ts_debounce u = make(TS_EDGE_FALLING, false, 10000, -1);
    assert_int_equal(ts_debounce_edge(&u, false, 1 * S), 1);  /* a fall says it was high */
    struct ts_debounce ur = make(TS_EDGE_RISING, false, 10000, -1);
    assert_int_equal(ts_debounce_edge(&ur, true, 1 * S), 1);
}

static void no_debounce(void **state)
{
    struct ts_debounce b = make(TS_EDGE_BOTH, false, 0, 0);
    assert_int_equal(ts_debounce_edge(&b, true, 100), 1);
    assert_int_equal(ts_debounce_edge(&b, false, 100), 1);  /* same stamp, no lock-out */
    assert_int_equal(ts_debounce_edge(&b, false, 101), 0);
    assert_int_equal(b.count, 2);
}

/* 10,000 people, one per 0.6 s (with jitter), presses of 150-350 ms, each
 * closing and opening bouncing for up to 5 ms; debounce 10 ms. */
static void long_run_exact(void **state)
{
    enum { PEOPLE = 10000 };
    struct edges v = { 0 };
    for (uint64_t k = 0; k < PEOPLE; k++) {
        uint64_t t = 3 * S + k * 600 * MS + rnd(50 * MS);
        uint64_t held = 150 * MS + rnd(200 * MS);
        burst(&v, true, t, (unsigned)rnd(5), 5 * MS);
        burst(&v, false, t + held, (unsigned)rnd(5), 5 * MS);
    }
    for (int low = 0; low < 2; low++) {
        struct ts_debounce r = make(TS_EDGE_RISING, low, 10000, low);
        struct ts_debounce f = make(TS_EDGE_FALLING, low, 10000, low);
        struct ts_debounce b = make(TS_EDGE_BOTH, low, 10000, low);
        assert_int_equal(feed(&r, &v, low), PEOPLE);
        assert_int_equal(feed(&f, &v, low), PEOPLE);
        assert_int_equal(feed(&b, &v, low), 2 * PEOPLE);
        assert_int_equal(r.ignored + r.accepted, v.n);
        assert_true(r.ignored > 0);
    }
    /* Debounce shorter than the bounce overcounts: the reason for the
     * "debounce_us > longest bounce" rule in docs/gpio.md. */
    struct ts_debounce shortd = make(TS_EDGE_RISING, false, 100, 0);
    assert_true(feed(&shortd, &v, false) > PEOPLE);
    free(v.e);
}

static void repeated_timestamps(void **state)
{
    /* A whole bounce burst with one coarse time stamp: one count. */
    struct ts_debounce r = make(TS_EDGE_RISING, false, 10000, 0);
    for (int i = 0; i < 7; i++)
        ts_debounce_edge(&r, i % 2 == 0, 5 * S);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.level, 1);
    assert_int_equal(r.clock_steps, 0);
    ts_debounce_edge(&r, false, 5 * S + 200 * MS);
    ts_debounce_edge(&r, true, 6 * S);
    assert_int_equal(r.count, 2);
}

static void clock_steps_back(void **state)
{
    /* The clock steps back an hour between some pulses (a CLOCK_REALTIME
     * stamp on an old kernel): counting goes on exactly. */
    enum { PEOPLE = 200 };
    struct edges v = { 0 };
    uint64_t base = 10 * 3600 * S;
    for (uint64_t k = 0; k < PEOPLE; k++) {
        if (k % 50 == 25)
            base -= 3600 * S;
        uint64_t t = base + k * 600 * MS;
        burst(&v, true, t, 3, 5 * MS);
        burst(&v, false, t + 200 * MS, 3, 5 * MS);
    }
    struct ts_debounce r = make(TS_EDGE_RISING, false, 10000, 0);
    assert_int_equal(feed(&r, &v, false), PEOPLE);
    assert_int_equal(r.clock_steps, 4);

    /* A step back inside a bounce burst lets one bounce edge through; the
     * real edge after it then repeats the level and is ignored: totals stay
     * right for every edge kind. */
    struct edges w = { 0 };
    push(&w, true, 100 * S);
    push(&w, false, 100 * S + 1 * MS);
    push(&w, true, 40 * S);            /* clock stepped back */
    push(&w, false, 40 * S + 1 * MS);
    push(&w, true, 40 * S + 2 * MS);
    push(&w, false, 40 * S + 200 * MS);
    push(&w, true, 41 * S);
    push(&w, false, 41 * S + 200 * MS);
    struct ts_debounce sr = make(TS_EDGE_RISING, false, 10000, 0);
    struct ts_debounce sf = make(TS_EDGE_FALLING, false, 10000, 0);
    struct ts_debounce sb = make(TS_EDGE_BOTH, false, 10000, 0);
    assert_int_equal(feed(&sr, &w, false), 2);
    assert_int_equal(feed(&sf, &w, false), 2);
    assert_int_equal(feed(&sb, &w, false), 4);
    assert_int_equal(sr.clock_steps, 1);
    assert_int_equal(sr.level, 0);
    free(w.e);
    free(v.e);
}

static void garbage_timestamps(void **state)
{
    /* Random stamps (including 0 and UINT64_MAX) and edges: no trap, and
     * accepted edges still alternate, so rising and falling counts differ
     * by at most one. */
    struct ts_debounce r = make(TS_EDGE_RISING, false, 10000, -1);
    struct ts_debounce f = make(TS_EDGE_FALLING, false, 10000, -1);
    for (int i = 0; i < 100000; i++) {
        uint64_t t = rnd(4) == 0 ? (rnd(2) ? UINT64_MAX : 0) : rng_state;
        bool rising = rnd(2);
        ts_debounce_edge(&r, rising, t);
        ts_debounce_edge(&f, rising, t);
    }
    assert_int_equal(r.accepted, f.accepted);
    assert_true(r.count + f.count == r.accepted);
    assert_true(r.count <= f.count + 1 && f.count <= r.count + 1);
    assert_int_equal(r.accepted + r.ignored, 100000);
}

/* The gpio backend through its table, without any chip. */
static void gpio_missing_chip(void **state)
{
    struct ts_device_cfg dev = { .name = "gate-gpio", .kind = TS_HAL_GPIO,
                                 .chip = "gpiochip-does-not-exist", .debounce_us = 10000 };
    struct ts_turnstile_cfg t0 = { .name = "R001-00-00", .entry_line = 4, .exit_line = 5,
                                   .edge = TS_EDGE_RISING, .bias = TS_BIAS_PULL_UP };
    const struct ts_turnstile_cfg *ts[] = { &t0 };
    struct ts_source src = { .backend = &ts_backend_gpio, .cfg = &dev, .turnstiles = ts,
                             .n_turnstiles = 1 };
    uint64_t en = 7, ex = 7;

    assert_int_equal(src.backend->create(&src), TS_OK);
    assert_non_null(src.data);
    assert_int_equal(src.backend->read(&src, 0, &en, &ex), TS_EINVAL);  /* not open */
    assert_int_equal(src.backend->open(&src), TS_ECONNECT);
    assert_int_equal(src.backend->read(&src, 0, &en, &ex), TS_EINVAL);
    src.backend->close(&src);
    src.backend->destroy(&src);
    assert_null(src.data);
    src.backend->destroy(&src);  /* NULL-safe */
    src.backend->close(&src);
}

static void gpio_bad_config(void **state)
{
    struct ts_device_cfg dev = { .name = "gate-gpio", .kind = TS_HAL_GPIO, .chip = "gpiochip0" };
    struct ts_turnstile_cfg a = { .name = "A", .entry_line = 4, .exit_line = 5 };
    struct ts_turnstile_cfg b = { .name = "B", .entry_line = 5, .exit_line = 6 };
    struct ts_turnstile_cfg none = { .name = "C", .entry_line = -1, .exit_line = -1 };
    const struct ts_turnstile_cfg *dup[] = { &a, &b }, *unwired[] = { &none };
    struct ts_source src = { .backend = &ts_backend_gpio, .cfg = &dev, .turnstiles = dup,
                             .n_turnstiles = 2 };

    assert_int_equal(src.backend->create(&src), TS_ECONFIG);  /* line 5 twice */
    assert_null(src.data);
    src.turnstiles = unwired;
    src.n_turnstiles = 1;
    assert_int_equal(src.backend->create(&src), TS_ECONFIG);
    assert_null(src.data);
    dev.debounce_us = -1;
    src.turnstiles = dup;
    assert_int_equal(src.backend->create(&src), TS_ECONFIG);
    assert_null(src.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clean_pulse),
        cmocka_unit_test(counted_edge_is_reported),
        cmocka_unit_test(bounce_burst_counts_once),
        cmocka_unit_test(debounce_boundary),
        cmocka_unit_test(edge_kinds),
        cmocka_unit_test(active_low_inverts),
        cmocka_unit_test(repeated_level_and_unknown_start),
        cmocka_unit_test(no_debounce),
        cmocka_unit_test(long_run_exact),
        cmocka_unit_test(repeated_timestamps),
        cmocka_unit_test(clock_steps_back),
        cmocka_unit_test(garbage_timestamps),
        cmocka_unit_test(gpio_missing_chip),
        cmocka_unit_test(gpio_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
