/* SPDX-License-Identifier: Apache-2.0 */
/* replay.c - what a gate's counters show at a given time; rule in docs/simulator.md. */
#include "replay.h"

#include <stddef.h>

static uint64_t reg_value(const struct ts_mta_reading *r, int reg)
{
    return reg == TS_REPLAY_EXITS ? r->exits : r->entries;
}

/* The last row at the time of row i (rows are sorted by time): at a time
 * with several rows the file's value is its last one. */
static size_t last_at(const struct ts_mta_turnstile *ts, size_t i)
{
    size_t lo = i, hi = ts->n_readings; /* r[lo] has the time, r[hi] does not */
    int64_t t = ts->readings[i].time_ms;

    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (ts->readings[mid].time_ms == t)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* +1 or -1: down when more of the successive values (one per time) fall
 * than rise. */
static signed char count_direction(const struct ts_mta_turnstile *ts, int reg)
{
    size_t up = 0, down = 0, prev = 0;

    for (size_t k = 1; k < ts->n_readings; k++) {
        if (k + 1 < ts->n_readings && ts->readings[k + 1].time_ms == ts->readings[k].time_ms)
            continue; /* not the last row at its time */
        if (ts->readings[k].time_ms == ts->readings[prev].time_ms) {
            prev = k; /* the first time's rows */
            continue;
        }
        uint64_t a = reg_value(&ts->readings[prev], reg), b = reg_value(&ts->readings[k], reg);
        up += b > a;
        down += b < a;
        prev = k;
    }
    return down > up ? -1 : 1;
}

void ts_replay_prepare_turnstile(struct ts_mta_turnstile *ts)
{
    ts->replay_dir[TS_REPLAY_ENTRIES] = count_direction(ts, TS_REPLAY_ENTRIES);
    ts->replay_dir[TS_REPLAY_EXITS] = count_direction(ts, TS_REPLAY_EXITS);
}

void ts_replay_prepare(struct ts_mta_data *d)
{
    for (size_t i = 0; i < d->n_turnstiles; i++)
        ts_replay_prepare_turnstile(&d->turnstiles[i]);
}

static signed char direction(const struct ts_mta_turnstile *ts, int reg)
{
    return ts->replay_dir[reg] ? ts->replay_dir[reg] : count_direction(ts, reg);
}

/* Whether the move from a (at ta) to b (at tb > ta) is linear: the
 * register's way (or nowhere) and plausible in the time it took. */
static bool ordinary(uint64_t a, int64_t ta, uint64_t b, int64_t tb, signed char dir, double rate)
{
    if (a == b)
        return true;
    if ((dir > 0) != (b > a))
        return false;
    return (double)(a > b ? a - b : b - a) <= rate * ((double)(tb - ta) / 60000.0);
}

bool ts_replay_linear(const struct ts_mta_turnstile *ts, size_t k, int reg,
                      const struct ts_replay_cfg *cfg)
{
    double rate = cfg && cfg->max_rate_per_min > 0 ? cfg->max_rate_per_min : TS_REPLAY_MAX_RATE_DEFAULT;
    const struct ts_mta_reading *r = ts->readings;
    size_t a, b;

    if (k >= ts->n_readings)
        return false;
    a = last_at(ts, k);
    if (a + 1 >= ts->n_readings)
        return false;
    b = last_at(ts, a + 1);
    return ordinary(reg_value(&r[a], reg), r[a].time_ms, reg_value(&r[b], reg), r[b].time_ms,
                    direction(ts, reg), rate);
}

uint64_t ts_replay_between(uint64_t a, int64_t ta, uint64_t b, int64_t tb, int64_t t, bool linear)
{
    uint64_t d, num, den, moved;

    if (t >= tb)
        return b;
    if (t <= ta || !linear)
        return a;
    d = a > b ? a - b : b - a;
    num = (uint64_t)(t - ta);
    den = (uint64_t)(tb - ta);
    if (den <= UINT32_MAX) /* (d % den) * num < den * den fits */
        moved = (d / den) * num + (d % den) * num / den;
    else
        moved = (uint64_t)((long double)d * (long double)num / (long double)den);
    return b >= a ? a + moved : a - moved;
}

void ts_replay_at(const struct ts_mta_turnstile *ts, int64_t t_ms, const struct ts_replay_cfg *cfg,
                  uint64_t *entries, uint64_t *exits)
{
    const struct ts_mta_reading *r = ts->readings;
    size_t lo = 0, hi = ts->n_readings;

    if (ts->n_readings == 0) {
        *entries = *exits = 0;
        return;
    }
    if (t_ms < r[0].time_ms)
        t_ms = r[0].time_ms; /* before the first reading: the value at its time */
    /* last reading at or before t_ms: r[lo] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (r[mid].time_ms <= t_ms)
            lo = mid;
        else
            hi = mid;
    }
    if (lo + 1 == ts->n_readings || r[lo].time_ms == t_ms) {
        *entries = r[lo].entries;
        *exits = r[lo].exits;
        return;
    }
    hi = last_at(ts, lo + 1); /* the value at the next time */
    *entries = ts_replay_between(r[lo].entries, r[lo].time_ms, r[hi].entries, r[hi].time_ms, t_ms,
                                 ts_replay_linear(ts, lo, TS_REPLAY_ENTRIES, cfg));
    *exits = ts_replay_between(r[lo].exits, r[lo].time_ms, r[hi].exits, r[hi].time_ms, t_ms,
                               ts_replay_linear(ts, lo, TS_REPLAY_EXITS, cfg));
}
