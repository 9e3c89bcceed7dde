/* SPDX-License-Identifier: Apache-2.0 */
/* status_report.h - what the bridge says of itself: one JSON document for
 * its retained status (bridge_status.h) and the problems in words for the
 * log line and systemd's STATUS.
 *
 *   {"state":"online","bridge":"b1","version":"0.1.0","role":"all",
 *    "health":"ok"|"degraded","problems":["partition 2: ...", ...],
 *    "relay":{"connected":true,"received":N,"in_kafka":N,"dead_letters":N,
 *             "markers":N,"queued":N,"layout":N,"topic_partitions":N},
 *    "aggregate":{"readings":N,"duplicates":N,"dead_lettered":N,"passed":N,
 *             "records_expired":N,"records_lost":N,"numbers_lost":N,"agents":N,
 *             "archived":N,"layout":N,"topic_partitions":N,"consumer_failures":N,
 *             "checkpoint_failures":N,"retention_s":N|null,
 *             "partitions":[{"partition":0,"offset":N,"checkpoint_offset":N,
 *               "checkpoint_age_s":N,"backlog_age_s":N,"failures_in_row":N,
 *               "failing_s":N,"last_error":"...","agents":N,"archived":N,
 *               "paused":false}, ...]},
 *    "acks":{"connected":true,"agents":N,"published":N}}
 * Sections of roles the bridge does not run are left out. A problem is
 * anything an operator must act on: a partition whose checkpoints fail, a
 * backlog near the topic's retention, records Kafka deleted before the lake
 * took them, a topic whose partitions differ from the lake's layout, a dead
 * producer. */
#ifndef TS_STATUS_REPORT_H
#define TS_STATUS_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "ack.h"
#include "aggregator.h"
#include "relay.h"

struct ts_status_report {
    const char *bridge_id, *role;
    const struct ts_relay_stats *relay;        /* NULL: no relay */
    const struct ts_aggregator_stats *agg;     /* NULL: no aggregator */
    const struct ts_aggregator_partition *parts;
    size_t n_parts;
    const struct ts_ack_stats *ack;            /* NULL: no acknowledger */
};

/* The document (malloc'ed, the caller frees; NULL when out of memory), and
 * the problems joined by "; " into problems (size bytes; "" when none). */
char *ts_status_report_json(const struct ts_status_report *r, char *problems, size_t size);

#endif
