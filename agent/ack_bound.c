/* SPDX-License-Identifier: Apache-2.0 */
/* ack_bound.c - which acknowledgements the agent believes (ack_bound.h). */
#include "ack_bound.h"

#include <stdbool.h>

#include "store.h"

static uint64_t max2(uint64_t a, uint64_t b) { return a > b ? a : b; }
static uint64_t min2(uint64_t a, uint64_t b) { return a < b ? a : b; }

void ts_ack_bound_init(struct ts_ack_bound *b, uint64_t acked, uint64_t before)
{
    *b = (struct ts_ack_bound){.acked = acked, .heard = acked, .before = before};
}

uint64_t ts_ack_bound_limit(const struct ts_ack_bound *b)
{
    return max2(b->acked, max2(b->sent, b->before));
}

int ts_ack_bound_fresh(const struct ts_ack_bound *b)
{
    return b->before == 0 && b->sent == 0;
}

/* acked follows heard as far as sent goes. */
static void apply(struct ts_ack_bound *b)
{
    b->acked = max2(b->acked, min2(b->heard, b->sent));
}

enum ts_ack_verdict ts_ack_bound_heard(struct ts_ack_bound *b, uint64_t v)
{
    if (ts_ack_bound_fresh(b)) {
        /* A sane value replaces an implausible one (an operator corrected
         * the retained ack); among sane ones the highest counts. */
        bool absurd_now = b->renumber > TS_SEQ_MAX;
        if (v > TS_SEQ_MAX || absurd_now)
            b->renumber = v > b->acked ? v : 0;
        else if (v > b->renumber && v > b->acked)
            b->renumber = v;
        return v > b->acked ? TS_ACK_RENUMBER : TS_ACK_OLD;
    }
    if (v <= b->acked)
        return TS_ACK_OLD;
    if (v > ts_ack_bound_limit(b))
        return TS_ACK_REFUSED;
    b->heard = max2(b->heard, v);
    apply(b);
    return TS_ACK_TAKEN;
}

void ts_ack_bound_published(struct ts_ack_bound *b, uint64_t before)
{
    b->before = max2(b->before, before);
    if (!ts_ack_bound_fresh(b))
        b->renumber = 0;
}

void ts_ack_bound_cleared(struct ts_ack_bound *b)
{
    b->renumber = 0;
}

void ts_ack_bound_sent(struct ts_ack_bound *b, uint64_t seq)
{
    b->sent = max2(b->sent, seq);
    apply(b);
}

void ts_ack_bound_floor(struct ts_ack_bound *b, uint64_t v)
{
    b->acked = max2(b->acked, v);
    b->heard = max2(b->heard, b->acked);
    if (b->renumber <= b->acked)
        b->renumber = 0;
}
