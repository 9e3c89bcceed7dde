/* counter.h - cumulative counter registers to people (deltas).
 *
 * Pure logic, no I/O: one ts_counter per counter register (a turnstile has
 * one for entries and one for exits). Feed it each raw register value with
 * the reading's time; it returns the number of people since the previous
 * reading and ORs TS_FLAG_* bits into *flags for every anomaly it saw.
 * Nothing is dropped silently: a withheld delta is flagged TS_FLAG_GLITCH. */
#ifndef TS_COUNTER_H
#define TS_COUNTER_H

#include <stdbool.h>
#include <stdint.h>

/* Anomaly flags carried on a reading (bit values are part of the wire form). */
enum ts_flag {
    TS_FLAG_FIRST     = 1u << 0, /* first reading: baseline only, delta 0 */
    TS_FLAG_WRAP      = 1u << 1, /* counter wrapped at its register width */
    TS_FLAG_RESET     = 1u << 2, /* counter reset to a small value */
    TS_FLAG_DOWNWARD  = 1u << 3, /* counter counts downward */
    TS_FLAG_GLITCH    = 1u << 4, /* implausible jump: delta withheld (0) */
    TS_FLAG_SIGNED    = 1u << 5, /* value fixed for wrong signedness */
    TS_FLAG_RECOVERED = 1u << 6, /* reading after a gap in polling (RECOVR AUD) */
    TS_FLAG_MERGED    = 1u << 7, /* several readings merged (store full) */
    TS_FLAG_REBASED   = 1u << 8, /* a new level was accepted as baseline */
};

enum ts_direction { TS_DIR_UP, TS_DIR_DOWN, TS_DIR_AUTO };

struct ts_counter_cfg {
    unsigned width;           /* 16, 32 or 64 */
    enum ts_direction direction;
    double max_rate_per_min;  /* plausible people per minute; above: glitch */
    uint64_t min_plausible;   /* a jump up to this is always plausible (default 0) */
};

/* Internal state; zero-initialise (or call ts_counter_init), then only the
 * functions below touch it. Plain data: it can be saved and restored. */
struct ts_counter {
    struct ts_counter_cfg cfg;
    bool have_prev;
    uint64_t prev;            /* last accepted raw value (masked to width) */
    int64_t prev_time_ms;
    int64_t up_votes, down_votes; /* auto direction */
    /* glitch tracking: a suspected new level, accepted when seen again */
    bool have_pending;
    uint64_t pending;
    /* counts of anomalies seen, for status */
    uint64_t n_wrap, n_reset, n_glitch, n_signed, n_downward;
};

void ts_counter_init(struct ts_counter *c, const struct ts_counter_cfg *cfg);

/* Accounts the raw value read at time_ms (UTC epoch ms). Returns the delta
 * (people, >= 0) and ORs anomaly flags into *flags. */
uint64_t ts_counter_step(struct ts_counter *c, uint64_t raw, int64_t time_ms, uint32_t *flags);

/* Writes a comma-free flag list ("wrap|reset") into buf; "" for none. */
void ts_flags_format(uint32_t flags, char *buf, unsigned size);

#endif
