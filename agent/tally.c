#include "tally.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "log.h"

#define BLOB_MAGIC 0x4c545354u /* "TSTL" */
#define UNKNOWN_ELAPSED_MS (24 * 3600 * 1000LL)
#define BLOB_VERSION 2 /* 1: without the held reading (still read) */

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

struct blob_record_v1 {
    char ca[16], unit[16], scp[16];
    struct ts_counter entries, exits;
    int64_t last_ms;
    uint64_t last_entries, last_exits;
};

struct blob_record {
    struct blob_record_v1 v1;
    uint64_t hold_entries, hold_exits; /* the held reading, if holding */
    uint32_t hold_flags;
    uint32_t holding;
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
        memcpy(r.v1.ca, tc->ca, sizeof r.v1.ca);
        memcpy(r.v1.unit, tc->unit, sizeof r.v1.unit);
        memcpy(r.v1.scp, tc->scp, sizeof r.v1.scp);
        r.v1.entries = st->entries;
        r.v1.exits = st->exits;
        r.v1.last_ms = st->last_ms;
        r.v1.last_entries = st->last_entries;
        r.v1.last_exits = st->last_exits;
        r.holding = st->holding;
        r.hold_entries = st->hold_entries;
        r.hold_exits = st->hold_exits;
        r.hold_flags = st->hold_flags;
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
    size_t rsize = h.version == 1 ? sizeof(struct blob_record_v1) : sizeof(struct blob_record);
    if (h.magic != BLOB_MAGIC || (h.version != 1 && h.version != BLOB_VERSION) ||
        h.record_size != rsize || len != sizeof h + (size_t)h.n * rsize) {
        TS_LOG(TS_LOG_WARNING, "saved counter state is of another version: starting from fresh "
                               "baselines (the first reading of each turnstile counts nobody)");
        return TS_EPARSE;
    }
    for (uint32_t k = 0; k < h.n; k++) {
        struct blob_record r;
        memset(&r, 0, sizeof r);
        memcpy(&r, (const char *)blob + sizeof h + k * rsize, rsize);
        for (size_t i = 0; i < t->cfg->n_turnstiles; i++) {
            const struct ts_turnstile_cfg *tc = t->cfg->turnstiles[i];
            struct ts_turnstile_state *st = &t->turnstiles[i];
            if (strncmp(tc->ca, r.v1.ca, sizeof r.v1.ca) ||
                strncmp(tc->unit, r.v1.unit, sizeof r.v1.unit) ||
                strncmp(tc->scp, r.v1.scp, sizeof r.v1.scp))
                continue;
            /* the counters' settings come from today's config */
            struct ts_counter_cfg keep_e = st->entries.cfg, keep_x = st->exits.cfg;
            st->entries = r.v1.entries;
            st->exits = r.v1.exits;
            st->entries.cfg = keep_e;
            st->exits.cfg = keep_x;
            st->last_ms = r.v1.last_ms;
            st->last_entries = r.v1.last_entries;
            st->last_exits = r.v1.last_exits;
            if (r.holding && !st->holding) {
                st->holding = true;
                st->hold_entries = r.hold_entries;
                st->hold_exits = r.hold_exits;
                st->hold_flags = r.hold_flags;
                st->hold_mono_ms = 0; /* stamped when released */
                t->n_held++;
            }
            if (t->cfg->devices[tc->device_index]->kind == TS_HAL_GPIO) {
                st->gpio_base_entries = r.v1.last_entries;
                st->gpio_base_exits = r.v1.last_exits;
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

/* Runs one sample through the turnstile's counters at time_ms: the people
 * since the previous sample into *entries, *exits; anomalies into *flags. */
static void count(struct ts_tally *t, const struct ts_sample *s, int64_t time_ms,
                  uint64_t *entries, uint64_t *exits, uint32_t *flags)
{
    struct ts_turnstile_state *st = &t->turnstiles[s->turnstile];
    uint64_t e = s->entries + st->gpio_base_entries, x = s->exits + st->gpio_base_exits;

    *entries = ts_counter_step(&st->entries, e, time_ms, flags);
    *exits = ts_counter_step(&st->exits, x, time_ms, flags);
    st->counted_entries += *entries;
    st->counted_exits += *exits;
    st->last_entries = e;
    st->last_exits = x;
    st->ref_time_ms = time_ms;
    st->ref_mono_ms = s->mono_ms;
}

/* Fills r with turnstile i's identity and st's latest cumulative values. */
static void identity(struct ts_tally *t, size_t i, int64_t time_ms, struct ts_reading *r)
{
    const struct ts_turnstile_cfg *tc = t->cfg->turnstiles[i];
    const struct ts_turnstile_state *st = &t->turnstiles[i];

    memset(r, 0, sizeof *r);
    COPY(r->ca, tc->ca);
    COPY(r->unit, tc->unit);
    COPY(r->scp, tc->scp);
    COPY(r->station, tc->station);
    COPY(r->linename, tc->linename);
    COPY(r->division, tc->division);
    COPY(r->agent_id, t->cfg->agent.agent_id);
    r->time_ms = time_ms;
    r->entries_cum = st->last_entries;
    r->exits_cum = st->last_exits;
}

/* Closes a reading: RECOVR AUD after a gap, the time of the last one. */
static void finish(struct ts_tally *t, size_t i, struct ts_reading *r)
{
    struct ts_turnstile_state *st = &t->turnstiles[i];
    int64_t gap_ms = (int64_t)t->cfg->agent.poll_interval_ms * t->cfg->agent.recovered_after_polls;

    if (st->last_ms && r->time_ms - st->last_ms > gap_ms)
        r->flags |= TS_FLAG_RECOVERED;
    COPY(r->desc, (r->flags & TS_FLAG_RECOVERED) ? "RECOVR AUD" : "REGULAR");
    st->last_ms = r->time_ms;
}

/* Writes turnstile i's held reading into out (if it holds one); returns 0 or 1. */
static size_t release_turnstile(struct ts_tally *t, size_t i, struct ts_reading *out)
{
    struct ts_turnstile_state *st = &t->turnstiles[i];

    if (!st->holding)
        return 0;
    identity(t, i, ts_clock_stamp(st->hold_mono_ms ? st->hold_mono_ms : ts_clock_mono_ms()), out);
    out->entries = st->hold_entries;
    out->exits = st->hold_exits;
    out->flags = st->hold_flags | TS_FLAG_RECOVERED;
    finish(t, i, out);
    st->holding = false;
    st->hold_entries = st->hold_exits = 0;
    st->hold_flags = 0;
    t->n_held--;
    return 1;
}

size_t ts_tally_sample(struct ts_tally *t, const struct ts_sample *s, bool trusted,
                       struct ts_reading *out)
{
    struct ts_turnstile_state *st = &t->turnstiles[s->turnstile];
    uint64_t e, x;
    uint32_t flags = 0;

    if (!trusted) {
        /* counted now, stamped later. The counters' rate checks need times
         * consistent with the previous ones, which an untrusted clock (years
         * behind, then stepped) does not give: within a run the monotonic
         * clock extends the timeline; after a restart the time elapsed since
         * the last counted sample is unknown, and is taken as a day (a jump
         * then counts unless implausible even for a day) */
        int64_t time_ms;
        if (st->ref_mono_ms)
            time_ms = st->ref_time_ms + (s->mono_ms - st->ref_mono_ms);
        else if (st->entries.have_prev || st->exits.have_prev)
            time_ms = (st->entries.prev_time_ms > st->exits.prev_time_ms ? st->entries.prev_time_ms
                                                                         : st->exits.prev_time_ms) +
                      UNKNOWN_ELAPSED_MS;
        else
            time_ms = ts_clock_stamp(s->mono_ms);
        count(t, s, time_ms, &e, &x, &flags);
        if (!st->holding) {
            st->holding = true;
            t->n_held++;
        }
        st->hold_entries += e;
        st->hold_exits += x;
        st->hold_flags |= flags;
        st->hold_mono_ms = s->mono_ms;
        return 0;
    }
    size_t n = release_turnstile(t, s->turnstile, out);
    int64_t time_ms = ts_clock_stamp(s->mono_ms);
    count(t, s, time_ms, &e, &x, &flags);
    identity(t, s->turnstile, time_ms, &out[n]);
    out[n].entries = e;
    out[n].exits = x;
    out[n].flags = flags;
    finish(t, s->turnstile, &out[n]);
    return n + 1;
}

size_t ts_tally_release(struct ts_tally *t, struct ts_reading *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < t->cfg->n_turnstiles && t->n_held && n < max; i++)
        n += release_turnstile(t, i, out + n);
    return n;
}
