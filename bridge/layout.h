/* SPDX-License-Identifier: Apache-2.0 */
/* layout.h - over how many partitions the agents are spread.
 *
 * The relay keys every reading by its agent id, and an agent's partition is
 * crc32(agent id) mod N (librdkafka's consistent partitioner). An agent's
 * duplicate-removal state and acknowledgement live with its partition
 * (aggregator.h), so N must not change under the bridges: adding partitions
 * to the topic would move agents to partitions whose state does not know
 * them (their re-sends counted twice, their acks stopped). The lake records
 * N once, in <root>/<table>/_manifest/<topic>.layout:
 *     ts-lake-layout 1
 *     topic <topic>
 *     partitions <N>
 *     crc32 <8 hex digits of the lines above>
 * created by the first aggregator with the topic's partition count, and
 * replaced only by `turnstile-bridge --repartition` (docs/bridge.md, "Adding
 * partitions"). Relays place readings by it and aggregators check records
 * against it, so partitions added to the topic stay unused until then. */
#ifndef TS_LAYOUT_H
#define TS_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define TS_LAYOUT_MAX_PARTITIONS 100000

/* The partition of agent among n (n >= 1), as librdkafka's consistent
 * partitioner places its key. */
int32_t ts_layout_partition(const char *agent, size_t agent_len, int32_t n);

/* The layout text (len bytes, any content) of topic: TS_OK and *n if it is
 * exactly what ts_layout_create writes for topic and n (its crc32 line
 * included), TS_EPARSE otherwise. What ts_layout_read checks a file with, and
 * --repartition the layout's copy in an object lake's bucket. */
int ts_layout_parse(const char *text, size_t len, const char *topic, int32_t *n);

/* Reads the layout: TS_OK and *n; TS_ENOTFOUND (none yet); TS_EPARSE (a
 * file that does not check out, or of another topic: why says which);
 * TS_ESYS. */
int ts_layout_read(const char *root, const char *table, const char *topic, int32_t *n, char *why,
                   size_t why_size);

/* Creates the layout with n partitions unless one exists (link(2): the
 * first of several bridges wins). *actual gets the layout in force, n or the
 * existing one's. Creates the directories as needed. TS_OK; TS_EINVAL (n out
 * of 1..TS_LAYOUT_MAX_PARTITIONS); the errors of ts_layout_read; TS_ESYS. */
int ts_layout_create(const char *root, const char *table, const char *topic, int32_t n,
                     int32_t *actual, char *why, size_t why_size);

/* Replaces the layout with n partitions (the repartition tool: write a
 * temporary, fsync, rename, fsync the directory). TS_OK, TS_EINVAL, TS_ESYS. */
int ts_layout_replace(const char *root, const char *table, const char *topic, int32_t n,
                      char *why, size_t why_size);

#endif
