/* SPDX-License-Identifier: Apache-2.0 */
/* aggregator.h - Kafka to the lake: duplicate removal, windows, checkpoints, acks.
 *
 * A Kafka consumer in the group kafka->group_id, subscribed to the readings
 * topic. Each assigned partition has its own state, owned by one of the
 * aggregator's threads (Threads, below):
 *   - the duplicate-removal sets of the agents whose readings are in it
 *     (seqset.h; the topic is keyed by agent id, so an agent lives in one
 *     partition and its acknowledgement is computed here);
 *   - the event-time windows (window.h) and the lake writer (lake.h).
 * When a partition is assigned, its state is restored from the lake's latest
 * checkpoint and consumption starts at the offset recorded there (the
 * beginning of the partition when there is none), whatever offsets the group
 * has committed: the checkpoint is the truth, the group's committed offsets
 * only show progress (lag) to operators. Per reading consumed:
 *   refused by ts_verdict_judge (key,     -> dead-lettered (deadletter.h),
 *   mqtt_topic header and ID must name        counted, never acknowledged;
 *   one agent; the record's timestamp is      the checkpoint passes its
 *   the reference time), or a merged range    offset once Kafka confirmed
 *   over numbers already seen                 the dead letter
 *   duplicate (its seq was seen)          -> dropped, counted
 *   a new range past the set's bound      -> dropped, counted (held); the
 *   (TS_EFULL, seqset.h)                     ack stays below it, the agent
 *                                            re-sends it
 *   a marker (NULL value, verdict.h)      -> its numbers recorded in the
 *                                            agent's set (not counted), the
 *                                            agent's ack handed to ack.h
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
 * The acks go to ack.h as readings are taken (cfg ack_after = kafka) or once
 * a checkpoint holds them (lake). A partition whose commit fails (disk full,
 * lake unreachable) is reloaded from its last checkpoint and paused, 5 s
 * doubling to 5 min while failures repeat; with ack_after = kafka a retry
 * first reads up to the partition's end (the acks go on) before it commits.
 * Records Kafka deleted before a checkpoint took them (a gap in the offsets)
 * are counted once (records_expired; with kafka also records_lost, and the
 * agents' numbers in them up to their published acks are passed:
 * numbers_lost). One whose checkpoint generation was taken by another
 * bridge (TS_ECONFLICT) is dropped until the group takes it away.
 * Threads: the caller's thread polls the consumer (up to cfg
 * lake.batch_records records a call) and hands each record to one of cfg
 * lake.threads aggregating threads of the aggregator's own, the one of its
 * partition (partition modulo threads), through a bounded inbox (batch_records
 * each). Each judges and takes its partitions' records in the order polled
 * and does everything above for them, the checkpoints included. Rebalances,
 * the figures and the end hold the aggregating threads (a rebalance after
 * they took every record handed to them) (docs/bridge.md, "Threads"). The
 * functions below are for the one thread that polls. */
#ifndef TS_AGGREGATOR_H
#define TS_AGGREGATOR_H

#include <stdint.h>

#include "ack.h"
#include "bridge_config.h"

struct ts_aggregator_stats {
    uint64_t consumed;        /* Kafka messages */
    uint64_t readings;        /* new readings added to the windows */
    uint64_t duplicates;      /* dropped: seq already seen */
    uint64_t invalid;         /* refused by the verdict (or a bad marker): dead-lettered */
    uint64_t passed;          /* markers: numbers passed by the ack, not counted */
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
    uint64_t archived;        /* agents in the assigned partitions' archives (agent_table.h) */
    uint64_t moved_out, brought_back; /* agents moved to an archive and back */
    uint64_t records_expired; /* records Kafka deleted before a checkpoint took them (retention) */
    uint64_t records_lost;    /* of which with ack_after = kafka: their readings are lost */
    uint64_t numbers_lost;    /* agents' reading numbers passed because they were in those
                                 records (ack_after = kafka; else their acks would stop) */
    int32_t layout;           /* partitions the agents are spread over (layout.h); 0: unknown */
    int32_t topic_partitions; /* the topic's partitions at the last assignment */
    int64_t retention_ms;     /* the topic's retention.ms (retention.h: TS_RETENTION_*) */
};

/* One assigned partition, for the status (bridge_main.c). */
struct ts_aggregator_partition {
    int32_t partition;
    int64_t next_offset;      /* offset after the last record taken (-1: none yet) */
    int64_t high_offset;      /* the partition's end as last fetched (librdkafka's cached
                                 high watermark; -1: unknown): the lag is the difference */
    int64_t checkpoint_offset;
    int64_t checkpoint_age_ms; /* since the last checkpoint */
    int64_t backlog_age_ms;   /* age of the oldest record taken that no checkpoint holds yet
                                 (by its Kafka timestamp); 0: none */
    uint64_t failures_in_row; /* checkpoints failed since the last one that worked */
    int64_t failing_ms;       /* how long it has been failing; 0: it is not */
    char last_error[160];     /* why the last one failed ("" if the last one worked) */
    size_t agents;            /* in memory */
    uint64_t archived;        /* in its archive */
    bool paused;              /* waiting before it tries again */
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

/* For a run that stops at the topic's end (turnstile-bridge --until-end):
 * true once the consumer has had an assignment and each partition assigned
 * has been polled up to the end it had when first asked here after its
 * assignment (its high watermark then; a partition with nothing past its
 * checkpoint is at its end at once). Records polled are taken by the
 * aggregating threads before ts_aggregator_free's final checkpoints. A
 * partition sent back to its checkpoint (a reload) is behind again. Asks
 * Kafka each partition's end once (up to 2 s). The polling thread's. */
bool ts_aggregator_at_end(struct ts_aggregator *agg);

/* The figures (the workers are held while they are read). */
void ts_aggregator_stats(struct ts_aggregator *agg, struct ts_aggregator_stats *st);

/* The assigned partitions, ascending, into out (at most max); returns how
 * many are assigned. */
size_t ts_aggregator_partitions(struct ts_aggregator *agg,
                                struct ts_aggregator_partition *out, size_t max);

/* Checkpoints every partition, leaves the group (closing the consumer) and
 * frees; NULL-safe. */
void ts_aggregator_free(struct ts_aggregator *agg);

#endif
