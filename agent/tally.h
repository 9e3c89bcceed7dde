/* tally.h - samples (raw cumulative registers) to readings (people).
 *
 * Keeps, per turnstile, the entries and exits counters (counter.h) and the
 * time of the last sample, and hands out the agent's sequence numbers. A
 * sample after a gap in polling (the device was down) becomes a RECOVR AUD
 * reading, as in the MTA files. The state is plain data so that the store
 * can persist it (issue #3). */
#ifndef TS_TALLY_H
#define TS_TALLY_H

#include "agent_config.h"
#include "counter.h"
#include "poller.h"
#include "reading.h"

struct ts_turnstile_state {
    struct ts_counter entries, exits;
    int64_t last_ms;          /* wall time of the last sample, 0: none */
};

struct ts_tally {
    const struct ts_agent_cfg *cfg; /* lent */
    struct ts_turnstile_state *turnstiles; /* owned, one per cfg->turnstiles */
    uint64_t next_seq;
};

int ts_tally_init(struct ts_tally *t, const struct ts_agent_cfg *cfg, uint64_t next_seq);
void ts_tally_free(struct ts_tally *t);

/* Turns one sample into a reading with the next sequence number. */
void ts_tally_sample(struct ts_tally *t, const struct ts_sample *s, struct ts_reading *out);

#endif
