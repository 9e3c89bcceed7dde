#include "replay.h"

#include <stddef.h>

uint64_t ts_replay_between(uint64_t a, int64_t ta, uint64_t b, int64_t tb, int64_t t,
                           double max_rate_per_min)
{
    uint64_t d, num, den;

    if (t >= tb)
        return b;
    if (t <= ta || b < a)
        return a;
    if (max_rate_per_min <= 0)
        max_rate_per_min = TS_REPLAY_MAX_RATE_DEFAULT;
    d = b - a;
    den = (uint64_t)(tb - ta);
    if ((double)d > max_rate_per_min * ((double)den / 60000.0))
        return a; /* implausible: step at tb */
    num = (uint64_t)(t - ta);
    if (den <= UINT32_MAX) /* (d % den) * num < den * den fits */
        return a + (d / den) * num + (d % den) * num / den;
    return a + (uint64_t)((long double)d * (long double)num / (long double)den);
}

void ts_replay_at(const struct ts_mta_turnstile *ts, int64_t t_ms, const struct ts_replay_cfg *cfg,
                  uint64_t *entries, uint64_t *exits)
{
    const struct ts_mta_reading *r = ts->readings;
    double rate = cfg ? cfg->max_rate_per_min : 0;
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
    if (lo + 1 == ts->n_readings) {
        *entries = r[lo].entries;
        *exits = r[lo].exits;
        return;
    }
    *entries = ts_replay_between(r[lo].entries, r[lo].time_ms, r[lo + 1].entries,
                                 r[lo + 1].time_ms, t_ms, rate);
    *exits = ts_replay_between(r[lo].exits, r[lo].time_ms, r[lo + 1].exits, r[lo + 1].time_ms,
                               t_ms, rate);
}
