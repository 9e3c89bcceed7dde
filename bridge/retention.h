/* SPDX-License-Identifier: Apache-2.0 */
/* retention.h - how long Kafka keeps the readings, asked of the brokers.
 *
 * In the default ack mode an agent deletes a reading once it is in Kafka;
 * if the lake cannot commit a partition for longer than the topic keeps its
 * records, the records the lake never took are deleted by Kafka's retention
 * and lost (docs/bridge.md, "Retention"). The aggregator therefore compares
 * each partition's uncommitted backlog with the topic's retention.ms, which
 * this module asks of the cluster (DescribeConfigs on the consumer's own
 * handle) at start and every interval_ms, without ever blocking: a request
 * goes out, its answer is taken by a later ts_retention_poll.
 *
 * Not thread-safe: it belongs to the aggregator's thread. */
#ifndef TS_RETENTION_H
#define TS_RETENTION_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

#define TS_RETENTION_UNKNOWN INT64_MIN   /* not known yet (or the request failed) */
#define TS_RETENTION_INFINITE (-1)       /* retention.ms = -1: kept for ever */

struct ts_retention;

/* rk is lent (it must outlive the watcher); topic is copied. TS_OK or
 * TS_ENOMEM. */
int ts_retention_new(rd_kafka_t *rk, const char *topic, int64_t interval_ms,
                     struct ts_retention **out);

/* Sends a request when none is out and interval_ms passed since the last
 * answer (at once the first time), and takes an answer that came. Never
 * blocks. now_ms: a monotonic clock. */
void ts_retention_poll(struct ts_retention *r, int64_t now_ms);

/* The topic's retention.ms as last answered: TS_RETENTION_UNKNOWN,
 * TS_RETENTION_INFINITE or a positive number of milliseconds. */
int64_t ts_retention_ms(const struct ts_retention *r);

void ts_retention_free(struct ts_retention *r); /* NULL-safe */

#endif
