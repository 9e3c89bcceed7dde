/* SPDX-License-Identifier: Apache-2.0 */
/* gpio_debounce.h - one GPIO line's debouncer and pulse counter.
 *
 * Pure logic, no libgpiod, no I/O, no clock: gpio_source.c feeds it every
 * edge event the kernel reports for a line, with the kernel's time stamp,
 * and tests feed it made-up events. Plain data: zero-initialise or call
 * ts_debounce_init, then only the functions below touch it. Not locked:
 * one thread at a time.
 *
 * Semantics (docs/gpio.md has the reasoning):
 *  - Feed it BOTH edges of the line, always, whatever edge is counted: the
 *    debouncer tracks the line's level and needs both to do so.
 *  - active_low inverts the physical level: a physical falling edge is a
 *    logical rising edge. Everything below is about logical edges.
 *  - The debouncer keeps a debounced logical level. An edge is ACCEPTED
 *    when (a) it changes the debounced level and (b) at least debounce_us
 *    have passed since the previous accepted edge (an edge exactly
 *    debounce_us after it is accepted; the first edge is never locked out).
 *    Every other edge is IGNORED and counted in `ignored`: a bounce burst
 *    right after an accepted edge, or an edge that repeats the current
 *    level. So a burst of alternating edges shorter than debounce_us counts
 *    once, at its first edge (leading-edge debounce).
 *  - An accepted edge is COUNTED when it is of the configured kind: rising,
 *    falling, or both (then every accepted edge counts: one press and its
 *    release count 2 - "both" counts edges, not pulses).
 *  - Time: only differences between consecutive events matter; a repeated
 *    time stamp means no time passed. A time stamp earlier than the
 *    previous one is a clock step (the v1 kernel ABI stamped events with
 *    CLOCK_REALTIME before Linux 5.7): an unknown time passed, so the
 *    lock-out is released and the clock re-anchors on the new stamp;
 *    counted in clock_steps. At worst a step inside a bounce burst lets one
 *    bounce edge through; the level tracking then ignores the real edge
 *    that follows (it repeats the level), so totals stay right and only
 *    that edge's time is off. Nothing wraps or traps on any input.
 *  - debounce_us must exceed the longest bounce burst and be shorter than
 *    the shortest press and the shortest gap between presses. */
#ifndef TS_GPIO_DEBOUNCE_H
#define TS_GPIO_DEBOUNCE_H

#include <stdbool.h>
#include <stdint.h>

#include "hal.h"

struct ts_debounce_cfg {
    enum ts_gpio_edge edge;   /* which logical edges are counted */
    bool active_low;          /* logical level = !physical level */
    uint32_t debounce_us;     /* lock-out after an accepted edge; 0: none */
};

struct ts_debounce {
    struct ts_debounce_cfg cfg;
    int level;                /* debounced logical level: 0, 1, -1 unknown */
    bool have_prev;
    uint64_t prev_ns;         /* time stamp of the previous edge, as given */
    uint64_t quiet_ns;        /* time since the last accepted edge (saturates) */
    uint64_t count;           /* counted edges since init */
    uint64_t accepted;        /* accepted edges (counted or not) */
    uint64_t ignored;         /* bounced or repeated edges */
    uint64_t clock_steps;     /* time stamps earlier than the previous one */
};

/* Starts at physical level 0 or 1 (as read from the line), or -1 when not
 * known: then the first edge is accepted whatever its direction. Counts 0. */
void ts_debounce_init(struct ts_debounce *d, const struct ts_debounce_cfg *cfg,
                      int physical_level);

/* Feeds one physical edge (rising: the line went high) stamped time_ns
 * (monotonic clock). Returns 1 if it was counted, else 0. */
unsigned ts_debounce_edge(struct ts_debounce *d, bool rising, uint64_t time_ns);

#endif
