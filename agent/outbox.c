/* SPDX-License-Identifier: Apache-2.0 */
/* outbox.c - the readings between the tally and the publisher (see outbox.h). */
#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "now.h"

#define RENUMBER_LOG_INTERVAL_MS 60000 /* a refused renumbering is logged this often */
#define RENUMBER_RETRY_MS 5000         /* a renumbering the store failed is retried this often */
#define ACK_BATCH_MS 500               /* acknowledged rows are deleted at most this often... */
                                       /* ...unless max_inflight of them wait */

struct ts_outbox {
    const struct ts_agent_cfg *cfg;
    bool print;
    struct ts_store *store;          /* NULL without [store] */
    struct ts_publisher *pub;        /* lent; NULL without [mqtt] */
    uint64_t print_seq;              /* numbering without a store */
    int64_t last_ack_ms;
    uint64_t renumber_refused;       /* the ack the store was not renumbered past (0: none) */
    const char *renumber_why;        /* why, while renumber_refused */
    uint64_t renumber_refusals;      /* distinct values refused */
    uint64_t renumber_last;          /* the last of them */
    int64_t renumber_log_ms;         /* last error line about it */
    int64_t renumber_try_ms;         /* last attempt the store failed */
};

int ts_outbox_open(const struct ts_agent_cfg *cfg, bool print, struct ts_outbox **out,
                   char *why, size_t why_size)
{
    *out = NULL;
    struct ts_outbox *o = calloc(1, sizeof *o);
    if (!o)
        return ts_fail(why, why_size, TS_ENOMEM, "%s", "outbox: out of memory");
    o->cfg = cfg;
    o->print = print;
    if (cfg->has_store) {
        int rc = ts_store_open(&cfg->store, cfg->agent.agent_id, &o->store, why, why_size);
        if (rc) {
            free(o);
            return rc;
        }
    }
    *out = o;
    return TS_OK;
}

int ts_outbox_load_state(struct ts_outbox *o, void *buf, size_t cap, size_t *len)
{
    *len = 0;
    return o->store ? ts_store_load_state(o->store, buf, cap, len) : TS_OK;
}

void ts_outbox_attach(struct ts_outbox *o, struct ts_publisher *pub)
{
    struct ts_store_stats st;
    o->pub = pub;
    ts_store_get_stats(o->store, &st);
    /* believed at start: what the store deleted; acks up to what earlier
     * runs may have published are not refused (docs/mqtt.md) */
    ts_publisher_set_floor(pub, st.acked);
    ts_publisher_set_published(pub, st.publish_mark);
}

bool ts_outbox_store_stats(struct ts_outbox *o, struct ts_store_stats *st)
{
    if (!o->store)
        return false;
    ts_store_get_stats(o->store, st);
    return true;
}

uint64_t ts_outbox_backlog(struct ts_outbox *o)
{
    struct ts_store_stats st;
    if (!ts_outbox_store_stats(o, &st))
        return 0;
    return st.rows + st.pending_memory;
}

static void print_readings(struct ts_reading *r, size_t n)
{
    char line[TS_READING_LINE_MAX];
    for (size_t i = 0; i < n; i++) {
        if (ts_reading_format(&r[i], line, sizeof line) < 0) {
            TS_LOG(TS_LOG_ERR, "cannot format reading %llu", (unsigned long long)r[i].seq);
            continue;
        }
        puts(line);
    }
    if (n)
        fflush(stdout);
}

void ts_outbox_put(struct ts_outbox *o, struct ts_reading *r, size_t n, const void *state,
                   size_t len)
{
    if (!o->store) {
        for (size_t i = 0; i < n; i++)
            r[i].seq = r[i].merged_from = ++o->print_seq;
        if (o->print)
            print_readings(r, n);
        return;
    }
    ts_store_append(o->store, r, n, state, state ? len : 0); /* errors: held in memory, logged */
    if (o->print && !o->pub) {
        /* stdout is the consumer: print what is stored, then let it go */
        struct ts_reading out[64];
        size_t got;
        struct ts_store_stats st;
        ts_store_get_stats(o->store, &st);
        while (ts_store_fetch(o->store, st.acked, out, 64, &got) == TS_OK && got > 0 &&
               ts_store_mark_published(o->store, out[got - 1].seq) == TS_OK) {
            print_readings(out, got);
            ts_store_ack(o->store, out[got - 1].seq);
            st.acked = out[got - 1].seq;
        }
    }
}

/* The bridge acknowledges numbers this store never published (want, from
 * ts_publisher_renumber_ack): the store is new (a replaced controller, a lost
 * SD card). Never reuse a number the bridge has seen: the readings move up
 * past it. An absurd value (the numbers would pass TS_SEQ_MAX) is refused,
 * loudly, and nothing is published meanwhile: the readings stay in the
 * store until a sane ack replaces it or the retained ack is cleared. True
 * when renumbered. */
static bool renumber(struct ts_outbox *o, uint64_t want, const struct ts_store_stats *st)
{
    /* after the move the stored numbers run from want + 1 to at most
     * want + (next_seq - 1 - acked): no overflow, not past TS_SEQ_MAX */
    uint64_t in_use = st->next_seq - 1 - st->acked;
    bool sane = want <= TS_SEQ_MAX && in_use <= TS_SEQ_MAX - want;
    const char *why = "implausible acknowledgement: not renumbering";
    int rc = TS_EINVAL;
    int64_t now = ts_mono_ms();
    if (sane) {
        if (st->pending_memory)
            return false; /* renumbered once the readings held in memory are written */
        if (want == o->renumber_refused && now - o->renumber_try_ms < RENUMBER_RETRY_MS)
            return false; /* the store failed just now */
        rc = ts_store_renumber(o->store, want + 1);
        if (rc == TS_OK) {
            ts_publisher_set_floor(o->pub, want);
            if (o->renumber_refused)
                TS_LOG(TS_LOG_NOTICE, "the acknowledgement is %llu now: renumbered past it, "
                       "publishing again", (unsigned long long)want);
            o->renumber_refused = 0;
            o->renumber_why = NULL;
            return true;
        }
        why = "cannot renumber";
        o->renumber_try_ms = now;
    }
    bool due = want != o->renumber_refused || now - o->renumber_log_ms >= RENUMBER_LOG_INTERVAL_MS;
    if (want != o->renumber_refused) {
        o->renumber_refusals++;
        o->renumber_last = want;
    }
    o->renumber_refused = want;
    o->renumber_why = why;
    if (due) {
        if (!sane)
            TS_LOG(TS_LOG_ERR, "the acknowledgement on turnstile/v1/%s/%s/ack is %llu, above "
                   "anything this new store can number past (%llu is the highest sequence "
                   "number an agent uses): not renumbering, publishing nothing, keeping every "
                   "reading; publish the bridge's real value there (retained) or clear it",
                   o->cfg->agent.station_id, o->cfg->agent.agent_id, (unsigned long long)want,
                   (unsigned long long)TS_SEQ_MAX);
        else
            TS_LOG(TS_LOG_ERR, "the bridge acknowledges %llu for this new store but it cannot "
                   "be renumbered past it (%s%s): publishing nothing, keeping every reading",
                   (unsigned long long)want, st->publish_mark ? "its publish mark is not 0, "
                   "although nothing was sent: " : "", ts_strerror(rc));
        o->renumber_log_ms = now;
    }
    return false;
}

void ts_outbox_pump(struct ts_outbox *o)
{
    struct ts_reading out[128];
    size_t room, got;

    if (!o->pub || !o->store)
        return;
    ts_store_retry(o->store);
    struct ts_store_stats st;
    ts_store_get_stats(o->store, &st);
    uint64_t want = ts_publisher_renumber_ack(o->pub);
    if (want) {
        if (!renumber(o, want, &st))
            return;
        ts_store_get_stats(o->store, &st);
    } else if (o->renumber_refused) {
        TS_LOG(TS_LOG_NOTICE, "the retained acknowledgement %llu is gone: publishing",
               (unsigned long long)o->renumber_refused);
        o->renumber_refused = 0;
        o->renumber_why = NULL;
    }
    /* never above what this agent may have published: the publisher's rule */
    uint64_t acked = ts_publisher_acked(o->pub);
    if (acked > st.acked) {
        /* deleting is not urgent: batch it, each delete is a commit */
        int64_t now = ts_mono_ms();
        if (acked - st.acked >= (uint64_t)o->cfg->mqtt.max_inflight ||
            now - o->last_ack_ms >= ACK_BATCH_MS) {
            ts_store_ack(o->store, acked);
            o->last_ack_ms = now;
        }
    }
    for (int turns = 0; turns < 64; turns++) {
        uint64_t after = ts_publisher_next_seq(o->pub, &room);
        if (room == 0)
            break;
        if (room > sizeof out / sizeof out[0])
            room = sizeof out / sizeof out[0];
        if (ts_store_fetch(o->store, after, out, room, &got) != TS_OK || got == 0)
            break;
        /* never publish what a merge could still touch: the mark goes ahead
         * in steps of several windows, so that it costs few commits */
        uint64_t last = out[got - 1].seq;
        if (last > st.publish_mark) {
            uint64_t ahead = last + 8 * (uint64_t)o->cfg->mqtt.max_inflight;
            if (ahead > st.next_seq - 1)
                ahead = st.next_seq - 1;
            if (ts_store_mark_published(o->store, ahead > last ? ahead : last) != TS_OK)
                break;
            st.publish_mark = ahead > last ? ahead : last;
        }
        if (ts_publisher_send(o->pub, out, got) < got)
            break;
    }
}

struct ts_ack_status ts_outbox_ack_status(struct ts_outbox *o)
{
    struct ts_ack_status s = {.error = ""};
    struct ts_publisher_stats ps;
    if (!o->pub)
        return s;
    ts_publisher_get_stats(o->pub, &ps);
    s.refused = ps.acks_refused + o->renumber_refusals;
    /* a store renumbers only before it publishes, and refuses after */
    s.refused_last = ps.acks_refused ? ps.ack_refused_last : o->renumber_last;
    if (o->renumber_refused)
        s.error = o->renumber_why;
    else if (ps.ack_refusing)
        s.error = "acknowledgement above what was published: ignored";
    return s;
}

void ts_outbox_settle(struct ts_outbox *o)
{
    if (!o->pub)
        return;
    ts_outbox_pump(o);
    /* let what is in flight be acknowledged, so the store keeps only the rest */
    for (int i = 0; i < 40; i++) {
        struct ts_publisher_stats ps;
        ts_publisher_get_stats(o->pub, &ps);
        if (!ps.connected || ps.inflight == 0)
            break;
        struct timespec pause = {0, 50 * 1000000L};
        nanosleep(&pause, NULL);
    }
    uint64_t acked = ts_publisher_acked(o->pub);
    struct ts_store_stats st;
    ts_store_get_stats(o->store, &st);
    if (acked > st.acked && acked <= st.publish_mark)
        ts_store_ack(o->store, acked);
}

void ts_outbox_close(struct ts_outbox *o)
{
    if (!o)
        return;
    if (o->store) {
        struct ts_store_stats st;
        ts_store_retry(o->store);
        ts_store_get_stats(o->store, &st);
        TS_LOG(TS_LOG_INFO, "store: %llu readings kept (%llu in memory), %llu merges",
               (unsigned long long)st.rows, (unsigned long long)st.pending_memory,
               (unsigned long long)st.merges);
    }
    ts_store_close(o->store);
    free(o);
}
