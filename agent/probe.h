/* SPDX-License-Identifier: Apache-2.0 */
/* probe.h - commissioning: which register map gives a turnstile plausible counters.
 *
 * `turnstile-agent --probe -c FILE` reads every configured device a few times
 * and, for each Modbus turnstile, decodes the raw registers in every width the
 * register map leaves room for and every word order (hal/decode.h), judges
 * each interpretation, and names the plausible one. Rules, output and exit
 * status: docs/commissioning.md.
 *
 * ts_probe_judge and ts_probe_decide are pure (no I/O, unit-tested);
 * ts_probe_run does the I/O through hal.h and prints the report. */
#ifndef TS_PROBE_H
#define TS_PROBE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "agent_config.h"
#include "hal.h"

#define TS_PROBE_SAMPLES_MIN 2
#define TS_PROBE_SAMPLES_MAX 1000
#define TS_PROBE_SAMPLES_DEFAULT 5
#define TS_PROBE_INTERVAL_MIN_MS 10
#define TS_PROBE_INTERVAL_MAX_MS 60000
#define TS_PROBE_INTERVAL_DEFAULT_MS 1000
/* A counter value at or above this is absurd: at one person a second a gate
 * takes about 35,000 years to count 2^40. */
#define TS_PROBE_ABSURD (UINT64_C(1) << 40)
#define TS_PROBE_INTERP_MAX 12 /* 3 widths x 4 orders */

/* Exit status of --probe (documented in --help and docs/commissioning.md).
 * When several apply, the first of WRONG, UNREADABLE, IMPLAUSIBLE. */
enum ts_probe_exit {
    TS_PROBE_EXIT_OK = 0,          /* every configured map plausible or undecided */
    TS_PROBE_EXIT_WRONG = 3,       /* a configured map implausible, another plausible */
    TS_PROBE_EXIT_UNREADABLE = 4,  /* a device could not be read at every sample */
    TS_PROBE_EXIT_IMPLAUSIBLE = 5, /* a configured map implausible, no other one either */
};

/* How one counter must behave: every step from one sample to the next, taken
 * modulo 2^width, goes the direction's way (auto: all one way) by at most
 * L(dt) = max(max_rate_per_min x dt, TS_COUNTER_DEFAULT_MIN_PLAUSIBLE), the
 * same bound as hal/counter.c's, and no value reaches TS_PROBE_ABSURD. */
struct ts_probe_rule {
    unsigned width;
    enum ts_direction direction;
    double max_rate_per_min;
};

enum ts_probe_verdict {
    TS_PROBE_IMPLAUSIBLE,
    TS_PROBE_STILL,  /* plausible, but the value never changed */
    TS_PROBE_MOVING, /* plausible and counted */
};

/* Judges the values v[0..n) read at t_ms[0..n) (monotonic ms, not
 * decreasing). On TS_PROBE_IMPLAUSIBLE, why (if not NULL) gets the first
 * offence: "+327680 in 1.000 s at sample 2 (plausible: up to 10)". */
enum ts_probe_verdict ts_probe_judge(const struct ts_probe_rule *rule, const uint64_t *v,
                                     const int64_t *t_ms, size_t n, char *why, size_t why_size);

/* One read of a Modbus turnstile: the raw registers of each counter, as many
 * as were read (see ts_probe_decide's regs), in address order. */
struct ts_probe_sample {
    int64_t t_ms;
    uint16_t entries[4], exits[4];
};

struct ts_probe_interp {
    unsigned width;
    enum ts_word_order order;
    bool configured;
    bool plausible;               /* among the interpretations the probe names */
    enum ts_probe_verdict verdict; /* worse of entries and exits; moving if either moved */
    uint64_t entries_first, entries_last, exits_first, exits_last;
    char why[160];                /* on implausible: "entries: ..." */
};

enum ts_probe_outcome {
    TS_PROBE_RIGHT,     /* the configured one is plausible, and every plausible one agrees */
    TS_PROBE_UNDECIDED, /* the configured one is plausible (or still), others disagree */
    TS_PROBE_WRONG,     /* the configured one is not plausible; others are */
    TS_PROBE_NONE,      /* no interpretation is plausible */
};

struct ts_probe_decision {
    struct ts_probe_interp interp[TS_PROBE_INTERP_MAX]; /* width 16 first, orders as decode.h */
    size_t n_interp;
    size_t configured;            /* index of the configured interpretation */
    bool has_named;               /* the plausible ones agree: */
    size_t named;                 /* the widest of them, the one to configure */
    enum ts_probe_outcome outcome;
};

/* Decides for turnstile t (its width, order, direction and max_rate_per_min)
 * from n samples (2..TS_PROBE_SAMPLES_MAX) of regs registers per counter
 * (1, 2 or 4, at least the configured width's). Every width up to regs x 16
 * is tried in every order. The plausible interpretations are the moving ones;
 * if none moves and no register changed at all, the still ones; otherwise
 * none. They agree when the moving ones count the same people at every
 * sample (a 16-bit reading of a CDAB counter's low word does), or the still
 * ones are the same reading by definition (at 16 bits ABCD = CDAB, BADC =
 * DCBA): then the configured one is right if among them, else wrong; if they
 * do not agree, undecided. TS_OK, TS_ENOMEM, or TS_EINVAL for n, regs, the
 * width or the order out of range. */
int ts_probe_decide(const struct ts_turnstile_cfg *t, const struct ts_probe_sample *s, size_t n,
                    int regs, struct ts_probe_decision *out);

struct ts_probe_opts {
    int samples;                  /* TS_PROBE_SAMPLES_MIN..MAX */
    int interval_ms;              /* TS_PROBE_INTERVAL_MIN_MS..MAX_MS */
};

/* Probes every device of cfg (lent): one thread per bus (an RS-485 line's
 * slaves one after the other), each read bounded by the device's timeouts and
 * retries, a device that fails does not hold up the others. Prints the report
 * on out and returns an enum ts_probe_exit. *stop (set by a signal handler)
 * ends the sampling early; what was read is still judged. */
int ts_probe_run(const struct ts_agent_cfg *cfg, const struct ts_probe_opts *opts, FILE *out,
                 volatile sig_atomic_t *stop);

#endif
