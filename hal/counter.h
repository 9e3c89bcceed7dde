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
/* Auto direction: a direction is decided when its votes lead by this many;
 * both tallies are halved when their sum passes TS_COUNTER_VOTE_CAP. */
#define TS_COUNTER_VOTE_LEAD 3
#define TS_COUNTER_VOTE_CAP 64

struct ts_counter_cfg {
    unsigned width;           /* 16, 32 or 64; 0 = 32 */
    enum ts_direction direction;
    double max_rate_per_min;  /* plausible people per minute; above: glitch; 0 = 60 */
    uint64_t min_plausible;   /* a move up to this is always plausible; 0 = 10 */
};

/* Internal state: call ts_counter_init, then only the functions below touch
 * it. Plain data: it can be saved and restored. */
struct ts_counter {
    struct ts_counter_cfg cfg;    /* with the defaults filled in */
    bool have_prev;
    uint64_t prev;                /* baseline: last accepted value (within width) */
    int64_t prev_time_ms;
    int64_t up_votes, down_votes; /* plausible moves seen each way (auto direction) */
    /* last withheld value (glitch or held downward move), accepted as the new
     * baseline when the next reading is a plausible step from it */
    bool have_pending;
    uint64_t pending;
    int64_t pending_time_ms;
    /* readings flagged with each anomaly, for status */
    uint64_t n_wrap, n_reset, n_glitch, n_signed, n_downward, n_rebased;
};

/* Initialises *c for cfg (copied; zero fields take the defaults above).
 * Returns TS_OK, or TS_EINVAL if the width is not 0/16/32/64, the direction
 * is unknown or the rate is negative or not finite; *c is then initialised
 * with the defaults in place of the invalid fields, so it is still safe. */
int ts_counter_init(struct ts_counter *c, const struct ts_counter_cfg *cfg);

/* Accounts the raw value read at time_ms (UTC epoch ms). Returns the delta
 * (people, >= 0) and ORs anomaly flags into *flags. A value with bits above
 * the width is taken as sign-extended (TS_FLAG_SIGNED) when those bits are a
 * sign extension, and withheld as a glitch otherwise. */
uint64_t ts_counter_step(struct ts_counter *c, uint64_t raw, int64_t time_ms, uint32_t *flags);

/* The direction moves are counted in now: the configured one, or in auto
 * mode the decided one, or TS_DIR_AUTO while the vote is still open. */
enum ts_direction ts_counter_direction(const struct ts_counter *c);



#endif
