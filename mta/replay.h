/* SPDX-License-Identifier: Apache-2.0 */
/* replay.h - what a gate's counters show at a given time, from MTA readings.
 *
 * Pure, no I/O. The file's value at a time is its last row at that time.
 * Each register has a direction in the file (down when more of its
 * successive values fall than rise). Between the values at two successive
 * times a counter moves linearly, up or down alike, when the move goes that
 * way and is plausible (at most max_rate_per_min people a minute); otherwise
 * (a reset, a move against the direction, an implausible jump, an excursion
 * to another level) it keeps the earlier value and steps to the later one at
 * the later time: the replay steps where the file steps. Before the first
 * time a counter shows the value at that time, after the last the last
 * value. The rule is in docs/simulator.md. */
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
 * the value at the time of reading k to the value at the next time; false:
 * it steps at the next time, or there is none. cfg may be NULL. Exposed
 * for tests. */
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
