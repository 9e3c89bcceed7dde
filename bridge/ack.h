/* SPDX-License-Identifier: Apache-2.0 */
/* ack.h - the end-to-end acknowledgement publisher.
 *
 * For each agent the aggregator that consumes the agent's partition knows
 * the highest N such that readings 1..N are all in Kafka (seqset.h). This
 * module publishes it on turnstile/v1/<station_id>/<agent_id>/ack, retained,
 * QoS 1, payload the ASCII decimal N (docs/mqtt.md). It has its own MQTT
 * connection (client id "<client id>-ack", clean session) and its own
 * network thread.
 *
 * ts_ack_set only records the value (cheap, called per batch); a value is
 * published when it changed, at most once per ack_interval_ms per agent, and
 * published again after every reconnect. Values never go down within the
 * process: a set below what was set before is ignored (a partition resumed
 * from an older checkpoint recomputes lower values for a while). */
#ifndef TS_ACK_H
#define TS_ACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge_config.h"

struct ts_ack_stats {
    bool connected;
    uint64_t published;       /* ack messages handed to libmosquitto */
    uint64_t agents;          /* agents known */
    uint64_t pending;         /* agents whose latest value is not published yet */
    uint64_t expired;         /* agents forgotten (ts_ack_limits) */
};

struct ts_ack;

/* Creates the publisher (not connected yet). TS_OK, TS_ECONFIG or TS_ENOMEM
 * with a sentence in why. */
int ts_ack_new(const struct ts_bridge_mqtt_cfg *mqtt, const char *bridge_id, struct ts_ack **out,
               char *why, size_t why_size);

/* Starts the network thread. TS_OK or TS_ESYS. */
int ts_ack_start(struct ts_ack *ack);

/* Records agent's acknowledgement. readings_topic is the MQTT topic the
 * agent's readings came on (turnstile/v1/<station>/<agent>/readings): the ack
 * topic is made from it. TS_OK, TS_EINVAL (a topic of another form), TS_ENOMEM.
 * Thread-safe. */
int ts_ack_set(struct ts_ack *ack, const char *readings_topic, uint64_t acked);

/* The highest value recorded for the agent of readings_topic (what it was or
 * is about to be told); 0 if none is known (never set, forgotten by
 * ts_ack_limits, or a topic of another form). Thread-safe. */
uint64_t ts_ack_get(struct ts_ack *ack, const char *readings_topic);

/* Publishes payload on topic, retained, QoS 1, now, through the same
 * connection (the stations' window summaries for dashboards,
 * station_windows.h). Best effort: TS_ECONNECT while disconnected (nothing is
 * queued), TS_EINVAL. Thread-safe. */
int ts_ack_publish_retained(struct ts_ack *ack, const char *topic, const char *payload, size_t len);

/* Bounds the table of agents (0: no bound). An agent whose value went out
 * on the current connection and has not changed for idle_ms is forgotten:
 * the broker retains its value, and a later ts_ack_set publishes again (so
 * call ts_ack_set for duplicates too). Past max_agents agents, those
 * published longest ago are forgotten first (down to 3/4 of it); values
 * not yet published are never forgotten. Thread-safe. */
void ts_ack_limits(struct ts_ack *ack, int64_t idle_ms, size_t max_agents);

void ts_ack_stats(struct ts_ack *ack, struct ts_ack_stats *st);

/* Publishes what is pending (waits up to flush_ms for the PUBACKs),
 * disconnects and frees; NULL-safe. */
void ts_ack_free(struct ts_ack *ack, int flush_ms);

#endif
