/* SPDX-License-Identifier: Apache-2.0 */
/* repartition.h - `turnstile-bridge --repartition`: moves every agent's
 * position to the partition a larger layout gives it, offline.
 *
 * An agent's duplicate-removal set and acknowledgement live in the partition
 * the lake's layout (layout.h) names for it; this tool flushes every
 * partition's open windows, copies the agents to their partitions under the
 * topic's new count, switches the layout, then drops the old copies, each
 * step an ordinary checkpoint (ts_lake_commit). It may be killed anywhere
 * and run again: the next run finishes the job. Steps, the refusals before
 * it starts (consumers, undrained partitions) and its memory: docs/bridge.md,
 * "Adding partitions".
 *
 * On the object lake ([lake] url) the partitions' lakes are opened on the
 * bucket as the aggregator opens them (path their spool); the layout, the
 * marker and the lock stay in path, and the layout's copy in the bucket
 * refuses a run on a host whose layout is older (docs/bridge.md).
 *
 * Not thread-safe; one run at a time per lake (a lock file in the manifest;
 * on the object lake in path's: per host). */
#ifndef TS_REPARTITION_H
#define TS_REPARTITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bridge_config.h"
#include "window.h"

/* What becomes of an agent found in partition p while the layout in force
 * is n and the target is m (1 <= n <= m): */
enum ts_repartition_fate {
    TS_REPARTITION_STAYS, /* p is its partition under n and under m */
    TS_REPARTITION_MOVES, /* p is its partition under n; under m it is *target */
    TS_REPARTITION_STALE, /* p is not its partition under n: a copy no aggregator
                             consults (an interrupted run's), dropped */
};

/* The fate above; *target gets the agent's partition under m. Pure. */
enum ts_repartition_fate ts_repartition_fate(const char *agent, int32_t p, int32_t n, int32_t m,
                                             int32_t *target);

/* The partitions under n that may hold agents whose partition under m is q,
 * other than q: every p < n with p = q (mod gcd(n, m)), p != q (an agent's
 * crc32 c gives p = c mod n and q = c mod m). Writes at most max of them,
 * ascending, into out and returns how many there are. Pure. */
size_t ts_repartition_sources(int32_t n, int32_t m, int32_t q, int32_t *out, size_t max);

/* Makes dst (fresh, as ts_window_decode wants) hold the union of the
 * closed-window records of src[0..n-1]: every window closed in any of them
 * is closed in dst (the highest frontier and event time, the windows closed
 * ahead of it). The sources must have no open or late group (flushed).
 * TS_OK; TS_EINVAL (a source not flushed, or of another size or slide; why
 * says which); TS_ENOMEM. Pure. */
int ts_repartition_windows_union(struct ts_window_agg *dst, struct ts_window_agg *const *src,
                                 size_t n, char *why, size_t why_size);

struct ts_repartition_report {
    int32_t from, to;             /* the layout before and after */
    bool unfinished;              /* a run was interrupted: this one finished it */
    bool nothing;                 /* nothing to do */
    unsigned flushed;             /* partitions whose windows were flushed */
    uint64_t rows;                /* rows those flushes wrote */
    uint64_t moved;               /* agents copied to their new partition ... */
    uint64_t moved_archived;      /* ... of which from archives */
    uint64_t removed;             /* copies removed from partitions no longer theirs */
    uint64_t stale;               /* of which copies left by an interrupted run */
    unsigned checkpoints;         /* written */
};

/* The lake's half of the run (the caller has checked Kafka). */
struct ts_repartition_args {
    const struct ts_bridge_cfg *cfg; /* [lake] and [kafka] readings_topic (lent) */
    int32_t m;                    /* the topic's partitions */
    const int64_t *low, *high;    /* m each: every partition's first and end offsets */
    /* Called just before the layout is replaced (C): TS_OK if it is still
     * safe (nobody consumes, the ends have not moved), else an error and a
     * sentence in why; NULL: not asked. */
    int (*recheck)(void *ctx, char *why, size_t why_size);
    /* Called after each durable step (what: "marker", "flush 3", "gain 5",
     * "layout", "drop 1", "done"); anything but TS_OK stops the run there
     * with that result (tests use it as a crash); NULL: none. */
    int (*step)(void *ctx, const char *what);
    void *ctx;
};

/* Reads the layout n and every partition's checkpoint, refuses unless every
 * partition is drained (its checkpoint's offset, or its first offset if it
 * has none, is its end), then does A to D (or D alone when an unfinished run
 * left n == m). TS_OK with *rep (rep->nothing: nothing was to be done);
 * TS_EBUSY (refused: not safe now; why says why and what to do; nothing was
 * changed, or only what a new run redoes); TS_ENOTFOUND (the lake has no
 * layout yet); TS_EINVAL (m < n, a checkpoint beyond its partition's end);
 * TS_ECONFLICT (a checkpoint changed under the tool: a bridge runs);
 * TS_EBUSY also on the object lake when the bucket's copy of the layout
 * counts more partitions than path's (the run was made on another host);
 * TS_ECONFIG (the store ignores conditional writes and conditional_writes
 * is not "no"), the S3 client's errors (TS_ECONNECT, TS_EIO, ...);
 * TS_EPARSE, TS_ESYS, TS_ENOMEM (a new run goes on from where it stopped). */
int ts_repartition_lake(const struct ts_repartition_args *a, struct ts_repartition_report *rep,
                        char *why, size_t why_size);

/* True if an unfinished run left its marker in the lake. */
bool ts_repartition_unfinished(const char *root, const char *table, const char *topic);

/* The tool: the topic's partitions and offsets and the consumer group from
 * Kafka (waiting up to [kafka] session_timeout_ms + 3 s for the members of
 * stopped bridges to expire), then ts_repartition_lake, with the recheck that
 * the group is still empty and no end has moved. Progress goes to the log, a
 * summary to out. TS_OK (done or nothing to do); TS_EBUSY (refused, why says
 * what to do); other errors with why. */
int ts_repartition_run(const struct ts_bridge_cfg *cfg, FILE *out, char *why, size_t why_size);

#endif
