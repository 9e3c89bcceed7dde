/* SPDX-License-Identifier: Apache-2.0 */
/* counter.c - cumulative counter registers to people; rules in docs/counters.md. */
#include "counter.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define INT31_MASK UINT64_C(0x7FFFFFFF)

static uint64_t width_mask(unsigned width)
{
    return width >= 64 ? UINT64_MAX : (UINT64_C(1) << width) - 1;
}

/* People that can plausibly pass in dt_ms: the rate over the interval, at
 * least min_plausible. A negative interval (clock stepped back) counts as 0. */
uint64_t ts_counter_limit(double max_rate_per_min, uint64_t min_plausible, int64_t dt_ms)
{
    double n = dt_ms > 0 ? max_rate_per_min * (double)dt_ms / 60000.0 : 0.0;

    if (!(n < 1.8e19)) /* beyond uint64_t */
        return UINT64_MAX;
    return (uint64_t)n > min_plausible ? (uint64_t)n : min_plausible;
}

static uint64_t plausible(const struct ts_counter *c, int64_t dt_ms)
{
    return ts_counter_limit(c->cfg.max_rate_per_min, c->cfg.min_plausible, dt_ms);
}

enum ts_direction ts_counter_direction(const struct ts_counter *c)
{
    if (c->cfg.direction != TS_DIR_AUTO)
        return c->cfg.direction;
    if (c->up_votes >= c->down_votes + TS_COUNTER_VOTE_LEAD)
        return TS_DIR_UP;
    if (c->down_votes >= c->up_votes + TS_COUNTER_VOTE_LEAD)
        return TS_DIR_DOWN;
    return TS_DIR_AUTO;
}

/* Votes on the move from the last reading (accepted, held or in the glitch
 * run: whichever exists is the last one) to raw:
 * a plausible move up or down adds a vote that way; no move or an
 * implausible one adds none. */
static void vote(struct ts_counter *c, uint64_t raw, int64_t time_ms)
{
    uint64_t last = c->have_held ? c->held : c->run_len ? c->run_last : c->prev;
    int64_t last_ms = c->have_held ? c->held_time_ms : c->run_len ? c->run_last_time_ms : c->prev_time_ms;
    uint64_t m = width_mask(c->cfg.width), lim = plausible(c, time_ms - last_ms);
    uint64_t up = (raw - last) & m, down = (last - raw) & m;

    if (raw == last)
        return;
    c->up_votes += up <= down && up <= lim;
    c->down_votes += down < up && down <= lim;
    if (c->up_votes + c->down_votes > TS_COUNTER_VOTE_CAP) {
        c->up_votes /= 2;
        c->down_votes /= 2;
    }
}

/* People counted from `from` to `to`, if plausible in the interval and
 * direction: modulo the width (TS_FLAG_WRAP when it crosses it), or else
 * modulo 2^31 for a signed 32-bit counter that wraps to 0 (TS_FLAG_WRAP|SIGNED). */
struct count {
    bool ok;
    uint64_t people;
    uint32_t flags;
};

static struct count count_from(const struct ts_counter *c, uint64_t from, int64_t from_ms,
                               uint64_t to, int64_t to_ms, bool down)
{
    uint64_t m = width_mask(c->cfg.width), lim = plausible(c, to_ms - from_ms);
    uint64_t diff = down ? from - to : to - from;

    if ((diff & m) <= lim)
        return (struct count){true, diff & m, (down ? to > from : to < from) ? TS_FLAG_WRAP : 0};
    if (c->cfg.width >= 32 && from <= INT31_MASK && to <= INT31_MASK && (diff & INT31_MASK) <= lim)
        return (struct count){true, diff & INT31_MASK, TS_FLAG_WRAP | TS_FLAG_SIGNED};
    return (struct count){false, 0, 0};
}

static void set_baseline(struct ts_counter *c, uint64_t raw, int64_t t)
{
    c->have_prev = true;
    c->prev = raw;
    c->prev_time_ms = t;
    c->have_held = false;
    c->run_len = 0;
}

static void set_held(struct ts_counter *c, uint64_t raw, int64_t t)
{
    c->have_held = true;
    c->held = raw;
    c->held_time_ms = t;
    c->run_len = 0;
}

/* raw goes on the glitch run: it starts a new one (step not ok) or extends
 * the current one by the count step. */
static void run_push(struct ts_counter *c, uint64_t raw, int64_t t, struct count step)
{
    if (!step.ok) {
        c->run_len = 0;
        c->run_first = raw;
        c->run_first_time_ms = t;
        c->run_people = 0;
        c->run_flags = 0;
    }
    c->have_held = false;
    c->run_len++;
    c->run_last = raw;
    c->run_last_time_ms = t;
    c->run_people = step.people > UINT64_MAX - c->run_people ? UINT64_MAX : c->run_people + step.people;
    c->run_flags |= step.flags;
}

/* Interprets raw (within the width) against the baseline, the held value and
 * the glitch run, and updates them. Returns the flags and sets *delta. */
static uint32_t interpret(struct ts_counter *c, uint64_t raw, int64_t t, uint64_t *delta)
{
    vote(c, raw, t);
    enum ts_direction dir = ts_counter_direction(c);
    bool down = dir == TS_DIR_DOWN;
    uint32_t down_flag = down ? TS_FLAG_DOWNWARD : 0;
    uint64_t lim = plausible(c, t - c->prev_time_ms);
    /* the people since a reset are judged over at least the window */
    uint64_t since_reset = plausible(c, t - c->prev_time_ms > TS_COUNTER_WINDOW_MS
                                            ? t - c->prev_time_ms : TS_COUNTER_WINDOW_MS);
    struct count b = count_from(c, c->prev, c->prev_time_ms, raw, t, down), none = {false, 0, 0};
    struct count h = none, r = none;

    if (c->have_held)
        h = count_from(c, c->held, c->held_time_ms, raw, t, down);
    if (c->run_len) {
        r = count_from(c, c->run_last, c->run_last_time_ms, raw, t, down);
        /* a count from the baseline must not pass through the withheld jump */
        if (b.ok && r.ok && r.people < b.people &&
            !count_from(c, c->prev, c->prev_time_ms, c->run_first, c->run_first_time_ms, down).ok)
            b.ok = false;
    }
    *delta = 0;
    if (b.ok) { /* an ordinary count; ends any glitch run */
        set_baseline(c, raw, t);
        *delta = b.people;
        return b.flags | down_flag;
    }
    if (r.ok) { /* the glitch run goes on: a new level once confirmed */
        run_push(c, raw, t, r);
        if (c->run_len < c->cfg.rebase_after ||
            t - c->run_first_time_ms < (int64_t)(c->cfg.rebase_after - 1) * TS_COUNTER_WINDOW_MS)
            return TS_FLAG_GLITCH; /* confirmed by rebase_after readings, a window apart at least */
        uint32_t f = c->run_flags | down_flag | TS_FLAG_REBASED;
        *delta = c->run_people; /* from the first withheld value: nobody lost */
        set_baseline(c, raw, t);
        return f;
    }
    /* while the vote is open, a count down from the baseline is held, unless
     * the reading moved up from the held value */
    if (dir == TS_DIR_AUTO && count_from(c, c->prev, c->prev_time_ms, raw, t, true).ok &&
        !(h.ok && raw != c->held)) {
        set_held(c, raw, t);
        return TS_FLAG_DOWNWARD;
    }
    if (h.ok) { /* counting on from the held level: it becomes the baseline */
        set_baseline(c, raw, t);
        *delta = h.people;
        return h.flags | down_flag | TS_FLAG_REBASED;
    }
    if (!down && raw <= since_reset && ((c->prev - raw) & width_mask(c->cfg.width)) > lim) {
        set_baseline(c, raw, t);
        *delta = raw; /* reset to 0, then counted up to raw */
        return TS_FLAG_RESET;
    }
    run_push(c, raw, t, none); /* a new glitch run starts here */
    return TS_FLAG_GLITCH;
}

static void count_flags(struct ts_counter *c, uint32_t f)
{
    c->n_wrap += (f & TS_FLAG_WRAP) != 0;
    c->n_reset += (f & TS_FLAG_RESET) != 0;
    c->n_glitch += (f & TS_FLAG_GLITCH) != 0;
    c->n_signed += (f & TS_FLAG_SIGNED) != 0;
    c->n_downward += (f & TS_FLAG_DOWNWARD) != 0;
    c->n_rebased += (f & TS_FLAG_REBASED) != 0;
}

/* Bits above the width: a sign extension is cut off (TS_FLAG_SIGNED); any
 * other value does not fit the register. */
static bool fit_width(const struct ts_counter *c, uint64_t *raw, uint32_t *f)
{
    uint64_t m = width_mask(c->cfg.width);

    if (*raw <= m)
        return true;
    if ((*raw | m) != UINT64_MAX || c->cfg.width == 0 || !((*raw >> (c->cfg.width - 1)) & 1))
        return false;
    *raw &= m;
    *f |= TS_FLAG_SIGNED;
    return true;
}

uint64_t ts_counter_step(struct ts_counter *c, uint64_t raw, int64_t time_ms, uint32_t *flags)
{
    uint32_t f = 0;
    uint64_t delta = 0;

    if (!fit_width(c, &raw, &f)) {
        f = TS_FLAG_GLITCH; /* not a value of this register: state untouched */
    } else if (!c->have_prev) {
        f |= TS_FLAG_FIRST;
        set_baseline(c, raw, time_ms);
    } else {
        f |= interpret(c, raw, time_ms, &delta);
    }
    count_flags(c, f);
    *flags |= f;
    return delta;
}

int ts_counter_init(struct ts_counter *c, const struct ts_counter_cfg *cfg)
{
    int err = TS_OK;

    memset(c, 0, sizeof *c);
    c->cfg = *cfg;
    if (c->cfg.width == 0)
        c->cfg.width = TS_COUNTER_DEFAULT_WIDTH;
    if (c->cfg.max_rate_per_min == 0)
        c->cfg.max_rate_per_min = TS_COUNTER_DEFAULT_RATE;
    if (c->cfg.min_plausible == 0)
        c->cfg.min_plausible = TS_COUNTER_DEFAULT_MIN_PLAUSIBLE;
    if (c->cfg.rebase_after == 0)
        c->cfg.rebase_after = TS_COUNTER_DEFAULT_REBASE_AFTER;
    if (c->cfg.rebase_after < TS_COUNTER_REBASE_MIN || c->cfg.rebase_after > TS_COUNTER_REBASE_MAX) {
        c->cfg.rebase_after = TS_COUNTER_DEFAULT_REBASE_AFTER;
        err = TS_EINVAL;
    }
    if (c->cfg.width != 16 && c->cfg.width != 32 && c->cfg.width != 64) {
        c->cfg.width = TS_COUNTER_DEFAULT_WIDTH;
        err = TS_EINVAL;
    }
    if (c->cfg.direction != TS_DIR_UP && c->cfg.direction != TS_DIR_DOWN &&
        c->cfg.direction != TS_DIR_AUTO) {
        c->cfg.direction = TS_DIR_UP;
        err = TS_EINVAL;
    }
    if (!isfinite(c->cfg.max_rate_per_min) || c->cfg.max_rate_per_min < 0) {
        c->cfg.max_rate_per_min = TS_COUNTER_DEFAULT_RATE;
        err = TS_EINVAL;
    }
    return err;
}

