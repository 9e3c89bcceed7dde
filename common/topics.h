/* SPDX-License-Identifier: Apache-2.0 */
/* topics.h - the wire names shared by the agent and the bridge: MQTT topics
 * and the Kafka header that carries a reading's MQTT topic (docs/protocol.md).
 *
 *   turnstile/v1/<station_id>/<agent_id>/<leaf>   leaf: readings, ack, status, state
 *   turnstile/v1/<station_id>/window              the dashboard's station windows
 *   turnstile/bridge/<bridge_id>/status           a bridge's own status
 *
 * Builders write into the caller's buffer and return TS_OK, or TS_EINVAL when
 * it does not fit (the buffer then holds a truncated string: do not use it).
 * They do not check the ids: the caller passes ids it has validated. */
#ifndef TS_TOPICS_H
#define TS_TOPICS_H

#include <stdbool.h>
#include <stddef.h>

#include "reading.h"   /* TS_ID_MAX */

#define TS_TOPIC_PREFIX "turnstile/v1/"
#define TS_TOPIC_READINGS "readings"
#define TS_TOPIC_ACK "ack"
#define TS_TOPIC_STATUS "status"
#define TS_TOPIC_STATE "state"
#define TS_TOPIC_WINDOW "window"

/* The subscription filter of one leaf over every station and agent. */
#define TS_TOPIC_FILTER(leaf) TS_TOPIC_PREFIX "+/+/" leaf

/* Room for any agent topic built from valid ids, NUL included. */
#define TS_TOPIC_AGENT_MAX (sizeof TS_TOPIC_PREFIX + 2 * TS_ID_MAX + sizeof TS_TOPIC_READINGS)

/* The Kafka header holding the MQTT topic a reading came on. */
#define TS_HEADER_MQTT_TOPIC "mqtt_topic"

/* turnstile/v1/<station>/<agent>/<leaf> */
int ts_topic_agent(char *buf, size_t size, const char *station, const char *agent,
                   const char *leaf);

/* turnstile/v1/<station>/<leaf> */
int ts_topic_station(char *buf, size_t size, const char *station, const char *leaf);

/* turnstile/bridge/<bridge_id>/<leaf> */
int ts_topic_bridge(char *buf, size_t size, const char *bridge_id, const char *leaf);

/* True if topic is exactly turnstile/v1/<station>/<agent>/<leaf> with both
 * ids valid (ts_id_ok, shorter than TS_ID_MAX); then station and agent hold
 * them (either may be NULL). A trust boundary: anything else is false. */
bool ts_topic_agent_parse(const char *topic, const char *leaf, char station[TS_ID_MAX],
                          char agent[TS_ID_MAX]);

#endif
