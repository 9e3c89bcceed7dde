/* replay.h - what a gate's counters show at a given time, from MTA readings.
 *
 * Pure, no I/O. Each register has a direction in the file (down when more of
 * its successive readings fall than rise). Between two successive readings a
 * counter moves linearly, up or down alike, when the move is ordinary: in
 * that direction and plausible (at most max_rate_per_min people a minute),
 * and the later reading is not an excursion that the file leaves again at
 * once. Otherwise (a reset, a move against the direction, an implausible
 * jump, an excursion to another level and back) it keeps the earlier value
 * and steps to the later one at the later reading's time: the replay steps
 * where the file steps. Before the first reading a counter shows the first
 * value, after the last the last value. The rule is in docs/simulator.md. */
#ifndef TS_REPLAY_H
#define TS_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include "mta_file.h"

#define TS_REPLAY_MAX_RATE_DEFAULT 60.0 /* people per minute through one turnstile */

struct ts_replay_cfg {
    double max_rate_per_min;  /* <= 0: TS_REPLAY_MAX_RATE_DEFAULT */
};

enum { TS_REPLAY_ENTRIES, TS_REPLAY_EXITS };

/* Fills replay_dir of every turnstile of d (one pass over the readings).
 * ts_replay_at works without it, but then counts the directions at every
 * call (O(readings)); call it once after loading. */
void ts_replay_prepare(struct ts_mta_data *d);
void ts_replay_prepare_turnstile(struct ts_mta_turnstile *ts);

/* Whether register reg (TS_REPLAY_ENTRIES or _EXITS) moves linearly from
 * reading k to reading k + 1 (k + 1 < n_readings, later in time); false: it
 * steps at reading k + 1. cfg may be NULL. Exposed for tests. */
bool ts_replay_linear(const struct ts_mta_turnstile *ts, size_t k, int reg,
                      const struct ts_replay_cfg *cfg);

/* The value of one counter between readings a (at ta) and b (at tb > ta), at
 * ta <= t <= tb: linear from a to b (rounded toward a) when `linear`, else a
 * until tb. Exposed for tests. */
uint64_t ts_replay_between(uint64_t a, int64_t ta, uint64_t b, int64_t tb, int64_t t, bool linear);

/* The cumulative counters of t at time t_ms (UTC epoch ms). cfg may be NULL
 * (defaults). A turnstile without readings shows 0. */
void ts_replay_at(const struct ts_mta_turnstile *ts, int64_t t_ms, const struct ts_replay_cfg *cfg,
                  uint64_t *entries, uint64_t *exits);

#endif
