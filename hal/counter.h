/* SPDX-License-Identifier: Apache-2.0 */
/* counter.h - cumulative counter registers to people (deltas).
 *
 * Pure logic, no I/O: one ts_counter per counter register (a turnstile has
 * one for entries and one for exits). Feed it each raw register value with
 * the reading's time; it returns the number of people since the previous
 * reading and ORs TS_FLAG_* bits into *flags for every anomaly it saw.
 * Nothing is dropped silently: a withheld delta is flagged TS_FLAG_GLITCH.
 * The rules are written down in docs/counters.md. */
#ifndef TS_COUNTER_H
#define TS_COUNTER_H

#include <stdbool.h>
#include <stdint.h>

#include "flags.h"


enum ts_direction { TS_DIR_UP, TS_DIR_DOWN, TS_DIR_AUTO };

/* Defaults that ts_counter_init puts in place of zero fields. */
#define TS_COUNTER_DEFAULT_WIDTH 32
#define TS_COUNTER_DEFAULT_RATE 60.0     /* people per minute: one a second */
#define TS_COUNTER_DEFAULT_MIN_PLAUSIBLE 10
/* A withheld level becomes the baseline after this many readings in a row
 * (counting the first withheld one), each a plausible count from the one
 * before, spanning at least (this - 1) * TS_COUNTER_WINDOW_MS; the allowed
 * range is TS_COUNTER_REBASE_MIN..TS_COUNTER_REBASE_MAX. */
#define TS_COUNTER_DEFAULT_REBASE_AFTER 3
#define TS_COUNTER_REBASE_MIN 2
#define TS_COUNTER_REBASE_MAX 100
/* Below this interval the counter judges a reset, and the confirmation of a
 * new level, as if it polled this rarely, so that how often it is polled
 * does not change the people it counts (docs/counters.md, "Poll rate"). */
#define TS_COUNTER_WINDOW_MS 60000
/* Auto direction: a direction is decided when its votes lead by this many;
 * both tallies are halved when their sum passes TS_COUNTER_VOTE_CAP. */
#define TS_COUNTER_VOTE_LEAD 3
#define TS_COUNTER_VOTE_CAP 64

struct ts_counter_cfg {
    unsigned width;           /* 16, 32 or 64; 0 = 32 */
    enum ts_direction direction;
    double max_rate_per_min;  /* plausible people per minute; above: glitch; 0 = 60 */
    uint64_t min_plausible;   /* a move up to this is always plausible; 0 = 10 */
    unsigned rebase_after;    /* readings that confirm a new level (over rebase_after - 1
                                 windows), 2..100; 0 = 3 */
};

/* Internal state: call ts_counter_init, then only the functions below touch
 * it. Plain data: it can be saved and restored. */
struct ts_counter {
    struct ts_counter_cfg cfg;    /* with the defaults filled in */
    bool have_prev;
    uint64_t prev;                /* baseline: last accepted value (within width) */
    int64_t prev_time_ms;
    int64_t up_votes, down_votes; /* plausible moves seen each way (auto direction) */
    /* last held value: a plausible move down from the baseline while the
     * auto vote is open; a plausible move up from it rebases at once */
    bool have_held;
    uint64_t held;
    int64_t held_time_ms;
    /* glitch run: readings withheld in a row, each a plausible count from the
     * one before (run_len of them, 0 = none); its level becomes the baseline
     * at the cfg.rebase_after-th, counting run_people from run_first. At most
     * one of the held value and the run exists: the last reading's. */
    unsigned run_len;
    uint64_t run_first, run_last;
    int64_t run_first_time_ms, run_last_time_ms;
    uint64_t run_people;          /* counted from run_first to run_last */
    uint32_t run_flags;           /* wrap/signed flags of those counts */
    /* readings flagged with each anomaly, for status */
    uint64_t n_wrap, n_reset, n_glitch, n_signed, n_downward, n_rebased;
};

/* Initialises *c for cfg (copied; zero fields take the defaults above).
 * Returns TS_OK, or TS_EINVAL if the width is not 0/16/32/64, the direction
 * is unknown, the rate is negative or not finite, or rebase_after is not 0
 * or 2..100; *c is then initialised
 * with the defaults in place of the invalid fields, so it is still safe. */
int ts_counter_init(struct ts_counter *c, const struct ts_counter_cfg *cfg);

/* Accounts the raw value read at time_ms (UTC epoch ms). Returns the delta
 * (people, >= 0) and ORs anomaly flags into *flags. A value with bits above
 * the width is taken as sign-extended (TS_FLAG_SIGNED) when those bits are a
 * sign extension, and withheld as a glitch otherwise. */
uint64_t ts_counter_step(struct ts_counter *c, uint64_t raw, int64_t time_ms, uint32_t *flags);

/* L(dt): the people that can plausibly pass in dt_ms at max_rate_per_min, at
 * least min_plausible; a negative interval counts as 0 (docs/counters.md). */
uint64_t ts_counter_limit(double max_rate_per_min, uint64_t min_plausible, int64_t dt_ms);

/* The direction moves are counted in now: the configured one, or in auto
 * mode the decided one, or TS_DIR_AUTO while the vote is still open. */
enum ts_direction ts_counter_direction(const struct ts_counter *c);



#endif
