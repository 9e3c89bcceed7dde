/* replay.h - what a gate's counters show at a given time, from MTA readings.
 *
 * Pure, no I/O. Between two successive readings a counter rises linearly
 * when the later value is >= the earlier one and the rise is plausible (at
 * most max_rate_per_min people per minute); otherwise (a reset, a counter
 * counting down, a glitch, an implausible jump) it keeps the earlier value
 * and steps to the later one at the later reading's time, so the anomalies of
 * the real data reach the client as they are in the data. Before the first
 * reading a counter shows the first value, after the last the last value.
 * Entries and exits are judged separately. */
#ifndef TS_REPLAY_H
#define TS_REPLAY_H

#include <stdint.h>

#include "mta_file.h"

#define TS_REPLAY_MAX_RATE_DEFAULT 60.0 /* people per minute through one turnstile */

struct ts_replay_cfg {
    double max_rate_per_min;  /* <= 0: TS_REPLAY_MAX_RATE_DEFAULT */
};

/* The value of one counter between readings a (at ta) and b (at tb > ta), at
 * ta <= t <= tb. Exposed for tests. */
uint64_t ts_replay_between(uint64_t a, int64_t ta, uint64_t b, int64_t tb, int64_t t,
                           double max_rate_per_min);

/* The cumulative counters of t at time t_ms (UTC epoch ms). cfg may be NULL
 * (defaults). A turnstile without readings shows 0. */
void ts_replay_at(const struct ts_mta_turnstile *ts, int64_t t_ms, const struct ts_replay_cfg *cfg,
                  uint64_t *entries, uint64_t *exits);

#endif
