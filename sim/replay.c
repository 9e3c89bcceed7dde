/* replay.c - what a gate's counters show at a given time; rule in docs/simulator.md. */
#include "replay.h"

#include <stddef.h>

static uint64_t reg_value(const struct ts_mta_reading *r, int reg)
{
    return reg == TS_REPLAY_EXITS ? r->exits : r->entries;
}

/* +1 or -1: down when more successive readings fall than rise. */
static signed char count_direction(const struct ts_mta_turnstile *ts, int reg)
{
    size_t up = 0, down = 0;

    for (size_t k = 1; k < ts->n_readings; k++) {
        uint64_t a = reg_value(&ts->readings[k - 1], reg), b = reg_value(&ts->readings[k], reg);
        up += b > a;
        down += b < a;
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

static uint64_t distance(uint64_t a, uint64_t b)
{
    return a > b ? a - b : b - a;
}

/* A move from x (at tx) to y (at ty >= tx) is ordinary when it goes the
 * register's way (or nowhere) and is plausible in the time it took. */
static bool ordinary(uint64_t x, int64_t tx, uint64_t y, int64_t ty, signed char dir, double rate)
{
    if (x == y)
        return true;
    if ((dir > 0) != (y > x) || ty <= tx)
        return false;
    return (double)distance(x, y) <= rate * ((double)(ty - tx) / 60000.0);
}

bool ts_replay_linear(const struct ts_mta_turnstile *ts, size_t k, int reg,
                      const struct ts_replay_cfg *cfg)
{
    double rate = cfg && cfg->max_rate_per_min > 0 ? cfg->max_rate_per_min : TS_REPLAY_MAX_RATE_DEFAULT;
    const struct ts_mta_reading *r = ts->readings;
    signed char dir = direction(ts, reg);
    uint64_t a, b, c;

    if (k + 1 >= ts->n_readings)
        return false;
    a = reg_value(&r[k], reg);
    b = reg_value(&r[k + 1], reg);
    if (a == b || !ordinary(a, r[k].time_ms, b, r[k + 1].time_ms, dir, rate))
        return false;
    if (k + 2 >= ts->n_readings)
        return true;
    /* b is an excursion when the file leaves it at once for a level nearer to a */
    c = reg_value(&r[k + 2], reg);
    return ordinary(b, r[k + 1].time_ms, c, r[k + 2].time_ms, dir, rate) ||
           !ordinary(a, r[k].time_ms, c, r[k + 2].time_ms, dir, rate) ||
           distance(c, a) >= distance(c, b);
}

uint64_t ts_replay_between(uint64_t a, int64_t ta, uint64_t b, int64_t tb, int64_t t, bool linear)
{
    uint64_t d, num, den, moved;

    if (t >= tb)
        return b;
    if (t <= ta || !linear)
        return a;
    d = distance(a, b);
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
    if (t_ms <= r[0].time_ms) {
        *entries = r[0].entries;
        *exits = r[0].exits;
        return;
    }
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
    *entries = ts_replay_between(r[lo].entries, r[lo].time_ms, r[lo + 1].entries, r[lo + 1].time_ms,
                                 t_ms, ts_replay_linear(ts, lo, TS_REPLAY_ENTRIES, cfg));
    *exits = ts_replay_between(r[lo].exits, r[lo].time_ms, r[lo + 1].exits, r[lo + 1].time_ms, t_ms,
                               ts_replay_linear(ts, lo, TS_REPLAY_EXITS, cfg));
}
