/* SPDX-License-Identifier: Apache-2.0 */
/* test_counter_mta.c - every turnstile of the real MTA week through ts_counter_step.
 *
 * Each turnstile's ENTRIES and EXITS registers go through a counter with
 * direction auto, width 32 and a rate of 60 people per minute (one a second:
 * over 4 times the busiest 4-hour average in the file, 13.5/min, and 3 times
 * the busiest short interval, 19/min). The results are checked reading by
 * reading, and as per-turnstile totals and anomaly counts, against a second
 * implementation of the rules of docs/counters.md (with the default
 * rebase_after, 3) written below with plain signed differences (the values
 * stay below 2^31, so no modular arithmetic is needed), and against facts
 * about the file known by hand.
 * The file is TS_MTA_FILE, default /work/shared/data/mta/turnstile_230603.csv.gz;
 * times are New York local time, taken as UTC (only intervals matter). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "civil.h"
#include "counter.h"

#define RATE_PER_MIN 60
#define MTA_DEFAULT "/work/shared/data/mta/turnstile_230603.csv.gz"

enum { ENTRIES, EXITS };

struct row {
    int64_t t_ms;
    int64_t cum[2];
    int recovered;      /* DESC is RECOVR AUD */
    /* results of the code under test and of the model */
    uint64_t delta[2], model_delta[2];
    uint32_t flags[2], model_flags[2];
};

struct turnstile {
    char key[40];       /* C/A/UNIT/SCP */
    size_t first, n;    /* its rows */
    uint64_t total[2], model_total[2];
    enum ts_direction dir[2];
};

static struct {
    struct row *rows;
    size_t n_rows;
    struct turnstile *ts;
    size_t n_ts;
} mta;

/* ---- loading ---------------------------------------------------------------- */

static int parse_time(const char *date, const char *time, int64_t *ms)
{
    int mo, d, y, h, mi, s;
    char end;

    if (sscanf(date, "%2d/%2d/%4d%c", &mo, &d, &y, &end) != 3 ||
        sscanf(time, "%2d:%2d:%2d%c", &h, &mi, &s, &end) != 3)
        return -1;
    *ms = ((ts_days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + s * 1000;
    return 0;
}

static int parse_count(const char *s, int64_t *v)
{
    char *end;
    long long n = strtoll(s, &end, 10);

    *v = n;
    return end != s && *end == '\0' && n >= 0 ? 0 : -1;
}

static void *grow(void *p, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return p;
    *cap = *cap ? *cap * 2 : 1024;
    p = realloc(p, *cap * size);
    assert_non_null(p);
    return p;
}

static int load(void **state)
{
    const char *path = getenv("TS_MTA_FILE") ? getenv("TS_MTA_FILE") : MTA_DEFAULT;
    gzFile gz = gzopen(path, "rb");
    char line[512];
    size_t cap_rows = 0, cap_ts = 0, lineno = 0;

    if (!gz) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    while (gzgets(gz, line, sizeof line)) {
        char *f[13], *p = line, key[40];
        int n = 0;

        if (lineno++ == 0)
            continue; /* header */
        line[strcspn(line, "\r\n")] = '\0';
        while (n < 13 && p) {
            f[n++] = p;
            p = strchr(p, ',');
            if (p)
                *p++ = '\0';
        }
        mta.rows = grow(mta.rows, mta.n_rows, &cap_rows, sizeof *mta.rows);
        struct row *r = &mta.rows[mta.n_rows];
        memset(r, 0, sizeof *r);
        if (n != 12 || parse_time(f[7], f[8], &r->t_ms) || parse_count(f[10], &r->cum[ENTRIES]) ||
            parse_count(f[11], &r->cum[EXITS])) {
            fprintf(stderr, "%s:%zu: malformed line\n", path, lineno);
            gzclose(gz);
            return -1;
        }
        r->recovered = strcmp(f[9], "RECOVR AUD") == 0;
        snprintf(key, sizeof key, "%s/%s/%s", f[1], f[2], f[3]);
        if (mta.n_ts == 0 || strcmp(mta.ts[mta.n_ts - 1].key, key) != 0) {
            mta.ts = grow(mta.ts, mta.n_ts, &cap_ts, sizeof *mta.ts);
            memset(&mta.ts[mta.n_ts], 0, sizeof *mta.ts);
            snprintf(mta.ts[mta.n_ts].key, sizeof mta.ts[0].key, "%s", key);
            mta.ts[mta.n_ts++].first = mta.n_rows;
        }
        mta.ts[mta.n_ts - 1].n++;
        mta.n_rows++;
    }
    gzclose(gz);
    return 0;
}

static int unload(void **state)
{
    free(mta.rows);
    free(mta.ts);
    return 0;
}

static struct turnstile *find_ts(const char *key)
{
    for (size_t i = 0; i < mta.n_ts; i++)
        if (strcmp(mta.ts[i].key, key) == 0)
            return &mta.ts[i];
    fail_msg("no turnstile %s", key);
    return NULL;
}

static struct row *find_row(const char *key, const char *date, const char *time)
{
    struct turnstile *t = find_ts(key);
    int64_t ms = 0;

    assert_int_equal(parse_time(date, time, &ms), 0);
    for (size_t i = t->first; i < t->first + t->n; i++)
        if (mta.rows[i].t_ms == ms)
            return &mta.rows[i];
    fail_msg("no reading of %s at %s %s", key, date, time);
    return NULL;
}

/* ---- the model: docs/counters.md again, with signed differences -------------- */

/* The model keeps what it withholds as a list of readings: either the one
 * held value, or the glitch run (its first and last value and its length). */
#define REBASE_AFTER 3 /* the documented default: readings that confirm a new level */

struct model {
    int have_prev;
    int64_t prev, prev_t;
    int n_held;                    /* 1 if the last reading was held */
    int64_t held, held_t;
    int n_run;                     /* readings in the glitch run, 0 = none */
    int64_t run0, run0_t, run_last, run_last_t;
    int64_t up, down;
};

static int64_t allowed(int64_t dt_ms)
{
    int64_t n = dt_ms > 0 ? dt_ms * RATE_PER_MIN / 60000 : 0;
    return n > TS_COUNTER_DEFAULT_MIN_PLAUSIBLE ? n : TS_COUNTER_DEFAULT_MIN_PLAUSIBLE;
}

static int within(int64_t d, int64_t dt_ms) { return d >= 0 && d <= allowed(dt_ms); }

static void model_accept(struct model *m, int64_t v, int64_t t)
{
    m->prev = v;
    m->prev_t = t;
    m->n_held = 0;
    m->n_run = 0;
}

static uint32_t model_step(struct model *m, int64_t v, int64_t t, uint64_t *delta)
{
    *delta = 0;
    if (!m->have_prev) {
        m->have_prev = 1;
        model_accept(m, v, t);
        return TS_FLAG_FIRST;
    }
    /* vote on the move from the last reading */
    int64_t last = m->prev, last_t = m->prev_t;
    if (m->n_held) {
        last = m->held;
        last_t = m->held_t;
    } else if (m->n_run) {
        last = m->run_last;
        last_t = m->run_last_t;
    }
    int64_t move = v - last;
    m->up += move > 0 && within(move, t - last_t);
    m->down += move < 0 && within(-move, t - last_t);
    if (m->up + m->down > TS_COUNTER_VOTE_CAP) {
        m->up /= 2;
        m->down /= 2;
    }
    int sign = m->down >= m->up + TS_COUNTER_VOTE_LEAD ? -1 : 1; /* counting down? */
    int open = m->up < m->down + TS_COUNTER_VOTE_LEAD && m->down < m->up + TS_COUNTER_VOTE_LEAD;
    uint32_t down_flag = sign < 0 ? TS_FLAG_DOWNWARD : 0;

    int64_t from_base = sign * (v - m->prev);
    int base_ok = within(from_base, t - m->prev_t);
    int run_ok = m->n_run > 0 && within(sign * (v - m->run_last), t - m->run_last_t);
    int held_ok = m->n_held > 0 && within(sign * (v - m->held), t - m->held_t);
    if (base_ok && run_ok && sign * (v - m->run_last) < from_base &&
        !within(sign * (m->run0 - m->prev), m->run0_t - m->prev_t))
        base_ok = 0; /* the baseline would count the withheld jump */

    if (base_ok) {
        *delta = (uint64_t)from_base;
        model_accept(m, v, t);
        return down_flag;
    }
    if (run_ok) {
        m->n_run++;
        m->run_last = v;
        m->run_last_t = t;
        if (m->n_run < REBASE_AFTER || t - m->run0_t < (REBASE_AFTER - 1) * TS_COUNTER_WINDOW_MS)
            return TS_FLAG_GLITCH;
        *delta = (uint64_t)(sign * (v - m->run0)); /* from the first withheld value */
        model_accept(m, v, t);
        return down_flag | TS_FLAG_REBASED;
    }
    if (open && within(m->prev - v, t - m->prev_t) && !(held_ok && v != m->held)) {
        m->n_held = 1;
        m->held = v;
        m->held_t = t;
        m->n_run = 0;
        return TS_FLAG_DOWNWARD;
    }
    if (held_ok) {
        *delta = (uint64_t)(sign * (v - m->held));
        model_accept(m, v, t);
        return down_flag | TS_FLAG_REBASED;
    }
    int64_t window = t - m->prev_t > TS_COUNTER_WINDOW_MS ? t - m->prev_t : TS_COUNTER_WINDOW_MS;
    if (sign > 0 && v <= allowed(window) && m->prev - v > allowed(t - m->prev_t)) {
        *delta = (uint64_t)v;
        model_accept(m, v, t);
        return TS_FLAG_RESET;
    }
    /* a new glitch run */
    m->n_held = 0;
    m->n_run = 1;
    m->run0 = m->run_last = v;
    m->run0_t = m->run_last_t = t;
    return TS_FLAG_GLITCH;
}

/* ---- the replay ------------------------------------------------------------- */

static const struct {
    uint32_t flag;
    const char *name;
} kinds[] = {
    {TS_FLAG_RESET, "reset"},       {TS_FLAG_GLITCH, "glitch"}, {TS_FLAG_REBASED, "rebased"},
    {TS_FLAG_DOWNWARD, "downward"}, {TS_FLAG_WRAP, "wrap"},     {TS_FLAG_SIGNED, "signed"},
};
#define N_KINDS (sizeof kinds / sizeof kinds[0])

static void replay(void)
{
    static int done;
    struct ts_counter_cfg cfg = {.width = 32, .direction = TS_DIR_AUTO, .max_rate_per_min = RATE_PER_MIN};

    if (done++)
        return;
    for (size_t i = 0; i < mta.n_ts; i++) {
        struct turnstile *t = &mta.ts[i];

        for (int reg = ENTRIES; reg <= EXITS; reg++) {
            struct ts_counter c;
            struct model m = {0};

            assert_int_equal(ts_counter_init(&c, &cfg), 0);
            for (size_t j = t->first; j < t->first + t->n; j++) {
                struct row *r = &mta.rows[j];

                r->delta[reg] = ts_counter_step(&c, (uint64_t)r->cum[reg], r->t_ms, &r->flags[reg]);
                r->model_flags[reg] = model_step(&m, r->cum[reg], r->t_ms, &r->model_delta[reg]);
                t->total[reg] += r->delta[reg];
                t->model_total[reg] += r->model_delta[reg];
            }
            t->dir[reg] = ts_counter_direction(&c);
            /* the counter's own tallies agree with the flags it gave */
            uint64_t n[N_KINDS] = {0};
            for (size_t j = t->first; j < t->first + t->n; j++)
                for (size_t k = 0; k < N_KINDS; k++)
                    n[k] += (mta.rows[j].flags[reg] & kinds[k].flag) != 0;
            assert_int_equal(n[0], c.n_reset);
            assert_int_equal(n[1], c.n_glitch);
            assert_int_equal(n[2], c.n_rebased);
            assert_int_equal(n[3], c.n_downward);
            assert_int_equal(n[4], c.n_wrap);
            assert_int_equal(n[5], c.n_signed);
        }
    }
}

/* With TS_MTA_VERBOSE set: every reading flagged other than downward. */
static void list_anomalies(void)
{
    for (size_t i = 0; i < mta.n_ts; i++) {
        for (size_t j = mta.ts[i].first + 1; j < mta.ts[i].first + mta.ts[i].n; j++) {
            const struct row *r = &mta.rows[j];
            /* the week runs from 05/27 to 06/02 */
            int64_t min = r->t_ms / 60000 - ts_days_from_civil(2023, 5, 27) * 1440;
            int64_t day = 27 + min / 1440;

            for (int reg = ENTRIES; reg <= EXITS; reg++) {
                char names[128];

                if (!(r->flags[reg] & ~(uint32_t)TS_FLAG_DOWNWARD))
                    continue;
                ts_flags_format(r->flags[reg], names, sizeof names);
                printf("  %-20s %-7s %02lld/%02lld %02lld:%02lld %10lld -> %10lld (%+lld in %lld min) %4llu %s%s\n",
                       mta.ts[i].key, reg ? "exits" : "entries", day > 31 ? 6LL : 5LL,
                       (long long)(day > 31 ? day - 31 : day),
                       (long long)(min / 60 % 24), (long long)(min % 60), (long long)r[-1].cum[reg],
                       (long long)r->cum[reg], (long long)(r->cum[reg] - r[-1].cum[reg]),
                       (long long)((r->t_ms - r[-1].t_ms) / 60000), (unsigned long long)r->delta[reg],
                       names, r->recovered ? " RECOVR AUD" : "");
            }
        }
    }
}

static void test_replay_matches_model(void **state)
{
    uint64_t total[2] = {0}, count[2][N_KINDS] = {{0}}, model_count[2][N_KINDS] = {{0}};
    uint64_t on_recovered = 0;
    size_t mismatches = 0, ts_mismatches = 0;

    replay();
    for (size_t i = 0; i < mta.n_ts; i++) {
        struct turnstile *t = &mta.ts[i];
        uint64_t n[2][N_KINDS] = {{0}}, mn[2][N_KINDS] = {{0}};

        for (size_t j = t->first; j < t->first + t->n; j++) {
            struct row *r = &mta.rows[j];

            for (int reg = ENTRIES; reg <= EXITS; reg++) {
                if ((r->delta[reg] != r->model_delta[reg] || r->flags[reg] != r->model_flags[reg]) &&
                    mismatches++ < 10)
                    fprintf(stderr, "%s reading %zu %s: code %llu 0x%x, model %llu 0x%x\n", t->key,
                            j - t->first, reg ? "exits" : "entries", (unsigned long long)r->delta[reg],
                            r->flags[reg], (unsigned long long)r->model_delta[reg], r->model_flags[reg]);
                for (size_t k = 0; k < N_KINDS; k++) {
                    n[reg][k] += (r->flags[reg] & kinds[k].flag) != 0;
                    mn[reg][k] += (r->model_flags[reg] & kinds[k].flag) != 0;
                }
                if (r->recovered && (r->flags[reg] & (TS_FLAG_RESET | TS_FLAG_GLITCH | TS_FLAG_REBASED)))
                    on_recovered++;
            }
        }
        /* per turnstile: totals and anomaly counts */
        int same = t->total[0] == t->model_total[0] && t->total[1] == t->model_total[1] &&
                   memcmp(n, mn, sizeof n) == 0;
        if (!same && ts_mismatches++ < 10)
            fprintf(stderr, "%s: totals %llu/%llu, model %llu/%llu\n", t->key,
                    (unsigned long long)t->total[0], (unsigned long long)t->total[1],
                    (unsigned long long)t->model_total[0], (unsigned long long)t->model_total[1]);
        for (int reg = ENTRIES; reg <= EXITS; reg++) {
            total[reg] += t->total[reg];
            for (size_t k = 0; k < N_KINDS; k++) {
                count[reg][k] += n[reg][k];
                model_count[reg][k] += mn[reg][k];
            }
        }
    }

    if (getenv("TS_MTA_VERBOSE"))
        list_anomalies();
    printf("MTA replay: %zu turnstiles, %zu readings, entries %llu, exits %llu; anomalies (entries+exits):",
           mta.n_ts, mta.n_rows, (unsigned long long)total[ENTRIES], (unsigned long long)total[EXITS]);
    for (size_t k = 0; k < N_KINDS; k++)
        printf(" %s %llu+%llu", kinds[k].name, (unsigned long long)count[ENTRIES][k],
               (unsigned long long)count[EXITS][k]);
    size_t n_down[2] = {0}, n_open[2] = {0}, ts_down = 0;
    for (size_t i = 0; i < mta.n_ts; i++) {
        for (int reg = ENTRIES; reg <= EXITS; reg++) {
            n_down[reg] += mta.ts[i].dir[reg] == TS_DIR_DOWN;
            n_open[reg] += mta.ts[i].dir[reg] == TS_DIR_AUTO;
        }
        ts_down += mta.ts[i].dir[ENTRIES] == TS_DIR_DOWN || mta.ts[i].dir[EXITS] == TS_DIR_DOWN;
    }
    printf("; %llu on RECOVR AUD rows; counting down: %zu+%zu registers of %zu turnstiles, "
           "vote still open: %zu+%zu; %zu readings and %zu turnstiles differ from the model\n",
           (unsigned long long)on_recovered, n_down[ENTRIES], n_down[EXITS], ts_down, n_open[ENTRIES],
           n_open[EXITS], mismatches, ts_mismatches);

    /* a cruder estimate, blind to resets and rebases: per register, the
     * majority direction's plausible differences */
    uint64_t naive[2] = {0};
    for (size_t i = 0; i < mta.n_ts; i++) {
        for (int reg = ENTRIES; reg <= EXITS; reg++) {
            const struct row *r = &mta.rows[mta.ts[i].first], *end = r + mta.ts[i].n;
            int64_t ups = 0, downs = 0, sum = 0;

            for (const struct row *q = r + 1; q < end; q++) {
                ups += q->cum[reg] > q[-1].cum[reg];
                downs += q->cum[reg] < q[-1].cum[reg];
            }
            for (const struct row *q = r + 1; q < end; q++) {
                int64_t d = (ups >= downs ? 1 : -1) * (q->cum[reg] - q[-1].cum[reg]);
                sum += within(d, q->t_ms - q[-1].t_ms) ? d : 0;
            }
            naive[reg] += (uint64_t)sum;
        }
    }
    printf("crude estimate: entries %llu, exits %llu\n", (unsigned long long)naive[ENTRIES],
           (unsigned long long)naive[EXITS]);

    assert_int_equal(mismatches, 0);
    assert_int_equal(ts_mismatches, 0);
    for (int reg = ENTRIES; reg <= EXITS; reg++) /* within 0.05% */
        assert_true(total[reg] > naive[reg] - naive[reg] / 2000 && total[reg] < naive[reg] + naive[reg] / 2000);
    assert_memory_equal(count, model_count, sizeof count);
    assert_true(total[ENTRIES] > 0 && total[EXITS] > 0);
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Facts about the file, counted without any counter logic. */
static void test_file_facts(void **state)
{
    size_t pairs = 0, negative = 0, jumps = 0;
    int64_t max = 0;

    assert_int_equal(mta.n_ts, 5043);
    assert_int_equal(mta.n_rows, 253237);
    for (size_t i = 0; i < mta.n_ts; i++) {
        /* in time order */
        for (size_t j = mta.ts[i].first + 1; j < mta.ts[i].first + mta.ts[i].n; j++) {
            const struct row *a = &mta.rows[j - 1], *b = &mta.rows[j];
            int64_t d = b->cum[ENTRIES] - a->cum[ENTRIES];

            assert_true(b->t_ms > a->t_ms);
            pairs++;
            negative += d < 0;
            jumps += d > 20000 || d < -20000;
        }
        for (size_t j = mta.ts[i].first; j < mta.ts[i].first + mta.ts[i].n; j++)
            max = mta.rows[j].cum[ENTRIES] > max ? mta.rows[j].cum[ENTRIES] : max;
    }
    /* each turnstile in one block: no key twice */
    const char **keys = calloc(mta.n_ts, sizeof *keys);
    assert_non_null(keys);
    for (size_t i = 0; i < mta.n_ts; i++)
        keys[i] = mta.ts[i].key;
    qsort(keys, mta.n_ts, sizeof *keys, cmp_keys);
    for (size_t i = 1; i < mta.n_ts; i++)
        assert_string_not_equal(keys[i - 1], keys[i]);
    free(keys);
    assert_int_equal(pairs, 248194);
    assert_int_equal(negative, 1793);
    assert_int_equal(jumps, 17);
    assert_int_equal(max, 2147178400);
}

/* Readings whose interpretation is known by hand. */
static void test_known_cases(void **state)
{
    struct row *r;
    struct turnstile *t;

    replay();

    /* AVENUE U: reset 632457 -> 306 (entries) and 170244 -> 58 (exits), 12 h apart */
    r = find_row("B025/R150/00-00-01", "06/01/2023", "13:00:00");
    assert_int_equal(r[-1].cum[ENTRIES], 632457);
    assert_int_equal(r->flags[ENTRIES], TS_FLAG_RESET);
    assert_int_equal(r->delta[ENTRIES], 306);
    assert_int_equal(r->flags[EXITS], TS_FLAG_RESET);
    assert_int_equal(r->delta[EXITS], 58);
    r = find_row("B025/R150/00-00-02", "06/01/2023", "13:00:00");
    assert_int_equal(r->flags[ENTRIES], TS_FLAG_RESET);
    assert_int_equal(r->delta[ENTRIES], 152);

    /* 57 ST-7 AV: counts down, entries and exits */
    t = find_ts("A011/R080/01-03-00");
    assert_int_equal(t->dir[ENTRIES], TS_DIR_DOWN);
    assert_int_equal(t->dir[EXITS], TS_DIR_DOWN);
    assert_int_equal(t->total[ENTRIES],
                     (uint64_t)(mta.rows[t->first].cum[ENTRIES] - mta.rows[t->first + t->n - 1].cum[ENTRIES]));
    assert_true(mta.rows[t->first + t->n - 1].flags[ENTRIES] & TS_FLAG_DOWNWARD);
    /* an ordinary turnstile counts up */
    t = find_ts("A002/R051/02-00-00");
    assert_int_equal(t->dir[ENTRIES], TS_DIR_UP);
    assert_int_equal(t->total[ENTRIES],
                     (uint64_t)(mta.rows[t->first + t->n - 1].cum[ENTRIES] - mta.rows[t->first].cum[ENTRIES]));

    /* JAMAICA CENTER: 490001 -> 542824 (RECOVR AUD) -> 490015: withheld, nothing lost */
    r = find_row("N606/R025/00-05-00", "05/30/2023", "11:45:00");
    assert_true(r->recovered);
    assert_int_equal(r->cum[ENTRIES], 542824);
    assert_int_equal(r->delta[ENTRIES], 0);
    assert_int_equal(r->flags[ENTRIES], TS_FLAG_GLITCH);
    assert_int_equal(r[1].delta[ENTRIES], 490015 - 490001);
    assert_int_equal(r[1].flags[ENTRIES], 0);

    /* SUTPHIN-ARCHER: 542824 -> 327680 (RECOVR AUD) -> 327684 -> 327688: the
     * third reading confirms the new level, counting the 8 from 327680 */
    r = find_row("N605/R024/00-05-00", "05/30/2023", "09:15:00");
    assert_int_equal(r->cum[ENTRIES], 327680);
    assert_int_equal(r->flags[ENTRIES], TS_FLAG_GLITCH);
    assert_int_equal(r[1].cum[ENTRIES], 327684);
    assert_int_equal(r[1].flags[ENTRIES], TS_FLAG_GLITCH);
    assert_int_equal(r[1].delta[ENTRIES], 0);
    assert_int_equal(r[2].cum[ENTRIES], 327688);
    assert_int_equal(r[2].flags[ENTRIES], TS_FLAG_REBASED);
    assert_int_equal(r[2].delta[ENTRIES], 8);

    /* WALL ST: 6042111 -> 262702 8 h later; 262702 is no small value: a new
     * level, confirmed by the third reading of it */
    r = find_row("R110/R027/01-00-02", "05/27/2023", "20:00:00");
    assert_int_equal(r->flags[ENTRIES], TS_FLAG_GLITCH);
    assert_int_equal(r[1].flags[ENTRIES], TS_FLAG_GLITCH);
    assert_int_equal(r[2].flags[ENTRIES], TS_FLAG_REBASED);
    assert_int_equal(r[2].delta[ENTRIES], 0);
    assert_int_equal(r[2].flags[EXITS], TS_FLAG_REBASED); /* 2097153 -> ...54 -> ...55 */
    assert_int_equal(r[2].delta[EXITS], 2);

    /* SOUTH FERRY: 20478 -> 5 -> 526 are the last readings of the file: the
     * run is not confirmed, the 521 are never published */
    t = find_ts("R528/R097/00-00-04");
    r = &mta.rows[t->first + t->n - 1];
    assert_int_equal(r->cum[ENTRIES], 526);
    assert_int_equal(r[-1].flags[ENTRIES], TS_FLAG_GLITCH);
    assert_int_equal(r->flags[ENTRIES], TS_FLAG_GLITCH);
    assert_int_equal(r->flags[EXITS], TS_FLAG_GLITCH);

    /* a new level is only ever accepted from a held value, or after at least
     * REBASE_AFTER - 1 withheld readings in a row (more when a run restarted) */
    for (size_t i = 0; i < mta.n_ts; i++) {
        for (size_t j = mta.ts[i].first + 1; j < mta.ts[i].first + mta.ts[i].n; j++) {
            for (int reg = ENTRIES; reg <= EXITS; reg++) {
                const struct row *q = &mta.rows[j];
                size_t k = 0;

                if (!(q->flags[reg] & TS_FLAG_REBASED))
                    continue;
                while (k < j - mta.ts[i].first && (q[-1 - (ptrdiff_t)k].flags[reg] & TS_FLAG_GLITCH))
                    k++;
                if (k == 0)
                    assert_int_equal(q[-1].flags[reg], TS_FLAG_DOWNWARD);
                else
                    assert_true(k >= REBASE_AFTER - 1);
            }
        }
    }

    /* no reading publishes more than the rate allows since the turnstile's first one */
    for (size_t i = 0; i < mta.n_ts; i++)
        for (size_t j = mta.ts[i].first + 1; j < mta.ts[i].first + mta.ts[i].n; j++)
            for (int reg = ENTRIES; reg <= EXITS; reg++)
                assert_true(mta.rows[j].delta[reg] <=
                            (uint64_t)allowed(mta.rows[j].t_ms - mta.rows[mta.ts[i].first].t_ms));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_facts),
        cmocka_unit_test(test_replay_matches_model),
        cmocka_unit_test(test_known_cases),
    };

    return cmocka_run_group_tests(tests, load, unload);
}
