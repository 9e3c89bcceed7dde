/* SPDX-License-Identifier: Apache-2.0 */
/* verdict.h - is this message a valid reading? One decision for the relay
 * and the aggregator (docs/bridge.md, "What goes where").
 *
 * The relay judges each MQTT message (its topic, payload, retain flag, its
 * wall clock); the aggregator judges each Kafka record again (the mqtt_topic
 * header as topic, the value, the key, the record's timestamp), so a record
 * produced around the relay meets the same rules. Checks, in order; the first
 * that fails is the refusal's reason:
 *   topic      turnstile/v1/<station>/<agent>/readings, ids letters, digits,
 *              '.', '_', '-'                                       MALFORMED
 *   key        when given: equals the topic's agent                  MALFORMED
 *   retained   a retained message is not a reading                   MALFORMED
 *   payload    not empty, < TS_READING_LINE_MAX bytes, no NUL, no line break,
 *              ts_reading_parse, the 18-field form, the ID's agent is the
 *              topic's agent, its number at most TS_SEQ_MAX            MALFORMED
 *   UTC offset TIMESTAMP (local) vs EPOCH_MS within 18 h               POLICY
 *   time       0 .. TS_WINDOW_TIME_MAX (what the lake can write)       POLICY
 *   event time now_ms - max_age_ms .. now_ms + max_ahead_ms           POLICY
 * MALFORMED: not the agent's own reading (an agent never sends it); its
 * numbers stay a gap. POLICY: the agent's own, complete reading, refused by
 * a rule of the bridge: recorded as a dead letter, its numbers MERGED_FROM..
 * seq may be passed by the agent's acknowledgement (the marker, below).
 *
 * A reading that passes every check is judged in one pass over topic and
 * payload (ts_reading_parse_line); anything else goes through the checks
 * above in order, so the reasons are theirs.
 *
 * Pure and thread-safe: no I/O, no clock, no allocation. */
#ifndef TS_VERDICT_H
#define TS_VERDICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reading.h"

#define TS_VERDICT_REASON_MAX 200

/* Headers of a marker: a record with a NULL value (Kafka tombstone) that the
 * relay produces to the readings topic, keyed by the agent, after a POLICY
 * refusal's dead letter was confirmed; the aggregator then counts the
 * numbers FROM..SEQ as seen (not counted) so the agent's ack passes them. */
#define TS_MARKER_HEADER_ID "refused_id"     /* "<agent_id>:<seq>" */
#define TS_MARKER_HEADER_FROM "refused_from" /* MERGED_FROM, decimal */

enum ts_verdict_class {
    TS_VERDICT_READING = 0, /* accepted */
    TS_VERDICT_MALFORMED,   /* refused; no marker */
    TS_VERDICT_POLICY,      /* refused; the agent's own reading: marker */
};

/* Event-time bounds relative to now_ms; 0 means no bound. */
struct ts_verdict_bounds {
    int64_t max_age_ms;
    int64_t max_ahead_ms;
};

/* One message. Pointers are lent for the call; byte strings need no NUL. */
struct ts_verdict_msg {
    const char *topic;     /* the MQTT topic, or the mqtt_topic header; NULL: absent */
    size_t topic_len;
    const void *payload;   /* NULL with len 0: none */
    size_t len;
    bool retained;         /* relay: the MQTT retain flag */
    const void *key;       /* aggregator: the Kafka key; NULL: not given (relay) */
    size_t key_len;
    int64_t now_ms;        /* reference time, UTC epoch ms */
    /* (room for the partition check: the Kafka partition the key maps to) */
};

struct ts_verdict {
    enum ts_verdict_class cls;
    char reason[TS_VERDICT_REASON_MAX]; /* refused: a sentence, printable ASCII; "" if accepted */
    char station[TS_ID_MAX];  /* the topic's ids when the topic has the readings form, else "" */
    char agent[TS_ID_MAX];
    struct ts_reading r;      /* READING and POLICY: the parsed reading */
    int32_t utc_offset_s;     /* READING: local = UTC + offset */
};

/* Judges m against b into *v and returns v->cls. */
enum ts_verdict_class ts_verdict_judge(const struct ts_verdict_msg *m,
                                       const struct ts_verdict_bounds *b, struct ts_verdict *v);

/* The same verdict by the checks in order, without the one-pass path for
 * readings that pass: for tests, which compare the two. */
enum ts_verdict_class ts_verdict_judge_full(const struct ts_verdict_msg *m,
                                            const struct ts_verdict_bounds *b,
                                            struct ts_verdict *v);

/* A marker record (see above), given its topic header, key and the two
 * marker headers (byte strings, NULL: absent). true: *agent, *merged_from
 * and *seq hold what it accounts for (key, topic's agent and the ID's agent
 * agree; 1 <= merged_from <= seq). false: reason holds a sentence. */
bool ts_verdict_marker(const char *topic, size_t topic_len, const void *key, size_t key_len,
                       const char *id, size_t id_len, const char *from, size_t from_len,
                       char agent[TS_ID_MAX], uint64_t *merged_from, uint64_t *seq,
                       char reason[TS_VERDICT_REASON_MAX]);

#endif
