/* aggregator.h - Kafka to the lake: duplicate removal, windows, checkpoints, acks.
 *
 * A Kafka consumer in the group kafka->group_id, subscribed to the readings
 * topic. Each assigned partition has its own state, owned by the thread that
 * calls ts_aggregator_poll:
 *   - the duplicate-removal sets of the agents whose readings are in it
 *     (seqset.h; the topic is keyed by agent id, so an agent lives in one
 *     partition and its acknowledgement is computed here);
 *   - the event-time windows (window.h) and the lake writer (lake.h).
 * When a partition is assigned, its state is restored from the lake's latest
 * checkpoint and consumption starts at the offset recorded there (the
 * beginning of the partition when there is none), whatever offsets the group
 * has committed: the checkpoint is the truth, the group's committed offsets
 * only show progress (lag) to operators. Per reading consumed:
 *   duplicate (its seq was seen)          -> dropped, counted
 *   not a reading / out of range          -> skipped, counted (the relay
 *                                            keeps those out; other producers)
 *   otherwise                             -> recorded in the agent's set,
 *                                            added to the windows, and the
 *                                            agent's ack (highest contiguous
 *                                            seq) handed to ack.h
 * After each batch and on a timer the windows advance and the rows they close
 * go to the partition's pending lake files; at least every
 * checkpoint_interval_ms while anything changed, ts_lake_commit makes the
 * files, the next offset and the state (sets + open windows) durable at once,
 * and then the offset is committed to the group (monitoring only; never from
 * the rebalance callback). On revocation and at shutdown each partition is
 * checkpointed (windows stay open in the state).
 * A partition whose commit fails is reloaded from its last checkpoint and
 * paused for a while (disk full, lake unreachable); one whose checkpoint
 * generation was taken by another bridge (TS_ECONFLICT) is dropped until the
 * group takes it away. */
#ifndef TS_AGGREGATOR_H
#define TS_AGGREGATOR_H

#include <stdint.h>

#include "ack.h"
#include "bridge_config.h"

struct ts_aggregator_stats {
    uint64_t consumed;        /* Kafka messages */
    uint64_t readings;        /* new readings added to the windows */
    uint64_t duplicates;      /* dropped: seq already seen */
    uint64_t invalid;         /* skipped: not a reading, or out of range */
    uint64_t held;            /* skipped: an agent's set was full (re-sent later) */
    uint64_t rows, late_rows; /* rows written to the lake (committed or pending) */
    uint64_t files;           /* data files made visible */
    uint64_t checkpoints;     /* commits */
    uint64_t commit_failures; /* commits that failed (partition reloaded) */
    uint64_t conflicts;       /* partitions lost to another bridge */
    uint64_t consumer_failures; /* fatal consumer errors: consumer replaced */
    unsigned partitions;      /* assigned now */
    uint64_t agents;          /* agents in the assigned partitions */
    uint64_t agents_with_gaps; /* of which some reading above the ack is missing */
    int64_t watermark_ms;     /* lowest watermark of the assigned partitions (INT64_MIN: none) */
};

struct ts_aggregator;

/* Creates the consumer and subscribes. ack (may be NULL: no acks, for
 * benchmarks) is lent and must outlive the aggregator. TS_OK; TS_ECONFIG
 * (a librdkafka property refused, a bad window config) or TS_ENOMEM, with a
 * sentence in why. */
int ts_aggregator_new(const struct ts_bridge_cfg *cfg, struct ts_ack *ack,
                      struct ts_aggregator **out, char *why, size_t why_size);

/* Consumes for up to timeout_ms (less if work is done sooner), advances the
 * windows and checkpoints when due. Call it in a loop. A fatal error of the
 * Kafka consumer (e.g. fenced static membership) is handled here: its
 * partitions are dropped without a checkpoint and a new consumer joins the
 * group after a back-off (1 s doubling to 30 s; counted in
 * consumer_failures). TS_OK, or TS_EIO when the lake cannot be recovered
 * (stop the process: systemd restarts it and it resumes from the
 * checkpoints). */
int ts_aggregator_poll(struct ts_aggregator *agg, int timeout_ms);

void ts_aggregator_stats(const struct ts_aggregator *agg, struct ts_aggregator_stats *st);

/* Checkpoints every partition, leaves the group (closing the consumer) and
 * frees; NULL-safe. */
void ts_aggregator_free(struct ts_aggregator *agg);

#endif
