#include "tally.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "log.h"

#define BLOB_MAGIC 0x4c545354u /* "TSTL" */
#define BLOB_VERSION 1

static void counter_cfg(const struct ts_turnstile_cfg *tc, struct ts_counter_cfg *cc)
{
    *cc = (struct ts_counter_cfg){.width = tc->width, .direction = tc->direction,
                                  .max_rate_per_min = tc->max_rate_per_min,
                                  .rebase_after = tc->rebase_after > 0 ? (unsigned)tc->rebase_after : 0};
}

int ts_tally_init(struct ts_tally *t, const struct ts_agent_cfg *cfg)
{
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->turnstiles = calloc(cfg->n_turnstiles ? cfg->n_turnstiles : 1, sizeof *t->turnstiles);
    if (!t->turnstiles)
        return TS_ENOMEM;
    for (size_t i = 0; i < cfg->n_turnstiles; i++) {
        struct ts_counter_cfg cc;
        counter_cfg(cfg->turnstiles[i], &cc);
        ts_counter_init(&t->turnstiles[i].entries, &cc);
        ts_counter_init(&t->turnstiles[i].exits, &cc);
    }
    return TS_OK;
}

void ts_tally_free(struct ts_tally *t)
{
    if (!t)
        return;
    free(t->turnstiles);
    free(t->blob);
    t->turnstiles = NULL;
    t->blob = NULL;
}

/* --- saving and restoring ------------------------------------------------ */

struct blob_header {
    uint32_t magic, version, n, record_size;
};

struct blob_record {
    char ca[16], unit[16], scp[16];
    struct ts_counter entries, exits;
    int64_t last_ms;
    uint64_t last_entries, last_exits;
};

const void *ts_tally_save(struct ts_tally *t, size_t *len)
{
    size_t n = t->cfg->n_turnstiles;
    size_t need = sizeof(struct blob_header) + n * sizeof(struct blob_record);

    if (need > t->blob_cap) {
        void *b = realloc(t->blob, need);
        if (!b)
            return NULL;
        t->blob = b;
        t->blob_cap = need;
    }
    struct blob_header h = {BLOB_MAGIC, BLOB_VERSION, (uint32_t)n, sizeof(struct blob_record)};
    memcpy(t->blob, &h, sizeof h);
    for (size_t i = 0; i < n; i++) {
        const struct ts_turnstile_cfg *tc = t->cfg->turnstiles[i];
        const struct ts_turnstile_state *st = &t->turnstiles[i];
        struct blob_record r;
        memset(&r, 0, sizeof r);
        memcpy(r.ca, tc->ca, sizeof r.ca);
        memcpy(r.unit, tc->unit, sizeof r.unit);
        memcpy(r.scp, tc->scp, sizeof r.scp);
        r.entries = st->entries;
        r.exits = st->exits;
        r.last_ms = st->last_ms;
        r.last_entries = st->last_entries;
        r.last_exits = st->last_exits;
        memcpy((char *)t->blob + sizeof h + i * sizeof r, &r, sizeof r);
    }
    *len = need;
    return t->blob;
}

int ts_tally_restore(struct ts_tally *t, const void *blob, size_t len)
{
    struct blob_header h;
    size_t restored = 0;

    if (len < sizeof h)
        return len == 0 ? TS_OK : TS_EPARSE;
    memcpy(&h, blob, sizeof h);
    if (h.magic != BLOB_MAGIC || h.version != BLOB_VERSION ||
        h.record_size != sizeof(struct blob_record) ||
        len != sizeof h + (size_t)h.n * sizeof(struct blob_record)) {
        TS_LOG(TS_LOG_WARNING, "saved counter state is of another version: starting from fresh "
                               "baselines (the first reading of each turnstile counts nobody)");
        return TS_EPARSE;
    }
    for (uint32_t k = 0; k < h.n; k++) {
        struct blob_record r;
        memcpy(&r, (const char *)blob + sizeof h + k * sizeof r, sizeof r);
        for (size_t i = 0; i < t->cfg->n_turnstiles; i++) {
            const struct ts_turnstile_cfg *tc = t->cfg->turnstiles[i];
            struct ts_turnstile_state *st = &t->turnstiles[i];
            if (strncmp(tc->ca, r.ca, sizeof r.ca) || strncmp(tc->unit, r.unit, sizeof r.unit) ||
                strncmp(tc->scp, r.scp, sizeof r.scp))
                continue;
            /* the counters' settings come from today's config */
            struct ts_counter_cfg keep_e = st->entries.cfg, keep_x = st->exits.cfg;
            st->entries = r.entries;
            st->exits = r.exits;
            st->entries.cfg = keep_e;
            st->exits.cfg = keep_x;
            st->last_ms = r.last_ms;
            st->last_entries = r.last_entries;
            st->last_exits = r.last_exits;
            if (t->cfg->devices[tc->device_index]->kind == TS_HAL_GPIO) {
                st->gpio_base_entries = r.last_entries;
                st->gpio_base_exits = r.last_exits;
            }
            restored++;
            break;
        }
    }
    TS_LOG(TS_LOG_INFO, "restored the counters of %zu of %zu turnstiles", restored,
           t->cfg->n_turnstiles);
    return TS_OK;
}

/* --- readings ------------------------------------------------------------ */

#define COPY(dst, src) snprintf((dst), sizeof(dst), "%s", (src))

static void make_reading(struct ts_tally *t, const struct ts_sample *s, uint32_t extra_flags,
                         struct ts_reading *r)
{
    const struct ts_turnstile_cfg *tc = t->cfg->turnstiles[s->turnstile];
    struct ts_turnstile_state *st = &t->turnstiles[s->turnstile];
    int64_t gap_ms = (int64_t)t->cfg->agent.poll_interval_ms * t->cfg->agent.recovered_after_polls;
    uint64_t entries = s->entries + st->gpio_base_entries, exits = s->exits + st->gpio_base_exits;

    memset(r, 0, sizeof *r);
    COPY(r->ca, tc->ca);
    COPY(r->unit, tc->unit);
    COPY(r->scp, tc->scp);
    COPY(r->station, tc->station);
    COPY(r->linename, tc->linename);
    COPY(r->division, tc->division);
    COPY(r->agent_id, t->cfg->agent.agent_id);
    r->time_ms = ts_clock_stamp(s->mono_ms);
    r->entries_cum = entries;
    r->exits_cum = exits;
    r->flags = extra_flags;
    r->entries = ts_counter_step(&st->entries, entries, r->time_ms, &r->flags);
    r->exits = ts_counter_step(&st->exits, exits, r->time_ms, &r->flags);
    if (st->last_ms && r->time_ms - st->last_ms > gap_ms)
        r->flags |= TS_FLAG_RECOVERED;
    COPY(r->desc, (r->flags & TS_FLAG_RECOVERED) ? "RECOVR AUD" : "REGULAR");
    st->counted_entries += r->entries;
    st->counted_exits += r->exits;
    st->last_ms = r->time_ms;
    st->last_entries = entries;
    st->last_exits = exits;
}

/* Writes the held samples of turnstile i as readings; returns how many. */
static size_t release_turnstile(struct ts_tally *t, size_t i, struct ts_reading *out)
{
    struct ts_turnstile_state *st = &t->turnstiles[i];
    size_t n = 0;

    for (int k = 0; k < st->n_held; k++)
        make_reading(t, &st->held[k], k == st->n_held - 1 ? TS_FLAG_RECOVERED : 0, &out[n++]);
    if (st->n_held)
        t->n_held--;
    st->n_held = 0;
    return n;
}

size_t ts_tally_sample(struct ts_tally *t, const struct ts_sample *s, bool trusted,
                       struct ts_reading *out)
{
    struct ts_turnstile_state *st = &t->turnstiles[s->turnstile];

    if (!trusted) {
        if (st->n_held == 0)
            t->n_held++;
        st->held[st->n_held < 2 ? st->n_held++ : 1] = *s;
        return 0;
    }
    size_t n = release_turnstile(t, s->turnstile, out);
    make_reading(t, s, 0, &out[n++]);
    return n;
}

size_t ts_tally_release(struct ts_tally *t, struct ts_reading *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < t->cfg->n_turnstiles && t->n_held && n + 2 <= max; i++)
        if (t->turnstiles[i].n_held)
            n += release_turnstile(t, i, out + n);
    return n;
}
