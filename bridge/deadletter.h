/* SPDX-License-Identifier: Apache-2.0 */
/* deadletter.h - the aggregator's dead letters: records of the readings topic
 * that the verdict refuses (verdict.h), sent to the dead-letter topic and
 * confirmed by Kafka before a checkpoint passes their offsets.
 *
 * One Kafka producer (acks=all, no message timeout: a dead letter waits for
 * as long as Kafka is away). Dead letters are at least once: a crash between
 * the send and the checkpoint sends them again (the source_* headers tell the
 * copies apart from new ones). Headers: reason, mqtt_topic (when the record
 * had one), source_topic, source_partition, source_offset. The value is the
 * record's value, cut to its first 65,536 bytes (then truncated_from = the
 * original length).
 *
 * Not thread-safe: one thread sends, polls and flushes; delivery reports are
 * served in that thread by ts_deadletter_poll and ts_deadletter_flush. */
#ifndef TS_DEADLETTER_H
#define TS_DEADLETTER_H

#include <stddef.h>
#include <stdint.h>

#include "bridge_config.h"

/* One dead letter. Everything is lent for the call (copied). */
struct ts_deadletter_rec {
    const void *key;          /* NULL: no key */
    size_t key_len;
    const void *value;        /* NULL: no value */
    size_t len;
    const char *reason;       /* a sentence (NUL-terminated) */
    const char *mqtt_topic;   /* the record's mqtt_topic header; NULL: none */
    size_t mqtt_topic_len;
    const char *source_topic; /* where the record was (NUL-terminated) */
    int32_t partition;
    int64_t offset;
};

struct ts_deadletter;

/* Creates the producer for kafka->deadletter_topic; client id client_id.
 * TS_OK, or TS_ECONFIG / TS_ENOMEM with a sentence in why. */
int ts_deadletter_new(const struct ts_bridge_kafka_cfg *kafka, const char *client_id,
                      struct ts_deadletter **out, char *why, size_t why_size);

/* Queues rec, waiting up to wait_ms (serving delivery reports) while the
 * queue is full. TS_OK; TS_EBUSY if it stayed full; TS_EIO if librdkafka
 * refused it (logged). */
int ts_deadletter_send(struct ts_deadletter *d, const struct ts_deadletter_rec *rec, int wait_ms);

/* Serves the delivery reports that are due, without waiting. */
void ts_deadletter_poll(struct ts_deadletter *d);

/* Waits up to timeout_ms for Kafka to confirm every dead letter sent so far.
 * TS_OK: all confirmed; TS_EBUSY: some are not confirmed yet; TS_EIO: some
 * delivery failed since the last TS_EIO (logged; the caller must send those
 * again: the aggregator re-reads the partitions concerned from their
 * checkpoints). */
int ts_deadletter_flush(struct ts_deadletter *d, int timeout_ms);

/* Dead letters sent, confirmed and failed so far; queued now. */
void ts_deadletter_counts(const struct ts_deadletter *d, uint64_t *sent, uint64_t *confirmed,
                          uint64_t *failed, int *queued);

/* Waits up to flush_ms for the queue (what is left is logged) and frees;
 * NULL-safe. */
/* The producer's librdkafka handle (lent; valid until ts_deadletter_free),
 * for admin requests of the aggregator's that must outlive its consumer
 * (retention.h). */
struct rd_kafka_s *ts_deadletter_client(struct ts_deadletter *d);

void ts_deadletter_free(struct ts_deadletter *d, int flush_ms);

#endif
