/* SPDX-License-Identifier: Apache-2.0 */
/* ack_bound.h - which acknowledgements the agent believes.
 *
 * The bridge's ack N on P/ack says that readings 1..N are in Kafka; anyone
 * who may publish there can say anything. The agent believes an ack only as
 * far as readings it may have published itself:
 *   sent    the highest seq this process handed to MQTT (exact);
 *   before  the highest seq earlier runs may have published: the store's
 *           publish mark at start (above what they really sent by up to the
 *           mark's look-ahead after a crash).
 * An ack v is
 *   old       v <= acked: nothing to do;
 *   taken     v <= max(sent, before): believed at once up to min(v, sent),
 *             and up to v as this process (re-)sends readings up to it
 *             (ts_ack_bound_sent), so that acked never passes sent;
 *   renumber  v above acked, and this store never published (before and
 *             sent 0): the caller moves its readings past b->renumber and
 *             then calls ts_ack_bound_floor(b->renumber). b->renumber is the
 *             highest such v, except that a value above TS_SEQ_MAX (store.h)
 *             and the next one replace it whatever they are (an operator
 *             corrects an absurd retained ack; the caller refuses to
 *             renumber past an absurd one);
 *   refused   anything else: ignored.
 * ts_ack_bound_floor is the only way acked passes sent: what the store had
 * deleted before this run, a renumbering, or a broker's PUBACK (puback mode).
 * Pure logic: no I/O, no lock, no clock (the publisher holds one under its
 * lock). The rule and what it believes after a restart: docs/mqtt.md. */
#ifndef TS_ACK_BOUND_H
#define TS_ACK_BOUND_H

#include <stdint.h>

struct ts_ack_bound {
    uint64_t acked;     /* believed: readings up to it may be deleted */
    uint64_t heard;     /* highest ack taken (may be above sent after a restart) */
    uint64_t sent;      /* highest seq handed to MQTT by this process */
    uint64_t before;    /* highest seq earlier runs may have published */
    uint64_t renumber;  /* a store that never published: the ack to renumber past
                           (0: none); cleared by a floor at or above it */
};

enum ts_ack_verdict {
    TS_ACK_OLD,         /* not above acked */
    TS_ACK_TAKEN,       /* believed (acked may not have moved yet: see above) */
    TS_ACK_RENUMBER,    /* the caller renumbers past it */
    TS_ACK_REFUSED,     /* above anything this agent may have published */
};

/* Starts from what the store knows: acked (deleted up to), before (its
 * publish mark). */
void ts_ack_bound_init(struct ts_ack_bound *b, uint64_t acked, uint64_t before);

/* The highest ack that is not refused: max(acked, sent, before). */
uint64_t ts_ack_bound_limit(const struct ts_ack_bound *b);

/* True while nothing was ever published under this store's numbers. */
int ts_ack_bound_fresh(const struct ts_ack_bound *b);

/* An ack v arrived. */
enum ts_ack_verdict ts_ack_bound_heard(struct ts_ack_bound *b, uint64_t v);

/* Earlier runs may have published up to before (raises it; a store that
 * published is no longer renumbered). */
void ts_ack_bound_published(struct ts_ack_bound *b, uint64_t before);

/* The retained ack was cleared (empty payload): no renumbering pending. */
void ts_ack_bound_cleared(struct ts_ack_bound *b);

/* Reading seq was handed to MQTT (in seq order, re-sends included). */
void ts_ack_bound_sent(struct ts_ack_bound *b, uint64_t seq);

/* Believes v without question (see above). */
void ts_ack_bound_floor(struct ts_ack_bound *b, uint64_t v);

#endif
