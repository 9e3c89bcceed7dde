#include "tally.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

int ts_tally_init(struct ts_tally *t, const struct ts_agent_cfg *cfg, uint64_t next_seq)
{
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->next_seq = next_seq ? next_seq : 1;
    t->turnstiles = calloc(cfg->n_turnstiles ? cfg->n_turnstiles : 1, sizeof *t->turnstiles);
    if (!t->turnstiles)
        return TS_ENOMEM;
    for (size_t i = 0; i < cfg->n_turnstiles; i++) {
        const struct ts_turnstile_cfg *tc = cfg->turnstiles[i];
        struct ts_counter_cfg cc = {.width = tc->width, .direction = tc->direction,
                                    .max_rate_per_min = tc->max_rate_per_min,
                                    .rebase_after = tc->rebase_after > 0 ? (unsigned)tc->rebase_after : 0};
        ts_counter_init(&t->turnstiles[i].entries, &cc);
        ts_counter_init(&t->turnstiles[i].exits, &cc);
    }
    return TS_OK;
}

void ts_tally_free(struct ts_tally *t)
{
    if (t) {
        free(t->turnstiles);
        t->turnstiles = NULL;
    }
}

#define COPY(dst, src) snprintf((dst), sizeof(dst), "%s", (src))

void ts_tally_sample(struct ts_tally *t, const struct ts_sample *s, struct ts_reading *r)
{
    const struct ts_turnstile_cfg *tc = t->cfg->turnstiles[s->turnstile];
    struct ts_turnstile_state *st = &t->turnstiles[s->turnstile];
    int64_t gap_ms = (int64_t)t->cfg->agent.poll_interval_ms * t->cfg->agent.recovered_after_polls;

    memset(r, 0, sizeof *r);
    COPY(r->ca, tc->ca);
    COPY(r->unit, tc->unit);
    COPY(r->scp, tc->scp);
    COPY(r->station, tc->station);
    COPY(r->linename, tc->linename);
    COPY(r->division, tc->division);
    COPY(r->agent_id, t->cfg->agent.agent_id);
    r->seq = t->next_seq++;
    r->time_ms = s->time_ms;
    r->entries_cum = s->entries;
    r->exits_cum = s->exits;
    r->entries = ts_counter_step(&st->entries, s->entries, s->time_ms, &r->flags);
    r->exits = ts_counter_step(&st->exits, s->exits, s->time_ms, &r->flags);
    if (st->last_ms && s->time_ms - st->last_ms > gap_ms)
        r->flags |= TS_FLAG_RECOVERED;
    COPY(r->desc, (r->flags & TS_FLAG_RECOVERED) ? "RECOVR AUD" : "REGULAR");
    st->last_ms = s->time_ms;
}
