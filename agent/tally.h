/* SPDX-License-Identifier: Apache-2.0 */
/* tally.h - samples (raw cumulative registers) to readings (people).
 *
 * Keeps, per turnstile, the entries and exits counters (counter.h), the
 * cumulative values and time of the last reading, and for GPIO turnstiles the
 * count carried over from earlier runs (the GPIO backend counts from 0 at
 * start). A sample after a gap in polling (the device was down, or the clock
 * could not be trusted) becomes a RECOVR AUD reading, as in the MTA files.
 *
 * While the wall clock cannot be trusted (clock.h) samples are counted but
 * not stamped: every sample goes through the counters at once (so a reset or
 * a wrap during the period is seen, as it would be with a good clock), and
 * per turnstile the people counted are accumulated into one held reading,
 * saved with the state (ts_tally_save: a crash during the period loses
 * nobody). When the clock is trusted the held reading is released, stamped
 * from the monotonic clock of its latest sample, flagged RECOVR AUD: the
 * detail of the period is lost, not its people.
 *
 * The state is saved to and restored from a blob (the store keeps it in the
 * same transaction as the readings), matched by CA/UNIT/SCP so that a config
 * change keeps the turnstiles that stayed. The blob is an explicit format,
 * independent of struct layout and architecture: tagged little-endian
 * fields with a checksum (docs/store.md, "The state blob"); a field added
 * to the state is one line in tally.c's tables. Sequence numbers are not the
 * tally's business: the store (or, without one, the caller) assigns them. */
#ifndef TS_TALLY_H
#define TS_TALLY_H

#include <stdbool.h>

#include "agent_config.h"
#include "counter.h"
#include "poller.h"
#include "reading.h"

#define TS_TALLY_MAX_OUT 2 /* readings one sample can give: the held one + itself */

struct ts_turnstile_state {
    struct ts_counter entries, exits;
    int64_t last_ms;          /* wall time of the last reading, 0: none */
    uint64_t last_entries, last_exits; /* cumulative values of the last reading */
    uint64_t gpio_base_entries, gpio_base_exits; /* GPIO: counted in earlier runs */
    uint64_t counted_entries, counted_exits;     /* people since this run started */
    /* while the clock is not trusted: what the counters counted, not yet
     * a reading (saved with the state) */
    bool holding;
    uint64_t hold_entries, hold_exits;
    uint32_t hold_flags;
    int64_t hold_mono_ms;     /* monotonic time of the latest held sample; 0: stamp at release */
    /* the counters' timeline: the time and monotonic time of the last sample
     * counted in this run (0: none), so that samples counted while the clock
     * is not trusted get times consistent with the ones before */
    int64_t ref_time_ms, ref_mono_ms;
    /* the anomaly run of each counter (entries, exits): the monotonic times
     * of the first and latest readings since the last one that counted
     * somebody, that counted nobody because of an anomaly (0: none), and
     * their flags. Not saved: it starts again with each run. */
    struct ts_anomaly_run {
        int64_t first_mono_ms, last_mono_ms;
        uint32_t flags;
    } anomaly[2];
    bool warned;              /* an anomaly run passed anomaly_warn_s (logged) */
};

struct ts_tally {
    const struct ts_agent_cfg *cfg; /* lent */
    struct ts_turnstile_state *turnstiles; /* owned, one per cfg->turnstiles */
    size_t n_held;            /* turnstiles holding samples */
    size_t n_warned;          /* turnstiles with warned set */
    bool warnings_changed;    /* a warning was raised or cleared: the caller clears it */
    void *blob;               /* owned: the last saved state */
    size_t blob_cap;
};

int ts_tally_init(struct ts_tally *t, const struct ts_agent_cfg *cfg);
void ts_tally_free(struct ts_tally *t);

/* The anomaly warning (config anomaly_warn_s): a counter whose every
 * reading that moved counted nobody because of an anomaly (a withheld
 * glitch, a held downward move) for that long, by the monotonic clock of
 * the samples, warns once (logged; st->warned, t->n_warned) until a reading
 * counts somebody again (logged as info). Readings that did not move
 * neither extend nor end the run; first readings are not anomalies.
 * ts_tally_anomaly_s gives the longer of turnstile i's two runs in seconds
 * (0: none) and which counter ("entries"/"exits") and flags it has. */
int64_t ts_tally_anomaly_s(const struct ts_tally *t, size_t i, const char **counter,
                           uint32_t *flags);

/* Restores what ts_tally_save wrote (format 3), or formats 1 and 2 as
 * written by earlier agents on the same architecture. Fields the format
 * does not hold keep their ts_tally_init value; unknown ones are skipped.
 * All or nothing: a blob that is damaged, truncated, of an unknown format
 * or with a value out of range changes nothing, is logged as a warning and
 * gives TS_EPARSE (the next reading of each turnstile is then a baseline).
 * The blob is only read, len bytes of it at most. */
int ts_tally_restore(struct ts_tally *t, const void *blob, size_t len);

/* Serialises the state (format 3). The buffer stays the tally's, valid
 * until the next call. NULL on allocation failure. */
const void *ts_tally_save(struct ts_tally *t, size_t *len);

/* Takes one sample. If trusted, writes the readings it gives (held ones of
 * its turnstile first) into out[TS_TALLY_MAX_OUT] and returns how many;
 * otherwise holds it and returns 0. seq of the readings is left 0. */
size_t ts_tally_sample(struct ts_tally *t, const struct ts_sample *s, bool trusted,
                       struct ts_reading *out);

/* Once trusted: releases every held reading, up to max; returns how many
 * were written (call again while it returns max). */
size_t ts_tally_release(struct ts_tally *t, struct ts_reading *out, size_t max);

#endif
