/* SPDX-License-Identifier: Apache-2.0 */
/* test_poll_rate.c - the people counted do not depend on how often the agent polls.
 *
 * Replays a whole week through ts_replay_at (mta/replay.c) and polls it as
 * the agent would, at two very different rates of simulated time: every
 * 100 ms and every 60 s. Each turnstile's ENTRIES and EXITS go through a
 * ts_counter with the agent's defaults (width 32, direction auto, 120 people
 * a minute, rebase_after 3). The per-turnstile totals of both rates must
 * be equal: both polls fall on every minute, where all MTA times are, so the
 * tolerance of docs/counters.md ("Poll rate") is 0 here. The week is
 * the real one (TS_MTA_FILE) and a synthetic one (ts_mta_generate) with
 * anomalies added: counters running down, two alternating levels, resets,
 * 32-bit wraps, glitches of one and two readings, steps back.
 *
 * A week at 100 ms is 6 million polls per turnstile. The test feeds the
 * counters only the polls that can change what they do (docs/counters.md,
 * "Poll rate", has the argument): at each poll where a register's replayed
 * value may change (computed from the replay's linear formula, and every
 * reading's time), the poll itself; while a counter is in a glitch run, the
 * following polls until it has rebase_after readings, then the first poll at
 * which it can be confirmed; and the last poll before the next such point. Between those, every poll shows the same values (the
 * test checks it at both ends: the replay is monotonic within a segment),
 * and a reading equal to the last one only moves the time of the baseline
 * or of the held value, which the last poll sets as the full feed would. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "counter.h"
#include "mta_file.h"
#include "replay.h"

#define MIN_MS INT64_C(60000)
#define HOUR_MS (60 * MIN_MS)
#define FINE_MS 100
#define COARSE_MS MIN_MS
#define AGENT_RATE 120 /* the agent's default max_rate_per_min */
#define MASK32 UINT64_C(0xFFFFFFFF)

static const char *mta_path(void)
{
    const char *p = getenv("TS_MTA_FILE");
    return p && *p ? p : "/work/shared/data/mta/turnstile_230603.csv.gz";
}

/* ---- polling one turnstile ------------------------------------------------ */

struct poll_result {
    uint64_t total[2];
    uint64_t polls_fed;
};

struct times {
    int64_t *t;
    size_t n, cap;
};

static void push(struct times *v, int64_t t)
{
    if (v->n && v->t[v->n - 1] >= t)
        return; /* kept sorted and unique: the callers push in time order */
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 4096;
        v->t = realloc(v->t, v->cap * sizeof *v->t);
        assert_non_null(v->t);
    }
    v->t[v->n++] = t;
}

/* The first poll at or after t. */
static int64_t grid(int64_t t0, int64_t period, int64_t t)
{
    return t <= t0 ? t0 : t0 + (t - t0 + period - 1) / period * period;
}

static uint64_t reg_value(const struct ts_mta_reading *r, int reg)
{
    return reg ? r->exits : r->entries;
}

/* The polls in [t0, t1] at which the replayed values may change: every
 * reading's time and, on a linear segment, each instant at which the
 * rounded value moves by one (ta + ceil(j * (tb - ta) / d), j = 1..d). */
static void change_polls(const struct ts_mta_turnstile *t, int64_t t0, int64_t t1, int64_t period,
                         struct times *out)
{
    out->n = 0;
    push(out, t0);
    for (size_t k = 0, nk; k + 1 < t->n_readings; k = nk) {
        /* the file's value at a time is its last row at that time */
        for (nk = k + 1; nk + 1 < t->n_readings && t->readings[nk + 1].time_ms == t->readings[nk].time_ms;)
            nk++;
        if (t->readings[nk].time_ms == t->readings[k].time_ms)
            continue; /* rows of the first time */
        const struct ts_mta_reading *a = &t->readings[k], *b = &t->readings[nk];
        int64_t ta = a->time_ms, den = b->time_ms - a->time_ms;
        uint64_t d[2];
        uint64_t j[2] = {1, 1};

        if (b->time_ms <= t0 || a->time_ms > t1)
            continue;
        for (int reg = 0; reg < 2; reg++) {
            uint64_t va = reg_value(a, reg), vb = reg_value(b, reg);
            d[reg] = den > 0 && ts_replay_linear(t, k, reg, NULL) ? (va > vb ? va - vb : vb - va) : 0;
        }
        /* merge the two registers' instants, in time order */
        for (;;) {
            int64_t next[2];
            for (int reg = 0; reg < 2; reg++)
                next[reg] = j[reg] <= d[reg]
                                ? ta + (int64_t)((j[reg] * (uint64_t)den + d[reg] - 1) / d[reg])
                                : INT64_MAX;
            int reg = next[1] < next[0];
            if (next[reg] == INT64_MAX)
                break;
            j[reg]++;
            if (next[reg] > t0 && next[reg] <= t1)
                push(out, grid(t0, period, next[reg]));
        }
        if (b->time_ms > t0 && b->time_ms <= t1)
            push(out, grid(t0, period, b->time_ms));
    }
}

struct feeder {
    const struct ts_mta_turnstile *t;
    struct ts_counter c[2];
    uint64_t total[2];
    uint64_t polls;
};

static void feed(struct feeder *f, int64_t when, uint64_t v[2])
{
    ts_replay_at(f->t, when, NULL, &v[0], &v[1]);
    for (int reg = 0; reg < 2; reg++) {
        uint32_t flags = 0;
        f->total[reg] += ts_counter_step(&f->c[reg], v[reg] & MASK32, when, &flags);
    }
    f->polls++;
}

/* Polls t every `period` ms from t0 to t1 (a multiple of period after t0). */
static struct poll_result poll_turnstile(const struct ts_mta_turnstile *t, int64_t t0, int64_t t1,
                                         int64_t period, struct times *polls)
{
    struct ts_counter_cfg cfg = {.width = 32, .direction = TS_DIR_AUTO, .max_rate_per_min = AGENT_RATE};
    struct feeder f = {.t = t};

    for (int reg = 0; reg < 2; reg++)
        assert_int_equal(ts_counter_init(&f.c[reg], &cfg), 0);
    change_polls(t, t0, t1, period, polls);
    for (size_t i = 0; i < polls->n; i++) {
        int64_t g = polls->t[i], end = i + 1 < polls->n ? polls->t[i + 1] - period : t1, fed = g;
        uint64_t first[2], v[2];

        feed(&f, g, first);
        /* a glitch run grows with every reading, equal or not, and is
         * confirmed at the first of them that is both the rebase_after-th
         * and (rebase_after - 1) windows after its first */
        for (unsigned k = 0; (f.c[0].run_len || f.c[1].run_len) && fed < end; k++) {
            int64_t next = INT64_MAX;
            assert_true(k < 2 * TS_COUNTER_REBASE_MAX);
            for (int reg = 0; reg < 2; reg++) {
                const struct ts_counter *c = &f.c[reg];
                int64_t when = c->run_len >= c->cfg.rebase_after
                                   ? grid(t0, period, c->run_first_time_ms +
                                                          (int64_t)(c->cfg.rebase_after - 1) * TS_COUNTER_WINDOW_MS)
                                   : fed + period;
                if (c->run_len && when < next)
                    next = when > fed ? when : fed + period;
            }
            if (next > end)
                break;
            feed(&f, fed = next, v);
            assert_true(v[0] == first[0] && v[1] == first[1]);
        }
        if (end > fed) { /* the last poll of the stretch sets the baseline's time */
            feed(&f, end, v);
            if (v[0] != first[0] || v[1] != first[1])
                fail_msg("%s/%s/%s: the replay changed between polls %" PRId64 " and %" PRId64
                         " (%" PRIu64 "/%" PRIu64 " -> %" PRIu64 "/%" PRIu64 ")",
                         t->ca, t->unit, t->scp, g, end, first[0], first[1], v[0], v[1]);
        }
    }
    return (struct poll_result){{f.total[0], f.total[1]}, f.polls};
}

/* ---- comparing two poll rates over a data set ------------------------------- */

/* Tolerance per register, in people (docs/counters.md, "Poll rate"): 0 with
 * both polls on the file's minutes. */
#define TOLERANCE 0

struct diff {
    size_t i;
    int reg;
    uint64_t fine, coarse;
};

static int by_size(const void *a, const void *b)
{
    const struct diff *x = a, *y = b;
    uint64_t dx = x->fine > x->coarse ? x->fine - x->coarse : x->coarse - x->fine;
    uint64_t dy = y->fine > y->coarse ? y->fine - y->coarse : y->coarse - y->fine;
    return dx < dy ? 1 : dx > dy ? -1 : 0;
}

/* Returns the number of registers whose totals differ by more than TOLERANCE;
 * per_ts (may be NULL) gets each turnstile's totals at 100 ms. */
static size_t compare(const char *name, const struct ts_mta_data *d, uint64_t out_total[2][2],
                      uint64_t (*per_ts)[2])
{
    int64_t t0 = d->first_ms, t1 = t0 + (d->last_ms - t0 + COARSE_MS - 1) / COARSE_MS * COARSE_MS;
    struct diff *diffs = calloc(2 * d->n_turnstiles + 1, sizeof *diffs);
    struct times polls = {0};
    uint64_t total[2][2] = {{0}}, fed[2] = {0};
    size_t n_diff = 0, over = 0;

    assert_non_null(diffs);
    for (size_t i = 0; i < d->n_turnstiles; i++) {
        struct poll_result fine = poll_turnstile(&d->turnstiles[i], t0, t1, FINE_MS, &polls);
        struct poll_result coarse = poll_turnstile(&d->turnstiles[i], t0, t1, COARSE_MS, &polls);

        fed[0] += fine.polls_fed;
        fed[1] += coarse.polls_fed;
        for (int reg = 0; reg < 2; reg++) {
            total[0][reg] += fine.total[reg];
            if (per_ts)
                per_ts[i][reg] = fine.total[reg];
            total[1][reg] += coarse.total[reg];
            if (fine.total[reg] != coarse.total[reg]) {
                diffs[n_diff++] = (struct diff){i, reg, fine.total[reg], coarse.total[reg]};
                uint64_t dd = fine.total[reg] > coarse.total[reg] ? fine.total[reg] - coarse.total[reg]
                                                                  : coarse.total[reg] - fine.total[reg];
                over += dd > TOLERANCE;
            }
        }
    }
    qsort(diffs, n_diff, sizeof *diffs, by_size);
    printf("%s: %zu turnstiles, polled every %d ms (%" PRIu64 " polls fed) and every %" PRId64
           " ms (%" PRIu64 " fed): entries %" PRIu64 " / %" PRIu64 ", exits %" PRIu64 " / %" PRIu64
           "; %zu registers differ, %zu by more than %d\n",
           name, d->n_turnstiles, FINE_MS, fed[0], COARSE_MS, fed[1], total[0][0], total[1][0],
           total[0][1], total[1][1], n_diff, over, TOLERANCE);
    for (size_t k = 0; k < n_diff && (k < 15 || getenv("TS_POLL_VERBOSE")); k++) {
        const struct ts_mta_turnstile *t = &d->turnstiles[diffs[k].i];
        printf("  %s/%s/%s %-7s %s: %" PRIu64 " at %d ms, %" PRIu64 " at %" PRId64 " ms\n", t->ca,
               t->unit, t->scp, diffs[k].reg ? "exits" : "entries", t->station, diffs[k].fine,
               FINE_MS, diffs[k].coarse, COARSE_MS);
    }
    if (out_total)
        memcpy(out_total, total, sizeof total);
    free(diffs);
    free(polls.t);
    return over;
}

/* ---- the real week ---------------------------------------------------------- */

static void test_real_week(void **state)
{
    struct ts_mta_data *d = NULL;
    char err[512];
    uint64_t total[2][2];

    /* TS_POLL_RATE_TURNSTILES=N: only the file's first N turnstiles (at least
     * 39, so that A011/R080/01-03-00 is among them): scripts/test-cross sets it,
     * where qemu runs the whole week for minutes */
    struct ts_mta_filter filter = {0};
    const char *n = getenv("TS_POLL_RATE_TURNSTILES");
    if (n && *n)
        filter.max_turnstiles = (size_t)strtoul(n, NULL, 10);
    if (filter.max_turnstiles && filter.max_turnstiles < 39)
        fail_msg("TS_POLL_RATE_TURNSTILES=%s: at least 39", n);
    if (ts_mta_load(mta_path(), &filter, &d, err, sizeof err))
        fail_msg("%s", err);
    ts_replay_prepare(d);
    size_t over = compare("real week", d, total, NULL);

    /* the downward counter of 57 ST-7 AV counts the same at both rates: the
     * whole fall of the week (its first vote aside) */
    const struct ts_mta_turnstile *t = ts_mta_find(d, "A011", "R080", "01-03-00");
    struct times polls = {0};
    assert_non_null(t);
    int64_t t0 = d->first_ms, t1 = t0 + (d->last_ms - t0 + COARSE_MS - 1) / COARSE_MS * COARSE_MS;
    struct poll_result fine = poll_turnstile(t, t0, t1, FINE_MS, &polls);
    uint64_t fall = t->readings[0].exits - t->readings[t->n_readings - 1].exits;
    printf("A011/R080/01-03-00 exits: %" PRIu64 " at %d ms, the file falls %" PRIu64 "\n",
           fine.total[1], FINE_MS, fall);
    assert_true(fine.total[1] + 10 >= fall && fine.total[1] <= fall);
    free(polls.t);
    assert_int_equal(over, 0);
    ts_mta_free(d);
}

/* ---- a synthetic week with anomalies ---------------------------------------- */

enum anomaly {
    CLEAN, DOWN, ALTERNATE, RESET, WRAP, GLITCH, STEP_BACK, DOWN_GLITCH, N_ANOMALIES
};
static const char *const anomaly_names[] = {"clean", "down", "alternate", "reset", "wrap",
                                            "glitch", "step-back", "down-glitch"};

/* Rewrites t's readings (owned by the data set) with anomaly a. */
static void add_anomaly(struct ts_mta_turnstile *t, enum anomaly a, size_t k)
{
    struct ts_mta_reading *r = t->readings;
    size_t n = t->n_readings;

    snprintf(t->station, sizeof t->station, "%s", anomaly_names[a]);
    switch (a) {
    case CLEAN:
        break;
    case DOWN: /* both registers count down */
        for (size_t i = 0; i < n; i++) {
            r[i].entries = (UINT64_C(1) << 30) - r[i].entries;
            r[i].exits = (UINT64_C(1) << 30) - r[i].exits;
        }
        break;
    case ALTERNATE: { /* each time holds two rows: a stuck level, then the counter */
        struct ts_mta_reading *two = malloc(2 * n * sizeof *two);
        assert_non_null(two);
        for (size_t i = 0; i < n; i++) {
            two[2 * i] = (struct ts_mta_reading){.time_ms = r[i].time_ms, .entries = 2998, .exits = 0};
            two[2 * i + 1] = r[i];
            two[2 * i + 1].entries = r[i].entries - r[0].entries + 80;
            two[2 * i + 1].exits = r[i].exits - r[0].exits + 329;
        }
        free(r);
        t->readings = two;
        t->n_readings = 2 * n;
        break;
    }
    case RESET: { /* reset to 0 twice, seen at a small value after the next interval */
        size_t at[2] = {n / 3, 2 * n / 3};
        uint64_t seen[2] = {5 + k % 50, 100 + k % 300};
        for (int m = 0; m < 2; m++) {
            uint64_t e0 = r[at[m] - 1].entries, x0 = r[at[m] - 1].exits;
            uint64_t e1 = r[at[m]].entries, x1 = r[at[m]].exits;
            for (size_t i = at[m]; i < n; i++) {
                r[i].entries = r[i].entries - e1 + (e1 - e0 < seen[m] ? e1 - e0 : seen[m]);
                r[i].exits = r[i].exits - x1 + (x1 - x0 < seen[m] ? x1 - x0 : seen[m]);
            }
        }
        break;
    }
    case WRAP: { /* crosses 2^32 mid-week: the 32-bit register wraps */
        uint64_t de = (UINT64_C(1) << 32) - r[n / 2].entries, dx = (UINT64_C(1) << 32) - r[n / 3].exits - 7;
        for (size_t i = 0; i < n; i++) {
            r[i].entries += de;
            r[i].exits += dx;
        }
        break;
    }
    case GLITCH: /* garbage for one reading, later for two in a row */
        r[n / 4].entries ^= UINT64_C(1) << 28;
        r[n / 2].exits = 0;
        r[n / 2 + 1].exits = 0;
        r[3 * n / 4].entries = r[3 * n / 4].exits = UINT64_C(0xFFFFFFFF);
        break;
    case STEP_BACK: /* back by a few at once, as N405/R239's exits */
        for (size_t i = n / 5; i < n; i += n / 5)
            r[i].exits = r[i - 1].exits - 3;
        break;
    case DOWN_GLITCH: /* down, with a rise against the direction and a jump */
        for (size_t i = 0; i < n; i++) {
            r[i].entries = (UINT64_C(1) << 31) - r[i].entries;
            r[i].exits = (UINT64_C(1) << 31) - r[i].exits;
        }
        r[n / 3].entries = r[n / 3 - 1].entries + 40;
        r[2 * n / 3].exits = r[2 * n / 3].exits + 1000000;
        break;
    case N_ANOMALIES:
        break;
    }
}

static void test_synthetic_week(void **state)
{
    struct ts_mta_data *d = NULL;
    int64_t start = ts_mta_ny_to_ms(2023, 5, 27, 0, 0, 0);

    /* TS_POLL_RATE_SYNTHETIC=N: N turnstiles (a multiple of 8: each anomaly N/8 times)
     * instead of 192; scripts/test-cross sets it, as TS_POLL_RATE_TURNSTILES above */
    size_t n_synthetic = 8 * 24;
    const char *ns = getenv("TS_POLL_RATE_SYNTHETIC");
    if (ns && *ns) {
        n_synthetic = (size_t)strtoul(ns, NULL, 10);
        if (n_synthetic < N_ANOMALIES || n_synthetic % N_ANOMALIES)
            fail_msg("TS_POLL_RATE_SYNTHETIC=%s: a multiple of %d", ns, N_ANOMALIES);
    }
    assert_int_equal(ts_mta_generate(n_synthetic, 7, start, 7, &d), 0);
    for (size_t i = 0; i < d->n_turnstiles; i++)
        add_anomaly(&d->turnstiles[i], (enum anomaly)(i % N_ANOMALIES), i);
    ts_replay_prepare(d);
    uint64_t (*got)[2] = calloc(d->n_turnstiles, sizeof *got);
    assert_non_null(got);
    assert_int_equal(compare("synthetic week", d, NULL, got), 0);
    /* and the people are the right ones where the file says how many */
    for (size_t i = 0; i < d->n_turnstiles; i++) {
        const struct ts_mta_turnstile *t = &d->turnstiles[i];
        const struct ts_mta_reading *first = &t->readings[0], *last = &t->readings[t->n_readings - 1];
        uint64_t want[2];

        switch ((enum anomaly)(i % N_ANOMALIES)) {
        case CLEAN:
        case WRAP:      /* counted across 2^32 */
        case ALTERNATE: /* the counter's rows; the stuck level lasts no time */
            want[0] = last->entries - (i % N_ANOMALIES == ALTERNATE ? first[1].entries : first->entries);
            want[1] = last->exits - (i % N_ANOMALIES == ALTERNATE ? first[1].exits : first->exits);
            break;
        case DOWN:
            want[0] = first->entries - last->entries;
            want[1] = first->exits - last->exits;
            break;
        default:
            continue;
        }
        if (got[i][0] != want[0] || got[i][1] != want[1])
            fail_msg("%s/%s/%s (%s): %" PRIu64 "/%" PRIu64 " people, the file says %" PRIu64
                     "/%" PRIu64, t->ca, t->unit, t->scp, t->station, got[i][0], got[i][1],
                     want[0], want[1]);
    }
    free(got);
    ts_mta_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synthetic_week),
        cmocka_unit_test(test_real_week),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
